"""ASE ULM trajectories (``*.traj`` written by ``ase.io.Trajectory``).

Read through ASE, an optional dependency imported only when such a file is
opened.  ASE's ULM reader has random access, so frames are read one at a time
and memory stays bounded by the requested range.

Units: positions and cells are Å.  ASE stores momenta in its own unit system
(Å, eV, amu, time unit ``Å·sqrt(amu/eV)`` ≈ 10.18 fs); velocities =
momenta / masses are converted with ``ase.units.fs`` exactly:
``v[Å/ps] = v[ASE] × 1000 × ase.units.fs`` (≈ × 98.2269).  Times come from
each frame's ``atoms.info["time"]`` when the writer stored it (ASE time
units), else ``frame_interval`` is needed.
"""

from __future__ import annotations

import numpy as np

from ..errors import FormatError, TrajectoryError
from ._text import elements_of
from .base import BaseReader, RawFrames, compact_cells, want_velocities

__all__ = ["ASETrajReader", "ULM_MAGIC"]

#: First bytes of an ASE ULM file (``ase.io.ulm``).
ULM_MAGIC = b"- of Ulm"


def _ase():
    try:
        import ase.io.trajectory
        import ase.units
    except ImportError as err:
        raise ImportError("reading ASE .traj files needs ASE: pip install ase") from err
    return ase


class ASETrajReader(BaseReader):
    """ASE ULM ``.traj`` file (positions Å, cell, velocities from momenta).

    Parameters
    ----------
    path : str
    options : ReaderOptions
        ``cell`` (Å) for frames without a cell; ``frame_interval`` (ps) when
        the frames carry no ``info["time"]``.
    """

    format_name = "ase"
    description = "ASE ULM .traj (positions, cell, momenta → velocities; needs the optional ASE)"

    def __init__(self, path, options):
        super().__init__(path, options)
        with open(self.path, "rb") as fh:
            head = fh.read(len(ULM_MAGIC))
        if head != ULM_MAGIC:
            raise FormatError(f"not an ASE ULM trajectory (the file does not start with {ULM_MAGIC!r}); "
                              "old pickle-based .traj files must be converted with ASE first", path=self.path)
        ase = _ase()
        try:
            self._traj = ase.io.trajectory.Trajectory(self.path, "r")
            n = len(self._traj)
            first = self._traj[0] if n else None
        except Exception as err:   # ASE raises many types for a damaged file
            raise TrajectoryError(f"ASE cannot read the trajectory ({type(err).__name__}: {err})",
                                  path=self.path) from err
        if n == 0:
            raise TrajectoryError("the trajectory has no frames", path=self.path)
        self.n_frames = n
        self.n_atoms = len(first)
        self._numbers = first.numbers.copy()
        bad = np.nonzero((self._numbers < 1) | (self._numbers > 118))[0]
        if len(bad):
            raise TrajectoryError(f"atomic number {int(self._numbers[bad[0]])} is not an element (1–118); the file is "
                                  "damaged", path=self.path, frame=0, atom=int(bad[0]))
        self.species = elements_of(list(first.get_chemical_symbols()), path=self.path, what="chemical symbol")
        self.masses = np.asarray(first.get_masses(), dtype=np.float64)
        self.has_velocities = bool(first.has("momenta"))
        self._vfac = 1000.0 * ase.units.fs
        self._ase_fs = ase.units.fs
        self.coord_style = "wrapped"
        self._cells = None
        self._no_cell = not np.any(first.cell.array)
        if self._no_cell and options.cell is None:
            raise TrajectoryError("the frames carry no cell; give it with cell= / --cell (3 lengths or 9 "
                                  "numbers, Å)", path=self.path)
        if not self._no_cell and not all(first.pbc):
            self.metadata["pbc_note"] = (f"pbc = {first.pbc.tolist()} in the file; the stored cell is used as "
                                         "fully periodic")
        t0 = first.info.get("time")
        if t0 is not None:
            t = []
            for i in range(n):
                ti = self._frame(i).info.get("time")
                if ti is None:
                    raise TrajectoryError("info['time'] is missing in this frame but present in frame 0",
                                          path=self.path, frame=i)
                t.append(float(ti) / self._ase_fs * 1e-3)
            self.times = np.asarray(t)
            tsrc = "info['time'] (ASE time units → ps)"
        else:
            tsrc = "none in file (frame_interval, ps)"
        self.units = {"length": "Å", "time": tsrc,
                      "velocity": "Å/ps (momenta/masses × 1000 × ase.units.fs)" if self.has_velocities else "none"}

    def _frame(self, i):
        try:
            at = self._traj[i]
        except Exception as err:   # a damaged or cut file: ASE raises ValueError, JSON errors, struct errors …
            raise TrajectoryError(f"ASE cannot read this frame ({type(err).__name__}: {err}); the file is damaged "
                                  "or cut", path=self.path, frame=i) from err
        if len(at) != self.n_atoms or not np.array_equal(at.numbers, self._numbers):
            raise TrajectoryError(f"the atoms change: {len(at)} atoms here, {self.n_atoms} in frame 0 (or another "
                                  "element order)", path=self.path, frame=i)
        return at

    def _cell_of(self, at):
        c = np.asarray(at.cell.array, dtype=np.float64)
        if not np.any(c):
            if self.options.cell is None:
                raise TrajectoryError("this frame has no cell; give it with --cell", path=self.path)
            return np.asarray(self.options.cell, dtype=np.float64)
        return c

    def read_cells(self, start, stop):
        if self._cells is None:
            self._cells = compact_cells(np.array([self._cell_of(self._frame(i))
                                                  for i in range(self.n_frames)]).reshape(-1, 3, 3))
        return np.array(self._cells[start:stop])

    def read(self, start, stop, atoms=None, velocities=None):
        """Frames ``start:stop`` (ASE builds each frame whole); only ``atoms`` are kept, momenta only when wanted."""
        idx = slice(None) if atoms is None else np.asarray(atoms, dtype=np.int64)
        n_sel = self.n_atoms if atoms is None else len(idx)
        m = stop - start
        pos = np.empty((m, n_sel, 3))
        cells = np.empty((m, 3, 3))
        vel = np.empty((m, n_sel, 3)) if self.has_velocities and want_velocities(velocities) else None
        for k in range(m):
            at = self._frame(start + k)
            pos[k] = at.positions[idx]
            cells[k] = self._cell_of(at)
            if vel is not None:
                if not at.has("momenta"):
                    raise TrajectoryError("momenta are missing in this frame but present in frame 0",
                                          path=self.path, frame=start + k)
                vel[k] = at.get_velocities()[idx] * self._vfac
        return RawFrames(coords=pos, style="wrapped", cells=cells, velocities=vel, owned=True)

    def close(self):
        t = getattr(self, "_traj", None)
        if t is not None:
            t.close()
            self._traj = None
