"""``anionmotion msd TRAJ --species Li [--temperature K] [--fit START END] ...``: MSD, D and σ (SPEC §2)."""

from __future__ import annotations

from ..errors import OptionError
from ._common import (add_frame_options, add_output_options, add_reader_options, check_outputs, open_from_args,
                      progress_of)

__all__ = ["register", "run", "parse_charges"]


def register(sub):
    p = sub.add_parser("msd", help="all-origin MSD, diffusion coefficient with error, conductivity, TMSD (SPEC §2)",
                       description="Exact all-origin MSD of a species (any trajectory length, bounded memory), D in its "
                                   "diffusive regime with an error that matches the scatter of replicas (and the "
                                   "He et al. estimate), Nernst–Einstein σ, TMSD flags.")
    p.add_argument("traj", help="trajectory file")
    p.add_argument("--species", required=True, help="mobile species, e.g. Li")
    p.add_argument("--temperature", type=float, metavar="K",
                   help="temperature (K) for σ; default: from the trajectory when it records one")
    p.add_argument("--charge", type=float, metavar="Z", help="charge of one ion (e); default: formal ionic charge")
    p.add_argument("--fit", type=float, nargs=2, metavar=("START", "END"),
                   help="fit window in ps (default: 0.1–0.5 of the longest lag)")
    p.add_argument("--memory", help="memory budget, e.g. 2GB or 500MB (default: half the available RAM); the "
                                    "positions stay in memory only when they fit half of it, otherwise they go "
                                    "through a scratch file (--scratch-dir) and peak memory does not grow with "
                                    "the trajectory length")
    drift = p.add_mutually_exclusive_group()
    drift.add_argument("--drift", dest="drift", action="store_true", default=None,
                       help="subtract the framework centre-of-mass motion (default: on whenever the trajectory "
                            "has framework atoms, for every file format)")
    drift.add_argument("--no-drift", dest="drift", action="store_false", help="no drift correction")
    p.add_argument("--drift-weights", choices=("mass", "unweighted"), default=None,
                   help="framework centre for the drift correction: mass-weighted (default) or the unweighted mean "
                        "position (as pymatgen)")
    p.add_argument("--collective", action="store_true",
                   help="also the collective (charge) conductivity and the Haven ratio")
    p.add_argument("--charges", default="trajectory",
                   help="charges for --collective: trajectory (default), formal, or per species e.g. Li=1,P=5,S=-2,Cl=-1")
    p.add_argument("--estimator", choices=("auto", "gls", "ols", "he"), default="auto",
                   help="D estimator: auto (default: fit where the MSD's local slope has converged, error from the "
                        "observed MSD's covariance), gls, ols or he (see docs/diffusion.md)")
    p.add_argument("--hop-distance", type=float, metavar="Å",
                   help="a of the He et al. error estimate (default: nearest-neighbour distance of the species)")
    p.add_argument("--no-tensor", dest="tensor", action="store_false",
                   help="skip the 3×3 D tensor (eigenvalues, axes, bootstrap errors over atoms) fitted on the same "
                        "window as D; computed in the same pass over the trajectory as the MSD, plus forward FFTs "
                        "of the positions already held for the per-atom slopes")
    p.add_argument("--no-alpha2", dest="alpha2", action="store_false",
                   help="skip the non-Gaussian parameter α₂(τ) (computed in the same pass; ~4× the MSD's FFT work)")
    add_frame_options(p)
    p.add_argument("--scratch-dir", help="directory for the out-of-core scratch file (default: system temp)")
    add_reader_options(p)
    add_output_options(p, json=True, csv=True, plot=True)
    p.set_defaults(func=run)
    return p


def parse_charges(text):
    """``"trajectory"``, ``"formal"`` or ``"Li=1,P=5,S=-2"`` → value accepted by :func:`anionmotion.msd`."""
    if text in ("trajectory", "formal"):
        return text
    out = {}
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        if "=" not in part:
            raise OptionError(f"invalid --charges entry {part!r}; expected trajectory, formal or SPECIES=Z,… "
                              "e.g. Li=1,P=5,S=-2,Cl=-1")
        k, v = part.split("=", 1)
        try:
            out[k] = float(v)
        except ValueError as err:
            raise OptionError(f"invalid --charges entry {part!r}: {v!r} is not a number") from err
    return out


def run(args) -> int:
    from ..analysis.diffusion import fit_diffusion, report_dict
    from ..analysis.msd import msd
    from ..results import json_arrays, write_json

    check_outputs(args, args.json, args.csv, args.plot)
    charges = parse_charges(args.charges)
    with open_from_args(args) as traj:
        res = msd(traj, species=args.species, drift=args.drift, drift_weights=args.drift_weights,
                  temperature=args.temperature, charge=args.charge, collective=args.collective, charges=charges,
                  start=args.start, stop=args.stop, step=args.step, memory=args.memory, scratch_dir=args.scratch_dir,
                  progress=progress_of(args), alpha2=args.alpha2, tensor=args.tensor, tensor_fit=args.fit,
                  tensor_estimator=args.estimator, hop_distance=args.hop_distance)
        print(res.summary())
        fit = None
        # the D tensor was fitted inside msd() on the window of this same fit (its lags: trace/3 equals D)
        tensor = res.d_tensor
        if len(res.lag) >= 4:
            fit = fit_diffusion(res, fit=args.fit, hop_distance=args.hop_distance, estimator=args.estimator)
            print(fit.summary())
            if tensor is not None:
                print(tensor.summary())
            elif args.tensor:
                print(f"D tensor     {res.meta.get('tensor')}")
        else:
            print("D            not fitted (fewer than 4 lags)")
    if args.json:
        with json_arrays():
            d = report_dict(res, fit)
            if tensor is not None and d.get("diffusion") is not None:
                td = tensor.to_dict(series=False)
                d["diffusion"]["D_tensor_cm2_s"] = td["D_tensor_cm2_s"]
                d["diffusion"]["D_tensor"] = td
            write_json(args.json, d, overwrite=args.overwrite)
    if args.csv:
        res.write_csv(args.csv, overwrite=args.overwrite)
    if args.plot:
        res.save_plot(args.plot, fit=fit, overwrite=args.overwrite, dpi=150)
    return 0
