"""Reading only what is asked for (issue 15, item 3).

* A selection read from NetCDF gives exactly the numbers of reading all atoms
  and selecting (hypothesis over selections, chunk sizes, velocities), and the
  reader's numbers equal a plain netCDF4 + numpy reference.
* Streaming 10 % of the atoms needs far less memory than streaming all of them;
  ``velocities=False`` reads no velocities.
* A constant cell is kept once (read-only broadcast view, O(1) volume); a
  changing cell is kept frame by frame, checked block by block.
"""

import tracemalloc

import netCDF4
import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anionmotion
from anionmotion import trajectory as trajmod
from anionmotion.errors import OptionError, TrajectoryError

N_ATOMS = 40
N_FRAMES = 37
L_BOX = 9.0


def _write_nc(path, *, n_atoms=N_ATOMS, n_frames=N_FRAMES, velocities=True, shuffle=False, cells=None, seed=0,
              dtype="f4"):
    """An AMBER-like NetCDF file: wrapped float32 coordinates of a random walk, optional velocities.

    ``shuffle`` writes LAMMPS-style rows in a different atom order every frame (with an ``id`` variable).
    ``cells`` (n_frames, 3) lengths per frame (default: a constant cubic box).
    """
    rng = np.random.default_rng(seed)
    species = np.where(np.arange(n_atoms) % 4 == 0, "Li", np.where(np.arange(n_atoms) % 4 == 1, "P", "S"))
    x0 = rng.uniform(0, L_BOX, (n_atoms, 3))
    walk = x0 + np.cumsum(rng.normal(scale=0.3, size=(n_frames, n_atoms, 3)), axis=0)
    lengths = np.full((n_frames, 3), L_BOX) if cells is None else np.asarray(cells, dtype=np.float64)
    wrapped = walk - lengths[:, None, :] * np.floor(walk / lengths[:, None, :])
    vel = rng.normal(size=(n_frames, n_atoms, 3))
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as ds:
        ds.Conventions = "AMBER"
        ds.ConventionVersion = "1.0"
        for d, s in (("frame", None), ("spatial", 3), ("atom", n_atoms), ("cell_spatial", 3), ("cell_angular", 3),
                     ("label", 2)):
            ds.createDimension(d, s)
        c = ds.createVariable("coordinates", dtype, ("frame", "atom", "spatial"))
        c.units = "angstrom"
        if velocities:
            v = ds.createVariable("velocities", dtype, ("frame", "atom", "spatial"))
            v.units = "angstrom/picosecond"
            v.scale_factor = 20.455
        t = ds.createVariable("time", "f8", ("frame",))
        t.units = "picosecond"
        cl = ds.createVariable("cell_lengths", "f8", ("frame", "cell_spatial"))
        cl.units = "angstrom"
        ca = ds.createVariable("cell_angles", "f8", ("frame", "cell_angular"))
        ca.units = "degree"
        el = ds.createVariable("element", "S1", ("atom", "label"))
        el[:] = netCDF4.stringtochar(np.array([s.ljust(2) for s in species], dtype="S2"))
        if shuffle:
            ids = ds.createVariable("id", "i4", ("frame", "atom"))
            for k in range(n_frames):
                order = rng.permutation(n_atoms)  # row j holds atom order[j]
                ids[k] = order + 1
                c[k] = wrapped[k][order]
                if velocities:
                    v[k] = vel[k][order]
        else:
            c[:] = wrapped
            if velocities:
                v[:] = vel
        t[:] = 0.01 * np.arange(n_frames)
        cl[:] = lengths
        ca[:] = 90.0
    return path


@pytest.fixture(scope="module")
def nc_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("readmem")
    return {"plain": str(_write_nc(d / "plain.nc")),
            "shuffled": str(_write_nc(d / "shuffled.nc", shuffle=True, seed=1)),
            "f64": str(_write_nc(d / "f64.nc", dtype="f8", seed=2))}


