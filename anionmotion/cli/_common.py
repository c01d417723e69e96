"""Pieces shared by every subcommand: the reader options, output checks, plotting import."""

from __future__ import annotations

import argparse

from .._validate import parse_types
from ..errors import OptionError
from ..plotting import need_matplotlib  # noqa: F401  (re-exported for the subcommands)

__all__ = ["add_memory_option", "add_reader_options", "open_from_args", "add_output_options", "reader_kwargs", "need_matplotlib",
           "add_frame_options", "add_polyanion_options", "check_outputs", "write_outputs", "progress_of"]


def add_reader_options(p: argparse.ArgumentParser):
    """Add the reader options shared by every subcommand (same names as :func:`anionmotion.open` keywords)."""
    g = p.add_argument_group("reader options")
    g.add_argument("--format", help="force a format: lammps, netcdf, cp2k, xdatcar, extxyz, mdtraj, vasprun, outcar, "
                                    "ase, h5md (default: detect)")
    g.add_argument("--timestep", type=float, help="MD time step in ps (LAMMPS: time = TIMESTEP × this)")
    g.add_argument("--frame-interval", type=float, help="time between stored frames in ps (XDATCAR: POTIM×NBLOCK/1000)")
    g.add_argument("--lammps-units", default="metal",
                   help="LAMMPS unit style: metal (default), real, electron (bohr, fs), or lj (reduced, not converted)")
    g.add_argument("--types", help="LAMMPS type → element map, e.g. 1=Li,2=P,3=S")
    g.add_argument("--cell", type=float, nargs="+", metavar="A",
                   help="cell for files without one: 3 lengths or 9 numbers (rows a, b, c), Å")
    g.add_argument("--vel", help="CP2K velocity file when not found next to the positions")
    g.add_argument("--cell-file", help="CP2K .cell file when not found next to the positions")
    g.add_argument("--topology", help="topology: for MDTraj/NetCDF formats a PDB, PSF, prmtop …; for a LAMMPS "
                   "dump its LAMMPS data file (types, elements, masses, charges by atom id)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_memory_option(p):
    """``--memory``: the one memory budget of every analysis (default half of the available RAM)."""
    p.add_argument("--memory", metavar="SIZE",
                   help="memory budget, e.g. 2GB (default: half of the available RAM); peak memory does not grow "
                        "with the trajectory length")


def reader_kwargs(args) -> dict:
    """Keyword arguments for :func:`anionmotion.open` from parsed CLI options."""
    cell = None
    if args.cell is not None:
        if len(args.cell) not in (3, 9):
            raise OptionError(f"--cell takes 3 lengths or 9 numbers; got {len(args.cell)}")
        cell = args.cell
    return dict(format=args.format, timestep=args.timestep, frame_interval=args.frame_interval,
                lammps_units=args.lammps_units, types=parse_types(args.types), cell=cell, vel=args.vel,
                cell_file=args.cell_file, topology=args.topology,
                progress=False if args.no_progress else None)


def open_from_args(args, path=None):
    """Open ``args.traj`` (or ``path``) with the reader options."""
    from .. import open as am_open

    return am_open(path or args.traj, **reader_kwargs(args))


def add_output_options(p: argparse.ArgumentParser, *, json=True, csv=False, plot=False):
    """Add ``--json/--csv/--plot`` and ``--overwrite``."""
    if json:
        p.add_argument("--json", metavar="FILE", help="write the result as JSON")
    if csv:
        p.add_argument("--csv", metavar="FILE", help="write the main table as CSV")
    if plot:
        p.add_argument("--plot", metavar="FILE", help="write a figure (PNG/PDF/SVG; needs matplotlib)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")


def add_frame_options(p):
    """``--start/--stop/--step``: the frame range (0-based, stop exclusive)."""
    g = p.add_argument_group("frame range")
    g.add_argument("--start", type=int, help="first frame (default 0)")
    g.add_argument("--stop", type=int, help="stop before this frame (default: the end)")
    g.add_argument("--step", type=int, help="frame stride (default 1)")


def add_polyanion_options(p, *, required_center=False, frames=True, purpose=""):
    """``--center/--ligand/--cluster/--cutoff`` defining the polyanions (SPEC §4), plus the frame range."""
    g = p.add_argument_group("polyanion definition (SPEC §4)" + (f" {purpose}" if purpose else ""))
    g.add_argument("--center", required=required_center, help="centre species of the polyanion, e.g. P")
    g.add_argument("--ligand", help="ligand species, e.g. S (clusters: orientation species, default the lightest)")
    g.add_argument("--cluster", help="species of centre-less clusters, e.g. 'B H' for B12H12 (instead of --center)")
    g.add_argument("--cutoff", type=float, metavar="Å",
                   help="centre–ligand cutoff (Å); default: first gap of the distance distribution in the first frame")
    if frames:
        add_frame_options(p)


def check_outputs(args, *paths):
    """Refuse existing output files (unless ``--overwrite``) before any work is done."""
    from ..results import check_output

    for path in paths:
        if path:
            check_output(path, args.overwrite)


def write_outputs(args, *, json_data=None, csv_text=None):
    """Write ``--json`` and ``--csv`` (text) when they were asked for.

    ``json_data`` is a dict or, better, a callable returning it: it is then built only when ``--json`` was
    given, inside :func:`anionmotion.results.json_arrays`, so that long arrays are streamed to the file
    instead of being turned into Python lists first.
    """
    from ..results import json_arrays, write_json, write_text_atomic

    if getattr(args, "json", None) and json_data is not None:
        with json_arrays():
            data = json_data() if callable(json_data) else json_data
            write_json(args.json, data, overwrite=args.overwrite)
        del data
    if getattr(args, "csv", None) and csv_text is not None:
        write_text_atomic(args.csv, csv_text() if callable(csv_text) else csv_text, overwrite=args.overwrite)


def finish_result(args, res, *, dpi=150) -> int:
    """Print ``res.summary()`` and write what ``--json``/``--csv``/``--plot`` asked for from the result's own
    views (``to_dict``, ``write_csv``, ``save_plot``); the tail every analysis subcommand shares.  Returns 0."""
    print(res.summary())
    write_outputs(args, json_data=res.to_dict)
    if getattr(args, "csv", None):
        res.write_csv(args.csv, overwrite=args.overwrite)
    if getattr(args, "plot", None):
        res.save_plot(args.plot, overwrite=args.overwrite, dpi=dpi)
    return 0


def progress_of(args):
    """Progress-bar setting from ``--no-progress`` (None = only on a terminal)."""
    return False if getattr(args, "no_progress", False) else None
