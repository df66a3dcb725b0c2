"""Making big models readable: fold runs of the same block kind and shape, draw wide fan-outs once, mark skips.

These passes rewrite a GraphView (diffc.graph.view) in place; they only read block names, shapes, annotations
and edges, so they work on any spec, not only on `repeat`s:
- `fold_runs`: inside one cluster, consecutive nodes (or motifs of up to MAX_MOTIF nodes, such as EDM2's
  `mp_cat -> edm2_block` decoder pairs) with the same block kinds, the same name up to indices and the same
  output shape, each feeding the next, become one node `dec.16x16_block{0..3} x4`; annotations carried by only
  some of them are badged as partial.
- `draw_fanouts_once`: a node outside the sample stream that feeds FANOUT_MIN or more nodes (an embedding read
  by every block) gets one edge to a note listing its readers; each reader names it in its label.
- `mark_skips`: an edge inside the sample stream that bypasses a longer path (U-Net skips) is a skip edge.
"""
from __future__ import annotations

import re

from diffc.graph.view import FILLS, GraphView, ViewEdge, ViewNode, index_ranges

MAX_MOTIF = 3
FANOUT_MIN = 4


def fold_runs(view: GraphView) -> None:
    linked = {(e.src, e.dst) for e in view.edges if not e.sync}
    groups = []
    for cluster in [view.root, *view.clusters()]:
        members = [view.nodes[i] for i in cluster.nodes]
        position = 0
        while position < len(members):
            period, count = _best_run(linked, members, position)
            if period > 1 and _covered(_best_run(linked, members, position + 1)) >= period * count:
                position += 1             # the motif starts one node later (mp_cat -> block, not block -> mp_cat)
                continue
            if count >= 2:
                groups.append((cluster, members[position: position + period * count], period, count))
                position += period * count
            else:
                position += 1
    for cluster, run, period, count in groups:
        _replace(view, cluster, run, period, count)


def _key(node: ViewNode):
    return (node.block, node.shape) if node.kind == "block" else None


def _motif(nodes: list) -> list:
    """What must repeat: block kinds and index-blanked names, and the output shape of the motif's last node (inner
    shapes may vary, e.g. the width of each skip an `mp_cat` concatenates; the edges list them)."""
    keys = [(_key(n), _stem(n.id)) for n in nodes]
    return [(key if key is None or i == len(keys) - 1 else key[0], stem) for i, (key, stem) in enumerate(keys)]


def _stem(name: str) -> str:
    """A name with its indices blanked: `enc.8x8_block2` -> `enc.#x#_block#`, `mp_cat_3` -> `mp_cat`."""
    return re.sub(r"\d+", "#", re.sub(r"_\d+$", "", name))


def _covered(run: tuple) -> int:
    period, count = run
    return period * count if count >= 2 else 0


def _best_run(linked: set, members: list, start: int):
    """(period, repetitions) of the longest run of one motif starting at `start` (shorter motifs on ties)."""
    best = (1, 1)
    for period in range(1, MAX_MOTIF + 1):
        motif = _motif(members[start: start + period])
        if len(motif) < period or any(key is None for key, _ in motif):
            break
        count = 1
        while True:
            nxt = members[start + count * period: start + (count + 1) * period]
            if _motif(nxt) != motif or (members[start + count * period - 1].id, nxt[0].id) not in linked:
                break
            count += 1
        if _covered((period, count)) > _covered(best):
            best = (period, count)
    return best


def _replace(view: GraphView, cluster, run: list, period: int, count: int) -> None:
    named = [run[k * period + period - 1] for k in range(count)]        # the last node of a motif names it
    folded_id = _range_name([n.id for n in named])
    first = run[0]
    texts = [b for n in run for b in n.badges]
    whole = [b for b in dict.fromkeys(texts) if all(b in n.badges for n in named)]
    partial = []
    for badge in dict.fromkeys(texts):
        if badge not in whole:
            found = [k for k, n in enumerate(named) if badge in n.badges]
            partial.append(f"{badge} on {index_ranges(found)} ({len(found)} of {count})")
    fills = [n.fill for n in run if n.fill != FILLS["block"]]
    node = ViewNode(folded_id, folded_id, " → ".join(n.block for n in run[:period]), "folded", named[0].shape,
                    first.file, first.line, first.source, whole + partial, fills[0] if fills else FILLS["folded"],
                    count=count, partial=bool(partial))
    ids = {n.id for n in run}
    at = cluster.nodes.index(first.id)
    cluster.nodes[at: at + len(run)] = [folded_id]
    nodes = {}
    for key, value in view.nodes.items():
        if key == first.id:
            nodes[folded_id] = node
        elif key not in ids:
            nodes[key] = value
    view.nodes = nodes
    _remap_edges(view, {i: folded_id for i in ids})


