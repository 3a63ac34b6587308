"""Fusion and scheduling of one block (the program's top level or a loop body), for every backend;
and the `fuse` pass, which applies it to every block of a final Program (a kernel program).

Elementwise nodes are grouped into fused loops. A group has an iteration shape; its *roots* have
that shape and are stored; its other members are *inlined*: computed as scalars where a member
reads them (possibly through views such as split, at a shifted index). A node is inlined when
everything that reads it is in one group and reads it without broadcasting; otherwise it is a
root, joining a group of its shape (one its readers are in, else the latest) when that makes no
cycle of units. A group's roots all have one depth (the number of kernels on the longest path to
them; inlined members may be of depth 0), which keeps that check to one layer of the graph. Units
(groups and other nodes) are then ordered topologically, earliest first.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from ir import Node, PassError, Program
from ir.kernel_program import Block as KBlock
from ir.kernel_program import KernelProgram
from ir.kernel_program import Unit as KUnit
from ir.ops import get_op

BOUND = ("input", "constant")  # values a block is given, not computed
VIEWS: dict[str, bool] = {  # ops that only re-index their operand -> whether distinct indices read distinct elements
    "split": True,
    "slice": True,
    "step": True,
    "transpose": True,
    "expand_dims": True,
    "broadcast_to": False,
}


@dataclass(eq=False)
class Group:
    """A fused loop over `shape`: `roots` are stored, other `members` are inlined."""

    shape: tuple
    depth: int = 0  # every root's depth (see _depths); inlined members may be of depth 0
    roots: list[Node] = field(default_factory=list)
    members: set[int] = field(default_factory=set)
    nodes: list[Node] = field(default_factory=list)  # every member, in order
    lo: int = 1 << 60  # smallest and largest position of a member
    hi: int = -1

    def add(self, n: Node, pos: int, root: bool) -> None:
        self.members.add(id(n))
        self.nodes.insert(0, n)
        if root:
            self.roots.insert(0, n)  # nodes arrive in reverse order
        self.lo, self.hi = min(self.lo, pos), max(self.hi, pos)


@dataclass(eq=False)
class Unit:
    """One step of a block's schedule: a fused group, or a single node (kernel, loop or item)."""

    group: Group | None = None
    node: Node | None = None


@dataclass
class BlockPlan:
    units: list[Unit]
    group_of: dict[int, Group]  # id(elementwise node) -> its group
    users: dict[int, list[Node]]
    order: dict[int, int]  # id(node) -> index of the unit that computes it (views: of their base)


def kind(n: Node) -> str:
    """'bound' (input, constant: a value given), 'loop', 'item', 'scalar' (an elementwise op, fused),
    'view' (re-indexes its operand, computes nothing) or 'kernel' (any other op: a unit of its own)."""
    if n.op in BOUND:
        return "bound"
    if n.op in ("loop", "item"):
        return n.op
    if n.op in VIEWS:
        return "view"
    return "scalar" if get_op(n.op).kind == "elementwise" else "kernel"


