"""The bad-input catalogue: mutated files, bad options and unusable paths, and how to run them.

Shared by ``tests/test_bad_inputs.py`` (which asserts the outcome of every case) and
``benchmarks/fuzz_catalogue.py`` (which runs them all and writes ``docs/bad-inputs.md``).  No tests here.

A case is a :class:`Case`: an id, a group, a description, a ``build(env)`` returning the command-line
arguments (it writes its mutated input into ``env.folder``), the expected outcome (``"error"``: exit 2 with
a one-line message; ``"warning"``: exit 0 with a warning that names the file) and the text the message must
contain (the file name or the option).
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import io
import os
import re
import resource
import subprocess
import sys
import warnings
from dataclasses import dataclass, field

import _bad_input_files as bf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Env:
    """A folder with the valid base files (``files``) where each case writes its own inputs."""

    folder: str
    files: dict
    counter: list = field(default_factory=lambda: [0])

    def path(self, name):
        self.counter[0] += 1
        d = os.path.join(self.folder, f"c{self.counter[0]:04d}")
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, name)

    def write(self, name, data):
        p = self.path(name)
        with open(p, "wb") as fh:
            fh.write(data if isinstance(data, bytes) else data.encode("latin-1"))
        return p


@dataclass
class Case:
    id: str
    group: str
    description: str
    build: object              # build(env) -> (argv, names): names the message must contain (any of them)
    expect: str = "error"      # "error" (exit 2) or "warning" (exit 0 with a warning naming the file)
    memory_bomb: bool = False  # run in a subprocess under an address-space limit in the test


@dataclass
class Outcome:
    rc: int
    message: str               # the last line of stderr (the error or the last warning)
    traceback: bool
    stderr: str
    inputs_unchanged: bool = True
    error: object = None       # in-process runs: the exception behind exit 2 (None when unknown)


# ----------------------------------------------------------------------------------------------- formats
#: per format: base-file key, reader options, a species present, the file name of a mutated copy
FORMATS = {
    "lammps": ("lammps", ["--timestep", "0.001"], "Li", "run.lammpstrj"),
    "lammps-gz": ("lammps_gz", ["--timestep", "0.001"], "Li", "run.lammpstrj.gz"),
    "xdatcar": ("xdatcar", ["--frame-interval", "0.02"], "Li", "XDATCAR"),
    "extxyz": ("extxyz", ["--frame-interval", "0.02"], "Li", "run.extxyz"),
    "cp2k": ("cp2k", [], "Li", "run-pos-1.xyz"),
    "netcdf": ("netcdf", [], "Li", "run.nc"),
    "dcd": ("dcd", ["--frame-interval", "0.02", "--types", "1=Li,2=S,3=O"], "Li", "run.dcd"),
    "ase": ("ase", ["--frame-interval", "0.02"], "Li", "run.traj"),
    "h5md": ("h5md", [], "Li", "run.h5md"),
    "outcar": ("outcar", [], "H", "OUTCAR"),
    "vasprun": ("vasprun", [], "H", "vasprun.xml"),
}
TEXT_FORMATS = ("lammps", "xdatcar", "extxyz", "cp2k", "outcar", "vasprun")


def read_base(env, fmt):
    key = FORMATS[fmt][0]
    with open(env.files[key], "rb") as fh:
        return fh.read()


def _place(env, fmt, data):
    """Write a mutated copy of format ``fmt``'s file (with its companions) and return its path and options."""
    key, opts, _, name = FORMATS[fmt]
    p = env.write(name, data)
    opts = list(opts)
    if fmt == "cp2k":   # companions next to the mutated positions
        src = os.path.dirname(env.files["cp2k"])
        for comp in ("run-vel-1.xyz", "run-1.cell"):
            with open(os.path.join(src, comp), "rb") as a, open(os.path.join(os.path.dirname(p), comp), "wb") as b:
                b.write(a.read())
    if fmt == "dcd":
        opts += ["--topology", env.files["data"]]
    return p, opts


def _cmd(command, fmt, species):
    extra = {"info": [], "msd": ["--species", species, "--no-drift"], "rdf": ["--pair", f"{species}-{species}"]}
    return [command] + extra[command]


def file_case(fmt, mid, desc, mutate, *, expect="error", commands=("info", "msd"), memory_bomb=False, names=None):
    """Cases running ``commands`` on format ``fmt``'s base file changed by ``mutate(bytes) -> bytes``."""
    out = []
    for command in commands:
        def build(env, fmt=fmt, mutate=mutate, command=command):
            data = mutate(read_base(env, fmt))
            p, opts = _place(env, fmt, data)
            species = FORMATS[fmt][2]
            return [*_cmd(command, fmt, species), p, *opts, "--no-progress"], names or [os.path.basename(p)]
        out.append(Case(f"{fmt}/{mid}/{command}", f"file: {fmt}", desc, build, expect, memory_bomb))
    return out


def sub_text(pattern, repl, count=1, flags=re.M):
    """A mutation replacing ``pattern`` (regex, on latin-1 text) by ``repl`` ``count`` times (0 = all)."""
    def f(data):
        text = data.decode("latin-1")
        new, n = re.subn(pattern, repl, text, count=count, flags=flags)
        if n == 0:
            raise AssertionError(f"pattern {pattern!r} not found")
        return new.encode("latin-1")
    return f


def nth_sub(pattern, repl, n):
    """Replace only the n-th (0-based) match of ``pattern``."""
    def f(data):
        text = data.decode("latin-1")
        ms = list(re.finditer(pattern, text, flags=re.M))
        m = ms[n]
        return (text[:m.start()] + m.expand(repl) + text[m.end():]).encode("latin-1")
    return f


def cut(frac=None, at=None):
    def f(data):
        k = at if at is not None else int(len(data) * frac)
        return data[:k]
    return f


def cut_lines(keep_fraction):
    """Keep the first lines up to a fraction of the file, cutting in the middle of a line."""
    def f(data):
        k = int(len(data) * keep_fraction)
        nl = data.rfind(b"\n", 0, k)
        return data[:nl + 1 + 3]
    return f


def flip(offset_fraction, n=16, seed=0):
    """Overwrite ``n`` bytes at a fraction of the file with pseudo-random bytes."""
    def f(data):
        import random

        rnd = random.Random(seed)
        k = int(len(data) * offset_fraction)
        b = bytearray(data)
        for i in range(k, min(len(b), k + n)):
            b[i] = rnd.randrange(256)
        return bytes(b)
    return f


def _gz_crc(data):
    b = bytearray(data)
    b[-6] ^= 0xFF
    return bytes(b)


def _garbage(_):
    import random

    rnd = random.Random(1)
    return bytes(rnd.randrange(256) for _ in range(20000))


def _nul_head(data):
    return data[:10] + b"\x00" * 8 + data[18:]


def generic_cases():
    out = []
    for fmt in FORMATS:
        fname = FORMATS[fmt][3]
        out += file_case(fmt, "empty", "empty file", lambda d: b"")
        out += file_case(fmt, "garbage", "20 kB of random bytes", _garbage)
        out += file_case(fmt, "head-1-byte", "only the first byte", cut(at=1))
        out += file_case(fmt, "head-40-bytes", "only the first 40 bytes (inside the header)", cut(at=40))
        if fmt in TEXT_FORMATS:
            out += file_case(fmt, "nul-in-header", "NUL bytes in the header", _nul_head)
        del fname
    return out


