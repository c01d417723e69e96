"""Bond-valence energetics of a crystal structure (paper 002; SPEC §10): E_mig, E_rot and the coupling mode.

* **BVSE landscape** of an ion: the bond-valence site energy (softBV form, Chen & Adams) of a test ion on a
  grid over the cell — Morse-type terms to the counter-ions plus screened Coulomb repulsion from the
  like-charged ions, with the softBV parameters.  The energies, their parameter tables and the grid come
  from **BVlain** (:class:`bvlain.core.Lain`, MIT licence; ``pip install 'anionmotion[structure]'``):
  this module calls it and does not carry parameters of its own.  BVlain removes *every* ion of the test
  ion's element from the structure before computing the landscape (as softBV does for the mobile ion).
* **E_mig**: BVlain's percolation barriers — the lowest energy above the landscape minimum at which the
  region of the mobile cation percolates in 1, 2 or 3 dimensions (``E_mig_1D/2D/3D_eV``).
* **E_rot** (paper 002): for every symmetry-distinct polyanion centre, the BVSE landscape of its *ligand*
  ion (O²⁻ of SO4, S²⁻ of PS4 …, computed like softBV/paper 002 with all ions of the ligand's element
  removed) and the lowest energy at which the ligand-accessible region forms a closed path around its own
  centre (algorithm in :mod:`anionmotion.structures._erot`).
* **Main coupling mode**: "rotate" when E_mig / E_rot ≥ :data:`ROTATE_RATIO` (= 2), else "vibrate".  Every
  row of paper 002's Table S1 follows this rule (its "vibrate" rows have ratios 1.00–1.94, its "rotate"
  rows 2.62–64.6).  E_mig in the ratio is, by default, the ligand's own percolation energy
  (``ratio_basis="ligand"``): paper 002's Methods place "vibration" below E_rot and "rotation" between E_rot
  and E_mig on the ligand's energy scale, and its Table S1 (E_mig up to 6.9 eV, 2.8–3.2 eV for the fast Li
  argyrodites; E_rot = E_mig in several rows) cannot hold cation barriers.  ``ratio_basis="cation"`` uses
  the mobile cation's barrier (``E_mig_1D/2D/3D_eV``, always reported) instead.  Both ratios and modes are
  always reported; see ``docs/bond-valence.md``.

Energies are in eV, lengths in Å.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import OptionError, OptionTypeError

__all__ = ["bv_summary", "bvse_landscape", "migration_barriers", "rotation_energies", "write_landscape",
           "read_landscape", "BVLandscape", "BV_SOURCE", "ROTATE_RATIO", "DEFAULT_GRID_SPACING", "DEFAULT_SHELL",
           "DEFAULT_MIGRATION_DIMENSION", "RATIO_BASES", "DEFAULT_RATIO_BASIS", "assign_oxidation_states",
           "check_bv_parameters"]

#: where the bond-valence parameters come from (stated in every output)
BV_SOURCE = ("softBV bond-valence site-energy parameters (H. Chen, S. Adams, IUCrJ 4 (2017) 614; "
             "H. Chen, L. L. Wong, S. Adams, Acta Cryst. B75 (2019) 18) as tabulated in BVlain {version} "
             "(A. Dembitskiy et al.)")
#: "rotate" when E_mig / E_rot is at least this (paper 002 Table S1: vibrate ≤ 1.94, rotate ≥ 2.62)
ROTATE_RATIO = 2.0
#: default spacing (Å) of the BVSE grids (BVlain's ``resolution``)
DEFAULT_GRID_SPACING = 0.2
#: ligand shell searched for E_rot, as fractions of the polyanion's mean centre–ligand distance
DEFAULT_SHELL = (0.6, 1.4)
#: which percolation barrier is E_mig in the ratio and the mode
DEFAULT_MIGRATION_DIMENSION = "3D"
#: whose percolation energy is E_mig in the ratio: the mobile cation's (SPEC §10) or the ligand's
RATIO_BASES = ("cation", "ligand")
DEFAULT_RATIO_BASIS = "ligand"
#: BVlain defaults used here (neighbour cutoff Å, neighbours per grid point, Coulomb screening factor)
R_CUT_A = 10.0
K_NEIGHBOURS = 100
SCREENING_F = 0.74
#: energies searched above the landscape minimum (eV): percolation (BVlain's ``encut``) and E_rot
ENCUT_EV = 10.0
#: bytes BVlain's own bvse_distribution holds per grid point and neighbour (≈ 11 float64 arrays of shape
#: (points, k); measured 1.2 GB peak for 48³ points × 100 neighbours).  The memory check still uses it although
#: :func:`_bvse_distribution` evaluates the grid in blocks and needs far less (a conservative refusal).
BYTES_PER_NEIGHBOUR = 88
#: landscape files hold min(E − E_min, this) eV (the repulsive cores of the ions overflow otherwise)
FILE_CAP_EV = 100.0


@contextlib.contextmanager
def _quiet():
    """Silence the third-party warnings of BVlain/pymatgen internals (scipy deprecations, pymatgen's error
    handling notice) that say nothing about the user's input."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def _need_bvlain():
    try:
        import bvlain
        from bvlain.core import Lain
    except ImportError as err:
        raise OptionError(f"bond-valence energetics need bvlain and pymatgen ({err}); "
                          "pip install 'anionmotion[structure]'") from err
    return Lain, getattr(bvlain, "__version__", "?")


