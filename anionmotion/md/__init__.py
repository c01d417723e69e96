"""Constrained molecular dynamics through OpenMM (SPEC §8, paper 000).

The four modes remove degrees of freedom of the polyanions — UC (none), RC
(the three rigid-body rotations), RTC (+ centre-of-mass translation), RTVC
(everything: anions frozen) — so that the cation transport of the four runs
gives the mode decomposition of the paddle-wheel effect.

>>> from anionmotion.md import build_li2so4, run_md        # doctest: +SKIP
>>> model = build_li2so4(cells=2)                          # doctest: +SKIP
>>> run_md(model, "run.nc", mode="all", temperature=1000, time=20)   # doctest: +SKIP

OpenMM is imported only when a System is built or run; without it these
functions raise ``ImportError("anionmotion.md needs OpenMM: pip install 'anionmotion[md]'")``.
"""

from __future__ import annotations

from .modes import (K_COM_DEFAULT, K_ROT_DEFAULT, MODES, ModeSetup, ModeWarning, apply_mode, check_mode,
                    com_tether_energy, eckart_coefficients, eckart_energy, make_whole)
from .reporter import NetCDFReporter
from .run import RunSettings, output_paths, report_path, run_md, run_mode
from .systems import LI2SO4_PARAMETERS, SYSTEMS, MDSystem, build_li2so4, load_system

__all__ = ["MODES", "K_ROT_DEFAULT", "K_COM_DEFAULT", "ModeSetup", "ModeWarning", "apply_mode", "check_mode",
           "make_whole", "eckart_coefficients", "eckart_energy", "com_tether_energy", "RunSettings", "run_md",
           "run_mode", "output_paths", "report_path", "MDSystem", "build_li2so4", "load_system", "SYSTEMS",
           "LI2SO4_PARAMETERS", "NetCDFReporter"]
