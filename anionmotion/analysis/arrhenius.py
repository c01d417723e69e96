"""Arrhenius fit of diffusion coefficients over temperatures (SPEC §2).

ln D = ln D0 − Ea / (k_B T), fitted by weighted least squares in ln D with
weights 1/σ²(ln D), σ(ln D) = σ_D / D.  The parameter covariance is scaled by
the reduced χ² when that exceeds 1 (the scatter between temperatures is then
larger than the stated errors explain), so the quoted errors are never smaller
than the scatter supports.  Extrapolation to ``at`` (default 300 K) propagates
the full covariance: σ²(ln D_at) = xᵀ C x with x = (1, −1/(k_B T_at)).

The σ_D are the ones ``fit_diffusion`` states (default estimator ``auto``: errors that match the scatter of
replicas; for a point whose MSD never reached its diffusive regime, the total error including the change of
the local slope).  Such points stay in the fit with that wide error, are listed in ``meta["not_diffusive"]``
and are named in the summary.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import OptionError
from ..results import Result, to_jsonable
from ..units import KB_EV, nernst_einstein_S_cm

__all__ = ["arrhenius", "ArrheniusResult", "load_points"]


@dataclass(frozen=True, repr=False)
class ArrheniusResult(Result):
    """Activation energy and extrapolation (SPEC §2).

    Attributes
    ----------
    Ea_eV, Ea_stderr_eV : float, eV
    D0_cm2_s : float, cm²/s
        Prefactor; ``lnD0_stderr`` is the standard error of ln D0.
    lnD0_stderr : float
    at_K : float, K
        Extrapolation temperature.
    D_at_cm2_s, D_at_stderr_cm2_s : float, cm²/s
        Extrapolated D and its standard error (from σ(ln D_at) · D_at).
    D_at_range_cm2_s : tuple, cm²/s
        D_at · exp(∓σ(ln D_at)): the 1σ interval, asymmetric in D.
    sigma_at_mS_cm, sigma_at_stderr_mS_cm : float or None, mS/cm
        Nernst–Einstein σ at ``at_K`` (None without ion count, charge and volume).
    temperatures_K : ndarray, shape (n,), K
        Points used in the fit.
    D_cm2_s, D_stderr_cm2_s : ndarray, shape (n,), cm²/s
    excluded : list of dict
        Points left out (below the measurable threshold: bounds, not values).
    reduced_chi2 : float or None
    meta : dict
    """

    Ea_eV: float
    Ea_stderr_eV: float
    D0_cm2_s: float
    lnD0_stderr: float
    at_K: float
    D_at_cm2_s: float
    D_at_stderr_cm2_s: float
    D_at_range_cm2_s: tuple
    sigma_at_mS_cm: Optional[float]
    sigma_at_stderr_mS_cm: Optional[float]
    temperatures_K: np.ndarray
    D_cm2_s: np.ndarray
    D_stderr_cm2_s: np.ndarray
    excluded: list
    reduced_chi2: Optional[float]
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return to_jsonable({
            "Ea_eV": self.Ea_eV, "Ea_stderr_eV": self.Ea_stderr_eV,
            "D0_cm2_s": self.D0_cm2_s, "lnD0_stderr": self.lnD0_stderr,
            "at_K": self.at_K, "D_at_cm2_s": self.D_at_cm2_s, "D_at_stderr_cm2_s": self.D_at_stderr_cm2_s,
            "D_at_range_cm2_s": list(self.D_at_range_cm2_s),
            "sigma_at_mS_cm": self.sigma_at_mS_cm, "sigma_at_stderr_mS_cm": self.sigma_at_stderr_mS_cm,
            "temperatures_K": self.temperatures_K, "D_cm2_s": self.D_cm2_s, "D_stderr_cm2_s": self.D_stderr_cm2_s,
            "excluded": self.excluded, "reduced_chi2": self.reduced_chi2, "meta": self.meta,
        })

    def summary(self) -> str:
        lines = [f"points       {len(self.temperatures_K)} ("
                 + ", ".join(f"{t:g} K" for t in self.temperatures_K) + ")",
                 f"Ea           {self.Ea_eV:.4f} ± {self.Ea_stderr_eV:.4f} eV",
                 f"D0           {self.D0_cm2_s:.4e} cm²/s (ln D0 ± {self.lnD0_stderr:.3f})",
                 f"D({self.at_K:g} K)   {self.D_at_cm2_s:.4e} ± {self.D_at_stderr_cm2_s:.2e} cm²/s "
                 f"(1σ range {self.D_at_range_cm2_s[0]:.3e} … {self.D_at_range_cm2_s[1]:.3e})"]
        if self.sigma_at_mS_cm is not None:
            lines.append(f"σ({self.at_K:g} K)   {self.sigma_at_mS_cm:.4g} ± {self.sigma_at_stderr_mS_cm:.2g} mS/cm")
        if self.reduced_chi2 is not None:
            lines.append(f"χ²/dof       {self.reduced_chi2:.3g}" + (" (errors scaled by √χ²/dof)"
                                                                  if self.meta.get("scaled") else ""))
        for e in self.excluded:
            lines.append(f"excluded     {e['temperature_K']:g} K: {e['reason']}")
        for src in self.meta.get("not_diffusive", []):
            lines.append(f"WARNING      {src}: diffusive regime not reached (D is a long-time estimate with a wide error)")
        return "\n".join(lines)

    def __repr__(self):
        return (f"ArrheniusResult(Ea_eV={self.Ea_eV:.4g}, Ea_stderr_eV={self.Ea_stderr_eV:.2g}, at_K={self.at_K:g}, "
                f"D_at_cm2_s={self.D_at_cm2_s:.4g})")


def load_points(results):
    """Normalise inputs (msd JSON paths, msd JSON dicts, or DiffusionResult objects) to point dicts."""
    from .diffusion import DiffusionResult

    points = []
    for r in results:
        src = r
        if isinstance(r, (str, os.PathLike)):
            path = os.fspath(r)
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path}: no such file")
            try:
                with open(path, encoding="utf-8") as fh:
                    r = json.load(fh)
            except ValueError as err:        # invalid JSON, or not text at all (UnicodeDecodeError)
                raise OptionError(f"{path}: not a JSON file written by 'anionmotion msd --json' ({err})") from err
            src = path
        if isinstance(r, DiffusionResult):
            c = r.conductivity
            points.append({"source": repr(r), "temperature_K": r.temperature_K, "D_cm2_s": r.D_cm2_s,
                           "D_stderr_cm2_s": r.D_stderr_cm2_s, "below_threshold": r.below_threshold,
                           "diffusive_regime_reached": getattr(r, "diffusive_regime_reached", None),
                           "n_ions": r.n_ions, "charge": None if c is None else c.charge,
                           "volume_A3": None if c is None else c.volume_A3})
            continue
        if not isinstance(r, dict) or "diffusion" not in r:
            raise OptionError(f"{src}: expected an msd result (JSON from 'anionmotion msd --json' with a 'diffusion' "
                              "block) or a DiffusionResult")
        d = r["diffusion"] or {}
        c = r.get("conductivity") or {}
        if d.get("D_cm2_s") is None:
            raise OptionError(f"{src}: the diffusion block has no D_cm2_s")
        points.append({"source": str(src), "temperature_K": r.get("temperature_K", d.get("temperature_K")),
                       "D_cm2_s": d["D_cm2_s"], "D_stderr_cm2_s": d.get("D_stderr_cm2_s"),
                       "below_threshold": bool(d.get("below_threshold", False)), "n_ions": r.get("n_atoms"),
                       "diffusive_regime_reached": d.get("diffusive_regime_reached"),
                       "charge": c.get("charge", r.get("charge")), "volume_A3": c.get("volume_A3", r.get("volume_A3"))})
    return points


def arrhenius(results=None, *, temperatures=None, D_cm2_s=None, D_stderr_cm2_s=None, at=300.0, n_ions=None,
              charge=None, volume_A3=None) -> ArrheniusResult:
    """Fit ln D = ln D0 − Ea/(k_B T) over temperatures and extrapolate (SPEC §2).

    Parameters
    ----------
    results : sequence, optional
        msd JSON files (``anionmotion msd --json``), their dicts, or
        :class:`DiffusionResult` objects, each with its temperature.
    temperatures, D_cm2_s, D_stderr_cm2_s : array_like, optional
        Or the points directly (K, cm²/s, cm²/s).
    at : float, K
        Extrapolation temperature (default 300 K).
    n_ions, charge, volume_A3 : optional
        For σ at ``at`` (Nernst–Einstein); default: taken from the results
        when they all agree (volume: mean over the results).

    Returns
    -------
    ArrheniusResult

    Notes
    -----
    Weighted least squares of y = ln D on x = −1/(k_B T) with σ(y) = σ_D/D;
    covariance (XᵀWX)⁻¹ scaled by max(1, χ²/dof).  Points whose D is below the
    measurable threshold are bounds and are excluded (listed in ``excluded``).
    D_at = exp(ln D0 − Ea/(k_B T_at)), σ(D_at) = D_at · σ(ln D_at).

    References
    ----------
    SPEC §2; paper 003 Fig. 3e.
    """
    if results is not None:
        if temperatures is not None or D_cm2_s is not None:
            raise OptionError("give either results or temperatures/D_cm2_s, not both")
        points = load_points(results)
    else:
        if temperatures is None or D_cm2_s is None:
            raise OptionError("arrhenius needs results, or temperatures and D_cm2_s")
        T = np.atleast_1d(np.asarray(temperatures, dtype=np.float64))
        D = np.atleast_1d(np.asarray(D_cm2_s, dtype=np.float64))
        E = (np.full_like(D, np.nan) if D_stderr_cm2_s is None
             else np.atleast_1d(np.asarray(D_stderr_cm2_s, dtype=np.float64)))
        if not (T.shape == D.shape == E.shape):
            raise OptionError(f"temperatures, D_cm2_s and D_stderr_cm2_s must have the same length; got "
                              f"{T.shape[0]}, {D.shape[0]}, {E.shape[0]}")
        points = [{"source": f"point {i}", "temperature_K": t, "D_cm2_s": d, "D_stderr_cm2_s": e,
                   "below_threshold": False, "n_ions": n_ions, "charge": charge, "volume_A3": volume_A3}
                  for i, (t, d, e) in enumerate(zip(T, D, E))]
    if not (np.isfinite(at) and at > 0):
        raise OptionError(f"at must be a positive temperature (K); got {at!r}")
    used, excluded = [], []
    for p in points:
        t = p["temperature_K"]
        if t is None or not (np.isfinite(t) and t > 0):
            raise OptionError(f"{p['source']}: no temperature (run 'anionmotion msd' with --temperature)")
        if p["below_threshold"]:
            excluded.append({"source": p["source"], "temperature_K": float(t),
                             "reason": "D below the measurable threshold (a bound, not a value)"})
            continue
        if not p["D_cm2_s"] > 0:
            raise OptionError(f"{p['source']}: D must be positive for an Arrhenius fit; got {p['D_cm2_s']!r}")
        used.append(p)
    if len(used) < 2:
        raise OptionError(f"an Arrhenius fit needs at least 2 temperatures with a measurable D; got {len(used)}")
    T = np.array([p["temperature_K"] for p in used], dtype=np.float64)
    if len(np.unique(T)) < 2:
        raise OptionError("an Arrhenius fit needs at least 2 different temperatures")
    D = np.array([p["D_cm2_s"] for p in used], dtype=np.float64)
    E = np.array([np.nan if p["D_stderr_cm2_s"] is None else p["D_stderr_cm2_s"] for p in used], dtype=np.float64)
    y = np.log(D)
    x = -1.0 / (KB_EV * T)
    X = np.column_stack([np.ones_like(x), x])
    meta = {"model": "ln D = ln D0 − Ea/(k_B T)", "kB_eV_K": KB_EV,
            "not_diffusive": [f"{p['source']} ({p['temperature_K']:g} K)" for p in used
                              if p.get("diffusive_regime_reached") is False]}
    if np.all(np.isfinite(E) & (E > 0)):
        sy = E / D
        w = 1.0 / sy ** 2
        meta["weights"] = "1/σ²(ln D), σ(ln D) = σ_D/D"
    else:
        w = np.ones_like(y)
        meta["weights"] = "equal (some points have no standard error); covariance from the residual scatter"
    A = X.T @ (X * w[:, None])
    C = np.linalg.inv(A)
    beta = C @ (X.T @ (w * y))
    resid = y - X @ beta
    dof = len(y) - 2
    chi2 = float(np.sum(w * resid ** 2))
    red = chi2 / dof if dof > 0 else None
    scaled = False
    if meta["weights"].startswith("equal"):
        if dof > 0:
            C = C * red
            scaled = True
        else:
            C = C * np.nan
    elif red is not None and red > 1:
        C = C * red
        scaled = True
    meta["scaled"] = scaled
    meta["dof"] = dof
    lnD0, Ea = beta
    xa = np.array([1.0, -1.0 / (KB_EV * at)])
    ln_at = float(xa @ beta)
    s_ln_at = float(math.sqrt(max(xa @ C @ xa, 0.0))) if np.all(np.isfinite(C)) else float("nan")
    D_at = math.exp(ln_at)
    # σ at `at`
    ns = {p["n_ions"] for p in used if p["n_ions"] is not None}
    qs = {p["charge"] for p in used if p["charge"] is not None}
    vols = [p["volume_A3"] for p in used if p["volume_A3"] is not None]
    nn = n_ions if n_ions is not None else (ns.pop() if len(ns) == 1 else None)
    qq = charge if charge is not None else (qs.pop() if len(qs) == 1 else None)
    vv = volume_A3 if volume_A3 is not None else (float(np.mean(vols)) if len(vols) == len(used) else None)
    sig = sig_se = None
    if nn is not None and qq is not None and vv is not None:
        sig = nernst_einstein_S_cm(int(nn), float(qq), D_at * 1e4, float(vv), float(at)) * 1e3
        sig_se = sig * s_ln_at
        meta["sigma_inputs"] = {"n_ions": int(nn), "charge": float(qq), "volume_A3": float(vv)}
    else:
        meta["sigma_inputs"] = "not available (ion count, charge and volume must agree across the results)"
    return ArrheniusResult(
        Ea_eV=float(Ea), Ea_stderr_eV=float(math.sqrt(C[1, 1])) if np.isfinite(C[1, 1]) else float("nan"),
        D0_cm2_s=float(math.exp(lnD0)), lnD0_stderr=float(math.sqrt(C[0, 0])) if np.isfinite(C[0, 0]) else float("nan"),
        at_K=float(at), D_at_cm2_s=D_at, D_at_stderr_cm2_s=D_at * s_ln_at,
        D_at_range_cm2_s=(D_at * math.exp(-s_ln_at), D_at * math.exp(s_ln_at)) if np.isfinite(s_ln_at)
        else (float("nan"), float("nan")),
        sigma_at_mS_cm=sig, sigma_at_stderr_mS_cm=sig_se, temperatures_K=T, D_cm2_s=D, D_stderr_cm2_s=E,
        excluded=excluded, reduced_chi2=red, meta=meta)
