"""Reading LAMMPS text dumps: anionmotion against MDAnalysis, ASE and MDTraj.

Generates ``id type x y z`` dumps (4000 atoms, ids shuffled in every frame,
``%g`` coordinates, wrapped in an orthogonal box) of two lengths in
``benchmarks/_work/``, then times reading ALL positions of each file with every
contender, each in its own subprocess (peak RSS from ``getrusage`` of the child):

* anionmotion: ``anionmotion.open(...).iter_chunks(200)`` — index scan, parse,
  sort by id and unwrap (positions handed out unwrapped), streaming;
* MDAnalysis: ``Universe(path, format="LAMMPSDUMP", topology_format="LAMMPSDUMP")``
  and a loop over ``u.trajectory`` touching ``u.atoms.positions``;
* ASE: ``ase.io.iread(path, format="lammps-dump-text")``;
* MDTraj: ``mdtraj.iterload(path, chunk=200, top=<Topology of 4000 atoms>)``.

The peers are much slower, so they read a prefix file (the first ``--peer-mb``
MB, whole frames) and their throughput is reported in MB/s of that prefix;
anionmotion reads both full files.  Usage::

    python benchmarks/bench_read.py                # 1 GB and 256 MB files
    python benchmarks/bench_read.py --small        # quick run: 128 MB and 32 MB
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
N_ATOMS = 4000
BOX = 40.0
BLOCK_FRAMES = 40


def _block_text(rng):
    """Text of BLOCK_FRAMES frames' atom lines (a closed loop, so blocks repeat seamlessly)."""
    r0 = rng.uniform(0, BOX, size=(N_ATOMS, 3))
    amp = rng.uniform(0.2, 1.5, size=(N_ATOMS, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(N_ATOMS, 3))
    types = np.where(np.arange(N_ATOMS) < N_ATOMS // 3, 1, 2)
    frames = []
    for t in range(BLOCK_FRAMES):
        pos = r0 + amp * np.sin(2 * np.pi * t / BLOCK_FRAMES + phase)
        pos -= BOX * np.floor(pos / BOX)
        perm = rng.permutation(N_ATOMS)
        lines = [f"{i + 1} {types[i]} {pos[i, 0]:g} {pos[i, 1]:g} {pos[i, 2]:g}\n" for i in perm]
        frames.append("".join(lines).encode())
    return frames


def make_dump(path, target_bytes, seed=0):
    """Write a dump of about ``target_bytes`` bytes (whole frames); returns (bytes, frames)."""
    if os.path.exists(path) and os.path.getsize(path) >= target_bytes:
        with open(path + ".frames") as fh:
            return os.path.getsize(path), int(fh.read())
    rng = np.random.default_rng(seed)
    block = _block_text(rng)
    size = 0
    n = 0
    with open(path + ".tmp", "wb") as fh:
        while size < target_bytes:
            head = (f"ITEM: TIMESTEP\n{n * 10}\nITEM: NUMBER OF ATOMS\n{N_ATOMS}\nITEM: BOX BOUNDS pp pp pp\n"
                    f"0.0000000000000000e+00 {BOX:.16e}\n0.0000000000000000e+00 {BOX:.16e}\n"
                    f"0.0000000000000000e+00 {BOX:.16e}\nITEM: ATOMS id type x y z\n").encode()
            body = block[n % BLOCK_FRAMES]
            fh.write(head)
            fh.write(body)
            size += len(head) + len(body)
            n += 1
    os.replace(path + ".tmp", path)
    with open(path + ".frames", "w") as fh:
        fh.write(str(n))
    return size, n


def prefix_file(src, dst, target_bytes):
    """Copy the whole frames of ``src`` that fit in ``target_bytes`` to ``dst``; returns (bytes, frames)."""
    if os.path.exists(dst) and os.path.exists(dst + ".frames"):
        with open(dst + ".frames") as fh:
            return os.path.getsize(dst), int(fh.read())
    frame_bytes = None
    with open(src, "rb") as fh:
        data = fh.read(min(target_bytes + (8 << 20), os.path.getsize(src)))
    starts = []
    pos = 0
    while True:
        j = data.find(b"ITEM: TIMESTEP", pos)
        if j < 0:
            break
        starts.append(j)
        pos = j + 1
    keep = [s for s in starts if s <= target_bytes]
    cut = keep[-1] if len(keep) > 1 else starts[1]
    with open(dst, "wb") as fh:
        fh.write(data[:cut])
    n = len([s for s in starts if s < cut])
    with open(dst + ".frames", "w") as fh:
        fh.write(str(n))
    del frame_bytes
    return cut, n


# ----------------------------------------------------------------------------- contenders (run in a child)
def run_anionmotion(path):
    import anionmotion

    t0 = time.perf_counter()
    traj = anionmotion.open(path, types="1=Li,2=S", timestep=0.001, progress=False)
    t_index = time.perf_counter() - t0
    n = 0
    check = 0.0
    for chunk in traj.iter_chunks(200):
        n += chunk.n_frames
        check += float(chunk.positions[-1, 0, 0])
    return n, check, {"index_s": t_index}


def run_anionmotion_raw(path):
    """Parse only (no unwrapping): the reader's own throughput."""
    from anionmotion.io.base import ReaderOptions
    from anionmotion.io.lammps import LammpsDumpReader

    r = LammpsDumpReader(path, ReaderOptions(types={1: "Li", 2: "S"}, timestep=0.001))
    n = 0
    check = 0.0
    for a in range(0, r.n_frames, 200):
        raw = r.read(a, min(r.n_frames, a + 200))
        n += raw.coords.shape[0]
        check += float(raw.coords[-1, 0, 0])
    return n, check, {}


def run_mdanalysis(path):
    import MDAnalysis as mda

    u = mda.Universe(path, format="LAMMPSDUMP", topology_format="LAMMPSDUMP")
    n = 0
    check = 0.0
    for ts in u.trajectory:
        p = u.atoms.positions
        n += 1
        check += float(p[0, 0])
    return n, check, {}


def run_ase(path):
    import ase.io

    n = 0
    check = 0.0
    for atoms in ase.io.iread(path, format="lammps-dump-text"):
        p = atoms.get_positions()
        n += 1
        check += float(p[0, 0])
    return n, check, {}


def run_mdtraj(path):
    import mdtraj
    from mdtraj.core import element

    top = mdtraj.Topology()
    ch = top.add_chain()
    for i in range(N_ATOMS):
        res = top.add_residue("X", ch)
        top.add_atom("Li" if i < N_ATOMS // 3 else "S", element.lithium if i < N_ATOMS // 3 else element.sulfur,
                     res)
    n = 0
    check = 0.0
    for tr in mdtraj.iterload(path, chunk=200, top=top):
        n += tr.n_frames
        check += float(tr.xyz[-1, 0, 0])
    return n, check, {}


CONTENDERS = {
    "anionmotion": run_anionmotion,
    "anionmotion (parse only)": run_anionmotion_raw,
    "MDAnalysis": run_mdanalysis,
    "ASE": run_ase,
    "MDTraj": run_mdtraj,
}


def child(name, path):
    import warnings

    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    n, check, extra = CONTENDERS[name](path)
    dt = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"frames": n, "seconds": dt, "cpu_seconds": ru.ru_utime + ru.ru_stime,
                      "peak_rss_mb": _peak_rss_mb(), "check": check, **extra}))


