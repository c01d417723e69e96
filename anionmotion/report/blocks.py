"""The MSD of a large selection split into atom blocks that can run as separate (Dask) tasks.

:func:`msd_in_blocks` calls the public :func:`anionmotion.msd` once per block of
atoms (an index selection) and merges the blocks by their atom-weighted mean.
Every block sees the same frames, cell, framework and drift correction (the
framework of a block selection excludes the other cations of the mobile
species, exactly as for the whole selection), so the merged MSD equals the
whole-selection MSD up to floating-point summation order (≈1e-15 relative).
The merge runs in block order, so the result does not depend on where or in
which order the blocks were computed: a Dask run equals a serial run bit for bit.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import OptionError

__all__ = ["atom_blocks", "msd_in_blocks"]


def atom_blocks(indices, block_atoms):
    """Split ``indices`` (int array) into consecutive blocks of at most ``block_atoms`` atoms."""
    if block_atoms is None or int(block_atoms) < 1:
        raise OptionError(f"block_atoms must be a positive number of atoms; got {block_atoms!r}")
    idx = np.asarray(indices, dtype=np.int64)
    b = int(block_atoms)
    return [idx[i:i + b] for i in range(0, len(idx), b)]


def _block_task(args):
    """One block: open the trajectory (path) or use it (in-memory) and return its MSDResult."""
    source, reader_options, block, kwargs = args
    import anionmotion

    if isinstance(source, str):
        with anionmotion.open(source, **(reader_options or {})) as traj:
            return anionmotion.msd(traj, species=block, **kwargs)
    return anionmotion.msd(source, species=block, **kwargs)


def msd_in_blocks(source, *, species, block_atoms, reader_options=None, temperature=None, charge=None, drift=None,
                  mapper=None, progress=False, memory=None):
    """Exact all-origin MSD of ``species`` computed in atom blocks (each a separate task).

    Parameters
    ----------
    source : str or Trajectory
        A trajectory file (tasks open it themselves: needed for distributed workers) or a Trajectory
        (only with a local ``mapper``).
    species : str
        Mobile species, e.g. ``"Li"``.
    block_atoms : int
        Atoms per block.
    reader_options : dict, optional
        Keywords of :func:`anionmotion.open` when ``source`` is a path.
    temperature : float, optional, K
    charge : float, optional, e
        Default: the formal charge of ``species``.
    drift : bool, optional
        As :func:`anionmotion.msd` (None: its format-dependent default).
    mapper : callable, optional
        ``mapper(function, list) -> list`` in order (default the built-in ``map``); the batch runner passes
        one that submits Dask tasks.
    memory : int or str, optional
        Memory budget of each block task (each runs in its own worker under Dask); default the MSD's default.

    Returns
    -------
    MSDResult
        As :func:`anionmotion.msd` for the whole selection; ``meta["atom_blocks"]`` records the split.

    Notes
    -----
    MSD(τ) = Σ_k N_k MSD_k(τ) / Σ_k N_k (likewise the x, y, z parts and the TMSD), summed in block order.
    """
    import anionmotion
    from ..elements import ION_CHARGES
    from ..analysis.hops import nearest_neighbour_distance

    opened = None
    if isinstance(source, str):
        opened = anionmotion.open(source, **(reader_options or {}))
        traj = opened
    else:
        traj = source
    try:
        idx = traj.select(species)
        if len(idx) == 0:
            raise OptionError(f"the selection {species!r} is empty")
        blocks = atom_blocks(idx, block_atoms)
        if charge is None and isinstance(species, str) and species in ION_CHARGES:
            charge = float(ION_CHARGES[species])
        kwargs = {"temperature": temperature, "charge": charge, "drift": drift, "progress": progress,
                  "memory": memory}
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        task_source = source if isinstance(source, str) else traj
        args = [(task_source, reader_options, b, kwargs) for b in blocks]
        parts = list((mapper or map)(_block_task, args))
        n = np.array([len(b) for b in blocks], dtype=np.float64)
        N = float(n.sum())
        msd = sum(w * p.msd for w, p in zip(n, parts)) / N
        msd_xyz = sum(w * p.msd_xyz for w, p in zip(n, parts)) / N
        tmsd_xyz = sum(w * np.asarray(p.tmsd_xyz) for w, p in zip(n, parts)) / N
        first = parts[0]
        hop = None
        if len(idx) >= 2:
            dt = first.dt_ps
            nfr = 1 if not dt else max(1, int(round(1.0 / dt)))
            try:
                hop = nearest_neighbour_distance(traj, idx, start=0, frames=min(nfr, first.n_frames))
            except OptionError:
                hop = None
            if hop is not None and not hop > 0:
                hop = None
        tmsd = float(np.sum(tmsd_xyz))
        meta = dict(first.meta)
        meta["atom_blocks"] = {"block_atoms": int(block_atoms), "n_blocks": len(blocks),
                               "merge": "atom-weighted mean of the block MSDs, in block order"}
        from ..analysis.msd import TMSD_DIFFUSING_A2

        return dataclasses.replace(first, species=str(species), atom_indices=idx, msd=msd, msd_xyz=msd_xyz,
                                   tmsd=tmsd, tmsd_xyz=tmsd_xyz, diffusing=bool(tmsd >= TMSD_DIFFUSING_A2),
                                   hop_distance_A=hop, meta=meta)
    finally:
        if opened is not None:
            opened.close()
