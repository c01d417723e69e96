"""Exact all-origin MSD (SPEC §2): FFT kernel, pair kernel, analysis, out-of-core path."""

import json
import os
import tempfile

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anionmotion
from anionmotion.analysis.msd import MSD, MSDResult, default_memory
from anionmotion.errors import OptionError
from anionmotion.kernels import msd as km
from anionmotion.kernels.msd import (MSDAccumulator, msd_covariance, msd_direct_ref, msd_fft, msd_pairs,
                                     msd_pairs_ref)


def _walk(seed, T, N, scale=0.3, offset=0.0):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(size=(T, N, 3)) * scale, axis=0) + offset


def _tol(pos):
    # rounding of the FFT path: a few ulps of the positions' spread squared
    spread = float(np.ptp(pos)) if pos.size else 1.0
    return 1e-12 * max(spread, 1.0) ** 2 * max(1, pos.shape[0])


# ------------------------------------------------------------------ kernels
def test_ballistic_gives_v2_t2():
    T = 50
    v = np.array([0.3, -1.2, 2.0])
    pos = np.arange(T)[:, None, None] * v[None, None, :] * np.ones((1, 4, 1)) + 7.0
    msd, msd_xyz = msd_fft(pos)
    m = np.arange(T)
    npt.assert_allclose(msd_xyz, (m[:, None] * v[None]) ** 2, atol=1e-10)
    npt.assert_allclose(msd, m ** 2 * (v ** 2).sum(), atol=1e-10)
    assert msd[0] == 0.0


@settings(deadline=None, max_examples=60)
@given(seed=st.integers(0, 2**31), T=st.integers(0, 80), N=st.integers(1, 6), offset=st.floats(-1e3, 1e3))
def test_fft_equals_direct_double_loop(seed, T, N, offset):
    pos = _walk(seed, T, N, offset=offset)
    a, ax = msd_fft(pos)
    b, bx = msd_direct_ref(pos)
    assert a.shape == (T,) and ax.shape == (T, 3)
    npt.assert_allclose(ax, bx, rtol=1e-10, atol=_tol(pos))
    c, cx = msd_fft(pos, use_ext=False)
    npt.assert_allclose(cx, ax, rtol=1e-12, atol=_tol(pos))


@settings(deadline=None, max_examples=30)
@given(seed=st.integers(0, 2**31), T=st.integers(2, 60), shift=st.floats(-500, 500))
def test_invariant_under_uniform_translation(seed, T, shift):
    pos = _walk(seed, T, 3)
    a, _ = msd_fft(pos)
    b, _ = msd_fft(pos + shift)
    npt.assert_allclose(a, b, rtol=1e-10, atol=_tol(pos + shift))


@settings(deadline=None, max_examples=25)
@given(seed=st.integers(0, 2**31), T=st.integers(2, 60), max_shift=st.integers(0, 3))
def test_wrapped_input_with_lattice_shifts_gives_the_unwrapped_msd(seed, T, max_shift):
    box = 6.0
    walk = _walk(seed, T, 4, scale=0.4) + 1.0
    # wrap into the box, then move every atom of every frame by a random whole lattice vector:
    # the same configuration, which must give the MSD of the unwrapped walk
    rng = np.random.default_rng(seed)
    wrapped = walk - box * np.floor(walk / box)
    wrapped = wrapped + box * rng.integers(-max_shift, max_shift + 1, size=wrapped.shape)
    tw = anionmotion.from_arrays(wrapped, np.eye(3) * box, species=["Li"] * 4, frame_interval=0.1, style="wrapped")
    tu = anionmotion.from_arrays(walk, np.eye(3) * box, species=["Li"] * 4, frame_interval=0.1)
    rw, ru = anionmotion.msd(tw, species="Li"), anionmotion.msd(tu, species="Li")
    npt.assert_allclose(rw.msd, ru.msd, rtol=1e-9, atol=1e-9)


def test_block_size_does_not_change_the_sums():
    pos = _walk(1, 120, 13)
    ref, _ = msd_fft(pos)
    for ws in (1, km.workspace_bytes_per_atom(120) * 4, 10**9):
        got, _ = msd_fft(pos, workspace=ws)
        npt.assert_array_equal(got, ref)


