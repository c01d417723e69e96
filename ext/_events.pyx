# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Event kernels with a resetting reference (SPEC §4–5): anion rotation
events (angle threshold, or symmetry-aware site permutation) and cation
residence runs.  No validation here; see ``anionmotion/kernels/events.py``."""


def rotation_events_threshold(const double[:, :, :, ::1] u,   # IN  (n_frames, n_anions, n_lig, 3) unit vectors (NaN = padding)
                              double cos_threshold,           # IN  cos of the threshold angle
                              double[:, :, ::1] ref,          # IN/OUT (n_anions, n_lig, 3) reference orientation
                              unsigned char[:, ::1] flags):   # OUT (n_frames, n_anions) 1 = event at this frame
    """An anion rotates when any ligand makes an angle larger than the threshold
    with its direction at the anion's last event; the reference then resets to
    the current ligand directions."""
    cdef Py_ssize_t n_frames = u.shape[0], n_an = u.shape[1], n_lig = u.shape[2]
    cdef Py_ssize_t t, a, l, k
    cdef double c
    cdef bint ev
    with nogil:
        for t in range(n_frames):
            for a in range(n_an):
                ev = False
                for l in range(n_lig):
                    c = u[t, a, l, 0] * ref[a, l, 0] + u[t, a, l, 1] * ref[a, l, 1] + u[t, a, l, 2] * ref[a, l, 2]
                    if c < cos_threshold:      # NaN compares false: padding never triggers
                        ev = True
                        break
                flags[t, a] = 1 if ev else 0
                if ev:
                    for l in range(n_lig):
                        for k in range(3):
                            ref[a, l, k] = u[t, a, l, k]


def rotation_events_symmetry(const double[:, :, :, ::1] u,    # IN  (n_frames, n_anions, n_lig, 3) unit vectors
                             const long long[::1] n_valid,    # IN  (n_anions,) ligands of each anion (first n_valid)
                             double cos_tolerance,            # IN  cos of the site tolerance angle
                             double[:, :, ::1] ref,           # IN/OUT (n_anions, n_lig, 3) reference sites
                             long long[:, ::1] site,          # WORK (n_anions, n_lig)
                             double[:, ::1] tmp,              # WORK (n_lig, 3)
                             unsigned char[:, ::1] flags):    # OUT (n_frames, n_anions)
    """Symmetry-aware events: every ligand sits within the tolerance of a
    reference site, the sites are all different, and at least one ligand sits
    on another ligand's site (the anion has jumped to a symmetry-equivalent
    orientation).  Frames where some ligand is between sites are undecided.
    At each event the reference resets: ligand i takes the site it now
    occupies (ref[i] ← ref[site[i]]), so the site set stays the crystal-fixed
    set of the first frame and only the labels move."""
    cdef Py_ssize_t n_frames = u.shape[0], n_an = u.shape[1], n_lig = u.shape[2]
    cdef Py_ssize_t t, a, i, j, k, best_j, nv
    cdef double c, best
    cdef bint ok, moved
    with nogil:
        for t in range(n_frames):
            for a in range(n_an):
                nv = n_valid[a]
                ok = True
                moved = False
                for i in range(nv):
                    best = -2.0
                    best_j = -1
                    for j in range(nv):
                        c = u[t, a, i, 0] * ref[a, j, 0] + u[t, a, i, 1] * ref[a, j, 1] + u[t, a, i, 2] * ref[a, j, 2]
                        if c > best:
                            best = c
                            best_j = j
                    if not (best >= cos_tolerance):
                        ok = False
                        break
                    site[a, i] = best_j
                    if best_j != i:
                        moved = True
                if ok and moved:
                    # a permutation: no two ligands on the same site
                    for i in range(nv):
                        for j in range(i + 1, nv):
                            if site[a, i] == site[a, j]:
                                ok = False
                if ok and moved:
                    flags[t, a] = 1
                    for i in range(nv):
                        for k in range(3):
                            tmp[i, k] = ref[a, site[a, i], k]
                    for i in range(nv):
                        for k in range(3):
                            ref[a, i, k] = tmp[i, k]
                else:
                    flags[t, a] = 0


def residence_runs(const unsigned char[:, ::1] inside,        # IN  (n_frames, n_pairs) 1 = cation in the shell
                   Py_ssize_t min_len,                        # IN  minimum run length (frames)
                   long long[:, ::1] out):                    # OUT (capacity, 3) rows (pair, first frame, stop frame)
    """Maximal runs of consecutive ``inside = 1`` of at least ``min_len``
    frames, for every pair; returns the number of rows written (ordered by
    pair, then time).  ``stop`` is exclusive."""
    cdef Py_ssize_t n_frames = inside.shape[0], n_pairs = inside.shape[1]
    cdef Py_ssize_t p, t, start, n = 0
    with nogil:
        for p in range(n_pairs):
            start = -1
            for t in range(n_frames + 1):
                if t < n_frames and inside[t, p]:
                    if start < 0:
                        start = t
                else:
                    if start >= 0:
                        if t - start >= min_len:
                            out[n, 0] = p
                            out[n, 1] = start
                            out[n, 2] = t
                            n += 1
                        start = -1
    return n
