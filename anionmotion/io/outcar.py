"""VASP ``OUTCAR`` molecular-dynamics runs.

Parts read::

       VRHFIN =O: s2p4                        (one per POTCAR = per species, in order)
       ions per type =               2   4
       IBRION =      0    ionic relax: 0-MD …
       POTIM  = 1.0000    time-step for ionic-motion
       POMASS =  16.00  1.00                  (the INCAR summary line: one mass per species)
     …
          direct lattice vectors                 reciprocal lattice vectors
        10.000000000  0.000000000  0.000000000     0.100000000 …     (a, b, c: first three columns, Å)
     …
     POSITION                                       TOTAL-FORCE (eV/Angst)
     -----------------------------------------------------------------------------------
          4.34854      4.20903      5.20000        -0.141986 …      (Cartesian Å, one row per ion)

One streamed pass over the (plain, gzip or bz2) file records the byte offset
of every ``POSITION`` block and the lattice printed last before it (the cell of
that ionic step); :meth:`read` parses only the requested blocks.  Step ``k``
is at ``k × POTIM`` fs when ``IBRION = 0``; otherwise give ``frame_interval``.
A block cut by the end of the file is dropped with a
:class:`~anionmotion.errors.TruncatedFileWarning`.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from ..errors import FormatError, TrajectoryError, TruncatedFileWarning
from ..units import FS_PS
from ..kernels import textparse as tp
from ._text import elements_of, line_at
from .base import BaseReader, RawFrames, check_text_head, open_binary

GROUP_BYTES = 32 << 20
"""Largest byte span of ionic steps read and parsed at once by :meth:`OUTCARReader.read` (at least one step)."""

__all__ = ["OUTCARReader"]

_VRHFIN = re.compile(rb"^\s*VRHFIN\s*=\s*([A-Za-z]+)\s*:")
_INT = re.compile(rb"^\s*(IBRION)\s*=\s*(-?\d+)")
_POTIM = re.compile(rb"^\s*POTIM\s*=\s*([-+0-9.Ee]+)")
_POMASS = re.compile(rb"^\s*POMASS\s*=\s*([-+0-9.Ee\s]+)$")


class OUTCARReader(BaseReader):
    """VASP OUTCAR MD run: Cartesian positions per ionic step, lattice per step, plain/gzip/bz2.

    Parameters
    ----------
    path : str
    options : ReaderOptions
        ``frame_interval`` (ps) when the run is not MD (IBRION ≠ 0) or POTIM is missing.
    """

    format_name = "outcar"
    description = "VASP OUTCAR (POSITION/TOTAL-FORCE blocks, lattice per step; time from POTIM)"

    def __init__(self, path, options):
        super().__init__(path, options)
        species, counts, masses = [], None, None
        ibrion = potim = None
        offsets, ends, cells = [], [], []
        lattice = None
        n = None
        truncated = False
        pos = 0
        with open_binary(self.path) as fh:
            head = fh.read(65536)
            check_text_head(head, self.path, "a VASP OUTCAR")
            if b" vasp." not in head[:400] and b"POTCAR:" not in head:
                raise FormatError("not a VASP OUTCAR (no 'vasp.' version line or POTCAR: line at the start)",
                                  path=self.path)
        with open_binary(self.path) as fh:
            it = iter(fh)
            for line in it:
                start = pos
                pos += len(line)
                if b"POSITION" in line and b"TOTAL-FORCE" in line:
                    if n is None:
                        if counts is None:
                            raise TrajectoryError("a POSITION block before 'ions per type ='; expected the "
                                                  "OUTCAR header first", path=self.path)
                        n = sum(counts)
                    if lattice is None:
                        raise TrajectoryError("a POSITION block before any 'direct lattice vectors' block",
                                              path=self.path, frame=len(offsets))
                    ln = next(it, None)
                    if ln is None:
                        truncated = True
                        break
                    pos += len(ln)
                    if not ln.strip().startswith(b"---"):
                        raise TrajectoryError("expected a line of dashes after the POSITION header",
                                              path=self.path, frame=len(offsets))
                    rows, ended = 0, False
                    while True:
                        ln = next(it, None)
                        if ln is None:
                            break
                        pos += len(ln)
                        if ln.strip().startswith(b"---"):
                            ended = True
                            break
                        rows += 1
                    if not ended:
                        truncated = True
                        break
                    if rows != n:
                        raise TrajectoryError(f"the POSITION block has {rows} rows; 'ions per type' gives {n}",
                                              path=self.path, frame=len(offsets))
                    offsets.append(start)
                    ends.append(pos)
                    cells.append(lattice)
                    continue
                if b"direct lattice vectors" in line:
                    vals = []
                    for _ in range(3):
                        ln = next(it, b"")
                        pos += len(ln)
                        vals.append(ln.split()[:3])
                    try:
                        lattice = np.array(vals, dtype=np.float64)
                    except ValueError:
                        if not vals[-1]:
                            truncated = True
                            break
                        raise TrajectoryError("expected three lattice rows after 'direct lattice vectors'",
                                              path=self.path, frame=len(offsets)) from None
                    continue
                if offsets:
                    continue                  # the header items below come before the first step
                m = _VRHFIN.match(line)
                if m:
                    species.append(m.group(1).decode())
                    continue
                if b"ions per type" in line:
                    try:
                        counts = [int(x) for x in line.split(b"=")[1].split()]
                    except (ValueError, IndexError):
                        raise TrajectoryError(f"expected integers after 'ions per type ='; found "
                                              f"{line.strip()[:120].decode('latin-1')!r}", path=self.path) from None
                    continue
                m = _INT.match(line)
                if m and ibrion is None:
                    ibrion = int(m.group(2))
                    continue
                m = _POTIM.match(line)
                if m and potim is None:
                    potim = float(m.group(1))
                    continue
                m = _POMASS.match(line)
                if m and masses is None:
                    masses = [float(x) for x in m.group(1).split()]
        if counts is None:
            raise TrajectoryError("no 'ions per type =' line; is this an OUTCAR?", path=self.path)
        if len(species) != len(counts):
            raise TrajectoryError(f"{len(species)} VRHFIN species lines but 'ions per type' has {len(counts)} "
                                  "numbers", path=self.path)
        if truncated:
            warnings.warn(f"{self.path}: the file ends inside ionic step {len(offsets)}; keeping the "
                          f"{len(offsets)} complete step(s)", TruncatedFileWarning, stacklevel=3)
        if not offsets:
            raise TrajectoryError("no complete 'POSITION … TOTAL-FORCE' block (no ionic step)", path=self.path)
        self.n_atoms = int(sum(counts))
        self.n_frames = len(offsets)
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._ends = np.asarray(ends, dtype=np.int64)
        self._cells = np.asarray(cells, dtype=np.float64).reshape(-1, 3, 3)
        self.species = np.repeat(elements_of(species, path=self.path, what="VRHFIN species"), counts)
        if masses is not None and len(masses) == len(counts):
            self.masses = np.repeat(np.asarray(masses, dtype=np.float64), counts)
        self.metadata = {k: v for k, v in (("IBRION", ibrion), ("POTIM_fs", potim)) if v is not None}
        if ibrion == 0 and potim is not None and potim > 0:
            self.times = np.arange(self.n_frames, dtype=np.float64) * potim * FS_PS
            tsrc = f"step × POTIM ({potim:g} fs)"
        else:
            if options.frame_interval is None:
                why = (f"IBRION = {ibrion} is not molecular dynamics" if ibrion not in (None, 0)
                       else "POTIM is missing" if potim is None else f"POTIM = {potim:g} is not a positive time")
                raise TrajectoryError(f"{why}, so the steps have no times; give the time between steps with "
                                      "frame_interval= / --frame-interval (ps)", path=self.path)
            tsrc = "frame_interval"
        self.coord_style = "wrapped"
        self.units = {"length": "Å (Cartesian POSITION)", "time": tsrc, "velocity": "none (not in OUTCAR)"}

    def read_cells(self, start, stop):
        return self._cells[start:stop].copy()

    def _read_bytes(self, a, b):
        """Bytes ``[a, b)`` of the (decompressed) file; the handle stays open, so reading forward through a
        gzip/bz2 file never decompresses it again from the start."""
        fh = getattr(self, "_fh", None)
        if fh is None or self._fh_pos > a:
            if fh is not None:
                fh.close()
            fh = self._fh = open_binary(self.path)
            self._fh_pos = 0
        if self._fh_pos != a:
            fh.seek(a)
        data = fh.read(b - a)
        self._fh_pos = a + len(data)
        if len(data) != b - a:
            raise TrajectoryError(f"the file changed since it was indexed (expected {b - a} bytes at offset {a}, "
                                  f"got {len(data)})", path=self.path)
        return data

    def read(self, start, stop, atoms=None, velocities=None):
        """Frames ``start:stop`` of atoms ``atoms`` (OUTCAR has no velocities).

        The POSITION blocks of up to :data:`GROUP_BYTES` of the file are read
        at once and their numbers parsed by the compiled text parser
        (:func:`anionmotion.kernels.textparse.parse_frames`: no Python per row,
        the rows of unselected atoms skipped, frames split over two threads
        with the GIL released); the doubles are those of Python ``float``.
        """
        n = self.n_atoms
        start, stop = int(start), int(max(start, stop))
        if atoms is None:
            rowmap = np.arange(n, dtype=np.int64)
            n_sel = n
        else:
            atoms = np.asarray(atoms, dtype=np.int64)
            rowmap = np.full(n, -1, dtype=np.int64)
            rowmap[atoms] = np.arange(len(atoms))
            n_sel = len(atoms)
        out = np.empty((stop - start, n_sel, 3))
        f = start
        while f < stop and n_sel:
            g = int(np.searchsorted(self._ends, int(self._offsets[f]) + GROUP_BYTES, side="right"))
            g = min(max(g, f + 1), stop)
            a, b = int(self._offsets[f]), int(self._ends[g - 1])
            buf = np.frombuffer(self._read_bytes(a, b), dtype=np.uint8)
            # each block: the POSITION header, a line of dashes, then n rows "x y z fx fy fz"
            res = tp.parse_frames(buf, self._offsets[f:g] - a, 2, n, np.arange(3, dtype=np.int64), rowmap,
                                  out[f - start:g - start])
            if res[0] != tp.OK:
                k = f + int(res[1])
                what = "not a number" if res[0] == tp.BADNUM else "fewer than 3 numbers"
                raise TrajectoryError(f"non-numeric value in the POSITION block (row {int(res[2]) + 1}: {what}: "
                                      f"{line_at(buf, res[3])!r})", path=self.path, frame=k)
            f = g
        return RawFrames(coords=out, style="wrapped", cells=self.read_cells(start, stop), owned=True)

