"""Polyanion kernels (SPEC §4): façade over ``ext/_polyanion.pyx`` with numpy twins.

The compiled functions and their ``*_ref`` twins share one IN/OUT contract;
the façades below validate input, allocate the outputs and pick one of them.
"""

from __future__ import annotations

import numpy as np

from .._validate import as_array
from ._loader import load_ext
from .pbc import minimum_image_ref

__all__ = [
    "half_widths2", "ligand_vectors", "ligand_vectors_ref", "pair_vectors", "pair_vectors_ref",
    "normalize_vectors", "normalize_vectors_ref", "fill_components", "fill_components_ref",
]

_poly = load_ext("_polyanion")


def half_widths2(cells):
    """(min interplanar spacing / 2)² of each cell, Å², shape (n_frames,).

    A vector shorter than half the narrowest width of the cell has all its
    fractional components in (−½, ½), so rounding them gives the minimum image.
    """
    cells = np.asarray(cells, dtype=np.float64)
    inv = np.linalg.inv(cells)
    # interplanar spacing h_k = 1 / |column k of H⁻¹| (reciprocal vectors are the columns of H⁻¹)
    h = 1.0 / np.linalg.norm(inv, axis=-2)
    return np.ascontiguousarray((0.5 * h.min(axis=-1)) ** 2)


def _mi_frames(d, cells):
    out = np.empty_like(d)
    for t in range(d.shape[0]):
        out[t] = minimum_image_ref(d[t], cells[t])
    return out


def ligand_vectors_ref(pos, cells, inv_cells, half_width2, centers, ligands, out):
    """Numpy twin of :func:`ligand_vectors` (same IN/OUT contract)."""
    lig = np.where(ligands < 0, 0, ligands)
    d = pos[:, lig, :] - pos[:, centers, None, :]
    n_t, n_a, n_l = d.shape[:3]
    v = _mi_frames(d.reshape(n_t, n_a * n_l, 3), cells).reshape(d.shape)
    v[:, ligands < 0, :] = np.nan
    out[...] = v


def ligand_vectors(positions, cells, centers, ligands, *, use_ext=True):
    """Minimum-image vectors from each centre to each of its ligands.

    Parameters
    ----------
    positions : ndarray, shape (n_frames, n_atoms, 3), float64, Å
    cells : ndarray, shape (n_frames, 3, 3), float64, Å (rows a, b, c)
    centers : ndarray, shape (n_anions,), int
        Atom index (column of ``positions``) of each reference atom.
    ligands : ndarray, shape (n_anions, n_lig), int
        Atom indices of the ligands; −1 pads anions with fewer ligands.
    use_ext : bool
        Compiled kernel (True) or numpy twin.

    Returns
    -------
    ndarray, shape (n_frames, n_anions, n_lig, 3), float64, Å
        NaN where ``ligands`` is −1.
    """
    pos = as_array(positions, "positions", shape=(None, None, 3))
    cells = as_array(cells, "cells", shape=(pos.shape[0], 3, 3))
    centers = as_array(centers, "centers", shape=(None,), dtype=np.int64)
    ligands = as_array(ligands, "ligands", shape=(len(centers), None), dtype=np.int64)
    n_atoms = pos.shape[1]
    for name, arr in (("centers", centers), ("ligands", ligands)):
        if arr.size and (arr.max() >= n_atoms or arr.min() < (0 if name == "centers" else -1)):
            raise ValueError(f"{name} index out of range for {n_atoms} atoms")
    out = np.empty((pos.shape[0], len(centers), ligands.shape[1], 3))
    if out.size == 0:
        return out
    inv = np.ascontiguousarray(np.linalg.inv(cells))
    hw = half_widths2(cells)
    (_poly.ligand_vectors if use_ext else ligand_vectors_ref)(pos, cells, inv, hw, centers, ligands, out)
    return out


def pair_vectors_ref(pos, cells, inv_cells, half_width2, first, second, out):
    """Numpy twin of :func:`pair_vectors`."""
    out[...] = _mi_frames(pos[:, second, :] - pos[:, first, :], cells)


def pair_vectors(positions, cells, first, second, *, use_ext=True):
    """Minimum-image vectors r_j − r_i (Å) for atom pairs (first[p], second[p]) in every frame.

    Returns
    -------
    ndarray, shape (n_frames, n_pairs, 3), float64, Å
    """
    pos = as_array(positions, "positions", shape=(None, None, 3))
    cells = as_array(cells, "cells", shape=(pos.shape[0], 3, 3))
    first = as_array(first, "first", shape=(None,), dtype=np.int64)
    second = as_array(second, "second", shape=(len(first),), dtype=np.int64)
    n_atoms = pos.shape[1]
    for name, arr in (("first", first), ("second", second)):
        if arr.size and (arr.max() >= n_atoms or arr.min() < 0):
            raise ValueError(f"{name} index out of range for {n_atoms} atoms")
    out = np.empty((pos.shape[0], len(first), 3))
    if out.size == 0:
        return out
    inv = np.ascontiguousarray(np.linalg.inv(cells))
    (_poly.pair_vectors if use_ext else pair_vectors_ref)(pos, cells, inv, half_widths2(cells), first, second, out)
    return out


def normalize_vectors_ref(u):
    """Numpy twin of :func:`normalize_vectors` (in place)."""
    r = np.linalg.norm(u, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        u /= np.where(r > 0, r, np.nan)


def normalize_vectors(u, *, use_ext=True):
    """Unit vectors of ``u`` (n_frames, n_vec, 3); returns a new array (zero vectors → NaN)."""
    u = as_array(u, "u", shape=(None, None, 3), copy=True)
    if u.size:
        (_poly.normalize_vectors if use_ext else normalize_vectors_ref)(u)
    return u


def fill_components_ref(u, v0, c1buf, c2buf):
    """Numpy twin of :func:`fill_components`."""
    nb = c1buf.shape[0] // 3
    n = u.shape[0]
    blk = u[:, v0:v0 + nb, :]                      # (n, nb, 3)
    c1buf[:, :n] = blk.transpose(1, 2, 0).reshape(3 * nb, n)
    x, y, z = blk[..., 0], blk[..., 1], blk[..., 2]
    prods = np.stack([x * x, y * y, z * z, x * y, x * z, y * z], axis=-1)  # (n, nb, 6)
    c2buf[:, :n] = prods.transpose(1, 2, 0).reshape(6 * nb, n)


def fill_components(u, v0, c1buf, c2buf, *, use_ext=True):
    """Fill zero-padded FFT buffers with u_k (3 rows per vector) and u_k u_l (6 rows per vector).

    ``c1buf`` (3 n_block, n_pad) and ``c2buf`` (6 n_block, n_pad) are
    overwritten in columns [0, n_frames); the padding must already be zero.
    """
    (_poly.fill_components if use_ext else fill_components_ref)(u, int(v0), c1buf, c2buf)
