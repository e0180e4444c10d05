import numpy as np

import tapegrad as tg


def test_sum_of_squares():
    x = tg.Param(np.array([1.0, 2.0, 3.0]))
    y = tg.diff(lambda: np.sum(x**2))
    assert tg.value(y) == 14.0
    np.testing.assert_allclose(tg.grad(y, x), [2.0, 4.0, 6.0])


def test_grad_of_grad_sin():
    np.testing.assert_allclose(tg.grad(tg.grad(np.sin))(1.0), -np.sin(1.0))
