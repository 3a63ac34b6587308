"""The JSON form (round trip, strict JSON, every structural error) and the DOT drawing (well-formed, delays dashed)."""

import copy
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

import rnncomp as rc
from ir import Cell, ParseError, UnknownOpError, VerifyError
from ir.dot import DotWriter, cell_to_dot, quote
from ir.json_form import cell_from_json, cell_to_json, value_to_json
from rnncomp import Param, Seq, State
from rnncomp.cli import load_cells

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ["elman", "lstm", "gru", "three_node", "narx", "stacked_lstm"]


# ---------------------------------------------------------------- cells


def lstm() -> Cell:
    @rc.cell
    def lstm(x: Seq["B", 4], h: State["B", 8], c: State["B", 8], W: Param[4, 32], U: Param[8, 32], b: Param[32]):  # noqa: F821
        i, f, g, o = rc.split(x @ W + h @ U + b, 4)
        c = rc.sigmoid(f) * c + rc.sigmoid(i) * rc.tanh(g)
        h = rc.sigmoid(o) * rc.tanh(c)
        return {"c": c, "h": h, "y": h}  # defined in another order than declared

    return lstm


def three_node() -> Cell:
    g = rc.Graph("three_node")
    x = g.seq("x", ("B", 4))
    W = g.param("W", (4, 8))
    a, b, c = (g.state(n, ("B", 8)) for n in "abc")
    b.define(rc.sigmoid(a + b.prev(2)))
    a.define(rc.tanh(x @ W + c.prev(1)))
    c.define(rc.relu(a - b.prev(1)))
    g.output("y", c)
    return g.build()


def odd_attrs() -> Cell:
    """Constants with infinities, dtype and axes attributes, f64, a seq read two steps back."""
    g = rc.Graph("odd")
    x = g.seq("x", ("B", 3), "f64")
    h = g.state("h", ("B", 3), "f64")
    k = rc.constant([[math.inf, -math.inf, 0.5]], "f64")
    v = rc.where(x.prev(2), k, h.prev(1)) * 2.0
    h.define(rc.cast(rc.cast(v, "f32"), "f64") + rc.sum(x, axis=(1,), keepdims=True))
    g.output("s", rc.log_softmax(h, axis=1))
    g.output("p", rc.slice(rc.concat([h, x], axis=1), 1, 4, axis=1))
    return g.build()


INLINE = {"lstm": lstm, "three_node": three_node, "odd": odd_attrs}


def example_cells() -> list[tuple[str, Cell]]:
    out = []
    for name in EXAMPLES:
        out += [(f"{name}.py:{var}", cell) for var, cell in load_cells(ROOT / "examples" / f"{name}.py")]
    return out


def roundtrip(cell: Cell) -> Cell:
    text = json.dumps(cell_to_json(cell), allow_nan=False)  # strict JSON: no NaN/Infinity literals
    return cell_from_json(json.loads(text))


# ---------------------------------------------------------------- JSON round trip


@pytest.mark.parametrize("make", INLINE.values(), ids=INLINE.keys())
def test_json_round_trip_inline(make):
    cell = make()
    back = roundtrip(cell)
    assert back == cell
    assert cell_to_json(back) == cell_to_json(cell)


def test_json_round_trip_examples():
    cells = example_cells()
    assert cells, "the examples define no cells"
    for where, cell in cells:
        assert roundtrip(cell) == cell, where


def test_json_keeps_declaration_and_definition_order():
    c = lstm()  # the DSL defines states in declaration order; a hand-built cell may not
    cell = Cell(c.name, c.seqs, c.params, c.state_types, {"c": c.states["c"], "h": c.states["h"]}, c.outputs)
    d = cell_to_json(cell)
    assert [s["name"] for s in d["states"]] == ["h", "c"]
    assert [s["state"] for s in d["state_defs"]] == ["c", "h"]
    back = roundtrip(cell)
    assert list(back.state_types) == ["h", "c"] and list(back.states) == ["c", "h"]


