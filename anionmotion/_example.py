"""The embedded example: one system run twice, unconstrained (UC) and rotation-constrained (RC).

``anionmotion report --example`` reports the UC run and, through
:func:`compare_example_modes`, adds what restraining the anion rotations does
to the same system: the RC run is reported into ``<out>/RC/``, the two are
compared with :func:`anionmotion.report.compare.compare` (``<out>/compare/``)
and the report gets a section "Constraint effect: UC vs RC".

The files live in the repository's top-level ``data/`` folder (with
``data/README.md``, which documents how they were generated).
``pyproject.toml`` maps that folder to the package ``anionmotion.data``, so an
installed wheel has them at ``anionmotion/data/``; a source checkout or an
editable install finds them in ``data/`` next to the package.

They were written by ``anionmotion md`` and then packed for shipping with
:func:`pack` (``python -m anionmotion._example pack RAW.nc data/NAME.nc``):
NetCDF-4 with zlib, coordinates and velocities quantized (see :func:`pack`).
"""

from __future__ import annotations

import json
import os

import numpy as np

from .errors import OptionError

__all__ = ["EXAMPLE_FILES", "EXAMPLE_NAME", "example_path", "example_report_path", "pack",
           "compare_example_modes", "COMPARISON_STAGES"]

EXAMPLE_FILES = {"UC": "example_li2so4_1000K_UC.nc", "RC": "example_li2so4_1000K_RC.nc"}
"""Example trajectory of each constraint mode: the α-Li2SO4-like model (generic demonstration model),
3×3×3 cells (756 atoms), 1000 K; UC 20 ps every 10 fs with velocities, RC 30 ps every 100 fs, positions only."""

EXAMPLE_NAME = EXAMPLE_FILES["UC"]
"""The trajectory ``report --example`` reports."""

_HERE = os.path.dirname(os.path.abspath(__file__))
_CANDIDATES = (os.path.join(_HERE, "data"),                   # installed wheel: anionmotion/data/
               os.path.join(os.path.dirname(_HERE), "data"))  # checkout / editable install: data/


def _data_dir() -> str:
    for d in _CANDIDATES:
        if os.path.exists(os.path.join(d, EXAMPLE_NAME)):
            return d
    return _CANDIDATES[0]


def _name(mode) -> str:
    m = str(mode).upper()
    if m not in EXAMPLE_FILES:
        raise OptionError(f"the example has the constraint modes {', '.join(EXAMPLE_FILES)}; got {mode!r}")
    return EXAMPLE_FILES[m]


def example_path(mode="UC") -> str:
    """Path of the example trajectory of ``mode`` (AMBER NetCDF, ``constraint_mode`` = ``mode``).

    Parameters
    ----------
    mode : {"UC", "RC"}
        UC: unconstrained, 20 ps every 10 fs with velocities (what ``report --example`` reports);
        RC: anion rotations restrained (Eckart), 30 ps every 100 fs, positions only.

    Raises
    ------
    FileNotFoundError
        When the package was installed without its data files.
    """
    p = os.path.join(_data_dir(), _name(mode))
    if not os.path.exists(p):
        raise FileNotFoundError(f"{p}: the example trajectory is missing from this installation "
                                "(reinstall anionmotion with its package data)")
    return p


def example_report_path(mode="UC") -> str:
    """Path of the constraint report (JSON) that ``anionmotion md`` wrote for the example run of ``mode``."""
    return os.path.join(_data_dir(), _name(mode).replace(".nc", ".constraints.json"))


# ----------------------------------------------------------------------------- packing for shipping

