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

whatever the direction weights ``axis_weights`` (w_x, w_y, w_z) of the hops (default isotropic); per
direction D_k = 3 w_k D.  :func:`lgps_like` puts such hoppers (faster along c, like the 1-D channels of
Li10GeP2S12) into a vibrating Li10GeP2S12-like framework and writes an XDATCAR.

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

# Shorter versions of the three regimes that reach the diffusive regime, for the test suite: fast-cage on 40 ps
# (the cage still relaxes within 1 % of the window start), slow-cage with the rates doubled on half the frames
# (the same MSD shape in units of τ_c: +13 % local slope at the window start), aimd-like as it is.
FAST_REGIMES = {
    "fast-cage": dict(REGIMES["fast-cage"], n_frames=400),
    "slow-cage": dict(REGIMES["slow-cage"], n_frames=300, p_out=0.04, p_in=0.026),
    "aimd-like": dict(REGIMES["aimd-like"]),
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


def positions(seed, n_atoms, n_frames, a, r, p_out, p_in, vib, dt=0.1, tau_vib=0.05, box=1.0e4, axis_weights=None):
    """Unwrapped positions (n_frames, n_atoms, 3), Å, of independent caged hoppers."""
    rng = np.random.default_rng(seed)
    T, N = int(n_frames), int(n_atoms)
    u = rng.random((T, N))
    out = u < p_out
    fresh = u < p_out + p_in
    steps = np.zeros((T, N, 3))
    if axis_weights is None:
        axis = rng.integers(0, 3, size=(T, N))
    else:
        w = np.asarray(axis_weights, dtype=np.float64)
        axis = rng.choice(3, size=(T, N), p=w / w.sum())
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


# Li10GeP2S12-like cell (tetragonal, P4_2/nmc; 2 formula units: Li20 Ge2 P4 S24), a = 8.72 Å, c = 12.63 Å
LGPS_CELL = (8.72, 8.72, 12.63)
LGPS_LIKE = dict(n_atoms=80, n_frames=300, a=2.9, r=0.8, p_out=0.02, p_in=0.1, vib=0.3, axis_weights=(1, 1, 2))
"""LGPS-like Li motion (80 Li in a 2 × 2 × 2 cell, 30 ps at 0.1 ps): hops twice as frequent along c."""


def lgps_like(seed, path, n_frames=None, dt=0.1):
    """Write an LGPS-like XDATCAR (VASP 5, via ASE) of caged Li hoppers in a vibrating Ge/P/S framework.

    The framework (Ge16 P32 S192 at random fixed sites of the 2 × 2 × 2 cell, 17.4 × 17.4 × 25.3 Å, each
    vibrating by 0.15 Å) does not drift; Li follows :func:`positions` with :data:`LGPS_LIKE`
    (D = p_out a²/(6Δt), D_z = 2 D_x; the largest one-frame move, a hop plus a new site, stays below 0.3 of a
    cell vector, so unwrapping is unambiguous).  Coordinates are wrapped into the cell, as VASP writes them.
    Returns the ASE frames.
    """
    from ase import Atoms
    from ase.io import write

    p = dict(LGPS_LIKE)
    if n_frames is not None:
        p["n_frames"] = int(n_frames)
    rng = np.random.default_rng(10_000 + seed)
    cell = np.diag([2 * LGPS_CELL[0], 2 * LGPS_CELL[1], 2 * LGPS_CELL[2]])
    li = positions(seed, dt=dt, box=0.0, **p) + rng.uniform(0, 1, size=(1, p["n_atoms"], 3)) @ cell
    n_fw = {"Ge": 16, "P": 32, "S": 192}
    sites = rng.uniform(0, 1, size=(sum(n_fw.values()), 3)) @ cell
    fw = sites[None] + rng.normal(scale=0.15, size=(p["n_frames"], len(sites), 3))
    symbols = ["Li"] * p["n_atoms"] + [s for s, n in n_fw.items() for _ in range(n)]
    frames = []
    for t in range(p["n_frames"]):
        at = Atoms(symbols=symbols, positions=np.concatenate([li[t], fw[t]]), cell=cell, pbc=True)
        at.wrap()
        frames.append(at)
    write(str(path), frames, format="vasp-xdatcar")
    return frames
