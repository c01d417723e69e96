"""Invariance properties of the MSD, the hop analysis and the diffusion fit (hypothesis on random systems).

MSD: the average over atoms does not depend on their order (atoms, and the framework whose drift is
removed), nor on a rigid rotation, a uniform translation of the whole system at each frame (with the
framework drift removed), time reversal; it scales as length².
Hops: permuting atoms permutes the events; a constant translation, lattice shifts of single atoms, a
rotation of the whole system leave them unchanged; reversing time mirrors them.
Diffusion fit: scaling lengths by s scales D and its error by s²; a change of time unit by k divides
them by k; a constant added to the MSD changes the intercept only; a term b·τ adds b/6 to D (OLS);
swapping two axes swaps the per-direction D.
"""

import dataclasses
import warnings

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

import anionmotion
from anionmotion.errors import UnwrapWarning
from anionmotion.kernels.msd import msd_fft

CASES = settings(deadline=None, max_examples=20, suppress_health_check=[HealthCheck.too_slow])
seeds = st.integers(0, 2**32 - 1)


def walkers(rng, n_frames, n_li, n_fw, box, step=0.3, fw_step=0.05):
    """Unwrapped positions (n_frames, n_li + n_fw, 3), Å: Li random walks and vibrating framework S atoms."""
    li = rng.uniform(0, box, (n_li, 3)) + np.cumsum(rng.normal(scale=step, size=(n_frames, n_li, 3)), axis=0)
    fw = rng.uniform(0, box, (n_fw, 3)) + rng.normal(scale=fw_step, size=(n_frames, n_fw, 3))
    return np.concatenate([li, fw], axis=1), ["Li"] * n_li + ["S"] * n_fw


def traj_of(pos, cell, species, dt=0.1, style="unwrapped"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnwrapWarning)
        return anionmotion.from_arrays(pos, cell, species=species, frame_interval=dt, style=style)


def msd_of(pos, cell, species, dt=0.1, **kw):
    return anionmotion.msd(traj_of(pos, cell, species, dt), species="Li", progress=False, **kw)


def assert_msd_close(a, b, scale=1.0):
    tol = 1e-10 * max(1.0, float(np.max(np.abs(a.msd), initial=0.0))) * scale
    npt.assert_allclose(a.msd, b.msd, rtol=0, atol=tol)
    npt.assert_allclose(a.msd_xyz, b.msd_xyz, rtol=0, atol=tol)
    npt.assert_allclose(a.tmsd, b.tmsd, rtol=0, atol=tol)


# ================================================================================ MSD
@CASES
@given(seed=seeds, n_frames=st.integers(2, 60), n_atoms=st.integers(1, 8), use_ext=st.booleans())
def test_msd_kernel_permutation_invariant(seed, n_frames, n_atoms, use_ext):
    rng = np.random.default_rng(seed)
    pos = np.cumsum(rng.normal(size=(n_frames, n_atoms, 3)), axis=0) + rng.uniform(-20, 20, (n_atoms, 3))
    perm = rng.permutation(n_atoms)
    a = msd_fft(pos, use_ext=use_ext)
    b = msd_fft(pos[:, perm], use_ext=use_ext)
    scale = max(1.0, float(np.abs(pos).max()) ** 2)
    npt.assert_allclose(a[0], b[0], rtol=0, atol=1e-11 * scale)
    npt.assert_allclose(a[1], b[1], rtol=0, atol=1e-11 * scale)


@CASES
@given(seed=seeds, n_frames=st.integers(4, 80), n_li=st.integers(1, 6), n_fw=st.integers(0, 5),
       uneven=st.booleans(), mode=st.sampled_from(["memory", "out-of-core"]))
