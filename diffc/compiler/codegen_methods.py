"""What each training-efficiency method adds to a generated forward (diffc.compiler.codegen).

One function per method effect, each given the generator `gen` (its `emit`, `names`, `cache`, `target`):
it emits the lines it needs at most once per forward and returns the expression the node call uses.
"""
from __future__ import annotations


# ---- @route: DTR (Park et al. ICLR 2024, Eq. 4): m_t * x on the residual branch ---------------------
def route_buffer(gen, node) -> str:
    """The [T, C] mask table buffer for this node's (channels, window, weight, tasks), one per distinct key."""
    p = node.route
    key = (node.context["route_channels"], p.window, p.weight, p.tasks)
    for name, other in gen.buffers.items():
        if other == key:
            return name
    name = f"_route_{len(gen.buffers)}"
    gen.buffers[name] = key
    return name


def route_mask(gen, node, stage, first_arg: str) -> str:
    """Rows of the mask table for the batch (or the stage's rows), gathered once per forward per table."""
    buffer = route_buffer(gen, node)
    key = ("route", buffer, stage)
    if key not in gen.cache:
        rows = f"route_rows(ctx.noise_fraction, {int(node.route.tasks)})"
        if stage is not None:
            rows += f"[{stage_members(stage)}]"
        name = gen.names(f"mask{buffer}" + ("" if stage is None else f"_stage{stage[1]}"))
        gen.emit(f"{name} = {gen.target.buffer(buffer)}[{rows}].to({first_arg}.dtype)")
        gen.cache[key] = name
    return gen.cache[key]


# ---- @stage: multi-stage (Zhang et al. CVPR 2024, Sec. 4.1): each sample runs its stage's decoder ---
def stage_members(stage) -> str:
    region, s = stage
    return f"members_{region}[{int(s)}]"


def stage_prologue(gen) -> None:
    """Per region: the batch rows of each stage, from log-SNR against the boundaries (once per forward)."""
    for r, (_, boundaries) in enumerate(gen.regions):
        bounds = ", ".join(repr(float(b)) for b in boundaries)
        gen.emit(f"members_{r} = stage_members(ctx.logsnr, ({bounds},), {gen.target.force_stage})")


def stage_slice(gen, value: str, stage) -> str:
    """The stage's rows of a value computed outside the region (once per value and stage)."""
    key = ("slice", value, stage)
    if key not in gen.cache:
        name = gen.names(f"{value}_stage{stage[1]}")
        gen.emit(f"{name} = {value}.index_select(0, {stage_members(stage)})")
        gen.cache[key] = name
    return gen.cache[key]


def stage_context(gen, stage) -> str:
    """The run context (noise level, fraction, log-SNR) of the stage's rows, for blocks that read it."""
    if stage is None:
        return "ctx"
    key = ("ctx", stage)
    if key not in gen.cache:
        name = gen.names(f"ctx_stage{stage[1]}")
        gen.emit(f"{name} = slice_context(ctx, {stage_members(stage)})")
        gen.cache[key] = name
    return gen.cache[key]


def stage_merge(gen, node) -> None:
    """One tensor from the stages' outputs: each stage's rows written back at their batch positions."""
    region = gen.stage_of[node.inputs[0].node.name][0]
    parts = [gen.values[(w.node.name, w.port)] for w in node.inputs]
    name = gen.names(node.name)
    gen.emit(f"{name} = {parts[0]}.new_zeros((n, *{parts[0]}.shape[1:]))")
    for s, part in enumerate(parts):
        gen.emit(f"{name} = {name}.index_copy(0, {stage_members((region, s))}, {part})")
    gen.values[(node.name, 0)] = name


# ---- @sync: LayerSync (Haghighi et al. 2025, Eq. 3): -cos(src, stopgrad(dst)) per token, mean -------
def sync_loss(gen, refs) -> str:
    src, dst = refs
    a, b = gen.values[(src.node.name, src.port)], gen.values[(dst.node.name, dst.port)]
    dim = 1 if len(src.node.out_shapes[src.port]) == 3 else -1
    return f"-F.cosine_similarity({a}, {b}.detach(), dim={dim}).mean()"
