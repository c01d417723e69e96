"""Benchmark: wall time, CPU time and peak memory of every ``anionmotion`` subcommand against trajectory length.

This is the check of issue 15 ("Every analysis streams"): every analysis of a 512-atom trajectory must run at
10⁶ frames with a peak RSS of at most 2.5 GB under ``--memory 2GB``, the peak RSS may grow by at most 15 %
from 10⁵ to 10⁶ frames, and the CPU time may grow no faster than T log T.

The trajectories
----------------
A synthetic Li₃PO₄-like system in an 18 Å cubic cell, written as AMBER-convention NetCDF (the layout of
:class:`anionmotion.io.netcdf_writer.NetCDFWriter`, i.e. what ``anionmotion md`` writes: float32 unwrapped
coordinates and velocities, float32 times, ``coordinate_style = "unwrapped"``), 0.01 ps between frames:

* 64 PO₄ tetrahedra (P–O 1.54 Å) on a simple cubic lattice of spacing 4.5 Å. Each librates (three sinusoidal
  small-angle rotations per anion, 0.12 rad, 1.5–4 THz) and reorients by jumps: 120° turns about one of its
  P–O bonds (C₃, an equivalent orientation; every other ligand moves by ~109°, above the 70° event threshold)
  taking 0.3 ps, after waits of 2 ps + Exp(25 ps). The nearest centre–ligand distance of another anion is
  ≥ 2.9 Å, so the centre–ligand distance distribution has the gap that polyanion identification needs.
* 192 Li on 256 interstitial sites (the 64 body centres and 192 face centres of the cubes of P atoms; 25 %
  vacant), vibrating (0.12 Å, 3–9 THz) and hopping to a vacant site 2.9–5.1 Å away (longer than the median
  nearest Li–Li distance, 2.25 Å, which is the hop distance a by default) in 0.25 ps after residences of
  3.5 ps + Exp(40 ps) (longer than the 3 ps hop residence Δt). With probability 0.6 a hop starts a jump of the
  anion nearest to the hop's midpoint (a paddle-wheel coupling, so ``coupling`` and ``timeline`` find
  coincidences).
* P and O vibrate too (0.03 Å; P 5–12 THz, O 25–32 THz), so every species has a VDOS.
* Velocities are the central differences of the positions (one-sided at the two ends).

Charges (Li +1, P +5, O −2) and masses are stored, the temperature (600 K) is a global attribute. The file is
generated chunk by chunk (never more than ``--gen-chunk`` frames in memory) into ``--work`` and reused when it
exists with the same generator version, seed and length. 10⁶ frames take ≈ 12.3 GB of disk.

The measurement
---------------
Every subcommand listed by ``anionmotion --help`` except those that do not analyse one trajectory (``md``,
``arrhenius``, ``compare``, ``batch``) runs as its own process with ``--memory`` when the command accepts it
(read from its ``--help``; the table says when it does not), pinned to one CPU (``--cpu``; the FFT workers
then share that core) with ``OMP_NUM_THREADS=1`` and friends. From ``os.wait4`` of the process:
wall time, CPU time (user + sys, including its waited-for children) and peak RSS (``ru_maxrss``). Its stderr
is attached to a pseudo-terminal, so progress bars are drawn as for a user at a terminal, and the longest
time without any output on stderr is recorded ("longest silence": progress that never goes silent keeps it
at a few seconds). A command is stopped after ``--timeout`` seconds, or as soon as the RSS of its process
tree exceeds ``--rss-limit`` (the machine is shared; the peak is then reported as "> limit").

``--source`` chooses the code that runs: ``installed`` (the ``anionmotion`` importable here, i.e. the working
tree of an editable install) or a git commit (``HEAD``, a sha, …) that is exported with ``git archive``
into ``--work`` (its compiled kernels copied from the working tree when ``ext/`` is unchanged, else built),
so that a table names exactly the code it measured.

Usage::

    python benchmarks/bench_scaling.py --frames 1e4                    # generate + run everything at 10⁴ frames
    python benchmarks/bench_scaling.py --frames 1e4 1e5 1e6 --gate 120 # 10⁶ only for commands under 2 min at 10⁵
    python benchmarks/bench_scaling.py --frames 1e5 --commands msd hops --timeout 600
    python benchmarks/bench_scaling.py --frames 1e4 --source HEAD --label baseline
    python benchmarks/bench_scaling.py --generate-only --frames 1e6

Writes ``<work>/scaling_<label>.json`` (every measurement) and ``<work>/scaling_<label>.md`` (the tables)
and prints the tables.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import heapq
import itertools
import json
import math
import os
import platform
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_WORK = os.path.join(HERE, "_work")
GENERATOR_VERSION = "1"
EXCLUDED = ("md", "arrhenius", "compare", "batch")

# ----------------------------------------------------------------------------------------------- the system
BOX = 18.0                 # Å, cubic
SPACING = 4.5              # Å, P lattice (4 × 4 × 4)
BOND = 1.54                # Å, P–O
DT = 0.01                  # ps between frames
TEMPERATURE = 600.0        # K (metadata)
N_SIDE = 4
N_ANION = N_SIDE ** 3      # 64
N_LI = 192
N_ATOMS = N_LI + 5 * N_ANION  # 512
TET = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) / np.sqrt(3.0)

LI_TRANSIT = 25            # frames (0.25 ps) per Li hop
LI_REST_MIN = 350          # frames (3.5 ps)
LI_REST_MEAN = 4000        # frames (40 ps), exponential part
HOP_RANGE = (2.9, 5.1)     # Å, distance of the target site
JUMP_FRAMES = 30           # frames (0.3 ps) per anion jump
JUMP_WAIT_MIN = 200        # frames (2 ps)
JUMP_WAIT_MEAN = 2500      # frames (25 ps), exponential part
P_TRIGGER = 0.6            # probability that a Li hop starts a jump of the nearest anion
LIB_AMPLITUDE = 0.12       # rad
LIB_FREQ = (1.5, 4.0)      # THz


def _rodrigues(vec):
    """Rotation matrices exp([vec]×) for rotation vectors ``vec`` (..., 3) (rad) → (..., 3, 3)."""
    vec = np.asarray(vec, float)
    ang = np.linalg.norm(vec, axis=-1)
    safe = np.where(ang > 0, ang, 1.0)
    k = vec / safe[..., None]
    K = np.zeros(vec.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    K[..., 1, 0], K[..., 2, 0], K[..., 2, 1] = k[..., 2], -k[..., 1], k[..., 0]
    s, c = np.sin(ang)[..., None, None], np.cos(ang)[..., None, None]
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def _random_rotations(rng, n):
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], 1)


def _ease(frac):
    """Smooth 0 → 1 progress of a transit (cosine ramp)."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(frac, 0.0, 1.0))


