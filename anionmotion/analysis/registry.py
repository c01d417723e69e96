"""The one registry of trajectory analyses.

Everything that lists the analyses is generated from :data:`ANALYSES`: the
public API names of :mod:`anionmotion` (imported lazily), the CLI subcommands
(``anionmotion <cli> …``, in this order) and the stages of ``anionmotion
report`` (in this order: a stage may use the results of the stages before it).
Adding an analysis is: a kernel if needed, one module in
:mod:`anionmotion.analysis`, one CLI module, one report stage body, one entry
here, a docs page and tests — ``tests/test_registry.py`` checks that every
entry has all of them.

This module is plain data (no imports of the analysis modules), so
``import anionmotion`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AnalysisEntry", "ANALYSES", "UTILITY_COMMANDS", "entry", "cli_subcommands", "lazy_api", "stage_order"]


@dataclass(frozen=True)
class AnalysisEntry:
    """One analysis of the package.

    Attributes
    ----------
    name : str
        Registry key; also the report stage name (key in ``report.json["analyses"]``).
    title : str
        Human-readable title (report section heading).
    module : str
        Module implementing it.
    api : tuple of str
        Public names it defines (``anionmotion.<name>``), imported lazily from ``module``: the function the
        report and the CLI call first, then the analysis class (an
        :class:`~anionmotion.analysis.base.AnalysisBase` subclass) and the result class.
    cli : str
        CLI subcommand (module ``anionmotion.cli.<cli>``).
    docs : str
        Documentation page (relative to the repository root).
    needs : tuple of str
        Public names the report stage calls (its stage is ``unavailable`` when one is not importable).
    streams : str
        How it stays within the memory budget at any trajectory length (shown in ``docs/streaming.md``).
    """

    name: str
    title: str
    module: str
    api: tuple
    cli: str
    docs: str
    needs: tuple
    streams: str


ANALYSES = (
    AnalysisEntry("polyanions", "Polyanions and framework descriptors", "anionmotion.analysis.polyanions",
                  ("find_polyanions", "Polyanions"), "polyanions", "docs/polyanions.md", ("find_polyanions",),
                  "identification on one frame; the integrity check streams frame chunks and keeps only the first "
                  "departure of each ligand"),
    AnalysisEntry("diffusion", "MSD, diffusion coefficient, conductivity, TMSD", "anionmotion.analysis.msd",
                  ("msd", "MSD", "MSDResult"), "msd", "docs/diffusion.md", ("msd", "fit_diffusion", "conductivity"),
                  "exact FFT MSD over atom blocks; positions in memory when 1.5x fits the budget, otherwise an "
                  "atom-major scratch file (SeriesStore)"),
    AnalysisEntry("hops", "Cation hops and jump frequency", "anionmotion.analysis.hops",
                  ("hops", "Hops", "HopsResult"), "hops", "docs/diffusion.md", ("hops",),
                  "h(t) evaluated per chunk with a 2·m_hi-frame overlap; runs found online (open runs carried "
                  "across chunks)"),
    AnalysisEntry("reorientation", "Polyanion reorientation: C1…C4, rotor functions, orientation states, "
                                   "ν_rot/ν_hop, ρ(θ, φ)",
                  "anionmotion.analysis.reorientation", ("reorientation", "Reorientation", "ReorientationResult"), "reorient",
                  "docs/polyanions.md", ("find_polyanions", "reorientation"),
                  "exact FFT C1…C4 from a SeriesStore of unit vectors, rotor functions from a second store; events, "
                  "orientation states (counts only), ρ(θ, φ) and integrity online; per-frame angles to CSV"),
    AnalysisEntry("coupling", "Cation–polyanion coupling (paddle-wheel)", "anionmotion.analysis.coupling",
                  ("coupling", "Coupling", "CouplingResult"), "coupling", "docs/coupling.md", ("find_polyanions", "coupling"),
                  "residence events found online (only open events kept, Pearson sums merged exactly); "
                  "coincidence from a SeriesStore of per-frame anion angular displacements"),
    AnalysisEntry("timeline", "Timeline around a cation hop", "anionmotion.analysis.timeline",
                  ("timeline", "Timeline", "TimelineResult"), "timeline", "docs/coupling.md",
                  ("find_polyanions", "hops", "timeline"),
                  "only the windows around the selected hops are kept"),
    AnalysisEntry("vdos", "Vibrational density of states and band centres", "anionmotion.analysis.vdos",
                  ("vdos", "VDOS", "VDOSResult"), "vdos", "docs/spectra.md", ("vdos",),
                  "VACF from a SeriesStore of velocities (exact all-origin) or segment averages"),
    AnalysisEntry("libration", "Libration spectrum and overlap with the cation VDOS", "anionmotion.analysis.libration",
                  ("libration", "Libration", "LibrationResult"), "libration", "docs/spectra.md", ("find_polyanions", "libration"),
                  "angular-velocity ACF from a SeriesStore (exact all-origin)"),
    AnalysisEntry("density", "Cation probability density grid", "anionmotion.analysis.density",
                  ("density", "Density", "DensityResult"), "density", "docs/structure.md", ("density",),
                  "grid counts accumulated per chunk; grid size checked against the budget"),
    AnalysisEntry("rdf", "Radial distribution functions and free-energy profile", "anionmotion.analysis.rdf",
                  ("rdf", "RDF", "RDFResult"), "rdf", "docs/structure.md", ("rdf",),
                  "pair histograms accumulated per chunk with cell lists"),
    AnalysisEntry("sites", "Sites: occupancy, residence times, transitions, jumps", "anionmotion.analysis.sites",
                  ("sites", "Sites", "SitesResult"), "sites", "docs/sites.md", ("sites",),
                  "sites assigned per chunk; the debounce state, occupancy, residence histograms (fixed log bins) "
                  "and transition counts accumulated online; only the jumps within one collective window are kept"),
    AnalysisEntry("vanhove", "Van Hove functions and the non-Gaussian parameter α₂", "anionmotion.analysis.vanhove",
                  ("vanhove", "VanHove", "VanHoveResult"), "vanhove", "docs/vanhove.md", ("vanhove",),
                  "histograms from a window of the last max-lag frames (bounded by the largest lag, not by the run); "
                  "α₂ at every lag by FFT from a SeriesStore (exact all-origin, scratch file beyond the budget)"),
    AnalysisEntry("onsager", "Onsager coefficients, collective conductivity, Haven ratio, diffusion tensors",
                  "anionmotion.analysis.onsager", ("onsager", "Onsager", "OnsagerResult"), "onsager",
                  "docs/onsager.md", ("onsager",),
                  "positions of the groups in a SeriesStore (atom-major rows) read back in atom blocks for the MSD "
                  "tensors and the per-atom slopes; one collective 3-vector series per group, FFT per group pair"),
)
"""Every trajectory analysis, in report order."""

UTILITY_COMMANDS = {
    # name: (position, module) — subcommands that are not trajectory analyses
    "info": "first",
    "arrhenius": "after:hops",
    "md": "last",
    "report": "last",
    "compare": "last",
    "batch": "last",
    "screen": "last",
    "bv": "last",
}
"""CLI subcommands that are not analyses of one trajectory, with their place in the help listing."""


def entry(name) -> AnalysisEntry:
    """The registry entry called ``name`` (stage name or CLI subcommand)."""
    for e in ANALYSES:
        if name in (e.name, e.cli):
            return e
    raise KeyError(f"no analysis {name!r}; registered: {', '.join(e.name for e in ANALYSES)}")


def cli_subcommands() -> list:
    """CLI subcommand modules in help order: utilities placed around the analyses."""
    order = [n for n, where in UTILITY_COMMANDS.items() if where == "first"]
    for e in ANALYSES:
        order.append(e.cli)
        order += [n for n, where in UTILITY_COMMANDS.items() if where == f"after:{e.cli}"]
    order += [n for n, where in UTILITY_COMMANDS.items() if where == "last"]
    return order


def stage_order() -> list:
    """Report stage names in the order they run."""
    return [e.name for e in ANALYSES]


def lazy_api() -> dict:
    """Public name → module for every registered analysis (merged into :mod:`anionmotion`'s lazy imports)."""
    return {name: e.module for e in ANALYSES for name in e.api}
