"""AMBER-convention NetCDF writer: layout, round trip, append/truncate, readers (mdtraj, anionmotion)."""

import os

import netCDF4
import numpy as np
import numpy.testing as npt
import pytest
from ase.io.netcdftrajectory import NetCDFTrajectory
from hypothesis import given, settings
from hypothesis import strategies as st
from mdtraj.formats import NetCDFTrajectoryFile

import anionmotion
from anionmotion.errors import FormatError, OptionError
from anionmotion.io.netcdf_writer import (NetCDFWriter, atomic_number, cell_to_lengths_angles,
                                          lengths_angles_to_cell)

SPECIES = ["S", "O", "O", "O", "O", "Li", "Li"]


def frames(n, rng, cell):
    pos = rng.uniform(0, 5, size=(1, len(SPECIES), 3)) + np.cumsum(rng.normal(scale=0.1, size=(n, len(SPECIES), 3)),
                                                                     axis=0)
    vel = rng.normal(size=(n, len(SPECIES), 3))
    return pos, vel


def write(path, n=4, seed=0, cell=np.diag([10.0, 11.0, 12.0]), **kw):
    rng = np.random.default_rng(seed)
    pos, vel = frames(n, rng, cell)
    with NetCDFWriter(path, SPECIES, masses=np.arange(1.0, 8.0), charges=np.linspace(-1, 1, 7),
                      metadata={"constraint_mode": "RC", "temperature_K": 900.0, "seed": 3, "flag": True,
                                "skip": None}, **kw) as w:
        for i in range(n):
            w.write(pos[i], cell, time=0.005 * i, velocities=vel[i])
    return pos, vel


def test_amber_layout(tmp_path):
    p = str(tmp_path / "t.nc")
    pos, vel = write(p)
    with netCDF4.Dataset(p) as ds:
        assert ds.data_model == "NETCDF3_64BIT_OFFSET"
        assert ds.Conventions == "AMBER" and ds.ConventionVersion == "1.0"
        assert ds.program == "anionmotion" and ds.programVersion
        assert ds.dimensions["frame"].isunlimited()
        assert {k: len(v) for k, v in ds.dimensions.items()} == {"frame": 4, "spatial": 3, "atom": 7,
                                                                  "cell_spatial": 3, "cell_angular": 3, "label": 5}
        assert b"".join(ds["spatial"][:].tolist()) == b"xyz"
        assert b"".join(ds["cell_spatial"][:].tolist()) == b"abc"
        assert [b"".join(r).strip() for r in ds["cell_angular"][:].tolist()] == [b"alpha", b"beta", b"gamma"]
        assert ds["coordinates"].dimensions == ("frame", "atom", "spatial")
        assert ds["coordinates"].dtype == np.float32 and ds["coordinates"].units == "angstrom"
        assert ds["velocities"].dtype == np.float32 and ds["velocities"].units == "angstrom/picosecond"
        assert float(ds["velocities"].scale_factor) == 1.0
        assert ds["time"].units == "picosecond" and ds["cell_lengths"].units == "angstrom"
        assert ds["cell_angles"].units == "degree"
        npt.assert_allclose(ds["coordinates"][:], pos, rtol=1e-6)
        npt.assert_allclose(ds["velocities"][:], vel, rtol=1e-6)
        npt.assert_allclose(ds["time"][:], [0, 0.005, 0.01, 0.015], rtol=1e-6)
        npt.assert_allclose(ds["cell_lengths"][:], [[10, 11, 12]] * 4)
        npt.assert_allclose(ds["cell_angles"][:], 90.0)
        assert ds["atom_types"][:].tolist() == [16, 8, 8, 8, 8, 3, 3]
        assert [b"".join(r).decode().strip() for r in ds["element"][:].tolist()] == SPECIES
        npt.assert_allclose(ds["masses"][:], np.arange(1.0, 8.0))
        assert ds.constraint_mode == "RC" and ds.temperature_K == 900.0 and ds.seed == 3 and ds.flag == 1
        assert "skip" not in ds.ncattrs()


def test_mdtraj_reads_it(tmp_path):
    p = str(tmp_path / "t.nc")
    pos, _ = write(p)
    with NetCDFTrajectoryFile(p) as f:
        xyz, time, lengths, angles = f.read()
    npt.assert_allclose(xyz, pos, rtol=1e-6)
    npt.assert_allclose(time, [0, 0.005, 0.01, 0.015], rtol=1e-6)
    npt.assert_allclose(lengths[0], [10, 11, 12])


def test_anionmotion_reader_reads_it_back(tmp_path):
    p = str(tmp_path / "t.nc")
    pos, vel = write(p)
    traj = anionmotion.open(p)
    assert traj.n_frames == 4 and traj.n_atoms == 7
    assert list(traj.species) == SPECIES
    assert traj.metadata["constraint_mode"] == "RC"
    assert traj.has_velocities
    ch = traj.read()
    npt.assert_allclose(ch.positions[0], pos[0], rtol=1e-6)
    npt.assert_allclose(ch.velocities, vel, rtol=1e-6)
    npt.assert_allclose(traj.times, [0, 0.005, 0.01, 0.015], rtol=1e-6)


