"""The msd result carries α₂(τ) (same pass, every lag) and the msd command's JSON the 3×3 D tensor (issue 12)."""
import json

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings, strategies as st

import anionmotion
from anionmotion.cli import main
from anionmotion.kernels.vanhove import alpha2_from_moments, displacement_moments_ref


def _brownian(seed, T=160, N=12, times=None):
    rng = np.random.default_rng(seed)
    pos = np.cumsum(rng.normal(0, 0.3, (T, N, 3)), axis=0) + rng.uniform(0, 20, (1, N, 3))
    kw = dict(times=times) if times is not None else dict(frame_interval=0.1)
    return pos, anionmotion.from_arrays(pos, np.eye(3) * 20, species=["Li"] * N, **kw)


def _reference_alpha2(pos):
    m2, m4 = displacement_moments_ref(pos)[:2]
    return alpha2_from_moments(m2, m4)


@settings(deadline=None, max_examples=12)
@given(seed=st.integers(0, 10_000), mode=st.sampled_from(["memory", "out-of-core"]),
       memory=st.sampled_from([None, "1MB", "64MB"]))
def test_alpha2_every_lag_equals_the_direct_twin(seed, mode, memory):
    pos, traj = _brownian(seed)
    res = anionmotion.msd(traj, species="Li", mode=mode, memory=memory)
    ref = _reference_alpha2(pos)
    assert np.isnan(res.alpha2[0]) and len(res.alpha2) == len(res.lag)
    npt.assert_allclose(res.alpha2[1:], ref[1:], rtol=1e-9, atol=1e-9)


def test_alpha2_uneven_frames_both_paths():
    t = np.cumsum(np.r_[0.0, np.full(40, 0.1), np.full(40, 0.3)])
    pos, traj = _brownian(3, T=len(t), times=t)
    a = anionmotion.msd(traj, species="Li")
    b = anionmotion.msd(traj, species="Li", mode="out-of-core", memory="1MB")
    assert a.meta["path"].startswith("pairs")
    npt.assert_allclose(a.alpha2[1:], b.alpha2[1:], rtol=1e-12, atol=1e-12)
    m2, m4 = [], []
    for k, lag in enumerate(a.lag):         # direct: every frame pair at this time difference
        i, j = np.nonzero(np.isclose(t[None, :] - t[:, None], lag, atol=1e-9))
        r2 = ((pos[j] - pos[i]) ** 2).sum(-1)
        m2.append(r2.mean()), m4.append((r2 ** 2).mean())
    npt.assert_allclose(a.alpha2[1:], alpha2_from_moments(np.array(m2), np.array(m4))[1:], rtol=1e-9, atol=1e-12)


def test_alpha2_matches_vanhove_and_can_be_skipped():
    pos, traj = _brownian(5)
    res = anionmotion.msd(traj, species="Li")
    vh = anionmotion.vanhove(traj, "Li")
    npt.assert_allclose(res.alpha2[1:], np.asarray(vh.alpha2)[1:], rtol=1e-9, atol=1e-9)
    assert anionmotion.msd(traj, species="Li", alpha2=False).alpha2 is None
    assert "alpha2" in res.to_dict() and res.tables()[0].header[-1] == "alpha2"


def test_lattice_jumps_give_a_positive_alpha2_that_decays():
    """Continuous-time random walk on a cubic lattice: α₂ = 3/(5Γt) > 0 at short times, → 0 later."""
    rng = np.random.default_rng(0)
    T, N, a, rate, dt = 4000, 60, 2.0, 0.05, 0.1         # rate per frame
    jumps = rng.random((T, N)) < rate
    axis = rng.integers(0, 3, (T, N))
    sign = rng.choice([-1.0, 1.0], (T, N))
    step = np.zeros((T, N, 3))
    step[np.arange(T)[:, None], np.arange(N)[None, :], axis] = a * sign * jumps
    pos = np.cumsum(step, axis=0)
    traj = anionmotion.from_arrays(pos, np.eye(3) * 1000, species=["Li"] * N, frame_interval=dt)
    res = anionmotion.msd(traj, species="Li")
    gamma_t = -np.log1p(-rate) * np.arange(T)             # expected jumps (Poisson rate per frame)
    for m in (5, 20, 80):
        assert res.alpha2[m] == pytest.approx(3 / (5 * gamma_t[m]), rel=0.2)


