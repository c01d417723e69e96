"""VASP OUTCAR reader (anionmotion.io.outcar), checked against the vasprun.xml of the same run."""

import gzip
import os

import numpy.testing as npt
import pytest

import anionmotion
from anionmotion.errors import FormatError, TrajectoryError, TruncatedFileWarning
from anionmotion.io import detect_format

DATA = os.path.join(os.path.dirname(__file__), "data", "vasprun")
OUTCAR = os.path.join(DATA, "OUTCAR.h2o.md")
VASPRUN = os.path.join(DATA, "vasprun.h2o.md.xml")


def test_matches_vasprun_of_the_same_run():
    assert detect_format(OUTCAR) == "outcar"
    t = anionmotion.open(OUTCAR, unwrap=False)
    ref = anionmotion.open(VASPRUN, unwrap=False)
    assert (t.n_atoms, t.n_frames) == (6, 3)
    assert list(t.species) == ["O", "O", "H", "H", "H", "H"]
    npt.assert_allclose(t.masses, [16, 16, 1, 1, 1, 1])            # POMASS
    npt.assert_allclose(t.times, [0, 0.001, 0.002])                 # IBRION 0, POTIM 1 fs
    npt.assert_allclose(t.cells, ref.cells)
    npt.assert_allclose(t.read().positions, ref.read().positions, atol=1e-5)   # OUTCAR prints 5 decimals
    npt.assert_allclose(t.read(atoms=[1], frames=slice(0, 1)).positions[0, 0], [2.30878, 6.27327, 1.13])


def test_truncated_and_gzip(tmp_path):
    raw = open(OUTCAR, "rb").read()
    last = raw.rfind(b"POSITION ")
    p = tmp_path / "OUTCAR.cut"
    p.write_bytes(raw[: last + 300])                 # inside the rows of step 2
    with pytest.warns(TruncatedFileWarning, match="ends inside ionic step 2; keeping the 2 complete step"):
        t = anionmotion.open(p, unwrap=False)
    assert t.n_frames == 2
    g = tmp_path / "OUTCAR.gz"
    g.write_bytes(gzip.compress(raw))
    npt.assert_allclose(anionmotion.open(g, unwrap=False).read().positions,
                        anionmotion.open(OUTCAR, unwrap=False).read().positions)


def test_missing_potim_and_bad_files(tmp_path):
    raw = open(OUTCAR, "rb").read()
    p = tmp_path / "OUTCAR.nopotim"
    p.write_bytes(raw.replace(b"   POTIM  =", b"   XPOTIM =", 1))
    with pytest.raises(TrajectoryError, match=r"POTIM is missing, so the steps have no times; give .*--frame-interval"):
        anionmotion.open(p)
    npt.assert_allclose(anionmotion.open(p, frame_interval=0.01).times, [0, 0.01, 0.02])
    q = tmp_path / "OUTCAR.short"
    row = raw.find(b"4.34854      4.20903")                   # first coordinate row of step 0
    a, b = raw.rfind(b"\n", 0, row) + 1, raw.find(b"\n", row) + 1
    q.write_bytes(raw[:a] + raw[b:])                          # step 0 loses one row
    with pytest.raises(TrajectoryError, match="frame 0: the POSITION block has 5 rows; 'ions per type' gives 6"):
        anionmotion.open(q)
    r = tmp_path / "OUTCAR.other"
    r.write_text("hello\nworld\n")
    with pytest.raises(FormatError, match="not a VASP OUTCAR"):
        anionmotion.open(r, format="outcar")
