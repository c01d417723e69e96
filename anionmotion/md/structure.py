"""A crystal structure plus a potential → an :class:`~anionmotion.md.systems.MDSystem` for constrained MD.

``anionmotion md --structure FILE --potential P`` reads the structure with
:func:`anionmotion.structures.load_structure` (CIF, POSCAR/CONTCAR, LAMMPS data, extxyz or a frame of any
trajectory anionmotion reads; ``--supercell``), finds the polyanions exactly as the analyses do
(:func:`anionmotion.analysis.detect.detect_polyanions` for the species when ``--center/--ligand`` are not
given, then :func:`anionmotion.find_polyanions` on :meth:`Structure.to_chunk`), builds the OpenMM System
of the potential (:func:`anionmotion.md.potentials.potential_system`) and puts the cell into OpenMM's
reduced box (a along x, b in the xy plane: :func:`openmm_box`).

>>> from anionmotion.md.structure import build_md_system          # doctest: +SKIP
>>> mdsys = build_md_system("Li3PO4.cif", "chgnet", supercell="2x1x2")   # doctest: +SKIP
>>> run_md(mdsys, "run.nc", mode="all", temperature=900, time=20)         # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys

import numpy as np

from ..errors import OptionError
from .potentials import check_available, nve_energy_drift, parse_potential, potential_system
from .systems import MDSystem

__all__ = ["openmm_box", "load_md_structure", "find_anion_groups", "build_md_system", "anion_table",
           "format_anions", "annotate_reports"]


def openmm_box(cell_A, positions_A):
    """The cell and positions in OpenMM's frame: box (nm) in reduced lower-triangular form, rotated positions.

    Parameters
    ----------
    cell_A : array_like, shape (3, 3), Å
        Rows a, b, c (any orientation, either handedness).
    positions_A : array_like, shape (n, 3), Å

    Returns
    -------
    box_nm : ndarray, shape (3, 3)
        a = (a_x, 0, 0), b = (b_x, b_y, 0), c = (c_x, c_y, c_z) with a_x ≥ 2|b_x|, a_x ≥ 2|c_x|,
        b_y ≥ 2|c_y| (OpenMM's requirement): the same lattice, rotated rigidly, and for a left-handed
        cell with c replaced by −c.
    positions_nm : ndarray, shape (n, 3)
        The positions rotated with the cell (distances and fractional coordinates unchanged).
    rotation : ndarray, shape (3, 3)
        ``positions_nm = positions_A @ rotation.T / 10``.
    """
    cell = np.array(cell_A, dtype=np.float64)
    pos = np.asarray(positions_A, dtype=np.float64)
    if cell.shape != (3, 3) or not np.all(np.isfinite(cell)) or abs(np.linalg.det(cell)) < 1e-6:
        raise OptionError(f"the cell must be three lattice vectors spanning a volume; got {cell.tolist()}")
    if np.linalg.det(cell) < 0:
        cell[2] = -cell[2]
    x = cell[0] / np.linalg.norm(cell[0])
    z = np.cross(cell[0], cell[1])
    z /= np.linalg.norm(z)
    y = np.cross(z, x)
    R = np.vstack([x, y, z])
    box = cell @ R.T
    box[0, 1:] = 0.0
    box[1, 2] = 0.0
    a, b, c = box
    c = c - b * np.round(c[1] / b[1])
    c = c - a * np.round(c[0] / a[0])
    b = b - a * np.round(b[0] / a[0])
    box = np.vstack([a, b, c])
    box[np.abs(box) < 1e-12 * np.abs(box).max()] = 0.0   # rounding of the rotation, not a tilt
    return box / 10.0, pos @ R.T / 10.0, R


def load_md_structure(path, *, frame=None, supercell=None, fmt=None, reader_kw=None):
    """Read a structure for MD (:func:`~anionmotion.structures.load_structure`); partial occupancies are refused.

    MD needs one atom per site: a disordered structure (partial occupancies) is an OptionError that says
    so, instead of being ordered silently.  ``reader_kw`` (``types=``, ``topology=`` …) go to
    :func:`anionmotion.open` for a frame of a trajectory.
    """
    from ..structures import load_structure

    st = load_structure(path, frame=frame, fmt=fmt, supercell=None, disorder="order", reader_kw=reader_kw)
    info = st.meta.get("disorder")
    if info:
        before = " ".join(f"{k}{v:g}" for k, v in info["composition_before"].items())
        raise OptionError(f"{path}: {info['sites_ordered']} partially occupied site(s) (composition {before}); "
                          "constrained MD needs an ordered structure with one atom per site — order it first "
                          "(e.g. pymatgen's OrderDisorderedStructureTransformation) and give that file")
    if supercell is not None:
        from ..structures import parse_supercell

        reps = parse_supercell(supercell)
        if reps != (1, 1, 1):
            st = st.supercell(reps)
    return st


def find_anion_groups(structure, *, center=None, ligand=None, cutoff=None):
    """Polyanion groups (centre first) of a Structure, found as the analyses find them.

    Returns
    -------
    groups : list of ndarray of int64
    info : dict
        ``center``, ``ligand``, ``cutoff_A``, ``n_anions``, ``ligands_per_anion``, ``source``
        (given/detected), ``reason``.
    """
    from ..analysis.detect import detect_polyanions
    from ..analysis.polyanions import find_polyanions

    if (center is None) != (ligand is None):
        raise OptionError("give both --center and --ligand (or neither, to detect them)")
    source = "given"
    reason = ""
    if center is None:
        choice = detect_polyanions(structure.to_trajectory())
        if not choice.found:
            raise OptionError(f"{structure.path}: no isolated polyanion found ({choice.reason}); give --center, "
                              "--ligand (and --cutoff)")
        center, ligand, source, reason = choice.center, choice.ligand, "detected", choice.reason
    pa = find_polyanions(structure.to_chunk(), center=center, ligand=ligand, cutoff=cutoff)
    if pa.is_cluster:
        raise OptionError(f"{structure.path}: anions without a centre atom are not supported by the constraint "
                          "modes; give a centre species")
    if pa.n_anions == 0:
        raise OptionError(f"{structure.path}: no {center}–{ligand} anion within the cutoff {pa.cutoff:.3g} Å")
    if pa.connectivity != "isolated":
        raise OptionError(f"{structure.path}: the {center}{ligand} polyhedra share ligands ({pa.connectivity}); "
                          "the constraint modes need isolated anions — check --center/--ligand/--cutoff")
    groups = [np.asarray(m, dtype=np.int64) for m in pa.members]
    info = {"center": pa.center_species, "ligand": pa.ligand_species, "cutoff_A": float(pa.cutoff),
            "cutoff_source": pa.cutoff_source, "n_anions": len(groups),
            "ligands_per_anion": sorted({len(g) - 1 for g in groups}), "source": source, "reason": reason}
    return groups, info


def build_md_system(structure, potential, *, frame=None, supercell=None, fmt=None, potential_kw=None, device=None,
                    center=None, ligand=None, cutoff=None, check=True, reader_kw=None):
    """An MDSystem from a structure (file or :class:`~anionmotion.structures.Structure`) and a potential.

    Parameters
    ----------
    structure : str or Structure
    potential : str or PotentialSpec
        See :func:`anionmotion.md.potentials.parse_potential`.
    frame : int, optional
        Frame of a trajectory file.
    supercell : str or tuple, optional
        ``"3x3x2"``.
    fmt : str, optional
        Structure format (:data:`anionmotion.structures.STRUCTURE_FORMATS`).
    potential_kw : list of "KEY=VALUE" or dict, optional
    device : {"cpu", "cuda"}, optional
    center, ligand : str, optional
        Polyanion centre and ligand species (default: detected).
    cutoff : float, optional, Å
    check : bool
        Evaluate the potential once on the structure (a broken model fails here, clearly).
    reader_kw : dict, optional
        Reader keywords for a trajectory frame (``types={1: "Li", …}``, ``topology=`` …; see
        :func:`anionmotion.open`).

    Returns
    -------
    MDSystem
        ``parameters`` records the structure (absolute path, frame, supercell), the potential and the
        anions; they make the resume key of :func:`~anionmotion.md.run.run_md`.
    """
    from ..structures import Structure

    spec = parse_potential(potential, potential_kw, device)
    check_available(spec)
    if isinstance(structure, Structure):
        st = structure
        if supercell is not None:
            from ..structures import parse_supercell

            reps = parse_supercell(supercell)
            st = st.supercell(reps) if reps != (1, 1, 1) else st
        st.require_ordered("constrained MD")
        path = st.path
    else:
        path = os.fspath(structure)
        st = load_md_structure(path, frame=frame, supercell=supercell, fmt=fmt, reader_kw=reader_kw)
    groups, info = find_anion_groups(st, center=center, ligand=ligand, cutoff=cutoff)
    box, pos, _ = openmm_box(st.cell, st.positions)
    species = np.array([str(s) for s in st.species], dtype=object)
    system = potential_system(spec, species, st.masses, box, warm_up=pos if check else None)
    name = os.path.basename(str(path)) if path else "structure"
    reps = st.meta.get("supercell")
    desc = (f"{st.formula} ({st.n_atoms} atoms, {len(groups)} {info['center']}{info['ligand']}"
            f"{'/'.join(str(k) for k in info['ligands_per_anion'])} anions) from {name}"
            + (f", supercell {'x'.join(str(r) for r in reps)}" if reps else "") + f"; potential {spec.label}")
    params = {"system": "structure", "structure": os.path.abspath(str(path)) if path else None,
              "frame": st.meta.get("frame"), "supercell": list(reps) if reps else None,
              "reader": st.meta.get("reader"), "n_atoms": int(st.n_atoms), "formula": st.formula,
              "potential": dict(spec.to_dict(), label=spec.label),
              "anions": info}
    return MDSystem(name=name, system=system, positions=pos, box=box, species=species, groups=groups,
                    templates=[None] * len(groups), description=desc, parameters=params)


def anion_table(mdsys):
    """The constrained anions: one dict per anion (``index``, ``formula``, ``centre``, ``atoms``)."""
    out = []
    for g, grp in enumerate(mdsys.groups):
        sp = [str(mdsys.species[i]) for i in grp]
        counts = {}
        for s in sp[1:]:
            counts[s] = counts.get(s, 0) + 1
        formula = sp[0] + "".join(f"{k}{v if v > 1 else ''}" for k, v in counts.items())
        out.append({"index": g, "formula": formula, "centre": int(grp[0]), "atoms": [int(i) for i in grp]})
    return out


def format_anions(mdsys, limit=8) -> str:
    """One paragraph listing the constrained anions (the first ``limit`` in full)."""
    table = anion_table(mdsys)
    kinds = {}
    for a in table:
        kinds[a["formula"]] = kinds.get(a["formula"], 0) + 1
    lines = [f"constrained anions: {len(table)} ({', '.join(f'{n} {k}' for k, n in kinds.items())})"]
    info = mdsys.parameters.get("anions") if isinstance(mdsys.parameters, dict) else None
    if info:
        lines[0] += (f"; centre {info['center']}, ligand {info['ligand']}, cutoff {info['cutoff_A']:.3g} Å "
                     f"({info['source']})")
    for a in table[:limit]:
        lines.append(f"  anion {a['index']}: {a['formula']} atoms {a['atoms']}")
    if len(table) > limit:
        lines.append(f"  … {len(table) - limit} more (all in the constraints JSON, key 'anions')")
    return "\n".join(lines)


def annotate_reports(mdsys, reports, paths, *, nve_ps=None, timestep=1.0, k_rot=None, k_com=None, platform="CPU",
                     threads=None, verbose=True, rc_backend=None):
    """Add the anion list, the potential and the NVE energy drift to each mode's constraints JSON.

    Parameters
    ----------
    mdsys : MDSystem
    reports : dict
        mode → report, as returned by :func:`~anionmotion.md.run.run_md` (updated in place).
    paths : dict
        mode → output NetCDF (:func:`~anionmotion.md.run.output_paths`).
    nve_ps : float, optional
        Length of the NVE drift run from the last frame, ps (0 or None: no drift run).
    rc_backend : {"eckart", "orientation"}, optional
        Rotational restraint used in the production (the drift run uses the same).

    Returns
    -------
    dict
        The updated reports.
    """
    import netCDF4

    from ..results import write_json
    from .run import report_path

    table = anion_table(mdsys)
    potential = mdsys.parameters.get("potential") if isinstance(mdsys.parameters, dict) else None
    label = potential.get("label") if potential else str(mdsys.parameters.get("system", mdsys.name))
    for mode, rep in reports.items():
        rp = report_path(paths[mode])
        changed = False
        if "anions" not in rep:
            rep["anions"] = table
            changed = True
        if "potential" not in rep:
            rep["potential"] = potential or {"label": label}
            changed = True
        if nve_ps and "nve_energy_drift" not in rep:
            with netCDF4.Dataset(paths[mode]) as ds:
                ds.set_auto_maskandscale(False)
                pos = np.asarray(ds["coordinates"][-1], dtype=np.float64) / 10.0
                vel = np.asarray(ds["velocities"][-1], dtype=np.float64) / 10.0
            steps = max(4, int(round(nve_ps / (timestep * 1e-3))))
            rep["nve_energy_drift"] = nve_energy_drift(mdsys, mode, pos, vel, mdsys.box, steps=steps,
                                                       timestep=timestep, k_rot=k_rot, k_com=k_com,
                                                       platform=platform, threads=threads, rc_backend=rc_backend)
            rep["nve_energy_drift"]["potential"] = label
            changed = True
            if verbose:
                d = rep["nve_energy_drift"]
                print(f"anionmotion md [{mode}]: NVE energy drift ({label}, {d['duration_ps']:g} ps, "
                      f"{d['timestep_fs']:g} fs): {d['kJ_mol_per_ps']:+.4g} kJ/mol/ps = "
                      f"{d['meV_per_atom_per_ps']:+.4g} meV/atom/ps", file=sys.stderr)
        if changed and os.path.exists(rp):
            write_json(rp, rep, overwrite=True)
            os.chmod(rp, 0o644)
    return reports



