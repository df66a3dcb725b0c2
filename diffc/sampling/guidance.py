"""Classifier-free guidance on the raw model output, plain and disentangled (semantic vs. control).

`GuidedModel` keeps the model contract (`pred, aux = model(x, noise_level, cond)`), so objectives convert its
output exactly as they convert the plain model's: guidance on the raw output equals guidance on eps, D or v
whenever that conversion is affine in the output (it is for every parameterisation we use).
The conditional and unconditional evaluations run as one stacked forward when every dropped condition has an
explicit null value (labels: index `classes`; controls: NaN rows); text conditions fall back to separate calls.
"""
from __future__ import annotations

import torch

from diffc.errors import UserError


# Ho & Salimans 2022, Eq. 6: out = out_u + w (out_c - out_u); `channels` limits it to the first k (DiT's quirk).
def classifier_free_guidance(out_cond, out_uncond, scale: float, channels: int | None = None):
    guided = out_uncond + scale * (out_cond - out_uncond)
    if channels is None:
        return guided
    return torch.cat([guided[:, :channels], out_cond[:, channels:]], dim=1)


# Berrada et al. 2024, Sec. 3 (conditioning.md item 4): separate semantic and control guidance terms.
def disentangled_guidance(out_full, out_control_only, out_null, semantic_scale: float, control_scale: float,
                          channels: int | None = None):
    guided = (out_null + semantic_scale * (out_full - out_control_only)
              + control_scale * (out_control_only - out_null))
    if channels is None:
        return guided
    return torch.cat([guided[:, :channels], out_full[:, channels:]], dim=1)


class GuidedModel(torch.nn.Module):
    """A compiled model whose output is guided; scale 1 (and no per-group scales) calls the model once."""

    def __init__(self, module, scale: float = 1.0, semantic_scale: float | None = None,
                 control_scale: float | None = None, channels: int | None = None):
        super().__init__()
        self.module = module
        self.interface = module.interface
        self.scale = float(scale)
        self.disentangled = semantic_scale is not None or control_scale is not None
        self.semantic_scale = 1.0 if semantic_scale is None else float(semantic_scale)
        self.control_scale = 1.0 if control_scale is None else float(control_scale)
        self.channels = channels
        if self.disentangled and self.scale != 1.0:
            raise UserError("use either --guidance or the per-group --semantic-guidance/--control-guidance, not both")
        if self.is_guided and not self.interface.conditions:
            raise UserError("guidance needs a conditional model, but this model declares no conditions",
                            help="drop the guidance flags (or set them to 1)")

    @property
    def is_guided(self) -> bool:
        if self.disentangled:
            return (self.semantic_scale, self.control_scale) != (1.0, 1.0)
        return self.scale != 1.0

    def forward(self, x, noise_level, cond):
        if not self.is_guided:
            return self.module(x, noise_level, cond)
        if self.disentangled:
            conds = [cond, self._drop(cond, {"semantic"}), self._drop(cond, {"semantic", "control"})]
            (full, control_only, null), aux = self._evaluate(x, noise_level, conds)
            return disentangled_guidance(full, control_only, null, self.semantic_scale, self.control_scale,
                                         self.channels), aux
        (out_cond, out_uncond), aux = self._evaluate(x, noise_level, [cond, {}])
        return classifier_free_guidance(out_cond, out_uncond, self.scale, self.channels), aux

    def _drop(self, cond: dict, groups: set) -> dict:
        """The condition dict with every condition of the given groups removed (a missing key means null)."""
        dropped = {c.name for c in self.interface.conditions if c.group in groups}
        return {k: v for k, v in cond.items() if k.removesuffix(".mask") not in dropped}

    def _evaluate(self, x, noise_level, conds: list[dict]):
        """Model outputs for each condition dict; one stacked forward when the nulls can be written out."""
        n = x.shape[0]
        stacked = self._stack(conds, n, x.device)
        if stacked is not None:
            out, aux = self.module(x.repeat(len(conds), 1, 1, 1), noise_level.repeat(len(conds)), stacked)
            return out.chunk(len(conds)), aux
        results = [self.module(x, noise_level, c) for c in conds]
        return [r[0] for r in results], results[0][1]

    def _stack(self, conds: list[dict], n: int, device):
        merged = {}
        for key in set().union(*conds):
            parts = []
            for c in conds:
                part = c[key] if key in c else self._null_value(key, n, device)
                if part is None:
                    return None
                parts.append(part)
            merged[key] = torch.cat(parts)
        return merged

    def _null_value(self, key: str, n: int, device):
        """Explicit null of a label (index `classes`) or control (NaN row); None for text (no written null)."""
        try:
            condition = self.interface.condition(key)
        except KeyError:
            return None
        if condition.kind == "label":
            return torch.full((n,), condition.classes, dtype=torch.long, device=device)
        if condition.kind == "control":
            return torch.full((n, *condition.dims), float("nan"), device=device)
        return None


