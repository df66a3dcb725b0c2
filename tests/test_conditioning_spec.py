"""specs/dit_disentangled.diffspec (Berrada et al. 2024): the tiny model compiles and trains with mixed
dropped rows, the ramp gates control metadata at pure noise, and the blocks compose with text and @route."""
from pathlib import Path

import pytest
import torch

from diffc.compiler import build_model, build_model_from_text, compile_spec
from diffc.errors import UserError

SPEC = Path(__file__).resolve().parents[1] / "specs" / "dit_disentangled.diffspec"
TINY = "DiT_disentangled_tiny"
NO_AUGMENTATION = [1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0]   # orig_h, orig_w, crop_top, crop_left, crop_h, crop_w, flip


def perturbed(module, seed=0):
    """Init weights plus noise, so adaLN-Zero's zero layers no longer hide the conditioning."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    return module.eval()


@pytest.fixture(scope="module")
def tiny():
    return perturbed(build_model(SPEC, TINY).module)


def run(model, t, control, labels=(1, 2)):
    torch.manual_seed(7)
    x = torch.randn(len(labels), 1, 16, 16)
    cond = {"y": torch.tensor(labels), "m": torch.tensor(control, dtype=torch.float32)}
    with torch.no_grad():
        return model(x, torch.full((len(labels),), t), cond)[0]


def test_interface_has_independent_semantic_and_control_conditions():
    interface = compile_spec(SPEC).interface
    (y, m) = interface.conditions
    assert (y.kind, y.group, y.dropout, y.classes) == ("label", "semantic", 0.1, 1000)
    assert (m.kind, m.group, m.dropout, m.dims) == ("control", "control", 0.1, (7,))
    assert interface.sample_shape == (4, 32, 32) and interface.out_channels == 8


def test_tiny_forward_backward_with_mixed_dropped_rows():
    model = perturbed(build_model(SPEC, TINY).module).train()
    nan = float("nan")
    control = torch.tensor([NO_AUGMENTATION, [nan] * 7, [1.5, 1.2, 0.1, 0.2, 0.7, 0.7, 1.0], [nan] * 7])
    cond = {"y": torch.tensor([3, 10, 10, 7]), "m": control}            # label 10 = null class
    pred, aux = model(torch.randn(4, 1, 16, 16), torch.tensor([0, 250, 600, 999]), cond)
    assert pred.shape == (4, 2, 16, 16) and aux == {}
    (pred - torch.randn_like(pred)).square().mean().backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.requires_grad}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["m_embedder.null"].abs().sum(1).gt(0).all()                       # both ramp groups' nulls
    assert grads["y_embedder.embedding_table.weight"][[3, 7, 10]].abs().sum(1).gt(0).all()
    assert all(grads[f"m_embedder.mlps.{g}.0.weight"].abs().sum() > 0 for g in (0, 1))


def test_missing_conditions_are_null(tiny):
    x = torch.randn(2, 1, 16, 16)
    null = {"y": torch.tensor([10, 10]), "m": torch.full((2, 7), float("nan"))}
    with torch.no_grad():
        assert torch.equal(tiny(x, torch.tensor([10, 500]), {})[0], tiny(x, torch.tensor([10, 500]), null)[0])


def test_control_is_gated_off_at_pure_noise_and_acts_at_low_noise(tiny):
    other = [1.6, 0.8, 0.2, 0.1, 0.6, 0.6, 1.0]
    nan = [float("nan")] * 7
    assert torch.equal(run(tiny, 999, [NO_AUGMENTATION] * 2), run(tiny, 999, [other] * 2))
    assert torch.equal(run(tiny, 999, [NO_AUGMENTATION] * 2), run(tiny, 999, [nan] * 2))
    assert not torch.allclose(run(tiny, 50, [NO_AUGMENTATION] * 2), run(tiny, 50, [other] * 2))
    assert not torch.allclose(run(tiny, 50, [NO_AUGMENTATION] * 2), run(tiny, 50, [nan] * 2))


def test_size_ramp_starts_later_than_crop_ramp(tiny):
    size_changed = [1.7, 1.3] + NO_AUGMENTATION[2:]
    crop_changed = NO_AUGMENTATION[:2] + [0.2, 0.1, 0.6, 0.6, 1.0]
    high_noise = 800                      # noise fraction 0.8: above the size group's ramp_start 0.5
    assert torch.equal(run(tiny, high_noise, [NO_AUGMENTATION] * 2), run(tiny, high_noise, [size_changed] * 2))
    assert not torch.allclose(run(tiny, high_noise, [NO_AUGMENTATION] * 2), run(tiny, high_noise, [crop_changed] * 2))
    assert not torch.allclose(run(tiny, 100, [NO_AUGMENTATION] * 2), run(tiny, 100, [size_changed] * 2))


def test_label_acts_at_every_noise_level(tiny):
    control = [NO_AUGMENTATION] * 2
    for t in (0, 999):
        assert not torch.allclose(run(tiny, t, control, (1, 2)), run(tiny, t, control, (4, 5)))


def test_route_overlay_on_cond_blocks():
    text = SPEC.read_text() + "\nmodel Routed = DiT_disentangled_tiny with { @route(0.8, 4) blocks }\n"
    model = build_model_from_text(text, "dit_disentangled_routed.diffspec", "Routed").module
    pred, _ = model(torch.randn(2, 1, 16, 16), torch.tensor([0, 999]), {})
    assert pred.shape == (2, 2, 16, 16)


TEXT_SPEC = """
model TextDiT(width = 32, heads = 2) {
  input x: sample[1, 8, 8]
  input t: timestep[1000]
  @drop(0.1) input y: label[10]
  @drop(0.1) input caption: text[6, 12]
  @control @drop(0.1) input m: control[7]
  h = patch_embed(x, patch = 2, width = width) + sincos_pos_embed(grid = 4, width = width)
  c = timestep_embed(t, width = width) + control_embed(m, width = width, freq_dim = 16)
  tokens = concat_tokens(class_tokens(y, classes = 10, width = width, tokens = 2),
                         text_embed(caption, width = width, noise = 0.1))
  blocks: repeat 2 as i { h = dit_cond_block(h, c, tokens, heads = heads) }
  return unpatchify(final_layer(h, c, patch = 2, out = 1), patch = 2, channels = 1)
}
"""


def test_class_and_text_tokens_compose():
    model = perturbed(build_model_from_text(TEXT_SPEC, "text_dit.diffspec").module)
    assert model.interface.condition("caption").group == "semantic"
    caption = torch.randn(2, 6, 12)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([100, 900])
    with torch.no_grad():
        a = model(x, t, {"y": torch.tensor([1, 2]), "caption": caption})[0]
        b = model(x, t, {"y": torch.tensor([1, 2]), "caption": caption + torch.randn(2, 6, 12)})[0]
    assert a.shape == (2, 1, 8, 8) and not torch.allclose(a, b)


def test_control_groups_mismatch_is_a_located_error():
    bad = SPEC.read_text().replace("groups = [1, 1, 0, 0, 0, 0, 0]", "groups = [1, 0, 0]")
    with pytest.raises(UserError, match="'groups' has 3 entries but the control input has 7 values"):
        build_model_from_text(bad, "bad.diffspec", TINY)
