"""The cell list of a huge cell is capped (coarser bins) and stays exact: no overflow, no unbounded allocation."""
import numpy as np
from hypothesis import given, settings, strategies as st

from anionmotion.kernels import pbc


def test_cap_on_absurd_cells():
    n, reach = pbc._cell_grid(np.array([[1e30, 1e30, 1e30], [1e9, 20.0, 20.0], [20.0, 20.0, 20.0]]), 5.0)
    assert np.all(np.prod(n.astype(float), axis=1) <= pbc.MAX_CELL_LIST_BINS)
    assert np.all(n >= 1)
    assert list(n[2]) == [7, 7, 7] and list(reach[2]) == [2, 2, 2]      # ordinary cells are untouched
    assert np.prod(pbc.cell_list_shape(np.eye(3) * 1e12, 3.0).astype(float)) <= pbc.MAX_CELL_LIST_BINS


@settings(deadline=None, max_examples=30)
@given(seed=st.integers(0, 10_000), edge=st.sampled_from([40.0, 400.0, 4e4]), cap=st.sampled_from([1, 7, 64, 10_000]))
def test_capped_cell_list_histogram_equals_all_pairs(seed, edge, cap):
    rng = np.random.default_rng(seed)
    cell = np.diag([edge, edge * 1.3, edge * 0.9])
    cell[1, 0] = 0.2 * edge
    scale = min(1.0, 30.0 / edge)           # keep atoms close enough to have pairs within rmax
    fa, fb = rng.random((40, 3)) * scale, rng.random((55, 3)) * scale
    rmax = 6.0
    n, reach = pbc._cell_grid(pbc.perpendicular_widths(cell)[None], rmax)
    n = pbc._cap_bins(n, cap)
    assert np.prod(n) <= max(cap, 1)
    got, ref = np.zeros(24, np.int64), np.zeros(24, np.int64)
    idx = np.full(40, -1, np.int64)
    pbc._pbc.histogram_pairs(fa, fb, cell, idx, n[0], reach[0], rmax, False, got)
    pbc.histogram_pairs_ref(fa, fb, cell, idx, n[0], reach[0], rmax, False, ref)
    np.testing.assert_array_equal(got, ref)
