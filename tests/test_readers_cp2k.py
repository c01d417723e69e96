"""CP2K pos/vel/cell reader against CP2K's own energies, cells and header facts."""

import gzip
import os
import shutil

import numpy as np
import numpy.testing as npt
import pytest

import anionmotion
from anionmotion.errors import TrajectoryError, TruncatedFileWarning
from anionmotion.io.cp2k import cp2k_siblings, read_cell_file
from anionmotion.units import AMU_A2_PS2_EV, AU_VELOCITY_A_PS, HARTREE_EV

from conftest import data_path

LI2SO4 = data_path("cp2k", "li2so4", "li2so4_ortho_T1000-pos-1.xyz.gz")


def _psf_masses(path):
    lines = open(path).read().splitlines()
    i = next(k for k, ln in enumerate(lines) if "!NATOM" in ln)
    n = int(lines[i].split()[0])
    return np.array([float(ln.split()[7]) for ln in lines[i + 1:i + 1 + n]])


def test_engine_kinetic_energy_matches_cp2k_ener():
    t = anionmotion.open(LI2SO4)
    assert (t.n_atoms, t.n_frames) == (504, 60)
    assert t.species_counts() == {"Li": 144, "S": 72, "O": 288}  # kind names LI, S, O
    npt.assert_array_equal(t.steps, np.arange(0, 300, 5))
    npt.assert_allclose(t.times, np.arange(60) * 0.005, atol=1e-12)
    masses = _psf_masses(data_path("cp2k", "li2so4", "li2so4_ortho_T1000.psf"))
    c = t.read()
    ke_ha = 0.5 * np.einsum("i,tik->t", masses, c.velocities ** 2) * AMU_A2_PS2_EV / HARTREE_EV
    ener = np.loadtxt(data_path("cp2k", "li2so4", "li2so4_ortho_T1000-1.ener.gz"))
    ref = ener[np.searchsorted(ener[:, 0], t.steps), 2]
    # limited by the 1e-10 a.u. print precision of the velocities (measured max 3.1e-8 Ha of ~2.4 Ha)
    npt.assert_allclose(ke_ha, ref, rtol=0, atol=5e-8)
    # the temperature column with CP2K's 3N − 3 degrees of freedom (CP2K's k_B/E_h differ from CODATA 2018 by 1.2e-6)
    temp = 2 * ke_ha * HARTREE_EV / (1509 * 8.617333262e-5)
    npt.assert_allclose(temp, ener[np.searchsorted(ener[:, 0], t.steps), 3], rtol=2e-6)


def test_engine_positions_are_kept_and_li_msd_is_sensible():
    t = anionmotion.open(LI2SO4)
    li = t.select("Li")
    c = t.read(atoms="Li")
    # CP2K positions are never wrapped: the unwrapping pass must return them unchanged
    raw = t._reader.read(0, t.n_frames, li).coords
    npt.assert_allclose(c.positions, raw, rtol=0, atol=1e-9)
    assert np.any(raw[0] < 0) or np.any(raw[0] > t.cells[0].diagonal())  # atoms outside the cell in frame 0
    step = np.linalg.norm(np.diff(c.positions, axis=0), axis=-1)
    assert step.max() < 1.0  # Å per 5 fs: no unwrapping artefacts (a box jump would be ≥ 7.5 Å)
    msd = np.mean(np.sum((c.positions - c.positions[0]) ** 2, axis=-1), axis=1)
    assert msd[0] == 0 and np.all(np.diff(msd[::10]) > 0)
    assert 0.05 < msd[-1] < 3.0  # Å² after 0.295 ps at 1000 K (ballistic + cage rattling)
    assert len(li) == 144


def test_velocities_in_atomic_units_are_converted():
    t = anionmotion.open(data_path("cp2k", "npt_f_print_low", "PROJECT-pos-1.xyz"))
    v = t.read().velocities
    npt.assert_allclose(v[0, 0], np.array([0.0004585183, 0.0000547361, -0.0000974881]) * AU_VELOCITY_A_PS,
                        rtol=1e-12)
    npt.assert_allclose(AU_VELOCITY_A_PS, 21876.9126, rtol=1e-8)


