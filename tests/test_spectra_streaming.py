"""Streamed VACF/VDOS, libration, density and g(r) (issue 15): equal to in-memory references at any chunking,
budget and store (RAM or scratch file), and under a mapper (built-in map, Dask) equal to the serial run."""

import json
import os
import warnings

import distributed
import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anionmotion as am
from anionmotion.analysis._streaming import correlate_store, frame_blocks
from anionmotion.analysis.base import SeriesStore
from anionmotion.analysis.density import Density
from anionmotion.analysis.libration import Libration, _member_table, _relative, angular_velocities
from anionmotion.analysis.rdf import RDF
from anionmotion.analysis.vdos import VDOS
from anionmotion.errors import OptionError, SamplingWarning, UnwrapWarning
from anionmotion.kernels.correlate import acf_sum, acf_sum_ref, acf_sum_rows, vacf

CELL = np.array([[8.0, 0, 0], [1.5, 7.0, 0], [0.5, -1.0, 9.0]])
TET = 1.5 / np.sqrt(3) * np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])


def random_velocities(n_frames=90, n=5, seed=0):
    """Random velocities (Li, Li, O, …) and positions integrated from them, Å/ps and Å."""
    rng = np.random.default_rng(seed)
    vel = rng.normal(0, 2.0, (n_frames, n, 3)) + np.sin(np.arange(n_frames) * 0.7)[:, None, None]
    pos = 4.0 + np.cumsum(vel, axis=0) * 0.01
    species = (["Li", "O"] * n)[:n]
    return pos, vel, species, 0.01


def vacf_reference(vel, species, masses):
    """Plain-numpy per-species VACF (direct sums, O(T²)) and the mass-weighted total sum."""
    out = {}
    T = vel.shape[0]
    norm = T - np.arange(T)
    mw = np.zeros(T)
    for s in dict.fromkeys(species):
        idx = [i for i, x in enumerate(species) if x == s]
        out[s] = acf_sum_ref(vel[:, idx]) / (norm * len(idx))
        mw += acf_sum_ref(vel[:, idx], weights=masses[idx]) / norm
    return out, mw


# ------------------------------------------------------------------ kernels
@settings(deadline=None, max_examples=30)
@given(T=st.integers(1, 60), n=st.integers(1, 5), n_w=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_acf_sum_rows_equals_direct_sum(T, n, n_w, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, n, 3))
    w = rng.uniform(0.5, 2.0, (n, n_w))
    rows = x.reshape(T, -1).T
    got = acf_sum_rows(rows, weights=np.repeat(w, 3, axis=0))
    npt.assert_allclose(got, acf_sum_ref(x, weights=w), rtol=1e-12, atol=1e-12 * np.abs(x).max() ** 2 * T * n)
    npt.assert_allclose(got, acf_sum(x, weights=w), rtol=1e-12, atol=1e-13 * np.abs(x).max() ** 2 * T * n)


@settings(deadline=None, max_examples=25)
@given(T=st.integers(2, 50), n_rows=st.integers(1, 12), rpb=st.integers(1, 12), seed=st.integers(0, 10_000),
       out_of_core=st.booleans())
