"""Running constrained MD: equilibrate, switch a mode on, re-equilibrate, record; resumable (SPEC §8).

Protocol of one mode (MD-DESIGN):

1. *start* — the UC System is minimised, given Maxwell–Boltzmann velocities
   (``seed``) and equilibrated for ``equilibrate`` ps; the state is cached in
   ``<out>.state/start.xml`` so that ``mode="all"`` runs every mode from the
   same equilibrated start;
2. *switch-on* — a copy of the System gets the mode (:func:`~anionmotion.md.modes.apply_mode`,
   reference = the anions of the start state, made whole); the modified System
   is serialized (masses included: OpenMM checkpoints do not store them);
3. *re-equilibration* of ``reequilibrate`` ps (≥ 5 ps recommended: energy flows
   into the restraints and the temperature drops);
4. *production* of ``time`` ps, one frame every ``frame_every`` steps written
   to AMBER-convention NetCDF (unwrapped float32 Å, Å/ps, cell, ps), with an
   OpenMM checkpoint and the frame count saved atomically every
   ``checkpoint_every`` frames.  A killed run started again with the same
   arguments continues at the last checkpoint: frames written after it are
   overwritten in place, so none is lost or duplicated.

When the production is complete the constraint report is computed from the
file and written as JSON next to it (``run.nc`` → ``run.constraints.json``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time as _time
from dataclasses import asdict, dataclass

import numpy as np

from .._version import __version__
from ..errors import OptionError
from ..io.netcdf_writer import NetCDFWriter, lengths_angles_to_cell
from ..results import check_output, to_jsonable, write_json
from ._openmm import need_openmm
from .modes import (COM_FORCE_GROUP, K_COM_DEFAULT, K_ROT_DEFAULT, MODES, RC_BACKEND_DEFAULT, ROT_FORCE_GROUP,
                    apply_mode, check_mode, make_whole, warn_short_reequilibration)
from .report import ConstraintAccumulator, format_report

__all__ = ["RunSettings", "run_md", "run_mode", "output_paths", "report_path", "THERMOSTATS", "PLATFORMS"]

THERMOSTATS = ("langevin", "nose-hoover")
"""Thermostats: LangevinMiddleIntegrator (default) or NoseHooverIntegrator (a Nosé–Hoover chain)."""
PLATFORMS = ("CPU", "CUDA", "OpenCL", "Reference")

KB_KJMOL = 0.0083144626181532
"""Boltzmann constant, kJ mol⁻¹ K⁻¹ (OpenMM's value)."""


@dataclass(frozen=True)
class RunSettings:
    """Physical settings of a run (everything that must match for a resume).

    Attributes
    ----------
    mode : str
        UC, RC, RTC or RTVC.
    temperature : float, K
    time : float, ps
        Production length (frames at 0, Δ, …, time).
    equilibrate : float, ps
        UC equilibration before any mode is switched on.
    reequilibrate : float, ps
        Equilibration after the mode is switched on, before recording.
    timestep : float, fs
    frame_every : int
        MD steps between stored frames.
    k_rot : float, kJ mol⁻¹ (amu nm²)⁻²
    k_com : float, kJ mol⁻¹ nm⁻²
    seed : int
        Velocities and thermostat random numbers (≥ 1).
    thermostat : str
        ``langevin`` or ``nose-hoover``.
    friction : float, ps⁻¹
        Langevin friction / Nosé–Hoover collision frequency.
    minimize : bool
        Minimise the energy before the equilibration.
    rc_backend : str
        Rotational restraint of RC/RTC: ``eckart`` or ``orientation`` (OpenMM's OrientationRestraintForce);
        settings saved before this field existed were Eckart runs.
    """

    mode: str = "UC"
    temperature: float = 900.0
    time: float = 50.0
    equilibrate: float = 10.0
    reequilibrate: float = 5.0
    timestep: float = 1.0
    frame_every: int = 5
    k_rot: float = K_ROT_DEFAULT
    k_com: float = K_COM_DEFAULT
    seed: int = 1
    thermostat: str = "langevin"
    friction: float = 1.0
    minimize: bool = True
    rc_backend: str = RC_BACKEND_DEFAULT

    def __post_init__(self):
        check_mode(self.mode)
        from .modes import check_rc_backend
        object.__setattr__(self, "rc_backend", check_rc_backend(self.rc_backend))
        for name in ("temperature", "timestep", "k_rot", "k_com", "friction"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise OptionError(f"{name} must be a positive number; got {v!r}")
        for name in ("time", "equilibrate", "reequilibrate"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise OptionError(f"{name} must be a time ≥ 0 in ps; got {v!r}")
        if isinstance(self.frame_every, bool) or not isinstance(self.frame_every, (int, np.integer)) \
                or self.frame_every < 1:
            raise OptionError(f"frame_every must be a positive number of MD steps; got {self.frame_every!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 1:
            raise OptionError(f"seed must be a positive integer (OpenMM treats 0 as 'random'); got {self.seed!r}")
        if self.thermostat not in THERMOSTATS:
            raise OptionError(f"invalid thermostat {self.thermostat!r}; choose one of {', '.join(THERMOSTATS)}")

    @property
    def frame_interval(self) -> float:
        """Time between stored frames, ps."""
        return self.frame_every * self.timestep * 1e-3

    @property
    def n_frames(self) -> int:
        """Frames of the production (at times 0, Δ, …, ≤ time)."""
        return int(math.floor(self.time / self.frame_interval + 1e-9)) + 1

    def steps(self, ps) -> int:
        return int(round(ps / (self.timestep * 1e-3)))

    def start_key(self) -> dict:
        """The settings that define the equilibrated start (shared by every mode)."""
        return {k: getattr(self, k) for k in ("temperature", "equilibrate", "timestep", "seed", "thermostat",
                                              "friction", "minimize")}


def output_paths(out, modes):
    """Output file of each mode: ``out`` itself for one mode, ``<stem>_<MODE><ext>`` for several."""
    out = os.fspath(out)
    if len(modes) == 1:
        return {modes[0]: out}
    stem, ext = os.path.splitext(out)
    return {m: f"{stem}_{m}{ext or '.nc'}" for m in modes}


def report_path(out) -> str:
    """``run.nc`` → ``run.constraints.json``."""
    stem, _ = os.path.splitext(os.fspath(out))
    return stem + ".constraints.json"


def _state_dir(out):
    return os.fspath(out) + ".state"


# ---------------------------------------------------------------------------------------------- OpenMM plumbing
def _platform(openmm, name, threads):
    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if name not in names:
        raise OptionError(f"OpenMM platform {name!r} is not available here; available: {', '.join(names)}")
    plat = openmm.Platform.getPlatformByName(name)
    props = {}
    if name == "CPU" and threads:
        props["Threads"] = str(int(threads))
    if name in ("CUDA", "OpenCL"):
        props["Precision"] = "mixed"
    return plat, props


def _integrator(openmm, s: RunSettings):
    u = openmm.unit
    if s.thermostat == "langevin":
        integ = openmm.LangevinMiddleIntegrator(s.temperature * u.kelvin, s.friction / u.picosecond,
                                                s.timestep * u.femtosecond)
        integ.setRandomNumberSeed(int(s.seed))
    else:
        integ = openmm.NoseHooverIntegrator(s.temperature * u.kelvin, s.friction / u.picosecond,
                                            s.timestep * u.femtosecond)
    return integ


def _context(openmm, system, s, platform, threads):
    plat, props = _platform(openmm, platform, threads)
    integ = _integrator(openmm, s)
    return openmm.Context(system, integ, plat, props), integ


def _atomic_write_bytes(path, data: bytes):
    from ..results import temp_output

    fd, tmp = temp_output(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _save_npz(path, **arrays):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class _Progress:
    """tqdm bar in simulated ps with ns/day, or nothing."""

    def __init__(self, total_ps, desc, enabled):
        self.bar = None
        self.t0 = _time.perf_counter()
        self.done = 0.0
        if enabled is None:
            enabled = sys.stderr.isatty()
        if enabled and total_ps > 0:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=round(total_ps, 6), desc=desc, unit="ps", leave=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.2f}/{total:.2f} ps "
                                       "[{elapsed}<{remaining}{postfix}]")

    def update(self, ps):
        self.done += ps
        if self.bar is not None:
            self.bar.update(ps)
            el = _time.perf_counter() - self.t0
            if el > 0:
                self.bar.set_postfix_str(f"{self.done * 1e-3 / (el / 86400.0):.2f} ns/day", refresh=False)

    def ns_per_day(self):
        el = _time.perf_counter() - self.t0
        return self.done * 1e-3 / (el / 86400.0) if el > 0 and self.done > 0 else float("nan")

    def close(self):
        if self.bar is not None:
            self.bar.close()


#: a speed above this (nm/ps = km/s) means the integration exploded (thermal speeds are ~1 nm/ps)
MAX_SPEED_NM_PS = 1000.0


def _exploded(what, ps, err=None, advice=True):
    from ..errors import SimulationError

    why = f" ({err})" if err is not None else ""
    return SimulationError(f"the integration exploded during {what} at {ps:.4g} ps{why}"
                           + ("; use a smaller --timestep (1 fs is safe for the li2so4 model), a lower "
                              "--temperature, or check the system (overlapping atoms)" if advice else ""))


def _advance(integ, n_steps, progress, dt_ps, block=100, what="the MD run", context=None):
    """Run ``n_steps`` steps in blocks; an OpenMM failure or a non-finite/runaway state is a SimulationError."""
    import openmm

    left = int(n_steps)
    done = 0
    while left > 0:
        k = min(block, left)
        try:
            integ.step(k)
        except openmm.OpenMMException as err:   # "Particle coordinate is NaN" and the like
            raise _exploded(what, (done + k) * dt_ps, err) from None
        left -= k
        done += k
        progress.update(k * dt_ps)
        if context is not None:
            st = context.getState(getVelocities=True)
            vel = st.getVelocities(asNumpy=True)._value
            _check_state(None, vel, what, done * dt_ps)


def _check_state(pos, vel, what, ps):
    """Raise a SimulationError when positions or velocities (nm, nm/ps) are not finite or run away."""
    for name, arr in (("positions", pos), ("velocities", vel)):
        if arr is None:
            continue
        a = np.asarray(arr)
        if not np.all(np.isfinite(a)):
            raise _exploded(what, ps, f"non-finite {name}")
    if vel is not None:
        v2 = np.einsum("ij,ij->i", np.asarray(vel), np.asarray(vel))
        vmax = float(np.sqrt(v2.max())) if len(v2) else 0.0
        if vmax > MAX_SPEED_NM_PS:
            raise _exploded(what, ps, f"an atom moves at {vmax:.3g} nm/ps")


def check_box(mdsys):
    """Raise an OptionError when the periodic box is narrower than twice a periodic force's cutoff.

    OpenMM refuses such a box only when the context is built, with a traceback; the check names the box
    widths, the cutoff and what to change.
    """
    openmm = need_openmm()
    nm = openmm.unit.nanometer
    box = np.asarray(mdsys.box, dtype=np.float64)
    vol = abs(float(np.linalg.det(box)))
    widths = [vol / float(np.linalg.norm(np.cross(box[(i + 1) % 3], box[(i + 2) % 3]))) for i in range(3)]
    for f in mdsys.system.getForces():
        uses = getattr(f, "usesPeriodicBoundaryConditions", None)
        get = getattr(f, "getCutoffDistance", None)
        if uses is None or get is None:
            continue
        try:
            periodic = bool(uses())
            rc = get()
            rc = float(rc.value_in_unit(nm)) if hasattr(rc, "value_in_unit") else float(rc)
        except Exception:  # noqa: BLE001 - a force without a usable cutoff
            continue
        if periodic and 2.0 * rc > min(widths) * (1 + 1e-9):
            raise OptionError(f"the periodic box ({', '.join(f'{10 * w:.4g}' for w in widths)} Å wide) is narrower than "
                              f"twice the {type(f).__name__} cutoff ({10 * rc:.4g} Å): use a larger system "
                              "(--cells 2 or more for li2so4) or a shorter cutoff")


# ---------------------------------------------------------------------------------------------- phases
def _start_state(openmm, mdsys, s: RunSettings, state_dir, *, platform, threads, progress, log):
    """Equilibrated UC start (positions, velocities, box), cached in ``state_dir/start.xml``."""
    os.makedirs(state_dir, exist_ok=True)
    xml_path = os.path.join(state_dir, "start.xml")
    key_path = os.path.join(state_dir, "start.json")
    key = {"settings": s.start_key(), "system": to_jsonable(mdsys.parameters), "n_atoms": mdsys.n_atoms}
    if os.path.exists(xml_path) and os.path.exists(key_path):
        with open(key_path, encoding="utf-8") as fh:
            old = json.load(fh)
        if old == json.loads(json.dumps(key)):
            with open(xml_path, encoding="utf-8") as fh:
                log(f"using the equilibrated start in {xml_path}")
                return openmm.XmlSerializer.deserialize(fh.read())
    u = openmm.unit
    system = mdsys.copy_system()
    setup = apply_mode(system, mdsys.positions, mdsys.box, mdsys.groups, "UC")
    ctx, integ = _context(openmm, system, s, platform, threads)
    b = mdsys.box
    ctx.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in b])
    ctx.setPositions(setup.positions)
    if s.minimize:
        log("minimising the energy")
        try:
            openmm.LocalEnergyMinimizer.minimize(ctx, 10.0, 2000)
        except openmm.OpenMMException as err:
            raise _exploded("the energy minimisation", 0.0, err, advice=False) from None
    ctx.setVelocitiesToTemperature(s.temperature * u.kelvin, int(s.seed))
    bar = _Progress(s.equilibrate, "equilibrate UC", progress)
    _advance(integ, s.steps(s.equilibrate), bar, s.timestep * 1e-3, what="the UC equilibration", context=ctx)
    bar.close()
    state = ctx.getState(getPositions=True, getVelocities=True)
    _atomic_write_bytes(xml_path, openmm.XmlSerializer.serialize(state).encode())
    _atomic_write_bytes(key_path, json.dumps(key, indent=1).encode())
    del ctx, integ
    return state


_RESTRAINTS = {"UC": "none (CMMotionRemover on)",
               "RC": "Eckart rotational restraint per anion (CMMotionRemover on)",
               "RTC": "Eckart rotational restraint + periodic COM tether per anion",
               "RTVC": "anion atoms massless (fixed)"}


def _metadata(mdsys, s: RunSettings, info):
    return {
        "constraint_mode": s.mode,
        "coordinate_style": "unwrapped",
        "temperature_K": float(s.temperature),
        "restraints": _RESTRAINTS[s.mode] if s.rc_backend == "eckart" or s.mode not in ("RC", "RTC") else
        _RESTRAINTS[s.mode].replace("Eckart rotational restraint", "OrientationRestraintForce"),
        "rc_backend": s.rc_backend,
        "k_rot": float(s.k_rot), "k_rot_units": "kJ/mol/(amu*nm^2)^2 (used in RC, RTC)",
        "k_com": float(s.k_com), "k_com_units": "kJ/mol/nm^2 (used in RTC)",
        "restraint_wavenumbers_cm-1": json.dumps(to_jsonable(info["wn"])),
        "system": mdsys.name,
        "system_description": mdsys.description,
        "system_parameters": json.dumps(to_jsonable(mdsys.parameters)),
        "seed": int(s.seed),
        "anionmotion_version": __version__,
        "thermostat": s.thermostat,
        "friction_per_ps": float(s.friction),
        "timestep_fs": float(s.timestep),
        "frame_every_steps": int(s.frame_every),
        "frame_interval_ps": float(s.frame_interval),
        "equilibrate_ps": float(s.equilibrate),
        "reequilibrate_ps": float(s.reequilibrate),
        "production_ps": float(s.time),
        "n_frames_target": int(s.n_frames),
        "n_dof": int(info["n_dof"]),
        "cm_motion_remover": int(info["cmm"]),
        "run_settings": json.dumps(to_jsonable(asdict(s))),
        "run_complete": 0,
    }


def _load_json(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _anion_index(n, groups):
    idx = np.full(n, -1, dtype=np.int32)
    for g, grp in enumerate(groups):
        idx[grp] = g
    return idx


def _read_complete(path):
    import netCDF4

    try:
        with netCDF4.Dataset(path) as ds:
            return int(getattr(ds, "run_complete", -1)), getattr(ds, "run_settings", None)
    except OSError:
        return -1, None


def _extends(old, new):
    """Whether the run key ``new`` continues ``old``: same system and settings except a production at least as long."""
    if old.get("system") != new.get("system"):
        return False
    a, b = old.get("settings", {}), new.get("settings", {})
    diff = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
    return diff <= {"time"} and float(b.get("time", 0.0)) >= float(a.get("time", 0.0))


def run_mode(mdsys, out, settings: RunSettings, *, start_dir=None, platform="CPU", threads=None, overwrite=False,
             progress=None, checkpoint_every=200, energy_every=20, verbose=True, keep_state=False, extend=False,
             _fail_after=None):
    """Run one constraint mode to ``out`` (resuming an interrupted run); see :func:`run_md`.

    Parameters
    ----------
    keep_state : bool
        Keep the state folder (``<out>.state``: System, final checkpoint) when the run completes, so that it
        can be extended later (``extend=True``).  Default: removed.
    extend : bool
        Allow ``out`` to be a complete run (kept with ``keep_state``) or a partial one whose settings differ
        from ``settings`` only by a shorter production ``time``: the production then continues from the last
        checkpoint up to ``settings.time``, appending to the same file (what ``--until-converged`` does).  A
        complete run of exactly ``settings`` returns its report.

    Returns
    -------
    dict
        The constraint report (also written to ``report_path(out)``), with ``ns_per_day`` of the production.
    """
    openmm = need_openmm()
    u = openmm.unit
    s = settings
    out = os.fspath(out)
    log = (lambda msg: print(f"anionmotion md [{s.mode}]: {msg}", file=sys.stderr)) if verbose else (lambda m: None)
    sdir = _state_dir(out)
    start_dir = start_dir or sdir
    rep_path = report_path(out)
    settings_json = json.dumps(to_jsonable(asdict(s)))
    ckpt_path = os.path.join(sdir, "checkpoint.npz")
    params_path = os.path.join(sdir, "params.json")
    run_key = {"settings": json.loads(settings_json), "system": json.loads(json.dumps(to_jsonable(mdsys.parameters)))}
    if os.path.exists(params_path):  # saved before rc_backend existed: those runs used the Eckart restraint
        _old = _load_json(params_path)
        if isinstance(_old.get("settings"), dict) and "rc_backend" not in _old["settings"]:
            _old["settings"]["rc_backend"] = "eckart"
            _atomic_write_bytes(params_path, json.dumps(_old, indent=1).encode())

    # ---- decide: fresh, resume, or refuse
    resume = False
    if os.path.exists(out):
        complete, old_settings = _read_complete(out)
        if overwrite:
            os.unlink(out)
            if os.path.isdir(sdir):
                shutil.rmtree(sdir)
        elif complete == 1 and extend and os.path.exists(params_path) and os.path.exists(ckpt_path) \
                and _extends(_load_json(params_path), run_key):
            n_ck = int(np.load(ckpt_path, allow_pickle=False)["n_frames"])
            if _load_json(params_path) == run_key and n_ck >= s.n_frames:   # nothing to extend
                if os.path.exists(rep_path):
                    return _load_json(rep_path)
                return _report_of_finished_run(openmm, out, mdsys, s, sdir, verbose, keep_state=keep_state)
            resume = True
        elif complete == 1:
            if not os.path.exists(rep_path) and os.path.exists(params_path) and os.path.exists(ckpt_path) \
                    and _load_json(params_path) == run_key:
                return _report_of_finished_run(openmm, out, mdsys, s, sdir, verbose,  # killed while reporting
                                               keep_state=keep_state)
            raise OptionError(f"{out}: output file exists and is complete; refusing to overwrite it (use --overwrite)")
        elif os.path.exists(params_path):
            with open(params_path, encoding="utf-8") as fh:
                old = json.load(fh)
            if old != run_key and not (extend and _extends(old, run_key)):
                diff = sorted(k for k in set(old["settings"]) | set(run_key["settings"])
                              if old["settings"].get(k) != run_key["settings"].get(k))
                if old["system"] != run_key["system"]:
                    diff.append("system")
                raise OptionError(f"{out}: a partial run with different settings ({', '.join(diff)}) exists; "
                                  "repeat its command to resume it, or use --overwrite")
            resume = True
        else:
            raise OptionError(f"{out}: output file exists but is not a resumable anionmotion run (no {sdir}); "
                              "refusing to overwrite it (use --overwrite)")
    elif not overwrite and os.path.exists(rep_path):
        raise OptionError(f"{rep_path}: report file exists; refusing to overwrite it (use --overwrite)")
    if overwrite and not resume and os.path.isdir(sdir):
        shutil.rmtree(sdir)  # stale state of an interrupted run: start again
    if not resume and os.path.isdir(sdir) and os.path.exists(params_path):
        with open(params_path, encoding="utf-8") as fh:
            resume = json.load(fh) == run_key and os.path.exists(os.path.join(sdir, "system.xml"))
    check_output(rep_path, overwrite=True)
    os.makedirs(sdir, exist_ok=True)
    if resume and os.path.exists(params_path) and _load_json(params_path) != run_key:
        # an extension: the longer production is recorded before anything is appended, so that a run killed
        # during the extension resumes it with the same command
        _atomic_write_bytes(params_path, json.dumps(run_key, indent=1).encode())

    # ---- the mode's System (rebuilt identically on resume: serialized, masses included)
    sys_path = os.path.join(sdir, "system.xml")
    setup_path = os.path.join(sdir, "setup.npz")
    if resume and os.path.exists(sys_path) and os.path.exists(setup_path):
        with open(sys_path, encoding="utf-8") as fh:
            system = openmm.XmlSerializer.deserialize(fh.read())
        z = np.load(setup_path, allow_pickle=False)
        start = None
        refs_flat, ref_sizes = z["references"], z["sizes"]
        refs = np.split(refs_flat, np.cumsum(ref_sizes)[:-1])
        setup_info = dict(n_dof=int(z["n_dof"]), masses=z["masses"], wn=json.loads(str(z["wavenumbers"])),
                          cmm=bool(z["cmm"]))
    else:
        resume = False
        start = _start_state(openmm, mdsys, s, start_dir, platform=platform, threads=threads, progress=progress,
                             log=log)
        system = mdsys.copy_system()
        pos0 = start.getPositions(asNumpy=True).value_in_unit(u.nanometer)
        box0 = start.getPeriodicBoxVectors(asNumpy=True).value_in_unit(u.nanometer)
        setup = apply_mode(system, pos0, box0, mdsys.groups, s.mode, k_rot=s.k_rot, k_com=s.k_com,
                           templates=mdsys.templates, rc_backend=s.rc_backend)
        refs = setup.references
        setup_info = dict(n_dof=setup.n_dof, masses=setup.masses, wn=setup.restraint_wavenumbers,
                          cmm=setup.cm_motion_remover)
        _atomic_write_bytes(sys_path, openmm.XmlSerializer.serialize(system).encode())
        _save_npz(setup_path, references=np.concatenate(refs), sizes=np.array([len(r) for r in refs]),
                  n_dof=setup.n_dof, masses=setup.masses, cmm=setup.cm_motion_remover,
                  wavenumbers=json.dumps(to_jsonable(setup.restraint_wavenumbers)))
        _atomic_write_bytes(params_path, json.dumps(run_key, indent=1).encode())
        if os.path.exists(ckpt_path):
            os.unlink(ckpt_path)

    ctx, integ = _context(openmm, system, s, platform, threads)
    dt_ps = s.timestep * 1e-3
    e_rot, e_com = [], []
    have_ckpt = resume and os.path.exists(ckpt_path) and os.path.exists(out)
    if have_ckpt:
        z = np.load(ckpt_path, allow_pickle=False)
        ctx.loadCheckpoint(z["checkpoint"].tobytes())
        n_done = int(z["n_frames"])
        e_rot, e_com = list(z["e_rot"]), list(z["e_com"])
        writer = NetCDFWriter(out, mdsys.species, mode="a")
        if writer.n_frames < n_done:
            writer.close()
            raise OptionError(f"{out}: has {writer.n_frames} frames but its checkpoint says {n_done}; the file was "
                              "modified: use --overwrite to start again")
        writer.truncate(n_done)
        # the settings of this (possibly extended) production; complete again only when it is
        writer.set_attributes({"run_complete": 0, "production_ps": float(s.time), "n_frames_target": int(s.n_frames),
                               "run_settings": settings_json})
        writer.sync()
        log(f"resuming at frame {n_done} of {s.n_frames} ({ckpt_path})")
    else:
        if start is None:
            start = _start_state(openmm, mdsys, s, start_dir, platform=platform, threads=threads,
                                 progress=progress, log=log)
        pos0 = start.getPositions(asNumpy=True).value_in_unit(u.nanometer)
        box0 = start.getPeriodicBoxVectors(asNumpy=True).value_in_unit(u.nanometer)
        ctx.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box0])
        ctx.setPositions(make_whole(pos0, box0, mdsys.groups))
        vel0 = start.getVelocities(asNumpy=True).value_in_unit(u.nanometer / u.picosecond)
        massless = np.array([system.getParticleMass(i).value_in_unit(u.dalton) == 0.0
                             for i in range(system.getNumParticles())])
        vel0[massless] = 0.0  # RTVC: fixed atoms carry no velocity (OpenMM would keep reporting the old one)
        ctx.setVelocities(vel0)
        if s.reequilibrate < 5.0:
            warn_short_reequilibration(s.reequilibrate)
        bar = _Progress(s.reequilibrate, f"re-equilibrate {s.mode}", progress)
        _advance(integ, s.steps(s.reequilibrate), bar, dt_ps, what=f"the {s.mode} re-equilibration", context=ctx)
        bar.close()
        if os.path.exists(out):
            os.unlink(out)  # our own partial file from before the first checkpoint
        writer = NetCDFWriter(out, mdsys.species, masses=setup_info["masses"], metadata=_metadata(mdsys, s, setup_info),
                              title=f"anionmotion md {s.mode} {mdsys.name} {s.temperature:g} K")
        writer._ds.createVariable("anion_index", "i4", ("atom",))[:] = _anion_index(mdsys.n_atoms, mdsys.groups)
        writer._ds.variables["anion_index"].long_name = "anion (constraint group) of each atom, -1 for none"
        n_done = 0

    def sample_energies():
        if s.mode in ("RC", "RTC"):
            e_rot.append(ctx.getState(getEnergy=True, groups={ROT_FORCE_GROUP}).getPotentialEnergy()
                         .value_in_unit(u.kilojoule_per_mole))
        if s.mode == "RTC":
            e_com.append(ctx.getState(getEnergy=True, groups={COM_FORCE_GROUP}).getPotentialEnergy()
                         .value_in_unit(u.kilojoule_per_mole))

    def checkpoint(n):
        writer.sync()
        _save_npz(ckpt_path, checkpoint=np.frombuffer(ctx.createCheckpoint(), dtype=np.uint8), n_frames=n,
                  e_rot=np.asarray(e_rot, dtype=np.float64), e_com=np.asarray(e_com, dtype=np.float64))

    def write_frame(n, first=False):
        st = ctx.getState(getPositions=True, getVelocities=True)
        pos = st.getPositions(asNumpy=True).value_in_unit(u.nanometer)
        box = st.getPeriodicBoxVectors(asNumpy=True).value_in_unit(u.nanometer)
        # a frame of an exploded run is not written: the file keeps the good frames before it
        _check_state(pos, st.getVelocities(asNumpy=True).value_in_unit(u.nanometer / u.picosecond),
                     f"the {s.mode} production (frame {n}; the {n} frames before it are kept in {out})",
                     n * s.frame_interval)
        if first:
            pos = make_whole(pos, box, mdsys.groups)
        vel = st.getVelocities(asNumpy=True).value_in_unit(u.nanometer / u.picosecond)
        writer.write(pos * 10.0, box * 10.0, time=n * s.frame_interval, velocities=vel * 10.0, unwrap=not first)

    total = s.n_frames
    bar = _Progress((total - 1 - max(n_done - 1, 0)) * s.frame_interval, f"{s.mode} production", progress)
    written_here = 0
    try:
        if n_done == 0:
            write_frame(0, first=True)
            sample_energies()
            n_done = 1
            checkpoint(n_done)
        while n_done < total:
            try:
                integ.step(s.frame_every)
            except openmm.OpenMMException as err:
                raise _exploded(f"the {s.mode} production (frame {n_done}; the {n_done} frames before it are kept "
                                f"in {out})", n_done * s.frame_interval, err) from None
            write_frame(n_done)
            n_done += 1
            written_here += 1
            bar.update(s.frame_interval)
            if n_done % energy_every == 0:
                sample_energies()
            if n_done % checkpoint_every == 0 or n_done == total:
                checkpoint(n_done)
            if _fail_after is not None and written_here >= _fail_after:
                raise RuntimeError(f"injected failure after {written_here} frames")
        ns_day = bar.ns_per_day()
        bar.close()
        writer.set_attributes({"run_complete": 1, "n_frames": n_done})
        writer.sync()
    finally:
        writer.close()
        bar.close()
    del ctx, integ

    # ---- constraint report from the file
    dyn_masses = np.array([system.getParticleMass(i).value_in_unit(u.dalton) for i in range(system.getNumParticles())])
    return _finish_report(out, mdsys, s, refs, setup_info, dyn_masses, e_rot, e_com,
                          ns_day if written_here else None, sdir, verbose, keep_state=keep_state)


