"""Fuzz suite: every reader and subcommand on mutated inputs, bad options and unusable paths.

Each bad input must end in exit status 2 with one ``anionmotion <command>: error:`` line that names the file
(or the option), no traceback, no raw numpy/scipy exception, bounded memory and untouched inputs; a cut last
frame may instead keep the complete frames with a warning that names the file.

* ``test_catalogue`` runs the ≥ 300 cases of ``tests/_bad_input_cases.py`` (also tabulated in
  ``docs/bad-inputs.md`` by ``benchmarks/fuzz_catalogue.py``) in this process;
* ``test_memory_bombs`` runs the cases that would allocate without bound (10¹² atoms in a header, a 10⁹ Å
  box, 10⁸ bins …) in a child process under a 3 GB address-space limit;
* the hypothesis tests cut, flip and rewrite the files at random points and pick random option values.
"""

import gzip
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anionmotion
from anionmotion.errors import AnionmotionError, TruncatedFileWarning

import _bad_input_cases as bc

CASES = bc.all_cases()
IN_PROCESS = [c for c in CASES if not c.memory_bomb]
BOMBS = [c for c in CASES if c.memory_bomb]
FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return bc.make_env(str(tmp_path_factory.mktemp("bad_inputs")))


def _param(c):
    marks = ()
    if c.id in bc.KNOWN_DEFECTS:
        marks = (pytest.mark.xfail(strict=True, reason=bc.KNOWN_DEFECTS[c.id]),)
    return pytest.param(c, id=c.id, marks=marks)


def test_catalogue_is_large_and_covers_every_reader_and_subcommand():
    assert len(CASES) >= 300
    groups = {c.group for c in CASES}
    for fmt in ("lammps", "lammps-gz", "xdatcar", "extxyz", "cp2k", "netcdf", "dcd", "ase", "h5md", "outcar",
                "vasprun"):
        assert f"file: {fmt}" in groups
    assert "file: lammps data (--topology)" in groups
    commands = {c.id.split("/")[1] for c in CASES if c.id.startswith("option/")}
    commands |= {c.id.split("/")[-1] for c in CASES if c.group.startswith("file")}
    from anionmotion.cli import SUBCOMMANDS

    path_cmds = " ".join(c.id for c in CASES if c.group == "path")
    missing = [s for s in SUBCOMMANDS if s not in commands and s not in path_cmds]
    assert not missing, f"subcommands without a bad-input case: {missing}"


def _assert_outcome(case, out, names):
    problems = bc.check(case, out, names)
    if bc.raw_error(out):
        problems.append(f"raw {type(out.error).__name__} instead of an AnionmotionError")
    if out.rc == 2:
        errs = [ln for ln in out.stderr.splitlines() if ": error:" in ln]
        if len(errs) != 1:
            problems.append(f"{len(errs)} error lines, expected one")
    assert not problems, f"{case.id}: {problems}\n{out.stderr[-2000:]}"


@pytest.mark.parametrize("case", [_param(c) for c in IN_PROCESS])
def test_catalogue(env, case):
    argv, names = case.build(env)
    out = bc.run_inprocess(argv, env)
    _assert_outcome(case, out, names)


@pytest.mark.parametrize("case", [_param(c) for c in BOMBS])
def test_memory_bombs(env, case):
    """Allocations sized from a damaged header or option are refused before they happen (3 GB limit)."""
    argv, names = case.build(env)
    out = bc.run_subprocess(argv, env, limit_bytes=3 << 30, timeout=300)
    assert out.rc != -999, f"{case.id}: timed out"
    assert "MemoryError" not in out.stderr and "out of memory" not in out.message, out.stderr[-1000:]
    _assert_outcome(case, out, names)


# ------------------------------------------------------------------------------------------ hypothesis
READ_OPTS = {"lammps": {"timestep": 0.001}, "lammps-gz": {"timestep": 0.001}, "xdatcar": {"frame_interval": 0.02},
             "extxyz": {"frame_interval": 0.02}, "cp2k": {}, "outcar": {}, "vasprun": {}}


