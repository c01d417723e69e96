# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Polyanion kernels (SPEC §4): minimum-image centre→ligand vectors and the
C2 product series.  No validation here; the façade
``anionmotion/kernels/polyanion.py`` checks every input."""

from libc.math cimport nearbyint, sqrt


cdef inline void _min_image(double dx, double dy, double dz,
                            const double[:, :, ::1] cells, const double[:, :, ::1] inv_cells,
                            Py_ssize_t t, double half_w2, double* out) noexcept nogil:
    """Shortest periodic image of (dx, dy, dz) in the cell of frame t (27-image search when needed)."""
    cdef double s0, s1, s2, x, y, z, r2, best, cx, cy, cz
    cdef int i, j, k
    s0 = dx * inv_cells[t, 0, 0] + dy * inv_cells[t, 1, 0] + dz * inv_cells[t, 2, 0]
    s1 = dx * inv_cells[t, 0, 1] + dy * inv_cells[t, 1, 1] + dz * inv_cells[t, 2, 1]
    s2 = dx * inv_cells[t, 0, 2] + dy * inv_cells[t, 1, 2] + dz * inv_cells[t, 2, 2]
    s0 = s0 - nearbyint(s0)
    s1 = s1 - nearbyint(s1)
    s2 = s2 - nearbyint(s2)
    x = s0 * cells[t, 0, 0] + s1 * cells[t, 1, 0] + s2 * cells[t, 2, 0]
    y = s0 * cells[t, 0, 1] + s1 * cells[t, 1, 1] + s2 * cells[t, 2, 1]
    z = s0 * cells[t, 0, 2] + s1 * cells[t, 1, 2] + s2 * cells[t, 2, 2]
    best = x * x + y * y + z * z
    out[0] = x; out[1] = y; out[2] = z
    if best < half_w2:
        # shorter than half the narrowest cell width: provably the minimum image
        return
    for i in range(-1, 2):
        for j in range(-1, 2):
            for k in range(-1, 2):
                if i == 0 and j == 0 and k == 0:
                    continue
                cx = x + i * cells[t, 0, 0] + j * cells[t, 1, 0] + k * cells[t, 2, 0]
                cy = y + i * cells[t, 0, 1] + j * cells[t, 1, 1] + k * cells[t, 2, 1]
                cz = z + i * cells[t, 0, 2] + j * cells[t, 1, 2] + k * cells[t, 2, 2]
                r2 = cx * cx + cy * cy + cz * cz
                if r2 < best:
                    best = r2
                    out[0] = cx; out[1] = cy; out[2] = cz


def ligand_vectors(const double[:, :, ::1] pos,          # IN  (n_frames, n_atoms, 3) Å
                   const double[:, :, ::1] cells,        # IN  (n_frames, 3, 3) Å, rows a, b, c
                   const double[:, :, ::1] inv_cells,    # IN  (n_frames, 3, 3) inverse cells
                   const double[::1] half_width2,        # IN  (n_frames,) (min interplanar spacing / 2)² Å²
                   const long long[::1] centers,         # IN  (n_anions,) atom index of each reference atom
                   const long long[:, ::1] ligands,      # IN  (n_anions, n_lig) atom indices, -1 = padding
                   double[:, :, :, ::1] out):            # OUT (n_frames, n_anions, n_lig, 3) Å (NaN for padding)
    """Minimum-image vectors centre→ligand for every frame, anion and ligand."""
    cdef Py_ssize_t n_frames = pos.shape[0], n_an = ligands.shape[0], n_lig = ligands.shape[1]
    cdef Py_ssize_t t, a, l, c, g
    cdef double v[3]
    cdef double nan = float("nan")
    with nogil:
        for t in range(n_frames):
            for a in range(n_an):
                c = centers[a]
                for l in range(n_lig):
                    g = ligands[a, l]
                    if g < 0:
                        out[t, a, l, 0] = nan; out[t, a, l, 1] = nan; out[t, a, l, 2] = nan
                        continue
                    _min_image(pos[t, g, 0] - pos[t, c, 0], pos[t, g, 1] - pos[t, c, 1],
                               pos[t, g, 2] - pos[t, c, 2], cells, inv_cells, t, half_width2[t], v)
                    out[t, a, l, 0] = v[0]; out[t, a, l, 1] = v[1]; out[t, a, l, 2] = v[2]


def pair_vectors(const double[:, :, ::1] pos,            # IN  (n_frames, n_atoms, 3) Å
                 const double[:, :, ::1] cells,          # IN  (n_frames, 3, 3)
                 const double[:, :, ::1] inv_cells,      # IN  (n_frames, 3, 3)
                 const double[::1] half_width2,          # IN  (n_frames,)
                 const long long[::1] first,             # IN  (n_pairs,) atom index i
                 const long long[::1] second,            # IN  (n_pairs,) atom index j
                 double[:, :, ::1] out):                 # OUT (n_frames, n_pairs, 3) min-image r_j − r_i, Å
    """Minimum-image vectors r_j − r_i for a list of atom pairs in every frame."""
    cdef Py_ssize_t n_frames = pos.shape[0], n_pairs = first.shape[0]
    cdef Py_ssize_t t, p, i, j
    cdef double v[3]
    with nogil:
        for t in range(n_frames):
            for p in range(n_pairs):
                i = first[p]; j = second[p]
                _min_image(pos[t, j, 0] - pos[t, i, 0], pos[t, j, 1] - pos[t, i, 1],
                           pos[t, j, 2] - pos[t, i, 2], cells, inv_cells, t, half_width2[t], v)
                out[t, p, 0] = v[0]; out[t, p, 1] = v[1]; out[t, p, 2] = v[2]


def normalize_vectors(double[:, :, ::1] u):              # IN/OUT (n_frames, n_vec, 3) → unit vectors
    """Divide every vector by its length in place (zero-length vectors become NaN)."""
    cdef Py_ssize_t n_frames = u.shape[0], n_vec = u.shape[1]
    cdef Py_ssize_t t, i
    cdef double r
    with nogil:
        for t in range(n_frames):
            for i in range(n_vec):
                r = sqrt(u[t, i, 0] * u[t, i, 0] + u[t, i, 1] * u[t, i, 1] + u[t, i, 2] * u[t, i, 2])
                if r > 0:
                    u[t, i, 0] = u[t, i, 0] / r; u[t, i, 1] = u[t, i, 1] / r; u[t, i, 2] = u[t, i, 2] / r
                else:
                    u[t, i, 0] = r / r; u[t, i, 1] = r / r; u[t, i, 2] = r / r


def fill_components(const double[:, :, ::1] u,           # IN  (n_frames, n_vec, 3) unit vectors
                    Py_ssize_t v0,                       # IN  first vector of the block
                    double[:, ::1] c1buf,                # OUT (3 * n_block, n_pad) zero-padded u_k series
                    double[:, ::1] c2buf):               # OUT (6 * n_block, n_pad) zero-padded u_k u_l series
    """Copy a block of vectors into zero-padded rows for the FFT correlations.

    Rows of ``c1buf``: u_x, u_y, u_z of vector v0 + b (row 3b + k).  Rows of
    ``c2buf``: u_x², u_y², u_z², u_x u_y, u_x u_z, u_y u_z (row 6b + m).  The
    padding beyond n_frames must already be zero.
    """
    cdef Py_ssize_t n_frames = u.shape[0], n_block = c1buf.shape[0] // 3
    cdef Py_ssize_t t, b, v
    cdef double x, y, z
    with nogil:
        for b in range(n_block):
            v = v0 + b
            for t in range(n_frames):
                x = u[t, v, 0]; y = u[t, v, 1]; z = u[t, v, 2]
                c1buf[3 * b, t] = x; c1buf[3 * b + 1, t] = y; c1buf[3 * b + 2, t] = z
                c2buf[6 * b, t] = x * x; c2buf[6 * b + 1, t] = y * y; c2buf[6 * b + 2, t] = z * z
                c2buf[6 * b + 3, t] = x * y; c2buf[6 * b + 4, t] = x * z; c2buf[6 * b + 5, t] = y * z
