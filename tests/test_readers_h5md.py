"""H5MD reader: layouts written here with h5py (LAMMPS- and ASE/znh5md-style) and by MDAnalysis' H5MDWriter,
round trips against the NetCDF of the same data, chunking and atom selections, malformed files."""

import os
import warnings

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anionmotion
from anionmotion.errors import FormatError, TrajectoryError
from anionmotion.io import detect_format
from anionmotion.io.netcdf_writer import NetCDFWriter

T, N = 12, 7
SPECIES = ["Li", "Li", "Li", "P", "S", "S", "Cl"]
Z = [3, 3, 3, 15, 16, 16, 17]
#: a triclinic cell in the standard orientation (a along x, b in the xy plane): NetCDF's lengths/angles keep it
CELL = np.array([[10.0, 0.0, 0.0], [1.5, 9.5, 0.0], [0.75, -1.0, 11.0]], dtype=np.float32).astype(np.float64)


def _data(seed=0, n_frames=T):
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 1, size=(N, 3)) @ CELL
    pos = (start + np.cumsum(rng.normal(scale=0.6, size=(n_frames, N, 3)), axis=0)).astype(np.float32)
    vel = rng.normal(size=(n_frames, N, 3)).astype(np.float32)
    times = (0.25 * np.arange(n_frames)).astype(np.float32)
    return pos.astype(np.float64), vel.astype(np.float64), times.astype(np.float64)


def _write_h5md(path, pos, vel=None, times=None, *, box="fixed-matrix", length="nm", time_unit="fs",
                vel_unit="nm ps-1", species="z", creator="anionmotion-tests", images=None, group="all",
                scalar_time=False, mass=None, charge=None):
    """An H5MD 1.1 file in the units given (positions stored in ``length``, times in ``time_unit``)."""
    lf = {"nm": 0.1, "Angstrom": 1.0, "pm": 100.0}[length]
    tf = {"fs": 1000.0, "ps": 1.0}[time_unit]
    vf = {"nm ps-1": 0.1, "Angstrom/ps": 1.0, "A fs^-1": 1e-3}[vel_unit]
    with h5py.File(path, "w") as f:
        h = f.create_group("h5md")
        h.attrs["version"] = np.array([1, 1])
        h.create_group("creator").attrs.update({"name": creator, "version": "1"})
        h.create_group("author").attrs["name"] = "tests"
        g = f.create_group("particles").create_group(group)
        p = g.create_group("position")
        p.create_dataset("value", data=pos * lf).attrs["unit"] = length
        n = len(pos)
        if times is not None:
            if scalar_time:
                p.create_dataset("step", data=50)
                d = p.create_dataset("time", data=(times[1] - times[0]) * tf)
                d.attrs["offset"] = times[0] * tf
            else:
                p.create_dataset("step", data=50 * np.arange(n))
                p.create_dataset("time", data=times * tf)
            p["time"].attrs["unit"] = time_unit
        b = g.create_group("box")
        b.attrs["dimension"] = 3
        b.attrs["boundary"] = np.array([b"periodic"] * 3)
        if box == "fixed-matrix":
            b.create_dataset("edges", data=CELL * lf).attrs["unit"] = length
        elif box == "fixed-lengths":
            b.create_dataset("edges", data=np.diag(CELL) * lf).attrs["unit"] = length
        elif box == "npt-lengths":   # LAMMPS dump h5md: orthogonal boxes, one (3,) row of lengths per frame
            e = b.create_group("edges")
            scale = 1 + 0.01 * np.sin(np.arange(n))[:, None]
            e.create_dataset("value", data=np.diag(CELL)[None] * scale * lf).attrs["unit"] = length
        elif box == "npt":
            e = b.create_group("edges")
            scale = 1 + 0.01 * np.sin(np.arange(n))[:, None, None]
            e.create_dataset("value", data=CELL[None] * scale * lf).attrs["unit"] = length
            e["step"] = p["step"] if "step" in p else np.arange(n)
        if vel is not None:
            v = g.create_group("velocity")
            v.create_dataset("value", data=vel * vf).attrs["unit"] = vel_unit
        if images is not None:
            g.create_group("image").create_dataset("value", data=images)
        if species == "z":
            g.create_dataset("species", data=np.array(Z, dtype=np.int32))
        elif species == "names":
            g.create_group("species").create_dataset("value", data=np.array([SPECIES] * n, dtype="S2"))
        elif species == "lammps-types":
            types = {"Li": 1, "P": 2, "S": 3, "Cl": 4}
            g.create_group("species").create_dataset("value", data=np.array([[types[s] for s in SPECIES]] * n))
        if mass is not None:
            g.create_dataset("mass", data=mass)
        if charge is not None:
            g.create_group("charge").create_dataset("value", data=np.tile(charge, (n, 1)))
    return path


