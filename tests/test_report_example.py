"""The README's main job: `anionmotion report --example` shows the science and renders in a browser.

The example (data/README.md) is one system run twice: unconstrained (UC, reported) and with the anion
rotations restrained (RC, compared).  These tests fix what the example must demonstrate: Li diffusing in
its diffusive regime, rotating anions, hops far from the trajectory ends so that coupling, the
hop–rotation coincidence and the timeline run, every stage with its figures, the UC/RC contrast, and
human-readable parameters (no raw atom-index lists) in the rendered report.
"""

import hashlib
import json
import os
import re

import numpy as np
import pytest

from anionmotion.cli import main
from anionmotion._example import example_path
from anionmotion.report import example_path as report_example_path, stage_names

from test_report import html_images_rendered

#: a printed list of five or more integers is a raw index list (the report must describe them instead)
_RAW_LIST = re.compile(r"\[\s*-?\d+\s*(,\s*-?\d+\s*){4,}")


@pytest.fixture(scope="module")
def example_report(tmp_path_factory):
    assert report_example_path() == example_path("UC")   # the example ships with the package: missing data
    example_path("RC")                                    # is a failure, not a skip
    cwd = tmp_path_factory.mktemp("cwd")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        rc = main(["report", "--example", "--no-progress"])   # default --out ./anionmotion-report-example
    out = cwd / "anionmotion-report-example"
    return rc, out, json.loads((out / "report.json").read_text())


@pytest.mark.slow
def test_example_report_has_every_analysis(example_report):
    rc, out, rep = example_report
    assert rc == 0
    assert set(rep["analyses"]) == set(stage_names())
    for name, a in rep["analyses"].items():
        assert a["status"] == "ok", f"{name}: {a['status']}: {a['reason']}"
        assert a["result"], name
        assert a["figures"], f"{name} has no figure"
        for fig in a["figures"]:
            assert (out / fig["file"]).stat().st_size > 5000, fig["file"]
        assert not any("figures not drawn" in n for n in a["notes"]), name
    with open(example_path(), "rb") as fh:
        assert rep["input"]["sha256"] == hashlib.sha256(fh.read()).hexdigest()
    assert rep["detected"]["cation"]["species"] == "Li" and rep["detected"]["polyanions"]["center"] == "S"
    assert rep["constraint_mode"] == "UC" and rep["temperature_K"] == 1000.0
    assert (out / "density.CHGCAR").exists() and (out / "density_grid.nc").exists()


@pytest.mark.slow
def test_example_li_diffuses_in_its_diffusive_regime(example_report):
    _, _, rep = example_report
    d = rep["analyses"]["diffusion"]
    r = d["result"]
    assert r["diffusing"] and r["tmsd_A2"] > 10.0            # well past the 5 Å² of "diffusing" (SPEC §2)
    assert r["framework_melting"] is not True                  # the anion sublattice stays a solid
    dif = r["diffusion"]
    assert dif["diffusive_regime_reached"] is True
    assert not any("FitWarning" in w for w in d["warnings"]), d["warnings"]
    assert 0.2 * dif["D_cm2_s"] > dif["D_stderr_cm2_s"] > 0   # D to better than 20 %
    assert r["conductivity"]["sigma_mS_cm"] > 0


@pytest.mark.slow
def test_example_anions_rotate_and_li_hops_away_from_the_ends(example_report):
    _, _, rep = example_report
    rot = rep["analyses"]["reorientation"]["result"]
    assert rot["rotating"] and rot["C1_at_reliable_lag"] < 0.7 and rot["rotation_events"] > 100
    hops = rep["analyses"]["hops"]["result"]
    span = rep["trajectory"]["span_ps"]
    times = np.array([e["time_ps"] for e in hops["events"]])
    # the paper's t_a = 9 ps and Δt = 3 ps apply (the run is long enough), and many hops lie far from the ends
    assert hops["window_ps"] == 9.0 and hops["residence_ps"] == 3.0
    far = (times > 0.25 * span) & (times < 0.75 * span)
    assert len(times) >= 20 and far.sum() >= 10
    c = rep["analyses"]["coupling"]["result"]["coincidence"]
    assert c["n_pairs"] >= 10 and c["ratio"] is not None and c["p_value"] is not None
    tl = rep["analyses"]["timeline"]
    assert tl["status"] == "ok" and tl["result"]["n_hops_total"] == len(times)