def test_msd_permutation_of_atoms(seed, n_frames, n_li, n_fw, uneven, mode, tmp_path_factory):
    """Reordering every atom (mobile and framework) changes nothing but the recorded atom indices, in memory
    and out of core (atom-major scratch file, the gather_block_am / subtract_drift_am kernels)."""
    rng = np.random.default_rng(seed)
    pos, species = walkers(rng, n_frames, n_li, n_fw, box=12.0)
    cell = np.eye(3) * 12.0
    perm = rng.permutation(n_li + n_fw)
    times = np.cumsum(rng.uniform(0.05, 0.2, n_frames)) if uneven else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnwrapWarning)
        ta = anionmotion.from_arrays(pos, cell, times=times, species=species,
                                     frame_interval=None if uneven else 0.1)
        tb = anionmotion.from_arrays(pos[:, perm], cell, times=times, species=[species[i] for i in perm],
                                     frame_interval=None if uneven else 0.1)
    kw = dict(progress=False)
    if not uneven:
        kw.update(mode=mode, scratch_dir=str(tmp_path_factory.mktemp("scratch")))
    a = anionmotion.msd(ta, species="Li", **kw)
    b = anionmotion.msd(tb, species="Li", **kw)
    assert_msd_close(a, b)
    if not uneven:
        assert a.meta.get("path") == b.meta.get("path")
        event(str(a.meta.get("path")))
    npt.assert_array_equal(np.sort(perm[b.atom_indices]), np.sort(a.atom_indices))
    if n_fw:
        assert a.drift is not None and b.drift is not None
        npt.assert_allclose(a.drift, b.drift, rtol=0, atol=1e-10)


@CASES
@given(seed=seeds, n_frames=st.integers(4, 60), n_li=st.integers(1, 6), n_fw=st.integers(1, 5))
def test_msd_uniform_motion_of_the_whole_system_is_removed_with_the_drift(seed, n_frames, n_li, n_fw):
    """Every atom moved by the same c(t): the framework-drift-corrected MSD does not change."""
    rng = np.random.default_rng(seed)
    pos, species = walkers(rng, n_frames, n_li, n_fw, box=15.0)
    c = np.cumsum(rng.normal(scale=0.5, size=(n_frames, 1, 3)), axis=0)
    a = msd_of(pos, np.eye(3) * 15.0, species, drift=True)
    b = msd_of(pos + c, np.eye(3) * 15.0, species, drift=True)
    assert_msd_close(a, b, scale=10)


@CASES
@given(seed=seeds, n_frames=st.integers(4, 60), n_li=st.integers(1, 6), n_fw=st.integers(0, 4))
def test_msd_rotation_invariant(seed, n_frames, n_li, n_fw):
    """A rigid rotation of positions and cell keeps the total MSD and TMSD (the x, y, z parts rotate)."""
    rng = np.random.default_rng(seed)
    pos, species = walkers(rng, n_frames, n_li, n_fw, box=12.0)
    cell = np.array([[12.0, 0, 0], [2.0, 11.0, 0], [-1.0, 1.5, 13.0]])
    R = Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()
    a = msd_of(pos, cell, species)
    b = msd_of(pos @ R.T, cell @ R.T, species)
    tol = 1e-9 * max(1.0, float(a.msd.max()))
    npt.assert_allclose(a.msd, b.msd, rtol=0, atol=tol)
    npt.assert_allclose(a.tmsd, b.tmsd, rtol=0, atol=tol)
    npt.assert_allclose(a.volume_A3, b.volume_A3, rtol=1e-12)


@CASES
@given(seed=seeds, n_frames=st.integers(4, 60), n_li=st.integers(1, 6), n_fw=st.integers(0, 4),
       s=st.floats(0.1, 10.0))
def test_msd_scales_as_length_squared(seed, n_frames, n_li, n_fw, s):
    rng = np.random.default_rng(seed)
    pos, species = walkers(rng, n_frames, n_li, n_fw, box=12.0)
    a = msd_of(pos, np.eye(3) * 12.0, species)
    b = msd_of(pos * s, np.eye(3) * 12.0 * s, species)
    tol = 1e-10 * max(1.0, float(a.msd.max())) * s * s
    npt.assert_allclose(b.msd, a.msd * s * s, rtol=0, atol=tol)
    npt.assert_allclose(b.msd_xyz, a.msd_xyz * s * s, rtol=0, atol=tol)


@CASES
@given(seed=seeds, n_frames=st.integers(2, 60), n_li=st.integers(1, 6), n_fw=st.integers(0, 4))
def test_msd_time_reversal_invariant(seed, n_frames, n_li, n_fw):
    """The all-origin MSD uses every pair of frames once: reversing time does not change it."""
    rng = np.random.default_rng(seed)
    pos, species = walkers(rng, n_frames, n_li, n_fw, box=12.0)
    a = msd_of(pos, np.eye(3) * 12.0, species)
    b = msd_of(pos[::-1].copy(), np.eye(3) * 12.0, species)
    assert_msd_close(a, b)


