"""Extended XYZ and plain XYZ trajectories.

A frame is an atom-count line, a comment line and one row per atom.  The
extended-XYZ comment line carries ``key=value`` pairs: ``Lattice="ax ay az bx
by bz cx cy cz"`` (rows a, b, c, Å), ``Properties=species:S:1:pos:R:3:…`` (the
columns), and optionally ``Time=``.  Positions are Å.  Unit conventions for
velocities and times are not fixed by the format; see ``docs/formats.md``
("Extended XYZ and XYZ") for what is assumed and how to state units
explicitly (``velocity_unit=``, ``time_unit=`` keys).

The file is indexed once (byte offset of every frame, compiled scan) and any
frame range is parsed by compiled loops into preallocated arrays.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from ..errors import AnionmotionWarning, TrajectoryError, TruncatedFileWarning
from ..kernels import textparse as tp
from ..units import BOHR_A, FS_PS
from ._text import elements_of, line_at, line_number, load_buffer, raise_parse_error
from .base import BaseReader, RawFrames, broadcast_cell, compact_cells, want_velocities

__all__ = ["XYZReader", "XYZFile", "parse_comment", "parse_properties", "ASE_VELOCITY_A_PS"]

ASE_VELOCITY_A_PS = 1.0 / (1e-10 * np.sqrt(1.66053906660e-27 / 1.602176634e-19) * 1e12)
"""ASE's velocity unit, Å / (Å·√(amu/eV)) ≈ 98.2269 Å/ps (ASE momenta are amu × this unit)."""

_KV = re.compile(r"""([A-Za-z_][\w\-.]*)\s*=\s*("(?:[^"\\]|\\.)*"|'[^']*'|\{[^}]*\}|[^\s"']+)""")

_VEL_UNITS = {"a/ps": 1.0, "angstrom/ps": 1.0, "å/ps": 1.0, "a/fs": 1.0 / FS_PS, "angstrom/fs": 1.0 / FS_PS,
              "å/fs": 1.0 / FS_PS, "ase": ASE_VELOCITY_A_PS}
_TIME_UNITS = {"ps": 1.0, "fs": FS_PS}


def parse_comment(line: str) -> dict:
    """``key=value`` pairs of an extended-XYZ comment line (keys lower-cased, quotes removed)."""
    out = {}
    for m in _KV.finditer(line):
        v = m.group(2)
        if len(v) >= 2 and v[0] in "\"'{" and v[-1] in "\"'}":
            v = v[1:-1]
        out[m.group(1).lower()] = v
    return out


def parse_properties(spec: str, *, path=None):
    """``species:S:1:pos:R:3`` → list of (name, type, n_columns, first_token_index)."""
    parts = spec.split(":")
    if len(parts) % 3:
        raise TrajectoryError(f"Properties={spec!r} is malformed; expected name:type:count triples "
                              "(e.g. species:S:1:pos:R:3)", path=path, line=2)
    out, tok = [], 0
    for i in range(0, len(parts), 3):
        name, typ, cnt = parts[i], parts[i + 1].upper(), parts[i + 2]
        if typ not in ("S", "R", "I", "L") or not cnt.isdigit() or int(cnt) < 1:
            raise TrajectoryError(f"Properties entry {':'.join(parts[i:i + 3])!r} is malformed; expected "
                                  "name:type:count with type S, R, I or L", path=path, line=2)
        out.append((name, typ, int(cnt), tok))
        tok += int(cnt)
    return out


def _cell_from_lattice(value, *, path, frame, line):
    try:
        nums = [float(x) for x in value.replace(",", " ").split()]
    except ValueError:
        nums = []
    if len(nums) != 9:
        raise TrajectoryError(f"Lattice={value!r} must hold 9 numbers (rows a, b, c, Å)", path=path, frame=frame,
                              line=line() if callable(line) else line)
    return np.asarray(nums, dtype=np.float64).reshape(3, 3)