def test_edge_cases_zero_one_two_frames_and_one_atom():
    for T in (0, 1, 2):
        pos = _walk(0, T, 1)
        a, ax = msd_fft(pos)
        b, bx = msd_direct_ref(pos)
        npt.assert_allclose(a, b, atol=1e-12)
        assert a.shape == (T,)
    pos = np.array([[[0.0, 0, 0]], [[1.0, 2.0, 2.0]]])
    npt.assert_allclose(msd_fft(pos)[0], [0.0, 9.0], atol=1e-12)
    assert msd_fft(np.zeros((5, 0, 3)))[0].tolist() == [0.0] * 5


def test_drift_argument_subtracts_a_common_motion():
    pos = _walk(2, 40, 3)
    drift = np.cumsum(np.ones((40, 3)) * 0.7, axis=0)
    a, _ = msd_fft(pos + drift[:, None, :], drift=drift)
    b, _ = msd_fft(pos)
    npt.assert_allclose(a, b, atol=1e-9)
    with pytest.raises(ValueError, match=r"drift must have shape \(40, 3\)"):
        msd_fft(pos, drift=np.zeros((3, 3)))


def test_kernel_input_errors():
    with pytest.raises(ValueError, match=r"positions must have shape \(n, n, 3\)"):
        msd_fft(np.zeros((4, 3)))
    with pytest.raises(OptionError, match="times must be strictly increasing"):
        msd_pairs(np.zeros((3, 1, 3)), [0.0, 1.0, 1.0])
    with pytest.raises(OptionError, match="lags must lie in 1"):
        msd_covariance([0, 3], 10, s2=1.0, e2=0.0)


def test_accumulator_block_overflow_error():
    acc = MSDAccumulator(10, 2)
    with pytest.raises(ValueError, match="block of 3 atoms exceeds the buffer"):
        acc.add_time_major(np.zeros((10, 3, 3)), 0, 3)


# ------------------------------------------------------------ uneven frames
def test_pairs_on_uniform_frames_equal_fft():
    pos = _walk(4, 50, 5)
    lags, m, mx, n = msd_pairs(pos, np.arange(50) * 0.2)
    npt.assert_allclose(lags, np.arange(50) * 0.2, atol=1e-6)
    npt.assert_allclose(m, msd_direct_ref(pos)[0], rtol=1e-12, atol=1e-12)
    npt.assert_array_equal(n, 50 - np.arange(50))


@settings(deadline=None, max_examples=25)
@given(seed=st.integers(0, 2**31), T=st.integers(1, 30))
def test_pairs_match_brute_force_on_log_spaced_times(seed, T):
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.choice([0.1, 0.2, 0.5], size=T))
    pos = _walk(seed, T, 3)
    lags, m, mx, n = msd_pairs(pos, times)
    _, m2, _, n2 = msd_pairs(pos, times, use_ext=False)
    npt.assert_allclose(m, m2, rtol=1e-12, atol=1e-12)
    npt.assert_array_equal(n, n2)
    # brute force grouping
    groups = {}
    for i in range(T):
        for j in range(i, T):
            key = round((times[j] - times[i]) * 1000)
            groups.setdefault(key, []).append(((pos[j] - pos[i]) ** 2).sum(axis=1).mean())
    assert len(groups) == len(lags)
    for lag, val, cnt in zip(lags, m, n):
        g = groups[round(lag * 1000)]
        assert cnt == len(g)
        assert val == pytest.approx(np.mean(g), rel=1e-10, abs=1e-12)
    assert int(n.sum()) == T * (T + 1) // 2


def test_log_spaced_trajectory_msd():
    # a ballistic atom sampled at log-spaced times: every lag value must give v²τ²
    times = np.unique(np.round(np.geomspace(0.01, 10, 40), 2))
    pos = np.zeros((len(times), 1, 3))
    pos[:, 0, 0] = 2.0 * times
    traj = anionmotion.from_arrays(pos, np.eye(3) * 100, times=times, species=["Na"])
    res = anionmotion.msd(traj, species="Na")
    assert res.dt_ps is None and not res.uniform
    assert res.meta["path"].startswith("pairs")
    npt.assert_allclose(res.msd, 4.0 * res.lag ** 2, rtol=1e-5, atol=1e-9)
    assert res.n_origins[0] == len(times)


