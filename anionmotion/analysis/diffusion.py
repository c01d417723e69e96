"""Diffusion coefficients, their uncertainty, and conductivities from an MSD (SPEC §2).

``fit_diffusion(msd_result)`` fits MSD(τ) = b0 + 2·d·D·τ on a lag window and
returns a :class:`DiffusionResult` with D (total and per direction), its
standard error, the He et al. (2018) empirical estimate for comparison, the
Nernst–Einstein tracer conductivity and, when the MSD result carries the
charge-displacement MSD, the collective conductivity and the Haven ratio.

Estimator
---------
Generalised least squares (GLS) with the covariance matrix of the MSD
estimator, as kinisi does, but with the covariance computed exactly for a
model series X(t) = W(t) + ε(t): a Gaussian random walk W (step variance s²
per frame and direction) plus white vibrational noise ε (variance e²).  For
each direction, Isserlis' theorem gives

    Cov(M_m, M_n) = 2 / ((T−m)(T−n)) Σ_t Σ_u c(t, m; u, n)²,

where c is the covariance of the displacements X(t+m) − X(t) and X(u+n) −
X(u) (s² × overlap of the two intervals, ± e² where end points coincide),
divided by the number of atoms (atoms taken as independent).  The
parameters s² = slope·dt and e² = intercept/2 come from an ordinary least
squares fit and are refined by two GLS iterations (plug-in).  The GLS uses at
most ``max_lags`` lags spread evenly over the window: neighbouring lags are
almost perfectly correlated, so this loses little information and keeps the
covariance small.  The standard error is √[(XᵀΣ⁻¹X)⁻¹]₁₁ / (2d).
For frames at uneven times there is no such model; the fit is then ordinary
least squares and the uncertainty is the He et al. estimate only.
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
           "D_THRESHOLD_CM2_S", "FIT_START_FRACTION", "FIT_END_FRACTION", "he_relative_error", "report_dict"]

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
            "below_threshold": self.below_threshold, "below_threshold_xyz": self.below_threshold_xyz,
            "bound": "upper" if self.below_threshold else None, "threshold_cm2_s": D_THRESHOLD_CM2_S,
            "intercept_A2": self.intercept_A2,
            "fit_window_ps": list(self.fit_window_ps), "fit_window_default": self.fit_window_default,
            "n_fit_lags": self.n_fit_lags, "loglog_slope": self.loglog_slope,
            "method": self.method,
            "he_relative_error": he, "he_relative_error_xyz": self.he_relative_error_xyz, "he_n_eff": self.he_n_eff,
            "D_he_stderr_cm2_s": None if he is None or self.below_threshold else self.D_A2_ps * c * he,
            "temperature_K": self.temperature_K,
            "conductivity": None if self.conductivity is None else self.conductivity.to_dict(),
            "meta": self.meta,
        })

    def summary(self) -> str:
        c = A2_PS_TO_CM2_S
        w = self.fit_window_ps
        lines = [f"fit window   {w[0]:.4g} … {w[1]:.4g} ps ({'default: 0.1–0.5 of the longest lag' if self.fit_window_default else 'given'}), "
                 f"{self.n_fit_lags} lags, log–log slope {self.loglog_slope:.3f}",
                 f"method       {self.method}"]
        if self.below_threshold:
            lines.append(f"D            < {D_THRESHOLD_CM2_S:.0e} cm²/s (below the measurable threshold)")
        else:
            lines.append(f"D            {self.D_A2_ps * c:.4e} ± {self.D_stderr_A2_ps * c:.2e} cm²/s"
                         + (f"   (He et al. ± {self.he_relative_error * self.D_A2_ps * c:.2e})"
                            if self.he_relative_error is not None else ""))
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


def fit_diffusion(result, *, fit=None, hop_distance=None, temperature=None, charge=None, max_lags=64,
                  warn=True) -> DiffusionResult:
    """Fit D (total and per direction) with an honest error, and the conductivity (SPEC §2).

    Parameters
    ----------
    result : MSDResult
    fit : (float, float), optional, ps
        Fit window [start, end]; default [0.1, 0.5] × the longest lag.
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
        Emit a FitWarning when the log–log slope in the window is outside
        [0.7, 1.3] (not diffusive yet, or a sub-diffusive plateau).

    Returns
    -------
    DiffusionResult

    Notes
    -----
    MSD(τ) = b0 + 2dDτ, d = 3 (total) or 1 (one direction).  GLS with the
    exact covariance of the MSD of a random walk with white vibrational noise
    (module docstring); the standard error covers the truth at its stated rate
    for Brownian motion (tested over 100 seeds).  He et al. 2018:
    σ_D/D ≈ 3.43/√N_eff + 0.04, N_eff = N_ions · max_τ MSD(τ)/a² (per
    direction with that direction's MSD).  D < 1e-8 cm²/s is reported as an
    upper bound (paper 000).

    References
    ----------
    SPEC §2; He et al., npj Comput. Mater. 4, 18 (2018); McCluskey et al.,
    kinisi (J. Chem. Theory Comput. 2024); Bullerjahn et al., J. Chem. Phys. 153, 024116 (2020).
    """
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
        is_default = False
    sel = np.nonzero((lag >= t0 - 1e-9) & (lag <= t1 + 1e-9) & (lag > 0))[0]
    if len(sel) < 3:
        raise OptionError(f"the fit window {t0:g}–{t1:g} ps holds {len(sel)} lag(s); at least 3 are needed "
                          f"(lag spacing {lag[1] - lag[0]:g} ps, longest lag {lag_max:g} ps)")
    if max_lags < 3:
        raise OptionError(f"max_lags must be at least 3; got {max_lags}")
    if len(sel) > max_lags:
        sel = sel[np.unique(np.round(np.linspace(0, len(sel) - 1, max_lags)).astype(int))]
    tau = lag[sel]
    Y = np.asarray(result.msd_xyz, dtype=np.float64)[sel]
    N = result.n_atoms
    meta = {"fit_rule": (f"default window [{FIT_START_FRACTION}, {FIT_END_FRACTION}] × longest lag "
                         f"({lag_max:g} ps)") if is_default else "given by the user",
            "max_lags": int(max_lags)}
    if result.dt_ps:
        dt = float(result.dt_ps)
        m_frames = np.round(tau / dt).astype(np.int64)
        beta, var, btot, var_tot, chi2_xyz, chi2_tot = _fit_components(m_frames, tau, Y, result.n_frames, dt, N)
        method = ("GLS with the exact covariance of the all-origin MSD of Gaussian random walks with white "
                  "vibrational noise (independent atoms; plug-in parameters, 2 iterations; variance × max(1, χ²/dof))")
        meta["reduced_chi2"] = float(chi2_tot)
        meta["reduced_chi2_xyz"] = [float(c) for c in chi2_xyz]
        slope_xyz, intercept_xyz = beta[:, 1], beta[:, 0]
        se_xyz = np.sqrt(np.clip(var, 0, None))
        slope, se_slope, intercept = btot[1], math.sqrt(max(var_tot, 0.0)), btot[0]
    else:
        beta = np.array([_ols(tau, Y[:, k]) for k in range(3)])
        btot = _ols(tau, Y.sum(axis=1))
        slope_xyz, intercept_xyz = beta[:, 1], beta[:, 0]
        slope, intercept = btot[1], btot[0]
        se_xyz = se_slope = None
        method = ("OLS on uneven frame times; standard error from He et al. 2018 (no covariance model for "
                  "uneven sampling)")
    D = slope / 6.0
    D_xyz = slope_xyz / 2.0
    # He et al.
    a = hop_distance if hop_distance is not None else result.hop_distance_A
    he = he_xyz = n_eff = None
    if a is not None:
        if not (np.isfinite(a) and a > 0):
            raise OptionError(f"hop_distance must be a positive distance in Å; got {a!r}")
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
    thr = D_THRESHOLD_CM2_S / A2_PS_TO_CM2_S
    below = bool(D < thr)
    below_xyz = D_xyz < thr
    D_out = thr if below else float(D)
    D_se_out = 0.0 if below else float(D_se)
    D_xyz_out = np.where(below_xyz, thr, D_xyz)
    D_xyz_se_out = np.where(below_xyz, 0.0, D_xyz_se)
    ll = _loglog_slope(tau, Y.sum(axis=1))
    if warn and not below and not (LOGLOG_RANGE[0] <= ll <= LOGLOG_RANGE[1]):
        warnings.warn(f"MSD of {result.species} is not diffusive in the fit window {t0:g}–{t1:g} ps: log–log slope "
                      f"{ll:.2f} (1 = diffusive; {'ballistic/vibrational regime' if ll > 1 else 'sub-diffusive/caged'}). "
                      "D may be unreliable; use a longer trajectory or move the window (--fit START END)",
                      FitWarning, stacklevel=2)
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
            cond = _with_collective(cond, result, sel, tau, D_out, D_se_out, T_K)
    return DiffusionResult(
        species=result.species, n_ions=N, D_A2_ps=D_out, D_stderr_A2_ps=D_se_out, D_xyz_A2_ps=D_xyz_out,
        D_xyz_stderr_A2_ps=D_xyz_se_out, below_threshold=below, below_threshold_xyz=below_xyz,
        intercept_A2=float(intercept), fit_window_ps=(float(t0), float(t1)), fit_window_default=is_default,
        n_fit_lags=int(len(sel)), loglog_slope=ll, he_relative_error=he, he_relative_error_xyz=he_xyz,
        he_n_eff=n_eff, method=method, temperature_K=None if T_K is None else float(T_K), conductivity=cond,
        meta=meta)


def _with_collective(cond, result, sel, tau, D, D_se, T_K):
    """Add the collective σ (MSD of Σ q Δr) and the Haven ratio to ``cond``."""
    Y = np.asarray(result.charge_msd_xyz)[sel]
    if result.dt_ps:
        dt = float(result.dt_ps)
        m_frames = np.round(tau / dt).astype(np.int64)
        _, _, btot, var_tot, _, _ = _fit_components(m_frames, tau, Y, result.n_frames, dt, 1)
        se = math.sqrt(max(var_tot, 0.0)) / 6.0
        how = "GLS, one series (the charge displacement)"
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
