"""``anionmotion info`` on every copied trajectory of the NetCDF/CP2K/XDATCAR/xyz/MDTraj readers."""

import json

import pytest

from anionmotion.cli import main

from conftest import data_path

GOOD = [
    (["netcdf/PBC.KA.N256.Min.nc"], "netcdf", 256, 2),
    (["netcdf/aSi.structure_minimum_65atoms_pot_energy.nc", "--types", "1=Si"], "netcdf", 64, 1),
    (["netcdf/ultrastable_config_N32.nc"], "netcdf", 32, 1),
    (["netcdf/ace_tip3p.nc", "--topology", "@netcdf/ace_tip3p.parm7"], "netcdf", 1398, 10),
    (["netcdf/cpptraj_traj.nc", "--topology", "@netcdf/cpptraj_traj.prmtop", "--frame-interval", "1"], "netcdf",
     84, 3),
    (["netcdf/frame0.nc", "--topology", "@netcdf/native.pdb"], "netcdf", 22, 501),
    (["cp2k/li2so4/li2so4_ortho_T1000-pos-1.xyz.gz"], "cp2k", 504, 60),
    (["cp2k/npt_f_print_low/PROJECT-pos-1.xyz"], "cp2k", 4, 11),
    (["cp2k/nvt_print_low/PROJECT-pos-1.xyz"], "cp2k", 4, 21),
    (["cp2k/co2gas/CO2GAS-pos-1.xyz"], "cp2k", 60, 100),
    (["cp2k/dpdata/cp2k-pos-1.xyz", "--cell", "10.242489", "10.242489", "23.0"], "cp2k", 132, 3),
    (["xdatcar/iondiff/XDATCAR_ok", "--frame-interval", "0.015"], "xdatcar", 382, 2),
    (["xdatcar/XDATCAR_version5", "--frame-interval", "0.001"], "xdatcar", 210, 57),
    (["xdatcar/argyrodite_0p_run1_XDATCAR.gz", "--frame-interval", "0.1"], "xdatcar", 416, 140),
    (["xdatcar/example_center.XDATCAR", "--frame-interval", "1"], "xdatcar", 3, 4),
    (["extxyz/traj-100K-npt-1000-res.xyz", "--frame-interval", "1"], "extxyz", 960, 1),
    (["mdtraj/example_LAMMPS.dcd", "--topology", "@mdtraj/example_LAMMPS.data", "--frame-interval", "1.25"],
     "mdtraj", 256, 200),
    (["netcdf/posfor.ncdf", "--cell", "40", "40", "40"], "netcdf", 442, 2),   # no species: atoms labelled X
]

BAD = [
    (["xdatcar/iondiff/XDATCAR_scale_wrong", "--frame-interval", "1"], "line 2: expected the scale factor"),
    (["xdatcar/iondiff/XDATCAR_cell_wrong", "--frame-interval", "1"], "line 3: expected lattice vector a"),
    (["xdatcar/iondiff/XDATCAR_composition_wrong", "--frame-interval", "1"], "line 7: the species line names 11"),
    (["xdatcar/iondiff/XDATCAR_pos_wrong", "--frame-interval", "1"], "frame 0 has only 381 coordinate rows"),
    (["xdatcar/XDATCAR_version5"], "carries no time information"),
    (["cp2k/dpdata/cp2k-pos-1.xyz"], "give the cell with cell= / --cell"),
    (["netcdf/posfor.ncdf"], "the file has no cell"),
    (["mdtraj/example_LAMMPS.dcd", "--frame-interval", "1"], ".dcd files carry no element names"),
    (["netcdf/ace_tip3p.parm7", "--format", "netcdf"], "not a NetCDF file"),
]


def _args(parts):
    return [data_path(*p[1:].split("/")) if p.startswith("@") else p for p in
            [("@" + parts[0])] + parts[1:]]


@pytest.mark.parametrize("parts,fmt,n_atoms,n_frames", GOOD, ids=[g[0][0] for g in GOOD])
def test_info_good(parts, fmt, n_atoms, n_frames, tmp_path, capsys):
    out = tmp_path / "info.json"
    rc = main(["info", *_args(parts), "--no-progress", "--json", str(out)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert f"format       {fmt}" in cap.out
    d = json.loads(out.read_text())
    assert (d["format"], d["n_atoms"], d["n_frames"]) == (fmt, n_atoms, n_frames)


@pytest.mark.parametrize("parts,message", BAD, ids=[b[0][0] for b in BAD])
def test_info_bad(parts, message, capsys):
    rc = main(["info", *_args(parts), "--no-progress"])
    cap = capsys.readouterr()
    assert rc == 2
    assert "anionmotion info: error:" in cap.err
    assert message in cap.err
