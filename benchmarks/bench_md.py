"""Constrained MD speed: ns/day of UC/RC/RTC/RTVC and the cost of writing trajectories.

Each contender runs in its own subprocess (peak memory = the child's own ru_maxrss) on the embedded
α-Li2SO4-like model: build, apply the mode, minimise briefly, warm up, then time ``--steps`` MD steps
(LangevinMiddle, 1 fs, 1000 K) on the OpenMM CPU platform.

Contenders
----------
- ``<mode>``: dynamics only (no output);
- ``<mode> + anionmotion writer``: a frame every 5 steps with positions and velocities through
  :class:`anionmotion.io.netcdf_writer.NetCDFWriter` (getState + unwrap + float32 NetCDF);
- ``UC + mdtraj NetCDFReporter``: MDTraj's reporter (positions + cell only, no velocities);
- ``UC + OpenMM DCDReporter``: OpenMM's DCD (positions only).

Costs are compared in CPU time (``time.process_time`` of the child: all its threads), which other jobs on
a shared machine disturb far less than wall time; wall-clock ns/day is printed as well.

``--writer-only`` measures the writer's own CPU cost per frame (getState + write, no steps in between)
against the CPU cost of the ``--every`` MD steps between frames: a sharper number than the difference of
two noisy MD timings.

Usage: ``python benchmarks/bench_md.py [--cells 3] [--steps 2000] [--threads 1] [--repeat 2] [--writer-only]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORK = os.path.join(HERE, "_work")


def child(spec):
    """Run one contender in this process; print a JSON line."""
    sys.path.insert(0, ROOT)
    import numpy as np
    import openmm
    from openmm import unit

    from anionmotion.md.modes import apply_mode
    from anionmotion.md.systems import build_li2so4

    m = build_li2so4(spec["cells"])
    system = m.copy_system()
    setup = apply_mode(system, m.positions, m.box, m.groups, spec["mode"], templates=m.templates)
    integ = openmm.LangevinMiddleIntegrator(1000 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond)
    integ.setRandomNumberSeed(1)
    plat = openmm.Platform.getPlatformByName("CPU")
    ctx = openmm.Context(system, integ, plat, {"Threads": str(spec["threads"])})
    ctx.setPositions(setup.positions)
    openmm.LocalEnergyMinimizer.minimize(ctx, 10.0, 200)
    ctx.setVelocitiesToTemperature(1000 * unit.kelvin, 1)
    integ.step(200)
    steps, every = spec["steps"], spec["every"]
    out = os.path.join(spec["tmp"], f"b_{os.getpid()}")
    writer = spec["writer"]
    c0 = time.process_time()
    if writer == "none":
        t0 = time.perf_counter()
        integ.step(steps)
        dt = time.perf_counter() - t0
    elif writer == "anionmotion":
        from anionmotion.io.netcdf_writer import NetCDFWriter

        w = NetCDFWriter(out + ".nc", m.species, masses=setup.masses, metadata={"constraint_mode": spec["mode"]})
        t0 = time.perf_counter()
        for k in range(steps // every):
            integ.step(every)
            st = ctx.getState(getPositions=True, getVelocities=True)
            pos = st.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
            box = st.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
            vel = st.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond)
            w.write(pos * 10.0, box * 10.0, time=k * every * 1e-3, velocities=vel * 10.0, unwrap=k > 0)
        w.close()
        dt = time.perf_counter() - t0
    elif writer == "anionmotion-only":
        # the reporter's own cost: getState + unit conversion + unwrap + NetCDF write, no MD steps in between
        from anionmotion.io.netcdf_writer import NetCDFWriter

        w = NetCDFWriter(out + ".nc", m.species, masses=setup.masses, metadata={"constraint_mode": spec["mode"]})
        n_frames = steps // every
        c0 = time.process_time()
        t0 = time.perf_counter()
        for k in range(n_frames):
            st = ctx.getState(getPositions=True, getVelocities=True)
            pos = st.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
            box = st.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
            vel = st.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond)
            w.write(pos * 10.0, box * 10.0, time=k * every * 1e-3, velocities=vel * 10.0, unwrap=k > 0)
        w.close()
        dt = time.perf_counter() - t0
    else:
        from openmm import app

        top = app.Topology()
        ch = top.addChain()
        for s in m.species:
            top.addAtom(s, app.Element.getBySymbol(s), top.addResidue("X", ch))
        top.setPeriodicBoxVectors(m.box * unit.nanometer)
        state = ctx.getState(getPositions=True, getVelocities=True)
        del ctx
        integ2 = openmm.LangevinMiddleIntegrator(1000 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond)
        sim = app.Simulation(top, system, integ2, plat, {"Threads": str(spec["threads"])})
        sim.context.setState(state)
        if writer == "mdtraj":
            from mdtraj.reporters import NetCDFReporter

            rep = NetCDFReporter(out + "_md.nc", every)
        else:
            rep = app.DCDReporter(out + ".dcd", every)
        sim.reporters.append(rep)
        t0 = time.perf_counter()
        sim.step(steps)
        dt = time.perf_counter() - t0
        if hasattr(rep, "close"):
            rep.close()
    for ext in (".nc", "_md.nc", ".dcd"):
        if os.path.exists(out + ext):
            os.unlink(out + ext)
    cpu = time.process_time() - c0  # CPU seconds of all threads: robust to other jobs on a shared machine
    ns_day = steps * 1e-6 / (dt / 86400.0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # this child only, MB
    print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "ns_per_day": ns_day, "n_atoms": int(m.n_atoms),
                      "peak_MB": peak, "loadavg": os.getloadavg()[0]}))


def run_child(spec):
    p = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    if p.returncode != 0:
        raise RuntimeError(p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--writer-only", action="store_true",
                    help="measure the writer's own cost per frame against the cost of the MD steps between frames")
    ap.add_argument("--child")
    a = ap.parse_args()
    if a.child:
        child(json.loads(a.child))
        return
    os.makedirs(WORK, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=WORK)
    if a.writer_only:
        spec = dict(mode="UC", cells=a.cells, steps=a.steps, threads=a.threads, every=a.every, tmp=tmp)
        md = [run_child(dict(spec, writer="none")) for _ in range(a.repeat)]
        wr = [run_child(dict(spec, writer="anionmotion-only")) for _ in range(a.repeat)]
        step_cpu = min(r["cpu_seconds"] for r in md) / a.steps
        frame_cpu = min(r["cpu_seconds"] for r in wr) / (a.steps // a.every)
        print(f"\nUC MD: {1e3 * step_cpu:.2f} ms CPU per step; writer alone (getState + write, pos+vel): "
              f"{1e3 * frame_cpu:.2f} ms CPU per frame = +{100 * frame_cpu / (a.every * step_cpu):.1f} % at a frame "
              f"every {a.every} steps ({a.cells}×{a.cells}×{a.cells} cells, best of {a.repeat})")
        return
    contenders = [(m, "none") for m in ("UC", "RC", "RTC", "RTVC")]
    contenders += [(m, "anionmotion") for m in ("UC", "RC", "RTC", "RTVC")]
    contenders += [("UC", "mdtraj"), ("UC", "dcd")]
    results = {c: [] for c in contenders}
    for r in range(a.repeat):  # interleaved repeats: load from other processes hits every contender alike
        for c in contenders:
            spec = dict(mode=c[0], writer=c[1], cells=a.cells, steps=a.steps, threads=a.threads, every=a.every,
                        tmp=tmp)
            results[c].append(run_child(spec))
            print(f"  {c[0]:5s} {c[1]:12s} run {r + 1}: {results[c][-1]['ns_per_day']:.2f} ns/day", file=sys.stderr)
    best = {c: min(v, key=lambda x: x["cpu_seconds"]) for c, v in results.items()}
    uc = best[("UC", "none")]
    names = {"none": "", "anionmotion": " + anionmotion writer (pos+vel)", "mdtraj": " + mdtraj NetCDFReporter (pos)",
             "dcd": " + OpenMM DCDReporter (pos)"}
    n_atoms = best[contenders[0]]["n_atoms"]
    loads = [r["loadavg"] for v in results.values() for r in v]
    print(f"\nα-Li2SO4-like model, {a.cells}×{a.cells}×{a.cells} cells ({n_atoms} atoms), LangevinMiddle 1 fs, "
          f"1000 K, CPU platform {a.threads} thread(s), {a.steps} steps, frame every {a.every} steps; best of "
          f"{a.repeat} interleaved runs; machine load average {min(loads):.1f}–{max(loads):.1f} (shared)\n")
    print("| run | CPU s / 1000 steps | cost / UC (CPU time) | writer cost vs same mode (CPU) | "
          "wall ns/day (loaded machine) | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for c in contenders:
        v = best[c]
        base = best[(c[0], "none")]
        wc = "" if c[1] == "none" else f"{100 * (v['cpu_seconds'] / base['cpu_seconds'] - 1):+.0f} %"
        print(f"| {c[0]}{names[c[1]]} | {1000 * v['cpu_seconds'] / a.steps:.2f} | "
              f"{v['cpu_seconds'] / uc['cpu_seconds']:.2f}× | {wc} | {v['ns_per_day']:.2f} | {v['peak_MB']:.0f} |")
    print(f"\nidle-machine equivalent for 1 thread: {86400 * a.steps * 1e-6 / uc['cpu_seconds']:.1f} ns/day (UC, "
          "from CPU time)")


if __name__ == "__main__":
    main()
