"""Temperature × mode series of constrained MD, and runs extended until the cation D has converged (SPEC §8).

A *series* is the grid of runs behind paper 000's Arrhenius plots per mode and its mode decomposition
(Figs. 3–4): every temperature of ``temperatures`` × every constraint mode of ``mode``.  Naming of the
outputs (``out = "dir/li2so4.nc"``):

* several temperatures: ``dir/li2so4_<T>K_<MODE>.nc`` for every run (also for a single mode), each
  temperature with its own equilibrated UC start (``dir/li2so4_<T>K.nc.state/``, removed when all modes of
  that temperature are complete);
* one temperature: as :func:`~anionmotion.md.run.run_md` — ``out`` itself for one mode,
  ``dir/li2so4_<MODE>.nc`` for several;
* the constraint report of each run next to it (``…_RC.constraints.json``), and the series index
  ``dir/li2so4.series.json`` (settings, temperatures, modes, one entry per run with its file, stopping
  reason and D), which ``anionmotion compare`` accepts in place of the files.

Every run carries its own metadata in the NetCDF global attributes (``temperature_K``,
``constraint_mode``, ``seed``, ``system``, ``run_settings`` …), so ``compare`` needs no ``--mode`` or
``--temperature``.  A series started again with the same command skips the complete runs and resumes
an interrupted one from its checkpoint (no frame lost or duplicated); with ``client``/``scheduler`` the
runs are Dask tasks (the equilibrated start of a temperature first, then its modes in parallel).

*Adaptive length* (``until_converged``): a run records ``time`` ps, then — in segments of ``time`` ps
appended to the same file — as long as the relative standard error of the cation tracer D
(:func:`anionmotion.fit_diffusion`, default ``auto`` estimator, on the MSD of the whole trajectory so
far; cation detected as in ``anionmotion report`` or given) is above the target, until a production
limit (``time_limit``, ps) or a wall-clock limit (``wall_limit``, s: no segment is started that would
end beyond it) stops it.  Each check (production length, D, its error) and the stopping reason
(``converged``, ``time_limit`` or ``wall_limit``) are printed and stored in the NetCDF attributes
``convergence`` (JSON) and ``convergence_stopped_by`` and in the constraint report.  The final OpenMM
checkpoint is kept between segments (``<out>.state/``, with the log ``convergence.json``), so a run
killed during an extension resumes it with the same command.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import time as _time
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..errors import OptionError
from ..results import check_output, to_jsonable, write_json
from .modes import K_COM_DEFAULT, K_ROT_DEFAULT, MODES, RC_BACKEND_DEFAULT, check_mode
from .run import RunSettings, _atomic_write_bytes, _read_complete, _state_dir, check_box, output_paths, report_path

__all__ = ["parse_temperatures", "parse_wall_limit", "series_paths", "series_index_path", "Convergence",
           "cation_diffusion", "run_converging", "run_series", "STOP_REASONS"]

#: why an adaptive run stopped
STOP_REASONS = ("converged", "time_limit", "wall_limit")
INDEX_SUFFIX = ".series.json"


# ---------------------------------------------------------------------------------------------- options
def parse_temperatures(value) -> list:
    """Temperatures in K from a number, a sequence or a comma-separated string (``"500,600,700"``).

    Raises
    ------
    OptionError
        Empty, not a number, not finite and positive, or repeated.
    """
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        parts = [value]
    else:
        try:
            parts = list(value)
        except TypeError:
            raise OptionError(f"--temperature must be a number or a comma-separated list of numbers in K; "
                              f"got {value!r}") from None
    out = []
    for p in parts:
        try:
            t = float(p)
        except (TypeError, ValueError):
            raise OptionError(f"--temperature must be a number or a comma-separated list of numbers in K; "
                              f"got {value!r} ({p!r} is not a number)") from None
        if isinstance(p, bool) or not (math.isfinite(t) and t > 0):
            raise OptionError(f"--temperature must be positive numbers in K; got {p!r} in {value!r}")
        out.append(t)
    if not out:
        raise OptionError("--temperature: no temperature given")
    if len({f"{t:g}" for t in out}) != len(out):
        raise OptionError(f"--temperature lists a temperature twice: {value!r}")
    return out


_WALL_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_wall_limit(value):
    """Wall-clock limit in seconds from a number (s) or a string with a unit: ``"90"``, ``"30m"``, ``"2h"``, ``"1d"``."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        sec = float(value)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(s|m|min|h|d)?\s*", str(value))
        if not m:
            raise OptionError(f"--wall-limit must be a duration: seconds, or a number with s, m, h or d "
                              f"(e.g. 90m, 2h); got {value!r}")
        sec = float(m.group(1)) * _WALL_UNITS[m.group(2) or ""]
    if not (math.isfinite(sec) and sec > 0):
        raise OptionError(f"--wall-limit must be a positive duration; got {value!r}")
    return sec