@pytest.mark.slow
def test_example_report_compares_uc_with_rc(example_report):
    rc, out, rep = example_report
    c = rep["comparison"]
    assert c["status"] == "ok", c["reason"]
    assert not c["warnings"], c["warnings"]
    v = c["values"]
    uc, rcv = v["UC"], v["RC"]
    # the constraint held and did its job: rotations frozen, Li diffusion several times slower
    assert uc["anion_rotation_mean_deg"] > 60 and rcv["anion_rotation_mean_deg"] < 10
    assert uc["C1_at_reliable_lag"] < 0.7 and rcv["C1_at_reliable_lag"] > 0.95
    assert uc["D_cm2_s"] > 3 * rcv["D_cm2_s"] > 0 and v["D_ratio_UC_over_RC"] > 3
    assert uc["tmsd_A2"] > 3 * rcv["tmsd_A2"]
    assert v["delta_rot"] > 0.4 and v["delta_rot_kind"] == "exact"
    assert c["figures"] and (out / c["figures"][0]["file"]).stat().st_size > 5000
    rc_rep = json.loads((out / "RC" / "report.json").read_text())
    assert rc_rep["constraint_mode"] == "RC" and rc_rep["temperature_K"] == rep["temperature_K"]
    cmp_ = json.loads((out / "compare" / "compare.json").read_text())
    assert [e["mode"] for e in cmp_["entries"]] == ["UC", "RC"]
    assert "1000 K" in cmp_["modes"]
    html = (out / "report.html").read_text()
    assert "Constraint effect: UC vs RC" in html and "id='comparison'" in html
    md = (out / "report.md").read_text()
    assert "## Constraint effect: UC vs RC" in md


@pytest.mark.slow
def test_example_report_prints_no_raw_index_lists(example_report):
    _, out, rep = example_report
    for name in ("report.html", "report.md"):
        text = (out / name).read_text()
        text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
        m = _RAW_LIST.search(text)
        assert m is None, f"{name}: raw index list {text[m.start():m.start() + 80]!r}"
    assert "108 SO4 anions, centre S, ligand O" in (out / "report.md").read_text()
    assert "108 SO4 anions, centre S, ligand O" in (out / "report.html").read_text()


@pytest.mark.slow
def test_example_report_second_run_does_nothing(example_report, capsys):
    rc, out, _ = example_report
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(out.parent)
        assert main(["report", "--example", "--no-progress"]) == 0
    assert "nothing to do" in capsys.readouterr().out


@pytest.mark.slow
def test_example_report_renders_every_figure(example_report, tmp_path):
    rc, out, rep = example_report
    n_figs = sum(len(a["figures"]) for a in rep["analyses"].values()) + len(rep["comparison"]["figures"])
    ok, total = html_images_rendered(out / "report.html", tmp_path)
    assert total == n_figs >= len(stage_names()) + 1 and ok == total


# ----------------------------------------------------------------------------- fast checks of the pieces

def test_example_files_are_small_and_documented():
    from anionmotion._example import EXAMPLE_FILES, example_report_path

    data = os.path.dirname(example_path())
    total = sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data))
    assert total <= 15e6, f"shipped example data {total / 1e6:.1f} MB > 15 MB"
    readme = open(os.path.join(data, "README.md"), encoding="utf-8").read()
    for mode, name in EXAMPLE_FILES.items():
        assert name in readme
        assert os.path.exists(example_report_path(mode))
        rep = json.load(open(example_report_path(mode), encoding="utf-8"))
        assert rep["mode"] == mode and rep["output"] == name