# ---------------------------------------------------------------- analysis
def _traj(T=200, N=6, n_fw=4, seed=0, dt=0.1, **kw):
    pos = _walk(seed, T, N + n_fw)
    species = ["Li"] * N + ["P"] * (n_fw // 2) + ["S"] * (n_fw - n_fw // 2)
    return anionmotion.from_arrays(pos, np.eye(3) * 20, species=species, frame_interval=dt, **kw), pos


def test_analysis_matches_kernel_and_fields():
    traj, pos = _traj()
    res = anionmotion.msd(traj, species="Li", drift=False)
    assert isinstance(res, MSDResult)
    npt.assert_allclose(res.msd, msd_direct_ref(pos[:, :6])[0], rtol=1e-10, atol=1e-10)
    npt.assert_allclose(res.lag, np.arange(200) * 0.1)
    assert res.n_atoms == 6 and res.n_frames == 200 and res.dt_ps == pytest.approx(0.1)
    tm = ((pos[-1, :6] - pos[0, :6]) ** 2).sum(axis=1).mean()
    assert res.tmsd == pytest.approx(tm, rel=1e-10)
    assert res.tmsd == pytest.approx(res.msd[-1], rel=1e-9)
    assert res.diffusing == (tm >= 5.0)
    assert res.charge == 1.0 and res.volume_A3 == pytest.approx(8000.0)
    assert res.meta["drift_reason"] == "switched off" and res.drift is None and res.meta["drift_weights"] is None
    assert res.framework_tmsd is not None and res.meta["framework_cations"] == ["P"]
    ptm = ((pos[-1, 6:8] - pos[0, 6:8]) ** 2).sum(axis=1).mean()
    assert res.framework_tmsd == pytest.approx(ptm)
    assert res.framework_melting == (ptm > 2.0)


def test_tmsd_flags_static_framework_and_slow_cations():
    pos = np.zeros((50, 4, 3))
    pos[:, 0, 0] = np.linspace(0, 2.0, 50)    # Li moves 2 Å: TMSD 2 (mean over 2 Li) -> not diffusing
    pos[:, 2, 1] = np.linspace(0, 1.0, 50)    # P moves 1 Å: framework TMSD 1 -> intact
    pos[:, 1, 2] = 5.0
    traj = anionmotion.from_arrays(pos, np.eye(3) * 20, species=["Li", "Li", "P", "S"], frame_interval=0.1)
    res = anionmotion.msd(traj, species="Li", drift=False)  # raw displacements (P moves: the default corrects it)
    assert res.tmsd == pytest.approx(2.0) and res.diffusing is False
    assert res.framework_tmsd == pytest.approx(1.0) and res.framework_melting is False
    res2 = anionmotion.msd(traj, species="Li", framework_cations=[], drift=False)
    assert res2.framework_tmsd is None and res2.framework_melting is None


def test_drift_correction_removes_framework_motion():
    T = 100
    rng = np.random.default_rng(3)
    li = np.cumsum(rng.normal(size=(T, 5, 3)) * 0.2, axis=0)
    fw = rng.normal(size=(1, 6, 3)) * 3 + 0.01 * rng.normal(size=(T, 6, 3))
    drift = np.cumsum(np.full((T, 3), 0.05), axis=0)
    pos = np.concatenate([li, fw], axis=1) + drift[:, None, :]
    traj = anionmotion.from_arrays(pos, np.eye(3) * 30, species=["Li"] * 5 + ["S"] * 6, frame_interval=0.1)
    raw = anionmotion.msd(traj, species="Li", drift=False)
    default = anionmotion.msd(traj, species="Li")
    cor = anionmotion.msd(traj, species="Li", drift=True)
    truth = msd_direct_ref(li)[0]
    com = (pos[:, 5:] * traj.masses[5:, None]).sum(axis=1) / traj.masses[5:].sum()
    npt.assert_allclose(cor.drift, com - com[0], atol=1e-12)
    npt.assert_allclose(cor.msd, msd_direct_ref(li - (com - com[0] - drift)[:, None, :])[0], rtol=1e-9, atol=1e-9)
    assert np.abs(cor.msd - truth).max() < 0.05 * truth.max()
    assert np.abs(raw.msd - truth).max() > 0.2 * truth.max()
    assert cor.meta["drift_reason"].startswith("requested") and cor.meta["framework_species"] == ["S"]
    assert cor.to_dict()["drift_corrected"] is True and cor.to_dict()["drift_weights"] == "mass"
    assert "framework centre subtracted" in cor.summary()
    assert raw.drift is None and raw.meta["drift_reason"] == "switched off"
    # the default is on (framework atoms exist), whatever the format
    npt.assert_array_equal(default.msd, cor.msd)
    assert default.meta["drift_reason"].startswith("default: on whenever the trajectory has framework atoms")


@pytest.mark.parametrize("fmt", ["xdatcar", "cp2k", "extxyz", "lammps", "netcdf", "memory"])
def test_drift_default_is_one_rule_for_every_format(monkeypatch, fmt):
    traj, _ = _traj()
    monkeypatch.setattr(traj, "format", fmt)
    res = anionmotion.msd(traj, species="Li")
    assert res.drift is not None and res.meta["drift_weights"] == "mass"
    assert res.meta["drift_reason"] == ("default: on whenever the trajectory has framework atoms; framework centre "
                                        "of mass")
    only_li = anionmotion.from_arrays(_walk(0, 20, 3), np.eye(3) * 9, species=["Li"] * 3, frame_interval=0.1)
    monkeypatch.setattr(only_li, "format", fmt)
    res = anionmotion.msd(only_li, species="Li")
    assert res.drift is None and res.meta["drift_reason"] == "no framework atoms to define the drift"
    with pytest.raises(OptionError, match="drift correction needs framework atoms"):
        anionmotion.msd(only_li, species="Li", drift=True)


def test_drift_weights_mass_and_unweighted():
    T = 60
    rng = np.random.default_rng(5)
    li = np.cumsum(rng.normal(size=(T, 4, 3)) * 0.2, axis=0)
    # a heavy atom at rest and a light one that drifts: the two centres differ
    fw = np.zeros((T, 2, 3))
    fw[:, 0] = 3.0
    fw[:, 1] = 6.0 + np.linspace(0, 2.0, T)[:, None]
    pos = np.concatenate([li, fw], axis=1)
    traj = anionmotion.from_arrays(pos, np.eye(3) * 30, species=["Li"] * 4 + ["Pb", "O"], frame_interval=0.1)
    m = traj.masses[4:]
    mass = anionmotion.msd(traj, species="Li")
    plain = anionmotion.msd(traj, species="Li", drift_weights="unweighted")
    com = (fw * m[None, :, None]).sum(axis=1) / m.sum()
    npt.assert_allclose(mass.drift, com - com[0], atol=1e-12)
    npt.assert_allclose(plain.drift, fw.mean(axis=1) - fw.mean(axis=1)[0], atol=1e-12)
    npt.assert_allclose(plain.msd, msd_direct_ref(li - (fw.mean(axis=1) - fw.mean(axis=1)[0])[:, None, :])[0],
                        rtol=1e-9, atol=1e-12)
    assert plain.meta["drift_weights"] == "unweighted" and "unweighted framework centre" in plain.meta["drift_reason"]
    assert not np.allclose(mass.msd, plain.msd)
    with pytest.raises(OptionError, match="invalid drift_weights 'atoms'; choose one of mass, unweighted"):
        anionmotion.msd(traj, species="Li", drift_weights="atoms")
    # unknown framework masses: the default falls back to the unweighted centre and says so; asked for, an error
    odd = anionmotion.from_arrays(pos, np.eye(3) * 30, species=["Li"] * 4 + ["X1", "X2"], frame_interval=0.1)
    assert not np.all(np.isfinite(odd.masses[4:]))
    res = anionmotion.msd(odd, species="Li")
    assert res.meta["drift_weights"] == "unweighted" and "masses of X1, X2 are unknown" in res.meta["drift_reason"]
    npt.assert_allclose(res.msd, plain.msd, rtol=1e-12)
    with pytest.raises(OptionError, match="mass-weighted drift correction needs the masses.*unknown for X1, X2"):
        anionmotion.msd(odd, species="Li", drift_weights="mass")


def test_cli_drift_weights(tmp_path, capsys):
    from anionmotion.cli import main

    traj, pos = _traj(T=60)
    out = tmp_path / "w.json"
    ext = tmp_path / "t.extxyz"
    from ase import Atoms
    from ase.io import write

    write(ext, [Atoms(symbols=list(traj.species), positions=p, cell=np.eye(3) * 20, pbc=True) for p in pos],
          format="extxyz")
    for weights in ("mass", "unweighted"):
        assert main(["msd", str(ext), "--species", "Li", "--frame-interval", "0.1", "--drift-weights", weights,
                     "--no-progress", "--json", str(out), "--overwrite"]) == 0
        d = json.load(open(out))
        assert d["drift_corrected"] is True and d["drift_weights"] == weights
        ref = anionmotion.msd(traj, species="Li", drift_weights=weights)
        npt.assert_allclose(d["msd_A2"], ref.msd, rtol=1e-6, atol=1e-9)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["msd", str(ext), "--species", "Li", "--drift-weights", "atoms"])


