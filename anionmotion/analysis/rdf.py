"""Partial radial distribution functions, coordination numbers and free-energy profiles (SPEC §7).

:func:`rdf` streams frames, histograms the minimum-image (any-image when the
cell is small) distances of every requested pair with the compiled cell-list
kernel, and normalises by the ideal-gas count of each frame's own volume (NPT
cells are handled frame by frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..elements import normalize_symbol
from ..errors import OptionError
from ..kernels.pbc import distance_histogram, perpendicular_widths
from ..results import Result
from ._streaming import stream_chunks
from ..units import KB_EV

__all__ = ["rdf", "RDFResult", "parse_pair", "first_minimum"]

COM = "COM"
"""Pseudo-species of a pair naming the polyanion centres of mass (needs ``polyanions=``)."""


@dataclass(frozen=True)
class RDFResult(Result):
    """Time-averaged partial g_ab(r) of several pairs.

    Attributes
    ----------
    r_A : ndarray, shape (n_bins,), Å
        Bin centres.
    edges_A : ndarray, shape (n_bins + 1,), Å
    g : dict of str -> ndarray, shape (n_bins,), dimensionless
        g_ab(r) per pair ``"A-B"``.
    coordination : dict of str -> ndarray, shape (n_bins,), atoms
        n_ab(r) = 4πρ_b ∫_0^r g r'² dr', the mean number of b within r of an a
        (evaluated at the upper bin edges).
    first_shell : dict of str -> dict
        ``r_peak_A``, ``r_min_A`` (first minimum after the first peak) and
        ``coordination`` n_ab(r_min) per pair (None when g has no minimum in range).
    free_energy_eV : dict of str -> ndarray, shape (n_bins,), eV, or None
        F(r) = −k_B T ln g(r) (NaN where g = 0); None when the temperature is unknown.
    temperature_K : float or None, K
    n_frames : int
    n_pairs : dict of str -> [int, int]
        N_a and N_b of each pair.
    meta : dict
        rmax, bins, frames, normalisation, image treatment.
    """

    r_A: np.ndarray
    edges_A: np.ndarray
    g: dict
    coordination: dict
    first_shell: dict
    free_energy_eV: dict | None
    temperature_K: float | None
    n_frames: int
    n_pairs: dict
    meta: dict = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"g(r)  {self.n_frames} frames, r < {self.meta['rmax_A']:.3f} Å in {len(self.r_A)} bins"
                 + (f", T = {self.temperature_K:g} K" if self.temperature_K else "")]
        lines.append(f"{'pair':>10} {'N_a':>6} {'N_b':>6} {'r_peak/Å':>9} {'g_peak':>8} {'r_min/Å':>8} {'n(r_min)':>9}")
        for p, g in self.g.items():
            fs = self.first_shell[p]
            gp = float(np.max(g)) if len(g) else float("nan")

            def f(x, fmt):
                return format(x, fmt) if x is not None else "-"
            lines.append(f"{p:>10} {self.n_pairs[p][0]:>6d} {self.n_pairs[p][1]:>6d} {f(fs['r_peak_A'], '9.3f')} "
                         f"{gp:>8.3f} {f(fs['r_min_A'], '8.3f')} {f(fs['coordination'], '9.3f')}")
        return "\n".join(lines)

    def to_csv(self) -> str:
        keys = list(self.g)
        cols = [self.r_A] + [self.g[k] for k in keys] + [self.coordination[k] for k in keys]
        head = ["r_A"] + [f"g_{k}" for k in keys] + [f"n_{k}" for k in keys]
        if self.free_energy_eV is not None:
            cols += [self.free_energy_eV[k] for k in keys]
            head += [f"F_{k}_eV" for k in keys]
        rows = [",".join(head)] + [",".join(f"{x:.8g}" for x in r) for r in np.column_stack(cols)]
        return "\n".join(rows) + "\n"


def parse_pair(pair):
    """``"Li-P"``, ``"Li P"``, ``("Li", "P")`` → ("Li", "P"); ``COM`` names polyanion centres of mass."""
    if isinstance(pair, str):
        parts = pair.replace(":", "-").replace(" ", "-").split("-")
        parts = [p for p in parts if p]
    else:
        parts = list(pair)
    if len(parts) != 2:
        raise OptionError(f"invalid pair {pair!r}; expected two species such as 'Li-Li' or 'Li-P' "
                          f"(or 'Li-{COM}' for polyanion centres of mass)")
    return tuple(COM if str(p).upper() == COM else normalize_symbol(str(p)) for p in parts)


def first_minimum(r, g, *, smooth_A=0.15):
    """(r_peak, r_min): the highest peak's position and the first minimum after it (None if none in range).

    g is smoothed with a running mean about ``smooth_A`` wide (at least 3 bins); the minimum is the first
    point after the peak that is the lowest within ± that width (so single-bin noise is not a minimum) and
    below the peak.  A flat run of zeros after the peak counts from its first point.
    """
    r = np.asarray(r, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if len(g) < 3 or not np.any(g > 0):
        return None, None
    dr = (r[-1] - r[0]) / max(len(r) - 1, 1)
    w = max(1, int(round(0.5 * smooth_A / dr))) if dr > 0 else 1
    kernel = np.ones(2 * w + 1) / (2 * w + 1)
    gs = np.convolve(np.pad(g, w, mode="edge"), kernel, mode="valid")
    ip = int(np.argmax(gs))
    for i in range(ip + 1, len(g) - 1):
        lo, hi = max(0, i - w), min(len(g), i + w + 1)
        if gs[i] <= gs[lo:hi].min() and gs[i] < gs[ip] and (hi < len(g) or gs[i] < gs[i - 1] or gs[i] == 0):
            return float(r[int(np.argmax(g[:i]))]), float(r[i])
    return float(r[int(np.argmax(g))]), None


def rdf(traj, pairs, *, rmax=None, bins=400, temperature=None, polyanions=None, start=None, stop=None, step=None,
        frames_per_chunk=256, progress=None) -> RDFResult:
    """Time-averaged partial radial distribution functions g_ab(r) (SPEC §7).

    Parameters
    ----------
    traj : Trajectory
    pairs : str or sequence
        ``"Li-Li"``, ``["Li-Li", "Li-P"]`` or tuples.  ``"Li-COM"`` pairs Li
        with the polyanion centres of mass (give ``polyanions``).
    rmax : float, optional, Å
        Range (default: min(10 Å, half the smallest perpendicular cell width
        over the frames)).  A larger value is allowed: every periodic image
        within rmax is then counted.
    bins : int
        Number of equal-width bins on [0, rmax).
    temperature : float, optional, K
        For F(r) = −k_B T ln g(r); default the trajectory's ``metadata["temperature"]``
        when present, else no free energy.
    polyanions : Polyanions, optional
        From :func:`anionmotion.find_polyanions`, for ``COM`` pairs.
    start, stop, step : int, optional
        Frame range.
    frames_per_chunk : int
        Frames read at a time (memory bound).

    Returns
    -------
    RDFResult

    Notes
    -----
    g_ab(r) = Σ_t H_ab,t(r) / Σ_t [N_a N'_b / V_t · 4π/3 (r₊³ − r₋³)], with H the
    number of (a, b) pairs in the shell, N'_b = N_b − 1 when a = b (ordered pairs
    i ≠ j, so an ideal gas gives g = 1 exactly) and V_t the volume of frame t.
    n_ab(r) = Σ_t Σ_{r' < r} H_ab,t / (N_a · n_frames).  F(r) = −k_B T ln g(r), eV.

    References
    ----------
    SPEC §7; paper 000 Fig. 4b (cation–anion-centre free energy).
    """
    if isinstance(pairs, (str, tuple)):
        pairs = [pairs]
    pairs = [parse_pair(p) for p in pairs]
    if not pairs:
        raise OptionError("give at least one pair, e.g. pairs=['Li-Li']")
    bins = int(bins)
    if bins < 1:
        raise OptionError(f"bins must be a positive integer; got {bins}")
    if temperature is None:
        temperature = traj.metadata.get("temperature") if isinstance(traj.metadata, dict) else None
    if temperature is not None and not (np.isfinite(temperature) and temperature > 0):
        raise OptionError(f"temperature must be a positive number of kelvin; got {temperature}")
    needs_com = any(COM in p for p in pairs)
    if needs_com and polyanions is None:
        raise OptionError(f"pairs with {COM} need polyanions= (from anionmotion.find_polyanions)")
    fr_start, fr_stop, fr_step = traj._frame_range(None, start, stop, step)
    n_frames = len(range(fr_start, fr_stop, fr_step))
    if n_frames < 1:
        raise OptionError("the frame range is empty; g(r) needs at least 1 frame")
    cells_all = traj.cells[fr_start:fr_stop:fr_step]
    half_w = 0.5 * float(perpendicular_widths(cells_all).min())
    if rmax is None:
        rmax = min(10.0, half_w)
    elif not (np.isfinite(rmax) and rmax > 0):
        raise OptionError(f"rmax must be a positive distance in Å; got {rmax}")
    rmax = float(rmax)

    # atoms to read and the columns of each species in the chunk
    species_needed = sorted({s for p in pairs for s in p if s != COM})
    sel_species = traj.select(species_needed) if species_needed else np.zeros(0, dtype=np.int64)
    extra = polyanions.atoms if needs_com else np.zeros(0, dtype=np.int64)
    read_idx = np.union1d(sel_species, extra).astype(np.int64)
    sp_read = traj.species[read_idx]
    cols = {s: np.nonzero(sp_read == s)[0] for s in species_needed}
    counts = {s: len(cols[s]) for s in species_needed}
    if needs_com:
        counts[COM] = polyanions.n_anions
        if polyanions.n_atoms != traj.n_atoms:
            raise OptionError(f"polyanions were identified in a structure of {polyanions.n_atoms} atoms; "
                              f"the trajectory has {traj.n_atoms}")
    keys = [f"{a}-{b}" for a, b in pairs]
    hist = {k: np.zeros(bins, dtype=np.int64) for k in keys}
    ideal_per_volume = 0.0  # Σ_t 1/V_t
    need_unwrap = False  # distances are periodic; COMs use minimum-image member vectors
    for chunk in stream_chunks(traj, need_unwrap, frames_per_chunk, read_idx, start=fr_start, stop=fr_stop,
                         step=fr_step, progress=progress, desc="g(r)"):
        ideal_per_volume += float(np.sum(1.0 / chunk.volumes))
        com = polyanions.com(chunk) if needs_com else None
        pos = chunk.positions - chunk.origins[:, None, :]
        for (a, b), k in zip(pairs, keys):
            pa = com if a == COM else pos[:, cols[a]]
            pb = com if b == COM else pos[:, cols[b]]
            if len(pa[0] if len(pa) else []) == 0:
                continue
            hist[k] += distance_histogram(pa, pb, chunk.cells, rmax=rmax, n_bins=bins, same=(a == b))
    edges = np.linspace(0.0, rmax, bins + 1)
    r = 0.5 * (edges[1:] + edges[:-1])
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    g, coord, first, fe, npairs = {}, {}, {}, {}, {}
    for (a, b), k in zip(pairs, keys):
        na, nb = counts[a], counts[b]
        nb_eff = nb - 1 if a == b else nb
        npairs[k] = [int(na), int(nb)]
        if na == 0 or nb_eff <= 0:
            raise OptionError(f"pair {k}: needs at least one {a} and one other {b} atom (found {na} and {nb})")
        ideal = na * nb_eff * ideal_per_volume * shell
        g[k] = hist[k] / ideal
        coord[k] = np.cumsum(hist[k]) / (na * n_frames)
        rp, rm = first_minimum(r, g[k])
        n_first = None
        if rm is not None:
            n_first = float(coord[k][min(bins - 1, int(np.searchsorted(edges, rm, side="right")) - 1)])
        first[k] = {"r_peak_A": rp, "r_min_A": rm, "coordination": n_first}
        if temperature is not None:
            with np.errstate(divide="ignore"):
                fe[k] = np.where(g[k] > 0, -KB_EV * temperature * np.log(np.where(g[k] > 0, g[k], 1.0)), np.nan)
    meta = {
        "pairs": keys, "rmax_A": rmax, "bins": bins, "dr_A": rmax / bins, "frames": [fr_start, fr_stop, fr_step],
        "half_min_cell_width_A": half_w,
        "images": ("minimum image" if rmax <= half_w * (1 + 1e-12) else
                   "every periodic image within rmax (rmax exceeds half the cell width)"),
        "normalisation": "ideal-gas count per frame volume; same-species pairs use N_b − 1",
        "free_energy": "F = −k_B T ln g (eV)" if temperature is not None else "not computed (temperature unknown)",
        "kernel": "compiled cell lists (ext/_pbc.pyx)",
    }
    return RDFResult(r_A=r, edges_A=edges, g=g, coordination=coord, first_shell=first,
                     free_energy_eV=fe if temperature is not None else None,
                     temperature_K=None if temperature is None else float(temperature), n_frames=n_frames,
                     n_pairs=npairs, meta=meta)

