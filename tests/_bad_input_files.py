"""Small valid inputs of every reader's format, written from one synthetic Li2SO4-like run (no tests here).

Used by ``tests/_bad_input_cases.py`` (the bad-input catalogue) and ``tests/test_bad_inputs.py``: each
bad input is one of these files mutated (truncated, a header count changed, bytes flipped …).
"""

from __future__ import annotations

import gzip
import os
import shutil

import numpy as np

from _report_synth import li2so4_arrays

DATA = os.path.join(os.path.dirname(__file__), "data")
N_FRAMES = 40
DT = 0.02          # ps between frames
BOX = 12.0         # Å


def arrays():
    """positions (N_FRAMES, 56, 3) Å wrapped, cell (3, 3), times ps, species list, velocities Å/ps."""
    pos, cell, t, species, vel = li2so4_arrays(n_frames=N_FRAMES, dt=DT, box=BOX, seed=3)
    return pos % BOX, cell, t, species, vel


def lammps_text(pos, species, t, vel=None, *, box=BOX, n_atoms_override=None):
    """LAMMPS dump text (custom style: id element x y z [vx vy vz]) of the frames."""
    out = []
    for f in range(len(pos)):
        n = len(species) if n_atoms_override is None or f not in n_atoms_override else n_atoms_override[f]
        out.append(f"ITEM: TIMESTEP\n{f * 20}\nITEM: NUMBER OF ATOMS\n{n}\nITEM: BOX BOUNDS pp pp pp\n"
                   f"0.0 {box!r}\n0.0 {box!r}\n0.0 {box!r}\n")
        cols = "id element x y z" + (" vx vy vz" if vel is not None else "")
        out.append(f"ITEM: ATOMS {cols}\n")
        for i, s in enumerate(species):
            row = f"{i + 1} {s} {pos[f, i, 0]:.6f} {pos[f, i, 1]:.6f} {pos[f, i, 2]:.6f}"
            if vel is not None:
                row += f" {vel[f, i, 0]:.5f} {vel[f, i, 1]:.5f} {vel[f, i, 2]:.5f}"
            out.append(row + "\n")
    return "".join(out)


def xdatcar_text(pos, species, *, box=BOX):
    elems = list(dict.fromkeys(species))
    counts = [species.count(e) for e in elems]
    out = ["Li2SO4 synthetic\n", "1.0\n", f"  {box:.6f} 0 0\n", f"  0 {box:.6f} 0\n", f"  0 0 {box:.6f}\n",
           "  " + " ".join(elems) + "\n", "  " + " ".join(map(str, counts)) + "\n"]
    for f in range(len(pos)):
        out.append(f"Direct configuration= {f + 1:5d}\n")
        for x in pos[f] / box:
            out.append(f"  {x[0]:.8f} {x[1]:.8f} {x[2]:.8f}\n")
    return "".join(out)


def extxyz_text(pos, species, t, *, box=BOX):
    out = []
    for f in range(len(pos)):
        out.append(f"{len(species)}\nLattice=\"{box} 0 0 0 {box} 0 0 0 {box}\" Properties=species:S:1:pos:R:3 "
                   f"time={t[f]:.4f} pbc=\"T T T\"\n")
        for s, x in zip(species, pos[f]):
            out.append(f"{s} {x[0]:.6f} {x[1]:.6f} {x[2]:.6f}\n")
    return "".join(out)


def cp2k_files(folder, pos, species, t, vel, *, box=BOX):
    """CP2K run: NAME-pos-1.xyz, NAME-vel-1.xyz (bohr/au_time), NAME-1.cell.  Returns the positions file."""
    bohr = 0.529177210903
    au_time_ps = 2.4188843265857e-5
    pos_path = os.path.join(folder, "run-pos-1.xyz")
    vel_path = os.path.join(folder, "run-vel-1.xyz")
    cell_path = os.path.join(folder, "run-1.cell")
    with open(pos_path, "w") as fp, open(vel_path, "w") as fv:
        for f in range(len(pos)):
            head = f" i = {f * 20:8d}, time = {t[f] * 1000:12.3f}, E = -100.0\n"
            fp.write(f"{len(species)}\n{head}")
            fv.write(f"{len(species)}\n{head}")
            for s, x, v in zip(species, pos[f], vel[f]):
                fp.write(f"{s:>3} {x[0]:14.8f} {x[1]:14.8f} {x[2]:14.8f}\n")
                vv = v / bohr * au_time_ps
                fv.write(f"{s:>3} {vv[0]:16.10e} {vv[1]:16.10e} {vv[2]:16.10e}\n")
    with open(cell_path, "w") as fc:
        fc.write("#   Step   Time [fs]       Ax [Angstrom]       Ay [Angstrom]       Az [Angstrom]       Bx [Angstrom]"
                 "       By [Angstrom]       Bz [Angstrom]       Cx [Angstrom]       Cy [Angstrom]       Cz [Angstrom]"
                 "      Volume [Angstrom^3]\n")
        for f in range(len(pos)):
            fc.write(f"{f * 20:8d} {t[f] * 1000:12.3f} {box:.6f} 0 0 0 {box:.6f} 0 0 0 {box:.6f} {box ** 3:.3f}\n")
    return pos_path


