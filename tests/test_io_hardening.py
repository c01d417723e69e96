"""The input checks of anionmotion.io: special files, header counts, cell and coordinate sizes, damaged streams,
format detection by content, and which files count as inputs (never written over)."""

import bz2
import gzip
import os

import numpy as np
import pytest

import anionmotion
from anionmotion.errors import FormatError, OptionError, TrajectoryError, TruncatedFileWarning
from anionmotion.io import base, detect_format, open_reader
from anionmotion.io._text import _bunzip, _gunzip, load_buffer
from anionmotion.results import check_output, is_input, make_output_folder, protected_inputs

import _bad_input_files as bf


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return bf.write_all(str(tmp_path_factory.mktemp("io")))


def test_check_count_against_file_size():
    assert base.check_count(10, 60, path="f") == 10
    with pytest.raises(TrajectoryError, match="f, line 3: the header declares 11 atoms, more than the file can hold"):
        base.check_count(11, 60, path="f", line=3)
    with pytest.raises(TrajectoryError, match="-1 atoms; expected a non-negative count"):
        base.check_count(-1, 60, path="f")


@pytest.mark.parametrize("cell, frame, match", [
    (np.diag([1e30, 5, 5]), 0, "cell vector a is 1e\\+30 Å"),
    (np.diag([5, np.nan, 5]), 0, "cell vector b is nan"),
    (np.diag([5, 5, np.inf]), 0, "cell vector c is inf"),
])
def test_check_cells(cell, frame, match):
    with pytest.raises(TrajectoryError, match=match):
        base.check_cells(np.stack([np.eye(3) * 5, cell]), path="f", frame0=frame)
    base.check_cells(np.eye(3) * 1e6, path="f")                            # 1 mm: still a cell
    base.check_cells(np.broadcast_to(np.eye(3) * 5, (100, 3, 3)), path="f")  # checked once
    base.check_cells(np.zeros((0, 3, 3)), path="f")


def test_check_coordinates_names_frame_and_atom():
    c = np.zeros((3, 4, 3))
    c[2, 1, 2] = 1e300
    with pytest.raises(TrajectoryError, match="f, frame 7, atom 11: coordinate z is 1e\\+300 Å"):
        base.check_coordinates(c, "wrapped", path="f", frame0=5, atoms=np.array([10, 11, 12, 13]))
    c[2, 1, 2] = np.nan      # NaN: left to the trajectory's finiteness check (same message style)
    base.check_coordinates(c, "wrapped", path="f")
    c[0, 0, 0] = -2e9
    with pytest.raises(TrajectoryError, match="coordinate x is -2e\\+09"):
        base.check_coordinates(c, "wrapped", path="f")
    f = np.full((1, 1, 3), 1e8)
    with pytest.raises(TrajectoryError, match="fractional"):
        base.check_coordinates(f, "fractional", path="f")
    base.check_coordinates(None, "wrapped", path="f")


def test_readers_check_cells_in_read_read_cells_and_constant_cell(files, tmp_path):
    text = open(files["xdatcar"]).read().replace("  12.000000 0 0\n", "  1e30 0 0\n", 1)
    p = tmp_path / "XDATCAR"
    p.write_text(text)
    r = open_reader(str(p), frame_interval=0.02)
    for call in (r.constant_cell, lambda: r.read_cells(0, 2), lambda: r.read(0, 2)):
        with pytest.raises(TrajectoryError, match="cell vector a is 1e\\+30"):
            call()
    r.close()
    # the wrapped methods keep their names and documentation
    assert type(r).read.__name__ == "read" and type(r).read.__wrapped__ is not None


