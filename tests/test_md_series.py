"""MD series (temperatures × modes, resumable, on Dask), adaptive length, and compare over a series (SPEC §8)."""

import json
import os

import distributed
import netCDF4
import numpy as np
import numpy.testing as npt
import pytest

from anionmotion.errors import OptionError
from anionmotion.md import ModeWarning, build_li2so4
from anionmotion.md import run as run_module
from anionmotion.md.series import (Convergence, parse_temperatures, parse_wall_limit, run_series, series_index_path,
                                   series_paths)
from anionmotion.report.compare import compare, is_trajectory
from anionmotion.units import KB_EV

from _report_synth import write_netcdf

# 2×2×2 cells (224 atoms); 2 fs is stable for this model and halves the cost.  Li diffuses measurably in this
# small cell only well above 1000 K (1400–1700 K here: the model's anion sublattice is still intact over ps).
FAST = dict(equilibrate=0.2, reequilibrate=0.2, timestep=2.0, frame_every=5, threads=1, progress=False)


def attrs(path):
    with netCDF4.Dataset(path) as ds:
        return {k: ds.getncattr(k) for k in ds.ncattrs()}, np.asarray(ds["time"][:], dtype=np.float64)


def fail_on(monkeypatch, path, after, calls=1):
    """Make the ``calls``-th run_mode call on ``path`` fail after ``after`` frames (an injected interrupt)."""
    real = run_module.run_mode
    seen = {"n": 0}

    def wrapped(mdsys, out, settings, **kw):
        if os.path.abspath(out) == os.path.abspath(path):
            seen["n"] += 1
            if seen["n"] == calls:
                kw["_fail_after"] = after
        return real(mdsys, out, settings, **kw)

    monkeypatch.setattr(run_module, "run_mode", wrapped)


# ------------------------------------------------------------------------------ options and naming
def test_parse_options_and_naming():
    assert parse_temperatures("500, 600,700") == [500.0, 600.0, 700.0]
    assert parse_temperatures(900) == [900.0] and parse_temperatures([1e3, 1.1e3]) == [1000.0, 1100.0]
    for bad, match in (("500,abc", "'abc' is not a number"), ("500,-1", "positive"), ("600,600", "twice"),
                       ("", "not a number"), ("nan", "positive")):
        with pytest.raises(OptionError, match=match):
            parse_temperatures(bad)
    assert parse_wall_limit("90") == 90.0 and parse_wall_limit("30m") == 1800.0
    assert parse_wall_limit("2h") == 7200.0 and parse_wall_limit("1.5d") == 129600.0
    for bad in ("5x", "-3", "0", "h"):
        with pytest.raises(OptionError, match="wall-limit"):
            parse_wall_limit(bad)
    p = series_paths("d/s.nc", [500, 612.5], ["UC", "RC"])
    assert p[(612.5, "RC")] == "d/s_612.5K_RC.nc" and p[(500.0, "UC")] == "d/s_500K_UC.nc"
    assert series_paths("d/s.nc", [500], ["UC"]) == {(500.0, "UC"): "d/s.nc"}      # one run: as run_md
    assert series_paths("d/s.nc", [500], ["UC", "RC"])[(500.0, "RC")] == "d/s_RC.nc"
    assert series_index_path("d/s.nc") == "d/s.series.json"
    with pytest.raises(OptionError, match="needs a limit"):
        Convergence(0.1, 1.0)
    with pytest.raises(OptionError, match="relative error in"):
        Convergence(1.5, 1.0, time_limit=5)
    with pytest.raises(OptionError, match="shorter than the first segment"):
        Convergence(0.1, 2.0, time_limit=1.0)
    m = build_li2so4(2)
    with pytest.raises(OptionError, match="only apply with --until-converged"):
        run_series(m, "x.nc", temperatures=[900], time_limit=3.0)
    with pytest.raises(OptionError, match="--cation Na: no such species"):
        run_series(m, "x.nc", temperatures=[900], time=1.0, until_converged=0.1, time_limit=3.0, cation="Na")


