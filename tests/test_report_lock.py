"""Report folders: one writer at a time (lock), failed stages leave no marker (exit 2), killed reports resume."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import anionmotion
from anionmotion.cli import main
from anionmotion.report import core
from anionmotion.report.core import LOCK, MARKER, STAGE_DIR, ReportFailed, run_report

import _bad_input_files as bf

STAGES = ["polyanions", "diffusion", "rdf", "density"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def nc(tmp_path_factory):
    d = tmp_path_factory.mktemp("rep")
    pos, cell, t, species, vel = bf.arrays()
    return bf.write_netcdf(str(d / "run.nc"), pos, cell, t, species, vel)


@pytest.fixture(scope="module")
def nc_nan(tmp_path_factory):
    d = tmp_path_factory.mktemp("repnan")
    pos, cell, t, species, vel = bf.arrays()
    pos[7, 3, 1] = np.nan
    return bf.write_netcdf(str(d / "nan.nc"), pos, cell, t, species, vel)


def _report(path, out, **kw):
    with anionmotion.open(path) as traj:
        return run_report(traj, out, stages=STAGES, figures=False, progress=False, input_path=path, **kw)


def test_second_report_into_a_locked_folder_is_refused(nc, tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    # another process holds the lock on the folder
    code = ("import fcntl, os, sys, time\n"
            f"fd = os.open({str(out / LOCK)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, str(os.getpid()).encode())\n"
            "print('locked', flush=True)\n"
            "time.sleep(30)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        rc = main(["report", nc, "--out", str(out), "--no-progress", "--no-figures", "--stages", "rdf"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2
        assert err[-1].startswith("anionmotion report: error:")
        assert f"folder is in use by another report (pid {holder.pid})" in err[-1]
        assert not (out / MARKER).exists()
    finally:
        holder.kill()
        holder.wait()
    # the lock dies with its holder: the same command now runs
    assert main(["report", nc, "--out", str(out), "--no-progress", "--no-figures", "--stages", "rdf"]) == 0
    assert (out / MARKER).exists()


def test_lock_is_exclusive_between_two_concurrent_reports(nc, tmp_path):
    out = tmp_path / "r2"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "anionmotion", "report", nc, "--out", str(out), "--no-progress", "--no-figures",
           "--stages", ",".join(STAGES)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    res = [p.communicate(timeout=600) + (p.returncode,) for p in procs]
    codes = sorted(r[2] for r in res)
    # either both ran one after the other (the second found the complete report: exit 0) or one was refused
    assert codes in ([0, 0], [0, 2])
    for _, err, rc in res:
        if rc == 2:
            assert "folder is in use by another report (pid" in err.strip().splitlines()[-1]
        assert "Traceback" not in err
    assert (out / MARKER).exists()
    rep = json.loads((out / "report.json").read_text())
    assert all(a["status"] != "failed" for a in rep["analyses"].values())


def test_failed_stage_exits_2_without_marker_and_rerun_redoes_only_it(nc_nan, tmp_path, capsys):
    out = tmp_path / "bad"
    argv = ["report", nc_nan, "--out", str(out), "--no-progress", "--no-figures", "--stages", ",".join(STAGES)]
    rc = main(argv)
    cap = capsys.readouterr()
    assert rc == 2
    last = cap.err.strip().splitlines()[-1]
    assert last.startswith("anionmotion report: error:") and "failed" in last
    assert "NaN" in last or "nan" in last
    assert not (out / MARKER).exists()
    assert core.report_status(str(out)) is None
    rep = json.loads((out / "report.json").read_text())
    assert any(a["status"] == "failed" for a in rep["analyses"].values())
    # the same command again: still failing (the input is still bad), still no marker, still exit 2
    assert main(argv) == 2
    assert not (out / MARKER).exists()


def test_failed_report_is_not_counted_done_by_batch(nc_nan, tmp_path):
    from anionmotion.report.batch import run_one

    task = {"label": "bad", "path": nc_nan, "out_dir": str(tmp_path / "b"), "reader_options": {},
            "report": {"stages": STAGES, "figures": False}}
    r = run_one(task)
    assert r["status"] == "failed"
    assert r["failed_stages"]
    assert "failed" in r["error"]


def test_killed_report_resumes_with_the_same_command(nc, tmp_path, monkeypatch):
    out = str(tmp_path / "k")
    calls = []
    real = core.run_stage

    def interrupted(stage, ctx, out_dir=None):
        calls.append(stage.name)
        if stage.name == "rdf":
            raise KeyboardInterrupt   # the run is killed while the rdf stage runs
        return real(stage, ctx, out_dir)

    monkeypatch.setattr(core, "run_stage", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _report(nc, out)
    assert calls[-1] == "rdf" and "density" in calls   # the report order: … density, rdf
    assert not os.path.exists(os.path.join(out, MARKER))
    recorded = sorted(f[:-5] for f in os.listdir(os.path.join(out, STAGE_DIR)))
    assert "diffusion" in recorded and "rdf" not in recorded
    # the lock was released by the interrupted run
    calls.clear()
    monkeypatch.setattr(core, "run_stage", lambda stage, ctx, out_dir=None: (calls.append(stage.name),
                                                                            real(stage, ctx, out_dir))[1])
    rep = _report(nc, out)
    assert rep.get("complete", True) and not rep["up_to_date"]
    # finished before the kill: read back, not recomputed (the polyanions stage runs again only because the
    # stages after the kill need its result object)
    assert "diffusion" not in calls and "density" not in calls
    assert "rdf" in calls
    assert os.path.exists(os.path.join(out, MARKER))
    # identical to an uninterrupted report
    full = _report(nc, str(tmp_path / "full"))
    assert core.comparable(rep)["analyses"] == core.comparable(full)["analyses"]
    # and now up to date
    calls.clear()
    again = _report(nc, out)
    assert again["up_to_date"] and calls == []


def test_report_out_must_be_under_an_existing_folder(nc, tmp_path, capsys):
    rc = main(["report", nc, "--out", str(tmp_path / "no" / "such"), "--no-progress"])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def test_report_out_is_a_file_or_an_input(nc, tmp_path, capsys):
    rc = main(["report", nc, "--out", nc, "--overwrite", "--no-progress"])
    assert rc == 2
    assert "not a folder" in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("opt, value", [("--grid-spacing", "0"), ("--grid-spacing", "nan"), ("--r-max", "-1"),
                                        ("--shell-radius", "0"), ("--hop-distance", "inf"), ("--max-freq", "-2")])
def test_bad_report_options_are_refused_before_any_work(nc, tmp_path, capsys, opt, value):
    out = tmp_path / "o"
    t0 = time.perf_counter()
    rc = main(["report", nc, "--out", str(out), "--no-progress", opt, value])
    assert rc == 2
    assert opt in capsys.readouterr().err.strip().splitlines()[-1]
    assert not out.exists() or not [f for f in os.listdir(out) if not f.startswith(".")]
    assert time.perf_counter() - t0 < 30


def test_api_returns_an_incomplete_report_and_raise_if_failed_raises(nc_nan, tmp_path):
    rep = _report(nc_nan, str(tmp_path / "api"))
    assert rep["complete"] is False and "failed" in rep["error"]
    assert not os.path.exists(os.path.join(str(tmp_path / "api"), MARKER))
    with pytest.raises(ReportFailed) as ei:
        core.raise_if_failed(rep)
    assert isinstance(ei.value, anionmotion.AnionmotionError)
    assert str(ei.value) == rep["error"] and ei.value.report is rep
