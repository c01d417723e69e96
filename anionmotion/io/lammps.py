"""LAMMPS dump text reader (``dump atom`` / ``dump custom``; gzip and bz2 allowed).

Opening a dump runs one fast scan over the file in 32 MiB blocks (compiled,
``anionmotion.kernels.lammps.scan_frames``): it records the byte offset, step,
atom count and box of every frame without parsing atom lines.  The index is
kept in memory (keyed by path, size and modification time; files of 256 MiB or
more also in ``~/.cache/anionmotion``), so reopening the same file, or reading
any frame range, never rescans it.  Frame ranges are read by seeking to the
recorded offsets and parsing the atom lines in C (``parse_frames``, two
threads, the next block read ahead on an I/O thread), with every atom put at
its place in id order.

Conventions (SPEC §0, docs/formats.md "LAMMPS dump (text)"):

* coordinates: ``xu yu zu`` > ``xsu ysu zsu`` (unwrapped) > ``x y z`` / ``xs
  ys zs`` with ``ix iy iz`` > ``x y z`` > ``xs ys zs`` (wrapped).  Scaled
  coordinates are converted to Cartesian with the frame's box.
* boxes: orthogonal, triclinic (bounding-box bounds converted as the LAMMPS
  manual describes) and ``abc origin`` general boxes.
* units ``metal`` (Å, ps, Å/ps), ``real`` (Å, fs, Å/fs → ×1000 to Å/ps) and
  ``electron`` (bohr → ×0.529177 Å, fs, bohr/fs → ×529.177 Å/ps), as the user
  says (``lammps_units``); a dump's own ``ITEM: UNITS`` must agree.  ``lj``
  (reduced units) has no physical scale: numbers are passed through
  unconverted, with a warning and a note in ``units``.
  Times are TIMESTEP × ``timestep`` (ps, whatever the unit style), else the
  dump's ``ITEM: TIME`` values, else none (``frame_interval`` is then needed).
"""

from __future__ import annotations

import os
import warnings
import zlib

import numpy as np

from ..elements import MASSES, normalize_symbol
from ..errors import AnionmotionWarning, OptionError, TrajectoryError, TruncatedFileWarning
from ..kernels import lammps as _k
from ..units import BOHR_A, FS_PS
from .base import (BaseReader, RawFrames, ReaderOptions, check_text_head, compression_of, open_binary,
                   want_velocities)

#: unit styles read (``lj`` unconverted)
_UNIT_STYLES = ("metal", "real", "electron", "lj")
_LEN_NOTE = {"metal": "Å", "real": "Å", "electron": "Å (from bohr × 0.529177, units electron)",
             "lj": "σ (units lj: reduced, NOT converted)"}
_VEL_NOTE = {"metal": "Å/ps (units metal)", "real": "Å/ps (from Å/fs × 1000, units real)",
             "electron": "Å/ps (from bohr/fs × 529.177, units electron)",
             "lj": "σ/τ (units lj: reduced, NOT converted)"}

__all__ = ["LammpsDumpReader", "clear_index_cache", "BLOCK_BYTES", "PARSE_BYTES"]

BLOCK_BYTES = 32 << 20
"""Bytes read per block by the index scan."""
PARSE_BYTES = 32 << 20
"""Largest byte span of frames parsed at once by :meth:`LammpsDumpReader.read` (at least one frame)."""

DISK_CACHE_MIN_BYTES = 256 << 20
"""Files at least this large (on disk) keep their frame index in ``~/.cache/anionmotion/lammps-index``
(``$XDG_CACHE_HOME`` or ``$ANIONMOTION_CACHE`` if set; ``ANIONMOTION_CACHE=0`` disables it), keyed by
path, size and modification time.  Nothing is ever written next to the input."""
_INDEX_FORMAT = 1

_SCAN_CAPACITY = 8192
"""Frames recorded per call of the compiled scan (more calls follow when a block holds more)."""

_MASS_TOLERANCE = 0.3
"""Largest difference (amu) between a ``mass`` column value and the element it is mapped to."""

_N_THREADS = 2
"""Threads that parse frames concurrently (the compiled parser releases the GIL)."""
_THREAD_MIN_BYTES = 1 << 20
_POOL = None
_IO_POOL = None

_INDEX_CACHE: dict = {}
_INDEX_CACHE_MAX = 32

_COORD_SETS = (
    # (names, style, scaled)
    (("xu", "yu", "zu"), "unwrapped", False),
    (("xsu", "ysu", "zsu"), "unwrapped", True),
    (("x", "y", "z"), "wrapped", False),
    (("xs", "ys", "zs"), "wrapped", True),
)


def _pool():
    """The parser's thread pool (a new one in a forked child, whose copy of the threads is gone)."""
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():
        from concurrent.futures import ThreadPoolExecutor

        _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=_N_THREADS, thread_name_prefix="anionmotion-lammps"))
    return _POOL[1]


def _io_pool():
    """One thread that reads the next block of the file while the current one is parsed."""
    global _IO_POOL
    if _IO_POOL is None or _IO_POOL[0] != os.getpid():
        from concurrent.futures import ThreadPoolExecutor

        _IO_POOL = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="anionmotion-lammps-io"))
    return _IO_POOL[1]


def clear_index_cache():
    """Forget the frame indexes kept in memory (the next open rescans)."""
    _INDEX_CACHE.clear()


class _Index:
    """Frame index of one dump: offsets, steps, atom counts, boxes (all arrays of length n_frames)."""

    def __init__(self, ints, box, truncated, trunc_line, compression, stream_error=""):
        self.offsets = ints[:, 0].copy()
        self.atoms_offsets = ints[:, 1].copy()
        self.ends = ints[:, 2].copy()
        self.steps = ints[:, 3].copy()
        self.natoms = ints[:, 4].copy()
        self.lines = ints[:, 5].copy()
        self.hashes = ints[:, 6].copy()
        self.header_offsets = ints[:, 7].copy()
        self.atom_lines = ints[:, 8].copy()
        self.box = box.copy()
        self.truncated = truncated
        self.trunc_line = trunc_line
        self.compression = compression
        self.stream_error = stream_error

    @property
    def n_frames(self):
        return len(self.offsets)


