"""The stages of ``anionmotion report``: one per analysis, each calling the public API.

A stage has a name, a title, the analysis modules it needs and a function
``run(ctx, out)`` that calls the public analysis functions, stores the result
dictionary (the analysis ``Result.to_dict()``) and adds figures and CSV tables.
A stage whose module is not importable in this build, or that does not apply to
the trajectory (no velocities, no polyanions, no temperature), is recorded with
the reason — it is never silently skipped.
"""

from __future__ import annotations

import importlib
import inspect
import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ..analysis.registry import ANALYSES

__all__ = ["Stage", "StageOutput", "ReportContext", "STAGES", "stage_names", "run_stage"]

OK, SKIPPED, UNAVAILABLE, FAILED = "ok", "skipped", "unavailable", "failed"


@dataclass
class ReportContext:
    """Everything a stage may use.

    Attributes
    ----------
    traj : Trajectory
    cation : CationChoice
    polyanions : PolyanionChoice
    temperature_K : float or None
    options : dict
        Report options (lag windows, hop distance, grid spacing …); None = analysis default.
    progress : bool or None
    memory : int or str or None
        Memory budget handed to every analysis (``memory=``); None = each analysis's default.
    results : dict
        Result objects of the stages that already ran and that later stages use (``"polyanions"``, the
        :func:`anionmotion.find_polyanions` object, and ``"hops"``); the report drops the others after
        their stage (:data:`anionmotion.report.core.RESULTS_USED_LATER`).
    """

    traj: object
    cation: object
    polyanions: object
    temperature_K: Optional[float]
    options: dict
    progress: Optional[bool] = None
    results: dict = field(default_factory=dict)
    mapper: Optional[Callable] = None
    source: Optional[tuple] = None
    figures: bool = True
    memory: Optional[object] = None


@dataclass
class StageOutput:
    """What a stage produced (filled in by ``Stage.run``)."""

    name: str
    title: str
    status: str = OK
    reason: str = ""
    seconds: float = 0.0
    parameters: dict = field(default_factory=dict)
    result: dict = field(default_factory=dict)
    summary: list = field(default_factory=list)        # [(label, value string)]
    figures: list = field(default_factory=list)        # [(stem, matplotlib Figure, caption)]
    tables: list = field(default_factory=list)         # [(filename, header list, 2-D array)]
    files: list = field(default_factory=list)          # extra files written by the stage (relative names)
    notes: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        thinned = {}
        result = thin_series(self.result, thinned)
        if thinned and isinstance(result, dict):
            result = dict(result)
            result["thinned_series"] = {**(result.get("thinned_series") or {}), **thinned}
        return {"name": self.name, "title": self.title, "status": self.status, "reason": self.reason,
                "parameters": self.parameters, "summary": dict(self.summary), "notes": self.notes,
                "warnings": self.warnings, "result": result}


class StageSkip(Exception):
    """Raised inside a stage when it does not apply; the message is the reason."""


@dataclass(frozen=True)
class Stage:
    """One analysis of the report.

    Attributes
    ----------
    name : str
        Key in ``report.json["analyses"]``.
    title : str
    needs : tuple of str
        Public names (``anionmotion.<name>``) the stage calls; if one is not importable
        the stage is ``unavailable``.
    applies : callable(ctx) -> str or None
        Reason why the stage does not apply, or None.
    body : callable(ctx, out)
    """

    name: str
    title: str
    needs: tuple
    applies: Callable
    body: Callable

    def missing(self) -> Optional[str]:
        """Why the analysis code is not importable, or None."""
        import anionmotion

        for name in self.needs:
            module = anionmotion._LAZY.get(name)
            try:
                getattr(anionmotion, name)
            except ModuleNotFoundError as err:
                return f"analysis module {module} is not available in this build ({err})"
            except (ImportError, AttributeError) as err:
                return f"anionmotion.{name} ({module}) cannot be imported: {err}"
        return None


