"""anionmotion batch: manifest schema, Dask runs equal serial runs, resume after failures, atom-block MSD."""

import builtins
import json
import os
import sys

import distributed
import numpy as np
import pytest

import anionmotion
from anionmotion.errors import OptionError
from anionmotion.report import MARKER, comparable, run_report
from anionmotion.report.batch import load_manifest, need_distributed, run_batch
from anionmotion.report.blocks import atom_blocks, msd_in_blocks

from _report_synth import li2so4, write_netcdf

STAGES = '["polyanions", "diffusion", "hops", "reorientation"]'


def write_series(tmp_path, temps=(500, 600, 700), block_run=600):
    for i, T in enumerate(temps):
        write_netcdf(str(tmp_path / f"t{T}.nc"), temperature=T, mode="UC", n_frames=250, dt=0.04, seed=i,
                     D_li=0.05 * T / 500)
    runs = "\n".join(f'[[run]]\npath = "t{T}.nc"\n' + (f"msd_block_atoms = 5\n" if T == block_run else "")
                     for T in temps)
    text = f'[batch]\nout = "out"\n[defaults]\nstages = {STAGES}\nfigures = false\nmemory = "512MB"\n{runs}'
    (tmp_path / "m.toml").write_text(text)
    return tmp_path / "m.toml"


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


# ----------------------------------------------------------------------------- manifest

def test_manifest_schema(tmp_path):
    p = tmp_path / "m.toml"
    p.write_text('[batch]\nout = "res"\nat_K = 310\n[defaults]\ncation = "Li"\ntypes = "1=Li,2=S"\n'
                 '[[run]]\npath = "a/x.nc"\ntemperature = 600\nmode = "RC"\n'
                 '[[run]]\npath = "y.lammpstrj"\nlabel = "y"\nout = "yy"\ntimestep = 0.001\nlag_min = 1.0\n')
    m = load_manifest(p)
    assert m["root"] == str(tmp_path / "res") and m["at_K"] == 310.0 and m["compare"] is True
    a, b = m["runs"]
    assert a["path"] == str(tmp_path / "a" / "x.nc") and a["label"] == "x" and a["mode"] == "RC"
    assert a["out_dir"] == str(tmp_path / "res" / "x")
    assert a["report"] == {"cation": "Li", "temperature": 600}
    assert a["reader_options"] == {"types": {1: "Li", 2: "S"}}
    assert b["out_dir"] == str(tmp_path / "res" / "yy")
    assert b["reader_options"]["timestep"] == 0.001 and b["report"]["lag_min"] == 1.0


@pytest.mark.parametrize("text, match", [
    ('[[run]]\npath = "a.nc"\nbogus = 1\n', r"unknown key\(s\) bogus in \[\[run\]\] #1; valid keys: path"),
    ('[[run]]\nlabel = "a"\n', r"\[\[run\]\] #1 has no path"),
    ('[batch]\nout = "x"\n', r"no \[\[run\]\] entries"),
    ('[[run]]\npath = "a.nc"\n[[run]]\npath = "b/a.nc"\n', r"label 'a' used twice"),
    ('[[run]]\npath = "a.nc"\nstages = "msd"\n', r"stages must be a list"),
    ('[batch]\ncompare = "yes"\n[[run]]\npath = "a.nc"\n', r"compare must be true or false"),
    ('[runs]\npath = "a.nc"\n', r"unknown key\(s\) runs in the manifest"),
    ('[[run]\npath = ', r"not valid TOML"),
])
def test_manifest_errors(tmp_path, text, match):
    p = tmp_path / "m.toml"
    p.write_text(text)
    with pytest.raises(OptionError, match=match):
        load_manifest(p)


def _block(monkeypatch, *names):
    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name.split(".")[0] in names:
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    for n in names:
        monkeypatch.delitem(sys.modules, n, raising=False)
    monkeypatch.setattr(builtins, "__import__", fake)


def test_missing_dask_message(monkeypatch):
    _block(monkeypatch, "distributed")
    with pytest.raises(ImportError, match=r"pip install 'anionmotion\[cluster\]'"):
        need_distributed()


def test_toml_on_python_310_needs_tomli(monkeypatch, tmp_path):
    p = tmp_path / "m.toml"
    p.write_text('[[run]]\npath = "a.nc"\n')
    _block(monkeypatch, "tomllib", "tomli")
    with pytest.raises(ImportError, match="needs tomli: pip install tomli"):
        load_manifest(p)


# ----------------------------------------------------------------------------- atom blocks

def test_atom_blocks_split_and_errors():
    b = atom_blocks(np.arange(7), 3)
    assert [x.tolist() for x in b] == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(OptionError, match="block_atoms must be a positive number of atoms; got 0"):
        atom_blocks(np.arange(3), 0)


