"""Import a compiled kernel module with a clear error when the package was not built."""

import importlib


def load_ext(name):
    """Return ``anionmotion._ext.<name>`` or raise ImportError explaining how to build it."""
    try:
        return importlib.import_module(f"anionmotion._ext.{name}")
    except ImportError as err:  # pragma: no cover - only on broken installs
        raise ImportError(
            f"anionmotion's compiled kernel {name} is missing: install the package with "
            "'python -m pip install .' (or build in place with 'python setup.py build_ext --inplace')"
        ) from err
