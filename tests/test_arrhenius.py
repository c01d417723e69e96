"""Arrhenius fit (SPEC §2) and the msd/arrhenius command lines."""

import json
import math
import warnings

import numpy as np
import numpy.testing as npt
import pytest

import anionmotion
from anionmotion.analysis.arrhenius import ArrheniusResult, arrhenius
from anionmotion.analysis.diffusion import fit_diffusion, report_dict
from anionmotion.errors import FitWarning, OptionError
from anionmotion.units import KB_EV, nernst_einstein_S_cm


def test_exact_arrhenius_points():
    T = np.array([500.0, 700.0, 900.0, 1100.0])
    Ea, D0 = 0.35, 2e-3
    D = D0 * np.exp(-Ea / (KB_EV * T))
    res = arrhenius(temperatures=T, D_cm2_s=D, D_stderr_cm2_s=0.05 * D, at=300)
    assert isinstance(res, ArrheniusResult)
    assert res.Ea_eV == pytest.approx(Ea, rel=1e-10)
    assert res.D0_cm2_s == pytest.approx(D0, rel=1e-9)
    assert res.D_at_cm2_s == pytest.approx(D0 * math.exp(-Ea / (KB_EV * 300)), rel=1e-9)
    assert res.reduced_chi2 == pytest.approx(0.0, abs=1e-12) and not res.meta["scaled"]
    # stated errors: σ(ln D) = 0.05 per point → analytic WLS error of the slope
    x = -1 / (KB_EV * T)
    want = 0.05 / math.sqrt(((x - x.mean()) ** 2).sum())
    assert res.Ea_stderr_eV == pytest.approx(want, rel=1e-9)
    lo, hi = res.D_at_range_cm2_s
    assert lo < res.D_at_cm2_s < hi
    assert res.sigma_at_mS_cm is None


def test_error_covers_truth_and_scaling_with_scatter():
    rng = np.random.default_rng(0)
    T = np.array([600.0, 750.0, 900.0, 1050.0, 1200.0])
    Ea, D0 = 0.3, 1e-3
    hits = 0
    for _ in range(200):
        rel = 0.1
        D = D0 * np.exp(-Ea / (KB_EV * T)) * np.exp(rng.normal(scale=rel, size=len(T)))
        r = arrhenius(temperatures=T, D_cm2_s=D, D_stderr_cm2_s=rel * D)
        hits += abs(r.Ea_eV - Ea) < r.Ea_stderr_eV
    assert 0.55 < hits / 200 < 0.85
    # errors that are far too small: the scatter takes over (χ²/dof scaling)
    D = D0 * np.exp(-Ea / (KB_EV * T)) * np.exp(rng.normal(scale=0.2, size=len(T)))
    r = arrhenius(temperatures=T, D_cm2_s=D, D_stderr_cm2_s=1e-3 * D)
    assert r.meta["scaled"] and r.reduced_chi2 > 1
    r_eq = arrhenius(temperatures=T, D_cm2_s=D)
    assert r_eq.meta["weights"].startswith("equal")
    assert r_eq.Ea_stderr_eV == pytest.approx(r.Ea_stderr_eV, rel=1e-6)


def test_from_diffusion_results_with_bound_excluded_and_sigma():
    def fake(T, D, se, below=False):
        return {"temperature_K": T, "n_atoms": 16, "diffusion": {"D_cm2_s": D, "D_stderr_cm2_s": se,
                                                                   "below_threshold": below},
                "conductivity": {"charge": 1.0, "volume_A3": 2000.0}}
    pts = [fake(600, 1e-6, 1e-7), fake(800, 1e-5, 1e-6), fake(1000, 4e-5, 4e-6), fake(400, 1e-8, 0, True)]
    res = arrhenius(pts, at=300)
    assert len(res.temperatures_K) == 3 and len(res.excluded) == 1
    assert res.excluded[0]["temperature_K"] == 400 and "bound" in res.excluded[0]["reason"]
    want = nernst_einstein_S_cm(16, 1.0, res.D_at_cm2_s * 1e4, 2000.0, 300) * 1e3
    assert res.sigma_at_mS_cm == pytest.approx(want)
    d = res.to_dict()
    for key in ("Ea_eV", "Ea_stderr_eV", "D0_cm2_s", "at_K", "D_at_cm2_s", "D_at_stderr_cm2_s", "sigma_at_mS_cm",
                "sigma_at_stderr_mS_cm"):
        assert key in d
    assert "excluded" in res.summary() and repr(res).startswith("ArrheniusResult(Ea_eV=")


