"""Unwrapping kernels (SPEC §1): façade over ``ext/_unwrap.pyx`` with numpy twins."""

from __future__ import annotations

import numpy as np

from .._validate import as_array
from ._loader import load_ext

__all__ = [
    "unwrap_fractional", "unwrap_fractional_ref", "unwrap_fractional_summary",
    "cart_to_frac", "cart_to_frac_ref", "frac_to_cart", "frac_to_cart_ref",
    "inverse_cells",
]

_unwrap = load_ext("_unwrap")


def unwrap_fractional_ref(frac, prev_wrapped, prev_unwrapped, out, max_jump):
    """Numpy twin of the compiled kernel (same IN/OUT contract)."""
    d = np.diff(np.concatenate([prev_wrapped[None], frac]), axis=0)
    d -= np.rint(d)
    out[...] = prev_unwrapped[None] + np.cumsum(d, axis=0)
    max_jump[...] = np.abs(d).max(axis=2) if d.size else 0.0
    if len(frac):
        prev_wrapped[...] = frac[-1]
        prev_unwrapped[...] = out[-1]


def unwrap_fractional(frac, prev_wrapped=None, prev_unwrapped=None, *, use_ext=True, out=None):
    """Unwrap fractional coordinates frame to frame.

    Parameters
    ----------
    frac : ndarray, shape (n_frames, n_atoms, 3), float64
        Wrapped fractional coordinates.
    prev_wrapped, prev_unwrapped : ndarray, shape (n_atoms, 3), float64, optional
        State after the previous chunk (updated in place); None starts at
        ``frac[0]`` (the first frame is taken as it is).
    use_ext : bool
        Use the compiled kernel (True) or the numpy twin.
    out : ndarray, shape (n_frames, n_atoms, 3), float64, C-contiguous, optional
        Where to write the result; may be ``frac`` itself (unwrapping in
        place, no second array of the chunk's size).

    Returns
    -------
    out : ndarray, shape (n_frames, n_atoms, 3)
        Unwrapped fractional coordinates (``out`` when given).
    max_jump : ndarray, shape (n_frames, n_atoms)
        max_k |Δs_k − round(Δs_k)| for each frame and atom.

    Notes
    -----
    s(t) = s(t−1) + (Δs − round(Δs)) (SPEC §1).
    """
    frac = as_array(frac, "frac", shape=(None, None, 3))
    n_atoms = frac.shape[1]
    if prev_wrapped is None:
        prev_wrapped = frac[0].copy() if len(frac) else np.zeros((n_atoms, 3))
        prev_unwrapped = prev_wrapped.copy()
    else:
        prev_wrapped = as_array(prev_wrapped, "prev_wrapped", shape=(n_atoms, 3))
        prev_unwrapped = as_array(prev_unwrapped, "prev_unwrapped", shape=(n_atoms, 3))
    out = _out(out, frac.shape, "out")
    jump = np.zeros(frac.shape[:2])
    if use_ext:
        # the compiled loop reads each element before writing it: out may alias frac
        _unwrap.unwrap_fractional(frac, prev_wrapped, prev_unwrapped, out, jump)
    else:
        unwrap_fractional_ref(frac.copy() if np.shares_memory(frac, out) else frac, prev_wrapped, prev_unwrapped,
                              out, jump)
    return out, jump


JUMP_BLOCK_BYTES = 1 << 20
"""Largest jump table (bytes) :func:`unwrap_fractional_summary` holds at once."""


