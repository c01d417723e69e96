"""Periodic-boundary helpers: triclinic minimum image and pair-distance histograms (SPEC §7).

Façade over ``ext/_pbc.pyx``.  The numpy functions are the reference
implementations and test oracles (``*_ref``; ``minimum_image_bruteforce`` and
``distance_histogram_ref`` search every periodic image explicitly).
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._validate import as_array
from ..errors import OptionError
from ._loader import load_ext

__all__ = ["minimum_image", "minimum_image_ref", "minimum_image_bruteforce", "perpendicular_widths",
           "distance_matrix", "distance_matrix_ref", "distance_histogram", "distance_histogram_ref",
           "cell_list_shape", "min_image_triclinic_ref", "distances_min_image_ref", "histogram_pairs_ref",
           "histogram_pairs_frames_ref"]

_pbc = load_ext("_pbc")

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


# ---------------------------------------------------------------- numpy twins of the compiled kernels
def _shortest_of_27(s, cell):
    """Shortest image among the 27 neighbours of fractional vectors ``s`` (..., 3) reduced to [−½, ½]:
    the kernels' search, in their order and arithmetic (the first strictly shorter image wins)."""
    best = np.full(s.shape, np.nan)
    best_r2 = np.full(s.shape[:-1], 1e300)
    for i in (-1, 0, 1):
        a = s[..., 0] + i
        for j in (-1, 0, 1):
            b = s[..., 1] + j
            for k in (-1, 0, 1):
                c = s[..., 2] + k
                x = a * cell[0, 0] + b * cell[1, 0] + c * cell[2, 0]
                y = a * cell[0, 1] + b * cell[1, 1] + c * cell[2, 1]
                z = a * cell[0, 2] + b * cell[1, 2] + c * cell[2, 2]
                r2 = x * x + y * y + z * z
                better = r2 < best_r2
                best_r2 = np.where(better, r2, best_r2)
                best = np.where(better[..., None], np.stack([x, y, z], axis=-1), best)
    return best


def min_image_triclinic_ref(d, cells, inv, out):
    """Numpy twin of ``_pbc.min_image_triclinic`` (same IN/OUT contract: (T, n, 3) vectors, (T, 3, 3)
    cells and inverses)."""
    for t in range(d.shape[0]):
        x, y, z = d[t, :, 0], d[t, :, 1], d[t, :, 2]
        iv = inv[t]
        s = np.stack([x * iv[0, 0] + y * iv[1, 0] + z * iv[2, 0],
                      x * iv[0, 1] + y * iv[1, 1] + z * iv[2, 1],
                      x * iv[0, 2] + y * iv[1, 2] + z * iv[2, 2]], axis=-1)
        s -= np.rint(s)
        out[t] = _shortest_of_27(s, cells[t])


def distances_min_image_ref(frac_a, frac_b, cell, out):
    """Numpy twin of ``_pbc.distances_min_image`` (fractional a (na, 3), b (nb, 3); OUT (na, nb) Å)."""
    s = frac_b[None, :, :] - frac_a[:, None, :]
    s -= np.rint(s)
    v = _shortest_of_27(s, cell)
    out[...] = np.sqrt(v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1] + v[..., 2] * v[..., 2])


