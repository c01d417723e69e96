"""Potentials for constrained MD: OpenMM XML, CHGNet, OpenMM-ML models and any ASE calculator (issue 13).

Every route ends in one OpenMM ``System`` whose particles carry the masses of the structure.  The
mode constraints (:func:`~anionmotion.md.modes.apply_mode`) are added to that System afterwards as
ordinary OpenMM forces, so UC/RC/RTC/RTVC act identically whatever computes the interatomic forces.

Routes (``--potential`` on the command line, ``potential=`` here):

==============================  ==========================================================================
``FILE.xml`` / ``openmm:FILE``  a serialized OpenMM ``System`` (``XmlSerializer.serialize``): native forces
``chgnet``                      CHGNet's bundled pretrained universal potential (no download, offline)
``chgnet:MODEL``                a CHGNet model file (fine-tuned; ``CHGNet.from_file``)
``NAME:MODEL``                  an OpenMM-ML (``openmmml``) model with its file: ``mace:my.model``,
                                ``nequip:deployed.nequip.pth``, ``torchmdnet:x.ckpt``, ``aimnet2:x.jpt``,
                                ``fennix:x.fnx``, ``deepmd:graph.pb`` (needs OpenMMDeepmdPlugin)
``NAME``                        an OpenMM-ML model that needs no file (``mace-mpa-0-medium``, ``ani2x`` …;
                                these download their weights on first use)
``ase:MODULE:CLASS``            any ASE calculator by import path, e.g. ``ase:deepmd.calculator:DP``
==============================  ==========================================================================

Keyword arguments (``--potential-kw KEY=VALUE``, repeatable; ``potential_kw={...}`` here): for
``ase:`` they go to the calculator's constructor (``DP(model="graph.pb")``); for OpenMM-ML names a
keyword that ``createSystem`` of the model takes (``precision``, ``atomTypes``, ``returnEnergyType``,
``charge`` …) goes there and everything else to ``MLPotential(name, ...)`` (``lengthScale``,
``energyScale`` …; NequIP defaults to Å and eV: ``lengthScale=0.1, energyScale=96.485``).  Values are
Python literals when they parse as one (``1e-3``, ``True``, ``[3, 1]``), strings otherwise.

Device (``--device cpu|cuda``): CHGNet's ``use_device``; OpenMM-ML's ``device`` argument; for ASE
calculators the constructor's ``device`` (or ``use_device``) keyword when it has one and the user did
not give it.  Without ``--device`` each package chooses.  The OpenMM platform (``--platform``) is
independent: it integrates, applies the constraints and, for the XML route, computes the forces.

How ML forces enter OpenMM: one :class:`openmm.PythonForce` (OpenMM ≥ 8.6) whose computation is a
small picklable object holding only the *recipe* of the model (route, file, keywords, device, atomic
numbers).  Serializing the System (``run.nc.state/system.xml``, needed to resume a killed run) thus
stores a few hundred bytes, and the model is rebuilt — once per process, cached — when the System is
read back.  CHGNet is evaluated directly (energy and forces only; its ASE calculator would also
compute the stress at every step, ≈ 1.7× the cost).  OpenMM-ML models are evaluated through a
private OpenMM Context holding the System that OpenMM-ML builds, so every model it supports works
(``PythonForce`` and plugin forces alike).

Public API (used by ``anionmotion md`` and ``benchmarks/bench_md.py``)::

    spec = parse_potential("chgnet", potential_kw=None, device="cpu")      # → PotentialSpec
    system = potential_system(spec, species, masses, box_nm)                 # → openmm.System
    # or, from a structure file to an MDSystem ready for run_md:
    from anionmotion.md.structure import build_md_system
    mdsys = build_md_system("Li3PO4.cif", "chgnet", supercell="1x1x1")
    drift = nve_energy_drift(mdsys, "UC", positions_nm, velocities_nm_ps, box_nm, steps=200)

:class:`OpenMMCalculator` is an ASE calculator that evaluates a serialized OpenMM System; with the
``ase:`` route it gives a second, independent path to the same classical forces (the tests compare
it with the native route).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..elements import atomic_number
from ..errors import OptionError
from ._openmm import need_openmm

__all__ = ["PotentialSpec", "MLComputation", "check_available", "parse_potential", "parse_potential_kw",  # noqa: F822
           "potential_system", "ml_computation", "spec_from_dict", "nve_energy_drift", "OpenMMCalculator",
           "MLIP_EXTRA", "EV_KJMOL", "DEVICES", "openmmml_names", "set_torch_threads"]
# (OpenMMCalculator is built on first access by the module __getattr__, so that importing needs no ASE)

MLIP_EXTRA = "pip install 'anionmotion[mlip]'"
"""Install command named by every error about a missing ML package."""

EV_KJMOL = 96.48533212331
"""1 eV in kJ/mol."""

DEVICES = ("cpu", "cuda")
"""Values of ``--device``."""

#: OpenMM-ML models whose file argument is not called ``modelPath``
_FILE_KEYWORD = {"deepmd": "model"}
#: defaults of OpenMM-ML constructor arguments that have none upstream (model units Å and eV)
_OPENMMML_DEFAULTS = {"nequip": {"lengthScale": 0.1, "energyScale": EV_KJMOL}}


def _need(module, what):
    """Import ``module`` or raise a one-line OptionError naming the mlip extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise OptionError(f"{what} needs the Python package {module.split('.')[0]!r}, which is not installed "
                          f"({err}); {MLIP_EXTRA}") from None