def test_npt_cells_per_frame_triclinic():
    p = data_path("cp2k", "npt_f_print_low", "PROJECT-pos-1.xyz")
    t = anionmotion.open(p)
    assert (t.n_atoms, t.n_frames) == (4, 11)
    assert t.species_counts() == {"Al": 2, "N": 2}
    steps, times, cells = read_cell_file(data_path("cp2k", "npt_f_print_low", "PROJECT-1.cell"))
    npt.assert_array_equal(t.cells, cells[np.searchsorted(steps, t.steps)])
    npt.assert_allclose(t.cells[1], [[3.1090468906, -0.0054506474, -0.0080408759],
                                     [-1.5592438444, 2.7130599241, -0.0065773686],
                                     [-0.0128690200, -0.0195851757, 4.9930406608]])
    npt.assert_allclose(t.times[:3], [0, 0.0025, 0.005])
    assert np.ptp(np.linalg.det(t.cells)) > 1.0  # the volume changes


def test_cell_rows_matched_by_step(tmp_path):
    src = data_path("cp2k", "npt_f_print_low")
    for f in ("PROJECT-pos-1.xyz", "PROJECT-vel-1.xyz"):
        shutil.copy(os.path.join(src, f), tmp_path / f)
    lines = open(os.path.join(src, "PROJECT-1.cell")).read().splitlines()
    # shuffle and add an extra step: rows are matched by step, not by position
    body = lines[1:]
    extra = "      99      247.500" + body[-1][20:]
    (tmp_path / "PROJECT-1.cell").write_text("\n".join([lines[0], extra] + body[::-1]) + "\n")
    t = anionmotion.open(tmp_path / "PROJECT-pos-1.xyz")
    ref = anionmotion.open(os.path.join(src, "PROJECT-pos-1.xyz"))
    npt.assert_array_equal(t.cells, ref.cells)
    # a changing cell without a row for a step: error naming frame and step
    (tmp_path / "PROJECT-1.cell").write_text("\n".join([lines[0]] + body[:5] + body[6:]) + "\n")
    with pytest.raises(TrajectoryError, match=r"frame 5: the cell file .* has no row for step 5 \(frame 5\)"):
        anionmotion.open(tmp_path / "PROJECT-pos-1.xyz")


def test_co2gas_trio():
    t = anionmotion.open(data_path("cp2k", "co2gas", "CO2GAS-pos-1.xyz"))
    assert (t.n_atoms, t.n_frames) == (60, 100)
    assert t.species_counts() == {"C": 20, "O": 40}
    npt.assert_array_equal(t.steps[[0, -1]], [501, 600])
    npt.assert_allclose(t.times[[0, -1]], [0.501, 0.600])
    npt.assert_array_equal(t.cells[0], np.eye(3) * 20)
    assert t.has_velocities
    # random access: a late frame range equals the same range of a full read
    full = t.read()
    part = t.read(atoms=[3, 7], frames=slice(90, 95))
    npt.assert_allclose(part.velocities, full.velocities[90:95][:, [3, 7]])


def test_no_cell_error_and_user_cell():
    p = data_path("cp2k", "dpdata", "cp2k-pos-1.xyz")
    with pytest.raises(TrajectoryError, match="no cell: .* give the cell with cell= / --cell .* or the cell file "
                                              "with cell_file= / --cell-file"):
        anionmotion.open(p)
    t = anionmotion.open(p, cell=[10.242489, 10.242489, 23.0])
    assert (t.n_atoms, t.n_frames) == (132, 3)
    assert t.species_counts() == {"H": 56, "O": 28, "Cu": 48}
    npt.assert_array_equal(t.cells[0], np.diag([10.242489, 10.242489, 23.0]))
    assert t.metadata["cell_source"] == "user cell"


def test_explicit_vel_and_cell_file(tmp_path):
    src = data_path("cp2k", "nvt_print_low")
    shutil.copy(os.path.join(src, "PROJECT-pos-1.xyz"), tmp_path / "run.xyz")
    t = anionmotion.open(tmp_path / "run.xyz", format="cp2k", vel=os.path.join(src, "PROJECT-vel-1.xyz"),
                         cell_file=os.path.join(src, "PROJECT-1.cell"))
    assert t.has_velocities and t.n_frames == 21
    npt.assert_allclose(t.cells[0], [[3.111, 0, 0], [-1.5555, 2.6942050312, 0], [0, 0, 4.979]])
    assert cp2k_siblings(tmp_path / "run.xyz") == (None, None)


