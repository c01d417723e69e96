"""Paper 003's diagnosis classification of reports (``anionmotion compare --classify``).

Paper 003 (Yang et al., *Chem. Mater.* 2024, 36, 3776) runs a short single-temperature AIMD "diagnosis" of
every isolated-framework candidate and sorts it (its Fig. 2a, SPEC §10):

* **excluded, framework melting**: the TMSD of the non-mobile cations exceeds 2 Å²;
* **category 1**: the polyanion reorientation ACF C(t) < 0.9 (rotation) *and* the mobile-ion TMSD ≥ 5 Å²
  (diffusion: an average hop of at least 2.2 Å);
* **category 2**: C(t) < 0.9 without that diffusion;
* **category 3**: C(t) ≥ 0.9, no rotation (whatever the TMSD).

The numbers come from a report (``report.json``): the TMSD of the mobile species and of the framework
cations from the ``diffusion`` analysis (single origin, |r(T_end) − r(0)|² averaged over the atoms; SPEC §2)
and C(t) from the ``reorientation`` analysis: C1 at its longest reliable lag (half the run), the value
its ``rotating`` flag already uses.  The paper does not say at which t it reads C(t) in its 60 ps runs;
the lag used is in every row.  A report without one of these analyses is ``unclassified`` with the reason;
a report whose framework TMSD is missing (no non-mobile cation species recognised by the MSD analysis) is
classified with ``melting_checked = False``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import OptionError
from ..results import Result

__all__ = ["C1_ROTATION", "TMSD_DIFFUSION_A2", "TMSD_MELTING_A2", "CATEGORY_TEXT", "ClassifyRow", "ClassifyResult",
           "classify_values", "classify_reports", "write_classify"]

C1_ROTATION = 0.9
"""Paper 003: the polyanion rotates when C(t) < 0.9."""
TMSD_DIFFUSION_A2 = 5.0
"""Paper 003: the mobile ion diffuses when its TMSD ≥ 5 Å²."""
TMSD_MELTING_A2 = 2.0
"""Paper 003: the framework melts (excluded) when the non-mobile cations' TMSD > 2 Å²."""

CATEGORY_TEXT = {1: "category 1: polyanion rotation and cation diffusion",
                 2: "category 2: polyanion rotation without cation diffusion",
                 3: "category 3: no polyanion rotation",
                 "melting": "excluded: framework melting",
                 None: "unclassified"}
_SHADE = {1: "tab:red", 2: "tab:blue", 3: "tab:green", "melting": "0.6", None: "0.85"}


