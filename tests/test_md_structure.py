"""Structures for constrained MD (issue 13): loading, supercells, trajectory frames, OpenMM's box, the anions,
refusal of disorder, and the bad inputs of ``anionmotion md --structure``."""

import json
import os

import numpy as np
import numpy.testing as npt
import openmm
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anionmotion.cli import main
from anionmotion.errors import OptionError
from anionmotion.md import build_li2so4
from anionmotion.md.structure import (anion_table, build_md_system, find_anion_groups, format_anions,
                                      load_md_structure, openmm_box)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIF = os.path.join(ROOT, "tests", "data", "md_structures", "Li3PO4_gamma.cif")


def min_dists(pos, cell):
    """All minimum-image pair distances (brute force over the 27 neighbouring images)."""
    shifts = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], float) @ cell
    d = pos[:, None, None, :] - pos[None, :, None, :] + shifts[None, None]
    return np.linalg.norm(d, axis=3).min(axis=2)


# ------------------------------------------------------------------------------ OpenMM's reduced box
@settings(deadline=None, max_examples=40)
@given(seed=st.integers(0, 10_000), flip=st.booleans())
def test_openmm_box_is_reduced_and_the_same_lattice(seed, flip):
    rng = np.random.default_rng(seed)
    cell = np.eye(3) * rng.uniform(4, 9, 3) + rng.normal(scale=2.0, size=(3, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))     # any orientation
    cell = cell @ q.T
    if flip:
        cell[2] *= -1.0                               # left-handed
    if abs(np.linalg.det(cell)) < 20:
        return
    pos = rng.uniform(size=(6, 3)) @ cell
    box, p, R = openmm_box(cell, pos)
    box *= 10.0
    p *= 10.0
    a, b, c = box
    assert a[1] == a[2] == b[2] == 0.0 and a[0] > 0 and b[1] > 0 and c[2] > 0
    assert a[0] >= 2 * abs(b[0]) - 1e-9 and a[0] >= 2 * abs(c[0]) - 1e-9 and b[1] >= 2 * abs(c[1]) - 1e-9
    npt.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    # the same lattice: the rotated cell is an integer unimodular combination of the box vectors
    M = (cell @ R.T) @ np.linalg.inv(box)
    npt.assert_allclose(M, np.round(M), atol=1e-8)
    assert abs(round(np.linalg.det(np.round(M)))) == 1
    # positions turned rigidly with the cell: plain distances and fractional coordinates (in the new basis) agree
    npt.assert_allclose(np.linalg.norm(p[:, None] - p[None], axis=2), np.linalg.norm(pos[:, None] - pos[None], axis=2),
                        atol=1e-9)
    npt.assert_allclose(p @ np.linalg.inv(box), (pos @ np.linalg.inv(cell)) @ np.round(M), atol=1e-9)


def test_openmm_box_rejects_flat_cell():
    with pytest.raises(OptionError, match="three lattice vectors spanning a volume"):
        openmm_box(np.diag([5.0, 5.0, 0.0]), np.zeros((1, 3)))


# ------------------------------------------------------------------------------ loading and anions
def test_cif_and_supercell_anions():
    st1 = load_md_structure(CIF)
    assert st1.n_atoms == 32 and st1.composition() == {"Li": 12, "O": 16, "P": 4}
    groups, info = find_anion_groups(st1)
    assert info["center"] == "P" and info["ligand"] == "O" and info["source"] == "detected" and len(groups) == 4
    for g in groups:
        assert st1.species[g[0]] == "P" and sorted(st1.species[g[1:]]) == ["O"] * 4
        d = min_dists(st1.positions[g], st1.cell)[0, 1:]
        assert np.all((d > 1.52) & (d < 1.56))        # P–O 1.534–1.547 Å (published geometry)
    st2 = load_md_structure(CIF, supercell="2x1x2")
    assert st2.n_atoms == 128
    npt.assert_allclose(st2.cell, st1.cell * np.array([[2], [1], [2]]))
    g2, _ = find_anion_groups(st2, center="P", ligand="O", cutoff=2.0)
    assert len(g2) == 16 and len(np.unique(np.concatenate(g2))) == 80
    with pytest.raises(OptionError, match="no atoms of centre species S; the trajectory has Li, O, P"):
        find_anion_groups(st1, center="S", ligand="O")
    with pytest.raises(OptionError, match="give both --center and --ligand"):
        find_anion_groups(st1, center="P")


