"""diffc: a declarative language and compiler for diffusion models."""
__version__ = "0.1.0"


def import_weights(module, path_or_state):
    """Load a reference state_dict (a path or a dict) into a compiled module, key for key."""
    from diffc.weights import import_weights as _import
    return _import(module, path_or_state)
