"""Framework screening of crystal structures (paper 003's first filter; ``anionmotion screen``).

:func:`screen_structure` turns one :class:`~anionmotion.structures.Structure` into one row: the mobile
cation (given or detected as ``report`` does), the polyanions (detected and identified as the trajectory
analyses do: :func:`~anionmotion.analysis.detect.detect_polyanions` then
:func:`~anionmotion.analysis.polyanions.find_polyanions` on :meth:`Structure.to_chunk`), the framework
connectivity of every non-mobile cation polyhedron and the descriptors VPA and AAL
(:mod:`~anionmotion.structures.framework`), the paper-003 verdict, and the bond-valence columns of
:func:`anionmotion.structures.bv.bv_summary`.  :func:`screen_files` reads and screens many files in a
process pool with a progress bar; a file that cannot be read or screened gets a row with ``error`` set.

The paper-003 verdict (``candidate``): the structure contains the mobile cation, its framework is
isolated, and every framework polyhedron is a tetrahedron or an octahedron (coordination 4 or 6) — "a total
of 118 compounds with isolated tetrahedral or octahedral polyanions are obtained by identifying framework
connectivity".  The paper's other filters (band gap > 2 eV, E_hull < 50 meV/atom) need DFT data and are
not applied.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from ..errors import AnionmotionError, OptionError
from .framework import (DEFAULT_BOND_SCALE, DEFAULT_TOL, SHARING_KINDS, average_anion_length, framework_connectivity,
                        framework_polyhedra, ligand_roles, volume_per_atom)

__all__ = ["screen_structure", "screen_file", "screen_files", "write_screen_json", "write_screen_csv",
           "CANDIDATE_COORDINATION", "BASE_COLUMNS", "DEFINITIONS"]

#: coordination numbers of the polyhedra paper 003 keeps (tetrahedra, octahedra)
CANDIDATE_COORDINATION = (4, 6)

#: the columns every row has, in CSV order (the bond-valence columns ``bv_*`` follow)
BASE_COLUMNS = ("file", "formula", "n_atoms", "disorder", "cation", "cation_source", "connectivity",
                "most_connected", "n_corner_pairs", "n_edge_pairs", "n_face_pairs", "n_polyhedra", "polyhedra",
                "coordination", "VPA_A3", "AAL_A", "polyanion", "n_polyanions", "polyanion_cutoff_A",
                "polyanion_connectivity", "isolated", "candidate", "verdict", "cation_reason", "polyanion_reason",
                "bv_status", "bv_reason", "warnings", "error")

#: columns holding nested records (in the JSON output only): the full bv_summary dict
NESTED_COLUMNS = ("bv",)

#: definitions written into the JSON output
DEFINITIONS = {
    "connectivity": "polyhedra of every non-mobile cation (centre + ligands within (1+tol)·d_min and "
                    "bond_scale·(r_c+r_l), all periodic images); two polyhedra sharing 1 / 2 / ≥3 ligand atoms "
                    "share a corner / edge / face; isolated = no shared ligand; one kind = that kind; several = "
                    "mixed; none = no framework polyhedron (paper 003, SPEC §10)",
    "n_*_pairs": "pairs of polyhedra (modulo lattice translations) sharing a corner / edge / face, per cell",
    "VPA_A3": "volume per atom, V_cell / N_atoms, Å³ (paper 003)",
    "AAL_A": "average anion length: mean centre–ligand bond length over the framework polyhedra, Å "
             "(paper 003's 'average anion distance', the polyanion size; SPEC §4)",
    "polyanion": "the polyanion the trajectory analyses would use (detect_polyanions + find_polyanions, as "
                 "`report` does)",
    "candidate": "paper-003 verdict: mobile cation present, isolated framework, every framework polyhedron a "
                 "tetrahedron or octahedron (coordination 4 or 6); band gap and E_hull filters not applied",
    "bv_*": "bond-valence columns of anionmotion.structures.bv.bv_summary (empty with bv_reason when not computed); "
            "the full record, with the BV parameters, grid and per-polyanion E_rot, is 'bv' in the JSON output",
}


def _check_cation(cation):
    """The element symbol of ``cation`` (None stays None); an unknown element is an OptionError."""
    from ..elements import ATOMIC_NUMBERS, normalize_symbol

    if cation is None:
        return None
    sym = normalize_symbol(cation)
    if sym not in ATOMIC_NUMBERS:
        raise OptionError(f"--cation {cation}: not an element symbol (e.g. Na, Li)")
    return sym


def _one_line(err) -> str:
    text = str(err).strip() or type(err).__name__
    return " | ".join(ln.strip() for ln in text.splitlines() if ln.strip())


def _disorder_text(structure, policy):
    d = structure.meta.get("disorder")
    if isinstance(d, dict):
        return (f"order: {d.get('sites_ordered')} partially occupied site(s) replaced by their most probable "
                f"occupant; composition {'conserved' if d.get('composition_conserved') else 'NOT conserved'}")
    return f"ordered file ({policy} policy not needed)"


def _bv_columns(structure, cation, bv, bv_kw):
    """(columns dict, status, reason) of the bond-valence summary."""
    if not bv:
        return {}, "skipped", "--bv none (the default; --bv candidates or --bv all computes them)"
    if cation is None:
        return {}, "not computed", "no mobile cation: bond-valence columns need one"
    try:
        from .bv import bv_summary
    except ImportError as err:
        return {}, "not computed", f"anionmotion.structures.bv is not available ({_one_line(err)})"
    try:
        out = bv_summary(structure, cation=cation, **(bv_kw or {}))
    except (AnionmotionError, ValueError, ArithmeticError, RuntimeError, ImportError, OSError, KeyError,
            IndexError, TypeError) as err:
        return {}, "failed", f"{type(err).__name__}: {_one_line(err)}"
    if hasattr(out, "to_dict"):
        out = out.to_dict()
    from ..results import to_jsonable

    def scalar(x):
        return x is None or isinstance(x, (bool, int, float, str))

    out = to_jsonable(dict(out))
    cols = {}
    for k, v in out.items():
        if scalar(v):
            cols[f"bv_{k}"] = v
        elif isinstance(v, list) and all(scalar(x) for x in v):
            cols[f"bv_{k}"] = "; ".join("" if x is None else str(x) for x in v)
        elif isinstance(v, dict) and v and all(scalar(x) for x in v.values()):
            cols[f"bv_{k}"] = "; ".join(f"{a}={'' if x is None else x}" for a, x in v.items())
        # deeper structures (per-polyanion tables, parameters, grid) are in the full record ``bv``
    cols["bv"] = out
    return cols, "ok", ""


#: the polyanion detection (minimum image) runs on a supercell at least this wide in every direction, Å
MIN_IMAGE_WIDTH_A = 8.0


def _polyanion_columns(structure, cation):
    """Polyanion columns as the trajectory analyses find them (minimum image, on a wide enough supercell)."""
    from ..analysis.detect import detect_polyanions
    from ..analysis.polyanions import find_polyanions
    from ..kernels.pbc import perpendicular_widths

    reps = tuple(int(max(1, np.ceil(MIN_IMAGE_WIDTH_A / w))) for w in perpendicular_widths(structure.cell))
    big = structure.supercell(reps) if reps != (1, 1, 1) else structure
    n_cells = int(np.prod(reps))
    traj = big.to_trajectory()      # wrapped, right-handed cell (a left-handed one is the same lattice negated)
    choice = detect_polyanions(traj, cation=cation)
    if not choice.found:
        return {"polyanion": None, "n_polyanions": 0, "polyanion_cutoff_A": None, "polyanion_connectivity": None,
                "polyanion_reason": choice.reason}
    pa = find_polyanions(traj.read(frames=slice(0, 1), progress=False), center=choice.center, ligand=choice.ligand,
                         cutoff=choice.cutoff_A)
    reason = choice.reason
    if n_cells > 1:
        reason += f" (found in a {'x'.join(map(str, reps))} supercell; counts per cell)"
    return {"polyanion": pa.label, "n_polyanions": pa.n_anions / n_cells if pa.n_anions % n_cells
            else pa.n_anions // n_cells, "polyanion_cutoff_A": float(pa.cutoff),
            "polyanion_connectivity": pa.connectivity, "polyanion_reason": reason}


BV_MODES = ("none", "candidates", "all")
"""Values of ``bv=`` / ``--bv``: which rows get the bond-valence columns."""


def bv_mode(bv) -> str:
    """``bv=`` as one of :data:`BV_MODES` (True → "all", False/None → "none")."""
    if bv is True:
        return "all"
    if bv is False or bv is None:
        return "none"
    if isinstance(bv, str) and bv.lower() in BV_MODES:
        return bv.lower()
    raise OptionError(f"invalid bv {bv!r}; choose one of {', '.join(BV_MODES)}")


def screen_structure(structure, *, cation=None, bv="none", bv_kw=None, tol=DEFAULT_TOL, bond_scale=DEFAULT_BOND_SCALE,
                     disorder="refuse") -> dict:
    """Screen one structure.

    Parameters
    ----------
    structure : Structure
        Must be ordered (see ``disorder`` of :func:`~anionmotion.structures.load_structure`).
    cation : str, optional
        Mobile cation; default: the first of :data:`anionmotion.elements.MOBILE_CATIONS` present (as in
        ``report``).  Without one the framework is still described; the verdict and the bond-valence columns
        are then empty with the reason.
    bv : {"none", "candidates", "all"} or bool
        Which rows get the bond-valence columns (:func:`anionmotion.structures.bv.bv_summary`, 1–20 s per
        structure): none, only the paper-003 candidates, or every structure with a mobile cation
        (True = ``"all"``, False = ``"none"``).
    bv_kw : dict, optional
        Extra keyword arguments of ``bv_summary``.
    tol, bond_scale : float
        Polyhedron rule of :func:`~anionmotion.structures.framework.framework_polyhedra`.
    disorder : str
        The policy the structure was read with (recorded in the row).

    Returns
    -------
    dict
        One row: :data:`BASE_COLUMNS` plus the ``bv_*`` columns.
    """
    from ..analysis.detect import CationChoice, detect_cation
    structure.require_ordered("screening")
    traj = structure.to_trajectory()   # wrapped, right-handed cell
    caught = []
    with warnings.catch_warnings(record=True) as wl:
        warnings.simplefilter("always")
        cation = _check_cation(cation)
        if cation is not None and cation not in set(structure.species.tolist()):
            # a set of files screened for one cation: a file without it still gets its framework described
            cc = CationChoice(None, 0, "absent", f"--cation {cation} is not in this structure (species: "
                                                 f"{', '.join(sorted(set(structure.species.tolist())))})")
        else:
            cc = detect_cation(traj, cation)
        mobile = (cc.species,) if cc.species else ()
        roles = ligand_roles(structure.species, structure.positions, structure.cell, bond_scale=bond_scale)
        poly = framework_polyhedra(structure.species, structure.positions, structure.cell, mobile=mobile, tol=tol,
                                   bond_scale=bond_scale, roles=roles)
        conn = framework_connectivity(poly)
        try:
            pcols = _polyanion_columns(structure, cc.species)
        except AnionmotionError as err:
            pcols = {"polyanion": None, "n_polyanions": 0, "polyanion_cutoff_A": None,
                     "polyanion_connectivity": None, "polyanion_reason": _one_line(err)}
        cns = sorted(set(poly.coordination.tolist()))
        isolated = conn.connectivity == "isolated"
        shape_ok = bool(poly.n_polyhedra) and all(c in CANDIDATE_COORDINATION for c in cns)
        if cc.species is None:
            verdict = "not a candidate: no mobile cation" + (f" ({cation} given, absent)" if cation else "")
        elif conn.connectivity == "none":
            verdict = "not a candidate: no framework polyhedron (every cation is mobile)"
        elif not isolated:
            verdict = f"not a candidate: {conn.connectivity} framework (most connected: {conn.most_connected})"
        elif not shape_ok:
            verdict = (f"not a candidate: isolated, but coordination {', '.join(map(str, cns))} is not only "
                       "tetrahedral/octahedral (4 or 6)")
        else:
            verdict = "candidate: isolated tetrahedral/octahedral framework"
        mode = bv_mode(bv)
        if mode == "candidates" and not verdict.startswith("candidate"):
            bvcols, bv_status, bv_reason = {}, "skipped", "not a candidate (--bv candidates)"
        else:
            bvcols, bv_status, bv_reason = _bv_columns(structure, cc.species, mode != "none", bv_kw)
    caught = [f"{w.category.__name__}: {_one_line(w.message)}" for w in wl]
    census = poly.census(structure.species)
    if poly.bare:
        caught.append(f"{len(poly.bare)} non-mobile cation(s) without ligands within the bond limit "
                      f"(atoms {', '.join(map(str, poly.bare[:5]))}): not counted as polyhedra")
    row = {
        "file": structure.path, "formula": structure.formula, "n_atoms": int(structure.n_atoms),
        "disorder": _disorder_text(structure, disorder), "cation": cc.species, "cation_source": cc.source,
        "connectivity": conn.connectivity, "most_connected": conn.most_connected,
        "n_corner_pairs": conn.counts[SHARING_KINDS[0]], "n_edge_pairs": conn.counts[SHARING_KINDS[1]],
        "n_face_pairs": conn.counts[SHARING_KINDS[2]], "n_polyhedra": int(poly.n_polyhedra),
        "polyhedra": "; ".join(f"{k}×{v}" for k, v in census.items()),
        "coordination": " ".join(map(str, cns)),
        "VPA_A3": volume_per_atom(structure.cell, structure.n_atoms), "AAL_A": average_anion_length(poly),
        **{k: pcols[k] for k in ("polyanion", "n_polyanions", "polyanion_cutoff_A", "polyanion_connectivity")},
        "isolated": isolated, "candidate": verdict.startswith("candidate"), "verdict": verdict,
        "cation_reason": cc.reason, "polyanion_reason": pcols["polyanion_reason"],
        "bv_status": bv_status, "bv_reason": bv_reason, "warnings": "; ".join(caught), "error": "",
    }
    row.update(bvcols)
    return row


def _error_row(path, err, disorder):
    row = {k: None for k in BASE_COLUMNS}
    row.update(file=os.fspath(path), disorder=disorder, bv_status="not computed", bv_reason="the file failed",
               warnings="", error=f"{type(err).__name__}: {_one_line(err)}" if not isinstance(err, AnionmotionError)
               else _one_line(err))
    return row


def screen_file(path, *, cation=None, disorder="refuse", fmt=None, bv="none", bv_kw=None, tol=DEFAULT_TOL,
                bond_scale=DEFAULT_BOND_SCALE) -> dict:
    """Read ``path`` with :func:`~anionmotion.structures.load_structure` and screen it.

    Never raises for a bad file: the row then has ``error`` (one line) and empty columns.
    """
    from .io import load_structure

    try:
        with warnings.catch_warnings(record=True) as wl:
            warnings.simplefilter("always")
            st = load_structure(path, fmt=fmt, disorder=disorder)
        if disorder == "order":
            st = st.ordered()
        row = screen_structure(st, cation=cation, bv=bv, bv_kw=bv_kw, tol=tol, bond_scale=bond_scale,
                               disorder=disorder)
        if wl:
            read_w = "; ".join(f"reading: {_one_line(w.message)}" for w in wl)
            row["warnings"] = read_w + ("; " + row["warnings"] if row["warnings"] else "")
        row["file"] = os.fspath(path)
        return row
    except (AnionmotionError, OSError, ValueError, KeyError, IndexError, TypeError, ArithmeticError,
            RuntimeError, ImportError, AssertionError, UnicodeError) as err:
        # pymatgen/ASE readers raise many kinds of exceptions on malformed files
        return _error_row(path, err, disorder)


def _preload(bv=False):
    """Import the readers and analyses (and, with ``bv``, the bond-valence stack: BVlain's import is ~1 s) once
    in this process, so that forked workers share them (pymatgen's import alone is ~4 s of CPU per process)."""
    import importlib

    names = ["anionmotion.analysis.detect", "anionmotion.analysis.polyanions", "pymatgen.core",
             "pymatgen.io.cif", "pymatgen.io.vasp"]
    if bv:
        names += ["anionmotion.structures.bv", "anionmotion.structures._percolation", "anionmotion.structures._erot",
                  "bvlain.core", "pymatgen.analysis.bond_valence", "spglib", "scipy.ndimage", "scipy.spatial"]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def _screen_job(item):
    path, kw = item
    return screen_file(path, **kw)


def screen_files(paths, *, cation=None, disorder="refuse", fmt=None, bv="none", bv_kw=None, jobs=2, progress=None,
                 tol=DEFAULT_TOL, bond_scale=DEFAULT_BOND_SCALE) -> list:
    """Screen many structure files, ``jobs`` at a time in a process pool.

    Parameters
    ----------
    paths : sequence of path
    cation, disorder, fmt, bv, bv_kw, tol, bond_scale
        As :func:`screen_file`.
    jobs : int
        Worker processes (1: in this process).
    progress : bool, optional
        Progress bar (None: only on a terminal).

    Returns
    -------
    list of dict
        One row per path, in the order given.
    """
    bv = bv_mode(bv)   # a bad value fails before any file is read
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm.auto import tqdm

    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise OptionError("screen needs at least one structure file")
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise OptionError(f"jobs must be a positive integer; got {jobs!r}")
    from .io import DISORDER_POLICIES

    if disorder not in DISORDER_POLICIES:
        raise OptionError(f"invalid disorder {disorder!r}; choose one of {', '.join(DISORDER_POLICIES)}")
    cation = _check_cation(cation)
    kw = dict(cation=cation, disorder=disorder, fmt=fmt, bv=bv, bv_kw=bv_kw, tol=tol, bond_scale=bond_scale)
    disable = None if progress is None else (not progress)
    rows = [None] * len(paths)
    jobs = int(min(jobs, len(paths)))
    with tqdm(total=len(paths), desc="screen", unit="file", disable=disable) as bar:
        if jobs == 1:
            for i, p in enumerate(paths):
                rows[i] = screen_file(p, **kw)
                bar.update(1)
        else:
            _preload(bv=bv_mode(bv) != "none")
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                futs = {pool.submit(_screen_job, (p, kw)): i for i, p in enumerate(paths)}
                for f in as_completed(futs):
                    i = futs[f]
                    try:
                        rows[i] = f.result()
                    except Exception as err:  # noqa: BLE001 — a crashed worker is reported in the row
                        rows[i] = _error_row(paths[i], err, disorder)
                    bar.update(1)
    return rows


def columns_of(rows) -> list:
    """CSV columns: :data:`BASE_COLUMNS` then every ``bv_*`` column that occurs, in order of first appearance."""
    cols = list(BASE_COLUMNS)
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    return cols


def write_screen_json(path, rows, parameters, *, overwrite=False):
    """Write the rows with the parameters and :data:`DEFINITIONS` as JSON (refuses to overwrite by default)."""
    import datetime

    from .._version import __version__
    from ..results import write_json

    data = {"anionmotion_version": __version__,
            "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "parameters": parameters, "definitions": DEFINITIONS, "columns": columns_of(rows), "rows": rows}
    return write_json(path, data, overwrite)


def write_screen_csv(path, rows, *, overwrite=False):
    """Write the rows as CSV (one line per file; booleans as true/false, missing values empty)."""
    import csv
    import io

    from ..results import write_text_atomic

    cols = [c for c in columns_of(rows) if c not in NESTED_COLUMNS]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        out = []
        for c in cols:
            v = r.get(c)
            if v is None or (isinstance(v, float) and not np.isfinite(v)):
                out.append("")
            elif isinstance(v, bool):
                out.append("true" if v else "false")
            elif isinstance(v, float):
                out.append(f"{v:.6g}")
            else:
                out.append(str(v))
        w.writerow(out)
    return write_text_atomic(path, buf.getvalue(), overwrite)
