"""Sites: assignment kernels and their twins, the debounce, residence/transition statistics, streaming,
site construction from structures and densities, and the argyrodite validation (docs/sites.md)."""

import json
import os
import warnings

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anionmotion as am
from anionmotion.analysis.sites import (Sites, SiteSet, assign_sites, sites, sites_from_density,
                                        sites_from_density_grid, sites_from_structure)
from anionmotion.errors import OptionError
from anionmotion.kernels import sites as K

HERE = os.path.dirname(__file__)
ARGY = os.path.join(HERE, "data", "argyrodite")
CIF = os.path.join(ARGY, "argyrodite_sites.cif")
SUBSET_0P = os.path.join(ARGY, "Li6PS5Cl_0p_run1_first10_XDATCAR.gz")
FULL_100P = os.path.join(ARGY, "Li6PS5Cl_100p_run1_XDATCAR.gz")

L = 10.0
CELL = np.eye(3) * L
# 2×2×2 simple-cubic sites, 5 Å apart; sites 0–3 are type A, 4–7 type B
GRID_FRAC = np.array([[0.25 + 0.5 * i, 0.25 + 0.5 * j, 0.25 + 0.5 * k]
                      for i in range(2) for j in range(2) for k in range(2)])
TYPES = np.array([0, 0, 0, 0, 1, 1, 1, 1])


def cubic_sites(kind="voronoi", radius=None):
    return SiteSet(kind, GRID_FRAC.copy(), TYPES.copy(), ["A", "B"], None, radius)


def scripted_traj(seq, dt=0.1, noise=0.05, seed=0, extra=None):
    """Ions following site sequences ``seq`` (n_ions lists of site indices per frame; −1 = halfway to the
    next-listed neighbour), with small Gaussian noise."""
    rng = np.random.default_rng(seed)
    seq = np.asarray(seq)
    n_ions = seq.shape[0]
    pos = GRID_FRAC[np.where(seq >= 0, seq, 0)].transpose(1, 0, 2) * L
    pos = pos + rng.normal(0, noise, pos.shape)
    if extra is not None:
        pos[extra[0], extra[1]] = extra[2]
    return am.from_arrays(pos, CELL, species=["Li"] * n_ions, frame_interval=dt, style="wrapped")


def runs(*segments):
    """[(site, n_frames), …] → per-frame site list."""
    out = []
    for s, n in segments:
        out += [s] * n
    return out


def random_hops(n_ions, n_frames, p_hop, seed, n_sites=8):
    rng = np.random.default_rng(seed)
    seq = np.empty((n_ions, n_frames), dtype=int)
    seq[:, 0] = rng.integers(0, n_sites, n_ions)
    for t in range(1, n_frames):
        hop = rng.random(n_ions) < p_hop
        seq[:, t] = np.where(hop, rng.integers(0, n_sites, n_ions), seq[:, t - 1])
    return seq


# ----------------------------------------------------------------------------- kernels vs twins
def _random_tetra(rng, F, S, cell_noise=0.8):
    cells = np.array([np.diag([9.0, 10.0, 11.0]) + rng.normal(0, cell_noise, (3, 3)) for _ in range(F)])
    base = rng.uniform(0, 9, (S, 3))
    verts = np.stack([base[:, None, :] + rng.normal(0, 1.4, (S, 4, 3)) for _ in range(F)])
    return cells, verts


@pytest.mark.parametrize("seed", range(4))
def test_assign_polyhedra_matches_twin(seed):
    rng = np.random.default_rng(seed)
    cells, verts = _random_tetra(rng, 3, 50)
    ions = rng.uniform(-15, 25, (3, 120, 3))
    a = K.assign_polyhedra(ions, verts, cells)
    b = K.assign_polyhedra_ref(ions, verts, cells)
    npt.assert_array_equal(a, b)
    assert (a >= 0).any() and (a < 0).any()


def test_assign_polyhedra_known_tetrahedron():
    cell = np.eye(3)[None] * 10.0
    verts = np.array([[[[0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, 2]]]], float)
    ions = np.array([[[0.3, 0.3, 0.3], [1.0, 1.0, 1.0], [-0.1, 0.5, 0.5], [10.3, 0.3, -9.7]]])
    npt.assert_array_equal(K.assign_polyhedra(ions, verts, cell), [[0, -1, -1, 0]])
    # a vertex stored in another periodic image describes the same tetrahedron
    verts2 = verts.copy()
    verts2[0, 0, 2] += [0, 10, 0]
    npt.assert_array_equal(K.assign_polyhedra(ions, verts2, cell), [[0, -1, -1, 0]])
    # two tetrahedra sharing a face: the ion goes to the one it is deeper in
    v = np.array([[[0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, 2]], [[2, 2, 2], [2, 0, 0], [0, 2, 0], [0, 0, 2]]], float)
    ions = np.array([[[0.62, 0.62, 0.62], [0.75, 0.75, 0.75]]])
    npt.assert_array_equal(K.assign_polyhedra(ions, v[None], cell), [[0, 1]])


@pytest.mark.parametrize("seed", range(3))
def test_assign_nearest_matches_twin(seed):
    rng = np.random.default_rng(seed)
    cells, verts = _random_tetra(rng, 3, 40)
    centres = verts.mean(2)
    ions = rng.uniform(-15, 25, (3, 100, 3))
    npt.assert_array_equal(K.assign_nearest(ions, centres, cells), K.assign_nearest_ref(ions, centres, cells))
    a = K.assign_nearest(ions, centres, cells, radius=1.2)
    npt.assert_array_equal(a, K.assign_nearest_ref(ions, centres, cells, radius=1.2))
    assert (a < 0).any() and (a >= 0).any()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n_sites=st.integers(1, 150), scale=st.floats(0.4, 4.0),
       radius=st.sampled_from([None, 0.7, 2.5, 8.0]))