def lammps_data_text(pos, species, *, box=BOX):
    elems = list(dict.fromkeys(species))
    masses = {"Li": 6.94, "S": 32.06, "O": 15.999}
    out = ["LAMMPS data file (synthetic)\n\n", f"{len(species)} atoms\n", f"{len(elems)} atom types\n\n",
           f"0.0 {box} xlo xhi\n0.0 {box} ylo yhi\n0.0 {box} zlo zhi\n\n", "Masses\n\n"]
    for k, e in enumerate(elems):
        out.append(f"{k + 1} {masses[e]} # {e}\n")
    out.append("\nAtoms # charge\n\n")
    for i, s in enumerate(species):
        out.append(f"{i + 1} {elems.index(s) + 1} 0.0 {pos[0, i, 0]:.6f} {pos[0, i, 1]:.6f} {pos[0, i, 2]:.6f}\n")
    return "".join(out)


def write_netcdf(path, pos, cell, t, species, vel):
    from anionmotion.io.netcdf_writer import NetCDFWriter

    w = NetCDFWriter(path, species, metadata={"temperature_K": 600.0})
    try:
        for f in range(len(pos)):
            w.write(pos[f], cell, time=t[f], velocities=vel[f])
    finally:
        w.close()
    return path


def write_ase(path, pos, cell, species):
    from ase import Atoms
    from ase.io.trajectory import Trajectory

    with Trajectory(path, "w") as tr:
        for f in range(len(pos)):
            tr.write(Atoms(symbols=species, positions=pos[f], cell=cell, pbc=True))
    return path


def write_h5md(path, pos, cell, t, species, vel):
    """H5MD 1.1 (h5py): positions Å, times ps, one fixed box, atomic numbers, velocities Å/ps."""
    import h5py

    z = {"Li": 3, "O": 8, "S": 16}
    with h5py.File(path, "w") as f:
        h = f.create_group("h5md")
        h.attrs["version"] = np.array([1, 1])
        h.create_group("creator").attrs.update({"name": "anionmotion-tests", "version": "1"})
        h.create_group("author").attrs["name"] = "tests"
        g = f.create_group("particles").create_group("all")
        p = g.create_group("position")
        p.create_dataset("value", data=pos).attrs["unit"] = "Angstrom"
        p.create_dataset("step", data=20 * np.arange(len(pos)))
        p.create_dataset("time", data=t).attrs["unit"] = "ps"
        b = g.create_group("box")
        b.attrs["dimension"] = 3
        b.attrs["boundary"] = np.array([b"periodic"] * 3)
        b.create_dataset("edges", data=cell).attrs["unit"] = "Angstrom"
        g.create_group("velocity").create_dataset("value", data=vel).attrs["unit"] = "Angstrom/ps"
        g.create_dataset("species", data=np.array([z[s] for s in species], dtype=np.int32))
    return path


def write_dcd(path, pos, cell, t):
    import mdtraj
    from mdtraj.formats import DCDTrajectoryFile

    with DCDTrajectoryFile(path, "w") as f:
        f.write(pos.astype(np.float32), cell_lengths=np.tile(np.diag(cell), (len(pos), 1)),
                cell_angles=np.full((len(pos), 3), 90.0))
    del mdtraj
    return path


def write_all(folder):
    """Write one valid file per format into ``folder``; returns {name: path} (+ helpers such as 'data')."""
    os.makedirs(folder, exist_ok=True)
    pos, cell, t, species, vel = arrays()
    files = {}

    def put(name, text):
        p = os.path.join(folder, name)
        with open(p, "w") as fh:
            fh.write(text)
        return p

    files["lammps"] = put("run.lammpstrj", lammps_text(pos, species, t, vel))
    gz = os.path.join(folder, "run.lammpstrj.gz")
    with open(files["lammps"], "rb") as src, gzip.open(gz, "wb") as dst:
        dst.write(src.read())
    files["lammps_gz"] = gz
    files["data"] = put("run.data", lammps_data_text(pos, species))
    files["xdatcar"] = put("XDATCAR", xdatcar_text(pos, species))
    files["extxyz"] = put("run.extxyz", extxyz_text(pos, species, t))
    cpdir = os.path.join(folder, "cp2k")
    os.makedirs(cpdir, exist_ok=True)
    files["cp2k"] = cp2k_files(cpdir, pos, species, t, vel)
    files["netcdf"] = write_netcdf(os.path.join(folder, "run.nc"), pos, cell, t, species, vel)
    files["ase"] = write_ase(os.path.join(folder, "run.traj"), pos, cell, species)
    files["dcd"] = write_dcd(os.path.join(folder, "run.dcd"), pos, cell, t)
    files["h5md"] = write_h5md(os.path.join(folder, "run.h5md"), pos, cell, t, species, vel)
    for key, src in (("outcar", ("vasprun", "OUTCAR.h2o.md")), ("vasprun", ("vasprun", "vasprun.h2o.md.xml"))):
        dst = os.path.join(folder, src[1])
        shutil.copyfile(os.path.join(DATA, *src), dst)
        files[key] = dst
    return files
