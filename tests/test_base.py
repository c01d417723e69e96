"""The analysis base: frame range, the one spacing rule, budget, chunked driver, SeriesStore, FrameTableWriter."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anionmotion
from anionmotion.analysis.base import (AnalysisBase, FrameRange, FrameTableWriter, SeriesStore, frames_per_chunk,
                                       resolve_memory, uniform_spacing)
from anionmotion.errors import OptionError


def _traj(n_frames=50, n_atoms=4, seed=0, dt=0.01):
    rng = np.random.default_rng(seed)
    pos = np.cumsum(rng.normal(scale=0.1, size=(n_frames, n_atoms, 3)), axis=0)
    return anionmotion.from_arrays(pos, np.eye(3) * 20, species=["Li"] * n_atoms, frame_interval=dt)


# ----------------------------------------------------------------------------- frame range and spacing
@given(st.integers(0, 30), st.one_of(st.none(), st.integers(-40, 40)), st.one_of(st.none(), st.integers(-40, 40)),
       st.one_of(st.none(), st.integers(1, 7)))
@settings(max_examples=80, deadline=None)
def test_frame_range_is_python_slicing(n, start, stop, step):
    traj = _traj(max(n, 1))
    fr = traj.frame_range(start=start, stop=stop, step=step)
    assert isinstance(fr, FrameRange)
    expect = list(range(max(n, 1)))[slice(start, stop, step)]
    assert fr.indices().tolist() == expect and len(fr) == len(expect)
    assert tuple(fr) == traj._frame_range(None, start, stop, step)


def test_frame_range_rejects_bad_steps():
    traj = _traj()
    for step in (0, -1):
        with pytest.raises(OptionError, match="frame step must be positive"):
            traj.frame_range(step=step)
    with pytest.raises(TypeError, match="slice"):
        traj.frame_range(frames=[1, 2])


def test_uniform_spacing_accepts_float32_rounding_and_rejects_real_gaps():
    t = np.arange(20000) * 0.01
    ok, dt = uniform_spacing(t.astype(np.float32).astype(np.float64))
    assert ok and dt == pytest.approx(0.01, rel=1e-6)
    t2 = t.copy()
    t2[500:] += 0.001                               # one spacing 10 % longer
    assert uniform_spacing(t2) == (False, None)
    assert uniform_spacing(np.array([3.0])) == (True, None)
    assert uniform_spacing(np.array([0.0, 0.5])) == (True, 0.5)
    # the trajectory uses the same rule
    traj = anionmotion.from_arrays(np.zeros((5, 1, 3)), np.eye(3) * 5, times=[0, 1, 2, 3.5, 4], species=["Li"])
    assert traj.is_uniform is False


def test_budget_and_chunk_size():
    assert resolve_memory("2GB") == 2 * 1024 ** 3
    assert resolve_memory(None) >= 256 * 1024 ** 2
    with pytest.raises(OptionError, match="memory"):
        resolve_memory("lots")
    assert frames_per_chunk(1000, 4000, fraction=0.25) == 1
    assert frames_per_chunk(1000, 10 ** 6, fraction=0.25) == 250
    assert frames_per_chunk(10, 10 ** 9, maximum=77) == 77


# ----------------------------------------------------------------------------- the driver
class _Sum(AnalysisBase):
    """Test analysis: per-frame sum of x coordinates and the chunk sizes it saw."""

    name = "sum"

    def __init__(self, bytes_per_frame=None, **kw):
        super().__init__(**kw)
        self._bpf = bytes_per_frame

    def _bytes_per_frame(self, n):
        return self._bpf or super()._bytes_per_frame(n)

    def _prepare(self):
        self.out = np.zeros(self.n_frames)
        self.sizes = []
        self._t = 0

    def _accumulate(self, chunk):
        n = chunk.n_frames
        self.out[self._t:self._t + n] = chunk.positions[..., 0].sum(axis=1)
        self.sizes.append(n)
        self._t += n

    def _finish(self):
        return self.out


@given(st.integers(1, 60), st.integers(1, 4000), st.one_of(st.none(), st.integers(0, 10)),
       st.one_of(st.none(), st.integers(1, 4)))
@settings(max_examples=40, deadline=None)
def test_driver_is_independent_of_the_chunking(n, bpf, start, step):
    traj = _traj(n)
    start = None if start is None else min(start, n - 1)
    a = _Sum(memory=10 ** 9).run(traj, start=start, step=step)
    b = _Sum(bytes_per_frame=bpf, memory=4000).run(traj, start=start, step=step)
    ref = traj.read(start=start, step=step).positions[..., 0].sum(axis=1)
    npt.assert_array_equal(a, ref)
    npt.assert_array_equal(b, ref)


def test_driver_chunks_follow_the_budget_and_show_progress(capsys):
    traj = _traj(40)
    an = _Sum(bytes_per_frame=100, memory=1200, progress=True)
    an.run(traj)
    assert an.frames_per_chunk == 3 and sum(an.sizes) == 40 and max(an.sizes) == 3
    assert "sum: reading" in capsys.readouterr().err


def test_driver_errors_name_the_trajectory():
    traj = _traj(10)
    with pytest.raises(OptionError, match="no frames in the range"):
        _Sum().run(traj, start=20)
    uneven = anionmotion.from_arrays(np.zeros((5, 1, 3)), np.eye(3) * 5, times=[0, 1, 2, 3.5, 4], species=["Li"])
    an = _Sum()
    an._setup(uneven)
    with pytest.raises(OptionError, match="evenly spaced frames; frames 2 and 3 are 1.5 ps apart"):
        an._require_uniform("this analysis")


# ----------------------------------------------------------------------------- SeriesStore
@given(st.integers(1, 9), st.integers(1, 40), st.sampled_from(["memory", "out-of-core"]), st.integers(1, 13),
       st.integers(1, 5), st.integers(0, 2 ** 31))
@settings(max_examples=60, deadline=None)
def test_store_returns_exactly_what_was_written(n_rows, T, mode, chunk, block, seed):
    data = np.random.default_rng(seed).normal(size=(T, n_rows))
    with SeriesStore(n_rows, T, budget=1, mode=mode) as s:
        assert s.in_memory == (mode == "memory")
        for t0 in range(0, T, chunk):
            s.write(t0, data[t0:t0 + chunk])
        got = np.concatenate([b for _, b in s.blocks(block)])
        npt.assert_array_equal(got, data.T)               # bit for bit
        npt.assert_array_equal(s.read_rows(n_rows - 1, 1)[0], data[:, -1])


def test_store_auto_mode_follows_the_budget_and_checks_shapes(tmp_path):
    assert SeriesStore(10, 100, budget=2 * 8000).in_memory
    s = SeriesStore(10, 100, budget=2 * 8000 - 1, scratch_dir=str(tmp_path))
    assert not s.in_memory and s.path is None
    with pytest.raises(ValueError, match="rows"):
        s.write(0, np.zeros((3, 9)))
    with pytest.raises(ValueError, match="outside"):
        s.write(98, np.zeros((3, 10)))
    s.close()
    s.close()                                          # idempotent
    with pytest.raises(OptionError, match="invalid mode"):
        SeriesStore(1, 1, budget=1, mode="disk")


def test_scratch_file_is_anonymous_and_never_left_behind(tmp_path):
    s = SeriesStore(4, 1000, budget=1, mode="out-of-core", scratch_dir=str(tmp_path))
    s.write(0, np.ones((1000, 4)))
    assert os.listdir(tmp_path) == []                  # no name on disk even while in use
    npt.assert_array_equal(s.read_rows(0, 4), 1.0)
    s.close()
    kept = SeriesStore(4, 10, budget=1, mode="out-of-core", scratch_dir=str(tmp_path), keep_path=True)
    assert os.path.exists(kept.path) and oct(os.stat(kept.path).st_mode & 0o777) == "0o600"
    kept.close()
    assert os.listdir(tmp_path) == []


def test_killed_process_leaves_no_scratch_file(tmp_path):
    code = textwrap.dedent(f"""
        import sys, time, numpy as np
        from anionmotion.analysis.base import SeriesStore
        s = SeriesStore(64, 100000, budget=1, mode="out-of-core", scratch_dir={str(tmp_path)!r})
        s.write(0, np.zeros((100000, 64)))
        print("ready", flush=True)
        time.sleep(60)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- FrameTableWriter
