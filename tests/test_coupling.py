import json
from types import SimpleNamespace

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings, strategies as st

import anionmotion
from anionmotion.analysis.coupling import coincidence, coupling, first_shell_radius, min_image_rows
from anionmotion.analysis.timeline import timeline
from anionmotion.errors import OptionError

from _polyanion_models import TET, axis_angle


def fake_hops(atoms, frames, a=3.0):
    atoms = np.asarray(atoms, dtype=np.int64)
    frames = np.asarray(frames, dtype=np.int64)
    return SimpleNamespace(event_atom=atoms, event_frame=frames, a_A=a, residence_ps=1.0, window_ps=2.0,
                           jump_frequency_per_ns=0.0)


def coupled_system(n=120, seed=0, coupled=True, box=14.0):
    """One SO4 at the box centre turning about z by a random walk; one Li riding on ligand 0 (coupled)
    or walking around the centre independently; a second, far Li that never enters the shell."""
    rng = np.random.default_rng(seed)
    c = np.array([7.0, 7.0, 7.0])
    phi = np.cumsum(rng.normal(0, 0.08, n))
    psi = np.cumsum(rng.normal(0, 0.08, n))
    pos = np.zeros((n, 7, 3))
    for t in range(n):
        R = axis_angle([0, 0, 1], phi[t])
        pos[t, 0] = c
        pos[t, 1:5] = c + (TET * 1.5) @ R.T
        d0 = TET[0] / np.linalg.norm(TET[0]) * 3.0
        pos[t, 5] = c + (d0 @ R.T if coupled else d0 + rng.normal(0, 0.2, 3))
        pos[t, 6] = c + np.array([6.5, 6.5, 0.5])
    sp = ["S", "O", "O", "O", "O", "Li", "Li"]
    return pos, sp, np.eye(3) * box


def test_rigidly_coupled_cation_gives_pearson_one():
    pos, sp, cell = coupled_system()
    traj = anionmotion.from_arrays(pos, cell, species=sp, frame_interval=0.1)
    r = coupling(traj, cation="Li", center="S", ligand="O", shell=4.0, hops=fake_hops([], []))
    assert r.n_events == 1 and r.event_cation[0] == 5 and r.event_ligand[0] == 1
    assert r.event_start_frame[0] == 0 and r.event_duration_ps[0] == pytest.approx(11.9)
    npt.assert_allclose(r.pearson, [1.0], atol=1e-9)
    assert r.pearson_mean == pytest.approx(1.0) and r.fraction_coupled == 1.0
    assert r.coincidence["n_pairs"] == 0 and r.coincidence["note"] == "no hops detected"
    d = r.to_dict()
    for key in ("n_events", "pearson", "pearson_mean", "coincidence"):
        assert key in d
    json.dumps(d)


def test_independent_cation_gives_small_r():
    rs = []
    for seed in range(8):
        pos, sp, cell = coupled_system(n=300, seed=seed, coupled=False)
        traj = anionmotion.from_arrays(pos, cell, species=sp, frame_interval=0.1)
        rs.append(coupling(traj, cation="Li", center="S", ligand="O", shell=4.0, hops=fake_hops([], [])).pearson[0])
    # a cation jittering on its site (no drift) is uncorrelated with the anion's rotation
    assert abs(np.mean(rs)) < 0.15 and np.all(np.abs(rs) < 0.35)


def test_residence_events_respect_shell_and_minimum_time():
    pos, sp, cell = coupled_system(n=100)
    pos = pos.copy()
    pos[30:40, 5] += np.array([0, 0, 3.0])          # the cation leaves the 4 Å shell for 1 ps
    pos[70:75, 5] += np.array([0, 0, 3.0])          # and for 0.5 ps
    traj = anionmotion.from_arrays(pos, cell, species=sp, frame_interval=0.1)
    r = coupling(traj, cation="Li", center="S", ligand="O", shell=4.0, min_residence=1.0, hops=fake_hops([], []))
    npt.assert_array_equal(r.event_start_frame, [0, 40, 75])
    npt.assert_array_equal(r.event_stop_frame, [30, 70, 100])
    # a run of 30 frames (0..29) lasts 29 × 0.1 = 2.9 ps; 75..99 lasts 2.4 ps
    r = coupling(traj, cation="Li", center="S", ligand="O", shell=4.0, min_residence=2.9, hops=fake_hops([], []))
    npt.assert_array_equal(r.event_start_frame, [0, 40])
    npt.assert_allclose(r.event_duration_ps, [2.9, 2.9])
    r = coupling(traj, cation="Li", center="S", ligand="O", shell=4.0, min_residence=3.0, hops=fake_hops([], []))
    assert r.n_events == 0 and r.pearson_mean is None


