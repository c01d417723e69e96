"""AMBER-convention NetCDF reader (LAMMPS CDF-5, AMBER, cpptraj, MDTraj, anionmotion's own writer)."""

import mdtraj as md
import netCDF4
import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anionmotion
from anionmotion.errors import IntegrityWarning, FormatError, OptionError, TrajectoryError
from anionmotion.io.netcdf import cell_from_lengths_angles

from conftest import data_path


def _raw(path, name):
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        return np.asarray(ds.variables[name][:], dtype=np.float64)


# ----------------------------------------------------------------------------- LAMMPS dump netcdf (CDF-5)
def test_lammps_cdf5_headers():
    p = data_path("netcdf", "PBC.KA.N256.Min.nc")
    assert open(p, "rb").read(4) == b"CDF\x05"
    t = anionmotion.open(p)
    assert t.format == "netcdf"
    assert (t.n_atoms, t.n_frames) == (256, 2)
    assert t.metadata["program"] == "LAMMPS" and t.metadata["programVersion"] == "23 Oct 2017"
    assert t.metadata["Conventions"] == "AMBER" and t.metadata["data_model"] == "NETCDF3_64BIT_DATA"
    assert t.species_counts() == {"1": 204, "2": 52}  # Kob–Andersen 80:20, type numbers without types=
    assert "species_note" in t.metadata
    assert "LJ" in t.units["length"] and "LJ" in t.units["time"]
    npt.assert_allclose(t.times, _raw(p, "time") * 0.003)  # LAMMPS stores steps with scale_factor = dt
    lengths = _raw(p, "cell_lengths")
    npt.assert_allclose(np.diagonal(t.cells, axis1=1, axis2=2), lengths)
    c = t.read(frames=slice(1, 2))
    npt.assert_allclose(c.velocities[0], _raw(p, "velocities")[1])


def test_lammps_metal_mass_types_and_origin():
    p = data_path("netcdf", "aSi.structure_minimum_65atoms_pot_energy.nc")
    t = anionmotion.open(p, types={1: "Si"})
    assert (t.n_atoms, t.n_frames) == (64, 1)  # 64 atoms despite the file name
    assert set(t.species) == {"Si"}
    npt.assert_allclose(t.masses, _raw(p, "mass")[0])
    npt.assert_allclose(t.masses[0], 28.0855, rtol=1e-6)
    npt.assert_allclose(t.times, [0.054])  # picosecond
    assert t.units["length"].startswith("Å")
    assert "from the length and time units" in t.units["velocity"]
    c = t.read()
    npt.assert_allclose(c.origins[0], _raw(p, "cell_origin")[0])
    with pytest.raises(TrajectoryError, match=r"types= has no element for atom type\(s\) \[1\]"):
        anionmotion.open(p, types={2: "Si"})


def test_lammps_charges():
    p = data_path("netcdf", "ultrastable_config_N32.nc")
    t = anionmotion.open(p)
    assert (t.n_atoms, t.n_frames) == (32, 1)
    npt.assert_allclose(t.charges, _raw(p, "q")[0])


# ----------------------------------------------------------------------------- AMBER
def test_amber_velocity_scale_factor_and_topology():
    p = data_path("netcdf", "ace_tip3p.nc")
    t = anionmotion.open(p, topology=data_path("netcdf", "ace_tip3p.parm7"))
    assert (t.n_atoms, t.n_frames) == (1398, 10)
    assert t.species_counts() == {"H": 931, "C": 2, "O": 465}
    assert t.metadata["program"] == "pmemd"
    c = t.read()
    raw_v = _raw(p, "velocities")
    npt.assert_allclose(c.velocities, raw_v * 20.455, rtol=1e-12)  # AMBER internal unit → Å/ps
    assert "scale_factor 20.455" in t.units["velocity"]
    npt.assert_allclose(t.times, np.arange(1, 11.0))
    npt.assert_allclose(np.diagonal(t.cells, axis1=1, axis2=2), _raw(p, "cell_lengths"))
    # the kinetic temperature of TIP3P water at ~300 K (rigid water: ~2/3 of the 3N DOF move freely)
    from anionmotion.units import AMU_A2_PS2_EV, KB_EV
    ke = 0.5 * np.einsum("i,tik->t", t.masses, c.velocities ** 2) * AMU_A2_PS2_EV
    temp = 2 * ke / (KB_EV * (2 * 1398))
    assert np.all((temp > 200) & (temp < 400))


