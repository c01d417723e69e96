"""RC/RTC with OpenMM's OrientationRestraintForce (``rc_backend="orientation"``) beside the Eckart restraint."""

import json
import math
import os

import netCDF4
import numpy as np
import numpy.testing as npt
import openmm
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anionmotion.errors import OptionError
from anionmotion.md import ModeWarning, apply_mode, build_li2so4, run_md
from anionmotion.md.modes import (RC_BACKENDS, ROT_FORCE_GROUP, check_rc_backend, eckart_coefficients, eckart_energy,
                                  inertia_max, libration_wavenumber, orientation_constant, orientation_energy,
                                  orientation_libration_wavenumber, principal_moments, rotation_angle,
                                  stiffness_for_wavenumbers)
from anionmotion.md.run import RunSettings, report_path, run_mode

R0 = 0.149  # nm
MASSES = np.array([32.0655, 15.9994, 15.9994, 15.9994, 15.9994])
REF = openmm.Platform.getPlatformByName("Reference")


def so4(rot=np.eye(3), centre=(0.0, 0.0, 0.0)):
    s2 = math.sqrt(2.0)
    v = np.array([[s2, 0, 1], [-s2, 0, 1], [0, s2, -1], [0, -s2, -1]]) / math.sqrt(3.0) * R0
    return np.vstack([np.zeros(3), v]) @ rot.T + np.asarray(centre)


def axis_rotation(axis, theta):
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(theta) * K + (1 - math.cos(theta)) * K @ K


def random_rotation(rng):
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def anion_system(masses=MASSES, box_nm=3.0, bonds=True):
    s = openmm.System()
    s.setDefaultPeriodicBoxVectors(openmm.Vec3(box_nm, 0, 0), openmm.Vec3(0, box_nm, 0), openmm.Vec3(0, 0, box_nm))
    for m in masses:
        s.addParticle(float(m))
    if bonds:
        b = openmm.HarmonicBondForce()
        a = openmm.HarmonicAngleForce()
        for o in range(1, len(masses)):
            b.addBond(0, o, R0, 5.5e5)
            for o2 in range(o + 1, len(masses)):
                a.addAngle(o, 0, o2, math.radians(109.47), 1500.0)
        s.addForce(b)
        s.addForce(a)
    return s


def restraint_state(system, positions, box=None):
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), REF)
    if box is not None:
        ctx.setPeriodicBoxVectors(*[openmm.Vec3(*r) for r in box])
    ctx.setPositions(positions)
    s = ctx.getState(getEnergy=True, getForces=True, groups={ROT_FORCE_GROUP})
    return s.getPotentialEnergy()._value, s.getForces(asNumpy=True)._value


# ------------------------------------------------------------------------------------ numpy twin, exact cases
def test_orientation_energy_of_a_known_rotation():
    ref = so4(centre=(0.4, -0.3, 1.2))
    for axis, deg in (([1, 0, 0], 3.0), ([1, 2, -1], 25.0), ([0, 1, 1], 90.0), ([3, -1, 2], 150.0)):
        th = math.radians(deg)
        x = (ref - ref.mean(0)) @ axis_rotation(axis, th).T + ref.mean(0) + np.array([0.7, 0.1, -2.0])
        assert orientation_energy(x, ref, 1234.0) == pytest.approx(2 * 1234.0 * math.sin(th / 2) ** 2, rel=1e-12)
    assert orientation_energy(ref, ref, 1234.0) == pytest.approx(0.0, abs=1e-10)


