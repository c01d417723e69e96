"""Partial g(r), coordination numbers and F(r) (SPEC §7)."""

import json
import warnings

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anionmotion as am
from anionmotion.analysis.rdf import first_minimum, parse_pair
from anionmotion.errors import OptionError, UnwrapWarning


def lattice(kind, n, a, noise=0.0, frames=3, seed=0):
    base = {"fcc": [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
            "bcc": [[0, 0, 0], [0.5, 0.5, 0.5]], "sc": [[0, 0, 0]]}[kind]
    g = np.array([[i, j, k] for i in range(n) for j in range(n) for k in range(n)])
    pos = ((g[:, None, :] + np.array(base)[None]).reshape(-1, 3) * a)
    rng = np.random.default_rng(seed)
    return pos[None] + rng.normal(0, noise, (frames, len(pos), 3)), np.eye(3) * a * n


@pytest.mark.parametrize("kind,n_expected,r_expected", [("fcc", 12, 4.0 / np.sqrt(2)), ("bcc", 8, 4.0 * np.sqrt(3) / 2),
                                                        ("sc", 6, 4.0)])
def test_crystal_coordination_numbers(kind, n_expected, r_expected):
    pos, cell = lattice(kind, 4, 4.0, noise=0.04)
    tr = am.from_arrays(pos, cell, species=["Cu"] * pos.shape[1], frame_interval=1.0)
    r = am.rdf(tr, "Cu-Cu", bins=320)
    fs = r.first_shell["Cu-Cu"]
    npt.assert_allclose(fs["coordination"], n_expected)
    npt.assert_allclose(fs["r_peak_A"], r_expected, atol=0.1)


def test_triclinic_primitive_fcc_cell_gives_12_neighbours():
    # the fcc lattice in its primitive (60°) triclinic cell, replicated 5×5×5
    a = 4.0
    prim = a / 2 * np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1]], dtype=float)
    n = 5
    g = np.array([[i, j, k] for i in range(n) for j in range(n) for k in range(n)], dtype=float)
    pos = (g @ prim)[None]
    tr = am.from_arrays(pos, prim * n, species=["Cu"] * len(g), frame_interval=1.0)
    r = am.rdf(tr, "Cu-Cu", rmax=3.4, bins=340)
    npt.assert_allclose(r.coordination["Cu-Cu"][-1], 12.0)
    # a larger range than half the cell width counts every periodic image (second shell: 6 at a)
    r2 = am.rdf(tr, "Cu-Cu", rmax=4.2, bins=42)
    assert r2.meta["images"].startswith("minimum image") or r2.coordination["Cu-Cu"][-1] == 18.0
    npt.assert_allclose(r2.coordination["Cu-Cu"][-1], 18.0)


def test_ideal_gas_tends_to_one_and_free_energy_zero():
    rng = np.random.default_rng(1)
    pos = rng.uniform(0, 18, (80, 200, 3))
    sp = ["Li"] * 100 + ["O"] * 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnwrapWarning)
        tr = am.from_arrays(pos, np.eye(3) * 18, species=sp, frame_interval=1.0, style="wrapped")
        r = am.rdf(tr, ["Li-Li", "Li-O", "O-Li"], bins=15, temperature=600)
    for k in ("Li-Li", "Li-O", "O-Li"):
        npt.assert_allclose(r.g[k][5:], 1.0, atol=0.06)
        npt.assert_allclose(r.free_energy_eV[k][5:], 0.0, atol=0.06 * 8.617e-5 * 600 * 1.2)
    npt.assert_allclose(r.coordination["Li-O"][-1], 100 / 18 ** 3 * 4 / 3 * np.pi * 9 ** 3, rtol=0.03)
    assert r.meta["rmax_A"] == 9.0


def test_npt_cells_normalised_per_frame():
    rng = np.random.default_rng(2)
    frames = []
    cells = []
    for t, L in enumerate(np.linspace(14, 20, 40)):
        frames.append(rng.uniform(0, L, (150, 3)))
        cells.append(np.eye(3) * L)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnwrapWarning)
        tr = am.from_arrays(np.array(frames), np.array(cells), species=["Na"] * 150, frame_interval=1.0,
                            style="wrapped")
        r = am.rdf(tr, "Na-Na", rmax=6.5, bins=13)
    npt.assert_allclose(r.g["Na-Na"][2:], 1.0, atol=0.08)


@settings(deadline=None, max_examples=15)
@given(seed=st.integers(0, 1000), shift=st.floats(-30, 30), lat=st.integers(-2, 2))
def test_rdf_invariant_to_permutation_translation_and_lattice_shifts(seed, shift, lat):
    rng = np.random.default_rng(seed)
    cell = np.array([[11.0, 0, 0], [2.5, 10.0, 0], [-1.5, 2.0, 9.5]])
    pos = rng.uniform(0, 1, (2, 40, 3)) @ cell
    sp = np.array(["Li"] * 25 + ["P"] * 15)
    tr = am.from_arrays(pos, cell, species=sp, frame_interval=1.0)
    ref = am.rdf(tr, ["Li-Li", "Li-P"], rmax=4.5, bins=30)
    perm = rng.permutation(40)
    moved = pos[:, perm] + shift
    moved[:, ::3] += lat * cell[1]
    tr2 = am.from_arrays(moved, cell, species=sp[perm], frame_interval=1.0)
    got = am.rdf(tr2, ["Li-Li", "Li-P"], rmax=4.5, bins=30)
    for k in ref.g:
        npt.assert_allclose(got.g[k], ref.g[k], atol=1e-12)


