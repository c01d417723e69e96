"""Extended XYZ / plain XYZ reader."""

import gzip

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anionmotion
from anionmotion.errors import FormatError, OptionError, TrajectoryError, TruncatedFileWarning
from anionmotion.io.xyz import ASE_VELOCITY_A_PS, parse_comment
from anionmotion.units import AMU_A2_PS2_EV, KB_EV

from conftest import data_path

EXTXYZ = data_path("extxyz", "traj-100K-npt-1000-res.xyz")


def write_extxyz(path, species, pos, cells=None, vel=None, times=None, extra="", comment_extra=""):
    """Minimal extended-XYZ writer (repr floats, so reading back must be exact)."""
    lines = []
    props = "species:S:1:pos:R:3" + (":vel:R:3" if vel is not None else "")
    for t in range(len(pos)):
        lines.append(str(len(species)))
        c = []
        if cells is not None:
            c.append('Lattice="' + " ".join(repr(float(x)) for x in np.ravel(cells[t])) + '"')
        c.append(f"Properties={props}")
        if times is not None:
            c.append(f"Time={float(times[t])!r}")
        lines.append(" ".join(c) + comment_extra)
        for i, s in enumerate(species):
            row = [s] + [repr(float(x)) for x in pos[t, i]]
            if vel is not None:
                row += [repr(float(x)) for x in vel[t, i]]
            lines.append(" ".join(row) + extra)
    text = "\n".join(lines) + "\n"
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        with open(path, "w") as fh:
            fh.write(text)


def _random_cell(rng, triclinic):
    cell = np.diag(rng.uniform(4, 12, 3))
    if triclinic:
        cell[1, 0], cell[2, 0], cell[2, 1] = rng.uniform(-2, 2, 3)
    return cell


# ----------------------------------------------------------------------------- real file
def test_mdanse_extxyz_header_facts():
    t = anionmotion.open(EXTXYZ, frame_interval=1.0)
    assert t.format == "extxyz"
    assert (t.n_atoms, t.n_frames) == (960, 1)
    assert t.species_counts() == {"O": 576, "Ti": 192, "Sr": 192}
    npt.assert_allclose(t.cells[0], [[23.46602120792972, -0.0003885826383443868, 0.0010318859689922937],
                                     [0.0, 22.102012568803868, -0.000674010438341383],
                                     [0.0, 0.0, 22.106328935373966]], rtol=0, atol=0)
    c = t.read()
    npt.assert_allclose(c.positions[0, 0], [2.13711470, 1.38512667, 2.79643841], rtol=0, atol=1e-12)
    # momenta (ASE units) / masses → Å/ps
    npt.assert_allclose(c.velocities[0, 0], np.array([-0.70337287, -0.17558017, 0.10484108]) / 15.9994
                        * ASE_VELOCITY_A_PS, rtol=1e-12)
    ke = 0.5 * np.sum(t.masses[:, None] * c.velocities[0] ** 2) * AMU_A2_PS2_EV
    temp = 2 * ke / (3 * t.n_atoms * KB_EV)
    # measured kinetic temperature of this snapshot (the file name says 100 K NPT; the snapshot is at ~150 K)
    assert 140 < temp < 160
    assert t.metadata["energy"] == "-7679.157134099115"
    assert "velocity_source" in t.units


def test_ase_velocity_unit():
    # Å / (Å sqrt(amu/eV)) in Å/ps: 1 / 10.1805 fs
    npt.assert_allclose(ASE_VELOCITY_A_PS, 98.22694, rtol=1e-6)


def test_parse_comment_quotes_and_flags():
    kv = parse_comment('Lattice="1 0 0 0 1 0 0 0 1" Properties=species:S:1:pos:R:3 pbc="T T T" Time=0.5 name=\'x y\'')
    assert kv["lattice"] == "1 0 0 0 1 0 0 0 1"
    assert kv["time"] == "0.5" and kv["pbc"] == "T T T" and kv["name"] == "x y"