def test_msd_command_json_has_the_d_tensor(tmp_path):
    from anionmotion._example import example_path

    out = tmp_path / "m.json"
    assert main(["msd", example_path("UC"), "--species", "Li", "--stop", "800", "--json", str(out),
                 "--no-progress"]) == 0
    d = json.loads(out.read_text())
    D = np.array(d["diffusion"]["D_tensor_cm2_s"])
    assert D.shape == (3, 3) and np.allclose(D, D.T)
    assert np.trace(D) / 3 == pytest.approx(d["diffusion"]["D_cm2_s"], rel=1e-9)
    t = d["diffusion"]["D_tensor"]
    assert len(t["eigenvalues_cm2_s"]) == 3 and np.array(t["axes"]).shape == (3, 3)
    assert len(d["alpha2"]) == len(d["lag_ps"])
    out2 = tmp_path / "n.json"
    assert main(["msd", example_path("UC"), "--species", "Li", "--stop", "800", "--json", str(out2), "--no-tensor",
                 "--no-alpha2", "--no-progress"]) == 0
    d2 = json.loads(out2.read_text())
    assert "D_tensor_cm2_s" not in d2["diffusion"] and d2["alpha2"] is None
    assert d2["diffusion"]["D_cm2_s"] == pytest.approx(d["diffusion"]["D_cm2_s"], rel=1e-12)


# ---------------------------------------------------------------------------- D tensor in the msd pass
def _anisotropic(seed, T=400, N=30, n_fw=6, fw_drift=0.02):
    """Correlated (off-diagonal) anisotropic Brownian Li plus a drifting framework of S."""
    rng = np.random.default_rng(seed)
    A = np.array([[0.30, 0.30, 0.05], [0.0, 0.20, 0.07], [0.0, 0.0, 0.10]])
    li = np.cumsum(rng.normal(size=(T, N, 3)) @ A.T, axis=0) + rng.uniform(0, 20, (1, N, 3))
    drift = np.cumsum(rng.normal(0, fw_drift, (T, 1, 3)), axis=0)
    li = li + drift
    fw = drift + rng.uniform(0, 20, (1, n_fw, 3)) + rng.normal(0, 0.05, (T, n_fw, 3))
    pos = np.concatenate([li, fw], axis=1)
    traj = anionmotion.from_arrays(pos, np.eye(3) * 20, species=["Li"] * N + ["S"] * n_fw, frame_interval=0.1)
    return pos, traj


@pytest.mark.parametrize("drift", [None, False])
@pytest.mark.parametrize("mode,memory", [("memory", None), ("out-of-core", "1MB")])
def test_d_tensor_in_the_msd_pass_equals_the_second_pass(drift, mode, memory):
    """The tensor fitted inside msd() equals onsager.d_tensor (the former second pass over the trajectory) to
    1e-10: tensor, errors, eigenvalues, axes and the MSD tensor, with and without drift removal."""
    from anionmotion.analysis.onsager import d_tensor

    _, traj = _anisotropic(11)
    res = anionmotion.msd(traj, species="Li", drift=drift, mode=mode, memory=memory, tensor=True, seed=3)
    assert res.meta["path"] == mode and (res.drift is None) == (drift is False)
    fit = anionmotion.fit_diffusion(res)
    old = d_tensor(traj, "Li", fit=fit.fit_window_ps, frame="none" if res.drift is None else "framework",
                   drift_weights=res.meta.get("drift_weights") or "mass", temperature=res.temperature_K,
                   charge=res.charge, seed=3)
    new = res.d_tensor
    D = new.D_tensor_A2_ps
    assert D[0, 1] > 2 * new.D_tensor_stderr_A2_ps[0, 1] > 0        # the off-diagonals are really there
    for a, b in [("D_tensor_A2_ps", 1e-10), ("D_tensor_stderr_A2_ps", 1e-10), ("eigenvalues_A2_ps", 1e-10),
                 ("eigenvalues_stderr_A2_ps", 1e-10), ("axes", 1e-10), ("axes_stderr_deg", 1e-8),
                 ("msd_tensor_A2", 1e-10)]:
        npt.assert_allclose(getattr(new, a), getattr(old, a), rtol=0, atol=b, err_msg=a)
    assert new.fit_window_ps == old.fit_window_ps and new.n_fit_lags == old.n_fit_lags
    assert new.D_A2_ps == pytest.approx(old.D_A2_ps, rel=1e-10)
    assert np.trace(D) / 3 == pytest.approx(fit.D_A2_ps, rel=1e-9)
    npt.assert_allclose(res.msd_tensor[:, :3], res.msd_xyz, rtol=0, atol=1e-10)