def test_cpptraj_without_time_and_posfor_without_cell():
    p = data_path("netcdf", "cpptraj_traj.nc")
    t = anionmotion.open(p, topology=data_path("netcdf", "cpptraj_traj.prmtop"))
    assert (t.n_atoms, t.n_frames) == (84, 3)
    with pytest.raises(OptionError, match="carries no time information"):
        t.times
    t = anionmotion.open(p, topology=data_path("netcdf", "cpptraj_traj.prmtop"), frame_interval=2.0)
    npt.assert_allclose(t.times, [0, 2, 4])
    q = data_path("netcdf", "posfor.ncdf")
    with pytest.raises(TrajectoryError, match=r"the file has no cell .* give it with cell= / --cell"):
        anionmotion.open(q)
    with pytest.warns(IntegrityWarning, match="the file names no species .* labelled X; give a topology"):
        t = anionmotion.open(q, cell=[50, 50, 50])
    assert set(t.species) == {"X"} and "labelled X" in t._reader.metadata["species_note"]


def test_mdtraj_written_nc_matches_mdtraj():
    p, top = data_path("netcdf", "frame0.nc"), data_path("netcdf", "native.pdb")
    t = anionmotion.open(p, topology=top, unwrap=False)
    assert (t.n_atoms, t.n_frames) == (22, 501)
    assert t.metadata["program"] == "MDTraj"
    ref = md.load(p, top=top)
    npt.assert_allclose(t.read().positions, ref.xyz * 10, atol=1e-5)
    npt.assert_allclose(t.times, ref.time, rtol=1e-7)
    with pytest.raises(TrajectoryError, match="the topology .* has 22 atoms but the trajectory has 1398"):
        anionmotion.open(data_path("netcdf", "ace_tip3p.nc"), topology=top)


# ----------------------------------------------------------------------------- cells
@settings(deadline=None, max_examples=50)
@given(lengths=st.tuples(*[st.floats(2, 50)] * 3), angles=st.tuples(*[st.floats(60, 120)] * 3))
def test_cell_from_lengths_angles_round_trip(lengths, angles):
    a, b, c = np.radians(angles)
    if 1 - np.cos(a) ** 2 - np.cos(b) ** 2 - np.cos(c) ** 2 + 2 * np.cos(a) * np.cos(b) * np.cos(c) < 1e-3:
        return  # not a valid cell
    cell = cell_from_lengths_angles(np.array([lengths]), np.array([angles]))[0]
    npt.assert_allclose(np.linalg.norm(cell, axis=1), lengths, rtol=1e-10)

    def ang(u, v):
        return np.degrees(np.arccos(u @ v / np.linalg.norm(u) / np.linalg.norm(v)))

    npt.assert_allclose([ang(cell[1], cell[2]), ang(cell[0], cell[2]), ang(cell[0], cell[1])], angles, atol=1e-8)
    assert cell[0, 1] == cell[0, 2] == cell[1, 2] == 0 and np.linalg.det(cell) > 0


def test_right_angles_give_exact_diagonal():
    cell = cell_from_lengths_angles([[3.0, 4.0, 5.0]], [[90.0, 90.0, 90.0]])[0]
    npt.assert_array_equal(cell, np.diag([3.0, 4.0, 5.0]))


