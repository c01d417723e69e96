"""Text-trajectory kernels: frame indexing and number parsing (façade over ``ext/_textparse.pyx``).

Every compiled kernel has a numpy/Python twin ``<name>_ref`` with the same
IN/OUT contract; the twins are the specification and the test oracle (they
are slow: Python per line).

Status codes returned by the kernels (:data:`STATUS`):
0 ok, 1 output index full, 2 bad count/configuration line, 3 file ends inside
a frame, 4 too few numbers on a row, 5 a token that is not a number.
"""

from __future__ import annotations

import os
import re

import numpy as np

from ._loader import load_ext

__all__ = [
    "STATUS", "OK", "FULL", "BADHEAD", "TRUNC", "FEWTOK", "BADNUM",
    "index_xyz", "index_xyz_ref", "index_xdatcar", "index_xdatcar_ref",
    "parse_frames", "parse_frames_ref", "skip_lines", "skip_lines_ref", "count_newlines", "count_newlines_ref",
    "token_spans", "token_spans_ref", "parse_double_at", "parse_double_at_ref", "strtod_ref",
]

_tp = load_ext("_textparse")

OK, FULL, BADHEAD, TRUNC, FEWTOK, BADNUM = range(6)
STATUS = {OK: "ok", FULL: "index full", BADHEAD: "bad frame header", TRUNC: "truncated frame",
          FEWTOK: "too few numbers", BADNUM: "not a number"}

_BLANK = b" \t\r\x0b\x0c"


# ----------------------------------------------------------------------------- small helpers
def skip_lines(buf, pos, n_lines):
    """Offset after ``n_lines`` lines from ``pos`` and the number actually skipped."""
    return _tp.skip_lines(buf, int(pos), int(n_lines))


def count_newlines(buf, start, stop):
    """Newlines in ``buf[start:stop]``; 1 + this is the 1-based line number of ``stop``."""
    return int(_tp.count_newlines(buf, int(start), int(stop)))


def parse_double_at(buf, pos):
    """Parse one number at ``pos`` of ``buf`` (uint8 array); returns ``(value, end_offset)``."""
    return _tp.parse_double_at(buf, int(pos))


def skip_lines_ref(buf, pos, n_lines):
    """Python twin of :func:`skip_lines`."""
    data = bytes(memoryview(buf))
    n, k, pos = len(data), 0, int(pos)
    if n == 0:
        return pos, 0
    while k < n_lines and pos < n:
        e = data.find(b"\n", pos)
        pos = n if e < 0 else e + 1
        k += 1
    return pos, k


def count_newlines_ref(buf, start, stop):
    """Python twin of :func:`count_newlines` (0 ≤ start, stop ≤ len(buf); 0 when start ≥ stop)."""
    return bytes(memoryview(buf))[int(start):int(stop)].count(b"\n") if stop > start else 0


_HEX_FLOAT = re.compile(rb"[+-]?0[xX]([0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)([pP][+-]?[0-9]+)?")
_NAN_PAYLOAD = re.compile(rb"[+-]?[nN][aA][nN]\([0-9A-Za-z_]*\)")


def strtod_ref(tok: bytes) -> float:
    """C ``strtod`` on a whole token (C locale), in Python: the value, or ValueError if it is not all a number.

    Python's ``float`` is correctly rounded like glibc's ``strtod`` and takes the same decimal, ``inf``,
    ``infinity`` and ``nan`` spellings; it differs in accepting ``_`` between digits (refused here) and in
    refusing hexadecimal floats and ``nan(…)`` payloads (accepted here, as ``strtod`` does).
    """
    if not tok or b"_" in tok or any(c <= 32 for c in tok):
        raise ValueError(f"not a number: {tok!r}")
    if _HEX_FLOAT.fullmatch(tok):
        return float.fromhex(tok.decode("ascii"))
    if _NAN_PAYLOAD.fullmatch(tok):
        return float("nan")
    return float(tok)


def _blank_end(data, p):
    """Offset of the first blank (space, tab, CR, VT, FF) or newline at or after ``p``."""
    n = len(data)
    while p < n and data[p] not in _BLANK and data[p] != 10:
        p += 1
    return p


def parse_double_at_ref(buf, pos):
    """Python twin of :func:`parse_double_at`.

    The token runs from ``pos`` (no blanks skipped) to the next blank, newline or the end; Fortran ``D``/``d``
    exponent letters read as ``E``.  Tokens of 511 bytes or more are refused by the kernel when they need its
    ``strtod`` fallback; the twin's contract covers shorter tokens.
    """
    data = bytes(memoryview(buf))
    pos = int(pos)
    end = _blank_end(data, pos)
    tok = data[pos:end]
    if not tok:
        raise ValueError("not a number")
    try:
        v = strtod_ref(tok.replace(b"D", b"E").replace(b"d", b"e"))
    except ValueError:
        raise ValueError("not a number") from None
    return v, end


