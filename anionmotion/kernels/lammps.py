"""LAMMPS dump text kernels: façade over ``ext/_lammps.pyx`` with numpy twins.

The compiled module scans a byte buffer for frames (:func:`scan_frames`) and
parses atom lines into preallocated arrays (:func:`parse_frames`,
:func:`parse_columns`, :func:`column_tokens`).  The ``*_ref`` twins are plain
numpy/Python implementations of the same contracts, used as test oracles.
Status codes are listed in :data:`STATUS`.
"""

from __future__ import annotations

import re

import numpy as np

from ._loader import load_ext

__all__ = ["STATUS", "ROLE_ID", "ROLE_SKIP", "scan_frames", "scan_frames_ref", "parse_frames", "parse_frames_ref",
           "parse_columns", "parse_columns_ref", "column_tokens", "column_tokens_ref", "parse_floats",
           "parse_floats_ref", "parse_float_token_ref", "parse_float_tokens_ref", "INTS_WIDTH", "BOX_WIDTH"]

_lammps = load_ext("_lammps")

ROLE_ID = -2
ROLE_SKIP = -1
INTS_WIDTH = 9
BOX_WIDTH = 16

STATUS = {
    0: "ok",
    1: "expected an 'ITEM:' line",
    2: "unknown ITEM header",
    3: "bad number in a header",
    4: "ITEM: ATOMS before TIMESTEP, NUMBER OF ATOMS and BOX BOUNDS",
    5: "truncated",
    6: "capacity reached",
    10: "wrong number of columns",
    11: "bad number",
    12: "bad atom id",
    13: "unknown atom id",
    14: "duplicate atom id",
}


def scan_frames(buf, base, line0, at_eof, ints, box, status):
    """Index the complete frames in ``buf`` (see ``ext/_lammps.pyx``).

    Parameters
    ----------
    buf : bytes-like
        Decompressed file bytes starting at a frame start.
    base : int
        Absolute byte offset of ``buf[0]``.
    line0 : int
        1-based line number of ``buf[0]``.
    at_eof : bool
        ``buf`` reaches the end of the file.
    ints : ndarray, shape (cap, 9), int64, OUT
        offset, first-atom-line offset, end offset, step, n_atoms, line,
        column-header hash, column-header offset, first atom line number.
    box : ndarray, shape (cap, 16), float64, OUT
        Box lines (lo, hi, tilt) × 3, box kind, TIME value, UNITS offset,
        number of columns, origin (``abc origin`` boxes).
    status : ndarray, shape (5,), int64, OUT
        code, frames found, bytes consumed, lines consumed, error line.
    """
    _lammps.scan_frames(buf, int(base), int(line0), bool(at_eof), ints, box, status)


