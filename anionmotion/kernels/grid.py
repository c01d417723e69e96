"""Fractional-grid binning (SPEC §7): façade over ``ext/_grid.pyx`` with numpy twins."""

from __future__ import annotations

import numpy as np

from .._validate import as_array
from ..errors import OptionError
from ._loader import load_ext

__all__ = ["bin_fractional", "bin_fractional_ref", "bin_axis", "bin_axis_ref"]

_grid = load_ext("_grid")


def _weights(weights, n_frames):
    if weights is None:
        return np.ones(n_frames)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 0:
        return np.full(n_frames, float(w))
    return as_array(w, "weights", shape=(n_frames,))


def bin_fractional_ref(frac, weights, grid):
    """Numpy twin of the compiled kernel (same IN/OUT contract)."""
    shape = np.array(grid.shape)
    s = frac - np.floor(frac)
    idx = np.minimum((s * shape).astype(np.int64), shape - 1)
    flat = np.ravel_multi_index((idx[..., 0].ravel(), idx[..., 1].ravel(), idx[..., 2].ravel()), grid.shape)
    w = np.repeat(weights, frac.shape[1])
    grid += np.bincount(flat, weights=w, minlength=grid.size).reshape(grid.shape)


def bin_fractional(frac, shape=None, *, weights=None, out=None, use_ext=True):
    """Accumulate wrapped fractional positions on a grid.

    Parameters
    ----------
    frac : ndarray, shape (n_frames, n_atoms, 3), float64
        Fractional coordinates (wrapped into [0, 1) here).
    shape : tuple of 3 int
        Grid points along a, b, c (ignored when ``out`` is given).
    weights : float or ndarray, shape (n_frames,), optional
        Weight added per atom in each frame (default 1: counts).
    out : ndarray, shape (nx, ny, nz), float64, optional
        Grid to accumulate into (in place).

    Returns
    -------
    ndarray, shape (nx, ny, nz), float64
        Σ_t w_t · (number of atoms of frame t in each voxel).
    """
    frac = as_array(frac, "frac", shape=(None, None, 3))
    if out is None:
        if shape is None or len(shape) != 3 or min(int(n) for n in shape) < 1:
            raise OptionError(f"grid shape must be three positive integers; got {shape}")
        out = np.zeros(tuple(int(n) for n in shape))
    elif out.dtype != np.float64 or out.ndim != 3 or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous float64 array of shape (nx, ny, nz)")
    w = _weights(weights, frac.shape[0])
    (_grid.bin_fractional if use_ext else bin_fractional_ref)(frac, w, out)
    return out


def bin_axis_ref(frac, axis, weights, hist):
    """Numpy twin of the compiled 1-D kernel."""
    nb = len(hist)
    s = frac[..., axis] - np.floor(frac[..., axis])
    idx = np.minimum((s * nb).astype(np.int64), nb - 1)
    hist += np.bincount(idx.ravel(), weights=np.repeat(weights, frac.shape[1]), minlength=nb)


def bin_axis(frac, axis, n_bins=None, *, weights=None, out=None, use_ext=True):
    """Histogram of wrapped fractional coordinate ``axis`` (0 = a, 1 = b, 2 = c).

    Returns
    -------
    ndarray, shape (n_bins,), float64
        Σ_t w_t · (number of atoms of frame t in each slab).
    """
    frac = as_array(frac, "frac", shape=(None, None, 3))
    if axis not in (0, 1, 2):
        raise OptionError(f"invalid axis {axis!r}; choose one of 0, 1, 2 (a, b, c)")
    if out is None:
        if n_bins is None or int(n_bins) < 1:
            raise OptionError(f"n_bins must be a positive integer; got {n_bins}")
        out = np.zeros(int(n_bins))
    w = _weights(weights, frac.shape[0])
    (_grid.bin_axis if use_ext else bin_axis_ref)(frac, int(axis), w, out)
    return out
