"""``anionmotion coupling TRAJ --cation Na --center Nb --ligand Cl``: cation–polyanion coupling (SPEC §5)."""

from __future__ import annotations


from ._common import (add_output_options, add_polyanion_options, add_reader_options, check_outputs,
                      open_from_args, progress_of, write_outputs)

__all__ = ["register", "run"]


def register(sub):
    p = sub.add_parser("coupling", help="cation–polyanion coupling: residence-event Pearson r, hop–rotation "
                                        "coincidence (SPEC §5)",
                       description="Residence events of cations in the first shell of polyanion centres, the Pearson "
                                   "r between θ_CNa(t) and θ_CA(t) per event (paper 003 Fig. 3d), and the "
                                   "hop–rotation coincidence measure with a permutation test.")
    p.add_argument("traj", help="trajectory file")
    p.add_argument("--cation", required=True, help="mobile cation species, e.g. Na")
    add_polyanion_options(p)
    p.add_argument("--shell", type=float, metavar="Å",
                   help="first-shell radius around the centres (Å); default: first minimum of g_C–cation(r)")
    p.add_argument("--min-residence", type=float, default=1.0, metavar="PS",
                   help="minimum residence time of an event (ps; default 1)")
    p.add_argument("--hop-a", type=float, metavar="Å", help="hop distance a (default: see anionmotion hops)")
    p.add_argument("--hop-residence", type=float, default=3.0, metavar="PS", help="hop Δt (ps; default 3)")
    p.add_argument("--hop-window", type=float, default=9.0, metavar="PS", help="hop t_a (ps; default 9)")
    p.add_argument("--window", type=float, default=1.0, metavar="PS",
                   help="half-width of the coincidence window around each hop (ps; default 1)")
    p.add_argument("--nearest", type=int, default=2, help="polyanions nearest to a hopping cation (default 2)")
    p.add_argument("--permutations", type=int, default=2000, help="random-time resamplings (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the permutation test")
    p.add_argument("--memory", metavar="SIZE",
                   help="memory budget, e.g. 2GB (default: half of the available RAM); peak memory does not grow "
                        "with the trajectory length")
    add_reader_options(p)
    add_output_options(p, json=True, plot=True)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..analysis.coupling import coupling

    check_outputs(args, args.json, args.plot)
    with open_from_args(args) as traj:
        res = coupling(traj, cation=args.cation, center=args.center, ligand=args.ligand, cutoff=args.cutoff,
                       cluster=args.cluster, shell=args.shell, min_residence=args.min_residence, hop_a=args.hop_a,
                       hop_residence=args.hop_residence, hop_window=args.hop_window, coincidence_window=args.window,
                       n_nearest=args.nearest, n_permutations=args.permutations, seed=args.seed, start=args.start,
                       stop=args.stop, step=args.step, memory=args.memory,
                       progress=progress_of(args))
    print(res.summary())
    write_outputs(args, json_data=res.to_dict)
    if args.plot:
        res.save_plot(args.plot, overwrite=args.overwrite, dpi=120)
    return 0