def _line_text(buf, pos, limit=120):
    end = buf.find(b"\n", pos)
    end = len(buf) if end < 0 else end
    return bytes(buf[pos:min(end, pos + limit)]).decode("latin-1").rstrip("\r")


def _scan_error(code, path, buf, pos, errline):
    """TrajectoryError for a scan status code; ``pos`` is the start of the frame being scanned in ``buf``."""
    # find the offending line: walk from the frame start to errline
    text = bytes(buf[pos:pos + 1 << 16]).split(b"\n")
    line_in = ""
    if code == 1:
        line_in = text[0].decode("latin-1").rstrip("\r")[:120]
        return TrajectoryError(f"expected an 'ITEM:' line, got {line_in!r}. A frame starts with 'ITEM: TIMESTEP'; "
                               "if this is an atom line, the previous frame has more atom lines than its "
                               "NUMBER OF ATOMS", path=path, line=errline)
    # errline is the line after the problem for codes 2-4: show the lines of the header
    header = [t.decode("latin-1").rstrip("\r")[:120] for t in text[:12]]
    if code == 2:
        bad = next((h for h in header if h.startswith("ITEM:") and not any(
            h[5:].strip().startswith(k) for k in ("TIMESTEP", "NUMBER OF ATOMS", "BOX BOUNDS", "ATOMS", "TIME",
                                                  "UNITS"))), header[0])
        return TrajectoryError(f"unknown header {bad!r}; expected ITEM: TIMESTEP, NUMBER OF ATOMS, BOX BOUNDS, "
                               "ATOMS (or UNITS, TIME)", path=path, line=errline)
    if code == 3:
        return TrajectoryError("a header value is not a number (TIMESTEP and NUMBER OF ATOMS need an integer, "
                               "BOX BOUNDS 2 numbers per line, 3 with tilt factors); header: "
                               + " | ".join(header[:9]), path=path, line=errline)
    if code == 4:
        return TrajectoryError("'ITEM: ATOMS' comes before TIMESTEP, NUMBER OF ATOMS and BOX BOUNDS; header: "
                               + " | ".join(header[:9]), path=path, line=errline)
    return TrajectoryError(f"cannot index the dump (status {code}: {_k.STATUS.get(code, '?')})", path=path,
                           line=errline)


def _scan_index(path) -> _Index:
    """Scan ``path`` once and return its frame index (compiled scan over 32 MiB blocks)."""
    cap = _SCAN_CAPACITY
    ints = np.empty((cap, _k.INTS_WIDTH), dtype=np.int64)
    box = np.empty((cap, _k.BOX_WIDTH), dtype=np.float64)
    status = np.zeros(5, dtype=np.int64)
    parts_i, parts_b = [], []
    truncated = False
    trunc_line = 0
    base = 0
    line = 1
    pending = b""
    eof = False
    first = True
    eof_next = False
    stream_error = ""
    corrupt = None
    pieces = []
    comp = compression_of(path)
    try:
        fh = open_binary(path)
    except (OSError, EOFError) as err:
        raise TrajectoryError(f"cannot read the file: {err}", path=path) from err
    with fh:
        while True:
            block = b""
            if not eof:
                try:
                    block = fh.read(BLOCK_BYTES) if comp is None else _read_compressed(fh, BLOCK_BYTES, pieces)
                except (OSError, EOFError, zlib.error) as err:   # corrupt or truncated gzip/bz2 stream
                    block = b"".join(pieces)
                    pieces.clear()
                    if first and not block:
                        raise TrajectoryError(f"cannot decompress the file ({comp}): {err}", path=path) from err
                    at = base + len(pending) + len(block)
                    if isinstance(err, EOFError):   # the stream ends early: a cut file (a crashed or running job)
                        stream_error = (f"the {comp} stream is cut or corrupt after byte {at} of the decompressed "
                                        f"data ({err}); the complete frames before that point are kept")
                    else:                           # CRC failure, bad data, trailing garbage: the file is damaged
                        corrupt = (at, err)
                    eof_next = True
            if first:
                check_text_head(block, path, "a LAMMPS dump (ITEM: TIMESTEP ...)")
                first = False
            if not block:
                eof = True
            buf = pending + block if pending else block
            if eof_next and block:
                eof = True
            pos = 0
            mv = memoryview(buf)
            while True:
                _k.scan_frames(mv[pos:], base, line, eof, ints, box, status)
                code, nf, consumed, nlines, errline = (int(v) for v in status)
                if nf:
                    parts_i.append(ints[:nf].copy())
                    parts_b.append(box[:nf].copy())
                if code not in (0, 5, 6):
                    raise _scan_error(code, path, buf, pos + consumed, errline)
                pos += consumed
                base += consumed
                line += nlines
                if code == 6:
                    continue
                break
            mv.release()
            if code == 5:
                truncated = True
                trunc_line = errline
                _check_truncated_frame(path, buf, pos, parts_i, errline)
                break
            pending = buf[pos:]
            if eof:
                break
    if parts_i:
        ints_all = np.concatenate(parts_i)
        box_all = np.concatenate(parts_b)
    else:
        ints_all = np.zeros((0, _k.INTS_WIDTH), dtype=np.int64)
        box_all = np.zeros((0, _k.BOX_WIDTH))
    if corrupt is not None:
        at, err = corrupt
        n = len(ints_all)
        raise TrajectoryError(f"the {comp} stream is corrupt ({err}), detected while reading frame {n} (after byte "
                              f"{at} of the decompressed data); the file is damaged: re-copy or re-compress it "
                              f"(`{'gzip' if comp == 'gzip' else 'bzip2'} -t` tests it)", path=path, frame=n)
    return _Index(ints_all, box_all, truncated, trunc_line, comp, stream_error)


_NATOMS_ITEM = b"ITEM: NUMBER OF ATOMS"


