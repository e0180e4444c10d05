"""Snapshots of the printed tape: the contract's format, `%3 = tanh(%2)::float64[3]  # file.py:N`.

Golden text: change it on purpose or not at all. Source lines are written relative to the
function's `def` line so that edits elsewhere in this file do not move them.
"""

from __future__ import annotations

import inspect
import re

import numpy as np

import tapegrad as tg
from tapegrad.core import grad_call


def model(W, x, b):
    h = np.tanh(W @ x + b)
    return np.sum(h * 2.0)


def branchy(x):
    y = x[1:] * np.arange(2.0) + x[np.array([0, 0])]
    if np.sum(y) > 0:
        y = y / 3
    return np.sum(y ** 2), x.T


ARGS = (np.ones((2, 3)), np.ones(3), np.ones(2))


def _golden(fn, text):
    """Fill `{N}` (N = lines after `def`) with `test_printing.py:<line>`."""
    line0 = inspect.getsourcelines(fn)[1]
    return re.sub(r"\{(\d+)\}", lambda m: f"test_printing.py:{line0 + int(m.group(1))}", text)


def _same(got: str, want: str):
    assert got.splitlines() == want.strip("\n").splitlines(), "\n" + got


def test_forward_tape_snapshot():
    _, tape = tg.trace(model, *ARGS)
    _same(str(tape), _golden(model, """
tape(%1::float64[2,3], %2::float64[3], %3::float64[2]) -> %8
  %4 = matmul(%1, %2)::float64[2]              # {1}
  %5 = add(%4, %3)::float64[2]                 # {1}
  %6 = tanh(%5)::float64[2]                    # {1}
  %7 = multiply(%6, 2.0)::float64[2]           # {2}
  %8 = sum(%7)::float64[]                      # {2}
"""))


def test_reverse_pass_snapshot():
    """What the reverse pass appends, before any optimisation: each backward op says which
    derivative it computes and carries its forward op's line."""
    tape = grad_call(model, ARGS)[2]
    _same(str(tape), _golden(model, """
tape(%1::float64[2,3], %2::float64[3], %3::float64[2]) -> (%8, %16, %20, %14)
  %4 = matmul(%1, %2)::float64[2]              # {1}
  %5 = add(%4, %3)::float64[2]                 # {1}
  %6 = tanh(%5)::float64[2]                    # {1}
  %7 = multiply(%6, 2.0)::float64[2]           # {2}
  %8 = sum(%7)::float64[]                      # {2}
  %9 = reshape(1.0, shape=(1,))::float64[1]    # d%8/d%7  {2}
  %10 = broadcast_to(%9, shape=(2,))::float64[2] # d%8/d%7  {2}
  %11 = multiply(%10, 2.0)::float64[2]         # d%8/d%6  {2}
  %12 = multiply(%6, %6)::float64[2]           # d%8/d%5  {1}
  %13 = subtract(1.0, %12)::float64[2]         # d%8/d%5  {1}
  %14 = multiply(%11, %13)::float64[2]         # d%8/d%5  {1}
  %15 = reshape(%14, shape=(2, 1))::float64[2,1] # d%8/d%1  {1}
  %16 = multiply(%15, %2)::float64[2,3]        # d%8/d%1  {1}
  %17 = transpose(%1, axes=(1, 0))::float64[3,2] # d%8/d%2  {1}
  %18 = reshape(%14, shape=(2, 1))::float64[2,1] # d%8/d%2  {1}
  %19 = matmul(%17, %18)::float64[3,1]         # d%8/d%2  {1}
  %20 = reshape(%19, shape=(3,))::float64[3]   # d%8/d%2  {1}
"""))


def test_consts_indexing_and_guards_snapshot():
    _, tape = tg.trace(branchy, np.ones(3))
    _same(str(tape), _golden(branchy, """
tape(%1::float64[3]) -> (%12, %1)
  %2 = getitem(%1, index=(('s', 1, None, None),))::float64[2] # {1}
  %3 = const float64[2]                        # {1}
  %4 = multiply(%2, %3)::float64[2]            # {1}
  %5 = const int64[2]                          # {1}
  %6 = getitem(%1, %5, index=(('a', 0),))::float64[2] # {1}
  %7 = add(%4, %6)::float64[2]                 # {1}
  %8 = sum(%7)::float64[]                      # {2}
  %9 = greater(%8, 0)::bool[]                  # {2}
  %10 = divide(%7, 3)::float64[2]              # {3}
  %11 = power(%10, 2)::float64[2]              # {4}
  %12 = sum(%11)::float64[]                    # {4}
  guard bool(%9) == True                       # {2}
"""))


LINE = re.compile(r"^  %\d+ = (const \w+\[[\d,]*\]|\w[\w.]*\(.*\)::\w+\[[\d,]*\]( -> \S+)?( \[g\d+\])?) *"
                  r"(# (d%\d+/d\S+  )?test_printing\.py:\d+)?$")


def test_gradient_tape_lines_keep_the_format():
    """`g.tape` is the optimised tape (its ops change as passes land), so here only the format
    and the interface are pinned: same inputs, value first, one gradient per input."""
    _, g = tg.grad(model, *ARGS)
    lines = str(g.tape).splitlines()
    assert lines[0].startswith("tape(%1::float64[2,3], %2::float64[3], %3::float64[2]) -> (%8, ")
    for line in lines[1:]:
        assert LINE.match(line), line
    assert len(g.tape.outputs) == 4
    g.tape.check()
