"""Mean-squared displacement of a selection, of any size (SPEC §2).

``msd(traj, species="Li")`` returns an :class:`MSDResult`: the exact
all-origin MSD (total and x, y, z), the TMSD with the paper-003 flags, and what
the diffusion fit and the conductivity need (volume, charge, temperature).

Paths
-----
``MSD`` is an :class:`~anionmotion.analysis.base.AnalysisBase`: the base gives
the frame range, the one evenly-spaced rule
(:func:`~anionmotion.analysis.base.uniform_spacing`; float32-rounded NetCDF
times count as evenly spaced, dt = (t_last − t_first)/(n − 1)), the memory
budget and the progress bars of the reading pass and the FFT pass.

* evenly spaced frames, positions + FFT workspace + one read chunk within half
  the memory budget: the unwrapped positions are read once into one
  (n_frames, n_atoms, 3) array and the FFT kernel
  (:class:`anionmotion.kernels.msd.MSDAccumulator`) runs over atom blocks;
* evenly spaced frames, otherwise: frame chunks are streamed into a
  :class:`~anionmotion.analysis.base.SeriesStore` scratch file (rows atom·3 +
  direction, i.e. the atom-major layout (n_atoms, 3, n_frames), float64) in a
  temporary directory (deleted afterwards), and atom blocks are read back and
  transformed; peak memory is bounded by the budget, not by the trajectory's
  length, and the result is the same bit for bit (the atoms are summed in the
  same order, and both gathers sum each series in time order);
* frames at uneven times (log-spaced dumps): every frame pair, grouped by
  time difference (:func:`anionmotion.kernels.msd.msd_pairs`), O(N·T²), in
  memory or over atom blocks of the same scratch file.

Drift correction subtracts the centre-of-mass displacement of the framework
(every atom that is neither selected nor a mobile cation species) from each
selected atom.  One rule for every file format: it is on whenever the
trajectory has framework atoms (off, and said so, when it has none), so the same
trajectory gives the same MSD and D whatever format it was read from.  The
centre of mass is mass-weighted (``drift_weights="mass"``, the default) or the
plain mean of the framework positions (``"unweighted"``, as pymatgen does); the
choice and its reason are recorded in ``meta``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..elements import ION_CHARGES, MOBILE_CATIONS, ion_charge
from ..errors import OptionError, TrajectoryError
from ..kernels.msd import (MSDAccumulator, fft_length, lag_keys, msd_fft, msd_pairs, subtract_drift_am_ref,
                           workspace_bytes_per_atom)
from ..kernels import msd as _kmsd
from ..kernels import vanhove as _kvh
from ..results import Result, to_jsonable
from .base import AnalysisBase, SeriesStore, default_memory, format_bytes

__all__ = ["msd", "MSD", "MSDResult", "DRIFT_WEIGHTS", "TMSD_DIFFUSING_A2", "TMSD_MELTING_A2", "default_memory",
           "IN_MEMORY_FRACTION", "MAX_CHUNK_BYTES"]

DRIFT_WEIGHTS = ("mass", "unweighted")
"""Weights of the framework centre of mass that defines the drift: atomic masses (default) or equal weights."""
TMSD_DIFFUSING_A2 = 5.0
"""Paper 003: TMSD of the mobile species ≥ 5 Å² = diffusing."""
TMSD_MELTING_A2 = 2.0
"""Paper 003: TMSD of the non-mobile cations > 2 Å² = framework melting."""


@dataclass(frozen=True, repr=False)
class MSDResult(Result):
    """All-origin MSD of a selection (SPEC §2).

    Attributes
    ----------
    species : str
        The selected species (``"Li"``), or ``"selection"``.
    atom_indices : ndarray, shape (n_atoms,), int64
        Trajectory indices of the selected atoms.
    n_frames : int
        Frames analysed.
    lag : ndarray, shape (n_lags,), float64, ps
        Lag times (0 first).  Evenly spaced frames: m·dt, m = 0 … n_frames − 1.
    msd : ndarray, shape (n_lags,), float64, Å²
        MSD averaged over atoms and every origin.
    msd_xyz : ndarray, shape (n_lags, 3), float64, Å²
        x, y, z parts (Cartesian).
    n_origins : ndarray, shape (n_lags,), int64
        Origins (frame pairs) averaged at each lag.
    tmsd : float, Å²
        Single-origin |r(T_end) − r(0)|² averaged over the selection (paper 003).
    tmsd_xyz : ndarray, shape (3,), Å²
    diffusing : bool
        tmsd ≥ 5 Å² (paper 003).
    framework_tmsd : float or None, Å²
        TMSD of the non-mobile cations (None when there are none).
    framework_melting : bool or None
        framework_tmsd > 2 Å² (paper 003).
    volume_A3 : float, Å³
        Time-averaged cell volume over the analysed frames.
    temperature_K : float or None, K
        Given, or from the trajectory's metadata.
    charge : float or None, e
        Charge of one selected ion (given, or the formal charge of the species).
    dt_ps : float or None, ps
        Frame spacing (None when uneven).
    drift : ndarray, shape (n_frames, 3), Å, or None
        Framework centre-of-mass displacement that was subtracted.
    charge_msd : ndarray, shape (n_lags,), e²·Å², or None
        MSD of the total charge displacement Σ_j q_j Δr_j (collective; only when asked).
    charge_msd_xyz : ndarray, shape (n_lags, 3), e²·Å², or None
    hop_distance_A : float or None, Å
        Median nearest-neighbour distance of the selection (used for the He et al. estimate).
    alpha2 : ndarray, shape (n_lags,), or None
        Non-Gaussian parameter α₂(τ) = 3⟨Δr⁴⟩/(5⟨Δr²⟩²) − 1 at every lag (NaN at lag 0), same origins and
        drift correction as the MSD; None when not asked for (``alpha2=False``).
    msd_tensor : ndarray, shape (n_lags, 6), Å², or None
        The MSD tensor ⟨Δr_a Δr_b⟩ at every lag (mean over atoms and origins), components xx, yy, zz, xy, xz,
        yz; its diagonal is ``msd_xyz`` to rounding.  Only with ``tensor=True`` on evenly spaced frames.
    d_tensor : DTensorResult or None
        The 3×3 diffusion tensor fitted on the scalar D's window, with eigenvalues, axes and bootstrap errors
        over atoms (:class:`anionmotion.analysis.onsager.DTensorResult`; ``tensor=True``).
    meta : dict
        Path taken, drift choice and reason, memory, species of the framework, …
    """

    species: str
    atom_indices: np.ndarray
    n_frames: int
    lag: np.ndarray
    msd: np.ndarray
    msd_xyz: np.ndarray
    n_origins: np.ndarray
    tmsd: float
    tmsd_xyz: np.ndarray
    diffusing: bool
    framework_tmsd: Optional[float]
    framework_melting: Optional[bool]
    volume_A3: float
    temperature_K: Optional[float]
    charge: Optional[float]
    dt_ps: Optional[float]
    drift: Optional[np.ndarray] = None
    charge_msd: Optional[np.ndarray] = None
    charge_msd_xyz: Optional[np.ndarray] = None
    hop_distance_A: Optional[float] = None
    meta: dict = field(default_factory=dict)
    alpha2: Optional[np.ndarray] = None
    msd_tensor: Optional[np.ndarray] = None
    d_tensor: Optional[object] = None

    @property
    def n_atoms(self) -> int:
        return int(len(self.atom_indices))

    @property
    def uniform(self) -> bool:
        return self.dt_ps is not None

    def to_dict(self) -> dict:
        """JSON-ready dict with the key names the report helpers consume."""
        return to_jsonable({
            "species": self.species,
            "n_atoms": self.n_atoms,
            "n_frames": self.n_frames,
            "temperature_K": self.temperature_K,
            "dt_ps": self.dt_ps,
            "volume_A3": self.volume_A3,
            "charge": self.charge,
            "lag_ps": self.lag,
            "msd_A2": self.msd,
            "msd_xyz_A2": self.msd_xyz,
            "n_origins": self.n_origins,
            "tmsd_A2": self.tmsd,
            "tmsd_xyz_A2": self.tmsd_xyz,
            "diffusing": self.diffusing,
            "framework_tmsd_A2": self.framework_tmsd,
            "framework_melting": self.framework_melting,
            "hop_distance_A": self.hop_distance_A,
            "drift_corrected": self.drift is not None,
            "drift_weights": self.meta.get("drift_weights"),
            "charge_msd_e2A2": self.charge_msd,
            "charge_msd_xyz_e2A2": self.charge_msd_xyz,
            "alpha2": self.alpha2,
            "atom_indices": self.atom_indices,
            "meta": self.meta,
        })

    def summary(self) -> str:
        m = self.meta
        lines = [
            f"MSD of {self.species}: {self.n_atoms} atoms, {self.n_frames} frames"
            + (f", dt {self.dt_ps:g} ps" if self.dt_ps else ", uneven frame spacing"),
            f"path         {m.get('path')}",
            f"drift        {'framework centre subtracted' if self.drift is not None else 'not corrected'} "
            f"({m.get('drift_reason')})",
            f"TMSD         {self.tmsd:.6g} Å² → {'diffusing' if self.diffusing else 'not diffusing'} "
            f"(threshold {TMSD_DIFFUSING_A2:g} Å², paper 003)",
        ]
        if self.framework_tmsd is not None:
            lines.append(f"framework    TMSD {self.framework_tmsd:.6g} Å² of {', '.join(m.get('framework_cations', []))}"
                         f" → {'MELTING' if self.framework_melting else 'intact'} (threshold {TMSD_MELTING_A2:g} Å²)")
        if len(self.lag) > 1:
            lines.append(f"MSD at {self.lag[-1]:.6g} ps: {self.msd[-1]:.6g} Å²")
        if self.alpha2 is not None and np.any(np.isfinite(self.alpha2)):
            k = int(np.nanargmax(self.alpha2))
            lines.append(f"α₂           max {self.alpha2[k]:.4g} at {self.lag[k]:.6g} ps (non-Gaussian parameter)")
        return "\n".join(lines)

    def __repr__(self):
        return (f"MSDResult(species={self.species!r}, n_atoms={self.n_atoms}, n_frames={self.n_frames}, "
                f"tmsd={self.tmsd:.4g})")


def _charges_for(traj, charges):
    """Per-atom charges (e) for the collective conductivity."""
    if isinstance(charges, str):
        if charges == "trajectory":
            if traj.charges is None:
                raise OptionError(f"{traj.path}: the trajectory carries no charges; use charges='formal' or give "
                                  "charges per species (e.g. {'Li': 1, 'P': 5, 'S': -2, 'Cl': -1})")
            return np.asarray(traj.charges, dtype=np.float64)
        if charges == "formal":
            return np.array([ion_charge(s) for s in traj.species], dtype=np.float64)
        raise OptionError(f"invalid charges {charges!r}; choose one of trajectory, formal, or a dict species → charge")
    if isinstance(charges, dict):
        table = {str(k): float(v) for k, v in charges.items()}
        missing = sorted(set(traj.species) - set(table))
        if missing:
            raise OptionError(f"charges: no charge given for species {', '.join(missing)}")
        return np.array([table[s] for s in traj.species], dtype=np.float64)
    raise OptionError(f"invalid charges {charges!r}; choose one of trajectory, formal, or a dict species → charge")


def drift_rule(traj, selected, *, drift=None, framework=None, drift_weights=None):
    """The drift-correction rule of every displacement analysis (msd, vanhove): which framework, on or off, how
    weighted, and why.

    Parameters
    ----------
    traj : Trajectory
    selected : ndarray of int
        The analysed atoms (never part of the framework).
    drift : bool or None
        None = on whenever there are framework atoms (every file format alike); True requires them.
    framework : selection, optional
        Default: every atom that is not selected and not of a mobile-cation species.
    drift_weights : {"mass", "unweighted"} or None
        None = mass-weighted, falling back to unweighted (said in the reason) when a framework mass is unknown
        and nothing was asked for explicitly.

    Returns
    -------
    framework : ndarray of int64
        The framework atoms (also when the correction is off).
    on : bool
    weights : {"mass", "unweighted"}
    reason : str
        One line for ``meta["drift_reason"]``.
    """
    if drift_weights is not None and drift_weights not in DRIFT_WEIGHTS:
        raise OptionError(f"invalid drift_weights {drift_weights!r}; choose one of {', '.join(DRIFT_WEIGHTS)}")
    others = np.setdiff1d(np.arange(traj.n_atoms), selected)
    fw = traj.select(framework) if framework is not None else others[~np.isin(traj.species[others], MOBILE_CATIONS)]
    if drift is None:
        on, reason = True, "default: on whenever the trajectory has framework atoms"
    else:
        on = bool(drift)
        reason = "requested" if on else "switched off"
    if on and len(fw) == 0:
        if drift:
            raise OptionError("drift correction needs framework atoms (atoms that are not selected and not mobile "
                              "cations); none found — give framework= or drift=False")
        on, reason = False, "no framework atoms to define the drift"
    weights = drift_weights or "mass"
    if on and weights == "mass" and not np.all(np.isfinite(traj.masses[fw])):
        bad = sorted(set(traj.species[fw][~np.isfinite(traj.masses[fw])]))
        if drift is not None or drift_weights is not None:
            raise OptionError(f"mass-weighted drift correction needs the masses of the framework atoms; unknown "
                              f"for {', '.join(bad)} — give drift_weights='unweighted' (--drift-weights "
                              "unweighted) or drift=False")
        weights = "unweighted"
        reason += f" (unweighted centre: the masses of {', '.join(bad)} are unknown)"
    if on:
        reason += "; framework centre of mass" if weights == "mass" else "; unweighted framework centre (mean position)"
    return np.asarray(fw, dtype=np.int64), on, weights, reason


IN_MEMORY_FRACTION = 0.5
"""``mode="auto"`` keeps the positions in memory only when positions + FFT workspace + one read chunk fit this
fraction of the budget (the rest of the budget is headroom for the reader and the other arrays)."""
MAX_CHUNK_BYTES = 128 * 1024**2
"""Largest working set of one read chunk (bytes): larger chunks do not read faster, they only cost memory."""
OUT_OF_CORE_WORKSPACE = _kmsd.DEFAULT_WORKSPACE
"""Largest FFT workspace of one atom block on the out-of-core paths (bytes; at least one atom)."""
TENSOR_MAX_FIT_LAGS = 64
"""Most lags of the D-tensor fit (spread evenly over the scalar D's window, as in :mod:`anionmotion.analysis.onsager`)."""


# ------------------------------------------------------------------------------------------- MSD tensor
def tensor_workspace_bytes_per_atom(n_frames: int) -> int:
    """Bytes per atom of the MSD-tensor work in an atom block (the tensor's block loop of :class:`MSD`).

    The atom-major copy of the block with the drift removed and its centred series (2 × 24 B per frame), the
    three complex spectra (3 × 16 B per frequency of the zero-padded length L), one real spectrum product and
    one product series (8 B per frequency + 8 B per frame).
    """
    T = int(n_frames)
    nf = fft_length(T) // 2 + 1
    return 48 * T + 48 * nf + 8 * nf + 8 * T


def _slope_kernels(n_frames, lags, weights):
    """Time and frequency weights V, K with Σ_m w_m X_ab(m) = Σ_t c_a c_b(t) V(t) − Σ_f P_ab(f) K(f).

    X_ab(m) = [S1_ab(m) − C_ab(m) − C_ba(m)] / (T − m) (:mod:`anionmotion.kernels.onsager`); with
    u_m = w_m / (T − m) on the fit lags, Σ_m u_m S1_ab(m) = Σ_t a(t) b(t) [U(t) + U(T − 1 − t)] (U the cumulative
    sum of u), and Σ_m u_m C(m) = Σ_f P(f) c_f Re(û(f)) / L for the real, even spectrum P = 2 Re(Â conj B̂)
    (c_f = 2 except at f = 0 and, for even L, at the Nyquist frequency), so no inverse transform is needed.
    """
    import scipy.fft

    T = int(n_frames)
    L = fft_length(T)
    lags = np.asarray(lags, dtype=np.int64)
    u = np.zeros(T)
    u[lags] = np.asarray(weights, dtype=np.float64) / (T - lags)
    U = np.cumsum(u)
    V = U + U[::-1]
    cf = np.full(L // 2 + 1, 2.0)
    cf[0] = 1.0
    if L % 2 == 0:
        cf[-1] = 1.0
    K = cf * scipy.fft.rfft(u, n=L).real / L
    return V, K


def tensor_slopes(block, lags, weights, *, workers=2, kernels=None, sums=None) -> np.ndarray:
    """Per-atom OLS slopes of the six MSD-tensor components on chosen lags, by forward FFTs only.

    Parameters
    ----------
    block : ndarray, shape (n_block, 3, T), Å
        Atom-major positions (drift already removed), time last, evenly spaced frames.
    lags : ndarray of int
        Lag indices of the fit (all > 0).
    weights : ndarray, ps⁻¹
        Row w with slope = Σ_k w_k X(lags_k) (the OLS weights of the lag times).
    workers : int
        Threads for scipy.fft.
    kernels : (V, K), optional
        :func:`_slope_kernels` of these lags and weights (computed when not given).
    sums : (ndarray (6, T), ndarray (6, L/2 + 1)), optional
        Accumulators updated in place with Σ_atoms c_a c_b(t) and Σ_atoms 2 Re(Â conj B̂)(f) of the centred
        series, from the same transforms: :func:`msd_tensor_from_sums` turns them into the MSD tensor.

    Returns
    -------
    ndarray, shape (n_block, 6), Å²/ps
        Σ_k w_k ⟨Δr_a Δr_b⟩_i(lags_k) of every atom i, components xx, yy, zz, xy, xz, yz; equal to rounding to
        ``tensor_msd_rows(block)[:, :, lags] @ weights`` (:func:`anionmotion.kernels.onsager.tensor_msd_rows`),
        which needs six inverse FFTs per atom.
    """
    import scipy.fft

    from ..kernels.onsager import PAIRS

    block = np.asarray(block, dtype=np.float64)
    nb, _, T = block.shape
    out = np.zeros((nb, 6))
    if nb == 0 or T == 0:
        return out
    V, K = _slope_kernels(T, lags, weights) if kernels is None else kernels
    c = block - block.mean(axis=2, keepdims=True)
    F = scipy.fft.rfft(c, n=fft_length(T), axis=-1, workers=workers)
    for k, (a, b) in enumerate(PAIRS):
        P = 2.0 * (F[:, a].real * F[:, b].real + F[:, a].imag * F[:, b].imag)
        p = c[:, a] * c[:, b]
        out[:, k] = p @ V - P @ K
        if sums is not None:
            sums[0][k] += p.sum(axis=0)
            sums[1][k] += P.sum(axis=0)
    return out


def msd_tensor_from_sums(prod, power, n_atoms):
    """Mean MSD tensor (T, 6), Å², from the sums of :func:`tensor_slopes` (``sums=``) over ``n_atoms`` atoms.

    X_ab(m) = [S1_ab(m) − irfft(Σ P_ab)(m)] / (N (T − m)) with S1 from the cumulative sums of Σ c_a c_b (the
    algorithm of :class:`anionmotion.kernels.onsager.TensorMSDAccumulator`, which agrees to rounding).
    """
    import scipy.fft

    T = prod.shape[1]
    if T == 0 or n_atoms == 0:
        return np.zeros((T, 6))
    cs = np.concatenate([np.zeros((6, 1)), np.cumsum(prod, axis=1)], axis=1)
    m = np.arange(T)
    s1 = (cs[:, T:T + 1] - cs[:, m]) + cs[:, T - m]
    C = scipy.fft.irfft(power, n=fft_length(T), axis=-1)[:, :T]
    six = (s1 - C) / (n_atoms * (T - m.astype(np.float64)))
    six[:, 0] = 0.0
    return six.T.copy()


def d_tensor_from_slopes(species, lag, msd_tensor, slopes, fit, fit_lags, *, n_boot, seed=0, temperature_K=None,
                         charge=None, volume_A3, frame_reason="", notes=()):
    """The D tensor, its eigen-decomposition and bootstrap errors from per-atom slopes (the rule of
    :func:`anionmotion.analysis.onsager.d_tensor`, same resampling sequence for the same seed).

    Parameters
    ----------
    species : str
    lag : ndarray, shape (T,), ps
    msd_tensor : ndarray, shape (T, 6), Å²
        Mean MSD tensor (components xx, yy, zz, xy, xz, yz).
    slopes : ndarray, shape (n_atoms, 6), Å²/ps
        Per-atom OLS slopes of the components on ``fit_lags`` (:func:`tensor_slopes`).
    fit : DiffusionResult
        The scalar fit whose window the tensor uses.
    fit_lags : ndarray of int
    n_boot, seed : int
        Bootstrap resamples over atoms and their seed.
    temperature_K, charge : float, optional
        For the Nernst–Einstein σ tensor.
    volume_A3 : float
    frame_reason : str
    notes : sequence of str
        Warnings of the fit.

    Returns
    -------
    DTensorResult
    """
    from ..kernels.onsager import tensor_from_pairs
    from ..units import nernst_einstein_S_cm
    from .onsager import DTensorResult, eigen_tensor

    n = len(slopes)
    D = tensor_from_pairs(slopes.mean(axis=0) / 2.0)
    wv, Vax = eigen_tensor(D)
    nb = int(n_boot) if n >= 2 else 0
    if nb:
        rng = np.random.default_rng(seed)
        Db = np.empty((nb, 3, 3))
        for k0 in range(0, nb, 200):
            k1 = min(nb, k0 + 200)
            idx = rng.integers(0, n, size=(k1 - k0, n))
            Db[k0:k1] = tensor_from_pairs(slopes[idx].mean(axis=1) / 2.0)
        fix = math.sqrt(n / (n - 1.0))   # the bootstrap variance of a mean is (n − 1)/n of the unbiased one
        D_se = Db.std(axis=0, ddof=1) * fix
        wb, Vb = np.linalg.eigh(Db)
        w_se = wb.std(axis=0, ddof=1) * fix
        cosang = np.clip(np.abs(np.einsum("bik,ik->bk", Vb, Vax)), 0.0, 1.0)
        ax_se = np.degrees(np.sqrt(np.mean(np.arccos(cosang) ** 2, axis=0))) * fix
    else:
        D_se, w_se, ax_se = np.full((3, 3), np.nan), np.full(3, np.nan), np.full(3, np.nan)
    q = float(charge or 0.0)
    sig = sig_se = None
    if temperature_K is not None and q != 0:
        sig = nernst_einstein_S_cm(n, q, D, volume_A3, temperature_K)
        sig_se = nernst_einstein_S_cm(n, q, D_se, volume_A3, temperature_K)
    meta = {"fit_rule": fit.meta.get("fit_rule"), "diffusive_regime_reached": fit.diffusive_regime_reached,
            "scalar_D_below_threshold": bool(fit.below_threshold),
            "errors": ("bootstrap over atoms of the per-atom OLS slopes on the scalar fit's lags "
                       f"({nb} resamples, seed {seed})" if nb else "not estimated (one atom)"),
            "fit_warnings": list(notes), "frame": frame_reason}
    return DTensorResult(
        species=species, n_atoms=int(n), lag_ps=lag, msd_tensor_A2=msd_tensor, D_tensor_A2_ps=D,
        D_tensor_stderr_A2_ps=D_se, eigenvalues_A2_ps=wv, eigenvalues_stderr_A2_ps=w_se, axes=Vax,
        axes_stderr_deg=ax_se, D_A2_ps=float(fit.D_A2_ps), D_stderr_A2_ps=float(fit.D_stderr_A2_ps),
        fit_window_ps=tuple(fit.fit_window_ps), n_fit_lags=int(len(fit_lags)), charge=q,
        sigma_tensor_S_cm=sig, sigma_tensor_stderr_S_cm=sig_se, volume_A3=volume_A3, temperature_K=temperature_K,
        n_boot=int(nb), meta=meta)


class MSD(AnalysisBase):
    """Analysis object: exact all-origin MSD of a selection, in bounded memory (SPEC §2).

    Parameters
    ----------
    species : str or selection
        Mobile species (``"Li"``) or any selection of :meth:`Trajectory.select`.
    drift : bool or None
        Subtract the framework's centre-of-mass displacement.  None (default) = on whenever the
        trajectory has framework atoms, whatever its file format; off when it has none.
    drift_weights : {"mass", "unweighted"}
        Centre of mass of the framework weighted by the atomic masses (default) or the plain mean of
        its positions.  With the default and ``drift=None``, framework species of unknown mass make it
        unweighted (said in ``meta["drift_reason"]``); asked for explicitly, unknown masses are an error.
    framework : selection, optional
        Atoms whose centre of mass defines the drift; default: every atom
        that is not selected and not of a mobile-cation species
        (:data:`anionmotion.elements.MOBILE_CATIONS`).
    framework_cations : sequence of str, optional
        Species whose TMSD gives the framework "melting" flag; default: the
        non-selected species that are neither mobile cations nor tabulated
        anions (e.g. P in Li6PS5Cl, Nb in NaNbCl6).
    temperature : float, optional, K
        Default: ``trajectory.metadata["temperature"]`` when the file records it.
    charge : float, optional, e
        Charge of one selected ion; default: the formal charge of the species.
    collective : bool
        Also compute the MSD of the total charge displacement Σ_j q_j Δr_j.
    charges : "trajectory", "formal" or dict
        Charges for ``collective``: from the file, the formal ionic charges, or per species.
    memory : int or str, optional
        Memory budget (``"2GB"``); default half of the available RAM
        (:func:`anionmotion.analysis.base.default_memory`).  Peak memory stays
        within the budget and does not grow with the trajectory length once
        the positions no longer fit half of it.
    mode : {"auto", "memory", "out-of-core"}
        ``auto`` keeps the selection's positions in memory when they, the FFT
        workspace and one read chunk fit :data:`IN_MEMORY_FRACTION` of the
        budget, and streams them through a scratch file otherwise; the other
        two force a path (same results, bit for bit on evenly spaced frames).
    scratch_dir : str, optional
        Where the out-of-core scratch file goes (default: the system temp dir).
    workers : int
        Threads for scipy.fft.
    progress : bool, optional
        Progress bars of the reading pass and the FFT pass (None = the trajectory's setting).
    use_ext : bool
        Compiled kernels (True) or their numpy twins.
    alpha2 : bool
        Also compute the non-Gaussian parameter α₂(τ) = 3⟨Δr⁴⟩/(5⟨Δr²⟩²) − 1 at every lag, in the same pass
        (exact all-origin fourth moments by FFT, :class:`anionmotion.kernels.vanhove.NonGaussianAccumulator`;
        uneven frames: every frame pair).  About 4× the FFT work of the MSD alone; False skips it.
    tensor : bool
        Also the 3×3 MSD tensor at every lag (:attr:`MSDResult.msd_tensor`) and the D tensor fitted on the
        scalar D's window (:attr:`MSDResult.d_tensor`: eigenvalues, axes and bootstrap errors over atoms from
        per-atom slopes), from the same read of the trajectory and the same drift-corrected positions: after
        the MSD's FFT pass and the scalar fit (the slopes need its lags), one more block loop over the
        positions already held (in memory or in the scratch file) transforms each atom once (three forward
        FFTs, no inverse per atom) for both the summed tensor and the slopes.  Evenly spaced frames, at least
        8 frames and 2 atoms (otherwise skipped, said in ``meta["tensor"]``).
    tensor_fit : (float, float), optional, ps
        Window of the scalar fit that sets the tensor's lags (default: the window
        :func:`anionmotion.fit_diffusion` chooses with ``tensor_estimator``).
    tensor_estimator : {"auto", "gls", "ols", "he"}
        Estimator of that scalar fit (only its window is used; the tensor is the OLS slope on its lags).
    hop_distance : float, optional, Å
        ``hop_distance`` of that scalar fit.
    n_boot, seed : int
        Bootstrap resamples over atoms for the D-tensor errors (default 1000) and their seed.

    Notes
    -----
    After :meth:`run` the object has the base's attributes
    (:class:`~anionmotion.analysis.base.AnalysisBase`): ``frame_range``, ``frames``,
    ``times``, ``uniform``, ``dt`` (ps, (t_last − t_first)/(n − 1)), ``budget``
    (bytes) and ``frames_per_chunk``.
    """

    name = "msd"
    needs_unwrap = True
    needs_velocities = False

    def __init__(self, species, *, drift=None, drift_weights=None, framework=None, framework_cations=None,
                 temperature=None, charge=None, collective=False, charges="trajectory", memory=None, mode="auto",
                 scratch_dir=None, workers=2, progress=None, use_ext=True, alpha2=True, tensor=False, tensor_fit=None,
                 tensor_estimator="auto", hop_distance=None, n_boot=None, seed=0):
        super().__init__(memory=memory, progress=progress, use_ext=use_ext)
        self.alpha2 = bool(alpha2)
        self.tensor = bool(tensor)
        self.tensor_fit, self.tensor_estimator, self.hop_distance = tensor_fit, tensor_estimator, hop_distance
        if n_boot is None:
            from .onsager import DEFAULT_N_BOOT

            n_boot = DEFAULT_N_BOOT
        if int(n_boot) != n_boot or int(n_boot) < 0:
            raise OptionError(f"n_boot must be a non-negative integer; got {n_boot!r}")
        self.n_boot, self.seed = int(n_boot), seed
        if drift_weights is not None and drift_weights not in DRIFT_WEIGHTS:
            raise OptionError(f"invalid drift_weights {drift_weights!r}; choose one of {', '.join(DRIFT_WEIGHTS)}")
        self.species = species
        self.drift = drift
        self.drift_weights = drift_weights
        self.framework = framework
        self.framework_cations = framework_cations
        self.temperature = temperature
        if charge is not None:
            from .._validate import check_number

            charge = check_number(charge, "charge", unit="e")
            if charge == 0:
                raise OptionError("charge must be the non-zero charge of one ion in e (e.g. 1 for Li⁺); got 0")
        self.charge = charge
        self.collective = collective
        self.charges = charges
        if mode not in ("auto", "memory", "out-of-core"):
            raise OptionError(f"invalid mode {mode!r}; choose one of auto, memory, out-of-core")
        self.mode = mode
        if scratch_dir is not None and not os.path.isdir(os.fspath(scratch_dir)):
            raise OptionError(f"scratch_dir {os.fspath(scratch_dir)!r} is not an existing folder")
        self.scratch_dir = scratch_dir
        self.workers = workers

    def __repr__(self):
        return (f"MSD(species={self.species!r}, drift={self.drift!r}, drift_weights={self.drift_weights!r}, "
                f"framework={self.framework!r}, "
                f"framework_cations={self.framework_cations!r}, temperature={self.temperature!r}, "
                f"charge={self.charge!r}, collective={self.collective!r}, charges={self.charges!r}, "
                f"memory={self.memory!r}, mode={self.mode!r}, scratch_dir={self.scratch_dir!r}, workers={self.workers!r}, "
                f"progress={self.progress!r})")

    # ------------------------------------------------------------------ setup
    def _atoms(self):
        return self._read

    def _bytes_per_frame(self, n_atoms_read) -> int:
        """Working bytes per frame of a read chunk.

        The reader's copies of the read atoms only (it reads the selected atoms, no velocities: the float64
        output, 24 B per atom, plus its raw float32 buffer of at most a quarter of that), the read atoms'
        raw, fractional, unwrapped and Cartesian float64 positions (4 × 24 B) and the copies made here
        (selection for the store and its transpose, framework and charged atoms: 24 B each).
        """
        reader = 30 * int(n_atoms_read)
        return int(reader + 96 * int(n_atoms_read) + 24 * (2 * len(self._idx) + len(self._fw) + len(self._qidx)))

    def _chunk_frames(self):
        return self._fpc

    def _prepare(self):
        traj = self.traj
        meta = {}
        self._idx = traj.select(self.species)
        if len(self._idx) == 0:
            raise OptionError(f"the selection {self.species!r} is empty")
        sel_species = sorted(set(traj.species[self._idx]))
        others = np.setdiff1d(np.arange(traj.n_atoms), self._idx)
        # drift: one rule for every format (the same trajectory read from two formats gives the same MSD)
        fw, want_drift, weights, reason = drift_rule(traj, self._idx, drift=self.drift, framework=self.framework,
                                                     drift_weights=self.drift_weights)
        self._want_drift = want_drift
        self._drift_weights = weights if want_drift else None
        meta["drift_weights"] = self._drift_weights
        self._fw = fw if want_drift else np.zeros(0, np.int64)
        meta["drift_reason"] = reason
        meta["framework_species"] = sorted(set(traj.species[fw])) if want_drift else []
        # framework cations (melting flag)
        if self.framework_cations is not None:
            fc_species = [str(s) for s in ([self.framework_cations] if isinstance(self.framework_cations, str)
                                           else self.framework_cations)]
            fc = others[np.isin(traj.species[others], fc_species)]
        else:
            anions = [s for s, q in ION_CHARGES.items() if q < 0]
            fc = others[~np.isin(traj.species[others], list(MOBILE_CATIONS) + anions)]
        self._fc = fc
        meta["framework_cations"] = sorted(set(traj.species[fc]))
        # collective
        if self.collective:
            q = _charges_for(traj, self.charges)
            self._q_all = q
            self._qidx = np.nonzero(q != 0)[0]
            meta["charges"] = self.charges if isinstance(self.charges, str) else "per species"
            meta["total_charge_e"] = float(q.sum())
        else:
            self._qidx = np.zeros(0, np.int64)
        # atoms to read in the single pass
        self._read = np.union1d(np.union1d(self._idx, self._fw), np.union1d(self._fc, self._qidx)).astype(np.int64)
        self._col_sel = np.searchsorted(self._read, self._idx)
        self._col_fw = np.searchsorted(self._read, self._fw)
        self._col_fc = np.searchsorted(self._read, self._fc)
        self._col_q = np.searchsorted(self._read, self._qidx)
        self._want_tensor = bool(self.tensor and self.uniform and self.n_frames >= 8 and len(self._idx) >= 2)
        if self.tensor:
            meta["tensor"] = ("MSD tensor and per-atom D-tensor slopes on the scalar fit's lags from one block loop "
                              "over the held positions (forward FFTs only), no second read of the trajectory"
                              if self._want_tensor else
                              "not computed: the tensor needs evenly spaced frames, at least 8 frames and 2 atoms")
        self._plan(meta)
        meta["selected_species"] = sel_species
        self._meta = meta

    def _plan(self, meta):
        """Choose the path, the frames per read chunk and the atoms per FFT block from the budget.

        The budget covers everything that grows with atoms × frames (the
        positions in memory, the FFT block workspace and the block read back
        from the scratch file) and one read chunk; arrays of O(n_frames)
        scalars per direction (times, volumes, drift, charge displacement,
        the summed spectra) come on top and are counted only in the
        in-memory decision and in ``meta["memory_estimate_bytes"]``.
        """
        T, N = self.n_frames, len(self._idx)
        budget = self.budget
        sel_bytes = 24 * T * N
        per_frame = self._bytes_per_frame(len(self._read))
        fpc = int(max(1, min(T, min(budget // 4, MAX_CHUNK_BYTES) // max(per_frame, 1))))
        L = fft_length(T)
        # O(T): times, frames, volumes, COM/drift, charge series, S1 sums, summed spectra, inverse FFT, result
        fixed = 8 * (24 * T + 8 * L)
        if self.uniform:
            ws_atom = workspace_bytes_per_atom(T)
            if self.alpha2:     # the fourth-moment pass reuses the same block bytes (one after the other)
                ws_atom = max(ws_atom, _kvh.moments_workspace_bytes_per_atom(T))
            if self._want_tensor:   # so do the tensor sums and the per-atom tensor slopes
                ws_atom = max(ws_atom, tensor_workspace_bytes_per_atom(T))
            ws_mem = max(ws_atom, min(_kmsd.DEFAULT_WORKSPACE, max(int(0.4 * sel_bytes), 8 * 1024**2)))
            block_mem = int(max(1, min(N, ws_mem // ws_atom)))
            need_mem = sel_bytes + block_mem * ws_atom + fpc * per_frame + fixed
            if self.mode == "memory" or (self.mode == "auto" and need_mem <= IN_MEMORY_FRACTION * budget):
                self._path, self._block, estimate = "memory", block_mem, need_mem
            else:
                self._path = "out-of-core"
                per_atom = ws_atom + 24 * T  # FFT workspace + the block read back from the scratch file
                # a tight budget goes to one atom's FFT first; the read chunk gets the rest (at least one frame)
                fpc = int(max(1, min(fpc, (budget - per_atom) // max(per_frame, 1))))
                avail = budget - fpc * per_frame
                if avail < per_atom:
                    raise OptionError(f"memory budget of {format_bytes(budget)} is too small for {T} frames: one "
                                      f"atom's FFT needs {format_bytes(per_atom)}; give at least "
                                      f"{format_bytes(int(per_atom * 4 / 3) + per_frame)} (memory= / --memory)")
                self._block = int(max(1, min(N, min(avail, OUT_OF_CORE_WORKSPACE) // per_atom)))
                estimate = self._block * per_atom + fpc * per_frame + fixed
        else:
            need_mem = sel_bytes + fpc * per_frame + fixed
            in_mem = self.mode == "memory" or (self.mode == "auto" and need_mem <= IN_MEMORY_FRACTION * budget)
            self._path = "pairs (uneven frame spacing)" if in_mem else "pairs, out-of-core"
            if in_mem:
                self._block, estimate = N, need_mem
            else:
                # a quarter of the budget for the float64 block read back (and as much for its time-major copy);
                # the pair sums depend on the block size, so this rule is kept as it was
                self._block = int(max(1, min(N, min(budget // 4, OUT_OF_CORE_WORKSPACE) // (24 * T))))
                estimate = self._block * 48 * T + fpc * per_frame + fixed
        self._fpc = fpc
        meta.update({"path": self._path, "memory_budget_bytes": int(budget), "frames_per_chunk": fpc,
                     "atoms_per_block": self._block, "memory_estimate_bytes": int(estimate),
                     "memory_budget_source": "given" if self.memory is not None else
                     "default (half the available RAM)"})

    # ------------------------------------------------------------------ pass
    def _start_pass(self):
        T, N = self.n_frames, len(self._idx)
        traj = self.traj
        self._pos = self._store = None
        self._t = 0
        self._com = np.zeros((T, 3)) if self._want_drift else None
        self._P = np.zeros((T, 3)) if self.collective else None
        self._vols = np.empty(T)
        self._fc_first = self._fc_last = None
        if self._want_drift:
            mw = traj.masses[self._fw] if self._drift_weights == "mass" else np.ones(len(self._fw))
            self._mw = mw / mw.sum()
        if self.collective:
            self._qv = self._q_all[self._qidx]
        if self._path in ("memory", "pairs (uneven frame spacing)"):
            self._pos = np.empty((T, N, 3))
        else:
            self._store = SeriesStore(3 * N, T, budget=self.budget, mode="out-of-core", scratch_dir=self.scratch_dir,
                                      prefix="anionmotion-msd-")
            self._meta["scratch_file_bytes"] = int(self._store.nbytes)

    def _accumulate(self, chunk):
        p = chunk.positions
        n = p.shape[0]
        t0 = self._t
        sel = p[:, self._col_sel] if len(self._col_sel) != len(self._read) else p
        if self._pos is not None:
            self._pos[t0:t0 + n] = sel
        else:
            self._store.write(t0, sel)  # rows atom·3 + direction: the atom-major layout (N, 3, T)
        if self._want_drift:
            _weighted_sum(p, self._col_fw, self._mw, self._com[t0:t0 + n])
        if self.collective:
            _weighted_sum(p, self._col_q, self._qv, self._P[t0:t0 + n])
        if len(self._fc):
            if self._fc_first is None:
                self._fc_first = p[0, self._col_fc].copy()
            self._fc_last = p[-1, self._col_fc].copy()
        self._vols[t0:t0 + n] = chunk.volumes
        self._t = t0 + n

    def _drift(self):
        if not self._want_drift:
            return None
        return np.ascontiguousarray(self._com - self._com[0])

    # ---------------------------------------------------------------- compute
    def run(self, traj, start=None, stop=None, step=None) -> MSDResult:
        """Compute the MSD of the selection over frames ``start:stop:step``."""
        self._setup(traj, start, stop, step)
        self._prepare()
        try:
            self._start_pass()
            self._iterate("reading")
            if self._t != self.n_frames:  # pragma: no cover - reader contract
                raise TrajectoryError(f"read {self._t} frames, expected {self.n_frames}", path=traj.path)
            out = self._transform()
            res = self._finish(*out)
            if self._want_tensor:    # the fit needs the whole MSD; the slopes the positions still held
                import dataclasses

                six, dt = self._d_tensor(res)
                res = dataclasses.replace(res, msd_tensor=six, d_tensor=dt)
        finally:
            self._release()
        return res

    def _atom_blocks(self, drift):
        """Yield atom-major blocks (n_block, 3, T) of the selection with the drift removed (memory or scratch)."""
        T, N, B = self.n_frames, len(self._idx), self._block
        if self._pos is not None:
            for a0 in range(0, N, B):
                nb = min(B, N - a0)
                blk = self._pos[:, a0:a0 + nb, :].transpose(1, 2, 0)
                yield blk - drift.T[None] if drift is not None else np.ascontiguousarray(blk)
        else:
            sub = _kmsd._msd.subtract_drift_am if self.use_ext else subtract_drift_am_ref
            for _, rows in self._store.blocks(3 * B):
                block = rows.reshape(-1, 3, T)
                if drift is not None:
                    sub(block, drift, 0)
                yield block
                del rows, block     # freed before the next block is read: one block in memory at a time

    def _d_tensor(self, res):
        """MSD tensor and D tensor: one block loop over the held positions after the scalar fit (whose lags the
        per-atom slopes need), each atom transformed once for both."""
        import warnings

        from .diffusion import _spread, fit_diffusion
        from .onsager import _ols_weights

        T, N = self.n_frames, len(self._idx)
        lag = res.lag
        fit0 = fit_diffusion(res, fit=self.tensor_fit, hop_distance=self.hop_distance, warn=False,
                             estimator=self.tensor_estimator)
        # the tensor's own scalar fit on that window (as onsager.d_tensor: estimator auto, no σ); the diagonal of
        # the MSD tensor is msd_xyz
        diag = res.msd_xyz
        tm = diag[-1]
        mres = MSDResult(species=res.species, atom_indices=res.atom_indices, n_frames=T, lag=lag,
                         msd=diag.sum(axis=1), msd_xyz=diag, n_origins=res.n_origins, tmsd=float(tm.sum()),
                         tmsd_xyz=tm, diffusing=bool(tm.sum() >= TMSD_DIFFUSING_A2), framework_tmsd=None,
                         framework_melting=None, volume_A3=res.volume_A3, temperature_K=None, charge=None,
                         dt_ps=self.dt, hop_distance_A=res.hop_distance_A)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = fit_diffusion(mres, fit=fit0.fit_window_ps, estimator="auto")
        t0, t1 = fit.fit_window_ps
        sel = np.nonzero((lag >= t0 - 1e-9) & (lag <= t1 + 1e-9) & (lag > 0))[0]
        sel = _spread(sel, TENSOR_MAX_FIT_LAGS)
        w = _ols_weights(lag[sel])
        kern = _slope_kernels(T, sel, w)
        sums = (np.zeros((6, T)), np.zeros((6, fft_length(T) // 2 + 1)))
        slopes = np.empty((N, 6))
        a0 = 0
        with self._phase(N, "MSD tensor and per-atom D-tensor slopes", unit="atom") as bar:
            for block in self._atom_blocks(self._drift()):
                nb = block.shape[0]
                slopes[a0:a0 + nb] = tensor_slopes(block, sel, w, workers=self.workers, kernels=kern, sums=sums)
                a0 += nb
                bar.update(nb)
                del block
        six = msd_tensor_from_sums(sums[0], sums[1], N)
        dt = d_tensor_from_slopes(res.species, lag, six, slopes, fit, sel, n_boot=self.n_boot, seed=self.seed,
                                  temperature_K=res.temperature_K, charge=res.charge, volume_A3=res.volume_A3,
                                  frame_reason=res.meta.get("drift_reason", ""),
                                  notes=[str(x.message) for x in caught])
        return six, dt

    def _release(self):
        self._pos = None
        if getattr(self, "_store", None) is not None:
            self._store.close()
            self._store = None

    def _transform(self):
        """The FFT (or pair) pass over atom blocks; returns ``(lag, msd, msd_xyz, n_origins, tmsd_xyz)``."""
        T, N = self.n_frames, len(self._idx)
        drift = self._drift()
        B = self._block
        with self._phase(N, "FFT over atom blocks" if self.uniform else "frame pairs over atom blocks",
                         unit="atom") as bar:
            self._alpha2 = None
            if self.uniform:
                acc = MSDAccumulator(T, B, workers=self.workers, use_ext=self.use_ext)
                acc4 = None
                if self.alpha2:    # the block's workspace was sized for the larger of the two passes
                    acc4 = _kvh.NonGaussianAccumulator(T, B, workers=self.workers)
                if self._pos is not None:
                    for a0 in range(0, N, B):
                        nb = min(B, N - a0)
                        acc.add_time_major(self._pos, a0, nb, drift)
                        if acc4 is not None:      # one workspace at a time
                            acc.free_workspace()
                            acc4.add_time_major(self._pos, a0, nb, drift)
                            acc4.free_workspace()
                        bar.update(nb)
                else:
                    for block in self._atom_blocks(drift):     # scratch file: atom-major blocks
                        acc.add_atom_major(block)
                        if acc4 is not None:      # one workspace at a time
                            acc.free_workspace()
                            acc4.add_atom_major(block)
                            acc4.free_workspace()
                        bar.update(block.shape[0])
                        del block
                if not self._want_tensor:     # the tensor's block loop reads the positions once more
                    self._pos = None
                acc.free_workspace()
                msd_tot, msd_xyz, tmsd_xyz = acc.finish()
                if acc4 is not None:
                    acc4.free_workspace()
                    m2, m4 = acc4.finish()
                    self._alpha2 = _kvh.alpha2_from_moments(m2, m4)
                lag = np.arange(T) * (self.dt or 0.0)
                n_orig = (T - np.arange(T)).astype(np.int64)
                return lag, msd_tot, msd_xyz, n_orig, tmsd_xyz
            if self._pos is not None:
                pos = self._pos
                if drift is not None:
                    pos -= drift[:, None, :]
                # one kernel call over every atom (the sums over atoms per frame pair are then those of msd_pairs)
                lag, msd_tot, msd_xyz, n_orig = msd_pairs(pos, self.times, use_ext=self.use_ext)
                if self.alpha2:
                    _, m2, m4, _ = _kvh.displacement_moments_pairs(pos, self.times)
                    self._alpha2 = _kvh.alpha2_from_moments(m2, m4)
                tmsd_xyz = ((pos[-1] - pos[0]) ** 2).mean(axis=0)
                bar.update(N)
                return lag, msd_tot, msd_xyz, n_orig, tmsd_xyz
            keys, quantum = lag_keys(self.times)
            accp = np.zeros((len(keys), 3))
            count = np.zeros(len(keys), dtype=np.int64)
            tm = np.zeros(3)
            s2 = np.zeros(len(keys)) if self.alpha2 else None
            s4 = np.zeros(len(keys)) if self.alpha2 else None
            pairs = _kmsd._msd.msd_pairs if self.use_ext else _kmsd.msd_pairs_ref
            for _, rows in self._store.blocks(3 * B):
                p = np.ascontiguousarray(rows.reshape(-1, 3, T).transpose(2, 0, 1))
                del rows
                if drift is not None:
                    p -= drift[:, None, :]
                count = np.zeros(len(keys), dtype=np.int64)  # the same pairs for every block
                pairs(p, self.times, keys, quantum, accp, count)
                if self.alpha2:      # moments of this block, weighted back to sums over its atoms
                    _, m2, m4, _ = _kvh.displacement_moments_pairs(p, self.times, quantum=quantum)
                    s2 += m2 * p.shape[1]
                    s4 += m4 * p.shape[1]
                tm += ((p[-1] - p[0]) ** 2).sum(axis=0)
                bar.update(p.shape[1])
                del p
            if self.alpha2:
                self._alpha2 = _kvh.alpha2_from_moments(s2 / N, s4 / N)
            msd_xyz = accp / (np.maximum(count, 1) * N)[:, None]
            return keys * quantum, msd_xyz.sum(axis=1), msd_xyz, count, tm / N

    def _finish(self, lag, msd_tot, msd_xyz, n_orig, tmsd_xyz):
        traj = self.traj
        T = self.n_frames
        meta = self._meta
        # framework melting
        fw_tmsd = fw_melt = None
        if len(self._fc) and self._fc_first is not None:
            d = self._fc_last - self._fc_first
            if self._want_drift:
                d = d - (self._com[-1] - self._com[0])
            fw_tmsd = float((d ** 2).sum(axis=1).mean())
            fw_melt = bool(fw_tmsd > TMSD_MELTING_A2)
        # temperature and charge
        temperature = self.temperature
        if temperature is None:
            tmeta = traj.metadata.get("temperature", traj.metadata.get("temperature_K"))
            if tmeta is not None:
                temperature = float(tmeta)
                meta["temperature_source"] = "trajectory metadata"
        else:
            meta["temperature_source"] = "given"
        if temperature is not None and not (np.isfinite(temperature) and temperature > 0):
            raise OptionError(f"temperature must be positive (K); got {temperature!r}")
        sp = sorted(set(traj.species[self._idx]))
        charge = self.charge
        if charge is None and len(sp) == 1 and sp[0] in ION_CHARGES:
            charge = float(ION_CHARGES[sp[0]])
            meta["charge_source"] = "formal ionic charge (anionmotion.elements.ION_CHARGES)"
        elif charge is not None:
            charge = float(charge)
            meta["charge_source"] = "given"
        # collective charge MSD
        cm = cmx = None
        if self.collective:
            P = np.ascontiguousarray(self._P[:, None, :])
            if self.uniform:
                cm, cmx = msd_fft(P, workers=self.workers, use_ext=self.use_ext)
            else:
                _, cm, cmx, _ = msd_pairs(P, self.times, use_ext=self.use_ext)
        # hop distance for the He et al. estimate
        hop = None
        if len(self._idx) >= 2:
            from .hops import nearest_neighbour_distance

            nfr = 1 if not self.dt else max(1, int(round(1.0 / self.dt)))
            try:
                hop = nearest_neighbour_distance(traj, self._idx, start=self.frame_range.start, frames=min(nfr, T))
            except OptionError:
                hop = None
            if hop is not None and not hop > 0:
                hop = None
        meta["hop_distance_rule"] = ("median nearest-neighbour distance of the selection, sites averaged over the "
                                     "first ps (minimum image)")
        tmsd = float(np.sum(tmsd_xyz))
        return MSDResult(
            species=str(self.species) if isinstance(self.species, str) else "selection",
            atom_indices=self._idx, n_frames=T, lag=np.asarray(lag, dtype=np.float64), msd=msd_tot, msd_xyz=msd_xyz,
            n_origins=np.asarray(n_orig, dtype=np.int64), tmsd=tmsd, tmsd_xyz=np.asarray(tmsd_xyz),
            diffusing=bool(tmsd >= TMSD_DIFFUSING_A2), framework_tmsd=fw_tmsd, framework_melting=fw_melt,
            volume_A3=math.fsum(self._vols) / T, temperature_K=temperature, charge=charge, dt_ps=self.dt,
            drift=self._drift(), charge_msd=cm, charge_msd_xyz=cmx, hop_distance_A=hop, meta=meta,
            alpha2=getattr(self, "_alpha2", None))


def _weighted_sum(p, cols, w, out):
    """out[t, k] = Σ_j w_j p[t, cols_j, k], summed atom after atom (the same bits whatever the chunking)."""
    out[...] = 0.0
    for j, c in enumerate(cols):
        out += w[j] * p[:, c]


def msd(traj, *, species, drift=None, drift_weights=None, framework=None, framework_cations=None, temperature=None,
        charge=None, collective=False, charges="trajectory", start=None, stop=None, step=None, memory=None,
        mode="auto", scratch_dir=None, workers=2, progress=None, alpha2=True, tensor=False, tensor_fit=None,
        tensor_estimator="auto", hop_distance=None, n_boot=None, seed=0) -> MSDResult:
    """Exact all-origin MSD of ``species`` (SPEC §2), in memory or out of core.

    Parameters
    ----------
    traj : Trajectory
    species : str or selection
        Mobile species, e.g. ``"Li"``.
    drift : bool or None
        Subtract the framework centre-of-mass displacement; None = on whenever the trajectory has
        framework atoms (every file format alike), off when it has none.
    drift_weights : {"mass", "unweighted"}, optional
        Mass-weighted (default) or unweighted framework centre; see :class:`MSD`.
    framework, framework_cations, temperature, charge, collective, charges, memory, mode, scratch_dir, workers, progress, alpha2 :
        See :class:`MSD`.
    tensor, tensor_fit, tensor_estimator, hop_distance, n_boot, seed :
        The MSD tensor and the D tensor (same pass over the trajectory); see :class:`MSD`.
    start, stop, step : int, optional
        Frame range.

    Returns
    -------
    MSDResult

    Notes
    -----
    MSD(τ) = (1/N) Σ_i ⟨|r_i(t+τ) − r_i(t)|²⟩_t over every origin t.  Evenly
    spaced frames: FFT, O(N·T log T); uneven frames: every frame pair grouped
    by time difference, O(N·T²).  Peak memory: in memory mode the selection's
    float64 positions (24·N·T bytes) plus a bounded FFT workspace and one read
    chunk (≤ 128 MiB), chosen only when these fit half the ``memory`` budget;
    otherwise at most the budget (FFT blocks ≤ 256 MiB), whatever T, with a
    scratch file of 24·N·T bytes on disk.  Arrays of O(T) scalars (times,
    drift, charge displacement) come on top.

    References
    ----------
    SPEC §2; paper 003 (TMSD thresholds).

    Examples
    --------
    >>> import numpy as np, anionmotion
    >>> pos = np.zeros((5, 1, 3)); pos[:, 0, 0] = 0.5 * np.arange(5)   # v = 5 Å/ps, dt = 0.1 ps
    >>> res = anionmotion.msd(anionmotion.from_arrays(pos, np.eye(3) * 10, species=["Li"], frame_interval=0.1),
    ...                       species="Li")
    >>> np.round(res.msd, 10).tolist()
    [0.0, 0.25, 1.0, 2.25, 4.0]
    """
    return MSD(species, drift=drift, drift_weights=drift_weights, framework=framework, framework_cations=framework_cations,
               temperature=temperature, charge=charge, collective=collective, charges=charges, memory=memory,
               mode=mode, scratch_dir=scratch_dir, workers=workers, progress=progress,
               alpha2=alpha2, tensor=tensor, tensor_fit=tensor_fit, tensor_estimator=tensor_estimator,
               hop_distance=hop_distance, n_boot=n_boot, seed=seed).run(traj, start=start, stop=stop, step=step)
