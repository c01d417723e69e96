"""The streamed reorientation equals the in-memory result (issue 15): C1/C2, events, ρ, angles, integrity."""

import os
import tempfile

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings, strategies as st

import anionmotion
from anionmotion.analysis.polyanions import find_polyanions
from anionmotion.analysis.reorientation import (_check_site_tolerance, _event_table, _orientation_ligand,
                                                _projection_angles, ligand_density, orientation_acf,
                                                read_unit_vectors, reorientation)
from anionmotion.errors import IntegrityWarning, OptionError
from anionmotion.kernels.events import rotation_events_symmetry, rotation_events_threshold

from _polyanion_models import TET, rotational_brownian

TRI = np.array([[1.0, 0, 0], [-0.5, np.sqrt(3) / 2, 0], [-0.5, -np.sqrt(3) / 2, 0]])


def brownian_traj(seed, n_frames, *, mixed=False, dt=0.05, Dr=1.0):
    """Rotating rigid anions; ``mixed`` adds triangular SiS3 anions (two centre species, padded ligand rows)."""
    rng = np.random.default_rng(seed)
    pos, sp, cell = rotational_brownian(rng, n_frames, 8, dt, Dr, box=16.0)
    if mixed:
        p2, s2, _ = rotational_brownian(rng, n_frames, 3, dt, 2 * Dr, shape=TRI, box=16.0)
        p2 = p2 + np.array([4.0, 4.0, 4.0])                        # between the PS4 of the first lattice
        pos = np.concatenate([pos, p2], axis=1)
        sp = sp + ["Si" if s == "P" else s for s in s2]
    return anionmotion.from_arrays(pos, cell, species=sp, frame_interval=dt)


def in_memory(traj, pa, *, threshold=70.0, tol=30.0, start=None, stop=None, step=None, use_ext=True):
    """The pre-streaming computation: every unit vector in RAM, then the array functions."""
    u, times, cells, frames, integ = read_unit_vectors(traj, pa, start=start, stop=stop, step=step, use_ext=use_ext)
    nv = pa.ligand_counts.astype(np.int64)
    valid = np.arange(pa.n_ligands)[None, :] < nv[:, None]
    out = {"C1": orientation_acf(u[:, valid, :])[0], "C2": orientation_acf(u[:, valid, :])[1]}
    sp_of = np.asarray(traj.species)[pa.centers]
    out["per_species"] = {}
    if len(pa.center_species.split()) > 1:
        for s in pa.center_species.split():
            out["per_species"][s] = orientation_acf(u[:, valid & (sp_of == s)[:, None], :])
    span_ns = (times[-1] - times[0]) / 1000
    out["threshold"] = _event_table(rotation_events_threshold(u, threshold, use_ext=use_ext), u, times, frames, nv,
                                    span_ns, pa.n_anions)
    _check_site_tolerance(u[0], nv, tol)
    out["symmetry"] = _event_table(rotation_events_symmetry(u, nv, tol, use_ext=use_ext), u, times, frames, nv,
                                   span_ns, pa.n_anions, sites=True)
    out["rho"], out["rho_per"], _, _ = ligand_density(u)
    out["angles"] = _projection_angles(u, cells, _orientation_ligand(u[0], cells[0], valid))
    out["times"] = times
    out["integrity"] = integ
    return out