def test_msd_tensor_and_slopes_equal_their_numpy_twins():
    from anionmotion.analysis.msd import tensor_slopes
    from anionmotion.kernels.onsager import PAIRS, msd_tensor_ref, tensor_msd_rows

    pos, traj = _anisotropic(4, T=90, N=7, n_fw=3)
    res = anionmotion.msd(traj, species="Li", drift=False, tensor=True, n_boot=0)
    ref = msd_tensor_ref(pos[:, :7])
    npt.assert_allclose(res.msd_tensor, np.stack([ref[:, a, b] for a, b in PAIRS], axis=1), rtol=0, atol=1e-10)
    block = np.ascontiguousarray(pos[:, :7].transpose(1, 2, 0))
    rng = np.random.default_rng(0)
    for lags in (np.arange(9, 45), np.array([1, 2, 89]), np.sort(rng.choice(np.arange(1, 90), 20, replace=False))):
        w = rng.normal(size=len(lags))
        npt.assert_allclose(tensor_slopes(block, lags, w), tensor_msd_rows(block)[:, :, lags] @ w, rtol=1e-10,
                            atol=1e-10)
    for T in (64, 97, 125):       # even and odd padded FFT lengths
        b = rng.normal(size=(2, 3, T)).cumsum(-1)
        lags = np.arange(1, T)
        w = rng.normal(size=T - 1)
        npt.assert_allclose(tensor_slopes(b, lags, w), tensor_msd_rows(b)[:, :, lags] @ w, rtol=1e-10, atol=1e-10)


def test_tensor_is_translation_and_permutation_invariant():
    pos, traj = _anisotropic(7, T=120, N=9, n_fw=0)
    a = anionmotion.msd(traj, species="Li", tensor=True, n_boot=50)
    perm = np.random.default_rng(1).permutation(9)
    shifted = pos[:, perm] + np.array([3.0, -7.5, 12.25])
    b = anionmotion.msd(anionmotion.from_arrays(shifted, np.eye(3) * 20, species=["Li"] * 9, frame_interval=0.1),
                        species="Li", tensor=True, n_boot=50)
    npt.assert_allclose(b.d_tensor.D_tensor_A2_ps, a.d_tensor.D_tensor_A2_ps, rtol=1e-9, atol=1e-12)
    npt.assert_allclose(b.msd_tensor, a.msd_tensor, rtol=1e-9, atol=1e-10)


def test_tensor_block_sizing_counts_its_workspace_and_skips_uneven_frames():
    from anionmotion.analysis.msd import tensor_workspace_bytes_per_atom
    from anionmotion.kernels.msd import workspace_bytes_per_atom
    from anionmotion.kernels.vanhove import moments_workspace_bytes_per_atom

    T = 4000
    # the tensor's block work is larger than the MSD's and smaller than the fourth moments'
    assert workspace_bytes_per_atom(T) < tensor_workspace_bytes_per_atom(T) < moments_workspace_bytes_per_atom(T)
    rng = np.random.default_rng(2)
    pos = np.cumsum(rng.normal(0, 0.2, (T, 40, 3)), axis=0)
    traj = anionmotion.from_arrays(pos, np.eye(3) * 30, species=["Li"] * 40, frame_interval=0.1)
    budget = 8 * 1024 ** 2
    kw = dict(species="Li", mode="out-of-core", memory=budget, alpha2=False)
    r = anionmotion.msd(traj, tensor=True, n_boot=20, **kw)
    blk = r.meta["atoms_per_block"]
    assert blk * (tensor_workspace_bytes_per_atom(T) + 24 * T) <= budget
    assert blk < anionmotion.msd(traj, **kw).meta["atoms_per_block"]
    r0 = anionmotion.msd(traj, species="Li", tensor=True, n_boot=20)
    npt.assert_allclose(r.d_tensor.D_tensor_A2_ps, r0.d_tensor.D_tensor_A2_ps, rtol=1e-10, atol=1e-14)
    t = np.cumsum(np.r_[0.0, np.full(30, 0.1), np.full(30, 0.3)])
    _, tr = _brownian(3, T=len(t), times=t)
    u = anionmotion.msd(tr, species="Li", tensor=True)
    assert u.d_tensor is None and u.msd_tensor is None and "not computed" in u.meta["tensor"]
