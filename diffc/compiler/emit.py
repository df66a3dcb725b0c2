"""Emit pass: the checked, lowered IR -> a torch.nn.Module.

Modules with weights or buffers sit in a tree of ModuleDicts that mirrors the dotted node names, so
state_dict keys are the spec's names (blocks.3.attn.qkv.weight). Forward runs a flat plan in
topological order; `@route` rows and `@stage` sub-batches are computed once per call from the noise level.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from diffc.compiler.ir import nodes_in_order
from diffc.compiler.runtime import RunContext, make_context, route_rows, route_table, stage_index
from diffc.errors import fail
from diffc.registry import REGISTRY


class Step:
    __slots__ = ("name", "kind", "fn", "args", "multi", "route", "stage", "needs_ctx", "source")

    def __init__(self, name, kind, fn=None, args=(), multi=False, route=None, stage=None, needs_ctx=False, source=None):
        self.name, self.kind, self.fn, self.args, self.multi = name, kind, fn, list(args), multi
        self.route, self.stage, self.needs_ctx, self.source = route, stage, needs_ctx, source


class CompiledModel(nn.Module):
    """`pred, aux = model(x, noise_level, cond)`; see diffc.interface for the contract."""

    def __init__(self, graph, interface):
        super().__init__()
        self.interface = interface
        model = graph.graph["model"]
        nodes = nodes_in_order(graph)
        position = {n.name: i for i, n in enumerate(nodes)}
        self._stage_regions = [(r["label"], list(r["boundaries"])) for r in model.stage_regions]
        region_index = {label: i for i, (label, _) in enumerate(self._stage_regions)}
        self._route_keys: dict = {}
        self._stateless: list = []
        self._steps: list[Step] = []
        for node in nodes:
            args = [(position[w.node.name], w.port) for w in node.inputs if w is not None]
            stage = (region_index[node.stage[0]], node.stage[1]) if node.stage else None
            if node.block == "input":
                self._steps.append(Step(node.name, "input", source=node.context["kind"]))
            elif node.block == "stage_merge":
                self._steps.append(Step(node.name, "merge", args=args, stage=(region_index[node.inputs[0].node.stage[0]], None)))
            else:
                self._steps.append(self._module_step(node, args, stage))
        self._outputs = [(position[w.node.name], w.port) for w in model.outputs]
        self._taps = {k: ([(position[w.node.name], w.port) for w in v] if isinstance(v, tuple)
                          else (position[v.node.name], v.port)) for k, v in model.taps.items()}
        self._needs_logsnr = bool(self._stage_regions)
        self.force_stage: int | None = None      # diffc compile: route every sample to one stage (meta FLOPs)

    # ---- construction ---------------------------------------------------------------------------
    def _module_step(self, node, args, stage) -> Step:
        info = REGISTRY.block(node.block)
        cls = info.load_module()
        if "param" in info.tags:
            param = cls.make(node.params, node.out_shapes[0])
            self._register(node, param=param)
            return Step(node.name, "param", fn=param, stage=stage)
        module = cls(node.params, node.in_shapes, node.out_shapes)
        if any(True for _ in module.parameters()) or any(True for _ in module.buffers()):
            self._register(node, module=module)
        else:
            self._stateless.append(module)
        route = None
        if node.route is not None:
            p = node.route
            key = (node.context["route_channels"], p.window, p.weight, p.tasks)
            if key not in self._route_keys:
                buffer = f"_route_{len(self._route_keys)}"
                self.register_buffer(buffer, route_table(*key), persistent=False)
                self._route_keys[key] = buffer
            route = (self._route_keys[key], p.tasks)
        return Step(node.name, "module", fn=module, args=args, multi=len(info.outputs) > 1, route=route,
                    stage=stage, needs_ctx="context" in info.tags)

    def _register(self, node, module=None, param=None) -> None:
        *path, leaf = node.name.split(".")
        parent = self
        for part in path:
            child = parent._modules.get(part)
            if child is None:
                child = nn.ModuleDict()
                self._add(parent, part, child, node)
            elif not isinstance(child, nn.ModuleDict):
                raise fail(f"'{node.name}' would nest weights inside the weights of node '{part}'", node.loc,
                           help="rename one of them (`as \"name\"`) so state_dict keys do not clash")
            parent = child
        if param is not None:
            if leaf in parent._parameters or leaf in parent._modules:
                raise fail(f"weights named '{node.name}' clash with another node", node.loc)
            parent.register_parameter(leaf, param)
        else:
            self._add(parent, leaf, module, node)

    @staticmethod
    def _add(parent, name, module, node) -> None:
        if name in parent._modules or (parent.__class__ is not nn.ModuleDict and hasattr(parent, name)):
            raise fail(f"node name '{node.name}' clashes with an existing name ('{name}')", node.loc,
                       help="rename the node with `as \"name\"`")
        parent.add_module(name, module)

    # ---- forward --------------------------------------------------------------------------------
    def forward(self, x, noise_level, cond=None):
        cond = cond or {}
        n = x.shape[0]
        noise_level = torch.as_tensor(noise_level, device=x.device)
        if noise_level.ndim == 0:
            noise_level = noise_level.expand(n)
        ctx = make_context(noise_level, self.interface.noise, self._needs_logsnr)
        members = self._stage_members(ctx)
        values: list = [None] * len(self._steps)
        sliced: dict = {}
        masks: dict = {}          # (table, stage) -> [N, C] route masks, gathered once per forward
        for i, step in enumerate(self._steps):
            if step.kind == "input":
                values[i] = self._input(step, x, noise_level, cond, n)
                continue
            if step.kind == "merge":
                values[i] = (self._merge(step, values, members, n),)
                continue
            if step.kind == "param":
                values[i] = (step.fn,)
                continue
            args = [self._arg(values, ref, step.stage, members, sliced) for ref in step.args]
            kwargs = {}
            if step.route is not None:
                key = (step.route, step.stage)
                if key not in masks:
                    buffer, tasks = step.route
                    rows = route_rows(ctx.noise_fraction, tasks)
                    if step.stage is not None:
                        rows = rows[members[step.stage]]
                    masks[key] = getattr(self, buffer)[rows].to(args[0].dtype)
                kwargs["route_mask"] = masks[key]
            if step.needs_ctx:
                kwargs["ctx"] = ctx if step.stage is None else _slice_ctx(ctx, members[step.stage])
            out = step.fn(*args, **kwargs)
            values[i] = tuple(out) if step.multi else (out,)
        pred = values[self._outputs[0][0]][self._outputs[0][1]]
        aux = {key: self._tap(values, refs) for key, refs in self._taps.items()}
        for k, (idx, port) in enumerate(self._outputs[1:], 1):
            aux[f"out{k}"] = values[idx][port]
        return pred, aux

    def _input(self, step, x, noise_level, cond, n) -> tuple:
        """The input's output tuple; a missing condition is its null value (diffc.interface)."""
        if step.source == "sample":
            return (x,)
        if step.source in ("timestep", "time", "sigma"):
            return (noise_level,)
        spec = self.interface.condition(step.name)
        value = cond.get(step.name)
        if value is None:
            if spec.kind == "label":
                value = torch.full((n,), spec.classes, dtype=torch.long, device=x.device)
            elif spec.kind == "control":
                value = torch.full((n, *spec.dims), float("nan"), device=x.device)
            else:
                value = torch.zeros((n, *spec.dims), device=x.device)
        if spec.kind != "text":
            return (value,)
        mask = cond.get(step.name + ".mask")
        if mask is None:
            mask = torch.ones(value.shape[:2], dtype=torch.bool, device=x.device)
        return value, mask

    def _stage_members(self, ctx) -> dict:
        members = {}
        for r, (_, boundaries) in enumerate(self._stage_regions):
            if self.force_stage is not None:
                n = ctx.noise_level.shape[0]
                for s in range(len(boundaries) + 1):
                    members[(r, s)] = torch.arange(n if s == self.force_stage else 0, device=ctx.noise_level.device)
                continue
            index = stage_index(ctx.logsnr, boundaries)
            for s in range(len(boundaries) + 1):
                members[(r, s)] = torch.nonzero(index == s).squeeze(1)
        return members

    def _arg(self, values, ref, stage, members, sliced):
        value = values[ref[0]][ref[1]]
        producer = self._steps[ref[0]]
        if stage is None or producer.stage == stage or producer.kind == "param":   # weights have no batch rows
            return value
        key = (ref, stage)
        if key not in sliced:
            sliced[key] = value.index_select(0, members[stage])
        return sliced[key]

    def _merge(self, step, values, members, n):
        region = step.stage[0]
        parts = [(values[idx][port], members[(region, s)]) for s, (idx, port) in enumerate(step.args)]
        first = parts[0][0]
        out = first.new_zeros((n, *first.shape[1:]))
        for value, index in parts:
            out = out.index_copy(0, index, value)
        return out

    @staticmethod
    def _tap(values, refs):
        if isinstance(refs, list):   # LayerSync pair: -cos(src, stopgrad(dst)) per token, mean (Eq. 3)
            (si, sp), (di, dp) = refs
            src, dst = values[si][sp], values[di][dp].detach()
            return -F.cosine_similarity(src, dst, dim=1 if src.ndim == 4 else -1).mean()
        return values[refs[0]][refs[1]]


def _slice_ctx(ctx, index):
    return RunContext(ctx.noise_level[index], ctx.noise_fraction[index],
                      None if ctx.logsnr is None else ctx.logsnr[index])
