"""The block, annotation and method registry. Plain Python: importing it never imports torch.

Blocks register with `@block(...)` on an attrs-style class whose fields are the block's parameters and
whose `infer(**input_shapes)` method is its shape rule; the torch implementation is named by a lazy
"module:Class" string. Annotations register with `@annotation(...)`; the method that gives an annotation
its meaning registers with `@method(...)` (diffc.methods). Third-party packages add all three through the
`diffc.blocks` or `diffc.methods` entry-point groups. Specs resolve names only through this registry.
"""
from diffc.registry.core import (
    REGISTRY, AnnotationInfo, BlockInfo, Link, MethodInfo, Registry, ShapeError, annotation, block, method,
)

__all__ = ["REGISTRY", "AnnotationInfo", "BlockInfo", "Link", "MethodInfo", "Registry", "ShapeError", "annotation",
           "block", "method"]
