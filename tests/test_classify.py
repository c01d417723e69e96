"""Paper-003 diagnosis classification (anionmotion.report.classify, `compare --classify`): every category from
synthetic report folders, the melting exclusion, the thresholds at their boundaries, real reports of the
synthetic Li2SO4 model, and the CLI outputs."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from anionmotion.cli import main
from anionmotion.errors import OptionError
from anionmotion.report import run_report
from anionmotion.report.classify import (C1_ROTATION, TMSD_DIFFUSION_A2, TMSD_MELTING_A2, classify_reports,
                                         classify_values, write_classify)

from _report_synth import li2so4


def fake_report(folder, *, c1, tmsd, fw=None, fwc=("Nb",), T=800.0, label=None, reorient=True, diffusion=True):
    """A report folder whose report.json holds only what the classification reads."""
    os.makedirs(folder, exist_ok=True)
    lag = np.linspace(0, 60, 61)
    an = {}
    if diffusion:
        an["diffusion"] = {"status": "ok", "result": {"species": "Na", "tmsd_A2": tmsd, "framework_tmsd_A2": fw,
                                                      "meta": {"framework_cations": list(fwc) if fw is not None
                                                               else []}, "lag_ps": lag.tolist()}}
    else:
        an["diffusion"] = {"status": "failed", "reason": "boom"}
    if reorient:
        curve = 1 - (1 - c1) * lag / 30.0
        an["reorientation"] = {"status": "ok", "result": {"species": "NbCl6", "C1_at_reliable_lag": c1,
                                                          "reliable_lag_ps": 30.0, "lag_ps": lag.tolist(),
                                                          "C1": curve.tolist()}}
    d = {"analyses": an, "temperature_K": T}
    if label:
        d["labels"] = {"label": label}
    with open(os.path.join(folder, "report.json"), "w") as fh:
        json.dump(d, fh)
    return str(folder)


# --------------------------------------------------------------------------------------------- rule
@pytest.mark.parametrize("c1, tmsd, fw, cat", [
    (0.5, 20.0, 0.3, 1),                 # rotation and diffusion
    (0.5, 1.0, 0.3, 2),                  # rotation only
    (0.95, 50.0, 0.3, 3),                # no rotation, whatever the TMSD
    (0.95, 0.1, 0.3, 3),
    (0.2, 40.0, 3.0, "melting"),         # framework melting excludes, whatever else
    (0.99, 0.1, 2.5, "melting"),
    (None, 20.0, 0.3, None),             # no C(t): unclassified
    (0.5, None, 0.3, None),              # rotation but no TMSD: unclassified
    (0.95, None, None, 3),               # no rotation needs no TMSD
])
def test_rule(c1, tmsd, fw, cat):
    assert classify_values(c1, tmsd, fw)[0] == cat


def test_thresholds_are_the_papers_and_their_boundaries():
    assert (C1_ROTATION, TMSD_DIFFUSION_A2, TMSD_MELTING_A2) == (0.9, 5.0, 2.0)
    # C(t) < 0.9 is rotation: exactly 0.9 is not
    assert classify_values(0.9, 10.0)[0] == 3
    assert classify_values(np.nextafter(0.9, 0), 10.0)[0] == 1
    # TMSD ≥ 5 Å² is diffusion: exactly 5 is
    assert classify_values(0.5, 5.0)[0] == 1
    assert classify_values(0.5, np.nextafter(5.0, 0))[0] == 2
    # framework TMSD > 2 Å² is melting: exactly 2 is not
    assert classify_values(0.5, 10.0, 2.0)[0] == 1
    assert classify_values(0.5, 10.0, np.nextafter(2.0, 3))[0] == "melting"


def test_custom_thresholds():
    assert classify_values(0.85, 3.0, c1_threshold=0.8)[0] == 3
    assert classify_values(0.5, 3.0, tmsd_threshold_A2=2.0)[0] == 1
    assert classify_values(0.5, 3.0, 1.5, melting_threshold_A2=1.0)[0] == "melting"


# --------------------------------------------------------------------------------------------- reports
@pytest.fixture
def folders(tmp_path):
    return [fake_report(tmp_path / "NaNbCl6", c1=0.4, tmsd=30.0, fw=0.5),
            fake_report(tmp_path / "Na3PO4", c1=0.6, tmsd=2.0, fw=0.4),
            fake_report(tmp_path / "Na2SO4", c1=0.97, tmsd=0.8, fw=0.2),
            fake_report(tmp_path / "molten", c1=0.1, tmsd=80.0, fw=9.0),
            fake_report(tmp_path / "nofw", c1=0.3, tmsd=12.0, fw=None),
            fake_report(tmp_path / "norot", c1=0.3, tmsd=12.0, fw=0.1, reorient=False)]


def test_every_category_from_folders(folders):
    res = classify_reports(folders)
    cats = {r.label: r.category for r in res.rows}
    assert cats == {"NaNbCl6": 1, "Na3PO4": 2, "Na2SO4": 3, "molten": "melting", "nofw": 1, "norot": None}
    assert res.counts == {"1": 2, "2": 1, "3": 1, "melting": 1, "unclassified": 1}
    row = {r.label: r for r in res.rows}
    assert row["nofw"].melting_checked is False and row["NaNbCl6"].melting_checked is True
    assert any("nofw" in w and "melting not checked" in w for w in res.warnings)
    assert "reorientation" in row["norot"].reason
    assert row["NaNbCl6"].C1 == 0.4 and row["NaNbCl6"].C1_lag_ps == 30.0 and row["NaNbCl6"].span_ps == 60.0
    assert row["NaNbCl6"].framework_cations == ["Nb"] and row["NaNbCl6"].cation == "Na"
    # the C1 curve is kept up to the reliable lag only
    assert max(row["NaNbCl6"].lag_ps) == 30.0 and row["NaNbCl6"].C1_curve[-1] == pytest.approx(0.4)


def test_labels_and_report_json_paths(tmp_path):
    a = fake_report(tmp_path / "a", c1=0.4, tmsd=30.0, fw=0.5, label="from-report")
    res = classify_reports([os.path.join(a, "report.json")])
    assert res.rows[0].label == "from-report"
    res = classify_reports([a], labels=["given"])
    assert res.rows[0].label == "given"
    with pytest.raises(OptionError, match="one entry per report"):
        classify_reports([a], labels=["x", "y"])


def test_bad_inputs(tmp_path):
    with pytest.raises(OptionError, match="at least one"):
        classify_reports([])
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(OptionError, match="x.json"):
        classify_reports([p])
    p.write_text('{"diffusion": {}}')
    with pytest.raises(OptionError, match="not a report"):
        classify_reports([p])
    with pytest.raises(OptionError, match="no such report"):
        classify_reports([tmp_path / "missing"])
    with pytest.raises(OptionError, match="c1_threshold"):
        classify_reports([fake_report(tmp_path / "a", c1=0.4, tmsd=3.0)], c1_threshold=float("nan"))


def test_write_outputs_and_no_overwrite(folders, tmp_path):
    res = classify_reports(folders)
    out = tmp_path / "out"
    names = write_classify(res, out)
    assert set(names) == {"classify.json", "classify.md", "classify.csv", os.path.join("figures", "classification.png")}
    assert (out / "figures" / "classification.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv_lines = (out / "classify.csv").read_text().splitlines()
    assert len(csv_lines) == 7
    # rows ordered by category then C(t), as in the figure
    assert [ln.split(",")[0] for ln in csv_lines[1:]] == ["nofw", "NaNbCl6", "Na3PO4", "Na2SO4", "molten", "norot"]
    d = json.loads((out / "classify.json").read_text())
    assert d["thresholds"]["C1"] == 0.9 and d["counts"]["melting"] == 1
    md = (out / "classify.md").read_text()
    assert "| molten |" in md and "not checked" in md
    with pytest.raises(OptionError, match="exists"):
        write_classify(res, out)
    write_classify(res, out, overwrite=True)


def test_real_reports_of_the_synthetic_model(tmp_path):
    """Reports written by `run_report` are read with their own key names: rotation + fast Li = 1, rotation +
    slow Li = 2, frozen anions = 3; C(t) and TMSD equal the analyses' own numbers."""
    cases = {"fast": {"D_li": 0.5}, "slow": {"D_li": 0.002}, "frozen": {"D_li": 0.5, "rotate": False}}
    folders = []
    for name, kw in cases.items():
        out = tmp_path / name
        run_report(li2so4(n_frames=300, dt=0.04, velocities=False, **kw), out, temperature=600.0, progress=False,
                   figures=False, stages=["polyanions", "diffusion", "reorientation"])
        folders.append(str(out))
    res = classify_reports(folders)
    cats = {r.label: r.category for r in res.rows}
    assert cats == {"fast": 1, "slow": 2, "frozen": 3}
    for r, f in zip(res.rows, folders):
        with open(os.path.join(f, "report.json")) as fh:
            rep = json.load(fh)
        assert r.C1 == rep["analyses"]["reorientation"]["result"]["C1_at_reliable_lag"]
        assert r.tmsd_A2 == rep["analyses"]["diffusion"]["result"]["tmsd_A2"]
        assert r.anion == "SO4" and r.cation == "Li" and r.temperature_K == 600.0


# --------------------------------------------------------------------------------------------- CLI
def test_cli_compare_classify(folders, tmp_path, capsys):
    out = tmp_path / "cls"
    rc = main(["compare", "--classify", *folders[:4], "--out", str(out), "--label", "A,B,C,D"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "A: category 1" in text and "D: excluded: framework melting" in text
    assert (out / "classify.md").exists() and (out / "figures" / "classification.png").exists()
    assert not (out / "compare.json").exists()
    rc = main(["compare", "--classify", *folders[:4], "--out", str(out)])
    assert rc == 2 and "exists" in capsys.readouterr().err
    rc = main(["compare", "--classify", folders[0], "--out", str(tmp_path / "c2"), "--mode", "UC"])
    assert rc == 2 and "--mode" in capsys.readouterr().err
    rc = main(["compare", "--classify", folders[0], "--out", str(tmp_path / "c3"), "--no-figures"])
    assert rc == 0 and not (tmp_path / "c3" / "figures").exists()
