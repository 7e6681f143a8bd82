"""Reading the Bokeh JSON items that embedded charts carry (tests only)."""

from __future__ import annotations

from typing import Any


def item_objects(node: Any) -> list[dict]:
    """Every serialised Bokeh object (``{"type": "object", "attributes": ...}``) inside ``node``."""
    found: list[dict] = []
    if isinstance(node, dict):
        if node.get("type") == "object" and "attributes" in node:
            found.append(node)
        for value in node.values():
            found.extend(item_objects(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(item_objects(value))
    return found
