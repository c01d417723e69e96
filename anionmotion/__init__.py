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
from .trajectory import Chunk, Trajectory, from_arrays, open

# Public names implemented in analysis modules, imported on first use so that
# ``import anionmotion`` stays fast.  name -> module.  The trajectory analyses come
# from the one registry (anionmotion.analysis.registry); the rest are listed here.
from .analysis.registry import lazy_api as _lazy_api

_LAZY = {
    **_lazy_api(),
    # diffusion fits and series (SPEC §2-3, §8)
    "fit_diffusion": "anionmotion.analysis.diffusion", "DiffusionResult": "anionmotion.analysis.diffusion",
    "conductivity": "anionmotion.analysis.diffusion",
    "arrhenius": "anionmotion.analysis.arrhenius", "ArrheniusResult": "anionmotion.analysis.arrhenius",
    "compare": "anionmotion.report.compare",
    "mode_decomposition": "anionmotion.analysis.modes",
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
