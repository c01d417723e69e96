"""``anionmotion reorient TRAJ --center P --ligand S``: polyanion reorientation (SPEC §4)."""

from __future__ import annotations

import argparse

from ._common import (add_memory_option, add_output_options, add_polyanion_options, add_reader_options,
                      check_outputs, open_from_args, progress_of)

__all__ = ["register", "run"]


def register(sub):
    p = sub.add_parser("reorient", help="polyanion reorientation: C1…C4, rotor functions, orientation states, "
                                        "rotation events, ν_rot/ν_hop, ρ(θ,φ)",
                       description="Reorientation of polyanions (SPEC §4): exact all-origin Legendre ACFs C1(t) … "
                                   "C4(t), relaxation times, the 'rotating' flag (C1 < 0.9 at the longest reliable "
                                   "lag), cubic-harmonic rotor functions, discrete orientation states and their "
                                   "transition rate, rotation events and frequency with confidence intervals (and "
                                   "ν_rot/ν_hop with --cation), angle projections, ρ(θ, φ), framework descriptors.")
    p.add_argument("traj", help="trajectory file")
    add_polyanion_options(p)
    p.add_argument("--threshold", type=float, default=70.0, metavar="DEG",
                   help="rotation-event threshold angle (degrees; default 70, paper 000)")
    p.add_argument("--symmetry", action="store_true",
                   help="headline rotation events = symmetry-aware jumps between equivalent orientations")
    p.add_argument("--site-tolerance", type=float, default=30.0, metavar="DEG",
                   help="symmetry-aware events: ligand-to-site tolerance (degrees; default 30)")
    p.add_argument("--reliable-fraction", type=float, default=0.5,
                   help="longest reliable lag as a fraction of the span (default 0.5)")
    p.add_argument("--legendre", type=int, default=4, choices=(2, 3, 4), metavar="L",
                   help="highest Legendre order of the ACFs C_l = ⟨P_l(u(t0+t)·u(t0))⟩ (2, 3 or 4; default 4)")
    p.add_argument("--rotor", default="auto", choices=("auto", "td", "oh", "cubic", "none"),
                   help="cubic-harmonic rotor functions: td = K3, K4; oh = K4, K6; cubic = all three; auto = td "
                        "for 4 ligands, oh for 6, cubic otherwise (default auto); see docs/rotor-functions.md")
    p.add_argument("--states", action=argparse.BooleanOptionalAction, default=True,
                   help="count transitions between discrete orientation states (default on)")
    p.add_argument("--state-tolerance", type=float, default=30.0, metavar="DEG",
                   help="an anion is in a reference orientation when its mean ligand-to-site angle-cosine exceeds "
                        "cos(DEG) (default 30)")
    p.add_argument("--state-debounce", type=int, default=3, metavar="FRAMES",
                   help="a new orientation state counts after this many consecutive frames in it (default 3)")
    p.add_argument("--cation", help="also compute the jump frequency of this cation (anionmotion hops) and the "
                                    "ratio ν_rot/ν_hop with confidence intervals")
    p.add_argument("--hop-a", type=float, metavar="Å", help="hop distance a for --cation (default: see hops)")
    p.add_argument("--hop-residence", type=float, default=3.0, metavar="PS", help="Δt for --cation (ps; default 3)")
    p.add_argument("--hop-window", type=float, default=9.0, metavar="PS", help="t_a for --cation (ps; default 9)")
    p.add_argument("--rho", metavar="FILE", help="write the ρ(θ, φ) map as a picture (PNG/PDF/SVG)")
    p.add_argument("--rho-csv", metavar="FILE", help="write ρ(θ, φ) (all anions) as CSV")
    p.add_argument("--rho-anion", type=int, metavar="K",
                   help="--rho/--rho-csv for polyanion K only (index in the identification order) instead of all")
    p.add_argument("--series", action="store_true",
                   help="include the angle projections in the JSON (every frame up to 20,000 frames, else a "
                        "strided preview; see --angles-csv)")
    p.add_argument("--angles-csv", metavar="FILE",
                   help="write the angle projections θa, θb, θc of every anion at every frame as CSV (streamed to "
                        "disk chunk by chunk)")
    add_memory_option(p)
    add_reader_options(p)
    add_output_options(p, json=True, plot=True)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..analysis.reorientation import reorientation
    from ..errors import OptionError
    from ..results import json_arrays, write_json

    check_outputs(args, args.json, args.plot, args.rho, args.rho_csv, args.angles_csv)
    if args.rho_anion is not None and not (args.rho or args.rho_csv):
        raise OptionError(f"--rho-anion {args.rho_anion} selects the anion of --rho/--rho-csv; give one of them")
    if args.rho_anion is not None and args.rho_anion < 0:
        raise OptionError(f"--rho-anion must be a polyanion index ≥ 0; got {args.rho_anion}")
    with open_from_args(args) as traj:
        poly = None
        if args.rho_anion is not None:   # identify first (one frame) so that a bad index fails before the run
            from ..analysis.polyanions import find_polyanions

            poly = find_polyanions(traj, center=args.center, ligand=args.ligand, cutoff=args.cutoff,
                                   cluster=args.cluster, frame=traj.frame_range(start=args.start, stop=args.stop,
                                                                                step=args.step).start)
            if args.rho_anion >= poly.n_anions:
                raise OptionError(f"--rho-anion {args.rho_anion} is out of range: {traj.path} has {poly.n_anions} "
                                  f"{poly.label} polyanions (indices 0 … {poly.n_anions - 1})")
        cation = h = None
        if args.cation:       # hops first: the reorientation result then carries ν_rot/ν_hop with its CI
            from ..analysis.hops import hops

            h = hops(traj, species=args.cation, a=args.hop_a, residence=args.hop_residence, window=args.hop_window,
                     start=args.start, stop=args.stop, step=args.step, memory=args.memory, keep_h=False,
                     progress=progress_of(args))
            cation = {"species": args.cation, "jump_frequency_per_ns": h.jump_frequency_per_ns,
                      "n_hops": h.n_events, "a_A": h.a_A, "residence_ps": h.residence_ps, "window_ps": h.window_ps}
        res = reorientation(traj, center=args.center, ligand=args.ligand, cutoff=args.cutoff, cluster=args.cluster,
                            polyanions=poly,
                            threshold=args.threshold, event_method="symmetry" if args.symmetry else "threshold",
                            site_tolerance=args.site_tolerance, reliable_fraction=args.reliable_fraction,
                            start=args.start, stop=args.stop, step=args.step, memory=args.memory,
                            angles_csv=args.angles_csv, overwrite=args.overwrite, progress=progress_of(args),
                            legendre=args.legendre, rotor=args.rotor, states=args.states,
                            state_tolerance=args.state_tolerance, state_debounce=args.state_debounce, hops=h)
    print(res.summary())
    if cation:
        print(f"{args.cation} jumps         {cation['n_hops']} ({cation['jump_frequency_per_ns']:.4g} per cation "
              f"per ns, a = {cation['a_A']:.3f} Å)")
    if args.json:
        # the JSON dict (lists of every lag and event) only when asked for: it grows with the trajectory
        with json_arrays():
            d = res.to_dict(include_series=args.series)
            if cation:
                d["cation"] = cation
                d["cation_jump_frequency_per_ns"] = cation["jump_frequency_per_ns"]
            write_json(args.json, d, overwrite=args.overwrite)
        del d
    if args.rho_csv:
        res.write_csv(args.rho_csv, which="orientation_density.csv", anion=args.rho_anion, overwrite=args.overwrite)
    if args.rho:
        res.save_plot(args.rho, which="orientation_density", anion=args.rho_anion, overwrite=args.overwrite)
    if args.plot:
        res.save_plot(args.plot, which="reorientation", overwrite=args.overwrite, dpi=120)
    return 0
