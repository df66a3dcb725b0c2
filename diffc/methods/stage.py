"""`@stage(k)` on a region: the multi-stage framework (Zhang et al., CVPR 2024, Sec. 4).

The noise range is split at log-SNR boundaries into k stages (stage 0 = lowest noise) and the region (the
decoder) gets one copy per stage, each with its own weights and optionally its own width (Sec. 4.1); every
sample runs only its stage's copy. At compile time the region body runs once per stage and each tensor it
changes is merged back by a `stage_merge` node; at run time each copy reads its stage's batch rows and the
merge writes them back in place.
"""
from __future__ import annotations

import attrs

from diffc.compiler.ir import Frame, Node, Wire
from diffc.errors import fail
from diffc.methods import Method
from diffc.registry import annotation, method
from diffc.registry.validators import positive

PAPER_BOUNDARIES = [-1.84, -4.0]   # CIFAR-10 VP-SDE clustering result, log-SNR (multistage.md, Sec. 4.2)
MAX_STAGES = 32                    # each stage runs the region's body once more (bounded evaluation)
FILLS = ["#e3f1fb", "#fbe9e3", "#eaf7e3", "#f6e3fb", "#fbf7e3"]   # diffc graph: one colour per stage copy


@annotation("stage", targets={"region"}, positional=("k",))
class Stage:
    """Multi-stage framework (Zhang et al., CVPR 2024, Sec. 4): stage-specific decoders split by noise level."""
    k: int | None = attrs.field(default=None, validator=positive)     # number of stages
    boundaries: list[float] | None = None                             # K-1 log-SNR values, low to high noise
    widths: list[int] | None = None                                   # decoder width per stage (low noise first)


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
    if k > MAX_STAGES:
        raise fail(f"@stage with {k} stages: at most {MAX_STAGES} (each stage is a copy of the region)", use.loc,
                   help="the paper uses 3 stages")
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
    """Expand a @stage region while resolving (Sec. 4.1): one copy of the body per stage, then merges."""
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


