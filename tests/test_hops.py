"""Hop functional h_i(t) and hop events (SPEC §3)."""

import json

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anionmotion
from anionmotion.analysis.hops import Hops, HopsResult, nearest_neighbour_distance
from anionmotion.errors import OptionError
from anionmotion.kernels.hops import find_runs, find_runs_ref, half_separations, hop_functional, hop_functional_ref


def _brute_h(pos, a, m_lo, m_hi):
    n, na = pos.shape[:2]
    out = np.zeros((n, na), dtype=np.uint8)
    for t in range(n):
        if t - m_hi < 0 or t + m_hi >= n:
            continue
        for i in range(na):
            out[t, i] = all(np.linalg.norm(pos[t + m, i] - pos[t - m, i]) >= a for m in range(m_lo, m_hi + 1))
    return out


def _jump_traj(n_frames=200, jumps=((0, 100, 4.0),), n_atoms=2, dt=0.1, box=30.0):
    pos = np.zeros((n_frames, n_atoms, 3))
    pos[:, :, 1] = np.arange(n_atoms) * 5.0  # atoms 5 Å apart along y
    for atom, frame, dx in jumps:
        pos[frame:, atom, 0] += dx
    return anionmotion.from_arrays(pos, np.eye(3) * box, species=["Na"] * n_atoms, frame_interval=dt), pos


# ------------------------------------------------------------------ kernel
def test_half_separations_paper_defaults():
    assert half_separations(3.0, 9.0, 0.1) == (15, 45)
    assert half_separations(3.0, 9.0, 0.002) == (750, 2250)
    assert half_separations(0.5, 2.0, 1.0) == (1, 1)


@pytest.mark.parametrize("args,match", [
    ((3.0, 6.0, 0.1), "must be shorter than half the window"),
    ((0.0, 9.0, 0.1), "residence must be a positive time"),
    ((1.0, -1.0, 0.1), "window must be a positive time"),
    ((0.1, 0.5, 1.0), "no frame separation falls inside"),
])
def test_half_separations_errors(args, match):
    with pytest.raises(OptionError, match=match):
        half_separations(*args)


def test_hop_functional_analytic_step():
    pos = np.zeros((200, 1, 3)); pos[100:, 0, 0] = 4.0
    h = hop_functional(pos, a=3.0, m_lo=15, m_hi=45)
    assert np.nonzero(h[:, 0])[0].tolist() == list(range(85, 115))
    # a step smaller than a gives nothing; exactly a counts (θ(0) = 1)
    assert not hop_functional(pos, a=4.5, m_lo=15, m_hi=45).any()
    assert hop_functional(pos, a=4.0, m_lo=15, m_hi=45).sum() == 30


def test_hop_functional_edge_cases():
    for n in (0, 1, 2, 10):
        pos = np.random.default_rng(n).normal(size=(n, 3, 3)) * 10
        h = hop_functional(pos, a=0.1, m_lo=5, m_hi=5)
        assert h.shape == (n, 3) and not h.any()          # too short: undefined everywhere
    pos = np.cumsum(np.ones((11, 1, 3)), axis=0)
    h = hop_functional(pos, a=1.0, m_lo=5, m_hi=5)
    assert h[:, 0].tolist() == [0] * 5 + [1] + [0] * 5       # only the centre frame is defined


def test_hop_functional_errors():
    with pytest.raises(OptionError, match="a must be a positive distance"):
        hop_functional(np.zeros((5, 1, 3)), a=0.0, m_lo=1, m_hi=1)
    with pytest.raises(OptionError, match="need 1 <= m_lo <= m_hi"):
        hop_functional(np.zeros((5, 1, 3)), a=1.0, m_lo=2, m_hi=1)
    with pytest.raises(ValueError, match=r"positions must have shape \(n, n, 3\)"):
        hop_functional(np.zeros((5, 3)), a=1.0, m_lo=1, m_hi=1)


@settings(deadline=None, max_examples=40)
@given(seed=st.integers(0, 2**31), n=st.integers(0, 60), na=st.integers(1, 4), m_lo=st.integers(1, 4),
       extra=st.integers(0, 4), a=st.floats(0.05, 3.0))
def test_hop_functional_matches_ref_and_bruteforce(seed, n, na, m_lo, extra, a):
    pos = np.cumsum(np.random.default_rng(seed).normal(size=(n, na, 3)) * 0.5, axis=0)
    m_hi = m_lo + extra
    h = hop_functional(pos, a=a, m_lo=m_lo, m_hi=m_hi)
    npt.assert_array_equal(h, hop_functional(pos, a=a, m_lo=m_lo, m_hi=m_hi, use_ext=False))
    npt.assert_array_equal(h, _brute_h(pos, a, m_lo, m_hi))