def run_stage(stage: Stage, ctx: ReportContext, out_dir=None) -> StageOutput:
    """Run one stage, turning 'missing', 'does not apply' and errors into a recorded status."""
    out = StageOutput(stage.name, stage.title)
    out.out_dir = out_dir
    out.draw = ctx.figures
    t0 = time.perf_counter()
    why = stage.missing()
    if why is not None:
        out.status, out.reason = UNAVAILABLE, why
        return out
    why = stage.applies(ctx)
    if why is not None:
        out.status, out.reason = SKIPPED, why
        return out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            stage.body(ctx, out)
        except StageSkip as err:
            out.status, out.reason = SKIPPED, str(err)
        except Exception as err:  # a failing analysis must not lose the rest of the report
            out.status = FAILED
            out.reason = f"{type(err).__name__}: {err}"
            out.notes.append("traceback: " + "".join(traceback.format_exception_only(type(err), err)).strip())
            out.figures.clear()
    seen = set()
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in seen:
            seen.add(text)
            out.warnings.append(text)
    out.seconds = time.perf_counter() - t0
    return out


# ----------------------------------------------------------------------------- helpers

def _api(name):
    import anionmotion

    return getattr(anionmotion, name)


#: keywords that choose how an analysis runs, not what it computes (not recorded as parameters)
_EXECUTION_KEYWORDS = ("progress", "memory", "mapper", "source", "keep_h")


def _scale_out(ctx):
    """``mapper``/``source`` for analyses whose frame blocks can run as tasks (only inside a batch)."""
    if ctx.mapper is None or ctx.source is None:
        return {}
    return {"mapper": ctx.mapper, "source": ctx.source}


def call(out, fn, *args, **kwargs):
    """Call ``fn`` with the keywords its signature accepts and record them in ``out.parameters``.

    Keywords that are None are not passed (the analysis default applies, and the
    result's ``meta`` records it).  A keyword the analysis does not accept is
    recorded in ``out.notes`` rather than dropped silently.
    """
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        params = None
    passed = {}
    for key, value in kwargs.items():
        if value is None:
            continue
        if params is not None and key not in params and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            out.notes.append(f"{getattr(fn, '__name__', fn)}() does not take {key}={value!r}; not used")
            continue
        passed[key] = value
    for key, value in passed.items():
        if key not in _EXECUTION_KEYWORDS:
            out.parameters.setdefault(key, value)
    return fn(*args, **passed)


#: report.json keeps at most this many points of a per-lag or per-frame series (the CSV tables hold them all)
MAX_JSON_POINTS = 5000


def _stride(n):
    return -(-int(n) // MAX_JSON_POINTS)


def thin_series(obj, thinned=None, path=""):
    """``obj`` with every array/list longer than :data:`MAX_JSON_POINTS` thinned to every k-th element.

    Arrays of the same length get the same stride, so paired series (lag and MSD) stay paired; 2-D arrays
    are thinned along their first axis.  ``thinned`` (a dict) collects ``path → {n, stride}``.
    """
    if isinstance(obj, dict):
        return {k: thin_series(v, thinned, f"{path}.{k}" if path else str(k)) for k, v in obj.items()}
    if isinstance(obj, np.ndarray) and obj.ndim >= 1 and obj.dtype != object and len(obj) > MAX_JSON_POINTS:
        k = _stride(len(obj))
        if thinned is not None:
            thinned[path] = {"n": int(len(obj)), "stride": k}
        return obj[::k]
    if isinstance(obj, list) and len(obj) > MAX_JSON_POINTS and all(not isinstance(v, (dict, list)) for v in obj[:3]):
        k = _stride(len(obj))
        if thinned is not None:
            thinned[path] = {"n": int(len(obj)), "stride": k}
        return obj[::k]
    return obj


def _thin_result(result, thinned=None):
    """A copy of a frozen-dataclass result whose long array fields are thinned (shares the arrays' memory)."""
    import dataclasses

    if not dataclasses.is_dataclass(result) or isinstance(result, type):
        return result
    changes = {}
    for f in dataclasses.fields(result):
        v = getattr(result, f.name)
        t = thin_series(v, thinned, f.name)
        if t is not v:
            changes[f.name] = t
    if not changes:
        return result
    try:
        return dataclasses.replace(result, **changes)
    except (TypeError, ValueError):  # a result whose __post_init__ checks shapes: thin the dict instead
        return result


def rdict(result) -> dict:
    """``result.to_dict()`` for Result objects (long series thinned, see :func:`thin_series`); dicts pass through."""
    if isinstance(result, dict):
        return result
    thinned = {}
    d = _thin_result(result, thinned).to_dict()
    if thinned:
        d["thinned_series"] = thinned
    return d


def _get(d, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d or d[k] is None:
            return default
        d = d[k]
    return d


def _fmt(x, unit="", digits=3):
    if x is None:
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x)}{(' ' + unit) if unit else ''}"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not np.isfinite(x):
        return "–"
    return f"{x:.{digits}g}{(' ' + unit) if unit else ''}"