def _num(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def classify_values(c1, tmsd_A2, framework_tmsd_A2=None, *, c1_threshold=C1_ROTATION,
                    tmsd_threshold_A2=TMSD_DIFFUSION_A2, melting_threshold_A2=TMSD_MELTING_A2):
    """Category of one run from its numbers.

    Parameters
    ----------
    c1 : float or None
        Reorientation ACF C(t) of the polyanions (dimensionless).
    tmsd_A2 : float or None, Å²
        TMSD of the mobile species.
    framework_tmsd_A2 : float or None, Å²
        TMSD of the non-mobile cations (None: melting not checked).
    c1_threshold, tmsd_threshold_A2, melting_threshold_A2 : float
        Paper-003 thresholds (rotation C < 0.9, diffusion TMSD ≥ 5 Å², melting TMSD > 2 Å²).

    Returns
    -------
    category : {1, 2, 3, "melting", None}
    reason : str
    """
    fw = _num(framework_tmsd_A2)
    if fw is not None and fw > melting_threshold_A2:
        return "melting", (f"framework TMSD {fw:.3g} Å² > {melting_threshold_A2:g} Å²: framework melting, excluded")
    c1, tm = _num(c1), _num(tmsd_A2)
    if c1 is None:
        return None, "no reorientation ACF C(t)"
    if c1 >= c1_threshold:
        return 3, f"C(t) = {c1:.3f} ≥ {c1_threshold:g}: no rotation"
    if tm is None:
        return None, f"C(t) = {c1:.3f} < {c1_threshold:g} (rotation) but no cation TMSD"
    if tm >= tmsd_threshold_A2:
        return 1, f"C(t) = {c1:.3f} < {c1_threshold:g} and TMSD {tm:.3g} Å² ≥ {tmsd_threshold_A2:g} Å²"
    return 2, f"C(t) = {c1:.3f} < {c1_threshold:g} but TMSD {tm:.3g} Å² < {tmsd_threshold_A2:g} Å²"


@dataclass(frozen=True)
class ClassifyRow:
    """One report, classified.

    Attributes
    ----------
    label, path : str
    temperature_K : float or None, K
    cation : str or None
        Mobile species of the diffusion analysis.
    tmsd_A2 : float or None, Å²
    framework_tmsd_A2 : float or None, Å²
    framework_cations : list of str
    anion : str or None
        Polyanion label of the reorientation analysis.
    C1 : float or None
        C1 at ``C1_lag_ps``.
    C1_lag_ps : float or None, ps
    span_ps : float or None, ps
        Length of the analysed run.
    category : {1, 2, 3, "melting", None}
    melting_checked : bool
    reason : str
    lag_ps, C1_curve : list or None
        The C1(t) curve (for the figure), up to the longest reliable lag.
    """

    label: str
    path: object
    temperature_K: object
    cation: object
    tmsd_A2: object
    framework_tmsd_A2: object
    framework_cations: list
    anion: object
    C1: object
    C1_lag_ps: object
    span_ps: object
    category: object
    melting_checked: bool
    reason: str
    lag_ps: object = None
    C1_curve: object = None


@dataclass(frozen=True)
class ClassifyResult(Result):
    """Paper-003 classification of a set of reports.

    Attributes
    ----------
    rows : list of ClassifyRow
    counts : dict
        Category → number of reports (keys ``"1"``, ``"2"``, ``"3"``, ``"melting"``, ``"unclassified"``).
    thresholds : dict
        ``C1``, ``tmsd_A2``, ``melting_A2`` and the rules.
    warnings : list of str
    """

    rows: list
    counts: dict
    thresholds: dict
    warnings: list = field(default_factory=list)


def _load(source):
    if isinstance(source, dict):
        return source, None
    path = os.fspath(source)
    if os.path.isdir(path):
        path = os.path.join(path, "report.json")
    if not os.path.exists(path):
        raise OptionError(f"{path}: no such report (give report folders or report.json files)")
    try:
        with open(path, encoding="utf-8") as fh:
            d = json.load(fh)
    except (ValueError, UnicodeDecodeError) as err:
        raise OptionError(f"{path}: not a JSON file ({err})") from err
    if not isinstance(d, dict) or "analyses" not in d:
        raise OptionError(f"{path}: not a report.json (no 'analyses'); give report folders of `anionmotion report`")
    return d, path


def _block(d, name):
    a = (d.get("analyses") or {}).get(name) or {}
    if a.get("status") != "ok" or not isinstance(a.get("result"), dict):
        why = a.get("reason") or a.get("status") or "absent"
        return None, f"no {name} analysis ({why})"
    return a["result"], ""


def _row(source, label, thresholds):
    d, path = _load(source)
    if label is None:
        lab = d.get("labels")
        label = lab.get("label") if isinstance(lab, dict) else None
    if label is None:
        label = os.path.basename(os.path.dirname(os.path.abspath(path))) if path else "run"
    dif, why_d = _block(d, "diffusion")
    rot, why_r = _block(d, "reorientation")
    T = _num(d.get("temperature_K"))
    tm = _num(dif.get("tmsd_A2")) if dif else None
    fw = _num(dif.get("framework_tmsd_A2")) if dif else None
    fwc = list((dif.get("meta") or {}).get("framework_cations") or []) if dif else []
    span = None
    if dif and dif.get("lag_ps"):
        span = _num(dif["lag_ps"][-1])
    c1 = _num(rot.get("C1_at_reliable_lag")) if rot else None
    lag_rel = _num(rot.get("reliable_lag_ps")) if rot else None
    curve_t = curve_c = None
    if rot and rot.get("lag_ps") is not None and rot.get("C1") is not None:
        t = np.asarray(rot["lag_ps"], dtype=float)
        c = np.asarray(rot["C1"], dtype=float)
        keep = t <= (lag_rel if lag_rel is not None else t.max()) + 1e-9
        curve_t, curve_c = t[keep].tolist(), c[keep].tolist()
        if span is None and len(t):
            span = float(t[-1])
    cat, reason = classify_values(c1, tm, fw, c1_threshold=thresholds["C1"],
                                  tmsd_threshold_A2=thresholds["tmsd_A2"],
                                  melting_threshold_A2=thresholds["melting_A2"])
    missing = [w for w in (why_d, why_r) if w]
    if cat is None and missing:
        reason = "; ".join(missing)
    elif missing:
        reason += " (" + "; ".join(missing) + ")"
    return ClassifyRow(label=str(label), path=path, temperature_K=T, cation=dif.get("species") if dif else None,
                       tmsd_A2=tm, framework_tmsd_A2=fw, framework_cations=fwc,
                       anion=rot.get("species") if rot else None, C1=c1, C1_lag_ps=lag_rel, span_ps=span,
                       category=cat, melting_checked=fw is not None, reason=reason, lag_ps=curve_t, C1_curve=curve_c)


def classify_reports(results, *, labels=None, c1_threshold=C1_ROTATION, tmsd_threshold_A2=TMSD_DIFFUSION_A2,
                     melting_threshold_A2=TMSD_MELTING_A2) -> ClassifyResult:
    """Classify reports into paper 003's diagnosis categories.

    Parameters
    ----------
    results : sequence
        Report folders, ``report.json`` paths or loaded report dicts.
    labels : sequence of str, optional
        One per report (default: the report's label, else its folder name).
    c1_threshold : float
        Rotation when C1 < this (paper 003: 0.9).
    tmsd_threshold_A2 : float, Å²
        Diffusion when the mobile-ion TMSD ≥ this (paper 003: 5 Å²).
    melting_threshold_A2 : float, Å²
        Excluded when the framework-cation TMSD > this (paper 003: 2 Å²).

    Returns
    -------
    ClassifyResult
    """
    results = list(results)
    if not results:
        raise OptionError("classification needs at least one report")
    if labels is not None and len(labels) != len(results):
        raise OptionError(f"labels must have one entry per report ({len(results)}); got {len(labels)}")
    for name, v, lo in (("c1_threshold", c1_threshold, None), ("tmsd_threshold_A2", tmsd_threshold_A2, 0.0),
                        ("melting_threshold_A2", melting_threshold_A2, 0.0)):
        x = _num(v)
        if x is None or (lo is not None and x < lo):
            raise OptionError(f"{name} must be a finite{' non-negative' if lo is not None else ''} number; got {v!r}")
    th = {"C1": float(c1_threshold), "tmsd_A2": float(tmsd_threshold_A2), "melting_A2": float(melting_threshold_A2),
          "rules": {"melting": f"framework-cation TMSD > {melting_threshold_A2:g} Å² (excluded)",
                    "1": f"C1 < {c1_threshold:g} and mobile TMSD ≥ {tmsd_threshold_A2:g} Å²",
                    "2": f"C1 < {c1_threshold:g} and mobile TMSD < {tmsd_threshold_A2:g} Å²",
                    "3": f"C1 ≥ {c1_threshold:g}"},
          "C1_at": "C1 at the reorientation analysis' longest reliable lag (half the run)",
          "reference": "Yang, Guan, Ouyang, Zhu, Chem. Mater. 2024, 36, 3776 (paper 003), Fig. 2a"}
    rows = [_row(r, None if labels is None else labels[i], th) for i, r in enumerate(results)]
    warns = [f"{r.label}: framework melting not checked (no framework-cation TMSD in the report)"
             for r in rows if not r.melting_checked and r.category is not None]
    warns += [f"{r.label}: unclassified: {r.reason}" for r in rows if r.category is None]
    counts = {"1": 0, "2": 0, "3": 0, "melting": 0, "unclassified": 0}
    for r in rows:
        counts["unclassified" if r.category is None else str(r.category)] += 1
    return ClassifyResult(rows, counts, th, warns)


# ----------------------------------------------------------------------------- output

def _order(rows):
    rank = {1: 0, 2: 1, 3: 2, "melting": 3, None: 4}
    return sorted(range(len(rows)), key=lambda i: (rank[rows[i].category],
                                                   rows[i].C1 if rows[i].C1 is not None else 2.0))


def classification_figure(res: ClassifyResult):
    """Paper 003 Fig. 2a: C(t) (red circles, left) and mobile-ion TMSD (blue squares, right, log) per report,
    backgrounds shaded by category, the thresholds dashed.  Returns a matplotlib Figure."""
    from ..plotting import need_matplotlib

    plt = need_matplotlib()
    order = _order(res.rows)
    rows = [res.rows[i] for i in order]
    n = len(rows)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.4 * n + 2.5), 4.8))
    ax2 = ax.twinx()
    for k, r in enumerate(rows):
        ax.axvspan(k - 0.5, k + 0.5, color=_SHADE[r.category], alpha=0.18, lw=0)
    x = np.arange(n)
    c1 = np.array([np.nan if r.C1 is None else r.C1 for r in rows])
    tm = np.array([np.nan if r.tmsd_A2 is None else max(r.tmsd_A2, 1e-3) for r in rows])
    ax.plot(x, c1, "o", color="tab:red", label="C(t)")
    ax.axhline(res.thresholds["C1"], color="tab:red", ls=":", lw=1.2)
    ax2.plot(x, tm, "s", color="tab:blue", label="TMSD")
    ax2.axhline(res.thresholds["tmsd_A2"], color="tab:blue", ls=":", lw=1.2)
    ax2.set_yscale("log")
    ax.set_ylim(min(-0.05, np.nanmin(c1) - 0.05) if np.isfinite(c1).any() else -0.05, 1.05)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_xticks(x)
    ax.set_xticklabels([r.label for r in rows], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("C(t) of the polyanion (dimensionless)", color="tab:red")
    cat = rows[0].cation if rows and rows[0].cation else "cation"
    ax2.set_ylabel(f"{cat} TMSD (Å²)", color="tab:blue")
    from matplotlib.patches import Patch

    present = []
    for key in (1, 2, 3, "melting", None):
        if any(r.category == key for r in rows):
            present.append(Patch(color=_SHADE[key], alpha=0.35, label=CATEGORY_TEXT[key]))
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2 + present, l1 + l2 + [p.get_label() for p in present], fontsize=7, frameon=False,
              loc="lower center", bbox_to_anchor=(0.5, 1.01), ncol=2)
    fig.tight_layout()
    return fig


