"""LAMMPS dump units electron (bohr, fs, bohr/fs) and lj (passed through, with a warning)."""

import os

import numpy as np
import numpy.testing as npt
import pytest

import anionmotion
from anionmotion.errors import AnionmotionWarning, OptionError
from anionmotion.units import BOHR_A

DATA = os.path.join(os.path.dirname(__file__), "data", "lammps_units")
MOLY = os.path.join(DATA, "lammps_moly_custom_2frames.txt")
KINISI = os.path.join(DATA, "example_LAMMPS_drift.traj")


def test_electron_moly_file():
    """MDANSE's Mo run (mo.lmp: units electron, timestep 0.5 fs): box 48 bohr, positions in bohr."""
    t = anionmotion.open(MOLY, format="lammps", lammps_units="electron", types="1=Mo", timestep=0.0005,
                         unwrap=False)
    assert (t.n_atoms, t.n_frames) == (1024, 2)
    npt.assert_allclose(t.cells[0], np.eye(3) * 48.0 * BOHR_A)
    npt.assert_allclose(t.times, [0.0005, 0.001])
    c = t.read(atoms=[0, 2])                          # ids 1 and 3 at (0,0,0) and (6,0,0) bohr in frame 0
    npt.assert_allclose(c.positions[0], [[0, 0, 0], [6 * BOHR_A, 0, 0]], atol=1e-12)
    assert "bohr" in t.units["length"]


def test_electron_velocities_and_scaled(tmp_path):
    text = ("ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n1\nITEM: BOX BOUNDS pp pp pp\n0 10\n0 10\n0 10\n"
            "ITEM: ATOMS id type xs ys zs vx vy vz\n1 1 0.5 0.25 0 0.001 0 -0.002\n")
    p = tmp_path / "e.dump"
    p.write_text(text)
    t = anionmotion.open(p, lammps_units="electron", types="1=Li", frame_interval=1.0, unwrap=False)
    c = t.read()
    npt.assert_allclose(c.positions[0, 0], [5 * BOHR_A, 2.5 * BOHR_A, 0])
    # LAMMPS units electron velocities are bohr/fs (x += v·dt with dt in fs): 1 bohr/fs = 529.177 Å/ps
    npt.assert_allclose(c.velocities[0, 0], [0.001 * BOHR_A * 1000, 0, -0.002 * BOHR_A * 1000])
    # ITEM: TIME in fs for units electron
    p2 = tmp_path / "e2.dump"
    p2.write_text("ITEM: UNITS\nelectron\nITEM: TIME\n0.5\n" + text)
    assert anionmotion.open(p2, lammps_units="electron", types="1=Li").times[0] == pytest.approx(0.0005)


def test_lj_passed_through_with_warning():
    with pytest.warns(AnionmotionWarning, match="units lj are reduced .* NOT Å / ps"):
        t = anionmotion.open(KINISI, lammps_units="lj", types="1=Li,2=Li", frame_interval=1.0, unwrap=False)
    assert "NOT converted" in t.units["length"] and "NOT ps" in t.units["time"]
    assert t.n_frames == 4
    npt.assert_allclose(t.cells[0], np.eye(3) * 10.0)


def test_unknown_units():
    with pytest.raises(OptionError, match="invalid lammps_units 'si'; choose one of metal, real, electron, lj"):
        anionmotion.open(KINISI, lammps_units="si", types="1=Li,2=Li")


def test_electron_dump_xyz_matches_custom():
    """The same run's LAMMPS 'dump xyz' (type labels, bohr, no box): --types, --cell (Å), --lammps-units electron."""
    xyz = os.path.join(DATA, "lammps_moly_xyz_2frames.txt")
    box = 48.0 * BOHR_A
    t = anionmotion.open(xyz, types="1=Mo", cell=[box] * 3, lammps_units="electron", timestep=0.0005, unwrap=False)
    assert t.format == "extxyz" and (t.n_atoms, t.n_frames) == (1024, 2)
    npt.assert_allclose(t.times, [0.0005, 0.001])
    ref = anionmotion.open(MOLY, lammps_units="electron", types="1=Mo", timestep=0.0005, unwrap=False).read()
    got = t.read()
    for k in range(2):      # dump xyz has no ids: compare the sets of positions
        a = got.positions[k][np.lexsort(got.positions[k].T)]
        b = ref.positions[k][np.lexsort(ref.positions[k].T)]
        npt.assert_allclose(a, b, atol=1e-9)
    with pytest.raises(anionmotion.errors.TrajectoryError, match="species column holds numbers"):
        anionmotion.open(xyz, cell=[box] * 3)


def test_lj_without_types_labels_type_numbers():
    with pytest.warns(AnionmotionWarning, match="units lj"):
        t = anionmotion.open(KINISI, lammps_units="lj", frame_interval=1.0)
    assert sorted(set(t.species)) == ["1", "2"]
    assert "type numbers" in t._reader.metadata["species_note"]
    with pytest.raises(OptionError, match="no element or mass column; give the element of each type"):
        anionmotion.open(KINISI, frame_interval=1.0)           # units metal: elements are required