def test_assign_nearest_cell_list_matches_all_pairs(seed, n_sites, scale, radius):
    """The compiled kernel searches a cell list and falls back to all centres when the nearest is not
    provably inside the searched bins: same answer as the all-pairs twin for sparse, dense and tiny sets."""
    rng = np.random.default_rng(seed)
    cells = np.array([np.diag([9.0, 10.0, 11.0]) * scale + rng.normal(0, 0.5, (3, 3)) for _ in range(2)])
    centres = rng.uniform(-5, 40, (2, n_sites, 3))
    ions = rng.uniform(-20, 40, (2, 90, 3))
    npt.assert_array_equal(K.assign_nearest(ions, centres, cells, radius=radius),
                           K.assign_nearest_ref(ions, centres, cells, radius=radius))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n_min=st.integers(1, 4), cap=st.integers(1, 40))
def test_debounce_matches_twin(seed, n_min, cap):
    rng = np.random.default_rng(seed)
    raw = rng.integers(-1, 4, (60, 5))
    raw[rng.random(raw.shape) < 0.5] = 2   # long stays so that changes are confirmed
    s1, s2 = K.DebounceState(5), K.DebounceState(5)
    e1 = K.debounce(raw, 7, n_min, s1, capacity=cap)
    e2 = K.debounce_ref(raw, 7, n_min, s2)
    npt.assert_array_equal(e1, e2)
    for k in ("cur", "cur_start", "cand", "cand_start", "cand_len"):
        npt.assert_array_equal(getattr(s1, k), getattr(s2, k))
    # split into two calls: the state carries across chunks
    s3 = K.DebounceState(5)
    e3 = np.concatenate([K.debounce(raw[:23], 7, n_min, s3), K.debounce(raw[23:], 30, n_min, s3)])
    npt.assert_array_equal(e3, e1)


@pytest.mark.parametrize("seed", range(3))
def test_window_partners_matches_twin(seed):
    rng = np.random.default_rng(seed)
    M = 300
    t = np.sort(rng.integers(0, 100, M))
    ion = rng.integers(0, 10, M)
    mid = rng.random((M, 3))
    cell = np.diag([10.0, 11.0, 12.0]) + rng.normal(0, 0.5, (3, 3))
    J = np.arange(0, M, 3)
    lo = np.searchsorted(t, t[J] - 5, "left")
    hi = np.searchsorted(t, t[J] + 5, "right")
    for count_all in (True, False):
        h1, n1 = K.window_partners(t, ion, mid, cell, J, lo, hi, 3.0, count_all=count_all)
        h2, n2 = K.window_partners_ref(ion, mid, cell, J, lo, hi, 3.0, count_all=count_all)
        npt.assert_array_equal(h1, h2)
        assert n1 == n2
    assert h1.any() and not h1.all()


# ----------------------------------------------------------------------------- hypothesis properties
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), shift=st.lists(st.floats(-30, 30), min_size=3, max_size=3),
       lattice=st.lists(st.integers(-2, 2), min_size=3, max_size=3))
def test_polyhedra_properties(seed, shift, lattice):
    rng = np.random.default_rng(seed)
    cells, verts = _random_tetra(rng, 2, 30)
    ions = rng.uniform(0, 10, (2, 60, 3))
    base = K.assign_polyhedra(ions, verts, cells)
    # permutation of the ions permutes the assignment
    perm = rng.permutation(60)
    npt.assert_array_equal(K.assign_polyhedra(ions[:, perm], verts, cells), base[:, perm])
    # translating everything changes nothing
    sh = np.array(shift)
    npt.assert_array_equal(K.assign_polyhedra(ions + sh, verts + sh, cells), base)
    # moving any ion or vertex by a lattice vector changes nothing
    lv = np.array(lattice, float)
    ions2 = ions.copy()
    ions2[:, ::3] += np.einsum("k,tkl->tl", lv, cells)[:, None, :]
    verts2 = verts.copy()
    verts2[:, ::2, 1] -= np.einsum("k,tkl->tl", lv, cells)[:, None, :]
    npt.assert_array_equal(K.assign_polyhedra(ions2, verts2, cells), base)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.lists(st.floats(-30, 30), min_size=3, max_size=3),
       lattice=st.lists(st.integers(-2, 2), min_size=3, max_size=3))
def test_nearest_properties(seed, shift, lattice):
    rng = np.random.default_rng(seed)
    cells, verts = _random_tetra(rng, 2, 30)
    centres = verts.mean(2)
    ions = rng.uniform(0, 10, (2, 60, 3))
    for radius in (None, 1.5):
        base = K.assign_nearest(ions, centres, cells, radius=radius)
        perm = rng.permutation(60)
        npt.assert_array_equal(K.assign_nearest(ions[:, perm], centres, cells, radius=radius), base[:, perm])
        sh = np.array(shift)
        npt.assert_array_equal(K.assign_nearest(ions + sh, centres + sh, cells, radius=radius), base)
        lv = np.einsum("k,tkl->tl", np.array(lattice, float), cells)[:, None, :]
        npt.assert_array_equal(K.assign_nearest(ions + lv, centres - lv, cells, radius=radius), base)


def _result_numbers(r):
    return {"raw": r.type_fraction_raw, "frac": r.type_fraction, "trans": r.transitions, "hist": r.residence_hist,
            "rates": r.rates_per_ps, "n_jumps": r.n_jumps, "len": r.jump_length_hist, "orient": r.jump_orientation,
            "occ_sorted": np.sort(r.occupancy), "coll": r.collective["fraction"],
            "base": np.array(r.collective["baseline_by_lag"], float),
            "res": [(x["n_complete"], x["mean_ps"], x["tau_exit_ps"], x["n_left_censored"], x["n_right_censored"])
                    for x in r.residence]}


