"""Generated forward code: straight-line, sanitised names, bound to the module it belongs to."""
import ast
import copy
from pathlib import Path

import torch

from diffc.compiler import build_model
from diffc.compiler.codegen import Namer

SPECS = Path(__file__).resolve().parents[1] / "specs"


def test_namer_makes_unique_valid_identifiers():
    names = Namer()
    made = [names(t) for t in ("blocks.3.attn", "blocks_3_attn", "3x", "class", "x", "nm", "a-b", "é")]
    assert made == ["blocks_3_attn", "blocks_3_attn_2", "v3x", "class_", "x_", "nm_", "a_b", "_"]
    assert all(m.isidentifier() and m.isascii() for m in made)


def test_forward_is_straight_line_code_with_one_call_per_module_node():
    built = build_model(SPECS / "dit_dtr.diffspec", "DiT_tiny_DTR")
    tree = ast.parse(built.module.forward_source)
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.For, ast.While, ast.ListComp))]
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Subscript)]
    assert len(calls) == len(built.module._node_objects)          # nm[i](...) once per node
    routed = [c for c in calls if any(k.arg == "route_mask" for k in c.keywords)]
    assert len(routed) == 4                                       # the four DiT blocks
    gathers = built.module.forward_source.count("self._route_0[")
    assert gathers == 1                                           # one mask gather per forward and table


def test_a_deep_copy_runs_its_own_weights():
    module = build_model(SPECS / "dit.diffspec", "DiT_tiny").module.eval()
    twin = copy.deepcopy(module)
    with torch.no_grad():
        for p in twin.parameters():
            p.add_(0.1)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([3, 700])
    with torch.no_grad():
        before = module(x, t)[0]
        moved = twin(x, t)[0]
        assert not torch.equal(before, moved)
        assert torch.equal(module(x, t)[0], before)


def test_parameters_replaced_by_assign_are_the_ones_used():
    assigned = build_model(SPECS / "dit.diffspec", "DiT_tiny").module.eval()
    copied = build_model(SPECS / "dit.diffspec", "DiT_tiny").module.eval()
    gen = torch.Generator().manual_seed(0)
    state = {k: 0.1 * torch.randn(v.shape, generator=gen) for k, v in assigned.state_dict().items()}
    assigned.load_state_dict(state, assign=True)             # new Parameter objects, pos_embed included
    copied.load_state_dict(state)                            # copies into the old ones
    x, t = torch.randn(2, 1, 16, 16, generator=gen), torch.tensor([10, 900])
    with torch.no_grad():
        assert torch.equal(assigned(x, t)[0], copied(x, t)[0])
        state["pos_embed"].add_(1.0)                         # the assigned module reads the new tensor
        assert not torch.equal(assigned(x, t)[0], copied(x, t)[0])