@pytest.mark.parametrize("block", [1, 5, 16])
def test_msd_in_blocks_equals_whole_selection(block):
    traj = li2so4(n_frames=120, dt=0.04)
    whole = anionmotion.msd(traj, species="Li", temperature=600.0)
    split = msd_in_blocks(traj, species="Li", block_atoms=block, temperature=600.0)
    np.testing.assert_allclose(split.msd, whole.msd, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(split.msd_xyz, whole.msd_xyz, rtol=1e-12, atol=1e-14)
    assert split.tmsd == pytest.approx(whole.tmsd, rel=1e-12)
    assert split.hop_distance_A == whole.hop_distance_A and split.charge == whole.charge
    np.testing.assert_array_equal(split.atom_indices, whole.atom_indices)
    assert split.meta["atom_blocks"]["n_blocks"] == -(-16 // block)


def test_msd_in_blocks_empty_selection():
    with pytest.raises(OptionError, match="the selection 'Na' is empty|Na"):
        msd_in_blocks(li2so4(n_frames=10), species="Na", block_atoms=2)


# ----------------------------------------------------------------------------- batch on Dask

def _reports(m):
    return {t["label"]: json.loads(open(os.path.join(t["out_dir"], "report.json")).read()) for t in m["runs"]}


def test_batch_equals_serial_and_resumes(tmp_path, client):
    manifest = write_series(tmp_path)
    m = load_manifest(manifest)
    summary = run_batch(m, client=client)
    assert [r["status"] for r in summary["runs"]] == ["done"] * 3
    assert summary["compare"]["status"] == "done"
    cmp = json.loads(open(os.path.join(m["root"], "compare", "compare.json")).read())
    if "Ea_eV" in cmp["arrhenius"]["UC"]:  # anionmotion.arrhenius present: the series gives an activation energy
        assert cmp["arrhenius"]["UC"]["temperatures_K"] == [500.0, 600.0, 700.0]
        assert np.isfinite(cmp["arrhenius"]["UC"]["Ea_eV"])
    batch = _reports(m)
    assert batch["t600"]["analyses"]["diffusion"]["parameters"]["msd_block_atoms"] == 5
    # serial runs of the same manifest entries give identical numbers
    for t in m["runs"]:
        rep = dict(t["report"])
        opts = {k: rep.pop(k) for k in list(rep) if k not in ("cation", "center", "ligand", "temperature", "stages",
                                                                 "figures", "memory")}
        with anionmotion.open(t["path"]) as traj:
            # the same budget as the batch: the same chunks, so the same numbers bit for bit
            serial = run_report(traj, tmp_path / "serial" / t["label"], stages=rep.get("stages"), figures=False,
                                memory=rep.get("memory"),
                                options=opts, labels={"label": t["label"]}, input_path=t["path"], progress=False,
                                reader_options=t["reader_options"])
        assert comparable(serial)["analyses"] == comparable(batch[t["label"]])["analyses"]
        assert serial["input"]["sha256"] == batch[t["label"]]["input"]["sha256"]
    # a second invocation recomputes nothing
    stamps = {t["label"]: os.path.getmtime(os.path.join(t["out_dir"], MARKER)) for t in m["runs"]}
    again = run_batch(m, client=client, compare=False)
    assert [r["status"] for r in again["runs"]] == ["up_to_date"] * 3
    assert stamps == {t["label"]: os.path.getmtime(os.path.join(t["out_dir"], MARKER)) for t in m["runs"]}


def test_batch_failure_and_kill_then_resume(tmp_path, client):
    manifest = write_series(tmp_path, block_run=None)
    m = load_manifest(manifest)
    good = (tmp_path / "t700.nc").read_bytes()
    (tmp_path / "t700.nc").write_bytes(b"CDF\x01 truncated garbage")  # injected failure
    first = run_batch(m, client=client)
    status = {r["label"]: r for r in first["runs"]}
    assert status["t500"]["status"] == status["t600"]["status"] == "done"
    assert status["t700"]["status"] == "failed" and status["t700"]["error"]
    assert first["compare"]["status"] == "done"  # over the two finished runs
    assert not os.path.exists(os.path.join(status["t700"]["out_dir"], MARKER))
    # simulate a run killed half-way: partial output, no completion marker
    out600 = status["t600"]["out_dir"]
    os.unlink(os.path.join(out600, MARKER))
    with open(os.path.join(out600, "report.md"), "w") as fh:
        fh.write("half-written")
    stamp500 = os.path.getmtime(os.path.join(status["t500"]["out_dir"], MARKER))
    (tmp_path / "t700.nc").write_bytes(good)
    second = {r["label"]: r["status"] for r in run_batch(m, client=client)["runs"]}
    assert second == {"t500": "up_to_date", "t600": "done", "t700": "done"}
    assert os.path.getmtime(os.path.join(status["t500"]["out_dir"], MARKER)) == stamp500
    assert open(os.path.join(out600, "report.md")).read() != "half-written"


def test_cli_batch_bad_manifest(tmp_path, capsys):
    from anionmotion.cli import main

    p = tmp_path / "m.toml"
    p.write_text('[[run]]\nlabel = "x"\n')
    assert main(["batch", str(p)]) == 2
    assert "has no path" in capsys.readouterr().err


def test_cli_batch_on_a_scheduler_address(tmp_path, client, capsys):
    from anionmotion.cli import main

    write_netcdf(str(tmp_path / "a.nc"), temperature=600, n_frames=120, dt=0.04)
    (tmp_path / "m.toml").write_text('[batch]\nout = "o"\n[[run]]\npath = "a.nc"\nstages = ["polyanions"]\n'
                                     'figures = false\n')
    assert main(["batch", str(tmp_path / "m.toml"), "--scheduler", client.scheduler.address]) == 0
    text = capsys.readouterr().out
    assert "1 runs: 1 computed, 0 already complete (skipped), 0 failed" in text
    assert "compare: not run (fewer than two finished reports)" in text
    status = json.loads((tmp_path / "o" / "batch-status.json").read_text())
    assert status["runs"][0]["status"] == "done"
    assert main(["batch", str(tmp_path / "m.toml"), "--scheduler", client.scheduler.address, "--no-compare"]) == 0
    assert "0 computed, 1 already complete (skipped)" in capsys.readouterr().out