@pytest.mark.parametrize("drift", [False, True])
@pytest.mark.parametrize("uneven", [False, True])
def test_out_of_core_equals_in_memory(drift, uneven, tmp_path):
    traj, pos = _traj(T=150, N=7)
    if uneven:
        t = np.cumsum(np.random.default_rng(1).choice([0.1, 0.3], size=150))
        traj = anionmotion.from_arrays(pos, np.eye(3) * 20, times=t, species=list(traj.species))
    mem = anionmotion.msd(traj, species="Li", drift=drift)
    ooc = anionmotion.msd(traj, species="Li", drift=drift, memory=30000, scratch_dir=str(tmp_path))
    assert mem.meta["path"] in ("memory", "pairs (uneven frame spacing)")
    assert "out-of-core" in ooc.meta["path"]
    assert ooc.meta["atoms_per_block"] < 7 and ooc.meta["frames_per_chunk"] < 150
    npt.assert_allclose(ooc.msd_xyz, mem.msd_xyz, rtol=1e-12, atol=1e-12 * mem.msd.max())
    npt.assert_allclose(ooc.tmsd, mem.tmsd, rtol=1e-12)
    assert os.listdir(tmp_path) == []  # scratch removed


@settings(deadline=None, max_examples=15)
@given(seed=st.integers(0, 2**31), T=st.integers(2, 90), N=st.integers(1, 9), chunks=st.integers(1, 6))
def test_out_of_core_property(seed, T, N, chunks):
    pos = _walk(seed, T, N)
    traj = anionmotion.from_arrays(pos, np.eye(3) * 10, species=["Na"] * N, frame_interval=0.05)
    mem = anionmotion.msd(traj, species="Na")
    # one atom's FFT workspace (the larger of the MSD's and α₂'s fourth moments) and a few read chunks
    from anionmotion.kernels.vanhove import moments_workspace_bytes_per_atom

    ws = max(km.workspace_bytes_per_atom(T), moments_workspace_bytes_per_atom(T))
    budget = int(ws * 1.4) + 24 * T + N * 96 * 4 * chunks
    ooc = anionmotion.msd(traj, species="Na", memory=budget, mode="out-of-core")
    assert ooc.meta["path"] == "out-of-core"
    npt.assert_allclose(ooc.msd, mem.msd, rtol=1e-12, atol=1e-12 * max(mem.msd.max(), 1e-300))


