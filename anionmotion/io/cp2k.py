"""CP2K MD output: ``PROJECT-pos-1.xyz`` + ``PROJECT-vel-1.xyz`` + ``PROJECT-1.cell``.

Units (SPEC §0): positions Å; velocities atomic units (bohr per atomic time
unit, 1 a.u. = :data:`anionmotion.units.AU_VELOCITY_A_PS` Å/ps); cell file Å;
the comment line ``i = STEP, time = FS, E = …`` gives the MD step and the
time in fs.  Kind names (``LI``, ``O1``, ``Li_2``) are mapped to elements.

CP2K never wraps the positions it prints.  The reader still declares them
``"wrapped"`` so the Trajectory runs the frame-to-frame unwrapping (SPEC §1):
on continuous coordinates every Δs is far below ½, so unwrapping returns them
unchanged (it is idempotent, also for NPT cells), while a file that *was*
wrapped (e.g. post-processed by another tool) is still unwrapped correctly.
"""

from __future__ import annotations

import os
import re

import numpy as np

from ..errors import TrajectoryError
from ..units import AU_VELOCITY_A_PS, FS_PS
from ._text import elements_of, load_buffer
from .base import BaseReader, RawFrames, broadcast_cell, compact_cells, want_velocities
from .xyz import XYZFile

__all__ = ["CP2KReader", "read_cell_file", "cp2k_siblings"]

_HEAD = re.compile(r"i\s*=\s*(-?\d+)\s*,\s*time\s*=\s*([-+0-9.eEdD]+)")
_POS = re.compile(r"^(?P<proj>.*)-pos-(?P<n>\d+)\.xyz(?P<gz>\.gz|\.bz2)?$", re.IGNORECASE)


def _existing(*cands):
    for c in cands:
        if c and os.path.exists(c):
            return c
    return None


def cp2k_siblings(path):
    """(velocity file, cell file) next to a ``PROJECT-pos-N.xyz`` (None when absent)."""
    d, base = os.path.split(os.fspath(path))
    m = _POS.match(base)
    if not m:
        return None, None
    proj, n = m.group("proj"), m.group("n")
    vel = _existing(*[os.path.join(d, f"{proj}-vel-{n}.xyz{s}") for s in ("", ".gz", ".bz2")])
    cell = _existing(*[os.path.join(d, f"{proj}-{n}.cell{s}") for s in ("", ".gz", ".bz2")])
    return vel, cell


def read_cell_file(path):
    """Read a CP2K ``.cell`` file.

    Returns
    -------
    steps : ndarray, int64, shape (n,)
    times : ndarray, float64, shape (n,), ps
    cells : ndarray, float64, shape (n, 3, 3), Å (rows a, b, c)
    """
    buf = load_buffer(path, "a CP2K .cell file")
    text = bytes(buf).decode("latin-1")
    rows = []
    for ln, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        toks = s.split()
        try:
            vals = [float(x) for x in toks]
        except ValueError:
            raise TrajectoryError(f"expected numbers (step, time, Ax … Cz, volume); found {line.strip()[:120]!r}",
                                  path=path, line=ln) from None
        if len(vals) < 11:
            raise TrajectoryError(f"expected at least 11 numbers (step, time fs, Ax Ay Az Bx By Bz Cx Cy Cz); found "
                                  f"{len(vals)}", path=path, line=ln)
        rows.append(vals[:11])
    if not rows:
        raise TrajectoryError("no cell rows (expected step, time, Ax … Cz, volume per line)", path=path)
    a = np.asarray(rows)
    return a[:, 0].astype(np.int64), a[:, 1] * FS_PS, a[:, 2:11].reshape(-1, 3, 3)


def _headers(f: XYZFile, path):
    n = f.n_frames
    steps = np.empty(n, dtype=np.int64)
    times = np.empty(n, dtype=np.float64)
    for i in range(n):
        c = f.comment(i)
        m = _HEAD.search(c)
        if not m:
            raise TrajectoryError(f"comment line {c[:100]!r} is not CP2K's 'i = STEP, time = FS, E = …'",
                                  path=path, frame=i, line=f.comment_line_number(i))
        steps[i] = int(m.group(1))
        times[i] = float(m.group(2).replace("D", "E").replace("d", "e"))
    return steps, times * FS_PS


