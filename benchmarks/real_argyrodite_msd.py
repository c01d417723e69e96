"""Li diffusion in Li6PS5Cl (0p vs 100p anion disorder, 500 K AIMD) with anionmotion.msd/fit_diffusion/hops.

Usage: python benchmarks/real_argyrodite_msd.py [DATA_DIR]
DATA_DIR defaults to /work/shared/data/thirdparty/argyrodite-aimd (bjmorgan/data_argyrodite_disorder).
Prints one row per run and the mean ± standard error over runs; used for docs/diffusion.md.
"""
import glob
import os
import sys
import warnings

import numpy as np

import anionmotion
from anionmotion.errors import FitWarning

root = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/thirdparty/argyrodite-aimd"
rows = {}
print(f"{'run':12s} {'frames':>6s} {'D (1e-6 cm2/s)':>15s} {'GLS err':>8s} {'He err':>8s} {'loglog':>6s} "
      f"{'sigma mS/cm':>11s} {'TMSD A2':>8s} {'hops/ns':>8s}")
for kind in ("0p", "100p"):
    for path in sorted(glob.glob(os.path.join(root, "Li6PS5Cl", kind, "run*", "actual_XDATCAR.gz"))):
        run = os.path.basename(os.path.dirname(path))
        traj = anionmotion.open(path, frame_interval=0.1, progress=False)
        res = anionmotion.msd(traj, species="Li", temperature=500)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            fit = anionmotion.fit_diffusion(res)
        hop = anionmotion.hops(traj, species="Li", a=3.0, residence=1.0, window=4.0)
        c = fit.conductivity
        rows.setdefault(kind, []).append(fit.D_cm2_s)
        print(f"{kind + '/' + run:12s} {res.n_frames:6d} {fit.D_cm2_s * 1e6:15.3f} {fit.D_stderr_cm2_s * 1e6:8.3f} "
              f"{fit.he_relative_error * fit.D_cm2_s * 1e6:8.3f} {fit.loglog_slope:6.2f} {c.sigma_S_cm * 1e3:11.1f} "
              f"{res.tmsd:8.2f} {hop.jump_frequency_per_ns:8.1f}")
for kind, v in rows.items():
    v = np.array(v)
    print(f"{kind}: D = {v.mean() * 1e6:.3f} ± {v.std(ddof=1) / np.sqrt(len(v)) * 1e6:.3f} (1e-6 cm2/s, mean ± s.e. "
          f"over {len(v)} runs; run-to-run s.d. {v.std(ddof=1) * 1e6:.3f})")
