"""Site-assignment kernels (docs/sites.md): façade over ``ext/_sites.pyx`` with numpy twins.

* :func:`assign_polyhedra` — the tetrahedral site containing each ion (barycentric coordinates in the
  site's current vertex positions, minimum image), -1 when none;
* :func:`assign_nearest` — the nearest site centre (Voronoi) or, with ``radius``, only within a sphere;
* :func:`debounce` — the committed-site state machine (an ion changes site only after ``n_min``
  consecutive frames in the new one; the change is back-dated to the first of those frames).

The ``*_ref`` functions are the plain-numpy (and plain-Python for the state machine) reference
implementations the compiled kernels are tested against.
"""

from __future__ import annotations

import numpy as np

from ._loader import load_ext

__all__ = ["assign_polyhedra", "assign_polyhedra_ref", "assign_nearest", "assign_nearest_ref", "debounce",
           "debounce_ref", "DebounceState", "EVENT_COLUMNS", "window_partners", "window_partners_ref"]

_sites = load_ext("_sites")

EVENT_COLUMNS = ("ion", "from_site", "to_site", "entry_frame", "from_start_frame")
"""Columns of a debounce event: ion (column of the ion selection), the site it leaves (-1 at its first
commitment), the site it enters, the analysed-frame index at which it entered (back-dated to the first
frame of the qualifying run) and the first frame of the run it leaves."""


def _f64(a, ndim):
    a = np.ascontiguousarray(a, dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"expected a {ndim}-d array; got shape {a.shape}")
    return a


# ----------------------------------------------------------------------------- polyhedra
def assign_polyhedra(ions, verts, cells, *, tol=1e-9, use_ext=True):
    """The polyhedral (tetrahedral) site containing each ion in each frame.

    Parameters
    ----------
    ions : ndarray, shape (F, N, 3), Å
        Ion positions (any periodic image).
    verts : ndarray, shape (F, S, 4, 3), Å
        The four vertex positions of every site in every frame (any periodic image).
    cells : ndarray, shape (F, 3, 3), Å
        Rows a, b, c of each frame's cell.
    tol : float
        An ion is inside when its smallest barycentric coordinate is ≥ −tol (dimensionless).
    use_ext : bool
        Compiled kernel (True) or the numpy twin.

    Returns
    -------
    ndarray of int64, shape (F, N)
        Site index; −1 when no site contains the ion.  When several do (shared faces, overlapping
        polyhedra), the one in which the ion lies deepest (largest smallest barycentric coordinate;
        ties to the lower index).

    Notes
    -----
    Edges are taken from the first vertex with fractional components reduced to [−0.5, 0.5] and the
    ion likewise, so a site must span less than half the cell along every axis (checked by the
    analysis).  Barycentric coordinates are affine-invariant, so the test is the same in any cell.
    """
    ions, verts, cells = _f64(ions, 3), _f64(verts, 4), _f64(cells, 3)
    F, N = ions.shape[:2]
    out = np.empty((F, N), dtype=np.int64)
    if not use_ext:
        return assign_polyhedra_ref(ions, verts, cells, tol=tol)
    S = verts.shape[1]
    work = np.empty((max(S, 1), 23))
    head = np.empty(2 * S + 27, dtype=np.int64)
    nxt = np.empty(max(S, 1), dtype=np.int64)
    _sites.assign_polyhedra(ions, verts, cells, float(tol), out, work, head, nxt)
    return out


def _reduce(f):
    return f - np.floor(f + 0.5)


def barycentric_ref(ions, verts, cells):
    """Barycentric coordinates of every ion in every site, shape (F, N, S, 4) (numpy; for the twin and tests)."""
    ions, verts, cells = _f64(ions, 3), _f64(verts, 4), _f64(cells, 3)
    inv = np.linalg.inv(cells)                                        # (F, 3, 3)
    v0f = np.einsum("tsk,tkl->tsl", verts[:, :, 0], inv)
    ef = _reduce(np.einsum("tsjk,tkl->tsjl", verts[:, :, 1:] - verts[:, :, :1], inv))
    e = np.einsum("tsjl,tlk->tsjk", ef, cells)                         # (F, S, 3, 3) rows e_j
    xf = np.einsum("tik,tkl->til", ions, inv)
    df = _reduce(xf[:, :, None, :] - v0f[:, None, :, :])              # (F, N, S, 3)
    d = np.einsum("tisl,tlk->tisk", df, cells)
    with np.errstate(all="ignore"):
        det = np.linalg.det(e)
        einv = np.linalg.inv(np.where(det[..., None, None] == 0, np.eye(3), e))
    lam = np.einsum("tisk,tskj->tisj", d, einv)
    lam0 = 1.0 - lam.sum(-1)
    out = np.concatenate([lam0[..., None], lam], axis=-1)
    out[np.broadcast_to((det == 0)[:, None, :], out.shape[:3])] = -np.inf
    return out


