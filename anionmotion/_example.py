"""Locate the embedded example trajectory (``report --example``, the docs).

The file lives in the repository's top-level ``data/`` folder (with
``data/README.md``, which documents how it was generated).  ``pyproject.toml``
maps that folder to the package ``anionmotion.data``, so an installed wheel
has it at ``anionmotion/data/``; a source checkout or an editable install
finds it in ``data/`` next to the package.
"""

from __future__ import annotations

import os

__all__ = ["EXAMPLE_NAME", "example_path", "example_report_path"]

EXAMPLE_NAME = "example_li2so4_uc.nc"
"""α-Li2SO4-like model (generic demonstration model), 3×3×3 cells (756 atoms), UC, 1000 K, 3 ps, 10 fs/frame."""

_HERE = os.path.dirname(os.path.abspath(__file__))
_CANDIDATES = (os.path.join(_HERE, "data"),                   # installed wheel: anionmotion/data/
               os.path.join(os.path.dirname(_HERE), "data"))  # checkout / editable install: data/


def _data_dir() -> str:
    for d in _CANDIDATES:
        if os.path.exists(os.path.join(d, EXAMPLE_NAME)):
            return d
    return _CANDIDATES[0]


def example_path() -> str:
    """Path of the example trajectory (AMBER NetCDF with velocities, ``constraint_mode = "UC"``).

    Raises
    ------
    FileNotFoundError
        When the package was installed without its data files.
    """
    p = os.path.join(_data_dir(), EXAMPLE_NAME)
    if not os.path.exists(p):
        raise FileNotFoundError(f"{p}: the example trajectory is missing from this installation "
                                "(reinstall anionmotion with its package data)")
    return p


def example_report_path() -> str:
    """Path of the constraint report (JSON) written when the example was generated."""
    return os.path.join(_data_dir(), EXAMPLE_NAME.replace(".nc", ".constraints.json"))
