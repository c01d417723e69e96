"""Density grids (SPEC §7): binning kernel, normalisation, invariances, writers and the CLI."""

import json
import warnings

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ase.calculators.vasp import VaspChargeDensity
from ase.io.cube import read_cube as read_cube_ase
from hypothesis.extra.numpy import arrays
from pymatgen.io.vasp import Chgcar

import anionmotion as am
from anionmotion.errors import OptionError, UnwrapWarning
from anionmotion.kernels.grid import bin_axis, bin_fractional
from anionmotion.report.grids import (atomic_number, read_chgcar, read_cube, read_netcdf, write_chgcar, write_cube,
                                      write_grid, write_netcdf)

CELL = np.array([[8.0, 0, 0], [1.5, 7.0, 0], [0.5, -1.0, 9.0]])


def traj_random(n_frames=20, n_li=6, n_s=4, cell=CELL, seed=0, style="wrapped"):
    rng = np.random.default_rng(seed)
    cells = np.asarray(cell)
    frac = rng.uniform(0, 1, (n_frames, n_li + n_s, 3))
    pos = np.einsum("tik,tkl->til", frac, np.broadcast_to(cells, (n_frames, 3, 3))) if cells.ndim == 3 \
        else frac @ cells
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnwrapWarning)
        tr = am.from_arrays(pos, cells, species=["Li"] * n_li + ["S"] * n_s, frame_interval=1.0, style=style)
    return tr, pos


# ------------------------------------------------------------------ kernels
@settings(deadline=None, max_examples=40)
@given(frac=arrays(np.float64, st.tuples(st.integers(0, 6), st.integers(0, 12), st.just(3)),
                   elements=st.floats(-3, 3)),
       shape=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)))
def test_bin_fractional_equals_ref(frac, shape):
    w = np.linspace(1.0, 2.0, frac.shape[0])
    a = bin_fractional(frac, shape, weights=w)
    npt.assert_array_equal(a, bin_fractional(frac, shape, weights=w, use_ext=False))
    npt.assert_allclose(a.sum(), frac.shape[1] * w.sum())
    for k in range(3):
        h = bin_axis(frac, k, 5, weights=w)
        npt.assert_array_equal(h, bin_axis(frac, k, 5, weights=w, use_ext=False))


def test_bin_kernel_boundaries_and_errors():
    frac = np.array([[[0.0, 0.0, 0.0], [1.0, -1e-17, 0.9999999999999999], [-0.5, 0.5, 2.25]]])
    g = bin_fractional(frac, (2, 2, 4))
    # s = 1 wraps to 0; -1e-17 wraps to 1 - 1e-17 == 1.0 in float64 and is clamped into the last bin
    assert g[0, 0, 0] == 1 and g[0, 1, 3] == 1 and g[1, 1, 1] == 1 and g.sum() == 3
    with pytest.raises(OptionError, match="grid shape must be three positive integers"):
        bin_fractional(frac, (2, 0, 2))
    with pytest.raises(OptionError, match="invalid axis 3"):
        bin_axis(frac, 3, 4)
    with pytest.raises(OptionError, match="n_bins must be a positive integer"):
        bin_axis(frac, 0, 0)
    with pytest.raises(ValueError, match="out must be a C-contiguous float64 array"):
        bin_fractional(frac, out=np.zeros((2, 2), dtype=np.float64))


# ------------------------------------------------------------------ analysis
def test_density_sums_to_atom_count_and_matches_direct_count():
    tr, pos = traj_random()
    r = am.density(tr, "Li", grid=(5, 6, 7))
    npt.assert_allclose(r.occupancy.sum(), 6.0, rtol=1e-12)
    npt.assert_allclose((r.density * r.voxel_volume).sum(), 6)
    frac = (pos[:, :6] @ np.linalg.inv(CELL)) % 1.0
    idx = np.minimum((frac * [5, 6, 7]).astype(int), [4, 5, 6])
    direct = np.zeros((5, 6, 7))
    np.add.at(direct, (idx[..., 0].ravel(), idx[..., 1].ravel(), idx[..., 2].ravel()), 1)
    npt.assert_allclose(r.density, direct / 20 / r.voxel_volume)
    for ax in "abc":
        npt.assert_allclose(np.trapezoid(r.profiles[ax]["p"], dx=1 / len(r.profiles[ax]["p"])) +
                            0.5 / len(r.profiles[ax]["p"]) * (r.profiles[ax]["p"][0] + r.profiles[ax]["p"][-1]),
                            1.0, rtol=1e-12)
    assert r.meta["grid"] == [5, 6, 7]


def test_single_site_density_and_axis_profile():
    # one Li vibrating around s = (0.25, 0.5, 0.75): all weight in one voxel / slab
    pos = np.tile(np.array([0.25 + 1e-3, 0.5 + 1e-3, 0.75 + 1e-3]) @ CELL, (4, 1, 1))
    tr = am.from_arrays(pos, CELL, species=["Li"], frame_interval=1.0)
    r = am.density(tr, "Li", grid=(4, 4, 4), profile_bins=8)
    assert r.density[1, 2, 3] == pytest.approx(1 / r.voxel_volume)
    assert np.count_nonzero(r.density) == 1
    p = r.profiles["c"]["p"]
    assert p[6] == pytest.approx(8.0) and np.count_nonzero(p) == 1
    assert r.profile_csv("c").startswith("s,x_A,p_per_unit_s")


