# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""LAMMPS dump text: frame-index scan and number parsing in C (no Python per line or atom).

Two entry points do the work:

* :func:`scan_frames` walks a block of the (decompressed) file, finds every
  complete frame (``ITEM:`` header blocks followed by ``NUMBER OF ATOMS``
  atom lines) and records its byte offsets, step, atom count, box lines and a
  hash of the ``ITEM: ATOMS`` column header.  Atom lines are skipped with
  ``memchr``; no number on them is parsed.
* :func:`parse_frames` parses the atom lines of a run of frames into a
  preallocated ``(n_frames, n_out, n_vals)`` float64 array, placing every atom
  at its index in id order (``id → index`` table) and checking for duplicate
  and unknown ids.

Floats are parsed by a fast path (Clinger: at most 19 significant digits,
mantissa ≤ 2^53 and |exponent| ≤ 22 give the correctly rounded double with one
multiplication or division) with a fallback to ``strtod`` for everything else
(long mantissas, large exponents, ``nan``, ``inf``), so results equal ``strtod``
bit for bit.

Status codes returned by the functions (the Python reader turns them into
TrajectoryError messages):

==  ====================================================================
0   ok
1   a line that should start with ``ITEM:`` does not
2   an unknown ``ITEM:`` header
3   a bad number in a header (TIMESTEP, NUMBER OF ATOMS, BOX BOUNDS, TIME)
4   ``ITEM: ATOMS`` before TIMESTEP / NUMBER OF ATOMS / BOX BOUNDS
5   truncated: the file ends inside a frame (header or atom lines)
6   output capacity reached (not an error: call again)
10  wrong number of columns on an atom line
11  a bad number on an atom line
12  a bad atom id (not a positive integer)
13  an atom id that is not in the first frame
14  an atom id that appears twice in a frame
==  ====================================================================
"""

from libc.stdlib cimport strtod
from libc.string cimport memchr, memcmp, memcpy
from libc.stdint cimport int64_t, uint64_t, int32_t, uint8_t

cdef double NAN = float("nan")

cdef double[23] POW10
cdef uint64_t[19] IPOW10
cdef int _i
POW10[0] = 1.0
IPOW10[0] = 1
for _i in range(1, 23):
    POW10[_i] = POW10[_i - 1] * 10.0
for _i in range(1, 19):
    IPOW10[_i] = IPOW10[_i - 1] * 10

cdef enum:
    ROLE_SKIP = -1
    ROLE_ID = -2


cdef extern from *:
    """
    #include <string.h>
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    #if defined(_MSC_VER)
    #include <intrin.h>
    static __inline int am_ctz64(unsigned long long x) { unsigned long i; _BitScanForward64(&i, x); return (int)i; }
    #else
    static inline int am_ctz64(unsigned long long x) { return __builtin_ctzll(x); }
    #endif

    /* Pointer just past the n-th newline at or after p, or NULL when the buffer ends first
       (*found then holds the newlines seen).  SSE2 compares 16 bytes at a time; memchr elsewhere. */
    static const unsigned char* am_skip_lines(const unsigned char* p, const unsigned char* end,
                                              long long n, long long* found) {
        long long k = 0;
        *found = 0;
        if (n <= 0) return p;
    #if defined(__SSE2__)
        {
            const __m128i nl = _mm_set1_epi8('\\n');
            while (end - p >= 16) {
                __m128i v = _mm_loadu_si128((const __m128i*)p);
                unsigned int m = (unsigned int)_mm_movemask_epi8(_mm_cmpeq_epi8(v, nl));
                int c = __builtin_popcount(m);
                if (k + c >= n) {
                    long long r = n - k;
                    while (--r) m &= m - 1;
                    return p + __builtin_ctz(m) + 1;
                }
                k += c;
                p += 16;
            }
        }
    #endif
        while (p < end) {
            const unsigned char* q = (const unsigned char*)memchr(p, '\\n', (size_t)(end - p));
            if (!q) break;
            k++;
            p = q + 1;
            if (k == n) return p;
        }
        *found = k;
        return NULL;
    }
    """
    int am_ctz64(unsigned long long x) noexcept nogil
    const unsigned char* am_skip_lines(const unsigned char* p, const unsigned char* end, long long n,
                                       long long* found) noexcept nogil


cdef inline bint is_space(unsigned char c) noexcept nogil:
    # every control character but the newline counts as blank (binary input is refused before parsing)
    return c <= 32 and c != 10


cdef inline bint is_delim(unsigned char c) noexcept nogil:
    return c <= 32


cdef inline const unsigned char* skip_token(const unsigned char* p, const unsigned char* end) noexcept nogil:
    """Pointer to the first byte ≤ 32 (blank, newline) at or after p, or end (SWAR, 8 bytes at a time)."""
    cdef uint64_t x, m
    while end - p >= 8:
        memcpy(&x, p, 8)
        m = (x - 0x2121212121212121ULL) & ~x & 0x8080808080808080ULL
        if m:
            return p + (am_ctz64(m) >> 3)
        p += 8
    while p < end and p[0] > 32:
        p += 1
    return p



cdef inline int swar_digits(const unsigned char* p, uint64_t* value) noexcept nogil:
    """Count the leading decimal digits among p[0..7] (8 readable bytes needed) and convert them.

    Returns the count n (0..8); ``value`` receives the integer they spell when 0 < n < 8.
    SWAR digit test and the 8-digit conversion of simdjson (parse_eight_digits_unrolled).
    """
    cdef uint64_t x, t, mask
    cdef int n
    memcpy(&x, p, 8)
    t = x - 0x3030303030303030ULL
    mask = (t | (t + 0x7676767676767676ULL)) & 0x8080808080808080ULL
    if mask == 0:
        return 8
    n = am_ctz64(mask) >> 3
    if n == 0:
        value[0] = 0
        return 0
    t = t << (8 * (8 - n))
    t = t * 10 + (t >> 8)
    t = (((t & 0x000000FF000000FFULL) * 0x000F424000000064ULL)
         + (((t >> 16) & 0x000000FF000000FFULL) * 0x0000271000000001ULL)) >> 32
    value[0] = t
    return n


cdef int parse_double(const unsigned char* p, const unsigned char* end, double* out,
                      const unsigned char** after) noexcept nogil:
    """Parse one float token starting at ``p``; 0 on success, -1 on a malformed token.

    The token ends at whitespace or ``end``.  ``after`` receives the position
    just past the token.
    """
    cdef const unsigned char* s = p
    cdef const unsigned char* q
    cdef bint neg = False
    cdef uint64_t m = 0
    cdef int nd = 0, exp10 = 0, e = 0, ndig = 0
    cdef bint eneg = False, exact = True
    cdef unsigned char c
    cdef double v
    cdef char tmp[512]
    cdef char* endp
    cdef Py_ssize_t n
    cdef uint64_t ip, fp
    cdef int n1, n2
    if end - p >= 18:
        # fast path for the usual %g / %f tokens: ≤ 7 integer and ≤ 7 fraction digits (SWAR)
        q = p
        if q[0] == 45 or q[0] == 43:
            neg = q[0] == 45
            q += 1
        n1 = swar_digits(q, &ip)
        if n1 < 8:
            q += n1
            n2 = 0
            fp = 0
            if q[0] == 46:
                q += 1
                n2 = swar_digits(q, &fp)
                q += n2
            if n2 < 8 and n1 + n2 > 0:
                m = ip * IPOW10[n2] + fp if n2 else ip
                exp10 = -n2
                if (q[0] == 101 or q[0] == 69):
                    q += 1
                    eneg = False
                    if q < end and (q[0] == 45 or q[0] == 43):
                        eneg = q[0] == 45
                        q += 1
                    n = 0
                    e = 0
                    while q < end and n < 4:
                        c = q[0] - 48
                        if c > 9:
                            break
                        e = e * 10 + c
                        n += 1
                        q += 1
                    if n == 0 or n == 4:
                        exp10 = 1000      # force the slow path
                    exp10 += -e if eneg else e
                if (q >= end or is_delim(q[0])) and -22 <= exp10 <= 22:
                    v = <double><int64_t>m      # m < 10^14: exact, and the signed conversion is one instruction
                    if exp10 < 0:
                        v = v / POW10[-exp10]
                    elif exp10 > 0:
                        v = v * POW10[exp10]
                    out[0] = -v if neg else v
                    after[0] = q
                    return 0
        neg = False
        m = 0
        exp10 = 0
        e = 0
        eneg = False
    if p < end and (p[0] == 45 or p[0] == 43):   # '-' '+'
        neg = p[0] == 45
        p += 1
    while p < end:
        c = p[0] - 48
        if c > 9:
            break
        ndig += 1
        if m == 0 and c == 0:
            pass
        elif nd < 19:
            m = m * 10 + c
            nd += 1
        else:
            exp10 += 1
            if c != 0:
                exact = False
        p += 1
    if p < end and p[0] == 46:   # '.'
        p += 1
        while p < end:
            c = p[0] - 48
            if c > 9:
                break
            ndig += 1
            if m == 0 and c == 0:
                exp10 -= 1
            elif nd < 19:
                m = m * 10 + c
                nd += 1
                exp10 -= 1
            elif c != 0:
                exact = False
            p += 1
    if ndig == 0:
        exact = False
    elif p < end and (p[0] == 101 or p[0] == 69):   # 'e' 'E'
        p += 1
        if p < end and (p[0] == 45 or p[0] == 43):
            eneg = p[0] == 45
            p += 1
        n = 0
        while p < end:
            c = p[0] - 48
            if c > 9:
                break
            if e < 100000:
                e = e * 10 + c
            n += 1
            p += 1
        if n == 0:
            exact = False
        exp10 += -e if eneg else e
    if exact and (p >= end or is_delim(p[0])):
        if m == 0:
            out[0] = -0.0 if neg else 0.0
            after[0] = p
            return 0
        if m <= 9007199254740992ULL and -22 <= exp10 <= 22:
            v = <double>m
            if exp10 < 0:
                v = v / POW10[-exp10]
            else:
                v = v * POW10[exp10]
            out[0] = -v if neg else v
            after[0] = p
            return 0
    # slow path: copy the whole token and use strtod (nan, inf, long mantissas, huge exponents)
    p = s
    while p < end and not is_delim(p[0]):
        p += 1
    n = p - s
    if n == 0 or n > 511:
        after[0] = p
        return -1
    memcpy(tmp, s, n)
    tmp[n] = 0
    v = strtod(tmp, &endp)
    if endp != tmp + n:
        after[0] = p
        return -1
    out[0] = v
    after[0] = p
    return 0


cdef int parse_int(const unsigned char* p, const unsigned char* end, int64_t* out,
                   const unsigned char** after) noexcept nogil:
    """Parse a (possibly signed) decimal integer token; -1 when malformed or too long."""
    cdef bint neg = False
    cdef int64_t v = 0
    cdef int n = 0
    cdef unsigned char c
    cdef uint64_t sv
    if p < end and (p[0] == 45 or p[0] == 43):
        neg = p[0] == 45
        p += 1
    if end - p >= 8:
        n = swar_digits(p, &sv)
        if 0 < n < 8 and (p + n >= end or is_delim(p[n])):
            after[0] = p + n
            out[0] = -<int64_t>sv if neg else <int64_t>sv
            return 0
        n = 0
    while p < end:
        c = p[0] - 48
        if c > 9:
            break
        v = v * 10 + c
        n += 1
        p += 1
    after[0] = p
    if n == 0 or n > 18 or (p < end and not is_delim(p[0])):
        while p < end and not is_delim(p[0]):
            p += 1
        after[0] = p
        return -1
    out[0] = -v if neg else v
    return 0


cdef inline const unsigned char* skip_space(const unsigned char* p, const unsigned char* end) noexcept nogil:
    while p < end and is_space(p[0]):
        p += 1
    return p


cdef inline bint starts_with(const unsigned char* p, const unsigned char* end, const char* lit, int n) noexcept nogil:
    return end - p >= n and memcmp(p, lit, n) == 0


cdef inline const unsigned char* line_end(const unsigned char* p, const unsigned char* end) noexcept nogil:
    """Pointer to the '\\n' ending the line at p, or NULL when the buffer ends first."""
    return <const unsigned char*>memchr(p, 10, end - p)


cdef int count_tokens(const unsigned char* p, const unsigned char* e) noexcept nogil:
    cdef int n = 0
    while True:
        p = skip_space(p, e)
        if p >= e:
            return n
        n += 1
        while p < e and not is_delim(p[0]):
            p += 1


def scan_frames(const unsigned char[::1] buf,     # IN  decompressed bytes, starting at a frame start
                int64_t base,                     # IN  absolute offset of buf[0] in the file
                int64_t line0,                    # IN  1-based line number of buf[0]
                bint at_eof,                      # IN  buf reaches the end of the file
                int64_t[:, ::1] ints,             # OUT (cap, 9): offset, atoms_offset, end_offset, step, natoms,
                                                  #     line, header_hash, atoms_header_offset, first atom line
                double[:, ::1] box,               # OUT (cap, 16): lo, hi, tilt for x, y, z (9), box kind, time,
                                                  #     units offset, n_columns, origin (3, kind 2 only)
                int64_t[::1] status):             # OUT (5,): code, frames found, bytes consumed, lines consumed,
                                                  #     error line (absolute)
    """Find the complete frames in ``buf``; see the module docstring for the codes.

    Frames are recorded until the buffer ends (the incomplete tail is left
    for the next call: ``bytes consumed`` is the start of the first frame not
    recorded), the output capacity is reached (code 6), or an error.  With
    ``at_eof`` an incomplete tail is reported as code 5 (truncated) after the
    complete frames.  Box kind: 0 orthogonal (rows lo hi 0), 1 triclinic
    (rows lo_bound hi_bound tilt, tilts xy xz yz), 2 general (``abc origin``:
    rows a, b, c, origin in columns 13..15).
    """
    cdef const unsigned char* b0 = &buf[0] if buf.shape[0] > 0 else NULL
    cdef const unsigned char* end = b0 + buf.shape[0]
    cdef const unsigned char* p = b0
    cdef const unsigned char* q
    cdef const unsigned char* r
    cdef const unsigned char* frame_start
    cdef const unsigned char* after
    cdef Py_ssize_t cap = ints.shape[0], nf = 0
    cdef int64_t line = line0, fline, k, natoms = 0, step = 0, ival
    cdef int code = 0, kind = 0, j, ntok, ncol
    cdef bint have_step, have_n, have_box, have_atoms, incomplete
    cdef double time, units_off, dv
    cdef long long found = 0
    cdef uint64_t h
    cdef double vals[4]
    status[4] = 0
    if buf.shape[0] == 0:
        status[0] = 0
        status[1] = 0
        status[2] = 0
        status[3] = 0
        return
    with nogil:
        while True:
            # skip blank lines between frames
            while p < end:
                q = skip_space(p, end)
                if q < end and q[0] == 10:
                    p = q + 1
                    line += 1
                elif q >= end and at_eof:
                    p = end
                else:
                    break
            if p >= end:
                code = 0
                break
            if nf >= cap:
                code = 6
                break
            frame_start = p
            fline = line
            have_step = have_n = have_box = have_atoms = incomplete = False
            time = NAN
            units_off = -1.0
            kind = 0
            for j in range(16):
                box[nf, j] = 0.0
            while not have_atoms:
                if p >= end:
                    incomplete = True
                    break
                q = line_end(p, end)
                if q == NULL and not at_eof:
                    incomplete = True
                    break
                if q == NULL:
                    q = end
                if not starts_with(p, q, b"ITEM:", 5):
                    code = 1
                    break
                r = skip_space(p + 5, q)
                if starts_with(r, q, b"TIMESTEP", 8):
                    kind = 10
                elif starts_with(r, q, b"NUMBER OF ATOMS", 15):
                    kind = 11
                elif starts_with(r, q, b"BOX BOUNDS", 10):
                    kind = 12
                elif starts_with(r, q, b"ATOMS", 5):
                    kind = 13
                elif starts_with(r, q, b"TIME", 4):
                    kind = 14
                elif starts_with(r, q, b"UNITS", 5):
                    kind = 15
                else:
                    if q == end and at_eof and (end == b0 or (end - 1)[0] != 10):
                        incomplete = True     # a header cut at the end of the file
                        break
                    code = 2
                    break
                if kind == 13:
                    if not (have_step and have_n and have_box):
                        code = 4
                        break
                    # column header: hash and count the names
                    r = r + 5
                    ints[nf, 7] = base + (r - b0)
                    h = 1469598103934665603ULL
                    ncol = 0
                    while True:
                        r = skip_space(r, q)
                        if r >= q:
                            break
                        ncol += 1
                        while r < q and not is_delim(r[0]):
                            h = (h ^ r[0]) * 1099511628211ULL
                            r += 1
                        h = (h ^ 32) * 1099511628211ULL
                    ints[nf, 6] = <int64_t>(h >> 1)
                    box[nf, 12] = ncol
                    p = q + 1 if q < end else end
                    line += 1
                    ints[nf, 1] = base + (p - b0)
                    ints[nf, 8] = line
                    # skip natoms lines (16 bytes at a time with SSE2)
                    r = am_skip_lines(p, end, natoms, &found)
                    if r != NULL:
                        p = r
                        line += natoms
                    else:
                        # the buffer ends first; at the end of the file a last line without its newline
                        # but with every column still completes the frame
                        if at_eof and found == natoms - 1:
                            q = end
                            while q > p and (q - 1)[0] != 10:
                                q -= 1
                            if q < end and count_tokens(q, end) == ncol:
                                p = end
                                line += natoms
                            else:
                                incomplete = True
                        else:
                            incomplete = True
                    if incomplete:
                        break
                    have_atoms = True
                    break
                # the items with value lines
                if kind == 12:
                    r = r + 10
                    # "xy xz yz" → triclinic, "abc origin" → general triclinic
                    while r < q:
                        if starts_with(r, q, b"xy", 2):
                            box[nf, 9] = 1.0
                        elif starts_with(r, q, b"abc", 3):
                            box[nf, 9] = 2.0
                        r += 1
                    ncol = 3 if box[nf, 9] == 1.0 else (4 if box[nf, 9] == 2.0 else 2)
                    p = q + 1 if q < end else end
                    line += 1
                    for j in range(3):
                        q = line_end(p, end)
                        if q == NULL and not at_eof:
                            incomplete = True
                            break
                        if q == NULL:
                            if p >= end:
                                incomplete = True
                                break
                            q = end
                        r = p
                        for ntok in range(ncol):
                            r = skip_space(r, q)
                            if r >= q or parse_double(r, q, &vals[ntok], &after) != 0:
                                if r >= q and ntok == 2 and ncol == 3:
                                    vals[2] = 0.0     # tolerate a missing tilt (never written by LAMMPS)
                                    break
                                code = 3
                                break
                            r = after
                        if code != 0:
                            break
                        box[nf, 3 * j] = vals[0]
                        box[nf, 3 * j + 1] = vals[1]
                        box[nf, 3 * j + 2] = vals[2] if ncol >= 3 else 0.0
                        if ncol == 4:
                            box[nf, 13 + j] = vals[3]
                        p = q + 1 if q < end else end
                        line += 1
                    if code != 0 or incomplete:
                        break
                    have_box = True
                    continue
                # one value line
                p = q + 1 if q < end else end
                line += 1
                q = line_end(p, end)
                if q == NULL and not at_eof:
                    incomplete = True
                    break
                if q == NULL:
                    if p >= end:
                        incomplete = True
                        break
                    q = end
                r = skip_space(p, q)
                if kind == 10:
                    if parse_int(r, q, &ival, &after) != 0 or skip_space(after, q) < q:
                        code = 3
                        break
                    step = ival
                    have_step = True
                elif kind == 11:
                    if parse_int(r, q, &ival, &after) != 0 or ival < 0 or skip_space(after, q) < q:
                        code = 3
                        break
                    natoms = ival
                    have_n = True
                elif kind == 14:
                    if parse_double(r, q, &dv, &after) != 0:
                        code = 3
                        break
                    time = dv
                elif kind == 15:
                    units_off = <double>(base + (r - b0))
                p = q + 1 if q < end else end
                line += 1
            if code != 0 and code != 6 and at_eof and p < end and line_end(p, end) == NULL:
                # the offending line is the last one and has no newline: the file was cut there
                code = 0
                incomplete = True
            if code != 0:
                status[4] = line
                p = frame_start
                line = fline
                break
            if incomplete:
                p = frame_start
                line = fline
                code = 5 if at_eof else 0
                status[4] = fline if at_eof else 0
                break
            ints[nf, 0] = base + (frame_start - b0)
            ints[nf, 2] = base + (p - b0)
            ints[nf, 3] = step
            ints[nf, 4] = natoms
            ints[nf, 5] = fline
            box[nf, 10] = time
            box[nf, 11] = units_off
            nf += 1
    status[0] = code
    status[1] = nf
    status[2] = p - b0
    status[3] = line - line0


def parse_frames(const unsigned char[::1] buf,      # IN  bytes holding the frames
                 const int64_t[::1] starts,         # IN  (n_frames,) offset in buf of each frame's first atom line
                 int64_t natoms,                    # IN  atom lines per frame
                 const int32_t[::1] roles,          # IN  (n_columns,) -2 id, -1 skip, k ≥ 0 value slot k
                 const int64_t[::1] id2idx,         # IN  (max_id + 1,) index in id order, -1 for unknown ids
                 const int64_t[::1] idx2out,        # IN  (n_atoms,) output row of each atom, -1 = not wanted
                 double[:, :, ::1] out,             # OUT (n_frames, n_out, n_vals)
                 int64_t[::1] seen,                 # IN/OUT (n_atoms,) scratch: frame stamp of each atom
                 int64_t stamp0,                    # IN  stamp of the first frame (must exceed every value in seen)
                 int64_t[::1] err):                 # OUT (4,): frame, atom line (0-based), column, value (id)
    """Parse the atom lines of ``n_frames`` frames into ``out``; returns a status code (module docstring)."""
    cdef const unsigned char* b0 = &buf[0] if buf.shape[0] > 0 else NULL
    cdef const unsigned char* end = b0 + buf.shape[0]
    cdef const unsigned char* p
    cdef const unsigned char* after
    cdef const unsigned char* q
    cdef Py_ssize_t nfr = starts.shape[0], ncol = roles.shape[0], nid = id2idx.shape[0]
    cdef Py_ssize_t f, k, c, o, nv = out.shape[2], j
    cdef int64_t ident = 0, idx, stamp
    cdef int role, code = 0
    cdef double v
    cdef double vals[64]
    if nv > 64:
        raise ValueError("at most 64 value columns")
    with nogil:
        for f in range(nfr):
            stamp = stamp0 + f
            p = b0 + starts[f]
            for k in range(natoms):
                o = -1
                idx = -1
                c = 0
                while True:
                    while p < end and is_space(p[0]):
                        p += 1
                    if p >= end or p[0] == 10:
                        break
                    if c >= ncol:
                        code = 10
                        break
                    role = roles[c]
                    if role >= 0:
                        if parse_double(p, end, &v, &after) != 0:
                            code = 11
                            break
                        vals[role] = v
                        p = after
                    elif role == ROLE_ID:
                        if parse_int(p, end, &ident, &after) != 0 or ident <= 0:
                            code = 12
                            break
                        p = after
                        if ident >= nid or id2idx[ident] < 0:
                            code = 13
                            break
                        idx = id2idx[ident]
                        if seen[idx] == stamp:
                            code = 14
                            break
                        seen[idx] = stamp
                        o = idx2out[idx]
                        if o < 0:
                            # atom not wanted: skip the rest of the line
                            q = line_end(p, end)
                            p = end if q == NULL else q
                            c = ncol
                            break
                    else:
                        p = skip_token(p, end)
                    c += 1
                if code != 0:
                    err[0] = f
                    err[1] = k
                    err[2] = c
                    err[3] = ident if code >= 13 else 0
                    break
                if c != ncol:
                    code = 10
                    err[0] = f
                    err[1] = k
                    err[2] = c
                    err[3] = 0
                    break
                if o >= 0:
                    for j in range(nv):
                        out[f, o, j] = vals[j]
                if p < end:
                    p += 1
            if code != 0:
                break
    return code


def parse_columns(const unsigned char[::1] buf,    # IN  bytes of one frame's atom lines (from the first one)
                  int64_t natoms,                  # IN  number of lines
                  const int32_t[::1] roles,        # IN  (n_columns,) -1 skip, k ≥ 0 value slot k (no id role)
                  double[:, ::1] out,              # OUT (natoms, n_vals) in file order
                  int64_t[::1] err):               # OUT (4,): 0, line, column, 0
    """Parse numeric columns of one frame in file order (ids, types, masses of the first frame)."""
    cdef const unsigned char* b0 = &buf[0] if buf.shape[0] > 0 else NULL
    cdef const unsigned char* end = b0 + buf.shape[0]
    cdef const unsigned char* p = b0
    cdef const unsigned char* after
    cdef Py_ssize_t ncol = roles.shape[0], k, c
    cdef int role, code = 0
    cdef double v
    with nogil:
        for k in range(natoms):
            c = 0
            while True:
                while p < end and is_space(p[0]):
                    p += 1
                if p >= end or p[0] == 10:
                    break
                if c >= ncol:
                    code = 10
                    break
                role = roles[c]
                if role >= 0:
                    if parse_double(p, end, &v, &after) != 0:
                        code = 11
                        break
                    out[k, role] = v
                    p = after
                else:
                    p = skip_token(p, end)
                c += 1
            if code == 0 and c != ncol:
                code = 10
            if code != 0:
                err[0] = 0
                err[1] = k
                err[2] = c
                err[3] = 0
                break
            if p < end:
                p += 1
    return code


def column_tokens(const unsigned char[::1] buf,    # IN  bytes of one frame's atom lines
                  int64_t natoms,                  # IN  number of lines
                  Py_ssize_t col,                  # IN  0-based column
                  uint8_t[:, ::1] out):            # OUT (natoms, width) token bytes, zero padded (truncated to width)
    """Copy the text of column ``col`` of every atom line (element names); returns 0 or 10 (short line)."""
    cdef const unsigned char* b0 = &buf[0] if buf.shape[0] > 0 else NULL
    cdef const unsigned char* end = b0 + buf.shape[0]
    cdef const unsigned char* p = b0
    cdef const unsigned char* s
    cdef const unsigned char* q
    cdef Py_ssize_t k, c, w = out.shape[1], n, j
    cdef int code = 0
    with nogil:
        for k in range(natoms):
            c = 0
            while True:
                while p < end and is_space(p[0]):
                    p += 1
                if p >= end or p[0] == 10:
                    code = 10
                    break
                s = p
                while p < end and not is_delim(p[0]):
                    p += 1
                if c == col:
                    n = p - s
                    if n > w:
                        n = w
                    for j in range(n):
                        out[k, j] = s[j]
                    break
                c += 1
            if code != 0:
                break
            q = line_end(p, end)
            p = end if q == NULL else q + 1
    return code


def parse_float_tokens(const unsigned char[::1] buf, double[::1] out):
    """Parse whitespace-separated floats of ``buf`` into ``out`` (test hook for the float parser).

    Returns the number parsed, or -(1 + index) of the first malformed token.
    """
    cdef const unsigned char* b0 = &buf[0] if buf.shape[0] > 0 else NULL
    cdef const unsigned char* end = b0 + buf.shape[0]
    cdef const unsigned char* p = b0
    cdef const unsigned char* after
    cdef Py_ssize_t n = 0
    cdef double v
    while True:
        while p < end and is_delim(p[0]):
            p += 1
        if p >= end or n >= out.shape[0]:
            break
        if parse_double(p, end, &v, &after) != 0:
            return -(1 + n)
        out[n] = v
        n += 1
        p = after
    return n
