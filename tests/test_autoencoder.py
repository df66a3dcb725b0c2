"""The SD and EDM2 latent conventions against their formulas, and the AutoencoderKL loader's errors."""
import json

import pytest
import torch
from latent_helpers import make_tiny_vae

from diffc.autoencoder import Autoencoder, Convention, edm2_convention, sd_convention
from diffc.errors import UserError


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    return make_tiny_vae(tmp_path_factory.mktemp("vae") / "tiny-vae")


def test_edm2_scale_and_bias_equal_the_published_formula_by_hand():
    conv = edm2_convention()
    # EDM2 StabilityVAEEncoder: raw_mean [5.81, 3.25, 0.12, -2.15], raw_std [4.17, 4.62, 3.71, 3.28], final 0 / 0.5
    by_hand_scale = [0.5 / 4.17, 0.5 / 4.62, 0.5 / 3.71, 0.5 / 3.28]
    by_hand_bias = [-5.81 * 0.5 / 4.17, -3.25 * 0.5 / 4.62, -0.12 * 0.5 / 3.71, 2.15 * 0.5 / 3.28]
    assert conv.scale == pytest.approx(by_hand_scale, rel=1e-6)
    assert conv.bias == pytest.approx(by_hand_bias, rel=1e-6)
    assert conv.scale[0] == pytest.approx(0.1199040767, rel=1e-7)
    assert conv.bias[3] == pytest.approx(0.3277439024, rel=1e-7)
    raw = torch.randn(3, 4, 5, 5, dtype=torch.float64) * 4 + 2
    final = conv.to_final(raw)
    assert final[:, 1].sub(raw[:, 1] * by_hand_scale[1] + by_hand_bias[1]).abs().max() < 1e-6
    assert torch.allclose(conv.to_raw(final), raw, atol=1e-12)


def test_edm2_published_statistics_whiten_latents_with_those_statistics():
    mean, std = torch.tensor([5.81, 3.25, 0.12, -2.15]), torch.tensor([4.17, 4.62, 3.71, 3.28])
    raw = torch.randn(20000, 4, 2, 2, generator=torch.Generator().manual_seed(0)) * std.view(1, 4, 1, 1) \
        + mean.view(1, 4, 1, 1)
    final = edm2_convention().to_final(raw)
    assert final.mean((0, 2, 3)).abs().max() < 0.01
    assert (final.std((0, 2, 3)) - 0.5).abs().max() < 0.01


def test_sd_scale_is_dit_multiplication_and_round_trips():
    conv = sd_convention(4)
    raw = torch.randn(2, 4, 8, 8)
    assert torch.equal(conv.to_final(raw), raw.mul(0.18215))                    # DiT: latent_dist.sample().mul_(0.18215)
    assert torch.equal(conv.to_raw(conv.to_final(raw)), raw.mul(0.18215) / 0.18215)  # DiT: decode(samples / 0.18215)
    assert torch.allclose(conv.to_raw(conv.to_final(raw)), raw, rtol=1e-6, atol=0)
    shifted = sd_convention(4, 1.5305, 0.0609)                                  # SD3-style (z - shift) * scale
    assert torch.allclose(shifted.to_final(raw), (raw - 0.0609) * 1.5305, atol=1e-6)


def test_convention_metadata_round_trips_and_rejects_garbage():
    conv = edm2_convention()
    assert Convention.from_dict(json.loads(json.dumps(conv.to_dict())), "x") == conv
    for bad in ({"name": "sd"}, {"name": "vq", "scale": [1], "bias": [0]}, {"name": "sd", "scale": [0], "bias": [0]},
                {"name": "sd", "scale": ["a"], "bias": [0]}, None, {"name": "sd", "scale": [1, 2], "bias": [0]}):
        with pytest.raises(UserError):
            Convention.from_dict(bad, "file.npz")


def test_encode_and_decode_match_the_vae_in_each_pixel_range(vae_dir):
    from diffusers import AutoencoderKL
    auto = Autoencoder.load(vae_dir)
    vae = AutoencoderKL.from_pretrained(vae_dir).eval()
    pixels = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        sd_post = vae.encode(pixels).latent_dist
        edm2_post = vae.encode((pixels + 1) / 2).latent_dist                  # EDM2 feeds the VAE [0, 1]
        close = lambda a, b: torch.allclose(a, b, rtol=0, atol=1e-6)  # noqa: E731  (loading paths differ by 1 ulp)
        mean, std = auto.encode(pixels, "sd")
        assert close(mean, sd_post.mean) and close(std, sd_post.std)
        mean, std = auto.encode(pixels, "edm2")
        assert close(mean, edm2_post.mean) and close(std, edm2_post.std)
        assert not close(edm2_post.mean, sd_post.mean)
        final = sd_convention(4).to_final(sd_post.mean)
        assert torch.allclose(auto.decode(final, sd_convention(4)), vae.decode(sd_post.mean).sample.clamp(-1, 1),
                              atol=1e-5)
        edm2 = edm2_convention()
        expected = vae.decode(edm2_post.mean).sample.clamp(0, 1) * 2 - 1
        assert torch.allclose(auto.decode(edm2.to_final(edm2_post.mean), edm2), expected, atol=1e-5)
    assert auto.identity["downsample"] == 4 and auto.identity["latent_channels"] == 4
    assert Autoencoder.load(vae_dir).identity["sha256"] == auto.identity["sha256"]


def test_bad_autoencoder_folders_are_clear_errors(tmp_path, vae_dir):
    with pytest.raises(UserError, match="autoencoder folder not found"):
        Autoencoder.load(tmp_path / "missing")
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text('{"_class_name": "UNet2DModel"}')
    with pytest.raises(UserError, match="UNet2DModel, not an AutoencoderKL"):
        Autoencoder.load(tmp_path / "unet")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((vae_dir / "config.json").read_text())
    (pickled / "diffusion_pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(UserError, match="no .safetensors weights") as err:
        Autoencoder.load(pickled)
    assert "can run code" in err.value.diagnostics[0].help
    pipeline = tmp_path / "pipeline"
    pipeline.mkdir()
    (pipeline / "vae").symlink_to(vae_dir)
    assert Autoencoder.load(pipeline).identity["sha256"] == Autoencoder.load(vae_dir).identity["sha256"]


def test_offline_hub_id_is_an_error_saying_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(UserError, match="Hugging Face Hub") as err:
        Autoencoder.load("stabilityai/sd-vae-ft-ema")
    assert "--local-dir DIR" in err.value.diagnostics[0].help