def test_points_not_diffusive_are_named_and_weighted_by_their_wide_error():
    def fake(T, D, se, reached):
        return {"temperature_K": T, "n_atoms": 16, "diffusion": {"D_cm2_s": D, "D_stderr_cm2_s": se,
                                                                   "below_threshold": False,
                                                                   "diffusive_regime_reached": reached}}
    pts = [fake(600, 1e-6, 5e-8, True), fake(800, 1e-5, 5e-7, True), fake(1000, 4e-5, 2e-6, True),
           fake(500, 1e-6, 8e-7, False)]
    res = arrhenius(pts, at=300)
    assert res.meta["not_diffusive"] == ["point 3 (500 K)"] or res.meta["not_diffusive"][0].endswith("(500 K)")
    assert "diffusive regime not reached" in res.summary()
    # the flagged point (80 % error, far off the line) barely moves the fit: weights 1/σ²(ln D)
    three = arrhenius(pts[:3], at=300)
    assert res.Ea_eV == pytest.approx(three.Ea_eV, rel=0.05)


def test_fit_diffusion_errors_propagate_to_Ea_with_chi2_inflation():
    # caged hoppers whose inter-cage rate is Arrhenius (p_out ∝ exp(−Ea/k_B T)), fitted by the default estimator:
    # the Arrhenius fit weights each point by 1/σ²(ln D) from fit_diffusion, multiplies the covariance by
    # max(1, χ²/dof), and its Ea error covers the truth
    import _caged_hopping as ch

    Ea, temps = 0.15, np.array([500.0, 650.0, 800.0, 1000.0])
    p_out = 0.03 * np.exp(-Ea / KB_EV * (1 / temps - 1 / 1000.0))
    base = dict(n_atoms=48, n_frames=400, a=3.0, r=1.0, p_in=0.25, vib=0.3)
    z, scaled = [], []
    for rep in range(16):
        fits = []
        for k, (T, p) in enumerate(zip(temps, p_out)):
            res = anionmotion.msd(ch.trajectory(1000 * rep + k, p_out=p, **base), species="Li", temperature=T,
                                  progress=False)
            fits.append(fit_diffusion(res, hop_distance=3.0, warn=False))
        r = arrhenius(fits)
        # the weights are the fits' own errors: the same numbers by hand
        y = np.log([f.D_cm2_s for f in fits])
        w = (np.array([f.D_cm2_s for f in fits]) / np.array([f.D_stderr_cm2_s for f in fits])) ** 2
        X = np.column_stack([np.ones(4), -1 / (KB_EV * temps)])
        C = np.linalg.inv(X.T @ (X * w[:, None]))
        beta = C @ (X.T @ (w * y))
        chi2 = float(w @ (y - X @ beta) ** 2) / 2
        assert r.Ea_eV == pytest.approx(beta[1], rel=1e-10)
        assert r.reduced_chi2 == pytest.approx(chi2, rel=1e-10)
        assert r.Ea_stderr_eV == pytest.approx(math.sqrt(C[1, 1] * max(1.0, chi2)), rel=1e-10)
        assert r.meta["scaled"] == (chi2 > 1)
        z.append((r.Ea_eV - Ea) / r.Ea_stderr_eV)
        scaled.append(r.meta["scaled"])
    z = np.abs(z)
    # max(1, χ²/dof) with 2 degrees of freedom makes the error a little conservative (never smaller than stated)
    assert 0.55 <= np.mean(z < 1) <= 0.95, np.mean(z < 1)
    assert np.mean(z < 2) >= 0.85, np.mean(z < 2)
    assert 0.1 <= np.mean(scaled) <= 0.9  # the inflation acts on some replicas, not all


