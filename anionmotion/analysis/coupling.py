"""Cation–polyanion coupling (SPEC §5): residence-event Pearson correlation and hop–rotation coincidence.

Residence events (paper 003 Fig. 3d and S20)
    A cation stays in the first shell of a polyanion centre C (distance below
    ``shell``) for at least ``min_residence``.  A = the ligand of C nearest to
    the cation at the start.  Over the event, θ_CNa(t) = angle(C→cation(t),
    C→cation(t_start)) and θ_CA(t) = angle(C→A(t), C→A(t_start)); the Pearson
    r of the two series is computed per event; its distribution and mean are
    reported (r > 0.5 = coupled).

Hop–rotation coincidence (this package's measure; see :func:`coincidence`)
    The mean angular displacement of the ligands of the polyanions nearest to
    a hopping cation over a window around the hop, compared with the same
    anions at random times (permutation test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import OptionError
from ..kernels.events import residence_runs
from ..kernels.polyanion import half_widths2, pair_vectors
from ..results import Result
from .base import AnalysisBase, SeriesStore
from .polyanions import Polyanions, find_polyanions, parse_species

__all__ = ["coupling", "Coupling", "CouplingResult", "ResidenceTracker", "coincidence", "angular_displacement",
           "chunk_system", "first_shell_radius", "min_image_rows",
           "DEFAULT_MIN_RESIDENCE_PS", "DEFAULT_COINCIDENCE_WINDOW_PS", "DEFAULT_PERMUTATIONS"]

DEFAULT_MIN_RESIDENCE_PS = 1.0
"""Minimum residence time of an event (ps)."""
DEFAULT_COINCIDENCE_WINDOW_PS = 1.0
"""Half-width of the window around a hop over which the anion angular displacement is measured (ps)."""
DEFAULT_PERMUTATIONS = 2000
"""Random-time resamplings of the coincidence null distribution."""
SHELL_SOURCE_AUTO = "auto: first minimum of g_C–cation(r)"


# ------------------------------------------------------------------- helpers
def min_image_rows(d, cells):
    """Minimum image of vectors each with its own cell.

    Parameters
    ----------
    d : ndarray, shape (n, 3), Å
    cells : ndarray, shape (n, 3, 3) or (3, 3), Å

    Returns
    -------
    ndarray, shape (n, 3), Å
    """
    d = np.asarray(d, dtype=np.float64)
    cells = np.asarray(cells, dtype=np.float64)
    if cells.ndim == 3 and len(cells) and (cells == cells[0]).all():
        cells = cells[0]                   # one cell for every row (constant-cell runs): invert it once
    if cells.ndim == 2:
        cells = np.broadcast_to(cells, (len(d), 3, 3))
        inv = np.broadcast_to(np.linalg.inv(cells[0]), cells.shape)   # the same bits as inverting each row
        hw2 = np.broadcast_to(half_widths2(cells[:1]), (len(d),))
    else:
        inv = np.linalg.inv(cells)
        hw2 = half_widths2(cells)
    s = np.einsum("nk,nkl->nl", d, inv)
    s -= np.rint(s)
    best = np.einsum("nk,nkl->nl", s, cells)
    r2 = np.einsum("nk,nk->n", best, best)
    need = r2 >= hw2
    if need.any():
        sub_s, sub_c = s[need], cells[need]
        b, br = best[need], r2[need]
        for i in (-1, 0, 1):
            for j in (-1, 0, 1):
                for k in (-1, 0, 1):
                    if i == j == k == 0:
                        continue
                    c = np.einsum("nk,nkl->nl", sub_s + np.array([i, j, k], float), sub_c)
                    cr = np.einsum("nk,nk->n", c, c)
                    better = cr < br
                    b[better], br[better] = c[better], cr[better]
        best[need] = b
    return best


def _angle(a, b):
    """Angle (degrees) between vectors along the last axis: atan2(|a × b|, a·b) (accurate near 0 and 180°)."""
    cr = np.linalg.norm(np.cross(a, b), axis=-1)
    return np.degrees(np.arctan2(cr, np.einsum("...k,...k->...", a, b)))


def first_shell_radius(distances, volume, n_pairs_per_frame, n_frames, *, r_max, dr=0.05):
    """First minimum of g(r) from a set of pair distances.

    Parameters
    ----------
    distances : ndarray, Å
        All centre–cation distances (every frame) up to at least ``r_max``.
    volume : float, Å³
    n_pairs_per_frame : int
        n_centres × n_cations.
    n_frames : int
    r_max : float, Å
    dr : float, Å

    Returns
    -------
    r_min : float, Å
    r, g : ndarray
        The g(r) used (bin centres, Å).

    Notes
    -----
    g(r) = V n(r) / (N_pairs T 4π r² dr); smoothed over 5 bins; the first
    minimum is the lowest point between the first peak (global maximum) and
    the first bin after it where the smoothed g rises again by 5 % of the peak.
    """
    edges = _shell_edges(r_max, dr)
    n, _ = np.histogram(distances, bins=edges)
    return _first_minimum(n, edges, volume, n_pairs_per_frame, n_frames, r_max)


def _shell_edges(r_max, dr=0.05):
    """Bin edges of the centre–cation g(r), Å."""
    return np.arange(0.0, r_max + dr, dr)


def _first_minimum(n, edges, volume, n_pairs_per_frame, n_frames, r_max):
    """First minimum of g(r) from the pair counts ``n`` of the bins ``edges`` (see :func:`first_shell_radius`)."""
    r = 0.5 * (edges[1:] + edges[:-1])
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    g = n * volume / (max(n_pairs_per_frame, 1) * max(n_frames, 1) * shell)
    gs = np.convolve(g, np.ones(5) / 5, mode="same")
    if not np.any(gs > 0):
        raise OptionError(f"no centre–cation pairs closer than {r_max:.2f} Å: cannot find the first shell; give "
                          "shell= / --shell (Å)")
    ip = int(np.argmax(gs))
    best = ip
    found = False
    for k in range(ip + 1, len(gs)):
        if gs[k] < gs[best]:
            best = k
        elif gs[k] > gs[best] + 0.05 * gs[ip]:
            found = True
            break
    if not found or best == ip:
        raise OptionError(f"g_C–cation(r) has no first minimum below {r_max:.2f} Å (half the narrowest cell "
                          "width); give shell= / --shell (Å)")
    return float(r[best]), r, g


# ------------------------------------------------------------------- result
@dataclass(frozen=True, repr=False)
class CouplingResult(Result):
    """Cation–polyanion coupling (SPEC §5).

    Attributes
    ----------
    cation : str
    species : str
        Polyanion label (e.g. ``NbCl6``).
    n_cations, n_anions : int
    shell_A : float, Å
        First-shell radius around the polyanion centres.
    shell_source : str
        ``"user"`` or ``"auto: first minimum of g_C–cation(r)"``.
    min_residence_ps : float, ps
    n_events : int
        Residence events of at least ``min_residence_ps``.
    event_cation : ndarray, shape (n_events,), int64
        Trajectory atom index of the cation.
    event_anion : ndarray, shape (n_events,), int64
        Polyanion index (row of ``Polyanions``).
    event_ligand : ndarray, shape (n_events,), int64
        Trajectory atom index of A (the ligand nearest to the cation at the start).
    event_start_frame, event_stop_frame : ndarray, shape (n_events,), int64
        Trajectory frame of the first frame and of the frame after the last one.
    event_duration_ps : ndarray, shape (n_events,), ps
    event_pearson : ndarray, shape (n_events,)
        Pearson r of θ_CNa(t) and θ_CA(t) per event (NaN when a series is constant).
    pearson : ndarray, shape (n_defined,)
        The defined r values (the distribution).
    pearson_mean, pearson_median : float
    fraction_coupled : float
        Fraction of events with r > 0.5.
    pearson_histogram : dict
        ``edges`` (−1 … 1 by 0.1) and ``counts``.
    g_r : dict
        ``r_A`` and ``g`` of the centre–cation pair distribution used for the default shell.
    coincidence : dict
        Hop–rotation coincidence (see :func:`coincidence`).
    meta : dict
    """

    cation: str
    species: str
    n_cations: int
    n_anions: int
    shell_A: float
    shell_source: str
    min_residence_ps: float
    n_events: int
    event_cation: np.ndarray
    event_anion: np.ndarray
    event_ligand: np.ndarray
    event_start_frame: np.ndarray
    event_stop_frame: np.ndarray
    event_duration_ps: np.ndarray
    event_pearson: np.ndarray
    pearson: np.ndarray
    pearson_mean: Optional[float]
    pearson_median: Optional[float]
    fraction_coupled: Optional[float]
    pearson_histogram: dict
    g_r: dict
    coincidence: dict
    meta: dict = field(default_factory=dict)

    def summary(self) -> str:
        c = self.coincidence
        lines = [
            f"{self.cation} around {self.n_anions} × {self.species}: first shell {self.shell_A:.3f} Å ({self.shell_source})",
            f"residence events  {self.n_events} (≥ {self.min_residence_ps:g} ps); Pearson r defined for "
            f"{len(self.pearson)}",
        ]
        if len(self.pearson):
            lines.append(f"Pearson r         mean {self.pearson_mean:.3f}, median {self.pearson_median:.3f}, "
                         f"r > 0.5 in {100 * self.fraction_coupled:.1f} % of events")
        if c.get("n_pairs"):
            lines.append(f"coincidence       anion angular displacement ±{c['window_ps']:g} ps around "
                         f"{c['n_hops']} hops: {c['hop_mean_deg']:.2f}° vs {c['null_mean_deg']:.2f}° ± "
                         f"{c['null_std_deg']:.2f}° at random times (ratio {c['ratio']:.3f}, z = {c['z']:.2f}, "
                         f"p = {c['p_value']:.4f})")
        else:
            lines.append(f"coincidence       not computed: {c.get('note', 'no hops')}")
        return "\n".join(lines)

    def __repr__(self):
        pm = "n/a" if self.pearson_mean is None else f"{self.pearson_mean:.3f}"
        return f"CouplingResult({self.cation}–{self.species}: {self.n_events} events, pearson_mean={pm})"


# ---------------------------------------------------------------- coincidence
def coincidence(u, hop_frames, hop_anions, *, window_frames, dt_ps, n_permutations=DEFAULT_PERMUTATIONS, seed=0):
    """Hop–rotation coincidence: anion angular displacement around hops vs random times.

    Parameters
    ----------
    u : ndarray, shape (n_frames, n_anions, n_lig, 3)
        Unit centre→ligand vectors (NaN padding).
    hop_frames : ndarray, shape (n_pairs,), int
        Local frame index of each hop, repeated for each of its nearest anions.
    hop_anions : ndarray, shape (n_pairs,), int
        Nearest polyanion of the hopping cation (one row per hop and anion).
    window_frames : int
        Half-width w of the window (frames).
    dt_ps : float
    n_permutations : int
    seed : int

    Returns
    -------
    dict
        ``hop_mean_deg`` — S = mean over (hop, anion) of Δθ, the ligand-averaged
        angle between u(t_h − w) and u(t_h + w); ``null_mean_deg``,
        ``null_std_deg`` — of S when every t_h is replaced by a uniformly random
        frame (same anions; ``n_permutations`` resamplings); ``ratio`` = S /
        null mean; ``z``; ``p_value`` = (1 + #{S_null ≥ S}) / (1 + n_permutations)
        (one-sided: hops coincide with larger anion rotation); ``n_pairs``.

    Notes
    -----
    The null keeps each anion's own mobility (a fast rotor is compared with
    itself), so S > null means the anion turns *more* when a neighbouring
    cation hops than at arbitrary times — the paddle-wheel signature.  Hops
    closer than w to either end of the trajectory are left out.
    """
    u = np.asarray(u, dtype=np.float64)
    n = u.shape[0]
    w = int(window_frames)
    D = None
    if w >= 1 and n > 2 * w:
        D = np.full(u.shape[:2], np.nan)
        D[w:n - w] = angular_displacement(u[:n - 2 * w], u[2 * w:])

    return _coincidence_core(n, hop_frames, hop_anions, w, dt_ps, n_permutations, seed, u.shape[2],
                             _ArrayRows(D) if D is not None else None)


def angular_displacement(a, b):
    """Ligand-averaged angle between two sets of unit centre→ligand vectors, degrees.

    Parameters
    ----------
    a, b : ndarray, shape (..., n_lig, 3)
        Unit vectors (NaN rows for padding ligands).

    Returns
    -------
    ndarray, shape (...), degrees
        mean over the real ligands of arccos(a_l · b_l).  Evaluated element by
        element, so D(t, a) computed for a block of frames equals the value
        computed for any other gathering of the same (frame, anion).
    """
    c = np.clip(np.einsum("...lk,...lk->...l", a, b), -1, 1)
    return np.nanmean(np.degrees(np.arccos(c)), axis=-1)


class _ArrayRows:
    """D(t, a) held in memory as an array of shape (n_frames, n_anions): one block of rows."""

    def __init__(self, D):
        self.D = D

    def n_blocks(self, anions) -> int:
        return 1

    def blocks(self, anions):
        yield [(int(a), self.D[:, a]) for a in anions]


class _StoreRows:
    """D(t, a) in a :class:`SeriesStore` (one row per anion), read back ``rows_per_block`` rows at a time."""

    def __init__(self, store, rows_per_block):
        self.store, self.rows_per_block = store, max(1, int(rows_per_block))

    def n_blocks(self, anions) -> int:
        return -(-len(anions) // self.rows_per_block)

    def blocks(self, anions):
        for j0 in range(0, len(anions), self.rows_per_block):
            yield [(int(a), self.store.read_rows(int(a), 1)[0]) for a in anions[j0:j0 + self.rows_per_block]]


def _coincidence_core(n, hop_frames, hop_anions, w, dt_ps, n_permutations, seed, n_lig, rows, phase=None):
    """The coincidence statistic and its permutation null from the rows D(·, a).

    ``rows.blocks(anions)`` yields, for the sorted unique ``anions``, blocks
    ``[(a, row), …]`` in that order (``rows.n_blocks(anions)`` of them), where
    ``row`` (length ``n``) is D(t, a), the angular displacement between t − w and t + w (see
    :func:`angular_displacement`).  Only one block of rows is needed at a
    time: the random frames of the null are regenerated from ``seed`` for
    every block (the same batches every time), and each resampling's sum is
    accumulated anion by anion in ascending anion order, so S, the null, z
    and p do not depend on how many rows fit in memory at once.
    """
    hop_frames = np.asarray(hop_frames, dtype=np.int64)
    hop_anions = np.asarray(hop_anions, dtype=np.int64)
    keep = (hop_frames - w >= 0) & (hop_frames + w < n)
    out = {"window_ps": w * dt_ps, "window_frames": w, "n_permutations": int(n_permutations),
           "n_pairs": int(keep.sum()), "n_dropped_at_ends": int((~keep).sum()), "hop_mean_deg": None,
           "null_mean_deg": None, "null_std_deg": None, "ratio": None, "z": None, "p_value": None,
           "definition": "S = mean over (hop, nearest anion) of the ligand-averaged angle between u(t_h - w) and "
                         "u(t_h + w); null: same anions at uniformly random times; p = (1 + #{S_null >= S}) / "
                         "(1 + n_permutations)"}
    if w < 1 or n <= 2 * w:
        out["note"] = f"trajectory ({n} frames) too short for a ±{w}-frame window"
        out["n_pairs"] = 0
        return out
    hf, ha = hop_frames[keep], hop_anions[keep]
    if len(hf) == 0:
        out["note"] = "no hop farther than the window from the trajectory ends"
        return out
    n_pairs, n_perm = len(hf), int(n_permutations)
    uniq, inv = np.unique(ha, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(len(uniq) + 1))
    cols = {int(a): order[bounds[j]:bounds[j + 1]] for j, a in enumerate(uniq)}   # the pairs of each anion
    batch = max(1, int(2e6 // max(n_pairs * n_lig, 1)))
    starts = range(0, n_perm, batch)
    s_parts = {}
    null_sum = np.zeros(n_perm)
    bar = phase(len(starts) * rows.n_blocks(uniq)) if phase is not None else None
    try:
        for block in rows.blocks(uniq):
            for a, row in block:
                s_parts[int(a)] = float(row[hf[cols[int(a)]]].sum())
            rng = np.random.default_rng(seed)     # the same draws for every block of anions
            for k0 in starts:
                kb = min(batch, n_perm - k0)
                rf = rng.integers(w, n - w, size=(kb, n_pairs))
                for a, row in block:
                    null_sum[k0:k0 + kb] += row[rf[:, cols[int(a)]]].sum(axis=1)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    s = 0.0
    for a in uniq:
        s += s_parts[int(a)]
    s /= n_pairs
    null = null_sum / n_pairs
    mu, sd = float(null.mean()), float(null.std(ddof=1)) if len(null) > 1 else 0.0
    out.update(hop_mean_deg=s, null_mean_deg=mu, null_std_deg=sd, ratio=s / mu if mu > 0 else None,
               z=(s - mu) / sd if sd > 0 else None,
               p_value=float((1 + np.count_nonzero(null >= s)) / (1 + len(null))))
    return out


# ---------------------------------------------------------------- the driver
def _local_frames(frames, wanted):
    """Local indices of trajectory frames (nearest analysed frame when strided)."""
    i = np.searchsorted(frames, wanted)
    i = np.clip(i, 0, len(frames) - 1)
    j = np.clip(i - 1, 0, len(frames) - 1)
    pick = np.where(np.abs(frames[j] - wanted) < np.abs(frames[i] - wanted), j, i)
    return pick


def chunk_system(chunk, pa: Polyanions, cation_idx, *, use_ext=True):
    """Cations and polyanions of one chunk: positions, centres, ligand vectors, unit vectors.

    Parameters
    ----------
    chunk : Chunk
        Frames holding at least the cations and ``pa.atoms``.
    pa : Polyanions
    cation_idx : ndarray of int
        Trajectory indices of the cations.

    Returns
    -------
    dict with ``frames``, ``times`` (ps), ``cells`` (Å), ``cat`` (n_frames, n_cat, 3) Å cation positions,
    ``cen`` (n_frames, n_anions, 3) Å centres (centre atom or centre of mass), ``lig``
    (n_frames, n_anions, n_lig, 3) Å centre→ligand vectors, ``u`` unit vectors.
    """
    col = np.searchsorted(chunk.atom_indices, cation_idx)
    lig = pa.ligand_vectors(chunk, use_ext=use_ext)
    if pa.is_cluster:
        cen = pa.com(chunk, use_ext=use_ext)
    else:
        cen = chunk.positions[:, np.searchsorted(chunk.atom_indices, pa.centers), :]
    with np.errstate(invalid="ignore"):
        u = lig / np.linalg.norm(lig, axis=-1, keepdims=True)
    return {"frames": chunk.frame_indices, "times": chunk.times, "cells": chunk.cells,
            "cat": chunk.positions[:, col, :], "cen": cen, "lig": lig, "u": u}


def load_system(traj, pa: Polyanions, cation_idx, *, start=None, stop=None, step=None, progress=None,
                use_ext=True):
    """Read the cations and the polyanions of a whole frame range into memory (see :func:`chunk_system`).

    The streamed analyses (:class:`Coupling`, :func:`~anionmotion.analysis.timeline.timeline`)
    do not use it; it is kept for interactive use on short trajectories.
    """
    atoms = np.union1d(cation_idx, pa.atoms).astype(np.int64)
    ch = traj.read(atoms=atoms, start=start, stop=stop, step=step, progress=progress)
    return chunk_system(ch, pa, cation_idx, use_ext=use_ext)


def _centre_cation_vectors(sysd, use_ext=True, frames=None):
    """(n_frames, n_cat, n_an, 3) minimum-image vectors centre → cation (Å) for the given local frames."""
    cat, cen, cells = sysd["cat"], sysd["cen"], sysd["cells"]
    if frames is not None:
        cat, cen, cells = cat[frames], cen[frames], cells[frames]
    n_cat, n_an = cat.shape[1], cen.shape[1]
    pos = np.ascontiguousarray(np.concatenate([cat, cen], axis=1))
    first = np.repeat(np.arange(n_cat, n_cat + n_an)[None, :], n_cat, 0).ravel()      # centre
    second = np.repeat(np.arange(n_cat)[:, None], n_an, 1).ravel()                    # cation
    v = pair_vectors(pos, cells, first, second, use_ext=use_ext)
    return v.reshape(len(pos), n_cat, n_an, 3)


def _centre_cation_distances(sysd, use_ext=True):
    """(n_frames, n_cat · n_an) float32 centre–cation distances, pair p = cation · n_an + anion (Å)."""
    v = _centre_cation_vectors(sysd, use_ext)
    return np.linalg.norm(v, axis=-1).reshape(v.shape[0], -1).astype(np.float32)


def nearest_anions(sysd, cat_local, frame_local, k, use_ext=True):
    """Indices of the k polyanion centres nearest to each (cation, frame), shape (n, k)."""
    cat_local = np.asarray(cat_local)
    frame_local = np.asarray(frame_local)
    if len(cat_local) == 0:
        return np.zeros((0, min(k, sysd["cen"].shape[1])), dtype=np.int64)
    d = sysd["cat"][frame_local, cat_local][:, None, :] - sysd["cen"][frame_local]          # (n, A, 3)
    n, A = d.shape[:2]
    v = min_image_rows(d.reshape(-1, 3), np.repeat(sysd["cells"][frame_local], A, axis=0)).reshape(n, A, 3)
    r = np.linalg.norm(v, axis=-1)
    k = min(k, A)
    return np.argsort(r, axis=1, kind="stable")[:, :k]


class ResidenceTracker:
    """Residence events of (cation, anion) pairs found online, with their Pearson r.

    Chunks of in-shell flags arrive in frame order; the open run of every pair
    is carried across chunk boundaries with its references (C→cation vector
    and C→A vector at the run start, the ligand A) and the running Pearson
    statistics of θ_CNa(t), θ_CA(t): count, means and centred (co-)moments,
    exact per chunk and merged across chunks with Chan et al.'s parallel
    formula.  A run that ends shorter than ``min_frames`` is dropped.  Memory:
    O(n_pairs) for the open runs plus the finished events.

    Parameters
    ----------
    n_cat, n_an : int
    min_frames : int
        Minimum run length (frames).
    use_ext : bool
    """

    def __init__(self, n_cat, n_an, min_frames, *, use_ext=True):
        self.n_cat, self.n_an = int(n_cat), int(n_an)
        P = self.n_cat * self.n_an
        self.min_frames = int(min_frames)
        self.use_ext = use_ext
        self.open_start = np.full(P, -1, dtype=np.int64)
        self.ref_cna = np.zeros((P, 3))
        self.ref_ca = np.zeros((P, 3))
        self.A = np.zeros(P, dtype=np.int64)
        self.cnt = np.zeros(P)
        self.mx, self.my = np.zeros(P), np.zeros(P)
        self.sxx, self.syy, self.sxy = np.zeros(P), np.zeros(P), np.zeros(P)
        self.end = 0
        self._out = []

    def _emit(self, pair, start, stop, A, sxx, syy, sxy):
        ok = (stop - start) >= self.min_frames
        if not ok.any():
            return
        den = np.sqrt(sxx[ok] * syy[ok])
        r = np.full(int(ok.sum()), np.nan)
        good = den > 1e-12
        r[good] = sxy[ok][good] / den[good]
        self._out.append((pair[ok], start[ok], stop[ok], A[ok], r))

    def _close(self, sel, stop):
        if len(sel):
            self._emit(sel, self.open_start[sel], np.full(len(sel), stop, np.int64), self.A[sel], self.sxx[sel],
                       self.syy[sel], self.sxy[sel])
            self.open_start[sel] = -1

    def add(self, g0, inside, sysd):
        """Frames ``g0 … g0 + n − 1``: ``inside`` (n, n_pairs) bool and the chunk's :func:`chunk_system` arrays."""
        f = inside.shape[0]
        if f == 0:
            return
        # open runs that do not continue into this chunk end at its first frame
        self._close(np.nonzero((self.open_start >= 0) & ~inside[0])[0], g0)
        self.end = g0 + f
        runs = residence_runs(inside, 1, use_ext=self.use_ext)
        if not len(runs):
            return
        pair, s, e = runs[:, 0], runs[:, 1], runs[:, 2]
        E = len(runs)
        cont = (s == 0) & (self.open_start[pair] >= 0)
        lens = e - s
        seg0 = np.cumsum(lens) - lens
        eid = np.repeat(np.arange(E), lens)
        tt = np.arange(lens.sum()) - np.repeat(seg0, lens) + np.repeat(s, lens)
        ci, ai = pair // self.n_an, pair % self.n_an
        cells = sysd["cells"]
        cna = min_image_rows(sysd["cat"][tt, ci[eid]] - sysd["cen"][tt, ai[eid]], cells[tt])   # (N, 3) C → cation
        cna0 = cna[seg0]
        lig0 = sysd["lig"][s, ai]                                                           # (E, L, 3) C → ligands
        dCA = np.linalg.norm(cna0[:, None, :] - lig0, axis=-1)
        dCA = np.where(np.isnan(dCA), np.inf, dCA)
        A = np.argmin(dCA, axis=1)
        ca0 = lig0[np.arange(E), A]
        pc = pair[cont]
        cna0[cont] = self.ref_cna[pc]
        ca0[cont] = self.ref_ca[pc]
        A[cont] = self.A[pc]
        ca = sysd["lig"][tt, ai[eid], A[eid]]
        x = _angle(cna, cna0[eid])
        y = _angle(ca, ca0[eid])
        # exact statistics of every segment (two-pass over the segment) ...
        cnt = lens.astype(np.float64)
        mx = np.bincount(eid, x, E) / cnt
        my = np.bincount(eid, y, E) / cnt
        dx, dy = x - mx[eid], y - my[eid]
        sxy = np.bincount(eid, dx * dy, E)
        sxx = np.bincount(eid, dx * dx, E)
        syy = np.bincount(eid, dy * dy, E)
        # ... merged with the part of the run seen in earlier chunks (Chan et al. 1979)
        if cont.any():
            na, nb = self.cnt[pc], cnt[cont]
            nt = na + nb
            ddx, ddy = mx[cont] - self.mx[pc], my[cont] - self.my[pc]
            fac = na * nb / nt
            sxx[cont] = self.sxx[pc] + sxx[cont] + ddx * ddx * fac
            syy[cont] = self.syy[pc] + syy[cont] + ddy * ddy * fac
            sxy[cont] = self.sxy[pc] + sxy[cont] + ddx * ddy * fac
            mx[cont] = self.mx[pc] + ddx * nb / nt
            my[cont] = self.my[pc] + ddy * nb / nt
            cnt[cont] = nt
        gs = g0 + s
        gs[cont] = self.open_start[pc]
        self.open_start[pc] = -1
        done = e < f
        self._emit(pair[done], gs[done], g0 + e[done], A[done], sxx[done], syy[done], sxy[done])
        op = ~done
        p = pair[op]
        self.open_start[p] = gs[op]
        self.ref_cna[p], self.ref_ca[p], self.A[p] = cna0[op], ca0[op], A[op]
        self.cnt[p], self.mx[p], self.my[p] = cnt[op], mx[op], my[op]
        self.sxx[p], self.syy[p], self.sxy[p] = sxx[op], syy[op], sxy[op]

    @property
    def n_open(self) -> int:
        return int(np.count_nonzero(self.open_start >= 0))

    def finish(self):
        """Close the open runs at the last frame; return ``pair, start, stop, A, r`` ordered by pair then start."""
        self._close(np.nonzero(self.open_start >= 0)[0], self.end)
        if not self._out:
            z = np.zeros(0, np.int64)
            return z, z.copy(), z.copy(), z.copy(), np.zeros(0)
        pair, st, sp, A, r = (np.concatenate(c) for c in zip(*self._out))
        o = np.lexsort((st, pair))
        return pair[o], st[o], sp[o], A[o], r[o]


