"""The four constraint modes of constrained MD (SPEC §8, paper 000) as OpenMM forces.

=====  =======================================  ===============================================
mode   removes from every anion                 realisation
=====  =======================================  ===============================================
UC     nothing                                  no extra force; ``CMMotionRemover`` on
RC     the 3 rigid-body rotations               rotational restraint (Eckart or OpenMM's
                                                ``OrientationRestraintForce``); ``CMMotionRemover`` on
RTC    rotations + centre-of-mass translation   rotational restraint + periodic COM tether; no ``CMMotionRemover``
RTVC   everything                               mass 0 for every anion atom; no ``CMMotionRemover``
=====  =======================================  ===============================================

Everything here except :func:`apply_mode` is plain numpy and can be tested
without OpenMM or dynamics.  Positions and boxes are in nm (OpenMM's units),
masses in amu, energies in kJ/mol.

Notes
-----
Eckart rotational restraint (one ``CustomCompoundBondForce`` bond per anion):

.. math::  E_\\mathrm{rot} = \\tfrac{k_\\mathrm{rot}}{2} \\Bigl|\\sum_i \\mathbf c_i \\times \\mathbf r_i\\Bigr|^2,
           \\qquad \\mathbf c_i = m_i \\mathbf a_i,

with :math:`\\mathbf a_i` the reference position of atom *i* relative to the
reference centre of mass.  Because :math:`\\sum_i \\mathbf c_i = 0` the energy is
exactly invariant under any translation of the anion (no periodic handling is
needed) and zero at the reference.  A small rotation θ about the unit axis
**n** costs :math:`\\tfrac{k}{2}\\,θ^2 |\\mathbf I\\mathbf n|^2`, so the restraint
adds a libration at :math:`ω = \\sqrt{k I}` (SO4, k = 1e4: ≈ 517 cm⁻¹).

Orientation restraint (``rc_backend="orientation"``: one OpenMM
``OrientationRestraintForce`` per anion; OpenMM 8.6.1 has it):

.. math::  E_\\mathrm{or} = 2 k_\\mathrm{or} \\sin^2(θ/2) ≈ \\tfrac{k_\\mathrm{or}}{2} θ^2,

θ the angle of the rotation that best superimposes the reference on the anion
(equal weights, centroids subtracted).  It is translation-invariant too, and a
small rotation about **n** costs :math:`\\tfrac{k_\\mathrm{or}}{2} θ^2`, so its
libration lies at :math:`ω = \\sqrt{k_\\mathrm{or}/I_n}`.  ``k_rot`` keeps its
meaning for both backends: each anion gets :math:`k_\\mathrm{or} = k_\\mathrm{rot}
I_\\max I_\\min`, so that its highest restraint line,
:math:`\\sqrt{k_\\mathrm{or}/I_\\min} = \\sqrt{k_\\mathrm{rot} I_\\max}`, is the Eckart one
(identical spectra for spherical tops such as SO4, PS4, ClO4).

COM tether (one mass-weighted group per anion in a ``CustomCentroidBondForce``
with periodic boundary conditions):
:math:`E_\\mathrm{com} = \\tfrac{k_\\mathrm{com}}{2} |\\mathbf R - \\mathbf R_0|^2_\\mathrm{min.\\,image}`,
:math:`ω = \\sqrt{k_\\mathrm{com}/M}` (SO4, k = 1e6: ≈ 541 cm⁻¹).

References
----------
SPEC §8; ``MD-DESIGN.md`` (the design measured on a prototype).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import AnionmotionWarning, OptionError
from ._openmm import need_openmm, strip_nm

__all__ = ["MODES", "K_ROT_DEFAULT", "K_COM_DEFAULT", "ModeSetup", "check_mode", "check_groups", "make_whole",
           "kabsch_rotation", "rotation_angle", "fit_template", "reference_geometry", "eckart_coefficients",
           "eckart_energy", "com_tether_energy", "group_coms", "apply_mode", "count_dof", "libration_wavenumber",
           "stiffness_for_wavenumbers",
           "tether_wavenumber", "ROT_FORCE_GROUP", "COM_FORCE_GROUP", "RC_BACKENDS", "RC_BACKEND_DEFAULT",
           "check_rc_backend", "principal_moments", "orientation_constant", "orientation_energy",
           "orientation_libration_wavenumber"]

MODES = ("UC", "RC", "RTC", "RTVC")
"""The valid constraint modes, in the order of the mode decomposition (SPEC §8)."""

K_ROT_DEFAULT = 1.0e4
"""Default Eckart stiffness, kJ mol⁻¹ (amu nm²)⁻².

