"""Locate the embedded example trajectory (``report --example``, the docs).

The file ships as package data (``anionmotion/data/example_li2so4_uc.nc``,
declared in ``pyproject.toml`` ``[tool.setuptools.package-data]``), so it is
found the same way in a source checkout and in an installed wheel.  The
top-level ``data/README.md`` documents how it was generated.
"""

from __future__ import annotations

import os

__all__ = ["EXAMPLE_NAME", "example_path", "example_report_path"]

EXAMPLE_NAME = "example_li2so4_uc.nc"
"""α-Li2SO4-like model (generic demonstration model), 3×3×3 cells (756 atoms), UC, 1000 K, 3 ps, 10 fs/frame."""

_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def example_path() -> str:
    """Path of the example trajectory (AMBER NetCDF with velocities, ``constraint_mode = "UC"``).

    Raises
    ------
    FileNotFoundError
        When the package was installed without its data files.
    """
    p = os.path.join(_DATA, EXAMPLE_NAME)
    if not os.path.exists(p):
        raise FileNotFoundError(f"{p}: the example trajectory is missing from this installation "
                                "(reinstall anionmotion with its package data)")
    return p


def example_report_path() -> str:
    """Path of the constraint report (JSON) written when the example was generated."""
    return os.path.join(_DATA, EXAMPLE_NAME.replace(".nc", ".constraints.json"))
