"""torch.compile sees each shipped small model as one graph (no graph break), @stage routing included."""
import pytest
import torch
import torch._dynamo

from diffc.compiler import build_model
from diffc.compiler.runtime import allow_dynamic_stage_rows

from small_models import MODELS, SPECS, inputs


@pytest.mark.slow
@pytest.mark.parametrize("spec, name", MODELS, ids=[m for _, m in MODELS])
def test_forward_is_one_graph(spec, name):
    built = build_model(SPECS / f"{spec}.diffspec", name)
    x, t, cond = inputs(built.interface, torch.Generator().manual_seed(0))
    torch._dynamo.reset()
    with torch._dynamo.config.patch(allow_dynamic_stage_rows()):
        explanation = torch._dynamo.explain(built.module)(x, t, cond)
    assert explanation.graph_break_count == 0, [b.reason for b in explanation.break_reasons]
    assert explanation.graph_count == 1
