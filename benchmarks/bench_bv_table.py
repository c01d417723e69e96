"""Paper 002 Table S1 against ``anionmotion bv``: E_rot, E_mig, E_mig/E_rot and the coupling mode.

Builds the validation structures from published crystallographic data (space group, lattice parameters,
Wyckoff positions; references in ``tests/data/bv/README.md``) with pymatgen's
``Structure.from_spacegroup``, optionally writes them as POSCARs (``--write tests/data/bv``), runs
:func:`anionmotion.structures.bv.bv_summary` on each and prints the comparison table (Markdown) with the
label agreement and the rank correlation of E_mig/E_rot.

    nice -n 10 python benchmarks/bench_bv_table.py [--write tests/data/bv] [--json out.json] [--only NAME …]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

#: paper 002 Table S1 rows used here: (formula, ICSD id, E_rot eV, E_mig eV, ratio, mode)
TABLE_S1 = {
    "NaNO3": [("NaNO3", "031011", 0.05, 3.23, 64.60, "rotate")],
    "Li2SO4": [("Li2SO4", "201117", 0.10, 3.79, 37.90, "rotate"), ("Li2SO4", "030276", 0.39, 2.93, 7.51, "rotate"),
               ("Li2SO4", "153807", 0.46, 0.56, 1.22, "vibrate")],
    "Na3SbS4": [("Na3SbS4", "044707", 1.07, 1.07, 1.00, "vibrate")],
    "Li6PS5Cl": [("Li6PS5Cl", "418488", 1.06, 2.78, 2.62, "rotate")],
    "Li6PS5Br": [("Li6PS5Br", "418490", 0.63, 2.96, 4.70, "rotate")],
    "Li6PS5I": [("Li6PS5I", "421083", 0.64, 3.20, 5.00, "rotate"), ("Li6PS5I", "418489", 0.49, 3.03, 6.18, "rotate")],
    "Na3AlF6": [("Na3AlF6", "074210", 0.07, 0.97, 13.86, "rotate"), ("Na3AlF6", "164685", 0.07, 0.99, 14.14, "rotate")],
    "Na3YCl6": [("Na3YCl6", "2057626", 0.12, 0.46, 3.83, "rotate")],
    "Li3PS4": [("Li3PS4", "035018", 1.18, 1.22, 1.03, "vibrate"), ("Li3PS4", "180318", 0.66, 0.79, 1.20, "vibrate")],
    "Li3PO4": [("Li3PO4", "010257", 0.48, 1.26, 2.63, "rotate"), ("Li3PO4", "020208", 0.49, 0.95, 1.94, "vibrate")],
    "LiBH4": [("LiBH4", "168802", 0.68, 2.15, 3.16, "rotate")],
}


#: structures whose polyanion the detection misses (Y–Cl 2.62 Å is beyond its 2.6 Å limit for Cl ligands)
GIVEN_POLYANION = {"Na3YCl6_cubic": {"center": "Y", "ligand": "Cl"}}


def _enargite(a, b, c, bond):
    """Enargite-type (Pmn2₁) A3BX4 from ideal wurtzite positions in the 2a_w × √3a_w × c_w cell, with the
    BX4 tetrahedra contracted about B to the bond length ``bond``; returns (lattice, species, frac)."""
    cat = np.array([(0, 0, 0), (.5, 0, 0), (.25, .5, 0), (.75, .5, 0), (0, 1 / 3, .5), (.5, 1 / 3, .5),
                    (.25, 5 / 6, .5), (.75, 5 / 6, .5)])
    an = cat + np.array([0, 0, 3 / 8])
    centres = (1, 4)   # the cation pair whose ordering has space group Pmn2₁ and no shared anion
    cell = np.diag([a, b, c])
    an = an.copy()
    for k in range(len(an)):
        best = None
        for ci in centres:
            f = an[k] - cat[ci]
            f -= np.round(f)
            v = f @ cell
            if best is None or np.linalg.norm(v) < np.linalg.norm(best[1]):
                best = (ci, v)
        ci, v = best
        an[k] = cat[ci] + (v / np.linalg.norm(v) * bond) @ np.linalg.inv(cell)
    species = ["P" if i in centres else "Li" for i in range(8)]
    return cell, species, np.vstack([cat, an])


def build_structures():
    """name → (pymatgen Structure, Table S1 key, note)."""
    from pymatgen.core import Lattice, Structure

    def sg(s, lat, sp, co):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Structure.from_spacegroup(s, lat, sp, co)

    out = {}
    out["NaNO3"] = (sg("R-3c", Lattice.hexagonal(5.0696, 16.829), ["Na", "N", "O"],
                       [[0, 0, 0], [0, 0, 0.25], [0.2448, 0, 0.25]]), "NaNO3", "published")
    # α-Li2SO4: S fcc (4a), Li on all tetrahedral sites (8c); SO4 given one orientation (edges along the
    # cube axes, O pointing between the Li) instead of its rotational disorder
    a = 7.07
    d = 1.47
    o = np.array([[np.sqrt(2 / 3), 0, np.sqrt(1 / 3)], [-np.sqrt(2 / 3), 0, np.sqrt(1 / 3)],
                  [0, np.sqrt(2 / 3), -np.sqrt(1 / 3)], [0, -np.sqrt(2 / 3), -np.sqrt(1 / 3)]]) * d / a
    fcc = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
    li = np.array([[x, y, z] for x in (.25, .75) for y in (.25, .75) for z in (.25, .75)])
    frac = np.vstack([fcc, li, (fcc[:, None, :] + o[None]).reshape(-1, 3)])
    out["Li2SO4_alpha"] = (Structure(Lattice.cubic(a), ["S"] * 4 + ["Li"] * 8 + ["O"] * 16, frac % 1.0), "Li2SO4",
                           "model")
    a = 7.18
    x = 2.33 / (np.sqrt(3) * a)
    out["Na3SbS4_cubic"] = (sg("I-43m", Lattice.cubic(a), ["Sb", "S", "Na"], [[0, 0, 0], [x, x, x], [0, .5, .5]]),
                            "Na3SbS4", "model")
    for X, a in (("Cl", 9.85), ("Br", 9.98), ("I", 10.14)):
        xs = 0.5 + 2.05 / (np.sqrt(3) * a)
        out[f"Li6PS5{X}"] = (sg("F-43m", Lattice.cubic(a), ["P", "S", "S", X, "Li"],
                                [[.5, .5, .5], [xs, xs, xs], [.25, .25, .25], [0, 0, 0], [0.02, .25, .25]]),
                             f"Li6PS5{X}", "model")
    a = 2 * (1.81 + 2.24)
    out["Na3AlF6_cubic"] = (sg("Fm-3m", Lattice.cubic(a), ["Al", "Na", "Na", "F"],
                               [[0, 0, 0], [.5, .5, .5], [.25, .25, .25], [1.81 / a, 0, 0]]), "Na3AlF6", "model")
    a = 2 * (2.62 + 2.80)
    out["Na3YCl6_cubic"] = (sg("Fm-3m", Lattice.cubic(a), ["Y", "Na", "Na", "Cl"],
                               [[0, 0, 0], [.5, .5, .5], [.25, .25, .25], [2.62 / a, 0, 0]]), "Na3YCl6", "model")
    cell, species, frac = _enargite(7.708, 6.535, 6.136, 2.05)
    out["Li3PS4_gamma"] = (Structure(Lattice(cell), species + ["S"] * 8, frac % 1.0), "Li3PS4", "model")
    cell, species, frac = _enargite(6.115, 5.239, 4.855, 1.54)
    out["Li3PO4_beta"] = (Structure(Lattice(cell), species + ["O"] * 8, frac % 1.0), "Li3PO4", "model")
    out["Li3PO4_gamma"] = (sg("Pmnb", Lattice.orthorhombic(6.1113, 10.4612, 4.9208),
                              ["Li", "Li", "P", "O", "O", "O"],
                              [[0.5016, 0.1627, 0.3008], [0.75, 0.4246, 0.2045], [0.25, 0.4115, 0.3079],
                               [0.0441, 0.3418, 0.2054], [0.25, 0.0503, 0.2928], [0.75, 0.0896, 0.1223]]),
                           "Li3PO4", "published")
    # orthorhombic LiBH4 (Pnma, Soulié et al. 2002): no softBV parameters for H⁻ — listed as not computable
    out["LiBH4_ortho"] = (sg("Pnma", Lattice.orthorhombic(7.17858, 4.43686, 6.80321), ["Li", "B", "H", "H", "H"],
                             [[0.1568, 0.25, 0.1015], [0.3040, 0.25, 0.4305], [0.900, 0.25, 0.956],
                              [0.404, 0.25, 0.280], [0.172, 0.054, 0.428]]), "LiBH4", "published")
    # refined structures copied from public repositories, with their Table S1 rows (README in the same folder)
    from anionmotion.structures import load_structure

    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "bv")
    with open(os.path.join(folder, "table_s1_extra.json")) as fh:
        for e in json.load(fh)["entries"]:
            TABLE_S1.setdefault(e["key"], [tuple(p) for p in e["paper"]])
            pst = load_structure(os.path.join(folder, e["file"]), disorder="order").to_pymatgen()
            out[e["name"]] = (pst, e["key"], e["kind"])
    return out


def figure(path, name="NaNO3", grid_spacing=0.2):
    """The E_rot construction for the first polyanion of ``name``: u(n) and the ligand's region below and at
    E_rot, on an equal-area map of the sphere of directions (φ, cos θ)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from anionmotion.analysis.polyanions import find_polyanions
    from anionmotion.kernels.pbc import minimum_image_ref
    from anionmotion.structures import Structure
    from anionmotion.structures._erot import (fibonacci_sphere, orientation_landscape, rotation_level,
                                              sphere_triangulation)
    from anionmotion.structures.bv import DEFAULT_SHELL, bvse_landscape, rotation_energies

    pst = build_structures()[name][0]
    st = Structure([x.specie.symbol for x in pst], pst.cart_coords, pst.lattice.matrix, path=name)
    row = rotation_energies(st, grid_spacing=grid_spacing)[0]
    land = bvse_landscape(st, row["ligand"], grid_spacing=grid_spacing)
    pa = find_polyanions(st.to_chunk(), center=row["center"], ligand=row["ligand"])
    a = list(pa.centers).index(row["center_index"])
    ci = row["center_index"]
    vec = minimum_image_ref(st.positions[pa.ligands[a]] - st.positions[ci], st.cell)
    d = row["bond_length_A"]
    dirs = fibonacci_sphere(row["n_directions"])
    tri, edges = sphere_triangulation(dirs)
    u, _ = orientation_landscape(land.interpolator(), st.positions[ci], dirs, DEFAULT_SHELL[0] * d,
                                 DEFAULT_SHELL[1] * d, row["n_radial"])
    res = rotation_level(u, dirs, tri, edges, vec)
    m = len(u)
    phi = np.degrees(np.arctan2(dirs[:, 1], dirs[:, 0]))
    cz = dirs[:, 2]
    lv = vec / np.linalg.norm(vec, axis=1)[:, None]

    def region(level, node):
        inside = u <= level
        keep = inside[edges[:, 0]] & inside[edges[:, 1]]
        g = coo_matrix((np.ones(int(keep.sum())), (edges[keep, 0], edges[keep, 1])), shape=(m, m))
        _, lab = connected_components(g, directed=False)
        comp = inside & (lab == lab[node])
        out = ~comp
        keep2 = out[edges[:, 0]] & out[edges[:, 1]]
        g2 = coo_matrix((np.ones(int(keep2.sum())), (edges[keep2, 0], edges[keep2, 1])), shape=(m, m))
        _, lab2 = connected_components(g2, directed=False)
        return inside, comp, np.where(out, lab2, -1)

    big = int(np.ceil(0.02 * m))
    node = res.ligand_nodes[0]
    for cand in res.ligand_nodes:   # the ligand whose region closes the path at E_rot
        _, comp, holes = region(res.level, cand)
        if comp.any() and sum(int((holes == h).sum()) >= big for h in np.unique(holes[holes >= 0])) >= 2:
            node = cand
            break

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.9), sharey=True)
    rel = u - res.u_min
    sc = axes[0].scatter(phi, cz, c=np.clip(rel, 0, 3 * res.e_rot), s=4, cmap="viridis")
    fig.colorbar(sc, ax=axes[0], label="u(n) − u_min (eV)")
    axes[0].set_title(f"{row['type']} in {name}: ligand energy u(n)")
    for ax, level, title in ((axes[1], res.level - 0.1 * res.e_rot, f"at {0.9 * res.e_rot:.2f} eV (0.9 E_rot)"),
                             (axes[2], res.level, f"at E_rot = {res.e_rot:.2f} eV")):
        inside, comp, holes = region(level, node)
        ax.scatter(phi[~inside], cz[~inside], s=4, c="0.85")
        ax.scatter(phi[inside & ~comp], cz[inside & ~comp], s=4, c="0.55")
        if level == res.level:
            for j, lab in enumerate(h for h in np.unique(holes[holes >= 0]) if (holes == h).sum() >= big):
                sel = holes == lab
                ax.scatter(phi[sel], cz[sel], s=4, c=("C0", "C2", "C4", "C1")[j % 4], label=f"hole {j + 1}")
        ax.scatter(phi[comp], cz[comp], s=4, c="C3", label="ligand's region K")
        ax.set_title(f"accessible region {title}", fontsize=10)
    for ax in axes:
        ax.scatter(np.degrees(np.arctan2(lv[:, 1], lv[:, 0])), lv[:, 2], marker="x", c="k", s=50, label="ligands")
        ax.set_xlabel("φ (degrees)")
        ax.set_xlim(-180, 180)
    axes[0].set_ylabel("cos θ (equal-area)")
    axes[2].legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_structures(folder):
    from pymatgen.io.vasp import Poscar

    os.makedirs(folder, exist_ok=True)
    paths = {}
    for name, (st, _, _) in build_structures().items():
        p = os.path.join(folder, f"{name}.vasp")
        Poscar(st.get_sorted_structure(), comment=f"{name} (anionmotion paper-002 validation; see README.md)") \
            .write_file(p)
        paths[name] = p
    return paths


