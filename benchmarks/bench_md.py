"""Constrained MD speed: ns/day of UC/RC/RTC/RTVC per potential route, and the cost of writing trajectories.

Each contender runs in its own subprocess (peak memory = the child's own ru_maxrss): build the System of
its route, apply the mode (:func:`anionmotion.md.modes.apply_mode`, Eckart or ``--rc-backend``), warm up,
then time ``--steps`` MD steps (LangevinMiddle, 1 fs, 1000 K) on the OpenMM CPU platform.

Potential routes (``--routes``)
-------------------------------
- ``native``: the embedded α-Li2SO4-like model as OpenMM forces (``--cells``, 3 → 756 atoms);
- ``pythonforce``: the *same* model, its forces computed by a second OpenMM Context and handed to the
  simulated System through an ``openmm.PythonForce`` (what every ASE-calculator/ML route goes through):
  the difference to ``native`` is the PythonForce overhead (a State to Python, positions out, energy and
  forces back, once per step);
- ``ase``: the same model through an ASE calculator inside a PythonForce — the package's route
  ``ase:anionmotion.md.potentials:OpenMMCalculator`` (:func:`anionmotion.md.potentials.potential_system`),
  or, without that module, a minimal ASE ``Calculator`` defined here: PythonForce + ASE ``Atoms``
  bookkeeping and eV/Å unit conversions;
- ``chgnet``: CHGNet's bundled pretrained universal potential on the CPU (``torch`` on ``--threads``
  threads) on the model's structure with ``--chgnet-cells`` cells (1 → 28 atoms), through the package's
  ``chgnet`` route (energy and forces in a PythonForce) or, without it, CHGNet's ASE calculator.

The constraints are OpenMM forces (restraints, zero masses) for every route, so their cost does not
depend on the potential; the goal is RC/RTC/RTVC ≤ 1.3× UC for every route.

Writer contenders (``--writers``, native route)
-----------------------------------------------
``<mode> + anionmotion writer`` (a frame every ``--every`` steps, positions and velocities through
:class:`anionmotion.io.netcdf_writer.NetCDFWriter`), ``UC + mdtraj NetCDFReporter`` (positions + cell),
``UC + OpenMM DCDReporter`` (positions).  ``--writer-only`` measures the writer's own CPU cost per frame
(getState + write, no steps in between) against the CPU cost of the MD steps between frames.

Costs are compared in CPU time (``time.process_time`` of the child: all its threads), which other jobs on
a shared machine disturb far less than wall time; wall-clock ns/day is printed as well.

Usage::

    nice -n 10 python benchmarks/bench_md.py [--routes native,pythonforce,ase,chgnet] [--cells 3] \
        [--steps 1000] [--chgnet-steps 40] [--threads 1] [--repeat 2] [--rc-backend eckart] [--writers]
    nice -n 10 python benchmarks/bench_md.py --writer-only
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

MODES = ("UC", "RC", "RTC", "RTVC")
EV_KJMOL = 96.48533212331002          # 1 eV in kJ/mol
EV_A_KJMOL_NM = EV_KJMOL * 10.0        # 1 eV/Å in kJ/mol/nm
ROUTE_NAMES = {"native": "native OpenMM forces", "pythonforce": "same model via PythonForce",
               "ase": "same model via ASE calculator + PythonForce", "chgnet": "CHGNet in a PythonForce"}


# ------------------------------------------------------------------------------------------- routes (child side)
class _NativeCompute:
    """PythonForce computation backed by a second Context on the native model (kJ/mol, kJ/mol/nm)."""

    def __init__(self, openmm, system, threads):
        self.openmm = openmm
        self.ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"),
                                  {"Threads": str(threads)})

    def __call__(self, state):
        box = state.getPeriodicBoxVectors(asNumpy=True)._value
        self.ctx.setPeriodicBoxVectors(*[self.openmm.Vec3(*r) for r in box])
        self.ctx.setPositions(state.getPositions(asNumpy=True)._value)
        st = self.ctx.getState(getEnergy=True, getForces=True)
        return st.getPotentialEnergy()._value, st.getForces(asNumpy=True)._value


class _AseCompute:
    """PythonForce computation through an ASE calculator (positions nm → Å, eV → kJ/mol, eV/Å → kJ/mol/nm)."""

    def __init__(self, atoms):
        self.atoms = atoms

    def __call__(self, state):
        import numpy as np

        self.atoms.set_cell(state.getPeriodicBoxVectors(asNumpy=True)._value * 10.0)
        self.atoms.set_positions(state.getPositions(asNumpy=True)._value * 10.0)
        e = self.atoms.get_potential_energy()
        f = np.asarray(self.atoms.get_forces())
        return e * EV_KJMOL, f * EV_A_KJMOL_NM


def _native_ase_calculator(openmm, system, threads):
    """A minimal ASE calculator around the native model (used when anionmotion.md.potentials has none)."""
    from ase.calculators.calculator import Calculator, all_changes

    inner = _NativeCompute(openmm, system, threads)

    class NativeModelCalculator(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            inner.ctx.setPeriodicBoxVectors(*[openmm.Vec3(*r) for r in atoms.cell.array / 10.0])
            inner.ctx.setPositions(atoms.positions / 10.0)
            st = inner.ctx.getState(getEnergy=True, getForces=True)
            self.results = {"energy": st.getPotentialEnergy()._value / EV_KJMOL,
                            "forces": st.getForces(asNumpy=True)._value / EV_A_KJMOL_NM}

    return NativeModelCalculator()


def _python_force_system(openmm, mdsys, compute):
    """A System with the model's particles and masses whose only force is a periodic PythonForce."""
    s = openmm.System()
    for i in range(mdsys.n_atoms):
        s.addParticle(mdsys.system.getParticleMass(i))
    s.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*r) for r in mdsys.box])
    f = openmm.PythonForce(compute)
    f.setUsesPeriodicBoundaryConditions(True)
    s.addForce(f)
    return s


