"""``anionmotion hops TRAJ --species Na [--a 3.8] [--residence 3] [--window 9]``: long-lived hops (SPEC §3)."""

from __future__ import annotations

from ._common import add_output_options, add_reader_options, open_from_args, progress_of

__all__ = ["register", "run"]


def register(sub):
    p = sub.add_parser("hops", help="cation hop events from the long-lived displacement functional h_i(t) (SPEC §3)",
                       description="Find long-lived displacements of at least a (paper 003 eq. 5): one event per run "
                                   "of h_i = 1, and the jump frequency per cation per ns.")
    p.add_argument("traj", help="trajectory file")
    p.add_argument("--species", required=True, help="mobile species, e.g. Na")
    p.add_argument("--a", type=float, metavar="Å",
                   help="minimum displacement (Å); default: the median nearest-neighbour distance of the species")
    p.add_argument("--residence", type=float, default=3.0, metavar="PS", help="Δt, residence time (ps; default 3)")
    p.add_argument("--window", type=float, default=9.0, metavar="PS", help="t_a, time window (ps; default 9)")
    p.add_argument("--memory", metavar="SIZE",
                   help="memory budget, e.g. 2GB (default: half of the available RAM); peak memory does not grow "
                        "with the trajectory length")
    p.add_argument("--events", action="store_true", help="print every event")
    add_reader_options(p)
    add_output_options(p, json=True)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..analysis.hops import hops
    from ..results import check_output

    if args.json:
        check_output(args.json, args.overwrite)
    with open_from_args(args) as traj:
        res = hops(traj, species=args.species, a=args.a, residence=args.residence, window=args.window,
                   memory=args.memory, progress=progress_of(args), keep_h=False)   # h is not written: not kept
    print(res.summary())
    if args.events:
        print("atom  frame  time_ps")
        for e in res.events:
            print(f"{e['atom']:4d}  {e['frame']:5d}  {e['time_ps']:.4f}")
    if args.json:
        res.save(args.json, overwrite=args.overwrite)
    return 0
