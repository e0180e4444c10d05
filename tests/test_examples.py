"""Every example runs here in a fast mode and its outcome is asserted."""

import importlib.util

import numpy as np
import pytest

HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


@pytest.mark.skipif(not HAVE_SKLEARN, reason="needs scikit-learn (pip install -e '.[examples]')")
def test_mlp_digits_demo():
    from examples import mlp_digits

    r = mlp_digits.main(epochs=12, verbose=False)
    losses = r["losses"]
    assert losses[0] > 1.0
    assert losses[-1] < 0.2
    assert all(b < a * 1.05 for a, b in zip(losses, losses[1:]))
    assert r["test_accuracy"] >= 0.95
