"""Trajectory formats read through MDTraj (DCD, XTC, TRR, HDF5, and the rest of ``mdtraj.load``).

DCD, XTC, TRR and MDTraj HDF5 are read with MDTraj's file objects, which
seek to a frame (random access, no re-reading from the start) and need no
topology; every other MDTraj format goes through ``mdtraj.load`` once.

Units: MDTraj's XTC/TRR/HDF5 data are nm and ps (converted to Å: × 10; TRR and
HDF5 velocities nm/ps → Å/ps); its
DCD file object returns the file's numbers, which are Å for CHARMM/NAMD/LAMMPS
DCDs.  Cells come from the unit-cell vectors (XTC/TRR) or lengths + angles
(DCD, HDF5).  Times: XTC/TRR/HDF5 store them (ps); DCD time information
(ISTART/NSAVG/DELTA in AKMA units) is unreliable across writers, so DCD
times are None and ``frame_interval`` is required.

Species: from the HDF5 file's own topology, else from ``topology=`` (any
file MDTraj reads: PDB, PSF, prmtop, GRO, …, or a LAMMPS data file, whose
atom types are mapped with ``types=`` and otherwise kept as type numbers).
AMBER NetCDF is read by :mod:`anionmotion.io.netcdf`, not here.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import FormatError, TrajectoryError
from .base import BaseReader, RawFrames, want_velocities
from .netcdf import _topology_species, cell_from_lengths_angles

__all__ = ["MDTrajReader", "read_lammps_data_types"]

_SEEKABLE = (".dcd", ".xtc", ".trr", ".h5")
_LAZY = object()


def read_lammps_data_types(path):
    """Atom types (sorted by atom id) and type masses from a LAMMPS data file.

    Returns
    -------
    types : ndarray of int, shape (n_atoms,)
    masses : dict type → mass (amu), possibly empty
    """
    with open(path, "r", encoding="latin-1") as fh:
        lines = fh.read().splitlines()
    n_atoms = None
    for ln in lines[1:60]:
        t = ln.split()
        if len(t) >= 2 and t[1] == "atoms":
            n_atoms = int(t[0])
            break
    if n_atoms is None:
        raise TrajectoryError("no 'N atoms' line in the LAMMPS data file header", path=path)
    masses, atoms_at, style = {}, None, None
    for i, ln in enumerate(lines):
        s = ln.split("#")[0].strip()
        if s == "Masses":
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            while j < len(lines) and lines[j].strip():
                t = lines[j].split("#")[0].split()
                if len(t) >= 2:
                    masses[int(t[0])] = float(t[1])
                j += 1
        if s == "Atoms":
            atoms_at = i
            style = ln.split("#")[1].strip() if "#" in ln else "full"
    if atoms_at is None:
        raise TrajectoryError("no Atoms section in the LAMMPS data file", path=path)
    col = {"atomic": 1, "charge": 1, "full": 2, "molecular": 2, "bond": 2, "angle": 2}.get(style, 2)
    j = atoms_at + 1
    while j < len(lines) and not lines[j].strip():
        j += 1
    rows = []
    while j < len(lines) and lines[j].strip() and len(rows) < n_atoms:
        t = lines[j].split()
        rows.append((int(t[0]), int(t[col])))
        j += 1
    if len(rows) != n_atoms:
        raise TrajectoryError(f"the Atoms section has {len(rows)} rows; the header says {n_atoms} atoms", path=path,
                              line=j + 1)
    rows.sort()
    return np.asarray([r[1] for r in rows], dtype=np.int64), masses


class MDTrajReader(BaseReader):
    """DCD, XTC, TRR, HDF5 and other MDTraj formats (nm → Å).

    Parameters
    ----------
    path : str
    options : ReaderOptions
        ``topology`` (needed unless the file has one), ``types`` (for a LAMMPS
        data-file topology), ``cell`` (Å, for files without cells),
        ``frame_interval`` (DCD).
    """

    format_name = "mdtraj"
    description = "DCD, XTC, TRR, HDF5, … through MDTraj (nm → Å)"

    def __init__(self, path, options):
        super().__init__(path, options)
        try:
            import mdtraj
        except ImportError as err:  # pragma: no cover
            raise ImportError("this format is read through MDTraj: pip install mdtraj") from err
        self._md = mdtraj
        ext = os.path.splitext(self.path)[1].lower()
        self._ext = ext
        if os.path.getsize(self.path) == 0:
            raise FormatError(f"empty file; expected a {ext or 'MDTraj'} trajectory", path=self.path)
        if ext in (".nc", ".ncdf", ".netcdf"):
            raise FormatError("AMBER NetCDF is read by the netcdf reader; use --format netcdf", path=self.path)
        if ext in (".h5", ".lh5"):
            try:
                import tables  # noqa: F401
            except ImportError as err:
                raise ImportError("MDTraj HDF5 files need PyTables: pip install tables") from err
        self._fh = None
        self._traj = None
        top_species = None
        self.units = {"length": "Å", "time": "ps"}
        try:
            if ext in _SEEKABLE:
                self._fh = mdtraj.open(self.path, "r")
                self.n_frames = int(len(self._fh))
                if ext == ".h5":
                    top = self._fh.topology
                    if top is not None and options.topology is None:
                        top_species = [a.element.symbol if a.element is not None else a.name for a in top.atoms]
                if ext == ".dcd":
                    self._check_dcd_frames()
                if ext == ".trr" and self.n_frames:
                    self._trr_vel = _trr_has_velocities(self._fh)
                first = self._raw(0, min(1, self.n_frames))
                self.n_atoms = int(first["xyz"].shape[1]) if self.n_frames else self._n_atoms_empty()
            else:
                if options.topology is None:
                    raise TrajectoryError(f"MDTraj needs a topology for {ext or 'this'} files; give topology= / "
                                          "--topology (PDB, PSF, prmtop, GRO …)", path=self.path)
                self._traj = mdtraj.load(self.path, top=os.fspath(options.topology))
                self.n_frames, self.n_atoms = int(self._traj.n_frames), int(self._traj.n_atoms)
        except (OSError, IOError, ValueError, RuntimeError) as err:
            if isinstance(err, TrajectoryError):
                raise
            raise FormatError(f"MDTraj cannot read the file ({err}); is the format right?", path=self.path) from err
        # species
        if options.topology is not None:
            top = os.fspath(options.topology)
            if top.lower().endswith((".data", ".lmp", ".lammps")) or ".data" in os.path.basename(top).lower():
                types, tmass = read_lammps_data_types(top)
                if len(types) != self.n_atoms:
                    raise TrajectoryError(f"the LAMMPS data file {top} has {len(types)} atoms but the trajectory "
                                          f"has {self.n_atoms}", path=self.path)
                if options.types:
                    missing = sorted({int(t) for t in np.unique(types)} - set(options.types))
                    if missing:
                        raise TrajectoryError(f"types= has no element for atom type(s) {missing}", path=self.path)
                    from ._text import elements_of

                    self.species = elements_of([options.types[int(t)] for t in types], path=top)
                else:
                    self.species = np.asarray([str(int(t)) for t in types], dtype=object)
                    if tmass:
                        self.masses = np.asarray([tmass.get(int(t), np.nan) for t in types])
                    self.metadata["species_note"] = ("species are LAMMPS type numbers; map them with types= / "
                                                     "--types")
            else:
                self.species = _topology_species(top, self.n_atoms, self.path)
        elif top_species is not None:
            from ._text import elements_of

            self.species = elements_of(top_species, path=self.path, what="topology element")
        elif self._traj is not None:
            self.species = _topology_species_from(self._traj.topology, self.path)
        else:
            raise TrajectoryError(f"{ext} files carry no element names; give a topology with topology= / "
                                  "--topology (PDB, PSF, prmtop, GRO … or a LAMMPS data file)", path=self.path)
        # times
        if ext == ".dcd":
            self.times = None
            self.units["time"] = "none used (DCD times are unreliable; frame_interval, ps)"
        else:
            self.times = _LAZY  # computed on first use (XTC/TRR need a pass over the file)
        self.has_velocities = ext in (".h5", ".trr") and self.n_frames > 0 and first.get("vel") is not None
        if self.has_velocities:
            self.units["velocity"] = "Å/ps (file nm/ps × 10)"
        self.coord_style = "wrapped"
        self.metadata["mdtraj_format"] = ext.lstrip(".")

    @property
    def times(self):
        if self._times is _LAZY:
            self._times = self._all_times()
        return self._times

    @times.setter
    def times(self, value):
        self._times = value

    def _n_atoms_empty(self):
        raise TrajectoryError("the file has no frames", path=self.path)

    # ---------------------------------------------------------------- reading
    def _check_dcd_frames(self):
        """Warn when the DCD header declares more frames than the file holds (a cut file: complete ones kept)."""
        import struct
        import warnings

        with open(self.path, "rb") as fh:
            head = fh.read(12)
        if len(head) < 12:
            return
        for order in ("<", ">"):
            size, magic, nset = struct.unpack(order + "i4si", head)
            if size == 84 and magic == b"CORD":
                if nset > self.n_frames:
                    from ..errors import TruncatedFileWarning

                    warnings.warn(f"{self.path}: the DCD header declares {nset} frames but the file holds "
                                  f"{self.n_frames} complete frame(s) (a cut file?); they are kept",
                                  TruncatedFileWarning, stacklevel=4)
                return

    def _raw(self, start, stop, atoms=None, velocities=True):
        """Read frames start:stop → dict xyz (Å), cells (Å) or None, time (ps) or None, vel (Å/ps) or None.

        Only the atoms ``atoms`` are converted (MDTraj's ``atom_indices``; an
        empty selection reads one atom and drops it), velocities only when
        ``velocities``.
        """
        n = stop - start
        ext = self._ext
        ai = None
        if atoms is not None:
            atoms = np.asarray(atoms, dtype=np.int64)
            # MDTraj wants a non-empty, sorted index: read the sorted unique atoms, reorder below
            ai, inv = np.unique(atoms, return_inverse=True)
            if len(ai) == 0:
                ai = np.zeros(1, dtype=np.int64)
        if self._traj is not None:
            tr = self._traj[start:stop]
            xyz = tr.xyz * 10.0
            cells = None if tr.unitcell_vectors is None else tr.unitcell_vectors * 10.0
            out = {"xyz": xyz, "cells": cells, "time": np.asarray(tr.time, dtype=np.float64), "vel": None}
        else:
            fh = self._fh
            fh.seek(start)
            if ext == ".dcd":
                xyz, lengths, angles = fh.read(n, atom_indices=ai)
                cells = None
                if lengths is not None and np.all(lengths > 0):
                    cells = cell_from_lengths_angles(lengths, angles)
                out = {"xyz": np.asarray(xyz, dtype=np.float64), "cells": cells, "time": None, "vel": None}
            elif ext == ".xtc":
                xyz, time, step, box = fh.read(n, atom_indices=ai)
                out = {"xyz": xyz * 10.0, "cells": None if box is None else box * 10.0, "time": time, "vel": None}
            elif ext == ".trr":
                vel = None
                if getattr(self, "_trr_vel", False) and velocities:
                    # MDTraj's TRR reader returns velocities (nm/ps) only through its _read method
                    xyz, time, step, box, lam, vel, _ = fh._read(n, ai, get_velocities=True)
                    vel = None if vel is None else np.asarray(vel, dtype=np.float64) * 10.0
                else:
                    xyz, time, step, box, lam = fh.read(n, atom_indices=ai)
                out = {"xyz": xyz * 10.0, "cells": None if box is None else box * 10.0, "time": time, "vel": vel}
            else:  # .h5
                fr = fh.read(n, atom_indices=ai)
                cells = None
                if fr.cell_lengths is not None:
                    cells = cell_from_lengths_angles(fr.cell_lengths * 10.0, fr.cell_angles)
                vel = None if fr.velocities is None or not velocities else np.asarray(fr.velocities, np.float64) * 10.0
                out = {"xyz": fr.coordinates * 10.0, "cells": cells, "time": fr.time, "vel": vel}
        xyz = np.asarray(out["xyz"], dtype=np.float64)
        if not velocities:
            out["vel"] = None
        if atoms is not None:
            if self._traj is not None:
                xyz = xyz[:, atoms]
                if out["vel"] is not None:
                    out["vel"] = out["vel"][:, atoms]
            elif len(atoms) == 0:
                xyz = xyz[:, :0]
                if out["vel"] is not None:
                    out["vel"] = out["vel"][:, :0]
            elif len(ai) != len(atoms) or np.any(ai != atoms):
                xyz = xyz[:, inv.reshape(-1)]
                if out["vel"] is not None:
                    out["vel"] = out["vel"][:, inv.reshape(-1)]
        out["xyz"] = np.ascontiguousarray(xyz)
        return out

    def _all_times(self):
        if self._traj is not None:
            return np.asarray(self._traj.time, dtype=np.float64)
        times = np.empty(self.n_frames)
        chunk = 1000
        for s in range(0, self.n_frames, chunk):
            r = self._raw(s, min(self.n_frames, s + chunk), np.zeros(0, np.int64), velocities=False)
            if r["time"] is None:
                return None
            times[s:s + len(r["time"])] = r["time"]
        return times

    def _cells(self, cells, n, start):
        if self.options.cell is not None:
            return np.broadcast_to(np.asarray(self.options.cell, np.float64), (n, 3, 3)).copy()
        if cells is None:
            raise TrajectoryError("the file has no unit cell; give it with cell= / --cell (3 lengths or 9 numbers, "
                                  "Å)", path=self.path, frame=start)
        return np.asarray(cells, dtype=np.float64)

    def read(self, start, stop, atoms=None, velocities=None):
        """Frames ``start:stop``: MDTraj converts only ``atoms`` (``atom_indices``), velocities only when wanted."""
        r = self._raw(start, stop, None if atoms is None else np.asarray(atoms, dtype=np.int64),
                      velocities=want_velocities(velocities))
        return RawFrames(coords=r["xyz"], style="wrapped", cells=self._cells(r["cells"], stop - start, start),
                         times=None if self.times is None else self.times[start:stop], velocities=r["vel"],
                         owned=self._traj is None)

    def read_cells(self, start, stop):
        if self.options.cell is not None:
            return self._cells(None, stop - start, start)
        return self.read(start, stop, np.zeros(0, np.int64), velocities=False).cells

    def constant_cell(self):
        """The ``cell=`` option's cell, else None (the file's cells are checked by the trajectory)."""
        if self.options.cell is not None:
            return np.asarray(self.options.cell, dtype=np.float64).reshape(3, 3)
        return None

    def close(self):
        if self._fh is not None:
            try:
                self._fh.close()
            except Exception:
                pass


def _topology_species_from(top, path):
    from ._text import elements_of

    names = [a.element.symbol if a.element is not None and a.element.symbol else a.name for a in top.atoms]
    return elements_of(names, path=path, what="topology element")


def _trr_has_velocities(fh):
    """Whether a TRR file stores velocities (frame 0), through MDTraj's private ``_read``; False if unavailable."""
    try:
        fh.seek(0)
        r = fh._read(1, None, get_velocities=True)
        fh.seek(0)
        return len(r) >= 6 and r[5] is not None
    except (AttributeError, TypeError, ValueError, RuntimeError, OSError):
        fh.seek(0)
        return False
