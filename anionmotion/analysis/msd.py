"""Mean-squared displacement of a selection, of any size (SPEC §2).

``msd(traj, species="Li")`` returns an :class:`MSDResult`: the exact
all-origin MSD (total and x, y, z), the TMSD with the paper-003 flags, and what
the diffusion fit and the conductivity need (volume, charge, temperature).

Paths
-----
* evenly spaced frames, selection fits the memory budget: the unwrapped
  positions are read once into one (n_frames, n_atoms, 3) array and the FFT
  kernel (:func:`anionmotion.kernels.msd.msd_fft`) runs over atom blocks;
* evenly spaced frames, selection larger than the budget: frame chunks are
  streamed into an atom-major float64 scratch file (n_atoms, 3, n_frames) in
  a temporary directory (deleted afterwards), and atom blocks are read back and
  transformed; peak memory is bounded by the budget, not by the trajectory's
  length, and the result is the same (the atoms are summed in the same order);
* frames at uneven times (log-spaced dumps): every frame pair, grouped by
  time difference (:func:`anionmotion.kernels.msd.msd_pairs`), O(N·T²).

Drift correction subtracts the centre-of-mass displacement of the framework
(every atom that is neither selected nor a mobile cation species) from each
selected atom; it is on by default for ab-initio style input (formats
``xdatcar`` and ``cp2k``, whose thermostats let the whole cell drift) and off
otherwise, and the choice is recorded in ``meta``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .._validate import parse_memory
from ..elements import ION_CHARGES, MOBILE_CATIONS, ion_charge
from ..errors import OptionError
from ..kernels.msd import (MSDAccumulator, lag_keys, msd_fft, msd_pairs, subtract_drift_am_ref,
                           workspace_bytes_per_atom)
from ..kernels import msd as _kmsd
from ..results import Result, to_jsonable

__all__ = ["msd", "MSD", "MSDResult", "DRIFT_FORMATS", "TMSD_DIFFUSING_A2", "TMSD_MELTING_A2", "default_memory"]

DRIFT_FORMATS = ("xdatcar", "cp2k")
"""Reader formats (ab-initio MD) for which drift correction is on by default."""
TMSD_DIFFUSING_A2 = 5.0
"""Paper 003: TMSD of the mobile species ≥ 5 Å² = diffusing."""
TMSD_MELTING_A2 = 2.0
"""Paper 003: TMSD of the non-mobile cations > 2 Å² = framework melting."""


def default_memory() -> int:
    """Default memory budget: half of the memory currently available (bytes), at least 256 MiB."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 4 * 1024**3
    return max(256 * 1024**2, avail // 2)


@dataclass(frozen=True, repr=False)
class MSDResult(Result):
    """All-origin MSD of a selection (SPEC §2).

    Attributes
    ----------
    species : str
        The selected species (``"Li"``), or ``"selection"``.
    atom_indices : ndarray, shape (n_atoms,), int64
        Trajectory indices of the selected atoms.
    n_frames : int
        Frames analysed.
    lag : ndarray, shape (n_lags,), float64, ps
        Lag times (0 first).  Evenly spaced frames: m·dt, m = 0 … n_frames − 1.
    msd : ndarray, shape (n_lags,), float64, Å²
        MSD averaged over atoms and every origin.
    msd_xyz : ndarray, shape (n_lags, 3), float64, Å²
        x, y, z parts (Cartesian).
    n_origins : ndarray, shape (n_lags,), int64
        Origins (frame pairs) averaged at each lag.
    tmsd : float, Å²
        Single-origin |r(T_end) − r(0)|² averaged over the selection (paper 003).
    tmsd_xyz : ndarray, shape (3,), Å²
    diffusing : bool
        tmsd ≥ 5 Å² (paper 003).
    framework_tmsd : float or None, Å²
        TMSD of the non-mobile cations (None when there are none).
    framework_melting : bool or None
        framework_tmsd > 2 Å² (paper 003).
    volume_A3 : float, Å³
        Time-averaged cell volume over the analysed frames.
    temperature_K : float or None, K
        Given, or from the trajectory's metadata.
    charge : float or None, e
        Charge of one selected ion (given, or the formal charge of the species).
    dt_ps : float or None, ps
        Frame spacing (None when uneven).
    drift : ndarray, shape (n_frames, 3), Å, or None
        Framework centre-of-mass displacement that was subtracted.
    charge_msd : ndarray, shape (n_lags,), e²·Å², or None
        MSD of the total charge displacement Σ_j q_j Δr_j (collective; only when asked).
    charge_msd_xyz : ndarray, shape (n_lags, 3), e²·Å², or None
    hop_distance_A : float or None, Å
        Median nearest-neighbour distance of the selection (used for the He et al. estimate).
    meta : dict
        Path taken, drift choice and reason, memory, species of the framework, …
    """

    species: str
    atom_indices: np.ndarray
    n_frames: int
    lag: np.ndarray
    msd: np.ndarray
    msd_xyz: np.ndarray
    n_origins: np.ndarray
    tmsd: float
    tmsd_xyz: np.ndarray
    diffusing: bool
    framework_tmsd: Optional[float]
    framework_melting: Optional[bool]
    volume_A3: float
    temperature_K: Optional[float]
    charge: Optional[float]
    dt_ps: Optional[float]
    drift: Optional[np.ndarray] = None
    charge_msd: Optional[np.ndarray] = None
    charge_msd_xyz: Optional[np.ndarray] = None
    hop_distance_A: Optional[float] = None
    meta: dict = field(default_factory=dict)

    @property
    def n_atoms(self) -> int:
        return int(len(self.atom_indices))

    @property
    def uniform(self) -> bool:
        return self.dt_ps is not None

    def to_dict(self) -> dict:
        """JSON-ready dict with the key names the report helpers consume."""
        return to_jsonable({
            "species": self.species,
            "n_atoms": self.n_atoms,
            "n_frames": self.n_frames,
            "temperature_K": self.temperature_K,
            "dt_ps": self.dt_ps,
            "volume_A3": self.volume_A3,
            "charge": self.charge,
            "lag_ps": self.lag,
            "msd_A2": self.msd,
            "msd_xyz_A2": self.msd_xyz,
            "n_origins": self.n_origins,
            "tmsd_A2": self.tmsd,
            "tmsd_xyz_A2": self.tmsd_xyz,
            "diffusing": self.diffusing,
            "framework_tmsd_A2": self.framework_tmsd,
            "framework_melting": self.framework_melting,
            "hop_distance_A": self.hop_distance_A,
            "drift_corrected": self.drift is not None,
            "charge_msd_e2A2": self.charge_msd,
            "charge_msd_xyz_e2A2": self.charge_msd_xyz,
            "atom_indices": self.atom_indices,
            "meta": self.meta,
        })

    def summary(self) -> str:
        m = self.meta
        lines = [
            f"MSD of {self.species}: {self.n_atoms} atoms, {self.n_frames} frames"
            + (f", dt {self.dt_ps:g} ps" if self.dt_ps else ", uneven frame spacing"),
            f"path         {m.get('path')}",
            f"drift        {'framework centre of mass subtracted' if self.drift is not None else 'not corrected'} "
            f"({m.get('drift_reason')})",
            f"TMSD         {self.tmsd:.6g} Å² → {'diffusing' if self.diffusing else 'not diffusing'} "
            f"(threshold {TMSD_DIFFUSING_A2:g} Å², paper 003)",
        ]
        if self.framework_tmsd is not None:
            lines.append(f"framework    TMSD {self.framework_tmsd:.6g} Å² of {', '.join(m.get('framework_cations', []))}"
                         f" → {'MELTING' if self.framework_melting else 'intact'} (threshold {TMSD_MELTING_A2:g} Å²)")
        if len(self.lag) > 1:
            lines.append(f"MSD at {self.lag[-1]:.6g} ps: {self.msd[-1]:.6g} Å²")
        return "\n".join(lines)

    def __repr__(self):
        return (f"MSDResult(species={self.species!r}, n_atoms={self.n_atoms}, n_frames={self.n_frames}, "
                f"tmsd={self.tmsd:.4g})")


def _charges_for(traj, charges):
    """Per-atom charges (e) for the collective conductivity."""
    if isinstance(charges, str):
        if charges == "trajectory":
            if traj.charges is None:
                raise OptionError(f"{traj.path}: the trajectory carries no charges; use charges='formal' or give "
                                  "charges per species (e.g. {'Li': 1, 'P': 5, 'S': -2, 'Cl': -1})")
            return np.asarray(traj.charges, dtype=np.float64)
        if charges == "formal":
            return np.array([ion_charge(s) for s in traj.species], dtype=np.float64)
        raise OptionError(f"invalid charges {charges!r}; choose one of trajectory, formal, or a dict species → charge")
    if isinstance(charges, dict):
        table = {str(k): float(v) for k, v in charges.items()}
        missing = sorted(set(traj.species) - set(table))
        if missing:
            raise OptionError(f"charges: no charge given for species {', '.join(missing)}")
        return np.array([table[s] for s in traj.species], dtype=np.float64)
    raise OptionError(f"invalid charges {charges!r}; choose one of trajectory, formal, or a dict species → charge")


class MSD:
    """Analysis object: exact all-origin MSD of a selection, in bounded memory (SPEC §2).

    Parameters
    ----------
    species : str or selection
        Mobile species (``"Li"``) or any selection of :meth:`Trajectory.select`.
    drift : bool or None
        Subtract the framework's centre-of-mass displacement.  None = on for
        formats ``xdatcar``/``cp2k`` (ab-initio MD), off otherwise.
    framework : selection, optional
        Atoms whose centre of mass defines the drift; default: every atom
        that is not selected and not of a mobile-cation species
        (:data:`anionmotion.elements.MOBILE_CATIONS`).
    framework_cations : sequence of str, optional
        Species whose TMSD gives the framework "melting" flag; default: the
        non-selected species that are neither mobile cations nor tabulated
        anions (e.g. P in Li6PS5Cl, Nb in NaNbCl6).
    temperature : float, optional, K
        Default: ``trajectory.metadata["temperature"]`` when the file records it.
    charge : float, optional, e
        Charge of one selected ion; default: the formal charge of the species.
    collective : bool
        Also compute the MSD of the total charge displacement Σ_j q_j Δr_j.
    charges : "trajectory", "formal" or dict
        Charges for ``collective``: from the file, the formal ionic charges, or per species.
    memory : int or str, optional
        Memory budget (``"2GB"``); default half of the available RAM.
    mode : {"auto", "memory", "out-of-core"}
        ``auto`` keeps the selection in memory when 1.5 × its float64
        positions fit the budget and streams it through a scratch file
        otherwise; the other two force a path (same results).
    scratch_dir : str, optional
        Where the out-of-core scratch file goes (default: the system temp dir).
    workers : int
        Threads for scipy.fft.
    progress : bool, optional
        Progress bar over the whole job (None = the trajectory's setting).
    """

    def __init__(self, species, *, drift=None, framework=None, framework_cations=None, temperature=None, charge=None,
                 collective=False, charges="trajectory", memory=None, mode="auto", scratch_dir=None, workers=2,
                 progress=None, use_ext=True):
        self.species = species
        self.drift = drift
        self.framework = framework
        self.framework_cations = framework_cations
        self.temperature = temperature
        self.charge = charge
        self.collective = collective
        self.charges = charges
        self.memory = memory
        if mode not in ("auto", "memory", "out-of-core"):
            raise OptionError(f"invalid mode {mode!r}; choose one of auto, memory, out-of-core")
        self.mode = mode
        self.scratch_dir = scratch_dir
        self.workers = workers
        self.progress = progress
        self.use_ext = use_ext

    def __repr__(self):
        return (f"MSD(species={self.species!r}, drift={self.drift!r}, framework={self.framework!r}, "
                f"framework_cations={self.framework_cations!r}, temperature={self.temperature!r}, "
                f"charge={self.charge!r}, collective={self.collective!r}, charges={self.charges!r}, "
                f"memory={self.memory!r}, mode={self.mode!r}, scratch_dir={self.scratch_dir!r}, workers={self.workers!r}, "
                f"progress={self.progress!r})")

    # ------------------------------------------------------------------ setup
    def _prepare(self, traj, start, stop, step):
        meta = {}
        self._traj = traj
        self._idx = traj.select(self.species)
        if len(self._idx) == 0:
            raise OptionError(f"the selection {self.species!r} is empty")
        fstart, fstop, fstep = traj._frame_range(None, start, stop, step)
        self._range = (fstart, fstop, fstep)
        self._frames = np.arange(fstart, fstop, fstep, dtype=np.int64)
        T = len(self._frames)
        if T == 0:
            raise OptionError(f"no frames in the range start={start}, stop={stop}, step={step} "
                              f"({traj.n_frames} frames)")
        self._times = traj.times[self._frames]
        dts = np.diff(self._times)
        if T < 3:
            self._uniform = True
        else:
            self._uniform = bool(np.all(np.abs(dts - dts[0]) <= 1e-6 * abs(dts[0])))
        self._dt = (float(np.mean(dts)) if T > 1 else None) if self._uniform else None
        sel_species = sorted(set(traj.species[self._idx]))
        others = np.setdiff1d(np.arange(traj.n_atoms), self._idx)
        # drift
        if self.framework is not None:
            fw = traj.select(self.framework)
        else:
            fw = others[~np.isin(traj.species[others], MOBILE_CATIONS)]
        if self.drift is None:
            want_drift = traj.format in DRIFT_FORMATS
            reason = (f"default for {traj.format} (ab-initio MD) input" if want_drift
                      else f"default off for {traj.format} input")
        else:
            want_drift = bool(self.drift)
            reason = "requested" if want_drift else "switched off"
        if want_drift and len(fw) == 0:
            if self.drift:
                raise OptionError("drift correction needs framework atoms (atoms that are not selected and not mobile "
                                  "cations); none found — give framework= or drift=False")
            want_drift, reason = False, "no framework atoms to define the drift"
        if want_drift and not np.all(np.isfinite(traj.masses[fw])):
            bad = sorted(set(traj.species[fw][~np.isfinite(traj.masses[fw])]))
            raise OptionError(f"drift correction needs the masses of the framework atoms; unknown for {', '.join(bad)}")
        self._want_drift = want_drift
        self._fw = fw if want_drift else np.zeros(0, np.int64)
        meta["drift_reason"] = reason
        meta["framework_species"] = sorted(set(traj.species[fw])) if want_drift else []
        # framework cations (melting flag)
        if self.framework_cations is not None:
            fc_species = [str(s) for s in ([self.framework_cations] if isinstance(self.framework_cations, str)
                                           else self.framework_cations)]
            fc = others[np.isin(traj.species[others], fc_species)]
        else:
            anions = [s for s, q in ION_CHARGES.items() if q < 0]
            fc = others[~np.isin(traj.species[others], list(MOBILE_CATIONS) + anions)]
        self._fc = fc
        meta["framework_cations"] = sorted(set(traj.species[fc]))
        # collective
        if self.collective:
            q = _charges_for(traj, self.charges)
            self._q_all = q
            self._qidx = np.nonzero(q != 0)[0]
            meta["charges"] = self.charges if isinstance(self.charges, str) else "per species"
            meta["total_charge_e"] = float(q.sum())
        else:
            self._qidx = np.zeros(0, np.int64)
        # atoms to read in the single pass
        self._read = np.union1d(np.union1d(self._idx, self._fw), np.union1d(self._fc, self._qidx)).astype(np.int64)
        self._col_sel = np.searchsorted(self._read, self._idx)
        self._col_fw = np.searchsorted(self._read, self._fw)
        self._col_fc = np.searchsorted(self._read, self._fc)
        self._col_q = np.searchsorted(self._read, self._qidx)
        # memory plan
        N = len(self._idx)
        budget = default_memory() if self.memory is None else parse_memory(self.memory)
        self._budget = budget
        sel_bytes = T * N * 24
        per_frame_read = len(self._read) * 24 * 4  # raw + unwrapped + selection copy + transposed copy
        self._fpc = int(max(1, min(T, (budget // 4) // max(per_frame_read, 1))))
        if self._uniform:
            ws_atom = workspace_bytes_per_atom(T)
            fits = 1.5 * sel_bytes + per_frame_read * self._fpc <= budget
            if self.mode == "memory" or (self.mode == "auto" and fits):
                self._path = "memory"
                ws = max(ws_atom, min(_kmsd.DEFAULT_WORKSPACE, max(int(0.4 * sel_bytes), 8 * 1024**2)))
                self._block = int(max(1, min(N, ws // ws_atom)))
            else:
                self._path = "out-of-core"
                per_atom = ws_atom + 24 * T  # FFT workspace + the block read back from the scratch file
                avail = budget - per_frame_read * self._fpc
                self._block = int(min(N, avail // per_atom))
                if self._block < 1:
                    raise OptionError(f"memory budget of {_fmt_bytes(budget)} is too small for {T} frames: one atom's "
                                      f"FFT needs {_fmt_bytes(per_atom)}; give at least "
                                      f"{_fmt_bytes(int(per_atom * 4 / 3) + per_frame_read)} (memory= / --memory)")
        else:
            fits = 1.5 * sel_bytes <= budget
            in_mem = self.mode == "memory" or (self.mode == "auto" and fits)
            self._path = "pairs (uneven frame spacing)" if in_mem else "pairs, out-of-core"
            self._block = int(max(1, min(N, (budget // 4) // max(24 * T, 1))))
        meta.update({"path": self._path, "memory_budget_bytes": int(budget), "frames_per_chunk": self._fpc,
                     "atoms_per_block": self._block, "selected_species": sel_species})
        self._meta = meta

    # ------------------------------------------------------------------ pass
    def _progress_bar(self, total):
        enabled = self.progress if self.progress is not None else self._traj.progress
        if enabled is False:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover
            return None
        return tqdm(total=total, desc=f"msd {self.species}", unit="step", disable=None if enabled is None else not enabled,
                    file=sys.stderr, leave=False, dynamic_ncols=True)

    def _stream(self, sink, pbar):
        """One pass over the frames: positions of the selection go to ``sink(t0, pos)``; framework COM etc."""
        traj, (fstart, fstop, fstep) = self._traj, self._range
        T = len(self._frames)
        self._com = np.zeros((T, 3)) if self._want_drift else None
        self._P = np.zeros((T, 3)) if self.collective else None
        self._fc_first = self._fc_last = None
        self._vol_sum = 0.0
        if self._want_drift:
            mw = traj.masses[self._fw]
            mw = mw / mw.sum()
        if self.collective:
            qv = self._q_all[self._qidx]
        t0 = 0
        for chunk in traj.iter_chunks(self._fpc, atoms=self._read, start=fstart, stop=fstop, step=fstep,
                                      progress=False):
            p = chunk.positions
            n = p.shape[0]
            sink(t0, p[:, self._col_sel] if len(self._col_sel) != len(self._read) else p)
            if self._want_drift:
                self._com[t0:t0 + n] = np.einsum("tik,i->tk", p[:, self._col_fw], mw)
            if self.collective:
                self._P[t0:t0 + n] = np.einsum("tik,i->tk", p[:, self._col_q], qv)
            if len(self._fc):
                if self._fc_first is None:
                    self._fc_first = p[0, self._col_fc].copy()
                self._fc_last = p[-1, self._col_fc].copy()
            self._vol_sum += float(chunk.volumes.sum())
            t0 += n
            if pbar is not None:
                pbar.update(n)
        if t0 != T:  # pragma: no cover - reader contract
            raise OptionError(f"read {t0} frames, expected {T}")

    # ---------------------------------------------------------------- compute
    def run(self, traj, start=None, stop=None, step=None) -> MSDResult:
        """Compute the MSD of the selection over frames ``start:stop:step``."""
        self._prepare(traj, start, stop, step)
        T, N = len(self._frames), len(self._idx)
        pbar = self._progress_bar(T + N)
        try:
            if self._path == "memory" or self._path.startswith("pairs (uneven"):
                pos = np.empty((T, N, 3))

                def sink(t0, p):
                    pos[t0:t0 + p.shape[0]] = p

                self._stream(sink, pbar)
                drift = self._drift()
                if self._uniform:
                    acc = MSDAccumulator(T, self._block, workers=self.workers, use_ext=self.use_ext)
                    for a0 in range(0, N, self._block):
                        nb = min(self._block, N - a0)
                        acc.add_time_major(pos, a0, nb, drift)
                        if pbar is not None:
                            pbar.update(nb)
                    msd_tot, msd_xyz, tmsd_xyz = acc.finish()
                    lag = np.arange(T) * (self._dt or 0.0)
                    n_orig = (T - np.arange(T)).astype(np.int64)
                else:
                    if drift is not None:
                        pos -= drift[:, None, :]
                    lag, msd_tot, msd_xyz, n_orig = msd_pairs(pos, self._times, use_ext=self.use_ext)
                    tmsd_xyz = ((pos[-1] - pos[0]) ** 2).mean(axis=0)
                    if pbar is not None:
                        pbar.update(N)
                del pos
            else:
                msd_tot, msd_xyz, tmsd_xyz, lag, n_orig = self._run_out_of_core(pbar)
        finally:
            if pbar is not None:
                pbar.close()
        return self._finish(lag, msd_tot, msd_xyz, n_orig, tmsd_xyz)

    def _drift(self):
        if not self._want_drift:
            return None
        return np.ascontiguousarray(self._com - self._com[0])

    def _run_out_of_core(self, pbar):
        T, N = len(self._frames), len(self._idx)
        tmpdir = tempfile.mkdtemp(prefix="anionmotion-msd-", dir=self.scratch_dir)
        path = os.path.join(tmpdir, "positions_atom_major.f64")
        self._meta["scratch_file_bytes"] = int(T * N * 24)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.ftruncate(fd, T * N * 24)

                def sink(t0, p):
                    # (n, N, 3) -> rows (atom, direction) of n frames at offset t0 in each row of length T
                    rows = np.ascontiguousarray(p.transpose(1, 2, 0)).reshape(3 * N, p.shape[0])
                    for r in range(3 * N):
                        os.pwrite(fd, memoryview(rows[r]), (r * T + t0) * 8)

                self._stream(sink, pbar)
                drift = self._drift()
                if self._uniform:
                    acc = MSDAccumulator(T, self._block, workers=self.workers, use_ext=self.use_ext)
                    sub = _kmsd._msd.subtract_drift_am if self.use_ext else subtract_drift_am_ref
                else:
                    keys, quantum = lag_keys(self._times)
                    accp = np.zeros((len(keys), 3))
                    count = np.zeros(len(keys), dtype=np.int64)
                    tm = np.zeros(3)
                for a0 in range(0, N, self._block):
                    nb = min(self._block, N - a0)
                    block = _read_rows(fd, a0 * 3 * T, nb * 3 * T).reshape(nb, 3, T)
                    if self._uniform:
                        if drift is not None:
                            sub(block, drift, 0)
                        acc.add_atom_major(block)
                    else:
                        p = np.ascontiguousarray(block.transpose(2, 0, 1))
                        if drift is not None:
                            p -= drift[:, None, :]
                        c2 = np.zeros(len(keys), dtype=np.int64)
                        (_kmsd._msd.msd_pairs if self.use_ext else _kmsd.msd_pairs_ref)(
                            p, self._times, keys, quantum, accp, c2)
                        count = c2
                        tm += ((p[-1] - p[0]) ** 2).sum(axis=0)
                    del block
                    if pbar is not None:
                        pbar.update(nb)
            finally:
                os.close(fd)
        finally:
            if os.path.exists(path):
                os.unlink(path)
            os.rmdir(tmpdir)
        if self._uniform:
            msd_tot, msd_xyz, tmsd_xyz = acc.finish()
            return msd_tot, msd_xyz, tmsd_xyz, np.arange(T) * (self._dt or 0.0), (T - np.arange(T)).astype(np.int64)
        msd_xyz = accp / (np.maximum(count, 1) * N)[:, None]
        return msd_xyz.sum(axis=1), msd_xyz, tm / N, keys * quantum, count

    def _finish(self, lag, msd_tot, msd_xyz, n_orig, tmsd_xyz):
        traj = self._traj
        T = len(self._frames)
        meta = self._meta
        # framework melting
        fw_tmsd = fw_melt = None
        if len(self._fc) and self._fc_first is not None:
            d = self._fc_last - self._fc_first
            if self._want_drift:
                d = d - (self._com[-1] - self._com[0])
            fw_tmsd = float((d ** 2).sum(axis=1).mean())
            fw_melt = bool(fw_tmsd > TMSD_MELTING_A2)
        # temperature and charge
        temperature = self.temperature
        if temperature is None:
            tmeta = traj.metadata.get("temperature", traj.metadata.get("temperature_K"))
            if tmeta is not None:
                temperature = float(tmeta)
                meta["temperature_source"] = "trajectory metadata"
        else:
            meta["temperature_source"] = "given"
        if temperature is not None and not (np.isfinite(temperature) and temperature > 0):
            raise OptionError(f"temperature must be positive (K); got {temperature!r}")
        sp = sorted(set(traj.species[self._idx]))
        charge = self.charge
        if charge is None and len(sp) == 1 and sp[0] in ION_CHARGES:
            charge = float(ION_CHARGES[sp[0]])
            meta["charge_source"] = "formal ionic charge (anionmotion.elements.ION_CHARGES)"
        elif charge is not None:
            charge = float(charge)
            meta["charge_source"] = "given"
        # collective charge MSD
        cm = cmx = None
        if self.collective:
            P = np.ascontiguousarray(self._P[:, None, :])
            if self._uniform:
                cm, cmx = msd_fft(P, workers=self.workers, use_ext=self.use_ext)
            else:
                _, cm, cmx, _ = msd_pairs(P, self._times, use_ext=self.use_ext)
        # hop distance for the He et al. estimate
        hop = None
        if len(self._idx) >= 2:
            from .hops import nearest_neighbour_distance

            nfr = 1 if not self._dt else max(1, int(round(1.0 / self._dt)))
            try:
                hop = nearest_neighbour_distance(traj, self._idx, start=self._range[0], frames=min(nfr, T))
            except OptionError:
                hop = None
            if hop is not None and not hop > 0:
                hop = None
        meta["hop_distance_rule"] = ("median nearest-neighbour distance of the selection, sites averaged over the "
                                     "first ps (minimum image)")
        tmsd = float(np.sum(tmsd_xyz))
        return MSDResult(
            species=str(self.species) if isinstance(self.species, str) else "selection",
            atom_indices=self._idx, n_frames=T, lag=np.asarray(lag, dtype=np.float64), msd=msd_tot, msd_xyz=msd_xyz,
            n_origins=np.asarray(n_orig, dtype=np.int64), tmsd=tmsd, tmsd_xyz=np.asarray(tmsd_xyz),
            diffusing=bool(tmsd >= TMSD_DIFFUSING_A2), framework_tmsd=fw_tmsd, framework_melting=fw_melt,
            volume_A3=self._vol_sum / T, temperature_K=temperature, charge=charge, dt_ps=self._dt,
            drift=self._drift(), charge_msd=cm, charge_msd_xyz=cmx, hop_distance_A=hop, meta=meta)


def _fmt_bytes(n):
    for unit, f in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= f:
            return f"{n / f:.3g} {unit}"
    return f"{int(n)} bytes"


def _read_rows(fd, offset_items, count):
    """Read ``count`` float64 values at item offset ``offset_items`` of the scratch file."""
    out = np.empty(count, dtype=np.float64)
    view = memoryview(out).cast("B")
    pos, off = 0, offset_items * 8
    while pos < len(view):
        n = os.preadv(fd, [view[pos:]], off + pos)
        if n <= 0:  # pragma: no cover
            raise OSError("short read from the MSD scratch file")
        pos += n
    return out


def msd(traj, *, species, drift=None, framework=None, framework_cations=None, temperature=None, charge=None,
        collective=False, charges="trajectory", start=None, stop=None, step=None, memory=None, mode="auto",
        scratch_dir=None, workers=2, progress=None) -> MSDResult:
    """Exact all-origin MSD of ``species`` (SPEC §2), in memory or out of core.

    Parameters
    ----------
    traj : Trajectory
    species : str or selection
        Mobile species, e.g. ``"Li"``.
    drift : bool or None
        Subtract the framework centre-of-mass displacement; None = on for
        XDATCAR/CP2K input (ab-initio MD), off otherwise.
    framework, framework_cations, temperature, charge, collective, charges, memory, mode, scratch_dir, workers, progress :
        See :class:`MSD`.
    start, stop, step : int, optional
        Frame range.

    Returns
    -------
    MSDResult

    Notes
    -----
    MSD(τ) = (1/N) Σ_i ⟨|r_i(t+τ) − r_i(t)|²⟩_t over every origin t.  Evenly
    spaced frames: FFT, O(N·T log T); uneven frames: every frame pair grouped
    by time difference, O(N·T²).  Peak memory: 1.5 × the selection's float64
    positions in memory mode (plus a bounded FFT workspace); otherwise the
    ``memory`` budget, with a scratch file of 24·N·T bytes on disk.

    References
    ----------
    SPEC §2; paper 003 (TMSD thresholds).

    Examples
    --------
    >>> import numpy as np, anionmotion
    >>> pos = np.zeros((5, 1, 3)); pos[:, 0, 0] = 0.5 * np.arange(5)   # v = 5 Å/ps, dt = 0.1 ps
    >>> res = anionmotion.msd(anionmotion.from_arrays(pos, np.eye(3) * 10, species=["Li"], frame_interval=0.1),
    ...                       species="Li")
    >>> np.round(res.msd, 10).tolist()
    [0.0, 0.25, 1.0, 2.25, 4.0]
    """
    return MSD(species, drift=drift, framework=framework, framework_cations=framework_cations,
               temperature=temperature, charge=charge, collective=collective, charges=charges, memory=memory,
               mode=mode, scratch_dir=scratch_dir, workers=workers, progress=progress).run(traj, start=start, stop=stop, step=step)