def _peak_rss_mb():
    """Peak resident set of this process (VmHWM; ru_maxrss would include the parent's peak across exec)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(name, path, timeout, repeat=1):
    """Run one contender ``repeat`` times in fresh subprocesses; keep the fastest run (wall time)."""
    best = None
    for _ in range(max(1, repeat)):
        r = _measure_once(name, path, timeout)
        if "error" in r:
            return r
        if best is None or r["seconds"] < best["seconds"]:
            best = r
    return best


def _measure_once(name, path, timeout):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, path]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    env["ANIONMOTION_CACHE"] = "0"   # always time the index scan (no on-disk index from an earlier run)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout} s"}
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", nargs=2, metavar=("NAME", "PATH"), help=argparse.SUPPRESS)
    p.add_argument("--small", action="store_true", help="128 MB and 32 MB files (quick check)")
    p.add_argument("--peer-mb", type=float, default=48.0, help="size of the prefix file the peers read (MB)")
    p.add_argument("--timeout", type=float, default=1800.0)
    p.add_argument("--skip", nargs="*", default=[], help="contenders to skip")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs per contender and file; the fastest (wall) is reported (use ≥ 2 on a shared machine)")
    args = p.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    os.makedirs(WORK, exist_ok=True)
    sizes = (128e6, 32e6) if args.small else (1.0e9, 256e6)
    files = []
    for s in sizes:
        path = os.path.join(WORK, f"dump_{int(s / 1e6)}MB.lammpstrj")
        t0 = time.perf_counter()
        nbytes, nframes = make_dump(path, int(s))
        print(f"# {path}: {nbytes / 1e6:.0f} MB, {nframes} frames × {N_ATOMS} atoms "
              f"(made in {time.perf_counter() - t0:.1f} s)", flush=True)
        files.append((path, nbytes, nframes))
    big = files[0][0]
    peer_path = os.path.join(WORK, f"dump_prefix_{int(args.peer_mb)}MB.lammpstrj")
    pbytes, pframes = prefix_file(big, peer_path, int(args.peer_mb * 1e6))
    print(f"# peers read the prefix {peer_path}: {pbytes / 1e6:.1f} MB, {pframes} frames", flush=True)
    # warm the page cache so that every contender reads from memory
    for path, _, _ in files + [(peer_path, 0, 0)]:
        with open(path, "rb") as fh:
            while fh.read(64 << 20):
                pass
    rows = []
    load0 = os.getloadavg()
    for path, nbytes, nframes in files:
        for name in ("anionmotion", "anionmotion (parse only)"):
            if name in args.skip:
                continue
            r = measure(name, path, args.timeout, args.repeat)
            rows.append((name, path, nbytes, nframes, r))
            print(name, os.path.basename(path), r, flush=True)
    for name in ("anionmotion", "MDAnalysis", "ASE", "MDTraj"):
        if name in args.skip:
            continue
        r = measure(name, peer_path, args.timeout, args.repeat)
        rows.append((name, peer_path, pbytes, pframes, r))
        print(name, os.path.basename(peer_path), r, flush=True)
    # table
    am_prefix = next((r for n, pth, _, _, r in rows if n == "anionmotion" and pth == peer_path and "seconds" in r),
                     None)
    print()
    print(f"# load average before the runs: {load0}; after: {os.getloadavg()} (2 cores; other jobs share them)")
    print(f"{'contender':26s} {'file':>10s} {'frames':>7s} {'time s':>8s} {'MB/s':>8s} {'× MDAnalysis':>13s} "
          f"{'CPU s':>7s} {'MB/CPU-s':>9s} {'× MDA (CPU)':>12s} {'peak RSS MB':>12s}")
    mda = next((r for n, pth, _, _, r in rows if n == "MDAnalysis" and "seconds" in r), None)
    mda_mbs = (pbytes / 1e6 / mda["seconds"]) if mda else None
    mda_cpu = (pbytes / 1e6 / mda["cpu_seconds"]) if mda else None
    for name, path, nbytes, nframes, r in rows:
        fname = f"{nbytes / 1e6:.0f} MB"
        if "error" in r:
            print(f"{name:26s} {fname:>10s} {'':>7s} {'error: ' + r['error']}")
            continue
        mbs = nbytes / 1e6 / r["seconds"]
        mbc = nbytes / 1e6 / r["cpu_seconds"]
        ratio = f"{mbs / mda_mbs:.1f}" if mda_mbs else "-"
        ratio_c = f"{mbc / mda_cpu:.1f}" if mda_cpu else "-"
        ok = "" if r["frames"] == nframes else f"  (read {r['frames']} of {nframes} frames!)"
        print(f"{name:26s} {fname:>10s} {nframes:7d} {r['seconds']:8.2f} {mbs:8.1f} {ratio:>13s} "
              f"{r['cpu_seconds']:7.2f} {mbc:9.1f} {ratio_c:>12s} {r['peak_rss_mb']:12.0f}{ok}")
    del am_prefix
    return 0


if __name__ == "__main__":
    sys.exit(main())