def _potentials():
    """``anionmotion.md.potentials`` when it offers the route API (potential_system), else None."""
    try:
        from anionmotion.md import potentials
    except ImportError:
        return None
    return potentials if hasattr(potentials, "potential_system") else None


def build_route(route, cells, threads, chgnet_cells, tmp):
    """(MDSystem, System to simulate, how the forces are computed) of a potential route."""
    import numpy as np
    import openmm

    from anionmotion.md.systems import build_li2so4

    if route == "native":
        m = build_li2so4(cells)
        return m, m.copy_system(), "native"
    if route == "pythonforce":
        m = build_li2so4(cells)
        return m, _python_force_system(openmm, m, _NativeCompute(openmm, m.copy_system(), threads)), \
            "PythonForce around a second Context (bench_md.py)"
    if route not in ROUTE_NAMES:
        raise SystemExit(f"unknown route {route!r}; choose from {', '.join(ROUTE_NAMES)}")
    m = build_li2so4(chgnet_cells if route == "chgnet" else cells)
    masses = np.array([m.system.getParticleMass(i)._value for i in range(m.n_atoms)])
    pot = _potentials()
    if pot is not None:   # the package's own routes (what `anionmotion md --potential` runs)
        if route == "ase":
            xml = os.path.join(tmp, f"native_{cells}_{os.getpid()}.xml")
            with open(xml, "w", encoding="utf-8") as fh:
                fh.write(openmm.XmlSerializer.serialize(m.copy_system()))
            system = pot.potential_system("ase:anionmotion.md.potentials:OpenMMCalculator", m.species, masses, m.box,
                                          potential_kw={"system_xml": xml, "threads": threads})
            return m, system, "anionmotion.md.potentials: ase:…OpenMMCalculator in a PythonForce"
        pot.set_torch_threads(threads)
        system = pot.potential_system("chgnet", m.species, masses, m.box, device="cpu")
        return m, system, "anionmotion.md.potentials: chgnet (energy + forces) in a PythonForce"
    import ase

    if route == "ase":
        calc, how = _native_ase_calculator(openmm, m.copy_system(), threads), "minimal ASE Calculator (bench_md.py)"
    else:
        import torch
        from chgnet.model.dynamics import CHGNetCalculator

        torch.set_num_threads(int(threads))
        calc, how = CHGNetCalculator(use_device="cpu", on_isolated_atoms="ignore"), "chgnet CHGNetCalculator (CPU)"
    atoms = ase.Atoms(symbols=list(m.species), positions=m.positions * 10.0, cell=m.box * 10.0, pbc=True)
    atoms.calc = calc
    return m, _python_force_system(openmm, m, _AseCompute(atoms)), how


