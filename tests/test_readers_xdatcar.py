"""VASP XDATCAR reader: real files, malformed variants, variable cells, exact round trips."""

import gzip

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anionmotion
from anionmotion.errors import FormatError, OptionError, TrajectoryError, TruncatedFileWarning

from conftest import data_path


def write_xdatcar(path, species, counts, frac, cells, *, variable=False, scale=1.0, blank=False, vasp4=False,
                  cartesian=False):
    """Minimal XDATCAR writer (repr floats)."""

    def header(cell):
        h = ["test system", repr(float(scale))]
        h += [" ".join(repr(float(x)) for x in row) for row in cell]
        if not vasp4:
            h.append(" ".join(species))
        h.append(" ".join(str(c) for c in counts))
        return h

    lines = []
    for t in range(len(frac)):
        if t == 0 or variable:
            lines += header(cells[t])
        if blank:
            lines.append("")
        else:
            lines.append(("Cartesian" if cartesian else "Direct") + f" configuration= {t + 1:5d}")
        rows = frac[t] @ cells[t] if cartesian else frac[t]  # file Cartesian × scale = Å
        lines += ["  " + " ".join(repr(float(x)) for x in r) for r in rows]
    text = "\n".join(lines) + "\n"
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        open(path, "w").write(text)


# ----------------------------------------------------------------------------- real files
def test_iondiff_ok_header_facts():
    t = anionmotion.open(data_path("xdatcar", "iondiff", "XDATCAR_ok"), frame_interval=1.5e-3 * 10)
    assert t.format == "xdatcar"
    assert (t.n_atoms, t.n_frames) == (382, 2)
    assert t.species_counts() == {"Li": 110, "La": 48, "Zr": 32, "O": 192}
    npt.assert_array_equal(t.cells[0], np.diag([13.2, 13.2, 25.3]))
    npt.assert_allclose(t.times, [0, 0.015])
    c = t.read()
    npt.assert_allclose(c.fractional()[0, 0], [0.5, 0.0, 0.875])
    assert t.coord_style == "fractional"


@pytest.mark.parametrize("variant,line,message", [
    ("scale_wrong", 2, r"expected the scale factor .* found 'scale'"),
    ("cell_wrong", 3, r"expected lattice vector a \(three numbers, Å\); found 'cell 0.0  0.0'"),
    ("composition_wrong", 7, r"the species line names 11 species .* but the counts line gives 4 numbers"),
    ("pos_wrong", 390, r"frame 0 has only 381 coordinate rows before the next configuration line "
                       r"'Direct configuration=    10'; the header declares 382 atoms"),
])
def test_iondiff_malformed_variants(variant, line, message):
    with pytest.raises(TrajectoryError, match=message) as err:
        anionmotion.open(data_path("xdatcar", "iondiff", f"XDATCAR_{variant}"), frame_interval=0.015)
    assert err.value.line == line
    assert f"line {line}" in str(err.value)


def test_mdanse_blank_separator_monoclinic():
    t = anionmotion.open(data_path("xdatcar", "XDATCAR_version5"), frame_interval=0.001)
    assert (t.n_atoms, t.n_frames) == (210, 57)
    assert t.species_counts() == {"O": 138, "Mo": 20, "Bi": 52}
    npt.assert_array_equal(t.cells[0], [[11.443813, 0.0, -2.629392], [0.0, 23.199999, 0.0], [0.0, 0.0, 12.384999]])
    c = t.read(frames=slice(1, 2))
    s = c.fractional(wrap=False)[0, :2]
    npt.assert_allclose(s, [[0.97622102, 0.18216745, 0.47349386], [0.99663946, 0.41579391, 0.50700768]],
                        atol=1e-12)
    assert not t.metadata["variable_cell"]


def test_argyrodite_gzip_real_run():
    t = anionmotion.open(data_path("xdatcar", "argyrodite_0p_run1_XDATCAR.gz"), frame_interval=0.1)
    assert (t.n_atoms, t.n_frames) == (416, 140)
    assert t.species_counts() == {"Li": 192, "Cl": 32, "S": 160, "P": 32}
    npt.assert_allclose(np.linalg.norm(t.cells[0], axis=1), 20.3123, atol=2e-4)
    assert abs(t.cells[0, 0, 1]) > 0  # the full 3×3 matrix with ~1e-4 off-diagonals
    npt.assert_allclose(t.times[-1], 13.9)
    c = t.read(atoms="P")  # P (PS4 centres) stay on their sites: sub-Å displacements
    d = np.linalg.norm(c.positions - c.positions[0], axis=-1)
    assert d.max() < 2.0
    li = t.read(atoms="Li")
    msd = np.mean(np.sum((li.positions[-1] - li.positions[0]) ** 2, axis=-1))
    assert 1.0 < msd < 100.0  # Å² after 13.9 ps at 500 K, no unwrapping jumps of ~20 Å