# ----------------------------------------------------------------------------- synthetic files
def _write_lammps_like(path, *, shuffle=False, real=False, n_frames=3):
    rng = np.random.default_rng(0)
    n = 5
    pos = rng.uniform(0, 9, (n_frames, n, 3))
    vel = rng.normal(size=(n_frames, n, 3))
    ids = np.tile(np.arange(1, n + 1), (n_frames, 1))
    if shuffle:
        for k in range(n_frames):
            ids[k] = rng.permutation(ids[k])
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_DATA") as ds:
        ds.Conventions = "AMBER"
        ds.program = "LAMMPS"
        ds.createDimension("frame", None)
        ds.createDimension("atom", n)
        ds.createDimension("spatial", 3)
        ds.createDimension("cell_spatial", 3)
        ds.createDimension("cell_angular", 3)
        tv = ds.createVariable("time", "f8", ("frame",))
        tv.units = "femtosecond" if real else "picosecond"
        cl = ds.createVariable("cell_lengths", "f8", ("frame", "cell_spatial"))
        cl.units = "Angstrom"
        ca = ds.createVariable("cell_angles", "f8", ("frame", "cell_angular"))
        ca.units = "degree"
        ds.createVariable("id", "i4", ("frame", "atom"))
        ds.createVariable("type", "i4", ("frame", "atom"))
        ds.createVariable("coordinates", "f8", ("frame", "atom", "spatial"))
        ds.createVariable("velocities", "f8", ("frame", "atom", "spatial"))
        for k in range(n_frames):
            order = ids[k] - 1  # row j holds atom ids[k, j]
            tv[k] = 10.0 * k
            cl[k] = [9.0, 9.0, 9.0]
            ca[k] = [90.0, 90.0, 90.0]
            ds.variables["id"][k] = ids[k]
            ds.variables["type"][k] = np.where(order < 2, 1, 2)
            ds.variables["coordinates"][k] = pos[k][order]
            ds.variables["velocities"][k] = vel[k][order]
    return pos, vel


def test_unsorted_ids_are_sorted(tmp_path):
    pos, vel = _write_lammps_like(tmp_path / "s.nc", shuffle=True)
    t = anionmotion.open(tmp_path / "s.nc", types="1=Li,2=Cl", unwrap=False)
    assert list(t.species) == ["Li", "Li", "Cl", "Cl", "Cl"]
    c = t.read()
    npt.assert_allclose(c.positions, pos, atol=1e-12)
    npt.assert_allclose(c.velocities, vel, atol=1e-12)
    sub = t.read(atoms=[4, 0], frames=slice(2, 3))
    npt.assert_allclose(sub.positions[0], pos[2][[0, 4]], atol=1e-12)


def test_lammps_real_units_velocities(tmp_path):
    pos, vel = _write_lammps_like(tmp_path / "r.nc", real=True)
    t = anionmotion.open(tmp_path / "r.nc", types="1=Li,2=Cl", unwrap=False)
    npt.assert_allclose(t.times, [0, 0.01, 0.02])  # fs → ps
    npt.assert_allclose(t.read().velocities, vel * 1000.0)  # Å/fs → Å/ps


def test_own_writer_round_trip_and_metadata(tmp_path):
    from anionmotion.io.netcdf_writer import NetCDFWriter

    rng = np.random.default_rng(5)
    cell = np.array([[10.0, 0, 0], [2.0, 9.0, 0], [1.0, -1.5, 11.0]])
    pos = rng.uniform(0, 8, (4, 3, 3))
    vel = rng.normal(size=(4, 3, 3))
    meta = {"constraint_mode": "RTC", "temperature_K": 600.0, "seed": 42}
    with NetCDFWriter(tmp_path / "own.nc", ["Li", "S", "O"], masses=[6.94, 32.06, 16.0], charges=[1, 1.4, -0.6],
                      metadata=meta) as w:
        for k in range(4):
            w.write(pos[k], cell, time=0.5 * k, velocities=vel[k])
    t = anionmotion.open(tmp_path / "own.nc", unwrap=False)
    assert list(t.species) == ["Li", "S", "O"]
    npt.assert_allclose(t.masses, [6.94, 32.06, 16.0])
    npt.assert_allclose(t.charges, [1, 1.4, -0.6])
    for k, v in meta.items():
        assert t.metadata[k] == v
    npt.assert_allclose(t.cells[0], cell, atol=1e-5)
    c = t.read()
    npt.assert_allclose(c.positions, pos, atol=1e-5)  # float32 storage
    npt.assert_allclose(c.velocities, vel, atol=1e-6)
    npt.assert_allclose(t.times, [0, 0.5, 1.0, 1.5])


