"""The block and annotation registry. Plain Python: importing it never imports torch.

Blocks register with `@block(...)` on an attrs-style class whose fields are the block's parameters and
whose `infer(**input_shapes)` method is its shape rule; the torch implementation is named by a lazy
"module:Class" string. Annotations register with `@annotation(...)`. Third-party packages add both
through the `diffc.blocks` entry-point group. Specs resolve names only through this registry.
"""
from diffc.registry.core import (
    REGISTRY, AnnotationInfo, BlockInfo, Link, Registry, ShapeError, annotation, block,
)

__all__ = ["REGISTRY", "AnnotationInfo", "BlockInfo", "Link", "Registry", "ShapeError", "annotation", "block"]
