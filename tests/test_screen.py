"""Framework screening (anionmotion.structures.framework / screen, `anionmotion screen`): connectivity classes
on hand-built structures with known answers, invariance under supercells, permutations and translations,
the plain-loop twin, VPA/AAL analytically, the paper-003 verdict, disorder, files without a mobile cation,
the bond-valence columns' failure path and the CLI outputs."""

from __future__ import annotations

import json
import os
import shutil
import sys
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anionmotion.cli import main
from anionmotion.structures import Structure
from anionmotion.structures.framework import (SHARING_KINDS, average_anion_length, classify_sharing,
                                              connectivity_reference, framework_connectivity, framework_polyhedra,
                                              ligand_roles, periodic_pairs, volume_per_atom)
from anionmotion.structures.screen import (BASE_COLUMNS, screen_file, screen_files, screen_structure,
                                           write_screen_csv)

DATA = os.path.join(os.path.dirname(__file__), "data", "screen")

TETRA = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) / np.sqrt(3)
OCTA = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)


def make(species, pos, cell):
    return Structure(np.asarray(species, dtype=object), np.asarray(pos, float), np.asarray(cell, float))


def analyse(s, mobile=("Na",)):
    poly = framework_polyhedra(s.species, s.positions, s.cell, mobile=mobile)
    return poly, framework_connectivity(poly)


# ------------------------------------------------------------------------------------------- structures
def isolated_tetrahedra(d=2.05):
    """Two PS4 tetrahedra and six Na in a 9 Å cube: isolated."""
    c1, c2 = np.array([2.0, 2.0, 2.0]), np.array([6.5, 6.5, 6.5])
    pos = [c1, *(c1 + d * TETRA), c2, *(c2 - d * TETRA), [6.5, 2, 2], [2, 6.5, 2], [2, 2, 6.5], [2, 6.5, 6.5],
           [6.5, 2, 6.5], [6.5, 6.5, 2]]
    sp = ["P"] + ["S"] * 4 + ["P"] + ["S"] * 4 + ["Na"] * 6
    return make(sp, pos, np.eye(3) * 9.0)


def corner_chain(a=4.0, r=2.0):
    """TiF6 octahedra sharing trans corners along a (a = 2r): one corner-sharing pair per cell."""
    c = np.array([0.0, 5.0, 5.0])
    lig = [c + r * np.array([1, 0, 0])] + [c + r * v for v in OCTA[2:]]
    pos = [c, *lig, [a / 2, 0.5, 0.5]]
    return make(["Ti"] + ["F"] * 5 + ["Na"], pos, np.diag([a, 10.0, 10.0]))


def corner_pair(d=1.63):
    """Si2O7: two tetrahedra sharing one O."""
    v = np.array([[1, 0, 0], [-1 / 3, np.sqrt(8) / 3, 0], [-1 / 3, -np.sqrt(2) / 3, np.sqrt(2 / 3)],
                  [-1 / 3, -np.sqrt(2) / 3, -np.sqrt(2 / 3)]])
    s1 = np.array([4.0, 6.0, 6.0])
    s2 = s1 + np.array([2 * d, 0, 0])
    pos = [s1, *(s1 + d * v), s2, *(s2 - d * v[1:]), [1.0, 1.0, 1.0]]
    return make(["Si"] + ["O"] * 4 + ["Si"] + ["O"] * 3 + ["Na"], pos, np.eye(3) * 12.0)


def edge_pair():
    """Al2Cl6: two tetrahedra sharing an edge (two bridging Cl)."""
    o = np.array([6.0, 6.0, 6.0])
    pos = [o + [-1.6, 0, 0], o + [1.6, 0, 0], o + [0, 1.6, 0], o + [0, -1.6, 0], o + [-2.8, 0, 1.7],
           o + [-2.8, 0, -1.7], o + [2.8, 0, 1.7], o + [2.8, 0, -1.7], [0.5, 0.5, 0.5]]
    return make(["Al", "Al"] + ["Cl"] * 6 + ["Na"], pos, np.eye(3) * 12.0)


