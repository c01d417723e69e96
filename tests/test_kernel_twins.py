"""Every compiled kernel (ext/*.pyx) against its plain numpy/Python twin, under hypothesis on random inputs.

One test per exported kernel, registered with :func:`twin`; ``test_every_kernel_has_a_twin_test``
introspects the compiled modules (and the ``def`` lines of ext/*.pyx) and fails when a kernel has no
test here, or when a test names a twin that is not a function of ``anionmotion.kernels``.

Most kernels are called directly (``anionmotion._ext.<module>.<kernel>``) with the same arguments as the
twin, so the comparison covers the kernel's own contract (status codes, error positions, in/out arrays);
where the twin only exists at the façade (``use_ext=False``), the façade is called both ways.  Integer
and text results must be equal; floating-point results equal to rounding when the twin sums in another
order, and bit for bit where the twin repeats the kernel's arithmetic.
"""

import importlib
import inspect
import os
import pkgutil
import re

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import anionmotion._ext as ext_pkg
from anionmotion._ext import _lammps, _msd, _pbc
from anionmotion.kernels import events as ev
from anionmotion.kernels import grid as gr
from anionmotion.kernels import hops as hp
from anionmotion.kernels import lammps as lk
from anionmotion.kernels import msd as mk
from anionmotion.kernels import pbc
from anionmotion.kernels import polyanion as pk
from anionmotion.kernels import sites as sk
from anionmotion.kernels import textparse as tp
from anionmotion.kernels import unwrap as uw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

KERNEL_TESTS = {}
"""``"_module.kernel"`` → (twin, the hypothesis test comparing them)."""


def twin(kernel, ref):
    """Register the decorated test as the twin comparison of compiled ``kernel`` (``"_module.name"``).

    Other test modules may register theirs with ``from test_kernel_twins import twin`` (outermost decorator,
    above ``@settings``/``@given``); :func:`test_every_kernel_has_a_twin_test` imports every
    tests/test_*.py that does.
    """
    def deco(fn):
        old = KERNEL_TESTS.get(kernel)
        assert old is None or old[1].__qualname__ == fn.__qualname__, f"two twin tests for {kernel}"
        KERNEL_TESTS[kernel] = (ref, fn)
        return fn
    return deco


FAST = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow])
TEXT = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
seeds = st.integers(0, 2**32 - 1)


def u8(data: bytes):
    return np.frombuffer(data, dtype=np.uint8)


def same_or_both_raise(f, g, *args):
    """(True, a, b) when both calls return, (False, None, None) when both raise ValueError; else fail."""
    try:
        a = f(*args)
    except ValueError:
        with pytest.raises(ValueError):
            g(*args)
        return False, None, None
    return True, a, g(*args)