class SyntheticLi3PO4:
    """Event-driven generator of the benchmark trajectory, frame block by frame block (see the module docstring).

    Parameters
    ----------
    seed : int
        Seed of every random choice; the same seed gives the same trajectory whatever the block sizes.
    """

    species = ["Li"] * N_LI + ["P"] * N_ANION + ["O"] * (4 * N_ANION)

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.rng = rng
        grid = np.array([[i, j, k] for i in range(N_SIDE) for j in range(N_SIDE) for k in range(N_SIDE)], float)
        self.centres = (grid + 0.5) * SPACING                                   # (64, 3) Å
        body = grid * SPACING
        faces = [body + np.array(off) * SPACING for off in ((0.5, 0, 0), (0, 0.5, 0), (0, 0, 0.5))]
        self.sites = np.concatenate([body] + faces)                             # (256, 3) Å
        n_sites = len(self.sites)
        d = self.sites[:, None, :] - self.sites[None, :, :]
        d -= BOX * np.round(d / BOX)
        dist = np.linalg.norm(d, axis=2)
        self.site_disp = d                                                      # minimum-image displacement j → i
        self.neighbours = [np.flatnonzero((dist[i] >= HOP_RANGE[0]) & (dist[i] <= HOP_RANGE[1]))
                           for i in range(n_sites)]
        occupied = rng.permutation(n_sites)[:N_LI]
        self.li_site = occupied.copy()
        self.occupied = np.zeros(n_sites, bool)
        self.occupied[occupied] = True
        self.li_pos = self.sites[occupied].copy()                               # unwrapped rest positions, Å
        self.R = _random_rotations(rng, N_ANION)                                # orientations at rest
        # vibrations (amplitude Å, frequency THz, phase) per atom and axis
        self.vib_amp = np.concatenate([np.full(N_LI, 0.12), np.full(N_ANION, 0.03), np.full(4 * N_ANION, 0.03)])
        self.vib_nu = np.concatenate([rng.uniform(3.0, 9.0, (N_LI, 3)), rng.uniform(5.0, 12.0, (N_ANION, 3)),
                                      rng.uniform(25.0, 32.0, (4 * N_ANION, 3))])
        self.vib_phase = rng.uniform(0, 2 * np.pi, (N_ATOMS, 3))
        self.lib_nu = rng.uniform(*LIB_FREQ, (N_ANION, 3))
        self.lib_phase = rng.uniform(0, 2 * np.pi, (N_ANION, 3))
        # event queue: (frame, kind, index, version); kind 0 = Li hop, 1 = anion jump
        self.li_version = np.zeros(N_LI, int)
        self.an_version = np.zeros(N_ANION, int)
        self.an_busy_until = np.zeros(N_ANION, int)
        self.queue = []
        for i in range(N_LI):
            heapq.heappush(self.queue, (self._li_rest(), 0, i, 0))
        for a in range(N_ANION):
            heapq.heappush(self.queue, (self._jump_wait(), 1, a, 0))
        self.li_flight = []     # hops still in transit at the end of the last block: (li, h, start, end)
        self.an_flight = []     # jumps still turning: (anion, h, axis, angle, R_start)
        self.frame = 0
        self.n_hops = 0
        self.n_jumps = 0
        self.n_triggered = 0

    def _li_rest(self):
        return LI_REST_MIN + int(self.rng.exponential(LI_REST_MEAN))

    def _jump_wait(self):
        return JUMP_WAIT_MIN + int(self.rng.exponential(JUMP_WAIT_MEAN))

    def _start_jump(self, a, h):
        axis = self.R[a] @ TET[self.rng.integers(4)]
        angle = self.rng.choice((-1.0, 1.0)) * 2 * np.pi / 3
        R0 = self.R[a].copy()
        self.R[a] = _rodrigues(axis * angle) @ R0
        self.an_busy_until[a] = h + JUMP_FRAMES
        self.an_version[a] += 1
        heapq.heappush(self.queue, (h + JUMP_FRAMES + self._jump_wait(), 1, a, int(self.an_version[a])))
        self.n_jumps += 1
        return (a, h, axis, angle, R0)

    def block(self, n):
        """The next ``n`` frames: unwrapped positions, shape (n, 512, 3), float64, Å."""
        t0, t1 = self.frame, self.frame + n
        li_events, an_events = list(self.li_flight), list(self.an_flight)
        while self.queue and self.queue[0][0] < t1:
            h, kind, idx, version = heapq.heappop(self.queue)
            if kind == 0:
                site = self.li_site[idx]
                free = [j for j in self.neighbours[site] if not self.occupied[j]]
                if free:
                    j = free[self.rng.integers(len(free))]
                    start = self.li_pos[idx].copy()
                    end = start + self.site_disp[j, site]
                    self.occupied[site], self.occupied[j] = False, True
                    self.li_site[idx] = j
                    self.li_pos[idx] = end
                    li_events.append((idx, h, start, end))
                    self.n_hops += 1
                    if self.rng.random() < P_TRIGGER:
                        mid = 0.5 * (start + end)
                        dc = self.centres - mid
                        dc -= BOX * np.round(dc / BOX)
                        a = int(np.argmin(np.einsum("ij,ij->i", dc, dc)))
                        if self.an_busy_until[a] <= h:
                            an_events.append(self._start_jump(a, h))
                            self.n_triggered += 1
                heapq.heappush(self.queue, (h + LI_TRANSIT + self._li_rest(), 0, idx, 0))
            elif version == self.an_version[idx] and self.an_busy_until[idx] <= h:
                an_events.append(self._start_jump(idx, h))
        frames = np.arange(t0, t1)
        # Li: rest positions, then each hop in time order overwrites its transit and everything after it
        li = np.repeat(self._li_rest_at_start(li_events)[None], n, axis=0)
        self.li_flight = []
        for (i, h, start, end) in li_events:
            a, b = max(h, t0) - t0, min(h + LI_TRANSIT, t1) - t0
            if b > a:
                s = _ease((frames[a:b] - h + 1) / LI_TRANSIT)
                li[a:b, i] = start + s[:, None] * (end - start)
            if h + LI_TRANSIT < t1:
                li[max(h + LI_TRANSIT, t0) - t0:, i] = end
            else:
                self.li_flight.append((i, h, start, end))
        # anions: orientation at rest, jumps, libration
        R = np.repeat(self._R_at_start(an_events)[None], n, axis=0)
        self.an_flight = []
        for (a, h, axis, angle, R0) in an_events:
            lo, hi = max(h, t0) - t0, min(h + JUMP_FRAMES, t1) - t0
            if hi > lo:
                s = _ease((frames[lo:hi] - h + 1) / JUMP_FRAMES)
                R[lo:hi, a] = _rodrigues(s[:, None] * (axis * angle)) @ R0
            if h + JUMP_FRAMES < t1:
                R[max(h + JUMP_FRAMES, t0) - t0:, a] = _rodrigues(axis * angle) @ R0
            else:
                self.an_flight.append((a, h, axis, angle, R0))
        t = frames * DT
        lib = LIB_AMPLITUDE * np.sin(2 * np.pi * self.lib_nu[None] * t[:, None, None] + self.lib_phase[None])
        R = _rodrigues(lib) @ R
        lig = BOND * np.einsum("fakj,lj->falk", R, TET)                      # (n, 64, 4, 3)
        pos = np.empty((n, N_ATOMS, 3))
        pos[:, :N_LI] = li
        pos[:, N_LI:N_LI + N_ANION] = self.centres
        pos[:, N_LI + N_ANION:] = (self.centres[None, :, None, :] + lig).reshape(n, 4 * N_ANION, 3)
        vib = self.vib_amp[None, :, None] * np.sin(2 * np.pi * self.vib_nu[None] * t[:, None, None]
                                                   + self.vib_phase[None])
        pos += vib
        # ligands ride on the vibration of their centre
        pos[:, N_LI + N_ANION:] += np.repeat(vib[:, N_LI:N_LI + N_ANION], 4, axis=1)
        self.frame = t1
        return pos

    def _li_rest_at_start(self, events):
        """Li rest positions at the first frame of the block: before any of this block's (or in-flight) hops."""
        pos = self.li_pos.copy()
        for (i, h, start, end) in reversed(events):
            pos[i] = start
        return pos

    def _R_at_start(self, events):
        R = self.R.copy()
        for (a, h, axis, angle, R0) in reversed(events):
            R[a] = R0
        return R


