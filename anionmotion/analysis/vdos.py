"""Velocity autocorrelation and vibrational density of states (SPEC §6).

:func:`vdos` (the :class:`VDOS` analysis) streams the velocities of a
selection (from the file, or central differences of the unwrapped positions)
into a series store, computes the exact all-origin VACF of every species by
FFT in blocks of atoms, and turns it into the mass-weighted VDOS with its band
centres.  Memory is bounded by ``memory=`` at any trajectory length.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .._validate import check_choice
from ..errors import OptionError, SamplingWarning
from ..kernels.correlate import WINDOWS, acf_sum, spectrum_from_acf
from ..results import Result
from ..units import AMU_A2_PS2_EV, KB_EV, THZ_TO_CM1, THZ_TO_MEV
from ._streaming import capped_chunk_frames, check_acf_memory, correlate_store, stream_chunks
from .base import AnalysisBase, SeriesStore

__all__ = ["vdos", "VDOS", "VDOSResult", "velocity_segments", "band_center"]


@dataclass(frozen=True)
class VDOSResult(Result):
    """VACF and VDOS of a selection, per species and total.

    Attributes
    ----------
    freq_THz : ndarray, shape (n_freq,), THz
        Frequencies ν from 0 to ``max_freq`` (or the Nyquist frequency).
    freq_cm1 : ndarray, shape (n_freq,), cm⁻¹
    freq_meV : ndarray, shape (n_freq,), meV
    vdos : dict of str -> ndarray, shape (n_freq,), 1/THz
        g(ν) per species and ``"total"`` (mass-weighted).  Each is normalised
        so that ∫_0^{ν_Nyq} g dν = 3·N of that selection (N_species or N_total).
    band_center_THz : dict of str -> float, THz
        ν̄ = ∫ν g dν / ∫g dν over [0, ν_max] per species and ``"total"``.
    lag_ps : ndarray, shape (n_lags,), ps
    vacf : dict of str -> ndarray, shape (n_lags,), Å²/ps²
        ⟨v_i(t0+t)·v_i(t0)⟩ averaged over origins and atoms of each species;
        ``"total"`` is the plain average over all selected atoms.
    vacf_mass_weighted : ndarray, shape (n_lags,), amu·Å²/ps²
        (1/N) Σ_i m_i ⟨v_i(t0+t)·v_i(t0)⟩ (the function whose transform is the total VDOS).
    n_atoms : dict of str -> int
    kinetic_temperature_K : dict of str -> float, K
        m⟨v²⟩/(3 k_B) per species and total, from the lag-0 VACF (a check of the velocities).
    meta : dict
        Parameters, estimator (all-origin FFT or single origin, segments), velocity source, window.
    """

    freq_THz: np.ndarray
    freq_cm1: np.ndarray
    freq_meV: np.ndarray
    vdos: dict
    band_center_THz: dict
    lag_ps: np.ndarray
    vacf: dict
    vacf_mass_weighted: np.ndarray
    n_atoms: dict
    kinetic_temperature_K: dict
    meta: dict = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"VDOS  ({self.meta.get('velocity_source')} velocities, {self.meta.get('origins')} origins, "
                 f"window {self.meta.get('window')}, Δt {self.meta.get('dt_ps'):.6g} ps, "
                 f"Nyquist {self.meta.get('nyquist_THz'):.4g} THz, ν_max {self.meta.get('max_freq_THz'):.4g} THz)"]
        lines.append(f"{'species':>8} {'N':>6} {'T_kin/K':>9} {'ν̄/THz':>8} {'ν̄/cm-1':>9} {'ν̄/meV':>8}")
        for s in list(self.n_atoms) + ["total"]:
            nc = self.band_center_THz[s]
            n = self.n_atoms[s] if s in self.n_atoms else sum(self.n_atoms.values())
            lines.append(f"{s:>8} {n:>6d} {self.kinetic_temperature_K[s]:>9.1f} {nc:>8.3f} "
                         f"{nc * THZ_TO_CM1:>9.1f} {nc * THZ_TO_MEV:>8.2f}")
        return "\n".join(lines)

    def to_csv(self) -> str:
        """The result's table (:meth:`tables`) as CSV text."""
        return self.tables()[0].to_csv()