def _range_name(names: list) -> str:
    """`enc.64x64_block0`, `..._block1`, `..._block2` -> `enc.64x64_block{0..2}` (or `{a,b}` when not a range)."""
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    suffix = names[0][len(prefix):]
    for name in names[1:]:
        while not name.endswith(suffix) or len(name) - len(suffix) < len(prefix):
            suffix = suffix[1:]
    middles = [n[len(prefix): len(n) - len(suffix)] for n in names]
    numeric = all(m.isdigit() for m in middles)
    if numeric and [int(m) for m in middles] == list(range(int(middles[0]), int(middles[0]) + len(middles))):
        return f"{prefix}{{{middles[0]}..{middles[-1]}}}{suffix}"
    return f"{prefix}{{{','.join(middles)}}}{suffix}"


def _remap_edges(view: GraphView, mapping: dict) -> None:
    merged: dict[tuple, ViewEdge] = {}
    for edge in view.edges:
        src, dst = mapping.get(edge.src, edge.src), mapping.get(edge.dst, edge.dst)
        if src == dst and not edge.sync:
            continue
        key = (src, dst, edge.sync)
        if key in merged:
            labels = merged[key].label.split(" | ")
            if edge.label not in labels:
                merged[key].label = " | ".join([*labels, edge.label])
        else:
            merged[key] = ViewEdge(src, dst, edge.label, edge.sync, edge.skip)
    view.edges = list(merged.values())


def sample_stream(view: GraphView, sources: set) -> set:
    """Nodes reachable from the sample inputs over data edges."""
    following: dict[str, list] = {}
    for edge in view.edges:
        if not edge.sync:
            following.setdefault(edge.src, []).append(edge.dst)
    seen, todo = set(sources), list(sources)
    while todo:
        for nxt in following.get(todo.pop(), []):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def draw_fanouts_once(view: GraphView, sample_inputs: set) -> None:
    stream = sample_stream(view, sample_inputs)
    readers: dict[str, list] = {}
    for edge in view.edges:
        if not edge.sync and edge.src not in stream and view.nodes[edge.dst].kind != "output":
            readers.setdefault(edge.src, []).append(edge)
    for src, edges in readers.items():
        if len(edges) < FANOUT_MIN:
            continue
        note_id = f"{src} → {len(edges)} readers"
        names = ", ".join(e.dst for e in edges[:3]) + (", ..." if len(edges) > 3 else "")
        source = view.nodes[src]
        view.nodes[note_id] = ViewNode(note_id, f"read by {len(edges)} nodes", f"each marked ← {src}", "fanout",
                                       "", source.file, source.line, names, fill=FILLS["fanout"])
        cluster = next(c for c in [view.root, *view.clusters()] if src in c.nodes)
        cluster.nodes.insert(cluster.nodes.index(src) + 1, note_id)
        for edge in edges:
            view.nodes[edge.dst].feeds.append(f"← {src} {edge.label}")
        view.edges = [e for e in view.edges if e not in edges]
        view.edges.append(ViewEdge(src, note_id, " | ".join(dict.fromkeys(e.label for e in edges))))


def mark_skips(view: GraphView, sample_inputs: set) -> None:
    """Edges a -> b of the sample stream where b is also reachable from a over two or more edges."""
    stream = sample_stream(view, sample_inputs)
    following: dict[str, list] = {}
    for edge in view.edges:
        if not edge.sync:
            following.setdefault(edge.src, []).append(edge.dst)
    for edge in view.edges:
        if edge.sync or edge.src not in stream or edge.dst not in stream:
            continue
        todo = [n for n in following.get(edge.src, []) if n != edge.dst]
        seen = set(todo)
        while todo and edge.dst not in seen:
            for nxt in following.get(todo.pop(), []):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        edge.skip = edge.dst in seen


def legend_rows(view: GraphView) -> list:
    """(kind, swatch, meaning) for every colour and line style this view uses, model-wide annotations named."""
    from diffc.methods import methods_in_order
    fills = {n.fill for n in view.nodes.values()} | {c.fill for c in view.clusters()}
    model_wide = {badge.split("(")[0].lstrip("@") for badge in view.badges}
    rows = [("fill", FILLS["input"], "model input")] if FILLS["input"] in fills else []
    for name, fill, meaning in filter(None, (m.legend() for m in methods_in_order())):   # each method's look
        if fill in fills:
            scope = f" (the whole model: {view.title} {'@' + name})" if name in model_wide else ""
            rows.append(("fill", fill, meaning + scope))
    if FILLS["folded"] in fills:
        rows.append(("fill", FILLS["folded"], "folded: repeated blocks of one kind and shape (xN)"))
    if any(n.partial for n in view.nodes.values()):
        rows.append(("partial", "#ffffff", "dashed border: an annotation covers only part of the fold (see badge)"))
    if any(n.kind == "fanout" for n in view.nodes.values()):
        rows.append(("fill", FILLS["fanout"], "fan-out drawn once: the readers are marked ←"))
    if any(e.skip for e in view.edges):
        rows.append(("skip", "", "skip connection (bypasses the blocks between)"))
    if any(e.sync for e in view.edges):
        rows.append(("sync", "", "@sync: LayerSync alignment loss (deep guides shallow)"))
    return rows
