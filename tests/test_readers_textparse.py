"""Compiled text kernels (ext/_textparse.pyx) against their Python twins and against float()."""

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anionmotion.kernels import textparse as tp


def _buf(text):
    return np.frombuffer(text.encode(), dtype=np.uint8)


def _xyz(frames, species="Li"):
    out = []
    for f in frames:
        out.append(f"{len(f)}\ncomment\n")
        out.extend(f"{species} {float(x)!r} {float(y)!r} {float(z)!r}\n" for x, y, z in f)
    return "".join(out)


# ----------------------------------------------------------------------------- number parser
@settings(deadline=None, max_examples=300)
@given(x=st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_parse_double_is_correctly_rounded(x):
    for s in (repr(x), f"{x:.6e}", f"{x:.10f}", f"{x:g}", f"{x:.17g}", f"{x:.3E}"):
        v, end = tp.parse_double_at(_buf(s + " "), 0)
        assert v == float(s), s
        assert end == len(s)


@pytest.mark.parametrize("text,value", [("1.5D+02", 150.0), ("-0.0", -0.0), ("+3.", 3.0), (".5", 0.5),
                                        ("1e400", np.inf), ("1.25d-1", 0.125),
                                        ("0.000000000000000000000000123", 1.23e-25),
                                        ("12345678901234567890123", 12345678901234567890123.0)])
def test_parse_double_special(text, value):
    v, _ = tp.parse_double_at(_buf(text + "\n"), 0)
    assert v == value


def test_parse_double_nan_and_garbage():
    assert np.isnan(tp.parse_double_at(_buf("nan\n"), 0)[0])
    for bad in ("abc", "1e", "1.2.3", "--1", "1x"):
        with pytest.raises(ValueError, match="not a number"):
            tp.parse_double_at(_buf(bad + " "), 0)


# ----------------------------------------------------------------------------- index + parse vs twins
@settings(deadline=None, max_examples=40)
@given(n_frames=st.integers(1, 6), n_atoms=st.integers(1, 7), seed=st.integers(0, 2**31 - 1),
       cut=st.integers(0, 50))
def test_index_xyz_matches_twin(n_frames, n_atoms, seed, cut):
    rng = np.random.default_rng(seed)
    text = _xyz(rng.normal(size=(n_frames, n_atoms, 3)) * 10)
    text = text[: max(1, len(text) - cut)]
    buf = _buf(text)
    a = tp.index_xyz(buf, 0, n_atoms)
    b = tp.index_xyz(buf, 0, n_atoms, use_ext=False)
    npt.assert_array_equal(a[0], b[0])
    assert a[1:] == b[1:]


@settings(deadline=None, max_examples=40)
@given(n_frames=st.integers(1, 5), n_atoms=st.integers(1, 6), seed=st.integers(0, 2**31 - 1),
       sel_seed=st.integers(0, 1000))
def test_parse_frames_matches_twin_and_values(n_frames, n_atoms, seed, sel_seed):
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(n_frames, n_atoms, 3)) * 10.0 ** rng.integers(-3, 4)
    buf = _buf(_xyz(data))
    offs, status, _, _ = tp.index_xyz(buf, 0, n_atoms)
    assert status == tp.OK and len(offs) == n_frames
    colmap = np.array([-1, 0, 1, 2], dtype=np.int64)
    sel = np.sort(np.random.default_rng(sel_seed).choice(n_atoms, size=max(1, n_atoms // 2), replace=False))
    rowmap = np.full(n_atoms, -1, np.int64)
    rowmap[sel] = np.arange(len(sel))
    out1 = np.zeros((n_frames, len(sel), 3))
    out2 = np.zeros_like(out1)
    assert tp.parse_frames(buf, offs, 2, n_atoms, colmap, rowmap, out1)[0] == tp.OK
    assert tp.parse_frames(buf, offs, 2, n_atoms, colmap, rowmap, out2, use_ext=False)[0] == tp.OK
    npt.assert_array_equal(out1, out2)
    npt.assert_array_equal(out1, data[:, sel])


def test_index_xyz_statuses():
    good = _xyz(np.zeros((2, 3, 3)))
    buf = _buf(good + "4\ncomment\n")
    offs, status, pos, value = tp.index_xyz(buf, 0, 3)
    assert (len(offs), status, value) == (2, tp.BADHEAD, 4)
    offs, status, pos, value = tp.index_xyz(_buf(good + "3\nc\nLi 0 0 0\n"), 0, 3)
    assert (len(offs), status, value) == (2, tp.TRUNC, 1)
    offs, status, pos, value = tp.index_xyz(_buf(good + "x\n"), 0, 3)
    assert (status, value) == (tp.BADHEAD, -1)
    offs, status, _, _ = tp.index_xyz(_buf(good + "\n\n  \n"), 0, 3)
    assert (len(offs), status) == (2, tp.OK)
    # many frames: the index grows past its first allocation
    big = _xyz(np.zeros((3000, 1, 3)))
    offs, status, _, _ = tp.index_xyz(_buf(big), 0, 1)
    assert (len(offs), status) == (3000, tp.OK)
    assert np.all(np.diff(offs) > 0)


def test_parse_frames_errors_name_row_and_token():
    buf = _buf("2\nc\nLi 1 2 3\nLi 4 x 6\n")
    offs = np.array([0], np.int64)
    out = np.zeros((1, 2, 3))
    st_ = tp.parse_frames(buf, offs, 2, 2, np.array([-1, 0, 1, 2]), np.arange(2), out)
    assert st_[0] == tp.BADNUM and st_[2] == 1 and st_[4] == 2
    assert st_ == tp.parse_frames(buf, offs, 2, 2, np.array([-1, 0, 1, 2]), np.arange(2), out, use_ext=False)
    buf = _buf("2\nc\nLi 1 2 3\nLi 4 5\n")
    st_ = tp.parse_frames(buf, offs, 2, 2, np.array([-1, 0, 1, 2]), np.arange(2), out)
    assert st_[0] == tp.FEWTOK and st_[2] == 1 and st_[4] == 3
    with pytest.raises(ValueError, match="rowmap must have length"):
        tp.parse_frames(buf, offs, 2, 2, np.array([0]), np.arange(3), out)


@settings(deadline=None, max_examples=30)
@given(n_frames=st.integers(1, 4), n_atoms=st.integers(1, 5), blank=st.booleans(), header=st.booleans(),
       cut=st.integers(0, 40))
def test_index_xdatcar_matches_twin(n_frames, n_atoms, blank, header, cut):
    head = "sys\n1.0\n5 0 0\n0 5 0\n0 0 5\nLi\n%d\n" % n_atoms
    parts = [] if header else [head]
    for k in range(n_frames):
        if header:
            parts.append(head)
        parts.append("\n" if blank else f"Direct configuration= {k + 1}\n")
        parts.extend("0.1 0.2 0.3\n" for _ in range(n_atoms))
    text = "".join(parts)
    text = text[: max(1, len(text) - cut)]
    buf = _buf(text)
    pos0 = 0 if header else len(head)
    nh = 7 if header else 0
    a = tp.index_xdatcar(buf, pos0, nh, n_atoms)
    b = tp.index_xdatcar(buf, pos0, nh, n_atoms, use_ext=False)
    npt.assert_array_equal(a[0], b[0])
    assert a[1:] == b[1:]


def test_token_spans_matches_twin():
    buf = _buf("  Li 1 2 3\nO\t4 5 6\n\nNa 1\n")
    a = tp.token_spans(buf, 0, 4, 0)
    b = tp.token_spans(buf, 0, 4, 0, use_ext=False)
    for x, y in zip(a, b):
        npt.assert_array_equal(x, y)
    assert bytes(buf[a[0][1]:a[1][1]]) == b"O"
    assert a[0][2] == -1  # blank row


def test_count_newlines_and_skip():
    buf = _buf("a\nb\nc\nd")
    assert tp.count_newlines(buf, 0, len(buf)) == 3
    assert tp.skip_lines(buf, 0, 2) == (4, 2)
    assert tp.skip_lines(buf, 0, 10) == (len(buf), 4)


def test_threaded_parse_equals_single_and_reports_global_frame():
    rng = np.random.default_rng(7)
    data = rng.normal(size=(40, 600, 3))
    text = _xyz(data)
    buf = _buf(text)
    offs, _, _, _ = tp.index_xyz(buf, 0, 600)
    colmap = np.array([-1, 0, 1, 2])
    out1 = np.empty((40, 600, 3))
    out2 = np.empty((40, 600, 3))
    assert tp.parse_frames(buf, offs, 2, 600, colmap, np.arange(600), out1, threads=2)[0] == tp.OK
    assert tp.parse_frames(buf, offs, 2, 600, colmap, np.arange(600), out2, threads=1)[0] == tp.OK
    npt.assert_array_equal(out1, data)
    npt.assert_array_equal(out2, data)
    # an error in the second half is reported with its index in the whole range
    lines = text.split("\n")
    lines[35 * 602 + 2 + 10] = "Li 1 2 zz"
    buf = _buf("\n".join(lines))
    offs, _, _, _ = tp.index_xyz(buf, 0, 600)
    res = tp.parse_frames(buf, offs, 2, 600, colmap, np.arange(600), out1, threads=2)
    assert res[:3] == (tp.BADNUM, 35, 10) and res[4] == 3
