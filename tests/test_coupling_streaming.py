"""Streamed coupling, timeline and hops equal the in-memory algorithms (issue 15).

The references below are the in-memory algorithms of anionmotion 0.1 written
out in plain numpy: read every frame, one (frames, pairs) distance array, one
residence-run search, two-pass Pearson sums, the coincidence statistic from
the whole unit-vector array, timelines sliced from the whole trajectory.
"""

import math
from types import SimpleNamespace

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings, strategies as st

import anionmotion
from anionmotion.analysis import coupling as coupling_mod
from anionmotion.analysis.coupling import (_angle, _centre_cation_vectors, _local_frames, coupling, first_shell_radius,
                                           load_system, min_image_rows, nearest_anions)
from anionmotion.analysis.hops import _OnlineRuns
from anionmotion.analysis.polyanions import find_polyanions
from anionmotion.analysis.timeline import timeline
from anionmotion.kernels.events import residence_runs
from anionmotion.kernels.hops import find_runs, hop_functional
from anionmotion.kernels.polyanion import half_widths2

from _polyanion_models import TET, axis_angle


def fake_hops(atoms, frames):
    return SimpleNamespace(event_atom=np.asarray(atoms, np.int64), event_frame=np.asarray(frames, np.int64), a_A=3.0,
                           residence_ps=1.0, window_ps=2.0, jump_frequency_per_ns=0.0)


def rattling_system(seed, n=150, n_li=5, box=12.0, style="unwrapped"):
    """Three SO4 on a line turning by random walks and ``n_li`` Li random-walking through their shells."""
    rng = np.random.default_rng(seed)
    centres = np.array([[2.0, 6.0, 6.0], [6.0, 6.0, 6.0], [10.0, 6.0, 6.0]])
    pos = np.zeros((n, 15 + n_li, 3))
    angs = np.cumsum(rng.normal(0, 0.15, (n, 3, 2)), axis=0)
    for t in range(n):
        for a in range(3):
            R = axis_angle([0, 0, 1], angs[t, a, 0]) @ axis_angle([1, 0, 0], angs[t, a, 1])
            pos[t, 5 * a] = centres[a]
            pos[t, 5 * a + 1:5 * a + 5] = centres[a] + (TET * 1.5) @ R.T
    start = centres[rng.integers(0, 3, n_li)] + rng.normal(0, 1.0, (n_li, 3)) + np.array([0, 0, 3.0])
    pos[:, 15:] = start + np.cumsum(rng.normal(0, 0.3, (n, n_li, 3)), axis=0)
    sp = (["S"] + ["O"] * 4) * 3 + ["Li"] * n_li
    if style == "wrapped":
        pos = pos - box * np.floor(pos / box)
    return anionmotion.from_arrays(pos, np.eye(3) * box, species=sp, frame_interval=0.1, style=style)


