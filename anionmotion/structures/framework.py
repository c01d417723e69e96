"""Framework connectivity and the descriptors VPA and AAL of a crystal structure (paper 003; SPEC §10).

Paper 003 (Yang, Guan, Ouyang, Zhu, *Chem. Mater.* 2024, 36, 3776) screens Na compounds for an
**isolated framework**: "the non-Li/Na cation polyhedrons (polyanions/cluster-ions) in these structures
are disconnected, and never share any common corners, edges, or faces"; its Fig. 1c sorts frameworks
into isolated, corner-sharing, edge-sharing and "others (mixed type)".  This module implements that
definition on one :class:`~anionmotion.structures.Structure`:

1. **Roles.**  Atoms of the anion-forming species (:data:`ANION_SPECIES`: O S Se Te N F Cl Br I H) are
   *ligands* (anions) unless bonded to an atom of a more electronegative anion-forming species — then
   they are polyhedron centres (S in SO4²⁻, N in NO3⁻, Cl in ClO4⁻, I in IO3⁻; the central S of S2O3²⁻,
   while its terminal S stays a ligand).  H bonded to a more electronegative atom (O–H, N–H) has one
   bond and makes no polyhedron: it is neither a centre nor a ligand.
2. **Polyhedra.**  Every atom that is not a ligand, not of a mobile-cation species (``mobile``, the
   species the screen is about: Na in paper 003) and not such an H is a framework centre.  Its ligands
   are, per ligand species l, the ligand atoms within ``(1 + tol) × d_min`` of it (``d_min`` its shortest
   distance to an atom of l, ``tol`` = 0.25) and within the bond limit ``bond_scale × (r_c + r_l)``
   (Cordero covalent radii, ``bond_scale`` = 1.25), over every periodic image.
3. **Sharing.**  Two polyhedra — any two centres, or a centre and its own periodic image — that hold
   1, 2 or ≥ 3 common ligand atoms (the same atom in the same image) share a corner, an edge or a face.
   Pairs are counted once per lattice translation, so the counts per cell grow with a supercell and the
   counts per polyhedron do not.
4. **Class.**  ``isolated`` when no two polyhedra share a ligand; ``corner-sharing``, ``edge-sharing``
   or ``face-sharing`` when every sharing pair is of that one kind; ``mixed`` when several kinds occur
   (``most_connected`` names the most connected kind present); ``none`` when the structure has no
   framework polyhedron at all (e.g. Na3OCl: every cation is mobile).

Descriptors (paper 003 Fig. 2b,c, its two most important features for rotation):

* **VPA**, volume per atom = V_cell / N_atoms (Å³);
* **AAL**, "average anion distance", read as the size of the polyanion (SPEC §4, §10: the average
  centre–ligand distance): the mean centre–ligand bond length over every framework polyhedron (Å).  In an
  isolated framework every polyhedron is a polyanion, so this is the mean polyanion bond length.

:func:`connectivity_reference` recomputes the sharing with plain Python loops over an explicit block of
periodic images (the test oracle of :func:`framework_connectivity`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from ..errors import OptionError

__all__ = ["ANION_SPECIES", "ELECTRONEGATIVITY", "COVALENT_RADII_A", "DEFAULT_TOL", "DEFAULT_BOND_SCALE",
           "SHARING_KINDS", "Polyhedra", "FrameworkConnectivity", "ligand_roles", "framework_polyhedra",
           "framework_connectivity", "connectivity_reference", "volume_per_atom", "average_anion_length",
           "classify_sharing", "periodic_pairs"]

#: species that form anions (ligands) in the structures the package is about
ANION_SPECIES = ("O", "S", "Se", "Te", "N", "F", "Cl", "Br", "I", "H")

#: Pauling electronegativities of :data:`ANION_SPECIES` (decide which of two bonded anion-formers is the centre)
ELECTRONEGATIVITY = {"H": 2.20, "N": 3.04, "O": 3.44, "F": 3.98, "S": 2.58, "Cl": 3.16, "Se": 2.55, "Br": 2.96,
                     "Te": 2.10, "I": 2.66}

#: covalent radii (Å) of Cordero et al., Dalton Trans. 2008, 2832 (as tabulated in ase.data.covalent_radii)
COVALENT_RADII_A = {
    "H": 0.31, "He": 0.28, "Li": 1.28, "Be": 0.96, "B": 0.84, "C": 0.76, "N": 0.71, "O": 0.66, "F": 0.57,
    "Ne": 0.58, "Na": 1.66, "Mg": 1.41, "Al": 1.21, "Si": 1.11, "P": 1.07, "S": 1.05, "Cl": 1.02, "Ar": 1.06,
    "K": 2.03, "Ca": 1.76, "Sc": 1.70, "Ti": 1.60, "V": 1.53, "Cr": 1.39, "Mn": 1.39, "Fe": 1.32, "Co": 1.26,
    "Ni": 1.24, "Cu": 1.32, "Zn": 1.22, "Ga": 1.22, "Ge": 1.20, "As": 1.19, "Se": 1.20, "Br": 1.20, "Kr": 1.16,
    "Rb": 2.20, "Sr": 1.95, "Y": 1.90, "Zr": 1.75, "Nb": 1.64, "Mo": 1.54, "Tc": 1.47, "Ru": 1.46, "Rh": 1.42,
    "Pd": 1.39, "Ag": 1.45, "Cd": 1.44, "In": 1.42, "Sn": 1.39, "Sb": 1.39, "Te": 1.38, "I": 1.39, "Xe": 1.40,
    "Cs": 2.44, "Ba": 2.15, "La": 2.07, "Ce": 2.04, "Pr": 2.03, "Nd": 2.01, "Pm": 1.99, "Sm": 1.98, "Eu": 1.98,
    "Gd": 1.96, "Tb": 1.94, "Dy": 1.92, "Ho": 1.92, "Er": 1.89, "Tm": 1.90, "Yb": 1.87, "Lu": 1.87, "Hf": 1.75,
    "Ta": 1.70, "W": 1.62, "Re": 1.51, "Os": 1.44, "Ir": 1.41, "Pt": 1.36, "Au": 1.36, "Hg": 1.32, "Tl": 1.45,
    "Pb": 1.46, "Bi": 1.48, "Po": 1.40, "At": 1.50, "Rn": 1.50, "Fr": 2.60, "Ra": 2.21, "Ac": 2.15, "Th": 2.06,
    "Pa": 2.00, "U": 1.96, "Np": 1.90, "Pu": 1.87, "Am": 1.80, "Cm": 1.69,
}

DEFAULT_TOL = 0.25
"""Ligands of one species within (1 + tol) × the shortest centre–ligand distance of that species."""
DEFAULT_BOND_SCALE = 1.25
"""Bond limit = bond_scale × (r_centre + r_ligand), Cordero covalent radii."""

SHARING_KINDS = ("corner-sharing", "edge-sharing", "face-sharing")
"""Kinds of sharing, by the number of common ligands 1, 2, ≥ 3 (in this order: the most connected last)."""


def _radius(sym):
    try:
        return COVALENT_RADII_A[sym]
    except KeyError:
        raise OptionError(f"no covalent radius tabulated for species {sym!r} (framework connectivity needs one "
                          "for every element; known: H to Cm)") from None


def _perp_widths(cell):
    a, b, c = cell
    vol = abs(np.linalg.det(cell))
    return np.array([vol / np.linalg.norm(np.cross(b, c)), vol / np.linalg.norm(np.cross(c, a)),
                     vol / np.linalg.norm(np.cross(a, b))])


def periodic_pairs(frac_a, frac_b, cell, rmax):
    """Every pair (i, j, image n) with |r_b[j] + n·cell − r_a[i]| ≤ rmax, over all periodic images.

    Parameters
    ----------
    frac_a : ndarray, shape (n_a, 3)
        Fractional coordinates of the first set, wrapped into [0, 1).
    frac_b : ndarray, shape (n_b, 3)
        Fractional coordinates of the second set, wrapped into [0, 1).
    cell : ndarray, shape (3, 3), Å
        Rows a, b, c.
    rmax : float or ndarray of shape (n_a,), Å
        Largest distance (per atom of the first set when an array).

    Returns
    -------
    i : ndarray (n_pairs,), int64
    j : ndarray (n_pairs,), int64
    n : ndarray (n_pairs, 3), int64
        Lattice translation of atom j (the image at r_b[j] + n·cell).
    d : ndarray (n_pairs,), Å
        Distances.  Pairs with d = 0 (an atom with itself) are included when the sets overlap.

    Notes
    -----
    The images of the second set that lie within ``max(rmax)`` of the home cell (fractional coordinates
    within rmax / w_k of [0, 1], w_k the perpendicular widths) are gathered once and searched with a k-d
    tree, so the cost grows as n log n with the number of atoms, not as n_a × n_b × images.
    """
    from scipy.spatial import cKDTree

    frac_a = np.asarray(frac_a, dtype=np.float64).reshape(-1, 3)
    frac_b = np.asarray(frac_b, dtype=np.float64).reshape(-1, 3)
    cell = np.asarray(cell, dtype=np.float64)
    r = np.broadcast_to(np.asarray(rmax, dtype=np.float64), (len(frac_a),))
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3), np.int64), np.zeros(0))
    if len(frac_a) == 0 or len(frac_b) == 0:
        return empty
    rm = float(r.max())
    skin = rm / _perp_widths(cell) + 1e-9                  # fractional margin around the home cell
    reach = np.ceil(skin).astype(int)
    pts, idx, img = [], [], []
    for n in itertools.product(*(range(-k, k + 1) for k in reach)):
        f = frac_b + np.asarray(n, dtype=np.float64)
        keep = np.all((f >= -skin) & (f <= 1.0 + skin), axis=1)
        if keep.any():
            pts.append(f[keep])
            idx.append(np.nonzero(keep)[0])
            img.append(np.broadcast_to(np.asarray(n, dtype=np.int64), (int(keep.sum()), 3)))
    if not pts:
        return empty
    pts = np.concatenate(pts) @ cell
    idx = np.concatenate(idx).astype(np.int64)
    img = np.concatenate(img)
    tree = cKDTree(pts)
    xa = frac_a @ cell
    hits = tree.query_ball_point(xa, rm * (1.0 + 1e-12) + 1e-12)   # a hair wide; filtered exactly below
    counts = np.fromiter((len(h) for h in hits), dtype=np.int64, count=len(hits))
    if counts.sum() == 0:
        return empty
    i = np.repeat(np.arange(len(frac_a), dtype=np.int64), counts)
    k = np.fromiter((x for h in hits for x in h), dtype=np.int64, count=int(counts.sum()))
    d = np.linalg.norm(pts[k] - xa[i], axis=1)
    ok = d <= r[i]
    i, k, d = i[ok], k[ok], d[ok]
    return i, idx[k], img[k], d


def _wrapped(positions, cell):
    s = np.asarray(positions, dtype=np.float64) @ np.linalg.inv(cell)
    s -= np.floor(s)
    s[s >= 1.0] = 0.0
    return s


def ligand_roles(species, positions, cell, *, bond_scale=DEFAULT_BOND_SCALE):
    """Role of every atom: ``"ligand"``, ``"centre-anion"`` (an anion-former bonded to a more
    electronegative one: S in SO4), ``"bonded-H"`` (H bonded to a more electronegative atom) or ``"cation"``.

    Parameters
    ----------
    species : sequence of str
    positions : ndarray, shape (n, 3), Å
    cell : ndarray, shape (3, 3), Å
    bond_scale : float
        Bond limit factor on the sum of covalent radii.

    Returns
    -------
    ndarray, shape (n,), object
    """
    species = np.asarray(species, dtype=object)
    cell = np.asarray(cell, dtype=np.float64)
    frac = _wrapped(positions, cell)
    roles = np.array(["cation"] * len(species), dtype=object)
    formers = [s for s in ANION_SPECIES if np.any(species == s)]
    for s in formers:
        idx = np.nonzero(species == s)[0]
        roles[idx] = "ligand"
        stronger = [t for t in formers if ELECTRONEGATIVITY[t] > ELECTRONEGATIVITY[s]]
        bonded = np.zeros(len(idx), bool)
        for t in stronger:
            jdx = np.nonzero(species == t)[0]
            i, _, _, _ = periodic_pairs(frac[idx], frac[jdx], cell, bond_scale * (_radius(s) + _radius(t)))
            bonded[np.unique(i)] = True
        roles[idx[bonded]] = "bonded-H" if s == "H" else "centre-anion"
    return roles


@dataclass(frozen=True)
class Polyhedra:
    """The framework polyhedra of a structure.

    Attributes
    ----------
    centers : ndarray, shape (n_poly,), int64
        Atom index of every centre (ascending).
    center_species : ndarray, shape (n_poly,), object
    bond_center : ndarray, shape (n_bonds,), int64
        Polyhedron (row of ``centers``) of every centre–ligand bond.
    bond_ligand : ndarray, shape (n_bonds,), int64
        Atom index of the ligand.
    bond_image : ndarray, shape (n_bonds, 3), int64
        Lattice translation of the ligand (its position is the wrapped position + image·cell).
    bond_length : ndarray, shape (n_bonds,), Å
    coordination : ndarray, shape (n_poly,), int64
    bare : list of int
        Atom indices of non-mobile cations with no ligand within the bond limit (no polyhedron).
    mobile : tuple of str
        Species excluded as mobile.
    params : dict
        ``tol`` and ``bond_scale``.
    """

    centers: np.ndarray
    center_species: np.ndarray
    bond_center: np.ndarray
    bond_ligand: np.ndarray
    bond_image: np.ndarray
    bond_length: np.ndarray
    coordination: np.ndarray
    bare: list
    mobile: tuple
    params: dict = field(default_factory=dict)

    @property
    def n_polyhedra(self) -> int:
        return int(len(self.centers))

    def census(self, species) -> dict:
        """Polyhedron label → count, labels like ``PS4`` or ``NbCl6`` (mixed ligands: ``NbOCl4``)."""
        species = np.asarray(species, dtype=object)
        out = {}
        for p in range(self.n_polyhedra):
            lig = species[self.bond_ligand[self.bond_center == p]]
            parts = []
            for s in sorted(set(lig.tolist()), key=lambda x: -ELECTRONEGATIVITY.get(x, 0.0)):
                k = int(np.sum(lig == s))
                parts.append(f"{s}{k if k != 1 else ''}")
            label = f"{self.center_species[p]}{''.join(parts)}"
            out[label] = out.get(label, 0) + 1
        return dict(sorted(out.items()))


def framework_polyhedra(species, positions, cell, *, mobile=(), tol=DEFAULT_TOL, bond_scale=DEFAULT_BOND_SCALE,
                        roles=None) -> Polyhedra:
    """Polyhedra of the non-mobile cations (see the module docstring for the rule).

    Parameters
    ----------
    species : sequence of str
    positions : ndarray, shape (n, 3), Å
    cell : ndarray, shape (3, 3), Å
    mobile : sequence of str
        Mobile-cation species (no polyhedra; Na in paper 003).
    tol : float
        Ligands of one species within (1 + tol) × the centre's shortest distance to that species.
    bond_scale : float
        Bond limit = bond_scale × (r_centre + r_ligand), covalent radii.
    roles : ndarray, optional
        From :func:`ligand_roles` (computed when None).

    Returns
    -------
    Polyhedra
    """
    if not (np.isfinite(tol) and tol >= 0):
        raise OptionError(f"tol must be a non-negative number; got {tol}")
    if not (np.isfinite(bond_scale) and bond_scale > 0):
        raise OptionError(f"bond_scale must be a positive number; got {bond_scale}")
    species = np.asarray(species, dtype=object)
    cell = np.asarray(cell, dtype=np.float64)
    frac = _wrapped(positions, cell)
    mobile = tuple(mobile)
    if roles is None:
        roles = ligand_roles(species, positions, cell, bond_scale=bond_scale)
    is_lig = roles == "ligand"
    centre_mask = ((roles == "cation") | (roles == "centre-anion")) & ~np.isin(species, list(mobile))
    cidx = np.nonzero(centre_mask)[0]
    lig_species = sorted(set(species[is_lig].tolist()))
    b_c, b_l, b_n, b_d = [], [], [], []
    for cs in sorted(set(species[cidx].tolist())):
        rows = np.nonzero(species[cidx] == cs)[0]          # polyhedron rows of this centre species
        for ls in lig_species:
            lidx = np.nonzero(is_lig & (species == ls))[0]
            limit = bond_scale * (_radius(cs) + _radius(ls))
            i, j, n, d = periodic_pairs(frac[cidx[rows]], frac[lidx], cell, limit)
            if not len(i):
                continue
            dmin = np.full(len(rows), np.inf)
            np.minimum.at(dmin, i, d)
            keep = d <= (1.0 + tol) * dmin[i]
            b_c.append(rows[i[keep]])
            b_l.append(lidx[j[keep]])
            b_n.append(n[keep])
            b_d.append(d[keep])
    if b_c:
        bc, bl, bn, bd = np.concatenate(b_c), np.concatenate(b_l), np.concatenate(b_n), np.concatenate(b_d)
    else:
        bc, bl, bn, bd = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3), np.int64), np.zeros(0)
    cn = np.bincount(bc, minlength=len(cidx))
    bare = [int(a) for a in cidx[cn == 0]]
    # drop centres without ligands and renumber
    keep_rows = np.nonzero(cn > 0)[0]
    new = np.full(len(cidx), -1, dtype=np.int64)
    new[keep_rows] = np.arange(len(keep_rows))
    order = np.lexsort((bn[:, 2], bn[:, 1], bn[:, 0], bl, new[bc])) if len(bc) else np.zeros(0, np.int64)
    return Polyhedra(centers=cidx[keep_rows].astype(np.int64), center_species=species[cidx[keep_rows]],
                     bond_center=new[bc][order].astype(np.int64), bond_ligand=bl[order].astype(np.int64),
                     bond_image=bn[order].astype(np.int64), bond_length=bd[order],
                     coordination=cn[keep_rows].astype(np.int64), bare=bare, mobile=mobile,
                     params={"tol": float(tol), "bond_scale": float(bond_scale)})


def classify_sharing(counts):
    """Class from the numbers of common ligands of the sharing pairs.

    Parameters
    ----------
    counts : sequence of int
        Common ligands of every pair of polyhedra that share at least one.

    Returns
    -------
    connectivity : str
        ``isolated``, ``corner-sharing``, ``edge-sharing``, ``face-sharing`` or ``mixed``.
    most_connected : str or None
        The most connected kind present (None when isolated).
    """
    kinds = {SHARING_KINDS[min(int(c), 3) - 1] for c in counts if int(c) >= 1}
    if not kinds:
        return "isolated", None
    most = max(kinds, key=SHARING_KINDS.index)
    return (kinds.pop() if len(kinds) == 1 else "mixed"), most


@dataclass(frozen=True)
class FrameworkConnectivity:
    """How the framework polyhedra are connected.

    Attributes
    ----------
    connectivity : str
        ``isolated``, ``corner-sharing``, ``edge-sharing``, ``face-sharing``, ``mixed`` or ``none``
        (no framework polyhedron).
    most_connected : str or None
        The most connected kind of sharing present.
    pairs : ndarray, shape (n_pairs, 6), int64
        Rows (polyhedron p, polyhedron q, translation T of q (3 ints), common ligands), one per pair of
        polyhedra modulo lattice translations.
    counts : dict
        Sharing kind → number of pairs per cell.
    n_polyhedra : int
    """

    connectivity: str
    most_connected: object
    pairs: np.ndarray
    counts: dict
    n_polyhedra: int

    def per_polyhedron(self) -> dict:
        """Sharing kind → pairs per polyhedron (invariant under supercells)."""
        n = max(self.n_polyhedra, 1)
        return {k: v / n for k, v in self.counts.items()}


def framework_connectivity(poly: Polyhedra) -> FrameworkConnectivity:
    """Sharing between the polyhedra of :func:`framework_polyhedra` (numpy; the rule of the module docstring).

    Returns
    -------
    FrameworkConnectivity
    """
    if poly.n_polyhedra == 0:
        return FrameworkConnectivity("none", None, np.zeros((0, 6), np.int64), {k: 0 for k in SHARING_KINDS}, 0)
    bl, bc, bn = poly.bond_ligand, poly.bond_center, poly.bond_image
    # all ordered pairs of bonds of the same ligand atom
    order = np.argsort(bl, kind="stable")
    bl_s, bc_s, bn_s = bl[order], bc[order], bn[order]
    starts = np.flatnonzero(np.r_[True, bl_s[1:] != bl_s[:-1]])
    sizes = np.diff(np.r_[starts, len(bl_s)])
    keys = []
    for st, sz in zip(starts, sizes):        # per ligand atom (a handful of bonds each)
        if sz < 2:
            continue
        a, b = np.triu_indices(sz, k=1)
        p, q = bc_s[st + a], bc_s[st + b]
        t = bn_s[st + a] - bn_s[st + b]       # q translated by t shares this ligand with p at the origin
        keys.append(np.column_stack([p, q, t]))
    if keys:
        k = np.concatenate(keys)
        # same polyhedron (p == q, t == 0) is not a pair
        k = k[~((k[:, 0] == k[:, 1]) & ~k[:, 2:].any(axis=1))]
        # canonical orientation: (p, q, t) ~ (q, p, −t); keep the lexicographically smaller
        flip = np.column_stack([k[:, 1], k[:, 0], -k[:, 2:]])
        swap = np.array([tuple(f) < tuple(x) for f, x in zip(flip.tolist(), k.tolist())], dtype=bool) \
            if len(k) else np.zeros(0, bool)
        k[swap] = flip[swap]
        uniq, cnt = np.unique(k, axis=0, return_counts=True) if len(k) else (np.zeros((0, 5), np.int64),
                                                                              np.zeros(0, np.int64))
    else:
        uniq, cnt = np.zeros((0, 5), np.int64), np.zeros(0, np.int64)
    pairs = np.column_stack([uniq, cnt]).astype(np.int64) if len(uniq) else np.zeros((0, 6), np.int64)
    conn, most = classify_sharing(cnt.tolist())
    counts = {kind: int(np.sum(np.minimum(cnt, 3) == i + 1)) for i, kind in enumerate(SHARING_KINDS)}
    return FrameworkConnectivity(conn, most, pairs, counts, poly.n_polyhedra)


def connectivity_reference(species, positions, cell, *, mobile=(), tol=DEFAULT_TOL, bond_scale=DEFAULT_BOND_SCALE,
                           n_images=2):
    """Plain-loop twin of :func:`framework_polyhedra` + :func:`framework_connectivity` (test oracle).

    Builds the block of (2·n_images + 1)³ cells explicitly, finds every centre's ligands by looping over
    the atoms of the block, and counts the ligand atoms (same atom, same cell) common to each pair of
    polyhedra (home-cell polyhedron p, any polyhedron q of the block).  Valid when bonds are shorter than
    ``n_images`` perpendicular cell widths.

    Returns
    -------
    dict
        ``connectivity``, ``most_connected``, ``counts`` (kind → pairs per cell), ``coordination`` (list,
        per centre in ascending atom order), ``roles`` (list of str).
    """
    species = [str(s) for s in species]
    cell = np.asarray(cell, dtype=np.float64)
    frac = _wrapped(positions, cell)
    n = len(species)
    formers = [s for s in ANION_SPECIES if s in species]
    shifts = list(itertools.product(range(-n_images, n_images + 1), repeat=3))

    def dist(i, j, sh):
        v = (frac[j] + np.asarray(sh, float) - frac[i]) @ cell
        return float(np.sqrt(v @ v))

    roles = []
    for i in range(n):
        s = species[i]
        if s not in formers:
            roles.append("cation")
            continue
        role = "ligand"
        for j in range(n):
            t = species[j]
            if t in formers and ELECTRONEGATIVITY[t] > ELECTRONEGATIVITY[s]:
                if any(dist(i, j, sh) <= bond_scale * (_radius(s) + _radius(t)) for sh in shifts):
                    role = "bonded-H" if s == "H" else "centre-anion"
                    break
        roles.append(role)
    centres = [i for i in range(n) if roles[i] in ("cation", "centre-anion") and species[i] not in mobile]
    ligset = {}
    for c in centres:
        found = set()
        for ls in sorted({species[j] for j in range(n) if roles[j] == "ligand"}):
            limit = bond_scale * (_radius(species[c]) + _radius(ls))
            cand = [(dist(c, j, sh), j, sh) for j in range(n) if roles[j] == "ligand" and species[j] == ls
                    for sh in shifts]
            cand = [x for x in cand if x[0] <= limit]
            if not cand:
                continue
            dmin = min(x[0] for x in cand)
            found |= {(j, sh) for d, j, sh in cand if d <= (1 + tol) * dmin}
        if found:
            ligset[c] = found
    centres = [c for c in centres if c in ligset]
    counts = {k: 0 for k in SHARING_KINDS}
    seen = set()
    for p in centres:
        for q in centres:
            for t in shifts:
                if p == q and t == (0, 0, 0):
                    continue
                key = min((p, q, t), (q, p, tuple(-x for x in t)))
                if key in seen:
                    continue
                seen.add(key)
                shifted = {(j, tuple(a + b for a, b in zip(sh, t))) for j, sh in ligset[q]}
                common = len(ligset[p] & shifted)
                if common:
                    counts[SHARING_KINDS[min(common, 3) - 1]] += 1
    kinds = [k for k in SHARING_KINDS if counts[k]]
    if not centres:
        conn, most = "none", None
    elif not kinds:
        conn, most = "isolated", None
    else:
        conn, most = (kinds[0] if len(kinds) == 1 else "mixed"), kinds[-1]
    return {"connectivity": conn, "most_connected": most, "counts": counts,
            "coordination": [len(ligset[c]) for c in centres], "roles": roles}


def volume_per_atom(cell, n_atoms) -> float:
    """VPA = V_cell / N_atoms, Å³ (paper 003)."""
    if n_atoms <= 0:
        raise OptionError("volume per atom of a structure without atoms")
    return float(abs(np.linalg.det(np.asarray(cell, dtype=np.float64)))) / int(n_atoms)


def average_anion_length(poly: Polyhedra) -> float:
    """AAL = mean centre–ligand bond length over every framework polyhedron, Å (NaN without polyhedra)."""
    return float(np.mean(poly.bond_length)) if len(poly.bond_length) else float("nan")
