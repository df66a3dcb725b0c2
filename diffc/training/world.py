"""Processes and devices: torchrun / DistributedDataParallel setup, and `--init-from` at a new resolution."""
from __future__ import annotations

import math
import os

import attrs
import torch
import torch.nn.functional as F

from diffc.errors import UserError


@attrs.define
class World:
    rank: int = 0
    size: int = 1
    device: str = "cpu"
    ddp: bool = False

    @classmethod
    def from_env(cls, device: str = "cpu") -> "World":
        """RANK / WORLD_SIZE / LOCAL_RANK from torchrun; gloo on CPU, nccl on CUDA."""
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise UserError(f"--device {device} requested but no CUDA device is available", help="use --device cpu")
            if device == "cuda":                   # torchrun: one GPU per process
                device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
            torch.cuda.set_device(device)
        if size == 1:
            return cls(0, 1, device, False)
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), device, True)

    def wrap(self, module: torch.nn.Module, compile: bool):
        """DDP (and torch.compile) around the module; checkpoints always save the unwrapped module."""
        model = module
        if compile:
            import torch._dynamo

            from diffc.compiler.runtime import allow_dynamic_stage_rows
            for key, value in allow_dynamic_stage_rows().items():   # one graph with @stage rows too
                setattr(torch._dynamo.config, key, value)
            model = torch.compile(model)
        if self.ddp:
            from torch.nn.parallel import DistributedDataParallel
            model = DistributedDataParallel(model, device_ids=None if self.device == "cpu" else [self.device])
        return model

    def agree(self, *flags: bool) -> list[bool]:
        """Decisions every process takes together (stop, checkpoint now): true where true on any process."""
        if not self.ddp:
            return [bool(f) for f in flags]
        import torch.distributed as dist
        votes = torch.tensor([float(f) for f in flags], device=self.device)
        dist.all_reduce(votes, op=dist.ReduceOp.MAX)
        return [bool(v) for v in votes.tolist()]

    def barrier(self) -> None:
        if self.ddp:
            import torch.distributed as dist
            dist.barrier()


def _grid_resize(table: torch.Tensor, new_shape) -> torch.Tensor:
    """Bilinear resize of a [.., T, D] table over its sqrt(T) x sqrt(T) token grid (Berrada et al. Sec. 4.2)."""
    old_side, new_side = math.isqrt(table.shape[-2]), math.isqrt(new_shape[-2])
    if old_side ** 2 != table.shape[-2] or new_side ** 2 != new_shape[-2] or table.shape[-1] != new_shape[-1]:
        return None
    grid = table.reshape(-1, old_side, old_side, table.shape[-1]).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(new_side, new_side), mode="bilinear", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(new_shape).to(table.dtype)


def init_from_checkpoint(module: torch.nn.Module, path, recipe, interface):
    """Load weights from a checkpoint at another resolution: learned position tables resized, frozen ones rebuilt,
    and the noise schedule shifted by r = new / old resolution unless the recipe sets objective.shift."""
    from diffc import checkpoints as ckpt
    file = ckpt.resolve_checkpoint(path)
    data = ckpt.load_checkpoint(file, needs=("model", "recipe"))
    source = ckpt.clean_state_dict(data["model"])
    frozen = {name for name, p in module.named_parameters() if not p.requires_grad}
    frozen |= {name for name, _ in module.named_buffers()}
    target = module.state_dict()
    for key, value in target.items():
        if key not in source:
            raise UserError(f"--init-from: '{key}' is missing from the checkpoint", file=str(file))
        old = source[key]
        if old.shape == value.shape:
            target[key] = old
        elif key in frozen:
            continue                               # e.g. sin-cos positions: the new model's own grid
        else:
            resized = _grid_resize(old, value.shape)
            if resized is None:
                raise UserError(f"--init-from: '{key}' has shape {tuple(old.shape)} in the checkpoint but "
                                f"{tuple(value.shape)} here and is not a square position table", file=str(file))
            target[key] = resized
    module.load_state_dict(target)
    old_res = (data["recipe"].get("data") or {}).get("resolution")
    if not isinstance(old_res, int) or old_res < 1:
        raise UserError("--init-from: the checkpoint's recipe has no data.resolution", file=str(file))
    ratio = interface.sample_shape[-1] / old_res
    if ratio != 1 and recipe.objective.shift == 1.0:
        recipe = attrs.evolve(recipe, objective=attrs.evolve(recipe.objective, shift=ratio))
    return recipe