def assert_same(r, ref, *, angles=True):
    npt.assert_allclose(r.C1, ref["C1"], rtol=0, atol=1e-12)
    npt.assert_allclose(r.C2, ref["C2"], rtol=0, atol=1e-12)
    assert set(r.per_species) == set(ref["per_species"])
    for s, (a1, a2) in ref["per_species"].items():
        npt.assert_allclose(r.per_species[s]["C1"], a1, rtol=0, atol=1e-12)
        npt.assert_allclose(r.per_species[s]["C2"], a2, rtol=0, atol=1e-12)
    for m in ("threshold", "symmetry"):
        got, exp = r.events[m], ref[m]
        assert got["count"] == exp["count"]
        for k in ("anion", "frame", "per_anion"):
            npt.assert_array_equal(got[k], exp[k])
        npt.assert_array_equal(got["time_ps"], exp["time_ps"])
        npt.assert_allclose(got["angle_deg"], exp["angle_deg"], rtol=0, atol=1e-12)
    # ρ from identical counts: the normalised maps are bit-identical
    npt.assert_array_equal(r.rho, ref["rho"])
    npt.assert_array_equal(r.rho_per_anion, ref["rho_per"])
    if angles:
        st_ = r.meta["angles_stride"]
        npt.assert_array_equal(r.angles_deg, ref["angles"][::st_])
        npt.assert_array_equal(r.times_ps, ref["times"][::st_])
    assert r.integrity == ref["integrity"]


@settings(deadline=None, max_examples=30)
@given(seed=st.integers(0, 2 ** 31), n_frames=st.integers(2, 90), mixed=st.booleans(),
       memory=st.sampled_from([1_500, 12_000, 60_000, 400_000, "1GB"]),
       chunk=st.one_of(st.none(), st.integers(1, 40)), step=st.sampled_from([1, 1, 2, 3]),
       start=st.integers(0, 5), use_ext=st.booleans(), threshold=st.floats(25, 110))
def test_streamed_equals_in_memory(seed, n_frames, mixed, memory, chunk, step, start, use_ext, threshold):
    traj = brownian_traj(seed, n_frames + start + 2 * step, mixed=mixed)
    pa = find_polyanions(traj, center="P Si" if mixed else "P", ligand="S", cutoff=2.5, frame=start)
    stop = start + step * max(n_frames, 2)
    r = reorientation(traj, polyanions=pa, threshold=threshold, memory=memory, frames_per_chunk=chunk, start=start,
                      stop=stop, step=step, use_ext=use_ext)
    ref = in_memory(traj, pa, threshold=threshold, start=start, stop=stop, step=step, use_ext=use_ext)
    assert_same(r, ref)
    assert r.meta["frames"] == len(ref["times"])
    if memory == 1_500:
        assert r.meta["acf_store"]["mode"] == "out-of-core" and r.meta["frames_per_chunk"] == 1
    if memory == "1GB":
        assert r.meta["acf_store"]["mode"] == "memory" and r.meta["acf_store"]["scratch_file"] is None
    if chunk is not None:
        assert r.meta["frames_per_chunk"] <= chunk


def test_existing_cases_streamed_with_a_tiny_budget_equal_the_default_run():
    # the rotational Brownian case of test_reorientation (theory test), with every part out of core / strided
    traj = brownian_traj(42, 600)
    big = reorientation(traj, center="P", ligand="S")
    small = reorientation(traj, center="P", ligand="S", memory="64KB", frames_per_chunk=17)
    assert big.meta["acf_store"]["mode"] == "memory" and small.meta["acf_store"]["mode"] == "out-of-core"
    npt.assert_allclose(small.C1, big.C1, rtol=0, atol=1e-12)
    npt.assert_allclose(small.C2, big.C2, rtol=0, atol=1e-12)
    for m in ("threshold", "symmetry"):
        npt.assert_array_equal(small.events[m]["frame"], big.events[m]["frame"])
        npt.assert_array_equal(small.events[m]["anion"], big.events[m]["anion"])
        npt.assert_allclose(small.events[m]["angle_deg"], big.events[m]["angle_deg"], rtol=0, atol=1e-12)
    npt.assert_array_equal(small.rho, big.rho)
    assert big.meta["angles_stride"] == 1 and big.angles_deg.shape == (600, 8, 3)
    st_ = small.meta["angles_stride"]
    assert st_ > 1 and small.angles_deg.shape[0] == len(range(0, 600, st_))
    npt.assert_array_equal(small.angles_deg, big.angles_deg[::st_])
    assert small.tau1_ps == pytest.approx(big.tau1_ps, rel=1e-9)


