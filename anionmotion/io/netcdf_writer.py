"""AMBER-convention NetCDF trajectory writer (positions, velocities, cell, time; appendable).

Layout (AMBER NetCDF trajectory convention 1.0, https://ambermd.org/netcdf/nctraj.xhtml), written as
NetCDF-3 64-bit offset so that every AMBER reader (cpptraj, MDTraj, VMD, OVITO, ASE, anionmotion) opens it:

=====================================  ======  ==========================================================
variable                               type    notes
=====================================  ======  ==========================================================
``spatial(spatial)``                   char    ``"xyz"``
``cell_spatial(cell_spatial)``         char    ``"abc"``
``cell_angular(cell_angular, label)``  char    ``"alpha"``, ``"beta"``, ``"gamma"``
``time(frame)``                        float   ``units = "picosecond"``
``coordinates(frame, atom, spatial)``  float   ``units = "angstrom"``, unwrapped
``velocities(frame, atom, spatial)``   float   ``units = "angstrom/picosecond"``, ``scale_factor = 1.0``
``cell_lengths(frame, cell_spatial)``  double  ``units = "angstrom"``
``cell_angles(frame, cell_angular)``   double  ``units = "degree"``
``atom_types(atom)``                   int     atomic numbers (ASE's convention)
``element(atom, label)``               char    element symbols (anionmotion reads species from here)
``masses(atom)``, ``charges(atom)``    double  amu, e
=====================================  ======  ==========================================================

Global attributes: ``Conventions = "AMBER"``, ``ConventionVersion = "1.0"``,
``program``, ``programVersion``, ``application``, ``title`` and any metadata
given (e.g. ``constraint_mode``; ``anionmotion md`` also writes
``coordinate_style = "unwrapped"``); anionmotion's reader puts every global
attribute into ``Trajectory.metadata``.

AMBER itself stores velocities in its internal unit with ``scale_factor =
20.455``; the convention says readers multiply by ``scale_factor``, so storing
Å/ps with ``scale_factor = 1.0`` is read correctly by every conforming reader.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .._version import __version__
from ..elements import atomic_number, normalize_symbol
from ..errors import FormatError, OptionError
from ._netcdf_lock import netcdf_locked

__all__ = ["NetCDFWriter", "cell_to_lengths_angles", "lengths_angles_to_cell", "atomic_number"]




def cell_to_lengths_angles(cells):
    """Cell matrices (rows a, b, c; Å) → lengths (Å) and angles α, β, γ (degrees), each shape (n, 3)."""
    c = np.asarray(cells, dtype=np.float64).reshape(-1, 3, 3)
    L = np.linalg.norm(c, axis=2)
    a, b, cc = c[:, 0], c[:, 1], c[:, 2]

    def ang(u, v, lu, lv):
        return np.degrees(np.arccos(np.clip(np.sum(u * v, axis=1) / (lu * lv), -1.0, 1.0)))

    angles = np.stack([ang(b, cc, L[:, 1], L[:, 2]), ang(a, cc, L[:, 0], L[:, 2]), ang(a, b, L[:, 0], L[:, 1])], axis=1)
    return L, angles


def lengths_angles_to_cell(lengths, angles):
    """Lengths (Å) and angles (degrees), shape (n, 3) → cell matrices (n, 3, 3), a along x, b in the xy plane."""
    L = np.asarray(lengths, dtype=np.float64).reshape(-1, 3)
    A = np.radians(np.asarray(angles, dtype=np.float64).reshape(-1, 3))
    ca, cb, cg = np.cos(A[:, 0]), np.cos(A[:, 1]), np.cos(A[:, 2])
    sg = np.sin(A[:, 2])
    out = np.zeros((L.shape[0], 3, 3))
    out[:, 0, 0] = L[:, 0]
    out[:, 1, 0] = L[:, 1] * cg
    out[:, 1, 1] = L[:, 1] * sg
    out[:, 2, 0] = L[:, 2] * cb
    out[:, 2, 1] = L[:, 2] * (ca - cb * cg) / sg
    out[:, 2, 2] = np.sqrt(np.maximum(L[:, 2] ** 2 - out[:, 2, 0] ** 2 - out[:, 2, 1] ** 2, 0.0))
    return out


def _netcdf4():
    try:
        import netCDF4
    except ImportError as err:  # pragma: no cover - netCDF4 is a dependency
        raise ImportError("writing NetCDF needs netCDF4: pip install netCDF4") from err
    return netCDF4


class NetCDFWriter:
    """Write (or append to) an AMBER-convention NetCDF trajectory.

    Parameters
    ----------
    path : str
    species : sequence of str, length n_atoms
        Element symbols.
    masses : array_like, shape (n_atoms,), amu, optional
    charges : array_like, shape (n_atoms,), e, optional
    metadata : dict, optional
        Global attributes (str, int, float); e.g. ``constraint_mode``, ``temperature_K``.
    velocities : bool
        Create the ``velocities`` variable.
    title : str
    mode : {"w", "a"}
        ``"w"`` creates a new file (refuses an existing one unless ``overwrite``); ``"a"`` reopens a file
        written by this class to continue it at frame :attr:`n_frames` (see :meth:`truncate`).
    overwrite : bool

    Notes
    -----
    Positions must be unwrapped by the caller; :meth:`write` can do it frame
    to frame (``unwrap=True``) with the minimum image of the current cell,
    continuing from the last frame in the file when appending.

    Examples
    --------
    >>> with NetCDFWriter("run.nc", ["Li", "O"]) as w:          # doctest: +SKIP
    ...     w.write(pos, cell, time=0.0, velocities=vel)
    """

    @netcdf_locked
    def __init__(self, path, species, *, masses=None, charges=None, metadata=None, velocities=True, title="",
                 mode="w", overwrite=False):
        nc4 = _netcdf4()
        self.path = os.fspath(path)
        self.species = [normalize_symbol(s) for s in species]
        self.n_atoms = len(self.species)
        self._last = None
        if mode == "w":
            if os.path.exists(self.path) and not overwrite:
                raise OptionError(f"{self.path}: output file exists; refusing to overwrite it (use overwrite=True / "
                                  "--overwrite)")
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self._ds = nc4.Dataset(self.path, "w", format="NETCDF3_64BIT_OFFSET")
            self._create(masses, charges, metadata or {}, velocities, title)
            self.n_frames = 0
        elif mode == "a":
            if not os.path.exists(self.path):
                raise FileNotFoundError(f"{self.path}: no such file to append to")
            try:
                self._ds = nc4.Dataset(self.path, "a")
            except OSError as err:
                raise FormatError(f"cannot reopen for appending ({err})", path=self.path) from err
            ds = self._ds
            if getattr(ds, "Conventions", "") != "AMBER" or "coordinates" not in ds.variables:
                ds.close()
                raise FormatError("not an AMBER-convention NetCDF trajectory", path=self.path)
            if ds.dimensions["atom"].size != self.n_atoms:
                n = ds.dimensions["atom"].size
                ds.close()
                raise FormatError(f"has {n} atoms, expected {self.n_atoms}", path=self.path)
            self.n_frames = ds.dimensions["frame"].size
            if metadata:
                self.set_attributes(metadata)
        else:
            raise OptionError(f"invalid mode {mode!r}; choose one of w, a")
        for v in ("coordinates", "velocities"):
            if v in self._ds.variables:
                self._ds.variables[v].set_auto_maskandscale(False)
        self.has_velocities = "velocities" in self._ds.variables

    def _create(self, masses, charges, metadata, velocities, title):
        ds = self._ds
        ds.Conventions = "AMBER"
        ds.ConventionVersion = "1.0"
        ds.program = "anionmotion"
        ds.programVersion = __version__
        ds.application = "anionmotion"
        ds.title = title or "anionmotion trajectory"
        ds.createDimension("frame", None)
        ds.createDimension("spatial", 3)
        ds.createDimension("atom", self.n_atoms)
        ds.createDimension("cell_spatial", 3)
        ds.createDimension("cell_angular", 3)
        ds.createDimension("label", 5)
        v = ds.createVariable("spatial", "S1", ("spatial",))
        v[:] = np.array(list("xyz"), dtype="S1")
        v = ds.createVariable("cell_spatial", "S1", ("cell_spatial",))
        v[:] = np.array(list("abc"), dtype="S1")
        v = ds.createVariable("cell_angular", "S1", ("cell_angular", "label"))
        v[:] = np.array([list(s.ljust(5)) for s in ("alpha", "beta", "gamma")], dtype="S1")
        v = ds.createVariable("time", "f4", ("frame",))
        v.units = "picosecond"
        v = ds.createVariable("coordinates", "f4", ("frame", "atom", "spatial"))
        v.units = "angstrom"
        if velocities:
            v = ds.createVariable("velocities", "f4", ("frame", "atom", "spatial"))
            v.units = "angstrom/picosecond"
            v.scale_factor = np.float32(1.0)
        v = ds.createVariable("cell_lengths", "f8", ("frame", "cell_spatial"))
        v.units = "angstrom"
        v = ds.createVariable("cell_angles", "f8", ("frame", "cell_angular"))
        v.units = "degree"
        v = ds.createVariable("atom_types", "i4", ("atom",))
        v.long_name = "atomic number"
        v[:] = np.array([atomic_number(s) for s in self.species], dtype=np.int32)
        v = ds.createVariable("element", "S1", ("atom", "label"))
        v.long_name = "element symbol"
        v[:] = np.array([list(s[:5].ljust(5)) for s in self.species], dtype="S1")
        if masses is not None:
            m = np.asarray(masses, dtype=np.float64)
            if m.shape != (self.n_atoms,):
                raise OptionError(f"masses must have shape ({self.n_atoms},); got {m.shape}")
            v = ds.createVariable("masses", "f8", ("atom",))
            v.units = "dalton"
            v[:] = m
        if charges is not None:
            q = np.asarray(charges, dtype=np.float64)
            if q.shape != (self.n_atoms,):
                raise OptionError(f"charges must have shape ({self.n_atoms},); got {q.shape}")
            v = ds.createVariable("charges", "f8", ("atom",))
            v.units = "elementary charge"
            v[:] = q
        self.set_attributes(metadata)

    @netcdf_locked
    def set_attributes(self, metadata):
        """Set global attributes (str, bool, int, float; None is skipped; others become str)."""
        for k, val in metadata.items():
            if val is None:
                continue
            if isinstance(val, (bool, np.bool_)):
                val = int(val)
            elif isinstance(val, (int, np.integer)):
                val = int(val)
            elif isinstance(val, (float, np.floating)):
                val = float(val)
                if not math.isfinite(val):
                    val = str(val)
            elif not isinstance(val, str):
                val = str(val)
            self._ds.setncattr(str(k), val)

    @netcdf_locked
    def truncate(self, n_frames):
        """Continue writing at frame ``n_frames`` (≤ :attr:`n_frames`): later frames are overwritten.

        NetCDF cannot shrink an unlimited dimension; frames beyond ``n_frames``
        stay in the file until overwritten, so a resumed run must write at least
        as many frames as the interrupted one had (it does: it targets the same total).
        """
        if not 0 <= n_frames <= self.n_frames:
            raise OptionError(f"cannot continue at frame {n_frames}: the file has {self.n_frames} frames")
        self.n_frames = int(n_frames)
        self._last = None

    def _previous_positions(self):
        if self._last is None and self.n_frames > 0:
            self._last = np.asarray(self._ds.variables["coordinates"][self.n_frames - 1], dtype=np.float64)
        return self._last

    @netcdf_locked
    def write(self, positions, cell, *, time, velocities=None, unwrap=False):
        """Append one frame.

        Parameters
        ----------
        positions : array_like, shape (n_atoms, 3), Å
        cell : array_like, shape (3, 3), Å (rows a, b, c)
        time : float, ps
        velocities : array_like, shape (n_atoms, 3), Å/ps, optional
        unwrap : bool
            Move each atom to the image nearest its position in the previous frame (minimum image of ``cell``).
        """
        pos = np.asarray(positions, dtype=np.float64)
        if pos.shape != (self.n_atoms, 3):
            raise OptionError(f"positions must have shape ({self.n_atoms}, 3); got {pos.shape}")
        cell = np.asarray(cell, dtype=np.float64)
        if unwrap:
            prev = self._previous_positions()
            if prev is not None:
                d = pos - prev
                s = d @ np.linalg.inv(cell)
                pos = prev + (s - np.round(s)) @ cell
        i = self.n_frames
        ds = self._ds
        ds.variables["coordinates"][i] = pos.astype(np.float32)
        if self.has_velocities:
            if velocities is None:
                raise OptionError("this file stores velocities: give velocities= for every frame")
            ds.variables["velocities"][i] = np.asarray(velocities, dtype=np.float32)
        L, A = cell_to_lengths_angles(cell)
        ds.variables["cell_lengths"][i] = L[0]
        ds.variables["cell_angles"][i] = A[0]
        ds.variables["time"][i] = np.float32(time)
        self._last = pos
        self.n_frames = i + 1

    @netcdf_locked
    def sync(self):
        """Flush everything written so far to disk."""
        self._ds.sync()

    @netcdf_locked
    def close(self):
        if self._ds is not None and self._ds.isopen():
            self._ds.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"NetCDFWriter({self.path!r}, n_atoms={self.n_atoms}, n_frames={self.n_frames})"