def nc_path(work, n_frames, seed):
    return os.path.join(work, f"li3po4_512_{n_frames}f_s{seed}.nc")


def _file_ok(path, n_frames, seed):
    if not os.path.exists(path):
        return False
    try:
        import netCDF4
        with netCDF4.Dataset(path) as ds:
            return (ds.dimensions["frame"].size == n_frames and getattr(ds, "bench_generator", "") == GENERATOR_VERSION
                    and int(getattr(ds, "bench_seed", -1)) == seed and int(getattr(ds, "bench_complete", 0)) == 1)
    except (OSError, KeyError, ValueError, RuntimeError):
        return False


def write_trajectory(work, n_frames, *, seed=0, chunk=2000, log=print):
    """Write (or reuse) the benchmark NetCDF of ``n_frames`` frames; return (path, seconds, statistics)."""
    import netCDF4

    from anionmotion.elements import masses_of
    from anionmotion.io.netcdf_writer import NetCDFWriter

    path = nc_path(work, n_frames, seed)
    if _file_ok(path, n_frames, seed):
        return path, 0.0, None
    os.makedirs(work, exist_ok=True)
    need = n_frames * N_ATOMS * 3 * 4 * 2 + n_frames * 60 + (1 << 20)
    free = shutil.disk_usage(work).free
    if free < need * 1.1 + (2 << 30):
        raise SystemExit(f"{work}: {free / 1e9:.1f} GB free, the {n_frames}-frame trajectory needs {need / 1e9:.1f} GB "
                         "(+2 GB margin); free disk or choose another --work")
    log(f"writing {path} ({n_frames} frames, {need / 1e9:.2f} GB; {free / 1e9:.0f} GB free)")
    tmp = path + ".tmp"
    if os.path.exists(tmp):
        os.remove(tmp)
    gen = SyntheticLi3PO4(seed)
    charges = np.array([{"Li": 1.0, "P": 5.0, "O": -2.0}[s] for s in gen.species])
    meta = {"coordinate_style": "unwrapped", "temperature_K": TEMPERATURE, "bench_generator": GENERATOR_VERSION,
            "bench_seed": seed, "bench_complete": 0}
    NetCDFWriter(tmp, gen.species, masses=masses_of(gen.species), charges=charges, metadata=meta,
                 velocities=True, title="bench_scaling synthetic Li3PO4 (512 atoms)").close()
    t_start = time.perf_counter()
    with netCDF4.Dataset(tmp, "a") as ds:
        v = ds.variables
        for name in ("coordinates", "velocities"):
            v[name].set_auto_maskandscale(False)
        prev_last = None                       # last frame of the block before the current one
        cur = gen.block(min(chunk, n_frames))
        t0 = 0
        last_report = time.perf_counter()
        while t0 < n_frames:
            n = len(cur)
            nxt = gen.block(min(chunk, n_frames - t0 - n)) if t0 + n < n_frames else None
            ext = np.concatenate([cur[:1] if prev_last is None else prev_last[None], cur,
                                  cur[-1:] if nxt is None else nxt[:1]])
            vel = (ext[2:] - ext[:-2]) / (2 * DT)
            if prev_last is None:
                vel[0] = (ext[2] - ext[1]) / DT
            if nxt is None and n > 1:
                vel[-1] = (ext[-2] - ext[-3]) / DT
            sl = slice(t0, t0 + n)
            v["coordinates"][sl] = cur.astype(np.float32)
            v["velocities"][sl] = vel.astype(np.float32)
            v["time"][sl] = (np.arange(t0, t0 + n) * DT).astype(np.float32)
            v["cell_lengths"][sl] = np.full((n, 3), BOX)
            v["cell_angles"][sl] = np.full((n, 3), 90.0)
            prev_last = cur[-1]
            t0 += n
            cur = nxt
            if time.perf_counter() - last_report > 30:
                last_report = time.perf_counter()
                log(f"  {t0}/{n_frames} frames ({time.perf_counter() - t_start:.0f} s)")
        ds.bench_complete = 1
        ds.bench_hops = gen.n_hops
        ds.bench_anion_jumps = gen.n_jumps
        ds.bench_triggered_jumps = gen.n_triggered
    os.replace(tmp, path)
    secs = time.perf_counter() - t_start
    stats = {"hops": gen.n_hops, "anion_jumps": gen.n_jumps, "triggered_jumps": gen.n_triggered}
    log(f"  done in {secs:.0f} s: {stats}")
    return path, secs, stats