def face_pair(r=2.4):
    """Two TiCl6 octahedra sharing a face (reflection through the face plane)."""
    m1 = np.zeros(3)
    lig1 = r * OCTA
    n = np.ones(3) / np.sqrt(3)
    c = r / 3 * np.ones(3)
    m2 = m1 - 2 * ((m1 - c) @ n) * n
    face = [i for i in range(6) if OCTA[i].sum() > 0]
    other = [lig1[i] - 2 * ((lig1[i] - c) @ n) * n for i in range(6) if i not in face]
    shift = np.array([6.0, 6.0, 6.0])
    pos = np.array([m1, m2, *lig1, *other]) + shift
    pos = np.vstack([pos, [[0.5, 0.5, 11.0]]])
    return make(["Ti", "Ti"] + ["Cl"] * 9 + ["Na"], pos, np.eye(3) * 14.0)


def mixed_pairs():
    """An edge-sharing Al2Cl6 dimer and a corner-sharing Si2O7 dimer in one cell: mixed."""
    e, c = edge_pair(), corner_pair()
    pos = np.vstack([e.positions, c.positions + [0, 0, 12.0]])
    cell = np.diag([12.0, 12.0, 24.0])
    return make(list(e.species) + list(c.species), pos, cell)


def rock_salt(a=4.2):
    f = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
    pos = np.vstack([f, f + [.5, 0, 0]]) * a
    return make(["Mg"] * 4 + ["O"] * 4, pos, np.eye(3) * a)


KNOWN = [  # (builder, connectivity, most connected, pairs per cell (corner, edge, face), coordinations)
    (isolated_tetrahedra, "isolated", None, (0, 0, 0), [4, 4]),
    (corner_chain, "corner-sharing", "corner-sharing", (1, 0, 0), [6]),
    (corner_pair, "corner-sharing", "corner-sharing", (1, 0, 0), [4, 4]),
    (edge_pair, "edge-sharing", "edge-sharing", (0, 1, 0), [4, 4]),
    (face_pair, "face-sharing", "face-sharing", (0, 0, 1), [6, 6]),
    (mixed_pairs, "mixed", "edge-sharing", (1, 1, 0), [4, 4, 4, 4]),
]


@pytest.mark.parametrize("build, conn, most, counts, cn", KNOWN, ids=[k[1] + "-" + k[0].__name__ for k in KNOWN])
def test_known_connectivity(build, conn, most, counts, cn):
    s = build()
    poly, fc = analyse(s)
    assert fc.connectivity == conn
    assert fc.most_connected == most
    assert tuple(fc.counts[k] for k in SHARING_KINDS) == counts
    assert sorted(poly.coordination.tolist()) == sorted(cn)
    ref = connectivity_reference(s.species, s.positions, s.cell, mobile=("Na",))
    assert ref["connectivity"] == conn and tuple(ref["counts"][k] for k in SHARING_KINDS) == counts


def test_rock_salt_is_mixed_edge_and_corner():
    # every Mg octahedron shares edges with its 12 nearest Mg and corners with its 6 next-nearest
    _, fc = analyse(rock_salt(), mobile=())
    assert fc.connectivity == "mixed" and fc.most_connected == "edge-sharing"
    assert fc.per_polyhedron() == {"corner-sharing": 3.0, "edge-sharing": 6.0, "face-sharing": 0.0}


def test_corner_sharing_3d_reo3():
    a = 3.75
    s = make(["Re", "O", "O", "O"], [[0, 0, 0], [a / 2, 0, 0], [0, a / 2, 0], [0, 0, a / 2]], np.eye(3) * a)
    poly, fc = analyse(s, mobile=())
    assert fc.connectivity == "corner-sharing"
    assert fc.counts["corner-sharing"] == 3      # the octahedron with its images along a, b and c
    assert poly.coordination.tolist() == [6]     # six O although the cell holds three (periodic images)


