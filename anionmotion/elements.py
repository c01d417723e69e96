"""Element data: standard atomic masses (amu) and common ionic charges (e).

Masses are IUPAC standard atomic weights as tabulated by MDTraj.  The charge
table holds the formal charge of the ions that appear in solid electrolytes;
it is used by the Nernst–Einstein conductivity and can always be overridden
(``charge=`` / ``--charge``).
"""

from __future__ import annotations

import numpy as np

from .errors import OptionError

__all__ = ["MASSES", "ION_CHARGES", "MOBILE_CATIONS", "ATOMIC_NUMBERS", "normalize_symbol", "mass_of", "masses_of",
           "ion_charge", "atomic_number", "symbol_of_z"]

MASSES = {
    "H": 1.0079, "D": 2.0136, "He": 4.0030, "Li": 6.9412, "Be": 9.0122, "B": 10.8117, "C": 12.0108,
    "N": 14.0067, "O": 15.9994, "F": 18.9984, "Ne": 20.1798, "Na": 22.9898, "Mg": 24.3051,
    "Al": 26.9815, "Si": 28.0855, "P": 30.9738, "S": 32.0655, "Cl": 35.4532, "Ar": 39.9481,
    "K": 39.0983, "Ca": 40.0784, "Sc": 44.9559, "Ti": 47.8671, "V": 50.9415, "Cr": 51.9962,
    "Mn": 54.9380, "Fe": 55.8452, "Co": 58.9332, "Ni": 58.6934, "Cu": 63.5463, "Zn": 65.4094,
    "Ga": 69.7231, "Ge": 72.6410, "As": 74.9216, "Se": 78.9630, "Br": 79.9041, "Kr": 83.7982,
    "Rb": 85.4678, "Sr": 87.6210, "Y": 88.9059, "Zr": 91.2242, "Nb": 92.9064, "Mo": 95.9420,
    "Tc": 98.0000, "Ru": 101.0720, "Rh": 102.9055, "Pd": 106.4210, "Ag": 107.8682, "Cd": 112.4118,
    "In": 114.8183, "Sn": 118.7107, "Sb": 121.7601, "Te": 127.6030, "I": 126.9045, "Xe": 131.2936,
    "Cs": 132.9055, "Ba": 137.3277, "La": 138.9055, "Ce": 140.1161, "Pr": 140.9077, "Nd": 144.2423,
    "Pm": 145.0000, "Sm": 150.3620, "Eu": 151.9641, "Gd": 157.2530, "Tb": 158.9254, "Dy": 162.5001,
    "Ho": 164.9303, "Er": 167.2593, "Tm": 168.9342, "Yb": 173.0430, "Lu": 174.9671, "Hf": 178.4920,
    "Ta": 180.9479, "W": 183.8410, "Re": 186.2071, "Os": 190.2330, "Ir": 192.2173, "Pt": 195.0849,
    "Au": 196.9666, "Hg": 200.5920, "Tl": 204.3833, "Pb": 207.2100, "Bi": 208.9804, "Po": 209.0000,
    "At": 210.0000, "Rn": 222.0180, "Fr": 223.0000, "Ra": 226.0000, "Ac": 227.0000, "Th": 232.0381,
    "Pa": 231.0359, "U": 238.0289, "Np": 237.0000, "Pu": 244.0000, "Am": 243.0000, "Cm": 247.0000,
    "Bk": 247.0000, "Cf": 251.0000, "Es": 252.0000, "Fm": 257.0000, "Md": 258.0000, "No": 259.0000,
    "Lr": 262.0000,
}

ION_CHARGES = {
    "H": 1, "Li": 1, "Na": 1, "K": 1, "Rb": 1, "Cs": 1, "Ag": 1, "Cu": 1, "Tl": 1,
    "Mg": 2, "Ca": 2, "Sr": 2, "Ba": 2, "Zn": 2, "Cd": 2, "Pb": 2,
    "Al": 3, "Ga": 3, "In": 3, "Sc": 3, "Y": 3, "La": 3,
    "F": -1, "Cl": -1, "Br": -1, "I": -1, "O": -2, "S": -2, "Se": -2, "Te": -2, "N": -3,
}
"""Formal ionic charges (e) of common mobile ions and simple anions."""

MOBILE_CATIONS = ("Li", "Na", "K", "Ag", "Cu", "Mg", "Zn", "Ca", "Rb", "Cs", "H")
"""Cations searched (in this order) when the mobile species is not given."""

_BY_UPPER = {k.upper(): k for k in MASSES}


def normalize_symbol(symbol: str) -> str:
    """Return the canonical capitalisation of an element symbol (``"LI"`` → ``"Li"``).

    Unknown symbols are returned stripped but otherwise unchanged.
    """
    s = str(symbol).strip()
    return _BY_UPPER.get(s.upper(), s)


def mass_of(symbol: str) -> float:
    """Standard atomic mass (amu) of an element; ValueError for an unknown symbol."""
    s = normalize_symbol(symbol)
    try:
        return MASSES[s]
    except KeyError:
        raise OptionError(f"unknown element {symbol!r}: no standard mass; give masses explicitly") from None


def masses_of(species) -> np.ndarray:
    """Masses (amu) for an array of element symbols; NaN for symbols that are not elements."""
    cache = {}
    out = np.empty(len(species), dtype=np.float64)
    for i, s in enumerate(species):
        if s not in cache:
            cache[s] = MASSES.get(normalize_symbol(s), np.nan)
        out[i] = cache[s]
    return out


def ion_charge(symbol: str) -> float:
    """Formal charge (e) of an ion from :data:`ION_CHARGES`; ValueError if not tabulated."""
    s = normalize_symbol(symbol)
    try:
        return float(ION_CHARGES[s])
    except KeyError:
        raise OptionError(f"no tabulated ionic charge for {symbol!r}; give it explicitly (charge= / --charge)") from None


ATOMIC_NUMBERS = {sym: z for z, sym in enumerate((k for k in MASSES if k != "D"), start=1)}
"""Atomic number of every element symbol (:data:`MASSES` is ordered by Z; deuterium is 1)."""
ATOMIC_NUMBERS["D"] = 1
_SYMBOL_OF_Z = {z: sym for sym, z in ATOMIC_NUMBERS.items() if sym != "D"}


def atomic_number(symbol) -> int:
    """Atomic number of an element symbol (any capitalisation); 0 for anything that is not an element."""
    return ATOMIC_NUMBERS.get(normalize_symbol(symbol), 0)


def symbol_of_z(z):
    """Element symbol of atomic number ``z``, or None when ``z`` is not 1–103."""
    return _SYMBOL_OF_Z.get(int(z))
