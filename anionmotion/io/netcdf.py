"""AMBER-convention NetCDF trajectories (LAMMPS ``dump netcdf``, AMBER, OpenMM, MDTraj, ``anionmotion md``).

Read through netCDF4, so NetCDF-3 classic/64-bit-offset, CDF-5 (64-bit data,
what LAMMPS writes; scipy cannot open it) and NetCDF-4/HDF5 files all work.

Units: every variable's ``units`` attribute is honoured (Å, nm; ps, fs, ns;
Å/ps, nm/ps, Å/fs) and ``scale_factor`` is applied explicitly (netCDF4's
automatic masking/scaling is switched off so it is applied exactly once).
AMBER stores velocities in Å per (1/20.455) ps with ``scale_factor =
20.455``: value × 20.455 = Å/ps.  LAMMPS ``units lj`` files say ``lj``: the
numbers are used as they are (reduced units) and ``units`` records it.

Cell: ``cell_lengths`` + ``cell_angles`` (α between b and c, β between a and
c, γ between a and b) → rows a = (a, 0, 0), b in the xy plane, c completing
a right-handed cell; ``cell_origin`` (LAMMPS box lo) when present.

Species, in order of preference: the ``topology`` option (via MDTraj); an
element-name character variable (``element``, ``atom_names``, ``atom_name``,
``symbols``, ``names``); an integer type variable (``type``, ``atom_types``)
mapped by ``types=`` when given; ``atom_types`` read as atomic numbers
(ASE/anionmotion convention); a LAMMPS ``type`` variable without a map keeps
the type numbers as names (e.g. ``"1"``).  Masses from ``masses``/``mass``, charges
from ``charges``/``q``/``charge`` when present.  All global attributes go
into ``metadata``.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from ..elements import MASSES, normalize_symbol, symbol_of_z
from ..errors import FormatError, IntegrityWarning, TrajectoryError
from ._netcdf_lock import netcdf_locked
from .base import BaseReader, RawFrames, want_velocities

__all__ = ["NetCDFReader", "cell_from_lengths_angles", "LENGTH_UNITS", "TIME_UNITS"]

LENGTH_UNITS = {"angstrom": 1.0, "angstroms": 1.0, "a": 1.0, "å": 1.0, "nanometer": 10.0, "nanometers": 10.0,
                "nm": 10.0, "bohr": 0.529177210544, "": 1.0, "lj": 1.0}
TIME_UNITS = {"picosecond": 1.0, "picoseconds": 1.0, "ps": 1.0, "femtosecond": 1e-3, "femtoseconds": 1e-3,
              "fs": 1e-3, "nanosecond": 1e3, "nanoseconds": 1e3, "ns": 1e3, "": 1.0, "lj": 1.0}

MERGE_GAP = 32
"""Runs of selected atoms at most this many atoms apart are read as one covering slice (fewer netCDF calls)."""
READ_BUFFER_MIN = 1 << 20
"""Smallest bound (bytes) of the raw buffer of a selected read (see ``NetCDFReader._scratch_bytes``)."""

_NAME_VARS = ("element", "elements", "atom_names", "atom_name", "symbols", "names", "atom_element")


def cell_from_lengths_angles(lengths, angles):
    """Row-vector cells from lengths (Å) and angles (degrees).

    Parameters
    ----------
    lengths : ndarray, shape (n, 3), Å
        a, b, c.
    angles : ndarray, shape (n, 3), degrees
        α (b∧c), β (a∧c), γ (a∧b).

    Returns
    -------
    ndarray, shape (n, 3, 3), Å
        a along x, b in the xy plane.

    Notes
    -----
    a = (a, 0, 0); b = (b cos γ, b sin γ, 0);
    c_x = c cos β, c_y = c (cos α − cos β cos γ)/sin γ, c_z = √(c² − c_x² − c_y²).
    """
    lengths = np.asarray(lengths, dtype=np.float64).reshape(-1, 3)
    ang = np.radians(np.asarray(angles, dtype=np.float64).reshape(-1, 3))
    a, b, c = lengths.T
    ca, cb, cg = np.cos(ang).T
    sg = np.sin(ang[:, 2])
    # exact zeros for right angles (cos(90°) is 6e-17 in floating point)
    ca = np.where(np.abs(ca) < 1e-12, 0.0, ca)
    cb = np.where(np.abs(cb) < 1e-12, 0.0, cb)
    cg = np.where(np.abs(cg) < 1e-12, 0.0, cg)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = c * cb
        cy = c * (ca - cb * cg) / sg
        cz = np.sqrt(np.maximum(c * c - cx * cx - cy * cy, 0.0))
    out = np.zeros((len(a), 3, 3))
    out[:, 0, 0] = a
    out[:, 1, 0] = b * cg
    out[:, 1, 1] = b * sg
    out[:, 2, 0] = cx
    out[:, 2, 1] = cy
    out[:, 2, 2] = cz
    return out


def _attr(var, name, default=None):
    return var.getncattr(name) if name in var.ncattrs() else default


def _unit(var, table, what, path):
    u = str(_attr(var, "units", "")).strip().lower()
    if u in table:
        return table[u], u
    raise TrajectoryError(f"variable {var.name!r} has units {u!r}, which anionmotion cannot convert to {what}; "
                          f"known: {', '.join(k for k in table if k)}", path=path)


def _velocity_factor(var, path):
    u = str(_attr(var, "units", "angstrom/picosecond")).strip().lower().replace(" ", "")
    if u in ("", "lj"):
        return 1.0, u
    if "/" not in u:
        raise TrajectoryError(f"variable 'velocities' has units {u!r}; expected length/time (e.g. "
                              "angstrom/picosecond)", path=path)
    lu, tu = u.split("/", 1)
    if lu not in LENGTH_UNITS or tu not in TIME_UNITS:
        raise TrajectoryError(f"variable 'velocities' has units {u!r}, which anionmotion cannot convert to Å/ps",
                              path=path)
    return LENGTH_UNITS[lu] / TIME_UNITS[tu], u


def _chars_to_str(arr):
    arr = np.asarray(arr)
    if arr.dtype.kind == "S" and arr.ndim == 2:
        return [b"".join(row).decode("latin-1").strip().strip("\x00") for row in arr]
    if arr.dtype.kind in "SU" and arr.ndim == 1:
        return [(x.decode("latin-1") if isinstance(x, bytes) else str(x)).strip() for x in arr]
    raise TypeError


class NetCDFReader(BaseReader):
    """AMBER-convention NetCDF through netCDF4 (random access by frame).

    Parameters
    ----------
    path : str
    options : ReaderOptions
        ``types`` (LAMMPS type → element), ``topology`` (PDB/PSF/prmtop… for
        species via MDTraj), ``cell`` (Å, for files without a box).
    """

    format_name = "netcdf"
    description = "AMBER-convention NetCDF (LAMMPS dump netcdf incl. CDF-5, AMBER, OpenMM, MDTraj, anionmotion md)"

    @netcdf_locked
    def __init__(self, path, options):
        super().__init__(path, options)
        try:
            import netCDF4
        except ImportError as err:  # pragma: no cover - netCDF4 is a dependency
            raise ImportError("reading NetCDF needs netCDF4: pip install netCDF4") from err
        with open(self.path, "rb") as fh:
            head = fh.read(8)
        if not head:
            raise FormatError("empty file; expected a NetCDF trajectory", path=self.path)
        if head[:3] != b"CDF" and head[:8] != b"\x89HDF\r\n\x1a\n":
            raise FormatError(f"not a NetCDF file (starts with {head[:4]!r}, expected 'CDF' or HDF5); "
                              "is the format right? Use --format to choose it", path=self.path)
        try:
            ds = netCDF4.Dataset(self.path, "r")
        except OSError as err:
            raise FormatError(f"netCDF4 cannot open the file ({err})", path=self.path) from err
        ds.set_auto_maskandscale(False)
        self._ds = ds
        v = ds.variables
        if "coordinates" not in v:
            raise TrajectoryError("no 'coordinates' variable; expected an AMBER-convention trajectory "
                                  f"(variables present: {', '.join(v)})", path=self.path)
        self.metadata = {k: _py(ds.getncattr(k)) for k in ds.ncattrs()}
        self.metadata["data_model"] = ds.data_model
        crd = v["coordinates"]
        if crd.ndim != 3 or crd.shape[2] != 3:
            raise TrajectoryError(f"'coordinates' has shape {crd.shape}; expected (frame, atom, 3)", path=self.path)
        self.n_frames, self.n_atoms = int(crd.shape[0]), int(crd.shape[1])
        lvar = crd
        if "units" not in crd.ncattrs() and "cell_lengths" in v and "units" in v["cell_lengths"].ncattrs():
            lvar = v["cell_lengths"]  # LAMMPS states the length unit on the cell variables only
        self._lf, lu = _unit(lvar, LENGTH_UNITS, "Å", self.path)
        self._lf *= float(_attr(crd, "scale_factor", 1.0))
        self.units = {"length": f"Å (file: {lu or 'unstated, taken as angstrom'})"}
        if lu == "lj":
            self.units["length"] = "LJ reduced units (no conversion)"
        # velocities
        self._vf = None
        if "velocities" in v:
            vv = v["velocities"]
            if "units" in vv.ncattrs() or "time" not in v:
                f, vu = _velocity_factor(vv, self.path)
            else:
                # LAMMPS writes no velocity units: they are length/time of the run's unit style
                tfac, tu = _unit(v["time"], TIME_UNITS, "ps", self.path)
                f, vu = self._lf / tfac, f"{lu or 'angstrom'}/{tu or 'picosecond'} (from the length and time units)"
            sf = float(_attr(vv, "scale_factor", 1.0))
            self._vf = f * sf
            self.units["velocity"] = f"Å/ps (file: {vu or 'unstated'} × scale_factor {sf:g})"
        self.has_velocities = self._vf is not None
        # times
        self.times = None
        if "time" in v and self.n_frames:
            tv = v["time"]
            tf, tu = _unit(tv, TIME_UNITS, "ps", self.path)
            tf *= float(_attr(tv, "scale_factor", 1.0))
            t = np.array(tv[:], dtype=np.float64).reshape(-1)[: self.n_frames]
            t *= tf   # in place: one float64 array of the times (80 MB at 10⁷ frames), no second copy
            self.units["time"] = f"ps (file: {tu or 'unstated'})" if tu != "lj" else "LJ reduced units"
            if len(t) > 1 and np.all(t == t[0]):
                self.metadata["time_note"] = (f"every frame has time {t[0]:g}; the time variable is not usable, "
                                              "give frame_interval")
            else:
                self.times = t
                self.units["time_source"] = "time variable"
            if tv.dtype == np.float32 and len(t) > 2:
                # float32 times (AMBER convention) carry ~1e-7 relative rounding: spacings that agree to that
                # precision are an evenly spaced run, rebuilt exactly as t0 + i·Δt
                d = np.diff(t)
                tol = 4.0 * np.finfo(np.float32).eps * max(abs(float(t.min())), abs(float(t.max())))
                ok = d.min() > 0
                if ok:
                    np.subtract(d, np.median(d), out=d)
                    ok = float(np.max(np.abs(d, out=d))) <= tol
                del d
                if ok:
                    # t0 + i·Δt, built in place (the same numbers as t0 + Δt·arange(n))
                    even = np.arange(len(t), dtype=np.float64)
                    even *= (t[-1] - t[0]) / (len(t) - 1)
                    even += t[0]
                    self.times = even
                    self.units["time_source"] = "time variable (float32, evenly spaced to float32 precision)"
        # cells
        self._cf = None
        if "cell_lengths" in v and "cell_angles" in v:
            cl = v["cell_lengths"]
            self._cf, _ = _unit(cl, LENGTH_UNITS, "Å", self.path)
            self._cf *= float(_attr(cl, "scale_factor", 1.0))
        elif options.cell is None:
            raise TrajectoryError("the file has no cell (no cell_lengths/cell_angles); give it with cell= / --cell "
                                  "(3 lengths or 9 numbers, Å)", path=self.path)
        self._origin = "cell_origin" in v
        # atom order (LAMMPS writes an id variable)
        self._perm_needed = False
        if "id" in v and v["id"].ndim == 2 and self.n_frames:
            ids = np.asarray(v["id"][0])
            self._perm_needed = bool(np.any(np.diff(ids) < 0))
        # species, masses, charges
        self.species = self._species(v, options)
        self.masses = self._per_atom(v, ("masses", "mass"))
        self.charges = self._per_atom(v, ("charges", "charge", "q"))
        # files that declare unwrapped coordinates (anionmotion md, OpenMM) are used as they are (SPEC §1)
        style = str(self.metadata.get("coordinate_style", "")).strip().lower()
        self.coord_style = "unwrapped" if style == "unwrapped" else "wrapped"

    # ----------------------------------------------------------------- helpers
    def _per_atom(self, v, names):
        for name in names:
            if name in v:
                var = v[name]
                arr = np.asarray(var[0] if var.ndim == 2 else var[:], dtype=np.float64).reshape(-1)
                if arr.shape != (self.n_atoms,):
                    continue
                arr = arr * float(_attr(var, "scale_factor", 1.0))
                if var.ndim == 2 and self._perm_needed:
                    arr = arr[self._order(0)]
                return arr
        return None

    def _order(self, frame):
        ids = np.asarray(self._ds.variables["id"][frame])
        return np.argsort(ids, kind="stable")

    def _species(self, v, options):
        if options.topology is not None:
            return _topology_species(options.topology, self.n_atoms, self.path)
        for name in _NAME_VARS:
            if name in v:
                try:
                    names = _chars_to_str(v[name][:])
                except TypeError:
                    continue
                if len(names) == self.n_atoms:
                    from ._text import elements_of

                    return elements_of(names, path=self.path, what=f"element name in variable {name!r}")
        type_vars = [name for name in ("type", "atom_type", "types", "atom_types")
                     if name in v and v[name].shape[-1] == self.n_atoms and np.issubdtype(v[name].dtype, np.integer)]
        if options.types and type_vars:
            # an explicit type → element map wins (LAMMPS type numbers, or any integer labels)
            t = self._type_numbers(v[type_vars[0]])
            missing = sorted({int(x) for x in np.unique(t)} - set(options.types))
            if missing:
                raise TrajectoryError(f"types= has no element for atom type(s) {missing}; the file has types "
                                      f"{sorted(int(x) for x in np.unique(t))} (variable {type_vars[0]!r})",
                                      path=self.path)
            out = [normalize_symbol(options.types[int(x)]) for x in t]
            unknown = sorted({s for s in out if s not in MASSES})
            if unknown:
                raise TrajectoryError(f"types= maps to unknown element(s) {unknown}", path=self.path)
            return np.asarray(out, dtype=object)
        if "atom_types" in type_vars and v["atom_types"].ndim == 1:
            # ASE / anionmotion convention: atomic numbers
            z = np.asarray(v["atom_types"][:]).astype(int)
            if all(symbol_of_z(x) is not None for x in np.unique(z)):
                self.metadata["species_note"] = "species from atom_types read as atomic numbers (ASE convention)"
                return np.asarray([symbol_of_z(x) for x in z], dtype=object)
        lammps = [name for name in type_vars if name != "atom_types"]
        if lammps:
            t = self._type_numbers(v[lammps[0]])
            self.metadata["species_note"] = ("species are LAMMPS type numbers; map them to elements with "
                                             "types= / --types (e.g. 1=Li,2=P,3=S)")
            return np.asarray([str(int(x)) for x in t], dtype=object)
        # species unknown: label every atom "X" (no element, mass unknown) so the file can still be described;
        # analyses that select by element will find no such atoms
        note = ("the file names no species (no element/atom_names/atom_types/type variable): atoms are labelled X; "
                "give a topology with topology= / --topology (PDB, PSF, prmtop …) for elements")
        self.metadata["species_note"] = note
        warnings.warn(f"{self.path}: {note}", IntegrityWarning, stacklevel=4)
        return np.full(self.n_atoms, "X", dtype=object)

    def _type_numbers(self, var):
        t = np.asarray(var[0] if var.ndim == 2 else var[:]).astype(int)
        if var.ndim == 2 and self._perm_needed:
            t = t[self._order(0)]
        return t

    def _cells(self, start, stop):
        if self.options.cell is not None:
            return np.broadcast_to(np.asarray(self.options.cell, dtype=np.float64), (stop - start, 3, 3)).copy()
        v = self._ds.variables
        lengths = np.asarray(v["cell_lengths"][start:stop], dtype=np.float64) * self._cf
        angles = np.asarray(v["cell_angles"][start:stop], dtype=np.float64)
        return cell_from_lengths_angles(lengths, angles)

    def _scratch_bytes(self, out_nbytes):
        """Largest raw (file-precision) buffer a read may hold besides its output: a quarter of it, ≥ 1 MiB."""
        return max(READ_BUFFER_MIN, out_nbytes // 4)

    def _read_var(self, name, start, stop, atoms, factor):
        """``name[start:stop]`` of atoms ``atoms`` (id order) × ``factor`` as float64 (n, n_sel, 3).

        Only the selected atoms are converted: contiguous runs of the sorted
        index (runs closer than :data:`MERGE_GAP` atoms merged into one covering
        slice) are read with one netCDF4 slice each, in the file's precision
        and in blocks of frames bounded by :meth:`_scratch_bytes`, and
        multiplied into the float64 output (float64(x) × factor: exactly the
        numbers of reading everything as float64 and selecting).
        """
        var = self._ds.variables[name]
        n = stop - start
        if atoms is None:
            atoms = np.arange(self.n_atoms, dtype=np.int64)
        if self._perm_needed:
            return self._read_var_permuted(var, start, stop, atoms, factor)
        uniq, inv = np.unique(atoms, return_inverse=True)
        if len(uniq) != len(atoms) or np.any(uniq != atoms):
            return np.ascontiguousarray(self._read_var(name, start, stop, uniq, factor)[:, inv.reshape(-1)])
        out = np.empty((n, len(atoms), 3))
        if n == 0 or len(atoms) == 0:
            return out
        segs = _segments(atoms, MERGE_GAP)
        widest = max(b - a for a, b, _, _ in segs)
        # a netCDF read costs per record and per slice, not per byte: few slices, frames in bounded blocks
        fb = max(1, self._scratch_bytes(out.nbytes) // (widest * 3 * var.dtype.itemsize))
        for f0 in range(start, stop, fb):
            f1 = min(stop, f0 + fb)
            o = out[f0 - start:f1 - start]
            for a, b, k0, k1 in segs:
                raw = var[f0:f1, a:b]
                if b - a != k1 - k0:
                    raw = raw[:, atoms[k0:k1] - a]
                np.multiply(raw, factor, out=o[:, k0:k1], dtype=np.float64)
        return out

    def _read_var_permuted(self, var, start, stop, atoms, factor):
        """As :meth:`_read_var` for files whose rows are not in id order (LAMMPS): frames in bounded blocks."""
        n = stop - start
        out = np.empty((n, len(atoms), 3))
        if n == 0 or len(atoms) == 0:
            return out
        per_frame = self.n_atoms * 3 * var.dtype.itemsize
        fb = max(1, self._scratch_bytes(out.nbytes) // per_frame)
        ids_var = self._ds.variables["id"]
        for f0 in range(start, stop, fb):
            f1 = min(stop, f0 + fb)
            raw = var[f0:f1]
            ids = np.asarray(ids_var[f0:f1])
            for k in range(f1 - f0):
                rows = np.argsort(ids[k], kind="stable")[atoms]
                np.multiply(raw[k, rows], factor, out=out[f0 - start + k], dtype=np.float64)
        return out

    # ----------------------------------------------------------------- protocol
    @netcdf_locked
    def read_cells(self, start, stop):
        return self._cells(start, stop)

    def constant_cell(self):
        """The ``cell=`` option's cell (the file's cells are checked block by block by the trajectory)."""
        if self.options.cell is not None:
            return np.asarray(self.options.cell, dtype=np.float64).reshape(3, 3)
        return None

    @netcdf_locked
    def read(self, start, stop, atoms=None, velocities=None):
        """Frames ``start:stop`` of atoms ``atoms``: only those atoms are read, velocities only when wanted."""
        v = self._ds.variables
        start, stop = int(start), int(max(start, stop))
        sel = None if atoms is None else np.asarray(atoms, dtype=np.int64).reshape(-1)
        crd = self._read_var("coordinates", start, stop, sel, self._lf)
        vel = None
        if self._vf is not None and want_velocities(velocities):
            vel = self._read_var("velocities", start, stop, sel, self._vf)
        origins = None
        if self._origin and self.options.cell is None:
            origins = np.asarray(v["cell_origin"][start:stop], dtype=np.float64) * self._cf
        return RawFrames(coords=crd, style=self.coord_style, cells=self._cells(start, stop),
                         times=None if self.times is None else self.times[start:stop], velocities=vel,
                         origins=origins, owned=True)

    @netcdf_locked
    def close(self):
        # idempotent: netCDF4's Dataset.close() on a closed dataset calls nc_close() on its old id again,
        # which by then may belong to another open file (netCDF-C reuses ids) and would close that one
        ds = getattr(self, "_ds", None)
        self._ds = None
        if ds is not None and ds.isopen():
            ds.close()


def _segments(atoms, gap):
    """Slices to read for a sorted unique index: ``(a, b, k0, k1)`` = file atoms ``a:b`` hold ``atoms[k0:k1]``.

    Consecutive selected atoms at most ``gap`` unselected atoms apart share a slice.
    """
    atoms = np.asarray(atoms, dtype=np.int64)
    if len(atoms) == 0:
        return []
    brk = np.nonzero(np.diff(atoms) > gap + 1)[0] + 1
    bounds = np.concatenate([[0], brk, [len(atoms)]]).astype(int)
    return [(int(atoms[k0]), int(atoms[k1 - 1]) + 1, int(k0), int(k1)) for k0, k1 in zip(bounds[:-1], bounds[1:])]


def _py(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


def _topology_species(topology, n_atoms, path):
    """Element symbols from a topology file read by MDTraj."""
    try:
        import mdtraj
    except ImportError as err:  # pragma: no cover
        raise ImportError("reading a topology needs MDTraj: pip install mdtraj") from err
    topology = os.fspath(topology)
    if not os.path.exists(topology):
        raise FileNotFoundError(f"{topology}: no such file (topology)")
    from .base import compression_of, open_binary

    try:
        if compression_of(topology):
            # MDTraj picks the parser from the extension: decompress to a temporary file of the inner name
            import tempfile

            inner = os.path.basename(topology).rsplit(".", 1)[0]
            with tempfile.TemporaryDirectory() as tmp:
                tpath = os.path.join(tmp, inner)
                with open_binary(topology) as src, open(tpath, "wb") as dst:
                    dst.write(src.read())
                top = mdtraj.load_topology(tpath)
        else:
            top = mdtraj.load_topology(topology)
    except Exception as err:
        raise FormatError(f"MDTraj cannot read the topology {topology} ({err})", path=path) from err
    if top.n_atoms != n_atoms:
        raise TrajectoryError(f"the topology {topology} has {top.n_atoms} atoms but the trajectory has {n_atoms}",
                              path=path)
    out = []
    for a in top.atoms:
        el = a.element
        sym = el.symbol if el is not None and el.symbol else a.name
        out.append(sym)
    from ._text import elements_of

    return elements_of(out, path=topology, what="topology element")
