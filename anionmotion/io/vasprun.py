"""VASP ``vasprun.xml`` molecular-dynamics runs.

Layout of the parts read (VASP 5/6)::

    <modeling>
     <incar> … <i name="POTIM"> 1.0 </i> <i type="int" name="IBRION"> 0 </i> … </incar>
     <parameters> … the same tags with defaults filled in … </parameters>
     <atominfo>
      <array name="atoms"> <set> <rc><c>O</c><c>1</c></rc> … </set> </array>          (element, type per atom)
      <array name="atomtypes"> <set> <rc><c>2</c><c>O</c><c>16.0</c>…</rc> … </set> </array>  (count, element, mass)
     </atominfo>
     <calculation>                 (one per ionic step)
      <scstep> … </scstep> …
      <structure>
       <crystal> <varray name="basis"> <v>a</v> <v>b</v> <v>c</v> </varray> … </crystal>
       <varray name="positions"> <v>fractional</v> … </varray>
      </structure>
      <varray name="forces"> … </calculation>
     …
    </modeling>

The file is never held in memory: one pass over the (possibly gzip/bz2
compressed) bytes records, for every ``<calculation>``, the byte range of its
``<structure>`` element; the header (everything before the first step) is
parsed with :func:`xml.etree.ElementTree.iterparse`, and :meth:`read` parses
only the ``<structure>`` elements of the requested steps.

Times: step ``k`` (0-based, the ``k``-th ``<calculation>``) is at
``k × POTIM`` fs when ``IBRION = 0`` (MD); VASP writes every ionic step to
vasprun.xml (NBLOCK only thins XDATCAR).  For other IBRION values (relaxations)
or a file without POTIM, give ``frame_interval``.  A file cut inside a step
(a crashed or running job) keeps the complete steps with a
:class:`~anionmotion.errors.TruncatedFileWarning`.
"""

from __future__ import annotations

import re
import warnings
import xml.etree.ElementTree as ET

import numpy as np

from ..errors import FormatError, TrajectoryError, TruncatedFileWarning
from ..units import FS_PS
from ._text import elements_of
from .base import BaseReader, RawFrames, open_binary

__all__ = ["VasprunReader", "scan_steps"]

_TOKENS = re.compile(rb"<calculation>|</calculation>|<structure[\s>/]|</structure>")
_BLOCK = 1 << 22


def scan_steps(fh):
    """Byte ranges of the ``<structure>`` element of every ``<calculation>``.

    Parameters
    ----------
    fh : binary file object positioned at the start of a vasprun.xml

    Returns
    -------
    ranges : ndarray, shape (n_complete, 2), int64
        ``[start, end)`` byte offsets (in the decompressed stream) of each
        complete step's ``<structure> … </structure>``.
    first_calc : int
        Offset of the first ``<calculation>`` (-1 when there is none).
    n_started : int
        Number of ``<calculation>`` tags seen (a larger value than
        ``n_complete`` means the last step was cut off).
    closed : bool
        True when the last step started also has its ``</calculation>``.
    """
    ranges = []
    first_calc = -1
    n_started = 0
    in_calc = False
    s_start = -1
    closed = True
    carry = b""
    base = 0                      # offset of carry[0] in the stream
    keep = 16                     # longest token is 14 bytes
    while True:
        block = fh.read(_BLOCK)
        eof = not block
        data = carry + block
        limit = len(data) if eof else max(0, len(data) - keep)
        for m in _TOKENS.finditer(data):
            if m.start() >= limit:
                break
            tok = m.group()
            pos = base + m.start()
            if tok == b"<calculation>":
                n_started += 1
                if first_calc < 0:
                    first_calc = pos
                in_calc, s_start, closed = True, -1, False
            elif tok == b"</calculation>":
                in_calc, closed = False, True
            elif tok == b"</structure>":
                if in_calc and s_start >= 0:
                    ranges.append((s_start, pos + len(tok)))
                    s_start = -2          # only the first structure of a step
            elif in_calc and s_start == -1:
                s_start = pos
        if eof:
            break
        carry = data[limit:]
        base += limit
    return np.asarray(ranges, dtype=np.int64).reshape(-1, 2), first_calc, n_started, closed


def _text_of(el):
    return (el.text or "").strip()