def lammps_cases():
    L = "lammps"
    out = []
    atoms = r"(ITEM: NUMBER OF ATOMS\n)56\n"
    out += file_case(L, "natoms-1e8-frame1", "NUMBER OF ATOMS 10⁸ in frame 1 (of 40)", nth_sub(atoms, r"\g<1>100000000\n", 1))
    out += file_case(L, "natoms-1e12-frame0", "NUMBER OF ATOMS 10¹² in frame 0", sub_text(atoms, r"\g<1>1000000000000\n"))
    out += file_case(L, "natoms-0", "NUMBER OF ATOMS 0 in every frame", sub_text(atoms, r"\g<1>0\n", 0))
    out += file_case(L, "natoms-negative", "NUMBER OF ATOMS -5", sub_text(atoms, r"\g<1>-5\n"))
    out += file_case(L, "natoms-text", "NUMBER OF ATOMS 'many'", sub_text(atoms, r"\g<1>many\n"))
    out += file_case(L, "natoms-57-mid", "NUMBER OF ATOMS 57 in frame 10 (one line short)", nth_sub(atoms, r"\g<1>57\n", 10))
    out += file_case(L, "natoms-55-mid", "NUMBER OF ATOMS 55 in frame 10 (one line too many)", nth_sub(atoms, r"\g<1>55\n", 10))
    box = r"^0\.0 12\.0$"
    out += file_case(L, "box-1e30", "box 10³⁰ Å", sub_text(box, "0.0 1e30", 0), commands=("info", "msd", "rdf"))
    out += file_case(L, "box-1e9", "box 10⁹ Å", sub_text(box, "0.0 1e9", 0), commands=("rdf",), memory_bomb=True)
    out += file_case(L, "box-zero", "box of zero length", sub_text(box, "0.0 0.0", 0))
    out += file_case(L, "box-inverted", "box lo > hi", sub_text(box, "12.0 0.0", 0))
    out += file_case(L, "box-nan", "box bound nan", sub_text(box, "0.0 nan", 0))
    out += file_case(L, "box-inf", "box bound inf", sub_text(box, "0.0 inf", 0))
    out += file_case(L, "box-text", "box bound 'abc'", sub_text(box, "0.0 abc", 1))
    out += file_case(L, "box-one-number", "box line with one number", sub_text(box, "0.0", 1))
    out += file_case(L, "box-changes-zero", "box becomes 0 Å in frame 5", nth_sub(box, "0.0 0.0", 15))
    out += file_case(L, "coord-nan", "a coordinate is nan", nth_sub(r"^(5 Li )\S+", r"\g<1>nan", 3))
    out += file_case(L, "coord-inf", "a coordinate is inf", nth_sub(r"^(5 Li )\S+", r"\g<1>inf", 3))
    out += file_case(L, "coord-1e300", "a coordinate is 1e300", nth_sub(r"^(5 Li )\S+", r"\g<1>1e300", 3))
    out += file_case(L, "coord-text", "a coordinate is 'x'", nth_sub(r"^(5 Li )\S+", r"\g<1>x", 3))
    out += file_case(L, "coord-missing", "an atom line misses a column", nth_sub(r"^(5 Li \S+ \S+) \S+", r"\g<1>", 3))
    out += file_case(L, "element-unknown", "element 'Qq' instead of Li (msd --species Li)",
                     sub_text(r"^(\d+) Li ", r"\g<1> Qq ", 0), commands=("msd",))
    out += file_case(L, "id-duplicate", "an atom id twice in a frame", nth_sub(r"^6 Li ", "5 Li ", 0))
    out += file_case(L, "id-zero", "an atom id 0", nth_sub(r"^6 Li ", "0 Li ", 0))
    out += file_case(L, "id-huge", "an atom id 10¹⁵", nth_sub(r"^6 Li ", "1000000000000000 Li ", 0))
    out += file_case(L, "id-changes", "the ids of frame 3 differ from frame 0", nth_sub(r"^6 Li ", "99 Li ", 3))
    out += file_case(L, "element-changes", "an atom's element changes in frame 3 (elements are read from frame 0)",
                     nth_sub(r"^(6) Li ", r"\g<1> S ", 3), expect="ok")
    out += file_case(L, "timestep-repeats", "TIMESTEP repeats", nth_sub(r"(ITEM: TIMESTEP\n)\d+", r"\g<1>0", 5))
    out += file_case(L, "timestep-text", "TIMESTEP 'x'", nth_sub(r"(ITEM: TIMESTEP\n)\d+", r"\g<1>x", 5))
    out += file_case(L, "timestep-huge", "TIMESTEP 10³⁰", nth_sub(r"(ITEM: TIMESTEP\n)\d+", r"\g<1>" + "9" * 30, 5))
    out += file_case(L, "item-unknown", "an unknown ITEM line", nth_sub(r"ITEM: BOX BOUNDS pp pp pp", "ITEM: BOXES", 4))
    out += file_case(L, "atoms-no-x", "ITEM: ATOMS without coordinates", sub_text(r" x y z", " a b c", 0))
    out += file_case(L, "atoms-header-changes", "ITEM: ATOMS columns change in frame 7",
                     nth_sub(r"ITEM: ATOMS id element x y z vx vy vz", "ITEM: ATOMS id element x y z vx vy vw", 7))
    out += file_case(L, "header-only", "only the first header", cut_lines(0.001))
    out += file_case(L, "cut-last-frame", "the file ends inside the last frame (a crashed run)", cut_lines(0.99),
                     expect="warning")
    out += file_case(L, "cut-half", "the file ends in the middle", cut_lines(0.5), expect="warning")
    out += file_case(L, "flip-middle", "16 random bytes in the middle", flip(0.5))
    out += file_case(L, "flip-header", "16 random bytes in frame 0's header", flip(0.001))
    out += file_case(L, "crlf-mixed", "a frame with CR LF line ends",
                     nth_sub(r"(ITEM: TIMESTEP\n\d+)\n", "\\g<1>\\r\\n", 3), expect="ok")
    G = "lammps-gz"
    out += file_case(G, "gzip-crc", "gzip CRC failure", _gz_crc)
    out += file_case(G, "gzip-trailing-garbage", "gzip stream followed by garbage", lambda d: d + b"garbage bytes")
    out += file_case(G, "gzip-flip", "16 random bytes inside the gzip stream", flip(0.5))
    out += file_case(G, "gzip-cut", "the gzip stream is cut (a crashed run)", cut(0.7), expect="warning")
    out += file_case(G, "gzip-natoms-1e8", "NUMBER OF ATOMS 10⁸ in frame 1, gzip",
                     lambda d: gzip.compress(nth_sub(atoms, r"\g<1>100000000\n", 1)(gzip.decompress(d))))
    out += file_case(G, "bz2-in-gz-name", "bzip2 data cut in half (named .gz)",
                     lambda d: bz2.compress(gzip.decompress(d))[:5000])
    return out


def xdatcar_cases():
    X = "xdatcar"
    out = []
    out += file_case(X, "counts-1e12", "atom count 10¹² (counts line)", sub_text(r"^(\s+)16 8 32$", r"\g<1>1000000000000 8 32"),
                     memory_bomb=True)
    out += file_case(X, "counts-zero", "atom counts 0 0 0", sub_text(r"^(\s+)16 8 32$", r"\g<1>0 0 0"))
    out += file_case(X, "counts-negative", "atom count -16", sub_text(r"^(\s+)16 8 32$", r"\g<1>-16 8 32"))
    out += file_case(X, "counts-text", "atom count 'x'", sub_text(r"^(\s+)16 8 32$", r"\g<1>x 8 32"))
    out += file_case(X, "counts-too-few", "two counts for three species", sub_text(r"^(\s+)16 8 32$", r"\g<1>16 40"))
    out += file_case(X, "counts-one-more", "16 → 17 Li (rows shift)", sub_text(r"^(\s+)16 8 32$", r"\g<1>17 8 32"))
    out += file_case(X, "species-unknown", "species 'Qq'", sub_text(r"^(\s+)Li S O$", r"\g<1>Qq S O"))
    out += file_case(X, "scale-zero", "scale factor 0", sub_text(r"^1\.0$", "0.0"))
    out += file_case(X, "scale-nan", "scale factor nan", sub_text(r"^1\.0$", "nan"))
    out += file_case(X, "scale-inf", "scale factor inf", sub_text(r"^1\.0$", "inf"))
    out += file_case(X, "scale-text", "scale factor 'one'", sub_text(r"^1\.0$", "one"))
    out += file_case(X, "scale-1e30", "scale factor 10³⁰ (cell 10³¹ Å)", sub_text(r"^1\.0$", "1e30"),
                     commands=("info", "msd", "rdf"))
    out += file_case(X, "lattice-zero", "lattice vector a = 0", sub_text(r"^  12\.000000 0 0$", "  0 0 0"))
    out += file_case(X, "lattice-collinear", "lattice vectors a and b parallel", sub_text(r"^  0 12\.000000 0$", "  12.0 0 0"))
    out += file_case(X, "lattice-nan", "a lattice number nan", sub_text(r"^  12\.000000 0 0$", "  nan 0 0"))
    out += file_case(X, "lattice-short", "a lattice row with two numbers", sub_text(r"^  12\.000000 0 0$", "  12.0 0"))
    out += file_case(X, "config-line", "a configuration line replaced", nth_sub(r"^Direct configuration=\s+\d+$", "Hello", 5))
    li = 5 * 56 + 3   # frame 5, atom 3 (a Li row: msd --species Li reads only the Li rows)
    out += file_case(X, "coord-nan", "a coordinate nan (frame 5, atom 3)", nth_sub(r"^  \d\.\d+ ", "  nan ", li))
    out += file_case(X, "coord-text", "a coordinate 'x' (frame 5, atom 3)", nth_sub(r"^  \d\.\d+ ", "  x ", li))
    out += file_case(X, "coord-missing", "a row with two numbers (frame 5, atom 3)",
                     nth_sub(r"^  (\d\.\d+ \d\.\d+) \d\.\d+$", r"  \g<1>", li))
    out += file_case(X, "row-missing", "a coordinate row removed from frame 5", nth_sub(r"^  0\.\d+ 0\.\d+ 0\.\d+\n", "", 5 * 56 + 3))
    out += file_case(X, "header-only", "the header without frames", cut_lines(0.002))
    out += file_case(X, "cut-last-frame", "the file ends inside the last frame", cut_lines(0.99), expect="warning")
    out += file_case(X, "flip-middle", "16 random bytes in the middle", flip(0.5))
    out += file_case(X, "gzip-crc", "gzip CRC failure (gzip-compressed XDATCAR)", lambda d: _gz_crc(gzip.compress(d)))
    out += file_case(X, "gzip-trailing-garbage", "gzip XDATCAR followed by garbage",
                     lambda d: gzip.compress(d) + b"garbage")
    out += file_case(X, "gzip-cut", "gzip XDATCAR cut (a crashed run)", lambda d: gzip.compress(d)[:-4000],
                     expect="warning")
    out += file_case(X, "bz2-corrupt", "bzip2 XDATCAR with damaged bytes", lambda d: flip(0.5)(bz2.compress(d)))
    return out


