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
