# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Frame-to-frame unwrapping in fractional coordinates (SPEC §1)."""

from libc.math cimport fabs, nearbyint


def unwrap_fractional(const double[:, :, ::1] frac,      # IN  (n_frames, n_atoms, 3) wrapped fractional
                      double[:, ::1] prev_wrapped,       # IN/OUT (n_atoms, 3) wrapped frac of the frame before
                      double[:, ::1] prev_unwrapped,     # IN/OUT (n_atoms, 3) unwrapped frac of the frame before
                      double[:, :, ::1] out,             # OUT (n_frames, n_atoms, 3) unwrapped fractional
                      double[:, ::1] max_jump):          # OUT (n_frames, n_atoms) max_k |Δs_k − round(Δs_k)|
    """Unwrap ``frac`` continuing from the state in ``prev_*``; no validation here.

    s(t) = s(t−1) + (Δs − round(Δs)), with Δs = frac(t) − frac(t−1).
    On return ``prev_wrapped``/``prev_unwrapped`` hold the last frame, so the
    next chunk continues seamlessly.
    """
    cdef Py_ssize_t n_frames = frac.shape[0], n_atoms = frac.shape[1]
    cdef Py_ssize_t t, i, k
    cdef double d, m, a
    with nogil:
        for t in range(n_frames):
            for i in range(n_atoms):
                m = 0.0
                for k in range(3):
                    d = frac[t, i, k] - prev_wrapped[i, k]
                    d = d - nearbyint(d)
                    a = fabs(d)
                    if a > m:
                        m = a
                    prev_unwrapped[i, k] = prev_unwrapped[i, k] + d
                    prev_wrapped[i, k] = frac[t, i, k]
                    out[t, i, k] = prev_unwrapped[i, k]
                max_jump[t, i] = m


def cart_to_frac(const double[:, :, ::1] pos,         # IN  (n_frames, n_atoms, 3) Å
                 const double[:, :, ::1] inv_cells,   # IN  (n_frames, 3, 3) inverse of the row-vector cell
                 double[:, :, ::1] out):              # OUT (n_frames, n_atoms, 3) fractional
    """s = r · H⁻¹ per frame (rows of H are a, b, c)."""
    cdef Py_ssize_t n_frames = pos.shape[0], n_atoms = pos.shape[1]
    cdef Py_ssize_t t, i, k
    cdef double x, y, z
    with nogil:
        for t in range(n_frames):
            for i in range(n_atoms):
                x = pos[t, i, 0]; y = pos[t, i, 1]; z = pos[t, i, 2]
                for k in range(3):
                    out[t, i, k] = x * inv_cells[t, 0, k] + y * inv_cells[t, 1, k] + z * inv_cells[t, 2, k]


def frac_to_cart(const double[:, :, ::1] frac,        # IN  (n_frames, n_atoms, 3)
                 const double[:, :, ::1] cells,       # IN  (n_frames, 3, 3) rows a, b, c (Å)
                 double[:, :, ::1] out):              # OUT (n_frames, n_atoms, 3) Å
    """r = s · H per frame."""
    cdef Py_ssize_t n_frames = frac.shape[0], n_atoms = frac.shape[1]
    cdef Py_ssize_t t, i, k
    cdef double x, y, z
    with nogil:
        for t in range(n_frames):
            for i in range(n_atoms):
                x = frac[t, i, 0]; y = frac[t, i, 1]; z = frac[t, i, 2]
                for k in range(3):
                    out[t, i, k] = x * cells[t, 0, k] + y * cells[t, 1, k] + z * cells[t, 2, k]
