"""Trajectory readers and format detection.

``open(path, **options)`` picks a reader from the ``format`` option, the file
name, or the file's first bytes, and wraps it in a
:class:`~anionmotion.trajectory.Trajectory`.  Readers are registered in
:data:`FORMATS` and imported only when used.
"""

from __future__ import annotations

import fnmatch
import importlib
import os

import numpy as np

from ..errors import FormatError, OptionError
from .base import BaseReader, RawFrames, ReaderOptions, check_input_file, compression_of, open_binary

__all__ = ["open_reader", "FORMATS", "detect_format", "ReaderOptions", "BaseReader", "RawFrames", "open_binary"]

#: format name -> (module, class, file-name patterns (case-insensitive, compression suffix stripped), description)
FORMATS = {
    "lammps": ("anionmotion.io.lammps", "LammpsDumpReader",
               ("*.lammpstrj", "*.dump", "*.lammpsdump", "dump.*", "*.dump.*", "*.lammps"),
               "LAMMPS dump text (custom/atom style), gzip/bz2 allowed"),
    "netcdf": ("anionmotion.io.netcdf", "NetCDFReader", ("*.nc", "*.ncdf", "*.netcdf"),
               "AMBER-convention NetCDF (LAMMPS dump netcdf incl. CDF-5, AMBER, OpenMM, anionmotion md)"),
    "cp2k": ("anionmotion.io.cp2k", "CP2KReader", ("*-pos-*.xyz",),
             "CP2K XMOL *-pos-*.xyz with sibling *-vel-*.xyz and *.cell"),
    "xdatcar": ("anionmotion.io.xdatcar", "XDATCARReader", ("xdatcar*", "*xdatcar*"),
                "VASP XDATCAR (VASP 5, constant or variable cell)"),
    "extxyz": ("anionmotion.io.xyz", "XYZReader", ("*.xyz", "*.extxyz"),
               "extended XYZ (Lattice=, Properties=) and plain XYZ"),
    "mdtraj": ("anionmotion.io.mdtraj_formats", "MDTrajReader",
               ("*.dcd", "*.xtc", "*.trr", "*.h5", "*.binpos", "*.arc", "*.lh5", "*.mdcrd", "*.crd", "*.trj"),
               "formats read through MDTraj (DCD, XTC, TRR, HDF5, …), nm converted to Å"),
    "vasprun": ("anionmotion.io.vasprun", "VasprunReader", ("vasprun*.xml", "*vasprun*.xml"),
                "VASP vasprun.xml MD run (time from POTIM; constant or variable cell), gzip/bz2 allowed"),
    "outcar": ("anionmotion.io.outcar", "OUTCARReader", ("outcar*", "*outcar*"),
               "VASP OUTCAR MD run (POSITION blocks, lattice per step; time from POTIM), gzip/bz2 allowed"),
    "ase": ("anionmotion.io.ase_traj", "ASETrajReader", ("*.traj",),
            "ASE ULM .traj (needs the optional ASE; a LAMMPS dump named .traj is detected by its content)"),
    "h5md": ("anionmotion.io.h5md", "H5MDReader", ("*.h5md",),
             "H5MD (HDF5: LAMMPS dump h5md, ASE/znh5md, MDAnalysis; needs the optional h5py)"),
}

_COMPRESSION_SUFFIXES = (".gz", ".bz2")
_ULM_MAGIC = b"- of Ulm"          # ASE ULM files (anionmotion.io.ase_traj.ULM_MAGIC)
#: LAMMPS unit styles the dump reader converts (``lj`` is passed through unconverted, with a warning)
LAMMPS_UNITS = ("metal", "real", "electron", "lj")


def _reader_class(name):
    module, cls, _, _ = FORMATS[name]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name == module:
            raise FormatError(f"the {name} reader is not available in this build") from err
        raise
    return getattr(mod, cls)


