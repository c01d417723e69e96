"""OpenMM reporter writing anionmotion's AMBER-convention NetCDF (positions + velocities, unwrapped).

OpenMM's own DCD/XTC reporters store positions only and MDTraj's NetCDF
reporter has no velocities; VDOS and libration spectra need velocities.  Use
this reporter with your own ``openmm.app.Simulation``; ``anionmotion md`` uses
the same writer.
"""

from __future__ import annotations

import numpy as np

from ..errors import OptionError
from ..io.netcdf_writer import NetCDFWriter
from ._openmm import need_openmm

__all__ = ["NetCDFReporter"]


class NetCDFReporter:
    """Write frames of an OpenMM Simulation to AMBER-convention NetCDF (OpenMM reporter protocol).

    Parameters
    ----------
    file : str
        Output path (refused if it exists, unless ``overwrite``).
    reportInterval : int
        MD steps between frames.
    species : sequence of str, optional
        Element symbols of all atoms; default from the Simulation's Topology.
    atomSubset : sequence of int, optional
        Atoms to write (default all).
    metadata : dict, optional
        Global attributes, e.g. ``{"constraint_mode": "RC", "temperature_K": 900.0}``.
    velocities : bool
        Write velocities (default True).
    overwrite : bool

    Notes
    -----
    Positions are requested without periodic wrapping and additionally
    unwrapped frame to frame (minimum image of the current box), so the file
    holds continuous trajectories.  Energies are never requested (that would
    cost an extra force evaluation per frame).  The file is opened at the first
    report (deferred initialisation, as in MDTraj's reporters).

    Examples
    --------
    >>> sim.reporters.append(NetCDFReporter("run.nc", 5, metadata={"constraint_mode": "UC"}))  # doctest: +SKIP
    """

    def __init__(self, file, reportInterval, *, species=None, atomSubset=None, metadata=None, velocities=True,
                 overwrite=False):
        if isinstance(reportInterval, bool) or not isinstance(reportInterval, (int, np.integer)) \
                or reportInterval < 1:
            raise OptionError(f"reportInterval must be a positive number of steps; got {reportInterval!r}")
        self._path = file
        self._interval = int(reportInterval)
        self._species = None if species is None else [str(s) for s in species]
        self._subset = None if atomSubset is None else np.asarray(atomSubset)
        self._metadata = dict(metadata or {})
        self._metadata.setdefault("coordinate_style", "unwrapped")
        self._velocities = bool(velocities)
        self._overwrite = overwrite
        self._writer = None
        self._n_atoms = None

    def _initialize(self, simulation):
        openmm = need_openmm()
        n = simulation.system.getNumParticles()
        species = self._species
        if species is None:
            species = [a.element.symbol if a.element is not None else a.name for a in simulation.topology.atoms()]
        if len(species) != n:
            raise ValueError(f"species has {len(species)} entries but the System has {n} particles")
        if self._subset is not None:
            s = self._subset
            if s.ndim != 1 or s.dtype.kind not in "iu" or s.size == 0:
                raise ValueError("atomSubset must be a non-empty list of atom indices")
            if s.min() < 0 or s.max() >= n:
                raise ValueError(f"atomSubset has index {int(s.max() if s.max() >= n else s.min())} outside 0..{n - 1}")
            if np.unique(s).size != s.size:
                raise ValueError("atomSubset lists an atom twice")
            species = [species[i] for i in s]
        masses = np.array([simulation.system.getParticleMass(int(i)).value_in_unit(openmm.unit.dalton)
                           for i in (self._subset if self._subset is not None else range(n))])
        self._n_atoms = n
        self._writer = NetCDFWriter(self._path, species, masses=masses, metadata=self._metadata,
                                    velocities=self._velocities, overwrite=self._overwrite)

    def describeNextReport(self, simulation):
        """(steps until the next report, positions, velocities, forces, energies, wrap) — OpenMM's tuple form."""
        steps = self._interval - simulation.currentStep % self._interval
        return (steps, True, self._velocities, False, False, False)

    def report(self, simulation, state):
        """Write one frame from ``state`` (positions, velocities, box, time)."""
        openmm = need_openmm()
        u = openmm.unit
        if self._writer is None:
            self._initialize(simulation)
        pos = state.getPositions(asNumpy=True).value_in_unit(u.angstrom)
        box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(u.angstrom)
        vel = None
        if self._velocities:
            vel = state.getVelocities(asNumpy=True).value_in_unit(u.angstrom / u.picosecond)
        if self._subset is not None:
            pos = pos[self._subset]
            vel = None if vel is None else vel[self._subset]
        t = state.getTime().value_in_unit(u.picosecond)
        self._writer.write(pos, box, time=t, velocities=vel, unwrap=True)

    def close(self):
        if self._writer is not None:
            self._writer.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        return f"NetCDFReporter({self._path!r}, {self._interval})"
