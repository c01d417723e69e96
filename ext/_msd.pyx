# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Non-FFT parts of the exact all-origin MSD (SPEC §2).

The MSD of a selection is computed in atom blocks.  For each block the caller
gathers every atom's x, y and z series into rows of a zero-padded buffer
(:func:`gather_block_tm` from time-major positions, :func:`gather_block_am`
from an atom-major scratch file), transforms the rows with scipy.fft, and
adds |FFT|² of each row into one spectrum per direction
(:func:`accumulate_power`).  The per-frame sums of squares collected while
gathering give S1 through the Kneller–Calandrini recursion
(:func:`s1_recursion`).  Atoms are always visited in the same order, one after
the other, so the floating-point sums do not depend on the block size.

:func:`msd_pairs` is the exact O(n_frames² · n_atoms) loop for frames that are
not evenly spaced, grouping frame pairs by their (quantised) time difference.
"""

from libc.stdlib cimport calloc, free


cdef inline void _finish_row(double[:, ::1] buf, Py_ssize_t r, Py_ssize_t n_frames, Py_ssize_t k, double total,
                             double[:, ::1] sq, double[:, ::1] ends) noexcept nogil:
    # centre row r on its time average (total / n_frames), accumulate squares and the end-to-end displacement
    cdef Py_ssize_t t
    cdef double mean = total / n_frames, v
    for t in range(n_frames):
        v = buf[r, t] - mean
        buf[r, t] = v
        sq[k, t] += v * v
    v = buf[r, n_frames - 1] - buf[r, 0]
    ends[0, k] += v * v


def gather_block_tm(const double[:, :, ::1] pos,    # IN  (n_frames, n_atoms, 3) Å, time-major
                    Py_ssize_t a0,                  # IN  first atom of the block
                    Py_ssize_t n_block,             # IN  atoms in the block
                    const double[:, ::1] drift,     # IN  (n_frames, 3) Å subtracted from every atom, or (0, 3)
                    double[:, ::1] buf,             # OUT (>= 3·n_block, L >= n_frames) rows 3j+k: centred series
                    double[:, ::1] sq,              # IN/OUT (3, n_frames) Σ over atoms of the centred values²
                    double[:, ::1] ends):           # IN/OUT (1, 3) Σ over atoms of (x(T−1) − x(0))²
    """Gather atoms a0..a0+n_block−1 of time-major positions into centred rows; no validation here.

    Columns ``n_frames:`` of ``buf`` are not written: the caller keeps them zero (the zero padding).
    Each row's sum runs over t = 0 … T−1 in order, as in :func:`gather_block_am`, so both give the
    same bits.
    """
    cdef Py_ssize_t n_frames = pos.shape[0], t, j, k, t0, t1, r
    cdef bint use_drift = drift.shape[0] > 0
    cdef double v
    cdef double *tot
    if n_frames == 0 or n_block == 0:
        return
    tot = <double *> calloc(3 * n_block, sizeof(double))
    if tot == NULL:
        raise MemoryError()
    try:
        with nogil:
            # transpose in tiles of 64 frames: the tile of ``pos`` stays in cache while each row is written
            # contiguously; the row sums are accumulated on the way
            for t0 in range(0, n_frames, 64):
                t1 = t0 + 64 if t0 + 64 < n_frames else n_frames
                for j in range(n_block):
                    for k in range(3):
                        r = 3 * j + k
                        for t in range(t0, t1):
                            if use_drift:
                                v = pos[t, a0 + j, k] - drift[t, k]
                            else:
                                v = pos[t, a0 + j, k]
                            buf[r, t] = v
                            tot[r] += v
            for j in range(n_block):
                for k in range(3):
                    _finish_row(buf, 3 * j + k, n_frames, k, tot[3 * j + k], sq, ends)
    finally:
        free(tot)


def gather_block_am(const double[:, :, ::1] src,    # IN  (n_block, 3, n_frames) Å, atom-major (drift already removed)
                    double[:, ::1] buf,             # OUT (>= 3·n_block, L >= n_frames); columns n_frames: kept zero
                    double[:, ::1] sq,              # IN/OUT (3, n_frames)
                    double[:, ::1] ends):           # IN/OUT (1, 3)
    """Gather atom-major series (a block read from the scratch file) into centred rows; no validation here."""
    cdef Py_ssize_t n_block = src.shape[0], n_frames = src.shape[2], t, j, k
    cdef double v, total
    if n_frames == 0:
        return
    with nogil:
        for j in range(n_block):
            for k in range(3):
                total = 0.0
                for t in range(n_frames):
                    v = src[j, k, t]
                    buf[3 * j + k, t] = v
                    total += v
                _finish_row(buf, 3 * j + k, n_frames, k, total, sq, ends)


def subtract_drift_am(double[:, :, ::1] block,      # IN/OUT (n_atoms, 3, n_frames) Å
                      const double[:, ::1] drift,   # IN  (n_frames, 3) Å
                      Py_ssize_t t0):               # IN  frame of block[..., 0] in drift
    """block[i, k, t] −= drift[t0 + t, k] (the same subtraction as :func:`gather_block_tm`)."""
    cdef Py_ssize_t n_atoms = block.shape[0], n_frames = block.shape[2], i, k, t
    with nogil:
        for i in range(n_atoms):
            for k in range(3):
                for t in range(n_frames):
                    block[i, k, t] = block[i, k, t] - drift[t0 + t, k]


def accumulate_power(const double complex[:, ::1] F,   # IN  (>= 3·n_block, n_freq) rfft of the rows
                     Py_ssize_t n_block,               # IN  atoms in the block
                     double[:, ::1] power):            # IN/OUT (3, n_freq) Σ over atoms |F|² per direction
    """power[k, f] += |F[3j+k, f]|², atoms in order; no validation here."""
    cdef Py_ssize_t n_freq = F.shape[1], j, k, f
    cdef double complex z
    with nogil:
        for j in range(n_block):
            for k in range(3):
                for f in range(n_freq):
                    z = F[3 * j + k, f]
                    power[k, f] += z.real * z.real + z.imag * z.imag


def s1_recursion(const double[:, ::1] sq,          # IN  (3, n_frames) Σ over atoms of x(t)²
                 double[:, ::1] out):               # OUT (3, n_frames) S1(m) = Σ_{t=0}^{T−1−m} [d(t) + d(t+m)]
    """Kneller–Calandrini recursion S1(0) = 2 Σ d, S1(m) = S1(m−1) − d(m−1) − d(T−m)."""
    cdef Py_ssize_t n = sq.shape[1], k, m
    cdef double s
    with nogil:
        for k in range(3):
            if n == 0:
                continue
            s = 0.0
            for m in range(n):
                s += sq[k, m]
            s = 2.0 * s
            out[k, 0] = s
            for m in range(1, n):
                s = s - sq[k, m - 1] - sq[k, n - m]
                out[k, m] = s


cdef inline Py_ssize_t _find(const long long[::1] keys, long long key) noexcept nogil:
    cdef Py_ssize_t lo = 0, hi = keys.shape[0] - 1, mid
    while lo <= hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        elif keys[mid] > key:
            hi = mid - 1
        else:
            return mid
    return -1


def msd_pairs(const double[:, :, ::1] pos,          # IN  (n_frames, n_atoms, 3) Å
              const double[::1] times,              # IN  (n_frames,) ps, increasing
              const long long[::1] keys,            # IN  (n_lags,) sorted lag keys round((t_j − t_i)/quantum)
              double quantum,                       # IN  ps per key unit
              double[:, ::1] acc,                   # IN/OUT (n_lags, 3) Σ over pairs and atoms of Δx_k²
              long long[::1] count):                # IN/OUT (n_lags,) number of frame pairs per lag
    """Exact MSD sums over every frame pair (i ≤ j), grouped by time difference; returns -1 or a missing pair's i."""
    cdef Py_ssize_t n_frames = pos.shape[0], n_atoms = pos.shape[1], i, j, a, k, b
    cdef long long key
    cdef double d, s0, s1, s2
    cdef Py_ssize_t bad = -1
    with nogil:
        for i in range(n_frames):
            for j in range(i, n_frames):
                key = <long long>((times[j] - times[i]) / quantum + 0.5)
                b = _find(keys, key)
                if b < 0:
                    bad = i
                    continue
                s0 = 0.0; s1 = 0.0; s2 = 0.0
                for a in range(n_atoms):
                    d = pos[j, a, 0] - pos[i, a, 0]
                    s0 += d * d
                    d = pos[j, a, 1] - pos[i, a, 1]
                    s1 += d * d
                    d = pos[j, a, 2] - pos[i, a, 2]
                    s2 += d * d
                acc[b, 0] += s0
                acc[b, 1] += s1
                acc[b, 2] += s2
                count[b] += 1
    return bad


