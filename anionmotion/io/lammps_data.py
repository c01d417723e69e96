"""LAMMPS data file reader (``write_data`` output or hand-written), used as the topology of a dump.

Only what a dump lacks is read: the atom count, the atom types, the
``Masses`` section (with an optional element name in the comment after the
mass, ``1 6.941 # Li``) and, from ``Atoms``, every atom's id, type and charge
(when the atom style has one).  Box lines are checked for form only; the
dump's own boxes are used.  Every other section (``Velocities``, ``Bonds``,
``Pair Coeffs`` …) is skipped.

The parser is pure Python and strict: a data file is small (one line per atom)
and every problem is reported as a :class:`~anionmotion.errors.TrajectoryError`
naming the file and line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..elements import MASSES, normalize_symbol
from ..errors import OptionError, TrajectoryError
from .base import open_binary

__all__ = ["LammpsData", "read_lammps_data", "ATOM_STYLES", "elements_of_types", "MASS_TOLERANCE"]

MASS_TOLERANCE = 0.3
"""Largest difference (amu) between a type's mass and the standard mass of the element it is mapped to."""

#: atom style → (number of columns before the optional image flags, column of type, column of q or None)
#: (column 0 is always the atom id; LAMMPS manual, read_data "Atoms" section)
ATOM_STYLES = {
    "atomic": (5, 1, None),      # id type x y z
    "charge": (6, 1, 2),         # id type q x y z
    "full": (7, 2, 3),           # id mol type q x y z
    "molecular": (6, 2, None),   # id mol type x y z
    "bond": (6, 2, None),
    "angle": (6, 2, None),
    "dipole": (9, 1, 2),         # id type q x y z mux muy muz
    "sphere": (7, 1, None),      # id type diameter density x y z
}

#: column count (without images) → atom style, when the Atoms line has no style comment; 6 columns is
#: ambiguous (charge: id type q x y z, or molecular: id mol type x y z) and needs the comment
_INFER = {5: "atomic", 7: "full"}

_HEADER_KEYWORDS = (
    "atoms", "bonds", "angles", "dihedrals", "impropers", "atom types", "bond types", "angle types",
    "dihedral types", "improper types", "extra bond per atom", "extra angle per atom", "extra dihedral per atom",
    "extra improper per atom", "extra special per atom", "ellipsoids", "lines", "triangles", "bodies",
    "xlo xhi", "ylo yhi", "zlo zhi", "xy xz yz", "avec", "bvec", "cvec", "abc origin",
)

_SECTIONS = (
    "Atoms", "Velocities", "Masses", "Ellipsoids", "Lines", "Triangles", "Bodies", "Bonds", "Angles", "Dihedrals",
    "Impropers", "Pair Coeffs", "PairIJ Coeffs", "Bond Coeffs", "Angle Coeffs", "Dihedral Coeffs",
    "Improper Coeffs", "BondBond Coeffs", "BondAngle Coeffs", "MiddleBondTorsion Coeffs", "EndBondTorsion Coeffs",
    "AngleTorsion Coeffs", "AngleAngleTorsion Coeffs", "BondBond13 Coeffs", "AngleAngle Coeffs",
    "Atom Type Labels", "Bond Type Labels", "Angle Type Labels", "Dihedral Type Labels", "Improper Type Labels",
)