def scan_frames_ref(buf, base, line0, at_eof, ints, box, status):
    """Python twin of :func:`scan_frames` for well-formed dumps (status 0, 5 or 6; no error codes).

    Walks the lines of ``buf`` with ``bytes.split``; same IN/OUT contract.
    """
    data = bytes(buf)
    lines = data.split(b"\n")
    # offsets of line starts
    starts = np.concatenate([[0], np.cumsum([len(x) + 1 for x in lines])]).astype(np.int64)
    complete_tail = data.endswith(b"\n") or at_eof
    n_lines = len(lines) - 1 if data.endswith(b"\n") else len(lines)
    if not complete_tail:
        n_lines -= 1          # the last line is cut by the block end
    cap = ints.shape[0]
    i, nf, code = 0, 0, 0
    consumed_line = 0
    err_line = 0
    partial_blank = False
    while True:
        while i < n_lines and not lines[i].strip():
            if i == len(lines) - 1:      # a blank last line without its newline: bytes consumed, not a line
                partial_blank = True
                break
            i += 1
        consumed_line = i
        # the kernel stops at full capacity whenever bytes are left (at the end of the file: non-blank ones),
        # even a cut line it would otherwise leave for the next call
        rest = b"" if partial_blank else data[min(int(starts[i]), len(data)):]
        if nf >= cap and (rest.strip() if at_eof else rest):
            code = 6
            break
        if i >= n_lines or partial_blank:
            break
        f0 = i
        step = natoms = None
        kind = 0
        vals = np.zeros(16)
        vals[10] = np.nan
        vals[11] = -1.0
        ok = False
        while i < n_lines:
            item = lines[i][5:].strip()
            if item.startswith(b"ATOMS"):
                names = item[5:].split()
                h = 1469598103934665603
                for nm in names:
                    for ch in nm:
                        h = ((h ^ ch) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
                    h = ((h ^ 32) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
                first_atom = i + 1
                end_line = first_atom + natoms
                if end_line > n_lines:
                    break
                if natoms and end_line == len(lines) and len(lines[end_line - 1].split()) != len(names):
                    break             # the last line has no newline and misses columns: cut
                ints[nf] = (base + starts[f0], base + min(starts[first_atom], len(data)),
                            base + min(starts[end_line], len(data)),
                            step, natoms, line0 + f0, h >> 1, base + starts[i] + lines[i].index(b"ATOMS") + 5,
                            line0 + first_atom)
                vals[9] = kind
                vals[12] = len(names)
                box[nf] = vals
                i = end_line
                ok = True
                break
            if i + 1 >= n_lines:
                break
            if item.startswith(b"TIMESTEP"):
                step = int(lines[i + 1])
            elif item.startswith(b"NUMBER OF ATOMS"):
                natoms = int(lines[i + 1])
            elif item.startswith(b"BOX BOUNDS"):
                if i + 3 >= n_lines:
                    break
                kind = 2 if b"abc" in item else (1 if b"xy" in item else 0)
                need = (2, 3, 4)[kind]
                cut = False
                for j in range(3):
                    k = i + 1 + j
                    try:
                        row = [float(x) for x in lines[k].split()[:need]]
                    except ValueError:
                        row = []
                    if kind == 1 and len(row) == 2:
                        row.append(0.0)       # a missing tilt is tolerated (never written by LAMMPS)
                    if len(row) < need:
                        # a short or cut box line is only in this twin's contract as the cut end of the file
                        if at_eof and k == len(lines) - 1 and not data.endswith(b"\n"):
                            cut = True
                            break
                        raise ValueError(f"malformed box line {line0 + k}: outside scan_frames_ref's contract")
                    vals[3 * j:3 * j + min(3, len(row))] = row[:3]
                    if kind == 2:
                        vals[13 + j] = row[3]
                if cut:
                    break
                i += 4
                continue
            elif item.startswith(b"TIME"):
                vals[10] = float(lines[i + 1])
            elif item.startswith(b"UNITS"):
                vals[11] = base + starts[i + 1] + (len(lines[i + 1]) - len(lines[i + 1].lstrip()))
            i += 2
        if not ok:
            consumed_line = f0
            err_line = line0 + f0 if at_eof else 0
            code = 5 if at_eof else 0
            break
        nf += 1
    status[0] = code
    status[1] = nf
    status[2] = len(data) if partial_blank else min(int(starts[consumed_line]), len(data))
    status[3] = consumed_line
    status[4] = err_line


def parse_frames(buf, starts, natoms, roles, id2idx, idx2out, out, seen, stamp0, err):
    """Parse atom lines of several frames into ``out`` (rows in id order); returns a status code.

    Parameters
    ----------
    buf : bytes-like
    starts : ndarray, shape (n_frames,), int64
        Offset in ``buf`` of each frame's first atom line.
    natoms : int
    roles : ndarray, shape (n_columns,), int32
        ``ROLE_ID``, ``ROLE_SKIP`` or the value slot of each column.
    id2idx : ndarray, shape (max_id + 1,), int64
        Index in id order of every id, -1 for ids not in the trajectory.
    idx2out : ndarray, shape (n_atoms,), int64
        Output row of every atom index, -1 for atoms not wanted.
    out : ndarray, shape (n_frames, n_out, n_vals), float64, OUT
    seen : ndarray, shape (n_atoms,), int64, IN/OUT scratch
    stamp0 : int
        Larger than every value in ``seen``; frames use ``stamp0 + f``.
    err : ndarray, shape (4,), int64, OUT
        frame, atom line, column, id of the first problem.
    """
    return int(_lammps.parse_frames(buf, starts, int(natoms), roles, id2idx, idx2out, out, seen, int(stamp0), err))


_TOKEN = re.compile(rb"[^\x00-\x20]+")
_INT_TOKEN = re.compile(rb"[+-]?[0-9]{1,18}")


def _line_tokens(data, p):
    """Tokens of the line starting at ``p`` (separated by bytes ≤ 32, as the kernels split) and the offset
    after its newline (``len(data)`` on the last line)."""
    e = data.find(b"\n", p)
    stop = len(data) if e < 0 else e
    return _TOKEN.findall(data, p, stop), (len(data) if e < 0 else e + 1)


def parse_float_token_ref(tok: bytes) -> float:
    """The kernels' float parser on one token, in Python: ``strtod`` of the whole token (correctly rounded;
    ``nan``, ``inf`` and hexadecimal floats accepted, ``D`` exponents and ``_`` refused).

    Tokens longer than 511 bytes are refused by the kernels when they need the ``strtod`` fallback; the
    twins' contract covers shorter tokens.
    """
    from .textparse import strtod_ref

    return strtod_ref(tok)


def _int_token_ref(tok: bytes):
    """Atom id of a token (1 to 18 decimal digits, optional sign), or None."""
    return int(tok) if _INT_TOKEN.fullmatch(tok) else None


def parse_frames_ref(buf, starts, natoms, roles, id2idx, idx2out, out, seen, stamp0, err):
    """Python twin of :func:`parse_frames`, line by line with the kernel's checks in the kernel's order.

    Same contract, with ``roles`` naming every value slot of ``out`` (the kernel copies all ``n_vals``
    slots of each wanted atom).  ``seen`` may be None (then the duplicate check uses a set per frame and
    ``seen`` is not updated).
    """
    data = bytes(memoryview(buf)) if len(buf) else b""
    roles = np.asarray(roles)
    ncol = len(roles)
    if out.shape[2] > 64:
        raise ValueError("at most 64 value columns")
    for f, s in enumerate(starts):
        p = int(s)
        stamp = int(stamp0) + f
        in_frame = set()
        for k in range(int(natoms)):
            toks, nxt = _line_tokens(data, p)
            vals = {}
            o, ident, code, c = -1, 0, 0, 0
            for tok in toks:
                if c >= ncol:
                    code = 10
                    break
                role = int(roles[c])
                if role >= 0:
                    try:
                        vals[role] = parse_float_token_ref(tok)
                    except ValueError:
                        code = 11
                        break
                elif role == ROLE_ID:
                    v = _int_token_ref(tok)
                    if v is None or v <= 0:
                        code = 12
                        break
                    ident = v
                    if ident >= len(id2idx) or id2idx[ident] < 0:
                        code = 13
                        break
                    idx = int(id2idx[ident])
                    if idx in in_frame:
                        code = 14
                        break
                    in_frame.add(idx)
                    if seen is not None:
                        seen[idx] = stamp
                    o = int(idx2out[idx])
                    if o < 0:          # atom not wanted: the rest of the line is not looked at
                        c = ncol
                        break
                c += 1
            if code:
                err[:] = (f, k, c, ident if code >= 13 else 0)
                return code
            if c != ncol:
                err[:] = (f, k, c, 0)
                return 10
            if o >= 0:
                for slot, v in vals.items():
                    out[f, o, slot] = v
            p = nxt
    return 0


def parse_columns(buf, natoms, roles, out, err):
    """Parse numeric columns of one frame in file order; returns a status code."""
    return int(_lammps.parse_columns(buf, int(natoms), roles, out, err))


def parse_columns_ref(buf, natoms, roles, out, err):
    """Python twin of :func:`parse_columns` (values of a line are written as they are parsed)."""
    data = bytes(memoryview(buf)) if len(buf) else b""
    roles = np.asarray(roles)
    ncol = len(roles)
    p = 0
    for k in range(int(natoms)):
        toks, p = _line_tokens(data, p)
        code, c = 0, len(toks)
        for j, tok in enumerate(toks):
            if j >= ncol:
                code, c = 10, j
                break
            if roles[j] >= 0:
                try:
                    out[k, roles[j]] = parse_float_token_ref(tok)
                except ValueError:
                    code, c = 11, j
                    break
        if code == 0 and c != ncol:
            code = 10
        if code:
            err[:] = (0, k, c, 0)
            return code
    return 0


def column_tokens(buf, natoms, col, out):
    """Copy the text of column ``col`` of ``natoms`` lines into ``out`` (uint8, natoms × width)."""
    return int(_lammps.column_tokens(buf, int(natoms), int(col), out))


def column_tokens_ref(buf, natoms, col, out):
    """Python twin of :func:`column_tokens` (tokens longer than the width are cut; ``out`` is not cleared)."""
    data = bytes(memoryview(buf)) if len(buf) else b""
    p = 0
    w = out.shape[1]
    for k in range(int(natoms)):
        toks, p = _line_tokens(data, p)
        if len(toks) <= col:
            return 10
        t = toks[col][:w]
        out[k, :len(t)] = np.frombuffer(t, dtype=np.uint8)
    return 0


def parse_floats(text: bytes) -> np.ndarray:
    """Parse whitespace-separated floats with the compiled parser (fast path + strtod fallback).

    Raises
    ------
    ValueError
        Naming the first token that is not a number.
    """
    toks = text.split()
    out = np.empty(len(toks), dtype=np.float64)
    n = _lammps.parse_float_tokens(text, out)
    if n < 0:
        raise ValueError(f"not a number: {toks[-n - 1]!r}")
    return out[:n]


def parse_float_tokens_ref(buf, out):
    """Python twin of ``_lammps.parse_float_tokens``: tokens (separated by bytes ≤ 32) parsed into ``out``
    until it is full; returns the number parsed, or −(1 + index) of the first token that is not a number."""
    data = bytes(memoryview(buf)) if len(buf) else b""
    n = 0
    for tok in _TOKEN.finditer(data):
        if n >= len(out):
            break
        try:
            out[n] = parse_float_token_ref(tok.group())
        except ValueError:
            return -(1 + n)
        n += 1
    return n


def parse_floats_ref(text: bytes) -> np.ndarray:
    """Numpy twin of :func:`parse_floats` (Python's correctly rounded ``float``)."""
    return np.array([float(t) for t in text.split()], dtype=np.float64)
