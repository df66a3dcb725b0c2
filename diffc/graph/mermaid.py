"""Mermaid flowchart text for a GraphView (pure Python).

Ids are generated (n0, n1 ... for nodes, c0, c1 ... for subgraphs), so no spec name can collide with a
Mermaid keyword such as `end`; every label is quoted, with `"` written as `#quot;`.
"""
from __future__ import annotations

from diffc.graph.dot import SKIP_COLOUR, SYNC_COLOUR
from diffc.graph.view import Cluster, GraphView, ViewNode

NODE_SHAPES = {"input": ('(["', '"])'), "output": ('(("', '"))'), "folded": ('[["', '"]]'), "block": ('["', '"]'),
               "fanout": ('>"', '"]')}


def render_mermaid(view: GraphView) -> str:
    ids = {node_id: f"n{i}" for i, node_id in enumerate(view.nodes)}
    subgraph_ids = {cluster.id: f"c{i}" for i, cluster in enumerate(view.clusters())}
    out = [f"%% {view.title} ({view.file}, {'folded' if view.folded else 'expanded'})", "flowchart TB"]
    _subgraph_body(view, view.root, ids, subgraph_ids, out, "  ")
    for edge in view.edges:
        label = f'|"{_text(edge.label)}"|' if edge.label else ""
        out.append(f"  {ids[edge.src]} {'-.->' if edge.sync else '-->'}{label} {ids[edge.dst]}")
    out += [f"  style {subgraph_ids[c.id]} fill:{c.fill},stroke:#999999" for c in view.clusters()]
    out += [f"  style {ids[n.id]} fill:{n.fill},stroke:#666666" for n in view.nodes.values()]
    sync_links = [str(i) for i, edge in enumerate(view.edges) if edge.sync]
    if sync_links:
        out.append(f"  linkStyle {','.join(sync_links)} stroke:{SYNC_COLOUR},color:{SYNC_COLOUR}")
    skip_links = [str(i) for i, edge in enumerate(view.edges) if edge.skip]
    if skip_links:
        out.append(f"  linkStyle {','.join(skip_links)} stroke:{SKIP_COLOUR},stroke-width:2px")
    out += [f"  style {ids[n.id]} stroke-dasharray:4 3,stroke-width:2px" for n in view.nodes.values() if n.partial]
    return "\n".join(out) + "\n"


def _subgraph_body(view: GraphView, cluster: Cluster, ids: dict, subgraph_ids: dict, out: list, indent: str) -> None:
    for node_id in cluster.nodes:
        node = view.nodes[node_id]
        opening, closing = NODE_SHAPES[node.kind]
        out.append(f"{indent}{ids[node_id]}{opening}{_label(node)}{closing}")
    for child in cluster.children:
        out.append(f'{indent}subgraph {subgraph_ids[child.id]}["{_text(child.label)}"]')
        _subgraph_body(view, child, ids, subgraph_ids, out, indent + "  ")
        out.append(f"{indent}end")


def _label(node: ViewNode) -> str:
    return "<br/>".join(_text(part) for part in [f"<b>{node.heading}</b>", node.detail, *node.badges, *node.feeds])


def _text(text: str) -> str:
    return text.replace('"', "#quot;")
