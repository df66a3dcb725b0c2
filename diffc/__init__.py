"""diffc: a declarative language and compiler for diffusion models."""
__version__ = "0.1.0"


def import_weights(target, path_or_state, weights: str = "ema"):
    """Load reference weights (a path or a dict; "ema" or "model" of a training checkpoint) into a compiled
    module or BuiltModel, key for key (diffc.weights)."""
    from diffc.weights import import_weights as _import
    return _import(target, path_or_state, weights)
