"""The rotation energy E_rot of one polyanion from a ligand energy landscape (paper 002; SPEC §10).

Paper 002 (Methods of its SI): "if the anions have formed a connected path in the same anion group as a
circle, we labelled it as 'rotation' and the minimum energy to form it was labelled E_rot".  This module
turns that sentence into a discrete, testable algorithm that works on *any* ligand energy function
(a bond-valence site-energy grid in practice, analytic functions in the tests).

Algorithm
---------
1. **Orientation landscape.**  Around the polyanion centre C, directions n on the unit sphere are
   sampled by a Fibonacci lattice of ``n_directions`` points (near-uniform, each standing for a solid
   angle 4π/M).  For every direction the ligand may adjust its distance to C freely inside the shell
   ``r_in ≤ r ≤ r_out``:  u(n) = min_r U(C + r n), with ``n_radial`` evenly spaced radii.  u is the
   energy of the ligand's best position in direction n — its rotational energy surface.
2. **Accessible region.**  At level E the region R_E = {n : u(n) ≤ E}; K_E is the connected component
   of R_E (on the spherical Delaunay triangulation of the directions: the convex hull of the points)
   that contains the direction of the ligand's own site.
3. **Closed path around the centre.**  K_E contains a closed path that encircles the centre when the
   path cannot be shrunk to a point inside K_E.  On the sphere that is exact topology: a connected
   region K contains such a loop iff its complement S² ∖ K falls into two or more pieces (Alexander
   duality: pieces − 1 = the number of independent loops of K).  Holes smaller than ``min_hole_sr``
   steradian (default 2 % of the sphere, a cap of half-angle ≈ 16°) are ignored: they are loops around
   a small bump of the landscape next to one ligand site (a wobble of that ligand), not the ring
   through the sites of several ligands that a rotation of the group needs.
4. **E_rot** = the lowest level E at which K_E (for the site of any ligand of the group) has at least two
   complement pieces of ≥ ``min_hole_sr``, minus the lowest u on the sphere (the ligand's own bound
   minimum).  Levels are the values of u itself, so the answer is exact for the sampled surface.  The
   sweep adds directions in increasing u with a union–find that keeps, per component, its vertex, edge
   and triangle counts; the number of loops of a component is b₁ = 1 − V + E − F (Euler).  A new big
   hole can only appear when b₁ of the ligand's component increases, so the complement is labelled
   (scipy) only at those levels.

The result does not depend on the order of the atoms or on a translation of the structure (the sphere is
sampled relative to C) and, for a landscape that is itself periodic, not on the supercell used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["fibonacci_sphere", "sphere_triangulation", "orientation_landscape", "rotation_level", "RotationLevel",
           "DEFAULT_MIN_HOLE_FRACTION"]

#: holes smaller than this fraction of the full sphere (4π sr) are ignored (see the module docstring)
DEFAULT_MIN_HOLE_FRACTION = 0.02


def fibonacci_sphere(m):
    """``m`` near-uniform unit vectors (Fibonacci lattice), shape (m, 3)."""
    m = int(m)
    if m < 12:
        raise ValueError(f"need at least 12 directions on the sphere; got {m}")
    i = np.arange(m, dtype=np.float64) + 0.5
    z = 1.0 - 2.0 * i / m
    rho = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
    phi = np.pi * (3.0 - np.sqrt(5.0)) * i
    return np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=1)


def sphere_triangulation(directions):
    """Triangles (t, 3) and unique edges (e, 2) of the spherical Delaunay triangulation of unit vectors."""
    from scipy.spatial import ConvexHull

    tri = np.sort(ConvexHull(directions).simplices.astype(np.int64), axis=1)
    edges = np.concatenate([tri[:, [0, 1]], tri[:, [0, 2]], tri[:, [1, 2]]])
    edges = np.unique(edges, axis=0)
    return tri, edges


def orientation_landscape(energy, centre, directions, r_in, r_out, n_radial):
    """u(n) = min over r in [r_in, r_out] of ``energy(centre + r n)`` and the radius of that minimum.

    Parameters
    ----------
    energy : callable
        ``energy(points (k, 3) Å) -> (k,) eV``.
    centre : array (3,), Å
    directions : array (m, 3)
        Unit vectors.
    r_in, r_out : float, Å
    n_radial : int
        Radii sampled (evenly, both ends included).

    Returns
    -------
    u : ndarray (m,), eV
    r_best : ndarray (m,), Å
    """
    radii = np.linspace(float(r_in), float(r_out), int(n_radial))
    pts = np.asarray(centre, float)[None, None, :] + radii[None, :, None] * np.asarray(directions)[:, None, :]
    vals = np.asarray(energy(pts.reshape(-1, 3)), dtype=np.float64).reshape(len(directions), len(radii))
    vals = np.where(np.isfinite(vals), vals, np.inf)
    k = np.argmin(vals, axis=1)
    return vals[np.arange(len(directions)), k], radii[k]


@dataclass
class RotationLevel:
    """Outcome of :func:`rotation_level`.

    Attributes
    ----------
    e_rot : float or None, eV
        Level of the first closed path around the centre minus ``u_min``; None when none forms up to
        ``e_max`` above ``u_min``.
    level : float or None, eV
        The absolute level (``e_rot + u_min``).
    u_min : float, eV
        Lowest value of the orientation landscape.
    ligand_nodes : list of int
        Direction index of each ligand's site.
    holes_sr : list of float
        Solid angles (sr) of the complement pieces at ``level`` (largest first).
    n_directions : int
    """

    e_rot: float | None
    level: float | None
    u_min: float
    ligand_nodes: list
    holes_sr: list = field(default_factory=list)
    n_directions: int = 0


class _UnionFind:
    """Union–find with per-root counts of vertices, edges, triangles and ligand sites."""

    def __init__(self, n):
        self.parent = np.arange(n)
        self.v = np.zeros(n, dtype=np.int64)
        self.e = np.zeros(n, dtype=np.int64)
        self.f = np.zeros(n, dtype=np.int64)
        self.lig = np.zeros(n, dtype=bool)

    def find(self, x):
        p = self.parent
        root = x
        while p[root] != root:
            root = p[root]
        while p[x] != root:
            p[x], x = root, p[x]
        return root

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.v[ra] < self.v[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        for arr in (self.v, self.e, self.f):
            arr[ra] += arr[rb]
        self.lig[ra] |= self.lig[rb]
        return ra

    def b1(self, root):
        return int(1 - self.v[root] + self.e[root] - self.f[root])

    def roots(self):
        """Root of every element (vectorised pointer jumping)."""
        p = self.parent.copy()
        while True:
            q = p[p]
            if np.array_equal(q, p):
                return p
            p = q


def _complement_holes(inside, edges, n):
    """Sizes (number of directions) of the connected pieces of the directions not in ``inside``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    out = ~inside
    idx = np.nonzero(out)[0]
    if len(idx) == 0:
        return np.zeros(0, dtype=np.int64)
    keep = out[edges[:, 0]] & out[edges[:, 1]]
    remap = np.full(n, -1, dtype=np.int64)
    remap[idx] = np.arange(len(idx))
    e = remap[edges[keep]]
    g = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(len(idx), len(idx)))
    _, labels = connected_components(g, directed=False)
    return np.bincount(labels)


