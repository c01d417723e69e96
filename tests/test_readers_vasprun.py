"""VASP vasprun.xml reader (anionmotion.io.vasprun) on dpdata's test files."""

import gzip
import os

import ase.io as ase_io
import numpy as np
import numpy.testing as npt
import pytest

import anionmotion
from anionmotion.errors import FormatError, TrajectoryError, TruncatedFileWarning
from anionmotion.io import detect_format
from anionmotion.io.vasprun import scan_steps

DATA = os.path.join(os.path.dirname(__file__), "data", "vasprun")
H2O = os.path.join(DATA, "vasprun.h2o.md.xml")
TRI = os.path.join(DATA, "vasprun.h2o.md.tribox.xml")
TI = os.path.join(DATA, "Ti-aimd-nwrite0.vasprun.xml.gz")


def test_detect_by_name_and_content(tmp_path):
    assert detect_format(H2O) == "vasprun"
    assert detect_format(TI) == "vasprun"          # gzip, name vasprun*.xml
    other = tmp_path / "run.out"
    other.write_bytes(open(H2O, "rb").read())
    assert detect_format(other) == "vasprun"       # by the <modeling>/<generator> content


def test_h2o_md_values():
    t = anionmotion.open(H2O, unwrap=False)
    assert t.format == "vasprun"
    assert (t.n_atoms, t.n_frames) == (6, 3)
    assert list(t.species) == ["O", "O", "H", "H", "H", "H"]
    npt.assert_allclose(t.masses, [16, 16, 1, 1, 1, 1])          # atomtypes masses of the file
    npt.assert_allclose(t.times, [0.0, 0.001, 0.002])             # IBRION=0, POTIM=1 fs
    cell = [[10, 0, 0], [-0.011409, 10, 0], [0.1411083, -0.0595569, 10]]
    npt.assert_allclose(t.cells, np.broadcast_to(cell, (3, 3, 3)))
    c = t.read()
    frac0 = [[0.428, 0.424, 0.52], [0.23, 0.628, 0.113]]
    npt.assert_allclose(c.positions[0, :2], np.asarray(frac0) @ np.asarray(cell), atol=1e-8)
    assert not t.has_velocities
    assert t._reader.metadata["POTIM_fs"] == 1.0 and t._reader.metadata["IBRION"] == 0


def test_tribox_cell_and_last_step():
    t = anionmotion.open(TRI, unwrap=False)
    tri = np.array([[0, 5, 5], [4.5, 0, 5], [5.5, 5.1, 0]], float)   # thirdparty MANIFEST §9
    npt.assert_allclose(t.cells, np.broadcast_to(tri, (3, 3, 3)))
    c = t.read(frames=slice(2, 3))
    frac = np.array([0.43938499, 0.44107487, 0.49574079])
    npt.assert_allclose(c.positions[0, 0], frac @ tri, atol=1e-7)
    ref = ase_io.read(TRI, index=":")
    assert len(ref) == 3
    for k, at in enumerate(ref):
        npt.assert_allclose(t.cells[k], at.cell.array, atol=1e-7)
        npt.assert_allclose(t.read(frames=slice(k, k + 1)).fractional(wrap=False)[0],
                            at.get_scaled_positions(wrap=False), atol=1e-7)


def test_gzip_ti_run_and_atom_selection():
    t = anionmotion.open(TI, unwrap=False)
    assert (t.n_atoms, t.n_frames) == (32, 10)
    assert set(t.species) == {"Ti"}
    npt.assert_allclose(t.masses, 47.88)
    npt.assert_allclose(t.times, np.arange(10) * 0.002)          # POTIM = 2 fs
    npt.assert_allclose(t.cells[0], np.diag([5.87198, 10.16561, 9.29538]), atol=1e-5)
    c = t.read(atoms=[0, 2], frames=slice(9, 10))
    frac = np.array([[0.03393815, 0.04567479, 0.11975627], [0.29417326, 0.13431004, 0.37000731]])
    npt.assert_allclose(c.positions[0], frac @ t.cells[9], atol=1e-6)


def _cut(tmp_path, name, frac_of_step):
    """Cut H2O inside its last step: frac_of_step = 0 → just after <calculation>, 1 → its </calculation>."""
    raw = open(H2O, "rb").read()
    last = raw.rfind(b"<calculation>")
    end = raw.find(b"</calculation>", last)
    p = tmp_path / name
    p.write_bytes(raw[: last + int(frac_of_step * (end - last))])
    return p


