"""Yota's README example: a `Linear` struct, `grad(loss, model, X)` and `update!`.

    python -m examples.yota_linear

The gradient w.r.t. a structured argument is a dict keyed by field paths. Only the
leaves the loss depends on appear: here `("W",)`, since `b` is never used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tapegrad as tg


@dataclass
class Linear:
    W: np.ndarray
    b: np.ndarray


def forward(m: Linear, X):
    return m.W @ X


def loss(m: Linear, X):
    return np.sum(forward(m, X))


def main(steps: int = 10, lr: float = 0.01, seed: int = 0, verbose: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    m = Linear(rng.standard_normal((3, 4)), rng.standard_normal(3))
    X = rng.standard_normal((4, 3))
    val, g = tg.grad(loss, m, X)
    if verbose:
        print(f"loss = {val:.4f}")
        print(f"g[0] keys: {list(g[0])}   (b is unused, so it has no entry)")
        print(f"g[0][('W',)] == ones(3, 3) @ X.T: {np.allclose(g[0][('W',)], np.ones((3, 3)) @ X.T)}")
        print(g.tape)
    losses = [val]
    for _ in range(steps):
        val, g = tg.grad(loss, m, X)
        tg.update(m, g[0], lambda x, gx: x - lr * gx)  # Yota's update!(m, g[1], (x, gx) -> x - 0.01gx)
        losses.append(loss(m, X))
    if verbose:
        print(f"after {steps} updates: loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    return {"grad": g, "losses": losses, "model": m, "X": X}


if __name__ == "__main__":
    main()