# ------------------------------------------------------------------------------ the grid, killed and resumed
def test_series_grid_resume_metadata_and_compare(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "s.nc")
    kw = dict(temperatures="1400,1700", mode=["UC", "RC"], time=1.0, seed=4, verbose=True, **FAST)
    paths = series_paths(out, [1400, 1700], ["UC", "RC"])
    # killed in the third run (1700 K UC) after 37 frames (checkpoint every 20 → resumes at 20)
    fail_on(monkeypatch, paths[(1700.0, "UC")], 37)
    with pytest.warns(ModeWarning), pytest.raises(RuntimeError, match="injected failure after 37 frames"):
        run_series(build_li2so4(2), out, checkpoint_every=20, **kw)
    a, t = attrs(paths[(1700.0, "UC")])
    assert a["run_complete"] == 0 and len(t) == 38
    assert not os.path.exists(paths[(1700.0, "RC")])
    capsys.readouterr()
    monkeypatch.undo()
    with pytest.warns(ModeWarning):
        res = run_series(build_li2so4(2), out, checkpoint_every=20, **kw)     # the same command again
    err = capsys.readouterr().err
    assert f"{paths[(1400.0, 'UC')]} is complete with these settings; skipped" in err
    assert f"{paths[(1400.0, 'RC')]} is complete with these settings; skipped" in err
    assert "resuming at frame 20 of 101" in err
    assert "s_1700K.nc.state/start.xml" in err          # RC at 1700 K starts from the 1700 K equilibrated start
    assert [r["status"] for r in res["runs"]] == ["skipped", "skipped", "computed", "computed"]
    for (T, m), p in paths.items():
        a, t = attrs(p)
        assert a["run_complete"] == 1 and a["constraint_mode"] == m and a["temperature_K"] == T
        assert a["seed"] == 4 and a["system"] == "li2so4" and json.loads(a["run_settings"])["temperature"] == T
        npt.assert_allclose(t, np.arange(101) * 0.01, atol=2e-5)       # no frame lost or duplicated
        assert os.path.exists(p[:-3] + ".constraints.json")
    # each temperature had its own start: the thermostat targets differ, and the start folders are gone
    temps = {T: np.mean([r["report"]["temperature_K"]["mean"] for r in res["runs"] if r["temperature_K"] == T])
             for T in (1400.0, 1700.0)}
    assert temps[1700.0] > temps[1400.0] + 100
    assert not any(n.endswith(".state") for n in os.listdir(tmp_path))
    idx = json.load(open(res["index"]))
    assert idx["temperatures_K"] == [1400.0, 1700.0] and idx["modes"] == ["UC", "RC"]
    assert [r["path"] for r in idx["runs"]] == [os.path.basename(p) for p in paths.values()]
    assert idx["settings"]["seed"] == 4 and idx["naming"] == "<stem>_<T>K_<MODE><ext>"
    # a third time: nothing to do
    run_series(build_li2so4(2), out, checkpoint_every=20, **kw)
    assert "all 4 run(s) are complete with these settings; nothing to run" in capsys.readouterr().err

    # compare over the series, no --mode/--temperature: per-mode Arrhenius and the decomposition per T
    assert is_trajectory(paths[(1400.0, "UC")]) and not is_trajectory(res["index"])
    c = compare([res["index"]])
    assert [(e.temperature_K, e.mode) for e in c.entries] == list(paths)
    assert set(c.arrhenius) == {"UC", "RC"} and set(c.modes) == {"1400 K", "1700 K"}
    for md in c.modes.values():
        d = md["delta"]["rot"]
        assert d["kind"] in ("exact", "lower_bound", "upper_bound", "undetermined")
        assert md["delta"]["trans"]["kind"] == "missing"
    assert c.meta["modes_from"].startswith("trajectory metadata")
    same = compare(list(paths.values()))                   # the files themselves give the same entries
    assert [e.D_cm2_s for e in same.entries] == [e.D_cm2_s for e in c.entries]
    with pytest.raises(OptionError, match="a series index stands for 4 runs"):
        compare([res["index"]], modes=["UC"])
    from anionmotion.cli import main

    capsys.readouterr()
    assert main(["compare", res["index"], "--out", str(tmp_path / "cmp"), "--no-figures"]) == 0
    assert "modes at 1400 K" in capsys.readouterr().out
    assert json.load(open(tmp_path / "cmp" / "compare.json"))["entries"][0]["label"] == "s_1400K_UC"


