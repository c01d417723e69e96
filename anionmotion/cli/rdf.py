"""``anionmotion rdf TRAJ --pair Li-Li --pair Li-P``: partial g(r), coordination numbers, F(r) (SPEC §7)."""

from __future__ import annotations

from ._common import (add_memory_option, add_output_options, add_polyanion_options, add_reader_options,
                      check_outputs, open_from_args, progress_of, finish_result)

__all__ = ["register", "run"]


def register(sub):
    p = sub.add_parser("rdf", help="partial radial distribution functions, coordination numbers, free energy",
                       description="Time-averaged partial g_ab(r) with the triclinic minimum image, coordination "
                                   "numbers and F(r) = -kT ln g(r) (SPEC §7).")
    p.add_argument("traj", help="trajectory file")
    p.add_argument("--pair", action="append", required=True, metavar="A-B",
                   help="species pair, repeatable (e.g. --pair Li-Li --pair Li-P); B = COM pairs A with the "
                        "polyanion centres of mass (needs --center/--ligand or --cluster)")
    p.add_argument("--rmax", type=float, help="range in Å (default min(10, half the smallest cell width))")
    p.add_argument("--bins", type=int, default=400, help="number of bins (default 400)")
    p.add_argument("--temperature", type=float, help="temperature in K for F(r) = -k_B T ln g(r)")
    add_memory_option(p)
    add_polyanion_options(p, purpose="for COM pairs")
    add_reader_options(p)
    add_output_options(p, json=True, csv=True, plot=True)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..analysis.rdf import COM, parse_pair, rdf

    check_outputs(args, args.json, args.csv, args.plot)
    pairs = [parse_pair(p) for p in args.pair]
    with open_from_args(args) as traj:
        polys = None
        if any(COM in p for p in pairs):
            from ..analysis.polyanions import find_polyanions

            polys = find_polyanions(traj, center=args.center, ligand=args.ligand, cutoff=args.cutoff,
                                    cluster=args.cluster)
        res = rdf(traj, pairs, rmax=args.rmax, bins=args.bins, temperature=args.temperature, polyanions=polys,
                  start=args.start, stop=args.stop, step=args.step, memory=args.memory,
                  progress=progress_of(args))
    return finish_result(args, res)

