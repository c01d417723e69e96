"""``anionmotion density TRAJ --species Li --out li.CHGCAR``: probability density grids and 1-D profiles (SPEC §7)."""

from __future__ import annotations

from ._common import (add_frame_options, add_memory_option, add_output_options, add_reader_options, check_outputs,
                      open_from_args, progress_of, write_outputs)

__all__ = ["register", "run"]


def register(sub):
    p = sub.add_parser("density", help="probability density of a species on a fractional grid (CHGCAR/cube/NetCDF)",
                       description="Time-averaged number density (Å⁻³) of a species on a grid in fractional "
                                   "coordinates, written as VASP CHGCAR (VESTA), Gaussian cube or NetCDF; "
                                   "optional 1-D distribution along a cell axis (SPEC §7).")
    p.add_argument("traj", help="trajectory file")
    p.add_argument("--species", required=True, nargs="+", help="species to bin (e.g. Li)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--grid", type=int, nargs=3, metavar=("NA", "NB", "NC"), help="grid points along a, b, c")
    g.add_argument("--spacing", type=float, help="voxel edge along each cell vector, Å (default 0.2)")
    p.add_argument("--out", help="grid file: NAME.CHGCAR (or CHGCAR), NAME.cube or NAME.nc")
    p.add_argument("--axis", choices=("a", "b", "c"), help="also report the 1-D distribution along this cell axis")
    p.add_argument("--profile-bins", type=int, help="bins of the 1-D distribution (default: grid points on that axis)")
    p.add_argument("--remove-drift", nargs="?", const="framework", metavar="SPECIES",
                   help="subtract the framework's centre-of-mass drift before binning (default framework = every "
                        "other atom; or name species, e.g. 'S O')")
    add_memory_option(p)
    add_frame_options(p)
    add_reader_options(p)
    add_output_options(p, json=True, csv=True, plot=True)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..analysis.density import density
    from ..errors import OptionError
    from ..report.grids import _format_of, write_grid

    if not (args.out or args.json or args.csv or args.plot):
        raise OptionError("nothing to write: give --out GRID (and/or --json, --csv with --axis, --plot with --axis)")
    if args.csv and not args.axis:
        raise OptionError("--csv writes the 1-D distribution along one cell vector; give --axis a|b|c")
    if args.out:
        _format_of(args.out)
    check_outputs(args, args.out, args.json, args.csv, args.plot)
    species = " ".join(args.species)
    with open_from_args(args) as traj:
        res = density(traj, species, grid=args.grid, spacing=args.spacing, profile_bins=args.profile_bins,
                      remove_drift=args.remove_drift, start=args.start, stop=args.stop, step=args.step,
                      memory=args.memory, progress=progress_of(args))
    print(res.summary())
    if args.out:
        write_grid(res, args.out, overwrite=args.overwrite)
        print(f"wrote {args.out}")
    if args.axis:
        pr = res.profiles[args.axis]
        i = int(pr["p"].argmax())
        print(f"distribution along {args.axis}: maximum p = {pr['p'][i]:.4g} at s = {pr['s'][i]:.4f} "
              f"({pr['x_A'][i]:.3f} Å)")
    write_outputs(args, json_data=res.to_dict)
    if args.csv:
        res.write_csv(args.csv, which=f"density_profile_{args.axis}.csv", overwrite=args.overwrite)
    if args.plot:
        res.save_plot(args.plot, overwrite=args.overwrite, dpi=150)
    return 0
