"""Crystal structures: reading (:mod:`~anionmotion.structures.io`), and the analyses that start from a
structure rather than a trajectory — framework screening and bond-valence energetics (papers 002 and 003)."""

from .io import DISORDER_POLICIES, STRUCTURE_FORMATS, Structure, load_structure, parse_supercell

__all__ = ["Structure", "load_structure", "parse_supercell", "DISORDER_POLICIES", "STRUCTURE_FORMATS",
           "screen_files", "screen_structure", "framework_polyhedra", "framework_connectivity", "bv_summary",
           "bvse_landscape", "migration_barriers"]

_LAZY = {"screen_files": "screen", "screen_structure": "screen", "framework_polyhedra": "framework",
         "framework_connectivity": "framework", "bv_summary": "bv", "bvse_landscape": "bv",
         "migration_barriers": "bv"}


def __getattr__(name):
    """Import the screening and bond-valence functions on first use (they need pymatgen/BVlain)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
