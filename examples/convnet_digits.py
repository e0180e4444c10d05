"""A small convnet on scikit-learn's 8x8 digits, convolution written in plain NumPy.

    pip install -e '.[examples]' && python -m examples.convnet_digits

The 3x3 convolution is an im2col gather with a precomputed integer index
(`X[:, PATCHES]`, recorded as one `getitem`, its adjoint a scatter-add) followed by
`np.einsum` with the filters; 2x2 max-pooling is a `reshape` and `np.max` over two axes.
Architecture: conv 3x3 (1 -> 16 channels, valid: 6x6) + ReLU, max-pool 2x2 (3x3),
dense 144 -> 10. Adam on the parameters dict; `tg.grad(..., dynamic=True)` traces once
per batch shape and replays the cached gradient tape afterwards.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import tapegrad as tg
from examples.mlp_digits import load_data

# PATCHES[p, k]: flat pixel index (of 64) of tap k (of 9) of output position p (of 36)
_r, _c = np.meshgrid(np.arange(6), np.arange(6), indexing="ij")
_dr, _dc = np.meshgrid(np.arange(3), np.arange(3), indexing="ij")
PATCHES = ((_r.reshape(-1, 1) + _dr.reshape(1, -1)) * 8 + (_c.reshape(-1, 1) + _dc.reshape(1, -1)))


def init(channels: int, rng: np.random.Generator) -> dict:
    return {"K": rng.normal(0.0, 1.0 / 3.0, (9, channels)), "bK": np.zeros(channels),
            "W": rng.normal(0.0, 1.0 / np.sqrt(9 * channels), (9 * channels, 10)),
            "b": np.zeros(10)}


def logits(p: dict, X):
    """X: (batch, 64) pixels in [0, 1] -> (batch, 10)."""
    B, C = X.shape[0], p["K"].shape[1]
    patches = X[:, PATCHES]                                  # (B, 36, 9): im2col
    h = np.maximum(np.einsum("bpk,kc->bpc", patches, p["K"]) + p["bK"], 0.0)  # (B, 36, C)
    h = np.max(h.reshape(B, 3, 2, 3, 2, C), axis=(2, 4))    # 2x2 max-pool: (B, 3, 3, C)
    return h.reshape(B, 9 * C) @ p["W"] + p["b"]


def loss(p: dict, X, y):
    """Mean cross-entropy; `y` holds integer labels."""
    z = logits(p, X)
    zmax = np.max(z, axis=1, keepdims=True)
    logp = z - (np.log(np.sum(np.exp(z - zmax), axis=1, keepdims=True)) + zmax)
    return -np.mean(logp[np.arange(len(y)), y])


def accuracy(p: dict, X, y) -> float:
    return float(np.mean(np.argmax(logits(p, X), axis=1) == y))


def main(epochs: int = 15, batch: int = 64, channels: int = 16, lr: float = 0.01, seed: int = 0,
         verbose: bool = True) -> dict:
    Xtr, ytr, Xte, yte = load_data(seed)
    rng = np.random.default_rng(seed)
    p = init(channels, rng)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    s = {k: np.zeros_like(v) for k, v in p.items()}
    if verbose:
        print(f"digits: {len(ytr)} train / {len(yte)} test; conv 3x3x{channels} + ReLU, "
              f"max-pool 2x2, dense {9 * channels}->10; Adam lr={lr}, batch {batch}")
    losses, t, t0 = [], 0, time.perf_counter()
    for epoch in range(epochs):
        perm = rng.permutation(len(ytr))
        total = 0.0
        for start in range(0, len(ytr), batch):
            b = perm[start:start + batch]
            val, g = tg.grad(loss, p, Xtr[b], ytr[b], dynamic=True)
            t += 1
            for (k,), gk in g[0].items():  # Adam
                m[k] = 0.9 * m[k] + 0.1 * gk
                s[k] = 0.999 * s[k] + 0.001 * gk * gk
                p[k] -= lr * (m[k] / (1 - 0.9 ** t)) / (np.sqrt(s[k] / (1 - 0.999 ** t)) + 1e-8)
            total += float(val) * len(b)
        losses.append(total / len(ytr))
        if verbose and (epoch % max(1, epochs // 5) == 0 or epoch == epochs - 1):
            print(f"epoch {epoch + 1:3d}  train loss {losses[-1]:.4f}  "
                  f"test accuracy {accuracy(p, Xte, yte):.3f}")
    acc = accuracy(p, Xte, yte)
    if verbose:
        print(f"final test accuracy {acc:.1%} ({time.perf_counter() - t0:.1f} s of training)")
    return {"losses": losses, "test_accuracy": acc, "params": p}


if __name__ == "__main__":
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--epochs", type=int, default=15)
    main(epochs=a.parse_args().epochs)