def spearman(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    rx = np.argsort(np.argsort(x))
    ry = np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def run(names=None, grid_spacing=0.2):
    from anionmotion.errors import AnionmotionError
    from anionmotion.structures import Structure
    from anionmotion.structures.bv import bv_summary

    rows = []
    for name, (pst, key, kind) in build_structures().items():
        if names and name not in names:
            continue
        st = Structure([s.specie.symbol for s in pst], pst.cart_coords, pst.lattice.matrix, path=name)
        t0 = time.perf_counter()
        given = GIVEN_POLYANION.get(name, {})
        try:
            res = bv_summary(st, grid_spacing=grid_spacing, **given)
            err = None
        except AnionmotionError as e:
            res, err = None, str(e)
        rows.append({"name": name, "key": key, "kind": kind, "paper": TABLE_S1.get(key, []), "result": res,
                     "error": err, "seconds": time.perf_counter() - t0})
        r = res or {}
        print(f"{name}: E_rot {r.get('E_rot_min_eV')}, E_mig 1D/2D/3D {r.get('E_mig_1D_eV')}/{r.get('E_mig_2D_eV')}/"
              f"{r.get('E_mig_3D_eV')}, mode {r.get('mode')} ({rows[-1]['seconds']:.0f} s){' — ' + err if err else ''}",
              file=sys.stderr, flush=True)
    return rows


def _f(v, n=2):
    return "—" if v is None else f"{v:.{n}f}"


def table(rows):
    """Markdown table and the agreement summary for both readings of E_mig (cation / ligand)."""
    lines = ["| structure (ours) | kind | Table S1 (ICSD: E_rot / E_mig / ratio / mode) | E_rot | "
             "E_mig cation 1D / 2D / 3D | E_mig ligand 3D | ratio, mode (cation) | ratio, mode (ligand) |",
             "|---|---|---|---|---|---|---|---|"]
    stats = {b: {"scored": 0, "agree": 0, "ours": [], "paper": [], "disagree": []} for b in ("cation", "ligand")}
    for r in rows:
        paper = "; ".join(f"{p[1]}: {p[2]:.2f} / {p[3]:.2f} / {p[4]:.2f} / {p[5]}" for p in r["paper"])
        res = r["result"]
        if res is None:
            lines.append(f"| {r['name']} | {r['kind']} | {paper} | not computable: {r['error']} | | | | |")
            continue
        labels = {p[5] for p in r["paper"]}
        cells = []
        for b in ("cation", "ligand"):
            ratio, mode = res.get(f"ratio_{b}"), res.get(f"mode_{b}")
            mark = ""
            if len(labels) == 1 and mode is not None:
                st = stats[b]
                st["scored"] += 1
                hit = mode in labels
                st["agree"] += hit
                mark = "" if hit else " (**differs**)"
                if not hit:
                    st["disagree"].append(r["name"])
                st["ours"].append(ratio if ratio is not None else 0.0)
                st["paper"].append(float(np.mean([p[4] for p in r["paper"]])))
            elif mode is not None:
                mark = " (Table S1 rows differ)"
            cells.append(f"{_f(ratio)}, {mode}{mark}")
        lig = next(iter(res.get("E_mig_ligand_eV", {}).values()), {}) or {}
        lines.append(f"| {r['name']} | {r['kind']} | {paper} | {_f(res['E_rot_min_eV'])} | {_f(res['E_mig_1D_eV'])} / "
                     f"{_f(res['E_mig_2D_eV'])} / {_f(res['E_mig_3D_eV'])} | {_f(lig.get('3D'))} | {cells[0]} | "
                     f"{cells[1]} |")
    summary = {}
    for b, st in stats.items():
        summary[b] = {"scored": st["scored"], "agree": st["agree"], "disagree": st["disagree"],
                      "spearman_ratio": spearman(st["ours"], st["paper"]) if len(st["ours"]) > 2 else None}
    return "\n".join(lines), summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", metavar="DIR", help="write the structures as POSCARs into DIR and stop")
    p.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    p.add_argument("--only", nargs="+", help="structure names")
    p.add_argument("--grid-spacing", type=float, default=0.2)
    p.add_argument("--figure", metavar="PNG", help="draw the E_rot construction (docs figure) and stop")
    a = p.parse_args(argv)
    if a.figure:
        print(figure(a.figure))
        return 0
    if a.write:
        for name, path in write_structures(a.write).items():
            print(path)
        return 0
    rows = run(a.only, a.grid_spacing)
    text, summary = table(rows)
    print(text)
    print()
    for b, st in summary.items():
        print(f"E_mig of the {b}: label agreement {st['agree']}/{st['scored']} (differs: {', '.join(st['disagree'])}); "
              f"Spearman rank correlation of E_mig/E_rot with Table S1: {st['spearman_ratio']}")
    if a.json:
        from anionmotion.results import to_jsonable

        with open(a.json, "w") as fh:
            json.dump(to_jsonable({"rows": rows, "summary": summary}), fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

