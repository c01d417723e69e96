"""Potentials for constrained MD (issue 13): the ASE and OpenMM-ML routes against the native classical model,
CHGNet in the four modes, NVE energy drift, resume after SIGKILL of a CHGNet run, bad potentials."""

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
import warnings

import netCDF4
import numpy as np
import numpy.testing as npt
import openmm
import pytest

from anionmotion.errors import OptionError
from anionmotion.md import build_li2so4, run_md
from anionmotion.md import potentials as P
from anionmotion.md.potentials import (MLIP_EXTRA, PotentialSpec, nve_energy_drift, parse_potential,
                                       parse_potential_kw, potential_system, set_torch_threads)
from anionmotion.md.run import output_paths, report_path
from anionmotion.md.structure import annotate_reports, build_md_system
from anionmotion.md.systems import MDSystem

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIF = os.path.join(ROOT, "tests", "data", "md_structures", "Li3PO4_gamma.cif")
ASE_OPENMM = "ase:anionmotion.md.potentials:OpenMMCalculator"


def read_nc(path):
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        return (np.asarray(ds["coordinates"][:], dtype=np.float64), np.asarray(ds["velocities"][:], dtype=np.float64),
                np.asarray(ds["time"][:], dtype=np.float64), {k: ds.getncattr(k) for k in ds.ncattrs()})


def masses_of(system):
    return np.array([system.getParticleMass(i).value_in_unit(openmm.unit.dalton)
                     for i in range(system.getNumParticles())])


def energy_forces(system, pos, box):
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"),
                         {"Threads": "1"})
    ctx.setPeriodicBoxVectors(*[openmm.Vec3(*r) for r in box])
    ctx.setPositions(pos)
    st = ctx.getState(getForces=True, getEnergy=True)
    return (st.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole),
            st.getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer))


@pytest.fixture(scope="module")
def li2so4(tmp_path_factory):
    """The embedded model (2 cells) and its System serialized for the ASE route."""
    m = build_li2so4(2)
    xml = str(tmp_path_factory.mktemp("xml") / "li2so4.xml")
    with open(xml, "w") as fh:
        fh.write(openmm.XmlSerializer.serialize(m.system))
    return m, xml


def ase_twin(m, xml):
    system = potential_system(ASE_OPENMM, m.species, masses_of(m.system), m.box,
                              potential_kw={"system_xml": xml, "threads": 1})
    return MDSystem("li2so4-ase", system, m.positions, m.box, m.species, m.groups, m.templates, "ASE route",
                    {"system": "li2so4 through ase"})


# ------------------------------------------------------------------------------ parsing
def test_parse_routes(tmp_path):
    assert parse_potential("chgnet") == PotentialSpec("chgnet", "chgnet", None, {}, None)
    spec = parse_potential(ASE_OPENMM, ["system_xml=x.xml", "threads=2", "scale=1e-3", "flag=True"], "CPU")
    assert spec.route == "ase" and spec.name == "anionmotion.md.potentials:OpenMMCalculator"
    assert spec.kwargs == {"system_xml": "x.xml", "threads": 2, "scale": 1e-3, "flag": True} and spec.device == "cpu"
    assert parse_potential("ase:ase.calculators.emt.EMT").name == "ase.calculators.emt:EMT"   # dotted form
    model = tmp_path / "m.model"
    model.write_bytes(b"x")
    s = parse_potential(f"mace:{model}", ["precision=single", "charge=0"])
    assert (s.route, s.name, s.path) == ("openmmml", "mace", str(model))
    ctor, create = P._split_openmmml_kwargs(s)
    assert ctor == {"modelPath": str(model)} and create == {"precision": "single", "charge": 0}
    n = parse_potential(f"nequip:{model}", ["energyScale=4.184"], "cuda")
    ctor, create = P._split_openmmml_kwargs(n)
    assert ctor == {"modelPath": str(model), "lengthScale": 0.1, "energyScale": 4.184} and create == {"device": "cuda"}
    assert P._split_openmmml_kwargs(parse_potential(f"deepmd:{model}"))[0] == {"model": str(model)}
    xml = tmp_path / "s.xml"
    xml.write_text("<System/>")
    assert parse_potential(str(xml)).route == "openmm-xml" == parse_potential(f"openmm:{xml}").route
    assert "mace" in P.openmmml_names() and "nequip" in P.openmmml_names()
    assert parse_potential_kw({"a": 1}) == {"a": 1}