def test_json_spells_values():
    d = cell_to_json(odd_attrs())
    nodes = {n["op"]: n for n in d["nodes"]}
    assert nodes["seq"] == {
        "id": 0,
        "op": "seq",
        "name": "x",
        "inputs": [],
        "attrs": {},
        "type": {"dtype": "f64", "shape": ["B", 3]},
    }
    consts = [n["attrs"] for n in d["nodes"] if n["op"] == "constant"]
    assert consts == [{"value": [["inf", "-inf", 0.5]], "dtype": "f64"}, {"value": 2.0, "dtype": "f64"}]
    assert nodes["sum"]["attrs"] == {"axis": [1], "keepdims": True}
    assert nodes["where"]["inputs"][0] == {"node": 0, "delay": 2}
    assert {n["attrs"]["to"] for n in d["nodes"] if n["op"] == "cast"} == {"f32", "f64"}


def test_json_nan_constant():
    g = rc.Graph("nan")
    x = g.seq("x", ("B", 2))
    g.output("y", x + rc.constant([math.nan, 1.0]))
    d = cell_to_json(g.build())
    assert [n["attrs"]["value"] for n in d["nodes"] if n["op"] == "constant"] == [["nan", 1.0]]
    back = cell_from_json(json.loads(json.dumps(d, allow_nan=False)))
    (const,) = [n for n in back.nodes() if n.op == "constant"]
    assert math.isnan(const.attrs["value"][0]) and const.attrs["value"][1] == 1.0
    assert cell_to_json(back) == d


def test_json_refuses_values_it_cannot_spell():
    assert value_to_json((np.float32(1.5), np.int64(2), None)) == [1.5, 2, None]
    with pytest.raises(TypeError, match=r"^an attribute value of type object has no JSON form: <object object at"):
        value_to_json(object())


# ---------------------------------------------------------------- JSON errors


def broken(edit) -> str:
    """The ParseError message for the lstm JSON after `edit(d)` changed it."""
    d = copy.deepcopy(cell_to_json(lstm()))
    edit(d)
    with pytest.raises(ParseError) as info:
        cell_from_json(d)
    return str(info.value)


def node_of(d: dict, op: str) -> dict:
    return next(n for n in d["nodes"] if n["op"] == op)


def test_json_top_level_must_be_an_object():
    with pytest.raises(ParseError, match=r"^cell JSON: top level: the entry must be an object, got an array \[\]$"):
        cell_from_json([])


def test_json_missing_key():
    assert broken(lambda d: d.pop("nodes")) == "cell JSON: cell 'lstm': missing key 'nodes'"
    assert broken(lambda d: d.pop("name")) == "cell JSON: top level: missing key 'name'"
    assert broken(lambda d: d["nodes"][4].pop("op")) == "cell JSON: cell 'lstm', node id 4: missing key 'op'"
    assert broken(lambda d: d["outputs"][0].pop("node")) == "cell JSON: cell 'lstm', outputs[0]: missing key 'node'"


def test_json_wrong_kind():
    assert broken(lambda d: d.update(seqs=0)) == "cell JSON: cell 'lstm': 'seqs' must be an array, got an integer 0"
    assert (
        broken(lambda d: d["nodes"][3].update(id=True))
        == "cell JSON: cell 'lstm', nodes[3]: 'id' must be an integer or a string, got a boolean True"
    )
    assert (
        broken(lambda d: d["nodes"][5]["inputs"][0].update(delay="1"))
        == "cell JSON: cell 'lstm', node id 5, inputs[0]: 'delay' must be an integer, got a string '1'"
    )


def test_json_unknown_node_id():
    def edit(d):
        d["nodes"][5]["inputs"][1]["node"] = 99

    assert (
        broken(edit)
        == "cell JSON: cell 'lstm', node id 5, inputs[1]: refers to node id 99, which no entry of 'nodes' has"
    )
    assert (
        broken(lambda d: d["state_defs"][0].update(node=-1))
        == "cell JSON: cell 'lstm', state_defs[0]: refers to node id -1, which no entry of 'nodes' has"
    )


