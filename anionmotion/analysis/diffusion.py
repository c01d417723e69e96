"""Diffusion coefficients, their uncertainty, and conductivities from an MSD (SPEC §2).

``fit_diffusion(msd_result)`` fits MSD(τ) = b0 + 2·d·D·τ on a lag window and
returns a :class:`DiffusionResult` with D (total and per direction), its
standard error, the He et al. (2018) empirical estimate for comparison, the
Nernst–Einstein tracer conductivity and, when the MSD result carries the
charge-displacement MSD, the collective conductivity and the Haven ratio.

Estimators (``estimator=`` / ``--estimator``)
---------------------------------------------
``auto`` (default)
    Finds the diffusive regime: window starts from 0.1 × the longest lag on are tried until the OLS slope
    of the window's first half exceeds that of its second half by less than 1 standard error (at that
    start and the next); D by OLS there.  The error comes from the covariance of the observed MSD, each
    direction of each atom taken as a Gaussian process with stationary increments whose MSD is the
    observed one below the window and the fitted line from there on (:func:`gp_msd_covariance`), times a
    non-Gaussian factor for discrete hops of length a (the hop distance); atoms independent; OLS sandwich.
    When the regime is never reached, D is the long-time slope, flagged (``diffusive_regime_reached``
    False, FitWarning) with an error that adds the fall of the local slope over the searched starts.
``gls``
    The former default: GLS with the exact covariance of the all-origin MSD of Gaussian random walks with
    white vibrational noise (Isserlis' theorem, closed form in :func:`anionmotion.kernels.msd.msd_covariance`),
    plug-in parameters refined twice, variance × max(1, χ²/dof).  Its weights follow the window's start,
    so on a caged (bending) MSD it is biased high with too small an error.
``ols``
    OLS on the window (no regime search) with the ``auto`` error.
``he``
    OLS on the window with the He et al. (2018) error.

For frames at uneven times there is no covariance model: the fit is OLS and the uncertainty is the He et al.
estimate.  docs/diffusion.md §2 gives the measured bias and coverage of every estimator.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import FitWarning, OptionError
from ..kernels.msd import msd_covariance
from ..results import Result, to_jsonable
from ..units import A2_PS_TO_CM2_S, nernst_einstein_S_cm

__all__ = ["fit_diffusion", "DiffusionResult", "conductivity", "Conductivity", "default_fit_window",
           "D_THRESHOLD_CM2_S", "FIT_START_FRACTION", "FIT_END_FRACTION", "he_relative_error", "report_dict",
           "ESTIMATORS", "gp_msd_covariance", "time_axis_check"]

D_THRESHOLD_CM2_S = 1e-8
"""Paper 000: D below this is reported as a bound (cm²/s)."""
FIT_START_FRACTION = 0.1
"""Default fit window start, as a fraction of the longest lag (skips the ballistic/vibrational start)."""
FIT_END_FRACTION = 0.5
"""Default fit window end, as a fraction of the longest lag (skips the noisy tail with < half the origins)."""
LOGLOG_RANGE = (0.7, 1.3)
"""The log–log slope of the MSD in the fit window must lie in this range, else a FitWarning."""


def default_fit_window(lag_max_ps):
    """Default fit window [0.1, 0.5] × the longest lag, ps."""
    return FIT_START_FRACTION * lag_max_ps, FIT_END_FRACTION * lag_max_ps


def he_relative_error(n_ions, msd_max, hop_distance):
    """Empirical relative error of D (He et al. 2018, eqs. 8–9).

    σ_D/D ≈ 3.43/√N_eff + 0.04, N_eff = N_ions · max_τ MSD(τ) / a².
    Returns ``(relative_error, N_eff)``; NaN when N_eff ≤ 0.
    """
    n_eff = n_ions * msd_max / hop_distance ** 2
    if not n_eff > 0:
        return float("nan"), float(n_eff)
    return 3.43 / math.sqrt(n_eff) + 0.04, float(n_eff)


@dataclass(frozen=True, repr=False)
class Conductivity(Result):
    """Nernst–Einstein tracer conductivity (and optionally the collective one).

    Attributes
    ----------
    sigma_S_cm, sigma_stderr_S_cm : float, S/cm
        Tracer σ = N q² D / (V k_B T) and its standard error (from D's).
    below_threshold : bool
        D is below 1e-8 cm²/s: ``sigma_S_cm`` is then the upper bound computed at the threshold.
    charge : float, e
    n_ions : int
    volume_A3 : float, Å³ (time-averaged)
    temperature_K : float, K
    sigma_collective_S_cm, sigma_collective_stderr_S_cm : float or None, S/cm
        From the MSD of Σ_j q_j Δr_j: σ = slope / (6 V k_B T).
    haven_ratio, haven_ratio_stderr : float or None
        σ_tracer / σ_collective.
    meta : dict
    """

    sigma_S_cm: float
    sigma_stderr_S_cm: float
    below_threshold: bool
    charge: float
    n_ions: int
    volume_A3: float
    temperature_K: float
    sigma_collective_S_cm: Optional[float] = None
    sigma_collective_stderr_S_cm: Optional[float] = None
    haven_ratio: Optional[float] = None
    haven_ratio_stderr: Optional[float] = None
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        ms = 1e3
        return to_jsonable({
            "sigma_mS_cm": self.sigma_S_cm * ms, "sigma_stderr_mS_cm": self.sigma_stderr_S_cm * ms,
            "below_threshold": self.below_threshold, "bound": "upper" if self.below_threshold else None,
            "charge": self.charge, "n_ions": self.n_ions, "volume_A3": self.volume_A3,
            "temperature_K": self.temperature_K,
            "sigma_collective_mS_cm": None if self.sigma_collective_S_cm is None else self.sigma_collective_S_cm * ms,
            "sigma_collective_stderr_mS_cm": (None if self.sigma_collective_stderr_S_cm is None
                                              else self.sigma_collective_stderr_S_cm * ms),
            "haven_ratio": self.haven_ratio, "haven_ratio_stderr": self.haven_ratio_stderr,
            "meta": self.meta,
        })


def conductivity(D_A2_ps, *, n_ions, charge, volume_A3, temperature_K, D_stderr_A2_ps=0.0):
    """Nernst–Einstein tracer conductivity σ = N q² D / (V k_B T) (SPEC §2).

    Parameters
    ----------
    D_A2_ps : float, Å²/ps
        Tracer diffusion coefficient (or a :class:`DiffusionResult`, whose D, n_ions, … are used
        unless given).
    n_ions : int
        Number of mobile ions N.
    charge : float, e
    volume_A3 : float, Å³
        Time-averaged cell volume.
    temperature_K : float, K
    D_stderr_A2_ps : float, Å²/ps

    Returns
    -------
    Conductivity
        σ and its standard error in S/cm (``to_dict`` gives mS/cm).  A D below
        1e-8 cm²/s gives the σ at the threshold, flagged as an upper bound.
    """
    for name, v in (("n_ions", n_ions), ("volume_A3", volume_A3), ("temperature_K", temperature_K)):
        if v is None or not (np.isfinite(v) and v > 0):
            raise OptionError(f"conductivity: {name} must be positive; got {v!r}")
    if charge is None or not np.isfinite(charge) or charge == 0:
        raise OptionError(f"conductivity: charge must be a non-zero number of e; got {charge!r}")
    below = D_A2_ps * A2_PS_TO_CM2_S <= D_THRESHOLD_CM2_S
    D = D_THRESHOLD_CM2_S / A2_PS_TO_CM2_S if below else D_A2_ps
    s = nernst_einstein_S_cm(int(n_ions), float(charge), D, float(volume_A3), float(temperature_K))
    se = nernst_einstein_S_cm(int(n_ions), float(charge), D_stderr_A2_ps, float(volume_A3), float(temperature_K))
    return Conductivity(sigma_S_cm=float(s), sigma_stderr_S_cm=float(0.0 if below else se), below_threshold=bool(below),
                        charge=float(charge), n_ions=int(n_ions), volume_A3=float(volume_A3),
                        temperature_K=float(temperature_K),
                        meta={"equation": "σ = N q² D / (V k_B T) (Nernst–Einstein, Haven ratio 1)"})


@dataclass(frozen=True, repr=False)
class DiffusionResult(Result):
    """Diffusion coefficient from an MSD fit (SPEC §2).

    Attributes
    ----------
    D_A2_ps, D_stderr_A2_ps : float, Å²/ps
        Total D = slope/6 and its standard error.  When ``below_threshold``,
        ``D_A2_ps`` is the threshold (1e-4 Å²/ps = 1e-8 cm²/s): an upper bound, not an estimate.
    D_xyz_A2_ps, D_xyz_stderr_A2_ps : ndarray, shape (3,), Å²/ps
        Per direction, D_k = slope_k / 2 (bounded like the total).
    below_threshold : bool
    below_threshold_xyz : ndarray, shape (3,), bool
    intercept_A2 : float, Å²
        Fitted MSD offset (vibrational amplitude).
    fit_window_ps : tuple (start, end), ps
    fit_window_default : bool
    n_fit_lags : int
        Lags used by the fit.
    loglog_slope : float
        d ln MSD / d ln τ in the window (1 = diffusive).
    he_relative_error : float or None
        He et al. 2018 σ_D/D (total).
    he_relative_error_xyz : ndarray, shape (3,) or None
    he_n_eff : float or None
    method : str
        Estimator of D and of its error.
    conductivity : Conductivity or None
    meta : dict
    estimator : str
        ``auto`` (default), ``gls``, ``ols`` or ``he`` (see :func:`fit_diffusion`).
    diffusive_regime_reached : bool or None
        The MSD's local slope has converged in the window used (None: not assessed, uneven frames).  When
        False, D is the long-time slope: an unreliable estimate whose error includes how much the slope is
        still changing.
    D_stat_stderr_A2_ps : float or None, Å²/ps
        Statistical part of ``D_stderr_A2_ps`` (what run-to-run scatter of replicas measures); equal to it
        unless the diffusive regime was not reached, when ``D_stderr_A2_ps`` adds the systematic term.
    regime : dict or None
        ``start_ps``, ``end_ps``, ``reached``, ``reason``, ``tried`` (the local-slope test at each start
        tried: slopes of the window's two halves in Å²/ps and their difference in standard errors, z) and
        ``systematic_slope_A2_ps`` (the slope change added to the error when the regime is not reached).
    """

    species: str
    n_ions: int
    D_A2_ps: float
    D_stderr_A2_ps: float
    D_xyz_A2_ps: np.ndarray
    D_xyz_stderr_A2_ps: np.ndarray
    below_threshold: bool
    below_threshold_xyz: np.ndarray
    intercept_A2: float
    fit_window_ps: tuple
    fit_window_default: bool
    n_fit_lags: int
    loglog_slope: float
    he_relative_error: Optional[float]
    he_relative_error_xyz: Optional[np.ndarray]
    he_n_eff: Optional[float]
    method: str
    temperature_K: Optional[float] = None
    conductivity: Optional[Conductivity] = None
    meta: dict = field(default_factory=dict)
    estimator: str = "auto"
    diffusive_regime_reached: Optional[bool] = None
    regime: Optional[dict] = None
    D_stat_stderr_A2_ps: Optional[float] = None

    @property
    def D_cm2_s(self) -> float:
        return self.D_A2_ps * A2_PS_TO_CM2_S

    @property
    def D_stderr_cm2_s(self) -> float:
        return self.D_stderr_A2_ps * A2_PS_TO_CM2_S

    @property
    def is_upper_bound(self) -> bool:
        return self.below_threshold

    def to_dict(self) -> dict:
        """The ``diffusion`` block of the msd JSON (conductivity nested)."""
        c = A2_PS_TO_CM2_S
        he = self.he_relative_error
        return to_jsonable({
            "species": self.species,
            "D_cm2_s": self.D_A2_ps * c, "D_stderr_cm2_s": self.D_stderr_A2_ps * c,
            "D_xyz_cm2_s": self.D_xyz_A2_ps * c, "D_xyz_stderr_cm2_s": self.D_xyz_stderr_A2_ps * c,
            "D_A2_ps": self.D_A2_ps, "D_stderr_A2_ps": self.D_stderr_A2_ps,
            "D_stat_stderr_cm2_s": None if self.D_stat_stderr_A2_ps is None else self.D_stat_stderr_A2_ps * c,
            "below_threshold": self.below_threshold, "below_threshold_xyz": self.below_threshold_xyz,
            "bound": "upper" if self.below_threshold else None, "threshold_cm2_s": D_THRESHOLD_CM2_S,
            "intercept_A2": self.intercept_A2,
            "fit_window_ps": list(self.fit_window_ps), "fit_window_default": self.fit_window_default,
            "n_fit_lags": self.n_fit_lags, "loglog_slope": self.loglog_slope,
            "method": self.method, "estimator": self.estimator,
            "diffusive_regime_reached": self.diffusive_regime_reached,
            "diffusive_regime": self.regime,
            "he_relative_error": he, "he_relative_error_xyz": self.he_relative_error_xyz, "he_n_eff": self.he_n_eff,
            "D_he_stderr_cm2_s": None if he is None or self.below_threshold else self.D_A2_ps * c * he,
            "temperature_K": self.temperature_K,
            "conductivity": None if self.conductivity is None else self.conductivity.to_dict(),
            "meta": self.meta,
        })

    def summary(self) -> str:
        c = A2_PS_TO_CM2_S
        w = self.fit_window_ps
        if not self.fit_window_default:
            how = "given"
        elif self.estimator == "auto" and self.regime is not None:
            how = "default: diffusive regime searched in 0.1–0.5 of the longest lag"
        else:
            how = "default: 0.1–0.5 of the longest lag"
        lines = [f"fit window   {w[0]:.4g} … {w[1]:.4g} ps ({how}), "
                 f"{self.n_fit_lags} lags, log–log slope {self.loglog_slope:.3f}",
                 f"estimator    {self.estimator}: {self.method}"]
        if self.diffusive_regime_reached is not None and self.regime is not None:
            lines.append(f"diffusive    {'reached' if self.diffusive_regime_reached else 'NOT REACHED'}: "
                         f"{self.regime.get('reason')}")
        if self.below_threshold:
            lines.append(f"D            < {D_THRESHOLD_CM2_S:.0e} cm²/s (below the measurable threshold)")
        else:
            lines.append(f"D            {self.D_A2_ps * c:.4e} ± {self.D_stderr_A2_ps * c:.2e} cm²/s"
                         + (f"   (He et al. ± {self.he_relative_error * self.D_A2_ps * c:.2e})"
                            if self.he_relative_error is not None else "")
                         + ("   UNRELIABLE: long-time estimate, not diffusive yet"
                            if self.diffusive_regime_reached is False else ""))
        xyz = []
        for k, ax in enumerate("xyz"):
            if self.below_threshold_xyz[k]:
                xyz.append(f"{ax} < {D_THRESHOLD_CM2_S:.0e}")
            else:
                xyz.append(f"{ax} {self.D_xyz_A2_ps[k] * c:.3e} ± {self.D_xyz_stderr_A2_ps[k] * c:.1e}")
        lines.append("D_xyz        " + ", ".join(xyz) + " cm²/s")
        if self.conductivity is not None:
            cd = self.conductivity
            if cd.below_threshold:
                lines.append(f"σ (tracer)   < {cd.sigma_S_cm * 1e3:.3g} mS/cm (bound)")
            else:
                lines.append(f"σ (tracer)   {cd.sigma_S_cm * 1e3:.4g} ± {cd.sigma_stderr_S_cm * 1e3:.2g} mS/cm "
                             f"(q = {cd.charge:g} e, N = {cd.n_ions}, V = {cd.volume_A3:.6g} Å³, T = {cd.temperature_K:g} K)")
            if cd.sigma_collective_S_cm is not None:
                lines.append(f"σ (collective) {cd.sigma_collective_S_cm * 1e3:.4g} ± "
                             f"{cd.sigma_collective_stderr_S_cm * 1e3:.2g} mS/cm, Haven ratio "
                             f"{cd.haven_ratio:.3g} ± {cd.haven_ratio_stderr:.2g}")
        elif self.temperature_K is None:
            lines.append("σ            not computed (no temperature: give --temperature)")
        return "\n".join(lines)

    def __repr__(self):
        return (f"DiffusionResult(species={self.species!r}, D_cm2_s={self.D_cm2_s:.4g}, "
                f"D_stderr_cm2_s={self.D_stderr_cm2_s:.3g}, below_threshold={self.below_threshold})")


# ------------------------------------------------------------------ fitting
def _gls(x, y, cov):
    """Return (beta (2,), cov_beta (2, 2), reduced χ²) of y = b0 + b1 x with covariance ``cov``."""
    X = np.column_stack([np.ones_like(x), x])
    scale = np.sqrt(np.clip(np.diag(cov), 0, None))
    if not np.all(scale > 0):
        beta, *_ = np.linalg.lstsq(X, y, rcond=None)
        return beta, np.zeros((2, 2)), 1.0
    cs = cov / np.outer(scale, scale)
    cs[np.diag_indices_from(cs)] += 1e-10  # tiny ridge: neighbouring lags are almost collinear
    try:
        L = np.linalg.cholesky(cs)
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(cs)
        cs = (V * np.clip(w, 1e-10 * w.max(), None)) @ V.T
        L = np.linalg.cholesky(cs)
    Xw = np.linalg.solve(L, X / scale[:, None])
    yw = np.linalg.solve(L, y / scale)
    A = Xw.T @ Xw
    cov_beta = np.linalg.inv(A)
    beta = cov_beta @ (Xw.T @ yw)
    r = yw - Xw @ beta
    dof = len(y) - 2
    red = float(r @ r) / dof if dof > 0 else 1.0
    return beta, cov_beta, red


def _ols(x, y):
    X = np.column_stack([np.ones_like(x), x])
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    return beta


def _cov_one_direction(lags_frames, T, slope_ps, intercept, dt, n_series):
    s2 = max(float(slope_ps) * dt, 0.0)
    e2 = max(float(intercept) / 2.0, 0.0)
    return msd_covariance(lags_frames, T, s2=s2, e2=e2) / n_series


def _fit_components(m_frames, tau, Y, T, dt, n_series, iterations=2):
    """GLS fits of the three directions and of their sum.

    Y : (K, 3) MSD per direction at the lags ``m_frames`` (frames) / ``tau`` (ps).
    Returns (beta_xyz (3, 2), var_slope_xyz (3,), beta_tot (2,), var_slope_tot, chi2_xyz (3,), chi2_tot).
    The covariance of each direction is evaluated at that direction's fitted slope and intercept
    (plug-in, iterated); the total's covariance is the sum of the three (directions independent).
    Variances are multiplied by max(1, χ²/dof) (Birge ratio), so that a window where the MSD is
    not a straight line within the model's noise gets a larger error.
    """
    beta = np.array([_ols(tau, Y[:, k]) for k in range(3)])
    for _ in range(iterations):
        covs = [_cov_one_direction(m_frames, T, beta[k, 1], beta[k, 0], dt, n_series) for k in range(3)]
        beta = np.array([_gls(tau, Y[:, k], covs[k])[0] for k in range(3)])
    covs = [_cov_one_direction(m_frames, T, beta[k, 1], beta[k, 0], dt, n_series) for k in range(3)]
    fits = [_gls(tau, Y[:, k], covs[k]) for k in range(3)]
    chi2 = np.array([f[2] for f in fits])
    var = np.array([f[1][1, 1] for f in fits]) * np.maximum(chi2, 1.0)
    btot, cbt, chi2_tot = _gls(tau, Y.sum(axis=1), covs[0] + covs[1] + covs[2])
    return beta, var, btot, cbt[1, 1] * max(chi2_tot, 1.0), chi2, chi2_tot


def _loglog_slope(tau, y):
    ok = (tau > 0) & (y > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(tau[ok]), np.log(y[ok]), 1)[0])


ESTIMATORS = ("auto", "gls", "ols", "he")
"""Names accepted by ``fit_diffusion(estimator=…)`` / ``--estimator`` (``auto`` is the default)."""
CONVERGENCE_Z = 1.0
"""The local slope counts as converged from a start lag when the slope of the window's first half exceeds the
slope of its second half by less than this many standard errors of their difference (one-sided: a caged,
sub-diffusive MSD bends down, so an early slope above the late one is the signature of an unfinished bend)."""
MAX_START_FRACTION = 0.6
"""The diffusive-regime search moves the window start at most to this fraction of the window end."""
N_START_CANDIDATES = 13
"""Window starts tried between the default start and ``MAX_START_FRACTION`` × the window end."""
TEST_NON_GAUSSIAN = "cumulant"
"""Non-Gaussian model of the covariance used by the local-slope test (see :data:`NON_GAUSSIAN`)."""
NON_GAUSSIAN = "scaled"
"""Non-Gaussian (hopping) part of the covariance behind the ``auto`` error: ``"scaled"`` multiplies the whole
Gaussian covariance by √(g_p g_q), g = 1 + a²/(2·slope·m), the variance ratio of x² for λ = slope·m/a² hops
per direction; ``"cumulant"`` adds only the fourth cumulant of discrete hops of length a
(:func:`gp_msd_covariance`).  Chosen by measured coverage (docs/diffusion.md §2): both cover the synthetic
replicas, only ``"scaled"`` matches the run-to-run scatter of the argyrodite replicas (the cage's own jumps
are non-Gaussian too); the cumulant model detects an unfinished bend more reliably and drives the test."""
COV_MAX_FRAMES = 2000
"""The covariance model of the ``auto`` estimator works on at most this many (strided) frames."""
COV_MAX_LAGS = 32
"""Lags (spread evenly over the window) entering the covariance model of the ``auto`` estimator."""


def gp_msd_covariance(lags_frames, n_frames, f, hop_kurtosis=0.0):
    """Covariance of the all-origin MSD of one Gaussian series with stationary increments and MSD ``f``.

    Parameters
    ----------
    lags_frames : array_like of int, shape (K,)
        Lags (frames), 1 ≤ m < n_frames.
    n_frames : int
        Frames T of the series.
    f : ndarray, shape (n_frames,), Å²
        MSD of the series (one direction) at lags 0 … T−1; f[0] = 0.

    Returns
    -------
    ndarray, shape (K, K), Å⁴
        Cov(M_m, M_n) = 2/((T−m)(T−n)) Σ_t Σ_u c(t−u; m, n)², with the increment covariance
        c(d; m, n) = ½[f(|d+m|) + f(|d−n|) − f(|d+m−n|) − f(|d|)] (Isserlis' theorem).  For f linear
        plus a white-noise step this is :func:`anionmotion.kernels.msd.msd_covariance`; here f may bend
        (cages, vibrations), so the short-lag correlations of a caged motion are carried over to the MSD's
        covariance.  Divide by the number of independent series.
    hop_kurtosis : float, Å⁴ per frame
        Rate × mean fourth power of the jumps of a compound-Poisson (hopping) part, E[J⁴]·ν: adds the
        fourth cumulant of the increments, Σ_t Σ_u E[J⁴]·ν·|[t, t+m) ∩ [u, u+n)| / ((T−m)(T−n)), the
        non-Gaussian excess of discrete hops (large when an atom makes few hops in the lag).
    """
    lags = np.asarray(lags_frames, dtype=np.int64)
    T = int(n_frames)
    f = np.asarray(f, dtype=np.float64)
    K = len(lags)
    out = np.empty((K, K))
    # f beyond T−1 is only read where the origin count is 0: pad it so that one grid of d serves every pair
    fp = np.zeros(3 * T + 1)
    fp[:len(f)] = f
    for p in range(K):
        m = int(lags[p])
        n = lags[p:, None]  # every q ≥ p at once (one row of the symmetric matrix)
        d = np.arange(-(T - int(n.min()) - 1), T - m)[None, :]
        cnt = np.clip(np.minimum(T - m, T - n + d) - np.maximum(0, d), 0, None).astype(np.float64)
        c = 0.5 * (fp[np.abs(d + m)] + fp[np.abs(d - n)] - fp[np.abs(d + m - n)] - fp[np.abs(d)])
        acc = 2.0 * np.einsum("ij,ij->i", cnt, c * c)
        if hop_kurtosis:
            ov = np.clip(np.minimum(d + m, n) - np.maximum(d, 0), 0, None).astype(np.float64)
            acc += hop_kurtosis * np.einsum("ij,ij->i", cnt, ov)
        row = acc / ((T - m) * (T - n[:, 0]).astype(np.float64))
        out[p, p:] = row
        out[p:, p] = row
    return out


def _model_msd(msd_1d, start_frame, b0, slope_frame):
    """The MSD the covariance model uses: observed below the window start, the fitted line from there on."""
    f = np.array(msd_1d, dtype=np.float64)
    k = np.arange(len(f), dtype=np.float64)
    line = np.maximum(b0 + slope_frame * k, 0.0)
    f[start_frame:] = line[start_frame:]
    f[0] = 0.0
    return np.maximum(f, 0.0)


class _CovModel:
    """Covariance of the MSD at chosen lags (frames), from the observed MSD per direction (Gaussian model).

    Long trajectories are strided to at most :data:`COV_MAX_FRAMES` frames (the MSD of every ``stride``-th
    origin: a slightly larger, conservative covariance, since origins closer than the stride are correlated
    anyway at the lags of a fit window).
    """

    def __init__(self, msd_xyz, n_frames, n_series, hop_distance=None):
        self.T = int(n_frames)
        self.stride = max(1, -(-self.T // COV_MAX_FRAMES))
        self.msd_xyz = np.asarray(msd_xyz, dtype=np.float64)
        self.n_series = int(n_series)
        self.hop = None if hop_distance is None or not hop_distance > 0 else float(hop_distance)
        self.non_gaussian = NON_GAUSSIAN

    def cov(self, m_frames, start_frame, lines):
        """(K, K) covariance of each direction's MSD (list of 3) for lines ``[(b0, slope per frame)] × 3``.

        With a hop distance a, the fourth cumulant of a walk of discrete hops is added
        (:func:`gp_msd_covariance` ``hop_kurtosis``): hops of length a along one axis at the rate that gives
        the line's slope (per direction, E[J⁴]·ν = slope·a² per frame; isotropic hop directions would give
        3/5 of it, so this errs on the large side).
        """
        s = self.stride
        Ts = self.T // s
        m_frames = np.asarray(m_frames)
        ms = np.maximum(1, np.round(m_frames / s)).astype(np.int64)
        ms = np.minimum(ms, Ts - 1)
        out = []
        for k in range(3):
            f = _model_msd(self.msd_xyz[:, k], start_frame, lines[k][0], lines[k][1])[::s][:Ts]
            if self.non_gaussian == "scaled" and self.hop is not None:
                lam = max(float(lines[k][1]), 1e-300) * np.maximum(m_frames.astype(np.float64), 1.0) / self.hop ** 2
                g = np.sqrt(1.0 + 0.5 / lam)
                out.append(gp_msd_covariance(ms, Ts, f) * np.outer(g, g) / self.n_series)
                continue
            kurt = 0.0 if self.hop is None else max(float(lines[k][1]), 0.0) * s * self.hop ** 2
            out.append(gp_msd_covariance(ms, Ts, f, hop_kurtosis=kurt) / self.n_series)
        return out


def _spread(sel, k):
    if len(sel) <= k:
        return sel
    return sel[np.unique(np.round(np.linspace(0, len(sel) - 1, k)).astype(int))]


def _ols_cov(x, cov):
    """Intercept/slope covariance (2, 2) of the OLS fit of y(x) when y has covariance ``cov``."""
    X = np.column_stack([np.ones_like(x), x])
    A = np.linalg.solve(X.T @ X, X.T)
    return A @ cov @ A.T


def _seg_slopes(x, y, cov, mid):
    """OLS slopes of the two halves (x < mid, x ≥ mid) and the variance of their difference."""
    a = x < mid
    b = ~a
    if a.sum() < 2 or b.sum() < 2:
        return float("nan"), float("nan"), float("nan")
    rows = []
    for msk in (a, b):
        X = np.column_stack([np.ones(msk.sum()), x[msk]])
        w = np.zeros(len(x))
        w[msk] = np.linalg.solve(X.T @ X, X.T)[1]
        rows.append(w)
    w = rows[0] - rows[1]
    return float(rows[0] @ y), float(rows[1] @ y), float(w @ cov @ w)


def _regime_search(result, lag, t_start, t_end, model, fixed=False):
    """Find the earliest window start from which the MSD's local slope has converged (diffusive regime).

    Returns a dict: ``reached``, ``start_ps``, ``end_ps``, ``reason``, ``tried`` (start, first-half slope,
    second-half slope, z per candidate, slopes in Å²/ps) and ``excess`` (relative excess of the early slope
    at the chosen start).
    """
    dt = float(result.dt_ps)
    Ytot = np.asarray(result.msd_xyz, dtype=np.float64)
    starts = [t_start] if fixed else list(np.linspace(t_start, max(t_start, MAX_START_FRACTION * t_end),
                                                      N_START_CANDIDATES))
    tried = []
    error_model, model.non_gaussian = model.non_gaussian, TEST_NON_GAUSSIAN
    try:
        return _search(result, lag, starts, t_start, t_end, model, dt, Ytot, tried)
    finally:
        model.non_gaussian = error_model


def _search(result, lag, starts, t_start, t_end, model, dt, Ytot, tried):
    for ts in starts:
        sel = np.nonzero((lag >= ts - 1e-9) & (lag <= t_end + 1e-9) & (lag > 0))[0]
        sel = _spread(sel, COV_MAX_LAGS)
        if len(sel) < 6:
            break
        tau = lag[sel]
        Y = Ytot[sel]
        lines = []
        for k in range(3):
            b = _ols(tau, Y[:, k])
            lines.append((b[0], b[1] * dt))
        m_frames = np.round(tau / dt).astype(np.int64)
        covs = model.cov(m_frames, int(round(ts / dt)), lines)
        cov = covs[0] + covs[1] + covs[2]
        s1, s2, vd = _seg_slopes(tau, Y.sum(axis=1), cov, 0.5 * (tau[0] + tau[-1]))
        z = (s1 - s2) / math.sqrt(vd) if vd > 0 else (0.0 if s1 == s2 else math.copysign(math.inf, s1 - s2))
        tried.append({"start_ps": float(ts), "slope_first_half_A2_ps": s1, "slope_second_half_A2_ps": s2,
                      "z": float(z)})
        # converged from the previous start: its test and this (later, nested) one both pass
        if len(tried) >= 2 and tried[-2]["z"] < CONVERGENCE_Z and z < CONVERGENCE_Z:
            t = tried[-2]
            why = (f"local slope converged: first-half slope {t['slope_first_half_A2_ps']:.4g} vs second-half "
                   f"{t['slope_second_half_A2_ps']:.4g} Å²/ps (difference {t['z']:.2f} σ < {CONVERGENCE_Z:g} σ, "
                   f"and {z:.2f} σ from the next start {ts:.4g} ps)")
            return {"reached": True, "start_ps": t["start_ps"], "end_ps": float(t_end), "reason": why,
                    "tried": tried}
    if len(starts) == 1 and tried and tried[-1]["z"] < CONVERGENCE_Z:
        t = tried[-1]
        why = (f"local slope converged: first-half slope {t['slope_first_half_A2_ps']:.4g} vs second-half "
               f"{t['slope_second_half_A2_ps']:.4g} Å²/ps (difference {t['z']:.2f} σ < {CONVERGENCE_Z:g} σ)")
        return {"reached": True, "start_ps": t["start_ps"], "end_ps": float(t_end), "reason": why, "tried": tried}
    last = tried[-1] if tried else None
    if last is None:
        why = "window too short to test the local slope (fewer than 6 lags)"
        return {"reached": False, "start_ps": float(t_start), "end_ps": float(t_end), "reason": why, "tried": tried}
    why = (f"local slope still falling at every window start up to {last['start_ps']:.4g} ps: first-half slope "
           f"{last['slope_first_half_A2_ps']:.4g} vs second-half {last['slope_second_half_A2_ps']:.4g} Å²/ps "
           f"({last['z']:.2f} σ ≥ {CONVERGENCE_Z:g} σ); the trajectory is too short for its diffusive regime")
    return {"reached": False, "start_ps": float(last["start_ps"]), "end_ps": float(t_end), "reason": why,
            "tried": tried}


def _fit_auto(result, lag, sel, model, start_frame):
    """OLS per direction and total with the Gaussian-process covariance of the observed MSD (sandwich errors).

    Returns (beta_xyz (3, 2), var_slope_xyz (3,), beta_tot (2,), var_slope_tot, chi2_tot).
    """
    dt = float(result.dt_ps)
    tau = lag[sel]
    Y = np.asarray(result.msd_xyz, dtype=np.float64)[sel]
    beta = np.array([_ols(tau, Y[:, k]) for k in range(3)])
    sub = _spread(np.arange(len(sel)), COV_MAX_LAGS)
    tau_s = tau[sub]
    m_frames = np.round(tau_s / dt).astype(np.int64)
    # plug-in slope of each direction's covariance: its own, but not below the isotropic third of the total
    # (one direction of a few atoms is noisy, and an underestimated slope would understate its error)
    # (the total's covariance is the sum of the directions' own)
    pooled = max(_ols(tau, Y.sum(axis=1))[1] / 3.0, 0.0)
    covs = model.cov(m_frames, start_frame, [(beta[k, 0], beta[k, 1] * dt) for k in range(3)])
    low = [k for k in range(3) if beta[k, 1] < pooled]
    covs_dir = list(covs)
    if low:
        lifted = model.cov(m_frames, start_frame, [(beta[k, 0], pooled * dt) for k in range(3)])
        for k in low:
            covs_dir[k] = lifted[k]
    var = np.empty(3)
    chi2_xyz = np.empty(3)
    for k in range(3):
        var[k] = _ols_cov(tau_s, covs_dir[k])[1, 1]
        chi2_xyz[k] = _gen_chi2(tau_s, Y[sub, k], beta[k], covs_dir[k])
    # a direction whose fitted slope is ≤ 0 or nearly so (a few atoms, a short run) has no meaningful hop count:
    # the hop factor √(1 + a²/(2·slope·m)) would diverge, so the total takes that direction at the lifted slope
    # too (directions above a tenth of the mean keep their own, as in the measured coverage)
    covs = [covs_dir[k] if beta[k, 1] < 0.1 * pooled else covs[k] for k in range(3)]
    cov = covs[0] + covs[1] + covs[2]
    ytot = Y.sum(axis=1)
    btot = _ols(tau, ytot)
    var_tot = _ols_cov(tau_s, cov)[1, 1]
    chi2 = _gen_chi2(tau_s, ytot[sub], btot, cov)
    return beta, var, btot, var_tot, chi2


def _gen_chi2(x, y, beta, cov):
    """rᵀ Σ⁻¹ r / (K − 2) of the residuals r of the line ``beta`` (1 when it cannot be evaluated)."""
    r = y - (beta[0] + beta[1] * x)
    if len(r) <= 2:
        return 1.0
    scale = np.sqrt(np.clip(np.diag(cov), 1e-300, None))
    cs = cov / np.outer(scale, scale) + 1e-8 * np.eye(len(r))
    try:
        val = float((r / scale) @ np.linalg.solve(cs, r / scale)) / (len(r) - 2)
    except np.linalg.LinAlgError:
        return 1.0
    return val if np.isfinite(val) else 1.0


TIME_AXIS_HOT = 3.0
"""Warn when the kinetic temperature implied by the first lag exceeds this × the temperature (frames closer
in time than stated: the MSD over one frame cannot exceed ⟨v²⟩ dt² = 3 k_B T dt² / m)."""
TIME_AXIS_COLD = 1e-5
"""Warn when the implied kinetic temperature is below this × the temperature (frames much farther apart than
stated, or a frame interval given in the wrong unit; real dumps up to ~10 ps apart stay above it)."""
_KB_AMU_A2_PS2 = 1.380649e-23 / 1.66053906660e-27 * 1e-4  # k_B / amu in Å²/ps² per K


def time_axis_check(result, temperature=None):
    """Plausibility of the time axis from the MSD at the first lag (equipartition bound).

    By Cauchy–Schwarz the MSD over one frame interval dt is at most ⟨v²⟩ dt² = 3 k_B T dt² / m, so the
    "kinetic temperature" T₁ = m · MSD(dt) / (3 k_B dt²) lies below T, close to it for frames in the
    ballistic regime and below it (0.25 T for Li in Li6PS5Cl at 0.1 ps, ~10⁻³ T at 1 ps).  T₁ > 3 T means
    the stated dt is too small (e.g. the MD time step given instead of the frame interval); T₁ < 10⁻⁵ T
    means it is orders of magnitude too large (e.g. 100 typed for 100 fs = 0.1 ps: T₁ = 2.5·10⁻⁷ T).

    Returns
    -------
    dict or None
        ``implied_temperature_K``, ``ratio`` (T₁/T), ``ok`` and ``message``; None without a temperature,
        a known mass of the species, even frames or a non-zero first MSD point.
    """
    from ..elements import MASSES, normalize_symbol

    T_K = temperature if temperature is not None else result.temperature_K
    if (T_K is None or not (np.isfinite(T_K) and T_K > 0) or not result.dt_ps or len(result.lag) < 2
            or not result.msd[1] > 0):
        return None
    try:
        m = MASSES[normalize_symbol(result.species)]
    except (KeyError, ValueError, TypeError, OptionError):
        return None
    dt = float(result.dt_ps)
    t1 = m * float(result.msd[1]) / (3.0 * _KB_AMU_A2_PS2 * dt * dt)
    ratio = t1 / float(T_K)
    ok = TIME_AXIS_COLD <= ratio <= TIME_AXIS_HOT
    msg = None
    if ratio > TIME_AXIS_HOT:
        msg = (f"time axis implausible: the MSD over one frame ({result.msd[1]:.3g} Å² in {dt:g} ps) implies a "
               f"kinetic temperature of {t1:.3g} K for {result.species}, {ratio:.3g} × the {T_K:g} K given — frames "
               "are farther apart than stated; check --frame-interval / --timestep (ps)")
    elif ratio < TIME_AXIS_COLD:
        msg = (f"time axis implausible: the MSD over one frame ({result.msd[1]:.3g} Å² in {dt:g} ps) implies a "
               f"kinetic temperature of {t1:.3g} K for {result.species}, {ratio:.2g} × the {T_K:g} K given — "
               "frames are closer in time than stated (e.g. fs typed as ps); check --frame-interval / --timestep (ps)")
    return {"implied_temperature_K": float(t1), "ratio": float(ratio), "ok": bool(ok), "message": msg}


def fit_diffusion(result, *, fit=None, hop_distance=None, temperature=None, charge=None, max_lags=64,
                  warn=True, estimator="auto") -> DiffusionResult:
    """Fit D (total and per direction) with an honest error, and the conductivity (SPEC §2).

    Parameters
    ----------
    result : MSDResult
    fit : (float, float), optional, ps
        Fit window [start, end].  Default: the diffusive regime found inside [0.1, 0.5] × the longest lag
        (estimator ``auto``), or that window itself (the other estimators).  A window ending beyond the
        longest lag is an OptionError (no silent clipping).
    hop_distance : float, optional, Å
        a in the He et al. estimate; default ``result.hop_distance_A`` (median
        nearest-neighbour distance of the selection).
    temperature : float, optional, K
        Default ``result.temperature_K``; without one no conductivity is computed.
    charge : float, optional, e
        Default ``result.charge`` (formal ionic charge of the species).
    max_lags : int
        Most lags used by the GLS (spread evenly over the window).
    warn : bool
        Emit a FitWarning when the MSD is not diffusive in the window (its local slope has not converged).
    estimator : {"auto", "gls", "ols", "he"}
        ``auto`` (default): the window starts where the MSD's local slope has converged (diffusive regime,
        searched from the default start on), D by OLS there, standard error from the covariance of the
        observed MSD (Gaussian process with the MSD's own bend, independent atoms); when the regime is never
        reached the long-time slope is returned with an error that includes how much the slope is still
        changing.  ``gls``: the former default, GLS with the exact covariance of random walks + white noise
        on the window.  ``ols``: OLS on the window with the ``auto`` error, no regime search.  ``he``: OLS on
        the window with the He et al. (2018) error.

    Returns
    -------
    DiffusionResult
        ``diffusive_regime_reached`` and ``regime`` (window, reason, the local-slope test at each tried
        start) say whether the MSD is diffusive in the window used.

    Notes
    -----
    MSD(τ) = b0 + 2dDτ, d = 3 (total) or 1 (one direction).  The estimators are compared by measured
    coverage on caged-hopping replicas and real AIMD replicas in docs/diffusion.md.  He et al. 2018:
    σ_D/D ≈ 3.43/√N_eff + 0.04, N_eff = N_ions · max_τ MSD(τ)/a² (per direction with that direction's
    MSD).  D < 1e-8 cm²/s is reported as an upper bound (paper 000).

    References
    ----------
    SPEC §2; He et al., npj Comput. Mater. 4, 18 (2018); McCluskey et al.,
    kinisi (J. Chem. Theory Comput. 2024); Bullerjahn et al., J. Chem. Phys. 153, 024116 (2020).
    """
    if estimator not in ESTIMATORS:
        raise OptionError(f"invalid estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    lag = np.asarray(result.lag, dtype=np.float64)
    if len(lag) < 4:
        raise OptionError(f"fitting D needs at least 4 lags; the MSD has {len(lag)} (more frames needed)")
    lag_max = float(lag[-1])
    if fit is None:
        t0, t1 = default_fit_window(lag_max)
        is_default = True
    else:
        try:
            t0, t1 = (float(v) for v in fit)
        except (TypeError, ValueError) as err:
            raise OptionError(f"fit must be two times (start, end) in ps; got {fit!r}") from err
        if not (np.isfinite(t0) and np.isfinite(t1) and 0 <= t0 < t1):
            raise OptionError(f"fit window must satisfy 0 <= start < end (ps); got {t0:g}, {t1:g}")
        if t0 >= lag_max:
            raise OptionError(f"fit window starts at {t0:g} ps, beyond the longest lag {lag_max:g} ps")
        if t1 > lag_max * (1 + 1e-9) + 1e-9:
            raise OptionError(f"fit window ends at {t1:g} ps, beyond the longest lag {lag_max:g} ps of this "
                              f"trajectory; give an end of at most {lag_max:g} ps (--fit START END)")
        is_default = False
    if max_lags < 3:
        raise OptionError(f"max_lags must be at least 3; got {max_lags}")
    N = result.n_atoms
    meta = {"fit_rule": (f"default window [{FIT_START_FRACTION}, {FIT_END_FRACTION}] × longest lag "
                         f"({lag_max:g} ps)") if is_default else "given by the user",
            "max_lags": int(max_lags), "estimator": estimator}
    a = hop_distance if hop_distance is not None else result.hop_distance_A
    if a is not None and not (np.isfinite(a) and a > 0):
        raise OptionError(f"hop_distance must be a positive distance in Å; got {a!r}")
    regime = None
    model = None
    if result.dt_ps and len(lag) >= 8:
        model = _CovModel(result.msd_xyz, result.n_frames, N, hop_distance=a)
        regime = _regime_search(result, lag, t0, t1, model, fixed=not (is_default and estimator == "auto"))
        if estimator == "auto" and is_default:
            t0 = regime["start_ps"]
            if regime["reached"] and t0 > default_fit_window(lag_max)[0] + 1e-12:
                meta["fit_rule"] += f"; start moved to {t0:.4g} ps where the local slope has converged"
            elif not regime["reached"]:
                meta["fit_rule"] += (f"; diffusive regime not reached: long-time window from {t0:.4g} ps, "
                                     "estimate flagged unreliable")
    sel = np.nonzero((lag >= t0 - 1e-9) & (lag <= t1 + 1e-9) & (lag > 0))[0]
    if len(sel) < 3:
        raise OptionError(f"the fit window {t0:g}–{t1:g} ps holds {len(sel)} lag(s); at least 3 are needed "
                          f"(lag spacing {lag[1] - lag[0]:g} ps, longest lag {lag_max:g} ps)")
    n_used = int(min(len(sel), max_lags))
    sel_g = _spread(sel, max_lags)
    tau = lag[sel_g]
    Y = np.asarray(result.msd_xyz, dtype=np.float64)[sel_g]
    se_xyz = se_slope = stat_se = None
    systematic = 0.0
    if result.dt_ps and estimator == "gls":
        dt = float(result.dt_ps)
        m_frames = np.round(tau / dt).astype(np.int64)
        beta, var, btot, var_tot, chi2_xyz, chi2_tot = _fit_components(m_frames, tau, Y, result.n_frames, dt, N)
        method = ("GLS with the exact covariance of the all-origin MSD of Gaussian random walks with white "
                  "vibrational noise (independent atoms; plug-in parameters, 2 iterations; variance × max(1, χ²/dof))")
        meta["reduced_chi2"] = float(chi2_tot)
        meta["reduced_chi2_xyz"] = [float(c) for c in chi2_xyz]
        slope_xyz = beta[:, 1]
        se_xyz = np.sqrt(np.clip(var, 0, None))
        slope, se_slope, intercept = btot[1], math.sqrt(max(var_tot, 0.0)), btot[0]
    elif result.dt_ps and model is not None and estimator in ("auto", "ols"):
        dt = float(result.dt_ps)
        beta, var, btot, var_tot, chi2 = _fit_auto(result, lag, sel_g, model, int(round(t0 / dt)))
        slope_xyz = beta[:, 1]
        slope, intercept = btot[1], btot[0]
        var = np.clip(var, 0, None)
        var_tot = max(var_tot, 0.0)
        stat_se = math.sqrt(var_tot) / 6.0
        if estimator == "auto" and regime is not None and not regime["reached"] and regime["tried"]:
            # how far the local slope fell over the searched range: the fall still to come is unknown and may
            # be as large, so it enters the error in full
            first, last = regime["tried"][0], regime["tried"][-1]
            systematic = max(0.0, first["slope_first_half_A2_ps"] - last["slope_second_half_A2_ps"])
            var_tot += systematic ** 2
            var = var + (systematic / 3.0) ** 2
        se_xyz, se_slope = np.sqrt(var), math.sqrt(var_tot)
        meta["generalised_reduced_chi2"] = chi2
        meta["covariance_lags"] = int(min(len(sel_g), COV_MAX_LAGS))
        method = ("OLS in the diffusive regime (window start where the local slope has converged); error from the "
                  "covariance of the observed MSD (Gaussian process with the MSD's own bend, independent atoms, "
                  "sandwich)" if estimator == "auto" else
                  "OLS on the window; error from the covariance of the observed MSD (Gaussian process with the "
                  "MSD's own bend, independent atoms, sandwich)")
        if systematic:
            method += ("; diffusive regime not reached: the error adds the fall of the local slope over the searched "
                       "starts")
    else:
        beta = np.array([_ols(tau, Y[:, k]) for k in range(3)])
        btot = _ols(tau, Y.sum(axis=1))
        slope_xyz = beta[:, 1]
        slope, intercept = btot[1], btot[0]
        method = ("OLS on the window; standard error from He et al. 2018" if result.dt_ps else
                  "OLS on uneven frame times; standard error from He et al. 2018 (no covariance model for "
                  "uneven sampling)")
    D = slope / 6.0
    D_xyz = slope_xyz / 2.0
    # He et al.
    he = he_xyz = n_eff = None
    if a is not None:
        he, n_eff = he_relative_error(N, float(np.max(result.msd)), a)
        he_xyz = np.array([he_relative_error(N, float(np.max(result.msd_xyz[:, k])), a)[0] for k in range(3)])
        meta["he_hop_distance_A"] = float(a)
    if se_slope is None:
        if he is None:
            D_se, D_xyz_se = float("nan"), np.full(3, np.nan)
        else:
            D_se, D_xyz_se = abs(D) * he, np.abs(D_xyz) * he_xyz
    else:
        D_se, D_xyz_se = se_slope / 6.0, se_xyz / 2.0
    if stat_se is None:
        stat_se = D_se
    thr = D_THRESHOLD_CM2_S / A2_PS_TO_CM2_S
    below = bool(D < thr)
    below_xyz = D_xyz < thr
    D_out = thr if below else float(D)
    D_se_out = 0.0 if below else float(D_se)
    D_xyz_out = np.where(below_xyz, thr, D_xyz)
    D_xyz_se_out = np.where(below_xyz, 0.0, D_xyz_se)
    ll = _loglog_slope(tau, Y.sum(axis=1))
    reached = None if regime is None else bool(regime["reached"])
    if regime is not None:
        regime = dict(regime, start_ps=float(t0), end_ps=float(t1))
        used = [t for t in regime["tried"] if abs(t["start_ps"] - regime["start_ps"]) < 1e-9] or regime["tried"][-1:]
        if reached and used:
            u = used[0]
            s1, s2, z = u["slope_first_half_A2_ps"], u["slope_second_half_A2_ps"], u["z"]
            if z <= -3.0 or (z < -CONVERGENCE_Z and s1 > 0 and s2 > 1.5 * s1):
                # the slope rises across the window: ballistic or super-diffusive, not diffusive either
                reached = False
                regime["reached"] = False
                regime["reason"] = (f"local slope rising across the window: first-half slope {s1:.4g} vs "
                                    f"second-half {s2:.4g} Å²/ps ({z:.2f} σ): ballistic/vibrational or "
                                    "super-diffusive motion")
        regime["systematic_slope_A2_ps"] = float(systematic)
    if warn and not below:
        if reached is False:
            warnings.warn(f"MSD of {result.species} is not diffusive in the fit window {t0:g}–{t1:g} ps: "
                          f"{regime['reason']}; log–log slope {ll:.2f}. D is a long-time estimate with a wide "
                          "error; use a longer trajectory or move the window (--fit START END)",
                          FitWarning, stacklevel=2)
        elif reached is None and not (LOGLOG_RANGE[0] <= ll <= LOGLOG_RANGE[1]):
            warnings.warn(f"MSD of {result.species} is not diffusive in the fit window {t0:g}–{t1:g} ps: log–log "
                          f"slope {ll:.2f} (1 = diffusive; "
                          f"{'ballistic/vibrational regime' if ll > 1 else 'sub-diffusive/caged'}). "
                          "D may be unreliable; use a longer trajectory or move the window (--fit START END)",
                          FitWarning, stacklevel=2)
    tcheck = time_axis_check(result, temperature)
    if tcheck is not None:
        meta["time_axis_check"] = tcheck
        if warn and not tcheck["ok"]:
            warnings.warn(tcheck["message"], FitWarning, stacklevel=2)
    # conductivity
    T_K = temperature if temperature is not None else result.temperature_K
    q = charge if charge is not None else result.charge
    cond = None
    if T_K is not None:
        if not (np.isfinite(T_K) and T_K > 0):
            raise OptionError(f"temperature must be positive (K); got {T_K!r}")
        if q is None:
            raise OptionError(f"no tabulated ionic charge for {result.species!r}; give charge= / --charge")
        cond = conductivity(D_out, n_ions=N, charge=q, volume_A3=result.volume_A3, temperature_K=T_K,
                            D_stderr_A2_ps=D_se_out)
        if result.charge_msd is not None:
            cond = _with_collective(cond, result, sel_g, tau, D_out, D_se_out, T_K,
                                    gls=estimator == "gls", start=t0)
    return DiffusionResult(
        species=result.species, n_ions=N, D_A2_ps=D_out, D_stderr_A2_ps=D_se_out, D_xyz_A2_ps=D_xyz_out,
        D_xyz_stderr_A2_ps=D_xyz_se_out, below_threshold=below, below_threshold_xyz=below_xyz,
        intercept_A2=float(intercept), fit_window_ps=(float(t0), float(t1)), fit_window_default=is_default,
        n_fit_lags=n_used, loglog_slope=ll, he_relative_error=he, he_relative_error_xyz=he_xyz,
        he_n_eff=n_eff, method=method, temperature_K=None if T_K is None else float(T_K), conductivity=cond,
        meta=meta, estimator=estimator, diffusive_regime_reached=reached, regime=regime,
        D_stat_stderr_A2_ps=None if stat_se is None or below else float(stat_se))


def _with_collective(cond, result, sel, tau, D, D_se, T_K, gls=True, start=None):
    """Add the collective σ (MSD of Σ q Δr) and the Haven ratio to ``cond``."""
    Y = np.asarray(result.charge_msd_xyz)[sel]
    if result.dt_ps and gls:
        dt = float(result.dt_ps)
        m_frames = np.round(tau / dt).astype(np.int64)
        _, _, btot, var_tot, _, _ = _fit_components(m_frames, tau, Y, result.n_frames, dt, 1)
        se = math.sqrt(max(var_tot, 0.0)) / 6.0
        how = "GLS, one series (the charge displacement)"
    elif result.dt_ps:
        dt = float(result.dt_ps)
        lag = np.asarray(result.lag, dtype=np.float64)
        model = _CovModel(result.charge_msd_xyz, result.n_frames, 1)
        tau_s = tau[_spread(np.arange(len(tau)), COV_MAX_LAGS)]
        sub = np.searchsorted(lag, tau_s - 1e-12)
        Ys = np.asarray(result.charge_msd_xyz)[sub]
        lines = []
        for k in range(3):
            b = _ols(tau_s, Ys[:, k])
            lines.append((b[0], b[1] * dt))
        covs = model.cov(np.round(tau_s / dt).astype(np.int64), int(round((start or tau[0]) / dt)), lines)
        btot = _ols(tau_s, Ys.sum(axis=1))
        se = math.sqrt(max(_ols_cov(tau_s, covs[0] + covs[1] + covs[2])[1, 1], 0.0)) / 6.0
        how = "OLS, one series (the charge displacement); error from the covariance of its observed MSD"
    else:
        btot = _ols(tau, Y.sum(axis=1))
        se = float("nan")
        how = "OLS (uneven frames; no standard error)"
    Dq = btot[1] / 6.0  # e² Å²/ps
    V = result.volume_A3
    s = nernst_einstein_S_cm(1, 1.0, Dq, V, T_K)
    s_se = nernst_einstein_S_cm(1, 1.0, se, V, T_K)
    hr = hr_se = None
    if s > 0 and not cond.below_threshold:
        hr = cond.sigma_S_cm / s
        hr_se = hr * math.sqrt((cond.sigma_stderr_S_cm / cond.sigma_S_cm) ** 2 + (s_se / s) ** 2)
    meta = dict(cond.meta)
    meta["collective"] = ("σ = (1/(6 V k_B T)) d/dτ ⟨|Σ_j q_j Δr_j(τ)|²⟩ over every charged atom; " + how)
    return Conductivity(sigma_S_cm=cond.sigma_S_cm, sigma_stderr_S_cm=cond.sigma_stderr_S_cm,
                        below_threshold=cond.below_threshold, charge=cond.charge, n_ions=cond.n_ions,
                        volume_A3=cond.volume_A3, temperature_K=cond.temperature_K, sigma_collective_S_cm=float(s),
                        sigma_collective_stderr_S_cm=float(s_se), haven_ratio=hr, haven_ratio_stderr=hr_se, meta=meta)


def report_dict(msd_result, diffusion_result=None) -> dict:
    """The msd JSON: MSD fields, ``diffusion`` and ``conductivity`` blocks (key names fixed for report helpers)."""
    d = msd_result.to_dict()
    if diffusion_result is None:
        d["diffusion"] = None
        d["conductivity"] = None
        return d
    dd = diffusion_result.to_dict()
    d["conductivity"] = dd.pop("conductivity")
    d["diffusion"] = dd
    return d
