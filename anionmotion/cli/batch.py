"""``anionmotion batch MANIFEST.toml``: reports of many trajectories on dask.distributed, then compare.

``anionmotion batch [--scheduler ADDRESS] [--workers N] md <options of anionmotion md>``: the MD series
(temperatures × modes, :func:`anionmotion.md.series.run_series`) as Dask tasks — each temperature's
equilibrated start first, then its modes in parallel — followed by ``compare`` over the series.
"""

from __future__ import annotations

import argparse
import os

__all__ = ["register", "run"]


def register(sub):
    p = sub.add_parser("batch", help="run the reports of a TOML manifest on Dask (resumable), then compare",
                       description="Run `anionmotion report` for every [[run]] of a TOML manifest as Dask tasks "
                                   "(a LocalCluster by default, any cluster with --scheduler), skipping runs whose "
                                   "output is already complete, then run `compare` over the finished reports. "
                                   "The manifest schema is in the docs (Reports and batch runs) and in "
                                   "`python -c 'import anionmotion.report.batch as b; print(b.__doc__)'`. "
                                   "`anionmotion batch [--scheduler ADDRESS] [--workers N] md <md options>` runs "
                                   "an `anionmotion md` series (temperatures × modes) as Dask tasks instead, then "
                                   "compare over it (docs/md.md, 'Temperature series and adaptive length').")
    p.add_argument("manifest", help="TOML manifest, or `md` followed by the options of `anionmotion md` (the MD "
                                    "series temperatures × modes as Dask tasks, then compare over it)")
    p.add_argument("md_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.add_argument("--scheduler", metavar="ADDRESS", help="address of a running Dask scheduler, e.g. "
                                                          "tcp://10.0.0.5:8786 (default: a LocalCluster)")
    p.add_argument("--workers", type=int, help="LocalCluster workers (default 2; one thread each)")
    p.add_argument("--no-compare", action="store_true", help="skip the compare step (md: over the finished series, "
                                                              "into <stem>.compare/)")
    p.set_defaults(func=run)
    return p


def _md_parser():
    """``anionmotion md``'s parser, as ``anionmotion batch md``, with the Dask options."""
    from . import md as md_cli

    top = argparse.ArgumentParser(prog="anionmotion batch")
    p = md_cli.register(top.add_subparsers())
    p.add_argument("--scheduler", metavar="ADDRESS", help="address of a running Dask scheduler (default: a "
                                                          "LocalCluster)")
    p.add_argument("--workers", type=int, help="LocalCluster workers (default 2; one thread each)")
    p.add_argument("--no-compare", action="store_true", help="skip the compare step")
    return p


def run_md(args) -> int:
    """``anionmotion batch md …``: the md series on Dask, then compare over it."""
    import os

    from ..errors import OptionError
    from ..md.series import series_index_path
    from ..report.batch import need_distributed

    ns = _md_parser().parse_args(args.md_args)
    ns.scheduler = ns.scheduler or args.scheduler or "local"
    ns.workers = ns.workers if ns.workers is not None else args.workers
    if ns.workers is not None and ns.workers < 1:
        raise OptionError(f"--workers must be at least 1; got {ns.workers}")
    need_distributed()
    rc = ns.func(ns)
    if rc or ns.no_compare or args.no_compare:
        return rc
    from ..report.compare import compare, write_compare

    index = series_index_path(ns.out)
    out = os.path.splitext(index)[0].removesuffix(".series") + ".compare"
    try:
        res = compare([index])
        write_compare(res, out, overwrite=True)
    except (OptionError, ValueError) as err:
        print(f"compare: not done ({err})")
        return 0
    for key, a in res.arrhenius.items():
        print(f"Arrhenius ({key}): " + (f"Ea = {a['Ea_eV']:.4g} ± {(a.get('Ea_stderr_eV') or 0):.2g} eV"
                                        if "Ea_eV" in a else f"not computed: {a.get('reason')}"))
    print(f"compare: {len(res.modes)} mode decomposition(s) → {out}/compare.html")
    return 0


def run(args) -> int:
    from ..report.batch import load_manifest, need_distributed, run_batch

    if args.manifest == "md" and not os.path.isfile(args.manifest):
        return run_md(args)
    if args.md_args:    # batch's own options after the manifest (the md remainder takes them in)
        from ..errors import OptionError

        tail = argparse.ArgumentParser(prog="anionmotion batch", add_help=False)
        tail.add_argument("--scheduler")
        tail.add_argument("--workers", type=int)
        tail.add_argument("--no-compare", action="store_true")
        try:
            more, rest = tail.parse_known_args(args.md_args)
        except SystemExit:
            raise OptionError(f"invalid batch options after the manifest: {' '.join(args.md_args)}") from None
        if rest:
            raise OptionError(f"unexpected arguments after the manifest {args.manifest}: {' '.join(rest)} "
                              "(`anionmotion batch md …` runs an md series)")
        args.scheduler = more.scheduler or args.scheduler
        args.workers = more.workers if more.workers is not None else args.workers
        args.no_compare = args.no_compare or more.no_compare
    m = load_manifest(args.manifest)
    need_distributed()
    summary = run_batch(m, scheduler=args.scheduler, workers=args.workers, progress=True,
                        compare=False if args.no_compare else None)
    runs = summary["runs"]
    n = {s: sum(r["status"] == s for r in runs) for s in ("done", "up_to_date", "failed")}
    print(f"{len(runs)} runs: {n['done']} computed, {n['up_to_date']} already complete (skipped), "
          f"{n['failed']} failed")
    for r in runs:
        if r["status"] == "failed":
            print(f"  FAILED {r['label']}: {r['error']}")
        elif r.get("failed_stages"):
            print(f"  {r['label']}: analyses that failed: {', '.join(r['failed_stages'])}")
    c = summary["compare"]
    if c is not None:
        print(f"compare: {c.get('status')}" + (f" → {c['out_dir']}" if c.get("out_dir") else
                                              f" ({c.get('reason')})"))
    print(f"status written to {m['root']}/batch-status.json")
    return 1 if n["failed"] else 0
