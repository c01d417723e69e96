"""``anionmotion bv STRUCTURE``: bond-valence E_mig, E_rot and the coupling mode (paper 002; SPEC §10)."""

from __future__ import annotations

from ..errors import OptionError
from ._common import add_output_options, check_outputs

__all__ = ["register", "run", "parse_oxidation_states", "format_summary"]


def register(sub):
    p = sub.add_parser("bv", help="bond-valence energetics of a structure: E_mig (1-D/2-D/3-D), E_rot per polyanion, "
                                  "E_mig/E_rot and the coupling mode (paper 002)",
                       description="Bond-valence site energies (softBV parameters, through BVlain) of the mobile "
                                   "cation and of the polyanion ligands: the cation's percolation barriers E_mig, "
                                   "the rotation energy E_rot of every symmetry-distinct polyanion (the lowest "
                                   "energy at which the ligand's accessible region closes a path around its "
                                   "centre), the ligand's own percolation energy, the ratio E_mig/E_rot (with the "
                                   "ligand's E_mig by default, as paper 002; --ratio-basis cation for the "
                                   "cation's) and the main coupling mode (rotate when the ratio >= 2). Needs the "
                                   "'structure' extra (pymatgen, bvlain).")
    p.add_argument("structure", help="structure file: CIF, POSCAR/CONTCAR, extxyz, LAMMPS data …")
    p.add_argument("--cation", help="mobile cation (default: the first of Li, Na, K, … present)")
    p.add_argument("--grid-spacing", type=float, default=0.2, metavar="A",
                   help="spacing of the BVSE grids in Å (default 0.2)")
    p.add_argument("--center", help="polyanion centre species (default: every isolated polyanion found)")
    p.add_argument("--ligand", help="polyanion ligand species (with --center)")
    p.add_argument("--oxidation-states", metavar="EL=Q,…",
                   help="oxidation states, e.g. Li=1,P=5,S=-2 (default: pymatgen's BVAnalyzer)")
    p.add_argument("--migration-dimension", choices=("1D", "2D", "3D"), default="3D",
                   help="percolation barrier used as E_mig in the ratio (default 3D)")
    p.add_argument("--ratio-basis", choices=("cation", "ligand"), default="ligand",
                   help="E_mig in E_mig/E_rot and the mode: the ligand's own percolation energy (default: paper "
                        "002's reading, which its Table S1 follows) or the mobile cation's barrier (both printed)")
    p.add_argument("--encut", type=float, default=10.0, metavar="EV",
                   help="highest energy searched above the minimum, eV (default 10)")
    p.add_argument("--memory", metavar="SIZE",
                   help="memory budget of one BVSE grid, e.g. 4GB (default: half of the available RAM)")
    p.add_argument("--disorder", choices=("refuse", "order"), default="refuse",
                   help="partially occupied sites: refuse (default) or keep the most probable occupant")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--cube", metavar="FILE", help="write the cation BVSE landscape (eV above its minimum) as a "
                                                  "Gaussian cube file for VESTA")
    g.add_argument("--chgcar", metavar="FILE", help="write the cation BVSE landscape (eV above its minimum) as "
                                                    "a VASP CHGCAR file for VESTA")
    add_output_options(p, json=True)
    p.set_defaults(func=run)
    return p


def parse_oxidation_states(text):
    """``"Li=1,P=5,S=-2"`` → ``{"Li": 1, "P": 5, "S": -2}`` (None stays None)."""
    if text is None:
        return None
    out = {}
    for part in str(text).replace(" ", ",").split(","):
        if not part:
            continue
        if "=" not in part:
            raise OptionError(f"--oxidation-states: expected EL=Q pairs like Li=1,S=-2; got {part!r}")
        el, q = part.split("=", 1)
        try:
            out[el.strip()] = int(q)
        except ValueError:
            raise OptionError(f"--oxidation-states: the charge of {el.strip()} must be an integer; got {q!r}") \
                from None
    if not out:
        raise OptionError("--oxidation-states: give at least one EL=Q pair")
    return out


def _f(v, fmt="{:.3f}"):
    return "—" if v is None else fmt.format(v)


def format_summary(res) -> str:
    """Human-readable summary of :func:`anionmotion.structures.bv.bv_summary`."""
    lines = [f"{res['formula']} ({res['structure']})",
             f"  mobile cation: {res['cation'] or '—'}; oxidation states {res['oxidation_states']} "
             f"({res['oxidation_states_from']})",
             f"  E_mig (eV above the BVSE minimum): 1D {_f(res['E_mig_1D_eV'])}, 2D {_f(res['E_mig_2D_eV'])}, "
             f"3D {_f(res['E_mig_3D_eV'])}"]
    for r in res["polyanions"]:
        lines.append(f"  {r['type']} centre #{r['center_index']} (×{r['multiplicity']}, {r['center']}–{r['ligand']} "
                     f"{r['bond_length_A']:.3f} Å): E_rot = {_f(r['E_rot_eV'])} eV")
    for lig, e in res.get("E_mig_ligand_eV", {}).items():
        lines.append(f"  ligand {lig} percolation (eV above its minimum): "
                     + ", ".join(f"{d} {_f(v)}" for d, v in e.items()))
    lines.append(f"  E_rot (lowest) = {_f(res['E_rot_min_eV'])} eV; E_mig/E_rot ({res['migration_dimension']}) = "
                 f"{_f(res.get('ratio_cation'), '{:.2f}')} with the cation's E_mig ({res.get('mode_cation') or '—'}), "
                 f"{_f(res.get('ratio_ligand'), '{:.2f}')} with the ligand's ({res.get('mode_ligand') or '—'})")
    lines.append(f"  main coupling mode ({res['ratio_basis']} basis): {res['mode'] or '—'}")
    lines.append(f"  rule: {res['mode_rule']}")
    for name, g in res["grid"].items():
        lines.append(f"  grid ({name}): {g['shape'][0]}×{g['shape'][1]}×{g['shape'][2]} points, spacing "
                     + ", ".join(f"{s:.3f}" for s in g["spacing_A"]) + " Å")
    lines.append(f"  parameters: {res['parameters']['source']}")
    if res.get("reason"):
        lines.append(f"  note: {res['reason']}")
    return "\n".join(lines)


def run(args) -> int:
    from ..results import to_jsonable, write_json
    from ..structures import load_structure
    from ..structures.bv import bv_summary, write_landscape

    check_outputs(args, args.json, args.cube, args.chgcar)
    ox = parse_oxidation_states(args.oxidation_states)
    if (args.center is None) != (args.ligand is None):
        raise OptionError("give both --center and --ligand (or neither, to detect them)")
    st = load_structure(args.structure, disorder=args.disorder)
    res = bv_summary(st, cation=args.cation, grid_spacing=args.grid_spacing, oxidation_states=ox,
                     center=args.center, ligand=args.ligand, migration_dimension=args.migration_dimension,
                     encut=args.encut, keep_landscape=bool(args.cube or args.chgcar), require_cation=True,
                     ratio_basis=args.ratio_basis, memory=args.memory)
    land = res.pop("landscape", None)
    print(format_summary(res))
    out = args.cube or args.chgcar
    if out:
        write_landscape(land, out, overwrite=args.overwrite)
        print(f"  landscape written to {out}")
    if args.json:
        write_json(args.json, to_jsonable(res), overwrite=args.overwrite)
    return 0
