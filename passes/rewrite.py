"""Rebuild a Program node by node through a visitor: the shared engine of rewriting passes.

The visitor sees each old node with its already-rewritten operands and returns the node to use
in its place (a new node, an existing one, or the same node if nothing changed). Loop bodies are
rewritten first by `on_region`, so a pass sees a loop whose body is already in its final form.
"""

from __future__ import annotations

from collections.abc import Callable

from ir import LoopView, Node, Program, Region, Use

Visit = Callable[[Node, list[Node]], Node]


def rebuild(node: Node, operands: list[Node], **changes) -> Node:
    """A copy of `node` over new operands (and changed fields), or `node` itself if nothing changed."""
    same = all(u.node is o for u, o in zip(node.inputs, operands)) and len(operands) == len(node.inputs)
    if same and not changes:
        return node
    attrs = changes.pop("attrs", node.attrs)
    return Node(
        changes.pop("op", node.op),
        [Use(o) for o in operands],
        attrs,
        changes.pop("type", node.type),
        changes.pop("name", node.name),
    )


def rewrite_region(region: Region, visit: Visit, recurse: bool = True) -> Region:
    nodes = region.nodes()
    on_region = (lambda r: rewrite_region(r, visit, recurse)) if recurse else None
    new = _rewrite(nodes, region.params, visit, on_region)
    results = [new[id(r)] for r in region.results]
    if all(a is b for a, b in zip(results, region.results)):
        return region
    return Region(region.params, results)


def rewrite_program(prog: Program, visit: Visit, recurse: bool = True) -> Program:
    """Apply `visit` to every node of `prog` (and of its loop bodies when `recurse`)."""
    nodes = prog.nodes()
    on_region = (lambda r: rewrite_region(r, visit, recurse)) if recurse else None
    new = _rewrite(nodes, prog.inputs, visit, on_region)
    return Program(prog.name, prog.inputs, prog.roles, {k: new[id(n)] for k, n in prog.outputs.items()})


def _rewrite(nodes: list[Node], params: list[Node], visit: Visit, on_region) -> dict[int, Node]:
    new: dict[int, Node] = {id(p): p for p in params}
    for n in nodes:
        if id(n) in new:
            continue
        ops = [new[id(u.node)] for u in n.inputs]
        target = n
        if n.op == "loop" and on_region is not None:
            body = on_region(n.attrs["body"])
            if body is not n.attrs["body"]:
                target = LoopView(n).with_body(body)
        new[id(n)] = visit(target, ops)
    return new


def inline_program(prog: Program, replacements: dict[str, Node]) -> dict[str, Node]:
    """`prog`'s outputs wired to other nodes in place of the inputs named in `replacements`.

    Rewires `prog`'s own nodes (no copy: a fully unrolled program is large), so `prog` must be a
    fresh one that nothing else holds; it is not usable afterwards.
    """
    repl = {id(p): replacements[p.name] for p in prog.inputs if p.name in replacements}  # type: ignore[index]
    for n in prog.nodes():
        if any(id(u.node) in repl for u in n.inputs):
            n.inputs = tuple(Use(repl.get(id(u.node), u.node), u.delay) for u in n.inputs)
    return {k: repl.get(id(n), n) for k, n in prog.outputs.items()}