def test_compare_over_trajectories_arrhenius_per_mode_and_bounds(tmp_path):
    """Synthetic series with known D(T) per mode: Ea per mode and Δ_rot recovered, a bound for the frozen mode."""
    Ea = {"UC": 0.30, "RC": 0.40}
    D700 = {"UC": 0.10, "RC": 0.03}                      # Å²/ps at 700 K
    files = []
    for i, T in enumerate((500, 600, 700)):
        for j, m in enumerate(("UC", "RC", "RTC")):
            D = 0.0 if m == "RTC" else D700[m] * np.exp(-Ea[m] / KB_EV * (1 / T - 1 / 700))
            p = str(tmp_path / f"x_{T}K_{m}.nc")
            write_netcdf(p, temperature=T, mode=m, n_frames=400, dt=0.04, seed=10 * i + j, D_li=D)
            files.append(p)
    c = compare(files)
    assert sorted(c.arrhenius) == ["RC", "RTC", "UC"]
    for m in ("UC", "RC"):
        a = c.arrhenius[m]
        assert abs(a["Ea_eV"] - Ea[m]) < 4 * a["Ea_stderr_eV"] + 0.02, (m, a["Ea_eV"], a["Ea_stderr_eV"])
    assert c.arrhenius["RTC"]["status"] == "not computed"
    for T in (500, 600, 700):
        md = c.modes[f"{T} K"]
        rot = md["delta"]["rot"]
        true = np.log10(D700["UC"] / D700["RC"]) - (Ea["UC"] - Ea["RC"]) / KB_EV * (1 / T - 1 / 700) / np.log(10)
        assert rot["kind"] == "exact" and abs(rot["value"] - true) < 4 * rot["stderr"] + 0.02
        assert md["delta"]["trans"]["kind"] == "lower_bound"     # σ_RTC is only bounded
        assert md["r"]["rot"]["kind"] == "missing"                # no RTVC run
    # flags still override the metadata (and the conductivity uses the given temperature)
    o = compare(files[:2], temperatures=[650, 650], modes=["UC", "RC"])
    assert list(o.modes) == ["650 K"] and o.entries[0].sigma_mS_cm > 0


# ------------------------------------------------------------------------------ adaptive length
def test_until_converged_time_limit_with_interrupted_extension(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "a.nc")
    kw = dict(temperatures=[1700], mode="UC", time=1.0, until_converged=0.01, time_limit=3.0, checkpoint_every=20,
              verbose=True, **FAST)
    fail_on(monkeypatch, out, 50, calls=2)               # interrupted half-way through the first extension
    with pytest.warns(ModeWarning), pytest.raises(RuntimeError, match="injected failure after 50 frames"):
        run_series(build_li2so4(2), out, **kw)
    a, t = attrs(out)
    assert a["run_complete"] == 0 and len(t) == 151 and os.path.exists(out + ".state/convergence.json")
    monkeypatch.undo()
    capsys.readouterr()
    res = run_series(build_li2so4(2), out, **kw)
    err = capsys.readouterr().err
    assert "resuming at frame 140 of 201" in err and "check at 3 ps" in err
    a, t = attrs(out)
    npt.assert_allclose(t, np.arange(301) * 0.01, atol=2e-5)      # one file, 3 segments, nothing lost or doubled
    assert a["run_complete"] == 1 and a["convergence_stopped_by"] == "time_limit" and a["production_ps"] == 3.0
    conv = json.loads(a["convergence"])
    assert [c["production_ps"] for c in conv["checks"]] == [1.0, 2.0, 3.0]
    for c in conv["checks"]:
        assert c["species"] == "Li" and c["D_cm2_s"] > 0
        assert c["relative_error"] is None or c["relative_error"] > 0.01
    assert conv["settings"]["target_relative_error"] == 0.01 and conv["settings"]["time_limit_ps"] == 3.0
    rep = res["runs"][0]["report"]
    assert rep["convergence"]["stopped_by"] == "time_limit" and rep["n_frames"] == 301
    assert not os.path.exists(out + ".state")
    idx = json.load(open(res["index"]))
    assert idx["runs"][0]["stopped_by"] == "time_limit" and idx["runs"][0]["production_ps"] == 3.0
    # the same command once more: finished, skipped; another target is refused
    assert run_series(build_li2so4(2), out, **kw)["runs"][0]["status"] == "skipped"
    with pytest.raises(OptionError, match="an adaptive run with other settings ended there"):
        run_series(build_li2so4(2), out, **dict(kw, until_converged=0.02))


def test_until_converged_converges(tmp_path):
    out = str(tmp_path / "c.nc")
    with pytest.warns(ModeWarning):
        res = run_series(build_li2so4(2), out, temperatures=[1700], mode="UC", time=1.5, until_converged=0.8,
                         time_limit=9.0, verbose=False, **FAST)
    conv = res["runs"][0]["report"]["convergence"]
    rel = [c["relative_error"] for c in conv["checks"]]
    assert conv["stopped_by"] == "converged" and rel[-1] <= 0.8
    assert all(r is None or r > 0.8 for r in rel[:-1])   # extended exactly while the target was not reached
    assert attrs(out)[0]["production_ps"] == conv["production_ps"] == 1.5 * len(rel)