def test_tiny_budget_uses_the_scratch_file_and_removes_it():
    traj = brownian_traj(1, 50)
    r = reorientation(traj, center="P", ligand="S", memory="16KB")
    store = r.meta["acf_store"]
    assert store["mode"] == "out-of-core"
    assert store["bytes"] == 8 * 3 * 32 * 50                    # 32 vectors × 3 components × 50 frames
    assert store["scratch_dir"] == tempfile.gettempdir() and store["scratch_file"].startswith("anonymous")
    assert not [f for f in os.listdir(tempfile.gettempdir()) if f.startswith("anionmotion-reorient-")]
    assert r.meta["memory_budget_bytes"] == 16 * 1024
    r2 = reorientation(traj, center="P", ligand="S", memory="1GB")
    assert r2.meta["acf_store"] == {"mode": "memory", "bytes": store["bytes"], "scratch_dir": None,
                                    "scratch_file": None}


def test_scratch_removed_and_csv_dropped_on_error(tmp_path, monkeypatch):
    from anionmotion.analysis import reorientation as mod

    traj = brownian_traj(2, 40)
    seen = []
    orig = mod.SeriesStore

    class Spy(orig):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            seen.append(self)

    def boom(self):
        raise RuntimeError("stop")

    monkeypatch.setattr(mod, "SeriesStore", Spy)
    monkeypatch.setattr(mod.Reorientation, "_acfs", boom)
    csv = tmp_path / "angles.csv"
    with pytest.raises(RuntimeError, match="stop"):
        reorientation(traj, center="P", ligand="S", memory="16KB", angles_csv=csv)
    assert seen and seen[0].path is None                          # closed: scratch file deleted
    assert os.listdir(tmp_path) == []                             # no partial CSV, no temporary file


def test_angles_csv_has_every_frame(tmp_path):
    traj = brownian_traj(3, 130)
    csv = tmp_path / "angles.csv"
    r = reorientation(traj, center="P", ligand="S", memory="64KB", frames_per_chunk=9, angles_csv=csv)
    full = reorientation(traj, center="P", ligand="S")
    assert r.meta["angles_csv"] == str(csv) and r.meta["angles_stride"] >= 1
    with open(csv) as fh:
        header = fh.readline().strip().split(",")
    assert header[:5] == ["time_ps", "frame", "theta_a_deg_0", "theta_b_deg_0", "theta_c_deg_0"]
    assert len(header) == 2 + 3 * 8
    tab = np.loadtxt(csv, delimiter=",", skiprows=1)
    assert tab.shape == (130, 26)
    npt.assert_array_equal(tab[:, 1], np.arange(130))
    npt.assert_allclose(tab[:, 0], full.times_ps, rtol=1e-9)
    npt.assert_allclose(tab[:, 2:].reshape(130, 8, 3), full.angles_deg, rtol=0, atol=1e-5)   # %.8g
    with pytest.raises(OptionError, match="output file exists"):
        reorientation(traj, center="P", ligand="S", angles_csv=csv)
    r3 = reorientation(traj, center="P", ligand="S", angles_csv=csv, overwrite=True, step=2)
    assert np.loadtxt(csv, delimiter=",", skiprows=1).shape == (65, 26)
    assert r3.meta["angles_stride"] == 1


def test_integrity_online_with_strided_frames():
    traj0 = brownian_traj(4, 12, Dr=0.0)
    pos = traj0.read().positions.copy()
    pa = find_polyanions(traj0, center="P", ligand="S", cutoff=2.5)
    lig = int(pa.ligands[5, 1])
    d = pos[0, lig] - pos[0, pa.centers[5]]
    pos[7:, lig] += d / np.linalg.norm(d)                         # leaves at frame 7: 3.05 Å > 2.5 Å
    traj = anionmotion.from_arrays(pos, traj0.cells[0], species=list(traj0.species), frame_interval=0.05)
    for step, first in ((1, 7), (2, 8), (3, 9)):
        with pytest.warns(IntegrityWarning, match=f"lost ligand atom {lig} at frame {first}"):
            r = reorientation(traj, polyanions=pa, step=step, memory="16KB", frames_per_chunk=2)
        assert len(r.integrity) == 1 and r.integrity[0]["frame"] == first and not r.framework["intact"]
        with pytest.warns(IntegrityWarning):
            ev = pa.check_integrity(traj, step=step, frames_per_chunk=2)
        assert ev == r.integrity