def test_json_duplicate_id():
    assert broken(lambda d: d["nodes"][5].update(id=4)) == "cell JSON: cell 'lstm', node id 4: id is used by two nodes"


def test_json_sources_must_have_their_op():
    assert (
        broken(lambda d: d["seqs"].append(1))
        == "cell JSON: cell 'lstm', seqs[1]: node id 1 is a param node, expected a seq node"
    )


def test_json_names_listed_twice():
    assert (
        broken(lambda d: d["states"].append(d["states"][0]))
        == "cell JSON: cell 'lstm', states[2]: state 'h' is declared twice"
    )
    assert (
        broken(lambda d: d["outputs"].append(d["outputs"][0]))
        == "cell JSON: cell 'lstm', outputs[1]: 'y' is listed twice"
    )


def test_json_bad_type():
    def edit(d):
        d["nodes"][0]["type"]["dtype"] = "f16"

    text = broken(edit)
    assert text.startswith("cell JSON: cell 'lstm', node id 0, type: unknown dtype 'f16': expected one of f32, f64")


def test_json_format_and_version():
    assert (
        broken(lambda d: d.update(format="onnx")) == "cell JSON: top level: 'format' is 'onnx', expected 'rnncomp-cell'"
    )
    assert broken(lambda d: d.update(version=2)) == "cell JSON: top level: 'version' is 2; this rnncomp reads version 1"


def test_json_node_used_by_nothing():
    def edit(d):
        d["nodes"].append({"id": "spare", "op": "tanh", "inputs": [{"node": 0}], "type": d["nodes"][0]["type"]})

    text = broken(edit)
    assert (
        text == "cell JSON: cell 'lstm', node id 'spare': "
        "the node is used by no state and no output (nor listed in 'seqs', 'params' or 'statics')"
    )


def test_json_graph_errors_come_from_the_verifier():
    d = cell_to_json(lstm())
    node_of(d, "split")["attrs"]["parts"] = 3
    with pytest.raises(VerifyError, match=r"split: dim 32 of f32\[B, 32\] along axis -1 does not divide into 3 parts"):
        cell_from_json(d)
    d = cell_to_json(lstm())
    node_of(d, "tanh")["op"] = "__import__('os').system('true')"  # strings are names, never code
    with pytest.raises(UnknownOpError, match=r"unknown op \"__import__\('os'\).system\('true'\)\""):
        cell_from_json(d)


# ---------------------------------------------------------------- DOT

_TOKEN = re.compile(r'\s*(?:("(?:[^"\\]|\\.)*")|([A-Za-z_][A-Za-z0-9_]*|-?\d+(?:\.\d+)?)|(->|[{}\[\];,=]))')


def dot_tokens(text: str) -> list[str]:
    """Tokens of a DOT document; fails on any character outside the quoted-string/ID/punctuation grammar."""
    out, pos, text = [], 0, text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m and m.end() > pos, f"not DOT at {text[pos : pos + 30]!r}"
        out.append(m.group(m.lastindex))
        pos = m.end()
    return out


def dot_statements(text: str) -> tuple[set[str], list[tuple[str, str, str]]]:
    """(declared node ids, edges as (src, dst, attribute text)) of a digraph; checks braces and brackets balance."""
    tokens = dot_tokens(text)
    assert tokens[:2] == ["digraph", tokens[1]] and tokens[2] == "{" and tokens[-1] == "}"
    depth, square = 0, 0
    for t in tokens:
        depth += {"{": 1, "}": -1}.get(t, 0)
        square += {"[": 1, "]": -1}.get(t, 0)
        assert depth >= 0 and square in (0, 1)
    assert depth == 0 and square == 0
    nodes, edges, stmt = set(), [], []
    for t in tokens[3:]:
        if t not in (";", "{", "}"):
            stmt.append(t)
            continue
        if len(stmt) >= 3 and stmt[1] == "->":
            edges.append((stmt[0], stmt[2], " ".join(stmt[3:])))
        elif stmt and stmt[0].startswith('"') and (len(stmt) == 1 or stmt[1] == "["):
            nodes.add(stmt[0])
        stmt = []
    return nodes, edges


