"""The trajectory model: selections, chunking, unwrapping through the Trajectory, validation."""

import warnings

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anionmotion
from anionmotion import OptionError, TrajectoryError, UnwrapWarning


def _walk(n_frames=60, n_atoms=5, seed=0, scale=0.3):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(0, scale, (n_frames, n_atoms, 3)), axis=0)


CELL = np.array([[6.0, 0, 0], [1.5, 6.5, 0], [-1.0, 0.8, 7.0]])


def _wrap(pos, cell):
    s = pos @ np.linalg.inv(cell)
    return (s - np.floor(s)) @ cell


def test_wrapped_input_is_unwrapped_exactly_triclinic():
    pos = _walk()
    traj = anionmotion.from_arrays(_wrap(pos, CELL), CELL, species=["Li"] * 5, frame_interval=0.5, style="wrapped")
    c = traj.read()
    npt.assert_allclose(c.positions - c.positions[0], pos - pos[0], atol=1e-10)
    assert c.positions.shape == (60, 5, 3)
    npt.assert_allclose(c.times, 0.5 * np.arange(60))


def test_npt_cells_unwrap_in_fractional_coordinates():
    rng = np.random.default_rng(1)
    n = 40
    frac = np.cumsum(rng.uniform(-0.05, 0.05, (n, 3, 3)), axis=0) + 0.5
    cells = np.array([CELL * (1 + 0.01 * np.sin(i)) for i in range(n)])
    wrapped = np.einsum("tik,tkl->til", frac - np.floor(frac), cells)
    traj = anionmotion.from_arrays(wrapped, cells, species=["Na"] * 3, frame_interval=1.0, style="wrapped")
    c = traj.read()
    expect = np.einsum("tik,tkl->til", frac - np.floor(frac[0]), cells)
    npt.assert_allclose(c.positions, expect, atol=1e-10)


def test_image_flags_are_used_instead_of_unwrapping():
    pos = _walk(10, 2, scale=3.0)  # big steps: frame-to-frame unwrapping would fail
    cell = np.diag([5.0, 5.0, 5.0])
    img = np.floor(pos / 5.0).astype(int)
    wrapped = pos - img * 5.0
    traj = anionmotion.from_arrays(wrapped, cell, species=["Li", "Li"], frame_interval=1.0, style="wrapped",
                                   images=img)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = traj.read()
    npt.assert_allclose(c.positions, pos, atol=1e-12)


@settings(deadline=None, max_examples=25)
@given(chunk=st.integers(1, 30), start=st.integers(0, 20), step=st.integers(1, 4))
def test_chunks_equal_full_read(chunk, start, step):
    pos = _walk(45, 3, seed=4)
    traj = anionmotion.from_arrays(_wrap(pos, CELL), CELL, species=["Li", "P", "S"], frame_interval=0.1,
                                   style="wrapped")
    full = traj.read(frames=slice(start, None, step))
    parts = list(traj.iter_chunks(chunk, start=start, step=step))
    assert all(p.n_frames <= chunk for p in parts)
    npt.assert_allclose(np.concatenate([p.positions for p in parts]), full.positions, atol=1e-12)
    npt.assert_array_equal(np.concatenate([p.frame_indices for p in parts]), np.arange(45)[start::step])
    # positions of frames read with a stride still equal the true unwrapped walk
    npt.assert_allclose(full.positions - full.positions[0], pos[start::step] - pos[start], atol=1e-10)


def test_selection_by_species_and_indices():
    pos = _walk(3, 6)
    traj = anionmotion.from_arrays(pos, CELL, species=["Li", "P", "S", "S", "Li", "Cl"], frame_interval=1)
    npt.assert_array_equal(traj.select("Li"), [0, 4])
    npt.assert_array_equal(traj.select("S Cl"), [2, 3, 5])
    npt.assert_array_equal(traj.select(["P", "Li"]), [0, 1, 4])
    npt.assert_array_equal(traj.select([5, 1]), [1, 5])
    c = traj.read(atoms="S")
    npt.assert_allclose(c.positions, pos[:, [2, 3]])
    assert list(c.species) == ["S", "S"]
    assert traj.species_counts() == {"Li": 2, "P": 1, "S": 2, "Cl": 1}
    with pytest.raises(OptionError, match="no atoms of species Na; the trajectory has Cl, Li, P, S"):
        traj.select("Na")
    with pytest.raises(OptionError, match="atom index 9 out of range for 6 atoms"):
        traj.select([0, 9])


def test_velocities_masses_and_units_pass_through():
    pos = _walk(4, 2)
    vel = np.ones_like(pos)
    traj = anionmotion.from_arrays(pos, CELL, species=["Li", "O"], velocities=vel, frame_interval=0.2)
    c = traj.read()
    npt.assert_array_equal(c.velocities, vel)
    npt.assert_allclose(traj.masses, [6.9412, 15.9994], atol=1e-3)
    assert traj.has_velocities
    assert traj.volume == pytest.approx(abs(np.linalg.det(CELL)))


def test_missing_time_information_names_the_option():
    traj = anionmotion.from_arrays(_walk(3, 1), CELL, species=["Li"])
    with pytest.raises(OptionError, match="--frame-interval"):
        traj.times


def test_non_increasing_time_is_an_error():
    traj = anionmotion.from_arrays(_walk(4, 1), CELL, times=[0, 1, 1, 2], species=["Li"])
    with pytest.raises(TrajectoryError, match=r"frame 2: time does not increase"):
        traj.read()


def test_nan_coordinates_name_frame_and_atom():
    pos = _walk(5, 3)
    pos[3, 2, 1] = np.nan
    traj = anionmotion.from_arrays(pos, CELL, species=["Li"] * 3, frame_interval=1)
    with pytest.raises(TrajectoryError, match=r"frame 3, atom 2: coordinates contain nan \(component y\)"):
        traj.read()