# ================================================================================ hops
def hopper_positions(rng, n_frames, n_atoms, box, p_jump=0.01, jump=3.5):
    """Atoms vibrating on sites and jumping by ``jump`` Å at random frames (unwrapped, Å)."""
    site = rng.uniform(0, box, (n_atoms, 3))
    jumps = (rng.random((n_frames, n_atoms)) < p_jump)[..., None] * rng.normal(size=(n_frames, n_atoms, 3))
    norm = np.linalg.norm(jumps, axis=-1, keepdims=True)
    jumps = np.where(norm > 0, jumps / np.where(norm > 0, norm, 1) * jump, 0.0)
    return site + np.cumsum(jumps, axis=0) + rng.normal(scale=0.2, size=(n_frames, n_atoms, 3))


def events(res, atom_map=None, frame_map=None):
    """The set of (atom, centre, first, last) of every event, atoms/frames mapped when given."""
    am = (lambda a: a) if atom_map is None else atom_map
    fm = (lambda f: f) if frame_map is None else frame_map
    return sorted((int(am(a)), int(fm(c)), int(fm(s)), int(fm(e))) for a, c, s, e in
                  zip(res.event_atom, res.event_frame, res.event_start_frame, res.event_stop_frame))


HOPS = dict(a=2.5, residence=0.6, window=2.0)


def hops_of(pos, cell, species, style="unwrapped"):
    return anionmotion.hops(traj_of(pos, cell, species, dt=0.1, style=style), species="Li", progress=False, **HOPS)


@CASES
@given(seed=seeds, n_frames=st.integers(25, 120), n_li=st.integers(1, 6), n_fw=st.integers(0, 3))
def test_hops_permuting_atoms_permutes_events(seed, n_frames, n_li, n_fw):
    rng = np.random.default_rng(seed)
    pos = hopper_positions(rng, n_frames, n_li + n_fw, 14.0, p_jump=0.03)
    species = ["Li"] * n_li + ["S"] * n_fw
    perm = rng.permutation(n_li + n_fw)
    a = hops_of(pos, np.eye(3) * 14.0, species)
    b = hops_of(pos[:, perm], np.eye(3) * 14.0, [species[i] for i in perm])
    assert events(b, atom_map=lambda j: perm[j]) == events(a)
    event(f"{min(a.n_events, 3)}+ events")
    npt.assert_allclose(a.jump_frequency_per_ns, b.jump_frequency_per_ns, rtol=1e-12)
    npt.assert_array_equal(np.sort(a.jump_frequency_per_atom_per_ns), np.sort(b.jump_frequency_per_atom_per_ns))


@CASES
@given(seed=seeds, n_frames=st.integers(25, 120), n_li=st.integers(1, 6), shift=st.tuples(*[st.floats(-30, 30)] * 3),
       max_cells=st.integers(0, 3))
def test_hops_translation_and_lattice_shift_invariant(seed, n_frames, n_li, shift, max_cells):
    """A constant translation of everything, wrapped into the cell, and whole-cell shifts of single atoms
    at single frames (what a wrapped trajectory is) give the same events as the unwrapped input."""
    rng = np.random.default_rng(seed)
    cell = np.array([[14.0, 0, 0], [1.0, 13.0, 0], [0.5, -1.0, 15.0]])
    pos = hopper_positions(rng, n_frames, n_li, 14.0, p_jump=0.03)
    species = ["Li"] * n_li
    a = hops_of(pos, cell, species)
    moved = pos + np.asarray(shift)
    frac = moved @ np.linalg.inv(cell)
    frac += rng.integers(-max_cells, max_cells + 1, size=frac.shape)      # lattice shifts, frame by frame
    b = hops_of(frac @ cell, cell, species, style="wrapped")
    assert events(b) == events(a)
    event(f"{min(a.n_events, 3)}+ events")


@CASES
@given(seed=seeds, n_frames=st.integers(25, 120), n_li=st.integers(1, 6))
def test_hops_rotation_invariant(seed, n_frames, n_li):
    rng = np.random.default_rng(seed)
    pos = hopper_positions(rng, n_frames, n_li, 14.0, p_jump=0.03)
    R = Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()
    a = hops_of(pos, np.eye(3) * 14.0, ["Li"] * n_li)
    b = hops_of(pos @ R.T, np.eye(3) * 14.0 @ R.T, ["Li"] * n_li)
    assert events(b) == events(a)
    event(f"{min(a.n_events, 3)}+ events")


