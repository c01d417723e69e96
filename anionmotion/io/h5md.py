"""H5MD trajectories (HDF5 for molecular data: LAMMPS ``dump h5md``, ASE/znh5md, MDAnalysis, MLIP tools).

Read through h5py (the optional ``h5md`` extra: ``pip install anionmotion[h5md]``).  One particle group
under ``/particles`` is read: the only one, or ``all`` (LAMMPS) when there are several.

Layout (H5MD 1.0/1.1)
---------------------
* ``position/value`` (frames, atoms, 3) with a ``unit`` attribute; ``position/step`` and ``position/time``
  either arrays of one value per frame or scalars (the interval; time = offset + i·interval, the
  ``offset`` attribute defaulting to 0).  Times come from ``time`` (its ``unit``), else from ``step`` ×
  ``timestep=`` when given, else from ``frame_interval=``.
* ``box``: attribute ``dimension`` (must be 3) and ``boundary``; ``box/edges`` a dataset (fixed box: 3
  lengths of a rectangular box or a 3×3 matrix whose rows are the cell vectors a, b, c) or a group whose
  ``value`` holds one (3,) or (3, 3) box per frame (NPT).  Without a periodic box the cell comes from
  ``cell=``.
* optional ``velocity/value`` (unit e.g. ``nm ps-1``, ``Angstrom/ps``; files written by znh5md hold ASE
  velocity units under the label ``Angstrom/fs`` and are converted as ASE's: × 98.2269 to Å/ps),
  ``image/value`` (integer image
  flags: coordinates are then unwrapped exactly with them), ``species`` (element names, atomic numbers
  (ASE/znh5md) or LAMMPS type numbers when the creator is LAMMPS — mapped by ``types=``),
  ``mass`` and ``charge`` (fixed datasets or time-dependent groups; frame 0 is used).

Units: lengths in Å, nm, pm, bohr; times in ps, fs, ns; velocities as length/time (``nm ps-1``,
``Angstrom/ps``, ``A fs^-1``).  A missing unit is taken as Å / ps and recorded in ``units``.  Only the
selected atoms are read: contiguous runs of the sorted selection are HDF5 hyperslabs (runs closer than
:data:`~anionmotion.io.netcdf.MERGE_GAP` atoms share one), in blocks of frames bounded like the NetCDF
reader's.  Metadata: the ``/h5md`` attributes (version, creator, author), the particle group, the
boundary, and the attributes of ``/parameters`` when present.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..elements import MASSES, normalize_symbol, symbol_of_z
from ..errors import FormatError, IntegrityWarning, TrajectoryError
from ..units import AMU_A2_PS2_EV
from .base import BaseReader, RawFrames, want_velocities
from .netcdf import MERGE_GAP, READ_BUFFER_MIN, _segments, _topology_species

__all__ = ["H5MDReader", "H5MD_LENGTH_UNITS", "H5MD_TIME_UNITS", "HDF5_MAGIC"]

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

H5MD_LENGTH_UNITS = {"angstrom": 1.0, "angstroms": 1.0, "ang": 1.0, "a": 1.0, "å": 1.0, "nm": 10.0,
                     "nanometer": 10.0, "nanometers": 10.0, "pm": 0.01, "bohr": 0.529177210544,
                     "m": 1e10, "um": 1e4}
H5MD_TIME_UNITS = {"ps": 1.0, "picosecond": 1.0, "picoseconds": 1.0, "fs": 1e-3, "femtosecond": 1e-3,
                   "femtoseconds": 1e-3, "ns": 1e3, "nanosecond": 1e3, "s": 1e12, "as": 1e-6}


def _text(x):
    if isinstance(x, bytes):
        return x.decode("utf-8", errors="replace")
    if isinstance(x, np.ndarray) and x.shape == ():
        return _text(x.item())
    return str(x)


def _py(x):
    if isinstance(x, bytes):
        return x.decode("utf-8", errors="replace")
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return [_py(v) for v in x.tolist()] if x.dtype.kind in "OS" else x.tolist()
    return x


class H5MDReader(BaseReader):
    """H5MD through h5py: random access by frame, hyperslabs of the selected atoms.

    Parameters
    ----------
    path : str
    options : ReaderOptions
        ``types`` (type number → element), ``topology`` (species via MDTraj), ``cell`` (Å, for files without a
        periodic box), ``timestep`` (ps per MD step, when the file has steps but no times).
    """

    format_name = "h5md"
    description = "H5MD (HDF5: LAMMPS dump h5md, ASE/znh5md, MDAnalysis), needs h5py"

    def __init__(self, path, options):
        super().__init__(path, options)
        try:
            import h5py
        except ImportError as err:
            raise ImportError("reading H5MD needs h5py: pip install 'anionmotion[h5md]' (or pip install h5py)") \
                from err
        with open(self.path, "rb") as fh:
            head = fh.read(8)
        if not head:
            raise FormatError("empty file; expected an H5MD (HDF5) trajectory", path=self.path)
        if head != HDF5_MAGIC:
            raise FormatError(f"not an HDF5 file (starts with {head[:4]!r}); expected H5MD. Is the format right? "
                              "Use --format to choose it", path=self.path)
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as err:
            raise FormatError(f"h5py cannot open the file ({err})", path=self.path) from err
        try:
            self._setup(h5py, options)
        except (KeyError, ValueError, TypeError, OSError, RuntimeError) as err:   # h5py: RuntimeError on damage
            self.close()
            raise FormatError(f"malformed H5MD file ({type(err).__name__}: {err})", path=self.path) from err
        except Exception:
            self.close()
            raise

    # ----------------------------------------------------------------- layout
    def _setup(self, h5py, options):
        f = self._f
        self._h5py = h5py
        if "particles" not in f or not isinstance(f["particles"], h5py.Group) or not len(f["particles"]):
            raise FormatError("no /particles group with a particle group in it; not an H5MD trajectory "
                              f"(top-level entries: {', '.join(f.keys()) or 'none'})", path=self.path)
        groups = list(f["particles"].keys())
        name = groups[0] if len(groups) == 1 else ("all" if "all" in groups else None)
        if name is None:
            raise FormatError(f"several particle groups ({', '.join(groups)}) and none is called 'all'; anionmotion "
                              "reads one group", path=self.path)
        g = f["particles"][name]
        self._g = g
        if "position" not in g:
            raise FormatError(f"particle group {name!r} has no 'position' element", path=self.path)
        pos = self._value(g["position"], "position")
        if pos.ndim != 3 or pos.shape[2] != 3:
            raise FormatError(f"position/value has shape {pos.shape}; expected (frame, atom, 3)", path=self.path)
        if not np.issubdtype(pos.dtype, np.number):
            raise FormatError(f"position/value has type {pos.dtype}; expected numbers", path=self.path)
        self._pos = pos
        self.n_frames, self.n_atoms = int(pos.shape[0]), int(pos.shape[1])
        self.metadata = {k: _py(v) for k, v in f["h5md"].attrs.items()} if "h5md" in f else {}
        if "h5md" in f:
            for sub in ("creator", "author"):
                if sub in f["h5md"]:
                    for k, v in f["h5md"][sub].attrs.items():
                        self.metadata[f"{sub}_{k}"] = _py(v)
        if "parameters" in f:
            self.metadata.update({f"parameter_{k}": _py(v) for k, v in f["parameters"].attrs.items()})
        self.metadata["particle_group"] = name
        creator = str(self.metadata.get("creator_name", "")).lower()
        # units
        self._lf, lu = self._unit(pos, H5MD_LENGTH_UNITS, "length", default="angstrom")
        self.units = {"length": f"Å (file: {lu})"}
        # velocities
        self._vel = None
        if "velocity" in g:
            v = self._value(g["velocity"], "velocity")
            if v.shape != pos.shape:
                raise FormatError(f"velocity/value has shape {v.shape}; expected {pos.shape} like position",
                                  path=self.path)
            self._vel = v
            self._vf, vu = self._velocity_unit(v)
            self.units["velocity"] = f"Å/ps (file: {vu})"
            if creator.startswith("znh5md") and vu.replace(" ", "").lower() == "angstrom/fs":
                # znh5md stores ASE's get_velocities() (Å per ASE time unit Å·√(amu/eV) = 10.18 fs) and labels it
                # Angstrom/fs; converted as the ASE reader does: v[Å/ps] = v[ASE] / √(amu·Å²/ps² in eV)
                self._vf = 1.0 / np.sqrt(AMU_A2_PS2_EV)
                self.units["velocity"] = ("Å/ps (file: znh5md 'Angstrom/fs', which holds ASE velocity units "
                                          "Å/(Å·√(amu/eV)); × 98.2269)")
        self.has_velocities = self._vel is not None
        # images
        self._img = None
        if "image" in g:
            im = self._value(g["image"], "image")
            if im.shape != pos.shape:
                raise FormatError(f"image/value has shape {im.shape}; expected {pos.shape} like position",
                                  path=self.path)
            self._img = im
        # times and steps
        self.times, self.steps = self._times(g["position"], options)
        # box
        self._box_fixed = None
        self._box_series = None
        self._cf = 1.0
        periodic = False
        if "box" in g:
            box = g["box"]
            dim = int(np.asarray(box.attrs.get("dimension", 3)))
            if dim != 3:
                raise FormatError(f"box dimension is {dim}; anionmotion reads 3-D trajectories", path=self.path)
            boundary = [_text(b).lower() for b in np.atleast_1d(box.attrs.get("boundary", ["periodic"] * 3))]
            self.metadata["boundary"] = boundary
            periodic = any(b == "periodic" for b in boundary)
            if "edges" in box and periodic:
                e = box["edges"]
                if isinstance(e, h5py.Group):
                    ev = self._value(e, "box/edges")
                    if ev.shape[0] != self.n_frames or ev.shape[1:] not in ((3,), (3, 3)):
                        raise FormatError(f"box/edges/value has shape {ev.shape}; expected ({self.n_frames}, 3) or "
                                          f"({self.n_frames}, 3, 3), one box per position frame", path=self.path)
                    self._box_series = ev
                    self._cf, _ = self._unit(ev, H5MD_LENGTH_UNITS, "length", default=lu)
                else:
                    arr = np.asarray(e[()], dtype=np.float64)
                    if arr.shape not in ((3,), (3, 3)):
                        raise FormatError(f"box/edges has shape {arr.shape}; expected (3,) or (3, 3)", path=self.path)
                    self._cf, _ = self._unit(e, H5MD_LENGTH_UNITS, "length", default=lu)
                    self._box_fixed = _as_cell(arr) * self._cf
        if not periodic or (self._box_fixed is None and self._box_series is None):
            if options.cell is None:
                raise TrajectoryError("the file has no periodic box (box/edges); give the cell with cell= / --cell "
                                      "(3 lengths or 9 numbers, Å)", path=self.path)
        # species, masses, charges
        self.species = self._species(g, options, creator)
        self.masses = self._per_atom(g, "mass")
        self.charges = self._per_atom(g, "charge")
        self.coord_style = "wrapped"

    def _value(self, element, what):
        """The ``value`` dataset of a time-dependent element (or the element itself when it is a dataset)."""
        if isinstance(element, self._h5py.Dataset):
            return element
        if "value" not in element:
            raise FormatError(f"{what} has no 'value' dataset", path=self.path)
        return element["value"]

    def _unit(self, ds, table, what, default):
        u = ds.attrs.get("unit", None)
        if u is None and ds.parent is not None:
            u = ds.parent.attrs.get("unit", None)
        if u is None:
            return table[default.lower()] if default.lower() in table else 1.0, f"{default} (unstated)"
        key = _text(u).strip()
        if key.lower() in table:
            return table[key.lower()], key
        raise TrajectoryError(f"{ds.name} has unit {key!r}, which anionmotion cannot convert ({what}); known: "
                              f"{', '.join(table)}", path=self.path)

    def _velocity_unit(self, ds):
        u = ds.attrs.get("unit", None)
        if u is None:
            return 1.0, "Å/ps (unstated)"
        text = _text(u).strip()
        t = text.replace("^", "").replace("**", "")
        if "/" in t:
            lu, tu = (s.strip() for s in t.split("/", 1))
        else:
            parts = t.split()
            if len(parts) != 2 or not parts[1].endswith("-1"):
                raise TrajectoryError(f"{ds.name} has unit {text!r}; expected length/time such as 'nm ps-1' or "
                                      "'Angstrom/ps'", path=self.path)
            lu, tu = parts[0], parts[1][:-2]
        if lu.lower() not in H5MD_LENGTH_UNITS or tu.lower() not in H5MD_TIME_UNITS:
            raise TrajectoryError(f"{ds.name} has unit {text!r}, which anionmotion cannot convert to Å/ps",
                                  path=self.path)
        return H5MD_LENGTH_UNITS[lu.lower()] / H5MD_TIME_UNITS[tu.lower()], text

    def _series(self, el, name):
        """``step``/``time`` of an element: array per frame, or None (absent)."""
        if name not in el:
            return None, None
        ds = el[name]
        arr = np.asarray(ds[()])
        if arr.ndim == 0:   # fixed interval: value = offset + i · interval
            off = float(np.asarray(ds.attrs.get("offset", 0)))
            arr = off + float(arr) * np.arange(self.n_frames, dtype=np.float64)
        elif arr.shape != (self.n_frames,):
            raise FormatError(f"{ds.name} has shape {arr.shape}; expected ({self.n_frames},), one per frame",
                              path=self.path)
        return arr, ds

    def _times(self, el, options):
        steps, _ = self._series(el, "step")
        steps = None if steps is None else np.asarray(steps).astype(np.int64)
        t, ds = self._series(el, "time")
        if t is not None:
            tf, tu = self._unit(ds, H5MD_TIME_UNITS, "time", default="ps")
            t = np.asarray(t, dtype=np.float64) * tf
            if len(t) > 1 and np.all(t == t[0]):
                self.metadata["time_note"] = f"every frame has time {t[0]:g}; give frame_interval"
                t = None
            else:
                self.units["time"] = f"ps (file: {tu})"
                self.units["time_source"] = "position/time"
        if t is None and steps is not None and options.timestep is not None:
            t = steps * float(options.timestep)
            self.units["time"] = "ps (step × timestep)"
            self.units["time_source"] = "position/step × timestep"
        return t, steps

    def _frame0(self, g, name):
        el = g[name]
        ds = self._value(el, name) if isinstance(el, self._h5py.Group) else el
        arr = np.asarray(ds[0] if ds.ndim == 2 else ds[()])
        if arr.shape != (self.n_atoms,):
            raise FormatError(f"{ds.name} has shape {ds.shape}; expected ({self.n_atoms},) or (frames, "
                              f"{self.n_atoms})", path=self.path)
        return arr

    def _per_atom(self, g, name):
        if name not in g:
            return None
        return np.asarray(self._frame0(g, name), dtype=np.float64)

    def _species(self, g, options, creator):
        if options.topology is not None:
            return _topology_species(options.topology, self.n_atoms, self.path)
        if "species" not in g:
            note = ("the file names no species (no particles/<group>/species): atoms are labelled X; give a "
                    "topology with topology= / --topology for elements")
            self.metadata["species_note"] = note
            warnings.warn(f"{self.path}: {note}", IntegrityWarning, stacklevel=4)
            return np.full(self.n_atoms, "X", dtype=object)
        raw = self._frame0(g, "species")
        if raw.dtype.kind in "SUO":
            from ._text import elements_of

            return elements_of([_text(x).strip() for x in raw], path=self.path, what="species name")
        t = raw.astype(np.int64)
        if options.types:
            missing = sorted({int(x) for x in np.unique(t)} - set(options.types))
            if missing:
                raise TrajectoryError(f"types= has no element for species number(s) {missing}; the file has "
                                      f"{sorted(int(x) for x in np.unique(t))}", path=self.path)
            out = [normalize_symbol(options.types[int(x)]) for x in t]
            unknown = sorted({s for s in out if s not in MASSES})
            if unknown:
                raise TrajectoryError(f"types= maps to unknown element(s) {unknown}", path=self.path)
            return np.asarray(out, dtype=object)
        if "lammps" in creator:
            self.metadata["species_note"] = ("species are LAMMPS type numbers; map them to elements with types= / "
                                             "--types (e.g. 1=Li,2=P,3=S)")
            return np.asarray([str(int(x)) for x in t], dtype=object)
        if all(symbol_of_z(int(z)) is not None for z in np.unique(t)):
            self.metadata["species_note"] = "species read as atomic numbers (ASE/znh5md convention)"
            return np.asarray([symbol_of_z(int(z)) for z in t], dtype=object)
        self.metadata["species_note"] = "species numbers are not atomic numbers; map them with types= / --types"
        return np.asarray([str(int(x)) for x in t], dtype=object)

    # ----------------------------------------------------------------- reading
    def _cells(self, start, stop):
        n = stop - start
        if self.options.cell is not None:
            return np.broadcast_to(np.asarray(self.options.cell, dtype=np.float64), (n, 3, 3)).copy()
        if self._box_fixed is not None:
            return np.broadcast_to(self._box_fixed, (n, 3, 3)).copy()
        return _as_cell(np.asarray(self._box_series[start:stop], dtype=np.float64), per_frame=True) * self._cf

    def _read_atoms(self, ds, start, stop, atoms, factor, dtype=np.float64):
        """``ds[start:stop]`` of atoms ``atoms`` (any order) × ``factor``: hyperslabs of the sorted runs, frames in
        blocks whose raw buffer stays within a quarter of the output (≥ 1 MiB)."""
        n = stop - start
        if atoms is None:
            atoms = np.arange(self.n_atoms, dtype=np.int64)
        uniq, inv = np.unique(atoms, return_inverse=True)
        if len(uniq) != len(atoms) or np.any(uniq != atoms):
            return np.ascontiguousarray(self._read_atoms(ds, start, stop, uniq, factor, dtype)[:, inv.reshape(-1)])
        out = np.empty((n, len(atoms), 3), dtype=dtype)
        if n == 0 or len(atoms) == 0:
            return out
        if atoms[0] < 0 or atoms[-1] >= self.n_atoms:
            raise TrajectoryError(f"atom index out of range 0…{self.n_atoms - 1}", path=self.path)
        segs = _segments(atoms, MERGE_GAP)
        widest = max(b - a for a, b, _, _ in segs)
        fb = max(1, max(READ_BUFFER_MIN, out.nbytes // 4) // (widest * 3 * ds.dtype.itemsize))
        for f0 in range(start, stop, fb):
            f1 = min(stop, f0 + fb)
            o = out[f0 - start:f1 - start]
            for a, b, k0, k1 in segs:
                raw = ds[f0:f1, a:b]
                if b - a != k1 - k0:
                    raw = raw[:, atoms[k0:k1] - a]
                if factor is None:
                    o[:, k0:k1] = raw
                else:
                    np.multiply(raw, factor, out=o[:, k0:k1], dtype=np.float64)
        return out

    def read_cells(self, start, stop):
        return self._cells(int(start), int(max(start, stop)))

    def constant_cell(self):
        """The fixed box (or the ``cell=`` option's cell); None for a time-dependent box."""
        if self.options.cell is not None:
            return np.asarray(self.options.cell, dtype=np.float64).reshape(3, 3)
        return None if self._box_fixed is None else self._box_fixed.copy()

    def read(self, start, stop, atoms=None, velocities=None):
        """Frames ``start:stop`` of atoms ``atoms``: only those atoms are read, velocities only when wanted."""
        start, stop = int(start), int(max(start, stop))
        if start < 0 or stop > self.n_frames:
            raise TrajectoryError(f"frames {start}:{stop} outside the file's {self.n_frames} frames", path=self.path)
        sel = None if atoms is None else np.asarray(atoms, dtype=np.int64).reshape(-1)
        try:
            crd = self._read_atoms(self._pos, start, stop, sel, self._lf)
            vel = None
            if self._vel is not None and want_velocities(velocities):
                vel = self._read_atoms(self._vel, start, stop, sel, self._vf)
            img = None if self._img is None else self._read_atoms(self._img, start, stop, sel, None, np.int64)
            cells = self._cells(start, stop)
        except (OSError, RuntimeError, ValueError) as err:   # a damaged HDF5 file
            raise TrajectoryError(f"cannot read frames {start}:{stop} ({err})", path=self.path, frame=start) from err
        return RawFrames(coords=crd, style=self.coord_style, cells=cells,
                         times=None if self.times is None else self.times[start:stop], velocities=vel, images=img,
                         steps=None if self.steps is None else self.steps[start:stop], owned=True)

    def close(self):
        super().close()
        f = getattr(self, "_f", None)
        self._f = None
        if f is not None:
            try:
                f.close()
            except Exception:  # pragma: no cover - already closed
                pass


def _as_cell(edges, per_frame=False):
    """Box lengths of a rectangular box → diagonal cells; matrices (rows a, b, c) unchanged.

    ``edges`` is one box ((3,) or (3, 3)) or, with ``per_frame``, one per frame ((n, 3) or (n, 3, 3)).
    """
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim == (2 if per_frame else 1):
        out = np.zeros(edges.shape + (3,))
        idx = np.arange(3)
        out[..., idx, idx] = edges
        return out
    return edges.copy()