SO4: libration ≈ 517 cm⁻¹, RMS angle ≈ 2.9° at 900 K."""
K_COM_DEFAULT = 1.0e6
"""Default COM tether stiffness, kJ mol⁻¹ nm⁻² (SO4: ≈ 541 cm⁻¹, ≈ 0.05 Å RMS)."""

RC_BACKENDS = ("eckart", "orientation")
"""Realisations of the rotational restraint of RC/RTC: the Eckart restraint (``CustomCompoundBondForce``) or
OpenMM's ``OrientationRestraintForce`` (one per anion)."""
RC_BACKEND_DEFAULT = "eckart"
"""Default rotational-restraint backend, chosen from the comparison in docs/md.md
("RC backends: Eckart vs OrientationRestraintForce")."""

ROT_FORCE_GROUP = 30
"""OpenMM force group of the rotational restraint, either backend (its energy is read alone)."""
COM_FORCE_GROUP = 31
"""OpenMM force group of the COM tether."""

# ω (rad/ps) -> wavenumber (cm⁻¹): ν = ω / 2π THz, 1 THz = 33.356 cm⁻¹
_RADPS_TO_CM1 = 33.35640951981521 / (2.0 * math.pi)


def check_mode(mode) -> str:
    """Upper-case ``mode`` if it is one of UC, RC, RTC, RTVC; else an OptionError listing them."""
    m = str(mode).upper() if isinstance(mode, str) else mode
    if m not in MODES:
        raise OptionError(f"invalid mode {mode!r}; choose one of {', '.join(MODES)}")
    return m


def check_groups(groups, n_atoms):
    """Validate anion groups: lists of ≥ 2 distinct atom indices (centre first), no atom in two groups.

    Returns
    -------
    list of ndarray of int64
    """
    if groups is None or len(groups) == 0:
        raise OptionError("no anion groups given: a constraint mode needs at least one anion (centre first, "
                          "then its ligands)")
    out = []
    seen = np.full(n_atoms, -1, dtype=np.int64)
    for g, grp in enumerate(groups):
        idx = np.asarray(grp)
        if idx.ndim != 1 or idx.size < 2 or idx.dtype.kind not in "iu":
            raise OptionError(f"anion group {g} must be a list of at least 2 atom indices (centre first); "
                              f"got {list(np.ravel(grp))[:8]}")
        idx = idx.astype(np.int64)
        if idx.min() < 0 or idx.max() >= n_atoms:
            raise OptionError(f"anion group {g} has atom index {int(idx.max() if idx.max() >= n_atoms else idx.min())}"
                              f" outside 0..{n_atoms - 1}")
        if np.unique(idx).size != idx.size:
            raise OptionError(f"anion group {g} lists an atom twice: {idx.tolist()}")
        dup = seen[idx] >= 0
        if dup.any():
            a = int(idx[dup][0])
            raise OptionError(f"atom {a} is in anion groups {int(seen[a])} and {g}; each atom belongs to one anion")
        seen[idx] = g
        out.append(idx)
    return out


def _box_matrix(box):
    b = strip_nm(box, "box")
    if b.shape == (3,):
        b = np.diag(b)
    if b.shape != (3, 3) or not np.all(np.isfinite(b)) or abs(np.linalg.det(b)) < 1e-12:
        raise OptionError(f"box must be 3 lengths or 3 vectors (rows a, b, c, nm) spanning a volume; got {b.tolist()}")
    return b


