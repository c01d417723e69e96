"""Partial radial distribution functions, coordination numbers and free-energy profiles (SPEC §7).

:func:`rdf` (the :class:`RDF` analysis) streams frames, histograms the minimum-image (any-image when the
cell is small) distances of every requested pair with the compiled cell-list
kernel, and normalises by the ideal-gas count of each frame's own volume (NPT
cells are handled frame by frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..elements import normalize_symbol
from .._validate import check_int, check_number
from ..errors import OptionError, OptionTypeError
from ..kernels.pbc import distance_histogram
from ..results import Result
from ..units import KB_EV
from ._streaming import capped_chunk_frames, cell_stats, frame_blocks, run_frame_blocks
from .base import AnalysisBase, format_bytes

__all__ = ["rdf", "RDF", "RDFResult", "parse_pair", "first_minimum"]

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
    counts : dict of str -> ndarray of int64, shape (n_bins,), or None
        The raw pair-distance histograms Σ_t H_ab,t (ordered pairs).
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
    counts: dict | None = None

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
        """The result's table (:meth:`tables`) as CSV text."""
        return self.tables()[0].to_csv()


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


#: most periodic replicas of the cell counted when rmax exceeds half its smallest width
MAX_REPLICAS = 1000
#: most cell-list bins of one frame's pair search
MAX_CELL_BINS = 2e8


def _widths_over(traj, frame_range, reduce, block=65536):
    """Perpendicular widths (3,) Å of the analysed cells reduced over frames with ``reduce`` (np.max / np.min)."""
    from ..kernels.pbc import perpendicular_widths

    cells = traj.cells
    start, stop, step = frame_range
    n = len(frame_range)
    if getattr(traj, "cell_constant", False) or n == 0:
        return perpendicular_widths(np.asarray(cells[start], dtype=np.float64)[None])[0]
    out = None
    with np.errstate(all="ignore"):
        for k0 in range(0, n, block):
            k1 = min(n, k0 + block)
            c = np.asarray(cells[start + k0 * step:start + (k1 - 1) * step + 1:step], dtype=np.float64)
            w = reduce(perpendicular_widths(c), axis=0)
            out = w if out is None else reduce(np.stack([out, w]), axis=0)
    return out


def _where(traj) -> str:
    """``"path: "`` of a trajectory read from a file, else ``""``."""
    path = getattr(traj, "path", None)
    return f"{path}: " if path else ""


def max_widths(traj, frame_range):
    """Largest perpendicular width along each cell vector over the analysed frames, Å."""
    return _widths_over(traj, frame_range, np.max)


def min_widths_per_axis(traj, frame_range):
    """Smallest perpendicular width along each cell vector over the analysed frames, Å."""
    return _widths_over(traj, frame_range, np.min)


class _RDFAccumulator:
    """Pair-distance histograms of one block of frames and its Σ_t 1/V_t (picklable plan in, state out)."""

    def __init__(self, plan):
        self.plan = plan
        self.hist = {k: np.zeros(plan["bins"], dtype=np.int64) for k in plan["keys"]}
        self.ideal_per_volume = 0.0
        self.n = 0

    def add(self, chunk):
        p = self.plan
        self.ideal_per_volume += float(np.sum(1.0 / chunk.volumes))
        com = p["polyanions"].com(chunk) if p["needs_com"] else None
        pos = chunk.positions - chunk.origins[:, None, :]
        for (a, b), k in zip(p["pairs"], p["keys"]):
            pa = com if a == COM else pos[:, p["cols"][a]]
            pb = com if b == COM else pos[:, p["cols"][b]]
            if len(pa[0] if len(pa) else []) == 0:
                continue
            self.hist[k] += distance_histogram(pa, pb, chunk.cells, rmax=p["rmax"], n_bins=p["bins"], same=(a == b))
        self.n += chunk.n_frames

    def state(self):
        return {"hist": self.hist, "ideal_per_volume": self.ideal_per_volume, "n": self.n}


