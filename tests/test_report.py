"""anionmotion report: detection, stages, outputs, resume rules, HTML rendering (headless Chromium)."""

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import anionmotion
from anionmotion.errors import OptionError
from anionmotion.report import (MARKER, comparable, detect_cation, detect_polyanions, file_sha256, report_status,
                                run_report, stage_names)
from anionmotion.report import stages as stages_mod

from _report_synth import li2so4, write_netcdf

STATUSES = {"ok", "skipped", "unavailable", "failed"}


@pytest.fixture(scope="module")
def synth_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "out"
    rep = run_report(li2so4(n_frames=300, dt=0.04), out, temperature=600.0, progress=False,
                     options={"shell_radius": 3.5, "grid_spacing": 0.6, "hop_distance": 1.5})
    return out, rep


# ----------------------------------------------------------------------------- detection

def test_detect_cation_detected_and_given():
    traj = li2so4(n_frames=5)
    c = detect_cation(traj)
    assert (c.species, c.n_atoms, c.source) == ("Li", 16, "detected")
    assert "first mobile cation" in c.reason
    g = detect_cation(traj, "li")
    assert (g.species, g.source) == ("Li", "given")


def test_detect_cation_errors_and_none():
    traj = li2so4(n_frames=5)
    with pytest.raises(OptionError, match=r"--cation Na: no such species .*species present: Li, S, O"):
        detect_cation(traj, "Na")
    only_so4 = anionmotion.from_arrays(np.zeros((2, 2, 3)) + [[0, 0, 0], [1.5, 0, 0]], np.eye(3) * 10,
                                       species=["S", "O"], frame_interval=1.0)
    c = detect_cation(only_so4)
    assert c.species is None and c.source == "none" and "give --cation" in c.reason


def test_detect_polyanions_tetrahedra():
    p = detect_polyanions(li2so4(n_frames=5), cation="Li")
    assert (p.center, p.ligand, p.n_anions, p.n_ligands_per_anion, p.isolated, p.source) == ("S", "O", 8, 4, True,
                                                                                           "detected")
    assert 1.5 < p.cutoff_A < 3.0
    assert "8 SO4 units" in p.reason


def test_detect_polyanions_given_and_errors():
    traj = li2so4(n_frames=5)
    p = detect_polyanions(traj, cation="Li", center="S", ligand="O")
    assert p.source == "given" and p.found
    with pytest.raises(OptionError, match="give both --center and --ligand"):
        detect_polyanions(traj, center="S")
    with pytest.raises(OptionError, match="--ligand F: no such species"):
        detect_polyanions(traj, center="S", ligand="F")


def test_detect_polyanions_connected_framework_is_not_isolated():
    # a chain of corner-sharing SiO4-like units along x: every bridging O bonded to two Si
    n = 4
    si = np.array([[3.0 * i, 0, 0] for i in range(n)])
    bridge = si + [1.5, 0, 0]
    side = np.concatenate([si + [0, 1.6, 0], si + [0, -1.6, 0], si + [0, 0, 1.6]])
    pos = np.concatenate([si, bridge, side])[None].repeat(2, axis=0)
    cell = np.diag([3.0 * n, 12.0, 12.0])
    traj = anionmotion.from_arrays(pos, cell, species=["Si"] * n + ["O"] * (4 * n), frame_interval=1.0)
    p = detect_polyanions(traj)
    assert not p.found and p.source == "none"
    assert "no isolated polyanion" in p.reason and "shared between centres" in p.reason


def _isolated_units(center, ligand, bond, k, cation="Na"):
    """Two isolated centre–ligand units (tetrahedra k=4, octahedra k=6) and four cations in a 12 Å cube."""
    dirs = {4: np.array([[1, 1, 1], [-1, -1, 1], [-1, 1, -1], [1, -1, -1]]) / np.sqrt(3),
            6: np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])}[k]
    centres = np.array([[3.0, 3.0, 3.0], [9.0, 9.0, 9.0]])
    lig = np.concatenate([c + bond * dirs for c in centres])
    cat = np.array([[3.0, 9.0, 3.0], [9.0, 3.0, 9.0], [3.0, 3.0, 9.0], [9.0, 9.0, 3.0]])
    pos = np.concatenate([centres, lig, cat])[None].repeat(2, axis=0)
    species = [center] * 2 + [ligand] * (2 * k) + [cation] * 4
    return anionmotion.from_arrays(pos, np.eye(3) * 12.0, species=species, frame_interval=1.0)


def test_detect_polyanions_long_halide_bonds():
    # YCl6 octahedra of Na3YCl6 (Y–Cl 2.62 Å) and YBr6 (2.78 Å) are polyanions
    for lig, bond in (("Cl", 2.62), ("Br", 2.78)):
        p = detect_polyanions(_isolated_units("Y", lig, bond, 6), cation="Na")
        assert (p.center, p.ligand, p.n_ligands_per_anion, p.isolated) == ("Y", lig, 6, True), p.reason