@given(st.integers(0, 3000), st.integers(2, 50), st.integers(1, 97))
@settings(max_examples=40, deadline=None)
def test_table_writer_preview_is_an_even_stride_of_the_table(n, preview, chunk):
    w = FrameTableWriter(None, ["i", "x"], preview_rows=preview)
    rows = np.column_stack([np.arange(n), np.arange(n) * 0.5])
    for i in range(0, n, chunk):
        w.append(rows[i:i + chunk])
    p = w.preview()
    assert w.n_rows == n and len(p) <= preview
    npt.assert_array_equal(p, rows[::w.stride])
    if n:
        assert p[0, 0] == 0 and (n - 1) - p[-1, 0] < w.stride   # spans the whole table


def test_table_writer_csv_is_complete_atomic_and_never_overwrites(tmp_path):
    path = tmp_path / "angles.csv"
    w = FrameTableWriter(path, ["frame", "theta"], fmt=["%d", "%.6f"], preview_rows=4)
    assert not path.exists()                          # written under a temporary name until closed
    for i in range(0, 100, 7):
        w.append(np.column_stack([np.arange(i, min(i + 7, 100)), np.ones(min(7, 100 - i))]))
    w.close()
    lines = path.read_text().splitlines()
    assert lines[0] == "frame,theta" and len(lines) == 101 and lines[-1] == "99,1.000000"
    with pytest.raises(OptionError, match="exists"):
        FrameTableWriter(path, ["a"])
    w2 = FrameTableWriter(tmp_path / "b.csv", ["a"])
    w2.append(np.ones((3, 1)))
    w2.abort()
    assert sorted(os.listdir(tmp_path)) == ["angles.csv"]
    with pytest.raises(ValueError, match="shape"):
        FrameTableWriter(None, ["a", "b"]).append(np.ones((2, 3)))


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_outputs_respect_the_umask(tmp_path, mask):
    from anionmotion.results import write_text_atomic

    old = os.umask(mask)
    try:
        write_text_atomic(tmp_path / "a.json", "{}\n")
        w = FrameTableWriter(tmp_path / "b.csv", ["x"])
        w.append(np.ones((2, 1)))
        w.close()
    finally:
        os.umask(old)
    for f in ("a.json", "b.csv"):
        assert os.stat(tmp_path / f).st_mode & 0o777 == 0o666 & ~mask