def extxyz_cases():
    E = "extxyz"
    out = []
    out += file_case(E, "count-1e12", "atom count 10¹²", sub_text(r"^56$", "1000000000000"), memory_bomb=True)
    out += file_case(E, "count-0", "atom count 0", sub_text(r"^56$", "0", 0))
    out += file_case(E, "count-negative", "atom count -3", sub_text(r"^56$", "-3"))
    out += file_case(E, "count-text", "atom count 'x'", sub_text(r"^56$", "x"))
    out += file_case(E, "count-changes", "atom count 57 in frame 4", nth_sub(r"^56$", "57", 4))
    out += file_case(E, "count-55", "atom count 55 in frame 4", nth_sub(r"^56$", "55", 4))
    out += file_case(E, "lattice-short", "Lattice with 8 numbers", sub_text(r'Lattice="12\.0 0 0 0 12\.0 0 0 0 12\.0"',
                                                                          'Lattice="12.0 0 0 0 12.0 0 0 0"', 0))
    out += file_case(E, "lattice-zero", "Lattice of zeros", sub_text(r'Lattice="[^"]*"', 'Lattice="0 0 0 0 0 0 0 0 0"', 0))
    out += file_case(E, "lattice-nan", "Lattice with nan", sub_text(r'Lattice="12\.0', 'Lattice="nan', 0))
    out += file_case(E, "lattice-1e30", "Lattice 10³⁰ Å", sub_text(r'12\.0', '1e30', 0), commands=("info", "rdf"))
    out += file_case(E, "lattice-text", "Lattice with words", sub_text(r'Lattice="12\.0', 'Lattice="twelve', 0))
    out += file_case(E, "properties-bad", "Properties=species:S:1:pos:R:2", sub_text(r"pos:R:3", "pos:R:2", 0))
    out += file_case(E, "properties-nopos", "Properties without pos", sub_text(r"pos:R:3", "xyz:R:3", 0))
    out += file_case(E, "species-unknown", "species 'Qq'", sub_text(r"^Li ", "Qq ", 0))
    out += file_case(E, "coord-nan", "a coordinate nan", nth_sub(r"^Li \S+", "Li nan", 40))
    out += file_case(E, "coord-text", "a coordinate 'x'", nth_sub(r"^Li \S+", "Li x", 40))
    out += file_case(E, "coord-missing", "a row with two coordinates", nth_sub(r"^(Li \S+ \S+) \S+$", r"\g<1>", 40))
    out += file_case(E, "quote-unclosed", "an unclosed quote at the end of a comment line (read leniently)",
                     nth_sub(r'pbc="T T T"', 'pbc="T T T', 0), expect="any")
    out += file_case(E, "cut-last-frame", "the file ends inside the last frame", cut_lines(0.99), expect="warning")
    out += file_case(E, "flip-middle", "16 random bytes in the middle", flip(0.5))
    out += file_case(E, "gzip-crc", "gzip CRC failure", lambda d: _gz_crc(gzip.compress(d)))
    return out


def cp2k_cases():
    C = "cp2k"
    out = []
    out += file_case(C, "count-1e12", "atom count 10¹² in the positions", sub_text(r"^56$", "1000000000000"), memory_bomb=True)
    out += file_case(C, "count-0", "atom count 0", sub_text(r"^56$", "0", 0))
    out += file_case(C, "count-changes", "atom count 57 in frame 3", nth_sub(r"^56$", "57", 3))
    out += file_case(C, "coord-nan", "a coordinate nan", nth_sub(r"^( Li\s+)\S+", r"\g<1>nan", 30))
    out += file_case(C, "coord-text", "a coordinate 'x'", nth_sub(r"^( Li\s+)\S+", r"\g<1>x", 30))
    out += file_case(C, "species-unknown", "species 'Qq'", sub_text(r"^ Li ", " Qq ", 0))
    out += file_case(C, "time-text", "a time 'x' in a comment line", nth_sub(r"time =\s+\S+,", "time = x,", 3))
    out += file_case(C, "time-decreasing", "time goes back in frame 5", nth_sub(r"time =\s+\S+,", "time = 0.000,", 5))
    out += file_case(C, "cut-last-frame", "the positions end inside the last frame (the velocities do not)",
                     cut_lines(0.99))
    out += file_case(C, "flip-middle", "16 random bytes in the middle", flip(0.5))

    def companion(name, mutate, mid, desc, expect="error"):
        def build(env, command):
            p, opts = _place(env, C, read_base(env, C))
            comp = os.path.join(os.path.dirname(p), name)
            with open(comp, "rb") as fh:
                data = fh.read()
            with open(comp, "wb") as fh:
                fh.write(mutate(data))
            return [*_cmd(command, C, "Li"), p, *opts, "--no-progress"], [name, os.path.basename(p)]
        return [Case(f"cp2k/{mid}/{command}", "file: cp2k", desc, lambda env, c=command: build(env, c), expect)
                for command in ("info", "msd")]
    out += companion("run-1.cell", lambda d: b"", "cell-empty", "the .cell file is empty")
    out += companion("run-1.cell", sub_text(r"^(\s+\d+\s+\S+\s+)12\.000000", r"\g<1>0.0", 0), "cell-zero",
                     "the .cell file has a zero lattice vector")
    out += companion("run-1.cell", sub_text(r"^(\s+\d+\s+\S+\s+)12\.000000", r"\g<1>nan", 0), "cell-nan",
                     "the .cell file has nan")
    out += companion("run-1.cell", cut_lines(0.3), "cell-short",
                     "the .cell file has fewer steps than the positions (its constant cell is used, with a note)",
                     expect="ok")
    out += companion("run-1.cell", lambda d: _garbage(d), "cell-garbage", "the .cell file is random bytes")
    out += companion("run-vel-1.xyz", sub_text(r"^56$", "55"), "vel-count", "the velocity file has 55 atoms")
    out += companion("run-vel-1.xyz", cut_lines(0.3), "vel-short", "the velocity file has fewer frames")
    out += companion("run-vel-1.xyz", nth_sub(r"^( Li\s+)\S+", r"\g<1>x", 30), "vel-text", "a velocity 'x'")
    return out


def binary_cases():
    out = []
    for fmt in ("netcdf", "dcd", "ase", "h5md"):
        # a DCD is a header and fixed-size frames: a cut one keeps its complete frames (with a warning)
        out += file_case(fmt, "cut-half", "the file cut in half", cut(0.5), expect="warning" if fmt == "dcd" else "error")
        out += file_case(fmt, "cut-90", "the file cut at 90 %", cut(0.9), expect="warning" if fmt == "dcd" else "error")
        # HDF5 leaves unused space in its headers: bytes there change nothing
        out += file_case(fmt, "flip-header", "16 random bytes at 1 % of the file", flip(0.01),
                         expect="any" if fmt == "h5md" else "error")
        out += file_case(fmt, "flip-middle", "16 random bytes in the middle", flip(0.5), expect="any")
    return out


def netcdf_cases():
    import numpy as np

    out = []

    def nc_variant(mid, desc, change):
        def build(env, command):
            pos, cell, t, species, vel = bf.arrays()
            pos, cell, t, species, vel = change(pos.copy(), cell.copy(), t.copy(), list(species), vel.copy())
            p = env.path("run.nc")
            bf.write_netcdf(p, pos, cell, t, species, vel)
            return [*_cmd(command, "netcdf", "Li"), p, "--no-progress"], [os.path.basename(p)]
        return [Case(f"netcdf/{mid}/{command}", "file: netcdf", desc, lambda env, c=command: build(env, c))
                for command in ("info", "msd")]

    def nan_pos(pos, cell, t, species, vel):
        pos[7, 3, 1] = np.nan
        return pos, cell, t, species, vel

    def zero_cell(pos, cell, t, species, vel):
        return pos, cell * 0.0, t, species, vel

    def time_back(pos, cell, t, species, vel):
        t[10] = t[3]
        return pos, cell, t, species, vel

    out += nc_variant("coord-nan", "a NaN coordinate in frame 7", nan_pos)
    out += nc_variant("cell-zero", "cell lengths 0", zero_cell)
    out += nc_variant("time-repeats", "time of frame 10 equals frame 3's", time_back)
    return out


