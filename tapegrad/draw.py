"""A picture of a tape: `draw(tape, "tape.png")` (networkx + matplotlib, optional extras).

Inputs are ellipses at the top, ops are boxes laid out in layers by dependency depth;
forward ops are blue, backward ops (noted `d%...` by the reverse pass) orange, and the
tape's outputs are outlined in black. For Graphviz, use `tape.to_dot()` instead.
"""

from __future__ import annotations

from .ir import Const, Tape


def to_networkx(tape: Tape):
    """The tape as a `networkx.DiGraph`: nodes `"%id"` for inputs and `"op<i>"` for ops."""
    import networkx as nx

    G = nx.DiGraph()
    producer = {}
    for v in tape.inputs:
        G.add_node(f"%{v.id}", kind="input", label=f"%{v.id}\n{v.type_str}", layer=0)
        producer[v.id] = f"%{v.id}"
    for i, op in enumerate(tape.ops):
        node = f"op{i}"
        outs = ",".join(f"%{v.id}" for v in op.outputs)
        parents = [producer[a.id] for a in op.inputs if not isinstance(a, Const) and a.id in producer]
        layer = 1 + max((G.nodes[p]["layer"] for p in parents), default=0)
        kind = "backward" if op.note.startswith("d%") else "forward"
        G.add_node(node, kind=kind, label=f"{outs} = {op.prim.name}\n{op.outputs[0].type_str}",
                   layer=layer, op=op)
        for p in parents:
            G.add_edge(p, node)
        for v in op.outputs:
            producer[v.id] = node
    G.graph["outputs"] = [producer[a.id] for a in tape.outputs
                          if not isinstance(a, Const) and a.id in producer]
    return G


def draw(tape: Tape, path: str | None = None, figsize=None):
    """Draw `tape` with matplotlib; save it to `path` (PNG, SVG, ...) when given.

    Returns the networkx graph. Needs matplotlib (`pip install -e '.[examples]'`).
    """
    try:
        import matplotlib

        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - exercised only without matplotlib
        raise ImportError("tg.draw needs matplotlib: pip install -e '.[examples]' "
                          "(or render tape.to_dot() with Graphviz)") from e
    import networkx as nx

    G = to_networkx(tape)
    layers = {}
    for n, d in G.nodes(data=True):
        layers.setdefault(d["layer"], []).append(n)
    pos = {}
    for y, nodes in layers.items():
        for x, n in enumerate(nodes):
            pos[n] = (x - (len(nodes) - 1) / 2, -y)
    width = max(len(v) for v in layers.values())
    fig, ax = plt.subplots(figsize=figsize or (max(6, 2.4 * width), max(4, 0.9 * len(layers))))
    colors = {"input": "#dddddd", "forward": "#cfe2f3", "backward": "#fce5cd"}
    nx.draw_networkx_edges(G, pos, ax=ax, arrows=True, arrowsize=10, edge_color="#888888",
                           node_size=1800)
    outs = set(G.graph["outputs"])
    for n, d in G.nodes(data=True):
        ax.text(*pos[n], d["label"], ha="center", va="center", fontsize=7, family="monospace",
                bbox=dict(boxstyle="round" if d["kind"] == "input" else "square",
                          fc=colors[d["kind"]], ec="black" if n in outs else "#999999",
                          lw=1.5 if n in outs else 0.6))
    ax.set_axis_off()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return G
