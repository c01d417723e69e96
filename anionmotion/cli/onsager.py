"""``anionmotion onsager TRAJ --temperature K``: Onsager coefficients, collective σ, Haven ratio, D tensors (§9)."""

from __future__ import annotations

from ..errors import OptionError
from ._common import (add_frame_options, add_memory_option, add_output_options, add_reader_options, check_outputs,
                      open_from_args, progress_of, finish_result)

__all__ = ["register", "run", "parse_group_charges"]


def register(sub):
    p = sub.add_parser("onsager", help="Onsager coefficients L_ij (self/distinct), collective σ, transference numbers, "
                                       "Haven ratio, diffusion tensors",
                       description="Einstein cross-displacements ⟨ΣΔr_i·ΣΔr_j⟩ of every pair of groups (exact, all "
                                   "origins, FFT) → Onsager coefficients L_ij split into self and distinct parts, the "
                                   "collective conductivity, transference numbers and Haven ratios with block "
                                   "(jackknife) errors; the 3×3 diffusion tensor of each group with eigenvalues, axes "
                                   "and bootstrap errors (SPEC §9, docs/onsager.md).")
    p.add_argument("traj", help="trajectory file")
    p.add_argument("--groups", help="groups (species), e.g. Li,Cl (default: every species)")
    p.add_argument("--charges", default="formal",
                   help="charge of one member of each group: formal (default; one unknown group from "
                        "electroneutrality) or NAME=Z,… e.g. Li=1,PS4=-3,S=-2,Cl=-1")
    p.add_argument("--center", help="polyanion centre species (e.g. P): the polyanions form one group, moved by "
                                    "their centre atom")
    p.add_argument("--ligand", help="polyanion ligand species (e.g. S), with --center")
    p.add_argument("--cutoff", type=float, metavar="Å", help="centre–ligand cutoff (default: automatic)")
    p.add_argument("--temperature", type=float, metavar="K",
                   help="temperature (K) for L_ij and σ; default: from the trajectory when it records one")
    p.add_argument("--frame", choices=("system", "framework", "none"), default="system",
                   help="reference frame: centre of mass of the whole system (default), of the framework "
                        "(atoms in no group, not mobile cations), or none")
    p.add_argument("--drift-weights", choices=("mass", "unweighted"), default="mass",
                   help="centre of mass (default) or mean position for --frame")
    p.add_argument("--blocks", type=int, default=5, help="independent time blocks for the errors (default 5)")
    p.add_argument("--fit", type=float, nargs=2, metavar=("START", "END"),
                   help="fit window in ps of the block cross-displacements (default 0.1–0.5 of a block's longest lag)")
    p.add_argument("--tensor-fit", type=float, nargs=2, metavar=("START", "END"),
                   help="fit window in ps of the D tensors (default: the window of the scalar D fit)")
    p.add_argument("--no-tensors", dest="tensors", action="store_false", help="skip the diffusion tensors")
    p.add_argument("--tensor-groups", help="diffusion tensors of these groups only, e.g. Li (default: every group)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples over atoms (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    p.add_argument("--scratch-dir", help="directory for the out-of-core scratch file (default: system temp)")
    add_memory_option(p)
    add_frame_options(p)
    add_reader_options(p)
    add_output_options(p, json=True, csv=True, plot=True)
    p.set_defaults(func=run)
    return p


def parse_group_charges(text):
    """``"formal"`` or ``"Li=1,PS4=-3"`` → value accepted by :func:`anionmotion.onsager`."""
    if text == "formal":
        return text
    out = {}
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        if "=" not in part:
            raise OptionError(f"invalid --charges entry {part!r}; expected formal or NAME=Z,… e.g. Li=1,PS4=-3")
        k, v = part.split("=", 1)
        try:
            out[k] = float(v)
        except ValueError as err:
            raise OptionError(f"invalid --charges entry {part!r}: {v!r} is not a number") from err
    return out


def run(args) -> int:
    from ..analysis.onsager import onsager

    check_outputs(args, args.json, args.csv, args.plot)
    groups = None if not args.groups else args.groups.replace(",", " ").split()
    with open_from_args(args) as traj:
        res = onsager(traj, groups, charges=parse_group_charges(args.charges), center=args.center, ligand=args.ligand,
                      cutoff=args.cutoff, temperature=args.temperature, frame=args.frame,
                      drift_weights=args.drift_weights, n_blocks=args.blocks, fit=args.fit,
                      tensor_fit=args.tensor_fit,
                      tensors=args.tensor_groups if args.tensors and args.tensor_groups else args.tensors,
                      n_boot=args.n_boot, seed=args.seed,
                      start=args.start, stop=args.stop, step=args.step, scratch_dir=args.scratch_dir,
                      memory=args.memory, progress=progress_of(args))
    return finish_result(args, res)