def _tlabel(T) -> str:
    return f"{float(T):g}"


def series_paths(out, temperatures, modes) -> dict:
    """Output file of every run: ``{(T, mode): path}`` (naming in the module docstring)."""
    out = os.fspath(out)
    temps = [float(t) for t in temperatures]
    if len(temps) == 1:
        return {(temps[0], m): p for m, p in output_paths(out, list(modes)).items()}
    stem, ext = os.path.splitext(out)
    return {(T, m): f"{stem}_{_tlabel(T)}K_{m}{ext or '.nc'}" for T in temps for m in modes}


def _start_dir(out, T, n_temps):
    out = os.fspath(out)
    if n_temps == 1:
        return _state_dir(out)
    stem, ext = os.path.splitext(out)
    return _state_dir(f"{stem}_{_tlabel(T)}K{ext or '.nc'}")


def series_index_path(out) -> str:
    """``dir/li2so4.nc`` → ``dir/li2so4.series.json``."""
    return os.path.splitext(os.fspath(out))[0] + INDEX_SUFFIX


@dataclass(frozen=True)
class Convergence:
    """When an adaptive run stops.

    Attributes
    ----------
    target : float
        Relative standard error of the cation D to reach (0 < target ≤ 1).
    segment : float, ps
        Production added per extension (the run's initial ``time``).
    time_limit : float or None, ps
        Longest production.
    wall_limit : float or None, s
        Wall-clock budget of the run's MD (equilibration included; summed over invocations, a killed
        segment's time excepted): no segment is started that is expected to end beyond it.
    cation : str or None
        Species whose D is checked (None: detected as in ``anionmotion report``).
    """

    target: float
    segment: float
    time_limit: float = None
    wall_limit: float = None
    cation: str = None

    def __post_init__(self):
        t = self.target
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (math.isfinite(t) and 0 < t <= 1):
            raise OptionError(f"--until-converged must be a relative error in (0, 1], e.g. 0.1 for 10 %; got {t!r}")
        if not (math.isfinite(self.segment) and self.segment > 0):
            raise OptionError(f"--until-converged needs a production --time > 0 ps (the length of each segment); "
                              f"got {self.segment!r}")
        if self.time_limit is None and self.wall_limit is None:
            raise OptionError("--until-converged needs a limit: --time-limit PS (longest production) and/or "
                              "--wall-limit DURATION (e.g. 2h)")
        if self.time_limit is not None:
            tl = self.time_limit
            if isinstance(tl, bool) or not isinstance(tl, (int, float)) or not math.isfinite(tl) or tl <= 0:
                raise OptionError(f"--time-limit must be a positive time in ps; got {tl!r}")
            if tl < self.segment - 1e-9:
                raise OptionError(f"--time-limit {tl:g} ps is shorter than the first segment (--time {self.segment:g} "
                                  "ps)")
        if self.wall_limit is not None:
            parse_wall_limit(self.wall_limit)

    def key(self) -> dict:
        return {"target_relative_error": float(self.target), "segment_ps": float(self.segment),
                "time_limit_ps": None if self.time_limit is None else float(self.time_limit),
                "wall_limit_s": None if self.wall_limit is None else float(self.wall_limit),
                "cation": self.cation}


