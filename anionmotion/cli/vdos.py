"""``anionmotion vdos TRAJ``: VACF and vibrational density of states per species (SPEC §6)."""

from __future__ import annotations

from ._common import (add_frame_options, add_memory_option, add_output_options, add_reader_options, check_outputs,
                      open_from_args, progress_of, finish_result)

__all__ = ["register", "run"]


def register(sub):
    p = sub.add_parser("vdos", help="velocity autocorrelation and vibrational density of states",
                       description="All-origin VACF by FFT and the mass-weighted VDOS per species and total "
                                   "(normalised to 3N), with band centres (SPEC §6).")
    p.add_argument("traj", help="trajectory file")
    p.add_argument("--species", nargs="+", help="species to analyse (default: all)")
    p.add_argument("--max-freq", type=float, help="highest frequency reported and band-centre limit, THz "
                                                  "(default: Nyquist)")
    p.add_argument("--window", default="hann", help="lag window: hann (default), hamming, blackman, none")
    p.add_argument("--max-lag", type=float, help="longest correlation time kept, ps (default: whole run/segment)")
    p.add_argument("--velocities", default="auto", choices=("auto", "file", "positions"),
                   help="velocity source (auto: the file's, else central differences of positions)")
    p.add_argument("--origins", default="all", choices=("all", "first"),
                   help="all time origins (default) or a single origin at the first frame (as LAMMPS compute vacf)")
    add_memory_option(p)
    p.add_argument("--scratch-dir", help="directory of the velocity scratch file used when the velocities do not "
                                         "fit half of --memory (default: system temp); the VACF stays exact")
    p.add_argument("--segment-frames", type=int, help="block-average over segments of this many frames instead of "
                                                      "one all-origin VACF over the whole run")
    add_frame_options(p)
    add_reader_options(p)
    add_output_options(p, json=True, csv=True, plot=True)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..analysis.vdos import vdos

    check_outputs(args, args.json, args.csv, args.plot)
    with open_from_args(args) as traj:
        res = vdos(traj, species=args.species, window=args.window, max_freq=args.max_freq, max_lag=args.max_lag,
                   velocities=args.velocities, origins=args.origins, memory=args.memory,
                   segment_frames=args.segment_frames, scratch_dir=args.scratch_dir, start=args.start,
                   stop=args.stop, step=args.step, progress=progress_of(args))
    return finish_result(args, res)