def test_bad_netcdf_files(tmp_path):
    (tmp_path / "e.nc").write_bytes(b"")
    with pytest.raises(FormatError, match="empty file; expected a NetCDF trajectory"):
        anionmotion.open(tmp_path / "e.nc")
    (tmp_path / "t.nc").write_text("hello, not netcdf\n")
    with pytest.raises(FormatError, match="not a NetCDF file"):
        anionmotion.open(tmp_path / "t.nc")
    with netCDF4.Dataset(tmp_path / "n.nc", "w") as ds:
        ds.createDimension("x", 2)
        ds.createVariable("foo", "f8", ("x",))
    with pytest.raises(TrajectoryError, match="no 'coordinates' variable"):
        anionmotion.open(tmp_path / "n.nc")
    _write_lammps_like(tmp_path / "nan.nc")
    with netCDF4.Dataset(tmp_path / "nan.nc", "a") as ds:
        ds.variables["coordinates"][1, 3, 2] = np.nan
        ds.variables["coordinates"][1, 3, 2] = np.nan
    with pytest.raises(TrajectoryError, match=r"frame 1, atom 3: coordinates contain nan \(component z\)"):
        anionmotion.open(tmp_path / "nan.nc", types="1=Li,2=Cl").read()
    _write_lammps_like(tmp_path / "zero.nc")
    with netCDF4.Dataset(tmp_path / "zero.nc", "a") as ds:
        ds.variables["cell_lengths"][2] = [9.0, 0.0, 9.0]
    with pytest.raises(TrajectoryError, match=r"frame 2: cell volume is 0"):
        anionmotion.open(tmp_path / "zero.nc", types="1=Li,2=Cl").read()
    with netCDF4.Dataset(tmp_path / "u.nc", "w") as ds:
        ds.createDimension("frame", None)
        ds.createDimension("atom", 1)
        ds.createDimension("spatial", 3)
        v = ds.createVariable("coordinates", "f4", ("frame", "atom", "spatial"))
        v.units = "furlong"
        v[0] = [0, 0, 0]
    with pytest.raises(TrajectoryError, match="units 'furlong', which anionmotion cannot convert to Å"):
        anionmotion.open(tmp_path / "u.nc", cell=[5, 5, 5])


def test_compressed_topology_and_constant_time(tmp_path):
    import bz2

    top = tmp_path / "native.pdb.bz2"
    top.write_bytes(bz2.compress(open(data_path("netcdf", "native.pdb"), "rb").read()))
    t = anionmotion.open(data_path("netcdf", "frame0.nc"), topology=top)
    assert t.species_counts() == {"H": 12, "C": 6, "O": 2, "N": 2}
    _write_lammps_like(tmp_path / "z.nc")
    with netCDF4.Dataset(tmp_path / "z.nc", "a") as ds:
        ds.variables["time"][:] = 0.0  # e.g. sander's tz2.truncoct.nc: time 0 in every frame
    t = anionmotion.open(tmp_path / "z.nc", types="1=Li,2=Cl")
    assert "time_note" in t.metadata
    with pytest.raises(OptionError, match="frame_interval"):
        t.times


def test_atom_types_atomic_numbers_or_types_map(tmp_path):
    with netCDF4.Dataset(tmp_path / "a.nc", "w", format="NETCDF3_64BIT_OFFSET") as ds:
        ds.createDimension("frame", None)
        ds.createDimension("atom", 3)
        ds.createDimension("spatial", 3)
        ds.createDimension("cell_spatial", 3)
        ds.createDimension("cell_angular", 3)
        v = ds.createVariable("coordinates", "f4", ("frame", "atom", "spatial"))
        v.units = "angstrom"
        v[0] = np.zeros((3, 3))
        ds.createVariable("cell_lengths", "f8", ("frame", "cell_spatial"))[0] = [5, 5, 5]
        ds.createVariable("cell_angles", "f8", ("frame", "cell_angular"))[0] = [90, 90, 90]
        ds.createVariable("atom_types", "i4", ("atom",))[:] = [3, 15, 16]
    t = anionmotion.open(tmp_path / "a.nc", frame_interval=1)
    assert list(t.species) == ["Li", "P", "S"]  # atomic numbers (ASE convention)
    t = anionmotion.open(tmp_path / "a.nc", frame_interval=1, types="3=Na,15=Cl,16=Cl")
    assert list(t.species) == ["Na", "Cl", "Cl"]  # an explicit map wins