def _read_all(path, **kw):
    """Open ``path`` and read every frame; returns the warnings (raises what the reader raises)."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        with anionmotion.open(path, **kw) as t:
            for _ in t.iter_chunks(16):
                pass
            n = t.n_frames
    return n, [w for w in rec if issubclass(w.category, anionmotion.AnionmotionWarning)]


def _expect_clean(path, kw, base_frames=None):
    """Reading a mutated file either works (maybe with a warning) or raises an AnionmotionError naming it."""
    try:
        n, warns = _read_all(path, **kw)
    except AnionmotionError as err:
        msg = str(err)
        assert "\n" not in msg.strip() or msg.count(os.path.basename(path)) >= 1
        assert os.path.basename(path) in msg or os.path.basename(os.path.dirname(path)) in msg, msg
        return "error", msg
    except FileNotFoundError as err:   # a cp2k companion removed by the cut? never expected here
        raise AssertionError(f"FileNotFoundError for an existing file: {err}") from err
    return "ok", (n, warns)


_FULL = {}


def _full_positions(env, fmt):
    if fmt not in _FULL:
        with anionmotion.open(env.files[bc.FORMATS[fmt][0]], **READ_OPTS[fmt]) as t:
            _FULL[fmt] = t.read().positions
    return _FULL[fmt]


@pytest.mark.parametrize("fmt", ["lammps", "lammps-gz", "xdatcar", "extxyz", "cp2k", "outcar", "vasprun"])
@FUZZ
@given(frac=st.floats(0.0, 1.0, allow_nan=False))
def test_random_truncation(env, fmt, frac):
    """A file cut anywhere is an error naming it, or complete frames equal to the whole file's.

    A frame that lost lines is dropped with a TruncatedFileWarning naming the file; a last line that lost
    only its newline counts as complete (docs/formats.md), so frames are compared up to the last but one.
    """
    data = bc.read_base(env, fmt)
    cut = int(len(data) * frac)
    if fmt == "lammps-gz":   # cut the text, not the gzip stream (see test_random_byte_flips_binary)
        text = gzip.decompress(data)
        data = gzip.compress(text[:int(len(text) * frac)])
        cut = len(data)
    else:
        data = data[:cut]
    path, _ = bc._place(env, fmt, data)
    kind, info = _expect_clean(path, READ_OPTS[fmt])
    if kind == "ok":
        n, warns = info
        full = _full_positions(env, fmt)
        assert n <= len(full)
        if n > 1:
            with anionmotion.open(path, **READ_OPTS[fmt]) as t, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                np.testing.assert_array_equal(t.read(stop=n - 1).positions, full[:n - 1])


@pytest.mark.parametrize("fmt", ["lammps", "xdatcar", "extxyz", "cp2k", "outcar", "vasprun"])
@FUZZ
@given(pos=st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=6),
       byte=st.integers(0, 255))
def test_random_byte_flips_text(env, fmt, pos, byte):
    """Bytes overwritten anywhere: a clean error naming the file, or a valid read; never another exception."""
    data = bytearray(bc.read_base(env, fmt))
    for p in pos:
        data[min(int(p * len(data)), len(data) - 1)] = byte
    path, _ = bc._place(env, fmt, bytes(data))
    _expect_clean(path, READ_OPTS[fmt])


_BINARY_SCRIPT = r"""
import json, sys, warnings
import anionmotion
from anionmotion.errors import AnionmotionError
out = []
for path, kw in json.loads(sys.argv[1]):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with anionmotion.open(path, **kw) as t:
                for _ in t.iter_chunks(16):
                    pass
        out.append(["ok", ""])
    except AnionmotionError as err:
        out.append(["error", str(err)])
    except BaseException as err:
        out.append(["raw", f"{type(err).__name__}: {err}"])
