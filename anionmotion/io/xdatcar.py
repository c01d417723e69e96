"""VASP XDATCAR trajectories.

Header (VASP 5)::

    system name
    scale                      (one number; negative = target cell volume in Å³; or three per-axis factors)
    a_x a_y a_z                (lattice rows, multiplied by the scale)
    b_x b_y b_z
    c_x c_y c_z
    Li  P  S                   (species; absent in VASP 4 files → give types=)
    24  4  20                  (counts)
    Direct configuration=     1
    …n_atoms rows…

Constant-cell files have one header; variable-cell runs (ISIF ≥ 3) repeat
the header before every frame.  Some writers separate frames by a blank line
instead of ``Direct configuration=``; both are accepted, as are ``Direct``
(fractional, returned as such) and ``Cartesian`` (Å × scale) coordinates and
gzip/bz2 compression.  XDATCAR stores no time: give ``frame_interval`` =
POTIM × NBLOCK (ps).
"""

from __future__ import annotations

import numpy as np

from ..errors import TrajectoryError
from ..kernels import textparse as tp
from ._text import elements_of, line_at, line_number, load_buffer, raise_parse_error
from .base import BaseReader, RawFrames, check_count, compact_cells

__all__ = ["XDATCARReader", "parse_header"]


def _floats(text, n, *, path, line, what):
    toks = text.split()
    try:
        vals = [float(t) for t in toks[:n]]
    except ValueError:
        vals = []
    if len(vals) < n:
        raise TrajectoryError(f"expected {what}; found {text.strip()[:120]!r}", path=path, line=line)
    return vals


def parse_header(buf, pos, *, path, types=None, line0=1):
    """Parse one XDATCAR header starting at byte ``pos``.

    Returns
    -------
    dict with ``cell`` (3, 3) Å, ``species`` (list of element symbols per
    species), ``counts`` (list of int), ``n_lines`` (6 or 7), ``vasp5`` (bool)
    and ``end`` (offset of the line after the header).
    """
    lines = []
    p = pos
    for _ in range(7):
        lines.append(line_at(buf, p, max_len=1 << 16))
        p, k = tp.skip_lines(buf, p, 1)
        if k == 0:
            break
    if len(lines) < 7:
        raise TrajectoryError("the file ends inside the XDATCAR header (expected system name, scale, 3 lattice "
                              "rows, species and counts)", path=path, line=line0 + len(lines))
    scale_toks = lines[1].split()
    try:
        scale = [float(t) for t in scale_toks]
    except ValueError:
        scale = []
    if len(scale) not in (1, 3):
        raise TrajectoryError(f"expected the scale factor (one number, negative = cell volume in Å³, or three "
                              f"per-axis factors) on line 2 of the header; found {lines[1].strip()[:80]!r}",
                              path=path, line=line0 + 1)
    lat = np.array([_floats(lines[2 + i], 3, path=path, line=line0 + 2 + i,
                            what=f"lattice vector {'abc'[i]} (three numbers, Å)") for i in range(3)])
    if len(scale) == 3:
        if any(s <= 0 for s in scale):
            raise TrajectoryError("per-axis scale factors must be positive", path=path, line=line0 + 1)
        cell = lat * np.asarray(scale)[None, :]
        eff = 1.0
    elif scale[0] < 0:
        vol = abs(np.linalg.det(lat))
        if vol <= 0:
            raise TrajectoryError("negative scale (a target volume) with a zero-volume lattice", path=path,
                                  line=line0 + 2)
        eff = (-scale[0] / vol) ** (1.0 / 3.0)
        cell = lat * eff
    elif scale[0] == 0:
        raise TrajectoryError("the scale factor is 0; expected a positive factor or a negative volume", path=path,
                              line=line0 + 1)
    else:
        eff = scale[0]
        cell = lat * scale[0]
    t6 = lines[5].split()
    vasp5 = not all(t.isdigit() for t in t6)
    if vasp5:
        names, counts_line, cl = t6, lines[6], line0 + 6
        n_lines = 7
    else:
        names, counts_line, cl = None, lines[5], line0 + 5
        n_lines = 6
    ct = counts_line.split()
    if not ct or not all(t.isdigit() for t in ct):
        raise TrajectoryError(f"expected the atom counts per species (integers); found {counts_line.strip()[:120]!r}",
                              path=path, line=cl)
    counts = [int(t) for t in ct]
    if names is None:
        if not types:
            raise TrajectoryError("VASP 4 XDATCAR without a species line; give the species in order with "
                                  "types= / --types (e.g. 1=Li,2=P,3=S for the 1st, 2nd, 3rd species)",
                                  path=path, line=line0 + 5)
        missing = [i + 1 for i in range(len(counts)) if i + 1 not in types]
        if missing:
            raise TrajectoryError(f"types= has no element for species number(s) {missing} (the file has "
                                  f"{len(counts)} species)", path=path, line=line0 + 5)
        names = [types[i + 1] for i in range(len(counts))]
    if len(names) != len(counts):
        raise TrajectoryError(f"the species line names {len(names)} species ({' '.join(names)[:80]}) but the counts "
                              f"line gives {len(counts)} numbers", path=path, line=line0 + 6)
    species = list(elements_of(names, path=path, line_of=lambda i: line0 + 5, what="species"))
    end, _ = tp.skip_lines(buf, pos, n_lines)
    return {"cell": cell, "species": species, "counts": counts, "n_lines": n_lines, "vasp5": vasp5, "end": end,
            "scale": scale, "eff_scale": eff}


