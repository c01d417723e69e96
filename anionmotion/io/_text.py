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
from ..errors import TrajectoryError, TruncatedFileWarning
from ..kernels import textparse as tp
from .base import check_input_file, check_text_head, compression_of

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
    path = check_input_file(os.fspath(path))
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
        if isinstance(complete, Exception):   # damaged data, not a cut file: an error, not a truncation
            n_lines = int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == 10))
            raise TrajectoryError(f"the {comp} stream is corrupt ({complete}), detected after line {n_lines} "
                                  f"(byte {len(data)} of the decompressed data); the file is damaged: re-copy or "
                                  f"re-compress it (`{'gzip' if comp == 'gzip' else 'bzip2'} -t` tests it)",
                                  path=path, line=n_lines + 1)
        if not complete:
            warnings.warn(f"{path}: the {comp} stream ends early (file cut off?); reading the "
                          f"{len(data)} bytes decompressed so far", TruncatedFileWarning, stacklevel=3)
        buf = np.frombuffer(data, dtype=np.uint8)
    check_text_head(bytes(buf[:65536]), path, expected)
    return buf


def _gunzip(raw, piece=1 << 12):
    """(data, status): status True (complete), False (the stream ends early) or the zlib error (damaged).

    The compressed bytes are fed in pieces so that the data decompressed before a damaged spot is kept (its
    size locates the damage in the error message).
    """
    out = []
    complete = True
    view = memoryview(raw)
    while len(view):
        d = zlib.decompressobj(wbits=47)
        used = 0
        try:
            for i in range(0, len(view), piece):
                part = view[i:i + piece]
                out.append(d.decompress(part))
                if d.eof:
                    used = i + len(part) - len(d.unused_data)
                    break
            out.append(d.flush())
        except zlib.error as err:   # bad data, CRC failure, or trailing bytes that are not a gzip member
            complete = err
            break
        if not d.eof:
            complete = False
            break
        view = view[used:]  # concatenated gzip members
        if bytes(view).strip(b"\x00") == b"":
            break
    return b"".join(out), complete


def _bunzip(raw):
    out = []
    complete = True
    while raw:
        d = bz2.BZ2Decompressor()
        try:
            out.append(d.decompress(raw))
        except (OSError, EOFError) as err:
            complete = OSError(str(err) or "invalid data stream")
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
