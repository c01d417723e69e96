"""Legendre C_l (l = 1…4), cubic-harmonic rotor functions, orientation states, ν_rot/ν_hop with CIs (issue 12).

Numpy twins, analytic cases (rotational diffusion, symmetry jumps, libration), hypothesis properties (ligand
order, cubic lab rotations, chunking/budgets), coverage of the rate intervals, and real data (argyrodite PS4,
Li2SO4 rotor phase; copies in tests/data with their ATTRIBUTION.md) against an independent reader (ASE).
"""

import gzip
import itertools
import json
import math
import os
import shutil

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings, strategies as st

import anionmotion
from anionmotion.analysis.polyanions import find_polyanions
from anionmotion.analysis.reorientation import (_StateStream, _kabsch_rotation, frequency_match, kabsch_angle,
                                                legendre_acf, legendre_acf_direct, ligand_rotation_group,
                                                orientation_acf, orientation_states_direct, rate_ci, rate_ratio_ci,
                                                read_unit_vectors, reorientation, rotor_acf, rotor_acf_direct,
                                                rotor_harmonics, rotor_spread)
from anionmotion.errors import OptionError
from anionmotion.kernels.polyanion import CUBIC_HARMONICS, cubic_harmonic, rotor_sums, state_scores

from _polyanion_models import OCT, TET, random_rotations, rotational_brownian

DATA = os.path.join(os.path.dirname(__file__), "data")
ARGY = os.path.join(DATA, "argyrodite", "Li6PS5Cl_100p_run1_XDATCAR.gz")
LI2SO4 = os.path.join(DATA, "lammps", "li2so4_ortho_T1000.first60.lammpstrj.gz")
TRI = np.array([[1.0, 0, 0], [-0.5, np.sqrt(3) / 2, 0], [-0.5, -np.sqrt(3) / 2, 0]])
BOX = 16.0


def _unit(x):
    x = np.asarray(x, float)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


_G = (1 + 5 ** 0.5) / 2
ICO = _unit([v for s1 in (1, -1) for s2 in (1, -1) for v in ([0, s1, s2 * _G], [s1, s2 * _G, 0], [s2 * _G, 0, s1])])
#: B10H10-like bicapped square antiprism (D4d: 8 rotations)
B10 = _unit([[0, 0, 1.0], [0, 0, -1.0]] + [[0.8 * np.cos(a + o), 0.8 * np.sin(a + o), z]
                                          for a in np.arange(4) * np.pi / 2 for o, z in ((0, 0.4), (np.pi / 4, -0.4))])


def cubic_group():
    """The 48 signed permutation matrices (Oh of the lab axes)."""
    out = []
    for p in itertools.permutations(range(3)):
        for s in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            m[np.arange(3), p] = s
            out.append(m)
    return np.array(out)


OH = cubic_group()


def traj_from_orientations(R, shape=TET, bond=2.05, *, extra=None):
    """Rigid anions with orientation matrices R (T, A, 3, 3) on a lattice of a cubic box (P centre, S ligands)."""
    T, A = R.shape[:2]
    n_side = int(np.ceil(A ** (1 / 3)))
    centres = np.array([[i, j, k] for i in range(n_side) for j in range(n_side) for k in range(n_side)][:A],
                       float) * (BOX / n_side) + 1.0
    lig = np.einsum("taij,lj->tali", R, shape * bond)
    pos = np.concatenate([np.broadcast_to(centres[None, :, None], (T, A, 1, 3)), centres[None, :, None] + lig], 2)
    sp = (["P"] + ["S"] * len(shape)) * A
    pos = pos.reshape(T, -1, 3)
    if extra is not None:
        pos = np.concatenate([pos, extra], axis=1)
        sp = sp + ["Li"] * extra.shape[1]
    return pos, sp


def group_rotations(shape):
    """(perms, rotation matrices) of the rotational point group of ``shape``."""
    perms = ligand_rotation_group(shape)
    return perms, np.array([_kabsch_rotation(shape, shape[p]) for p in perms])


def jump_model(rng, n_frames, n_anions, *, dwell=6, libration_deg=0.0, shape=TET):
    """Anions jumping between symmetry-equivalent orientations R0 g (g in the point group), held ≥ ``dwell``
    frames, with optional small random libration.  Returns (R (T, A, 3, 3), element index (T, A))."""
    perms, G = group_rotations(shape)
    R0 = random_rotations(rng, n_anions)
    idx = np.zeros((n_frames, n_anions), int)
    for a in range(n_anions):
        t, cur = 0, 0
        while t < n_frames:
            hold = dwell + rng.integers(0, 3 * dwell)
            idx[t:t + hold, a] = cur
            t += hold
            cur = int(rng.integers(len(perms)))
    # libration: a small rotation about a random axis per frame (angle ~ N(0, σ))
    w = rng.normal(0, np.radians(libration_deg) / np.sqrt(3), size=(n_frames, n_anions, 3))
    ang = np.linalg.norm(w, axis=-1)[..., None, None]
    K = np.zeros((n_frames, n_anions, 3, 3))                       # Rodrigues: exp([w]×)
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -w[..., 2], w[..., 1], -w[..., 0]
    K = K - np.swapaxes(K, -1, -2)
    with np.errstate(invalid="ignore", divide="ignore"):
        a1 = np.where(ang > 1e-12, np.sin(ang) / ang, 1.0)
        a2 = np.where(ang > 1e-12, (1 - np.cos(ang)) / ang ** 2, 0.5)
    lib = np.eye(3) + a1 * K + a2 * K @ K
    R = np.einsum("taij,ajk,takl->tail", lib, R0, G[idx])
    return R, idx


