"""Libration spectrum of polyanions and its overlap with the cation VDOS (SPEC §6, paper 003 Fig. 3c).

The angular velocity ω of every polyanion comes either from the velocities,
ω = I⁻¹ L with L = Σ m (r − R) × (v − V) and I the inertia tensor about the
centre of mass, or (no velocities) from the best rotation between consecutive
frames (mass-weighted Kabsch fit; ω = rotation vector / Δt at the midpoints).
The all-origin ACF of ω (FFT) gives the libration spectrum; the overlap with
the cation VDOS is the area shared by the two unit-normalised spectra.
:class:`Libration` streams ω into a series store (RAM or scratch file within
``memory=``) and transforms it in blocks of anions, exact at any length.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from .._validate import check_choice
from ..elements import MOBILE_CATIONS
from ..errors import OptionError, SamplingWarning
from ..kernels.correlate import WINDOWS, spectrum_from_acf
from ..results import Result
from ..units import THZ_TO_CM1, THZ_TO_MEV
from ._streaming import capped_chunk_frames, check_acf_memory, correlate_store
from .base import AnalysisBase, SeriesStore
from .vdos import band_center, vdos

__all__ = ["libration", "Libration", "LibrationResult", "angular_velocities", "rotation_angular_velocities",
           "spectral_overlap"]


@dataclass(frozen=True)
class LibrationResult(Result):
    """Angular-velocity ACF and libration spectrum of a set of polyanions.

    Attributes
    ----------
    freq_THz : ndarray, shape (n_freq,), THz
    freq_cm1, freq_meV : ndarray, shape (n_freq,), cm⁻¹ and meV
    spectrum : ndarray, shape (n_freq,), 1/THz
        Libration spectrum S(ν) = ∫ w(t) C_ω(t) e^{−2πiνt} dt, normalised to ∫_0^{ν_Nyq} S dν = 3·N_anions
        (three rotational degrees of freedom per anion).
    band_center_THz : float, THz
        ∫ν S dν / ∫S dν over [0, ν_max].
    peak_THz : float, THz
        Frequency of the spectrum's maximum in (0, ν_max].
    lag_ps : ndarray, shape (n_lags,), ps
    omega_acf : ndarray, shape (n_lags,), rad²/ps²
        C_ω(t) = ⟨ω_a(t0+t)·ω_a(t0)⟩ over origins and anions.
    cation : str or None
        Species of the cation VDOS compared with.
    cation_vdos : ndarray, shape (n_freq,), 1/THz, or None
        The cation's VDOS (normalised to 3·N_cation) on ``freq_THz``.
    overlap_with_cation : float or None
        O = ∫_0^{ν_max} min(ŝ(ν), ĝ(ν)) dν with ŝ, ĝ the libration spectrum and the cation VDOS each
        normalised to unit area on [0, ν_max]; 0 (disjoint) ≤ O ≤ 1 (identical).
    n_anions : int
    omega_rms : float, rad/ps
        √⟨|ω|²⟩.
    meta : dict
        Source of ω, polyanion identification, window, ν_max, cation VDOS parameters.
    """

    freq_THz: np.ndarray
    freq_cm1: np.ndarray
    freq_meV: np.ndarray
    spectrum: np.ndarray
    band_center_THz: float
    peak_THz: float
    lag_ps: np.ndarray
    omega_acf: np.ndarray
    cation: str | None
    cation_vdos: np.ndarray | None
    overlap_with_cation: float | None
    n_anions: int
    omega_rms: float
    meta: dict = field(default_factory=dict)

    def summary(self) -> str:
        s = (f"libration of {self.n_anions} {self.meta.get('polyanion', 'polyanions')} (ω from "
             f"{self.meta.get('omega_source')}): peak {self.peak_THz:.3f} THz ({self.peak_THz * THZ_TO_CM1:.1f} cm⁻¹), "
             f"band centre {self.band_center_THz:.3f} THz, ω_rms {self.omega_rms:.3f} rad/ps")
        if self.overlap_with_cation is not None:
            s += f"\noverlap with the {self.cation} VDOS on [0, {self.meta['max_freq_THz']:.4g}] THz: " \
                 f"{self.overlap_with_cation:.3f} (1 = identical spectra, 0 = disjoint)"
        return s

    def to_csv(self) -> str:
        """The result's table (:meth:`tables`) as CSV text."""
        return self.tables()[0].to_csv()