# ---------------------------------------------------------------------------------------------- the D check
def cation_diffusion(path, *, cation=None, temperature=None, memory=None) -> dict:
    """Tracer D of the cation from a trajectory file, as ``anionmotion report`` computes it.

    All-origin MSD of the cation (:func:`anionmotion.msd`, default drift rule) and
    :func:`anionmotion.fit_diffusion` with its default (``auto``) estimator and window.

    Returns
    -------
    dict
        ``production_ps`` (longest lag), ``n_frames``, ``species``, ``D_cm2_s``, ``D_stderr_cm2_s``,
        ``relative_error`` (None when D is below measurable: then ``below_threshold`` and D is the bound),
        ``diffusive_regime_reached``, ``fit_window_ps``; or ``error`` (why no fit, e.g. too few frames).
    """
    import anionmotion
    from ..analysis.detect import detect_cation
    from ..units import A2_PS_TO_CM2_S

    with anionmotion.open(os.fspath(path)) as traj:
        cat = detect_cation(traj, cation)
        if cat.species is None:
            raise OptionError(f"{path}: {cat.reason}")
        T = temperature if temperature is not None else traj.metadata.get("temperature_K")
        n_frames = traj.n_frames
        try:
            res = anionmotion.msd(traj, species=cat.species, temperature=T, progress=False, memory=memory)
            fit = anionmotion.fit_diffusion(res, temperature=T, warn=False)
        except OptionError as err:
            return {"n_frames": int(n_frames), "species": cat.species, "D_cm2_s": None, "D_stderr_cm2_s": None,
                    "relative_error": None, "below_threshold": None, "error": str(err)}
    D = float(fit.D_A2_ps) * A2_PS_TO_CM2_S
    se = float(fit.D_stderr_A2_ps) * A2_PS_TO_CM2_S if fit.D_stderr_A2_ps is not None else None
    below = bool(fit.below_threshold)
    rel = None if below or se is None or not D > 0 or not math.isfinite(se) else se / D
    return {"production_ps": float(np.asarray(res.lag)[-1]), "n_frames": int(n_frames), "species": cat.species,
            "D_cm2_s": D, "D_stderr_cm2_s": None if below else se, "relative_error": rel, "below_threshold": below,
            "diffusive_regime_reached": getattr(fit, "diffusive_regime_reached", None),
            "fit_window_ps": [float(x) for x in fit.fit_window_ps] if getattr(fit, "fit_window_ps", None) is not None
            else None}


def _fmt_check(c):
    if c.get("error"):
        return f"no fit ({c['error']})"
    if c.get("below_threshold"):
        return f"D below measurable (< {c['D_cm2_s']:.3g} cm²/s)"
    rel = c.get("relative_error")
    return (f"D = {c['D_cm2_s']:.4g} ± {c['D_stderr_cm2_s']:.2g} cm²/s"
            + ("" if rel is None else f" (relative error {rel:.3g})"))