def test_refuses_overwrite_and_bad_input(tmp_path):
    p = str(tmp_path / "t.nc")
    write(p)
    with pytest.raises(OptionError, match="output file exists; refusing to overwrite"):
        NetCDFWriter(p, SPECIES)
    NetCDFWriter(p, SPECIES, overwrite=True).close()
    with NetCDFWriter(str(tmp_path / "u.nc"), SPECIES) as w:
        with pytest.raises(OptionError, match=r"positions must have shape \(7, 3\)"):
            w.write(np.zeros((3, 3)), np.eye(3), time=0.0, velocities=np.zeros((7, 3)))
        with pytest.raises(OptionError, match="give velocities= for every frame"):
            w.write(np.zeros((7, 3)), np.eye(3), time=0.0)
    with pytest.raises(OptionError, match=r"masses must have shape \(7,\)"):
        NetCDFWriter(str(tmp_path / "v.nc"), SPECIES, masses=[1.0])
    with pytest.raises(OptionError, match="invalid mode 'x'; choose one of w, a"):
        NetCDFWriter(str(tmp_path / "w.nc"), SPECIES, mode="x")
    with pytest.raises(FileNotFoundError, match="no such file to append to"):
        NetCDFWriter(str(tmp_path / "none.nc"), SPECIES, mode="a")


def test_append_and_truncate(tmp_path):
    p = str(tmp_path / "t.nc")
    pos, vel = write(p, n=5)
    with NetCDFWriter(p, SPECIES, mode="a", metadata={"run_complete": 1}) as w:
        assert w.n_frames == 5
        w.truncate(3)
        w.write(pos[3] + 100.0, np.diag([10.0, 11.0, 12.0]), time=0.015, velocities=vel[3])
        with pytest.raises(OptionError, match="cannot continue at frame 9: the file has 4 frames"):
            w.truncate(9)
    with netCDF4.Dataset(p) as ds:
        assert ds.dimensions["frame"].size == 5  # frame 4 stays until overwritten
        npt.assert_allclose(ds["coordinates"][3], pos[3] + 100.0, rtol=1e-6)
        npt.assert_allclose(ds["coordinates"][2], pos[2], rtol=1e-6)
        assert ds.run_complete == 1
    with pytest.raises(FormatError, match="has 7 atoms, expected 2"):
        NetCDFWriter(p, ["Li", "Li"], mode="a")


def test_unwrap_on_write_continues_across_append(tmp_path):
    p = str(tmp_path / "u.nc")
    cell = np.diag([5.0, 5.0, 5.0])
    path = np.cumsum(np.full((12, 7, 3), 0.4), axis=0)  # every atom drifts 0.4 Å per frame along x, y, z
    wrapped = np.mod(path, 5.0)
    with NetCDFWriter(p, SPECIES, velocities=False) as w:
        for i in range(6):
            w.write(wrapped[i], cell, time=i, unwrap=True)
    with NetCDFWriter(p, SPECIES, mode="a") as w:
        for i in range(6, 12):
            w.write(wrapped[i], cell, time=i, unwrap=True)
    with netCDF4.Dataset(p) as ds:
        got = np.asarray(ds["coordinates"][:], dtype=np.float64)
    npt.assert_allclose(got - got[0], path - path[0], atol=1e-4)


@settings(deadline=None, max_examples=60)
@given(lengths=st.lists(st.floats(3.0, 40.0), min_size=3, max_size=3),
       angles=st.lists(st.floats(60.0, 120.0), min_size=3, max_size=3))
def test_cell_lengths_angles_round_trip(lengths, angles):
    al, be, ga = np.radians(angles)
    # only geometrically valid cells
    v = 1 - np.cos(al) ** 2 - np.cos(be) ** 2 - np.cos(ga) ** 2 + 2 * np.cos(al) * np.cos(be) * np.cos(ga)
    if v <= 1e-3:
        return
    cell = lengths_angles_to_cell([lengths], [angles])
    L, A = cell_to_lengths_angles(cell)
    npt.assert_allclose(L[0], lengths, rtol=1e-9)
    npt.assert_allclose(A[0], angles, atol=1e-7)


def test_atomic_numbers():
    assert [atomic_number(s) for s in ("H", "Li", "O", "S", "Na", "Lr", "Xx", "li")] == [1, 3, 8, 16, 11, 103, 0, 3]


def test_ase_reads_it(tmp_path):
    p = str(tmp_path / "t.nc")
    pos, _ = write(p)
    t = NetCDFTrajectory(p, "r")
    a = t[2]
    assert len(t) == 4 and a.get_chemical_symbols() == SPECIES
    npt.assert_allclose(a.positions, pos[2], rtol=1e-6)
    npt.assert_allclose(a.cell.lengths(), [10, 11, 12])
    t.close()
