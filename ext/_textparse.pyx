# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Text-trajectory scanning and number parsing (xyz family, CP2K, XDATCAR).

The buffer is the whole (decompressed or memory-mapped) file as bytes.  Two
kinds of kernel:

* index builders walk the file once and record the byte offset of every frame
  (``index_xyz``, ``index_xdatcar``) without converting any number;
* ``parse_frames`` converts the numbers of a frame range into a preallocated
  float64 array, skipping unselected rows with ``memchr``.

No validation of arguments here (the façade ``anionmotion/kernels/textparse.py``
does it); errors in the *file* are reported through a status code and the byte
offset of the offending line, so the caller can name the line.

Status codes (shared with the numpy twins):
0 OK, 1 output index full (call again from the returned position),
2 bad count/separator line, 3 file ends inside a frame (truncated),
4 too few numbers on a row, 5 a token that is not a number.
"""

from libc.string cimport memchr, memcpy
from libc.stdlib cimport strtod
from libc.stdint cimport int64_t, uint64_t

cdef double POW10[23]
POW10[:] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
            1e17, 1e18, 1e19, 1e20, 1e21, 1e22]

cdef enum:
    ST_OK = 0
    ST_FULL = 1
    ST_BADHEAD = 2
    ST_TRUNC = 3
    ST_FEWTOK = 4
    ST_BADNUM = 5


cdef inline bint is_blank(unsigned char c) noexcept nogil:
    return c == 32 or c == 9 or c == 13 or c == 11 or c == 12


cdef inline Py_ssize_t next_line(const unsigned char* buf, Py_ssize_t pos, Py_ssize_t n) noexcept nogil:
    """Offset just after the next newline at or after ``pos`` (``n`` when there is none)."""
    cdef const void* p
    if pos >= n:
        return n
    p = memchr(buf + pos, 10, n - pos)
    if p == NULL:
        return n
    return (<const unsigned char*> p - buf) + 1


cdef inline bint rest_is_blank(const unsigned char* buf, Py_ssize_t pos, Py_ssize_t n) noexcept nogil:
    while pos < n:
        if not (is_blank(buf[pos]) or buf[pos] == 10):
            return False
        pos += 1
    return True


cdef inline bint line_is_blank(const unsigned char* buf, Py_ssize_t pos, Py_ssize_t n) noexcept nogil:
    while pos < n and buf[pos] != 10:
        if not is_blank(buf[pos]):
            return False
        pos += 1
    return True


cdef inline int parse_double(const unsigned char* buf, Py_ssize_t* ppos, Py_ssize_t n, double* out) noexcept nogil:
    """Parse the number starting at ``*ppos`` (no leading blanks); advance ``*ppos`` past it.

    Correctly rounded: the Clinger fast path (≤ 19 significant digits,
    mantissa < 2**53, |exponent| ≤ 22) is exact; anything else (long
    mantissas, big exponents, nan, inf) goes through C ``strtod``.
    Fortran ``D`` exponents are accepted.  Returns 0 on success, 1 if the
    token is not a number.
    """
    cdef Py_ssize_t p = ppos[0], start = p, q
    cdef bint neg = False, any_digit = False, eneg = False
    cdef uint64_t mant = 0
    cdef int ndig = 0, exp10 = 0, e = 0, elen = 0
    cdef unsigned char c
    cdef char tmp[512]
    cdef char* endp
    cdef double v
    if p < n and (buf[p] == 45 or buf[p] == 43):  # - +
        neg = buf[p] == 45
        p += 1
    while p < n and 48 <= buf[p] <= 57:
        any_digit = True
        if mant != 0 or buf[p] != 48:
            if ndig < 19:
                mant = mant * 10 + (buf[p] - 48)
            else:
                exp10 += 1
            ndig += 1
        p += 1
    if p < n and buf[p] == 46:  # .
        p += 1
        while p < n and 48 <= buf[p] <= 57:
            any_digit = True
            if mant != 0 or buf[p] != 48:
                if ndig < 19:
                    mant = mant * 10 + (buf[p] - 48)
                    exp10 -= 1
                ndig += 1
            else:
                exp10 -= 1
            p += 1
    if any_digit and p < n and (buf[p] == 101 or buf[p] == 69 or buf[p] == 100 or buf[p] == 68):  # e E d D
        q = p + 1
        if q < n and (buf[q] == 45 or buf[q] == 43):
            eneg = buf[q] == 45
            q += 1
        while q < n and 48 <= buf[q] <= 57:
            if e < 100000:
                e = e * 10 + (buf[q] - 48)
            elen += 1
            q += 1
        if elen > 0:
            p = q
            exp10 = exp10 - e if eneg else exp10 + e
    if any_digit and (p >= n or is_blank(buf[p]) or buf[p] == 10):
        if mant == 0:
            out[0] = -0.0 if neg else 0.0
            ppos[0] = p
            return 0
        if ndig <= 19 and mant < (<uint64_t> 1 << 53) and -22 <= exp10 <= 22:
            v = <double> mant
            if exp10 < 0:
                v = v / POW10[-exp10]
            else:
                v = v * POW10[exp10]
            out[0] = -v if neg else v
            ppos[0] = p
            return 0
    # slow path: copy the token, NUL-terminate, strtod
    q = start
    while q < n and not (is_blank(buf[q]) or buf[q] == 10):
        q += 1
    if q - start == 0 or q - start >= 511:
        return 1
    memcpy(tmp, buf + start, q - start)
    tmp[q - start] = 0
    for p in range(q - start):
        if tmp[p] == 100 or tmp[p] == 68:
            tmp[p] = 101
    v = strtod(tmp, &endp)
    if endp != tmp + (q - start):
        return 1
    out[0] = v
    ppos[0] = q
    return 0


def parse_double_at(const unsigned char[::1] buf, Py_ssize_t pos):
    """Parse one number at ``pos`` (testing helper); returns ``(value, end)`` or raises ValueError."""
    cdef double v = 0.0
    cdef Py_ssize_t p = pos
    if parse_double(&buf[0], &p, buf.shape[0], &v):
        raise ValueError("not a number")
    return v, p


def skip_lines(const unsigned char[::1] buf, Py_ssize_t pos, Py_ssize_t n_lines):
    """Offset after ``n_lines`` lines from ``pos`` and the number of lines actually skipped."""
    cdef Py_ssize_t n = buf.shape[0], k = 0
    if n == 0:
        return pos, 0
    with nogil:
        while k < n_lines and pos < n:
            pos = next_line(&buf[0], pos, n)
            k += 1
    return pos, k


def count_newlines(const unsigned char[::1] buf, Py_ssize_t start, Py_ssize_t stop):
    """Number of newline bytes in ``buf[start:stop]`` (used for line numbers in error messages)."""
    cdef Py_ssize_t k = 0, p = start
    with nogil:
        while p < stop:
            p = next_line(&buf[0], p, stop)
            if p <= stop and buf[p - 1] == 10:
                k += 1
    return k


def index_xyz(const unsigned char[::1] buf,   # IN  whole file
              Py_ssize_t pos,                 # IN  offset of the first frame's count line
              Py_ssize_t n_atoms,             # IN  expected atom count (every frame)
              int64_t[::1] out):              # OUT frame start offsets
    """Record the offset of every XYZ frame (count line, comment line, ``n_atoms`` rows).

    Returns ``(n_found, status, pos, value)``: status 0 = end of file reached,
    1 = ``out`` is full (continue from ``pos``), 2 = the count line at ``pos``
    is not ``n_atoms`` (``value`` = the count read, −1 if not an integer),
    3 = the file ends inside the frame starting at ``pos`` (``value`` = its
    number of complete rows).
    """
    cdef Py_ssize_t n = buf.shape[0], k = 0, cap = out.shape[0], p, q, lines, cnt
    cdef const unsigned char* b
    cdef bint ok
    if n == 0:
        return 0, ST_OK, pos, 0
    b = &buf[0]
    while True:
        if rest_is_blank(b, pos, n):
            return k, ST_OK, pos, 0
        if k >= cap:
            return k, ST_FULL, pos, 0
        # count line: blanks, digits, blanks
        p = pos
        while p < n and is_blank(b[p]):
            p += 1
        cnt = 0
        ok = False
        while p < n and 48 <= b[p] <= 57:
            cnt = cnt * 10 + (b[p] - 48)
            ok = True
            p += 1
            if cnt > 1000000000000:
                break
        while p < n and is_blank(b[p]):
            p += 1
        if not ok or (p < n and b[p] != 10):
            return k, ST_BADHEAD, pos, -1
        if cnt != n_atoms:
            return k, ST_BADHEAD, pos, cnt
        q = pos
        lines = 0
        while lines < n_atoms + 2 and q < n:
            q = next_line(b, q, n)
            lines += 1
        if lines < n_atoms + 2:
            return k, ST_TRUNC, pos, max(lines - 2, 0)
        out[k] = pos
        k += 1
        pos = q


def index_xdatcar(const unsigned char[::1] buf,   # IN  whole file
                  Py_ssize_t pos,                 # IN  offset of the first frame (header or configuration line)
                  Py_ssize_t n_header,            # IN  header lines before each configuration line (0 = constant cell)
                  Py_ssize_t n_atoms,             # IN  rows per configuration
                  int64_t[::1] out):              # OUT frame start offsets
    """Record the offset of every XDATCAR frame.

    A frame is ``n_header`` lines (variable cell), a configuration line
    (``Direct configuration= …``, ``Cartesian configuration …``, ``Konfig=…``
    or a blank line) and ``n_atoms`` coordinate rows.  Returns
    ``(n_found, status, pos, value)`` as :func:`index_xyz`; status 2 means the
    configuration line at ``pos`` is none of the above.
    """
    cdef Py_ssize_t n = buf.shape[0], k = 0, cap = out.shape[0], p, q, lines, start
    cdef const unsigned char* b
    cdef unsigned char c
    if n == 0:
        return 0, ST_OK, pos, 0
    b = &buf[0]
    while True:
        if rest_is_blank(b, pos, n):
            return k, ST_OK, pos, 0
        if k >= cap:
            return k, ST_FULL, pos, 0
        start = pos
        q = pos
        lines = 0
        while lines < n_header and q < n:
            q = next_line(b, q, n)
            lines += 1
        if lines < n_header or q >= n:
            return k, ST_TRUNC, start, 0
        p = q
        while p < n and is_blank(b[p]):
            p += 1
        if p < n and b[p] != 10:
            c = b[p]
            if not (c == 68 or c == 100 or c == 67 or c == 99 or c == 75 or c == 107):
                return k, ST_BADHEAD, q, -1
        q = next_line(b, q, n)
        lines = 0
        while lines < n_atoms and q < n:
            q = next_line(b, q, n)
            lines += 1
        if lines < n_atoms:
            return k, ST_TRUNC, start, lines
        out[k] = start
        k += 1
        pos = q


cdef int _parse_frames(const unsigned char* b, Py_ssize_t n, const int64_t* offsets, Py_ssize_t nf,
                       Py_ssize_t skip, Py_ssize_t n_rows, const int64_t* colmap, Py_ssize_t ntok,
                       const int64_t* rowmap, double* out, Py_ssize_t s0, Py_ssize_t s1,
                       Py_ssize_t* err) noexcept nogil:
    """C loop of :func:`parse_frames`; ``out[f*s0 + row*s1 + col]``; on error fills err = (frame, row, pos, token)."""
    cdef Py_ssize_t f, r, j, pos, line_start, orow, col
    cdef double v = 0.0
    for f in range(nf):
        pos = offsets[f]
        for r in range(skip):
            pos = next_line(b, pos, n)
        for r in range(n_rows):
            if pos >= n:
                err[0] = f; err[1] = r; err[2] = pos; err[3] = 0
                return ST_TRUNC
            line_start = pos
            orow = rowmap[r]
            if orow < 0:
                pos = next_line(b, pos, n)
                continue
            for j in range(ntok):
                while pos < n and is_blank(b[pos]):
                    pos += 1
                if pos >= n or b[pos] == 10:
                    err[0] = f; err[1] = r; err[2] = line_start; err[3] = j
                    return ST_FEWTOK
                col = colmap[j]
                if col >= 0:
                    if parse_double(b, &pos, n, &v):
                        err[0] = f; err[1] = r; err[2] = line_start; err[3] = j
                        return ST_BADNUM
                    out[f * s0 + orow * s1 + col] = v
                else:
                    while pos < n and not (is_blank(b[pos]) or b[pos] == 10):
                        pos += 1
            pos = next_line(b, pos, n)
    return ST_OK


def parse_frames(const unsigned char[::1] buf,   # IN  whole file
                 const int64_t[::1] offsets,     # IN  (n_frames,) start offset of each frame to parse
                 Py_ssize_t skip,                # IN  lines to skip after each offset before the rows
                 Py_ssize_t n_rows,              # IN  rows per frame
                 const int64_t[::1] colmap,      # IN  (n_tokens,) token j → output column, −1 = skip the token
                 const int64_t[::1] rowmap,      # IN  (n_rows,) row r → output row, −1 = skip the line
                 double[:, :, ::1] out):         # OUT (n_frames, n_out_rows, n_out_cols)
    """Parse whitespace-separated numbers of ``n_rows`` rows per frame into ``out`` (releases the GIL).

    Each parsed row must have at least ``len(colmap)`` tokens; tokens after
    those are ignored.  Returns ``(status, frame, row, pos, token)``; on an
    error ``pos`` is the offset of the offending line and ``token`` the
    0-based token index (status 4: too few tokens, 5: not a number,
    3: the file ends inside the frame).
    """
    cdef Py_ssize_t n = buf.shape[0], nf = offsets.shape[0], ntok = colmap.shape[0]
    cdef Py_ssize_t err[4]
    cdef int st
    cdef double dummy = 0.0
    cdef double* o = &dummy
    cdef const int64_t* cm = NULL
    cdef const int64_t* rm = NULL
    if nf == 0:
        return ST_OK, 0, 0, 0, 0
    if n == 0:
        return ST_TRUNC, 0, 0, 0, 0
    if out.shape[0] * out.shape[1] * out.shape[2] > 0:
        o = &out[0, 0, 0]
    if ntok > 0:
        cm = &colmap[0]
    if n_rows > 0:
        rm = &rowmap[0]
    err[0] = err[1] = err[2] = err[3] = 0
    with nogil:
        st = _parse_frames(&buf[0], n, &offsets[0], nf, skip, n_rows, cm, ntok, rm, o,
                           out.shape[1] * out.shape[2], out.shape[2], err)
    return st, err[0], err[1], err[2], err[3]


def token_spans(const unsigned char[::1] buf,   # IN  whole file
                Py_ssize_t pos,                 # IN  offset of the first row
                Py_ssize_t n_rows,              # IN  rows
                Py_ssize_t tok,                 # IN  0-based token index on each row
                int64_t[::1] starts,            # OUT (n_rows,) token start offsets (−1: row too short)
                int64_t[::1] stops):            # OUT (n_rows,) token end offsets
    """Locate token ``tok`` of ``n_rows`` consecutive rows (species names); returns the offset after the rows."""
    cdef Py_ssize_t n = buf.shape[0], r, j, s
    cdef const unsigned char* b
    if n == 0:
        starts[:] = -1
        return pos
    b = &buf[0]
    with nogil:
        for r in range(n_rows):
            starts[r] = -1
            stops[r] = -1
            if pos >= n:
                continue
            for j in range(tok + 1):
                while pos < n and is_blank(b[pos]):
                    pos += 1
                if pos >= n or b[pos] == 10:
                    break
                s = pos
                while pos < n and not (is_blank(b[pos]) or b[pos] == 10):
                    pos += 1
                if j == tok:
                    starts[r] = s
                    stops[r] = pos
            pos = next_line(b, pos, n)
    return pos
