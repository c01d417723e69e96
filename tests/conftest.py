import os
import warnings

import numpy as np
import pytest

DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.fixture
def datadir():
    return DATA


def data_path(*parts):
    return os.path.join(DATA, *parts)