def _bvlain_version():
    try:
        from importlib.metadata import version

        return version("bvlain")
    except Exception:  # pragma: no cover - metadata missing
        return "?"


# ---------------------------------------------------------------------------------------------- structure
def _pymatgen_of(structure):
    """Ordered pymatgen Structure (fractional coordinates wrapped into [0, 1)) of an anionmotion Structure."""
    structure.require_ordered("bond-valence energetics")
    pmg = structure.to_pymatgen()
    from pymatgen.core import Structure as PStructure

    return PStructure(pmg.lattice, [str(s) for s in structure.species], structure.fractional)


def assign_oxidation_states(structure, oxidation_states=None):
    """Oxidation state of every site: ``oxidation_states`` (element → charge) if given, else pymatgen's
    BVAnalyzer (site by site, so mixed valence is kept), else the most probable guess of
    :meth:`pymatgen.core.Composition.oxi_state_guesses`.

    Returns
    -------
    (pymatgen Structure decorated with oxidation states, dict element → int (or sorted list of ints for a
    mixed-valence element), str how they were assigned)
    """
    pmg = _pymatgen_of(structure)
    elements = sorted({str(s) for s in structure.species})
    if oxidation_states:
        try:
            ox = {str(k): int(v) for k, v in dict(oxidation_states).items()}
        except (TypeError, ValueError) as err:
            raise OptionTypeError(f"oxidation_states must map element → integer charge; got {oxidation_states!r}") \
                from err
        missing = [e for e in elements if e not in ox]
        if missing:
            raise OptionError(f"{structure.path}: oxidation_states has no charge for {', '.join(missing)} "
                              f"(given: {ox})")
        pmg.add_oxidation_state_by_element(ox)
        how = "given"
    else:
        try:
            from pymatgen.analysis.bond_valence import BVAnalyzer

            with _quiet():
                pmg = BVAnalyzer(forbidden_species=["O-", "P3-"]).get_oxi_state_decorated_structure(pmg)
            how = "pymatgen BVAnalyzer"
        except (ValueError, KeyError, TypeError):
            with _quiet():
                guesses = pmg.composition.oxi_state_guesses(max_sites=-1)
            if not guesses:
                raise OptionError(f"{structure.path}: could not assign oxidation states to {structure.formula}; give "
                                  "them (--oxidation-states Li=1,P=5,S=-2)") from None
            pmg.add_oxidation_state_by_element({k: int(round(v)) for k, v in guesses[0].items()})
            how = "pymatgen oxi_state_guesses (BVAnalyzer failed)"
    charges = [int(round(site.specie.oxi_state)) for site in pmg]
    if sum(charges) != 0:
        raise OptionError(f"{structure.path}: oxidation states {_by_element(pmg)} leave the cell with charge "
                          f"{sum(charges):+d}; give charges that balance")
    return pmg, _by_element(pmg), how


def _by_element(pmg):
    """element → charge, or the sorted list of charges of a mixed-valence element."""
    out = {}
    for site in pmg:
        out.setdefault(site.specie.symbol, set()).add(int(round(site.specie.oxi_state)))
    return {k: (next(iter(v)) if len(v) == 1 else sorted(v)) for k, v in sorted(out.items())}


def _charges(value):
    return value if isinstance(value, list) else [value]


def _param_tables():
    Lain, _ = _need_bvlain()
    lain = Lain(verbose=False)
    with open(lain.cation_file, "rb") as fh:
        cation = pickle.load(fh)
    with open(lain.anion_file, "rb") as fh:
        anion = pickle.load(fh)
    return cation, anion


def _ion_label(element, charge):
    return f"{element}{abs(int(charge))}{'+' if charge > 0 else '-'}"


def check_bv_parameters(element, charge, oxidation_states, path="<structure>"):
    """Raise :class:`OptionError` naming the first counter-ion without softBV parameters for ``element``."""
    from pymatgen.core import Element

    cation, anion = _param_tables()
    z = Element(element).Z
    table = cation if charge > 0 else anion
    ion = _ion_label(element, charge)
    if z not in table or int(charge) not in table[z]:
        raise OptionError(f"{path}: no softBV bond-valence parameters for {ion} in BVlain's tables "
                          "(it cannot be the test ion)")
    row = table[z][int(charge)]
    for other, qs in oxidation_states.items():
        for q in _charges(qs):
            if other == element or q == 0 or (q > 0) == (charge > 0):
                continue
            zo = Element(other).Z
            if zo in row and int(q) in row[zo]:
                continue
            raise OptionError(f"{path}: no softBV bond-valence parameters for the pair {ion}–"
                              f"{_ion_label(other, q)} in BVlain's tables; bond-valence energies cannot be "
                              "computed for this structure")