class CP2KReader(BaseReader):
    """CP2K ``*-pos-*.xyz`` with the sibling ``*-vel-*.xyz`` and ``*.cell`` (found automatically).

    Parameters
    ----------
    path : str
        The positions file (gzip/bz2 allowed).
    options : ReaderOptions
        ``vel`` / ``cell_file`` name the velocity / cell files when they are
        not next to the positions; ``cell`` (Å) gives a fixed cell (it takes
        precedence over a cell file).
    """

    format_name = "cp2k"
    description = "CP2K XMOL *-pos-*.xyz (Å) + *-vel-*.xyz (atomic units) + *.cell (Å)"

    def __init__(self, path, options):
        super().__init__(path, options)
        pos = self._pos = XYZFile(self.path, expected="a CP2K *-pos-*.xyz file")
        colmap = np.array([-1, 0, 1, 2], dtype=np.int64)
        self._colmap = colmap
        pos.check_last_frame(colmap, 3)
        self.n_atoms = pos.n_atoms
        self.species = elements_of(pos.tokens(0, 0), path=self.path, line_of=lambda i: pos.atom_line(0, i),
                                   what="CP2K kind")
        steps, times = _headers(pos, self.path)
        vel_path, cell_path = cp2k_siblings(self.path)
        if options.vel is not None:
            vel_path = os.fspath(options.vel)
        if options.cell_file is not None:
            cell_path = os.fspath(options.cell_file)
        self.companion_paths = [p for p in (vel_path, cell_path) if p]   # inputs too: never written over
        self.units = {"length": "Å", "time": "ps (comment line fs × 0.001)", "velocity": "Å/ps (CP2K a.u. × "
                      f"{AU_VELOCITY_A_PS:.6f})"}
        self.metadata["positions_file"] = self.path
        # velocities
        self._vel = None
        if vel_path is not None:
            vel = XYZFile(vel_path, expected="a CP2K *-vel-*.xyz file")
            if vel.n_atoms != pos.n_atoms:
                raise TrajectoryError(f"the velocity file {vel_path} has {vel.n_atoms} atoms but the positions file "
                                      f"{self.path} has {pos.n_atoms}", path=vel_path, line=1)
            vel.check_last_frame(colmap, 3)
            vsteps, _ = _headers(vel, vel_path)
            n = min(len(vsteps), len(steps))
            diff = np.nonzero(vsteps[:n] != steps[:n])[0]
            if len(diff):
                i = int(diff[0])
                raise TrajectoryError(
                    f"positions {self.path} and velocities {vel_path} disagree at frame {i}: step {steps[i]} in the "
                    f"positions, step {vsteps[i]} in the velocities; both files must hold the same MD steps",
                    path=vel_path, frame=i, line=vel.comment_line_number(i))
            if len(vsteps) != len(steps):
                i = n
                more, less = (self.path, vel_path) if len(steps) > len(vsteps) else (vel_path, self.path)
                raise TrajectoryError(
                    f"positions {self.path} have {len(steps)} frames but velocities {vel_path} have {len(vsteps)}; "
                    f"the first unmatched frame is frame {i} (step {(steps if len(steps) > n else vsteps)[i]}) in "
                    f"{more}, missing from {less}. Give matching files (or cut the longer one)", path=vel_path,
                    frame=i)
            self._vel = vel
            self.metadata["velocities_file"] = vel_path
        self.has_velocities = self._vel is not None
        self.n_frames = pos.n_frames
        self.steps = steps
        # times: REFTRAJ runs print time = 0 for every frame
        if self.n_frames > 1 and np.all(times == times[0]):
            self.times = None
            self.metadata["time_note"] = ("every frame has the same time (e.g. ENSEMBLE REFTRAJ); give "
                                          "frame_interval")
        else:
            self.times = times
            self.units["time_source"] = "comment line"
        # cells
        if options.cell is not None:
            self._cells = np.broadcast_to(np.asarray(options.cell, dtype=np.float64), (self.n_frames, 3, 3))
            self.metadata["cell_source"] = "user cell"
        elif cell_path is not None:
            self._cells = compact_cells(self._match_cells(cell_path, steps))
            self.metadata["cell_file"] = cell_path
        else:
            raise TrajectoryError("no cell: there is no PROJECT-N.cell next to the positions; give the cell with "
                                  "cell= / --cell (3 lengths or 9 numbers, Å) or the cell file with cell_file= / "
                                  "--cell-file", path=self.path)
        self.coord_style = "wrapped"

    def _match_cells(self, cell_path, steps):
        csteps, _, cells = read_cell_file(cell_path)
        order = np.argsort(csteps, kind="stable")
        cs = csteps[order]
        idx = np.searchsorted(cs, steps)
        idx_c = np.clip(idx, 0, len(cs) - 1)
        found = cs[idx_c] == steps
        if found.all():
            return cells[order][idx_c]
        if np.all(np.abs(cells - cells[0]) < 1e-10):
            self.metadata["cell_note"] = "cell file rows do not match every step; the cell is constant and was used"
            return np.broadcast_to(cells[0], (len(steps), 3, 3))
        i = int(np.nonzero(~found)[0][0])
        raise TrajectoryError(f"the cell file {cell_path} has no row for step {steps[i]} (frame {i}) and its cell "
                              "changes, so the frame's cell is unknown; give the matching .cell file "
                              "(MOTION/PRINT/CELL with the same EACH as the trajectory)", path=self.path, frame=i)

    def read_cells(self, start, stop):
        return np.array(self._cells[start:stop])

    def constant_cell(self):
        """The one cell when it is given (``cell=``) or the cell file's cell is constant, else None."""
        return broadcast_cell(self._cells)

    def read(self, start, stop, atoms=None, velocities=None):
        """Frames ``start:stop`` of atoms ``atoms``; the velocity file is parsed only when velocities are wanted."""
        pos = self._pos.parse(start, stop, self._colmap, 3, atoms)
        vel = None
        if self._vel is not None and want_velocities(velocities):
            vel = self._vel.parse(start, stop, self._colmap, 3, atoms, what="velocities")
            vel *= AU_VELOCITY_A_PS
        return RawFrames(coords=pos, style="wrapped", cells=self.read_cells(start, stop),
                         times=None if self.times is None else self.times[start:stop], velocities=vel,
                         steps=self.steps[start:stop], owned=True)