def _same(a, b):
    for k in a:
        if k == "res":
            for x, y in zip(a[k], b[k]):
                assert x[0] == y[0] and x[3:] == y[3:]
                for u, v in zip(x[1:3], y[1:3]):
                    assert (u is None and v is None) or abs(u - v) <= 1e-12 * max(1.0, abs(u))
        elif a[k] is None:
            assert b[k] is None
        else:
            npt.assert_allclose(np.asarray(a[k], float), np.asarray(b[k], float), rtol=1e-12, atol=1e-12,
                                err_msg=k)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 1000))
def test_analysis_invariant_under_ion_permutation_and_translation(seed):
    seq = random_hops(12, 120, 0.08, seed)
    rng = np.random.default_rng(seed)
    pos = (GRID_FRAC[seq].transpose(1, 0, 2) * L + rng.normal(0, 0.05, (120, 12, 3))) % L
    traj = am.from_arrays(pos, CELL, species=["Li"] * 12, frame_interval=0.1, style="wrapped")
    r0 = sites(traj, "Li", site_set=cubic_sites(), debounce=2, window=0.3, pair_distance=6.0, progress=False)
    perm = rng.permutation(12)
    traj_p = am.from_arrays(pos[:, perm], CELL, species=["Li"] * 12, frame_interval=0.1, style="wrapped")
    _same(_result_numbers(r0), _result_numbers(sites(traj_p, "Li", site_set=cubic_sites(), debounce=2, window=0.3,
                                                      pair_distance=6.0, progress=False)))
    # translating ions and sites together by a lattice vector changes nothing
    traj_t = am.from_arrays(pos + np.array([L, -2 * L, 3 * L]), CELL, species=["Li"] * 12, frame_interval=0.1,
                            style="unwrapped")
    _same(_result_numbers(r0), _result_numbers(sites(traj_t, "Li", site_set=cubic_sites(), debounce=2, window=0.3,
                                                      pair_distance=6.0, progress=False)))


# ----------------------------------------------------------------------------- analytic cases
def test_ion_in_one_site_whole_run_is_censored():
    traj = scripted_traj([[3] * 50])
    r = sites(traj, "Li", site_set=cubic_sites(), debounce=1, progress=False)
    assert r.n_jumps == 0 and r.transitions.sum() == 0
    assert all(x["n_complete"] == 0 and x["mean_ps"] is None for x in r.residence)
    assert r.residence_hist.sum() == 0
    assert r.residence[0]["n_right_censored"] == 1
    npt.assert_allclose(r.occupancy[3], 1.0)
    npt.assert_allclose(r.type_fraction_raw, [1.0, 0.0])
    assert r.unassigned_fraction == 0.0


def test_scripted_hops_residence_and_transitions():
    ion0 = runs((0, 10), (4, 20), (1, 20), (5, 30))
    ion1 = runs((2, 40), (6, 40))
    traj = scripted_traj([ion0, ion1])
    r = sites(traj, "Li", site_set=cubic_sites(), debounce=1, window=0.2, pair_distance=20.0, progress=False)
    npt.assert_array_equal(r.transitions, [[0, 3], [1, 0]])
    A, B = r.residence
    assert (A["n_complete"], B["n_complete"]) == (1, 1)
    npt.assert_allclose([A["mean_ps"], B["mean_ps"]], [2.0, 2.0])
    assert (A["n_left_censored"], B["n_left_censored"]) == (2, 0)
    assert (A["n_right_censored"], B["n_right_censored"]) == (0, 2)
    npt.assert_allclose([A["time_ps"], B["time_ps"]], [7.0, 9.0])
    npt.assert_allclose([A["tau_exit_ps"], B["tau_exit_ps"]], [7.0 / 3, 9.0])
    npt.assert_allclose(r.rates_per_ps, [[0, 3 / 7.0], [1 / 9.0, 0]])
    npt.assert_allclose(r.rates_err_per_ps[0, 1], np.sqrt(3) / 7.0)
    # the complete runs (20 frames each) sit in the bin of 20 frames = 2 ps
    e = r.residence_edges_ps
    b = np.searchsorted(e, 2.0) - 1
    assert r.residence_hist[0, b] == 1 and r.residence_hist[1, b] == 1 and r.residence_hist.sum() == 2
    # jump vectors: 0→4 is +a/2 (5 Å), 4→1 is (−5, 0, +5), 1→5 is +a/2, 2→6 is +a/2
    assert r.n_jumps == 4
    npt.assert_allclose(r.jump_length_mean_A, (3 * 5.0 + 5 * np.sqrt(2)) / 4)
    npt.assert_allclose(np.trace(r.jump_orientation), 1.0)
    npt.assert_allclose(r.occupancy.sum(), 2.0)
    npt.assert_allclose(r.type_fraction_raw, [70 / 160, 90 / 160])
    npt.assert_allclose(r.jump_rate_per_ps, 4 / (2 * 8.0))


def test_debounce_removes_rattling_and_backdates_entries():
    # site 0, with excursions of 1 and 2 frames into site 1 (rattling), then a real move to site 1 at frame 40
    seq = runs((0, 10), (1, 1), (0, 9), (1, 2), (0, 18), (1, 30), (0, 30))
    traj = scripted_traj([seq])
    r3 = sites(traj, "Li", site_set=cubic_sites(), debounce=3, progress=False)
    assert r3.n_jumps == 2
    assert r3.residence[0]["n_complete"] == 1
    npt.assert_allclose(r3.residence[0]["mean_ps"], 3.0)   # entry back-dated to frame 40, exit at frame 70
    r1 = sites(traj, "Li", site_set=cubic_sites(), debounce=1, progress=False)
    assert r1.n_jumps == 6
    assert r3.meta["debounce_frames"] == 3 and r1.meta["debounce_frames"] == 1
    # the default: 0.2 ps at 0.1 ps per frame = 2 frames, removing the 1-frame excursion only
    rd = sites(traj, "Li", site_set=cubic_sites(), progress=False)
    assert rd.meta["debounce_frames"] == 2 and rd.n_jumps == 4
    # raw fractions do not depend on the debounce
    npt.assert_array_equal(r1.type_fraction_raw, r3.type_fraction_raw)


