"""The MSD on the analysis base (issue 15): streamed in bounded memory, the one spacing rule, progress.

* every path (in memory / out of core), budget and read-chunk size gives the in-memory result
  (bit for bit on evenly spaced frames, 1e-12 on uneven ones);
* float32-rounded times (AMBER NetCDF) take the FFT path with dt = (t_last − t_first)/(n − 1);
* the default budget keeps the positions in memory only when they fit half of it, read chunks are
  bounded, and the traced peak memory does not grow with the trajectory beyond O(T) scalars.
"""

import os
import tracemalloc

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anionmotion
from anionmotion.analysis import base as abase
from anionmotion.analysis import msd as amsd
from anionmotion.analysis.base import AnalysisBase, uniform_spacing
from anionmotion.analysis.msd import MSD
from anionmotion.kernels import msd as km
from anionmotion.kernels.msd import msd_direct_ref, msd_fft, msd_pairs


def _walk(seed, T, N, scale=0.3):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(size=(T, N, 3)) * scale, axis=0) + rng.uniform(0, 20, size=(1, N, 3))


def _system(seed, T, N, n_p=2, n_s=3, times=None, dt=0.05):
    pos = _walk(seed, T, N + n_p + n_s)
    species = ["Li"] * N + ["P"] * n_p + ["S"] * n_s
    if times is None:
        traj = anionmotion.from_arrays(pos, np.eye(3) * 20, species=species, frame_interval=dt)
    else:
        traj = anionmotion.from_arrays(pos, np.eye(3) * 20, times=times, species=species)
    return traj, pos


CHARGES = {"Li": 1.0, "P": 5.0, "S": -2.0}


def _fields(res):
    return {"msd": res.msd, "msd_xyz": res.msd_xyz, "tmsd_xyz": res.tmsd_xyz, "lag": res.lag,
            "n_origins": res.n_origins, "drift": res.drift, "charge_msd": res.charge_msd,
            "charge_msd_xyz": res.charge_msd_xyz, "volume": res.volume_A3, "framework_tmsd": res.framework_tmsd}


# -------------------------------------------------------------- property: every path equals memory
@settings(deadline=None, max_examples=40)
@given(seed=st.integers(0, 2**31), T=st.integers(2, 70), N=st.integers(1, 8), drift=st.booleans(),
       collective=st.booleans(), uneven=st.booleans(), mode=st.sampled_from(["auto", "out-of-core", "memory"]),
       budget_scale=st.floats(1.0, 40.0), chunk_frames=st.integers(1, 80),
       step=st.integers(1, 3))
def test_streamed_msd_equals_in_memory_result(seed, T, N, drift, collective, uneven, mode, budget_scale, chunk_frames,
                                              step):
    times = None
    if uneven:
        times = np.cumsum(np.random.default_rng(seed).choice([0.1, 0.2, 0.5], size=T))
    traj, _ = _system(seed, T, N, times=times)
    kw = {"drift": drift, "collective": collective, "charges": CHARGES}
    ref = MSD("Li", mode="memory", memory="1GB", **kw).run(traj, step=step)
    # random budget: from just above one atom's FFT (out of core) to plenty; random read chunk size
    Tn = ref.n_frames
    budget = int((km.workspace_bytes_per_atom(Tn) + 24 * Tn) * 4 / 3 * budget_scale) + 4096
    old_cap = amsd.MAX_CHUNK_BYTES
    try:
        probe = MSD("Li", **kw)
        probe._setup(traj, None, None, step)
        probe._prepare()
        amsd.MAX_CHUNK_BYTES = chunk_frames * probe._bytes_per_frame(len(probe._read))
        got = MSD("Li", mode=mode, memory=budget, **kw).run(traj, step=step)
    finally:
        amsd.MAX_CHUNK_BYTES = old_cap
    assert got.meta["frames_per_chunk"] <= chunk_frames
    if mode == "out-of-core":
        assert "out-of-core" in got.meta["path"]
    elif mode == "memory":
        assert "out-of-core" not in got.meta["path"]
    a, b = _fields(got), _fields(ref)
    for k in a:
        if b[k] is None:
            assert a[k] is None, k
            continue
        if not uneven or k in ("lag", "n_origins", "drift", "volume", "framework_tmsd") or "out-of-core" not in \
                got.meta["path"]:
            # evenly spaced frames (and everything but the pair sums): the same bits on every path
            npt.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)
        else:
            # uneven frames out of core: the pair sums run over atom blocks (summation order)
            npt.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-12 * max(np.max(np.abs(b[k])), 1e-300), err_msg=k)
    assert got.tmsd == ref.tmsd or (uneven and got.tmsd == pytest.approx(ref.tmsd, rel=1e-12))


