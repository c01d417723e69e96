"""The science of a constrained-MD series (SPEC §8): mode decomposition of σ and the Arrhenius curvature test.

Used by :func:`anionmotion.compare` (``anionmotion compare``), which gathers the
results of a UC/RC/RTC/RTVC series; these functions only take numbers.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import OptionError
from ..units import KB_EV

__all__ = ["MODES", "STEPS", "mode_decomposition", "curvature_test"]

#: constraint modes from least to most constrained (SPEC §8)
MODES = ("UC", "RC", "RTC", "RTVC")
#: the steps between consecutive modes and the degree of freedom each removes
STEPS = (("rot", "UC", "RC"), ("trans", "RC", "RTC"), ("vib", "RTC", "RTVC"))


def _num(x):
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None



# ----------------------------------------------------------------------------- mode decomposition

def _bound_value(v):
    """(value, upper bound?, standard error or None) of one mode's conductivity."""
    if v is None:
        return None, None, None
    if isinstance(v, dict):
        val = _num(v.get("value", v.get("sigma_mS_cm")))
        err = _num(v.get("stderr", v.get("sigma_stderr_mS_cm")))
        return val, bool(v.get("upper_bound", v.get("below_threshold", False))), err
    return _num(v), False, None


def _propagate(weights, s_log):
    """√(Σ_m w_m² s_m²) for a linear combination Σ_m w_m log σ_m of independent runs; None if an s_m is unknown."""
    var = 0.0
    for m, w in weights.items():
        if w == 0:
            continue
        if s_log.get(m) is None:
            return None
        var += (w * s_log[m]) ** 2
    return math.sqrt(var)