def test_unassigned_frames_keep_the_committed_site():
    # spherical sites of 1 Å: the ion spends 5 frames between sites 0 and 4 (in no site)
    seq = runs((0, 20), (0, 5), (4, 20))
    between = (GRID_FRAC[0] + GRID_FRAC[4]) / 2 * L
    traj = scripted_traj([seq], extra=(slice(20, 25), 0, between))
    r = sites(traj, "Li", site_set=cubic_sites("sphere", 1.0), debounce=1, progress=False)
    npt.assert_allclose(r.unassigned_fraction, 5 / 45)
    assert r.n_jumps == 1
    npt.assert_allclose(r.occupancy[[0, 4]], [25 / 45, 20 / 45])     # committed: the ion stays in 0 while between
    npt.assert_allclose(r.occupancy_raw[[0, 4]], [20 / 45, 20 / 45])


def test_collective_jumps_against_baseline():
    # ions 0 and 1 always jump in the same frame between neighbouring sites; ions 2, 3 jump on their own
    rng = np.random.default_rng(5)
    n_frames = 600
    times = np.sort(rng.choice(np.arange(20, n_frames - 20), 20, replace=False))
    pair = np.zeros(n_frames, int)
    for k, t in enumerate(times):
        pair[t:] = k % 2
    ion0, ion1 = np.where(pair == 0, 0, 4), np.where(pair == 0, 2, 6)
    lone = random_hops(2, n_frames, 0.01, 3)
    traj = scripted_traj([ion0, ion1, *lone], noise=0.02)
    r = sites(traj, "Li", site_set=cubic_sites(), debounce=1, window=0.3, pair_distance=6.0, progress=False)
    c = r.collective
    assert c["fraction"] > 0.5
    assert c["baseline"] is not None and c["baseline"] < 0.5 * c["fraction"]
    assert c["excess"] > 2 and len(c["lags_ps"]) >= 2


# ----------------------------------------------------------------------------- streaming
@settings(max_examples=8, deadline=None)
@given(chunk=st.integers(1, 150), seed=st.integers(0, 100))
def test_streamed_equals_in_memory(chunk, seed):
    seq = random_hops(10, 150, 0.1, seed)
    traj = scripted_traj(seq, seed=seed)
    kw = dict(site_set=cubic_sites(), debounce=2, window=0.3, pair_distance=6.0, progress=False)
    whole = sites(traj, "Li", frames_per_chunk=150, **kw)
    part = sites(traj, "Li", frames_per_chunk=chunk, **kw)
    _same(_result_numbers(whole), _result_numbers(part))
    npt.assert_array_equal(whole.occupancy_preview, part.occupancy_preview)
    twin = sites(traj, "Li", frames_per_chunk=chunk, use_ext=False, **kw)
    _same(_result_numbers(whole), _result_numbers(twin))


def test_memory_does_not_grow_with_frames():
    """The analysis keeps no per-frame arrays: its state after 2000 frames is as large as after 200."""
    def state_bytes(n_frames):
        traj = scripted_traj(random_hops(10, n_frames, 0.05, 1))
        a = Sites("Li", cubic_sites(), debounce=2, window=0.3, frames_per_chunk=100, progress=False)
        a.run(traj)
        arrays = [v for v in vars(a).values() if isinstance(v, np.ndarray) and v.ndim >= 1]
        big = [k for k, v in vars(a).items() if isinstance(v, np.ndarray) and v.nbytes > 50_000
               and k not in ("frames", "times")]
        return sum(x.nbytes for x in arrays if x.size < 10 ** 5), big, a.coll.max_buffer

    b1, big1, m1 = state_bytes(200)
    b2, big2, m2 = state_bytes(2000)
    assert not big1 and not big2
    assert abs(b2 - b1) <= 2 * 8 * 1800 + 1024   # only frames/times (analysed-frame indices) scale
    assert m2 < 4 * max(m1, 50)


# ----------------------------------------------------------------------------- site construction
def test_sites_from_density_finds_the_maxima_and_types():
    # 8 ions vibrating about the 8 sites; sites 0–3 visited by two ions (denser): two types
    rng = np.random.default_rng(0)
    frames = 300
    base = np.concatenate([GRID_FRAC, GRID_FRAC[:4]]) * L
    pos = base[None] + rng.normal(0, 0.25, (frames, len(base), 3))
    traj = am.from_arrays(pos, CELL, species=["Li"] * len(base), frame_interval=0.1, style="wrapped")
    ss = sites_from_density(traj, "Li", spacing=0.25, smooth=0.3, min_separation=1.0, progress=False)
    assert ss.n_sites == 8 and ss.n_types == 2
    d = ss.frac[:, None, :] - GRID_FRAC[None]
    d -= np.rint(d)
    dist = np.linalg.norm(d * L, axis=-1)
    assert dist.min(1).max() < 0.15
    nearest = dist.argmin(1)
    npt.assert_array_equal(np.sort(nearest), np.arange(8))
    npt.assert_array_equal(ss.site_type[np.argsort(nearest)], [0, 0, 0, 0, 1, 1, 1, 1])
    r = sites(traj, "Li", progress=False)   # default: density maxima, voronoi
    npt.assert_allclose(r.type_fraction_raw, [8 / 12, 4 / 12])
    # a flat grid has no sites
    with pytest.raises(OptionError):
        sites_from_density_grid(np.zeros((4, 4, 4)), CELL)