def spectral_overlap(freq, a, b, nu_max=None):
    """O = ∫ min(â, b̂) dν of two spectra normalised to unit area on [0, ν_max] (trapezoid rule).

    Negative values (noise of windowed estimates) are clipped to 0 before normalising.
    """
    freq = np.asarray(freq, dtype=np.float64)
    keep = freq <= (np.inf if nu_max is None else nu_max * (1 + 1e-12))
    f = freq[keep]
    a = np.clip(np.asarray(a, dtype=np.float64)[keep], 0, None)
    b = np.clip(np.asarray(b, dtype=np.float64)[keep], 0, None)
    na, nb = np.trapezoid(a, f), np.trapezoid(b, f)
    if not (na > 0 and nb > 0):
        return float("nan")
    return float(np.trapezoid(np.minimum(a / na, b / nb), f))


def _member_table(polys):
    n = max((len(m) for m in polys.members), default=0)
    tab = np.full((polys.n_anions, n), -1, dtype=np.int64)
    mas = np.zeros((polys.n_anions, n))
    for a, (m, w) in enumerate(zip(polys.members, polys.member_masses)):
        tab[a, :len(m)] = m
        mas[a, :len(m)] = w
    return tab, mas


def _relative(polys, chunk, mas):
    """Member positions relative to each anion's centre of mass, (T, A, M, 3), padding zeroed."""
    d = polys.member_vectors(chunk)
    d = np.where(np.isnan(d), 0.0, d)
    mt = mas.sum(axis=1)
    R = np.einsum("tamk,am->tak", d, mas) / mt[None, :, None]
    r = d - R[:, :, None, :]
    r[:, mas == 0] = 0.0
    return r


def angular_velocities(r, v, masses):
    """ω = I⁻¹ L of rigid-ish molecules from positions and velocities.

    Parameters
    ----------
    r : ndarray, shape (T, A, M, 3), Å
        Member positions relative to any point of each molecule (the COM is removed here).
    v : ndarray, shape (T, A, M, 3), Å/ps
    masses : ndarray, shape (A, M), amu (0 for padding)

    Returns
    -------
    ndarray, shape (T, A, 3), rad/ps

    Notes
    -----
    L = Σ m (r − R) × (v − V), I = Σ m (|r − R|² 𝟙 − (r − R)(r − R)ᵀ); singular I (linear molecules)
    uses the pseudo-inverse.
    """
    mt = masses.sum(axis=1)
    R = np.einsum("tamk,am->tak", r, masses) / mt[None, :, None]
    V = np.einsum("tamk,am->tak", v, masses) / mt[None, :, None]
    rr = r - R[:, :, None]
    vv = v - V[:, :, None]
    L = np.einsum("am,tamk->tak", masses, np.cross(rr, vv))
    r2 = np.einsum("am,tamk,tamk->ta", masses, rr, rr)
    inertia = r2[..., None, None] * np.eye(3) - np.einsum("am,tamk,taml->takl", masses, rr, rr)
    return np.einsum("takl,tal->tak", np.linalg.pinv(inertia, hermitian=True), L)


def rotation_angular_velocities(r0, r1, masses, dt):
    """ω from the best rotation (mass-weighted Kabsch) taking r0 to r1, divided by the time between them.

    Parameters
    ----------
    r0, r1 : ndarray, shape (T, A, M, 3), Å
        COM-centred member positions at t and t + dt.
    masses : ndarray, shape (A, M), amu
    dt : float, ps

    Returns
    -------
    ndarray, shape (T, A, 3), rad/ps
        Rotation vector (axis × angle, lab frame) of R with r1 ≈ R r0, over dt.
    """
    H = np.einsum("am,tamk,taml->takl", masses, r0, r1)  # Σ m p qᵀ
    shape = H.shape[:2]
    H = H.reshape(-1, 3, 3)
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.einsum("nkl,nlm->nkm", np.swapaxes(Vt, 1, 2), np.swapaxes(U, 1, 2))))
    d[d == 0] = 1.0
    D = np.zeros_like(H)
    D[:, 0, 0] = 1.0
    D[:, 1, 1] = 1.0
    D[:, 2, 2] = d
    Rm = np.swapaxes(Vt, 1, 2) @ D @ np.swapaxes(U, 1, 2)
    rot = Rotation.from_matrix(Rm).as_rotvec()
    return rot.reshape(shape + (3,)) / dt


