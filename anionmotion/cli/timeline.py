"""``anionmotion timeline TRAJ --cation Li --center P --ligand S [--hop K]``: hop timelines (SPEC §5)."""

from __future__ import annotations

from ._common import (add_output_options, add_polyanion_options, add_reader_options, check_outputs,
                      open_from_args, progress_of)

__all__ = ["register", "run"]

MAX_PANELS = 6
DEFAULT_MAX_HOPS = 100


def register(sub):
    p = sub.add_parser("timeline", help="hop timelines: cation displacement and the rotation of the nearest "
                                        "polyanions around each hop (paper 003 Fig. 3b)",
                       description="For each cation hop: |r(t) − r(t_ini)|, the angular displacement of the ligands "
                                   "of the nearest polyanions, centre–ligand and cation–ligand distances.")
    p.add_argument("traj", help="trajectory file")
    p.add_argument("--cation", required=True, help="mobile cation species, e.g. Li")
    add_polyanion_options(p)
    p.add_argument("--hop", type=int, nargs="+", metavar="K", help="hop index (indices) to show; default --max-hops "
                                                                  "hops spread over the run")
    p.add_argument("--max-hops", type=int, default=DEFAULT_MAX_HOPS, metavar="N",
                   help=f"without --hop: at most N hops, evenly spread over the run (default {DEFAULT_MAX_HOPS}; "
                        "0 = every hop — a long run has tens of thousands, each a ±t_a window of series)")
    p.add_argument("--half-width", type=float, metavar="PS",
                   help="timeline covers the hop time ± this (ps); default the hop window t_a")
    p.add_argument("--nearest", type=int, default=2, help="nearest polyanions per hop (default 2)")
    p.add_argument("--hop-a", type=float, metavar="Å", help="hop distance a (default: see anionmotion hops)")
    p.add_argument("--hop-residence", type=float, default=3.0, metavar="PS", help="hop Δt (ps; default 3)")
    p.add_argument("--hop-window", type=float, default=9.0, metavar="PS", help="hop t_a (ps; default 9)")
    p.add_argument("--memory", metavar="SIZE",
                   help="memory budget, e.g. 2GB (default: half of the available RAM); peak memory does not grow "
                        "with the trajectory length")
    add_reader_options(p)
    add_output_options(p, json=True, csv=True, plot=True)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..analysis.timeline import timeline

    check_outputs(args, args.json, args.csv, args.plot)
    with open_from_args(args) as traj:
        res = timeline(traj, cation=args.cation, center=args.center, ligand=args.ligand, cutoff=args.cutoff,
                       cluster=args.cluster, hop=args.hop, hop_a=args.hop_a, hop_residence=args.hop_residence,
                       hop_window=args.hop_window, half_width=args.half_width, n_nearest=args.nearest,
                       start=args.start, stop=args.stop, step=args.step, memory=args.memory,
                       csv=args.csv, json=args.json, overwrite=args.overwrite, keep=MAX_PANELS,
                       max_hops=args.max_hops,
                       progress=progress_of(args))
    print(res.summary())
    # --csv and --json were written hop by hop by the analysis (no JSON dicts of every hop in memory); the result
    # keeps the full arrays of the first MAX_PANELS hops only, for the plot
    if args.plot:
        res.save_plot(args.plot, overwrite=args.overwrite, dpi=120, max_panels=MAX_PANELS)
    return 0