def histogram_pairs_ref(frac_a, frac_b, cell, self_idx, n_cells, reach, rmax, half, hist):
    """Numpy twin of ``_pbc.histogram_pairs``: every pair, no cell list (``n_cells`` and ``reach`` only
    steer the kernel's search and do not change the result).

    Same contract: coordinates wrapped into [0, 1), minimum image by rounding the fractional difference
    (exact for rmax ≤ half the smallest perpendicular width), pairs (i, j) with j > i when ``half``, else
    every j but ``self_idx[i]``; ``hist`` (int64) is incremented in place.
    """
    n_bins = len(hist)
    fa = frac_a - np.floor(frac_a)
    fb = frac_b - np.floor(frac_b)
    s = fb[None, :, :] - fa[:, None, :]
    s = np.where(s >= 0.5, s - 1.0, np.where(s < -0.5, s + 1.0, s))
    s0, s1, s2 = s[..., 0], s[..., 1], s[..., 2]
    x = s0 * cell[0, 0] + s1 * cell[1, 0] + s2 * cell[2, 0]
    y = s0 * cell[0, 1] + s1 * cell[1, 1] + s2 * cell[2, 1]
    z = s0 * cell[0, 2] + s1 * cell[1, 2] + s2 * cell[2, 2]
    r2 = x * x + y * y + z * z
    na, nb = r2.shape
    jj = np.arange(nb)[None, :]
    keep = (jj > np.arange(na)[:, None]) if half else (jj != np.asarray(self_idx)[:, None])
    keep &= r2 < rmax * rmax
    p = (np.sqrt(r2[keep]) * (n_bins / rmax)).astype(np.int64)
    hist += np.bincount(p[p < n_bins], minlength=n_bins)


def histogram_pairs_frames_ref(frac_a, frac_b, cells, self_idx, n_cells, reach, rmax, half, hist):
    """Numpy twin of ``_pbc.histogram_pairs_frames``: :func:`histogram_pairs_ref` summed over frames."""
    for t in range(frac_a.shape[0]):
        histogram_pairs_ref(frac_a[t], frac_b[t], cells[t], self_idx, n_cells[t], reach[t], rmax, half, hist)


def _threads():
    return max(1, min(2, os.cpu_count() or 1))


def perpendicular_widths(cell):
    """Distances between opposite faces of a cell, w_k = V / |a_j × a_l|, Å.

    Parameters
    ----------
    cell : ndarray, shape (3, 3) or (n, 3, 3), float64, Å (rows a, b, c)

    Returns
    -------
    ndarray, shape (3,) or (n, 3), Å
        A sphere of radius r fits in the periodic cell without touching its own
        images when r ≤ min(w)/2.
    """
    cell = np.asarray(cell, dtype=np.float64)
    a, b, c = cell[..., 0, :], cell[..., 1, :], cell[..., 2, :]
    vol = np.abs(np.einsum("...k,...k->...", a, np.cross(b, c)))
    areas = np.stack([np.linalg.norm(np.cross(b, c), axis=-1), np.linalg.norm(np.cross(c, a), axis=-1),
                      np.linalg.norm(np.cross(a, b), axis=-1)], axis=-1)
    return vol[..., None] / areas


def minimum_image(d, cell, *, use_ext=True):
    """Shortest periodic images of displacement vectors in triclinic cells (compiled).

    Parameters
    ----------
    d : ndarray, shape (..., 3), float64, Å
        Displacements.  With one cell per frame, shape (n_frames, ..., 3).
    cell : ndarray, shape (3, 3) or (n_frames, 3, 3), float64, Å
        Rows a, b, c.
    use_ext : bool
        Compiled kernel (True) or :func:`minimum_image_ref`.

    Returns
    -------
    ndarray, same shape as ``d``, Å

    Notes
    -----
    s = d·H⁻¹ is reduced to [−½, ½]³ and the shortest of the 27 neighbouring
    images is taken (exact for any cell not extremely skewed; tested against a
    search over [−2, 2]³ images).
    """
    d = as_array(d, "d")
    if d.ndim == 0 or d.shape[-1] != 3:
        raise ValueError(f"d must have shape (..., 3); got {d.shape}")
    cell = as_array(cell, "cell")
    if cell.shape == (3, 3):
        cells = cell[None]
        dd = d.reshape(1, -1, 3)
    elif cell.ndim == 3 and cell.shape[1:] == (3, 3) and d.ndim >= 2 and d.shape[0] == cell.shape[0]:
        cells = cell
        dd = d.reshape(d.shape[0], -1, 3)
    else:
        raise ValueError(f"cell must have shape (3, 3) or (n_frames, 3, 3) matching d's first axis; "
                         f"got cell {cell.shape} for d {d.shape}")
    if not use_ext:
        if cells.shape[0] == 1:
            return minimum_image_ref(d, cells[0])
        return np.stack([minimum_image_ref(dd[t], cells[t]) for t in range(len(cells))]).reshape(d.shape)
    inv = np.ascontiguousarray(np.linalg.inv(cells))
    out = np.empty_like(dd)
    _pbc.min_image_triclinic(np.ascontiguousarray(dd), np.ascontiguousarray(cells), inv, out)
    return out.reshape(d.shape)