def test_com_pairs_with_polyanions():
    # two rigid "XO4" tetrahedra and Li atoms; Li–COM distances known exactly
    tet = 1.5 / np.sqrt(3) * np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    centres = np.array([[3.0, 3.0, 3.0], [9.0, 9.0, 9.0]])
    pos = [centres[0], *(centres[0] + tet), centres[1], *(centres[1] + tet), [3.0, 3.0, 7.0], [9.0, 9.0, 5.5]]
    pos = np.array(pos)[None]
    sp = ["S", "O", "O", "O", "O", "S", "O", "O", "O", "O", "Li", "Li"]
    tr = am.from_arrays(pos, np.eye(3) * 12, species=sp, frame_interval=1.0)
    polys = am.find_polyanions(tr, center="S", ligand="O", cutoff=2.0)
    r = am.rdf(tr, ["Li-COM", "Li-S"], rmax=5.0, bins=50, polyanions=polys)
    npt.assert_allclose(r.g["Li-COM"], r.g["Li-S"])  # symmetric anions: COM = centre
    assert r.n_pairs["Li-COM"] == [2, 2]
    assert r.coordination["Li-COM"][-1] == 1.0  # each Li has one centre within 4.0 Å
    with pytest.raises(OptionError, match="pairs with COM need polyanions="):
        am.rdf(tr, "Li-COM")


def test_first_minimum_and_parse_pair():
    r = np.linspace(0.05, 5, 100)
    g = np.exp(-(r - 2) ** 2 / 0.05) * 3 + 1 - np.exp(-(r - 3) ** 2 / 0.1) * 0.8
    rp, rm = first_minimum(r, g)
    npt.assert_allclose(rp, 2.0, atol=0.05)
    npt.assert_allclose(rm, 3.0, atol=0.1)
    assert first_minimum(r[:2], g[:2]) == (None, None)
    assert parse_pair("li-p") == ("Li", "P")
    assert parse_pair(("Na", "com")) == ("Na", "COM")
    with pytest.raises(OptionError, match="invalid pair 'Li'; expected two species"):
        parse_pair("Li")


def test_errors_and_edge_cases():
    pos, cell = lattice("sc", 3, 3.0, frames=2)
    tr = am.from_arrays(pos, cell, species=["Li"] * 26 + ["P"], frame_interval=1.0)
    with pytest.raises(OptionError, match="no atoms of species Na"):
        am.rdf(tr, "Li-Na")
    with pytest.raises(OptionError, match="pair P-P: needs at least one P and one other P atom"):
        am.rdf(tr, "P-P")
    with pytest.raises(OptionError, match="bins must be a positive integer"):
        am.rdf(tr, "Li-Li", bins=0)
    with pytest.raises(OptionError, match="rmax must be a positive distance"):
        am.rdf(tr, "Li-Li", rmax=0)
    with pytest.raises(OptionError, match="temperature must be a positive number of kelvin"):
        am.rdf(tr, "Li-Li", temperature=-5)
    with pytest.raises(OptionError, match="give at least one pair"):
        am.rdf(tr, [])
    with pytest.raises(OptionError, match="no frames in the range start=5, stop=None, step=None"):
        am.rdf(tr, "Li-Li", start=5)
    one = am.rdf(tr, "Li-P", stop=1)  # one frame, one P atom
    assert one.n_frames == 1 and one.free_energy_eV is None
    d = one.to_dict()
    assert {"r_A", "g", "coordination", "free_energy_eV"} <= set(d)


def test_cli_rdf(tmp_path, monkeypatch):
    from anionmotion.cli import main
    import anionmotion.cli.rdf as cr

    pos, cell = lattice("bcc", 3, 3.5, noise=0.03)
    sp = ["Li", "P"] * 27
    tr = am.from_arrays(pos, cell, species=sp, frame_interval=1.0)
    monkeypatch.setattr(cr, "open_from_args", lambda args, path=None: tr)
    js, csv, png = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "r.png"
    assert main(["rdf", "x.lammpstrj", "--pair", "Li-Li", "--pair", "Li-P", "--rmax", "5", "--bins", "100",
                 "--temperature", "500", "--json", str(js), "--csv", str(csv), "--plot", str(png)]) == 0
    d = json.loads(js.read_text())
    assert {"r_A", "g", "coordination", "free_energy_eV"} <= set(d)
    assert set(d["g"]) == {"Li-Li", "Li-P"}
    npt.assert_allclose(d["first_shell"]["Li-P"]["coordination"], 8.0)
    assert csv.read_text().startswith("r_A,g_Li-Li,g_Li-P,n_Li-Li,n_Li-P,F_Li-Li_eV")
    assert png.stat().st_size > 1000
    assert main(["rdf", "x.lammpstrj", "--pair", "Li", "--json", str(tmp_path / "z.json")]) == 2
