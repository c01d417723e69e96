# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Fractional-grid binning of atom positions (SPEC §7): density grids and 1-D profiles.

No validation here: the façade ``anionmotion/kernels/grid.py`` checks shapes first.
"""

from libc.math cimport floor


cdef inline Py_ssize_t _cell_index(double s, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t b
    s = s - floor(s)                 # wrap into [0, 1)
    b = <Py_ssize_t>(s * n)
    if b >= n:                       # s = 1 - ε rounding up
        b = n - 1
    return b


def bin_fractional(const double[:, :, ::1] frac,     # IN  (n_frames, n_atoms, 3) fractional (any range)
                   const double[::1] weights,        # IN  (n_frames,) weight added per atom in each frame
                   double[:, :, ::1] grid):          # IN/OUT (nx, ny, nz) accumulated weights
    """grid[i, j, k] += w_t for every atom of frame t whose wrapped s falls in voxel (i, j, k)."""
    cdef Py_ssize_t T = frac.shape[0], n = frac.shape[1], t, i
    cdef Py_ssize_t nx = grid.shape[0], ny = grid.shape[1], nz = grid.shape[2]
    cdef double w
    with nogil:
        for t in range(T):
            w = weights[t]
            for i in range(n):
                grid[_cell_index(frac[t, i, 0], nx), _cell_index(frac[t, i, 1], ny),
                     _cell_index(frac[t, i, 2], nz)] += w


def bin_axis(const double[:, :, ::1] frac,           # IN  (n_frames, n_atoms, 3) fractional
             int axis,                               # IN  0, 1 or 2 (a, b, c)
             const double[::1] weights,              # IN  (n_frames,)
             double[::1] hist):                      # IN/OUT (n_bins,)
    """hist[k] += w_t for every atom whose wrapped s[axis] falls in bin k."""
    cdef Py_ssize_t T = frac.shape[0], n = frac.shape[1], t, i, nb = hist.shape[0]
    cdef double w
    with nogil:
        for t in range(T):
            w = weights[t]
            for i in range(n):
                hist[_cell_index(frac[t, i, axis], nb)] += w