def pack(src, dst, *, coordinate_digits=2, velocity_digits=1, velocities=True, overwrite=False) -> dict:
    """Copy an AMBER-convention NetCDF (as ``anionmotion md`` writes it) into a compressed NetCDF-4 file.

    Every variable and attribute is kept; ``coordinates`` and ``velocities`` are stored with zlib
    (level 9, shuffle) after netCDF4's quantization to ``least_significant_digit``: ``d`` decimal digits
    keep ``ceil(log2(10^d))`` fractional bits, i.e. a step of 2^-7 Å = 0.0078 Å for ``coordinate_digits=2``
    (error ≤ 0.004 Å, far below the thermal amplitudes of ~0.1 Å) and 2^-4 Å/ps = 0.0625 Å/ps for
    ``velocity_digits=1``, 1 Å/ps for ``velocity_digits=0`` (thermal speeds in the example 5–11 Å/ps per
    component: rounding adds white noise of (step)²/12 per component, 0.3 % of the S kinetic energy at 1 Å/ps).  The global attribute ``packing``
    records this.  The constraint report next to ``src`` (``<stem>.constraints.json``) is copied next to
    ``dst`` with its ``output`` set to the packed file's name.

    Parameters
    ----------
    src, dst : str
        Input and output NetCDF paths (``dst`` must differ from ``src``).
    coordinate_digits, velocity_digits : int
        Decimal digits kept (Å, Å/ps).
    velocities : bool
        Keep the velocities (False: positions only).
    overwrite : bool
        Replace an existing ``dst``.

    Returns
    -------
    dict
        ``{"path", "bytes", "n_frames", "packing"}``.
    """
    import netCDF4

    from .results import atomic_output, check_output

    src, dst = os.fspath(src), os.fspath(dst)
    if os.path.abspath(src) == os.path.abspath(dst):
        raise OptionError(f"{dst}: the packed file must not replace its source")
    check_output(dst, overwrite)
    def step(digits, unit):
        bits = int(np.ceil(np.log2(10.0 ** digits)))
        return f"step 2^-{bits} = {2.0 ** -bits:.4g} {unit}"

    packing = (f"NetCDF-4, zlib level 9 with shuffle; coordinates quantized to least_significant_digit="
               f"{coordinate_digits} ({step(coordinate_digits, 'Å')})")
    if velocities:
        packing += f", velocities to least_significant_digit={velocity_digits} ({step(velocity_digits, 'Å/ps')})"
    else:
        packing += "; velocities left out"
    tmp = dst + ".packing"
    with netCDF4.Dataset(src) as s:
        s.set_auto_maskandscale(False)
        n_atoms = len(s.dimensions["atom"])
        n_frames = len(s.dimensions["frame"])
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as d:
            for name, dim in s.dimensions.items():
                d.createDimension(name, None if dim.isunlimited() else len(dim))
            for name, v in s.variables.items():
                if name == "velocities" and not velocities:
                    continue
                kw = {"zlib": True, "complevel": 9, "shuffle": True}
                if name in ("coordinates", "velocities"):
                    kw["least_significant_digit"] = coordinate_digits if name == "coordinates" else velocity_digits
                    kw["chunksizes"] = (min(10, max(n_frames, 1)), n_atoms, 3)
                nv = d.createVariable(name, v.dtype, v.dimensions, **kw)
                nv.setncatts({a: v.getncattr(a) for a in v.ncattrs()})
                nv.set_auto_maskandscale(False)
                if v.dimensions and v.dimensions[0] == "frame":
                    for i in range(0, n_frames, 200):      # frame blocks: constant memory
                        block = v[i:min(i + 200, n_frames)]
                        nv[i:i + len(block)] = block
                else:
                    nv[:] = v[:]
            d.setncatts({a: s.getncattr(a) for a in s.ncattrs()})
            d.setncattr("packing", packing)
    os.replace(tmp, dst)
    rep_src = os.path.splitext(src)[0] + ".constraints.json"
    if os.path.exists(rep_src):
        with open(rep_src, encoding="utf-8") as fh:
            rep = json.load(fh)
        rep["output"] = os.path.basename(dst)
        rep["packing"] = packing
        with atomic_output(os.path.splitext(dst)[0] + ".constraints.json", overwrite=True) as fh:
            json.dump(rep, fh, indent=1, ensure_ascii=False)
            fh.write("\n")
    return {"path": dst, "bytes": os.path.getsize(dst), "n_frames": n_frames, "packing": packing}


