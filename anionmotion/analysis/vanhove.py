"""Van Hove self and distinct functions and the non-Gaussian parameter, streamed (SPEC §9).

``vanhove(traj, species="Li")`` returns a :class:`VanHoveResult`:

* **G_s(r, τ)** at a set of lag times τ (log-spaced by default, or given), from a histogram of the
  self displacements |r_i(t+τ) − r_i(t)| of the unwrapped positions over every origin t (or every
  ``origin_stride``-th), normalised so that Σ_k G_s(r_k) · 4π/3 (r_k+³ − r_k−³) = 1 (the discrete
  ∫ 4πr² G_s dr = 1; displacements beyond ``rmax`` are counted in ``fraction_beyond_rmax``);
* **G_d(r, τ)** between different atoms of the selection, |r_j(t+τ) − r_i(t)| with the triclinic
  minimum image (the compiled cell-list kernel of g(r)), normalised like g(r) — by the ideal-gas count
  N(N − 1)/V · 4π/3 (r₊³ − r₋³) of each origin frame's volume — so that G_d → 1 at large r and
  G_d(r, 0) = g(r) of the selection;
* **α₂(τ) = 3⟨Δr⁴⟩/(5⟨Δr²⟩²) − 1** exact at *every* lag by FFT
  (:class:`anionmotion.kernels.vanhove.NonGaussianAccumulator`, the same out-of-core pattern as the MSD:
  a :class:`~anionmotion.analysis.base.SeriesStore` of the selection's positions read back in atom
  blocks), and the same moments directly at the histogram lags (equal when every origin is used).

Streaming
---------
One pass over the trajectory.  A sliding window keeps the last ``max_lag`` frames of the selected atoms
(24 · N · max_lag bytes, checked against a quarter of the memory budget before the pass): every new frame
is paired with the frames ``lag`` before it, so the histograms use every origin without keeping the
trajectory.  The window is a ring buffer (frame t in row t mod (max_lag + chunk)), written in place and never
shifted or copied, so the pass holds one window, not two.  It is bounded by the largest lag, not by the
trajectory's length.  The α₂ store holds
24 · N · T bytes in memory when that fits a quarter of the budget and in a scratch file otherwise (deleted
afterwards); its FFT runs over atom blocks that fit a quarter of the budget.

Drift correction (the framework's centre-of-mass displacement subtracted from every selected atom) follows
:func:`anionmotion.msd`: on whenever there are framework atoms, so α₂ here and in the MSD describe the same
displacements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import OptionError
from ..kernels.vanhove import (NonGaussianAccumulator, alpha2_from_moments, distinct_histogram,
                               moments_workspace_bytes_per_atom, self_histogram)
from ..results import Result, to_jsonable
from ._streaming import cell_stats
from .msd import drift_rule
from .base import AnalysisBase, SeriesStore, format_bytes

__all__ = ["vanhove", "VanHove", "VanHoveResult", "DEFAULT_N_LAGS", "DEFAULT_DISTINCT_ORIGINS",
           "default_lags"]

DEFAULT_N_LAGS = 8
"""Log-spaced lags of the default set."""
DEFAULT_DISTINCT_ORIGINS = 1000
"""The default distinct-part origin stride keeps about this many origins per lag (every frame when fewer)."""
RING_FRACTION = 0.25
"""Largest share of the memory budget for the sliding window of the last ``max_lag`` frames."""
MAX_CHUNK_BYTES = 64 * 1024 ** 2
"""Largest working set of one read chunk (bytes)."""


@dataclass(frozen=True, repr=False)
class VanHoveResult(Result):
    """Self and distinct van Hove functions and the non-Gaussian parameter of a selection (SPEC §9).

    Attributes
    ----------
    species : str
    n_atoms : int
        N, atoms in the selection.
    n_frames : int
    dt_ps : float, ps
        Frame spacing.
    lag_ps : ndarray, shape (K,), ps
        Lags of the histograms (``lag_frames`` · dt).
    lag_frames : ndarray, shape (K,), int64
    r_A : ndarray, shape (n_bins,), Å
        Bin centres.
    edges_A : ndarray, shape (n_bins + 1,), Å
    G_s : ndarray, shape (K, n_bins), Å⁻³
        Self part: Σ_k G_s(r_k, τ) · ΔV_k = 1 − fraction beyond rmax, ΔV_k = 4π/3 (r_k+³ − r_k−³).
    radial_self : ndarray, shape (K, n_bins), Å⁻¹
        4πr²G_s(r, τ) averaged over each bin: the probability density of |Δr| (∫ dr = 1).
    G_d : ndarray, shape (K, n_bins), dimensionless, or None
        Distinct part, → 1 at large r, = g(r) of the selection at τ = 0.
    self_counts, distinct_counts : ndarray, shape (K, n_bins), int64 (distinct: or None)
        Raw histograms (vectors; ordered pairs i ≠ j), summed over origins.
    n_origins_self, n_origins_distinct : ndarray, shape (K,), int64
        Origins behind each lag.
    fraction_beyond_rmax : ndarray, shape (K,)
        Share of the self displacements with |Δr| ≥ rmax.
    msd_at_lags_A2, m4_at_lags_A4 : ndarray, shape (K,), Å², Å⁴
        ⟨Δr²⟩ and ⟨Δr⁴⟩ over the same origins as G_s (every displacement, also beyond rmax).
    alpha2_at_lags : ndarray, shape (K,)
        3 m4 / (5 msd²) − 1 from those sums.
    alpha2_lag_ps : ndarray, shape (T,), ps, or None
        Every lag m·dt, m = 0 … T − 1, of the exact FFT moments.
    alpha2 : ndarray, shape (T,), or None
        α₂ at every lag, all origins (NaN at lag 0).
    msd_A2 : ndarray, shape (T,), Å², or None
        ⟨Δr²⟩ at every lag (the MSD of the selection, with the same drift choice).
    m4_A4 : ndarray, shape (T,), Å⁴, or None
        ⟨Δr⁴⟩ at every lag.
    meta : dict
        rmax, bins, origins, drift choice, memory plan, normalisations.
    """

    species: str
    n_atoms: int
    n_frames: int
    dt_ps: float
    lag_ps: np.ndarray
    lag_frames: np.ndarray
    r_A: np.ndarray
    edges_A: np.ndarray
    G_s: np.ndarray
    radial_self: np.ndarray
    G_d: Optional[np.ndarray]
    self_counts: np.ndarray
    distinct_counts: Optional[np.ndarray]
    n_origins_self: np.ndarray
    n_origins_distinct: np.ndarray
    fraction_beyond_rmax: np.ndarray
    msd_at_lags_A2: np.ndarray
    m4_at_lags_A4: np.ndarray
    alpha2_at_lags: np.ndarray
    alpha2_lag_ps: Optional[np.ndarray] = None
    alpha2: Optional[np.ndarray] = None
    msd_A2: Optional[np.ndarray] = None
    m4_A4: Optional[np.ndarray] = None
    meta: dict = field(default_factory=dict)

    def gaussian_self(self, k) -> np.ndarray:
        """The Gaussian G_s(r) with the MSD of lag ``k`` (Å⁻³): (3/(2π⟨Δr²⟩))^{3/2} exp(−3r²/(2⟨Δr²⟩)).

        Evaluated as a bin average (the probability of each shell divided by its volume), comparable bin by
        bin with :attr:`G_s`.
        """
        from scipy.special import erf

        m2 = float(self.msd_at_lags_A2[k])
        e = np.asarray(self.edges_A, dtype=np.float64)
        if not m2 > 0:
            out = np.zeros(len(e) - 1)
            out[0] = 1.0 / (4.0 / 3.0 * np.pi * e[1] ** 3)
            return out
        s = math.sqrt(m2 / 3.0)  # per-direction standard deviation
        x = e / (math.sqrt(2.0) * s)
        cdf = erf(x) - np.sqrt(2.0 / np.pi) * (e / s) * np.exp(-x * x)  # P(|Δr| < e) of a 3-D Gaussian
        return np.diff(cdf) / (4.0 / 3.0 * np.pi * np.diff(e ** 3))

    def to_dict(self) -> dict:
        return to_jsonable({
            "species": self.species, "n_atoms": self.n_atoms, "n_frames": self.n_frames, "dt_ps": self.dt_ps,
            "lag_ps": self.lag_ps, "lag_frames": self.lag_frames, "r_A": self.r_A, "edges_A": self.edges_A,
            "G_s_A-3": self.G_s, "radial_self_A-1": self.radial_self, "G_d": self.G_d,
            "self_counts": self.self_counts, "distinct_counts": self.distinct_counts,
            "n_origins_self": self.n_origins_self, "n_origins_distinct": self.n_origins_distinct,
            "fraction_beyond_rmax": self.fraction_beyond_rmax, "msd_at_lags_A2": self.msd_at_lags_A2,
            "m4_at_lags_A4": self.m4_at_lags_A4, "alpha2_at_lags": self.alpha2_at_lags,
            "alpha2_lag_ps": self.alpha2_lag_ps, "alpha2": self.alpha2, "msd_A2": self.msd_A2, "m4_A4": self.m4_A4,
            "alpha2_max": self.alpha2_max(), "meta": self.meta,
        })

    def alpha2_max(self) -> Optional[dict]:
        """Largest α₂ over the FFT lags (or the histogram lags) and its lag: ``{"alpha2", "lag_ps"}``."""
        if self.alpha2 is not None and len(self.alpha2) > 1:
            a, lag = np.asarray(self.alpha2[1:]), np.asarray(self.alpha2_lag_ps[1:])
        else:
            a, lag = np.asarray(self.alpha2_at_lags), np.asarray(self.lag_ps)
        ok = np.isfinite(a)
        if not ok.any():
            return None
        i = int(np.argmax(np.where(ok, a, -np.inf)))
        return {"alpha2": float(a[i]), "lag_ps": float(lag[i])}

    def summary(self) -> str:
        m = self.meta
        lines = [f"van Hove of {self.species}: {self.n_atoms} atoms, {self.n_frames} frames, dt {self.dt_ps:g} ps, "
                 f"r < {m['rmax_A']:.3f} Å in {len(self.r_A)} bins",
                 f"drift        {'framework centre of mass subtracted' if m.get('drift') else 'not corrected'} "
                 f"({m.get('drift_reason')})",
                 f"{'lag/ps':>10} {'origins':>8} {'MSD/Å²':>10} {'α₂':>8} {'|Δr|≥rmax':>10}"]
        for k in range(len(self.lag_ps)):
            lines.append(f"{self.lag_ps[k]:>10.4g} {int(self.n_origins_self[k]):>8d} {self.msd_at_lags_A2[k]:>10.4g} "
                         f"{self.alpha2_at_lags[k]:>8.3f} {self.fraction_beyond_rmax[k]:>10.3g}")
        mx = self.alpha2_max()
        if mx is not None:
            lines.append(f"max α₂ = {mx['alpha2']:.3f} at {mx['lag_ps']:.4g} ps"
                         + (" (every lag, all origins, FFT)" if self.alpha2 is not None else " (histogram lags)"))
        return "\n".join(lines)

    def __repr__(self):
        return (f"VanHoveResult(species={self.species!r}, n_atoms={self.n_atoms}, n_frames={self.n_frames}, "
                f"lags={len(self.lag_ps)})")


def default_lags(n_frames, max_lag_frames, n_lags=DEFAULT_N_LAGS) -> np.ndarray:
    """Log-spaced lags 1 … ``max_lag_frames`` (frames), ``n_lags`` of them before removing duplicates."""
    hi = int(max(1, min(max_lag_frames, n_frames - 1)))
    return np.unique(np.round(np.geomspace(1, hi, max(1, int(n_lags)))).astype(np.int64))


class VanHove(AnalysisBase):
    """Streamed van Hove functions and α₂ (the class behind :func:`vanhove`; same parameters)."""

    name = "vanhove"
    needs_unwrap = True
    needs_velocities = False

    def __init__(self, species, *, lags=None, n_lags=DEFAULT_N_LAGS, max_lag=None, rmax=None, bins=200,
                 distinct=True, origin_stride=1, distinct_stride=None, n_origins=None, alpha2=True, drift=None,
                 framework=None, drift_weights=None, mode="auto", scratch_dir=None, workers=2, frames_per_chunk=None,
                 memory=None, progress=None, use_ext=True):
        super().__init__(memory=memory, progress=progress, use_ext=use_ext)
        if frames_per_chunk is not None and (int(frames_per_chunk) != frames_per_chunk or int(frames_per_chunk) < 1):
            raise OptionError(f"frames_per_chunk must be a positive integer; got {frames_per_chunk!r}")
        self.fixed_chunk = None if frames_per_chunk is None else int(frames_per_chunk)
        self.species, self.lags_arg, self.n_lags, self.max_lag = species, lags, n_lags, max_lag
        self.rmax_arg, self.bins_arg, self.distinct = rmax, bins, bool(distinct)
        for name, v in (("origin_stride", origin_stride), ("distinct_stride", distinct_stride),
                        ("n_origins", n_origins), ("n_lags", n_lags)):
            if v is not None and (int(v) != v or int(v) < 1):
                raise OptionError(f"{name} must be a positive integer; got {v!r}")
        self.origin_stride = int(origin_stride)
        self.distinct_stride_arg = None if distinct_stride is None else int(distinct_stride)
        self.n_origins = None if n_origins is None else int(n_origins)
        self.want_alpha2, self.drift, self.framework = bool(alpha2), drift, framework
        self.drift_weights = drift_weights
        if mode not in ("auto", "memory", "out-of-core"):
            raise OptionError(f"invalid mode {mode!r}; choose one of auto, memory, out-of-core")
        self.mode, self.scratch_dir, self.workers = mode, scratch_dir, workers

    # ------------------------------------------------------------------ setup
    def _atoms(self):
        return self._read

    def _bytes_per_frame(self, n_atoms_read):
        # reader output + raw buffer, unwrapping work (4 copies), the window row, displacements and the distinct
        # kernel's fractional copies of origin and later frames
        N = len(self._idx)
        return int(30 * n_atoms_read + 96 * n_atoms_read + 24 * N * 8)

    def _chunk_frames(self):
        return self._fpc

    def _selection(self, meta):
        traj = self.traj
        self._idx = traj.select(self.species)
        if len(self._idx) == 0:
            raise OptionError(f"the selection {self.species!r} is empty")
        fw, want, weights, reason = drift_rule(traj, self._idx, drift=self.drift, framework=self.framework,
                                               drift_weights=self.drift_weights)     # the MSD's rule
        self._fw = fw if want else np.zeros(0, np.int64)
        self._read = np.union1d(self._idx, self._fw).astype(np.int64)
        self._col_sel = np.searchsorted(self._read, self._idx)
        self._col_fw = np.searchsorted(self._read, self._fw)
        if want:
            w = traj.masses[self._fw] if weights == "mass" else np.ones(len(self._fw))
            self._w = w / w.sum()
        meta.update({"drift": bool(want), "drift_reason": reason, "drift_weights": weights if want else None,
                     "framework_species": sorted(set(traj.species[self._fw])) if want else []})

    def _lags(self, meta):
        T, dt = self.n_frames, self.dt
        if self.lags_arg is not None:
            lags_ps = np.atleast_1d(np.asarray(self.lags_arg, dtype=np.float64))
            if lags_ps.size == 0 or not np.all(np.isfinite(lags_ps)) or np.any(lags_ps < 0):
                raise OptionError(f"lags must be non-negative times in ps; got {self.lags_arg!r}")
            m = np.round(lags_ps / dt).astype(np.int64)
            far = np.abs(m * dt - lags_ps) > 0.01 * dt + 1e-12
            if np.any(far):
                raise OptionError(f"lag {lags_ps[far][0]:g} ps is not a multiple of the frame spacing {dt:g} ps")
            if m.max() > T - 1:
                raise OptionError(f"lag {lags_ps.max():g} ps exceeds the analysed run of {(T - 1) * dt:g} ps "
                                  f"({T} frames, dt {dt:g} ps)")
            lags = np.unique(m)
            meta["lags_source"] = "given"
        else:
            # the window of the largest lag (24 B per atom and frame plus 80 B per frame of times and drift) and
            # the histograms must fit the ring's share of the budget (the check in _prepare)
            hist_bytes = 8 * max(1, int(self.n_lags)) * max(1, int(self.bins_arg)) * 6
            cap = int(max(1, (RING_FRACTION * self.budget - hist_bytes) // (24 * len(self._idx) + 80)))
            hi = (T - 1) // 2 if self.max_lag is None else int(round(float(self.max_lag) / dt))
            if self.max_lag is not None and not (1 <= hi <= T - 1):
                raise OptionError(f"max_lag = {self.max_lag!r} ps must lie in [{dt:g}, {(T - 1) * dt:g}] ps")
            hi = max(1, min(hi, cap))
            lags = default_lags(T, hi, self.n_lags)
            meta["lags_source"] = (f"{self.n_lags} log-spaced lags from dt to "
                                   + ("half the run" if self.max_lag is None else "max_lag")
                                   + (" (capped by the memory budget)" if hi == cap and cap < (T - 1) // 2 else ""))
        self.lag_frames = lags
        self.L = int(lags.max())

    def _prepare(self):
        self._require_uniform("the van Hove analysis")
        if self.n_frames < 2:
            raise OptionError(f"{self.traj.path}: the van Hove analysis needs at least 2 frames; got {self.n_frames}")
        meta = {}
        self._selection(meta)
        self._lags(meta)
        T, N, L, budget = self.n_frames, len(self._idx), self.L, self.budget
        # histogram range
        _, constant, min_width = cell_stats(self.traj, self.frame_range)
        half_w = 0.5 * min_width
        rmax = self.rmax_arg
        if rmax is None:
            rmax = min(10.0, half_w)
        elif not (np.isfinite(rmax) and rmax > 0):
            raise OptionError(f"rmax must be a positive distance in Å; got {rmax}")
        if self.distinct and rmax > half_w * (1 + 1e-12):
            raise OptionError(f"rmax = {rmax:g} Å exceeds half the smallest cell width {half_w:g} Å; the distinct "
                              "part uses the minimum image (give a smaller rmax, or distinct=False / --no-distinct)")
        bins = int(self.bins_arg)
        if bins < 1:
            raise OptionError(f"bins must be a positive integer; got {self.bins_arg!r}")
        if self.distinct and N < 2:
            raise OptionError(f"the distinct part needs at least 2 atoms in the selection; {self.species!r} has {N}")
        self.rmax_A, self.bins = float(rmax), bins
        self.distinct_stride = (self.distinct_stride_arg if self.distinct_stride_arg is not None
                                else max(1, -(-T // DEFAULT_DISTINCT_ORIGINS)))
        # memory plan
        K = len(self.lag_frames)
        ring = 24 * N * L + 80 * L
        hist_bytes = 8 * K * bins * 6
        if ring + hist_bytes > RING_FRACTION * budget:
            raise OptionError(f"the largest lag ({L} frames, {L * self.dt:g} ps) needs a window of "
                              f"{format_bytes(ring)} for {N} atoms (plus {format_bytes(hist_bytes)} of histograms), "
                              f"more than a quarter of the memory budget {format_bytes(budget)}; use shorter lags "
                              "or a larger memory= (--memory)")
        per_frame = self._bytes_per_frame(len(self._read))
        fpc = int(max(1, min(T, min(budget // 8, MAX_CHUNK_BYTES) // max(per_frame, 1))))
        if self.fixed_chunk is not None:
            fpc = min(T, self.fixed_chunk)
        self._fpc = fpc
        estimate = ring + hist_bytes + fpc * (per_frame + 24 * N)
        if self.want_alpha2:
            per_atom = moments_workspace_bytes_per_atom(T) + 24 * T
            if per_atom > 0.25 * budget:
                raise OptionError(f"memory budget of {format_bytes(budget)} is too small for α₂ over {T} frames: one "
                                  f"atom's FFT needs {format_bytes(per_atom)}; give at least "
                                  f"{format_bytes(4 * per_atom)} (memory= / --memory) or alpha2=False")
            self._block = int(max(1, min(N, (0.25 * budget) // per_atom)))
            store_in_memory = self.mode == "memory" or (self.mode == "auto" and 24 * N * T <= 0.25 * budget)
            estimate += self._block * per_atom + (24 * N * T if store_in_memory else 0)
            self._store_mode = "memory" if store_in_memory else "out-of-core"
        else:
            self._block, self._store_mode = 0, None
        meta.update({"rmax_A": self.rmax_A, "bins": bins, "dr_A": self.rmax_A / bins,
                     "half_min_cell_width_A": half_w, "constant_cell": bool(constant),
                     "origin_stride": self.origin_stride, "distinct_stride": self.distinct_stride,
                     "distinct_stride_source": "given" if self.distinct_stride_arg is not None else
                     f"default: about {DEFAULT_DISTINCT_ORIGINS} origins per lag",
                     "n_origins_max": self.n_origins, "max_lag_frames": L,
                     "window_bytes": int(ring), "frames_per_chunk": fpc, "memory_budget_bytes": int(budget),
                     "memory_estimate_bytes": int(estimate), "alpha2_store": self._store_mode,
                     "atoms_per_fft_block": self._block,
                     "normalisation_self": "G_s = counts / (N · origins · 4π/3 (r+³ − r−³)); Σ G_s ΔV = 1 − beyond",
                     "normalisation_distinct": "G_d = counts / (N (N − 1) · Σ_origins 1/V_t · 4π/3 (r+³ − r−³))",
                     "images": "self: unwrapped displacements; distinct: minimum image in the origin frame's cell",
                     "selected_species": sorted(set(self.traj.species[self._idx]))})
        self._meta = meta

    # ------------------------------------------------------------------ pass
    def _start_pass(self):
        T, N, L = self.n_frames, len(self._idx), self.L
        K, bins = len(self.lag_frames), self.bins
        # ring buffer: frame t (within the analysed frames) lives in row t mod cap.  A chunk of n ≤ fpc frames
        # overwrites only frames older than t0 − L, which no lag needs any more; nothing is ever shifted (a
        # shift of the overlapping window made numpy copy the whole window into a temporary: 2× its bytes)
        cap = L + self._fpc
        self._win_cap = cap
        self._win = np.empty((cap, N, 3))
        self._win_cells = np.empty((cap, 3, 3))
        self._win_vol = np.empty(cap)
        self._t = 0
        self._hs = np.zeros((K, bins), np.int64)
        self._hd = np.zeros((K, bins), np.int64) if self.distinct else None
        self._s2 = np.zeros(K)
        self._s4 = np.zeros(K)
        self._ns = np.zeros(K, np.int64)
        self._nd = np.zeros(K, np.int64)
        self._invv = np.zeros(K)
        self._com0 = None
        self.store = None
        if self.want_alpha2:
            self.store = SeriesStore(3 * N, T, budget=self.budget, mode=self._store_mode, scratch_dir=self.scratch_dir,
                                     in_memory_fraction=0.25, prefix="anionmotion-vanhove-")
            self._meta["scratch_file_bytes"] = 0 if self.store.in_memory else int(self.store.nbytes)

    def _origins_ok(self, o, stride):
        ok = (o >= 0) & (o % stride == 0)
        if self.n_origins is not None:
            ok &= (o // stride) < self.n_origins
        return ok

    def _accumulate(self, chunk):
        p = chunk.positions
        n = p.shape[0]
        sel = p[:, self._col_sel]
        if len(self._fw):
            com = np.zeros((n, 3))
            for j, c in enumerate(self._col_fw):   # atom after atom: the same bits whatever the chunking
                com += self._w[j] * p[:, c]
            if self._com0 is None:
                self._com0 = com[0].copy()
            sel = sel - (com - self._com0)[:, None, :]
        t0 = self._t
        if self.store is not None:
            self.store.write(t0, sel)   # rows atom·3 + direction: the atom-major layout (N, 3, T)
        # write the chunk into the ring (one or two slices)
        cap = self._win_cap
        if n > cap - self.L:
            raise ValueError(f"chunk of {n} frames exceeds the window's spare rows ({cap - self.L})")
        r0 = t0 % cap
        k1 = min(n, cap - r0)
        for dst, src in ((slice(r0, r0 + k1), slice(0, k1)), (slice(0, n - k1), slice(k1, n))):
            if src.stop > src.start:
                self._win[dst] = sel[src]
                self._win_cells[dst] = chunk.cells[src]
                self._win_vol[dst] = chunk.volumes[src]
        t_new = np.arange(t0, t0 + n)
        for k, m in enumerate(self.lag_frames):
            o = t_new - m
            ok = self._origins_ok(o, self.origin_stride)
            if ok.any():
                rows_t, rows_o = t_new[ok] % cap, o[ok] % cap
                h, s2, s4 = self_histogram(self._win[rows_t] - self._win[rows_o], rmax=self.rmax_A, n_bins=self.bins)
                self._hs[k] += h
                self._s2[k] += s2
                self._s4[k] += s4
                self._ns[k] += int(ok.sum())
            if self.distinct:
                ok = self._origins_ok(o, self.distinct_stride)
                if ok.any():
                    rows_t, rows_o = t_new[ok] % cap, o[ok] % cap
                    self._hd[k] += distinct_histogram(self._win[rows_o], self._win[rows_t], self._win_cells[rows_o],
                                                      rmax=self.rmax_A, n_bins=self.bins, use_ext=self.use_ext)
                    self._invv[k] += float(np.sum(1.0 / self._win_vol[rows_o]))
                    self._nd[k] += int(ok.sum())
        self._t = t0 + n

    def run(self, traj, start=None, stop=None, step=None) -> VanHoveResult:
        """Analyse frames ``start:stop:step`` of ``traj``."""
        try:
            self._setup(traj, start, stop, step)
            self._prepare()
            self._start_pass()
            self._iterate("reading")
            self._win = self._win_cells = self._win_vol = None
            moments = self._moments() if self.store is not None else None
            return self._finish(moments)
        finally:
            self._release()

    def _release(self):
        self._win = None
        super()._release()
        self.store = None

    def _moments(self):
        T, N, B = self.n_frames, len(self._idx), self._block
        acc = NonGaussianAccumulator(T, B, workers=self.workers)
        with self._phase(N, "α₂ FFT over atom blocks", unit="atom") as bar:
            for _, rows in self.store.blocks(3 * B):
                block = rows.reshape(-1, 3, T)
                acc.add_atom_major(block)
                bar.update(block.shape[0])
                del rows, block
        acc.free_workspace()
        return acc.finish()

    def _finish(self, moments=None):
        N, bins, rmax = len(self._idx), self.bins, self.rmax_A
        edges = np.linspace(0.0, rmax, bins + 1)
        r = 0.5 * (edges[1:] + edges[:-1])
        shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
        dr = rmax / bins
        ns = np.maximum(self._ns, 1).astype(np.float64)
        G_s = self._hs / (N * ns[:, None] * shell[None, :])
        radial = self._hs / (N * ns[:, None] * dr)
        beyond = 1.0 - self._hs.sum(axis=1) / (N * ns)
        msd_k = self._s2 / (N * ns)
        m4_k = self._s4 / (N * ns)
        a2_k = alpha2_from_moments(msd_k, m4_k)
        G_d = None
        if self.distinct:
            with np.errstate(invalid="ignore", divide="ignore"):
                G_d = self._hd / (N * (N - 1) * self._invv[:, None] * shell[None, :])
        a2 = lag_all = m2 = m4 = None
        if moments is not None:
            m2, m4 = moments
            a2 = alpha2_from_moments(m2, m4)
            lag_all = np.arange(self.n_frames) * self.dt
        fr = self.frame_range
        meta = dict(self._meta)
        meta["frames"] = [fr.start, fr.stop, fr.step]
        meta["alpha2"] = ("exact at every lag: FFT fourth moment over all origins (kernels/vanhove.py)"
                          if moments is not None else "only at the histogram lags (alpha2=False)")
        return VanHoveResult(
            species=str(self.species) if isinstance(self.species, str) else "selection", n_atoms=int(N),
            n_frames=int(self.n_frames), dt_ps=float(self.dt), lag_ps=self.lag_frames * float(self.dt),
            lag_frames=self.lag_frames.copy(), r_A=r, edges_A=edges, G_s=G_s, radial_self=radial, G_d=G_d,
            self_counts=self._hs, distinct_counts=self._hd, n_origins_self=self._ns, n_origins_distinct=self._nd,
            fraction_beyond_rmax=beyond, msd_at_lags_A2=msd_k, m4_at_lags_A4=m4_k, alpha2_at_lags=a2_k,
            alpha2_lag_ps=lag_all, alpha2=a2, msd_A2=m2, m4_A4=m4, meta=meta)


def vanhove(traj, species, *, lags=None, n_lags=DEFAULT_N_LAGS, max_lag=None, rmax=None, bins=200, distinct=True,
            origin_stride=1, distinct_stride=None, n_origins=None, alpha2=True, drift=None, framework=None,
            drift_weights=None, start=None, stop=None, step=None, mode="auto", scratch_dir=None, workers=2,
            frames_per_chunk=None, memory=None, progress=None) -> VanHoveResult:
    """Self and distinct van Hove functions and the non-Gaussian parameter α₂, streamed (SPEC §9).

    Parameters
    ----------
    traj : Trajectory
        Evenly spaced frames.
    species : str or selection
        Atoms analysed, e.g. ``"Li"``.
    lags : sequence of float, optional, ps
        Lag times of G_s and G_d (multiples of the frame spacing; 0 allowed: G_d(r, 0) = g(r)).  Default:
        ``n_lags`` log-spaced lags from dt to ``max_lag``.
    n_lags : int
        Number of default lags (before duplicates after rounding to frames are removed).
    max_lag : float, optional, ps
        Largest default lag (default half the run, capped so that the window fits a quarter of the budget).
    rmax : float, optional, Å
        Histogram range (default min(10 Å, half the smallest perpendicular cell width)); with the distinct
        part at most half the smallest width (minimum image).
    bins : int
        Equal-width bins on [0, rmax).
    distinct : bool
        Compute G_d.
    origin_stride : int
        Origins of G_s (and of the moments at the histogram lags): every ``origin_stride``-th frame
        (default every frame).
    distinct_stride : int, optional
        Origins of G_d (default: every ⌈T/1000⌉-th frame, about 1000 origins per lag; the distinct
        histogram costs N² per origin).
    n_origins : int, optional
        At most this many origins per lag (the first ones); default every origin that fits.
    alpha2 : bool
        Also compute ⟨Δr²⟩, ⟨Δr⁴⟩ and α₂ at every lag by FFT (exact, all origins).
    drift, framework, drift_weights :
        Drift correction as in :func:`anionmotion.msd`: None = on whenever there are framework atoms (every
        atom neither selected nor a mobile cation), their centre of mass (``drift_weights="mass"``, default)
        or mean position (``"unweighted"``, the pymatgen ``DiffusionAnalyzer`` convention) subtracted.
    start, stop, step : int, optional
        Frame range.
    mode : {"auto", "memory", "out-of-core"}
        Where the α₂ position store lives (auto: in memory when 24·N·T bytes fit a quarter of the budget).
    scratch_dir : str, optional
    workers : int
        Threads for scipy.fft.
    frames_per_chunk : int, optional
        Frames read at a time (default: from the memory budget, at most 64 MiB of work).
    memory : str or int, optional
        Memory budget (default half the available RAM).
    progress : bool, optional

    Returns
    -------
    VanHoveResult

    Notes
    -----
    G_s(r, τ) = (1/N) Σ_i ⟨δ(r − |r_i(t+τ) − r_i(t)|)⟩_t / (4πr²), binned as counts / (N · n_origins ·
    4π/3 (r₊³ − r₋³)), so that Σ G_s ΔV = 1 when every displacement is below rmax.
    G_d(r, τ) = V/(N(N−1)) Σ_{i≠j} ⟨δ(r − |r_j(t+τ) − r_i(t)|_mi)⟩ / (4πr²) with the volume of each origin
    frame (NPT: Σ_t 1/V_t as in g(r)), minimum image in the origin frame's cell.
    α₂(τ) = 3⟨Δr⁴⟩ / (5⟨Δr²⟩²) − 1 (3-D; 0 for Gaussian displacements).  Peak memory: the window of
    ``max_lag`` frames (24·N·max_lag bytes), one read chunk, the histograms and the α₂ FFT block; the α₂
    position store (24·N·T bytes) goes to a scratch file when it does not fit a quarter of the budget.

    References
    ----------
    SPEC §9; L. Van Hove, Phys. Rev. 95, 249 (1954); A. Rahman, Phys. Rev. 136, A405 (1964) (α₂).
    """
    return VanHove(species, lags=lags, n_lags=n_lags, max_lag=max_lag, rmax=rmax, bins=bins, distinct=distinct,
                   origin_stride=origin_stride, distinct_stride=distinct_stride, n_origins=n_origins, alpha2=alpha2,
                   drift=drift, framework=framework, drift_weights=drift_weights, mode=mode, scratch_dir=scratch_dir,
                   workers=workers,
                   frames_per_chunk=frames_per_chunk, memory=memory, progress=progress).run(traj, start, stop, step)
