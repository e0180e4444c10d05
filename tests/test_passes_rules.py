"""Every rule-table case through every pass alone and the full pipeline.

The gradient tape of `<u, f(x)>` (and, for twice-differentiable cases, of the projected
gradient `<grad <u, f>, w>`) is optimised, then replayed on fresh random inputs next to
the raw tape: same dtypes and shapes, NaN/inf in the same places, 1e-12 otherwise.
"""

import zlib

import numpy as np
import pytest
from test_rules import CASES, _draw

import tapegrad as tg
from tapegrad.backends.interpret import run
from tapegrad.core import grad_call
from tapegrad.passes import PIPELINE, assert_same_results, optimize

PIPELINES = {"all": None, **{f"{k}:{p.__name__}": [p] for k, p in enumerate(PIPELINE)}}


def _tapes(c):
    """-> [(name, raw tape)], fresh leaves, traced leaves."""
    rng = np.random.default_rng(zlib.crc32(c.name.encode()))
    args = _draw(c, rng)
    fixed = {i: args[i] for i in c.nondiff}  # closed over, like test_gradient_tape_replays
    n = len(args)
    u = rng.standard_normal(np.shape(c.fn(*args)))

    def L(*a):
        it = iter(a)
        return np.sum(u * c.fn(*[fixed[i] if i in fixed else next(it) for i in range(n)]))

    def pick(a):
        return [x for i, x in enumerate(a) if i not in fixed]

    def leaves(a):
        return [x for y in a for x in tg.tree.flatten(y)[1]]

    args = pick(args)
    argnums = [i for i, a in enumerate(args) if np.result_type(a).kind == "f"]
    tapes = [("grad", grad_call(L, args, argnums=argnums)[2])]
    if c.order >= 2:
        w = [rng.standard_normal(np.shape(args[i])) for i in argnums]

        def H(*a):
            gs = tg.grad(L, argnum=argnums)(*a)
            return sum(np.sum(g * wk) for g, wk in zip(gs, w))

        tapes.append(("hvp", grad_call(H, args, argnums=argnums)[2]))
    return tapes, leaves(pick(_draw(c, rng))), leaves(args)


@pytest.mark.parametrize("c", CASES, ids=repr)
def test_rule_case_through_passes(c):
    tapes, fresh, traced = _tapes(c)
    for what, raw in tapes:
        leaves = fresh
        try:
            want = run(raw, leaves)
        except tg.GuardError:  # fresh inputs take another path: replay the traced ones
            leaves = traced
            want = run(raw, leaves)
        before = str(raw)
        for name, pipeline in PIPELINES.items():
            opt = optimize(raw, pipeline, check=True)
            try:
                assert_same_results(run(opt, leaves), want)
            except AssertionError as e:
                raise AssertionError(f"{c.name} ({what} tape), passes {name}: {e}") from e
        assert str(raw) == before  # passes never mutate their input
