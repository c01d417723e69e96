"""VACF/VDOS (SPEC §6): correlation kernels, analytic oscillators, normalisation, CLI."""

import json
import warnings

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import anionmotion as am
from anionmotion.errors import OptionError, SamplingWarning
from anionmotion.kernels.correlate import (acf, acf_direct_ref, acf_sum, acf_sum_ref, lag_window,
                                           spectrum_from_acf, spectrum_from_acf_ref)


# ------------------------------------------------------------------ kernels
@settings(deadline=None, max_examples=30)
@given(x=arrays(np.float64, st.tuples(st.integers(1, 40), st.integers(1, 4), st.integers(1, 3)),
                elements=st.floats(-10, 10)))
def test_acf_sum_equals_direct_sum(x):
    w = np.linspace(0.5, 2.0, x.shape[1])
    npt.assert_allclose(acf_sum(x, weights=w), acf_sum_ref(x, weights=w), atol=1e-9 * (1 + np.abs(x).max() ** 2))


@settings(deadline=None, max_examples=30)
@given(x=arrays(np.float64, st.tuples(st.integers(1, 50), st.integers(1, 3)), elements=st.floats(-5, 5)))
def test_acf_equals_direct_loop(x):
    npt.assert_allclose(acf(x), acf_direct_ref(x), atol=1e-9 * (1 + np.abs(x).max() ** 2))


def test_acf_edge_cases():
    assert acf(np.zeros(0)).shape == (0,)
    npt.assert_allclose(acf(np.array([3.0])), [9.0])
    npt.assert_allclose(acf(np.array([1.0, 2.0, 3.0])), [14 / 3, 4.0, 3.0])
    assert acf_sum(np.zeros((0, 2, 3))).shape == (0,)
    assert acf_sum(np.ones((5, 2, 3)), n_lags=2).shape == (2,)
    with pytest.raises(ValueError, match="at least one dimension"):
        acf(np.float64(1.0))
    with pytest.raises(OptionError, match="n_lags must be >= 0"):
        acf(np.ones(3), n_lags=-1)
    with pytest.raises(ValueError, match=r"x must have shape \(n_frames, n_series\)"):
        acf_sum(np.ones(3))


@pytest.mark.parametrize("window", ["none", "hann", "hamming", "blackman"])
def test_spectrum_matches_cosine_sum(window):
    c = np.random.default_rng(1).normal(size=37)
    f1, s1 = spectrum_from_acf(c, 0.02, window=window)
    f2, s2 = spectrum_from_acf_ref(c, 0.02, window=window)
    npt.assert_allclose(f1, f2)
    npt.assert_allclose(s1, s2, atol=1e-12)


def test_spectrum_integral_is_half_c0():
    c = np.exp(-np.arange(64) * 0.1) * np.cos(np.arange(64) * 0.7)
    f, s = spectrum_from_acf(c, 0.01, nfft=128)
    npt.assert_allclose(np.trapezoid(s, f), c[0] / 2, rtol=1e-12)


def test_window_errors():
    with pytest.raises(OptionError, match="invalid window 'kaiser'; choose one of none, hann"):
        lag_window("kaiser", 4)
    assert lag_window("hann", 4)[0] == 1.0
    with pytest.raises(OptionError, match="dt must be a positive time step"):
        spectrum_from_acf(np.ones(3), 0.0)
    with pytest.raises(OptionError, match="nfft must be >= 2·n_lags − 1 = 5"):
        spectrum_from_acf(np.ones(3), 1.0, nfft=4)


# ------------------------------------------------------------------ analysis
def oscillators(nu=5.0, n_frames=1000, dt=0.01, n=4, amp=0.1, seed=0, species=None):
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) * dt
    ph = rng.uniform(0, 2 * np.pi, (n, 3))
    nu = np.broadcast_to(np.asarray(nu, dtype=float).reshape(-1, 1), (n, 1))
    arg = 2 * np.pi * nu[None] * t[:, None, None] + ph
    pos = 5.0 + amp * np.sin(arg)
    vel = amp * 2 * np.pi * nu[None] * np.cos(arg)
    species = species or ["Li"] * n
    return pos, vel, species, dt