def make_traj(pos, sp, dt=0.05):
    return anionmotion.from_arrays(pos, np.eye(3) * BOX, species=sp, frame_interval=dt)


# ----------------------------------------------------------------------------------- Legendre C_l
@settings(deadline=None, max_examples=25)
@given(seed=st.integers(0, 2 ** 31), n=st.integers(1, 40), nv=st.integers(1, 6), lmax=st.integers(1, 5),
       memory=st.sampled_from([500, 5_000, None]))
def test_legendre_acf_equals_the_direct_double_loop(seed, n, nv, lmax, memory):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, nv, 3))
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    got = legendre_acf(u, lmax, memory=memory)
    npt.assert_allclose(got, legendre_acf_direct(u, lmax), rtol=0, atol=1e-12)
    npt.assert_allclose(got[:, 0], 1.0, atol=1e-12)                      # P_l(1) = 1
    if lmax >= 2:
        c1, c2 = orientation_acf(u)
        npt.assert_allclose(got[0], c1, atol=1e-12)
        npt.assert_allclose(got[1], c2, atol=1e-12)


def test_legendre_acf_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        legendre_acf(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="lmax"):
        legendre_acf(np.zeros((3, 2, 3)), 0)
    assert legendre_acf(np.zeros((0, 2, 3))).shape == (4, 0)


def test_rotational_diffusion_gives_exp_minus_l_l1_Dt_for_legendre_and_rotor_functions():
    """Isotropic rotational diffusion: every pure degree-l function decays as exp(−l(l+1) D_r t)."""
    rng = np.random.default_rng(3)
    Dr, dt = 0.25, 0.02
    pos, sp, cell = rotational_brownian(rng, 2500, 27, dt, Dr)
    r = reorientation(anionmotion.from_arrays(pos, cell, species=sp, frame_interval=dt), center="P", ligand="S",
                      rotor="cubic", states=False)
    lag = r.lag_ps
    sel = lag <= 1.0
    for l, C in ((1, r.C1), (2, r.C2), (3, r.C3), (4, r.C4)):
        npt.assert_allclose(C[sel], np.exp(-l * (l + 1) * Dr * lag[sel]), atol=0.05, err_msg=f"C{l}")
    assert r.rotor["harmonics"] == ["K3", "K4", "K6"]
    for l in (3, 4, 6):
        c = r.rotor["C"][f"K{l}"]
        s2 = lag <= 0.6
        npt.assert_allclose(c[s2], np.exp(-l * (l + 1) * Dr * lag[s2]), atol=0.08, err_msg=f"K{l}")
    # rotor/relaxation bookkeeping
    assert r.rotor["relaxation"]["K3"]["decayed"]
    assert abs(r.rotor["baseline"]["K3"]) < 0.1


# ------------------------------------------------------------------------------- cubic harmonics
def sphere_quadrature(n=24):
    """Gauss–Legendre in cos θ × uniform φ: exact for polynomials of degree < 2n on the sphere."""
    x, w = np.polynomial.legendre.leggauss(n)
    phi = np.arange(2 * n) * np.pi / n
    ct, ph = np.meshgrid(x, phi, indexing="ij")
    st_ = np.sqrt(1 - ct ** 2)
    u = np.stack([st_ * np.cos(ph), st_ * np.sin(ph), ct], -1).reshape(-1, 3)
    ww = np.repeat(w, 2 * n) / (2 * 2 * n)            # weights sum to 1 (sphere average)
    return u, ww


def test_cubic_harmonics_are_orthonormal_pure_degree_and_cubic_invariant():
    u, w = sphere_quadrature()
    K = {l: cubic_harmonic(u, l) for l in CUBIC_HARMONICS}
    for l1 in CUBIC_HARMONICS:
        for l2 in CUBIC_HARMONICS:
            assert np.sum(w * K[l1] * K[l2]) == pytest.approx(float(l1 == l2), abs=1e-12)
        # orthogonal to every monomial of lower degree: a pure degree-l harmonic
        for a, b, c in itertools.product(range(l1), repeat=3):
            if a + b + c < l1:
                m = u[:, 0] ** a * u[:, 1] ** b * u[:, 2] ** c
                assert abs(np.sum(w * K[l1] * m)) < 1e-12
    for g in OH:
        gu = u @ g.T
        npt.assert_allclose(cubic_harmonic(gu, 4), K[4], atol=1e-12)
        npt.assert_allclose(cubic_harmonic(gu, 6), K[6], atol=1e-12)
        # K3 = √105 xyz picks up the product of the signs: +1 on the 24 elements of Td
        npt.assert_allclose(cubic_harmonic(gu, 3), np.prod(g.sum(axis=1)) * K[3], atol=1e-12)
    with pytest.raises(ValueError, match="cubic harmonic"):
        cubic_harmonic(u, 5)


