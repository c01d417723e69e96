"""Constrained molecular dynamics through OpenMM (SPEC §8, paper 000).

The four modes remove degrees of freedom of the polyanions — UC (none), RC
(the three rigid-body rotations), RTC (+ centre-of-mass translation), RTVC
(everything: anions frozen) — so that the cation transport of the four runs
gives the mode decomposition of the paddle-wheel effect.

>>> from anionmotion.md import build_li2so4, run_md        # doctest: +SKIP
>>> model = build_li2so4(cells=2)                          # doctest: +SKIP
>>> run_md(model, "run.nc", mode="all", temperature=1000, time=20)   # doctest: +SKIP

Your own material with a machine-learning potential, over a temperature grid:

>>> from anionmotion.md import build_md_system, run_series            # doctest: +SKIP
>>> system = build_md_system("Li3PS4.cif", "chgnet", supercell="2x2x2")  # doctest: +SKIP
>>> run_series(system, "lps.nc", temperatures=[500, 600, 700], mode="all", time=50)   # doctest: +SKIP

OpenMM is imported only when a System is built or run; without it these
functions raise ``ImportError("anionmotion.md needs OpenMM: pip install 'anionmotion[md]'")``.
"""

from __future__ import annotations

from .modes import (K_COM_DEFAULT, K_ROT_DEFAULT, MODES, ModeSetup, ModeWarning, apply_mode, check_mode,
                    com_tether_energy, eckart_coefficients, eckart_energy, make_whole)
from .reporter import NetCDFReporter
from .run import RunSettings, output_paths, report_path, run_md, run_mode
from .series import Convergence, run_series
from .structure import annotate_reports, build_md_system, load_md_structure
from .systems import LI2SO4_PARAMETERS, SYSTEMS, MDSystem, build_li2so4, load_system

__all__ = ["MODES", "K_ROT_DEFAULT", "K_COM_DEFAULT", "ModeSetup", "ModeWarning", "apply_mode", "check_mode",
           "make_whole", "eckart_coefficients", "eckart_energy", "com_tether_energy", "RunSettings", "run_md",
           "run_mode", "output_paths", "report_path", "MDSystem", "build_li2so4", "load_system", "SYSTEMS",
           "LI2SO4_PARAMETERS", "NetCDFReporter", "build_md_system", "load_md_structure", "annotate_reports",
           "run_series", "Convergence", "parse_potential", "potential_system"]


def __getattr__(name):
    """The potential routes are imported on first use (they load OpenMM-ML/PyTorch lazily themselves)."""
    if name in ("parse_potential", "potential_system"):
        from . import potentials

        return getattr(potentials, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
