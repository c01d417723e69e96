"""ASE ULM .traj reader (anionmotion.io.ase_traj) and .traj content detection."""

import os
import sys

import ase.io as ase_io
import numpy as np
import numpy.testing as npt
import pytest

import anionmotion
from anionmotion.errors import FormatError, TrajectoryError
from anionmotion.io import detect_format

DATA = os.path.join(os.path.dirname(__file__), "data", "ase")
CU = os.path.join(DATA, "Cu_5steps_ASEformat.traj")
MOS2 = os.path.join(DATA, "MoS2.traj")
HEALO = os.path.join(DATA, "HeAlO.traj")
KINISI = os.path.join(os.path.dirname(__file__), "data", "lammps_units", "example_LAMMPS_drift.traj")


def test_detect_traj_by_content():
    assert detect_format(CU) == "ase"
    assert detect_format(KINISI) == "lammps"       # a LAMMPS dump named .traj (kinisi)


def test_cu_positions_cell_velocities():
    t = anionmotion.open(CU, frame_interval=0.001, unwrap=False)
    ref = ase_io.read(CU, index=":")
    assert (t.n_atoms, t.n_frames) == (256, 5) and set(t.species) == {"Cu"}
    npt.assert_allclose(t.cells, np.broadcast_to(np.eye(3) * 14.44, (5, 3, 3)))
    c = t.read()
    for k, at in enumerate(ref):
        npt.assert_allclose(c.positions[k], at.positions, atol=1e-12)
        # ASE velocity unit Å/(Å·sqrt(amu/eV)) → Å/ps: × 1000 fs/ps × ase.units.fs ≈ 98.2269
        npt.assert_allclose(c.velocities[k], at.get_velocities() * 98.22694788, rtol=1e-8)
    npt.assert_allclose(t.masses, ref[0].get_masses())
    assert "pbc_note" in t._reader.metadata


def test_mos2_triclinic_and_selection():
    t = anionmotion.open(MOS2, frame_interval=0.01, unwrap=False)
    ref = ase_io.read(MOS2, index=":")
    assert (t.n_atoms, t.n_frames) == (104, 3)
    assert not t.has_velocities
    c = t.read(atoms=[3, 50], frames=slice(1, 3))
    npt.assert_allclose(c.positions, np.array([at.positions[[3, 50]] for at in ref[1:3]]))
    npt.assert_allclose(t.cells[2], ref[2].cell.array)


def test_changing_atoms_and_no_time():
    with pytest.raises(TrajectoryError, match="frame 1: the atoms change: 6 atoms here, 12 in frame 0"):
        anionmotion.open(HEALO, frame_interval=0.001).read()
    with pytest.raises(anionmotion.errors.OptionError, match="--frame-interval"):
        anionmotion.open(CU).times


def test_bad_files_and_missing_ase(tmp_path, monkeypatch):
    p = tmp_path / "broken.traj"
    p.write_bytes(b"- of Ulm" + b"\x00" * 40)
    with pytest.raises(TrajectoryError, match="ASE cannot read the trajectory"):
        anionmotion.open(p, frame_interval=1.0)
    q = tmp_path / "pickle.traj"
    q.write_bytes(b"PickleTrajectory" + b"\x00" * 40)
    with pytest.raises(FormatError, match="not an ASE ULM trajectory"):
        anionmotion.open(q, format="ase")
    monkeypatch.setitem(sys.modules, "ase.io.trajectory", None)
    with pytest.raises(ImportError, match="reading ASE .traj files needs ASE: pip install ase"):
        anionmotion.open(CU, frame_interval=1.0)


def test_time_from_info_and_missing_cell(tmp_path):
    from ase import Atoms
    from ase.io.trajectory import Trajectory
    from ase.units import fs

    p = tmp_path / "t.traj"
    with Trajectory(str(p), "w") as tr:
        for k in range(3):
            at = Atoms("LiCl", positions=[[0, 0, 0], [1.0 + k, 0, 0]], cell=[5, 5, 5], pbc=True)
            at.info["time"] = 10.0 * k * fs                         # ASE time units, as ase.md writes it
            tr.write(at)
    t = anionmotion.open(p, unwrap=False)
    npt.assert_allclose(t.times, [0.0, 0.01, 0.02])
    npt.assert_allclose(t.read().positions[:, 1, 0], [1, 2, 3])
    q = tmp_path / "nocell.traj"
    with Trajectory(str(q), "w") as tr:
        tr.write(Atoms("Li", positions=[[0, 0, 0]]))
    with pytest.raises(TrajectoryError, match="the frames carry no cell; give it with cell= / --cell"):
        anionmotion.open(q, frame_interval=1.0)
    npt.assert_allclose(anionmotion.open(q, frame_interval=1.0, cell=[4, 4, 4]).cells[0], np.eye(3) * 4)
