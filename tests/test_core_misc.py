"""Validators, format detection, results helpers and the CLI frame."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import anionmotion
from anionmotion import FormatError, OptionError
from anionmotion._validate import as_array, check_choice, parse_memory, parse_types
from anionmotion.cli import main
from anionmotion.io import detect_format
from anionmotion.results import check_output, write_json


def test_parse_memory():
    assert parse_memory("2GB") == 2 * 1024 ** 3
    assert parse_memory("500 MB") == 500 * 1024 ** 2
    assert parse_memory("1.5GiB") == int(1.5 * 1024 ** 3)
    assert parse_memory(4096) == 4096
    with pytest.raises(OptionError, match="invalid memory size 'lots'"):
        parse_memory("lots")
    with pytest.raises(OptionError, match="memory must be positive"):
        parse_memory(0)


def test_parse_types():
    assert parse_types("1=Li,2=P, 3=S") == {1: "Li", 2: "P", 3: "S"}
    assert parse_types({"1": "Na"}) == {1: "Na"}
    with pytest.raises(OptionError, match="expected TYPE=ELEMENT"):
        parse_types("1:Li")
    with pytest.raises(OptionError, match="the type must be an integer"):
        parse_types("a=Li")


def test_as_array_and_choice_messages():
    with pytest.raises(ValueError, match=r"positions must have shape \(n, n, 3\); got \(10, 4\)"):
        as_array(np.zeros((10, 4)), "positions", shape=(None, None, 3))
    with pytest.raises(ValueError, match=r"x contains NaN or inf at index \(1,\)"):
        as_array([0.0, np.inf], "x", finite=True)
    with pytest.raises(OptionError, match="invalid mode 'XX'; choose one of UC, RC"):
        check_choice("XX", "mode", ["UC", "RC"])


def test_outputs_are_never_overwritten(tmp_path):
    p = tmp_path / "r.json"
    write_json(p, {"a": np.arange(3), "b": np.float64("nan")})
    assert json.loads(p.read_text()) == {"a": [0, 1, 2], "b": None}
    with pytest.raises(OptionError, match="output file exists; refusing to overwrite"):
        write_json(p, {})
    write_json(p, {"c": 1}, overwrite=True)
    assert json.loads(p.read_text()) == {"c": 1}
    assert check_output(tmp_path / "sub" / "x.csv") and (tmp_path / "sub").is_dir()


def test_unknown_format_lists_supported(tmp_path):
    p = tmp_path / "mystery.bin"
    p.write_bytes(b"hello world\nnot a trajectory\n")
    with pytest.raises(FormatError, match="unknown trajectory format; supported formats: lammps"):
        detect_format(p)
    with pytest.raises(FormatError, match="unknown format 'pdbx'"):
        anionmotion.open(p, format="pdbx")


def test_detect_by_name_and_content(tmp_path):
    assert detect_format("a/b/run-pos-1.xyz") == "cp2k"
    assert detect_format("XDATCAR.gz") == "xdatcar"
    assert detect_format("dump.lammpstrj.bz2") == "lammps"
    assert detect_format("traj.nc") == "netcdf"
    p = tmp_path / "noext"
    p.write_bytes(b"ITEM: TIMESTEP\n0\n")
    assert detect_format(p) == "lammps"


def test_missing_file_cli_exit_2(capsys):
    assert main(["info", "/nonexistent/file.lammpstrj"]) == 2
    err = capsys.readouterr().err
    assert "error: /nonexistent/file.lammpstrj: no such file" in err
    assert "Traceback" not in err


def test_bad_option_value_cli_exit_2(tmp_path, capsys):
    p = tmp_path / "x.lammpstrj"
    p.write_text("ITEM: TIMESTEP\n0\n")
    assert main(["info", str(p), "--lammps-units", "cgs"]) == 2
    assert "invalid lammps_units 'cgs'; choose one of metal, real, electron, lj" in capsys.readouterr().err


def test_version_and_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "anionmotion", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"anionmotion {anionmotion.__version__}"


def test_no_subcommand_prints_help(capsys):
    assert main([]) == 2
    assert "usage: anionmotion" in capsys.readouterr().out


def test_lazy_exports_fail_cleanly():
    with pytest.raises(AttributeError, match="has no attribute 'nonexistent'"):
        anionmotion.nonexistent


def test_detect_xdatcar_by_content_including_blank_line_frames(tmp_path):
    header = ("Li2 test\n 1.0\n 5.0 0 0\n 0 5.0 0\n 0 0 5.0\n Li\n 2\n")
    frames = " 0.1 0.2 0.3\n 0.5 0.5 0.5\n"
    for sep in ("Direct configuration=     1\n", "\n"):
        p = tmp_path / ("t" + str(len(sep)))
        p.write_text(header + sep + frames)
        assert detect_format(p) == "xdatcar"


def test_atomic_numbers_round_trip():
    from anionmotion.elements import atomic_number, symbol_of_z

    for z, sym in [(1, "H"), (3, "Li"), (11, "Na"), (16, "S"), (41, "Nb"), (83, "Bi"), (103, "Lr")]:
        assert atomic_number(sym) == z and symbol_of_z(z) == sym
    assert atomic_number("LI") == 3 and atomic_number("D") == 1 and atomic_number("X") == 0
    assert symbol_of_z(0) is None and symbol_of_z(104) is None