def _read_header(path):
    """Parse everything before the first ``<calculation>``: INCAR/parameters values and atominfo."""
    incar, params = {}, {}
    atoms_rows, types_rows = None, None
    stack = []
    with open_binary(path) as fh:
        try:
            for event, el in ET.iterparse(fh, events=("start", "end")):
                if event == "start":
                    stack.append(el.tag)
                    if el.tag == "calculation":
                        break
                    continue
                stack.pop()
                if el.tag == "i" and el.get("name") in ("POTIM", "IBRION", "NBLOCK", "NSW", "ISIF"):
                    target = params if "parameters" in stack else incar if "incar" in stack else None
                    if target is not None:
                        target.setdefault(el.get("name"), _text_of(el))
                elif el.tag == "array" and "atominfo" in stack:
                    rows = [[_text_of(c) for c in rc.iter("c")] for rc in el.iter("rc")]
                    if el.get("name") == "atoms":
                        atoms_rows = rows
                    elif el.get("name") == "atomtypes":
                        types_rows = rows
                if el.tag in ("parameters", "atominfo", "incar"):
                    el.clear()
        except ET.ParseError as err:
            raise TrajectoryError(f"malformed XML before the first ionic step ({err})", path=path) from err
    return incar, params, atoms_rows, types_rows


def _number(d, key, kind, path):
    if key not in d:
        return None
    try:
        return kind(float(d[key]))
    except ValueError:
        raise TrajectoryError(f"{key} = {d[key]!r} is not a number", path=path) from None


