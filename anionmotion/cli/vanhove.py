"""``anionmotion vanhove TRAJ --species Li``: self and distinct van Hove functions and α₂ (SPEC §9)."""

from __future__ import annotations

from ._common import (add_frame_options, add_memory_option, add_output_options, add_reader_options, check_outputs,
                      open_from_args, progress_of, finish_result)

__all__ = ["register", "run"]


def register(sub):
    p = sub.add_parser("vanhove", help="van Hove self G_s(r,t) and distinct G_d(r,t), non-Gaussian parameter α₂(t)",
                       description="Self and distinct van Hove functions at a set of lag times (streamed over every "
                                   "origin with a window of the last max-lag frames) and the non-Gaussian parameter "
                                   "α₂(t) = 3<Δr⁴>/(5<Δr²>²) − 1, exact at every lag by FFT (SPEC §9).")
    p.add_argument("traj", help="trajectory file")
    p.add_argument("--species", required=True, help="atoms analysed, e.g. Li")
    p.add_argument("--lags", type=float, nargs="+", metavar="PS",
                   help="lag times in ps (multiples of the frame spacing; default --n-lags log-spaced lags from dt "
                        "to --max-lag)")
    p.add_argument("--n-lags", type=int, default=8, help="number of default log-spaced lags (default 8)")
    p.add_argument("--max-lag", type=float, metavar="PS", help="largest default lag in ps (default half the run)")
    p.add_argument("--rmax", type=float, help="histogram range in Å (default min(10, half the smallest cell width))")
    p.add_argument("--bins", type=int, default=200, help="number of bins (default 200)")
    p.add_argument("--no-distinct", dest="distinct", action="store_false", help="skip the distinct part G_d")
    p.add_argument("--origin-stride", type=int, default=1,
                   help="origins of G_s every this many frames (default 1: every frame)")
    p.add_argument("--distinct-stride", type=int,
                   help="origins of G_d every this many frames (default: about 1000 origins per lag)")
    p.add_argument("--n-origins", type=int, help="at most this many origins per lag (default: all that fit)")
    p.add_argument("--no-alpha2", dest="alpha2", action="store_false",
                   help="skip the exact all-lag α₂ (FFT of the whole series); α₂ is still given at the histogram lags")
    d = p.add_mutually_exclusive_group()
    d.add_argument("--drift", dest="drift", action="store_true", default=None,
                   help="subtract the framework centre-of-mass drift (default: on whenever there are framework atoms)")
    d.add_argument("--no-drift", dest="drift", action="store_false", help="do not correct drift")
    p.add_argument("--drift-weights", choices=("mass", "unweighted"),
                   help="framework centre: mass-weighted (default) or the mean position")
    add_memory_option(p)
    add_frame_options(p)
    add_reader_options(p)
    add_output_options(p, json=True, csv=True, plot=True)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..analysis.vanhove import vanhove

    check_outputs(args, args.json, args.csv, args.plot)
    with open_from_args(args) as traj:
        res = vanhove(traj, args.species, lags=args.lags, n_lags=args.n_lags, max_lag=args.max_lag, rmax=args.rmax,
                      bins=args.bins, distinct=args.distinct, origin_stride=args.origin_stride,
                      distinct_stride=args.distinct_stride, n_origins=args.n_origins, alpha2=args.alpha2,
                      drift=args.drift, drift_weights=args.drift_weights, start=args.start, stop=args.stop,
                      step=args.step, memory=args.memory,
                      progress=progress_of(args))
    return finish_result(args, res)