def all_cells() -> list[tuple[str, Cell]]:
    return [(k, make()) for k, make in INLINE.items()] + example_cells()


def test_dot_is_well_formed_for_every_cell():
    for where, cell in all_cells():
        nodes, edges = dot_statements(cell_to_dot(cell))
        assert edges, where
        for src, dst, _ in edges:
            assert src in nodes and dst in nodes, (where, src, dst)


def test_dot_edges_match_uses():
    for where, cell in all_cells():
        _, edges = dot_statements(cell_to_dot(cell))
        uses = [u for n in cell.nodes() for u in n.inputs]
        dashed = [a for _, _, a in edges if 'style = "dashed"' in a]
        assert len(dashed) == sum(1 for u in uses if u.delay), where
        for u in {u.delay for u in uses if u.delay}:
            assert sum(f'label = "t-{u}"' in a for a in dashed) == sum(1 for v in uses if v.delay == u), where
        inits = [e for e in edges if e[0].startswith('"init')]
        assert len(inits) == len(cell.states), where
        outs = [e for e in edges if e[1].startswith('"out')]
        assert len(outs) == len(cell.outputs), where


def test_dot_draws_delays_dashed_and_labelled():
    text = cell_to_dot(three_node())
    assert '[style="dashed", label="t-1"' in text
    assert '[style="dashed", label="t-2"]' in text
    assert "t-" not in "".join(line for line in text.splitlines() if "dashed" not in line and "->" in line)


def test_dot_shapes_and_labels():
    text = cell_to_dot(lstm())
    assert '[label="seq x\\nf32[B, 4]", shape="invhouse"]' in text
    assert '[label="param W\\nf32[4, 32]", shape="note"]' in text
    assert '[label="init h\\nf32[B, 8]", shape="cylinder"]' in text
    assert '[label="out y\\nf32[B, 8]", shape="house"]' in text
    assert '[label="c = add\\nf32[B, 8]", shape="box", style="rounded", peripheries="2"]' in text
    assert re.search(r'label="%\d+ = split\(parts=4, index=0, axis=-1\)\\nf32\[B, 8\]"', text)


def test_dot_cuts_long_constant_values():
    g = rc.Graph("big")
    x = g.seq("x", ("B", 64))
    g.output("y", x + rc.constant([float(i) for i in range(64)]))
    text = cell_to_dot(g.build())
    label = re.search(r'label="(%\d+ = constant\(value=[^"]*)"', text).group(1)
    assert "..." in label and len(label) < 120


@pytest.mark.parametrize(
    "raw, quoted",
    [
        ("plain", '"plain"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("two\nlines", '"two\\nlines"'),
        ('\\"', '"\\\\\\""'),
        ("a}b{c;d->e", '"a}b{c;d->e"'),
    ],
)
def test_quote_escapes(raw, quoted):
    assert quote(raw) == quoted


def test_writer_escapes_every_string_and_nests_clusters():
    w = DotWriter('g "1"')
    w.node('n"1', 'label with "quotes" and \\', shape="box")
    with w.cluster("loop0", "loop T"):
        w.node("n2", "inner")
        w.delay_edge('n"1', "n2", 3)
    w.edge("n2", 'n"1')
    text = w.render()
    nodes, edges = dot_statements(text)
    assert nodes == {'"n\\"1"', '"n2"'}
    assert ('"n\\"1"', '"n2"', '[ style = "dashed" , label = "t-3" ]') in edges
    assert 'subgraph "cluster_loop0" {' in text
    with pytest.raises(ValueError, match="declared twice"):
        w.node("n2", "again")