class VasprunReader(BaseReader):
    """VASP vasprun.xml MD trajectory (constant or variable cell), plain/gzip/bz2.

    Parameters
    ----------
    path : str
    options : ReaderOptions
        ``frame_interval`` (ps) is needed when the run is not MD (IBRION ≠ 0)
        or POTIM is missing; otherwise times come from POTIM.

    Notes
    -----
    Step ``k`` is at ``t_k = k × POTIM × 10⁻³`` ps.  Cells are the
    ``<structure>`` basis rows (Å), coordinates are fractional.  Masses come
    from ``atomtypes`` (the POTCAR masses VASP integrated with), velocities are
    not stored per step in vasprun.xml.
    """

    format_name = "vasprun"
    description = "VASP vasprun.xml (MD steps, constant or variable cell; time from POTIM)"

    def __init__(self, path, options):
        super().__init__(path, options)
        with open_binary(self.path) as fh:
            head = fh.read(4096)
        if b"<modeling" not in head:
            raise FormatError("not a vasprun.xml (no <modeling> element in the first 4 KiB)", path=self.path)
        with open_binary(self.path) as fh:
            ranges, first_calc, n_started, closed = scan_steps(fh)
        if n_started == 0:
            raise TrajectoryError("no ionic step (<calculation>) in the file", path=self.path)
        incar, params, atoms_rows, types_rows = _read_header(self.path)
        if atoms_rows is None:
            raise TrajectoryError("no <atominfo> <array name=\"atoms\"> before the first ionic step; "
                                  "expected the element of every atom", path=self.path)
        if len(ranges) < n_started:
            warnings.warn(f"{self.path}: the file ends inside ionic step {len(ranges)} (its <structure> is "
                          f"incomplete); keeping the {len(ranges)} complete step(s)", TruncatedFileWarning,
                          stacklevel=3)
        elif not closed:
            warnings.warn(f"{self.path}: the file ends inside ionic step {n_started - 1} after its structure "
                          f"(no </calculation>, a cut or still-running job); keeping all {len(ranges)} steps",
                          TruncatedFileWarning, stacklevel=3)
        if len(ranges) == 0:
            raise TrajectoryError("no complete ionic step (every <calculation> lacks a complete <structure>)",
                                  path=self.path)
        self._ranges = ranges
        self.n_frames = len(ranges)
        labels = [r[0] for r in atoms_rows if r]
        self.n_atoms = len(labels)
        if self.n_atoms == 0:
            raise TrajectoryError("<atominfo> lists no atoms", path=self.path)
        self.species = elements_of(labels, path=self.path, what="element in <atominfo>")
        if types_rows:
            try:
                type_mass = [float(r[2]) for r in types_rows]
                atype = [int(r[1]) for r in atoms_rows if r]
                self.masses = np.asarray([type_mass[t - 1] for t in atype], dtype=np.float64)
            except (ValueError, IndexError):
                self.masses = None
        # time
        merged = dict(incar)
        merged.update(params)          # <parameters> holds the values VASP used
        ibrion = _number(merged, "IBRION", int, self.path)
        potim = _number(merged, "POTIM", float, self.path)
        self.metadata = {"IBRION": ibrion, "POTIM_fs": potim, "NSW": _number(merged, "NSW", int, self.path),
                         "ISIF": _number(merged, "ISIF", int, self.path)}
        self.metadata = {k: v for k, v in self.metadata.items() if v is not None}
        if ibrion == 0 and potim is not None and potim > 0:
            self.times = np.arange(self.n_frames, dtype=np.float64) * potim * FS_PS
            tsrc = f"step × POTIM ({potim:g} fs)"
        else:
            self.times = None
            if options.frame_interval is None:
                why = (f"IBRION = {ibrion} is not molecular dynamics" if ibrion not in (None, 0)
                       else "POTIM is missing" if potim is None else f"POTIM = {potim:g} is not a positive time")
                raise TrajectoryError(f"{why}, so the steps have no times; give the time between steps with "
                                      "frame_interval= / --frame-interval (ps)", path=self.path)
            tsrc = "frame_interval"
        self.coord_style = "fractional"
        self.has_velocities = False
        self.units = {"length": "Å (structure basis)", "coordinates": "fractional", "time": tsrc,
                      "velocity": "none (not stored per step in vasprun.xml)", "mass": "amu (atomtypes)"}
        self._cells = None

    # -------------------------------------------------------------- parsing
    def _parse_steps(self, start, stop, want_pos=True, atoms=None):
        n = stop - start
        cells = np.empty((n, 3, 3))
        pos = np.empty((n, self.n_atoms if atoms is None else len(atoms), 3)) if want_pos else None
        for k in range(n):
            a, b = (int(x) for x in self._ranges[start + k])
            raw = self._read_bytes(a, b)
            frame = start + k
            try:
                el = ET.fromstring(raw)
            except ET.ParseError as err:
                raise TrajectoryError(f"malformed <structure> ({err})", path=self.path, frame=frame) from None
            basis = el.find("crystal/varray[@name='basis']")
            if basis is None:
                raise TrajectoryError("the step's <structure> has no <crystal><varray name=\"basis\">",
                                      path=self.path, frame=frame)
            cells[k] = self._vectors(basis, 3, frame, "basis")
            if want_pos:
                p = el.find("varray[@name='positions']")
                if p is None:
                    raise TrajectoryError("the step's <structure> has no <varray name=\"positions\">",
                                          path=self.path, frame=frame)
                v = self._vectors(p, self.n_atoms, frame, "positions")
                pos[k] = v if atoms is None else v[atoms]
        return cells, pos

    def _read_bytes(self, a, b):
        """Bytes ``[a, b)`` of the (decompressed) stream; the handle stays open so that reading forward through
        a gzip/bz2 file does not decompress it again from the start for every chunk."""
        fh = getattr(self, "_fh", None)
        if fh is None or self._fh_pos > a:
            if fh is not None:
                fh.close()
            fh = self._fh = open_binary(self.path)
            self._fh_pos = 0
        if self._fh_pos != a:
            fh.seek(a)
        raw = fh.read(b - a)
        self._fh_pos = a + len(raw)
        return raw


    def _vectors(self, varray, n, frame, what):
        vs = varray.findall("v")
        if len(vs) != n:
            raise TrajectoryError(f"<varray name=\"{what}\"> has {len(vs)} rows; expected {n}", path=self.path,
                                  frame=frame)
        try:
            out = np.array(" ".join(v.text or "" for v in vs).split(), dtype=np.float64)
        except ValueError:
            raise TrajectoryError(f"non-numeric value in <varray name=\"{what}\">", path=self.path,
                                  frame=frame) from None
        if out.size != 3 * n:
            raise TrajectoryError(f"<varray name=\"{what}\"> has {out.size} numbers; expected {3 * n} "
                                  f"(3 per row)", path=self.path, frame=frame)
        return out.reshape(n, 3)

    def read_cells(self, start, stop):
        if self._cells is None:
            self._cells, _ = self._parse_steps(0, self.n_frames, want_pos=False)
        return np.array(self._cells[start:stop])

    def read(self, start, stop, atoms=None, velocities=None):
        """Frames ``start:stop`` of atoms ``atoms`` (vasprun.xml stores no velocities per step)."""
        cells, pos = self._parse_steps(start, stop, atoms=None if atoms is None else np.asarray(atoms, dtype=np.int64))
        return RawFrames(coords=pos, style="fractional", cells=cells, owned=True)