class Libration(AnalysisBase):
    """Streamed libration spectrum (the class behind :func:`libration`; same parameters).

    ω of every anion is computed chunk by chunk and written to a
    :class:`~anionmotion.analysis.base.SeriesStore` (rows = anion × component; in memory when it fits half
    the budget, else a scratch file); the exact all-origin ACF is computed from blocks of rows (power spectra
    summed over blocks, one inverse transform), equal to the in-memory FFT to rounding.
    """

    name = "libration"
    needs_unwrap = False  # member vectors are minimum-image: ω does not need continuous positions

    def __init__(self, *, center=None, ligand=None, cutoff=None, cluster=None, polyanions=None, cation="auto",
                 window="hann", max_freq=None, max_lag=None, omega="auto", frames_per_chunk=None, mapper=None,
                 scratch_dir=None, store_mode="auto", rows_per_block=None, memory=None, progress=None,
                 use_ext=True):
        super().__init__(memory=memory, progress=progress, use_ext=use_ext)
        check_choice(omega, "omega", ("auto", "velocities", "rotations"))
        check_choice(str(window).lower() if window is not None else "none", "window", WINDOWS)
        self.window = "none" if window is None else str(window).lower()
        self.center, self.ligand, self.cutoff, self.cluster = center, ligand, cutoff, cluster
        self.polys = polyanions
        self.cation, self.max_freq, self.max_lag, self.omega = cation, max_freq, max_lag, omega
        if frames_per_chunk is not None and int(frames_per_chunk) < 1:
            raise OptionError(f"frames_per_chunk must be a positive integer; got {frames_per_chunk}")
        self.fixed_chunk = None if frames_per_chunk is None else int(frames_per_chunk)
        self.mapper, self.scratch_dir, self.store_mode = mapper, scratch_dir, store_mode
        self.rows_per_block = rows_per_block

    def _atoms(self):
        return self.polys.atoms

    def _bytes_per_frame(self, n_atoms_read):
        A, M = self.tab.shape
        # raw + float64 positions/velocities of the read atoms; member vectors, relative positions and
        # velocities (A·M·3 floats, several copies); inertia tensors, their pseudo-inverse and ω (A·3·3)
        return int(n_atoms_read) * 24 * 4 + A * M * 24 * 8 + A * 9 * 8 * 8

    def _chunk_frames(self):
        return self.fixed_chunk if self.fixed_chunk is not None else capped_chunk_frames(self)

    def _prepare(self):
        traj = self.traj
        if self.polys is None:
            from .polyanions import find_polyanions

            self.polys = find_polyanions(traj, center=self.center, ligand=self.ligand, cutoff=self.cutoff,
                                         cluster=self.cluster)
        polys = self.polys
        if polys.n_anions == 0:
            raise OptionError("no polyanions found; nothing librates")
        n_frames = self.n_frames
        omega = self.omega
        source = omega if omega != "auto" else ("velocities" if traj.has_velocities else "rotations")
        if source == "velocities" and not traj.has_velocities:
            raise OptionError(f"{traj.path}: the trajectory has no velocities; use omega='rotations'")
        self.source = source
        need = 2 if source == "velocities" else 3
        if n_frames < need:
            raise OptionError(f"a libration spectrum from {source} needs at least {need} frames; "
                              f"the frame range has {n_frames}")
        self._require_uniform("the libration spectrum")
        if self.max_freq is not None and not (np.isfinite(self.max_freq) and self.max_freq > 0):
            raise OptionError(f"max_freq must be a positive frequency in THz; got {self.max_freq}")
        if self.max_lag is not None and not (np.isfinite(self.max_lag) and self.max_lag > 0):
            raise OptionError(f"max_lag must be a positive time in ps; got {self.max_lag}")
        dt = self.dt
        self.nyquist = 1.0 / (2 * dt)
        if source == "rotations":
            warnings.warn(f"{traj.path}: angular velocities from rotations between frames {dt:.6g} ps apart; the "
                          f"Nyquist frequency is {self.nyquist:.4g} THz ({self.nyquist * THZ_TO_CM1:.0f} cm⁻¹); "
                          "faster librations are aliased", SamplingWarning, stacklevel=4)
        if self.cation == "auto":
            present = set(traj.species)
            self.cation = next((c for c in MOBILE_CATIONS if c in present), None)
        self.tab, self.mas = _member_table(polys)
        atoms = polys.atoms
        self.cols = np.searchsorted(atoms, np.where(self.tab >= 0, self.tab, atoms[0]))
        T = n_frames if source == "velocities" else n_frames - 1
        self.T = T
        n_lags = T if self.max_lag is None else min(T, int(round(self.max_lag / dt)) + 1)
        self.n_lags = max(n_lags, 2) if T >= 2 else T
        check_acf_memory(self.budget, T, 1, f"{polys.n_anions} polyanions", self.memory)
        self.store = SeriesStore(3 * polys.n_anions, T, budget=self.budget, mode=self.store_mode,
                                 scratch_dir=self.scratch_dir, prefix="anionmotion-omega-",
                                     keep_path=self.mapper is not None)
        self._t = 0
        self._prev = None

    def _accumulate(self, chunk):
        polys, mas = self.polys, self.mas
        r = _relative(polys, chunk, mas)
        if self.source == "velocities":
            v = chunk.velocities[:, self.cols]
            v[:, mas == 0] = 0.0
            w = angular_velocities(r, v, mas)
        else:
            seq = r if self._prev is None else np.concatenate([self._prev[None], r])
            self._prev = r[-1]
            if len(seq) < 2:
                return
            w = rotation_angular_velocities(seq[:-1], seq[1:], mas, self.dt)
        self.store.write(self._t, w.reshape(len(w), -1))
        self._t += len(w)

    def _finish(self):
        polys, dt, T, n_lags = self.polys, self.dt, self.T, self.n_lags
        store_kind = "in memory" if self.store.in_memory else "out-of-core scratch file"
        with self._phase(self.store.n_rows, "ω ACF transform", unit="series") as bar:
            s, n_blocks = correlate_store(self.store, np.ones((self.store.n_rows, 1)), n_lags, budget=self.budget,
                                          mapper=self.mapper, bar=bar, rows_per_block=self.rows_per_block)
        self.store.close()
        s = s[:, 0]
        c = s / ((T - np.arange(n_lags)) * polys.n_anions)
        window = self.window
        freq, S = spectrum_from_acf(c, dt, window=window)
        area = np.trapezoid(S, freq)
        if not (area > 0):
            raise OptionError("the angular velocities have no spectral weight (the polyanions do not rotate)")
        S = S * (3 * polys.n_anions / area)
        nyquist = self.nyquist
        nu_max = nyquist if self.max_freq is None else min(float(self.max_freq), nyquist)
        keep = freq <= nu_max * (1 + 1e-12)
        f = freq[keep]
        pos = np.nonzero(f > 0)[0]
        peak = float(f[pos[np.argmax(S[keep][pos])]]) if len(pos) else float("nan")
        cat_g = overlap = None
        cat_meta = None
        fr = self.frame_range
        cation = self.cation
        if cation is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SamplingWarning)
                vres = vdos(self.traj, species=cation, window=window, max_lag=self.max_lag, start=fr.start,
                            stop=fr.stop, step=fr.step, progress=self.progress, memory=self.memory,
                            mapper=self.mapper, scratch_dir=self.scratch_dir)
            cat_g = np.interp(f, vres.freq_THz, vres.vdos[cation])
            overlap = spectral_overlap(f, S[keep], cat_g, nu_max)
            cat_meta = {"species": cation, "velocity_source": vres.meta["velocity_source"],
                        "band_center_THz": vres.band_center_THz[cation], "segments": vres.meta["segments"],
                        "series_store": vres.meta["series_store"]}
        meta = {
            "polyanion": polys.label, "polyanion_cutoff_A": polys.cutoff, "omega_source": (
                "velocities: ω = I⁻¹ L about the centre of mass" if self.source == "velocities"
                else "frame-to-frame mass-weighted Kabsch rotations, ω = rotation vector / Δt (midpoints)"),
            "window": window, "dt_ps": dt, "nyquist_THz": nyquist, "max_freq_THz": nu_max,
            "frames": [fr.start, fr.stop, fr.step], "n_omega_frames": T, "max_lag_ps": (n_lags - 1) * dt,
            "normalisation": "∫_0^ν_Nyq S dν = 3 N_anions",
            "overlap_definition": "∫_0^ν_max min(ŝ, ĝ) dν of unit-area spectra (negative noise clipped)",
            "cation_vdos": cat_meta, "memory_bytes": int(self.budget), "series_store": store_kind,
            "row_blocks": n_blocks, "exact_all_origin": True,
        }
        return LibrationResult(freq_THz=f, freq_cm1=f * THZ_TO_CM1, freq_meV=f * THZ_TO_MEV, spectrum=S[keep],
                               band_center_THz=band_center(f, S[keep], nu_max), peak_THz=peak,
                               lag_ps=np.arange(n_lags) * dt, omega_acf=c, cation=cation, cation_vdos=cat_g,
                               overlap_with_cation=overlap, n_anions=polys.n_anions,
                               omega_rms=float(np.sqrt(c[0])) if len(c) else float("nan"), meta=meta)