def test_rotor_choices_and_trivial_harmonics():
    assert rotor_harmonics("auto", [4, 4]) == (3, 4)
    assert rotor_harmonics("auto", [6]) == (4, 6)
    assert rotor_harmonics("auto", [4, 6]) == (3, 4, 6)
    assert rotor_harmonics("none", [4]) == ()
    with pytest.raises(OptionError, match="invalid rotor"):
        rotor_harmonics("dodecahedral", [4])
    # K3 of a centrosymmetric octahedron is identically 0; the tetrahedron's K3 is not (l = 3 is its lowest)
    sp_oct = rotor_spread(OCT[None], np.array([6]), (3, 4, 6))[0]
    sp_tet = rotor_spread(TET[None], np.array([4]), (3, 4, 6))[0]
    assert sp_oct[0] < 1e-12 and sp_oct[1] > 0.5 and sp_oct[2] > 0.5
    assert np.all(sp_tet > 0.5)
    sp_ico = rotor_spread(ICO[None], np.array([12]), (3, 4, 6))[0]      # a 5-design: only K6 sees it turn
    assert sp_ico[0] < 1e-12 and sp_ico[1] < 1e-12 and sp_ico[2] > 0.5


# ------------------------------------------------------------------------------- rotor functions
@settings(deadline=None, max_examples=20)
@given(seed=st.integers(0, 2 ** 31), n=st.integers(1, 30), A=st.integers(1, 4))
def test_rotor_acf_equals_direct(seed, n, A):
    F = np.random.default_rng(seed).normal(size=(n, A, 2))
    npt.assert_allclose(rotor_acf(F), rotor_acf_direct(F), atol=1e-12)
    assert np.all(np.isnan(rotor_acf(np.zeros((n, A, 1)))))


def test_symmetry_jumps_leave_rotor_functions_unchanged_while_C1_decays():
    """(a) Rigid tetrahedra jumping between orientations related by their own rotations: F constant → C_F = 1."""
    rng = np.random.default_rng(7)
    R, idx = jump_model(rng, 300, 8, dwell=5)
    pos, sp = traj_from_orientations(R)
    r = reorientation(make_traj(pos, sp), center="P", ligand="S", rotor="cubic", state_debounce=3)
    for k in ("K3", "K4", "K6"):
        npt.assert_allclose(r.rotor["C"][k], 1.0, atol=1e-10)
    assert r.C1[100:150].mean() < 0.2                  # the labelled ligands do decorrelate
    # every jump is an orientation-state transition, with the angle of the group element
    perms, G = group_rotations(TET)
    expect, n_jumps = {}, 0
    for a in range(idx.shape[1]):
        for t in np.nonzero(np.diff(idx[:, a]))[0]:
            if not np.all(idx[t + 1:t + 4, a] == idx[t + 1, a]) or t + 4 > len(idx):
                continue                                  # a last stay cut by the end, shorter than the debounce
            n_jumps += 1
            ang = int(round(kabsch_angle(TET[perms[idx[t, a]]], TET[perms[idx[t + 1, a]]])))
            expect[str(ang)] = expect.get(str(ang), 0) + 1
    assert r.states["count"] == n_jumps > 100
    assert r.states["transitions_by_angle_deg"] == dict(sorted(expect.items()))
    assert set(expect) <= {"120", "180"}
    assert r.states["unassigned_fraction"] == 0.0 and np.all(r.states["group_size"] == 12)


def test_random_rotations_decorrelate_rotor_functions():
    """(b) Uncorrelated random orientations every frame: C_F(t > 0) ≈ ⟨F⟩²/⟨F²⟩ ≈ 0."""
    rng = np.random.default_rng(11)
    R = random_rotations(rng, 400 * 27).reshape(400, 27, 3, 3)
    pos, sp = traj_from_orientations(R)
    r = reorientation(make_traj(pos, sp), center="P", ligand="S", rotor="td", states=False)
    for k in ("K3", "K4"):
        c = r.rotor["C"][k][1:200]
        assert abs(c.mean()) < 0.03 and np.abs(c).max() < 0.2      # noise ~ 1/√(27·200)


