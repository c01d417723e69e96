"""Series comparisons: Arrhenius analysis over temperatures, constraint-mode decomposition (SPEC §8).

:func:`compare` reads report (or ``anionmotion msd --json``) results, trajectories
(the cation D computed as ``anionmotion report`` does, mode and temperature from
the file's ``constraint_mode``/``temperature_K`` metadata) or the index of an
``anionmotion md`` series (``<stem>.series.json``: all its runs), groups them
by constraint mode and temperature, fits the Arrhenius law of every mode that
has at least two temperatures (with :func:`anionmotion.arrhenius`), and
decomposes the conductivity of every temperature that has at least two modes
(:func:`mode_decomposition`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import OptionError
from ..results import Result
from ..analysis.modes import MODES, STEPS, _num, curvature_test, mode_decomposition  # noqa: F401 (public here too)
from ..units import A2_PS_TO_CM2_S, KB_EV, nernst_einstein_S_cm

__all__ = ["MODES", "D_THRESHOLD_CM2_S", "SeriesEntry", "CompareResult", "load_entry", "compare", "is_trajectory",
           "series_runs", "trajectory_result",
           "mode_decomposition", "curvature_test", "frequency_match_series", "MATCH_DECADES"]

#: D below this is "below measurable" (SPEC §2), cm²/s
D_THRESHOLD_CM2_S = 1e-8


@dataclass(frozen=True)
class SeriesEntry:
    """One run of a series, as read from its report.

    Attributes
    ----------
    label : str
    path : str or None
    temperature_K : float or None, K
    mode : str or None
        Constraint mode (UC, RC, RTC, RTVC) or None.
    species : str or None
    D_cm2_s, D_stderr_cm2_s : float or None, cm²/s
        Tracer D (when ``below_threshold``: the bound D < D_cm2_s).
    below_threshold : bool
    sigma_mS_cm, sigma_stderr_mS_cm : float or None, mS/cm
        Nernst–Einstein σ (when ``below_threshold``: the upper bound at D = 1e-8 cm²/s).
    reason : str
        Why the entry has no D (empty when it has one).
    diffusive_regime_reached : bool or None
        From the fit (``False``: D is a long-time estimate whose error includes the still-falling slope).
    """

    label: str
    path: object
    temperature_K: object
    mode: object
    species: object
    D_cm2_s: object
    D_stderr_cm2_s: object
    below_threshold: bool
    sigma_mS_cm: object
    sigma_stderr_mS_cm: object
    reason: str = ""
    n_ions: object = None
    charge: object = None
    volume_A3: object = None
    diffusive_regime_reached: object = None


def _msd_block(d):
    """The msd-style dict (``diffusion``/``conductivity``) of a report or msd JSON, or (None, reason)."""
    if "analyses" in d:
        a = d["analyses"].get("diffusion")
        if a is None:
            return None, "the report has no diffusion analysis"
        if a.get("status") != "ok":
            return None, f"diffusion analysis {a.get('status')}: {a.get('reason')}"
        return a["result"], ""
    if "diffusion" in d:
        return d, ""
    return None, "neither a report.json nor an msd JSON (no 'analyses' or 'diffusion' key)"


#: first bytes of binary trajectory files (NetCDF-3 classic/64-bit offset, HDF5 = NetCDF-4/H5MD)
_BINARY_MAGIC = (b"CDF\x01", b"CDF\x02", b"\x89HDF")


def is_trajectory(path) -> bool:
    """Whether ``path`` is to be read as a trajectory rather than as a JSON result.

    A folder or a ``.json`` file is a result; a file starting with a NetCDF/HDF5 signature is a trajectory;
    otherwise a file whose first non-blank character is ``{`` is a result and anything else a trajectory.
    """
    path = os.fspath(path)
    if os.path.isdir(path) or path.lower().endswith(".json") or not os.path.isfile(path):
        return False
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head.startswith(_BINARY_MAGIC):
        return True
    return not head.lstrip().startswith(b"{")


def series_runs(path):
    """The trajectories of an ``anionmotion md`` series index (``<stem>.series.json``), or None for other files."""
    path = os.fspath(path)
    if not (os.path.isfile(path) and path.lower().endswith(".json")):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            d = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict) or "anionmotion_md_series" not in d:
        return None
    base = os.path.dirname(os.path.abspath(path))
    runs = d.get("runs") or []
    if not runs:
        raise OptionError(f"{path}: the series index lists no runs")
    out = []
    for r in runs:
        p = os.path.join(base, str(r.get("path")))
        if not os.path.exists(p):
            raise FileNotFoundError(f"{p}: no such file (run {r.get('temperature_K')} K {r.get('mode')} of the "
                                    f"series {path})")
        out.append(p)
    return out


def trajectory_result(path, *, cation=None, temperature=None, memory=None) -> dict:
    """The msd-style dict (``diffusion``, ``conductivity``, ``constraint_mode``, ``temperature_K`` …) of a trajectory.

    Cation detected as in ``anionmotion report`` (or ``cation``); all-origin MSD and
    :func:`~anionmotion.analysis.diffusion.fit_diffusion` with its defaults at the file's temperature
    (``temperature_K`` metadata, or ``temperature`` in K).  The per-lag series are left out.
    """
    import anionmotion
    from ..analysis.detect import detect_cation
    from ..analysis.diffusion import report_dict

    with anionmotion.open(os.fspath(path)) as traj:
        cat = detect_cation(traj, cation)
        if cat.species is None:
            raise OptionError(f"{path}: {cat.reason}")
        md = traj.metadata or {}
        T = _num(temperature) if temperature is not None else _num(md.get("temperature_K"))
        res = anionmotion.msd(traj, species=cat.species, temperature=T, progress=False, memory=memory)
        fit = anionmotion.fit_diffusion(res, temperature=T, warn=False)
    d = report_dict(res, fit)
    d = {k: v for k, v in d.items() if not (isinstance(v, (list, tuple, np.ndarray)) and len(v) > 16)}
    d["constraint_mode"] = md.get("constraint_mode")
    d["temperature_K"] = T
    d["source"] = {"trajectory": os.fspath(path), "cation": cat.species, "cation_reason": cat.reason}
    return d


def load_entry(source, *, label=None, mode=None, temperature=None, cation=None) -> SeriesEntry:
    """Read one run: a path to ``report.json`` (or its folder) / msd JSON / a trajectory, or the dict itself.

    ``mode`` and ``temperature`` override what the file says; ``cation`` is the species of a trajectory's D
    (default: detected as in ``anionmotion report``).
    """
    path = None
    if isinstance(source, (str, os.PathLike)) and is_trajectory(source):
        path = os.fspath(source)
        d = trajectory_result(path, cation=cation, temperature=temperature)
        if label is None:
            label = os.path.splitext(os.path.basename(path))[0]
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isdir(path):
            path = os.path.join(path, "report.json")
        try:
            with open(path, encoding="utf-8") as fh:
                d = json.load(fh)
        except ValueError as err:
            raise OptionError(f"{path}: not a JSON file ({err})") from err
    elif isinstance(source, dict):
        d = source
    else:
        raise TypeError(f"a series entry must be a path or a dict; got {type(source).__name__}")
    if label is None:
        label = (d.get("labels") or {}).get("label") if isinstance(d.get("labels"), dict) else None
    if label is None:
        label = os.path.basename(os.path.dirname(os.path.abspath(path))) if path and path.endswith("report.json") \
            else (os.path.basename(path) if path else "run")
    if mode is None:
        mode = d.get("constraint_mode") or (d.get("trajectory", {}).get("metadata") or {}).get("constraint_mode")
    if mode is not None:
        mode = str(mode).upper()
        if mode not in MODES:
            raise OptionError(f"{path or label}: invalid constraint mode {mode!r}; choose one of {', '.join(MODES)}")
    block, reason = _msd_block(d)
    T = _num(temperature) if temperature is not None else _num(d.get("temperature_K"))
    if T is None and block is not None:
        T = _num(block.get("temperature_K"))
    if block is None:
        return SeriesEntry(label, path, T, mode, None, None, None, False, None, None, reason)
    dif = block.get("diffusion") or {}
    cond = block.get("conductivity") or {}
    D, Derr = _num(dif.get("D_cm2_s")), _num(dif.get("D_stderr_cm2_s"))
    below = bool(dif.get("below_threshold", False)) or (D is not None and D < D_THRESHOLD_CM2_S)
    sig, sig_err = _num(cond.get("sigma_mS_cm")), _num(cond.get("sigma_stderr_mS_cm"))
    if below:
        sig_err = None
        n, q, V = block.get("n_atoms"), _num(cond.get("charge")), _num(cond.get("volume_A3"))
        if cond.get("below_threshold") and sig is not None:
            pass  # the analysis already reports σ at the threshold D (an upper bound)
        elif n and q is not None and V and T:
            sig = 1e3 * float(nernst_einstein_S_cm(n, q, D_THRESHOLD_CM2_S / A2_PS_TO_CM2_S, V, T))
        D, Derr = D_THRESHOLD_CM2_S, None
    why = "" if D is not None else "no diffusion coefficient in the result"
    n_ions = block.get("n_atoms") or cond.get("n_ions")
    reached = dif.get("diffusive_regime_reached")
    return SeriesEntry(str(label), path, T, mode, block.get("species"), D, Derr, below, sig, sig_err, why,
                       n_ions=None if n_ions is None else int(n_ions), charge=_num(cond.get("charge", block.get("charge"))),
                       volume_A3=_num(cond.get("volume_A3", block.get("volume_A3"))),
                       diffusive_regime_reached=None if reached is None else bool(reached))


def _arrhenius_fit(entries, at_K):
    """Call anionmotion.arrhenius on a list of SeriesEntry; returns (dict or None, reason)."""
    import anionmotion

    try:
        fn = anionmotion.arrhenius
    except (ImportError, AttributeError) as err:
        return None, f"anionmotion.arrhenius is not available in this build ({err})"
    usable = [e for e in entries if e.D_cm2_s is not None and e.temperature_K is not None and not e.below_threshold]
    dropped = [e.label for e in entries if e not in usable]
    if len({e.temperature_K for e in usable}) < 2:
        return None, "fewer than two temperatures with a measurable D"
    res = _call_arrhenius(fn, usable, at_K)
    d = res.to_dict() if hasattr(res, "to_dict") else dict(res)
    T = [e.temperature_K for e in usable]
    D = [e.D_cm2_s for e in usable]
    d["labels"] = [e.label for e in usable]
    d["excluded"] = dropped
    d["curvature"] = curvature_test(T, D, [e.D_stderr_cm2_s for e in usable])
    return d, ""


def _call_arrhenius(fn, usable, at_K):
    T = np.array([e.temperature_K for e in usable], float)
    D = np.array([e.D_cm2_s for e in usable], float)
    err = [e.D_stderr_cm2_s for e in usable]
    kw = {}
    if all(v is not None for v in err):
        kw["D_stderr_cm2_s"] = np.array(err, float)
    n = {e.n_ions for e in usable}
    q = {e.charge for e in usable}
    V = [e.volume_A3 for e in usable]
    if len(n) == 1 and len(q) == 1 and None not in n and None not in q and None not in V:
        kw.update(n_ions=n.pop(), charge=q.pop(), volume_A3=float(np.mean(V)))
    return fn(temperatures=T, D_cm2_s=D, at=at_K, **kw)


# ----------------------------------------------------------------------------- compare

@dataclass(frozen=True)
class CompareResult(Result):
    """Comparison of a series of runs.

    Attributes
    ----------
    entries : list of SeriesEntry
    arrhenius : dict
        Per mode label (``"all"`` when no modes are given): the :func:`anionmotion.arrhenius` result dict
        (``Ea_eV``, ``Ea_stderr_eV``, ``D0_cm2_s``, ``at_K``, ``D_at_cm2_s``, ``sigma_at_mS_cm`` …) plus
        ``curvature`` (non-Arrhenius test) — or ``{"status": "not computed", "reason": …}``.
    modes : dict
        Per temperature (``"<T> K"``): the :func:`mode_decomposition` dict and the σ used.
    warnings : list of str
    meta : dict
        Parameters (``at_K``, threshold) and how modes/temperatures were read.
    frequency_match : list of dict
        ν_rot/ν_hop per run with intervals and the paper-000 claim per temperature
        (:func:`frequency_match_series`).
    """

    entries: list
    arrhenius: dict
    modes: dict
    warnings: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    frequency_match: list = field(default_factory=list)


def compare(results, *, labels=None, modes=None, temperatures=None, at_K=300.0, cation=None) -> CompareResult:
    """Compare reports of a series: Arrhenius per mode, mode decomposition per temperature.

    Parameters
    ----------
    results : sequence
        Paths to ``report.json`` files (or report folders, or ``anionmotion msd --json`` files), trajectories
        (:func:`trajectory_result`: mode and temperature from their metadata), ``anionmotion md`` series
        indexes (``<stem>.series.json``, standing for all their runs), or the loaded dicts.
    labels, modes : sequence of str, optional
        One per result; ``modes`` overrides the ``constraint_mode`` of the trajectories.
    temperatures : sequence of float, optional, K
        One per result; overrides the temperature in the files.
    at_K : float, K
        Temperature of the Arrhenius extrapolation (default 300 K).
    cation : str, optional
        Species whose D is computed from trajectories (default: detected as in ``anionmotion report``).

    Returns
    -------
    CompareResult
    """
    expanded = []
    for r in results:
        runs = series_runs(r) if isinstance(r, (str, os.PathLike)) else None
        if runs is not None and (labels is not None or modes is not None or temperatures is not None):
            raise OptionError(f"{os.fspath(r)}: a series index stands for {len(runs)} runs; give the trajectories "
                              "themselves to label them with --label/--mode/--temperature (a series needs none: "
                              "every run carries its mode and temperature)")
        expanded.extend(runs if runs is not None else [r])
    results = expanded
    if not results:
        raise OptionError("compare needs at least one result")
    for name, seq in (("labels", labels), ("modes", modes), ("temperatures", temperatures)):
        if seq is not None and len(seq) != len(results):
            raise OptionError(f"{name} must have one entry per result ({len(results)}); got {len(seq)}")
    entries = [load_entry(r, label=None if labels is None else labels[i], mode=None if modes is None else modes[i],
                          temperature=None if temperatures is None else temperatures[i], cation=cation)
               for i, r in enumerate(results)]
    warns = [f"{e.label}: {e.reason}" for e in entries if e.reason]
    warns += [f"{e.label}: the MSD never reached its diffusive regime; D is a long-time estimate and its (wide) "
              "error, which enters the Arrhenius weights and the mode decomposition, includes how far the slope "
              "still falls" for e in entries if e.diffusive_regime_reached is False and not e.below_threshold]
    groups = {}
    for e in entries:
        groups.setdefault(e.mode or "all", []).append(e)
    arr = {}
    for key, es in groups.items():
        temps = {e.temperature_K for e in es if e.temperature_K is not None}
        if len(temps) < 2:
            continue
        d, why = _arrhenius_fit(es, at_K)
        if d is None:
            arr[key] = {"status": "not computed", "reason": why}
            warns.append(f"Arrhenius ({key}): {why}")
        else:
            arr[key] = d
            if d["curvature"].get("curved"):
                warns.append(f"Arrhenius ({key}): ln D against 1/T is curved (quadratic term "
                             f"{d['curvature']['quadratic_coefficient']:.3g} ± {d['curvature']['quadratic_stderr']:.2g}"
                             "): the data are not Arrhenius; Ea and the extrapolation are questionable")
    by_T = {}
    for e in entries:
        if e.mode is not None and e.temperature_K is not None and e.sigma_mS_cm is not None:
            by_T.setdefault(e.temperature_K, {})
            if e.mode in by_T[e.temperature_K]:
                raise OptionError(f"two runs with mode {e.mode} at {e.temperature_K:g} K "
                                  f"({by_T[e.temperature_K][e.mode]['label']} and {e.label})")
            by_T[e.temperature_K][e.mode] = {"value": e.sigma_mS_cm, "upper_bound": e.below_threshold,
                                             "stderr": None if e.below_threshold else e.sigma_stderr_mS_cm,
                                             "label": e.label}
    dec = {}
    for T in sorted(by_T):
        sig = by_T[T]
        if len(sig) < 2:
            continue
        md = mode_decomposition({m: {"value": v["value"], "upper_bound": v["upper_bound"], "stderr": v["stderr"]}
                                 for m, v in sig.items()})
        md["sigma_mS_cm"] = {m: v["value"] for m, v in sig.items()}
        md["sigma_stderr_mS_cm"] = {m: v["stderr"] for m, v in sig.items()}
        md["labels"] = {m: v["label"] for m, v in sig.items()}
        md["temperature_K"] = T
        dec[f"{T:g} K"] = md
    if not arr and not dec:
        warns.append("nothing to compare: give runs at two or more temperatures (Arrhenius) or in two or more "
                     "constraint modes at one temperature (mode decomposition)")
    meta = {"at_K": at_K, "D_threshold_cm2_s": D_THRESHOLD_CM2_S, "log": "log10",
            "modes_from": "--mode labels" if modes is not None else "trajectory metadata (constraint_mode)",
            "temperatures_from": "given" if temperatures is not None else "report files (temperature_K metadata of "
                                 "trajectories)"}
    fm_sources = [{} if isinstance(r, (str, os.PathLike)) and is_trajectory(r) else r for r in results]
    return CompareResult(entries, arr, dec, warns, meta, frequency_match_series(fm_sources, entries, dec))


# ----------------------------------------------------------------------------- output

def _figures(res: CompareResult):
    """[(stem, Figure, caption)] for the Arrhenius plot and the mode decomposition."""
    from ..plotting import need_matplotlib

    plt = need_matplotlib()
    figs = []
    usable = [e for e in res.entries if e.D_cm2_s is not None and e.temperature_K is not None]
    if len({e.temperature_K for e in usable}) >= 2:
        fig, ax = plt.subplots(figsize=(6.0, 4.2))
        groups = {}
        for e in usable:
            groups.setdefault(e.mode or "all", []).append(e)
        for key, es in groups.items():
            x = np.array([1000.0 / e.temperature_K for e in es])
            y = np.array([e.D_cm2_s for e in es])
            err = np.array([e.D_stderr_cm2_s or 0.0 for e in es])
            below = np.array([e.below_threshold for e in es])
            line = ax.errorbar(x[~below], y[~below], yerr=err[~below], fmt="o", capsize=3, label=key)
            color = line[0].get_color()
            if below.any():
                ax.plot(x[below], y[below], "v", color=color, label=f"{key}: below measurable (bound)")
            fit = res.arrhenius.get(key, {})
            if fit.get("Ea_eV") is not None and fit.get("D0_cm2_s") is not None:
                xx = np.linspace(min(x.min(), 1000.0 / res.meta["at_K"]), x.max(), 50)
                ax.plot(xx, fit["D0_cm2_s"] * np.exp(-fit["Ea_eV"] / (KB_EV * 1000.0 / xx)), "--", color=color,
                        label=f"{key}: Ea = {fit['Ea_eV']:.3f} ± {fit.get('Ea_stderr_eV') or 0:.2g} eV")
        ax.set_yscale("log")
        ax.set_xlabel("1000 / T (K⁻¹)")
        ax.set_ylabel("D (cm²/s)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(frameon=False, fontsize=8)
        figs.append(("arrhenius", fig, "Arrhenius plot: tracer D against 1000/T with the fit of ln D = ln D0 − "
                                       "Ea/(k_B T) and its extrapolation (SPEC §2)."))
    for key, md in res.modes.items():
        modes = [m for m in MODES if m in md["sigma_mS_cm"]]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 4.0), gridspec_kw={"width_ratios": [3, 1]})
        ys = [md["log10_sigma"][m] for m in modes]
        colors = ["tab:grey" if md["upper_bound"][m] else "tab:blue" for m in modes]
        yerr = [(md.get("log10_sigma_stderr") or {}).get(m) or 0.0 for m in modes]
        ax1.bar(modes, ys, color=colors, yerr=yerr, capsize=3)
        for i, m in enumerate(modes):
            if md["upper_bound"][m]:
                ax1.annotate("< (bound)", (i, ys[i]), ha="center", va="bottom", fontsize=8)
        for step, d in md["delta"].items():
            if d["value"] is not None and d["from"] in modes and d["to"] in modes:
                i = (modes.index(d["from"]) + modes.index(d["to"])) / 2
                sym = {"exact": "", "lower_bound": "≥ ", "upper_bound": "≤ "}.get(d["kind"], "")
                err = f" ± {d['stderr']:.2f}" if d.get("stderr") is not None else ""
                ax1.annotate(f"Δ_{step} {sym}{d['value']:.2f}{err}", (i, max(ys)), ha="center", va="bottom",
                             fontsize=8)
        ax1.set_ylabel("log10 σ (σ in mS/cm)")
        ax1.set_title(f"{key}")
        bottom = 0.0
        for step, color in zip(("rot", "trans", "vib"), ("tab:orange", "tab:green", "tab:red")):
            r = md["r"].get(step, {})
            if r.get("value") is not None:
                sym = {"exact": "", "lower_bound": " (≥)", "upper_bound": " (≤)"}.get(r["kind"], "")
                ax2.bar(["r"], [r["value"]], bottom=[bottom], color=color, label=f"r_{step} = {r['value']:.2f}{sym}")
                bottom += r["value"]
        if bottom == 0.0:
            ax2.text(0.5, 0.5, "r undetermined", transform=ax2.transAxes, ha="center")
        ax2.set_ylabel("fraction of the total Δ (dimensionless)")
        ax2.set_xlim(-0.6, 0.6)
        if ax2.get_legend_handles_labels()[0]:
            ax2.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        figs.append((f"modes_{key.replace(' ', '')}", fig,
                     f"Constraint-mode decomposition at {key} (SPEC §8, cf. paper 000 Fig. 3f): log σ per mode with "
                     "the steps Δ between them, and the fractions r of the total."))
    figs += _frequency_match_figures(res)
    return figs


def _md_text(res: CompareResult, fig_files) -> str:
    lines = ["# anionmotion compare", "", "| label | T (K) | mode | D (cm²/s) | σ (mS/cm) | note |",
             "|---|---|---|---|---|---|"]
    for e in res.entries:
        D = "–" if e.D_cm2_s is None else (f"< {e.D_cm2_s:.3g}" if e.below_threshold else
                                          f"{e.D_cm2_s:.3g}" + (f" ± {e.D_stderr_cm2_s:.2g}" if e.D_stderr_cm2_s else ""))
        s = "–" if e.sigma_mS_cm is None else (f"< {e.sigma_mS_cm:.3g}" if e.below_threshold else
                                              f"{e.sigma_mS_cm:.3g}" + (f" ± {e.sigma_stderr_mS_cm:.2g}"
                                                                        if e.sigma_stderr_mS_cm else ""))
        lines.append(f"| {e.label} | {e.temperature_K if e.temperature_K is not None else '–'} | {e.mode or '–'} | "
                     f"{D} | {s} | {e.reason or ('below measurable' if e.below_threshold else '')} |")
    for key, a in res.arrhenius.items():
        lines += ["", f"## Arrhenius ({key})", ""]
        if "Ea_eV" not in a:
            lines.append(f"not computed: {a.get('reason')}")
            continue
        lines.append(f"- Ea = {a['Ea_eV']:.4g} ± {(a.get('Ea_stderr_eV') or 0):.2g} eV")
        for k, unit in (("D0_cm2_s", "cm²/s"), ("D_at_cm2_s", "cm²/s"), ("sigma_at_mS_cm", "mS/cm")):
            if a.get(k) is not None:
                err = a.get(k.replace("_cm2_s", "_stderr_cm2_s").replace("_mS_cm", "_stderr_mS_cm"))
                lines.append(f"- {k} = {a[k]:.4g}" + (f" ± {err:.2g}" if isinstance(err, (int, float)) else "")
                             + f" {unit}" + (f" (at {a.get('at_K')} K)" if "_at_" in k else ""))
        c = a.get("curvature", {})
        lines.append(f"- non-Arrhenius test: {'CURVED' if c.get('curved') else 'not curved' if c.get('curved') is False else c.get('note', 'not tested')}")
    for key, md in res.modes.items():
        lines += ["", f"## Mode decomposition at {key}", "", "| step | Δ (log10) | kind | r | kind |", "|---|---|---|---|---|"]
        for step in ("rot", "trans", "vib"):
            d, r = md["delta"][step], md["r"][step]
            dv = "–" if d["value"] is None else (f"{d['value']:.3g}"
                                                 + (f" ± {d['stderr']:.2g}" if d.get("stderr") is not None else ""))
            rv = "–" if r["value"] is None else (f"{r['value']:.3g}"
                                                 + (f" ± {r['stderr']:.2g}" if r.get("stderr") is not None else ""))
            lines.append(f"| {step} ({d['from']}→{d['to']}) | {dv} | {d['kind']} | {rv} | {r['kind']} |")
        lines += [f"> {n}" for n in md["notes"]]
    lines += _frequency_match_md(res)
    if res.warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in res.warnings]
    for stem, caption in fig_files:
        lines += ["", f"![{caption}](figures/{stem}.png)", "", f"*{caption}*"]
    return "\n".join(lines) + "\n"


def write_compare(res: CompareResult, out_dir, *, overwrite=False, figures=True) -> list:
    """Write ``compare.json``, ``compare.md``, ``compare.html``, ``compare.csv`` and figures to ``out_dir``.

    Refuses existing files unless ``overwrite``.  Returns the written file names.
    """
    import base64
    import html as _html
    import io

    from ..results import check_output, make_output_folder, write_json, write_text_atomic

    out_dir = os.fspath(out_dir)
    names = ["compare.json", "compare.md", "compare.html", "compare.csv"]
    for n in names:
        check_output(os.path.join(out_dir, n), overwrite)
    make_output_folder(out_dir)
    figs, notes = [], []
    if figures:
        try:
            figs = _figures(res)
        except ImportError as err:
            notes.append(f"figures not drawn: {err}")
    written, pngs = [], {}
    for stem, fig, caption in figs:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)
        os.makedirs(os.path.join(out_dir, "figures"), exist_ok=True)
        p = os.path.join(out_dir, "figures", f"{stem}.png")
        check_output(p, overwrite)
        with open(p, "wb") as fh:
            fh.write(buf.getvalue())
        pngs[stem] = (buf.getvalue(), caption)
        written.append(f"figures/{stem}.png")
    d = res.to_dict()
    d["notes"] = notes
    write_json(os.path.join(out_dir, "compare.json"), d, overwrite)
    rows = ["label,temperature_K,mode,D_cm2_s,D_stderr_cm2_s,below_threshold,sigma_mS_cm,sigma_stderr_mS_cm"]
    for e in res.entries:
        rows.append(",".join("" if v is None else str(v) for v in (e.label, e.temperature_K, e.mode, e.D_cm2_s,
                                                                    e.D_stderr_cm2_s, e.below_threshold,
                                                                    e.sigma_mS_cm, e.sigma_stderr_mS_cm)))
    write_text_atomic(os.path.join(out_dir, "compare.csv"), "\n".join(rows) + "\n", overwrite)
    md = _md_text(res, [(s, c) for s, (_, c) in pngs.items()])
    write_text_atomic(os.path.join(out_dir, "compare.md"), md, overwrite)
    body = "<pre>" + _html.escape(md.split("\n![")[0]) + "</pre>"
    for stem, (png, caption) in pngs.items():
        body += (f"<figure><img alt='{_html.escape(caption, quote=True)}' src='data:image/png;base64,"
                 f"{base64.b64encode(png).decode('ascii')}'><figcaption>{_html.escape(caption)}</figcaption></figure>")
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>anionmotion compare</title>"
            "<style>body{font-family:sans-serif;max-width:980px;margin:2em auto}img{max-width:100%}"
            "pre{white-space:pre-wrap}</style></head><body><h1>anionmotion compare</h1>" + body + "</body></html>\n")
    write_text_atomic(os.path.join(out_dir, "compare.html"), page, overwrite)
    return names + written


# ----------------------------------------------------------------------------- rotation–hop frequency match
#: ν_rot/ν_hop "matches" when it lies within this many decades of 1 (paper 000 gives no number; a choice)
MATCH_DECADES = 1.0


def _reorientation_block(d):
    """The reorientation result dict of a report.json or an ``anionmotion reorient --json`` file, or None."""
    if "analyses" in d:
        a = d["analyses"].get("reorientation") or {}
        return a.get("result") if a.get("status") == "ok" else None
    return d if "frequency" in d and "C1" in d else None


def _match_class(lo, hi, decades=MATCH_DECADES):
    """Where the interval [lo, hi] of ν_rot/ν_hop lies: ``match`` (inside 10^±decades), ``higher``, ``lower``
    or ``undetermined`` (it straddles a band edge or is missing)."""
    band_lo, band_hi = 10.0 ** -decades, 10.0 ** decades
    hi = math.inf if hi is None else hi
    if lo is None:
        return "undetermined"
    if lo >= band_lo and hi <= band_hi:
        return "match"
    if lo > band_hi:
        return "higher"
    if hi < band_lo:
        return "lower"
    return "undetermined"


#: the mode the paper-000 claim expects to dominate for each class of ν_rot/ν_hop
CLAIM = {"match": "rot", "higher": "trans", "lower": "vib"}


def frequency_match_series(results, entries, modes) -> list:
    """ν_rot/ν_hop per run and, per temperature, the paper-000 claim tested against the mode decomposition.

    Parameters
    ----------
    results : sequence
        The sources given to :func:`compare` (paths or dicts).
    entries : list of SeriesEntry
        Their entries (label, temperature, mode).
    modes : dict
        ``CompareResult.modes`` (per temperature: the mode decomposition with ``r``).

    Returns
    -------
    list of dict
        One per run that has a reorientation result with ``frequency_match``: ``label``, ``temperature_K``,
        ``mode``, ``nu_rot_per_ns`` and ``nu_hop_per_ns`` (rate and 95 % interval), ``ratio`` and
        ``ratio_states`` (ν_rot/ν_hop, threshold and orientation-state methods, with intervals), ``class``
        (:func:`_match_class` of the threshold ratio's interval) and — for unconstrained runs (UC or no mode)
        at a temperature with a mode decomposition — ``dominant_mode`` (largest r), ``expected_mode`` (the
        claim: rot when the frequencies match, trans when ν_rot is higher, vib when lower) and ``agrees``.
    """
    rows = []
    for src, e in zip(results, entries):
        d = src
        if not isinstance(src, dict):
            path = os.fspath(src)
            path = os.path.join(path, "report.json") if os.path.isdir(path) else path
            try:
                with open(path, encoding="utf-8") as fh:
                    d = json.load(fh)
            except (OSError, ValueError):
                continue
        rot = _reorientation_block(d)
        fm = (rot or {}).get("frequency_match") or d.get("frequency_match")
        if not fm:
            continue
        fq = (rot or {}).get("frequency") or {}
        r = fm.get("ratio_threshold") or {}
        row = {"label": e.label, "temperature_K": e.temperature_K, "mode": e.mode,
               "nu_rot_per_ns": fq.get("threshold"), "nu_rot_states_per_ns": fq.get("states"),
               "nu_hop_per_ns": fm.get("nu_hop_per_ns"), "ratio": r, "ratio_states": fm.get("ratio_states"),
               "class": _match_class(r.get("ci_low"), r.get("ci_high"))}
        md = modes.get(f"{e.temperature_K:g} K") if e.temperature_K is not None else None
        if md and e.mode in (None, "UC"):
            rr = {k: v.get("value") for k, v in md["r"].items() if v.get("value") is not None}
            if rr:
                row["dominant_mode"] = max(rr, key=rr.get)
                row["expected_mode"] = CLAIM.get(row["class"])
                row["agrees"] = None if row["expected_mode"] is None else row["dominant_mode"] == row["expected_mode"]
        rows.append(row)
    return rows


def _frequency_match_figures(res):
    """[(stem, Figure, caption)]: ν_rot/ν_hop against T with intervals, next to the mode fractions r."""
    rows = [r for r in getattr(res, "frequency_match", []) if r["temperature_K"] is not None]
    if not rows:
        return []
    from ..plotting import need_matplotlib

    plt = need_matplotlib()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.0, 4.0))
    ax1.axhspan(10 ** -MATCH_DECADES, 10 ** MATCH_DECADES, color="tab:orange", alpha=0.12,
                label=f"match (within {MATCH_DECADES:g} decade)")
    for key, color, lab in (("ratio", "tab:blue", "threshold events"), ("ratio_states", "tab:purple",
                                                                      "orientation states")):
        for r in rows:
            q = r.get(key) or {}
            T = r["temperature_K"] + (3.0 if key == "ratio_states" else 0.0)
            if q.get("ratio"):
                hi = q["ci_high"] if q.get("ci_high") is not None else 10 * q["ratio"]
                ax1.errorbar([T], [q["ratio"]], yerr=[[q["ratio"] - q["ci_low"]], [hi - q["ratio"]]], fmt="o",
                             color=color, capsize=3, label=lab)
            elif q.get("ci_low"):
                ax1.plot([T], [q["ci_low"]], "^", color=color, label=f"{lab} (lower limit: no hops)")
            elif q.get("ci_high"):
                ax1.plot([T], [q["ci_high"]], "v", color=color, label=f"{lab} (upper limit: no rotations)")
            lab = None
    ax1.set_yscale("log")
    ax1.set_xlabel("T (K)")
    ax1.set_ylabel("ν_rot / ν_hop (dimensionless)")
    if ax1.get_legend_handles_labels()[0]:
        ax1.legend(frameon=False, fontsize=8)
    ax1.set_title("rotation–hop frequency ratio (95 % CI)", fontsize=10)
    Ts = sorted({md["temperature_K"] for md in res.modes.values()})
    for step, color in zip(("rot", "trans", "vib"), ("tab:orange", "tab:green", "tab:red")):
        ys = [res.modes[f"{T:g} K"]["r"].get(step, {}).get("value") for T in Ts]
        es = [res.modes[f"{T:g} K"]["r"].get(step, {}).get("stderr") or 0.0 for T in Ts]
        ok = [i for i, y in enumerate(ys) if y is not None]
        if ok:
            ax2.errorbar([Ts[i] for i in ok], [ys[i] for i in ok], yerr=[es[i] for i in ok], fmt="o-", color=color,
                         capsize=3, label=f"r_{step}")
    if ax2.get_legend_handles_labels()[0]:
        ax2.legend(frameon=False, fontsize=8)
    if not Ts:
        ax2.text(0.5, 0.5, "no mode decomposition\n(needs UC/RC/RTC/RTVC runs)", transform=ax2.transAxes,
                 ha="center", va="center")
    ax2.set_xlabel("T (K)")
    ax2.set_ylabel("fraction r of the total Δ (dimensionless)")
    ax2.set_title("mode decomposition", fontsize=10)
    return [("frequency_match", fig, "ν_rot/ν_hop against temperature (left; shaded: the match band) next to the "
                                     "constraint-mode fractions r (right): the paper-000 claim (rotation dominates "
                                     "when the frequencies match, translation when ν_rot is higher, vibration when "
                                     "lower; its Fig. 2f) made quantitative.")]


def _frequency_match_md(res) -> list:
    """Markdown lines of the frequency-match table."""
    rows = getattr(res, "frequency_match", [])
    if not rows:
        return []

    def ci(q):
        if not q or (q.get("ratio") is None and q.get("ci_low") is None):
            return "–"
        hi = "∞" if q.get("ci_high") is None else f"{q['ci_high']:.3g}"
        val = "∞" if q.get("ratio") is None else f"{q['ratio']:.3g}"
        return f"{val} [{q['ci_low']:.3g}, {hi}]"

    def rate(q):
        return "–" if not q or q.get("rate") is None else f"{q['rate']:.3g} [{q['ci_low']:.3g}, {q['ci_high']:.3g}]"

    lines = ["", "## Rotation–hop frequency match (paper 000 Fig. 2f)", "",
             f"Match = the 95 % interval of ν_rot/ν_hop (threshold events) inside 10^±{MATCH_DECADES:g}; the claim "
             "expects rotation to dominate then, translation when ν_rot is higher, vibration when lower.", "",
             "| label | T (K) | mode | ν_rot (ns⁻¹) | ν_hop (ns⁻¹) | ν_rot/ν_hop | states ratio | class | dominant | "
             "expected | agrees |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ag = r.get("agrees")
        lines.append(f"| {r['label']} | {r['temperature_K'] if r['temperature_K'] is not None else '–'} | "
                     f"{r['mode'] or '–'} | {rate(r['nu_rot_per_ns'])} | {rate(r['nu_hop_per_ns'])} | "
                     f"{ci(r['ratio'])} | {ci(r.get('ratio_states'))} | {r['class']} | {r.get('dominant_mode', '–')} | "
                     f"{r.get('expected_mode') or '–'} | {'–' if ag is None else ('yes' if ag else 'no')} |")
    return lines
