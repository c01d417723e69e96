"""``anionmotion md``: constrained MD through OpenMM (UC, RC, RTC, RTVC; SPEC §8)."""

from __future__ import annotations

import argparse

from ..errors import OptionError
from ._common import progress_of

MODE_CHOICES = ("UC", "RC", "RTC", "RTVC", "all")


def register(sub):
    p = sub.add_parser(
        "md", help="run constrained MD (UC/RC/RTC/RTVC) with OpenMM and write AMBER NetCDF",
        description="Constrained molecular dynamics of polyanion conductors through OpenMM (SPEC §8). "
                    "Modes: UC (unconstrained), RC (anion rotations restrained, Eckart), RTC (+ anion centre of "
                    "mass tethered), RTVC (anions frozen, zero masses). A killed run started again with the same "
                    "command resumes from its last checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_argument_group("system (one of)")
    src.add_argument("--system", help="embedded model: li2so4 (α-Li2SO4-like rotor phase, a generic demonstration "
                                      "model)")
    src.add_argument("--cells", type=int, default=3, help="li2so4: conventional cells per axis (3 → 756 atoms)")
    src.add_argument("--system-xml", metavar="XML", help="user system: OpenMM System serialized as XML")
    src.add_argument("--structure", metavar="PDB", help="user system: PDB or PDBx/mmCIF structure (same atom order)")
    src.add_argument("--anion-residues", nargs="+", metavar="RES", help="residue names of the anions")
    src.add_argument("--center", "--centre", dest="centre", help="anion centre species (with --ligand, --cutoff)")
    src.add_argument("--ligand", help="anion ligand species")
    src.add_argument("--cutoff", type=float, help="centre–ligand cutoff, Å")
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
    r.add_argument("--rc-backend", choices=("eckart", "orientation"), default="eckart",
                   help="rotational restraint of RC/RTC: Eckart (CustomCompoundBondForce) or OpenMM's "
                        "OrientationRestraintForce (same libration line; docs/md.md, 'RC backends')")
    r.add_argument("--seed", type=int, default=1, help="random seed (velocities, thermostat), ≥ 1")
    r.add_argument("--thermostat", default="langevin", help="langevin (LangevinMiddle) or nose-hoover (chain)")
    r.add_argument("--friction", type=float, default=1.0, help="Langevin friction / Nosé–Hoover frequency, ps⁻¹")
    r.add_argument("--no-minimize", action="store_true", help="skip the energy minimisation")
    r.add_argument("--checkpoint-every", type=int, default=200, help="frames between checkpoints")
    r.add_argument("--platform", default="CPU", help="OpenMM platform: CPU, CUDA, OpenCL")
    r.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    a = p.add_argument_group("adaptive length (docs/md.md, 'Temperature series and adaptive length')")
    a.add_argument("--until-converged", type=float, metavar="REL_ERR",
                   help="extend each run in segments of --time ps (appended to the same file) until the relative "
                        "standard error of the cation D falls below REL_ERR (e.g. 0.1)")
    a.add_argument("--time-limit", type=float, metavar="PS", help="with --until-converged: longest production, ps")
    a.add_argument("--wall-limit", metavar="DURATION",
                   help="with --until-converged: wall-clock budget per run (seconds, or 90m, 2h, 1d); no segment is "
                        "started that would end beyond it")
    a.add_argument("--cation", help="with --until-converged: species whose D is checked (default: detected as in "
                                    "`anionmotion report`)")
    o = p.add_argument_group("output")
    o.add_argument("--out", required=True, help="output NetCDF (AMBER convention); report in <stem>.constraints.json")
    o.add_argument("--overwrite", action="store_true", help="replace existing output files")
    o.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def _system(args):
    from ..md.systems import SYSTEMS, build_li2so4, load_system

    if args.system is not None and args.system_xml is not None:
        raise OptionError("give either --system or --system-xml/--structure, not both")
    if args.system is not None:
        name = args.system.lower()
        if name not in SYSTEMS:
            raise OptionError(f"invalid --system {args.system!r}; choose one of {', '.join(SYSTEMS)} "
                              "(or --system-xml with --structure)")
        return build_li2so4(args.cells)
    if args.system_xml is None or args.structure is None:
        raise OptionError("no system: give --system li2so4, or --system-xml FILE with --structure FILE")
    return load_system(args.system_xml, args.structure, anion_residues=args.anion_residues, centre=args.centre,
                       ligand=args.ligand, cutoff=args.cutoff)


def run(args) -> int:
    import numpy as np

    from ..md.modes import K_COM_DEFAULT, K_ROT_DEFAULT, MODES, stiffness_for_wavenumbers
    from ..md.run import run_md

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

        return run_from_args(args, mdsys, _system, k_rot=k_rot, k_com=k_com, progress=progress_of(args))
    run_md(mdsys, args.out, mode="all" if mode.lower() == "all" else mode.upper(), temperature=args.temperature,
           time=args.time, equilibrate=args.equilibrate, reequilibrate=args.reequilibrate, timestep=args.timestep,
           frame_every=args.frame_every, k_rot=k_rot, k_com=k_com, seed=args.seed,
           thermostat=args.thermostat.lower(), friction=args.friction, minimize=not args.no_minimize,
           platform=args.platform, threads=args.threads, overwrite=args.overwrite,
           progress=progress_of(args), checkpoint_every=args.checkpoint_every, rc_backend=args.rc_backend)
    return 0
