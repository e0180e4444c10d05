import numpy as np

import tapegrad as tg


def test_sum_of_squares():
    x = tg.Param(np.array([1.0, 2.0, 3.0]))
    y = tg.diff(lambda: np.sum(x**2))
    assert tg.value(y) == 14.0
    np.testing.assert_allclose(tg.grad(y, x), [2.0, 4.0, 6.0])


def test_grad_of_grad_sin():
    np.testing.assert_allclose(tg.grad(tg.grad(np.sin))(1.0), -np.sin(1.0))


def test_import_does_not_load_scipy():
    # scipy.special costs ~0.25 s to import; its rules load when a SciPy ufunc is traced
    import subprocess
    import sys

    code = ("import sys, tapegrad, numpy as np\n"
            "assert 'scipy' not in sys.modules, sorted(m for m in sys.modules if 'scipy' in m)\n"
            "import scipy.special as sc\n"
            "g = tapegrad.grad(lambda x: np.sum(sc.expit(x)))(np.array([0.0, 1.0]))\n"
            "e = sc.expit(np.array([0.0, 1.0]))\n"
            "assert np.allclose(g, e * (1 - e)), g\n")
    subprocess.run([sys.executable, "-c", code], check=True)
