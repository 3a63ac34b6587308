"""The JSON form of a Cell: `cell_to_json(cell) -> dict` and `cell_from_json(d) -> Cell`.

A plain, strict-JSON document (no NaN literals; non-finite floats are the strings "nan", "inf",
"-inf"). Nodes are listed in evaluation order, each with an `id`; every reference is an id:

    {"format": "rnncomp-cell", "version": 1, "name": "elman",
     "seqs": [0], "params": [1, 2],
     "states": [{"name": "h", "type": {"dtype": "f32", "shape": ["B", 8]}}],   # declarations
     "state_defs": [{"state": "h", "node": 4}],                                # values at step t
     "outputs": [{"name": "y", "node": 4}],
     "nodes": [{"id": 0, "op": "seq", "name": "x", "inputs": [], "attrs": {}, "type": {...}},
               {"id": 3, "op": "matmul", "inputs": [{"node": 4, "delay": 1}, {"node": 2, "delay": 0}], ...},
               ...]}

Declarations and definitions are separate lists because their orders may differ (a state can
be defined in another order than it was declared) and a round trip keeps both. A cell with statics
(one value per batch row, the same at every step) lists them under "statics" (absent when none). Reading checks
the structure (missing keys, wrong kinds, unknown or duplicate ids) with a ParseError that says
where, then rebuilds the nodes and runs the verifier. Nothing is ever evaluated.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .dtypes import DType, as_dtype
from .errors import ParseError, RnncompError
from .graph import Cell, Node, Use
from .ops import OPS, check_attr
from .shapes import as_shape
from .types import TensorType, TupleType
from .verify import verify_cell

FORMAT = "rnncomp-cell"
VERSION = 1

_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


# ---------------------------------------------------------------- writing


def type_to_json(t: TensorType | TupleType | None) -> dict | None:
    """`{"dtype": "f32", "shape": ["B", 8]}`; a TupleType is `{"items": [...]}`."""
    if t is None:
        return None
    if isinstance(t, TupleType):
        return {"items": [type_to_json(i) for i in t.items]}
    return {"dtype": str(t.dtype), "shape": list(t.shape)}


def value_to_json(v: Any) -> Any:
    """An attribute value as JSON: dtypes by name, tuples as lists, non-finite floats as strings."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else "nan" if math.isnan(v) else "inf" if v > 0 else "-inf"
    if isinstance(v, DType):
        return str(v)
    if isinstance(v, (tuple, list)):
        return [value_to_json(x) for x in v]
    if isinstance(v, np.generic):
        return value_to_json(v.item())
    raise TypeError(f"an attribute value of type {type(v).__name__} has no JSON form: {v!r}")


def cell_to_json(cell: Cell) -> dict:
    """The cell as a JSON-serialisable dict (see the module docstring)."""
    nodes = cell.nodes()
    index = {id(n): i for i, n in enumerate(nodes)}

    def node_json(i: int, n: Node) -> dict:
        d: dict[str, Any] = {"id": i, "op": n.op}
        if n.name is not None:
            d["name"] = n.name
        d["inputs"] = [{"node": index[id(u.node)], "delay": u.delay} for u in n.inputs]
        d["attrs"] = {k: value_to_json(v) for k, v in n.attrs.items()}
        d["type"] = type_to_json(n.type)
        return d

    statics = {"statics": [index[id(n)] for n in cell.statics]} if cell.statics else {}  # absent when none
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": cell.name,
        "seqs": [index[id(n)] for n in cell.seqs],
        "params": [index[id(n)] for n in cell.params],
        **statics,
        "states": [{"name": k, "type": type_to_json(t)} for k, t in cell.state_types.items()],
        "state_defs": [{"state": k, "node": index[id(n)]} for k, n in cell.states.items()],
        "outputs": [{"name": k, "node": index[id(n)]} for k, n in cell.outputs.items()],
        "nodes": [node_json(i, n) for i, n in enumerate(nodes)],
    }


# ---------------------------------------------------------------- reading


def _fail(where: str, message: str) -> ParseError:
    return ParseError(f"cell JSON: {where}: {message}")


_JSON_KINDS = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
}


def _kind(v: Any) -> str:
    """What JSON calls the value: `an array`, `null`, ..."""
    return "null" if v is None else _JSON_KINDS.get(type(v), type(v).__name__)


def _check(v: Any, kinds: tuple[type, ...], where: str, what: str) -> Any:
    if isinstance(v, bool) and bool not in kinds or not isinstance(v, kinds):
        expected = " or ".join(_JSON_KINDS[k] for k in kinds)
        raise _fail(where, f"{what} must be {expected}, got {_kind(v)} {v!r}")
    return v


def _get(d: dict, key: str, kinds: tuple[type, ...], where: str) -> Any:
    """d[key], which must exist and be one of `kinds`; the error names the place, the key and what it found."""
    if key not in d:
        raise _fail(where, f"missing key {key!r}")
    return _check(d[key], kinds, where, repr(key))


def _object(v: Any, where: str) -> dict:
    return _check(v, (dict,), where, "the entry")


def type_from_json(d: Any, where: str) -> TensorType | TupleType | None:
    """Inverse of `type_to_json`; the dtype and dims are checked as a declaration's would be."""
    if d is None:
        return None
    d = _object(d, where)
    if "items" in d:
        items = _get(d, "items", (list,), where)
        return TupleType(tuple(type_from_json(t, f"{where}.items[{i}]") for i, t in enumerate(items)))  # type: ignore[misc]
    dtype = _get(d, "dtype", (str,), where)
    shape = _get(d, "shape", (list,), where)
    try:
        return TensorType(as_dtype(dtype), as_shape(shape))
    except RnncompError as e:
        raise _fail(where, str(e)) from None