# ---------------------------------------------------------------------------------------------- landscape
@dataclass
class BVLandscape:
    """BVSE of one test ion on a periodic grid.

    Attributes
    ----------
    ion : str
        Test ion, e.g. ``"Li1+"``, ``"O2-"``.
    energy : ndarray (n1, n2, n3), eV
        Site energy at fractional position (i/n1, j/n2, k/n3) (BVlain's grid without its repeated last
        plane), absolute (not shifted).
    cell : ndarray (3, 3), Å
    species, frac :
        The structure (for the grid files).
    grid_spacing : float, Å
        Requested spacing (BVlain's ``resolution``); the real spacing is |a_i| / n_i.
    lain : bvlain.core.Lain
        The BVlain object (holds its own grid for its percolation analysis).
    seconds : float
    """

    ion: str
    energy: np.ndarray
    cell: np.ndarray
    species: list
    frac: np.ndarray
    grid_spacing: float
    lain: object = None
    seconds: float = 0.0
    meta: dict = field(default_factory=dict)

    @property
    def shape(self):
        return tuple(int(n) for n in self.energy.shape)

    @property
    def spacing_A(self):
        """Grid spacing along a, b, c (Å)."""
        return [float(np.linalg.norm(self.cell[i]) / self.energy.shape[i]) for i in range(3)]

    @property
    def minimum(self) -> float:
        return float(np.min(self.energy))

    def grid_info(self) -> dict:
        return {"ion": self.ion, "requested_spacing_A": self.grid_spacing, "shape": list(self.shape),
                "spacing_A": [round(s, 5) for s in self.spacing_A],
                "origin": "fractional (0, 0, 0); point (i, j, k) at (i/n1, j/n2, k/n3)",
                "minimum_eV": self.minimum}

    def interpolator(self):
        """``f(points (k, 3) Å) -> (k,) eV``: periodic trilinear interpolation of the grid."""
        from scipy.ndimage import map_coordinates

        inv = np.linalg.inv(self.cell)
        n = np.array(self.energy.shape, dtype=np.float64)
        grid = self.energy

        def f(points):
            idx = (np.asarray(points, dtype=np.float64) @ inv) * n
            return map_coordinates(grid, idx.T, order=1, mode="grid-wrap")

        return f


def bvse_landscape(structure, ion, *, grid_spacing=DEFAULT_GRID_SPACING, oxidation_states=None, r_cut=R_CUT_A,
                   k=K_NEIGHBOURS, screening=SCREENING_F, memory=None, _decorated=None) -> BVLandscape:
    """BVSE landscape of ``ion`` (e.g. ``"Li"`` or ``"Li1+"``; the charge defaults to the assigned one).

    Parameters
    ----------
    structure : anionmotion.structures.Structure
        Ordered structure.
    ion : str
        Element, optionally with charge (``"Li1+"``, ``"O2-"``).
    grid_spacing : float, Å
        BVlain ``resolution``: n_i = floor(|a_i| / spacing) points per axis, both ends included (the last
        one is dropped here, so the periodic grid has n_i − 1 points at spacing |a_i| / (n_i − 1)).
    oxidation_states : dict, optional
        Element → charge; default assigned by :func:`assign_oxidation_states`.
    r_cut, k, screening :
        BVlain's neighbour cutoff (Å), neighbours per grid point and Coulomb screening factor f.
    memory : str or int, optional
        Budget (``"4GB"``; default half the available RAM).  A grid that would need more than
        :data:`BYTES_PER_NEIGHBOUR` bytes per grid point and neighbour (BVlain's own footprint; the block
        evaluation here needs far less, so the check is conservative) is refused before it is built, with the
        spacing that would fit.
    """
    Lain, _ = _need_bvlain()
    grid_spacing = _positive(grid_spacing, "grid_spacing")
    pmg, ox, _how = _decorated or assign_oxidation_states(structure, oxidation_states)
    element = "".join(ch for ch in str(ion) if ch.isalpha())
    element = element[:1].upper() + element[1:].lower()
    if element not in ox:
        raise OptionError(f"{structure.path}: no {element} in {structure.formula}")
    if isinstance(ox[element], list):
        raise OptionError(f"{structure.path}: {element} has several oxidation states {ox[element]}; a bond-valence "
                          "test ion needs one (give --oxidation-states)")
    charge = ox[element]
    if charge == 0:
        raise OptionError(f"{structure.path}: {element} has oxidation state 0; it cannot be a bond-valence test ion")
    check_bv_parameters(element, charge, ox, structure.path)
    _check_memory(structure, grid_spacing, k, memory)
    label = _ion_label(element, charge)
    t0 = time.perf_counter()
    lain = Lain(verbose=False)
    lain.read_structure(pmg.copy(), oxi_check=False)
    with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"), _quiet():  # BVlain's 1/r at padding
        data = _bvse_distribution(lain, label, grid_spacing, r_cut, k, screening)
    if min(data.shape) < 3:
        raise OptionError(f"{structure.path}: grid_spacing {grid_spacing} Å gives fewer than 2 grid points along a "
                          "cell axis; use a smaller spacing")
    energy = np.ascontiguousarray(data[:-1, :-1, :-1], dtype=np.float64)
    return BVLandscape(label, energy, structure.cell.copy(), [str(s) for s in structure.species],
                       structure.fractional.copy(), float(grid_spacing), lain, time.perf_counter() - t0,
                       {"r_cut_A": r_cut, "k_neighbours": k, "screening_f": screening})


