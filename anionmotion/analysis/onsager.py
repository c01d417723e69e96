"""Transport tensors and Onsager coefficients from the Einstein cross-displacements, streamed (SPEC §9).

``onsager(traj, temperature=600)`` returns an :class:`OnsagerResult`; ``d_tensor(traj, "Li")`` returns the
:class:`DTensorResult` of one species alone.

Definitions (docs/onsager.md)
-----------------------------
Groups i (a species, the polyanion centres, or any selection), each with one charge z_i (e) per atom.
Positions are unwrapped and taken in one reference frame (``frame=``, below).  The collective displacement
of group i is ΔR_i(τ) = Σ_{a∈i} Δr_a(τ), and

    Z_ij(τ) = ⟨ΔR_i(τ) · ΔR_j(τ)⟩          (all origins, FFT cross-correlation; Å²)
    L_ij    = lim  Z_ij(τ) / (6 V k_B T τ)  = slope(Z_ij) / (6 V k_B T)        (J⁻¹ m⁻¹ s⁻¹)
    L_ii^self = slope(Σ_{a∈i} ⟨|Δr_a|²⟩) / (6 V k_B T) = N_i D_i / (V k_B T),   L_ii^distinct = L_ii − L_ii^self,
    L_ij^distinct = L_ij (i ≠ j),
    σ       = e² Σ_ij z_i z_j L_ij          (S/m; reported in mS/cm),
    σ_NE    = e² Σ_i z_i² L_ii^self          (Nernst–Einstein, uncorrelated ions),
    t_i     = z_i Σ_j z_j L_ij / Σ_kl z_k z_l L_kl   (transference numbers; Σ t_i = 1),
    H_R     = σ_NE / σ ;   H_R,i = L_ii^self / L_ii   (Haven ratio of the whole system and of each group).

The 3×3 MSD tensor of each group, M_ab(τ) = ⟨Δr_a Δr_b⟩ (mean over atoms and origins), gives the diffusion
tensor D_ab = slope(M_ab)/2, fitted on the lags the scalar D uses: the window comes from
:func:`anionmotion.fit_diffusion` on the same MSD (its trace), and the tensor is the OLS slope on that
window's lags, so trace(D)/3 equals the scalar D of that fit.  Its eigenvalues and principal axes follow;
the σ tensor is the Nernst–Einstein σ_ab = N q² D_ab / (V k_B T).

Errors
------
* D tensor, eigenvalues, axes: bootstrap over atoms (``n_boot`` resamples of the per-atom OLS slopes of
  the same window; atoms taken as independent).  Axis errors are the RMS angle between resampled and
  estimated axes (degrees).  Coverage on anisotropic Brownian motion with a known tensor is tested.
* L_ij and everything derived from them: ``n_blocks`` independent, consecutive time blocks; in each block
  the exact all-origin Z_ij and self sums are fitted on the window ``fit_fractions`` × the block's longest
  lag (or ``fit=`` in ps).  Point estimates are the block means (ratios: ratio of the means), standard
  errors the jackknife over blocks (= the standard error of the mean for linear quantities), and
  ``ci95`` multiplies them by the Student-t quantile with n_blocks − 1 degrees of freedom.  The collective
  terms rest on one series per group (no average over atoms): their variance is huge, ~N_i times that of
  the self term at equal correlation, and a few blocks of a short run give wide, honest intervals.

Reference frame (``frame=``)
----------------------------
``"system"`` (default of :func:`onsager`): the centre of mass of the whole system (every atom of the
trajectory, mass-weighted) is subtracted from every position, the barycentric frame in which Σ_i m_i ΔR_i = 0
for a momentum-conserving simulation; ``"framework"`` (default of :func:`d_tensor`, the rule of
:func:`anionmotion.msd`): the centre of mass of the atoms that are in no group and of no mobile-cation
species, and nothing when there are none; ``"none"``.

Streaming
---------
One pass over the trajectory writes the positions of the groups' atoms into a
:class:`~anionmotion.analysis.base.SeriesStore` (rows atom·3 + direction; in memory when it fits a quarter
of the budget, else a scratch file) and the collective vectors R_i(t) into a second one (3 rows per group; in
memory below 2 % of the budget, else a scratch file).  Two passes over atom blocks of the store follow:
(1) the summed MSD tensors (FFT over atom blocks, :class:`~anionmotion.kernels.onsager.TensorMSDAccumulator`),
(2) after the fit windows are known, the per-atom slopes for the bootstrap
(:func:`~anionmotion.kernels.onsager.tensor_slopes_rows`, without a per-atom (6, T) array) and the
per-time-block self sums.  The cross-displacements then read one direction of two collective vectors at a
time.  :func:`memory_plan` gives the FFT passes a quarter of the budget for *everything* they hold — the
per-lag sums (O(T) floats per group), FFT plans and scratch, and the atom block — so a longer trajectory
gets fewer atoms per block rather than a larger peak (the CLI peaks at 0.59 GB at 10⁵ and 0.49 GB at 10⁶
frames of 256 atoms with ``--memory 2GB``, docs/benchmarks.md); a budget too small for one atom's FFT at that length is an error naming the budget
that would do.  What grows with T is only the result itself (the per-lag curves, ≈ 8·(S² + S + 1 + 6 per
D tensor) bytes per frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..elements import MOBILE_CATIONS, ion_charge
from ..errors import OptionError
from ..kernels.msd import fft_length
from ..kernels.onsager import (TensorMSDAccumulator, cross_msd_row_bytes, cross_msd_rows, cross_msd_sum,
                               finish_bytes, tensor_slopes_rows, tensor_workspace_bytes_per_atom)
from ..results import Result, to_jsonable
from ..units import A2_PS_TO_CM2_S, E_C, KB_J
from .base import AnalysisBase, SeriesStore, format_bytes

__all__ = ["onsager", "Onsager", "OnsagerResult", "d_tensor", "DTensorResult", "FRAMES", "DEFAULT_N_BLOCKS",
           "DEFAULT_N_BOOT", "onsager_L_SI", "eigen_tensor", "memory_plan"]

FRAMES = ("system", "framework", "none")
"""Reference frames for the displacements (module docstring)."""
DEFAULT_N_BLOCKS = 5
"""Independent time blocks for the errors of the Onsager coefficients."""
DEFAULT_N_BOOT = 1000
"""Bootstrap resamples (over atoms) for the errors of the D tensor."""
DEFAULT_FIT_FRACTIONS = (0.1, 0.5)
"""Fit window of the block cross-displacements: these fractions of the block's longest lag."""
STORE_FRACTION = 0.25
"""Share of the budget for the position store in memory (above: scratch file)."""
WORK_FRACTION = 0.25
"""Share of the budget for the FFT passes: one atom block's work plus everything those passes hold (the
per-lag sums, the collective vectors when in memory, FFT plans and scratch) — see :func:`memory_plan`."""
R_STORE_FRACTION = 0.02
"""Share of the budget for the collective vectors R_i(t) in memory (above: a scratch file)."""
MAX_CHUNK_BYTES = 64 * 1024 ** 2
"""Largest working set of one read chunk (bytes)."""


def _fft_scratch_bytes(L, rows, workers):
    """pocketfft's own buffers for one batched transform of ``rows`` rows of length L (not seen by tracemalloc):
    one row of L per thread, or a SIMD group of 4 rows per thread once there are enough rows (measured with
    VmHWM: 15 MB for one row and 103 MB for 8 rows of L = 2·10⁶ on two threads), and the cached plan (≈ 16 B
    per point)."""
    w = max(1, int(workers) if workers and workers > 0 else 2)
    return 8 * L * min(max(1, int(rows)), 4 * w) + 16 * L