def outcar_vasprun_cases():
    out = []
    OC, VR = "outcar", "vasprun"
    ipt = r"ions per type =\s+2\s+4"
    out += file_case(OC, "ions-1e12", "'ions per type = 2 10¹²'", sub_text(ipt, "ions per type =  2 1000000000000"),
                     memory_bomb=True)
    out += file_case(OC, "ions-0", "'ions per type = 0 0'", sub_text(ipt, "ions per type =  0 0"))
    out += file_case(OC, "ions-5", "'ions per type = 2 5' (one more than the POSITION blocks)",
                     sub_text(ipt, "ions per type =  2 5"))
    out += file_case(OC, "ions-text", "'ions per type = 2 x'", sub_text(ipt, "ions per type =  2 x"))
    out += file_case(OC, "nions-ignored", "NIONS = 10¹² (unused: 'ions per type' and the blocks give the atoms)",
                     sub_text(r"NIONS =\s+6", "NIONS = 1000000000000"), expect="ok")
    out += file_case(OC, "position-text", "a POSITION row with 'x'",
                     nth_sub(r"^(\s+)-?\d+\.\d+(\s+-?\d+\.\d+\s+-?\d+\.\d+\s+-?\d+\.\d+\s+-?\d+\.\d+\s+-?\d+\.\d+)$",
                             r"\g<1>x\g<2>", 2))
    out += file_case(OC, "potim-zero", "POTIM = 0", sub_text(r"POTIM\s*=\s*\S+", "POTIM =   0.00"))
    out += file_case(OC, "potim-text", "POTIM = x", sub_text(r"POTIM\s*=\s*\S+", "POTIM =   x"))
    out += file_case(OC, "cut-half", "the OUTCAR cut in half", cut_lines(0.5), expect="any")
    out += file_case(OC, "flip-middle", "16 random bytes in the middle", flip(0.5), expect="any")
    out += file_case(VR, "atoms-tag-ignored", "<atoms> 10¹² (unused: the atominfo array lists the atoms)",
                     sub_text(r"<atoms>\s+6 </atoms>", "<atoms> 1000000000000 </atoms>"), expect="ok")
    out += file_case(VR, "atominfo-empty", "an atominfo array without rows",
                     sub_text(r'(<array name="atoms" >.*?<set>).*?(</set>)', r"\g<1>\g<2>", flags=re.S))
    out += file_case(VR, "xml-broken", "an unclosed tag in the middle", flip(0.5), expect="any")
    out += file_case(VR, "cut-half", "vasprun.xml cut in half (running job)", cut_lines(0.5), expect="any")
    out += file_case(VR, "potim-text", "POTIM 'x'", sub_text(r'(<i name="POTIM">)\s*\S+', r"\g<1> x"))
    pos3 = r'(<varray name="positions" >\n\s+<v>)\s+\S+'
    out += file_case(VR, "coord-text", "a position 'x' in ionic step 1", nth_sub(pos3, r"\g<1> x", 3))
    out += file_case(VR, "coord-nan", "a position NaN in ionic step 1 (atom 0, an O)", nth_sub(pos3, r"\g<1> NaN", 3),
                     commands=("info",))
    out += file_case(VR, "coord-stars", "a position '*******' (Fortran overflow) in ionic step 1",
                     nth_sub(pos3, r"\g<1> *******", 3))
    return out


def lammps_data_cases():
    """The LAMMPS data file as --topology of a dump."""
    out = []

    def topo(mid, desc, mutate, expect="error"):
        def build(env):
            with open(env.files["data"], "rb") as fh:
                data = mutate(fh.read())
            t = env.write("run.data", data)
            p, opts = _place(env, "lammps", read_base(env, "lammps"))
            return ["info", p, *opts, "--topology", t], [os.path.basename(t)]
        return [Case(f"lammps-data/{mid}/info", "file: lammps data (--topology)", desc, build, expect)]
    out += topo("atoms-1e12", "'10¹² atoms' in the header", sub_text(r"^56 atoms$", "1000000000000 atoms"))
    out += topo("atoms-55", "'55 atoms' (one fewer than the dump)", sub_text(r"^56 atoms$", "55 atoms"))
    out += topo("atoms-text", "'x atoms'", sub_text(r"^56 atoms$", "x atoms"))
    out += topo("types-0", "'0 atom types'", sub_text(r"^3 atom types$", "0 atom types"))
    out += topo("mass-text", "a mass 'x'", sub_text(r"^1 6\.94", "1 x"))
    out += topo("mass-negative", "a mass -1", sub_text(r"^1 6\.94", "1 -1"))
    out += topo("type-unknown", "an atom of type 9", nth_sub(r"^(5) 1 ", r"\g<1> 9 ", 0))
    out += topo("id-duplicate", "atom id 5 twice", nth_sub(r"^6 1 ", "5 1 ", 0))
    out += topo("atoms-section-missing", "no Atoms section", sub_text(r"^Atoms # charge$", "Bonds"))
    out += topo("empty", "an empty data file", lambda d: b"")
    out += topo("garbage", "random bytes", _garbage)
    out += topo("cut", "the data file cut in the Atoms section", cut_lines(0.7))
    return out


# ----------------------------------------------------------------------------------------------- options
#: subcommand and the options that make a valid run on the LAMMPS dump (each option case changes one thing)
BASELINES = (("msd", ["--species", "Li"]), ("rdf", ["--pair", "Li-Li"]), ("info", []),
             ("hops", ["--species", "Li", "--window", "0.3", "--residence", "0.1"]),
             ("density", ["--species", "Li", "--json", "OUT.json"]),
             ("polyanions", ["--center", "S", "--ligand", "O"]))


#: the same for the analyses run on the NetCDF file (velocities, polyanions)
NC_BASELINES = (("reorient", ["--center", "S", "--ligand", "O"]),
                ("coupling", ["--cation", "Li", "--center", "S", "--ligand", "O", "--hop-window", "0.3",
                              "--hop-residence", "0.1", "--shell", "3.5"]),
                ("timeline", ["--cation", "Li", "--center", "S", "--ligand", "O", "--json", "OUT.json", "--hop-window",
                              "0.3", "--hop-residence", "0.1"]),
                ("libration", ["--center", "S", "--ligand", "O"]))


