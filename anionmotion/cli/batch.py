"""``anionmotion batch MANIFEST.toml``: reports of many trajectories on dask.distributed, then compare."""

from __future__ import annotations

__all__ = ["register", "run"]


def register(sub):
    p = sub.add_parser("batch", help="run the reports of a TOML manifest on Dask (resumable), then compare",
                       description="Run `anionmotion report` for every [[run]] of a TOML manifest as Dask tasks "
                                   "(a LocalCluster by default, any cluster with --scheduler), skipping runs whose "
                                   "output is already complete, then run `compare` over the finished reports. "
                                   "The manifest schema is in the docs (Reports and batch runs) and in "
                                   "`python -c 'import anionmotion.report.batch as b; print(b.__doc__)'`.")
    p.add_argument("manifest", help="TOML manifest")
    p.add_argument("--scheduler", metavar="ADDRESS", help="address of a running Dask scheduler, e.g. "
                                                          "tcp://10.0.0.5:8786 (default: a LocalCluster)")
    p.add_argument("--workers", type=int, help="LocalCluster workers (default 2; one thread each)")
    p.add_argument("--no-compare", action="store_true", help="skip the compare step")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..report.batch import load_manifest, need_distributed, run_batch

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
