"""Benchmark: van Hove functions against pymatgen's ``VanHoveAnalysis`` (SPEC §9).

Problem: Li in the Li6PS5Cl AIMD run of tests/data/argyrodite (192 Li, 140 frames 0.1 ps apart), or a synthetic
lattice-jump run (``--synthetic``: N Li hopping on a cubic lattice with rattling, T frames).  Both contenders
compute G_s and G_d of the same atoms, at the same lags (``it·step_skip``) and over the same origins (the first
``avg_nsteps`` frames), with no drift correction on either side:

- ``pymatgen``: ``pymatgen.analysis.diffusion.aimd.van_hove.VanHoveAnalysis`` (Python loops over ions,
  origins and the 27 neighbouring images);
- ``anionmotion``: ``anionmotion.vanhove(..., n_origins=avg_nsteps, distinct_stride=1, alpha2=False)``
  (streamed, compiled cell lists), and the default run over every origin with α₂ at every lag.

The counts are checked to agree (pymatgen's smearing applied to ours) before the times are printed.

    python benchmarks/bench_vanhove.py [--every 3] [--avg 40] [--skip 20] [--synthetic --atoms 128 --frames 400]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import anionmotion  # noqa: E402
from anionmotion.analysis.vanhove import vanhove  # noqa: E402

ARGY = os.path.join(ROOT, "tests", "data", "argyrodite", "Li6PS5Cl_100p_run1_XDATCAR.gz")


def synthetic(n_li, n_frames, seed=0, a=2.5, rate=0.01, sigma=0.3):
    """Li on a cubic lattice (spacing a) hopping at ``rate`` per frame with rattling σ, plus 8 fixed S."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(n_li ** (1 / 3)))
    box = side * a
    grid = np.array(np.meshgrid(*[np.arange(side)] * 3, indexing="ij")).reshape(3, -1).T[:n_li] * a
    jumps = rng.poisson(rate, size=(n_frames - 1, n_li))
    steps = np.zeros((n_frames - 1, n_li, 3))
    for k in range(1, int(jumps.max(initial=0)) + 1):
        t, i = np.nonzero(jumps >= k)
        steps[t, i, rng.integers(0, 3, size=len(t))] += a * rng.choice([-1.0, 1.0], size=len(t))
    li = grid + np.concatenate([np.zeros((1, n_li, 3)), np.cumsum(steps, axis=0)])
    li += rng.normal(scale=sigma, size=li.shape)
    s = np.tile(rng.uniform(0, box, size=(1, 8, 3)), (n_frames, 1, 1))
    pos = np.concatenate([li, s], axis=1)
    return anionmotion.from_arrays(pos, np.eye(3) * box, species=["Li"] * n_li + ["S"] * 8, frame_interval=0.1)


def pymatgen_run(traj, sub, avg, skip, ngrid, rmax, sigma):
    from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer
    from pymatgen.analysis.diffusion.aimd.van_hove import VanHoveAnalysis
    from pymatgen.core import Lattice, Structure

    pos = traj.read(atoms=sub).positions
    frame0 = traj.read(frames=slice(0, 1)).positions[0]
    structure = Structure(Lattice(np.asarray(traj.cells[0])), list(traj.species), frame0, coords_are_cartesian=True)
    disp = np.zeros((traj.n_atoms, traj.n_frames, 3))
    disp[sub] = (pos - pos[0]).transpose(1, 0, 2)   # framework still: pymatgen's drift is 0, as ours is off
    da = DiffusionAnalyzer(structure, disp, "Li", 500, 2, 50, smoothed=False)
    t0 = time.perf_counter()
    vh = VanHoveAnalysis(da, avg_nsteps=avg, ngrid=ngrid, rmax=rmax, step_skip=skip, sigma=sigma, indices=list(sub))
    return vh, time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--every", type=int, default=3, help="every k-th Li (pymatgen's distinct loop is O(N²))")
    p.add_argument("--avg", type=int, default=40, help="origins (pymatgen avg_nsteps)")
    p.add_argument("--skip", type=int, default=20, help="lag spacing in frames (pymatgen step_skip)")
    p.add_argument("--ngrid", type=int, default=101)
    p.add_argument("--rmax", type=float, default=8.0)
    p.add_argument("--sigma", type=float, default=0.1)
    p.add_argument("--synthetic", action="store_true", help="a lattice-jump run instead of the argyrodite file")
    p.add_argument("--atoms", type=int, default=128)
    p.add_argument("--frames", type=int, default=400)
    a = p.parse_args(argv)
    warnings.simplefilter("ignore")
    from scipy.stats import norm

    traj = (synthetic(a.atoms, a.frames) if a.synthetic else
            anionmotion.open(ARGY, frame_interval=0.1, progress=False))
    sub = traj.select("Li")[::a.every]
    vh, t_pmg = pymatgen_run(traj, sub, a.avg, a.skip, a.ngrid, a.rmax, a.sigma)
    lags = [min(i * a.skip, traj.n_frames - a.avg) for i in range(len(vh.gsrt))]
    t0 = time.perf_counter()
    res = vanhove(traj, sub, lags=[m * traj.dt for m in lags], rmax=a.rmax, bins=a.ngrid - 1,
                  n_origins=a.avg, distinct_stride=1, drift=False, alpha2=False, progress=False)
    t_am = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = vanhove(traj, sub, lags=[m * traj.dt for m in lags], rmax=a.rmax, bins=a.ngrid - 1,
                   distinct_stride=1, drift=False, progress=False)
    t_full = time.perf_counter() - t0
    # agreement: pymatgen's smearing and 4πr²ρ normalisation applied to our counts
    interval = np.linspace(0, a.rmax, a.ngrid)
    gauss = norm.pdf(interval[:, None], interval[None, :], a.sigma) / a.avg / len(sub)
    row = {m: k for k, m in enumerate(res.lag_frames)}
    gs = np.array([res.self_counts[row[m]] @ gauss[:-1] for m in lags])
    aux = 4 * np.pi * interval ** 2
    aux[0] = np.pi * (a.rmax / (a.ngrid - 1)) ** 2
    rho = len(sub) / abs(np.linalg.det(traj.cells[0]))
    gd = np.array([(res.distinct_counts[row[m]] / aux[:-1] / rho) @ gauss[:-1] for m in lags])
    ds = float(np.max(np.abs(gs - vh.gsrt)))
    dd = float(np.max(np.abs(gd - vh.gdrt)))
    print(f"problem: {'synthetic' if a.synthetic else 'Li6PS5Cl 100p run1'}, {len(sub)} Li, {traj.n_frames} frames, "
          f"lags {lags} frames, {a.avg} origins, {a.ngrid - 1} bins to {a.rmax} Å")
    print(f"max |G_s − pymatgen| = {ds:.2e}, max |G_d − pymatgen| = {dd:.2e} (of max {vh.gsrt.max():.3g}, "
          f"{vh.gdrt.max():.3g})")
    print(f"{'contender':<44} {'time/s':>8}")
    print(f"{'pymatgen VanHoveAnalysis':<44} {t_pmg:>8.3f}")
    print(f"{'anionmotion.vanhove, same origins':<44} {t_am:>8.3f}")
    print(f"{'anionmotion.vanhove, every origin + α₂ (FFT)':<44} {t_full:>8.3f}")
    print(f"speed-up on the same work: {t_pmg / t_am:.0f}×")
    if ds > 1e-8 * max(vh.gsrt.max(), 1) or dd > 1e-8 * max(vh.gdrt.max(), 1):
        raise SystemExit("the contenders disagree")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
