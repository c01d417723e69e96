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
from .polyanions import Polyanions, find_polyanions, parse_species

__all__ = ["coupling", "CouplingResult", "coincidence", "first_shell_radius", "min_image_rows",
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
    if cells.ndim == 2:
        cells = np.broadcast_to(cells, (len(d), 3, 3))
    inv = np.linalg.inv(cells)
    s = np.einsum("nk,nkl->nl", d, inv)
    s -= np.rint(s)
    best = np.einsum("nk,nkl->nl", s, cells)
    r2 = np.einsum("nk,nk->n", best, best)
    need = r2 >= half_widths2(cells)
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
    edges = np.arange(0.0, r_max + dr, dr)
    n, _ = np.histogram(distances, bins=edges)
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
    n = u.shape[0]
    w = int(window_frames)
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

    def dtheta(frames, anions):
        a = u[frames - w, anions]            # (..., L, 3)
        b = u[frames + w, anions]
        c = np.clip(np.einsum("...lk,...lk->...l", a, b), -1, 1)
        return np.nanmean(np.degrees(np.arccos(c)), axis=-1)

    s = float(dtheta(hf, ha).mean())
    rng = np.random.default_rng(seed)
    null = np.empty(int(n_permutations))
    batch = max(1, int(2e6 // max(len(hf) * u.shape[2], 1)))
    for k0 in range(0, len(null), batch):   # batches of resamplings (vectorised inside)
        kb = min(batch, len(null) - k0)
        rf = rng.integers(w, n - w, size=(kb, len(hf)))
        null[k0:k0 + kb] = dtheta(rf, np.broadcast_to(ha, rf.shape)).mean(axis=1)
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


def load_system(traj, pa: Polyanions, cation_idx, *, start=None, stop=None, step=None, progress=None,
                use_ext=True):
    """Read the cations and the polyanions: positions, centres, unit ligand vectors.

    Returns
    -------
    dict with ``frames``, ``times`` (ps), ``cells`` (Å), ``cat`` (n_frames, n_cat, 3) Å unwrapped cation
    positions, ``cen`` (n_frames, n_anions, 3) Å centres (centre atom or centre of mass), ``lig``
    (n_frames, n_anions, n_lig, 3) Å centre→ligand vectors, ``u`` unit vectors.
    """
    atoms = np.union1d(cation_idx, pa.atoms).astype(np.int64)
    ch = traj.read(atoms=atoms, start=start, stop=stop, step=step, progress=progress)
    col = np.searchsorted(ch.atom_indices, cation_idx)
    lig = pa.ligand_vectors(ch, use_ext=use_ext)
    if pa.is_cluster:
        cen = pa.com(ch, use_ext=use_ext)
    else:
        cen = ch.positions[:, np.searchsorted(ch.atom_indices, pa.centers), :]
    with np.errstate(invalid="ignore"):
        u = lig / np.linalg.norm(lig, axis=-1, keepdims=True)
    return {"frames": ch.frame_indices, "times": ch.times, "cells": ch.cells, "cat": ch.positions[:, col, :],
            "cen": cen, "lig": lig, "u": u}


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


def coupling(traj, *, cation, center=None, ligand=None, cutoff=None, cluster=None, polyanions=None, shell=None,
             min_residence=DEFAULT_MIN_RESIDENCE_PS, hops=None, hop_a=None, hop_residence=3.0, hop_window=9.0,
             coincidence_window=DEFAULT_COINCIDENCE_WINDOW_PS, n_nearest=2, n_permutations=DEFAULT_PERMUTATIONS,
             seed=0, start=None, stop=None, step=None, block_frames=512, progress=None,
             use_ext=True) -> CouplingResult:
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
    block_frames : int
        Frames per block when computing the centre–cation distances (bounds the temporary memory).
    progress : bool, optional
    use_ext : bool
        Compiled kernels (True) or the numpy twins.

    Returns
    -------
    CouplingResult

    Notes
    -----
    θ_CNa(t) = ∠(r_CNa(t), r_CNa(t_s)), θ_CA(t) = ∠(r_CA(t), r_CA(t_s)) over
    t_s ≤ t < t_e, minimum-image vectors from the centre C (clusters: the
    centre of mass).  r = Σ(x − x̄)(y − ȳ) / √(Σ(x − x̄)² Σ(y − ȳ)²).  A pair
    (cation, anion) gives one event per maximal run of frames with
    |r_CNa| < shell lasting at least ``min_residence``.

    References
    ----------
    SPEC §5; paper 003 Fig. 3d and Fig. S20.
    """
    cs = parse_species(cation, "cation")
    if cs is None or len(cs) != 1:
        raise OptionError(f"cation must be one species (e.g. cation='Na'); got {cation!r}")
    cation = cs[0]
    cat_idx = traj.select(species=cation)
    if polyanions is None:
        s0 = slice(start, stop, step).indices(traj.n_frames)[0] if traj.n_frames else 0
        polyanions = find_polyanions(traj, center=center, ligand=ligand, cutoff=cutoff, cluster=cluster, frame=s0)
    pa = polyanions
    if np.intersect1d(cat_idx, pa.atoms).size:
        raise OptionError(f"the cation species {cation} is part of the polyanions")
    # None means "the default" for the optional numeric settings
    min_residence = DEFAULT_MIN_RESIDENCE_PS if min_residence is None else min_residence
    coincidence_window = DEFAULT_COINCIDENCE_WINDOW_PS if coincidence_window is None else coincidence_window
    n_permutations = DEFAULT_PERMUTATIONS if n_permutations is None else n_permutations
    n_nearest = 2 if n_nearest is None else n_nearest
    hop_residence = 3.0 if hop_residence is None else hop_residence
    hop_window = 9.0 if hop_window is None else hop_window
    if not float(min_residence) > 0:
        raise OptionError(f"min_residence must be a positive time in ps; got {min_residence}")
    if shell is not None and not (np.isfinite(float(shell)) and float(shell) > 0):
        raise OptionError(f"shell must be a positive distance in Å; got {shell}")
    if int(n_nearest) < 1:
        raise OptionError(f"n_nearest must be at least 1; got {n_nearest}")
    if not float(coincidence_window) > 0:
        raise OptionError(f"coincidence_window must be a positive time in ps; got {coincidence_window}")
    if int(n_permutations) < 1:
        raise OptionError(f"n_permutations must be at least 1; got {n_permutations}")
    sysd = load_system(traj, pa, cat_idx, start=start, stop=stop, step=step, progress=progress, use_ext=use_ext)
    times, frames, cells = sysd["times"], sysd["frames"], sysd["cells"]
    n = len(times)
    if n < 3:
        raise OptionError(f"coupling needs at least 3 frames; got {n}")
    pa.warn_broken(pa.broken_ligands(sysd["lig"], int(frames[0])))
    dt = float(np.median(np.diff(times)))
    n_cat, n_an = len(cat_idx), pa.n_anions
    # pass 1 (frame blocks): centre–cation distances → in-shell flags and the g(r) histogram
    r_max = float(np.sqrt(half_widths2(cells).min()))
    dist_blocks = []
    for b0 in range(0, n, block_frames):
        v = _centre_cation_vectors(sysd, use_ext, frames=np.arange(b0, min(n, b0 + block_frames)))
        d = np.linalg.norm(v, axis=-1).reshape(v.shape[0], -1).astype(np.float32)
        dist_blocks.append(d)
    dist = np.concatenate(dist_blocks)            # (n, n_cat * n_an) float32, pair p = i * n_an + a
    g_r = {}
    if shell is None:
        sub = dist[::max(1, n // 2000)]
        r_sh, rr, gg = first_shell_radius(sub[sub < r_max], float(np.mean(np.abs(np.linalg.det(cells)))),
                                          n_cat * n_an, len(sub), r_max=r_max)
        shell, shell_source = r_sh, SHELL_SOURCE_AUTO
        g_r = {"r_A": rr, "g": gg}
    else:
        shell, shell_source = float(shell), "user"
    inside = dist < shell
    min_frames = max(1, int(math.ceil(float(min_residence) / dt - 1e-9)) + 1)   # duration (len − 1)·dt ≥ min
    runs = residence_runs(inside, min_frames, use_ext=use_ext)
    ev_pair, ev_s, ev_e = runs[:, 0], runs[:, 1], runs[:, 2]
    ev_cat, ev_an = ev_pair // n_an, ev_pair % n_an
    n_ev = len(runs)
    pearson_all = np.full(n_ev, np.nan)
    ev_lig = np.zeros(n_ev, dtype=np.int64)
    if n_ev:
        lens = ev_e - ev_s
        eid = np.repeat(np.arange(n_ev), lens)
        tt = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(ev_s, lens)
        ci, ai = ev_cat[eid], ev_an[eid]
        cna = min_image_rows(sysd["cat"][tt, ci] - sysd["cen"][tt, ai], cells[tt])      # (N, 3) C → cation
        cna0 = cna[np.cumsum(lens) - lens][eid]                                         # at the event start
        # A: ligand nearest to the cation at the start
        s_idx = np.cumsum(lens) - lens
        lig0 = sysd["lig"][ev_s, ev_an]                                                 # (E, L, 3) C → ligands
        dCA = np.linalg.norm(cna[s_idx][:, None, :] - lig0, axis=-1)
        dCA = np.where(np.isnan(dCA), np.inf, dCA)
        A = np.argmin(dCA, axis=1)
        ev_lig = pa.ligands[ev_an, A]
        ca = sysd["lig"][tt, ai, A[eid]]
        ca0 = ca[s_idx][eid]
        x = _angle(cna, cna0)
        y = _angle(ca, ca0)
        # Pearson r per event with segment sums
        cnt = lens.astype(np.float64)
        mx = np.bincount(eid, x, n_ev) / cnt
        my = np.bincount(eid, y, n_ev) / cnt
        dx, dy = x - mx[eid], y - my[eid]
        sxy = np.bincount(eid, dx * dy, n_ev)
        sxx = np.bincount(eid, dx * dx, n_ev)
        syy = np.bincount(eid, dy * dy, n_ev)
        den = np.sqrt(sxx * syy)
        ok = den > 1e-12
        pearson_all[ok] = sxy[ok] / den[ok]
    defined = pearson_all[np.isfinite(pearson_all)]
    edges = np.linspace(-1, 1, 21)
    hist = np.histogram(defined, bins=edges)[0]
    # hops and the coincidence measure
    co = _coincidence_from_hops(traj, sysd, pa, cation, cat_idx, hops, hop_a, hop_residence, hop_window,
                                coincidence_window, n_nearest, n_permutations, seed, start, stop, step, progress,
                                use_ext, dt)
    meta = {"cation": cation, "center": pa.center_species, "ligand": pa.ligand_species,
            "cluster": pa.meta.get("cluster_species"), "frames": int(n), "dt_ps": dt, "first_frame": int(frames[0]),
            "min_residence_frames": int(min_frames), "shell_definition": "|C→cation| < shell (minimum image)",
            "A_definition": "ligand of C nearest to the cation at the event start",
            "pearson_definition": "Pearson r of θ_CNa(t) and θ_CA(t) over the event (paper 003 Fig. 3d)",
            "n_undefined": int(n_ev - len(defined)), "cutoff_A": pa.cutoff, "cutoff_source": pa.cutoff_source}
    return CouplingResult(
        cation=cation, species=pa.label, n_cations=int(n_cat), n_anions=int(n_an), shell_A=float(shell),
        shell_source=shell_source, min_residence_ps=float(min_residence), n_events=int(n_ev),
        event_cation=cat_idx[ev_cat].astype(np.int64), event_anion=ev_an.astype(np.int64), event_ligand=ev_lig,
        event_start_frame=frames[ev_s] if n_ev else np.zeros(0, np.int64),
        event_stop_frame=np.where(ev_e < n, frames[np.minimum(ev_e, n - 1)], frames[-1] + 1) if n_ev
        else np.zeros(0, np.int64),
        event_duration_ps=(ev_e - ev_s - 1) * dt, event_pearson=pearson_all, pearson=defined,
        pearson_mean=float(defined.mean()) if len(defined) else None,
        pearson_median=float(np.median(defined)) if len(defined) else None,
        fraction_coupled=float(np.mean(defined > 0.5)) if len(defined) else None,
        pearson_histogram={"edges": edges, "counts": hist}, g_r=g_r, coincidence=co, meta=meta)


def nearest_anions(sysd, cat_local, frame_local, k, use_ext=True):
    """Indices of the k polyanion centres nearest to each (cation, frame), shape (n, k)."""
    cat_local = np.asarray(cat_local)
    frame_local = np.asarray(frame_local)
    if len(cat_local) == 0:
        return np.zeros((0, k), dtype=np.int64)
    d = sysd["cat"][frame_local, cat_local][:, None, :] - sysd["cen"][frame_local]          # (n, A, 3)
    n, A = d.shape[:2]
    v = min_image_rows(d.reshape(-1, 3), np.repeat(sysd["cells"][frame_local], A, axis=0)).reshape(n, A, 3)
    r = np.linalg.norm(v, axis=-1)
    k = min(k, A)
    return np.argsort(r, axis=1, kind="stable")[:, :k]


def _coincidence_from_hops(traj, sysd, pa, cation, cat_idx, hops_res, hop_a, hop_residence, hop_window, window_ps,
                           n_nearest, n_permutations, seed, start, stop, step, progress, use_ext, dt):
    if hops_res is None:
        from .hops import hops as run_hops

        try:
            hops_res = run_hops(traj, species=cation, a=hop_a, residence=hop_residence, window=hop_window,
                                start=start, stop=stop, step=step, progress=progress)
        except OptionError as err:
            return {"n_hops": 0, "n_pairs": 0, "note": f"hops not computed: {err}"}
    ev_atom = np.asarray(hops_res.event_atom, dtype=np.int64)
    ev_frame = np.asarray(hops_res.event_frame, dtype=np.int64)
    sel = np.isin(ev_atom, cat_idx)
    ev_atom, ev_frame = ev_atom[sel], ev_frame[sel]
    hop_info = {"n_hops": int(len(ev_atom)), "hop_a_A": float(getattr(hops_res, "a_A", float("nan"))),
                "hop_residence_ps": float(getattr(hops_res, "residence_ps", float("nan"))),
                "hop_window_ps": float(getattr(hops_res, "window_ps", float("nan"))),
                "cation_jump_frequency_per_ns": float(getattr(hops_res, "jump_frequency_per_ns", float("nan"))),
                "n_nearest": int(n_nearest)}
    if len(ev_atom) == 0:
        out = {"n_pairs": 0, "note": "no hops detected", "window_ps": float(window_ps)}
        out.update(hop_info)
        return out
    fl = _local_frames(sysd["frames"], ev_frame)
    cl = np.searchsorted(cat_idx, ev_atom)
    near = nearest_anions(sysd, cl, fl, int(n_nearest), use_ext)
    w = max(1, int(round(float(window_ps) / dt)))
    out = coincidence(sysd["u"], np.repeat(fl, near.shape[1]), near.ravel(), window_frames=w, dt_ps=dt,
                      n_permutations=n_permutations, seed=seed)
    out.update(hop_info)
    return out