def _finish_report(out, mdsys, s, refs, setup_info, dyn_masses, e_rot, e_com, ns_day, sdir, verbose,
                   keep_state=False):
    """Constraint report of a complete output (written next to it), then the state folder is removed
    (kept with ``keep_state``)."""
    import netCDF4

    acc = ConstraintAccumulator(mdsys.groups, [r * 10.0 for r in refs], setup_info["masses"], setup_info["n_dof"],
                                dyn_masses)
    with netCDF4.Dataset(out) as ds:
        ds.set_auto_maskandscale(False)
        total = ds.dimensions["frame"].size
        for a in range(0, total, 500):
            b = min(a + 500, total)
            cells = lengths_angles_to_cell(ds["cell_lengths"][a:b], ds["cell_angles"][a:b])
            acc.add(np.asarray(ds["coordinates"][a:b], dtype=np.float64),
                    np.asarray(ds["velocities"][a:b], dtype=np.float64), cells)
    rep = {"mode": s.mode, "output": out, "system": mdsys.name,
           "system_description": mdsys.description, "settings": asdict(s),
           "restraint_wavenumbers_cm1": setup_info["wn"], "ns_per_day": ns_day,
           "anionmotion_version": __version__}
    rep.update(acc.result(species=mdsys.species, temperature=s.temperature,
                          restraint_energies={f"rotation ({'Eckart' if s.rc_backend == 'eckart' else 'orientation'})":
                                              e_rot, "COM tether": e_com},
                          kT_kJmol=KB_KJMOL * s.temperature))
    rep_path = report_path(out)
    write_json(rep_path, rep, overwrite=True)
    os.chmod(rep_path, 0o644)
    if verbose:
        print(format_report(rep), file=sys.stderr)
    if not keep_state:
        shutil.rmtree(sdir, ignore_errors=True)  # the run is complete: checkpoints (and an own start) are done with
    return rep


