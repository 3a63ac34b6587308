"""The IR's hand-written graph walks against networkx's, on a T=1,600 full unroll of the LSTM example.

    PYTHONPATH=. python benchmarks/graph_algorithms.py [--T 1600] [--repeat 5] [--grad]

For each algorithm: the hand-written walk as rnncomp runs it, and networkx doing the same job on a
DiGraph of the same nodes (built from the IR each time, as a pass would have to; the build time is
also shown on its own). Medians of `--repeat`, interleaved. `--grad` uses the backward program.
- topological order (ir.graph.topo_order: every Program and Cell orders its nodes with it; it also
  finds a delay-0 cycle, the algebraic-loop error): vs nx.topological_sort / nx.find_cycle;
- the unit schedule (passes/fuse.py _schedule: a topological order of the units taking the earliest
  node first, by a heap): vs nx.lexicographical_topological_sort(key=position);
- reachability (passes/simplify.py _live_body, passes/plan.py last_use: a worklist of the nodes an
  output needs): vs nx.ancestors.
"""

from __future__ import annotations

import argparse
import heapq
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "examples"))

import networkx as nx  # noqa: E402

import rnncomp as rc  # noqa: E402
from ir import topo_order  # noqa: E402


def program(T: int, grad: bool):
    from lstm import lstm

    prog = rc.compile(lstm, length="T", unroll="full", backend="numpy", dtype="float32")
    stages = prog.stages(grad=grad, T=T)
    return list(stages.values())[-1]


def digraph(nodes) -> nx.DiGraph:
    """The delay-0 edges among `nodes`, operand -> user, keyed by id."""
    g = nx.DiGraph()
    g.add_nodes_from(id(n) for n in nodes)
    g.add_edges_from((id(u.node), id(n)) for n in nodes for u in n.inputs if not u.delay)
    return g


def hand_schedule(nodes) -> list[int]:
    """fuse._schedule's loop on one unit per node: Kahn's algorithm, earliest position first."""
    pos = {id(n): i for i, n in enumerate(nodes)}
    waiting = {id(n): len({id(u.node) for u in n.inputs if id(u.node) in pos}) for n in nodes}
    after: dict[int, list[int]] = {id(n): [] for n in nodes}
    for n in nodes:
        for s in {id(u.node) for u in n.inputs if id(u.node) in pos}:
            after[s].append(id(n))
    ready = [(pos[k], k) for k, c in waiting.items() if c == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, k = heapq.heappop(ready)
        order.append(k)
        for m in after[k]:
            waiting[m] -= 1
            if waiting[m] == 0:
                heapq.heappush(ready, (pos[m], m))
    return order


def hand_reach(roots) -> set[int]:
    """simplify._live_body's worklist: every node the roots need."""
    stack, seen = list(roots), set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        stack.extend(u.node for u in n.inputs)
    return seen


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--T", type=int, default=1600)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--grad", action="store_true")
    a = ap.parse_args()
    prog = program(a.T, a.grad)
    nodes = prog.nodes()
    results = list(prog.outputs.values())
    pos = {id(n): i for i, n in enumerate(nodes)}
    g = digraph(nodes)
    last = results[0]

    # each job: (hand-written, networkx including the graph's build)
    jobs = {
        "topological order": (
            lambda: topo_order(reversed(results)),
            lambda: list(nx.topological_sort(digraph(nodes))),
        ),
        "cycle check (acyclic: a full walk)": (
            lambda: topo_order(reversed(results)),
            lambda: nx.is_directed_acyclic_graph(digraph(nodes)),
        ),
        "schedule, earliest first": (
            lambda: hand_schedule(nodes),
            lambda: list(nx.lexicographical_topological_sort(digraph(nodes), key=pos.__getitem__)),
        ),
        "reachability from an output": (
            lambda: hand_reach([last]),
            lambda: nx.ancestors(digraph(nodes), id(last)),
        ),
    }
    assert len(hand_reach([last])) == len(nx.ancestors(g, id(last))) + 1
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(a.repeat):
        for name, (hand, lib) in jobs.items():
            for who, fn in (("hand", hand), ("networkx", lib), ("build", lambda: digraph(nodes))):
                t0 = time.perf_counter()
                fn()
                times.setdefault((name, who), []).append(time.perf_counter() - t0)
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    what = "backward program" if a.grad else "forward program"
    print(
        f"LSTM full unroll T={a.T}, {what}: {len(nodes)} nodes, {g.number_of_edges()} edges; loadavg {' '.join(load)}"
    )
    print(f"{'algorithm':38} | {'hand-written ms':>15} | {'networkx ms':>11} | {'of it build':>11} | ratio nx/hand")
    for name in jobs:
        h, n, b = (1e3 * statistics.median(times[(name, w)]) for w in ("hand", "networkx", "build"))
        print(f"{name:38} | {h:15.1f} | {n:11.1f} | {b:11.1f} | {n / h:6.2f}")


if __name__ == "__main__":
    main()