def _pm(x, err, unit="", digits=3):
    if x is None:
        return "–"
    if err is None:
        return _fmt(x, unit, digits)
    return f"{float(x):.{digits}g} ± {float(err):.2g}{(' ' + unit) if unit else ''}"


def _plt():
    from ..plotting import need_matplotlib

    return need_matplotlib()


def new_figure(out, stem, caption, *, ncols=1, width=6.4, height=4.0, nrows=1):
    """A matplotlib figure registered under ``figures/<stem>.png``; None when matplotlib is missing."""
    if not getattr(out, "draw", True):
        return None, None
    try:
        plt = _plt()
    except ImportError as err:
        note = f"figures not drawn: {err}"
        if note not in out.notes:
            out.notes.append(note)
        return None, None
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * (1 if ncols == 1 else 0.75 * ncols), height * nrows),
                             squeeze=False)
    out.figures.append((stem, fig, caption))
    return fig, (axes[0] if nrows == 1 else axes.ravel())


def _add_views(out, res, **context):
    """The result's own tables and figures (anionmotion.analysis.views) into the stage output."""
    for t in res.tables(**context):
        out.tables.append((t.name, t.header, t.data))
    for spec in res.figures(**context):
        fig, ax = new_figure(out, spec.stem, spec.caption, ncols=spec.ncols, width=spec.width, height=spec.height,
                             nrows=spec.nrows)
        if fig is not None:
            spec.draw(list(ax))
            fig.tight_layout()


def _needs_cation(ctx):
    if ctx.cation.species is None:
        return f"no mobile cation: {ctx.cation.reason}"
    return None


def _needs_polyanions(ctx):
    if not ctx.polyanions.found:
        return f"no polyanions: {ctx.polyanions.reason}"
    return None


#: without velocities, spectra from differentiated positions need frames at least this close (Nyquist ≥ 10 THz)
MAX_DT_FOR_FINITE_DIFFERENCES_PS = 0.05


def _needs_velocities(ctx):
    """Spectra run from the file's velocities or, when absent, from positions finely enough sampled (SPEC §6)."""
    if ctx.traj.has_velocities:
        return None
    dt = ctx.traj.dt if ctx.traj.n_frames > 1 else 0.0
    if 0 < dt <= MAX_DT_FOR_FINITE_DIFFERENCES_PS:
        return None
    return (f"the trajectory has no velocities and its frames are {dt:.4g} ps apart: spectra from differentiated "
            f"positions would stop at the Nyquist frequency {1 / (2 * dt) if dt > 0 else 0:.3g} THz, below the "
            f"vibrational bands (the report needs velocities or frames ≤ {MAX_DT_FOR_FINITE_DIFFERENCES_PS} ps apart)")


def _all(*checks):
    def applies(ctx):
        for check in checks:
            why = check(ctx)
            if why is not None:
                return why
        return None

    return applies


def _opt(ctx, key):
    return ctx.options.get(key)


# ----------------------------------------------------------------------------- polyanions