def _cell(v, spec=".3g"):
    if v is None:
        return "–"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def _md(res: ClassifyResult, figure) -> str:
    th = res.thresholds
    lines = ["# anionmotion compare --classify", "",
             f"Paper 003 categories (Fig. 2a): framework melting when the non-mobile cations' TMSD > "
             f"{th['melting_A2']:g} Å² (excluded); category 1 = C(t) < {th['C1']:g} and mobile-ion TMSD ≥ "
             f"{th['tmsd_A2']:g} Å²; category 2 = C(t) < {th['C1']:g} with TMSD < {th['tmsd_A2']:g} Å²; category 3 = "
             f"C(t) ≥ {th['C1']:g}. C(t) is {th['C1_at']}.", "",
             "| label | T (K) | cation | TMSD (Å²) | framework TMSD (Å²) | anion | C(t) | t (ps) | category | reason |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for i in _order(res.rows):
        r = res.rows[i]
        fw = _cell(r.framework_tmsd_A2) if r.melting_checked else "not checked"
        lines.append(f"| {r.label} | {_cell(r.temperature_K, 'g')} | {r.cation or '–'} | {_cell(r.tmsd_A2)} | {fw} | "
                     f"{r.anion or '–'} | {_cell(r.C1, '.3f')} | {_cell(r.C1_lag_ps, '.4g')} | "
                     f"{'unclassified' if r.category is None else r.category} | {r.reason} |")
    lines += ["", "Counts: " + ", ".join(f"{k}: {v}" for k, v in res.counts.items())]
    if res.warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in res.warnings]
    if figure:
        lines += ["", "![paper-003 classification](figures/classification.png)"]
    return "\n".join(lines) + "\n"


