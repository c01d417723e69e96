"""Build the Cython kernels in ``ext/`` into private modules ``anionmotion._ext.*``.

All metadata lives in ``pyproject.toml``.  Set ``ANIONMOTION_DEBUG_CYTHON=1`` to
build with bounds checking, and ``ANIONMOTION_EXT=_unwrap,_lammps`` to build a
subset while developing.
"""
import glob
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("ANIONMOTION_DEBUG_CYTHON", "0") != "0"
only = [s for s in os.environ.get("ANIONMOTION_EXT", "").split(",") if s]

names = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join("ext", "_*.pyx")))
if only:
    names = [n for n in names if n in only]

extensions = [
    Extension(
        f"anionmotion._ext.{name}",
        [os.path.join("ext", f"{name}.pyx")],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_22_API_VERSION")],
        extra_compile_args=["-O3"],
    )
    for name in names
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": debug,
            "wraparound": debug,
            "cdivision": True,
            "initializedcheck": debug,
        },
    )
)
