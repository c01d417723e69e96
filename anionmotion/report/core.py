"""``run_report``: every applicable analysis of one trajectory, written to one folder.

Output folder layout::

    report.html        self-contained (figures as base64 PNG), opens offline
    report.md          the same content as Markdown, figures referenced under figures/
    report.json        every number, every parameter and default, version, input sha256
    figures/*.png      one figure per analysis (units on the axes)
    *.csv              the curves behind the figures (MSD, C1/C2, VDOS, g(r) …)
    density.*          the cation density grid (CHGCAR, cube, NetCDF) when available
    .anionmotion-complete.json   completion marker, written LAST

Re-running on a folder that holds a complete report of the same input (same
sha256) with the same parameters and anionmotion version does nothing and says
so; any other non-empty folder is refused unless ``overwrite=True``, which first
removes the files the previous report listed in its marker (and nothing else).
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
from ..results import to_jsonable, write_json, write_text_atomic
from ..analysis.detect import detect_cation, detect_polyanions
from .render import render_html, render_markdown
from .stages import STAGES, ReportContext, run_stage

__all__ = ["run_report", "file_sha256", "MARKER", "report_status", "OPTION_DEFAULTS", "comparable"]

MARKER = ".anionmotion-complete.json"

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


def _prepare_out_dir(out_dir, key, overwrite):
    """Return True when ``out_dir`` already holds this exact report (nothing to do)."""
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        marker = report_status(out_dir)
        if marker is not None and marker.get("key") == key and overwrite in (False, "stale"):
            return True
        if not overwrite:
            why = ("holds a report of another input or with other parameters" if marker is not None
                   else "is not empty and holds no complete report")
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
        for f in (old or {}).get("files", []):
            p = os.path.join(out_dir, f)
            if os.path.isfile(p):
                os.unlink(p)
        figdir = os.path.join(out_dir, "figures")
        if os.path.isdir(figdir) and not os.listdir(figdir):
            shutil.rmtree(figdir)
    os.makedirs(out_dir, exist_ok=True)
    return False


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
               input_path=None, labels=None, mapper=None, source=None, memory=None) -> dict:
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

    Returns
    -------
    dict
        The report (what ``report.json`` holds) with ``"up_to_date": True`` when the folder
        already held this exact report and nothing was recomputed.
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
    temperature_K, t_source = _temperature(traj, temperature)
    input_info = _input_info(traj, reader_options, input_path, progress)
    params = {"cation": cation, "center": center, "ligand": ligand, "temperature_K": temperature,
              "stages": list(stages) if stages is not None else "all", "figures": bool(figures),
              "labels": labels or {}, **options}
    key = _params_key(params, input_info)
    if _prepare_out_dir(out_dir, key, overwrite):
        with open(os.path.join(out_dir, "report.json"), encoding="utf-8") as fh:
            rep = json.load(fh)
        rep["up_to_date"] = True
        return rep

    cat = detect_cation(traj, cation)
    poly = detect_polyanions(traj, cation=cat.species, center=center, ligand=ligand)
    if memory is not None:
        from .._validate import parse_memory

        memory = parse_memory(memory)
    ctx = ReportContext(traj, cat, poly, temperature_K, options, progress, mapper=mapper, source=source,
                        figures=bool(figures), memory=memory)
    written, figs_png = [], {}
    analyses = {}
    bar = _stage_bar(len(STAGES), progress)
    try:
        for stage in STAGES:
            if bar is not None:
                bar.set_description(f"report: {stage.name}")
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
    write_json(os.path.join(out_dir, "report.json"), report, overwrite=True)
    write_text_atomic(os.path.join(out_dir, "report.md"), render_markdown(report), overwrite=True)
    write_text_atomic(os.path.join(out_dir, "report.html"), render_html(report, figs_png), overwrite=True)
    written += ["report.json", "report.md", "report.html"]
    write_json(os.path.join(out_dir, MARKER), {"key": key, "sha256": input_info.get("sha256"),
                                               "anionmotion_version": __version__, "files": written},
               overwrite=True)
    _make_readable(out_dir, written + [MARKER])
    report["up_to_date"] = False
    return report


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