def test_detect_polyanions_centre_less_electronegative_than_ligand():
    # F cannot centre O ligands (3.98 > 3.44); Cl can (ClO4: 3.16 < 3.44)
    p = detect_polyanions(_isolated_units("F", "O", 1.45, 4), cation="Na")
    assert not p.found and all(c["center"] != "F" for c in p.candidates)
    p = detect_polyanions(_isolated_units("Cl", "O", 1.45, 4), cation="Na")
    assert (p.center, p.ligand, p.n_ligands_per_anion) == ("Cl", "O", 4)


def test_detect_polyanions_none_without_ligands():
    pos = np.random.default_rng(1).uniform(0, 10, size=(3, 6, 3))
    traj = anionmotion.from_arrays(pos, np.eye(3) * 10, species=["Li"] * 6, frame_interval=1.0)
    p = detect_polyanions(traj, cation="Li")
    assert not p.found and "no candidate" in p.reason


# ----------------------------------------------------------------------------- the report

def test_report_lists_every_stage_with_status(synth_report):
    out, rep = synth_report
    assert rep["stages"] == stage_names()
    assert set(rep["analyses"]) == set(stage_names())
    for name, a in rep["analyses"].items():
        assert a["status"] in STATUSES, name
        if a["status"] != "ok":
            assert a["reason"], f"stage {name} has status {a['status']} without a reason"
    # on this trajectory every analysis applies: each one must have run (a stage that cannot import or
    # that fails is a failure of this test, not an acceptable outcome)
    for name, a in rep["analyses"].items():
        assert a["status"] == "ok", (name, a["status"], a["reason"])
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["anionmotion_version"] == anionmotion.__version__
    assert on_disk["detected"]["cation"]["species"] == "Li"
    assert on_disk["detected"]["polyanions"]["center"] == "S"
    assert on_disk["temperature_K"] == 600.0 and on_disk["temperature_source"] == "given"
    assert set(on_disk["parameters"]) >= {"cation", "center", "ligand", "lag_min", "lag_max", "hop_distance"}
    assert on_disk["input"]["sha256"] is None  # in-memory trajectory