def test_errors():
    with pytest.raises(OptionError, match="needs results, or temperatures and D_cm2_s"):
        arrhenius()
    with pytest.raises(OptionError, match="at least 2 temperatures with a measurable D"):
        arrhenius(temperatures=[500], D_cm2_s=[1e-5])
    with pytest.raises(OptionError, match="at least 2 different temperatures"):
        arrhenius(temperatures=[500, 500], D_cm2_s=[1e-5, 2e-5])
    with pytest.raises(OptionError, match="same length"):
        arrhenius(temperatures=[500, 600], D_cm2_s=[1e-5])
    with pytest.raises(OptionError, match="D must be positive"):
        arrhenius(temperatures=[500, 600], D_cm2_s=[1e-5, -1])
    with pytest.raises(OptionError, match="at must be a positive temperature"):
        arrhenius(temperatures=[500, 600], D_cm2_s=[1e-5, 2e-5], at=-1)
    with pytest.raises(OptionError, match="no temperature"):
        arrhenius([{"diffusion": {"D_cm2_s": 1e-5}}, {"diffusion": {"D_cm2_s": 1e-5}, "temperature_K": 3}])
    with pytest.raises(OptionError, match="expected an msd result"):
        arrhenius([{"Ea_eV": 1}])
    with pytest.raises(FileNotFoundError, match="no such file"):
        arrhenius(["/nonexistent/r.json", "/nonexistent/s.json"])


# --------------------------------------------------------------------- CLI
def _walk_traj(seed, D, T=300, N=12, dt=0.1):
    rng = np.random.default_rng(seed)
    pos = np.cumsum(rng.normal(scale=math.sqrt(2 * D * dt), size=(T, N, 3)), axis=0)
    fw = np.broadcast_to(rng.uniform(0, 12, size=(1, 6, 3)), (T, 6, 3))
    return anionmotion.from_arrays(np.concatenate([pos, fw], axis=1), np.eye(3) * 12,
                                   species=["Li"] * N + ["Cl"] * 6, frame_interval=dt)


def test_cli_msd_and_arrhenius_end_to_end(tmp_path, monkeypatch, capsys):
    import anionmotion.cli.msd as cli_msd
    from anionmotion.cli import main

    Ea, D0 = 0.3, 0.5  # Å²/ps
    files = []
    for i, T in enumerate((600.0, 800.0, 1000.0)):
        D = D0 * math.exp(-Ea / (KB_EV * T))
        traj = _walk_traj(i, D)
        monkeypatch.setattr(cli_msd, "open_from_args", lambda args, traj=traj: traj)
        out = tmp_path / f"r{i}.json"
        args = ["msd", "x", "--species", "Li", "--temperature", str(T), "--json", str(out)]
        if i == 0:
            args += ["--csv", str(tmp_path / "m.csv"), "--plot", str(tmp_path / "m.png"), "--collective",
                     "--charges", "formal"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            assert main(args) == 0
        files.append(str(out))
    text = capsys.readouterr().out
    assert "TMSD" in text and "σ (tracer)" in text and "Haven ratio" in text
    d = json.load(open(files[0]))
    for key in ("species", "n_atoms", "n_frames", "temperature_K", "lag_ps", "msd_A2", "msd_xyz_A2", "tmsd_A2"):
        assert key in d
    for key in ("D_cm2_s", "D_stderr_cm2_s", "D_xyz_cm2_s", "fit_window_ps", "method", "below_threshold"):
        assert key in d["diffusion"]
    for key in ("sigma_mS_cm", "sigma_stderr_mS_cm", "charge", "volume_A3"):
        assert key in d["conductivity"]
    assert (tmp_path / "m.png").stat().st_size > 1000
    csv = open(tmp_path / "m.csv").read().splitlines()
    # the MSD table (its view may append further columns, e.g. the charge MSD)
    assert csv[0].startswith("lag_ps,msd_A2,msd_x_A2,msd_y_A2,msd_z_A2,n_origins") and len(csv) == 301
    out = tmp_path / "arr.json"
    assert main(["arrhenius", *files, "--at", "300", "--json", str(out), "--plot", str(tmp_path / "a.png")]) == 0
    a = json.load(open(out))
    assert abs(a["Ea_eV"] - Ea) < 3 * a["Ea_stderr_eV"] + 0.02
    assert a["at_K"] == 300 and a["sigma_at_mS_cm"] > 0
    assert (tmp_path / "a.png").stat().st_size > 1000
    # bad input exits 2 with a message
    assert main(["msd", "x", "--species", "Li", "--fit", "5", "1"]) == 2
    assert "fit window must satisfy" in capsys.readouterr().err
    assert main(["msd", "x", "--species", "Li", "--collective", "--charges", "Li:1"]) == 2
    assert "invalid --charges entry 'Li:1'" in capsys.readouterr().err
    assert main(["arrhenius", files[0]]) == 2
    assert "at least 2 temperatures" in capsys.readouterr().err