def assert_float_equal(a, b):
    """Equal floats, NaN equal to NaN, and the sign of zero kept."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    npt.assert_array_equal(a, b)
    npt.assert_array_equal(np.signbit(a), np.signbit(b))


def random_cell(rng, lo=6.0, hi=12.0, tilt=0.3):
    """A random triclinic cell (rows a, b, c), lower-triangular with modest tilts (never very skewed)."""
    d = rng.uniform(lo, hi, 3)
    c = np.diag(d)
    c[1, 0] = rng.uniform(-tilt, tilt) * d[0]
    c[2, 0] = rng.uniform(-tilt, tilt) * d[0]
    c[2, 1] = rng.uniform(-tilt, tilt) * d[1]
    return c


# ============================================================================ text tokens
NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=False, width=64).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: f"{x:.6e}"),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: f"{x:.17g}"),
    st.floats(-1e6, 1e6).map(lambda x: f"{x:.5f}"),
    st.integers(-10**25, 10**25).map(str),
    st.sampled_from(["nan", "-nan", "inf", "-Infinity", "NaN", "+.5", "5.", "-0", "0e0", "1e-400", "1e400",
                     "0x1.8p3", "1_0", "1.5D+02", "2d-3", "1e", "1.2.3", "--1", "+", "-", ".", "e5", "1x", "x",
                     "1e+", "0000000000000000000000000000000000001.25", "12345678901234567890123",
                     "0.000000000000000000000000123", "9007199254740993", "4.9e-324", "2.2250738585072014e-308"]),
    st.text(alphabet="0123456789.+-eEdDnaifx_", min_size=1, max_size=12),
)
BLANK = st.sampled_from(["", " ", "\t", "\n", "\r\n", "\x0b", "\x0c", "  \n"])


# ============================================================================ _textparse
@twin("_textparse.parse_double_at", tp.parse_double_at_ref)
@TEXT
@given(prefix=st.text(alphabet="ab 1\n", max_size=4), tok=NUMBER_TEXT, after=BLANK,
       tail=st.text(alphabet="7 x\n", max_size=3))
def test_parse_double_at(prefix, tok, after, tail):
    buf = u8((prefix + tok + after + tail).encode())
    ok, a, b = same_or_both_raise(tp.parse_double_at, tp.parse_double_at_ref, buf, len(prefix))
    if ok:
        assert_float_equal(a[0], b[0])
        assert a[1] == b[1]


TEXT_LINES = st.text(alphabet="ab1 \t\r\n", max_size=60)


@twin("_textparse.skip_lines", tp.skip_lines_ref)
@FAST
@given(text=TEXT_LINES, pos_frac=st.floats(0, 1), n_lines=st.integers(0, 12))
def test_skip_lines(text, pos_frac, n_lines):
    buf = u8(text.encode())
    pos = int(pos_frac * len(buf))
    assert tuple(tp.skip_lines(buf, pos, n_lines)) == tuple(tp.skip_lines_ref(buf, pos, n_lines))


@twin("_textparse.count_newlines", tp.count_newlines_ref)
@FAST
@given(text=TEXT_LINES, a=st.floats(0, 1), b=st.floats(0, 1))
def test_count_newlines(text, a, b):
    buf = u8(text.encode())
    start, stop = sorted((int(a * len(buf)), int(b * len(buf))))
    assert tp.count_newlines(buf, start, stop) == tp.count_newlines_ref(buf, start, stop)
    assert tp.count_newlines(buf, stop, start) == tp.count_newlines_ref(buf, stop, start)


def _xyz_text(rng, n_frames, n_atoms, bad_count):
    parts = []
    for f in range(n_frames):
        n = n_atoms + (1 if f == bad_count else 0)
        parts.append(f"{n}\n frame {f}\n")
        parts.extend(f"Li {x!r} {y!r} {z!r}\n" for x, y, z in rng.normal(size=(n, 3)).tolist())
    return "".join(parts)


@twin("_textparse.index_xyz", tp.index_xyz_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(0, 6), n_atoms=st.integers(1, 5), bad=st.integers(-1, 6),
       cut=st.floats(0, 1), trailer=st.sampled_from(["", "\n", "\n \n", "x\n", "3.5\n"]))
def test_index_xyz(seed, n_frames, n_atoms, bad, cut, trailer):
    rng = np.random.default_rng(seed)
    text = _xyz_text(rng, n_frames, n_atoms, bad)
    buf = u8((text[: int(len(text) * cut) if cut < 0.9 else len(text)] + trailer).encode())
    a = tp.index_xyz(buf, 0, n_atoms)
    b = tp.index_xyz_ref(buf, 0, n_atoms)
    npt.assert_array_equal(a[0], b[0])
    assert tuple(a[1:]) == tuple(b[1:])


@twin("_textparse.index_xdatcar", tp.index_xdatcar_ref)
@FAST
@given(n_frames=st.integers(0, 5), n_atoms=st.integers(1, 4), header=st.booleans(),
       sep=st.sampled_from(["Direct configuration= 1\n", "cartesian\n", "Konfig=1\n", "\n", "  \n", "bogus\n"]),
       cut=st.floats(0, 1))
def test_index_xdatcar(n_frames, n_atoms, header, sep, cut):
    head = "sys\n1.0\n5 0 0\n0 5 0\n0 0 5\nLi\n%d\n" % n_atoms
    parts = [] if header else [head]
    for _ in range(n_frames):
        if header:
            parts.append(head)
        parts.append(sep)
        parts.extend("0.1 0.2 0.3\n" for _ in range(n_atoms))
    text = "".join(parts)
    text = text[: int(len(text) * cut) if cut < 0.9 else len(text)]
    buf = u8(text.encode())
    pos0 = 0 if header else min(len(head), len(buf))
    a = tp.index_xdatcar(buf, pos0, 7 if header else 0, n_atoms)
    b = tp.index_xdatcar_ref(buf, pos0, 7 if header else 0, n_atoms)
    npt.assert_array_equal(a[0], b[0])
    assert tuple(a[1:]) == tuple(b[1:])


ROW_TOKEN = st.one_of(NUMBER_TEXT, st.sampled_from(["Li", "O", "S"]))


@twin("_textparse.parse_frames", tp.parse_frames_ref)
@TEXT
@given(rows=st.lists(st.lists(ROW_TOKEN, min_size=0, max_size=5), min_size=1, max_size=8),
       seps=st.lists(st.sampled_from([" ", "\t", "  ", " \r"]), min_size=1, max_size=3),
       n_rows=st.integers(1, 4), skip=st.integers(0, 2), seed=seeds, ncol=st.integers(0, 3))
def test_textparse_parse_frames(rows, seps, n_rows, skip, seed, ncol):
    rng = np.random.default_rng(seed)
    text = "".join(seps[i % len(seps)].join(r) + "\n" for i, r in enumerate(rows))
    buf = u8(text.encode())
    starts = np.unique(rng.integers(0, len(buf) + 1, size=rng.integers(1, 4)))
    line_starts = np.array([0] + [m.end() for m in re.finditer(b"\n", bytes(buf))][:-1], np.int64)
    offsets = np.unique(np.concatenate([line_starts[rng.integers(0, len(line_starts), 2)], starts[:1]]))
    colmap = rng.integers(-1, 3, size=ncol).astype(np.int64)
    rowmap = np.where(rng.random(n_rows) < 0.3, -1, rng.permutation(n_rows)).astype(np.int64)
    out1 = np.full((len(offsets), n_rows, 3), 7.0)
    out2 = out1.copy()
    r1 = tp.parse_frames(buf, offsets, skip, n_rows, colmap, rowmap, out1, threads=1)
    r2 = tp.parse_frames(buf, offsets, skip, n_rows, colmap, rowmap, out2, use_ext=False)
    event(f"status {r2[0]}")
    assert tuple(r1) == tuple(r2)
    assert_float_equal(out1, out2)


@twin("_textparse.token_spans", tp.token_spans_ref)
@TEXT
@given(text=st.text(alphabet="Li O\t\r\n x", max_size=50), pos_frac=st.floats(0, 1), n_rows=st.integers(0, 8),
       tok=st.integers(0, 3))
def test_token_spans(text, pos_frac, n_rows, tok):
    buf = u8(text.encode())
    pos = int(pos_frac * len(buf))
    a = tp.token_spans(buf, pos, n_rows, tok)
    b = tp.token_spans_ref(buf, pos, n_rows, tok)
    npt.assert_array_equal(a[0], b[0])
    npt.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]


# ============================================================================ _lammps
def _dump(rng, n_frames, n_atoms, kind, time, units, cols):
    parts = []
    for f in range(n_frames):
        if units:
            parts.append("ITEM: UNITS\nmetal\n")
        if time:
            parts.append(f"ITEM: TIME\n{float(rng.uniform(0, 100))!r}\n")
        parts.append(f"ITEM: TIMESTEP\n{10 * f}\nITEM: NUMBER OF ATOMS\n{n_atoms}\n")
        if kind == 0:
            parts.append("ITEM: BOX BOUNDS pp pp pp\n" + "".join(f"0 {float(rng.uniform(5, 9))!r}\n" for _ in range(3)))
        elif kind == 1:
            parts.append("ITEM: BOX BOUNDS xy xz yz pp pp pp\n"
                         + "".join(f"0 {float(rng.uniform(5, 9))!r} {float(rng.uniform(-1, 1))!r}\n" for _ in range(3)))
        else:
            parts.append("ITEM: BOX BOUNDS abc origin pp pp pp\n"
                         + "".join(" ".join(repr(float(v)) for v in rng.uniform(0, 5, 4)) + "\n" for _ in range(3)))
        parts.append("ITEM: ATOMS " + " ".join(cols) + "\n")
        for i in rng.permutation(n_atoms):
            parts.append(f"{i + 1} {rng.integers(1, 3)} " + " ".join(f"{v:.{rng.integers(1, 12)}g}"
                                                                    for v in rng.normal(size=len(cols) - 2)) + "\n")
    return "".join(parts)


@twin("_lammps.scan_frames", lk.scan_frames_ref)
@TEXT
@given(seed=seeds, n_frames=st.integers(1, 4), n_atoms=st.integers(0, 5), kind=st.integers(0, 2),
       time=st.booleans(), units=st.booleans(), ncols=st.integers(3, 6), cut=st.floats(0, 1), at_eof=st.booleans(),
       cap=st.integers(1, 4), crlf=st.booleans(), base=st.integers(0, 10**6), line0=st.integers(1, 1000))
def test_scan_frames(seed, n_frames, n_atoms, kind, time, units, ncols, cut, at_eof, cap, crlf, base, line0):
    rng = np.random.default_rng(seed)
    cols = ["id", "type", "x", "y", "z", "vx"][:ncols]
    text = _dump(rng, n_frames, n_atoms, kind, time, units, cols)
    if crlf:
        text = text.replace("\n", "\r\n")
    data = text.encode()
    data = data[: int(len(data) * cut) if cut < 0.8 else len(data)]
    out = []
    for fn in (_lammps.scan_frames, lk.scan_frames_ref):
        ints = np.zeros((cap, lk.INTS_WIDTH), np.int64)
        box = np.zeros((cap, lk.BOX_WIDTH))
        status = np.zeros(5, np.int64)
        fn(data, base, line0, at_eof, ints, box, status)
        out.append((ints[: status[1]], box[: status[1]], status))
    event(f"status {out[1][2][0]}, {min(out[1][2][1], 2)}+ frames")
    npt.assert_array_equal(out[0][2], out[1][2])
    npt.assert_array_equal(out[0][0], out[1][0])
    assert_float_equal(out[0][1], out[1][1])


ID_TOKEN = st.one_of(st.integers(1, 9).map(str), st.sampled_from(["0", "-2", "+3", "007", "x", "1.0", "99",
                                                                    "1234567890123456789", "00000000001"]))


@twin("_lammps.parse_frames", lk.parse_frames_ref)
@TEXT
@given(seed=seeds, n_frames=st.integers(1, 3), n_atoms=st.integers(1, 6), n_vals=st.integers(1, 3),
       n_skip=st.integers(0, 2), id_col=st.integers(0, 5), corrupt=st.lists(st.tuples(st.integers(0, 40),
                                                                                      st.integers(0, 7),
                                                                                      st.one_of(ROW_TOKEN, ID_TOKEN,
                                                                                                st.just(""))),
                                                                            max_size=3),
       extra=st.integers(0, 3))
@example(seed=1, n_frames=1, n_atoms=3, n_vals=2, n_skip=0, id_col=0, corrupt=[(0, 0, "99")], extra=0)   # 13
@example(seed=1, n_frames=1, n_atoms=3, n_vals=2, n_skip=0, id_col=0, corrupt=[(1, 0, "-2")], extra=0)   # 12
@example(seed=1, n_frames=2, n_atoms=3, n_vals=2, n_skip=0, id_col=0, corrupt=[(3, 0, "1"), (4, 0, "1")],
         extra=0)                                                                                         # 14
@example(seed=1, n_frames=1, n_atoms=3, n_vals=2, n_skip=0, id_col=1, corrupt=[(2, 0, "x")], extra=0)    # 11
@example(seed=1, n_frames=1, n_atoms=3, n_vals=2, n_skip=1, id_col=1, corrupt=[(2, 9, "7")], extra=0)    # 10
def test_lammps_parse_frames(seed, n_frames, n_atoms, n_vals, n_skip, id_col, corrupt, extra):
    rng = np.random.default_rng(seed)
    roles = [lk.ROLE_SKIP] * n_skip + list(rng.permutation(n_vals))
    roles.insert(min(id_col, len(roles)), lk.ROLE_ID)
    roles = np.array(roles, np.int32)
    ncol = len(roles)
    max_id = n_atoms + extra
    ids = rng.choice(np.arange(1, max_id + 1), size=n_atoms, replace=False)
    id2idx = np.full(max_id + 1, -1, np.int64)
    id2idx[np.sort(ids)] = np.arange(n_atoms)
    idx2out = np.full(n_atoms, -1, np.int64)
    wanted = rng.random(n_atoms) < 0.7
    idx2out[wanted] = rng.permutation(int(wanted.sum()))
    lines = []
    for f in range(n_frames):
        for i in rng.permutation(ids):
            toks = [repr(float(v)) for v in rng.normal(size=ncol)]
            toks[int(np.nonzero(roles == lk.ROLE_ID)[0][0])] = str(i)
            lines.append(toks)
    for where, col, tok in corrupt:
        row = lines[where % len(lines)]
        if tok == "":
            del row[col % len(row)]                       # a missing column
        elif col >= len(row):
            row.append(tok)                               # an extra column
        else:
            row[col] = tok
    text = "".join(" ".join(r) + rng.choice(["\n", " \n", "\r\n"]) for r in lines)
    data = text.encode()
    line_starts = [0] + [m.end() for m in re.finditer(b"\n", data)]
    starts = np.array([line_starts[f * n_atoms] for f in range(n_frames)], np.int64)
    n_out = max(int(idx2out.max()) + 1, 1)
    res = []
    for fn in (_lammps.parse_frames, lk.parse_frames_ref):
        out = np.full((n_frames, n_out, n_vals), -5.0)
        seen = np.zeros(n_atoms, np.int64)
        err = np.zeros(4, np.int64)
        code = fn(data, starts, n_atoms, roles, id2idx, idx2out, out, seen, 1, err)
        res.append((code, out, seen, err))
    event(f"status {res[1][0]}")
    assert res[0][0] == res[1][0]
    npt.assert_array_equal(res[0][3], res[1][3])
    assert_float_equal(res[0][1], res[1][1])
    npt.assert_array_equal(res[0][2], res[1][2])


@twin("_lammps.parse_columns", lk.parse_columns_ref)
@TEXT
@given(rows=st.lists(st.lists(ROW_TOKEN, max_size=5), min_size=0, max_size=6), natoms=st.integers(0, 7),
       roles=st.lists(st.integers(-2, 2), min_size=0, max_size=4),
       ends=st.sampled_from(["\n", "\r\n", " \n", "\x01\n"]), last_newline=st.booleans())
def test_parse_columns(rows, natoms, roles, ends, last_newline):
    text = ends.join(" ".join(r) for r in rows) + (ends if last_newline and rows else "")
    roles = np.array(roles, np.int32)
    res = []
    for fn in (_lammps.parse_columns, lk.parse_columns_ref):
        out = np.full((natoms, 3), -5.0)
        err = np.zeros(4, np.int64)
        code = fn(text.encode(), natoms, roles, out, err)
        res.append((code, out, err))
    event(f"status {res[1][0]}")
    assert res[0][0] == res[1][0]
    npt.assert_array_equal(res[0][2], res[1][2])
    assert_float_equal(res[0][1], res[1][1])


@twin("_lammps.column_tokens", lk.column_tokens_ref)
@TEXT
@given(rows=st.lists(st.lists(st.text(alphabet="LiOSNa123", min_size=1, max_size=6), max_size=4), max_size=6),
       natoms=st.integers(0, 7), col=st.integers(0, 3), width=st.integers(1, 5),
       sep=st.sampled_from([" ", "\t", " \x02 ", "  "]))
def test_column_tokens(rows, natoms, col, width, sep):
    text = "".join(sep.join(r) + "\n" for r in rows)
    res = []
    for fn in (_lammps.column_tokens, lk.column_tokens_ref):
        out = np.zeros((natoms, width), np.uint8)
        res.append((fn(text.encode(), natoms, col, out), out))
    assert res[0][0] == res[1][0]
    npt.assert_array_equal(res[0][1], res[1][1])


@twin("_lammps.parse_float_tokens", lk.parse_float_tokens_ref)
@TEXT
@given(toks=st.lists(NUMBER_TEXT, max_size=12), seps=st.lists(BLANK, min_size=1, max_size=3),
       cap=st.integers(0, 14))
def test_parse_float_tokens(toks, seps, cap):
    text = "".join(t + (seps[i % len(seps)] or " ") for i, t in enumerate(toks))
    res = []
    for fn in (_lammps.parse_float_tokens, lk.parse_float_tokens_ref):
        out = np.full(cap, -5.0)
        res.append((fn(text.encode(), out), out))
    assert res[0][0] == res[1][0]
    assert_float_equal(res[0][1], res[1][1])


# ============================================================================ _msd
def _close(a, b, scale=1.0):
    npt.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * scale)


@twin("_msd.gather_block_tm", mk.gather_block_tm_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(0, 40), n_atoms=st.integers(1, 6), drift=st.booleans(), pad=st.integers(0, 9))
def test_gather_block_tm(seed, n_frames, n_atoms, drift, pad):
    rng = np.random.default_rng(seed)
    pos = np.cumsum(rng.normal(size=(n_frames, n_atoms, 3)), axis=0) + rng.uniform(-50, 50, (n_atoms, 3))
    a0 = int(rng.integers(0, n_atoms))
    nb = int(rng.integers(0, n_atoms - a0 + 1))
    d = rng.normal(size=(n_frames, 3)) if drift else np.zeros((0, 3))
    res = []
    for fn in (_msd.gather_block_tm, mk.gather_block_tm_ref):
        buf = np.zeros((3 * max(nb, 1), n_frames + pad))
        sq = np.full((3, n_frames), 0.5)
        ends = np.full((1, 3), 0.25)
        fn(pos, a0, nb, d, buf, sq, ends)
        res.append((buf, sq, ends))
    for x, y in zip(*res):
        _close(x, y, 1e4)


@twin("_msd.gather_block_am", mk.gather_block_am_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(0, 40), nb=st.integers(0, 5), pad=st.integers(0, 9))
def test_gather_block_am(seed, n_frames, nb, pad):
    rng = np.random.default_rng(seed)
    src = np.cumsum(rng.normal(size=(nb, 3, n_frames)), axis=2) + rng.uniform(-50, 50, (nb, 3, 1))
    res = []
    for fn in (_msd.gather_block_am, mk.gather_block_am_ref):
        buf = np.zeros((3 * max(nb, 1), n_frames + pad))
        sq = np.full((3, n_frames), 0.5)
        ends = np.full((1, 3), 0.25)
        fn(src, buf, sq, ends)
        res.append((buf, sq, ends))
    for x, y in zip(*res):
        _close(x, y, 1e4)


@twin("_msd.subtract_drift_am", mk.subtract_drift_am_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(0, 30), n_atoms=st.integers(0, 5), t0=st.integers(0, 10))
def test_subtract_drift_am(seed, n_frames, n_atoms, t0):
    rng = np.random.default_rng(seed)
    block = rng.normal(size=(n_atoms, 3, n_frames)) * 10
    drift = rng.normal(size=(n_frames + t0, 3))
    a, b = block.copy(), block.copy()
    _msd.subtract_drift_am(a, drift, t0)
    mk.subtract_drift_am_ref(b, drift, t0)
    npt.assert_array_equal(a, b)


@twin("_msd.accumulate_power", mk.accumulate_power_ref)
@FAST
@given(seed=seeds, nb=st.integers(0, 5), extra_rows=st.integers(0, 4), n_freq=st.integers(1, 30))
def test_accumulate_power(seed, nb, extra_rows, n_freq):
    rng = np.random.default_rng(seed)
    F = rng.normal(size=(3 * nb + extra_rows, n_freq)) + 1j * rng.normal(size=(3 * nb + extra_rows, n_freq))
    p1 = np.full((3, n_freq), 1.5)
    p2 = p1.copy()
    _msd.accumulate_power(np.ascontiguousarray(F), nb, p1)
    mk.accumulate_power_ref(F, nb, p2)
    _close(p1, p2, 100)


@twin("_msd.s1_recursion", mk.s1_recursion_ref)
@FAST
@given(seed=seeds, n=st.integers(0, 60))
def test_s1_recursion(seed, n):
    sq = np.random.default_rng(seed).uniform(0, 5, (3, n))
    o1, o2 = np.zeros((3, n)), np.zeros((3, n))
    _msd.s1_recursion(sq, o1)
    mk.s1_recursion_ref(sq, o2)
    # the recursion subtracts from the total: its rounding error is relative to 2 Σ sq, not to each entry
    npt.assert_allclose(o1, o2, rtol=0, atol=1e-12 * max(1.0, 2 * sq.sum(axis=1).max(initial=0)))


@twin("_msd.msd_pairs", mk.msd_pairs_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(0, 12), n_atoms=st.integers(0, 4), drop=st.integers(0, 3),
       log=st.booleans())
def test_msd_pairs(seed, n_frames, n_atoms, drop, log):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.choice([0.5, 1.0, 2.0], size=n_frames)) if not log else np.round(
        np.geomspace(0.1, 100.0, n_frames), 6) if n_frames else np.zeros(0)
    pos = np.cumsum(rng.normal(size=(n_frames, n_atoms, 3)), axis=0)
    keys, q = mk.lag_keys(t)
    keys = keys[:max(len(keys) - drop, 0)] if drop < 3 else keys[::2].copy()   # missing lags: the "bad" return
    keys = np.ascontiguousarray(keys, np.int64)
    res = []
    for fn in (_msd.msd_pairs, mk.msd_pairs_ref):
        acc = np.zeros((len(keys), 3))
        cnt = np.zeros(len(keys), np.int64)
        bad = fn(pos, t, keys, q, acc, cnt)
        res.append((bad, acc, cnt))
    assert res[0][0] == res[1][0]
    npt.assert_array_equal(res[0][2], res[1][2])
    _close(res[0][1], res[1][1], 1e3)


@twin("_msd.msd_covariance", mk.msd_covariance_ref)
@FAST
@given(n_frames=st.integers(2, 40), data=st.data(), s2=st.floats(0, 3), e2=st.floats(0, 3))
def test_msd_covariance(n_frames, data, s2, e2):
    lags = np.array(sorted(data.draw(st.sets(st.integers(1, n_frames - 1), min_size=1, max_size=6))), np.int64)
    o1, o2 = np.zeros((len(lags), len(lags))), np.zeros((len(lags), len(lags)))
    _msd.msd_covariance(lags, n_frames, s2, e2, o1)
    mk.msd_covariance_ref(lags, n_frames, s2, e2, o2)
    npt.assert_allclose(o1, o2, rtol=1e-9, atol=1e-12 * (1 + (s2 * n_frames + e2) ** 2))


# ============================================================================ _pbc
@twin("_pbc.min_image_triclinic", pbc.min_image_triclinic_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(1, 3), n=st.integers(0, 30), scale=st.floats(0.1, 30))
def test_min_image_triclinic(seed, n_frames, n, scale):
    rng = np.random.default_rng(seed)
    cells = np.stack([random_cell(rng) for _ in range(n_frames)])
    inv = np.linalg.inv(cells)
    d = rng.normal(size=(n_frames, n, 3)) * scale
    o1, o2 = np.empty_like(d), np.empty_like(d)
    _pbc.min_image_triclinic(d, cells, inv, o1)
    pbc.min_image_triclinic_ref(d, cells, inv, o2)
    npt.assert_array_equal(o1, o2)
    for t in range(n_frames):   # an image of d (a lattice vector apart), and no image within ±2 cells is shorter
        shift = (o1[t] - d[t]) @ inv[t]
        npt.assert_allclose(shift, np.rint(shift), atol=1e-9)
        npt.assert_allclose(np.linalg.norm(o1[t], axis=-1),
                            np.linalg.norm(pbc.minimum_image_bruteforce(o1[t], cells[t]), axis=-1), atol=1e-9)


@twin("_pbc.distances_min_image", pbc.distances_min_image_ref)
@FAST
@given(seed=seeds, na=st.integers(0, 12), nb=st.integers(0, 12), spread=st.floats(0.5, 4))
def test_distances_min_image(seed, na, nb, spread):
    rng = np.random.default_rng(seed)
    cell = random_cell(rng)
    fa = rng.uniform(-spread, spread, (na, 3))
    fb = rng.uniform(-spread, spread, (nb, 3))
    o1, o2 = np.empty((na, nb)), np.empty((na, nb))
    _pbc.distances_min_image(fa, fb, cell, o1)
    pbc.distances_min_image_ref(fa, fb, cell, o2)
    npt.assert_array_equal(o1, o2)
    npt.assert_allclose(o1, pbc.distance_matrix_ref(fa @ cell, fb @ cell, cell), atol=1e-9)


def _hist_args(rng, n_frames, na, nb, same, rmax_frac):
    cells = np.stack([random_cell(rng) for _ in range(n_frames)])
    widths = pbc.perpendicular_widths(cells)
    rmax = float(rmax_frac * 0.5 * widths.min())
    fa = rng.uniform(-1.5, 2.5, (n_frames, na, 3))
    fb = fa if same else rng.uniform(-1.5, 2.5, (n_frames, nb, 3))
    n_cells, reach = (np.ascontiguousarray(x, dtype=np.int64) for x in pbc._cell_grid(widths, rmax))
    return cells, rmax, fa, fb, n_cells, reach


@twin("_pbc.histogram_pairs", pbc.histogram_pairs_ref)
@FAST
@given(seed=seeds, na=st.integers(0, 40), nb=st.integers(0, 40), mode=st.sampled_from(["ab", "half", "self"]),
       rmax_frac=st.floats(0.05, 1.0), n_bins=st.integers(1, 40))
def test_histogram_pairs(seed, na, nb, mode, rmax_frac, n_bins):
    rng = np.random.default_rng(seed)
    cells, rmax, fa, fb, n_cells, reach = _hist_args(rng, 1, na, nb, mode != "ab", rmax_frac)
    self_idx = np.arange(na, dtype=np.int64) if mode == "self" else np.full(na, -1, np.int64)
    res = []
    for fn in (_pbc.histogram_pairs, pbc.histogram_pairs_ref):
        h = np.full(n_bins, 3, np.int64)
        fn(np.ascontiguousarray(fa[0]), np.ascontiguousarray(fb[0]), cells[0], self_idx, n_cells[0], reach[0],
           rmax, mode == "half", h)
        res.append(h)
    npt.assert_array_equal(res[0], res[1])


@twin("_pbc.histogram_pairs_frames", pbc.histogram_pairs_frames_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(0, 3), na=st.integers(0, 30), nb=st.integers(0, 30),
       mode=st.sampled_from(["ab", "half", "self"]), rmax_frac=st.floats(0.05, 1.0), n_bins=st.integers(1, 30))
def test_histogram_pairs_frames(seed, n_frames, na, nb, mode, rmax_frac, n_bins):
    rng = np.random.default_rng(seed)
    cells, rmax, fa, fb, n_cells, reach = _hist_args(rng, max(n_frames, 1), na, nb, mode != "ab", rmax_frac)
    cells, fa, fb = cells[:n_frames], fa[:n_frames], fb[:n_frames]
    n_cells, reach = np.ascontiguousarray(n_cells[:n_frames]), np.ascontiguousarray(reach[:n_frames])
    self_idx = np.arange(na, dtype=np.int64) if mode == "self" else np.full(na, -1, np.int64)
    res = []
    for fn in (_pbc.histogram_pairs_frames, pbc.histogram_pairs_frames_ref):
        h = np.zeros(n_bins, np.int64)
        fn(np.ascontiguousarray(fa), np.ascontiguousarray(fb), np.ascontiguousarray(cells), self_idx, n_cells,
           reach, rmax, mode == "half", h)
        res.append(h)
    npt.assert_array_equal(res[0], res[1])


# ============================================================================ _polyanion
def _poly_system(rng, n_frames, n_anions, n_lig, n_other):
    cells = np.stack([random_cell(rng) for _ in range(n_frames)])
    n_atoms = n_anions * (1 + n_lig) + n_other
    frac = rng.uniform(-0.5, 1.5, (n_frames, n_atoms, 3))
    pos = np.einsum("tik,tkl->til", frac, cells)
    centers = np.arange(n_anions, dtype=np.int64)
    ligands = (n_anions + np.arange(n_anions * n_lig)).reshape(n_anions, n_lig).astype(np.int64)
    if ligands.size:
        ligands[rng.random(ligands.shape) < 0.2] = -1
    return pos, cells, centers, ligands


@twin("_polyanion.ligand_vectors", pk.ligand_vectors_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(1, 3), n_anions=st.integers(1, 4), n_lig=st.integers(1, 4),
       n_other=st.integers(0, 3))
def test_ligand_vectors(seed, n_frames, n_anions, n_lig, n_other):
    rng = np.random.default_rng(seed)
    pos, cells, centers, ligands = _poly_system(rng, n_frames, n_anions, n_lig, n_other)
    a = pk.ligand_vectors(pos, cells, centers, ligands)
    b = pk.ligand_vectors(pos, cells, centers, ligands, use_ext=False)
    npt.assert_allclose(a, b, rtol=0, atol=1e-9)          # NaN where padded, in both


@twin("_polyanion.pair_vectors", pk.pair_vectors_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(1, 3), n_pairs=st.integers(0, 10))
def test_pair_vectors(seed, n_frames, n_pairs):
    rng = np.random.default_rng(seed)
    pos, cells, _, _ = _poly_system(rng, n_frames, 2, 2, 4)
    first = rng.integers(0, pos.shape[1], n_pairs)
    second = rng.integers(0, pos.shape[1], n_pairs)
    a = pk.pair_vectors(pos, cells, first, second)
    b = pk.pair_vectors(pos, cells, first, second, use_ext=False)
    npt.assert_allclose(a, b, rtol=0, atol=1e-9)


@twin("_polyanion.normalize_vectors", pk.normalize_vectors_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(0, 4), n_vec=st.integers(0, 6), zeros=st.floats(0, 0.5))
def test_normalize_vectors(seed, n_frames, n_vec, zeros):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n_frames, n_vec, 3)) * rng.uniform(1e-3, 1e3)
    u[rng.random(u.shape[:2]) < zeros] = 0.0
    a = pk.normalize_vectors(u)
    b = pk.normalize_vectors(u, use_ext=False)
    npt.assert_allclose(a, b, rtol=1e-14, atol=0)
    npt.assert_array_equal(np.isnan(a), np.isnan(b))


@twin("_polyanion.fill_components", pk.fill_components_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(0, 20), n_vec=st.integers(1, 6), pad=st.integers(0, 8))
def test_fill_components(seed, n_frames, n_vec, pad):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n_frames, n_vec, 3))
    v0 = int(rng.integers(0, n_vec))
    nb = int(rng.integers(1, n_vec - v0 + 1))
    res = []
    for use_ext in (True, False):
        c1 = np.zeros((3 * nb, n_frames + pad))
        c2 = np.zeros((6 * nb, n_frames + pad))
        pk.fill_components(u, v0, c1, c2, use_ext=use_ext)
        res.append((c1, c2))
    npt.assert_array_equal(res[0][0], res[1][0])
    npt.assert_array_equal(res[0][1], res[1][1])


# ============================================================================ _events
def _random_rotor_series(rng, n_frames, n_anions, n_lig, step_deg):
    """Unit vectors of rigid ligand sets turning by small random rotations (and some NaN padding)."""
    from scipy.spatial.transform import Rotation

    base = rng.normal(size=(n_anions, n_lig, 3))
    base /= np.linalg.norm(base, axis=-1, keepdims=True)
    rot = Rotation.random(n_anions, random_state=int(rng.integers(2**31)))
    u = np.empty((n_frames, n_anions, n_lig, 3))
    for t in range(n_frames):
        step = Rotation.from_rotvec(rng.normal(size=(n_anions, 3)) * np.radians(step_deg))
        rot = step * rot
        for a in range(n_anions):
            u[t, a] = rot[a].apply(base[a])
    return u


@twin("_events.rotation_events_threshold", ev.rotation_events_threshold_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(0, 30), n_anions=st.integers(1, 4), n_lig=st.integers(1, 4),
       threshold=st.floats(5, 120), step=st.floats(1, 40), pad=st.booleans(), chunk=st.integers(1, 30))
def test_rotation_events_threshold(seed, n_frames, n_anions, n_lig, threshold, step, pad, chunk):
    rng = np.random.default_rng(seed)
    u = _random_rotor_series(rng, n_frames, n_anions, n_lig, step)
    if pad and n_lig > 1:
        u[:, 0, -1] = np.nan
    a = ev.rotation_events_threshold(u, threshold)
    b = ev.rotation_events_threshold(u, threshold, use_ext=False)
    npt.assert_array_equal(a, b)
    if n_frames:   # chunk by chunk with a carried reference, both ways
        refs = [np.ascontiguousarray(u[0].copy()) for _ in range(2)]
        parts = [[ev.rotation_events_threshold(u[i:i + chunk], threshold, ref=refs[k], use_ext=k == 0)
                  for i in range(0, n_frames, chunk)] for k in range(2)]
        npt.assert_array_equal(np.concatenate(parts[0]), a)
        npt.assert_array_equal(np.concatenate(parts[1]), a)
        npt.assert_array_equal(refs[0], refs[1])


def _tetra():
    s2 = np.sqrt(2.0)
    t = np.array([[s2, 0, 1], [-s2, 0, 1], [0, s2, -1], [0, -s2, -1]], float)
    return t / np.linalg.norm(t, axis=1, keepdims=True)


@twin("_events.rotation_events_symmetry", ev.rotation_events_symmetry_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(0, 25), n_anions=st.integers(1, 4), noise=st.floats(0, 0.3),
       p_jump=st.floats(0, 0.5), tol=st.floats(10, 50), short=st.booleans())
def test_rotation_events_symmetry(seed, n_frames, n_anions, noise, p_jump, tol, short):
    rng = np.random.default_rng(seed)
    base = _tetra()
    u = np.empty((n_frames, n_anions, 4, 3))
    perm = np.tile(np.arange(4), (n_anions, 1))
    for t in range(n_frames):
        for a in range(n_anions):
            if rng.random() < p_jump:
                perm[a] = rng.permutation(4)
            v = base[perm[a]] + rng.normal(size=(4, 3)) * noise
            u[t, a] = v / np.linalg.norm(v, axis=1, keepdims=True)
    n_valid = np.full(n_anions, 4, np.int64)
    if short:
        n_valid[0] = 3
        u[:, 0, 3] = np.nan
    a = ev.rotation_events_symmetry(u, n_valid, tol)
    b = ev.rotation_events_symmetry(u, n_valid, tol, use_ext=False)
    npt.assert_array_equal(a, b)


@twin("_events.residence_runs", ev.residence_runs_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(0, 40), n_pairs=st.integers(0, 6), p=st.floats(0, 1),
       min_len=st.integers(1, 6))
def test_residence_runs(seed, n_frames, n_pairs, p, min_len):
    inside = np.random.default_rng(seed).random((n_frames, n_pairs)) < p
    npt.assert_array_equal(ev.residence_runs(inside, min_len), ev.residence_runs(inside, min_len, use_ext=False))


# ============================================================================ _grid
@twin("_grid.bin_fractional", gr.bin_fractional_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(0, 6), n_atoms=st.integers(0, 20), shape=st.tuples(*[st.integers(1, 7)] * 3),
       weighted=st.booleans())
def test_bin_fractional(seed, n_frames, n_atoms, shape, weighted):
    rng = np.random.default_rng(seed)
    frac = rng.uniform(-2, 3, (n_frames, n_atoms, 3))
    frac[rng.random(frac.shape) < 0.05] = 0.0           # exact bin edges
    w = rng.uniform(0.1, 2, n_frames) if weighted else None
    npt.assert_allclose(gr.bin_fractional(frac, shape, weights=w), gr.bin_fractional(frac, shape, weights=w,
                                                                                       use_ext=False), rtol=1e-12)


@twin("_grid.bin_axis", gr.bin_axis_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(0, 6), n_atoms=st.integers(0, 20), axis=st.integers(0, 2),
       n_bins=st.integers(1, 30), weighted=st.booleans())
def test_bin_axis(seed, n_frames, n_atoms, axis, n_bins, weighted):
    rng = np.random.default_rng(seed)
    frac = rng.uniform(-2, 3, (n_frames, n_atoms, 3))
    frac[rng.random(frac.shape) < 0.05] = 1.0
    w = rng.uniform(0.1, 2, n_frames) if weighted else None
    npt.assert_allclose(gr.bin_axis(frac, axis, n_bins, weights=w),
                        gr.bin_axis(frac, axis, n_bins, weights=w, use_ext=False), rtol=1e-12)


# ============================================================================ _hops
@twin("_hops.hop_functional", hp.hop_functional_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(0, 40), n_atoms=st.integers(0, 5), a=st.floats(0.1, 3),
       m_lo=st.integers(1, 5), dm=st.integers(0, 4), jumpy=st.booleans())
def test_hop_functional(seed, n_frames, n_atoms, a, m_lo, dm, jumpy):
    rng = np.random.default_rng(seed)
    steps = rng.normal(scale=0.3, size=(n_frames, n_atoms, 3))
    if jumpy:
        steps[rng.random(steps.shape[:2]) < 0.05] += 2.5
    pos = np.cumsum(steps, axis=0)
    m_hi = m_lo + dm
    npt.assert_array_equal(hp.hop_functional(pos, a=a, m_lo=m_lo, m_hi=m_hi),
                           hp.hop_functional(pos, a=a, m_lo=m_lo, m_hi=m_hi, use_ext=False))


@twin("_hops.find_runs", hp.find_runs_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(0, 40), n_atoms=st.integers(0, 6), p=st.floats(0, 1))
def test_find_runs(seed, n_frames, n_atoms, p):
    h = (np.random.default_rng(seed).random((n_frames, n_atoms)) < p).astype(np.uint8)
    for x, y in zip(hp.find_runs(h), hp.find_runs(h, use_ext=False)):
        npt.assert_array_equal(x, y)


# ============================================================================ _unwrap
@twin("_unwrap.unwrap_fractional", uw.unwrap_fractional_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(0, 30), n_atoms=st.integers(0, 5), step=st.floats(0.01, 0.6),
       chunk=st.integers(1, 30))
def test_unwrap_fractional(seed, n_frames, n_atoms, step, chunk):
    rng = np.random.default_rng(seed)
    s = np.cumsum(rng.normal(scale=step, size=(n_frames, n_atoms, 3)), axis=0)
    wrapped = s - np.floor(s)
    a, ja = uw.unwrap_fractional(wrapped)
    b, jb = uw.unwrap_fractional(wrapped, use_ext=False)
    npt.assert_allclose(a, b, rtol=0, atol=1e-12)
    npt.assert_allclose(ja, jb, rtol=0, atol=1e-15)
    if n_frames:   # chunked with carried state, both ways
        outs = []
        for use_ext in (True, False):
            pw, pu = wrapped[0].copy(), wrapped[0].copy()
            outs.append(np.concatenate([uw.unwrap_fractional(wrapped[i:i + chunk], pw, pu, use_ext=use_ext)[0]
                                        for i in range(0, n_frames, chunk)]))
        npt.assert_allclose(outs[0], a, rtol=0, atol=1e-12)
        npt.assert_allclose(outs[1], a, rtol=0, atol=1e-12)


@twin("_unwrap.cart_to_frac", uw.cart_to_frac_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(0, 4), n_atoms=st.integers(0, 8), in_place=st.booleans())
def test_cart_to_frac(seed, n_frames, n_atoms, in_place):
    rng = np.random.default_rng(seed)
    cells = np.stack([random_cell(rng) for _ in range(n_frames)]) if n_frames else np.zeros((0, 3, 3))
    pos = rng.uniform(-20, 30, (n_frames, n_atoms, 3))
    a = uw.cart_to_frac(pos.copy() if in_place else pos, cells, out=None)
    p2 = pos.copy()
    b = uw.cart_to_frac(p2, cells, use_ext=False, out=p2 if in_place else None)
    npt.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


@twin("_unwrap.frac_to_cart", uw.frac_to_cart_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(0, 4), n_atoms=st.integers(0, 8), in_place=st.booleans())
def test_frac_to_cart(seed, n_frames, n_atoms, in_place):
    rng = np.random.default_rng(seed)
    cells = np.stack([random_cell(rng) for _ in range(n_frames)]) if n_frames else np.zeros((0, 3, 3))
    frac = rng.uniform(-2, 3, (n_frames, n_atoms, 3))
    f1 = frac.copy()
    a = uw.frac_to_cart(f1, cells, out=f1 if in_place else None)
    b = uw.frac_to_cart(frac, cells, use_ext=False)
    npt.assert_allclose(a, b, rtol=1e-13, atol=1e-12)


# ============================================================================ _sites
def _tetra_sites(rng, n_frames, n_sites, spread):
    cells = np.stack([random_cell(rng, 8.0, 11.0) for _ in range(n_frames)])
    base = rng.uniform(-2, 12, (n_sites, 3))
    verts = np.stack([base[:, None, :] + rng.normal(0, spread, (n_sites, 4, 3)) for _ in range(n_frames)])
    return cells, verts


@twin("_sites.assign_polyhedra", sk.assign_polyhedra_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(1, 3), n_sites=st.integers(0, 30), n_ions=st.integers(0, 40),
       spread=st.floats(0.5, 3.0), tol=st.sampled_from([0.0, 1e-9, 1e-3]))
def test_assign_polyhedra(seed, n_frames, n_sites, n_ions, spread, tol):
    rng = np.random.default_rng(seed)
    cells, verts = _tetra_sites(rng, n_frames, n_sites, spread)
    ions = rng.uniform(-15, 25, (n_frames, n_ions, 3))
    if n_sites and n_ions:   # some ions inside a site, some in another periodic image of it
        k = rng.integers(0, n_sites, n_ions)
        w = rng.dirichlet(np.ones(4), n_ions)
        inside = np.einsum("iv,tivk->tik", w, verts[:, k]) + (rng.integers(-1, 2, (n_ions, 3)) @ cells[0])[None]
        pick = rng.random(n_ions) < 0.5
        ions[:, pick] = inside[:, pick]
    a = sk.assign_polyhedra(ions, verts, cells, tol=tol)
    b = sk.assign_polyhedra(ions, verts, cells, tol=tol, use_ext=False)
    npt.assert_array_equal(a, b)
    event("some inside" if (a >= 0).any() else "none inside")


@twin("_sites.assign_nearest", sk.assign_nearest_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(1, 3), n_sites=st.integers(0, 30), n_ions=st.integers(0, 40),
       radius=st.sampled_from([None, 0.0, 0.8, 1.5, 4.0]))
def test_assign_nearest(seed, n_frames, n_sites, n_ions, radius):
    rng = np.random.default_rng(seed)
    cells, verts = _tetra_sites(rng, n_frames, n_sites, 1.0)
    centres = verts.mean(axis=2) if n_sites else np.zeros((n_frames, 0, 3))
    ions = rng.uniform(-15, 25, (n_frames, n_ions, 3))
    a = sk.assign_nearest(ions, centres, cells, radius=radius)
    b = sk.assign_nearest(ions, centres, cells, radius=radius, use_ext=False)
    npt.assert_array_equal(a, b)


@twin("_sites.debounce", sk.debounce_ref)
@FAST
@given(seed=seeds, n_frames=st.integers(0, 60), n_ions=st.integers(1, 6), n_sites=st.integers(1, 5),
       stay=st.floats(0, 0.9), n_min=st.integers(1, 5), cap=st.integers(1, 30), split=st.floats(0, 1),
       frame0=st.integers(0, 100))
def test_debounce(seed, n_frames, n_ions, n_sites, stay, n_min, cap, split, frame0):
    rng = np.random.default_rng(seed)
    raw = rng.integers(-1, n_sites, (n_frames, n_ions))
    for t in range(1, n_frames):          # runs of the same site, so that changes get confirmed
        keep = rng.random(n_ions) < stay
        raw[t, keep] = raw[t - 1, keep]
    s1, s2 = sk.DebounceState(n_ions), sk.DebounceState(n_ions)
    k = int(split * n_frames)              # two chunks with the state carried across
    e1 = np.concatenate([sk.debounce(raw[:k], frame0, n_min, s1, capacity=cap),
                         sk.debounce(raw[k:], frame0 + k, n_min, s1, capacity=cap)])
    e2 = np.concatenate([sk.debounce(raw[:k], frame0, n_min, s2, use_ext=False),
                         sk.debounce(raw[k:], frame0 + k, n_min, s2, use_ext=False)])
    npt.assert_array_equal(e1, e2)
    for name in ("cur", "cur_start", "cand", "cand_start", "cand_len"):
        npt.assert_array_equal(getattr(s1, name), getattr(s2, name))


@twin("_sites.window_partners", sk.window_partners_ref)
@FAST
@given(seed=seeds, m=st.integers(0, 80), n_ions=st.integers(1, 8), half=st.integers(0, 8), dmax=st.floats(0.5, 6.0),
       count_all=st.booleans())
def test_window_partners(seed, m, n_ions, half, dmax, count_all):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 40, m)).astype(np.int64)
    ion = rng.integers(0, n_ions, m).astype(np.int64)
    mid = rng.uniform(-0.5, 1.5, (m, 3))
    cell = random_cell(rng, 8.0, 12.0)
    J = np.arange(0, m, 2, dtype=np.int64)
    lo = np.searchsorted(t, t[J] - half, "left").astype(np.int64)
    hi = np.searchsorted(t, t[J] + half, "right").astype(np.int64)
    h1, n1 = sk.window_partners(t, ion, mid, cell, J, lo, hi, dmax, count_all=count_all)
    h2, n2 = sk.window_partners(t, ion, mid, cell, J, lo, hi, dmax, count_all=count_all, use_ext=False)
    npt.assert_array_equal(h1, h2)
    assert n1 == n2


# ============================================================================ the table is complete
def _compiled_kernels():
    """``"_module.name"`` of every public function of every compiled module in anionmotion._ext."""
    names = set()
    for info in pkgutil.iter_modules(ext_pkg.__path__):
        mod = importlib.import_module(f"anionmotion._ext.{info.name}")
        for name, obj in vars(mod).items():
            if not name.startswith("_") and callable(obj) and not isinstance(obj, type) \
                    and getattr(obj, "__module__", None) == mod.__name__:
                names.add(f"{info.name}.{name}")
    return names


def _pyx_kernels():
    """``"_module.name"`` of every ``def`` at the top level of ext/*.pyx (the sources the build compiles)."""
    names = set()
    ext_dir = os.path.join(ROOT, "ext")
    for fn in sorted(os.listdir(ext_dir)):
        if fn.endswith(".pyx"):
            with open(os.path.join(ext_dir, fn), encoding="utf-8") as fh:
                for m in re.finditer(r"^(?:c?p?def) +([A-Za-z]\w*) *\(", fh.read(), re.M):
                    if not m.group(0).startswith("cdef"):
                        names.add(f"{fn[:-4]}.{m.group(1)}")
    return names


def _import_registering_modules():
    """Import the other test modules that register twin tests (so that running this file alone sees them)."""
    here = os.path.dirname(os.path.abspath(__file__))
    for fn in sorted(os.listdir(here)):
        if fn.startswith("test_") and fn.endswith(".py") and fn != os.path.basename(__file__):
            with open(os.path.join(here, fn), encoding="utf-8") as fh:
                if "from test_kernel_twins import" in fh.read():
                    importlib.import_module(fn[:-3])


def test_every_kernel_has_a_twin_test():
    _import_registering_modules()
    compiled = _compiled_kernels()
    assert len(compiled) >= 37, sorted(compiled)
    assert compiled == _pyx_kernels(), "the compiled modules differ from ext/*.pyx: rebuild the extensions"
    missing = sorted(compiled - set(KERNEL_TESTS))
    assert not missing, f"compiled kernels without a twin test in tests/test_kernel_twins.py: {missing}"
    stale = sorted(set(KERNEL_TESTS) - compiled)
    assert not stale, f"twin tests for kernels that no longer exist: {stale}"
    for kernel, (ref, test) in KERNEL_TESTS.items():
        assert inspect.isfunction(ref) and ref.__module__.startswith("anionmotion.kernels."), (kernel, ref)
        assert ref.__name__.endswith("_ref"), f"the twin of {kernel} should be named *_ref; got {ref.__name__}"
        assert (ref.__doc__ or "").strip(), f"the twin {ref.__module__}.{ref.__name__} has no docstring"
        assert test.__name__.startswith("test_"), f"{test.__name__} ({kernel}) is not collected by pytest"
        assert getattr(test, "is_hypothesis_test", False), f"{test.__name__} ({kernel}) is not a hypothesis test"