def assign_polyhedra_ref(ions, verts, cells, *, tol=1e-9):
    """Numpy twin of :func:`assign_polyhedra` (memory O(F·N·S))."""
    lam = barycentric_ref(ions, verts, cells)
    if lam.shape[2] == 0:
        return np.full(lam.shape[:2], -1, dtype=np.int64)
    lmin = lam.min(-1)
    best = np.argmax(lmin, axis=-1)
    ok = np.take_along_axis(lmin, best[..., None], -1)[..., 0] >= -tol
    return np.where(ok, best, -1).astype(np.int64)


# ----------------------------------------------------------------------------- nearest centre
def assign_nearest(ions, centres, cells, *, radius=None, use_ext=True):
    """Nearest site centre of each ion (Voronoi), or only within ``radius`` (spherical sites).

    Parameters
    ----------
    ions : ndarray, shape (F, N, 3), Å
    centres : ndarray, shape (F, S, 3), Å
        Site centres of every frame.
    cells : ndarray, shape (F, 3, 3), Å
    radius : float, optional, Å
        Spherical sites: −1 when the nearest centre is farther than this.  None = Voronoi (every ion is
        assigned).
    use_ext : bool

    Returns
    -------
    ndarray of int64, shape (F, N)
        Site index (ties to the lower index) or −1.

    Notes
    -----
    Distances are minimum-image with fractional differences reduced to [−0.5, 0.5], exact for every cell
    whose sites are nearer than half the smallest perpendicular width (checked by the analysis).
    """
    ions, centres, cells = _f64(ions, 3), _f64(centres, 3), _f64(cells, 3)
    rad = -1.0 if radius is None else float(radius)
    if not use_ext:
        return assign_nearest_ref(ions, centres, cells, radius=radius)
    out = np.empty(ions.shape[:2], dtype=np.int64)
    S = centres.shape[1]
    _sites.assign_nearest(ions, centres, cells, rad, out, np.empty((max(S, 1), 3)),
                          np.empty(2 * S + 27, dtype=np.int64), np.empty(max(S, 1), dtype=np.int64))
    return out


def assign_nearest_ref(ions, centres, cells, *, radius=None):
    """Numpy twin of :func:`assign_nearest`."""
    ions, centres, cells = _f64(ions, 3), _f64(centres, 3), _f64(cells, 3)
    inv = np.linalg.inv(cells)
    xf = np.einsum("tik,tkl->til", ions, inv)
    cf = np.einsum("tsk,tkl->tsl", centres, inv)
    d = np.einsum("tisl,tlk->tisk", _reduce(xf[:, :, None, :] - cf[:, None, :, :]), cells)
    r2 = np.einsum("tisk,tisk->tis", d, d)
    if r2.shape[2] == 0:
        return np.full(r2.shape[:2], -1, dtype=np.int64)
    best = np.argmin(r2, axis=-1)
    if radius is not None and radius > 0:
        far = np.take_along_axis(r2, best[..., None], -1)[..., 0] > float(radius) ** 2
        best = np.where(far, -1, best)
    return best.astype(np.int64)


# ----------------------------------------------------------------------------- debounce
class DebounceState:
    """Per-ion state of the committed-site machine, carried across chunks.

    Attributes
    ----------
    cur : ndarray of int64, shape (N,)
        Committed site (−1 before the first commitment).
    cur_start : ndarray of int64
        Analysed-frame index at which the committed run began.
    cand, cand_start, cand_len : ndarray of int64
        The candidate site, where its run began and how many consecutive frames it has lasted.
    """

    def __init__(self, n_ions):
        n = int(n_ions)
        self.cur = np.full(n, -1, dtype=np.int64)
        self.cur_start = np.zeros(n, dtype=np.int64)
        self.cand = np.full(n, -1, dtype=np.int64)
        self.cand_start = np.zeros(n, dtype=np.int64)
        self.cand_len = np.zeros(n, dtype=np.int64)

    def copy(self):
        new = DebounceState(len(self.cur))
        for k in ("cur", "cur_start", "cand", "cand_start", "cand_len"):
            setattr(new, k, getattr(self, k).copy())
        return new


