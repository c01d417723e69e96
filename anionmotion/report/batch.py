"""``anionmotion batch MANIFEST.toml``: many reports on dask.distributed, resumable, then ``compare``.

Manifest schema (TOML)::

    [batch]                      # optional
    out = "reports"              # root output folder, relative to the manifest (default "<manifest stem>-reports")
    compare = true               # run the compare step over the finished reports (default true)
    at_K = 300.0                 # extrapolation temperature of the Arrhenius fit (default 300 K)

    [defaults]                   # optional: keys applied to every [[run]] unless the run sets them
    cation = "Li"

    [[run]]                      # one per trajectory (at least one)
    path = "T600/run.nc"         # required; relative to the manifest
    label = "T600"               # default: the file name without extension; must be unique
    out = "T600"                 # sub-folder of [batch].out (default: the label)
    temperature = 600.0          # K (default: the file's metadata)
    mode = "UC"                  # constraint mode label for compare (default: the file's constraint_mode)
    # reader options (as `anionmotion.open`): format, timestep, frame_interval, lammps_units, types, cell,
    #                vel, cell_file, topology
    # report options: cation, center, ligand, stages (list), figures (bool), lag_min, lag_max, charge,
    #                hop_distance, rotation_threshold_deg, shell_radius, grid_spacing, r_max, max_freq,
    #                polyanion_cutoff, msd_block_atoms (split the MSD into atom blocks run as Dask tasks),
    #                memory (budget of each analysis, e.g. "2GB"; numbers equal to 1e-12 for any budget, and
    #                identical bit for bit for the same budget)

Every run writes its report into its own folder; the report's completion marker is written last, so a
run killed half-way (crash, walltime) leaves no marker and is recomputed on the next invocation, while
finished runs with the same input checksum and options are skipped.  The runs are Dask tasks on a
``LocalCluster`` (default) or on the scheduler at ``--scheduler ADDRESS``; a run's own MSD atom blocks
(``msd_block_atoms``) are submitted as further tasks from inside it.
"""

from __future__ import annotations

import os
import time
import uuid
from contextlib import contextmanager

from ..errors import OptionError
from ..results import write_json
from .core import OPTION_DEFAULTS

__all__ = ["load_manifest", "run_batch", "run_one", "RUN_KEYS", "READER_KEYS", "need_distributed"]

READER_KEYS = ("format", "timestep", "frame_interval", "lammps_units", "types", "cell", "vel", "cell_file",
               "topology")
REPORT_KEYS = ("cation", "center", "ligand", "temperature", "stages", "figures", "memory", *OPTION_DEFAULTS)
RUN_KEYS = ("path", "label", "out", "mode", *READER_KEYS, *REPORT_KEYS)
BATCH_KEYS = ("out", "compare", "at_K")
STATUS_FILE = "batch-status.json"


def need_distributed():
    """Import dask.distributed or raise ImportError with the install command."""
    try:
        import distributed
    except ImportError as err:
        raise ImportError("anionmotion batch needs dask.distributed: pip install 'anionmotion[cluster]'") from err
    return distributed


def _toml_load(path):
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError as err:
            raise ImportError("reading a TOML manifest on Python 3.10 needs tomli: pip install tomli "
                              "(Python ≥ 3.11 has tomllib built in)") from err
    from ..io.base import check_input_file

    check_input_file(path, "TOML manifest")
    with open(path, "rb") as fh:
        try:
            return tomllib.load(fh)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise OptionError(f"{path}: not valid TOML: {err}") from err


def _check_keys(d, valid, where, path):
    bad = sorted(set(d) - set(valid))
    if bad:
        raise OptionError(f"{path}: unknown key(s) {', '.join(bad)} in {where}; valid keys: {', '.join(valid)}")