def child(spec):
    """Run one contender in this process; print a JSON line."""
    sys.path.insert(0, ROOT)
    import openmm
    from openmm import unit

    from anionmotion.md.modes import apply_mode

    route = spec.get("route", "native")
    m, system, how = build_route(route, spec["cells"], spec["threads"], spec.get("chgnet_cells", 1), spec["tmp"])
    setup = apply_mode(system, m.positions, m.box, m.groups, spec["mode"], templates=m.templates,
                       rc_backend=spec.get("rc_backend", "eckart"))
    integ = openmm.LangevinMiddleIntegrator(1000 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond)
    integ.setRandomNumberSeed(1)
    plat = openmm.Platform.getPlatformByName("CPU")
    ctx = openmm.Context(system, integ, plat, {"Threads": str(spec["threads"])})
    ctx.setPositions(setup.positions)
    if route != "chgnet":
        openmm.LocalEnergyMinimizer.minimize(ctx, 10.0, 200)
    ctx.setVelocitiesToTemperature(1000 * unit.kelvin, 1)
    integ.step(spec.get("warmup", 200))
    steps, every = spec["steps"], spec["every"]
    out = os.path.join(spec["tmp"], f"b_{os.getpid()}")
    writer = spec.get("writer", "none")
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
                      "peak_MB": peak, "loadavg": os.getloadavg()[0], "how": how}))


