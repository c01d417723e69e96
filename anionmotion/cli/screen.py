"""``anionmotion screen STRUCTURE…``: framework connectivity, VPA, AAL, polyanions and the paper-003 verdict."""

from __future__ import annotations

import math

__all__ = ["register", "run"]


def _positive_int(text):
    import argparse

    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}")
    return v


def _nonneg_float(text):
    import argparse

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number; got {text!r}") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"must be a finite non-negative number; got {text!r}")
    return v


def _pos_float(text):
    import argparse

    v = _nonneg_float(text)
    if v == 0:
        raise argparse.ArgumentTypeError(f"must be a positive number; got {text!r}")
    return v


def register(sub):
    p = sub.add_parser("screen", help="screen crystal structures: framework connectivity, VPA, AAL, polyanions, "
                                      "paper-003 verdict, bond-valence columns",
                       description="Screen crystal structures (CIF, POSCAR, extxyz, LAMMPS data, any file pymatgen "
                                   "or ASE reads) for an isolated polyanion framework (paper 003): connectivity of "
                                   "the non-mobile cation polyhedra (isolated / corner / edge / face-sharing / "
                                   "mixed), volume per atom (VPA), average anion length (AAL), the polyanions, the "
                                   "verdict and the bond-valence columns (docs/screening.md). Exit status 2 only "
                                   "when every file failed; a failed file otherwise gets an error column.")
    p.add_argument("structure", nargs="+", help="structure files")
    p.add_argument("--cation", help="mobile cation (default: detected as in `report`: the first of Li, Na, K, Ag, "
                                    "Cu, Mg, Zn, Ca, Rb, Cs present)")
    p.add_argument("--disorder", choices=("refuse", "order"), default="refuse",
                   help="partially occupied sites: refuse the file (default, as the loader) or keep the most "
                        "probable occupant of every site")
    p.add_argument("--format", dest="fmt", help="structure format for every file (default: from the file name)")
    p.add_argument("--jobs", type=_positive_int, default=2, help="worker processes (default 2)")
    p.add_argument("--bv", choices=("none", "candidates", "all"), default=None,
                   help="bond-valence columns (E_mig, E_rot, coupling mode; 1–20 s per structure): none (default: "
                        "100 structures screen in seconds), candidates (only files that pass the paper-003 filter, "
                        "as in the papers' workflow) or all")
    p.add_argument("--no-bv", action="store_true", help="the same as --bv none")
    p.add_argument("--tol", type=_nonneg_float, default=None,
                   help="ligands of a species within (1 + tol) × the shortest centre–ligand distance (default 0.25)")
    p.add_argument("--bond-scale", type=_pos_float, default=None,
                   help="bond limit = bond-scale × (sum of covalent radii) (default 1.25)")
    p.add_argument("--json", metavar="FILE", help="write every row with the parameters and definitions as JSON")
    p.add_argument("--csv", metavar="FILE", help="write the table as CSV")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def _fmt(v, spec):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(v, spec)


def run(args) -> int:
    import os

    from ..errors import OptionError
    from ..results import check_output
    from ..structures.framework import DEFAULT_BOND_SCALE, DEFAULT_TOL
    from ..structures.screen import screen_files, write_screen_csv, write_screen_json

    outs = [p for p in (args.json, args.csv) if p]
    if len(outs) == 2 and os.path.abspath(args.json) == os.path.abspath(args.csv):
        raise OptionError(f"--json and --csv name the same file {args.json}")
    for p in outs:
        check_output(p, args.overwrite)
    from ..structures.screen import _check_cation

    cation = _check_cation(args.cation) if args.cation else None
    tol = DEFAULT_TOL if args.tol is None else args.tol
    scale = DEFAULT_BOND_SCALE if args.bond_scale is None else args.bond_scale
    if args.no_bv and args.bv not in (None, "none"):
        raise OptionError(f"give --bv {args.bv} or --no-bv, not both")
    bv = "none" if args.no_bv or args.bv is None else args.bv
    rows = screen_files(args.structure, cation=cation, disorder=args.disorder, fmt=args.fmt, bv=bv,
                        jobs=args.jobs, progress=False if args.no_progress else None, tol=tol, bond_scale=scale)
    params = {"cation": cation or "detected per file", "disorder": args.disorder, "format": args.fmt,
              "jobs": args.jobs, "bv": bv, "tol": tol, "bond_scale": scale}
    print(f"disorder policy: {args.disorder} ("
          + ("partially occupied files are refused" if args.disorder == "refuse"
             else "the most probable occupant of every partially occupied site") + ")")
    head = f"{'file':<28} {'formula':<22} {'connectivity':<15} {'VPA Å³':>7} {'AAL Å':>6} {'polyanion':<9} verdict"
    print(head)
    for r in rows:
        name = os.path.basename(r["file"])
        if r["error"]:
            print(f"{name:<28} error: {r['error']}")
            continue
        print(f"{name:<28} {str(r['formula']):<22} {r['connectivity']:<15} {_fmt(r['VPA_A3'], '7.3f')} "
              f"{_fmt(r['AAL_A'], '6.3f')} {str(r['polyanion'] or '–'):<9} {r['verdict']}"
              + (f" [bv: {r['bv_reason']}]" if r["bv_status"] not in ("ok", "skipped") else ""))
    n_bad = sum(1 for r in rows if r["error"])
    n_cand = sum(1 for r in rows if r.get("candidate"))
    print(f"{len(rows)} file(s): {n_cand} candidate(s), {n_bad} failed")
    if args.json:
        write_screen_json(args.json, rows, params, overwrite=args.overwrite)
        print(f"written {args.json}")
    if args.csv:
        write_screen_csv(args.csv, rows, overwrite=args.overwrite)
        print(f"written {args.csv}")
    if n_bad == len(rows):
        first = rows[0]["error"]
        raise OptionError(f"every file failed ({n_bad}); first: {first}")
    return 0