# ----------------------------------------------------------------------------- index builders
def _grow(kernel, buf, pos, *args):
    n = len(buf)
    cap = 1024
    parts = []
    while True:
        out = np.empty(cap, dtype=np.int64)
        k, status, pos, value = kernel(buf, int(pos), *args, out)
        parts.append(out[:k])
        if status != FULL:
            return np.concatenate(parts) if parts else np.zeros(0, np.int64), status, pos, value
        cap = min(cap * 4, max(1024, n // 16 + 1))


def index_xyz(buf, pos, n_atoms, *, use_ext=True):
    """Byte offset of every XYZ frame (count line, comment, ``n_atoms`` rows).

    Parameters
    ----------
    buf : ndarray of uint8
        The whole file.
    pos : int
        Offset of the first count line.
    n_atoms : int
        Atom count every frame must have.

    Returns
    -------
    offsets : ndarray of int64, shape (n_frames,)
        Start of each complete frame.
    status : int
        0 end of file, 2 a count line differs from ``n_atoms`` (or is not an
        integer), 3 the file ends inside a frame.
    pos : int
        Offset of the offending count line / incomplete frame.
    value : int
        The count read (status 2; −1 when not an integer) or the complete rows of
        the incomplete frame (status 3).
    """
    if use_ext:
        return _grow(_tp.index_xyz, buf, pos, int(n_atoms))
    return index_xyz_ref(buf, pos, n_atoms)


def index_xyz_ref(buf, pos, n_atoms):
    """Python twin of :func:`index_xyz`."""
    data = bytes(memoryview(buf))
    offs = []
    n = len(data)
    while True:
        if data[pos:].strip(_BLANK + b"\n") == b"":
            return np.asarray(offs, np.int64), OK, pos, 0
        eol = data.find(b"\n", pos)
        line = data[pos:eol if eol >= 0 else n]
        s = line.strip(_BLANK)
        if not s.isdigit():
            return np.asarray(offs, np.int64), BADHEAD, pos, -1
        if int(s) != n_atoms:
            return np.asarray(offs, np.int64), BADHEAD, pos, int(s)
        q, lines = pos, 0
        while lines < n_atoms + 2 and q < n:
            e = data.find(b"\n", q)
            q = n if e < 0 else e + 1
            lines += 1
        if lines < n_atoms + 2:
            return np.asarray(offs, np.int64), TRUNC, pos, max(lines - 2, 0)
        offs.append(pos)
        pos = q


def index_xdatcar(buf, pos, n_header, n_atoms, *, use_ext=True):
    """Byte offset of every XDATCAR frame (``n_header`` lines, configuration line, ``n_atoms`` rows).

    Returns ``(offsets, status, pos, value)`` like :func:`index_xyz`; status 2
    means the configuration line at ``pos`` does not start with ``Direct``,
    ``Cartesian`` or ``Konfig`` and is not blank.
    """
    if use_ext:
        return _grow(_tp.index_xdatcar, buf, pos, int(n_header), int(n_atoms))
    return index_xdatcar_ref(buf, pos, n_header, n_atoms)


def index_xdatcar_ref(buf, pos, n_header, n_atoms):
    """Python twin of :func:`index_xdatcar`."""
    data = bytes(memoryview(buf))
    n = len(data)
    offs = []

    def nxt(p):
        e = data.find(b"\n", p)
        return n if e < 0 else e + 1

    while True:
        if data[pos:].strip(_BLANK + b"\n") == b"":
            return np.asarray(offs, np.int64), OK, pos, 0
        start, q = pos, pos
        for _ in range(n_header):
            if q >= n:
                break
            q = nxt(q)
        if q >= n:
            return np.asarray(offs, np.int64), TRUNC, start, 0
        line = data[q:nxt(q)].strip(_BLANK + b"\n")
        if line and line[:1] not in (b"D", b"d", b"C", b"c", b"K", b"k"):
            return np.asarray(offs, np.int64), BADHEAD, q, -1
        q = nxt(q)
        lines = 0
        while lines < n_atoms and q < n:
            q = nxt(q)
            lines += 1
        if lines < n_atoms:
            return np.asarray(offs, np.int64), TRUNC, start, lines
        offs.append(start)
        pos = q


# ----------------------------------------------------------------------------- number parsing
def parse_frames(buf, offsets, skip, n_rows, colmap, rowmap, out, *, use_ext=True, threads=2):
    """Parse the numbers of ``n_rows`` rows of each frame into ``out``.

    Parameters
    ----------
    buf : ndarray of uint8
        The whole file.
    offsets : ndarray of int64, shape (n_frames,)
        Offset of each frame to parse.
    skip : int
        Lines to skip after each offset before the first row.
    n_rows : int
        Rows per frame.
    colmap : ndarray of int64, shape (n_tokens,)
        Token j of a row → column of ``out`` (−1 skips the token, e.g. a species name).
        Rows need at least ``n_tokens`` tokens; later tokens are ignored.
    rowmap : ndarray of int64, shape (n_rows,)
        Row r → row of ``out`` (−1 skips the line without parsing it).
    out : ndarray, float64, shape (n_frames, n_out_rows, n_out_cols)
        OUT.
    use_ext : bool
        Compiled kernel (True) or the Python twin.
    threads : int
        Frames are split over this many threads when there are at least
        20 000 rows to parse (the compiled kernel releases the GIL).

    Returns
    -------
    (status, frame, row, pos, token)
        status 0 on success; otherwise the frame (index into ``offsets``),
        row, offset of the offending line and token index.
    """
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    colmap = np.ascontiguousarray(colmap, dtype=np.int64)
    rowmap = np.ascontiguousarray(rowmap, dtype=np.int64)
    if len(rowmap) != n_rows:
        raise ValueError(f"rowmap must have length n_rows = {n_rows}; got {len(rowmap)}")
    if out.dtype != np.float64 or not out.flags.c_contiguous or out.ndim != 3 or out.shape[0] != len(offsets):
        raise ValueError("out must be a C-contiguous float64 array of shape (n_frames, n_out_rows, n_out_cols)")
    if (len(rowmap) and rowmap.max() >= out.shape[1]) or (len(colmap) and colmap.max() >= out.shape[2]):
        raise ValueError("rowmap/colmap point outside out")
    if not use_ext:
        return parse_frames_ref(buf, offsets, int(skip), int(n_rows), colmap, rowmap, out)
    nf = len(offsets)
    if threads > 1 and nf >= 2 and nf * n_rows >= _THREAD_MIN_ROWS:
        # frames are independent: split them over threads (the kernel releases the GIL)
        bounds = np.linspace(0, nf, min(threads, nf) + 1).astype(int)
        jobs = [(_pool().submit(_tp.parse_frames, buf, offsets[a:b], int(skip), int(n_rows), colmap, rowmap,
                                out[a:b]), a) for a, b in zip(bounds[:-1], bounds[1:])]
        results = [(j.result(), a) for j, a in jobs]
        for res, a in results:
            if res[0] != OK:
                return (res[0], res[1] + a) + tuple(res[2:])
        return OK, 0, 0, 0, 0
    return _tp.parse_frames(buf, offsets, int(skip), int(n_rows), colmap, rowmap, out)


_THREAD_MIN_ROWS = 20000
_POOL = None


def _pool():
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2)),
                                   thread_name_prefix="anionmotion-textparse")
    return _POOL


