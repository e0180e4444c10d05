"""Linear regression with a callable model, AutoGrad.jl style (`tg.Param` / `tg.diff`).

    python -m examples.linear_regression

The model is an object holding `Param`s; calling it is plain NumPy. `tg.diff` records
the loss, `tg.grad(J, p)` reads the gradient of each parameter, and the update writes
`p.value` in place, as in AutoGrad.jl's README (`w .-= 0.1 * grad(J, w)`).
"""

from __future__ import annotations

import numpy as np

import tapegrad as tg


class Linear:
    """y = W x + b, parameters as `tg.Param`s."""

    def __init__(self, n_in: int, n_out: int, rng: np.random.Generator):
        self.W = tg.Param(0.1 * rng.standard_normal((n_out, n_in)))
        self.b = tg.Param(np.zeros((n_out, 1)))

    def __call__(self, x):
        return self.W @ x + self.b

    def params(self):
        return [self.W, self.b]


def loss(model, x, y):
    return np.mean((model(x) - y) ** 2)


def main(steps: int = 200, lr: float = 0.1, seed: int = 0, verbose: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    W_true, b_true = np.array([[2.0, -3.0, 0.5]]), np.array([[1.0]])
    x = rng.standard_normal((3, 200))
    y = W_true @ x + b_true + 0.01 * rng.standard_normal((1, 200))
    model = Linear(3, 1, rng)
    losses = []
    for step in range(steps):
        J = tg.diff(lambda: loss(model, x, y))
        for p in model.params():
            p.value -= lr * tg.grad(J, p)
        losses.append(float(tg.value(J)))
        if verbose and step % max(1, steps // 8) == 0:
            print(f"step {step:4d}  loss {losses[-1]:.5f}")
    W, b = model.W.value, model.b.value
    if verbose:
        print(f"learned W = {np.round(W, 3).tolist()}, b = {np.round(b.ravel(), 3).tolist()}")
        print(f"true    W = {W_true.tolist()}, b = {b_true.ravel().tolist()}")
    return {"losses": losses, "W": W, "b": b, "W_true": W_true, "b_true": b_true}


if __name__ == "__main__":
    main()
