"""Compiled periodic-boundary kernels (ext/_pbc.pyx) against their numpy twins and brute-force oracles."""

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from anionmotion.errors import OptionError
from anionmotion.kernels.pbc import (cell_list_shape, distance_histogram, distance_histogram_ref, distance_matrix,
                                     distance_matrix_ref, minimum_image, minimum_image_bruteforce,
                                     minimum_image_ref, perpendicular_widths)


def random_cell(rng, skew=0.35):
    """Right-handed triclinic cell (rows a, b, c) with moderate tilts, like LAMMPS/VASP cells."""
    L = rng.uniform(6, 14, 3)
    cell = np.diag(L)
    cell[1, 0] = rng.uniform(-skew, skew) * L[0]
    cell[2, 0] = rng.uniform(-skew, skew) * L[0]
    cell[2, 1] = rng.uniform(-skew, skew) * L[1]
    return cell


cells_st = st.integers(0, 10_000).map(lambda s: random_cell(np.random.default_rng(s)))


@settings(deadline=None, max_examples=60)
@given(cell=cells_st, frac=arrays(np.float64, (40, 3), elements=st.floats(-1.5, 1.5)))
def test_minimum_image_equals_bruteforce(cell, frac):
    d = frac @ cell
    got = minimum_image(d, cell)
    want = minimum_image_bruteforce(d, cell, n=3)
    npt.assert_allclose(np.linalg.norm(got, axis=1), np.linalg.norm(want, axis=1), atol=1e-9)
    # the result is an image of d: differs by a lattice vector
    k = (got - d) @ np.linalg.inv(cell)
    npt.assert_allclose(k, np.rint(k), atol=1e-9)
    # equal lengths (exact ties, e.g. s = 1.5, may pick different but equally short images)
    npt.assert_allclose(np.linalg.norm(got, axis=1), np.linalg.norm(minimum_image(d, cell, use_ext=False), axis=1),
                        atol=1e-9)


def test_minimum_image_per_frame_cells():
    rng = np.random.default_rng(1)
    cells = np.stack([random_cell(rng) for _ in range(4)])
    d = rng.uniform(-1, 1, (4, 7, 2, 3)) @ cells[:, None]
    d = d.reshape(4, 7, 2, 3)
    got = minimum_image(d, cells)
    assert got.shape == d.shape
    for t in range(4):
        npt.assert_allclose(got[t], minimum_image_ref(d[t], cells[t]), atol=1e-9)
    npt.assert_allclose(got, minimum_image(d, cells, use_ext=False), atol=1e-9)


def test_minimum_image_errors_and_edges():
    assert minimum_image(np.zeros((0, 3)), np.eye(3)).shape == (0, 3)
    npt.assert_allclose(minimum_image([6.0, 0, 0], np.eye(3) * 10), [-4.0, 0, 0])
    with pytest.raises(ValueError, match=r"d must have shape \(\.\.\., 3\)"):
        minimum_image(np.zeros((2, 2)), np.eye(3))
    with pytest.raises(ValueError, match=r"cell must have shape \(3, 3\) or \(n_frames, 3, 3\)"):
        minimum_image(np.zeros((2, 3)), np.zeros((3, 3, 3)))


def test_perpendicular_widths():
    npt.assert_allclose(perpendicular_widths(np.diag([3.0, 4.0, 5.0])), [3, 4, 5])
    cell = np.array([[10, 0, 0], [5, 8, 0], [0, 0, 7.0]])
    w = perpendicular_widths(cell)
    npt.assert_allclose(w, [560 / np.hypot(56, 35), 8.0, 7.0])
    npt.assert_array_equal(cell_list_shape(np.eye(3) * 10, 3.0), [3, 3, 3])
    npt.assert_array_equal(cell_list_shape(np.eye(3) * 10, 20.0), [1, 1, 1])


@settings(deadline=None, max_examples=40)
@given(seed=st.integers(0, 10_000), same=st.booleans(), rmax=st.floats(1.0, 16.0))
def test_distance_histogram_equals_every_image_search(seed, same, rmax):
    rng = np.random.default_rng(seed)
    cell = random_cell(rng)
    pa = rng.uniform(-0.5, 1.5, (2, 13, 3)) @ cell
    pb = rng.uniform(0, 1, (2, 9, 3)) @ cell
    h = distance_histogram(pa, pb, cell, rmax=rmax, n_bins=23, same=same)
    npt.assert_array_equal(h, distance_histogram_ref(pa, pb, cell, rmax=rmax, n_bins=23, same=same))


@settings(deadline=None, max_examples=25)
@given(seed=st.integers(0, 10_000), shift=arrays(np.float64, 3, elements=st.floats(-20, 20)),
       lattice=arrays(np.int64, 3, elements=st.integers(-2, 2)))
def test_distance_histogram_invariances(seed, shift, lattice):
    rng = np.random.default_rng(seed)
    cell = random_cell(rng)
    pa = rng.uniform(0, 1, (1, 30, 3)) @ cell
    h = distance_histogram(pa, None, cell, rmax=4.0, n_bins=40, same=True)
    perm = rng.permutation(30)
    moved = pa[:, perm] + shift
    moved[:, :5] += lattice @ cell  # some atoms by a lattice vector
    npt.assert_array_equal(distance_histogram(moved, None, cell, rmax=4.0, n_bins=40, same=True), h)


def test_distance_histogram_threads_and_edges():
    rng = np.random.default_rng(5)
    cell = np.eye(3) * 12
    p = rng.uniform(0, 12, (6, 50, 3))
    h1 = distance_histogram(p, None, cell, rmax=5, n_bins=10, same=True, threads=1)
    h2 = distance_histogram(p, None, cell, rmax=5, n_bins=10, same=True, threads=2)
    npt.assert_array_equal(h1, h2)
    assert distance_histogram(np.zeros((0, 3, 3)), None, cell, rmax=5, n_bins=4, same=True).tolist() == [0] * 4
    # one atom with itself: no pairs within half the box; its own images appear beyond it
    one = np.zeros((1, 1, 3))
    assert distance_histogram(one, None, cell, rmax=5, n_bins=5, same=True).sum() == 0
    h = distance_histogram(one, None, cell, rmax=12.5, n_bins=25, same=True)
    assert h.sum() == 6 and h[24] == 6
    with pytest.raises(OptionError, match="rmax must be a positive distance"):
        distance_histogram(p, None, cell, rmax=-1, n_bins=4, same=True)
    with pytest.raises(OptionError, match="n_bins must be a positive integer"):
        distance_histogram(p, None, cell, rmax=1, n_bins=0, same=True)
    with pytest.raises(ValueError, match=r"pos_b must have shape \(6, n, 3\)"):
        distance_histogram(p, p[:2], cell, rmax=1, n_bins=3)


def test_distance_matrix():
    rng = np.random.default_rng(9)
    cell = random_cell(rng)
    a = rng.uniform(0, 1, (7, 3)) @ cell
    b = rng.uniform(0, 1, (5, 3)) @ cell
    npt.assert_allclose(distance_matrix(a, b, cell), distance_matrix_ref(a, b, cell), atol=1e-12)
    npt.assert_allclose(distance_matrix(a, b, cell, use_ext=False), distance_matrix_ref(a, b, cell))
    assert distance_matrix(a[:0], b, cell).shape == (0, 5)
