"""Reports: one command that runs every applicable analysis, series comparisons, batch runs.

- :func:`run_report` (``anionmotion report``): all analyses of one trajectory into one folder
  (``report.html``, ``report.md``, ``report.json``, CSVs, figures, density grid).
- :func:`anionmotion.report.compare.compare` (``anionmotion compare``): Arrhenius analysis over
  a temperature series and the constraint-mode decomposition (SPEC §8) over UC/RC/RTC/RTVC runs.
- :mod:`anionmotion.report.batch` (``anionmotion batch``): many reports on dask.distributed,
  resumable through completion markers.
"""

from __future__ import annotations

from .core import (MARKER, OPTION_DEFAULTS, ReportFailed, comparable, file_sha256, raise_if_failed, report_status,
                   run_report)
from ..analysis.detect import detect_cation, detect_polyanions
from .stages import STAGES, stage_names

__all__ = ["run_report", "raise_if_failed", "ReportFailed", "report_status", "comparable", "file_sha256", "MARKER", "OPTION_DEFAULTS",
           "detect_cation", "detect_polyanions", "STAGES", "stage_names", "example_path"]


def example_path(mode="UC") -> str:
    """Path of an example trajectory shipped with the package (``anionmotion report --example``).

    The example is one system (the α-Li2SO4-like demonstration model, 756 atoms, 1000 K; see
    ``data/README.md``) run twice with ``anionmotion md``; ``report --example`` reports the UC run and
    compares it with the RC run (``<out>/RC/``, ``<out>/compare/``).

    Parameters
    ----------
    mode : {"UC", "RC"}, default "UC"
        Constraint mode of the run (case-insensitive): ``"UC"`` unconstrained, 20 ps stored every 10 fs
        (2001 frames) with velocities; ``"RC"`` anion rotations restrained, 30 ps stored every 100 fs
        (301 frames), positions only.  Passed to :func:`anionmotion._example.example_path`.

    Returns
    -------
    str
        Path of the AMBER-convention NetCDF file; its ``constraint_mode`` attribute is ``mode``.

    Raises
    ------
    OptionError
        When ``mode`` is not one of the example's modes.
    FileNotFoundError
        When this installation carries no example trajectory.
    """
    from .._example import example_path as _path

    return _path(mode)