def test_libration_gives_a_plateau_near_one_not_a_decay():
    """(c) Small random libration (σ = 3°) about a fixed orientation: C_F sits on a plateau near 1.

    With libration uncorrelated from frame to frame, C_F(t > 0) = Σ_a F̄_a² / Σ_a ⟨F_a²⟩ exactly (F̄_a the time
    mean of anion a): 1 − plateau is the libration variance of F over F̄², O(l(l+1) σ²), not a decay.
    """
    rng = np.random.default_rng(5)
    R, _ = jump_model(rng, 400, 8, dwell=10 ** 6, libration_deg=3.0)
    pos, sp = traj_from_orientations(R)
    traj = make_traj(pos, sp)
    r = reorientation(traj, center="P", ligand="S", rotor="cubic")
    pa = find_polyanions(traj, center="P", ligand="S")
    F = rotor_sums(read_unit_vectors(traj, pa)[0], pa.ligand_counts, (3, 4, 6))
    half = r.lag_ps <= r.reliable_lag_ps                            # lags with ≥ half of the origins
    for h, k in enumerate(("K3", "K4", "K6")):
        c = r.rotor["C"][k][half][1:]
        plateau = (F[:, :, h].mean(0) ** 2).sum() / (F[:, :, h] ** 2).mean(0).sum()
        assert c.mean() == pytest.approx(plateau, abs=0.01)
        assert plateau > 0.9
        assert abs(c[:20].mean() - c[-20:].mean()) < 0.01             # flat: no trend
    assert r.states["count"] == 0 and r.events["threshold"]["count"] == 0
    assert r.frequency["states"]["rate"] == 0 and r.frequency["states"]["ci_high"] > 0


# ---------------------------------------------------------------------------- point group, states
@pytest.mark.parametrize("shape,n_ops", [(TET, 12), (OCT, 24), (TRI, 6), (B10, 8), (ICO, 60)])
def test_ligand_rotation_group(shape, n_ops):
    rng = np.random.default_rng(n_ops)
    R = random_rotations(rng, 1)[0]
    d = shape @ R.T
    perms = ligand_rotation_group(d)
    assert len(perms) == n_ops and np.array_equal(perms[0], np.arange(len(shape)))
    for p in perms:                                    # each is a proper rotation mapping the set onto itself
        Rp = _kabsch_rotation(d, d[p])
        assert np.linalg.det(Rp) == pytest.approx(1.0)
        npt.assert_allclose(d @ Rp.T, d[p], atol=1e-9)
    # closed under composition
    s = {tuple(p) for p in perms.tolist()}
    assert all(tuple(np.asarray(a)[list(b)]) in s for a in s for b in s)
    # relabelling the ligands conjugates the group (same size)
    q = rng.permutation(len(shape))
    assert len(ligand_rotation_group(d[q])) == n_ops
    # distorted shapes keep the full group (8 % noise per component; 5 % for the crowded B10 and ICO sets)
    for _ in range(20):
        dd = d + rng.normal(0, 0.05 if len(shape) >= 10 else 0.08, d.shape)
        dd /= np.linalg.norm(dd, axis=1, keepdims=True)
        assert len(ligand_rotation_group(dd)) == n_ops
    assert ligand_rotation_group(np.array([[0, 0, 1.0], [0, 0, -1.0]])).tolist() == [[0, 1], [1, 0]]
    assert len(ligand_rotation_group(np.array([[0, 0, 1.0]]))) == 1


def test_debounce_flicker_is_not_a_transition():
    """A flicker shorter than the debounce is not counted; a stay of ≥ debounce frames is, once."""
    perms, G = group_rotations(TET)
    R0 = np.eye(3)
    seq = [0] * 5 + [1] * 2 + [0] * 5 + [2] * 3 + [2] * 4 + [0] * 3
    R = np.array([[R0 @ G[i]] for i in seq])
    u = np.einsum("taij,lj->tali", R, TET)
    s = _StateStream(u[0], np.array([4]), shape_tolerance=25, tolerance=30, debounce=3)
    s.update(u)
    assert s.per_anion.tolist() == [2]                   # 0 → 2 → 0; the 2-frame visit of 1 is filtered
    _, committed, trans = orientation_states_direct(u, u[0], s.perms, np.array([4]), debounce=3)
    assert [(t, f, g) for _, t, f, g in trans] == [(12, 0, 2), (19, 2, 0)]
    assert committed[:, 0].tolist() == [0] * 14 + [2] * 7 + [0]                # known once the debounce is met


def jumpy_traj(seed, n_frames, *, libration=8.0, shuffle_ligands=False, lab=None, A=5):
    rng = np.random.default_rng(seed)
    R, _ = jump_model(rng, n_frames, A, dwell=3, libration_deg=libration)
    if lab is not None:
        R = np.einsum("ij,tajk->taik", lab, R)
    pos, sp = traj_from_orientations(R)
    if shuffle_ligands:                                   # permute each anion's ligand atoms (atom order)
        order = []
        for a in range(A):
            base = 5 * a
            order += [base] + list(base + 1 + rng.permutation(4))
        pos = pos[:, order]
    return make_traj(pos, sp), R


@settings(deadline=None, max_examples=20)
@given(seed=st.integers(0, 2 ** 31), n_frames=st.integers(4, 60), libration=st.floats(0, 35),
       memory=st.sampled_from([1_500, 20_000, "1GB"]), chunk=st.one_of(st.none(), st.integers(1, 25)),
       debounce=st.integers(1, 4), step=st.sampled_from([1, 2]))