_TORCH_THREADS = [None]


def set_torch_threads(n):
    """Limit PyTorch's intra-op threads (``--threads``); no-op without torch or for ``n`` None.

    The limit is also applied in the thread that OpenMM calls the ``PythonForce`` from (OpenMP thread
    counts are per thread: without this a model would run with all cores inside OpenMM).
    """
    if n is None:
        return
    _TORCH_THREADS[0] = max(1, int(n))
    _apply_torch_threads()


def _apply_torch_threads():
    n = _TORCH_THREADS[0]
    if n is None:
        return
    import sys as _sys

    torch = _sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)


# ---------------------------------------------------------------------------------------------- specification
@dataclass(frozen=True)
class PotentialSpec:
    """A parsed ``--potential`` (everything needed to rebuild the potential; JSON-able).

    Attributes
    ----------
    route : {"openmm-xml", "chgnet", "openmmml", "ase"}
    name : str
        ``"chgnet"``, the OpenMM-ML model name, or ``"MODULE:CLASS"`` of an ASE calculator.
    path : str or None
        Absolute path of the model file (System XML, CHGNet/OpenMM-ML model), if any.
    kwargs : dict
        Keyword arguments (see the module docstring).
    device : str or None
        ``"cpu"``, ``"cuda"`` or None (the package decides).
    """

    route: str
    name: str
    path: str = None
    kwargs: dict = field(default_factory=dict)
    device: str = None

    def to_dict(self) -> dict:
        return {"route": self.route, "name": self.name, "path": self.path, "kwargs": dict(self.kwargs),
                "device": self.device}

    @property
    def label(self) -> str:
        """Short name for reports: ``chgnet``, ``mace:model.pt``, ``ase:deepmd.calculator:DP`` …"""
        if self.route == "ase":
            return f"ase:{self.name}"
        if self.route == "openmm-xml":
            return f"openmm:{os.path.basename(self.path)}"
        return self.name + (f":{os.path.basename(self.path)}" if self.path else "")

    def key(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)


