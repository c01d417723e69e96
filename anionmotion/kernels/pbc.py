"""Periodic-boundary helpers: minimum-image vectors in triclinic cells.

The numpy functions here are the reference implementations; compiled
variants (``ext/_pbc.pyx``) are added next to them with the same contract.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["minimum_image_ref", "minimum_image_bruteforce"]

_SHIFTS = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=np.float64)  # (27, 3)


def minimum_image_ref(d, cell):
    """Minimum-image displacement vectors in a (possibly triclinic) cell.

    Parameters
    ----------
    d : ndarray, shape (..., 3), float64, Å
        Displacement vectors.
    cell : ndarray, shape (3, 3), float64, Å
        Rows are the lattice vectors a, b, c.

    Returns
    -------
    ndarray, shape (..., 3), Å
        For each vector, the periodic image of smallest length.

    Notes
    -----
    The vector is first reduced to fractional components in [-0.5, 0.5); the
    shortest of its 27 neighbouring images is then taken, which is exact for
    any cell whose reduced vectors are not extremely skewed (every cell a
    LAMMPS/VASP/CP2K run uses).
    """
    d = np.asarray(d, dtype=np.float64)
    cell = np.asarray(cell, dtype=np.float64)
    s = d @ np.linalg.inv(cell)
    s -= np.rint(s)
    best = s @ cell
    best_r2 = np.einsum("...k,...k->...", best, best)
    for shift in _SHIFTS:
        if not shift.any():
            continue
        cand = (s + shift) @ cell
        r2 = np.einsum("...k,...k->...", cand, cand)
        better = r2 < best_r2
        if np.any(better):
            best = np.where(better[..., None], cand, best)
            best_r2 = np.where(better, r2, best_r2)
    return best


def minimum_image_bruteforce(d, cell, n=2):
    """Oracle: shortest image of ``d`` over all integer shifts in [-n, n]³ (slow; for tests)."""
    d = np.asarray(d, dtype=np.float64)
    cell = np.asarray(cell, dtype=np.float64)
    shifts = np.array(list(itertools.product(range(-n, n + 1), repeat=3)), dtype=np.float64) @ cell
    cand = d[..., None, :] + shifts
    r2 = np.einsum("...sk,...sk->...s", cand, cand)
    idx = np.argmin(r2, axis=-1)
    return np.take_along_axis(cand, np.broadcast_to(idx[..., None, None], idx.shape + (1, 3)), axis=-2)[..., 0, :]