@settings(deadline=None, max_examples=25)
@given(seed=st.integers(0, 10_000), deg=st.floats(0.5, 170.0))
def test_openmm_orientation_force_matches_numpy_twin(seed, deg):
    rng = np.random.default_rng(seed)
    ref = so4(centre=(1.5, 1.5, 1.5))
    s = anion_system(bonds=False)
    setup = apply_mode(s, ref, np.eye(3) * 3.0, [np.arange(5)], "RC", rc_backend="orientation",
                       check_frequencies=False)
    k = setup.k_orientation[0]
    axis = rng.normal(size=3)
    # an exact rotation by `deg` (energy 2k sin²(θ/2)) and the same with a distortion (numpy twin)
    x = (ref - ref.mean(0)) @ axis_rotation(axis, math.radians(deg)).T + ref.mean(0) + rng.normal(size=3)
    e, f = restraint_state(s, x)
    assert e == pytest.approx(2 * k * math.sin(math.radians(deg) / 2) ** 2, rel=1e-9)
    y = x + rng.normal(scale=0.004, size=x.shape)
    e, f = restraint_state(s, y)
    assert e == pytest.approx(orientation_energy(y, setup.references[0], k), rel=1e-9, abs=1e-9)
    npt.assert_allclose(f.sum(axis=0), 0.0, atol=1e-9 * max(1.0, np.abs(f).max()))  # no force on the COM
    # translation- and box-shift-invariant (no periodic handling needed for a whole anion)
    e2, _ = restraint_state(s, y + np.array([3.0, -6.0, 9.0]))
    assert e2 == pytest.approx(e, rel=1e-9, abs=1e-9)


def test_orientation_constant_gives_the_eckart_line():
    inertia = 8.0 / 3.0 * 15.9994 * R0 ** 2
    ref = so4()
    k_or = orientation_constant(1e4, ref, MASSES)
    assert k_or == pytest.approx(1e4 * inertia ** 2, rel=1e-9)           # spherical top: k_rot I²
    assert orientation_libration_wavenumber(k_or, inertia) == pytest.approx(libration_wavenumber(1e4, inertia))
    assert orientation_libration_wavenumber(k_or, inertia) == pytest.approx(517, abs=3)
    # small rotations: both backends cost the same energy about every axis of a spherical top
    c = eckart_coefficients(ref, MASSES)
    for axis in ([1, 0, 0], [1, -2, 3]):
        x = ref @ axis_rotation(axis, 1e-3).T
        assert orientation_energy(x, ref, k_or) == pytest.approx(eckart_energy(x, c, 1e4), rel=1e-4)
    # an asymmetric top: the highest lines agree (orientation √(k/I_min), Eckart √(k I_max))
    m = np.array([30.97, 15.9994, 18.998, 32.06, 35.45])
    I = principal_moments(ref, m)
    k_or = orientation_constant(1e4, ref, m)
    assert orientation_libration_wavenumber(k_or, I[0]) == pytest.approx(libration_wavenumber(1e4, I[2]), rel=1e-12)
    assert inertia_max(ref, m) == pytest.approx(I[2])
    with pytest.raises(OptionError, match="three non-zero moments of inertia"):
        orientation_constant(1e4, np.array([[0, 0, 0], [0.1, 0, 0], [-0.1, 0, 0]]), np.array([12.0, 16.0, 16.0]))


def test_check_rc_backend():
    assert check_rc_backend("Orientation") == "orientation"
    assert RC_BACKENDS == ("eckart", "orientation")
    with pytest.raises(OptionError, match="invalid rc_backend 'quaternion'; choose one of eckart, orientation"):
        check_rc_backend("quaternion")
    with pytest.raises(OptionError, match="invalid rc_backend"):
        RunSettings(mode="RC", rc_backend="quaternion")