class RDF(AnalysisBase):
    """Streamed partial g(r) (the class behind :func:`rdf`; same parameters).

    Histograms are int64 counts, so a run split into frame blocks (``mapper``) gives the same counts as the
    serial pass, bit for bit; only Σ 1/V_t is a float sum (equal to rounding).
    """

    name = "g(r)"
    needs_velocities = False
    needs_unwrap = False  # distances are periodic; COMs use minimum-image member vectors

    def __init__(self, pairs, *, rmax=None, bins=400, temperature=None, polyanions=None, frames_per_chunk=None,
                 mapper=None, source=None, block_frames=None, memory=None, progress=None, use_ext=True):
        super().__init__(memory=memory, progress=progress, use_ext=use_ext)
        self.pairs_arg, self.rmax, self.bins_arg = pairs, rmax, bins
        self.temperature, self.polyanions = temperature, polyanions
        self.fixed_chunk = check_int(frames_per_chunk, "frames_per_chunk", minimum=1, allow_none=True)
        self.mapper, self.source, self.block_frames = mapper, source, block_frames

    def _atoms(self):
        return self.read_idx

    def _bytes_per_frame(self, n_atoms_read):
        # raw float32 + float64 positions, the origin-shifted copy, per-pair selections and cell-list work
        return int(n_atoms_read) * 24 * 6

    def _chunk_frames(self):
        return self.fixed_chunk if self.fixed_chunk is not None else capped_chunk_frames(self)

    def _validate_options(self, traj):
        pairs = self.pairs_arg
        if isinstance(pairs, (str, tuple)):
            pairs = [pairs]
        if not isinstance(pairs, (list, np.ndarray)) or not all(isinstance(p, (str, tuple, list)) for p in pairs):
            raise OptionTypeError(f"pairs must be a pair such as 'Li-Li' or a list of them; got {self.pairs_arg!r}")
        pairs = [parse_pair(p) for p in pairs]
        if not pairs:
            raise OptionError("give at least one pair, e.g. pairs=['Li-Li']")
        bins = check_int(self.bins_arg, "bins", minimum=1)
        temperature = self.temperature
        if temperature is None:
            md = traj.metadata if isinstance(traj.metadata, dict) else {}
            temperature = md.get("temperature", md.get("temperature_K"))     # the file's, as the MSD reads it
        if temperature is not None:
            try:
                temperature = check_number(temperature, "temperature", positive=True, unit="K")
            except OptionError:
                raise OptionError(f"temperature must be a positive number of kelvin; got {temperature}") from None
        needs_com = any(COM in p for p in pairs)
        if needs_com and self.polyanions is None:
            raise OptionError(f"pairs with {COM} need polyanions= (from anionmotion.find_polyanions)")
        self.pairs, self.bins, self.temperature, self.needs_com = pairs, bins, temperature, needs_com

    def run(self, traj, start=None, stop=None, step=None):
        self._validate_options(traj)  # option errors before the frame range (as before)
        return super().run(traj, start, stop, step)

    def _prepare(self):
        traj, pairs, bins, needs_com = self.traj, self.pairs, self.bins, self.needs_com
        polyanions = self.polyanions
        with self._phase(self.n_frames, "cells", unit="frame") as bar:
            _, _, min_width = cell_stats(traj, self.frame_range)
            bar.update(self.n_frames)
        half_w = 0.5 * min_width
        rmax = self.rmax
        if rmax is None:
            rmax = min(10.0, half_w)
        else:
            try:
                rmax = check_number(rmax, "rmax", positive=True, unit="Å")
            except OptionError:
                raise OptionError(f"rmax must be a positive distance in Å; got {rmax}") from None
        self.rmax_A, self.half_w = float(rmax), half_w
        self._check_cell_work(max_widths(traj, self.frame_range), min_width)
        species_needed = sorted({s for p in pairs for s in p if s != COM})
        sel_species = traj.select(species_needed) if species_needed else np.zeros(0, dtype=np.int64)
        extra = polyanions.atoms if needs_com else np.zeros(0, dtype=np.int64)
        self.read_idx = np.union1d(sel_species, extra).astype(np.int64)
        sp_read = traj.species[self.read_idx]
        cols = {s: np.nonzero(sp_read == s)[0] for s in species_needed}
        counts = {s: len(cols[s]) for s in species_needed}
        if needs_com:
            counts[COM] = polyanions.n_anions
            if polyanions.n_atoms != traj.n_atoms:
                raise OptionError(f"polyanions were identified in a structure of {polyanions.n_atoms} atoms; "
                                  f"the trajectory has {traj.n_atoms}")
        self.counts = counts
        self.keys = [f"{a}-{b}" for a, b in pairs]
        fpc = self._chunk_frames()
        self.frames_per_chunk = fpc
        self.use_blocks = self.mapper is not None
        if self.use_blocks:
            bf = self.block_frames if self.block_frames is not None else max(fpc, -(-self.n_frames // 8))
            self.blocks = frame_blocks(self.frame_range, bf)
        else:
            self.blocks = None
        hist_bytes = 8 * bins * len(self.keys)
        # per pair: the histogram, one partial histogram per kernel thread (2) and their sum, g, n(r), F and the
        # temporaries of _finish (edges, r, shells, ideal counts, cumulative sums …), plus one per frame block
        held = 14 + (len(self.blocks) if self.blocks else 0)
        if hist_bytes * held > 0.5 * self.budget:
            raise OptionError(f"{bins} bins × {len(self.keys)} pairs need {format_bytes(hist_bytes * held)}, more "
                              f"than half the memory budget {format_bytes(self.budget)}; use fewer bins or a larger "
                              "memory= (--memory)")
        self.plan = {"pairs": pairs, "keys": self.keys, "cols": cols, "rmax": self.rmax_A, "bins": bins,
                     "needs_com": needs_com, "polyanions": polyanions if needs_com else None}
        self.acc = _RDFAccumulator(self.plan)

    def _check_cell_work(self, wmax, wmin):
        """Refuse cells and ranges whose pair search cannot fit the memory budget (before allocating).

        The compiled kernel cuts each cell into bins of about rmax/2 (one int64 per bin and thread), and
        replicates the cell when rmax exceeds half its smallest width; a damaged cell (10⁹ Å, or 10³⁰ Å,
        which overflows the bin count) or ``rmax=1000`` in a 12 Å cell would otherwise allocate without bound.
        """
        rmax = self.rmax_A
        if not (np.isfinite(wmin) and wmin > 0 and np.all(np.isfinite(wmax))):
            raise OptionError(f"{_where(self.traj)}the cell has a non-finite or zero width (smallest perpendicular width {wmin} Å); "
                              "g(r) needs a periodic cell")
        reps = np.maximum(1.0, np.ceil(2 * rmax / np.asarray(min_widths_per_axis(self.traj, self.frame_range))
                                       * (1 + 1e-12)))
        n_rep = float(np.prod(reps))
        if n_rep > MAX_REPLICAS:
            raise OptionError(f"rmax {rmax:g} Å is {rmax / wmin:.3g} times the smallest cell width ({wmin:.4g} Å): "
                              f"counting every periodic image would replicate the cell {n_rep:.3g} times; give "
                              f"rmax ≤ {MAX_REPLICAS ** (1 / 3) / 2 * wmin:.4g} Å (at most {MAX_REPLICAS} replicas)")
        bins_per_axis = np.floor(2 * np.asarray(wmax, dtype=np.float64) / rmax)
        n_cells = float(np.prod(np.maximum(bins_per_axis, 1.0)))
        need = 16.0 * n_cells        # int64 heads, two threads
        if n_cells > MAX_CELL_BINS or need > 0.25 * self.budget:
            raise OptionError(f"{_where(self.traj)}the cell is up to {float(np.max(wmax)):.4g} Å wide: a cell list with rmax "
                              f"{rmax:g} Å has {n_cells:.3g} bins ({format_bytes(need)}, more than a quarter of the "
                              f"memory budget {format_bytes(self.budget)} or {MAX_CELL_BINS:.0e} bins); is the cell "
                              "right? Else use a larger rmax (--rmax)")

    def _iterate(self, desc="reading"):
        if not self.use_blocks:
            return super()._iterate(desc)
        source = self.source if self.source is not None else self.traj
        with self._phase(self.n_frames, f"{desc} ({len(self.blocks)} frame blocks)", unit="frame") as bar:
            for st in run_frame_blocks(_RDFAccumulator, self.plan, source, self.blocks,
                                       frames_per_chunk=self.frames_per_chunk, atoms=self.read_idx,
                                       unwrap=False, mapper=self.mapper, bar=bar):
                for k in self.keys:
                    self.acc.hist[k] += st["hist"][k]
                self.acc.ideal_per_volume += st["ideal_per_volume"]
                self.acc.n += st["n"]

    def _accumulate(self, chunk):
        self.acc.add(chunk)

    def _finish(self):
        pairs, keys, bins, counts = self.pairs, self.keys, self.bins, self.counts
        rmax, n_frames, temperature = self.rmax_A, self.n_frames, self.temperature
        hist, ideal_per_volume = self.acc.hist, self.acc.ideal_per_volume
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
        fr = self.frame_range
        half_w = self.half_w
        meta = {
            "pairs": keys, "rmax_A": rmax, "bins": bins, "dr_A": rmax / bins, "frames": [fr.start, fr.stop, fr.step],
            "half_min_cell_width_A": half_w,
            "images": ("minimum image" if rmax <= half_w * (1 + 1e-12) else
                       "every periodic image within rmax (rmax exceeds half the cell width)"),
            "normalisation": "ideal-gas count per frame volume; same-species pairs use N_b − 1",
            "free_energy": "F = −k_B T ln g (eV)" if temperature is not None else "not computed (temperature unknown)",
            "kernel": "compiled cell lists (ext/_pbc.pyx)", "memory_bytes": int(self.budget),
            "frame_blocks": None if not self.blocks else len(self.blocks),
        }
        return RDFResult(r_A=r, edges_A=edges, g=g, coordination=coord, first_shell=first,
                         free_energy_eV=fe if temperature is not None else None,
                         temperature_K=None if temperature is None else float(temperature), n_frames=n_frames,
                         n_pairs=npairs, meta=meta, counts=hist)


def rdf(traj, pairs, *, rmax=None, bins=400, temperature=None, polyanions=None, start=None, stop=None, step=None,
        frames_per_chunk=None, progress=None, memory=None, mapper=None, source=None, block_frames=None) -> RDFResult:
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
    frames_per_chunk : int, optional
        Frames read at a time (default: from the memory budget).
    progress : bool, optional
        Progress bar of the reading pass.
    memory : str or int, optional
        Memory budget, e.g. ``"2GB"`` (default half of the available RAM); the histograms are checked
        against it before they are allocated.
    mapper : callable, optional
        ``mapper(function, items) -> results`` (in order) running blocks of frames as separate tasks (e.g.
        Dask); the int64 histograms are summed in block order, identical to the serial pass.
    source : str or (str, dict), optional
        Path (and :func:`anionmotion.open` options) the block tasks open themselves (process or remote
        workers); default the trajectory object.
    block_frames : int, optional
        Frames per block task (default an eighth of the run, at least one chunk).

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
    return RDF(pairs, rmax=rmax, bins=bins, temperature=temperature, polyanions=polyanions,
               frames_per_chunk=frames_per_chunk, mapper=mapper, source=source, block_frames=block_frames,
               memory=memory, progress=progress).run(traj, start, stop, step)
