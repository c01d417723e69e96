"""Crystal structures: reading (:mod:`~anionmotion.structures.io`), and the analyses that start from a
structure rather than a trajectory — framework screening and bond-valence energetics (papers 002 and 003)."""

from .io import DISORDER_POLICIES, STRUCTURE_FORMATS, Structure, load_structure, parse_supercell

__all__ = ["Structure", "load_structure", "parse_supercell", "DISORDER_POLICIES", "STRUCTURE_FORMATS"]
