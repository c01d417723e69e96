"""RC backends compared: the Eckart restraint vs OpenMM's OrientationRestraintForce (issue 13, point 3).

On the embedded α-Li2SO4-like model (``--cells 3``: 756 atoms, 108 SO4) this script measures, for UC and
for RC with each backend (same k_rot, same highest libration line):

1. **Rotation held** — one shared UC start (minimised, ``--equilibrate`` ps), the mode switched on,
   ``--reequilibrate`` ps, then ``--time`` ps recorded with velocities (``run_mode``; LangevinMiddle
   1 ps⁻¹, 1 fs): the Kabsch rotation angle of every anion in every frame (mean, median, 95th/99th
   percentile, max), S–O bond and O–S–O angle fluctuations, restraint energy over equipartition;
2. **Spectrum** — the package's own analyses on the outputs: ``anionmotion.libration`` (angular
   velocities from the file's velocities; where the restraint line sits) and ``anionmotion.vdos`` of O
   (the S–O stretch peak ν3 and the band weights: what the restraint does to the internal modes);
3. **Energy drift in NVE** — from the last recorded frame (positions + velocities, net momentum
   removed), the same System with the mode applied (reference = that frame) and no ``CMMotionRemover``,
   integrated with ``VerletIntegrator`` (1 fs,
   ``--nve-steps`` steps, total energy every 10 steps): least-squares slope in kJ/mol/ps, per atom and
   per degree of freedom, and the RMS of E_tot about the line;
4. **CPU cost** — CPU time (``time.process_time``) of ``--cost-steps`` MD steps of UC/RC/RTC per backend
   in a fresh Context (1 thread, no output; interleaved repeats, best kept) and the CPU time of one
   evaluation of the rotational restraint alone (its force group), plus the serialized System size;
   ``--scaling-cells`` repeats the restraint-alone cost and the System size for larger models.

Noise: the spectra are also computed on each half of every run (their difference and overlap show what
two independent halves of *one* backend give), and the NVE drift from ``--nve-starts`` frames spread
over each run (mean ± SD).

Usage::

    nice -n 10 python benchmarks/bench_rc_backends.py [--cells 3] [--temperature 900] [--equilibrate 2] \
        [--reequilibrate 2] [--time 4] [--frame-every 4] [--nve-steps 3000] [--cost-steps 500] [--repeat 3] \
        [--threads 1] [--nve-starts 3] [--scaling-cells 3,5] [--out benchmarks/_work/rc_backends]

Runs already complete in ``--out`` are reused (delete the folder to start again).  The tables are printed as
markdown and everything is written to ``<out>/rc_backends.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import anionmotion  # noqa: E402
from anionmotion.md import build_li2so4  # noqa: E402
from anionmotion.md.modes import ROT_FORCE_GROUP, ModeWarning, apply_mode, count_dof, make_whole  # noqa: E402
from anionmotion.md.run import RunSettings, report_path, run_mode  # noqa: E402

CONTENDERS = (("UC", "eckart"), ("RC", "eckart"), ("RC", "orientation"))
BANDS_CM1 = ((0, 300), (300, 480), (480, 580), (580, 900), (900, 1500))


def label(mode, backend):
    return mode if mode in ("UC", "RTVC") else f"{mode} {backend}"


def produce(a, mdsys):
    """The recorded runs (reused when complete) → {label: (path, report)}."""
    start_dir = os.path.join(a.out, "start.state")
    out = {}
    for mode, backend in CONTENDERS:
        path = os.path.join(a.out, f"{mode}_{backend}.nc")
        rp = report_path(path)
        if os.path.exists(rp):
            with open(rp, encoding="utf-8") as fh:
                out[label(mode, backend)] = (path, json.load(fh))
            continue
        s = RunSettings(mode=mode, temperature=a.temperature, time=a.time, equilibrate=a.equilibrate,
                        reequilibrate=a.reequilibrate, frame_every=a.frame_every, seed=a.seed, rc_backend=backend)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ModeWarning)   # a short re-equilibration is the point of a quick bench
            rep = run_mode(mdsys, path, s, start_dir=start_dir, threads=a.threads, overwrite=True, progress=False,
                           verbose=False, checkpoint_every=10_000)
        print(f"  {label(mode, backend)}: recorded in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        out[label(mode, backend)] = (path, rep)
    return out


def _fwhm(f, S, i):
    """Full width at half maximum (cm⁻¹) of the peak at index i (contiguous region above S[i]/2)."""
    half = S[i] / 2.0
    lo = i
    while lo > 0 and S[lo - 1] > half:
        lo -= 1
    hi = i
    while hi < len(S) - 1 and S[hi + 1] > half:
        hi += 1
    return float(f[hi] - f[lo])


def _overlap(f, a, fb, b):
    """∫ min(â, b̂) dν of two spectra (b interpolated onto a's grid) each of unit area (1 = identical)."""
    b = np.interp(f, fb, b)
    a = a / np.trapezoid(a, f)
    b = b / np.trapezoid(b, f)
    return float(np.trapezoid(np.minimum(a, b), f))


def spectra(path, start=None, stop=None):
    """Libration line (peak, FWHM, centre) and O-VDOS stretch peak and band weights of one output (cm⁻¹)."""
    traj = anionmotion.open(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lib = anionmotion.libration(traj, center="S", ligand="O", cation=None, max_lag=1.0, progress=False,
                                    start=start, stop=stop)
        v = anionmotion.vdos(traj, species=["O"], max_lag=1.0, progress=False, start=start, stop=stop)
    f, S = np.asarray(lib.freq_cm1), np.asarray(lib.spectrum)
    sel = (f > 50) & (f < 1500)
    ip = np.flatnonzero(sel)[np.argmax(S[sel])]
    lib_peak = float(f[ip])
    fv, g = np.asarray(v.freq_cm1), np.asarray(v.vdos["O"])
    st = (fv >= 900) & (fv <= 1500)
    nu3 = float(fv[st][np.argmax(g[st])])
    tot = np.trapezoid(g, fv)
    bands = {f"{lo}-{hi}": float(np.trapezoid(np.where((fv >= lo) & (fv < hi), g, 0.0), fv) / tot)
             for lo, hi in BANDS_CM1}
    return {"libration_peak_cm1": lib_peak, "libration_fwhm_cm1": _fwhm(f, S, ip),
            "libration_centre_cm1": float(lib.band_center_THz * 33.35641),
            "_lib": (f, S), "_vdos": (fv, g),
            "omega_rms_rad_ps": float(lib.omega_rms), "o_vdos_stretch_peak_cm1": nu3, "o_vdos_band_fractions": bands}


def _context(openmm, system, integ, threads):
    return openmm.Context(system, integ, openmm.Platform.getPlatformByName("CPU"), {"Threads": str(threads)})


def nve_drift(a, mdsys, path, mode, backend, frame=-1):
    """Total-energy drift of a Verlet run started from a recorded frame (default the last; kJ/mol/ps)."""
    import netCDF4
    import openmm

    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        x = np.asarray(ds["coordinates"][frame], dtype=np.float64) / 10.0
        v = np.asarray(ds["velocities"][frame], dtype=np.float64) / 10.0
        L = np.asarray(ds["cell_lengths"][frame], dtype=np.float64) / 10.0
    box = np.diag(L)
    system = mdsys.copy_system()
    setup = apply_mode(system, x, box, mdsys.groups, mode, templates=mdsys.templates, rc_backend=backend)
    for i in reversed(range(system.getNumForces())):   # plain NVE: nothing but the forces touches the velocities
        if isinstance(system.getForce(i), openmm.CMMotionRemover):
            system.removeForce(i)
    m = np.array([system.getParticleMass(i)._value for i in range(system.getNumParticles())])
    v = v - (m @ v) / m.sum()                          # no net momentum
    integ = openmm.VerletIntegrator(0.001)
    ctx = _context(openmm, system, integ, a.threads)
    ctx.setPeriodicBoxVectors(*[openmm.Vec3(*r) for r in box])
    ctx.setPositions(setup.positions)
    ctx.setVelocities(v)
    integ.step(200)   # let the float32 frame settle
    t, E = [], []
    for k in range(a.nve_steps // 10 + 1):
        if k:
            integ.step(10)
        st = ctx.getState(getEnergy=True)
        t.append(k * 10 * 1e-3)
        E.append(st.getPotentialEnergy()._value + st.getKineticEnergy()._value)
    t, E = np.array(t), np.array(E)
    slope, icpt = np.polyfit(t, E, 1)
    n_dof = count_dof(system) - 3   # momentum conserved: 3 DOF fewer
    return {"slope_kJmol_ps": float(slope), "per_atom_kJmol_ps": float(slope / mdsys.n_atoms),
            "per_dof_kJmol_ps": float(slope / n_dof), "rms_about_fit_kJmol": float(np.std(E - (slope * t + icpt))),
            "n_dof": int(n_dof), "ps": float(t[-1]),
            "per_dof_over_kT_per_ns": float(slope / n_dof / (0.0083144626 * a.temperature) * 1e3)}


def cost(a, mdsys):
    """CPU s per step of UC/RC/RTC per backend and of one restraint evaluation; System XML size."""
    import openmm
    from openmm import unit

    kinds = [("UC", "eckart"), ("RC", "eckart"), ("RC", "orientation"), ("RTC", "eckart"), ("RTC", "orientation")]
    res = {label(*k): {"step": [], "restraint": []} for k in kinds}
    xml = {}
    for r in range(a.repeat):
        for mode, backend in kinds:
            system = mdsys.copy_system()
            setup = apply_mode(system, mdsys.positions, mdsys.box, mdsys.groups, mode, templates=mdsys.templates,
                               rc_backend=backend)
            if r == 0:
                xml[label(mode, backend)] = len(openmm.XmlSerializer.serialize(system))
            integ = openmm.LangevinMiddleIntegrator(a.temperature * unit.kelvin, 1 / unit.picosecond,
                                                    1 * unit.femtosecond)
            integ.setRandomNumberSeed(1)
            ctx = _context(openmm, system, integ, a.threads)
            ctx.setPositions(setup.positions)
            openmm.LocalEnergyMinimizer.minimize(ctx, 10.0, 100)
            ctx.setVelocitiesToTemperature(a.temperature * unit.kelvin, 1)
            integ.step(50)
            c0 = time.process_time()
            integ.step(a.cost_steps)
            res[label(mode, backend)]["step"].append((time.process_time() - c0) / a.cost_steps)
            if mode != "UC":
                n = 200
                c0 = time.process_time()
                for _ in range(n):
                    ctx.getState(getForces=True, groups={ROT_FORCE_GROUP})
                res[label(mode, backend)]["restraint"].append((time.process_time() - c0) / n)
            del ctx, integ
            print(f"  cost {label(mode, backend)} run {r + 1}: {1e3 * res[label(mode, backend)]['step'][-1]:.2f} ms "
                  "CPU/step", file=sys.stderr)
    return {k: {"cpu_ms_per_step": 1e3 * min(v["step"]),
                "restraint_cpu_ms_per_eval": 1e3 * min(v["restraint"]) if v["restraint"] else 0.0,
                "system_xml_MB": xml[k] / 1e6} for k, v in res.items()}


def scaling(cells_list):
    """Restraint-alone CPU cost per evaluation, apply_mode and serialization time, System XML size vs size."""
    import openmm

    out = []
    for cells in cells_list:
        m = build_li2so4(cells)
        for backend in ("eckart", "orientation"):
            system = m.copy_system()
            c0 = time.process_time()
            setup = apply_mode(system, m.positions, m.box, m.groups, "RC", templates=m.templates, rc_backend=backend)
            t_apply = time.process_time() - c0
            c0 = time.process_time()
            xml = openmm.XmlSerializer.serialize(system)
            t_ser = time.process_time() - c0
            ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"),
                                 {"Threads": "1"})
            ctx.setPositions(setup.positions)
            ctx.getState(getForces=True, groups={ROT_FORCE_GROUP})
            n = 100
            c0 = time.process_time()
            for _ in range(n):
                ctx.getState(getForces=True, groups={ROT_FORCE_GROUP})
            t_ev = (time.process_time() - c0) / n
            c0 = time.process_time()
            for _ in range(10):
                ctx.getState(getForces=True)
            t_all = (time.process_time() - c0) / 10
            del ctx
            out.append({"cells": cells, "n_atoms": m.n_atoms, "n_anions": len(m.groups), "backend": backend,
                        "restraint_cpu_ms_per_eval": 1e3 * t_ev, "all_forces_cpu_ms_per_eval": 1e3 * t_all,
                        "apply_mode_s": t_apply, "serialize_s": t_ser, "system_xml_MB": len(xml) / 1e6})
            print(f"  scaling {cells} cells {backend}: restraint {1e3 * t_ev:.3f} ms, all forces {1e3 * t_all:.2f} ms, "
                  f"XML {len(xml) / 1e6:.1f} MB", file=sys.stderr)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, default=3)
    ap.add_argument("--temperature", type=float, default=900.0)
    ap.add_argument("--equilibrate", type=float, default=2.0)
    ap.add_argument("--reequilibrate", type=float, default=2.0)
    ap.add_argument("--time", type=float, default=4.0)
    ap.add_argument("--frame-every", type=int, default=4)
    ap.add_argument("--nve-steps", type=int, default=3000)
    ap.add_argument("--cost-steps", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(HERE, "_work", "rc_backends"))
    ap.add_argument("--nve-starts", type=int, default=3, help="NVE runs per contender, from frames spread over the run")
    ap.add_argument("--scaling-cells", default="3,5",
                    help="model sizes (cells) for the restraint-alone cost and System size of the two backends")
    ap.add_argument("--skip-cost", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    mdsys = build_li2so4(a.cells)
    load0 = os.getloadavg()[0]
    runs = produce(a, mdsys)
    result = {"settings": vars(a), "n_atoms": mdsys.n_atoms, "n_anions": len(mdsys.groups), "runs": {}}
    for lab, (path, rep) in runs.items():
        mode, _, backend = lab.partition(" ")
        row = {"rotation_deg": rep["rotation_deg"], "bond_A": rep["bond_A"], "angle_deg": rep["angle_deg"],
               "temperature_K": rep["temperature_K"], "restraint_energy": rep.get("restraint_energy", {}),
               "restraint_wavenumbers_cm1": rep.get("restraint_wavenumbers_cm1", {})}
        row.update(spectra(path))
        n_fr = rep["n_frames"]
        halves = [spectra(path, 0, n_fr // 2), spectra(path, n_fr // 2, n_fr)]
        row["halves"] = [{k: v for k, v in h.items() if not k.startswith("_")} for h in halves]
        row["half_overlap_libration"] = _overlap(*halves[0]["_lib"], *halves[1]["_lib"])
        row["half_overlap_o_vdos"] = _overlap(*halves[0]["_vdos"], *halves[1]["_vdos"])
        starts = [-1 - k * (n_fr - 1) // max(a.nve_starts, 1) for k in range(a.nve_starts)]
        row["nve_runs"] = [nve_drift(a, mdsys, path, mode, backend or "eckart", frame=fr) for fr in starts]
        sl = np.array([r["slope_kJmol_ps"] for r in row["nve_runs"]])
        row["nve"] = dict(row["nve_runs"][0], slope_kJmol_ps=float(sl.mean()),
                          slope_sd_kJmol_ps=float(sl.std(ddof=1)) if sl.size > 1 else float("nan"),
                          per_atom_kJmol_ps=float(sl.mean() / mdsys.n_atoms),
                          per_dof_kJmol_ps=float(sl.mean() / row["nve_runs"][0]["n_dof"]),
                          rms_about_fit_kJmol=float(np.mean([r["rms_about_fit_kJmol"] for r in row["nve_runs"]])),
                          n_starts=int(sl.size))
        print(f"  {lab}: analysed (NVE drift {row['nve']['slope_kJmol_ps']:+.3g} ± {row['nve']['slope_sd_kJmol_ps']:.2g}"
              " kJ/mol/ps)", file=sys.stderr)
        result["runs"][lab] = row
    pair = [result["runs"][k] for k in ("RC eckart", "RC orientation") if k in result["runs"]]
    if len(pair) == 2:
        result["backend_overlap_libration"] = _overlap(*pair[0]["_lib"], *pair[1]["_lib"])
        result["backend_overlap_o_vdos"] = _overlap(*pair[0]["_vdos"], *pair[1]["_vdos"])
    for row in result["runs"].values():
        row.pop("_lib"), row.pop("_vdos")
    if not a.skip_cost:
        result["cost"] = cost(a, mdsys)
    if a.scaling_cells:
        result["scaling"] = scaling([int(c) for c in a.scaling_cells.split(",")])
    result["loadavg"] = [load0, os.getloadavg()[0]]
    with open(os.path.join(a.out, "rc_backends.json"), "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=1)

    R = result["runs"]
    print(f"\nα-Li2SO4-like model, {a.cells}×{a.cells}×{a.cells} cells ({mdsys.n_atoms} atoms, {len(mdsys.groups)} SO4), "
          f"{a.temperature:g} K, k_rot = 1e4 kJ mol⁻¹ (amu nm²)⁻²; {a.equilibrate:g} ps UC + {a.reequilibrate:g} ps "
          f"after switch-on, {a.time:g} ps recorded every {a.frame_every} fs; machine load "
          f"{result['loadavg'][0]:.1f}–{result['loadavg'][1]:.1f}\n")
    print("| run | Kabsch angle mean / median / p95 / p99 / max (°) | restraint E / (3/2 kT) | S–O fluct. (Å) | "
          "O–S–O fluct. (°) | libration line peak / FWHM / centre (cm⁻¹) | O-VDOS ν3 peak (cm⁻¹) | O-VDOS weight "
          "0–300 / 480–580 / 900–1500 | NVE drift, kJ/mol/ps (mean ± SD of starts; per DOF) | "
          "E_tot RMS about fit (kJ/mol) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for lab, r in R.items():
        ra = r["rotation_deg"]
        re = next(iter(r["restraint_energy"].values()), {}).get("per_anion_over_1.5kT") if r["restraint_energy"] \
            else None
        b = r["o_vdos_band_fractions"]
        n = r["nve"]
        print(f"| {lab} | {ra['mean']:.2f} / {ra.get('p50', float('nan')):.2f} / {ra.get('p95', float('nan')):.2f} / "
              f"{ra.get('p99', float('nan')):.2f} / {ra['max']:.1f} | {'' if re is None else f'{re:.2f}'} | "
              f"{r['bond_A']['fluctuation']:.4f} | {r['angle_deg']['fluctuation']:.2f} | "
              f"{r['libration_peak_cm1']:.0f} / {r['libration_fwhm_cm1']:.0f} / {r['libration_centre_cm1']:.0f} | "
              f"{r['o_vdos_stretch_peak_cm1']:.0f} | "
              f"{b['0-300']:.3f} / {b['480-580']:.3f} / {b['900-1500']:.3f} | "
              f"{n['slope_kJmol_ps']:+.3f} ± {n['slope_sd_kJmol_ps']:.3f}; {n['per_dof_kJmol_ps']:+.1e} | "
              f"{n['rms_about_fit_kJmol']:.2f} |")
    print("\nrun-to-run noise of the spectra (first vs second half of each run):")
    for lab, r in R.items():
        h = r["halves"]
        print(f"- {lab}: libration peak {h[0]['libration_peak_cm1']:.0f} / {h[1]['libration_peak_cm1']:.0f} cm⁻¹, "
              f"O-VDOS 480–580 weight {h[0]['o_vdos_band_fractions']['480-580']:.3f} / "
              f"{h[1]['o_vdos_band_fractions']['480-580']:.3f}; overlap of the halves: libration "
              f"{r['half_overlap_libration']:.3f}, O-VDOS {r['half_overlap_o_vdos']:.3f}")
    if "backend_overlap_libration" in result:
        print(f"- Eckart vs orientation (whole runs): overlap libration {result['backend_overlap_libration']:.3f}, "
              f"O-VDOS {result['backend_overlap_o_vdos']:.3f}")
    if "cost" in result:
        C = result["cost"]
        uc = C["UC"]["cpu_ms_per_step"]
        print(f"\nCPU cost ({a.threads} thread(s), best of {a.repeat} interleaved runs of {a.cost_steps} steps)\n")
        print("| run | CPU ms / step | ratio to UC | restraint alone, CPU ms / evaluation | System XML (MB) |")
        print("|---|---|---|---|---|")
        for lab, c in C.items():
            print(f"| {lab} | {c['cpu_ms_per_step']:.2f} | {c['cpu_ms_per_step'] / uc:.2f}× | "
                  f"{c['restraint_cpu_ms_per_eval']:.3f} | {c['system_xml_MB']:.2f} |")
    if "scaling" in result:
        print("\nSize scaling of RC (1 thread; CPU time per force evaluation)\n")
        print("| atoms / anions | backend | restraint alone (ms) | all forces (ms) | restraint share | apply_mode (s) | "
              "serialize (s) | System XML (MB) |")
        print("|---|---|---|---|---|---|---|---|")
        for r in result["scaling"]:
            print(f"| {r['n_atoms']} / {r['n_anions']} | {r['backend']} | {r['restraint_cpu_ms_per_eval']:.3f} | "
                  f"{r['all_forces_cpu_ms_per_eval']:.2f} | "
                  f"{100 * r['restraint_cpu_ms_per_eval'] / r['all_forces_cpu_ms_per_eval']:.1f} % | "
                  f"{r['apply_mode_s']:.2f} | {r['serialize_s']:.2f} | {r['system_xml_MB']:.1f} |")


if __name__ == "__main__":
    main()