def option_cases():
    """Bad option values, each on the valid LAMMPS dump (or NetCDF file for analyses that need velocities)."""
    out = []
    L = ["--timestep", "0.001", "--no-progress"]

    def opt(command, args, mid, desc, names, base="lammps", expect="error", memory_bomb=False):
        def build(env):
            p = env.files[base]
            extra = L if base == "lammps" else ["--no-progress"]
            return [command, p, *args, *extra], names
        out.append(Case(f"option/{command}/{mid}", f"option: {command}", desc, build, expect, memory_bomb))

    for command, need in BASELINES:
        opt(command, need, "baseline", "the valid file with valid options (the reference every case changes)", [],
            expect="ok")
    for command, need in BASELINES:
        for flag, value, names in (("--timestep", "0", ["timestep"]), ("--timestep", "-1", ["timestep"]),
                                   ("--timestep", "nan", ["timestep"]), ("--timestep", "inf", ["timestep"]),
                                   ("--frame-interval", "0", ["frame_interval", "frame-interval"]),
                                   ("--frame-interval", "-0.5", ["frame_interval", "frame-interval"]),
                                   ("--lammps-units", "cgs", ["lammps_units", "lammps-units"]),
                                   ("--format", "pdb", ["format"]), ("--types", "1", ["types"]),
                                   ("--cell", "1 2", ["--cell"]), ("--types", "a=Li", ["types"])):
            args = [*need, flag, *value.split()]
            if flag == "--timestep":   # replaces the default timestep
                def build(env, command=command, args=args, names=names):
                    return [command, env.files["lammps"], *args, "--no-progress"], names
                out.append(Case(f"option/{command}/timestep={value}", f"option: {command}",
                                f"{flag} {value}", build))
            else:
                opt(command, args, f"{flag.lstrip('-')}={value.replace(' ', ',')}", f"{flag} {value}", names)
        if command not in ("info", "polyanions", "density", "hops"):
            opt(command, [*need, "--start", "-1"], "start=-1", "--start -1 (the last frame, as in Python: one frame)",
                ["frame"], expect="any")
            for v in ("100000", "abc"):
                opt(command, [*need, "--start", v], f"start={v}", f"--start {v}", ["start", "--start"])
            opt(command, [*need, "--step", "0"], "step=0", "--step 0", ["step"])
            opt(command, [*need, "--step", "-2"], "step=-2", "--step -2", ["step"])
            opt(command, [*need, "--stop", "0"], "stop=0", "--stop 0 (no frames)", ["frame", "stop"])
        if command not in ("info", "polyanions", "density"):
            opt(command, [*need, "--memory", "0"], "memory=0", "--memory 0", ["memory"])
            opt(command, [*need, "--memory", "lots"], "memory=lots", "--memory lots", ["memory"])
            # a tiny budget is either refused or met with one-frame chunks
            opt(command, [*need, "--memory", "1KB"], "memory=1KB", "--memory 1KB (tiny)", ["memory", "budget"],
                expect="any")
    sp = (("msd", "--species"), ("hops", "--species"), ("density", "--species"))
    for command, flag in sp:
        extra = ["--json", "OUT.json"] if command == "density" else []
        for v in ("Qq", "Xe", "li2"):
            opt(command, [flag, v, *extra], f"species={v}", f"{flag} {v} (not in the file)", [v, v.capitalize()])
    rdf = [("--rmax", "-1", "rmax"), ("--rmax", "0", "rmax"), ("--rmax", "nan", "rmax"), ("--rmax", "inf", "rmax"),
           ("--rmax", "1000", "rmax"), ("--bins", "0", "bins"), ("--bins", "-5", "bins"), ("--bins", "1e8", "bins"),
           ("--bins", "100000000", "bins"), ("--bins", "1000000000000", "bins"), ("--temperature", "-5", "temperature"),
           ("--temperature", "nan", "temperature"), ("--pair", "Li", "pair"), ("--pair", "Li-Qq", "Qq"),
           ("--pair", "Li-Li-Li", "pair"), ("--pair", "Li-COM", "center")]
    for flag, v, name in rdf:
        need = [] if flag == "--pair" else ["--pair", "Li-S"]
        opt("rdf", [*need, flag, v], f"{flag.lstrip('-')}={v}", f"{flag} {v}", [name],
            memory_bomb=v in ("1000", "100000000", "1000000000000"))
    dens = [(["--grid", "0", "1", "1"], "grid=0,1,1", "grid"), (["--grid", "-4", "4", "4"], "grid=-4,4,4", "grid"),
            (["--grid", "100000", "100000", "100000"], "grid=1e5^3", "grid"), (["--spacing", "0"], "spacing=0", "spacing"),
            (["--spacing", "-0.2"], "spacing=-0.2", "spacing"), (["--spacing", "nan"], "spacing=nan", "spacing"),
            (["--spacing", "0.00001"], "spacing=1e-5", "spacing"), (["--profile-bins", "0", "--axis", "a"],
                                                                    "profile-bins=0", "profile"),
            (["--profile-bins", "10000000000", "--axis", "a"], "profile-bins=1e10", "profile"),
            (["--remove-drift", "Qq"], "remove-drift=Qq", "Qq")]
    for args, mid, name in dens:
        opt("density", ["--species", "Li", "--json", "OUT.json", *args], mid, " ".join(args), [name],
            memory_bomb="1e" in mid or "1e-5" in mid)
    msd = [(["--fit", "5", "1"], "fit=5,1", "fit"), (["--fit", "-1", "2"], "fit=-1,2", "fit"),
           (["--fit", "nan", "1"], "fit=nan,1", "fit"), (["--fit", "100", "200"], "fit=100,200", "fit"),
           (["--temperature", "0"], "temperature=0", "temperature"), (["--temperature", "-300"], "temperature=-300",
                                                                      "temperature"),
           (["--charge", "nan"], "charge=nan", "charge"), (["--charge", "0"], "charge=0", "charge"),
           (["--hop-distance", "-1"], "hop-distance=-1", "hop"), (["--estimator", "magic"], "estimator=magic", "estimator"),
           (["--scratch-dir", "/nonexistent/dir"], "scratch-dir=missing", "scratch")]
    for args, mid, name in msd:
        opt("msd", ["--species", "Li", *args], mid, " ".join(args), [name])
    hops = [(["--a", "-1"], "a=-1", "a"), (["--a", "0"], "a=0", "a"), (["--residence", "-3"], "residence=-3", "residence"),
            (["--window", "0"], "window=0", "window"), (["--window", "nan"], "window=nan", "window"),
            (["--residence", "1000"], "residence=1000", "residence")]
    for args, mid, name in hops:
        opt("hops", [*BASELINES[3][1], *args], mid, " ".join(args), [name])
    poly = [(["--center", "Qq", "--ligand", "O"], "center=Qq", "Qq"), (["--center", "S", "--ligand", "S"], "ligand=S", "ligand"),
            (["--center", "S", "--ligand", "O", "--cutoff", "-1"], "cutoff=-1", "cutoff"),
            (["--center", "S", "--ligand", "O", "--cutoff", "0"], "cutoff=0", "cutoff"),
            (["--center", "S", "--ligand", "O", "--cutoff", "nan"], "cutoff=nan", "cutoff"),
            (["--center", "Li", "--ligand", "O", "--cutoff", "0.1"], "cutoff=0.1", "cutoff"),
            (["--cluster", "Qq"], "cluster=Qq", "Qq")]
    for args, mid, name in poly:
        opt("polyanions", args, mid, " ".join(args), [name])
    reo = [(["--threshold", "-10"], "threshold=-10", "threshold"), (["--threshold", "500"], "threshold=500", "threshold"),
           (["--threshold", "nan"], "threshold=nan", "threshold"), (["--site-tolerance", "-1"], "site-tolerance=-1",
                                                                    "tolerance"),
           (["--reliable-fraction", "2"], "reliable-fraction=2", "fraction"), (["--rho-anion", "999"], "rho-anion=999",
                                                                                "anion")]
    for args, mid, name in reo:
        opt("reorient", ["--center", "S", "--ligand", "O", *args], mid, " ".join(args), [name])
    vd = [(["--max-freq", "-1"], "max-freq=-1", "max"), (["--max-freq", "nan"], "max-freq=nan", "max"),
          (["--window", "triangle"], "window=triangle", "window"), (["--max-lag", "0"], "max-lag=0", "max"),
          (["--max-lag", "-2"], "max-lag=-2", "max"), (["--segment-frames", "1"], "segment-frames=1", "segment"),
          (["--segment-frames", "0"], "segment-frames=0", "segment"), (["--species", "Qq"], "species=Qq", "Qq")]
    for args, mid, name in vd:
        opt("vdos", args, mid, " ".join(args), [name], base="netcdf")
    cp = [(["--shell", "-1"], "shell=-1", "shell"), (["--nearest", "0"], "nearest=0", "nearest"),
          (["--permutations", "-5"], "permutations=-5", "permutations"), (["--window", "-1"], "window=-1", "window"),
          (["--cation", "Qq"], "cation=Qq", "Qq")]
    for args, mid, name in cp:
        a = ["--cation", "Li", "--center", "S", "--ligand", "O", "--hop-window", "0.3", "--hop-residence", "0.1",
             "--shell", "3.5"]
        if args[0] == "--cation":
            a = a[2:]
        opt("coupling", [*a, *args], mid, " ".join(args), [name], base="netcdf")
    tl = [(["--hop", "9999"], "hop=9999", "hop"), (["--max-hops", "-1"], "max-hops=-1", "max"),
          (["--half-width", "-1"], "half-width=-1", "half"), (["--nearest", "0"], "nearest=0", "nearest")]
    for args, mid, name in tl:
        opt("timeline", ["--cation", "Li", "--center", "S", "--ligand", "O", "--json", "OUT.json", "--hop-window", "0.3",
                         "--hop-residence", "0.1", *args], mid,
            " ".join(args), [name], base="netcdf")
    lb = [(["--omega", "velocities", "--max-freq", "-3"], "max-freq=-3", "max"), (["--window", "box"], "window=box", "window"),
          (["--max-lag", "-1"], "max-lag=-1", "max"), (["--cation", "Qq"], "cation=Qq", "Qq")]
    for args, mid, name in lb:
        opt("libration", ["--center", "S", "--ligand", "O", *args], mid, " ".join(args), [name], base="netcdf")
    opt("sites", ["--species", "Li"], "baseline", "the valid file with valid options (the reference of the cases)",
        [], expect="ok")
    sites = [(["--species", "Qq"], "species=Qq", "Qq"), (["--radius", "-1"], "radius=-1", "radius"),
             (["--spacing", "0"], "spacing=0", "spacing"), (["--spacing", "1e-6"], "spacing=1e-6", "spacing"),
             (["--debounce", "-1"], "debounce=-1", "debounce"), (["--threshold", "nan"], "threshold=nan", "threshold"),
             (["--min-residence", "-1"], "min-residence=-1", "residence"),
             (["--reference", "/nonexistent.vasp"], "reference=missing", "nonexistent"),
             (["--kind", "cubic"], "kind=cubic", "kind"),
             (["--min-prominence", "2"], "min-prominence=2", "prominence"),
             (["--significance", "nan"], "significance=nan", "significance")]
    for args, mid, name in sites:
        opt("sites", ["--species", "Li", *args], mid, " ".join(args), [name])
    opt("vanhove", ["--species", "Li"], "baseline", "the valid file with valid options (the reference of the cases)",
        [], expect="ok")
    vh = [(["--species", "Qq"], "species=Qq", "Qq"), (["--lags", "-1"], "lags=-1", "lag"),
          (["--lags", "1e9"], "lags=1e9", "lag"), (["--n-lags", "0"], "n-lags=0", "lags"),
          (["--max-lag", "-1"], "max-lag=-1", "lag"), (["--rmax", "-1"], "rmax=-1", "rmax"),
          (["--rmax", "1000"], "rmax=1000", "rmax"), (["--bins", "0"], "bins=0", "bins"),
          (["--bins", "100000000000"], "bins=1e11", "histogram"), (["--origin-stride", "0"], "origin-stride=0", "stride"),
          (["--n-origins", "-3"], "n-origins=-3", "origins"), (["--memory", "1KB"], "memory=1KB", "memory")]
    for args, mid, name in vh:
        opt("vanhove", ["--species", "Li", *args], mid, " ".join(args), [name])
    opt("onsager", [], "baseline", "the valid file with valid options (the reference of the cases)", [], expect="ok")
    ons = [(["--groups", "Li,Qq"], "groups=Qq", "Qq"), (["--charges", "Li=abc"], "charges=abc", "charge"),
           (["--temperature", "-5"], "temperature=-5", "temperature"), (["--blocks", "0"], "blocks=0", "blocks"),
           (["--blocks", "100000"], "blocks=1e5", "blocks"), (["--fit", "5", "1"], "fit=5,1", "fit"),
           (["--fit", "0", "1e6"], "fit=0,1e6", "fit"), (["--n-boot", "-1"], "n-boot=-1", "boot"),
           (["--center", "S"], "center-only", "ligand"), (["--frame", "lab"], "frame=lab", "frame"),
           (["--memory", "1KB"], "memory=1KB", "memory")]
    for args, mid, name in ons:
        opt("onsager", args, mid, " ".join(args), [name])
    for command, need in (("vdos", []),) + NC_BASELINES:
        opt(command, need, "baseline", "the valid NetCDF file with valid options (the reference of the cases)", [],
            base="netcdf", expect="ok")
    rep = [(["--grid-spacing", "0"], "grid-spacing=0", "spacing"), (["--grid-spacing", "-1"], "grid-spacing=-1", "spacing"),
           (["--r-max", "-1"], "r-max=-1", "r"), (["--r-max", "1000"], "r-max=1000", "r"),
           (["--stages", "msd,foo"], "stages=foo", "foo"), (["--temperature", "-1"], "temperature=-1", "temperature"),
           (["--cation", "Qq"], "cation=Qq", "Qq"), (["--lag-min", "5", "--lag-max", "1"], "lag=5,1", "lag"),
           (["--center", "S"], "center-only", "ligand")]
    for args, mid, name in rep:
        def build(env, args=args, name=name):
            return ["report", env.files["netcdf"], "--out", env.path("rep"), "--no-progress", "--no-figures",
                    "--stages", "polyanions,diffusion,rdf,density", *args], [name]
        out.append(Case(f"option/report/{mid}", "option: report", " ".join(args), build))
    return out