# ----------------------------------------------------------------------------- round trips
@settings(deadline=None, max_examples=25)
@given(n_frames=st.integers(1, 6), n_atoms=st.integers(1, 8), triclinic=st.booleans(), variable=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_extxyz_round_trip_exact(tmp_path_factory, n_frames, n_atoms, triclinic, variable, seed):
    rng = np.random.default_rng(seed)
    cells = np.array([_random_cell(rng, triclinic) for _ in range(n_frames if variable else 1)])
    if not variable:
        cells = np.repeat(cells, n_frames, axis=0)
    pos = rng.normal(size=(n_frames, n_atoms, 3)) * 5
    vel = rng.normal(size=(n_frames, n_atoms, 3))
    species = list(rng.choice(["Li", "P", "S", "O"], n_atoms))
    p = tmp_path_factory.mktemp("x") / "t.extxyz"
    write_extxyz(p, species, pos, cells, vel, comment_extra=" velocity_unit=A/ps")
    t = anionmotion.open(p, frame_interval=0.1, unwrap=False)
    c = t.read()
    npt.assert_array_equal(c.positions, pos)
    npt.assert_array_equal(c.velocities, vel)
    npt.assert_array_equal(t.cells, cells)
    assert list(t.species) == species
    # any frame range, any atom subset, without re-reading from the start
    if n_frames > 2:
        sub = t.read(atoms=[n_atoms - 1], frames=slice(1, n_frames - 1))
        npt.assert_array_equal(sub.positions, pos[1:-1, [n_atoms - 1]])


def test_extxyz_unwraps_a_wrapped_walk(tmp_path):
    rng = np.random.default_rng(3)
    cell = np.array([[8.0, 0, 0], [1.5, 7.0, 0], [-1.0, 0.5, 9.0]])
    walk = np.cumsum(rng.normal(scale=0.3, size=(40, 5, 3)), axis=0)
    frac = walk @ np.linalg.inv(cell)
    wrapped = (frac - np.floor(frac)) @ cell
    write_extxyz(tmp_path / "w.xyz", ["Li"] * 5, wrapped, np.repeat(cell[None], 40, 0))
    c = anionmotion.open(tmp_path / "w.xyz", frame_interval=0.01).read()
    npt.assert_allclose(c.positions - c.positions[0], walk - walk[0], atol=1e-9)


def test_velocity_units_and_time_units(tmp_path):
    pos = np.zeros((3, 1, 3))
    vel = np.ones((3, 1, 3))
    cell = np.repeat(np.eye(3)[None] * 5, 3, 0)
    write_extxyz(tmp_path / "a.xyz", ["Na"], pos, cell, vel, times=[0, 2, 4])
    t = anionmotion.open(tmp_path / "a.xyz", frame_interval=0.5)
    npt.assert_allclose(t.read().velocities, 1000.0)  # default vel unit: Å/fs (GPUMD convention)
    assert "time_note" in t.metadata
    npt.assert_allclose(t.times, [0, 0.5, 1.0])  # Time= without unit is not used
    with pytest.raises(OptionError, match="frame_interval"):
        anionmotion.open(tmp_path / "a.xyz").times
    write_extxyz(tmp_path / "b.xyz", ["Na"], pos, cell, vel, times=[0, 2, 4],
                 comment_extra=" time_unit=fs velocity_unit=A/ps")
    t = anionmotion.open(tmp_path / "b.xyz")
    npt.assert_allclose(t.times, [0, 0.002, 0.004])
    npt.assert_allclose(t.read().velocities, 1.0)
    write_extxyz(tmp_path / "c.xyz", ["Na"], pos, cell, vel, comment_extra=" velocity_unit=furlong/day")
    with pytest.raises(TrajectoryError, match="velocity_unit='furlong/day' is not understood"):
        anionmotion.open(tmp_path / "c.xyz")


def test_plain_xyz_needs_cell(tmp_path):
    p = tmp_path / "plain.xyz"
    p.write_text("2\nhello\nLi 0 0 0\nO 1 1 1\n2\nhello\nLi 0.1 0 0\nO 1 1 1.2\n")
    with pytest.raises(TrajectoryError, match="plain XYZ without a Lattice= cell; give the cell with cell= / --cell"):
        anionmotion.open(p)
    t = anionmotion.open(p, cell=[10, 10, 10], frame_interval=1.0)
    assert t.n_frames == 2 and not t.has_velocities
    npt.assert_allclose(t.read().positions[1], [[0.1, 0, 0], [1, 1, 1.2]], rtol=0, atol=1e-12)
    npt.assert_array_equal(t.cells[0], np.diag([10.0, 10, 10]))


def test_gzip_extxyz(tmp_path):
    pos = np.arange(12.0).reshape(2, 2, 3)
    write_extxyz(tmp_path / "g.xyz.gz", ["Li", "Cl"], pos, np.repeat(np.eye(3)[None] * 20, 2, 0))
    t = anionmotion.open(tmp_path / "g.xyz.gz", frame_interval=1.0, unwrap=False)
    npt.assert_array_equal(t.read().positions, pos)


# ----------------------------------------------------------------------------- bad input
def _write(tmp_path, text, name="bad.xyz"):
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


LAT = 'Lattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3'


def test_atom_count_change(tmp_path):
    p = _write(tmp_path, f"2\n{LAT}\nLi 0 0 0\nLi 1 1 1\n3\n{LAT}\nLi 0 0 0\nLi 1 1 1\nLi 2 2 2\n")
    with pytest.raises(TrajectoryError, match=r"line 5, frame 1: the atom-count line of frame 1 reads '3'; "
                                              r"expected 2"):
        anionmotion.open(p)


def test_truncated_last_frame_warns(tmp_path):
    p = _write(tmp_path, f"2\n{LAT}\nLi 0 0 0\nLi 1 1 1\n2\n{LAT}\nLi 0 0 0\n")
    with pytest.warns(TruncatedFileWarning, match=r"last frame \(frame 1\) is incomplete \(1 of 2"):
        t = anionmotion.open(p, frame_interval=1)
    assert t.n_frames == 1
    # cut in the middle of the last row
    p = _write(tmp_path, f"2\n{LAT}\nLi 0 0 0\nLi 1 1 1\n2\n{LAT}\nLi 0 0 0\nLi 1 1", "cut.xyz")
    with pytest.warns(TruncatedFileWarning, match="incomplete"):
        t = anionmotion.open(p, frame_interval=1)
    assert t.n_frames == 1


def test_nan_and_bad_number(tmp_path):
    p = _write(tmp_path, f"2\n{LAT}\nLi 0 0 0\nLi 1 nan 1\n2\n{LAT}\nLi 0 0 0\nLi 1 1 1\n")
    with pytest.raises(TrajectoryError, match=r"frame 0, atom 1: coordinates contain nan \(component y\)"):
        anionmotion.open(p, frame_interval=1).read()
    p = _write(tmp_path, f"2\n{LAT}\nLi 0 0 0\nLi 1 1 1\n2\n{LAT}\nLi 0 0 0\nLi 1 1.2.3 1\n", "b2.xyz")
    with pytest.raises(TrajectoryError, match=r"line 8, frame 1, atom 1: value 3 of this atom row is not a number"):
        anionmotion.open(p, frame_interval=1).read()


def test_empty_binary_unknown_species(tmp_path):
    with pytest.raises(FormatError, match="empty file"):
        anionmotion.open(_write(tmp_path, "", "e.xyz"))
    with pytest.raises(FormatError, match="binary data in a file read as text"):
        anionmotion.open(_write(tmp_path, b"2\n\x00\x01\x02binary", "b.xyz"))
    p = _write(tmp_path, f"2\n{LAT}\nLi 0 0 0\nQq 1 1 1\n", "u.xyz")
    with pytest.raises(TrajectoryError, match=r"line 4, atom 1: unknown species 'Qq'; expected an element symbol"):
        anionmotion.open(p)
    with pytest.raises(TrajectoryError, match="the first line must be the number of atoms"):
        anionmotion.open(_write(tmp_path, "hello\nworld\n", "h.xyz"))


def test_zero_volume_cell_names_frame(tmp_path):
    z = 'Lattice="5 0 0 0 5 0 0 0 0" Properties=species:S:1:pos:R:3'
    p = _write(tmp_path, f"1\n{LAT}\nLi 0 0 0\n1\n{z}\nLi 1 1 1\n")
    with pytest.raises(TrajectoryError, match=r"frame 1: cell volume is 0"):
        anionmotion.open(p, frame_interval=1).read()


def test_bad_lattice_and_properties(tmp_path):
    p = _write(tmp_path, '1\nLattice="5 0 0 0 5" Properties=species:S:1:pos:R:3\nLi 0 0 0\n')
    with pytest.raises(TrajectoryError, match="must hold 9 numbers"):
        anionmotion.open(p, frame_interval=1).cells
    p = _write(tmp_path, '1\nLattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:vel:R:3\nLi 0 0 0\n', "p.xyz")
    with pytest.raises(TrajectoryError, match="has no pos:R:3 column"):
        anionmotion.open(p)


def test_long_comment_line(tmp_path):
    pad = "x" * 20000
    p = _write(tmp_path, f'1\nnote={pad} Lattice="5 0 0 0 6 0 0 0 7" Properties=species:S:1:pos:R:3\nLi 1 2 3\n')
    t = anionmotion.open(p, frame_interval=1)
    npt.assert_array_equal(t.cells[0], np.diag([5.0, 6.0, 7.0]))
    assert t.metadata["note"] == pad


def test_numeric_species_need_types(tmp_path):
    p = _write(tmp_path, "2\n Atoms. Timestep: 1\n1 0 0 0\n2 1 1 1\n")  # LAMMPS dump xyz
    with pytest.raises(TrajectoryError, match=r"the species column holds numbers .* give|map them to elements with "
                                              r"types= / --types"):
        anionmotion.open(p, cell=[5, 5, 5])
    t = anionmotion.open(p, cell=[5, 5, 5], types="1=Mo,2=O", frame_interval=1)
    assert list(t.species) == ["Mo", "O"]
    with pytest.raises(TrajectoryError, match=r"types= has no element for type\(s\) \[2\]"):
        anionmotion.open(p, cell=[5, 5, 5], types="1=Mo")


def test_crlf_line_endings(tmp_path):
    text = f"2\r\n{LAT}\r\nLi 0 0 0\r\nO 1 1 1\r\n2\r\n{LAT}\r\nLi 0.5 0 0\r\nO 1 1 1\r\n"
    t = anionmotion.open(_write(tmp_path, text), frame_interval=1, unwrap=False)
    npt.assert_array_equal(t.read().positions[1], [[0.5, 0, 0], [1, 1, 1]])
    assert list(t.species) == ["Li", "O"]