def memory_plan(n_frames, group_sizes, want_tensor, budget, *, n_blocks=DEFAULT_N_BLOCKS, mode="auto", workers=2):
    """How :class:`Onsager` spends a memory budget on a run of ``n_frames`` frames (bytes).

    The FFT passes get :data:`WORK_FRACTION` of the budget for *everything* they hold: the per-lag sums (the
    MSD tensor of each group with a D tensor, the self sum of the others, the block self sums), the
    collective vectors R_i(t) when they are in memory, FFT plans and scratch, and one atom block's work
    (:func:`~anionmotion.kernels.onsager.tensor_workspace_bytes_per_atom` plus the block read back, 24 B per
    frame and atom).  The number of atoms in flight is what is left divided by one atom's work, so the peak
    stays at the same share of the budget whatever T — a longer run means fewer atoms per block, not more
    memory.  The cross-displacement phase holds the results (O(T · groups²)) and one row pair's FFT.

    Parameters
    ----------
    n_frames : int
    group_sizes : sequence of int
        Atoms per group.
    want_tensor : sequence of bool
        Whether each group gets a D tensor (its six MSD-tensor sums are kept instead of one self sum).
    budget : int, bytes
    n_blocks : int
    mode : {"auto", "memory", "out-of-core"}
        Where the position store lives (the collective vectors follow it, "auto": in memory below
        :data:`R_STORE_FRACTION` of the budget).
    workers : int
        FFT threads.

    Returns
    -------
    dict
        ``block_atoms``, ``self_rows`` (rows of one batch of block self sums), ``per_atom_bytes``,
        ``held_bytes`` (besides the block), ``pass_peak_bytes`` (held + the block's work and FFT scratch, or the
        end of a group's sums if larger),
        ``collective_peak_bytes``, ``work_bytes`` (the share), ``position_store`` / ``position_store_bytes``,
        ``vector_store`` / ``vector_store_bytes``.

    Raises
    ------
    OptionError
        When one atom's work and the held sums do not fit the share (the message gives the smallest budget).
    """
    T, S = int(n_frames), len(group_sizes)
    N = int(sum(int(n) for n in group_sizes))
    nt = sum(bool(w) for w in want_tensor)
    L = fft_length(T)
    Tb = max(1, T // max(1, int(n_blocks)))
    work = int(WORK_FRACTION * budget)
    store_bytes = 24 * N * T
    store_mem = mode == "memory" or (mode == "auto" and store_bytes <= STORE_FRACTION * budget)
    r_bytes = 24 * S * T
    r_mem = mode == "memory" or (mode == "auto" and r_bytes <= R_STORE_FRACTION * budget)
    sums = 8 * T * (6 * nt + (S - nt))
    base = (r_bytes if r_mem else 0) + sums + 8 * T
    accumulator = 48 * T + 24 * L           # Σ c_a c_b (6 × T) and Σ Re(Â conj B̂) (6 × L/2) of the group in flight
    held = base + max(accumulator, 8 * S * T)   # pass 1: the accumulator; pass 2: the block self sums (B × S × T/B)
    per_atom = tensor_workspace_bytes_per_atom(T) + 24 * T
    finish = base + accumulator + 48 * T + finish_bytes(T) + _fft_scratch_bytes(L, 1, workers)

    def peak(nb):
        return held + nb * per_atom + _fft_scratch_bytes(L, nb, workers)

    need = max(peak(1), finish)
    if need > work:
        raise OptionError(f"memory budget of {format_bytes(budget)} is too small for {T} frames: one atom's FFT work "
                          f"and the per-lag sums need {format_bytes(need)}; give at least "
                          f"{format_bytes(math.ceil(need / WORK_FRACTION))} (memory= / --memory)")
    lo, hi = 1, max(1, N)
    while lo < hi:                             # the largest block whose peak fits (peak grows with nb)
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if peak(mid) <= work else (lo, mid - 1)
    nb = lo
    row = cross_msd_row_bytes(Tb) + 8 * Tb
    self_rows = int(max(1, min(3 * nb, (nb * per_atom) // row)))
    collective = ((r_bytes if r_mem else 0) + 8 * T * (6 * nt + S + S * S + 1) + 16 * T + cross_msd_row_bytes(T)
                  + _fft_scratch_bytes(L, 1, workers))
    if collective > work:
        raise OptionError(f"memory budget of {format_bytes(budget)} is too small for {T} frames and {S} groups: the "
                          f"per-lag results and one cross-displacement FFT need {format_bytes(collective)}; give at "
                          f"least {format_bytes(math.ceil(collective / WORK_FRACTION))} (memory= / --memory)")
    return {"block_atoms": int(nb), "self_rows": self_rows, "per_atom_bytes": int(per_atom), "held_bytes": int(held),
            "pass_peak_bytes": int(max(peak(nb), finish)), "collective_peak_bytes": int(collective), "work_bytes": work,
            "position_store": "memory" if store_mem else "out-of-core", "position_store_bytes": int(store_bytes),
            "vector_store": "memory" if r_mem else "out-of-core", "vector_store_bytes": int(r_bytes)}


def onsager_L_SI(slope_A2_ps, volume_A3, temperature_K):
    """L = slope / (6 V k_B T) in J⁻¹ m⁻¹ s⁻¹ from a slope of ⟨ΔR_i·ΔR_j⟩ in Å²/ps (arrays allowed)."""
    return np.asarray(slope_A2_ps, dtype=np.float64) * 1e-8 / (6.0 * volume_A3 * 1e-30 * KB_J * temperature_K)


def _S_m_to_mS_cm(x):
    return None if x is None else np.asarray(x, dtype=np.float64) * 10.0


def eigen_tensor(D):
    """Eigenvalues (ascending) and axes (columns, sign fixed: largest component positive) of a symmetric 3×3."""
    w, V = np.linalg.eigh(np.asarray(D, dtype=np.float64))
    for k in range(3):
        if V[np.argmax(np.abs(V[:, k])), k] < 0:
            V[:, k] = -V[:, k]
    return w, V


# ----------------------------------------------------------------------------------------- results
@dataclass(frozen=True, repr=False)
class DTensorResult(Result):
    """Diffusion tensor of one group (SPEC §9).

    Attributes
    ----------
    species : str
    n_atoms : int
    lag_ps : ndarray, shape (T,), ps
    msd_tensor_A2 : ndarray, shape (T, 6), Å²
        ⟨Δr_a Δr_b⟩ averaged over atoms and origins, components xx, yy, zz, xy, xz, yz.
    D_tensor_A2_ps, D_tensor_stderr_A2_ps : ndarray, shape (3, 3), Å²/ps
        D_ab = slope/2 on the scalar fit's lags, and its bootstrap standard error.
    eigenvalues_A2_ps, eigenvalues_stderr_A2_ps : ndarray, shape (3,), Å²/ps
        Ascending.
    axes : ndarray, shape (3, 3)
        Principal axes as columns (``axes[:, k]`` belongs to ``eigenvalues[k]``).
    axes_stderr_deg : ndarray, shape (3,), degrees
        RMS angle between bootstrap axes and ``axes`` (NaN for a degenerate pair's axes it is large: the
        axes of equal eigenvalues are not defined).
    D_A2_ps, D_stderr_A2_ps : float, Å²/ps
        The scalar fit (:func:`anionmotion.fit_diffusion`) whose window the tensor uses.  When that D is below
        1e-8 cm²/s it is the threshold (an upper bound, ``meta["scalar_D_below_threshold"]``) while the tensor
        keeps the fitted slopes, which are then noise around zero.
    fit_window_ps : tuple, ps
    n_fit_lags : int
    charge : float or None, e
    sigma_tensor_S_cm, sigma_tensor_stderr_S_cm : ndarray (3, 3) or None, S/cm
        Nernst–Einstein N q² D_ab / (V k_B T).
    volume_A3 : float
    temperature_K : float or None
    n_boot : int
    meta : dict
    """

    species: str
    n_atoms: int
    lag_ps: np.ndarray
    msd_tensor_A2: np.ndarray
    D_tensor_A2_ps: np.ndarray
    D_tensor_stderr_A2_ps: np.ndarray
    eigenvalues_A2_ps: np.ndarray
    eigenvalues_stderr_A2_ps: np.ndarray
    axes: np.ndarray
    axes_stderr_deg: np.ndarray
    D_A2_ps: float
    D_stderr_A2_ps: float
    fit_window_ps: tuple
    n_fit_lags: int
    charge: Optional[float]
    sigma_tensor_S_cm: Optional[np.ndarray]
    sigma_tensor_stderr_S_cm: Optional[np.ndarray]
    volume_A3: float
    temperature_K: Optional[float]
    n_boot: int
    meta: dict = field(default_factory=dict)

    @property
    def D_tensor_cm2_s(self):
        return self.D_tensor_A2_ps * A2_PS_TO_CM2_S

    def to_dict(self, series=True) -> dict:
        """JSON dict; the keys ``D_tensor_cm2_s``, ``eigenvalues_cm2_s``, ``axes`` … are what ``msd`` reports."""
        c = A2_PS_TO_CM2_S
        d = {
            "species": self.species, "n_atoms": self.n_atoms,
            "D_tensor_cm2_s": self.D_tensor_A2_ps * c, "D_tensor_stderr_cm2_s": self.D_tensor_stderr_A2_ps * c,
            "eigenvalues_cm2_s": self.eigenvalues_A2_ps * c,
            "eigenvalues_stderr_cm2_s": self.eigenvalues_stderr_A2_ps * c,
            "axes": self.axes, "axes_stderr_deg": self.axes_stderr_deg,
            "anisotropy": self.anisotropy(),
            "D_cm2_s": self.D_A2_ps * c, "D_stderr_cm2_s": self.D_stderr_A2_ps * c,
            "fit_window_ps": list(self.fit_window_ps), "n_fit_lags": self.n_fit_lags, "charge": self.charge,
            "sigma_tensor_mS_cm": None if self.sigma_tensor_S_cm is None else self.sigma_tensor_S_cm * 1e3,
            "sigma_tensor_stderr_mS_cm": (None if self.sigma_tensor_stderr_S_cm is None
                                          else self.sigma_tensor_stderr_S_cm * 1e3),
            "volume_A3": self.volume_A3, "temperature_K": self.temperature_K, "n_boot": self.n_boot,
            "meta": self.meta,
        }
        if series:
            d["lag_ps"] = self.lag_ps
            d["msd_tensor_A2"] = self.msd_tensor_A2
            d["msd_tensor_components"] = ["xx", "yy", "zz", "xy", "xz", "yz"]
        return to_jsonable(d)

    def anisotropy(self) -> Optional[float]:
        """λ_max / λ_min of the eigenvalues (None when λ_min ≤ 0)."""
        w = self.eigenvalues_A2_ps
        return float(w[-1] / w[0]) if w[0] > 0 else None

    def summary(self) -> str:
        c = A2_PS_TO_CM2_S
        D, E = self.D_tensor_A2_ps * c, self.D_tensor_stderr_A2_ps * c
        lines = [f"D tensor of {self.species} ({self.n_atoms} atoms), window {self.fit_window_ps[0]:.4g}–"
                 f"{self.fit_window_ps[1]:.4g} ps ({self.n_fit_lags} lags), cm²/s, ± bootstrap over atoms:"]
        for a in range(3):
            lines.append("   " + "  ".join(f"{D[a, b]:+.3e} ± {E[a, b]:.1e}" for b in range(3)))
        w, we = self.eigenvalues_A2_ps * c, self.eigenvalues_stderr_A2_ps * c
        for k in range(3):
            ax = self.axes[:, k]
            lines.append(f"   λ{k + 1} = {w[k]:.3e} ± {we[k]:.1e} cm²/s along ({ax[0]:+.3f}, {ax[1]:+.3f}, "
                         f"{ax[2]:+.3f}) ± {self.axes_stderr_deg[k]:.3g}°")
        lines.append(f"   trace/3 = {np.trace(D) / 3:.4e} cm²/s (scalar D {self.D_A2_ps * c:.4e} ± "
                     f"{self.D_stderr_A2_ps * c:.2e})")
        if self.sigma_tensor_S_cm is not None:
            s = self.sigma_tensor_S_cm * 1e3
            lines.append(f"   σ_NE tensor diagonal {s[0, 0]:.4g}, {s[1, 1]:.4g}, {s[2, 2]:.4g} mS/cm")
        return "\n".join(lines)

    def __repr__(self):
        return f"DTensorResult(species={self.species!r}, eigenvalues_cm2_s={self.eigenvalues_A2_ps * A2_PS_TO_CM2_S})"


@dataclass(frozen=True, repr=False)
class OnsagerResult(Result):
    """Onsager coefficients, collective conductivity, transference numbers, Haven ratios and D tensors.

    Attributes
    ----------
    groups : list of str
        Group names (species, ``"PS4"`` for polyanion centres, …).
    charges : ndarray, shape (S,), e
    n_atoms : ndarray, shape (S,), int64
    lag_ps : ndarray, shape (T,), ps
    cross_msd_A2 : ndarray, shape (T, S, S), Å²
        Z_ij(τ) = ⟨ΔR_i·ΔR_j⟩ over the whole run (all origins).
    self_msd_A2 : ndarray, shape (T, S), Å²
        Σ_{a∈i} ⟨|Δr_a|²⟩ over the whole run.
    L, L_stderr : ndarray, shape (S, S), J⁻¹ m⁻¹ s⁻¹ (or None without a temperature)
        Collective L_ij (block mean) and its standard error.
    L_self, L_self_stderr : ndarray, shape (S,)
    L_distinct, L_distinct_stderr : ndarray, shape (S, S)
        L − diag(L_self) (errors from the block differences).
    sigma_ij_S_cm, sigma_ij_stderr_S_cm : ndarray, shape (S, S), S/cm
        e² z_i z_j L_ij: each pair's contribution to σ (signed).
    sigma_S_cm, sigma_stderr_S_cm : float, S/cm
        Collective σ = e² Σ_ij z_i z_j L_ij.
    sigma_NE_S_cm, sigma_NE_stderr_S_cm : float, S/cm
    transference, transference_stderr : ndarray, shape (S,)
    haven_ratio, haven_ratio_stderr : float
        σ_NE / σ.
    haven_ratio_groups, haven_ratio_groups_stderr : ndarray, shape (S,)
        L_ii^self / L_ii.
    ci95_factor : float
        Student-t 97.5 % quantile with n_blocks − 1 degrees of freedom (95 % interval = ± factor × stderr).
    block_L : ndarray, shape (n_blocks, S, S)
    block_L_self : ndarray, shape (n_blocks, S)
    n_blocks, block_frames : int
    block_fit_window_ps : tuple, ps
    d_tensors : dict name → DTensorResult
    full_run : dict or None
        The whole run's all-origin estimate on the same fractions of its own longest lag (``window_ps``,
        ``L``, ``L_self`` in J⁻¹ m⁻¹ s⁻¹, ``sigma_mS_cm``, ``sigma_NE_mS_cm``, ``haven_ratio``,
        ``transference``): longer lags than the blocks reach, no error of its own.
    volume_A3 : float, Å³ (time average)
    temperature_K : float or None
    dt_ps : float
    n_frames : int
    meta : dict
    """

    groups: list
    charges: np.ndarray
    n_atoms: np.ndarray
    lag_ps: np.ndarray
    cross_msd_A2: np.ndarray
    self_msd_A2: np.ndarray
    L: Optional[np.ndarray]
    L_stderr: Optional[np.ndarray]
    L_self: Optional[np.ndarray]
    L_self_stderr: Optional[np.ndarray]
    L_distinct: Optional[np.ndarray]
    L_distinct_stderr: Optional[np.ndarray]
    sigma_ij_S_cm: Optional[np.ndarray]
    sigma_ij_stderr_S_cm: Optional[np.ndarray]
    sigma_S_cm: Optional[float]
    sigma_stderr_S_cm: Optional[float]
    sigma_NE_S_cm: Optional[float]
    sigma_NE_stderr_S_cm: Optional[float]
    transference: Optional[np.ndarray]
    transference_stderr: Optional[np.ndarray]
    haven_ratio: Optional[float]
    haven_ratio_stderr: Optional[float]
    haven_ratio_groups: Optional[np.ndarray]
    haven_ratio_groups_stderr: Optional[np.ndarray]
    ci95_factor: float
    block_L: Optional[np.ndarray]
    block_L_self: Optional[np.ndarray]
    n_blocks: int
    block_frames: int
    block_fit_window_ps: tuple
    d_tensors: dict
    volume_A3: float
    temperature_K: Optional[float]
    dt_ps: float
    n_frames: int
    meta: dict = field(default_factory=dict)
    full_run: Optional[dict] = None

    def to_dict(self) -> dict:
        ms = 1e3
        return to_jsonable({
            "groups": list(self.groups), "charges": self.charges, "n_atoms": self.n_atoms,
            "temperature_K": self.temperature_K, "volume_A3": self.volume_A3, "dt_ps": self.dt_ps,
            "n_frames": self.n_frames,
            "L_J-1m-1s-1": self.L, "L_stderr_J-1m-1s-1": self.L_stderr,
            "L_self_J-1m-1s-1": self.L_self, "L_self_stderr_J-1m-1s-1": self.L_self_stderr,
            "L_distinct_J-1m-1s-1": self.L_distinct, "L_distinct_stderr_J-1m-1s-1": self.L_distinct_stderr,
            "sigma_ij_mS_cm": None if self.sigma_ij_S_cm is None else self.sigma_ij_S_cm * ms,
            "sigma_ij_stderr_mS_cm": None if self.sigma_ij_stderr_S_cm is None else self.sigma_ij_stderr_S_cm * ms,
            "sigma_mS_cm": None if self.sigma_S_cm is None else self.sigma_S_cm * ms,
            "sigma_stderr_mS_cm": None if self.sigma_stderr_S_cm is None else self.sigma_stderr_S_cm * ms,
            "sigma_NE_mS_cm": None if self.sigma_NE_S_cm is None else self.sigma_NE_S_cm * ms,
            "sigma_NE_stderr_mS_cm": None if self.sigma_NE_stderr_S_cm is None else self.sigma_NE_stderr_S_cm * ms,
            "transference": self.transference, "transference_stderr": self.transference_stderr,
            "haven_ratio": self.haven_ratio, "haven_ratio_stderr": self.haven_ratio_stderr,
            "haven_ratio_groups": self.haven_ratio_groups,
            "haven_ratio_groups_stderr": self.haven_ratio_groups_stderr,
            "ci95_factor": self.ci95_factor, "n_blocks": self.n_blocks, "block_frames": self.block_frames,
            "block_fit_window_ps": list(self.block_fit_window_ps),
            "block_L_J-1m-1s-1": self.block_L, "block_L_self_J-1m-1s-1": self.block_L_self,
            "d_tensors": {k: v.to_dict(series=False) for k, v in self.d_tensors.items()},
            "full_run": self.full_run,
            "lag_ps": self.lag_ps, "cross_msd_A2": self.cross_msd_A2, "self_msd_A2": self.self_msd_A2,
            "meta": self.meta,
        })

    def summary(self) -> str:
        g = self.groups
        members = ", ".join(f"{n} ({int(k)} × {z:+g} e)" for n, k, z in zip(g, self.n_atoms, self.charges))
        lines = [f"Onsager analysis: {members}; {self.n_frames} frames, dt {self.dt_ps:g} ps",
                 f"frame        {self.meta.get('frame_reason')}",
                 f"blocks       {self.n_blocks} × {self.block_frames} frames, fit "
                 f"{self.block_fit_window_ps[0]:.4g}–{self.block_fit_window_ps[1]:.4g} ps in each; ± jackknife "
                 f"standard errors (95 % interval ± {self.ci95_factor:.3g} ×)"]
        if self.L is None:
            lines.append("L_ij         not computed (no temperature: give --temperature)")
        else:
            lines.append("σ_ij = e² z_i z_j L_ij (mS/cm):")
            for i in range(len(g)):
                for j in range(i, len(g)):
                    f = 1.0 if i == j else 2.0
                    zz10 = E_C ** 2 * self.charges[i] ** 2 * 10   # L (SI) → mS/cm of the group's self/distinct part
                    lines.append(f"   {g[i]:>6}–{g[j]:<6} {f * self.sigma_ij_S_cm[i, j] * 1e3:+.4g} ± "
                                 f"{f * self.sigma_ij_stderr_S_cm[i, j] * 1e3:.2g}"
                                 + ("" if i != j else f"   (self {self.L_self[i] * zz10:.4g}, "
                                                      f"distinct {self.L_distinct[i, i] * zz10:+.4g})"))
            lines.append(f"σ (collective) {self.sigma_S_cm * 1e3:.4g} ± {self.sigma_stderr_S_cm * 1e3:.2g} mS/cm; "
                         f"σ_NE {self.sigma_NE_S_cm * 1e3:.4g} ± {self.sigma_NE_stderr_S_cm * 1e3:.2g} mS/cm; "
                         f"Haven ratio {self.haven_ratio:.3g} ± {self.haven_ratio_stderr:.2g}")
            lines.append("transference " + ", ".join(f"{n} {t:.3g} ± {e:.2g}" for n, t, e in
                                                     zip(g, self.transference, self.transference_stderr)))
            lines.append("H_R per group " + ", ".join(f"{n} {h:.3g} ± {e:.2g}" for n, h, e in
                                                      zip(g, self.haven_ratio_groups, self.haven_ratio_groups_stderr)))
            fr = self.full_run
            if fr is not None:
                lines.append(f"whole run    fit {fr['window_ps'][0]:.4g}–{fr['window_ps'][1]:.4g} ps (no error of its "
                             f"own): σ {fr['sigma_mS_cm']:.4g} mS/cm, σ_NE {fr['sigma_NE_mS_cm']:.4g} mS/cm, Haven "
                             f"ratio {fr['haven_ratio']:.3g}")
        for res in self.d_tensors.values():
            lines.append(res.summary())
        return "\n".join(lines)

    def __repr__(self):
        return (f"OnsagerResult(groups={self.groups!r}, n_frames={self.n_frames}, "
                f"sigma_S_cm={self.sigma_S_cm!r}, haven_ratio={self.haven_ratio!r})")


# ----------------------------------------------------------------------------------------- helpers
def _trace(P):
    """Trace xx + yy + zz of (6, T) tensor components in PAIRS order (the same bits as ``np.trace`` of the
    (T, 3, 3) tensor)."""
    return (P[0] + P[1]) + P[2]


def _ols_weights(x):
    """Row w with slope = w @ y for the OLS line through (x, y)."""
    x = np.asarray(x, dtype=np.float64)
    xc = x - x.mean()
    return xc / float(xc @ xc)


def _jackknife(fn, blocks_a, blocks_b):
    """Point estimate fn(mean) and jackknife standard error over the leading (block) axis of the inputs."""
    B = blocks_a.shape[0]
    point = fn(blocks_a.mean(axis=0), blocks_b.mean(axis=0))
    if B < 2:
        return point, np.full_like(point, np.nan)
    loo = np.array([fn((blocks_a.sum(0) - blocks_a[b]) / (B - 1), (blocks_b.sum(0) - blocks_b[b]) / (B - 1))
                    for b in range(B)])
    se = np.sqrt((B - 1) / B * np.sum((loo - loo.mean(axis=0)) ** 2, axis=0))
    return point, se


def _derived(z):
    """fn(L (S,S), L_self (S,)) → flat vector [σ, σ_NE, H_R, t (S), H_i (S)] in S/m / dimensionless."""
    z = np.asarray(z, dtype=np.float64)
    e2 = E_C ** 2

    def fn(L, Ls):
        sig = e2 * float(z @ L @ z)
        sne = e2 * float(np.sum(z * z * Ls))
        with np.errstate(invalid="ignore", divide="ignore"):
            t = z * (L @ z) / (z @ L @ z)
            hi = Ls / np.diag(L)
            hr = sne / sig
        return np.concatenate([[sig, sne, hr], t, hi])
    return fn


# ----------------------------------------------------------------------------------------- analysis
class Onsager(AnalysisBase):
    """Streamed Onsager coefficients and diffusion tensors (the class behind :func:`onsager`; same parameters)."""

    name = "onsager"
    needs_unwrap = True
    needs_velocities = False

    def __init__(self, groups=None, *, charges="formal", center=None, ligand=None, cutoff=None, temperature=None,
                 frame="system", drift_weights="mass", framework=None, n_blocks=DEFAULT_N_BLOCKS,
                 fit=None, fit_fractions=DEFAULT_FIT_FRACTIONS, tensor_fit=None, tensors=True,
                 n_boot=DEFAULT_N_BOOT, seed=0, mode="auto", scratch_dir=None, workers=2, memory=None,
                 progress=None, use_ext=True):
        super().__init__(memory=memory, progress=progress, use_ext=use_ext)
        if frame not in FRAMES:
            raise OptionError(f"invalid frame {frame!r}; choose one of {', '.join(FRAMES)}")
        if drift_weights not in ("mass", "unweighted"):
            raise OptionError(f"invalid drift_weights {drift_weights!r}; choose mass or unweighted")
        if int(n_blocks) != n_blocks or int(n_blocks) < 1:
            raise OptionError(f"n_blocks must be a positive integer; got {n_blocks!r}")
        if int(n_boot) != n_boot or int(n_boot) < 0:
            raise OptionError(f"n_boot must be a non-negative integer; got {n_boot!r}")
        if mode not in ("auto", "memory", "out-of-core"):
            raise OptionError(f"invalid mode {mode!r}; choose one of auto, memory, out-of-core")
        f0, f1 = (float(v) for v in fit_fractions)
        if not (0 <= f0 < f1 <= 1):
            raise OptionError(f"fit_fractions must satisfy 0 <= start < end <= 1; got {fit_fractions!r}")
        if temperature is not None and not (np.isfinite(temperature) and temperature > 0):
            raise OptionError(f"temperature must be positive (K); got {temperature!r}")
        self.groups_arg, self.charges_arg = groups, charges
        self.center, self.ligand, self.cutoff = center, ligand, cutoff
        self.temperature, self.frame, self.drift_weights, self.framework = temperature, frame, drift_weights, framework
        self.n_blocks, self.fit, self.fit_fractions = int(n_blocks), fit, (f0, f1)
        if isinstance(tensors, str):
            tensors = tensors.replace(",", " ").split()
        self.tensor_fit, self.n_boot, self.seed = tensor_fit, int(n_boot), seed
        self.tensors = bool(tensors) if isinstance(tensors, (bool, type(None))) else [str(t) for t in tensors]
        self.mode, self.scratch_dir, self.workers = mode, scratch_dir, workers

    # ------------------------------------------------------------------ setup
    def _atoms(self):
        return self._read

    def _bytes_per_frame(self, n_atoms_read):
        return int(n_atoms_read) * 3 * 8 * 6

    def _chunk_frames(self):
        per = self._bytes_per_frame(len(self._read))
        return int(max(1, min(self.n_frames, min(self.budget // 8, MAX_CHUNK_BYTES) // max(per, 1))))

    def _resolve_groups(self, meta):
        traj = self.traj
        names, idx, formal = [], [], []
        taken = np.zeros(traj.n_atoms, dtype=bool)
        poly = None
        if self.center is not None or self.ligand is not None:
            if self.center is None or self.ligand is None:
                raise OptionError("polyanion groups need both center= and ligand= (e.g. center='P', ligand='S')")
            from .polyanions import find_polyanions

            poly = find_polyanions(traj, center=self.center, ligand=self.ligand, cutoff=self.cutoff,
                                   frame=self.frame_range.start)
            n_lig = int(round(float(np.mean(poly.ligand_counts))))
            pname = f"{poly.center_species}{poly.ligand_species}" + (str(n_lig) if n_lig > 1 else "")
            meta["polyanions"] = {"name": pname, "n_anions": int(len(poly.centers)), "cutoff_A": float(poly.cutoff),
                                  "displacement": "of the centre atom"}
            taken[np.unique(np.concatenate([np.asarray(m) for m in poly.members]))] = True
        if self.groups_arg is None:
            groups = [s for s in dict.fromkeys(traj.species.tolist()) if not np.all(taken[traj.species == s])]
        elif isinstance(self.groups_arg, str):
            groups = self.groups_arg.replace(",", " ").split()
        else:
            groups = list(self.groups_arg)
        for k, g in enumerate(groups):
            name = str(g) if isinstance(g, str) else f"group{k}"
            if poly is not None and name == poly.center_species:
                continue
            sel = traj.select(g)
            sel = sel[~taken[sel]]
            if len(sel) == 0:
                raise OptionError(f"the group {name!r} has no atoms" + (" outside the polyanions" if poly else ""))
            z = None
            if isinstance(g, str) and len(set(traj.species[sel])) == 1:
                try:
                    z = ion_charge(str(traj.species[sel][0]))
                except OptionError:
                    z = None
            names.append(name)
            idx.append(sel)
            formal.append(z)
            taken[sel] = True
        if poly is not None:
            names.append(meta["polyanions"]["name"])
            idx.append(np.asarray(poly.centers, dtype=np.int64))
            formal.append(None)
        if len(set(names)) != len(names):
            raise OptionError(f"group names must be unique; got {', '.join(names)}")
        c = self.charges_arg
        if isinstance(c, dict):
            missing = [n for n in names if n not in c]
            if missing:
                raise OptionError(f"charges: no charge given for the group(s) {', '.join(missing)} (groups: "
                                  f"{', '.join(names)})")
            z = [float(c[n]) for n in names]
            meta["charges_source"] = "given"
        elif c == "formal":
            unknown = [k for k, v in enumerate(formal) if v is None]
            if len(unknown) > 1:
                raise OptionError(f"no formal charge for the groups {', '.join(names[k] for k in unknown)}; give "
                                  "charges= (--charges NAME=Z,…)")
            z = list(formal)
            meta["charges_source"] = "formal ionic charges"
            if unknown:
                k = unknown[0]
                rest = sum(v * len(i) for j, (v, i) in enumerate(zip(formal, idx)) if j != k)
                z[k] = -rest / len(idx[k])
                meta["charges_source"] += f"; {names[k]} from electroneutrality ({z[k]:+.4g} e)"
            z = [float(v) for v in z]
        else:
            raise OptionError(f"invalid charges {c!r}; give 'formal' or a dict group → charge (e)")
        self._names, self._groups, self._z = names, idx, np.asarray(z, dtype=np.float64)
        meta["total_charge_e"] = float(sum(v * len(i) for v, i in zip(self._z, self._groups)))

    def _resolve_frame(self, meta):
        traj = self.traj
        sel = np.concatenate(self._groups)
        if self.frame == "system":
            ref, reason = np.arange(traj.n_atoms, dtype=np.int64), "centre of mass of the whole system subtracted"
        elif self.frame == "framework":
            if self.framework is not None:
                ref = traj.select(self.framework)
            else:
                others = np.setdiff1d(np.arange(traj.n_atoms), sel)
                ref = others[~np.isin(traj.species[others], MOBILE_CATIONS)]
            reason = "framework centre of mass subtracted (atoms in no group and of no mobile-cation species)"
            if len(ref) == 0:
                reason = "framework frame asked for, but no framework atoms: nothing subtracted"
        else:
            ref, reason = np.zeros(0, np.int64), "no drift correction (frame='none')"
        weights = self.drift_weights
        if len(ref) and weights == "mass" and not np.all(np.isfinite(traj.masses[ref]) & (traj.masses[ref] > 0)):
            bad = sorted(set(traj.species[ref][~np.isfinite(traj.masses[ref])]))
            weights = "unweighted"
            reason += f" (unweighted: the masses of {', '.join(bad)} are unknown)"
        elif len(ref):
            reason += "; mass-weighted" if weights == "mass" else "; unweighted mean position"
        self._ref = ref
        self._read = np.union1d(sel, ref).astype(np.int64)
        self._cols = [np.searchsorted(self._read, g) for g in self._groups]
        self._col_sel = np.concatenate(self._cols)
        self._col_ref = np.searchsorted(self._read, ref)
        if len(ref):
            w = traj.masses[ref] if weights == "mass" else np.ones(len(ref))
            self._w = np.asarray(w, dtype=np.float64) / float(np.sum(w))
        meta.update({"frame": self.frame, "frame_reason": reason, "drift_weights": weights if len(ref) else None,
                     "reference_atoms": int(len(ref))})

    def _prepare(self):
        self._require_uniform("the Onsager analysis")
        T = self.n_frames
        if T < 8:
            raise OptionError(f"{self.traj.path}: the Onsager analysis needs at least 8 frames; got {T}")
        B = self.n_blocks
        if T // B < 8:
            raise OptionError(f"{self.traj.path}: {B} blocks of {T // B} frames are too short (at least 8 frames "
                              f"each); use fewer blocks (n_blocks= / --blocks)")
        meta = {}
        self._resolve_groups(meta)
        self._resolve_frame(meta)
        if isinstance(self.tensors, list):
            unknown = [t for t in self.tensors if t not in self._names]
            if unknown:
                raise OptionError(f"tensors: no group {', '.join(unknown)}; the groups are {', '.join(self._names)}")
            self._want_tensor = [n in self.tensors for n in self._names]
        else:
            self._want_tensor = [bool(self.tensors)] * len(self._names)
        T_K = self.temperature
        if T_K is None:
            T_K = self.traj.metadata.get("temperature") if isinstance(self.traj.metadata, dict) else None
            meta["temperature_source"] = "trajectory metadata" if T_K is not None else None
        else:
            meta["temperature_source"] = "given"
        self._T_K = None if T_K is None else float(T_K)
        plan = memory_plan(T, [len(g) for g in self._groups], self._want_tensor, self.budget, n_blocks=B,
                           mode=self.mode, workers=self.workers)
        self._plan = plan
        self._block_atoms = plan["block_atoms"]
        self._store_mode = plan["position_store"]
        meta.update({"memory_budget_bytes": int(self.budget), "atoms_per_fft_block": self._block_atoms,
                     "position_store": self._store_mode, "position_store_bytes": plan["position_store_bytes"],
                     "vector_store": plan["vector_store"],
                     "memory_estimate_bytes": int(max(plan["pass_peak_bytes"], plan["collective_peak_bytes"]))})
        self._meta = meta

    def _start_pass(self):
        T, N, S = self.n_frames, len(self._col_sel), len(self._groups)
        self.store = SeriesStore(3 * N, T, budget=self.budget, mode=self._store_mode, scratch_dir=self.scratch_dir,
                                 in_memory_fraction=STORE_FRACTION, prefix="anionmotion-onsager-")
        # collective vectors R_i(t), rows group·3 + direction: in memory while small, else a scratch file
        self._Rstore = SeriesStore(3 * S, T, budget=self.budget, mode=self._plan["vector_store"],
                                   scratch_dir=self.scratch_dir, in_memory_fraction=R_STORE_FRACTION,
                                   prefix="anionmotion-onsager-R-")
        self._t = 0
        self._com0 = None
        self._vol = 0.0

    def _accumulate(self, chunk):
        p = chunk.positions
        n = p.shape[0]
        sel = p[:, self._col_sel]
        if len(self._ref):
            # c_einsum sums over the atoms in one fixed order for each frame: the same bits whatever the chunking
            com = np.einsum("tac,a->tc", p[:, self._col_ref], self._w)
            if self._com0 is None:
                self._com0 = com[0].copy()
            sel = sel - (com - self._com0)[:, None, :]
        t0 = self._t
        self.store.write(t0, sel)
        off = 0
        R = np.empty((n, len(self._cols), 3))
        for g, cols in enumerate(self._cols):
            R[:, g] = sel[:, off:off + len(cols)].sum(axis=1)
            off += len(cols)
        self._Rstore.write(t0, R)
        self._vol += float(np.sum(chunk.volumes))
        self._t = t0 + n

    def run(self, traj, start=None, stop=None, step=None) -> OnsagerResult:
        """Analyse frames ``start:stop:step`` of ``traj``."""
        try:
            self._setup(traj, start, stop, step)
            self._prepare()
            self._start_pass()
            self._iterate("reading")
            return self._finish()
        finally:
            self._release()

    def _release(self):
        super()._release()
        self.store = None
        if getattr(self, "_Rstore", None) is not None:
            self._Rstore.close()
        self._Rstore = None

    # ------------------------------------------------------------------ passes
    def _group_blocks(self, g):
        """Yield atom-major blocks (nb, 3, T) of group g from the store."""
        off = sum(len(c) for c in self._cols[:g])
        n = len(self._cols[g])
        B = self._block_atoms
        for a0 in range(0, n, B):
            nb = min(B, n - a0)
            yield a0, self.store.read_rows(3 * (off + a0), 3 * nb).reshape(nb, 3, self.n_frames)

    def _pass_tensor(self):
        """Σ over each group's atoms of the MSD tensor: (6, T) components in PAIRS order for a group with a D
        tensor, only the trace (T,) — the self sum — for the others."""
        S, T = len(self._groups), self.n_frames
        out = []
        with self._phase(len(self._col_sel), "MSD tensors (FFT over atom blocks)", unit="atom") as bar:
            for g in range(S):
                acc = TensorMSDAccumulator(T, workers=self.workers)
                for _, block in self._group_blocks(g):
                    acc.add(block)
                    bar.update(block.shape[0])
                    del block
                P = acc.finish_pairs()
                del acc
                # groups without a D tensor keep only the trace (the self sum): T floats instead of 6 T
                out.append(P if self._want_tensor[g] else _trace(P))
                del P
        return out

    def _pass_atoms(self, fit_lags, weights):
        """Per-atom tensor slopes on each group's fit lags, and per-time-block self sums (B, S, Tb)."""
        S, T, B = len(self._groups), self.n_frames, self.n_blocks
        Tb = T // B
        rows = self._plan["self_rows"]
        slopes = [np.zeros((len(c), 6)) for c in self._cols]
        selfb = np.zeros((B, S, Tb))
        with self._phase(len(self._col_sel), "per-atom slopes and block self terms", unit="atom") as bar:
            for g in range(S):
                for a0, block in self._group_blocks(g):
                    nb = block.shape[0]
                    if fit_lags[g] is not None:
                        slopes[g][a0:a0 + nb] = tensor_slopes_rows(block, fit_lags[g], weights[g],
                                                                   workers=self.workers)
                    for b in range(B):
                        seg = block[:, :, b * Tb:(b + 1) * Tb].reshape(3 * nb, Tb)
                        for r0 in range(0, 3 * nb, rows):
                            selfb[b, g] += cross_msd_rows(seg[r0:r0 + rows], workers=self.workers).sum(axis=0)
                        del seg
                    bar.update(nb)
                    del block
        return slopes, selfb

    # ------------------------------------------------------------------ finish
    def _fit_tensor(self, g, P_sum, lag):
        """Scalar fit (window) of group g and the lags/weights of its tensor fit (``P_sum``: (6, T) sums)."""
        from .diffusion import _spread, fit_diffusion
        from .msd import TMSD_DIFFUSING_A2, MSDResult

        n = len(self._groups[g])
        diag = np.stack([P_sum[0] / n, P_sum[1] / n, P_sum[2] / n], axis=1)
        T = self.n_frames
        hop = None
        if n >= 2:
            from .hops import nearest_neighbour_distance

            try:
                hop = nearest_neighbour_distance(self.traj, self._groups[g], start=self.frame_range.start,
                                                 frames=min(T, max(1, int(round(1.0 / self.dt)))))
            except OptionError:
                hop = None
            if hop is not None and not hop > 0:
                hop = None
        tm = diag[-1]
        mres = MSDResult(species=self._names[g], atom_indices=self._groups[g], n_frames=T, lag=lag,
                         msd=diag.sum(axis=1), msd_xyz=diag, n_origins=(T - np.arange(T)).astype(np.int64),
                         tmsd=float(tm.sum()), tmsd_xyz=tm, diffusing=bool(tm.sum() >= TMSD_DIFFUSING_A2),
                         framework_tmsd=None, framework_melting=None, volume_A3=self._V, temperature_K=None,
                         charge=None, dt_ps=self.dt, hop_distance_A=hop)
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = fit_diffusion(mres, fit=self.tensor_fit, estimator="auto")
        t0, t1 = fit.fit_window_ps
        sel = np.nonzero((lag >= t0 - 1e-9) & (lag <= t1 + 1e-9) & (lag > 0))[0]
        sel = _spread(sel, 64)
        return fit, sel, _ols_weights(lag[sel]), [str(w.message) for w in caught]

    def _dtensor(self, g, P_sum, lag, fit, sel, w, slopes, notes):
        from .msd import d_tensor_from_slopes

        n = len(self._groups[g])
        six = np.ascontiguousarray((P_sum / n).T)   # (T, 6), components in PAIRS order
        return d_tensor_from_slopes(self._names[g], lag, six, slopes, fit, sel, n_boot=self.n_boot, seed=self.seed,
                                    temperature_K=self._T_K, charge=float(self._z[g]), volume_A3=self._V,
                                    frame_reason=self._meta["frame_reason"], notes=notes)

    def _block_window(self, Tb):
        dt = self.dt
        lag_max = (Tb - 1) * dt
        if self.fit is None:
            t0, t1 = self.fit_fractions[0] * lag_max, self.fit_fractions[1] * lag_max
        else:
            try:
                t0, t1 = (float(v) for v in self.fit)
            except (TypeError, ValueError) as err:
                raise OptionError(f"fit must be two times (start, end) in ps; got {self.fit!r}") from err
            if not (0 <= t0 < t1 <= lag_max * (1 + 1e-9)):
                raise OptionError(f"fit window {t0:g}–{t1:g} ps must satisfy 0 <= start < end <= {lag_max:g} ps, the "
                                  f"longest lag of one of the {self.n_blocks} blocks ({Tb} frames)")
        lag = np.arange(Tb) * dt
        sel = np.nonzero((lag >= t0 - 1e-9) & (lag <= t1 + 1e-9) & (lag > 0))[0]
        if len(sel) < 3:
            raise OptionError(f"the block fit window {t0:g}–{t1:g} ps holds {len(sel)} lag(s); at least 3 are needed "
                              f"(blocks of {Tb} frames, dt {dt:g} ps): use fewer blocks or a longer run")
        return (float(t0), float(t1)), sel

    def _finish(self):
        T, S, B = self.n_frames, len(self._groups), self.n_blocks
        dt = self.dt
        self._V = self._vol / T
        lag = np.arange(T) * dt
        meta = dict(self._meta)
        # (1) summed MSD tensors → full-run self sums and the D tensors' windows
        tens = self._pass_tensor()
        self_full = np.stack([_trace(P) if P.ndim == 2 else P for P in tens], axis=1)
        fits = [self._fit_tensor(g, tens[g], lag) if self._want_tensor[g] else None for g in range(S)]
        fit_lags = [None if f is None else f[1] for f in fits]
        weights = [None if f is None else f[2] for f in fits]
        # (2) per-atom slopes and block self sums
        slopes, selfb = self._pass_atoms(fit_lags, weights)
        dts = {}
        for g in range(S):
            if fits[g] is not None:
                fit, sel, w, notes = fits[g]
                dts[self._names[g]] = self._dtensor(g, tens[g], lag, fit, sel, w, slopes[g], notes)
            tens[g] = None
        del tens, slopes
        # (3) collective cross-displacements: whole run and blocks
        Tb = T // B
        win, wsel = self._block_window(Tb)
        wts = _ols_weights(wsel * dt)
        Z = np.zeros((T, S, S))
        Zb = np.zeros((B, S, S))
        # one direction of one pair of collective vectors in flight (rows group·3 + direction of the store)
        with self._phase(S * (S + 1) // 2, "cross-displacements (FFT)", unit="pair") as bar:
            for i in range(S):
                for j in range(i, S):
                    Ri = self._Rstore.read_rows(3 * i, 3)
                    Rj = Ri if j == i else self._Rstore.read_rows(3 * j, 3)
                    Z[:, i, j] = Z[:, j, i] = cross_msd_sum(Ri, Rj, workers=self.workers)
                    for b in range(B):
                        seg = slice(b * Tb, (b + 1) * Tb)
                        zb = cross_msd_sum(Ri[:, seg], Rj[:, seg], workers=self.workers)
                        Zb[b, i, j] = Zb[b, j, i] = float(zb[wsel] @ wts)
                    del Ri, Rj
                    bar.update(1)
        Sb = selfb[:, :, wsel] @ wts   # (B, S) slopes of the block self sums
        from scipy.special import stdtrit   # Student-t quantile (what scipy.stats.t.ppf calls; importing
                                            # scipy.stats would cost ~50 MB of Python objects for one number)

        ci = float(stdtrit(B - 1, 0.975)) if B >= 2 else float("nan")
        out = dict(L=None, L_stderr=None, L_self=None, L_self_stderr=None, L_distinct=None, L_distinct_stderr=None,
                   sigma_ij_S_cm=None, sigma_ij_stderr_S_cm=None, sigma_S_cm=None, sigma_stderr_S_cm=None,
                   sigma_NE_S_cm=None, sigma_NE_stderr_S_cm=None, transference=None, transference_stderr=None,
                   haven_ratio=None, haven_ratio_stderr=None, haven_ratio_groups=None,
                   haven_ratio_groups_stderr=None, block_L=None, block_L_self=None)
        full = None
        if self._T_K is not None:
            Lb = onsager_L_SI(Zb, self._V, self._T_K)
            Lsb = onsager_L_SI(Sb, self._V, self._T_K)

            def se(x):
                return x.std(axis=0, ddof=1) / math.sqrt(B) if B >= 2 else np.full(x.shape[1:], np.nan)
            Ldb = Lb - np.einsum("bi,ij->bij", Lsb, np.eye(S))
            z = self._z
            zz = np.outer(z, z) * E_C ** 2 * 1e-2   # S/m → S/cm
            vals, errs = _jackknife(_derived(z), Lb, Lsb)
            out.update(L=Lb.mean(0), L_stderr=se(Lb), L_self=Lsb.mean(0), L_self_stderr=se(Lsb),
                       L_distinct=Ldb.mean(0), L_distinct_stderr=se(Ldb),
                       sigma_ij_S_cm=zz * Lb.mean(0), sigma_ij_stderr_S_cm=np.abs(zz) * se(Lb),
                       sigma_S_cm=float(vals[0]) * 1e-2, sigma_stderr_S_cm=float(errs[0]) * 1e-2,
                       sigma_NE_S_cm=float(vals[1]) * 1e-2, sigma_NE_stderr_S_cm=float(errs[1]) * 1e-2,
                       haven_ratio=float(vals[2]), haven_ratio_stderr=float(errs[2]),
                       transference=vals[3:3 + S], transference_stderr=errs[3:3 + S],
                       haven_ratio_groups=vals[3 + S:], haven_ratio_groups_stderr=errs[3 + S:],
                       block_L=Lb, block_L_self=Lsb)
            f0, f1 = self.fit_fractions
            fsel = np.nonzero((lag >= f0 * lag[-1] - 1e-9) & (lag <= f1 * lag[-1] + 1e-9) & (lag > 0))[0]
            if len(fsel) >= 3:
                wf = _ols_weights(lag[fsel])
                Lf = onsager_L_SI(np.einsum("tij,t->ij", Z[fsel], wf), self._V, self._T_K)
                Lsf = onsager_L_SI(self_full[fsel].T @ wf, self._V, self._T_K)
                v = _derived(z)(Lf, Lsf)
                full = {"window_ps": [float(lag[fsel[0]]), float(lag[fsel[-1]])], "L": Lf, "L_self": Lsf,
                        "sigma_mS_cm": float(v[0]) * 10.0, "sigma_NE_mS_cm": float(v[1]) * 10.0,
                        "haven_ratio": float(v[2]), "transference": v[3:3 + S]}
        fr = self.frame_range
        meta.update({"frames": [fr.start, fr.stop, fr.step], "units": {
            "L": "J⁻¹ m⁻¹ s⁻¹ (Z_ij slope in m²/s over 6 V k_B T)", "sigma": "S/cm (JSON: mS/cm)"},
            "block_fit_rule": (f"OLS on lags {self.fit_fractions[0]:g}–{self.fit_fractions[1]:g} × the block's longest "
                               "lag" if self.fit is None else "given by the user"),
            "errors": ("jackknife over independent time blocks (linear quantities: standard error of the block mean); "
                       "the collective terms have one series per group and a large variance"),
            "frames_dropped": int(T - B * Tb)})
        return OnsagerResult(
            groups=list(self._names), charges=self._z.copy(),
            n_atoms=np.array([len(g) for g in self._groups], dtype=np.int64), lag_ps=lag, cross_msd_A2=Z,
            self_msd_A2=self_full, ci95_factor=ci, n_blocks=B, block_frames=int(Tb), block_fit_window_ps=win,
            d_tensors=dts, volume_A3=float(self._V), temperature_K=self._T_K, dt_ps=float(dt), n_frames=int(T),
            meta=meta, full_run=None if full is None else to_jsonable(full), **out)


def onsager(traj, groups=None, *, charges="formal", center=None, ligand=None, cutoff=None, temperature=None,
            frame="system", drift_weights="mass", framework=None, n_blocks=DEFAULT_N_BLOCKS, fit=None,
            fit_fractions=DEFAULT_FIT_FRACTIONS, tensor_fit=None, tensors=True, n_boot=DEFAULT_N_BOOT, seed=0,
            start=None, stop=None, step=None, mode="auto", scratch_dir=None, workers=2, memory=None,
            progress=None) -> OnsagerResult:
    """Onsager coefficients L_ij (self and distinct), collective σ, transference numbers, Haven ratios and the
    diffusion tensor of every group, streamed (SPEC §9; definitions in the module docstring and docs/onsager.md).

    Parameters
    ----------
    traj : Trajectory
        Evenly spaced frames, unwrapped positions (the trajectory's own unwrapping).
    groups : str or sequence, optional
        Groups i: species names or selections (``"Li P Cl"``, ``["Li", "Cl"]``).  Default: every species.
        With ``center``/``ligand`` the polyanions form one more group (named e.g. ``"PS4"``) whose displacement
        is that of the centre atom; their ligands are removed from every other group and the centre species is
        not a group of its own.
    charges : "formal" or dict
        Charge z_i (e) of one member of each group: the formal ionic charges (polyanion: centre + ligands,
        e.g. P⁵⁺ + 4 S²⁻ = −3) or ``{name: z}``.
    center, ligand : str, optional
        Polyanion centre and ligand species (e.g. ``"P"``, ``"S"``); ``cutoff`` (Å) as in
        :func:`anionmotion.find_polyanions`.
    temperature : float, optional, K
        Needed for L_ij and σ (default: the trajectory's metadata); without it only Z_ij and D tensors.
    frame : {"system", "framework", "none"}
        Reference frame of the displacements (module docstring); default the whole system's centre of mass.
    drift_weights : {"mass", "unweighted"}
    framework : selection, optional
        Reference atoms of ``frame="framework"``.
    n_blocks : int
        Independent time blocks for the errors of L_ij (default 5; each at least 8 frames).
    fit : (float, float), optional, ps
        Fit window of the block cross-displacements (default ``fit_fractions`` × the block's longest lag).
    fit_fractions : (float, float)
    tensor_fit : (float, float), optional, ps
        Window of the D tensors (default: the window :func:`anionmotion.fit_diffusion` chooses for each group).
    tensors : bool or sequence of str
        Compute the D tensors of every group (True), of none, or of the named groups (per-atom FFTs of their
        atoms in the second pass; the other groups only need their block self sums there).
    n_boot : int
        Bootstrap resamples over atoms for the D-tensor errors; ``seed`` seeds them.
    start, stop, step : int, optional
    mode : {"auto", "memory", "out-of-core"}
        Where the position store lives.
    scratch_dir : str, optional
    workers : int
        Threads for scipy.fft.
    memory : str or int, optional
        Memory budget (default half the available RAM); peak memory does not grow with the trajectory length
        beyond the per-lag results.
    progress : bool, optional

    Returns
    -------
    OnsagerResult

    References
    ----------
    SPEC §9; Fong, Self, McCloskey, Persson, Macromolecules 54, 2575 (2021) (Onsager coefficients from MD);
    Wheeler & Newman, J. Phys. Chem. B 108, 18353 (2004); Murch, Solid State Ionics 7, 177 (1982) (Haven ratio).
    """
    return Onsager(groups, charges=charges, center=center, ligand=ligand, cutoff=cutoff, temperature=temperature,
                   frame=frame, drift_weights=drift_weights, framework=framework, n_blocks=n_blocks, fit=fit,
                   fit_fractions=fit_fractions, tensor_fit=tensor_fit, tensors=tensors, n_boot=n_boot, seed=seed,
                   mode=mode, scratch_dir=scratch_dir, workers=workers, memory=memory,
                   progress=progress).run(traj, start, stop, step)


def d_tensor(traj, species, *, fit=None, frame="framework", drift_weights="mass", framework=None, temperature=None,
             charge=None, n_boot=DEFAULT_N_BOOT, seed=0, start=None, stop=None, step=None, mode="auto",
             scratch_dir=None, workers=2, memory=None, progress=None) -> DTensorResult:
    """Diffusion tensor of one species: D_ab = slope(⟨Δr_a Δr_b⟩)/2 with eigenvalues, axes and bootstrap errors.

    Parameters
    ----------
    traj : Trajectory
    species : str or selection
        E.g. ``"Li"``.
    fit : (float, float), optional, ps
        Fit window; default the window :func:`anionmotion.fit_diffusion` (``estimator="auto"``) chooses on
        this MSD.  Passing the msd fit's ``fit_window_ps`` reproduces its lags exactly.
    frame : {"framework", "system", "none"}
        Default ``"framework"``: the drift rule of :func:`anionmotion.msd` (framework centre of mass subtracted
        when there are framework atoms), so trace(D)/3 equals msd's D on the same window.
    temperature : float, optional, K
        For the Nernst–Einstein σ tensor.
    charge : float, optional, e
        Default: the formal ionic charge (σ tensor omitted when there is none).
    n_boot, seed : int
        Bootstrap resamples over atoms and their seed.

    Returns
    -------
    DTensorResult
    """
    name = species if isinstance(species, str) else "group0"
    charges = {name: float(charge)} if charge is not None else "formal"
    an = Onsager([species], charges=charges, temperature=temperature, frame=frame, drift_weights=drift_weights,
                 framework=framework, n_blocks=1, tensor_fit=fit, n_boot=n_boot, seed=seed, mode=mode,
                 scratch_dir=scratch_dir, workers=workers, memory=memory, progress=progress)
    res = an.run(traj, start, stop, step)
    return res.d_tensors[res.groups[0]]
