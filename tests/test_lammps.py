"""LAMMPS dump text reader: real files with upstream reference values, engine MSDs, bad input, properties."""

import bz2
import gzip
import os
import shutil
import warnings

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anionmotion
from anionmotion.cli import main as cli_main
from anionmotion.errors import FormatError, OptionError, TrajectoryError, TruncatedFileWarning
from anionmotion.io import lammps as lmp
from anionmotion.io.base import ReaderOptions
from anionmotion.kernels import lammps as K

from conftest import data_path

L = lambda *p: data_path("lammps", *p)  # noqa: E731
LI2SO4 = {1: "Li", 2: "S", 3: "O"}


@pytest.fixture(autouse=True)
def _fresh_cache():
    lmp.clear_index_cache()
    yield
    lmp.clear_index_cache()


def reader(path, **kw):
    opts = ReaderOptions(**kw)
    return lmp.LammpsDumpReader(path, opts)


def write(path, text):
    with open(path, "w") as fh:
        fh.write(text)
    return str(path)


def frame_text(step, n, body, box=("0 10", "0 10", "0 10"), cols="id type x y z", boxhdr="pp pp pp"):
    return (f"ITEM: TIMESTEP\n{step}\nITEM: NUMBER OF ATOMS\n{n}\nITEM: BOX BOUNDS {boxhdr}\n"
            + "\n".join(box) + f"\nITEM: ATOMS {cols}\n" + body)


SIMPLE = "1 1 1.0 2.0 3.0\n2 2 4.0 5.0 6.0\n3 1 7.0 8.0 9.0\n"


# ----------------------------------------------------------------------------------- float parser kernel
@settings(deadline=None, max_examples=60)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=50),
       st.sampled_from(["%g", "%.6g", "%.10g", "%.17g", "%.3f", "%e", "%.12e", "%r"]))
def test_float_parser_equals_python_float(values, fmt):
    text = " ".join((repr(v) if fmt == "%r" else fmt % v) for v in values).encode()
    npt.assert_array_equal(K.parse_floats(text), K.parse_floats_ref(text))


def test_float_parser_special_tokens():
    text = b"nan -nan inf -inf 1e-400 1e400 -0.0 0 +3 .5 5. 1.5E+3 12345678901234567890123 0.000000001234"
    got, ref = K.parse_floats(text), K.parse_floats_ref(text)
    npt.assert_array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    npt.assert_array_equal(got[ok], ref[ok])
    assert np.signbit(got[6])
    with pytest.raises(ValueError, match="not a number: b'1.2.3'"):
        K.parse_floats(b"1 2 1.2.3")
    with pytest.raises(ValueError, match="not a number: b'abc'"):
        K.parse_floats(b"abc")


def test_parse_frames_matches_numpy_twin():
    r = reader(L("li2so4_ortho_T1000.first60.lammpstrj.gz"), types=LI2SO4)
    ix = r._index
    data = r._read_bytes(int(ix.offsets[3]), int(ix.ends[6]))
    starts = ix.atoms_offsets[3:7] - ix.offsets[3]
    sel = np.array([0, 5, 100, 503])
    idx2out = np.full(r.n_atoms, -1, dtype=np.int64)
    idx2out[sel] = np.arange(len(sel))
    a = np.full((4, len(sel), r._nvals), np.nan)
    b = a.copy()
    e1, e2 = np.zeros(4, np.int64), np.zeros(4, np.int64)
    assert K.parse_frames(data, starts, r.n_atoms, r._roles, r._id2idx, idx2out, a, np.zeros(r.n_atoms, np.int64),
                          1, e1) == 0
    assert K.parse_frames_ref(data, starts, r.n_atoms, r._roles, r._id2idx, idx2out, b, None, 1, e2) == 0
    npt.assert_array_equal(a, b)


# ------------------------------------------------------------------------ real files, upstream values
def test_spce_all_coords_prefers_unwrapped_bz2():
    # MDAnalysis TestCoordinateMatches: atom id 340 unwrapped in frames 0-2
    t = anionmotion.open(L("spce_all_coords.lammpstrj.bz2"), types="1=O,2=H", timestep=0.001)
    assert (t.n_atoms, t.n_frames) == (4500, 11)
    assert t.coord_style == "unwrapped" and t.units["coordinates"].startswith("xu yu zu")
    c = t.read(frames=slice(0, 3))
    npt.assert_allclose(c.positions[:, 339], [[4.48355, 35.8378, 1.59231], [4.41947, 35.4403, 2.25115],
                                              [4.48989, 35.867, 2.63623]], atol=1e-6)
    npt.assert_allclose(c.origins[0], [0.02645, 0.02645, 0.02641], atol=1e-12)
    npt.assert_allclose(t.times[:3], [0.0, 0.1, 0.2])


def test_image_vf_unwrapped_with_image_flags():
    t = anionmotion.open(L("image_vf.lammpstrj"), types="1=O,2=H", timestep=0.001)
    assert t.coord_style == "image" and t.has_velocities
    raw = t._reader.read(0, 3)
    npt.assert_allclose(raw.coords[-1, 0], [2.56616, 6.11565, 7.37956])
    npt.assert_array_equal(raw.images[-1, 0], [3, 1, -4])
    c = t.read()
    npt.assert_allclose(c.positions[-1, 0], np.array([2.56616, 6.11565, 7.37956]) + np.array([3, 1, -4]) * 10.0)
    npt.assert_array_equal(t.steps, [0, 1000, 2000])


def test_albite_triclinic_box_conversion():
    t = anionmotion.open(L("albite_triclinic.dump"), types="1=Na,2=Al,3=Si,4=O,5=Na,6=Al", frame_interval=1.0)
    xlo, xhi = -0.32115478301032807, 16.831069399898624
    ylo, yhi = -0.12372358703610897, 25.95896427399614
    zlo, zhi = -0.045447071698045266, 12.993982724334792
    xy, xz, yz = 1.506743915478767, -6.266414551929444, -0.42179319547892025
    npt.assert_allclose(t.cells[0], [[xhi - xlo, 0, 0], [xy, yhi - ylo, 0], [xz, yz, zhi - zlo]], atol=1e-5)
    c = t.read()
    npt.assert_allclose(c.origins[0], [xlo, ylo, zlo], atol=1e-5)
    # scaled coordinates → Cartesian with the box: fractional coordinates come back
    s = c.fractional(wrap=False)
    assert np.all(s > -1e-9) and np.all(s < 1 + 1e-9)