def test_no_framework_polyhedron():
    poly, fc = analyse(rock_salt(), mobile=("Mg",))
    assert fc.connectivity == "none" and poly.n_polyhedra == 0
    assert np.isnan(average_anion_length(poly))


@pytest.mark.parametrize("build, conn, most, counts, cn", KNOWN, ids=[k[1] + "-" + k[0].__name__ for k in KNOWN])
@pytest.mark.parametrize("reps", [(2, 1, 1), (1, 2, 3), (2, 2, 2)])
def test_supercell_invariance(build, conn, most, counts, cn, reps):
    s = build()
    big = s.supercell(reps)
    m = int(np.prod(reps))
    poly, fc = analyse(big)
    assert fc.connectivity == conn
    assert tuple(fc.counts[k] for k in SHARING_KINDS) == tuple(m * c for c in counts)
    p0, f0 = analyse(s)
    assert fc.per_polyhedron() == pytest.approx(f0.per_polyhedron())
    assert average_anion_length(poly) == pytest.approx(average_anion_length(p0), rel=1e-12)
    assert volume_per_atom(big.cell, big.n_atoms) == pytest.approx(volume_per_atom(s.cell, s.n_atoms), rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(which=st.integers(0, len(KNOWN) - 1), seed=st.integers(0, 2 ** 31 - 1))
def test_permutation_and_translation_invariance(which, seed):
    rng = np.random.default_rng(seed)
    s = KNOWN[which][0]()
    perm = rng.permutation(s.n_atoms)
    shift = rng.uniform(-20, 20, 3)
    t = make(s.species[perm], s.positions[perm] + shift, s.cell)
    p0, f0 = analyse(s)
    p1, f1 = analyse(t)
    assert f1.connectivity == f0.connectivity
    assert f1.counts == f0.counts
    assert sorted(p1.coordination.tolist()) == sorted(p0.coordination.tolist())
    assert average_anion_length(p1) == pytest.approx(average_anion_length(p0), rel=1e-10)
    assert p1.census(t.species) == p0.census(s.species)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), n_c=st.integers(1, 3), n_l=st.integers(2, 7))
def test_twin_on_random_structures(seed, n_c, n_l):
    """The numpy implementation equals the plain-loop twin on random (often oddly bonded) structures."""
    rng = np.random.default_rng(seed)
    cell = np.diag(rng.uniform(4.2, 6.5, 3)) + np.triu(rng.uniform(-0.6, 0.6, (3, 3)), 1)
    sp = ["Al"] * n_c + list(rng.choice(["Cl", "O"], n_l)) + ["Na"]
    pos = rng.uniform(0, 1, (len(sp), 3)) @ cell
    poly = framework_polyhedra(sp, pos, cell, mobile=("Na",))
    fc = framework_connectivity(poly)
    ref = connectivity_reference(sp, pos, cell, mobile=("Na",))
    assert fc.connectivity == ref["connectivity"]
    assert fc.counts == ref["counts"]
    assert poly.coordination.tolist() == ref["coordination"]


def test_periodic_pairs_against_explicit_images():
    rng = np.random.default_rng(3)
    cell = np.array([[3.1, 0, 0], [0.7, 3.4, 0], [0.3, -0.5, 2.9]])
    fa, fb = rng.uniform(0, 1, (3, 3)), rng.uniform(0, 1, (4, 3))
    i, j, n, d = periodic_pairs(fa, fb, cell, 5.0)
    got = sorted((int(a), int(b), tuple(int(x) for x in m)) for a, b, m in zip(i, j, n))
    want = []
    for a in range(3):
        for b in range(4):
            for m in np.ndindex(9, 9, 9):
                m = np.array(m) - 4
                if np.linalg.norm((fb[b] + m - fa[a]) @ cell) <= 5.0:
                    want.append((a, b, tuple(int(x) for x in m)))
    assert got == sorted(want)
    assert np.allclose(d, np.linalg.norm((fb[j] + n - fa[i]) @ cell, axis=1))


