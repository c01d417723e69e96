"""Constraint modes without dynamics: Eckart energy, COM tether, RTVC masses, mode checks (SPEC §8)."""

import math

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anionmotion.errors import OptionError
from anionmotion.md.modes import (COM_FORCE_GROUP, MODES, ROT_FORCE_GROUP, apply_mode, check_groups, check_mode,
                                  com_tether_energy, eckart_coefficients, eckart_energy, fit_template, group_coms,
                                  kabsch_rotation, libration_wavenumber, make_whole, rotation_angle,
                                  tether_wavenumber)

import openmm  # noqa: E402  (in the test extra: the MD tests must run)
from anionmotion.md.systems import build_li2so4  # noqa: E402

R0 = 0.149  # nm
MASSES = np.array([32.0655, 15.9994, 15.9994, 15.9994, 15.9994])


def so4(rot=np.eye(3), centre=(0.0, 0.0, 0.0)):
    s2 = math.sqrt(2.0)
    v = np.array([[s2, 0, 1], [-s2, 0, 1], [0, s2, -1], [0, -s2, -1]]) / math.sqrt(3.0) * R0
    return np.vstack([np.zeros(3), v]) @ rot.T + np.asarray(centre)


def random_rotation(rng):
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def axis_rotation(axis, theta):
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(theta) * K + (1 - math.cos(theta)) * K @ K


# ------------------------------------------------------------------------------------------- pure numpy
def test_eckart_coefficients_sum_to_zero():
    c = eckart_coefficients(so4(centre=(1.0, 2.0, 3.0)), MASSES)
    npt.assert_allclose(c.sum(axis=0), 0.0, atol=1e-15)
    npt.assert_allclose(c[0], 0.0, atol=1e-12)  # the centre sits at the COM of a regular tetrahedron


def test_eckart_energy_zero_at_reference():
    ref = so4(centre=(0.3, -0.2, 1.1))
    assert eckart_energy(ref, eckart_coefficients(ref, MASSES), 1e4) == pytest.approx(0.0, abs=1e-20)


@settings(deadline=None, max_examples=50)
@given(shift=st.lists(st.floats(-50, 50), min_size=3, max_size=3), seed=st.integers(0, 10_000))
def test_eckart_energy_translation_invariant(shift, seed):
    rng = np.random.default_rng(seed)
    ref = so4()
    c = eckart_coefficients(ref, MASSES)
    x = so4(random_rotation(rng)) + rng.normal(scale=0.005, size=(5, 3))
    e0 = eckart_energy(x, c, 1e4)
    e1 = eckart_energy(x + np.asarray(shift), c, 1e4)
    assert e1 == pytest.approx(e0, rel=1e-9, abs=1e-9)


def test_eckart_small_rotation_is_harmonic_with_inertia():
    # E = k/2 θ² |I n|² for a small rotation θ about n; for a spherical top |I n| = I
    ref = so4()
    c = eckart_coefficients(ref, MASSES)
    inertia = 8.0 / 3.0 * 15.9994 * R0 ** 2  # 4 O at R0: I = 2/3 Σ m r²
    for axis in ([1, 0, 0], [0, 1, 1], [1, -2, 3]):
        theta = 1e-3
        e = eckart_energy(ref @ axis_rotation(axis, theta).T, c, 1e4)
        assert e == pytest.approx(0.5 * 1e4 * theta ** 2 * inertia ** 2, rel=1e-5)
    # libration line of the default k_rot: ≈ 517 cm⁻¹ (MD-DESIGN)
    assert libration_wavenumber(1e4, inertia) == pytest.approx(517, abs=3)
    assert tether_wavenumber(1e6, MASSES.sum()) == pytest.approx(541, abs=3)


@settings(deadline=None, max_examples=30)
@given(seed=st.integers(0, 10_000))
def test_kabsch_recovers_rotation(seed):
    rng = np.random.default_rng(seed)
    R = random_rotation(rng)
    P = so4()
    P = P - MASSES @ P / MASSES.sum()
    npt.assert_allclose(kabsch_rotation(P, P @ R.T, MASSES), R, atol=1e-10)
    angle = rotation_angle(R)
    assert 0.0 <= angle <= 180.0