def _check_truncated_frame(path, buf, pos, parts_i, errline):
    """Raise when the frame the file ends in is not a cut copy of the frames before it.

    A last frame cut by the end of the file (a crashed or running job) is a truncation; a frame whose
    NUMBER OF ATOMS differs from the first frame's (e.g. 10⁸ in frame 1 of a 60-frame file, which would make
    every later frame part of it) is an error naming the frame.
    """
    head = bytes(buf[pos:pos + 4096])
    i = head.find(_NATOMS_ITEM)
    if i < 0:
        return
    rest = head[i + len(_NATOMS_ITEM):].split(b"\n", 2)
    if len(rest) < 2:
        return
    try:
        n = int(rest[1].strip())
    except ValueError:
        return
    n_done = sum(len(p) for p in parts_i)
    n0 = int(parts_i[0][0, 4]) if parts_i else None
    if n0 is not None and n != n0:
        raise TrajectoryError(f"the number of atoms changes from {n0} to {n} in frame {n_done} (NUMBER OF ATOMS, "
                              "and the file ends inside that frame); anionmotion needs the same atoms in every "
                              "frame", path=path, line=errline, frame=n_done)


def _read_compressed(fh, size, pieces):
    """Read ``size`` decompressed bytes in 64 KiB pieces (kept in ``pieces`` if the stream breaks)."""
    pieces.clear()
    got = 0
    while got < size:
        piece = fh.read(min(1 << 16, size - got))
        if not piece:
            break
        pieces.append(piece)
        got += len(piece)
    out = b"".join(pieces)
    pieces.clear()
    return out


def _cache_dir():
    """Directory of the on-disk index cache, or None when disabled (``ANIONMOTION_CACHE=0``)."""
    env = os.environ.get("ANIONMOTION_CACHE", "")
    if env == "0":
        return None
    if env:
        return os.path.join(env, "lammps-index")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "anionmotion", "lammps-index")


def _cache_file(key):
    import hashlib

    d = _cache_dir()
    if d is None:
        return None
    h = hashlib.sha256(f"{_INDEX_FORMAT}|{key[0]}|{key[1]}|{key[2]}".encode()).hexdigest()[:32]
    return os.path.join(d, h + ".npz")


def _load_cached(key):
    fn = _cache_file(key)
    if fn is None or not os.path.exists(fn):
        return None
    try:
        with np.load(fn, allow_pickle=False) as z:
            if str(z["key"]) != repr(key) or int(z["format"]) != _INDEX_FORMAT:
                return None
            comp = str(z["compression"])
            return _Index(z["ints"], z["box"], bool(z["truncated"]), int(z["trunc_line"]),
                          None if comp == "" else comp, str(z["stream_error"]))
    except (OSError, ValueError, KeyError):
        return None


def _save_cached(key, idx):
    fn = _cache_file(key)
    if fn is None:
        return
    ints = np.column_stack([idx.offsets, idx.atoms_offsets, idx.ends, idx.steps, idx.natoms, idx.lines, idx.hashes,
                            idx.header_offsets, idx.atom_lines])
    try:
        os.makedirs(os.path.dirname(fn), exist_ok=True)
        tmp = f"{fn}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            np.savez(fh, key=repr(key), format=_INDEX_FORMAT, ints=ints, box=idx.box, truncated=idx.truncated,
                     trunc_line=idx.trunc_line, compression=idx.compression or "", stream_error=idx.stream_error)
        os.replace(tmp, fn)
    except OSError:   # a read-only home is not an error: the cache is an optimisation
        pass