_NUM = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@dataclass
class LammpsData:
    """What anionmotion takes from a LAMMPS data file.

    Attributes
    ----------
    path : str
    n_atoms : int
    n_types : int
    atom_style : str
        From the ``Atoms # style`` comment, or inferred from the column count (``inferred_style`` True).
    ids : ndarray, shape (n_atoms,), int64
        Atom ids, sorted ascending.
    types : ndarray, shape (n_atoms,), int64
        Type of every atom (order of ``ids``).
    charges : ndarray, shape (n_atoms,), float64, e, or None
        Charge of every atom (order of ``ids``); None when the atom style has no charge.
    type_masses : dict
        type (int) → mass (amu) from ``Masses``.
    type_labels : dict
        type (int) → element symbol named in the comment after the mass (only types that have one).
    """

    path: str
    n_atoms: int
    n_types: int
    atom_style: str
    ids: np.ndarray
    types: np.ndarray
    charges: Optional[np.ndarray]
    type_masses: dict = field(default_factory=dict)
    type_labels: dict = field(default_factory=dict)
    inferred_style: bool = False

    def index_of(self, atom_ids, dump_path=None):
        """Row of every id of ``atom_ids`` in this file's arrays.

        Raises
        ------
        TrajectoryError
            Naming the first id of the dump that the data file does not hold.
        """
        atom_ids = np.asarray(atom_ids, dtype=np.int64)
        pos = np.searchsorted(self.ids, atom_ids)
        pos_c = np.minimum(pos, len(self.ids) - 1)
        bad = np.nonzero(self.ids[pos_c] != atom_ids)[0]
        if len(bad):
            a = int(atom_ids[bad[0]])
            raise TrajectoryError(f"atom id {a} of the dump is not in the data file {self.path} ({len(bad)} "
                                  f"dump id(s) missing there; the data file has {self.n_atoms} atoms, ids "
                                  f"{int(self.ids[0])}..{int(self.ids[-1])}); the topology must describe the "
                                  "atoms of the dump", path=dump_path, atom=a)
        return pos_c


def _err(msg, path, line):
    return TrajectoryError(msg, path=path, line=line)


def _split_comment(raw):
    text, _, comment = raw.partition("#")
    return text.strip(), comment.strip()


def _int(tok, what, path, line, text):
    try:
        v = int(tok)
    except ValueError:
        raise _err(f"{what} is not an integer: {tok!r} in {text[:120]!r}", path, line) from None
    return v


def _float(tok, what, path, line, text):
    if not _NUM.match(tok):
        raise _err(f"{what} is not a number: {tok!r} in {text[:120]!r}", path, line)
    return float(tok)