def _polyanions_body(ctx, out):
    pa = ctx.polyanions
    obj = call(out, _api("find_polyanions"), ctx.traj, center=pa.center, ligand=pa.ligand,
               cutoff=_opt(ctx, "polyanion_cutoff"))
    ctx.results["polyanions"] = obj
    from ..analysis.base import resolve_memory

    fpc = max(1, int(0.25 * resolve_memory(ctx.memory) // max(len(obj.atoms) * 3 * 8 * 6, 1)))
    broken = obj.check_integrity(ctx.traj, frames_per_chunk=fpc, progress=ctx.progress)
    pos = ctx.traj.read(atoms=obj.atoms, frames=slice(obj.frame, obj.frame + 1))
    bonds = np.linalg.norm(obj.ligand_vectors(pos)[0], axis=-1)
    bonds = bonds[np.isfinite(bonds) & (bonds > 0)]
    d = {"label": obj.label, "center": obj.center_species, "ligand": obj.ligand_species, "n_anions": obj.n_anions,
         "n_ligands_per_anion": obj.n_ligands, "cutoff_A": obj.cutoff, "cutoff_source": obj.cutoff_source,
         "centers": obj.centers, "ligands": obj.ligands,
         "framework": {"connectivity": obj.connectivity, "VPA_A3": obj.vpa_A3, "AAL_A": obj.aal_A},
         "integrity": {"intact": not broken, "departures": broken} if broken is not None else None,
         "bond_lengths_A": bonds, "meta": obj.meta}
    out.result = d
    out.summary += [("polyanions", f"{obj.n_anions} × {obj.label}"),
                    ("cutoff", f"{_fmt(obj.cutoff, 'Å', 4)} ({obj.cutoff_source})"),
                    ("framework connectivity", obj.connectivity), ("VPA", _fmt(obj.vpa_A3, "Å³", 4)),
                    ("AAL", _fmt(obj.aal_A, "Å", 4))]
    if broken is not None:
        out.summary.append(("framework intact along the run", "yes" if not broken else
                            f"NO ({len(broken)} ligand departures)"))
    if bonds.size:
        fig, ax = new_figure(out, "polyanions", f"Centre–ligand distances of the {obj.label} units in frame "
                                                f"{obj.frame}; dotted: the cutoff.")
        if fig is not None:
            ax[0].hist(bonds, bins=30, color="tab:purple")
            ax[0].axvline(obj.cutoff, color="grey", ls=":")
            ax[0].set_xlabel(f"{obj.center_species}–{obj.ligand_species} distance (Å)")
            ax[0].set_ylabel("count")


def _poly_obj(ctx):
    obj = ctx.results.get("polyanions")
    if obj is None:
        raise StageSkip("the polyanion stage did not produce polyanions")
    return obj


# ----------------------------------------------------------------------------- diffusion

def _framework_cations(ctx):
    """Species of paper 003's framework-melting check: every non-mobile cation.

    The msd default (species neither mobile nor tabulated as anions) misses polyanion centres whose element is
    tabulated as an anion elsewhere (S in SO4²⁻, N in NO3⁻, Cl in ClO4⁻); the detected centres are added.  None
    (the msd default) when no polyanion was detected.
    """
    pa = ctx.polyanions
    if pa is None or not getattr(pa, "found", False) or not getattr(pa, "center", None):
        return None
    from ..elements import ION_CHARGES, MOBILE_CATIONS

    anions = {s for s, q in ION_CHARGES.items() if q < 0}
    species = {str(s) for s in np.unique(np.asarray(ctx.traj.species))} - {str(ctx.cation.species)}
    fc = {s for s in species if s not in MOBILE_CATIONS and s not in anions}
    fc |= {c for c in str(pa.center).replace(",", " ").split() if c in species}
    return sorted(fc) or None


def _diffusion_body(ctx, out):
    sp = ctx.cation.species
    block = _opt(ctx, "msd_block_atoms")
    if block is not None and int(block) < ctx.cation.n_atoms:
        from .blocks import msd_in_blocks

        src, ropts = (ctx.source if ctx.source is not None and ctx.mapper is not None else (ctx.traj, None))
        res = msd_in_blocks(src, species=sp, block_atoms=int(block), reader_options=ropts,
                            temperature=ctx.temperature_K, charge=_opt(ctx, "charge"), mapper=ctx.mapper,
                            memory=ctx.memory)
        out.parameters.update(species=sp, msd_block_atoms=int(block))
        out.notes.append(f"MSD computed in {res.meta['atom_blocks']['n_blocks']} atom blocks of at most {int(block)} "
                         "atoms, merged by their atom-weighted mean")
    else:
        fc = _framework_cations(ctx)
        res = call(out, _api("msd"), ctx.traj, species=sp, temperature=ctx.temperature_K,
                   charge=_opt(ctx, "charge"), progress=ctx.progress, memory=ctx.memory,
                   **({} if fc is None else {"framework_cations": fc}))
    ctx.results["msd"] = res
    lo, hi = _opt(ctx, "lag_min"), _opt(ctx, "lag_max")
    window = None
    if lo is not None or hi is not None:
        lag_end = float(np.asarray(res.lag)[-1]) if len(res.lag) else 0.0
        window = (0.1 * lag_end if lo is None else lo, 0.5 * lag_end if hi is None else hi)
        if window[1] > lag_end:
            out.notes.append(f"--lag-max {window[1]:g} ps is beyond the longest lag of this trajectory "
                             f"({lag_end:g} ps): the fit window was clipped to {window[0]:g}–{lag_end:g} ps")
            window = (window[0], lag_end)
    fit = call(out, _api("fit_diffusion"), res, fit=window, temperature=ctx.temperature_K, charge=_opt(ctx, "charge"))
    ctx.results["fit"] = fit
    if getattr(fit, "diffusive_regime_reached", None) is False:
        out.notes.append("the MSD never reaches its diffusive regime in this trajectory: D is the long-time slope, an "
                         "estimate flagged unreliable (its error includes how far the slope still falls); run longer")
    from ..analysis.diffusion import report_dict

    thinned = {}
    d = report_dict(_thin_result(res, thinned), fit)   # long series thinned before they become Python lists
    if thinned:
        d["thinned_series"] = thinned
    if d.get("conductivity") is None:
        out.notes.append("conductivity not computed: no temperature (give --temperature)")
    out.result = d
    dif = d["diffusion"]
    if _get(dif, "below_threshold"):
        out.summary.append(("D", f"below measurable (< {_fmt(_get(dif, 'D_cm2_s'))} cm²/s bound)"))
    else:
        out.summary.append(("D", _pm(_get(dif, "D_cm2_s"), _get(dif, "D_stderr_cm2_s"), "cm²/s")))
    dxyz = _get(dif, "D_xyz_cm2_s")
    if dxyz is not None:
        out.summary.append(("D_x, D_y, D_z", ", ".join(_fmt(x) for x in dxyz) + " cm²/s"))
    win = _get(dif, "fit_window_ps")
    if win is not None:
        out.summary.append(("fit window", f"{_fmt(win[0])} – {_fmt(win[1])} ps"))
    if d.get("conductivity"):
        c = d["conductivity"]
        out.summary.append(("σ (Nernst–Einstein)", _pm(_get(c, "sigma_mS_cm"), _get(c, "sigma_stderr_mS_cm"),
                                                       "mS/cm")))
    tm = d.get("tmsd_A2")
    if tm is not None:
        out.summary.append(("TMSD", _fmt(tm, "Å²") + (" (diffusing, ≥ 5 Å²)" if d.get("diffusing") else
                                                       " (not diffusing, < 5 Å²)")))
    if d.get("framework_tmsd_A2") is not None:
        out.summary.append(("framework TMSD", _fmt(d["framework_tmsd_A2"], "Å²")
                            + (" (MELTING, > 2 Å²)" if d.get("framework_melting") else " (intact)")))
    if _get(dif, "method"):
        out.summary.append(("fit method", str(dif["method"])))
    _add_views(out, res, fit=fit)


# ----------------------------------------------------------------------------- hops

def _hops_body(ctx, out):
    sp = ctx.cation.species
    window = residence = None
    span = float(ctx.traj.times[-1] - ctx.traj.times[0]) if ctx.traj.n_frames > 1 else 0.0
    from ..analysis.hops import DEFAULT_RESIDENCE_PS, DEFAULT_WINDOW_PS

    if span < 1.5 * DEFAULT_WINDOW_PS:
        # the paper's t_a = 9 ps, Δt = 3 ps need a longer run: scale both to a third of the span (same ratio)
        window = span / 3.0
        residence = window * DEFAULT_RESIDENCE_PS / DEFAULT_WINDOW_PS
        out.notes.append(f"the trajectory spans {span:.4g} ps, too short for the default t_a = {DEFAULT_WINDOW_PS:g} ps "
                         f"and Δt = {DEFAULT_RESIDENCE_PS:g} ps (SPEC §3); used t_a = {window:.4g} ps and "
                         f"Δt = {residence:.4g} ps (a third of the span, same ratio), so hops lasting less than "
                         f"{DEFAULT_RESIDENCE_PS:g} ps count too")
    res = call(out, _api("hops"), ctx.traj, species=sp, a=_opt(ctx, "hop_distance"), window=window,
               residence=residence, keep_h=False, progress=ctx.progress, memory=ctx.memory)
    ctx.results["hops"] = res
    d = rdict(res)
    out.result = d
    events = d.get("events") or []
    out.summary += [("hop events", _fmt(len(events))),
                    ("jump frequency", _fmt(d.get("jump_frequency_per_ns"), "per cation per ns"))]
    out.summary += [("hop distance a", _fmt(d.get("a_A"), "Å") + (f" ({_get(d, 'meta', 'a_source')})"
                                                                 if _get(d, "meta", "a_source") else "")),
                    ("Δt, t_a", f"{_fmt(d.get('residence_ps'))}, {_fmt(d.get('window_ps'))} ps")]
    _add_views(out, res)


# ----------------------------------------------------------------------------- reorientation

def _reorientation_body(ctx, out):
    poly = _poly_obj(ctx)
    hops = ctx.results.get("hops")
    res = call(out, _api("reorientation"), ctx.traj, polyanions=poly, threshold=_opt(ctx, "rotation_threshold_deg"),
               progress=ctx.progress, memory=ctx.memory, mapper=ctx.mapper, hops=hops)
    if hops is not None:      # ν_rot/ν_hop with its CI in the result (frequency_match)
        out.parameters["hops"] = "the events of the hops stage"
    ctx.results["reorientation"] = res
    d = rdict(res)
    out.result = d
    out.summary += [("anions", f"{d.get('n_anions')} × {d.get('species')}"),
                    ("τ1, τ2", f"{_fmt(d.get('tau1_ps'), 'ps')}, {_fmt(d.get('tau2_ps'), 'ps')}"),
                    ("C1 at the longest reliable lag", f"{_fmt(d.get('C1_at_reliable_lag'), '', 4)} "
                                                       f"(at {_fmt(d.get('reliable_lag_ps'), 'ps')})"),
                    ("rotating (C1 < 0.9)", _fmt(d.get("rotating"))),
                    ("rotation events", f"{_fmt(d.get('rotation_events'))} ({_get(d, 'meta', 'event_method')})"),
                    ("rotation frequency", _fmt(d.get("rotation_frequency_per_ns"), "per anion per ns"))]
    for key, label in (("threshold", "ν_rot (threshold events)"), ("states", "ν_rot (orientation states)")):
        r = _get(d, "frequency", key)
        if r is not None and r.get("rate") is not None:
            out.summary.append((label, f"{_fmt(r['rate'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] per anion "
                                       "per ns"))
    m = d.get("frequency_match")
    if m:
        h = m["nu_hop_per_ns"]
        out.summary.append(("ν_hop", f"{_fmt(h['rate'])} [{_fmt(h['ci_low'])}, {_fmt(h['ci_high'])}] per cation per ns"))
        for key in ("threshold", "states"):
            r = m.get(f"ratio_{key}")
            if r:
                out.summary.append((f"ν_rot/ν_hop ({key})", f"{_fmt(r['ratio'])} [{_fmt(r['ci_low'])}, "
                                                            f"{_fmt(r['ci_high'])}]"))
    _add_views(out, res)


# ----------------------------------------------------------------------------- coupling

def _coupling_body(ctx, out):
    poly = _poly_obj(ctx)
    hops = ctx.results.get("hops")
    res = call(out, _api("coupling"), ctx.traj, cation=ctx.cation.species, polyanions=poly,
               shell=_opt(ctx, "shell_radius"), hops=hops, progress=ctx.progress, memory=ctx.memory)
    if hops is not None:
        out.parameters["hops"] = "the events of the hops stage"
    ctx.results["coupling"] = res
    d = rdict(res)
    out.result = d
    out.summary += [("first shell", f"{_fmt(d.get('shell_A'), 'Å', 4)} ({d.get('shell_source')})"),
                    ("residence events", _fmt(d.get("n_events"))),
                    ("Pearson r (θ_C–cation vs θ_C–ligand): mean, median",
                     f"{_fmt(d.get('pearson_mean'))}, {_fmt(d.get('pearson_median'))}"),
                    ("fraction of events coupled (r > 0.5)", _fmt(d.get("fraction_coupled")))]
    c = d.get("coincidence") or {}
    if c.get("n_pairs"):
        out.summary.append(("hop–rotation coincidence", f"{_fmt(c.get('hop_mean_deg'))}° around hops vs "
                                                         f"{_fmt(c.get('null_mean_deg'))} ± {_fmt(c.get('null_std_deg'))}° "
                                                         f"at random times (ratio {_fmt(c.get('ratio'))}, "
                                                         f"p = {_fmt(c.get('p_value'))})"))
    else:
        out.summary.append(("hop–rotation coincidence", f"not computed: {c.get('note', 'no hops')}"))
    _add_views(out, res)


def _timeline_body(ctx, out):
    poly = _poly_obj(ctx)
    hops = ctx.results.get("hops")
    if hops is None:
        raise StageSkip("the hops stage produced no hop events")
    if getattr(hops, "n_events", len(rdict(hops).get("events") or [])) == 0:
        raise StageSkip("no cation hop events in this trajectory: nothing to show around a hop")
    res = call(out, _api("timeline"), ctx.traj, cation=ctx.cation.species, polyanions=poly, hops=hops, hop=0,
               progress=ctx.progress, memory=ctx.memory)
    out.parameters["hops"] = "the events of the hops stage (the first one is shown)"
    ctx.results["timeline"] = res
    d = rdict(res)
    out.result = d
    h = d["hops"][0]
    out.summary += [("hops in the trajectory", _fmt(d.get("n_hops_total"))),
                    ("shown", f"hop 0: {ctx.cation.species} atom {h['cation_atom']} at {_fmt(h['hop_time_ps'], 'ps')}"),
                    ("nearest polyanions (centre atoms)", ", ".join(str(a) for a in h["center_atoms"]))]
    _add_views(out, res)


# ----------------------------------------------------------------------------- spectra

def _vdos_body(ctx, out):
    fn = _api("vdos")
    res = call(out, fn, ctx.traj, max_freq=_opt(ctx, "max_freq"), progress=ctx.progress, memory=ctx.memory,
               mapper=ctx.mapper)
    ctx.results["vdos"] = res
    d = rdict(res)
    out.result = d
    out.summary.append(("velocities", str(_get(d, "meta", "velocity_source") or "–")))
    bands = d.get("band_center_THz") or {}
    species = [k for k in d["vdos"] if k != "total"]
    for sp in species + ["total"]:
        if sp in bands:
            out.summary.append((f"band centre {sp}", _fmt(bands[sp], "THz")))
    kt = d.get("kinetic_temperature_K") or {}
    if "total" in kt:
        out.summary.append(("kinetic temperature (from the velocities)", _fmt(kt["total"], "K", 4)))
    _add_views(out, res)


def _libration_body(ctx, out):
    poly = _poly_obj(ctx)
    res = call(out, _api("libration"), ctx.traj, polyanions=poly, cation=ctx.cation.species,
               max_freq=_opt(ctx, "max_freq"), progress=ctx.progress, memory=ctx.memory, mapper=ctx.mapper)
    ctx.results["libration"] = res
    d = rdict(res)
    out.result = d
    out.summary += [("ω source", str(_get(d, "meta", "omega_source") or _get(d, "meta", "omega") or "–")),
                    ("libration band centre, peak", f"{_fmt(d.get('band_center_THz'), 'THz')}, "
                                                    f"{_fmt(d.get('peak_THz'), 'THz')}"),
                    ("rms angular velocity", _fmt(d.get("omega_rms"), "rad/ps")),
                    (f"spectral overlap with the {d.get('cation') or 'cation'} VDOS", _fmt(d.get("overlap_with_cation")))]
    _add_views(out, res)


# ----------------------------------------------------------------------------- structure

def _density_body(ctx, out):
    sp = ctx.cation.species
    res = call(out, _api("density"), ctx.traj, sp, spacing=_opt(ctx, "grid_spacing"), progress=ctx.progress,
               memory=ctx.memory, **_scale_out(ctx))
    ctx.results["density"] = res
    d = rdict(res)
    out.result = d
    g = np.asarray(res.density, float)
    out.files += _write_grids(res, out)
    out.summary += [("grid", " × ".join(str(n) for n in g.shape) + " (a × b × c)"),
                    ("max density", _fmt(g.max() if g.size else None, "Å⁻³")),
                    ("mean density", _fmt(g.mean() if g.size else None, "Å⁻³"))]
    _add_views(out, res)


def _write_grids(res, out):
    """Write the density grid with ``anionmotion.report.grids`` (CHGCAR/cube/NetCDF) when available."""
    out_dir = getattr(out, "out_dir", None)
    if out_dir is None:
        return []
    import os

    try:
        grids = importlib.import_module("anionmotion.report.grids")
    except ImportError as err:
        out.notes.append(f"density grid files not written: anionmotion.report.grids is not available ({err})")
        return []
    written = []
    # CHGCAR for VESTA and NetCDF (compact, lossless); `anionmotion density` also writes Gaussian cube
    for fname, writer in (("density.CHGCAR", "write_chgcar"), ("density_grid.nc", "write_netcdf")):
        fn = getattr(grids, writer, None)
        if fn is None:
            out.notes.append(f"anionmotion.report.grids has no {writer}(); {fname} not written")
            continue
        path = os.path.join(out_dir, fname)
        try:
            fn(res, path, overwrite=True)
        except TypeError:
            fn(res, path)
        written.append(fname)
    return written


def _rdf_body(ctx, out):
    sp = ctx.cation.species
    pairs = []
    if ctx.polyanions.found:
        pairs.append(f"{ctx.polyanions.center}-{sp}")
    pairs.append(f"{sp}-{sp}")
    res = call(out, _api("rdf"), ctx.traj, pairs, rmax=_opt(ctx, "r_max"), temperature=ctx.temperature_K,
               polyanions=None, progress=ctx.progress, memory=ctx.memory, **_scale_out(ctx))
    ctx.results["rdf"] = res
    d = rdict(res)
    out.result = d
    for key in d["g"]:
        fs = (d.get("first_shell") or {}).get(key) or {}
        out.summary.append((f"{key}: first peak, first minimum",
                            f"{_fmt(fs.get('r_peak_A'), 'Å')}, {_fmt(fs.get('r_min_A'), 'Å')}"))
        out.summary.append((f"{key}: coordination n(r_min)", _fmt(fs.get("coordination"))))
    if ctx.temperature_K is None:
        out.notes.append("F(r) needs a temperature: give --temperature")
    _add_views(out, res)


# ----------------------------------------------------------------------------- registry

#: when each stage applies and what it runs, by registry name (anionmotion.analysis.registry)
_STAGE_LOGIC = {
    "polyanions": (_needs_polyanions, _polyanions_body),
    "diffusion": (_needs_cation, _diffusion_body),
    "hops": (_needs_cation, _hops_body),
    "reorientation": (_needs_polyanions, _reorientation_body),
    "coupling": (_all(_needs_cation, _needs_polyanions), _coupling_body),
    "timeline": (_all(_needs_cation, _needs_polyanions), _timeline_body),
    "vdos": (_needs_velocities, _vdos_body),
    "libration": (_all(_needs_cation, _needs_polyanions, _needs_velocities), _libration_body),
    "density": (_needs_cation, _density_body),
    "rdf": (_needs_cation, _rdf_body),
    "sites": (_needs_cation, lambda ctx, out: importlib.import_module("anionmotion.report.stage_sites").sites_body(ctx, out)),
    "vanhove": importlib.import_module("anionmotion.report.stage_vanhove").STAGE_LOGIC,
    "onsager": importlib.import_module("anionmotion.report.stage_onsager").STAGE_LOGIC,
}

STAGES = tuple(Stage(e.name, e.title, tuple(e.needs), *_STAGE_LOGIC[e.name]) for e in ANALYSES)
"""The report stages, generated from the analysis registry (same order and titles)."""


def stage_names():
    return [s.name for s in STAGES]