def test_frame_range_and_step():
    traj, pos = _traj(T=120)
    res = anionmotion.msd(traj, species="Li", start=10, stop=110, step=3, drift=False)
    npt.assert_allclose(res.msd, msd_direct_ref(pos[10:110:3, :6])[0], rtol=1e-10, atol=1e-10)
    # the drift (on by default) is that of the same frames
    d = anionmotion.msd(traj, species="Li", start=10, stop=110, step=3)
    com = (pos[10:110:3, 6:] * traj.masses[None, 6:, None]).sum(axis=1) / traj.masses[6:].sum()
    npt.assert_allclose(d.drift, com - com[0], atol=1e-12)
    npt.assert_allclose(d.msd, msd_direct_ref(pos[10:110:3, :6] - (com - com[0])[:, None, :])[0], rtol=1e-9,
                        atol=1e-10)
    assert res.dt_ps == pytest.approx(0.3)


def test_collective_charge_msd():
    traj, pos = _traj(T=80, N=4, n_fw=2)  # Li4 P1 S1
    q = {"Li": 1.0, "P": 5.0, "S": -2.0}
    res = anionmotion.msd(traj, species="Li", collective=True, charges=q)
    qv = np.array([1, 1, 1, 1, 5, -2.0])
    P = (pos * qv[None, :, None]).sum(axis=1)
    npt.assert_allclose(res.charge_msd, msd_direct_ref(P[:, None, :])[0], rtol=1e-9, atol=1e-9)
    assert res.meta["total_charge_e"] == pytest.approx(7.0)
    with pytest.raises(OptionError, match="carries no charges"):
        anionmotion.msd(traj, species="Li", collective=True)
    with pytest.raises(OptionError, match="no tabulated ionic charge for 'P'"):
        anionmotion.msd(traj, species="Li", collective=True, charges="formal")
    with pytest.raises(OptionError, match="no charge given for species S"):
        anionmotion.msd(traj, species="Li", collective=True, charges={"Li": 1, "P": 5})
    with pytest.raises(OptionError, match="invalid charges 'bogus'"):
        anionmotion.msd(traj, species="Li", collective=True, charges="bogus")
    withq = anionmotion.from_arrays(pos, np.eye(3) * 20, species=list(traj.species), frame_interval=0.1,
                                    charges=qv)
    r2 = anionmotion.msd(withq, species="Li", collective=True)
    npt.assert_allclose(r2.charge_msd, res.charge_msd, rtol=1e-12)