def parse_potential_kw(items) -> dict:
    """``["model=graph.pb", "precision=single", "cutoff=5.0"]`` → dict (literals parsed, else strings).

    A dict is checked and returned as is.
    """
    if items is None:
        return {}
    if isinstance(items, dict):
        for k in items:
            if not isinstance(k, str) or not k.isidentifier():
                raise OptionError(f"invalid --potential-kw key {k!r}; keys are Python identifiers")
        return dict(items)
    out = {}
    for it in items:
        text = str(it)
        key, sep, val = text.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise OptionError(f"invalid --potential-kw {text!r}; expected KEY=VALUE, e.g. model=graph.pb")
        try:
            out[key] = ast.literal_eval(val.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            out[key] = val.strip()
    return out


def openmmml_names():
    """Model names registered with OpenMM-ML (its ``openmmml.potentials`` entry points), sorted."""
    from importlib.metadata import entry_points

    try:
        eps = entry_points(group="openmmml.potentials")
    except TypeError:  # Python < 3.10 API
        eps = entry_points().get("openmmml.potentials", [])
    return sorted({e.name for e in eps})


def _check_device(device):
    if device is None:
        return None
    d = str(device).lower()
    if d not in DEVICES and not (d.startswith("cuda:") and d[5:].isdigit()):
        raise OptionError(f"invalid --device {device!r}; choose one of cpu, cuda (or cuda:N)")
    return d


def _model_file(path, what):
    p = os.path.abspath(os.path.expanduser(str(path)))
    if not os.path.exists(p):
        raise OptionError(f"{path}: model file of --potential {what} not found")
    if os.path.isdir(p):
        raise OptionError(f"{path}: is a folder; --potential {what} needs a model file")
    return p


def parse_potential(potential, potential_kw=None, device=None) -> PotentialSpec:
    """Parse a ``--potential`` value (see the module docstring for the syntax).

    Parameters
    ----------
    potential : str or PotentialSpec
    potential_kw : list of "KEY=VALUE" or dict, optional
    device : {"cpu", "cuda"}, optional

    Returns
    -------
    PotentialSpec

    Raises
    ------
    OptionError
        Unknown route or model name, missing model file, malformed keyword, or (for ``ase:``) a module
        or class that cannot be imported.
    """
    if isinstance(potential, PotentialSpec):
        return potential
    if not isinstance(potential, str) or not potential.strip():
        raise OptionError(f"invalid --potential {potential!r}; give chgnet, NAME:MODEL_FILE (mace, nequip, …), "
                          "ase:MODULE:CLASS or an OpenMM System XML file")
    text = potential.strip()
    kw = parse_potential_kw(potential_kw)
    dev = _check_device(device)
    head, sep, rest = text.partition(":")
    low = head.lower()
    if low == "openmm" or (not sep and text.lower().endswith(".xml")):
        path = rest if low == "openmm" else text
        if not path:
            raise OptionError("--potential openmm: needs a file: openmm:system.xml")
        if kw:
            raise OptionError(f"--potential-kw {', '.join(kw)} given, but an OpenMM System XML takes no keywords")
        return PotentialSpec("openmm-xml", "openmm", _model_file(path, text), {}, dev)
    if low == "chgnet":
        path = _model_file(rest, text) if rest else None
        bad = set(kw) - {"on_isolated_atoms"}
        if bad:
            raise OptionError(f"--potential-kw {', '.join(sorted(bad))} not understood by chgnet (it takes "
                              "on_isolated_atoms; the device is --device)")
        return PotentialSpec("chgnet", "chgnet", path, kw, dev)
    if low == "ase":
        mod, sep2, cls = rest.rpartition(":")
        if not sep2:
            mod, _, cls = rest.rpartition(".")
        if not mod or not cls or not cls.isidentifier():
            raise OptionError(f"invalid --potential {text!r}; expected ase:MODULE:CLASS, e.g. "
                              "ase:deepmd.calculator:DP")
        _ase_class(mod, cls, text)   # import now: a typo is an error before any work
        return PotentialSpec("ase", f"{mod}:{cls}", None, kw, dev)
    names = openmmml_names()
    if not names:
        _need("openmmml", f"--potential {text}")
        raise OptionError(f"invalid --potential {text!r}: OpenMM-ML is installed but registers no models")
    if low not in names:
        raise OptionError(f"unknown --potential {text!r}; choose chgnet, an OpenMM System XML, ase:MODULE:CLASS, "
                          f"or an OpenMM-ML model: {', '.join(n for n in names if n != 'ase')}")
    path = _model_file(rest, text) if rest else None
    if path is None and low in ("mace", "nequip", "torchmdnet", "deepmd", "fennix"):
        raise OptionError(f"--potential {low} needs its model file: {low}:PATH")
    return PotentialSpec("openmmml", low, path, kw, dev)


def check_available(spec: PotentialSpec):
    """Import what the route needs now (a missing package is a one-line OptionError before any work)."""
    spec = parse_potential(spec)
    if spec.route == "chgnet":
        _need("chgnet.model", "--potential chgnet")
        _need("torch", "--potential chgnet")
    elif spec.route == "openmmml":
        _need("openmmml", f"--potential {spec.label}")
    elif spec.route == "ase":
        _need("ase", f"--potential {spec.label}")
    need_openmm()


# ---------------------------------------------------------------------------------------------- evaluators
_EVALUATORS: dict = {}
"""Built models, one per (recipe, atomic numbers): a System read back from XML reuses its model."""


def _evaluator(spec: PotentialSpec, numbers, periodic):
    key = (spec.key(), tuple(int(z) for z in numbers), bool(periodic))
    ev = _EVALUATORS.get(key)
    if ev is None:
        if spec.route == "chgnet":
            ev = _CHGNetEvaluator(spec, numbers)
        elif spec.route == "ase":
            ev = _ASEEvaluator(spec, numbers, periodic)
        elif spec.route == "openmmml":
            ev = _OpenMMMLEvaluator(spec, numbers, periodic)
        else:
            raise OptionError(f"route {spec.route!r} has no Python evaluator")
        _EVALUATORS[key] = ev
    return ev


class _CHGNetEvaluator:
    """CHGNet energy and forces (task "ef": no stress or magnetic moments), eV and eV/Å."""

    def __init__(self, spec, numbers):
        _need("torch", "--potential chgnet")
        model_mod = _need("chgnet.model", "--potential chgnet")
        core = _need("pymatgen.core", "--potential chgnet")
        self._core = core
        device = spec.device or "cpu"
        if spec.path:
            model = model_mod.CHGNet.from_file(spec.path)
            model = model.to(device)
        else:
            model = model_mod.CHGNet.load(verbose=False, use_device=device)
        model.graph_converter.set_isolated_atom_response(spec.kwargs.get("on_isolated_atoms", "warn"))
        self.model = model
        self.device = device
        self.species = [core.Element.from_Z(int(z)) for z in numbers]

    def __call__(self, pos_A, cell_A):
        import warnings

        st = self._core.Structure(self._core.Lattice(cell_A), self.species, pos_A, coords_are_cartesian=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # torch's "converting a tensor with requires_grad" inside CHGNet
            graph = self.model.graph_converter(st)
            pred = self.model.predict_graph(graph.to(self.device), task="ef")
        e = float(np.asarray(pred["e"]).reshape(-1)[0])
        if self.model.is_intensive:
            e *= len(self.species)
        return e, np.asarray(pred["f"], dtype=np.float64)


def _ase_class(module, cls, text):
    try:
        mod = importlib.import_module(module)
    except ImportError as err:
        raise OptionError(f"--potential {text}: cannot import module {module!r} ({err}); install the package "
                          "that provides the calculator") from None
    try:
        return getattr(mod, cls)
    except AttributeError:
        raise OptionError(f"--potential {text}: module {module!r} has no {cls!r}") from None


class _ASEEvaluator:
    """Energy and forces of an ASE calculator built from its import path and keywords."""

    def __init__(self, spec, numbers, periodic):
        ase = _need("ase", f"--potential ase:{spec.name}")
        module, cls = spec.name.rsplit(":", 1)
        klass = _ase_class(module, cls, f"ase:{spec.name}")
        kw = dict(spec.kwargs)
        if spec.device is not None:
            try:
                params = inspect.signature(klass).parameters
            except (TypeError, ValueError):
                params = {}
            for name in ("device", "use_device"):
                if name in params and "device" not in kw and "use_device" not in kw:
                    kw[name] = spec.device
                    break
        try:
            calc = klass(**kw)
        except Exception as err:  # the user's calculator: report any failure in one line
            msg = " ".join(str(err).split())[:200] or type(err).__name__
            raise OptionError(f"--potential ase:{spec.name}: building {cls}(**{kw}) failed: {msg}") from err
        self.atoms = ase.Atoms(numbers=[int(z) for z in numbers], pbc=bool(periodic), calculator=calc)
        self.periodic = bool(periodic)

    def __call__(self, pos_A, cell_A):
        a = self.atoms
        if self.periodic:
            a.set_cell(cell_A)
        a.set_positions(pos_A)
        e = float(a.get_potential_energy(apply_constraint=False))
        return e, np.asarray(a.get_forces(apply_constraint=False), dtype=np.float64)


class _OpenMMMLEvaluator:
    """An OpenMM-ML model evaluated in a private OpenMM Context (kJ/mol and kJ/mol/nm converted to eV, eV/Å)."""

    def __init__(self, spec, numbers, periodic):
        openmm = need_openmm()
        from openmm import app

        mlmod = _need("openmmml", f"--potential {spec.label}")
        ctor, create = _split_openmmml_kwargs(spec)
        top = app.Topology()
        chain = top.addChain()
        res = top.addResidue("MOL", chain)
        for i, z in enumerate(numbers):
            top.addAtom(f"X{i}", app.Element.getByAtomicNumber(int(z)), res)
        if periodic:
            top.setPeriodicBoxVectors(np.eye(3) * 10.0 * openmm.unit.nanometer)
        try:
            pot = mlmod.MLPotential(spec.name, **ctor)
            system = pot.createSystem(top, removeCMMotion=False, **create)
        except ImportError as err:
            raise OptionError(f"--potential {spec.label}: a package the OpenMM-ML model needs is missing ({err}); "
                              f"{MLIP_EXTRA} and the model's own package (e.g. mace-torch, nequip)") from None
        except Exception as err:
            msg = " ".join(str(err).split())[:240] or type(err).__name__
            raise OptionError(f"--potential {spec.label}: OpenMM-ML could not build the model: {msg}") from err
        if spec.device is not None and spec.device.startswith("cuda") and _has_platform(openmm, "CUDA"):
            plat = openmm.Platform.getPlatformByName("CUDA")
        else:
            plat = openmm.Platform.getPlatformByName("Reference")
        self.context = openmm.Context(system, openmm.VerletIntegrator(0.001), plat)
        self.periodic = bool(periodic)
        self.openmm = openmm

    def __call__(self, pos_A, cell_A):
        o = self.openmm
        if self.periodic:
            c = np.asarray(cell_A) / 10.0
            self.context.setPeriodicBoxVectors(*[o.Vec3(*row) for row in c])
        self.context.setPositions(np.asarray(pos_A) / 10.0)
        st = self.context.getState(getEnergy=True, getForces=True)
        e = st.getPotentialEnergy().value_in_unit(o.unit.kilojoule_per_mole) / EV_KJMOL
        f = st.getForces(asNumpy=True).value_in_unit(o.unit.kilojoule_per_mole / o.unit.nanometer)
        return e, np.asarray(f) / (10.0 * EV_KJMOL)


def _has_platform(openmm, name):
    return any(openmm.Platform.getPlatform(i).getName() == name for i in range(openmm.Platform.getNumPlatforms()))


def _split_openmmml_kwargs(spec):
    """(constructor keywords, createSystem keywords) of an OpenMM-ML model (see the module docstring)."""
    ctor = dict(_OPENMMML_DEFAULTS.get(spec.name, {}))
    create = {}
    if spec.path:
        ctor[_FILE_KEYWORD.get(spec.name, "modelPath")] = spec.path
    create_names = {"precision", "atomTypes", "returnEnergyType", "charge", "multiplicity", "cudaGraphs",
                    "lambdaName", "lambdaValue", "info", "calculator", "aseAtoms"}
    try:
        from importlib.metadata import entry_points

        ep = [e for e in entry_points(group="openmmml.potentials") if e.name == spec.name]
        if ep:   # the model's addForces(...) parameters are createSystem keywords
            mod = importlib.import_module(ep[0].load().__module__)
            for obj in vars(mod).values():
                if inspect.isclass(obj) and hasattr(obj, "addForces") and obj.__module__ == mod.__name__:
                    create_names |= {p for p in inspect.signature(obj.addForces).parameters
                                     if p not in ("self", "topology", "system", "atoms", "forceGroup", "args")}
    except Exception:  # noqa: BLE001 - introspection is a convenience; the fixed list above still applies
        pass
    for k, v in spec.kwargs.items():
        (create if k in create_names else ctor)[k] = v
    if spec.device is not None:
        create["device"] = spec.device
    return ctor, create


# ---------------------------------------------------------------------------------------------- PythonForce
class MLComputation:
    """Picklable ``PythonForce`` computation: the recipe of a model, rebuilt (and cached) on first use.

    Parameters
    ----------
    spec : PotentialSpec or dict
    numbers : sequence of int
        Atomic numbers, in particle order.
    periodic : bool

    Notes
    -----
    Called by OpenMM with a ``State`` (positions in nm, possibly wrapped into the box); returns the
    energy (kJ/mol) and forces (kJ mol⁻¹ nm⁻¹, shape (n, 3)).  Pickling stores only the recipe, so
    ``XmlSerializer`` writes a small System and a resumed run rebuilds the same model.
    """

    def __init__(self, spec, numbers, periodic=True):
        self.spec = spec if isinstance(spec, PotentialSpec) else PotentialSpec(**spec)
        self.numbers = [int(z) for z in numbers]
        self.periodic = bool(periodic)
        self._ev = None
        self._last = None   # (positions, box, energy, forces) of the last call

    def __getstate__(self):
        return {"spec": self.spec.to_dict(), "numbers": self.numbers, "periodic": self.periodic}

    def __setstate__(self, state):
        self.__init__(state["spec"], state["numbers"], state["periodic"])

    def evaluate(self, pos_nm, box_nm):
        """Energy (kJ/mol) and forces (kJ mol⁻¹ nm⁻¹) at positions and box in nm."""
        pos = np.array(pos_nm, dtype=np.float64)
        box = None if box_nm is None else np.array(box_nm, dtype=np.float64)
        last = self._last
        if last is not None and np.array_equal(last[0], pos) and (box is None or np.array_equal(last[1], box)):
            return last[2], last[3].copy()   # the energy of the state whose forces were just computed
        if self._ev is None:
            self._ev = _evaluator(self.spec, self.numbers, self.periodic)
        _apply_torch_threads()
        e, f = self._ev(pos * 10.0, None if box is None else box * 10.0)
        e, f = e * EV_KJMOL, np.asarray(f, dtype=np.float64) * (10.0 * EV_KJMOL)
        self._last = (pos, box, e, f)
        return e, f.copy()

    def __call__(self, state):
        import openmm.unit as u

        pos = state.getPositions(asNumpy=True).value_in_unit(u.nanometer)
        box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(u.nanometer) if self.periodic else None
        return self.evaluate(pos, box)


def ml_computation(spec, species, periodic=True) -> MLComputation:
    """The picklable computation of an ML/ASE route for atoms of ``species`` (element symbols)."""
    spec = parse_potential(spec)
    numbers = [atomic_number(s) for s in species]
    bad = [str(s) for s, z in zip(species, numbers) if z == 0]
    if bad:
        raise OptionError(f"--potential {spec.label} needs chemical elements; {bad[0]!r} is not one")
    return MLComputation(spec, numbers, periodic)


def potential_system(potential, species, masses, box_nm, *, potential_kw=None, device=None, warm_up=None):
    """The OpenMM System of a structure under a potential (the forces of every route; no constraints).

    Parameters
    ----------
    potential : str or PotentialSpec
        See :func:`parse_potential`.
    species : sequence of str, shape (n,)
        Element symbols.
    masses : array_like, shape (n,), amu
    box_nm : array_like, shape (3, 3), nm
        Periodic box, rows a, b, c, already in OpenMM's reduced form (a along x, b in the xy plane,
        see :func:`anionmotion.md.structure.openmm_box`).
    potential_kw, device :
        See :func:`parse_potential` (ignored when ``potential`` is a PotentialSpec).
    warm_up : array_like, shape (n, 3), nm, optional
        Positions at which to evaluate the model once, so that a broken model (wrong elements, bad
        file) fails here with a clear message instead of inside the integrator.

    Returns
    -------
    openmm.System
        Particles with ``masses``; the periodic box; the potential's force(s).  For the XML route the
        System of the file (its masses; the particle count must match).
    """
    openmm = need_openmm()
    spec = parse_potential(potential, potential_kw, device) if not isinstance(potential, PotentialSpec) else potential
    n = len(species)
    box = np.asarray(box_nm, dtype=np.float64)
    if spec.route == "openmm-xml":
        try:
            with open(spec.path, encoding="utf-8") as fh:
                system = openmm.XmlSerializer.deserialize(fh.read())
        except Exception as err:  # OpenMM raises a bare Exception for bad XML
            raise OptionError(f"{spec.path}: not a serialized OpenMM System ({' '.join(str(err).split())[:160]})") \
                from err
        if not isinstance(system, openmm.System):
            raise OptionError(f"{spec.path}: holds a {type(system).__name__}, not an OpenMM System")
        if system.getNumParticles() != n:
            raise OptionError(f"{spec.path} has {system.getNumParticles()} particles but the structure has {n} atoms")
        system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box])
        return system
    if not hasattr(openmm, "PythonForce"):
        raise OptionError(f"--potential {spec.label} needs OpenMM ≥ 8.6 (PythonForce); this is OpenMM "
                          f"{getattr(openmm, '__version__', '?')}: {MLIP_EXTRA}")
    comp = ml_computation(spec, species, periodic=True)
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box])
    for m in np.asarray(masses, dtype=np.float64):
        system.addParticle(float(m))
    force = openmm.PythonForce(comp)
    force.setUsesPeriodicBoundaryConditions(True)
    force.setName(f"anionmotion potential {spec.label}")
    system.addForce(force)
    if warm_up is not None:
        try:
            e, f = comp.evaluate(warm_up, box)
        except OptionError:
            raise
        except Exception as err:  # the model failed on this structure
            msg = " ".join(str(err).split())[:240] or type(err).__name__
            raise OptionError(f"--potential {spec.label} failed on the structure: {msg}") from err
        if not (math.isfinite(e) and np.all(np.isfinite(f))):
            raise OptionError(f"--potential {spec.label} gives a non-finite energy or force for the structure")
    return system


