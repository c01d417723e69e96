"""Helpers shared by the text readers (xyz family, CP2K, XDATCAR).

The whole file is exposed as one read-only ``uint8`` array: memory-mapped
when uncompressed (nothing is read until a frame is parsed, and the OS page
cache does the buffering), decompressed into memory for gzip/bz2.  The
compiled kernels in :mod:`anionmotion.kernels.textparse` index and parse it.
"""

from __future__ import annotations

import bz2
import os
import re
import warnings
import zlib

import numpy as np

from ..elements import MASSES, normalize_symbol
from ..errors import FormatError, TrajectoryError, TruncatedFileWarning
from ..kernels import textparse as tp
from .base import check_text_head, compression_of

__all__ = ["load_buffer", "line_at", "line_number", "element_of", "elements_of", "raise_parse_error"]


def load_buffer(path, expected="a text trajectory"):
    """The file as a read-only uint8 array (memory map, or decompressed gzip/bz2 bytes).

    A gzip/bz2 stream that ends early gives a :class:`TruncatedFileWarning`
    and the bytes decompressed so far.

    Raises
    ------
    FormatError
        Empty file, or binary content (NUL bytes) in what should be text.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise FormatError("is a directory, expected a trajectory file", path=path)
    comp = compression_of(path) if os.path.getsize(path) else None
    if comp is None:
        if os.path.getsize(path) == 0:
            check_text_head(b"", path, expected)
        buf = np.memmap(path, dtype=np.uint8, mode="r")
    else:
        with open(path, "rb") as fh:
            raw = fh.read()
        if comp == "gzip":
            data, complete = _gunzip(raw)
        else:
            data, complete = _bunzip(raw)
        if not complete:
            warnings.warn(f"{path}: the {comp} stream ends early (file cut off?); reading the "
                          f"{len(data)} bytes decompressed so far", TruncatedFileWarning, stacklevel=3)
        buf = np.frombuffer(data, dtype=np.uint8)
    check_text_head(bytes(buf[:65536]), path, expected)
    return buf


def _gunzip(raw):
    out = []
    complete = True
    while raw:
        d = zlib.decompressobj(wbits=47)
        try:
            out.append(d.decompress(raw))
            out.append(d.flush())
        except zlib.error:
            complete = False
            break
        if not d.eof:
            complete = False
            break
        raw = d.unused_data  # concatenated gzip members
        if raw.strip(b"\x00") == b"":
            break
    return b"".join(out), complete


def _bunzip(raw):
    out = []
    complete = True
    while raw:
        d = bz2.BZ2Decompressor()
        try:
            out.append(d.decompress(raw))
        except (OSError, EOFError):
            complete = False
            break
        if not d.eof:
            complete = False
            break
        raw = d.unused_data
    return b"".join(out), complete


def line_at(buf, pos, max_len=200) -> str:
    """The line that starts at byte ``pos`` (without newline, at most ``max_len`` characters)."""
    pos = int(pos)
    n = 4096
    while True:
        chunk = bytes(buf[pos:pos + n])
        e = chunk.find(b"\n")
        if e >= 0:
            chunk = chunk[:e]
            break
        if pos + n >= len(buf) or n > max_len + 1:
            break
        n *= 4
    s = chunk.decode("latin-1").rstrip("\r")
    return s if len(s) <= max_len else s[:max_len] + "…"


def line_number(buf, pos) -> int:
    """1-based line number of byte ``pos``."""
    return tp.count_newlines(buf, 0, int(pos)) + 1


_LABEL = re.compile(r"^([A-Za-z]{1,2})(?:[^A-Za-z].*)?$")


def element_of(label):
    """Element symbol of an atom label (``LI`` → Li, ``Li_sv`` → Li, ``O1`` → O), or None when it is none."""
    s = normalize_symbol(label)
    if s in MASSES:
        return s
    m = _LABEL.match(str(label).strip())
    if m:
        s = normalize_symbol(m.group(1))
        if s in MASSES:
            return s
        s = normalize_symbol(m.group(1)[:1])
        if len(m.group(1)) == 1 and s in MASSES:
            return s
    return None


def elements_of(labels, *, path, line_of=None, what="species"):
    """Map atom labels to element symbols; TrajectoryError naming the first unknown label.

    Parameters
    ----------
    labels : sequence of str
    line_of : callable(int) -> int, optional
        1-based file line of atom ``i`` (for the error message).
    """
    cache = {}
    out = np.empty(len(labels), dtype=object)
    for i, lab in enumerate(labels):
        if lab not in cache:
            cache[lab] = element_of(lab)
            if cache[lab] is None:
                raise TrajectoryError(f"unknown {what} {lab!r}; expected an element symbol (e.g. Li, P, S)",
                                      path=path, line=None if line_of is None else line_of(i), atom=i)
        out[i] = cache[lab]
    return out


def raise_parse_error(buf, result, *, path, frame0, frame_local_to_global=None, what="coordinates", unit="atom",
                      row0=0):
    """Turn a non-zero status of :func:`anionmotion.kernels.textparse.parse_frames` into a TrajectoryError.

    ``result`` is the kernel's ``(status, frame, row, pos, token)``; ``frame0``
    the trajectory index of the first parsed frame; ``row0`` subtracted from
    the row to give the atom index.
    """
    status, f, r, pos, tok = result
    frame = frame0 + int(f) if frame_local_to_global is None else int(frame_local_to_global[f])
    atom = int(r) - row0
    line = line_number(buf, pos)
    text = line_at(buf, pos)
    if status == tp.TRUNC:
        raise TrajectoryError(f"the file ends inside frame {frame} (expected more {what} rows)", path=path,
                              frame=frame)
    if status == tp.FEWTOK:
        raise TrajectoryError(f"expected more numbers on this {unit} row ({what}), found {tok} value(s): {text!r}",
                              path=path, line=line, frame=frame, atom=atom if atom >= 0 else None)
    raise TrajectoryError(f"value {tok + 1} of this {unit} row is not a number ({what}): {text!r}",
                          path=path, line=line, frame=frame, atom=atom if atom >= 0 else None)
