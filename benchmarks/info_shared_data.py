"""Run ``anionmotion info`` on every trajectory file of the shared data folder (a reproducible check).

Not a timed benchmark: for each trajectory file it runs ``python -m anionmotion info FILE [options]`` in a
subprocess with the reader options the file needs (from the data folder's MANIFEST.md files), and prints a
Markdown table: file, format, options used, atoms, frames, time span, exit status (with the one-line error of
files that are rejected).  Files that are not trajectories (LAMMPS data files, inputs, reference tables,
topologies) are listed separately.  Any file that is neither in the table of cases nor recognised as a
companion file is run without options and flagged ``unlisted``, so a new data file cannot be skipped silently.

CP2K tarballs (``cp2k/pwtools/*.tgz``) are archives, not trajectory files: they are extracted to a temporary
folder and ``info`` runs on the ``*-pos-1.xyz`` inside (its ``.cell`` and ``-vel-`` siblings are found next to
it).

Usage::

    python benchmarks/info_shared_data.py [DATA_DIR] [--jobs 2]

``DATA_DIR`` defaults to ``../shared/data`` relative to the repository.  Exit status 0 when every file behaves
as expected (exit 0, or exit 2 for the deliberately malformed / rejected files marked ``expect=2``).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LI2SO4 = ["--types", "1=Li,2=S,3=O"]
PH = "placeholder element map (the source names no elements)"

#: (path relative to DATA_DIR, options, note, expected exit status).  ``@x`` in an option = DATA_DIR/x.
CASES = [
    # engine-written Li2SO4 model (engines/MANIFEST.md)
    ("engines/cp2k/li2so4_ortho_T1000-pos-1.xyz", [], "CP2K pos + vel + cell", 0),
    ("engines/lammps/li2so4_ortho_T1000.lammpstrj", LI2SO4 + ["--timestep", "0.001"], "", 0),
    ("engines/lammps/li2so4_ortho_T700.lammpstrj.gz", LI2SO4 + ["--timestep", "0.001"], "gzip", 0),
    ("engines/lammps/li2so4_ortho_T1000_real.lammpstrj",
     LI2SO4 + ["--lammps-units", "real", "--timestep", "0.001"], "units real (Å/fs velocities)", 0),
    ("engines/lammps/li2so4_tri_T1000.unwrapped.lammpstrj", LI2SO4 + ["--timestep", "0.001"], "triclinic", 0),
    ("engines/lammps/li2so4_ortho_T1000.truncated.lammpstrj", LI2SO4 + ["--timestep", "0.001"],
     "deliberately cut: TruncatedFileWarning, complete frames kept", 0),
    # argyrodite AIMD (POTIM 2 fs × NBLOCK 50 = 0.1 ps)
    *[(f"thirdparty/argyrodite-aimd/Li6PS5Cl/{d}/run{r}/actual_XDATCAR.gz", ["--frame-interval", "0.1"],
       "POTIM×NBLOCK = 0.1 ps", 0) for d, runs in (("0p", range(1, 6)), ("100p", range(1, 7))) for r in runs],
    # CP2K
    ("thirdparty/cp2k/dpdata/cp2k-pos-1.xyz", ["--cell", "10.242489", "10.242489", "23.0"],
     "cell from cp2k.inp (no .cell file)", 0),
    ("thirdparty/cp2k/dpdata/reftraj_DPGEN/DPGEN-pos-1.xyz",
     ["--cell", "10.451", "12.068", "39.754", "--frame-interval", "1"],
     "cell from input.inp; REFTRAJ (time 0 in every frame): 1 ps placeholder spacing", 0),
    ("thirdparty/cp2k/pwtools/nvt_print_low.tgz", [], "tarball: extracted, info on the -pos-1.xyz inside", 0),
    ("thirdparty/cp2k/pwtools/npt_f_print_low.tgz", [], "tarball: extracted, info on the -pos-1.xyz inside", 0),
    ("thirdparty/cp2k/pwtools/npt_xyz.tgz", [], "tarball: extracted, info on the -pos-1.xyz inside", 0),
    ("thirdparty/mdanse/cp2k_co2gas/CO2GAS-pos-1.xyz", [], "", 0),
    # ASE
    ("thirdparty/dpdata-formats/ase_traj/MoS2.traj", ["--frame-interval", "1"], "no times: 1 ps placeholder", 0),
    ("thirdparty/dpdata-formats/ase_traj/HeAlO.traj", ["--frame-interval", "1"],
     "frames of different systems (dpdata multi-system test): not one trajectory", 2),
    ("thirdparty/mdanse/ase/Cu_5steps_ASEformat.traj", ["--frame-interval", "1"],
     "no times: 1 ps placeholder; pbc False in the file", 0),
    # dpdata LAMMPS dumps (O/H per dpdata's poscar_ref_oh)
    ("thirdparty/dpdata-formats/lammps_dump/conf.dump", ["--types", "1=O,2=H", "--frame-interval", "1"],
     "no time step known: 1 ps placeholder", 0),
    ("thirdparty/dpdata-formats/lammps_dump/conf.5.dump", ["--types", "1=O,2=H", "--frame-interval", "1"],
     "no time step known: 1 ps placeholder", 0),
    ("thirdparty/dpdata-formats/lammps_dump/conf2.dump", ["--types", "1=O,2=H", "--frame-interval", "1"],
     "no time step known: 1 ps placeholder", 0),
    ("thirdparty/dpdata-formats/lammps_dump/conf_s_su.dump", ["--types", "1=O,2=H", "--frame-interval", "1"],
     "dpdata test file: xs ys zs in frame 0, xsu ysu zsu in frame 1 (rejected)", 2),
    ("thirdparty/dpdata-formats/lammps_dump/conf_unfold.dump", ["--types", "1=O,2=H", "--frame-interval", "1"],
     "dpdata test file: both frames have TIMESTEP 0 (rejected)", 2),
    ("thirdparty/dpdata-formats/lammps_dump/lammps_traj.dump", ["--types", "1=Fe,2=Fe", "--timestep", "0.001"],
     PH + "; spin columns ignored", 0),
    ("thirdparty/dpdata-formats/lammps_dump/lammps_traj_with_random_type_id.dump",
     ["--types", "2=Fe,3=Fe,4=Fe,6=Fe", "--timestep", "0.001"], PH, 0),
    ("thirdparty/dpdata-formats/lammps_dump/shift_origin.dump", ["--types", "1=Si", "--frame-interval", "1"],
     PH + "; box lo = −2", 0),
    # VASP
    ("thirdparty/dpdata-formats/vasp/vasprun.h2o.md.xml", [], "time = step × POTIM", 0),
    ("thirdparty/dpdata-formats/vasp/vasprun.h2o.md.10.xml", [], "time = step × POTIM", 0),
    ("thirdparty/dpdata-formats/vasp/vasprun.h2o.md.tribox.xml", [], "triclinic cell", 0),
    ("thirdparty/dpdata-formats/vasp/vasprun.h2o.md.tribox.lower.xml", [], "triclinic cell (lower form)", 0),
    ("thirdparty/dpdata-formats/vasp/Ti-aimd-nwrite0/vasprun.xml", [], "POTIM 2 fs", 0),
    ("thirdparty/dpdata-formats/vasp/OUTCAR.h2o.md", [], "VASP OUTCAR", 0),
    ("thirdparty/dpdata-formats/vasp/OUTCAR.h2o.md.10", [], "VASP OUTCAR", 0),
    # IonDiff XDATCARs (POTIM 1.5 fs × NBLOCK 10)
    ("thirdparty/iondiff-xdatcar-tests/XDATCAR_ok/XDATCAR", ["--frame-interval", "0.015"], "", 0),
    ("thirdparty/iondiff-xdatcar-tests/XDATCAR_scale_wrong/XDATCAR", ["--frame-interval", "0.015"],
     "deliberately malformed", 2),
    ("thirdparty/iondiff-xdatcar-tests/XDATCAR_cell_wrong/XDATCAR", ["--frame-interval", "0.015"],
     "deliberately malformed", 2),
    ("thirdparty/iondiff-xdatcar-tests/XDATCAR_composition_wrong/XDATCAR", ["--frame-interval", "0.015"],
     "deliberately malformed", 2),
    ("thirdparty/iondiff-xdatcar-tests/XDATCAR_pos_wrong/XDATCAR", ["--frame-interval", "0.015"],
     "deliberately malformed", 2),
    # kinisi
    ("thirdparty/kinisi/example_LAMMPS.dcd",
     ["--topology", "@thirdparty/kinisi/example_LAMMPS.data", "--frame-interval", "1.25"],
     "LJ units; 0.005 τ × 250 steps", 0),
    ("thirdparty/kinisi/example_LAMMPS_center.traj", ["--lammps-units", "lj", "--frame-interval", "1"],
     "LAMMPS dump named .traj; LJ: unconverted, type labels", 0),
    ("thirdparty/kinisi/example_LAMMPS_drift.traj", ["--lammps-units", "lj", "--frame-interval", "1"],
     "LAMMPS dump named .traj; LJ: unconverted, type labels", 0),
    ("thirdparty/kinisi/example_center.XDATCAR", ["--frame-interval", "1"], "hand-made; 1 ps placeholder", 0),
    ("thirdparty/kinisi/example_drift.XDATCAR", ["--frame-interval", "1"], "hand-made; 1 ps placeholder", 0),
    # matscipy
    ("thirdparty/lammps-netcdf-matscipy/CuZr_glass_460_atoms_forces.lammps.dump.gz",
     ["--types", "1=Cu,2=Zr", "--frame-interval", "1"], "1 frame", 0),
    ("thirdparty/lammps-netcdf-matscipy/PBC.KA.N256.Min.nc", [], "LJ; type labels", 0),
    ("thirdparty/lammps-netcdf-matscipy/aSi.structure_minimum_65atoms_pot_energy.nc", [], "", 0),
    ("thirdparty/lammps-netcdf-matscipy/ultrastable_config_N32.nc", [], "LJ; type labels", 0),
    # MDAnalysis AMBER NetCDF
    ("thirdparty/mdanalysis/amber_netcdf/ace_tip3p.nc", ["--topology", "@thirdparty/mdanalysis/amber_netcdf/"
                                                         "ace_tip3p.parm7"], "", 0),
    ("thirdparty/mdanalysis/amber_netcdf/tz2.truncoct.nc",
     ["--topology", "@thirdparty/mdanalysis/amber_netcdf/tz2.truncoct.parm7.bz2", "--frame-interval", "1"],
     "truncated octahedron; no usable time: 1 ps placeholder", 0),
    ("thirdparty/mdanalysis/amber_netcdf/cpptraj_traj.nc",
     ["--topology", "@thirdparty/mdanalysis/amber_netcdf/cpptraj_traj.prmtop", "--frame-interval", "1"],
     "no time variable: 1 ps placeholder", 0),
    ("thirdparty/mdanalysis/amber_netcdf/bala.ncdf", ["--frame-interval", "1"],
     "no topology shipped: atoms labelled X (warning); time 0 everywhere: 1 ps placeholder", 0),
    ("thirdparty/mdanalysis/amber_netcdf/posfor.ncdf", ["--cell", "40", "40", "40"],
     "no box: 40 Å placeholder; no species: atoms labelled X", 0),
    # MDAnalysis LAMMPS dumps
    ("thirdparty/mdanalysis/lammps/spce_all_coords.lammpstrj.bz2", ["--types", "1=O,2=H", "--timestep", "0.001"],
     "SPC/E water; every coordinate convention", 0),
    ("thirdparty/mdanalysis/lammps/spce_no_coords.lammpstrj.bz2", ["--types", "1=O,2=H", "--timestep", "0.001"],
     "deliberately without coordinates", 2),
    ("thirdparty/mdanalysis/lammps/image_vf.lammpstrj", ["--lammps-units", "lj", "--frame-interval", "1"],
     "masses 1 (LJ): type labels; 1 placeholder spacing", 0),
    ("thirdparty/mdanalysis/lammps/albite_triclinic.dump", ["--types", "1=Al", "--frame-interval", "1"],
     "type 1 = 26.98 amu in albite_triclinic.data", 0),
    ("thirdparty/mdanalysis/lammps/wat.lammpstrj.bz2", ["--types", "1=H,2=O", "--timestep", "0.001"], "", 0),
    ("thirdparty/mdanalysis/lammps/WIN_wat.lammpstrj", ["--types", "1=H,2=O", "--timestep", "0.001"],
     "CRLF line ends", 0),
    ("thirdparty/mdanalysis/lammps/wat.lammpstrj_long.bz2", ["--types", "1=H,2=O", "--timestep", "0.001"],
     "atom lines have 6 values, the header names 5 (rejected)", 2),
    ("thirdparty/mdanalysis/lammps/additional_columns.lammpstrj",
     ["--topology", "@thirdparty/mdanalysis/lammps/additional_columns.data", "--frame-interval", "1"],
     "no type column: species from the data file (type 1, 12.011 amu → C); 1 ps placeholder", 0),
    ("thirdparty/mdanalysis/lammps/chain_dump_1.lammpstrj", ["--lammps-units", "lj", "--frame-interval", "1"],
     "masses 1 (LJ): type labels; 1 placeholder spacing", 0),
    ("thirdparty/mdanalysis/lammps/chain_dump_2.lammpstrj", ["--lammps-units", "lj", "--frame-interval", "1"],
     "masses 1 (LJ): type labels; 1 placeholder spacing", 0),
    ("thirdparty/mdanalysis/lammps/mass_q_elem.lammpstrj", ["--timestep", "0.001"], "element + mass columns", 0),
    ("thirdparty/mdanalysis/lammps/nomass_elemx.lammpstrj", ["--timestep", "0.001"],
     "element column holds 'X' (unknown element: mass unknown)", 0),
    # MDANSE
    ("thirdparty/mdanse/extxyz/traj-100K-npt-1000-res.xyz", ["--frame-interval", "1"], "1 frame", 0),
    ("thirdparty/mdanse/lammps/lammps_moly_custom.txt",
     ["--format", "lammps", "--lammps-units", "electron", "--types", "1=Mo", "--timestep", "0.0005"],
     "units electron (bohr → Å); timestep 0.5 fs (mo.lmp)", 0),
    ("thirdparty/mdanse/lammps/lammps_moly_xyz.txt",
     ["--lammps-units", "electron", "--types", "1=Mo", "--cell", "25.4005061", "25.4005061", "25.4005061",
      "--timestep", "0.0005"], "LAMMPS dump xyz, units electron; box 48 bohr from the custom dump", 0),
    ("thirdparty/mdanse/lammps/lammps_test.lammps",
     ["--types", ",".join(f"{i}=C" for i in range(1, 14)), "--frame-interval", "1"], PH + " (13 types)", 0),
    ("thirdparty/mdanse/vasp/XDATCAR_version5", ["--frame-interval", "1"], "blank-line frames; 1 ps placeholder", 0),
    # mdtraj
    ("thirdparty/mdtraj/frame0.lammpstrj", ["--types", ",".join(f"{i}=C" for i in range(1, 15)),
                                            "--timestep", "0.001"], PH + " (14 types)", 0),
    ("thirdparty/mdtraj/custom.lammpstrj", ["--timestep", "0.001"], "element column; shuffled columns", 0),
    ("thirdparty/mdtraj/frame0.nc", ["--topology", "@thirdparty/mdtraj/native.pdb"], "", 0),
]

#: companion files that are not trajectories (glob on the path relative to DATA_DIR)
NOT_TRAJECTORIES = [
    ("*MANIFEST.md", "documentation"), ("*/COMMIT", "provenance"), ("*/LICENSE.upstream", "licence"),
    ("*.data", "LAMMPS data file (topology / initial configuration)"), ("*.psf", "topology"),
    ("*.pdb", "topology / single structure"), ("*.parm7", "AMBER topology"), ("*.parm7.bz2", "AMBER topology"),
    ("*.prmtop", "AMBER topology"), ("*.inp", "CP2K input"), ("*.lmp", "LAMMPS input"), ("*/in.*", "LAMMPS input"),
    ("*/INCAR", "VASP input"), ("*.ener", "CP2K energies"), ("*.cell", "CP2K cell file (read with its -pos-)"),
    ("*-vel-1.xyz", "CP2K velocities (read with its -pos-)"), ("*-frc-1.xyz", "CP2K forces"),
    ("*.msd.txt", "LAMMPS reference"), ("*.vacf.txt", "LAMMPS reference"), ("*.thermo.txt", "LAMMPS reference"),
    ("*frame_numbers.dat.gz", "frame steps"), ("*.yaml", "metadata"), ("*NC_HEADERS.txt", "ncdump headers"),
    ("*lammps_test.config", "Towhee configuration"), ("*structure_moly.lammps", "LAMMPS data file"),
]


def _classify(rel):
    for pat, why in NOT_TRAJECTORIES:
        if fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch("/" + rel, pat):
            return why
    return None


def _run_info(path, options, data_dir):
    opts = [os.path.join(data_dir, o[1:]) if o.startswith("@") else o for o in options]
    with tempfile.TemporaryDirectory() as tmp:
        target = path
        if path.endswith(".tgz"):
            with tarfile.open(path) as tar:
                tar.extractall(tmp, filter="data")
            pos = sorted(os.path.join(r, f) for r, _, fs in os.walk(tmp) for f in fs if f.endswith("-pos-1.xyz"))
            if not pos:
                return {"rc": 3, "error": "no *-pos-1.xyz in the archive"}
            target = pos[0]
        js = os.path.join(tmp, "info.json")
        cmd = [sys.executable, "-m", "anionmotion", "info", target, *opts, "--no-progress", "--json", js]
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800)
        out = {"rc": p.returncode, "error": "", "warnings": []}
        if p.returncode == 0 and os.path.exists(js):
            d = json.load(open(js))
            out.update(format=d["format"], atoms=d["n_atoms"], frames=d["n_frames"], span=d["time"]["span_ps"],
                       warnings=d["warnings"])
        errs = [ln for ln in p.stderr.splitlines() if "error:" in ln or "warning:" in ln]
        for ln in errs:
            if "error:" in ln:
                out["error"] = ln.split("error:", 1)[1].strip().replace(data_dir.rstrip("/") + "/", "")
            else:
                out["warnings"].append(ln.split("warning:", 1)[1].strip())
        if p.returncode not in (0, 2) and not out["error"]:
            out["error"] = (p.stderr.strip().splitlines() or ["?"])[-1]
        return out


def _cell(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", nargs="?", default=os.path.join(REPO, "..", "shared", "data"))
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    data = os.path.abspath(args.data)
    listed = {c[0] for c in CASES}
    cases = [c for c in CASES if os.path.exists(os.path.join(data, c[0]))]
    missing = sorted(listed - {c[0] for c in cases})
    companions, unlisted = [], []
    for root, _, files in os.walk(data):
        for f in sorted(files):
            rel = os.path.relpath(os.path.join(root, f), data)
            if rel in listed:
                continue
            why = _classify(rel)
            (companions.append((rel, why)) if why else unlisted.append(rel))
    cases += [(rel, [], "unlisted: run without options", 0) for rel in sorted(unlisted)]
    with ThreadPoolExecutor(args.jobs) as ex:
        results = list(ex.map(lambda c: _run_info(os.path.join(data, c[0]), c[1], data), cases))
    ok = True
    print("| file | format | options | atoms | frames | span (ps) | exit | notes / message |")
    print("|---|---|---|---|---|---|---|---|")
    for (rel, opts, note, expect), r in zip(cases, results):
        good = r["rc"] == expect
        ok &= good
        shown = " ".join(o if not o.startswith("@") else os.path.basename(o) for o in opts) or "–"
        msg = note
        if r["rc"] != 0:
            msg = (note + ": " if note else "") + "`" + r["error"][:220] + "`"
        elif r["warnings"]:
            w = r["warnings"][0].replace(data.rstrip("/") + "/", "")
            msg = (note + ": " if note else "") + "warning: " + w[:160]
        status = f"{r['rc']}" + ("" if good else f" (expected {expect})")
        print(f"| `{rel}` | {r.get('format', '–')} | `{_cell(shown)}` | {r.get('atoms', '–')} | "
              f"{r.get('frames', '–')} | " + (f"{r['span']:.6g}" if "span" in r else "–")
              + f" | {status} | {_cell(msg)} |")
    print()
    print(f"{sum(r['rc'] == 0 for r in results)} of {len(results)} files exit 0; "
          f"{sum(r['rc'] == 2 for r in results)} exit 2 (rejected with a message); "
          f"{sum(1 for c, r in zip(cases, results) if r['rc'] != c[3])} unexpected.")
    if missing:
        print(f"Listed but absent from {data}: {', '.join(missing)}")
    print()
    kinds = {}
    for _, why in companions:
        kinds[why] = kinds.get(why, 0) + 1
    print("Companion files (not trajectories, not run): " + "; ".join(f"{w}: {n}" for w, n in sorted(kinds.items())))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