def test_coincidence_detects_rotation_at_hop_times():
    rng = np.random.default_rng(1)
    n, n_an = 400, 4
    hop_frames = np.array([60, 150, 240, 330])
    u = np.repeat(TET[None, None], n, 0).repeat(n_an, 1).copy()    # (n, A, 4, 3)
    for a in range(n_an):
        ang = np.cumsum(rng.normal(0, 0.01, n))
        ang += 1.2 * (np.arange(n) >= hop_frames[a])               # a 69° turn at the hop
        R = np.stack([axis_angle([0, 0, 1], x) for x in ang])
        u[:, a] = np.einsum("tij,lj->tli", R, TET)
    c = coincidence(u, hop_frames, np.arange(n_an), window_frames=10, dt_ps=0.1, n_permutations=500, seed=3)
    assert c["n_pairs"] == 4 and c["ratio"] > 3 and c["p_value"] < 0.01
    # same anions, hops at random times: no signal
    c0 = coincidence(u, np.array([20, 110, 200, 380]), np.arange(n_an), window_frames=10, dt_ps=0.1,
                     n_permutations=500, seed=3)
    assert c0["p_value"] > 0.05
    short = coincidence(u[:15], hop_frames, np.arange(n_an), window_frames=10, dt_ps=0.1)
    assert short["n_pairs"] == 0 and "too short" in short["note"]


def test_coupling_runs_coincidence_with_given_hops():
    pos, sp, cell = coupled_system(n=200)
    traj = anionmotion.from_arrays(pos, cell, species=sp, frame_interval=0.1)
    r = coupling(traj, cation="Li", center="S", ligand="O", shell=4.0, hops=fake_hops([5, 6], [100, 150]),
                 n_permutations=200)
    co = r.coincidence
    assert co["n_hops"] == 2 and co["n_pairs"] == 2 and 0 < co["p_value"] <= 1
    assert co["window_ps"] == pytest.approx(1.0)


def test_first_shell_radius_between_shells():
    rng = np.random.default_rng(0)
    d = np.concatenate([rng.normal(3.0, 0.15, 4000), rng.uniform(4.8, 9.0, 40000)])
    r, rr, g = first_shell_radius(d, volume=1000.0, n_pairs_per_frame=100, n_frames=10, r_max=9.0)
    assert 3.4 < r < 4.9
    with pytest.raises(OptionError, match="no first minimum"):
        first_shell_radius(np.linspace(0.5, 9, 1000) ** 0.5 * 3, 1000.0, 1, 1, r_max=9.0)
    with pytest.raises(OptionError, match="no centre–cation pairs"):
        first_shell_radius(np.array([]), 1000.0, 1, 1, r_max=9.0)


def test_auto_shell_on_lattice():
    pos, sp, cell = coupled_system(n=50)
    traj = anionmotion.from_arrays(pos, cell, species=sp, frame_interval=0.1)
    with pytest.raises(OptionError, match="give shell="):
        coupling(traj, cation="Li", center="S", ligand="O", hops=fake_hops([], []))


@settings(deadline=None, max_examples=10)
@given(seed=st.integers(0, 1000))
def test_min_image_rows_matches_bruteforce(seed):
    rng = np.random.default_rng(seed)
    cells = np.array([[[8.0, 0, 0], [rng.uniform(-4, 4), 7.5, 0], [rng.uniform(-3, 3), rng.uniform(-3, 3), 7.0]]
                      for _ in range(20)])
    d = rng.uniform(-15, 15, size=(20, 3))
    got = min_image_rows(d, cells)
    g = np.arange(-4, 5)
    sh = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    exp = np.array([min(d[i] + sh @ cells[i], key=lambda v: v @ v) for i in range(20)])
    npt.assert_allclose(np.linalg.norm(got, axis=1), np.linalg.norm(exp, axis=1), atol=1e-10)


@settings(deadline=None, max_examples=6)
@given(seed=st.integers(0, 1000))
def test_coupling_invariant_under_permutation_and_shifts(seed):
    pos, sp, cell = coupled_system(n=80, coupled=False, seed=4)
    rng = np.random.default_rng(seed)
    ref = coupling(anionmotion.from_arrays(pos, cell, species=sp, frame_interval=0.1), cation="Li", center="S",
                   ligand="O", shell=4.0, hops=fake_hops([], []))
    perm = rng.permutation(pos.shape[1])
    moved = pos[:, perm] + rng.normal(size=3) * 5
    moved[:, rng.integers(7)] += rng.integers(-2, 3, size=3) * 14.0
    t2 = anionmotion.from_arrays(moved % 14.0, cell, species=[sp[i] for i in perm], frame_interval=0.1,
                                 style="wrapped")
    r = coupling(t2, cation="Li", center="S", ligand="O", shell=4.0, hops=fake_hops([], []))
    assert r.n_events == ref.n_events
    npt.assert_allclose(np.sort(r.pearson), np.sort(ref.pearson), atol=1e-9)