def test_temperature_from_metadata_and_errors():
    pos = _walk(0, 30, 3)
    traj = anionmotion.from_arrays(pos, np.eye(3) * 9, species=["Li"] * 3, frame_interval=0.1,
                                   metadata={"temperature": 650.0})
    res = anionmotion.msd(traj, species="Li")
    assert res.temperature_K == 650.0 and res.meta["temperature_source"] == "trajectory metadata"
    assert anionmotion.msd(traj, species="Li", temperature=500).temperature_K == 500
    with pytest.raises(OptionError, match="temperature must be positive"):
        anionmotion.msd(traj, species="Li", temperature=-3)
    with pytest.raises(OptionError, match="no atoms of species Na"):
        anionmotion.msd(traj, species="Na")
    with pytest.raises(OptionError, match="no frames in the range"):
        anionmotion.msd(traj, species="Li", start=40)
    with pytest.raises(OptionError, match="too small for 30 frames"):
        anionmotion.msd(traj, species="Li", memory=100)
    with pytest.raises(OptionError, match="invalid mode 'disk'"):
        anionmotion.msd(traj, species="Li", mode="disk")
    with pytest.raises(OptionError, match="invalid memory size"):
        anionmotion.msd(traj, species="Li", memory="lots")


def test_result_dict_and_save(tmp_path):
    traj, _ = _traj(T=40)
    res = MSD(species="Li").run(traj)
    d = res.to_dict()
    for key in ("species", "n_atoms", "n_frames", "temperature_K", "lag_ps", "msd_A2", "msd_xyz_A2", "tmsd_A2"):
        assert key in d
    assert len(d["msd_xyz_A2"][0]) == 3 and len(d["lag_ps"]) == 40
    p = res.save(tmp_path / "m.json")
    assert json.load(open(p))["species"] == "Li"
    assert "TMSD" in res.summary() and repr(res).startswith("MSDResult(species='Li'")
    assert repr(MSD("Li")).startswith("MSD(species='Li'")
    assert default_memory() >= 256 * 1024**2
