"""Unwrapping kernels (SPEC §1): compiled vs numpy twin, analytic cases, hypothesis properties."""

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from anionmotion.kernels.unwrap import cart_to_frac, frac_to_cart, unwrap_fractional


@settings(deadline=None, max_examples=50)
@given(steps=arrays(np.float64, (20, 5, 3), elements=st.floats(-0.3, 0.3)),
       shift=arrays(np.int64, (20, 5, 3), elements=st.integers(-3, 3)))
def test_unwrap_removes_any_integer_shift(steps, shift):
    walk = np.cumsum(steps, axis=0)
    out, jump = unwrap_fractional(walk + shift)
    npt.assert_allclose(out - out[0], walk - walk[0], atol=1e-12)
    assert np.all(jump <= 0.3 + 1e-12)


@settings(deadline=None, max_examples=30)
@given(steps=arrays(np.float64, (15, 4, 3), elements=st.floats(-0.45, 0.45)))
def test_compiled_equals_numpy_twin(steps):
    walk = np.cumsum(steps, axis=0)
    wrapped = walk - np.floor(walk)
    a, ja = unwrap_fractional(wrapped)
    b, jb = unwrap_fractional(wrapped, use_ext=False)
    npt.assert_allclose(a, b, atol=1e-13)
    npt.assert_allclose(ja, jb, atol=1e-13)


def test_continuity_across_chunks():
    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.uniform(-0.2, 0.2, (50, 6, 3)), axis=0)
    wrapped = walk - np.floor(walk)
    whole, _ = unwrap_fractional(wrapped)
    prev_w = wrapped[0].copy()
    prev_u = wrapped[0].copy()
    parts = []
    for lo in range(0, 50, 7):
        out, _ = unwrap_fractional(wrapped[lo:lo + 7], prev_w, prev_u)
        parts.append(out)
    npt.assert_allclose(np.concatenate(parts), whole, atol=1e-13)


def test_jump_reports_the_ambiguous_displacement():
    frac = np.zeros((3, 1, 3))
    frac[1, 0, 0] = 0.4
    out, jump = unwrap_fractional(frac)
    assert jump[1, 0] == pytest.approx(0.4)
    assert jump[2, 0] == pytest.approx(0.4)


def test_edge_cases_zero_and_one_frame():
    out, jump = unwrap_fractional(np.zeros((0, 3, 3)))
    assert out.shape == (0, 3, 3) and jump.shape == (0, 3)
    one = np.full((1, 2, 3), 0.7)
    out, jump = unwrap_fractional(one)
    npt.assert_array_equal(out, one)


def test_bad_shape_message():
    with pytest.raises(ValueError, match=r"frac must have shape \(n, n, 3\); got \(4, 2\)"):
        unwrap_fractional(np.zeros((4, 2)))


@settings(deadline=None, max_examples=30)
@given(tilt=arrays(np.float64, (3,), elements=st.floats(-0.5, 0.5)),
       lengths=arrays(np.float64, (3,), elements=st.floats(3.0, 20.0)))
def test_frac_cart_round_trip_triclinic(tilt, lengths):
    cell = np.diag(lengths)
    cell[1, 0] = tilt[0] * lengths[0]
    cell[2, 0] = tilt[1] * lengths[0]
    cell[2, 1] = tilt[2] * lengths[1]
    rng = np.random.default_rng(0)
    pos = rng.uniform(-30, 30, (4, 7, 3))
    cells = np.broadcast_to(cell, (4, 3, 3)).copy()
    s = cart_to_frac(pos, cells)
    npt.assert_allclose(s, pos @ np.linalg.inv(cell), atol=1e-10)
    npt.assert_allclose(frac_to_cart(s, cells), pos, atol=1e-10)
    npt.assert_allclose(cart_to_frac(pos, cells, use_ext=False), s, atol=1e-12)
    npt.assert_allclose(frac_to_cart(s, cells, use_ext=False), pos, atol=1e-10)


@settings(deadline=None, max_examples=40)
@given(steps=arrays(np.float64, (12, 4, 3), elements=st.floats(-0.45, 0.45)),
       cut=st.integers(1, 11), use_ext=st.booleans())
def test_in_place_equals_new_arrays(steps, cut, use_ext):
    """``out=`` the input itself (how the trajectory unwraps a chunk it owns) gives the same bits, chunk by chunk."""
    walk = np.cumsum(steps, axis=0)
    wrapped = walk - np.floor(walk)
    cells = np.tile(np.array([[4.0, 0.0, 0.0], [0.5, 5.0, 0.0], [0.2, -0.3, 6.0]]), (12, 1, 1))
    cart = frac_to_cart(wrapped, cells, use_ext=use_ext)
    frac_new = cart_to_frac(cart, cells, use_ext=use_ext)
    buf = cart.copy()
    frac_in = cart_to_frac(buf, cells, use_ext=use_ext, out=buf)
    assert frac_in is buf
    npt.assert_array_equal(frac_in, frac_new)
    pw, pu = frac_new[0].copy(), frac_new[0].copy()
    ref = [unwrap_fractional(frac_new[lo:hi], pw, pu, use_ext=use_ext) for lo, hi in ((0, cut), (cut, 12))]
    pw, pu = frac_in[0].copy(), frac_in[0].copy()
    for (lo, hi), (r, jr) in zip(((0, cut), (cut, 12)), ref):
        part = frac_in[lo:hi]
        out, jump = unwrap_fractional(part, pw, pu, use_ext=use_ext, out=part)
        assert np.shares_memory(out, buf)
        npt.assert_array_equal(jump, jr)
    ref = np.concatenate([r for r, _ in ref])
    npt.assert_array_equal(buf, ref)
    back = frac_to_cart(buf, cells, use_ext=use_ext, out=buf)
    npt.assert_array_equal(back, frac_to_cart(ref, cells, use_ext=use_ext))


def test_out_must_fit():
    x = np.zeros((2, 3, 3))
    with pytest.raises(ValueError, match="out must be"):
        cart_to_frac(x, np.tile(np.eye(3), (2, 1, 1)), out=np.zeros((2, 3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="out must be"):
        unwrap_fractional(x, out=np.zeros((2, 2, 3)))


@settings(deadline=None, max_examples=40)
@given(steps=arrays(np.float64, (17, 5, 3), elements=st.floats(-0.49, 0.49)),
       block_bytes=st.integers(1, 400), use_ext=st.booleans())
def test_summary_equals_the_full_jump_table(steps, block_bytes, use_ext):
    """unwrap_fractional_summary (jump table in blocks) gives the numbers and the warning facts of one call."""
    import anionmotion.kernels.unwrap as uw

    walk = np.cumsum(steps, axis=0)
    wrapped = walk - np.floor(walk)
    p0 = wrapped[0].copy()
    full, jump = unwrap_fractional(wrapped, p0.copy(), p0.copy(), use_ext=True)
    old = uw.JUMP_BLOCK_BYTES
    uw.JUMP_BLOCK_BYTES = block_bytes
    try:
        buf = wrapped.copy()
        out, (n_over, t, i, largest) = uw.unwrap_fractional_summary(buf, p0.copy(), p0.copy(), 0.35, out=buf,
                                                                    use_ext=use_ext)
    finally:
        uw.JUMP_BLOCK_BYTES = old
    if use_ext:
        npt.assert_array_equal(out, full)
    else:
        npt.assert_allclose(out, full, atol=1e-12)
    assert n_over == int(np.count_nonzero(jump > 0.35))
    k = int(np.argmax(jump))
    assert (t, i) == divmod(k, 5)
    assert largest == jump.flat[k]