def test_zero_volume_cell_is_an_error():
    cells = np.broadcast_to(CELL, (4, 3, 3)).copy()
    cells[2, 2] = 0.0
    traj = anionmotion.from_arrays(_walk(4, 1), cells, species=["Li"], frame_interval=1)
    with pytest.raises(TrajectoryError, match="frame 2: cell volume is 0"):
        traj.read()


def test_coarse_sampling_warns_with_atom_frame_and_value():
    pos = np.zeros((3, 2, 3))
    pos[2, 1, 0] = 2.5  # 0.42 of a 6 Å cell
    cell = np.diag([6.0, 6.0, 6.0])
    traj = anionmotion.from_arrays(pos, cell, species=["Li", "Na"], frame_interval=1, style="wrapped")
    with pytest.warns(UnwrapWarning, match=r"atom 1 \(Na\) moved 0.417 of a cell vector into frame 2"):
        traj.read()


def test_bad_frames_per_chunk_and_frames_argument():
    traj = anionmotion.from_arrays(_walk(3, 1), CELL, species=["Li"], frame_interval=1)
    with pytest.raises(OptionError, match="frames_per_chunk must be a positive integer"):
        next(traj.iter_chunks(0))
    with pytest.raises(TypeError, match="frames must be a slice"):
        traj.read(frames=[0, 1])


def test_empty_and_single_frame():
    traj = anionmotion.from_arrays(_walk(1, 2), CELL, species=["Li", "Li"], frame_interval=1, style="wrapped")
    c = traj.read()
    assert c.n_frames == 1
    assert traj.is_uniform and traj.dt == 0.0
    empty = traj.read(frames=slice(1, 1))
    assert empty.n_frames == 0 and empty.n_atoms == 2


def test_non_uniform_times_are_kept():
    t = np.array([0.0, 0.1, 0.2, 0.4, 0.8, 1.6])
    traj = anionmotion.from_arrays(_walk(6, 1), CELL, times=t, species=["Li"])
    assert not traj.is_uniform
    npt.assert_array_equal(traj.read().times, t)


def test_repr_and_context_manager():
    with anionmotion.from_arrays(_walk(2, 2), CELL, species=["Li", "S"], frame_interval=1) as traj:
        assert "n_atoms=2 (Li1 S1) n_frames=2" in repr(traj)
        assert len(traj) == 2


def test_iter_chunks_without_unwrapping_leaves_the_setting_alone():
    pos = _walk(20, 3, scale=1.0)
    wrapped = _wrap(pos, CELL)
    traj = anionmotion.from_arrays(wrapped, CELL, species=["Li"] * 3, frame_interval=1, style="wrapped")
    raw = np.concatenate([c.positions for c in traj.iter_chunks(7, unwrap=False)])
    npt.assert_allclose(raw, wrapped, atol=1e-12)
    assert traj.unwrap is True
    npt.assert_allclose(traj.read().positions - traj.read().positions[0], pos - pos[0], atol=1e-10)


def test_infinite_velocity_is_found_even_when_sums_overflow():
    pos = _walk(4, 2)
    vel = np.full_like(pos, 1e308)  # the sum overflows although every value is finite
    traj = anionmotion.from_arrays(pos, CELL, species=["Li", "Li"], velocities=vel, frame_interval=1)
    assert traj.read().velocities.shape == (4, 2, 3)
    vel[2, 1, 2] = np.inf
    traj = anionmotion.from_arrays(pos, CELL, species=["Li", "Li"], velocities=vel, frame_interval=1)
    with pytest.raises(TrajectoryError, match=r"frame 2, atom 1: velocities contain inf \(component z\)"):
        traj.read()


@pytest.mark.parametrize("style", ["wrapped", "fractional"])
def test_unwrapping_a_chunk_needs_one_working_copy(style):
    """_process: wrapped → fractional → unwrapped → Cartesian in one array (plus the (n, atoms) jump table)."""
    import tracemalloc

    pos = _walk(n_frames=400, n_atoms=300, scale=0.2)
    arr = _wrap(pos, CELL) if style == "wrapped" else (pos @ np.linalg.inv(CELL)) % 1.0
    traj = anionmotion.from_arrays(arr, CELL, species=["Li"] * 300, frame_interval=0.1, style=style)
    traj.times, traj.cells  # noqa: B018
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        for ch in traj.iter_chunks(400):
            out = ch.positions
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    npt.assert_allclose(out, pos - pos[0] + traj.read(frames=slice(0, 1)).positions[0], atol=1e-9)
    chunk_bytes = 400 * 300 * 3 * 8
    # the result (1×) and the jump table (1/3× here, at most 1 MiB); before: shifted, fractional, unwrapped and
    # Cartesian copies (≥ 3×)
    assert peak < 1.8 * chunk_bytes, peak / chunk_bytes


def test_velocities_false_and_constant_cell_of_arrays():
    pos = _walk()
    vel = np.ones_like(pos)
    traj = anionmotion.from_arrays(pos, CELL, species=["Li"] * 5, velocities=vel, frame_interval=0.5)
    assert traj.read(velocities=False).velocities is None
    npt.assert_array_equal(traj.read(velocities=True).velocities, vel)
    assert all(c.velocities is None for c in traj.iter_chunks(7, velocities=False))
    assert traj.cell_constant and traj.cells.shape == (60, 3, 3) and not traj.cells.flags.writeable
    assert traj.volume == abs(np.linalg.det(CELL))
    novel = anionmotion.from_arrays(pos, CELL, species=["Li"] * 5, frame_interval=0.5)
    with pytest.raises(OptionError, match="velocities"):
        novel.read(velocities=True)
