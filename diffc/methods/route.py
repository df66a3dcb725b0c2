"""`@route(window, weight)`: Denoising Task Routing (DTR, Park et al. ICLR 2024).

Every routable block under a @route (DiT blocks, U-Net residual blocks; attention blocks only with
`attention = true`) multiplies its residual-branch input by a binary channel mask m_t (Eq. 4): a sliding
window of floor(C beta) active channels whose start moves with the task (timestep) t as
round((t / (T-1))^alpha * (C - floor(C beta))) (Eq. 5 as in the released code, dtr.md). One [T, C] table is
built per distinct width; each sample reads the row of its noise level.
"""
from __future__ import annotations

import attrs

from diffc.compiler.ir import nodes_in_order
from diffc.errors import fail
from diffc.methods import Method
from diffc.registry import REGISTRY, annotation, method
from diffc.registry.shapes import channels
from diffc.registry.validators import positive

FILL = "#fde2b8"


def _window(inst, attribute, value):
    if not 0 < value <= 1:
        raise ValueError(f"'window' (beta, the active channel fraction) must be in (0, 1], got {value}")


@annotation("route", targets={"model", "block", "repeat", "region"}, positional=("window", "weight"))
class Route:
    """Denoising Task Routing (Park et al., ICLR 2024, Eq. 4-5): sliding-window channel masks per timestep."""
    window: float = attrs.field(default=0.8, validator=_window)       # beta: fraction of active channels
    weight: float = attrs.field(default=4.0, validator=positive)      # alpha: task-weight exponent
    tasks: int = attrs.field(default=1000, validator=positive)        # T rows of the mask table
    attention: bool = False                                           # route U-Net attention blocks too [unverified]


def mask_starts(channels_: int, window: float, weight: float, tasks: int) -> list[int]:
    """Window start per task: round((t / (T-1))^alpha * (C - floor(C beta))) (DTR Eq. 5, released code, dtr.md)."""
    active = int(channels_ * window)
    travel = channels_ - active
    return [round((t / (tasks - 1)) ** weight * travel) if tasks > 1 else 0 for t in range(tasks)]


def route_key(node) -> tuple | None:
    """(channels, window, weight, tasks) of a routed node: the mask table it reads; None if not routed."""
    p = node.meta.get("route")
    return None if p is None else (node.meta["route_channels"], p.window, p.weight, p.tasks)


@method("route", after=("mp",))
class RouteMethod(Method):
    """Denoising Task Routing (Park et al., ICLR 2024): marks routable blocks with their mask table."""

    def lower(self, graph) -> None:
        covered: dict[int, bool] = {}
        for node in nodes_in_order(graph):
            uses = [a for a in node.annotations if a.name == "route"]
            if not uses or node.block in ("input", "stage_merge"):
                continue
            if len({id(u) for u in uses}) > 1:
                first, second = uses[0], uses[1]
                raise fail(f"'{node.name}' is routed twice: @route at line {first.loc.line} and line "
                           f"{second.loc.line}", second.loc, help="keep one @route per block (an overlay on a "
                           "model that already routes replaces nothing)")
            use = uses[0]
            covered.setdefault(id(use), False)
            tags = REGISTRY.block(node.block).tags
            if "routable" in tags or ("routable_attention" in tags and use.params.attention):
                node.meta["route"] = use.params
                node.meta["route_channels"] = channels(node.in_shapes[REGISTRY.block(node.block).inputs[0]])
                covered[id(use)] = True
        for use in graph.graph["model"].annotations:
            if use.name == "route" and covered.get(id(use)) is False:
                routable = sorted(n for n, b in REGISTRY.blocks.items() if "routable" in b.tags)
                raise fail(f"@route on '{use.target}' covers no routable block", use.loc,
                           help="routable blocks: " + ", ".join(routable))

    def summary(self, compiled, module) -> list[str]:
        """Active channel fraction and window starts per routed width (dtr.md)."""
        seen, lines = set(), []
        for node in nodes_in_order(compiled.graph):
            key = route_key(node)
            if key is None or key in seen:
                continue
            seen.add(key)
            c, window, weight, tasks = key
            starts = mask_starts(c, window, weight, tasks)
            probe = (0, tasks // 4, tasks // 2, 3 * tasks // 4, tasks - 1)
            active = int(c * window)
            lines.append(f"@route C={c}: active {active}/{c} = {active / c:.3f} of the channels at every t "
                         f"(window starts {' / '.join(str(starts[t]) for t in probe)} at t = "
                         f"{' / '.join(map(str, probe))}; {max(0, 2 * active - c)} channels always on)")
        if lines:
            lines.append("@route effective MACs = dense MACs: masks are elementwise and add no parameters; "
                         "LayerNorm/modulation refill masked channels, so no matmul shrinks")
        return lines

    def node_fill(self, node) -> str | None:
        return FILL if "route" in node.meta else None

    def legend(self):
        return "route", FILL, "@route: DTR channel routing (Park et al. 2024)"

    # ---- run time: code the forward generator (diffc.compiler.codegen) emits --------------------------
    def context_fields(self, gen) -> set:
        return {"noise_fraction"} if any("route" in n.meta for n in gen.nodes) else set()

    def keeps_call(self, node) -> bool:
        return "route" in node.meta

    def call_kwargs(self, gen, node, args: list[str]) -> list[str]:
        """route_mask = m_t for the node's rows (Eq. 4), gathered once per forward per table and rows."""
        key = route_key(node)
        if key is None:
            return []
        buffer = gen.buffer("route", key)
        rows, tasks = gen.rows(node), int(key[3])
        select = f"route_rows(ctx.noise_fraction, {tasks})" + ("" if rows is None else f"[{rows}]")
        mask = gen.once(("route", buffer, rows), f"mask{buffer}",
                        f"{gen.target.buffer(buffer)}[{select}].to({args[0]}.dtype)")
        return [f"route_mask={mask}"]

    def buffer_factory(self):
        return route_table

    def runtime_names(self) -> dict:
        return {"route_rows": route_rows}


def route_table(channels_: int, window: float, weight: float, tasks: int):
    """[T, C] binary DTR masks m_t (Eq. 4): a window of floor(C beta) ones starting at start[t] (dtr.md)."""
    import torch
    active = int(channels_ * window)
    table = torch.zeros(tasks, channels_)
    for t, start in enumerate(mask_starts(channels_, window, weight, tasks)):
        table[t, start:start + active] = 1.0
    return table


def route_rows(fraction, tasks: int):
    """Row of the mask table for each sample: round(fraction * (T-1)), the task of its noise level."""
    import torch
    return torch.round(fraction * (tasks - 1)).long().clamp(0, tasks - 1)
