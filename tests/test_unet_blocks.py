"""U-Net blocks (ADM / DDPM++): routing of the residual branch only, empty batches, shape rules, DTR specs."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from diffc.compiler import build_model
from diffc.compiler.ir import nodes_in_order
from diffc.registry import REGISTRY, ShapeError

SPECS = Path(__file__).resolve().parents[1] / "specs"


def make(name, in_shapes, **params):
    info = REGISTRY.block(name)
    p = info.params(**params)
    out = p.infer(**in_shapes)
    return info.load_module()(p, in_shapes, (out,))


def randomize(module, seed=0):
    """Replace the zero-initialised output layers, so residual branches contribute and routing is visible."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=gen))
    return module


def test_resblock_masks_the_residual_branch_only():
    block = randomize(make("resblock", {"x": (8, 6, 6), "emb": (5,)}, out=12, groups=4))
    gen = torch.Generator().manual_seed(1)
    x, emb = torch.randn(2, 8, 6, 6, generator=gen), torch.randn(2, 5, generator=gen)
    mask = torch.zeros(2, 8)
    mask[0, :6], mask[1, 2:] = 1, 1
    mx = x * mask[:, :, None, None]
    # by hand: skip(x) + conv2(SiLU(GN(conv1(SiLU(GN(m x)))) * (1 + scale) + shift))   (ADM AdaGN, DTR Eq. 4)
    h = F.conv2d(F.silu(F.group_norm(mx, 4, block.in_norm.weight, block.in_norm.bias)),
                 block.in_conv.weight, block.in_conv.bias, padding=1)
    scale, shift = F.linear(F.silu(emb), block.emb_proj.weight, block.emb_proj.bias).chunk(2, dim=1)
    h = F.group_norm(h, 4, block.out_norm.weight, block.out_norm.bias) * (1 + scale[:, :, None, None]) \
        + shift[:, :, None, None]
    h = F.conv2d(F.silu(h), block.out_conv.weight, block.out_conv.bias, padding=1)
    skip = F.conv2d(x, block.skip.weight, block.skip.bias)
    block.eval()
    torch.testing.assert_close(block(x, emb, route_mask=mask), skip + h, rtol=1e-5, atol=1e-5)
    # masked-out channels reach the output through the skip path only
    x2 = x.clone()
    x2[0, 6:] += 1.0
    delta = block(x2, emb, route_mask=mask) - block(x, emb, route_mask=mask)
    torch.testing.assert_close(delta, F.conv2d(x2 - x, block.skip.weight), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(block(x2, emb), block(x, emb) + delta)   # unrouted, the branch sees them


def test_attention_block_routes_its_input_and_keeps_the_residual():
    block = randomize(make("attention_block", {"x": (8, 4, 4)}, heads=2, groups=4)).eval()
    x = torch.randn(3, 8, 4, 4)
    mask = torch.ones(3, 8)
    mask[:, 5:] = 0
    masked = x * mask[:, :, None, None]
    branch = block(masked) - masked                   # x + proj(attn(GN(x))) evaluated on m x
    torch.testing.assert_close(block(x, route_mask=mask), x + branch, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,shapes,params", [
    ("resblock", {"x": (8, 4, 4), "emb": (5,)}, dict(out=16, groups=4, resample="down", dropout=0.1)),
    ("resblock", {"x": (8, 4, 4), "emb": (5,)}, dict(groups=4, resample="up", scale_shift=False, skip_proj=True)),
    ("attention_block", {"x": (8, 4, 4)}, dict(head_channels=4, groups=4)),
    ("group_norm", {"x": (8, 4, 4)}, dict(groups=4)),
    ("downsample", {"x": (8, 4, 4)}, dict(out=4)),
    ("upsample", {"x": (8, 4, 4)}, dict(conv=False)),
    ("sigma_embed", {"sigma": ()}, dict(width=16, freq_dim=8)),
])
def test_blocks_run_on_an_empty_batch_and_give_zero_gradients(name, shapes, params):
    module = make(name, shapes, **params)
    out_shape = REGISTRY.block(name).params(**params).infer(**shapes)
    inputs = [(torch.rand(0, *s) + 0.1).requires_grad_() for s in shapes.values()]
    out = module(*inputs)
    assert out.shape == (0, *out_shape)
    out.sum().backward()
    grads = [p.grad for p in module.parameters()]
    assert all(g is not None and torch.count_nonzero(g) == 0 for g in grads)


def test_resampling_shapes_and_channels():
    assert make("resblock", {"x": (8, 4, 4), "emb": (5,)}, groups=4, resample="up")(
        torch.randn(2, 8, 4, 4), torch.randn(2, 5)).shape == (2, 8, 8, 8)
    assert make("downsample", {"x": (8, 4, 4)}, conv=False)(torch.randn(2, 8, 4, 4)).shape == (2, 8, 2, 2)
    assert make("upsample", {"x": (8, 4, 4)}, out=3)(torch.randn(2, 8, 4, 4)).shape == (2, 3, 8, 8)


def test_shape_rules_reject_bad_groups_and_sizes():
    info = REGISTRY.block("resblock")
    with pytest.raises(ShapeError, match="divisible by 32"):
        info.params(out=16).infer(x=(16, 8, 8), emb=(4,))
    with pytest.raises(ShapeError, match="even size"):
        info.params(groups=4, resample="down").infer(x=(16, 7, 7), emb=(4,))
    with pytest.raises(ShapeError, match="head_channels"):
        REGISTRY.block("attention_block").params(head_channels=3, groups=4).infer(x=(8, 4, 4))
    with pytest.raises(ValueError, match="resample"):
        info.params(resample="sideways")


def _route_spec(tmp_path, window, attention=False):
    flag = "true" if attention else "false"
    text = ('import "adm_unet.diffspec"\n'   # found in the shipped specs/ library
            f"model Routed = ADM_tiny with {{\n  @route({window}, 4, attention = {flag}) model\n}}\n")
    path = tmp_path / "routed.diffspec"
    path.write_text(text)
    return build_model(path, "Routed").module


def _run(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 1, 16, 16, generator=gen)
    return model(x, torch.tensor([0, 250, 700, 999]), {"y": torch.tensor([0, 3, 5, 10])})[0]


def test_route_window_one_equals_the_unrouted_adm_bit_for_bit(tmp_path):
    plain = randomize(build_model(SPECS / "adm_unet.diffspec", "ADM_tiny").module).eval()
    for window, same in ((1.0, True), (0.8, False)):
        routed = _route_spec(tmp_path, window, attention=True).eval()
        routed.load_state_dict(plain.state_dict())
        assert torch.equal(_run(routed), _run(plain)) is same


def test_dtr_spec_routes_resblocks_and_attention_only_on_request():
    def routed_blocks(model_name):
        graph = build_model(SPECS / "adm_unet_dtr.diffspec", model_name).compiled.graph
        return {node.block for node in nodes_in_order(graph) if "route" in node.meta}
    assert routed_blocks("ADM_tiny_DTR") == {"resblock"}
    assert routed_blocks("ADM_tiny_DTR_attention") == {"resblock", "attention_block"}
