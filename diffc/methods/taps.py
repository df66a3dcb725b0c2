"""`@tap(name)`: expose a node's output in the model's aux dict (e.g. EDM2's log-variance u(sigma), Eq. 21)."""
from __future__ import annotations

from diffc.compiler.ir import Wire
from diffc.errors import fail
from diffc.methods import Method
from diffc.registry import annotation, method

FILL = "#fff4b3"


@annotation("tap", targets={"block"}, positional=("name",))
class Tap:
    """Expose a node's output in the model's aux dict (e.g. EDM2's log-variance u(sigma), EDM2 Eq. 21)."""
    name: str


@method("taps", implements=("tap",), after=("mp",))
class TapsMethod(Method):
    """Named outputs for the aux dict (EDM2 Eq. 21's u(sigma) is one): model.taps[name] = the node's output."""

    def lower(self, graph) -> None:
        model = graph.graph["model"]
        for node in graph.nodes.values():
            for use in (a for a in node["ir"].annotations if a.name == "tap"):
                if use.params.name in model.taps:
                    raise fail(f"tap '{use.params.name}' is defined twice", use.loc)
                model.taps[use.params.name] = Wire(node["ir"])

    def node_fill(self, node) -> str | None:
        return FILL if any(u.name == "tap" for u in node.annotations) else None

    def legend(self):
        return "tap", FILL, "@tap: output exposed as aux"

    def aux(self, gen, key: str, tap) -> str | None:
        if isinstance(tap, tuple) or not any(u.name == "tap" and u.params.name == key for u in tap.node.annotations):
            return None                                                      # another method's entry
        return gen.values[(tap.node.name, tap.port)]
