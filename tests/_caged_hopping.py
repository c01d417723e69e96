"""Synthetic caged-hopping trajectories with an exactly known long-time diffusion coefficient.

Model (per atom, frames Δt apart):

* the atom sits in a cage of a simple-cubic lattice of spacing ``a`` (Å); each frame it hops to one of the
  6 neighbouring cages with probability ``p_out`` (the cage centre moves by ±a along x, y or z);
* inside the cage it occupies one of 6 sites at ±``r`` along x, y, z from the centre; each frame it jumps
  to a fresh random site (drawn uniformly, possibly the same one) with probability ``p_in``, and always after
  an inter-cage hop.  The site offset is stationary and bounded, so it only bends the MSD: its part is
  2r²(1 − e^{−t/τ_c}) with τ_c = −Δt / ln(1 − p_in − p_out) ≈ Δt/(p_in + p_out);
* Gaussian vibrations of standard deviation ``vib`` (Å) per direction, AR(1)-correlated over ``tau_vib`` (ps).

The cage centre is a lattice random walk with step variance a² p_out per frame, so

    D = p_out · a² / (6 Δt)            (Å²/ps, exact)

and MSD(t) → 6 D t + const.  The local slope reaches 6D only after several τ_c: a long τ_c reproduces
the bending, caged MSD of real superionic conductors (rattling, intra-cage hops, rare inter-cage hops).
"""

from __future__ import annotations

import math

import numpy as np

SITES = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64)

# Regimes used by the tests and benchmarks/bench_diffusion_coverage.py (frames 0.1 ps apart).
REGIMES = {
    # short bend (τ_c ≈ 0.4 ps): the default window [0.1, 0.5] of the longest lag is diffusive
    "fast-cage": dict(n_atoms=48, n_frames=1000, a=3.0, r=1.0, p_out=0.01, p_in=0.25, vib=0.3),
    # the bend (τ_c ≈ 3 ps) reaches into the default window [6, 30] ps: local slope +13 % at 6 ps, +3 % at 14 ps
    "slow-cage": dict(n_atoms=64, n_frames=600, a=3.0, r=1.6, p_out=0.02, p_in=0.013, vib=0.3),
    # AIMD-like: 192 ions, 14 ps, 1.4 inter-cage hops per ion; local slope +56 % at 1.4 ps, +2 % at 4 ps
    "aimd-like": dict(n_atoms=192, n_frames=140, a=2.6, r=0.9, p_out=0.01, p_in=0.1, vib=0.35),
    # never diffusive: τ_c ≈ 5 ps on a 20 ps run, local slope +48 % at the default window's end (10 ps)
    "never-diffusive": dict(n_atoms=192, n_frames=200, a=3.0, r=2.0, p_out=0.005, p_in=0.015, vib=0.3),
}


def true_D(a, p_out, dt=0.1, **_):
    """Long-time diffusion coefficient D = p_out a² / (6 Δt), Å²/ps."""
    return p_out * a * a / (6.0 * dt)


def cage_time(p_out, p_in, dt=0.1, **_):
    """Relaxation time τ_c (ps) of the intra-cage offset (the bend of the MSD)."""
    p = p_in + p_out
    return -dt / math.log(1.0 - p)


def exact_msd(lag_ps, a, r, p_out, p_in, vib, dt=0.1, tau_vib=0.05, **_):
    """Ensemble MSD (Å²) of the model at the given lags (ps)."""
    lag_ps = np.asarray(lag_ps, dtype=np.float64)
    m = np.round(lag_ps / dt)
    rho = (1.0 - (p_in + p_out)) ** m  # offset autocorrelation: a fresh draw has mean zero
    phi = math.exp(-dt / tau_vib) if tau_vib > 0 else 0.0
    vib_part = 6.0 * vib * vib * (1.0 - phi ** m)
    return 6.0 * true_D(a, p_out, dt) * lag_ps + 2.0 * r * r * (1.0 - rho) + vib_part


def positions(seed, n_atoms, n_frames, a, r, p_out, p_in, vib, dt=0.1, tau_vib=0.05, box=1.0e4):
    """Unwrapped positions (n_frames, n_atoms, 3), Å, of independent caged hoppers."""
    rng = np.random.default_rng(seed)
    T, N = int(n_frames), int(n_atoms)
    u = rng.random((T, N))
    out = u < p_out
    fresh = u < p_out + p_in
    steps = np.zeros((T, N, 3))
    axis = rng.integers(0, 3, size=(T, N))
    sign = rng.choice([-1.0, 1.0], size=(T, N))
    ti, ai = np.nonzero(out)
    steps[ti, ai, axis[ti, ai]] = a * sign[ti, ai]
    steps[0] = 0.0
    centre = np.cumsum(steps, axis=0)
    fresh[0] = True
    k = np.cumsum(fresh, axis=0) - 1  # index of the last site draw
    draws = rng.integers(0, 6, size=(int(k.max()) + 1, N))
    site = draws[k, np.arange(N)[None, :]]
    pos = centre + r * SITES[site]
    if vib > 0:
        phi = math.exp(-dt / tau_vib) if tau_vib > 0 else 0.0
        eps = rng.normal(scale=vib * math.sqrt(1.0 - phi * phi), size=(T, N, 3))
        v = np.empty_like(eps)
        v[0] = rng.normal(scale=vib, size=(N, 3))
        for t in range(1, T):
            v[t] = phi * v[t - 1] + eps[t]
        pos += v
    pos += 0.5 * box + rng.uniform(-10, 10, size=(1, N, 3))
    return pos


def trajectory(seed, dt=0.1, box=1.0e4, **params):
    """An ``anionmotion`` trajectory of the model (species Li, frames ``dt`` ps apart)."""
    import anionmotion

    pos = positions(seed, dt=dt, box=box, **params)
    return anionmotion.from_arrays(pos, np.eye(3) * box, species=["Li"] * pos.shape[1], frame_interval=dt)