def test_streamed_equals_in_memory(seed, n_frames, libration, memory, chunk, debounce, step):
    traj, _ = jumpy_traj(seed, n_frames * step + 1, libration=libration)
    pa = find_polyanions(traj, center="P", ligand="S", cutoff=2.5)
    r = reorientation(traj, polyanions=pa, memory=memory, frames_per_chunk=chunk, rotor="cubic",
                      state_debounce=debounce, step=step)
    u, *_ = read_unit_vectors(traj, pa, step=step)
    cl = legendre_acf_direct(u.reshape(len(u), -1, 3), 4)
    for l, C in enumerate((r.C1, r.C2, r.C3, r.C4), start=1):
        npt.assert_allclose(C, cl[l - 1], atol=1e-11)
    F = rotor_sums(u, pa.ligand_counts, (3, 4, 6))
    npt.assert_allclose(np.array([r.rotor["C"][k] for k in ("K3", "K4", "K6")]), rotor_acf_direct(F), atol=1e-10)
    s = _StateStream(u[0], pa.ligand_counts, shape_tolerance=25, tolerance=30, debounce=debounce)
    assigned, committed, trans = orientation_states_direct(u, u[0], s.perms, pa.ligand_counts, debounce=debounce)
    assert r.states["count"] == len(trans)
    assert r.states["per_anion"].tolist() == np.bincount([t[0] for t in trans], minlength=pa.n_anions).tolist()
    assert r.states["unassigned_fraction"] == pytest.approx((assigned < 0).mean())
    if memory == 1_500:
        assert r.meta["acf_store"]["mode"] == "out-of-core"


@settings(deadline=None, max_examples=15)
@given(seed=st.integers(0, 2 ** 31), g=st.integers(0, 47), libration=st.floats(0, 25))
def test_ligand_order_and_cubic_lab_rotations_change_nothing(seed, g, libration):
    base, R = jumpy_traj(seed, 60, libration=libration)
    shuffled, _ = jumpy_traj(seed, 60, libration=libration, shuffle_ligands=True)
    rotated, _ = jumpy_traj(seed, 60, libration=libration, lab=OH[g])
    kw = dict(center="P", ligand="S", cutoff=2.5, rotor="cubic")
    r0, r1, r2 = (reorientation(t, **kw) for t in (base, shuffled, rotated))
    for r in (r1, r2):
        for C0, C in ((r0.C1, r.C1), (r0.C2, r.C2), (r0.C3, r.C3), (r0.C4, r.C4)):
            npt.assert_allclose(C, C0, atol=1e-10)
        for k in ("K3", "K4", "K6"):               # K3 → ±K3 under Oh \ Td: the products do not change
            npt.assert_allclose(r.rotor["C"][k], r0.rotor["C"][k], atol=1e-10)
        assert r.states["count"] == r0.states["count"]
        assert r.states["per_anion"].tolist() == r0.states["per_anion"].tolist()
        assert r.states["transitions_by_angle_deg"] == r0.states["transitions_by_angle_deg"]
        assert r.events["threshold"]["count"] == r0.events["threshold"]["count"]


def test_state_scores_pad_states_and_ligands():
    u0 = np.stack([np.vstack([TRI, [[np.nan] * 3]]), TET])           # a 3-ligand and a 4-ligand anion
    n_valid = np.array([3, 4])
    s = _StateStream(u0, n_valid, shape_tolerance=25, tolerance=30, debounce=1)
    assert s.group_size.tolist() == [6, 12] and s.perms.shape == (2, 12, 4)
    sc = state_scores(u0[None], u0, s.perms, n_valid)[0]
    assert sc[0, 0] == pytest.approx(1.0) and sc[1, 0] == pytest.approx(1.0)
    assert np.all(np.isneginf(sc[0, 6:]))


# ------------------------------------------------------------------------------ rates and ratio
def test_rate_interval_coverage_poisson_and_overdispersed():
    rng = np.random.default_rng(0)
    level, n_rep, A, E = 0.95, 1500, 20, 0.5                          # 20 units × 0.5 ns
    for lam in (0.5, 4.0, 40.0):
        hit = 0
        for _ in range(n_rep):
            c = rng.poisson(lam * E, size=A)
            r = rate_ci(int(c.sum()), A * E, per_unit_counts=c, level=level)
            hit += r["ci_low"] <= lam <= r["ci_high"]
        assert 0.93 <= hit / n_rep <= 0.995, (lam, hit / n_rep)
    # heterogeneous units (gamma-distributed rates, var/mean = 1 + 10): the dispersion widening restores coverage
    lam, k = 10.0, 1.0
    hit_w = hit_p = 0
    for _ in range(n_rep):
        c = rng.poisson(rng.gamma(k, lam / k, size=A) * E)
        w = rate_ci(int(c.sum()), A * E, per_unit_counts=c)
        p = rate_ci(int(c.sum()), A * E)
        hit_w += w["ci_low"] <= lam <= w["ci_high"]
        hit_p += p["ci_low"] <= lam <= p["ci_high"]
    assert hit_w / n_rep >= 0.9 and hit_p / n_rep < 0.7
    assert rate_ci(0, 1.0)["ci_low"] == 0.0 and rate_ci(0, 1.0)["ci_high"] == pytest.approx(-math.log(0.025))