@settings(deadline=None, max_examples=25)
@given(seed=st.integers(0, 10 ** 6), cuts=st.lists(st.integers(1, 39), max_size=6, unique=True),
       use_ext=st.booleans())
def test_event_kernels_carry_their_reference_across_chunks(seed, cuts, use_ext):
    rng = np.random.default_rng(seed)
    u = np.cumsum(rng.normal(size=(40, 3, 4, 3)) * 0.4, axis=0) + TET[None, None] * 2
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    u[:, 2, 3] = np.nan
    nv = np.array([4, 4, 3])
    whole_t = rotation_events_threshold(u, 50.0, use_ext=use_ext)
    whole_s = rotation_events_symmetry(u, nv, 30.0, use_ext=use_ext)
    ref_t = np.ascontiguousarray(u[0].copy())
    ref_s = np.ascontiguousarray(u[0].copy())
    parts_t, parts_s = [], []
    edges = [0] + sorted(cuts) + [40]
    for a, b in zip(edges[:-1], edges[1:]):
        parts_t.append(rotation_events_threshold(u[a:b], 50.0, ref=ref_t, use_ext=use_ext))
        parts_s.append(rotation_events_symmetry(u[a:b], nv, 30.0, ref=ref_s, use_ext=use_ext))
    npt.assert_array_equal(np.concatenate(parts_t), whole_t)
    npt.assert_array_equal(np.concatenate(parts_s), whole_s)
    with pytest.raises(ValueError, match="ref must have shape"):
        rotation_events_threshold(u, 50.0, ref=np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match="writeable C-contiguous float64"):
        rotation_events_threshold(u, 50.0, ref=np.zeros((3, 4, 3), dtype=np.float32))


def test_progress_bars_for_reading_and_transforms(capsys):
    traj = brownian_traj(5, 60)
    reorientation(traj, center="P", ligand="S", progress=True, memory="64KB")
    err = capsys.readouterr().err
    assert "reorient: reading" in err and "reorient: C1…C4 transforms" in err


def test_cli_memory_and_angles_csv(tmp_path, monkeypatch):
    import json

    from anionmotion.cli import main
    from anionmotion.cli import reorient as cli_reorient

    traj = brownian_traj(6, 80)
    monkeypatch.setattr(cli_reorient, "open_from_args", lambda args: traj)
    out, csv = tmp_path / "r.json", tmp_path / "a.csv"
    rc = main(["reorient", "x.traj", "--center", "P", "--ligand", "S", "--memory", "32KB", "--angles-csv", str(csv),
               "--json", str(out), "--no-progress"])
    assert rc == 0
    d = json.loads(out.read_text())
    assert d["meta"]["acf_store"]["mode"] == "out-of-core" and d["meta"]["angles_csv"] == str(csv)
    assert np.loadtxt(csv, delimiter=",", skiprows=1).shape == (80, 26)
    rc = main(["reorient", "x.traj", "--center", "P", "--ligand", "S", "--angles-csv", str(csv)])
    assert rc == 2                                    # refuses to overwrite, before any work
    rc = main(["reorient", "x.traj", "--center", "P", "--ligand", "S", "--memory", "lots"])
    assert rc == 2


def test_option_errors():
    traj = brownian_traj(7, 10)
    with pytest.raises(OptionError, match="frames_per_chunk must be a positive integer"):
        reorientation(traj, center="P", ligand="S", frames_per_chunk=0)
    with pytest.raises(OptionError, match="rho_bins must be two positive bin counts"):
        reorientation(traj, center="P", ligand="S", rho_bins=(0, 10))
    with pytest.raises(OptionError, match="invalid memory size"):
        reorientation(traj, center="P", ligand="S", memory="lots")