def test_example_path_rejects_unknown_modes():
    from anionmotion.errors import OptionError

    with pytest.raises(OptionError, match="UC, RC"):
        example_path("RTVC")


def test_describe_replaces_index_lists():
    from anionmotion.report.render import describe

    poly = {"centers": list(range(0, 540, 5)), "ligands": [[i + 1, i + 2, i + 3, i + 4] for i in range(0, 540, 5)],
            "members": [list(range(i, i + 5)) for i in range(0, 540, 5)], "center_species": "S",
            "ligand_species": "O", "ligand_counts": [4] * 108, "cutoff": 2.39, "connectivity": "isolated"}
    assert describe(poly) == "108 SO4 anions, centre S, ligand O (cutoff 2.39 Å, isolated)"
    assert describe({"events": [{"atom": 1}] * 3, "a_A": 3.2, "species": "Li"}) == "3 hop events of Li"
    assert describe(list(range(4, 760, 7)), "orientation_ligand_atoms") == "108 atom indices, 4 … 753"
    assert describe([50, 250], "defined_frames") == [50, 250]
    assert describe({"a": {"centers": [0, 5], "ligands": [[1, 2], [6, 7]], "center_species": "P",
                           "ligand_species": "S", "ligand_counts": [2, 2]}})["a"] == "2 PS2 anions, centre P, ligand S"


def test_pack_keeps_the_trajectory_to_its_quantization(tmp_path):
    """`pack` (how the example files were made) keeps every variable and attribute, within the stated step."""
    import anionmotion
    from anionmotion._example import pack
    from anionmotion.io.netcdf_writer import NetCDFWriter

    rng = np.random.default_rng(3)
    n, f = 7, 12
    pos = np.cumsum(rng.normal(0, 0.3, (f, n, 3)), axis=0) + 5.0
    vel = rng.normal(0, 8.0, (f, n, 3))
    src = tmp_path / "run.nc"
    with NetCDFWriter(src, ["Li"] * 3 + ["S"] + ["O"] * 3, metadata={"constraint_mode": "UC", "temperature_K": 900.0}) as w:
        for i in range(f):
            w.write(pos[i], np.eye(3) * 12.0, time=0.02 * i, velocities=vel[i])
    (tmp_path / "run.constraints.json").write_text(json.dumps({"mode": "UC", "output": str(src)}))
    info = pack(src, tmp_path / "packed.nc")
    assert info["n_frames"] == f and "2^-7 = 0.007812 Å" in info["packing"] and "2^-4 = 0.0625 Å/ps" in info["packing"]
    with anionmotion.open(str(tmp_path / "packed.nc")) as t:
        assert t.metadata["constraint_mode"] == "UC" and "zlib" in t.metadata["packing"]
        assert list(t.species) == ["Li"] * 3 + ["S"] + ["O"] * 3
        c = t.read(velocities=True)
        err_p, err_v = np.abs(c.positions - pos).max(), np.abs(c.velocities - vel).max()
        assert 0 < err_p <= 2.0 ** -8 + 1e-5 and 0 < err_v <= 2.0 ** -5 + 1e-5   # rounding: half a step
        np.testing.assert_allclose(t.times, 0.02 * np.arange(f), atol=1e-6)
    rep = json.loads((tmp_path / "packed.constraints.json").read_text())
    assert rep["output"] == "packed.nc" and "zlib" in rep["packing"]
    info = pack(src, tmp_path / "nov.nc", velocities=False)
    with anionmotion.open(str(tmp_path / "nov.nc")) as t:
        assert not t.has_velocities
    from anionmotion.errors import OptionError

    with pytest.raises(OptionError, match="must not replace its source"):
        pack(src, src, overwrite=True)
    with pytest.raises(OptionError, match="exists"):
        pack(src, tmp_path / "packed.nc")
