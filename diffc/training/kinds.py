"""Name -> class tables for the recipe's `kind:` fields (objectives, weightings, noise samplers)."""
from __future__ import annotations


def registering(table: dict):
    """A decorator factory: `@register("name")` stores the class in `table` and sets `cls.name`."""
    def register(name: str):
        def decorate(cls):
            table[name] = cls
            cls.name = name
            return cls
        return decorate
    return register