def _float_ref(tok: bytes) -> float:
    return strtod_ref(tok.replace(b"D", b"E").replace(b"d", b"e"))


def parse_frames_ref(buf, offsets, skip, n_rows, colmap, rowmap, out):
    """Python twin of :func:`parse_frames`."""
    data = bytes(memoryview(buf))
    n = len(data)

    def nxt(p):
        e = data.find(b"\n", p)
        return n if e < 0 else e + 1

    for f, pos in enumerate(offsets):
        pos = int(pos)
        for _ in range(skip):
            pos = nxt(pos) if pos < n else n
        for r in range(n_rows):
            if pos >= n:
                return TRUNC, f, r, pos, 0
            end = nxt(pos)
            if rowmap[r] < 0:
                pos = end
                continue
            toks = data[pos:end].split()
            for j, col in enumerate(colmap):
                if j >= len(toks):
                    return FEWTOK, f, r, pos, j
                if col >= 0:
                    try:
                        out[f, rowmap[r], col] = _float_ref(toks[j])
                    except ValueError:
                        return BADNUM, f, r, pos, j
            pos = end
    return OK, 0, 0, 0, 0


def token_spans(buf, pos, n_rows, tok, *, use_ext=True):
    """Start/stop offsets of token ``tok`` on ``n_rows`` rows from ``pos``.

    Returns
    -------
    starts, stops : ndarray of int64, shape (n_rows,)
        −1 where a row has fewer tokens.
    end : int
        Offset after the rows.
    """
    if not use_ext:
        return token_spans_ref(buf, pos, n_rows, tok)
    starts = np.full(n_rows, -1, np.int64)
    stops = np.full(n_rows, -1, np.int64)   # the kernel leaves both untouched for an empty buffer
    end = _tp.token_spans(buf, int(pos), int(n_rows), int(tok), starts, stops)
    return starts, stops, int(end)


def token_spans_ref(buf, pos, n_rows, tok):
    """Python twin of :func:`token_spans`."""
    data = bytes(memoryview(buf))
    n = len(data)
    starts = np.full(n_rows, -1, np.int64)
    stops = np.full(n_rows, -1, np.int64)
    for r in range(n_rows):
        if pos >= n:
            continue
        e = data.find(b"\n", pos)
        end = n if e < 0 else e + 1
        line = data[pos:end]
        j, i = -1, 0
        while i < len(line):
            while i < len(line) and line[i:i + 1] in (b" ", b"\t", b"\r", b"\x0b", b"\x0c"):
                i += 1
            if i >= len(line) or line[i:i + 1] == b"\n":
                break
            s = i
            while i < len(line) and line[i:i + 1] not in (b" ", b"\t", b"\r", b"\x0b", b"\x0c", b"\n"):
                i += 1
            j += 1
            if j == tok:
                starts[r], stops[r] = pos + s, pos + i
                break
        pos = end
    return starts, stops, pos