def _report_of_finished_run(openmm, out, mdsys, s, sdir, verbose, keep_state=False):
    u = openmm.unit
    with open(os.path.join(sdir, "system.xml"), encoding="utf-8") as fh:
        system = openmm.XmlSerializer.deserialize(fh.read())
    z = np.load(os.path.join(sdir, "setup.npz"), allow_pickle=False)
    refs = np.split(z["references"], np.cumsum(z["sizes"])[:-1])
    setup_info = dict(n_dof=int(z["n_dof"]), masses=z["masses"], wn=json.loads(str(z["wavenumbers"])),
                      cmm=bool(z["cmm"]))
    c = np.load(os.path.join(sdir, "checkpoint.npz"), allow_pickle=False)
    dyn = np.array([system.getParticleMass(i).value_in_unit(u.dalton) for i in range(system.getNumParticles())])
    return _finish_report(out, mdsys, s, refs, setup_info, dyn, list(c["e_rot"]), list(c["e_com"]), None, sdir,
                          verbose, keep_state=keep_state)


def run_md(mdsys, out, *, mode="UC", temperature=900.0, time=50.0, equilibrate=10.0, reequilibrate=5.0,
           timestep=1.0, frame_every=5, k_rot=K_ROT_DEFAULT, k_com=K_COM_DEFAULT, seed=1, thermostat="langevin",
           friction=1.0, minimize=True, platform="CPU", threads=None, overwrite=False, progress=None,
           checkpoint_every=200, verbose=True, rc_backend=RC_BACKEND_DEFAULT):
    """Constrained MD of a system in one mode, or in all four from one equilibrated start (SPEC §8).

    Parameters
    ----------
    mdsys : MDSystem
        From :func:`~anionmotion.md.systems.build_li2so4` or :func:`~anionmotion.md.systems.load_system`.
    out : str
        Output NetCDF; with ``mode="all"`` the outputs are ``<stem>_UC.nc`` … ``<stem>_RTVC.nc``.
    mode : {"UC", "RC", "RTC", "RTVC", "all"}
    temperature : float, K
    time : float, ps
        Production length per mode.
    equilibrate : float, ps
        UC equilibration (after minimisation) before a mode is switched on.
    reequilibrate : float, ps
        Equilibration after the switch-on, before recording (≥ 5 ps recommended; a ModeWarning below).
    timestep : float, fs
    frame_every : int
        MD steps between frames.
    k_rot : float, kJ mol⁻¹ (amu nm²)⁻²
    k_com : float, kJ mol⁻¹ nm⁻²
    seed : int
    thermostat : {"langevin", "nose-hoover"}
    friction : float, ps⁻¹
    minimize : bool
    platform : {"CPU", "CUDA", "OpenCL", "Reference"}
    threads : int, optional
        CPU threads (default: OpenMM's choice, all cores).
    overwrite : bool
        Replace existing outputs; otherwise a complete output is an error and a partial one is resumed.
    progress : bool, optional
        tqdm bars (None: on a terminal only).
    checkpoint_every : int
        Frames between checkpoints.
    rc_backend : {"eckart", "orientation"}
        Rotational restraint of RC/RTC (docs/md.md, "RC backends").

    Returns
    -------
    dict
        mode → constraint report (dict).
    """
    modes = list(MODES) if str(mode).lower() == "all" else [check_mode(mode)]
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, (int, np.integer)) \
            or checkpoint_every < 1:
        raise OptionError(f"checkpoint_every must be a positive number of frames; got {checkpoint_every!r}")
    paths = output_paths(out, modes)
    for p in paths.values():   # output folders (one missing level) and outputs equal to inputs, before any work
        check_output(p, overwrite=True)
    check_box(mdsys)
    settings = {m: RunSettings(mode=m, temperature=float(temperature), time=float(time),
                               equilibrate=float(equilibrate), reequilibrate=float(reequilibrate),
                               timestep=float(timestep), frame_every=int(frame_every), k_rot=float(k_rot),
                               k_com=float(k_com), seed=int(seed), thermostat=thermostat, friction=float(friction),
                               minimize=bool(minimize), rc_backend=rc_backend) for m in modes}
    start_dir = _state_dir(out)
    reports = {}
    if len(modes) > 1 and not overwrite:
        done = {m: _read_complete(p) for m, p in paths.items() if os.path.exists(p)}
        same = {m for m, (c, st) in done.items()
                if c == 1 and st is not None and {"rc_backend": "eckart", **json.loads(st)}
                == json.loads(json.dumps(to_jsonable(asdict(settings[m]))))}
        if len(same) == len(modes):
            raise OptionError(f"{', '.join(paths.values())}: all outputs exist and are complete; refusing to "
                              "overwrite them (use --overwrite)")
    else:
        same = set()
    for m in modes:
        if m in same:
            if verbose:
                print(f"anionmotion md [{m}]: {paths[m]} is complete with these settings; skipped", file=sys.stderr)
            with open(report_path(paths[m]), encoding="utf-8") as fh:
                reports[m] = json.load(fh)
            continue
        reports[m] = run_mode(mdsys, paths[m], settings[m], start_dir=start_dir, platform=platform, threads=threads,
                              overwrite=overwrite, progress=progress, checkpoint_every=checkpoint_every,
                              verbose=verbose)
    shutil.rmtree(start_dir, ignore_errors=True)
    return reports