@CASES
@given(seed=seeds, n_frames=st.integers(25, 120), n_li=st.integers(1, 6))
def test_hops_time_reversal_mirrors_events(seed, n_frames, n_li):
    """h(t) compares r(t + t') with r(t − t'): on the reversed trajectory it is h(T − 1 − t)."""
    rng = np.random.default_rng(seed)
    pos = hopper_positions(rng, n_frames, n_li, 14.0, p_jump=0.03)
    a = hops_of(pos, np.eye(3) * 14.0, ["Li"] * n_li)
    b = hops_of(pos[::-1].copy(), np.eye(3) * 14.0, ["Li"] * n_li)
    last = n_frames - 1
    # runs [first, last] map to [T − 1 − last, T − 1 − first]; the centre of a run of even length may move
    # by one frame under reversal, so centres are compared to ±1
    mirrored = sorted((atom, last - e, last - s, last - c) for atom, c, s, e in events(b))
    direct = sorted((atom, s, e, c) for atom, c, s, e in events(a))
    assert [x[:3] for x in mirrored] == [x[:3] for x in direct]
    for x, y in zip(mirrored, direct):
        assert abs(x[3] - y[3]) <= 1
    event(f"{min(len(direct), 3)}+ events")
    if a.h is not None and b.h is not None:
        npt.assert_array_equal(a.h, b.h[::-1])


# ================================================================================ diffusion fit
def diffusive_msd(seed, n_frames=400, n_li=12, dt=0.1, step=0.4, s=1.0):
    rng = np.random.default_rng(seed)
    pos, species = walkers(rng, n_frames, n_li, 0, box=20.0, step=step)
    return msd_of(pos * s, np.eye(3) * 20.0 * s, species, dt=dt)


ESTIMATORS = st.sampled_from(["auto", "ols", "gls", "he"])


@settings(deadline=None, max_examples=12, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds, s=st.floats(0.2, 5.0), estimator=ESTIMATORS)
def test_fit_scaling_lengths_scales_D_by_s_squared(seed, s, estimator):
    a = anionmotion.fit_diffusion(diffusive_msd(seed), estimator=estimator, warn=False)
    b = anionmotion.fit_diffusion(diffusive_msd(seed, s=s), estimator=estimator, warn=False)
    # a D below the detection threshold (1e-4 Å²/ps) is reported as that bound, which does not scale
    if not (a.below_threshold or b.below_threshold):
        npt.assert_allclose(b.D_A2_ps, a.D_A2_ps * s * s, rtol=1e-7)
        npt.assert_allclose(b.D_stderr_A2_ps, a.D_stderr_A2_ps * s * s, rtol=1e-6)
    ok = ~(a.below_threshold_xyz | b.below_threshold_xyz)
    npt.assert_allclose(b.D_xyz_A2_ps[ok], a.D_xyz_A2_ps[ok] * s * s, rtol=1e-7)
    npt.assert_allclose(b.intercept_A2, a.intercept_A2 * s * s, rtol=1e-6, atol=1e-9 * s * s * abs(a.D_A2_ps))
    assert b.fit_window_ps == pytest.approx(a.fit_window_ps)


@settings(deadline=None, max_examples=12, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds, k=st.floats(0.01, 100.0), estimator=ESTIMATORS)
def test_fit_time_unit_change_divides_D(seed, k, estimator):
    """The same frames k times further apart: D and its error divided by k, the window stretched by k.

    The hop distance is given: its default (median nearest-neighbour distance of sites averaged over the
    first picosecond) averages over a physical time, i.e. over other frames when the time unit changes.
    """
    a = anionmotion.fit_diffusion(diffusive_msd(seed, dt=0.1), estimator=estimator, warn=False, hop_distance=4.0)
    b = anionmotion.fit_diffusion(diffusive_msd(seed, dt=0.1 * k), estimator=estimator, warn=False,
                                  hop_distance=4.0)
    if not (a.below_threshold or b.below_threshold):      # a threshold bound does not scale
        npt.assert_allclose(b.D_A2_ps, a.D_A2_ps / k, rtol=1e-7)
        npt.assert_allclose(b.D_stderr_A2_ps, a.D_stderr_A2_ps / k, rtol=1e-6)
    ok = ~(a.below_threshold_xyz | b.below_threshold_xyz)
    npt.assert_allclose(b.D_xyz_A2_ps[ok], a.D_xyz_A2_ps[ok] / k, rtol=1e-7)
    npt.assert_allclose(np.asarray(b.fit_window_ps), np.asarray(a.fit_window_ps) * k, rtol=1e-9)
    npt.assert_allclose(b.intercept_A2, a.intercept_A2, rtol=1e-6, atol=1e-9)


