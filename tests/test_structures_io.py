"""anionmotion.structures.load_structure: every route gives the same Structure; supercells, frames, disorder."""

import gzip
import os
import shutil

import numpy as np
import pytest

from anionmotion.errors import FormatError, OptionError, OptionTypeError
from anionmotion.structures import Structure, load_structure, parse_supercell

DATA = os.path.join(os.path.dirname(__file__), "data")


def _li2so4_like():
    """A small ordered orthorhombic cell: 2 SO4 tetrahedra and 4 Li (not a real phase; geometry only)."""
    cell = np.diag([7.0, 6.0, 5.5])
    d = 1.48 / np.sqrt(3)
    tet = np.array([[d, d, d], [-d, -d, d], [-d, d, -d], [d, -d, -d]])
    species, pos = [], []
    for c in ([1.75, 1.5, 1.375], [5.25, 4.5, 4.125]):
        species.append("S")
        pos.append(c)
        for v in tet:
            species.append("O")
            pos.append(np.array(c) + v)
    for li in ([0.2, 4.0, 0.5], [3.6, 0.4, 3.0], [3.6, 3.4, 5.2], [6.5, 1.5, 2.6]):
        species.append("Li")
        pos.append(li)
    return Structure(np.array(species), np.array(pos, dtype=float), cell)


def _write_poscar(st, path):
    from ase.io import write

    write(path, st.to_ase(), format="vasp", direct=True)


def test_routes_agree(tmp_path):
    st = _li2so4_like()
    from ase.io import write

    _write_poscar(st, tmp_path / "POSCAR")
    write(tmp_path / "s.extxyz", st.to_ase(), format="extxyz")
    write(tmp_path / "s.cif", st.to_ase(), format="cif")
    write(tmp_path / "s.data", st.to_ase(), format="lammps-data", masses=True, specorder=["S", "O", "Li"])
    for name in ("POSCAR", "s.extxyz", "s.cif", "s.data"):
        got = load_structure(tmp_path / name)
        assert got.n_atoms == st.n_atoms, name
        # same multiset of (species, fractional position) whatever the atom order of the format
        key = lambda s: sorted((sp, *np.round(f, 4)) for sp, f in zip(s.species, s.fractional))  # noqa: E731
        a, b = key(got), key(st)
        assert [x[0] for x in a] == [x[0] for x in b], name
        np.testing.assert_allclose([x[1:] for x in a], [x[1:] for x in b], atol=2e-4, err_msg=name)
        np.testing.assert_allclose(got.cell, st.cell, atol=1e-5, err_msg=name)
        assert got.is_ordered
        np.testing.assert_allclose(sorted(got.masses), sorted(st.masses), rtol=1e-3)


def test_lammps_data_species_from_masses():
    st = load_structure(os.path.join(DATA, "lammps", "li2so4_ortho_T1000.data"))
    comp = st.composition()
    assert set(comp) == {"Li", "S", "O"}
    assert comp["O"] == 4 * comp["S"] and comp["Li"] == 2 * comp["S"]


def test_trajectory_frame(tmp_path):
    p = os.path.join(DATA, "lammps", "li2so4_ortho_T1000.first60.lammpstrj.gz")
    data = os.path.join(DATA, "lammps", "li2so4_ortho_T1000.data")
    first = load_structure(p, reader_kw={"topology": data})
    last = load_structure(p, frame=-1, reader_kw={"topology": data})
    assert first.meta["frame"] == 0 and last.meta["frame"] == last.meta["n_frames"] - 1
    assert first.n_atoms == last.n_atoms
    assert not np.allclose(first.positions, last.positions)
    # wrapped into the cell
    f = last.fractional
    assert np.all((f >= 0) & (f < 1))
    with pytest.raises(OptionError, match="out of range"):
        load_structure(p, frame=10_000, reader_kw={"topology": data})


def test_supercell_and_parse():
    st = _li2so4_like()
    sc = st.supercell((2, 1, 3))
    assert sc.n_atoms == 6 * st.n_atoms
    assert np.isclose(sc.volume, 6 * st.volume)
    assert sc.composition() == {k: 6 * v for k, v in st.composition().items()}
    assert parse_supercell("3x3x2") == (3, 3, 2)
    assert parse_supercell("2") == (2, 2, 2)
    assert parse_supercell("1,2,3") == (1, 2, 3)
    for bad in ("3x3", "0x1x1", "axbxc", "-1x2x2"):
        with pytest.raises(OptionError, match="supercell"):
            parse_supercell(bad)
    with pytest.raises(OptionTypeError):
        st.supercell("ab")


def test_supercell_via_loader(tmp_path):
    st = _li2so4_like()
    _write_poscar(st, tmp_path / "POSCAR")
    sc = load_structure(tmp_path / "POSCAR", supercell="2x2x1")
    assert sc.n_atoms == 4 * st.n_atoms and sc.meta["supercell"] == [2, 2, 1]