# ----------------------------------------------------------------------------------------------- paths
def path_cases():
    out = []

    def case(mid, desc, build, group="path"):
        out.append(Case(mid, group, desc, build))

    def fifo(env):
        p = env.path("pipe.lammpstrj")
        os.mkfifo(p)
        return ["info", p, "--timestep", "0.001"], ["pipe.lammpstrj"]
    case("path/fifo/info", "a FIFO as the trajectory", fifo)

    def fifo_fmt(env):
        p = env.path("pipe.xyz")
        os.mkfifo(p)
        return ["msd", p, "--species", "Li", "--format", "extxyz", "--frame-interval", "1"], ["pipe.xyz"]
    case("path/fifo/msd-extxyz", "a FIFO with --format extxyz", fifo_fmt)
    for dev in ("/dev/zero", "/dev/null", "/dev/urandom"):
        for fmt in ("lammps", "xdatcar", "netcdf"):
            case(f"path/device{dev}/{fmt}", f"{dev} read as {fmt}",
                 lambda env, dev=dev, fmt=fmt: (["info", dev, "--format", fmt, "--timestep", "0.001"], [dev]))
    case("path/directory/info", "a folder as the trajectory", lambda env: (["info", env.folder], [env.folder]))
    case("path/missing/info", "a file that does not exist",
         lambda env: (["info", os.path.join(env.folder, "nope.lammpstrj")], ["nope.lammpstrj"]))
    case("path/missing-topology/info", "--topology that does not exist",
         lambda env: (["info", env.files["lammps"], "--timestep", "0.001", "--topology", "/nonexistent.data"],
                      ["nonexistent.data"]))
    case("path/topology-fifo/info", "--topology is a FIFO",
         lambda env: (["info", env.files["lammps"], "--timestep", "0.001", "--topology", _mkfifo(env)], ["pipe"]))

    # outputs equal to inputs (with --overwrite) and outputs in missing folders
    outs = (("msd", ["--species", "Li"], "--json"), ("msd", ["--species", "Li"], "--csv"),
            ("rdf", ["--pair", "Li-Li"], "--json"), ("rdf", ["--pair", "Li-Li"], "--csv"),
            ("hops", ["--species", "Li"], "--json"), ("density", ["--species", "Li"], "--out"),
            ("density", ["--species", "Li"], "--json"), ("polyanions", ["--center", "S", "--ligand", "O"], "--json"),
            ("vdos", [], "--json"), ("reorient", ["--center", "S", "--ligand", "O"], "--json"))
    for command, need, flag in outs:
        def same(env, command=command, need=need, flag=flag):
            p = env.write("v.lammpstrj", read_base(env, "lammps"))
            if flag == "--out" and command == "density":
                return None
            return [command, p, *need, flag, p, "--overwrite", "--timestep", "0.001", "--no-progress"], \
                ["input", "v.lammpstrj"]
        if not (flag == "--out" and command == "density"):
            case(f"path/output-is-input/{command}{flag}", f"{command} {flag} naming the input, --overwrite", same)

        def same_link(env, command=command, need=need, flag=flag):
            p = env.write("v.lammpstrj", read_base(env, "lammps"))
            link = os.path.join(os.path.dirname(p), "link.CHGCAR" if flag == "--out" else "link.json")
            os.symlink(p, link)
            return [command, p, *need, flag, link, "--overwrite", "--timestep", "0.001", "--no-progress"], ["input"]
        case(f"path/output-is-input-symlink/{command}{flag}", f"{command} {flag} a symlink to the input, --overwrite",
             same_link)

        def missing(env, command=command, need=need, flag=flag):
            name = {"--out": "x.CHGCAR", "--csv": "x.csv"}.get(flag, "x.json")
            target = os.path.join(env.folder, "no", "such", "folder", name)
            return [command, env.files["lammps"], *need, flag, target, "--timestep", "0.001", "--no-progress"], \
                ["does not exist"]
        case(f"path/output-folder-missing/{command}{flag}", f"{command} {flag} in a missing folder two levels deep",
             missing)
    case("path/output-root/density-out", "density --out /nonexistent-anionmotion-test/x.CHGCAR",
         lambda env: (["density", env.files["lammps"], "--species", "Li", "--out",
                       "/nonexistent-anionmotion-test/x.CHGCAR", "--timestep", "0.001"], ["root", "nonexistent"]))
    case("path/output-root/report-out", "report --out /nonexistent-anionmotion-test/x",
         lambda env: (["report", env.files["netcdf"], "--out", "/nonexistent-anionmotion-test/x", "--no-progress"],
                      ["nonexistent"]))
    case("path/output-root/md-out", "md --out /nonexistent-anionmotion-test/x/run.nc",
         lambda env: (["md", "--system", "li2so4", "--out", "/nonexistent-anionmotion-test/x/run.nc", "--time",
                       "0.01"], ["nonexistent"]))
    case("path/output-device/msd-json", "msd --json /dev/null (a device)",
         lambda env: (["msd", env.files["lammps"], "--species", "Li", "--json", "/dev/null", "--overwrite",
                       "--timestep", "0.001"], ["/dev/null"]))
    case("path/output-folder/msd-json", "msd --json naming an existing folder",
         lambda env: (["msd", env.files["lammps"], "--species", "Li", "--json", env.folder, "--overwrite",
                       "--timestep", "0.001"], ["folder"]))
    case("path/output-exists/msd-json", "msd --json naming an existing file without --overwrite",
         lambda env: (["msd", env.files["lammps"], "--species", "Li", "--json", env.files["data"],
                       "--timestep", "0.001"], ["exists"]))
    case("path/report-out-is-file", "report --out naming a file",
         lambda env: (["report", env.files["netcdf"], "--out", env.files["data"], "--no-progress"], ["folder"]))
    case("path/report-out-is-input", "report --out naming the trajectory, --overwrite",
         lambda env: (["report", env.files["netcdf"], "--out", env.files["netcdf"], "--overwrite", "--no-progress"],
                      ["run.nc"]))
    case("path/arrhenius-missing", "arrhenius on a missing JSON",
         lambda env: (["arrhenius", os.path.join(env.folder, "nope.json")], ["nope.json"]))
    case("path/arrhenius-garbage", "arrhenius on a random-bytes JSON",
         lambda env: (["arrhenius", env.write("a.json", _garbage(b"")), env.write("b.json", b"{}")], ["a.json", "b.json"]))
    case("path/arrhenius-not-msd", "arrhenius on JSON that is not an msd result",
         lambda env: (["arrhenius", env.write("a.json", b'{"x": 1}'), env.write("b.json", b'[1, 2]')], ["a.json"]))
    case("path/compare-garbage", "compare on random-bytes result files",
         lambda env: (["compare", env.write("a.json", _garbage(b"")), env.write("b.json", b"{}"), "--out",
                       env.path("cmp")], ["a.json", "b.json"]))
    case("path/batch-missing", "batch on a missing manifest",
         lambda env: (["batch", os.path.join(env.folder, "nope.toml")], ["nope.toml"]))
    case("path/batch-garbage", "batch on a manifest of random bytes",
         lambda env: (["batch", env.write("m.toml", _garbage(b""))], ["m.toml"]))
    case("path/batch-bad-toml", "batch on a manifest with a syntax error",
         lambda env: (["batch", env.write("m.toml", b"[[run]\npath = 'x'\n")], ["m.toml"]))
    case("path/batch-missing-trajectory", "batch manifest naming a missing trajectory",
         lambda env: (["batch", env.write("m.toml", b"out = 'o'\n[[run]]\npath = 'missing.nc'\n")],
                      ["missing.nc", "m.toml"]))
    return out


def _mkfifo(env):
    p = env.path("pipe")
    os.mkfifo(p)
    return p