# ------------------------------------------------------------------------------------ apply_mode on the model
@pytest.mark.parametrize("mode", ["RC", "RTC"])
def test_apply_mode_orientation_on_the_model(mode):
    m = build_li2so4(2)
    out = {}
    for backend in RC_BACKENDS:
        s = m.copy_system()
        setup = apply_mode(s, m.positions, m.box, m.groups, mode, templates=m.templates, rc_backend=backend)
        kinds = [type(f).__name__ for f in s.getForces()]
        out[backend] = (setup, kinds, s)
    (se, ke, _), (so, ko, s_or) = out["eckart"], out["orientation"]
    assert ko.count("OrientationRestraintForce") == len(m.groups) and "CustomCompoundBondForce" not in ko
    assert ke.count("CustomCompoundBondForce") == 1 and "OrientationRestraintForce" not in ke
    assert ko.count("CustomCentroidBondForce") == ke.count("CustomCentroidBondForce") == (mode == "RTC")
    assert so.restraint_wavenumbers == pytest.approx(se.restraint_wavenumbers)     # same recorded lines
    assert so.rc_backend == "orientation" and se.rc_backend == "eckart" and se.k_orientation.size == 0
    assert so.k_orientation.shape == (len(m.groups),) and np.all(so.k_orientation > 0)
    assert so.n_dof == se.n_dof and so.cm_motion_remover == se.cm_motion_remover == (mode == "RC")
    for f in s_or.getForces():
        if isinstance(f, openmm.OrientationRestraintForce):
            assert f.getForceGroup() == ROT_FORCE_GROUP and not f.usesPeriodicBoundaryConditions()
    # the restraint is zero at switch-on and exactly the sum of the per-anion numpy twins away from it
    rng = np.random.default_rng(1)
    y = so.positions + rng.normal(scale=0.003, size=so.positions.shape)
    e, f = restraint_state(s_or, y, m.box)
    twin = sum(orientation_energy(y[g], r, k) for g, r, k in zip(so.groups, so.references, so.k_orientation))
    assert e == pytest.approx(twin, rel=1e-9)
    for g in so.groups:
        npt.assert_allclose(f[g].sum(axis=0), 0.0, atol=1e-8 * np.abs(f).max())
    # the wavenumber targets serve both backends: same k_rot, same line
    masses = np.array([m.system.getParticleMass(i)._value for i in range(m.n_atoms)])
    k_rot, _ = stiffness_for_wavenumbers(m.positions, m.box, m.groups, masses, libration_cm1=400.0)
    s = m.copy_system()
    st4 = apply_mode(s, m.positions, m.box, m.groups, mode, templates=m.templates, rc_backend="orientation",
                     k_rot=k_rot)
    assert st4.restraint_wavenumbers["libration_cm1"] == pytest.approx(400.0, rel=1e-3)