def make_whole(positions, box, groups):
    """Copy of ``positions`` with every anion's ligands moved to the periodic image nearest its centre.

    Parameters
    ----------
    positions : array_like, shape (n_atoms, 3), nm
    box : array_like, shape (3, 3) (rows a, b, c) or (3,), nm
    groups : list of int sequences, centre first

    Returns
    -------
    ndarray, shape (n_atoms, 3), float64, nm
    """
    pos = np.array(strip_nm(positions), dtype=np.float64)
    b = _box_matrix(box)
    inv = np.linalg.inv(b)
    for grp in groups:
        grp = np.asarray(grp)
        d = pos[grp[1:]] - pos[grp[0]]
        s = d @ inv
        pos[grp[1:]] = pos[grp[0]] + (s - np.round(s)) @ b
    return pos


def kabsch_rotation(P, Q, w=None):
    """Rotation matrices R (proper, det +1) minimising Σ_i w_i |R p_i − q_i|² for centred point sets.

    Parameters
    ----------
    P, Q : ndarray, shape (..., n, 3)
        Centred reference and target coordinates (any length unit).
    w : ndarray, shape (n,), optional
        Weights (e.g. masses); equal when None.

    Returns
    -------
    ndarray, shape (..., 3, 3)
        ``R`` such that ``Q ≈ P @ R.T``.
    """
    P = np.asarray(P, dtype=np.float64)
    Q = np.asarray(Q, dtype=np.float64)
    if w is None:
        w = np.ones(P.shape[-2])
    H = np.einsum("...ni,n,...nj->...ij", P, np.asarray(w, dtype=np.float64), Q)
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.swapaxes(Vt, -1, -2) @ np.swapaxes(U, -1, -2)))
    d = np.where(d == 0, 1.0, d)
    D = np.zeros(H.shape)
    D[..., 0, 0] = 1.0
    D[..., 1, 1] = 1.0
    D[..., 2, 2] = d
    return np.swapaxes(Vt, -1, -2) @ D @ np.swapaxes(U, -1, -2)


def rotation_angle(R):
    """Rotation angle (degrees, 0..180) of rotation matrices ``R`` (..., 3, 3)."""
    tr = np.trace(R, axis1=-2, axis2=-1)
    return np.degrees(np.arccos(np.clip((tr - 1.0) / 2.0, -1.0, 1.0)))