@method("stage")
class StageMethod(Method):
    """Multi-stage framework (Zhang et al., CVPR 2024): per-sample routing to stage-specific decoder copies."""

    def summary(self, compiled, module) -> list[str]:
        """MACs per sample of each stage's path (every sample forced into that stage)."""
        if not compiled.interface.stages:
            return []
        from diffc.compiler.summary import count_macs
        macs = [count_macs(module, compiled.interface, s).get("", 0)
                for s in range(len(compiled.interface.stages) + 1)]
        return ["per-stage MACs (stage 0 = lowest noise): " + ", ".join(f"{m / 1e9:.3f} G" for m in macs)
                + " (table rows: stage 0)"]

    def lower(self, graph) -> None:
        """The interface has one noise split (diffc.interface.stages), so every @stage region must share it."""
        regions = graph.graph["model"].stage_regions
        if len({tuple(r["boundaries"]) for r in regions}) > 1:
            raise fail("all @stage regions of a model must use the same boundaries", regions[1]["loc"])

    def legend(self):
        return "stage", FILLS[0], "@stage: one decoder copy per stage (Zhang et al. 2024)"

    def cluster_look(self, frame, raw: str, path: str, model):
        """`x3 stages` for the folded copies, else `stage s, width w`, one colour per stage."""
        if frame.kind != "stage":
            return None
        region_label = raw.rsplit(".", 1)[0]
        if path.endswith(".*"):
            return f"x{model.regions[region_label].stage_count} stages", FILLS[0]
        plan = next((p for p in model.stage_regions if p["label"] == region_label), None)
        width = f", width {plan['widths'][frame.index]}" if plan and plan["widths"] else ""
        return f"stage {frame.index}{width}", FILLS[frame.index % len(FILLS)]

    # ---- run time: code the forward generator (diffc.compiler.codegen) emits --------------------------
    def start(self, gen) -> None:
        model = gen.graph.graph["model"]
        self.regions = [(r["label"], list(r["boundaries"])) for r in model.stage_regions]
        index = {label: i for i, (label, _) in enumerate(self.regions)}
        self.stage_of = {n.name: (index[n.meta["stage"][0]], n.meta["stage"][1]) for n in gen.nodes
                         if "stage" in n.meta}

    def context_fields(self, gen) -> set:
        return {"logsnr"} if self.regions else set()

    def prologue(self, gen) -> None:
        """Per region: the batch rows of each stage, from log-SNR against the boundaries (once per forward)."""
        for r, (_, boundaries) in enumerate(self.regions):
            bounds = ", ".join(repr(float(b)) for b in boundaries)
            gen.emit(f"members_{r} = stage_members(ctx.logsnr, ({bounds},), {gen.target.force_stage})")

    def rows(self, node) -> str | None:
        """The expression for the batch rows `node` runs on (None: the whole batch)."""
        stage = self.stage_of.get(node.name)
        return None if stage is None else f"members_{stage[0]}[{int(stage[1])}]"

    def arg(self, gen, node, wire, value: str) -> str:
        """A stage copy reads its stage's rows of a value computed outside it (once per value and stage)."""
        stage = self.stage_of.get(node.name)
        if stage is None or self.stage_of.get(wire.node.name) == stage or "param" in gen.tags.get(wire.node.name, ()):
            return value             # weights have no batch rows
        return gen.once(("slice", value, stage), f"{value}_stage{stage[1]}",
                        f"{value}.index_select(0, {self.rows(node)})")

    def context(self, gen, node, ctx: str) -> str:
        """The run context (noise level, fraction, log-SNR) of the stage's rows, for blocks that read it."""
        stage = self.stage_of.get(node.name)
        if stage is None:
            return ctx
        return gen.once(("ctx", stage), f"ctx_stage{stage[1]}", f"slice_context({ctx}, {self.rows(node)})")

    def emit_node(self, gen, node) -> bool:
        """A stage_merge: one tensor from the stages' outputs, each stage's rows written back in place."""
        if node.block != "stage_merge":
            return False
        region = self.stage_of[node.inputs[0].node.name][0]
        parts = [gen.values[(w.node.name, w.port)] for w in node.inputs]
        name = gen.names(node.name)
        gen.emit(f"{name} = {parts[0]}.new_zeros((n, *{parts[0]}.shape[1:]))")
        for s, part in enumerate(parts):
            gen.emit(f"{name} = {name}.index_copy(0, members_{region}[{s}], {part})")
        gen.values[(node.name, 0)] = name
        return True

    def runtime_names(self) -> dict:
        return {"stage_members": stage_members, "slice_context": slice_context}


def stage_index(logsnr, boundaries: list[float]):
    """Stage s holds b_{s-1} > logsnr >= b_s (stage 0 lowest noise, Sec. 4.2): count boundaries above logsnr."""
    import torch
    b = torch.tensor(boundaries, dtype=torch.float64, device=logsnr.device)
    return (logsnr[:, None] < b[None]).sum(dim=1)


def stage_members(logsnr, boundaries: tuple, force_stage: int | None = None) -> tuple:
    """Batch rows of each stage; `force_stage` sends every row to one stage (meta-device FLOP counts)."""
    import torch
    if force_stage is not None:
        n = logsnr.shape[0]
        return tuple(torch.arange(n if s == force_stage else 0, device=logsnr.device)
                     for s in range(len(boundaries) + 1))
    index = stage_index(logsnr, list(boundaries))
    return tuple(torch.nonzero(index == s).squeeze(1) for s in range(len(boundaries) + 1))


def slice_context(ctx, rows):
    """The run context (diffc.compiler.runtime.RunContext) of some batch rows."""
    return type(ctx)(ctx.noise_level[rows], ctx.noise_fraction[rows], None if ctx.logsnr is None else ctx.logsnr[rows])