def distance_matrix(pos_a, pos_b, cell, *, use_ext=True):
    """Minimum-image distances between two sets of positions in one cell.

    Parameters
    ----------
    pos_a : ndarray, shape (na, 3), float64, Å
    pos_b : ndarray, shape (nb, 3), float64, Å
    cell : ndarray, shape (3, 3), float64, Å (rows a, b, c)

    Returns
    -------
    ndarray, shape (na, nb), float64, Å
    """
    pos_a = as_array(pos_a, "pos_a", shape=(None, 3))
    pos_b = as_array(pos_b, "pos_b", shape=(None, 3))
    cell = as_array(cell, "cell", shape=(3, 3))
    if not use_ext:
        return distance_matrix_ref(pos_a, pos_b, cell)
    inv = np.linalg.inv(cell)
    out = np.empty((len(pos_a), len(pos_b)))
    _pbc.distances_min_image(np.ascontiguousarray(pos_a @ inv), np.ascontiguousarray(pos_b @ inv), cell, out)
    return out


def distance_matrix_ref(pos_a, pos_b, cell):
    """Numpy twin of :func:`distance_matrix`."""
    d = np.asarray(pos_b)[None, :, :] - np.asarray(pos_a)[:, None, :]
    return np.linalg.norm(minimum_image_ref(d, cell), axis=-1)


MAX_CELL_LIST_BINS = 1 << 21
"""Most cell-list bins of one frame (8 bytes each): a huge cell gets coarser bins, never an unbounded list."""


def _cap_bins(n, cap=MAX_CELL_LIST_BINS):
    """Halve the largest axis of each row of ``n`` (bins per axis) until the row's product is ≤ ``cap``.

    Coarser bins are always correct (each stays at least as wide as the search needs); they only cost more
    pair checks.  Works on float counts, so a 1e30 Å cell cannot overflow an integer.
    """
    n = np.array(n, dtype=np.float64, copy=True)
    flat = n.reshape(-1, 3)
    for row in flat:
        while np.prod(row) > cap:
            k = int(np.argmax(row))
            row[k] = max(1.0, np.floor(row[k] / 2))
    return flat.reshape(n.shape).astype(np.int64)


def cell_list_shape(cell, rmax, reach=1):
    """Cell-list bins per axis, n_k = ⌊reach · w_k / rmax⌋ (≥ 1), so every bin is at least rmax/reach wide
    (at most :data:`MAX_CELL_LIST_BINS` in all: wider bins for huge cells)."""
    w = perpendicular_widths(cell)
    return _cap_bins(np.maximum(1, np.floor(reach * w / rmax * (1 - 1e-12))))


def _cell_grid(widths, rmax):
    """Bins and search reach per axis: half-rmax bins searched ±2 when there are ≥ 5, else rmax bins ±1.

    Half-width bins cut the volume searched around each atom from 27 rmax³ to 15.6 rmax³.  The total number
    of bins per frame is capped at :data:`MAX_CELL_LIST_BINS` (coarser bins, still exact).
    """
    fine = np.floor(2 * np.asarray(widths, dtype=np.float64) / rmax * (1 - 1e-12))
    coarse = np.maximum(1, np.floor(np.asarray(widths, dtype=np.float64) / rmax * (1 - 1e-12)))
    use_fine = fine >= 5
    return _cap_bins(np.where(use_fine, fine, coarse)), np.where(use_fine, 2, 1).astype(np.int64)