def run_child(spec):
    p = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    if p.returncode != 0:
        raise RuntimeError(p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------- driver
def writer_only(a, tmp):
    spec = dict(mode="UC", cells=a.cells, steps=a.steps, threads=a.threads, every=a.every, tmp=tmp)
    md = [run_child(dict(spec, writer="none")) for _ in range(a.repeat)]
    wr = [run_child(dict(spec, writer="anionmotion-only")) for _ in range(a.repeat)]
    step_cpu = min(r["cpu_seconds"] for r in md) / a.steps
    frame_cpu = min(r["cpu_seconds"] for r in wr) / (a.steps // a.every)
    print(f"\nUC MD: {1e3 * step_cpu:.2f} ms CPU per step; writer alone (getState + write, pos+vel): "
          f"{1e3 * frame_cpu:.2f} ms CPU per frame = +{100 * frame_cpu / (a.every * step_cpu):.1f} % at a frame "
          f"every {a.every} steps ({a.cells}×{a.cells}×{a.cells} cells, best of {a.repeat})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--routes", default="native,pythonforce,ase,chgnet",
                    help="comma-separated potential routes: native, pythonforce, ase, chgnet")
    ap.add_argument("--cells", type=int, default=3, help="cells of the native/pythonforce/ase routes (3 → 756 atoms)")
    ap.add_argument("--chgnet-cells", type=int, default=1, help="cells of the CHGNet route (1 → 28 atoms)")
    ap.add_argument("--steps", type=int, default=1000, help="timed steps per contender (native, pythonforce, ase)")
    ap.add_argument("--chgnet-steps", type=int, default=40, help="timed steps per contender of the CHGNet route")
    ap.add_argument("--threads", type=int, default=1, help="OpenMM CPU threads (and torch threads for CHGNet)")
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--rc-backend", default="eckart", choices=("eckart", "orientation"))
    ap.add_argument("--writers", action="store_true", help="also time the trajectory writers (native route)")
    ap.add_argument("--writer-only", action="store_true",
                    help="measure the writer's own cost per frame against the cost of the MD steps between frames")
    ap.add_argument("--json", help="write all timings to this JSON file")
    ap.add_argument("--child")
    a = ap.parse_args()
    if a.child:
        child(json.loads(a.child))
        return
    os.makedirs(WORK, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=WORK)
    if a.writer_only:
        writer_only(a, tmp)
        return
    routes = [r.strip() for r in a.routes.split(",") if r.strip()]
    contenders = [(r, m, "none") for r in routes for m in MODES]
    if a.writers:
        contenders += [("native", m, "anionmotion") for m in MODES]
        contenders += [("native", "UC", "mdtraj"), ("native", "UC", "dcd")]
    results = {c: [] for c in contenders}
    for rep in range(a.repeat):  # interleaved repeats: load from other processes hits every contender alike
        for c in contenders:
            route, mode, writer = c
            chg = route == "chgnet"
            spec = dict(route=route, mode=mode, writer=writer, cells=a.cells, chgnet_cells=a.chgnet_cells,
                        steps=a.chgnet_steps if chg else a.steps, warmup=5 if chg else 200, threads=a.threads,
                        every=a.every, tmp=tmp, rc_backend=a.rc_backend)
            results[c].append(run_child(spec))
            print(f"  {route:11s} {mode:5s} {writer:12s} run {rep + 1}: {results[c][-1]['ns_per_day']:.3g} ns/day "
                  f"({1e3 * results[c][-1]['cpu_seconds'] / spec['steps']:.2f} ms CPU/step)", file=sys.stderr)
    best = {c: min(v, key=lambda x: x["cpu_seconds"]) for c, v in results.items()}
    steps_of = {c: a.chgnet_steps if c[0] == "chgnet" else a.steps for c in contenders}
    per_step = {c: best[c]["cpu_seconds"] / steps_of[c] for c in contenders}
    loads = [r["loadavg"] for v in results.values() for r in v]
    if a.json:
        with open(a.json, "w", encoding="utf-8") as fh:
            json.dump({"args": vars(a), "results": {"/".join(c): v for c, v in results.items()}}, fh, indent=1)

    print(f"\nLangevinMiddle 1 fs, 1000 K, OpenMM CPU platform, {a.threads} thread(s) (torch too), RC/RTC rotational "
          f"restraint: {a.rc_backend}; best of {a.repeat} interleaved runs; {a.steps} steps per contender "
          f"({a.chgnet_steps} for CHGNet); machine load average {min(loads):.1f}–{max(loads):.1f} (shared)\n")
    print("| route | atoms | mode | CPU ms / step | cost / UC of the route (CPU) | wall ns/day (loaded) | "
          "idle ns/day from CPU time | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for c in contenders:
        if c[2] != "none":
            continue
        v, uc = best[c], per_step[(c[0], "UC", "none")]
        print(f"| {ROUTE_NAMES[c[0]]} | {v['n_atoms']} | {c[1]} | {1e3 * per_step[c]:.2f} | {per_step[c] / uc:.2f}× | "
              f"{v['ns_per_day']:.3g} | {86400 * 1e-6 / per_step[c]:.3g} | {v['peak_MB']:.0f} |")
    print("\nforces computed by: " + "; ".join(f"{r}: {best[(r, 'UC', 'none')]['how']}" for r in routes
                                             if (r, "UC", "none") in best))
    if ("native", "UC", "none") in per_step:
        nat = {m: per_step[("native", m, "none")] for m in MODES if ("native", m, "none") in per_step}
        for r in ("pythonforce", "ase"):
            if (r, "UC", "none") in per_step:
                over = [per_step[(r, m, "none")] / nat[m] for m in nat if (r, m, "none") in per_step]
                extra = [1e3 * (per_step[(r, m, "none")] - nat[m]) for m in nat if (r, m, "none") in per_step]
                print(f"\n{ROUTE_NAMES[r]} vs native ({best[(r, 'UC', 'none')]['how']}): "
                      f"{min(over):.2f}–{max(over):.2f}× the native CPU time per step, "
                      f"{min(extra):+.2f} … {max(extra):+.2f} ms CPU per step")
    if a.writers:
        names = {"anionmotion": " + anionmotion writer (pos+vel)", "mdtraj": " + mdtraj NetCDFReporter (pos)",
                 "dcd": " + OpenMM DCDReporter (pos)"}
        print("\n| run (native) | CPU s / 1000 steps | writer cost vs same mode (CPU) | wall ns/day | peak RSS (MB) |")
        print("|---|---|---|---|---|")
        for c in contenders:
            if c[2] == "none":
                continue
            base = per_step[("native", c[1], "none")]
            print(f"| {c[1]}{names[c[2]]} | {1000 * per_step[c]:.2f} | {100 * (per_step[c] / base - 1):+.0f} % | "
                  f"{best[c]['ns_per_day']:.2f} | {best[c]['peak_MB']:.0f} |")


if __name__ == "__main__":
    main()