# ---------------------------------------------------------------------------------------------- ASE ↔ OpenMM
def _make_openmm_calculator():
    from ase.calculators.calculator import Calculator, all_changes

    class OpenMMCalculator(Calculator):
        """ASE calculator evaluating a serialized OpenMM System (energies eV, forces eV/Å).

        Parameters
        ----------
        system_xml : str
            ``XmlSerializer.serialize(system)`` file; the Atoms must hold its particles in order.
        platform : str
            OpenMM platform of the private Context (default CPU).
        threads : int, optional
            CPU threads.

        Notes
        -----
        Bonded forces of the System are switched to periodic boundary conditions, so the result does not
        depend on which periodic image of a molecule's atoms ASE (or OpenMM's ``PythonForce``) passes.
        """

        implemented_properties = ("energy", "free_energy", "forces")

        def __init__(self, system_xml=None, platform="CPU", threads=None, **kwargs):
            super().__init__(**kwargs)
            openmm = need_openmm()
            if system_xml is None:
                raise OptionError("OpenMMCalculator needs system_xml=FILE (a serialized OpenMM System)")
            with open(system_xml, encoding="utf-8") as fh:
                system = openmm.XmlSerializer.deserialize(fh.read())
            for f in system.getForces():
                if hasattr(f, "setUsesPeriodicBoundaryConditions") and not f.usesPeriodicBoundaryConditions():
                    try:
                        f.setUsesPeriodicBoundaryConditions(True)
                    except Exception:  # noqa: BLE001 - forces that are periodic by construction
                        pass
            props = {"Threads": str(int(threads))} if threads and platform == "CPU" else {}
            self._openmm = openmm
            self._ctx = openmm.Context(system, openmm.VerletIntegrator(0.001),
                                       openmm.Platform.getPlatformByName(platform), props)

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            o = self._openmm
            if any(self.atoms.pbc):
                cell = np.asarray(self.atoms.cell) / 10.0
                self._ctx.setPeriodicBoxVectors(*[o.Vec3(*row) for row in cell])
            self._ctx.setPositions(self.atoms.positions / 10.0)
            st = self._ctx.getState(getEnergy=True, getForces=True)
            e = st.getPotentialEnergy().value_in_unit(o.unit.kilojoule_per_mole) / EV_KJMOL
            f = st.getForces(asNumpy=True).value_in_unit(o.unit.kilojoule_per_mole / o.unit.nanometer)
            self.results = {"energy": e, "free_energy": e, "forces": np.asarray(f) / (10.0 * EV_KJMOL)}

    OpenMMCalculator.__module__ = __name__
    OpenMMCalculator.__qualname__ = "OpenMMCalculator"
    return OpenMMCalculator


