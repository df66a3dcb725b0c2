"""Guidance formulas against hand computations, and the stacked (single-forward) evaluation of GuidedModel."""
import pytest
import torch

from diffc.errors import UserError
from diffc.interface import Condition, ModelInterface, NoiseInput
from diffc.sampling.guidance import GuidedModel, classifier_free_guidance, disentangled_guidance


def test_cfg_hand_computation_all_channels_and_first_k():
    out_c = torch.tensor([[3.0, 5.0]]).view(1, 2, 1, 1)
    out_u = torch.tensor([[1.0, 1.0]]).view(1, 2, 1, 1)
    assert classifier_free_guidance(out_c, out_u, 1.5).flatten().tolist() == [4.0, 7.0]   # 1 + 1.5*2, 1 + 1.5*4
    assert classifier_free_guidance(out_c, out_u, 1.5, channels=1).flatten().tolist() == [4.0, 5.0]
    assert classifier_free_guidance(out_c, out_u, 1.0).flatten().tolist() == [3.0, 5.0]


def test_disentangled_hand_computation():
    full, ctrl, null = (torch.full((1, 1, 1, 1), v) for v in (5.0, 3.0, 2.0))
    # 2 + 4 * (5 - 3) + 0.5 * (3 - 2) = 10.5
    assert disentangled_guidance(full, ctrl, null, 4.0, 0.5).item() == 10.5
    assert disentangled_guidance(full, ctrl, null, 1.0, 1.0).item() == 5.0     # scales 1: the conditional output


class ToyConditional(torch.nn.Module):
    """Output = x + 10 * [label given] * (label + 1) + 100 * [control given] * control.sum(); counts forwards."""

    def __init__(self, with_text=False):
        super().__init__()
        conditions = [Condition("y", "label", (5,)), Condition("crop", "control", (2,), group="control")]
        if with_text:
            conditions.append(Condition("caption", "text", (3, 4)))
        self.interface = ModelInterface((1, 2, 2), 1, NoiseInput("sigma", "sigma"), tuple(conditions))
        self.calls = []

    def forward(self, x, noise_level, cond):
        self.calls.append(x.shape[0])
        n = x.shape[0]
        label = cond.get("y", torch.full((n,), 5))
        label_term = torch.where(label == 5, 0.0, 10.0 * (label + 1).float())
        crop = cond.get("crop", torch.full((n, 2), float("nan")))
        control_term = torch.nan_to_num(100.0 * crop.sum(1), nan=0.0)
        text_term = cond["caption"].sum((1, 2)) if "caption" in cond else torch.zeros(n)
        return x + (label_term + control_term + text_term).view(n, 1, 1, 1), {}


def evaluate(model, cond, **scales):
    x = torch.zeros(3, 1, 2, 2)
    out, _ = GuidedModel(model, **scales)(x, torch.ones(3), cond)
    return out[:, 0, 0, 0]


COND = {"y": torch.tensor([0, 2, 4]), "crop": torch.tensor([[0.01, 0.02], [0.0, 0.0], [0.1, 0.0]])}


def test_guided_model_cfg_in_one_stacked_forward():
    model = ToyConditional()
    out = evaluate(model, COND, scale=2.0)
    label_term = torch.tensor([10.0, 30.0, 50.0])
    control_term = torch.tensor([3.0, 0.0, 10.0])
    assert torch.allclose(out, 2.0 * (label_term + control_term))   # u = 0, c = label + control
    assert model.calls == [6]


def test_guided_model_disentangled_in_one_stacked_forward():
    model = ToyConditional()
    out = evaluate(model, COND, semantic_scale=3.0, control_scale=0.5)
    label_term = torch.tensor([10.0, 30.0, 50.0])
    control_term = torch.tensor([3.0, 0.0, 10.0])
    # null = 0; control-only = control; full = label + control  ->  3 * label + 0.5 * control
    assert torch.allclose(out, 3.0 * label_term + 0.5 * control_term)
    assert model.calls == [9]


def test_guided_model_with_text_falls_back_to_separate_forwards():
    model = ToyConditional(with_text=True)
    cond = dict(COND, caption=torch.ones(3, 3, 4))
    out = evaluate(model, cond, scale=1.5)
    full = torch.tensor([10.0, 30.0, 50.0]) + torch.tensor([3.0, 0.0, 10.0]) + 12.0
    assert torch.allclose(out, 1.5 * full)
    assert model.calls == [3, 3]


def test_scale_one_is_a_single_plain_forward():
    model = ToyConditional()
    out = evaluate(model, COND, scale=1.0)
    assert torch.allclose(out, torch.tensor([13.0, 30.0, 60.0]))
    assert model.calls == [3]


def test_guidance_errors():
    with pytest.raises(UserError, match="not both"):
        GuidedModel(ToyConditional(), scale=2.0, semantic_scale=2.0)
    unconditional = ToyConditional()
    unconditional.interface = ModelInterface((1, 2, 2), 1, NoiseInput("sigma", "sigma"))
    with pytest.raises(UserError, match="declares no conditions"):
        GuidedModel(unconditional, scale=2.0)