# ----------------------------------------------------------------------------- streamed JSON
_json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10 ** 6, 10 ** 6), st.floats(allow_nan=True, allow_infinity=True),
              st.text(max_size=5)),
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=4), kids, max_size=4)),
    max_leaves=12)


@given(_json_values, st.integers(0, 3000), st.integers(0, 2), st.sampled_from(["f8", "f4", "i8", "bool"]),
       st.integers(0, 2 ** 31))
@settings(max_examples=80, deadline=None)
def test_streamed_json_is_the_text_json_dumps_writes(extra, n, ndim, dtype, seed):
    import io
    import json

    from anionmotion.results import dump_json, json_arrays, to_jsonable

    rng = np.random.default_rng(seed)
    shape = (n,) if ndim < 2 else (n // 3, 3)
    a = (rng.normal(size=shape) * 10.0 ** rng.integers(-5, 5)).astype(dtype)
    if dtype.startswith("f") and a.size:
        a.flat[rng.integers(0, a.size, 3)] = [np.nan, np.inf, -0.0]
    data = {"a": a, "x": extra, "nested": [a[:7], {"k": a}]}
    ref = json.dumps(to_jsonable(data), indent=2, allow_nan=False)
    with json_arrays():
        kept = to_jsonable(data)
    buf = io.StringIO()
    dump_json(kept, buf)
    assert buf.getvalue() == ref
    if a.size >= 1024:
        assert isinstance(kept["a"], np.ndarray)          # not turned into a list


def test_write_json_of_a_long_array_does_not_build_python_lists(tmp_path):
    import json
    import tracemalloc

    from anionmotion.results import write_json

    peaks = []
    for n in (1_000_000, 4_000_000):
        a = np.random.default_rng(0).normal(size=n)
        tracemalloc.start()
        write_json(tmp_path / f"a{n}.json", {"a": a})
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # one chunk of formatted numbers at a time (~10 MB), whatever the length; as a list, 4e6 floats alone
    # would take 4e6 × 32 B = 128 MB
    assert max(peaks) < 30e6 and peaks[1] < 1.5 * peaks[0]
    assert json.loads((tmp_path / "a4000000.json").read_text())["a"] == a.tolist()