def plan_block(nodes: list[Node], bound: set[int], results: list[Node]) -> BlockPlan:
    """Group and order `nodes` (operands before users); `bound` values are given, `results` leave the block."""
    pos = {id(n): i for i, n in enumerate(nodes)}
    users: dict[int, list[Node]] = {id(n): [] for n in nodes}
    for n in nodes:
        for u in n.inputs:
            if id(u.node) in users and n not in users[id(u.node)]:
                users[id(u.node)].append(n)
    leaving = {id(r) for r in results}
    kinds = {id(n): "bound" if id(n) in bound else kind(n) for n in nodes}
    depth = _depths(nodes, kinds)
    group_of: dict[int, Group] = {}
    last_group: dict[tuple, Group] = {}  # (shape, depth) -> the latest group made

    def reads(n: Node) -> tuple[list[tuple[Node, bool, bool]], bool]:
        """Elementwise readers of n (through views): (reader, injective read, direct same-shape read); and
        whether n must exist as an array (a non-elementwise reader, or it leaves the block)."""
        out, needs = [], id(n) in leaving
        stack = [(n, True)]
        while stack:
            m, inj = stack.pop()
            for u in users[id(m)]:
                k = kinds[id(u)]
                if k == "view":
                    needs |= id(u) in leaving
                    stack.append((u, inj and VIEWS[u.op]))
                elif k == "scalar":
                    same = u.type.shape == m.type.shape and not (
                        u.op == "select_active" and any(v.node is m for v in u.inputs[:2]) or u.op == "philox_mask"
                    )
                    out.append((u, inj and same, m is n and same))
                else:
                    needs = True
        return out, needs

    def layer_neighbours(x: Node, forward: bool, d: int) -> list[Node]:
        """Elementwise nodes of depth d next to x (views looked through): only they can close a cycle."""
        out, stack = [], [x]
        while stack:
            m = stack.pop()
            nxt = users[id(m)] if forward else [u.node for u in m.inputs if id(u.node) in pos]
            for y in nxt:
                if kinds[id(y)] == "view":
                    stack.append(y)
                elif kinds[id(y)] == "scalar" and depth[id(y)] == d:
                    out.append(y)
        return out

    def path_free(n: Node, g: Group) -> bool:
        """Merging n into g makes no cycle of units: no path from n to g, or back, through another unit.
        Groups hold nodes of one depth and any other unit leads to a greater depth, so a cycle could
        only run through elementwise nodes of g's depth; a group counts as one unit (all members)."""
        d = depth[id(n)]
        for forward in (True, False):
            todo = [y for y in layer_neighbours(n, forward, d) if group_of.get(id(y)) is not g]
            seen = {id(y) for y in todo}
            while todo:
                y = todo.pop()
                h = group_of.get(id(y))
                for m in h.nodes if h is not None else [y]:
                    for z in layer_neighbours(m, forward, d):
                        if group_of.get(id(z)) is g:
                            return False
                        if id(z) not in seen:
                            seen.add(id(z))
                            todo.append(z)
        return True

    for n in reversed(nodes):
        if kinds[id(n)] != "scalar":
            continue
        d = depth[id(n)]
        rd, needs = reads(n)
        groups = {id(group_of[id(u)]): group_of[id(u)] for u, _, _ in rd}
        if not needs and len(groups) == 1 and all(inj for _, inj, _ in rd):
            (g,) = groups.values()
            # A shallower node read only inside g can always be inlined: nothing leads from g back
            # to it (a group is left only through its roots, all of the group's depth). Only depth
            # 0 (inputs only, e.g. `x@W + b`): deeper ones would move between an unrolled step's
            # copies and keep their kernels from being one function.
            if (d == 0 < g.depth) or (g.depth == d and path_free(n, g)):
                g.add(n, pos[id(n)], root=False)
                group_of[id(n)] = g
                continue
        shape = n.type.shape
        candidates = [group_of[id(u)] for u, _, direct in rd if direct and group_of[id(u)].shape == shape]
        if (shape, d) in last_group:
            candidates.append(last_group[(shape, d)])
        g = next((c for c in candidates if c.depth == d and path_free(n, c)), None)
        if g is None:
            g = Group(shape, depth=d)
            last_group[(shape, d)] = g
        g.add(n, pos[id(n)], root=True)
        group_of[id(n)] = g

    return _schedule(nodes, kinds, group_of, users, pos)


def _depths(nodes: list[Node], kinds: dict[int, str]) -> dict[int, int]:
    """How many non-elementwise units (kernels, loops, items) lie on the longest path to each node."""
    depth: dict[int, int] = {}
    for n in nodes:
        d = 0
        for u in n.inputs:
            o = u.node
            if id(o) in depth:
                d = max(d, depth[id(o)] + (kinds[id(o)] in ("kernel", "loop", "item")))
        depth[id(n)] = d
    return depth


def _schedule(nodes, kinds, group_of, users, pos) -> BlockPlan:
    units: dict[int, Unit] = {}  # id(group or node) -> unit
    owner: dict[int, int] = {}  # id(node) -> key of the unit computing it
    for n in nodes:
        k = kinds[id(n)]
        if k == "scalar":
            g = group_of[id(n)]
            units.setdefault(id(g), Unit(group=g))
            owner[id(n)] = id(g)
        elif k in ("kernel", "loop", "item"):
            units[id(n)] = Unit(node=n)
            owner[id(n)] = id(n)
        elif k == "view" and id(n.inputs[0].node) in owner:
            owner[id(n)] = owner[id(n.inputs[0].node)]
    deps: dict[int, set[int]] = {key: set() for key in units}
    first: dict[int, int] = {}
    for n in nodes:
        if id(n) not in owner or kinds[id(n)] == "view":
            continue
        key = owner[id(n)]
        first[key] = min(first.get(key, pos[id(n)]), pos[id(n)])
        for u in n.inputs:
            src = owner.get(id(u.node))
            if src is not None and src != key:
                deps[key].add(src)
    waiting = {key: len(d) for key, d in deps.items()}
    after: dict[int, list[int]] = {key: [] for key in units}
    for key, d in deps.items():
        for s in d:
            after[s].append(key)
    ready = [(first[key], key) for key, c in waiting.items() if c == 0]
    heapq.heapify(ready)
    order: list[Unit] = []
    index: dict[int, int] = {}
    while ready:
        _, key = heapq.heappop(ready)
        index[key] = len(order)
        order.append(units[key])
        for nxt in after[key]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                heapq.heappush(ready, (first[nxt], nxt))
    if len(order) != len(units):
        raise PassError("fuse: internal error: fused units depend on each other in a cycle")
    return BlockPlan(order, group_of, users, {nid: index[key] for nid, key in owner.items()})


