"""Throughput of the text readers (XDATCAR, CP2K xyz, extended XYZ) against ASE.

Writes synthetic files into benchmarks/_work/ (gitignored), then times, each
in its own subprocess (peak RSS = the child's own ``ru_maxrss``; a memory-mapped
file counts in RSS as its pages are touched):

* anionmotion: open (frame index) + read of every frame (raw reader output,
  i.e. parsing only) and, separately, the full Trajectory.read (+ unwrapping);
* ASE ``ase.io.read(path, index=":")`` for the same file (smaller file: ASE is slow).

Usage: python benchmarks/bench_readers.py [--mb 200]
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "_work")


_UNIQUE = 8  # distinct frames; the file repeats them (the parsers do not care, and writing stays fast)


def _rows(fmt, arr):
    return "".join(fmt % tuple(r) for r in arr)


def make_xdatcar(path, n_atoms, n_frames, seed=0):
    rng = np.random.default_rng(seed)
    blocks = [_rows("  %.8f  %.8f  %.8f\n", rng.uniform(0, 1, (n_atoms, 3))) for _ in range(_UNIQUE)]
    with open(path, "w") as fh:
        fh.write("bench\n   1.0\n    20.0 0.0 0.0\n    0.0 20.0 0.0\n    0.0 0.0 20.0\n   Li P S\n"
                 f"   {n_atoms - 2 * (n_atoms // 4)} {n_atoms // 4} {n_atoms // 4}\n")
        for t in range(n_frames):
            fh.write(f"Direct configuration= {t + 1:5d}\n")
            fh.write(blocks[t % _UNIQUE])


def make_cp2k(path, n_atoms, n_frames, seed=0):
    rng = np.random.default_rng(seed)
    blocks = [_rows(" LI %20.10f%20.10f%20.10f\n", rng.uniform(0, 20, (n_atoms, 3))) for _ in range(_UNIQUE)]
    with open(path, "w") as fh:
        for t in range(n_frames):
            fh.write(f"{n_atoms:8d}\n i = {t:8d}, time = {t * 0.5:12.3f}, E = -1.0\n")
            fh.write(blocks[t % _UNIQUE])
    with open(path.replace("-pos-1.xyz", "-1.cell"), "w") as fh:
        fh.write("# Step Time Ax Ay Az Bx By Bz Cx Cy Cz Volume\n")
        for t in range(n_frames):
            fh.write(f"{t:8d} {t * 0.5:12.3f} 20 0 0 0 20 0 0 0 20 8000\n")


def make_extxyz(path, n_atoms, n_frames, seed=0):
    rng = np.random.default_rng(seed)
    blocks = [_rows("Li %.8f %.8f %.8f %.8f %.8f %.8f\n", rng.uniform(0, 20, (n_atoms, 6))) for _ in range(_UNIQUE)]
    head = f"{n_atoms}\nLattice=\"20 0 0 0 20 0 0 0 20\" Properties=species:S:1:pos:R:3:vel:R:3 pbc=\"T T T\"\n"
    with open(path, "w") as fh:
        for t in range(n_frames):
            fh.write(head)
            fh.write(blocks[t % _UNIQUE])


CHILD = {
    "am_parse": """
import anionmotion, time, resource
ru0 = resource.getrusage(resource.RUSAGE_SELF)
CPU0 = ru0.ru_utime + ru0.ru_stime
t0 = time.perf_counter()
tr = anionmotion.open(PATH, frame_interval=0.1)
r = tr._reader
for s in range(0, r.n_frames, 500):
    r.read(s, min(r.n_frames, s + 500))
import resource
ru = resource.getrusage(resource.RUSAGE_SELF)
print(time.perf_counter() - t0, ru.ru_utime + ru.ru_stime - CPU0, ru.ru_maxrss / 1024)
""",
    "am_traj": """
import anionmotion, time, resource
ru0 = resource.getrusage(resource.RUSAGE_SELF)
CPU0 = ru0.ru_utime + ru0.ru_stime
t0 = time.perf_counter()
tr = anionmotion.open(PATH, frame_interval=0.1)
for c in tr.iter_chunks(500, progress=False):
    pass
import resource
ru = resource.getrusage(resource.RUSAGE_SELF)
print(time.perf_counter() - t0, ru.ru_utime + ru.ru_stime - CPU0, ru.ru_maxrss / 1024)
""",
    "ase": """
import ase.io, time, resource
ru0 = resource.getrusage(resource.RUSAGE_SELF)
CPU0 = ru0.ru_utime + ru0.ru_stime
t0 = time.perf_counter()
fmt = {"xdatcar": "vasp-xdatcar", "cp2k": "xyz", "extxyz": "extxyz"}[KIND]
frames = ase.io.read(PATH, index=":", format=fmt)
import resource
ru = resource.getrusage(resource.RUSAGE_SELF)
print(time.perf_counter() - t0, ru.ru_utime + ru.ru_stime - CPU0, ru.ru_maxrss / 1024)
""",
}


def run(kind_code, path, kind):
    code = CHILD[kind_code].replace("PATH", repr(path)).replace("KIND", repr(kind))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=os.path.dirname(HERE))
    if out.returncode:
        return None, None, None, out.stderr.strip().splitlines()[-1]
    t, cpu, rss = out.stdout.strip().splitlines()[-1].split()
    return float(t), float(cpu), float(rss), ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=200, help="size of the anionmotion test files (MB)")
    ap.add_argument("--ase-mb", type=float, default=20, help="size of the files given to ASE (MB)")
    args = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    n_atoms = 1000
    rows = []
    for kind, maker, bpr, name in [("xdatcar", make_xdatcar, 36, "XDATCAR"), ("cp2k", make_cp2k, 64, "b-pos-1.xyz"),
                                   ("extxyz", make_extxyz, 75, "b.extxyz")]:
        for label, mb in (("big", args.mb), ("small", args.ase_mb)):
            path = os.path.join(WORK, f"{label}_{name}")
            n_frames = max(2, int(mb * 1e6 / (n_atoms * bpr)))
            if not os.path.exists(path):
                maker(path, n_atoms, n_frames)
            size = os.path.getsize(path) / 1e6
            contenders = ["am_parse", "am_traj"] + (["ase"] if label == "small" else [])
            for c in contenders:
                t, cpu, rss, err = run(c, path, kind)
                rows.append((kind, f"{size:.0f} MB", c, t, cpu, size, rss, err))
    print("CPU s = user + sys of the child after its imports; MB/CPU-s depends little on machine load")
    print(f"{'format':8s} {'file':>7s} {'contender':10s} {'wall s':>8s} {'MB/s':>8s} {'CPU s':>8s} {'MB/CPU-s':>9s} "
          f"{'peak MB':>8s}")
    for kind, size_s, c, t, cpu, size, rss, err in rows:
        if t is None:
            print(f"{kind:8s} {size_s:>7s} {c:10s} failed: {err}")
        else:
            print(f"{kind:8s} {size_s:>7s} {c:10s} {t:8.2f} {size / t:8.1f} {cpu:8.2f} {size / cpu:9.1f} {rss:8.0f}")


if __name__ == "__main__":
    main()