def test_correlate_store_blocks_equal_whole(T, n_rows, rpb, seed, out_of_core, tmp_path_factory):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, n_rows))
    w = rng.uniform(0.5, 2.0, (n_rows, 2))
    with SeriesStore(n_rows, T, budget=1 << 30, mode="out-of-core" if out_of_core else "memory",
                     scratch_dir=str(tmp_path_factory.mktemp("s"))) as store:
        for t0 in range(0, T, 7):
            store.write(t0, x[t0:t0 + 7])
        got, n_blocks = correlate_store(store, w, T, budget=1 << 30, rows_per_block=rpb)
        blocks = [correlate_store(store, w, T, budget=1 << 30, rows_per_block=rpb, mapper=map)[0]]
    assert n_blocks == -(-n_rows // rpb)
    ref = acf_sum_ref(x, weights=w)
    npt.assert_allclose(got, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    npt.assert_array_equal(blocks[0], got)  # the built-in map runs the same blocks: bit for bit


# ------------------------------------------------------------------ VACF / VDOS
@settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(memory=st.integers(12_000, 400_000), rpb=st.one_of(st.none(), st.integers(1, 16)),
       n_frames=st.integers(8, 90), seed=st.integers(0, 1000), source=st.sampled_from(["file", "positions"]))
def test_vdos_streamed_equals_in_memory(memory, rpb, n_frames, seed, source, tmp_path):
    pos, vel, sp, dt = random_velocities(n_frames=n_frames, seed=seed)
    tr = am.from_arrays(pos, np.eye(3) * 30, species=sp, velocities=vel, frame_interval=dt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        full = VDOS(velocities=source, memory="1GB", store_mode="memory").run(tr)
        try:
            small = VDOS(velocities=source, memory=memory, rows_per_block=rpb, scratch_dir=str(tmp_path)).run(tr)
        except OptionError as err:  # the budget cannot hold one transformed row: refused, never exceeded
            assert "is too small" in str(err)
            return
    assert os.listdir(tmp_path) == []  # the scratch file is gone
    v = vel if source == "file" else np.gradient(pos, dt, axis=0, edge_order=1)
    ref, mw = vacf_reference(v, sp, tr.masses)
    for s in ("Li", "O"):
        npt.assert_allclose(full.vacf[s], ref[s], rtol=1e-12, atol=1e-12 * ref[s][0])
        npt.assert_allclose(small.vacf[s], full.vacf[s], rtol=1e-12, atol=1e-12 * full.vacf[s][0])
        npt.assert_allclose(small.vdos[s], full.vdos[s], rtol=1e-12, atol=1e-12 * np.abs(full.vdos[s]).max())
    npt.assert_allclose(full.vacf_mass_weighted * len(sp), mw, rtol=1e-12, atol=1e-12 * mw[0])
    npt.assert_allclose(small.vacf_mass_weighted, full.vacf_mass_weighted, rtol=1e-12,
                        atol=1e-12 * full.vacf_mass_weighted[0])
    npt.assert_allclose(small.vdos["total"], full.vdos["total"], rtol=1e-12,
                        atol=1e-12 * np.abs(full.vdos["total"]).max())
    assert small.meta["exact_all_origin"] and small.meta["segments"] == 1


def test_vdos_out_of_core_is_used_and_equals_functional_tier():
    pos, vel, sp, dt = random_velocities(n_frames=400, n=6, seed=3)
    tr = am.from_arrays(pos, np.eye(3) * 30, species=["Li"] * 6, velocities=vel, frame_interval=dt)
    small = am.vdos(tr, memory="100KB")
    assert small.meta["series_store"] == "out-of-core scratch file" and small.meta["row_blocks"] > 1
    npt.assert_allclose(small.vacf["Li"], vacf(vel), rtol=1e-12, atol=1e-12 * vacf(vel)[0])
    big = am.vdos(tr, memory="1GB")
    assert big.meta["series_store"] == "in memory"
    npt.assert_allclose(small.vdos["total"], big.vdos["total"], rtol=1e-12, atol=1e-12 * big.vdos["total"].max())
    with pytest.raises(OptionError, match=r"memory=1000 is too small for 6 atoms and 400 frames"):
        am.vdos(tr, memory=1000)


def test_vdos_mapper_equals_serial():
    pos, vel, sp, dt = random_velocities(n_frames=200, n=7, seed=5)
    tr = am.from_arrays(pos, np.eye(3) * 30, species=sp, velocities=vel, frame_interval=dt)
    serial = VDOS(memory="300KB", rows_per_block=4).run(tr)
    calls = []

    def mapper(fn, items):
        items = list(items)
        calls.append(len(items))
        return [fn(i) for i in items]

    mapped = VDOS(memory="300KB", rows_per_block=4, mapper=mapper).run(tr)
    assert calls == [-(-21 // 4)]
    for k in serial.vacf:
        npt.assert_array_equal(mapped.vacf[k], serial.vacf[k])
    # the default block size under a mapper may differ; still equal to 1e-12
    m2 = am.vdos(tr, memory="300KB", mapper=map)
    for k in serial.vdos:
        npt.assert_allclose(m2.vdos[k], serial.vdos[k], rtol=1e-12, atol=1e-12 * np.abs(serial.vdos[k]).max())


def test_vdos_progress_bars_for_reading_and_transform(capsys):
    pos, vel, sp, dt = random_velocities(n_frames=50, n=3)
    tr = am.from_arrays(pos, np.eye(3) * 30, species=sp, velocities=vel, frame_interval=dt)
    am.vdos(tr, progress=True)
    err = capsys.readouterr().err
    assert "vdos: reading" in err and "vdos: VACF transform" in err


# ------------------------------------------------------------------ libration
def librating(n_frames=240, dt=0.01, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) * dt
    centres = np.array([[3.0, 3, 3], [9, 9, 9], [3, 9, 6]])
    n = len(centres) * 5 + 2
    from scipy.spatial.transform import Rotation

    pos = np.zeros((n_frames, n, 3))
    vel = np.zeros_like(pos)
    sp = []
    for a, c in enumerate(centres):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        nu = rng.uniform(2, 5)
        ang = 0.3 * np.sin(2 * np.pi * nu * t) + 0.05 * rng.normal(size=n_frames).cumsum() * 0.1
        angd = np.gradient(ang, dt)
        R = Rotation.from_rotvec(ang[:, None] * axis).as_matrix()
        lig = np.einsum("tkl,il->tik", R, TET)
        pos[:, 5 * a] = c
        pos[:, 5 * a + 1:5 * a + 5] = c + lig
        vel[:, 5 * a + 1:5 * a + 5] = np.cross((angd[:, None] * axis)[:, None, :], lig)
        sp += ["S", "O", "O", "O", "O"]
    pos[:, -2:] = np.array([[6.0, 6, 6], [1, 1, 10]]) + 0.1 * np.sin(2 * np.pi * 3 * t)[:, None, None]
    vel[:, -2:] = (0.1 * 2 * np.pi * 3 * np.cos(2 * np.pi * 3 * t))[:, None, None] * np.ones(3)
    sp += ["Li", "Li"]
    return am.from_arrays(pos, np.eye(3) * 12, species=sp, velocities=vel, frame_interval=dt)


@settings(deadline=None, max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(memory=st.integers(8_000, 200_000), fpc=st.one_of(st.none(), st.integers(1, 100)),
       rpb=st.one_of(st.none(), st.integers(1, 9)), omega=st.sampled_from(["velocities", "rotations"]))
def test_libration_streamed_equals_in_memory(memory, fpc, rpb, omega, tmp_path):
    tr = librating()
    polys = am.find_polyanions(tr, center="S", ligand="O")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        full = Libration(polyanions=polys, cation=None, omega=omega, memory="1GB", store_mode="memory").run(tr)
        try:
            small = Libration(polyanions=polys, cation=None, omega=omega, memory=memory, frames_per_chunk=fpc,
                              rows_per_block=rpb, scratch_dir=str(tmp_path)).run(tr)
        except OptionError as err:
            assert "is too small" in str(err)
            return
    assert os.listdir(tmp_path) == []
    npt.assert_allclose(small.omega_acf, full.omega_acf, rtol=1e-12, atol=1e-12 * full.omega_acf[0])
    npt.assert_allclose(small.spectrum, full.spectrum, rtol=1e-12, atol=1e-12 * np.abs(full.spectrum).max())
    if omega == "velocities":  # plain-numpy reference: ω of the whole run in memory, direct-sum ACF
        tab, mas = _member_table(polys)
        ch = tr.read(polys.atoms)
        cols = np.searchsorted(polys.atoms, np.where(tab >= 0, tab, polys.atoms[0]))
        v = ch.velocities[:, cols]
        v[:, mas == 0] = 0.0
        w = angular_velocities(_relative(polys, ch, mas), v, mas)
        T = len(w)
        ref = acf_sum_ref(w) / ((T - np.arange(T)) * polys.n_anions)
        npt.assert_allclose(full.omega_acf, ref, rtol=1e-12, atol=1e-12 * ref[0])


def test_libration_mapper_and_cation_vdos_budget():
    tr = librating(n_frames=300)
    polys = am.find_polyanions(tr, center="S", ligand="O")
    serial = am.libration(tr, polyanions=polys, cation=None, memory="40KB")
    assert serial.meta["series_store"] == "out-of-core scratch file" and serial.meta["row_blocks"] > 1
    mapped = am.libration(tr, polyanions=polys, cation=None, memory="40KB", mapper=map)
    npt.assert_allclose(mapped.omega_acf, serial.omega_acf, rtol=1e-12, atol=1e-12 * serial.omega_acf[0])
    with pytest.raises(OptionError, match="memory='40KB' is too small for 2 atoms and 300 frames"):
        am.libration(tr, polyanions=polys, cation="Li", memory="40KB")  # the cation VDOS shares the budget
    s2 = am.libration(tr, polyanions=polys, memory="1MB")
    m2 = am.libration(tr, polyanions=polys, memory="1MB", mapper=map)
    assert s2.meta["cation_vdos"]["series_store"] == "in memory"
    npt.assert_allclose(m2.cation_vdos, s2.cation_vdos, rtol=1e-12, atol=1e-12 * np.abs(s2.cation_vdos).max())
    npt.assert_allclose(s2.omega_acf, serial.omega_acf, rtol=1e-12, atol=1e-12 * serial.omega_acf[0])
    assert m2.overlap_with_cation == pytest.approx(s2.overlap_with_cation, rel=1e-12)


# ------------------------------------------------------------------ density
def traj_random(n_frames=30, n_li=6, n_s=4, cells=CELL, seed=0):
    rng = np.random.default_rng(seed)
    cells = np.asarray(cells)
    frac = rng.uniform(-0.5, 1.5, (n_frames, n_li + n_s, 3))
    pos = np.einsum("tik,tkl->til", frac, cells) if cells.ndim == 3 else frac @ cells
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnwrapWarning)
        tr = am.from_arrays(pos, cells, species=["Li"] * n_li + ["S"] * n_s, frame_interval=1.0, style="wrapped")
    return tr, frac


def npt_cells(n_frames, seed=1):
    rng = np.random.default_rng(seed)
    return CELL[None] * (1 + 0.03 * rng.normal(size=(n_frames, 1, 1)))


def count_reference(frac, shape):
    s = frac - np.floor(frac)
    idx = np.minimum((s * np.array(shape)).astype(np.int64), np.array(shape) - 1)
    grid = np.zeros(shape)
    np.add.at(grid, (idx[..., 0].ravel(), idx[..., 1].ravel(), idx[..., 2].ravel()), 1.0)
    return grid


@settings(deadline=None, max_examples=25)
@given(fpc=st.integers(1, 40), block_frames=st.integers(1, 40), use_map=st.booleans(), npt_run=st.booleans(),
       seed=st.integers(0, 100), memory=st.sampled_from([40_000, 200_000, "1GB"]))
def test_density_streamed_and_blocked_counts_are_exact(fpc, block_frames, use_map, npt_run, seed, memory):
    n_frames = 30
    tr, frac = traj_random(n_frames, cells=npt_cells(n_frames) if npt_run else CELL, seed=seed)
    shape = (5, 4, 6)
    ref = Density("Li", grid=shape, memory="1GB").run(tr)
    try:
        got = Density("Li", grid=shape, frames_per_chunk=fpc, memory=memory, mapper=map if use_map else None,
                      block_frames=block_frames).run(tr)
    except OptionError as err:  # refused before allocation: the partial grids of the blocks exceed the budget
        n_blocks = len(frame_blocks(tr.frame_range(), block_frames)) if use_map else 0
        assert "more than half the memory budget" in str(err)
        assert 8 * np.prod(shape) * (2 + n_blocks) > 0.5 * memory
        return
    counts = count_reference(frac[:, :6], shape)
    for k, name in enumerate("abc"):  # the profiles are exact counts
        npt.assert_array_equal(got.profiles[name]["p"], ref.profiles[name]["p"])
        nb = shape[k]
        prof = counts.sum(axis=tuple(j for j in range(3) if j != k))
        npt.assert_allclose(ref.profiles[name]["p"], prof * nb / (6 * n_frames), rtol=1e-12)
    if npt_run:
        npt.assert_allclose(got.density, ref.density, rtol=1e-12, atol=0)
    else:  # constant cell: counts times one factor, bit for bit whatever the chunks and blocks
        npt.assert_array_equal(got.density, ref.density)
        vol = abs(np.linalg.det(CELL))
        npt.assert_allclose(ref.density, counts * np.prod(shape) / vol / n_frames, rtol=1e-12)
    if use_map:
        assert got.meta["frame_blocks"] == len(frame_blocks(tr.frame_range(), block_frames))


def test_density_grid_checked_against_budget_before_allocation():
    tr, _ = traj_random(4)
    with pytest.raises(OptionError, match=r"grid 100×100×100 needs 15.3 MiB .* more than half the memory budget"):
        am.density(tr, "Li", grid=(100, 100, 100), memory="20MB")
    with pytest.raises(OptionError, match=r"grid 40×40×40 needs 2.93 MiB \(6 copies of 500 KiB\)"):
        am.density(tr, "Li", grid=(40, 40, 40), memory="4MB", mapper=map, block_frames=1, frames_per_chunk=1)
    assert am.density(tr, "Li", grid=(40, 40, 40), memory="4MB").density.shape == (40, 40, 40)  # serial: 2 copies


@pytest.mark.filterwarnings("ignore::anionmotion.errors.UnwrapWarning")
def test_density_drift_removal_runs_serially_under_a_mapper():
    tr, _ = traj_random(12)
    a = am.density(tr, "Li", grid=(4, 4, 4), remove_drift="framework")
    b = am.density(tr, "Li", grid=(4, 4, 4), remove_drift="framework", mapper=map, frames_per_chunk=5)
    npt.assert_allclose(b.density, a.density, rtol=1e-12)
    assert b.meta["frame_blocks"] is None


# ------------------------------------------------------------------ g(r)
@settings(deadline=None, max_examples=25)
@given(fpc=st.integers(1, 30), block_frames=st.integers(1, 30), use_map=st.booleans(), npt_run=st.booleans(),
       seed=st.integers(0, 100))
def test_rdf_histograms_exact_under_any_chunking(fpc, block_frames, use_map, npt_run, seed):
    n_frames = 20
    tr, _ = traj_random(n_frames, cells=npt_cells(n_frames) if npt_run else CELL, seed=seed)
    ref = RDF(["Li-Li", "Li-S"], rmax=3.0, bins=30, memory="1GB").run(tr)
    got = RDF(["Li-Li", "Li-S"], rmax=3.0, bins=30, frames_per_chunk=fpc, mapper=map if use_map else None,
              block_frames=block_frames, memory="1GB").run(tr)
    for k in ref.g:
        npt.assert_array_equal(got.counts[k], ref.counts[k])
        npt.assert_array_equal(got.coordination[k], ref.coordination[k])
        npt.assert_allclose(got.g[k], ref.g[k], rtol=1e-12)
    # plain-numpy reference of the counts (minimum image; rmax below half the smallest width)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnwrapWarning)
        ch = tr.read()
    d_ref = np.zeros(30, dtype=np.int64)
    li = [i for i, s in enumerate(tr.species) if s == "Li"]
    for t in range(n_frames):
        cell = ch.cells[t]
        d = ch.positions[t, li][:, None] - ch.positions[t, li][None]
        s = d @ np.linalg.inv(cell)
        d = (s - np.round(s)) @ cell
        r = np.linalg.norm(d, axis=-1)[~np.eye(len(li), dtype=bool)]
        d_ref += np.histogram(r, bins=30, range=(0, 3.0))[0]
    npt.assert_array_equal(ref.counts["Li-Li"], d_ref)


def test_rdf_bins_checked_against_budget():
    tr, _ = traj_random(3)
    with pytest.raises(OptionError, match=r"2000000 bins × 1 pairs need .* more than half the memory budget"):
        am.rdf(tr, "Li-Li", rmax=3.0, bins=2_000_000, memory="40MB")


# ------------------------------------------------------------------ Dask and files
def _write_nc(path, tr):
    from anionmotion.io.netcdf_writer import NetCDFWriter

    ch = tr.read()
    with NetCDFWriter(str(path), list(tr.species), velocities=ch.velocities is not None) as w:
        for t in range(ch.n_frames):
            w.write(ch.positions[t], ch.cells[t], time=float(ch.times[t]),
                    velocities=None if ch.velocities is None else ch.velocities[t])


def test_dask_local_cluster_equals_serial(tmp_path):
    pos, vel, sp, dt = random_velocities(n_frames=120, n=6, seed=9)
    tr = am.from_arrays(pos, np.eye(3) * 30, species=sp, velocities=vel, frame_interval=dt)
    nc = tmp_path / "v.nc"
    _write_nc(nc, tr)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        def mapper(fn, items):
            return client.gather(client.map(fn, list(items), pure=False))

        with am.open(str(nc)) as f:
            serial_v = VDOS(memory="33KB", rows_per_block=3).run(f)
            dask_v = VDOS(memory="33KB", rows_per_block=3, mapper=mapper).run(f)
            serial_d = am.density(f, "Li", grid=(6, 6, 6))
            dask_d = am.density(f, "Li", grid=(6, 6, 6), mapper=mapper, source=(str(nc), {}), block_frames=25)
            serial_r = am.rdf(f, "Li-O", rmax=9.0, bins=50)
            dask_r = am.rdf(f, "Li-O", rmax=9.0, bins=50, mapper=mapper, source=str(nc), block_frames=33)
    assert serial_v.meta["series_store"] == "out-of-core scratch file"
    for k in serial_v.vacf:
        npt.assert_array_equal(dask_v.vacf[k], serial_v.vacf[k])
    npt.assert_array_equal(dask_d.density, serial_d.density)
    assert dask_d.meta["frame_blocks"] == 5
    npt.assert_array_equal(dask_r.counts["Li-O"], serial_r.counts["Li-O"])
    npt.assert_allclose(dask_r.g["Li-O"], serial_r.g["Li-O"], rtol=1e-12)


# ------------------------------------------------------------------ CLI
@pytest.mark.parametrize("cmd", ["vdos", "libration", "density", "rdf"])
def test_cli_memory_option(cmd, tmp_path, monkeypatch):
    import importlib

    from anionmotion.cli import main

    tr = librating(n_frames=200)
    mod = importlib.import_module(f"anionmotion.cli.{cmd}")
    monkeypatch.setattr(mod, "open_from_args", lambda args, path=None: tr)
    js = tmp_path / "o.json"
    extra = {"vdos": ["--species", "Li", "O", "--memory", "100KB", "--scratch-dir", str(tmp_path)],
             "libration": ["--center", "S", "--ligand", "O", "--cation", "none", "--memory", "25KB", "--scratch-dir",
                           str(tmp_path)],
             "density": ["--species", "Li", "--grid", "4", "4", "4", "--memory", "64MB"],
             "rdf": ["--pair", "Li-O", "--memory", "64MB"]}[cmd]
    assert main([cmd, "x.nc", *extra, "--json", str(js), "--no-progress"]) == 0
    d = json.loads(js.read_text())
    assert d["meta"]["memory_bytes"] == {"vdos": 100 * 1024, "libration": 25 * 1024}.get(cmd, 64 * 1024 ** 2)
    if cmd in ("vdos", "libration"):
        assert d["meta"]["series_store"] == "out-of-core scratch file"
    bad = ["10" if x in ("100KB", "25KB", "64MB") else x for x in extra]  # refused before anything is allocated
    assert main([cmd, "x.nc", *bad, "--json", str(tmp_path / "p.json"), "--no-progress"]) == 2
    assert not (tmp_path / "p.json").exists()
