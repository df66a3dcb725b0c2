"""diffc: a declarative language and compiler for diffusion models."""
__version__ = "0.1.0"