# ----------------------------------------------------------------------------- density maxima: persistence, noise
TRI_CELL = np.array([[12.0, 0.0, 0.0], [2.5, 11.0, 0.0], [-1.5, 1.8, 12.5]])


def _peaks(rng, k, cell, min_dist=3.2):
    """k fractional positions at least ``min_dist`` Å apart (minimum image) and their heights."""
    from anionmotion.analysis.sites import _min_image_dist

    pts = []
    while len(pts) < k:
        f = rng.uniform(0, 1, 3)
        if not pts or _min_image_dist(np.array(pts) - f, cell).min() >= min_dist:
            pts.append(f)
    return np.array(pts), rng.uniform(0.35, 1.0, k)


def _sampled_grid(rng, frac, weights, cell, n_points, shape, width=0.35):
    """Density of ``n_points`` samples of a periodic Gaussian mixture on the fractional grid, normalised to
    0.8 ions per peak (Å⁻³)."""
    which = rng.choice(len(frac), n_points, p=weights / weights.sum())
    x = frac[which] @ cell + rng.normal(0, width, (n_points, 3))
    f = x @ np.linalg.inv(cell)
    f -= np.floor(f)
    idx = np.minimum((f * shape).astype(int), np.array(shape) - 1)
    counts = np.zeros(shape)
    np.add.at(counts, tuple(idx.T), 1.0)
    return counts * (0.8 * len(frac) / n_points) / (abs(np.linalg.det(cell)) / np.prod(shape))


@pytest.mark.parametrize("seed", range(3))
def test_density_maxima_with_noise_recover_exactly_the_known_sites(seed):
    """A Gaussian mixture with k peaks, sampled with counting noise in two halves: the unfiltered maxima are
    several times k, the persistent and significant ones exactly k, each within one voxel (0.25 Å) of a true peak."""
    rng = np.random.default_rng(seed)
    k, shape = 14, (48, 48, 50)
    frac, heights = _peaks(rng, k, TRI_CELL)
    g1 = _sampled_grid(rng, frac, heights, TRI_CELL, 6000, shape)
    g2 = _sampled_grid(rng, frac, heights, TRI_CELL, 6000, shape)
    g = 0.5 * (g1 + g2)
    raw = sites_from_density_grid(g, TRI_CELL, min_prominence=0, significance=0, smooth=0.15, threshold=0)
    assert raw.source["n_maxima"] > 3 * k                  # what the plain local-maximum search sees
    ss = sites_from_density_grid(g, TRI_CELL, noise=(g1, 1, g2, 1), smooth=0.15)
    assert ss.n_sites == k
    from anionmotion.analysis.sites import _min_image_dist

    d = np.array([[_min_image_dist(a - b, TRI_CELL) for b in frac] for a in ss.frac])
    assert d.min(axis=1).max() < 0.25
    assert len(set(d.argmin(axis=1))) == k
    assert not ss.source["delocalised"] and ss.source["localised_fraction"] > 0.9
    # the default smoothing alone already recovers them, with or without the noise estimate
    assert sites_from_density_grid(g, TRI_CELL, noise=(g1, 1, g2, 1)).n_sites == k
    assert sites_from_density_grid(g, TRI_CELL).n_sites == k


@settings(max_examples=10, deadline=None)
@given(roll=st.lists(st.integers(-60, 60), min_size=3, max_size=3), seed=st.integers(0, 3))
def test_density_sites_are_invariant_under_lattice_shifts(roll, seed):
    """Rolling the periodic grid by whole voxels (an origin shift of the lattice) moves every site by exactly
    that shift and changes nothing else; a whole lattice vector changes nothing."""
    rng = np.random.default_rng(seed)
    shape = (40, 40, 42)
    frac, heights = _peaks(rng, 10, TRI_CELL)
    g1 = _sampled_grid(rng, frac, heights, TRI_CELL, 4000, shape)
    g2 = _sampled_grid(rng, frac, heights, TRI_CELL, 4000, shape)
    g = 0.5 * (g1 + g2)
    a = sites_from_density_grid(g, TRI_CELL, noise=(g1, 1, g2, 1))
    r = tuple(roll)
    b = sites_from_density_grid(np.roll(g, r, (0, 1, 2)), TRI_CELL,
                                noise=(np.roll(g1, r, (0, 1, 2)), 1, np.roll(g2, r, (0, 1, 2)), 1))
    assert a.n_sites == b.n_sites
    moved = a.frac + np.array(roll) / np.array(shape)
    d = moved[:, None, :] - b.frac[None]
    d -= np.rint(d)
    dist = np.linalg.norm(d @ TRI_CELL, axis=-1)
    assert dist.min(axis=1).max() < 1e-9
    order = dist.argmin(axis=1)
    npt.assert_array_equal(b.site_type[order], a.site_type)
    npt.assert_allclose(np.array(b.source["peak_density_per_A3"])[order], a.source["peak_density_per_A3"],
                        rtol=1e-9)
    assert b.source["localised_fraction"] == pytest.approx(a.source["localised_fraction"], rel=1e-9)