def fit_template(template, current, masses):
    """Place an ideal geometry onto a (whole) anion: Kabsch-rotated, at the anion's centre of mass.

    Parameters
    ----------
    template : ndarray, shape (n, 3), nm
        Ideal geometry, atoms in the group's order (any origin).
    current : ndarray, shape (n, 3), nm
        The anion now (made whole).
    masses : ndarray, shape (n,), amu

    Returns
    -------
    ndarray, shape (n, 3), nm
    """
    m = np.asarray(masses, dtype=np.float64)
    t = np.asarray(template, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if t.shape != c.shape:
        raise OptionError(f"template has shape {t.shape} but the anion has {c.shape[0]} atoms")
    tc = t - (m @ t) / m.sum()
    com = (m @ c) / m.sum()
    R = kabsch_rotation(tc, c - com, m)
    return tc @ R.T + com


def reference_geometry(positions, masses, groups, *, templates=None):
    """Reference geometry of each anion at switch-on (SPEC §8; MD-DESIGN "reference geometry").

    The anion as it is now (made whole beforehand), or, when an ideal template
    is given for it, the template Kabsch-fitted onto it (same centre of mass).

    Returns
    -------
    list of ndarray, each shape (n_group, 3), nm
    """
    pos = np.asarray(positions, dtype=np.float64)
    m = np.asarray(masses, dtype=np.float64)
    refs = []
    for g, grp in enumerate(groups):
        cur = pos[grp]
        t = None if templates is None else templates[g]
        refs.append(cur.copy() if t is None else fit_template(t, cur, m[grp]))
    return refs


def eckart_coefficients(reference, masses):
    """Eckart vectors c_i = m_i (a_i − A), shape (n, 3), amu·nm; they sum to zero."""
    ref = np.asarray(reference, dtype=np.float64)
    m = np.asarray(masses, dtype=np.float64)
    if np.any(m <= 0):
        raise OptionError("the Eckart restraint needs positive masses for every anion atom")
    com = (m @ ref) / m.sum()
    c = m[:, None] * (ref - com)
    return c - c.sum(axis=0) / len(c)  # Σ c_i = 0 to the last bit


def eckart_energy(positions, coefficients, k_rot=K_ROT_DEFAULT):
    """Eckart restraint energy k/2 |Σ c_i × r_i|² (kJ/mol) of one anion (or a batch).

    Parameters
    ----------
    positions : ndarray, shape (..., n, 3), nm
    coefficients : ndarray, shape (n, 3), amu·nm
    k_rot : float, kJ mol⁻¹ (amu nm²)⁻²
    """
    L = np.cross(np.asarray(coefficients, dtype=np.float64), np.asarray(positions, dtype=np.float64)).sum(axis=-2)
    return 0.5 * k_rot * np.sum(L * L, axis=-1)


def group_coms(positions, masses, groups):
    """Centres of mass (nm) of whole anions, shape (n_groups, 3)."""
    pos = np.asarray(positions, dtype=np.float64)
    m = np.asarray(masses, dtype=np.float64)
    return np.array([(m[g] @ pos[g]) / m[g].sum() for g in groups])


def com_tether_energy(positions, masses, groups, reference_coms, box, k_com=K_COM_DEFAULT):
    """COM tether energy Σ k/2 |R − R0|² with the minimum image (kJ/mol), as OpenMM computes it.

    The anions must be whole; the COM of each anion is compared with its
    reference through the minimum image of ``box`` (nm).
    """
    b = _box_matrix(box)
    d = group_coms(positions, masses, groups) - np.asarray(reference_coms, dtype=np.float64)
    s = d @ np.linalg.inv(b)
    d = (s - np.round(s)) @ b
    return 0.5 * k_com * float(np.sum(d * d))


def inertia_max(reference, masses):
    """Largest principal moment of inertia (amu nm²) of a reference geometry."""
    ref = np.asarray(reference, dtype=np.float64)
    m = np.asarray(masses, dtype=np.float64)
    a = ref - (m @ ref) / m.sum()
    I = np.eye(3) * np.sum(m * np.sum(a * a, axis=1)) - np.einsum("n,ni,nj->ij", m, a, a)
    return float(np.linalg.eigvalsh(I).max())


def principal_moments(reference, masses):
    """Principal moments of inertia (amu nm², ascending, shape (3,)) of a geometry about its centre of mass."""
    ref = np.asarray(reference, dtype=np.float64)
    m = np.asarray(masses, dtype=np.float64)
    a = ref - (m @ ref) / m.sum()
    I = np.eye(3) * np.sum(m * np.sum(a * a, axis=1)) - np.einsum("n,ni,nj->ij", m, a, a)
    return np.linalg.eigvalsh(I)


def check_rc_backend(name) -> str:
    """Lower-case ``name`` if it is a rotational-restraint backend (eckart, orientation); else an OptionError."""
    b = name.lower() if isinstance(name, str) else name
    if b not in RC_BACKENDS:
        raise OptionError(f"invalid rc_backend {name!r}; choose one of {', '.join(RC_BACKENDS)}")
    return b


def orientation_constant(k_rot, reference, masses):
    """Force constant (kJ/mol) of one anion's ``OrientationRestraintForce`` equivalent to the Eckart ``k_rot``.

    k_or = k_rot · I_max · I_min, so that the highest restraint line of the orientation restraint,
    √(k_or / I_min), equals the highest Eckart line √(k_rot I_max) (equal for all three axes of a
    spherical top).

    Parameters
    ----------
    k_rot : float, kJ mol⁻¹ (amu nm²)⁻²
    reference : ndarray, shape (n, 3), nm
    masses : ndarray, shape (n,), amu

    Returns
    -------
    float, kJ/mol (per rad², the small-angle harmonic constant)
    """
    I = principal_moments(reference, masses)
    if not I[0] > 1e-12 * max(I[-1], 1e-300):
        raise OptionError("the orientation restraint needs an anion with three non-zero moments of inertia "
                          f"(a linear anion has I_min = {I[0]:.3g} amu nm²); use rc_backend='eckart'")
    return float(k_rot * I[-1] * I[0])


def orientation_energy(positions, reference, k):
    """Energy 2 k sin²(θ/2) (kJ/mol) of OpenMM's ``OrientationRestraintForce``, as it computes it.

    θ is the angle of the proper rotation that best superimposes the reference on the positions with
    equal weights after both are centred on their centroids (the quaternion fit of Coutsias et al.,
    J. Comput. Chem. 25, 1849 (2004), here by the equivalent Kabsch SVD): 2k sin²(θ/2) = k (3 − tr R)/2.

    Parameters
    ----------
    positions : ndarray, shape (..., n, 3), nm
    reference : ndarray, shape (n, 3), nm
    k : float, kJ/mol

    Returns
    -------
    float or ndarray, kJ/mol
    """
    x = np.asarray(positions, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    R = kabsch_rotation(ref - ref.mean(axis=0), x - x.mean(axis=-2, keepdims=True))
    return 0.5 * k * (3.0 - np.trace(R, axis1=-2, axis2=-1))


def orientation_libration_wavenumber(k_or, inertia):
    """Orientation-restraint libration wavenumber (cm⁻¹), ω = √(k_or / I), k_or in kJ/mol, I in amu nm²."""
    return math.sqrt(k_or / inertia) * _RADPS_TO_CM1


def libration_wavenumber(k_rot, inertia):
    """Restraint libration wavenumber (cm⁻¹), ω = √(k I), for a moment of inertia in amu nm²."""
    return math.sqrt(k_rot * inertia) * _RADPS_TO_CM1


def tether_wavenumber(k_com, mass):
    """COM tether wavenumber (cm⁻¹), ω = √(k/M), for a mass in amu."""
    return math.sqrt(k_com / mass) * _RADPS_TO_CM1


def stiffness_for_wavenumbers(positions, box, groups, masses, *, libration_cm1=None, tether_cm1=None):
    """Stiffnesses whose restraint lines lie at (or, for the other anions, below) target wavenumbers.

    Parameters
    ----------
    positions : array_like, shape (n_atoms, 3), nm
    box : array_like, shape (3, 3) or (3,), nm
    groups : list of int sequences, centre first
    masses : array_like, shape (n_atoms,), amu
    libration_cm1, tether_cm1 : float, optional, cm⁻¹
        Targets for the Eckart libration ω = √(k_rot I) and the tether ω = √(k_com / M).  The same
        k_rot serves the orientation backend: :func:`orientation_constant` maps it so that each anion's
        highest orientation-restraint line equals its Eckart line.

    Returns
    -------
    (k_rot, k_com) : floats or None
        kJ mol⁻¹ (amu nm²)⁻² and kJ mol⁻¹ nm⁻²; None for a target not given.  k_rot uses the largest
        principal moment of inertia and k_com the lightest anion, so no anion's line exceeds its target.
    """
    m = np.asarray(masses, dtype=np.float64)
    groups = check_groups(groups, m.size)
    whole = make_whole(positions, box, groups)
    k_rot = k_com = None
    for name, w in (("libration_cm1", libration_cm1), ("tether_cm1", tether_cm1)):
        if w is not None and not (np.isfinite(w) and w > 0):
            raise OptionError(f"{name} must be a positive wavenumber in cm⁻¹; got {w}")
    if libration_cm1 is not None:
        inertia = max(inertia_max(whole[g], m[g]) for g in groups)
        k_rot = (libration_cm1 / _RADPS_TO_CM1) ** 2 / inertia
    if tether_cm1 is not None:
        k_com = (tether_cm1 / _RADPS_TO_CM1) ** 2 * min(m[g].sum() for g in groups)
    return k_rot, k_com


@dataclass
class ModeSetup:
    """What :func:`apply_mode` did to a System.

    Attributes
    ----------
    mode : str
    groups : list of ndarray of int64
    positions : ndarray, shape (n_atoms, 3), float64, nm
        Positions with every anion made whole: give these to ``setPositions``.
    references : list of ndarray (n_group, 3), nm
        Reference geometries (RC/RTC), else the whole anions at switch-on.
    reference_coms : ndarray, shape (n_groups, 3), nm
    masses : ndarray, shape (n_atoms,), amu
        The original masses (before RTVC zeroed the anions).
    k_rot, k_com : float
        Stiffnesses used (kJ mol⁻¹ (amu nm²)⁻², kJ mol⁻¹ nm⁻²), NaN when not used by the mode.
    rc_backend : str
        ``eckart`` or ``orientation`` (the rotational restraint of RC/RTC).
    k_orientation : ndarray, shape (n_groups,), kJ/mol
        Force constants of the ``OrientationRestraintForce`` of each anion (orientation backend, RC/RTC),
        else empty.
    restraint_wavenumbers : dict
        ``{"libration_cm1": …, "tether_cm1": …}`` highest restraint frequencies (cm⁻¹).
    n_dof : int
        Degrees of freedom the thermostat sees (for temperatures from velocities).
    cm_motion_remover : bool
    """

    mode: str
    groups: list
    positions: np.ndarray
    references: list
    reference_coms: np.ndarray
    masses: np.ndarray
    k_rot: float
    k_com: float
    restraint_wavenumbers: dict = field(default_factory=dict)
    n_dof: int = 0
    cm_motion_remover: bool = False
    rc_backend: str = RC_BACKEND_DEFAULT
    k_orientation: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _fastest_bond_wavenumber(system, atoms, masses):
    """Highest harmonic-bond wavenumber (cm⁻¹) among bonds inside the anions, or None."""
    openmm = need_openmm()
    inside = np.zeros(system.getNumParticles(), dtype=bool)
    inside[atoms] = True
    best = None
    for f in system.getForces():
        if isinstance(f, openmm.HarmonicBondForce):
            for b in range(f.getNumBonds()):
                i, j, _, k = f.getBondParameters(b)
                if inside[i] and inside[j]:
                    mu = masses[i] * masses[j] / (masses[i] + masses[j])
                    w = math.sqrt(k.value_in_unit(k.unit) / mu) * _RADPS_TO_CM1 if hasattr(k, "unit") \
                        else math.sqrt(k / mu) * _RADPS_TO_CM1
                    best = w if best is None else max(best, w)
    return best


def count_dof(system):
    """Degrees of freedom of an OpenMM System: 3·(massive particles) − constraints − 3 with a CMMotionRemover."""
    openmm = need_openmm()
    n = 0
    massive = np.array([system.getParticleMass(i).value_in_unit(openmm.unit.dalton) > 0
                        for i in range(system.getNumParticles())])
    n = 3 * int(massive.sum())
    for c in range(system.getNumConstraints()):
        i, j, _ = system.getConstraintParameters(c)
        if massive[i] or massive[j]:
            n -= 1
    if any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces()):
        n -= 3
    return n


def apply_mode(system, positions, box, groups, mode, *, k_rot=K_ROT_DEFAULT, k_com=K_COM_DEFAULT, templates=None,
               check_frequencies=True, rc_backend=RC_BACKEND_DEFAULT):
    """Apply a constraint mode to an OpenMM ``System`` in place (SPEC §8).

    Parameters
    ----------
    system : openmm.System
        Modified in place: restraint forces added, masses zeroed (RTVC), and
        ``CMMotionRemover`` added (UC, RC) or removed (RTC, RTVC).
    positions : Quantity or array_like, shape (n_atoms, 3), nm
        Positions at switch-on (the reference); anions may be split by the box.
    box : Quantity or array_like, shape (3, 3) rows a, b, c, or (3,), nm
    groups : list of int sequences
        Atom indices of each anion, centre first.
    mode : {"UC", "RC", "RTC", "RTVC"}
    k_rot : float, optional
        Eckart stiffness, kJ mol⁻¹ (amu nm²)⁻² (default 1e4); with ``rc_backend="orientation"`` each anion's
        force constant is :func:`orientation_constant` (same highest libration line).
    k_com : float, optional
        COM tether stiffness, kJ mol⁻¹ nm⁻² (default 1e6).
    templates : list of (ndarray (n_group, 3) nm or None), optional
        Ideal geometry of each anion, Kabsch-fitted onto it to make the reference;
        None uses the anion as it is at switch-on.
    check_frequencies : bool
        Refuse stiffnesses whose restraint mode is faster than the fastest
        intra-anion harmonic bond (then the time step is no longer safe).
    rc_backend : {"eckart", "orientation"}
        Rotational restraint of RC/RTC: the Eckart restraint (one ``CustomCompoundBondForce``) or one
        OpenMM ``OrientationRestraintForce`` per anion (both translation-invariant, both in force group
        :data:`ROT_FORCE_GROUP`).  Ignored in UC and RTVC.

    Returns
    -------
    ModeSetup
        Includes the whole-molecule positions to pass to ``Context.setPositions``.

    Raises
    ------
    OptionError
        Bad mode (the message lists the valid ones), bad groups, non-positive
        stiffness, a restraint faster than the anion's bonds, or constraints on
        atoms that RTVC would make massless.
    """
    openmm = need_openmm()
    mode = check_mode(mode)
    rc_backend = check_rc_backend(rc_backend)
    n = system.getNumParticles()
    groups = check_groups(groups, n)
    pos = strip_nm(positions)
    if pos.shape != (n, 3):
        raise OptionError(f"positions must have shape ({n}, 3) for this System; got {pos.shape}")
    b = _box_matrix(box)
    for name, k in (("k_rot", k_rot), ("k_com", k_com)):
        if not (np.isfinite(k) and k > 0):
            raise OptionError(f"{name} must be a positive stiffness; got {k}")
    masses = np.array([system.getParticleMass(i).value_in_unit(openmm.unit.dalton) for i in range(n)])
    whole = make_whole(pos, b, groups)
    if templates is not None and len(templates) != len(groups):
        raise OptionError(f"templates must give one geometry (or None) per anion group: {len(groups)} groups, "
                          f"{len(templates)} templates")
    refs = reference_geometry(whole, masses, groups, templates=templates)
    ref_coms = group_coms(whole, masses, groups)

    # --- CMMotionRemover: on in UC/RC, off in RTC/RTVC
    for i in reversed(range(system.getNumForces())):
        if isinstance(system.getForce(i), openmm.CMMotionRemover):
            system.removeForce(i)
    cmm = mode in ("UC", "RC")
    if cmm:
        system.addForce(openmm.CMMotionRemover())

    wn = {}
    if mode in ("RC", "RTC"):
        if np.any(masses[np.concatenate(groups)] <= 0):
            raise OptionError(f"mode {mode} needs positive masses on every anion atom")
        lib = max(libration_wavenumber(k_rot, inertia_max(r, masses[g])) for r, g in zip(refs, groups))
        wn["libration_cm1"] = lib  # the same for both backends (orientation_constant)
        if rc_backend == "orientation":
            if not hasattr(openmm, "OrientationRestraintForce"):
                raise OptionError(f"rc_backend 'orientation' needs OpenMM's OrientationRestraintForce, which OpenMM "
                                  f"{openmm.__version__} lacks; upgrade OpenMM or use rc_backend='eckart'")
            k_or = np.array([orientation_constant(k_rot, r, masses[g]) for r, g in zip(refs, groups)])
        if mode == "RTC":
            wn["tether_cm1"] = max(tether_wavenumber(k_com, masses[g].sum()) for g in groups)
        if check_frequencies:
            fast = _fastest_bond_wavenumber(system, np.concatenate(groups), masses)
            if fast is not None:
                for key, w in wn.items():
                    if w > fast:
                        what = "k_rot" if key.startswith("lib") else "k_com"
                        raise OptionError(f"{what} too stiff: its restraint mode ({w:.0f} cm⁻¹) would be faster "
                                          f"than the fastest anion bond ({fast:.0f} cm⁻¹); lower {what}")
        if rc_backend == "orientation":
            _add_orientation(openmm, system, groups, refs, k_or)
        else:
            _add_eckart(openmm, system, groups, refs, masses, k_rot)
        if mode == "RTC":
            _add_com_tether(openmm, system, groups, ref_coms, masses, k_com)
    elif mode == "RTVC":
        atoms = np.concatenate(groups)
        inside = np.zeros(n, dtype=bool)
        inside[atoms] = True
        for c in range(system.getNumConstraints()):
            i, j, _ = system.getConstraintParameters(c)
            if inside[i] or inside[j]:
                raise OptionError(f"mode RTVC makes anion atoms massless, but constraint {c} joins atoms {i} and {j}; "
                                  "OpenMM does not allow constraints on massless atoms")
        for a in atoms:
            system.setParticleMass(int(a), 0.0)
    return ModeSetup(mode=mode, groups=groups, positions=whole, references=refs, reference_coms=ref_coms,
                     masses=masses, k_rot=float(k_rot) if mode in ("RC", "RTC") else float("nan"),
                     k_com=float(k_com) if mode == "RTC" else float("nan"), restraint_wavenumbers=wn,
                     n_dof=count_dof(system), cm_motion_remover=cmm, rc_backend=rc_backend,
                     k_orientation=k_or if mode in ("RC", "RTC") and rc_backend == "orientation" else np.zeros(0))


def _add_eckart(openmm, system, groups, refs, masses, k_rot):
    by_size = {}
    for g, grp in enumerate(groups):
        by_size.setdefault(len(grp), []).append(g)
    for size, members in sorted(by_size.items()):
        terms = []
        for ax, (p, q) in zip("xyz", (("y", "z"), ("z", "x"), ("x", "y"))):
            # (c × r)_x = c_y z − c_z y, and cyclic
            terms.append("L%s = %s;" % (ax, " + ".join(f"c{p}{i}*{q}{i} - c{q}{i}*{p}{i}" for i in range(1, size + 1))))
        expr = "0.5*k_rot*(Lx^2 + Ly^2 + Lz^2); " + " ".join(terms)
        f = openmm.CustomCompoundBondForce(size, expr)
        f.addGlobalParameter("k_rot", float(k_rot))
        for i in range(1, size + 1):
            for ax in "xyz":
                f.addPerBondParameter(f"c{ax}{i}")
        for g in members:
            c = eckart_coefficients(refs[g], masses[groups[g]])
            f.addBond([int(a) for a in groups[g]], [float(v) for v in c.ravel()])
        f.setUsesPeriodicBoundaryConditions(False)
        f.setForceGroup(ROT_FORCE_GROUP)
        f.setName("anionmotion Eckart rotational restraint")
        system.addForce(f)


def _add_orientation(openmm, system, groups, refs, k_or):
    """One ``OrientationRestraintForce`` per anion (the force fits one rigid transformation per group).

    Its reference list spans every particle of the System (OpenMM's API); only the anion's entries are
    used, centred here on their centroid.  The force has no periodic handling: like the Eckart restraint
    it is translation-invariant, so whole anions (given to ``setPositions``) stay whole for it.
    """
    n = system.getNumParticles()
    zero = openmm.Vec3(0.0, 0.0, 0.0)
    for g, grp in enumerate(groups):
        ref = refs[g] - refs[g].mean(axis=0)
        full = [zero] * n
        for a, p in zip(grp, ref):
            full[int(a)] = openmm.Vec3(*(float(v) for v in p))
        f = openmm.OrientationRestraintForce(float(k_or[g]), full, [int(a) for a in grp])
        f.setForceGroup(ROT_FORCE_GROUP)
        f.setName(f"anionmotion orientation restraint {g}")
        system.addForce(f)


def _add_com_tether(openmm, system, groups, ref_coms, masses, k_com):
    f = openmm.CustomCentroidBondForce(1, "0.5*k_com*pointdistance(x1, y1, z1, x0, y0, z0)^2")
    f.addGlobalParameter("k_com", float(k_com))
    for p in ("x0", "y0", "z0"):
        f.addPerBondParameter(p)
    for g, grp in enumerate(groups):
        gi = f.addGroup([int(a) for a in grp], [float(m) for m in masses[grp]])
        f.addBond([gi], [float(v) for v in ref_coms[g]])
    f.setUsesPeriodicBoundaryConditions(True)
    f.setForceGroup(COM_FORCE_GROUP)
    f.setName("anionmotion COM tether")
    system.addForce(f)


def warn_short_reequilibration(ps):
    """Warn when the re-equilibration after switching a mode on is shorter than 5 ps (MD-DESIGN)."""
    if ps < 5.0:
        warnings.warn(f"re-equilibration of {ps} ps after switching the mode on is shorter than the 5 ps "
                      "recommended: the temperature drops when energy flows into the restraints",
                      ModeWarning, stacklevel=3)


class ModeWarning(AnionmotionWarning):
    """A constrained-MD setting is outside the safe range measured in MD-DESIGN."""