def _replication(cell, rmax):
    """Repeats (m_a, m_b, m_c) of the cell so that rmax ≤ half the smallest width of the supercell."""
    w = perpendicular_widths(cell)
    return np.maximum(1, np.ceil(2 * rmax / w * (1 + 1e-12))).astype(np.int64)


def _frame_hist(frac_a, frac_b, cell, rmax, n_bins, same):
    """Histogram for one frame (fractional coordinates), replicating b when the cell is small."""
    hist = np.zeros(n_bins, dtype=np.int64)
    rep = _replication(cell, rmax)
    na = len(frac_a)
    if np.all(rep == 1):
        ncell, reach = _cell_grid(perpendicular_widths(cell), rmax)
        self_idx = np.full(na, -1, dtype=np.int64)
        _pbc.histogram_pairs(frac_a, frac_a if same else frac_b, cell, self_idx, ncell, reach, rmax, bool(same),
                             hist)
        if same:
            hist *= 2
        return hist
    # supercell made of rep copies of b (copy 0 = the original cell); a stays in copy 0
    shifts = np.array(list(itertools.product(*(range(int(m)) for m in rep))), dtype=np.float64)
    nb = len(frac_b)
    big_b = ((frac_b - np.floor(frac_b))[None, :, :] + shifts[:, None, :]) / rep
    big_b = np.ascontiguousarray(big_b.reshape(-1, 3))
    big_a = np.ascontiguousarray((frac_a - np.floor(frac_a)) / rep)
    big_cell = np.ascontiguousarray(cell * rep[:, None])
    self_idx = np.arange(na, dtype=np.int64) if same else np.full(na, -1, dtype=np.int64)
    ncell, reach = _cell_grid(perpendicular_widths(big_cell), rmax)
    _pbc.histogram_pairs(big_a, big_b, big_cell, self_idx, ncell, reach, rmax, False, hist)
    return hist