def test_sites_from_density_trajectory_shift_by_a_lattice_vector():
    rng = np.random.default_rng(3)
    base = np.concatenate([GRID_FRAC, GRID_FRAC[:4]]) * L
    pos = base[None] + rng.normal(0, 0.25, (200, len(base), 3))
    a = sites_from_density(am.from_arrays(pos, CELL, species=["Li"] * 12, frame_interval=0.1, style="wrapped"),
                           "Li", spacing=0.25, progress=False)
    shifted = pos + np.array([1, -2, 3]) @ CELL
    b = sites_from_density(am.from_arrays(shifted, CELL, species=["Li"] * 12, frame_interval=0.1, style="wrapped"),
                           "Li", spacing=0.25, progress=False)
    npt.assert_allclose(b.frac, a.frac, atol=1e-9)
    assert a.n_sites == 8 and a.source["n_significant"] == 8 and a.source["noise_factor"] > 0


def test_delocalised_species_is_flagged():
    """Brownian ions with no sites: a few broad noise maxima, most of the density outside site cores — the
    site set, the result and its summary say the species is too delocalised."""
    rng = np.random.default_rng(0)
    Lb, N, T = 15.0, 100, 1500
    pos = np.cumsum(rng.normal(0, 0.1, (T, N, 3)), axis=0) + rng.uniform(0, Lb, (1, N, 3))
    traj = am.from_arrays(pos, np.eye(3) * Lb, species=["Li"] * N, frame_interval=0.01)
    ss = sites_from_density(traj, "Li", progress=False)
    assert ss.source["delocalised"] and "delocalised" in ss.source["delocalised_reason"]
    r = sites(traj, "Li", site_set=ss, progress=False)
    assert r.meta["delocalised"] and "WARNING" in r.summary()
    # localised ions on a lattice are not flagged (and every site is found)
    a = 2.5
    lat = np.array(np.meshgrid(*[np.arange(4)] * 3, indexing="ij")).reshape(3, -1).T
    cur = lat[rng.choice(len(lat), 40, replace=False)]
    frames = []
    for _ in range(800):       # hops to a neighbouring site of the simple-cubic lattice
        hop = rng.random(40) < 0.01
        step = np.zeros((40, 3), dtype=int)
        step[np.arange(40), rng.integers(0, 3, 40)] = rng.choice([-1, 1], 40)
        cur = np.where(hop[:, None], cur + step, cur)
        frames.append((cur + 0.5) * a + rng.normal(0, 0.25, (40, 3)))
    loc = am.from_arrays(np.array(frames), np.eye(3) * 4 * a, species=["Li"] * 40, frame_interval=0.01)
    ss2 = sites_from_density(loc, "Li", progress=False)
    assert not ss2.source["delocalised"] and ss2.source["localised_fraction"] > 0.8
    visited = (np.bincount(assign_sites(loc, "Li", ss2).ravel(), minlength=ss2.n_sites) > 0).sum()
    assert ss2.n_sites == visited <= 64


def test_example_density_sites_are_the_tetrahedral_lattice_not_noise():
    """The embedded 20-ps α-Li2SO4-like run (216 Li on the 216 tetrahedral + 108 octahedral sites of the
    antifluorite cell, a = 7.07 Å): between 216 and 324 sites (the plain maxima search found 501), and the
    committed jumps are tetrahedral-to-tetrahedral (median length within 10 % of a/2 = 3.54 Å; between noise
    maxima it was 2.2 Å)."""
    from anionmotion._example import example_path

    traj = am.open(example_path("UC"))
    r = sites(traj, "Li", progress=False)
    src = r.meta["sites"]
    assert 216 <= r.n_sites <= 324 and src["n_maxima"] > 1.5 * r.n_sites
    assert not r.meta["delocalised"]
    cdf = np.cumsum(r.jump_length_hist) / r.jump_length_hist.sum()
    median = np.interp(0.5, cdf, r.jump_length_edges_A[1:])
    assert median == pytest.approx(7.07 / 2, rel=0.1)


def test_density_site_options_are_checked_before_the_density_pass():
    rng = np.random.default_rng(0)
    traj = am.from_arrays(rng.uniform(0, 10, (20, 5, 3)), CELL, species=["Li"] * 5, frame_interval=0.1)
    for kw, word in ((dict(min_prominence=2), "min_prominence"), (dict(significance=float("nan")), "significance"),
                     (dict(smooth=-1), "smooth"), (dict(kind="polyhedral"), "polyhedral"),
                     (dict(spacing=0.05, memory="10MB"), "spacing")):
        with pytest.raises(OptionError, match=word):
            sites_from_density(traj, "Li", progress=False, **kw)


def test_report_stage_says_when_sites_are_not_meaningful():
    from types import SimpleNamespace

    from anionmotion.report.stage_sites import sites_body
    from anionmotion.report.stages import StageOutput

    rng = np.random.default_rng(1)
    pos = np.cumsum(rng.normal(0, 0.1, (1200, 80, 3)), axis=0) + rng.uniform(0, 14, (1, 80, 3))
    traj = am.from_arrays(pos, np.eye(3) * 14, species=["Li"] * 80, frame_interval=0.01)
    ctx = SimpleNamespace(traj=traj, cation=SimpleNamespace(species="Li"), options={}, progress=False, memory=None)
    out = StageOutput("sites", "Sites")
    sites_body(ctx, out)
    summary = dict(out.summary)
    assert summary["sites"].startswith("not meaningful: Li is delocalised")
    assert any("too delocalised" in n for n in out.notes)


PARTIAL_CIF = """data_test
_symmetry_space_group_name_H-M   'P 1'
_cell_length_a   5.0
_cell_length_b   5.0
_cell_length_c   5.0
_cell_angle_alpha   90
_cell_angle_beta    90
_cell_angle_gamma   90
loop_
 _atom_site_label
 _atom_site_type_symbol
 _atom_site_fract_x
 _atom_site_fract_y
 _atom_site_fract_z
 _atom_site_occupancy
  Li1  Li  0.5   0.5   0.5   0.5
  Li2  Li  0.0   0.5   0.5   0.25
  S1   S   0.0   0.0   0.0   1.0
"""