def _concat(chunks, what):
    arrs = [getattr(c, what) for c in chunks]
    if any(a is None for a in arrs):
        assert all(a is None for a in arrs)
        return None
    return np.concatenate(arrs)


# ----------------------------------------------------------------------------- selections are exact
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["plain", "shuffled", "f64"]),
       mask=st.lists(st.booleans(), min_size=N_ATOMS, max_size=N_ATOMS),
       fpc=st.integers(1, 45), step=st.integers(1, 3), start=st.integers(0, 5),
       velocities=st.sampled_from([None, False, True]), unwrap=st.booleans())
def test_selection_equals_all_then_select(nc_files, which, mask, fpc, step, start, velocities, unwrap):
    sel = np.nonzero(mask)[0]
    if len(sel) == 0:
        sel = np.array([int(start) % N_ATOMS])
    traj = anionmotion.open(nc_files[which], unwrap=unwrap)
    # reference: every atom, every frame from start in one chunk, then the stride and the selection
    ref = list(traj.iter_chunks(N_FRAMES, start=start, progress=False))
    got = list(traj.iter_chunks(fpc, atoms=sel, start=start, step=step, progress=False, velocities=velocities))
    assert all(c.n_frames == fpc for c in got[:-1]) and 0 < got[-1].n_frames <= fpc
    pos_all = _concat(ref, "positions")[::step]
    npt.assert_array_equal(_concat(got, "positions"), pos_all[:, sel])
    vel = _concat(got, "velocities")
    if velocities is False:
        assert vel is None
    else:
        npt.assert_array_equal(vel, _concat(ref, "velocities")[::step][:, sel])
    npt.assert_array_equal(_concat(got, "cells"), _concat(ref, "cells")[::step])
    npt.assert_array_equal(_concat(got, "origins"), _concat(ref, "origins")[::step])
    npt.assert_array_equal(_concat(got, "times"), _concat(ref, "times")[::step])
    npt.assert_array_equal(_concat(got, "frame_indices"), np.arange(start, N_FRAMES, step))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["plain", "shuffled", "f64"]),
       atoms=st.lists(st.integers(0, N_ATOMS - 1), min_size=0, max_size=25),
       lo=st.integers(0, N_FRAMES - 1), n=st.integers(0, 12), velocities=st.sampled_from([None, False, True]))
def test_reader_equals_plain_netcdf4_reference(nc_files, which, atoms, lo, n, velocities):
    """The reader's numbers for any atom list (unsorted, repeated, empty) equal float64(file) × factor, selected."""
    hi = min(N_FRAMES, lo + n)
    traj = anionmotion.open(nc_files[which])
    reader = traj._reader
    idx = np.asarray(atoms, dtype=np.int64)
    raw = reader.read(lo, hi, idx, velocities=velocities)
    with netCDF4.Dataset(nc_files[which]) as ds:
        ds.set_auto_maskandscale(False)
        crd = np.asarray(ds["coordinates"][lo:hi], dtype=np.float64)
        vel = np.asarray(ds["velocities"][lo:hi], dtype=np.float64)
        if "id" in ds.variables:
            ids = np.asarray(ds["id"][lo:hi])
            for k in range(hi - lo):
                o = np.argsort(ids[k], kind="stable")
                crd[k], vel[k] = crd[k][o], vel[k][o]
    assert raw.coords.dtype == np.float64 and raw.coords.flags.c_contiguous
    npt.assert_array_equal(raw.coords, crd[:, idx] * 1.0)
    if velocities is False:
        assert raw.velocities is None
    else:
        npt.assert_array_equal(raw.velocities, vel[:, idx] * 20.455)