def test_xml_route_with_a_structure_file_matches_the_embedded_model(tmp_path):
    """An OpenMM System XML + a structure in any format gives the embedded model's forces and anions."""
    import ase.io

    m = build_li2so4(2)
    xml = str(tmp_path / "s.xml")
    with open(xml, "w") as fh:
        fh.write(openmm.XmlSerializer.serialize(m.system))
    import ase

    atoms = ase.Atoms(symbols=list(m.species), positions=m.positions * 10.0, cell=m.box * 10.0, pbc=True)
    xyz = str(tmp_path / "s.extxyz")
    ase.io.write(xyz, atoms, format="extxyz")
    u = build_md_system(xyz, xml)
    assert [sorted(g.tolist()) for g in u.groups] == [sorted(g.tolist()) for g in m.groups]
    npt.assert_allclose(u.box, m.box, atol=1e-12)
    npt.assert_allclose(u.positions, m.positions, atol=1e-9)
    assert u.parameters["potential"]["route"] == "openmm-xml" and u.parameters["anions"]["n_anions"] == 32
    assert "constrained anions: 32 (32 SO4); centre S, ligand O" in format_anions(u)
    assert anion_table(u)[0]["formula"] == "SO4" and len(anion_table(u)[0]["atoms"]) == 5
    with pytest.raises(OptionError, match="has 224 particles but the structure has 32 atoms"):
        build_md_system(CIF, xml)


def test_frame_of_a_trajectory(tmp_path):
    import ase
    import ase.io

    st1 = load_md_structure(CIF)
    rng = np.random.default_rng(2)
    frames = []
    for k in range(3):
        a = ase.Atoms(symbols=list(st1.species), positions=st1.positions + rng.normal(scale=0.02, size=(32, 3)),
                      cell=st1.cell, pbc=True)
        frames.append(a)
    path = str(tmp_path / "traj.extxyz")
    ase.io.write(path, frames, format="extxyz")
    s2 = load_md_structure(path, frame=2)
    npt.assert_allclose(s2.positions, frames[2].positions, atol=1e-6)
    sl = load_md_structure(path, frame=-1)
    npt.assert_allclose(sl.positions, frames[2].positions, atol=1e-6)
    m = build_md_system(path, "ase:ase.calculators.emt:EMT", frame=1, supercell="1x1x2", check=False)
    assert m.n_atoms == 64 and len(m.groups) == 8 and m.parameters["frame"] == 1
    assert m.parameters["supercell"] == [1, 1, 2]
    # an anionmotion-written NetCDF trajectory (the trajectory route)
    from anionmotion.io.netcdf_writer import NetCDFWriter

    nc = str(tmp_path / "t.nc")
    w = NetCDFWriter(nc, st1.species, velocities=False)
    for k, a in enumerate(frames):
        w.write(a.positions, st1.cell, time=0.1 * k)
    w.close()
    s3 = load_md_structure(nc, frame=1)
    d = s3.positions - frames[1].positions
    s = d @ np.linalg.inv(st1.cell)
    npt.assert_allclose(s - np.round(s), 0.0, atol=1e-5)     # the same frame (wrapped into the cell)
    with pytest.raises(OptionError, match="out of range"):
        load_md_structure(nc, frame=7)


def test_disordered_structure_is_refused(tmp_path):
    with open(CIF) as fh:
        original = fh.read()
    text = original.replace("Li  Li1  4  0.07540000  0.75000000  0.29550000  1",
                            "Li  Li1  4  0.07540000  0.75000000  0.29550000  0.5")
    assert text != original
    p = tmp_path / "disordered.cif"
    p.write_text(text)
    with pytest.raises(OptionError, match=r"partially occupied site\(s\).*constrained MD needs an ordered structure"):
        load_md_structure(str(p))
    with pytest.raises(OptionError, match="ordered structure"):
        build_md_system(str(p), "ase:ase.calculators.emt:EMT", check=False)