#: grid points per block in :func:`_bvse_distribution` (≈ 1.6 MB per (points, k) array at k = 100)
BVSE_CHUNK = 2048


def _bvse_distribution(lain, mobile_ion, resolution, r_cut, k, f, chunk=BVSE_CHUNK):
    """BVlain's :meth:`~bvlain.core.Lain.bvse_distribution`, evaluated in blocks of grid points.

    The same steps with BVlain's own pieces — its parameters (``_get_params``), supercell, mesh and shift, the
    k nearest ions within ``r_cut`` from a :class:`scipy.spatial.cKDTree`, its ``BVSEPotential.Morse`` and
    ``Coulomb``, ``nan_to_num`` and the sum over the k neighbours of each point in the same order — so every
    grid value is bit-for-bit BVlain's (checked in ``tests/test_bv.py``).  BVlain builds about eleven
    (points, k) float64 arrays at once (1.2 GB at 48³ points); here they are (``chunk``, k), which avoids the page
    faults and cache misses of the large temporaries (2–3× faster); the tree query uses every core in a lone
    process, as BVlain does, and one thread in a worker process (``screen`` already runs one per core).
    Sets ``lain.data`` and ``lain.supercell`` as BVlain does.
    """
    from ase.build import make_supercell
    from bvlain.potentials import BVSEPotential
    from scipy.spatial import cKDTree

    lain.k, lain.r_cut, lain.resolution = k, r_cut, resolution
    lain._get_params(mobile_ion)
    scale = lain._scale_cell(lain.atoms.cell, r_cut=r_cut)
    shift = [np.median(np.arange(0, scale[i, i])) for i in range(3)]
    lain.supercell = make_supercell(lain.atoms, scale)
    sites = lain._cartesian_sites(lain._mesh(resolution=resolution, shift=shift))
    tree = cKDTree(lain.supercell.positions)
    r_min, alpha, r_c, d0, q, n = (lain._get_array(x) for x in ("r_min", "alpha", "r_c", "d0", "oxi_states", "n"))
    q = np.where(q * lain.q_mi > 0, q, 0)        # BVlain zeroes the charges of the counter-ions (after its take)
    energy = np.empty(len(sites))
    # all cores in a lone process (as BVlain); one thread in a pool worker (screen runs one worker per core)
    import multiprocessing

    workers = 1 if multiprocessing.parent_process() is not None else -1
    for s in range(0, len(sites), int(chunk)):
        dist, ids = tree.query(sites[s:s + chunk], k=k, distance_upper_bound=r_cut, workers=workers)
        morse = np.nan_to_num(BVSEPotential.Morse(dist, np.take(r_min, ids), np.take(d0, ids), np.take(alpha, ids)),
                              copy=False, nan=0.0).sum(axis=1)
        coulomb = np.nan_to_num(BVSEPotential.Coulomb(dist, lain.q_mi, np.take(q, ids), lain.rc_mi,
                                                      np.take(r_c, ids), lain.n_mi, np.take(n, ids), f=f),
                                copy=False, nan=0.0).sum(axis=1)
        energy[s:s + chunk] = morse + coulomb
    lain.distribution = energy
    lain.data = energy.reshape(lain.size)
    return lain.data


def _check_memory(structure, grid_spacing, k, memory):
    from ..analysis.base import format_bytes, resolve_memory

    budget = resolve_memory(memory)
    lengths = np.linalg.norm(structure.cell, axis=1)
    points = float(np.prod(np.floor(lengths / grid_spacing)))
    need = points * int(k) * BYTES_PER_NEIGHBOUR
    if need > budget:
        fit = grid_spacing * (need / budget) ** (1 / 3) * 1.05
        raise OptionError(f"{structure.path}: a BVSE grid at {grid_spacing:g} Å has {points:.3g} points and needs "
                          f"about {format_bytes(need)} in BVlain ({int(k)} neighbours per point), more than the memory "
                          f"budget {format_bytes(budget)}; use grid_spacing ≥ {fit:.2f} Å (--grid-spacing) or a "
                          "larger budget (--memory)")


