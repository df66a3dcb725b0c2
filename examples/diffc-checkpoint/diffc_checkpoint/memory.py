"""How many bytes a forward keeps alive for backward, to measure what @checkpoint saves.

Counts each storage once: the tensors autograd saves (torch.autograd.graph.saved_tensors_hooks) plus the
inputs of checkpointed calls, which torch.utils.checkpoint keeps itself (outside those hooks).
"""
from __future__ import annotations

import torch


def kept_for_backward(built, run) -> tuple[int, object]:
    """(bytes kept for backward by `run()`, its result) for a diffc BuiltModel `built`."""
    storages: dict[int, int] = {}

    def remember(tensor):
        if isinstance(tensor, torch.Tensor) and tensor.device.type != "meta":
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()

    def pack(tensor):
        remember(tensor)
        return tensor

    def remember_inputs(mod, args):
        for arg in args:
            remember(arg)

    hooks = [m.register_forward_pre_hook(remember_inputs) for m in checkpointed_modules(built)]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            result = run()
    finally:
        for hook in hooks:
            hook.remove()
    return sum(storages.values()), result


def checkpointed_modules(built) -> list:
    """The modules whose calls the generated forward wraps: the nodes @checkpoint marked (stateless ones,
    which hold no weights, are not submodules; their inputs are counted where autograd saves them)."""
    from diffc_checkpoint import META
    names = [n["ir"].name for n in built.compiled.graph.nodes.values() if n["ir"].meta.get(META)]
    found = []
    for name in names:
        try:
            found.append(built.module.get_submodule(name))
        except AttributeError:
            continue
    return found