# ---------------------------------------------------------------------------------------------- one adaptive run
def _load(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _save(path, data):
    _atomic_write_bytes(path, json.dumps(to_jsonable(data), indent=1).encode())


def _conv_attrs(path):
    """(convergence dict or None, stopped_by or None) from a NetCDF output."""
    import netCDF4

    try:
        with netCDF4.Dataset(path) as ds:
            c = getattr(ds, "convergence", None)
            return (json.loads(c) if c else None), getattr(ds, "convergence_stopped_by", None)
    except (OSError, ValueError):
        return None, None


def _same_but_time(settings_json, s):
    try:
        a = json.loads(settings_json)
    except (TypeError, ValueError):
        return False
    b = json.loads(json.dumps(to_jsonable(asdict(s))))
    return {k: v for k, v in a.items() if k != "time"} == {k: v for k, v in b.items() if k != "time"}


def run_converging(mdsys, out, settings: RunSettings, conv: Convergence, *, start_dir=None, platform="CPU",
                   threads=None, overwrite=False, progress=None, checkpoint_every=200, verbose=True, memory=None,
                   _fail_after=None, _clock=_time.perf_counter):
    """Run one mode and extend it until the cation D has converged or a limit is hit (module docstring).

    Returns
    -------
    dict
        The constraint report of the final trajectory with ``convergence``: the settings (``target`` …),
        ``checks`` (one per segment: ``production_ps``, ``D_cm2_s``, ``D_stderr_cm2_s``,
        ``relative_error`` …, ``wall_s``), ``stopped_by`` (one of :data:`STOP_REASONS`) and
        ``production_ps``.
    """
    from .run import run_mode

    out = os.fspath(out)
    s0 = settings
    label = f"{s0.mode} {s0.temperature:g} K"
    log = (lambda msg: print(f"anionmotion md [{label}]: {msg}", file=sys.stderr)) if verbose else (lambda m: None)
    key = conv.key()
    sdir = _state_dir(out)
    log_path = os.path.join(sdir, "convergence.json")
    if overwrite:
        for p in (out, report_path(out)):
            if os.path.exists(p):
                os.unlink(p)
        shutil.rmtree(sdir, ignore_errors=True)
    if os.path.exists(out):
        done, stopped = _conv_attrs(out)
        complete, st = _read_complete(out)
        if stopped is not None:
            if complete == 1 and done and done.get("settings") == key and _same_but_time(st, s0):
                log(f"{out} has converged or stopped ({stopped}) with these settings; skipped")
                shutil.rmtree(sdir, ignore_errors=True)   # killed between the attribute and the clean-up
                return _load(report_path(out))
            raise OptionError(f"{out}: an adaptive run with other settings ended there ({stopped}); repeat its "
                              "command, or use --overwrite")
    state = _load(log_path) if os.path.exists(log_path) else None
    if state is not None and state.get("settings") != key:
        raise OptionError(f"{out}: an adaptive run with other --until-converged/--time-limit/--wall-limit/--cation "
                          f"settings is in progress ({log_path}); repeat its command, or use --overwrite")
    if state is None:
        state = {"settings": key, "production_ps": float(s0.time), "checks": [], "wall_s": 0.0, "stopped_by": None}
    T_lim = conv.time_limit
    while state["stopped_by"] is None:
        s = replace(s0, time=float(state["production_ps"]))
        t0 = _clock()
        run_mode(mdsys, out, s, start_dir=start_dir, platform=platform, threads=threads, overwrite=False,
                 progress=progress, checkpoint_every=checkpoint_every, verbose=verbose, keep_state=True, extend=True,
                 _fail_after=_fail_after)
        seg_s = _clock() - t0
        if not state["checks"] or abs(state["checks"][-1]["production_ps"] - s.time) > 1e-9:
            state["wall_s"] = float(state["wall_s"]) + seg_s
            c = cation_diffusion(out, cation=conv.cation, temperature=s.temperature, memory=memory)
            c["production_ps"] = float(s.time)
            c["segment_wall_s"] = round(seg_s, 3)
            c["wall_s"] = round(state["wall_s"], 3)
            state["checks"].append(c)
        c = state["checks"][-1]
        rel = c.get("relative_error")
        if rel is not None and rel <= conv.target:
            state["stopped_by"] = "converged"
        elif T_lim is not None and s.time >= T_lim - 1e-9:
            state["stopped_by"] = "time_limit"
        elif conv.wall_limit is not None and state["wall_s"] + c["segment_wall_s"] > conv.wall_limit:
            state["stopped_by"] = "wall_limit"
        else:
            nxt = s.time + conv.segment
            state["production_ps"] = float(min(nxt, T_lim) if T_lim is not None else nxt)
        then = {"converged": f"converged (target {conv.target:g})",
                "time_limit": f"stopped: production limit {T_lim:g} ps reached" if T_lim is not None else "",
                "wall_limit": (f"stopped: the next segment would end beyond the wall-clock limit "
                               f"{conv.wall_limit:g} s ({state['wall_s']:.1f} s used)") if conv.wall_limit else "",
                None: f"target {conv.target:g} not reached: extending to {state['production_ps']:g} ps"}
        log(f"check at {s.time:g} ps: {_fmt_check(c)} → {then[state['stopped_by']]}")
        _save(log_path, state)
    return _finish_converging(mdsys, out, state, log)


def _finish_converging(mdsys, out, state, log):
    """Write the convergence record into the NetCDF attributes and the constraint report; drop the state."""
    from ..io.netcdf_writer import NetCDFWriter

    rec = {"settings": state["settings"], "checks": state["checks"], "stopped_by": state["stopped_by"],
           "production_ps": state["production_ps"]}
    rp = report_path(out)      # the report first: the NetCDF attribute is what marks the run as finished
    rep = _load(rp)
    rep["convergence"] = rec
    write_json(rp, rep, overwrite=True)
    os.chmod(rp, 0o644)
    w = NetCDFWriter(out, mdsys.species, mode="a")
    try:
        w.set_attributes({"convergence": json.dumps(to_jsonable(rec)), "convergence_stopped_by": state["stopped_by"]})
        w.sync()
    finally:
        w.close()
    shutil.rmtree(_state_dir(out), ignore_errors=True)
    log(f"{out}: {state['stopped_by'].replace('_', ' ')} at {state['production_ps']:g} ps")
    return rep


# ---------------------------------------------------------------------------------------------- the series
def _build(mdsys):
    return mdsys() if callable(mdsys) else mdsys


def _run_task(spec, *_deps):
    """One run of the grid (a Dask task, or called in turn)."""
    from .run import run_mode

    mdsys = _build(spec["mdsys"])
    kw = spec["kw"]
    if spec["conv"] is not None:
        return run_converging(mdsys, spec["path"], spec["settings"], spec["conv"], start_dir=spec["start_dir"], **kw)
    kw = {k: v for k, v in kw.items() if k != "memory"}
    return run_mode(mdsys, spec["path"], spec["settings"], start_dir=spec["start_dir"], **kw)


def _start_task(spec):
    """The equilibrated UC start of one temperature, cached in its start folder (a Dask task)."""
    from ._openmm import need_openmm
    from .run import _start_state

    mdsys = _build(spec["mdsys"])
    _start_state(need_openmm(), mdsys, spec["settings"], spec["start_dir"], platform=spec["kw"]["platform"],
                 threads=spec["kw"]["threads"], progress=False, log=lambda m: None)
    return spec["start_dir"]


def _is_complete(path, s, conv):
    """Whether the run at ``path`` is complete with these settings (then it is skipped)."""
    if not os.path.exists(path) or not os.path.exists(report_path(path)):
        return False
    complete, st = _read_complete(path)
    if complete != 1:
        return False
    if conv is None:
        return st == json.dumps(to_jsonable(asdict(s))) and _conv_attrs(path)[1] is None
    done, stopped = _conv_attrs(path)
    return stopped is not None and done is not None and done.get("settings") == conv.key() and _same_but_time(st, s)


def run_series(mdsys, out, *, temperatures, mode="all", time=50.0, equilibrate=10.0, reequilibrate=5.0,
               timestep=1.0, frame_every=5, k_rot=K_ROT_DEFAULT, k_com=K_COM_DEFAULT, seed=1, thermostat="langevin",
               friction=1.0, minimize=True, platform="CPU", threads=None, overwrite=False, progress=None,
               checkpoint_every=200, verbose=True, until_converged=None, time_limit=None, wall_limit=None,
               cation=None, client=None, scheduler=None, workers=None, memory=None, rc_backend=RC_BACKEND_DEFAULT,
               builder=None):
    """Run the grid temperatures × modes (resumable; optionally on Dask), each run optionally adaptive.

    Parameters
    ----------
    mdsys : MDSystem or callable
        The system, or a function without arguments that builds it (what Dask workers call; an OpenMM
        System with Python forces cannot be pickled).
    out : str
        Output name; the files are named as in the module docstring.
    temperatures : float, sequence of float or str, K
        E.g. ``[500, 600, 700]`` or ``"500,600,700"``.
    mode : str or sequence of str
        ``"all"`` (UC, RC, RTC, RTVC), one mode, or a list.
    time : float, ps
        Production per run (with ``until_converged``: the first segment and the length of each extension).
    until_converged : float, optional
        Target relative standard error of the cation D (e.g. 0.1); needs ``time_limit`` and/or ``wall_limit``.
    time_limit : float, optional, ps
        Longest production of an adaptive run.
    wall_limit : float or str, optional
        Wall-clock budget of each adaptive run: seconds, or ``"90m"``, ``"2h"`` …
    cation : str, optional
        Species whose D is checked (default: detected as in ``anionmotion report``).
    client : distributed.Client, optional
        Run on this Dask client.
    scheduler : str, optional
        Address of a Dask scheduler, or ``"local"`` for a new ``LocalCluster`` of ``workers`` processes.
    workers : int, optional
        LocalCluster workers (default 2, one thread each).
    memory : str or int, optional
        Memory budget of the D check's MSD.
    builder : callable, optional
        Function without arguments that builds ``mdsys`` again: what Dask workers call instead of receiving
        the pickled system (an OpenMM System with Python forces cannot be pickled).
    Other parameters are those of :func:`~anionmotion.md.run.run_md`.

    Returns
    -------
    dict
        ``runs`` (one dict per run in grid order: ``temperature_K``, ``mode``, ``path``, ``status``
        ``computed``/``skipped``, ``report`` (the constraint report, with ``convergence`` for adaptive runs))
        and ``index`` (path of the series index, also written).
    """
    temps = parse_temperatures(temperatures)
    if isinstance(mode, str):
        modes = list(MODES) if mode.lower() == "all" else [check_mode(mode.upper())]
    else:
        modes = [check_mode(str(m).upper()) for m in mode]
        if len(set(modes)) != len(modes) or not modes:
            raise OptionError(f"modes must be distinct constraint modes; got {mode!r}")
    conv = None
    if until_converged is not None:
        conv = Convergence(target=until_converged, segment=float(time), time_limit=time_limit,
                           wall_limit=parse_wall_limit(wall_limit), cation=cation)
    elif time_limit is not None or wall_limit is not None or cation is not None:
        raise OptionError("--time-limit, --wall-limit and --cation only apply with --until-converged REL_ERR")
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, (int, np.integer)) \
            or checkpoint_every < 1:
        raise OptionError(f"checkpoint_every must be a positive number of frames; got {checkpoint_every!r}")
    paths = series_paths(out, temps, modes)
    for p in paths.values():
        check_output(p, overwrite=True)
    idx_path = series_index_path(out)
    check_output(idx_path, overwrite=True)
    system = _build(mdsys)
    check_box(system)
    if conv is not None:          # the cation must exist before hours of MD are spent
        from ..elements import MOBILE_CATIONS, normalize_symbol   # the rule of analysis.detect.detect_cation

        present = set(str(x) for x in system.species)
        if cation is not None and normalize_symbol(cation) not in present:
            raise OptionError(f"--cation {cation}: no such species in the system (species present: "
                              f"{', '.join(sorted(present))})")
        if cation is None and not any(c in present and c != "H" for c in MOBILE_CATIONS):
            raise OptionError("--until-converged: no mobile cation in the system to check D of; give --cation")
    settings = {(T, m): RunSettings(mode=m, temperature=float(T), time=float(time), equilibrate=float(equilibrate),
                                    reequilibrate=float(reequilibrate), timestep=float(timestep),
                                    frame_every=int(frame_every), k_rot=float(k_rot), k_com=float(k_com),
                                    seed=int(seed), thermostat=thermostat, friction=float(friction),
                                    minimize=bool(minimize), rc_backend=rc_backend)
                for T in temps for m in modes}
    kw = dict(platform=platform, threads=threads, overwrite=overwrite, progress=progress,
              checkpoint_every=checkpoint_every, verbose=verbose, memory=memory)
    say = (lambda msg: print(f"anionmotion md: {msg}", file=sys.stderr)) if verbose else (lambda m: None)
    specs, results = [], {}
    for (T, m), p in paths.items():
        s = settings[(T, m)]
        if not overwrite and _is_complete(p, s, conv):
            say(f"{p} is complete with these settings; skipped")
            results[(T, m)] = {"status": "skipped", "report": _load(report_path(p))}
            continue
        specs.append({"key": (T, m), "path": p, "settings": s, "conv": conv, "kw": kw,
                      "start_dir": _start_dir(out, T, len(temps)),
                      "mdsys": builder if builder is not None else (mdsys if callable(mdsys) else system)})
    if not specs:
        say(f"all {len(paths)} run(s) are complete with these settings; nothing to run")
    if client is not None or scheduler is not None:
        _run_on_dask(specs, results, client=client, scheduler=scheduler, workers=workers, say=say)
    else:
        for sp in specs:
            sp = dict(sp, mdsys=system)
            results[sp["key"]] = {"status": "computed", "report": _run_task(sp)}
    for T in temps:       # every mode of T complete: its equilibrated start is done with
        shutil.rmtree(_start_dir(out, T, len(temps)), ignore_errors=True)
    runs = []
    for (T, m), p in paths.items():
        r = results[(T, m)]
        runs.append({"temperature_K": T, "mode": m, "path": p, "status": r["status"], "report": r["report"]})
    index = _write_index(idx_path, out, system, temps, modes, settings, conv, runs)
    return {"runs": runs, "index": index}


