"""Logistic regression trained by gradient descent (the HIPS autograd tutorial).

    python -m examples.logistic_regression

Function-transform style: `tg.grad(training_loss)` returns a function computing the
gradient, exactly as `autograd.grad` does.
"""

from __future__ import annotations

import numpy as np

import tapegrad as tg


def sigmoid(x):
    return 0.5 * (np.tanh(x / 2.0) + 1.0)


def logistic_predictions(weights, inputs):
    """Outputs the probability of a label being true according to a logistic model."""
    return sigmoid(np.dot(inputs, weights))


def make_loss(inputs, targets):
    def training_loss(weights):
        preds = logistic_predictions(weights, inputs)
        label_probabilities = preds * targets + (1 - preds) * (1 - targets)
        return -np.sum(np.log(label_probabilities))

    return training_loss


def main(steps: int = 100, lr: float = 0.01, verbose: bool = True) -> dict:
    # the tutorial's toy data set
    inputs = np.array([[0.52, 1.12, 0.77],
                       [0.88, -1.08, 0.15],
                       [0.52, 0.06, -1.30],
                       [0.74, -2.49, 1.39]])
    targets = np.array([True, True, False, True])
    training_loss = make_loss(inputs, targets)
    training_gradient_fun = tg.grad(training_loss)
    weights = np.array([0.0, 0.0, 0.0])
    losses = [training_loss(weights)]
    if verbose:
        print(f"initial loss: {losses[0]:.4f}")
    for i in range(steps):
        weights = weights - training_gradient_fun(weights) * lr
        losses.append(training_loss(weights))
        if verbose and (i + 1) % max(1, steps // 5) == 0:
            print(f"step {i + 1:4d}  loss {losses[-1]:.4f}")
    preds = logistic_predictions(weights, inputs)
    if verbose:
        print(f"trained loss: {losses[-1]:.4f}; predictions {np.round(preds, 3).tolist()} "
              f"for targets {targets.astype(int).tolist()}")
    return {"losses": losses, "weights": weights, "predictions": preds, "targets": targets}


if __name__ == "__main__":
    main()
