"""The demo: train an MLP classifier on scikit-learn's bundled digits with `tg.grad` + `tg.update`.

    pip install -e '.[examples]' && python -m examples.mlp_digits

Yota-style: the model is a plain dataclass, `tg.grad(loss, model, X, y)` returns the loss
and a `GradResult` whose `g[0]` maps field paths (`("W1",)`, ...) to gradients, and
`tg.update` applies an SGD step to every leaf in place. The loss is plain NumPy.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np

import tapegrad as tg


@dataclass
class MLP:
    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray


def init(n_in: int, n_hidden: int, n_out: int, rng: np.random.Generator) -> MLP:
    return MLP(W1=rng.normal(0.0, 1.0 / np.sqrt(n_in), (n_in, n_hidden)), b1=np.zeros(n_hidden),
               W2=rng.normal(0.0, 1.0 / np.sqrt(n_hidden), (n_hidden, n_out)), b2=np.zeros(n_out))


def logits(m: MLP, X):
    return np.tanh(X @ m.W1 + m.b1) @ m.W2 + m.b2


def loss(m: MLP, X, y):
    """Mean cross-entropy; `y` holds integer labels."""
    z = logits(m, X)
    zmax = np.max(z, axis=1, keepdims=True)
    logp = z - (np.log(np.sum(np.exp(z - zmax), axis=1, keepdims=True)) + zmax)
    return -np.mean(logp[np.arange(len(y)), y])


def accuracy(m: MLP, X, y) -> float:
    return float(np.mean(np.argmax(logits(m, X), axis=1) == y))


def load_data(seed: int = 0):
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        print("This demo needs scikit-learn's bundled digits dataset:\n"
              "    pip install -e '.[examples]'", file=sys.stderr)
        raise SystemExit(2)
    d = load_digits()
    X, y = d.data / 16.0, d.target
    idx = np.random.default_rng(seed).permutation(len(y))
    n_test = len(y) // 4
    test, train = idx[:n_test], idx[n_test:]
    return X[train], y[train], X[test], y[test]


def main(epochs: int = 30, batch: int = 32, lr: float = 0.2, seed: int = 0,
         verbose: bool = True) -> dict:
    Xtr, ytr, Xte, yte = load_data(seed)
    rng = np.random.default_rng(seed)
    model = init(Xtr.shape[1], 64, 10, rng)
    if verbose:
        print(f"digits: {len(ytr)} train / {len(yte)} test images of 8x8 pixels; "
              f"MLP 64-64-10, tanh, SGD lr={lr}, batch {batch}")
    losses, t0 = [], time.perf_counter()
    for epoch in range(epochs):
        perm = rng.permutation(len(ytr))
        total = 0.0
        for s in range(0, len(ytr), batch):
            b = perm[s:s + batch]
            val, g = tg.grad(loss, model, Xtr[b], ytr[b])
            tg.update(model, g[0], lambda x, gx: x - lr * gx)
            total += val * len(b)
        losses.append(total / len(ytr))
        if verbose and (epoch % max(1, epochs // 10) == 0 or epoch == epochs - 1):
            print(f"epoch {epoch + 1:3d}  train loss {losses[-1]:.4f}  "
                  f"test accuracy {accuracy(model, Xte, yte):.3f}")
    acc = accuracy(model, Xte, yte)
    if verbose:
        print(f"final test accuracy {acc:.1%} ({time.perf_counter() - t0:.1f} s of training)")
    return {"losses": losses, "test_accuracy": acc, "model": model}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=0.2)
    a = p.parse_args()
    main(epochs=a.epochs, lr=a.lr)