# ----------------------------------------------------------------------------------------------- the commands
def parse_bytes(text):
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kKmMgGtT]?)i?[bB]?\s*", str(text))
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 8GB, 500MB)")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))


def parse_frames(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a frame count: {text!r} (e.g. 1e4, 100000)") from None
    if v < 100 or v != int(v):
        raise argparse.ArgumentTypeError(f"frame count must be an integer ≥ 100; got {text!r}")
    return int(v)


class Code:
    """Which ``anionmotion`` runs: the installed one, or a git commit exported into the work folder."""

    def __init__(self, source, work, log=print):
        self.source = source
        self.env = {}
        if source == "installed":
            import anionmotion
            self.path = os.path.dirname(os.path.dirname(os.path.abspath(anionmotion.__file__)))
            self.commit = _git(self.path, "rev-parse", "HEAD")
            dirty = _git(self.path, "status", "--porcelain", "--untracked-files=no", "--", "anionmotion", "ext")
            self.describe = f"installed package at {self.path} (HEAD {self.commit[:10]}" + \
                (", with uncommitted changes)" if dirty else ")")
            return
        sha = _git(REPO, "rev-parse", source)
        if not sha:
            raise SystemExit(f"--source {source}: not a commit of {REPO}")
        dest = os.path.join(work, f"src-{sha[:12]}")
        if not os.path.exists(os.path.join(dest, ".complete")):
            log(f"exporting commit {sha[:12]} to {dest}")
            shutil.rmtree(dest, ignore_errors=True)
            os.makedirs(dest)
            archive = subprocess.run(["git", "-C", REPO, "archive", sha], check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
            same_ext = subprocess.run(["git", "-C", REPO, "diff", "--quiet", sha, "--", "ext"], check=False).returncode == 0
            so = [f for f in os.listdir(os.path.join(REPO, "anionmotion", "_ext")) if f.endswith(".so")]
            if same_ext and so:
                for f in so:
                    shutil.copy2(os.path.join(REPO, "anionmotion", "_ext", f), os.path.join(dest, "anionmotion", "_ext"))
            else:
                log("  ext/ differs from the working tree: building the kernels")
                subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace", "-q"], cwd=dest, check=True,
                               env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True)
            open(os.path.join(dest, ".complete"), "w").close()
        self.path = dest
        self.commit = sha
        self.describe = f"commit {sha[:10]} exported with git archive"
        self.env = {"PYTHONPATH": dest + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def argv(self, *args):
        return [sys.executable, "-m", "anionmotion", *args]

    def run_help(self, *args):
        r = subprocess.run(self.argv(*args, "--help"), check=False, capture_output=True, text=True,
                           env=dict(os.environ, **self.env, COLUMNS="200"), cwd=self.path)
        return r.stdout

    def subcommands(self):
        text = self.run_help()
        m = re.search(r"\{([a-z,_-]+)\}", text)
        names = m.group(1).split(",") if m else re.findall(r"^    ([a-z][a-z_-]*)\s", text, flags=re.MULTILINE)
        return [c for c in names if c not in EXCLUDED]


def _git(path, *args):
    r = subprocess.run(["git", "-C", path, *args], check=False, capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else ""


def command_args(cmd, help_text, traj, out_dir, memory, write_outputs=True):
    """Arguments of one subcommand on the benchmark trajectory, from the options its ``--help`` lists.

    Returns (argv list after the command name, whether ``--memory`` was given).
    """
    has = lambda opt: re.search(r"(^|[\s\[,])" + re.escape(opt) + r"\b", help_text) is not None
    args = [traj]
    if cmd == "report":
        args += ["--out", os.path.join(out_dir, "report"), "--overwrite"]
    if cmd == "density":
        args += ["--species", "Li", "--out", os.path.join(out_dir, "density_Li.CHGCAR")]
    elif cmd == "vdos":
        pass                                    # all species (its default)
    elif has("--species") and cmd != "report":
        args += ["--species", "Li"]
    if cmd == "rdf":
        args += ["--pair", "Li-Li", "--pair", "Li-P", "--pair", "P-O", "--temperature", str(TEMPERATURE)]
    if has("--cation") and cmd != "report":
        args += ["--cation", "Li"]
    if has("--center") and has("--ligand") and cmd not in ("report", "rdf"):
        args += ["--center", "P", "--ligand", "O"]
    if write_outputs and has("--json"):
        args += ["--json", os.path.join(out_dir, f"{cmd}.json")]
    if has("--overwrite") and "--overwrite" not in args:
        args += ["--overwrite"]
    with_memory = has("--memory")
    if with_memory:
        args += ["--memory", memory]
    return args, with_memory


# ----------------------------------------------------------------------------------------------- running
def _tree_rss(pid):
    """Resident memory (bytes) of a process and all its descendants, from /proc."""
    total, stack, seen = 0, [pid], set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return total


def run_one(argv, *, env, cwd, timeout, rss_limit, log_path):
    """Run one command; return a dict with status, exit code, wall, user, sys, peak RSS, longest silence."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # tqdm draws nothing at 0 columns
    os.set_blocking(master, False)
    log = open(log_path, "wb")

    t_start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=slave, env=env, cwd=cwd,
                            start_new_session=True, close_fds=True)  # inherits the CPU pinning
    os.close(slave)
    last_out = [t_start]
    silence = [0.0]
    tail = bytearray()
    done = threading.Event()

    def reader():
        while not done.is_set():
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    break
                if not data:
                    break
                now = time.perf_counter()
                silence[0] = max(silence[0], now - last_out[0])
                last_out[0] = now
                log.write(data)
                tail.extend(data)
                del tail[:-4000]

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    status, peak_polled, ru, code = "ok", 0, None, None
    while True:
        pid, wstatus, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        elapsed = time.perf_counter() - t_start
        rss = _tree_rss(proc.pid)
        peak_polled = max(peak_polled, rss)
        if elapsed > timeout or rss > rss_limit:
            status = "timeout" if elapsed > timeout else "rss-limit"
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            pid, wstatus, ru = os.wait4(proc.pid, 0)
            break
        time.sleep(0.25)
    wall = time.perf_counter() - t_start
    proc.returncode = 0  # reaped by wait4; keep Popen from waiting again
    done.set()
    th.join(2)
    os.close(master)
    silence[0] = max(silence[0], time.perf_counter() - last_out[0])
    log.close()
    if status == "ok":
        if os.WIFEXITED(wstatus):
            code = os.WEXITSTATUS(wstatus)
        else:
            code = -os.WTERMSIG(wstatus)
        if code != 0:
            status = "exit"
    peak = max(ru.ru_maxrss * 1024, peak_polled)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", tail.decode("utf-8", "replace")).replace("\r", "\n")
    last_line = next((ln.strip() for ln in reversed(text.split("\n")) if ln.strip()), "")
    return {"status": status, "exit_code": code, "wall_s": wall, "user_s": ru.ru_utime, "sys_s": ru.ru_stime,
            "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_bytes": int(peak), "longest_silence_s": silence[0],
            "last_stderr_line": last_line[:300] if status != "ok" else ""}


# ----------------------------------------------------------------------------------------------- tables
def _fmt_frames(n):
    e = math.log10(n)
    return f"10^{int(e)}" if abs(e - round(e)) < 1e-9 else f"{n:g}"


def _gb(b):
    return f"{b / 1e9:.2f}"


def _cell(r, rss_limit):
    if r is None:
        return "–"
    if r["status"] == "timeout":
        return f"timeout {r['wall_s']:.0f} s"
    if r["status"] == "rss-limit":
        return "stopped at the RSS limit"
    if r["status"] == "exit":
        return f"exit {r['exit_code']}"
    return "ok"


def tables(records, rss_limit):
    """Markdown: one long table (command × length) and one growth table."""
    lengths = sorted({r["frames"] for r in records})
    cmds = []
    for r in records:
        if r["command"] not in cmds:
            cmds.append(r["command"])
    by = {(r["command"], r["frames"]): r for r in records}
    commits = {r.get("commit") for r in records}
    by_commit = len(commits) > 1
    lines = ["| command | `--memory` | frames | status | wall (s) | CPU user+sys (s) | peak RSS (GB) | longest silence (s) |"
             + (" commit |" if by_commit else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|" if by_commit else "")]
    for c in cmds:
        for n in lengths:
            r = by.get((c, n))
            if r is None:
                continue
            mem = r["memory"] if r["with_memory"] else "not accepted"
            rss = _gb(r["peak_rss_bytes"]) if r["status"] != "rss-limit" else f"> {_gb(rss_limit)}"
            lines.append(f"| {c} | {mem} | {_fmt_frames(n)} | {_cell(r, rss_limit)} | {r['wall_s']:.1f} | "
                         f"{r['cpu_s']:.1f} | {rss} | {r['longest_silence_s']:.1f} |"
                         + (f" {str(r.get('commit'))[:7]} |" if by_commit else ""))
    out = "\n".join(lines)
    if len(lengths) > 1:
        hdr = ["command"] + [f"RSS {_fmt_frames(n)} (GB)" for n in lengths] + \
              [f"RSS growth {_fmt_frames(a)}→{_fmt_frames(b)}" for a, b in itertools.pairwise(lengths)] + \
              [f"CPU exponent {_fmt_frames(a)}→{_fmt_frames(b)}" for a, b in itertools.pairwise(lengths)]
        g = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
        for c in cmds:
            row = [c]
            for n in lengths:
                r = by.get((c, n))
                row.append("–" if r is None else (_gb(r["peak_rss_bytes"]) if r["status"] == "ok"
                                                   else _cell(r, rss_limit)))
            for a, b in itertools.pairwise(lengths):
                ra, rb = by.get((c, a)), by.get((c, b))
                ok = ra and rb and ra["status"] == "ok" and rb["status"] == "ok"
                row.append(f"{100 * (rb['peak_rss_bytes'] / ra['peak_rss_bytes'] - 1):+.0f} %" if ok else "–")
            for a, b in itertools.pairwise(lengths):
                ra, rb = by.get((c, a)), by.get((c, b))
                ok = ra and rb and ra["status"] == "ok" and rb["status"] == "ok" and ra["cpu_s"] > 0
                row.append(f"{math.log(rb['cpu_s'] / ra['cpu_s']) / math.log(b / a):.2f}" if ok else "–")
            g.append("| " + " | ".join(row) + " |")
        tlogt = ", ".join(f"{_fmt_frames(a)}→{_fmt_frames(b)}: "
                          f"{1 + math.log(math.log(b) / math.log(a)) / math.log(b / a):.2f}"
                          for a, b in itertools.pairwise(lengths))
        out += ("\n\n" + "\n".join(g) + "\n\nRSS growth = peak RSS at the longer length / at the shorter − 1 (goal "
                "10^5→10^6: ≤ 15 %). CPU exponent = log(CPU₂/CPU₁)/log(T₂/T₁); T log T corresponds to " + tlogt
                + " (T: 1.00).")
    return out


def machine_state():
    load = os.getloadavg()
    try:
        uptime = subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()
    except OSError:
        uptime = ""
    mem = {}
    try:
        with open("/proc/meminfo") as f:
            for ln in f:
                k, v = ln.split(":")
                if k in ("MemTotal", "MemAvailable"):
                    mem[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    return {"loadavg": load, "uptime": uptime, "cpus": os.cpu_count(), "mem_total": mem.get("MemTotal"),
            "mem_available": mem.get("MemAvailable"), "python": platform.python_version(),
            "machine": platform.platform()}


# ----------------------------------------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", nargs="+", type=parse_frames, default=[10_000],
                   help="trajectory lengths in frames, e.g. 1e4 1e5 1e6 (default 1e4)")
    p.add_argument("--work", default=DEFAULT_WORK, help="folder for trajectories, outputs and results "
                   "(default benchmarks/_work, gitignored)")
    p.add_argument("--memory", default="2GB", help="--memory given to every command that accepts it (default 2GB)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds before a command is stopped (default 1800)")
    p.add_argument("--rss-limit", type=parse_bytes, default=parse_bytes("8GB"),
                   help="stop a command whose process tree exceeds this resident memory (default 8GB)")
    p.add_argument("--gate", type=float, default=None, metavar="SECONDS",
                   help="run a command at a length only if it succeeded within SECONDS of CPU time at the "
                        "next shorter length (of this run, or of --gate-from)")
    p.add_argument("--gate-from", default=None, metavar="JSON",
                   help="earlier results (scaling_*.json) that --gate may use for the shorter length")
    p.add_argument("--commands", nargs="+", default=None, help="only these subcommands (default: all)")
    p.add_argument("--skip", nargs="+", default=[], help="subcommands to leave out")
    p.add_argument("--source", default="installed",
                   help="'installed' (default) or a git commit to export and run (e.g. HEAD)")
    p.add_argument("--cpu", type=int, default=None,
                   help="pin every command to this CPU (default: the last CPU this process may use)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gen-chunk", type=int, default=2000, help="frames generated and written per block")
    p.add_argument("--no-outputs", action="store_true", help="do not pass --json to the commands")
    p.add_argument("--label", default=None, help="name of the result files (default: the UTC time)")
    p.add_argument("--generate-only", action="store_true", help="write the trajectories and stop")
    p.add_argument("--tables", nargs="+", default=None, metavar="JSON",
                   help="only print the tables of earlier results (scaling_*.json; several runs are merged, "
                        "a later file replacing the same command and length)")
    args = p.parse_args(argv)
    if args.tables:
        merged, limit = {}, args.rss_limit
        for path in args.tables:
            with open(path) as f:
                data = json.load(f)
            limit = data["meta"].get("rss_limit_bytes", limit)
            print(f"{path}: {data['meta']['code']}, {data['meta']['date_utc']}, "
                  f"load {data['meta']['machine_before']['uptime']}")
            for r in data["records"]:
                merged[(r["command"], r["frames"])] = dict(r, commit=data["meta"]["commit"])
        print()
        print(tables(list(merged.values()), limit))
        return 0

    for n in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[n] = "1"
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    label = args.label or datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")

    def log(msg):
        print(msg, flush=True)

    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})   # the generator too stays on one core
    lengths = sorted(set(args.frames))
    generated = {}
    for n in lengths:
        path, secs, stats = write_trajectory(work, n, seed=args.seed, chunk=args.gen_chunk, log=log)
        generated[n] = {"path": path, "generate_s": secs, "events": stats, "bytes": os.path.getsize(path)}
    if args.generate_only:
        return 0

    code = Code(args.source, work, log=log)
    cmds = args.commands or code.subcommands()
    cmds = [c for c in cmds if c not in args.skip]
    log(f"code: {code.describe}; commands: {' '.join(cmds)}; pinned to CPU {cpu}")
    env = dict(os.environ, **code.env)
    env.pop("COLUMNS", None)
    helps = {c: code.run_help(c) for c in cmds}
    meta = {"label": label, "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "source": args.source, "commit": code.commit, "code": code.describe, "memory": args.memory,
            "timeout_s": args.timeout, "rss_limit_bytes": args.rss_limit, "cpu": cpu, "machine_before": machine_state(),
            "trajectories": {str(n): generated[n] for n in lengths}, "generator_version": GENERATOR_VERSION}
    records, skipped = [], []
    meta["skipped_by_gate"] = skipped
    json_path = os.path.join(work, f"scaling_{label}.json")
    md_path = os.path.join(work, f"scaling_{label}.md")

    def save():
        meta["machine_after"] = machine_state()
        with open(json_path, "w") as f:
            json.dump({"meta": meta, "records": records}, f, indent=1)
        with open(md_path, "w") as f:
            f.write(f"Commit {code.commit[:10]} ({code.describe}), {meta['date_utc']}, "
                    f"load before: {meta['machine_before']['uptime']}\n\n")
            f.write(tables(records, args.rss_limit) + "\n")

    earlier = []
    if args.gate_from:
        with open(args.gate_from) as f:
            earlier = json.load(f)["records"]
    for n in lengths:
        traj = generated[n]["path"]
        out_dir = os.path.join(work, f"out_{label}_{n}")
        os.makedirs(out_dir, exist_ok=True)
        for c in cmds:
            shorter = [r for r in earlier + records if r["command"] == c and r["frames"] < n]
            if args.gate is not None and shorter:
                r0 = max(shorter, key=lambda r: r["frames"])
                if r0["status"] != "ok" or r0["cpu_s"] > args.gate:
                    log(f"{c} @ {n}: skipped by --gate (at {r0['frames']} frames: {r0['status']}, "
                        f"CPU {r0['cpu_s']:.0f} s)")
                    skipped.append({"command": c, "frames": n, "gate_s": args.gate, "shorter": r0["frames"],
                                    "shorter_status": r0["status"], "shorter_cpu_s": r0["cpu_s"]})
                    continue
            cargs, with_memory = command_args(c, helps[c], traj, out_dir, args.memory, not args.no_outputs)
            argv_ = code.argv(c, *cargs)
            log(f"{c} @ {n} frames: {' '.join(argv_[2:])}")
            res = run_one(argv_, env=env, cwd=out_dir, timeout=args.timeout, rss_limit=args.rss_limit,
                          log_path=os.path.join(out_dir, f"{c}.log"))
            rec = {"command": c, "frames": n, "with_memory": with_memory, "memory": args.memory,
                   "argv": argv_[2:], "loadavg_after": os.getloadavg(), **res}
            records.append(rec)
            log(f"   {res['status']}{'' if res['exit_code'] in (0, None) else ' ' + str(res['exit_code'])}: "
                f"wall {res['wall_s']:.1f} s, CPU {res['cpu_s']:.1f} s, peak RSS {_gb(res['peak_rss_bytes'])} GB, "
                f"longest silence {res['longest_silence_s']:.1f} s {res['last_stderr_line']}")
            save()
    save()
    print()
    print(tables(records, args.rss_limit))
    print(f"\nresults: {json_path}\n         {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