def mode_decomposition(sigma, *, upper_bounds=(), stderr=None) -> dict:
    """Decompose conductivities of constraint modes into rotation, translation and vibration (SPEC §8).

    Parameters
    ----------
    sigma : dict
        Conductivity per mode, keys among ``UC, RC, RTC, RTVC``, any positive unit (mS/cm in
        reports).  A value may be ``{"value": σ, "upper_bound": True}`` for a conductivity below the
        measurable threshold (σ < value), and may carry its standard error ``"stderr"`` (same unit).
    upper_bounds : iterable of str
        Modes whose value is an upper bound (alternative to the dict form).
    stderr : dict, optional
        Standard error of σ per mode (same unit; alternative to the dict form): the errors of D from
        :func:`~anionmotion.analysis.diffusion.fit_diffusion` carried over by Nernst–Einstein.

    Returns
    -------
    dict
        ``log10_sigma`` per mode; ``delta`` per step (``rot``: UC→RC, ``trans``: RC→RTC,
        ``vib``: RTC→RTVC) as ``{"value", "stderr", "kind", "from", "to"}`` with kind ``exact``,
        ``lower_bound``, ``upper_bound``, ``undetermined`` or ``missing``; ``total`` (Σ Δ) likewise; ``r``
        per step the fraction Δ_mode / Σ Δ with its kind and standard error; ``log10_sigma_stderr`` per
        mode; ``notes``: sentences stating every bound.  ``stderr`` is None for a bound or when an error
        is missing.

    Notes
    -----
    Δ_rot = log σ_UC − log σ_RC, Δ_trans = log σ_RC − log σ_RTC, Δ_vib = log σ_RTC − log σ_RTVC
    (log = log10), r_mode = Δ_mode / (Δ_rot + Δ_trans + Δ_vib).  An upper bound on the more constrained
    σ of a step makes its Δ a lower bound; on the less constrained σ an upper bound; on both,
    undetermined.  r of a bounded Δ (others exact, all Δ and Σ positive) is a bound of the same kind,
    the other r the opposite kind; any other combination is reported as undetermined.

    Errors: the runs of the four modes are independent, so with s_m = σ_err,m / (σ_m ln 10) (the error of
    log10 σ_m), s(Δ_rot)² = s_UC² + s_RC² (and so on), s(Σ Δ)² = s_UC² + s_RTVC² (the sum telescopes to
    log σ_UC − log σ_RTVC), and r = Δ/Σ gets s(r)² = Σ_m (∂r/∂log σ_m)² s_m² — Δ and Σ share runs, so the
    two are not added in quadrature as if independent.

    References
    ----------
    SPEC §8; paper 000 (Fig. 3f).
    """
    if not isinstance(sigma, dict):
        raise TypeError(f"sigma must be a dict mode -> conductivity; got {type(sigma).__name__}")
    ub = {str(m).upper() for m in upper_bounds}
    given_err = {str(m).upper(): _num(e) for m, e in (stderr or {}).items()}
    vals, bound, errs = {}, {}, {}
    for m, v in sigma.items():
        mm = str(m).upper()
        if mm not in MODES:
            raise OptionError(f"invalid constraint mode {m!r}; choose one of {', '.join(MODES)}")
        val, b, err = _bound_value(v)
        if val is None:
            continue
        if val <= 0:
            raise OptionError(f"conductivity of mode {mm} must be positive to take its logarithm; got {val}")
        if err is None:
            err = given_err.get(mm)
        if err is not None and err < 0:
            raise OptionError(f"standard error of mode {mm} must be non-negative; got {err}")
        vals[mm], bound[mm], errs[mm] = val, b or mm in ub, err
    bad = (ub | set(given_err)) - set(MODES)
    if bad:
        raise OptionError(f"invalid constraint mode(s) in upper_bounds/stderr: {', '.join(sorted(bad))}")
    logs = {m: math.log10(v) for m, v in vals.items()}
    # error of log10 σ (none for a bound: it is not a measured value)
    s_log = {m: (None if bound[m] or errs[m] is None else errs[m] / (vals[m] * math.log(10))) for m in vals}
    delta, notes = {}, []
    for step, a, b in STEPS:
        if a not in logs or b not in logs:
            delta[step] = {"value": None, "stderr": None, "kind": "missing", "from": a, "to": b}
            continue
        value = logs[a] - logs[b]
        if bound[a] and bound[b]:
            kind = "undetermined"
            notes.append(f"Δ_{step}: σ_{a} and σ_{b} are both below measurable; Δ_{step} is undetermined")
            value = None
        elif bound[b]:
            kind = "lower_bound"
            notes.append(f"Δ_{step} ≥ {value:.3g}: σ_{b} is below measurable (upper bound), so Δ_{step} is a "
                         "lower bound")
        elif bound[a]:
            kind = "upper_bound"
            notes.append(f"Δ_{step} ≤ {value:.3g}: σ_{a} is below measurable (upper bound), so Δ_{step} is an "
                         "upper bound")
        else:
            kind = "exact"
        se = _propagate({a: 1.0, b: -1.0}, s_log) if kind == "exact" else None
        delta[step] = {"value": value, "stderr": se, "kind": kind, "from": a, "to": b}
    kinds = [d["kind"] for d in delta.values()]
    r = {}
    out_err = {m: s_log[m] for m in vals}
    if "missing" in kinds or "undetermined" in kinds:
        total = {"value": None, "stderr": None, "kind": "missing" if "missing" in kinds else "undetermined"}
        for step in delta:
            r[step] = {"value": None, "stderr": None, "kind": total["kind"]}
        if "missing" in kinds:
            notes.append("r_mode needs all four modes (UC, RC, RTC, RTVC): "
                         + ", ".join(m for m in MODES if m not in vals) + " missing")
        return {"log10_sigma": logs, "log10_sigma_stderr": out_err, "upper_bound": {m: bound[m] for m in vals},
                "delta": delta, "total": total, "r": r, "notes": notes}
    tot = sum(d["value"] for d in delta.values())
    inexact = [s for s, d in delta.items() if d["kind"] != "exact"]
    if not inexact:
        total = {"value": tot, "stderr": _propagate({MODES[0]: 1.0, MODES[-1]: -1.0}, s_log), "kind": "exact"}
        for step, a, b in STEPS:
            d = delta[step]
            if tot == 0:
                r[step] = {"value": None, "stderr": None, "kind": "undetermined"}
                continue
            # ∂r/∂L_m = (∂Δ/∂L_m − r ∂Σ/∂L_m) / Σ, with Σ = L_UC − L_RTVC
            rv = d["value"] / tot
            grad = {m: 0.0 for m in MODES}
            grad[a] += 1.0 / tot
            grad[b] -= 1.0 / tot
            grad[MODES[0]] -= rv / tot
            grad[MODES[-1]] += rv / tot
            r[step] = {"value": rv, "stderr": _propagate(grad, s_log), "kind": "exact"}
    elif len(inexact) == 1:
        bstep = inexact[0]
        bkind = delta[bstep]["kind"]
        total = {"value": tot, "stderr": None, "kind": bkind}
        monotone = tot > 0 and all(d["value"] > 0 for d in delta.values())
        opposite = {"lower_bound": "upper_bound", "upper_bound": "lower_bound"}[bkind]
        for step, d in delta.items():
            if not monotone:
                r[step] = {"value": None, "stderr": None, "kind": "undetermined"}
            else:
                r[step] = {"value": d["value"] / tot, "stderr": None, "kind": bkind if step == bstep else opposite}
        if monotone:
            notes.append(f"r_{bstep} is a {bkind.replace('_', ' ')} and the other r are "
                         f"{opposite.replace('_', ' ')}s because Δ_{bstep} is a {bkind.replace('_', ' ')}")
        else:
            notes.append("r_mode undetermined: a bounded Δ with Δ values of mixed sign")
    else:
        total = {"value": None, "stderr": None, "kind": "undetermined"}
        for step in delta:
            r[step] = {"value": None, "stderr": None, "kind": "undetermined"}
        notes.append("r_mode undetermined: more than one Δ is only bounded")
    return {"log10_sigma": logs, "log10_sigma_stderr": out_err, "upper_bound": {m: bound[m] for m in vals},
            "delta": delta, "total": total, "r": r, "notes": notes}