def distance_histogram(pos_a, pos_b, cells, *, rmax, n_bins, same=False, use_ext=True, threads=None):
    """Histogram of periodic pair distances r < rmax, summed over frames (compiled, cell lists).

    Parameters
    ----------
    pos_a : ndarray, shape (n_frames, na, 3), float64, Å
        Cartesian positions (wrapped or not; they are wrapped here).
    pos_b : ndarray, shape (n_frames, nb, 3), float64, Å
        Ignored when ``same`` (then the pairs are within ``pos_a``).
    cells : ndarray, shape (n_frames, 3, 3) or (3, 3), float64, Å (rows a, b, c)
    rmax : float, Å
        Histogram range [0, rmax).  Any value: when rmax exceeds half the
        smallest perpendicular cell width, ``b`` is replicated so every
        periodic image closer than rmax is counted.
    n_bins : int
        Equal-width bins.
    same : bool
        Pairs within one set: ordered pairs i ≠ j (each unordered pair counted twice).
    use_ext : bool
        Compiled kernel (True) or :func:`distance_histogram_ref`.
    threads : int, optional
        Frames processed concurrently (default: up to 2).

    Returns
    -------
    ndarray, shape (n_bins,), int64
        Number of (a, b-image) pairs per distance bin, summed over frames.
    """
    pos_a = as_array(pos_a, "pos_a", shape=(None, None, 3))
    n_frames = pos_a.shape[0]
    if same:
        pos_b = pos_a
    else:
        pos_b = as_array(pos_b, "pos_b", shape=(n_frames, None, 3))
    cells = as_array(cells, "cells")
    if cells.shape == (3, 3):
        cells = np.ascontiguousarray(np.broadcast_to(cells, (n_frames, 3, 3)))
    cells = as_array(cells, "cells", shape=(n_frames, 3, 3))
    if not (np.isfinite(rmax) and rmax > 0):
        raise OptionError(f"rmax must be a positive distance in Å; got {rmax}")
    n_bins = int(n_bins)
    if n_bins < 1:
        raise OptionError(f"n_bins must be a positive integer; got {n_bins}")
    if not use_ext:
        return distance_histogram_ref(pos_a, pos_b, cells, rmax=rmax, n_bins=n_bins, same=same)
    inv = np.linalg.inv(cells)
    frac_a = np.einsum("tik,tkl->til", pos_a, inv)
    frac_b = frac_a if same else np.einsum("tik,tkl->til", pos_b, inv)
    hist = np.zeros(n_bins, dtype=np.int64)
    if n_frames == 0:
        return hist
    widths = perpendicular_widths(cells)  # (T, 3)
    small = np.any(2 * rmax > widths * (1 + 1e-12), axis=1)
    for t in np.nonzero(small)[0]:  # cells smaller than 2·rmax: replicate b (every image counted)
        hist += _frame_hist(np.ascontiguousarray(frac_a[t]), np.ascontiguousarray(frac_b[t]),
                            np.ascontiguousarray(cells[t]), float(rmax), n_bins, same)
    frames = np.nonzero(~small)[0]
    if len(frames) == 0:
        return hist
    n_cells, reach = (np.ascontiguousarray(x) for x in _cell_grid(widths[frames], rmax))
    fa = np.ascontiguousarray(frac_a[frames])
    fb = fa if same else np.ascontiguousarray(frac_b[frames])
    cs = np.ascontiguousarray(cells[frames])
    self_idx = np.full(fa.shape[1], -1, dtype=np.int64)
    threads = _threads() if threads is None else max(1, int(threads))
    threads = min(threads, len(frames))

    def part(sl):
        h = np.zeros(n_bins, dtype=np.int64)
        _pbc.histogram_pairs_frames(fa[sl], fb[sl], cs[sl], self_idx, n_cells[sl], reach[sl], float(rmax),
                                    bool(same), h)
        return h

    bounds = np.linspace(0, len(frames), threads + 1).astype(int)
    slices = [slice(bounds[i], bounds[i + 1]) for i in range(threads)]
    if threads == 1:
        parts = [part(slices[0])]
    else:
        with ThreadPoolExecutor(threads) as ex:
            parts = list(ex.map(part, slices))
    h = np.sum(parts, axis=0, dtype=np.int64)
    if same:
        h *= 2
    return hist + h


def distance_histogram_ref(pos_a, pos_b, cells, *, rmax, n_bins, same=False):
    """Oracle for :func:`distance_histogram`: every image within rmax, by explicit search over shifts."""
    pos_a = np.asarray(pos_a, dtype=np.float64)
    pos_b = pos_a if same else np.asarray(pos_b, dtype=np.float64)
    cells = np.asarray(cells, dtype=np.float64)
    if cells.shape == (3, 3):
        cells = np.broadcast_to(cells, (len(pos_a), 3, 3))
    hist = np.zeros(n_bins, dtype=np.int64)
    for t in range(len(pos_a)):
        cell = cells[t]
        inv = np.linalg.inv(cell)
        w = perpendicular_widths(cell)
        n = np.ceil(rmax / w).astype(int) + 1
        shifts = np.array(list(itertools.product(*(range(-k, k + 1) for k in n))), dtype=np.float64)
        sa = pos_a[t] @ inv
        sb = pos_b[t] @ inv
        ds = sb[None, :, :] - sa[:, None, :]
        ds -= np.rint(ds)
        for sh in shifts:
            d = (ds + sh) @ cell
            r = np.sqrt(np.einsum("ijk,ijk->ij", d, d))
            if same:
                r = r[~(np.eye(len(sa), dtype=bool) & (not sh.any()))]
            r = r[r < rmax]
            idx = np.minimum((r * (n_bins / rmax)).astype(np.int64), n_bins - 1)
            hist += np.bincount(idx, minlength=n_bins)
    return hist