def __getattr__(name):
    # the ASE calculator class is built on first access, so importing this module does not need ASE
    if name == "OpenMMCalculator":
        cls = _make_openmm_calculator()
        globals()["OpenMMCalculator"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------- NVE drift
def nve_energy_drift(mdsys, mode, positions_nm, velocities_nm_ps, box_nm, *, steps=500, timestep=1.0, k_rot=None,
                     k_com=None, platform="CPU", threads=None, sample_every=None, rc_backend=None):
    """Energy drift of plain NVE (velocity Verlet) from one state of a mode, per ps.

    The System of the mode (:func:`~anionmotion.md.modes.apply_mode` with the state as the restraint
    reference) is integrated without thermostat and without ``CMMotionRemover`` for ``steps`` steps; the
    total energy (kinetic + potential, restraints included) is sampled every ``sample_every`` steps and a
    straight line fitted to it.

    Parameters
    ----------
    mdsys : MDSystem
    mode : {"UC", "RC", "RTC", "RTVC"}
    positions_nm, velocities_nm_ps : array_like, shape (n_atoms, 3)
        Start state (e.g. the last frame of the production).
    box_nm : array_like, shape (3, 3)
    steps : int
    timestep : float, fs
    k_rot, k_com : float, optional
        Stiffnesses of the mode (defaults of :mod:`~anionmotion.md.modes`).
    rc_backend : {"eckart", "orientation"}, optional
        Rotational restraint of RC/RTC, as in the production (default :data:`~anionmotion.md.modes.RC_BACKEND_DEFAULT`).
    sample_every : int, optional
        Steps between energy samples (default: ``steps // 20``, at least 1).

    Returns
    -------
    dict
        ``kJ_mol_per_ps`` (slope), ``meV_per_atom_per_ps``, ``relative_per_ps`` (slope / kinetic energy at
        the start), ``fluctuation_kJ_mol`` (RMS about the line), ``duration_ps``, ``timestep_fs``,
        ``n_samples``, ``potential``, ``mode``.
    """
    openmm = need_openmm()
    from .modes import K_COM_DEFAULT, K_ROT_DEFAULT, RC_BACKEND_DEFAULT, apply_mode

    u = openmm.unit
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 4:
        raise OptionError(f"NVE drift needs at least 4 steps; got {steps!r}")
    sample_every = max(1, int(steps) // 20) if sample_every is None else int(sample_every)
    steps = int(steps) - int(steps) % sample_every
    system = mdsys.copy_system()
    setup = apply_mode(system, positions_nm, box_nm, mdsys.groups, mode,
                       k_rot=K_ROT_DEFAULT if k_rot is None else k_rot, k_com=K_COM_DEFAULT if k_com is None else k_com,
                       templates=None, rc_backend=RC_BACKEND_DEFAULT if rc_backend is None else rc_backend)
    for i in reversed(range(system.getNumForces())):
        if isinstance(system.getForce(i), openmm.CMMotionRemover):
            system.removeForce(i)
    plat = openmm.Platform.getPlatformByName(platform)
    props = {"Threads": str(int(threads))} if threads and platform == "CPU" else {}
    integ = openmm.VerletIntegrator(timestep * u.femtosecond)
    ctx = openmm.Context(system, integ, plat, props)
    ctx.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in np.asarray(box_nm, dtype=np.float64)])
    ctx.setPositions(setup.positions)
    vel = np.array(velocities_nm_ps, dtype=np.float64)
    dyn = np.array([system.getParticleMass(i).value_in_unit(u.dalton) for i in range(system.getNumParticles())])
    vel[dyn == 0] = 0.0
    if dyn.sum() > 0:
        vel[dyn > 0] -= (dyn @ vel) / dyn.sum()    # no net momentum (no CMMotionRemover in NVE)
    ctx.setVelocities(vel)
    t, e = [], []
    ke0 = None
    for k in range(0, steps + 1, sample_every):
        if k:
            integ.step(sample_every)
        st = ctx.getState(getEnergy=True)
        ke = st.getKineticEnergy().value_in_unit(u.kilojoule_per_mole)
        ke0 = ke if ke0 is None else ke0
        e.append(ke + st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole))
        t.append(k * timestep * 1e-3)
    t, e = np.array(t), np.array(e)
    if not np.all(np.isfinite(e)):
        slope = float("nan")
        resid = np.array([float("nan")])
    else:
        slope, icpt = np.polyfit(t, e, 1)
        resid = e - (slope * t + icpt)
    n = mdsys.n_atoms
    spec = mdsys.parameters.get("potential", {}) if isinstance(mdsys.parameters, dict) else {}
    return {"mode": str(mode), "potential": spec.get("label", mdsys.parameters.get("system", mdsys.name)),
            "kJ_mol_per_ps": float(slope), "meV_per_atom_per_ps": float(slope / EV_KJMOL * 1e3 / n),
            "relative_per_ps": float(slope / ke0) if ke0 else float("nan"),
            "fluctuation_kJ_mol": float(np.sqrt(np.mean(resid ** 2))), "duration_ps": float(t[-1]),
            "timestep_fs": float(timestep), "n_samples": int(len(t)),
            "definition": "slope of the total energy (kinetic + potential incl. restraints) in velocity-Verlet NVE "
                          "from the last recorded frame, restraint reference = that frame"}


def spec_from_dict(d) -> PotentialSpec:
    """Inverse of :meth:`PotentialSpec.to_dict`."""
    return PotentialSpec(**{k: d[k] for k in ("route", "name", "path", "kwargs", "device")})