def test_needs_frame_interval():
    t = anionmotion.open(data_path("xdatcar", "example_center.XDATCAR"))
    with pytest.raises(OptionError, match=r"frame_interval= / --frame-interval \(ps; for VASP, POTIM × NBLOCK"):
        t.times


# ----------------------------------------------------------------------------- round trips
@settings(deadline=None, max_examples=20)
@given(n_frames=st.integers(1, 5), counts=st.lists(st.integers(1, 3), min_size=1, max_size=3),
       variable=st.booleans(), blank=st.booleans(), gz=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_round_trip_exact(tmp_path_factory, n_frames, counts, variable, blank, gz, seed):
    rng = np.random.default_rng(seed)
    species = ["Li", "P", "S"][: len(counts)]
    n = sum(counts)
    cells = np.empty((n_frames, 3, 3))
    for k in range(n_frames):
        cells[k] = np.diag(rng.uniform(5, 10, 3))
        cells[k][1, 0], cells[k][2, 0], cells[k][2, 1] = rng.uniform(-1, 1, 3)
    if not variable:
        cells[:] = cells[0]
    frac = rng.uniform(0, 1, (n_frames, n, 3))
    p = tmp_path_factory.mktemp("x") / ("XDATCAR.gz" if gz else "XDATCAR")
    write_xdatcar(p, species, counts, frac, cells, variable=variable, blank=blank and not variable)
    t = anionmotion.open(p, frame_interval=0.01, unwrap=False)
    assert t.metadata["variable_cell"] == (variable and n_frames > 1)
    npt.assert_array_equal(t.cells, cells)
    raw = t._reader.read(0, n_frames)
    assert raw.style == "fractional"
    npt.assert_array_equal(raw.coords, frac)
    assert list(t.species) == [s for s, c in zip(species, counts) for _ in range(c)]


def test_variable_cell_unwrapping_recovers_walk(tmp_path):
    rng = np.random.default_rng(1)
    n_frames, n = 30, 4
    cells = np.array([np.diag([8.0, 9.0, 10.0]) * (1 + 0.01 * np.sin(k)) for k in range(n_frames)])
    walk = np.cumsum(rng.normal(scale=0.02, size=(n_frames, n, 3)), axis=0)  # fractional walk
    write_xdatcar(tmp_path / "XDATCAR", ["Na", "Cl"], [2, 2], walk - np.floor(walk), cells, variable=True)
    c = anionmotion.open(tmp_path / "XDATCAR", frame_interval=0.01).read()
    npt.assert_allclose(c.positions, np.einsum("tik,tkl->til", walk - np.floor(walk[0]), cells), atol=1e-9)


def test_cartesian_negative_scale_and_vasp4(tmp_path):
    rng = np.random.default_rng(2)
    cell = np.diag([4.0, 5.0, 6.0])
    frac = rng.uniform(0, 1, (2, 3, 3))
    # negative scale = target volume: 120 Å³ → lattice × (120/volume)^(1/3)
    write_xdatcar(tmp_path / "neg", ["Li", "O"], [2, 1], frac, np.array([cell, cell]) / 2, scale=-120.0)
    t = anionmotion.open(tmp_path / "neg", format="xdatcar", frame_interval=1)
    npt.assert_allclose(t.cells[0], cell, rtol=1e-14)
    # Cartesian coordinates (Å × scale)
    write_xdatcar(tmp_path / "cart", ["Li", "O"], [2, 1], frac, np.array([cell, cell]) / 2, scale=2.0,
                  cartesian=True)
    t = anionmotion.open(tmp_path / "cart", format="xdatcar", frame_interval=1, unwrap=False)
    npt.assert_allclose(t.read().positions, frac @ cell, atol=1e-12)
    assert t.coord_style == "wrapped"
    # VASP 4: no species line → types= needed
    write_xdatcar(tmp_path / "v4", ["Li", "O"], [2, 1], frac, np.array([cell, cell]), vasp4=True)
    with pytest.raises(TrajectoryError, match=r"line 6: VASP 4 XDATCAR without a species line; give the species "
                                              r"in order with types= / --types"):
        anionmotion.open(tmp_path / "v4", format="xdatcar")
    t = anionmotion.open(tmp_path / "v4", format="xdatcar", types="1=Li,2=O", frame_interval=1)
    assert list(t.species) == ["Li", "Li", "O"]
    with pytest.raises(TrajectoryError, match=r"types= has no element for species number\(s\) \[2\]"):
        anionmotion.open(tmp_path / "v4", format="xdatcar", types="1=Li")


def test_potcar_style_species_names(tmp_path):
    cell = np.eye(3) * 5
    write_xdatcar(tmp_path / "XDATCAR", ["Li_sv", "P", "S_GW"], [1, 1, 1], np.zeros((1, 3, 3)), np.array([cell]))
    assert list(anionmotion.open(tmp_path / "XDATCAR").species) == ["Li", "P", "S"]


# ----------------------------------------------------------------------------- bad input
def test_truncated_last_frame(tmp_path):
    cell = np.eye(3) * 5
    write_xdatcar(tmp_path / "XDATCAR", ["Li"], [3], np.full((3, 3, 3), 0.25), np.array([cell] * 3))
    lines = (tmp_path / "XDATCAR").read_text().splitlines()
    (tmp_path / "XDATCAR").write_text("\n".join(lines[:-2]) + "\n")
    with pytest.warns(TruncatedFileWarning, match=r"last frame \(frame 2\) is incomplete \(1 of 3 coordinate rows"):
        t = anionmotion.open(tmp_path / "XDATCAR", frame_interval=1)
    assert t.n_frames == 2
    (tmp_path / "XDATCAR").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:8])  # cut mid-row
    with pytest.warns(TruncatedFileWarning):
        assert anionmotion.open(tmp_path / "XDATCAR", frame_interval=1).n_frames == 2


