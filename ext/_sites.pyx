# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Site assignment of mobile ions and the debounce state machine (docs/sites.md).

Three kernels, each with a numpy twin in ``anionmotion/kernels/sites.py``:

* ``assign_polyhedra``: the tetrahedron (or any 4-vertex polyhedron) that contains each ion, from the
  barycentric coordinates of the ion in every site's current vertex positions (minimum image);
* ``assign_nearest``: the nearest site centre (Voronoi), optionally only within a radius (spheres);
* ``debounce``: committed-site state machine — an ion changes site only after ``n_min`` consecutive
  frames in the new site; emits one event per change, back-dated to the first frame of the new run.
"""

from libc.math cimport floor, fabs, sqrt


cdef inline double _rint(double x) nogil:
    return floor(x + 0.5)


cdef inline bint _inv3(double* m, double* out) nogil:
    """Inverse of the row-major 3x3 ``m`` into ``out``; False when singular."""
    cdef double det
    out[0] = m[4] * m[8] - m[5] * m[7]
    out[1] = m[2] * m[7] - m[1] * m[8]
    out[2] = m[1] * m[5] - m[2] * m[4]
    out[3] = m[5] * m[6] - m[3] * m[8]
    out[4] = m[0] * m[8] - m[2] * m[6]
    out[5] = m[2] * m[3] - m[0] * m[5]
    out[6] = m[3] * m[7] - m[4] * m[6]
    out[7] = m[1] * m[6] - m[0] * m[7]
    out[8] = m[0] * m[4] - m[1] * m[3]
    det = m[0] * out[0] + m[1] * out[3] + m[2] * out[6]
    if det == 0.0:
        return False
    cdef int k
    for k in range(9):
        out[k] /= det
    return True


cdef inline double _depth(double* xf, double* cell, double[:, ::1] work, Py_ssize_t s) noexcept nogil:
    """Smallest barycentric coordinate of the ion (fractional ``xf``) in site ``s``; -1e300 when the ion is
    outside the site's bounding sphere (cheap rejections first)."""
    cdef double f[3]
    cdef double d[3]
    cdef double lam[4]
    cdef double g, r2, lmin
    cdef int k
    for k in range(3):   # fractional distance to the centroid beyond the bounding sphere's extent
        g = xf[k] - work[s, 17 + k]
        g -= _rint(g)
        if fabs(g) > work[s, 20 + k]:
            return -1e300
    for k in range(3):
        f[k] = xf[k] - work[s, k]
        f[k] -= _rint(f[k])
    for k in range(3):
        d[k] = f[0] * cell[k] + f[1] * cell[3 + k] + f[2] * cell[6 + k]
    r2 = 0.0
    for k in range(3):
        r2 += (d[k] - work[s, 3 + k]) * (d[k] - work[s, 3 + k])
    if r2 > work[s, 6]:
        return -1e300
    # d = sum_j lam_j e_j (rows e_j)  ->  lam = d @ inv(E)
    lam[1] = d[0] * work[s, 8] + d[1] * work[s, 11] + d[2] * work[s, 14]
    lam[2] = d[0] * work[s, 9] + d[1] * work[s, 12] + d[2] * work[s, 15]
    lam[3] = d[0] * work[s, 10] + d[1] * work[s, 13] + d[2] * work[s, 16]
    lam[0] = 1.0 - lam[1] - lam[2] - lam[3]
    lmin = lam[0]
    for k in range(1, 4):
        if lam[k] < lmin:
            lmin = lam[k]
    return lmin