def load_manifest(path) -> dict:
    """Read and validate a batch manifest.

    Returns
    -------
    dict
        ``{"manifest", "root", "out", "compare", "at_K", "runs": [task dict, …]}``; every task dict is
        JSON-able (``path``, ``out_dir``, ``label``, ``mode``, ``reader_options``, ``report``).

    Raises
    ------
    OptionError
        Unknown keys, missing ``path``, duplicate labels or output folders, bad types.
    """
    path = os.fspath(path)
    data = _toml_load(path)
    _check_keys(data, ("batch", "defaults", "run"), "the manifest", path)
    base = os.path.dirname(os.path.abspath(path))
    batch = data.get("batch", {})
    _check_keys(batch, BATCH_KEYS, "[batch]", path)
    defaults = data.get("defaults", {})
    _check_keys(defaults, [k for k in RUN_KEYS if k not in ("path", "label", "out")], "[defaults]", path)
    runs = data.get("run")
    if not isinstance(runs, list) or not runs:
        raise OptionError(f"{path}: no [[run]] entries; each needs at least path = \"trajectory file\"")
    stem = os.path.splitext(os.path.basename(path))[0]
    root = os.path.join(base, str(batch.get("out", f"{stem}-reports")))
    tasks, labels, outs = [], set(), set()
    for i, run in enumerate(runs):
        where = f"[[run]] #{i + 1}"
        _check_keys(run, RUN_KEYS, where, path)
        if "path" not in run:
            raise OptionError(f"{path}: {where} has no path")
        r = dict(defaults, **run)
        traj_path = os.path.join(base, str(r["path"]))
        label = str(r.get("label") or os.path.basename(str(r["path"])).split(".")[0])
        if label in labels:
            raise OptionError(f"{path}: label {label!r} used twice; labels must be unique")
        labels.add(label)
        out_dir = os.path.join(root, str(r.get("out", label)))
        if out_dir in outs:
            raise OptionError(f"{path}: output folder {out_dir} used twice")
        outs.add(out_dir)
        stages = r.get("stages")
        if stages is not None and not (isinstance(stages, list) and all(isinstance(s, str) for s in stages)):
            raise OptionError(f"{path}: {where}: stages must be a list of stage names")
        reader = {k: r[k] for k in READER_KEYS if k in r}
        if isinstance(reader.get("types"), str):
            from .._validate import parse_types

            reader["types"] = parse_types(reader["types"])
        report = {k: r.get(k) for k in REPORT_KEYS if k in r}
        tasks.append({"path": traj_path, "label": label, "out_dir": out_dir, "mode": r.get("mode"),
                      "reader_options": reader, "report": report})
    compare = batch.get("compare", True)
    if not isinstance(compare, bool):
        raise OptionError(f"{path}: [batch] compare must be true or false; got {compare!r}")
    return {"manifest": path, "root": root, "compare": compare, "at_K": float(batch.get("at_K", 300.0)),
            "runs": tasks}


def _dask_mapper(fn, items):
    """Map ``fn`` over ``items`` as Dask tasks from inside a task (results in order)."""
    from distributed import worker_client

    items = list(items)
    with worker_client() as client:
        return client.gather(client.map(fn, items, pure=False))


def run_one(task: dict, *, progress=False, inside_dask=False) -> dict:
    """Run (or skip, when complete) the report of one manifest entry; never raises for a failing run.

    Returns
    -------
    dict
        ``label``, ``out_dir``, ``status`` (``done``, ``up_to_date`` or ``failed``), ``error``, ``seconds``.
    """
    import anionmotion
    from .core import run_report

    t0 = time.perf_counter()
    rep = dict(task["report"])
    options = {k: rep.pop(k) for k in list(rep) if k in OPTION_DEFAULTS}
    labels = {"label": task["label"]}
    if task.get("mode"):
        labels["mode"] = str(task["mode"]).upper()
    try:
        with anionmotion.open(task["path"], **task["reader_options"]) as traj:
            res = run_report(traj, task["out_dir"], cation=rep.get("cation"), center=rep.get("center"),
                             ligand=rep.get("ligand"), temperature=rep.get("temperature"), stages=rep.get("stages"),
                             options=options, figures=rep.get("figures", True), overwrite="stale",
                             progress=progress, reader_options=task["reader_options"], input_path=task["path"],
                             labels=labels, mapper=_dask_mapper if inside_dask else None,
                             source=(task["path"], task["reader_options"]), memory=rep.get("memory"))
        status = "up_to_date" if res.get("up_to_date") else "done"
        failed = [n for n, a in res["analyses"].items() if a["status"] == "failed"]
        if res.get("complete") is False:   # a stage failed: no completion marker, and not counted as done
            status = "failed"
        return {"label": task["label"], "out_dir": task["out_dir"], "status": status, "error": res.get("error"),
                "failed_stages": failed, "seconds": round(time.perf_counter() - t0, 3)}
    except Exception as err:  # one bad run must not stop the batch
        return {"label": task["label"], "out_dir": task["out_dir"], "status": "failed",
                "error": f"{type(err).__name__}: {err}", "failed_stages": [],
                "seconds": round(time.perf_counter() - t0, 3)}


