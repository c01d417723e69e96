"""Systems for constrained MD: the embedded α-Li2SO4-like model and user systems (OpenMM XML + PDB/PDBx).

A structure file with any potential (CHGNet, OpenMM-ML, ASE calculators, OpenMM XML) becomes an
:class:`MDSystem` through :func:`anionmotion.md.structure.build_md_system`.

The embedded model is a **generic demonstration model**, not a fitted Li2SO4
potential: an antifluorite arrangement (SO4 on fcc sites, Li in every
tetrahedral site, a = 7.07 Å) with rigid-ion charges, harmonic S–O bonds and
O–S–O angles, and Buckingham Li–O / O–O repulsion taken from other oxides.
It shows a rotor phase at 900–1000 K (anions rotate, Li diffuses at 1000 K),
which is all the constrained-MD machinery needs; it does not reproduce the
real α-Li2SO4 quantitatively.  Physics reference: Impey, Klein & McDonald,
J. Chem. Phys. 82, 4690 (1985).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..elements import mass_of, normalize_symbol
from ..errors import OptionError
from ._openmm import need_openmm, strip_nm

__all__ = ["MDSystem", "LI2SO4_PARAMETERS", "build_li2so4", "load_system", "SYSTEMS"]

SYSTEMS = ("li2so4",)
"""Names of the embedded systems (``--system``)."""

EV_KJMOL = 96.48533212331
"""1 eV in kJ/mol."""

LI2SO4_PARAMETERS = {
    "a_angstrom": 7.07,
    "charges_e": {"Li": 1.0, "S": 1.36, "O": -0.84},
    "bond_S_O": {"r0_angstrom": 1.49, "k_kJmol_nm2": 5.5e5},
    "angle_O_S_O": {"theta0_deg": 109.47, "k_kJmol_rad2": 1500.0},
    "coulomb": {"method": "PME", "cutoff_angstrom": 8.0, "ewald_tolerance": 5e-4},
    "buckingham": {
        "Li-O": {"A_eV": 950.0, "rho_angstrom": 0.2610, "C_eV_A6": 0.0, "source": "Jackson's LiNbO3 set"},
        "O-O": {"A_eV": 1388.77, "rho_angstrom": 0.36262, "C_eV_A6": 175.0, "source": "a SrTiO3 set"},
        "cutoff_angstrom": 6.0, "switch_angstrom": 5.0,
    },
    "intra_anion_pairs": "excluded from Coulomb and Buckingham",
}
"""Every parameter of the embedded α-Li2SO4-like model (MD-DESIGN "The model used")."""


@dataclass
class MDSystem:
    """An OpenMM System with what constrained MD needs to know about it.

    Attributes
    ----------
    name : str
        ``"li2so4"``, the path of the user's System XML, or the name of the structure file
        (:func:`anionmotion.md.structure.build_md_system`).
    system : openmm.System
        Unconstrained (UC) system; :func:`~anionmotion.md.modes.apply_mode` is applied to a copy.
    positions : ndarray, shape (n_atoms, 3), float64, nm
    box : ndarray, shape (3, 3), float64, nm (rows a, b, c)
    species : ndarray of str, shape (n_atoms,)
        Element symbols.
    groups : list of ndarray of int64
        Atom indices of each anion, centre first.
    templates : list of (ndarray (n_group, 3) nm or None)
        Ideal anion geometries (Kabsch-fitted to make the RC/RTC reference).
    description : str
    parameters : dict
        Everything needed to rebuild the System (recorded in the output).
    """

    name: str
    system: object
    positions: np.ndarray
    box: np.ndarray
    species: np.ndarray
    groups: list
    templates: list
    description: str = ""
    parameters: dict = field(default_factory=dict)

    @property
    def n_atoms(self) -> int:
        return int(self.positions.shape[0])

    def __repr__(self):
        counts = {}
        for sp in self.species:
            counts[sp] = counts.get(sp, 0) + 1
        comp = " ".join(f"{k}{v}" for k, v in counts.items())
        return f"MDSystem({self.name!r}, {self.n_atoms} atoms ({comp}), {len(self.groups)} anions)"

    def copy_system(self):
        """A deep copy of the OpenMM System (via XML), masses included."""
        openmm = need_openmm()
        return openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(self.system))


def _tetrahedron(r0):
    """SO4 ligand vectors (nm): a regular tetrahedron turned 45° about z so no S–O bond points at a Li site."""
    s2 = math.sqrt(2.0)
    v = np.array([[s2, 0.0, 1.0], [-s2, 0.0, 1.0], [0.0, s2, -1.0], [0.0, -s2, -1.0]]) / math.sqrt(3.0)
    return v * r0


def build_li2so4(cells=3):
    """The embedded α-Li2SO4-like rotor-phase model (a generic demonstration model).

    Parameters
    ----------
    cells : int
        Conventional cubic cells along each axis (3 → 756 atoms, 2 → 224 atoms).

    Returns
    -------
    MDSystem
        Atoms ordered cell by cell: per cell 4 × (S, O, O, O, O) then 8 Li.

    Notes
    -----
    Antifluorite: SO4 centres on the fcc sites of a cube of edge a = 7.07 Å, Li
    in all 8 tetrahedral sites.  Charges Li +1, S +1.36, O −0.84 (neutral).
    S–O harmonic bond r0 = 1.49 Å, k = 5.5e5 kJ mol⁻¹ nm⁻²; O–S–O harmonic angle
    109.47°, k = 1500 kJ mol⁻¹ rad⁻²; intra-anion pairs excluded; PME with an
    8 Å cutoff (7.0 Å for 2 cells, where the box is 14.1 Å); Buckingham E = A exp(−r/ρ) − C/r⁶
    for Li–O (A = 950.0 eV, ρ = 0.2610 Å) and O–O (A = 1388.77 eV, ρ = 0.36262 Å, C = 175 eV Å⁶), cut at
    6 Å with switching from 5 Å (:data:`LI2SO4_PARAMETERS`).

    References
    ----------
    MD-DESIGN "The model used"; Impey, Klein & McDonald, J. Chem. Phys. 82, 4690 (1985).
    """
    openmm = need_openmm()
    if isinstance(cells, bool) or not isinstance(cells, (int, np.integer)) or cells < 1:
        raise OptionError(f"cells must be a positive integer; got {cells!r}")
    P = LI2SO4_PARAMETERS
    a = P["a_angstrom"] / 10.0
    r0 = P["bond_S_O"]["r0_angstrom"] / 10.0
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    tet = np.array([[x, y, z] for x in (0.25, 0.75) for y in (0.25, 0.75) for z in (0.25, 0.75)])
    lig = _tetrahedron(r0)
    pos, species, groups, templates = [], [], [], []
    for i in range(cells):
        for j in range(cells):
            for k in range(cells):
                shift = np.array([i, j, k], dtype=float)
                for f in fcc:
                    c = (f + shift) * a
                    start = len(pos)
                    pos.append(c)
                    species.append("S")
                    for v in lig:
                        pos.append(c + v)
                        species.append("O")
                    groups.append(np.arange(start, start + 5, dtype=np.int64))
                    templates.append(np.vstack([np.zeros(3), lig]))
                for t in tet:
                    pos.append((t + shift) * a)
                    species.append("Li")
    pos = np.array(pos)
    species = np.array(species, dtype=object)
    L = cells * a
    box = np.eye(3) * L

    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(openmm.Vec3(L, 0, 0), openmm.Vec3(0, L, 0), openmm.Vec3(0, 0, L))
    for s in species:
        system.addParticle(mass_of(s))

    q = P["charges_e"]
    nb = openmm.NonbondedForce()
    nb.setNonbondedMethod(openmm.NonbondedForce.PME)
    rc = min(P["coulomb"]["cutoff_angstrom"], math.floor(5.0 * L * 10.0 - 0.5) / 10.0)  # ≤ half the box
    nb.setCutoffDistance(rc / 10.0)
    nb.setEwaldErrorTolerance(P["coulomb"]["ewald_tolerance"])
    nb.setUseDispersionCorrection(False)
    for s in species:
        nb.addParticle(q[s], 0.1, 0.0)

    B = P["buckingham"]
    lio, oo = B["Li-O"], B["O-O"]
    expr = ("isLi1*isO2*ELiO + isO1*isLi2*ELiO + isO1*isO2*EOO;"
            "ELiO = ALiO*exp(-r/rhoLiO);"
            "EOO = AOO*exp(-r/rhoOO) - COO/r^6")
    bk = openmm.CustomNonbondedForce(expr)
    bk.addGlobalParameter("ALiO", lio["A_eV"] * EV_KJMOL)
    bk.addGlobalParameter("rhoLiO", lio["rho_angstrom"] / 10.0)
    bk.addGlobalParameter("AOO", oo["A_eV"] * EV_KJMOL)
    bk.addGlobalParameter("rhoOO", oo["rho_angstrom"] / 10.0)
    bk.addGlobalParameter("COO", oo["C_eV_A6"] * EV_KJMOL * 1e-6)
    bk.addPerParticleParameter("isLi")
    bk.addPerParticleParameter("isO")
    for s in species:
        bk.addParticle([1.0 if s == "Li" else 0.0, 1.0 if s == "O" else 0.0])
    bk.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
    bk.setCutoffDistance(B["cutoff_angstrom"] / 10.0)
    bk.setUseSwitchingFunction(True)
    bk.setSwitchingDistance(B["switch_angstrom"] / 10.0)
    bk.setUseLongRangeCorrection(False)

    bonds = openmm.HarmonicBondForce()
    angles = openmm.HarmonicAngleForce()
    kb = P["bond_S_O"]["k_kJmol_nm2"]
    th0 = math.radians(P["angle_O_S_O"]["theta0_deg"])
    ka = P["angle_O_S_O"]["k_kJmol_rad2"]
    for g in groups:
        s, os_ = int(g[0]), [int(x) for x in g[1:]]
        for o in os_:
            bonds.addBond(s, o, r0, kb)
        for x in range(4):
            for y in range(x + 1, 4):
                angles.addAngle(os_[x], s, os_[y], th0, ka)
        members = [s, *os_]
        for x in range(5):
            for y in range(x + 1, 5):
                nb.addException(members[x], members[y], 0.0, 0.1, 0.0)
                bk.addExclusion(members[x], members[y])
    for f in (nb, bk, bonds, angles):
        system.addForce(f)
    nb.setForceGroup(0)
    bk.setForceGroup(1)
    bonds.setForceGroup(2)
    angles.setForceGroup(2)

    desc = (f"α-Li2SO4-like antifluorite rotor-phase model, {cells}×{cells}×{cells} cells, {len(species)} atoms "
            "(generic demonstration model, not a fitted Li2SO4 potential)")
    return MDSystem(name="li2so4", system=system, positions=pos, box=box, species=species, groups=groups,
                    templates=templates, description=desc,
                    parameters={"system": "li2so4", "cells": int(cells), "n_atoms": len(species),
                                "coulomb_cutoff_angstrom": rc, **P})


def load_system(system_xml, structure, *, anion_residues=None, centre=None, ligand=None, cutoff=None):
    """A user's OpenMM System (serialized XML) with its structure (PDB or PDBx/mmCIF).

    Parameters
    ----------
    system_xml : str
        ``XmlSerializer.serialize(system)`` output.
    structure : str
        PDB (``.pdb``) or PDBx/mmCIF (``.cif``, ``.pdbx``) file with the same atoms in the same order; its box
        (CRYST1 / cell) is used, else the System's default box.
    anion_residues : sequence of str, optional
        Residue names whose residues are the anions (centre = the atom nearest the residue's centre of mass,
        or the atom of species ``centre`` when given).
    centre, ligand : str or sequence of str, optional
        Centre and ligand species for finding anions by distance (with ``cutoff``), as in
        :func:`anionmotion.find_polyanions` (SPEC §4).
    cutoff : float, optional
        Centre–ligand cutoff, Å.

    Returns
    -------
    MDSystem
    """
    openmm = need_openmm()
    from openmm import app

    for p in (system_xml, structure):
        if not os.path.exists(p):
            raise FileNotFoundError(f"{p}: no such file")
    try:
        with open(system_xml, encoding="utf-8") as fh:
            system = openmm.XmlSerializer.deserialize(fh.read())
    except Exception as err:  # OpenMM raises a bare Exception for bad XML
        raise OptionError(f"{system_xml}: not a serialized OpenMM System ({err})") from err
    if not isinstance(system, openmm.System):
        raise OptionError(f"{system_xml}: holds a {type(system).__name__}, not an OpenMM System")
    ext = os.path.splitext(structure)[1].lower()
    try:
        st = app.PDBxFile(structure) if ext in (".cif", ".pdbx", ".mmcif") else app.PDBFile(structure)
    except Exception as err:
        raise OptionError(f"{structure}: cannot read the structure ({err})") from err
    top = st.getTopology()
    n = system.getNumParticles()
    if top.getNumAtoms() != n:
        raise OptionError(f"{structure} has {top.getNumAtoms()} atoms but {system_xml} has {n} particles")
    pos = strip_nm(st.getPositions())
    bv = top.getPeriodicBoxVectors()
    if bv is None:
        bv = system.getDefaultPeriodicBoxVectors()
    box = strip_nm(bv, "box")
    species = np.array([normalize_symbol(a.element.symbol) if a.element is not None else a.name
                        for a in top.atoms()], dtype=object)
    masses = np.array([system.getParticleMass(i).value_in_unit(openmm.unit.dalton) for i in range(n)])
    groups = []
    if anion_residues:
        names = {str(r) for r in anion_residues}
        found = set()
        centres = None if centre is None else {normalize_symbol(c) for c in np.atleast_1d(centre)}
        for res in top.residues():
            if res.name not in names:
                continue
            found.add(res.name)
            idx = np.array([a.index for a in res.atoms()], dtype=np.int64)
            if idx.size < 2:
                continue
            if centres is not None:
                c = [i for i in idx if species[i] in centres]
                if len(c) != 1:
                    raise OptionError(f"residue {res.name} {res.id} has {len(c)} atoms of centre species "
                                      f"{sorted(centres)}; expected exactly one")
                c = c[0]
            else:
                com = masses[idx] @ pos[idx] / masses[idx].sum()
                c = idx[np.argmin(np.linalg.norm(pos[idx] - com, axis=1))]
            groups.append(np.concatenate([[c], idx[idx != c]]).astype(np.int64))
        missing = names - found
        if missing:
            have = sorted({r.name for r in top.residues()})
            raise OptionError(f"{structure}: no residue named {', '.join(sorted(missing))}; residues present: "
                              f"{', '.join(have[:20])}")
    elif centre is not None and ligand is not None and cutoff is not None:
        groups = _groups_by_distance(pos * 10.0, box * 10.0, species, centre, ligand, cutoff, structure)
    else:
        raise OptionError("say which atoms are the anions: anion_residues (--anion-residues) or centre, ligand and "
                          "cutoff (--centre/--ligand/--cutoff)")
    if not groups:
        raise OptionError(f"{structure}: no anions found")
    return MDSystem(name=os.path.basename(system_xml), system=system, positions=pos, box=box, species=species,
                    groups=groups, templates=[None] * len(groups),
                    description=f"user system {system_xml} + {structure}",
                    parameters={"system": os.path.abspath(system_xml), "structure": os.path.abspath(structure),
                                "anion_residues": list(anion_residues) if anion_residues else None,
                                "centre": centre, "ligand": ligand, "cutoff_angstrom": cutoff})


def _groups_by_distance(pos_A, box_A, species, centre, ligand, cutoff, path):
    """Anion groups from centre/ligand species and a cutoff (Å) through :func:`anionmotion.find_polyanions`."""
    from ..analysis.polyanions import find_polyanions
    from ..trajectory import from_arrays

    traj = from_arrays(pos_A[None], box_A[None], times=[0.0], species=list(species), style="wrapped")
    pa = find_polyanions(traj, center=centre, ligand=ligand, cutoff=cutoff)
    if pa.is_cluster:
        raise OptionError(f"{path}: anions without a centre atom are not supported by the constraint modes; "
                          "give a centre species")
    return [np.asarray(m, dtype=np.int64) for m in pa.members]
