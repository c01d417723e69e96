"""Polyanion kernels (SPEC §4): façade over ``ext/_polyanion.pyx`` with numpy twins.

The compiled functions and their ``*_ref`` twins share one IN/OUT contract;
the façades below validate input, allocate the outputs and pick one of them.
"""

from __future__ import annotations

import math

import numpy as np

from .._validate import as_array
from ._loader import load_ext
from .pbc import minimum_image_ref

__all__ = [
    "half_widths2", "ligand_vectors", "ligand_vectors_ref", "pair_vectors", "pair_vectors_ref",
    "normalize_vectors", "normalize_vectors_ref", "fill_components", "fill_components_ref",
    "CUBIC_HARMONICS", "CUBIC_HARMONIC_NORM", "cubic_harmonic", "rotor_sums", "state_scores",
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


# ----------------------------------------------------------------------------- rotor functions, orientation states
#: Cubic harmonics K_l on the unit sphere, normalised to ⟨K_l²⟩ = 1 over the sphere (l = 3, 4, 6).
#: K_3 ∝ xyz (invariant under the Td group of the lab axes up to sign under the other Oh elements);
#: K_4 ∝ x⁴ + y⁴ + z⁴ − 3/5 and K_6 ∝ x²y²z² + (x⁴ + y⁴ + z⁴ − 3/5)/22 − 1/105 (invariant under Oh).
CUBIC_HARMONIC_NORM = {3: math.sqrt(105.0), 4: 1.25 * math.sqrt(21.0), 6: math.sqrt(693693.0 / 32.0)}
CUBIC_HARMONICS = tuple(sorted(CUBIC_HARMONIC_NORM))


def cubic_harmonic(u, l):
    """Cubic harmonic K_l(u) of unit vectors ``u`` (…, 3), normalised to unit mean square over the sphere.

    Parameters
    ----------
    u : ndarray, shape (..., 3)
        Unit vectors in the lab (Cartesian) frame; NaN rows give NaN.
    l : {3, 4, 6}

    Returns
    -------
    ndarray, shape (...,), dimensionless

    Notes
    -----
    K_3 = √105 xyz; K_4 = (5√21/4)(x⁴ + y⁴ + z⁴ − 3/5);
    K_6 = √(693693/32) (x²y²z² + (x⁴ + y⁴ + z⁴ − 3/5)/22 − 1/105).  K_6 is the
    Gram–Schmidt orthogonalisation of x²y²z² against 1 and K_4 with the exact
    sphere moments (the Oh-invariant polynomials of degree ≤ 6 on the sphere
    span l = 0, 4 and 6 once each), so it is the pure l = 6 invariant.
    """
    u = np.asarray(u, dtype=np.float64)
    x, y, z = u[..., 0], u[..., 1], u[..., 2]
    if l == 3:
        return CUBIC_HARMONIC_NORM[3] * x * y * z
    x2, y2, z2 = x * x, y * y, z * z
    s4 = x2 * x2 + y2 * y2 + z2 * z2 - 0.6
    if l == 4:
        return CUBIC_HARMONIC_NORM[4] * s4
    if l == 6:
        return CUBIC_HARMONIC_NORM[6] * (x2 * y2 * z2 + s4 / 22.0 - 1.0 / 105.0)
    raise ValueError(f"cubic harmonic l must be one of {CUBIC_HARMONICS}; got {l}")


def rotor_sums(u, n_valid, ls):
    """Rotor functions F_l = Σ_k K_l(u_k) over the ligands of every anion.

    Parameters
    ----------
    u : ndarray, shape (n_frames, n_anions, n_lig, 3)
        Unit centre→ligand vectors (rows k ≥ ``n_valid[a]`` are padding and ignored).
    n_valid : ndarray, shape (n_anions,), int
    ls : sequence of int
        Harmonic degrees (see :func:`cubic_harmonic`).

    Returns
    -------
    ndarray, shape (n_frames, n_anions, len(ls)), dimensionless
        Invariant under any permutation of an anion's ligands (a sum over them).
    """
    u = np.asarray(u, dtype=np.float64)
    mask = np.arange(u.shape[2])[None, :] < np.asarray(n_valid)[:, None]            # (A, L)
    out = np.empty(u.shape[:2] + (len(ls),))
    for h, l in enumerate(ls):
        out[..., h] = np.where(mask[None], np.nan_to_num(cubic_harmonic(u, l)), 0.0).sum(axis=2)
    return out


def state_scores(u, u0, perms, n_valid):
    """Mean cosine between each anion's ligands and every reference orientation, per frame.

    Parameters
    ----------
    u : ndarray, shape (n_frames, n_anions, n_lig, 3)
        Unit vectors (padding rows ignored).
    u0 : ndarray, shape (n_anions, n_lig, 3)
        Reference (site) directions.
    perms : ndarray, shape (n_anions, n_states, n_lig), int
        Reference orientation g of anion a puts ligand k on site ``perms[a, g, k]``; padding ligands map to
        themselves, padding states are −1 rows.
    n_valid : ndarray, shape (n_anions,), int

    Returns
    -------
    ndarray, shape (n_frames, n_anions, n_states)
        (1/n_a) Σ_k u_k · u0_{perm(k)} ∈ [−1, 1]; −inf for padding states.  The lab-frame RMS distance to a
        reference is √(2 − 2 × this).
    """
    u = np.nan_to_num(np.asarray(u, dtype=np.float64))
    u0 = np.nan_to_num(np.asarray(u0, dtype=np.float64))
    perms = np.asarray(perms)
    A, G, L = perms.shape
    cos = np.einsum("takx,ajx->takj", u, u0)                                         # (T, A, L, L)
    p = np.where(perms < 0, 0, perms)
    a_idx = np.arange(A)[:, None, None]
    k_idx = np.arange(L)[None, None, :]
    valid = (np.arange(L)[None, :] < np.asarray(n_valid)[:, None])[:, None, :]       # (A, 1, L)
    s = np.where(valid[None], cos[:, a_idx, k_idx, p], 0.0).sum(axis=3)               # (T, A, G)
    s /= np.maximum(np.asarray(n_valid), 1)[None, :, None]
    return np.where((perms[:, :, 0] < 0)[None], -np.inf, s)
