"""Sites: anionmotion vs site-analysis on the same argyrodite run (time, peak RSS, site-type fractions).

Each tool runs in its own child process (so that peak RSS is its own): the polyhedral (tetrahedral) sites of
the ideal argyrodite structure built as in site-analysis's argyrodite tutorial (five site types marked by
dummy species in ``tests/data/argyrodite/argyrodite_sites.cif``, tiled 2×2×2; vertices S/Cl; aligned on P).

Usage::

    nice -n 10 python benchmarks/bench_sites.py \
        ../shared/data/thirdparty/argyrodite-aimd/Li6PS5Cl/0p/run1/actual_XDATCAR.gz
    nice -n 10 python benchmarks/bench_sites.py XDATCAR.gz --only anionmotion

Prints one row per tool: wall time (s), CPU time (s), peak RSS (MiB) and the Li fractions per site type (%).
The numbers of the last run are recorded in docs/sites.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CIF = os.path.join(HERE, "..", "tests", "data", "argyrodite", "argyrodite_sites.cif")
TYPES = {"type1": "Li", "type2": "Mg", "type3": "Na", "type4": "Be", "type5": "K"}

CHILD_ANIONMOTION = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
import anionmotion as am
from anionmotion.analysis.sites import sites, sites_from_structure
traj = am.open(sys.argv[1], format="xdatcar", frame_interval=0.1)
ss = sites_from_structure(sys.argv[2], traj, centre_species="Li Mg Na Be K", kind="polyhedral",
                          vertex_species="S Cl", cutoff=3.0, align="P")
r = sites(traj, "Li", site_set=ss, progress=False)
print(json.dumps({"wall_s": time.perf_counter() - t0, "n_frames": r.n_frames,
                  "fractions": {k: 100 * v for k, v in r.type_fractions().items()}}))
"""

CHILD_SITE_ANALYSIS = r"""
import json, sys, time, warnings
from collections import Counter
warnings.simplefilter("ignore")
t0 = time.perf_counter()
from pymatgen.core import Structure
from pymatgen.io.vasp import Xdatcar
from site_analysis import TrajectoryBuilder
ref = Structure.from_file(sys.argv[2]) * [2, 2, 2]
structs = Xdatcar(sys.argv[1]).structures
b = TrajectoryBuilder().with_reference_structure(ref).with_structure(structs[0]).with_mobile_species("Li")
for lab, sp in json.loads(sys.argv[3]).items():
    b.with_polyhedral_sites(centre_species=sp, vertex_species="S", cutoff=3.0, n_vertices=4, label=lab)
b.with_structure_alignment(align_species="P").with_site_mapping(mapping_species=["S", "Cl"])
tr = b.build()
tr.trajectory_from_structures(structs, progress=False)
c = Counter(tr.sites[s].label for a in tr.atoms for s in a.trajectory if s is not None)
tot = sum(c.values())
print(json.dumps({"wall_s": time.perf_counter() - t0, "n_frames": len(structs),
                  "fractions": {k: 100 * c.get(k, 0) / tot for k in sorted(json.loads(sys.argv[3]))}}))
"""


def run_child(code, args):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process_wall_s"] = wall
    res["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    res["peak_rss_MiB"] = after.ru_maxrss / 1024.0   # largest child so far (each tool runs once, biggest last)
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("xdatcar", help="argyrodite XDATCAR(.gz)")
    p.add_argument("--only", choices=("anionmotion", "site-analysis"))
    args = p.parse_args(argv)
    rows = []
    # site-analysis first: ru_maxrss of RUSAGE_CHILDREN is the maximum over children, so run the larger first
    # and then measure anionmotion in a fresh interpreter through /usr/bin/time-like isolation below
    if args.only in (None, "site-analysis"):
        rows.append(("site-analysis", run_child(CHILD_SITE_ANALYSIS, [args.xdatcar, CIF, json.dumps(TYPES)])))
    if args.only in (None, "anionmotion"):
        if rows:  # isolate: measure anionmotion in a separate benchmark process so its peak is its own
            out = subprocess.run([sys.executable, __file__, args.xdatcar, "--only", "anionmotion"],
                                 capture_output=True, text=True, check=True)
            print(out.stdout, end="")
        else:
            rows.append(("anionmotion", run_child(CHILD_ANIONMOTION, [args.xdatcar, CIF])))
    for name, r in rows:
        fr = " ".join(f"{k} {v:.2f}" for k, v in sorted(r["fractions"].items()))
        print(f"{name:>14}  frames {r['n_frames']:>5}  wall {r['process_wall_s']:8.1f} s  cpu {r['cpu_s']:8.1f} s  "
              f"peak RSS {r['peak_rss_MiB']:7.0f} MiB  |  {fr}")


if __name__ == "__main__":
    main()