def band_center(freq, g, nu_max=None):
    """ν̄ = ∫_0^{ν_max} ν g dν / ∫_0^{ν_max} g dν (trapezoid rule), THz; NaN if ∫g = 0."""
    freq = np.asarray(freq, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    keep = freq <= (np.inf if nu_max is None else nu_max * (1 + 1e-12))
    den = np.trapezoid(g[keep], freq[keep])
    if den == 0:
        return float("nan")
    return float(np.trapezoid(freq[keep] * g[keep], freq[keep]) / den)


def _central_difference(prev, block, nxt, dt):
    """Central differences (r(t+1) − r(t−1)) / 2Δt of ``block`` with neighbours ``prev``/``nxt`` (or one-sided)."""
    ext = [block] if prev is None else [prev[None], block]
    if nxt is not None:
        ext.append(nxt[None])
    r = np.concatenate(ext) if len(ext) > 1 else block
    off = 0 if prev is None else 1
    n = block.shape[0]
    v = np.empty_like(block)
    if r.shape[0] < 2:
        raise OptionError("finite-difference velocities need at least 2 frames")
    v_all = np.gradient(r, dt, axis=0, edge_order=1)  # central inside, one-sided at the ends
    v[...] = v_all[off:off + n]
    return v


def velocity_segments(traj, atoms, *, segment_frames, source, start=None, stop=None, step=None, progress=None):
    """Yield velocity blocks (n_frames_seg, n_atoms, 3), Å/ps, of consecutive frames.

    ``source`` is ``"file"`` (the trajectory's velocities) or ``"positions"``
    (central differences of the unwrapped positions; one-sided at the two ends
    of the trajectory, continuous across segments).
    """
    dt = None
    if source == "file":
        for ch in stream_chunks(traj, False, segment_frames, atoms, start=start, stop=stop, step=step,
                                progress=progress, desc="VACF"):
            v = ch.velocities
            del ch  # release the chunk's positions before the caller transforms the velocities
            yield v
            del v
        return
    pending = None
    prev = None
    for ch in traj.iter_chunks(segment_frames, atoms, start=start, stop=stop, step=step, progress=progress,
                               desc="VACF"):
        if dt is None:
            dt = _frame_dt(traj, step)
        if pending is not None:
            v = _central_difference(prev, pending, ch.positions[0], dt)
            prev = pending[-1]
            yield v
        pending = ch.positions
    if pending is not None:
        if prev is None and pending.shape[0] < 2:
            raise OptionError("finite-difference velocities need at least 2 frames")
        yield _central_difference(prev, pending, None, dt)


def _frame_dt(traj, step):
    return traj.dt * (1 if step is None else int(step))


class VDOS(AnalysisBase):
    """Streamed VACF and VDOS of a selection (the class behind :func:`vdos`; same parameters).

    The velocities of every selected atom are written frame chunk by frame chunk into a
    :class:`~anionmotion.analysis.base.SeriesStore` (rows = atom × component; in memory when they fit half the
    budget, else an atom-major scratch file) and the exact all-origin VACF is computed from blocks of rows:
    the zero-padded power spectra of each block, weighted per species (indicator and mass), are summed and
    transformed back once.  The result equals the in-memory FFT of the whole series to rounding (≈1e-15
    relative) at any trajectory length; peak memory is set by ``memory``, not by the number of frames.
    With ``segment_frames`` the run is instead cut into segments whose VACFs are averaged (block
    averaging, as before); with ``origins="first"`` only the first frame's velocities are kept.
    """

    name = "vdos"

    def __init__(self, *, species=None, atoms=None, window="hann", max_freq=None, max_lag=None, velocities="auto",
                 origins="all", segment_frames=None, mapper=None, scratch_dir=None, store_mode="auto",
                 rows_per_block=None, memory=None, progress=None, use_ext=True):
        super().__init__(memory=memory, progress=progress, use_ext=use_ext)
        check_choice(velocities, "velocities", ("auto", "file", "positions"))
        check_choice(origins, "origins", ("all", "first"))
        check_choice(str(window).lower() if window is not None else "none", "window", WINDOWS)
        self.window = "none" if window is None else str(window).lower()
        self.species, self.atoms_sel = species, atoms
        self.max_freq, self.max_lag = max_freq, max_lag
        self.velocities, self.origins = velocities, origins
        self.segment_frames = segment_frames
        self.mapper, self.scratch_dir, self.store_mode = mapper, scratch_dir, store_mode
        self.rows_per_block = rows_per_block

    # ------------------------------------------------------------- hooks
    def _atoms(self):
        return self.sel

    def _bytes_per_frame(self, n_atoms_read):
        # raw float32 + float64 positions and velocities; central differences keep the pending chunk too
        return int(n_atoms_read) * 24 * (4 if self.source == "file" else 7)

    def _chunk_frames(self):
        if self.mode == "segments":
            return self.seg_frames
        return capped_chunk_frames(self)

    def _prepare(self):
        traj = self.traj
        self.sel = traj.select(self.species if self.species is not None else self.atoms_sel)
        if len(self.sel) == 0:
            raise OptionError("the selection is empty; nothing to analyse")
        n_frames = self.n_frames
        if n_frames < 2:
            raise OptionError(f"a VACF needs at least 2 frames; the frame range has {n_frames}")
        self._require_uniform("the VACF/VDOS")
        dt = self.dt
        self.nyquist = 1.0 / (2.0 * dt)
        if self.max_freq is not None and not (np.isfinite(self.max_freq) and self.max_freq > 0):
            raise OptionError(f"max_freq must be a positive frequency in THz; got {self.max_freq}")
        if self.max_lag is not None and not (np.isfinite(self.max_lag) and self.max_lag > 0):
            raise OptionError(f"max_lag must be a positive time in ps; got {self.max_lag}")
        source = self.velocities
        if source == "auto":
            source = "file" if traj.has_velocities else "positions"
        if source == "file" and not traj.has_velocities:
            raise OptionError(f"{traj.path}: the trajectory has no velocities; use velocities='positions' "
                              "(central differences of the unwrapped positions)")
        self.source = source
        self.needs_unwrap = source == "positions"
        if source == "positions":
            warnings.warn(f"{traj.path}: velocities from central differences of positions sampled every "
                          f"{dt:.6g} ps; the Nyquist frequency is {self.nyquist:.4g} THz "
                          f"({self.nyquist * THZ_TO_CM1:.0f} cm⁻¹) and the difference quotient damps g(ν) by "
                          "sinc²(2νΔt) (to 0 at the Nyquist frequency)", SamplingWarning, stacklevel=4)
        n_sel = len(self.sel)
        sp = traj.species[self.sel]
        self.names = list(dict.fromkeys(sp.tolist()))
        self.groups = {s: np.nonzero(sp == s)[0] for s in self.names}
        self.masses = traj.masses[self.sel]
        if not np.all(np.isfinite(self.masses)) or np.any(self.masses <= 0):
            raise OptionError(f"{traj.path}: the mass-weighted VDOS needs positive masses for every selected atom")
        if self.origins == "first":
            self.mode = "first"
        elif self.segment_frames is not None:
            self.mode = "segments"
        else:
            self.mode = "exact"
        if self.mode == "segments":
            seg = int(self.segment_frames)
            if seg < 2:
                raise OptionError(f"segment_frames must be >= 2; got {self.segment_frames}")
            self.seg_frames = min(seg, n_frames)
            n_lags = self.seg_frames
        elif self.mode == "exact":
            self.seg_frames = n_frames
            n_lags = n_frames
        else:
            self.seg_frames = n_frames
            n_lags = n_frames
        if self.max_lag is not None:
            n_lags = min(n_lags, int(round(self.max_lag / dt)) + 1)
        self.n_lags = max(n_lags, 2)
        n_w = 2 * len(self.names)
        if self.mode == "exact":
            check_acf_memory(self.budget, n_frames, n_w, f"{n_sel} atoms", self.memory)
        elif self.mode == "segments":
            check_acf_memory(self.budget, self.seg_frames, n_w, f"{n_sel} atoms", self.memory)
        # weight columns per row (atom × component): indicator and mass of each species
        self.row_weights = np.zeros((3 * n_sel, n_w))
        for j, s in enumerate(self.names):
            rows = (3 * self.groups[s][:, None] + np.arange(3)).ravel()
            self.row_weights[rows, 2 * j] = 1.0
            self.row_weights[rows, 2 * j + 1] = np.repeat(self.masses[self.groups[s]], 3)
        self.sums = np.zeros((self.n_lags, n_w))
        self.counts = np.zeros(self.n_lags)
        self.n_segments = 0
        self.store = None
        self._t = 0
        self._pending = self._prev = None
        self._v0 = None
        if self.mode == "exact":
            self.store = SeriesStore(3 * n_sel, n_frames, budget=self.budget, mode=self.store_mode,
                                     scratch_dir=self.scratch_dir, prefix="anionmotion-vacf-",
                                     keep_path=self.mapper is not None)

    def _accumulate(self, chunk):
        if self.source == "file":
            v = chunk.velocities
            del chunk
            self._emit(v)
            return
        pos = chunk.positions
        if self._pending is not None:
            v = _central_difference(self._prev, self._pending, pos[0], self.dt)
            self._prev = self._pending[-1]
            self._emit(v)
        self._pending = pos

    def _emit(self, v):
        """Hand one block of velocities (n, n_sel, 3), Å/ps, of consecutive frames to the estimator."""
        L = v.shape[0]
        if self.mode == "exact":
            self.store.write(self._t, v.reshape(L, -1))
            self._t += L
        elif self.mode == "segments":
            if L < 2:
                return
            self.n_segments += 1
            k = min(L, self.n_lags)
            self.counts[:k] += L - np.arange(k)
            self.sums[:k] += acf_sum(v, n_lags=k, weights=self.row_weights[::3])
        else:
            if self._v0 is None:
                self._v0 = v[0].copy()
            pos = self._t
            k = min(L, self.n_lags - pos)
            if k > 0:
                d = np.einsum("tic,ic->ti", v[:k], self._v0)
                self.sums[pos:pos + k] += d @ self.row_weights[::3]
                self.counts[pos:pos + k] += 1
            self._t += L
            self.n_segments = 1

    def _finish(self):
        if self.source == "positions" and self._pending is not None:
            self._emit(_central_difference(self._prev, self._pending, None, self.dt))
            self._pending = None
        n_row_blocks = None
        if self.mode == "exact":
            T = self.n_frames
            with self._phase(self.store.n_rows, "VACF transform", unit="series") as bar:
                self.sums, n_row_blocks = correlate_store(self.store, self.row_weights, self.n_lags,
                                                          budget=self.budget, mapper=self.mapper, bar=bar,
                                                          rows_per_block=self.rows_per_block)
            self.counts = (T - np.arange(self.n_lags)).astype(np.float64)
            self.n_segments = 1
            store_kind = "in memory" if self.store.in_memory else "out-of-core scratch file"
            self.store.close()
        else:
            store_kind = None
        return self._result(n_row_blocks, store_kind)

    def _result(self, n_row_blocks, store_kind):
        names, groups, dt = self.names, self.groups, self.dt
        n_sel = len(self.sel)
        good = self.counts > 0
        n_lags = int(np.count_nonzero(good))
        counts = self.counts[:n_lags]
        sums = {s: self.sums[:n_lags, 2 * j:2 * j + 2] for j, s in enumerate(names)}
        vacf = {}
        vacf_m = {}
        for s in names:
            vacf[s] = sums[s][:, 0] / (counts * len(groups[s]))
            vacf_m[s] = sums[s][:, 1] / counts
        vacf["total"] = sum(sums[s][:, 0] for s in names) / (counts * n_sel)
        mw_total = sum(vacf_m[s] for s in names)
        vacf_mass_weighted = mw_total / n_sel
        window = self.window
        with self._phase(len(names) + 1, "spectra", unit="spectrum") as bar:
            g = {}
            for s in names:
                freq, G = spectrum_from_acf(vacf_m[s], dt, window=window)
                g[s] = _normalise(freq, G, 3 * len(groups[s]))
                bar.update(1)
            freq, G = spectrum_from_acf(mw_total, dt, window=window)
            g["total"] = _normalise(freq, G, 3 * n_sel)
            bar.update(1)
        nyquist = self.nyquist
        nu_max = nyquist if self.max_freq is None else min(float(self.max_freq), nyquist)
        keep = freq <= nu_max * (1 + 1e-12)
        centers = {s: band_center(freq, g[s], nu_max) for s in g}
        tkin = {s: float(vacf_m[s][0] / len(groups[s]) * AMU_A2_PS2_EV / (3 * KB_EV)) for s in names}
        tkin["total"] = float(vacf_mass_weighted[0] * AMU_A2_PS2_EV / (3 * KB_EV))
        f = freq[keep]
        fr = self.frame_range
        exact = self.mode == "exact"
        meta = {
            "species": names, "n_selected": n_sel, "velocity_source": self.source, "origins": self.origins,
            "estimator": ("all-origin FFT VACF (zero-padded Wiener-Khinchin)" if self.origins == "all"
                          else "single-origin VACF ⟨v(0)·v(t)⟩"),
            "segments": self.n_segments, "segment_frames": self.seg_frames,
            "block_averaged": bool(self.mode == "segments" and self.n_segments > 1),
            "memory": str(self.memory) if self.memory is not None else None, "memory_bytes": int(self.budget),
            "series_store": store_kind, "row_blocks": n_row_blocks,
            "exact_all_origin": bool(exact),
            "window": window, "dt_ps": dt, "n_frames": self.n_frames,
            "frames": [fr.start, fr.stop, fr.step], "nyquist_THz": nyquist, "max_freq_THz": nu_max,
            "max_lag_ps": (n_lags - 1) * dt, "normalisation": "∫_0^ν_Nyq g dν = 3N (per species: 3N_s)",
            "mass_weighted_total": True, "freq_unit": "THz", "vdos_unit": "1/THz",
        }
        return VDOSResult(freq_THz=f, freq_cm1=f * THZ_TO_CM1, freq_meV=f * THZ_TO_MEV,
                          vdos={s: g[s][keep] for s in g}, band_center_THz=centers,
                          lag_ps=np.arange(n_lags) * dt, vacf=vacf, vacf_mass_weighted=vacf_mass_weighted,
                          n_atoms={s: int(len(groups[s])) for s in names}, kinetic_temperature_K=tkin, meta=meta)


def vdos(traj, *, species=None, atoms=None, window="hann", max_freq=None, max_lag=None, velocities="auto",
         origins="all", memory=None, segment_frames=None, start=None, stop=None, step=None,
         progress=None, mapper=None, scratch_dir=None) -> VDOSResult:
    """VACF and vibrational density of states of a selection (SPEC §6).

    Parameters
    ----------
    traj : Trajectory
        Evenly spaced frames.
    species : str or sequence of str, optional
        Species to analyse (e.g. ``"Li"`` or ``["Li", "S"]``); default every species.
    atoms : selection, optional
        Alternative atom selection (see :meth:`Trajectory.select`); results are still split by species.
    window : {"hann", "hamming", "blackman", "none"}
        Lag window on the one-sided VACF before the transform (default Hann).
    max_freq : float, optional, THz
        Highest frequency reported and upper limit of the band centre (default the Nyquist frequency 1/(2Δt)).
    max_lag : float, optional, ps
        Longest correlation time kept (default the whole run); a shorter one smooths the spectrum.
    velocities : {"auto", "file", "positions"}
        Velocity source: ``auto`` uses the file's velocities when present, else central differences of the
        unwrapped positions (a :class:`SamplingWarning` states the Nyquist frequency).
    origins : {"all", "first"}
        ``all``: every time origin (FFT, the default); ``first``: a single origin at the first frame (what
        LAMMPS ``compute vacf`` reports).
    memory : str or int, optional
        Memory budget of the whole analysis, e.g. ``"2GB"`` (default half of the available RAM).  The
        all-origin VACF is exact at any length: velocities that do not fit half the budget go to a scratch
        file (atom-major, deleted afterwards) and are transformed in blocks of atoms.  Recorded in ``meta``.
    segment_frames : int, optional
        Block averaging instead: cut the run into consecutive segments of this many frames whose
        all-origin VACFs are averaged (origins never span two segments; lags limited to the segment).
    start, stop, step : int, optional
        Frame range.
    progress : bool, optional
        Progress bars of the reading pass and the transform.
    mapper : callable, optional
        ``mapper(function, items) -> results`` (in order) running the row blocks of the transform, e.g. as
        Dask tasks; default the built-in ``map``.  Equal to the serial result to rounding.
    scratch_dir : str, optional
        Folder of the scratch file (default the system temp dir).

    Returns
    -------
    VDOSResult

    Notes
    -----
    C_s(t) = (1/N_s) Σ_{i∈s} ⟨v_i(t0+t)·v_i(t0)⟩_{t0};
    g(ν) ∝ Σ_s m_s N_s ∫ w(t) C_s(t) e^{−2πiνt} dt, normalised so that ∫_0^{ν_Nyq} g dν = 3N;
    per-species g_s is the same with s alone (∫ g_s dν = 3N_s); ν̄ = ∫ν g dν / ∫g dν on [0, ν_max].
    Memory: the reading pass holds one chunk (a quarter of the budget, at most 128 MiB); the series store holds
    8·3N·T bytes in RAM only when that fits half the budget; the transform holds one block of rows
    (≈ 32·T bytes per row) and the summed spectra (≈ 24·T bytes per species).

    References
    ----------
    SPEC §6; paper 000 (band centres of the VDOS).
    """
    return VDOS(species=species, atoms=atoms, window=window, max_freq=max_freq, max_lag=max_lag,
                velocities=velocities, origins=origins, segment_frames=segment_frames, mapper=mapper,
                scratch_dir=scratch_dir, memory=memory, progress=progress).run(traj, start, stop, step)


def _normalise(freq, G, target):
    area = np.trapezoid(G, freq)
    if not np.isfinite(area) or area <= 0:
        raise OptionError("the velocity autocorrelation has no positive spectral weight (all velocities zero?)")
    return G * (target / area)