def test_sites_from_cif_with_partial_occupancies(tmp_path):
    p = tmp_path / "partial.cif"
    p.write_text(PARTIAL_CIF)
    traj = am.from_arrays(np.full((3, 2, 3), 2.4) + np.array([[0.0, 0.0, 0.0], [2.5, 0.0, 0.0]]), CELL,
                          species=["Li", "S"], frame_interval=0.1, style="wrapped")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ss = sites_from_structure(str(p), traj, centre_species="Li", kind="voronoi")
    assert ss.n_sites == 16 and ss.type_names == ["Li1", "Li2"]   # tiled 2×2×2
    npt.assert_array_equal(np.bincount(ss.site_type), [8, 8])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ss2 = sites_from_structure(str(p), traj, centre_species="Li", kind="sphere", radius=1.0, type_by="species")
    assert ss2.type_names == ["Li"] and ss2.radius_A == 1.0
    bad = am.from_arrays(np.zeros((2, 2, 3)), np.eye(3) * 7.3, species=["Li", "S"], frame_interval=0.1)
    with pytest.raises(OptionError, match="supercell"):
        sites_from_structure(str(p), bad, centre_species="Li", kind="voronoi")
    with pytest.raises(OptionError, match="radius"):
        sites_from_structure(str(p), traj, centre_species="Li", kind="sphere")
    with pytest.raises(OptionError, match="no sites of Na"):
        sites_from_structure(str(p), traj, centre_species="Na", kind="voronoi")


# ----------------------------------------------------------------------------- argyrodite (real data)
def _argyrodite_sites(traj):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sites_from_structure(CIF, traj, centre_species="Li Mg Na Be K", kind="polyhedral",
                                    vertex_species="S Cl", cutoff=3.0, align="P")


def test_argyrodite_100p_full_run_matches_recorded_fractions():
    """MANIFEST (site-analysis @ 5f74a603): 100p run1 type5 53.39 %, type4 7.33 %, type2 39.28 %."""
    traj = am.open(FULL_100P, format="xdatcar", frame_interval=0.1)
    r = sites(traj, "Li", site_set=_argyrodite_sites(traj), progress=False)
    f = {k: 100 * v for k, v in r.type_fractions().items()}
    assert abs(f["type5"] - 53.39) < 2 and abs(f["type2"] - 39.28) < 2 and abs(f["type4"] - 7.33) < 2
    assert f["type1"] < 0.5 and f["type3"] < 0.5
    assert r.n_frames == 140 and r.n_ions == 192 and r.n_sites == 1056
    assert r.unassigned_fraction < 0.001
    npt.assert_array_equal(r.n_sites_per_type, [128, 384, 32, 128, 384])