def test_npt_cells_each_frame_in_its_own_cell():
    rng = np.random.default_rng(4)
    scales = np.linspace(0.95, 1.05, 10)
    cells = np.array([CELL * s for s in scales])
    frac = np.tile(rng.uniform(0, 1, (1, 5, 3)), (10, 1, 1))
    pos = np.einsum("tik,tkl->til", frac, cells)
    tr = am.from_arrays(pos, cells, species=["Li"] * 5, frame_interval=1.0)
    r = am.density(tr, "Li", grid=(6, 6, 6))
    occ = r.density / 6 ** 3  # ρ per voxel × (1/n_vox)
    # identical fractional positions: same voxels every frame; Σρ·V̄_vox = N · mean(V̄/V_t)
    vols = np.abs(np.linalg.det(cells))
    npt.assert_allclose(r.occupancy.sum(), 5 * abs(np.linalg.det(cells.mean(axis=0))) * np.mean(1 / vols),
                        rtol=1e-9)
    npt.assert_allclose(r.cell, cells.mean(axis=0))
    assert r.meta["cell_changes"]
    assert occ.max() > 0


def test_drift_removal():
    # the whole crystal drifts along a; Li sits on a fixed site relative to the framework
    n = 30
    drift = np.linspace(0, 3.0, n)[:, None, None] * np.array([1.0, 0, 0])
    base = np.array([[1.3, 1.3, 1.3], [4.0, 4.0, 4.0], [6.0, 2.0, 7.0]])
    pos = base[None] + drift
    tr = am.from_arrays(pos, np.eye(3) * 8, species=["Li", "S", "S"], frame_interval=1.0)
    smeared = am.density(tr, "Li", grid=(8, 8, 8))
    fixed = am.density(tr, "Li", grid=(8, 8, 8), remove_drift="framework")
    assert np.count_nonzero(smeared.density) > 1
    assert np.count_nonzero(fixed.density) == 1
    assert fixed.density[1, 1, 1] > 0
    same = am.density(tr, "Li", grid=(8, 8, 8), remove_drift="S")
    npt.assert_allclose(same.density, fixed.density)
    assert fixed.meta["remove_drift"].startswith("framework")


@settings(deadline=None, max_examples=20)
@given(seed=st.integers(0, 1000), shift=st.integers(-3, 3), perm_seed=st.integers(0, 1000))
def test_density_invariant_to_permutation_and_lattice_shifts(seed, shift, perm_seed):
    tr, pos = traj_random(n_frames=5, seed=seed, style="unwrapped")
    r = am.density(tr, "Li", grid=(4, 5, 3))
    perm = np.random.default_rng(perm_seed).permutation(10)
    moved = pos[:, perm] + shift * CELL[2]
    sp = np.array(["Li"] * 6 + ["S"] * 4)[perm]
    tr2 = am.from_arrays(moved, CELL, species=sp, frame_interval=1.0)
    r2 = am.density(tr2, "Li", grid=(4, 5, 3))
    npt.assert_allclose(r2.density, r.density, atol=1e-12)


def test_spacing_and_errors():
    tr, _ = traj_random(n_frames=3)
    r = am.density(tr, "Li", spacing=1.0)
    assert r.shape == tuple(int(np.ceil(np.linalg.norm(v))) for v in CELL)
    assert am.density(tr, "Li").meta["spacing_A"] == 0.2
    with pytest.raises(OptionError, match="give either grid= or spacing=, not both"):
        am.density(tr, "Li", grid=(2, 2, 2), spacing=1.0)
    with pytest.raises(OptionError, match="grid must be three positive integers"):
        am.density(tr, "Li", grid=(2, 2))
    with pytest.raises(OptionError, match="spacing must be a positive length"):
        am.density(tr, "Li", spacing=-1)
    with pytest.raises(OptionError, match="no atoms of species Na"):
        am.density(tr, "Na")
    with pytest.raises(OptionError, match="no frames in the range start=10, stop=None, step=None"):
        am.density(tr, "Li", start=10)
    with pytest.raises(OptionError, match="at most 2e8 points"):
        am.density(tr, "Li", grid=(1000, 1000, 1000))
    with pytest.raises(OptionError, match="profile_bins must be a positive integer"):
        am.density(tr, "Li", grid=(2, 2, 2), profile_bins=0)
    one = am.density(tr, "Li", grid=(2, 2, 2), stop=1)
    npt.assert_allclose(one.occupancy.sum(), 6)
    d = one.to_dict()
    assert d["density"] is None and d["grid_shape"] == [2, 2, 2]
    assert len(one.to_dict(include_grid=True)["density"]) == 2


# ------------------------------------------------------------------ writers
@pytest.fixture
def result():
    tr, _ = traj_random(n_frames=30)
    return am.density(tr, "Li", grid=(7, 8, 9))


