"""Report stage ``vanhove``: van Hove functions and α₂ of the mobile cation (SPEC §9).

:data:`STAGE_LOGIC` is ``(applies, body)`` in the form of ``anionmotion.report.stages._STAGE_LOGIC``; the
stage calls the public :func:`anionmotion.vanhove` and adds the result's own tables and figures.
"""

from __future__ import annotations

__all__ = ["applies", "body", "STAGE_LOGIC"]


def applies(ctx):
    """Reason why the stage does not apply (no mobile cation, one frame, uneven frames), or None."""
    if ctx.cation.species is None:
        return f"no mobile cation: {ctx.cation.reason}"
    traj = ctx.traj
    if traj.n_frames < 3:
        return f"the van Hove functions need at least 3 frames; the trajectory has {traj.n_frames}"
    if not traj.is_uniform:
        return "the van Hove functions and α₂ need evenly spaced frames"
    return None


def body(ctx, out):
    from .stages import _add_views, _api, _fmt, _get, _opt, call, rdict

    sp = ctx.cation.species
    res = call(out, _api("vanhove"), ctx.traj, sp, rmax=_opt(ctx, "r_max"), progress=ctx.progress, memory=ctx.memory)
    ctx.results["vanhove"] = res
    d = rdict(res)
    out.result = d
    mx = d.get("alpha2_max") or {}
    out.summary += [("lags", ", ".join(f"{x:.3g}" for x in res.lag_ps) + " ps"),
                    ("maximum of α₂ (every lag, all origins)",
                     f"{_fmt(mx.get('alpha2'))} at {_fmt(mx.get('lag_ps'), 'ps')}"),
                    ("drift correction", "yes" if _get(d, "meta", "drift") else "no")]
    beyond = [float(x) for x in res.fraction_beyond_rmax]
    if beyond and max(beyond) > 0.01:
        out.notes.append(f"{100 * max(beyond):.2g} % of the self displacements at the longest lag exceed rmax = "
                         f"{res.meta['rmax_A']:.3g} Å (G_s integrates to less than 1 there)")
    _add_views(out, res)


STAGE_LOGIC = (applies, body)
"""(applies, body) for ``_STAGE_LOGIC["vanhove"]``."""