cdef inline double _overlap(Py_ssize_t d, Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    # length of [0, m) ∩ [d, d + n)
    cdef Py_ssize_t lo = d if d > 0 else 0
    cdef Py_ssize_t hi = m if m < d + n else d + n
    return <double>(hi - lo) if hi > lo else 0.0


cdef inline double _count(Py_ssize_t d, Py_ssize_t m, Py_ssize_t n, Py_ssize_t T) noexcept nogil:
    # number of origins t with 0 <= t < T - m and 0 <= t + d < T - n
    cdef Py_ssize_t lo = -d if d < 0 else 0
    cdef Py_ssize_t hi = T - m
    if T - n - d < hi:
        hi = T - n - d
    return <double>(hi - lo) if hi > lo else 0.0


cdef inline double _term(Py_ssize_t d, Py_ssize_t m, Py_ssize_t n, Py_ssize_t T, double s2, double e2) noexcept nogil:
    cdef double c = s2 * _overlap(d, m, n)
    if d == m - n:
        c += e2
    if d == m:
        c -= e2
    if d == -n:
        c -= e2
    if d == 0:
        c += e2
    return _count(d, m, n, T) * c * c


cdef inline double _poly_sum(double p0, double p1, double q0, double q1, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    # Σ_{d=a}^{b} (p0 + p1 d)(q0 + q1 d)², b >= a, by power sums of j = d − a
    cdef double n = <double>(b - a)
    cdef double P0 = p0 + p1 * a, Q0 = q0 + q1 * a
    cdef double S0 = n + 1.0, S1 = n * (n + 1.0) / 2.0, S2 = n * (n + 1.0) * (2.0 * n + 1.0) / 6.0
    cdef double S3 = S1 * S1
    return (P0 * Q0 * Q0 * S0 + (p1 * Q0 * Q0 + 2.0 * P0 * Q0 * q1) * S1
            + (2.0 * p1 * Q0 * q1 + P0 * q1 * q1) * S2 + p1 * q1 * q1 * S3)


def msd_covariance(const long long[::1] lags,       # IN  (K,) lags in frames, >= 1
                   Py_ssize_t n_frames,             # IN  T
                   double s2,                       # IN  variance of one step of the walk (one direction), Å²
                   double e2,                       # IN  variance of the uncorrelated (vibrational) noise, Å²
                   double[:, ::1] out):             # OUT (K, K) covariance of the time-averaged MSD of one series
    """Exact covariance of the all-origin MSD estimator of one Gaussian series X(t) = W(t) + ε(t).

    W is a random walk with step variance s2 and ε white noise of variance e2;
    Cov(M_m, M_n) = 2/((T−m)(T−n)) Σ_t Σ_u c(t, m, u, n)², where c is the
    covariance of the two displacements (Isserlis' theorem).  The double sum
    runs over d = u − t ∈ [−n, m] with its multiplicity count(d).  count(d)
    and the interval overlap are linear between the break points
    {−n, −(T−m), 0, m−n, m, T−n}, so each piece is summed in closed form
    (power sums) and the break points, where the white-noise terms sit, are
    added one by one: O(1) per pair of lags.
    """
    cdef Py_ssize_t K = lags.shape[0], p, q, m, n, i, j, a, b, nb, T = n_frames, tmp
    cdef Py_ssize_t bp[6]
    cdef double s, c0, c1, o0, o1
    with nogil:
        for p in range(K):
            for q in range(p, K):
                m = lags[p]
                n = lags[q]
                bp[0] = -n; bp[1] = -(T - m); bp[2] = 0; bp[3] = m - n; bp[4] = m; bp[5] = T - n
                # clip to [-n, m] and sort (insertion sort of 6 values)
                for i in range(6):
                    if bp[i] < -n:
                        bp[i] = -n
                    if bp[i] > m:
                        bp[i] = m
                for i in range(1, 6):
                    tmp = bp[i]
                    j = i - 1
                    while j >= 0 and bp[j] > tmp:
                        bp[j + 1] = bp[j]
                        j -= 1
                    bp[j + 1] = tmp
                s = 0.0
                nb = 0
                for i in range(6):
                    if i > 0 and bp[i] == bp[i - 1]:
                        continue
                    s += _term(bp[i], m, n, T, s2, e2)
                    if i + 1 < 6:
                        # interior of (bp[i], next distinct break point)
                        j = i + 1
                        while j < 6 and bp[j] == bp[i]:
                            j += 1
                        if j < 6:
                            a = bp[i] + 1
                            b = bp[j] - 1
                            if b >= a:
                                c0 = _count(a, m, n, T)
                                if b > a:
                                    c1 = _count(a + 1, m, n, T) - c0
                                    o1 = s2 * (_overlap(a + 1, m, n) - _overlap(a, m, n))
                                else:
                                    c1 = 0.0
                                    o1 = 0.0
                                o0 = s2 * _overlap(a, m, n)
                                if c0 > 0.0 or c1 > 0.0:
                                    s += _poly_sum(c0 - c1 * a, c1, o0 - o1 * a, o1, a, b)
                out[p, q] = 2.0 * s / ((T - m) * <double>(T - n))
                out[q, p] = out[p, q]