def test_argyrodite_0p_subset_matches_site_analysis():
    """Same 10 frames through site-analysis (its argyrodite tutorial's builder) and through anionmotion: the
    same site type for every Li in every frame."""
    from pymatgen.core import Structure
    from pymatgen.io.vasp import Xdatcar
    from site_analysis import TrajectoryBuilder

    traj = am.open(SUBSET_0P, format="xdatcar", frame_interval=0.1)
    ss = _argyrodite_sites(traj)
    mine = assign_sites(traj, "Li", ss)
    names = np.array(list(ss.type_names) + ["-"])
    mine_labels = names[np.where(mine >= 0, ss.site_type[np.maximum(mine, 0)], len(ss.type_names))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = Structure.from_file(CIF) * [2, 2, 2]
        structs = Xdatcar(SUBSET_0P).structures
        b = TrajectoryBuilder().with_reference_structure(ref).with_structure(structs[0]).with_mobile_species("Li")
        for lab, sp in {"type1": "Li", "type2": "Mg", "type3": "Na", "type4": "Be", "type5": "K"}.items():
            b.with_polyhedral_sites(centre_species=sp, vertex_species="S", cutoff=3.0, n_vertices=4, label=lab)
        b.with_structure_alignment(align_species="P").with_site_mapping(mapping_species=["S", "Cl"])
        tr = b.build()
        tr.trajectory_from_structures(structs, progress=False)
    theirs = np.array([[tr.sites[s].label if s is not None else "-" for s in a.trajectory] for a in tr.atoms]).T
    # Li are the first 192 atoms in both (species order Li Cl S P)
    assert theirs.shape == mine_labels.shape == (10, 192)
    assert np.mean(theirs == mine_labels) > 0.999
    # the result's fractions for the subset agree with site-analysis's counts
    r = sites(traj, "Li", site_set=ss, progress=False)
    for t, name in enumerate(ss.type_names):
        npt.assert_allclose(r.type_fraction_raw[t], np.mean(theirs[theirs != "-"] == name), atol=1e-3)


# ----------------------------------------------------------------------------- CLI, views, JSON
def test_cli_json_csv_plot(tmp_path, capsys):
    from anionmotion.cli import main

    out = tmp_path / "s.json"
    rc = main(["sites", SUBSET_0P, "--format", "xdatcar", "--frame-interval", "0.1", "--species", "Li",
               "--reference", CIF, "--site-species", "Li Mg Na Be K", "--vertex-species", "S Cl", "--align", "P",
               "--json", str(out), "--csv", str(tmp_path / "s.csv"), "--plot", str(tmp_path / "s.png"),
               "--no-progress"])
    assert rc == 0
    d = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert d["kind"] == "polyhedral" and d["n_sites"] == 1056 and len(d["type_names"]) == 5
    assert abs(sum(d["type_fraction_raw"]) - 1) < 1e-9
    assert (tmp_path / "s.png").stat().st_size > 0
    assert (tmp_path / "s.csv").read_text().startswith("type_index,n_sites")
    assert "type5" in capsys.readouterr().out
    # bad input: one line, exit 2
    assert main(["sites", SUBSET_0P, "--format", "xdatcar", "--frame-interval", "0.1", "--species", "Li",
                 "--reference", CIF, "--site-species", "Li", "--kind", "sphere", "--no-progress"]) == 2


def test_views_tables_and_figures():
    traj = scripted_traj(random_hops(6, 100, 0.1, 2))
    r = sites(traj, "Li", site_set=cubic_sites(), debounce=1, progress=False)
    names = [t.name for t in r.tables()]
    assert names == ["sites_types.csv", "sites_transitions.csv", "sites_residence.csv", "sites_per_site.csv",
                     "sites_jump_lengths.csv"]
    tr = r.tables()[1]
    assert tr.data[:, 2].sum() == r.transitions.sum()
    fig = r.plot()
    assert len(fig.axes) >= 4
    assert [f.stem for f in r.figures()] == ["sites", "sites_occupancy_time"]
    d = r.to_dict()
    json.dumps(d)  # JSON-compatible


# ----------------------------------------------------------------------------- error bars (coverage)
def test_error_bars_cover_the_true_residence_and_rates():
    """Markov hopping with per-frame hop probability p to a uniformly random site of 8 (4 of type A, 4 of
    type B): residence ~ geometric with mean dt/q (q = 7p/8), rate A→B = (4p/8)/dt.  The stated 1.96σ
    intervals of τ_exit and k_AB must cover the truth in ~95 % of independent runs."""
    p, dt, seeds = 0.08, 0.1, 60
    tau_true = dt / (p * 7 / 8)
    k_ab_true = p * 4 / 8 / dt
    z_tau, z_k = [], []
    for seed in range(seeds):
        seq = random_hops(16, 300, p, 1000 + seed)
        traj = scripted_traj(seq, noise=0.02, seed=seed)
        r = sites(traj, "Li", site_set=cubic_sites(), debounce=1, window=0.1, pair_distance=1.0, progress=False)
        a = r.residence[0]
        z_tau.append((a["tau_exit_ps"] - tau_true) / a["tau_exit_err_ps"])
        z_k.append((r.rates_per_ps[0, 1] - k_ab_true) / r.rates_err_per_ps[0, 1])
    for z in (np.array(z_tau), np.array(z_k)):
        assert np.mean(np.abs(z) <= 1.96) >= 0.85      # the intervals cover the truth
        assert 0.6 < np.std(z) < 1.4 and abs(np.mean(z)) < 0.5   # and are not much too wide or biased


def test_sites_from_poscar_and_ase_atoms(tmp_path):
    from ase import Atoms
    from pymatgen.core import Lattice, Structure

    s = Structure(Lattice.cubic(5.0), ["Li", "Li", "S"], [[0.5, 0.5, 0.5], [0.0, 0.5, 0.5], [0, 0, 0]])
    s.to(filename=str(tmp_path / "POSCAR"), fmt="poscar")
    traj = am.from_arrays(np.full((2, 2, 3), 1.0), CELL, species=["Li", "S"], frame_interval=0.1, style="wrapped")
    ss = sites_from_structure(str(tmp_path / "POSCAR"), traj, centre_species="Li", kind="voronoi")
    assert ss.n_sites == 16 and ss.type_names == ["Li"]
    atoms = Atoms("Li2S", scaled_positions=[[0.5, 0.5, 0.5], [0.0, 0.5, 0.5], [0, 0, 0]], cell=np.eye(3) * 5.0,
                  pbc=True)
    ss2 = sites_from_structure(atoms, traj, centre_species="Li", kind="voronoi")
    npt.assert_allclose(np.sort(ss2.frac, axis=0), np.sort(ss.frac, axis=0), atol=1e-12)
    with pytest.raises(OptionError, match="not found"):
        sites_from_structure(str(tmp_path / "missing.cif"), traj, centre_species="Li", kind="voronoi")


def test_strained_and_npt_cells_give_the_same_assignment():
    """Barycentric coordinates and fractional site centres are affine-invariant: straining everything (a
    different cell per frame, as in NPT) leaves the assignment and every statistic unchanged."""
    rng = np.random.default_rng(11)
    cells, verts = _random_tetra(rng, 3, 40)
    ions = rng.uniform(0, 10, (3, 80, 3))
    strain = np.eye(3) + rng.normal(0, 0.05, (3, 3))
    npt.assert_array_equal(K.assign_polyhedra(ions @ strain, verts @ strain, cells @ strain),
                           K.assign_polyhedra(ions, verts, cells))
    seq = random_hops(8, 120, 0.08, 4)
    pos = (GRID_FRAC[seq].transpose(1, 0, 2) * L + rng.normal(0, 0.05, (120, 8, 3))) % L
    scale = 1 + 0.03 * np.sin(np.arange(120) / 7.0)
    npt_cells = CELL[None] * scale[:, None, None]
    kw = {"site_set": cubic_sites(), "debounce": 2, "window": 0.3, "pair_distance": 6.0, "progress": False}
    r_const = sites(am.from_arrays(pos, CELL, species=["Li"] * 8, frame_interval=0.1, style="wrapped"), "Li", **kw)
    r_npt = sites(am.from_arrays(pos * scale[:, None, None], npt_cells, species=["Li"] * 8, frame_interval=0.1,
                                 style="wrapped"), "Li", **kw)
    a, b = _result_numbers(r_const), _result_numbers(r_npt)
    for k in ("raw", "frac", "trans", "hist", "rates", "n_jumps", "occ_sorted", "coll", "base"):
        npt.assert_allclose(np.asarray(a[k], float), np.asarray(b[k], float), rtol=1e-12, err_msg=k)