def test_errors():
    pos, sp, cell = coupled_system(n=20)
    traj = anionmotion.from_arrays(pos, cell, species=sp, frame_interval=0.1)
    with pytest.raises(OptionError, match="no atoms of species Na"):
        coupling(traj, cation="Na", center="S", ligand="O", shell=4.0)
    with pytest.raises(OptionError, match="cation must be one species"):
        coupling(traj, cation="Li Na", center="S", ligand="O", shell=4.0)
    with pytest.raises(OptionError, match="part of the polyanions"):
        coupling(traj, cation="O", center="S", ligand="O", shell=4.0)
    with pytest.raises(OptionError, match="min_residence must be a positive time"):
        coupling(traj, cation="Li", center="S", ligand="O", shell=4.0, min_residence=0)
    with pytest.raises(OptionError, match="shell must be a positive distance"):
        coupling(traj, cation="Li", center="S", ligand="O", shell=-1.0)
    with pytest.raises(OptionError, match="at least 3 frames; got 2"):
        coupling(traj, cation="Li", center="S", ligand="O", shell=4.0, stop=2, hops=fake_hops([], []))


# ---------------------------------------------------------------- timelines
def hop_system(n=60):
    """Two SO4 (one static, one turning by 90° about z between frames 20 and 30) and a Li that moves 4 Å
    along x between frames 20 and 30, next to both."""
    box = 16.0
    c1, c2 = np.array([4.0, 8.0, 8.0]), np.array([12.0, 8.0, 8.0])
    pos = np.zeros((n, 11, 3))
    ang = np.clip((np.arange(n) - 20) / 10, 0, 1) * np.pi / 2
    for t in range(n):
        pos[t, 0] = c1
        pos[t, 1:5] = c1 + TET * 1.5
        pos[t, 5] = c2
        pos[t, 6:10] = c2 + (TET * 1.5) @ axis_angle([0, 0, 1], ang[t]).T
        pos[t, 10] = np.array([6.0 + 4.0 * np.clip((t - 20) / 10, 0, 1), 8.0, 10.5])
    sp = ["S"] + ["O"] * 4 + ["S"] + ["O"] * 4 + ["Li"]
    return anionmotion.from_arrays(pos, np.eye(3) * box, species=sp, frame_interval=0.1), pos


def test_timeline_of_a_synthetic_hop():
    traj, pos = hop_system()
    res = timeline(traj, cation="Li", center="S", ligand="O", hops=fake_hops([10], [25]), half_width=2.0)
    assert res.n_hops_total == 1 and len(res.hops) == 1
    h = res.hops[0]
    assert h["hop_frame"] == 25 and h["times_ps"][0] == pytest.approx(0.5) and len(h["times_ps"]) == 41
    npt.assert_allclose(h["cation_displacement_A"][-1], 4.0, atol=1e-9)
    assert set(h["anions"].tolist()) == {0, 1}
    k_static = list(h["anions"]).index(0)
    k_turn = 1 - k_static
    npt.assert_allclose(h["ligand_angle_deg"][:, k_static], 0.0, atol=1e-6)
    # ligands at 54.7° from z turned by 90° about z: chord angle arccos(cos²θ + sin²θ cos 90°)
    th = np.arccos(1 / np.sqrt(3))
    npt.assert_allclose(h["ligand_angle_deg"][-1, k_turn], np.degrees(np.arccos(np.cos(th) ** 2)), atol=1e-6)
    npt.assert_allclose(h["center_ligand_A"], 1.5, atol=1e-9)
    t_last = 45
    got = h["cation_ligand_A"][-1, k_turn]
    npt.assert_allclose(got, np.linalg.norm(pos[t_last, 10] - pos[t_last, 6:10], axis=-1), atol=1e-9)
    csv = res.to_csv()
    assert csv.count("\n") == 2 + 41 * 2 * 4
    assert res.to_dict()["hops"][0]["hop"] == 0


