"""Van Hove self/distinct functions and the non-Gaussian parameter α₂ (SPEC §9).

Kernels against their numpy twins, the streamed analysis against the direct O(T²) oracle, hypothesis
properties (atom permutation, translation, lattice shift of an atom), analytic cases (Brownian motion:
α₂ = 0 and a Gaussian G_s; a continuous-time random walk on a cubic lattice with thermal noise:
α₂(t) = (3/5) a⁴Γt / (a²Γt + 6σ²)²), the real Li6PS5Cl run, and pymatgen's VanHoveAnalysis on the same data.
"""

import json
import os
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anionmotion
from anionmotion.analysis.vanhove import VanHove, default_lags, vanhove
from anionmotion.cli import main
from anionmotion.errors import OptionError
from anionmotion.kernels.vanhove import (alpha2, alpha2_from_moments, displacement_moments,
                                         displacement_moments_pairs, displacement_moments_ref, distinct_histogram, distinct_histogram_ref, self_histogram,
                                         self_histogram_ref, van_hove_ref)

ARGY = os.path.join(os.path.dirname(__file__), "data", "argyrodite", "Li6PS5Cl_100p_run1_XDATCAR.gz")
TRICLINIC = np.array([[12.0, 0.0, 0.0], [2.5, 11.0, 0.0], [1.0, 1.5, 10.0]])


def _walk(seed, T=50, N=10, step=0.4, cell=TRICLINIC):
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 1, size=(1, N, 3)) @ cell
    return np.cumsum(rng.normal(scale=step, size=(T, N, 3)), axis=0) + start


def _traj(pos, cell=TRICLINIC, dt=0.1, species="Li"):
    return anionmotion.from_arrays(pos, cell, species=[species] * pos.shape[1], frame_interval=dt)


# ------------------------------------------------------------------------------------------ kernels vs twins
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10 ** 6), n=st.integers(0, 60), bins=st.integers(1, 40))
def test_self_histogram_matches_twin(seed, n, bins):
    d = np.random.default_rng(seed).normal(scale=2.0, size=(n, 3))
    h, s2, s4 = self_histogram(d, rmax=3.0, n_bins=bins)
    hr, s2r, s4r = self_histogram_ref(d, rmax=3.0, n_bins=bins)
    assert np.array_equal(h, hr)
    assert s2 == pytest.approx(s2r, rel=1e-12, abs=1e-300) and s4 == pytest.approx(s4r, rel=1e-12, abs=1e-300)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10 ** 6), n=st.integers(2, 25), tilt=st.floats(-4.0, 4.0), frames=st.integers(1, 4))
def test_distinct_histogram_matches_twin_triclinic(seed, n, tilt, frames):
    rng = np.random.default_rng(seed)
    cell = TRICLINIC.copy()
    cell[1, 0] = tilt
    cells = np.tile(cell, (frames, 1, 1))
    a = rng.uniform(-5, 25, size=(frames, n, 3))
    b = a + rng.normal(scale=3.0, size=a.shape)
    rmax = 0.5 * anionmotion.kernels.pbc.perpendicular_widths(cell).min()
    h = distinct_histogram(a, b, cells, rmax=rmax, n_bins=30)
    assert np.array_equal(h, distinct_histogram_ref(a, b, cells, rmax=rmax, n_bins=30))
    assert np.array_equal(distinct_histogram(a, b, cells, rmax=rmax, n_bins=30, use_ext=False), h)


def test_distinct_histogram_refuses_rmax_beyond_half_width():
    a = np.zeros((1, 3, 3))
    with pytest.raises(OptionError, match="minimum image"):
        distinct_histogram(a, a, TRICLINIC[None], rmax=6.0, n_bins=10)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10 ** 6), T=st.integers(1, 70), N=st.integers(1, 6), offset=st.floats(-100, 100),
       block=st.sampled_from([1, 10 ** 5, 10 ** 8]))
def test_fft_moments_equal_the_direct_double_loop(seed, T, N, offset, block):
    pos = np.cumsum(np.random.default_rng(seed).normal(size=(T, N, 3)), axis=0) + offset
    m2, m4 = displacement_moments(pos, workspace=block)
    r2, r4 = displacement_moments_ref(pos)
    scale2, scale4 = max(r2.max(), 1e-300), max(r4.max(), 1e-300)
    assert np.all(np.abs(m2 - r2) <= 1e-11 * scale2)
    assert np.all(np.abs(m4 - r4) <= 1e-11 * scale4)


