"""The README's main job: `anionmotion report --example` gives a complete report that renders in a browser."""

import hashlib
import json

import pytest

from anionmotion.cli import main
from anionmotion.report import example_path, stage_names

from test_report import _CHROMIUM, html_images_rendered


@pytest.fixture(scope="module")
def example_report(tmp_path_factory):
    try:
        example_path()
    except FileNotFoundError:
        pytest.skip("no example trajectory in this installation")
    cwd = tmp_path_factory.mktemp("cwd")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        rc = main(["report", "--example", "--no-progress"])   # default --out ./anionmotion-report-example
    return rc, cwd / "anionmotion-report-example"


@pytest.mark.slow
def test_example_report_has_every_analysis(example_report):
    rc, out = example_report
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["analyses"]) == set(stage_names())
    for name, a in rep["analyses"].items():
        assert a["status"] == "ok", f"{name}: {a['status']}: {a['reason']}"
        assert a["result"], name
        assert a["figures"], f"{name} has no figure"
    with open(example_path(), "rb") as fh:
        assert rep["input"]["sha256"] == hashlib.sha256(fh.read()).hexdigest()
    assert rep["detected"]["cation"]["species"] == "Li" and rep["detected"]["polyanions"]["center"] == "S"
    assert rep["constraint_mode"] == "UC" and rep["temperature_K"] == 1000.0
    d = rep["analyses"]["diffusion"]["result"]
    assert d["diffusion"]["D_cm2_s"] > 0 and d["conductivity"]["sigma_mS_cm"] > 0
    assert (out / "density.CHGCAR").exists() and (out / "density_grid.nc").exists()


@pytest.mark.slow
def test_example_report_second_run_does_nothing(example_report, capsys):
    rc, out = example_report
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(out.parent)
        assert main(["report", "--example", "--no-progress"]) == 0
    assert "nothing to do" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.skipif(_CHROMIUM is None, reason="headless Chromium not installed")
def test_example_report_renders_every_figure(example_report, tmp_path):
    rc, out = example_report
    rep = json.loads((out / "report.json").read_text())
    n_figs = sum(len(a["figures"]) for a in rep["analyses"].values())
    ok, total = html_images_rendered(out / "report.html", tmp_path)
    assert total == n_figs >= len(stage_names()) and ok == total