def _decode_floats(v: Any) -> Any:
    if isinstance(v, list):
        return [_decode_floats(x) for x in v]
    return _NONFINITE.get(v, v) if isinstance(v, str) else v


def _attrs_from_json(op: str, raw: dict) -> dict[str, Any]:
    """Attributes back to their IR values (dtype names, axes tuples, frozen constants); no defaults added.

    A value its declaration rejects is kept as it is: the verifier then names the node and the attribute.
    """
    decl = OPS[op].attrs if op in OPS else {}
    out: dict[str, Any] = {}
    for key, v in raw.items():
        v = tuple(v) if isinstance(v, list) else v
        if key in decl:
            try:
                v = check_attr(op, key, decl[key].kind, _decode_floats(raw[key]))
            except RnncompError:
                pass
        out[key] = v
    return out


def cell_from_json(d: Any) -> Cell:
    """Rebuild a cell from `cell_to_json`'s form and verify it; ParseError for a malformed document."""
    d = _object(d, "top level")
    if d.get("format", FORMAT) != FORMAT:
        raise _fail("top level", f"'format' is {d['format']!r}, expected {FORMAT!r}")
    if d.get("version", VERSION) != VERSION:
        raise _fail("top level", f"'version' is {d['version']!r}; this rnncomp reads version {VERSION}")
    name = _get(d, "name", (str,), "top level")
    where = f"cell {name!r}"
    raw_nodes = _get(d, "nodes", (list,), where)

    # Pass 1: one Node per entry, so inputs may refer forward (a state read at t-1 is defined later).
    nodes: dict[Any, Node] = {}
    entries: list[tuple[str, dict, Node]] = []
    for i, raw in enumerate(raw_nodes):
        at = f"{where}, nodes[{i}]"
        raw = _object(raw, at)
        nid = _get(raw, "id", (int, str), at)
        at = f"{where}, node id {nid!r}"
        if nid in nodes:
            raise _fail(at, "id is used by two nodes")
        op = _get(raw, "op", (str,), at)
        node_name = raw.get("name")
        if node_name is not None:
            _check(node_name, (str,), at, "'name'")
        attrs = _attrs_from_json(op, _object(raw.get("attrs", {}), f"{at}, attrs"))
        node = Node(op, (), attrs, type_from_json(raw.get("type"), f"{at}, type"), node_name)
        nodes[nid] = node
        entries.append((at, raw, node))

    def ref(v: Any, at: str) -> Node:
        if isinstance(v, bool) or not isinstance(v, (int, str)) or v not in nodes:
            raise _fail(at, f"refers to node id {v!r}, which no entry of 'nodes' has")
        return nodes[v]

    # Pass 2: wire the inputs.
    for at, raw, node in entries:
        uses = []
        for k, u in enumerate(_check(raw.get("inputs", []), (list,), at, "'inputs'")):
            u = _object(u, f"{at}, inputs[{k}]")
            delay = _get(u, "delay", (int,), f"{at}, inputs[{k}]") if "delay" in u else 0
            uses.append(Use(ref(_get(u, "node", (int, str), f"{at}, inputs[{k}]"), f"{at}, inputs[{k}]"), delay))
        node.inputs = tuple(uses)

    def sources(key: str, op: str) -> list[Node]:
        out = []
        for k, v in enumerate(_get(d, key, (list,), where) if key in d or op != "static" else []):
            n = ref(v, f"{where}, {key}[{k}]")
            if n.op != op:
                raise _fail(f"{where}, {key}[{k}]", f"node id {v!r} is a {n.op} node, expected a {op} node")
            out.append(n)
        return out

    def named(key: str, name_key: str) -> dict[str, Node]:
        out: dict[str, Node] = {}
        for k, e in enumerate(_get(d, key, (list,), where)):
            at = f"{where}, {key}[{k}]"
            e = _object(e, at)
            label = _get(e, name_key, (str,), at)
            if label in out:
                raise _fail(at, f"{label!r} is listed twice")
            out[label] = ref(_get(e, "node", (int, str), at), at)
        return out

    seqs, params = sources("seqs", "seq"), sources("params", "param")
    state_types: dict[str, TensorType] = {}
    for k, e in enumerate(_get(d, "states", (list,), where)):
        at = f"{where}, states[{k}]"
        e = _object(e, at)
        sname = _get(e, "name", (str,), at)
        if sname in state_types:
            raise _fail(at, f"state {sname!r} is declared twice")
        state_types[sname] = type_from_json(_get(e, "type", (dict,), at), f"{at}, type")  # type: ignore[assignment]
    statics = sources("statics", "static")
    cell = Cell(name, seqs, params, state_types, named("state_defs", "state"), named("outputs", "name"), statics)

    verify_cell(cell)
    reached = {id(n) for n in cell.nodes()}
    for at, _, node in entries:
        if id(node) not in reached:
            raise _fail(at, "the node is used by no state and no output (nor listed in 'seqs', 'params' or 'statics')")
    return cell


__all__ = ["cell_from_json", "cell_to_json", "type_from_json", "type_to_json", "value_to_json"]