def curvature_test(T, D, D_err=None, *, z=3.0):
    """Is ln D against 1/T curved?  Weighted quadratic fit in 1/T; True when |c| > z·σ_c (≥ 4 temperatures).

    Returns
    -------
    dict
        ``{"curved": bool or None, "quadratic_coefficient", "quadratic_stderr", "z"}``; ``curved`` is None
        with fewer than 4 temperatures (no test possible).
    """
    T, D = np.asarray(T, float), np.asarray(D, float)
    if len(T) < 4:
        return {"curved": None, "quadratic_coefficient": None, "quadratic_stderr": None, "z": z,
                "note": "fewer than 4 temperatures: curvature not tested"}
    x, y = 1.0 / (KB_EV * T), np.log(D)
    w = np.ones_like(y)
    if D_err is not None:
        e = np.asarray([np.nan if v is None else v for v in D_err], float) / D
        if np.all(np.isfinite(e) & (e > 0)):
            w = 1.0 / e ** 2
    xm = x - x.mean()
    A = np.column_stack([np.ones_like(xm), xm, xm ** 2]) * np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(A, y * np.sqrt(w), rcond=None)
    resid = y - np.column_stack([np.ones_like(xm), xm, xm ** 2]) @ coef
    dof = len(y) - 3
    s2 = float((w * resid ** 2).sum() / dof) if dof > 0 else 0.0
    cov = np.linalg.pinv(A.T @ A) * (s2 if D_err is None or dof > 0 else 1.0)
    c, sc = float(coef[2]), float(np.sqrt(max(cov[2, 2], 0.0)))
    # a quadratic term that changes ln D by less than 1e-9 over the data is numerical noise, not curvature
    negligible = abs(c) * (np.ptp(xm) / 2) ** 2 < 1e-9
    curved = False if negligible else bool(abs(c) > z * sc)
    return {"curved": curved, "quadratic_coefficient": c, "quadratic_stderr": sc, "z": z}


