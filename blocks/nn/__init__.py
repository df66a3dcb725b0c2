"""Torch implementations of registered blocks. Every class is built as `Cls(params, in_shapes, out_shapes)`
(shapes exclude the batch dimension) and called with its tensor inputs in declared order; "routable"
blocks also take `route_mask` ([N, C] or None), "context" blocks take `ctx` (diffc.compiler.runtime.RunContext).
Blocks tagged "param" are parameter nodes: `Cls.make(params, out_shape)` returns the nn.Parameter itself."""
