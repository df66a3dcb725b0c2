"""The toy autoencoder and images of examples/latent_training (a tiny random diffusers AutoencoderKL, 4x
downsampling, 4 latent channels; two classes of 16x16 RGB images), built by the tests themselves."""
import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "latent_training"
_spec = importlib.util.spec_from_file_location("latent_example_toy_data", EXAMPLE / "make_toy_data.py")
_toy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_toy)
make_tiny_vae, make_image_folder = _toy.make_tiny_vae, _toy.make_image_folder