def test_timeline_selection_and_errors(tmp_path, monkeypatch):
    traj, _ = hop_system()
    hops = fake_hops([10, 10], [25, 50])
    res = timeline(traj, cation="Li", center="S", ligand="O", hops=hops, hop=1, half_width=1.0, n_nearest=1)
    assert len(res.hops) == 1 and res.hops[0]["hop"] == 1 and len(res.hops[0]["times_ps"]) == 20   # 40..59: clipped at the end
    with pytest.raises(OptionError, match=r"hop 5 does not exist: 2 Li hop\(s\) were detected"):
        timeline(traj, cation="Li", center="S", ligand="O", hops=hops, hop=5)
    with pytest.raises(OptionError, match="n_nearest must be at least 1"):
        timeline(traj, cation="Li", center="S", ligand="O", hops=hops, n_nearest=0)
    with pytest.raises(OptionError, match="half_width must be a positive time"):
        timeline(traj, cation="Li", center="S", ligand="O", hops=hops, half_width=-1)
    # CLI with a monkeypatched reader and hops
    from anionmotion.cli import main
    from anionmotion.cli import coupling as cli_coupling
    from anionmotion.cli import timeline as cli_timeline
    import anionmotion.analysis.hops as hops_mod

    monkeypatch.setattr(cli_timeline, "open_from_args", lambda args: traj)
    monkeypatch.setattr(cli_coupling, "open_from_args", lambda args: traj)
    monkeypatch.setattr(hops_mod, "hops", lambda *a, **k: hops)
    rc = main(["timeline", "x", "--cation", "Li", "--center", "S", "--ligand", "O", "--hop", "0", "--csv",
               str(tmp_path / "t.csv"), "--plot", str(tmp_path / "t.png"), "--json", str(tmp_path / "t.json")])
    assert rc == 0 and (tmp_path / "t.png").stat().st_size > 1000
    assert (tmp_path / "t.csv").read_text().startswith("# hop timelines")
    rc = main(["coupling", "x", "--cation", "Li", "--center", "S", "--ligand", "O", "--shell", "5", "--json",
               str(tmp_path / "c.json"), "--plot", str(tmp_path / "c.png"), "--permutations", "50"])
    assert rc == 0
    d = json.loads((tmp_path / "c.json").read_text())
    assert {"n_events", "pearson", "pearson_mean", "coincidence"} <= set(d)


def test_none_means_default_and_option_errors():
    pos, sp, cell = coupled_system(n=40)
    traj = anionmotion.from_arrays(pos, cell, species=sp, frame_interval=0.1)
    r = coupling(traj, cation="Li", center="S", ligand="O", shell=4.0, hops=fake_hops([], []), min_residence=None,
                 coincidence_window=None, n_permutations=None, n_nearest=None)
    assert r.min_residence_ps == 1.0
    with pytest.raises(OptionError, match="coincidence_window must be a positive time"):
        coupling(traj, cation="Li", center="S", ligand="O", shell=4.0, coincidence_window=0)
    with pytest.raises(OptionError, match="n_permutations must be at least 1"):
        coupling(traj, cation="Li", center="S", ligand="O", shell=4.0, n_permutations=0)
    from anionmotion.analysis.reorientation import reorientation
    ro = reorientation(traj, center="S", ligand="O", threshold=None, site_tolerance=None, reliable_fraction=None)
    assert ro.meta["threshold_deg"] == 70.0 and ro.meta["reliable_fraction"] == 0.5


@settings(deadline=None, max_examples=5)
@given(seed=st.integers(0, 1000))
def test_timeline_invariant_under_permutation_and_shifts(seed):
    traj, pos = hop_system()
    rng = np.random.default_rng(seed)
    sp = list(traj.species)
    ref = timeline(traj, cation="Li", center="S", ligand="O", hops=fake_hops([10], [25]), half_width=2.0)
    perm = rng.permutation(pos.shape[1])
    moved = pos[:, perm] + rng.normal(size=3) * 4
    moved[:, rng.integers(pos.shape[1])] += rng.integers(-2, 3, size=3) * 16.0
    t2 = anionmotion.from_arrays(moved % 16.0, np.eye(3) * 16, species=[sp[i] for i in perm], frame_interval=0.1,
                                 style="wrapped")
    new_li = int(np.nonzero(perm == 10)[0][0])
    r = timeline(t2, cation="Li", center="S", ligand="O", hops=fake_hops([new_li], [25]), half_width=2.0)
    a, b = ref.hops[0], r.hops[0]
    npt.assert_allclose(b["cation_displacement_A"], a["cation_displacement_A"], atol=1e-9)
    for key in ("ligand_angle_deg", "center_ligand_A", "cation_ligand_A"):
        npt.assert_allclose(np.sort(b[key].reshape(len(b["times_ps"]), -1), axis=1),
                            np.sort(a[key].reshape(len(a["times_ps"]), -1), axis=1), atol=1e-8)
