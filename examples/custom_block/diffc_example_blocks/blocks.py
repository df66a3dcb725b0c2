"""Registration: the block's name, inputs, parameters (attrs fields) and shape rule. No torch here, so
`diffc check` and `diffc blocks` stay fast; the module named by `module=` is imported only to build a model."""
import attrs

from diffc.registry import ShapeError, block


@block("squeeze_excite", inputs=("x",), module="diffc_example_blocks.nn:SqueezeExcite")
class SqueezeExcite:
    """Squeeze-and-excitation channel gating (Hu et al., CVPR 2018): x * sigmoid(W2 relu(W1 mean_hw(x)))."""
    reduction: int = attrs.field(default=4, validator=attrs.validators.gt(0))

    def infer(self, x):
        if len(x) != 3:
            raise ShapeError(f"squeeze_excite needs an image [C, H, W], got {list(x)}", "x")
        if x[0] < self.reduction:
            raise ShapeError(f"reduction {self.reduction} is larger than the {x[0]} channels", "x")
        return x
