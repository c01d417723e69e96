import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

import anionmotion
from anionmotion.analysis.polyanions import find_polyanions
from anionmotion.analysis.reorientation import (fit_relaxation, kabsch_angle, ligand_density, orientation_acf,
                                                orientation_acf_direct, reorientation)
from anionmotion.errors import OptionError
from anionmotion.kernels.events import (residence_runs, rotation_events_symmetry, rotation_events_threshold)

from _polyanion_models import OCT, TET, axis_angle, random_rotations, rotational_brownian


def rigid_traj(rotations, centres=None, box=20.0, shape=TET, bond=1.5, dt=0.1):
    """Trajectory of rigid anions; rotations (n_frames, n_anions, 3, 3)."""
    n_frames, n_an = rotations.shape[:2]
    if centres is None:
        centres = np.array([[5.0 + 10 * (i % 2), 5.0 + 10 * ((i // 2) % 2), 5.0 + 10 * (i // 4)] for i in range(n_an)])
    lig = np.einsum("taij,lj->tali", rotations, shape * bond)
    pos = np.concatenate([np.broadcast_to(centres[None, :, None, :], (n_frames, n_an, 1, 3)),
                          centres[None, :, None, :] + lig], axis=2).reshape(n_frames, -1, 3)
    sp = (["S"] + ["O"] * len(shape)) * n_an
    return anionmotion.from_arrays(pos, np.eye(3) * box, species=sp, frame_interval=dt), pos, sp


def test_static_anions_give_one_and_no_events():
    rng = np.random.default_rng(0)
    R = np.broadcast_to(random_rotations(rng, 4)[None], (30, 4, 3, 3))
    traj, _, _ = rigid_traj(R)
    r = reorientation(traj, center="S", ligand="O")
    npt.assert_allclose(r.C1, 1.0, atol=1e-12)
    npt.assert_allclose(r.C2, 1.0, atol=1e-12)
    assert r.rotation_events == 0 and r.events["symmetry"]["count"] == 0
    assert not r.rotating and r.tau1_ps is None and r.tau2_ps is None
    assert r.framework["connectivity"] == "isolated" and r.framework["intact"]
    d = r.to_dict()
    for key in ("n_anions", "lag_ps", "C1", "C2", "tau1_ps", "tau2_ps", "rotating", "rotation_events",
                "rotation_frequency_per_ns", "framework"):
        assert key in d
    assert {"connectivity", "VPA_A3", "AAL_A"} <= set(d["framework"])
    assert "angles_deg" not in d and "angles_deg" in r.to_dict(include_series=True)


def test_rotational_brownian_motion_matches_theory():
    rng = np.random.default_rng(42)
    Dr, dt = 0.25, 0.02
    pos, sp, cell = rotational_brownian(rng, 3000, 27, dt, Dr)
    traj = anionmotion.from_arrays(pos, cell, species=sp, frame_interval=dt)
    r = reorientation(traj, center="P", ligand="S")
    sel = r.lag_ps <= 2.0
    # 27 anions × 60 ps / τ ≈ 2 ps: a few % statistical error
    npt.assert_allclose(r.C1[sel], np.exp(-2 * Dr * r.lag_ps[sel]), atol=0.04)
    npt.assert_allclose(r.C2[sel], np.exp(-6 * Dr * r.lag_ps[sel]), atol=0.04)
    assert r.rotating
    assert r.tau1_ps == pytest.approx(1 / (2 * Dr), rel=0.15)
    assert r.tau2_ps == pytest.approx(1 / (6 * Dr), rel=0.15)
    assert r.relaxation["C1"]["beta"] == pytest.approx(1.0, abs=0.15)
    assert r.rotation_events > 0
    assert r.rotation_frequency_per_ns == pytest.approx(r.rotation_events / 27 / (r.meta["span_ps"] / 1000))


def test_c3_rotation_counts_one_symmetry_event():
    # one tetrahedron turned by exactly 120° about the C3 axis through ligand 0, in 12 steps of 10°
    axis = TET[0]
    n = 40
    ang = np.zeros(n)
    ang[10:22] = np.radians(np.arange(1, 13) * 10.0)
    ang[22:] = np.radians(120.0)
    R = np.stack([axis_angle(axis, a) for a in ang])[:, None]
    traj, _, _ = rigid_traj(R)
    r = reorientation(traj, center="S", ligand="O", event_method="symmetry")
    sym = r.events["symmetry"]
    assert r.rotation_events == 1 and sym["count"] == 1
    assert sym["angle_deg"][0] == pytest.approx(120.0, abs=1e-6)
    assert sym["frame"][0] == 18      # first frame with every ligand within 30° of a new site: 90° turned
    # the plain 70° threshold fires on the way (109.5° chord angle > 70° at 80° turn)
    assert r.events["threshold"]["count"] == 1
    # and an exact instantaneous jump
    R2 = np.stack([axis_angle(axis, 0.0)] * 5 + [axis_angle(axis, 2 * np.pi / 3)] * 5)[:, None]
    r2 = reorientation(rigid_traj(R2)[0], center="S", ligand="O", event_method="symmetry")
    assert r2.rotation_events == 1 and r2.events["symmetry"]["frame"][0] == 5


def test_c4_rotation_octahedron():
    R = np.stack([np.eye(3)] * 4 + [axis_angle([0, 0, 1], np.pi / 2)] * 4)[:, None]
    traj, _, _ = rigid_traj(R, shape=OCT, bond=2.4)
    r = reorientation(traj, center="S", ligand="O", event_method="symmetry")
    assert r.rotation_events == 1
    assert r.events["symmetry"]["angle_deg"][0] == pytest.approx(90.0, abs=1e-6)


def test_libration_gives_no_events():
    rng = np.random.default_rng(5)
    n = 200
    R = np.stack([axis_angle(rng.normal(size=3), np.radians(15) * np.sin(0.3 * t)) for t in range(n)])[:, None]
    r = reorientation(rigid_traj(R)[0], center="S", ligand="O")
    assert r.rotation_events == 0 and r.events["symmetry"]["count"] == 0
    assert not r.rotating and r.C1_at_reliable_lag > 0.9


@settings(deadline=None, max_examples=20)
@given(u=arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 4), st.just(3)),
                elements=st.floats(-1, 1)),
       mem=st.sampled_from([None, 5000]))
def test_fft_equals_direct_double_loop(u, mem):
    r = np.linalg.norm(u, axis=-1, keepdims=True)
    u = np.where(r > 1e-3, u / np.where(r > 1e-3, r, 1), np.array([0.0, 0.0, 1.0]))
    a1, a2 = orientation_acf(u, memory=mem)
    b1, b2 = orientation_acf_direct(u)
    npt.assert_allclose(a1, b1, atol=1e-12)
    npt.assert_allclose(a2, b2, atol=1e-12)
    c1, c2 = orientation_acf(u, use_ext=False)
    npt.assert_allclose(c1, a1, atol=1e-13)
    assert a1[0] == pytest.approx(1.0) and a2[0] == pytest.approx(1.0)


def test_orientation_acf_edge_cases():
    assert orientation_acf(np.zeros((0, 2, 3)))[0].shape == (0,)
    c1, c2 = orientation_acf(np.array([[[0.0, 0, 1]]]))
    npt.assert_allclose([c1[0], c2[0]], [1, 1])
    with pytest.raises(ValueError, match=r"u must have shape \(n_frames, n_vectors, 3\)"):
        orientation_acf(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="has no vectors"):
        orientation_acf(np.zeros((3, 0, 3)))


def _brownian_small(seed=1, n=200):
    rng = np.random.default_rng(seed)
    pos, sp, cell = rotational_brownian(rng, n, 8, 0.05, 1.0, box=16.0)
    return pos, sp, cell


@settings(deadline=None, max_examples=8)
@given(seed=st.integers(0, 1000))
def test_invariant_under_atom_permutation_translation_lattice_shifts(seed):
    pos, sp, cell = _brownian_small()
    rng = np.random.default_rng(seed)
    ref = reorientation(anionmotion.from_arrays(pos, cell, species=sp, frame_interval=0.05), center="P", ligand="S")
    perm = rng.permutation(pos.shape[1])
    moved = pos[:, perm] + rng.normal(size=3) * 7
    k = rng.integers(pos.shape[1])
    moved[:, k] += rng.integers(-2, 3, size=3) @ cell          # a lattice vector added to one atom
    frac = moved @ np.linalg.inv(cell)
    frac -= np.floor(frac)                                       # and everything wrapped
    t2 = anionmotion.from_arrays(frac, cell, species=[sp[i] for i in perm], frame_interval=0.05, style="fractional")
    r = reorientation(t2, center="P", ligand="S")
    npt.assert_allclose(r.C1, ref.C1, atol=1e-10)
    npt.assert_allclose(r.C2, ref.C2, atol=1e-10)
    assert r.rotation_events == ref.rotation_events
    assert r.events["symmetry"]["count"] == ref.events["symmetry"]["count"]
    npt.assert_allclose(np.sort(r.events["threshold"]["per_anion"]), np.sort(ref.events["threshold"]["per_anion"]))
    npt.assert_allclose(r.rho, ref.rho, atol=1e-12)
    assert r.rotating == ref.rotating
    npt.assert_allclose(r.framework["AAL_A"], ref.framework["AAL_A"])


def test_ext_equals_ref_twins():
    pos, sp, cell = _brownian_small(seed=3)
    traj = anionmotion.from_arrays(pos, cell, species=sp, frame_interval=0.05)
    a = reorientation(traj, center="P", ligand="S")
    b = reorientation(traj, center="P", ligand="S", use_ext=False)
    npt.assert_allclose(a.C1, b.C1, atol=1e-12)
    npt.assert_allclose(a.C2, b.C2, atol=1e-12)
    for m in ("threshold", "symmetry"):
        npt.assert_array_equal(a.events[m]["frame"], b.events[m]["frame"])
        npt.assert_array_equal(a.events[m]["anion"], b.events[m]["anion"])


@settings(deadline=None, max_examples=30)
@given(seed=st.integers(0, 10_000), thr=st.floats(20, 150))
def test_event_kernels_match_ref(seed, thr):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(40, 3, 4, 3))
    u = np.cumsum(u * 0.3, axis=0) + TET[None, None] * 2
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    u[:, 2, 3] = np.nan                                          # padding ligand of anion 2
    npt.assert_array_equal(rotation_events_threshold(u, thr), rotation_events_threshold(u, thr, use_ext=False))
    nv = np.array([4, 4, 3])
    npt.assert_array_equal(rotation_events_symmetry(u, nv, 30.0), rotation_events_symmetry(u, nv, 30.0, use_ext=False))
    ins = rng.random((60, 5)) < 0.6
    for m in (1, 3):
        npt.assert_array_equal(residence_runs(ins, m), residence_runs(ins, m, use_ext=False))


def test_residence_runs_analytic():
    ins = np.zeros((10, 2), bool)
    ins[2:7, 0] = True
    ins[0:2, 1] = True
    ins[8:, 1] = True
    npt.assert_array_equal(residence_runs(ins, 1), [[0, 2, 7], [1, 0, 2], [1, 8, 10]])
    npt.assert_array_equal(residence_runs(ins, 3), [[0, 2, 7]])
    with pytest.raises(ValueError, match="min_len must be at least 1"):
        residence_runs(ins, 0)


def test_kabsch_angle_and_density_normalisation():
    R = axis_angle([1, 2, 3], 0.7)
    npt.assert_allclose(kabsch_angle(TET, TET @ R.T), np.degrees(0.7), atol=1e-8)
    rng = np.random.default_rng(0)
    u = rng.normal(size=(50, 3, 4, 3))
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    rho, per, te, pe = ligand_density(u, bins=(18, 36))
    dom = (np.cos(np.radians(te[:-1])) - np.cos(np.radians(te[1:])))[:, None] * np.radians(np.diff(pe))[None]
    assert (rho * dom).sum() == pytest.approx(1.0)
    npt.assert_allclose((per * dom).sum(axis=(1, 2)), 1.0)
    # a bond along +y has θ = 90°, φ = 0; along +x φ = 90°
    v = np.array([[[[0.0, 1, 0], [1.0, 0, 0]]]])
    rho, _, te, pe = ligand_density(v, bins=(4, 8))
    it, ip = np.nonzero(rho)
    assert set(zip(it.tolist(), ip.tolist())) == {(2, 4), (2, 6)}


def test_fit_relaxation_exponential():
    t = np.linspace(0, 10, 501)
    f = fit_relaxation(t, np.exp(-(t / 2.0) ** 0.7))
    assert f["tau_kww_ps"] == pytest.approx(2.0, rel=1e-3) and f["beta"] == pytest.approx(0.7, rel=1e-3)
    assert fit_relaxation(t, np.ones_like(t))["tau_mean_ps"] is None


def test_errors_and_edge_cases():
    R = np.broadcast_to(np.eye(3), (5, 1, 3, 3))
    traj, pos, sp = rigid_traj(R)
    with pytest.raises(OptionError, match="invalid event_method 'x'; choose one of threshold, symmetry"):
        reorientation(traj, center="S", ligand="O", event_method="x")
    with pytest.raises(OptionError, match=r"threshold must be an angle in \(0, 180\)"):
        reorientation(traj, center="S", ligand="O", threshold=0)
    with pytest.raises(OptionError, match="site_tolerance 60.0° must be below half"):
        reorientation(traj, center="S", ligand="O", event_method="symmetry", site_tolerance=60)
    with pytest.raises(OptionError, match=r"reliable_fraction must be in \(0, 1\]"):
        reorientation(traj, center="S", ligand="O", reliable_fraction=0)
    with pytest.raises(OptionError, match="at least 2 frames; got 1"):
        reorientation(traj, center="S", ligand="O", stop=1)
    t3 = anionmotion.from_arrays(pos, np.eye(3) * 20, times=[0, 0.1, 0.2, 0.4, 0.5], species=sp)
    with pytest.raises(OptionError, match="evenly spaced frames"):
        reorientation(t3, center="S", ligand="O")
    r = reorientation(traj, center="S", ligand="O", stop=2)     # 2 frames
    assert r.C1.shape == (2,) and r.n_anions == 1
    # the polyanions object can be passed in
    pa = find_polyanions(traj, center="S", ligand="O")
    assert reorientation(traj, polyanions=pa).n_anions == 1


def test_cli_reorient_json_plot_and_rho(tmp_path, monkeypatch):
    import json

    from anionmotion.cli import main
    from anionmotion.cli import reorient as cli_reorient

    pos, sp, cell = _brownian_small(seed=2, n=100)
    traj = anionmotion.from_arrays(pos, cell, species=sp, frame_interval=0.05)
    monkeypatch.setattr(cli_reorient, "open_from_args", lambda args: traj)
    out = tmp_path / "r.json"
    rc = main(["reorient", "x.traj", "--center", "P", "--ligand", "S", "--json", str(out), "--plot",
               str(tmp_path / "r.png"), "--rho", str(tmp_path / "rho.png"), "--rho-csv", str(tmp_path / "rho.csv")])
    assert rc == 0
    d = json.loads(out.read_text())
    assert d["n_anions"] == 8 and len(d["C1"]) == 100 and d["framework"]["connectivity"] == "isolated"
    assert (tmp_path / "r.png").stat().st_size > 1000 and (tmp_path / "rho.png").exists()
    assert (tmp_path / "rho.csv").read_text().count("\n") == 1 + 36 * 72      # header + one row per bin
    rc = main(["reorient", "x.traj", "--center", "P", "--ligand", "S", "--json", str(out)])
    assert rc == 2                                   # refuses to overwrite
    rc = main(["reorient", "x.traj", "--center", "P", "--ligand", "S", "--rho-anion", "3", "--rho-csv",
               str(tmp_path / "rho3.csv")])
    assert rc == 0
    ref = anionmotion.reorientation(traj, center="P", ligand="S")
    rho3 = np.loadtxt(tmp_path / "rho3.csv", delimiter=",", skiprows=1)[:, 4].reshape(36, 72)
    np.testing.assert_allclose(rho3, ref.rho_per_anion[3], rtol=1e-9)   # anion 3 only, not all anions
    assert not np.allclose(rho3, ref.rho)
    rc = main(["reorient", "x.traj", "--center", "P", "--ligand", "S", "--rho-anion", "8", "--rho-csv",
               str(tmp_path / "rho8.csv")])
    assert rc == 2                                   # only 8 anions


def test_per_species_and_clusters():
    rng = np.random.default_rng(7)
    # two centre species: Si anions static, Ge anions turning every frame at random
    n = 40
    R_static = np.broadcast_to(random_rotations(rng, 2)[None], (n, 2, 3, 3))
    R_rand = random_rotations(rng, 2 * n).reshape(n, 2, 3, 3)
    traj, pos, sp = rigid_traj(np.concatenate([R_static, R_rand], axis=1))
    sp = ["Si" if (s == "S" and i < 10) else "Ge" if s == "S" else s for i, s in enumerate(sp)]
    traj = anionmotion.from_arrays(pos, np.eye(3) * 20, species=sp, frame_interval=0.1)
    r = reorientation(traj, center="Si Ge", ligand="O")
    assert set(r.per_species) == {"Si", "Ge"}
    npt.assert_allclose(r.per_species["Si"]["C1"], 1.0, atol=1e-12)
    assert not r.per_species["Si"]["rotating"] and r.per_species["Ge"]["rotating"]
    assert r.relaxation["C1"]["tau_mean_ps"] is None or r.relaxation["C1"]["fit_ok"]
    # centre-less B6H6 clusters turning rigidly: reorientation uses centre of mass → H vectors
    frames = []
    Rs = [axis_angle([0, 0, 1], 0.05 * t) for t in range(n)]
    for t in range(n):
        fr = []
        for c in (np.array([3.0, 3, 3]), np.array([10.0, 9, 9])):
            for v in OCT:
                fr += [c + (v * 1.2) @ Rs[t].T, c + (v * 2.4) @ Rs[t].T]
        frames.append(fr)
    sp = (["B", "H"] * 6) * 2
    tr = anionmotion.from_arrays(np.array(frames) % 14, np.eye(3) * 14, species=sp, frame_interval=0.1,
                                 style="wrapped")
    rc = reorientation(tr, cluster="B H")
    assert rc.n_anions == 2 and rc.n_ligands == 6 and rc.species.startswith("cluster")
    # C1 of a uniform rotation about z by ω t: ligands on z keep cos = 1, the 4 in-plane ones cos(ω t)
    lag = rc.lag_ps
    npt.assert_allclose(rc.C1, (2 + 4 * np.cos(0.5 * lag)) / 6, atol=1e-9)


def test_angle_projections_follow_the_ligand_most_aligned_with_c():
    # a tetrahedron turning about z: its ligand nearest +z keeps θc constant while θa, θb change
    n = 30
    R = np.stack([axis_angle([0, 0, 1], 0.1 * t) @ axis_angle([1, 2, 3], 0.4) for t in range(n)])[:, None]
    traj, pos, sp = rigid_traj(R)
    r = reorientation(traj, center="S", ligand="O")
    th = r.angles_deg[:, 0]
    npt.assert_allclose(th[:, 2], th[0, 2], atol=1e-9)
    assert np.ptp(th[:, 0]) > 10
    perm = np.r_[0, 4, 3, 2, 1]                         # reverse the ligand order in the file
    t2 = anionmotion.from_arrays(pos[:, perm], np.eye(3) * 20, species=[sp[i] for i in perm], frame_interval=0.1)
    npt.assert_allclose(reorientation(t2, center="S", ligand="O").angles_deg, r.angles_deg, atol=1e-9)
