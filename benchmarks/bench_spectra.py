"""Benchmark: all-origin VACF and VDOS per species (SPEC §6).

Contenders, each in its own subprocess on the same data:

- ``anionmotion``: ``anionmotion.vdos`` on a Trajectory made with ``from_arrays``
  (all-origin VACF of both species and of the mass-weighted total, Hann
  window, spectra, band centres; includes the Trajectory layer: reading the
  frames through the reader protocol, finite checks, copies);
- ``anionmotion-functional``: ``anionmotion.kernels.correlate.vdos`` per species
  on the velocity array (arrays in, spectrum out; the same FFT kernel);
- ``tidynamics``: ``tidynamics.acf`` per atom (the FFT ACF with the origin
  average), summed per species, then the same windowed numpy FFT to a spectrum;
- ``numpy``: one vectorised zero-padded ``numpy.fft.rfft`` of all atoms at
  once (|F|² summed per species, one inverse FFT) — the fastest plain-numpy
  route, at the cost of a complex array of 2·T × N × 3.

dynasor is not timed: its VDOS route is the q → 0 limit of the current
correlations of ``compute_dynamic_structure_factors`` (trajectory file + q-point
set), a different and much heavier computation than a VACF.

Default problem: 1,024 atoms (512 "Li" + 512 "S") × 10,000 frames, velocities of
damped oscillators (AR(2) processes at 5 and 15 THz) written once as .npy in
benchmarks/_work.  Every contender loads positions and velocities (anionmotion
needs both to build a Trajectory; the others only velocities), then is timed.
Peak memory is the child's ru_maxrss; "working" memory is the peak minus the RSS
right after loading the input.

    python benchmarks/bench_spectra.py [--atoms 1024] [--frames 10000]
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

DT = 0.002  # ps
MASSES = {"Li": 6.9412, "S": 32.0655}


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_CPU0 = 0.0


def _mark():
    """Start of the timed section (CPU time is counted from here)."""
    global _CPU0
    _CPU0 = _cpu_s()


def _cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def paths(n_atoms, n_frames):
    tag = f"spectra_{n_atoms}x{n_frames}"
    return os.path.join(WORK, tag + "_vel.npy"), os.path.join(WORK, tag + "_pos.npy")


def make_data(n_atoms, n_frames, seed=0):
    from scipy.signal import lfilter

    pv, pp = paths(n_atoms, n_frames)
    if os.path.exists(pv) and os.path.exists(pp):
        return
    os.makedirs(WORK, exist_ok=True)
    rng = np.random.default_rng(seed)
    vel = np.empty((n_frames, n_atoms, 3))
    half = n_atoms // 2
    for sl, nu in ((slice(0, half), 5.0), (slice(half, n_atoms), 15.0)):
        r, w = 0.995, 2 * np.pi * nu * DT
        a = [1.0, -2 * r * np.cos(w), r * r]
        noise = rng.normal(size=(n_frames, sl.stop - sl.start, 3))
        vel[:, sl] = lfilter([1.0], a, noise, axis=0)
    vel *= 5.0 / vel.std()
    pos = 12.0 + np.cumsum(vel, axis=0) * DT
    np.save(pv, vel)
    np.save(pp, pos)


def species(n_atoms):
    half = n_atoms // 2
    return np.array(["Li"] * half + ["S"] * (n_atoms - half))


def run_anionmotion(n_atoms, n_frames):
    import anionmotion as am

    pv, pp = paths(n_atoms, n_frames)
    vel, pos = np.load(pv), np.load(pp)
    tr = am.from_arrays(pos, np.eye(3) * 40.0, species=species(n_atoms), velocities=vel, frame_interval=DT)
    base = _rss_mb()
    _mark()
    t0 = time.perf_counter()
    res = am.vdos(tr, window="hann")
    el = time.perf_counter() - t0
    return el, base, {s: res.band_center_THz[s] for s in ("Li", "S")}


def run_anionmotion_functional(n_atoms, n_frames):
    from anionmotion.kernels.correlate import vdos as vdos_arrays

    pv, _ = paths(n_atoms, n_frames)
    vel = np.load(pv)
    sp = species(n_atoms)
    base = _rss_mb()
    _mark()
    t0 = time.perf_counter()
    cent = {}
    for s in ("Li", "S"):
        idx = np.nonzero(sp == s)[0]
        f, g = vdos_arrays(vel[:, idx[0]:idx[-1] + 1], np.full(len(idx), MASSES[s]), DT)
        cent[s] = float(np.trapezoid(f * g, f) / np.trapezoid(g, f))
    return time.perf_counter() - t0, base, cent


def _spectrum(c, window=True):
    n = len(c)
    w = 0.5 + 0.5 * np.cos(np.pi * np.arange(n) / n) if window else np.ones(n)
    nfft = 2 * n
    f = np.fft.rfft(c * w, n=nfft)
    spec = DT * (2 * f.real - c[0])
    freq = np.fft.rfftfreq(nfft, DT)
    return freq, spec


def _centres(vacf):
    out = {}
    for s, c in vacf.items():
        f, g = _spectrum(c)
        out[s] = float(np.trapezoid(f * g, f) / np.trapezoid(g, f))
    return out


def run_tidynamics(n_atoms, n_frames):
    import tidynamics

    pv, _ = paths(n_atoms, n_frames)
    vel = np.load(pv)
    sp = species(n_atoms)
    base = _rss_mb()
    _mark()
    t0 = time.perf_counter()
    vacf = {}
    for s in ("Li", "S"):
        acc = np.zeros(n_frames)
        for i in np.nonzero(sp == s)[0]:
            acc += tidynamics.acf(vel[:, i, :])
        vacf[s] = acc / np.count_nonzero(sp == s)
    cent = _centres(vacf)
    return time.perf_counter() - t0, base, cent


def run_numpy(n_atoms, n_frames):
    pv, _ = paths(n_atoms, n_frames)
    vel = np.load(pv)
    sp = species(n_atoms)
    base = _rss_mb()
    _mark()
    t0 = time.perf_counter()
    vacf = {}
    nfft = 2 * n_frames
    norm = n_frames - np.arange(n_frames)
    for s in ("Li", "S"):
        x = vel[:, sp == s, :]
        F = np.fft.rfft(x, n=nfft, axis=0)
        p = (F.real ** 2 + F.imag ** 2).sum(axis=(1, 2))
        vacf[s] = np.fft.irfft(p, n=nfft)[:n_frames] / norm / x.shape[1]
        del F
    cent = _centres(vacf)
    return time.perf_counter() - t0, base, cent


CONTENDERS = {"anionmotion": run_anionmotion, "anionmotion-functional": run_anionmotion_functional,
              "tidynamics": run_tidynamics, "numpy": run_numpy}


def child(name, n_atoms, n_frames):
    global _CPU0
    el, base, extra = CONTENDERS[name](n_atoms, n_frames)
    print(json.dumps({"name": name, "time_s": el, "cpu_s": _cpu_s() - _CPU0, "peak_mb": _rss_mb(), "base_mb": base,
                      "extra": extra}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--atoms", type=int, default=1024)
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--only", nargs="+", choices=list(CONTENDERS))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.atoms, a.frames)
        return
    make_data(a.atoms, a.frames)
    rows = []
    for name in a.only or CONTENDERS:
        out = subprocess.run([sys.executable, __file__, "--child", name, "--atoms", str(a.atoms), "--frames",
                              str(a.frames)], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    ref = next((r for r in rows if r["name"] == "anionmotion"), None)
    print(f"VDOS (all-origin VACF per species + spectrum): {a.atoms} atoms × {a.frames} frames, "
          f"{os.cpu_count()} cores")
    print("| contender | wall (s) | CPU (s) | peak RSS (MB) | working (MB) | wall / anionmotion | CPU / anionmotion "
          "| band centres Li, S (THz) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = r["time_s"] / ref["time_s"] if ref else float("nan")
        cratio = r["cpu_s"] / ref["cpu_s"] if ref else float("nan")
        bc = r["extra"]
        print(f"| {r['name']} | {r['time_s']:.2f} | {r['cpu_s']:.2f} | {r['peak_mb']:.0f} | "
              f"{r['peak_mb'] - r['base_mb']:.0f} | {ratio:.2f} | {cratio:.2f} | {bc['Li']:.3f}, {bc['S']:.3f} |")


if __name__ == "__main__":
    main()
