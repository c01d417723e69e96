"""The ``sites`` stage of ``anionmotion report`` (docs/sites.md).

The report has no reference structure unless the options name one, so by default the sites are the maxima
of the cation's own time-averaged density (:func:`anionmotion.analysis.sites.sites_from_density`, one extra
streamed pass) assigned by Voronoi cells.  Report options used when present: ``sites_reference`` (file),
``sites_site_species``, ``sites_vertex_species``, ``sites_kind``, ``sites_radius``, ``sites_align``,
``grid_spacing`` (density grid, Å) and ``sites_min_residence`` (ps).
"""

from __future__ import annotations

__all__ = ["sites_body"]


def sites_body(ctx, out):
    """Run :func:`anionmotion.sites` on the mobile cation and fill the stage output."""
    from .stages import _add_views, _api, _fmt, _opt, _pm, call, rdict

    sp = ctx.cation.species
    kw = {"reference": _opt(ctx, "sites_reference"), "site_species": _opt(ctx, "sites_site_species"),
          "vertex_species": _opt(ctx, "sites_vertex_species"), "kind": _opt(ctx, "sites_kind"),
          "radius": _opt(ctx, "sites_radius"), "align": _opt(ctx, "sites_align"),
          "spacing": _opt(ctx, "grid_spacing"), "min_residence": _opt(ctx, "sites_min_residence")}
    res = call(out, _api("sites"), ctx.traj, sp, progress=ctx.progress, memory=ctx.memory, **kw)
    d = rdict(res)
    out.result = d
    src = res.meta.get("sites") or {}
    if res.meta.get("delocalised"):
        # too delocalised for meaningful density-maxima sites: say so instead of a site count
        out.summary.append(("sites", f"not meaningful: {sp} is delocalised ({res.n_sites} tentative density "
                                     f"maxima; {res.meta.get('delocalised_reason')})"))
        out.notes.append(f"{sp} is too delocalised for density-maxima sites: "
                         f"{100 * src.get('localised_fraction', float('nan')):.0f} % of its density lies in site "
                         "cores; the occupancies, residence times and jump statistics of this stage depend on where "
                         "the site boundaries are drawn (give a reference structure with sites_reference for "
                         "crystallographic sites)")
    else:
        how = "reference " + str(kw["reference"]) if kw["reference"] else "density maxima"
        if not kw["reference"] and src.get("n_maxima") is not None:
            how += (f": {src['n_maxima']} local maxima, {src['n_prominent']} persistent, "
                    f"{100 * src['localised_fraction']:.0f} % of the density in site cores")
        out.summary.append(("sites", f"{res.n_sites} {res.kind} sites in {len(res.type_names)} types ({how})"))
    out.summary.append(("debounce", f"{res.meta['debounce_frames']} frames ({_fmt(res.meta['debounce_ps'], 'ps')})"))
    for t, name in enumerate(res.type_names):
        r = res.residence[t]
        out.summary.append((f"{name}: fraction, mean residence",
                            f"{_fmt(100 * res.type_fraction_raw[t], '%')}, {_pm(r['mean_ps'], r['sem_ps'], 'ps')}"))
    out.summary.append(("jumps per ion per ps", _fmt(res.jump_rate_per_ps)))
    out.summary.append(("attempt frequency", _fmt(res.attempt_frequency_THz, "THz")))
    c = res.collective
    if c.get("fraction") is not None:
        base = None if c["baseline"] is None else 100 * c["baseline"]
        spread = None if c["baseline_std"] is None else 100 * c["baseline_std"]
        out.summary.append(("collective jumps (vs time-shifted baseline)",
                            f"{_fmt(100 * c['fraction'], '%')} vs {_pm(base, spread, '%')}"))
    if res.attempt_frequency_THz is not None and res.attempt_frequency_THz > 0.25 / res.dt_ps:
        out.notes.append(f"the attempt frequency {res.attempt_frequency_THz:.3g} THz is not well resolved by frames "
                         f"{res.dt_ps:g} ps apart (Nyquist {res.meta['nyquist_THz']:.3g} THz)")
    _add_views(out, res)