@settings(deadline=None, max_examples=40)
@given(h=st.lists(st.lists(st.booleans(), min_size=3, max_size=3), min_size=0, max_size=30))
def test_find_runs_matches_ref(h):
    h = np.array(h, dtype=np.uint8).reshape(-1, 3)
    got, ref = find_runs(h), find_runs(h, use_ext=False)
    for g, r in zip(got, ref):
        npt.assert_array_equal(g, r)
    atom, start, stop = got
    assert int((stop - start).sum()) == int(h.sum())
    for i, s, e in zip(atom, start, stop):
        assert h[s:e, i].all() and (s == 0 or not h[s - 1, i]) and (e == len(h) or not h[e, i])


# ---------------------------------------------------------------- analysis
def test_hops_single_jump_event_and_frequency():
    traj, _ = _jump_traj()
    res = anionmotion.hops(traj, species="Na", a=3.0)
    assert isinstance(res, HopsResult)
    assert res.n_events == 1
    ev = res.events[0]
    assert (ev["atom"], ev["frame"], ev["start_frame"], ev["stop_frame"]) == (0, 99, 85, 114)
    assert ev["time_ps"] == pytest.approx(9.9)
    assert res.observed_ps == pytest.approx((200 - 90) * 0.1)
    npt.assert_allclose(res.jump_frequency_per_atom_per_ns, [1 / 11e-3, 0.0])
    assert res.jump_frequency_per_ns == pytest.approx(0.5 / 11e-3)
    assert res.h.shape == (200, 2) and res.h.dtype == np.uint8
    npt.assert_array_equal(res.h_of(0), res.h[:, 0])
    with pytest.raises(OptionError, match="atom 7 is not in the selection"):
        res.h_of(7)


def test_hops_two_jumps_and_back_and_forth():
    # atom 0 jumps at 60 and 160 (separated > t_a); atom 1 jumps out and back within 2 ps (not long-lived)
    traj, _ = _jump_traj(300, jumps=((0, 60, 4.0), (0, 160, 4.0), (1, 100, 4.0), (1, 120, -4.0)))
    res = anionmotion.hops(traj, species="Na", a=3.0)
    assert [(e["atom"], e["frame"]) for e in res.events] == [(0, 59), (0, 159)]


def test_hops_streaming_equals_in_memory():
    rng = np.random.default_rng(3)
    pos = np.cumsum(rng.normal(size=(400, 6, 3)) * 0.4, axis=0)
    traj = anionmotion.from_arrays(pos, np.eye(3) * 50, species=["Li"] * 6, frame_interval=0.05)
    big = anionmotion.hops(traj, species="Li", a=2.0, residence=1.0, window=3.0)
    for mem in (6 * 72 * 61, 6 * 72 * 97, 6 * 72 * 250):  # chunks of 61, 97, 250 frames
        small = anionmotion.hops(traj, species="Li", a=2.0, residence=1.0, window=3.0, memory=mem)
        npt.assert_array_equal(small.h, big.h)
        npt.assert_array_equal(small.event_frame, big.event_frame)
    npt.assert_array_equal(big.h, hop_functional(pos, a=2.0, m_lo=10, m_hi=30))
    assert big.n_events > 0


def test_hops_wrapped_input_and_selection_indices():
    rng = np.random.default_rng(5)
    box = 12.0
    species = ["S", "Na", "S", "Na"]
    walk = np.cumsum(rng.normal(size=(300, 4, 3)) * 0.3, axis=0) + 3.0
    wrapped = walk - box * np.floor(walk / box)
    tw = anionmotion.from_arrays(wrapped, np.eye(3) * box, species=species, frame_interval=0.1, style="wrapped")
    tu = anionmotion.from_arrays(walk, np.eye(3) * box, species=species, frame_interval=0.1)
    rw = anionmotion.hops(tw, species="Na", a=2.5)
    ru = anionmotion.hops(tu, species="Na", a=2.5)
    npt.assert_array_equal(rw.h, ru.h)
    npt.assert_array_equal(rw.atom_indices, [1, 3])
    assert set(rw.event_atom.tolist()) <= {1, 3}
    npt.assert_array_equal(rw.h, hop_functional(walk[:, [1, 3]], a=2.5, m_lo=15, m_hi=45))


def test_hops_frame_range_and_step():
    traj, pos = _jump_traj(400, jumps=((0, 250, 4.0),), dt=0.05)
    res = anionmotion.hops(traj, species="Na", a=3.0, start=100, step=2)
    assert res.meta["dt_ps"] == pytest.approx(0.1)
    npt.assert_array_equal(res.frame_indices, np.arange(100, 400, 2))
    assert [e["atom"] for e in res.events] == [0]
    assert res.events[0]["frame"] in (248, 250)
    npt.assert_array_equal(res.h, hop_functional(pos[100::2], a=3.0, m_lo=15, m_hi=45))