def test_special_files_are_refused(tmp_path, files):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(FormatError, match="pipe: is a FIFO"):
        base.check_input_file(str(fifo))
    with pytest.raises(FormatError, match="character device"):
        base.open_binary("/dev/null")
    with pytest.raises(FormatError, match="is a directory"):
        load_buffer(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no such file"):
        base.check_input_file(str(tmp_path / "nope"))
    with pytest.raises(FormatError, match="FIFO"):
        anionmotion.open(files["lammps"], timestep=0.001, topology=str(fifo))


def test_gzip_and_bzip2_damage_vs_cut(tmp_path):
    data = b"line\n" * 20000
    gz = gzip.compress(data)
    out, status = _gunzip(gz + gz)                       # concatenated members
    assert status is True and out == data + data
    out, status = _gunzip(gz + b"\x00" * 16)             # zero padding after the stream
    assert status is True and out == data
    out, status = _gunzip(gz[:-20])                      # cut: a truncation
    assert status is False and data.startswith(out)
    bad = bytearray(gz)
    bad[-6] ^= 0xFF
    out, status = _gunzip(bytes(bad))                    # CRC: damage
    assert isinstance(status, Exception)
    out, status = _gunzip(gz + b"trailing")              # garbage after the stream: damage
    assert isinstance(status, Exception) and out == data
    b2 = bz2.compress(data)
    assert _bunzip(b2 + b2) == (data + data, True)
    assert _bunzip(b2[:-10])[1] is False
    flipped = bytearray(b2)
    flipped[len(b2) // 2] ^= 0xFF
    assert isinstance(_bunzip(bytes(flipped))[1], Exception)
    # through a reader: damage is an error naming the line, a cut is a warning
    xd = tmp_path / "XDATCAR.gz"
    text = open(bf.__file__.replace("_bad_input_files.py", "data/xdatcar/XDATCAR_version5"), "rb").read()
    xd.write_bytes(gzip.compress(text) + b"junk")
    with pytest.raises(TrajectoryError, match="XDATCAR.gz, line \\d+: the gzip stream is corrupt"):
        load_buffer(str(xd))
    xd.write_bytes(gzip.compress(text)[:-100])
    with pytest.warns(TruncatedFileWarning, match="ends early"):
        load_buffer(str(xd))


def test_detect_format_by_content(tmp_path, files):
    def put(name, data):
        p = tmp_path / name
        p.write_bytes(data)
        return str(p)

    assert detect_format(put("a.bin", open(files["netcdf"], "rb").read())) == "netcdf"
    assert detect_format(put("b.bin", open(files["ase"], "rb").read())) == "ase"
    assert detect_format(put("c.bin", open(files["xdatcar"], "rb").read())) == "xdatcar"
    assert detect_format(put("d.bin", open(files["lammps"], "rb").read())) == "lammps"
    assert detect_format(put("e.bin", open(files["vasprun"], "rb").read())) == "vasprun"
    assert detect_format(put("f-pos-1.xyz", b"3\n\n")) == "cp2k"
    assert detect_format(put("g.dat", b"3\ncomment\nLi 0 0 0\n")) == "extxyz"
    with pytest.raises(FormatError, match="cannot read the first bytes \\(gzip\\)"):
        detect_format(put("h.gz", gzip.compress(b"x" * 100)[:12]))
    with pytest.raises(FormatError, match="unknown trajectory format"):
        detect_format(put("i.dat", b"hello world\n"))


def test_open_reader_option_checks(files):
    with pytest.raises(OptionError, match="cell must be 3 lengths or a 3×3 matrix"):
        open_reader(files["lammps"], cell=[1, 2])
    with pytest.raises(OptionError, match="timestep must be a positive time"):
        open_reader(files["lammps"], timestep=-1)
    with pytest.raises(OptionError, match="invalid lammps_units"):
        open_reader(files["lammps"], lammps_units="si")
    with pytest.raises(FormatError, match="unknown format 'pdb'"):
        open_reader(files["lammps"], format="pdb")
    r = open_reader(files["xdatcar"], frame_interval=0.02, cell=np.arange(9.0) + 10)   # 9 numbers accepted
    r.close()


def test_open_readers_protect_their_files(files, tmp_path):
    r = open_reader(files["cp2k"])
    paths = base.open_input_paths()
    assert files["cp2k"] in paths
    assert any(p.endswith("run-vel-1.xyz") for p in paths) and any(p.endswith("run-1.cell") for p in paths)
    cell = [p for p in paths if p.endswith("run-1.cell")][0]
    with pytest.raises(OptionError, match="is an input of this run"):
        check_output(cell, overwrite=True)
    r.close()
    assert files["cp2k"] not in base.open_input_paths()
    # a topology given to a reader is protected while the reader is open
    with anionmotion.open(files["dcd"], topology=files["data"], frame_interval=0.02) as t:
        assert is_input(files["data"]) and t.n_frames == bf.N_FRAMES
    assert not is_input(files["data"])
    # inputs named on the command line, through a symbolic link too
    link = tmp_path / "l.json"
    os.symlink(files["data"], link)
    with protected_inputs([files["data"]]):
        with pytest.raises(OptionError, match="input"):
            check_output(str(link), overwrite=True)


def test_output_folders(tmp_path):
    with protected_inputs([], strict_folders=True):
        with pytest.raises(OptionError, match="does not exist; create it first"):
            check_output(str(tmp_path / "a" / "b" / "c.json"))
        assert not (tmp_path / "a").exists()
        check_output(str(tmp_path / "a" / "c.json"))       # one missing level is created
        assert (tmp_path / "a").is_dir()
        with pytest.raises(OptionError, match="filesystem root"):
            make_output_folder("/anionmotion-should-not-exist-xyz")
    assert not os.path.exists("/anionmotion-should-not-exist-xyz")
    make_output_folder(str(tmp_path / "x" / "y" / "z"))      # the library creates the folders
    assert (tmp_path / "x" / "y" / "z").is_dir()
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(OptionError, match="not a folder"):
        make_output_folder(str(f))
    with pytest.raises(OptionError, match="is a folder"):
        check_output(str(tmp_path), overwrite=True)
    with pytest.raises(OptionError, match="not a regular file"):
        check_output("/dev/null", overwrite=True)
    with pytest.raises(OptionError, match="empty output file name"):
        check_output("")


def test_lammps_last_frame_with_a_changed_atom_count_is_an_error(files, tmp_path):
    text = open(files["lammps"]).read()
    frames = text.split("ITEM: TIMESTEP\n")
    last = "ITEM: TIMESTEP\n" + frames[-1].replace("ITEM: NUMBER OF ATOMS\n56\n", "ITEM: NUMBER OF ATOMS\n57\n")
    p = tmp_path / "c.lammpstrj"
    p.write_text("ITEM: TIMESTEP\n".join(frames[:-1]) + last)
    with pytest.raises(TrajectoryError, match=f"frame {bf.N_FRAMES - 1}: the number of atoms changes from 56 to 57"):
        anionmotion.open(str(p), timestep=0.001)
    # the same frame only cut by the end of the file: the complete frames, with a warning
    p.write_text(text[:-200])
    with pytest.warns(TruncatedFileWarning, match="the last frame is incomplete"):
        t = anionmotion.open(str(p), timestep=0.001)
    assert t.n_frames == bf.N_FRAMES - 1


def test_dcd_header_frame_count_warns_on_a_cut_file(files, tmp_path):
    data = open(files["dcd"], "rb").read()
    p = tmp_path / "cut.dcd"
    p.write_bytes(data[: len(data) * 3 // 4])
    with pytest.warns(TruncatedFileWarning, match=f"declares {bf.N_FRAMES} frames but the file holds"):
        t = anionmotion.open(str(p), topology=files["data"], frame_interval=0.02)
    assert 0 < t.n_frames < bf.N_FRAMES


def test_ase_damaged_frame_and_atomic_numbers(files, tmp_path):
    data = open(files["ase"], "rb").read()
    p = tmp_path / "cut.traj"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(TrajectoryError, match="cut.traj"):
        with anionmotion.open(str(p), frame_interval=0.02) as t:
            t.read()
