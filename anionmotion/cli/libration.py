"""``anionmotion libration TRAJ --center P --ligand S``: polyanion libration spectrum and cation-VDOS overlap (SPEC §6)."""

from __future__ import annotations

from ._common import (add_frame_options, add_memory_option, add_output_options, add_polyanion_options,
                      add_reader_options, check_outputs, open_from_args, progress_of, finish_result)

__all__ = ["register", "run"]


def register(sub):
    p = sub.add_parser("libration", help="libration spectrum of polyanions and its overlap with the cation VDOS",
                       description="Angular velocities of every polyanion (ω = I⁻¹L from velocities, or "
                                   "frame-to-frame rotations), their ACF and spectrum, and the overlap with "
                                   "the cation VDOS (SPEC §6, paper 003 Fig. 3c).")
    p.add_argument("traj", help="trajectory file")
    add_polyanion_options(p, frames=False)
    p.add_argument("--cation", default="auto", help="cation whose VDOS is compared (default: first mobile cation "
                                                    "present; 'none' to skip)")
    p.add_argument("--omega", default="auto", choices=("auto", "velocities", "rotations"),
                   help="source of the angular velocities (auto: velocities when the file has them)")
    p.add_argument("--max-freq", type=float, help="highest frequency, THz (default Nyquist); also limits the overlap")
    p.add_argument("--window", default="hann", help="lag window: hann (default), hamming, blackman, none")
    p.add_argument("--max-lag", type=float, help="longest correlation time kept, ps")
    add_memory_option(p)
    p.add_argument("--scratch-dir", help="directory of the ω and velocity scratch files used when they do not fit "
                                         "half of --memory (default: system temp); the spectra stay exact")
    add_frame_options(p)
    add_reader_options(p)
    add_output_options(p, json=True, csv=True, plot=True)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..analysis.libration import libration
    from ..errors import OptionError

    if not args.cluster and not (args.center and args.ligand):
        raise OptionError("give --center and --ligand (e.g. --center P --ligand S) or --cluster")
    check_outputs(args, args.json, args.csv, args.plot)
    cation = None if str(args.cation).lower() == "none" else args.cation
    with open_from_args(args) as traj:
        res = libration(traj, center=args.center, ligand=args.ligand, cutoff=args.cutoff, cluster=args.cluster,
                        cation=cation, omega=args.omega, window=args.window, max_freq=args.max_freq,
                        max_lag=args.max_lag, start=args.start, stop=args.stop, step=args.step,
                        memory=args.memory, scratch_dir=args.scratch_dir, progress=progress_of(args))
    return finish_result(args, res)