def test_declared_unwrapped_coordinates_are_used_as_stored(tmp_path):
    """A file whose global attribute says coordinate_style=unwrapped is not unwrapped again (SPEC §1)."""
    import numpy as np
    import anionmotion
    # a jump of 0.6 box between frames: unwrapping would fold it back, the declared style keeps it
    pos = np.zeros((3, 1, 3))
    pos[1, 0, 0] = 6.0
    pos[2, 0, 0] = 6.0
    box = np.diag([10.0, 10.0, 10.0])
    path = tmp_path / "u.nc"
    _write_minimal_amber(path, pos, box, unwrapped=True)
    traj = anionmotion.open(path, frame_interval=1.0)
    assert traj.coord_style == "unwrapped"
    np.testing.assert_allclose(traj.read().positions[:, 0, 0], [0.0, 6.0, 6.0], atol=1e-5)
    path2 = tmp_path / "w.nc"
    _write_minimal_amber(path2, pos, box, unwrapped=False)
    traj2 = anionmotion.open(path2, frame_interval=1.0)
    assert traj2.coord_style == "wrapped"
    with pytest.warns(anionmotion.UnwrapWarning):
        np.testing.assert_allclose(traj2.read().positions[:, 0, 0], [0.0, -4.0, -4.0], atol=1e-5)


def _write_minimal_amber(path, pos, box, unwrapped):
    import netCDF4
    import numpy as np
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as ds:
        ds.Conventions = "AMBER"
        ds.ConventionVersion = "1.0"
        if unwrapped:
            ds.coordinate_style = "unwrapped"
        ds.createDimension("frame", None)
        ds.createDimension("spatial", 3)
        ds.createDimension("atom", pos.shape[1])
        ds.createDimension("cell_spatial", 3)
        ds.createDimension("cell_angular", 3)
        ds.createDimension("label", 5)
        c = ds.createVariable("coordinates", "f4", ("frame", "atom", "spatial"))
        c.units = "angstrom"
        c[:] = pos
        cl = ds.createVariable("cell_lengths", "f8", ("frame", "cell_spatial"))
        cl.units = "angstrom"
        cl[:] = np.tile(np.diag(box), (len(pos), 1))
        ca = ds.createVariable("cell_angles", "f8", ("frame", "cell_angular"))
        ca.units = "degree"
        ca[:] = 90.0
        t = ds.createVariable("atom_types", "i4", ("atom",))
        t[:] = 3


def test_closing_twice_never_closes_another_open_file():
    """netCDF-C reuses dataset ids: a second close of a closed reader must not close a newer file."""
    import numpy as np
    import anionmotion
    path = data_path("netcdf", "frame0.nc")
    a = anionmotion.open(path, frame_interval=1.0)
    a.close()
    b = anionmotion.open(path, frame_interval=1.0)
    a.close()
    del a
    import gc
    gc.collect()
    assert np.all(np.isfinite(b.read(frames=slice(0, 1)).positions))
    b.close()


@settings(deadline=None, max_examples=100)
@given(mask=st.lists(st.booleans(), min_size=1, max_size=200), gap=st.integers(0, 40))
def test_segments_cover_exactly_the_selection(mask, gap):
    from anionmotion.io.netcdf import _segments

    atoms = np.nonzero(mask)[0].astype(np.int64)
    segs = _segments(atoms, gap)
    got = []
    for k, (a, b, k0, k1) in enumerate(segs):
        assert atoms[k0] == a and atoms[k1 - 1] == b - 1          # a slice starts and ends on selected atoms
        got.extend(atoms[k0:k1])
        if k:
            assert a - segs[k - 1][1] > gap                        # separate slices are more than gap apart
        assert np.all(np.diff(atoms[k0:k1]) <= gap + 1)            # inside a slice no hole is wider than gap
    assert got == list(atoms)


def test_selected_read_of_unsorted_ids_and_constant_cell(tmp_path):
    pos, vel = _write_lammps_like(tmp_path / "s.nc", shuffle=True, n_frames=6)
    t = anionmotion.open(tmp_path / "s.nc", types="1=Li,2=Cl", unwrap=False)
    assert t.cell_constant and t.cells.strides[0] == 0
    c = t.read(atoms="Cl", velocities=False)
    assert c.velocities is None
    npt.assert_array_equal(c.positions, pos[:, 2:])
    npt.assert_array_equal(t.read(atoms=[4, 1]).velocities, vel[:, [1, 4]])
