"""MSD, D, σ and hops on real AIMD data: Li6PS5Cl 0p/100p run1 (bjmorgan/data_argyrodite_disorder, MIT).

The files are the copies in tests/data/argyrodite and tests/data/xdatcar (see their ATTRIBUTION.md).
Reference MSD values were computed independently of anionmotion (plain numpy parsing of the XDATCAR,
fractional unwrapping Δs − round(Δs), no drift correction).
"""

import os
import warnings

import numpy as np
import numpy.testing as npt
import pytest

import anionmotion
from anionmotion.errors import FitWarning
from anionmotion.kernels.hops import hop_functional
from anionmotion.kernels.msd import msd_direct_ref

DATA = os.path.join(os.path.dirname(__file__), "data")
FILES = {"0p": os.path.join(DATA, "xdatcar", "argyrodite_0p_run1_XDATCAR.gz"),
         "100p": os.path.join(DATA, "argyrodite", "Li6PS5Cl_100p_run1_XDATCAR.gz")}
# independent numpy parse: MSD (Å²) of the 192 Li at lags 10, 50, 100, 130 frames (no drift correction)
REF_MSD = {"0p": [1.90, 4.78, 6.65, 7.79], "100p": [1.90, 5.35, 8.32, 9.02]}

@pytest.fixture(scope="module")
def trajs():
    # the data ship with the tests: a missing file or a reader error is a failure, never a skip
    return {k: anionmotion.open(f, frame_interval=0.1, progress=False) for k, f in FILES.items()}


@pytest.mark.parametrize("kind", ["0p", "100p"])
def test_msd_matches_independent_parse(trajs, kind):
    res = anionmotion.msd(trajs[kind], species="Li", drift=False)
    assert res.n_atoms == 192 and res.n_frames == 140 and res.dt_ps == pytest.approx(0.1)
    npt.assert_allclose(res.msd[[10, 50, 100, 130]], REF_MSD[kind], atol=0.006)
    pos = trajs[kind].read(atoms="Li").positions
    npt.assert_allclose(res.msd, msd_direct_ref(pos)[0], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["0p", "100p"])