def test_roles_of_anion_formers():
    # Na2S2O3-like: the central S is bonded to three O (more electronegative) → centre; the terminal S a ligand
    c = np.array([5.0, 5.0, 5.0])
    pos = [c, c + 1.99 * TETRA[0], *(c + 1.47 * TETRA[1:]), [1, 1, 1], [9, 1, 1], [1, 9, 1]]
    sp = ["S", "S", "O", "O", "O", "H", "Na", "Na"]
    roles = ligand_roles(sp, pos, np.eye(3) * 10)
    assert roles.tolist()[:5] == ["centre-anion", "ligand", "ligand", "ligand", "ligand"]
    poly = framework_polyhedra(sp, pos, np.eye(3) * 10, mobile=("Na",))
    assert poly.census(sp) == {"SO3S": 1}
    # O–H: the H is bonded to a more electronegative atom and makes no polyhedron
    roles = ligand_roles(["O", "H", "Na"], [[1, 1, 1], [1.97, 1, 1], [5, 5, 5]], np.eye(3) * 10)
    assert roles.tolist() == ["ligand", "bonded-H", "cation"]


def test_vpa_aal_analytic():
    d = 1.87
    s = isolated_tetrahedra(d)
    poly, _ = analyse(s)
    assert average_anion_length(poly) == pytest.approx(d, rel=1e-12)
    assert volume_per_atom(s.cell, s.n_atoms) == pytest.approx(9.0 ** 3 / 16, rel=1e-12)
    # unequal bonds: the mean over every bond of every polyhedron
    s2 = corner_chain(a=4.4, r=2.0)        # the shared corner 2.0 Å from one centre, 2.4 Å from the next
    poly2, _ = analyse(s2)
    assert poly2.coordination.tolist() == [6]
    b = np.sort(poly2.bond_length)
    assert b == pytest.approx([2.0] * 5 + [2.4])
    assert average_anion_length(poly2) == pytest.approx((5 * 2.0 + 2.4) / 6)


def test_classify_sharing_rule():
    assert classify_sharing([]) == ("isolated", None)
    assert classify_sharing([1, 1]) == ("corner-sharing", "corner-sharing")
    assert classify_sharing([2]) == ("edge-sharing", "edge-sharing")
    assert classify_sharing([3, 4]) == ("face-sharing", "face-sharing")
    assert classify_sharing([1, 3]) == ("mixed", "face-sharing")


# ------------------------------------------------------------------------------------------- screen rows
def test_screen_row_candidate_and_polyanion():
    row = screen_structure(isolated_tetrahedra(), bv=False)
    assert row["cation"] == "Na" and row["cation_source"] == "detected"
    assert row["connectivity"] == "isolated" and row["candidate"] is True
    assert row["polyanion"] == "PS4" and row["n_polyanions"] == 2 and row["polyanion_connectivity"] == "isolated"
    assert row["polyhedra"] == "PS4×2" and row["coordination"] == "4"
    assert row["bv_status"] == "skipped" and row["error"] == ""
    assert set(BASE_COLUMNS) <= set(row)


@pytest.mark.parametrize("build, verdict", [(corner_chain, "not a candidate: corner-sharing"),
                                            (face_pair, "not a candidate: face-sharing")])
def test_screen_row_not_candidate(build, verdict):
    row = screen_structure(build(), bv=False)
    assert row["candidate"] is False and row["verdict"].startswith(verdict)


def test_screen_isolated_but_not_tetra_octa():
    # isolated trigonal NO3 groups: isolated framework, coordination 3 → not a paper-003 candidate
    c1, c2 = np.array([2.0, 2.0, 2.0]), np.array([6.0, 6.0, 6.0])
    tri = 1.25 * np.array([[1, 0, 0], [-0.5, np.sqrt(3) / 2, 0], [-0.5, -np.sqrt(3) / 2, 0]])
    s = make(["N", "O", "O", "O", "N", "O", "O", "O", "Na", "Na"],
             [c1, *(c1 + tri), c2, *(c2 + tri), [6, 2, 2], [2, 6, 6]], np.eye(3) * 8)
    row = screen_structure(s, bv=False)
    assert row["isolated"] is True and row["candidate"] is False
    assert "coordination 3" in row["verdict"]
    assert row["polyanion"] == "NO3"