def test_until_converged_wall_limit_cli(tmp_path, capsys):
    from anionmotion.cli import main

    out = str(tmp_path / "w.nc")
    with pytest.warns(ModeWarning):
        rc = main(["md", "--system", "li2so4", "--cells", "2", "--mode", "RC", "--temperature", "1700", "--time", "0.5",
                   "--equilibrate", "0.2", "--reequilibrate", "0.2", "--timestep", "2", "--threads", "1",
                   "--until-converged", "0.01", "--wall-limit", "0.01", "--no-progress", "--out", out])
    assert rc == 0
    text = capsys.readouterr()
    assert "wall limit at 0.5 ps" in text.out and "stopped: the next segment would end beyond the wall-clock" in text.err
    a, t = attrs(out)
    assert a["convergence_stopped_by"] == "wall_limit" and len(t) == 51
    assert json.loads(a["convergence"])["settings"]["wall_limit_s"] == 0.01
    with open(out[:-3] + ".constraints.json") as fh:      # annotated as a single run's report
        rep = json.load(fh)
    assert rep["convergence"]["stopped_by"] == "wall_limit" and rep["potential"]["label"] == "li2so4"
    assert len(rep["anions"]) > 0


# ------------------------------------------------------------------------------ Dask
@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_series_on_dask_and_batch_md(tmp_path, client, capsys):
    out = str(tmp_path / "d.nc")
    with pytest.warns(ModeWarning):
        res = run_series(build_li2so4(2), out, temperatures=[1400, 1700], mode="RTVC", time=0.4, verbose=False,
                         client=client, **FAST)
    assert [r["status"] for r in res["runs"]] == ["computed", "computed"]
    for r in res["runs"]:
        a, t = attrs(r["path"])
        assert a["run_complete"] == 1 and a["constraint_mode"] == "RTVC" and len(t) == 41
    assert not any(n.endswith(".state") for n in os.listdir(tmp_path))
    # the command line: `anionmotion batch --scheduler ADDRESS md …` (system rebuilt on the workers), then compare
    from anionmotion.cli import main

    out2 = str(tmp_path / "b" / "e.nc")
    rc = main(["batch", "--scheduler", client.scheduler.address, "md", "--system", "li2so4", "--cells", "2",
               "--mode", "UC", "--temperature", "1400,1700", "--time", "0.4", "--equilibrate", "0.2",
               "--reequilibrate", "0.2", "--timestep", "2", "--threads", "1", "--no-progress", "--out", out2])
    assert rc == 0
    text = capsys.readouterr().out
    assert "series: 2 run(s), 2 computed" in text and "Arrhenius (UC)" in text
    assert os.path.exists(tmp_path / "b" / "e.compare" / "compare.json")
    assert attrs(str(tmp_path / "b" / "e_1700K_UC.nc"))[0]["temperature_K"] == 1700.0


def test_batch_md_bad_options(capsys):
    from anionmotion.cli import main

    with pytest.raises(SystemExit) as e:
        main(["batch", "md", "--system", "li2so4", "--out", "x.nc", "--bogus"])
    assert e.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err
    assert main(["batch", "m.toml", "extra"]) == 2
    assert "unexpected arguments after the manifest m.toml: extra" in capsys.readouterr().err


# ------------------------------------------------------------------------------ SIGKILL by command
@pytest.mark.slow
def test_sigkill_during_an_extension_and_resume_by_command(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = str(tmp_path / "k.nc")
    cmd = [sys.executable, "-m", "anionmotion", "md", "--system", "li2so4", "--cells", "2", "--mode", "UC",
           "--temperature", "1400,1700", "--time", "1", "--equilibrate", "0.2", "--reequilibrate", "0.2",
           "--timestep", "2", "--checkpoint-every", "20", "--until-converged", "0.01", "--time-limit", "2",
           "--threads", "1", "--no-progress", "--out", out]
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = str(tmp_path / "k_1400K_UC.nc.state" / "checkpoint.npz")
    deadline = time.time() + 180
    while time.time() < deadline:          # killed inside the first run's extension (frames 101…201)
        try:
            if int(np.load(ck)["n_frames"]) >= 140:
                break
        except (OSError, ValueError, KeyError, EOFError):
            pass
        time.sleep(0.1)
    p.send_signal(signal.SIGKILL)
    p.wait()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "resuming at frame" in r.stderr
    for T in (1400, 1700):
        a, t = attrs(str(tmp_path / f"k_{T}K_UC.nc"))
        npt.assert_allclose(t, np.arange(201) * 0.01, atol=2e-5)
        conv = json.loads(a["convergence"])
        assert a["convergence_stopped_by"] == "time_limit" and [c["production_ps"] for c in conv["checks"]] == [1, 2]
    assert not any(n.endswith(".state") for n in os.listdir(tmp_path))