class Coupling(AnalysisBase):
    """Cation–polyanion coupling in bounded memory (see :func:`coupling` for the science and parameters).

    Passes over the trajectory, each with a progress bar:

    1. only when ``shell`` is None: g_C–cation(r) from every ⌊n/2000⌋-th
       frame (at least every frame), reading only those frames (when every
       frame is used, n < 4000, the float32 distances are kept for pass 3
       if they fit ``CACHE_FRACTION`` of the budget);
    2. the hops of the cation (:class:`~anionmotion.analysis.hops.Hops`,
       streamed, h not kept) unless ``hops`` is given;
    3. the residence pass: chunks of the cations and polyanions; residence
       runs and their Pearson r found online (:class:`ResidenceTracker`), the
       nearest anions of every hop at its frame, and the anion angular
       displacement D(t, a) over ±w (a ring buffer of 2w frames of unit
       vectors) written to a :class:`~anionmotion.analysis.base.SeriesStore`
       (memory or scratch file);
    4. the permutation null of the coincidence measure from the stored D
       (same random batches as the in-memory :func:`coincidence`).

    Memory is set by ``memory`` (one chunk takes about a quarter, the D store
    up to 40 % before it moves to a scratch file) and does not grow with the
    trajectory length apart from O(n_frames) scalars (times) and the events.
    """

    name = "coupling"
    needs_velocities = False
    STORE_FRACTION = 0.02
    """The D(t, a) store (8 bytes per anion and frame) stays in memory up to this fraction of the budget, else it
    is a scratch file: small enough that the peak does not grow with the trajectory length."""
    ROWS_FRACTION = 0.025
    """From the scratch file, the permutation null reads blocks of D rows of at most this fraction of the budget."""
    CACHE_FRACTION = 0.2
    """Short trajectories (every frame in g(r)): the pass-1 distances are kept for pass 2 up to this fraction."""

    def __init__(self, cation, *, center=None, ligand=None, cutoff=None, cluster=None, polyanions=None, shell=None,
                 min_residence=DEFAULT_MIN_RESIDENCE_PS, hops=None, hop_a=None, hop_residence=3.0, hop_window=9.0,
                 coincidence_window=DEFAULT_COINCIDENCE_WINDOW_PS, n_nearest=2, n_permutations=DEFAULT_PERMUTATIONS,
                 seed=0, block_frames=None, memory=None, progress=None, use_ext=True):
        super().__init__(memory=memory, progress=progress, use_ext=use_ext)
        self.cation, self.center, self.ligand, self.cutoff, self.cluster = cation, center, ligand, cutoff, cluster
        self.polyanions, self.shell, self.min_residence, self.hops = polyanions, shell, min_residence, hops
        self.hop_a, self.hop_residence, self.hop_window = hop_a, hop_residence, hop_window
        self.coincidence_window, self.n_nearest, self.n_permutations = coincidence_window, n_nearest, n_permutations
        self.seed, self.block_frames = seed, block_frames

    # ------------------------------------------------------------- options
    def _setup(self, traj, start=None, stop=None, step=None):
        cs = parse_species(self.cation, "cation")
        if cs is None or len(cs) != 1:
            raise OptionError(f"cation must be one species (e.g. cation='Na'); got {self.cation!r}")
        self._cation = cs[0]
        self._cat_idx = traj.select(species=self._cation)
        pa = self.polyanions
        if pa is None:
            s0 = traj.frame_range(start=start, stop=stop, step=step).start if traj.n_frames else 0
            pa = find_polyanions(traj, center=self.center, ligand=self.ligand, cutoff=self.cutoff,
                                 cluster=self.cluster, frame=s0)
        self._pa = pa
        if np.intersect1d(self._cat_idx, pa.atoms).size:
            raise OptionError(f"the cation species {self._cation} is part of the polyanions")
        # None means "the default" for the optional numeric settings
        def d(v, default):
            return default if v is None else v

        self._min_res = d(self.min_residence, DEFAULT_MIN_RESIDENCE_PS)
        self._window = d(self.coincidence_window, DEFAULT_COINCIDENCE_WINDOW_PS)
        self._n_perm = d(self.n_permutations, DEFAULT_PERMUTATIONS)
        self._n_near = d(self.n_nearest, 2)
        self._hop_res = d(self.hop_residence, 3.0)
        self._hop_win = d(self.hop_window, 9.0)
        if not float(self._min_res) > 0:
            raise OptionError(f"min_residence must be a positive time in ps; got {self._min_res}")
        if self.shell is not None and not (np.isfinite(float(self.shell)) and float(self.shell) > 0):
            raise OptionError(f"shell must be a positive distance in Å; got {self.shell}")
        if int(self._n_near) < 1:
            raise OptionError(f"n_nearest must be at least 1; got {self._n_near}")
        if not float(self._window) > 0:
            raise OptionError(f"coincidence_window must be a positive time in ps; got {self._window}")
        if int(self._n_perm) < 1:
            raise OptionError(f"n_permutations must be at least 1; got {self._n_perm}")
        if self.block_frames is not None and int(self.block_frames) < 1:
            raise OptionError(f"block_frames must be a positive number of frames; got {self.block_frames}")
        self._read_atoms = np.union1d(self._cat_idx, pa.atoms).astype(np.int64)
        super()._setup(traj, start, stop, step)

    def _atoms(self):
        return self._read_atoms

    def _bytes_per_frame(self, n_atoms_read) -> int:
        P = len(self._cat_idx) * self._pa.n_anions
        lig = self._pa.n_anions * max(self._pa.n_ligands, 1) * 3 * 8
        # positions (raw, unwrapped, copies); pair vectors, norms, flags and the in-shell rows; ligand vectors and u
        return int(n_atoms_read * 3 * 8 * 4 + P * 160 + lig * 6)

    def _chunk_frames(self):
        n = super()._chunk_frames()
        return n if self.block_frames is None else max(1, min(n, int(self.block_frames)))

    # ------------------------------------------------------------- passes
    def _prepare(self):
        n = self.n_frames
        if n < 3:
            raise OptionError(f"coupling needs at least 3 frames; got {n}")
        self._dt = self.dt if self.uniform and self.dt else float(np.median(np.diff(self.times)))
        self._min_frames = max(1, int(math.ceil(float(self._min_res) / self._dt - 1e-9)) + 1)

    def _shell_pass(self):
        """g_C–cation(r) from every ⌊n/2000⌋-th analysed frame (reading only those) and its first minimum."""
        traj, frames, n = self.traj, self.frames, self.n_frames
        # r_max and the mean volume over every analysed frame, from the cells in blocks
        hw2, vol_sum = np.inf, 0.0
        allc = traj.cells
        for b0 in range(0, n, 65536):
            c = allc[frames[b0:b0 + 65536]]
            hw2 = min(hw2, float(half_widths2(c).min()))
            vol_sum += float(np.abs(np.linalg.det(c)).sum())
        r_max = float(np.sqrt(hw2))
        volume = vol_sum / n
        edges = _shell_edges(r_max)
        counts = np.zeros(len(edges) - 1, dtype=np.int64)
        k = max(1, n // 2000)
        sample = np.arange(0, n, k)
        fpc = self._chunk_frames()

        P = len(self._cat_idx) * self._pa.n_anions
        # every frame is sampled (n < 4000): keep the distances for the residence pass when they fit the budget
        cache = np.empty((n, P), dtype=np.float32) if k == 1 and n * P * 4 <= self.CACHE_FRACTION * self.budget \
            else None
        pos = [0]

        def add(sysd):
            d = _centre_cation_distances(sysd, self.use_ext)
            counts[:] += np.histogram(d[d < r_max], bins=edges)[0]
            if cache is not None:
                cache[pos[0]:pos[0] + len(d)] = d
                pos[0] += len(d)

        with self._phase(len(sample), "g(r) frames", unit="frame") as bar:
            if k == 1:
                fr = self.frame_range
                for ch in traj.iter_chunks(fpc, atoms=self._read_atoms, start=fr.start, stop=fr.stop, step=fr.step,
                                           progress=False, unwrap=bool(traj.unwrap and self.needs_unwrap),
                                           velocities=False):
                    add(chunk_system(ch, self._pa, self._cat_idx, use_ext=self.use_ext))
                    bar.update(ch.n_frames)
            else:   # only the sampled frames (minimum-image distances need no unwrapping)
                for f in frames[sample]:
                    for ch in traj.iter_chunks(1, atoms=self._read_atoms, start=int(f), stop=int(f) + 1,
                                               progress=False, unwrap=False, velocities=False):
                        add(chunk_system(ch, self._pa, self._cat_idx, use_ext=self.use_ext))
                    bar.update(1)
        self._dist_cache = cache
        r_sh, rr, gg = _first_minimum(counts, edges, volume, P, len(sample), r_max)
        return r_sh, {"r_A": rr, "g": gg}

    def _hops_pass(self):
        hops_res = self.hops
        if hops_res is None:
            from .hops import hops as run_hops

            try:
                fr = self.frame_range
                hops_res = run_hops(self.traj, species=self._cation, a=self.hop_a, residence=self._hop_res,
                                    window=self._hop_win, start=fr.start, stop=fr.stop, step=fr.step,
                                    memory=self.memory, progress=self.progress, keep_h=False, use_ext=self.use_ext)
            except OptionError as err:
                return None, {"n_hops": 0, "n_pairs": 0, "note": f"hops not computed: {err}"}
        ev_atom = np.asarray(hops_res.event_atom, dtype=np.int64)
        ev_frame = np.asarray(hops_res.event_frame, dtype=np.int64)
        sel = np.isin(ev_atom, self._cat_idx)
        ev_atom, ev_frame = ev_atom[sel], ev_frame[sel]
        info = {"n_hops": int(len(ev_atom)), "hop_a_A": float(getattr(hops_res, "a_A", float("nan"))),
                "hop_residence_ps": float(getattr(hops_res, "residence_ps", float("nan"))),
                "hop_window_ps": float(getattr(hops_res, "window_ps", float("nan"))),
                "cation_jump_frequency_per_ns": float(getattr(hops_res, "jump_frequency_per_ns", float("nan"))),
                "n_nearest": int(self._n_near)}
        if len(ev_atom) == 0:
            out = {"n_pairs": 0, "note": "no hops detected", "window_ps": float(self._window)}
            out.update(info)
            return None, out
        return (ev_atom, ev_frame), info

    def run(self, traj, start=None, stop=None, step=None) -> "CouplingResult":
        """Analyse frames ``start:stop:step`` of ``traj`` and return a :class:`CouplingResult`."""
        self._setup(traj, start, stop, step)
        self._prepare()
        n = self.n_frames
        self._dist_cache = None
        if self.shell is None:
            self._shell, g_r = self._shell_pass()
            self._shell_source = SHELL_SOURCE_AUTO
        else:
            self._shell, g_r, self._shell_source = float(self.shell), {}, "user"
        self._g_r = g_r
        hops, self._hop_info = self._hops_pass()
        # the residence pass
        n_cat, n_an = len(self._cat_idx), self._pa.n_anions
        self._tracker = ResidenceTracker(n_cat, n_an, self._min_frames, use_ext=self.use_ext)
        self._broken = {}
        self._w = max(1, int(round(float(self._window) / self._dt)))
        self._hops_local = None
        self._store = None
        if hops is not None:
            ev_atom, ev_frame = hops
            self._hops_local = (_local_frames(self.frames, ev_frame), np.searchsorted(self._cat_idx, ev_atom))
            self._near = np.zeros((len(ev_atom), min(int(self._n_near), n_an)), dtype=np.int64)
            fl = self._hops_local[0]
            w = self._w
            if w >= 1 and n > 2 * w and np.any((fl - w >= 0) & (fl + w < n)):
                self._store = SeriesStore(n_an, n, budget=self.budget, in_memory_fraction=self.STORE_FRACTION,
                                          prefix="anionmotion-coupling-")
        self._g0 = 0
        self._u_tail = None
        try:
            self._iterate("residence events")
            self._dist_cache = None
            return self._finish()
        finally:
            self._dist_cache = None
            if self._store is not None:
                self._store.close()
                self._store = None

    def _accumulate(self, chunk):
        sysd = chunk_system(chunk, self._pa, self._cat_idx, use_ext=self.use_ext)
        f, g0 = chunk.n_frames, self._g0
        for e in self._pa.broken_ligands(sysd["lig"], 0):
            e["frame"] = int(chunk.frame_indices[e["frame"]])
            self._broken.setdefault((e["anion"], e["ligand_atom"]), e)
        if self._dist_cache is not None:
            inside = self._dist_cache[g0:g0 + f] < self._shell
        else:
            inside = _centre_cation_distances(sysd, self.use_ext) < self._shell
        self._tracker.add(g0, inside, sysd)
        del inside
        if self._hops_local is not None:
            fl, cl = self._hops_local
            here = np.nonzero((fl >= g0) & (fl < g0 + f))[0]
            if len(here):
                self._near[here] = nearest_anions(sysd, cl[here], fl[here] - g0, int(self._n_near), self.use_ext)
        if self._store is not None:   # D(t, a) for every t whose ±w frames are in the ring buffer
            w, n = self._w, self.n_frames
            buf = sysd["u"] if self._u_tail is None else np.concatenate([self._u_tail, sysd["u"]])
            b0 = g0 + f - len(buf)
            t_lo, t_hi = max(w, b0 + w), min(n - w, g0 + f - w)
            if t_hi > t_lo:
                self._store.write(t_lo, angular_displacement(buf[t_lo - w - b0:t_hi - w - b0],
                                                             buf[t_lo + w - b0:t_hi + w - b0]))
            self._u_tail = buf[max(0, len(buf) - 2 * w):].copy()
        self._g0 += f

    def _rows(self):
        """The D(t, a) rows: the in-memory store as one block, else blocks of rows read from the scratch file."""
        store = self._store
        if store.in_memory:
            return _ArrayRows(store.read_rows(0, store.n_rows).T)
        return _StoreRows(store, self.ROWS_FRACTION * self.budget // (8 * self.n_frames))

    def _coincidence(self):
        info = self._hop_info
        if self._hops_local is None:
            return info
        fl = self._hops_local[0]
        near = self._near
        hf, ha = np.repeat(fl, near.shape[1]), near.ravel()
        rows = self._rows() if self._store is not None else None
        out = _coincidence_core(self.n_frames, hf, ha, self._w, self._dt, self._n_perm, self.seed,
                                self._pa.n_ligands, rows,
                                phase=lambda total: self._bar(total, "permutation null", unit="batch"))
        out.update(info)
        return out

    def _finish(self) -> "CouplingResult":
        pa, n, frames, dt = self._pa, self.n_frames, self.frames, self._dt
        if self._broken:
            pa.warn_broken(sorted(self._broken.values(), key=lambda x: (x["frame"], x["anion"])))
        pair, ev_s, ev_e, A, pearson_all = self._tracker.finish()
        n_an = pa.n_anions
        ev_cat, ev_an = pair // n_an, pair % n_an
        n_ev = len(pair)
        ev_lig = pa.ligands[ev_an, A] if n_ev else np.zeros(0, dtype=np.int64)
        defined = pearson_all[np.isfinite(pearson_all)]
        edges = np.linspace(-1, 1, 21)
        hist = np.histogram(defined, bins=edges)[0]
        co = self._coincidence()
        meta = {"cation": self._cation, "center": pa.center_species, "ligand": pa.ligand_species,
                "cluster": pa.meta.get("cluster_species"), "frames": int(n), "dt_ps": dt,
                "first_frame": int(frames[0]), "min_residence_frames": int(self._min_frames),
                "shell_definition": "|C→cation| < shell (minimum image)",
                "A_definition": "ligand of C nearest to the cation at the event start",
                "pearson_definition": "Pearson r of θ_CNa(t) and θ_CA(t) over the event (paper 003 Fig. 3d)",
                "n_undefined": int(n_ev - len(defined)), "cutoff_A": pa.cutoff, "cutoff_source": pa.cutoff_source,
                "memory_budget_bytes": int(self.budget), "frames_per_chunk": int(self.frames_per_chunk),
                "coincidence_store": (None if self._store is None else
                                      ("memory" if self._store.in_memory else "scratch file"))}
        return CouplingResult(
            cation=self._cation, species=pa.label, n_cations=int(len(self._cat_idx)), n_anions=int(n_an),
            shell_A=float(self._shell), shell_source=self._shell_source, min_residence_ps=float(self._min_res),
            n_events=int(n_ev), event_cation=self._cat_idx[ev_cat].astype(np.int64),
            event_anion=ev_an.astype(np.int64), event_ligand=np.asarray(ev_lig, dtype=np.int64),
            event_start_frame=frames[ev_s] if n_ev else np.zeros(0, np.int64),
            event_stop_frame=np.where(ev_e < n, frames[np.minimum(ev_e, n - 1)], frames[-1] + 1) if n_ev
            else np.zeros(0, np.int64),
            event_duration_ps=(ev_e - ev_s - 1) * dt, event_pearson=pearson_all, pearson=defined,
            pearson_mean=float(defined.mean()) if len(defined) else None,
            pearson_median=float(np.median(defined)) if len(defined) else None,
            fraction_coupled=float(np.mean(defined > 0.5)) if len(defined) else None,
            pearson_histogram={"edges": edges, "counts": hist}, g_r=self._g_r, coincidence=co, meta=meta)


def coupling(traj, *, cation, center=None, ligand=None, cutoff=None, cluster=None, polyanions=None, shell=None,
             min_residence=DEFAULT_MIN_RESIDENCE_PS, hops=None, hop_a=None, hop_residence=3.0, hop_window=9.0,
             coincidence_window=DEFAULT_COINCIDENCE_WINDOW_PS, n_nearest=2, n_permutations=DEFAULT_PERMUTATIONS,
             seed=0, start=None, stop=None, step=None, block_frames=None, progress=None, use_ext=True,
             memory=None) -> CouplingResult:
    """Cation–polyanion coupling: residence-event Pearson r and hop–rotation coincidence.

    Parameters
    ----------
    traj : Trajectory
    cation : str
        Mobile cation species (``"Na"``).
    center, ligand, cutoff, cluster, polyanions :
        Polyanion definition (see :func:`~anionmotion.analysis.polyanions.find_polyanions`).
    shell : float, optional, Å
        First-shell radius around the centres; default the first minimum of g_C–cation(r).
    min_residence : float, ps
        Minimum residence time of an event (default 1 ps).
    hops : HopsResult, optional
        Hop events of the cation; computed with :func:`anionmotion.hops` (``hop_a``,
        ``hop_residence``, ``hop_window``) when not given.
    coincidence_window : float, ps
        Half-width w of the coincidence window (default 1 ps).
    n_nearest : int
        Polyanions nearest to a hopping cation used by the coincidence measure (default 2).
    n_permutations, seed : int
        Null-distribution resamplings and random seed.
    start, stop, step : int, optional
        Frame range.
    block_frames : int, optional
        Largest number of frames per streamed chunk (default: set by ``memory``).
    progress : bool, optional
    use_ext : bool
        Compiled kernels (True) or the numpy twins.
    memory : int or str, optional
        Memory budget (``"2GB"``); default half of the available RAM.  Peak
        memory does not grow with the trajectory length (see :class:`Coupling`).

    Returns
    -------
    CouplingResult

    Notes
    -----
    θ_CNa(t) = ∠(r_CNa(t), r_CNa(t_s)), θ_CA(t) = ∠(r_CA(t), r_CA(t_s)) over
    t_s ≤ t < t_e, minimum-image vectors from the centre C (clusters: the
    centre of mass).  r = Σ(x − x̄)(y − ȳ) / √(Σ(x − x̄)² Σ(y − ȳ)²).  A pair
    (cation, anion) gives one event per maximal run of frames with
    |r_CNa| < shell lasting at least ``min_residence``.  The runs and the
    sums are found in one streamed pass (:class:`ResidenceTracker`); r equals
    the two-pass value of the whole event to rounding (≈1e-15 relative).

    References
    ----------
    SPEC §5; paper 003 Fig. 3d and Fig. S20.
    """
    return Coupling(cation, center=center, ligand=ligand, cutoff=cutoff, cluster=cluster, polyanions=polyanions,
                    shell=shell, min_residence=min_residence, hops=hops, hop_a=hop_a, hop_residence=hop_residence,
                    hop_window=hop_window, coincidence_window=coincidence_window, n_nearest=n_nearest,
                    n_permutations=n_permutations, seed=seed, block_frames=block_frames, memory=memory,
                    progress=progress, use_ext=use_ext).run(traj, start=start, stop=stop, step=step)