print(json.dumps(out))
"""


@pytest.mark.parametrize("fmt", ["netcdf", "dcd", "ase", "h5md", "lammps-gz"])
def test_random_byte_flips_binary(env, fmt):
    """Binary files with random bytes overwritten, read in a child process (a C library may not survive them)."""
    rng = np.random.default_rng(7)
    data = bc.read_base(env, fmt)
    jobs = []
    for k in range(30):
        b = bytearray(data)
        n = int(rng.integers(1, 9))
        where = rng.integers(0, len(b), size=n) if k % 2 else rng.integers(0, min(len(b), 2048), size=n)
        for w in where:
            b[int(w)] = int(rng.integers(0, 256))
        path, opts = bc._place(env, fmt, bytes(b))
        kw = {"timestep": 0.001} if fmt.startswith("lammps") else {}
        if fmt in ("dcd", "ase"):
            kw["frame_interval"] = 0.02
        if fmt == "dcd":
            kw.update(topology=env.files["data"], types="1=Li,2=S,3=O")
        jobs.append((path, kw))
    envvars = dict(os.environ, PYTHONPATH=bc.REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", _BINARY_SCRIPT, json.dumps(jobs)], capture_output=True, text=True,
                       env=envvars, timeout=600)
    assert p.returncode == 0, f"the reader crashed the process (exit {p.returncode}): {p.stderr[-2000:]}"
    results = json.loads(p.stdout.strip().splitlines()[-1])
    raw = [(j[0], r[1]) for j, r in zip(jobs, results) if r[0] == "raw"]
    assert not raw, raw
    for (path, _), (kind, msg) in zip(jobs, results):
        if kind == "error":
            assert os.path.basename(path) in msg, msg


@FUZZ
@given(frame=st.integers(0, bc.bf.N_FRAMES - 1), n=st.one_of(st.integers(-5, 200), st.integers(10 ** 6, 10 ** 15)))
def test_lammps_atom_count_in_any_frame(env, frame, n):
    """NUMBER OF ATOMS changed in any frame: an error naming that frame (never a silent truncation)."""
    data = bc.nth_sub(r"(ITEM: NUMBER OF ATOMS\n)56\n", rf"\g<1>{n}\n", frame)(bc.read_base(env, "lammps"))
    path, _ = bc._place(env, "lammps", data)
    kind, info = _expect_clean(path, {"timestep": 0.001})
    if n == 56:
        assert kind == "ok"
        return
    assert kind == "error", (frame, n, info)
    if n > 0 and frame > 0:
        assert f"frame {frame}" in info or "frame" in info


@FUZZ
@given(count=st.integers(-3, 10 ** 15), which=st.sampled_from(["xdatcar", "extxyz", "cp2k"]))
def test_header_atom_counts(env, count, which):
    """Atom counts in headers (XDATCAR counts line, xyz count lines) are checked against the file first."""
    if which == "xdatcar":
        mut = bc.sub_text(r"^(\s+)16 8 32$", rf"\g<1>{count} 8 32")
        same = count == 16
    else:
        mut = bc.sub_text(r"^56$", str(count))
        same = count == 56
    path, _ = bc._place(env, which, mut(bc.read_base(env, which)))
    kind, info = _expect_clean(path, READ_OPTS[which])
    if not same:
        assert kind == "error", (which, count, info)


@FUZZ
@given(rmax=st.one_of(st.floats(-10, 80), st.just(float("nan")), st.just(float("inf"))),
       bins=st.integers(-3, 3_000_000))
def test_rdf_option_values(env, rmax, bins):
    argv = ["rdf", env.files["lammps"], "--timestep", "0.001", "--pair", "Li-S", "--rmax", repr(rmax), "--bins",
            str(bins), "--no-progress"]
    out = bc.run_inprocess(argv, env)
    assert not out.traceback and not bc.raw_error(out), out.stderr
    assert out.rc in (0, 2)
    if not (np.isfinite(rmax) and rmax > 0 and bins >= 1):
        assert out.rc == 2, (rmax, bins)
    if 1.0 <= rmax <= 60.0 and 1 <= bins <= 10 ** 6:
        assert out.rc == 0, (rmax, bins, out.message)
    if out.rc == 2:   # the message names the option (or the cell list the range needs)
        assert "rmax" in out.message or "bins" in out.message, out.message


@FUZZ
@given(spacing=st.one_of(st.floats(-1, 3), st.floats(1e-9, 1e-2)),
       grid=st.one_of(st.none(), st.tuples(*[st.integers(-2, 3000)] * 3)))
def test_density_option_values(env, spacing, grid):
    argv = ["density", env.files["lammps"], "--timestep", "0.001", "--species", "Li", "--json", "d.json",
            "--no-progress", "--memory", "1GB"]
    argv += ["--grid", *map(str, grid)] if grid is not None else ["--spacing", repr(spacing)]
    out = bc.run_inprocess(argv, env)
    assert not out.traceback and not bc.raw_error(out), out.stderr
    assert out.rc in (0, 2)
    if out.rc == 2:
        assert "grid" in out.message or "spacing" in out.message, out.message


# ------------------------------------------------------------------------------------------ library API
@pytest.fixture(scope="module")
def traj(env):
    t = anionmotion.open(env.files["lammps"], timestep=0.001)
    yield t
    t.close()


@pytest.mark.parametrize("call, match", [
    (lambda t: anionmotion.rdf(t, "Li-Li", rmax=-1), "rmax"),
    (lambda t: anionmotion.rdf(t, "Li-Li", bins=0), "bins"),
    (lambda t: anionmotion.rdf(t, "Li-Li", rmax=1000), "replica"),
    (lambda t: anionmotion.rdf(t, "Li-Li", bins=10 ** 12, memory="1GB"), "bins"),
    (lambda t: anionmotion.rdf(t, "Li-Qq"), "Qq"),
    (lambda t: anionmotion.density(t, "Li", spacing=0), "spacing"),
    (lambda t: anionmotion.density(t, "Li", spacing=1e-6), "grid points"),
    (lambda t: anionmotion.density(t, "Li", grid=(0, 4, 4)), "grid"),
    (lambda t: anionmotion.density(t, "Li", profile_bins=10 ** 10), "profile_bins"),
    (lambda t: anionmotion.msd(t, species="Qq"), "Qq"),
])
def test_library_raises_anionmotion_errors(traj, call, match):
    with pytest.raises(AnionmotionError, match=match):
        call(traj)


def test_library_refuses_to_write_over_an_open_input(env, traj, tmp_path):
    res = anionmotion.rdf(traj, "Li-Li", bins=50)
    with pytest.raises(AnionmotionError, match="input"):
        res.save(env.files["lammps"], overwrite=True)
    link = tmp_path / "link.json"
    os.symlink(env.files["lammps"], link)
    with pytest.raises(AnionmotionError, match="input"):
        res.save(str(link), overwrite=True)
    assert bc.file_hashes([env.files["lammps"]])


def test_fifo_and_devices_are_refused_by_the_api(tmp_path):
    fifo = tmp_path / "p.lammpstrj"
    os.mkfifo(fifo)
    for p in (str(fifo), "/dev/zero"):
        with pytest.raises(AnionmotionError, match="FIFO|device"):
            anionmotion.open(p, timestep=0.001)


def test_corrupt_gzip_names_the_frame(env, tmp_path):
    raw = bc.read_base(env, "lammps-gz")
    bad = bytearray(raw)
    bad[-6] ^= 0xFF          # the CRC
    p = tmp_path / "crc.lammpstrj.gz"
    p.write_bytes(bytes(bad))
    with pytest.raises(AnionmotionError, match=r"frame \d+.*gzip stream is corrupt"):
        anionmotion.open(str(p), timestep=0.001)
    # trailing garbage after a complete stream: damaged too
    p2 = tmp_path / "trail.lammpstrj.gz"
    p2.write_bytes(raw + b"not gzip")
    with pytest.raises(AnionmotionError, match="corrupt"):
        anionmotion.open(str(p2), timestep=0.001)
    # a cut stream (a crashed run) keeps its complete frames with a warning
    p3 = tmp_path / "cut.lammpstrj.gz"
    p3.write_bytes(gzip.compress(gzip.decompress(raw))[: len(raw) * 2 // 3])
    with pytest.warns(TruncatedFileWarning, match="cut"):
        t = anionmotion.open(str(p3), timestep=0.001)
    assert 0 < t.n_frames < bc.bf.N_FRAMES
    t.close()


def test_md_exploding_integration_is_a_clean_error_keeping_the_frames(tmp_path, capsys):
    """A time step far too long for the model: the run stops with a message, the good frames stay readable."""
    from anionmotion.cli import main

    out = tmp_path / "boom.nc"
    rc = main(["md", "--system", "li2so4", "--cells", "2", "--out", str(out), "--time", "2", "--timestep", "25",
               "--equilibrate", "0", "--reequilibrate", "0", "--no-minimize", "--frame-every", "1", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("anionmotion md: error: the integration exploded"), err[-1]
    assert "--timestep" in err[-1] and "frames before it are kept" in err[-1]
    assert not any("Traceback" in ln for ln in err)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with anionmotion.open(str(out)) as t:
            assert 1 <= t.n_frames < 81
            assert np.all(np.isfinite(t.read().positions))


_ODD = st.one_of(st.none(), st.integers(-3, 10 ** 16), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=4), st.lists(st.integers(-2, 5), max_size=4), st.booleans())


@FUZZ
@given(name=st.sampled_from(["rmax", "bins", "temperature", "frames_per_chunk", "pairs"]), value=_ODD)
def test_rdf_keywords_of_any_type(traj, name, value):
    """Any keyword value: a result or an AnionmotionError (never numpy's TypeError/ValueError/OverflowError)."""
    kw = {"pairs": "Li-S", "bins": 50, name: value}
    if name == "bins" and isinstance(value, int) and not isinstance(value, bool) and value > 10 ** 7:
        kw["memory"] = "256MB"
    try:
        anionmotion.rdf(traj, **kw)
    except AnionmotionError:
        pass


@FUZZ
@given(name=st.sampled_from(["spacing", "grid", "profile_bins", "frames_per_chunk"]), value=_ODD)
def test_density_keywords_of_any_type(traj, name, value):
    kw = {name: value}
    if name == "grid" and value is None:
        kw["spacing"] = 0.5
    try:
        anionmotion.density(traj, "Li", memory="256MB", **kw)
    except AnionmotionError:
        pass