def _run_on_dask(specs, results, *, client, scheduler, workers, say):
    import uuid

    from ..report.batch import dask_client, need_distributed

    distributed = need_distributed()
    with dask_client(client, scheduler, workers) as client:
        token = uuid.uuid4().hex[:12]
        starts = {}
        for sp in specs:
            if sp["start_dir"] not in starts:   # cached: a resumed series finds it (removed only when T is done)
                starts[sp["start_dir"]] = client.submit(_start_task, sp, pure=False,
                                                        key=f"anionmotion-md-start-{token}-{len(starts)}")
        futs = {}
        for i, sp in enumerate(specs):
            dep = starts.get(sp["start_dir"])
            args = (sp,) if dep is None else (sp, dep)
            T, m = sp["key"]
            futs[client.submit(_run_task, *args, pure=False, key=f"anionmotion-md-{token}-{i}-{T:g}K-{m}")] = sp["key"]
        for fut in distributed.as_completed(list(futs)):
            k = futs[fut]
            results[k] = {"status": "computed", "report": fut.result()}   # a failed run raises here
            say(f"{k[0]:g} K {k[1]}: done")


def _write_index(idx_path, out, system, temps, modes, settings, conv, runs):
    base = os.path.dirname(os.path.abspath(idx_path))
    first = next(iter(settings.values()))
    common = {k: v for k, v in asdict(first).items() if k not in ("mode", "temperature")}
    entries = []
    for r in runs:
        rep = r["report"] or {}
        c = rep.get("convergence") or {}
        last = (c.get("checks") or [None])[-1] or {}
        entries.append({"temperature_K": r["temperature_K"], "mode": r["mode"],
                        "path": os.path.relpath(os.path.abspath(r["path"]), base),
                        "constraints": os.path.relpath(os.path.abspath(report_path(r["path"])), base),
                        "n_frames": rep.get("n_frames"), "production_ps": c.get("production_ps", first.time),
                        "stopped_by": c.get("stopped_by"), "D_cm2_s": last.get("D_cm2_s"),
                        "D_stderr_cm2_s": last.get("D_stderr_cm2_s"), "relative_error": last.get("relative_error")})
    data = {"anionmotion_md_series": 1, "out": os.path.basename(os.fspath(out)), "system": system.name,
            "system_description": system.description, "system_parameters": system.parameters,
            "temperatures_K": temps, "modes": modes, "settings": common,
            "until_converged": None if conv is None else conv.key(),
            "naming": ("<stem>_<T>K_<MODE><ext>" if len(temps) > 1 else
                       ("<out>" if len(modes) == 1 else "<stem>_<MODE><ext>")),
            "runs": entries}
    write_json(idx_path, data, overwrite=True)
    return idx_path