def test_report_files_figures_and_csv(synth_report):
    out, rep = synth_report
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    n_figs = sum(len(a["figures"]) for a in rep["analyses"].values())
    imgs = re.findall(r"<img [^>]*src='([^']*)'", html)
    assert len(imgs) == n_figs
    assert all(s.startswith("data:image/png;base64,") for s in imgs)
    assert "http://" not in html and "https://" not in html  # opens offline
    for a in rep["analyses"].values():
        for f in a["figures"]:
            assert (out / f["file"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert f"]({f['file']})" in md
        for t in a["tables"]:
            with open(out / t) as fh:
                rows = list(csv.reader(fh))
            assert len(rows) > 1 and all(len(r) == len(rows[0]) for r in rows)
        if a["status"] != "ok":
            assert a["reason"] in md
    marker = json.loads((out / MARKER).read_text())
    assert set(marker["files"]) >= {"report.json", "report.md", "report.html"}
    assert report_status(out) == marker


def test_report_skips_with_reasons(tmp_path):
    # no velocities and no polyanions: the stages that need them say why
    rng = np.random.default_rng(3)
    pos = np.cumsum(rng.normal(scale=0.05, size=(200, 8, 3)), axis=0) + rng.uniform(0, 10, size=(8, 3))
    traj = anionmotion.from_arrays(pos, np.eye(3) * 10, species=["Na"] * 8, frame_interval=0.5)
    rep = run_report(traj, tmp_path / "r", progress=False, figures=False)
    a = rep["analyses"]
    assert a["vdos"]["status"] == "skipped", (a["vdos"]["status"], a["vdos"]["reason"])
    assert "no velocities and its frames are 0.5 ps apart" in a["vdos"]["reason"]
    assert "Nyquist frequency 1 THz" in a["vdos"]["reason"]
    for name in ("polyanions", "reorientation", "coupling", "libration"):
        assert a[name]["status"] == "skipped", (name, a[name]["status"], a[name]["reason"])
        assert "no polyanions" in a[name]["reason"] or "no velocities" in a[name]["reason"]
    # the stages that apply to a cation-only trajectory run
    assert a["diffusion"]["status"] == "ok", a["diffusion"]["reason"]
    assert rep["detected"]["cation"]["species"] == "Na"
    assert rep["temperature_K"] is None


def test_report_failing_stage_is_recorded_and_others_run(tmp_path, monkeypatch):
    def boom(ctx, out):
        raise RuntimeError("injected failure")

    broken = stages_mod.Stage("polyanions", "Polyanions", (), lambda ctx: None, boom)
    monkeypatch.setattr(stages_mod, "STAGES", (broken,) + stages_mod.STAGES[1:])
    import anionmotion.report.core as core

    monkeypatch.setattr(core, "STAGES", stages_mod.STAGES)
    rep = run_report(li2so4(n_frames=100), tmp_path / "r", progress=False, figures=False,
                     stages=["polyanions", "reorientation"])
    assert rep["analyses"]["polyanions"]["status"] == "failed"
    assert rep["analyses"]["reorientation"]["status"] == "skipped"
    assert "the polyanion stage did not produce polyanions" in rep["analyses"]["reorientation"]["reason"]
    assert "RuntimeError: injected failure" in rep["analyses"]["polyanions"]["reason"]
    assert len(rep["analyses"]) == len(stages_mod.STAGES)


def test_report_requested_stages_only(tmp_path):
    rep = run_report(li2so4(n_frames=100), tmp_path / "r", stages=["polyanions"], progress=False, figures=False)
    for name, a in rep["analyses"].items():
        if name != "polyanions":
            assert a["status"] == "skipped" and a["reason"] == "not requested (--stages)"
    with pytest.raises(OptionError, match="unknown stage.*msdx.*choose from polyanions"):
        run_report(li2so4(n_frames=5), tmp_path / "r2", stages=["msdx"], progress=False)
    with pytest.raises(OptionError, match="unknown report option.*bogus"):
        run_report(li2so4(n_frames=5), tmp_path / "r3", options={"bogus": 1}, progress=False)
    with pytest.raises(OptionError, match="--temperature must be a positive"):
        run_report(li2so4(n_frames=5), tmp_path / "r4", temperature=-3, progress=False)


def test_report_resume_and_overwrite_rules(tmp_path):
    traj = li2so4(n_frames=60)
    out = tmp_path / "r"
    first = run_report(traj, out, stages=["polyanions"], progress=False, figures=False)
    assert first["up_to_date"] is False
    again = run_report(traj, out, stages=["polyanions"], progress=False, figures=False)
    assert again["up_to_date"] is True
    assert comparable({k: v for k, v in again.items() if k != "up_to_date"}) == \
        comparable({k: v for k, v in first.items() if k != "up_to_date"})
    with pytest.raises(OptionError, match="holds a report of another input or with other parameters"):
        run_report(traj, out, stages=["polyanions"], temperature=300, progress=False, figures=False)
    (out / "stale.csv").write_text("x\n")
    redo = run_report(traj, out, stages=["polyanions"], temperature=300, progress=False, figures=False,
                      overwrite=True)
    assert redo["up_to_date"] is False and redo["temperature_K"] == 300
    assert (out / "stale.csv").exists()  # files the report did not write are never deleted
    other = tmp_path / "busy"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(OptionError, match="is not empty and holds no complete report"):
        run_report(traj, other, progress=False)


def test_temperature_from_metadata(tmp_path):
    traj = li2so4(n_frames=20, metadata={"temperature_K": 450.0, "constraint_mode": "RC"})
    rep = run_report(traj, tmp_path / "r", stages=["polyanions"], progress=False, figures=False)
    assert rep["temperature_K"] == 450.0 and "metadata" in rep["temperature_source"]
    assert rep["constraint_mode"] == "RC"


def test_file_sha256_streams(tmp_path):
    p = tmp_path / "blob"
    data = os.urandom(3 * 1024 + 17)
    p.write_bytes(data)
    assert file_sha256(p, block=1000) == hashlib.sha256(data).hexdigest()


def test_call_records_parameters_and_unsupported_keywords():
    out = stages_mod.StageOutput("x", "x")

    def f(traj, *, a=1.0, progress=None):
        return a

    assert stages_mod.call(out, f, None, a=2.5, b=3, c=None, progress=False) == 2.5
    assert out.parameters == {"a": 2.5}
    assert any("does not take b=3" in n for n in out.notes)


# ----------------------------------------------------------------------------- CLI

def test_cli_report_on_file(tmp_path, capsys):
    from anionmotion.cli import main

    nc = write_netcdf(str(tmp_path / "t600.nc"), temperature=600, mode="UC", n_frames=150)
    out = tmp_path / "rep"
    rc = main(["report", nc, "--out", str(out), "--no-progress", "--no-figures", "--stages", "polyanions,diffusion"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "mobile cation: Li is the first mobile cation" in text
    rep = json.loads((out / "report.json").read_text())
    for name in ("polyanions", "diffusion"):
        assert rep["analyses"][name]["status"] == "ok", (name, rep["analyses"][name]["reason"])
    assert rep["input"]["sha256"] == hashlib.sha256(open(nc, "rb").read()).hexdigest()
    assert rep["constraint_mode"] == "UC" and rep["temperature_K"] == 600
    assert main(["report", nc, "--out", str(out), "--no-progress", "--no-figures", "--stages",
                 "polyanions,diffusion"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["report", nc, "--out", str(out), "--no-progress", "--temperature", "500", "--stages",
                 "polyanions"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


def test_cli_report_argument_errors(capsys):
    from anionmotion.cli import main

    assert main(["report"]) == 2
    assert "give a trajectory file (or --example)" in capsys.readouterr().err
    assert main(["report", "x.nc", "--example"]) == 2
    assert "either a trajectory or --example" in capsys.readouterr().err


# ----------------------------------------------------------------------------- HTML in a browser

_CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

_CHECK_JS = ("<script>window.addEventListener('load',function(){var im=document.images,ok=0;"
             "for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0&&"
             "im[i].src.indexOf('data:image/')==0)ok++;}var d=document.createElement('div');"
             "d.id='imgcheck';d.textContent='IMGCHECK '+ok+'/'+im.length;document.body.appendChild(d);});</script>")


def html_images_rendered(html_path, tmp_path):
    """(rendered, total) images of ``html_path`` in headless Chromium (a copy with a checking script)."""
    probe = tmp_path / "probe.html"
    probe.write_text(open(html_path, encoding="utf-8").read().replace("</body>", _CHECK_JS + "</body>"),
                     encoding="utf-8")
    assert _CHROMIUM is not None, ("headless Chromium is needed to check the report in a browser and is not "
                                   "installed: apt-get install chromium (.ci/run installs it)")
    proc = subprocess.run([_CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                           "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    m = re.search(r"IMGCHECK (\d+)/(\d+)", proc.stdout)
    assert m, f"chromium did not render the page: {proc.stderr[-500:]}"
    return int(m.group(1)), int(m.group(2))


def test_html_figures_render_in_chromium(synth_report, tmp_path):
    out, rep = synth_report
    n_figs = sum(len(a["figures"]) for a in rep["analyses"].values())
    assert n_figs >= 1
    ok, total = html_images_rendered(out / "report.html", tmp_path)
    assert total == n_figs and ok == total


def test_report_without_matplotlib_says_so(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("No module named 'matplotlib'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    rep = run_report(li2so4(n_frames=60), tmp_path / "r", stages=["polyanions"], progress=False)
    a = rep["analyses"]["polyanions"]
    assert a["status"] == "ok" and a["figures"] == []
    assert any("figures not drawn: plots need matplotlib: pip install 'anionmotion[plot]'" in n for n in a["notes"])
    assert "<img" not in (tmp_path / "r" / "report.html").read_text()


def test_report_on_real_argyrodite_xdatcar(tmp_path, datadir):
    """Li6PS5Cl AIMD (tests/data/argyrodite, 500 K, 0.1 ps frames, no velocities): detection and reasons."""
    path = os.path.join(datadir, "argyrodite", "Li6PS5Cl_100p_run1_XDATCAR.gz")
    with anionmotion.open(path, frame_interval=0.1) as traj:
        rep = run_report(traj, tmp_path / "r", temperature=500, stages=["polyanions", "diffusion", "vdos"],
                         figures=False, progress=False, reader_options={"frame_interval": 0.1}, input_path=path)
    det = rep["detected"]
    assert det["cation"]["species"] == "Li" and det["cation"]["n_atoms"] == 192
    p = det["polyanions"]
    assert (p["center"], p["ligand"], p["n_anions"], p["n_ligands_per_anion"], p["isolated"]) == ("P", "S", 32, 4,
                                                                                                   True)
    a = rep["analyses"]
    assert a["polyanions"]["status"] == "ok" and a["polyanions"]["result"]["framework"]["connectivity"] == "isolated"
    assert a["diffusion"]["status"] == "ok" and a["diffusion"]["result"]["diffusion"]["D_cm2_s"] > 1e-8
    assert a["vdos"]["status"] == "skipped" and "Nyquist frequency 5 THz" in a["vdos"]["reason"]
    assert rep["input"]["sha256"] == file_sha256(path) and rep["input"]["reader_options"] == {"frame_interval": 0.1}


def test_melting_check_covers_polyanion_centres(synth_report):
    """Paper 003's framework TMSD includes S of SO4 (tabulated as an anion elsewhere, a cation here)."""
    import json

    out, _rep = synth_report
    with open(out / "report.json") as fh:
        rep = json.load(fh)
    dif = rep["analyses"]["diffusion"]["result"]
    assert dif["meta"]["framework_cations"] == ["S"]
    assert dif["framework_tmsd_A2"] is not None
