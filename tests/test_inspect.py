"""tg.inspect / g.nodes(): value, gradient and parents per node of a known gradient tape."""

import io

import numpy as np
import pytest

import tapegrad as tg


def f(W, x, b):
    h = np.tanh(W @ x + b[:, None])
    return np.sum(h * h) + np.sum(h)


@pytest.fixture
def args():
    r = np.random.default_rng(0)
    return r.standard_normal((4, 3)), r.standard_normal((3, 2)), r.standard_normal(4)


def _expected(W, x, b):
    """Every forward node's value and d f / d node, by hand."""
    a = W @ x
    z = a + b[:, None]
    h = np.tanh(z)
    dh = 2 * h + 1
    dz = dh * (1 - h * h)
    return {"matmul": (a, dz), "add": (z, dz), "tanh": (h, dh), "multiply": (h * h, np.ones((4, 2))),
            "W": (W, dz @ x.T), "x": (x, W.T @ dz), "b": (b, dz.sum(1))}


def test_nodes_of_a_known_tape(args):
    W, x, b = args
    val, g = tg.grad(f, W, x, b)
    ins = g.nodes()
    exp = _expected(W, x, b)
    # inputs first, then one node per forward op, in tape order
    assert [n.op for n in ins] == ["input"] * 3 + ["matmul", "reshape", "add", "tanh", "multiply",
                                                  "sum", "sum", "add"]
    ids = [n.id for n in ins]
    iW, ix, ib, imm, irs, iadd, itanh, imul, is1, is2, iout = ids
    assert ins.output == iout and ins[iout].value == pytest.approx(val) and ins[iout].grad == 1.0
    # parents: the var ids each op read (x*x reads %h twice)
    assert ins[imm].parents == (iW, ix) and ins[irs].parents == (ib,)
    assert ins[iadd].parents == (imm, irs) and ins[itanh].parents == (iadd,)
    assert ins[imul].parents == (itanh, itanh) and ins[iout].parents == (is1, is2)
    assert [n.label for n in ins][:3] == ["arg 0", "arg 1", "arg 2"]
    assert ins[irs].label == "shape=(4, 1)"
    # values and gradients, forward op by op
    for vid, key in [(imm, "matmul"), (iadd, "add"), (itanh, "tanh"), (imul, "multiply"),
                     (iW, "W"), (ix, "x"), (ib, "b")]:
        v, d = exp[key]
        np.testing.assert_allclose(ins[vid].value, v, rtol=1e-12, err_msg=key)
        np.testing.assert_allclose(ins[vid].grad, d, rtol=1e-12, atol=1e-14, err_msg=key)
    # the reshape b[:, None] gets the row sums; the two sums get 1 each
    np.testing.assert_allclose(ins[irs].grad, exp["b"][1][:, None], rtol=1e-12)
    assert ins[is1].grad == 1.0 and ins[is2].grad == 1.0
    # input gradients agree with the GradResult
    for i, vid in enumerate((iW, ix, ib)):
        np.testing.assert_allclose(ins[vid].grad, g[i], rtol=1e-12)
    assert ins.n_backward > 10


def test_inspect_prints_table(args):
    out = io.StringIO()
    ins = tg.inspect(f, *args, file=out)
    text = out.getvalue()
    assert text == str(ins) + "\n"
    lines = text.splitlines()
    assert lines[0].startswith("tapegrad inspect: f, 8 forward ops, ")
    assert lines[0].endswith(f"gradient = d%{ins.output}/d(node)")
    assert lines[1].split() == ["node", "op", "value", "gradient", "parents"]
    tanh = next(line for line in lines if " tanh " in line)
    n = next(n for n in ins if n.op == "tanh")
    assert tanh.split()[0] == f"%{n.id}" and tanh.split()[1] == "tanh"
    assert "float64[4,2]" in tanh and f"%{n.parents[0]}" in tanh and "test_inspect.py:12" in tanh
    assert lines[2].split()[:2] == ["%1", "input"] and lines[2].endswith("arg 0")
    assert lines[-1].split()[1:3] == ["add", f"{ins[ins.output].value:.5g}"]


def test_inspect_structured_args_and_nondiff_nodes():
    def loss(p, X, y):
        z = X @ p["W"]
        return -np.mean(z[np.arange(len(y)), y])

    r = np.random.default_rng(1)
    p, X, y = {"W": r.standard_normal((3, 2))}, r.standard_normal((4, 3)), np.array([0, 1, 1, 0])
    _, g = tg.grad(loss, p, X, y)
    ins = g.nodes()
    by_label = {n.label: n for n in ins if n.op == "input"}
    assert set(by_label) == {"arg 0.W", "arg 1", "arg 2"}
    assert by_label["arg 2"].grad is None and by_label["arg 2"].grad_known  # int labels
    np.testing.assert_allclose(by_label["arg 0.W"].grad, g[0][("W",)])
    const = next(n for n in ins if n.op == "const")  # np.arange(len(y))
    assert const.grad is None and np.array_equal(const.value, np.arange(4))
    gi = next(n for n in ins if n.op == "getitem")
    np.testing.assert_allclose(gi.grad, np.full(4, -0.25))
    mm = next(n for n in ins if n.op == "matmul")  # scatter of -1/4 into the picked entries
    expect = np.zeros((4, 2))
    expect[np.arange(4), y] = -0.25
    np.testing.assert_allclose(mm.grad, expect)


def test_inspect_optimised_tape_and_dynamic_result(args):
    val, g = tg.grad(f, *args, dynamic=True)
    with pytest.raises(TypeError, match="pass the arguments"):
        g.nodes()
    ins = g.nodes(*args)  # reads the optimised tape, replayed without buffer reuse
    ref = tg.inspect(f, *args, file=None)
    assert [n.id for n in ins] == [n.id for n in ref]
    for a, b in zip(ins, ref):
        np.testing.assert_allclose(a.value, b.value, rtol=1e-12)
    for i, n in enumerate(list(ins)[:3]):
        np.testing.assert_allclose(n.grad, g[i], rtol=1e-12)
    tape_view = tg.inspect(g.tape, *args, file=None)
    assert [n.id for n in tape_view] == [n.id for n in ref]


def test_inspect_second_order_keeps_inner_backward_ops_as_nodes():
    def f(x):
        g = tg.grad(lambda y: np.sum(np.sin(y) * y))(x)  # sin(y) + y cos(y)
        return np.sum(g * g)

    x = np.array([0.3, 0.7])
    _, g = tg.grad(f, x)
    ins = g.nodes()
    ids = {n.id for n in ins}
    assert all(p in ids for n in ins for p in n.parents)  # inner reverse pass is forward here
    inner = np.sin(x) + x * np.cos(x)
    add = next(n for n in ins if n.op == "add")  # the inner gradient
    np.testing.assert_allclose(add.value, inner, rtol=1e-12)
    np.testing.assert_allclose(add.grad, 2 * inner, rtol=1e-12)
    dinner = 2 * np.cos(x) - x * np.sin(x)
    np.testing.assert_allclose(ins[ins.nodes[0].id].grad, 2 * inner * dinner, rtol=1e-12)
    np.testing.assert_allclose(ins.nodes[0].grad, g[0], rtol=1e-12)