def _get_index(path) -> _Index:
    """Frame index of ``path``: from memory, from the on-disk cache (large files), or a new scan."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    idx = _INDEX_CACHE.get(key)
    if idx is None:
        big = st.st_size >= DISK_CACHE_MIN_BYTES
        idx = _load_cached(key) if big else None
        if idx is None:
            idx = _scan_index(path)
            if big:
                _save_cached(key, idx)
        if len(_INDEX_CACHE) >= _INDEX_CACHE_MAX:
            _INDEX_CACHE.pop(next(iter(_INDEX_CACHE)))
        _INDEX_CACHE[key] = idx
    return idx


def boxes_to_cells(box):
    """Cells and origins from the raw box lines of the index.

    Parameters
    ----------
    box : ndarray, shape (n, 16), float64
        Columns 0–8: (lo, hi, tilt) for x, y, z as written (bounding-box bounds
        for triclinic boxes; a, b, c vectors for ``abc origin`` boxes), 9: kind
        (0 orthogonal, 1 triclinic, 2 abc origin), 13–15: origin (kind 2).

    Returns
    -------
    cells : ndarray, shape (n, 3, 3), float64, Å
        Rows a, b, c.
    origins : ndarray, shape (n, 3), float64, Å
        Box lo corner (xlo, ylo, zlo).

    Notes
    -----
    LAMMPS writes the bounding box of a triclinic cell (manual, "Triclinic
    (non-orthogonal) simulation boxes")::

        xlo = xlo_bound − min(0, xy, xz, xy + xz)    xhi = xhi_bound − max(0, xy, xz, xy + xz)
        ylo = ylo_bound − min(0, yz)                 yhi = yhi_bound − max(0, yz)

    and then a = (xhi − xlo, 0, 0), b = (xy, yhi − ylo, 0), c = (xz, yz, zhi − zlo).
    """
    box = np.asarray(box, dtype=np.float64)
    n = len(box)
    cells = np.zeros((n, 3, 3))
    origins = np.zeros((n, 3))
    kind = box[:, 9]
    xlo_b, xhi_b, xy = box[:, 0], box[:, 1], box[:, 2]
    ylo_b, yhi_b, xz = box[:, 3], box[:, 4], box[:, 5]
    zlo, zhi, yz = box[:, 6], box[:, 7], box[:, 8]
    tri = kind == 1
    xy = np.where(tri, xy, 0.0)
    xz = np.where(tri, xz, 0.0)
    yz = np.where(tri, yz, 0.0)
    zero = np.zeros(n)
    xlo = xlo_b - np.minimum.reduce([zero, xy, xz, xy + xz])
    xhi = xhi_b - np.maximum.reduce([zero, xy, xz, xy + xz])
    ylo = ylo_b - np.minimum(zero, yz)
    yhi = yhi_b - np.maximum(zero, yz)
    cells[:, 0, 0] = xhi - xlo
    cells[:, 1, 0] = xy
    cells[:, 1, 1] = yhi - ylo
    cells[:, 2, 0] = xz
    cells[:, 2, 1] = yz
    cells[:, 2, 2] = zhi - zlo
    origins[:, 0], origins[:, 1], origins[:, 2] = xlo, ylo, zlo
    gen = kind == 2
    if gen.any():
        cells[gen] = box[gen, :9].reshape(-1, 3, 3)
        origins[gen] = box[gen, 13:16]
    return cells, origins


class LammpsDumpReader(BaseReader):
    """Reader of LAMMPS text dumps (``dump atom``/``dump custom``), plain, gzip or bz2.

    Parameters
    ----------
    path : str
    options : ReaderOptions
        Uses ``timestep`` (ps), ``lammps_units`` (``metal``/``real``),
        ``types`` (type → element) and ``topology`` (a LAMMPS data file: types,
        elements, masses and charges by atom id, see :meth:`_apply_topology`).

    Attributes
    ----------
    columns : list of str
        The ``ITEM: ATOMS`` column names.
    atom_ids : ndarray, shape (n_atoms,), int64
        LAMMPS ids in the order atoms are handed out (sorted).
    types : ndarray, shape (n_atoms,), int64, or None
        LAMMPS type of every atom (id order).

    Notes
    -----
    Coordinates preferred when several are present: ``xu`` > ``xsu`` > wrapped
    + ``ix`` > ``x`` > ``xs``.  Velocities in units real (Å/fs) are multiplied
    by 1000 to Å/ps; positions are Å in both unit styles.  Times are
    TIMESTEP × ``timestep``, with ``timestep`` in ps for every unit style.
    """

    format_name = "lammps"
    description = "LAMMPS dump text (custom/atom style), gzip/bz2 allowed"

    def __init__(self, path, options: ReaderOptions):
        super().__init__(path, options)
        self._fh = None
        self._fh_pos = 0
        self._stamp = 1
        self._prefetch = None
        self._last_stop = -1
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"{self.path}: no such file")
        index = _get_index(self.path)
        self._index = index
        if index.stream_error:
            warnings.warn(f"{self.path}: {index.stream_error}", TruncatedFileWarning, stacklevel=3)
        if index.truncated:
            warnings.warn(f"{self.path}: the last frame is incomplete (the file ends inside the frame that starts "
                          f"at line {index.trunc_line}); the {index.n_frames} complete frame(s) are kept",
                          TruncatedFileWarning, stacklevel=3)
        if index.n_frames == 0:
            raise TrajectoryError("no complete frame in the file; expected 'ITEM: TIMESTEP', 'ITEM: NUMBER OF "
                                  "ATOMS', 'ITEM: BOX BOUNDS' and 'ITEM: ATOMS ...' followed by one line per atom",
                                  path=self.path)
        self._check_index()
        first = self._read_bytes(int(index.offsets[0]), int(index.ends[0]))
        hdr_rel = int(index.header_offsets[0] - index.offsets[0])
        hdr_end = first.find(b"\n", hdr_rel)
        self.columns = first[hdr_rel:hdr_end if hdr_end >= 0 else len(first)].decode("latin-1").split()
        self._setup_units(first)
        self._setup_columns()
        self._setup_atoms(first[int(index.atoms_offsets[0] - index.offsets[0]):])
        self._setup_times()
        self.steps = index.steps.copy()
        if self._unit_style == "lj":
            self.units["time"] = "τ (units lj: reduced; timestep / frame_interval are taken as given, NOT ps)"
        self._cell0 = None
        box = index.box
        cols = np.r_[0:10, 11:16]   # every box column but the TIME value (column 10)
        if len(box) > 1 and np.all(box[1:, cols].view(np.int64) == box[0, cols].view(np.int64)[None, :]):
            # one box for every frame (NVT): keep one cell and one origin, handed out as broadcast views
            c1, o1 = boxes_to_cells(box[:1])
            if self._len_factor != 1.0:
                c1, o1 = c1 * self._len_factor, o1 * self._len_factor
            self._cell0 = c1[0]
            cells = np.broadcast_to(c1[0], (len(box), 3, 3))
            origins = np.broadcast_to(o1[0], (len(box), 3))
        else:
            cells, origins = boxes_to_cells(box)
            if self._len_factor != 1.0:
                cells, origins = cells * self._len_factor, origins * self._len_factor
        self._cells, self._origins = cells, origins
        self.metadata = {"lammps_columns": " ".join(self.columns), "lammps_units": self._unit_style,
                         "box": {0: "orthogonal", 1: "triclinic", 2: "general (abc origin)"}[int(index.box[0, 9])]}
        if getattr(self, "_species_note", None):
            self.metadata["species_note"] = self._species_note
        if getattr(self, "_topology_meta", None):
            self.metadata.update(self._topology_meta)

    # ------------------------------------------------------------------ setup
    def _check_index(self):
        ix = self._index
        n0 = int(ix.natoms[0])
        if n0 == 0:
            raise TrajectoryError("the first frame has 0 atoms", path=self.path, line=int(ix.lines[0]), frame=0)
        bad = np.nonzero(ix.natoms != n0)[0]
        if len(bad):
            i = int(bad[0])
            raise TrajectoryError(f"the number of atoms changes from {n0} to {int(ix.natoms[i])} (step "
                                  f"{int(ix.steps[i])}); anionmotion needs the same atoms in every frame "
                                  "(dump all atoms, not a dynamic group)", path=self.path, line=int(ix.lines[i]),
                                  frame=i)
        bad = np.nonzero(ix.hashes != ix.hashes[0])[0]
        if len(bad):
            i = int(bad[0])
            raise TrajectoryError("the ITEM: ATOMS columns differ from those of the first frame; every frame must "
                                  "have the same columns", path=self.path, line=int(ix.atom_lines[i]) - 1, frame=i)
        d = np.diff(ix.steps)
        bad = np.nonzero(d <= 0)[0]
        if len(bad):
            i = int(bad[0]) + 1
            raise TrajectoryError(f"TIMESTEP does not increase: {int(ix.steps[i])} after {int(ix.steps[i - 1])} "
                                  f"(frames {i - 1} and {i}); a dump must have strictly increasing steps (a restarted "
                                  "run appended to the same file? split it or remove the repeated frames)",
                                  path=self.path, line=int(ix.lines[i]) + 1, frame=i)
        kinds = np.unique(ix.box[:, 9])
        if len(kinds) > 1:
            i = int(np.nonzero(ix.box[:, 9] != ix.box[0, 9])[0][0])
            raise TrajectoryError("the box style (orthogonal / triclinic) changes", path=self.path,
                                  line=int(ix.lines[i]), frame=i)

    def _setup_units(self, first):
        style = self.options.lammps_units
        off = self._index.box[0, 11]
        declared = None
        if off >= 0:
            rel = int(off - self._index.offsets[0])
            declared = first[rel:first.index(b"\n", rel)].decode("latin-1").strip()
        if declared is not None and declared != style:
            if declared not in _UNIT_STYLES:
                raise TrajectoryError(f"the dump declares 'ITEM: UNITS {declared}'; anionmotion reads units "
                                      f"{', '.join(_UNIT_STYLES)} only", path=self.path, frame=0)
            raise OptionError(f"{self.path}: the dump declares 'ITEM: UNITS {declared}' but lammps_units is "
                              f"{style!r}; give lammps_units={declared!r} / --lammps-units {declared}")
        if style not in _UNIT_STYLES:
            raise OptionError(f"invalid lammps_units {style!r}; choose one of {', '.join(_UNIT_STYLES)}")
        self._unit_style = style
        self._declared_units = declared
        # units electron: LAMMPS integrates x (bohr) += v dt (fs), so v is bohr/fs (force->mvv2e = 1.06657
        # Hartree per amu (bohr/fs)^2 says the same); NOT the Hartree atomic unit bohr/2.4189e-17 s
        self._vel_factor = {"real": 1000.0, "electron": BOHR_A / FS_PS}.get(style, 1.0)
        self._len_factor = BOHR_A if style == "electron" else 1.0
        if style == "lj":
            warnings.warn(f"{self.path}: units lj are reduced (σ, τ): lengths, times and velocities are passed "
                          "through unconverted and are NOT Å / ps / Å/ps; convert with your σ and τ before "
                          "quoting physical numbers", AnionmotionWarning, stacklevel=4)

    def _setup_columns(self):
        cols = self.columns
        where = {c: i for i, c in enumerate(cols)}
        if len(where) != len(cols):
            dup = sorted({c for c in cols if cols.count(c) > 1})
            raise TrajectoryError(f"column(s) {', '.join(dup)} appear twice in ITEM: ATOMS {' '.join(cols)}",
                                  path=self.path, line=int(self._index.atom_lines[0]) - 1)
        if "id" not in where:
            raise TrajectoryError(f"no 'id' column in ITEM: ATOMS {' '.join(cols)}; anionmotion needs atom ids to "
                                  "follow atoms between frames (dump custom ... id type x y z)", path=self.path,
                                  line=int(self._index.atom_lines[0]) - 1)
        self._idcol = where["id"]
        chosen = next(((names, style, scaled) for names, style, scaled in _COORD_SETS
                       if all(n in where for n in names)), None)
        if chosen is None:
            raise TrajectoryError("No coordinate information: no coordinate columns in ITEM: ATOMS "
                                  f"{' '.join(cols)}; expected one of x y z, xs ys zs, xu yu zu, xsu ysu zsu",
                                  path=self.path, line=int(self._index.atom_lines[0]) - 1)
        names, style, scaled = chosen
        self._coord_names, self._style, self._scaled = names, style, scaled
        self._images = style == "wrapped" and all(n in where for n in ("ix", "iy", "iz"))
        self.has_velocities = all(n in where for n in ("vx", "vy", "vz"))
        # two column layouts: with velocities (as stored) and without (velocities=False: not even parsed)
        self._layouts = {}
        for with_vel in (True, False):
            roles = np.full(len(cols), _k.ROLE_SKIP, dtype=np.int32)
            roles[self._idcol] = _k.ROLE_ID
            slot = 0
            for n in names:
                roles[where[n]] = slot
                slot += 1
            vel_slot = img_slot = None
            if self.has_velocities and with_vel:
                vel_slot = slot
                for n in ("vx", "vy", "vz"):
                    roles[where[n]] = slot
                    slot += 1
            if self._images:
                img_slot = slot
                for n in ("ix", "iy", "iz"):
                    roles[where[n]] = slot
                    slot += 1
            self._layouts[with_vel] = (roles, slot, vel_slot, img_slot)
        self._roles, self._nvals, self._vel_slot, self._img_slot = self._layouts[True]
        self.coord_style = "unwrapped" if style == "unwrapped" else ("image" if self._images else "wrapped")
        self.units = {
            "length": _LEN_NOTE[self._unit_style],
            "coordinates": " ".join(names) + (" + ix iy iz" if self._images else "")
            + (" (scaled → Cartesian with the frame's box)" if scaled else ""),
            "time": "ps (TIMESTEP × timestep)",
            "velocity": _VEL_NOTE[self._unit_style] if self.has_velocities else "none",
            "lammps_units": self._unit_style + (" (also declared by ITEM: UNITS)" if self._declared_units else ""),
        }

    def _setup_atoms(self, atoms_bytes):
        ix = self._index
        n = int(ix.natoms[0])
        cols = self.columns
        where = {c: i for i, c in enumerate(cols)}
        want = ["id"] + [c for c in ("type", "mass") if c in where]
        roles = np.full(len(cols), _k.ROLE_SKIP, dtype=np.int32)
        for s, c in enumerate(want):
            roles[where[c]] = s
        vals = np.empty((n, len(want)))
        err = np.zeros(4, dtype=np.int64)
        code = _k.parse_columns(atoms_bytes, n, roles, vals, err)
        if code:
            raise self._parse_error(code, err, 0, atoms_bytes, 0)
        ids_f = vals[:, 0]
        ids = ids_f.astype(np.int64)
        bad = np.nonzero((ids_f != ids) | (ids <= 0))[0]
        if len(bad):
            k = int(bad[0])
            raise TrajectoryError(f"atom id {ids_f[k]:g} is not a positive integer", path=self.path, frame=0,
                                  line=int(ix.atom_lines[0]) + k)
        order = np.argsort(ids, kind="stable")
        sids = ids[order]
        dup = np.nonzero(np.diff(sids) == 0)[0]
        if len(dup):
            d = int(sids[dup[0]])
            lines = np.nonzero(ids == d)[0]
            raise TrajectoryError(f"atom id {d} appears twice (lines {int(ix.atom_lines[0]) + int(lines[0])} and "
                                  f"{int(ix.atom_lines[0]) + int(lines[1])}); ids must be unique", path=self.path,
                                  frame=0, atom=d)
        max_id = int(sids[-1])
        if max_id > max(16 * n, 1 << 22):
            raise TrajectoryError(f"atom ids are too sparse ({n} atoms with ids up to {max_id}); renumber them "
                                  "(LAMMPS reset_atoms id) before dumping", path=self.path, frame=0)
        id2idx = np.full(max_id + 1, -1, dtype=np.int64)
        id2idx[sids] = np.arange(n, dtype=np.int64)
        self._id2idx = id2idx
        self._seen = np.zeros(n, dtype=np.int64)
        self._seen_b = np.zeros(n, dtype=np.int64)
        self.atom_ids = sids
        self.n_atoms = n
        self.n_frames = ix.n_frames
        types = None
        if "type" in where:
            t = vals[:, want.index("type")][order]
            types = t.astype(np.int64)
        self.types = types
        mass_col = vals[:, want.index("mass")][order] if "mass" in where else None
        elements = None
        if "element" in where:
            tok = np.zeros((n, 8), dtype=np.uint8)
            code = _k.column_tokens(atoms_bytes, n, where["element"], tok)
            if code:
                raise self._parse_error(10, np.array([0, 0, where["element"], 0]), 0, atoms_bytes, 0)
            elements = tok.view("S8").ravel()[order]
        if self.options.topology is None:
            self.species = self._species(types, elements, mass_col)
            self.masses = None if mass_col is None else mass_col
        if "q" in where:
            roles = np.full(len(cols), _k.ROLE_SKIP, dtype=np.int32)
            roles[where["q"]] = 0
            q = np.empty((n, 1))
            code = _k.parse_columns(atoms_bytes, n, roles, q, err)
            if code:
                raise self._parse_error(code, err, 0, atoms_bytes, 0)
            self.charges = q[order, 0]
        if self.options.topology is not None:
            self._apply_topology(types)

    def _apply_topology(self, dump_types):
        """Types, species, masses and charges from the LAMMPS data file ``options.topology``, by atom id.

        The element of a type is ``types=`` if given, else the element named after its mass in ``Masses``
        (``1 6.941 # Li``), else the element of the nearest standard mass; ``metadata["type_elements"]``
        records the mapping and its source.  A ``type`` column of the dump must agree with the data file.
        Charges come from the data file (atom styles with a charge) unless the dump has a ``q`` column.
        """
        from .lammps_data import elements_of_types, read_lammps_data

        data = read_lammps_data(self.options.topology)
        rows = data.index_of(self.atom_ids, dump_path=self.path)
        types = data.types[rows]
        if dump_types is not None:
            bad = np.nonzero(dump_types != types)[0]
            if len(bad):
                k = int(bad[0])
                raise TrajectoryError(f"atom id {int(self.atom_ids[k])} has type {int(dump_types[k])} in the dump "
                                      f"but type {int(types[k])} in the data file {data.path}; the topology does "
                                      "not describe this dump", path=self.path, frame=0, atom=int(self.atom_ids[k]))
        tmap = self.options.types
        if tmap:
            missing = sorted({int(t) for t in np.unique(types)} - {int(k) for k in tmap})
            if missing:
                raise OptionError(f"{self.path}: atom type(s) {', '.join(map(str, missing))} have no element in "
                                  "types= / --types; give every type used or leave the mapping to the data file")
        elem, src = elements_of_types(data, tmap)
        uniq, inv = np.unique(types, return_inverse=True)
        self.types = types
        self.species = np.array([elem[int(t)] for t in uniq], dtype=object)[inv]
        self.masses = np.array([data.type_masses[int(t)] for t in uniq], dtype=np.float64)[inv]
        if data.charges is not None and getattr(self, "charges", None) is None:
            self.charges = data.charges[rows]
            charge_src = f"data file ({data.atom_style})"
        elif getattr(self, "charges", None) is not None:
            charge_src = "dump column q (first frame)"
        else:
            charge_src = f"none (atom style {data.atom_style} has no charge)"
        self._topology_meta = {
            "topology": data.path,
            "atom_style": data.atom_style + (" (inferred from the column count)" if data.inferred_style else ""),
            "type_elements": {int(t): f"{elem[int(t)]} ({src[int(t)]}, mass {data.type_masses[int(t)]:g})"
                              for t in uniq},
            "charges_source": charge_src,
        }
        self.units["species"] = "from the data file " + os.path.basename(data.path) + ": " + ", ".join(
            f"type {int(t)} → {elem[int(t)]}" for t in uniq)
        self.units["masses"] = "amu (data file Masses)"

    def _species(self, types, elements, mass_col):
        tmap = self.options.types
        if tmap:
            if types is None:
                raise OptionError(f"{self.path}: types= / --types was given but the dump has no 'type' column "
                                  f"(columns: {' '.join(self.columns)})")
            present = np.unique(types)
            missing = [int(t) for t in present if int(t) not in tmap]
            if missing:
                have = ", ".join(f"{k}={v}" for k, v in sorted(tmap.items()))
                raise OptionError(f"{self.path}: atom type(s) {', '.join(map(str, missing))} have no element in "
                                  f"types= / --types ({have}); give every type present "
                                  f"({', '.join(str(int(t)) for t in present)}), e.g. --types "
                                  + ",".join(f"{int(t)}={tmap.get(int(t), 'X')}" for t in present))
            lut = {int(t): normalize_symbol(tmap[int(t)]) for t in present}
            uniq, inv = np.unique(types, return_inverse=True)
            return np.array([lut[int(t)] for t in uniq], dtype=object)[inv]
        if elements is not None:
            uniq, inv = np.unique(elements, return_inverse=True)
            names = [normalize_symbol(u.decode("latin-1")) for u in uniq]
            return np.array(names, dtype=object)[inv]
        if mass_col is not None:
            uniq, inv = np.unique(mass_col, return_inverse=True)
            syms = list(MASSES)
            table = np.array([MASSES[s] for s in syms])
            names = []
            for m in uniq:
                j = int(np.argmin(np.abs(table - m)))
                if abs(table[j] - m) > _MASS_TOLERANCE:
                    which = "" if types is None else " (type " + ", ".join(
                        str(int(t)) for t in np.unique(types[mass_col == m])) + ")"
                    raise OptionError(f"{self.path}: mass {m:g}{which} matches no element (nearest {syms[j]}, "
                                      f"{table[j]:g} amu); give the elements with types= / --types, e.g. "
                                      "--types 1=Li,2=P,3=S")
                names.append(syms[j])
            return np.array(names, dtype=object)[inv]
        if types is not None and self._unit_style == "lj":
            # reduced-unit particles have no element: label them by type number (as the NetCDF reader does)
            self._species_note = "units lj: species are the LAMMPS type numbers (no elements)"
            uniq, inv = np.unique(types, return_inverse=True)
            return np.array([str(int(t)) for t in uniq], dtype=object)[inv]
        if types is not None:
            present = ", ".join(str(int(t)) for t in np.unique(types))
            raise OptionError(f"{self.path}: the dump has atom types {present} but no element or mass column; give "
                              "the element of each type with types={1: 'Li', 2: 'P'} / --types 1=Li,2=P,..., or the "
                              "run's LAMMPS data file with topology= / --topology")
        raise OptionError(f"{self.path}: the dump has no type, element or mass column (columns: "
                          f"{' '.join(self.columns)}); anionmotion cannot tell the species: give the run's "
                          "LAMMPS data file with topology= / --topology")

    def _setup_times(self):
        ix = self._index
        dt = self.options.timestep
        if dt is not None:
            self.times = ix.steps.astype(np.float64)
            self.times *= float(dt)   # in place: one float64 array of n_frames
            self.units["time_source"] = f"TIMESTEP × timestep ({dt:g} ps)"
        elif np.all(np.isfinite(ix.box[:, 10])):
            f = 1e-3 if self._unit_style in ("real", "electron") else 1.0
            self.times = ix.box[:, 10] * f
            self.units["time"] = "ps (ITEM: TIME" + (", fs → ps)" if f != 1.0 else ")")
            self.units["time_source"] = "ITEM: TIME"
        else:
            self.times = None
            self.units["time_source"] = "none in the file: give timestep (ps) or frame_interval"

    # ------------------------------------------------------------------- I/O
    def _open(self):
        if self._fh is None:
            self._fh = open_binary(self.path)
            self._fh_pos = 0
        return self._fh

    def _group_end(self, f, stop):
        """End (exclusive) of the run of frames from ``f`` spanning at most PARSE_BYTES (at least one frame)."""
        ix = self._index
        g = int(np.searchsorted(ix.ends, int(ix.offsets[f]) + PARSE_BYTES, side="right"))
        return min(max(g, f + 1), stop)

    def _start_prefetch(self, f, g):
        ix = self._index
        a, b = int(ix.offsets[f]), int(ix.ends[g - 1])
        self._wait_prefetch()
        self._prefetch = (a, b, _io_pool().submit(self._read_now, a, b))

    def _wait_prefetch(self):
        """Finish an outstanding read-ahead; returns (a, b, data) or None (a failed read-ahead is dropped)."""
        pf = self._prefetch
        if pf is None:
            return None
        self._prefetch = None
        a, b, fut = pf
        try:
            return a, b, fut.result()
        except Exception:   # the real read below reports the problem
            self._close_handle()
            return None

    def _read_bytes(self, a, b):
        got = self._wait_prefetch()
        if got is not None and got[0] == a and got[1] == b:
            return got[2]
        return self._read_now(a, b)

    def _read_now(self, a, b):
        fh = self._open()
        if self._index.compression is not None and a < self._fh_pos:
            fh.close()
            self._fh = None
            fh = self._open()
        if a != self._fh_pos:
            fh.seek(a)
        data = fh.read(b - a)
        self._fh_pos = a + len(data)
        if len(data) != b - a:
            raise TrajectoryError(f"the file changed since it was indexed (expected {b - a} bytes at offset {a}, "
                                  f"got {len(data)})", path=self.path)
        return data

    def _close_handle(self):
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def close(self):
        if getattr(self, "_prefetch", None) is not None:
            self._wait_prefetch()
        self._close_handle()

    # ------------------------------------------------------------------ read
    def read_cells(self, start, stop):
        """Cells (n, 3, 3) Å of frames ``start:stop``, from the index (no atom line is read)."""
        return self._cells[start:stop].copy()

    def constant_cell(self):
        """The one cell (Å) when every frame's box lines are identical (from the index), else None."""
        return None if self._cell0 is None else self._cell0.copy()

    def read(self, start, stop, atoms=None, velocities=None):
        """Read frames ``start:stop`` of atoms ``atoms`` (indices in id order; None = all).

        Seeks to the first frame's recorded offset and parses only those frames
        (two threads for large ranges), and of every atom line only the atoms
        asked for (the others are skipped after their id) and only the columns
        needed (the velocity columns are not parsed with ``velocities=False``).
        Returns :class:`RawFrames` with Cartesian Å coordinates (scaled columns
        converted with each frame's box), style ``"unwrapped"`` (``xu``/``xsu``)
        or ``"wrapped"`` (with ``images`` when ``ix iy iz`` exist), velocities in
        Å/ps, origins = box lo.  A reader is not thread-safe: use one per thread.
        """
        ix = self._index
        start, stop = int(start), int(max(start, stop))
        n = stop - start
        roles, nvals, vel_slot, img_slot = self._layouts[want_velocities(velocities)]
        if atoms is None:
            idx2out = np.arange(self.n_atoms, dtype=np.int64)
            n_out = self.n_atoms
        else:
            atoms = np.asarray(atoms, dtype=np.int64)
            idx2out = np.full(self.n_atoms, -1, dtype=np.int64)
            idx2out[atoms] = np.arange(len(atoms), dtype=np.int64)
            n_out = len(atoms)
        out = np.empty((n, n_out, nvals), dtype=np.float64)
        groups = []
        f = start
        while f < stop:
            g = self._group_end(f, stop)
            groups.append((f, g))
            f = g
        sequential = start == self._last_stop and start > 0
        self._last_stop = stop
        for k, (f, g) in enumerate(groups):
            a, b = int(ix.offsets[f]), int(ix.ends[g - 1])
            data = self._read_bytes(a, b)
            # read the next block on the I/O thread while this one is parsed: the next group of this call,
            # or, when frames are being streamed in order, the first group after ``stop``
            if k + 1 < len(groups):
                self._start_prefetch(*groups[k + 1])
            elif sequential and stop < self.n_frames:
                self._start_prefetch(stop, self._group_end(stop, self.n_frames))
            starts = ix.atoms_offsets[f:g] - a
            self._parse(data, starts, f, out[f - start:g - start], idx2out, roles)
            del data
        cells = np.array(self._cells[start:stop])      # own copies (the reader's may be broadcast views)
        origins = np.array(self._origins[start:stop])
        coords = out[:, :, :3] if nvals > 3 else out
        if self._scaled:
            coords = np.einsum("tik,tkl->til", coords, cells) + origins[:, None, :]
        elif self._len_factor != 1.0:
            coords = coords * self._len_factor
        vel = None
        if vel_slot is not None:
            vel = out[:, :, vel_slot:vel_slot + 3]
            vel = vel * self._vel_factor if self._vel_factor != 1.0 else np.ascontiguousarray(vel)
        images = None
        if img_slot is not None:
            images = out[:, :, img_slot:img_slot + 3].astype(np.int64)
        coords = np.ascontiguousarray(coords)
        del out
        return RawFrames(coords=coords, style=self._style, cells=cells,
                         times=None if self.times is None else self.times[start:stop].copy(), velocities=vel,
                         images=images, origins=origins,
                         steps=ix.steps[start:stop].copy(), owned=True)

    def _parse(self, data, starts, frame0, out, idx2out, roles=None):
        """Parse the frames of ``data`` into ``out``, on two threads when there is enough work."""
        nf = len(starts)
        roles = self._roles if roles is None else roles
        stamp = self._stamp
        self._stamp += nf
        if nf >= 2 and len(data) >= _THREAD_MIN_BYTES and _N_THREADS > 1:
            half = nf // 2
            parts = [(0, half, self._seen), (half, nf, self._seen_b)]
            errs = [np.zeros(4, dtype=np.int64) for _ in parts]
            pool = _pool()
            futs = [pool.submit(_k.parse_frames, data, starts[lo:hi], self.n_atoms, roles, self._id2idx,
                                idx2out, out[lo:hi], seen, stamp + lo, e)
                    for (lo, hi, seen), e in zip(parts, errs)]
            codes = [fu.result() for fu in futs]
            for (lo, hi, _), code, e in zip(parts, codes, errs):
                if code:
                    e[0] += lo
                    raise self._parse_error(code, e, frame0, data, int(starts[e[0]]))
            return
        err = np.zeros(4, dtype=np.int64)
        code = _k.parse_frames(data, starts, self.n_atoms, roles, self._id2idx, idx2out, out, self._seen,
                               stamp, err)
        if code:
            raise self._parse_error(code, err, frame0, data, int(starts[err[0]]))

    def _parse_error(self, code, err, frame0, data, frame_start):
        """TrajectoryError for a parse status code (err = frame in the block, atom line, column, id)."""
        ix = self._index
        fb, k, c, ident = (int(v) for v in err)
        frame = frame0 + fb
        line = int(ix.atom_lines[frame]) + k
        lines = bytes(data[frame_start:]).split(b"\n", k + 1)
        text = lines[k].decode("latin-1").rstrip("\r") if k < len(lines) else ""
        cols = self.columns
        if code == 10:
            ntok = len(text.split())
            msg = (f"atom line has {ntok} values, the ITEM: ATOMS header names {len(cols)} ({' '.join(cols)}): "
                   f"{text[:120]!r}")
        elif code == 11:
            toks = text.split()
            tok = toks[c] if c < len(toks) else ""
            msg = f"column '{cols[c]}' is not a number: {tok!r} in {text[:120]!r}"
        elif code == 12:
            msg = f"atom id is not a positive integer: {text[:120]!r}"
        elif code == 13:
            msg = (f"atom id {ident} is not in the first frame (missing or unknown id: every frame must hold the same "
                   f"atoms, ids {int(self.atom_ids[0])}..{int(self.atom_ids[-1])})")
        elif code == 14:
            msg = f"atom id {ident} appears twice in the frame (so another id is missing); ids must be unique"
        else:
            msg = f"cannot parse the atom line (status {code}): {text[:120]!r}"
        return TrajectoryError(msg, path=self.path, line=line, frame=frame,
                               atom=ident if code in (13, 14) else None)