def test_hops_default_a_is_nearest_neighbour_distance():
    # simple cubic lattice of 27 Na, spacing 4 Å, in a 12 Å box; small vibrations
    g = np.arange(3) * 4.0
    sites = np.array(np.meshgrid(g, g, g, indexing="ij")).reshape(3, -1).T
    rng = np.random.default_rng(0)
    pos = sites[None] + rng.normal(scale=0.05, size=(200, 27, 3))
    traj = anionmotion.from_arrays(pos, np.eye(3) * 12.0, species=["Na"] * 27, frame_interval=0.1)
    assert nearest_neighbour_distance(traj, "Na", frames=30) == pytest.approx(4.0, abs=0.03)
    res = anionmotion.hops(traj, species="Na")
    assert res.a_A == pytest.approx(4.0, abs=0.03)
    assert "nearest Na–Na distance" in res.meta["a_source"]
    assert res.n_events == 0 and res.jump_frequency_per_ns == 0.0


def test_hops_to_dict_json_keys(tmp_path):
    traj, _ = _jump_traj()
    res = anionmotion.hops(traj, species="Na", a=3.0)
    d = res.to_dict()
    assert d["events"][0] == {"atom": 0, "frame": 99, "time_ps": pytest.approx(9.9), "start_frame": 85,
                              "stop_frame": 114}
    assert d["jump_frequency_per_ns"] == pytest.approx(0.5 / 11e-3)
    assert "h" not in d and len(res.to_dict(include_h=True)["h"]) == 2
    path = res.save(tmp_path / "hops.json")
    assert json.load(open(path))["n_events"] == 1
    with pytest.raises(OptionError, match="refusing to overwrite"):
        res.save(path)
    assert "n_events=1" in repr(res) and "jump frequency" in res.summary()
    assert repr(Hops("Na", a=3.0)).startswith("Hops(species='Na', a=3.0")


def test_hops_errors():
    traj, _ = _jump_traj(50)
    with pytest.raises(OptionError, match="too short for the hop window"):
        anionmotion.hops(traj, species="Na", a=3.0)
    traj, _ = _jump_traj()
    with pytest.raises(OptionError, match="a must be a positive distance"):
        anionmotion.hops(traj, species="Na", a=-1.0)
    with pytest.raises(OptionError, match="no atoms of species Li"):
        anionmotion.hops(traj, species="Li", a=3.0)
    with pytest.raises(OptionError, match="must be shorter than half the window"):
        anionmotion.hops(traj, species="Na", a=3.0, residence=5, window=9)
    one = anionmotion.from_arrays(np.zeros((200, 1, 3)), np.eye(3) * 10, species=["Na"], frame_interval=0.1)
    with pytest.raises(OptionError, match="selection has 1 atom; give a explicitly"):
        anionmotion.hops(one, species="Na")
    same = anionmotion.from_arrays(np.zeros((200, 2, 3)), np.eye(3) * 10, species=["Na"] * 2, frame_interval=0.1)
    with pytest.raises(OptionError, match="atoms on top of each other"):
        anionmotion.hops(same, species="Na")
    t = np.concatenate([np.arange(100) * 0.1, 10 + np.arange(100) * 0.2])
    uneven = anionmotion.from_arrays(np.zeros((200, 2, 3)), np.eye(3) * 10, times=t, species=["Na"] * 2)
    with pytest.raises(OptionError, match="hops need evenly spaced frames"):
        anionmotion.hops(uneven, species="Na", a=1.0)
    with pytest.raises(OptionError, match="hops need at least 2 frames"):
        anionmotion.hops(traj, species="Na", a=1.0, start=199)


# --------------------------------------------------------------------- CLI
def test_cli_hops(tmp_path, monkeypatch, capsys):
    import anionmotion.cli.hops as cli_hops
    from anionmotion.cli import main

    traj, _ = _jump_traj()
    monkeypatch.setattr(cli_hops, "open_from_args", lambda args: traj)
    out = tmp_path / "h.json"
    assert main(["hops", "in-memory", "--species", "Na", "--a", "3", "--events", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "jump frequency" in text and "   0     99  9.9000" in text
    d = json.load(open(out))
    assert d["events"][0]["atom"] == 0 and d["jump_frequency_per_ns"] == pytest.approx(0.5 / 11e-3)
    assert main(["hops", "in-memory", "--species", "Na", "--a", "3", "--json", str(out)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(["hops", "in-memory", "--species", "Na", "--a", "3", "--window", "4", "--residence", "2"]) == 2
    assert "must be shorter than half the window" in capsys.readouterr().err
