"""Exact percolation levels of a periodic energy grid, and BVlain's bisected barriers derived from them.

BVlain (:meth:`bvlain.core.Lain.percolation_barriers`) finds the migration barrier of a BVSE grid by bisection:
at a probe level t it labels the region ``E − E_min < t`` (26-connectivity) in a 2×2×2 tiling of its grid with
periodic faces, and counts, for each component, how many of the 8 images of one of its points (translations by
one cell within the 2×2×2 block) lie in that component: 2 = 1-D, 4 = 2-D, 8 = 3-D percolation.  That count
is 2^r, r the rank over GF(2) of the component's *wrapping lattice* (the cell translations that join a point to
its own image) reduced modulo 2.  Each probe relabels the 8× larger grid and scans every component in Python:
~40 probes cost ~1 s for a 30-atom cell.

Here the same quantity is computed on the unit-cell grid: :func:`scipy.ndimage.label` (26-connectivity, not
periodic), then the boundary-crossing neighbour pairs (label a, label b, cell shift w ∈ {−1, 0, 1}³) go through a
small union-find whose offsets are kept modulo 2 (3-bit vectors, XOR), and every cycle adds its shift to the
component's subspace of GF(2)³ (kept as the 8-bit set of its elements).  The count is monotone in the level
(components only grow and merge), so the **exact** percolation level — the smallest grid energy e* such that
the region ``E − E_min ≤ e*`` percolates in d dimensions — is a binary search over the sorted grid energies.
BVlain's answer follows from e*: its predicate at a probe t is ``t > e*``, so its bisection (same floating-point
midpoints, same ``round(·, 4)``) is replayed exactly (:func:`bvlain_bisection`).  :func:`barriers_like_bvlain`
runs that bisection with the fast count at BVlain's own probes (fewer counts than the exact search; both give
the same numbers).

:func:`image_count_reference` is the plain twin: BVlain's construction (2×2×2 tiling, periodic labels, image
count of every open point) written with :mod:`scipy.sparse.csgraph` instead of its face loop.

Energies in eV.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["DIMENSION_IMAGES", "barriers_like_bvlain", "bvlain_bisection", "image_count", "image_count_reference",
           "percolation_levels"]

#: BVlain's image counts per dimensionality of percolation
DIMENSION_IMAGES = {"1D": 2, "2D": 4, "3D": 8}

_S26 = np.ones((3, 3, 3), dtype=bool)
#: the 13 neighbour offsets with a positive first non-zero component (each undirected 26-neighbour pair once)
_HALF = [o for o in itertools.product((-1, 0, 1), repeat=3) if o > (0, 0, 0)]


def _xor_closure(mask, v):
    """Subspace (8-bit set of the elements of GF(2)³) spanned by ``mask`` and the vector ``v`` (0..7)."""
    if v == 0 or (mask >> v) & 1:
        return mask
    out = mask
    for u in range(8):
        if (mask >> u) & 1:
            out |= 1 << (u ^ v)
    return out


def _crossing_pairs(labels):
    """(a, b, w) rows, without repeats: open cells of labels a and b that are 26-neighbours across the periodic
    boundary, w the cell shift from a's cell to b's modulo 2 (bit k set: an odd shift along axis k)."""
    n = labels.shape
    m = int(labels.max())
    rows = []
    for o in _HALF:
        nb = np.roll(labels, shift=tuple(-x for x in o), axis=(0, 1, 2))   # label of the neighbour at +o
        w = np.zeros(n, dtype=np.int64)
        for ax, oa in enumerate(o):
            if oa == 0:
                continue
            edge = [slice(None)] * 3
            edge[ax] = slice(n[ax] - 1, n[ax]) if oa == 1 else slice(0, 1)   # +o leaves the grid here
            w[tuple(edge)] |= 1 << ax
        sel = (w != 0) & (labels > 0) & (nb > 0)
        if sel.any():
            # one int64 key per (a, b, w), so that repeats go with one 1-D sort
            rows.append((labels[sel].astype(np.int64) * (m + 1) + nb[sel]) * 8 + w[sel])
    if not rows:
        return np.zeros((0, 3), dtype=np.int64)
    key = np.unique(np.concatenate(rows))
    ab, w = np.divmod(key, 8)
    a, b = np.divmod(ab, m + 1)
    return np.stack([a, b, w], axis=1)


def image_count(open_mask) -> int:
    """Largest number of the 8 images (cell translations by 0 or 1 along each axis) of a point that lie in its
    own component of the 2×2×2 periodic tiling of ``open_mask`` (26-connectivity): BVlain's
    ``_percolation_dimension``.  0 when nothing is open; 1 isolated, 2 1-D, 4 2-D, 8 3-D percolation."""
    from scipy import ndimage

    open_mask = np.asarray(open_mask, dtype=bool)
    if open_mask.ndim != 3:
        raise ValueError(f"open_mask must be 3-D; got shape {open_mask.shape}")
    labels, m = ndimage.label(open_mask, structure=_S26)
    if m == 0:
        return 0
    pairs = _crossing_pairs(labels)
    if len(pairs) == 0:
        return 1
    parent = list(range(m + 1))
    off = [0] * (m + 1)          # shift (mod 2, 3 bits) from a node to its parent
    space = [1] * (m + 1)        # the root's subspace of GF(2)^3 as an 8-bit set ({0} = 0b1)

    def find(x):
        s = 0
        path = []
        while parent[x] != x:
            path.append(x)
            s ^= off[x]
            x = parent[x]
        # path compression: every node on the path points at the root with its total offset
        acc = s
        for y in path:
            o = off[y]
            parent[y], off[y] = x, acc
            acc ^= o
        return x, s

    for a, b, w in pairs.tolist():
        ra, sa = find(a)
        rb, sb = find(b)
        # position(b) = position(a) + w  →  shift from rb to ra
        if ra == rb:
            space[ra] = _xor_closure(space[ra], sa ^ w ^ sb)
        else:
            parent[rb], off[rb] = ra, sa ^ w ^ sb
            sp = space[ra]
            for u in range(8):
                if (space[rb] >> u) & 1:
                    sp = _xor_closure(sp, u)
            space[ra] = sp
    best = max(space[r].bit_count() for r in range(1, m + 1) if parent[r] == r)
    return int(best)


def image_count_reference(open_mask) -> int:
    """Plain twin of :func:`image_count`: label the 2×2×2 tiling with periodic faces (26-connectivity, through
    :mod:`scipy.sparse.csgraph`) and count, for every open point of the cell, its images in its component."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    open_mask = np.asarray(open_mask, dtype=bool)
    if not open_mask.any():
        return 0
    big = np.tile(open_mask, (2, 2, 2))
    shape = big.shape
    idx = np.arange(big.size).reshape(shape)
    rows, cols = [], []
    for o in _HALF:
        nb_open = np.roll(big, shift=tuple(-x for x in o), axis=(0, 1, 2))
        nb_idx = np.roll(idx, shift=tuple(-x for x in o), axis=(0, 1, 2))
        sel = big & nb_open
        rows.append(idx[sel])
        cols.append(nb_idx[sel])
    r, c = np.concatenate(rows), np.concatenate(cols)
    g = coo_matrix((np.ones(len(r)), (r, c)), shape=(big.size, big.size))
    _, comp = connected_components(g, directed=False)
    comp = comp.reshape(shape)
    n1, n2, n3 = open_mask.shape
    base = comp[:n1, :n2, :n3]
    count = np.zeros(open_mask.shape, dtype=np.int64)
    for t in itertools.product((0, 1), repeat=3):
        img = comp[t[0] * n1:(t[0] + 1) * n1, t[1] * n2:(t[1] + 1) * n2, t[2] * n3:(t[2] + 1) * n3]
        count += img == base
    return int(count[open_mask].max())