@settings(deadline=None, max_examples=25)
@given(seed=st.integers(0, 2**31), T=st.integers(2, 90), N=st.integers(1, 9), mode=st.sampled_from(["memory",
                                                                                                   "out-of-core"]),
       chunk_frames=st.integers(1, 100))
def test_in_memory_result_is_the_fft_kernel_bit_for_bit(seed, T, N, mode, chunk_frames):
    traj, pos = _system(seed, T, N)
    old_cap = amsd.MAX_CHUNK_BYTES
    try:
        amsd.MAX_CHUNK_BYTES = chunk_frames * 400 * (N + 5)
        res = MSD("Li", mode=mode, memory="256MB", drift=False).run(traj)
    finally:
        amsd.MAX_CHUNK_BYTES = old_cap
    m, mx = msd_fft(pos[:, :N])
    npt.assert_array_equal(res.msd, m)
    npt.assert_array_equal(res.msd_xyz, mx)
    npt.assert_allclose(res.msd_xyz, msd_direct_ref(pos[:, :N])[1], rtol=1e-10,
                        atol=1e-12 * max(float(np.ptp(pos)), 1.0) ** 2 * T)
    npt.assert_array_equal(res.n_origins, T - np.arange(T))


def test_drift_is_the_same_whatever_the_chunking():
    traj, pos = _system(5, 300, 6)
    old_cap = amsd.MAX_CHUNK_BYTES
    out = []
    try:
        for cap in (1, 10_000, 10**9):
            amsd.MAX_CHUNK_BYTES = cap
            out.append(MSD("Li", drift=True, memory="64MB").run(traj))
    finally:
        amsd.MAX_CHUNK_BYTES = old_cap
    assert out[0].meta["frames_per_chunk"] == 1 and out[2].meta["frames_per_chunk"] == 300
    for r in out[1:]:
        npt.assert_array_equal(r.drift, out[0].drift)
        npt.assert_array_equal(r.msd, out[0].msd)
        assert r.volume_A3 == out[0].volume_A3
    m = traj.masses[6:]
    com = (pos[:, 6:] * m[None, :, None]).sum(axis=1) / m.sum()
    npt.assert_allclose(out[0].drift, com - com[0], atol=1e-12)


# -------------------------------------------------------------- the one spacing rule
def _float32_times(T, dt=0.01):
    return (dt * np.arange(T)).astype(np.float32).astype(np.float64)


def test_float32_rounded_times_take_the_fft_path():
    T = 3000
    t = _float32_times(T)
    d = np.diff(t)
    # the old msd rule (every spacing equal to the first within 1e-6) rejects these times ...
    assert not np.all(np.abs(d - d[0]) <= 1e-6 * abs(d[0]))
    # ... the package's rule accepts them
    assert uniform_spacing(t) == (True, (t[-1] - t[0]) / (T - 1))
    traj, pos = _system(2, T, 4, times=t)
    assert traj.is_uniform
    for mode in ("auto", "out-of-core"):
        res = MSD("Li", mode=mode, memory="64MB", drift=False).run(traj)
        assert res.meta["path"] == ("memory" if mode == "auto" else "out-of-core")
        assert res.uniform and res.dt_ps == (t[-1] - t[0]) / (T - 1)
        npt.assert_array_equal(res.lag, np.arange(T) * res.dt_ps)
        npt.assert_array_equal(res.n_origins, T - np.arange(T))
        npt.assert_array_equal(res.msd, msd_fft(pos[:, :4])[0])


