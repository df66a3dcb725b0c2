"""Expansion of a `@stage` region (Zhang et al., CVPR 2024, Sec. 4.1): one decoder copy per stage.

The region body runs once per stage on a copy of the scope, with `stage` (index, 0 = lowest noise) and
`stage_width` (that stage's decoder width) bound; every tensor the region changes is merged back by a
`stage_merge` node, so code after the region sees one value. The router is emitted later (diffc.compiler.emit).
"""
from __future__ import annotations

from diffc.compiler.ir import Frame, Node, Wire
from diffc.errors import fail

PAPER_BOUNDARIES = [-1.84, -4.0]   # CIFAR-10 VP-SDE clustering result, log-SNR (multistage.md, Sec. 4.2)


def default_boundaries(k: int) -> list[float]:
    """The paper's boundaries for k = 3; otherwise evenly spaced log-SNR in (2, -6) [unverified default]."""
    if k == 3:
        return list(PAPER_BOUNDARIES)
    return [2.0 - 8.0 * i / k for i in range(1, k)]


def stage_plan(use) -> tuple[int, list[float], list | None]:
    p = use.params
    k = p.k or (len(p.boundaries) + 1 if p.boundaries else (len(p.widths) if p.widths else None))
    if k is None:
        raise fail("@stage needs the number of stages k, boundaries or widths", use.loc)
    if k < 2:
        raise fail(f"@stage needs at least 2 stages, got {k}", use.loc)
    boundaries = list(p.boundaries) if p.boundaries is not None else default_boundaries(k)
    if len(boundaries) != k - 1:
        raise fail(f"@stage with {k} stages needs {k - 1} boundaries, got {len(boundaries)}", use.loc)
    if any(a <= b for a, b in zip(boundaries, boundaries[1:])):
        raise fail("@stage boundaries are log-SNR values from low to high noise, so they must decrease "
                   f"(got {boundaries})", use.loc, help="write sigma boundaries as sigma(2.51), sigma(7.66)")
    if p.widths is not None and len(p.widths) != k:
        raise fail(f"@stage with {k} stages needs {k} widths, got {len(p.widths)}", use.loc)
    return k, boundaries, list(p.widths) if p.widths is not None else None


def run_stage_region(resolver, stmt, scope: dict, region, use) -> None:
    k, boundaries, widths = stage_plan(use)
    region.stage_count = k
    region.annotations.append(use)
    use_record = {"label": region.label, "boundaries": boundaries, "widths": widths, "loc": use.loc}
    resolver.stage_regions.append(use_record)
    entry = dict(scope)

    def body():
        results = []
        for s in range(k):
            local = dict(entry, stage=s, stage_width=widths[s] if widths else None)
            if resolver.stage is not None:
                raise fail("@stage regions cannot be nested", stmt.loc)
            resolver.stage = (region.label, s)
            try:
                with resolver.collecting(Frame("stage", stmt.name, s, loc=stmt.loc), region):
                    resolver.run_body(stmt.body, local)
            finally:
                resolver.stage = None
            results.append(local)
        _merge(resolver, stmt, scope, entry, results)

    resolver.with_annotations(stmt, "region", region.label, scope, body, region)


def _merge(resolver, stmt, scope: dict, entry: dict, results: list[dict]) -> None:
    for var in results[0]:
        if var in ("stage", "stage_width"):
            continue
        values = [r.get(var) for r in results]
        if not all(isinstance(v, Wire) for v in values) or all(v is entry.get(var) for v in values):
            continue                       # constants and untouched values keep their entry binding
        name = f"{resolver.prefix()}{stmt.name}.merge_{var}"
        node = resolver.add_node(Node(name, "stage_merge", None, values, stmt.loc, scopes=tuple(resolver.frames),
                                      annotations=list(resolver.active)))
        scope[var] = Wire(node)