def write_classify(res: ClassifyResult, out_dir, *, overwrite=False, figures=True) -> list:
    """Write ``classify.json``, ``classify.md``, ``classify.csv`` and ``figures/classification.png``.

    Refuses existing files unless ``overwrite``.  Returns the written names (relative to ``out_dir``).
    """
    import csv
    import io

    from ..results import check_output, make_output_folder, write_json, write_text_atomic

    out_dir = os.fspath(out_dir)
    names = ["classify.json", "classify.md", "classify.csv"]
    fig_name = os.path.join("figures", "classification.png")
    for nme in names + ([fig_name] if figures else []):
        check_output(os.path.join(out_dir, nme), overwrite)
    make_output_folder(out_dir)
    written, drew, notes = [], False, []
    if figures:
        try:
            fig = classification_figure(res)
        except ImportError as err:
            notes.append(f"figure not drawn: {err}")
        else:
            import matplotlib.pyplot as plt

            os.makedirs(os.path.join(out_dir, "figures"), exist_ok=True)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
            plt.close(fig)
            with open(os.path.join(out_dir, fig_name), "wb") as fh:
                fh.write(buf.getvalue())
            drew = True
            written.append(fig_name)
    d = res.to_dict()
    d["notes"] = notes
    write_json(os.path.join(out_dir, "classify.json"), d, overwrite)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["label", "path", "temperature_K", "cation", "tmsd_A2", "framework_tmsd_A2", "melting_checked",
                "anion", "C1", "C1_lag_ps", "span_ps", "category", "reason"])
    for i in _order(res.rows):
        r = res.rows[i]
        w.writerow(["" if v is None else v for v in (r.label, r.path, r.temperature_K, r.cation, r.tmsd_A2,
                                                      r.framework_tmsd_A2, r.melting_checked, r.anion, r.C1,
                                                      r.C1_lag_ps, r.span_ps,
                                                      "unclassified" if r.category is None else r.category,
                                                      r.reason)])
    write_text_atomic(os.path.join(out_dir, "classify.csv"), buf.getvalue(), overwrite)
    write_text_atomic(os.path.join(out_dir, "classify.md"), _md(res, drew), overwrite)
    return names + written