def untrained_null_conditions(bundle, scale: float, semantic_scale=None, control_scale=None) -> list[str]:
    """Warnings for conditions the guidance drops although training never dropped them (dropout 0): their
    unconditional branch was never trained, so guiding extrapolates from an untrained output."""
    recipe_cond = (getattr(bundle, "recipe", None) or {}).get("conditioning") or {}
    disentangled = semantic_scale is not None or control_scale is not None
    if disentangled:    # semantic guidance drops the semantic conditions; control guidance drops both groups
        guided = {s for s in (semantic_scale, control_scale) if s is not None} != {1.0}
        groups = ({"semantic"} | ({"control"} if control_scale not in (None, 1.0) else set())) if guided else set()
    else:
        groups = {"semantic", "control"} if scale != 1.0 else set()
    warnings = []
    for c in bundle.interface.conditions:
        override = recipe_cond.get(f"{c.kind}_dropout")
        rate = c.dropout if override is None else override
        if c.group in groups and rate == 0:
            warnings.append(f"warning: guidance drops condition '{c.name}', which was trained with dropout 0: the "
                            "model never learned its unconditional output (train with @drop(p) or guide with "
                            "--guide, a separately trained network)")
    return warnings


# EDM2 (Karras et al. 2024, Sec. 5; generate_images.py) and autoguidance (Karras et al. 2024b, Eq. 1):
# D_w(x; sigma) = D_g(x; sigma) + w (D_1(x; sigma) - D_g(x; sigma)), each network through its own parameterisation.
class NetworkGuidance:
    """Guidance by a second network (`diffc sample CKPT --guide CKPT2 --guidance w`): combines what the sampler
    integrates (DDPM eps, EDM denoiser D, flow velocity v); a learned variance comes from the main network."""

    def __init__(self, main, guide, scale: float, cond: dict):
        self.guide, self.scale = guide, float(scale)
        a, b = main.objective, guide.objective
        if a.family != b.family or tuple(main.interface.sample_shape) != tuple(guide.interface.sample_shape):
            raise UserError(f"--guide: the guiding network is a {b.family} model of samples "
                            f"{tuple(guide.interface.sample_shape)}, the main one a {a.family} model of samples "
                            f"{tuple(main.interface.sample_shape)}",
                            help="guide with a network of the same kind of objective and sample shape")
        if a.family == "ddpm" and not torch.equal(a.alphas_cumprod, b.alphas_cumprod):
            raise UserError("--guide: the two DDPM networks use different noise schedules",
                            help="guide with a network trained on the same timestep schedule")
        names = {c.name for c in guide.interface.conditions}
        self.guide_cond = {k: v for k, v in cond.items() if k.removesuffix(".mask") in names}

    def _guide_value(self, quantity: str, x, level):
        g, cond = self.guide, self.guide_cond
        if quantity == "denoise":
            return g.objective.denoise(g.module, x, level, cond)
        if quantity == "velocity":
            return g.objective.velocity(g.module, x, level, cond)
        out = g.module(x, level, cond)[0][:, :g.objective.channels]
        return g.objective.eps_from_output(out, x, level)

    def wrap(self, main_fn, quantity: str):
        """`main_fn(x, level)` guided by the second network; quantity: denoise | velocity | eps (returns a pair)."""
        def guided(x, level):
            main = main_fn(x, level)
            ref = self._guide_value(quantity, x, level)
            if quantity == "eps":
                return ref + self.scale * (main[0] - ref), main[1]
            return ref + self.scale * (main - ref)
        return guided