def test_pair_moments_for_uneven_frames():
    rng = np.random.default_rng(4)
    pos = np.cumsum(rng.normal(size=(30, 5, 3)), axis=0)
    lags, m2, m4, n = displacement_moments_pairs(pos, 0.1 * np.arange(30))
    r2, r4 = displacement_moments_ref(pos)
    assert np.allclose(lags, 0.1 * np.arange(30)) and np.array_equal(n, 30 - np.arange(30))
    assert np.allclose(m2, r2, rtol=1e-12) and np.allclose(m4, r4, rtol=1e-12)
    # log-spaced frames: each lag from its own frame pairs
    t = np.array([0.0, 0.1, 0.2, 0.4, 0.8, 1.6])
    lags, m2, m4, n = displacement_moments_pairs(pos[:6], t)
    k = int(np.argmin(np.abs(lags - 0.4)))
    pairs = [(0, 3), (3, 4)]   # t2 − t1 = 0.4
    d2 = np.array([((pos[j] - pos[i]) ** 2).sum(axis=1) for i, j in pairs])
    assert n[k] == 2 and np.isclose(m2[k], d2.mean()) and np.isclose(m4[k], (d2 ** 2).mean())


def test_alpha2_of_known_distributions():
    # every |Δr| equal (ballistic): ⟨r⁴⟩ = ⟨r²⟩² → α₂ = 3/5 − 1
    pos = np.zeros((6, 2, 3))
    pos[:, 0, 0] = np.arange(6)
    pos[:, 1, 2] = -2.0 * np.arange(6)
    a = alpha2(pos[:, :1])
    assert np.isnan(a[0]) and np.allclose(a[1:], -0.4)
    # two atoms with speeds 1 and 2: ⟨r²⟩ = 5m²/2, ⟨r⁴⟩ = 17m⁴/2 → α₂ = 3·17/(5·25/2) − 1
    assert np.allclose(alpha2(pos)[1:], 3 * 8.5 / (5 * 6.25) - 1)
    assert np.allclose(alpha2_from_moments([0.0, 2.0], [0.0, 4.0 * 5 / 3]), [np.nan, 0.0], equal_nan=True)


# ------------------------------------------------------------------------------------------ analysis vs oracle
@pytest.mark.parametrize("fpc,stride,dstride,n_orig", [(None, 1, 1, None), (3, 1, 2, None), (7, 2, 3, 5),
                                                       (1, 1, 1, None)])
def test_streamed_histograms_equal_the_direct_oracle(fpc, stride, dstride, n_orig):
    T = 40
    pos = _walk(3, T=T)
    lags_f = [0, 1, 4, 13, 39]
    res = vanhove(_traj(pos), "Li", lags=[m * 0.1 for m in lags_f], rmax=4.5, bins=45, origin_stride=stride,
                  distinct_stride=dstride, n_origins=n_orig, frames_per_chunk=fpc, memory="64MB", progress=False)
    ref = van_hove_ref(pos, np.tile(TRICLINIC, (T, 1, 1)), lags_f, rmax=4.5, n_bins=45, origin_stride=stride,
                       distinct_stride=dstride, n_origins=n_orig)
    assert np.array_equal(res.lag_frames, lags_f)
    assert np.array_equal(res.self_counts, ref["self"])
    assert np.array_equal(res.distinct_counts, ref["distinct"])
    assert np.array_equal(res.n_origins_self, ref["n_self"]) and np.array_equal(res.n_origins_distinct, ref["n_distinct"])
    N = pos.shape[1]
    assert np.allclose(res.msd_at_lags_A2, ref["s2"] / (N * ref["n_self"]), rtol=1e-12)
    assert np.allclose(res.m4_at_lags_A4, ref["s4"] / (N * ref["n_self"]), rtol=1e-12)
    # normalisations: Σ G_s ΔV + beyond = 1; G_d from the ideal-gas count of each origin volume
    shell = 4 / 3 * np.pi * np.diff(res.edges_A ** 3)
    assert np.allclose((res.G_s * shell).sum(axis=1) + res.fraction_beyond_rmax, 1.0)
    assert np.allclose(res.radial_self.sum(axis=1) * (4.5 / 45), 1 - res.fraction_beyond_rmax)
    V = abs(np.linalg.det(TRICLINIC))
    assert np.allclose(res.G_d, ref["distinct"] / (N * (N - 1) * ref["n_distinct"][:, None] / V * shell))


