"""``anionmotion compare R1.json R2.json … --out DIR``: Arrhenius analysis and constraint-mode decomposition."""

from __future__ import annotations

__all__ = ["register", "run"]


def register(sub):
    p = sub.add_parser("compare", help="compare reports: Arrhenius over temperatures, UC/RC/RTC/RTVC mode "
                                       "decomposition",
                       description="Compare report.json files (or report folders, or `anionmotion msd --json` "
                                   "files) of a series: the Arrhenius fit per constraint mode over temperatures, "
                                   "and the mode decomposition of SPEC §8 per temperature.")
    p.add_argument("results", nargs="+", help="report.json files, report folders, msd JSON files, trajectories "
                                              "(D of the cation computed here; mode and temperature from their "
                                              "metadata) or `anionmotion md` series indexes (<stem>.series.json)")
    p.add_argument("--cation", help="species whose D is computed from trajectories (default: detected as in "
                                    "`anionmotion report`)")
    p.add_argument("--out", required=True, help="output folder (compare.json/.md/.html/.csv, figures)")
    p.add_argument("--mode", help="comma-separated constraint modes, one per result (default: the trajectory's "
                                  "constraint_mode metadata)")
    p.add_argument("--label", help="comma-separated labels, one per result (default: folder names)")
    p.add_argument("--temperature", help="comma-separated temperatures in K, one per result (default: from the "
                                         "reports)")
    p.add_argument("--at", type=float, default=300.0, help="extrapolation temperature, K (default 300)")
    p.add_argument("--no-figures", action="store_true", help="do not draw figures")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--classify", action="store_true",
                   help="instead of the series analysis: paper 003's diagnosis categories of report folders "
                        "(C(t) < 0.9 and TMSD ≥ 5 Å² / rotation only / no rotation / framework melting) as "
                        "classify.json/.md/.csv and figures/classification.png (docs/screening.md)")
    p.set_defaults(func=run)
    return p


def _split(value, name, n, conv=str):
    from ..errors import OptionError

    if value is None:
        return None
    parts = [v.strip() for v in value.split(",")]
    if len(parts) != n:
        raise OptionError(f"--{name} needs one value per result ({n}); got {len(parts)}: {value!r}")
    try:
        return [conv(v) for v in parts]
    except ValueError as err:
        raise OptionError(f"--{name}: {err}") from err


def run(args) -> int:
    from ..report.compare import compare, write_compare

    n = len(args.results)
    if getattr(args, "classify", False):
        return _run_classify(args, n)
    res = compare(args.results, labels=_split(args.label, "label", n), modes=_split(args.mode, "mode", n),
                  temperatures=_split(args.temperature, "temperature", n, float), at_K=args.at,
                  cation=args.cation)
    write_compare(res, args.out, overwrite=args.overwrite, figures=not args.no_figures)
    for key, a in res.arrhenius.items():
        if "Ea_eV" in a:
            print(f"Arrhenius ({key}): Ea = {a['Ea_eV']:.4g} ± {(a.get('Ea_stderr_eV') or 0):.2g} eV"
                  + (f", D({a.get('at_K')} K) = {a['D_at_cm2_s']:.3g} cm²/s" if a.get("D_at_cm2_s") is not None
                     else ""))
        else:
            print(f"Arrhenius ({key}): not computed: {a.get('reason')}")
    for key, md in res.modes.items():
        parts = []
        for step in ("rot", "trans", "vib"):
            d, r = md["delta"][step], md["r"][step]
            sym = {"lower_bound": "≥", "upper_bound": "≤"}.get(d["kind"], "=")
            parts.append(f"Δ_{step} {sym} {d['value']:.3g}" if d["value"] is not None else f"Δ_{step} {d['kind']}")
            if r["value"] is not None:
                parts[-1] += f" (r {'≥' if r['kind'] == 'lower_bound' else '≤' if r['kind'] == 'upper_bound' else '='} {r['value']:.2f})"
        print(f"modes at {key}: " + ", ".join(parts))
    for e in getattr(res, "frequency_match", None) or []:      # ν_rot/ν_hop per run (paper 000's claim)
        r = e.get("ratio") or {}
        if r.get("ratio") is not None:
            lo, hi = (("–" if r.get(k) is None else f"{r[k]:.3g}") for k in ("ci_low", "ci_high"))
            print(f"ν_rot/ν_hop of {e['label']} ({e.get('mode') or '?'}, {e.get('temperature_K')} K): "
                  f"{r['ratio']:.3g} [{lo}, {hi}] (95 % CI) → {e.get('class')}")
    for w in res.warnings:
        print(f"warning: {w}")
    print(f"written to {args.out}/compare.html (also compare.md, compare.json, compare.csv)")
    return 0


def _run_classify(args, n) -> int:
    """``compare --classify``: paper-003 categories of report folders (anionmotion.report.classify)."""
    from ..errors import OptionError
    from ..report.classify import CATEGORY_TEXT, classify_reports, write_classify

    extra = [f"--{k}" for k in ("mode", "temperature", "cation") if getattr(args, k, None) is not None]
    if extra:
        raise OptionError(f"--classify reads report folders and takes --label only; not {', '.join(extra)} "
                          "(series options)")
    res = classify_reports(args.results, labels=_split(args.label, "label", n))
    write_classify(res, args.out, overwrite=args.overwrite, figures=not args.no_figures)
    for r in res.rows:
        print(f"{r.label}: {CATEGORY_TEXT[r.category]} ({r.reason})")
    for w in res.warnings:
        print(f"warning: {w}")
    print(f"written to {args.out}/classify.md (also classify.json, classify.csv"
          + ("" if args.no_figures else ", figures/classification.png") + ")")
    return 0