# ------------------------------------------------------------------------------------ dynamics
def free_anion(rc_backend, steps=4000, spin=0.0):
    """An isolated SO4 under RC (NVE, no CMMotionRemover), moving at v0, optionally spun up."""
    pos = so4(centre=(1.5, 1.5, 1.5))
    s = anion_system()
    apply_mode(s, pos, np.eye(3) * 3.0, [np.arange(5)], "RC", rc_backend=rc_backend)
    for i in reversed(range(s.getNumForces())):
        if isinstance(s.getForce(i), openmm.CMMotionRemover):
            s.removeForce(i)
    m = MASSES
    rng = np.random.default_rng(7)
    v = rng.normal(scale=0.6, size=(5, 3))
    v -= m @ v / m.sum()
    r = pos - m @ pos / m.sum()
    v += spin * np.cross([0.3, 0.8, -0.5], r)                  # an angular velocity of `spin` rad/ps
    v0 = np.array([1.0, 0.5, -0.3])
    v += v0
    ctx = openmm.Context(s, openmm.VerletIntegrator(0.0005), REF)
    ctx.setPositions(pos)
    ctx.setVelocities(v)
    vcom, com, ang = [], [], []
    for _ in range(steps // 20):
        ctx.getIntegrator().step(20)
        stt = ctx.getState(getPositions=True, getVelocities=True)
        x = stt.getPositions(asNumpy=True)._value
        vv = stt.getVelocities(asNumpy=True)._value
        vcom.append(m @ vv / m.sum())
        com.append(m @ x / m.sum())
        from anionmotion.md.modes import kabsch_rotation
        ang.append(rotation_angle(kabsch_rotation(r, x - com[-1], m)))
    return np.array(vcom), np.array(com), np.array(ang), v0, m @ pos / m.sum()


def test_free_anion_keeps_com_velocity_and_translates_freely():
    vcom, com, ang, v0, com0 = free_anion("orientation", spin=3.0)
    # the restraint does not act on the centre of mass: COM velocity kept, free translation (2 ps at v0)
    npt.assert_allclose(vcom, np.broadcast_to(v0, vcom.shape), rtol=1e-6, atol=1e-6 * np.linalg.norm(v0))
    t = 0.0005 * 20 * np.arange(1, len(com) + 1)
    npt.assert_allclose(com, com0 + t[:, None] * v0, atol=1e-6)
    # spun at 3 rad/ps (free: 344° in 2 ps) it librates around the reference instead
    assert ang.max() < 10.0 and ang.max() > 0.5
    _, _, ang_uc, _, _ = free_anion("eckart", spin=3.0)
    assert ang_uc.max() < 10.0   # the Eckart restraint, same line, holds it as well


def test_run_md_orientation_holds_rotation_and_records_backend(tmp_path):
    out = str(tmp_path / "rc.nc")
    with pytest.warns(ModeWarning, match="shorter than the 5 ps"):
        reps = run_md(build_li2so4(2), out, mode="RC", temperature=900.0, time=0.6, equilibrate=0.3,
                      reequilibrate=0.3, frame_every=10, seed=2, threads=1, progress=False, verbose=False,
                      rc_backend="orientation")
    rep = reps["RC"]
    assert rep["settings"]["rc_backend"] == "orientation"
    assert rep["rotation_deg"]["mean"] < 5.0 and rep["rotation_deg"]["max"] < 15.0
    assert "rotation (orientation)" in rep["restraint_energy"]
    assert rep["restraint_wavenumbers_cm1"]["libration_cm1"] == pytest.approx(516.7, abs=1.0)
    with netCDF4.Dataset(out) as ds:
        assert ds.getncattr("rc_backend") == "orientation"
        assert "OrientationRestraintForce" in ds.getncattr("restraints")
        assert json.loads(ds.getncattr("run_settings"))["rc_backend"] == "orientation"


def test_old_checkpoint_without_backend_resumes_as_eckart(tmp_path):
    out = str(tmp_path / "old.nc")
    s = RunSettings(mode="RC", temperature=900.0, time=0.3, equilibrate=0.1, reequilibrate=0.1, frame_every=5,
                    seed=3)
    with pytest.warns(ModeWarning):
        with pytest.raises(RuntimeError, match="injected failure after 20 frames"):
            run_mode(build_li2so4(2), out, s, threads=1, progress=False, verbose=False, checkpoint_every=10,
                     _fail_after=20)
    params = os.path.join(out + ".state", "params.json")
    old = json.load(open(params))
    del old["settings"]["rc_backend"]                      # as written before the field existed
    json.dump(old, open(params, "w"))
    rep = run_mode(build_li2so4(2), out, s, threads=1, progress=False, verbose=False, checkpoint_every=10)
    assert rep["n_frames"] == 61 and rep["settings"]["rc_backend"] == "eckart"
    assert "rotation (Eckart)" in rep["restraint_energy"]


def test_cli_rc_backend(tmp_path, capsys):
    from anionmotion.cli import main

    out = str(tmp_path / "cli.nc")
    with pytest.raises(SystemExit) as exc:
        main(["md", "--system", "li2so4", "--rc-backend", "quaternion", "--out", out])
    assert exc.value.code == 2
    assert "--rc-backend: invalid choice: 'quaternion'" in capsys.readouterr().err
    with pytest.warns(ModeWarning):
        rc = main(["md", "--system", "li2so4", "--cells", "2", "--mode", "RTC", "--rc-backend", "orientation",
                   "--temperature", "800", "--time", "0.1", "--equilibrate", "0.1", "--reequilibrate", "0.05",
                   "--threads", "1", "--no-progress", "--out", out])
    assert rc == 0
    rep = json.load(open(report_path(out)))
    assert rep["settings"]["rc_backend"] == "orientation" and rep["rotation_deg"]["max"] < 15.0
    assert set(rep["restraint_energy"]) == {"rotation (orientation)", "COM tether"}


def test_report_rotation_percentiles():
    """The constraint report's angle percentiles are those of the per-anion, per-frame Kabsch angles."""
    from anionmotion.md.report import ConstraintAccumulator, format_report

    ref = so4(centre=(5.0, 5.0, 5.0)) * 10.0          # Å
    rng = np.random.default_rng(4)
    deg = rng.uniform(0.0, 40.0, size=(30, 2))         # frames × anions
    pos = np.empty((30, 10, 3))
    for f in range(30):
        for a in range(2):
            c = ref.mean(0) + 3.0 * a
            pos[f, 5 * a:5 * a + 5] = (ref - ref.mean(0)) @ axis_rotation(rng.normal(size=3),
                                                                          math.radians(deg[f, a])).T + c
    refs = [ref, ref + 3.0]
    acc = ConstraintAccumulator([np.arange(5), np.arange(5, 10)], refs, np.tile(MASSES, 2), 27, np.tile(MASSES, 2))
    acc.add(pos[:17], None, np.tile(np.eye(3) * 50.0, (17, 1, 1)))
    acc.add(pos[17:], None, np.tile(np.eye(3) * 50.0, (13, 1, 1)))
    r = acc.result()["rotation_deg"]
    for key, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        assert r[key] == pytest.approx(np.percentile(deg, q), abs=1e-6)
    assert r["max"] == pytest.approx(deg.max(), abs=1e-6) and r["mean"] == pytest.approx(deg.mean(), abs=1e-6)
    assert f"95 % below {r['p95']:.2f}°" in format_report({"rotation_deg": r})


def eckart_vibration(ref, m, rng):
    """A random internal displacement satisfying the Eckart conditions (no mass-weighted translation/rotation)."""
    a = ref - m @ ref / m.sum()
    sq = np.sqrt(m)[:, None]
    rigid = [sq * np.eye(3)[k] for k in range(3)] + [sq * np.cross(np.eye(3)[k], a) for k in range(3)]
    B = np.linalg.qr(np.array([r.ravel() for r in rigid]).T)[0]          # orthonormal rigid-body basis
    q = rng.normal(size=ref.size)
    q -= B @ (B.T @ q)
    return (q.reshape(-1, 3) / sq)


@pytest.mark.parametrize("ligand_masses", [(15.9994,) * 4, (15.9994, 15.9994, 15.9994, 18.998),
                                           (1.008, 15.9994, 15.9994, 15.9994)])
def test_internal_vibrations_untouched_only_by_eckart_for_unequal_masses(ligand_masses):
    """The Eckart restraint never sees an Eckart-conforming vibration; the (unweighted) orientation restraint sees
    none for SO4 (equal ligands around the centre) but stiffens one of a PO3F- or HPO4-like anion (energy ∝ ε²)."""
    m = np.array((30.97,) + ligand_masses)
    ref = so4()
    d = eckart_vibration(ref, m, np.random.default_rng(11))
    d /= np.abs(d).max()
    c = eckart_coefficients(ref, m)
    k_or = orientation_constant(1e4, ref, m)
    scale = 0.5 * k_or * 1e-6                              # k/2 ε² at ε = 1e-3 nm
    e_or = [orientation_energy(ref + eps * d, ref, k_or) for eps in (1e-3, 1e-4)]
    for eps in (1e-3, 1e-2):
        assert eckart_energy(ref + eps * d, c, 1e4) < 1e-18
    if len(set(ligand_masses)) == 1:
        assert abs(e_or[0]) < 1e-8 * scale                 # no harmonic term (rounding only)
    else:
        assert e_or[0] > 1e-2 * scale
        assert e_or[1] == pytest.approx(e_or[0] / 100.0, rel=1e-2)   # harmonic in ε: it stiffens the vibration


def test_orientation_run_resumes_from_its_serialized_system(tmp_path):
    """The mode's System (108 → here 32 OrientationRestraintForces) is read back from XML on resume."""
    out = str(tmp_path / "or.nc")
    s = RunSettings(mode="RTC", temperature=900.0, time=0.3, equilibrate=0.1, reequilibrate=0.1, frame_every=5,
                    seed=5, rc_backend="orientation")
    with pytest.warns(ModeWarning):
        with pytest.raises(RuntimeError, match="injected failure after 25 frames"):
            run_mode(build_li2so4(2), out, s, threads=1, progress=False, verbose=False, checkpoint_every=10,
                     _fail_after=25)
    xml = open(os.path.join(out + ".state", "system.xml")).read()
    assert xml.count("<Force ") and xml.count('type="OrientationRestraintForce"') == 32
    rep = run_mode(build_li2so4(2), out, s, threads=1, progress=False, verbose=False, checkpoint_every=10)
    assert rep["n_frames"] == 61 and rep["rotation_deg"]["max"] < 15.0 and rep["com_displacement_A"]["rms"] < 0.1
    with netCDF4.Dataset(out) as ds:
        t = np.asarray(ds["time"][:])
    npt.assert_allclose(t, 0.005 * np.arange(61), atol=1e-6)
