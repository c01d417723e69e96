"""anionmotion: cation diffusion, polyanion dynamics and paddle-wheel coupling from MD trajectories.

Quick start
-----------
>>> import anionmotion                                     # doctest: +SKIP
>>> traj = anionmotion.open("dump.lammpstrj", timestep=0.001, types="1=Li,2=P,3=S")  # doctest: +SKIP
>>> res = anionmotion.msd(traj, species="Li")              # doctest: +SKIP
"""

from __future__ import annotations

import importlib

from ._version import __version__
from .errors import (AnionmotionError, AnionmotionWarning, FitWarning, FormatError, IntegrityWarning, OptionError,
                     SamplingWarning, TrajectoryError, TruncatedFileWarning, UnwrapWarning)
from .io import open
from .trajectory import Chunk, Trajectory, from_arrays

# Public names implemented in analysis modules, imported on first use so that
# ``import anionmotion`` stays fast.  name -> module
_LAZY = {
    # diffusion (SPEC §2-3)
    "msd": "anionmotion.analysis.msd", "MSD": "anionmotion.analysis.msd", "MSDResult": "anionmotion.analysis.msd",
    "fit_diffusion": "anionmotion.analysis.diffusion", "DiffusionResult": "anionmotion.analysis.diffusion",
    "conductivity": "anionmotion.analysis.diffusion",
    "hops": "anionmotion.analysis.hops", "Hops": "anionmotion.analysis.hops", "HopsResult": "anionmotion.analysis.hops",
    "arrhenius": "anionmotion.analysis.arrhenius", "ArrheniusResult": "anionmotion.analysis.arrhenius",
    # polyanions (SPEC §4-5)
    "find_polyanions": "anionmotion.analysis.polyanions", "Polyanions": "anionmotion.analysis.polyanions",
    "reorientation": "anionmotion.analysis.reorientation", "ReorientationResult": "anionmotion.analysis.reorientation",
    "coupling": "anionmotion.analysis.coupling", "CouplingResult": "anionmotion.analysis.coupling",
    "timeline": "anionmotion.analysis.timeline", "TimelineResult": "anionmotion.analysis.timeline",
    # spectra and structure (SPEC §6-7)
    "vdos": "anionmotion.analysis.vdos", "VDOSResult": "anionmotion.analysis.vdos",
    "libration": "anionmotion.analysis.libration", "LibrationResult": "anionmotion.analysis.libration",
    "density": "anionmotion.analysis.density", "DensityResult": "anionmotion.analysis.density",
    "rdf": "anionmotion.analysis.rdf", "RDFResult": "anionmotion.analysis.rdf",
    # series
    "compare": "anionmotion.report.compare",
    "mode_decomposition": "anionmotion.report.compare",
}

__all__ = ["__version__", "open", "from_arrays", "Trajectory", "Chunk", "AnionmotionError", "TrajectoryError",
           "FormatError", "OptionError", "AnionmotionWarning", "UnwrapWarning", "SamplingWarning",
           "TruncatedFileWarning", "IntegrityWarning", "FitWarning", *_LAZY]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'anionmotion' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