def test_rate_ratio_interval_coverage():
    rng = np.random.default_rng(1)
    n_rep, hit = 1500, 0
    l1, l2, e1, e2 = 2.0, 30.0, 3.0, 1.5
    for _ in range(n_rep):
        n1, n2 = rng.poisson(l1 * e1), rng.poisson(l2 * e2)
        r = rate_ratio_ci(n1, e1, n2, e2)
        if n2 == 0:
            continue
        hi = np.inf if r["ci_high"] is None else r["ci_high"]
        hit += r["ci_low"] <= l1 / l2 <= hi
    assert 0.93 <= hit / n_rep <= 0.995
    # over-dispersed units on both sides (gamma-distributed rates): the widened ratio interval still covers
    from anionmotion.analysis.reorientation import _dispersion

    hit_w = hit_p = 0
    for _ in range(n_rep):
        a = rng.poisson(rng.gamma(1.0, l1, size=30) * 2.0)             # 30 anions × 2 ns
        c = rng.poisson(rng.gamma(1.0, l2, size=60) * 0.5)             # 60 cations × 0.5 ns
        w = rate_ratio_ci(a.sum(), 60.0, c.sum(), 30.0, phi1=_dispersion(a), phi2=_dispersion(c))
        p = rate_ratio_ci(a.sum(), 60.0, c.sum(), 30.0)
        hit_w += w["ci_low"] <= l1 / l2 <= w["ci_high"]
        hit_p += p["ci_low"] <= l1 / l2 <= p["ci_high"]
    assert hit_w / n_rep >= 0.9 and hit_p / n_rep < hit_w / n_rep
    inf = rate_ratio_ci(30, 1.0, 0, 1.0)                   # no hops: unbounded above, a finite lower limit
    assert inf["ratio"] is None and inf["ci_high"] is None and 1.0 < inf["ci_low"] < 30.0
    assert rate_ratio_ci(0, 1.0, 0, 1.0)["ci_low"] is None


def test_frequency_match_from_a_hops_dict():
    rot = {"states": {"count": 20, "exposure_anion_ns": 10.0, "dispersion": 1.0, "rate": 2.0}}
    hops = {"species": "Li", "observed_ps": 2000.0, "jump_frequency_per_atom_per_ns": {"0": 5.0, "1": 3.0}}
    m = frequency_match(rot, hops)
    assert m["n_hops"] == 16 and m["nu_hop_per_ns"]["rate"] == pytest.approx(4.0)
    assert m["ratio_states"]["ratio"] == pytest.approx(0.5)
    assert m["ratio_states"]["ci_low"] < 0.5 < m["ratio_states"]["ci_high"]


