"""Render a report dictionary as self-contained HTML and as Markdown.

The HTML embeds every figure as a base64 PNG ``data:`` URI and carries its own
CSS, so the file opens offline and can be mailed as one file.
"""

from __future__ import annotations

import base64
import html
import json
import re

__all__ = ["render_html", "render_markdown", "describe"]

_STATUS_TEXT = {"ok": "ran", "skipped": "not applicable", "unavailable": "not available", "failed": "FAILED"}

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:980px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;
vertical-align:top}th{background:#f4f4f4}code{background:#f4f4f4;padding:0 .2em}
.st{display:inline-block;padding:0 .5em;border-radius:.6em;font-size:.85em;color:#fff}
.ok{background:#2a7}.skipped{background:#888}.unavailable{background:#b80}.failed{background:#c33}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.9em;color:#555}
.note{color:#555;font-size:.92em}.warn{color:#a60;font-size:.92em}
details{margin:.5em 0}summary{cursor:pointer;color:#555}
"""


def _status_text(a: dict) -> str:
    """The status word of a stage: "not requested" for a stage left out with --stages, else by status."""
    if a["status"] == "skipped" and str(a.get("reason", "")).startswith("not requested"):
        return "not requested"
    return _STATUS_TEXT.get(a["status"], a["status"])


def _esc(x) -> str:
    return html.escape(str(x), quote=True)


def _params_rows(params: dict) -> str:
    return "".join(f"<tr><td><code>{_esc(k)}</code></td><td>{_esc(_short(v, key=k))}</td></tr>"
                   for k, v in params.items())


#: a list of more numbers than this is described (count and range), not printed
MAX_LISTED_NUMBERS = 8


def _is_number_list(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)


def _is_int_table(v) -> bool:
    """A list of lists of integers (e.g. the ligand indices of every anion)."""
    return isinstance(v, list) and bool(v) and all(
        isinstance(r, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in r) for r in v)


def _polyanion_text(d: dict) -> str:
    """``108 SO4 anions, centre S, ligand O`` for the JSON form of :class:`anionmotion.Polyanions`."""
    n = len(d.get("members") or d.get("centers") or [])
    counts = d.get("ligand_counts") or []
    k = counts[0] if counts and all(c == counts[0] for c in counts) else None
    c, lig = d.get("center_species"), d.get("ligand_species") or "?"
    if c:
        label = f"{c}{lig}{k if k not in (None, 1) else ''}"
        text = f"{n} {label} anion{'s' if n != 1 else ''}, centre {c}, ligand {lig}"
    else:
        text = f"{n} {lig} cluster{'s' if n != 1 else ''} (no centre atom)"
    if k is None and counts:
        text += f", {min(counts)}–{max(counts)} ligands each"
    if isinstance(d.get("cutoff"), (int, float)):
        text += f" (cutoff {d['cutoff']:.3g} Å, {d.get('connectivity') or 'connectivity unknown'})"
    return text


def describe(v, key=""):
    """A human-readable stand-in for a parameter value: no raw index lists.

    The JSON form of a polyanion set becomes ``"108 SO4 anions, centre S, ligand O (cutoff …)"``, a hop
    result ``"37 hop events of Li"``, any list of more than :data:`MAX_LISTED_NUMBERS` numbers its count
    and range (``"108 atom indices, 4 … 751"``); other values are returned unchanged (dicts and lists
    with their items described).
    """
    if isinstance(v, dict):
        if "centers" in v and ("ligands" in v or "members" in v):
            return _polyanion_text(v)
        if isinstance(v.get("events"), list) and ("a_A" in v or "jump_frequency_per_ns" in v):
            n = len(v["events"])
            return f"{n} hop event{'s' if n != 1 else ''}" + (f" of {v['species']}" if v.get("species") else "")
        return {k: describe(x, k) for k, x in v.items()}
    if _is_int_table(v) and sum(len(r) for r in v) > MAX_LISTED_NUMBERS:
        widths = sorted({len(r) for r in v})
        w = f"{widths[0]}" if len(widths) == 1 else f"{widths[0]}–{widths[-1]}"
        return f"{len(v)} rows of {w} atom indices"
    if _is_number_list(v) and len(v) > MAX_LISTED_NUMBERS:
        what = "atom indices" if all(isinstance(x, int) for x in v) and _index_key(key) else "values"
        return f"{len(v)} {what}, {_num(min(v))} … {_num(max(v))}"
    if isinstance(v, list):
        return [describe(x, key) for x in v]
    return v


def _index_key(key) -> bool:
    k = str(key).lower()
    return any(w in k for w in ("atom", "center", "centre", "ligand", "member", "index", "indices", "cation",
                                "anion"))


def _num(x) -> str:
    return str(x) if isinstance(x, int) else f"{x:.4g}"


def _short(v, limit=200, key=""):
    v = describe(v, key)
    s = v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False)
    return s if len(s) <= limit else s[:limit] + " …"


def render_html(report: dict, figures: dict) -> str:
    """HTML text of ``report``.

    Parameters
    ----------
    report : dict
        The report dictionary (what ``report.json`` holds).
    figures : dict
        ``{relative file name: PNG bytes}`` of every figure named in the report.
    """
    inp, tr, det = report["input"], report["trajectory"], report["detected"]
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>anionmotion report: {_esc(inp['name'])}</title><style>{_CSS}</style></head><body>",
             f"<h1>anionmotion report: {_esc(inp['name'])}</h1>",
             f"<p class='note'>anionmotion {_esc(report['anionmotion_version'])} · created "
             f"{_esc(report['created_utc'])} · input sha256 <code>{_esc(inp.get('sha256') or '–')}</code></p>",
             "<h2>Trajectory</h2><table>"]
    rows = [("file", inp["path"]), ("format", tr["format"]),
            ("atoms", f"{tr['n_atoms']} (" + ", ".join(f"{k} {v}" for k, v in tr["species"].items()) + ")"),
            ("frames", tr["n_frames"]), ("time span", f"{tr['span_ps']:.6g} ps (Δt {tr['dt_ps']:.6g} ps)"),
            ("velocities", "yes" if tr["velocities"] else "no"), ("mean volume", f"{tr['volume_A3']:.6g} Å³"),
            ("temperature", f"{report['temperature_K']} K ({report['temperature_source']})"
             if report["temperature_K"] is not None else "not given")]
    parts += [f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows]
    if tr.get("metadata"):
        parts.append(f"<tr><th>metadata</th><td><details><summary>{len(tr['metadata'])} file attributes</summary>"
                     + "<br>".join(f"<code>{_esc(k)}</code> = {_esc(_short(v, 400, k))}" for k, v in tr["metadata"].items())
                     + "</details></td></tr>")
    parts.append("</table><h2>Detected</h2><ul>")
    parts.append(f"<li><b>mobile cation</b> ({_esc(det['cation']['source'])}): {_esc(det['cation']['reason'])}</li>")
    parts.append(f"<li><b>polyanions</b> ({_esc(det['polyanions']['source'])}): "
                 f"{_esc(det['polyanions']['reason'])}</li></ul>")
    parts.append("<h2>Analyses</h2><table><tr><th>analysis</th><th>status</th><th>reason / time</th></tr>")
    for st in report["stages"]:
        a = report["analyses"][st]
        why = a["reason"] if a["status"] != "ok" else f"{a['seconds']:.2f} s"
        parts.append(f"<tr><td><a href='#{_esc(st)}'>{_esc(a['title'])}</a></td><td><span class='st {a['status']}'>"
                     f"{_status_text(a)}</span></td><td>{_esc(why)}</td></tr>")
    cmp_ = report.get("comparison")
    if cmp_:
        why = cmp_.get("reason") if cmp_["status"] != "ok" else cmp_.get("summary", "")
        parts.append(f"<tr><td><a href='#comparison'>{_esc(cmp_['title'])}</a></td><td><span class='st "
                     f"{_esc(cmp_['status'])}'>{_STATUS_TEXT.get(cmp_['status'], cmp_['status'])}</span></td>"
                     f"<td>{_esc(why)}</td></tr>")
    parts.append("</table>")
    if cmp_:   # the headline of the example: right after the overview
        parts.append(_comparison_html(cmp_, figures))
    for st in report["stages"]:
        a = report["analyses"][st]
        parts.append(f"<h2 id='{_esc(st)}'>{_esc(a['title'])} <span class='st {a['status']}'>"
                     f"{_status_text(a)}</span></h2>")
        if a["status"] != "ok":
            parts.append(f"<p><b>Reason:</b> {_esc(a['reason'])}</p>")
        if a["summary"]:
            parts.append("<table>" + "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>"
                                             for k, v in a["summary"].items()) + "</table>")
        for fig in a["figures"]:
            png = figures.get(fig["file"])
            if png is None:
                continue
            b64 = base64.b64encode(png).decode("ascii")
            parts.append(f"<figure><img alt='{_esc(fig['caption'])}' src='data:image/png;base64,{b64}'>"
                         f"<figcaption>{_esc(fig['caption'])}</figcaption></figure>")
        if a["tables"]:
            parts.append("<p class='note'>Data: " + ", ".join(f"<code>{_esc(t)}</code>" for t in a["tables"])
                         + "</p>")
        if a.get("files"):
            parts.append("<p class='note'>Files: " + ", ".join(f"<code>{_esc(t)}</code>" for t in a["files"])
                         + "</p>")
        for n in a["notes"]:
            parts.append(f"<p class='note'>{_esc(n)}</p>")
        for w in a["warnings"]:
            parts.append(f"<p class='warn'>warning: {_esc(w)}</p>")
        if a["parameters"] or a.get("meta"):
            parts.append("<details><summary>parameters and defaults</summary><table>"
                         + _params_rows(a["parameters"]) + _params_rows(a.get("meta") or {}) + "</table></details>")
    parts.append("<h2>Report parameters</h2><table>" + _params_rows(report["parameters"]) + "</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def render_markdown(report: dict) -> str:
    """Markdown text of ``report`` (figures referenced as files under ``figures/``)."""
    inp, tr, det = report["input"], report["trajectory"], report["detected"]
    lines = [f"# anionmotion report: {inp['name']}", "",
             f"anionmotion {report['anionmotion_version']}, created {report['created_utc']}, "
             f"input sha256 `{inp.get('sha256') or '–'}`", "", "## Trajectory", "",
             "| | |", "|---|---|", f"| file | `{inp['path']}` |", f"| format | {tr['format']} |",
             f"| atoms | {tr['n_atoms']} (" + ", ".join(f"{k} {v}" for k, v in tr["species"].items()) + ") |",
             f"| frames | {tr['n_frames']} |", f"| time span | {tr['span_ps']:.6g} ps (Δt {tr['dt_ps']:.6g} ps) |",
             f"| velocities | {'yes' if tr['velocities'] else 'no'} |",
             "| temperature | " + (f"{report['temperature_K']} K ({report['temperature_source']})"
                                    if report["temperature_K"] is not None else "not given") + " |", "",
             "## Detected", "", f"- **mobile cation** ({det['cation']['source']}): {det['cation']['reason']}",
             f"- **polyanions** ({det['polyanions']['source']}): {det['polyanions']['reason']}", "",
             "## Analyses", "", "| analysis | status | reason / time |", "|---|---|---|"]
    for st in report["stages"]:
        a = report["analyses"][st]
        why = a["reason"] if a["status"] != "ok" else f"{a['seconds']:.2f} s"
        lines.append(f"| {a['title']} | {_status_text(a)} | {why} |")
    cmp_ = report.get("comparison")
    if cmp_:
        why = cmp_.get("reason") if cmp_["status"] != "ok" else cmp_.get("summary", "")
        lines.append(f"| {cmp_['title']} | {_STATUS_TEXT.get(cmp_['status'], cmp_['status'])} | {why} |")
        lines += _comparison_markdown(cmp_)
    for st in report["stages"]:
        a = report["analyses"][st]
        lines += ["", f"## {a['title']}", ""]
        if a["status"] != "ok":
            lines += [f"**{_status_text(a)}:** {a['reason']}", ""]
        if a["summary"]:
            lines += ["| quantity | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in a["summary"].items()] + [""]
        for fig in a["figures"]:
            lines += [f"![{fig['caption']}]({fig['file']})", "", f"*{fig['caption']}*", ""]
        if a["tables"]:
            lines.append("Data: " + ", ".join(f"`{t}`" for t in a["tables"]))
        if a.get("files"):
            lines.append("Files: " + ", ".join(f"`{t}`" for t in a["files"]))
        lines += [f"> {n}" for n in a["notes"]]
        lines += [f"> warning: {w}" for w in a["warnings"]]
        if a["parameters"]:
            lines.append("Parameters: " + ", ".join(f"`{k}={_short(v, 80, k)}`" for k, v in a["parameters"].items()))
    lines += ["", "## Report parameters", ""] + [f"- `{k}` = `{_short(v, key=k)}`" for k, v in report["parameters"].items()]
    return "\n".join(lines) + "\n"


def _code_spans(text) -> str:
    """Escaped ``text`` with Markdown-style `code` spans as <code> (for prose written for both renderings)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _esc(text))


def _comparison_html(c: dict, figures: dict) -> str:
    """The section a report extension adds under ``report["comparison"]`` (the UC/RC example)."""
    out = [f"<h2 id='comparison'>{_esc(c['title'])} <span class='st {_esc(c['status'])}'>"
           f"{_STATUS_TEXT.get(c['status'], c['status'])}</span></h2>"]
    if c["status"] != "ok":
        out.append(f"<p><b>Reason:</b> {_esc(c.get('reason'))}</p>")
    if c.get("intro"):
        out.append(f"<p>{_code_spans(c['intro'])}</p>")
    if c.get("rows"):
        out.append("<table><tr><th>quantity</th>" + "".join(f"<th>{_esc(h)}</th>" for h in c.get("columns", ("UC", "RC")))
                   + "</tr>" + "".join("<tr><th>" + _esc(r[0]) + "</th>" + "".join(f"<td>{_esc(x)}</td>" for x in r[1:])
                                       + "</tr>" for r in c["rows"]) + "</table>")
    for fig in c.get("figures", []):
        png = figures.get(fig["file"])
        if png is None:
            continue
        b64 = base64.b64encode(png).decode("ascii")
        out.append(f"<figure><img alt='{_esc(fig['caption'])}' src='data:image/png;base64,{b64}'>"
                   f"<figcaption>{_esc(fig['caption'])}</figcaption></figure>")
    for n in c.get("notes", []):
        out.append(f"<p class='note'>{_code_spans(n)}</p>")
    for w in c.get("warnings", []):
        out.append(f"<p class='warn'>warning: {_esc(w)}</p>")
    if c.get("links"):
        out.append("<p class='note'>" + " · ".join(f"<a href='{_esc(href)}'>{_esc(text)}</a>"
                                                   for text, href in c["links"]) + "</p>")
    return "\n".join(out)


def _comparison_markdown(c: dict) -> list:
    lines = ["", f"## {c['title']}", ""]
    if c["status"] != "ok":
        lines += [f"**{_STATUS_TEXT.get(c['status'], c['status'])}:** {c.get('reason')}", ""]
    if c.get("intro"):
        lines += [c["intro"], ""]
    if c.get("rows"):
        cols = list(c.get("columns", ("UC", "RC")))
        lines += ["| quantity | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in c["rows"]] + [""]
    for fig in c.get("figures", []):
        lines += [f"![{fig['caption']}]({fig['file']})", "", f"*{fig['caption']}*", ""]
    lines += [f"> {n}" for n in c.get("notes", [])]
    lines += [f"> warning: {w}" for w in c.get("warnings", [])]
    if c.get("links"):
        lines += ["", " · ".join(f"[{text}]({href})" for text, href in c["links"]), ""]
    return lines