def test_float32_times_from_the_netcdf_writer_take_the_fft_path(tmp_path):
    from anionmotion.io.netcdf_writer import NetCDFWriter

    T, N = 1500, 5
    pos = _walk(9, T, N + 3)
    species = ["Li"] * N + ["P", "S", "S"]
    path = str(tmp_path / "f32.nc")
    with NetCDFWriter(path, species, velocities=False, metadata={"coordinate_style": "unwrapped"}) as w:
        for k in range(T):
            w.write(pos[k], np.eye(3) * 30.0, time=0.01 * k)
    with anionmotion.open(path) as traj:
        t = traj.times  # float32 in the file (the reader may rebuild an evenly spaced run as t0 + i·dt)
        assert uniform_spacing(t)[0]
        res = MSD("Li", drift=False).run(traj)
        ooc = MSD("Li", mode="out-of-core", memory="16MB", scratch_dir=str(tmp_path), drift=False).run(traj)
        p32 = traj.read("Li").positions
    assert res.meta["path"] == "memory" and ooc.meta["path"] == "out-of-core"
    assert res.dt_ps == (t[-1] - t[0]) / (T - 1) == pytest.approx(0.01, rel=1e-6)
    assert len(res.lag) == T and res.n_origins[0] == T
    npt.assert_array_equal(ooc.msd, res.msd)
    npt.assert_array_equal(res.msd, msd_fft(p32)[0])
    npt.assert_allclose(res.msd, msd_direct_ref(pos[:, :N])[0], rtol=1e-5, atol=1e-4)  # float32 storage
    assert sorted(os.listdir(tmp_path)) == ["f32.nc"]  # scratch removed


def test_uneven_times_still_take_the_pair_path():
    t = np.cumsum(np.r_[0.0, np.full(30, 0.1), np.full(30, 0.3)])
    traj, pos = _system(3, len(t), 3, times=t)
    res = MSD("Li", drift=False).run(traj)
    assert res.meta["path"] == "pairs (uneven frame spacing)" and res.dt_ps is None
    _, m, _, n = msd_pairs(pos[:, :3], t)
    npt.assert_array_equal(res.msd, m)
    npt.assert_array_equal(res.n_origins, n)


# -------------------------------------------------------------- memory plan
def test_msd_is_an_analysis_base_with_the_shared_default_memory():
    assert issubclass(MSD, AnalysisBase)
    assert amsd.default_memory is abase.default_memory
    traj, _ = _system(0, 50, 3)
    m = MSD("Li")
    res = m.run(traj, start=5, stop=45, step=2)
    assert (m.frame_range.start, m.frame_range.stop, m.frame_range.step) == (5, 45, 2)
    assert res.n_frames == 20 and m.budget == res.meta["memory_budget_bytes"]
    assert res.meta["memory_budget_source"] == "default (half the available RAM)"


def test_default_budget_keeps_positions_in_memory_only_when_they_fit_half(monkeypatch):
    traj, _ = _system(1, 4000, 40)  # positions of the selection: 24·40·4000 = 3.84 MB
    monkeypatch.setattr(abase, "default_memory", lambda: 6 * 1024**2)
    res = MSD("Li").run(traj)
    # the positions fit the budget, but not half of it together with the FFT workspace: streamed
    assert res.meta["path"] == "out-of-core" and res.meta["memory_budget_bytes"] == 6 * 1024**2
    assert res.meta["memory_estimate_bytes"] <= 6 * 1024**2 + 8 * (24 * 4000 + 8 * km.fft_length(4000))
    monkeypatch.setattr(abase, "default_memory", lambda: 64 * 1024**2)
    res2 = MSD("Li").run(traj)
    assert res2.meta["path"] == "memory" and res2.meta["memory_estimate_bytes"] <= 32 * 1024**2
    npt.assert_array_equal(res.msd, res2.msd)