def percolation_levels(energy, *, encut=np.inf, dimensions=("1D", "2D", "3D"), counter=image_count) -> dict:
    """Exact percolation levels of a periodic grid: for each dimensionality d, the smallest e* among the grid
    values of ``energy − min(energy)`` such that the region ``energy − min ≤ e*`` percolates in d dimensions
    (BVlain's image count ≥ 2, 4, 8).  ``inf`` when it does not below ``encut`` (non-finite energies are never
    open).

    Parameters
    ----------
    energy : ndarray (n1, n2, n3), eV
        Periodic grid (point (i, j, k) at fractional (i/n1, j/n2, k/n3)).
    encut : float, eV
        Only levels below this are searched.
    counter : callable
        The image counter (:func:`image_count`, or its twin for tests).

    Returns
    -------
    dict ``{"E_1D": e*, …}`` in eV above the minimum.
    """
    e = np.asarray(energy, dtype=np.float64)
    e = e - e.min()
    vals = np.unique(e[np.isfinite(e) & (e < encut)])
    memo = {}

    def count(i):
        if i not in memo:
            memo[i] = counter(e <= vals[i])
        return memo[i]

    out = {}
    for d in dimensions:
        need = DIMENSION_IMAGES[d]
        if len(vals) == 0 or count(len(vals) - 1) < need:
            out[f"E_{d}"] = np.inf
            continue
        lo, hi = 0, len(vals) - 1          # count(hi) ≥ need; find the first such index
        while lo < hi:
            mid = (lo + hi) // 2
            if count(mid) >= need:
                hi = mid
            else:
                lo = mid + 1
        out[f"E_{d}"] = float(vals[lo])
    return out


