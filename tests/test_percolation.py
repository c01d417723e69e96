"""Exact percolation levels (anionmotion.structures._percolation): the union-find image count against its plain
twin and BVlain's own routine on random periodic grids, analytic channels, lattice-shift and axis-permutation
invariance, and BVlain's bisected barriers reproduced exactly on the tests/data/bv structures."""

import contextlib
import io
import os

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from anionmotion.structures import _percolation as P

DATA = os.path.join(os.path.dirname(__file__), "data", "bv")


@st.composite
def _masks(draw, max_n=6):
    shape = tuple(draw(st.integers(1, max_n)) for _ in range(3))
    seed = draw(st.integers(0, 2 ** 31 - 1))
    p = draw(st.floats(0.1, 0.9))
    return np.random.default_rng(seed).random(shape) < p


@settings(max_examples=150, deadline=None)
@given(_masks())
def test_image_count_equals_the_tiled_twin(mask):
    assert P.image_count(mask) == P.image_count_reference(mask)


@settings(max_examples=60, deadline=None)
@given(_masks(), st.integers(0, 5), st.integers(0, 5), st.integers(0, 5), st.permutations([0, 1, 2]))
def test_image_count_invariant_under_lattice_shift_and_axis_permutation(mask, s1, s2, s3, perm):
    ref = P.image_count(mask)
    assert P.image_count(np.roll(mask, (s1, s2, s3), axis=(0, 1, 2))) == ref
    assert P.image_count(np.transpose(mask, perm)) == ref
    assert P.image_count(mask[::-1]) == ref


def _bvlain_count(mask):
    """BVlain's own predicate (its 2×2×2 tiling, face loop and image count) on a 0/1 grid."""
    from bvlain import Lain

    lain = Lain(verbose=False)
    lain.n_jobs, lain.backend = 1, "threading"
    data = np.where(mask, 0.0, 1.0)
    labels, features = lain._connected_components(data, 0.5)
    return lain._percolation_dimension(labels, features)


@settings(max_examples=60, deadline=None)
@given(_masks(max_n=5))
def test_image_count_equals_bvlain_on_grids_with_its_repeated_end_planes(mask):
    """BVlain's grids repeat the first plane as the last along every axis (fractional 0 and 1); on such grids
    its face-only periodic join is equivalent to full 26-connectivity and the counts agree."""
    full = np.concatenate([mask, mask[:1]], axis=0)
    full = np.concatenate([full, full[:, :1]], axis=1)
    full = np.concatenate([full, full[:, :, :1]], axis=2)
    assume(full.any() and not full.all())      # BVlain's labels need an open and a closed point
    assert P.image_count(full) == _bvlain_count(full)


def test_analytic_channels():
    m = np.zeros((5, 6, 7), dtype=bool)
    assert P.image_count(m) == 0
    m[2, 3, 3] = True
    assert P.image_count(m) == 1                       # an isolated pocket
    m[:, 3, 3] = True
    assert P.image_count(m) == 2                       # a channel along a
    m[:, :, 3] = True
    assert P.image_count(m) == 4                       # a plane a-b
    m[2, 3, :] = True
    assert P.image_count(m) == 8                       # plus a channel along c
    d = np.zeros((6, 6, 6), dtype=bool)
    d[np.arange(6), np.arange(6), 0] = True            # a diagonal channel along a + b
    assert P.image_count(d) == 2
    e = np.zeros((4, 4, 4), dtype=bool)
    e[np.arange(4), np.arange(4), np.arange(4)] = True    # along a + b + c, through the cell corners
    assert P.image_count(e) == 2


def test_levels_and_bisection_on_an_analytic_landscape():
    """A channel along a at 0 eV, separated by 0.5 eV barriers in b and 1.25 eV in c, on a 1-eV floor."""
    e = np.ones((8, 9, 10))
    e[:, 4, 5] = 0.0
    e[:, :, 5] = np.where(e[:, :, 5] == 0, 0, 0.5)
    e[:, 4, :] = np.where(e[:, 4, :] < 1, e[:, 4, :], 1.25)
    lev = P.percolation_levels(e)
    assert lev == {"E_1D": 0.0, "E_2D": 0.5, "E_3D": 1.0}
    bis = {k: P.bvlain_bisection(v) for k, v in lev.items()}
    for k, v in lev.items():
        assert v < bis[k] <= v + 0.01
    assert P.percolation_levels(e, encut=0.9)["E_3D"] == np.inf
    assert P.bvlain_bisection(np.inf) == np.inf


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 9.99))
def test_bisection_replay_brackets_the_exact_level(level):
    b = P.bvlain_bisection(level)
    assert level < b <= level + 0.0101


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2 ** 31 - 1))
def test_levels_equal_a_scan_over_every_grid_value(seed):
    """Twin of the binary search: the image count at every distinct level, smallest level reaching 2/4/8."""
    rng = np.random.default_rng(seed)
    e = rng.random(tuple(rng.integers(2, 6, 3)))
    lev = P.percolation_levels(e, counter=P.image_count_reference)
    vals = np.unique(e - e.min())
    counts = [P.image_count_reference(e - e.min() <= v) for v in vals]
    for d, need in P.DIMENSION_IMAGES.items():
        first = next((v for v, c in zip(vals, counts) if c >= need), np.inf)
        assert lev[f"E_{d}"] == first
    assert lev == P.percolation_levels(e)


@pytest.mark.parametrize("name,ions", [("Li3PO4_gamma", ("Li1+", "O2-")), ("NaNO3", ("Na1+", "O2-")),
                                       ("Li3PS4_gamma", ("Li1+", "S2-"))])
def test_barriers_equal_bvlain_on_real_structures(name, ions):
    """BVlain's percolation_barriers on its own grid, and the replay from the exact levels: the same numbers."""
    from bvlain import Lain

    for ion in ions:
        lain = Lain(verbose=False)
        with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
            lain.read_file(os.path.join(DATA, f"{name}.vasp"))
            lain.bvse_distribution(mobile_ion=ion, r_cut=10.0, resolution=0.4, k=100)
            ref = lain.percolation_barriers(encut=10.0)
        mine, exact = P.barriers_like_bvlain(lain.data, encut=10.0, exact=True)
        assert mine == {k: float(v) for k, v in ref.items()}
        for k in ref:
            assert exact[k] < mine[k] <= exact[k] + 0.01
            assert P.bvlain_bisection(exact[k]) == mine[k]    # the replay from the exact level


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2 ** 31 - 1), st.floats(0.05, 10.0))
def test_probing_equals_the_replay_from_exact_levels(seed, scale):
    """Monotonicity: BVlain's bisection with the count at each probe = the replay from the exact level."""
    rng = np.random.default_rng(seed)
    e = rng.random(tuple(rng.integers(2, 7, 3))) * scale
    bars, exact = P.barriers_like_bvlain(e, encut=10.0, exact=True)
    assert bars == {k: P.bvlain_bisection(v) for k, v in exact.items()}
