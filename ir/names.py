"""Print-time names: a node's own name if it has one, else `%k` numbered in evaluation order.

The printer, the verifier's messages and the CLI all use this, so an error names a node exactly
as the printed IR shows it.
"""

from __future__ import annotations

from collections.abc import Iterable

from .graph import Node


def name_nodes(nodes: Iterable[Node], taken: Iterable[str] = ()) -> dict[int, str]:
    """Map id(node) -> display name; unnamed nodes get `%0`, `%1`, ... in the given order."""
    names: dict[int, str] = {}
    used = set(taken)
    k = 0
    for n in nodes:
        if id(n) in names:
            continue
        if n.name is not None and n.name not in used:
            names[id(n)] = n.name
            used.add(n.name)
            continue
        while f"%{k}" in used:  # a node may carry a name like "%0" itself
            k += 1
        names[id(n)] = f"%{k}"
        used.add(names[id(n)])
        k += 1
    return names


def label(node: Node, names: dict[int, str] | None = None) -> str:
    """`h (tanh)` or `%3 (add)`: how messages point at a node."""
    n = (names or {}).get(id(node)) or node.name or "%?"
    return f"{n} ({node.op})"
