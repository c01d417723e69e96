"""Constrained MD runs: dynamics of the modes, output, resume, user systems, CLI (SPEC §8)."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import netCDF4
import numpy as np
import numpy.testing as npt
import openmm
import pytest

import anionmotion
from anionmotion.errors import OptionError
from anionmotion.md import ModeWarning, apply_mode, build_li2so4, load_system, run_md
from anionmotion.md.run import report_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
R0 = 0.149


def read_nc(path):
    with netCDF4.Dataset(path) as ds:
        return (np.asarray(ds["coordinates"][:], dtype=np.float64), np.asarray(ds["time"][:], dtype=np.float64),
                np.asarray(ds["velocities"][:], dtype=np.float64), {k: ds.getncattr(k) for k in ds.ncattrs()})


# ------------------------------------------------------------------------------ free isolated anion under RC
def free_so4(mode, steps=3000):
    s2 = math.sqrt(2.0)
    lig = np.array([[s2, 0, 1], [-s2, 0, 1], [0, s2, -1], [0, -s2, -1]]) / math.sqrt(3.0) * R0
    pos = np.vstack([np.zeros(3), lig]) + 1.5
    m = np.array([32.0655] + [15.9994] * 4)
    s = openmm.System()
    s.setDefaultPeriodicBoxVectors(openmm.Vec3(3, 0, 0), openmm.Vec3(0, 3, 0), openmm.Vec3(0, 0, 3))
    for x in m:
        s.addParticle(x)
    b = openmm.HarmonicBondForce()
    a = openmm.HarmonicAngleForce()
    for o in range(1, 5):
        b.addBond(0, o, R0, 5.5e5)
        for o2 in range(o + 1, 5):
            a.addAngle(o, 0, o2, math.radians(109.47), 1500.0)
    s.addForce(b)
    s.addForce(a)
    apply_mode(s, pos, np.eye(3) * 3.0, [np.arange(5)], mode)
    # an isolated molecule: no CMMotionRemover, so the COM velocity is the restraint's business alone
    for i in reversed(range(s.getNumForces())):
        if isinstance(s.getForce(i), openmm.CMMotionRemover):
            s.removeForce(i)
    rng = np.random.default_rng(7)
    v = rng.normal(scale=0.6, size=(5, 3))
    v -= m @ v / m.sum()                                   # no COM motion
    r = pos - m @ pos / m.sum()
    L = np.sum(m[:, None] * np.cross(r, v), axis=0)
    inertia = np.eye(3) * np.sum(m * np.sum(r * r, 1)) - np.einsum("n,ni,nj->ij", m, r, r)
    v -= np.cross(np.linalg.solve(inertia, L), r)          # no angular momentum: pure vibration
    v0 = np.array([1.0, 0.5, -0.3])
    v += v0
    ctx = openmm.Context(s, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(pos)
    ctx.setVelocities(v)
    bonds, vcom = [], []
    for _ in range(steps // 10):
        ctx.getIntegrator().step(10)
        st = ctx.getState(getPositions=True, getVelocities=True)
        x = st.getPositions(asNumpy=True)._value
        vv = st.getVelocities(asNumpy=True)._value
        bonds.append(np.linalg.norm(x[1:] - x[0], axis=1))
        vcom.append(m @ vv / m.sum())
    return np.array(bonds), np.array(vcom), v0


def test_free_anion_rc_keeps_com_velocity_and_bond_distribution():
    b_uc, _, _ = free_so4("UC")
    b_rc, vcom, v0 = free_so4("RC")
    npt.assert_allclose(vcom, np.broadcast_to(v0, vcom.shape), rtol=1e-6, atol=1e-6 * np.linalg.norm(v0))
    assert b_rc.mean() == pytest.approx(b_uc.mean(), rel=1e-3)
    assert b_rc.std() == pytest.approx(b_uc.std(), rel=0.05)
    assert b_uc.std() > 1e-3  # it really vibrates


# ------------------------------------------------------------------------------ the crystal, four modes
@pytest.mark.slow
def test_crystal_four_modes(tmp_path):
    out = str(tmp_path / "run.nc")
    # friction 5/ps: the temperature decorrelates in ~0.1 ps, so 1.5 ps of 224 atoms estimate it to ~1.5 %
    with pytest.warns(ModeWarning, match="re-equilibration of 3.0 ps"):
        reps = run_md(build_li2so4(2), out, mode="all", temperature=1000.0, time=1.5, equilibrate=2.0,
                      reequilibrate=3.0, frame_every=10, seed=2, friction=5.0, threads=2, progress=False,
                      verbose=False)
    assert set(reps) == {"UC", "RC", "RTC", "RTVC"}
    temps = {m: rep["temperature_K"]["mean"] for m, rep in reps.items()}
    for m, rep in reps.items():
        assert os.path.exists(tmp_path / f"run_{m}.nc") and os.path.exists(tmp_path / f"run_{m}.constraints.json")
        assert rep["n_frames"] == 151
        # a few %: 4 % with all atoms; 7 % in RTVC, where only the 64 Li carry the 192 DOF (10 % per frame)
        assert abs(temps[m] / 1000.0 - 1.0) < (0.07 if m == "RTVC" else 0.04), temps
        pos, times, vel, attrs = read_nc(str(tmp_path / f"run_{m}.nc"))
        assert attrs["constraint_mode"] == m and attrs["run_complete"] == 1 and attrs["seed"] == 2
        npt.assert_allclose(np.diff(times), 0.01, rtol=1e-4)
        # Li always moves (nothing else frozen)
        assert rep["other_atoms"]["per_species_msd_A2"]["Li"] > 0.05
    assert reps["UC"]["rotation_deg"]["mean"] > 15.0
    assert reps["RC"]["rotation_deg"]["mean"] < 5.0
    assert reps["RTC"]["rotation_deg"]["mean"] < 5.0
    assert reps["RTC"]["com_displacement_A"]["rms"] < 0.1
    assert reps["RC"]["com_displacement_A"]["rms"] > reps["RTC"]["com_displacement_A"]["rms"]
    # equipartition of the restraints: 3/2 kT per anion within 25 %
    assert reps["RC"]["restraint_energy"]["rotation (Eckart)"]["per_anion_over_1.5kT"] == pytest.approx(1.0, abs=0.25)
    assert reps["RTC"]["restraint_energy"]["COM tether"]["per_anion_over_1.5kT"] == pytest.approx(1.0, abs=0.25)
    # RC does not freeze the internal vibrations
    assert reps["RC"]["bond_A"]["fluctuation"] == pytest.approx(reps["UC"]["bond_A"]["fluctuation"], rel=0.15)
    # RTVC moves nothing of the anions
    pos, _, vel, _ = read_nc(str(tmp_path / "run_RTVC.nc"))
    m = build_li2so4(2)
    anion = np.concatenate(m.groups)
    assert np.all(pos[:, anion] == pos[0, anion]) and np.all(vel[:, anion] == 0)
    assert reps["RTVC"]["rotation_deg"]["max"] < 1e-3 and reps["RTVC"]["com_displacement_A"]["max"] < 1e-4
    # anionmotion reads the mode back
    traj = anionmotion.open(str(tmp_path / "run_RC.nc"))
    assert traj.metadata["constraint_mode"] == "RC" and traj.has_velocities
    assert sorted(set(traj.species)) == ["Li", "O", "S"]
    assert not os.path.exists(out + ".state")


# ------------------------------------------------------------------------------ resume
SHORT = dict(mode="RC", temperature=900.0, time=0.4, equilibrate=0.1, reequilibrate=0.1, frame_every=5, seed=3,
             threads=1, progress=False, verbose=False, checkpoint_every=10)


def short_run(out, **kw):
    from anionmotion.md.run import RunSettings, run_mode

    args = dict(SHORT, **kw)
    fail = args.pop("_fail_after", None)
    s = RunSettings(mode=args["mode"], temperature=args["temperature"], time=args["time"],
                    equilibrate=args["equilibrate"], reequilibrate=args["reequilibrate"],
                    frame_every=args["frame_every"], seed=args["seed"])
    with pytest.warns(ModeWarning, match="shorter than the 5 ps") if args["reequilibrate"] < 5 and \
            not os.path.exists(out) else _nullcontext():
        return run_mode(build_li2so4(2), out, s, threads=1, progress=False, verbose=False,
                        checkpoint_every=args["checkpoint_every"], overwrite=args.get("overwrite", False),
                        _fail_after=fail)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_resume_after_failure_gives_same_frames(tmp_path):
    full = str(tmp_path / "full.nc")
    short_run(full)
    pos_f, t_f, _, _ = read_nc(full)
    assert len(t_f) == 81

    out = str(tmp_path / "cut.nc")
    with pytest.raises(RuntimeError, match="injected failure after 33 frames"):
        short_run(out, _fail_after=33)
    _, t_partial, _, attrs = read_nc(out)
    assert attrs["run_complete"] == 0 and len(t_partial) == 34
    assert os.path.exists(out + ".state/checkpoint.npz")
    with pytest.raises(OptionError, match=r"partial run with different settings \(temperature\)"):
        short_run(out, temperature=950.0)
    rep = short_run(out)  # same command: resumes at the checkpoint (frame 30)
    pos, t, vel, attrs = read_nc(out)
    assert len(t) == len(t_f) == 81 and attrs["run_complete"] == 1
    npt.assert_allclose(t, t_f, rtol=1e-6)
    assert np.all(np.diff(t) > 0)
    # no jump at the resume point: frame-to-frame displacements there look like everywhere else
    step = np.abs(np.diff(pos, axis=0)).max(axis=(1, 2))
    assert step.max() < 5 * np.median(step) + 0.05
    # the System was rebuilt identically: the restraint still holds after the resume
    assert rep["rotation_deg"]["mean"] < 5.0
    assert not os.path.exists(out + ".state")
    with pytest.raises(OptionError, match="output file exists and is complete; refusing to overwrite"):
        short_run(out)


def test_refuses_foreign_output(tmp_path):
    out = tmp_path / "x.nc"
    out.write_bytes(b"not ours")
    with pytest.raises(OptionError, match="not a resumable anionmotion run"):
        short_run(str(out))


@pytest.mark.slow
def test_sigkill_and_resume_by_command(tmp_path):
    out = str(tmp_path / "k.nc")
    cmd = [sys.executable, "-m", "anionmotion", "md", "--system", "li2so4", "--cells", "2", "--mode", "RTC",
           "--temperature", "900", "--time", "3", "--equilibrate", "0.2", "--reequilibrate", "0.2",
           "--frame-every", "5", "--checkpoint-every", "50", "--threads", "1", "--no-progress", "--out", out]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = out + ".state/checkpoint.npz"
    deadline = time.time() + 120
    while time.time() < deadline:
        if os.path.exists(ck) and int(np.load(ck)["n_frames"]) >= 150:
            break
        time.sleep(0.2)
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert os.path.exists(out)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "resuming at frame" in r.stderr
    _, t, _, attrs = read_nc(out)
    assert len(t) == 601 and attrs["run_complete"] == 1
    npt.assert_allclose(t, np.arange(601) * 0.005, atol=1e-5)
    rep = json.load(open(report_path(out)))
    assert rep["com_displacement_A"]["rms"] < 0.1 and rep["rotation_deg"]["mean"] < 5


# ------------------------------------------------------------------------------ user systems
def write_user_system(tmp_path):
    from openmm import app, unit

    m = build_li2so4(2)
    top = app.Topology()
    chain = top.addChain()
    anion_of = {int(a): g for g, grp in enumerate(m.groups) for a in grp}
    res = {}
    for i, s in enumerate(m.species):
        g = anion_of.get(i)
        key = ("SO4", g) if g is not None else ("LI", i)
        if key not in res:
            res[key] = top.addResidue(key[0], chain)
        top.addAtom(f"{s}{i % 4}", app.Element.getBySymbol(s), res[key])
    top.setPeriodicBoxVectors(m.box * unit.nanometer)
    pdb = str(tmp_path / "m.pdb")
    with open(pdb, "w") as fh:
        app.PDBFile.writeFile(top, m.positions * unit.nanometer, fh)
    xml = str(tmp_path / "m.xml")
    with open(xml, "w") as fh:
        fh.write(openmm.XmlSerializer.serialize(m.system))
    return m, xml, pdb


def test_load_user_system_by_residue_and_by_distance(tmp_path):
    m, xml, pdb = write_user_system(tmp_path)
    u = load_system(xml, pdb, anion_residues=["SO4"])
    assert len(u.groups) == 32
    assert [g.tolist() for g in u.groups] == [g.tolist() for g in m.groups]
    npt.assert_allclose(u.box, m.box, atol=1e-4)
    assert list(u.species) == list(m.species)
    u2 = load_system(xml, pdb, centre="S", ligand="O", cutoff=2.0)
    assert [sorted(g.tolist()) for g in u2.groups] == [sorted(g.tolist()) for g in m.groups]
    assert all(m.species[g[0]] == "S" for g in u2.groups)
    u3 = load_system(xml, pdb, anion_residues=["SO4"], centre="S")
    assert [g.tolist() for g in u3.groups] == [g.tolist() for g in m.groups]
    with pytest.raises(OptionError, match="no residue named XYZ; residues present: LI, SO4"):
        load_system(xml, pdb, anion_residues=["XYZ"])
    with pytest.raises(OptionError, match="say which atoms are the anions"):
        load_system(xml, pdb)
    other = build_li2so4(3)
    xml3 = str(tmp_path / "m3.xml")
    with open(xml3, "w") as fh:
        fh.write(openmm.XmlSerializer.serialize(other.system))
    with pytest.raises(OptionError, match="has 224 atoms but .* has 756 particles"):
        load_system(xml3, pdb, anion_residues=["SO4"])
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_system(str(tmp_path / "none.xml"), pdb)
    # PDBx/mmCIF works the same way
    from openmm import app

    cif = str(tmp_path / "m.cif")
    st = app.PDBFile(pdb)
    with open(cif, "w") as fh:
        app.PDBxFile.writeFile(st.topology, st.positions, fh)
    u4 = load_system(xml, cif, anion_residues=["SO4"])
    assert [g.tolist() for g in u4.groups] == [g.tolist() for g in m.groups]
    npt.assert_allclose(u4.positions, m.positions, atol=2e-4)
    assert repr(u4) == "MDSystem('m.xml', 224 atoms (S32 O128 Li64), 32 anions)"


# ------------------------------------------------------------------------------ CLI
def test_cli_mode_error_lists_modes(tmp_path, capsys):
    from anionmotion.cli import main

    assert main(["md", "--system", "li2so4", "--mode", "XC", "--out", str(tmp_path / "a.nc")]) == 2
    err = capsys.readouterr().err
    assert "invalid --mode 'XC'; choose one of UC, RC, RTC, RTVC, all" in err
    assert main(["md", "--system", "nacl", "--out", str(tmp_path / "a.nc")]) == 2
    assert "invalid --system 'nacl'; choose one of li2so4" in capsys.readouterr().err
    assert main(["md", "--out", str(tmp_path / "a.nc")]) == 2
    assert "no system: give --system li2so4" in capsys.readouterr().err
    assert main(["md", "--system", "li2so4", "--thermostat", "berendsen", "--out", str(tmp_path / "a.nc")]) == 2
    assert "invalid thermostat 'berendsen'; choose one of langevin, nose-hoover" in capsys.readouterr().err
    assert main(["md", "--system", "li2so4", "--platform", "Metal", "--cells", "2", "--time", "0.01",
                 "--equilibrate", "0", "--out", str(tmp_path / "b.nc")]) == 2
    assert "platform 'Metal' is not available here; available:" in capsys.readouterr().err


def test_cli_nose_hoover_short_run(tmp_path):
    from anionmotion.cli import main

    out = str(tmp_path / "nh.nc")
    with pytest.warns(ModeWarning):
        rc = main(["md", "--system", "li2so4", "--cells", "2", "--mode", "RTVC", "--thermostat", "nose-hoover",
                   "--temperature", "800", "--time", "0.1", "--equilibrate", "0.1", "--reequilibrate", "0.05",
                   "--threads", "1", "--no-progress", "--out", out])
    assert rc == 0
    pos, t, vel, attrs = read_nc(out)
    assert len(t) == 21 and attrs["thermostat"] == "nose-hoover" and attrs["constraint_mode"] == "RTVC"
    rep = json.load(open(report_path(out)))
    assert rep["rotation_deg"]["max"] == pytest.approx(0.0, abs=1e-3)


def test_example_data_is_packaged():
    from anionmotion import _example
    from anionmotion._example import example_path, example_report_path

    p = example_path()
    # the shipped example data stay small (issue 11: at most 15 MB)
    folder = os.path.dirname(p)
    shipped = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.endswith(".nc"))
    assert shipped <= 15_000_000, f"{shipped / 1e6:.1f} MB of example trajectories in {folder}"
    pos, t, vel, attrs = read_nc(p)
    assert attrs["constraint_mode"] == "UC" and attrs["temperature_K"] == 1000.0
    assert attrs["coordinate_style"] == "unwrapped"
    assert pos.shape[1] == 756 and pos.shape[0] >= 301 and np.abs(vel).max() > 0   # 108 Li2SO4 (3×3×3 cells)
    rep = json.load(open(example_report_path()))
    assert rep["rotation_deg"]["mean"] > 30  # the anions rotate
    for mode, name in getattr(_example, "EXAMPLE_FILES", {"UC": _example.EXAMPLE_NAME}).items():
        traj = anionmotion.open(os.path.join(folder, name))
        assert traj.metadata["constraint_mode"] == mode and traj.n_atoms == 756


# ------------------------------------------------------------------------------ OpenMM reporter
def test_netcdf_reporter_with_simulation(tmp_path):
    from openmm import app, unit

    from anionmotion.md.reporter import NetCDFReporter

    m, xml, pdb = write_user_system(tmp_path)
    top = app.PDBFile(pdb).topology
    integ = openmm.VerletIntegrator(0.001)
    sim = app.Simulation(top, m.copy_system(), integ, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    sim.context.setPositions(m.positions)
    sim.context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    out = str(tmp_path / "r.nc")
    rep = NetCDFReporter(out, 5, metadata={"constraint_mode": "UC"})
    sim.reporters.append(rep)
    sim.step(20)
    rep.close()
    pos, t, vel, attrs = read_nc(out)
    assert pos.shape == (4, 224, 3) and attrs["constraint_mode"] == "UC"
    npt.assert_allclose(t, [0.005, 0.010, 0.015, 0.020], rtol=1e-5)
    st = sim.context.getState(getPositions=True, getVelocities=True)
    npt.assert_allclose(vel[-1], st.getVelocities(asNumpy=True).value_in_unit(unit.angstrom / unit.picosecond),
                        rtol=1e-5, atol=1e-4)
    with netCDF4.Dataset(out) as ds:
        assert [b"".join(r).decode().strip() for r in ds["element"][:3].tolist()] == ["S", "O", "O"]
    with pytest.raises(OptionError, match="reportInterval must be a positive number of steps"):
        NetCDFReporter(str(tmp_path / "x.nc"), 0)
    bad = NetCDFReporter(str(tmp_path / "y.nc"), 5, atomSubset=[0, 999])
    sim.reporters[:] = [bad]
    with pytest.raises(ValueError, match="atomSubset has index 999 outside 0..223"):
        sim.step(5)


def test_killed_while_reporting_finishes_the_report(tmp_path, monkeypatch):
    from anionmotion.md import report as report_mod

    out = str(tmp_path / "r.nc")
    real = report_mod.ConstraintAccumulator.result

    def boom(self, **kw):
        raise RuntimeError("killed while reporting")

    monkeypatch.setattr(report_mod.ConstraintAccumulator, "result", boom)
    with pytest.raises(RuntimeError, match="killed while reporting"):
        short_run(out, time=0.1)
    assert not os.path.exists(report_path(out)) and os.path.exists(out + ".state")
    monkeypatch.setattr(report_mod.ConstraintAccumulator, "result", real)
    rep = short_run(out, time=0.1)
    assert rep["n_frames"] == 21 and rep["ns_per_day"] is None
    assert os.path.exists(report_path(out)) and not os.path.exists(out + ".state")


def test_mode_all_skips_complete_outputs_and_refuses_when_all_done(tmp_path, capsys):
    out = str(tmp_path / "s.nc")
    kw = dict(mode="all", temperature=900.0, time=0.05, equilibrate=0.05, reequilibrate=0.05, frame_every=5,
              threads=1, progress=False)
    with pytest.warns(ModeWarning):
        reps = run_md(build_li2so4(2), out, verbose=False, **kw)
    assert sorted(reps) == ["RC", "RTC", "RTVC", "UC"]
    os.unlink(tmp_path / "s_RTVC.nc")
    os.unlink(tmp_path / "s_RTVC.constraints.json")
    with pytest.warns(ModeWarning):
        reps2 = run_md(build_li2so4(2), out, verbose=True, **kw)
    err = capsys.readouterr().err
    assert "s_UC.nc is complete with these settings; skipped" in err and "[RTVC]: minimising" in err
    assert reps2["UC"] == json.load(open(tmp_path / "s_UC.constraints.json"))
    assert read_nc(str(tmp_path / "s_RTVC.nc"))[3]["run_complete"] == 1
    with pytest.raises(OptionError, match="all outputs exist and are complete; refusing to overwrite"):
        run_md(build_li2so4(2), out, verbose=False, **kw)
    with pytest.raises(OptionError, match="output file exists and is complete"):
        run_md(build_li2so4(2), out, verbose=False, **dict(kw, temperature=950.0))


def test_cli_wavenumber_targets(tmp_path, capsys):
    from anionmotion.cli import main

    out = str(tmp_path / "w.nc")
    assert main(["md", "--system", "li2so4", "--k-rot", "1e4", "--libration-cm1", "400", "--out", out]) == 2
    assert "give --k-rot or --libration-cm1, not both" in capsys.readouterr().err
    with pytest.warns(ModeWarning):
        assert main(["md", "--system", "li2so4", "--cells", "2", "--mode", "RTC", "--libration-cm1", "400",
                     "--tether-cm1", "450", "--time", "0.02", "--equilibrate", "0.02", "--reequilibrate", "0.02",
                     "--threads", "1", "--no-progress", "--out", out]) == 0
    rep = json.load(open(report_path(out)))
    assert rep["restraint_wavenumbers_cm1"]["libration_cm1"] == pytest.approx(400.0, rel=1e-6)
    assert rep["restraint_wavenumbers_cm1"]["tether_cm1"] == pytest.approx(450.0, rel=1e-6)
