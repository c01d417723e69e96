"""Lazy OpenMM import shared by the ``anionmotion.md`` modules (STYLE §4, §9)."""

from __future__ import annotations

import numpy as np

__all__ = ["need_openmm", "strip_nm"]

_MESSAGE = "anionmotion.md needs OpenMM: pip install 'anionmotion[md]'"


def need_openmm():
    """Import and return the ``openmm`` module, or raise ImportError with the install command."""
    try:
        import openmm
    except ImportError as err:
        raise ImportError(_MESSAGE) from err
    return openmm


def strip_nm(x, name="positions"):
    """Plain float64 ndarray in nm from an OpenMM Quantity (any length unit) or an array already in nm."""
    if hasattr(x, "value_in_unit"):
        openmm = need_openmm()
        x = x.value_in_unit(openmm.unit.nanometer)
    try:
        arr = np.array([[float(c) for c in v] for v in x], dtype=np.float64) if _is_vec3_list(x) \
            else np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an OpenMM Quantity or an array of numbers in nm; got {type(x).__name__}") \
            from err
    return np.ascontiguousarray(arr)


def _is_vec3_list(x):
    return isinstance(x, (list, tuple)) and len(x) > 0 and type(x[0]).__name__ == "Vec3"