def read_lammps_data(path) -> LammpsData:
    """Read the atoms, types, masses and charges of a LAMMPS data file.

    Parameters
    ----------
    path : str or path-like
        Data file (plain, ``.gz`` or ``.bz2``).

    Returns
    -------
    LammpsData

    Raises
    ------
    FileNotFoundError
    TrajectoryError
        Malformed header or section line, unknown or ambiguous atom style, missing ``Atoms`` section, atom
        count different from the header, duplicate id, type outside ``1..N atom types``, or a type used by
        an atom without a ``Masses`` entry; the message names the file and the line.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file (LAMMPS data file given as topology)")
    try:
        with open_binary(path) as fh:
            raw = fh.read()
    except (OSError, EOFError) as err:
        raise TrajectoryError(f"cannot read the data file: {err}", path=path) from err
    if b"\0" in raw[:4096]:
        raise TrajectoryError("not a LAMMPS data file (binary content)", path=path)
    lines = raw.decode("latin-1").splitlines()
    counts = {}
    i = 1   # line 1 is the title, always skipped
    n = len(lines)
    # ---- header: "N keyword" lines and box lines, until the first section name
    while i < n:
        text, _ = _split_comment(lines[i])
        if not text:
            i += 1
            continue
        if text in _SECTIONS or text.split()[0] in ("Atoms", "Masses", "Velocities") or text.endswith("Coeffs"):
            break
        toks = text.split()
        key = next((k for k in _HEADER_KEYWORDS if text.endswith(" " + k)), None)
        if key is None:
            raise _err(f"unknown header line {text[:120]!r}; expected 'N atoms', 'N atom types', 'xlo xhi' … "
                       "or a section name (Masses, Atoms, …)", path, i + 1)
        nv = len(toks) - len(key.split())
        if key in ("xlo xhi", "ylo yhi", "zlo zhi"):
            if nv != 2:
                raise _err(f"box line needs 2 numbers before {key!r}: {text[:120]!r}", path, i + 1)
            lo, hi = (_float(t, "box bound", path, i + 1, text) for t in toks[:2])
            if not hi > lo:
                raise _err(f"box bound hi {hi:g} is not above lo {lo:g}: {text[:120]!r}", path, i + 1)
        elif key in ("xy xz yz", "avec", "bvec", "cvec", "abc origin"):
            for t in toks[:nv]:
                _float(t, "box value", path, i + 1, text)
        else:
            if nv != 1:
                raise _err(f"header line needs one integer before {key!r}: {text[:120]!r}", path, i + 1)
            v = _int(toks[0], f"the count of {key!r}", path, i + 1, text)
            if v < 0:
                raise _err(f"negative count in {text[:120]!r}", path, i + 1)
            counts[key] = v
        i += 1
    if "atoms" not in counts:
        raise TrajectoryError("no 'N atoms' line in the header of the data file", path=path)
    if "atom types" not in counts:
        raise TrajectoryError("no 'N atom types' line in the header of the data file", path=path)
    n_atoms, n_types = counts["atoms"], counts["atom types"]
    if n_atoms == 0:
        raise TrajectoryError("the data file has 0 atoms", path=path)
    masses = {}
    labels = {}
    mass_lines = {}
    atoms = None
    # ---- sections
    while i < n:
        text, comment = _split_comment(lines[i])
        if not text:
            i += 1
            continue
        name = text
        if name not in _SECTIONS:
            raise _err(f"expected a section name (Masses, Atoms, Velocities, Bonds, …), got {text[:120]!r}", path,
                       i + 1)
        head_line = i + 1
        i += 1
        # a section: a blank line, then lines up to the next blank line followed by a section name (or EOF)
        body = []
        while i < n and not lines[i].strip():
            i += 1
        while i < n:
            t, c = _split_comment(lines[i])
            if not t:
                # a blank or comment-only line ends the section when the next non-blank line is a section name
                j = i + 1
                while j < n and not _split_comment(lines[j])[0]:
                    j += 1
                if j >= n or _split_comment(lines[j])[0] in _SECTIONS:
                    i = j
                    break
                i += 1
                continue
            if t in _SECTIONS:
                break
            body.append((i + 1, t, c, lines[i]))
            i += 1
        if name == "Masses":
            for ln, t, c, full in body:
                toks = t.split()
                if len(toks) != 2:
                    raise _err(f"Masses line needs 'type mass': {full.strip()[:120]!r}", path, ln)
                ty = _int(toks[0], "atom type", path, ln, full)
                m = _float(toks[1], "mass", path, ln, full)
                if not 1 <= ty <= n_types:
                    raise _err(f"atom type {ty} outside 1..{n_types} (header: {n_types} atom types)", path, ln)
                if ty in masses:
                    raise _err(f"atom type {ty} has two masses (lines {mass_lines[ty]} and {ln})", path, ln)
                if not m > 0:
                    raise _err(f"mass of atom type {ty} is not positive: {toks[1]!r}", path, ln)
                masses[ty] = m
                mass_lines[ty] = ln
                if c:
                    word = c.split()[0]
                    try:
                        labels[ty] = normalize_symbol(word)
                    except (OptionError, ValueError):
                        pass   # a comment that is not an element name (e.g. "# lithium cation") is ignored
        elif name == "Atoms":
            if atoms is not None:
                raise _err("a second Atoms section", path, head_line)
            atoms = _parse_atoms(body, comment, n_atoms, n_types, path, head_line)
    if atoms is None:
        raise TrajectoryError("no 'Atoms' section in the data file", path=path)
    style, inferred, ids, types, charges, type_lines = atoms
    used = np.unique(types)
    missing = [int(t) for t in used if int(t) not in masses]
    if missing:
        t0 = missing[0]
        raise _err(f"atom type(s) {', '.join(map(str, missing))} used in Atoms (first at line {type_lines[t0]}) "
                   "have no entry in the Masses section" + ("" if masses else " (there is no Masses section)"),
                   path, type_lines[t0])
    return LammpsData(path=path, n_atoms=n_atoms, n_types=n_types, atom_style=style, ids=ids, types=types,
                      charges=charges, type_masses=masses, type_labels=labels, inferred_style=inferred)


def _parse_atoms(body, comment, n_atoms, n_types, path, head_line):
    style_word = comment.split()[0] if comment else None
    inferred = style_word is None
    if body:
        ncol0 = len(body[0][1].split())
    else:
        raise _err("the Atoms section is empty", path, head_line)
    if style_word is None:
        base = ncol0 - 3 if ncol0 - 3 in _INFER else ncol0
        if base not in _INFER:
            raise _err(f"the Atoms section has no style comment and {ncol0} columns; cannot tell the atom style "
                       "(6 columns may be 'charge' or 'molecular'): write 'Atoms # charge', 'Atoms # full', "
                       "'Atoms # atomic' …", path, head_line)
        style_word = _INFER[base]
    if style_word not in ATOM_STYLES:
        raise _err(f"atom style {style_word!r} is not read (styles read: {', '.join(ATOM_STYLES)})", path,
                   head_line)
    ncol, tcol, qcol = ATOM_STYLES[style_word]
    if len(body) != n_atoms:
        ln = body[n_atoms][0] if len(body) > n_atoms else head_line
        extra = f" (first extra line: {body[n_atoms][3].strip()[:120]!r})" if len(body) > n_atoms else ""
        raise _err(f"the Atoms section has {len(body)} lines, the header says {n_atoms} atoms{extra}", path, ln)
    ids = np.empty(n_atoms, dtype=np.int64)
    types = np.empty(n_atoms, dtype=np.int64)
    charges = np.empty(n_atoms) if qcol is not None else None
    lines_of = np.empty(n_atoms, dtype=np.int64)
    type_lines = {}
    for k, (ln, t, _, full) in enumerate(body):
        toks = t.split()
        if len(toks) not in (ncol, ncol + 3):
            raise _err(f"Atoms line has {len(toks)} values; atom style {style_word!r} needs {ncol} (or "
                       f"{ncol + 3} with image flags): {full.strip()[:120]!r}", path, ln)
        ids[k] = _int(toks[0], "atom id", path, ln, full)
        if ids[k] <= 0:
            raise _err(f"atom id {ids[k]} is not positive: {full.strip()[:120]!r}", path, ln)
        ty = _int(toks[tcol], "atom type", path, ln, full)
        if not 1 <= ty <= n_types:
            raise _err(f"atom type {ty} outside 1..{n_types} (header: {n_types} atom types): "
                       f"{full.strip()[:120]!r}", path, ln)
        types[k] = ty
        type_lines.setdefault(ty, ln)
        for c in range(1, len(toks)):
            if c != tcol:
                _float(toks[c], f"column {c + 1}", path, ln, full)
        if qcol is not None:
            charges[k] = float(toks[qcol])
        lines_of[k] = ln
    order = np.argsort(ids, kind="stable")
    sids = ids[order]
    dup = np.nonzero(np.diff(sids) == 0)[0]
    if len(dup):
        d = int(sids[dup[0]])
        where = lines_of[ids == d]
        raise _err(f"atom id {d} appears twice in Atoms (lines {int(where[0])} and {int(where[1])})", path,
                   int(where[1]))
    return (style_word, inferred, sids, types[order], None if charges is None else charges[order], type_lines)


def elements_of_types(data: LammpsData, types_map=None):
    """Element of every atom type: the explicit map, else the Masses comment, else the nearest standard mass.

    Parameters
    ----------
    data : LammpsData
    types_map : dict or None
        type (int) → element symbol (``types=`` / ``--types``); wins over everything else.

    Returns
    -------
    elements : dict
        type (int) → element symbol, for every type with a mass.
    sources : dict
        type (int) → ``"types="``, ``"Masses comment"`` or ``"nearest mass"``.

    Raises
    ------
    OptionError
        A type's mass is further than :data:`MASS_TOLERANCE` from every standard mass and neither
        ``types_map`` nor a comment names its element.
    """
    syms = list(MASSES)
    table = np.array([MASSES[s] for s in syms])
    out, src = {}, {}
    for ty, m in sorted(data.type_masses.items()):
        if types_map and ty in types_map:
            out[ty], src[ty] = normalize_symbol(types_map[ty]), "types="
        elif ty in data.type_labels:
            out[ty], src[ty] = data.type_labels[ty], "Masses comment"
        else:
            j = int(np.argmin(np.abs(table - m)))
            if abs(table[j] - m) > MASS_TOLERANCE:
                raise OptionError(f"{data.path}: the mass {m:g} of atom type {ty} matches no element (nearest "
                                  f"{syms[j]}, {table[j]:g} amu); name it in the Masses comment ('{ty} {m:g} # "
                                  f"El') or give types= / --types {ty}=El")
            out[ty], src[ty] = syms[j], "nearest mass"
    return out, src