def test_screen_without_mobile_cation():
    row = screen_file(os.path.join(DATA, "ReO3.cif"), bv="all")
    assert row["error"] == ""
    assert row["cation"] is None and row["connectivity"] == "corner-sharing"
    assert row["VPA_A3"] == pytest.approx(3.7477 ** 3 / 4, rel=1e-6)
    assert row["AAL_A"] == pytest.approx(3.7477 / 2, rel=1e-6)
    assert row["bv_status"] == "not computed" and "no mobile cation" in row["bv_reason"]
    assert row["candidate"] is False and "no mobile cation" in row["verdict"]


def test_screen_cif_na3ps4():
    row = screen_file(os.path.join(DATA, "Na3PS4_cubic.cif"), bv=False)
    assert row["connectivity"] == "isolated" and row["candidate"] is True
    assert row["AAL_A"] == pytest.approx(np.sqrt(3) * 0.1721 * 6.9965, rel=1e-6)
    assert row["VPA_A3"] == pytest.approx(6.9965 ** 3 / 16, rel=1e-6)
    assert row["polyanion"] == "PS4" and row["n_polyanions"] == 2


def test_disorder_refuse_and_order():
    p = os.path.join(DATA, "Na3PS4_disordered.cif")
    bad = screen_file(p, disorder="refuse", bv=False)
    assert bad["error"] and "partially occupied" in bad["error"] and bad["connectivity"] is None
    ok = screen_file(p, disorder="order", bv=False)
    assert ok["error"] == "" and ok["connectivity"] == "isolated"
    assert ok["disorder"].startswith("order:") and "NOT conserved" in ok["disorder"]


def test_bad_file_gets_error_row(tmp_path):
    p = tmp_path / "junk.cif"
    p.write_text("this is not a CIF\n")
    row = screen_file(p, bv=False)
    assert row["error"] and "\n" not in row["error"]
    assert row["file"] == str(p)


def test_bv_columns_from_bv_summary_and_its_failure(monkeypatch):
    fake = types.ModuleType("anionmotion.structures.bv")
    calls = []

    def ok(structure, cation=None, **kw):
        calls.append(cation)
        return {"E_mig_eV": 0.42, "dimensionality": 3, "grid": [[1, 2]], "params": "softBV"}

    fake.bv_summary = ok
    monkeypatch.setitem(sys.modules, "anionmotion.structures.bv", fake)
    row = screen_structure(isolated_tetrahedra(), bv="all")
    assert calls == ["Na"] and row["bv_status"] == "ok"
    assert row["bv_E_mig_eV"] == 0.42 and row["bv_dimensionality"] == 3 and "bv_grid" not in row

    def boom(structure, cation=None, **kw):
        raise ValueError("no softBV parameters for\nNa–S")

    fake.bv_summary = boom
    row = screen_structure(isolated_tetrahedra(), bv="candidates")
    assert row["bv_status"] == "failed" and row["bv_reason"] == "ValueError: no softBV parameters for | Na–S"
    assert row["connectivity"] == "isolated"          # the rest of the row is unaffected


def test_screen_files_parallel_equals_serial(tmp_path):
    paths = [os.path.join(DATA, f) for f in ("Na3PS4_cubic.cif", "ReO3.cif", "POSCAR_MgO")] + [str(tmp_path / "x")]
    a = screen_files(paths, jobs=1, bv=False, progress=False)
    b = screen_files(paths, jobs=2, bv=False, progress=False)
    assert [r["file"] for r in a] == paths
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:           # NaN (AAL without polyhedra) compares equal to NaN here
            assert ra[k] == rb[k] or (isinstance(ra[k], float) and np.isnan(ra[k]) and np.isnan(rb[k])), k
    assert a[3]["error"] and "not found" in a[3]["error"]