class XYZFile:
    """An indexed XYZ-layout file: count line, comment line, ``n_atoms`` rows per frame.

    Attributes
    ----------
    buf : ndarray of uint8
        The file content.
    n_atoms : int
    offsets : ndarray of int64, shape (n_frames,)
        Byte offset of each complete frame.
    """

    def __init__(self, path, *, expected="an XYZ file"):
        self.path = path
        self.buf = buf = load_buffer(path, expected)
        first = line_at(buf, 0).strip()
        if not first.isdigit():
            raise TrajectoryError(f"the first line must be the number of atoms; found {first!r} "
                                  f"(expected {expected})", path=path, line=1)
        self.n_atoms = int(first)
        if self.n_atoms < 1:
            raise TrajectoryError("the first line says 0 atoms; expected a positive atom count", path=path, line=1)
        offsets, status, pos, value = tp.index_xyz(buf, 0, self.n_atoms)
        self.truncated = False
        if status == tp.BADHEAD:
            k = len(offsets)
            got = line_at(buf, pos)
            raise TrajectoryError(
                f"the atom-count line of frame {k} reads {got.strip()!r}; expected {self.n_atoms} (the atom count "
                "of frame 0; the number of atoms must not change between frames, and every frame needs exactly "
                "one count line, one comment line and one row per atom)",
                path=path, line=line_number(buf, pos), frame=k)
        if status == tp.TRUNC:
            self._warn_truncated(len(offsets), value)
        self.offsets = offsets
        if len(offsets) == 0:
            raise TrajectoryError(f"no complete frame: the file ends before {self.n_atoms} atom rows were read",
                                  path=path)

    def _warn_truncated(self, frame, rows):
        self.truncated = True
        warnings.warn(f"{self.path}: the last frame (frame {frame}) is incomplete ({rows} of {self.n_atoms} atom "
                      f"rows); keeping the {frame} complete frame(s)", TruncatedFileWarning, stacklevel=4)

    @property
    def n_frames(self):
        return len(self.offsets)

    def comment(self, frame) -> str:
        pos, _ = tp.skip_lines(self.buf, int(self.offsets[frame]), 1)
        return line_at(self.buf, pos, max_len=1 << 20)

    def comment_line_number(self, frame) -> int:
        return line_number(self.buf, self.offsets[frame]) + 1

    def tokens(self, frame, tok):
        """Token ``tok`` of every atom row of ``frame`` (list of str)."""
        pos, _ = tp.skip_lines(self.buf, int(self.offsets[frame]), 2)
        starts, stops, _ = tp.token_spans(self.buf, pos, self.n_atoms, tok)
        bad = np.nonzero(starts < 0)[0]
        if len(bad):
            i = int(bad[0])
            p, _ = tp.skip_lines(self.buf, pos, i)
            raise TrajectoryError(f"atom row has fewer than {tok + 1} fields: {line_at(self.buf, p)!r}",
                                  path=self.path, line=line_number(self.buf, p), frame=frame, atom=i)
        b = bytes(self.buf[starts.min():stops.max()]) if len(starts) else b""
        base = int(starts.min()) if len(starts) else 0
        return [b[s - base:e - base].decode("latin-1") for s, e in zip(starts, stops)]

    def atom_line(self, frame, atom) -> int:
        return line_number(self.buf, self.offsets[frame]) + 2 + atom

    def parse(self, start, stop, colmap, n_cols, atoms=None, what="coordinates"):
        """Numbers of frames ``start:stop`` → array (n, n_sel, n_cols) (tokens mapped by ``colmap``)."""
        if atoms is None:
            rowmap = np.arange(self.n_atoms, dtype=np.int64)
            n_sel = self.n_atoms
        else:
            atoms = np.asarray(atoms, dtype=np.int64)
            rowmap = np.full(self.n_atoms, -1, dtype=np.int64)
            rowmap[atoms] = np.arange(len(atoms))
            n_sel = len(atoms)
        out = np.empty((stop - start, n_sel, n_cols), dtype=np.float64)
        if n_sel == 0 or stop <= start:
            return out
        res = tp.parse_frames(self.buf, self.offsets[start:stop], 2, self.n_atoms, colmap, rowmap, out)
        if res[0] != tp.OK:
            raise_parse_error(self.buf, res, path=self.path, frame0=start, what=what, row0=0)
        return out

    def check_last_frame(self, colmap, n_cols):
        """Parse the last frame; drop it with a TruncatedFileWarning if it was cut mid-row at the end of the file."""
        k = self.n_frames - 1
        out = np.empty((1, self.n_atoms, n_cols))
        rowmap = np.arange(self.n_atoms, dtype=np.int64)
        res = tp.parse_frames(self.buf, self.offsets[k:], 2, self.n_atoms, colmap, rowmap, out)
        if res[0] == tp.OK:
            return
        ends_clean = len(self.buf) and self.buf[-1] == 10
        if not ends_clean and res[2] == self.n_atoms - 1 and k > 0:
            self.offsets = self.offsets[:k]
            self._warn_truncated(k, self.n_atoms - 1)
            return
        raise_parse_error(self.buf, res, path=self.path, frame0=k)