def test_reorientation_with_hops_and_the_cli(tmp_path, monkeypatch, capsys):
    from anionmotion.cli import main
    from anionmotion.cli import reorient as cli_reorient

    rng = np.random.default_rng(2)
    R, _ = jump_model(rng, 200, 8, dwell=4, libration_deg=3.0)
    # two Li hopping back and forth by 3 Å every 20 frames
    li = np.array([[5.0, 5, 5], [12.0, 5, 12]])[None] + np.zeros((200, 2, 3))
    li[:, :, 0] += 3.0 * ((np.arange(200) // 20) % 2)[:, None]
    pos, sp = traj_from_orientations(R, extra=li)
    traj = make_traj(pos, sp)
    h = anionmotion.hops(traj, species="Li", a=2.0, residence=0.2, window=0.6)
    r = reorientation(traj, center="P", ligand="S", hops=h)
    m = r.frequency_match
    assert m["n_hops"] == h.n_events > 0
    assert m["ratio_states"]["ratio"] == pytest.approx(r.frequency["states"]["rate"] / m["nu_hop_per_ns"]["rate"])
    assert "ν_rot/ν_hop" in r.summary()
    monkeypatch.setattr(cli_reorient, "open_from_args", lambda args: traj)
    out = tmp_path / "r.json"
    assert main(["reorient", "x", "--center", "P", "--ligand", "S", "--cation", "Li", "--hop-a", "2.0",
                 "--hop-residence", "0.2", "--hop-window", "0.6", "--legendre", "3", "--rotor", "oh",
                 "--state-debounce", "2", "--json", str(out), "--no-progress"]) == 0
    d = json.loads(out.read_text())
    assert d["C4"] is None and len(d["C3"]) == 200 and d["rotor"]["harmonics"] == ["K4", "K6"]
    assert d["states"]["debounce_frames"] == 2
    assert d["frequency_match"]["ratio_threshold"]["ratio"] is not None
    assert "ν_rot states" in capsys.readouterr().out
    out2 = tmp_path / "r2.json"
    assert main(["reorient", "x", "--center", "P", "--ligand", "S", "--no-states", "--rotor", "none",
                 "--json", str(out2), "--no-progress"]) == 0
    d2 = json.loads(out2.read_text())
    assert d2["states"] is None and d2["rotor"] is None and "states" not in d2["frequency"]


def test_option_errors():
    traj, _ = jumpy_traj(0, 10)
    for kw, msg in (({"legendre": 5}, "legendre"), ({"legendre": 1}, "legendre"), ({"rotor": "x"}, "invalid rotor"),
                    ({"state_tolerance": 95}, "state_tolerance"), ({"state_debounce": 0}, "state_debounce"),
                    ({"shape_tolerance": 0}, "shape_tolerance"), ({"level": 1.5}, "level")):
        with pytest.raises(OptionError, match=msg):
            reorientation(traj, center="P", ligand="S", **kw)


# ----------------------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def argyrodite_ase(tmp_path_factory):
    """Unit P→S vectors of the argyrodite run read by ASE and minimum-imaged in numpy (independent path)."""
    import ase.io

    p = tmp_path_factory.mktemp("argy") / "XDATCAR"
    with gzip.open(ARGY, "rb") as src, open(p, "wb") as dst:
        shutil.copyfileobj(src, dst)
    frames = ase.io.read(str(p), format="vasp-xdatcar", index=":")
    return frames


def test_argyrodite_against_an_independent_reader(argyrodite_ase):
    """Li6PS5Cl 100p run1 (500 K, 14 ps): the PS4 librate; C_l from ASE + numpy equal anionmotion's."""
    traj = anionmotion.open(ARGY, frame_interval=0.1)
    r = reorientation(traj, center="P", ligand="S", memory="256KB", frames_per_chunk=13)
    frames = argyrodite_ase
    sym = np.array(frames[0].get_chemical_symbols())
    P, S = np.nonzero(sym == "P")[0], np.nonzero(sym == "S")[0]
    cell = frames[0].cell.array
    X = np.array([f.get_positions() for f in frames])
    d = X[0, S][None] - X[0, P][:, None]
    f = d @ np.linalg.inv(cell)
    dist = np.linalg.norm((f - np.round(f)) @ cell, axis=-1)
    lig = np.argsort(dist, axis=1)[:, :4]                              # the 4 nearest S of each P
    assert np.all(np.take_along_axis(dist, lig, 1) < 2.3)
    v = X[:, S[lig]] - X[:, P][:, :, None]
    fr = v @ np.linalg.inv(cell)
    v = (fr - np.round(fr)) @ cell
    u = v / np.linalg.norm(v, axis=-1, keepdims=True)                  # (T, 32, 4, 3)
    cl = legendre_acf_direct(u.reshape(len(u), -1, 3), 4)
    for l, C in enumerate((r.C1, r.C2, r.C3, r.C4), start=1):
        npt.assert_allclose(C, cl[l - 1], atol=1e-9)
    F = rotor_sums(u, np.full(32, 4), (3, 4))
    npt.assert_allclose(np.array([r.rotor["C"]["K3"], r.rotor["C"]["K4"]]), rotor_acf_direct(F), atol=1e-9)
    # libration: C_l falls with l, the rotor functions stay at their plateau; no orientation transitions
    i = int(np.searchsorted(r.lag_ps, r.reliable_lag_ps))
    assert r.C1[i] > r.C2[i] > r.C3[i] > r.C4[i]
    assert min(r.rotor["at_reliable_lag"].values()) > r.C1[i]
    assert r.states["count"] == 0 and np.all(r.states["group_size"] == 12)
    assert r.states["unassigned_fraction"] < 0.01


def test_li2so4_rotor_phase_states_and_rotor_decay():
    """Li2SO4 at 1000 K (rotor phase): SO4 reorient — orientation-state transitions by 120° (C3 jumps)."""
    traj = anionmotion.open(LI2SO4, timestep=0.001, types="1=Li,2=S,3=O")
    r = reorientation(traj, center="S", ligand="O")
    assert r.rotating and r.states["count"] > 0
    assert set(r.states["transitions_by_angle_deg"]) <= {"120", "180"}
    i = int(np.searchsorted(r.lag_ps, r.reliable_lag_ps))
    assert r.rotor["at_reliable_lag"]["K3"] < 0.5                     # orientations change, F decorrelates
    f = r.frequency
    assert f["states"]["ci_low"] < f["states"]["rate"] < f["states"]["ci_high"]
    assert f["threshold"]["rate"] == pytest.approx(r.events["threshold"]["count"] / r.n_anions
                                                   / (r.meta["span_ps"] / 1000))
    assert r.C4[i] < r.C3[i] < r.C2[i] < r.C1[i]


# ------------------------------------------------------------------------------------------ compare
def _run(mode, T, sigma, *, n_rot=None, n_hop=None):
    """A report.json-like dict: diffusion (σ of the mode) and, for UC, a reorientation with frequency_match."""
    D = 1e-6 * sigma
    d = {"species": "Li", "n_atoms": 16, "temperature_K": T,
         "diffusion": {"D_cm2_s": D, "D_stderr_cm2_s": 0.02 * D},
         "conductivity": {"sigma_mS_cm": sigma, "sigma_stderr_mS_cm": 0.02 * sigma, "charge": 1, "volume_A3": 1e3}}
    rep = {"constraint_mode": mode, "temperature_K": T, "analyses": {"diffusion": {"status": "ok", "result": d}}}
    if n_rot is not None:
        fq = {"threshold": {"count": n_rot, "exposure_anion_ns": 100.0, "dispersion": 1.0,
                            **rate_ci(n_rot, 100.0)}}
        hops = {"species": "Li", "observed_ps": 10000.0, "jump_frequency_per_atom_per_ns": [n_hop / 10 / 10] * 10}
        rep["analyses"]["reorientation"] = {"status": "ok", "result": {"frequency": fq,
                                                                        "frequency_match": frequency_match(fq, hops)}}
    return rep


def test_compare_puts_the_frequency_ratio_next_to_the_mode_decomposition(tmp_path):
    from anionmotion.report.compare import _match_class, compare, write_compare

    runs = []
    # 600 K: ν_rot ≈ ν_hop (ratio 1) and rotation dominates (big UC→RC step): agrees with the claim
    runs += [_run("UC", 600, 10.0, n_rot=500, n_hop=500), _run("RC", 600, 1.0), _run("RTC", 600, 0.8),
             _run("RTVC", 600, 0.7)]
    # 800 K: ν_rot ≫ ν_hop but rotation still dominates: the claim expects translation → disagrees
    runs += [_run("UC", 800, 10.0, n_rot=5000, n_hop=20), _run("RC", 800, 1.0), _run("RTC", 800, 0.8),
             _run("RTVC", 800, 0.7)]
    res = compare(runs, labels=[f"r{i}" for i in range(8)])
    fm = {r["temperature_K"]: r for r in res.frequency_match}
    assert set(fm) == {600, 800}
    a, b = fm[600], fm[800]
    assert a["ratio"]["ratio"] == pytest.approx(1.0) and a["class"] == "match"
    assert a["dominant_mode"] == "rot" and a["expected_mode"] == "rot" and a["agrees"] is True
    assert b["ratio"]["ratio"] == pytest.approx(250.0) and b["class"] == "higher"
    assert b["expected_mode"] == "trans" and b["agrees"] is False
    assert _match_class(0.05, 3.0) == "undetermined" and _match_class(0.001, 0.05) == "lower"
    assert _match_class(20.0, None) == "higher"
    files = write_compare(res, tmp_path)
    assert "figures/frequency_match.png" in files
    md = (tmp_path / "compare.md").read_text()
    assert "Rotation–hop frequency match" in md and "| higher |" in md
    d = json.loads((tmp_path / "compare.json").read_text())
    assert len(d["frequency_match"]) == 2


def test_state_scores_in_small_frame_blocks_give_the_same_states(monkeypatch):
    traj, _ = jumpy_traj(4, 120, libration=15.0)
    ref = reorientation(traj, center="P", ligand="S", cutoff=2.5)
    monkeypatch.setattr(_StateStream, "work_bytes", 1)               # one frame per block of scores
    r = reorientation(traj, center="P", ligand="S", cutoff=2.5)
    assert r.states["count"] == ref.states["count"] > 0
    npt.assert_array_equal(r.states["occupancy_frames"], ref.states["occupancy_frames"])
    assert r.states["unassigned_fraction"] == ref.states["unassigned_fraction"]


def test_report_json_carries_the_frequency_match(tmp_path):
    from anionmotion.report.core import run_report

    rng = np.random.default_rng(9)
    R, _ = jump_model(rng, 300, 8, dwell=4, libration_deg=3.0)
    li = np.array([[5.0, 5, 5], [12.0, 5, 12]])[None] + np.zeros((300, 2, 3))
    li[:, :, 0] += 3.0 * ((np.arange(300) // 100) % 2)[:, None]     # stays of 5 ps: the report's t_a = span/3
    pos, sp = traj_from_orientations(R, extra=li)
    run_report(make_traj(pos, sp), tmp_path / "rep", cation="Li", center="P", ligand="S",
               stages=["polyanions", "hops", "reorientation"], options={"hop_distance": 2.0}, progress=False)
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    a = rep["analyses"]["reorientation"]
    assert a["status"] == "ok" and a["parameters"]["hops"] == "the events of the hops stage"
    m = a["result"]["frequency_match"]
    assert m["n_hops"] == rep["analyses"]["hops"]["result"]["n_events"] > 0
    assert m["ratio_states"]["ratio"] == pytest.approx(a["result"]["frequency"]["states"]["rate"]
                                                       / m["nu_hop_per_ns"]["rate"])
    assert a["summary"]["ν_rot/ν_hop (states)"].startswith(f"{m['ratio_states']['ratio']:.3g} [")
    assert (tmp_path / "rep" / "rotation_frequency.csv").exists()