def assign_polyhedra(const double[:, :, ::1] ions,        # IN  (F, N, 3) ion positions, Å (any image)
                     const double[:, :, :, ::1] verts,    # IN  (F, S, 4, 3) vertex positions, Å (any image)
                     const double[:, :, ::1] cells,       # IN  (F, 3, 3) rows a, b, c, Å
                     double tol,                          # IN  barycentric tolerance (>= 0)
                     long long[:, ::1] out,               # OUT (F, N) site index or -1
                     double[:, ::1] work,                 # WORK (S, 23)
                     long long[::1] head,                 # WORK (cap,) cell-list heads, cap >= 1
                     long long[::1] nxt):                 # WORK (S,) cell-list links
    """Site (tetrahedron) containing each ion; among several, the one with the largest smallest barycentric
    coordinate; -1 when none.  Vertices and ions are brought to the minimum image of the site's first vertex
    (fractional components reduced to [-0.5, 0.5]).  Sites are found through a cell list of their centroids
    (bins at least one bounding radius wide), so the cost per frame is O(N + S) for compact sites.  Returns
    the number of degenerate (flat) site-frames."""
    cdef Py_ssize_t F = ions.shape[0], N = ions.shape[1], S = verts.shape[1]
    cdef Py_ssize_t t, i, s, k, j
    cdef double cell[9]
    cdef double inv[9]
    cdef double e[9]
    cdef double einv[9]
    cdef double f[3]
    cdef double d[3]
    cdef double c[3]
    cdef double xf[3]
    cdef double lam[4]
    cdef double r2, rmax2, lmin, best, g, rmax, w
    cdef Py_ssize_t nb[3]
    cdef Py_ssize_t bb[3]
    cdef Py_ssize_t o0, o1, o2
    cdef Py_ssize_t cap = head.shape[0]
    cdef long long bi
    cdef Py_ssize_t n_flat = 0
    # work[s]: 0-2 fractional first vertex, 3-5 centroid offset (Å), 6 bounding radius², 7 valid, 8-16 inverse
    # edges, 17-19 fractional centroid, 20-22 fractional half-extents of the bounding sphere
    with nogil:
        for t in range(F):
            for k in range(9):
                cell[k] = cells[t, k // 3, k % 3]
            _inv3(cell, inv)
            for s in range(S):
                for k in range(3):
                    work[s, k] = (verts[t, s, 0, 0] * inv[k] + verts[t, s, 0, 1] * inv[3 + k]
                                  + verts[t, s, 0, 2] * inv[6 + k])
                for j in range(3):
                    for k in range(3):
                        d[k] = verts[t, s, j + 1, k] - verts[t, s, 0, k]
                    for k in range(3):
                        f[k] = d[0] * inv[k] + d[1] * inv[3 + k] + d[2] * inv[6 + k]
                        f[k] -= _rint(f[k])
                    for k in range(3):
                        e[3 * j + k] = f[0] * cell[k] + f[1] * cell[3 + k] + f[2] * cell[6 + k]
                for k in range(3):
                    c[k] = 0.25 * (e[k] + e[3 + k] + e[6 + k])
                rmax2 = c[0] * c[0] + c[1] * c[1] + c[2] * c[2]
                for j in range(3):
                    r2 = 0.0
                    for k in range(3):
                        r2 += (e[3 * j + k] - c[k]) * (e[3 * j + k] - c[k])
                    if r2 > rmax2:
                        rmax2 = r2
                for k in range(3):
                    work[s, 3 + k] = c[k]
                work[s, 6] = rmax2 * (1.0 + 1e-9) + 1e-12
                # fractional centroid and the fractional half-extent of the bounding sphere along each axis
                # (radius × |reciprocal vector k|, with 1e-9 relative slack)
                for k in range(3):
                    work[s, 17 + k] = work[s, k] + (c[0] * inv[k] + c[1] * inv[3 + k] + c[2] * inv[6 + k])
                    work[s, 20 + k] = (sqrt(rmax2) * sqrt(inv[k] * inv[k] + inv[3 + k] * inv[3 + k]
                                                          + inv[6 + k] * inv[6 + k]) * (1.0 + 1e-9) + 1e-12)
                if _inv3(e, einv):
                    work[s, 7] = 1.0
                    for k in range(9):
                        work[s, 8 + k] = einv[k]
                else:
                    work[s, 7] = 0.0
                    n_flat += 1
            # cell list of the site centroids: bins at least one bounding radius wide along every axis, so a
            # site containing the ion has its centroid in the ion's bin or a neighbouring one
            rmax = 0.0
            for s in range(S):
                if work[s, 7] != 0.0 and work[s, 6] > rmax:
                    rmax = work[s, 6]
            rmax = sqrt(rmax)
            for k in range(3):
                nb[k] = 1
                if rmax > 0:
                    w = 1.0 / sqrt(inv[k] * inv[k] + inv[3 + k] * inv[3 + k] + inv[6 + k] * inv[6 + k])
                    nb[k] = <Py_ssize_t>floor(w / rmax)
                    if nb[k] < 1:
                        nb[k] = 1
                    if nb[k] > 256:
                        nb[k] = 256
            while nb[0] * nb[1] * nb[2] > cap:
                j = 0
                for k in range(1, 3):
                    if nb[k] > nb[j]:
                        j = k
                nb[j] -= 1
            for k in range(nb[0] * nb[1] * nb[2]):
                head[k] = -1
            for s in range(S - 1, -1, -1):   # lists in increasing site order
                if work[s, 7] == 0.0:
                    continue
                for k in range(3):
                    g = work[s, 17 + k] - floor(work[s, 17 + k])
                    bb[k] = <Py_ssize_t>(g * nb[k])
                    if bb[k] >= nb[k]:
                        bb[k] = nb[k] - 1
                j = (bb[0] * nb[1] + bb[1]) * nb[2] + bb[2]
                nxt[s] = head[j]
                head[j] = s
            for i in range(N):
                for k in range(3):
                    xf[k] = ions[t, i, 0] * inv[k] + ions[t, i, 1] * inv[3 + k] + ions[t, i, 2] * inv[6 + k]
                    g = xf[k] - floor(xf[k])
                    bb[k] = <Py_ssize_t>(g * nb[k])
                    if bb[k] >= nb[k]:
                        bb[k] = nb[k] - 1
                best = -1e300
                bi = -1
                for o0 in range(-1 if nb[0] >= 3 else 0, 2 if nb[0] >= 2 else 1):
                    for o1 in range(-1 if nb[1] >= 3 else 0, 2 if nb[1] >= 2 else 1):
                        for o2 in range(-1 if nb[2] >= 3 else 0, 2 if nb[2] >= 2 else 1):
                            j = (((bb[0] + o0 + nb[0]) % nb[0]) * nb[1] + (bb[1] + o1 + nb[1]) % nb[1]) * nb[2] \
                                + (bb[2] + o2 + nb[2]) % nb[2]
                            s = head[j]
                            while s >= 0:
                                lmin = _depth(xf, cell, work, s)
                                if lmin >= -tol and (lmin > best or (lmin == best and s < bi)):
                                    best = lmin
                                    bi = s
                                s = nxt[s]
                out[t, i] = bi
    return n_flat


cdef inline double _dist2(double* xf, double[:, ::1] cf, double* cell, Py_ssize_t s) noexcept nogil:
    cdef double f[3]
    cdef double d[3]
    cdef int k
    for k in range(3):
        f[k] = xf[k] - cf[s, k]
        f[k] -= _rint(f[k])
    for k in range(3):
        d[k] = f[0] * cell[k] + f[1] * cell[3 + k] + f[2] * cell[6 + k]
    return d[0] * d[0] + d[1] * d[1] + d[2] * d[2]


def assign_nearest(const double[:, :, ::1] ions,       # IN  (F, N, 3) ion positions, Å (any image)
                   const double[:, :, ::1] centres,    # IN  (F, S, 3) site centres, Å (any image)
                   const double[:, :, ::1] cells,      # IN  (F, 3, 3) rows a, b, c, Å
                   double radius,                      # IN  > 0: only within this distance (Å); <= 0: Voronoi
                   long long[:, ::1] out,              # OUT (F, N) site index or -1
                   double[:, ::1] cf,                  # WORK (S, 3)
                   long long[::1] head,                # WORK (cap,) cell-list heads, cap >= 1
                   long long[::1] nxt):                # WORK (S,) cell-list links
    """Nearest site centre of each ion under the minimum image (fractional differences reduced to
    [-0.5, 0.5]); ties go to the lower index; -1 when ``radius`` > 0 and the nearest is farther.

    The centres are binned in a cell list (bins about 1.2 mean centre spacings wide, or the radius); the
    ion's own and neighbouring bins are searched first, and the answer is final when the best distance is
    below the guaranteed distance to any centre outside them; otherwise every centre is compared."""
    cdef Py_ssize_t F = ions.shape[0], N = ions.shape[1], S = centres.shape[1]
    cdef Py_ssize_t t, i, s, k, j
    cdef double cell[9]
    cdef double inv[9]
    cdef double xf[3]
    cdef double wk[3]
    cdef Py_ssize_t nb[3]
    cdef Py_ssize_t bb[3]
    cdef Py_ssize_t o0, o1, o2
    cdef Py_ssize_t cap = head.shape[0]
    cdef double r2, best, rad2 = radius * radius, rbin, vol, guard, g
    cdef long long bi
    with nogil:
        for t in range(F):
            for k in range(9):
                cell[k] = cells[t, k // 3, k % 3]
            _inv3(cell, inv)
            vol = fabs(cell[0] * (cell[4] * cell[8] - cell[5] * cell[7])
                       - cell[1] * (cell[3] * cell[8] - cell[5] * cell[6])
                       + cell[2] * (cell[3] * cell[7] - cell[4] * cell[6]))
            rbin = 1.2 * (vol / (S if S > 0 else 1)) ** (1.0 / 3.0)
            if radius > 0 and radius > rbin:
                rbin = radius
            for k in range(3):
                wk[k] = 1.0 / sqrt(inv[k] * inv[k] + inv[3 + k] * inv[3 + k] + inv[6 + k] * inv[6 + k])
                nb[k] = <Py_ssize_t>floor(wk[k] / rbin)
                if nb[k] < 1:
                    nb[k] = 1
                if nb[k] > 256:
                    nb[k] = 256
            while nb[0] * nb[1] * nb[2] > cap:
                j = 0
                for k in range(1, 3):
                    if nb[k] > nb[j]:
                        j = k
                nb[j] -= 1
            guard = 1e300    # any centre outside the searched bins is at least this far (Å)
            for k in range(3):
                if nb[k] >= 3 and wk[k] / nb[k] < guard:
                    guard = wk[k] / nb[k]
            for k in range(nb[0] * nb[1] * nb[2]):
                head[k] = -1
            for s in range(S - 1, -1, -1):
                for k in range(3):
                    cf[s, k] = (centres[t, s, 0] * inv[k] + centres[t, s, 1] * inv[3 + k]
                                + centres[t, s, 2] * inv[6 + k])
                    g = cf[s, k] - floor(cf[s, k])
                    bb[k] = <Py_ssize_t>(g * nb[k])
                    if bb[k] >= nb[k]:
                        bb[k] = nb[k] - 1
                j = (bb[0] * nb[1] + bb[1]) * nb[2] + bb[2]
                nxt[s] = head[j]
                head[j] = s
            for i in range(N):
                for k in range(3):
                    xf[k] = ions[t, i, 0] * inv[k] + ions[t, i, 1] * inv[3 + k] + ions[t, i, 2] * inv[6 + k]
                    g = xf[k] - floor(xf[k])
                    bb[k] = <Py_ssize_t>(g * nb[k])
                    if bb[k] >= nb[k]:
                        bb[k] = nb[k] - 1
                best = 1e300
                bi = -1
                for o0 in range(-1 if nb[0] >= 3 else 0, 2 if nb[0] >= 2 else 1):
                    for o1 in range(-1 if nb[1] >= 3 else 0, 2 if nb[1] >= 2 else 1):
                        for o2 in range(-1 if nb[2] >= 3 else 0, 2 if nb[2] >= 2 else 1):
                            j = (((bb[0] + o0 + nb[0]) % nb[0]) * nb[1] + (bb[1] + o1 + nb[1]) % nb[1]) * nb[2] \
                                + (bb[2] + o2 + nb[2]) % nb[2]
                            s = head[j]
                            while s >= 0:
                                r2 = _dist2(xf, cf, cell, s)
                                if r2 < best or (r2 == best and s < bi):
                                    best = r2
                                    bi = s
                                s = nxt[s]
                if radius <= 0 and best > guard * guard:
                    for s in range(S):    # not provably the nearest: compare every centre
                        r2 = _dist2(xf, cf, cell, s)
                        if r2 < best or (r2 == best and s < bi):
                            best = r2
                            bi = s
                if radius > 0 and best > rad2:
                    bi = -1
                out[t, i] = bi


def debounce(const long long[:, ::1] raw,     # IN  (F, N) raw site per frame (-1 = none)
             long long frame0,                # IN  analysed-frame index of raw[0]
             long long n_min,                 # IN  frames an ion must stay in a new site (>= 1)
             long long[::1] cur,              # INOUT (N,) committed site (-1 = none yet)
             long long[::1] cur_start,        # INOUT (N,) first frame of the committed run
             long long[::1] cand,             # INOUT (N,) candidate site (-1 = none)
             long long[::1] cand_start,       # INOUT (N,) first frame of the candidate run
             long long[::1] cand_len,         # INOUT (N,) frames in the candidate run
             long long t_begin,               # IN  first row of raw to process
             long long[:, ::1] events):       # OUT (cap, 5) ion, from, to, entry frame, from-run start
    """Advance the state machine over rows ``t_begin…`` of ``raw``.

    Returns ``(n_events, t_next)``: events written and the next row to process (``F`` when done; earlier when
    fewer than N free event rows were left before a frame, so that a frame is never split)."""
    cdef Py_ssize_t F = raw.shape[0], N = raw.shape[1], cap = events.shape[0]
    cdef Py_ssize_t t, i, n = 0
    cdef long long r, tf
    with nogil:
        t = t_begin
        while t < F:
            if n + N > cap:
                break
            tf = frame0 + t
            for i in range(N):
                r = raw[t, i]
                if r < 0 or r == cur[i]:
                    cand[i] = -1
                    cand_len[i] = 0
                    continue
                if r == cand[i]:
                    cand_len[i] += 1
                else:
                    cand[i] = r
                    cand_start[i] = tf
                    cand_len[i] = 1
                if cand_len[i] >= n_min:
                    events[n, 0] = i
                    events[n, 1] = cur[i]
                    events[n, 2] = r
                    events[n, 3] = cand_start[i]
                    events[n, 4] = cur_start[i]
                    n += 1
                    cur[i] = r
                    cur_start[i] = cand_start[i]
                    cand[i] = -1
                    cand_len[i] = 0
            t += 1
    return n, t


def window_partners(const long long[::1] t,        # IN  (M,) entry frame of every buffered jump (sorted)
                    const long long[::1] ion,      # IN  (M,) ion of every buffered jump
                    const double[:, ::1] mid,      # IN  (M, 3) fractional midpoint of every buffered jump
                    const double[:, ::1] cell,     # IN  (3, 3) rows a, b, c, Å
                    const long long[::1] J,        # IN  (n,) buffer index of the jumps to test
                    const long long[::1] lo,       # IN  (n,) first buffer index of each jump's window
                    const long long[::1] hi,       # IN  (n,) last buffer index + 1 of each jump's window
                    double dmax,                   # IN  largest midpoint distance, Å
                    bint count_all,                # IN  count every pair (True) or stop at the first partner
                    unsigned char[::1] has):       # OUT (n,) 1 when the jump has a partner
    """Partners of jumps J among buffer jumps lo…hi−1: another ion, midpoint within ``dmax`` (minimum image).
    Returns the number of pairs found (all pairs when ``count_all``, else at most one per jump)."""
    cdef Py_ssize_t n = J.shape[0], a, k, m
    cdef long long j, npairs = 0
    cdef double f[3]
    cdef double d[3]
    cdef double d2max = dmax * dmax, r2
    with nogil:
        for a in range(n):
            j = J[a]
            has[a] = 0
            for k in range(lo[a], hi[a]):
                if ion[k] == ion[j]:
                    continue
                for m in range(3):
                    f[m] = mid[k, m] - mid[j, m]
                    f[m] -= _rint(f[m])
                for m in range(3):
                    d[m] = f[0] * cell[0, m] + f[1] * cell[1, m] + f[2] * cell[2, m]
                r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
                if r2 <= d2max:
                    has[a] = 1
                    npairs += 1
                    if not count_all:
                        break
    return npairs
