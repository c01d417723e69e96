"""``anionmotion report TRAJ --out DIR``: every applicable analysis of one trajectory, in one folder.

``anionmotion report --example`` runs on the example trajectory shipped with the
package and writes ``./anionmotion-report-example``.
"""

from __future__ import annotations

import os
import sys

from ._common import add_memory_option, add_reader_options, open_from_args, reader_kwargs

__all__ = ["register", "run", "add_report_options", "report_options"]

_STATUS = {"ok": "ran", "skipped": "not applicable", "unavailable": "not available", "failed": "FAILED"}


def add_report_options(p):
    """Options shared by ``report`` and ``batch`` (the keys of ``anionmotion.report.OPTION_DEFAULTS``)."""
    g = p.add_argument_group("analysis options (default: each analysis's own default, recorded in the report)")
    g.add_argument("--cation", help="mobile cation (default: detect Li, Na, K, Ag, Cu, Mg, Zn … present)")
    g.add_argument("--center", help="polyanion centre species, e.g. S (default: detect; give with --ligand)")
    g.add_argument("--ligand", help="polyanion ligand species, e.g. O (default: detect; give with --center)")
    g.add_argument("--temperature", type=float, help="temperature in K (default: from the file's metadata); "
                                                     "needed for σ and F(r)")
    g.add_argument("--polyanion-cutoff", type=float, help="centre–ligand cutoff, Å (default: automatic gap)")
    g.add_argument("--lag-min", type=float, help="start of the diffusion fit window, ps")
    g.add_argument("--lag-max", type=float, help="end of the diffusion fit window, ps")
    g.add_argument("--charge", type=float, help="cation charge for Nernst–Einstein, e")
    g.add_argument("--hop-distance", type=float, help="hop distance a, Å (SPEC §3)")
    g.add_argument("--rotation-threshold", type=float, dest="rotation_threshold_deg",
                   help="rotation-event angle, degrees (SPEC §4)")
    g.add_argument("--shell-radius", type=float, help="first-shell radius for residence events, Å (SPEC §5)")
    g.add_argument("--grid-spacing", type=float, help="density grid spacing, Å")
    g.add_argument("--r-max", type=float, help="g(r) range, Å")
    g.add_argument("--max-freq", type=float, help="highest VDOS frequency, THz")
    g.add_argument("--stages", help="comma-separated subset of stages to run (default all: "
                                    "polyanions,diffusion,hops,reorientation,coupling,timeline,vdos,libration,density,rdf)")
    g.add_argument("--no-figures", action="store_true", help="do not draw figures")


def report_options(args) -> dict:
    from ..report import OPTION_DEFAULTS

    return {k: getattr(args, k, None) for k in OPTION_DEFAULTS}


def register(sub):
    p = sub.add_parser("report", help="run every applicable analysis and write report.html/.md/.json, CSVs, "
                                      "figures and the density grid",
                       description="Run every applicable analysis of one trajectory (detecting the mobile cation "
                                   "and the polyanions unless given) and write a self-contained report folder. "
                                   "Analyses that cannot run are listed with the reason.")
    p.add_argument("traj", nargs="?", help="trajectory file")
    p.add_argument("--example", action="store_true",
                   help="run on the example trajectory shipped with the package "
                        "(default --out ./anionmotion-report-example)")
    p.add_argument("--out", help="output folder (default: ./anionmotion-report-<name of the trajectory>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a previous report in --out (a complete report of the same input and options "
                        "is otherwise kept and reported as up to date)")
    add_report_options(p)
    add_memory_option(p)
    add_reader_options(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..errors import OptionError
    from ..report import example_path, run_report

    extend = None
    if args.example:
        if args.traj:
            raise OptionError("give either a trajectory or --example, not both")
        path = example_path()
        from .._example import compare_example_modes as extend   # + the RC run and the UC/RC comparison
        out = args.out or "anionmotion-report-example"
    else:
        if not args.traj:
            raise OptionError("give a trajectory file (or --example)")
        path = args.traj
        stem = os.path.basename(path).split(".")[0] or "trajectory"
        out = args.out or f"anionmotion-report-{stem}"
    stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else None
    progress = False if args.no_progress else None
    from ..report.core import raise_if_failed

    with open_from_args(args, path) as traj:
        rep = run_report(traj, out, cation=args.cation, center=args.center, ligand=args.ligand,
                         temperature=args.temperature, stages=stages, options=report_options(args),
                         figures=not args.no_figures, overwrite=args.overwrite, progress=progress,
                         reader_options=reader_kwargs(args), input_path=path, memory=args.memory, extend=extend)
    if rep.get("complete") is False:   # stages failed: the summary, then the error (exit 2, no completion marker)
        print(summary_text(rep, out))
        raise_if_failed(rep)
    if rep.get("up_to_date"):
        print(f"{out}: already holds the complete report of this input with these options; nothing to do "
              "(use --overwrite to recompute)")
        return 0
    print(summary_text(rep, out))
    return 0


def summary_text(rep, out) -> str:
    det = rep["detected"]
    lines = [f"mobile cation: {det['cation']['reason']}", f"polyanions:    {det['polyanions']['reason']}"]
    width = max(len(n) for n in rep["analyses"])
    for name, a in rep["analyses"].items():
        extra = a["reason"] if a["status"] != "ok" else "; ".join(f"{k} {v}" for k, v in list(a["summary"].items())[:3])
        lines.append(f"  {name:<{width}}  {_STATUS.get(a['status'], a['status']):<14} {extra}")
    c = rep.get("comparison")
    if c:
        lines.append(f"  {'UC vs RC':<{width}}  {_STATUS.get(c['status'], c['status']):<14} "
                     + (c.get("reason") or c.get("summary", "")))
    lines.append(f"report written to {os.path.join(out, 'report.html')} (also report.md, report.json)")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    from . import main

    sys.exit(main(["report", *sys.argv[1:]]))
