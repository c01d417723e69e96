"""``anionmotion md``: constrained MD through OpenMM (UC, RC, RTC, RTVC; SPEC §8)."""

from __future__ import annotations

import argparse
import sys

from ..errors import OptionError
from ..md.modes import RC_BACKEND_DEFAULT, RC_BACKENDS
from ._common import progress_of

MODE_CHOICES = ("UC", "RC", "RTC", "RTVC", "all")


def register(sub):
    p = sub.add_parser(
        "md", help="run constrained MD (UC/RC/RTC/RTVC) with OpenMM and write AMBER NetCDF",
        description="Constrained molecular dynamics of polyanion conductors through OpenMM (SPEC §8). "
                    "Modes: UC (unconstrained), RC (anion rotations restrained, Eckart), RTC (+ anion centre of "
                    "mass tethered), RTVC (anions frozen, zero masses). A killed run started again with the same "
                    "command resumes from its last checkpoint. Your own material: --structure FILE (CIF, POSCAR, "
                    "LAMMPS data, extxyz, a trajectory frame) with --potential chgnet, NAME:MODEL (OpenMM-ML: mace, "
                    "nequip …), ase:MODULE:CLASS (any ASE calculator, keywords by --potential-kw) or an OpenMM "
                    "System XML; e.g. anionmotion md --structure Li3PO4.cif --supercell 2x1x2 --potential chgnet "
                    "--mode all --out run.nc (docs/md.md, 'Your own material and potential').",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_argument_group("system (one of)")
    src.add_argument("--system", help="embedded model: li2so4 (α-Li2SO4-like rotor phase, a generic demonstration "
                                      "model)")
    src.add_argument("--cells", type=int, default=3, help="li2so4: conventional cells per axis (3 → 756 atoms)")
    src.add_argument("--structure", metavar="FILE",
                     help="your material: CIF, POSCAR/CONTCAR, LAMMPS data, extxyz, or a frame of any trajectory "
                          "anionmotion reads (--frame), run with --potential; with --system-xml: the PDB or "
                          "PDBx/mmCIF of that System (same atom order)")
    src.add_argument("--frame", type=int, help="--structure: frame of a trajectory file (negative: from the end)")
    src.add_argument("--structure-format", metavar="FMT",
                     help="--structure format: cif, poscar, lammps-data, extxyz, trajectory, pymatgen or "
                          "ase:<format>; guessed from the file name when not given")
    src.add_argument("--supercell", metavar="NAxNBxNC", help="--structure: repeat the cell, e.g. 3x3x2 (or 2 = 2x2x2)")
    src.add_argument("--types", help="--structure from a LAMMPS dump: type → element map, e.g. 1=Li,2=S,3=O")
    src.add_argument("--topology", help="--structure from a trajectory: its topology (LAMMPS data file of a dump, "
                                        "PDB/PSF/prmtop for MDTraj formats)")
    src.add_argument("--potential", metavar="P",
                     help="forces for --structure: chgnet (bundled pretrained model) or chgnet:MODEL; an OpenMM-ML "
                          "model with its file, NAME:MODEL (mace:my.model, nequip:x.nequip.pth, torchmdnet:x.ckpt, "
                          "deepmd:graph.pb …); any ASE calculator, ase:MODULE:CLASS (ase:deepmd.calculator:DP); or "
                          "a serialized OpenMM System, FILE.xml")
    src.add_argument("--potential-kw", action="append", metavar="KEY=VALUE",
                     help="keyword of the potential, repeatable: ASE calculator constructor (model=graph.pb), "
                          "OpenMM-ML createSystem/MLPotential (precision=single); values are Python literals or text")
    src.add_argument("--device", type=str.lower, choices=("cpu", "cuda"),
                     help="device of an ML potential (default: the package's choice); --platform is OpenMM's")
    src.add_argument("--system-xml", metavar="XML", help="user system: OpenMM System serialized as XML, with "
                                                         "--structure PDB/PDBx")
    src.add_argument("--anion-residues", nargs="+", metavar="RES", help="residue names of the anions (PDB route)")
    src.add_argument("--center", "--centre", dest="centre",
                     help="anion centre species (with --ligand; default for --structure: detected as in the analyses)")
    src.add_argument("--ligand", help="anion ligand species")
    src.add_argument("--cutoff", type=float, help="centre–ligand cutoff, Å (default for --structure: automatic)")
    r = p.add_argument_group("run")
    r.add_argument("--mode", default="UC",
                   help="UC, RC, RTC, RTVC, or all (the four from one equilibrated start: <out>_UC.nc …)")
    r.add_argument("--temperature", default="900",
                   help="K; a comma-separated list (500,600,700) runs the series temperatures × modes: "
                        "<stem>_<T>K_<MODE>.nc, each temperature with its own equilibrated start, and "
                        "<stem>.series.json for `anionmotion compare` (docs/md.md, 'Temperature series')")
    r.add_argument("--time", type=float, default=50.0, help="production per mode, ps")
    r.add_argument("--equilibrate", type=float, default=10.0, help="UC equilibration after minimisation, ps")
    r.add_argument("--reequilibrate", type=float, default=5.0,
                   help="equilibration after switching the mode on, ps (≥ 5 recommended)")
    r.add_argument("--timestep", type=float, default=1.0, help="fs")
    r.add_argument("--frame-every", type=int, default=5, help="MD steps between stored frames")
    r.add_argument("--k-rot", type=float, help="Eckart stiffness, kJ mol⁻¹ (amu nm²)⁻² (default 1e4)")
    r.add_argument("--k-com", type=float, help="COM tether stiffness, kJ mol⁻¹ nm⁻² (default 1e6)")
    r.add_argument("--libration-cm1", type=float,
                   help="instead of --k-rot: put the Eckart libration line at this wavenumber, cm⁻¹")
    r.add_argument("--tether-cm1", type=float,
                   help="instead of --k-com: put the COM tether line at this wavenumber, cm⁻¹")
    r.add_argument("--rc-backend", choices=RC_BACKENDS, default=RC_BACKEND_DEFAULT,
                   help="rotational restraint of RC/RTC: Eckart (CustomCompoundBondForce) or OpenMM's "
                        "OrientationRestraintForce (same libration line; docs/md.md, 'RC backends')")
    r.add_argument("--seed", type=int, default=1, help="random seed (velocities, thermostat), ≥ 1")
    r.add_argument("--thermostat", default="langevin", help="langevin (LangevinMiddle) or nose-hoover (chain)")
    r.add_argument("--friction", type=float, default=1.0, help="Langevin friction / Nosé–Hoover frequency, ps⁻¹")
    r.add_argument("--no-minimize", action="store_true", help="skip the energy minimisation")
    r.add_argument("--checkpoint-every", type=int, default=200, help="frames between checkpoints")
    r.add_argument("--platform", default="CPU", help="OpenMM platform: CPU, CUDA, OpenCL")
    r.add_argument("--threads", type=int, help="CPU threads of OpenMM and of a PyTorch potential (default: all cores)")
    r.add_argument("--nve-drift", type=float, metavar="PS",
                   help="after each mode: NVE (velocity Verlet) from the last frame for this long, energy drift per ps "
                        "in the constraints JSON (default: 0.5 ps or --time if shorter; 0: off)")
    a = p.add_argument_group("adaptive length (docs/md.md, 'Temperature series and adaptive length')")
    a.add_argument("--until-converged", type=float, metavar="REL_ERR",
                   help="extend each run in segments of --time ps (appended to the same file) until the relative "
                        "standard error of the cation D falls below REL_ERR (e.g. 0.1)")
    a.add_argument("--time-limit", type=float, metavar="PS", help="with --until-converged: longest production, ps")
    a.add_argument("--wall-limit", metavar="DURATION",
                   help="with --until-converged: wall-clock budget per run (seconds, or 90m, 2h, 1d); no segment is "
                        "started that would end beyond it")
    a.add_argument("--cation", help="with --until-converged: species whose D is checked; None: detected as in "
                                    "`anionmotion report`")
    o = p.add_argument_group("output")
    o.add_argument("--out", required=True, help="output NetCDF (AMBER convention); report in <stem>.constraints.json")
    o.add_argument("--overwrite", action="store_true", help="replace existing output files")
    o.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


_PDB_EXT = (".pdb", ".pdbx", ".mmcif")


def _system(args):
    from ..md.systems import SYSTEMS, build_li2so4, load_system

    structure_opts = [o for o, v in (("--frame", args.frame), ("--supercell", args.supercell),
                                     ("--structure-format", args.structure_format), ("--types", args.types),
                                     ("--topology", args.topology)) if v is not None]
    ml_opts = [o for o, v in (("--potential-kw", args.potential_kw), ("--device", args.device)) if v]
    if args.system is not None and (args.system_xml is not None or args.structure is not None
                                    or args.potential is not None):
        raise OptionError("give either --system or --structure (with --potential or --system-xml), not both")
    if args.system is not None:
        name = args.system.lower()
        if name not in SYSTEMS:
            raise OptionError(f"invalid --system {args.system!r}; choose one of {', '.join(SYSTEMS)} "
                              "(or --structure FILE with --potential)")
        return build_li2so4(args.cells)
    if args.system_xml is not None:
        # the PDB/PDBx route of a user OpenMM System (its original meaning of --structure)
        if args.potential is not None:
            raise OptionError("give either --system-xml or --potential, not both (--potential FILE.xml is the same "
                              "System with a structure in any format)")
        if args.structure is None:
            raise OptionError("--system-xml needs --structure PDB (or PDBx/mmCIF) with the same atoms")
        if structure_opts or ml_opts:
            raise OptionError(f"{', '.join(structure_opts + ml_opts)} cannot be used with --system-xml (use "
                              "--potential FILE.xml with --structure for that)")
        return load_system(args.system_xml, args.structure, anion_residues=args.anion_residues, centre=args.centre,
                           ligand=args.ligand, cutoff=args.cutoff)
    if args.structure is None:
        if args.potential is not None:
            raise OptionError("--potential needs --structure FILE (your material)")
        raise OptionError("no system: give --system li2so4, --structure FILE with --potential, or --system-xml FILE "
                          "with --structure FILE")
    if args.potential is None:
        raise OptionError("--structure needs --potential: chgnet, NAME:MODEL (mace, nequip …), ase:MODULE:CLASS or an "
                          "OpenMM System XML (or --system-xml for a PDB/PDBx structure)")
    from ..md.potentials import parse_potential, set_torch_threads
    from ..md.structure import build_md_system

    spec = parse_potential(args.potential, args.potential_kw, args.device)
    if spec.route == "openmm-xml" and str(args.structure).lower().endswith(_PDB_EXT):
        if structure_opts:
            raise OptionError(f"{', '.join(structure_opts)} cannot be used with a PDB/PDBx structure")
        return load_system(spec.path, args.structure, anion_residues=args.anion_residues, centre=args.centre,
                           ligand=args.ligand, cutoff=args.cutoff)
    if args.anion_residues:
        raise OptionError("--anion-residues needs a PDB/PDBx structure; for other files give --center/--ligand")
    from .._validate import parse_types

    set_torch_threads(args.threads)
    reader_kw = {k: v for k, v in (("types", parse_types(args.types)), ("topology", args.topology)) if v is not None}
    return build_md_system(args.structure, spec, frame=args.frame, supercell=args.supercell,
                           fmt=args.structure_format, center=args.centre, ligand=args.ligand, cutoff=args.cutoff,
                           reader_kw=reader_kw or None)


def run(args) -> int:
    import numpy as np

    from ..md.modes import K_COM_DEFAULT, K_ROT_DEFAULT, MODES, stiffness_for_wavenumbers
    from ..md.run import output_paths, run_md
    from ..md.structure import annotate_reports, format_anions

    mode = str(args.mode)
    if mode.lower() != "all" and mode.upper() not in MODES:
        raise OptionError(f"invalid --mode {args.mode!r}; choose one of {', '.join(MODE_CHOICES)}")
    if args.k_rot is not None and args.libration_cm1 is not None:
        raise OptionError("give --k-rot or --libration-cm1, not both")
    if args.k_com is not None and args.tether_cm1 is not None:
        raise OptionError("give --k-com or --tether-cm1, not both")
    from ..md.series import parse_temperatures, series_requested

    temps = parse_temperatures(args.temperature)
    if series_requested(args, temps):
        args.temperature = temps
    else:
        args.temperature = temps[0]
    nve_ps = _nve_drift_ps(args)
    mdsys = _system(args)
    k_rot = K_ROT_DEFAULT if args.k_rot is None else args.k_rot
    k_com = K_COM_DEFAULT if args.k_com is None else args.k_com
    if args.libration_cm1 is not None or args.tether_cm1 is not None:
        masses = np.array([mass.value_in_unit(mass.unit) for mass in
                           (mdsys.system.getParticleMass(i) for i in range(mdsys.n_atoms))])
        kr, kc = stiffness_for_wavenumbers(mdsys.positions, mdsys.box, mdsys.groups, masses,
                                           libration_cm1=args.libration_cm1, tether_cm1=args.tether_cm1)
        k_rot = kr if kr is not None else k_rot
        k_com = kc if kc is not None else k_com
    if series_requested(args, temps):           # several temperatures, --until-converged or Dask (batch md)
        from ..md.series import run_from_args

        return run_from_args(args, mdsys, _system, k_rot=k_rot, k_com=k_com, progress=progress_of(args),
                             nve_ps=nve_ps)
    print(f"anionmotion md: {mdsys.description}\n{format_anions(mdsys)}", file=sys.stderr)
    reports = run_md(mdsys, args.out, mode="all" if mode.lower() == "all" else mode.upper(),
                     temperature=args.temperature,
                     time=args.time, equilibrate=args.equilibrate, reequilibrate=args.reequilibrate,
                     timestep=args.timestep,
                     frame_every=args.frame_every, k_rot=k_rot, k_com=k_com, seed=args.seed,
                     thermostat=args.thermostat.lower(), friction=args.friction, minimize=not args.no_minimize,
                     platform=args.platform, threads=args.threads, overwrite=args.overwrite,
                     progress=progress_of(args), checkpoint_every=args.checkpoint_every, rc_backend=args.rc_backend)
    # the anion list, the potential and the NVE energy drift of every mode go into its constraints JSON
    annotate_reports(mdsys, reports, output_paths(args.out, list(reports)), nve_ps=nve_ps, timestep=args.timestep,
                     k_rot=k_rot, k_com=k_com, platform=args.platform, threads=args.threads,
                     rc_backend=args.rc_backend)
    return 0


def _nve_drift_ps(args):
    """Length of the NVE drift run (ps): --nve-drift, else 0.5 ps or the production if shorter."""
    import math

    if args.nve_drift is None:
        return min(0.5, float(args.time))
    v = args.nve_drift
    if not (math.isfinite(v) and v >= 0):
        raise OptionError(f"--nve-drift must be a time ≥ 0 in ps (0: off); got {v!r}")
    return float(v)