def _write_netcdf(path, pos, vel, times):
    with NetCDFWriter(path, SPECIES) as w:
        for t in range(len(pos)):
            w.write(pos[t], CELL, time=times[t], velocities=vel[t])
    return path


def _open(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return anionmotion.open(path, progress=False, **kw)


def test_round_trip_against_the_netcdf_of_the_same_data(tmp_path):
    pos, vel, times = _data()
    h = _open(_write_h5md(tmp_path / "run.h5md", pos, vel, times))
    nc = _open(_write_netcdf(tmp_path / "run.nc", pos, vel, times))
    assert h.format == "h5md" and h.n_atoms == nc.n_atoms == N and h.n_frames == nc.n_frames == T
    assert list(h.species) == list(nc.species) == SPECIES
    assert np.allclose(h.times, nc.times, rtol=0, atol=1e-9)
    assert np.allclose(h.cells, nc.cells, atol=2e-5)
    a, b = h.read(), nc.read()
    assert np.allclose(a.positions, b.positions, atol=2e-5)      # unwrapped the same way
    assert np.allclose(a.velocities, b.velocities, atol=1e-6)
    assert np.allclose(a.positions, pos, atol=2e-5) and np.allclose(a.velocities, vel, atol=1e-6)
    assert np.allclose(h.masses, nc.masses)
    assert h.metadata["creator_name"] == "anionmotion-tests" and h.metadata["particle_group"] == "all"
    assert h._reader.units["length"] == "Å (file: nm)" and h._reader.units["time"] == "ps (file: fs)"
    # analyses see the same trajectory
    m1, m2 = anionmotion.msd(h, species="Li"), anionmotion.msd(nc, species="Li")
    assert np.allclose(m1.msd, m2.msd, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("box", ["fixed-matrix", "fixed-lengths", "npt", "npt-lengths"])
@pytest.mark.parametrize("units", [("nm", "fs", "nm ps-1"), ("Angstrom", "ps", "Angstrom/ps"),
                                   ("pm", "ps", "A fs^-1")])
def test_layouts_and_units(tmp_path, box, units):
    pos, vel, times = _data(1)
    length, tu, vu = units
    path = _write_h5md(tmp_path / "x.h5md", pos, vel, times, box=box, length=length, time_unit=tu, vel_unit=vu)
    tr = _open(path)
    c = tr.read()
    assert np.allclose(c.positions, pos, atol=1e-9 + 1e-12 * np.abs(pos).max())
    assert np.allclose(c.velocities, vel, atol=1e-9)
    assert np.allclose(tr.times, times, atol=1e-12)
    if box == "fixed-lengths":
        assert np.allclose(tr.cells, np.diag(np.diag(CELL)))
    elif box == "npt":
        scale = 1 + 0.01 * np.sin(np.arange(T))
        assert np.allclose(tr.cells, CELL[None] * scale[:, None, None])
        assert not tr.cell_constant
    elif box == "npt-lengths":
        scale = 1 + 0.01 * np.sin(np.arange(T))
        assert np.allclose(tr.cells, np.diag(np.diag(CELL))[None] * scale[:, None, None])
        assert np.allclose(tr._reader.read_cells(2, 5), tr.cells[2:5])   # 3 frames of (3,) rows are not a matrix
    else:
        assert np.allclose(tr.cells, CELL) and tr.cell_constant


def test_images_unwrap_exactly_and_scalar_time(tmp_path):
    pos, vel, times = _data(2)
    frac = pos @ np.linalg.inv(CELL)
    img = np.floor(frac).astype(np.int32)
    wrapped = (frac - img) @ CELL
    path = _write_h5md(tmp_path / "w.h5md", wrapped, None, times, length="Angstrom", time_unit="ps", images=img,
                       scalar_time=True, mass=np.arange(1.0, N + 1), charge=np.linspace(-1, 1, N))
    tr = _open(path)
    assert np.allclose(tr.read().positions, pos, atol=1e-9)
    assert np.allclose(tr.times, times) and not tr.has_velocities
    assert np.allclose(tr.masses, np.arange(1.0, N + 1)) and np.allclose(tr.charges, np.linspace(-1, 1, N))


def test_species_conventions(tmp_path):
    pos, vel, times = _data(3)
    names = _open(_write_h5md(tmp_path / "n.h5md", pos, None, times, species="names"))
    assert list(names.species) == SPECIES
    lmp = _write_h5md(tmp_path / "l.h5md", pos, None, times, species="lammps-types", creator="LAMMPS")
    assert list(_open(lmp).species) == ["1", "1", "1", "2", "3", "3", "4"]
    assert list(_open(lmp, types="1=Li,2=P,3=S,4=Cl").species) == SPECIES
    none = _write_h5md(tmp_path / "x.h5md", pos, None, times, species=None)
    with pytest.warns(Warning, match="no species"):
        tr = anionmotion.open(none, progress=False)
    assert set(tr.species) == {"X"}


def test_steps_with_timestep_when_no_times(tmp_path):
    pos, vel, times = _data(4)
    path = tmp_path / "s.h5md"
    _write_h5md(path, pos, None, times)
    with h5py.File(path, "a") as f:
        del f["particles/all/position/time"]
    assert np.allclose(_open(path, timestep=0.002).times, 0.1 * np.arange(T))
    assert np.allclose(_open(path, frame_interval=0.5).times, 0.5 * np.arange(T))


@settings(max_examples=20, deadline=None)
@given(fpc=st.integers(1, T + 2), atoms=st.lists(st.integers(0, N - 1), min_size=1, max_size=N, unique=True),
       start=st.integers(0, 4), step=st.integers(1, 3))
def test_chunks_and_selections_equal_the_whole_read(tmp_path_factory, fpc, atoms, start, step):
    d = tmp_path_factory.mktemp("h5md")
    pos, vel, times = _data(5)
    tr = _open(_write_h5md(d / "c.h5md", pos, vel, times))
    full = tr.read()
    sel = np.sort(np.asarray(atoms))
    got = [c for c in tr.iter_chunks(fpc, atoms=sel, start=start, step=step, progress=False)]
    p = np.concatenate([c.positions for c in got])
    v = np.concatenate([c.velocities for c in got])
    assert np.allclose(p, full.positions[start::step][:, sel], atol=1e-9)
    assert np.array_equal(v, full.velocities[start::step][:, sel])
    raw = tr._reader.read(1, 5, atoms=np.asarray(atoms[::-1]), velocities=False)   # any order, no velocities
    assert raw.velocities is None
    assert np.array_equal(raw.coords, tr._reader.read(1, 5).coords[:, atoms[::-1]])


def test_file_written_by_mdanalysis(tmp_path):
    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader

    pos, vel, times = _data(6)
    u = mda.Universe.empty(N, trajectory=True, atom_resindex=[0] * N, residue_segindex=[0])
    u.add_TopologyAttr("names", SPECIES)
    u.load_new(pos.astype(np.float32), format=MemoryReader, velocities=vel.astype(np.float32), dt=0.25,
               dimensions=np.tile([10.0, 11.0, 12.0, 80.0, 95.0, 100.0], (T, 1)))
    u.trajectory.units = {"time": "ps", "length": "Angstrom", "velocity": "Angstrom/ps"}
    path = str(tmp_path / "mda.h5md")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mda.Writer(path, n_atoms=N, velocities=True, forces=False) as w:
            for _ in u.trajectory:
                w.write(u)
        back = mda.Universe(path)   # MDAnalysis' own H5MD reader as the peer
    tr = _open(path, types=None)
    assert tr.n_frames == T and np.allclose(tr.times, times, atol=1e-6)
    raw = tr._reader.read(0, T)
    for k, ts in enumerate(back.trajectory):
        assert np.allclose(tr.cells[k], mda.lib.mdamath.triclinic_vectors(ts.dimensions), atol=1e-4)
        assert np.allclose(raw.coords[k], ts.positions, atol=1e-5)
        assert np.allclose(raw.velocities[k], ts.velocities, atol=1e-5)


def test_detection_and_forced_format(tmp_path):
    pos, vel, times = _data(7)
    p = _write_h5md(tmp_path / "a.h5md", pos, None, times)
    assert detect_format(p) == "h5md"
    other = tmp_path / "a.h5"
    os.rename(p, other)
    assert _open(other, format="h5md").n_frames == T
    assert detect_format(other) == "h5md"            # an HDF5 file with an /h5md group, whatever its name
    nc4 = tmp_path / "b.dat"                         # NetCDF-4 is HDF5 too, without /h5md: sniffed as netcdf
    import netCDF4

    with netCDF4.Dataset(nc4, "w", format="NETCDF4") as ds:
        ds.createDimension("frame", None)
    assert detect_format(nc4) == "netcdf"


def _bad(tmp_path, name, edit):
    pos, vel, times = _data(8)
    path = tmp_path / name
    _write_h5md(path, pos, vel, times)
    with h5py.File(path, "a") as f:
        edit(f)
    return path


@pytest.mark.parametrize("name,edit,match", [
    ("noparticles.h5md", lambda f: f.__delitem__("particles"), "no /particles"),
    ("noposition.h5md", lambda f: f.__delitem__("particles/all/position"), "no 'position'"),
    ("shape.h5md", lambda f: (f.__delitem__("particles/all/position/value"),
                              f["particles/all/position"].create_dataset("value", data=np.zeros((3, 4)))),
     "expected \\(frame, atom, 3\\)"),
    ("box.h5md", lambda f: (f.__delitem__("particles/all/box/edges"),
                            f["particles/all/box"].create_dataset("edges", data=np.zeros(4))), "box/edges"),
    ("vel.h5md", lambda f: (f.__delitem__("particles/all/velocity/value"),
                            f["particles/all/velocity"].create_dataset("value", data=np.zeros((T, N)))),
     "velocity/value"),
    ("time.h5md", lambda f: (f.__delitem__("particles/all/position/time"),
                             f["particles/all/position"].create_dataset("time", data=np.zeros(T + 3))), "time"),
])
def test_malformed_files_raise_format_errors_naming_the_file(tmp_path, name, edit, match):
    path = _bad(tmp_path, name, edit)
    with pytest.raises(FormatError, match=match) as err:
        _open(path)
    assert str(path) in str(err.value)


def test_not_hdf5_and_bad_units(tmp_path):
    p = tmp_path / "text.h5md"
    p.write_text("ITEM: TIMESTEP\n0\n")
    with pytest.raises(FormatError, match="not an HDF5 file") as err:
        _open(p, format="h5md")
    assert str(p) in str(err.value)
    empty = tmp_path / "empty.h5md"
    empty.write_bytes(b"")
    with pytest.raises(FormatError, match="empty file"):
        _open(empty, format="h5md")
    path = _bad(tmp_path, "unit.h5md", lambda f: f["particles/all/position/value"].attrs.__setitem__("unit", "furlong"))
    with pytest.raises(TrajectoryError, match="furlong"):
        _open(path)
    nobox = _bad(tmp_path, "nobox.h5md", lambda f: f.__delitem__("particles/all/box"))
    with pytest.raises(TrajectoryError, match="no periodic box"):
        _open(nobox)
    assert _open(nobox, cell=[10, 10, 10]).n_frames == T


def test_znh5md_style_group_and_time_dependent_atomic_numbers(tmp_path):
    # znh5md (ASE) writes one group (e.g. "atoms") with species/value (frames, atoms) holding atomic numbers
    pos, vel, times = _data(9)
    path = _write_h5md(tmp_path / "z.h5md", pos, vel, times, species=None, group="atoms", length="Angstrom",
                       time_unit="fs", vel_unit="Angstrom/ps")
    with h5py.File(path, "a") as f:
        f["particles/atoms"].create_group("species").create_dataset("value", data=np.tile(Z, (T, 1)))
    tr = _open(path)
    assert list(tr.species) == SPECIES and tr.metadata["particle_group"] == "atoms"
    assert "atomic numbers" in tr.metadata["species_note"]
    assert np.allclose(tr.times, times)


def test_file_written_by_znh5md_from_ase_atoms(tmp_path):
    import ase
    import ase.units
    import znh5md

    rng = np.random.default_rng(10)
    frames, pos = [], []
    p = rng.uniform(0, 9, size=(N, 3))
    for _ in range(T):
        p = p + rng.normal(scale=0.3, size=(N, 3))
        a = ase.Atoms("".join(SPECIES), positions=p, cell=CELL, pbc=True)
        a.set_velocities(rng.normal(size=(N, 3)))
        frames.append(a)
        pos.append(p)
    path = str(tmp_path / "ase.h5")
    znh5md.IO(path, timestep=0.5).extend(frames)   # 0.5 fs between frames
    tr = _open(path, format="h5md")
    assert list(tr.species) == SPECIES and tr.metadata["creator_name"] == "znh5md"
    assert np.allclose(tr.times, 0.0005 * np.arange(T))
    assert np.allclose(tr.cells, CELL)
    c = tr.read()
    assert np.allclose(c.positions, np.array(pos), atol=1e-9)
    ase_vel = np.array([a.get_velocities() for a in frames]) * (1000 * ase.units.fs)   # Å/ps, ASE's conversion
    assert np.allclose(c.velocities, ase_vel, rtol=1e-6)