def _positive(value, name):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise OptionTypeError(f"{name} must be a positive number; got {value!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise OptionError(f"{name} must be a positive number; got {value}")
    return value


def migration_barriers(landscape: BVLandscape, *, encut=ENCUT_EV, dimensions=("1D", "2D", "3D"), exact=False) -> dict:
    """BVlain's percolation barriers of ``landscape`` (eV above its minimum): ``{"E_1D": …, "E_2D": …, "E_3D": …}``.

    ``inf`` (JSON: null) when the region does not percolate in that dimension below ``encut``.
    The values are those of BVlain's ``percolation_barriers`` on its own grid (the one ``landscape`` came from,
    both end planes included): its bisection of the level to 0.01 eV, replayed from the exact percolation level
    with an exact count of the percolation dimension at each probe (:mod:`anionmotion.structures._percolation`:
    one labelling of the unit-cell grid and a small union-find on its boundary, shared by the three dimensions,
    instead of BVlain's labelling of a 2×2×2 tiling at each of ~40 probes — the same numbers, ~10× faster).
    ``dimensions`` limits the work to some of them.  ``exact=True`` returns the exact levels instead (the
    smallest grid energy above the minimum at which the region percolates; BVlain's value lies within 0.01 eV
    above it).
    """
    from ._percolation import barriers_like_bvlain

    dims = tuple(dimensions)
    grid = getattr(landscape.lain, "data", None)
    if grid is None:    # a landscape without BVlain's grid (built by hand): the periodic grid itself
        grid = landscape.energy
    with np.errstate(all="ignore"):
        bisected, levels = barriers_like_bvlain(np.asarray(grid, dtype=np.float64), encut=float(encut),
                                                dimensions=dims, exact=exact)
    res = levels if exact else bisected
    return {k: float(v) for k, v in res.items()}


# ---------------------------------------------------------------------------------------------- E_rot
def _polyanion_choices(structure, cation, center=None, ligand=None):
    """(centre, ligand, cutoff) pairs of isolated polyanions (all accepted candidates of detect_polyanions)."""
    from ..analysis.detect import detect_polyanions

    if (center is None) != (ligand is None):
        raise OptionError("give both center= and ligand= (or neither, to detect the polyanions)")
    if center is not None:
        # given: no bond-length limit of the detection; find_polyanions' own gap rule sets the cutoff
        return [(center, ligand, None, True)], f"{center}–{ligand} given"
    traj = structure.to_trajectory()
    choice = detect_polyanions(traj, cation=cation)
    pairs = []
    for c in choice.candidates:
        if c.get("accepted"):
            pairs.append((c["center"], c["ligand"], c["cutoff_A"], True))
    return pairs, choice.reason


def _right_handed(structure):
    """The structure with a right-handed cell: a left-handed one gets its a and b swapped (same lattice, same
    Cartesian positions).  Not :meth:`Structure.right_handed` (−a, −b, −c): BVlain rebuilds the cell from its
    lengths and angles, which for the negated basis inverts the crystal through the origin, and its percolation
    barriers on a grid are not exactly invariant under that."""
    if np.linalg.det(structure.cell) > 0:
        return structure
    from . import Structure

    meta = dict(structure.meta, bv_cell="a and b swapped: the file's cell is left-handed")
    return Structure(structure.species, structure.positions, structure.cell[[1, 0, 2]], masses=structure.masses,
                     labels=structure.labels, occupancies=structure.occupancies, site_index=structure.site_index,
                     path=structure.path, meta=meta)


def _cell_frame(cell):
    """Rows e1, e2, e3 of the crystal's own orthonormal frame (e1 ∥ a, e2 in the a–b plane, right-handed)."""
    e1 = cell[0] / np.linalg.norm(cell[0])
    b = cell[1] - (cell[1] @ e1) * e1
    e2 = b / np.linalg.norm(b)
    return np.stack([e1, e2, np.cross(e1, e2)])


def _check_shell(shell):
    try:
        shell = tuple(float(x) for x in shell)
    except (TypeError, ValueError):
        raise OptionTypeError(f"shell must be two numbers (fractions of the bond length); got {shell!r}") from None
    if len(shell) != 2 or not 0 < shell[0] < 1 < shell[1]:
        raise OptionError(f"shell must be two fractions of the bond length, inner < 1 < outer; got {shell}")
    return shell


def _equivalent_atoms(structure, symprec=1e-2):
    import spglib

    numbers = np.unique(structure.species, return_inverse=True)[1].astype(int)
    try:
        with _quiet():
            ds = spglib.get_symmetry_dataset((structure.cell, structure.fractional, numbers), symprec=symprec)
    except Exception:  # noqa: BLE001 - spglib's own error type differs between versions; no symmetry then
        ds = None
    if ds is None:
        return np.arange(structure.n_atoms)
    eq = ds.equivalent_atoms if hasattr(ds, "equivalent_atoms") else ds["equivalent_atoms"]
    return np.asarray(eq, dtype=np.int64)


def rotation_energies(structure, *, cation=None, center=None, ligand=None, grid_spacing=DEFAULT_GRID_SPACING,
                      oxidation_states=None, shell=DEFAULT_SHELL, min_hole_fraction=None, n_directions=None,
                      encut=ENCUT_EV, memory=None, _decorated=None, _landscapes=None, _notes=None) -> list:
    """E_rot of every symmetry-distinct polyanion centre (paper 002).

    Returns
    -------
    list of dict
        One per distinct centre: ``type`` (``"SO4"``), ``center``, ``ligand``, ``center_index`` (atom index),
        ``multiplicity`` (equivalent centres), ``bond_length_A`` (mean centre–ligand distance), ``shell_A``,
        ``E_rot_eV`` (None: no closed path within ``encut``), ``holes_sr``, ``ligand_ion``, ``n_directions``.
    """
    from ..analysis.polyanions import find_polyanions
    from ..kernels.pbc import minimum_image_ref
    from ._erot import DEFAULT_MIN_HOLE_FRACTION, fibonacci_sphere, orientation_landscape, rotation_level, \
        sphere_triangulation

    shell = _check_shell(shell)
    structure = _right_handed(structure)
    decorated = _decorated or assign_oxidation_states(structure, oxidation_states)
    pairs, reason = _polyanion_choices(structure, cation, center, ligand)
    out = []
    if _notes is not None:
        _notes.append(reason)
    if not pairs:
        return out
    chunk = structure.to_chunk()
    eq = _equivalent_atoms(structure)
    landscapes = {} if _landscapes is None else _landscapes
    frac_hole = DEFAULT_MIN_HOLE_FRACTION if min_hole_fraction is None else float(min_hole_fraction)
    for c, lig, cutoff, isolated in pairs:
        if not isolated:
            continue
        pa = find_polyanions(chunk, center=c, ligand=lig, cutoff=cutoff)
        if lig not in landscapes:
            landscapes[lig] = bvse_landscape(structure, lig, grid_spacing=grid_spacing, memory=memory,
                                             _decorated=decorated)
        land = landscapes[lig]
        f = land.interpolator()
        seen = {}
        for a, ci in enumerate(pa.centers):
            cls = int(eq[ci])
            seen.setdefault(cls, []).append(a)
        for cls, anions in seen.items():
            a = anions[0]
            ci = int(pa.centers[a])
            ligs = pa.ligands[a][pa.ligands[a] >= 0]
            vec = minimum_image_ref(structure.positions[ligs] - structure.positions[ci], structure.cell)
            d = float(np.mean(np.linalg.norm(vec, axis=1)))
            r_in, r_out = shell[0] * d, shell[1] * d
            h = min(land.spacing_A)
            m = n_directions or int(np.clip(4 * np.pi * d * d / (h / 2) ** 2, 1000, 20000))
            dirs = fibonacci_sphere(m) @ _cell_frame(structure.cell)   # attached to the crystal, not the lab
            tri, edges = sphere_triangulation(dirs)
            n_rad = int(np.ceil((r_out - r_in) / (h / 2))) + 1
            u, _ = orientation_landscape(f, structure.positions[ci], dirs, r_in, r_out, n_rad)
            res = rotation_level(u, dirs, tri, edges, vec, min_hole_sr=frac_hole * 4 * np.pi, e_max=encut)
            out.append({"type": pa.label, "center": c, "ligand": lig, "ligand_ion": land.ion,
                        "center_index": ci, "multiplicity": len(anions), "n_ligands": int(len(ligs)),
                        "bond_length_A": d, "shell_A": [r_in, r_out], "E_rot_eV": res.e_rot,
                        "holes_sr": res.holes_sr[:4], "n_directions": m, "n_radial": n_rad})
    return out


# ---------------------------------------------------------------------------------------------- summary
def _detect_cation(structure, cation):
    from ..analysis.detect import detect_cation

    choice = detect_cation(structure.to_trajectory(), cation)
    return choice


def bv_summary(structure, *, cation=None, grid_spacing=DEFAULT_GRID_SPACING, oxidation_states=None,
               center=None, ligand=None, migration_dimension=DEFAULT_MIGRATION_DIMENSION, shell=DEFAULT_SHELL,
               min_hole_fraction=None, encut=ENCUT_EV, keep_landscape=False, require_cation=False,
               ratio_basis=DEFAULT_RATIO_BASIS, memory=None) -> dict:
    """Bond-valence energetics of one structure: E_mig (1-D/2-D/3-D), E_rot per polyanion, ratio and mode.

    Parameters
    ----------
    structure : anionmotion.structures.Structure
        Ordered structure (see :func:`anionmotion.structures.load_structure`).
    cation : str, optional
        Mobile cation; default: the first of Li, Na, K, … present (as ``report`` detects it).
    grid_spacing : float, Å
        Spacing of the BVSE grids (cation and ligand landscapes).
    oxidation_states : dict, optional
        Element → charge (default: pymatgen's BVAnalyzer).
    center, ligand : str, optional
        The polyanion; default: every isolated (centre, ligand) pair found by
        :func:`anionmotion.analysis.detect.detect_polyanions`.
    migration_dimension : {"1D", "2D", "3D"}
        Which percolation barrier is E_mig in the ratio and the mode.
    shell : (float, float)
        Radial range of the ligand, as fractions of the mean centre–ligand distance, for E_rot.
    min_hole_fraction : float, optional
        Smallest hole (fraction of the sphere) that makes a closed path count (default 0.02).
    encut : float, eV
        Highest energy searched (percolation and E_rot).
    keep_landscape : bool
        Also return the cation :class:`BVLandscape` under ``"landscape"`` (not JSON-able).
    ratio_basis : {"cation", "ligand"}
        Which E_mig enters ``ratio`` and ``mode``: the mobile cation's percolation barrier (SPEC §10, the
        default) or the ligand's own percolation energy (the reading of paper 002 under which its Table S1
        is reproduced; see ``docs/bond-valence.md``).  Both are always reported (``ratio_cation``,
        ``mode_cation``, ``ratio_ligand``, ``mode_ligand``).
    memory : str or int, optional
        Memory budget of one BVSE grid (default half the available RAM); see :func:`bvse_landscape`.
    require_cation : bool
        Raise :class:`OptionError` when the structure has no mobile cation (the ``bv`` command); by default
        the E_mig fields stay None and ``reason`` says why (what ``screen`` needs).

    Returns
    -------
    dict
        ``cation``, ``E_mig_1D_eV``/``2D``/``3D`` (None = no percolation below ``encut``), ``E_mig_eV`` and
        ``migration_dimension``, ``polyanions`` (list from :func:`rotation_energies`), ``E_rot_eV_by_type``,
        ``E_rot_min_eV``, ``ratio`` (E_mig / E_rot_min), ``mode`` ("rotate"/"vibrate"/None) and ``mode_rule``,
        ``oxidation_states``, ``parameters`` (source, cutoffs) and ``grid``; ``reason`` explains empty fields.
    """
    _need_bvlain()
    t0 = time.perf_counter()
    dim = str(migration_dimension).upper()
    if dim not in ("1D", "2D", "3D"):
        raise OptionError(f"migration_dimension must be 1D, 2D or 3D; got {migration_dimension!r}")
    basis_used = str(ratio_basis).lower()
    if basis_used not in RATIO_BASES:
        raise OptionError(f"ratio_basis must be one of {', '.join(RATIO_BASES)}; got {ratio_basis!r}")
    grid_spacing = _positive(grid_spacing, "grid_spacing")
    encut = _positive(encut, "encut")
    shell = _check_shell(shell)
    if (center is None) != (ligand is None):
        raise OptionError("give both center= and ligand= (or neither, to detect the polyanions)")
    structure = _right_handed(structure)
    choice = _detect_cation(structure, cation)
    if choice.species is None and require_cation:
        raise OptionError(f"{structure.path}: {choice.reason}")
    decorated = assign_oxidation_states(structure, oxidation_states)
    _, ox, how = decorated
    out = {"structure": structure.path, "formula": structure.formula, "cation": choice.species,
           "cell_note": structure.meta.get("bv_cell"),
           "cation_reason": choice.reason, "E_mig_1D_eV": None, "E_mig_2D_eV": None, "E_mig_3D_eV": None,
           "E_mig_eV": None, "migration_dimension": dim, "E_mig_ligand_eV": {}, "polyanions": [],
           "E_rot_eV_by_type": {},
           "E_rot_min_eV": None, "ratio": None, "mode": None, "ratio_basis": basis_used,
           "mode_rule": f"rotate when E_mig({dim}, {basis_used}) / E_rot ≥ {ROTATE_RATIO:g} (paper 002 Table S1), "
                        "else vibrate; vibrate when no closed ligand path forms below encut",
           "oxidation_states": ox, "oxidation_states_from": how,
           "parameters": {"source": BV_SOURCE.format(version=_bvlain_version()), "r_cut_A": R_CUT_A,
                          "k_neighbours": K_NEIGHBOURS, "screening_f": SCREENING_F, "encut_eV": encut,
                          "E_rot_shell_fraction": list(shell),
                          "E_rot_min_hole_fraction": min_hole_fraction if min_hole_fraction is not None else 0.02,
                          "E_rot_removed_ions": "all ions of the ligand's element (softBV/BVlain convention)"},
           "grid": {}, "reason": []}
    landscape = None
    if choice.species is None:
        out["reason"].append(f"no mobile cation: {choice.reason}")
    else:
        landscape = bvse_landscape(structure, choice.species, grid_spacing=grid_spacing, memory=memory,
                                   _decorated=decorated)
        bar = migration_barriers(landscape, encut=encut)
        for d in ("1D", "2D", "3D"):
            v = bar.get(f"E_{d}", np.inf)
            out[f"E_mig_{d}_eV"] = float(v) if np.isfinite(v) else None
        out["E_mig_eV"] = out[f"E_mig_{dim}_eV"]
        if out["E_mig_eV"] is None:
            out["reason"].append(f"{choice.species} does not percolate in {dim} below {encut:g} eV")
        out["grid"]["cation"] = landscape.grid_info()
    landscapes, notes = {}, []
    rows = rotation_energies(structure, cation=choice.species, center=center, ligand=ligand,
                             grid_spacing=grid_spacing, shell=shell, min_hole_fraction=min_hole_fraction,
                             encut=encut, memory=memory, _decorated=decorated, _landscapes=landscapes,
                             _notes=notes)
    out["polyanions"] = rows
    for lig, land in landscapes.items():
        out["grid"][f"ligand {lig}"] = land.grid_info()
        bar = migration_barriers(land, encut=encut, dimensions=(dim,))   # the one the ratio uses
        out["E_mig_ligand_eV"][lig] = {dim: (float(bar[f"E_{dim}"]) if np.isfinite(bar[f"E_{dim}"]) else None)}
    if not rows:
        out["reason"].append("no isolated polyanion found, so no E_rot" + (f" ({notes[0]})" if notes else ""))
    by_type = {}
    for r in rows:
        if r["E_rot_eV"] is None:
            by_type.setdefault(r["type"], None)
            continue
        prev = by_type.get(r["type"])
        by_type[r["type"]] = r["E_rot_eV"] if prev is None else min(prev, r["E_rot_eV"])
    out["E_rot_eV_by_type"] = by_type
    vals = [v for v in by_type.values() if v is not None]
    out["E_rot_min_eV"] = min(vals) if vals else None
    # the ratio and the mode on both readings of paper 002's E_mig (see the module docstring)
    lig_of_min = next((r["ligand"] for r in rows if r["E_rot_eV"] is not None
                       and r["E_rot_eV"] == out["E_rot_min_eV"]), None)
    e_lig = (out["E_mig_ligand_eV"].get(lig_of_min) or {}).get(dim) if lig_of_min else None
    out["E_mig_ligand_used_eV"] = e_lig
    for basis, e_mig in (("cation", out["E_mig_eV"]), ("ligand", e_lig)):
        ratio = mode = None
        if rows and out["E_rot_min_eV"] is None and (e_mig is not None or basis == "ligand"):
            mode = "vibrate"
        elif out["E_rot_min_eV"] is not None and e_mig is not None:
            ratio = e_mig / max(out["E_rot_min_eV"], 1e-12)
            mode = "rotate" if ratio >= ROTATE_RATIO else "vibrate"
        out[f"ratio_{basis}"], out[f"mode_{basis}"] = ratio, mode
    out["ratio"], out["mode"] = out[f"ratio_{basis_used}"], out[f"mode_{basis_used}"]
    out["ratio_basis"] = basis_used
    if rows and out["E_rot_min_eV"] is None:
        out["reason"].append(f"no closed ligand path below {encut:g} eV: E_rot > encut")
    out["reason"] = "; ".join(out["reason"])
    out["seconds"] = time.perf_counter() - t0
    if keep_landscape:
        out["landscape"] = landscape
    return out


# ---------------------------------------------------------------------------------------------- grid files
class _GridView:
    """The attributes :mod:`anionmotion.report.grids` writers read, for an energy grid."""

    def __init__(self, land: BVLandscape, scale, what):
        e = np.minimum(land.energy - land.minimum, FILE_CAP_EV)  # the cores of the ions reach 1e300 eV
        self.cell = land.cell
        self.density = e * scale
        self.structure = {"species": land.species, "frac": land.frac}
        self.species = f"{land.ion} BVSE, {what}"
        self.n_atoms = len(land.species)
        self.n_frames = 1
        self.origin = np.zeros(3)
        self.volume = float(abs(np.linalg.det(land.cell)))


def write_landscape(landscape: BVLandscape, path, *, overwrite=False):
    """Write the landscape (eV above its minimum) as a Gaussian cube (``*.cube``) or VASP CHGCAR
    (``*.CHGCAR``/``CHGCAR``/``*.vasp``) for VESTA, through :mod:`anionmotion.report.grids`.

    The file values are energies in eV above the minimum, capped at :data:`FILE_CAP_EV` (100 eV; the cores of
    the ions reach 1e300 eV), not densities: the cube stores E directly (cube lengths in bohr), the CHGCAR
    stores E as well (its "ρ·V" column holds E).
    """
    from ..report.grids import _format_of, write_chgcar, write_cube
    from ..units import BOHR_A

    fmt = _format_of(path)
    if fmt == "cube":
        view = _GridView(landscape, 1.0 / BOHR_A ** 3, "values in eV above the minimum (not a density)")
        return write_cube(view, path, overwrite=overwrite)
    if fmt == "chgcar":
        vol = float(abs(np.linalg.det(landscape.cell)))
        view = _GridView(landscape, 1.0 / vol, "values in eV above the minimum (not rho*V)")
        return write_chgcar(view, path, overwrite=overwrite)
    raise OptionError(f"{path}: the landscape is written as .cube or CHGCAR (.CHGCAR/.vasp), not {fmt}")


def read_landscape(path):
    """Read a file of :func:`write_landscape`: (cell (3, 3) Å, energy (n1, n2, n3) eV above the minimum)."""
    from ..report.grids import _format_of, read_chgcar, read_cube
    from ..units import BOHR_A

    fmt = _format_of(path)
    if fmt == "cube":
        cell, rho, _, _ = read_cube(path)
        return cell, rho * BOHR_A ** 3
    if fmt == "chgcar":
        cell, rho, _, _ = read_chgcar(path)
        return cell, rho * abs(np.linalg.det(cell))
    raise OptionError(f"{path}: not a cube or CHGCAR file")