def test_rotation_angle_of_axis_rotation():
    for deg in (0.0, 5.0, 90.0, 179.0):
        assert rotation_angle(axis_rotation([1, 2, 3], math.radians(deg))) == pytest.approx(deg, abs=1e-6)


def test_fit_template_places_ideal_geometry_on_anion():
    rng = np.random.default_rng(3)
    R = random_rotation(rng)
    cur = so4(R, centre=(1, 1, 1)) + rng.normal(scale=0.003, size=(5, 3))
    fitted = fit_template(so4(), cur, MASSES)
    npt.assert_allclose(MASSES @ fitted / MASSES.sum(), MASSES @ cur / MASSES.sum(), atol=1e-12)
    npt.assert_allclose(np.linalg.norm(fitted[1:] - fitted[0], axis=1), R0, rtol=1e-12)
    assert np.max(np.linalg.norm(fitted - cur, axis=1)) < 0.02


def test_make_whole_undoes_box_wrapping():
    box = np.diag([1.0, 1.2, 1.4])
    mol = so4(centre=(0.98, 0.05, 1.35))
    wrapped = mol - np.floor(mol @ np.linalg.inv(box)) @ box
    assert np.ptp(wrapped[:, 0]) > 0.5  # split by the box
    npt.assert_allclose(make_whole(wrapped, box, [np.arange(5)]), mol - np.floor(mol[0] @ np.linalg.inv(box)) @ box,
                        atol=1e-12)


def test_make_whole_triclinic():
    box = np.array([[1.0, 0, 0], [0.3, 1.1, 0], [0.2, 0.25, 1.2]])
    mol = so4(centre=(0.02, 0.01, 0.03))
    shifted = mol.copy()
    shifted[1] += box[0] - box[2]
    shifted[3] += box[1]
    npt.assert_allclose(make_whole(shifted, box, [np.arange(5)]), mol, atol=1e-12)


def test_com_tether_zero_after_box_shift_numpy():
    box = np.diag([1.0, 1.0, 1.0]) * 2.1
    mol = so4(centre=(0.5, 0.5, 0.5))
    ref = group_coms(mol, MASSES, [np.arange(5)])
    for shift in (box[0], -box[1], box[0] + box[2], 3 * box[2]):
        assert com_tether_energy(mol + shift, MASSES, [np.arange(5)], ref, box, 1e6) == pytest.approx(0, abs=1e-12)
    moved = mol + np.array([0.01, 0, 0]) + box[1]
    assert com_tether_energy(moved, MASSES, [np.arange(5)], ref, box, 1e6) == pytest.approx(0.5 * 1e6 * 1e-4)


# ------------------------------------------------------------------------------------------- mode / group checks
def test_check_mode_lists_valid_modes():
    assert check_mode("rc") == "RC"
    with pytest.raises(OptionError, match=r"invalid mode 'XC'; choose one of UC, RC, RTC, RTVC"):
        check_mode("XC")
    with pytest.raises(OptionError, match="choose one of UC, RC, RTC, RTVC"):
        check_mode(3)


def test_check_groups_errors():
    with pytest.raises(OptionError, match="no anion groups"):
        check_groups([], 10)
    with pytest.raises(OptionError, match="at least 2 atom indices"):
        check_groups([[1]], 10)
    with pytest.raises(OptionError, match="outside 0..9"):
        check_groups([[1, 12]], 10)
    with pytest.raises(OptionError, match="lists an atom twice"):
        check_groups([[1, 2, 2]], 10)
    with pytest.raises(OptionError, match="atom 2 is in anion groups 0 and 1"):
        check_groups([[1, 2], [3, 2]], 10)


# ----------------------------------------------------------------------------- OpenMM forces (energies only)
def one_anion_system(box_nm=3.0):
    s = openmm.System()
    s.setDefaultPeriodicBoxVectors(openmm.Vec3(box_nm, 0, 0), openmm.Vec3(0, box_nm, 0), openmm.Vec3(0, 0, box_nm))
    for m in MASSES:
        s.addParticle(m)
    b = openmm.HarmonicBondForce()
    for o in range(1, 5):
        b.addBond(0, o, R0, 5.5e5)
    s.addForce(b)
    return s


def group_energy(system, positions, group, box=None):
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    if box is not None:
        ctx.setPeriodicBoxVectors(*[openmm.Vec3(*r) for r in box])
    ctx.setPositions(positions)
    return ctx.getState(getEnergy=True, groups={group}).getPotentialEnergy().value_in_unit(
        openmm.unit.kilojoule_per_mole)


