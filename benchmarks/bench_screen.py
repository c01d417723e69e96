"""`anionmotion screen` on 100 structures: wall time of the command, per-structure cost, bond-valence cost.

The 100 structures are generated here (no download): five base structures built from crystallographic data
with pymatgen's ``Structure.from_spacegroup`` —

* cubic Na3PS4, I-43m, a = 6.9965 Å (Hayashi et al., Nat. Commun. 3, 856 (2012)): isolated PS4;
* NaWO3-like cubic perovskite, Pm-3m, a = 3.86 Å (Na 1b, W 1a, O 3d): corner-sharing WO6;
* rock-salt NaCl, Fm-3m, a = 5.64 Å: no framework polyhedron;
* ReO3, Pm-3m, a = 3.7477 Å: corner-sharing, no mobile cation;
* an artificial cubic "Na3PO4" (Fm-3m, a = 7.5 Å; P 4a, Na 4b + 8c, O 16e x = 0.115: isolated PO4 with
  P–O 1.49 Å, the Na–O distances too short to be physical — a test of the rules, not a compound) —

and, for each base, 20 variants: a supercell (1×1×1, 2×1×1, 2×2×1 or 2×2×2), a random strain of up to ±3 %
per lattice parameter, random displacements (σ = 0.02 Å) and a random atom order, written alternately as CIF
and POSCAR (4 to 128 atoms per file; the seed is fixed).  The command runs in a subprocess exactly as a user
types it: the default command (``--bv none``) on 1 and ``--jobs`` workers, then ``--bv all`` (bond-valence
columns on every file) on the first ``--bv-files`` files (default: all), with the bond-valence seconds per file summed by base structure and
size (``bv_seconds`` of the CSV, the wall time of ``bv_summary`` in its worker).

Usage::

    nice -n 5 python benchmarks/bench_screen.py [--n 100] [--jobs 2] [--bv-files N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np


def bases():
    from pymatgen.core import Lattice, Structure

    return {
        "Na3PS4": Structure.from_spacegroup("I-43m", Lattice.cubic(6.9965), ["P", "S", "Na"],
                                            [[0, 0, 0], [0.1721, 0.1721, 0.1721], [0, 0.5, 0.5]]),
        "NaWO3": Structure.from_spacegroup("Pm-3m", Lattice.cubic(3.86), ["Na", "W", "O"],
                                           [[0.5, 0.5, 0.5], [0, 0, 0], [0.5, 0, 0]]),
        "NaCl": Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        "ReO3": Structure.from_spacegroup("Pm-3m", Lattice.cubic(3.7477), ["Re", "O"], [[0, 0, 0], [0.5, 0, 0]]),
        "Na3PO4": Structure.from_spacegroup("Fm-3m", Lattice.cubic(7.5), ["P", "Na", "Na", "O"],
                                            [[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25],
                                             [0.115, 0.115, 0.115]]),
    }


def generate(folder, n, seed=0):
    """Write ``n`` varied structures into ``folder``; returns their paths."""
    rng = np.random.default_rng(seed)
    reps = [(1, 1, 1), (2, 1, 1), (2, 2, 1), (2, 2, 2)]
    paths = []
    b = bases()
    names = list(b)
    for k in range(n):
        name = names[k % len(names)]
        s = b[name].copy()
        rep = reps[(k // len(names)) % len(reps)]
        if len(s) * np.prod(rep) > 160:
            rep = (1, 1, 1)
        s.make_supercell(rep)
        s.apply_strain(rng.uniform(-0.03, 0.03, 3))
        s.perturb(0.02) if hasattr(s, "perturb") else None
        s = s.from_sites([s[i] for i in rng.permutation(len(s))])
        fmt = "cif" if k % 2 == 0 else "poscar"
        p = os.path.join(folder, f"{k:03d}_{name}" + (".cif" if fmt == "cif" else ".vasp"))
        s.to(filename=p, fmt=fmt)
        paths.append(p)
    return paths


def run(cmd):
    """(wall s, CPU s of the command and its workers, load average before, CompletedProcess)."""
    import resource

    load = os.getloadavg()[0]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, cpu, load, p


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--bv-files", type=int, default=None,
                    help="files screened with --bv all; default all, 0 none")
    ap.add_argument("--keep", help="write the structures here (kept) instead of a temporary folder")
    args = ap.parse_args(argv)
    folder = args.keep or tempfile.mkdtemp(prefix="bench_screen_")
    os.makedirs(folder, exist_ok=True)
    try:
        t0 = time.perf_counter()
        paths = generate(folder, args.n)
        t_gen = time.perf_counter() - t0
        atoms = []
        from anionmotion.structures import load_structure

        for p in paths:
            atoms.append(load_structure(p).n_atoms)
        print(f"{len(paths)} structures ({min(atoms)}–{max(atoms)} atoms, median {int(np.median(atoms))}) "
              f"generated in {t_gen:.1f} s in {folder}")
        base = [sys.executable, "-m", "anionmotion", "screen", *paths, "--no-progress"]
        rows = []
        for jobs in sorted({1, args.jobs}):
            out = os.path.join(folder, f"screen_j{jobs}.csv")
            wall, cpu, load, p = run(base + ["--jobs", str(jobs), "--csv", out, "--overwrite"])
            assert p.returncode == 0, p.stderr[-2000:]
            rows.append((f"default (--bv none) --jobs {jobs}", len(paths), wall, cpu, load))
            import csv

            with open(out) as fh:
                data = list(csv.DictReader(fh))
            kinds = {}
            for r in data:
                kinds[r["connectivity"]] = kinds.get(r["connectivity"], 0) + 1
            n_err = sum(1 for r in data if r["error"])
            print(f"screen (default, --bv none) --jobs {jobs}: {wall:.1f} s wall, {cpu:.1f} s CPU for {len(paths)} files "
                  f"(load average {load:.1f} before); classes {kinds}; errors {n_err}")
        n_bv = len(paths) if args.bv_files is None else args.bv_files
        if n_bv:
            sub = paths[:n_bv]
            out = os.path.join(folder, "screen_bv.csv")
            wall, cpu, load, p = run([sys.executable, "-m", "anionmotion", "screen", *sub, "--no-progress", "--bv", "all",
                                      "--jobs", str(args.jobs), "--csv", out, "--overwrite"])
            assert p.returncode == 0, p.stderr[-2000:]
            import csv

            with open(out) as fh:
                data = list(csv.DictReader(fh))
            status = {}
            for r in data:
                status[r["bv_status"]] = status.get(r["bv_status"], 0) + 1
            rows.append((f"--bv all, --jobs {args.jobs}", len(sub), wall, cpu, load))
            print(f"screen --bv all --jobs {args.jobs}: {wall:.1f} s wall, {cpu:.1f} s CPU for {len(sub)} files "
                  f"(load average {load:.1f} before); bv status {status}")
            groups = {}
            for r in data:
                name = os.path.basename(r["file"]).split("_", 1)[1].rsplit(".", 1)[0]
                key = (name, int(r["n_atoms"]) if r.get("n_atoms") else 0)
                g = groups.setdefault(key, [0, 0.0, r["bv_status"]])
                g[0] += 1
                g[1] += float(r["bv_seconds"]) if r.get("bv_seconds") else 0.0
            print()
            print("| base | atoms | files | bv status | bv_summary s per file |")
            print("|---|---|---|---|---|")
            for (name, na), (cnt, sec, stt) in sorted(groups.items()):
                print(f"| {name} | {na} | {cnt} | {stt} | {sec / cnt:.2f} |")
        print()
        print("| run | files | wall (s) | CPU (s) | CPU per file (s) | load average before |")
        print("|---|---|---|---|---|---|")
        for what, n, wall, cpu, load in rows:
            print(f"| {what} | {n} | {wall:.1f} | {cpu:.1f} | {cpu / n:.3f} | {load:.1f} |")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
