"""Reading one crystal structure: CIF, POSCAR/CONTCAR, LAMMPS data, extxyz, or a frame of a trajectory.

Every route returns the same :class:`Structure` (species, Cartesian positions in Å, the cell as rows
a, b, c, masses, site labels and occupancies), so the commands that start from a structure — ``screen``,
``bv`` and ``md --structure`` — see one thing whatever the file.

Routes (chosen from the file name, or ``fmt=``):

* **CIF, POSCAR/CONTCAR/``*.vasp`` and anything else pymatgen reads** — through
  :meth:`pymatgen.core.Structure.from_file`.  Partially occupied sites are kept as one entry per
  (site, species) with its occupancy; see ``disorder``.
* **extxyz / xyz** and other ASE formats (``fmt="ase:<format>"``) — through :func:`ase.io.read`.
* **LAMMPS data** (``*.data``, ``*.lmp``, ``data.*``) — positions and cell through ASE's reader; the
  element of every type from anionmotion's own data-file reader (the ``Masses`` comment, else the
  nearest standard mass: :func:`anionmotion.io.lammps_data.elements_of_types`).
* **a frame of any trajectory anionmotion reads** (``frame=N``; NetCDF, LAMMPS dumps, XDATCAR,
  vasprun.xml, OUTCAR, CP2K, H5MD …) — through :func:`anionmotion.open`; positions wrapped into the cell.

Disorder (``disorder=``): ``"refuse"`` (the default) raises :class:`~anionmotion.errors.OptionError`
naming the first partially occupied site; ``"order"`` keeps, on every site, its most probable occupant
— the species with the largest occupancy, or a vacancy when the vacancy is more probable than every
species (a tie goes to the species) — and records the composition before (occupancy-weighted) and
after in ``meta["disorder"]``.  This is the single most probable configuration site by site; it does
not conserve the composition when many sites are half occupied (the record says so), which is why it
is not the default.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..elements import masses_of, normalize_symbol
from ..errors import FormatError, OptionError, OptionTypeError

__all__ = ["Structure", "load_structure", "parse_supercell", "DISORDER_POLICIES", "STRUCTURE_FORMATS"]

DISORDER_POLICIES = ("refuse", "order")
"""How partially occupied sites are handled (see the module docstring)."""

STRUCTURE_FORMATS = ("cif", "poscar", "lammps-data", "extxyz", "trajectory", "pymatgen", "ase:<format>")
"""Values of ``fmt=`` / ``--structure-format`` (None: from the file name)."""

_OCC_TOL = 1e-6


@dataclass
class Structure:
    """One crystal structure.

    Attributes
    ----------
    species : ndarray, shape (n,), str
        Element symbol of every entry.
    positions : ndarray, shape (n, 3), float64, Å
        Cartesian positions.
    cell : ndarray, shape (3, 3), float64, Å
        Rows are the lattice vectors a, b, c.
    masses : ndarray, shape (n,), float64, amu
    labels : ndarray, shape (n,), str
        Site label (the CIF ``_atom_site_label``; the species elsewhere).
    occupancies : ndarray, shape (n,), float64
        1 for an ordered site.  A partially occupied site is several entries at the same position (one
        per species), each with its occupancy; ``site_index`` groups them.
    site_index : ndarray, shape (n,), int64
        Crystallographic site (in file order) of every entry.
    path : str
        Where it was read from (``"<memory>"`` for built structures).
    meta : dict
        How it was read (``reader``, ``frame``, ``supercell``, ``disorder`` …).
    """

    species: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    masses: np.ndarray = None
    labels: np.ndarray = None
    occupancies: np.ndarray = None
    site_index: np.ndarray = None
    path: str = "<memory>"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.species = np.array([normalize_symbol(str(s)) for s in np.asarray(self.species).ravel()], dtype=object)
        n = len(self.species)
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(n, 3)
        self.cell = np.asarray(self.cell, dtype=np.float64).reshape(3, 3)
        if not np.all(np.isfinite(self.positions)) or not np.all(np.isfinite(self.cell)):
            raise FormatError(f"{self.path}: the structure has non-finite positions or cell")
        if abs(np.linalg.det(self.cell)) < 1e-6:
            raise FormatError(f"{self.path}: the cell has zero volume (rows a, b, c = {self.cell.tolist()}); a periodic "
                              "structure with a full 3-D cell was expected")
        self.masses = masses_of(self.species) if self.masses is None else \
            np.asarray(self.masses, dtype=np.float64).reshape(n)
        self.labels = self.species.copy() if self.labels is None else np.asarray(self.labels, dtype=object).reshape(n)
        self.occupancies = np.ones(n) if self.occupancies is None else \
            np.asarray(self.occupancies, dtype=np.float64).reshape(n)
        self.site_index = np.arange(n, dtype=np.int64) if self.site_index is None else \
            np.asarray(self.site_index, dtype=np.int64).reshape(n)

    # ------------------------------------------------------------------ properties
    @property
    def n_atoms(self) -> int:
        """Number of entries (atoms of an ordered structure)."""
        return len(self.species)

    @property
    def volume(self) -> float:
        """Cell volume, Å³."""
        return float(abs(np.linalg.det(self.cell)))

    @property
    def is_ordered(self) -> bool:
        """True when every entry is fully occupied (and no two share a site)."""
        return bool(np.all(np.abs(self.occupancies - 1.0) < _OCC_TOL)) and \
            len(np.unique(self.site_index)) == self.n_atoms

    @property
    def fractional(self) -> np.ndarray:
        """Fractional coordinates wrapped into [0, 1)."""
        s = self.positions @ np.linalg.inv(self.cell)
        s -= np.floor(s)
        s[s >= 1.0] = 0.0
        return s

    def composition(self) -> dict:
        """Element → number of atoms per cell (occupancy-weighted)."""
        out = {}
        for s, o in zip(self.species, self.occupancies):
            out[s] = out.get(s, 0.0) + float(o)
        return {k: (round(v, 6) if abs(v - round(v)) > 1e-6 else int(round(v))) for k, v in sorted(out.items())}

    @property
    def formula(self) -> str:
        """Composition as ``Li2 S1 O4`` style text (occupancy-weighted, per cell)."""
        return " ".join(f"{k}{v:g}" for k, v in self.composition().items())

    def __repr__(self):
        return (f"<Structure {self.formula} ({self.n_atoms} entries, {self.volume:.1f} Å³"
                f"{'' if self.is_ordered else ', disordered'}) from {self.path}>")

    # ------------------------------------------------------------------ conversions
    def require_ordered(self, what="this analysis"):
        """Raise :class:`OptionError` naming the first partially occupied site unless ordered."""
        if self.is_ordered:
            return
        bad = np.nonzero(np.abs(self.occupancies - 1.0) >= _OCC_TOL)[0]
        if len(bad) == 0:  # fully occupied entries sharing a site
            _, first, counts = np.unique(self.site_index, return_index=True, return_counts=True)
            bad = first[counts > 1]
        k = int(bad[0])
        rows = np.nonzero(self.site_index == self.site_index[k])[0]
        occ = " + ".join(f"{self.species[r]} {self.occupancies[r]:g}" for r in rows)
        n_sites = len(np.unique(self.site_index[np.isin(self.site_index, self.site_index[bad])]))
        raise OptionError(f"{self.path}: site {self.labels[k]} is partially occupied ({occ}; {n_sites} such site(s)); "
                          f"{what} needs an ordered structure — give disorder='order' (--disorder order: the most "
                          "probable occupant of every site) or an ordered file")

    def right_handed(self) -> "Structure":
        """The same structure with a right-handed cell: a left-handed one (pymatgen and CIF allow it) becomes
        −a, −b, −c, which spans the same lattice; Cartesian positions are unchanged.  Self when right-handed."""
        if np.linalg.det(self.cell) > 0:
            return self
        return Structure(self.species, self.positions, -self.cell, masses=self.masses, labels=self.labels,
                         occupancies=self.occupancies, site_index=self.site_index, path=self.path,
                         meta=dict(self.meta, cell_negated="the file's cell is left-handed: a, b, c → −a, −b, −c"))

    def to_chunk(self):
        """The structure as a one-frame :class:`~anionmotion.trajectory.Chunk` (wrapped positions, t = 0;
        a left-handed cell is replaced by its right-handed negative, :meth:`right_handed`)."""
        from ..trajectory import Chunk

        self.require_ordered("a one-frame chunk")
        st = self.right_handed()
        pos = (st.fractional @ st.cell)[None]
        n = self.n_atoms
        return Chunk(positions=pos, velocities=None, cells=st.cell[None].copy(), times=np.zeros(1),
                     frame_indices=np.zeros(1, dtype=np.int64), atom_indices=np.arange(n, dtype=np.int64),
                     species=self.species.copy(), masses=self.masses.copy(), origins=np.zeros((1, 3)))

    def to_trajectory(self):
        """The structure as a one-frame :class:`~anionmotion.trajectory.Trajectory` (t = 0; right-handed cell)."""
        from ..trajectory import from_arrays

        self.require_ordered("a one-frame trajectory")
        st = self.right_handed()
        return from_arrays((st.fractional @ st.cell)[None], st.cell, np.zeros(1), st.species, masses=st.masses,
                           path=self.path)

    def to_pymatgen(self):
        """A :class:`pymatgen.core.Structure` (partially occupied sites rebuilt, ``label`` site property)."""
        Structure_ = _need("pymatgen.core", "pymatgen").Structure
        Lattice = _need("pymatgen.core", "pymatgen").Lattice
        species, coords, labels = [], [], []
        for site in np.unique(self.site_index):
            rows = np.nonzero(self.site_index == site)[0]
            occ = {str(self.species[r]): float(self.occupancies[r]) for r in rows}
            species.append(occ if len(rows) > 1 or abs(self.occupancies[rows[0]] - 1) >= _OCC_TOL
                           else str(self.species[rows[0]]))
            coords.append(self.positions[rows[0]])
            labels.append(str(self.labels[rows[0]]))
        return Structure_(Lattice(self.cell), species, coords, coords_are_cartesian=True, labels=labels)

    def to_ase(self):
        """An :class:`ase.Atoms` (periodic; needs an ordered structure)."""
        ase = _need("ase", "ase")
        self.require_ordered("an ASE Atoms object")
        return ase.Atoms(symbols=list(self.species), positions=self.positions, cell=self.cell, pbc=True,
                         masses=self.masses)

    # ------------------------------------------------------------------ transformations
    def supercell(self, reps) -> "Structure":
        """Repeat the cell ``reps = (n_a, n_b, n_c)`` times (entries ordered cell copy by cell copy)."""
        na, nb, nc = _check_reps(reps)
        shifts = np.array([(i, j, k) for i in range(na) for j in range(nb) for k in range(nc)], dtype=np.float64)
        shifts_cart = shifts @ self.cell
        n, m = self.n_atoms, len(shifts)
        pos = (self.positions[None, :, :] + shifts_cart[:, None, :]).reshape(m * n, 3)
        n_sites = int(self.site_index.max()) + 1 if n else 0
        sidx = (self.site_index[None, :] + n_sites * np.arange(m)[:, None]).ravel()
        meta = dict(self.meta, supercell=[na, nb, nc])
        return Structure(np.tile(self.species, m), pos, self.cell * np.array([[na], [nb], [nc]], dtype=float),
                         masses=np.tile(self.masses, m), labels=np.tile(self.labels, m),
                         occupancies=np.tile(self.occupancies, m), site_index=sidx, path=self.path, meta=meta)

    def ordered(self) -> "Structure":
        """The most probable occupant of every site (see the module docstring); self when ordered."""
        if self.is_ordered:
            return self
        keep, changed = [], 0
        for site in np.unique(self.site_index):
            rows = np.nonzero(self.site_index == site)[0]
            occ = self.occupancies[rows]
            best = int(rows[np.argmax(occ)])
            vacancy = 1.0 - float(occ.sum())
            if len(rows) > 1 or abs(occ[0] - 1.0) >= _OCC_TOL:
                changed += 1
            if float(self.occupancies[best]) + 1e-9 >= vacancy:
                keep.append(best)
        keep = np.array(keep, dtype=np.int64)
        before = self.composition()
        out = Structure(self.species[keep], self.positions[keep], self.cell, masses=self.masses[keep],
                        labels=self.labels[keep], occupancies=np.ones(len(keep)),
                        site_index=np.arange(len(keep), dtype=np.int64), path=self.path, meta=dict(self.meta))
        after = out.composition()
        out.meta["disorder"] = {
            "policy": "order: most probable occupant of every partially occupied site",
            "sites_ordered": changed, "composition_before": before, "composition_after": after,
            "composition_conserved": all(abs(before.get(k, 0) - after.get(k, 0)) < 1e-6
                                         for k in set(before) | set(after)),
        }
        return out


# ---------------------------------------------------------------------- parsing helpers
def _need(module, extra_pkg):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise OptionError(f"reading structures needs {extra_pkg} ({err}); pip install 'anionmotion[structure]'") \
            from err


def _check_reps(reps):
    try:
        reps = tuple(int(r) for r in reps)
    except (TypeError, ValueError):
        raise OptionTypeError(f"supercell must be three positive integers (n_a, n_b, n_c); got {reps!r}") from None
    if len(reps) != 3 or any(r < 1 for r in reps):
        raise OptionError(f"supercell must be three positive integers (n_a, n_b, n_c); got {reps!r}")
    if reps[0] * reps[1] * reps[2] > 10000:
        raise OptionError(f"supercell {reps} has {reps[0] * reps[1] * reps[2]} cells; at most 10000 are allowed")
    return reps


def parse_supercell(text):
    """``"3x3x2"`` (or ``"3,3,2"``, ``"3 3 2"``, a single ``"2"`` for 2×2×2, or a tuple) → (3, 3, 2)."""
    if text is None:
        return None
    if isinstance(text, (tuple, list, np.ndarray)):
        return _check_reps(text)
    s = str(text).strip().lower()
    parts = [p for p in re.split(r"[x×,\s]+", s) if p]
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3 or not all(re.fullmatch(r"\d+", p) for p in parts):
        raise OptionError(f"invalid --supercell {text!r}; expected three positive integers such as 3x3x2 (or one, 2 = 2x2x2)")
    return _check_reps(parts)


_POSCAR_NAMES = re.compile(r"^(POSCAR|CONTCAR)([._-].*)?$", re.I)
_LAMMPS_DATA = re.compile(r"(\.(data|lmp|lammps)$)|(^data\.)", re.I)


def _guess_format(path):
    name = os.path.basename(path)
    low = name.lower()
    for ext in (".gz", ".bz2", ".xz"):
        if low.endswith(ext):
            low = low[: -len(ext)]
    if low.endswith(".cif") or low.endswith(".mcif"):
        return "cif"
    if _POSCAR_NAMES.match(name) or low.endswith(".vasp") or low.endswith(".poscar"):
        return "poscar"
    if _LAMMPS_DATA.search(low):
        return "lammps-data"
    if low.endswith(".extxyz"):
        return "extxyz"
    if low.endswith(".xyz"):
        # an extxyz carries Lattice=; a plain xyz (CP2K) has no cell and is read as a trajectory frame
        try:
            with open(path, "rb") as fh:
                head = fh.read(4096).decode("latin-1")
        except OSError:
            head = ""
        return "extxyz" if "lattice=" in head.lower() else "trajectory"
    if low.endswith((".json", ".yaml", ".cssr", ".res", ".mson")):
        return "pymatgen"
    return "trajectory"


def _from_pymatgen(pmg, path, reader):
    species, pos, labels, occ, sidx = [], [], [], [], []
    for i, site in enumerate(pmg):
        label = site.label if getattr(site, "label", None) else None
        for sp, o in site.species.items():
            el = getattr(sp, "element", sp)
            species.append(el.symbol if hasattr(el, "symbol") else str(el))
            pos.append(site.coords)
            labels.append(label or species[-1])
            occ.append(float(o))
            sidx.append(i)
    if not species:
        raise FormatError(f"{path}: the structure has no atoms")
    return Structure(np.array(species, dtype=object), np.array(pos), pmg.lattice.matrix, labels=labels,
                     occupancies=occ, site_index=sidx, path=path, meta={"reader": reader})


def _read_pymatgen(path, fmt):
    core = _need("pymatgen.core", "pymatgen")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "cif":
                from pymatgen.io.cif import CifParser

                parser = CifParser(path, occupancy_tolerance=1.05)
                structs = parser.parse_structures(primitive=False)
                if not structs:
                    raise ValueError("no structure in the CIF")
                pmg = structs[0]
            else:
                pmg = core.Structure.from_file(path)
    except OptionError:
        raise
    except Exception as err:  # pymatgen raises many types for unreadable files
        what = {"cif": "a CIF", "poscar": "a POSCAR/CONTCAR"}.get(fmt, "a structure pymatgen reads")
        msg = " ".join(str(err).split())[:200] or type(err).__name__
        raise FormatError(f"{path}: cannot read {what} file: {msg}") from err
    return _from_pymatgen(pmg, path, f"pymatgen ({fmt})")


def _read_ase(path, fmt, frame):
    ase_io = _need("ase.io", "ase")
    index = 0 if frame is None else int(frame)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            atoms = ase_io.read(path, index=index, format=fmt)
    except IndexError as err:
        raise OptionError(f"{path}: frame {index} out of range ({err})") from err
    except Exception as err:
        msg = " ".join(str(err).split())[:200] or type(err).__name__
        raise FormatError(f"{path}: cannot read it as {fmt or 'a structure'} with ASE: {msg}") from err
    if not np.all(atoms.pbc) or abs(atoms.cell.volume) < 1e-6:
        raise FormatError(f"{path}: frame {index} has no periodic 3-D cell (pbc={atoms.pbc.tolist()}); a crystal "
                          "structure was expected")
    return Structure(np.array(atoms.get_chemical_symbols(), dtype=object), atoms.positions, np.array(atoms.cell),
                     path=path, meta={"reader": f"ase ({fmt or 'auto'})", "frame": index})


def _read_lammps_data(path):
    from ..io.lammps_data import elements_of_types, read_lammps_data

    data = read_lammps_data(path)
    elem, _src = elements_of_types(data)
    ase_io = _need("ase.io", "ase")
    style = data.atom_style.split()[0] if data.atom_style else "atomic"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            atoms = ase_io.read(path, format="lammps-data", atom_style=style, sort_by_id=True)
    except Exception as err:
        msg = " ".join(str(err).split())[:200] or type(err).__name__
        raise FormatError(f"{path}: cannot read the Atoms section of this LAMMPS data file ({msg})") from err
    if len(atoms) != data.n_atoms:
        raise FormatError(f"{path}: {len(atoms)} atoms read but the header says {data.n_atoms}")
    types = data.types
    missing = sorted({int(t) for t in np.unique(types)} - set(elem))
    if missing:
        raise FormatError(f"{path}: atom type(s) {missing} have no mass in the Masses section; their element is unknown")
    species = np.array([elem[int(t)] for t in types], dtype=object)
    masses = np.array([data.type_masses[int(t)] for t in types])
    return Structure(species, atoms.positions, np.array(atoms.cell), masses=masses, path=path,
                     meta={"reader": f"LAMMPS data ({data.atom_style})"})


def _read_trajectory_frame(path, frame, reader_kw):
    from ..trajectory import open as open_traj

    kw = dict(reader_kw or {})
    traj = open_traj(path, progress=False, unwrap=False, **kw)
    if not traj.has_times and "frame_interval" not in kw and "timestep" not in kw:
        # one frame is read: its time is irrelevant, but reading needs a time axis
        traj = open_traj(path, progress=False, unwrap=False, frame_interval=1.0, **kw)
    n = traj.n_frames
    f = 0 if frame is None else frame
    if not -n <= f < n:
        raise OptionError(f"{path}: --frame {f} out of range; the trajectory has {n} frames (0 … {n - 1}, or "
                          "negative from the end)")
    f %= n
    ch = traj.read(frames=slice(f, f + 1), progress=False)
    masses = np.asarray(traj.masses, dtype=np.float64) if traj.masses is not None else None
    return Structure(np.asarray(traj.species, dtype=object), ch.positions[0], ch.cells[0], masses=masses,
                     path=path, meta={"reader": f"trajectory ({traj.format})", "frame": int(f), "n_frames": int(n)})


def load_structure(path, *, frame=None, fmt=None, supercell=None, disorder="refuse", reader_kw=None) -> Structure:
    """Read one crystal structure (see the module docstring for the routes).

    Parameters
    ----------
    path : str or path-like
        CIF, POSCAR/CONTCAR, LAMMPS data, extxyz or any trajectory anionmotion reads.
    frame : int, optional
        Frame of a trajectory or multi-frame extxyz (negative counts from the end).  Default: the first.
        Not allowed for single-structure formats (CIF, POSCAR, LAMMPS data).
    fmt : str, optional
        One of :data:`STRUCTURE_FORMATS`; default from the file name.
    supercell : str or tuple, optional
        ``"3x3x2"`` or ``(3, 3, 2)``: repeat the cell.
    disorder : {"refuse", "order"}
        Partially occupied sites: refuse (default) or keep the most probable occupant of each site.
    reader_kw : dict, optional
        Extra keywords of :func:`anionmotion.open` for the trajectory route (``types=``, ``timestep=`` …).

    Returns
    -------
    Structure

    Raises
    ------
    OptionError
        Missing file, bad option, frame out of range, or a disordered structure with ``disorder="refuse"``.
    FormatError
        The file cannot be read as the format.
    """
    try:
        path = os.fspath(path)
    except TypeError:
        raise OptionTypeError(f"structure path must be a string or path-like; got {type(path).__name__}") from None
    if disorder not in DISORDER_POLICIES:
        raise OptionError(f"invalid disorder {disorder!r}; choose one of {', '.join(DISORDER_POLICIES)}")
    if frame is not None and (isinstance(frame, bool) or not isinstance(frame, (int, np.integer))):
        raise OptionTypeError(f"frame must be an integer; got {frame!r}")
    reps = parse_supercell(supercell)
    if not os.path.exists(path):
        raise OptionError(f"{path}: structure file not found")
    if os.path.isdir(path):
        raise OptionError(f"{path}: is a folder; a structure file was expected")
    kind = fmt.lower() if isinstance(fmt, str) else _guess_format(path)
    if fmt is not None and not isinstance(fmt, str):
        raise OptionTypeError(f"fmt must be a string; got {type(fmt).__name__}")
    if kind not in STRUCTURE_FORMATS[:-1] and not kind.startswith("ase:"):
        raise OptionError(f"invalid structure format {fmt!r}; choose one of {', '.join(STRUCTURE_FORMATS)}")
    if frame is not None and kind in ("cif", "poscar", "lammps-data", "pymatgen") and frame not in (0, -1):
        raise OptionError(f"{path}: --frame {frame} given but a {kind} file holds one structure")
    if kind in ("cif", "poscar", "pymatgen"):
        st = _read_pymatgen(path, kind)
    elif kind == "extxyz":
        st = _read_ase(path, "extxyz", frame)
    elif kind.startswith("ase:"):
        st = _read_ase(path, kind[4:] or None, frame)
    elif kind == "lammps-data":
        st = _read_lammps_data(path)
    else:
        st = _read_trajectory_frame(path, frame, reader_kw)
    if not st.is_ordered:
        if disorder == "refuse":
            st.require_ordered("reading with disorder='refuse'")
        st = st.ordered()
    if reps is not None and reps != (1, 1, 1):
        st = st.supercell(reps)
    return st
