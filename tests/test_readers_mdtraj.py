"""Formats read through MDTraj: DCD (kinisi LAMMPS run), XTC/TRR written from frame0.nc."""

import MDAnalysis as mda
import mdtraj as md
import numpy as np
import numpy.testing as npt
import pytest
from MDAnalysis.coordinates.TRR import TRRWriter

import anionmotion
from anionmotion.errors import FormatError, OptionError, TrajectoryError
from anionmotion.io.mdtraj_formats import read_lammps_data_types

from conftest import data_path

DCD = data_path("mdtraj", "example_LAMMPS.dcd")
DATA = data_path("mdtraj", "example_LAMMPS.data")
NC, PDB = data_path("netcdf", "frame0.nc"), data_path("netcdf", "native.pdb")


def test_lammps_data_types():
    types, masses = read_lammps_data_types(DATA)
    assert len(types) == 256 and np.sum(types == 1) == 204
    assert masses == {1: 1.0, 2: 1.0}


def test_kinisi_dcd_with_data_topology():
    t = anionmotion.open(DCD, topology=DATA, frame_interval=0.005 * 250)
    assert t.format == "mdtraj"
    assert (t.n_atoms, t.n_frames) == (256, 200)  # kinisi asserts 200 frames
    assert len(t.select("1")) == 204  # … and 204 atoms of specie '1'
    npt.assert_allclose(t.cells[0], np.eye(3) * 5.8178906, rtol=1e-6)
    ref = md.formats.DCDTrajectoryFile(DCD)
    xyz, _, _ = ref.read()
    raw = t._reader.read(0, t.n_frames).coords
    npt.assert_allclose(raw, xyz, rtol=1e-7)  # Å, as stored
    # random access: frames 150..152 of atom 7 without reading from the start
    part = t._reader.read(150, 153, np.array([7]))
    npt.assert_allclose(part.coords[:, 0], xyz[150:153, 7], rtol=1e-7)
    assert t.units["time"].startswith("none used")
    with pytest.raises(OptionError, match="frame_interval"):
        anionmotion.open(DCD, topology=DATA).times
    t2 = anionmotion.open(DCD, topology=DATA, types="1=Li,2=Cl", frame_interval=1.0)
    assert t2.species_counts() == {"Li": 204, "Cl": 52}


@pytest.mark.parametrize("ext", ["xtc", "trr"])
def test_xtc_trr_from_frame0(tmp_path, ext):
    ref = md.load(NC, top=PDB)[:50]
    p = tmp_path / f"f0.{ext}"
    ref.save(str(p))
    t = anionmotion.open(p, topology=PDB, unwrap=False)
    assert (t.n_atoms, t.n_frames) == (22, 50)
    assert t.species_counts() == {"H": 12, "C": 6, "O": 2, "N": 2}
    npt.assert_allclose(t.times, ref.time, rtol=1e-6)
    tol = 2e-2 if ext == "xtc" else 1e-5  # XTC is lossy (1e-3 nm)
    npt.assert_allclose(t.read().positions, ref.xyz * 10, atol=tol)
    npt.assert_allclose(t.cells, ref.unitcell_vectors * 10, atol=1e-5)
    part = t.read(atoms=[3, 5], frames=slice(40, 45))
    npt.assert_allclose(part.positions, ref.xyz[40:45][:, [3, 5]] * 10, atol=tol)


def test_other_format_via_mdtraj_load(tmp_path):
    ref = md.load(NC, top=PDB)[:5]
    ref.save(str(tmp_path / "m.pdb"))
    with pytest.raises(TrajectoryError, match="MDTraj needs a topology for .pdb files"):
        anionmotion.open(tmp_path / "m.pdb", format="mdtraj")
    t = anionmotion.open(tmp_path / "m.pdb", format="mdtraj", topology=PDB, frame_interval=1.0, unwrap=False)
    assert t.n_frames == 5
    npt.assert_allclose(t.read().positions, ref.xyz * 10, atol=1e-3)


def test_mdtraj_bad_input(tmp_path):
    with pytest.raises(TrajectoryError, match=r"\.dcd files carry no element names; give a topology"):
        anionmotion.open(DCD)
    with pytest.raises(TrajectoryError, match="has 22 atoms but the trajectory has 256"):
        anionmotion.open(DCD, topology=PDB)
    (tmp_path / "e.xtc").write_bytes(b"")
    with pytest.raises(FormatError, match="empty file"):
        anionmotion.open(tmp_path / "e.xtc", topology=PDB)
    (tmp_path / "g.dcd").write_bytes(b"garbage" * 100)
    with pytest.raises(FormatError, match="MDTraj cannot read the file"):
        anionmotion.open(tmp_path / "g.dcd", topology=PDB)
    with pytest.raises(FormatError, match="AMBER NetCDF is read by the netcdf reader"):
        anionmotion.open(NC, format="mdtraj")


def test_trr_velocities(tmp_path):
    # MDAnalysis (a peer in the test extra) writes TRR files with velocities
    u = mda.Universe.empty(3, trajectory=True, velocities=True)
    u.dimensions = [30, 30, 30, 90, 90, 90]
    pos = np.arange(9.0).reshape(3, 3)
    with TRRWriter(str(tmp_path / "v.trr"), 3) as w:
        for k in range(4):
            u.atoms.positions = pos + k
            u.atoms.velocities = np.full((3, 3), k + 1.0)  # Å/ps
            u.trajectory.ts.time = 2.0 * k
            w.write(u)
    (tmp_path / "top.pdb").write_text("".join(
        f"ATOM  {i + 1:5d}  LI  LI  A{i + 1:4d}    {0:8.3f}{0:8.3f}{0:8.3f}  1.00  0.00          LI\n"
        for i in range(3)) + "END\n")
    t = anionmotion.open(tmp_path / "v.trr", topology=tmp_path / "top.pdb", unwrap=False)
    assert t.has_velocities and list(t.species) == ["Li"] * 3
    c = t.read()
    npt.assert_allclose(c.velocities, np.arange(1, 5.0)[:, None, None] * np.ones((4, 3, 3)), rtol=1e-6)
    npt.assert_allclose(c.positions, pos[None] + np.arange(4.0)[:, None, None], atol=1e-5)
    npt.assert_allclose(t.times, [0, 2, 4, 6])
    part = t.read(atoms=[2], frames=slice(2, 4))
    npt.assert_allclose(part.velocities[:, 0], [[3, 3, 3], [4, 4, 4]], rtol=1e-6)