def test_all_lag_alpha2_equals_histogram_moments_with_every_origin():
    pos = _walk(5, T=60)
    res = vanhove(_traj(pos), "Li", lags=[0.1, 0.7, 3.0], rmax=4.5, bins=20, frames_per_chunk=8, progress=False)
    assert np.allclose(res.msd_A2[res.lag_frames], res.msd_at_lags_A2, rtol=1e-10)
    assert np.allclose(res.alpha2[res.lag_frames], res.alpha2_at_lags, rtol=1e-8, atol=1e-10)
    m2, m4 = displacement_moments_ref(pos)
    assert np.allclose(res.m4_A4, m4, rtol=1e-10, atol=1e-10 * m4.max())
    assert np.array_equal(res.alpha2_lag_ps, np.arange(60) * 0.1)


def test_out_of_core_alpha2_store_is_identical():
    pos = _walk(6, T=50, N=8)
    kw = dict(lags=[0.2, 1.0], rmax=4.0, bins=10, frames_per_chunk=6, memory="64MB", progress=False)
    a = vanhove(_traj(pos), "Li", mode="memory", **kw)
    b = vanhove(_traj(pos), "Li", mode="out-of-core", **kw)
    assert a.meta["alpha2_store"] == "memory" and b.meta["alpha2_store"] == "out-of-core"
    assert np.array_equal(a.alpha2[1:], b.alpha2[1:]) and np.array_equal(a.self_counts, b.self_counts)


def test_distinct_at_lag_zero_is_the_rdf():
    pos = _walk(7, T=30, N=16)
    traj = _traj(pos)
    res = vanhove(traj, "Li", lags=[0.0, 0.5], rmax=5.0, bins=25, distinct_stride=1, progress=False)
    g = anionmotion.rdf(traj, "Li-Li", rmax=5.0, bins=25, progress=False)
    assert np.allclose(res.G_d[0], g.g["Li-Li"], rtol=1e-12)
    assert res.self_counts[0, 0] == 16 * 30 and res.fraction_beyond_rmax[0] == 0


# ------------------------------------------------------------------------------------------ properties
_GRID = 1 / 64  # dyadic positions and a power-of-two cell: every difference is exact, so bins cannot flip


def _dyadic(seed, T=25, N=9):
    rng = np.random.default_rng(seed)
    steps = np.round(rng.normal(scale=0.5, size=(T, N, 3)) / _GRID) * _GRID
    return np.cumsum(steps, axis=0) + np.round(rng.uniform(0, 16, size=(1, N, 3)) / _GRID) * _GRID


def _counts(pos, cell):
    res = vanhove(_traj(pos, cell), "Li", lags=[0.0, 0.1, 0.5, 1.5], rmax=7.5, bins=30, progress=False)
    return res.self_counts, res.distinct_counts, res.alpha2


CUBE = np.eye(3) * 16.0


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10 ** 6), perm_seed=st.integers(0, 10 ** 6), shift=st.integers(-64, 64),
       atom=st.integers(0, 8), cvec=st.sampled_from([(1, 0, 0), (0, -1, 0), (0, 0, 2), (1, 1, -1)]))
def test_invariances(seed, perm_seed, shift, atom, cvec):
    pos = _dyadic(seed)
    s0, d0, a0 = _counts(pos, CUBE)
    # permutation of the atoms
    perm = np.random.default_rng(perm_seed).permutation(pos.shape[1])
    s1, d1, a1 = _counts(pos[:, perm], CUBE)
    assert np.array_equal(s0, s1) and np.array_equal(d0, d1) and np.allclose(a0[1:], a1[1:], rtol=1e-9)
    # rigid translation of every atom
    s2, d2, a2 = _counts(pos + shift * 0.25, CUBE)
    assert np.array_equal(s0, s2) and np.array_equal(d0, d2) and np.allclose(a0[1:], a2[1:], rtol=1e-9)
    # one atom moved by a cell vector (in every frame): the minimum image of G_d does not see it
    moved = pos.copy()
    moved[:, atom] += np.array(cvec, float) @ CUBE
    s3, d3, _ = _counts(moved, CUBE)
    assert np.array_equal(s0, s3) and np.array_equal(d0, d3)