def md_cases():
    out = []

    def md(mid, desc, args, names):
        def build(env):
            return ["md", "--out", env.path("run.nc"), "--no-progress", *args], names
        out.append(Case(f"option/md/{mid}", "option: md", desc, build))
    md("cells=1", "--cells 1 (box smaller than twice the cutoff)", ["--system", "li2so4", "--cells", "1", "--time", "0.1"],
       ["cutoff", "cells"])
    md("cells=0", "--cells 0", ["--system", "li2so4", "--cells", "0"], ["cells"])
    md("timestep=0", "--timestep 0", ["--system", "li2so4", "--timestep", "0"], ["timestep"])
    md("timestep=-1", "--timestep -1", ["--system", "li2so4", "--timestep", "-1"], ["timestep"])
    md("time=-1", "--time -1", ["--system", "li2so4", "--time", "-1"], ["time"])
    md("temperature=-5", "--temperature -5", ["--system", "li2so4", "--temperature", "-5"], ["temperature"])
    md("mode=XX", "--mode XX", ["--system", "li2so4", "--mode", "XX"], ["mode"])
    md("frame-every=0", "--frame-every 0", ["--system", "li2so4", "--frame-every", "0"], ["frame"])
    md("friction=-1", "--friction -1", ["--system", "li2so4", "--friction", "-1"], ["friction"])
    md("seed=0", "--seed 0", ["--system", "li2so4", "--seed", "0"], ["seed"])
    md("thermostat=x", "--thermostat berendsen", ["--system", "li2so4", "--thermostat", "berendsen"], ["thermostat"])
    md("system=foo", "--system foo", ["--system", "foo"], ["foo", "system"])
    md("system-xml-missing", "--system-xml of a missing file",
       ["--system-xml", "/nonexistent.xml", "--structure", "/nonexistent.pdb"], ["nonexistent"])
    # series and adaptive length (anionmotion.md.series): all refused before any MD
    li = ["--system", "li2so4", "--cells", "2"]
    md("temperature=500,abc", "--temperature 500,abc", [*li, "--temperature", "500,abc"], ["temperature"])
    md("temperature=600,600", "--temperature 600,600 (twice)", [*li, "--temperature", "600,600"], ["twice"])
    md("temperature=500,", "--temperature '500,' (empty item)", [*li, "--temperature", "500,"], ["temperature"])
    md("until-converged-no-limit", "--until-converged without --time-limit/--wall-limit",
       [*li, "--until-converged", "0.1"], ["limit"])
    md("until-converged=2", "--until-converged 2 (a relative error above 1)",
       [*li, "--until-converged", "2", "--time-limit", "100"], ["until-converged"])
    md("until-converged=0", "--until-converged 0", [*li, "--until-converged", "0", "--time-limit", "100"],
       ["until-converged"])
    md("time-limit-alone", "--time-limit without --until-converged", [*li, "--time-limit", "5"], ["until-converged"])
    md("time-limit<time", "--time-limit shorter than --time",
       [*li, "--until-converged", "0.1", "--time", "10", "--time-limit", "5"], ["time-limit"])
    md("time-limit=-1", "--time-limit -1", [*li, "--until-converged", "0.1", "--time-limit", "-1"], ["time-limit"])
    md("wall-limit=5x", "--wall-limit 5x", [*li, "--until-converged", "0.1", "--wall-limit", "5x"], ["wall-limit"])
    md("wall-limit=0", "--wall-limit 0", [*li, "--until-converged", "0.1", "--wall-limit", "0"], ["wall-limit"])
    md("cation=Na", "--cation Na (not in the system)",
       [*li, "--until-converged", "0.1", "--time-limit", "100", "--cation", "Na"], ["Na"])
    md("cation-alone", "--cation without --until-converged", [*li, "--cation", "Li"], ["until-converged"])
    out.append(Case("option/batch/md-no-out", "option: batch", "batch md without --out",
                    lambda env: (["batch", "md", "--system", "li2so4"], ["--out"])))
    out.append(Case("option/batch/md-bogus", "option: batch", "batch md with an unknown option",
                    lambda env: (["batch", "md", "--system", "li2so4", "--out", env.path("b.nc"), "--bogus"],
                                 ["--bogus"])))
    out.append(Case("option/batch/extra-args", "option: batch", "arguments after a manifest",
                    lambda env: (["batch", env.write("m.toml", b"[[run]]\npath = 'x.nc'\n"), "extra"], ["extra"])))
    # md --structure/--potential (issue 13): refused before any MD, one line naming the option or file
    cif = os.path.join(REPO, "tests", "data", "md_structures", "Li3PO4_gamma.cif")
    emt = ["--potential", "ase:ase.calculators.emt:EMT"]
    md("potential=unknown", "--potential nosuchmodel", ["--structure", cif, "--potential", "nosuchmodel"],
       ["nosuchmodel"])
    md("potential-model-missing", "--potential mace:<missing file>",
       ["--structure", cif, "--potential", "mace:/nonexistent-model.pt"], ["nonexistent-model.pt"])
    md("potential-ase-class", "--potential ase:<module>:<missing class>",
       ["--structure", cif, "--potential", "ase:ase.calculators.emt:Nope"], ["Nope"])
    md("potential-kw=bad", "--potential-kw without '='", ["--structure", cif, *emt, "--potential-kw", "oops"],
       ["potential-kw"])
    md("device=gpu", "--device gpu", ["--structure", cif, *emt, "--device", "gpu"], ["--device"])
    md("structure-no-potential", "--structure without --potential", ["--structure", cif], ["--potential"])
    md("structure-missing", "--structure of a missing file", ["--structure", "/nonexistent-s.cif", *emt],
       ["nonexistent-s.cif"])
    md("supercell=2x2", "--supercell 2x2", ["--structure", cif, *emt, "--supercell", "2x2"], ["supercell"])
    md("supercell=0x1x1", "--supercell 0x1x1", ["--structure", cif, *emt, "--supercell", "0x1x1"], ["supercell"])
    md("frame-of-cif", "--frame 2 with a CIF", ["--structure", cif, *emt, "--frame", "2"], ["frame"])
    md("nve-drift=-1", "--nve-drift -1", ["--structure", cif, *emt, "--nve-drift", "-1"], ["nve-drift"])

    def disordered(env):
        with open(cif, encoding="utf-8") as fh:
            text = fh.read().replace("0.29550000  1", "0.29550000  0.5")
        p = env.write("disordered.cif", text)
        return ["md", "--structure", p, *emt, "--out", env.path("run.nc"), "--no-progress"], ["partially occupied"]
    out.append(Case("option/md/structure-disordered", "option: md", "a structure with partial occupancies",
                    disordered))
    return out


#: POSCARs for the ``bv`` cases: a small Li2SO4-like cell, and a LiBH4-like one (no softBV parameters for H⁻)
_BV_LI2SO4 = ("Li2SO4-like\n1.0\n6 0 0\n0 6 0\n0 0 6\nLi S O\n2 1 4\nDirect\n0 0 0\n0.5 0.5 0\n"
              "0.5 0 0.5\n0.6387 0.1387 0.6387\n0.3613 -0.1387 0.6387\n0.3613 0.1387 0.3613\n0.6387 -0.1387 0.3613\n")
_BV_LIBH4 = ("LiBH4-like\n1.0\n6 0 0\n0 6 0\n0 0 6\nLi B H\n1 1 4\nDirect\n0 0 0\n0.5 0.5 0.5\n"
             "0.6155 0.6155 0.6155\n0.3845 0.3845 0.6155\n0.3845 0.6155 0.3845\n0.6155 0.3845 0.3845\n")


def bv_cases():
    out = []

    def bv(mid, desc, args, names, poscar=_BV_LI2SO4):
        def build(env):
            return ["bv", env.write("POSCAR", poscar), *args], names
        out.append(Case(f"option/bv/{mid}", "option: bv", desc, build))
    bv("grid-spacing=0", "--grid-spacing 0", ["--grid-spacing", "0"], ["grid_spacing", "spacing"])
    bv("grid-spacing=-1", "--grid-spacing -1", ["--grid-spacing", "-1"], ["grid_spacing", "spacing"])
    bv("cation=Qq", "--cation Qq (not in the structure)", ["--cation", "Qq"], ["Qq"])
    bv("center-only", "--center without --ligand", ["--center", "S"], ["ligand"])
    bv("oxidation-states=x", "--oxidation-states Li=x", ["--oxidation-states", "Li=x"], ["oxidation"])
    bv("oxidation-states-unbalanced", "--oxidation-states leaving a charged cell",
       ["--oxidation-states", "Li=1,S=6,O=-1"], ["charge"])
    bv("encut=0", "--encut 0", ["--encut", "0"], ["encut"])
    bv("memory=1MB", "--memory 1MB (the grid does not fit)", ["--memory", "1MB"], ["memory", "grid"])
    bv("no-bv-parameters", "a hydride (LiBH4-like): no softBV parameters for H-", [], ["H1-", "parameters"],
       poscar=_BV_LIBH4)
    bv("no-cation", "a structure without a mobile cation (BaSO4-like)", [], ["cation"],
       poscar=_BV_LI2SO4.replace("Li S O\n2 1 4\nDirect\n0 0 0\n0.5 0.5 0\n", "Ba S O\n1 1 4\nDirect\n0 0 0\n"))
    out.append(Case("option/bv/missing", "option: bv", "a structure file that does not exist",
                    lambda env: (["bv", os.path.join(env.folder, "nope.cif")], ["nope.cif"])))
    out.append(Case("option/bv/garbage", "option: bv", "a CIF of random bytes",
                    lambda env: (["bv", env.write("x.cif", _garbage(b""))], ["x.cif"])))
    return out

#: a Na3PS4-like POSCAR (isolated PS4) and a CIF with a partially occupied site, for the ``screen`` cases
_SCREEN_POSCAR = ("Na3PS4-like\n1.0\n7 0 0\n0 7 0\n0 0 7\nNa P S\n3 1 4\nDirect\n0 0.5 0.5\n0.5 0 0.5\n"
                  "0.5 0.5 0\n0 0 0\n0.1721 0.1721 0.1721\n-0.1721 -0.1721 0.1721\n-0.1721 0.1721 -0.1721\n"
                  "0.1721 -0.1721 -0.1721\n")
