"""Benchmark: partial g(r) and density grids (SPEC §7).

g(r) of the Li–S pair (r < 6 Å, 300 bins), contenders each in a subprocess:

- ``anionmotion``: ``anionmotion.rdf`` (compiled cell lists, ext/_pbc.pyx);
- ``freud``: ``freud.density.RDF`` accumulated frame by frame (``reset=False``);
- ``mdanalysis``: ``MDAnalysis.analysis.rdf.InterRDF`` on an in-memory Universe.

Density of Li on a 0.5 Å grid:

- ``anionmotion``: ``anionmotion.density`` (compiled fractional binning);
- ``mdanalysis``: ``MDAnalysis.analysis.density.DensityAnalysis`` (delta = 0.5 Å);
- ``pymatgen``: ``pymatgen.analysis.diffusion.aimd.pathway.ProbabilityDensityAnalysis`` (interval = 0.5 Å).

Default problem: 1,024 atoms (512 Li + 512 S, alternating on a simple-cubic lattice) in a 24 Å cubic box (orthorhombic so
that every peer applies) × 10,000 frames of diffusing, wrapped positions, written
once as .npy in benchmarks/_work and loaded by each contender.  Contenders that are
much slower are timed on fewer frames (``--peer-frames``) and their time is scaled
linearly to the full run; the table says so.  Peak memory is the child's
ru_maxrss; "working" = peak minus the RSS after loading the input.

    python benchmarks/bench_structure.py [--atoms 1024] [--frames 10000] [--peer-frames 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "_work")
sys.path.insert(0, os.path.dirname(HERE))

L = 24.0
RMAX = 6.0
BINS = 300
SPACING = 0.5
_CPU0 = 0.0


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _mark():
    global _CPU0
    _CPU0 = _cpu_s()


def data_path(n_atoms, n_frames):
    return os.path.join(WORK, f"structure_{n_atoms}x{n_frames}_pos.npy")


def make_data(n_atoms, n_frames, seed=1):
    p = data_path(n_atoms, n_frames)
    if os.path.exists(p):
        return
    os.makedirs(WORK, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = int(round(n_atoms ** (1 / 3))) + 1
    grid = np.array([[i, j, k] for i in range(n) for j in range(n) for k in range(n)][:n_atoms], dtype=float)
    site = (grid + 0.5) * (L / n)
    out = np.lib.format.open_memmap(p, mode="w+", dtype=np.float64, shape=(n_frames, n_atoms, 3))
    drift = np.zeros((n_atoms, 3))
    blk = 1000
    for t0 in range(0, n_frames, blk):
        nb = min(blk, n_frames - t0)
        steps = rng.normal(0, 0.02, (nb, n_atoms, 3))
        steps[:, 1::2] = 0.0  # S (odd indices): vibrate only
        walk = drift + np.cumsum(steps, axis=0)
        drift = walk[-1]
        vib = rng.normal(0, 0.15, (nb, n_atoms, 3))
        out[t0:t0 + nb] = np.mod(site + walk + vib, L)
    out.flush()


def species(n_atoms):
    """Alternating Li, S on the sites (the two species are mixed through the box)."""
    return np.where(np.arange(n_atoms) % 2 == 0, "Li", "S")


def load(n_atoms, n_frames, frames):
    """The first ``frames`` frames; the whole file is read without a memory-mapped transient."""
    if frames >= n_frames:
        return np.load(data_path(n_atoms, n_frames))
    return np.load(data_path(n_atoms, n_frames), mmap_mode="r")[:frames].copy()


# ---------------------------------------------------------------- g(r)
def rdf_anionmotion(pos):
    import anionmotion as am

    tr = am.from_arrays(pos, np.eye(3) * L, species=species(pos.shape[1]), frame_interval=0.01, style="wrapped")
    base = _rss_mb()
    _mark()
    t0 = time.perf_counter()
    r = am.rdf(tr, "Li-S", rmax=RMAX, bins=BINS)
    return time.perf_counter() - t0, base, float(r.g["Li-S"][-20:].mean())


def rdf_freud(pos):
    import freud

    sp = species(pos.shape[1])
    li, s = sp == "Li", sp == "S"
    box = freud.box.Box.cube(L)
    base = _rss_mb()
    _mark()
    t0 = time.perf_counter()
    rdf = freud.density.RDF(bins=BINS, r_max=RMAX)
    for t in range(len(pos)):
        p = pos[t] - L / 2  # freud boxes are centred on the origin
        rdf.compute(system=(box, p[s]), query_points=p[li], reset=False)
    g = rdf.rdf
    return time.perf_counter() - t0, base, float(np.mean(g[-20:]))


def _universe(pos):
    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader

    n = pos.shape[1]
    u = mda.Universe.empty(n, trajectory=False)
    u.add_TopologyAttr("type", list(species(n)))
    u.add_TopologyAttr("name", list(species(n)))
    dims = np.tile([L, L, L, 90.0, 90.0, 90.0], (len(pos), 1))
    u.load_new(pos.astype(np.float32), format=MemoryReader, dimensions=dims)
    return u


def rdf_mdanalysis(pos):
    from MDAnalysis.analysis.rdf import InterRDF

    u = _universe(pos)
    base = _rss_mb()
    _mark()
    t0 = time.perf_counter()
    r = InterRDF(u.select_atoms("type Li"), u.select_atoms("type S"), nbins=BINS, range=(0.0, RMAX)).run()
    return time.perf_counter() - t0, base, float(r.results.rdf[-20:].mean())


# ------------------------------------------------------------- density
def dens_anionmotion(pos):
    import anionmotion as am

    tr = am.from_arrays(pos, np.eye(3) * L, species=species(pos.shape[1]), frame_interval=0.01, style="wrapped")
    base = _rss_mb()
    _mark()
    t0 = time.perf_counter()
    d = am.density(tr, "Li", spacing=SPACING)
    return time.perf_counter() - t0, base, float(d.density.max())


def dens_mdanalysis(pos):
    from MDAnalysis.analysis.density import DensityAnalysis

    u = _universe(pos)
    base = _rss_mb()
    _mark()
    t0 = time.perf_counter()
    d = DensityAnalysis(u.select_atoms("type Li"), delta=SPACING, padding=0.0).run()
    return time.perf_counter() - t0, base, float(d.results.density.grid.max())


def dens_pymatgen(pos):
    from pymatgen.analysis.diffusion.aimd.pathway import ProbabilityDensityAnalysis
    from pymatgen.core import Lattice, Structure

    sp = species(pos.shape[1])
    struct = Structure(Lattice.cubic(L), list(sp), pos[0] / L)
    frac = pos / L
    base = _rss_mb()
    _mark()
    t0 = time.perf_counter()
    pda = ProbabilityDensityAnalysis(struct, frac, interval=SPACING, species=("Li",))
    return time.perf_counter() - t0, base, float(pda.Pr.max())


CONTENDERS = {
    ("rdf", "anionmotion"): rdf_anionmotion, ("rdf", "freud"): rdf_freud, ("rdf", "mdanalysis"): rdf_mdanalysis,
    ("density", "anionmotion"): dens_anionmotion, ("density", "mdanalysis"): dens_mdanalysis,
    ("density", "pymatgen"): dens_pymatgen,
}


def child(task, name, n_atoms, n_frames, frames):
    pos = load(n_atoms, n_frames, frames)
    el, base, check = CONTENDERS[(task, name)](pos)
    print(json.dumps({"task": task, "name": name, "frames": frames, "time_s": el, "cpu_s": _cpu_s() - _CPU0,
                      "peak_mb": _rss_mb(), "base_mb": base, "check": check}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--atoms", type=int, default=1024)
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--peer-frames", type=int, default=1000,
                    help="frames for the slow peers (mdanalysis, pymatgen); their time is scaled to --frames")
    ap.add_argument("--tasks", nargs="+", default=["rdf", "density"], choices=["rdf", "density"])
    ap.add_argument("--only", nargs="+", help="contenders to run (default all)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child[0], a.child[1], a.atoms, a.frames, int(a.child[2]))
        return
    make_data(a.atoms, a.frames)
    slow = {"mdanalysis", "pymatgen"}
    for task in a.tasks:
        rows = []
        for (t, name) in CONTENDERS:
            if t != task or (a.only and name not in a.only):
                continue
            frames = min(a.peer_frames, a.frames) if name in slow else a.frames
            out = subprocess.run([sys.executable, __file__, "--atoms", str(a.atoms), "--frames", str(a.frames),
                                  "--child", task, name, str(frames)], capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{task}/{name} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        ref = next((r for r in rows if r["name"] == "anionmotion"), None)
        if ref is None:
            ref = {"time_s": float("nan"), "cpu_s": float("nan")}
        what = (f"g(r) Li–S, r < {RMAX} Å, {BINS} bins" if task == "rdf"
                else f"density of Li, {SPACING} Å grid")
        print(f"\n{what}: {a.atoms} atoms × {a.frames} frames, {os.cpu_count()} cores")
        print("| contender | frames timed | wall (s) | CPU (s) | wall for all frames (s) | peak RSS (MB) | "
              "working (MB) | wall / anionmotion | CPU / anionmotion | check |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            scale = a.frames / r["frames"]
            wall, cpu = r["time_s"] * scale, r["cpu_s"] * scale
            print(f"| {r['name']} | {r['frames']} | {r['time_s']:.2f} | {r['cpu_s']:.2f} | "
                  f"{wall:.1f}{' (scaled)' if scale != 1 else ''} | {r['peak_mb']:.0f} | "
                  f"{r['peak_mb'] - r['base_mb']:.0f} | {wall / ref['time_s']:.1f} | {cpu / ref['cpu_s']:.1f} | "
                  f"{r['check']:.4g} |")


if __name__ == "__main__":
    main()