# ----------------------------------------------------------------------------- the UC/RC comparison

COMPARISON_STAGES = ("polyanions", "diffusion", "hops", "reorientation")
"""Stages of the RC report (what the comparison reads)."""

COMPARISON_TITLE = "Constraint effect: UC vs RC"


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d


def _f(x, digits=3, unit=""):
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    return f"{float(x):.{digits}g}" + ("" if not unit else unit if unit == "°" else f" {unit}")


def _pm(x, err, unit=""):
    if x is None:
        return "–"
    return (f"{float(x):.3g} ± {float(err):.2g}" if err is not None else f"{float(x):.3g}") + (f" {unit}" if unit else "")


def _at(lag, y, t):
    """y at lag t (linear interpolation), or None beyond the data."""
    lag, y = np.asarray(lag, float), np.asarray(y, float)
    if lag.size < 2 or t > lag[-1]:
        return None
    return float(np.interp(t, lag, y))


def _constraint_report(mode):
    try:
        with open(example_report_path(mode), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def _rows(uc, rc, dec):
    """[(quantity, UC text, RC text)] and the numbers behind them."""
    a = {m: r["analyses"] for m, r in (("UC", uc), ("RC", rc))}
    res = {m: {st: (a[m].get(st) or {}).get("result") or {} for st in COMPARISON_STAGES} for m in a}
    md = {m: _constraint_report(m) for m in a}
    lag_cmp = None
    spans = [_get(res[m]["diffusion"], "lag_ps") for m in a]
    if all(spans):
        lag_cmp = float(np.floor(0.5 * min(s[-1] for s in spans)))
    rows, values = [], {}
    for m in a:
        d = res[m]["diffusion"]
        dif, cond = d.get("diffusion") or {}, d.get("conductivity") or {}
        r = res[m]["reorientation"]
        values[m] = {
            "D_cm2_s": dif.get("D_cm2_s"), "D_stderr_cm2_s": dif.get("D_stderr_cm2_s"),
            "diffusive_regime_reached": dif.get("diffusive_regime_reached"),
            "sigma_mS_cm": cond.get("sigma_mS_cm"), "sigma_stderr_mS_cm": cond.get("sigma_stderr_mS_cm"),
            "tmsd_A2": d.get("tmsd_A2"),
            "msd_at_lag_A2": _at(d.get("lag_ps", []), d.get("msd_A2", []), lag_cmp) if lag_cmp else None,
            "jump_frequency_per_ns": res[m]["hops"].get("jump_frequency_per_ns"),
            "n_hops": res[m]["hops"].get("n_events"),
            "C1_at_reliable_lag": r.get("C1_at_reliable_lag"), "reliable_lag_ps": r.get("reliable_lag_ps"),
            "rotation_frequency_per_ns": r.get("rotation_frequency_per_ns"),
            "anion_rotation_mean_deg": _get(md[m], "rotation_deg", "mean"),
            "span_ps": _get(uc if m == "UC" else rc, "trajectory", "span_ps"),
            "dt_ps": _get(uc if m == "UC" else rc, "trajectory", "dt_ps"),
        }
    u, r_ = values["UC"], values["RC"]
    sp = _get(uc, "detected", "cation", "species") or "cation"
    an = _get(res["UC"]["reorientation"], "species") or "anion"

    def row(label, key, fmt):
        rows.append((label, fmt(u, key), fmt(r_, key)))

    row("anion rigid-body rotation from the start, mean (MD constraint report)", "anion_rotation_mean_deg",
        lambda v, k: _f(v[k], 3, "°"))
    row(f"{an} orientation memory C1 at the longest reliable lag", "C1_at_reliable_lag",
        lambda v, k: f"{_f(v[k], 3)} (at {_f(v['reliable_lag_ps'], 3, 'ps')})")
    row(f"{an} rotation events", "rotation_frequency_per_ns", lambda v, k: _f(v[k], 3, "per anion per ns"))
    if lag_cmp:
        row(f"{sp} MSD at {lag_cmp:g} ps", "msd_at_lag_A2", lambda v, k: _f(v[k], 3, "Å²"))
    row(f"{sp} TMSD (first → last frame)", "tmsd_A2", lambda v, k: _f(v[k], 3, "Å²"))
    row(f"{sp} tracer D", "D_cm2_s", lambda v, k: _pm(v[k], v["D_stderr_cm2_s"], "cm²/s")
        + ("" if v["diffusive_regime_reached"] is not False else " (diffusive regime NOT reached)"))
    row(f"{sp} σ (Nernst–Einstein)", "sigma_mS_cm", lambda v, k: _pm(v[k], v["sigma_stderr_mS_cm"], "mS/cm"))
    row(f"{sp} hops", "jump_frequency_per_ns",
        lambda v, k: f"{_f(v['n_hops'])} event{'' if v['n_hops'] == 1 else 's'}, {_f(v[k], 3, 'per cation per ns')}")
    if u.get("D_cm2_s") and r_.get("D_cm2_s"):
        values["D_ratio_UC_over_RC"] = u["D_cm2_s"] / r_["D_cm2_s"]
    step = _get(dec, "delta", "rot") or {}
    values["delta_rot"] = step.get("value")
    values["delta_rot_kind"] = step.get("kind")
    values["msd_lag_ps"] = lag_cmp
    return rows, values


def _run_text(run) -> str:
    return f"{_f(run.get('span_ps'), 3)} ps, every {_f(1000 * run['dt_ps'] if run.get('dt_ps') else None, 3)} fs"


def _summary_text(uc, v) -> str:
    """One line: D, anion rotation and Δ_rot of UC → RC."""
    sp = _get(uc, "detected", "cation", "species") or "cation"
    u, r = v.get("UC", {}), v.get("RC", {})
    parts = []
    if u.get("D_cm2_s") is not None and r.get("D_cm2_s") is not None:
        parts.append(f"{sp} D {u['D_cm2_s']:.2g} → {r['D_cm2_s']:.2g} cm²/s"
                     + (f" (÷ {v['D_ratio_UC_over_RC']:.2g})" if v.get("D_ratio_UC_over_RC") else ""))
    if u.get("anion_rotation_mean_deg") is not None and r.get("anion_rotation_mean_deg") is not None:
        parts.append(f"anion rotation {u['anion_rotation_mean_deg']:.0f}° → {r['anion_rotation_mean_deg']:.1f}°")
    if v.get("delta_rot") is not None:
        parts.append(f"Δ_rot = {v['delta_rot']:.2f}")
    return "; ".join(parts)


def _contrast_figure(uc, rc):
    """(Figure, caption): Li MSD of both runs (left) and the anions' C1 (right)."""
    from .plotting import need_matplotlib

    plt = need_matplotlib()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.0, 4.0))
    colors = {"UC": "tab:blue", "RC": "tab:red"}
    sp = _get(uc, "detected", "cation", "species") or "cation"
    for m, rep in (("UC", uc), ("RC", rc)):
        d = _get(rep, "analyses", "diffusion", "result") or {}
        if d.get("lag_ps"):
            ax1.plot(d["lag_ps"], d["msd_A2"], color=colors[m], label=f"{m}")
            dif = d.get("diffusion") or {}
            win, slope = dif.get("fit_window_ps"), dif.get("D_A2_ps")
            b0 = dif.get("intercept_A2")
            if win and slope is not None:
                t = np.linspace(win[0], win[1], 20)
                ax1.plot(t, (b0 or 0.0) + 6.0 * slope * t, "--", color="k", lw=1.0,
                         label="fit" if m == "UC" else None)
        r = _get(rep, "analyses", "reorientation", "result") or {}
        if r.get("lag_ps"):
            lag = np.asarray(r["lag_ps"], float)
            keep = lag <= (r.get("reliable_lag_ps") or lag[-1])
            ax2.plot(lag[keep], np.asarray(r["C1"], float)[keep], color=colors[m], label=f"{m}: C1")
            if r.get("C2"):
                ax2.plot(lag[keep], np.asarray(r["C2"], float)[keep], color=colors[m], ls=":", label=f"{m}: C2")
    ax1.set_xlabel("lag (ps)")
    ax1.set_ylabel(f"{sp} MSD (Å²)")
    ax1.legend(frameon=False)
    ax1.set_title(f"{sp} diffusion", fontsize=10)
    ax2.set_xlabel("lag (ps)")
    ax2.set_ylabel("orientation autocorrelation")
    ax2.set_ylim(-0.05, 1.05)
    ax2.legend(frameon=False, fontsize=8)
    ax2.set_title("anion reorientation", fontsize=10)
    fig.tight_layout()
    return fig, (f"The same system with free anions (UC, blue) and with the anion rotations restrained (RC, red). "
                 f"Left: {sp} mean squared displacement (dashed: the diffusion fits); right: orientation "
                 "autocorrelations C1 (solid) and C2 (dotted) of the centre–ligand vectors up to the longest "
                 "reliable lag.")


