"""Velocity autocorrelation and vibrational density of states (SPEC §6).

:func:`vdos` streams the velocities of a selection (from the file, or central
differences of the unwrapped positions), accumulates the all-origin VACF of
every species by FFT, and turns it into the mass-weighted VDOS with its band
centres.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .._validate import check_choice, parse_memory
from ..errors import OptionError, SamplingWarning
from ..kernels.correlate import WINDOWS, acf_sum, spectrum_from_acf
from ..results import Result
from ._streaming import stream_chunks
from ..units import AMU_A2_PS2_EV, KB_EV, THZ_TO_CM1, THZ_TO_MEV

__all__ = ["vdos", "VDOSResult", "velocity_segments", "band_center"]

_DEFAULT_MEMORY = "1GB"


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
        """Table ν (THz, cm⁻¹, meV) and g(ν) of every species and the total."""
        keys = list(self.vdos)
        head = "freq_THz,freq_cm1,freq_meV," + ",".join(f"vdos_{k}_per_THz" for k in keys)
        rows = [head]
        cols = [self.freq_THz, self.freq_cm1, self.freq_meV] + [self.vdos[k] for k in keys]
        for r in np.column_stack(cols):
            rows.append(",".join(f"{x:.8g}" for x in r))
        return "\n".join(rows) + "\n"


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


def vdos(traj, *, species=None, atoms=None, window="hann", max_freq=None, max_lag=None, velocities="auto",
         origins="all", memory=_DEFAULT_MEMORY, segment_frames=None, start=None, stop=None, step=None,
         progress=None) -> VDOSResult:
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
        Longest correlation time kept (default the whole segment); a shorter one smooths the spectrum.
    velocities : {"auto", "file", "positions"}
        Velocity source: ``auto`` uses the file's velocities when present, else central differences of the
        unwrapped positions (a :class:`SamplingWarning` states the Nyquist frequency).
    origins : {"all", "first"}
        ``all``: every time origin (FFT, the default); ``first``: a single origin at the first frame (what
        LAMMPS ``compute vacf`` reports).
    memory : str or int
        Memory budget for the velocity block, e.g. ``"1GB"``.  When the whole run does not fit, it is cut
        into consecutive segments whose all-origin VACFs are averaged (block averaging; origins then never
        span two segments and lags are limited to the segment length).  Recorded in ``meta``.
    segment_frames : int, optional
        Force the segment length (frames) instead of deriving it from ``memory``.
    start, stop, step : int, optional
        Frame range.

    Returns
    -------
    VDOSResult

    Notes
    -----
    C_s(t) = (1/N_s) Σ_{i∈s} ⟨v_i(t0+t)·v_i(t0)⟩_{t0};
    g(ν) ∝ Σ_s m_s N_s ∫ w(t) C_s(t) e^{−2πiνt} dt, normalised so that ∫_0^{ν_Nyq} g dν = 3N;
    per-species g_s is the same with s alone (∫ g_s dν = 3N_s); ν̄ = ∫ν g dν / ∫g dν on [0, ν_max].

    References
    ----------
    SPEC §6; paper 000 (band centres of the VDOS).
    """
    check_choice(velocities, "velocities", ("auto", "file", "positions"))
    check_choice(origins, "origins", ("all", "first"))
    check_choice(str(window).lower() if window is not None else "none", "window", WINDOWS)
    window = "none" if window is None else str(window).lower()
    sel = traj.select(species if species is not None else atoms)
    if len(sel) == 0:
        raise OptionError("the selection is empty; nothing to analyse")
    fr_start, fr_stop, fr_step = traj._frame_range(None, start, stop, step)
    n_frames = len(range(fr_start, fr_stop, fr_step))
    if n_frames < 2:
        raise OptionError(f"a VACF needs at least 2 frames; the frame range has {n_frames}")
    if not traj.is_uniform:
        raise OptionError(f"{traj.path}: frames are not evenly spaced in time; the VACF/VDOS needs a uniform "
                          "time step (select an evenly spaced frame range with start/stop/step)")
    dt = _frame_dt(traj, fr_step)
    nyquist = 1.0 / (2.0 * dt)
    if max_freq is not None and not (np.isfinite(max_freq) and max_freq > 0):
        raise OptionError(f"max_freq must be a positive frequency in THz; got {max_freq}")
    if max_lag is not None and not (np.isfinite(max_lag) and max_lag > 0):
        raise OptionError(f"max_lag must be a positive time in ps; got {max_lag}")
    source = velocities
    if source == "auto":
        source = "file" if traj.has_velocities else "positions"
    if source == "file" and not traj.has_velocities:
        raise OptionError(f"{traj.path}: the trajectory has no velocities; use velocities='positions' "
                          "(central differences of the unwrapped positions)")
    if source == "positions":
        warnings.warn(f"{traj.path}: velocities from central differences of positions sampled every "
                      f"{dt:.6g} ps; the Nyquist frequency is {nyquist:.4g} THz ({nyquist * THZ_TO_CM1:.0f} cm⁻¹) "
                      f"and the difference quotient damps g(ν) by sinc²(2νΔt) (to 0 at the Nyquist frequency)",
                      SamplingWarning, stacklevel=2)
    n_sel = len(sel)
    budget = parse_memory(memory)
    if segment_frames is None:
        # positions/velocities + FFT work: about 4 float64 copies of one segment
        seg = int(budget // (4 * 8 * 3 * n_sel))
        if seg < 2:
            raise OptionError(f"memory={memory!r} is too small for {n_sel} atoms; give at least "
                              f"{4 * 8 * 3 * n_sel * 16 / 2**20:.1f} MB")
        segment_frames = min(n_frames, seg)
    else:
        segment_frames = int(segment_frames)
        if segment_frames < 2:
            raise OptionError(f"segment_frames must be >= 2; got {segment_frames}")
        segment_frames = min(segment_frames, n_frames)
    n_lags = segment_frames if origins == "all" else n_frames
    if max_lag is not None:
        n_lags = min(n_lags, int(round(max_lag / dt)) + 1)
    n_lags = max(n_lags, 2)

    sp = traj.species[sel]
    names = list(dict.fromkeys(sp.tolist()))
    groups = {s: np.nonzero(sp == s)[0] for s in names}
    masses = traj.masses[sel]
    if not np.all(np.isfinite(masses)) or np.any(masses <= 0):
        raise OptionError(f"{traj.path}: the mass-weighted VDOS needs positive masses for every selected atom")
    sums = {s: np.zeros((n_lags, 2)) for s in names}  # columns: Σ v·v, Σ m v·v
    counts = np.zeros(n_lags)
    n_segments = 0
    v0 = None
    for v in velocity_segments(traj, sel, segment_frames=segment_frames, source=source, start=fr_start,
                               stop=fr_stop, step=fr_step, progress=progress):
        L = v.shape[0]
        if origins == "all":
            if L < 2:
                continue
            n_segments += 1
            k = min(L, n_lags)
            counts[:k] += L - np.arange(k)
            for s, idx in groups.items():
                w = np.column_stack([np.ones(len(idx)), masses[idx]])
                contiguous = idx[-1] - idx[0] + 1 == len(idx)
                block = v[:, idx[0]:idx[-1] + 1] if contiguous else v[:, idx]
                sums[s][:k] += acf_sum(block, n_lags=k, weights=w)
        else:
            if v0 is None:
                v0 = v[0].copy()
                pos = 0
            k = min(L, n_lags - pos)
            if k > 0:
                d = np.einsum("tic,ic->ti", v[:k], v0)
                for s, idx in groups.items():
                    sums[s][pos:pos + k, 0] += d[:, idx].sum(axis=1)
                    sums[s][pos:pos + k, 1] += d[:, idx] @ masses[idx]
                counts[pos:pos + k] += 1
                pos += k
            n_segments = 1
    good = counts > 0
    n_lags = int(np.count_nonzero(good))
    counts = counts[:n_lags]
    vacf = {}
    vacf_m = {}
    for s in names:
        vacf[s] = sums[s][:n_lags, 0] / (counts * len(groups[s]))
        vacf_m[s] = sums[s][:n_lags, 1] / counts
    vacf["total"] = sum(sums[s][:n_lags, 0] for s in names) / (counts * n_sel)
    mw_total = sum(vacf_m[s] for s in names)
    vacf_mass_weighted = mw_total / n_sel

    g = {}
    for s in names:
        freq, G = spectrum_from_acf(vacf_m[s], dt, window=window)
        g[s] = _normalise(freq, G, 3 * len(groups[s]))
    freq, G = spectrum_from_acf(mw_total, dt, window=window)
    g["total"] = _normalise(freq, G, 3 * n_sel)
    nu_max = nyquist if max_freq is None else min(float(max_freq), nyquist)
    keep = freq <= nu_max * (1 + 1e-12)
    centers = {s: band_center(freq, g[s], nu_max) for s in g}
    tkin = {s: float(vacf_m[s][0] / len(groups[s]) * AMU_A2_PS2_EV / (3 * KB_EV)) for s in names}
    tkin["total"] = float(vacf_mass_weighted[0] * AMU_A2_PS2_EV / (3 * KB_EV))
    f = freq[keep]
    meta = {
        "species": names, "n_selected": n_sel, "velocity_source": source, "origins": origins,
        "estimator": ("all-origin FFT VACF (zero-padded Wiener-Khinchin)" if origins == "all"
                      else "single-origin VACF ⟨v(0)·v(t)⟩"),
        "segments": n_segments, "segment_frames": segment_frames if origins == "all" else n_frames,
        "block_averaged": bool(origins == "all" and n_segments > 1),
        "memory": str(memory), "window": window, "dt_ps": dt, "n_frames": n_frames,
        "frames": [fr_start, fr_stop, fr_step], "nyquist_THz": nyquist, "max_freq_THz": nu_max,
        "max_lag_ps": (n_lags - 1) * dt, "normalisation": "∫_0^ν_Nyq g dν = 3N (per species: 3N_s)",
        "mass_weighted_total": True, "freq_unit": "THz", "vdos_unit": "1/THz",
    }
    return VDOSResult(freq_THz=f, freq_cm1=f * THZ_TO_CM1, freq_meV=f * THZ_TO_MEV,
                      vdos={s: g[s][keep] for s in g}, band_center_THz=centers,
                      lag_ps=np.arange(n_lags) * dt, vacf=vacf, vacf_mass_weighted=vacf_mass_weighted,
                      n_atoms={s: int(len(groups[s])) for s in names}, kinetic_temperature_K=tkin, meta=meta)


def _normalise(freq, G, target):
    area = np.trapezoid(G, freq)
    if not np.isfinite(area) or area <= 0:
        raise OptionError("the velocity autocorrelation has no positive spectral weight (all velocities zero?)")
    return G * (target / area)