# ------------------------------------------------------------------------------ command line
@pytest.mark.parametrize("args, message", [
    (["--structure", CIF, "--potential", "nosuchmodel"], "unknown --potential 'nosuchmodel'"),
    (["--structure", CIF, "--potential", "mace:/nonexistent/x.model"], "model file of --potential mace"),
    (["--structure", CIF, "--potential", "chgnet", "--supercell", "2x2"], "invalid --supercell '2x2'"),
    (["--structure", CIF, "--potential", "chgnet", "--supercell", "0x1x1"], "supercell must be three positive"),
    (["--structure", CIF], "--structure needs --potential"),
    (["--potential", "chgnet"], "--potential needs --structure FILE"),
    (["--structure", "/nonexistent/x.cif", "--potential", "chgnet"], "structure file not found"),
    (["--structure", CIF, "--potential", "chgnet", "--frame", "3"], "holds one structure"),
    (["--structure", CIF, "--potential", "chgnet", "--potential-kw", "nokey"], "expected KEY=VALUE"),
    (["--system", "li2so4", "--structure", CIF], "give either --system or --structure"),
    (["--system-xml", "/x.xml", "--structure", "/x.pdb", "--supercell", "2"], "cannot be used with --system-xml"),
    (["--structure", CIF, "--potential", "chgnet", "--nve-drift", "-1"], "--nve-drift must be a time"),
])
def test_cli_bad_inputs_are_one_line(tmp_path, capsys, args, message):
    assert main(["md", *args, "--out", str(tmp_path / "o.nc"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1], err
    assert not os.path.exists(tmp_path / "o.nc")


def test_cli_missing_extra(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "chgnet.model", None)
    assert main(["md", "--structure", CIF, "--potential", "chgnet", "--out", str(tmp_path / "o.nc")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "pip install 'anionmotion[mlip]'" in err[-1] and len(err) == 1


def test_cli_pdb_cif_with_system_xml_keeps_the_old_meaning(tmp_path):
    """--system-xml with a .cif (PDBx/mmCIF) or .pdb is read by OpenMM's readers, as before issue 13."""
    import argparse

    from openmm import app, unit

    from anionmotion.cli import md as cli_md

    m = build_li2so4(2)
    top = app.Topology()
    chain = top.addChain()
    for i, s in enumerate(m.species):
        top.addAtom(s, app.Element.getBySymbol(s), top.addResidue("X", chain))
    top.setPeriodicBoxVectors(m.box * unit.nanometer)
    cif = str(tmp_path / "m.cif")
    with open(cif, "w") as fh:
        app.PDBxFile.writeFile(top, m.positions * unit.nanometer, fh)
    xml = str(tmp_path / "m.xml")
    with open(xml, "w") as fh:
        fh.write(openmm.XmlSerializer.serialize(m.system))
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cli_md.register(sub)
    pdb = cif.replace(".cif", ".pdb")
    for opts in (["--system-xml", xml, "--structure", cif], ["--potential", xml, "--structure", pdb]):
        if opts[0] == "--potential":
            with open(opts[-1], "w") as fh:
                app.PDBFile.writeFile(top, m.positions * unit.nanometer, fh)
        args = parser.parse_args(["md", *opts, "--center", "S", "--ligand", "O", "--cutoff", "2", "--out", "x.nc"])
        u = cli_md._system(args)
        assert u.description.startswith("user system") and len(u.groups) == 32
        npt.assert_allclose(u.positions, m.positions, atol=2e-4)


def test_cli_xml_potential_short_run_lists_anions_and_drift(tmp_path, capsys):
    import ase
    import ase.io

    m = build_li2so4(2)
    xml = str(tmp_path / "s.xml")
    with open(xml, "w") as fh:
        fh.write(openmm.XmlSerializer.serialize(m.system))
    xyz = str(tmp_path / "s.extxyz")
    ase.io.write(xyz, ase.Atoms(symbols=list(m.species), positions=m.positions * 10, cell=m.box * 10, pbc=True))
    out = str(tmp_path / "r.nc")
    with pytest.warns(Warning):
        rc = main(["md", "--structure", xyz, "--potential", xml, "--mode", "RC", "--time", "0.02", "--equilibrate",
                   "0.01", "--reequilibrate", "0.01", "--no-minimize", "--threads", "1", "--no-progress", "--out", out])
    assert rc == 0
    err = capsys.readouterr().err
    assert "constrained anions: 32 (32 SO4); centre S, ligand O" in err and "NVE energy drift (openmm:s.xml" in err
    with open(tmp_path / "r.constraints.json") as fh:
        rep = json.load(fh)
    assert len(rep["anions"]) == 32 and rep["anions"][3]["formula"] == "SO4"
    assert rep["potential"]["route"] == "openmm-xml"
    assert rep["nve_energy_drift"]["duration_ps"] == pytest.approx(0.02)


def test_frame_of_a_lammps_dump_with_types(tmp_path):
    """A LAMMPS dump needs its type → element map (--types): passed through to the trajectory reader."""
    st1 = load_md_structure(CIF)
    a, b, c = np.diag(st1.cell)
    tmap = {"Li": 1, "P": 2, "O": 3}
    rng = np.random.default_rng(5)
    frames = [st1.fractional @ st1.cell + rng.normal(scale=0.01, size=(32, 3)) for _ in range(2)]
    lines = []
    for k, pos in enumerate(frames):
        lines += ["ITEM: TIMESTEP", str(100 * k), "ITEM: NUMBER OF ATOMS", "32", "ITEM: BOX BOUNDS pp pp pp",
                  f"0 {a}", f"0 {b}", f"0 {c}", "ITEM: ATOMS id type x y z"]
        lines += [f"{i + 1} {tmap[s]} {x:.6f} {y:.6f} {z:.6f}" for i, (s, (x, y, z)) in enumerate(zip(st1.species, pos))]
    dump = tmp_path / "run.lammpstrj"
    dump.write_text("\n".join(lines) + "\n")
    m = build_md_system(str(dump), "ase:ase.calculators.emt:EMT", frame=1, check=False,
                        reader_kw={"types": {1: "Li", 2: "P", 3: "O"}, "timestep": 0.001})
    assert m.n_atoms == 32 and len(m.groups) == 4 and m.parameters["frame"] == 1
    s = (m.positions * 10.0 - frames[1]) @ np.linalg.inv(st1.cell)
    npt.assert_allclose(s - np.round(s), 0.0, atol=1e-5)
    with pytest.raises(OptionError, match="no element or mass column"):
        build_md_system(str(dump), "ase:ase.calculators.emt:EMT", frame=1, check=False)
