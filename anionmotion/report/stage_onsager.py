"""Report stage ``onsager``: Onsager coefficients, collective σ, Haven ratio and diffusion tensors (SPEC §9).

:data:`STAGE_LOGIC` is ``(applies, body)`` in the form of ``anionmotion.report.stages._STAGE_LOGIC``; the
stage calls the public :func:`anionmotion.onsager` on every species (the polyanions, when the report found
them, as one group moved by their centre), with the diffusion tensor of the mobile cation only, and adds the
result's own tables and figures.
"""

from __future__ import annotations

__all__ = ["applies", "body", "STAGE_LOGIC", "MIN_FRAMES"]

MIN_FRAMES = 40
"""Fewest frames for the stage: 5 time blocks of at least 8 frames."""


def applies(ctx):
    """Reason why the stage does not apply (no mobile cation, too few or uneven frames), or None."""
    if ctx.cation.species is None:
        return f"no mobile cation: {ctx.cation.reason}"
    traj = ctx.traj
    if traj.n_frames < MIN_FRAMES:
        return f"the Onsager analysis needs at least {MIN_FRAMES} frames (5 blocks of 8); the trajectory has " \
               f"{traj.n_frames}"
    if not traj.is_uniform:
        return "the Onsager analysis needs evenly spaced frames"
    return None


def body(ctx, out):
    from .stages import _add_views, _api, _fmt, _opt, _pm, call, rdict

    pa = ctx.polyanions
    center = getattr(pa, "center", None)
    ligand = getattr(pa, "ligand", None)
    kw = {}
    if center is not None and ligand is not None:
        kw = {"center": center, "ligand": ligand, "cutoff": _opt(ctx, "polyanion_cutoff")}
    sp = ctx.cation.species
    res = call(out, _api("onsager"), ctx.traj, temperature=ctx.temperature_K, tensors=[sp], progress=ctx.progress,
               memory=ctx.memory, **kw)
    out.result = rdict(res)
    out.summary.append(("groups", ", ".join(f"{n} ({int(k)} × {z:+g} e)" for n, k, z in
                                            zip(res.groups, res.n_atoms, res.charges))))
    out.summary.append(("reference frame", res.meta.get("frame_reason")))
    if res.L is not None:
        i = res.groups.index(sp) if sp in res.groups else None
        out.summary.append(("σ collective", _pm(res.sigma_S_cm * 1e3, res.sigma_stderr_S_cm * 1e3, "mS/cm")))
        out.summary.append(("σ Nernst–Einstein", _pm(res.sigma_NE_S_cm * 1e3, res.sigma_NE_stderr_S_cm * 1e3,
                                                     "mS/cm")))
        out.summary.append(("Haven ratio σ_NE/σ", _pm(res.haven_ratio, res.haven_ratio_stderr)))
        if i is not None:
            out.summary.append((f"transference number of {sp}", _pm(res.transference[i], res.transference_stderr[i])))
            out.summary.append((f"Haven ratio of {sp} (L_self/L)",
                                _pm(res.haven_ratio_groups[i], res.haven_ratio_groups_stderr[i])))
        out.summary.append(("error bars", f"jackknife over {res.n_blocks} time blocks of {res.block_frames} frames "
                                          f"(95 % interval ± {_fmt(res.ci95_factor)} ×)"))
    else:
        out.notes.append("L_ij and σ need a temperature: give --temperature")
    d = res.d_tensors.get(sp)
    if d is not None:
        w = d.eigenvalues_A2_ps * 1e-4
        out.summary.append((f"D tensor eigenvalues of {sp}", ", ".join(_fmt(x, "cm²/s") for x in w)))
    out.notes.append("the collective terms rest on one displacement series per group: their errors are large "
                     "for short runs")
    _add_views(out, res)


STAGE_LOGIC = (applies, body)
"""(applies, body) for ``_STAGE_LOGIC["onsager"]``."""