def count_uses(nodes: list[Node], results: list[Node]) -> dict[int, int]:
    """id(node) -> how many inputs and results of a block refer to it."""
    uses: dict[int, int] = {}
    for n in nodes:
        for u in n.inputs:
            uses[id(u.node)] = uses.get(id(u.node), 0) + 1
    for r in results:
        uses[id(r)] = uses.get(id(r), 0) + 1
    return uses


def identity_members(g: Group, plan: BlockPlan, direct: Callable[[Node, Node], bool]) -> set[int]:
    """Members of `g` computed only at the index of the thread (or loop iteration) that stores: of
    the group's shape, and read inside the group only `direct`ly (at the reader's own index) by such
    members, never through a view outside it. The carried-state-in-place rules of both generators."""
    ident = {id(m) for m in g.nodes if m.type.shape == g.shape}  # type: ignore[union-attr]
    changed = True
    while changed:
        changed = False
        for m in g.nodes:
            if id(m) not in ident:
                continue
            for u in plan.users.get(id(m), []):
                inside = id(u) in g.members
                if (inside and (id(u) not in ident or not direct(u, m))) or (not inside and kind(u) == "view"):
                    ident.discard(id(m))
                    changed = True
                    break
    return ident


# ---------------------------------------------------------------- the fuse pass: Program -> kernel program

GEMMS = ("matmul", "matmul_tn")


def fuse(prog: Program) -> KernelProgram:
    """The `fuse` pass: `prog` (a final Program) as a kernel program of units, every block planned
    by `plan_block` (the same grouping and order both Numba printers use)."""
    given = list(prog.inputs) + [n for n in prog.nodes() if n.op == "constant"]
    return KernelProgram(prog, _fuse_block(prog.nodes(), given, list(prog.outputs.values())))


def _fuse_block(nodes: list[Node], given: list[Node], results: list[Node]) -> KBlock:
    ids = {id(n) for n in given}
    bp = plan_block(nodes, ids, results)
    pos = {id(n): k for k, n in enumerate(nodes)}
    views: dict[int, list[Node]] = {}  # schedule index of the base's unit (-1: given) -> views
    for n in nodes:
        if id(n) not in ids and kind(n) == "view":
            views.setdefault(bp.order.get(id(n), -1), []).append(n)
    units = [_view(v) for v in views.get(-1, [])]
    for k, unit in enumerate(bp.units):
        units.append(_unit(unit, views.get(k, [])))
        if unit.group is not None:  # views of a group's members are its own index arithmetic
            units[-1].nodes = sorted(units[-1].nodes + views.get(k, []), key=lambda n: pos[id(n)])
        else:
            units += [_view(v) for v in views.get(k, [])]
    return KBlock(list(given), units, list(results), list(nodes), schedule=bp)


def _view(n: Node) -> KUnit:
    return KUnit("view", [n], [n], [n.inputs[0].node])


def _unit(unit: Unit, views: list[Node]) -> KUnit:
    if unit.group is not None:
        g = unit.group
        inside = {id(m) for m in g.nodes} | {id(m) for m in views}
        reads: dict[int, Node] = {}
        for m in g.nodes:
            for x in m.inputs:
                if id(x.node) not in inside:
                    reads.setdefault(id(x.node), x.node)
        return KUnit("fused", list(g.nodes), list(g.roots), list(reads.values()), shape=g.shape)
    n = unit.node
    assert n is not None
    operands = list({id(x.node): x.node for x in n.inputs}.values())
    if n.op == "loop":
        body = n.attrs["body"]
        inner = body.nodes()
        given = list(body.params) + [m for m in inner if m.op == "constant"]
        return KUnit("loop", [n], [n], operands, body=_fuse_block(inner, given, list(body.results)))
    return KUnit("gemm" if n.op in GEMMS else n.op if n.op == "item" else "kernel", [n], [n], operands)


__all__ = [
    "BOUND",
    "GEMMS",
    "VIEWS",
    "BlockPlan",
    "Group",
    "Unit",
    "count_uses",
    "fuse",
    "identity_members",
    "kind",
    "plan_block",
]