@pytest.mark.parametrize("text, kw, match", [
    ("foo", None, "unknown --potential 'foo'; choose chgnet, an OpenMM System XML, ase:MODULE:CLASS"),
    ("mace", None, "--potential mace needs its model file: mace:PATH"),
    ("mace:/nonexistent/m.model", None, "m.model: model file of --potential mace:/nonexistent/m.model not found"),
    ("chgnet:/nonexistent/c.pt", None, "c.pt: model file of --potential chgnet"),
    ("ase:no_such_module_xyz:Calc", None, "cannot import module 'no_such_module_xyz'"),
    ("ase:ase.calculators.emt:Nope", None, "module 'ase.calculators.emt' has no 'Nope'"),
    ("ase:", None, "expected ase:MODULE:CLASS"),
    ("chgnet", ["model"], "invalid --potential-kw 'model'; expected KEY=VALUE"),
    ("chgnet", ["1x=2"], "invalid --potential-kw '1x=2'"),
    ("chgnet", ["device=cuda"], "not understood by chgnet"),
    ("", None, "invalid --potential ''"),
])
def test_parse_errors(text, kw, match):
    with pytest.raises(OptionError, match=match.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        parse_potential(text, kw)


def test_bad_device():
    with pytest.raises(OptionError, match="invalid --device 'gpu'"):
        parse_potential("chgnet", device="gpu")


def test_old_openmm_is_one_line(monkeypatch):
    monkeypatch.delattr(openmm, "PythonForce")
    with pytest.raises(OptionError, match=r"needs OpenMM ≥ 8\.6 \(PythonForce\).*anionmotion\[mlip\]"):
        potential_system("chgnet", ["Li"], [6.94], np.eye(3))


def test_missing_extra_is_one_line(monkeypatch):
    """Without chgnet installed (simulated) the error names the mlip extra, in one line."""
    monkeypatch.setitem(sys.modules, "chgnet.model", None)
    monkeypatch.setattr(P, "_EVALUATORS", {})
    with pytest.raises(OptionError) as err:
        build_md_system(CIF, "chgnet")
    msg = str(err.value)
    assert "\n" not in msg and MLIP_EXTRA in msg and "'chgnet'" in msg


# ------------------------------------------------------------------------------ ASE and OpenMM-ML routes = native
def test_ase_and_openmmml_routes_give_native_forces(li2so4):
    m, xml = li2so4
    rng = np.random.default_rng(3)
    pos = m.positions + rng.normal(scale=0.004, size=m.positions.shape)
    e0, f0 = energy_forces(m.system, pos, m.box)
    twin = ase_twin(m, xml)
    e1, f1 = energy_forces(twin.system, pos, m.box)
    assert e1 == pytest.approx(e0, rel=1e-5)
    assert np.linalg.norm(f1 - f0) / np.linalg.norm(f0) < 1e-5
    npt.assert_allclose(f1, f0, atol=1e-5 * np.abs(f0).max())
    # OpenMM-ML's own ASE support (MLPotential('ase', calculator=...)) through the private-Context evaluator
    calc = P.OpenMMCalculator(system_xml=xml, threads=1)
    spec = PotentialSpec("openmmml", "ase", None, {"calculator": calc})
    ev = P._OpenMMMLEvaluator(spec, [P.atomic_number(s) for s in m.species], True)
    e2, f2 = ev(pos * 10.0, m.box * 10.0)
    assert e2 * P.EV_KJMOL == pytest.approx(e0, rel=1e-5)
    assert np.linalg.norm(f2 * 10 * P.EV_KJMOL - f0) / np.linalg.norm(f0) < 1e-5
    # the PythonForce is serialized as its recipe (small) and evaluates identically after a round trip
    xml_text = openmm.XmlSerializer.serialize(twin.system)
    recipe = re.search(r'function="([0-9a-f]*)" name="anionmotion potential', xml_text).group(1)
    assert 0 < len(recipe) / 2 < 1500            # bytes of the pickled computation
    e3, f3 = energy_forces(openmm.XmlSerializer.deserialize(xml_text), pos, m.box)
    assert e3 == e1 and np.array_equal(f3, f1)
    comp = P.ml_computation(parse_potential(ASE_OPENMM, {"system_xml": xml}), m.species)
    assert len(pickle.dumps(comp)) < 2000


def test_ase_route_same_trajectory_as_native(li2so4, tmp_path):
    m, xml = li2so4
    kw = dict(mode="RC", temperature=900.0, time=0.05, equilibrate=0.02, reequilibrate=0.01, frame_every=5,
              minimize=False, seed=4, threads=1, progress=False, verbose=False)
    runs = {}
    for name, sysm in (("native", m), ("ase", ase_twin(m, xml))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_md(sysm, str(tmp_path / f"{name}.nc"), **kw)
        runs[name] = read_nc(str(tmp_path / f"{name}.nc"))
    (p0, v0, t0, _), (p1, v1, t1, _) = runs["native"], runs["ase"]
    assert p0.shape == p1.shape == (11, 224, 3)
    assert np.abs(p0[-1] - p0[0]).max() > 0.1                 # it moved
    npt.assert_allclose(p1, p0, atol=1e-5)                    # float32 Å: rounding
    npt.assert_allclose(v1, v0, atol=1e-5 * np.abs(v0).max())
    npt.assert_array_equal(t1, t0)


# ------------------------------------------------------------------------------ NVE drift
def test_nve_drift_scales_with_timestep(li2so4):
    """Velocity Verlet's energy error grows as dt²: the fluctuation at 2 fs is ≫ that at 0.5 fs (16× in exact
    arithmetic; 4.7× measured, the CPU platform's single-precision forces set a floor at 0.5 fs)."""
    m, _ = li2so4
    rng = np.random.default_rng(0)
    masses = masses_of(m.system)
    vel = rng.normal(size=m.positions.shape) * np.sqrt(0.0083144626 * 600.0 / masses)[:, None]
    out = {dt: nve_energy_drift(m, "RC", m.positions, vel, m.box, steps=int(round(0.1 / (dt * 1e-3))), timestep=dt,
                                threads=1)
           for dt in (0.5, 2.0)}
    for d in out.values():
        assert d["mode"] == "RC" and d["potential"] == "li2so4" and np.isfinite(d["kJ_mol_per_ps"])
        assert d["n_samples"] >= 21 and d["duration_ps"] == pytest.approx(0.1)
    assert out[2.0]["fluctuation_kJ_mol"] > 3.0 * out[0.5]["fluctuation_kJ_mol"]
    with pytest.raises(OptionError, match="NVE drift needs at least 4 steps"):
        nve_energy_drift(m, "UC", m.positions, vel, m.box, steps=2)


# ------------------------------------------------------------------------------ CHGNet
@pytest.fixture(scope="module")
def chgnet_cell():
    set_torch_threads(1)
    return build_md_system(CIF, "chgnet", device="cpu")


def test_chgnet_modes_hold_constraints(chgnet_cell, tmp_path):
    m = chgnet_cell
    assert [m.species[g[0]] for g in m.groups] == ["P"] * 4 and m.n_atoms == 32
    out = str(tmp_path / "c.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reps = run_md(m, out, mode="all", temperature=1500.0, time=0.028, equilibrate=0.0, reequilibrate=0.004,
                      timestep=2.0, frame_every=2, minimize=False, seed=5, threads=1, progress=False, verbose=False)
    paths = output_paths(out, list(reps))
    annotate_reports(m, {"UC": reps["UC"]}, paths, nve_ps=0.008, timestep=2.0, threads=1, verbose=False)
    uc, rc, rtc = (reps[k] for k in ("UC", "RC", "RTC"))
    for rep in reps.values():
        assert rep["n_frames"] == 8
    # UC rotates; RC and RTC hold every anion's rotation (Kabsch) well below it
    assert uc["rotation_deg"]["max"] > 6.0
    for r in (rc, rtc):
        assert r["rotation_deg"]["max"] < 0.6 * uc["rotation_deg"]["max"] and r["rotation_deg"]["max"] < 6.0
    # RTC tethers the anion centres of mass: RMS within 1.5 × the equipartition value √(3kT/k_com) (0.061 Å here)
    assert rtc["com_displacement_A"]["rms"] < 1.5 * np.sqrt(3 * 0.0083144626 * 1500.0 / 1e6) * 10.0
    # RTVC freezes the anions exactly; the Li still move in every mode
    pos, vel, _, attrs = read_nc(paths["RTVC"])
    anion = np.concatenate(m.groups)
    assert np.all(pos[:, anion] == pos[0, anion]) and np.all(vel[:, anion] == 0)
    assert attrs["constraint_mode"] == "RTVC"
    assert json.loads(attrs["system_parameters"])["potential"]["label"] == "chgnet"
    for rep in reps.values():
        assert rep["other_atoms"]["per_species_msd_A2"]["Li"] > 1e-3
    # the UC report gained the anions, the potential and its NVE drift
    with open(report_path(paths["UC"])) as fh:
        saved = json.load(fh)
    assert [a["formula"] for a in saved["anions"]] == ["PO4"] * 4 and saved["potential"]["label"] == "chgnet"
    d = saved["nve_energy_drift"]
    assert d["potential"] == "chgnet" and np.isfinite(d["kJ_mol_per_ps"]) and d["timestep_fs"] == 2.0


def test_chgnet_resume_after_sigkill(tmp_path):
    out = str(tmp_path / "k.nc")
    cmd = [sys.executable, "-m", "anionmotion", "md", "--structure", CIF, "--potential", "chgnet", "--device", "cpu",
           "--mode", "RTC", "--temperature", "900", "--time", "0.024", "--timestep", "2", "--equilibrate", "0",
           "--reequilibrate", "0.004", "--no-minimize", "--frame-every", "1", "--checkpoint-every", "4",
           "--nve-drift", "0.008", "--threads", "1", "--no-progress", "--out", out]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ck = out + ".state/checkpoint.npz"
    deadline = time.time() + 240
    while time.time() < deadline and p.poll() is None:
        if os.path.exists(ck):
            try:
                if int(np.load(ck)["n_frames"]) >= 4:
                    break
            except (OSError, ValueError, KeyError):   # being replaced
                pass
        time.sleep(0.05)
    assert p.poll() is None, p.stderr.read().decode()
    p.send_signal(signal.SIGKILL)
    p.wait()
    _, _, t_cut, _ = read_nc(out)
    assert 4 <= len(t_cut) < 13
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert "resuming at frame" in r.stderr and "constrained anions: 4 (4 PO4)" in r.stderr
    pos, _, t, attrs = read_nc(out)
    assert len(t) == 13 and attrs["run_complete"] == 1
    npt.assert_allclose(t, np.arange(13) * 0.002, atol=1e-6)   # no frame lost or duplicated
    step = np.abs(np.diff(pos, axis=0)).max(axis=(1, 2))
    assert step.max() < 5 * np.median(step) + 0.05             # no jump at the resume point
    with open(report_path(out)) as fh:
        rep = json.load(fh)
    assert rep["com_displacement_A"]["max"] < 0.1 and rep["rotation_deg"]["max"] < 8.0
    assert rep["potential"]["label"] == "chgnet" and np.isfinite(rep["nve_energy_drift"]["kJ_mol_per_ps"])
    assert len(rep["anions"]) == 4