def test_chgcar_roundtrip_and_convention(result, tmp_path):
    p = write_chgcar(result, tmp_path / "li.CHGCAR")
    cell, rho, species, frac = read_chgcar(p)
    npt.assert_allclose(cell, result.cell, atol=1e-12)
    npt.assert_allclose(rho, result.density, rtol=1e-10, atol=1e-14)
    assert species == ["Li"] * 6 + ["S"] * 4
    # VASP convention: stored values are ρ·V, their grid mean is the number of atoms
    text = (tmp_path / "li.CHGCAR").read_text().splitlines()
    start = text.index("   7   8   9") + 1
    vals = np.array(" ".join(text[start:]).split(), dtype=float)
    npt.assert_allclose(vals.mean(), 6.0, rtol=1e-10)
    with pytest.raises(OptionError, match="output file exists"):
        write_chgcar(result, tmp_path / "li.CHGCAR")


def test_chgcar_read_by_pymatgen_and_ase(result, tmp_path):
    write_grid(result, tmp_path / "CHGCAR")
    ch = Chgcar.from_file(str(tmp_path / "CHGCAR"))
    npt.assert_allclose(ch.data["total"] / ch.structure.volume, result.density, rtol=1e-10, atol=1e-14)
    npt.assert_allclose(ch.data["total"].mean(), 6.0, rtol=1e-10)
    vcd = VaspChargeDensity(str(tmp_path / "CHGCAR"))
    npt.assert_allclose(vcd.chg[0], result.density, rtol=1e-10, atol=1e-14)


def test_cube_roundtrip_and_ase(result, tmp_path):
    p = write_cube(result, tmp_path / "li.cube")
    cell, rho, z, xyz = read_cube(p)
    npt.assert_allclose(cell, result.cell, atol=1e-5)
    npt.assert_allclose(rho, result.density, rtol=1e-5, atol=1e-9)
    assert z.tolist() == [3] * 6 + [16] * 4
    with open(p) as fh:
        data = read_cube_ase(fh)["data"]
    npt.assert_allclose(data, result.density * 0.529177210544 ** 3, rtol=1e-5, atol=1e-12)


def test_netcdf_roundtrip(result, tmp_path):
    p = write_netcdf(result, tmp_path / "li.nc")
    cell, rho, species, frac = read_netcdf(p)
    npt.assert_allclose(rho, result.density)
    npt.assert_allclose(cell, result.cell)
    assert species[:6] == ["Li"] * 6
    npt.assert_allclose(frac, result.structure["frac"])


def test_grid_format_errors(result, tmp_path):
    with pytest.raises(OptionError, match="unknown grid format"):
        write_grid(result, tmp_path / "li.xyz")
    assert atomic_number("Li") == 3 and atomic_number("Nb") == 41 and atomic_number("Xx") == 0


def test_cli_density(tmp_path, monkeypatch):
    from anionmotion.cli import main
    import anionmotion.cli.density as cd

    tr, _ = traj_random(n_frames=10)
    monkeypatch.setattr(cd, "open_from_args", lambda args, path=None: tr)
    out, js, csv, png = (tmp_path / "li.CHGCAR", tmp_path / "d.json", tmp_path / "d.csv", tmp_path / "d.png")
    assert main(["density", "x.lammpstrj", "--species", "Li", "--grid", "4", "4", "4", "--out", str(out),
                 "--axis", "c", "--csv", str(csv), "--json", str(js), "--plot", str(png)]) == 0
    assert read_chgcar(out)[1].shape == (4, 4, 4)
    assert csv.read_text().startswith("s,x_A,p_per_unit_s")
    d = json.loads(js.read_text())
    assert d["grid_shape"] == [4, 4, 4] and d["n_atoms"] == 6
    assert png.stat().st_size > 1000
    assert main(["density", "x.lammpstrj", "--species", "Li"]) == 2  # nothing to write
    assert main(["density", "x.lammpstrj", "--species", "Li", "--csv", str(tmp_path / "q.csv")]) == 2
    assert main(["density", "x.lammpstrj", "--species", "Li", "--out", str(tmp_path / "li.txt")]) == 2
    assert main(["density", "x.lammpstrj", "--species", "Li", "--out", str(out)]) == 2  # exists


@settings(deadline=None, max_examples=15)
@given(seed=st.integers(0, 1000), shift=st.tuples(st.integers(-5, 5), st.integers(-5, 5), st.integers(-5, 5)))
def test_translation_by_whole_voxels_rolls_the_grid(seed, shift):
    shape = (4, 5, 6)
    tr, pos = traj_random(n_frames=4, seed=seed, style="unwrapped")
    r = am.density(tr, "Li", grid=shape)
    t = (np.array(shift) / np.array(shape)) @ CELL  # a translation by whole voxels
    tr2 = am.from_arrays(pos + t, CELL, species=["Li"] * 6 + ["S"] * 4, frame_interval=1.0)
    r2 = am.density(tr2, "Li", grid=shape)
    npt.assert_allclose(r2.density, np.roll(r.density, shift, axis=(0, 1, 2)), atol=1e-12)