def test_nan_bad_number_atom_count_change(tmp_path):
    cell = np.eye(3) * 5
    write_xdatcar(tmp_path / "X1", ["Li"], [2], np.full((2, 2, 3), 0.25), np.array([cell] * 2))
    text = (tmp_path / "X1").read_text().splitlines()
    text[-1] = "  0.1 NaN 0.2"
    (tmp_path / "X1").write_text("\n".join(text) + "\n")
    with pytest.raises(TrajectoryError, match=r"frame 1, atom 1: coordinates contain nan"):
        anionmotion.open(tmp_path / "X1", format="xdatcar", frame_interval=1).read()
    text[-1] = "  0.1 0.x 0.2"
    (tmp_path / "X1").write_text("\n".join(text) + "\n")
    with pytest.raises(TrajectoryError, match=r"line 13, frame 1, atom 1: value 2 of this atom row is not a number"):
        anionmotion.open(tmp_path / "X1", format="xdatcar", frame_interval=1).read()
    # variable cell whose counts change
    write_xdatcar(tmp_path / "X2", ["Li"], [2], np.full((2, 2, 3), 0.25), np.array([cell] * 2), variable=True)
    text = (tmp_path / "X2").read_text().splitlines()
    text[10 + 6] = "3"
    text.insert(20, "  0.5 0.5 0.5")
    (tmp_path / "X2").write_text("\n".join(text) + "\n")
    with pytest.warns(TruncatedFileWarning):  # the extra row looks like the start of a cut-off frame
        with pytest.raises(TrajectoryError, match=r"frame 1: the atom counts change between frames: '3', frame 0 "
                                                  r"has 2"):
            anionmotion.open(tmp_path / "X2", format="xdatcar", frame_interval=1).cells


def test_zero_volume_empty_binary(tmp_path):
    write_xdatcar(tmp_path / "Z", ["Li"], [1], np.zeros((1, 1, 3)), np.array([np.diag([5.0, 5.0, 0.0])]))
    with pytest.raises(TrajectoryError, match=r"frame 0: cell volume is 0"):
        anionmotion.open(tmp_path / "Z", format="xdatcar", frame_interval=1).read()
    (tmp_path / "E").write_bytes(b"")
    with pytest.raises(FormatError, match="empty file; expected a VASP XDATCAR"):
        anionmotion.open(tmp_path / "E", format="xdatcar")
    (tmp_path / "B").write_bytes(b"sys\n\x00\x00\x00")
    with pytest.raises(FormatError, match="binary data"):
        anionmotion.open(tmp_path / "B", format="xdatcar")
    write_xdatcar(tmp_path / "U", ["Qq"], [1], np.zeros((1, 1, 3)), np.array([np.eye(3)]))
    with pytest.raises(TrajectoryError, match=r"unknown species 'Qq'"):
        anionmotion.open(tmp_path / "U", format="xdatcar")


def test_crlf_line_endings(tmp_path):
    src = open(data_path("xdatcar", "example_center.XDATCAR"), "rb").read()
    (tmp_path / "XDATCAR").write_bytes(src.replace(b"\n", b"\r\n"))
    a = anionmotion.open(tmp_path / "XDATCAR", frame_interval=1).read()
    b = anionmotion.open(data_path("xdatcar", "example_center.XDATCAR"), frame_interval=1).read()
    npt.assert_array_equal(a.positions, b.positions)