@pytest.mark.parametrize("nu", [2.0, 7.5, 13.0])
def test_harmonic_oscillator_peak_and_normalisation(nu):
    pos, vel, sp, dt = oscillators(nu=nu)
    tr = am.from_arrays(pos, np.eye(3) * 10, species=sp, velocities=vel, frame_interval=dt)
    r = am.vdos(tr)
    g = r.vdos["total"]
    assert abs(r.freq_THz[np.argmax(g)] - nu) <= r.freq_THz[1]
    npt.assert_allclose(np.trapezoid(g, r.freq_THz), 3 * 4, rtol=1e-10)
    npt.assert_allclose(r.band_center_THz["Li"], nu, rtol=0.01)
    npt.assert_allclose(r.freq_cm1, r.freq_THz * 33.35640951981521)
    assert r.vacf["Li"].shape == r.lag_ps.shape


def test_species_split_and_mass_weighting():
    pos, vel, _, dt = oscillators(nu=[3.0, 3.0, 9.0, 9.0], n=4)
    sp = ["Li", "Li", "O", "O"]
    tr = am.from_arrays(pos, np.eye(3) * 10, species=sp, velocities=vel, frame_interval=dt)
    r = am.vdos(tr, max_freq=20)
    npt.assert_allclose(r.band_center_THz["Li"], 3.0, rtol=0.02)
    npt.assert_allclose(r.band_center_THz["O"], 9.0, rtol=0.02)
    assert r.freq_THz[-1] <= 20 * (1 + 1e-9)
    # mass weighting: O (16 amu, faster oscillator with same amplitude) dominates the total
    m_li, m_o = tr.masses[0], tr.masses[2]
    w_li = m_li * 3.0 ** 2
    w_o = m_o * 9.0 ** 2
    expected = (3.0 * w_li + 9.0 * w_o) / (w_li + w_o)
    npt.assert_allclose(r.band_center_THz["total"], expected, rtol=0.02)
    sub = am.vdos(tr, species="O")
    assert list(sub.n_atoms) == ["O"]
    npt.assert_allclose(sub.vdos["O"], r_full_O(tr), rtol=1e-10)


def r_full_O(tr):
    return am.vdos(tr).vdos["O"]


def test_finite_differences_match_file_velocities_below_nyquist():
    rng = np.random.default_rng(3)
    pos, vel, sp, dt = oscillators(nu=rng.uniform(1, 8, 6), n=6)
    tr = am.from_arrays(pos, np.eye(3) * 10, species=["Li"] * 6, velocities=vel, frame_interval=dt)
    rf = am.vdos(tr, velocities="file")
    with pytest.warns(SamplingWarning, match=r"Nyquist frequency is 50 THz"):
        rp = am.vdos(tr, velocities="positions")
    low = rf.freq_THz < 10
    # below a fifth of Nyquist the sinc² damping of the difference quotient is < 13 % (the peaks lie lower)
    npt.assert_allclose(rp.vdos["Li"][low], rf.vdos["Li"][low], atol=0.07 * rf.vdos["Li"].max())
    npt.assert_allclose(rp.band_center_THz["Li"], rf.band_center_THz["Li"], rtol=0.03)