def test_class_runs_twice_and_matches_the_wrapper(tmp_path):
    from anionmotion.analysis.reorientation import Reorientation

    t1, t2 = brownian_traj(8, 40), brownian_traj(9, 60, mixed=True)
    an = Reorientation(center="P", ligand="S", cutoff=2.5, memory="32KB", store_mode="out-of-core",
                       scratch_dir=str(tmp_path))
    a = an.run(t1, start=2)
    assert an.pa.n_anions == 8 and a.meta["acf_store"]["scratch_dir"] == str(tmp_path)
    b = an.run(t2, stop=50)                            # identified again in this trajectory (P only: 8 anions)
    assert os.listdir(tmp_path) == []                  # both scratch files removed
    for r, ref in ((a, reorientation(t1, center="P", ligand="S", cutoff=2.5, start=2)),
                   (b, reorientation(t2, center="P", ligand="S", cutoff=2.5, stop=50))):
        npt.assert_allclose(r.C1, ref.C1, rtol=0, atol=1e-12)
        assert r.events["threshold"]["count"] == ref.events["threshold"]["count"]
        assert r.meta["frames"] == ref.meta["frames"]


def test_cli_cation_jump_frequency(tmp_path, monkeypatch, capsys):
    import json

    from anionmotion.cli import main
    from anionmotion.cli import reorient as cli_reorient

    rng = np.random.default_rng(10)
    pos, sp, cell = rotational_brownian(rng, 120, 8, 0.05, 1.0, box=16.0)
    li = np.array([[5.0, 5, 5], [13.0, 5, 13]]) + np.cumsum(rng.normal(0, 0.05, size=(120, 2, 3)), axis=0)
    traj = anionmotion.from_arrays(np.concatenate([pos, li], axis=1), cell, species=sp + ["Li", "Li"],
                                   frame_interval=0.05)
    monkeypatch.setattr(cli_reorient, "open_from_args", lambda args: traj)
    out = tmp_path / "r.json"
    rc = main(["reorient", "x.traj", "--center", "P", "--ligand", "S", "--cation", "Li", "--hop-a", "2.0",
               "--hop-residence", "0.5", "--hop-window", "1.5", "--json", str(out), "--no-progress"])
    assert rc == 0
    d = json.loads(out.read_text())
    assert d["cation"]["species"] == "Li" and d["cation_jump_frequency_per_ns"] == d["cation"]["jump_frequency_per_ns"]
    assert "Li jumps" in capsys.readouterr().out


@pytest.mark.parametrize("store_mode", ["memory", "out-of-core"])
def test_c1c2_blocks_as_mapper_tasks_equal_the_serial_run(store_mode, tmp_path):
    """Item 6: the C1/C2 transforms run as tasks of a mapper (here map, and Dask threads) — same numbers."""
    traj = brownian_traj(5, 80, mixed=True)
    kw = dict(center="P Si", ligand="S", memory="64KB", store_mode=store_mode, scratch_dir=str(tmp_path))
    from anionmotion.analysis.reorientation import Reorientation

    serial = Reorientation(**kw).run(traj)
    calls = []

    def mapper(fn, items):
        items = list(items)
        calls.append(len(items))
        return list(map(fn, items))

    an = Reorientation(mapper=mapper, **kw)
    mapped = an.run(traj)
    assert calls == [-(-an.n_vec // an.fft_block)] and calls[0] > 1
    np.testing.assert_array_equal(mapped.C1, serial.C1)
    np.testing.assert_array_equal(mapped.C2, serial.C2)
    for s in serial.per_species:
        np.testing.assert_array_equal(mapped.per_species[s]["C1"], serial.per_species[s]["C1"])
    assert os.listdir(tmp_path) == []                    # the named scratch file is removed too
    import distributed                                   # in the test extra
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        dask_res = Reorientation(mapper=lambda fn, items: client.gather(client.map(fn, list(items), pure=False)),
                                 **kw).run(traj)
    np.testing.assert_array_equal(dask_res.C1, serial.C1)
    np.testing.assert_array_equal(dask_res.C2, serial.C2)
