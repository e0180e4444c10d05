"""tg.profile tables, tape.to_dot() and tg.draw on a known tape."""

import importlib.util
import io

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.profile import backward_labels


def f(W, x, b):
    return np.sum(np.tanh(W @ x + b[:, None]))


@pytest.fixture
def raw(monkeypatch):
    """Gradient tapes exactly as the reverse pass writes them (no optimisation passes)."""
    import tapegrad.passes

    monkeypatch.setattr(tapegrad.passes, "PIPELINE", [])


@pytest.fixture
def args():
    r = np.random.default_rng(0)
    return r.standard_normal((4, 3)), r.standard_normal((3, 2)), r.standard_normal(4)


def test_profile_rows_forward_and_backward(args, raw):
    out = io.StringIO()
    p = tg.profile(f, *args, repeat=3, file=out)
    fwd = {r.name: r for r in p.rows if r.phase == "forward"}
    bwd = {r.name: r for r in p.rows if r.phase == "backward"}
    assert set(fwd) == {"matmul", "reshape", "add", "tanh", "sum"}
    assert {"tanh[1]", "matmul[1]", "matmul[2]", "add[2]", "sum[1]"} <= set(bwd)
    assert not any(n.endswith("[?]") for n in bwd)
    # one call per op, each op counted once
    _, g = tg.grad(f, *args)
    assert sum(r.calls for r in p.rows) == p.n_ops == len(g.tape.ops)
    assert fwd["tanh"].calls == 1 and bwd["tanh[1]"].calls == 2  # ans*ans, 1 - . (g * . with g = ones is skipped)
    assert bwd["matmul[1]"].calls == 2  # transpose + matmul
    # allocations: fresh arrays own their memory, views (reshape) allocate nothing
    assert (fwd["matmul"].allocs, fwd["matmul"].nbytes) == (1, 4 * 2 * 8)
    assert (fwd["tanh"].allocs, fwd["tanh"].nbytes) == (1, 64)
    assert (fwd["reshape"].allocs, fwd["reshape"].nbytes) == (0, 0)
    assert (bwd["tanh[1]"].allocs, bwd["tanh[1]"].nbytes) == (2, 2 * 64)
    assert bwd["matmul[1]"].nbytes == 4 * 3 * 8 and bwd["matmul[2]"].nbytes == 3 * 2 * 8
    assert all(r.seconds > 0 for r in p.rows)
    assert p.total() == pytest.approx(p.total("forward") + p.total("backward"))
    text = out.getvalue()
    assert text == str(p) + "\n"
    lines = text.splitlines()
    assert lines[2].split() == ["primitive", "calls", "time", "%tot", "avg", "allocs", "bytes", "%tot"]
    assert any(line.split()[:2] == ["tanh[1]", "2"] for line in lines)
    total = lines[-1].split()
    assert total[0] == "total" and total[1] == str(p.n_ops) and total[3] == "100.0%"
    assert total[4] == str(p.total(attr="allocs"))
    pct = [float(line.split()[3].rstrip("%")) for line in lines[4:-2]
           if line.startswith("  ")]
    assert sum(pct) == pytest.approx(100.0, abs=0.1 * len(pct))


def test_profile_of_a_traced_tape(args):
    _, tape = tg.trace(lambda W, x, b: np.tanh(W @ x + b[:, None]), *args)
    p = tg.profile(tape, *args, repeat=2, file=None)
    assert [r.phase for r in p.rows] == ["forward"] * 4
    assert p["tanh"].calls == 1 and p["reshape"].nbytes == 0
    assert "backward" not in str(p)


def test_backward_labels_follow_the_reverse_pass(raw):
    def loss(x):
        z = x * 2.0
        m = np.max(z, keepdims=True)
        return np.sum(np.exp(z - m)) + np.sum(m)

    _, g = tg.grad(loss, np.array([1.0, 3.0, 2.0]))
    labels = [lab for ph, lab in backward_labels(g.tape) if ph == "backward"]
    # subtract[1] is a pass-through (no op); max's rule follows the accumulation for %3
    # exp[1] multiplies by the broadcast 1 of sum's seed: skipped while tracing
    assert labels == ["sum[1]"] * 3 + ["subtract[2]"] * 4 + ["max[1]"] * 8 + ["multiply[1]"]


def test_to_dot_content(args):
    _, g = tg.grad(f, *args)
    dot = g.tape.to_dot()
    assert dot.startswith("digraph tape {") and dot.rstrip().endswith("}")
    assert '"%1::float64[4,3]"' in dot
    assert "= tanh\\nfloat64[4,2]" in dot
    assert dot.count("-> op") >= sum(
        1 for op in g.tape.ops for a in op.inputs if hasattr(a, "id"))


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib")
def test_draw_writes_png(args, tmp_path):
    _, g = tg.grad(f, *args)
    path = tmp_path / "tape.png"
    G = tg.draw(g.tape, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    kinds = [d["kind"] for _, d in G.nodes(data=True)]
    assert kinds.count("input") == 3
    assert kinds.count("forward") + kinds.count("backward") == len(g.tape.ops)
    assert len(G.graph["outputs"]) == 4


def test_profile_of_the_optimised_tape_labels_every_op(args):
    def loss(x):
        z = x * 2.0
        m = np.max(z, keepdims=True)
        return np.sum(np.exp(z - m)) + np.sum(m)

    x = np.array([1.0, 3.0, 2.0])
    _, g = tg.grad(loss, x)
    fwd = {op.prim.name for op in g.tape.ops if not op.note.startswith("d%")}
    labels = backward_labels(g.tape)
    for phase, lab in labels:
        assert not lab.endswith("[?]")
        if phase == "backward":
            assert lab.split("[")[0] in fwd
    # max's rule (equal, divide, ...) sits on max's line and is labelled max[1]
    for op, (_, lab) in zip(g.tape.ops, labels):
        if op.prim.name == "equal":
            assert lab == "max[1]"
    p = tg.profile(g.tape, x, repeat=2, file=None)
    assert p.n_ops == len(g.tape.ops) == sum(r.calls for r in p.rows)