def rotation_level(u, directions, triangles, edges, ligand_directions, *, min_hole_sr=None, e_max=np.inf):
    """Lowest level at which the ligand-accessible region forms a closed path around the centre.

    Parameters
    ----------
    u : ndarray (m,), eV
        Orientation landscape on ``directions`` (see :func:`orientation_landscape`).
    directions : ndarray (m, 3)
        Unit vectors of a near-uniform sphere sampling (each stands for 4π/m sr).
    triangles, edges : ndarray
        From :func:`sphere_triangulation`.
    ligand_directions : ndarray (k, 3)
        Directions (any length) from the centre to the ligands of the group.
    min_hole_sr : float, optional, sr
        Smallest complement piece that counts as a hole (default 2 % of 4π).
    e_max : float, eV
        Give up above ``u_min + e_max``.

    Returns
    -------
    RotationLevel
    """
    u = np.asarray(u, dtype=np.float64)
    m = len(u)
    omega = 4.0 * np.pi / m
    if min_hole_sr is None:
        min_hole_sr = DEFAULT_MIN_HOLE_FRACTION * 4.0 * np.pi
    min_nodes = max(1, int(np.ceil(float(min_hole_sr) / omega - 1e-9)))
    lig = np.asarray(ligand_directions, dtype=np.float64).reshape(-1, 3)
    lig = lig / np.linalg.norm(lig, axis=1, keepdims=True)
    lnodes = sorted({int(np.argmax(directions @ v)) for v in lig})
    finite = np.isfinite(u)
    u_min = float(u[finite].min()) if finite.any() else np.inf
    res = RotationLevel(None, None, u_min, lnodes, [], m)
    if not finite.any():
        return res
    # adjacency lists and triangles per vertex
    nbrs = [[] for _ in range(m)]
    for a, b in edges:
        nbrs[a].append(b)
        nbrs[b].append(a)
    tris_of = [[] for _ in range(m)]
    for t in triangles:
        for x in t:
            tris_of[x].append(t)
    order = np.argsort(u, kind="stable")
    present = np.zeros(m, dtype=bool)
    uf = _UnionFind(m)
    is_lig = np.zeros(m, dtype=bool)
    is_lig[lnodes] = True
    limit = u_min + float(e_max)
    i = 0
    while i < m:
        level = u[order[i]]
        if not np.isfinite(level) or level > limit:
            break
        j = i
        while j < m and u[order[j]] == level:  # ties enter together; the test comes after the group
            j += 1
        flagged = []
        for x in order[i:j]:
            # each edge and triangle is counted once, when its last vertex enters
            present[x] = True
            uf.v[x] = 1
            uf.lig[x] = is_lig[x]
            before = {}
            for y in nbrs[x]:
                if present[y] and y != x:
                    ry = uf.find(y)
                    if ry not in before:
                        before[ry] = (uf.b1(ry), bool(uf.lig[ry]))
            r = x
            for y in nbrs[x]:
                if present[y]:
                    r = uf.union(r, y)
                    uf.e[r] += 1
            for a, b, c in tris_of[x]:
                if present[a] and present[b] and present[c]:
                    uf.f[r] += 1
            if not uf.lig[r] or uf.b1(r) < 1:
                continue
            # a new loop (b1 rises: a hole split in two), or loops brought in by a component that was never
            # examined because it held no ligand site (or by this ligand site itself)
            new_loop = uf.b1(r) > sum(b for b, _ in before.values())
            brought = any(b > 0 and (not lig or is_lig[x]) for b, lig in before.values())
            if new_loop or brought:
                flagged.append(x)
        for r in {uf.find(x) for x in flagged}:
            comp = present & (uf.roots() == r)
            holes = _complement_holes(comp, edges, m)
            big = holes[holes >= min_nodes]
            if len(big) >= 2:
                res.level = float(level)
                res.e_rot = float(level - u_min)
                res.holes_sr = [float(h * omega) for h in np.sort(holes)[::-1]]
                return res
        i = j
    return res