def _config_kind(text):
    s = text.strip().lower()
    if s == "":
        return "blank"
    if s.startswith(("direct", "konfig")):
        return "direct"
    if s.startswith("cart"):
        return "cartesian"
    return None


class XDATCARReader(BaseReader):
    """VASP 4/5 XDATCAR, constant or variable cell, Direct or Cartesian, plain/gzip/bz2.

    Parameters
    ----------
    path : str
    options : ReaderOptions
        ``types`` (species number → element) for VASP 4 files without a
        species line; ``frame_interval`` (ps) is needed for times.
    """

    format_name = "xdatcar"
    description = "VASP XDATCAR (VASP 4/5, constant or variable cell, Direct/Cartesian)"

    def __init__(self, path, options):
        super().__init__(path, options)
        buf = self._buf = load_buffer(self.path, "a VASP XDATCAR")
        h = parse_header(buf, 0, path=self.path, types=options.types)
        self._h0 = h
        self.n_atoms = n = check_count(sum(h["counts"]), len(buf), path=self.path, what="atoms (counts line)",
                                       line=h["n_lines"])
        if n < 1:
            raise TrajectoryError("the counts line sums to 0 atoms", path=self.path, line=h["n_lines"])
        self.species = np.asarray([s for s, c in zip(h["species"], h["counts"]) for _ in range(c)], dtype=object)
        first_cfg = h["end"]
        kind = _config_kind(line_at(buf, first_cfg))
        if kind is None:
            raise TrajectoryError(f"expected 'Direct configuration= 1', 'Cartesian configuration' or a blank line "
                                  f"after the header; found {line_at(buf, first_cfg)[:80]!r}", path=self.path,
                                  line=h["n_lines"] + 1)
        if kind == "blank":
            kind = "direct"
        self._cartesian = kind == "cartesian"
        if self._cartesian and len(h["scale"]) == 3:
            raise TrajectoryError("Cartesian coordinates with three per-axis scale factors are not supported; "
                                  "convert the file to Direct coordinates", path=self.path, line=2)
        # frame 0 must have n rows of numbers
        out0 = np.empty((1, n, 3))
        res = tp.parse_frames(buf, np.array([first_cfg], np.int64), 1, n, np.arange(3, dtype=np.int64),
                              np.arange(n, dtype=np.int64), out0)
        self._explain(res, 0)
        # constant or variable cell: look at the line after frame 0
        after, k = tp.skip_lines(buf, first_cfg, 1 + n)
        nxt = line_at(buf, after) if after < len(buf) else ""
        self._variable = bool(nxt.strip()) and _config_kind(nxt) is None and k == 1 + n
        if self._variable:
            # the next header must parse like the first
            parse_header(buf, after, path=self.path, types=options.types, line0=line_number(buf, after))
            offsets, status, pos, value = tp.index_xdatcar(buf, 0, h["n_lines"], n)
            self._skip = h["n_lines"] + 1
        else:
            offsets, status, pos, value = tp.index_xdatcar(buf, first_cfg, 0, n)
            self._skip = 1
        if status == tp.BADHEAD:
            kk = len(offsets)
            raise TrajectoryError(
                f"expected the configuration line of frame {kk} ('Direct configuration= …', 'Cartesian …' or a "
                f"blank line){' after its header' if self._variable else ''}; found {line_at(buf, pos)[:80]!r}. "
                f"Frame {kk - 1} may have fewer than the {n} coordinate rows the header declares",
                path=self.path, line=line_number(buf, pos), frame=kk)
        self._offsets = offsets
        if status == tp.TRUNC:
            self._warn_truncated(len(offsets), value)
        if len(offsets) == 0:
            raise TrajectoryError(f"no complete frame (the header declares {n} atoms)", path=self.path)
        self._colmap = np.arange(3, dtype=np.int64)
        self._check_last_frame()
        self.n_frames = len(self._offsets)
        self.coord_style = "wrapped" if self._cartesian else "fractional"
        self.has_velocities = False
        self.times = None
        self.units = {"length": "Å (lattice × scale)", "time": "none in file (frame_interval, ps)"}
        self.metadata["system"] = line_at(buf, 0).strip()
        self.metadata["variable_cell"] = self._variable
        self._cells = None

    def _warn_truncated(self, frame, rows):
        import warnings

        from ..errors import TruncatedFileWarning

        warnings.warn(f"{self.path}: the last frame (frame {frame}) is incomplete ({rows} of {self.n_atoms} "
                      f"coordinate rows); keeping the {frame} complete frame(s)", TruncatedFileWarning, stacklevel=4)

    def _explain(self, res, frame):
        """Raise for a failed parse; name a short frame when the offending row is a configuration line."""
        if res[0] == tp.OK:
            return
        if res[0] in (tp.BADNUM, tp.FEWTOK) and _config_kind(line_at(self._buf, res[3])) not in (None,):
            raise TrajectoryError(f"frame {frame} has only {res[2]} coordinate rows before the next configuration "
                                  f"line {line_at(self._buf, res[3]).strip()[:60]!r}; the header declares "
                                  f"{self.n_atoms} atoms", path=self.path, frame=frame,
                                  line=line_number(self._buf, res[3]))
        if res[0] == tp.TRUNC:
            return
        raise_parse_error(self._buf, res, path=self.path, frame0=frame)

    def _check_last_frame(self):
        k = len(self._offsets) - 1
        out = np.empty((1, self.n_atoms, 3))
        res = tp.parse_frames(self._buf, self._offsets[k:], self._skip, self.n_atoms, self._colmap,
                              np.arange(self.n_atoms, dtype=np.int64), out)
        if res[0] == tp.OK:
            return
        if self._buf[-1] != 10 and res[2] == self.n_atoms - 1 and k > 0:
            self._offsets = self._offsets[:k]
            self._warn_truncated(k, self.n_atoms - 1)
            return
        raise_parse_error(self._buf, res, path=self.path, frame0=k)

    def _all_cells(self):
        if self._cells is None:
            n = len(self._offsets)
            if not self._variable:
                self._cells = np.broadcast_to(self._h0["cell"], (n, 3, 3))
                self._eff_scale = np.full(n, self._h0["eff_scale"])
            else:
                buf = self._buf
                nl = self._h0["n_lines"]
                # counts line of every header must match frame 0
                nsp = len(self._h0["counts"])
                cnt = np.empty((n, 1, nsp))
                res = tp.parse_frames(buf, self._offsets, nl - 1, 1, np.arange(nsp, dtype=np.int64),
                                      np.zeros(1, np.int64), cnt)
                if res[0] != tp.OK:
                    raise_parse_error(buf, res, path=self.path, frame0=0, what="atom counts", unit="header")
                bad = np.nonzero(np.any(cnt[:, 0, :] != np.asarray(self._h0["counts"])[None, :], axis=1))[0]
                if len(bad):
                    i = int(bad[0])
                    p, _ = tp.skip_lines(buf, int(self._offsets[i]), nl - 1)
                    raise TrajectoryError(f"the atom counts change between frames: {line_at(buf, p).strip()!r}, "
                                          f"frame 0 has {' '.join(map(str, self._h0['counts']))}", path=self.path,
                                          frame=i, line=line_number(buf, p))
                lat = np.empty((n, 3, 3))
                res = tp.parse_frames(buf, self._offsets, 2, 3, np.arange(3, dtype=np.int64),
                                      np.arange(3, dtype=np.int64), lat)
                if res[0] != tp.OK:
                    raise_parse_error(buf, res, path=self.path, frame0=0, what="lattice vectors", unit="lattice")
                sc = np.empty((n, 1, 1))
                res = tp.parse_frames(buf, self._offsets, 1, 1, np.zeros(1, np.int64), np.zeros(1, np.int64), sc)
                if res[0] != tp.OK:
                    raise_parse_error(buf, res, path=self.path, frame0=0, what="scale factor", unit="scale")
                s = sc[:, 0, 0]
                if len(self._h0["scale"]) == 3:
                    lat *= np.asarray(self._h0["scale"])[None, None, :]
                else:
                    neg = s < 0
                    if np.any(neg):
                        vol = np.abs(np.linalg.det(lat[neg]))
                        s[neg] = (-s[neg] / np.where(vol > 0, vol, np.nan)) ** (1.0 / 3.0)
                    lat *= s[:, None, None]
                self._eff_scale = s if len(self._h0["scale"]) == 1 else np.ones(n)
                self._cells = compact_cells(lat)
        return self._cells

    def read_cells(self, start, stop):
        return np.array(self._all_cells()[start:stop])

    def constant_cell(self):
        """The header's cell when the file has one header (constant cell), else None (checked by the trajectory)."""
        if not self._variable:
            return np.array(self._all_cells()[0]) if len(self._offsets) else None
        return None

    def read(self, start, stop, atoms=None, velocities=None):
        """Frames ``start:stop``: only the rows of ``atoms`` are parsed (XDATCAR stores no velocities)."""
        n = self.n_atoms
        if atoms is None:
            rowmap = np.arange(n, dtype=np.int64)
            n_sel = n
        else:
            atoms = np.asarray(atoms, dtype=np.int64)
            rowmap = np.full(n, -1, dtype=np.int64)
            rowmap[atoms] = np.arange(len(atoms))
            n_sel = len(atoms)
        out = np.empty((stop - start, n_sel, 3))
        if n_sel and stop > start:
            res = tp.parse_frames(self._buf, self._offsets[start:stop], self._skip, n, self._colmap, rowmap, out)
            if res[0] != tp.OK:
                raise_parse_error(self._buf, res, path=self.path, frame0=start)
        cells = self.read_cells(start, stop)
        if self._cartesian:
            out *= self._eff_scale[start:stop, None, None]
            return RawFrames(coords=out, style="wrapped", cells=cells, owned=True)
        return RawFrames(coords=out, style="fractional", cells=cells, owned=True)