def detect_format(path) -> str:
    """Name of the reader for ``path`` (from its name, then its first bytes).

    Raises
    ------
    FormatError
        Listing the supported formats when nothing matches.
    """
    path = os.fspath(path)
    base = os.path.basename(path).lower()
    for suf in _COMPRESSION_SUFFIXES:
        if base.endswith(suf):
            base = base[: -len(suf)]
    head = b""
    if os.path.isfile(path):
        head = _read_head(path)
    for name, (_, _, patterns, _) in FORMATS.items():
        if any(fnmatch.fnmatch(base, p) for p in patterns):
            if name == "extxyz" and fnmatch.fnmatch(base, "*-pos-*.xyz"):
                return "cp2k"
            if name == "ase" and not head.startswith(_ULM_MAGIC):
                break          # e.g. a LAMMPS dump named .traj (kinisi): decide by the content below
            if name == "mdtraj" and base.endswith(".h5") and _is_h5md(path):
                return "h5md"  # *.h5 is MDTraj's HDF5 unless the file has the H5MD group
            return name
    # sniff the content
    if not head:
        head = _read_head(path)
    if head.startswith(_ULM_MAGIC):
        return "ase"
    if head[:8] == b"\x89HDF\r\n\x1a\n":       # HDF5: H5MD when it has the /h5md group, else NetCDF-4
        return "h5md" if _is_h5md(path) else "netcdf"
    if head[:4] in (b"CDF\x01", b"CDF\x02", b"CDF\x05"):
        return "netcdf"
    text = head.decode("latin-1", errors="replace")
    if "ITEM: TIMESTEP" in text[:200]:
        return "lammps"
    if "<modeling>" in text and "<generator>" in text:
        return "vasprun"
    lines = text.splitlines()
    if _looks_like_xdatcar(lines):
        return "xdatcar"
    if lines and lines[0].strip().isdigit():
        return "extxyz"
    raise FormatError(f"unknown trajectory format; supported formats: {supported_formats()} "
                      "(give one with format= / --format)", path=path)


def _is_h5md(path) -> bool:
    """True when the HDF5 file ``path`` has an ``/h5md`` group (False without h5py or when it cannot be read)."""
    try:
        import h5py
    except ImportError:
        return False
    try:
        with h5py.File(path, "r") as f:
            return "h5md" in f
    except (OSError, ValueError, RuntimeError):
        return False


def _read_head(path, n=4096) -> bytes:
    """The first ``n`` (decompressed) bytes of ``path``; a stream too damaged to give them is a FormatError."""
    import zlib

    try:
        with open_binary(path) as fh:
            return fh.read(n)
    except (EOFError, OSError, zlib.error) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise FormatError(f"cannot read the first bytes ({compression_of(path) or 'file'}): {err}", path=path) from err


def _is_floats(line, n):
    parts = line.split()
    if len(parts) != n:
        return False
    try:
        [float(x) for x in parts]
    except ValueError:
        return False
    return True


def _looks_like_xdatcar(lines) -> bool:
    """VASP XDATCAR header: title, scale, three lattice rows, (species,) counts, then a frame."""
    if len(lines) < 7 or not _is_floats(lines[1], 1) or not all(_is_floats(lines[i], 3) for i in (2, 3, 4)):
        return False
    counts = 6 if lines[5].split() and all(t.isalpha() for t in lines[5].split()) else 5
    if not lines[counts].split() or not all(t.isdigit() for t in lines[counts].split()):
        return False
    nxt = lines[counts + 1].strip().lower() if len(lines) > counts + 1 else ""
    return nxt == "" or nxt.startswith(("direct", "cart", "konfig"))


def supported_formats() -> str:
    return "; ".join(f"{n} ({d})" for n, (_, _, _, d) in FORMATS.items())


def open_reader(path, *, format=None, timestep=None, frame_interval=None, lammps_units="metal", types=None,
                cell=None, vel=None, cell_file=None, topology=None) -> BaseReader:
    """The format reader of a trajectory file (options checked, format detected when not given).

    :func:`anionmotion.open` wraps it in a :class:`~anionmotion.trajectory.Trajectory`; the
    parameters are those of :func:`anionmotion.open` without ``progress`` and ``unwrap``.
    The I/O layer never imports the trajectory model (no io ↔ trajectory cycle).
    """
    from .._validate import parse_types

    path = check_input_file(os.fspath(path))
    for name, extra in (("topology", topology), ("vel", vel), ("cell_file", cell_file)):
        if extra is not None:
            check_input_file(os.fspath(extra), f"{name} file")
    if lammps_units not in LAMMPS_UNITS:
        raise OptionError(f"invalid lammps_units {lammps_units!r}; choose one of {', '.join(LAMMPS_UNITS)}")
    if timestep is not None and not (np.isfinite(timestep) and timestep > 0):
        raise OptionError(f"timestep must be a positive time in ps; got {timestep}")
    if cell is not None:
        c = np.asarray(cell, dtype=np.float64)
        if c.shape == (3,):
            c = np.diag(c)
        elif c.shape == (9,):
            c = c.reshape(3, 3)
        if c.shape != (3, 3):
            raise OptionError(f"cell must be 3 lengths or a 3×3 matrix (Å); got shape {np.shape(cell)}")
        cell = c
    opts = ReaderOptions(format=format, timestep=timestep, frame_interval=frame_interval, lammps_units=lammps_units,
                         types=parse_types(types), cell=cell, vel=vel, cell_file=cell_file, topology=topology)
    if format is None:
        name = detect_format(path)
    else:
        name = str(format).lower()
        if name not in FORMATS:
            raise FormatError(f"unknown format {format!r}; supported formats: {', '.join(FORMATS)}", path=path)
    return _reader_class(name)(path, opts)