def test_read_chunks_are_bounded_whatever_the_budget(monkeypatch):
    traj, _ = _system(1, 3000, 10)
    m = MSD("Li", memory="64GB")
    m._setup(traj)
    m._prepare()
    per_frame = m._bytes_per_frame(len(m._read))
    assert m._fpc == 3000  # the whole (small) trajectory fits one chunk of ≤ MAX_CHUNK_BYTES
    monkeypatch.setattr(amsd, "MAX_CHUNK_BYTES", 100 * per_frame)
    res = MSD("Li", memory="64GB").run(traj)
    assert res.meta["frames_per_chunk"] == 100
    # a tight out-of-core budget gives one atom's FFT priority over the read chunk
    T = 3000
    from anionmotion.kernels.vanhove import moments_workspace_bytes_per_atom

    # one atom's FFT: the larger of the MSD's and α₂'s fourth-moment workspaces (α₂ is on by default)
    need = max(km.workspace_bytes_per_atom(T), moments_workspace_bytes_per_atom(T)) + 24 * T
    tight = MSD("Li", memory=need + 5 * per_frame).run(traj)
    assert tight.meta["path"] == "out-of-core" and tight.meta["frames_per_chunk"] == 5
    assert tight.meta["atoms_per_block"] == 1
    npt.assert_array_equal(tight.msd, res.msd)


def test_the_bytes_per_frame_count_the_reader_copies_of_the_read_atoms():
    traj, _ = _system(0, 20, 4)  # 9 atoms, no velocities
    m = MSD("Li", drift=False)   # the default would also read the framework atoms
    m._setup(traj)
    m._prepare()
    # reads Li (4) and P (2, framework cations), without velocities; the reader's copies of the 6 read atoms
    # only; the selection copied twice
    assert list(m._read) == [0, 1, 2, 3, 4, 5]
    assert m.needs_velocities is False
    assert m._bytes_per_frame(len(m._read)) == 30 * 6 + 96 * 6 + 24 * 2 * 4


@pytest.mark.parametrize("source", ["default", "given"])
def test_traced_peak_memory_does_not_grow_with_the_trajectory(monkeypatch, source):
    budget = 24 * 1024**2
    monkeypatch.setattr(abase, "default_memory", lambda: budget if source == "default" else 64 * 1024**3)
    for alpha2, per_frame_limit in ((False, 200), (True, 360)):
        peaks, paths = {}, {}
        for T in (30000, 120000):
            N = 16
            pos = _walk(4, T, N + 2)
            traj = anionmotion.from_arrays(pos, np.eye(3) * 20, species=["Li"] * N + ["P", "S"], frame_interval=0.01)
            _ = traj.times  # cached by the trajectory before the measurement
            tracemalloc.start()
            try:
                res = MSD("Li", drift=True, memory=None if source == "default" else budget, alpha2=alpha2).run(traj)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert res.meta["memory_budget_bytes"] == budget
            L = km.fft_length(T)
            # the budget plus O(T) scalars (times, volumes, drift, S1 sums, spectra, the result; α₂: its moment
            # sums and four summed spectra)
            assert peak <= budget + 8 * (24 * T + 8 * L) + (8 * (6 * T + 4 * L) if alpha2 else 0), (T, peak)
            peaks[T], paths[T] = peak, res.meta["path"]
            del pos, traj
        # positions of the selection at 120000 frames: 24·16·120000 B = 46 MB, more than the 24 MiB budget
        assert paths[120000] == "out-of-core"
        if paths[30000] == "out-of-core":
            # only O(T) scalars per frame (α₂ adds ~20 float64 per frame), less than what keeping the positions
            # would add: 24·N = 384 B per frame on top of those
            assert (peaks[120000] - peaks[30000]) / 90000 < per_frame_limit


# -------------------------------------------------------------- progress
def test_progress_bars_of_the_reading_and_fft_passes(capsys):
    traj, _ = _system(0, 200, 5)
    MSD("Li", progress=True).run(traj)
    err = capsys.readouterr().err
    assert "msd: reading" in err and "msd: FFT over atom blocks" in err
    MSD("Li", progress=True, mode="out-of-core", memory="8MB").run(traj)
    err = capsys.readouterr().err
    assert "msd: reading" in err and "msd: FFT over atom blocks" in err
    t = np.cumsum(np.r_[0.0, np.full(20, 0.1), np.full(20, 0.3)])
    tr, _ = _system(0, len(t), 3, times=t)
    MSD("Li", progress=True).run(tr)
    assert "msd: frame pairs over atom blocks" in capsys.readouterr().err
    MSD("Li", progress=False).run(traj)
    assert capsys.readouterr().err == ""
