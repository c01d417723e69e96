# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Long-lived displacement functional h_i(t; a, Δt, t_a) (SPEC §3, paper 003 eq. 5)."""


def hop_functional(const double[:, :, ::1] pos,     # IN  (n_frames, n_atoms, 3) unwrapped positions, Å
                   double a,                        # IN  displacement threshold, Å
                   Py_ssize_t m_lo,                 # IN  smallest half-separation t'/dt (frames), >= 1
                   Py_ssize_t m_hi,                 # IN  largest half-separation t'/dt (frames), >= m_lo
                   unsigned char[:, ::1] out):      # OUT (n_frames, n_atoms) h (0 outside [m_hi, n_frames-1-m_hi])
    """h[t, i] = Π_{m=m_lo..m_hi} θ(|r_i(t+m) − r_i(t−m)| − a); no validation here.

    Frames t with t − m_hi < 0 or t + m_hi ≥ n_frames are left at 0 (the
    caller marks them undefined).  Each product stops at its first zero
    factor, starting from the widest separation (the most likely to pass).
    """
    cdef Py_ssize_t n_frames = pos.shape[0], n_atoms = pos.shape[1]
    cdef Py_ssize_t t, i, m
    cdef double dx, dy, dz, a2 = a * a
    cdef unsigned char h
    with nogil:
        for t in range(n_frames):
            for i in range(n_atoms):
                out[t, i] = 0
        for t in range(m_hi, n_frames - m_hi):
            for i in range(n_atoms):
                h = 1
                m = m_hi
                while m >= m_lo:
                    dx = pos[t + m, i, 0] - pos[t - m, i, 0]
                    dy = pos[t + m, i, 1] - pos[t - m, i, 1]
                    dz = pos[t + m, i, 2] - pos[t - m, i, 2]
                    if dx * dx + dy * dy + dz * dz < a2:
                        h = 0
                        break
                    m -= 1
                out[t, i] = h


def find_runs(const unsigned char[:, ::1] h,        # IN  (n_frames, n_atoms) 0/1
              long long[::1] atom,                  # OUT (n_runs,) column of each run
              long long[::1] start,                 # OUT (n_runs,) first frame of each run
              long long[::1] stop):                 # OUT (n_runs,) last frame + 1 of each run
    """Maximal runs of consecutive ones in each column of ``h``, atom-major order.

    Call first with zero-length outputs to count: returns the number of runs;
    only the first ``len(atom)`` runs are written.
    """
    cdef Py_ssize_t n_frames = h.shape[0], n_atoms = h.shape[1]
    cdef Py_ssize_t cap = atom.shape[0]
    cdef Py_ssize_t t, i, n = 0, s
    with nogil:
        for i in range(n_atoms):
            t = 0
            while t < n_frames:
                if h[t, i]:
                    s = t
                    while t < n_frames and h[t, i]:
                        t += 1
                    if n < cap:
                        atom[n] = i
                        start[n] = s
                        stop[n] = t
                    n += 1
                else:
                    t += 1
    return n