def unwrap_fractional_summary(frac, prev_wrapped, prev_unwrapped, limit, *, out=None, use_ext=True):
    """:func:`unwrap_fractional` without the (n_frames, n_atoms) jump table: only what a warning needs.

    The frames are unwrapped in blocks whose jump table is at most
    :data:`JUMP_BLOCK_BYTES` (the compiled kernel is sequential in time, so
    the unwrapped numbers are bit for bit those of one call).

    Parameters
    ----------
    frac, prev_wrapped, prev_unwrapped, out, use_ext :
        As :func:`unwrap_fractional` (``prev_*`` are required and updated in place).
    limit : float
        Jumps larger than this (fraction of a cell vector) are counted.

    Returns
    -------
    out : ndarray, shape (n_frames, n_atoms, 3)
        Unwrapped fractional coordinates.
    summary : tuple (n_over, frame, atom, largest)
        Number of (frame, atom) pairs whose jump exceeds ``limit``, and the
        frame (0-based in ``frac``), atom and value of the largest jump (the
        first one in frame-then-atom order, as ``np.argmax`` of the table);
        ``(0, 0, 0, 0.0)`` when there are no frames or atoms.
    """
    frac = as_array(frac, "frac", shape=(None, None, 3))
    n, n_atoms = frac.shape[:2]
    out = _out(out, frac.shape, "out")
    n_over, best_t, best_i, best = 0, 0, 0, -np.inf
    step = max(1, JUMP_BLOCK_BYTES // (8 * max(n_atoms, 1)))
    for t0 in range(0, n, step):
        t1 = min(n, t0 + step)
        _, jump = unwrap_fractional(frac[t0:t1], prev_wrapped, prev_unwrapped, use_ext=use_ext, out=out[t0:t1])
        if jump.size == 0:
            continue
        n_over += int(np.count_nonzero(jump > limit))
        k = int(np.argmax(jump))
        if jump.flat[k] > best:
            best = float(jump.flat[k])
            best_t, best_i = divmod(k, n_atoms)
            best_t += t0
    if best == -np.inf:
        best = 0.0
    return out, (n_over, best_t, best_i, best)


def _out(out, shape, name):
    """A float64 C-contiguous output array of ``shape``: ``out`` checked, or a new one."""
    if out is None:
        return np.empty(shape)
    if not isinstance(out, np.ndarray) or out.dtype != np.float64 or out.shape != tuple(shape) \
            or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"{name} must be a writeable C-contiguous float64 array of shape {tuple(shape)}")
    return out


def inverse_cells(cells):
    """Inverses of a stack of row-vector cells, shape (n, 3, 3)."""
    return np.ascontiguousarray(np.linalg.inv(cells))


def cart_to_frac_ref(pos, inv_cells, out):
    """Numpy twin of ``_unwrap.cart_to_frac``: out = pos · H⁻¹ frame by frame (``out`` must not alias ``pos``)."""
    np.einsum("tik,tkl->til", pos, inv_cells, out=out)


def frac_to_cart_ref(frac, cells, out):
    """Numpy twin of ``_unwrap.frac_to_cart``: out = s · H frame by frame (``out`` must not alias ``frac``)."""
    np.einsum("tik,tkl->til", frac, cells, out=out)


def cart_to_frac(pos, cells, *, use_ext=True, out=None):
    """Fractional coordinates s = r·H⁻¹ of Cartesian positions (Å) in cells (n_frames, 3, 3).

    ``out`` (float64, C-contiguous, the shape of ``pos``) receives the result
    and may be ``pos`` itself (conversion in place).
    """
    pos = as_array(pos, "positions", shape=(None, None, 3))
    cells = as_array(cells, "cells", shape=(pos.shape[0], 3, 3))
    out = _out(out, pos.shape, "out")
    if use_ext:  # each atom's x, y, z are read before its row is written: in place is safe
        _unwrap.cart_to_frac(pos, inverse_cells(cells), out)
    else:
        cart_to_frac_ref(pos.copy() if np.shares_memory(pos, out) else pos, inverse_cells(cells), out)
    return out


def frac_to_cart(frac, cells, *, use_ext=True, out=None):
    """Cartesian positions r = s·H (Å) of fractional coordinates in cells (n_frames, 3, 3).

    ``out`` (float64, C-contiguous, the shape of ``frac``) receives the result
    and may be ``frac`` itself (conversion in place).
    """
    frac = as_array(frac, "frac", shape=(None, None, 3))
    cells = as_array(cells, "cells", shape=(frac.shape[0], 3, 3))
    out = _out(out, frac.shape, "out")
    if use_ext:
        _unwrap.frac_to_cart(frac, cells, out)
    else:
        frac_to_cart_ref(frac.copy() if np.shares_memory(frac, out) else frac, cells, out)
    return out
