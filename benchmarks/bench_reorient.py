"""Benchmark: exact all-origin C1/C2 of polyanion orientation vectors.

anionmotion.analysis.reorientation.orientation_acf (blocked, batched scipy.fft
with power spectra summed before one inverse transform; Cython fills the
u_k and u_k u_l rows) against a plain numpy/FFT implementation in the
tidynamics style (``tidynamics.acf`` per component: 3 components for C1 and
the 6 products u_k u_l for C2, per anion).

Default problem: 1,000 anions × 100,000 frames, one unit vector per anion
(a random walk on the sphere), stored as a float64 .npy (2.4 GB) in
benchmarks/_work, loaded into memory by every contender.  Each contender runs
in its own subprocess; peak memory is that child's ru_maxrss, and the working
memory is the peak minus the RSS right after loading the input.

    python benchmarks/bench_reorient.py [--anions 1000] [--frames 100000]
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
sys.path.insert(0, os.path.dirname(HERE))      # run from a checkout without installing


def make_data(path, n_frames, n_anions, seed=0, step=0.02):
    """Unit vectors doing a random walk on the sphere, written in frame blocks."""
    if os.path.exists(path):
        arr = np.load(path, mmap_mode="r")
        if arr.shape == (n_frames, n_anions, 3):
            return
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n_frames, n_anions, 3))
    u = rng.normal(size=(n_anions, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    blk = 2000
    for t0 in range(0, n_frames, blk):
        nb = min(blk, n_frames - t0)
        steps = rng.normal(0, step, size=(nb, n_anions, 3))
        for k in range(nb):        # generation only
            u = u + steps[k] - (np.einsum("ak,ak->a", steps[k], u))[:, None] * u
            u /= np.linalg.norm(u, axis=1, keepdims=True)
            out[t0 + k] = u
    out.flush()
    del out


def run_anionmotion(path, n_anions):
    from anionmotion.analysis.reorientation import orientation_acf

    u = np.load(path)
    if n_anions < u.shape[1]:
        u = np.ascontiguousarray(u[:, :n_anions])
    base = _rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    c1, c2 = orientation_acf(u)
    return time.perf_counter() - t0, time.process_time() - c0, c1, c2, base


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024     # Linux: KiB


def run_tidynamics(path, n_anions):
    import tidynamics

    u = np.load(path)
    base = _rss_mb()
    n, na = u.shape[0], min(u.shape[1], n_anions)
    t0, c0 = time.perf_counter(), time.process_time()
    c1 = np.zeros(n)
    cos2 = np.zeros(n)
    for a in range(na):
        x = np.ascontiguousarray(u[:, a, :])
        for k in range(3):
            c1 += tidynamics.acf(x[:, k])
        for k, l, w in ((0, 0, 1), (1, 1, 1), (2, 2, 1), (0, 1, 2), (0, 2, 2), (1, 2, 2)):
            cos2 += w * tidynamics.acf(x[:, k] * x[:, l])
    c1 /= na
    cos2 /= na
    return time.perf_counter() - t0, time.process_time() - c0, c1, 1.5 * cos2 - 0.5, base


CONTENDERS = {"anionmotion": run_anionmotion, "tidynamics": run_tidynamics}


def child(name, path, out, n_anions):
    secs, cpu, c1, c2, base = CONTENDERS[name](path, int(n_anions))
    peak = _rss_mb()                     # this child only
    np.savez(out, c1=c1, c2=c2)
    print(json.dumps({"seconds": secs, "cpu_seconds": cpu, "peak_MB": peak, "after_load_MB": base}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--anions", type=int, default=1000)
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--child", nargs=4, metavar=("NAME", "DATA", "OUT", "N"), help=argparse.SUPPRESS)
    p.add_argument("--tidynamics-anions", type=int,
                   help="run tidynamics on only the first K anions and scale its time by n_anions / K (its cost is "
                        "a loop over anions, exactly linear); the accuracy column then compares with anionmotion "
                        "on the same K anions")
    p.add_argument("--only", nargs="+", choices=sorted(CONTENDERS), help="run only these contenders")
    args = p.parse_args()
    if args.child:
        child(*args.child)
        return
    os.makedirs(WORK, exist_ok=True)
    path = os.path.join(WORK, f"reorient_{args.frames}x{args.anions}.npy")
    t = time.perf_counter()
    make_data(path, args.frames, args.anions)
    print(f"data: {args.anions} anions × {args.frames} frames ({os.path.getsize(path) / 1e9:.2f} GB, "
          f"{time.perf_counter() - t:.0f} s to make/check)", flush=True)
    rows = {}
    for name in args.only or list(CONTENDERS):
        out = os.path.join(WORK, f"reorient_{name}.npz")
        k = args.anions if name != "tidynamics" or not args.tidynamics_anions else min(args.anions,
                                                                                        args.tidynamics_anions)
        t0 = time.perf_counter()
        cp = subprocess.run([sys.executable, __file__, "--child", name, path, out, str(k)], capture_output=True,
                            text=True)
        wall = time.perf_counter() - t0
        if cp.returncode != 0:
            print(f"{name} failed:\n{cp.stderr}", flush=True)
            continue
        info = json.loads(cp.stdout.strip().splitlines()[-1])
        res = np.load(out)
        scale = args.anions / k
        rows[name] = {"compute_s": info["seconds"] * scale, "cpu_s": info["cpu_seconds"] * scale, "wall_s": wall,
                      "peak_MB": info["peak_MB"], "extra_MB": info["peak_MB"] - info["after_load_MB"],
                      "c1": res["c1"], "c2": res["c2"], "k": k}
        print(f"{name}: {info['seconds']:.1f} s compute ({info['cpu_seconds']:.1f} s CPU) on {k} anions, "
              f"{wall:.1f} s wall, peak RSS {info['peak_MB']:.0f} MB ({rows[name]['extra_MB']:.0f} MB above the "
              "loaded input)", flush=True)
    ref = rows.get("tidynamics")
    check = None
    if ref is not None and ref["k"] < args.anions:
        from anionmotion.analysis.reorientation import orientation_acf

        u = np.load(path, mmap_mode="r")
        check = orientation_acf(np.ascontiguousarray(u[:, :ref["k"]]))
    print()
    print(f"| contender | compute (s) | CPU (s) | wall incl. start-up and load (s) | peak RSS (MB) | working memory "
          f"above the input (MB) | ratio vs anionmotion (compute / CPU) | max abs diff C1 / C2 vs tidynamics |")
    print("|---|---|---|---|---|---|---|---|")
    base = rows.get("anionmotion", {}).get("compute_s")
    base_cpu = rows.get("anionmotion", {}).get("cpu_s")
    for name, r in rows.items():
        ratio = f"{r['compute_s'] / base:.1f}× / {r['cpu_s'] / base_cpu:.1f}×" if base else "-"
        mine = r if check is None or name != "anionmotion" else {"c1": check[0], "c2": check[1]}
        diff = "-" if ref is None else (f"{np.max(np.abs(mine['c1'] - ref['c1'])):.1e} / "
                                        f"{np.max(np.abs(mine['c2'] - ref['c2'])):.1e}")
        note = "" if r["k"] == args.anions else f" (measured on {r['k']} anions, × {args.anions / r['k']:g})"
        print(f"| {name}{note} | {r['compute_s']:.1f} | {r['cpu_s']:.1f} | {r['wall_s']:.1f} | {r['peak_MB']:.0f} | "
              f"{r['extra_MB']:.0f} | {ratio} | {diff} |")


if __name__ == "__main__":
    main()