def test_triclinic_lattice_shift_of_one_atom_in_one_frame_leaves_g_d():
    # distinct distances are periodic: a cell-vector jump of one atom in one frame only changes G_s
    pos = _walk(9, T=20, N=8)
    lags = [0, 1, 3]
    cells = np.tile(TRICLINIC, (20, 1, 1))
    ref = van_hove_ref(pos, cells, lags, rmax=4.5, n_bins=20)
    moved = pos.copy()
    moved[7, 3] += TRICLINIC[1] - TRICLINIC[2]
    ref2 = van_hove_ref(moved, cells, lags, rmax=4.5, n_bins=20)
    assert np.array_equal(ref["distinct"], ref2["distinct"])
    res = vanhove(_traj(moved), "Li", lags=[m * 0.1 for m in lags], rmax=4.5, bins=20, distinct_stride=1,
                  progress=False)
    assert np.array_equal(res.distinct_counts, ref["distinct"])


# ------------------------------------------------------------------------------------------ analytic cases
def test_brownian_motion_is_gaussian():
    rng = np.random.default_rng(11)
    T, N, s = 400, 300, 0.3
    pos = np.cumsum(rng.normal(scale=s, size=(T, N, 3)), axis=0)
    res = vanhove(_traj(pos, np.eye(3) * 60.0), "Li", lags=[0.1, 0.5, 2.0], rmax=12.0, bins=60, distinct=False,
                  progress=False)
    m = res.lag_frames
    assert np.allclose(res.msd_at_lags_A2, 3 * s * s * m, rtol=0.03)
    assert np.all(np.abs(res.alpha2[1:100]) < 0.03)            # α₂ = 0 for Gaussian displacements
    assert np.all(np.abs(res.alpha2_at_lags) < 0.03)
    for k in range(len(m)):
        gauss = res.gaussian_self(k)                            # bin-averaged Gaussian with the MSD's variance
        shell = 4 / 3 * np.pi * np.diff(res.edges_A ** 3)
        expected = gauss * shell * N * res.n_origins_self[k]
        seen = res.self_counts[k]
        ok = expected > 50
        # counts are correlated over origins; still within a few % of the Gaussian wherever there are counts
        assert np.all(np.abs(seen[ok] - expected[ok]) < 0.08 * expected[ok] + 5 * np.sqrt(expected[ok]))
        assert np.abs(seen - expected).sum() < 0.04 * seen.sum()
    # a hopping G_s is far from that Gaussian (the check above can fail)
    hop = pos.copy()
    hop[:, : N // 10] *= 6.0
    bad = vanhove(_traj(hop, np.eye(3) * 60.0), "Li", lags=[2.0], rmax=12.0, bins=60, distinct=False, progress=False)
    exp_bad = bad.gaussian_self(0) * 4 / 3 * np.pi * np.diff(bad.edges_A ** 3) * N * bad.n_origins_self[0]
    assert np.abs(bad.self_counts[0] - exp_bad).sum() > 0.1 * bad.self_counts[0].sum()
    assert bad.alpha2_at_lags[0] > 1.0


def _ctrw(seed, T, N, rate, a, sigma):
    """Continuous-time random walk on a cubic lattice (spacing a, rate Γ per frame) plus Gaussian rattling σ."""
    rng = np.random.default_rng(seed)
    n_jumps = rng.poisson(rate, size=(T - 1, N))
    steps = np.zeros((T - 1, N, 3))
    for k in range(1, int(n_jumps.max()) + 1):            # each jump: ±a along a random axis
        t, i = np.nonzero(n_jumps >= k)
        axis = rng.integers(0, 3, size=len(t))
        steps[t, i, axis] += a * rng.choice([-1.0, 1.0], size=len(t))
    sites = np.concatenate([np.zeros((1, N, 3)), np.cumsum(steps, axis=0)])
    return sites + rng.normal(scale=sigma, size=(T, N, 3))


def ctrw_alpha2(t_frames, rate, a, sigma):
    """α₂ of the lattice CTRW with rattling: ⟨Δr²⟩ = a²Γt + 6σ², ⟨Δr⁴⟩ − (5/3)⟨Δr²⟩² = a⁴Γt (see docs)."""
    x = a * a * rate * np.asarray(t_frames, float)
    return 0.6 * a * a * x / (x + 6 * sigma * sigma) ** 2


def test_lattice_jump_process_gives_the_analytic_alpha2_peak():
    rate, a, sigma = 0.005, 2.5, 0.3         # peak where a²Γt = 6σ²: t = 17.3 frames, α₂_max = a²/(40σ²) = 1.74
    T, N = 2000, 400
    pos = _ctrw(21, T, N, rate, a, sigma)
    res = vanhove(_traj(pos, np.eye(3) * 200.0), "Li", lags=[0.1, 2.7, 20.0], rmax=20.0, bins=40, distinct=False,
                  progress=False)
    m = np.arange(1, 300)
    theory = ctrw_alpha2(m, rate, a, sigma)
    got = res.alpha2[m]
    msd_theory = a * a * rate * m + 6 * sigma ** 2
    assert np.allclose(res.msd_A2[m], msd_theory, rtol=0.05)
    assert np.all(np.abs(got - theory) < 0.08 * theory + 0.03)
    peak = int(m[np.argmax(got)])
    t_peak = 6 * sigma ** 2 / (a * a * rate)
    assert abs(peak - t_peak) <= 0.3 * t_peak and abs(got.max() - a * a / (40 * sigma ** 2)) < 0.1
    # a Gaussian model of the same MSD (α₂ = 0) is far off: the check can fail
    assert np.all(np.abs(got[10:40]) > 0.5)
    # and the pure CTRW (σ = 0) follows α₂ = 3/(5Γt)
    pure = _ctrw(22, 500, 2000, 4 * rate, a, 0.0)
    ap = alpha2(pure)
    mm = np.arange(10, 100)
    assert np.all(np.abs(ap[mm] - 0.6 / (4 * rate * mm)) < 0.1 * 0.6 / (4 * rate * mm))


# ------------------------------------------------------------------------------------------ real data and peers
@pytest.fixture(scope="module")
def argyrodite():
    return anionmotion.open(ARGY, frame_interval=0.1, progress=False)


@pytest.fixture(scope="module")
def argy_result(argyrodite):
    return vanhove(argyrodite, "Li", progress=False)


def test_argyrodite_numbers(argyrodite, argy_result):
    res = argy_result
    assert res.n_atoms == 192 and res.n_frames == 140
    assert list(res.lag_frames) == list(default_lags(140, 69))
    # the exact all-lag moments are the MSD of anionmotion.msd (same drift rule)
    m = anionmotion.msd(argyrodite, species="Li")
    assert res.meta["drift"] and m.drift is not None
    assert np.allclose(res.msd_A2, m.msd, rtol=1e-10, atol=1e-12)
    assert np.allclose(res.alpha2[res.lag_frames], res.alpha2_at_lags, rtol=1e-8)
    # hopping Li: non-Gaussian at ps lags, G_d(r→0) fills in as Li move into vacated sites
    mx = res.alpha2_max()
    assert 0.3 < mx["alpha2"] < 0.45 and 0.3 <= mx["lag_ps"] <= 1.5
    assert res.G_d[-1][res.r_A < 1.0].mean() > res.G_d[0][res.r_A < 1.0].mean()
    assert np.allclose(res.G_d[:, res.r_A > 6].mean(axis=1), 1.0, atol=0.05)


def _pymatgen_analyzer(traj, li, disp):
    from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer
    from pymatgen.core import Lattice, Structure

    cell = np.asarray(traj.cells[0])
    frame0 = traj.read(frames=slice(0, 1)).positions[0]
    structure = Structure(Lattice(cell), list(traj.species), frame0, coords_are_cartesian=True)
    full = np.zeros((traj.n_atoms, traj.n_frames, 3))
    full[li] = disp.transpose(1, 0, 2)      # framework displacements 0: pymatgen's drift is then 0
    return DiffusionAnalyzer(structure, full, "Li", 500, 2, 50, smoothed=False)


def test_self_and_distinct_counts_match_pymatgen_vanhoveanalysis(argyrodite):
    from pymatgen.analysis.diffusion.aimd.van_hove import VanHoveAnalysis
    from scipy.stats import norm

    li = argyrodite.select("Li")
    sub = li[::6]                                           # 32 Li keep pymatgen's Python loops short
    pos = argyrodite.read(atoms=sub).positions              # unwrapped, no drift correction on either side
    avg, skip, ngrid, rmax, sigma = 40, 20, 81, 8.0, 0.1
    da = _pymatgen_analyzer(argyrodite, sub, pos - pos[0])
    vh = VanHoveAnalysis(da, avg_nsteps=avg, ngrid=ngrid, rmax=rmax, step_skip=skip, sigma=sigma, indices=list(sub))
    lags = [min(i * skip, 140 - avg) for i in range(len(vh.gsrt))]
    mine = vanhove(argyrodite, sub, lags=[m * 0.1 for m in lags], rmax=rmax, bins=ngrid - 1, n_origins=avg,
                   distinct_stride=1, drift=False, progress=False)
    interval = np.linspace(0, rmax, ngrid)
    gauss = norm.pdf(interval[:, None], interval[None, :], sigma) / avg / len(sub)
    # pymatgen smears the counts of bin k with a Gaussian centred on r_k = k·dr (left edge)
    gs = np.array([mine.self_counts[list(mine.lag_frames).index(m)] @ gauss[:-1] for m in lags])
    assert np.all(mine.n_origins_self == avg)
    assert np.allclose(gs, vh.gsrt, rtol=1e-9, atol=1e-12)
    aux = 4 * np.pi * interval ** 2
    aux[0] = np.pi * (rmax / (ngrid - 1)) ** 2
    rho = len(sub) / abs(np.linalg.det(argyrodite.cells[0]))
    gd = np.array([(mine.distinct_counts[list(mine.lag_frames).index(m)] / aux[:-1] / rho) @ gauss[:-1]
                   for m in lags])
    assert np.allclose(gd, vh.gdrt, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------------------------ memory and errors
def test_peak_memory_does_not_grow_with_frames():
    peaks = []
    for T in (2000, 8000):
        pos = _walk(1, T=T, N=20, step=0.1)
        traj = _traj(pos)
        tracemalloc.start()
        vanhove(traj, "Li", lags=[0.1, 1.0, 5.0], rmax=4.0, bins=20, alpha2=False, frames_per_chunk=200,
                progress=False)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.3 * peaks[0] + 2 ** 20, peaks


def test_window_and_options_are_checked():
    pos = _walk(2, T=30)
    traj = _traj(pos)
    with pytest.raises(OptionError, match="exceeds the analysed run"):
        vanhove(traj, "Li", lags=[5.0], progress=False)
    with pytest.raises(OptionError, match="not a multiple"):
        vanhove(traj, "Li", lags=[0.15], progress=False)
    with pytest.raises(OptionError, match="half the smallest cell width"):
        vanhove(traj, "Li", rmax=8.0, progress=False)
    assert vanhove(traj, "Li", rmax=8.0, distinct=False, progress=False).G_d is None
    with pytest.raises(OptionError, match="window"):
        VanHove("Li", lags=[2.0], memory=100 * 24 * 10, alpha2=False).run(traj)
    with pytest.raises(OptionError, match="origin_stride"):
        VanHove("Li", origin_stride=0)
    uneven = anionmotion.from_arrays(pos[:4], TRICLINIC, times=[0, 0.1, 0.3, 0.4], species=["Li"] * 10)
    with pytest.raises(OptionError, match="evenly spaced"):
        vanhove(uneven, "Li", progress=False)
    with pytest.raises(OptionError, match="no atoms of species Na"):
        vanhove(traj, "Na", progress=False)


def _cli(argv):
    """``anionmotion vanhove …`` through the subcommand module (as ``anionmotion.cli.main`` runs it)."""
    import argparse

    from anionmotion.cli import vanhove as cli_vanhove
    from anionmotion.errors import AnionmotionError

    p = argparse.ArgumentParser(prog="anionmotion")
    cli_vanhove.register(p.add_subparsers(dest="command"))
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except AnionmotionError:
        return 2


def test_cli_writes_json_csv_and_plot(tmp_path, capsys):
    out = tmp_path / "vh.json"
    rc = _cli(["vanhove", ARGY, "--frame-interval", "0.1", "--species", "Li", "--lags", "0.1", "1.0", "--bins", "50",
               "--json", str(out), "--csv", str(tmp_path / "gs.csv"), "--plot", str(tmp_path / "vh.png"),
               "--memory", "256MB", "--no-progress"])
    assert rc == 0
    assert "max α₂" in capsys.readouterr().out
    d = json.loads(out.read_text())
    assert d["lag_ps"] == [0.1, 1.0] and len(d["alpha2"]) == 140 and d["alpha2"][0] is None
    assert len(d["G_s_A-3"]) == 2 and len(d["G_s_A-3"][0]) == 50
    assert (tmp_path / "vh.png").stat().st_size > 0
    assert (tmp_path / "gs.csv").read_text().startswith("r_A,Gs_0.1ps_A-3,Gs_1ps_A-3")
    rc = _cli(["vanhove", ARGY, "--frame-interval", "0.1", "--species", "Li", "--lags", "99", "--no-progress"])
    assert rc == 2
    from anionmotion.cli import SUBCOMMANDS
    if "vanhove" in SUBCOMMANDS:  # registered: the real entry point gives the same exit status
        assert main(["vanhove", ARGY, "--frame-interval", "0.1", "--species", "Li", "--lags", "99",
                     "--no-progress"]) == 2


def test_report_stage_body(argyrodite, monkeypatch):
    from types import SimpleNamespace

    from anionmotion.analysis.detect import CationChoice
    from anionmotion.report import stage_vanhove
    from anionmotion.report.stages import ReportContext, StageOutput

    monkeypatch.setattr(anionmotion, "vanhove", vanhove, raising=False)  # the registry's lazy name
    ctx = ReportContext(traj=argyrodite, cation=CationChoice("Li", 192, "given", "given"),
                        polyanions=SimpleNamespace(found=False), temperature_K=500.0, options={}, progress=False,
                        memory="256MB")
    assert stage_vanhove.applies(ctx) is None
    out = StageOutput("vanhove", "Van Hove")
    out.draw = False
    stage_vanhove.body(ctx, out)
    d = out.to_dict()
    assert d["result"]["alpha2_max"]["alpha2"] > 0.3 and len(d["result"]["alpha2"]) == 140
    assert {t[0] for t in out.tables} == {"vanhove_self.csv", "vanhove_distinct.csv", "alpha2.csv"}
    assert dict(out.summary)["drift correction"] == "yes"
    none = ReportContext(traj=argyrodite, cation=CationChoice(None, 0, "none", "no cation"), polyanions=None,
                         temperature_K=None, options={})
    assert "no mobile cation" in stage_vanhove.applies(none)


@pytest.mark.parametrize("memory", ["2MB", "3MB", "5MB"])
def test_default_lags_capped_by_the_budget_always_fit_it(memory):
    # the default largest lag is capped so that its window (24 B per atom and frame + 80 B per frame) and the
    # histograms fit the budget: default options never fail the memory check (they did by a few % at 10⁶ frames)
    rng = np.random.default_rng(1)
    T, N = 20000, 2
    pos = np.cumsum(rng.normal(0, 0.1, (T, N, 3)), axis=0)
    tr = anionmotion.from_arrays(pos, np.eye(3) * 30, species=["Li"] * N, frame_interval=0.01)
    r = anionmotion.vanhove(tr, "Li", memory=memory, alpha2=False)
    assert "capped by the memory budget" in r.meta["lags_source"]
    assert r.lag_ps[-1] < 0.5 * (T - 1) * 0.01


def test_window_is_a_ring_buffer_never_copied_whole():
    # the window of the last max-lag frames is the largest allocation of the pass; dropping its oldest frames
    # used to shift the window in place, and numpy copied the whole (overlapping) window into a temporary, so the
    # pass peaked at twice the window (1.19 GB at 10⁶ frames instead of ~0.7)
    rng = np.random.default_rng(4)
    T, N, L, fpc = 3000, 100, 1500, 50
    pos = np.cumsum(rng.normal(0, 0.05, (T, N, 3)), axis=0)
    tr = anionmotion.from_arrays(pos, np.eye(3) * 30, species=["Li"] * N, frame_interval=0.1)
    kw = dict(lags=[0.1, 10.0, L * 0.1], rmax=5.0, bins=20, alpha2=False, distinct=False, progress=False)
    tracemalloc.start()
    try:
        res = vanhove(tr, "Li", frames_per_chunk=fpc, **kw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    window = res.meta["window_bytes"]
    assert window >= 24 * N * L
    assert peak < 1.35 * window, (peak, window)
    # and the ring gives the same histograms as any other chunking (frame t in row t mod (L + chunk))
    for other in (7, 1499, T):
        r2 = vanhove(tr, "Li", frames_per_chunk=other, **kw)
        np.testing.assert_array_equal(r2.self_counts, res.self_counts)
        np.testing.assert_array_equal(r2.n_origins_self, res.n_origins_self)
        np.testing.assert_allclose(r2.msd_at_lags_A2, res.msd_at_lags_A2, rtol=1e-13)
