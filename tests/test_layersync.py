"""LayerSync (@sync): the aux loss against a hand computation, its gradient path, init value, pairs."""
import pytest
import torch
import torch.nn.functional as F

from diffc.compiler import build_model, build_model_from_text, compile_program
from diffc.compiler.program import load_text
from diffc.errors import UserError


def _perturbed(model="SiT_tiny_LayerSync", seed=0):
    torch.manual_seed(seed)
    built = build_model("specs/sit_layersync.diffspec", model)
    with torch.no_grad():
        for name, p in built.module.named_parameters():
            if "adaLN" in name or "final_layer.linear" in name:
                p.normal_(0, 0.05)
    return built


def _inputs(n=3):
    return torch.randn(n, 1, 16, 16), torch.rand(n), {"y": torch.tensor([1, 5, 10][:n])}


def test_interface_declares_the_weighted_aux_loss():
    built = build_model("specs/sit_layersync.diffspec")
    assert built.interface.aux_losses == {"layersync": 0.2}
    assert built.interface.noise.kind == "time"
    plain = build_model("specs/sit_layersync.diffspec", "SiT_tiny")
    assert sum(p.numel() for p in plain.module.parameters()) == sum(p.numel() for p in built.module.parameters())


def test_loss_equals_hand_computation_on_block_outputs():
    built = _perturbed()
    feats = {}
    for i in (1, 3):   # 1-based layers 2 and 4
        built.module.get_submodule(f"blocks.{i}").register_forward_hook(lambda m, a, o, i=i: feats.__setitem__(i, o))
    _, aux = built.module(*_inputs())
    src, dst = feats[1], feats[3]
    cos = (src / src.norm(dim=-1, keepdim=True)) * (dst / dst.norm(dim=-1, keepdim=True))
    expected = -cos.sum(-1).mean()                 # per token, mean over batch and tokens
    assert src.shape == (3, 64, 128)
    torch.testing.assert_close(aux["layersync"], expected)
    assert -1 < aux["layersync"].item() < 0


def test_gradient_reaches_only_layers_up_to_the_student():
    built = _perturbed(seed=1)
    _, aux = built.module(*_inputs())
    aux["layersync"].backward()
    grads = {n: (p.grad is not None and p.grad.abs().sum().item() > 0) for n, p in built.module.named_parameters()}
    assert grads["blocks.0.attn.qkv.weight"] and grads["blocks.1.mlp.fc2.weight"] and grads["x_embedder.proj.weight"]
    for name, has in grads.items():
        if name.startswith(("blocks.2.", "blocks.3.", "blocks.4.", "blocks.5.", "final_layer.")):
            assert not has, name


def test_adaln_zero_init_gives_exactly_minus_one():
    built = build_model("specs/sit_layersync.diffspec")
    _, aux = built.module(*_inputs())
    assert aux["layersync"].item() == pytest.approx(-1.0, abs=1e-6)


def test_several_pairs_each_count():
    text = 'import "specs/dit.diffspec"\nmodel M = DiT_tiny with {\n  @sync(1 -> 3, 2 -> 4, weight = 0.5) blocks\n}\n'
    built = build_model_from_text(text, "./t.diffspec", "M", folder=".")
    assert built.interface.aux_losses == {"layersync/blocks.0->blocks.2": 0.5, "layersync/blocks.1->blocks.3": 0.5}
    _, aux = built.module(torch.randn(2, 1, 16, 16), torch.tensor([3, 500]), {})
    assert set(aux) == set(built.interface.aux_losses)


def test_named_references_and_incomparable_shapes():
    ok = 'import "specs/dit.diffspec"\nmodel M = DiT_tiny with {\n  @sync(blocks.0 -> blocks.3) model\n}\n'
    assert compile_program(load_text(ok, "./t.diffspec", folder="."), "M").interface.aux_losses == {"layersync": 0.2}
    bad = 'import "specs/dit.diffspec"\nmodel M = DiT_tiny with {\n  @sync(x_embedder -> final_layer) model\n}\n'
    with pytest.raises(UserError) as err:
        compile_program(load_text(bad, "./t.diffspec", folder="."), "M")
    d = err.value.diagnostics[0]
    assert "cannot compare 'x_embedder' [64, 128] with 'final_layer' [64, 8]" in d.message
    assert (d.line, d.col) == (3, 9)


def test_matches_torch_cosine_similarity():
    built = _perturbed(seed=3)
    feats = {}
    for i in (1, 3):
        built.module.get_submodule(f"blocks.{i}").register_forward_hook(lambda m, a, o, i=i: feats.__setitem__(i, o))
    _, aux = built.module(*_inputs())
    torch.testing.assert_close(aux["layersync"], -F.cosine_similarity(feats[1], feats[3], dim=-1).mean())