def test_csv_writer_formats(tmp_path):
    rows = [screen_structure(isolated_tetrahedra(), bv=False)]
    p = tmp_path / "s.csv"
    write_screen_csv(p, rows)
    head, line = p.read_text().splitlines()[:2]
    assert head.split(",")[:3] == ["file", "formula", "n_atoms"]
    assert ",true,true," in line


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_json_csv_no_silent_overwrite(tmp_path, capsys):
    files = [os.path.join(DATA, f) for f in ("Na3PS4_cubic.cif", "ReO3.cif")]
    bad = tmp_path / "bad.cif"
    bad.write_text("garbage")
    j, c = tmp_path / "s.json", tmp_path / "s.csv"
    rc = main(["screen", *files, str(bad), "--json", str(j), "--csv", str(c), "--no-progress", "--no-bv"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "disorder policy: refuse" in out and "1 candidate(s), 1 failed" in out
    d = json.loads(j.read_text())
    assert [r["connectivity"] for r in d["rows"]] == ["isolated", "corner-sharing", None]
    assert d["rows"][2]["error"] and d["parameters"]["disorder"] == "refuse" and "VPA_A3" in d["definitions"]
    assert len(c.read_text().splitlines()) == 4
    before = j.read_text()
    rc = main(["screen", files[0], "--json", str(j), "--no-progress", "--no-bv"])
    assert rc == 2 and "exists" in capsys.readouterr().err
    assert j.read_text() == before
    rc = main(["screen", files[0], "--json", str(j), "--no-progress", "--no-bv", "--overwrite"])
    assert rc == 0 and len(json.loads(j.read_text())["rows"]) == 1


def test_cli_exit_2_only_when_every_file_failed(tmp_path, capsys):
    bad = tmp_path / "bad.cif"
    bad.write_text("garbage")
    j = tmp_path / "s.json"
    rc = main(["screen", str(bad), str(tmp_path / "missing.cif"), "--json", str(j), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "every file failed (2)" in err and "bad.cif" in err
    assert len(json.loads(j.read_text())["rows"]) == 2       # the rows are still written


def test_cli_disorder_order_and_cation(tmp_path, capsys):
    p = os.path.join(DATA, "Na3PS4_disordered.cif")
    rc = main(["screen", p, "--disorder", "order", "--cation", "Na", "--no-progress", "--no-bv",
               "--json", str(tmp_path / "o.json")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "disorder policy: order" in out
    row = json.loads((tmp_path / "o.json").read_text())["rows"][0]
    assert row["cation_source"] == "given" and row["connectivity"] == "isolated"
    rc = main(["screen", p, "--cation", "Xx", "--no-progress"])
    assert rc == 2


def test_cli_same_file_for_json_and_csv(tmp_path, capsys):
    rc = main(["screen", os.path.join(DATA, "ReO3.cif"), "--json", str(tmp_path / "a"), "--csv",
               str(tmp_path / "a")])
    assert rc == 2 and "same file" in capsys.readouterr().err


def test_cli_input_not_overwritten(tmp_path, capsys):
    src = tmp_path / "ReO3.cif"
    shutil.copy(os.path.join(DATA, "ReO3.cif"), src)
    before = src.read_bytes()
    rc = main(["screen", str(src), "--csv", str(src), "--overwrite", "--no-progress"])
    assert rc == 2 and src.read_bytes() == before


def test_real_bv_columns_na3ps4(tmp_path):
    """The real bv_summary fills the flat bv_* columns (CSV) and the full record with its parameters (JSON)."""
    rows = screen_files([os.path.join(DATA, "Na3PS4_cubic.cif")], jobs=1, progress=False, bv="all")
    row = rows[0]
    assert row["bv_status"] == "ok", row["bv_reason"]
    assert row["bv_cation"] == "Na" and row["bv_E_mig_eV"] is not None and row["bv_E_mig_eV"] > 0
    assert row["bv_mode"] in ("rotate", "vibrate")
    assert "parameters" in row["bv"] and "grid" in row["bv"]
    p = tmp_path / "s.csv"
    write_screen_csv(p, rows)
    head = p.read_text().splitlines()[0].split(",")
    assert "bv_E_mig_eV" in head and "bv" not in head


# ------------------------------------------------------------------------------- real structures and peers
PMG_STRUCTURES = os.path.join(os.path.dirname(__import__("pymatgen.core").core.__file__), "..", "util", "structures")


def pmg_structure(name):
    """A structure shipped with pymatgen (pymatgen/util/structures/<name>.json) as an anionmotion Structure."""
    from pymatgen.core import Structure as PS

    with open(os.path.join(PMG_STRUCTURES, f"{name}.json")) as fh:
        s = PS.from_dict(json.load(fh))
    return make([sp.symbol for sp in s.species], s.cart_coords, s.lattice.matrix)


@pytest.mark.parametrize("name, conn, most, census", [
    # olivine: PO4 shares an edge and corners with FeO6, FeO6 share corners
    ("LiFePO4", "mixed", "edge-sharing", {"FeO6": 4, "PO4": 4}),
    ("NaFePO4", "mixed", "edge-sharing", {"FeO6": 4, "PO4": 4}),
    # NASICON: VO6 and PO4 share corners only
    ("Li3V2(PO4)3", "corner-sharing", "corner-sharing", {"PO4": 6, "VO6": 4}),
    # α-quartz: SiO4 sharing every corner
    ("SiO2", "corner-sharing", "corner-sharing", {"SiO4": 3}),
])
def test_known_real_structures(name, conn, most, census):
    s = pmg_structure(name)
    poly, fc = analyse(s, mobile=("Li", "Na"))
    assert (fc.connectivity, fc.most_connected) == (conn, most)
    assert poly.census(s.species) == census


def test_left_handed_cell_same_row():
    s = pmg_structure("LiFePO4")
    assert np.linalg.det(s.cell) < 0                      # pymatgen's LiFePO4 is stored left-handed
    r1 = screen_structure(s, bv=False)
    t = make(s.species, s.positions, -s.cell)             # the same lattice, right-handed
    r2 = screen_structure(t, bv=False)
    assert r1["polyanion"] == r2["polyanion"] == "PO4" and r1["n_polyanions"] == 4
    for k in ("connectivity", "most_connected", "n_corner_pairs", "n_edge_pairs", "n_face_pairs", "polyhedra"):
        assert r1[k] == r2[k]
    assert r1["AAL_A"] == pytest.approx(r2["AAL_A"], rel=1e-12)


@pytest.mark.parametrize("name", ["LiFePO4", "Li3V2(PO4)3", "TlBiSe2"])
def test_bonds_against_pymatgen_neighbours(name):
    """Every centre–ligand bond (ligand atom and lattice image) equals the same shell rule applied to pymatgen's
    own periodic neighbour search (Structure.get_all_neighbors)."""
    from pymatgen.core import Lattice
    from pymatgen.core import Structure as PS

    from anionmotion.structures.framework import COVALENT_RADII_A, DEFAULT_BOND_SCALE, DEFAULT_TOL

    s = pmg_structure(name)
    mobile = ("Li",)
    poly = framework_polyhedra(s.species, s.positions, s.cell, mobile=mobile)
    frac = s.positions @ np.linalg.inv(s.cell)
    frac -= np.floor(frac)
    frac[frac >= 1.0] = 0.0
    ps = PS(Lattice(s.cell), list(s.species), frac)
    roles = ligand_roles(s.species, s.positions, s.cell)
    rmax = DEFAULT_BOND_SCALE * 2 * max(COVALENT_RADII_A[x] for x in set(s.species))
    nbrs = ps.get_all_neighbors(rmax)
    mine = {(int(c), int(l), tuple(int(v) for v in n))
            for c, l, n in zip(poly.centers[poly.bond_center], poly.bond_ligand, poly.bond_image)}
    peer = set()
    for c in poly.centers:
        cs = s.species[c]
        by_species = {}
        for nb in nbrs[c]:
            if roles[nb.index] != "ligand":
                continue
            ls = s.species[nb.index]
            if nb.nn_distance <= DEFAULT_BOND_SCALE * (COVALENT_RADII_A[cs] + COVALENT_RADII_A[ls]):
                by_species.setdefault(ls, []).append(nb)
        for ls, lst in by_species.items():
            dmin = min(nb.nn_distance for nb in lst)
            peer |= {(int(c), int(nb.index), tuple(int(round(v)) for v in nb.image)) for nb in lst
                     if nb.nn_distance <= (1 + DEFAULT_TOL) * dmin}
    assert mine == peer and len(mine) > 0


def test_polyanion_conductors_of_papers_002_003_are_isolated():
    """The structures of tests/data/bv (built from published crystallographic data for the bond-valence
    tests: sulfates, phosphates, thiophosphates, argyrodites, LiBH4, cryolite, Na3SbS4, Na3YCl6, NaNO3) all
    have isolated frameworks; the trigonal NO3 is the one that is not tetrahedral/octahedral."""
    import glob

    files = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "data", "bv", "*.vasp")))
    assert len(files) >= 10
    rows = screen_files(files, jobs=1, bv=False, progress=False)
    for r in rows:
        assert r["error"] == "" and r["connectivity"] == "isolated", (r["file"], r["error"], r["connectivity"])
        assert r["candidate"] is (not r["file"].endswith("NaNO3.vasp")), r["file"]


def test_given_cation_absent_still_describes_the_framework():
    row = screen_file(os.path.join(DATA, "ReO3.cif"), cation="na", bv="all")
    assert row["error"] == "" and row["cation"] is None and row["cation_source"] == "absent"
    assert "Na" in row["cation_reason"] and row["connectivity"] == "corner-sharing"
    assert row["verdict"] == "not a candidate: no mobile cation (Na given, absent)"
    assert row["bv_status"] == "not computed"
    with pytest.raises(Exception, match="not an element"):
        screen_files([os.path.join(DATA, "ReO3.cif")], cation="Qq", progress=False)


def test_bv_modes_none_candidates_all(monkeypatch):
    """--bv none (default) computes nothing; candidates only for rows that pass the filter; all for every row."""
    from anionmotion.structures import bv as bvmod
    from anionmotion.structures.screen import bv_mode

    calls = []
    monkeypatch.setattr(bvmod, "bv_summary", lambda st, cation=None, **kw: calls.append(cation) or {"E_rot_min_eV": 1.0})
    cand = screen_file(os.path.join(DATA, "Na3PS4_cubic.cif"))
    assert cand["candidate"] and cand["bv_status"] == "skipped" and "--bv none" in cand["bv_reason"] and not calls
    cand = screen_file(os.path.join(DATA, "Na3PS4_cubic.cif"), bv="candidates")
    assert cand["bv_status"] == "ok" and cand["bv_E_rot_min_eV"] == 1.0 and calls == ["Na"]
    mgo = screen_file(os.path.join(DATA, "POSCAR_MgO"), cation="Mg", bv="candidates")
    assert not mgo["candidate"] and mgo["bv_status"] == "skipped" and "not a candidate" in mgo["bv_reason"]
    assert calls == ["Na"]
    screen_file(os.path.join(DATA, "POSCAR_MgO"), cation="Mg", bv="all")
    assert calls == ["Na", "Mg"]
    assert (bv_mode(True), bv_mode(False), bv_mode("Candidates")) == ("all", "none", "candidates")
    from anionmotion.errors import OptionError

    with pytest.raises(OptionError, match="invalid bv"):
        screen_files([os.path.join(DATA, "ReO3.cif")], bv="some", progress=False)