def test_velocities_flag(tmp_path, nc_files):
    traj = anionmotion.open(nc_files["plain"])
    assert traj.read(atoms="Li", velocities=False).velocities is None
    assert traj.read(atoms="Li", velocities=True).velocities.shape == (N_FRAMES, N_ATOMS // 4, 3)
    npt.assert_array_equal(traj.read(atoms="Li", velocities=False).positions, traj.read(atoms="Li").positions)
    novel = anionmotion.open(_write_nc(tmp_path / "novel.nc", velocities=False))
    assert novel.read().velocities is None
    with pytest.raises(OptionError, match="velocities"):
        novel.read(velocities=True)
    with pytest.raises(OptionError, match="velocities"):
        next(novel.iter_chunks(5, velocities=True))


def test_in_memory_arrays_are_not_overwritten():
    """Unwrapping in place must never touch the caller's arrays (from_arrays hands out views)."""
    rng = np.random.default_rng(3)
    pos = rng.uniform(0, 5, (20, 6, 3))
    keep = pos.copy()
    for style in ("wrapped", "fractional"):
        p = pos / 5.0 if style == "fractional" else pos
        kept = p.copy()
        traj = anionmotion.from_arrays(p, np.eye(3) * 5.0, species=["Li"] * 6, frame_interval=0.1, style=style)
        for _ in traj.iter_chunks(7, atoms=[0, 2, 3]):
            pass
        for _ in traj.iter_chunks(7):
            pass
        npt.assert_array_equal(p, kept)
    npt.assert_array_equal(pos, keep)


# ----------------------------------------------------------------------------- memory
def _peak(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base, cur - base


@pytest.fixture(scope="module")
def big_nc(tmp_path_factory):
    """2000 atoms × 240 frames, float32 coordinates and velocities (5.8 MB each)."""
    d = tmp_path_factory.mktemp("readmem_big")
    return str(_write_nc(d / "big.nc", n_atoms=2000, n_frames=240, seed=4))


@pytest.mark.parametrize("shape", ["block", "interleaved"])
def test_selection_peak_memory_is_a_fraction_of_all_atoms(big_nc, shape):
    traj = anionmotion.open(big_nc)
    traj.times, traj.cells  # noqa: B018 - load the per-frame arrays outside the measurement
    sel = np.arange(200) if shape == "block" else np.arange(0, 2000, 10)  # 10 % of the atoms

    def stream(atoms):
        def run():
            for ch in traj.iter_chunks(240, atoms=atoms, progress=False):
                del ch
        return run

    peak_all, _ = _peak(stream(None))
    peak_sel, _ = _peak(stream(sel))
    # all atoms: positions and velocities of 2000 atoms (at least 2 × 11.5 MB float64); 10 % of them: ~1/10
    assert peak_all > 2 * 240 * 2000 * 3 * 8
    assert peak_sel < 0.25 * peak_all, (peak_sel, peak_all)

    def no_vel():
        for ch in traj.iter_chunks(240, atoms=sel, progress=False, velocities=False):
            assert ch.velocities is None

    peak_novel, _ = _peak(no_vel)
    if shape == "block":  # (interleaved: the bounded covering-slice buffer is a good part of this small peak)
        assert peak_novel < 0.7 * peak_sel, (peak_novel, peak_sel)


def test_a_strided_chunk_costs_its_kept_frames_not_the_stride(big_nc):
    """With step=8 the frames in between are read for unwrapping, one sub-block at a time."""
    traj = anionmotion.open(big_nc)
    traj.times, traj.cells  # noqa: B018
    sel = np.arange(400)

    def run():
        for ch in traj.iter_chunks(30, atoms=sel, step=8, progress=False, velocities=False):
            assert ch.n_frames == 30
            del ch

    peak, _ = _peak(run)
    kept = 30 * 400 * 3 * 8
    # kept frames + one sub-block of ≤ 30 frames (+ jump table, raw buffer); before: all 240 frames (8×)
    assert peak < 4 * kept, peak / kept


# ----------------------------------------------------------------------------- cells
def test_constant_cell_is_kept_once(tmp_path, monkeypatch):
    n = 3000
    path = _write_nc(tmp_path / "const.nc", n_atoms=2, n_frames=n, velocities=False)
    monkeypatch.setattr(trajmod, "_CELL_BLOCK", 256)
    traj = anionmotion.open(path)
    peak, kept = _peak(lambda: traj.cells)
    assert traj.cell_constant
    cells = traj.cells
    assert cells.shape == (n, 3, 3) and cells.strides[0] == 0 and not cells.flags.writeable
    npt.assert_array_equal(cells[-1], np.eye(3) * L_BOX)
    with pytest.raises(ValueError):
        cells[0, 0, 0] = 1.0
    # kept: one cell (the old (n, 3, 3) array was 72 bytes per frame); peak: one block of 256 frames
    assert kept < n * 72 / 10, kept
    assert peak < n * 72 / 2, peak
    assert traj.volume == abs(np.linalg.det(np.eye(3) * L_BOX))  # one determinant, not a mean over frames
    # chunks still carry a cell per frame, checked per chunk
    ch = next(traj.iter_chunks(10))
    assert ch.cells.shape == (10, 3, 3) and ch.cells.flags.writeable


@pytest.mark.parametrize("change_at", [1, 255, 256, 700, 2999])
def test_changing_cell_is_kept_per_frame(tmp_path, monkeypatch, change_at):
    n = 3000
    lengths = np.full((n, 3), L_BOX)
    lengths[change_at:, 2] = L_BOX + 0.5
    path = _write_nc(tmp_path / "npt.nc", n_atoms=2, n_frames=n, velocities=False, cells=lengths)
    monkeypatch.setattr(trajmod, "_CELL_BLOCK", 256)
    traj = anionmotion.open(path)
    assert not traj.cell_constant
    cells = traj.cells
    assert cells.strides[0] != 0
    npt.assert_array_equal(cells[:, 2, 2], lengths[:, 2])
    npt.assert_array_equal(cells[:, 0, 0], lengths[:, 0])
    npt.assert_array_equal(cells, traj._reader.read_cells(0, n))
    npt.assert_allclose(traj.volume, np.mean(np.prod(lengths, axis=1)), rtol=1e-14)


def test_bad_cell_in_a_later_block_names_the_frame(tmp_path, monkeypatch):
    n = 600
    lengths = np.full((n, 3), L_BOX)
    lengths[513, 1] = 0.0
    path = _write_nc(tmp_path / "bad.nc", n_atoms=2, n_frames=n, velocities=False, cells=lengths)
    monkeypatch.setattr(trajmod, "_CELL_BLOCK", 128)
    traj = anionmotion.open(path)
    with pytest.raises(TrajectoryError, match="frame 513"):
        traj.cells  # noqa: B018


def _dump(path, boxes):
    """A LAMMPS dump of 3 atoms with one box line triple per frame."""
    lines = []
    for k, hi in enumerate(boxes):
        lines += ["ITEM: TIMESTEP", str(10 * k), "ITEM: NUMBER OF ATOMS", "3", "ITEM: BOX BOUNDS pp pp pp",
                  f"0.0 {hi[0]}", f"0.0 {hi[1]}", f"0.0 {hi[2]}", "ITEM: ATOMS id type x y z vx vy vz"]
        for i in range(3):
            lines.append(f"{i + 1} 1 {0.5 + i + 0.1 * k} 1.0 2.0 0.1 0.2 0.3")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_lammps_constant_box_from_the_index(tmp_path):
    traj = anionmotion.open(_dump(tmp_path / "c.dump", [(5.0, 6.0, 7.0)] * 6), timestep=0.001, types="1=Li")
    assert traj._reader.constant_cell() is not None
    assert traj.cell_constant and traj.cells.strides[0] == 0
    assert traj.volume == abs(np.linalg.det(np.diag([5.0, 6.0, 7.0])))
    npt.assert_array_equal(traj.read().cells, np.broadcast_to(np.diag([5.0, 6.0, 7.0]), (6, 3, 3)))
    assert traj.read(velocities=False).velocities is None
    npt.assert_array_equal(traj.read(velocities=False).positions, traj.read().positions)
    npt.assert_array_equal(traj.read(velocities=True).velocities, np.tile([0.1, 0.2, 0.3], (6, 3, 1)))

    traj2 = anionmotion.open(_dump(tmp_path / "v.dump", [(5.0, 6.0, 7.0)] * 3 + [(5.0, 6.0, 7.5)] * 3),
                             timestep=0.001, types="1=Li")
    assert traj2._reader.constant_cell() is None
    assert not traj2.cell_constant
    npt.assert_array_equal(traj2.cells[:, 2, 2], [7.0, 7.0, 7.0, 7.5, 7.5, 7.5])


def test_from_arrays_constant_cell():
    pos = np.zeros((4, 1, 3))
    traj = anionmotion.from_arrays(pos, np.eye(3) * 3.0, species=["Li"], frame_interval=1.0)
    assert traj.cell_constant and traj.volume == 27.0
    cells = np.stack([np.eye(3) * 3.0] * 3 + [np.eye(3) * 3.1])
    traj = anionmotion.from_arrays(pos, cells, species=["Li"], frame_interval=1.0)
    assert not traj.cell_constant
    npt.assert_array_equal(traj.cells, cells)


# ----------------------------------------------------------------------------- text readers
def test_outcar_compiled_parse_selection_and_errors(tmp_path):
    """OUTCAR blocks are parsed by the compiled parser: selections equal all-then-select, numbers equal float()."""
    import os

    from conftest import data_path

    path = data_path("vasprun", "OUTCAR.h2o.md")
    traj = anionmotion.open(path, unwrap=False)
    allp = traj.read().positions
    raw = open(path, "rb").read()
    # reference: Python float() of the first three tokens of every POSITION row
    ref = []
    for block in raw.split(b"TOTAL-FORCE (eV/Angst)")[1:]:
        rows = block.split(b"\n")[2:2 + traj.n_atoms]
        ref.append([[float(x) for x in r.split()[:3]] for r in rows])
    npt.assert_array_equal(allp, np.asarray(ref)[:traj.n_frames])
    for sel in ([4, 1], [0], [5, 0, 3]):
        npt.assert_array_equal(traj.read(atoms=sel, frames=slice(1, None)).positions, allp[1:][:, np.sort(sel)])
    bad = tmp_path / "OUTCAR.bad"
    row = raw.find(b"4.34854")
    bad.write_bytes(raw[:row] + b"4.3x854" + raw[row + 7:])
    t = anionmotion.open(bad, unwrap=False)
    with pytest.raises(TrajectoryError, match="frame 0.*non-numeric value in the POSITION block"):
        t.read()
    assert os.path.getsize(bad) == len(raw)


def test_xyz_velocity_columns_not_parsed_when_unwanted(tmp_path):
    lines = []
    for k in range(4):
        lines += ["3", 'Lattice="6 0 0 0 6 0 0 0 6" Properties=species:S:1:pos:R:3:vel:R:3 Time=%g time_unit=fs' % k]
        for i in range(3):
            lines.append(f"Li {1.0 + i + 0.1 * k} 2.0 3.0 0.{i + 1} 0.2 oops" if k == 1 and i == 2 else
                         f"Li {1.0 + i + 0.1 * k} 2.0 3.0 0.{i + 1} 0.2 0.3")
    p = tmp_path / "v.xyz"
    p.write_text("\n".join(lines) + "\n")
    traj = anionmotion.open(p)
    # frame 1 has a bad velocity: reading positions only never touches it
    chunk = traj.read(velocities=False, atoms=[0, 2])
    assert chunk.velocities is None
    npt.assert_allclose(chunk.positions[:, :, 0], [[1.0, 3.0], [1.1, 3.1], [1.2, 3.2], [1.3, 3.3]])
    npt.assert_allclose(traj.read(frames=slice(2, 4)).velocities[0, :, 0], [100.0, 200.0, 300.0])
    with pytest.raises(TrajectoryError, match="not a number"):
        traj.read()