# ------------------------------------------------------------------ references (the 0.1 in-memory algorithms)
def reference_coupling(traj, *, cation, shell, min_residence, hops, window_ps, n_nearest, n_permutations, seed):
    pa = find_polyanions(traj, center="S", ligand="O")
    cat_idx = traj.select(species=cation)
    sysd = load_system(traj, pa, cat_idx)
    times, frames, cells = sysd["times"], sysd["frames"], sysd["cells"]
    n = len(times)
    dt = float(np.median(np.diff(times)))
    n_an = pa.n_anions
    v = _centre_cation_vectors(sysd)
    dist = np.linalg.norm(v, axis=-1).reshape(n, -1).astype(np.float32)
    g_r = None
    if shell is None:
        r_max = float(np.sqrt(half_widths2(cells).min()))
        sub = dist[::max(1, n // 2000)]
        shell, rr, gg = first_shell_radius(sub[sub < r_max], float(np.mean(np.abs(np.linalg.det(cells)))),
                                           dist.shape[1], len(sub), r_max=r_max)
        g_r = (rr, gg)
    min_frames = max(1, int(math.ceil(float(min_residence) / dt - 1e-9)) + 1)
    runs = residence_runs(dist < shell, min_frames)
    ev_pair, ev_s, ev_e = runs[:, 0], runs[:, 1], runs[:, 2]
    ev_cat, ev_an = ev_pair // n_an, ev_pair % n_an
    n_ev = len(runs)
    pearson = np.full(n_ev, np.nan)
    ev_lig = np.zeros(n_ev, dtype=np.int64)
    if n_ev:
        lens = ev_e - ev_s
        eid = np.repeat(np.arange(n_ev), lens)
        tt = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(ev_s, lens)
        ci, ai = ev_cat[eid], ev_an[eid]
        cna = min_image_rows(sysd["cat"][tt, ci] - sysd["cen"][tt, ai], cells[tt])
        s_idx = np.cumsum(lens) - lens
        cna0 = cna[s_idx][eid]
        lig0 = sysd["lig"][ev_s, ev_an]
        dCA = np.linalg.norm(cna[s_idx][:, None, :] - lig0, axis=-1)
        A = np.argmin(np.where(np.isnan(dCA), np.inf, dCA), axis=1)
        ev_lig = pa.ligands[ev_an, A]
        ca = sysd["lig"][tt, ai, A[eid]]
        x, y = _angle(cna, cna0), _angle(ca, ca[s_idx][eid])
        cnt = lens.astype(float)
        dx = x - (np.bincount(eid, x, n_ev) / cnt)[eid]
        dy = y - (np.bincount(eid, y, n_ev) / cnt)[eid]
        sxy, sxx, syy = (np.bincount(eid, q, n_ev) for q in (dx * dy, dx * dx, dy * dy))
        den = np.sqrt(sxx * syy)
        ok = den > 1e-12
        pearson[ok] = sxy[ok] / den[ok]
    # coincidence
    ev_atom, ev_frame = np.asarray(hops.event_atom), np.asarray(hops.event_frame)
    co = None
    if len(ev_atom):
        fl = _local_frames(frames, ev_frame)
        near = nearest_anions(sysd, np.searchsorted(cat_idx, ev_atom), fl, n_nearest)
        w = max(1, int(round(window_ps / dt)))
        co = reference_coincidence(sysd["u"], np.repeat(fl, near.shape[1]), near.ravel(), w, n_permutations, seed)
    return {"cation": cat_idx[ev_cat], "anion": ev_an, "ligand": ev_lig, "start": frames[ev_s],
            "stop": np.where(ev_e < n, frames[np.minimum(ev_e, n - 1)], frames[-1] + 1),
            "duration": (ev_e - ev_s - 1) * dt, "pearson": pearson, "shell": shell, "g_r": g_r, "co": co}


def reference_coincidence(u, hop_frames, hop_anions, w, n_permutations, seed):
    n = u.shape[0]
    keep = (hop_frames - w >= 0) & (hop_frames + w < n)
    out = {"n_pairs": int(keep.sum()), "n_dropped_at_ends": int((~keep).sum())}
    if n <= 2 * w:
        return {"n_pairs": 0}
    hf, ha = hop_frames[keep], hop_anions[keep]
    if len(hf) == 0:
        return out

    def dtheta(frames, anions):
        c = np.clip(np.einsum("...lk,...lk->...l", u[frames - w, anions], u[frames + w, anions]), -1, 1)
        return np.nanmean(np.degrees(np.arccos(c)), axis=-1)

    s = float(dtheta(hf, ha).mean())
    rng = np.random.default_rng(seed)
    null = np.empty(int(n_permutations))
    batch = max(1, int(2e6 // max(len(hf) * u.shape[2], 1)))
    for k0 in range(0, len(null), batch):
        kb = min(batch, len(null) - k0)
        rf = rng.integers(w, n - w, size=(kb, len(hf)))
        null[k0:k0 + kb] = dtheta(rf, np.broadcast_to(ha, rf.shape)).mean(axis=1)
    mu, sd = float(null.mean()), float(null.std(ddof=1))
    out.update(hop_mean_deg=s, null_mean_deg=mu, null_std_deg=sd,
               p_value=float((1 + np.count_nonzero(null >= s)) / (1 + len(null))))
    return out


def reference_timeline(traj, *, cation, hops, half_width, n_nearest):
    pa = find_polyanions(traj, center="S", ligand="O")
    cat_idx = traj.select(species=cation)
    sysd = load_system(traj, pa, cat_idx)
    times, frames, cells = sysd["times"], sysd["frames"], sysd["cells"]
    n = len(times)
    ev_atom, ev_frame = np.asarray(hops.event_atom), np.asarray(hops.event_frame)
    order = np.lexsort((ev_atom, ev_frame))
    ev_atom, ev_frame = ev_atom[order], ev_frame[order]
    w = max(1, int(round(half_width / float(np.median(np.diff(times))))))
    fl = _local_frames(frames, ev_frame)
    cl = np.searchsorted(cat_idx, ev_atom)
    near = nearest_anions(sysd, cl, fl, n_nearest)
    out = []
    for k, (f, c) in enumerate(zip(fl, cl)):
        lo, hi = max(0, f - w), min(n, f + w + 1)
        an = near[k]
        r = sysd["cat"][lo:hi, c]
        lig = sysd["lig"][lo:hi][:, an]
        u = sysd["u"][lo:hi][:, an]
        cc = sysd["cat"][lo:hi, c][:, None, :] - sysd["cen"][lo:hi][:, an]
        nt, kk = cc.shape[:2]
        cc = min_image_rows(cc.reshape(-1, 3), np.repeat(cells[lo:hi], kk, axis=0)).reshape(nt, kk, 3)
        out.append({"times_ps": times[lo:hi], "anions": an, "cation_displacement_A": np.linalg.norm(r - r[0], axis=-1),
                    "ligand_angle_deg": _angle(u, np.broadcast_to(u[0], u.shape)),
                    "center_ligand_A": np.linalg.norm(lig, axis=-1),
                    "cation_ligand_A": np.linalg.norm(cc[:, :, None, :] - lig, axis=-1)})
    return out


def _random_hops(traj, seed, n_hops):
    rng = np.random.default_rng(seed + 17)
    li = traj.select(species="Li")
    return fake_hops(rng.choice(li, n_hops), rng.integers(0, traj.n_frames, n_hops))


def _compare_coupling(res, ref):
    npt.assert_array_equal(res.event_cation, ref["cation"])
    npt.assert_array_equal(res.event_anion, ref["anion"])
    npt.assert_array_equal(res.event_ligand, ref["ligand"])
    npt.assert_array_equal(res.event_start_frame, ref["start"])
    npt.assert_array_equal(res.event_stop_frame, ref["stop"])
    npt.assert_allclose(res.event_duration_ps, ref["duration"], rtol=1e-12)
    npt.assert_array_equal(np.isnan(res.event_pearson), np.isnan(ref["pearson"]))
    npt.assert_allclose(res.event_pearson, ref["pearson"], rtol=1e-12, atol=1e-12)
    co, rco = res.coincidence, ref["co"]
    if rco is not None:
        for key, val in rco.items():
            if isinstance(val, float) and key != "p_value":   # sums accumulated anion by anion: rounding only
                assert co[key] == pytest.approx(val, rel=1e-12, abs=1e-12), key
            else:
                assert co[key] == val, key


# ------------------------------------------------------------------ properties
@settings(deadline=None, max_examples=25)
@given(seed=st.integers(0, 10_000), block=st.integers(1, 60), memory=st.one_of(st.none(), st.integers(1500, 400_000)),
       n_hops=st.integers(0, 6), min_res=st.sampled_from([0.1, 0.3, 1.0]))
def test_streamed_coupling_equals_in_memory(seed, block, memory, n_hops, min_res):
    traj = rattling_system(seed)
    hops = _random_hops(traj, seed, n_hops)
    kw = dict(cation="Li", shell=3.4, min_residence=min_res, hops=hops, n_nearest=2, n_permutations=300, seed=seed)
    res = coupling(traj, center="S", ligand="O", coincidence_window=0.5, block_frames=block, memory=memory, **kw)
    ref = reference_coupling(traj, window_ps=0.5, **kw)
    assert res.n_events == len(ref["start"])
    _compare_coupling(res, ref)
    if memory is not None and memory < 5000 and res.coincidence.get("n_pairs"):
        assert res.meta["coincidence_store"] == "scratch file"


@pytest.mark.parametrize("fraction, rows", [(0.0, 1.0), (0.0, 1e-9), (0.4, 0.025)])
def test_coincidence_from_scratch_rows_equals_in_memory(monkeypatch, fraction, rows):
    # STORE_FRACTION 0: D(t, a) always goes to the scratch file; the rows are read back all at once (ROWS_FRACTION
    # 1) or one row per block (tiny ROWS_FRACTION: the null's draws are regenerated for every row)
    traj = rattling_system(11, n=300)
    hops = _random_hops(traj, 11, 12)
    monkeypatch.setattr(coupling_mod.Coupling, "STORE_FRACTION", fraction)
    monkeypatch.setattr(coupling_mod.Coupling, "ROWS_FRACTION", rows)
    kw = dict(cation="Li", shell=3.4, min_residence=0.3, hops=hops, n_nearest=3, n_permutations=700, seed=5)
    res = coupling(traj, center="S", ligand="O", coincidence_window=0.7, block_frames=23, **kw)
    assert res.meta["coincidence_store"] == ("scratch file" if fraction == 0 else "memory")
    ref = reference_coupling(traj, window_ps=0.7, **kw)
    assert res.coincidence["n_pairs"] > 0
    _compare_coupling(res, ref)


def test_streamed_coupling_wrapped_strided_and_long_runs_across_chunks():
    traj = rattling_system(3, n=240, style="wrapped")
    hops = _random_hops(traj, 3, 5)
    kw = dict(cation="Li", shell=3.6, min_residence=0.2, hops=hops, n_nearest=2, n_permutations=200, seed=1)
    ref = reference_coupling(traj, window_ps=0.4, **kw)
    assert np.max(ref["stop"] - ref["start"]) > 20         # events that span several 7-frame chunks
    for block in (1, 7, 240):
        res = coupling(traj, center="S", ligand="O", coincidence_window=0.4, block_frames=block, **kw)
        _compare_coupling(res, ref)


def lattice_system(n, seed=0):
    """8 SO4 on a cubic lattice, each with one Li rattling 2.9 Å away: g_S–Li(r) has a clear first shell."""
    rng = np.random.default_rng(seed)
    box = 14.0
    g = np.array([0.0, 7.0])
    centres = np.array(np.meshgrid(g, g, g, indexing="ij")).reshape(3, -1).T + 1.0
    pos = np.zeros((n, 8 * 6, 3))
    for a, c in enumerate(centres):
        pos[:, 5 * a] = c
        pos[:, 5 * a + 1:5 * a + 5] = c + TET * 1.5
        pos[:, 40 + a] = c + np.array([1.7, 1.7, 1.7]) + rng.normal(0, 0.12, (n, 3))
    pos[:, :40] += rng.normal(0, 0.03, (n, 40, 3))
    sp = (["S"] + ["O"] * 4) * 8 + ["Li"] * 8
    return anionmotion.from_arrays(pos, np.eye(3) * box, species=sp, frame_interval=0.1)


@pytest.mark.parametrize("n,memory", [(300, 200_000), (300, None), (4100, 200_000)])
def test_auto_shell_from_subsampled_frames(n, memory):
    # n = 4100: every 2nd frame enters g(r) and only those frames are read; n = 300: every frame, and with
    # memory=None the distances of pass 1 are reused by the residence pass
    traj = lattice_system(n)
    kw = dict(cation="Li", shell=None, min_residence=1.0, hops=fake_hops([], []), n_nearest=2, n_permutations=10,
              seed=0)
    res = coupling(traj, center="S", ligand="O", memory=memory, **kw)
    ref = reference_coupling(traj, window_ps=1.0, **kw)
    assert res.shell_A == ref["shell"] and res.shell_source.startswith("auto")
    npt.assert_array_equal(res.g_r["r_A"], ref["g_r"][0])
    npt.assert_allclose(res.g_r["g"], ref["g_r"][1], rtol=1e-12)
    _compare_coupling(res, ref)


@settings(deadline=None, max_examples=15)
@given(seed=st.integers(0, 10_000), memory=st.one_of(st.none(), st.integers(2000, 300_000)),
       n_hops=st.integers(1, 5), half_width=st.sampled_from([0.3, 1.0, 4.0]))
def test_streamed_timeline_equals_in_memory(seed, memory, n_hops, half_width):
    traj = rattling_system(seed)
    hops = _random_hops(traj, seed, n_hops)
    res = timeline(traj, cation="Li", center="S", ligand="O", hops=hops, half_width=half_width, memory=memory)
    ref = reference_timeline(traj, cation="Li", hops=hops, half_width=half_width, n_nearest=2)
    assert len(res.hops) == len(ref)
    for h, r in zip(res.hops, ref):
        npt.assert_array_equal(h["times_ps"], r["times_ps"])
        npt.assert_array_equal(h["anions"], r["anions"])
        for key in ("cation_displacement_A", "ligand_angle_deg", "center_ligand_A", "cation_ligand_A"):
            npt.assert_allclose(h[key], r[key], rtol=1e-12, atol=1e-12, err_msg=key)


@settings(deadline=None, max_examples=40)
@given(data=st.data(), n=st.integers(0, 80), cols=st.integers(1, 5), p=st.floats(0.05, 0.95))
def test_online_runs_equal_find_runs(data, n, cols, p):
    seed = data.draw(st.integers(0, 2**31))
    h = (np.random.default_rng(seed).random((n, cols)) < p).astype(np.uint8)
    runs = _OnlineRuns(cols)
    r0 = 0
    while r0 < n:
        nb = data.draw(st.integers(1, max(1, n - r0)))
        runs.add(h[r0:r0 + nb], r0)
        r0 += nb
    for got, exp in zip(runs.close(), find_runs(h)):
        npt.assert_array_equal(got, exp)


@settings(deadline=None, max_examples=20)
@given(seed=st.integers(0, 10_000), memory=st.integers(600, 200_000), keep_h=st.sampled_from([None, False, True]))
def test_streamed_hops_equal_whole_array(seed, memory, keep_h):
    rng = np.random.default_rng(seed)
    pos = np.cumsum(rng.normal(size=(300, 5, 3)) * 0.35, axis=0)
    for i in range(5):   # a few jumps
        pos[rng.integers(40, 260):, i] += rng.normal(size=3) * 2.5
    traj = anionmotion.from_arrays(pos, np.eye(3) * 40, species=["Li"] * 5, frame_interval=0.05)
    res = anionmotion.hops(traj, species="Li", a=1.8, residence=0.5, window=2.0, memory=memory, keep_h=keep_h)
    h = hop_functional(pos, a=1.8, m_lo=res.meta["m_lo"], m_hi=res.meta["m_hi"])
    col, s, e = find_runs(h)
    centre = (s + e - 1) // 2
    o = np.lexsort((col, centre))
    npt.assert_array_equal(res.event_atom, col[o])
    npt.assert_array_equal(res.event_frame, centre[o])
    npt.assert_array_equal(res.event_start_frame, s[o])
    npt.assert_array_equal(res.event_stop_frame, e[o] - 1)
    if keep_h is False:
        assert res.h is None
        with pytest.raises(anionmotion.OptionError, match="h was not kept"):
            res.h_of(0)
    if keep_h is True or (keep_h is None and h.size <= memory / 8):
        npt.assert_array_equal(res.h, h)


def test_cli_memory_option_and_no_json_dicts(tmp_path, monkeypatch, capsys):
    from anionmotion.analysis.timeline import TimelineResult
    from anionmotion.cli import coupling as cli_coupling
    from anionmotion.cli import main
    from anionmotion.cli import timeline as cli_timeline
    import anionmotion.analysis.hops as hops_mod

    traj = rattling_system(2)
    hops = _random_hops(traj, 2, 3)
    monkeypatch.setattr(cli_timeline, "open_from_args", lambda args: traj)
    monkeypatch.setattr(cli_coupling, "open_from_args", lambda args: traj)
    monkeypatch.setattr(hops_mod, "hops", lambda *a, **k: hops)

    def no_dict(self):
        raise AssertionError("to_dict called without --json")

    monkeypatch.setattr(TimelineResult, "to_dict", no_dict)
    assert main(["timeline", "x", "--cation", "Li", "--center", "S", "--ligand", "O", "--memory", "1MB"]) == 0
    assert main(["coupling", "x", "--cation", "Li", "--center", "S", "--ligand", "O", "--shell", "3.4",
                 "--memory", "300KB", "--permutations", "20"]) == 0
    assert "residence events" in capsys.readouterr().out
    assert main(["coupling", "x", "--cation", "Li", "--center", "S", "--ligand", "O", "--shell", "3.4",
                 "--memory", "lots"]) == 2
    assert "invalid memory size" in capsys.readouterr().err


@settings(deadline=None, max_examples=8)
@given(seed=st.integers(0, 10_000), keep=st.integers(0, 4), memory=st.sampled_from([3000, 50_000, None]))
def test_timeline_csv_written_hop_by_hop_equals_to_csv(tmp_path_factory, seed, keep, memory):
    traj = rattling_system(seed)
    hops = _random_hops(traj, seed, 5)
    full = timeline(traj, cation="Li", center="S", ligand="O", hops=hops, half_width=1.5)
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    part = timeline(traj, cation="Li", center="S", ligand="O", hops=hops, half_width=1.5, keep=keep, csv=str(path),
                    memory=memory)
    assert path.read_text() == full.to_csv()
    assert len(part.hops) == min(keep, len(full.hops)) and len(part.summaries) == len(full.hops)
    for a, b in zip(part.hops, full.hops):
        npt.assert_array_equal(a["ligand_angle_deg"], b["ligand_angle_deg"])
    assert part.summary() == full.summary()
    with pytest.raises(anionmotion.OptionError, match="refusing to overwrite"):
        timeline(traj, cation="Li", center="S", ligand="O", hops=hops, csv=str(path))


@pytest.mark.parametrize("n_hops", [0, 1, 5])
def test_timeline_json_written_hop_by_hop_equals_save(tmp_path, n_hops):
    traj = rattling_system(7)
    hops = _random_hops(traj, 7, n_hops)
    full = timeline(traj, cation="Li", center="S", ligand="O", hops=hops, half_width=1.2, memory=20_000)
    full.save(tmp_path / "full.json")
    part = timeline(traj, cation="Li", center="S", ligand="O", hops=hops, half_width=1.2, keep=1, memory=20_000,
                    json=str(tmp_path / "part.json"))
    assert (tmp_path / "part.json").read_text() == (tmp_path / "full.json").read_text()
    assert len(part.hops) == min(1, n_hops)


def test_strided_frame_range_equals_the_subsampled_trajectory():
    traj = rattling_system(5, n=200)
    ch = traj.read()
    sub = anionmotion.from_arrays(ch.positions[3::2], np.eye(3) * 12.0, species=list(traj.species),
                                  frame_interval=0.2)
    li = traj.select(species="Li")
    hop_local = np.array([10, 40, 70])
    kw = dict(cation="Li", center="S", ligand="O", shell=3.4, min_residence=0.4, coincidence_window=0.6,
              n_permutations=100)
    a = coupling(traj, start=3, step=2, block_frames=9, hops=fake_hops(li[:3], 3 + 2 * hop_local), **kw)
    b = coupling(sub, hops=fake_hops(li[:3], hop_local), **kw)
    npt.assert_array_equal(a.event_start_frame, 3 + 2 * b.event_start_frame)
    npt.assert_array_equal(a.event_ligand, b.event_ligand)
    npt.assert_allclose(a.event_pearson, b.event_pearson, rtol=1e-12, atol=1e-12)
    assert a.coincidence["hop_mean_deg"] == b.coincidence["hop_mean_deg"]
    assert a.coincidence["p_value"] == b.coincidence["p_value"]
    ta = timeline(traj, start=3, step=2, hops=fake_hops(li[:3], 3 + 2 * hop_local), half_width=1.0, memory=30_000,
                  **{k: kw[k] for k in ("cation", "center", "ligand")})
    tb = timeline(sub, hops=fake_hops(li[:3], hop_local), half_width=1.0, **{k: kw[k] for k in ("cation", "center",
                                                                                                 "ligand")})
    for x, y in zip(ta.hops, tb.hops):
        npt.assert_array_equal(x["anions"], y["anions"])
        npt.assert_allclose(x["ligand_angle_deg"], y["ligand_angle_deg"], rtol=1e-12, atol=1e-12)
        npt.assert_allclose(x["cation_ligand_A"], y["cation_ligand_A"], rtol=1e-12, atol=1e-12)


def test_timeline_max_hops_spreads_the_selection_over_the_run():
    """A long run has tens of thousands of hops: the CLI default shows at most 100, evenly spread."""
    from anionmotion.analysis.timeline import timeline

    rng = np.random.default_rng(3)
    n, n_li = 3000, 12
    pos = np.zeros((n, 5 + n_li, 3))
    pos[:, 0] = [6, 6, 6]
    for k, v in enumerate(np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3) * 1.5):
        pos[:, k + 1] = pos[:, 0] + v
    for i in range(n_li):                       # every Li hops 4 Å back and forth at random times
        base = np.array([2.0 + i, 9.0, 3.0])
        flips = np.sort(rng.choice(np.arange(300, n - 300), size=4, replace=False))
        shift = np.zeros(n)
        for f in flips:
            shift[f:] = 4.0 - shift[f]
        pos[:, 5 + i] = base + np.outer(shift, [0, 0, 1])
    sp = ["S", "O", "O", "O", "O"] + ["Li"] * n_li
    traj = anionmotion.from_arrays(pos, np.eye(3) * 30, species=sp, frame_interval=0.01)
    kw = dict(cation="Li", center="S", ligand="O", hop_a=3.0, hop_residence=0.5, hop_window=1.5, keep=0)
    everything = timeline(traj, **kw)
    n_total = everything.n_hops_total
    assert n_total > 10 and everything.meta["selection"] == "every hop"
    few = timeline(traj, max_hops=5, **kw)
    chosen = [h["hop"] for h in few.summaries]
    assert chosen == sorted(set(np.round(np.linspace(0, n_total - 1, 5)).astype(int).tolist()))
    assert chosen[0] == 0 and chosen[-1] == n_total - 1 and "5 of" in few.meta["selection"]
    assert len(timeline(traj, max_hops=0, **kw).summaries) == n_total
    with pytest.raises(anionmotion.OptionError, match="max_hops"):
        timeline(traj, max_hops=-1, **kw)


def test_coincidence_independent_of_row_blocking(monkeypatch):
    # the null's sums are accumulated anion by anion in one order: any blocking of the D rows gives the same bits
    traj = rattling_system(4, n=260)
    hops = _random_hops(traj, 4, 9)
    kw = dict(cation="Li", shell=3.4, min_residence=0.3, hops=hops, n_nearest=3, n_permutations=400, seed=2)
    monkeypatch.setattr(coupling_mod.Coupling, "STORE_FRACTION", 0.0)
    got = []
    for rows in (1.0, 1e-9):
        monkeypatch.setattr(coupling_mod.Coupling, "ROWS_FRACTION", rows)
        got.append(coupling(traj, center="S", ligand="O", coincidence_window=0.6, block_frames=17, **kw).coincidence)
    assert got[0]["n_pairs"] > 0
    assert got[0] == got[1]