def compare_example_modes(report, out_dir, *, progress=None, memory=None):
    """Report extension of ``report --example``: the UC/RC comparison of the example system.

    Called by :func:`anionmotion.report.run_report` (``extend=``) with the finished report of the UC
    run before it is rendered.  Reports the RC example run into ``<out_dir>/RC/`` (stages
    :data:`COMPARISON_STAGES`, same options), compares the two with
    :func:`anionmotion.report.compare.compare` into ``<out_dir>/compare/``, draws the contrast figure and
    stores the section in ``report["comparison"]`` (``status`` "ok" or "failed" with the reason).

    Returns
    -------
    files : list of str
        Files written, relative to ``out_dir``.
    figures : dict
        ``{relative file name: PNG bytes}`` of the figures the section shows.
    """
    import io

    from . import open as open_trajectory
    from .report.compare import compare, write_compare
    from .report.core import MARKER, run_report

    params = report.get("parameters") or {}
    section = {"title": COMPARISON_TITLE, "status": "ok", "reason": "", "rows": [], "values": {}, "figures": [],
               "links": [], "notes": [], "warnings": []}
    report["comparison"] = section
    files, pngs = [], {}
    try:
        rc_path = example_path("RC")
        from .report.core import OPTION_DEFAULTS

        options = {k: params.get(k) for k in OPTION_DEFAULTS}
        rc_dir = os.path.join(out_dir, "RC")
        with open_trajectory(rc_path) as traj:
            rc = run_report(traj, rc_dir, cation=params.get("cation"), center=params.get("center"),
                            ligand=params.get("ligand"), temperature=params.get("temperature_K"),
                            stages=list(COMPARISON_STAGES), options=options, figures=bool(params.get("figures", True)),
                            overwrite="stale", progress=progress, input_path=rc_path, labels={"label": "RC"},
                            memory=memory)
        with open(os.path.join(rc_dir, MARKER), encoding="utf-8") as fh:
            files += [f"RC/{f}" for f in json.load(fh).get("files", [])] + [f"RC/{MARKER}"]
        for st in COMPARISON_STAGES:
            a = rc["analyses"][st]
            if a["status"] != "ok":
                section["warnings"].append(f"RC run, {st}: {a['status']}: {a['reason']}")
        uc = dict(report)
        uc["labels"] = {**(report.get("labels") or {}), "label": "UC"}
        res = compare([uc, rc], labels=["UC", "RC"])
        section["warnings"] += list(res.warnings)
        dec = next(iter(res.modes.values()), None)
        section["rows"], section["values"] = _rows(report, rc, dec)
        section["decomposition"] = dec
        section["runs"] = {m: {"file": os.path.basename(p), "constraint_mode": rep.get("constraint_mode"),
                               "temperature_K": rep.get("temperature_K"),
                               "frames": _get(rep, "trajectory", "n_frames"), "span_ps": _get(rep, "trajectory", "span_ps"),
                               "dt_ps": _get(rep, "trajectory", "dt_ps"), "sha256": _get(rep, "input", "sha256")}
                           for m, p, rep in (("UC", report["input"]["path"], report), ("RC", rc_path, rc))}
        if report.get("temperature_K") != rc.get("temperature_K") or \
                _get(report, "trajectory", "n_atoms") != _get(rc, "trajectory", "n_atoms"):
            section["warnings"].append("the UC and RC runs differ in temperature or atom count: not the same system")
        cmp_dir = os.path.join(out_dir, "compare")
        written = write_compare(res, cmp_dir, overwrite=True, figures=False)
        files += [f"compare/{f}" for f in written]
        section["links"] = [("RC report", "RC/report.html"), ("comparison (anionmotion compare)", "compare/compare.html")]
        v = section["values"]
        section["columns"] = [f"UC ({_run_text(section['runs']['UC'])})", f"RC ({_run_text(section['runs']['RC'])})"]
        section["intro"] = ("The same system — same model, temperature and protocol — run a second time "
                            "with the rotation of every anion restrained (RC: Eckart restraint, `anionmotion md "
                            "--mode RC`): what the anions' rotation contributes to the cation transport "
                            "(paddle-wheel effect, SPEC §8).")
        section["summary"] = _summary_text(report, v)
        if v.get("delta_rot") is not None:
            section["notes"].append(
                f"Δ_rot = log10 σ_UC − log10 σ_RC = {v['delta_rot']:.2f} ({v['delta_rot_kind']}): restraining the "
                f"anion rotations alone divides the tracer D by {v.get('D_ratio_UC_over_RC', float('nan')):.3g} "
                "(SPEC §8; Δ_trans and Δ_vib need RTC and RTVC runs, `anionmotion md --mode all`).")
        tm = v.get("RC", {}).get("tmsd_A2")
        if tm is not None and tm < 5.0:
            section["notes"].append(
                f"In RC the {_get(report, 'detected', 'cation', 'species') or 'cation'} TMSD is {tm:.2g} Å² (< 5 Å²): "
                "on this time scale the cations barely leave their sites, so the RC D rests on the slope of a small "
                "MSD and depends on the fit window; Δ_rot is as uncertain (a longer RC run narrows it).")
        if params.get("figures", True):
            try:
                fig, caption = _contrast_figure(report, rc)
            except ImportError as err:
                section["notes"].append(f"figures not drawn: {err}")
            else:
                buf = io.BytesIO()
                fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
                import matplotlib.pyplot as plt

                plt.close(fig)
                rel = "figures/constraint_effect.png"
                os.makedirs(os.path.join(out_dir, "figures"), exist_ok=True)
                with open(os.path.join(out_dir, rel), "wb") as fh:
                    fh.write(buf.getvalue())
                pngs[rel] = buf.getvalue()
                files.append(rel)
                section["figures"].append({"file": rel, "caption": caption})
    except Exception as err:  # the UC report must not be lost: the section says what went wrong
        section["status"] = "failed"
        section["reason"] = f"{type(err).__name__}: {err}"
    return files, pngs


def _main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m anionmotion._example",
                                description="Pack an `anionmotion md` trajectory for shipping as example data.")
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("pack", help="compressed NetCDF-4 copy (quantized coordinates/velocities)")
    q.add_argument("src")
    q.add_argument("dst")
    q.add_argument("--coordinate-digits", type=int, default=2)
    q.add_argument("--velocity-digits", type=int, default=1)
    q.add_argument("--no-velocities", action="store_true")
    q.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    info = pack(args.src, args.dst, coordinate_digits=args.coordinate_digits, velocity_digits=args.velocity_digits,
                velocities=not args.no_velocities, overwrite=args.overwrite)
    print(f"{info['path']}: {info['n_frames']} frames, {info['bytes'] / 1e6:.2f} MB ({info['packing']})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