def test_default_pipeline_on_aimd(trajs, kind):
    traj = trajs[kind]
    res = anionmotion.msd(traj, species="Li", temperature=500)
    # drift correction on by default (the trajectory has framework atoms: P S Cl), mass-weighted
    assert res.drift is not None and res.meta["drift_reason"].startswith("default: on whenever")
    assert res.meta["drift_weights"] == "mass"
    assert res.meta["framework_species"] == ["Cl", "P", "S"]
    assert np.abs(res.drift).max() < 0.1  # NVT AIMD: the framework barely drifts
    assert res.diffusing is True and res.tmsd > 5
    assert res.meta["framework_cations"] == ["P"]
    assert res.framework_melting is False and res.framework_tmsd < 0.5
    assert res.volume_A3 == pytest.approx(20.3123 ** 3, rel=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        fit = anionmotion.fit_diffusion(res)
    # default estimator: the window [1.39, 6.95] ps of [0.1, 0.5] × the longest lag, its start moved to where the
    # local slope of the caged Li MSD has converged (or flagged when it never does in 14 ps)
    assert fit.estimator == "auto" and fit.fit_window_ps[1] == pytest.approx(6.95)
    assert 1.39 - 1e-9 <= fit.fit_window_ps[0] <= 0.6 * 6.95 + 1e-9
    assert fit.diffusive_regime_reached in (True, False) and fit.regime["reason"]
    assert 0.5e-5 < fit.D_cm2_s < 2.5e-5 and not fit.below_threshold
    assert 0 < fit.D_stat_stderr_A2_ps * 1e-4 < 0.3 * fit.D_cm2_s
    if fit.diffusive_regime_reached:
        assert fit.D_stderr_cm2_s == pytest.approx(fit.D_stat_stderr_A2_ps * 1e-4)
    else:  # a long-time estimate: the error adds the fall of the local slope, never a tight number
        assert fit.D_stderr_cm2_s > 0.25 * fit.D_cm2_s
    gls = anionmotion.fit_diffusion(res, estimator="gls", warn=False)
    assert gls.fit_window_ps == pytest.approx((1.39, 6.95))
    # the GLS leans on the start of the window, where the caged MSD is still steeper: D above the auto one
    assert gls.D_cm2_s > fit.D_cm2_s
    assert fit.he_relative_error > 0.1  # N_eff ≈ 192 · 9 Å² / a² is small: He et al. errors are large
    c = fit.conductivity
    assert c.charge == 1.0 and c.n_ions == 192 and c.temperature_K == 500
    assert 500 < c.sigma_S_cm * 1e3 < 2500


def test_same_trajectory_same_D_from_extxyz_and_xdatcar(tmp_path):
    # one drift rule for every format: the run written as extxyz and as XDATCAR (ASE) gives the same MSD and D
    from ase.io import read, write

    frames = read(FILES["100p"], index=":", format="vasp-xdatcar")
    paths = {"extxyz": tmp_path / "run.extxyz", "xdatcar": tmp_path / "XDATCAR"}
    write(paths["extxyz"], frames, format="extxyz")
    write(paths["xdatcar"], frames, format="vasp-xdatcar")
    fits, msds = {}, {}
    for fmt, path in paths.items():
        traj = anionmotion.open(str(path), frame_interval=0.1, progress=False)
        assert traj.format == fmt
        res = anionmotion.msd(traj, species="Li", temperature=500, progress=False)
        assert res.drift is not None and res.meta["drift_weights"] == "mass"
        msds[fmt], fits[fmt] = res, anionmotion.fit_diffusion(res, warn=False)
    npt.assert_allclose(msds["extxyz"].msd, msds["xdatcar"].msd, rtol=1e-8, atol=1e-8)
    assert fits["extxyz"].fit_window_ps == pytest.approx(fits["xdatcar"].fit_window_ps)
    assert fits["extxyz"].D_cm2_s == pytest.approx(fits["xdatcar"].D_cm2_s, rel=1e-8)
    assert fits["extxyz"].D_stderr_cm2_s == pytest.approx(fits["xdatcar"].D_stderr_cm2_s, rel=1e-6)
    # without the correction D differs (by 4e-4 on this NVT run): the equality above is the rule, not chance
    off = anionmotion.fit_diffusion(anionmotion.msd(anionmotion.open(str(paths["extxyz"]), frame_interval=0.1,
                                                                     progress=False),
                                                    species="Li", temperature=500, drift=False, progress=False),
                                    fit=fits["xdatcar"].fit_window_ps, warn=False)
    assert abs(off.D_cm2_s / fits["xdatcar"].D_cm2_s - 1) > 1e-5


def test_hops_on_aimd_match_the_kernel(trajs):
    traj = trajs["100p"]
    res = anionmotion.hops(traj, species="Li", a=3.0, residence=1.0, window=4.0)
    pos = traj.read(atoms="Li").positions
    npt.assert_array_equal(res.h, hop_functional(pos, a=3.0, m_lo=10, m_hi=20))
    assert res.n_events > 10
    assert res.observed_ps == pytest.approx((140 - 40) * 0.1)
    assert res.jump_frequency_per_ns == pytest.approx(res.n_events / (192 * 10.0e-3))
    auto = anionmotion.hops(traj, species="Li")
    assert 2.5 < auto.a_A < 3.5 and "nearest Li–Li" in auto.meta["a_source"]


def test_cli_on_the_xdatcar(tmp_path, capsys):
    import json

    from anionmotion.cli import main

    out = tmp_path / "li.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        assert main(["msd", FILES["100p"], "--species", "Li", "--frame-interval", "0.1", "--temperature", "500",
                     "--no-progress", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "framework centre subtracted (default: on whenever the trajectory has framework atoms" in text
    d = json.load(open(out))
    assert d["n_atoms"] == 192 and d["temperature_K"] == 500 and d["drift_corrected"] is True
    assert d["diffusion"]["fit_window_ps"][1] == pytest.approx(6.95) and d["diffusion"]["fit_window_ps"][0] >= 1.39
    assert d["diffusion"]["estimator"] == "auto" and d["diffusion"]["diffusive_regime_reached"] in (True, False)
    assert d["diffusion"]["diffusive_regime"]["reason"] in text
    assert d["conductivity"]["volume_A3"] == pytest.approx(20.3123 ** 3, rel=1e-3)
    hj = tmp_path / "hops.json"
    assert main(["hops", FILES["100p"], "--species", "Li", "--frame-interval", "0.1", "--a", "3.0",
                 "--residence", "1", "--window", "4", "--no-progress", "--json", str(hj)]) == 0
    h = json.load(open(hj))
    assert h["n_events"] == len(h["events"]) > 0 and {"atom", "time_ps"} <= set(h["events"][0])
