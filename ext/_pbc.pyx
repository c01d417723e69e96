# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Periodic-boundary kernels: triclinic minimum image and cell-list pair histograms (SPEC §7).

No validation here: the façade ``anionmotion/kernels/pbc.py`` checks shapes,
cells and ranges first.  Every loop runs without the GIL so the façade can
process frames on several threads.
"""

from libc.math cimport floor, nearbyint, sqrt
from libc.stdlib cimport free, malloc

ctypedef long long int64


cdef inline void _frac_shortest(double s0, double s1, double s2, const double[:, ::1] cell,
                                double* out) noexcept nogil:
    """Shortest image of fractional vector s (already reduced to [-0.5, 0.5]) among its 27 neighbours."""
    cdef int i, j, k
    cdef double a, b, c, x, y, z, r2
    cdef double best = 1e300
    for i in range(-1, 2):
        a = s0 + i
        for j in range(-1, 2):
            b = s1 + j
            for k in range(-1, 2):
                c = s2 + k
                x = a * cell[0, 0] + b * cell[1, 0] + c * cell[2, 0]
                y = a * cell[0, 1] + b * cell[1, 1] + c * cell[2, 1]
                z = a * cell[0, 2] + b * cell[1, 2] + c * cell[2, 2]
                r2 = x * x + y * y + z * z
                if r2 < best:
                    best = r2
                    out[0] = x
                    out[1] = y
                    out[2] = z


def min_image_triclinic(const double[:, :, ::1] d,        # IN  (n_frames, n, 3) displacements, Å
                        const double[:, :, ::1] cells,    # IN  (n_frames, 3, 3) rows a, b, c, Å
                        const double[:, :, ::1] inv,      # IN  (n_frames, 3, 3) inverses of cells
                        double[:, :, ::1] out):           # OUT (n_frames, n, 3) shortest images, Å
    """Shortest periodic image of every vector: reduce s = d·H⁻¹ to [-½, ½], then search the 27 neighbours."""
    cdef Py_ssize_t T = d.shape[0], n = d.shape[1], t, i
    cdef double s0, s1, s2, x, y, z
    cdef double res[3]
    res[0] = 0.0; res[1] = 0.0; res[2] = 0.0
    with nogil:
        for t in range(T):
            for i in range(n):
                x = d[t, i, 0]; y = d[t, i, 1]; z = d[t, i, 2]
                s0 = x * inv[t, 0, 0] + y * inv[t, 1, 0] + z * inv[t, 2, 0]
                s1 = x * inv[t, 0, 1] + y * inv[t, 1, 1] + z * inv[t, 2, 1]
                s2 = x * inv[t, 0, 2] + y * inv[t, 1, 2] + z * inv[t, 2, 2]
                s0 = s0 - nearbyint(s0)
                s1 = s1 - nearbyint(s1)
                s2 = s2 - nearbyint(s2)
                _frac_shortest(s0, s1, s2, cells[t], res)
                out[t, i, 0] = res[0]
                out[t, i, 1] = res[1]
                out[t, i, 2] = res[2]


def distances_min_image(const double[:, ::1] frac_a,      # IN  (na, 3) fractional
                        const double[:, ::1] frac_b,      # IN  (nb, 3) fractional
                        const double[:, ::1] cell,        # IN  (3, 3) rows a, b, c, Å
                        double[:, ::1] out):              # OUT (na, nb) shortest-image distances, Å
    """All-pairs minimum-image distance matrix in one (triclinic) cell (27-neighbour search)."""
    cdef Py_ssize_t na = frac_a.shape[0], nb = frac_b.shape[0], i, j
    cdef double s0, s1, s2
    cdef double res[3]
    res[0] = 0.0; res[1] = 0.0; res[2] = 0.0
    with nogil:
        for i in range(na):
            for j in range(nb):
                s0 = frac_b[j, 0] - frac_a[i, 0]
                s1 = frac_b[j, 1] - frac_a[i, 1]
                s2 = frac_b[j, 2] - frac_a[i, 2]
                s0 = s0 - nearbyint(s0)
                s1 = s1 - nearbyint(s1)
                s2 = s2 - nearbyint(s2)
                _frac_shortest(s0, s1, s2, cell, res)
                out[i, j] = sqrt(res[0] * res[0] + res[1] * res[1] + res[2] * res[2])


cdef inline Py_ssize_t _bin_of(double s, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t b
    s = s - floor(s)
    b = <Py_ssize_t>(s * n)
    if b >= n:
        b = n - 1
    if b < 0:
        b = 0
    return b


cdef inline double _wrap_half(double d) noexcept nogil:
    """d - round(d) for d in (-1, 1) (differences of wrapped coordinates), without a libm call."""
    if d >= 0.5:
        return d - 1.0
    if d < -0.5:
        return d + 1.0
    return d


cdef inline Py_ssize_t _offsets(Py_ssize_t n, Py_ssize_t reach, Py_ssize_t* off) noexcept nogil:
    """Distinct bin offsets {-reach..reach} modulo n (all n bins when they overlap); returns their count."""
    cdef Py_ssize_t k, m
    if 2 * reach + 1 >= n:
        for k in range(n):
            off[k] = k
        return n
    m = 0
    for k in range(-reach, reach + 1):
        off[m] = (k + n) % n
        m += 1
    return m


cdef int _hist_frame(const double[:, ::1] frac_a, const double[:, ::1] frac_b, const double[:, ::1] cell,
                     const int64[::1] self_idx, Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t n2,
                     Py_ssize_t e0, Py_ssize_t e1, Py_ssize_t e2, double rmax, bint half,
                     int64[::1] hist, Py_ssize_t* head, Py_ssize_t* order, Py_ssize_t* binb,
                     double* sb) noexcept nogil:
    """One frame of :func:`histogram_pairs` with caller-provided work buffers (sizes n_tot + 1, nb + 1, nb + 1, 3nb + 3)."""
    cdef Py_ssize_t na = frac_a.shape[0], nb = frac_b.shape[0], n_bins = hist.shape[0]
    cdef Py_ssize_t n_tot = n0 * n1 * n2
    cdef Py_ssize_t i, j, c, p, b0, b1, b2, o0, o1, o2, cb, k, jj, start, stop
    cdef Py_ssize_t off0[5]
    cdef Py_ssize_t off1[5]
    cdef Py_ssize_t off2[5]
    cdef Py_ssize_t m0, m1, m2
    cdef double rmax2 = rmax * rmax, scale = n_bins / rmax
    cdef double s0, s1, s2, x, y, z, r2, a0, a1, a2
    cdef double h00 = cell[0, 0], h01 = cell[0, 1], h02 = cell[0, 2]
    cdef double h10 = cell[1, 0], h11 = cell[1, 1], h12 = cell[1, 2]
    cdef double h20 = cell[2, 0], h21 = cell[2, 1], h22 = cell[2, 2]
    # neighbour offsets per axis: {-reach..reach} modulo n without repeats (reach ≤ 2)
    m0 = _offsets(n0, e0, off0)
    m1 = _offsets(n1, e1, off1)
    m2 = _offsets(n2, e2, off2)
    # counting sort of b by bin
    for c in range(n_tot + 1):
        head[c] = 0
    for j in range(nb):
        s0 = frac_b[j, 0] - floor(frac_b[j, 0])
        s1 = frac_b[j, 1] - floor(frac_b[j, 1])
        s2 = frac_b[j, 2] - floor(frac_b[j, 2])
        cb = (_bin_of(s0, n0) * n1 + _bin_of(s1, n1)) * n2 + _bin_of(s2, n2)
        binb[j] = cb
        head[cb + 1] += 1
    for c in range(n_tot):
        head[c + 1] += head[c]
    for j in range(nb):
        cb = binb[j]
        k = head[cb]
        order[k] = j
        head[cb] = k + 1
    for c in range(n_tot - 1, -1, -1):
        head[c + 1] = head[c]
    head[0] = 0
    # bin-sorted copy of b's wrapped coordinates (contiguous inner loop)
    for k in range(nb):
        j = order[k]
        sb[3 * k] = frac_b[j, 0] - floor(frac_b[j, 0])
        sb[3 * k + 1] = frac_b[j, 1] - floor(frac_b[j, 1])
        sb[3 * k + 2] = frac_b[j, 2] - floor(frac_b[j, 2])
    # neighbour tables without modulo in the loops: t0[b*m0 + o] = ((b + off0[o]) % n0) * n1 * n2, …
    cdef Py_ssize_t* t0 = <Py_ssize_t*>malloc((n0 * m0 + 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t* t1 = <Py_ssize_t*>malloc((n1 * m1 + 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t* t2 = <Py_ssize_t*>malloc((n2 * m2 + 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t c0, c1
    if t0 == NULL or t1 == NULL or t2 == NULL:
        free(t0); free(t1); free(t2)
        return -1
    for b0 in range(n0):
        for o0 in range(m0):
            t0[b0 * m0 + o0] = ((b0 + off0[o0]) % n0) * n1 * n2
    for b1 in range(n1):
        for o1 in range(m1):
            t1[b1 * m1 + o1] = ((b1 + off1[o1]) % n1) * n2
    for b2 in range(n2):
        for o2 in range(m2):
            t2[b2 * m2 + o2] = (b2 + off2[o2]) % n2
    for i in range(na):
        a0 = frac_a[i, 0] - floor(frac_a[i, 0])
        a1 = frac_a[i, 1] - floor(frac_a[i, 1])
        a2 = frac_a[i, 2] - floor(frac_a[i, 2])
        b0 = _bin_of(a0, n0) * m0; b1 = _bin_of(a1, n1) * m1; b2 = _bin_of(a2, n2) * m2
        jj = self_idx[i]
        for o0 in range(m0):
            c0 = t0[b0 + o0]
            for o1 in range(m1):
                c1 = c0 + t1[b1 + o1]
                for o2 in range(m2):
                    cb = c1 + t2[b2 + o2]
                    start = head[cb]
                    stop = head[cb + 1]
                    for k in range(start, stop):
                        if half:
                            if order[k] <= i:
                                continue
                        elif order[k] == jj:
                            continue
                        s0 = _wrap_half(sb[3 * k] - a0)
                        s1 = _wrap_half(sb[3 * k + 1] - a1)
                        s2 = _wrap_half(sb[3 * k + 2] - a2)
                        x = s0 * h00 + s1 * h10 + s2 * h20
                        y = s0 * h01 + s1 * h11 + s2 * h21
                        z = s0 * h02 + s1 * h12 + s2 * h22
                        r2 = x * x + y * y + z * z
                        if r2 < rmax2:
                            p = <Py_ssize_t>(sqrt(r2) * scale)
                            if p < n_bins:
                                hist[p] += 1
    free(t0); free(t1); free(t2)
    return 0


def histogram_pairs(const double[:, ::1] frac_a,     # IN  (na, 3) fractional (any range; wrapped here)
                    const double[:, ::1] frac_b,     # IN  (nb, 3) fractional
                    const double[:, ::1] cell,       # IN  (3, 3) rows a, b, c, Å
                    const int64[::1] self_idx,       # IN  (na,) index in b of the same atom as a[i], or -1
                    const int64[::1] n_cells,        # IN  (3,) cell-list bins per axis (each ≥ 1)
                    const int64[::1] reach,          # IN  (3,) neighbour bins searched each way (bin width ≥ rmax/reach; ≤ 2)
                    double rmax,                     # IN  histogram range, Å (≤ half the smallest cell width)
                    bint half,                       # IN  a is b: count each unordered pair once (j > i)
                    int64[::1] hist):                # IN/OUT (n_bins,) pair counts, incremented
    """Histogram of minimum-image distances < rmax between the atoms of a and b, using cell lists.

    Pairs are found in fractional space: the cell is cut into n_cells[k] bins
    along each axis, each at least rmax / reach[k] wide perpendicular to its
    faces, so every pair closer than rmax lies within reach[k] bins.  The
    minimum image is fractional rounding, exact when rmax ≤ half the smallest
    perpendicular width (the façade guarantees it).
    """
    histogram_pairs_frames(frac_a[None], frac_b[None], cell[None], self_idx, n_cells[None], reach[None], rmax, half,
                           hist)


def histogram_pairs_frames(const double[:, :, ::1] frac_a,   # IN  (T, na, 3) fractional
                           const double[:, :, ::1] frac_b,   # IN  (T, nb, 3) fractional
                           const double[:, :, ::1] cells,    # IN  (T, 3, 3) rows a, b, c, Å
                           const int64[::1] self_idx,        # IN  (na,) index in b of the same atom, or -1
                           const int64[:, ::1] n_cells,      # IN  (T, 3) cell-list bins per axis and frame
                           const int64[:, ::1] reach,        # IN  (T, 3) neighbour bins searched each way (≤ 2)
                           double rmax,                      # IN  Å (≤ half the smallest width of every frame)
                           bint half,                        # IN  a is b: unordered pairs j > i
                           int64[::1] hist):                 # IN/OUT (n_bins,) pair counts summed over frames
    """:func:`histogram_pairs` over a block of frames without the GIL (work buffers allocated once)."""
    cdef Py_ssize_t T = frac_a.shape[0], nb = frac_b.shape[1], t, n_max = 1
    for t in range(T):
        if n_cells[t, 0] * n_cells[t, 1] * n_cells[t, 2] > n_max:
            n_max = n_cells[t, 0] * n_cells[t, 1] * n_cells[t, 2]
    cdef Py_ssize_t* head = <Py_ssize_t*>malloc((n_max + 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t* order = <Py_ssize_t*>malloc((nb + 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t* binb = <Py_ssize_t*>malloc((nb + 1) * sizeof(Py_ssize_t))
    cdef double* sb = <double*>malloc((3 * nb + 3) * sizeof(double))
    if head == NULL or order == NULL or binb == NULL or sb == NULL:
        free(head); free(order); free(binb); free(sb)
        raise MemoryError("cell list allocation failed")
    cdef int status = 0
    with nogil:
        for t in range(T):
            status = _hist_frame(frac_a[t], frac_b[t], cells[t], self_idx, n_cells[t, 0], n_cells[t, 1],
                                 n_cells[t, 2], reach[t, 0], reach[t, 1], reach[t, 2], rmax, half, hist, head, order,
                                 binb, sb)
            if status != 0:
                break
    free(head); free(order); free(binb); free(sb)
    if status != 0:
        raise MemoryError("cell list neighbour tables: allocation failed")