def debounce(raw, frame0, n_min, state, *, use_ext=True, capacity=None):
    """Advance the committed-site machine over frames ``frame0 …`` and return the events.

    Parameters
    ----------
    raw : ndarray of int64, shape (F, N)
        Site of each ion in each frame (−1 = in no site).
    frame0 : int
        Analysed-frame index of ``raw[0]``.
    n_min : int
        An ion changes site only after ``n_min`` consecutive frames in the new site (≥ 1); a frame in no
        site or back in the committed site resets the count.
    state : DebounceState
        Updated in place.
    use_ext : bool
    capacity : int, optional
        Event rows per kernel call (default max(65536, 4N)); the kernel is called again until every frame
        is done.

    Returns
    -------
    ndarray of int64, shape (n_events, 5)
        Columns :data:`EVENT_COLUMNS`, in the order the changes are confirmed (which is the order of their
        entry frames, since confirmation is always ``n_min − 1`` frames after entry).
    """
    raw = np.ascontiguousarray(raw, dtype=np.int64)
    n_min = int(n_min)
    if n_min < 1:
        raise ValueError(f"n_min must be at least 1; got {n_min}")
    if not use_ext:
        return debounce_ref(raw, frame0, n_min, state)
    F, N = raw.shape
    cap = int(capacity) if capacity is not None else max(65536, 4 * N)
    cap = max(cap, N)
    out, t = [], 0
    while t < F:
        ev = np.empty((cap, 5), dtype=np.int64)
        n, t = _sites.debounce(raw, int(frame0), n_min, state.cur, state.cur_start, state.cand, state.cand_start,
                               state.cand_len, t, ev)
        out.append(ev[:n])
    return np.concatenate(out) if out else np.zeros((0, 5), dtype=np.int64)


def debounce_ref(raw, frame0, n_min, state):
    """Plain-Python twin of :func:`debounce` (the definition, written for reading)."""
    raw = np.asarray(raw, dtype=np.int64)
    events = []
    for t in range(raw.shape[0]):
        tf = int(frame0) + t
        for i in range(raw.shape[1]):
            r = int(raw[t, i])
            if r < 0 or r == state.cur[i]:
                state.cand[i], state.cand_len[i] = -1, 0
                continue
            if r == state.cand[i]:
                state.cand_len[i] += 1
            else:
                state.cand[i], state.cand_start[i], state.cand_len[i] = r, tf, 1
            if state.cand_len[i] >= n_min:
                events.append((i, int(state.cur[i]), r, int(state.cand_start[i]), int(state.cur_start[i])))
                state.cur[i], state.cur_start[i] = r, state.cand_start[i]
                state.cand[i], state.cand_len[i] = -1, 0
    return np.array(events, dtype=np.int64).reshape(-1, 5)


# ----------------------------------------------------------------------------- collective jumps
def window_partners(t, ion, mid, cell, J, lo, hi, dmax, *, count_all=True, use_ext=True):
    """Which jumps ``J`` have a partner among buffered jumps ``lo[a] … hi[a]−1``.

    Parameters
    ----------
    t : ndarray of int64, shape (M,)
        Entry frame of every buffered jump (only its length is used here; windows come as ``lo``/``hi``).
    ion : ndarray of int64, shape (M,)
    mid : ndarray, shape (M, 3)
        Fractional midpoints of the jumps.
    cell : ndarray, shape (3, 3), Å
    J, lo, hi : ndarray of int64, shape (n,)
        Jumps to test and their windows in the buffer.
    dmax : float, Å
        Partner: another ion, midpoint within ``dmax`` (minimum image, fractional differences reduced).
    count_all : bool
        Count every pair (True) or stop at each jump's first partner.
    use_ext : bool

    Returns
    -------
    has : ndarray of bool, shape (n,)
    n_pairs : int
        Pairs found (every pair with ``count_all``; else one per jump with a partner).
    """
    J = np.ascontiguousarray(J, dtype=np.int64)
    lo = np.ascontiguousarray(lo, dtype=np.int64)
    hi = np.ascontiguousarray(hi, dtype=np.int64)
    if not use_ext:
        return window_partners_ref(ion, mid, cell, J, lo, hi, dmax, count_all=count_all)
    has = np.zeros(len(J), dtype=np.uint8)
    n = _sites.window_partners(np.ascontiguousarray(t, dtype=np.int64), np.ascontiguousarray(ion, dtype=np.int64),
                               _f64(mid, 2), _f64(cell, 2), J, lo, hi, float(dmax), bool(count_all), has)
    return has.astype(bool), int(n)


def window_partners_ref(ion, mid, cell, J, lo, hi, dmax, *, count_all=True):
    """Numpy twin of :func:`window_partners`."""
    ion, mid, cell = np.asarray(ion), np.asarray(mid, float), np.asarray(cell, float)
    cnt = np.maximum(hi - lo, 0)
    tot = int(cnt.sum())
    has = np.zeros(len(J), dtype=bool)
    if tot == 0:
        return has, 0
    owner = np.repeat(np.arange(len(J)), cnt)
    k = np.arange(tot) - np.repeat(np.cumsum(cnt) - cnt, cnt) + np.repeat(lo, cnt)
    d = _reduce(mid[k] - mid[J][owner]) @ cell
    ok = (ion[k] != ion[J][owner]) & (np.einsum("ij,ij->i", d, d) <= float(dmax) ** 2)
    has[np.unique(owner[ok])] = True
    return has, int(ok.sum()) if count_all else int(has.sum())
