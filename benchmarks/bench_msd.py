"""Benchmark: all-origin MSD of 1,000 atoms × 100,000 frames, anionmotion against its peers.

Each contender runs in its own subprocess on the same unwrapped random walk (float64 ``.npy`` in
``benchmarks/_work/``); the table gives the compute time (loading the array excluded), the peak
resident memory of the subprocess (``ru_maxrss``, loading included) and its ratio to the size of the
float64 positions, and the largest relative difference of the MSD from anionmotion's.

Contenders
----------
anionmotion        ``anionmotion.kernels.msd.msd_fft`` (in memory, workers=2)
anionmotion-budget ``anionmotion.msd(traj, memory=...)`` streaming the file through a Trajectory (out of core)
tidynamics         ``tidynamics.msd`` per atom, averaged
MDAnalysis         ``EinsteinMSD(fft=True)`` on a MemoryReader universe
freud              ``freud.msd.MSD(mode="window")``
kinisi             ``kinisi.parser.Parser`` + ``kinisi.displacement.calculate_msd`` (direct sums over every interval;
                   timed at the largest size it handles in reasonable time, see ``--kinisi-size``)

Usage::

    python benchmarks/bench_msd.py                      # full benchmark (1000 × 100000)
    python benchmarks/bench_msd.py --atoms 200 --frames 20000 --only anionmotion tidynamics
    python benchmarks/bench_msd.py --flat               # memory-budget mode: 10× longer, same peak
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
CHECK_LAGS = (1, 10, 100, 1000, 10000)


def data_path(n_atoms, n_frames, seed=0):
    return os.path.join(WORK, f"walk_{n_atoms}x{n_frames}_s{seed}.npy")


def make_data(n_atoms, n_frames, seed=0):
    """Unwrapped 3-D random walk (steps N(0, 0.1 Å)), float64, written chunk by chunk."""
    path = data_path(n_atoms, n_frames, seed)
    if os.path.exists(path):
        return path
    os.makedirs(WORK, exist_ok=True)
    tmp = path + ".tmp.npy"
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float64, shape=(n_frames, n_atoms, 3))
    rng = np.random.default_rng(seed)
    carry = rng.uniform(0, 20, size=(n_atoms, 3))
    step = max(1, 2_000_000 // max(n_atoms, 1))
    for t0 in range(0, n_frames, step):
        n = min(step, n_frames - t0)
        block = np.cumsum(rng.normal(scale=0.1, size=(n, n_atoms, 3)), axis=0) + carry
        arr[t0:t0 + n] = block
        carry = block[-1]
    arr.flush()
    del arr
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------- workers
_CPU0 = 0.0


def _start():
    """Start the clocks (wall and process CPU time, all threads) after loading and imports."""
    global _CPU0
    _CPU0 = time.process_time()
    return time.perf_counter()


def _load(path):
    return np.load(path)


def work_anionmotion(path, args):
    from anionmotion.kernels.msd import msd_fft

    pos = _load(path)
    t = _start()
    msd, _ = msd_fft(pos, workers=2)
    return time.perf_counter() - t, msd


class _NpyFrameReader:
    """A trajectory reader over a time-major float64 .npy file, reading frame ranges with pread (no mmap)."""

    def __new__(cls, path):
        from anionmotion.io.base import BaseReader, RawFrames, ReaderOptions

        class Reader(BaseReader):
            format_name = "npy"

            def __init__(self, path):
                super().__init__(path, ReaderOptions())
                with open(path, "rb") as fh:
                    version = np.lib.format.read_magic(fh)
                    shape, fortran, dtype = (np.lib.format.read_array_header_1_0(fh) if version == (1, 0) else np.lib.format.read_array_header_2_0(fh))
                    self._offset = fh.tell()
                self.n_frames, self.n_atoms = shape[0], shape[1]
                self.species = np.array(["Li"] * self.n_atoms, dtype=object)
                self.coord_style = "unwrapped"
                self.times = 0.1 * np.arange(self.n_frames)
                self._fd = os.open(path, os.O_RDONLY)
                self._cell = np.eye(3) * 1000.0

            def read(self, start, stop, atoms=None):
                n = stop - start
                out = np.empty((n, self.n_atoms, 3))
                os.preadv(self._fd, [memoryview(out).cast("B")], self._offset + start * self.n_atoms * 24)
                if atoms is not None:
                    out = out[:, atoms]
                return RawFrames(coords=out, style="unwrapped", cells=np.broadcast_to(self._cell, (n, 3, 3)),
                                 times=self.times[start:stop])

            def read_cells(self, start, stop):
                return np.broadcast_to(self._cell, (stop - start, 3, 3)).copy()

            def close(self):
                os.close(self._fd)

        return Reader(path)


def work_anionmotion_budget(path, args):
    import anionmotion
    from anionmotion.trajectory import Trajectory

    import anionmotion.analysis.diffusion  # noqa: F401  (imports outside the timing, as for the peers)
    import anionmotion.analysis.hops  # noqa: F401
    import tqdm.auto  # noqa: F401

    traj = Trajectory(_NpyFrameReader(path), progress=False)
    t = _start()
    res = anionmotion.msd(traj, species="Li", memory=args.budget, drift=False, framework_cations=[])
    return time.perf_counter() - t, res.msd


def work_tidynamics(path, args):
    import tidynamics

    pos = _load(path)
    t = _start()
    msd = np.zeros(pos.shape[0])
    for i in range(pos.shape[1]):
        msd += tidynamics.msd(pos[:, i, :])
    msd /= pos.shape[1]
    return time.perf_counter() - t, msd


def work_mdanalysis(path, args):
    import MDAnalysis as mda
    from MDAnalysis.analysis.msd import EinsteinMSD
    from MDAnalysis.coordinates.memory import MemoryReader

    pos = _load(path)
    u = mda.Universe.empty(pos.shape[1], trajectory=False)
    u.load_new(pos, format=MemoryReader, order="fac", dt=0.1)
    del pos
    t = _start()
    m = EinsteinMSD(u, select="all", msd_type="xyz", fft=True)
    m.run()
    return time.perf_counter() - t, np.asarray(m.results.timeseries)


def work_freud(path, args):
    import freud

    pos = _load(path)
    box = freud.box.Box.cube(1e6)
    t = _start()
    m = freud.msd.MSD(box=box, mode="window")
    m.compute(pos)
    return time.perf_counter() - t, np.asarray(m.msd)


def work_kinisi(path, args):
    import scipp as sc
    from kinisi.displacement import calculate_msd
    from kinisi.parser import Parser

    pos = _load(path)
    L = 1000.0
    frac = (pos / L)  # unwrapped walk well inside a huge cell: no wrapping needed
    coords = sc.array(dims=["time", "particle", "dimension"], values=frac, unit=sc.units.dimensionless)
    latt = sc.array(dims=["time", "dimension1", "dimension2"],
                    values=np.broadcast_to(np.eye(3) * L, (pos.shape[0], 3, 3)).copy(), unit=sc.units.angstrom)
    del pos
    t = _start()
    p = Parser(coords, latt, time_step=sc.scalar(0.1, unit=sc.Unit("ps")), step_skip=sc.scalar(1),
               specie_indices=sc.array(dims=["particle"], values=np.arange(coords.sizes["particle"])),
               drift_indices=sc.array(dims=["particle"], values=np.zeros(0, dtype=np.int64)))
    dg = calculate_msd(p, progress=False)
    msd = np.concatenate([[0.0], dg["da"].values])
    return time.perf_counter() - t, msd


WORKERS = {"anionmotion": work_anionmotion, "anionmotion-budget": work_anionmotion_budget,
           "tidynamics": work_tidynamics, "MDAnalysis": work_mdanalysis, "freud": work_freud, "kinisi": work_kinisi}


def worker_main(name, path, args):
    try:
        global _CPU0
        dt, msd = WORKERS[name](path, args)
        cpu = time.process_time() - _CPU0
        msd = np.asarray(msd, dtype=np.float64)
        check = {str(m): float(msd[m]) for m in CHECK_LAGS if m < len(msd)}
        out = {"ok": True, "time_s": dt, "cpu_s": cpu, "check": check, "n_lags": int(len(msd))}
    except Exception as err:  # report, do not crash the table
        out = {"ok": False, "error": f"{type(err).__name__}: {err}"[:300]}
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("RESULT " + json.dumps(out))


# ------------------------------------------------------------------ driver
def run_one(name, path, args, timeout):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--data", path, "--budget", args.budget]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    t = time.perf_counter()
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s", "wall_s": time.perf_counter() - t}
    for line in cp.stdout.splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            r["wall_s"] = time.perf_counter() - t
            return r
    return {"ok": False, "error": (cp.stderr.strip().splitlines() or ["no output"])[-1][:300]}


def fmt_row(name, size, r, ref, pos_bytes, best_time=None):
    if not r.get("ok"):
        return f"| {name} | {size} | – | – | – | – | – | – | {r.get('error', '')} |"
    diff = max((abs(r["check"][k] - ref["check"][k]) / abs(ref["check"][k]) for k in ref["check"]
                if k in r["check"] and ref["check"][k]), default=float("nan")) if ref else float("nan")
    ratio = "" if best_time is None else f"{r['time_s'] / best_time[0]:.1f}×"
    cratio = "" if best_time is None else f"{r['cpu_s'] / best_time[1]:.1f}×"
    return (f"| {name} | {size} | {r['time_s']:.2f} | {ratio} | {r['cpu_s']:.2f} | {cratio} | "
            f"{r['peak_rss_bytes'] / 1e9:.2f} | "
            f"{r['peak_rss_bytes'] / pos_bytes:.2f} | max rel. diff {diff:.1e} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--atoms", type=int, default=1000)
    p.add_argument("--frames", type=int, default=100000)
    p.add_argument("--only", nargs="*", choices=list(WORKERS))
    p.add_argument("--kinisi-size", type=int, nargs=2, default=(200, 1000), metavar=("ATOMS", "FRAMES"),
                   help="size at which kinisi (direct sums, O(N·T²)) is timed")
    p.add_argument("--budget", default="256MB", help="memory budget of the anionmotion-budget contender")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--flat", action="store_true", help="memory-budget mode at 1× and 10× the frames")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.data, args)
        return 0
    if args.flat:
        rows = []
        for frames in (args.frames // 10, args.frames):
            path = make_data(args.atoms, frames)
            r = run_one("anionmotion-budget", path, args, args.timeout)
            rows.append((frames, r))
            print(frames, r, flush=True)
        print(f"\n| frames | time (s) | peak RSS (GB) | selection float64 (GB) |\n|---|---|---|---|")
        for frames, r in rows:
            print(f"| {args.atoms} × {frames} | {r.get('time_s', float('nan')):.2f} | "
                  f"{r.get('peak_rss_bytes', float('nan')) / 1e9:.3f} | {args.atoms * frames * 24 / 1e9:.2f} |")
        return 0
    names = args.only or list(WORKERS)
    path = make_data(args.atoms, args.frames)
    pos_bytes = args.atoms * args.frames * 24
    results = {}
    size = f"{args.atoms} × {args.frames}"
    for name in names:
        if name == "kinisi":
            continue
        results[name] = run_one(name, path, args, args.timeout)
        print(name, results[name], flush=True)
    ref = results.get("anionmotion")
    peers = [n for n in results if not n.startswith("anionmotion") and results[n].get("ok")]
    best = min((results[n]["time_s"] for n in peers), default=None)
    best_cpu = min((results[n]["cpu_s"] for n in peers), default=None)
    lines = ["| contender | size (atoms × frames) | wall (s) | wall / anionmotion | CPU (s) | CPU / anionmotion | "
             "peak RSS (GB) | peak / positions | check |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(fmt_row(name, size, r, ref, pos_bytes, (ref["time_s"], ref["cpu_s"]) if ref and ref.get("ok") else None))
    if "kinisi" in names:
        ka, kf = args.kinisi_size
        kpath = make_data(ka, kf)
        kr = run_one("kinisi", kpath, args, args.timeout)
        ar = run_one("anionmotion", kpath, args, args.timeout)
        print("kinisi", kr, "anionmotion at kinisi size", ar, flush=True)
        ks = f"{ka} × {kf}"
        lines.append(fmt_row("anionmotion", ks, ar, ar, ka * kf * 24, (ar["time_s"], ar["cpu_s"]) if ar.get("ok") else None))
        lines.append(fmt_row("kinisi", ks, kr, ar, ka * kf * 24, (ar["time_s"], ar["cpu_s"]) if ar.get("ok") else None))
    print("\n".join(lines))
    if ref and ref.get("ok") and best:
        print(f"\nanionmotion is {best / ref['time_s']:.1f}× faster (wall) and {best_cpu / ref['cpu_s']:.1f}× (CPU) "
              f"than the fastest peer at {size}; "
              f"peak memory {ref['peak_rss_bytes'] / pos_bytes:.2f}× the float64 positions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