# ---------------------------------------------------------------------------------------------- command line
def series_requested(args, temperatures) -> bool:
    """Whether ``anionmotion md`` runs a series (several temperatures, an adaptive length, or on Dask)."""
    return (len(temperatures) > 1 or any(getattr(args, k, None) is not None for k in
                                         ("until_converged", "time_limit", "wall_limit", "cation", "scheduler")))


def run_from_args(args, mdsys, system_fn, *, k_rot, k_com, progress, nve_ps=None) -> int:
    """``anionmotion md`` (and ``anionmotion batch md``) for a series: run it and print one line per run.

    As for a single run, every run's constraints JSON then gets the anion list, the potential and (``nve_ps``
    > 0) the NVE energy drift (:func:`anionmotion.md.structure.annotate_reports`).
    """
    import functools

    from .structure import annotate_reports, format_anions

    print(f"anionmotion md: {mdsys.description}\n{format_anions(mdsys)}", file=sys.stderr)
    scheduler = getattr(args, "scheduler", None)
    res = run_series(mdsys, args.out, temperatures=args.temperature,
                     mode="all" if str(args.mode).lower() == "all" else str(args.mode).upper(), time=args.time,
                     equilibrate=args.equilibrate, reequilibrate=args.reequilibrate, timestep=args.timestep,
                     frame_every=args.frame_every, k_rot=k_rot, k_com=k_com, seed=args.seed,
                     thermostat=args.thermostat.lower(), friction=args.friction, minimize=not args.no_minimize,
                     platform=args.platform, threads=args.threads, overwrite=args.overwrite, progress=progress,
                     checkpoint_every=args.checkpoint_every, until_converged=args.until_converged,
                     time_limit=args.time_limit, wall_limit=args.wall_limit, cation=args.cation,
                     scheduler=scheduler, workers=getattr(args, "workers", None),
                     rc_backend=getattr(args, "rc_backend", RC_BACKEND_DEFAULT),
                     builder=functools.partial(system_fn, args) if scheduler is not None else None)
    runs = res["runs"]
    by_T = {}
    for r in runs:
        by_T.setdefault(r["temperature_K"], {})[r["mode"]] = r
    for group in by_T.values():   # reports updated in place (skipped runs annotated before are left alone)
        annotate_reports(mdsys, {m: r["report"] for m, r in group.items()}, {m: r["path"] for m, r in group.items()},
                         nve_ps=nve_ps, timestep=args.timestep, k_rot=k_rot, k_com=k_com, platform=args.platform,
                         threads=args.threads, rc_backend=getattr(args, "rc_backend", RC_BACKEND_DEFAULT))
    n_done = sum(r["status"] == "computed" for r in runs)
    print(f"series: {len(runs)} run(s), {n_done} computed, {len(runs) - n_done} already complete (skipped)")
    for r in runs:
        rep = r["report"] or {}
        line = f"  {r['temperature_K']:g} K {r['mode']:<4} {r['path']} ({rep.get('n_frames', '?')} frames)"
        c = rep.get("convergence")
        if c:
            last = c["checks"][-1] if c["checks"] else {}
            line += f": {c['stopped_by'].replace('_', ' ')} at {c['production_ps']:g} ps, {_fmt_check(last)}"
        print(line)
    print(f"index: {res['index']}  (next: anionmotion compare {res['index']} --out <folder>)")
    return 0