def test_openmm_eckart_matches_numpy_and_is_invariant():
    rng = np.random.default_rng(0)
    ref = so4(centre=(1.5, 1.5, 1.5))
    s = one_anion_system()
    setup = apply_mode(s, ref, np.eye(3) * 3.0, [np.arange(5)], "RC", k_rot=1e4)
    assert group_energy(s, setup.positions, ROT_FORCE_GROUP) == pytest.approx(0.0, abs=1e-9)
    x = so4(axis_rotation([1, 1, 0], 0.05), centre=(1.5, 1.5, 1.5)) + rng.normal(scale=0.002, size=(5, 3))
    e = group_energy(s, x, ROT_FORCE_GROUP)
    assert e > 1.0
    assert e == pytest.approx(eckart_energy(x, eckart_coefficients(ref, MASSES), 1e4), rel=1e-6)
    for shift in ([0.7, -2.2, 5.0], [3.0, 0, 0], [0, -3.0, 6.0]):  # any translation, incl. box vectors
        assert group_energy(s, x + np.asarray(shift), ROT_FORCE_GROUP) == pytest.approx(e, rel=1e-6)


def test_openmm_com_tether_zero_after_box_shift():
    ref = so4(centre=(0.05, 2.9, 1.5))  # near the box faces
    s = one_anion_system()
    box = np.eye(3) * 3.0
    setup = apply_mode(s, ref, box, [np.arange(5)], "RTC", k_com=1e6)
    assert group_energy(s, setup.positions, COM_FORCE_GROUP, box) == pytest.approx(0.0, abs=1e-9)
    for shift in (box[0], -box[1], box[0] + box[2] - box[1]):
        assert group_energy(s, setup.positions + shift, COM_FORCE_GROUP, box) == pytest.approx(0.0, abs=1e-8)
    moved = setup.positions + np.array([0.0, 0.0, 0.01]) - box[2]
    assert group_energy(s, moved, COM_FORCE_GROUP, box) == pytest.approx(0.5 * 1e6 * 1e-4, rel=1e-6)


def test_apply_mode_makes_split_anion_whole():
    box = np.eye(3) * 3.0
    mol = so4(centre=(2.95, 1.5, 1.5))
    split = mol - np.floor(mol @ np.linalg.inv(box)) @ box
    s = one_anion_system()
    setup = apply_mode(s, split, box, [np.arange(5)], "RC")
    npt.assert_allclose(np.linalg.norm(setup.positions[1:] - setup.positions[0], axis=1), R0, rtol=1e-12)
    assert group_energy(s, setup.positions, ROT_FORCE_GROUP) == pytest.approx(0.0, abs=1e-9)


def _has_cmm(system):
    return sum(isinstance(f, openmm.CMMotionRemover) for f in system.getForces())