class XYZReader(BaseReader):
    """Extended XYZ (``Lattice=``, ``Properties=``) and plain XYZ.

    Parameters
    ----------
    path : str
    options : ReaderOptions
        ``cell`` (Å) is required for plain XYZ (no ``Lattice=``) and overrides
        the file's cell when given; ``frame_interval`` is needed unless the
        frames carry ``Time=`` with an explicit ``time_unit=`` (fs or ps).

    Notes
    -----
    Velocities come from a ``vel``/``velo``/``velocities`` column (Å/fs unless
    the comment line says ``velocity_unit=A/ps``, ``A/fs`` or ``ase``) or from
    ASE ``momenta`` divided by the masses (ASE units, converted to Å/ps).
    Species are taken from the first frame.
    """

    format_name = "extxyz"
    description = "extended XYZ (Lattice=, Properties=) and plain XYZ"

    def __init__(self, path, options):
        super().__init__(path, options)
        f = self._f = XYZFile(self.path, expected="an (extended) XYZ file")
        self.n_atoms = f.n_atoms
        c0 = f.comment(0)
        kv = parse_comment(c0)
        self._kv0 = kv
        props = parse_properties(kv.get("properties", "species:S:1:pos:R:3"), path=self.path)
        by_name = {p[0].lower(): p for p in props}
        n_tok = sum(p[2] for p in props)
        if "pos" not in by_name and "positions" not in by_name:
            raise TrajectoryError(f"Properties={kv.get('properties')!r} has no pos:R:3 column", path=self.path, line=2)
        pos_p = by_name.get("pos", by_name.get("positions"))
        if pos_p[1] != "R" or pos_p[2] != 3:
            raise TrajectoryError("the pos property must be pos:R:3", path=self.path, line=2)
        sp_p = by_name.get("species", by_name.get("element"))
        if sp_p is None:
            raise TrajectoryError("Properties has no species:S:1 column; cannot tell the elements", path=self.path,
                                  line=2)
        colmap = np.full(n_tok, -1, dtype=np.int64)
        colmap[pos_p[3]:pos_p[3] + 3] = [0, 1, 2]
        self.units = {"length": "Å", "velocity": "Å/ps", "time": "ps"}
        self._lammps_xyz = False
        self._len_factor = 1.0
        self._vel_factor = None
        self._momenta = False
        vel_p = next((by_name[k] for k in ("vel", "velo", "velocities", "velocity") if k in by_name), None)
        mom_p = by_name.get("momenta")
        if vel_p is not None and vel_p[1] == "R" and vel_p[2] == 3:
            colmap[vel_p[3]:vel_p[3] + 3] = [3, 4, 5]
            unit = kv.get("velocity_unit", kv.get("velocity_units", "A/fs")).lower()
            if unit not in _VEL_UNITS:
                raise TrajectoryError(f"velocity_unit={unit!r} is not understood; use A/ps, A/fs or ase",
                                      path=self.path, line=2)
            self._vel_factor = _VEL_UNITS[unit]
            self.units["velocity_source"] = f"{vel_p[0]} column in {unit} (× {self._vel_factor:g} → Å/ps)"
        elif mom_p is not None and mom_p[1] == "R" and mom_p[2] == 3:
            colmap[mom_p[3]:mom_p[3] + 3] = [3, 4, 5]
            self._momenta = True
            self._vel_factor = ASE_VELOCITY_A_PS
            self.units["velocity_source"] = "ASE momenta / masses (ASE units, × 98.2269 → Å/ps)"
        self._colmap = colmap
        self._ncols = 6 if self._vel_factor is not None else 3
        f.check_last_frame(colmap, self._ncols)
        self.n_frames = f.n_frames
        self.has_velocities = self._vel_factor is not None
        self.coord_style = "wrapped"
        labels = f.tokens(0, sp_p[3])
        if all(lab.isdigit() for lab in labels):
            # LAMMPS "dump xyz" writes type numbers: map them with types=
            if not options.types:
                raise TrajectoryError(f"the species column holds numbers ({labels[0]!r}, … — a LAMMPS dump xyz?); "
                                      "map them to elements with types= / --types (e.g. 1=Li,2=P)",
                                      path=self.path, line=3, atom=0)
            missing = sorted({int(lab) for lab in labels} - set(options.types))
            if missing:
                raise TrajectoryError(f"types= has no element for type(s) {missing}", path=self.path, line=3)
            labels = [options.types[int(lab)] for lab in labels]
            self._lammps_units(options)
        self.species = elements_of(labels, path=self.path, line_of=lambda i: f.atom_line(0, i))
        mass_p = by_name.get("masses", by_name.get("mass"))
        if mass_p is not None and mass_p[1] == "R":
            mm = np.full(n_tok, -1, dtype=np.int64)
            mm[mass_p[3]] = 0
            mm = mm[:mass_p[3] + 1]
            self.masses = f.parse(0, 1, mm, 1, what="masses")[0, :, 0]
        if self._momenta:
            from ..elements import masses_of

            m = self.masses if self.masses is not None else masses_of(self.species)
            self._inv_mass = 1.0 / np.asarray(m, dtype=np.float64)
        # cells
        self._cells = None
        self._has_lattice = "lattice" in kv
        if options.cell is None and not self._has_lattice:
            raise TrajectoryError("plain XYZ without a Lattice= cell; give the cell with cell= / --cell "
                                  "(3 lengths or 9 numbers, Å)", path=self.path, line=2)
        # times
        self.times = None
        if self._lammps_xyz and options.timestep is not None:
            steps = [re.match(r"\s*Atoms\. Timestep:\s*(\d+)", f.comment(i)) for i in range(self.n_frames)]
            if all(steps):
                self.times = np.array([int(m.group(1)) for m in steps], dtype=np.float64) * options.timestep
                self.units["time_source"] = f"'Atoms. Timestep: N' × timestep ({options.timestep:g} ps)"
        if "time" in kv:
            tunit = kv.get("time_unit", kv.get("time_units"))
            if tunit is not None:
                if tunit.lower() not in _TIME_UNITS:
                    raise TrajectoryError(f"time_unit={tunit!r} is not understood; use fs or ps", path=self.path,
                                          line=2)
                self.times = self._frame_values("time") * _TIME_UNITS[tunit.lower()]
                self.units["time_source"] = f"Time= ({tunit})"
            else:
                self.metadata["time_note"] = ("frames carry Time= without a time_unit=; its unit is not defined by "
                                              "the format, so frame_interval is required")
        for k, v in kv.items():
            if k not in ("lattice", "properties", "time", "pbc", "stress", "virial"):
                self.metadata.setdefault(k, v)

    def _lammps_units(self, options):
        """A LAMMPS ``dump xyz`` (type numbers as labels): lengths in the run's unit style (SPEC §0)."""
        self._lammps_xyz = True
        style = options.lammps_units
        self.metadata["lammps_units"] = style
        if style == "electron":
            self._len_factor = BOHR_A
            self.units["length"] = "Å (from bohr × 0.529177, LAMMPS dump xyz in units electron; --cell is Å)"
        elif style == "lj":
            warnings.warn(f"{self.path}: units lj are reduced (σ): positions are passed through unconverted and are "
                          "NOT Å", AnionmotionWarning, stacklevel=4)
            self.units["length"] = "σ (units lj: reduced, NOT converted)"

    def _frame_values(self, key):
        out = np.empty(self.n_frames)
        for i in range(self.n_frames):
            kv = parse_comment(self._f.comment(i))
            try:
                out[i] = float(kv[key])
            except (KeyError, ValueError):
                raise TrajectoryError(f"frame has no numeric {key}= on its comment line (frame 0 has one)",
                                      path=self.path, frame=i, line=self._f.comment_line_number(i)) from None
        return out

    def _all_cells(self):
        if self._cells is None:
            n = self.n_frames
            if self.options.cell is not None:
                self._cells = np.broadcast_to(np.asarray(self.options.cell, dtype=np.float64), (n, 3, 3))
            else:
                cells = np.empty((n, 3, 3))
                for i in range(n):
                    kv = parse_comment(self._f.comment(i)) if i else self._kv0
                    if "lattice" not in kv:
                        raise TrajectoryError("frame has no Lattice= (frame 0 has one)", path=self.path, frame=i,
                                              line=self._f.comment_line_number(i))
                    cells[i] = _cell_from_lattice(kv["lattice"], path=self.path, frame=i,
                                                  line=lambda i=i: self._f.comment_line_number(i))
                self._cells = compact_cells(cells)
        return self._cells

    def read_cells(self, start, stop):
        return np.array(self._all_cells()[start:stop])

    def constant_cell(self):
        """The ``cell=`` option's cell; the file's ``Lattice=`` cells are checked by the trajectory."""
        if self.options.cell is not None:
            return np.asarray(self.options.cell, dtype=np.float64).reshape(3, 3)
        return broadcast_cell(self._cells)   # known once the Lattice= cells have been read

    def read(self, start, stop, atoms=None, velocities=None):
        """Frames ``start:stop``: only the rows of ``atoms`` are parsed, the velocity columns only when wanted."""
        with_vel = self._vel_factor is not None and want_velocities(velocities)
        if with_vel or self._vel_factor is None:
            colmap, ncols = self._colmap, self._ncols
        else:
            colmap, ncols = np.where(self._colmap >= 3, -1, self._colmap), 3
        data = self._f.parse(start, stop, colmap, ncols, atoms)
        pos = data[..., :3]
        if self._len_factor != 1.0:
            pos = pos * self._len_factor
        vel = None
        if with_vel:
            vel = data[..., 3:6] * self._vel_factor
            if self._momenta:
                inv = self._inv_mass if atoms is None else self._inv_mass[np.asarray(atoms, dtype=np.int64)]
                vel *= inv[None, :, None]
        return RawFrames(coords=np.ascontiguousarray(pos), style="wrapped", cells=self.read_cells(start, stop),
                         times=None if self.times is None else self.times[start:stop], velocities=vel, owned=True)