@pytest.mark.parametrize("name", ["wat.lammpstrj.bz2", "WIN_wat.lammpstrj"])
def test_wat_box_per_frame_unsorted_ids_crlf(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", anionmotion.UnwrapWarning)
        t = anionmotion.open(L(name), types="1=O,2=H", timestep=0.001)
        r = t._reader
        assert t.n_atoms == 24 and t.n_frames == 3
        npt.assert_array_equal(r.atom_ids, np.arange(1, 25))  # file order has atom 13 fourth
        side = 5.9857213287522608 - 0.21427867124774069
        npt.assert_allclose(t.cells[1], np.eye(3) * side, atol=1e-12)
        raw = r.read(1, 2)
        lo = 0.21427867124774069
        npt.assert_allclose(raw.origins[0], [lo] * 3)
        # MDAnalysis asserts scaled·box − lo (origin moved to 0); anionmotion keeps the box lo
        npt.assert_allclose(raw.coords[0, 0], np.array([0.278215, 0.12611, 0.322087]) * side + lo, atol=1e-9)


def test_crlf_equals_lf():
    a = reader(L("WIN_wat.lammpstrj"), types={1: "O", 2: "H"})
    b = reader(L("wat.lammpstrj.bz2"), types={1: "O", 2: "H"})
    npt.assert_array_equal(a.read(0, 3).coords, b.read(0, 3).coords)
    npt.assert_array_equal(a.read_cells(0, 3), b.read_cells(0, 3))


def test_mass_q_element_columns():
    t = anionmotion.open(L("mass_q_elem.lammpstrj"), frame_interval=1.0)
    assert t.species_counts() == {"C": 10, "H": 14, "O": 3, "N": 3}
    npt.assert_allclose(t.masses[:2], [12.011, 1.008])  # from the mass column, not the element table
    npt.assert_allclose(t.charges[:2], [-0.27, 0.09])


def test_unknown_element_kept():
    t = anionmotion.open(L("nomass_elemx.lammpstrj"), frame_interval=1.0)
    assert list(t.species) == ["C", "X", "H", "H", "C"]
    assert np.isnan(t.masses[1])


def test_mass_column_to_nearest_element(tmp_path):
    body = "1 1 6.941 1 1 1\n2 2 32.06 2 2 2\n3 3 15.9994 3 3 3\n"
    p = write(tmp_path / "m.dump", frame_text(0, 3, body, cols="id type mass x y z"))
    t = anionmotion.open(p, frame_interval=1.0)
    assert list(t.species) == ["Li", "S", "O"]
    npt.assert_allclose(t.masses, [6.941, 32.06, 15.9994])
    p = write(tmp_path / "m2.dump", frame_text(0, 1, "1 1 1000.5 1 1 1\n", cols="id type mass x y z"))
    with pytest.raises(OptionError, match=r"mass 1000.5 \(type 1\) matches no element.*--types"):
        anionmotion.open(p)


def test_mdtraj_frame0_against_netcdf():
    import netCDF4  # noqa: F401  (a dependency: the comparison must run)
    t = anionmotion.open(L("frame0.lammpstrj"), types=",".join(f"{i}=C" for i in range(1, 15)), timestep=0.001)
    c = t.read()
    with netCDF4.Dataset(L("frame0.nc")) as d:
        ref = np.asarray(d.variables["coordinates"][:], dtype=np.float64)
    assert c.positions.shape == ref.shape == (501, 22, 3)
    npt.assert_allclose(c.positions, ref, atol=2e-5)
    npt.assert_allclose(c.positions[0, :3], [[4.29, 13.1, 8.59], [5.2, 13.6, 8.8], [4.89, 14.3, 9.6]])


def test_mdtraj_custom_shuffled_columns():
    t = anionmotion.open(L("custom.lammpstrj"), frame_interval=1.0)
    assert t.n_atoms == 9 and t.n_frames == 6
    c = t.read()
    npt.assert_allclose(c.positions[0, 0], [27.11, 29.46, 28.03])   # columns are "... x type z y"
    npt.assert_allclose(c.positions[0, 3], [28.04, 29.57, 29.07])
    npt.assert_allclose(t.charges[:2], [0.145, 0.06])
    # the type column wins over the element column when --types is given
    t2 = anionmotion.open(L("custom.lammpstrj"), frame_interval=1.0, types="1=C,2=H,3=O,4=N")
    assert list(t2.species[:5]) == ["C", "H", "H", "O", "N"]


def test_dpdata_triclinic_cell_and_positions():
    t = anionmotion.open(L("dpdata", "conf.dump"), types="1=O,2=H", timestep=0.001)
    npt.assert_allclose(t.cells[0], [[2.5243712, 0, 0], [1.2621856, 2.0430257, 0], [1.2874292, 0.7485898, 2.2254033]],
                        atol=1e-6)
    raw = t._reader.read(0, 1)
    npt.assert_allclose(raw.coords[0], [[0, 0, 0], [1.2621856, 0.7018028, 0.5513885]], atol=1e-7)
    assert reader(L("dpdata", "conf.5.dump"), types={1: "O", 2: "H"}).n_frames == 5


def test_dpdata_shift_origin_scaled():
    r = reader(L("dpdata", "shift_origin.dump"), types={1: "O"})
    raw = r.read(0, 1)
    npt.assert_allclose(raw.origins[0], [-2, 0, 0])
    npt.assert_allclose(raw.cells[0], np.diag([8.0, 5.0, 3.0]))
    npt.assert_allclose(raw.coords[0], [[-2, 0, 0], [2, 2.5, 1.5], [2, 0, 2.25], [-2, 2.5, 0.75]])


def test_dpdata_real_bad_files():
    # columns change from xs to xsu between frames; TIMESTEP 0 repeated
    with pytest.raises(TrajectoryError, match=r"conf_s_su.dump, line 20, frame 1: the ITEM: ATOMS columns differ"):
        reader(L("dpdata", "conf_s_su.dump"), types={1: "O", 2: "H"})
    with pytest.raises(TrajectoryError, match=r"frame 1: TIMESTEP does not increase: 0 after 0"):
        reader(L("dpdata", "conf_unfold.dump"), types={1: "O", 2: "H"})


def test_mdanse_bare_box_bounds_scaled_images():
    t = anionmotion.open(L("lammps_test.lammps"), types=",".join(f"{i}=C" for i in range(1, 14)), timestep=0.001)
    assert (t.n_atoms, t.n_frames, t.coord_style) == (20, 25, "image")
    c = t.read()
    # oracle: parse the text with numpy
    with open(L("lammps_test.lammps")) as fh:
        text = fh.read().split("ITEM: TIMESTEP\n")[1:]
    for f in (0, 12, 24):
        rows = np.array([ln.split() for ln in text[f].splitlines()[8:28]], dtype=float)
        rows = rows[np.argsort(rows[:, 0])]
        npt.assert_allclose(c.positions[f], (rows[:, 2:5] + rows[:, 5:8]) * 40.0, atol=1e-9)


# ------------------------------------------------------------------- engines: LAMMPS's own compute msd
ENGINE = [
    ("li2so4_ortho_T1000.first60.lammpstrj.gz", "li2so4_ortho_T1000.first60.msd.txt", "metal", "image"),
    ("li2so4_ortho_T700.first60.lammpstrj.gz", "li2so4_ortho_T700.first60.msd.txt", "metal", "image"),
    ("li2so4_ortho_T1000_real.first60.lammpstrj.gz", "li2so4_ortho_T1000_real.first60.msd.txt", "real", "image"),
    ("li2so4_tri_T1000.unwrapped.first60.lammpstrj.gz", "li2so4_tri_T1000.first60.msd.txt", "metal", "unwrapped"),
]


def _msd_table(t, n):
    c = t.read(frames=slice(0, n))
    out = []
    for sp in ("Li", "S", "O"):
        d = c.positions[:, t.species == sp] - c.positions[0, t.species == sp]
        out.append(np.column_stack([(d ** 2).mean(1), (d ** 2).sum(2).mean(1)]))
    return np.hstack(out)


@pytest.mark.parametrize("dump,msd,units,style", ENGINE)
def test_engine_msd_equals_lammps_compute_msd(dump, msd, units, style):
    t = anionmotion.open(L(dump), types=LI2SO4, timestep=0.001, lammps_units=units)
    ref = np.loadtxt(L(msd))
    assert t.n_frames == 60 and t.coord_style == style
    npt.assert_array_equal(t.steps, ref[:, 0].astype(np.int64))
    got = _msd_table(t, 60)
    npt.assert_allclose(got, ref[:, 1:], atol=1e-3, rtol=0)
    assert np.abs(got - ref[:, 1:]).max() < 2e-4     # measured ≤ 5e-5 Å² on the full dumps
    assert ref[-1, 4] > 0.5                           # Li has moved, the test is not trivial


def test_engine_triclinic_box():
    t = anionmotion.open(L("li2so4_tri_T1000.unwrapped.first60.lammpstrj.gz"), types=LI2SO4, timestep=0.001)
    npt.assert_allclose(t.cells[0], [[22.638, 0, 0], [7.546, 22.638, 0], [7.546, 7.546, 15.092]], atol=1e-12)


def test_engine_units_real_velocities_and_times():
    t = anionmotion.open(L("li2so4_ortho_T1000_real.first60.lammpstrj.gz"), types=LI2SO4, timestep=0.001,
                         lammps_units="real")
    assert "Å/fs × 1000" in t.units["velocity"]
    raw = t._reader.read(0, 1)
    # the first atom line of the file: id 1, vx vy vz = 0.00353992 0.00239014 0.00535836 Å/fs
    npt.assert_allclose(raw.velocities[0, 0], [3.53992, 2.39014, 5.35836])
    npt.assert_allclose(t.times[:3], [0.0, 0.01, 0.02])
    m = anionmotion.open(L("li2so4_ortho_T1000_real.first60.lammpstrj.gz"), types=LI2SO4, timestep=0.001)
    npt.assert_allclose(m._reader.read(0, 1).velocities[0, 0], [0.00353992, 0.00239014, 0.00535836])


def test_engine_truncated_keeps_complete_frames():
    with pytest.warns(TruncatedFileWarning, match=r"the last frame is incomplete.*the 50 complete frame\(s\) are kept"):
        t = anionmotion.open(L("li2so4_ortho_T1000.truncated.lammpstrj.gz"), types=LI2SO4, timestep=0.001)
    assert t.n_frames == 50
    ref = np.loadtxt(L("li2so4_ortho_T1000.first60.msd.txt"))[:50]
    npt.assert_allclose(_msd_table(t, 50), ref[:, 1:], atol=1e-3, rtol=0)


def test_engine_gzip_equals_plain(tmp_path):
    p = tmp_path / "plain.lammpstrj"
    with gzip.open(L("li2so4_ortho_T700.first60.lammpstrj.gz"), "rb") as fh:
        p.write_bytes(fh.read())
    b = tmp_path / "x.lammpstrj.bz2"
    b.write_bytes(bz2.compress(p.read_bytes()))
    rs = [reader(x, types=LI2SO4) for x in (str(p), L("li2so4_ortho_T700.first60.lammpstrj.gz"), str(b))]
    ref = rs[0].read(0, 60)
    for r in rs[1:]:
        got = r.read(0, 60)
        npt.assert_array_equal(got.coords, ref.coords)
        npt.assert_array_equal(got.images, ref.images)
        npt.assert_array_equal(got.velocities, ref.velocities)


# ------------------------------------------------------------------------- index, random access, blocks
def test_random_access_without_rescan(monkeypatch):
    t = anionmotion.open(L("li2so4_ortho_T1000.first60.lammpstrj.gz"), types=LI2SO4, timestep=0.001)
    full = t.read()

    def boom(path):
        raise AssertionError("the file was rescanned")

    monkeypatch.setattr(lmp, "_scan_index", boom)
    part = t.read(frames=slice(37, 41))
    npt.assert_array_equal(part.frame_indices, [37, 38, 39, 40])
    npt.assert_allclose(part.positions, full.positions[37:41], atol=1e-9)   # image flags: absolute positions
    # a second open of the same file reuses the cached index
    t2 = anionmotion.open(L("li2so4_ortho_T1000.first60.lammpstrj.gz"), types=LI2SO4, timestep=0.001)
    assert t2.n_frames == 60


def test_random_access_reads_only_the_range(tmp_path):
    p = tmp_path / "plain.lammpstrj"
    with gzip.open(L("li2so4_ortho_T1000.first60.lammpstrj.gz"), "rb") as fh:
        p.write_bytes(fh.read())
    r = reader(str(p), types=LI2SO4)
    calls = []
    orig = r._read_bytes
    r._read_bytes = lambda a, b: (calls.append((a, b)), orig(a, b))[1]
    raw = r.read(37, 41)
    ix = r._index
    assert calls == [(int(ix.offsets[37]), int(ix.ends[40]))]
    full = r.read(0, 60)
    npt.assert_array_equal(raw.coords, full.coords[37:41])


def test_wrapped_random_access_relative_consistency(tmp_path):
    # x y z only (no image flags): a partial read unwraps from its first frame
    with gzip.open(L("li2so4_ortho_T1000.first60.lammpstrj.gz"), "rt") as fh:
        src = fh.read()
    p = write(tmp_path / "w.lammpstrj",
              src.replace("id type x y z vx vy vz ix iy iz", "id type x y z vx vy vz z1 z2 z3"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", anionmotion.UnwrapWarning)
        t = anionmotion.open(p, types=LI2SO4, timestep=0.001)
        assert t.coord_style == "wrapped"
        full = t.read()
        part = t.read(frames=slice(37, 41))
    npt.assert_allclose(part.positions - part.positions[0], full.positions[37:41] - full.positions[37], atol=1e-9)


def test_small_blocks_capacity_and_threads_give_the_same_index(monkeypatch, tmp_path):
    p = tmp_path / "plain.lammpstrj"
    with gzip.open(L("li2so4_ortho_T1000.truncated.lammpstrj.gz"), "rb") as fh:
        p.write_bytes(fh.read())
    with pytest.warns(TruncatedFileWarning):
        ref = reader(str(p), types=LI2SO4)
    ref_raw = ref.read(0, ref.n_frames)
    lmp.clear_index_cache()
    monkeypatch.setattr(lmp, "BLOCK_BYTES", 7777)
    monkeypatch.setattr(lmp, "_SCAN_CAPACITY", 3)
    monkeypatch.setattr(lmp, "PARSE_BYTES", 50000)
    monkeypatch.setattr(lmp, "_THREAD_MIN_BYTES", 0)
    with pytest.warns(TruncatedFileWarning):
        r = reader(str(p), types=LI2SO4)
    for name in ("offsets", "atoms_offsets", "ends", "steps", "natoms", "lines", "atom_lines", "box"):
        npt.assert_array_equal(getattr(r._index, name), getattr(ref._index, name))
    raw = r.read(0, r.n_frames)
    npt.assert_array_equal(raw.coords, ref_raw.coords)
    npt.assert_array_equal(raw.images, ref_raw.images)


def test_read_cells_from_index_and_atom_selection():
    r = reader(L("li2so4_tri_T1000.unwrapped.first60.lammpstrj.gz"), types=LI2SO4)
    full = r.read(5, 9)
    npt.assert_array_equal(r.read_cells(5, 9), full.cells)
    sel = np.array([3, 10, 500])
    part = r.read(5, 9, sel)
    npt.assert_array_equal(part.coords, full.coords[:, sel])
    npt.assert_array_equal(part.velocities, full.velocities[:, sel])
    assert r.read(5, 5).coords.shape == (0, 504, 3)


def test_times_need_timestep(tmp_path):
    p = write(tmp_path / "a.dump", frame_text(0, 3, SIMPLE) + frame_text(20, 3, SIMPLE))
    t = anionmotion.open(p, types="1=Li,2=P")
    with pytest.raises(OptionError, match="give timestep= \\(ps\\) / --timestep"):
        t.times
    npt.assert_allclose(anionmotion.open(p, types="1=Li,2=P", frame_interval=0.5).times, [0, 0.5])
    npt.assert_allclose(anionmotion.open(p, types="1=Li,2=P", timestep=0.002).times, [0, 0.04])


def test_units_and_time_items(tmp_path):
    body = "1 1 1 1 1 0.001 0.002 0.003\n"
    hdr = "ITEM: UNITS\nreal\nITEM: TIME\n0\n"
    text = (hdr + frame_text(0, 1, body, cols="id type x y z vx vy vz")
            + "ITEM: TIME\n2.5\n" + frame_text(5, 1, body, cols="id type x y z vx vy vz"))
    p = write(tmp_path / "u.dump", text)
    with pytest.raises(OptionError, match=r"declares 'ITEM: UNITS real' but lammps_units is 'metal'; give "
                                          r"lammps_units='real' / --lammps-units real"):
        anionmotion.open(p, types="1=Li")
    t = anionmotion.open(p, types="1=Li", lammps_units="real")
    assert t._reader.metadata["lammps_units"] == "real"
    npt.assert_allclose(t.times, [0.0, 0.0025])   # ITEM: TIME in fs → ps
    npt.assert_allclose(t.read().velocities[0, 0], [1.0, 2.0, 3.0])
    p2 = write(tmp_path / "cgs.dump", "ITEM: UNITS\ncgs\n" + frame_text(0, 1, "1 1 1 1 1\n"))
    with pytest.raises(TrajectoryError, match="declares 'ITEM: UNITS cgs'; anionmotion reads units metal, real, "
                                              "electron, lj only"):
        anionmotion.open(p2, types="1=Li")
    p3 = write(tmp_path / "lj.dump", "ITEM: UNITS\nlj\n" + frame_text(0, 1, "1 1 1 1 1\n"))
    with pytest.raises(OptionError, match="declares 'ITEM: UNITS lj' but lammps_units is 'metal'"):
        anionmotion.open(p3, types="1=Li")


def test_general_triclinic_abc_origin(tmp_path):
    box = ("4 0 0 1", "1 5 0 2", "0.5 0.5 6 3")
    p = write(tmp_path / "g.dump", frame_text(0, 1, "1 1 0.5 0.5 0.5\n", box=box, cols="id type xs ys zs",
                                              boxhdr="abc origin pp pp pp"))
    r = reader(p, types={1: "Li"})
    raw = r.read(0, 1)
    npt.assert_allclose(raw.cells[0], [[4, 0, 0], [1, 5, 0], [0.5, 0.5, 6]])
    npt.assert_allclose(raw.origins[0], [1, 2, 3])
    npt.assert_allclose(raw.coords[0, 0], np.array([1, 2, 3]) + 0.5 * np.array([5.5, 5.5, 6]))


# --------------------------------------------------------------------------------------- bad input
def test_truncated_mid_line_plain(tmp_path):
    text = frame_text(0, 3, SIMPLE) + frame_text(10, 3, SIMPLE)
    p = write(tmp_path / "t.dump", text[:-9])
    with pytest.warns(TruncatedFileWarning, match=r"t.dump: the last frame is incomplete \(the file ends inside the "
                                                   r"frame that starts at line 13\); the 1 complete frame"):
        t = anionmotion.open(p, types="1=Li,2=P", timestep=0.001)
    assert t.n_frames == 1
    # a last line without its newline but with every column is complete
    p = write(tmp_path / "n.dump", text[:-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert anionmotion.open(p, types="1=Li,2=P", timestep=0.001).n_frames == 2
    # only the header of a frame
    p = write(tmp_path / "h.dump", text + "ITEM: TIMESTEP\n20\nITEM: NUMB")
    with pytest.warns(TruncatedFileWarning, match="line 25"):
        assert anionmotion.open(p, types="1=Li,2=P", timestep=0.001).n_frames == 2


def test_atom_count_changes(tmp_path):
    p = write(tmp_path / "c.dump", frame_text(0, 3, SIMPLE) + frame_text(10, 2, SIMPLE.split("\n", 1)[1]))
    with pytest.raises(TrajectoryError, match=r"c.dump, line 13, frame 1: the number of atoms changes from 3 to 2 "
                                              r"\(step 10\)"):
        reader(p, types={1: "Li", 2: "P"})


def test_duplicate_and_missing_ids(tmp_path):
    dup = "1 1 1 1 1\n2 2 2 2 2\n2 1 3 3 3\n"
    p = write(tmp_path / "d0.dump", frame_text(0, 3, dup))
    with pytest.raises(TrajectoryError, match=r"frame 0, atom 2: atom id 2 appears twice \(lines 11 and 12\)"):
        reader(p, types={1: "Li", 2: "P"})
    p = write(tmp_path / "d1.dump", frame_text(0, 3, SIMPLE) + frame_text(10, 3, dup))
    r = reader(p, types={1: "Li", 2: "P"})
    with pytest.raises(TrajectoryError, match=r"d1.dump, line 24, frame 1, atom 2: atom id 2 appears twice in the "
                                              r"frame \(so another id is missing\)"):
        r.read(0, 2)
    unknown = "1 1 1 1 1\n2 2 2 2 2\n7 1 3 3 3\n"
    p = write(tmp_path / "d2.dump", frame_text(0, 3, SIMPLE) + frame_text(10, 3, unknown))
    with pytest.raises(TrajectoryError, match=r"line 24, frame 1, atom 7: atom id 7 is not in the first frame "
                                              r"\(missing or unknown id"):
        anionmotion.open(p, types="1=Li,2=P", timestep=0.001).read()


def test_no_coordinate_columns_real_file():
    with pytest.raises(TrajectoryError, match=r"No coordinate information: no coordinate columns in ITEM: ATOMS id "
                                              r"type; expected one of x y z, xs ys zs, xu yu zu, xsu ysu zsu"):
        reader(L("spce_no_coords.lammpstrj.bz2"), types={1: "O", 2: "H"})


def test_extra_values_on_an_atom_line_real_file():
    with pytest.raises(TrajectoryError, match=r"wat.lammpstrj_long.bz2, line 10, frame 0: atom line has 6 values, the "
                                              r"ITEM: ATOMS header names 5 \(id type xs ys zs\)"):
        reader(L("wat.lammpstrj_long.bz2"), types={1: "O", 2: "H"}).read(0, 1)


def test_nan_and_inf_coordinates_kept_then_rejected(tmp_path):
    body = "1 1 1 1 1\n2 2 nan 2 2\n3 1 3 -inf 3\n"
    p = write(tmp_path / "nan.dump", frame_text(0, 3, body))
    raw = reader(p, types={1: "Li", 2: "P"}).read(0, 1)
    assert np.isnan(raw.coords[0, 1, 0]) and raw.coords[0, 2, 1] == -np.inf
    t = anionmotion.open(p, types="1=Li,2=P", timestep=0.001)
    with pytest.raises(TrajectoryError, match=r"frame 0, atom 1: coordinates contain nan \(component x\); expected "
                                              r"finite numbers"):
        t.read()


def test_bad_number_and_column_count(tmp_path):
    p = write(tmp_path / "b.dump", frame_text(0, 3, "1 1 1 1 1\n2 2 2 abc 2\n3 1 3 3 3\n"))
    with pytest.raises(TrajectoryError, match=r"b.dump, line 11, frame 0: column 'y' is not a number: 'abc'"):
        reader(p, types={1: "Li", 2: "P"}).read(0, 1)
    p = write(tmp_path / "s.dump", frame_text(0, 3, "1 1 1 1 1\n2 2 2 2\n3 1 3 3 3\n"))
    with pytest.raises(TrajectoryError, match=r"line 11, frame 0: atom line has 4 values, the ITEM: ATOMS header "
                                              r"names 5"):
        reader(p, types={1: "Li", 2: "P"}).read(0, 1)
    p = write(tmp_path / "i.dump", frame_text(0, 3, "1 1 1 1 1\n2.5 2 2 2 2\n3 1 3 3 3\n"))
    with pytest.raises(TrajectoryError, match=r"line 11, frame 0: atom id 2.5 is not a positive integer"):
        reader(p, types={1: "Li", 2: "P"})


def test_non_increasing_timestep(tmp_path):
    p = write(tmp_path / "ts.dump", frame_text(10, 3, SIMPLE) + frame_text(20, 3, SIMPLE) + frame_text(20, 3, SIMPLE))
    with pytest.raises(TrajectoryError, match=r"ts.dump, line 26, frame 2: TIMESTEP does not increase: 20 after 20 "
                                              r"\(frames 1 and 2\)"):
        reader(p, types={1: "Li", 2: "P"})


def test_empty_and_binary_and_garbage(tmp_path):
    p = write(tmp_path / "e.lammpstrj", "")
    with pytest.raises(FormatError, match=r"e.lammpstrj: empty file; expected a LAMMPS dump"):
        reader(p)
    b = tmp_path / "b.lammpstrj"
    b.write_bytes(b"ITEM: TIMESTEP\n\x00\x01\x02" * 10)
    with pytest.raises(FormatError, match="binary data in a file read as text"):
        reader(str(b))
    p = write(tmp_path / "w.lammpstrj", "\n\n  \n")
    with pytest.raises(TrajectoryError, match="no complete frame in the file"):
        reader(p)
    p = write(tmp_path / "g.lammpstrj", "hello world\n")
    with pytest.raises(TrajectoryError, match=r"g.lammpstrj, line 1: expected an 'ITEM:' line, got 'hello world'"):
        reader(p)
    p = write(tmp_path / "x.lammpstrj", frame_text(0, 3, SIMPLE) + "5 1 1 1 1\n")
    with pytest.raises(TrajectoryError, match=r"line 13: expected an 'ITEM:' line, got '5 1 1 1 1'.*more atom lines "
                                              r"than its NUMBER OF ATOMS"):
        reader(p)
    p = write(tmp_path / "u.lammpstrj", "ITEM: TIMESTEP\n0\nITEM: ENERGY\n1\n")
    with pytest.raises(TrajectoryError, match=r"unknown header 'ITEM: ENERGY'"):
        reader(p)
    p = write(tmp_path / "n.lammpstrj", "ITEM: TIMESTEP\nzero\nITEM: NUMBER OF ATOMS\n1\n")
    with pytest.raises(TrajectoryError, match=r"a header value is not a number"):
        reader(p)


def test_types_errors(tmp_path):
    p = write(tmp_path / "t.dump", frame_text(0, 3, SIMPLE))
    with pytest.raises(OptionError, match=r"atom type\(s\) 2 have no element in types= / --types \(1=Li\); give every "
                                          r"type present \(1, 2\), e.g. --types 1=Li,2=X"):
        reader(p, types={1: "Li"})
    with pytest.raises(OptionError, match=r"the dump has atom types 1, 2 but no element or mass column; give the "
                                          r"element of each type with types=.*--types 1=Li,2=P"):
        reader(p)
    with pytest.raises(OptionError, match=r"no type, element or mass column \(columns: id x y z q p\)"):
        reader(L("additional_columns.lammpstrj"))
    q = write(tmp_path / "noid.dump", frame_text(0, 1, "1 1 1 1\n", cols="type x y z"))
    with pytest.raises(TrajectoryError, match=r"no 'id' column in ITEM: ATOMS type x y z"):
        reader(q, types={1: "Li"})


def test_cli_exit_codes(tmp_path, capsys):
    p = write(tmp_path / "t.dump", frame_text(0, 3, SIMPLE) + frame_text(10, 3, SIMPLE))
    assert cli_main(["info", p, "--types", "1=Li,2=P", "--timestep", "0.001", "--no-progress"]) == 0
    capsys.readouterr()
    assert cli_main(["info", p, "--timestep", "0.001", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "atom types 1, 2 but no element or mass column" in err and "--types" in err
    assert cli_main(["info", L("spce_no_coords.lammpstrj.bz2"), "--types", "1=O,2=H", "--timestep", "0.001"]) == 2
    assert "No coordinate information" in capsys.readouterr().err
    q = write(tmp_path / "d.dump", frame_text(0, 3, SIMPLE) + frame_text(10, 3, "1 1 1 1 1\n2 2 2 2 2\n2 1 3 3 3\n"))
    assert cli_main(["info", q, "--types", "1=Li,2=P", "--timestep", "0.001", "--no-progress"]) == 2
    assert "atom id 2 appears twice" in capsys.readouterr().err
    tr = tmp_path / "tr.lammpstrj.gz"
    shutil.copy(L("li2so4_ortho_T1000.truncated.lammpstrj.gz"), tr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli_main(["info", str(tr), "--types", "1=Li,2=S,3=O", "--timestep", "0.001", "--no-progress"]) == 0


def test_input_never_modified_and_nothing_written_next_to_it(tmp_path):
    p = write(tmp_path / "t.dump", frame_text(0, 3, SIMPLE))
    st = os.stat(p)
    reader(p, types={1: "Li", 2: "P"}).read(0, 1)
    assert os.listdir(tmp_path) == ["t.dump"]
    assert os.stat(p).st_mtime_ns == st.st_mtime_ns


# --------------------------------------------------------------------- hypothesis: writer → reader round trip
def _write_dump(path, pos, cells, origins, ids_perm, style, images, vel, col_order, tilt, fmt):
    """Minimal LAMMPS dump writer (tests only)."""
    n_frames, n = pos.shape[:2]
    out = []
    for f in range(n_frames):
        H = cells[f]
        lo = origins[f]
        s = (pos[f] - lo) @ np.linalg.inv(H)
        img = np.floor(s)
        sw = s - img
        xw = lo + sw @ H
        if style == "x":
            c = xw
        elif style == "xs":
            c = sw
        elif style == "xu":
            c = pos[f]
        else:
            c = s
        names = {"x": ("x", "y", "z"), "xs": ("xs", "ys", "zs"), "xu": ("xu", "yu", "zu"),
                 "xsu": ("xsu", "ysu", "zsu")}[style]
        table = {"id": np.arange(1, n + 1).astype(float), "type": (np.arange(n) % 2 + 1).astype(float)}
        for k in range(3):
            table[names[k]] = c[:, k]
        if images:
            for k, nm in enumerate(("ix", "iy", "iz")):
                table[nm] = img[:, k]
        if vel is not None:
            for k, nm in enumerate(("vx", "vy", "vz")):
                table[nm] = vel[f, :, k]
        cols = [list(table)[i] for i in col_order[: len(table)]] if len(col_order) >= len(table) else list(table)
        xy, xz, yz = H[1, 0], H[2, 0], H[2, 1]
        xlo, ylo, zlo = lo
        xhi, yhi, zhi = xlo + H[0, 0], ylo + H[1, 1], zlo + H[2, 2]
        if tilt:
            bx = (xlo + min(0, xy, xz, xy + xz), xhi + max(0, xy, xz, xy + xz))
            by = (ylo + min(0, yz), yhi + max(0, yz))
            hdr = "ITEM: BOX BOUNDS xy xz yz pp pp pp\n" + "\n".join(
                " ".join(fmt(v) for v in row) for row in ((*bx, xy), (*by, xz), (zlo, zhi, yz))) + "\n"
        else:
            hdr = "ITEM: BOX BOUNDS pp pp pp\n" + "\n".join(
                " ".join(fmt(v) for v in row) for row in ((xlo, xhi), (ylo, yhi), (zlo, zhi))) + "\n"
        out.append(f"ITEM: TIMESTEP\n{f * 10}\nITEM: NUMBER OF ATOMS\n{n}\n{hdr}ITEM: ATOMS {' '.join(cols)}\n")
        rows = np.column_stack([table[c_] for c_ in cols])[ids_perm[f]]
        isint = [c_ in ("id", "type", "ix", "iy", "iz") for c_ in cols]
        for row in rows:
            out.append(" ".join(str(int(v)) if ii else fmt(v) for v, ii in zip(row, isint)) + "\n")
    with open(path, "w") as fh:
        fh.write("".join(out))


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), n_frames=st.integers(1, 6), n_atoms=st.integers(1, 9),
       style=st.sampled_from(["x", "xs", "xu", "xsu"]), images=st.booleans(), velocities=st.booleans(),
       tilt=st.booleans(), compress=st.sampled_from([None, "gz"]))
def test_roundtrip_random_dumps(tmp_path_factory, seed, n_frames, n_atoms, style, images, velocities, tilt, compress):
    rng = np.random.default_rng(seed)
    L0 = rng.uniform(5, 15, size=3)
    cells = np.zeros((n_frames, 3, 3))
    for f in range(n_frames):
        cells[f] = np.diag(L0 * rng.uniform(0.98, 1.02, 3))
        if tilt:
            cells[f, 1, 0], cells[f, 2, 0], cells[f, 2, 1] = rng.uniform(-0.3, 0.3, 3) * L0[0]
    origins = rng.uniform(-3, 3, size=3) + rng.uniform(-0.05, 0.05, size=(n_frames, 3))
    # a random walk (small steps, so unwrapping of wrapped-only dumps is unambiguous)
    frac = rng.uniform(-1.5, 2.5, size=(1, n_atoms, 3)) + np.cumsum(rng.normal(0, 0.05, (n_frames, n_atoms, 3)), 0)
    pos = np.einsum("tik,tkl->til", frac, cells) + origins[:, None, :]
    vel = rng.normal(0, 10, size=(n_frames, n_atoms, 3)) if velocities else None
    perms = np.array([rng.permutation(n_atoms) for _ in range(n_frames)])
    n_cols = 2 + 3 + (3 if images else 0) + (3 if velocities else 0)
    order = rng.permutation(n_cols)
    d = tmp_path_factory.mktemp("rt")
    path = str(d / "r.lammpstrj")
    _write_dump(path, pos, cells, origins, perms, style, images, vel, order, tilt, lambda v: repr(float(v)))
    if compress:
        with open(path, "rb") as fh, gzip.open(path + ".gz", "wb") as g:
            g.write(fh.read())
        path += ".gz"
    t = anionmotion.open(path, types="1=Li,2=S", timestep=0.002)
    assert (t.n_frames, t.n_atoms) == (n_frames, n_atoms)
    npt.assert_allclose(t.cells, cells, atol=1e-12)
    npt.assert_allclose(t.times, 0.002 * 10 * np.arange(n_frames))
    assert list(t.species) == ["Li" if i % 2 == 0 else "S" for i in range(n_atoms)]
    c = t.read()
    npt.assert_allclose(c.origins, origins, atol=1e-12)
    if velocities:
        npt.assert_array_equal(c.velocities, vel)
    else:
        assert c.velocities is None
    if style in ("xu", "xsu") or images:
        # absolute unwrapped positions
        npt.assert_allclose(c.positions, pos, atol=1e-9)
    else:
        # wrapped only: unwrapped from the first frame as stored
        n0 = np.floor((pos[0] - origins[0]) @ np.linalg.inv(cells[0]))
        npt.assert_allclose(c.positions, pos - np.einsum("ik,tkl->til", n0, cells), atol=1e-9)
    if style == "x" and not images:
        raw = t._reader.read(0, n_frames)
        for f in range(n_frames):   # the written numbers come back bit for bit
            s = (pos[f] - origins[f]) @ np.linalg.inv(cells[f])
            npt.assert_array_equal(raw.coords[f], origins[f] + (s - np.floor(s)) @ cells[f])


def test_cut_gzip_stream_keeps_frames_before_the_damage(tmp_path):
    with open(L("li2so4_ortho_T1000.first60.lammpstrj.gz"), "rb") as fh:
        raw = fh.read()
    p = tmp_path / "cut.lammpstrj.gz"
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.warns(TruncatedFileWarning) as rec:
        r = reader(str(p), types=LI2SO4)
    msgs = [str(w.message) for w in rec]
    assert any("the gzip stream is cut or corrupt after byte" in m for m in msgs)
    assert any(f"the {r.n_frames} complete frame(s) are kept" in m for m in msgs)
    assert 10 < r.n_frames < 60
    full = reader(L("li2so4_ortho_T1000.first60.lammpstrj.gz"), types=LI2SO4)
    npt.assert_array_equal(r.read(0, r.n_frames).coords, full.read(0, r.n_frames).coords)


def test_disk_index_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    data = tmp_path / "data"
    data.mkdir()
    p = data / "t.lammpstrj.gz"
    shutil.copy(L("li2so4_ortho_T1000.truncated.lammpstrj.gz"), p)
    monkeypatch.setenv("ANIONMOTION_CACHE", str(cache))
    monkeypatch.setattr(lmp, "DISK_CACHE_MIN_BYTES", 0)
    with pytest.warns(TruncatedFileWarning):
        a = reader(str(p), types=LI2SO4)
    files = list((cache / "lammps-index").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"
    assert os.listdir(data) == ["t.lammpstrj.gz"]          # nothing next to the input
    lmp.clear_index_cache()
    monkeypatch.setattr(lmp, "_scan_index", lambda path: (_ for _ in ()).throw(AssertionError("rescanned")))
    with pytest.warns(TruncatedFileWarning, match="the 50 complete frame"):
        b = reader(str(p), types=LI2SO4)
    for name in ("offsets", "ends", "steps", "box", "atom_lines"):
        npt.assert_array_equal(getattr(b._index, name), getattr(a._index, name))
    npt.assert_array_equal(b.read(40, 50).coords, a.read(40, 50).coords)
    # a modified file is rescanned (the key holds size and mtime)
    os.utime(p, ns=(1, 1))
    lmp.clear_index_cache()
    with pytest.raises(AssertionError, match="rescanned"):
        reader(str(p), types=LI2SO4)
    monkeypatch.setenv("ANIONMOTION_CACHE", "0")
    assert lmp._cache_dir() is None


def test_threaded_parse_works_in_a_forked_child(monkeypatch):
    import multiprocessing as mp

    monkeypatch.setattr(lmp, "_THREAD_MIN_BYTES", 0)
    r = reader(L("li2so4_ortho_T1000.first60.lammpstrj.gz"), types=LI2SO4)
    ref = r.read(0, 60).coords   # starts the pool in the parent
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(_child_read, (L("li2so4_ortho_T1000.first60.lammpstrj.gz"),)).get(timeout=120)
    npt.assert_array_equal(got, ref)


def _child_read(path):
    lmp._THREAD_MIN_BYTES = 0
    return reader(path, types=LI2SO4).read(0, 60).coords


@pytest.mark.parametrize("name", ["li2so4_ortho_T1000.first60.lammpstrj.gz", "plain"])
def test_read_ahead_sequential_and_random(monkeypatch, tmp_path, name):
    path = L("li2so4_ortho_T1000.first60.lammpstrj.gz")
    if name == "plain":
        path = str(tmp_path / "p.lammpstrj")
        with gzip.open(L("li2so4_ortho_T1000.first60.lammpstrj.gz"), "rb") as fh, open(path, "wb") as out:
            out.write(fh.read())
    ref = reader(path, types=LI2SO4).read(0, 60)
    lmp.clear_index_cache()
    monkeypatch.setattr(lmp, "PARSE_BYTES", 90000)   # ~3 frames per block
    r = reader(path, types=LI2SO4)
    used = []
    orig = r._wait_prefetch
    r._wait_prefetch = lambda: (lambda got: (used.append(got is not None), got)[1])(orig())
    for a, b in [(0, 10), (10, 20), (20, 33), (5, 8), (50, 60), (33, 34)]:
        raw = r.read(a, b)
        npt.assert_array_equal(raw.coords, ref.coords[a:b])
        npt.assert_array_equal(raw.images, ref.images[a:b])
    assert any(used)
    r.close()
    assert r._prefetch is None and r._fh is None


@pytest.mark.parametrize("name", ["li2so4_ortho_T1000.truncated.lammpstrj.gz", "WIN_wat.lammpstrj",
                                  "albite_triclinic.dump", "custom.lammpstrj", "image_vf.lammpstrj"])
@pytest.mark.parametrize("cut", [None, 0.37])
def test_scan_kernel_matches_python_twin(name, cut):
    with lmp.open_binary(L(name)) as fh:
        data = fh.read()
    at_eof = cut is None
    if cut is not None:
        data = data[: int(len(data) * cut)]
    out = []
    for fn in (K.scan_frames, K.scan_frames_ref):
        ints = np.zeros((100, K.INTS_WIDTH), np.int64)
        box = np.zeros((100, K.BOX_WIDTH))
        status = np.zeros(5, np.int64)
        fn(data, 1000, 7, at_eof, ints, box, status)
        out.append((ints[: status[1]], box[: status[1]], status))
    npt.assert_array_equal(out[0][2], out[1][2])
    npt.assert_array_equal(out[0][0], out[1][0])
    npt.assert_array_equal(out[0][1], out[1][1])
    assert out[0][2][1] > 0 or cut is not None


@settings(deadline=None, max_examples=150)
@given(n_atoms=st.lists(st.integers(1, 5), min_size=1, max_size=4), widths=st.lists(st.integers(1, 14), min_size=1,
                                                                                      max_size=5),
       cut=st.floats(0.0, 1.0), at_eof=st.booleans(), crlf=st.booleans())
def test_scan_property_cut_anywhere(n_atoms, widths, cut, at_eof, crlf):
    # frames of varying atom counts (the scan does not check that) and line lengths around 16-byte boundaries
    parts = []
    for f, n in enumerate(n_atoms):
        body = "".join(f"{i + 1} 1 {'7' * widths[(i + f) % len(widths)]} 2 3\n" for i in range(n))
        parts.append(frame_text(f, n, body))
    text = "".join(parts)
    if crlf:
        text = text.replace("\n", "\r\n")
    data = text.encode()[: int(len(text) * cut)]
    out = []
    for fn in (K.scan_frames, K.scan_frames_ref):
        ints = np.zeros((10, K.INTS_WIDTH), np.int64)
        box = np.zeros((10, K.BOX_WIDTH))
        status = np.zeros(5, np.int64)
        fn(data, 0, 1, at_eof, ints, box, status)
        out.append((ints[: status[1]], box[: status[1]], status))
    npt.assert_array_equal(out[0][2], out[1][2])
    npt.assert_array_equal(out[0][0], out[1][0])
    npt.assert_array_equal(out[0][1], out[1][1])
