"""``run_report``: every applicable analysis of one trajectory, written to one folder.

Output folder layout::

    report.html        self-contained (figures as base64 PNG), opens offline
    report.md          the same content as Markdown, figures referenced under figures/
    report.json        every number, every parameter and default, version, input sha256
    figures/*.png      one figure per analysis (units on the axes)
    *.csv              the curves behind the figures (MSD, C1/C2, VDOS, g(r) …)
    density.*          the cation density grid (CHGCAR, cube, NetCDF) when available
    .anionmotion-complete.json   completion marker, written LAST (not when a stage failed)
    .anionmotion-stages/*.json   one record per finished stage (a killed report resumes from them)
    .anionmotion-lock            lock file: one report at a time writes the folder

Re-running on a folder that holds a complete report of the same input (same
sha256) with the same parameters and anionmotion version does nothing and says
so; a folder left by a killed (or failed) report of the same input and parameters is resumed: the stages
it finished are read back, the others run.  Any other non-empty folder is refused unless
``overwrite=True``, which first removes the files the previous report listed in its marker and stage
records (and nothing else).  While a report writes a folder it holds an exclusive lock on it
(``fcntl.flock`` on ``.anionmotion-lock``); a second report into the same folder is refused.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import shutil

import numpy as np

from .._version import __version__
from ..errors import OptionError
from ..results import make_output_folder, to_jsonable, write_json, write_text_atomic
from ..analysis.detect import detect_cation, detect_polyanions
from .render import render_html, render_markdown
from .stages import STAGES, ReportContext, run_stage

__all__ = ["run_report", "file_sha256", "MARKER", "report_status", "OPTION_DEFAULTS", "comparable", "LOCK", "STAGE_DIR",
           "ReportFailed", "raise_if_failed"]

MARKER = ".anionmotion-complete.json"
#: lock file of a report folder (``fcntl.flock``; holds the pid of the report that writes the folder)
LOCK = ".anionmotion-lock"
#: per-stage completion records (``<stage>.json``): a killed report resumes from them
STAGE_DIR = ".anionmotion-stages"
#: files of a report folder that are not report output (ignored when deciding whether the folder is empty)
_BOOKKEEPING = (LOCK, STAGE_DIR)


class ReportFailed(OptionError):
    """A report stage failed (bad input); the folder holds the partial report but no completion marker.

    :func:`run_report` returns such a report with ``complete`` False and the message in ``error``;
    :func:`raise_if_failed` (what the command line does) raises this error with it.  ``report`` is the
    report dict.
    """

    report = None


def raise_if_failed(report):
    """Raise :class:`ReportFailed` (the report's ``error``) when a stage of ``report`` failed; else return it."""
    if report.get("complete") is False:
        err = ReportFailed(report.get("error") or "report stage(s) failed")
        err.report = report
        raise err
    return report

#: report options and their defaults (None: the analysis's own default, recorded in its result ``meta``)
OPTION_DEFAULTS = {
    "lag_min": None,            # ps, start of the diffusion fit window
    "lag_max": None,            # ps, end of the diffusion fit window
    "charge": None,             # e, cation charge for Nernst–Einstein (element table)
    "hop_distance": None,       # Å, hop distance a (SPEC §3)
    "rotation_threshold_deg": None,
    "shell_radius": None,       # Å, first-shell radius for residence events (SPEC §5)
    "grid_spacing": 0.3,        # Å, density grid spacing (report default: coarser than the analysis's 0.2 Å so the
                                #   grid files stay a few MB; VESTA shows the same channels)
    "r_max": None,              # Å, g(r) range
    "max_freq": None,
    "polyanion_cutoff": None,   # Å, centre–ligand cutoff (default: the analysis's automatic gap)
    "msd_block_atoms": None,    # atoms per MSD block (tasks of their own in a batch); None = one selection           # THz, highest VDOS frequency (default Nyquist)
}


def file_sha256(path, block=1 << 20, progress=False) -> str:
    """SHA-256 of a file, read in blocks of ``block`` bytes (streams; constant memory).

    ``progress`` shows a bar in bytes (a 12 GB trajectory takes ~20 s to hash).
    """
    from ..analysis.base import progress_bar

    h = hashlib.sha256()
    bar = progress_bar(os.path.getsize(path), progress, "report: checksum of the input", unit="B")
    try:
        with open(path, "rb") as fh:
            while True:
                buf = fh.read(block)
                if not buf:
                    break
                h.update(buf)
                bar.update(len(buf))
    finally:
        bar.close()
    return h.hexdigest()


def _input_info(traj, reader_options, path_for_hash, progress=False):
    path = traj.path
    info = {"path": str(path), "name": os.path.basename(str(path)), "format": traj.format,
            "reader_options": {k: v for k, v in (reader_options or {}).items() if v is not None}}
    p = path_for_hash if path_for_hash is not None else path
    if p is not None and os.path.isfile(str(p)):
        info["sha256"] = file_sha256(p, progress=progress)
        info["size_bytes"] = os.path.getsize(p)
    else:
        info["sha256"] = None
        info["size_bytes"] = None
        info["note"] = "in-memory trajectory: no file checksum"
    return info


def _trajectory_info(traj):
    times = traj.times
    return {"format": traj.format, "n_atoms": traj.n_atoms, "n_frames": traj.n_frames,
            "species": traj.species_counts(), "span_ps": float(times[-1] - times[0]) if len(times) else 0.0,
            "dt_ps": float(traj.dt) if traj.n_frames > 1 else 0.0, "uniform": bool(traj.is_uniform),
            "velocities": bool(traj.has_velocities), "volume_A3": float(traj.volume),
            "coordinates": traj.coord_style, "metadata": to_jsonable(traj.metadata)}


def _temperature(traj, temperature):
    if temperature is not None:
        t = float(temperature)
        if not np.isfinite(t) or t <= 0:
            raise OptionError(f"--temperature must be a positive temperature in K; got {temperature}")
        return t, "given"
    for key in ("temperature_K", "temperature"):
        v = traj.metadata.get(key)
        if v is not None:
            try:
                t = float(np.asarray(v).ravel()[0])
            except (TypeError, ValueError, IndexError):
                continue
            if np.isfinite(t) and t > 0:
                return t, f"trajectory metadata '{key}'"
    return None, "not given"


def _params_key(params, input_info) -> str:
    blob = json.dumps({"params": to_jsonable(params), "sha256": input_info.get("sha256"),
                       "reader_options": to_jsonable(input_info.get("reader_options")), "version": __version__},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def report_status(out_dir):
    """The completion marker of ``out_dir`` as a dict, or None when the folder holds no complete report."""
    path = os.path.join(out_dir, MARKER)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            marker = json.load(fh)
    except (OSError, ValueError):
        return None
    if not all(os.path.exists(os.path.join(out_dir, f)) for f in marker.get("files", [])):
        return None
    return marker


def _content(out_dir):
    return [f for f in os.listdir(out_dir) if f not in _BOOKKEEPING]


def _stage_records(out_dir, key=None):
    """{stage name: record} of the finished stages recorded in ``out_dir`` (only those of ``key`` when given)
    whose files are all present."""
    d = os.path.join(out_dir, STAGE_DIR)
    out = {}
    if not os.path.isdir(d):
        return out
    for f in sorted(os.listdir(d)):
        if not f.endswith(".json"):
            continue
        try:
            with open(os.path.join(d, f), encoding="utf-8") as fh:
                rec = json.load(fh)
        except (OSError, ValueError):
            continue
        if not isinstance(rec, dict) or "name" not in rec:
            continue
        if key is not None and rec.get("key") != key:
            continue
        if all(os.path.exists(os.path.join(out_dir, x)) for x in rec.get("files", [])):
            out[rec["name"]] = rec
    return out


def _remove_listed(out_dir, files):
    for f in files:
        p = os.path.join(out_dir, f)
        if os.path.isfile(p):
            os.unlink(p)


def _prepare_out_dir(out_dir, key, overwrite):
    """``"done"`` when ``out_dir`` already holds this exact report (nothing to do), ``"resume"`` when it holds
    finished stages of it (a killed or failed run), else ``"new"`` (the folder is empty or was cleared)."""
    if os.path.isdir(out_dir) and _content(out_dir):
        marker = report_status(out_dir)
        if marker is not None and marker.get("key") == key and overwrite in (False, "stale"):
            return "done"
        if marker is None and overwrite in (False, "stale") and _stage_records(out_dir, key):
            return "resume"
        if not overwrite:
            why = ("holds a report of another input or with other parameters" if marker is not None
                   else "is not empty and holds no complete report (nor finished stages of this one)")
            raise OptionError(f"{out_dir}: output folder {why}; refusing to overwrite it "
                              "(use --overwrite, or choose another --out)")
        old = marker
        if old is None:
            try:
                with open(os.path.join(out_dir, MARKER), encoding="utf-8") as fh:
                    old = json.load(fh)
            except (OSError, ValueError):
                old = None
        if os.path.exists(os.path.join(out_dir, MARKER)):
            os.unlink(os.path.join(out_dir, MARKER))
        _remove_listed(out_dir, (old or {}).get("files", []))
        for rec in _stage_records(out_dir).values():
            _remove_listed(out_dir, rec.get("files", []))
        _remove_listed(out_dir, ("report.json", "report.md", "report.html"))
        sd = os.path.join(out_dir, STAGE_DIR)
        if os.path.isdir(sd):
            shutil.rmtree(sd)
        figdir = os.path.join(out_dir, "figures")
        if os.path.isdir(figdir) and not os.listdir(figdir):
            shutil.rmtree(figdir)
    make_output_folder(out_dir)
    return "new"


class _FolderLock:
    """Exclusive ``fcntl.flock`` on ``out_dir/.anionmotion-lock`` (released on close or process exit)."""

    def __init__(self, out_dir):
        import fcntl

        self.path = os.path.join(out_dir, LOCK)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                pid = os.pread(self.fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            except OSError:  # pragma: no cover
                pid = "unknown"
            os.close(self.fd)
            self.fd = None
            raise OptionError(f"{out_dir}: folder is in use by another report (pid {pid}); wait for it to finish "
                              "or choose another --out") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def close(self):
        if self.fd is not None:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _check_options(options):
    """Reject report options that no stage could use (before any work): lengths and frequencies > 0 …"""
    for k in ("hop_distance", "shell_radius", "grid_spacing", "r_max", "max_freq", "polyanion_cutoff",
              "rotation_threshold_deg", "charge"):
        v = options.get(k)
        if v is None:
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise OptionError(f"report option {k} must be a number; got {v!r}") from None
        if not (np.isfinite(f) and (f > 0 if k != "charge" else f != 0)):
            flag = "--" + k.replace("_", "-").replace("-deg", "")
            raise OptionError(f"report option {k} ({flag}) must be a finite {'non-zero' if k == 'charge' else 'positive'} "
                              f"number; got {v!r}")
    lo, hi = options.get("lag_min"), options.get("lag_max")
    for k, v in (("lag_min", lo), ("lag_max", hi)):
        if v is not None and not (np.isfinite(float(v)) and float(v) >= 0):
            raise OptionError(f"report option {k} (--{k.replace('_', '-')}) must be a time ≥ 0 ps; got {v!r}")
    if lo is not None and hi is not None and not float(lo) < float(hi):
        raise OptionError(f"the diffusion fit window needs lag_min < lag_max (--lag-min, --lag-max); got {lo} and {hi}")
    blk = options.get("msd_block_atoms")
    if blk is not None and (int(blk) != blk or int(blk) < 1):
        raise OptionError(f"report option msd_block_atoms must be a positive integer; got {blk!r}")


#: stage results that later stages read from ``ReportContext.results`` (the others are dropped after their stage)
RESULTS_USED_LATER = ("polyanions", "hops")


def _write_csv(path, header, table):
    """Write a stage table straight into its (temporary, then renamed) file: no text copy of it in memory."""
    from ..results import atomic_output

    with atomic_output(path, overwrite=True) as fh:
        np.savetxt(fh, np.asarray(table, dtype=np.float64), delimiter=",", header=",".join(header), comments="",
                   fmt="%.10g")


#: keys whose values describe the machine or the run time, not the result (left out by :func:`comparable`)
_ENVIRONMENT_KEYS = ("seconds", "created_utc", "timing", "memory_budget_bytes", "memory_bytes", "available_memory_bytes",
                     "memory", "memory_budget_source", "memory_estimate_bytes", "frames_per_chunk", "atoms_per_block",
                     "h_kept")


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in _ENVIRONMENT_KEYS}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def comparable(report: dict) -> dict:
    """The part of a report that must be identical between runs.

    Leaves out timings, the creation time and the memory budgets the analyses derived from the
    machine's free memory (keys of ``_ENVIRONMENT_KEYS``, at any depth); every number stays.
    """
    return _strip({k: v for k, v in report.items() if k != "up_to_date"})


def run_report(traj, out_dir, *, cation=None, center=None, ligand=None, temperature=None, stages=None,
               options=None, figures=True, overwrite=False, progress=None, reader_options=None,
               input_path=None, labels=None, mapper=None, source=None, memory=None, extend=None) -> dict:
    """Run every applicable analysis on ``traj`` and write the report folder ``out_dir``.

    Parameters
    ----------
    traj : Trajectory
        From :func:`anionmotion.open` or :func:`anionmotion.from_arrays`.
    out_dir : str or path
        Output folder (created).  See the module docstring for its content and the
        overwrite/resume rules.
    cation : str, optional
        Mobile cation; detected when None (first of ``anionmotion.elements.MOBILE_CATIONS`` present).
    center, ligand : str, optional
        Polyanion centre and ligand species; detected when both are None.
    temperature : float, optional
        K; else taken from the trajectory metadata (``temperature_K``), else conductivity and
        F(r) are left out with a note.
    stages : sequence of str, optional
        Names of the stages to run (default: all, see :data:`anionmotion.report.stages.STAGES`).
        Stages not selected are listed as skipped "not requested".
    options : dict, optional
        Analysis options, keys of :data:`OPTION_DEFAULTS`; None values use the analysis default.
    figures : bool
        Draw figures (needs matplotlib; when missing, each stage says so).
    overwrite : bool or "stale"
        Replace a previous report in ``out_dir``; ``"stale"`` keeps a complete report of the same input
        and parameters and replaces anything else (what ``anionmotion batch`` does).
    progress : bool, optional
        Progress bars (default: on a terminal).
    reader_options : dict, optional
        Reader options used to open ``traj`` (recorded in ``report.json``).
    input_path : str, optional
        File whose SHA-256 is recorded (default ``traj.path``).
    labels : dict, optional
        Extra labels recorded in ``report.json["labels"]`` (e.g. ``{"mode": "RC"}`` from a batch manifest).
    mapper : callable, optional
        ``mapper(function, list) -> list`` running the MSD atom blocks (``options["msd_block_atoms"]``);
        default the built-in ``map`` (the batch passes one that submits Dask tasks).  The numbers do not
        depend on it.
    source : (str, dict), optional
        Trajectory path and reader options that block tasks use to open the file themselves.
    memory : int or str, optional
        Memory budget handed to every analysis (``"2GB"``; default: each analysis's default, half of
        the available RAM).  The results do not depend on it, so it is not part of the resume key.
    extend : callable, optional
        ``extend(report, out_dir, progress=, memory=) -> (files, {relative name: PNG bytes})``, called with
        the finished report before it is written; it may add sections (``report --example`` adds the UC/RC
        comparison, :func:`anionmotion._example.compare_example_modes`).  Its name is part of the resume key.

    Returns
    -------
    dict
        The report (what ``report.json`` holds) with ``"up_to_date": True`` when the folder
        already held this exact report and nothing was recomputed, and ``"complete": False`` (with the
        reasons in ``"error"``; also in ``report.json``) when a stage failed — the folder then has no completion marker and the
        same call resumes it (:func:`raise_if_failed` turns that into a :class:`ReportFailed`).
    """
    out_dir = os.fspath(out_dir)
    options = dict(options or {})
    unknown = set(options) - set(OPTION_DEFAULTS)
    if unknown:
        raise OptionError(f"unknown report option(s) {', '.join(sorted(unknown))}; "
                          f"valid: {', '.join(OPTION_DEFAULTS)}")
    options = {k: (options[k] if options.get(k) is not None else default) for k, default in OPTION_DEFAULTS.items()}
    names = [s.name for s in STAGES]
    if overwrite not in (False, True, "stale"):
        raise OptionError(f"overwrite must be False, True or 'stale'; got {overwrite!r}")
    if stages is not None:
        bad = [s for s in stages if s not in names]
        if bad:
            raise OptionError(f"unknown stage(s) {', '.join(bad)}; choose from {', '.join(names)}")
    _check_options(options)
    temperature_K, t_source = _temperature(traj, temperature)
    make_output_folder(out_dir)          # a typo such as /nonexistent/x is refused before hashing the input
    lock = _FolderLock(out_dir)
    try:
        return _run_locked(traj, out_dir, lock, cation=cation, center=center, ligand=ligand, temperature=temperature,
                           stages=stages, options=options, figures=figures, overwrite=overwrite, progress=progress,
                           reader_options=reader_options, input_path=input_path, labels=labels, mapper=mapper,
                           source=source, memory=memory, extend=extend, temperature_K=temperature_K,
                           t_source=t_source)
    finally:
        lock.close()


def _run_locked(traj, out_dir, lock, *, cation, center, ligand, temperature, stages, options, figures, overwrite,
                progress, reader_options, input_path, labels, mapper, source, memory, extend, temperature_K,
                t_source):
    input_info = _input_info(traj, reader_options, input_path, progress)
    params = {"cation": cation, "center": center, "ligand": ligand, "temperature_K": temperature,
              "stages": list(stages) if stages is not None else "all", "figures": bool(figures),
              "labels": labels or {}, **options}
    if extend is not None:
        params["extension"] = f"{extend.__module__}.{extend.__qualname__}"
    key = _params_key(params, input_info)
    state = _prepare_out_dir(out_dir, key, overwrite)
    if state == "done":
        with open(os.path.join(out_dir, "report.json"), encoding="utf-8") as fh:
            rep = json.load(fh)
        rep["up_to_date"] = True
        return rep
    done = _stage_records(out_dir, key) if state == "resume" else {}

    cat = detect_cation(traj, cation)
    poly = detect_polyanions(traj, cation=cat.species, center=center, ligand=ligand)
    if memory is not None:
        from .._validate import parse_memory

        memory = parse_memory(memory)
    ctx = ReportContext(traj, cat, poly, temperature_K, options, progress, mapper=mapper, source=source,
                        figures=bool(figures), memory=memory)
    written, figs_png = [], {}
    analyses = {}
    names_run = [s.name for s in STAGES]
    bar = _stage_bar(len(STAGES), progress)
    try:
        for k, stage in enumerate(STAGES):
            if bar is not None:
                bar.set_description(f"report: {stage.name}")
            rec = done.get(stage.name)
            # a finished stage is read back, unless a later stage that still has to run needs its result object
            needed_later = stage.name in RESULTS_USED_LATER and any(n not in done for n in names_run[k + 1:])
            if rec is not None and not needed_later:
                entry = rec["entry"]
                analyses[stage.name] = entry
                written += rec.get("files", [])
                for fig in entry.get("figures", []):
                    with open(os.path.join(out_dir, fig["file"]), "rb") as fh:
                        figs_png[fig["file"]] = fh.read()
                if bar is not None:
                    bar.update(1)
                continue
            n_written = len(written)
            if stages is not None and stage.name not in stages:
                from .stages import StageOutput

                res = StageOutput(stage.name, stage.title, "skipped", "not requested (--stages)")
            else:
                res = run_stage(stage, ctx, out_dir)
            entry = res.to_dict()
            entry["seconds"] = round(res.seconds, 3)
            entry["meta"] = to_jsonable((res.result or {}).get("meta")) if isinstance(res.result, dict) else None
            entry["figures"], entry["tables"], entry["files"] = [], [], list(res.files)
            written += res.files
            for fname, header, table in res.tables:
                _write_csv(os.path.join(out_dir, fname), header, table)
                entry["tables"].append(fname)
                written.append(fname)
            for stem, fig, caption in res.figures:
                rel = f"figures/{stem}.png"
                if figures:
                    buf = io.BytesIO()
                    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
                    png = buf.getvalue()
                    os.makedirs(os.path.join(out_dir, "figures"), exist_ok=True)
                    with open(os.path.join(out_dir, rel), "wb") as fh:
                        fh.write(png)
                    figs_png[rel] = png
                    entry["figures"].append({"file": rel, "caption": caption})
                    written.append(rel)
                _close(fig)
            analyses[stage.name] = entry
            if entry["status"] != "failed":
                _write_stage_record(out_dir, key, stage.name, entry, written[n_written:])
            del res
            # later stages use only the polyanions and the hop events: let every other result (its per-lag and
            # per-frame arrays) go, so the report's memory does not add up over the stages
            for name in [k for k in ctx.results if k not in RESULTS_USED_LATER]:
                del ctx.results[name]
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()

    report = {
        "anionmotion_version": __version__,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "input": input_info,
        "trajectory": _trajectory_info(traj),
        "temperature_K": temperature_K,
        "temperature_source": t_source,
        "labels": to_jsonable(labels or {}),
        "constraint_mode": (labels or {}).get("mode") or traj.metadata.get("constraint_mode"),
        "detected": {"cation": to_jsonable(cat), "polyanions": to_jsonable(poly)},
        "parameters": to_jsonable(params),
        "stages": [s.name for s in STAGES],
        "analyses": to_jsonable(analyses),
        "timing": {name: a["seconds"] for name, a in analyses.items()},
    }
    if extend is not None:
        ext_files, ext_figures = extend(report, out_dir, progress=progress, memory=memory)
        written += list(ext_files)
        figs_png.update(ext_figures)
    failed = {n: a["reason"] for n, a in analyses.items() if a["status"] == "failed"}
    if failed:   # recorded in report.json too; no completion marker: a rerun redoes the failed stages only
        report["complete"] = False
        report["error"] = (f"{out_dir}: report stage(s) failed: " + "; ".join(f"{n}: {r}" for n, r in failed.items())
                           + " (the finished stages are kept: fix the input or options and rerun the same command)")
    write_json(os.path.join(out_dir, "report.json"), report, overwrite=True)
    write_text_atomic(os.path.join(out_dir, "report.md"), render_markdown(report), overwrite=True)
    write_text_atomic(os.path.join(out_dir, "report.html"), render_html(report, figs_png), overwrite=True)
    written += ["report.json", "report.md", "report.html"]
    report["up_to_date"] = False
    if failed:
        _make_readable(out_dir, written)
        return report
    write_json(os.path.join(out_dir, MARKER), {"key": key, "sha256": input_info.get("sha256"),
                                               "anionmotion_version": __version__, "files": written},
               overwrite=True)
    _make_readable(out_dir, written + [MARKER])
    return report


def _write_stage_record(out_dir, key, name, entry, files):
    """Record a finished stage (its report entry and files) so that a killed report can resume after it."""
    d = os.path.join(out_dir, STAGE_DIR)
    os.makedirs(d, exist_ok=True)
    write_json(os.path.join(d, f"{name}.json"), {"name": name, "key": key, "entry": entry, "files": list(files)},
               overwrite=True)


def _make_readable(out_dir, files):
    """Give the report files the usual permissions (temporary files are created 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    for f in files:
        p = os.path.join(out_dir, f)
        if os.path.isfile(p):
            os.chmod(p, 0o666 & ~umask)


def _close(fig):
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except ImportError:  # pragma: no cover
        pass


def _stage_bar(n, progress):
    if progress is False:
        return None
    import sys

    if progress is None and not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=n, unit="stage", desc="report", leave=True)