def _copy_trio(tmp_path, name="nvt_print_low"):
    src = data_path("cp2k", name)
    for f in ("PROJECT-pos-1.xyz", "PROJECT-vel-1.xyz", "PROJECT-1.cell"):
        shutil.copy(os.path.join(src, f), tmp_path / f)
    return tmp_path / "PROJECT-pos-1.xyz", tmp_path / "PROJECT-vel-1.xyz"


def test_pos_vel_frame_count_mismatch(tmp_path):
    pos, vel = _copy_trio(tmp_path)
    lines = vel.read_text().splitlines()
    vel.write_text("\n".join(lines[: 6 * 20]) + "\n")  # 20 of 21 frames
    with pytest.raises(TrajectoryError, match=r"positions .*PROJECT-pos-1.xyz have 21 frames but velocities "
                                              r".*PROJECT-vel-1.xyz have 20; the first unmatched frame is frame 20 "
                                              r"\(step 20\)"):
        anionmotion.open(pos)


def test_pos_vel_step_mismatch(tmp_path):
    pos, vel = _copy_trio(tmp_path)
    text = vel.read_text().replace(" i =        3, time =        7.500", " i =       33, time =        7.500")
    vel.write_text(text)
    with pytest.raises(TrajectoryError, match=r"disagree at frame 3: step 3 in the positions, step 33 in the "
                                              r"velocities"):
        anionmotion.open(pos)


def test_gzip_and_truncated_positions(tmp_path):
    pos, vel = _copy_trio(tmp_path)
    data = pos.read_bytes()
    with gzip.open(str(pos) + ".gz", "wb") as fh:
        fh.write(data)
    os.remove(pos)
    t = anionmotion.open(str(pos) + ".gz")
    assert t.n_frames == 21 and t.has_velocities
    # a gzip stream cut short: warning, complete frames kept, then the velocity file has more frames → error
    raw = open(str(pos) + ".gz", "rb").read()
    open(str(pos) + ".gz", "wb").write(raw[: len(raw) * 2 // 3])
    with pytest.warns(TruncatedFileWarning):
        with pytest.raises(TrajectoryError, match="have 21"):
            anionmotion.open(str(pos) + ".gz")


def test_unknown_kind_and_bad_comment(tmp_path):
    pos, vel = _copy_trio(tmp_path)
    os.remove(vel)
    pos.write_text(pos.read_text().replace(" Al ", " Qz ", 1))
    with pytest.raises(TrajectoryError, match=r"line 3, atom 0: unknown CP2K kind 'Qz'"):
        anionmotion.open(pos)
    pos2, _ = _copy_trio(tmp_path / ".." / os.path.basename(tmp_path))
    pos2.write_text(pos2.read_text().replace(" i =        2, time", " j =        2, tim", 1))
    with pytest.raises(TrajectoryError, match=r"line 14, frame 2: comment line .* is not CP2K's"):
        anionmotion.open(pos2)


def test_reftraj_constant_time_needs_frame_interval(tmp_path):
    p = tmp_path / "REF-pos-1.xyz"
    p.write_text("1\n i =        1, time =        0.000, E = -1.0\n Li 0 0 0\n"
                 "1\n i =        2, time =        0.000, E = -1.0\n Li 0.1 0 0\n")
    t = anionmotion.open(p, cell=[5, 5, 5])
    assert "time_note" in t.metadata
    with pytest.raises(ValueError, match="frame_interval"):
        t.times
    t = anionmotion.open(p, cell=[5, 5, 5], frame_interval=0.5)
    npt.assert_allclose(t.times, [0, 0.5])


def test_zero_volume_cell_row_names_frame(tmp_path):
    pos, vel = _copy_trio(tmp_path)
    cell = tmp_path / "PROJECT-1.cell"
    lines = cell.read_text().splitlines()
    t = lines[3].split()
    t[10] = "0.0"  # Cz of step 2
    lines[3] = " ".join(t)
    cell.write_text("\n".join(lines) + "\n")
    with pytest.raises(TrajectoryError, match=r"frame 2: cell volume is 0"):
        anionmotion.open(pos).read()