def libration(traj, *, center=None, ligand=None, cutoff=None, cluster=None, polyanions=None, cation="auto",
              window="hann", max_freq=None, max_lag=None, omega="auto", start=None, stop=None, step=None,
              frames_per_chunk=None, progress=None, memory=None, mapper=None, scratch_dir=None) -> LibrationResult:
    """Angular-velocity ACF and libration spectrum of the polyanions; overlap with the cation VDOS (SPEC §6).

    Parameters
    ----------
    traj : Trajectory
        Evenly spaced frames.
    center, ligand, cutoff, cluster :
        Polyanion identification (see :func:`anionmotion.find_polyanions`), unless ``polyanions`` is given.
    polyanions : Polyanions, optional
    cation : str, "auto" or None
        Species whose VDOS is compared (``auto``: the first of Li, Na, K, … present; None: no comparison).
    window : {"hann", "hamming", "blackman", "none"}
        Lag window of both spectra.
    max_freq : float, optional, THz
        Upper limit of the reported spectra, band centre and overlap (default Nyquist).
    max_lag : float, optional, ps
        Longest correlation time kept (default all).
    omega : {"auto", "velocities", "rotations"}
        Source of ω: ``velocities`` (ω = I⁻¹L), ``rotations`` (frame-to-frame best rotations; a
        :class:`SamplingWarning` states the Nyquist frequency) or ``auto`` (velocities when the file has them).
    start, stop, step : int, optional
        Frame range.
    frames_per_chunk : int, optional
        Frames read at a time (default: from the memory budget).
    progress : bool, optional
        Progress bars of the reading pass and the transforms.
    memory : str or int, optional
        Memory budget, e.g. ``"2GB"`` (default half of the available RAM).  ω of all anions is kept in RAM
        only when 8·3·N_anions·T bytes fit half the budget, else in a scratch file; the ACF is exact either
        way.  The cation VDOS uses the same budget (after ω is released).
    mapper : callable, optional
        ``mapper(function, items) -> results`` (in order) running the row blocks of both transforms
        (e.g. as Dask tasks); default the built-in ``map``.
    scratch_dir : str, optional
        Folder of the scratch files (default the system temp dir).

    Returns
    -------
    LibrationResult

    Notes
    -----
    C_ω(t) = (1/N_a) Σ_a ⟨ω_a(t0+t)·ω_a(t0)⟩_{t0}; S(ν) = ∫ w(t) C_ω(t) e^{−2πiνt} dt normalised to 3 N_a;
    overlap O = ∫_0^{ν_max} min(ŝ, ĝ_cation) dν of the unit-area spectra (docs/spectra.md).

    References
    ----------
    SPEC §6; paper 003 Fig. 3c.
    """
    return Libration(center=center, ligand=ligand, cutoff=cutoff, cluster=cluster, polyanions=polyanions,
                     cation=cation, window=window, max_freq=max_freq, max_lag=max_lag, omega=omega,
                     frames_per_chunk=frames_per_chunk, mapper=mapper, scratch_dir=scratch_dir, memory=memory,
                     progress=progress).run(traj, start, stop, step)