def _shifted(res, c=0.0, b=0.0):
    """The MSD result with c + b·τ added (c and b split evenly over x, y, z)."""
    add = c + b * res.lag
    xyz = res.msd_xyz + add[:, None] / 3.0
    return dataclasses.replace(res, msd=res.msd + add, msd_xyz=xyz)


@settings(deadline=None, max_examples=15, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds, c=st.floats(-5.0, 50.0), window=st.sampled_from([(2.0, 15.0), (4.0, 20.0), (1.0, 39.0)]))
def test_fit_constant_offset_changes_only_the_intercept(seed, c, window):
    """OLS: adding a constant to the MSD moves the intercept by it and leaves the slope (D) alone."""
    base = diffusive_msd(seed)
    for estimator in ("ols", "he"):
        a = anionmotion.fit_diffusion(base, fit=window, estimator=estimator, warn=False)
        b = anionmotion.fit_diffusion(_shifted(base, c=c), fit=window, estimator=estimator, warn=False)
        npt.assert_allclose(b.D_A2_ps, a.D_A2_ps, rtol=1e-9, atol=1e-12)
        npt.assert_allclose(b.D_xyz_A2_ps, a.D_xyz_A2_ps, rtol=1e-9, atol=1e-12)
        npt.assert_allclose(b.intercept_A2, a.intercept_A2 + c, rtol=1e-9, atol=1e-9)
        assert b.n_fit_lags == a.n_fit_lags


@settings(deadline=None, max_examples=15, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds, b=st.floats(0.0, 5.0), window=st.sampled_from([(2.0, 15.0), (4.0, 20.0), (1.0, 39.0)]))
def test_fit_linear_term_adds_to_D(seed, b, window):
    """OLS is linear in the data: adding b·τ (Å²/ps) to the MSD adds b/6 to D and b/6 to each D_k
    (b/3 per direction, D_k = slope_k / 2)."""
    base = diffusive_msd(seed)
    a = anionmotion.fit_diffusion(base, fit=window, estimator="ols", warn=False)
    r = anionmotion.fit_diffusion(_shifted(base, b=b), fit=window, estimator="ols", warn=False)
    if not (a.below_threshold or r.below_threshold):      # a threshold bound is not a slope
        npt.assert_allclose(r.D_A2_ps, a.D_A2_ps + b / 6.0, rtol=1e-9, atol=1e-12)
    ok = ~(a.below_threshold_xyz | r.below_threshold_xyz)
    npt.assert_allclose(r.D_xyz_A2_ps[ok], a.D_xyz_A2_ps[ok] + b / 6.0, rtol=1e-9, atol=1e-12)


@settings(deadline=None, max_examples=10, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds, axes=st.permutations([0, 1, 2]), estimator=ESTIMATORS)
def test_fit_axis_permutation_permutes_D_xyz(seed, axes, estimator):
    rng = np.random.default_rng(seed)
    pos, species = walkers(rng, 300, 10, 0, box=20.0, step=0.4)
    pos[..., 2] *= 0.5                                           # anisotropic, so the permutation shows
    cell = np.diag([20.0, 21.0, 22.0])
    a = anionmotion.fit_diffusion(msd_of(pos, cell, species), estimator=estimator, warn=False)
    b = anionmotion.fit_diffusion(msd_of(pos[..., axes], cell[np.ix_(axes, axes)], species), estimator=estimator,
                                  warn=False)
    npt.assert_allclose(b.D_xyz_A2_ps, a.D_xyz_A2_ps[axes], rtol=1e-7)
    npt.assert_allclose(b.D_A2_ps, a.D_A2_ps, rtol=1e-7)