def test_finite_differences_continuous_across_segments():
    pos, vel, sp, dt = oscillators(nu=4.0, n_frames=400)
    tr = am.from_arrays(pos, np.eye(3) * 10, species=sp, frame_interval=dt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        segs = [v for v in am.analysis.vdos.velocity_segments(tr, tr.select(), segment_frames=64, source="positions")]
    v = np.concatenate(segs)
    npt.assert_allclose(v, np.gradient(pos, dt, axis=0), atol=1e-12)


def test_block_averaging_is_stated_and_consistent():
    pos, vel, sp, dt = oscillators(nu=6.0, n_frames=2000)
    tr = am.from_arrays(pos, np.eye(3) * 10, species=sp, velocities=vel, frame_interval=dt)
    full = am.vdos(tr)
    seg = am.vdos(tr, segment_frames=500)
    assert seg.meta["block_averaged"] and seg.meta["segments"] == 4
    assert not full.meta["block_averaged"]
    npt.assert_allclose(seg.vacf["Li"][:100], full.vacf["Li"][:100], rtol=0.05, atol=0.02 * full.vacf["Li"][0])
    npt.assert_allclose(seg.band_center_THz["Li"], 6.0, rtol=0.03)
    # a small budget no longer block-averages: the velocities go to a scratch file, the VACF stays exact
    small = am.vdos(tr, memory="350KB")
    assert small.meta["segments"] == 1 and not small.meta["block_averaged"]
    assert small.meta["series_store"] == "out-of-core scratch file" and small.meta["row_blocks"] > 1
    npt.assert_allclose(small.vacf["Li"], full.vacf["Li"], rtol=1e-12, atol=1e-12 * full.vacf["Li"][0])


def test_single_origin_vacf():
    pos, vel, sp, dt = oscillators(nu=5.0, n_frames=300)
    tr = am.from_arrays(pos, np.eye(3) * 10, species=sp, velocities=vel, frame_interval=dt)
    r = am.vdos(tr, origins="first")
    expected = np.einsum("tic,ic->t", vel, vel[0]) / 4
    npt.assert_allclose(r.vacf["Li"], expected, rtol=1e-12)


def test_kinetic_temperature_from_vacf():
    rng = np.random.default_rng(7)
    n, T = 200, 500.0
    m = 6.941
    sigma = np.sqrt(8.617333262e-5 * T / (m * 1.0364269656262175e-4))
    vel = rng.normal(0, sigma, (50, n, 3))
    pos = np.cumsum(vel, axis=0) * 0.001
    tr = am.from_arrays(pos, np.eye(3) * 30, species=["Li"] * n, velocities=vel, frame_interval=0.001)
    r = am.vdos(tr)
    npt.assert_allclose(r.kinetic_temperature_K["Li"], T, rtol=0.03)
    npt.assert_allclose(np.trapezoid(r.vdos["Li"], r.freq_THz), 3 * n, rtol=1e-10)


def test_edge_cases_and_errors():
    pos, vel, sp, dt = oscillators(n_frames=2, n=1)
    tr = am.from_arrays(pos, np.eye(3) * 10, species=sp, velocities=vel, frame_interval=dt)
    r = am.vdos(tr)  # two frames, one atom: defined, trivially
    npt.assert_allclose(np.trapezoid(r.vdos["total"], r.freq_THz), 3.0)
    tr1 = am.from_arrays(pos[:1], np.eye(3) * 10, species=sp, velocities=vel[:1], frame_interval=dt)
    with pytest.raises(OptionError, match="a VACF needs at least 2 frames; the frame range has 1"):
        am.vdos(tr1)
    pos, vel, sp, dt = oscillators(n_frames=20, n=2)
    tr = am.from_arrays(pos, np.eye(3) * 10, species=sp, frame_interval=dt)
    with pytest.raises(OptionError, match="has no velocities; use velocities='positions'"):
        am.vdos(tr, velocities="file")
    trv = am.from_arrays(pos, np.eye(3) * 10, species=sp, velocities=vel, frame_interval=dt)
    with pytest.raises(OptionError, match="invalid window 'box'"):
        am.vdos(trv, window="box")
    with pytest.raises(OptionError, match="invalid origins 'some'"):
        am.vdos(trv, origins="some")
    with pytest.raises(OptionError, match="max_freq must be a positive frequency"):
        am.vdos(trv, max_freq=-1)
    with pytest.raises(OptionError, match="max_lag must be a positive time"):
        am.vdos(trv, max_lag=0)
    with pytest.raises(OptionError, match="segment_frames must be >= 2"):
        am.vdos(trv, segment_frames=1)
    with pytest.raises(OptionError, match="no atoms of species Na"):
        am.vdos(trv, species="Na")
    with pytest.raises(OptionError, match="too small for 2 atoms"):
        am.vdos(trv, memory=10)
    t = np.cumsum(np.r_[0.0, np.full(9, 0.01), 0.05, np.full(9, 0.01)])
    trn = am.from_arrays(pos, np.eye(3) * 10, t, species=sp, velocities=vel)
    with pytest.raises(OptionError, match="the VACF/VDOS needs evenly spaced frames; frames 9 and 10"):
        am.vdos(trn)
    trz = am.from_arrays(pos, np.eye(3) * 10, species=sp, velocities=np.zeros_like(vel), frame_interval=dt)
    with pytest.raises(OptionError, match="no positive spectral weight"):
        am.vdos(trz)


@settings(deadline=None, max_examples=15)
@given(perm_seed=st.integers(0, 1000), shift=st.floats(-50, 50))
def test_vdos_invariant_to_atom_order_and_translation(perm_seed, shift):
    pos, vel, sp, dt = oscillators(nu=[2.0, 4.0, 6.0], n=3, n_frames=128)
    tr = am.from_arrays(pos, np.eye(3) * 10, species=sp, velocities=vel, frame_interval=dt)
    perm = np.random.default_rng(perm_seed).permutation(3)
    tr2 = am.from_arrays(pos[:, perm] + shift, np.eye(3) * 10, species=sp, velocities=vel[:, perm],
                         frame_interval=dt)
    npt.assert_allclose(am.vdos(tr2).vdos["total"], am.vdos(tr).vdos["total"], rtol=1e-9, atol=1e-9)


def test_cli_vdos(tmp_path, monkeypatch):
    from anionmotion.cli import main
    import anionmotion.cli.vdos as cv

    pos, vel, sp, dt = oscillators(nu=[3.0, 3.0, 9.0, 9.0], n=4)
    tr = am.from_arrays(pos, np.eye(3) * 10, species=["Li", "Li", "O", "O"], velocities=vel, frame_interval=dt)
    # patch only this subcommand's binding (patching cli._common would leak into modules imported meanwhile)
    monkeypatch.setattr(cv, "open_from_args", lambda args, path=None: tr)
    js = tmp_path / "v.json"
    csv = tmp_path / "v.csv"
    png = tmp_path / "v.png"
    assert main(["vdos", "x.lammpstrj", "--max-freq", "30", "--json", str(js), "--csv", str(csv),
                 "--plot", str(png)]) == 0
    d = json.loads(js.read_text())
    assert {"freq_THz", "vdos", "band_center_THz"} <= set(d)
    assert set(d["vdos"]) == {"Li", "O", "total"}
    assert max(d["freq_THz"]) <= 30 * (1 + 1e-9)
    assert csv.read_text().startswith("freq_THz,freq_cm1,freq_meV,vdos_Li_per_THz")
    assert png.stat().st_size > 1000
    assert main(["vdos", "x.lammpstrj", "--json", str(js)]) == 2  # refuses to overwrite


def test_functional_tier_matches_analysis():
    from anionmotion.kernels.correlate import vacf, vdos as vdos_arrays

    pos, vel, sp, dt = oscillators(nu=[2.0, 5.0, 8.0], n=3)
    tr = am.from_arrays(pos, np.eye(3) * 10, species=sp, velocities=vel, frame_interval=dt)
    r = am.vdos(tr)
    f, g = vdos_arrays(vel, tr.masses, tr.dt)
    npt.assert_allclose(g[:len(r.freq_THz)], r.vdos["total"], rtol=1e-9, atol=1e-12)
    npt.assert_allclose(vacf(vel), r.vacf["Li"], rtol=1e-12)
    with pytest.raises(OptionError, match="a VDOS needs at least 2 frames"):
        vdos_arrays(vel[:1], tr.masses, dt)
    with pytest.raises(OptionError, match="vel must hold at least one frame and one atom"):
        vacf(np.zeros((0, 2, 3)))
    with pytest.raises(ValueError, match=r"masses must have shape \(3\)"):
        vdos_arrays(vel, np.ones(2), dt)
