"""How results tabulate and draw themselves: one definition used by the CLI, the report and the API.

Every result class of a registered analysis has a *view* here: the tables it
writes (CSV, with named columns and units in the header) and the figures it
draws (each with a file stem, a caption and a ``draw(axes)`` function).  The
:class:`~anionmotion.results.Result` methods :meth:`~anionmotion.results.Result.tables`,
:meth:`~anionmotion.results.Result.figures` and :meth:`~anionmotion.results.Result.plot`
dispatch here by result class, so ``anionmotion msd --plot``, the report's
``figures/msd.png`` and ``res.plot()`` in a notebook are the same picture.

Views only read result attributes; they compute nothing that the analysis did not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..units import A2_PS_TO_CM2_S

__all__ = ["Table", "FigureSpec", "tables", "figures", "register_view", "table_csv", "write_table_csv"]


@dataclass(frozen=True)
class Table:
    """A table a result writes as CSV.

    Attributes
    ----------
    name : str
        File name (``msd.csv``).
    header : list of str
        Column names with units (``lag_ps``, ``msd_A2``).
    data : ndarray, shape (n_rows, n_columns)
    """

    name: str
    header: list
    data: np.ndarray

    def __iter__(self):  # (name, header, data) unpacking, as the report's table tuples
        return iter((self.name, self.header, self.data))

    def to_csv(self) -> str:
        return table_csv(self.header, self.data)

    def write(self, fh):
        """Write the CSV text to the open file ``fh`` chunk by chunk."""
        write_table_csv(fh, self.header, self.data)


@dataclass(frozen=True)
class FigureSpec:
    """A figure a result draws: ``draw(axes)`` fills ``nrows × ncols`` axes (a flat list, row by row)."""

    stem: str
    caption: str
    draw: Callable
    ncols: int = 1
    width: float = 6.4
    height: float = 4.0
    nrows: int = 1


def _csv_rows(data, chunk=16384):
    """CSV lines of a 2-D table, chunk by chunk (10 significant digits, NaN/inf as empty fields)."""
    data = np.asarray(data, dtype=np.float64)
    data = data.reshape(len(data), -1)
    for i in range(0, len(data), chunk):
        yield "".join(",".join("" if not math.isfinite(x) else f"{x:.10g}" for x in row) + "\n"
                      for row in data[i:i + chunk].tolist())


def table_csv(header, data) -> str:
    """CSV text: one header line, then rows with 10 significant digits (NaN as empty)."""
    return ",".join(header) + "\n" + "".join(_csv_rows(data))


def write_table_csv(fh, header, data):
    """Write :func:`table_csv` text to an open file chunk by chunk (memory does not grow with the rows)."""
    fh.write(",".join(header) + "\n")
    for text in _csv_rows(data):
        fh.write(text)


_VIEWS = {}


def register_view(class_name):
    """Decorator: register ``(tables_fn, figures_fn)`` of a view class for results of class ``class_name``."""
    def deco(view_cls):
        _VIEWS[class_name] = view_cls()
        return view_cls
    return deco


def _view(res):
    for cls in type(res).__mro__:
        v = _VIEWS.get(cls.__name__)
        if v is not None:
            return v
    return None


def tables(res, **context) -> list:
    """Tables of ``res`` (list of :class:`Table`); empty for result classes without a view."""
    v = _view(res)
    return [] if v is None else [t for t in v.tables(res, **context) if t is not None]


def figures(res, **context) -> list:
    """Figures of ``res`` (list of :class:`FigureSpec`); empty for result classes without a view."""
    v = _view(res)
    return [] if v is None else [f for f in v.figures(res, **context) if f is not None]


def _arr(x):
    return np.asarray(x, dtype=np.float64)


# --------------------------------------------------------------------------------------------- MSD / diffusion
@register_view("MSDResult")
class _MSDView:
    def tables(self, res, **_):
        cols, header = [_arr(res.lag), _arr(res.msd)], ["lag_ps", "msd_A2"]
        if res.msd_xyz is not None:
            xyz = _arr(res.msd_xyz)
            cols += [xyz[:, 0], xyz[:, 1], xyz[:, 2]]
            header += ["msd_x_A2", "msd_y_A2", "msd_z_A2"]
        cols.append(_arr(res.n_origins))
        header.append("n_origins")
        if res.charge_msd is not None:
            cols.append(_arr(res.charge_msd))
            header.append("charge_msd_e2A2")
        if getattr(res, "alpha2", None) is not None:
            cols.append(_arr(res.alpha2))
            header.append("alpha2")
        return [Table("msd.csv", header, np.column_stack(cols))]

    def figures(self, res, fit=None, **_):
        def draw(axes):
            ax = axes[0]
            lag, msd = _arr(res.lag), _arr(res.msd)
            ax.plot(lag, msd, color="k", lw=1.5, label="total")
            if res.msd_xyz is not None:
                for k, lab in enumerate("xyz"):
                    ax.plot(lag, _arr(res.msd_xyz)[:, k], lw=0.8, label=lab)
            if fit is not None:
                win = getattr(fit, "fit_window_ps", None)
                if win is not None:
                    ax.axvspan(win[0], win[1], color="0.9", zorder=0, label="fit window")
                D = getattr(fit, "D_cm2_s", None)
                if D is not None and np.isfinite(D) and not bool(getattr(fit, "below_threshold", False)):
                    slope = 6 * D / A2_PS_TO_CM2_S
                    icpt = getattr(fit, "intercept_A2", None)
                    if icpt is None and win is not None:
                        sel = (lag >= win[0]) & (lag <= win[1])
                        icpt = float(np.mean(msd[sel] - slope * lag[sel])) if sel.any() else 0.0
                    tt = np.array([0.0, lag[-1]])
                    err = getattr(fit, "D_stderr_cm2_s", None)
                    lab = f"fit: D = {D:.3g}" + (f" ± {err:.2g}" if err is not None and np.isfinite(err) else "") \
                        + " cm²/s"
                    ax.plot(tt, (icpt or 0.0) + slope * tt, "--", color="C3", label=lab)
            ax.set_xlabel("lag time τ (ps)")
            ax.set_ylabel("MSD (Å²)")
            ax.set_title(f"{res.species}: {res.n_atoms} atoms, {res.n_frames} frames, TMSD {res.tmsd:.3g} Å²")
            ax.legend(frameon=False, fontsize=8)

        return [FigureSpec("msd", f"Mean-squared displacement of {res.species} (all-origin, FFT); shaded: the fit "
                                  "window; dashed: the fitted line 6Dτ + c.", draw)]


# --------------------------------------------------------------------------------------------- hops
@register_view("HopsResult")
class _HopsView:
    def tables(self, res, **_):
        if not len(res.event_atom):
            return []
        return [Table("hops.csv", ["atom", "frame", "time_ps", "start_frame", "stop_frame"],
                      np.column_stack([res.event_atom, res.event_frame, res.event_time_ps, res.event_start_frame,
                                       res.event_stop_frame]).astype(np.float64))]

    def figures(self, res, **_):
        def draw(axes):
            ax = axes[0]
            if len(res.event_atom):
                ax.plot(_arr(res.event_time_ps), res.event_atom, "o", ms=3)
            else:
                ax.text(0.5, 0.5, "no hop events", transform=ax.transAxes, ha="center")
            ax.set_xlabel("time (ps)")
            ax.set_ylabel(f"{res.species} atom index")

        return [FigureSpec("hops", f"Hop events of {res.species} (long-lived displacement functional, SPEC §3): one "
                                   "dot per event at its centre time.", draw)]


# --------------------------------------------------------------------------------------------- reorientation
def _rho_of(res, anion):
    """ρ(θ, φ) of all anions (``anion`` None) or of anion ``anion``, and a label."""
    from ..errors import OptionError

    if anion is None:
        return res.rho, f"{res.n_anions} × {res.species}"
    if not 0 <= int(anion) < res.n_anions:
        raise OptionError(f"anion {anion} out of range: there are {res.n_anions} polyanions (0..{res.n_anions - 1})")
    return res.rho_per_anion[int(anion)], f"{res.species} #{int(anion)}"


def _legendre_of(res):
    """[(label, C_l)] for the Legendre ACFs the result has (C1, C2 always; C3, C4 when computed)."""
    out = [("C1", res.C1), ("C2", res.C2)]
    for k in ("C3", "C4"):
        if getattr(res, k, None) is not None:
            out.append((k, getattr(res, k)))
    return out


#: the frequency columns of rotation_frequency.csv: (prefix, key in result.frequency / frequency_match)
_FREQ_COLUMNS = (("nu_rot_threshold", "threshold"), ("nu_rot_symmetry_events", "symmetry_events"),
                 ("nu_rot_states", "states"))


def _frequency_table(res):
    """One-row table of ν_rot per method, ν_hop and ν_rot/ν_hop with their CIs (NaN where not computed)."""
    header, row = [], []

    def put(prefix, r, unit, value="rate"):
        header.extend([f"{prefix}{unit}", f"{prefix}_ci_low{unit}", f"{prefix}_ci_high{unit}"])
        r = r or {}
        row.extend([np.nan if r.get(k) is None else float(r[k]) for k in (value, "ci_low", "ci_high")])

    fq = getattr(res, "frequency", None) or {}
    for prefix, key in _FREQ_COLUMNS:
        put(prefix, fq.get(key), "_per_ns")
    m = getattr(res, "frequency_match", None) or {}
    put("nu_hop", m.get("nu_hop_per_ns"), "_per_ns")
    for key in ("threshold", "states"):
        put(f"ratio_{key}", m.get(f"ratio_{key}"), "", value="ratio")
    return Table("rotation_frequency.csv", header, np.array([row]))


@register_view("ReorientationResult")
class _ReorientationView:
    def tables(self, res, anion=None, **_):
        leg = _legendre_of(res)
        out = [Table("reorientation.csv", ["lag_ps"] + [k for k, _ in leg],
                     np.column_stack([_arr(res.lag_ps)] + [_arr(c) for _, c in leg]))]
        rot = getattr(res, "rotor", None) or {}
        if rot.get("harmonics"):
            out.append(Table("rotor_functions.csv", ["lag_ps"] + [f"C_{k}" for k in rot["harmonics"]],
                             np.column_stack([_arr(res.lag_ps)] + [_arr(rot["C"][k]) for k in rot["harmonics"]])))
        sts = getattr(res, "states", None)
        if sts:
            by = sts["transitions_by_angle_deg"]
            out.append(Table("orientation_transitions.csv", ["rotation_angle_deg", "transitions"],
                             np.array([[float(k), float(v)] for k, v in by.items()]).reshape(len(by), 2)))
        if getattr(res, "frequency", None):
            out.append(_frequency_table(res))
        if res.rho is not None and np.size(res.rho):
            rho, _ = _rho_of(res, anion)
            te, pe = _arr(res.rho_theta_edges), _arr(res.rho_phi_edges)
            ti, pj = np.meshgrid(np.arange(len(te) - 1), np.arange(len(pe) - 1), indexing="ij")
            ti, pj = ti.ravel(), pj.ravel()
            out.append(Table("orientation_density.csv",
                             ["theta_lo_deg", "theta_hi_deg", "phi_lo_deg", "phi_hi_deg", "rho_per_sr"],
                             np.column_stack([te[ti], te[ti + 1], pe[pj], pe[pj + 1], _arr(rho)[ti, pj]])))
        return out

    def figures(self, res, anion=None, **_):
        method = res.meta.get("event_method", "threshold")
        ev = (res.events or {}).get(method) or {}

        def draw(axes):
            a = axes[0]
            a.plot(res.lag_ps, res.C1, label="C1 = ⟨u(t0+t)·u(t0)⟩")
            a.plot(res.lag_ps, res.C2, label="C2 = ⟨P2(u(t0+t)·u(t0))⟩")
            a.axhline(0.9, color="grey", ls=":", lw=0.8, label="0.9 (paper 003)")
            a.axvline(res.reliable_lag_ps, color="k", ls=":", lw=0.8, label="longest reliable lag")
            a.set_xlabel("lag time (ps)")
            a.set_ylabel("C(t) (dimensionless)")
            a.set_title(f"{res.n_anions} × {res.species}: rotating = {res.rotating}", fontsize=10)
            a.legend(frameon=False, fontsize=8)
            a = axes[1]
            angles = getattr(res, "angles_deg", None)
            if angles is not None and np.size(angles) and res.n_anions:
                for k, lab in enumerate("abc"):
                    a.plot(_arr(res.times_ps), angles[:, 0, k], lw=0.8, label=f"θ{lab}")
                if ev:
                    for tt in _arr(ev["time_ps"])[np.asarray(ev["anion"]) == 0]:
                        a.axvline(tt, color="r", lw=0.6, alpha=0.6)
                a.legend(frameon=False, fontsize=8)
            a.set_xlabel("time (ps)")
            a.set_ylabel("angle to cell vector (deg)")
            a.set_title("anion 0 (red: its rotation events)", fontsize=10)
            a = axes[2]
            per = np.asarray(ev.get("per_anion", np.zeros(res.n_anions)))
            a.bar(np.arange(len(per)), per, color="C2")
            a.set_xlabel("anion")
            a.set_ylabel("rotation events")
            a.set_title(f"{res.rotation_frequency_per_ns:.3g} per anion per ns ({method})", fontsize=10)

        out = [FigureSpec("reorientation", "Reorientation of the polyanions (SPEC §4): the ACFs C1, C2 of the "
                                           "centre→ligand unit vectors (dotted: the 0.9 rotation criterion and the "
                                           "longest reliable lag), the angles of anion 0 to the cell vectors with its "
                                           "rotation events, and the events per anion.", draw, ncols=3, width=5.2)]
        if res.rho is not None and np.size(res.rho):
            rho, what = _rho_of(res, anion)

            def draw_rho(axes):
                m = axes[0].pcolormesh(res.rho_phi_edges, res.rho_theta_edges, rho, shading="flat", cmap="viridis")
                axes[0].figure.colorbar(m, ax=axes[0], label="ρ(θ, φ) (sr⁻¹)")
                axes[0].invert_yaxis()
                axes[0].set_xlabel("φ (deg, from y)")
                axes[0].set_ylabel("θ (deg, from z)")
                axes[0].set_title(f"bond directions of {what}", fontsize=10)

            out.append(FigureSpec("orientation_density", "ρ(θ, φ): density of the ligand bond directions (θ from z, "
                                                         "φ from y in the xy plane; SPEC §4).", draw_rho))
        if len(_legendre_of(res)) > 2 or (getattr(res, "rotor", None) or {}).get("harmonics") or \
                getattr(res, "states", None):
            out.append(FigureSpec("rotor_functions", "Beyond C1/C2 (docs/rotor-functions.md): the Legendre ACFs "
                                                     "C_l = ⟨P_l(u(t0+t)·u(t0))⟩, the cubic-harmonic rotor-function "
                                                     "ACFs (dashed: their decorrelated baseline ⟨F⟩²/⟨F²⟩; libration "
                                                     "leaves them on a plateau, only reorientation decays them), and "
                                                     "ν_rot per method with ν_hop and their 95 % intervals.",
                                  lambda axes: _draw_rotor(res, axes), ncols=3, width=5.2))
        return out


def _draw_rotor(res, axes):
    a = axes[0]
    for k, c in _legendre_of(res):
        a.plot(res.lag_ps, c, label=f"{k} = ⟨P{k[1:]}⟩")
    a.axvline(res.reliable_lag_ps, color="k", ls=":", lw=0.8)
    a.set_xlabel("lag time (ps)")
    a.set_ylabel("C_l(t) (dimensionless)")
    a.set_title("Legendre ACFs", fontsize=10)
    a.legend(frameon=False, fontsize=8)
    a = axes[1]
    rot = getattr(res, "rotor", None) or {}
    for i, k in enumerate(rot.get("harmonics", [])):
        a.plot(res.lag_ps, rot["C"][k], color=f"C{i}", label=f"F from {k}")
        if rot["baseline"].get(k) is not None:
            a.axhline(rot["baseline"][k], color=f"C{i}", ls="--", lw=0.8)
    if not rot.get("harmonics"):
        a.text(0.5, 0.5, "no rotor function" + (f": {'; '.join(rot['dropped'].values())}" if rot.get("dropped") else ""),
               transform=a.transAxes, ha="center", fontsize=8, wrap=True)
    else:
        a.legend(frameon=False, fontsize=8)
    a.axvline(res.reliable_lag_ps, color="k", ls=":", lw=0.8)
    a.set_xlabel("lag time (ps)")
    a.set_ylabel("C_F(t) (dimensionless)")
    a.set_title("rotor functions", fontsize=10)
    a = axes[2]
    fq = getattr(res, "frequency", None) or {}
    m = getattr(res, "frequency_match", None) or {}
    items = [(f"ν_rot {key.replace('_', ' ')}", fq.get(key)) for _, key in _FREQ_COLUMNS]
    items.append((f"ν_hop {m.get('cation', '')}".strip(), m.get("nu_hop_per_ns")))
    shown = 0
    for i, (lab, r) in enumerate(items):
        if not r or r.get("rate") is None:
            continue
        lo, hi, color = r["ci_low"], r["ci_high"], "C3" if lab.startswith("ν_hop") else "C0"
        if r["rate"] > 0:
            a.errorbar([i], [r["rate"]], yerr=[[r["rate"] - lo], [hi - r["rate"]]], fmt="o", color=color, capsize=3)
        else:                                                  # no events: only the upper limit is informative
            a.plot([i], [hi], "v", color=color)
            a.annotate("0 events", (i, hi), ha="center", va="bottom", fontsize=7)
        shown += 1
    a.set_xticks(range(len(items)))
    a.set_xticklabels([lab for lab, _ in items], rotation=20, ha="right", fontsize=8)
    a.set_xlim(-0.5, len(items) - 0.5)
    a.set_ylabel("rate per anion / cation (ns⁻¹)")
    if shown:
        a.set_yscale("log")
    title = "frequencies (95 % CI)"
    r = m.get("ratio_states") or m.get("ratio_threshold")
    if r and r.get("ratio") is not None:
        title = f"ν_rot/ν_hop = {r['ratio']:.3g} [{r['ci_low']:.2g}, " + \
            ("∞" if r["ci_high"] is None else f"{r['ci_high']:.2g}") + "]"
    a.set_title(title, fontsize=10)
    if not shown:
        a.text(0.5, 0.5, "no frequencies", transform=a.transAxes, ha="center")


# --------------------------------------------------------------------------------------------- coupling
@register_view("CouplingResult")
class _CouplingView:
    def tables(self, res, **_):
        if not res.n_events:
            return []
        return [Table("coupling_events.csv",
                      ["cation_atom", "anion", "ligand_atom", "start_frame", "stop_frame", "duration_ps", "pearson_r"],
                      np.column_stack([res.event_cation, res.event_anion, res.event_ligand, res.event_start_frame,
                                       res.event_stop_frame, res.event_duration_ps,
                                       res.event_pearson]).astype(np.float64))]

    def figures(self, res, **_):
        def draw(axes):
            ax = axes[0]
            e = _arr(res.pearson_histogram["edges"])
            c = _arr(res.pearson_histogram["counts"])
            if c.sum() > 0:
                ax.bar(0.5 * (e[1:] + e[:-1]), c / c.sum(), width=np.diff(e), color="tab:green", edgecolor="k")
                if res.pearson_mean is not None:
                    ax.axvline(res.pearson_mean, color="r", label=f"mean {res.pearson_mean:.3f}")
            else:
                ax.text(0.5, 0.5, "no residence events with a defined r", transform=ax.transAxes, ha="center")
            ax.axvline(0.5, color="grey", ls=":", label="r = 0.5 (coupled)")
            ax.set_xlabel("Pearson r(θ_C–cation, θ_C–A) (dimensionless)")
            ax.set_ylabel("fraction of events")
            ax.set_title(f"{res.cation}–{res.species}: {res.n_events} residence events")
            ax.legend(frameon=False, fontsize=8)
            if res.g_r:
                axes[1].plot(_arr(res.g_r["r_A"]), _arr(res.g_r["g"]))
            axes[1].axvline(res.shell_A, color="r", ls="--", label=f"shell {res.shell_A:.2f} Å ({res.shell_source})")
            axes[1].set_xlabel("r (Å)")
            axes[1].set_ylabel("g_C–cation(r)")
            axes[1].legend(frameon=False, fontsize=8)

        return [FigureSpec("coupling", "Distribution of the Pearson r between the cation and ligand angular "
                                       "displacements over residence events (SPEC §5; dotted: r = 0.5, coupled) and "
                                       "the centre–cation g(r) with the first-shell radius.", draw, ncols=2)]


# --------------------------------------------------------------------------------------------- timeline
@register_view("TimelineResult")
class _TimelineView:
    def tables(self, res, hop=0, **_):
        if not res.hops:
            return []
        h = res.hops[min(hop, len(res.hops) - 1)]
        ang = _arr(h["ligand_angle_deg"])
        cols, header = [_arr(h["times_ps"]), _arr(h["cation_displacement_A"])], ["time_ps", "cation_displacement_A"]
        for k in range(ang.shape[1]):
            for j in range(ang.shape[2]):
                cols.append(ang[:, k, j])
                header.append(f"anion{h['anions'][k]}_ligand{j}_angle_deg")
        return [Table("timeline.csv", header, np.column_stack(cols))]

    def figures(self, res, max_panels=6, **_):
        hs = list(res.hops[:max_panels])
        if not hs:
            return []
        cols = min(len(hs), 3)
        rows = -(-len(hs) // cols)

        def draw(axes):
            for ax, h in zip(axes, hs):
                t = _arr(h["times_ps"])
                ax.plot(t, _arr(h["cation_displacement_A"]), color="k", lw=1.4)
                ax.set_xlabel("time (ps)")
                ax.set_ylabel(f"{res.cation} displacement |r(t) − r(t_ini)| (Å)")
                ax.axvline(h["hop_time_ps"], color="grey", lw=0.8, ls=":")
                ax2 = ax.twinx()
                ang = _arr(h["ligand_angle_deg"])
                lig = np.asarray(h.get("ligand_atoms", np.zeros(ang.shape[1:], int)))
                for j, a in enumerate(h["anions"]):
                    for k in range(ang.shape[2]):
                        if lig.ndim == 2 and lig[j, k] < 0:
                            continue
                        ax2.plot(t, ang[:, j, k], color=f"C{j}", lw=0.7, alpha=0.8,
                                 label=f"{res.species} {a}" if k == 0 else None)
                ax2.set_ylabel("ligand angular displacement (deg)")
                ax2.legend(fontsize=7, loc="upper left", frameon=False)
                ax.set_title(f"hop {h['hop']}: {res.cation} {h['cation_atom']} at {h['hop_time_ps']:.4g} ps",
                             fontsize=9)
            for ax in axes[len(hs):]:
                ax.axis("off")

        return [FigureSpec("timeline", "Around cation hops (SPEC §5; paper 003 Fig. 3b): the cation's displacement "
                                       "from the start of the window (black) and the angular displacement of every "
                                       "ligand of its nearest polyanions (colours); dotted: the hop time.", draw,
                           ncols=cols, nrows=rows, width=4.6, height=3.4)]


# --------------------------------------------------------------------------------------------- spectra
@register_view("VDOSResult")
class _VDOSView:
    def tables(self, res, **_):
        keys = list(res.vdos)
        return [Table("vdos.csv", ["freq_THz", "freq_cm1", "freq_meV"] + [f"vdos_{k}_per_THz" for k in keys],
                      np.column_stack([_arr(res.freq_THz), _arr(res.freq_cm1), _arr(res.freq_meV)]
                                      + [_arr(res.vdos[k]) for k in keys]))]

    def figures(self, res, **_):
        def draw(axes):
            f = _arr(res.freq_THz)
            for sp, g in res.vdos.items():
                bc = (res.band_center_THz or {}).get(sp)
                lab = sp if bc is None or not np.isfinite(bc) else f"{sp} (ν̄ = {bc:.2f} THz)"
                line, = axes[0].plot(f, _arr(g), lw=1.6 if sp == "total" else 0.9, label=lab,
                                     color="k" if sp == "total" else None)
                if sp != "total" and bc is not None and np.isfinite(bc):
                    axes[0].axvline(bc, color=line.get_color(), ls=":", lw=0.8)
            axes[0].set_xlabel("frequency ν (THz)")
            axes[0].set_ylabel("g(ν) (THz⁻¹)")
            axes[0].legend(frameon=False, fontsize=8)
            lag = _arr(res.lag_ps)
            for sp, c in res.vacf.items():
                if sp != "total":
                    c = _arr(c)
                    axes[1].plot(lag, c / c[0] if c[0] else c, label=sp)
            axes[1].set_xlabel("t (ps)")
            axes[1].set_ylabel("VACF / VACF(0)")
            if len(lag) > 1:
                axes[1].set_xlim(0, min(lag[-1], 2.0))
            axes[1].legend(frameon=False, fontsize=8)

        return [FigureSpec("vdos", "Atom-projected vibrational density of states (SPEC §6), each normalised to 3·N of "
                                   "its species, with the band centres (dotted), and the normalised VACF.", draw,
                           ncols=2)]


@register_view("LibrationResult")
class _LibrationView:
    def tables(self, res, **_):
        cols = [_arr(res.freq_THz), _arr(res.freq_cm1), _arr(res.freq_meV), _arr(res.spectrum)]
        header = ["freq_THz", "freq_cm1", "freq_meV", "libration_per_THz"]
        if res.cation_vdos is not None:
            cols.append(_arr(res.cation_vdos))
            header.append(f"vdos_{res.cation}_per_THz")
        return [Table("libration.csv", header, np.column_stack(cols))]

    def figures(self, res, **_):
        def unit_area(y, f):
            y = np.clip(_arr(y), 0, None)
            area = np.trapezoid(y, f) if len(f) > 1 else 0.0
            return y / area if area else y

        def draw(axes):
            f = _arr(res.freq_THz)
            s = unit_area(res.spectrum, f)
            axes[0].plot(f, s, label=f"libration {res.meta.get('polyanion', '')}".strip())
            if res.cation_vdos is not None:
                g = unit_area(res.cation_vdos, f)
                axes[0].plot(f, g, label=f"{res.cation} VDOS")
                ov = res.overlap_with_cation
                axes[0].fill_between(f, np.minimum(s, g), color="0.8",
                                     label="overlap" + (f" {ov:.3f}" if ov is not None else ""))
            axes[0].set_xlabel("frequency ν (THz)")
            axes[0].set_ylabel("spectrum scaled to unit area (THz⁻¹)")
            axes[0].legend(frameon=False, fontsize=8)
            lag, c = _arr(res.lag_ps), _arr(res.omega_acf)
            axes[1].plot(lag, c / c[0] if len(c) and c[0] else c)
            axes[1].set_xlabel("t (ps)")
            axes[1].set_ylabel("C_ω(t) / C_ω(0)")
            if len(lag) > 1:
                axes[1].set_xlim(0, min(lag[-1], 2.0))

        return [FigureSpec("libration", "Libration spectrum of the polyanions (angular-velocity ACF, SPEC §6) and the "
                                        "cation VDOS, each scaled to unit area (shaded: their overlap, a coupling "
                                        "measure), and the normalised ω ACF.", draw, ncols=2)]


# --------------------------------------------------------------------------------------------- structure
@register_view("DensityResult")
class _DensityView:
    def tables(self, res, **_):
        out = []
        for axis in ("a", "b", "c"):
            pr = (res.profiles or {}).get(axis)
            if pr:
                out.append(Table(f"density_profile_{axis}.csv", ["s", "x_A", "p_per_unit_s"],
                                 np.column_stack([_arr(pr["s"]), _arr(pr["x_A"]), _arr(pr["p"])])))
        return out

    def figures(self, res, **_):
        g = _arr(res.density)

        def draw(axes):
            for axis in ("a", "b", "c"):
                pr = (res.profiles or {}).get(axis)
                if pr:
                    axes[0].plot(pr["s"], pr["p"], label=axis)
            axes[0].set_xlabel("fractional coordinate s")
            axes[0].set_ylabel("p(s) (per unit s)")
            axes[0].legend(frameon=False)
            if g.ndim == 3 and g.size:
                m = axes[1].imshow(g.mean(axis=2).T, origin="lower", extent=(0, 1, 0, 1), aspect="auto")
                axes[1].figure.colorbar(m, ax=axes[1], label="mean over c of ρ (Å⁻³)")
            axes[1].set_xlabel("a (fractional)")
            axes[1].set_ylabel("b (fractional)")

        return [FigureSpec("density", f"{res.species} probability density (SPEC §7): 1-D distributions along a, b, c "
                                      "and the grid averaged along c (projection on the ab plane).", draw, ncols=2)]


@register_view("RDFResult")
class _RDFView:
    def tables(self, res, **_):
        keys = list(res.g)
        fe = res.free_energy_eV or {}
        header = ["r_A"] + [f"g_{k}" for k in keys] + [f"n_{k}" for k in keys] + [f"F_{k}_eV" for k in keys if k in fe]
        cols = [_arr(res.r_A)] + [_arr(res.g[k]) for k in keys] + [_arr(res.coordination[k]) for k in keys]
        cols += [np.array([np.nan if v is None else v for v in fe[k]], float) for k in keys if k in fe]
        return [Table("rdf.csv", header, np.column_stack(cols))]

    def figures(self, res, **_):
        fe = res.free_energy_eV or {}

        def draw(axes):
            r = _arr(res.r_A)
            for key in res.g:
                axes[0].plot(r, _arr(res.g[key]), label=key)
                if key in fe:
                    axes[1].plot(r, np.array([np.nan if v is None else v for v in fe[key]], float), label=key)
            axes[0].set_xlabel("r (Å)")
            axes[0].set_ylabel("g(r) (dimensionless)")
            axes[0].legend(frameon=False)
            axes[1].set_xlabel("r (Å)")
            axes[1].set_ylabel("F(r) (eV)")
            if not fe:
                axes[1].text(0.5, 0.5, "no temperature: F(r) not computed", transform=axes[1].transAxes,
                             ha="center")
            else:
                axes[1].legend(frameon=False)

        return [FigureSpec("rdf", "Radial distribution functions (minimum image, time-averaged; SPEC §7) and the "
                                  "free-energy profile F(r) = −k_B T ln g(r).", draw, ncols=2)]


# --------------------------------------------------------------------------------------------- van Hove, α₂
@register_view("VanHoveResult")
class _VanHoveView:
    def tables(self, res, **_):
        lags = [f"{x:.6g}ps" for x in _arr(res.lag_ps)]
        out = [Table("vanhove_self.csv", ["r_A"] + [f"Gs_{x}_A-3" for x in lags] + [f"4pir2Gs_{x}_A-1" for x in lags],
                     np.column_stack([_arr(res.r_A)] + list(_arr(res.G_s)) + list(_arr(res.radial_self))))]
        if res.G_d is not None:
            out.append(Table("vanhove_distinct.csv", ["r_A"] + [f"Gd_{x}" for x in lags],
                             np.column_stack([_arr(res.r_A)] + list(_arr(res.G_d)))))
        if res.alpha2 is not None:
            out.append(Table("alpha2.csv", ["lag_ps", "msd_A2", "m4_A4", "alpha2"],
                             np.column_stack([_arr(res.alpha2_lag_ps), _arr(res.msd_A2), _arr(res.m4_A4),
                                              _arr(res.alpha2)])))
        else:
            out.append(Table("alpha2.csv", ["lag_ps", "msd_A2", "m4_A4", "alpha2"],
                             np.column_stack([_arr(res.lag_ps), _arr(res.msd_at_lags_A2), _arr(res.m4_at_lags_A4),
                                              _arr(res.alpha2_at_lags)])))
        return out

    def figures(self, res, **_):
        def draw(axes):
            r = _arr(res.r_A)
            colors = [f"C{k % 10}" for k in range(len(res.lag_ps))]
            for k, lag in enumerate(_arr(res.lag_ps)):
                if lag <= 0:
                    continue
                axes[0].plot(r, _arr(res.radial_self)[k], color=colors[k], lw=1.2, label=f"{lag:.3g} ps")
                axes[0].plot(r, res.gaussian_self(k) * 4 * np.pi * r ** 2, color=colors[k], lw=0.7, ls="--")
            axes[0].set_yscale("log")
            top = _arr(res.radial_self)
            if np.any(top > 0):
                axes[0].set_ylim(max(top[top > 0].min(), top.max() * 1e-5), top.max() * 2)
            axes[0].set_xlabel("r (Å)")
            axes[0].set_ylabel("4πr² G_s(r, t) (Å⁻¹)")
            axes[0].legend(frameon=False, fontsize="small")
            if res.G_d is not None:
                for k, lag in enumerate(_arr(res.lag_ps)):
                    axes[1].plot(r, _arr(res.G_d)[k], color=colors[k], lw=1.0, label=f"{lag:.3g} ps")
                axes[1].axhline(1.0, color="grey", lw=0.5, ls=":")
            else:
                axes[1].text(0.5, 0.5, "distinct part not computed", transform=axes[1].transAxes, ha="center")
            axes[1].set_xlabel("r (Å)")
            axes[1].set_ylabel("G_d(r, t) (dimensionless)")
            if res.alpha2 is not None:
                lag, a2 = _arr(res.alpha2_lag_ps)[1:], _arr(res.alpha2)[1:]
                axes[2].plot(lag, a2, color="k", lw=1.2, label="every lag (FFT)")
            axes[2].plot(_arr(res.lag_ps), _arr(res.alpha2_at_lags), "o", color="tab:red", ms=4, label="histogram lags")
            axes[2].axhline(0.0, color="grey", lw=0.5, ls=":")
            axes[2].set_xscale("log")
            axes[2].set_xlabel("t (ps)")
            axes[2].set_ylabel("α₂(t)")
            axes[2].legend(frameon=False, fontsize="small")

        return [FigureSpec("vanhove", f"{res.species}: self van Hove function as 4πr²G_s(r, t) (solid; dashed: the "
                                      "Gaussian with the same MSD), distinct G_d(r, t) (minimum image, → 1 at large r) "
                                      "and the non-Gaussian parameter α₂(t) = 3⟨Δr⁴⟩/(5⟨Δr²⟩²) − 1 (SPEC §9).",
                           draw, ncols=3)]


# --------------------------------------------------------------------------------------------- sites
@register_view("SitesResult")
class _SitesView:
    def tables(self, res, **_):
        T = len(res.type_names)
        rows = []
        for t in range(T):
            r = res.residence[t]
            occ = _arr(res.occupancy)[_arr(res.site_type) == t]
            rows.append([t, int(_arr(res.n_sites_per_type)[t]), _arr(res.type_fraction_raw)[t],
                         _arr(res.type_fraction)[t], occ.mean() if len(occ) else np.nan,
                         *[np.nan if r[k] is None else r[k] for k in ("mean_ps", "sem_ps", "tau_exit_ps",
                                                                       "tau_exit_err_ps")],
                         r["n_complete"], r["n_exits"], _arr(res.attempt_frequency_type_THz)[t]])
        types = Table("sites_types.csv", ["type_index", "n_sites", "fraction_raw", "fraction_debounced",
                                          "occupancy_per_site", "mean_residence_ps", "sem_residence_ps",
                                          "tau_exit_ps", "tau_exit_err_ps", "n_complete_runs", "n_exits",
                                          "attempt_frequency_THz"], np.array(rows, dtype=float).reshape(T, 12))
        a, b = np.meshgrid(np.arange(T), np.arange(T), indexing="ij")
        trans = Table("sites_transitions.csv", ["from_type", "to_type", "count", "rate_per_ps", "rate_err_per_ps",
                                                "mean_jump_length_A"],
                      np.column_stack([a.ravel(), b.ravel(), _arr(res.transitions).ravel(),
                                       _arr(res.rates_per_ps).ravel(), _arr(res.rates_err_per_ps).ravel(),
                                       _arr(res.jump_length_by_pair_A).ravel()]))
        e = _arr(res.residence_edges_ps)
        resid = Table("sites_residence.csv", ["t_lo_ps", "t_hi_ps"] + [f"n_{n}" for n in res.type_names],
                      np.column_stack([e[:-1], e[1:], _arr(res.residence_hist).reshape(T, -1).T]))
        per_site = Table("sites_per_site.csv", ["site", "type_index", "s_a", "s_b", "s_c", "occupancy_raw",
                                                "occupancy_debounced"],
                         np.column_stack([np.arange(res.n_sites), _arr(res.site_type),
                                          _arr(res.site_frac).reshape(-1, 3), _arr(res.occupancy_raw),
                                          _arr(res.occupancy)]))
        le = _arr(res.jump_length_edges_A)
        lengths = Table("sites_jump_lengths.csv", ["length_lo_A", "length_hi_A", "count"],
                        np.column_stack([le[:-1], le[1:], _arr(res.jump_length_hist)]))
        return [types, trans, resid, per_site, lengths]

    def figures(self, res, **_):
        names = list(res.type_names)
        T = len(names)

        def draw(axes):
            x = np.arange(T)
            axes[0].bar(x - 0.2, 100 * _arr(res.type_fraction_raw), 0.4, label="per frame")
            axes[0].bar(x + 0.2, 100 * _arr(res.type_fraction), 0.4, label="debounced")
            axes[0].set_xticks(x)
            axes[0].set_xticklabels(names, rotation=30, ha="right")
            axes[0].set_ylabel(f"{res.species} in site type (%)")
            axes[0].set_ylim(0, 115)
            axes[0].legend(frameon=False, ncols=2, loc="upper center", fontsize="small")
            e = _arr(res.residence_edges_ps)
            h = _arr(res.residence_hist).reshape(T, -1)
            for t in range(T):
                n = h[t].sum()
                if n:
                    surv = 1.0 - np.cumsum(h[t]) / n
                    axes[1].step(e[1:], surv, where="post", label=names[t])
            filled = np.nonzero(h.sum(0))[0]
            if len(filled):
                axes[1].set_xlim(max(e[0], e[1] / 2), 2 * e[filled[-1] + 1])
            axes[1].set_xscale("log")
            axes[1].set_xlabel("residence time τ (ps)")
            axes[1].set_ylabel("P(residence > τ), complete runs")
            if h.sum():
                axes[1].legend(frameon=False, fontsize="small")
            k = _arr(res.rates_per_ps).reshape(T, T)
            m = axes[2].imshow(np.where(np.isfinite(k), k, 0.0), cmap="viridis")
            axes[2].figure.colorbar(m, ax=axes[2], label="rate k_ab (ps⁻¹)")
            axes[2].set_xticks(range(T))
            axes[2].set_xticklabels(names, rotation=30, ha="right")
            axes[2].set_yticks(range(T))
            axes[2].set_yticklabels(names)
            axes[2].set_xlabel("to type")
            axes[2].set_ylabel("from type")
            le = _arr(res.jump_length_edges_A)
            lh = _arr(res.jump_length_hist)
            axes[3].stairs(lh, le)
            if lh.sum():
                axes[3].set_xlim(0, 1.1 * le[np.nonzero(lh)[0][-1] + 1])
            axes[3].set_xlabel("jump length, site centre to site centre (Å)")
            axes[3].set_ylabel("jumps")
            c = res.collective or {}
            if c.get("fraction") is not None:
                base = c.get("baseline")
                axes[3].text(0.98, 0.95, f"collective: {100 * c['fraction']:.1f} %" + (
                    "" if base is None else f"\nbaseline: {100 * base:.1f} ± {100 * (c.get('baseline_std') or 0):.1f} %"),
                    transform=axes[3].transAxes, ha="right", va="top", fontsize="small")

        def draw_time(axes):
            p = _arr(res.occupancy_preview)
            if p.ndim == 2 and len(p):
                for t in range(T):
                    axes[0].plot(p[:, 0], p[:, 1 + t], label=names[t], lw=0.8)
                axes[0].legend(frameon=False, fontsize="small")
            axes[0].set_xlabel("time (ps)")
            axes[0].set_ylabel(f"{res.species} in site type (per frame)")

        return [FigureSpec("sites", f"{res.species} sites ({res.kind}, {res.n_sites} sites): fraction of the ions in "
                                    "each site type (per-frame assignment and debounced), survival of the complete "
                                    "residence runs, transition rates between types, and jump lengths with the "
                                    "collective-jump fraction against the time-shifted baseline (docs/sites.md).",
                           draw, ncols=2, nrows=2, height=3.6),
                FigureSpec("sites_occupancy_time", f"Number of {res.species} ions in each site type per frame "
                                                   "(per-frame assignment; strided preview).", draw_time)]


# --------------------------------------------------------------------------------------------- Onsager, D tensor
def _dtensor_rows(res, names):
    rows = []
    for g, name in enumerate(names):
        d = res.d_tensors.get(name) if hasattr(res, "d_tensors") else res
        if d is None:
            continue
        c = A2_PS_TO_CM2_S
        six = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]
        rows.append([g] + [d.D_tensor_A2_ps[a, b] * c for a, b in six]
                    + [d.D_tensor_stderr_A2_ps[a, b] * c for a, b in six]
                    + list(_arr(d.eigenvalues_A2_ps) * c) + list(_arr(d.eigenvalues_stderr_A2_ps) * c)
                    + list(_arr(d.axes).T.ravel()) + list(_arr(d.axes_stderr_deg)))
    header = (["group"] + [f"D_{p}_cm2_s" for p in ("xx", "yy", "zz", "xy", "xz", "yz")]
              + [f"D_{p}_stderr_cm2_s" for p in ("xx", "yy", "zz", "xy", "xz", "yz")]
              + [f"lambda{k}_cm2_s" for k in (1, 2, 3)] + [f"lambda{k}_stderr_cm2_s" for k in (1, 2, 3)]
              + [f"axis{k}_{x}" for k in (1, 2, 3) for x in "xyz"] + [f"axis{k}_stderr_deg" for k in (1, 2, 3)])
    return header, np.array(rows, dtype=np.float64).reshape(len(rows), len(header))


def _draw_eigen_bars(ax, dts):
    names = list(dts)
    for g, name in enumerate(names):
        d = dts[name]
        w = _arr(d.eigenvalues_A2_ps) * A2_PS_TO_CM2_S
        e = _arr(d.eigenvalues_stderr_A2_ps) * A2_PS_TO_CM2_S
        ax.bar(g + np.array([-0.25, 0.0, 0.25]), w, width=0.22, yerr=e, color=["C0", "C1", "C2"], capsize=2)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names)
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_ylabel("D-tensor eigenvalues λ1 ≤ λ2 ≤ λ3 (cm²/s)")


@register_view("OnsagerResult")
class _OnsagerView:
    def tables(self, res, **_):
        names = list(res.groups)
        S = len(names)
        cols, header = [_arr(res.lag_ps)], ["lag_ps"]
        Z = _arr(res.cross_msd_A2)
        for i in range(S):
            for j in range(i, S):
                cols.append(Z[:, i, j])
                header.append(f"Z_{names[i]}_{names[j]}_A2")
        for i in range(S):
            cols.append(_arr(res.self_msd_A2)[:, i])
            header.append(f"self_{names[i]}_A2")
        out = [Table("onsager_cross_msd.csv", header, np.column_stack(cols))]
        if res.L is not None:
            rows = []
            for i in range(S):
                for j in range(i, S):
                    rows.append([i, j, res.L[i, j], res.L_stderr[i, j], res.L_distinct[i, j],
                                 res.L_distinct_stderr[i, j], res.sigma_ij_S_cm[i, j] * 1e3,
                                 res.sigma_ij_stderr_S_cm[i, j] * 1e3])
            out.append(Table("onsager_L.csv", ["group_i", "group_j", "L_J-1m-1s-1", "L_stderr_J-1m-1s-1",
                                               "L_distinct_J-1m-1s-1", "L_distinct_stderr_J-1m-1s-1",
                                               "sigma_ij_mS_cm", "sigma_ij_stderr_mS_cm"], np.array(rows)))
            out.append(Table("onsager_groups.csv", ["group", "charge_e", "n_atoms", "L_self_J-1m-1s-1",
                                                    "L_self_stderr_J-1m-1s-1", "transference",
                                                    "transference_stderr", "haven_ratio", "haven_ratio_stderr"],
                             np.column_stack([np.arange(S), _arr(res.charges), _arr(res.n_atoms), _arr(res.L_self),
                                              _arr(res.L_self_stderr), _arr(res.transference),
                                              _arr(res.transference_stderr), _arr(res.haven_ratio_groups),
                                              _arr(res.haven_ratio_groups_stderr)])))
        if res.d_tensors:
            header, data = _dtensor_rows(res, names)
            out.append(Table("onsager_d_tensor.csv", header, data))
        return out

    def figures(self, res, **_):
        names = list(res.groups)
        S = len(names)

        def draw(axes):
            lag = _arr(res.lag_ps)
            Z = _arr(res.cross_msd_A2)
            k = 0
            for i in range(S):
                for j in range(i, S):
                    axes[0].plot(lag, Z[:, i, j], lw=1.0 if i != j else 1.4, color=f"C{k % 10}",
                                 ls="-" if i == j else "--", label=f"{names[i]}–{names[j]}")
                    k += 1
            for i in range(S):
                axes[0].plot(lag, _arr(res.self_msd_A2)[:, i], lw=0.7, color="grey", ls=":")
            axes[0].set_yscale("symlog", linthresh=max(1e-3, float(np.nanmax(np.abs(Z))) * 1e-3))
            axes[0].set_xlabel("t (ps)")
            axes[0].set_ylabel("⟨ΔR_i·ΔR_j⟩ (Å²)")
            axes[0].legend(frameon=False, fontsize="x-small", ncol=2)
            if res.L is not None:
                lab, val, err = [], [], []
                for i in range(S):
                    for j in range(i, S):
                        f = 1.0 if i == j else 2.0
                        lab.append(f"{names[i]}–{names[j]}")
                        val.append(f * res.sigma_ij_S_cm[i, j] * 1e3)
                        err.append(f * res.sigma_ij_stderr_S_cm[i, j] * 1e3 * res.ci95_factor)
                lab.append("σ")
                val.append(res.sigma_S_cm * 1e3)
                err.append(res.sigma_stderr_S_cm * 1e3 * res.ci95_factor)
                lab.append("σ_NE")
                val.append(res.sigma_NE_S_cm * 1e3)
                err.append(res.sigma_NE_stderr_S_cm * 1e3 * res.ci95_factor)
                x = np.arange(len(lab))
                axes[1].bar(x, val, yerr=err, color=["C0"] * (len(lab) - 2) + ["k", "0.5"], capsize=2)
                axes[1].set_xticks(x)
                axes[1].set_xticklabels(lab, rotation=60, fontsize="small")
                axes[1].axhline(0.0, color="grey", lw=0.5)
                axes[1].set_ylabel("σ contribution (mS/cm), 95 % interval")
            else:
                axes[1].text(0.5, 0.5, "no temperature: L_ij not computed", transform=axes[1].transAxes,
                             ha="center")
            if res.d_tensors:
                _draw_eigen_bars(axes[2], res.d_tensors)
            else:
                axes[2].text(0.5, 0.5, "D tensors not computed", transform=axes[2].transAxes, ha="center")

        return [FigureSpec("onsager", "Einstein cross-displacements ⟨ΔR_i·ΔR_j⟩(t) of the groups (solid: i = j, "
                                      "dashed: i ≠ j, dotted: self sums Σ⟨|Δr|²⟩); contributions e² z_i z_j L_ij to σ "
                                      "(i ≠ j counted twice), the collective σ and the Nernst–Einstein σ_NE with 95 % "
                                      "block intervals; eigenvalues of each group's diffusion tensor (bootstrap "
                                      "errors) (SPEC §9).", draw, ncols=3)]


@register_view("DTensorResult")
class _DTensorView:
    def tables(self, res, **_):
        header, data = _dtensor_rows(res, [res.species])
        return [Table("d_tensor.csv", header, data),
                Table("msd_tensor.csv", ["lag_ps"] + [f"msd_{p}_A2" for p in ("xx", "yy", "zz", "xy", "xz", "yz")],
                      np.column_stack([_arr(res.lag_ps), _arr(res.msd_tensor_A2)]))]

    def figures(self, res, **_):
        def draw(axes):
            lag = _arr(res.lag_ps)
            M = _arr(res.msd_tensor_A2)
            for k, p in enumerate(("xx", "yy", "zz", "xy", "xz", "yz")):
                axes[0].plot(lag, M[:, k], lw=1.2 if k < 3 else 0.8, ls="-" if k < 3 else "--", label=p)
            w = res.fit_window_ps
            axes[0].axvspan(w[0], w[1], color="0.9", zorder=0, label="fit window")
            axes[0].set_xlabel("t (ps)")
            axes[0].set_ylabel("⟨Δr_a Δr_b⟩ (Å²)")
            axes[0].legend(frameon=False, fontsize="small", ncol=2)
            _draw_eigen_bars(axes[1], {res.species: res})

        return [FigureSpec("d_tensor", f"{res.species}: MSD tensor components (all origins, FFT; shaded: the fit "
                                       "window of the scalar D) and the eigenvalues of D_ab = slope/2 with bootstrap "
                                       "errors (SPEC §9).", draw, ncols=2)]