def _run_one_dask(task):
    return run_one(task, inside_dask=True)


@contextmanager
def dask_client(client=None, scheduler=None, workers=None):
    """The Dask client to submit to: ``client`` itself, else one connected to ``scheduler`` (an address), else a
    ``LocalCluster`` of ``workers`` single-threaded processes (default 2; ``scheduler="local"`` is the same).
    What this opened is closed on exit."""
    distributed = need_distributed()
    own = cluster = None
    if client is None:
        if scheduler in (None, "local"):
            n = 2 if workers is None else int(workers)
            if n < 1:
                raise OptionError(f"--workers must be at least 1; got {workers}")
            cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                               dashboard_address=None)
            client = own = distributed.Client(cluster)
        else:
            client = own = distributed.Client(scheduler)
    try:
        yield client
    finally:
        if own is not None:
            own.close()
        if cluster is not None:
            cluster.close()


def run_batch(manifest, *, scheduler=None, workers=None, client=None, progress=None, compare=None) -> dict:
    """Run every report of a manifest on dask.distributed, then the compare step.

    Parameters
    ----------
    manifest : str or dict
        Path of the TOML manifest, or the dict of :func:`load_manifest`.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); default a new ``LocalCluster``.
    workers : int, optional
        Workers of the LocalCluster (default 2; one thread each, separate processes).
    client : distributed.Client, optional
        Use this client instead (tests, notebooks).
    progress : bool, optional
        Print one line per finished run.
    compare : bool, optional
        Override ``[batch] compare``.

    Returns
    -------
    dict
        ``runs`` (one status dict per run, manifest order), ``compare`` (folder or None, or the reason),
        also written to ``<out>/batch-status.json``.
    """
    m = manifest if isinstance(manifest, dict) else load_manifest(manifest)
    from ..results import make_output_folder

    make_output_folder(m["root"])   # the reports' root (on the command line: one missing level)
    distributed = need_distributed()
    with dask_client(client, scheduler, workers) as client:
        token = uuid.uuid4().hex[:12]  # fresh keys: Dask must not hand back results of an earlier invocation
        futures = [client.submit(_run_one_dask, t, pure=False, key=f"anionmotion-report-{token}-{i}-{t['label']}")
                   for i, t in enumerate(m["runs"])]
        results = [None] * len(futures)
        index = {f.key: i for i, f in enumerate(futures)}
        for fut in distributed.as_completed(futures):
            i = index[fut.key]
            try:
                results[i] = fut.result()
            except Exception as err:  # worker died
                t = m["runs"][i]
                results[i] = {"label": t["label"], "out_dir": t["out_dir"], "status": "failed",
                              "error": f"{type(err).__name__}: {err}", "failed_stages": [], "seconds": None}
            if progress:
                r = results[i]
                print(f"{r['label']}: {r['status']}" + (f" ({r['error']})" if r["error"] else ""), flush=True)
    summary = {"manifest": m["manifest"], "runs": results, "compare": None}
    do_compare = m["compare"] if compare is None else compare
    ok = [r for r in results if r["status"] in ("done", "up_to_date")]
    if do_compare:
        summary["compare"] = _compare_step(m, ok)
    write_json(os.path.join(m["root"], STATUS_FILE), summary, overwrite=True)
    return summary


def _compare_step(m, ok):
    from .compare import compare, write_compare

    if len(ok) < 2:
        return {"status": "not run", "reason": "fewer than two finished reports"}
    out = os.path.join(m["root"], "compare")
    try:
        res = compare([os.path.join(r["out_dir"], "report.json") for r in ok], at_K=m["at_K"])
        write_compare(res, out, overwrite=True)
    except (OptionError, ValueError, ImportError) as err:
        return {"status": "failed", "reason": f"{type(err).__name__}: {err}"}
    return {"status": "done", "out_dir": out, "warnings": res.warnings}

