"""Libration spectrum (SPEC §6): angular velocities, spectrum peaks, overlap with the cation VDOS, CLI."""

import json
import warnings

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

import anionmotion as am
from anionmotion.analysis.libration import (angular_velocities, rotation_angular_velocities, spectral_overlap)
from anionmotion.errors import OptionError, SamplingWarning

TET = 1.5 / np.sqrt(3) * np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])


def librating(nu=3.0, nu_li=3.0, th0=0.3, n_frames=600, dt=0.01, seed=0, centres=None):
    """SO4-like tetrahedra librating about random axes at ν, plus two Li oscillating at ν_li."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) * dt
    centres = np.array([[3.0, 3, 3], [9, 9, 9], [3, 9, 6]]) if centres is None else centres
    n = len(centres) * 5 + 2
    pos = np.zeros((n_frames, n, 3))
    vel = np.zeros_like(pos)
    sp = []
    for a, c in enumerate(centres):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        ph = rng.uniform(0, 2 * np.pi)
        ang = th0 * np.sin(2 * np.pi * nu * t + ph)
        angd = th0 * 2 * np.pi * nu * np.cos(2 * np.pi * nu * t + ph)
        R = Rotation.from_rotvec(ang[:, None] * axis).as_matrix()
        lig = np.einsum("tkl,il->tik", R, TET)
        pos[:, 5 * a] = c
        pos[:, 5 * a + 1:5 * a + 5] = c + lig
        vel[:, 5 * a + 1:5 * a + 5] = np.cross((angd[:, None] * axis)[:, None, :], lig)
        sp += ["S", "O", "O", "O", "O"]
    arg = 2 * np.pi * nu_li * t
    pos[:, -2:] = np.array([[6.0, 6, 6], [1, 1, 10]]) + 0.1 * np.sin(arg)[:, None, None]
    vel[:, -2:] = (0.1 * 2 * np.pi * nu_li * np.cos(arg))[:, None, None] * np.ones(3)
    sp += ["Li", "Li"]
    return pos, vel, sp, dt


def test_angular_velocity_of_rigid_rotor_from_velocities():
    rng = np.random.default_rng(1)
    r = rng.normal(size=(5, 2, 4, 3))
    m = rng.uniform(1, 20, (2, 4))
    w = rng.normal(size=(5, 2, 3))
    R0 = np.einsum("tamk,am->tak", r, m) / m.sum(1)[None, :, None]
    v = np.cross(w[:, :, None, :], r - R0[:, :, None]) + 7.0  # plus a uniform translation
    npt.assert_allclose(angular_velocities(r, v, m), w, atol=1e-10)


def test_angular_velocity_from_rotations():
    rng = np.random.default_rng(2)
    r0 = rng.normal(size=(3, 2, 5, 3))
    m = np.ones((2, 5))
    r0 -= np.einsum("tamk,am->tak", r0, m)[:, :, None] / 5
    rv = rng.normal(scale=0.05, size=(3, 2, 3))
    R = Rotation.from_rotvec(rv.reshape(-1, 3)).as_matrix().reshape(3, 2, 3, 3)
    r1 = np.einsum("takl,taml->tamk", R, r0)
    npt.assert_allclose(rotation_angular_velocities(r0, r1, m, 0.5), rv / 0.5, atol=1e-10)


@pytest.mark.parametrize("omega", ["velocities", "rotations"])
def test_libration_peak_and_overlap(omega):
    pos, vel, sp, dt = librating(nu=3.0, nu_li=3.0)
    tr = am.from_arrays(pos, np.eye(3) * 12, species=sp, velocities=vel, frame_interval=dt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        r = am.libration(tr, center="S", ligand="O", cutoff=2.0, omega=omega, max_freq=20)
    assert abs(r.peak_THz - 3.0) <= r.freq_THz[1]
    npt.assert_allclose(r.omega_rms, 0.3 * 2 * np.pi * 3 / np.sqrt(2), rtol=0.02)
    assert r.cation == "Li" and r.overlap_with_cation > 0.9
    assert r.freq_THz[-1] <= 20 * (1 + 1e-9)
    full = am.libration(tr, center="S", ligand="O", cutoff=2.0, omega="velocities")
    npt.assert_allclose(np.trapezoid(full.spectrum, full.freq_THz), 9.0, rtol=1e-9)


def test_overlap_small_for_separated_bands():
    pos, vel, sp, dt = librating(nu=2.0, nu_li=12.0)
    tr = am.from_arrays(pos, np.eye(3) * 12, species=sp, velocities=vel, frame_interval=dt)
    r = am.libration(tr, center="S", ligand="O", cutoff=2.0, max_freq=25)
    assert r.overlap_with_cation < 0.1
    none = am.libration(tr, center="S", ligand="O", cutoff=2.0, cation=None)
    assert none.overlap_with_cation is None and none.cation_vdos is None


def test_spectral_overlap_definition():
    f = np.linspace(0, 10, 1001)
    a = np.exp(-(f - 3) ** 2)
    npt.assert_allclose(spectral_overlap(f, a, 5 * a), 1.0, rtol=1e-12)
    assert spectral_overlap(f, a, np.exp(-(f - 9) ** 2)) < 1e-3
    b = np.where(f < 5, 1.0, 0.0)
    npt.assert_allclose(spectral_overlap(f, b, np.ones_like(f)), 0.5, atol=0.01)
    assert np.isnan(spectral_overlap(f, np.zeros_like(f), a))


@settings(deadline=None, max_examples=8)
@given(seed=st.integers(0, 100), shift=st.floats(-20, 20))
def test_libration_invariant_to_translation(seed, shift):
    pos, vel, sp, dt = librating(n_frames=128, seed=seed)
    tr = am.from_arrays(pos, np.eye(3) * 12, species=sp, velocities=vel, frame_interval=dt)
    tr2 = am.from_arrays(pos + shift, np.eye(3) * 12, species=sp, velocities=vel + 0.0, frame_interval=dt)
    a = am.libration(tr, center="S", ligand="O", cutoff=2.0, cation=None)
    b = am.libration(tr2, center="S", ligand="O", cutoff=2.0, cation=None)
    npt.assert_allclose(a.spectrum, b.spectrum, rtol=1e-8, atol=1e-10)


def test_errors():
    pos, vel, sp, dt = librating(n_frames=40)
    tr = am.from_arrays(pos, np.eye(3) * 12, species=sp, frame_interval=dt)
    with pytest.raises(OptionError, match="has no velocities; use omega='rotations'"):
        am.libration(tr, center="S", ligand="O", cutoff=2.0, omega="velocities")
    with pytest.raises(OptionError, match="invalid omega 'spin'"):
        am.libration(tr, center="S", ligand="O", cutoff=2.0, omega="spin")
    with pytest.raises(OptionError, match="from rotations needs at least 3 frames; the frame range has 2"):
        am.libration(tr, center="S", ligand="O", cutoff=2.0, stop=2)
    with pytest.raises(OptionError, match="max_freq must be a positive frequency"):
        am.libration(tr, center="S", ligand="O", cutoff=2.0, max_freq=0)
    static = am.from_arrays(np.repeat(pos[:1], 10, axis=0), np.eye(3) * 12, species=sp,
                            velocities=np.zeros((10,) + pos.shape[1:]), frame_interval=dt)
    with pytest.raises(OptionError, match="do not rotate"):
        am.libration(static, center="S", ligand="O", cutoff=2.0)


def test_cli_libration(tmp_path, monkeypatch):
    from anionmotion.cli import main
    import anionmotion.cli.libration as cl

    pos, vel, sp, dt = librating(n_frames=300)
    tr = am.from_arrays(pos, np.eye(3) * 12, species=sp, velocities=vel, frame_interval=dt)
    monkeypatch.setattr(cl, "open_from_args", lambda args, path=None: tr)
    js, csv, png = tmp_path / "l.json", tmp_path / "l.csv", tmp_path / "l.png"
    assert main(["libration", "x.lammpstrj", "--center", "S", "--ligand", "O", "--cutoff", "2.0", "--max-freq", "15",
                 "--json", str(js), "--csv", str(csv), "--plot", str(png)]) == 0
    d = json.loads(js.read_text())
    assert {"freq_THz", "spectrum", "overlap_with_cation"} <= set(d)
    assert 0 <= d["overlap_with_cation"] <= 1
    assert csv.read_text().startswith("freq_THz,freq_cm1,freq_meV,libration_per_THz,vdos_Li_per_THz")
    assert png.stat().st_size > 1000
    assert main(["libration", "x.lammpstrj", "--center", "S"]) == 2