DISORDERED_CIF = """data_test
_cell_length_a 5.0
_cell_length_b 5.0
_cell_length_c 5.0
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
_symmetry_equiv_pos_as_xyz
'x, y, z'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Na1 Na 0.0 0.0 0.0 1.0
Na2 Na 0.5 0.5 0.5 0.3
Cl1 Cl 0.5 0.0 0.0 0.7
Br1 Br 0.5 0.0 0.0 0.3
"""


def test_disorder_refused_or_ordered(tmp_path):
    p = tmp_path / "dis.cif"
    p.write_text(DISORDERED_CIF)
    with pytest.raises(OptionError, match=r"dis\.cif.*partially occupied"):
        load_structure(p)
    st = load_structure(p, disorder="order")
    assert st.is_ordered
    # Na2 (0.3 < vacancy 0.7) dropped, Cl kept over Br on the mixed site
    assert sorted(st.species) == ["Cl", "Na"]
    d = st.meta["disorder"]
    assert d["sites_ordered"] == 2 and not d["composition_conserved"]
    assert d["composition_before"]["Na"] == pytest.approx(1.3)
    # the disordered structure keeps one entry per (site, species) and goes back to pymatgen intact
    raw = load_structure(p, disorder="order")  # ordered copy is independent of the raw read
    assert raw.n_atoms == 2


def test_pymatgen_round_trip_keeps_partial_occupancy():
    import pymatgen.core as mg

    pmg = mg.Structure(mg.Lattice.cubic(4.0), [{"Li": 0.5, "Na": 0.25}, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    from anionmotion.structures.io import _from_pymatgen

    st = _from_pymatgen(pmg, "<memory>", "test")
    assert st.n_atoms == 3 and not st.is_ordered
    back = st.to_pymatgen()
    assert len(back) == 2
    assert back[0].species.get_el_amt_dict() == pytest.approx({"Li": 0.5, "Na": 0.25})
    with pytest.raises(OptionError, match="partially occupied"):
        st.to_chunk()


def test_to_chunk_feeds_find_polyanions():
    from anionmotion.analysis.polyanions import find_polyanions

    st = _li2so4_like()
    pa = find_polyanions(st.to_chunk(), center="S", ligand="O")
    assert pa.n_anions == 2 and pa.n_ligands == 4
    traj = st.to_trajectory()
    assert traj.n_frames == 1 and traj.n_atoms == st.n_atoms


def test_bad_inputs(tmp_path):
    with pytest.raises(OptionError, match="not found"):
        load_structure(tmp_path / "nope.cif")
    with pytest.raises(OptionError, match="folder"):
        load_structure(tmp_path)
    bad = tmp_path / "bad.cif"
    bad.write_text("data_x\n_cell_length_a 5\nthis is not a cif\n")
    with pytest.raises(FormatError, match=r"bad\.cif"):
        load_structure(bad)
    st = _li2so4_like()
    _write_poscar(st, tmp_path / "POSCAR")
    with pytest.raises(OptionError, match="holds one structure"):
        load_structure(tmp_path / "POSCAR", frame=3)
    with pytest.raises(OptionError, match="disorder"):
        load_structure(tmp_path / "POSCAR", disorder="maybe")
    with pytest.raises(OptionTypeError, match="frame"):
        load_structure(tmp_path / "POSCAR", frame=1.5)
    with pytest.raises(OptionError, match="structure format"):
        load_structure(tmp_path / "POSCAR", fmt="pdbx")
    noxyz = tmp_path / "mol.extxyz"
    noxyz.write_text("2\nProperties=species:S:1:pos:R:3 pbc=\"F F F\"\nH 0 0 0\nH 0 0 0.74\n")
    with pytest.raises(FormatError, match="periodic"):
        load_structure(noxyz)
    gz = tmp_path / "POSCAR.gz"
    with open(tmp_path / "POSCAR", "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert load_structure(gz).n_atoms == st.n_atoms


def test_zero_volume_refused():
    with pytest.raises(FormatError, match="zero volume"):
        Structure(np.array(["Li"]), np.zeros((1, 3)), np.zeros((3, 3)))


def test_left_handed_cell_gives_a_right_handed_chunk():
    from anionmotion.analysis.polyanions import find_polyanions

    st = _li2so4_like()
    lh = Structure(st.species, st.positions, st.cell[[1, 0, 2]])
    assert np.linalg.det(lh.cell) < 0
    rh = lh.right_handed()
    assert np.linalg.det(rh.cell) > 0 and "cell_negated" in rh.meta
    np.testing.assert_allclose(rh.positions, lh.positions)
    assert st.right_handed() is st
    ch = lh.to_chunk()
    assert np.linalg.det(ch.cells[0]) > 0
    pa = find_polyanions(ch, center="S", ligand="O")
    assert pa.n_anions == 2
    assert lh.to_trajectory().n_frames == 1