def bvlain_bisection(level, encut=10.0):
    """BVlain's ``_percolation_energy`` for a grid whose exact percolation level is ``level`` (eV above the
    minimum; ``inf``: none): the same bisection of [0, encut] to 0.01 eV, whose probe t percolates exactly when
    t > level, and the same ``round(·, 4)`` of the last percolating probe (``inf`` if none)."""
    emin, emax = 0.0, 0.0 + encut
    barrier = np.inf
    while (emax - emin) > 0.01:
        probe = (emin + emax) / 2
        if probe > level:
            emax = probe
            barrier = round(emax, 4)
        else:
            emin = probe
    return barrier


def barriers_like_bvlain(full_grid, *, encut=10.0, dimensions=("1D", "2D", "3D"), exact=False):
    """BVlain's percolation barriers of its own grid ``full_grid`` (``Lain.data``: both end planes included),
    equal to :meth:`bvlain.core.Lain.percolation_barriers`.

    BVlain's bisection is run with :func:`image_count` as its predicate at each probe t (region
    ``E − E_min < t``, as BVlain labels it); one count answers all three dimensionalities, so the probes the
    bisections share are counted once (≈ 10 counts instead of BVlain's ≈ 40 labellings of an 8× larger grid).
    By monotonicity this equals :func:`bvlain_bisection` of the exact level (tested).

    Returns
    -------
    (barriers ``{"E_1D": …}``, exact levels ``{"E_1D": …}`` of :func:`percolation_levels` or None), eV above the
    minimum.
    """
    e = np.asarray(full_grid, dtype=np.float64)
    e = e - e.min()
    memo = {}

    def count(t):
        if t not in memo:
            memo[t] = image_count(e < t)
        return memo[t]

    out = {}
    for d in dimensions:
        need = DIMENSION_IMAGES[d]
        emin, emax = 0.0, 0.0 + encut
        barrier = np.inf
        while (emax - emin) > 0.01:
            probe = (emin + emax) / 2
            if count(probe) >= need:
                emax = probe
                barrier = round(emax, 4)
            else:
                emin = probe
        out[f"E_{d}"] = barrier
    levels = percolation_levels(full_grid, encut=encut, dimensions=dimensions) if exact else None
    return out, levels
