"""Probability density of a species on a fractional grid and 1-D profiles along cell axes (SPEC §7).

:func:`density` (the :class:`Density` analysis) streams frames, wraps the (optionally drift-corrected)
positions of a species into fractional coordinates of each frame's own cell
(triclinic and NPT cells alike) and bins them with the compiled kernel.  The
grid is normalised to atoms per Å³; writers for CHGCAR, cube and NetCDF are in
:mod:`anionmotion.report.grids`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validate import check_int, check_number
from ..errors import OptionError
from ..kernels.grid import bin_axis, bin_fractional
from ..kernels.unwrap import cart_to_frac
from ..results import Result
from ._streaming import capped_chunk_frames, cell_stats, frame_blocks, run_frame_blocks
from .base import AnalysisBase, format_bytes

__all__ = ["density", "Density", "DensityResult", "grid_shape_for_spacing", "AXES"]

AXES = {"a": 0, "b": 1, "c": 2}


@dataclass(frozen=True)
class DensityResult(Result):
    """Time-averaged number density of one selection on a fractional grid.

    Attributes
    ----------
    density : ndarray, shape (nx, ny, nz), float64, Å⁻³
        ρ(voxel) = ⟨number of atoms in the voxel / voxel volume⟩ over frames.
        Voxel (i, j, k) spans s ∈ [i/nx, (i+1)/nx) × … of the cell.
    cell : ndarray, shape (3, 3), Å
        Time-averaged cell (rows a, b, c) the grid is drawn in.
    origin : ndarray, shape (3,), Å
        Cartesian position of the grid corner s = 0 (the cell origin).
    species : str
        Label of the binned selection.
    n_atoms : int
        Atoms in the selection (the grid integrates to this: Σ ρ V_voxel = N).
    n_frames : int
    profiles : dict of str -> dict
        Per cell axis ``"a"``, ``"b"``, ``"c"``: ``s`` (bin centres, fractional), ``x_A`` (s × axis
        length, Å) and ``p`` (probability density per unit of s, ∫ p ds = 1).
    structure : dict
        Atoms of the first analysed frame for the writers: ``species`` (list of str) and
        ``frac`` (n, 3) wrapped fractional coordinates.
    meta : dict
        Grid shape, spacing, frames, drift removal.
    """

    density: np.ndarray
    cell: np.ndarray
    origin: np.ndarray
    species: str
    n_atoms: int
    n_frames: int
    profiles: dict
    structure: dict
    meta: dict = field(default_factory=dict)

    @property
    def shape(self):
        return self.density.shape

    @property
    def volume(self) -> float:
        """Volume of the mean cell, Å³."""
        return float(abs(np.linalg.det(self.cell)))

    @property
    def voxel_volume(self) -> float:
        """Volume of one voxel of the mean cell, Å³."""
        return self.volume / self.density.size

    @property
    def occupancy(self) -> np.ndarray:
        """Mean number of atoms per voxel per frame (sums to ``n_atoms``)."""
        return self.density * self.voxel_volume

    def to_dict(self, include_grid: bool = False) -> dict:
        """JSON-compatible dict; the 3-D grid is left out unless ``include_grid`` (use the grid writers)."""
        if include_grid:
            return super().to_dict()
        import dataclasses

        from ..results import to_jsonable

        # every field but the 3-D grid (never converted to Python lists: 580³ floats would take ~10 GB)
        d = {f.name: (None if f.name == "density" else to_jsonable(getattr(self, f.name)))
             for f in dataclasses.fields(self)}
        if not include_grid:
            d["density"] = None
            d["grid_shape"] = list(self.density.shape)
            d["density_max_per_A3"] = float(self.density.max()) if self.density.size else None
        return d

    def summary(self) -> str:
        return (f"density of {self.species} ({self.n_atoms} atoms, {self.n_frames} frames) on a "
                f"{'×'.join(map(str, self.density.shape))} grid; voxel {self.voxel_volume:.4g} Å³; "
                f"mean {self.density.mean():.4g} Å⁻³, max {self.density.max():.4g} Å⁻³; "
                f"Σρ·V_voxel = {self.occupancy.sum():.6g}")

    def profile_csv(self, axis="c") -> str:
        """CSV of the 1-D distribution along a cell axis: s, x (Å), p(s)."""
        pr = self.profiles[_axis_name(axis)]
        rows = ["s,x_A,p_per_unit_s"] + [f"{s:.8g},{x:.8g},{p:.8g}" for s, x, p in zip(pr["s"], pr["x_A"], pr["p"])]
        return "\n".join(rows) + "\n"


def _axis_name(axis):
    if isinstance(axis, (int, np.integer)) and int(axis) in (0, 1, 2):
        return "abc"[int(axis)]
    if str(axis).lower() in AXES:
        return str(axis).lower()
    raise OptionError(f"invalid axis {axis!r}; choose one of a, b, c")


#: most bins of a 1-D profile (3 profiles of float64 and their coordinates: 10⁷ bins ≈ 0.5 GB)
MAX_PROFILE_BINS = 10 ** 7


def grid_shape_for_spacing(cell, spacing):
    """Grid points per axis so that the voxel edge along each cell vector is ≤ ``spacing`` Å."""
    if not (np.isfinite(spacing) and spacing > 0):
        raise OptionError(f"spacing must be a positive length in Å; got {spacing}")
    lengths = np.linalg.norm(np.asarray(cell, dtype=np.float64), axis=1)
    n = [float(np.ceil(L / spacing - 1e-9)) for L in lengths]
    if not all(np.isfinite(v) for v in n) or float(np.prod(np.maximum(n, 1.0))) > 2e8:
        raise OptionError(f"spacing {spacing:g} Å in a cell of {', '.join(f'{L:.4g}' for L in lengths)} Å gives "
                          f"{float(np.prod(np.maximum(n, 1.0))):.3g} grid points; use a larger spacing "
                          "(at most 2e8 points)")
    return tuple(int(max(1, v)) for v in n)


class _DensityAccumulator:
    """Counts of one block of frames: grid, 1-D profiles, Σ V and the frame count (picklable plan in, state out)."""

    def __init__(self, plan):
        self.plan = plan
        self.grid = np.zeros(plan["shape"])
        self.prof = [np.zeros(n) for n in plan["pbins"]]
        self.vol_sum = 0.0
        self.n = 0
        self.com0 = None

    def add(self, chunk):
        p = self.plan
        pos = chunk.positions[:, p["cols_sel"]] - chunk.origins[:, None, :]
        if p["cols_ref"] is not None:
            m_ref = p["m_ref"]
            com = np.einsum("tik,i->tk", chunk.positions[:, p["cols_ref"]], m_ref) / m_ref.sum()
            if self.com0 is None:
                self.com0 = com[0].copy()
            pos = pos - (com - self.com0)[:, None, :]
        frac = cart_to_frac(np.ascontiguousarray(pos), chunk.cells)
        del pos
        vols = chunk.volumes
        self.vol_sum += float(vols.sum())
        # constant cell: plain counts (exact in float64), normalised once at the end; NPT: 1/V_t per frame
        w = np.ones(chunk.n_frames) if p["constant_cell"] else 1.0 / vols
        bin_fractional(frac, weights=w, out=self.grid, use_ext=p["use_ext"])
        ones = np.ones(chunk.n_frames)
        for k in range(3):
            bin_axis(frac, k, weights=ones, out=self.prof[k], use_ext=p["use_ext"])
        self.n += chunk.n_frames

    def state(self):
        return {"grid": self.grid, "prof": self.prof, "vol_sum": self.vol_sum, "n": self.n}


class Density(AnalysisBase):
    """Streamed probability density on a fractional grid (the class behind :func:`density`; same parameters).

    Frames are binned chunk by chunk into one grid validated against the memory budget before it is
    allocated.  With a ``mapper`` the frames are split into blocks (``block_frames``) that run as separate
    tasks (each reading its own frames) and whose counts are summed in block order: the grid counts and
    the profiles are then identical to the serial pass (exact integer counts), and for changing (NPT) cells
    equal to rounding.
    """

    name = "density"
    needs_velocities = False

    def __init__(self, species, *, grid=None, spacing=None, profile_bins=None, remove_drift=None,
                 frames_per_chunk=None, mapper=None, source=None, block_frames=None, memory=None, progress=None,
                 use_ext=True):
        super().__init__(memory=memory, progress=progress, use_ext=use_ext)
        self.species_arg, self.grid_arg, self.spacing = species, grid, spacing
        self.profile_bins, self.remove_drift = profile_bins, remove_drift
        self.fixed_chunk = check_int(frames_per_chunk, "frames_per_chunk", minimum=1, allow_none=True)
        self.mapper, self.source, self.block_frames = mapper, source, block_frames

    def _atoms(self):
        return self.read_idx

    def _bytes_per_frame(self, n_atoms_read):
        # raw float32 + float64 positions, the selection's shifted copy and fractional coordinates
        return int(n_atoms_read) * 24 * 3 + len(self.sel) * 24 * 3

    def _chunk_frames(self):
        return self.fixed_chunk if self.fixed_chunk is not None else capped_chunk_frames(self)

    def _prepare(self):
        traj = self.traj
        species = self.species_arg
        sel = traj.select(species)
        if len(sel) == 0:
            raise OptionError("the selection is empty; nothing to bin")
        self.sel = sel
        self.label = species if isinstance(species, str) else " ".join(sorted(set(traj.species[sel])))
        grid, spacing = self.grid_arg, self.spacing
        if grid is not None and spacing is not None:
            raise OptionError("give either grid= or spacing=, not both")
        if grid is not None:
            bad = not isinstance(grid, (list, tuple, np.ndarray)) or len(grid) != 3
            if not bad:
                try:
                    grid = [check_int(n, "grid", minimum=1) for n in grid]
                except OptionError:
                    bad = True
            if bad:
                raise OptionError(f"grid must be three positive integers (points along a, b, c); got {grid!r}")
        if spacing is not None:
            try:
                spacing = check_number(spacing, "spacing", positive=True, unit="Å")
            except OptionError:
                raise OptionError(f"spacing must be a positive length in Å; got {spacing!r}") from None
        if self.profile_bins is not None:
            pb = check_int(self.profile_bins, "profile_bins", minimum=1)
            if pb > MAX_PROFILE_BINS:
                raise OptionError(f"profile_bins {pb} is more than {MAX_PROFILE_BINS:.0e} bins along one cell vector; "
                                  "use fewer")
        with self._phase(self.n_frames, "cells", unit="frame") as bar:
            self.mean_cell, self.constant_cell, _ = cell_stats(traj, self.frame_range)
            bar.update(self.n_frames)
        if grid is not None:
            shape = tuple(int(n) for n in grid)
            self.grid_arg = shape
        else:
            shape = grid_shape_for_spacing(self.mean_cell, 0.2 if spacing is None else spacing)
        n_points = np.prod(shape, dtype=np.float64)
        if n_points > 2e8:
            raise OptionError(f"grid {shape} has {n_points:.3g} points; use a coarser grid "
                              "or spacing (at most 2e8 points)")
        self.shape = shape
        self.pbins = [int(self.profile_bins) if self.profile_bins is not None else n for n in shape]
        ref = None
        if self.remove_drift is not None:
            if isinstance(self.remove_drift, str) and self.remove_drift == "framework":
                ref = np.setdiff1d(np.arange(traj.n_atoms), sel)
            else:
                ref = traj.select(self.remove_drift)
            if len(ref) == 0:
                raise OptionError("remove_drift selects no atoms; nothing to take the drift from")
        self.ref = ref
        self.read_idx = sel if ref is None else np.union1d(sel, ref)
        self.needs_unwrap = ref is not None  # the drift needs continuous framework positions
        # blocks: with a mapper (and no drift, which needs the framework unwrapped from the first frame)
        self.use_blocks = self.mapper is not None and ref is None
        grid_bytes = 8 * n_points
        fpc = self._chunk_frames()
        self.frames_per_chunk = fpc
        if self.use_blocks:
            bf = self.block_frames if self.block_frames is not None else max(fpc, -(-self.n_frames // 8))
            self.blocks = frame_blocks(self.frame_range, bf)
        else:
            self.blocks = None
        held = 2 + (len(self.blocks) if self.blocks else 0)  # accumulator, result, partial grids of a gathering mapper
        if grid_bytes * held > 0.5 * self.budget:
            raise OptionError(f"grid {'×'.join(map(str, shape))} needs {format_bytes(grid_bytes * held)} "
                              f"({held} copies of {format_bytes(grid_bytes)}), more than half the memory budget "
                              f"{format_bytes(self.budget)}; use a coarser grid/spacing or a larger memory= "
                              "(--memory)")
        self.plan = {"shape": shape, "pbins": self.pbins, "cols_sel": np.searchsorted(self.read_idx, sel),
                     "cols_ref": None if ref is None else np.searchsorted(self.read_idx, ref),
                     "m_ref": None if ref is None else traj.masses[ref], "constant_cell": self.constant_cell,
                     "use_ext": self.use_ext}
        self.acc = _DensityAccumulator(self.plan)

    def _iterate(self, desc="reading"):
        if not self.use_blocks:
            return super()._iterate(desc)
        source = self.source if self.source is not None else self.traj
        with self._phase(self.n_frames, f"{desc} ({len(self.blocks)} frame blocks)", unit="frame") as bar:
            for st in run_frame_blocks(_DensityAccumulator, self.plan, source, self.blocks,
                                       frames_per_chunk=self.frames_per_chunk, atoms=self.read_idx,
                                       unwrap=False, mapper=self.mapper, bar=bar):
                acc = self.acc
                acc.grid += st["grid"]
                for k in range(3):
                    acc.prof[k] += st["prof"][k]
                acc.vol_sum += st["vol_sum"]
                acc.n += st["n"]

    def _accumulate(self, chunk):
        self.acc.add(chunk)

    def _finish(self):
        traj, acc, n_frames = self.traj, self.acc, self.n_frames
        shape, pbins, sel = self.shape, self.pbins, self.sel
        n_vox = float(np.prod(shape))
        if self.constant_cell:
            vol = float(abs(np.linalg.det(traj.cells[self.frame_range.start])))
            grid_acc = acc.grid * (n_vox / vol / n_frames)
        else:
            grid_acc = acc.grid * (n_vox / n_frames)
        fr = self.frame_range
        first = traj.read(frames=slice(fr.start, fr.start + 1))
        sfrac = first.fractional(wrap=True)[0]
        lengths = np.linalg.norm(self.mean_cell, axis=1)
        profiles = {}
        for k, name in enumerate("abc"):
            nb = pbins[k]
            s = (np.arange(nb) + 0.5) / nb
            profiles[name] = {"s": s, "x_A": s * lengths[k], "p": acc.prof[k] * nb / (len(sel) * n_frames)}
        remove_drift, ref = self.remove_drift, self.ref
        meta = {
            "grid": list(shape),
            "spacing_A": None if self.grid_arg is not None else (0.2 if self.spacing is None else float(self.spacing)),
            "voxel_edges_A": (lengths / np.array(shape)).tolist(), "frames": [fr.start, fr.stop, fr.step],
            "normalisation": "atoms per Å³, each frame divided by its own voxel volume; Σ ρ V_voxel = N",
            "wrapped": "fractional coordinates of each frame's own cell, wrapped into [0, 1)",
            "remove_drift": (None if ref is None else
                             ("framework (all other atoms)" if isinstance(remove_drift, str)
                              and remove_drift == "framework" else str(remove_drift))),
            "mean_volume_A3": acc.vol_sum / n_frames, "profile_bins": pbins,
            "cell_changes": not self.constant_cell, "memory_bytes": int(self.budget),
            "frame_blocks": None if not self.blocks else len(self.blocks),
        }
        return DensityResult(density=grid_acc, cell=self.mean_cell,
                             origin=np.asarray(first.origins[0], dtype=np.float64), species=self.label,
                             n_atoms=int(len(sel)), n_frames=n_frames, profiles=profiles,
                             structure={"species": [str(s) for s in first.species], "frac": sfrac}, meta=meta)


def density(traj, species, *, grid=None, spacing=None, profile_bins=None, remove_drift=None, start=None, stop=None,
            step=None, frames_per_chunk=None, progress=None, memory=None, mapper=None, source=None,
            block_frames=None) -> DensityResult:
    """Probability density of a species on a 3-D fractional grid (SPEC §7).

    Parameters
    ----------
    traj : Trajectory
    species : str or selection
        Atoms to bin (``"Li"``; any :meth:`Trajectory.select` selection).
    grid : tuple of 3 int, optional
        Grid points along a, b, c.  Default: from ``spacing``.
    spacing : float, optional, Å
        Target voxel edge along each cell vector (default 0.2 Å when ``grid`` is not given).
    profile_bins : int, optional
        Bins of the 1-D profiles (default: the grid points along that axis).
    remove_drift : None, "framework" or selection
        Subtract the centre-of-mass displacement of these atoms since the first frame from every binned
        position before wrapping (``"framework"``: every atom not being binned).  Default: no correction.
    start, stop, step : int, optional
        Frame range.
    frames_per_chunk : int, optional
        Frames streamed at a time (default: from the memory budget).
    progress : bool, optional
        Progress bar of the reading pass.
    memory : str or int, optional
        Memory budget, e.g. ``"2GB"`` (default half of the available RAM); the grid (and the partial grids of
        a mapper) must fit half of it, checked before anything is allocated.
    mapper : callable, optional
        ``mapper(function, items) -> results`` (in order) running blocks of frames as separate tasks (e.g.
        Dask); merged in block order, equal to the serial result (counts exactly).  Not used with
        ``remove_drift`` (the drift needs the framework unwrapped continuously from the first frame).
    source : str or (str, dict), optional
        Path (and :func:`anionmotion.open` options) the block tasks open themselves, for process or remote
        workers; default the trajectory object (local workers).
    block_frames : int, optional
        Frames per block task (default an eighth of the run, at least one chunk).

    Returns
    -------
    DensityResult

    Notes
    -----
    ρ(v) = (1/n_frames) Σ_t c_t(v) / (V_t / n_voxels): the count c_t in each voxel of frame t's own cell,
    divided by that frame's voxel volume, so Σ_v ρ(v) V_voxel = N for a constant cell (NPT: the mean of
    N V̄/V_t with V̄ the volume of the mean cell).  The 1-D profile along axis k is
    p(s) = n_bins · (counts in slab) / (N · n_frames), with ∫_0^1 p ds = 1.

    References
    ----------
    SPEC §7; paper 000 Fig. 6a (Li distribution along c).
    """
    return Density(species, grid=grid, spacing=spacing, profile_bins=profile_bins, remove_drift=remove_drift,
                   frames_per_chunk=frames_per_chunk, mapper=mapper, source=source, block_frames=block_frames,
                   memory=memory, progress=progress).run(traj, start, stop, step)
