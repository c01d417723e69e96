"""Crystallographic sites of a mobile ion: assignment, occupancies, residence times, transitions (docs/sites.md).

Sites come from

* a **reference structure** (:func:`sites_from_structure`: CIF/POSCAR/anything pymatgen reads, partial
  occupancies allowed, or a pymatgen ``Structure`` / ASE ``Atoms``): the positions of chosen species are the
  site centres — spherical sites of radius r, Voronoi cells of the centres, or **polyhedral** sites whose
  vertices are the framework anions around each centre (an ion is in the tetrahedron that contains it, the
  vertices following their atoms frame by frame, as site-analysis's ``PolyhedralSite``); or
* the **maxima of the species' own density** (:func:`sites_from_density`): the time-averaged density grid
  (:func:`anionmotion.density`) smoothed by a periodic Gaussian, its local maxima on the periodic grid
  merged by a minimum separation (clustering) and grouped into site types by peak height.

:func:`sites` (the :class:`Sites` analysis) streams the trajectory: every ion in every frame is assigned a
site by the compiled kernels (``ext/_sites.pyx``), a debounce turns the raw per-frame sites into committed
residences (an ion changes site only after ``n_min`` consecutive frames in the new one, back-dated to the
first of them), and everything is accumulated online: occupancies, residence-time histograms (runs touching
either end of the trajectory excluded), transition counts and rates between site types, the attempt
frequency, jump-vector statistics and the fraction of collective jumps against a time-shifted baseline.
Memory is bounded by the atoms, the sites and the jumps inside one collective window — not by the number of
frames.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from ..elements import normalize_symbol
from ..errors import FormatError, OptionError
from ..kernels.sites import DebounceState, assign_nearest, assign_polyhedra, debounce, window_partners
from ..results import Result
from .base import AnalysisBase, FrameTableWriter, format_bytes

__all__ = ["sites", "Sites", "SitesResult", "SiteSet", "sites_from_structure", "sites_from_density", "assign_sites",
           "sites_from_density_grid", "density_maxima", "DEFAULT_MIN_RESIDENCE_PS", "DEFAULT_WINDOW_PS",
           "DEFAULT_PAIR_DISTANCE_A", "DEFAULT_SMOOTH_A", "DEFAULT_MIN_PROMINENCE", "DEFAULT_SIGNIFICANCE",
           "DELOCALISED_FRACTION", "MAX_IONS_PER_SITE"]

DEFAULT_MIN_RESIDENCE_PS = 0.2
"""Default debounce: an ion must stay ≥ 0.2 ps (about one Li vibrational period) in a new site, at least one
frame: ``n_min = max(1, ceil(0.2 ps / dt))``."""

DEFAULT_WINDOW_PS = 0.2
"""Default time window of collective jumps (two entries within ±0.2 ps)."""

DEFAULT_PAIR_DISTANCE_A = 3.0
"""Default distance of collective jumps: the midpoints of the two jumps within 3 Å (about one Li–Li
nearest-neighbour distance: the fraction does not saturate in fast conductors, where ±0.5 ps and 4 Å pair
almost every jump)."""

KINDS = ("polyhedral", "sphere", "voronoi")

_RES_EDGES_FRAMES = np.unique(np.floor(10.0 ** np.arange(0.0, 9.001, 0.05))) - 0.5
"""Residence-time histogram edges in frames: every integer duration below ~20 frames has its own bin, then
20 bins per decade up to 10⁹ frames (fixed, so memory does not grow with the run)."""


def _reduce(f):
    return f - np.floor(f + 0.5)


# ============================================================================ site sets
@dataclass(frozen=True)
class SiteSet:
    """Sites of the mobile ion in the trajectory's cell.

    Attributes
    ----------
    kind : {"polyhedral", "sphere", "voronoi"}
        How ions are assigned.
    frac : ndarray, shape (S, 3)
        Site centres in fractional coordinates of the trajectory cell (for polyhedral sites the reference
        centre, used for jump vectors; containment uses the vertices).
    site_type : ndarray of int64, shape (S,)
        Index into ``type_names`` of every site.
    type_names : list of str
    vertices : ndarray of int64, shape (S, 4), or None
        Trajectory atom index of each vertex (polyhedral sites).
    radius_A : float or None
        Sphere radius (spherical sites).
    source : dict
        How the sites were made (reference file, alignment, mapping distances, density parameters).
    """

    kind: str
    frac: np.ndarray
    site_type: np.ndarray
    type_names: list
    vertices: np.ndarray | None = None
    radius_A: float | None = None
    source: dict = field(default_factory=dict)

    @property
    def n_sites(self) -> int:
        return len(self.frac)

    @property
    def n_types(self) -> int:
        return len(self.type_names)

    def with_kind(self, kind, radius=None):
        """The same centres assigned another way (``"sphere"`` needs ``radius``; polyhedral needs vertices)."""
        _check_kind(kind, radius, self.vertices)
        return SiteSet(kind, self.frac, self.site_type, self.type_names, self.vertices if kind == "polyhedral"
                       else None, None if kind != "sphere" else float(radius), dict(self.source))


def _check_kind(kind, radius, vertices):
    if kind not in KINDS:
        raise OptionError(f"invalid site kind {kind!r}; choose one of {', '.join(KINDS)}")
    if kind == "sphere" and not (radius is not None and np.isfinite(radius) and radius > 0):
        raise OptionError(f"spherical sites need a positive radius in Å (radius=, --radius); got {radius}")
    if kind == "polyhedral" and vertices is None:
        raise OptionError("polyhedral sites need vertices: build them from a reference structure with "
                          "vertex_species= (--vertex-species)")


def _species_list(x):
    if x is None:
        return None
    if isinstance(x, str):
        x = x.replace(",", " ").split()
    return [normalize_symbol(s) for s in x]


def _read_structure(reference):
    """A pymatgen Structure from a path (CIF, POSCAR, … with partial occupancies), a Structure or ASE Atoms."""
    try:
        from pymatgen.core import Structure
    except ImportError as err:  # pragma: no cover - pymatgen is a dependency of this feature
        raise OptionError(f"reading a reference structure needs pymatgen ({err}); pip install pymatgen") from err
    if isinstance(reference, Structure):
        return reference.copy()
    if type(reference).__name__ == "Atoms" and hasattr(reference, "get_cell"):
        from pymatgen.io.ase import AseAtomsAdaptor

        return AseAtomsAdaptor.get_structure(reference)
    import os
    import warnings

    path = os.fspath(reference)
    if not os.path.exists(path):
        raise OptionError(f"{path}: reference structure not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Structure.from_file(path)
    except Exception as err:  # pymatgen raises many types for unreadable files
        raise FormatError(f"{path}: cannot read a reference structure (CIF, POSCAR, … via pymatgen): {err}") from err


def _site_elements(site):
    return {el.symbol for el in site.species.elements}


def _site_label(site, by):
    if by == "species":
        return "+".join(sorted(_site_elements(site)))
    lab = getattr(site, "label", None)
    return str(lab) if lab else "+".join(sorted(_site_elements(site)))


def _min_image_dist(df, cell):
    """Cartesian lengths of fractional differences ``df`` (…, 3) after reduction to [−0.5, 0.5]."""
    d = _reduce(df) @ cell
    return np.sqrt(np.einsum("...k,...k->...", d, d))


def _nearest_periodic(query_f, target_f, cell, block=256):
    """Index and Cartesian distance of the nearest ``target_f`` (fractional) to each ``query_f`` (minimum image)."""
    idx = np.empty(len(query_f), dtype=np.int64)
    dist = np.empty(len(query_f))
    for i in range(0, len(query_f), block):
        d = _min_image_dist(query_f[i:i + block, None, :] - target_f[None, :, :], cell)
        idx[i:i + block] = np.argmin(d, axis=1)
        dist[i:i + block] = d[np.arange(len(d)), idx[i:i + block]]
    return idx, dist


def _traj_frac(traj, frame, atoms):
    pos = traj.read(atoms=atoms, frames=slice(frame, frame + 1))
    cell = np.asarray(traj.cells[frame], dtype=np.float64)
    p = np.asarray(pos.positions[0] if hasattr(pos, "positions") else pos[0], dtype=np.float64)
    origin = getattr(pos, "origins", None)
    if origin is not None:
        p = p - np.asarray(origin[0])
    f = p @ np.linalg.inv(cell)
    return f - np.floor(f), cell


def sites_from_structure(reference, traj, *, centre_species=None, kind="polyhedral", vertex_species=None,
                         cutoff=3.0, n_vertices=4, radius=None, align=None, type_by="label", frame=0,
                         map_tolerance=1.5) -> SiteSet:
    """Sites from a reference structure.

    Parameters
    ----------
    reference : str, path, pymatgen ``Structure`` or ASE ``Atoms``
        Any file pymatgen reads (CIF — partial occupancies are kept, every partially occupied position is a
        site —, POSCAR/CONTCAR, …).  A unit cell is tiled to the trajectory cell when the trajectory cell is
        an integer supercell of it (to ±15 % strain); fractional coordinates are then used in the
        trajectory's own cell (so NPT and strained cells work).
    traj : Trajectory
    centre_species : str or sequence of str, optional
        Species whose positions are the site centres (e.g. ``"Li"``, or dummy species marking site types);
        default every position whose species contains the mobile species — give it explicitly.
    kind : {"polyhedral", "sphere", "voronoi"}
        Polyhedral: the ``n_vertices`` nearest ``vertex_species`` atoms of each centre (within ``cutoff``)
        are its vertices; they are mapped to the trajectory's atoms of those species in ``frame`` and
        followed frame by frame.  Sphere: within ``radius`` of the centre.  Voronoi: nearest centre.
    vertex_species : str or sequence of str, optional
        Framework species forming the polyhedra, the same list for the reference and the trajectory (e.g.
        ``"S Cl"``: an S of the reference may map to a Cl of a disordered trajectory).
    cutoff : float, Å
        Largest centre–vertex distance in the reference.
    n_vertices : int
        4 (tetrahedra; the kernel needs 4).
    radius : float, Å
        Sphere radius (``kind="sphere"``).
    align : str, optional
        Species used to align the reference to ``frame`` of the trajectory by a rigid translation (e.g.
        ``"P"``); default no translation.
    type_by : {"label", "species"}
        Site type from the CIF site label (``_atom_site_label``; POSCAR sites are labelled by species) or
        from the species of the centre.
    frame : int
        Trajectory frame used for alignment and vertex mapping.
    map_tolerance : float, Å
        Largest distance between a reference vertex (after alignment) and the trajectory atom it maps to.

    Returns
    -------
    SiteSet
    """
    _check_kind(kind, radius, np.zeros((0, 4)))  # vertices are built below
    if type_by not in ("label", "species"):
        raise OptionError(f"invalid type_by {type_by!r}; choose label or species")
    struct = _read_structure(reference)
    name = reference if isinstance(reference, str) else type(reference).__name__
    cell0 = np.asarray(traj.cells[frame], dtype=np.float64)
    lat = np.asarray(struct.lattice.matrix, dtype=np.float64)
    m = cell0 @ np.linalg.inv(lat)
    mi = np.rint(m)
    if abs(np.linalg.det(mi)) < 0.5 or np.max(np.abs(m - mi)) > 0.15 * max(1.0, np.max(np.abs(mi))):
        raise OptionError(f"{name}: the trajectory cell is not an integer supercell of the reference cell "
                          f"(cell ratio {np.round(m, 3).tolist()}); give a reference in the trajectory's cell")
    labels0 = {_site_label(s, type_by) for s in struct}
    if not np.array_equal(mi, np.eye(3)):
        struct.make_supercell(mi.astype(int).tolist())
    centre_species = _species_list(centre_species)
    if centre_species is None:
        raise OptionError("give the species whose positions are the site centres (centre_species=, "
                          "--site-species), e.g. Li or the dummy species marking site types")
    rf = np.array(struct.frac_coords, dtype=np.float64)
    elems = [_site_elements(s) for s in struct]
    is_centre = np.array([bool(e & set(centre_species)) for e in elems])
    if not is_centre.any():
        present = sorted(set().union(*elems))
        raise OptionError(f"{name}: no sites of {', '.join(centre_species)} in the reference "
                          f"(it has {', '.join(present)})")
    # alignment: rigid translation of the reference onto the trajectory, from one species
    shift = np.zeros(3)
    align_rms = None
    if align is not None:
        sp = normalize_symbol(align)
        ref_a = rf[np.array([sp in e for e in elems])]
        if len(ref_a) == 0:
            raise OptionError(f"{name}: no {sp} in the reference to align on (align=, --align)")
        tf, _ = _traj_frac(traj, frame, traj.select(sp))
        best = None
        for j in range(len(ref_a)):  # a candidate translation puts reference atom j on trajectory atom 0
            cand = tf[0] - ref_a[j]
            _, dist = _nearest_periodic(ref_a + cand, tf, cell0)
            score = float(np.sum(dist ** 2))
            if best is None or score < best[0]:
                best = (score, cand)
        shift = best[1]
        idx, _ = _nearest_periodic(ref_a + shift, tf, cell0)
        shift = shift + np.mean(_reduce(tf[idx] - (ref_a + shift)), axis=0)
        _, dist = _nearest_periodic(ref_a + shift, tf, cell0)
        align_rms = float(np.sqrt(np.mean(dist ** 2)))
    centres = rf[is_centre] + shift
    centres -= np.floor(centres)
    labels = [_site_label(s, type_by) for s, c in zip(struct, is_centre) if c]
    # pymatgen suffixes the labels of supercell copies ("type5_12"): back to the unit cell's labels
    labels = [lab if lab in labels0 else re.sub(r"_\d+$", "", lab) for lab in labels]
    type_names = sorted(set(labels))
    site_type = np.array([type_names.index(lab) for lab in labels], dtype=np.int64)
    source = {"reference": str(name), "supercell": mi.astype(int).tolist(), "centre_species": centre_species,
              "type_by": type_by, "align": align, "align_shift_frac": shift.tolist(), "align_rms_A": align_rms,
              "frame": int(frame)}
    vertices = None
    if kind == "polyhedral":
        vs = _species_list(vertex_species)
        if not vs:
            raise OptionError("polyhedral sites need the framework species of the vertices (vertex_species=, "
                              "--vertex-species), e.g. 'S Cl'")
        if int(n_vertices) != 4:
            raise OptionError(f"polyhedral sites are tetrahedra: n_vertices must be 4; got {n_vertices}")
        is_v = np.array([bool(e & set(vs)) for e in elems])
        if is_v.sum() < 4:
            raise OptionError(f"{name}: fewer than 4 atoms of {', '.join(vs)} in the reference for the vertices")
        vf = rf[is_v] + shift
        ref_lat = np.asarray(struct.lattice.matrix, dtype=np.float64)
        vert_ref = np.empty((len(centres), 4), dtype=np.int64)
        for i0 in range(0, len(centres), 256):
            d = _min_image_dist(centres[i0:i0 + 256, None, :] - vf[None, :, :], ref_lat)
            order = np.argsort(d, axis=1, kind="stable")[:, :4]
            far = np.take_along_axis(d, order, 1)[:, 3] > cutoff
            if far.any():
                k = i0 + int(np.argmax(far))
                raise OptionError(f"{name}: site {k} ({labels[k]}) has fewer than 4 {'/'.join(vs)} atoms within "
                                  f"cutoff {cutoff:g} Å; increase cutoff (--vertex-cutoff)")
            vert_ref[i0:i0 + 256] = order
        used = np.unique(vert_ref)
        traj_v = traj.select(vs)
        tf, _ = _traj_frac(traj, frame, traj_v)
        idx, dist = _nearest_periodic(vf[used] - np.floor(vf[used]), tf, cell0)
        if dist.max() > map_tolerance:
            raise OptionError(f"{name}: a reference vertex is {dist.max():.2f} Å from the nearest {'/'.join(vs)} atom "
                              f"of frame {frame} (tolerance {map_tolerance:g} Å); check the reference, --align or "
                              "the supercell")
        if len(np.unique(idx)) != len(idx):
            raise OptionError(f"{name}: two reference vertices map to the same trajectory atom in frame {frame}; "
                              "check the reference and --align")
        lut = np.full(len(vf), -1, dtype=np.int64)
        lut[used] = traj_v[idx]
        vertices = lut[vert_ref]
        source.update({"vertex_species": vs, "cutoff_A": float(cutoff), "map_max_A": float(dist.max()),
                       "map_rms_A": float(np.sqrt(np.mean(dist ** 2)))})
    return SiteSet(kind, centres, site_type, type_names, vertices, None if kind != "sphere" else float(radius), source)


# ---------------------------------------------------------------------------- density maxima
def _smooth_periodic(grid, cell, sigma):
    """Periodic Gaussian smoothing (σ in Å, Cartesian, any cell) of a fractional grid by FFT."""
    if sigma is None or sigma <= 0:
        return np.asarray(grid, dtype=np.float64)
    g = np.asarray(grid, dtype=np.float64)
    m = np.meshgrid(*[np.fft.fftfreq(n) * n for n in g.shape[:2]], np.fft.rfftfreq(g.shape[2]) * g.shape[2],
                    indexing="ij")
    recip = np.linalg.inv(cell).T  # rows b_i with a_i · b_j = δ_ij
    k = 2 * np.pi * (m[0][..., None] * recip[0] + m[1][..., None] * recip[1] + m[2][..., None] * recip[2])
    kern = np.exp(-0.5 * sigma ** 2 * np.einsum("...k,...k->...", k, k))
    return np.fft.irfftn(np.fft.rfftn(g) * kern, s=g.shape, axes=(0, 1, 2))


DEFAULT_SMOOTH_A = 0.3
"""σ (Å) of the periodic Gaussian applied to the density before its maxima are searched: about the thermal
rms displacement of Li about a site (0.2–0.4 Å at 300–1000 K), so a site stays one peak while voxel noise
(0.2 Å voxels) is averaged over ~50 voxels."""
DEFAULT_MIN_PROMINENCE = 0.5
"""Smallest relative persistence (h − s)/h of a density maximum of height h whose highest saddle to a higher
maximum is s: the density must fall to half of the peak before the ion can reach a higher maximum, i.e. a
free-energy barrier of at least k_BT ln 2 ≈ 0.7 k_BT.  Shallower maxima are crossed at about the vibrational
rate: they are one site with their higher neighbour (the debounce would not separate them either)."""
DEFAULT_SIGNIFICANCE = 1.0
"""Smallest persistence of a site in standard errors of the density (z = (h − s)/√(σ_h² + σ_s²)), the noise
estimated from the two halves of the run (:func:`sites_from_density`): a maximum whose persistence is below
one standard error is indistinguishable from the noise of the run.  Not stricter by default: the two halves
also differ because ions move between sites, so a real site visited in one half only has a low z (2σ drops
half of the maxima of the 20-ps example, leaving fewer sites than ions)."""
MAX_IONS_PER_SITE = 2.0
"""``delocalised`` is also set when the sites hold more than this many ions on average: the maxima then do not
resolve the sites of individual ions (a liquid-like density has a few broad maxima)."""
DELOCALISED_FRACTION = 0.5
"""``delocalised`` is set when less than this fraction of the density lies in site cores (above the spill
level of its site: the highest saddle to another site).  A localised ion spends most of its time well
inside a site (a Gaussian site with saddles at 20 % of the peak holds 78 % of its weight above that level);
below one half the ion is on the ridges between maxima as much as in them, and occupancies, residence
times and jump counts depend on where the boundaries are drawn rather than on the physics."""

_NEIGHBOURS = [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1) if (i, j, k) != (0, 0, 0)]
_HALF_NEIGHBOURS = [o for o in _NEIGHBOURS if o > (0, 0, 0)]


def _roll_to(a, o):
    """``a`` at the periodic neighbour v + o of every voxel v."""
    return np.roll(a, shift=(-o[0], -o[1], -o[2]), axis=(0, 1, 2))


def _ascent_basins(g):
    """Steepest-ascent basins of a periodic grid (26-neighbourhood).

    Voxels are totally ordered by value, ties broken by flat index (``rank``); every voxel points to its
    highest neighbour when that is higher than itself, and the pointers are followed to the end.

    Returns
    -------
    rank : ndarray of int64, grid shape
    label : ndarray of int64, grid shape
        Flat index of the maximum whose basin contains the voxel.
    maxima : ndarray of int64
        Flat indices of the local maxima (voxels above their 26 neighbours).
    """
    n = g.size
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(g.ravel(), kind="stable")] = np.arange(n)
    rank = rank.reshape(g.shape)
    flat = np.arange(n, dtype=np.int64).reshape(g.shape)
    best, ptr = rank.copy(), flat.copy()
    for o in _NEIGHBOURS:
        rn = _roll_to(rank, o)
        up = rn > best
        best = np.where(up, rn, best)
        ptr = np.where(up, _roll_to(flat, o), ptr)
    del best
    ptr = ptr.ravel()
    while True:
        nxt = ptr[ptr]
        if np.array_equal(nxt, ptr):
            break
        ptr = nxt
    maxima = np.flatnonzero(ptr == np.arange(n))
    return rank, ptr.reshape(g.shape), maxima


def _boundary_saddles(rank, label, maxima):
    """Highest saddle between every pair of adjacent basins: the largest min(rank_u, rank_v) over neighbouring
    voxels u, v of the two basins.  Returns (pairs (E, 2) of labels, saddle rank (E,))."""
    M = len(maxima)
    idx = np.searchsorted(maxima, label)          # basin index of every voxel
    dense = M <= 4096
    best = np.full(M * M if dense else 0, -1, dtype=np.int64)
    keys, vals = [], []
    for o in _HALF_NEIGHBOURS:
        ln = _roll_to(idx, o)
        m = ln != idx
        if not m.any():
            continue
        a, b = idx[m], ln[m]
        k = np.minimum(a, b) * M + np.maximum(a, b)
        v = np.minimum(rank[m], _roll_to(rank, o)[m])
        if dense:
            np.maximum.at(best, k, v)
        else:                                       # reduce this offset's pairs, then all of them
            order = np.argsort(k)
            k, v = k[order], v[order]
            start = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
            keys.append(k[start])
            vals.append(np.maximum.reduceat(v, start))
    if dense:
        k = np.flatnonzero(best >= 0)
        v = best[k]
    elif keys:
        k, v = np.concatenate(keys), np.concatenate(vals)
        order = np.argsort(k)
        k, v = k[order], v[order]
        start = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        k, v = k[start], np.maximum.reduceat(v, start)
    else:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.stack([maxima[k // M], maxima[k % M]], axis=1), v


def _persistence(rank_flat, maxima, pairs, srank):
    """Elder-rule 0-dimensional persistence of the superlevel sets.

    Edges (basin pairs) are joined from the highest saddle down; when two components meet, the one whose
    maximum is lower dies at that saddle.  Returns, per maximum (in the order of ``maxima``), the saddle rank
    at which it dies (−1 for the global maximum) and the basin label on the other side of that edge (where
    it would spill to; −1 for the global maximum)."""
    pos = {int(m): i for i, m in enumerate(maxima)}
    parent = np.arange(len(maxima))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    death = np.full(len(maxima), -1, dtype=np.int64)
    attach = np.full(len(maxima), -1, dtype=np.int64)
    for e in np.argsort(-srank, kind="stable"):
        i, j = pos[int(pairs[e, 0])], pos[int(pairs[e, 1])]
        a, b = find(i), find(j)
        if a == b:
            continue
        if rank_flat[maxima[a]] < rank_flat[maxima[b]]:
            a, b, i, j = b, a, j, i
        death[b] = srank[e]
        attach[b] = i          # the basin across the saddle, in the surviving component
        parent[b] = a
    return death, attach


def density_maxima(grid, cell, *, smooth=DEFAULT_SMOOTH_A, noise=None):
    """Local maxima of a smoothed periodic density with their topological persistence and significance.

    Parameters
    ----------
    grid : ndarray, shape (nx, ny, nz), Å⁻³
        Density on a fractional grid.
    cell : ndarray, shape (3, 3), Å
    smooth : float, Å
        σ of the periodic Gaussian applied first.
    noise : (grid_1, n_1, grid_2, n_2), optional
        Densities of two independent parts of the run (e.g. its halves) and their frame counts; ``grid`` should
        be their frame-weighted mean.  Gives the standard error of the smoothed density (below).

    Returns
    -------
    dict
        ``g`` (smoothed grid), ``rank``, ``label`` (basin of every voxel), ``maxima`` (flat indices), ``height``,
        ``saddle`` (density at the saddle where each maximum merges with a higher one; 0 for the highest),
        ``attach`` (index into ``maxima`` of the basin across that saddle, −1 for the highest), ``z``
        (persistence in standard errors; inf without ``noise``), ``noise_factor`` κ, ``pairs``/``saddle_rank``
        (adjacent basins and their highest saddle).

    Notes
    -----
    Persistence: the superlevel sets {ρ ≥ λ} are followed from the top down; a maximum is born at its height h
    and dies at the level s where its component joins one with a higher maximum (elder rule), so h − s is how
    far the density must fall before an ion at that maximum can reach a higher one.  On the periodic grid it
    is computed from the steepest-ascent basins (26 neighbours) and the highest saddle between each pair of
    adjacent basins.  Noise: with two parts of n₁ and n₂ frames, Var(ρ_s) is modelled as κ ρ_s / (n₁ + n₂)
    (counting statistics inflated by the time correlation of the frames, κ from the whole grid:
    κ = Σ(ρ₁ − ρ₂)² / [Σρ (1/n₁ + 1/n₂)] on the smoothed parts), and z = (h − s)/√(σ_h² + σ_s²).
    """
    cell = np.asarray(cell, dtype=np.float64)
    g = _smooth_periodic(grid, cell, smooth)
    rank, label, maxima = _ascent_basins(g)
    pairs, srank = _boundary_saddles(rank, label, maxima)
    rf, gf = rank.ravel(), g.ravel()
    death, attach = _persistence(rf, maxima, pairs, srank)
    inv = np.empty(g.size, dtype=np.int64)
    inv[rf] = np.arange(g.size)
    h = gf[maxima]
    s = np.where(death >= 0, gf[inv[np.maximum(death, 0)]], 0.0)
    kappa = None
    z = np.full(len(maxima), np.inf)
    if noise is not None:
        g1, n1, g2, n2 = noise
        n1, n2 = int(n1), int(n2)
        if n1 > 0 and n2 > 0:
            s1, s2 = _smooth_periodic(g1, cell, smooth), _smooth_periodic(g2, cell, smooth)
            tot = float(np.sum(np.maximum(g, 0.0)))
            kappa = float(np.sum((s1 - s2) ** 2) / (tot * (1.0 / n1 + 1.0 / n2))) if tot > 0 else None
            if kappa is not None and kappa > 0:
                var = kappa * (np.maximum(h, 0.0) + np.maximum(s, 0.0)) / (n1 + n2)
                with np.errstate(divide="ignore", invalid="ignore"):
                    z = np.where(death >= 0, (h - s) / np.sqrt(var), np.inf)
    return {"g": g, "rank": rank, "label": label, "maxima": maxima, "height": h, "saddle": s, "attach": attach,
            "z": z, "noise_factor": kappa, "pairs": pairs, "saddle_rank": srank}


def _site_of_maxima(kept, attach):
    """Site (index into the kept maxima) of every maximum: its own if kept, else that of the basin across its
    death saddle, followed until a kept maximum is reached."""
    n = len(kept)
    site = np.full(n, -1, dtype=np.int64)
    site[kept] = np.arange(int(kept.sum()))
    for i in range(n):
        path, j = [], i
        while site[j] < 0 and attach[j] >= 0 and j not in path:
            path.append(j)
            j = attach[j]
        t = site[j] if site[j] >= 0 else 0
        for p in path:
            site[p] = t
    return site


DENSITY_SITES_BYTES_PER_VOXEL = 112
"""Peak working memory of :func:`sites_from_density_grid` per grid voxel (bytes; 93 measured with the noise
halves: the grids, their smoothed copies, ranks, pointers and labels), checked against the budget first."""


def _check_density_options(kind, radius, **values):
    if kind == "polyhedral":
        raise OptionError("density-maxima sites are assigned by voronoi or sphere, not polyhedral")
    _check_kind(kind, radius, None)
    for nm, v in values.items():
        try:
            ok = v is not None and np.isfinite(v) and v >= 0
        except TypeError:
            ok = False
        if not ok:
            raise OptionError(f"{nm} must be a non-negative number; got {v}")
    if values.get("min_prominence", 0) > 1:
        raise OptionError(f"min_prominence is a fraction of the peak height (0–1); got {values['min_prominence']}")


def sites_from_density_grid(grid, cell, *, smooth=DEFAULT_SMOOTH_A, min_separation=1.0, threshold=0.05,
                            min_prominence=DEFAULT_MIN_PROMINENCE, significance=DEFAULT_SIGNIFICANCE, noise=None,
                            type_tolerance=0.3, kind="voronoi", radius=None, label="D") -> SiteSet:
    """Sites at the persistent maxima of a periodic density grid.

    Parameters
    ----------
    grid : ndarray, shape (nx, ny, nz)
        Density on a fractional grid (voxel (i, j, k) spans s ∈ [i/nx, (i+1)/nx) × …), e.g.
        :attr:`DensityResult.density`.
    cell : ndarray, shape (3, 3), Å
    smooth : float, Å
        σ of the periodic Gaussian applied first (0 = none; :data:`DEFAULT_SMOOTH_A`).
    min_separation : float, Å
        Sites closer than this (minimum image) are one: taken highest first, a site within
        ``min_separation`` of one already kept is merged into it (1 Å: no two distinct sites of an ion are
        closer — the shortest site–site distances of Li conductors are ≈ 1.5 Å).
    threshold : float
        Maxima below this fraction of the highest are not sites.
    min_prominence : float
        Smallest relative persistence (h − s)/h (:data:`DEFAULT_MIN_PROMINENCE`): s is the saddle at which
        the maximum merges with a higher one; 0 keeps every maximum.
    significance : float
        Smallest persistence in standard errors of the density (:data:`DEFAULT_SIGNIFICANCE`), used only with
        ``noise``; 0 switches it off.
    noise : (grid_1, n_1, grid_2, n_2), optional
        Densities of two halves of the run and their frame counts (:func:`density_maxima`).
    type_tolerance : float
        Sites are grouped into types by peak height: sorted by height, a new type starts where the next
        height is lower than the previous one by more than a factor 1 + type_tolerance (a gap), so a
        continuous spread of heights stays one type and well-separated levels become separate types.
    kind, radius
        Assignment: ``"voronoi"`` (nearest maximum; the default) or ``"sphere"`` (within ``radius``).
    label : str
        Type names are ``label`` + 1, 2, … from the densest type down.

    Returns
    -------
    SiteSet
        ``source`` records the parameters and the diagnostics: ``n_maxima`` (all local maxima),
        ``n_prominent``, ``n_significant``, ``n_merged`` (by ``min_separation``), ``localised_fraction`` (share
        of the density above its site's spill level, the highest saddle to another site), ``delocalised`` and
        ``delocalised_reason``, per-site ``peak_density_per_A3``, ``saddle_density_per_A3``, ``persistence_z``,
        ``spill_density_per_A3``.

    Notes
    -----
    The maxima of the smoothed density are found with their basins and saddles on the periodic grid
    (:func:`density_maxima`); a maximum is a site when it is at least ``threshold`` of the highest, its
    relative persistence is at least ``min_prominence`` and (with ``noise``) its persistence is at least
    ``significance`` standard errors.  The basins of the other maxima join the site across their death
    saddle.  A site's position is the weighted centroid of its maximum's 3×3×3 neighbourhood (weights
    ρ − min).  ``delocalised`` is set when less than :data:`DELOCALISED_FRACTION` of the density lies above the
    spill levels of the sites, or when the sites hold more than :data:`MAX_IONS_PER_SITE` ions on average
    (∫ρ dV / number of sites).
    """
    _check_density_options(kind, radius, smooth=smooth, min_separation=min_separation, threshold=threshold,
                           min_prominence=min_prominence, significance=significance, type_tolerance=type_tolerance)
    cell = np.asarray(cell, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 3 or min(grid.shape) < 3:
        raise OptionError(f"the density grid must be 3-D with at least 3 points per axis; got shape {grid.shape}")
    if not np.any(grid > 0):
        raise OptionError("the density grid is empty: no sites can be found")
    dm = density_maxima(grid, cell, smooth=smooth, noise=noise)
    g, maxima, h, s, z = dm["g"], dm["maxima"], dm["height"], dm["saddle"], dm["z"]
    with np.errstate(divide="ignore", invalid="ignore"):
        prom = np.where(h > 0, (h - s) / h, 0.0)
    tall = (h >= threshold * h.max()) & (h > 0)
    prominent = tall & (prom >= min_prominence)
    use_z = dm["noise_factor"] is not None and significance > 0
    kept = prominent & (z >= significance) if use_z else prominent
    kept[np.argmax(h)] = True      # the highest maximum is always a site
    # positions: sub-voxel weighted centroid of the 3×3×3 neighbourhood
    shape = np.array(g.shape)
    off = np.array(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij")).reshape(3, -1).T
    ki = np.flatnonzero(kept)
    ki = ki[np.argsort(-h[ki], kind="stable")]
    frac = np.empty((len(ki), 3))
    for n, m in enumerate(ki):
        p = np.array(np.unravel_index(maxima[m], g.shape))
        nb = (p + off) % shape
        w = g[nb[:, 0], nb[:, 1], nb[:, 2]]
        w = w - w.min()
        frac[n] = (p + 0.5 + (off * w[:, None]).sum(0) / w.sum() if w.sum() > 0 else p + 0.5) / shape
    # merge sites closer than min_separation (highest first)
    keep, into = [], np.arange(len(ki))
    for n in range(len(ki)):
        if keep:
            d = _min_image_dist(frac[keep] - frac[n], cell)
            j = int(np.argmin(d))
            if d[j] < min_separation:
                into[n] = keep[j]
                continue
        keep.append(n)
    pos_of = {old: new for new, old in enumerate(keep)}
    final_of_kept = np.array([pos_of[int(into[n])] for n in range(len(ki))], dtype=np.int64)
    kept_sorted = np.zeros(len(maxima), dtype=bool)
    kept_sorted[ki] = True
    order_idx = np.full(len(maxima), -1, dtype=np.int64)
    order_idx[ki] = np.arange(len(ki))
    # site of every maximum (basins of the non-sites join a site across their death saddle)
    site_m = _site_of_maxima(kept_sorted, dm["attach"])          # index into the kept maxima in flat order
    flat_kept = np.flatnonzero(kept_sorted)                        # kept maxima in maxima order
    site_m = final_of_kept[order_idx[flat_kept[site_m]]]
    frac, hk = frac[keep], h[ki[keep]]
    frac = frac - np.floor(frac)
    # spill level of every site: the highest saddle to another site; share of the density above it
    lab_idx = np.searchsorted(maxima, dm["label"].ravel())
    site_vox = site_m[lab_idx]
    pairs = np.searchsorted(maxima, dm["pairs"])
    sp_a, sp_b = site_m[pairs[:, 0]], site_m[pairs[:, 1]]
    inv = np.empty(g.size, dtype=np.int64)
    inv[dm["rank"].ravel()] = np.arange(g.size)
    sval = g.ravel()[inv[dm["saddle_rank"]]] if len(pairs) else np.zeros(0)
    cross = sp_a != sp_b
    spill = np.zeros(len(keep))
    np.maximum.at(spill, sp_a[cross], sval[cross])
    np.maximum.at(spill, sp_b[cross], sval[cross])
    gf = g.ravel()
    pos_mass = np.maximum(gf, 0.0)
    total = float(pos_mass.sum())
    core = gf > spill[site_vox]
    localised = float(pos_mass[core].sum() / total) if total > 0 else 0.0
    if len(keep) == 1:
        localised = 1.0 if total > 0 else 0.0
    n_ions = total * abs(float(np.linalg.det(cell))) / g.size     # ∫ρ dV
    per_site = n_ions / len(keep)
    reasons = []
    if localised < DELOCALISED_FRACTION:
        reasons.append(f"only {100 * localised:.0f} % of the density lies in site cores (above the spill level of "
                       f"its site; at least {100 * DELOCALISED_FRACTION:.0f} % for localised ions)")
    if per_site > MAX_IONS_PER_SITE:
        reasons.append(f"{per_site:.3g} ions per site on average (the maxima do not resolve single-ion sites)")
    delocalised = bool(reasons)
    reason = None
    if delocalised:
        reason = ("; ".join(reasons) + ": the species is too delocalised (or the run too short) for meaningful "
                  "density-maxima sites")
    types = np.empty(len(hk), dtype=np.int64)
    t = -1
    for n in range(len(hk)):  # heights sorted descending: a new type after a gap of more than 1 + type_tolerance
        if n == 0 or hk[n] * (1 + type_tolerance) < hk[n - 1]:
            t += 1
        types[n] = t
    names = [f"{label}{k + 1}" for k in range(t + 1)]
    zk = z[ki[keep]]
    source = {"density": "persistent maxima of the periodic-Gaussian-smoothed density grid", "grid": list(g.shape),
              "smooth_A": float(smooth or 0.0), "min_separation_A": float(min_separation),
              "threshold": float(threshold), "min_prominence": float(min_prominence),
              "significance": float(significance) if use_z else None, "type_tolerance": float(type_tolerance),
              "noise_factor": dm["noise_factor"], "n_maxima": int(len(maxima)), "n_above_threshold": int(tall.sum()),
              "n_prominent": int(prominent.sum()),
              "n_significant": int((prominent & (z >= significance)).sum()) if use_z else None,
              "n_merged": int(len(ki) - len(keep)), "localised_fraction": localised, "ions_per_site": per_site,
              "delocalised": bool(delocalised),
              "delocalised_reason": reason, "peak_density_per_A3": hk.tolist(),
              "saddle_density_per_A3": s[ki[keep]].tolist(), "spill_density_per_A3": spill.tolist(),
              "persistence_z": [None if not np.isfinite(x) else float(x) for x in zk]}
    return SiteSet(kind, frac, types, names, None, None if kind != "sphere" else float(radius), source)


def sites_from_density(traj, species, *, spacing=0.2, smooth=DEFAULT_SMOOTH_A, min_separation=1.0, threshold=0.05,
                       min_prominence=DEFAULT_MIN_PROMINENCE, significance=DEFAULT_SIGNIFICANCE, type_tolerance=0.3,
                       kind="voronoi", radius=None, start=None, stop=None, step=None, memory=None,
                       progress=None) -> SiteSet:
    """Sites at the persistent maxima of the species' own time-averaged density.

    One streamed pass of :func:`anionmotion.density` (grid ``spacing`` Å) over each half of the frame range —
    together one pass over the run — gives the two half densities; their frame-weighted mean is the density of
    the whole run (exactly), and their difference its noise.  Then :func:`sites_from_density_grid` (see there
    for the other parameters).  Runs of fewer than 4 frames are not split (no significance test).
    """
    from .base import resolve_memory
    from .density import density, grid_shape_for_spacing

    _check_density_options(kind, radius, smooth=smooth, min_separation=min_separation, threshold=threshold,
                           min_prominence=min_prominence, significance=significance, type_tolerance=type_tolerance)
    fr = traj.frame_range(start=start, stop=stop, step=step)
    n = len(fr)
    # one grid for both halves (from the first analysed frame's cell; fractional, so NPT cells share it)
    shape = grid_shape_for_spacing(np.asarray(traj.cells[fr.start], dtype=np.float64), spacing)
    need = DENSITY_SITES_BYTES_PER_VOXEL * int(np.prod(shape))
    budget = resolve_memory(memory)
    if need > budget:
        raise OptionError(f"density-maxima sites on a {shape[0]}×{shape[1]}×{shape[2]} grid (spacing {spacing:g} Å) "
                          f"need about {format_bytes(need)}, more than the memory budget {format_bytes(budget)}; "
                          "use a larger spacing (--spacing) or a larger memory= (--memory)")
    kw = dict(grid=shape, memory=memory, progress=progress)
    if n >= 4:
        mid = fr.start + (n // 2) * fr.step
        r1 = density(traj, species, start=fr.start, stop=mid, step=fr.step, **kw)
        r2 = density(traj, species, start=mid, stop=fr.stop, step=fr.step, **kw)
        n1, n2 = r1.n_frames, r2.n_frames
        grid = (n1 * r1.density + n2 * r2.density) / (n1 + n2)
        cell = (n1 * np.asarray(r1.cell) + n2 * np.asarray(r2.cell)) / (n1 + n2)
        noise = (r1.density, n1, r2.density, n2)
    else:
        res = density(traj, species, start=start, stop=stop, step=step, **kw)
        grid, cell, noise = res.density, res.cell, None
    ss = sites_from_density_grid(grid, cell, smooth=smooth, min_separation=min_separation, threshold=threshold,
                                 min_prominence=min_prominence, significance=significance, noise=noise,
                                 type_tolerance=type_tolerance, kind=kind, radius=radius, label=f"{species}-D")
    ss.source["spacing_A"] = float(spacing)
    ss.source["frames"] = int(n)
    return ss


# ============================================================================ result
@dataclass(frozen=True)
class SitesResult(Result):
    """Sites of a mobile species: occupancies, residence times, transitions, jumps.

    Attributes
    ----------
    species : str
    n_ions, n_frames : int
    dt_ps : float, ps
    kind : str
        Assignment (polyhedral, sphere, voronoi).
    n_sites : int
    type_names : list of str
    site_type : ndarray of int64, shape (S,)
    site_frac : ndarray, shape (S, 3)
        Site centres, fractional coordinates of the trajectory cell.
    n_sites_per_type : ndarray of int64, shape (T,)
    occupancy_raw : ndarray, shape (S,)
        Mean number of ions in each site per frame from the per-frame assignment (no debounce).
    occupancy : ndarray, shape (S,)
        The same from the committed (debounced) residences.
    type_fraction_raw : ndarray, shape (T,)
        Fraction of the assigned ion-frames in each site type (no debounce; what site-analysis reports).
    type_fraction : ndarray, shape (T,)
        Fraction of the committed ion-time in each site type.
    unassigned_fraction : float
        Fraction of ion-frames in no site (per-frame assignment).
    residence : list of dict
        Per type: ``n_complete`` runs (both ends observed), ``mean_ps`` ± ``sem_ps`` over them,
        ``tau_exit_ps`` ± ``tau_exit_err_ps`` = committed time in the type / exits from it (censoring-aware),
        ``n_left_censored`` (first run of an ion), ``n_right_censored`` (runs open at the end).
    residence_edges_ps : ndarray, shape (B + 1,), ps
    residence_hist : ndarray of int64, shape (T, B)
        Complete-run durations per type.
    transitions : ndarray of int64, shape (T, T)
        Committed jumps from type a (row) to type b (column), including between sites of one type.
    rates_per_ps, rates_err_per_ps : ndarray, shape (T, T), ps⁻¹
        k_ab = N_ab / (committed ion-time in a) and its Poisson error √N_ab / time.
    jump_rate_per_ps : float, ps⁻¹
        Jumps per ion per ps.
    attempt_frequency_THz : float or None, THz
        ν₀: rate at which an ion crosses its site centre, per Cartesian component, halved (frames resolve it
        only when ν₀ ≪ 1/(2 dt): see ``meta["nyquist_THz"]``).
    attempt_frequency_type_THz : ndarray, shape (T,), THz
    n_jumps : int
    jump_length_edges_A : ndarray, Å
    jump_length_hist : ndarray of int64
    jump_length_mean_A : float or None, Å
    jump_length_by_pair_A : ndarray, shape (T, T), Å
        Mean centre-to-centre length of the jumps from type a to type b (NaN without jumps).
    jump_orientation : ndarray, shape (3, 3)
        ⟨u uᵀ⟩ of the jump unit vectors (I/3 for isotropic jumps).
    collective : dict
        ``window_ps``, ``distance_A``, ``n_jumps`` counted, ``fraction`` of them with a partner (another ion's
        jump within the window and the distance), ``baseline`` (mean over the lags) ± ``baseline_std``,
        ``lags_ps``, ``baseline_by_lag``, ``excess`` = fraction / baseline.
    occupancy_preview : ndarray, shape (n, 1 + T)
        Time (ps) and ions in each type per frame (raw), a strided preview for the figure.
    meta : dict
        Debounce, frames, kernel, the site set's ``source`` (``meta["sites"]``) and, for density-maxima sites,
        ``delocalised`` (True when the species is too delocalised for meaningful sites) with
        ``delocalised_reason``.
    """

    species: str
    n_ions: int
    n_frames: int
    dt_ps: float
    kind: str
    n_sites: int
    type_names: list
    site_type: np.ndarray
    site_frac: np.ndarray
    n_sites_per_type: np.ndarray
    occupancy_raw: np.ndarray
    occupancy: np.ndarray
    type_fraction_raw: np.ndarray
    type_fraction: np.ndarray
    unassigned_fraction: float
    residence: list
    residence_edges_ps: np.ndarray
    residence_hist: np.ndarray
    transitions: np.ndarray
    rates_per_ps: np.ndarray
    rates_err_per_ps: np.ndarray
    jump_rate_per_ps: float
    attempt_frequency_THz: float | None
    attempt_frequency_type_THz: np.ndarray
    n_jumps: int
    jump_length_edges_A: np.ndarray
    jump_length_hist: np.ndarray
    jump_length_mean_A: float | None
    jump_length_by_pair_A: np.ndarray
    jump_orientation: np.ndarray
    collective: dict
    occupancy_preview: np.ndarray
    meta: dict = field(default_factory=dict)

    def type_fractions(self, raw=True) -> dict:
        """{type name: fraction} of the assigned ion-frames (``raw``) or of the committed ion-time."""
        f = self.type_fraction_raw if raw else self.type_fraction
        return {n: float(x) for n, x in zip(self.type_names, f)}

    def summary(self) -> str:
        lines = [f"sites of {self.species}: {self.n_ions} ions, {self.n_sites} {self.kind} sites in "
                 f"{len(self.type_names)} types, {self.n_frames} frames × {self.dt_ps:g} ps; debounce "
                 f"{self.meta.get('debounce_frames')} frames; {self.unassigned_fraction * 100:.2f} % of ion-frames "
                 "in no site"]
        if self.meta.get("delocalised"):
            lines.append(f"WARNING: {self.species} is delocalised — {self.meta.get('delocalised_reason')}; occupancies, "
                         "residence times and jumps below depend on where the site boundaries are drawn")
        lines.append(f"{'type':>12} {'sites':>6} {'frac raw %':>10} {'frac %':>8} {'occ/site':>9} "
                     f"{'<τ>/ps':>16} {'τ_exit/ps':>16} {'runs':>6}")
        for t, name in enumerate(self.type_names):
            r = self.residence[t]
            occ = self.occupancy[self.site_type == t]

            def pm(x, e):
                return "-" if x is None else (f"{x:.3g} ± {e:.2g}" if e is not None else f"{x:.3g}")
            lines.append(f"{name:>12} {int(self.n_sites_per_type[t]):>6d} {self.type_fraction_raw[t] * 100:>10.2f} "
                         f"{self.type_fraction[t] * 100:>8.2f} {occ.mean() if len(occ) else float('nan'):>9.3f} "
                         f"{pm(r['mean_ps'], r['sem_ps']):>16} {pm(r['tau_exit_ps'], r['tau_exit_err_ps']):>16} "
                         f"{r['n_complete']:>6d}")
        c = self.collective
        nu = self.attempt_frequency_THz
        lines.append(f"jumps: {self.n_jumps} ({self.jump_rate_per_ps:.4g} per ion per ps), mean length "
                     f"{'-' if self.jump_length_mean_A is None else format(self.jump_length_mean_A, '.3f')} Å; "
                     f"attempt frequency {'-' if nu is None else format(nu, '.3g')} THz")
        if c.get("fraction") is not None:
            lines.append(f"collective jumps (±{c['window_ps']:g} ps, ≤ {c['distance_A']:g} Å): "
                         f"{c['fraction'] * 100:.1f} % of {c['n_jumps']} vs time-shifted baseline "
                         + ("-" if c.get("baseline") is None else
                            f"{c['baseline'] * 100:.1f} ± {(c['baseline_std'] or 0) * 100:.1f} %")
                         + f"; partners per jump {c['pairs_per_jump']:.3g} vs "
                         + ("-" if c.get("baseline_pairs_per_jump") is None else
                            f"{c['baseline_pairs_per_jump']:.3g} ± {c['baseline_pairs_std'] or 0:.2g}"))
        return "\n".join(lines)


# ============================================================================ analysis
class _Collective:
    """Streamed collective-jump counter (jumps arrive in entry-frame order).

    A jump has a partner when another ion's jump has its entry frame within ±W frames and its midpoint within
    D Å (minimum image in the reference cell).  The baseline compares each jump with the other ions' jumps
    L_k frames earlier (the other ions' jump times shifted by L_k: a per-ion time shift that keeps every
    ion's own jump statistics and the spatial pattern but removes correlations shorter than L_k − W).
    """

    def __init__(self, window, distance, lags, n_frames, cell, batch=4096, use_ext=True):
        self.use_ext = use_ext
        self.W, self.D, self.lags = int(window), float(distance), [int(x) for x in lags]
        self.n_frames, self.cell, self.batch = int(n_frames), np.asarray(cell, float), int(batch)
        self.t = np.zeros(0, dtype=np.int64)
        self.ion = np.zeros(0, dtype=np.int64)
        self.mid = np.zeros((0, 3))
        self.done = 0              # first unfinalised jump in the buffer
        self.n_eligible = 0
        self.n_with_partner = 0
        self.n_pairs = 0
        self.base_eligible = np.zeros(len(self.lags), dtype=np.int64)
        self.base_with = np.zeros(len(self.lags), dtype=np.int64)
        self.base_pairs = np.zeros(len(self.lags), dtype=np.int64)
        self.max_buffer = 0

    def add(self, t, ion, mid):
        self.t = np.concatenate([self.t, t])
        self.ion = np.concatenate([self.ion, ion])
        self.mid = np.concatenate([self.mid, mid])
        self.max_buffer = max(self.max_buffer, len(self.t))

    def _partners(self, J, shift, count_all):
        """For jumps J: whether each has a partner among buffer jumps with entry in [t−shift−W, t−shift+W],
        and the number of such pairs (all of them with ``count_all``)."""
        tj = self.t[J] - shift
        lo = np.searchsorted(self.t, tj - self.W, "left")
        hi = np.searchsorted(self.t, tj + self.W, "right")
        return window_partners(self.t, self.ion, self.mid, self.cell, J, lo, hi, self.D, count_all=count_all,
                               use_ext=self.use_ext)

    def process(self, t_known):
        """Finalise every jump whose forward window ends before ``t_known`` (no later jump can enter before)."""
        n_final = int(np.searchsorted(self.t, t_known - self.W, "left"))
        last = self.n_frames - 1
        while self.done < n_final:
            J = np.arange(self.done, min(n_final, self.done + self.batch))
            tj = self.t[J]
            full = (tj - self.W >= 0) & (tj + self.W <= last)
            if full.any():
                has, npairs = self._partners(J[full], 0, True)
                self.n_eligible += int(full.sum())
                self.n_with_partner += int(has.sum())
                self.n_pairs += npairs
                for m, L in enumerate(self.lags):
                    el = full & (tj - L - self.W >= 0)
                    if el.any():
                        hb, nb = self._partners(J[el], L, True)
                        self.base_eligible[m] += int(el.sum())
                        self.base_with[m] += int(hb.sum())
                        self.base_pairs[m] += nb
            self.done = int(J[-1]) + 1
        # drop jumps no unfinalised jump can reach
        if self.done < len(self.t):
            keep_from = int(np.searchsorted(self.t, self.t[self.done] - (max(self.lags, default=0) + self.W), "left"))
        else:
            keep_from = int(np.searchsorted(self.t, t_known - (max(self.lags, default=0) + 2 * self.W), "left"))
        if keep_from > 0:
            self.t, self.ion, self.mid = self.t[keep_from:], self.ion[keep_from:], self.mid[keep_from:]
            self.done -= keep_from

    def result(self, dt):
        frac = self.n_with_partner / self.n_eligible if self.n_eligible else None
        with np.errstate(invalid="ignore", divide="ignore"):
            by_lag = np.where(self.base_eligible > 0, self.base_with / np.maximum(self.base_eligible, 1), np.nan)
            pairs_by_lag = np.where(self.base_eligible > 0, self.base_pairs / np.maximum(self.base_eligible, 1),
                                    np.nan)
        ok = np.isfinite(by_lag)
        base = float(np.mean(by_lag[ok])) if ok.any() else None
        std = float(np.std(by_lag[ok], ddof=1)) if ok.sum() > 1 else None
        ppj = None if not self.n_eligible else self.n_pairs / self.n_eligible
        bpp = float(np.mean(pairs_by_lag[ok])) if ok.any() else None
        return {"window_ps": self.W * dt, "distance_A": self.D, "n_jumps": int(self.n_eligible),
                "fraction": None if frac is None else float(frac),
                "pairs_per_jump": ppj, "baseline_pairs_per_jump": bpp,
                "baseline_pairs_std": float(np.std(pairs_by_lag[ok], ddof=1)) if ok.sum() > 1 else None,
                "pair_excess": None if ppj is None or not bpp else float(ppj / bpp),
                "baseline": base, "baseline_std": std, "lags_ps": [L * dt for L in self.lags],
                "baseline_by_lag": by_lag.tolist(), "baseline_n_jumps": self.base_eligible.tolist(),
                "excess": (None if frac is None or not base else float(frac / base)),
                "max_jumps_buffered": int(self.max_buffer)}


class Sites(AnalysisBase):
    """Streamed site analysis (the class behind :func:`sites`; same parameters)."""

    name = "sites"
    needs_unwrap = False   # assignment is periodic (minimum image)
    needs_velocities = False

    def __init__(self, species, site_set, *, debounce=None, min_residence=DEFAULT_MIN_RESIDENCE_PS,
                 window=DEFAULT_WINDOW_PS, pair_distance=DEFAULT_PAIR_DISTANCE_A, n_lags=8, frames_per_chunk=None,
                 tol=1e-9, jump_length_max=10.0, memory=None, progress=None, use_ext=True):
        super().__init__(memory=memory, progress=progress, use_ext=use_ext)
        if not isinstance(site_set, SiteSet):
            raise OptionError("site_set must be a SiteSet (sites_from_structure / sites_from_density)")
        self.species_arg, self.ss = species, site_set
        self.debounce_arg, self.min_residence = debounce, min_residence
        self.window, self.pair_distance, self.n_lags = window, pair_distance, int(n_lags)
        if frames_per_chunk is not None and int(frames_per_chunk) < 1:
            raise OptionError(f"frames_per_chunk must be a positive integer; got {frames_per_chunk}")
        self.fixed_chunk = None if frames_per_chunk is None else int(frames_per_chunk)
        self.tol, self.jump_length_max = float(tol), float(jump_length_max)

    # ------------------------------------------------------------------ setup
    def _atoms(self):
        return self.read_idx

    def _bytes_per_frame(self, n_atoms_read):
        S = self.ss.n_sites
        per_vertex = 4 * 3 * 8 * 2 if self.ss.kind == "polyhedral" else 3 * 8 * 2
        return int(n_atoms_read) * 3 * 8 * 4 + S * per_vertex + len(self.ion_idx) * 8 * 8

    def _chunk_frames(self):
        if self.fixed_chunk is not None:
            return self.fixed_chunk
        from ._streaming import capped_chunk_frames

        return capped_chunk_frames(self)

    def _prepare(self):
        traj, ss = self.traj, self.ss
        self._require_uniform("the site analysis (residence times)")
        dt = self.dt if self.dt is not None else float(traj.dt if traj.n_frames > 1 else 1.0)
        self.dt_ps = float(dt)
        sp = _species_list(self.species_arg)
        self.species = " ".join(sp)
        self.ion_idx = traj.select(sp)
        if ss.vertices is not None and ss.kind == "polyhedral":
            if ss.vertices.max() >= traj.n_atoms:
                raise OptionError(f"site vertices refer to atom {int(ss.vertices.max())}; the trajectory has "
                                  f"{traj.n_atoms} atoms")
            if np.isin(ss.vertices, self.ion_idx).any():
                raise OptionError("a site vertex is one of the mobile ions; vertices must be framework atoms")
            vid = np.unique(ss.vertices)
        else:
            vid = np.zeros(0, dtype=np.int64)
        self.read_idx = np.union1d(self.ion_idx, vid).astype(np.int64)
        self.ion_cols = np.searchsorted(self.read_idx, self.ion_idx)
        self.vert_cols = np.searchsorted(self.read_idx, ss.vertices) if len(vid) else None
        # debounce frames
        if self.debounce_arg is not None:
            n_min = int(self.debounce_arg)
            if n_min < 1:
                raise OptionError(f"debounce must be at least 1 frame; got {self.debounce_arg}")
        else:
            mr = self.min_residence
            if mr is None or not (np.isfinite(mr) and mr >= 0):
                raise OptionError(f"min_residence must be a non-negative time in ps; got {mr}")
            n_min = max(1, math.ceil(mr / dt - 1e-9))
        self.n_min = n_min
        for nm, v in (("window", self.window), ("pair_distance", self.pair_distance)):
            if not (v is not None and np.isfinite(v) and v >= 0):
                raise OptionError(f"{nm} must be a non-negative number; got {v}")
        S, T, N = ss.n_sites, ss.n_types, len(self.ion_idx)
        if S == 0:
            raise OptionError("no sites to assign to")
        if 8 * (S * 30 + T * T * 8 + N * 16) > 0.5 * self.budget:
            raise OptionError(f"{S} sites need more than half the memory budget {format_bytes(self.budget)}; "
                              "use a larger memory= (--memory)")
        self.cell0 = np.asarray(traj.cells[self.frames[0]], dtype=np.float64)
        self._check_geometry()
        # accumulators
        self.type_of = np.asarray(ss.site_type, dtype=np.int64)
        self.raw_counts = np.zeros(S, dtype=np.int64)
        self.n_unassigned = 0
        self.time_in_site = np.zeros(S, dtype=np.int64)
        self.res_edges = _RES_EDGES_FRAMES
        self.res_hist = np.zeros((T, len(self.res_edges) - 1), dtype=np.int64)
        self.res_n = np.zeros(T, dtype=np.int64)
        self.res_sum = np.zeros(T, dtype=np.int64)
        self.res_sum2 = np.zeros(T, dtype=np.float64)
        self.exits = np.zeros(T, dtype=np.int64)
        self.n_left_cens = np.zeros(T, dtype=np.int64)
        self.trans = np.zeros((T, T), dtype=np.int64)
        self.closed_first = np.zeros(N, dtype=bool)
        self.state = DebounceState(N)
        self.len_edges = np.linspace(0.0, self.jump_length_max, 201)
        self.len_hist = np.zeros(200, dtype=np.int64)
        self.len_sum = 0.0
        self.len_pair_sum = np.zeros((T, T))
        self.orient = np.zeros((3, 3))
        self.n_jumps = 0
        self.cross = np.zeros(T, dtype=np.int64)      # sign changes of (x − centre) per component
        self.cross_pairs = np.zeros(T, dtype=np.int64)  # consecutive frame pairs in the same site
        self.prev_site = np.full(N, -1, dtype=np.int64)
        self.prev_sign = np.zeros((N, 3), dtype=np.int8)
        W = round(self.window / dt)
        L0 = 2 * W + 1
        n_lags = max(1, min(self.n_lags, int((self.n_frames // 2 - W) // L0))) if self.n_frames // 2 - W >= L0 else 0
        self.coll = _Collective(W, self.pair_distance, [L0 * (k + 1) for k in range(n_lags)], self.n_frames, self.cell0,
                                use_ext=self.use_ext)
        self.preview = FrameTableWriter(None, ["time_ps"] + [f"n_{n}" for n in ss.type_names], preview_rows=4000)
        self.t_next = 0

    def _check_geometry(self):
        """Sites must span less than half the cell (the kernels' minimum-image convention)."""
        from ..kernels.pbc import perpendicular_widths

        ss, cell = self.ss, self.cell0
        half = 0.5 * float(np.min(perpendicular_widths(cell)))
        if ss.kind == "polyhedral":
            f0 = int(self.frames[0])
            pos = self.traj.read(atoms=np.unique(ss.vertices), frames=slice(f0, f0 + 1))
            p = np.asarray(pos.positions[0] if hasattr(pos, "positions") else pos[0], dtype=np.float64)
            lut = {int(a): k for k, a in enumerate(np.unique(ss.vertices))}
            vf = p[np.vectorize(lut.get)(ss.vertices)] @ np.linalg.inv(cell)
            e = _reduce(vf[:, 1:] - vf[:, :1]) @ cell
            longest = float(np.max(np.linalg.norm(e, axis=-1)))
            if longest >= half:
                raise OptionError(f"a site edge is {longest:.2f} Å long, not shorter than half the cell width "
                                  f"{half:.2f} Å; the cell is too small for these polyhedra")
            self.max_edge_A = longest
        if ss.kind == "sphere" and ss.radius_A >= half:
            raise OptionError(f"radius {ss.radius_A:g} Å must be below half the cell width {half:.2f} Å")

    # ------------------------------------------------------------------ per chunk
    def _centres(self, pos, cells):
        """Site centres per frame (F, S, 3), Å: the reference centres in each frame's cell, or for polyhedra
        the centroid of the current vertices."""
        if self.ss.kind == "polyhedral":
            v = pos[:, self.vert_cols]                                   # (F, S, 4, 3)
            inv = np.linalg.inv(cells)
            ef = _reduce(np.einsum("tsjk,tkl->tsjl", v[:, :, 1:] - v[:, :, :1], inv))
            return v[:, :, 0] + np.einsum("tsl,tlk->tsk", ef.sum(2), cells) / 4.0
        return np.einsum("sl,tlk->tsk", self.ss.frac, cells)

    def _accumulate(self, chunk):
        ss = self.ss
        pos = chunk.positions - chunk.origins[:, None, :]
        cells = np.ascontiguousarray(chunk.cells, dtype=np.float64)
        ions = np.ascontiguousarray(pos[:, self.ion_cols])
        F = len(ions)
        if ss.kind == "polyhedral":
            raw = assign_polyhedra(ions, np.ascontiguousarray(pos[:, self.vert_cols]), cells, tol=self.tol,
                                   use_ext=self.use_ext)
        else:
            centres = self._centres(pos, cells)
            raw = assign_nearest(ions, centres, cells, radius=ss.radius_A if ss.kind == "sphere" else None,
                                 use_ext=self.use_ext)
        frame0 = self.t_next
        self.t_next += F
        ok = raw >= 0
        self.raw_counts += np.bincount(raw[ok], minlength=ss.n_sites)
        self.n_unassigned += int((~ok).sum())
        T = ss.n_types
        per_type = np.zeros((F, T), dtype=np.int64)
        rt = np.where(ok, self.type_of[np.where(ok, raw, 0)], T)
        for t in range(T):
            per_type[:, t] = (rt == t).sum(1)
        self.preview.append(np.column_stack([self.times[frame0:frame0 + F] - self.times[0], per_type]))
        self._attempt(ions, raw, pos, cells)
        ev = debounce(raw, frame0, self.n_min, self.state, use_ext=self.use_ext)
        self._events(ev, cells, frame0)
        self.coll.process(self.t_next - (self.n_min - 1))

    def _attempt(self, ions, raw, pos, cells):
        """Sign changes of the ion–site-centre vector between consecutive frames in the same site."""
        centres = self._centres(pos, cells)
        safe = np.where(raw >= 0, raw, 0)
        c = np.take_along_axis(centres, safe[:, :, None].repeat(3, 2), axis=1)   # (F, N, 3)
        d = np.einsum("til,tlk->tik", _reduce(np.einsum("tik,tkl->til", ions - c, np.linalg.inv(cells))), cells)
        sign = np.where(d >= 0, 1, -1).astype(np.int8)
        site = np.where(raw >= 0, raw, -1)
        prev_site = np.concatenate([self.prev_site[None], site[:-1]])
        prev_sign = np.concatenate([self.prev_sign[None], sign[:-1]])
        same = (site >= 0) & (site == prev_site)
        flips = (sign != prev_sign).sum(-1)
        typ = self.type_of[safe]
        self.cross += np.bincount(typ[same], weights=flips[same], minlength=self.ss.n_types).astype(np.int64)
        self.cross_pairs += np.bincount(typ[same], minlength=self.ss.n_types)
        self.prev_site, self.prev_sign = site[-1].copy(), sign[-1].copy()

    def _events(self, ev, cells, frame0):
        if len(ev) == 0:
            return
        ion, fr, to, entry, fstart = ev.T
        jump = fr >= 0
        if not jump.any():
            return
        ion, fr, to, entry, fstart = ion[jump], fr[jump], to[jump], entry[jump], fstart[jump]
        dur = entry - fstart
        np.add.at(self.time_in_site, fr, dur)
        tf, tt = self.type_of[fr], self.type_of[to]
        T = self.ss.n_types
        np.add.at(self.trans, (tf, tt), 1)
        self.exits += np.bincount(tf, minlength=T)
        # the first closed run of an ion began before we knew where it came from: left-censored
        first = np.zeros(len(ion), dtype=bool)
        u, i0 = np.unique(ion, return_index=True)
        first[i0[~self.closed_first[u]]] = True
        self.closed_first[u] = True
        self.n_left_cens += np.bincount(tf[first], minlength=T)
        comp = ~first
        if comp.any():
            b = np.searchsorted(self.res_edges, dur[comp], "right") - 1
            np.add.at(self.res_hist, (tf[comp], np.clip(b, 0, self.res_hist.shape[1] - 1)), 1)
            self.res_n += np.bincount(tf[comp], minlength=T)
            self.res_sum += np.bincount(tf[comp], weights=dur[comp], minlength=T).astype(np.int64)
            self.res_sum2 += np.bincount(tf[comp], weights=dur[comp].astype(float) ** 2, minlength=T)
        # jump vectors between the reference centres, in the cell of the confirming frame
        conf = entry + self.n_min - 1 - frame0
        conf = np.clip(conf, 0, len(cells) - 1)
        df = _reduce(self.ss.frac[to] - self.ss.frac[fr])
        vec = np.einsum("jl,jlk->jk", df, cells[conf])
        ln = np.linalg.norm(vec, axis=1)
        self.n_jumps += len(ln)
        self.len_hist += np.histogram(np.minimum(ln, self.jump_length_max * (1 - 1e-12)), self.len_edges)[0]
        self.len_sum += float(ln.sum())
        np.add.at(self.len_pair_sum, (tf, tt), ln)
        u = vec / np.where(ln > 0, ln, 1.0)[:, None]
        self.orient += u.T @ u
        mid = self.ss.frac[fr] + 0.5 * df
        self.coll.add(entry, ion, mid - np.floor(mid))

    # ------------------------------------------------------------------ finish
    def _finish(self):
        ss, dt, nf = self.ss, self.dt_ps, self.n_frames
        self.coll.process(np.iinfo(np.int64).max // 4)
        T, S, N = ss.n_types, ss.n_sites, len(self.ion_idx)
        st = self.state
        open_ = st.cur >= 0
        np.add.at(self.time_in_site, st.cur[open_], nf - st.cur_start[open_])
        right_cens = np.bincount(self.type_of[st.cur[open_]], minlength=T)
        time_type = np.bincount(self.type_of, weights=self.time_in_site, minlength=T)
        raw_type = np.bincount(self.type_of, weights=self.raw_counts, minlength=T)
        n_assigned = self.raw_counts.sum()
        residence = []
        for t in range(T):
            n = int(self.res_n[t])
            mean = self.res_sum[t] / n if n else None
            sem = None
            if n > 1:
                var = (self.res_sum2[t] - n * mean ** 2) / (n - 1)
                sem = math.sqrt(max(var, 0.0) / n) * dt
            ex = int(self.exits[t])
            residence.append({"type": ss.type_names[t], "n_complete": n, "mean_ps": None if mean is None else mean * dt,
                              "sem_ps": sem, "tau_exit_ps": None if not ex else time_type[t] * dt / ex,
                              "tau_exit_err_ps": None if not ex else time_type[t] * dt / ex / math.sqrt(ex),
                              "n_exits": ex, "n_left_censored": int(self.n_left_cens[t]),
                              "n_right_censored": int(right_cens[t]), "time_ps": float(time_type[t] * dt)})
        with np.errstate(invalid="ignore", divide="ignore"):
            tt = (time_type * dt)[:, None]
            rates = np.where(tt > 0, self.trans / np.where(tt > 0, tt, 1), np.nan)
            rates_err = np.where(tt > 0, np.sqrt(self.trans) / np.where(tt > 0, tt, 1), np.nan)
            by_pair = np.where(self.trans > 0, self.len_pair_sum / np.maximum(self.trans, 1), np.nan)
            nu_t = np.where(self.cross_pairs > 0, self.cross / (6.0 * np.maximum(self.cross_pairs, 1) * dt), np.nan)
        cp = int(self.cross_pairs.sum())
        nu = float(self.cross.sum() / (6.0 * cp * dt)) if cp else None
        total_time = float(time_type.sum())
        n_sites_type = np.bincount(self.type_of, minlength=T)
        meta = {"debounce_frames": int(self.n_min), "debounce_ps": self.n_min * dt,
                "min_residence_ps": None if self.debounce_arg is not None else self.min_residence,
                "frames": [self.frame_range.start, self.frame_range.stop, self.frame_range.step],
                "sites": ss.source, "kind": ss.kind, "radius_A": ss.radius_A,
                "barycentric_tol": self.tol if ss.kind == "polyhedral" else None,
                "nyquist_THz": 1.0 / (2.0 * dt),
                "ions_never_assigned": int((~open_).sum()),
                "residence": "runs between back-dated entries; an ion's first run and runs open at the end are "
                             "censored and excluded from the distribution; tau_exit = committed time / exits",
                "collective_baseline": "other ions' jump times shifted by L_k = k(2W+1) frames (time-shift "
                                       "surrogate of per-ion shuffling)",
                "delocalised": bool(ss.source.get("delocalised", False)),
                "delocalised_reason": ss.source.get("delocalised_reason"),
                "memory_bytes": int(self.budget), "frames_per_chunk": int(getattr(self, "frames_per_chunk", 0) or 0),
                "kernel": "compiled (ext/_sites.pyx)" if self.use_ext else "numpy twin"}
        return SitesResult(
            species=self.species, n_ions=N, n_frames=nf, dt_ps=dt, kind=ss.kind, n_sites=S,
            type_names=list(ss.type_names), site_type=self.type_of.copy(), site_frac=np.asarray(ss.frac, float),
            n_sites_per_type=n_sites_type, occupancy_raw=self.raw_counts / nf, occupancy=self.time_in_site / nf,
            type_fraction_raw=raw_type / n_assigned if n_assigned else np.full(T, np.nan),
            type_fraction=time_type / total_time if total_time else np.full(T, np.nan),
            unassigned_fraction=float(self.n_unassigned / (N * nf)) if N else 0.0,
            residence=residence, residence_edges_ps=np.maximum(self.res_edges, 0) * dt, residence_hist=self.res_hist,
            transitions=self.trans, rates_per_ps=rates, rates_err_per_ps=rates_err,
            jump_rate_per_ps=float(self.n_jumps / (N * nf * dt)) if N else 0.0,
            attempt_frequency_THz=nu, attempt_frequency_type_THz=nu_t, n_jumps=int(self.n_jumps),
            jump_length_edges_A=self.len_edges, jump_length_hist=self.len_hist,
            jump_length_mean_A=self.len_sum / self.n_jumps if self.n_jumps else None,
            jump_length_by_pair_A=by_pair, jump_orientation=self.orient / self.n_jumps if self.n_jumps
            else np.full((3, 3), np.nan),
            collective=self.coll.result(dt), occupancy_preview=self.preview.preview(), meta=meta)


def assign_sites(traj, species, site_set, *, start=None, stop=None, step=None, use_ext=True) -> np.ndarray:
    """Per-frame site of every ion, in memory (for inspection and tests; grows with the frames).

    Parameters
    ----------
    traj : Trajectory
    species : str
    site_set : SiteSet
    start, stop, step : int, optional
    use_ext : bool

    Returns
    -------
    ndarray of int64, shape (n_frames, n_ions)
        Site index (−1 = in no site), the raw assignment before the debounce.
    """
    ion_idx = traj.select(_species_list(species))
    vid = np.unique(site_set.vertices) if site_set.kind == "polyhedral" else np.zeros(0, dtype=np.int64)
    read_idx = np.union1d(ion_idx, vid).astype(np.int64)
    ch = traj.read(atoms=read_idx, start=start, stop=stop, step=step)
    pos = ch.positions - ch.origins[:, None, :]
    cells = np.ascontiguousarray(ch.cells, dtype=np.float64)
    ions = np.ascontiguousarray(pos[:, np.searchsorted(read_idx, ion_idx)])
    if site_set.kind == "polyhedral":
        verts = np.ascontiguousarray(pos[:, np.searchsorted(read_idx, site_set.vertices)])
        return assign_polyhedra(ions, verts, cells, use_ext=use_ext)
    centres = np.einsum("sl,tlk->tsk", site_set.frac, cells)
    return assign_nearest(ions, centres, cells, radius=site_set.radius_A if site_set.kind == "sphere" else None,
                          use_ext=use_ext)


def sites(traj, species, *, reference=None, site_species=None, kind=None, vertex_species=None, cutoff=3.0,
          radius=None, align=None, type_by="label", site_set=None, spacing=0.2, smooth=DEFAULT_SMOOTH_A,
          min_separation=1.0, threshold=0.05, min_prominence=DEFAULT_MIN_PROMINENCE,
          significance=DEFAULT_SIGNIFICANCE, debounce=None, min_residence=DEFAULT_MIN_RESIDENCE_PS, window=DEFAULT_WINDOW_PS,
          pair_distance=DEFAULT_PAIR_DISTANCE_A, start=None, stop=None, step=None, frames_per_chunk=None,
          memory=None, progress=None, use_ext=True) -> SitesResult:
    """Sites of a mobile species: assignment, occupancy, residence times, transitions, jumps (docs/sites.md).

    Parameters
    ----------
    traj : Trajectory
    species : str
        Mobile species (e.g. ``"Li"``).
    reference : str, path, pymatgen Structure or ASE Atoms, optional
        Reference structure for the sites (:func:`sites_from_structure`); without it (and without
        ``site_set``) the sites are the maxima of the species' own density (:func:`sites_from_density`, one
        extra streamed pass).
    site_species : str or sequence of str, optional
        Species of the reference whose positions are the site centres (default ``species``).
    kind : {"polyhedral", "sphere", "voronoi"}, optional
        Default polyhedral when ``vertex_species`` is given, sphere when ``radius`` is, else voronoi.
    vertex_species : str or sequence, optional
        Framework species of the polyhedra's vertices (e.g. ``"S Cl"``).
    cutoff : float, Å
        Largest centre–vertex distance in the reference.
    radius : float, Å
        Sphere radius.
    align : str, optional
        Species to align the reference on (e.g. ``"P"``).
    type_by : {"label", "species"}
        Site types from CIF labels or from the centre species.
    site_set : SiteSet, optional
        Ready-made sites (overrides ``reference``).
    spacing, smooth, min_separation, threshold, min_prominence, significance : float
        Density-maxima sites (:func:`sites_from_density_grid`): grid spacing (Å), Gaussian σ (Å), merging
        distance (Å), smallest peak as a fraction of the highest, smallest relative persistence, smallest
        persistence in standard errors of the density (split-half noise).
    debounce : int, optional
        Frames an ion must stay in a new site before it counts as a jump; default from ``min_residence``.
    min_residence : float, ps
        Default debounce time (:data:`DEFAULT_MIN_RESIDENCE_PS`): n_min = max(1, ⌈min_residence/dt⌉).
    window : float, ps
        Collective jumps: largest time between the two entries.
    pair_distance : float, Å
        Collective jumps: largest distance between the two jump midpoints.
    start, stop, step : int, optional
        Frame range.
    frames_per_chunk : int, optional
    memory : str or int, optional
        Memory budget (default half the available RAM).
    progress : bool, optional
    use_ext : bool
        Compiled kernels (True) or their numpy twins.

    Returns
    -------
    SitesResult

    Notes
    -----
    Raw assignment: polyhedral sites contain the ion (barycentric coordinates ≥ 0 in the current vertex
    positions; the deepest when on a shared face), spheres contain it within r of the centre, Voronoi takes
    the nearest centre.  Committed site: an ion enters a new site once it has been there for n_min
    consecutive frames, back-dated to the first of them; frames in no site or back in the committed site
    reset the count, so rattling across a boundary shorter than n_min frames is not a jump.  Residence time
    of a run = entry of the next site − entry of this one.
    """
    if site_set is None:
        if reference is not None:
            if kind is None:
                kind = "polyhedral" if vertex_species is not None else ("sphere" if radius is not None else "voronoi")
            site_set = sites_from_structure(reference, traj, centre_species=site_species or species, kind=kind,
                                            vertex_species=vertex_species, cutoff=cutoff, radius=radius, align=align,
                                            type_by=type_by, frame=traj.frame_range(start=start, stop=stop,
                                                                                    step=step).start)
        else:
            kind = kind or ("sphere" if radius is not None else "voronoi")
            site_set = sites_from_density(traj, species, spacing=spacing, smooth=smooth, min_separation=min_separation,
                                          threshold=threshold, min_prominence=min_prominence,
                                          significance=significance, kind=kind, radius=radius, start=start,
                                          stop=stop, step=step, memory=memory, progress=progress)
    elif kind is not None and kind != site_set.kind:
        site_set = site_set.with_kind(kind, radius)
    return Sites(species, site_set, debounce=debounce, min_residence=min_residence, window=window,
                 pair_distance=pair_distance, frames_per_chunk=frames_per_chunk, memory=memory, progress=progress,
                 use_ext=use_ext).run(traj, start, stop, step)