def test_truncated_keeps_complete_steps(tmp_path):
    p = _cut(tmp_path, "vasprun.cut.xml", 0.05)         # inside the scsteps of step 2
    with pytest.warns(TruncatedFileWarning, match=r"ends inside ionic step 2 .* keeping the 2 complete step"):
        t = anionmotion.open(p, unwrap=False)
    assert t.n_frames == 2
    ref = anionmotion.open(H2O, unwrap=False)
    npt.assert_allclose(t.read().positions, ref.read(frames=slice(0, 2)).positions)
    # cut after the structure of the last step: all 3 kept, still a warning
    raw = open(H2O, "rb").read()
    q = tmp_path / "vasprun.cut2.xml"
    q.write_bytes(raw[: raw.rfind(b"</calculation>")])
    with pytest.warns(TruncatedFileWarning, match="no </calculation>"):
        assert anionmotion.open(q, unwrap=False).n_frames == 3
    # gzip of a cut file
    g = tmp_path / "vasprun.cut.xml.gz"
    g.write_bytes(gzip.compress(open(p, "rb").read()))
    with pytest.warns(TruncatedFileWarning):
        assert anionmotion.open(g, unwrap=False).n_frames == 2


def test_missing_potim_and_not_md(tmp_path):
    raw = open(H2O, "rb").read()
    no_potim = raw.replace(b'name="POTIM"', b'name="XPOTIM"')
    p = tmp_path / "vasprun.nopotim.xml"
    p.write_bytes(no_potim)
    with pytest.raises(TrajectoryError, match=r"POTIM is missing, so the steps have no times; give .*--frame-interval"):
        anionmotion.open(p)
    t = anionmotion.open(p, frame_interval=0.5, unwrap=False)
    npt.assert_allclose(t.times, [0, 0.5, 1.0])
    relax = raw.replace(b'<i type="int" name="IBRION">     0</i>', b'<i type="int" name="IBRION">     2</i>')
    q = tmp_path / "vasprun.relax.xml"
    q.write_bytes(relax)
    with pytest.raises(TrajectoryError, match=r"IBRION = 2 is not molecular dynamics.*--frame-interval"):
        anionmotion.open(q)


def test_bad_inputs(tmp_path):
    raw = open(H2O, "rb").read()
    p = tmp_path / "vasprun.nocalc.xml"
    p.write_bytes(raw[: raw.find(b"<calculation>")])
    with pytest.raises(TrajectoryError, match="no ionic step"):
        anionmotion.open(p)
    q = tmp_path / "vasprun.badnum.xml"
    first = raw.find(b"<calculation>")
    k = raw.find(b'<varray name="positions"', first)
    q.write_bytes(raw[:k] + raw[k:].replace(b"0.", b"x.", 1))
    with pytest.raises(TrajectoryError, match=r"frame 0: non-numeric value in <varray name=\"positions\">"):
        anionmotion.open(q, unwrap=False).read()
    r = tmp_path / "vasprun.elem.xml"
    r.write_bytes(raw.replace(b"<rc><c>O </c><c>   1</c></rc>", b"<rc><c>Qq </c><c>   1</c></rc>", 1))
    with pytest.raises(TrajectoryError, match="unknown element in <atominfo> 'Qq'"):
        anionmotion.open(r)
    s = tmp_path / "notvasp.xml"
    s.write_text("<?xml version='1.0'?><root/>")
    with pytest.raises(FormatError, match="not a vasprun.xml"):
        anionmotion.open(s, format="vasprun")


def test_scan_block_boundaries(monkeypatch):
    """Token offsets do not depend on where the scan's read blocks end."""
    import io

    import anionmotion.io.vasprun as vr
    raw = open(H2O, "rb").read()
    ref = scan_steps(io.BytesIO(raw))
    for block in (7, 13, 64, 1000):
        monkeypatch.setattr(vr, "_BLOCK", block)
        got = scan_steps(io.BytesIO(raw))
        npt.assert_array_equal(got[0], ref[0])
        assert got[1:] == ref[1:]
    assert ref[2] == 3 and ref[3] and len(ref[0]) == 3
    for a, b in ref[0]:
        assert raw[a:a + 10] == b"<structure" and raw[b - 12:b] == b"</structure>"


def test_variable_cell_per_step(tmp_path):
    """NPT runs: every step's own basis is used (the last step's cell edited here)."""
    raw = open(H2O, "rb").read()
    last = raw.rfind(b"<calculation>")
    k = raw.find(b'<varray name="basis"', last)
    old = b"      10.00000000       0.00000000       0.00000000 "
    j = raw.find(old, k)
    p = tmp_path / "vasprun.npt.xml"
    p.write_bytes(raw[:j] + b"      11.00000000       0.00000000       0.00000000 " + raw[j + len(old):])
    t = anionmotion.open(p, unwrap=False)
    npt.assert_allclose(t.cells[:, 0, 0], [10, 10, 11])
    frac = anionmotion.open(H2O, unwrap=False).read().fractional(wrap=False)
    npt.assert_allclose(t.read().fractional(wrap=False), frac, atol=1e-12)   # same fractional coordinates
