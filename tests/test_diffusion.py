"""Diffusion fit, its uncertainty, He et al. estimate and conductivities (SPEC §2)."""

import math
import warnings

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anionmotion
from anionmotion.analysis.diffusion import (Conductivity, DiffusionResult, conductivity, fit_diffusion,
                                            he_relative_error, report_dict)
from anionmotion.errors import FitWarning, OptionError
from anionmotion.kernels.msd import msd_covariance
from anionmotion.units import nernst_einstein_S_cm


def _brownian(seed, D=0.05, dt=0.1, T=200, N=8, noise=0.2, box=1000.0, species="Li", **kw):
    rng = np.random.default_rng(seed)
    pos = np.cumsum(rng.normal(scale=math.sqrt(2 * D * dt), size=(T, N, 3)), axis=0)
    pos += rng.normal(scale=noise, size=pos.shape)
    return anionmotion.from_arrays(pos, np.eye(3) * box, species=[species] * N, frame_interval=dt, **kw)


def _fit(traj, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        return fit_diffusion(anionmotion.msd(traj, species="Li"), **kw)


# -------------------------------------------------------------- covariance
def _cov_bruteforce(lags, T, s2, e2):
    K = len(lags)
    out = np.zeros((K, K))
    for p, m in enumerate(lags):
        for q, n in enumerate(lags):
            s = 0.0
            for t in range(T - m):
                for u in range(T - n):
                    ov = max(0, min(t + m, u + n) - max(t, u))
                    c = s2 * ov + e2 * ((t + m == u + n) - (t + m == u) - (t == u + n) + (t == u))
                    s += c * c
            out[p, q] = 2 * s / ((T - m) * (T - n))
    return out


@settings(deadline=None, max_examples=40)
@given(T=st.integers(2, 25), data=st.data(), s2=st.floats(0, 3), e2=st.floats(0, 3))
def test_msd_covariance_matches_bruteforce_and_ref(T, data, s2, e2):
    lags = data.draw(st.lists(st.integers(1, T - 1), min_size=1, max_size=5))
    got = msd_covariance(lags, T, s2=s2, e2=e2)
    npt.assert_allclose(got, _cov_bruteforce(lags, T, s2, e2), rtol=1e-9, atol=1e-12)
    npt.assert_allclose(got, msd_covariance(lags, T, s2=s2, e2=e2, use_ext=False), rtol=1e-9, atol=1e-12)


def test_msd_covariance_matches_monte_carlo():
    T, lags, s2, e2 = 40, np.array([1, 4, 15]), 0.5, 0.2
    rng = np.random.default_rng(7)
    R = 6000
    X = np.cumsum(rng.normal(scale=math.sqrt(s2), size=(T, R)), axis=0) + rng.normal(scale=math.sqrt(e2), size=(T, R))
    M = np.stack([((X[m:] - X[:T - m]) ** 2).mean(axis=0) for m in lags])
    npt.assert_allclose(M.mean(axis=1), lags * s2 + 2 * e2, rtol=0.03)
    npt.assert_allclose(np.cov(M), msd_covariance(lags, T, s2=s2, e2=e2), rtol=0.12)


# -------------------------------------------------------------------- fit
def test_brownian_recovers_D_and_reports_fields():
    res = _fit(_brownian(0, N=32, T=400))
    assert isinstance(res, DiffusionResult)
    assert abs(res.D_A2_ps - 0.05) < 3 * res.D_stderr_A2_ps
    assert res.D_stderr_A2_ps < 0.2 * 0.05
    assert res.D_cm2_s == pytest.approx(res.D_A2_ps * 1e-4)
    npt.assert_allclose(res.D_xyz_A2_ps, 0.05, atol=4 * res.D_xyz_stderr_A2_ps.max())
    assert res.fit_window_ps == pytest.approx((3.99, 19.95)) and res.fit_window_default
    assert res.estimator == "auto" and "diffusive regime" in res.method and res.below_threshold is False
    assert res.diffusive_regime_reached is True and res.regime["start_ps"] == pytest.approx(3.99)
    gls = _fit(_brownian(0, N=32, T=400), estimator="gls")
    assert "GLS" in gls.method and gls.estimator == "gls" and abs(gls.D_A2_ps - 0.05) < 3 * gls.D_stderr_A2_ps
    assert 0.7 < res.loglog_slope < 1.3
    # the OLS intercept of the auto window is noisier than the GLS one, which leans on the first lags
    assert gls.intercept_A2 == pytest.approx(6 * 0.2 ** 2, abs=0.1) and abs(res.intercept_A2 - 0.24) < 0.5
    d = res.to_dict()
    for key in ("D_cm2_s", "D_stderr_cm2_s", "D_xyz_cm2_s", "fit_window_ps", "method", "below_threshold",
                "estimator", "diffusive_regime_reached", "diffusive_regime"):
        assert key in d
    assert "±" in res.summary() and repr(res).startswith("DiffusionResult(species='Li'")


def _coverage(n_seeds, T, N):
    z, zx = [], []
    for seed in range(n_seeds):
        r = _fit(_brownian(1000 + seed, T=T, N=N))
        z.append((r.D_A2_ps - 0.05) / r.D_stderr_A2_ps)
        zx.extend((r.D_xyz_A2_ps - 0.05) / r.D_xyz_stderr_A2_ps)
    return np.abs(np.array(z)), np.abs(np.array(zx))


def test_uncertainty_covers_the_truth_at_its_stated_rate():
    # 100 small Brownian systems: |D − D_true| < 1σ about 68 % and < 2σ about 95 % of the time
    z, zx = _coverage(100, T=150, N=6)
    assert 0.56 <= np.mean(z < 1) <= 0.82, np.mean(z < 1)
    assert np.mean(z < 2) >= 0.88, np.mean(z < 2)
    assert 0.58 <= np.mean(zx < 1) <= 0.85, np.mean(zx < 1)
    assert np.mean(zx < 2) >= 0.90


def test_uncertainty_coverage_fast():
    z, _ = _coverage(25, T=100, N=6)
    assert 0.4 <= np.mean(z < 1) <= 0.95 and np.mean(z < 2.5) >= 0.84


@pytest.mark.slow
def test_uncertainty_coverage_larger_systems():
    z, zx = _coverage(150, T=500, N=16)
    assert 0.60 <= np.mean(z < 1) <= 0.77
    assert 0.92 <= np.mean(z < 2) <= 0.985
    # per direction the Birge factor max(1, χ²/dof) makes the error slightly conservative
    assert 0.62 <= np.mean(zx < 1) <= 0.83


def test_ballistic_window_warns_and_static_atoms_give_a_bound():
    T = 60
    pos = np.zeros((T, 3, 3))
    pos[:, :, 0] = 0.5 * np.arange(T)[:, None]
    traj = anionmotion.from_arrays(pos, np.eye(3) * 100, species=["Li"] * 3, frame_interval=0.1)
    with pytest.warns(FitWarning, match=r"not diffusive in the fit window .* log–log slope 2\.00"):
        fit_diffusion(anionmotion.msd(traj, species="Li"))
    still = anionmotion.from_arrays(np.random.default_rng(0).normal(scale=0.1, size=(T, 4, 3)), np.eye(3) * 10,
                                    species=["Li"] * 4, frame_interval=0.1)
    res = fit_diffusion(anionmotion.msd(still, species="Li"), temperature=300)
    assert res.below_threshold is True and res.is_upper_bound
    assert res.D_cm2_s == pytest.approx(1e-8) and res.D_stderr_A2_ps == 0.0
    assert res.below_threshold_xyz.all()
    d = res.to_dict()
    assert d["below_threshold"] is True and d["bound"] == "upper" and d["D_cm2_s"] == pytest.approx(1e-8)
    assert d["conductivity"]["below_threshold"] is True
    assert "< 1e-08 cm²/s" in res.summary() and "(bound)" in res.summary()


def test_fit_window_override_and_errors():
    traj = _brownian(1)
    r = anionmotion.msd(traj, species="Li")
    res = fit_diffusion(r, fit=(2.0, 6.0))
    assert res.fit_window_ps == (2.0, 6.0) and res.fit_window_default is False
    assert res.n_fit_lags == 41
    res = fit_diffusion(r, fit=(2.0, 19.0), max_lags=10)
    assert res.n_fit_lags == 10
    with pytest.raises(OptionError, match="fit window must satisfy 0 <= start < end"):
        fit_diffusion(r, fit=(5, 2))
    with pytest.raises(OptionError, match="fit must be two times"):
        fit_diffusion(r, fit="soon")
    with pytest.raises(OptionError, match="beyond the longest lag"):
        fit_diffusion(r, fit=(50, 60))
    with pytest.raises(OptionError, match="holds 1 lag"):
        fit_diffusion(r, fit=(1.0, 1.05))
    with pytest.raises(OptionError, match="max_lags must be at least 3"):
        fit_diffusion(r, max_lags=2)
    short = anionmotion.msd(_brownian(0, T=3), species="Li")
    with pytest.raises(OptionError, match="needs at least 4 lags"):
        fit_diffusion(short)
    with pytest.raises(OptionError, match="hop_distance must be a positive"):
        fit_diffusion(r, hop_distance=-1)
    with pytest.raises(OptionError, match="temperature must be positive"):
        fit_diffusion(r, temperature=0)


def test_he_estimate():
    rel, n_eff = he_relative_error(100, 40.0, 2.0)
    assert n_eff == pytest.approx(1000.0) and rel == pytest.approx(3.43 / math.sqrt(1000) + 0.04)
    r = anionmotion.msd(_brownian(2), species="Li")
    res = fit_diffusion(r, hop_distance=2.5)
    rel, n_eff = he_relative_error(8, r.msd.max(), 2.5)
    assert res.he_relative_error == pytest.approx(rel) and res.he_n_eff == pytest.approx(n_eff)
    assert res.he_relative_error_xyz[0] == pytest.approx(he_relative_error(8, r.msd_xyz[:, 0].max(), 2.5)[0])
    assert res.to_dict()["D_he_stderr_cm2_s"] == pytest.approx(res.D_cm2_s * rel)


def test_uneven_frames_use_ols_with_he_error():
    rng = np.random.default_rng(4)
    t = np.cumsum(rng.choice([0.1, 0.2], size=150))
    steps = rng.normal(size=(150, 6, 3)) * np.sqrt(2 * 0.05 * np.diff(np.concatenate([[0], t])))[:, None, None]
    traj = anionmotion.from_arrays(np.cumsum(steps, axis=0), np.eye(3) * 1000, times=t, species=["Li"] * 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        res = fit_diffusion(anionmotion.msd(traj, species="Li"), hop_distance=1.0)
    assert res.method.startswith("OLS on uneven frame times")
    assert res.D_stderr_A2_ps == pytest.approx(res.D_A2_ps * res.he_relative_error)
    assert abs(res.D_A2_ps - 0.05) < 0.5 * 0.05


# ---------------------------------------------------------- conductivity
def test_nernst_einstein_numbers():
    c = conductivity(0.01, n_ions=192, charge=1, volume_A3=8381.0, temperature_K=500, D_stderr_A2_ps=0.001)
    # σ = N q² D / (V kB T): 192 e² × 1e-10 m²/s / (8.381e-27 m³ × 1.380649e-23 × 500) → S/m → S/cm
    e, kb = 1.602176634e-19, 1.380649e-23
    want = 192 * e ** 2 * 0.01e-8 / (8381e-30 * kb * 500) / 100
    assert isinstance(c, Conductivity)
    assert c.sigma_S_cm == pytest.approx(want, rel=1e-12)
    assert c.sigma_stderr_S_cm == pytest.approx(want / 10, rel=1e-12)
    assert c.to_dict()["sigma_mS_cm"] == pytest.approx(want * 1e3)
    with pytest.raises(OptionError, match="temperature_K must be positive"):
        conductivity(0.01, n_ions=1, charge=1, volume_A3=1, temperature_K=None)
    with pytest.raises(OptionError, match="charge must be a non-zero number"):
        conductivity(0.01, n_ions=1, charge=0, volume_A3=1, temperature_K=300)


def test_fit_gives_conductivity_with_temperature_and_charge():
    traj = _brownian(3, N=16, box=15.0, species="Na")
    r = anionmotion.msd(traj, species="Na", temperature=600)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        res = fit_diffusion(r)
        res2 = fit_diffusion(r, charge=2)
        nocond = fit_diffusion(anionmotion.msd(traj, species="Na"))
    c = res.conductivity
    assert c.charge == 1.0 and c.n_ions == 16 and c.volume_A3 == pytest.approx(15 ** 3)
    assert c.sigma_S_cm == pytest.approx(nernst_einstein_S_cm(16, 1, res.D_A2_ps, 15 ** 3, 600))
    assert res2.conductivity.sigma_S_cm == pytest.approx(4 * c.sigma_S_cm)
    assert nocond.conductivity is None and "no temperature" in nocond.summary()
    d = report_dict(r, res)
    for key in ("sigma_mS_cm", "sigma_stderr_mS_cm", "charge", "volume_A3"):
        assert key in d["conductivity"]
    assert d["diffusion"]["D_cm2_s"] == pytest.approx(res.D_cm2_s) and "conductivity" not in d["diffusion"]
    assert d["temperature_K"] == 600 and d["species"] == "Na"
    xx = anionmotion.from_arrays(np.zeros((10, 2, 3)), np.eye(3) * 5, species=["Xx"] * 2, frame_interval=0.1)
    with pytest.raises(OptionError, match="no tabulated ionic charge for 'Xx'"):
        fit_diffusion(anionmotion.msd(xx, species="Xx"), temperature=300)


def test_collective_conductivity_and_haven_ratio_of_independent_ions():
    # independent Brownian ions + a static charged framework: Haven ratio ≈ 1
    rng = np.random.default_rng(11)
    T, N = 400, 24
    li = np.cumsum(rng.normal(scale=math.sqrt(2 * 0.05 * 0.1), size=(T, N, 3)), axis=0)
    fw = np.broadcast_to(rng.uniform(0, 12, size=(1, 8, 3)), (T, 8, 3))
    pos = np.concatenate([li, fw], axis=1)
    traj = anionmotion.from_arrays(pos, np.eye(3) * 12, species=["Li"] * N + ["Cl"] * 8, frame_interval=0.1)
    r = anionmotion.msd(traj, species="Li", collective=True, charges="formal", temperature=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        res = fit_diffusion(r)
    c = res.conductivity
    assert c.sigma_collective_S_cm > 0 and c.haven_ratio is not None
    assert abs(c.haven_ratio - 1.0) < 3 * c.haven_ratio_stderr
    assert c.haven_ratio_stderr < 1.0
    d = c.to_dict()
    assert d["haven_ratio"] == pytest.approx(c.haven_ratio)
    assert "Haven ratio" in res.summary()