_SCREEN_DISORDERED_CIF = ("data_x\n_cell_length_a 7\n_cell_length_b 7\n_cell_length_c 7\n_cell_angle_alpha 90\n"
                          "_cell_angle_beta 90\n_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\n"
                          "loop_\n_symmetry_equiv_pos_as_xyz\n'x, y, z'\nloop_\n_atom_site_label\n"
                          "_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
                          "_atom_site_occupancy\nNa1 Na 0 0.5 0.5 0.6\nK1 K 0 0.5 0.5 0.4\nP1 P 0 0 0 1\n"
                          "S1 S 0.1721 0.1721 0.1721 1\n")


def screen_cases():
    """``screen`` options and files, and ``compare --classify`` inputs."""
    out = []

    def screen(mid, desc, args, names, data=_SCREEN_POSCAR, name="POSCAR"):
        def build(env):
            return ["screen", env.write(name, data), "--no-progress", "--no-bv", *args], names
        out.append(Case(f"option/screen/{mid}", "option: screen", desc, build))
    screen("jobs=0", "--jobs 0", ["--jobs", "0"], ["--jobs"])
    screen("jobs=x", "--jobs x", ["--jobs", "x"], ["--jobs"])
    screen("tol=-1", "--tol -1", ["--tol", "-1"], ["--tol"])
    screen("tol=nan", "--tol nan", ["--tol", "nan"], ["--tol"])
    screen("bond-scale=0", "--bond-scale 0", ["--bond-scale", "0"], ["--bond-scale"])
    screen("disorder=x", "--disorder maybe", ["--disorder", "maybe"], ["--disorder"])
    screen("bv=some", "--bv some", ["--bv", "some"], ["--bv"])
    screen("bv-and-no-bv", "--bv all together with --no-bv", ["--bv", "all"], ["--bv all", "--no-bv"])
    screen("cation=Qq", "--cation Qq (absent: every file fails)", ["--cation", "Qq"], ["Qq"])
    screen("format=xyz9", "--format xyz9", ["--format", "xyz9"], ["xyz9", "format"])
    screen("disordered-refused", "a partially occupied CIF with the default --disorder refuse", [],
           ["x.cif", "partially occupied"], data=_SCREEN_DISORDERED_CIF, name="x.cif")
    screen("garbage", "a CIF of random bytes", [], ["g.cif"], data=_garbage(b""), name="g.cif")
    out.append(Case("option/screen/missing", "option: screen", "a structure file that does not exist",
                    lambda env: (["screen", os.path.join(env.folder, "nope.cif"), "--no-progress"], ["nope.cif"])))

    def report_folder(env, text):
        return os.path.dirname(env.write("report.json", text))

    def classify(mid, desc, build):
        out.append(Case(f"option/compare/classify-{mid}", "option: compare", desc, build))
    classify("not-a-report", "--classify on JSON that is not a report",
             lambda env: (["compare", "--classify", report_folder(env, b'{"diffusion": {}}'), "--out",
                           env.path("o")], ["report.json"]))
    classify("garbage", "--classify on a report.json of random bytes",
             lambda env: (["compare", "--classify", report_folder(env, _garbage(b"")), "--out", env.path("o")],
                          ["report.json"]))
    classify("no-report", "--classify on a folder without report.json",
             lambda env: (["compare", "--classify", os.path.dirname(env.path("x")), "--out", env.path("o")],
                          ["report.json"]))
    classify("with-mode", "--classify with --mode (a series option)",
             lambda env: (["compare", "--classify", report_folder(env, b'{"analyses": {}}'), "--mode", "UC",
                           "--out", env.path("o")], ["--mode"]))
    classify("labels", "--classify with the wrong number of --label",
             lambda env: (["compare", "--classify", report_folder(env, b'{"analyses": {}}'), "--label", "a,b",
                           "--out", env.path("o")], ["--label"]))
    return out


#: cases whose defect is in a module outside the hardening work (the test marks them strict xfail: when the
#: owner fixes it the test reports XPASS and the entry is removed); case id → what is wrong and where
KNOWN_DEFECTS: dict = {}
"""Catalogued bad inputs still accepted (id → why); each runs as a strict xfail until fixed. None left."""


def all_cases():
    cases = (generic_cases() + lammps_cases() + xdatcar_cases() + extxyz_cases() + cp2k_cases() + binary_cases()
             + netcdf_cases() + outcar_vasprun_cases() + lammps_data_cases() + option_cases() + path_cases()
             + md_cases() + bv_cases() + screen_cases())
    ids = [c.id for c in cases]
    dup = {i for i in ids if ids.count(i) > 1}
    assert not dup, dup
    return cases


# ----------------------------------------------------------------------------------------------- running
def file_hashes(paths):
    out = {}
    for p in paths:
        if os.path.isfile(p):
            with open(p, "rb") as fh:
                out[p] = hashlib.sha256(fh.read()).hexdigest()
    return out


def _input_files(argv, env):
    files = [a for a in argv if isinstance(a, str) and os.path.isfile(a)]
    files += [p for p in env.files.values() if os.path.isfile(p)]
    for a in list(files):
        d = os.path.dirname(a)
        if os.path.basename(d).startswith("c") and os.path.isdir(d):
            files += [os.path.join(d, f) for f in os.listdir(d) if os.path.isfile(os.path.join(d, f))]
    return sorted(set(files))


def _last_line(stderr):
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    errs = [ln for ln in lines if ": error:" in ln]
    if errs:
        return errs[-1]
    warns = [ln for ln in lines if "warning:" in ln]
    return warns[-1] if warns else (lines[-1] if lines else "")


def run_inprocess(argv, env, cwd=None):
    """Run ``anionmotion.cli.main(argv)`` in this process; stdout/stderr captured."""
    from anionmotion.cli import main

    before = file_hashes(_input_files(argv, env))
    err, out = io.StringIO(), io.StringIO()
    tb = False
    old = os.getcwd()
    os.chdir(cwd or os.path.dirname(env.path("cwd")))
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), warnings.catch_warnings():
            warnings.simplefilter("always")

            def show(message, category, filename, lineno, file=None, line=None):
                # as the command line shows them (a test runner may have replaced showwarning to record them)
                sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))
            warnings.showwarning = show
            try:
                rc = main(argv)
            except SystemExit as e:   # argparse
                rc = e.code if isinstance(e.code, int) else 2
            except BaseException:     # a traceback: the defect the suite looks for
                import traceback

                traceback.print_exc(file=err)
                tb = True
                rc = 1
    finally:
        os.chdir(old)
    text = err.getvalue()
    after = file_hashes(before)
    import anionmotion.cli as cli

    le = cli.last_error
    return Outcome(rc=rc, message=_last_line(text), traceback=tb or "Traceback" in text, stderr=text,
                   inputs_unchanged=after == before, error=le)


#: exception classes a bad input may end in besides AnionmotionError subclasses (their messages name the file)
OK_ERRORS = ("FileNotFoundError", "IsADirectoryError", "PermissionError", "NotADirectoryError", "FileExistsError")


def raw_error(outcome) -> bool:
    """Whether an in-process exit 2 came from a raw (non-anionmotion) exception, e.g. numpy's ValueError."""
    from anionmotion.errors import AnionmotionError

    err = outcome.error
    if outcome.rc != 2 or err is None:
        return False
    return not isinstance(err, AnionmotionError) and type(err).__name__ not in OK_ERRORS


def run_subprocess(argv, env, *, limit_bytes=3 << 30, timeout=300, cwd=None):
    """Run the CLI in a child process under an address-space limit (RLIMIT_AS)."""
    before = file_hashes(_input_files(argv, env))

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    envvars = dict(os.environ)
    envvars["PYTHONPATH"] = REPO + os.pathsep + envvars.get("PYTHONPATH", "")
    envvars.setdefault("OMP_NUM_THREADS", "1")
    try:
        p = subprocess.run([sys.executable, "-m", "anionmotion", *argv], capture_output=True, text=True,
                           preexec_fn=limit, timeout=timeout, cwd=cwd or os.path.dirname(env.path("cwd")),
                           env=envvars)
        rc, text = p.returncode, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, text = -999, f"TIMEOUT after {timeout} s\n" + (e.stderr or b"").decode("utf-8", "replace") \
            if isinstance(e.stderr, bytes) else f"TIMEOUT after {timeout} s"
    after = file_hashes(before)
    return Outcome(rc=rc, message=_last_line(text), traceback="Traceback" in text, stderr=text,
                   inputs_unchanged=after == before)


def check(case, outcome, names):
    """Problems of ``outcome`` for ``case`` (empty list = as expected)."""
    problems = []
    if outcome.traceback:
        problems.append("traceback")
    if not outcome.inputs_unchanged:
        problems.append("an input file was changed")
    msg = outcome.message
    if case.expect == "error" or (case.expect == "any" and outcome.rc != 0):
        if outcome.rc != 2:
            problems.append(f"exit {outcome.rc}, expected 2")
        elif ": error:" not in msg:
            problems.append("no 'error:' line")
        elif names and not any(n.lower() in msg.lower() for n in names):
            problems.append(f"message does not name {names}")
    elif case.expect == "warning":
        if outcome.rc != 0:
            problems.append(f"exit {outcome.rc}, expected 0 with a warning")
        elif "warning:" not in outcome.stderr:
            problems.append("no warning")
        elif names and not any(n in outcome.stderr for n in names):
            problems.append(f"warning does not name {names}")
    elif case.expect == "ok":
        if outcome.rc != 0:
            problems.append(f"exit {outcome.rc}, expected 0")
    return problems


def make_env(folder):
    files = bf.write_all(os.path.join(folder, "base"))
    return Env(folder=folder, files=files)
