"""LAMMPS data file as the topology of a dump (anionmotion/io/lammps_data.py, LammpsDumpReader)."""

import gzip
import os
import subprocess
import sys

import numpy as np
import pytest

import anionmotion
from anionmotion.errors import OptionError, TrajectoryError
from anionmotion.io.lammps_data import elements_of_types, read_lammps_data

HERE = os.path.dirname(__file__)
D = os.path.join(HERE, "data", "lammps")
ADD_DUMP, ADD_DATA = os.path.join(D, "additional_columns.lammpstrj"), os.path.join(D, "additional_columns.data")
IVF_DUMP, IVF_DATA = os.path.join(D, "image_vf.lammpstrj"), os.path.join(D, "image_vf.data")
LI_DUMP = os.path.join(D, "li2so4_ortho_T1000.first60.lammpstrj.gz")
LI_DATA = os.path.join(D, "li2so4_ortho_T1000.data")


def write(tmp_path, text, name="sys.data"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


HEAD = """title line
3 atoms
2 atom types

0 10 xlo xhi
0 10 ylo yhi
0 10 zlo zhi

Masses

1 6.941
2 30.97

"""


def dump_text(ids, cols="id x y z"):
    lines = ["ITEM: TIMESTEP", "0", "ITEM: NUMBER OF ATOMS", str(len(ids)), "ITEM: BOX BOUNDS pp pp pp",
             "0 10", "0 10", "0 10", f"ITEM: ATOMS {cols}"]
    for k, i in enumerate(ids):
        lines.append(f"{i} {k + 1.0} 2.0 3.0")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ real files
def test_additional_columns_no_type_column():
    data = read_lammps_data(ADD_DATA)
    assert data.n_atoms == 10 and data.n_types == 1 and data.atom_style == "full"
    assert data.type_masses == {1: 12.011}
    np.testing.assert_array_equal(data.ids, np.arange(1, 11))
    assert data.charges[0] == pytest.approx(-0.00706800004577013)
    t = anionmotion.open(ADD_DUMP, topology=ADD_DATA, frame_interval=1.0)
    assert list(t.species) == ["C"] * 10
    np.testing.assert_allclose(t.masses, 12.011)
    # the dump's own q column (first frame) wins over the data file's charges
    assert t.charges[0] == pytest.approx(0.00258855)
    assert t.metadata["charges_source"].startswith("dump column q")
    assert t.metadata["type_elements"][1].startswith("C (nearest mass")
    pos = t.read().positions
    np.testing.assert_allclose(pos[0, 0], [2.84, 8.17, -25.0])


def test_additional_columns_without_topology_still_rejected():
    with pytest.raises(OptionError, match="no type, element or mass column"):
        anionmotion.open(ADD_DUMP, frame_interval=1.0)


def test_image_vf_unsorted_ids_and_explicit_types():
    data = read_lammps_data(IVF_DATA)
    np.testing.assert_array_equal(data.ids, np.arange(1, 8))
    # data file lists ids 4 1 2 6 3 5 7 with types 2 1 1 2 2 2 2
    np.testing.assert_array_equal(data.types, [1, 1, 2, 2, 2, 2, 2])
    t = anionmotion.open(IVF_DUMP, topology=IVF_DATA, frame_interval=1.0)
    assert list(t.species) == ["H"] * 7     # masses 1 → nearest element H
    t = anionmotion.open(IVF_DUMP, topology=IVF_DATA, frame_interval=1.0, types={1: "Li", 2: "O"})
    assert list(t.species) == ["Li", "Li", "O", "O", "O", "O", "O"]
    assert t.metadata["type_elements"][2].startswith("O (types=")
    np.testing.assert_allclose(t.masses, 1.0)   # masses stay those of the data file


def test_li2so4_engine_data_file():
    t = anionmotion.open(LI_DUMP, topology=LI_DATA, timestep=0.001)
    sp, n = np.unique(t.species, return_counts=True)
    assert dict(zip(sp, n)) == {"Li": 144, "S": 72, "O": 288}
    q = {s: np.unique(t.charges[t.species == s]) for s in ("Li", "S", "O")}
    np.testing.assert_allclose(q["Li"], [1.0])
    np.testing.assert_allclose(q["S"], [1.36])
    np.testing.assert_allclose(q["O"], [-0.84])
    np.testing.assert_allclose(np.unique(t.masses), [6.941, 15.9994, 32.065])
    assert t.metadata["type_elements"] == {1: "Li (Masses comment, mass 6.941)", 2: "S (Masses comment, mass 32.065)",
                                           3: "O (Masses comment, mass 15.9994)"}
    assert t.metadata["charges_source"] == "data file (full)"
    assert abs(float(np.sum(t.charges))) < 1e-9
    # same species as the dump's own type column with an explicit map
    t2 = anionmotion.open(LI_DUMP, types={1: "Li", 2: "S", 3: "O"}, timestep=0.001)
    np.testing.assert_array_equal(t.species, t2.species)


def test_data_type_disagrees_with_dump_type(tmp_path):
    text = open(LI_DATA).read().replace("\n1 1 1 1.0000 ", "\n1 1 2 1.0000 ", 1)
    bad = write(tmp_path, text)
    with pytest.raises(TrajectoryError, match="atom id 1 has type 1 in the dump but type 2 in the data file"):
        anionmotion.open(LI_DUMP, topology=bad, timestep=0.001)


def test_cli_info_with_topology():
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
    r = subprocess.run([sys.executable, "-m", "anionmotion", "info", ADD_DUMP, "--topology", ADD_DATA,
                        "--timestep", "0.001"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "C 10" in r.stdout and "type_elements" in r.stdout


# ----------------------------------------------------------- synthetic files
def test_comment_names_element_and_inferred_style(tmp_path):
    text = HEAD.replace("1 6.941\n", "1 6.941 # Li\n") + "Atoms\n\n3 2 5 5 5\n1 1 1 1 1\n2 1 2 2 2\n"
    data = read_lammps_data(write(tmp_path, text))
    assert data.atom_style == "atomic" and data.inferred_style and data.charges is None
    assert data.type_labels == {1: "Li"}
    elem, src = elements_of_types(data)
    assert elem == {1: "Li", 2: "P"} and src == {1: "Masses comment", 2: "nearest mass"}
    elem, src = elements_of_types(data, {1: "Na"})
    assert elem[1] == "Na" and src[1] == "types="


def test_charge_style_with_images_and_gzip(tmp_path):
    text = HEAD + "Atoms # charge\n\n1 1 0.5 1 1 1 0 0 0\n2 2 -0.25 2 2 2 1 0 -1\n3 2 -0.25 3 3 3 0 0 0\n\n" \
        "Velocities\n\n1 0 0 0\n2 0 0 0\n3 0 0 0\n"
    p = tmp_path / "sys.data.gz"
    p.write_bytes(gzip.compress(text.encode()))
    data = read_lammps_data(str(p))
    np.testing.assert_allclose(data.charges, [0.5, -0.25, -0.25])
    np.testing.assert_array_equal(data.types, [1, 2, 2])


def test_dump_id_missing_from_data(tmp_path):
    data = write(tmp_path, HEAD + "Atoms # atomic\n\n1 1 1 1 1\n2 2 2 2 2\n3 2 3 3 3\n")
    dump = write(tmp_path, dump_text([1, 2, 7]), "d.lammpstrj")
    with pytest.raises(TrajectoryError, match=r"atom id 7 of the dump is not in the data file"):
        anionmotion.open(dump, topology=data, frame_interval=1.0)
    dump = write(tmp_path, dump_text([3, 1, 2]), "ok.lammpstrj")
    t = anionmotion.open(dump, topology=data, frame_interval=1.0)
    assert list(t.species) == ["Li", "P", "P"]


def test_missing_masses_entry(tmp_path):
    text = HEAD.replace("2 30.97\n", "") + "Atoms # atomic\n\n1 1 1 1 1\n2 2 2 2 2\n3 2 3 3 3\n"
    with pytest.raises(TrajectoryError, match=r"line 16.*atom type\(s\) 2 used in Atoms .*no entry in the Masses"):
        read_lammps_data(write(tmp_path, text))


def test_malformed_lines_name_the_line(tmp_path):
    good = HEAD + "Atoms # full\n\n1 0 1 0.5 1 1 1\n2 0 2 -0.25 2 2 2\n3 0 2 -0.25 3 3 3\n"
    cases = [
        (good.replace("2 0 2 -0.25 2 2 2", "2 0 2 -0.25 2 2x 2"), r"line 17.*column 6 is not a number: '2x'"),
        (good.replace("2 0 2 -0.25 2 2 2", "2 0 2 -0.25 2 2"), r"line 17.*has 6 values; atom style 'full' needs 7"),
        (good.replace("3 0 2 -0.25", "2 0 2 -0.25"), r"line 18.*atom id 2 appears twice in Atoms .lines 17 and 18"),
        (good.replace("3 0 2 -0.25", "3 0 5 -0.25"), r"line 18.*atom type 5 outside 1\.\.2"),
        (good.replace("2 30.97", "2 abc"), r"line 12.*mass is not a number: 'abc'"),
        (good.replace("3 atoms", "3 atomz"), r"line 2.*unknown header line '3 atomz'"),
        (good.replace("0 10 ylo yhi", "10 0 ylo yhi"), r"line 6.*hi 0 is not above lo 10"),
        (good.replace("Atoms # full", "Atoms # ellipsoid"), r"line 14.*atom style 'ellipsoid' is not read"),
        (good.replace("Atoms # full", "Atoms # charge"), r"line 16.*has 7 values; atom style 'charge' needs 6"),
        (good.replace("3 0 2 -0.25 3 3 3\n", ""), r"has 2 lines, the header says 3 atoms"),
        (HEAD, r"no 'Atoms' section"),
        (good.replace("2 atom types\n", ""), r"no 'N atom types' line"),
        (good.replace("Atoms # full\n\n1 0 1 0.5 1 1 1", "Atoms\n\n1 1 0.5 1 1 1"), r"line 14.*6 columns"),
        (good + "\nBogus\n\n1 2\n", r"line 20.*Atoms section has 5 lines, the header says 3 atoms .first extra line: 'Bogus'"),
    ]
    for text, msg in cases:
        p = write(tmp_path, text)
        with pytest.raises(TrajectoryError, match=msg) as exc:
            read_lammps_data(p)
        assert "sys.data" in str(exc.value)


def test_unknown_mass_and_missing_type_in_map(tmp_path):
    text = HEAD.replace("2 30.97", "2 3.3") + "Atoms # atomic\n\n1 1 1 1 1\n2 2 2 2 2\n3 2 3 3 3\n"
    data = write(tmp_path, text)
    dump = write(tmp_path, dump_text([1, 2, 3]), "d.lammpstrj")
    with pytest.raises(OptionError, match="mass 3.3 of atom type 2 matches no element"):
        anionmotion.open(dump, topology=data, frame_interval=1.0)
    t = anionmotion.open(dump, topology=data, frame_interval=1.0, types={1: "Li", 2: "Na"})
    assert list(t.species) == ["Li", "Na", "Na"]
    with pytest.raises(OptionError, match=r"atom type\(s\) 2 have no element in types="):
        anionmotion.open(dump, topology=data, frame_interval=1.0, types={1: "Li"})


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_lammps_data(os.path.join(D, "nope.data"))