@pytest.mark.parametrize("mode,cmm,n_extra", [("UC", 1, 0), ("RC", 1, 1), ("RTC", 0, 2), ("RTVC", 0, 0)])
def test_modes_on_the_model(mode, cmm, n_extra):
    m = build_li2so4(2)
    s = m.copy_system()
    s.addForce(openmm.CMMotionRemover())  # a user System may already have one
    n_forces = s.getNumForces() - 1
    setup = apply_mode(s, m.positions, m.box, m.groups, mode, templates=m.templates)
    assert _has_cmm(s) == cmm
    assert s.getNumForces() == n_forces + cmm + n_extra
    masses = np.array([s.getParticleMass(i).value_in_unit(openmm.unit.dalton) for i in range(s.getNumParticles())])
    anion = np.concatenate(m.groups)
    n_li = int(np.sum(m.species == "Li"))
    if mode == "RTVC":
        assert np.all(masses[anion] == 0.0)
        assert np.all(masses[m.species == "Li"] > 0)
        assert setup.n_dof == 3 * n_li
    else:
        npt.assert_allclose(masses, setup.masses)
        assert setup.n_dof == 3 * m.n_atoms - 3 * cmm
    if mode in ("RC", "RTC"):
        assert 500 < setup.restraint_wavenumbers["libration_cm1"] < 540
        ctx = openmm.Context(s, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        ctx.setPositions(setup.positions)
        e = ctx.getState(getEnergy=True, groups={ROT_FORCE_GROUP}).getPotentialEnergy()
        assert e.value_in_unit(openmm.unit.kilojoule_per_mole) == pytest.approx(0.0, abs=1e-8)
    if mode == "RTC":
        assert 530 < setup.restraint_wavenumbers["tether_cm1"] < 550


def test_apply_mode_errors():
    m = build_li2so4(2)
    with pytest.raises(OptionError, match="choose one of UC, RC, RTC, RTVC"):
        apply_mode(m.copy_system(), m.positions, m.box, m.groups, "RXC")
    with pytest.raises(OptionError, match="k_rot must be a positive stiffness"):
        apply_mode(m.copy_system(), m.positions, m.box, m.groups, "RC", k_rot=-1.0)
    with pytest.raises(OptionError, match="k_rot too stiff.*faster than the fastest anion bond"):
        apply_mode(m.copy_system(), m.positions, m.box, m.groups, "RC", k_rot=1e6)
    with pytest.raises(OptionError, match="k_com too stiff"):
        apply_mode(m.copy_system(), m.positions, m.box, m.groups, "RTC", k_com=1e8)
    with pytest.raises(OptionError, match=r"positions must have shape \(224, 3\)"):
        apply_mode(m.copy_system(), m.positions[:10], m.box, m.groups, "RC")
    with pytest.raises(OptionError, match="templates must give one geometry"):
        apply_mode(m.copy_system(), m.positions, m.box, m.groups, "RC", templates=[None])
    s = m.copy_system()
    s.addConstraint(0, 1, 0.149)
    with pytest.raises(OptionError, match="constraint 0 joins atoms 0 and 1"):
        apply_mode(s, m.positions, m.box, m.groups, "RTVC")


def test_li2so4_model_is_neutral_and_sized():
    for cells, n in ((2, 224), (3, 756)):
        m = build_li2so4(cells)
        assert m.n_atoms == n and len(m.groups) == 4 * cells ** 3
        nb = [f for f in m.system.getForces() if isinstance(f, openmm.NonbondedForce)][0]
        q = sum(nb.getParticleParameters(i)[0].value_in_unit(openmm.unit.elementary_charge) for i in range(n))
        assert q == pytest.approx(0.0, abs=1e-9)
        assert list(m.species[m.groups[0]]) == ["S", "O", "O", "O", "O"]
    with pytest.raises(OptionError, match="cells must be a positive integer"):
        build_li2so4(0)


def test_missing_openmm_message(monkeypatch):
    import builtins

    from anionmotion.md import _openmm

    real = builtins.__import__

    def block(name, *args, **kw):
        if name == "openmm" or name.startswith("openmm."):
            raise ImportError("blocked")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", block)
    with pytest.raises(ImportError, match=r"anionmotion.md needs OpenMM: pip install 'anionmotion\[md\]'"):
        _openmm.need_openmm()


def test_stiffness_for_wavenumbers_round_trip():
    from anionmotion.md.modes import stiffness_for_wavenumbers

    m = build_li2so4(2)
    masses = np.array([m.system.getParticleMass(i).value_in_unit(openmm.unit.dalton) for i in range(m.n_atoms)])
    k_rot, k_com = stiffness_for_wavenumbers(m.positions, m.box, m.groups, masses, libration_cm1=400.0,
                                             tether_cm1=450.0)
    setup = apply_mode(m.copy_system(), m.positions, m.box, m.groups, "RTC", k_rot=k_rot, k_com=k_com)
    assert setup.restraint_wavenumbers["libration_cm1"] == pytest.approx(400.0, rel=1e-9)
    assert setup.restraint_wavenumbers["tether_cm1"] == pytest.approx(450.0, rel=1e-9)
    # the defaults correspond to ≈ 517 and 541 cm⁻¹ for SO4
    k_rot, _ = stiffness_for_wavenumbers(m.positions, m.box, m.groups, masses, libration_cm1=516.68)
    assert k_rot == pytest.approx(1e4, rel=1e-3)
    assert stiffness_for_wavenumbers(m.positions, m.box, m.groups, masses) == (None, None)
    with pytest.raises(OptionError, match="libration_cm1 must be a positive wavenumber"):
        stiffness_for_wavenumbers(m.positions, m.box, m.groups, masses, libration_cm1=-5)
