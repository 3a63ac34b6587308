"""The pass pipeline: typed passes, the text form (parse and print back), IR kinds checked when built."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import rnncomp as rc
from ir import Node, PassError, Program, Use
from passes import PASSES, IRKind, Pass, PassManager, Pipeline, register_pass
from passes.hoist import Hoist
from passes.simplify import Simplify
from passes.unroll import Unroll
from tests.support import cell_of, random_args

CELL = cell_of("elman")


def test_text_form_reads_into_typed_passes_and_prints_back():
    p = Pipeline.parse(" unroll{ mode=4 , reverse=true }, simplify ,hoist")
    assert p.passes == [Unroll(mode=4, reverse=True), Simplify(), Hoist()]
    assert str(p) == "unroll{mode=4,reverse=true},simplify,hoist"
    assert Pipeline.parse(str(p)) == p
    assert str(Pipeline.parse('unroll{length="T",mode=full}')) == "unroll{mode=full}"  # defaults left out
    assert str(Pipeline.parse("unroll{length=7}")) == "unroll{length=7}"
    assert Pipeline.parse("") == Pipeline([])
    assert (Unroll.takes, Unroll.gives, Simplify.takes) == (IRKind.cell, IRKind.program, IRKind.program)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("unrol", "unknown pass 'unrol' (did you mean 'unroll'?); registered passes: "),
        ("fuze", "grad, grad_forward, grad_segment, hoist, "),
        ("unroll{factor=4}", "pass 'unroll' has no option 'factor'; its options: length, mode, reverse, masked"),
        ("unroll{mode=fast}", "pass 'unroll': option 'mode' must be 'full', 'loop' or an int k >= 1, got 'fast'"),
        ("unroll{mode=0}", "pass 'unroll': option 'mode' must be 'full', 'loop' or an int k >= 1, got 0"),
        ("unroll{reverse=4}", "pass 'unroll': option 'reverse' must be bool, got 4"),
        ("unroll{length=-2}", "option 'length' must be an int >= 0 or a symbol such as T, got -2"),
        ('unroll{length="3 T"}', "option 'length' must be an int >= 0 or a symbol such as T, got '3 T'"),
        ("simplify{level=2}", "pass 'simplify' has no option 'level'; its options: none"),
        ("unroll{mode=4,mode=2}", "pass 'unroll': option 'mode' is given twice"),
        ("unroll{mode=4", "expected '}' closing the options of pass 'unroll', found the end"),
        ("unroll{mode}", "expected '=' after option 'mode', found '}'"),
        ("simplify,,hoist", "column 10: expected a pass name, found ','"),
        ("simplify hoist", "expected ',' between passes, found 'hoist'"),
        ("simplify;", "expected ',' between passes, found ';'"),
    ],
)
def test_bad_pipeline_text(spec, message):
    with pytest.raises(PassError) as e:
        Pipeline.parse(spec)
    assert message in str(e.value)
    assert f"pipeline {spec!r}" in str(e.value)


def test_the_caret_points_at_the_bad_pass():
    with pytest.raises(PassError) as e:
        Pipeline.parse("simplify,hoisst")
    assert str(e.value).endswith("simplify,hoisst\n           ^")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("unroll,unroll", "pass 'unroll' takes a cell but gets a program (after 'unroll', which gives a program)"),
        ("simplify", "pass 'simplify' takes a program but gets a cell (after the start)"),
    ],
)
def test_ir_kinds_must_chain(spec, message):
    with pytest.raises(PassError) as e:
        PassManager(spec)
    assert message in str(e.value)
    assert e.value.pass_name == spec.split(",")[-1]


def test_compile_checks_the_pipeline_when_built_not_at_the_first_call():
    with pytest.raises(PassError) as e:
        rc.compile(CELL, passes=["simplify", "unroll"])
    assert "pass 'unroll' takes a cell but gets a program (after 'simplify', which gives a program)" in str(e.value)
    assert (e.value.pass_name, e.value.after) == ("unroll", ["unroll", "simplify"])
    assert rc.compile(CELL, passes=["unroll"]).pipeline == "unroll"  # a pipeline may start with the unroll
    with pytest.raises(PassError, match="unknown pass 'fuze'"):
        rc.compile(CELL, passes="simplify,fuze")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"passes": 3}, "argument 'passes': expected pipeline text such as 'simplify,hoist'"),
        ({"passes": "grad,simplify"}, "argument 'passes': pass 'grad' takes a cell; rc.compile puts"),
        ({"passes": "unroll{length=4}"}, "argument 'passes': unroll's 'length' is set by rc.compile"),
        ({"passes": "unroll{mode=4}", "unroll": 2}, "its unroll{mode=4} disagrees with argument unroll=2"),
    ],
)
def test_bad_passes_argument(kwargs, message):
    with pytest.raises(rc.ArgumentError) as e:
        rc.compile(CELL, **kwargs)
    assert message in str(e.value)


def test_compile_runs_the_text_pipeline_and_shows_it():
    args = random_args(CELL, 6, 2)
    ref = rc.compile(CELL, unroll=4, dtype="float64")
    prog = rc.compile(CELL, dtype="float64", passes="unroll{mode=4},simplify,hoist")
    assert prog.unroll == 4
    assert prog.pipeline == "unroll{mode=4},simplify,hoist"
    assert ref.pipeline == "unroll{mode=4},simplify,hoist,linear_scan,simplify"
    assert list(prog.stages()) == ["unroll", "simplify", "hoist"]
    out, want = prog(**args), ref(**args)
    for k in want:
        np.testing.assert_allclose(out[k], want[k], rtol=1e-12, atol=1e-12)
    assert str(prog.pipeline_for("grad", masked=True)) == "grad{mode=4,masked=true},simplify,hoist"
    assert rc.compile(CELL, length=5, passes="").pipeline == "unroll{length=5}"


def test_a_broken_pass_is_named_with_the_passes_before_it():
    @register_pass("break_types")
    def break_types(prog: Program) -> Program:
        out = next(iter(prog.outputs.values()))
        prog.outputs["y"] = Node("identity", [Use(out)], {}, out.type.with_shape((1, 2, 3)))
        return prog

    try:
        assert (PASSES["break_types"].takes, PASSES["break_types"].gives) == (IRKind.program, IRKind.program)
        with pytest.raises(PassError) as e:
            PassManager("unroll,simplify,break_types", verify_each=True).run(rc.compile(CELL).cell)
        assert "when running the 'break_types' pass after the following passes: ['unroll', 'simplify']" in str(e.value)
        assert "differs from the inferred" in str(e.value)
        assert (e.value.pass_name, e.value.after) == ("break_types", ["unroll", "simplify"])
    finally:
        del PASSES["break_types"]


def test_a_pass_class_with_options_and_a_nested_pipeline():
    @register_pass
    @dataclass(frozen=True)
    class Twice(Pass):
        """Runs an inner pipeline twice (a pass that runs passes: its errors keep the inner pass's name)."""

        name = "twice"
        inner: str = "simplify"

        def apply(self, prog, analyses):
            for _ in range(2):
                prog, _ = PassManager(self.inner, start=IRKind.program).run(prog, analyses)
            return prog

    try:
        p = Pipeline.parse("unroll,twice{inner=hoist}")
        assert str(p) == "unroll,twice{inner=hoist}"
        PassManager(p).run(rc.compile(CELL).cell)
        inner = Pipeline.parse('unroll,twice{inner="simplify,unroll"}')
        assert str(inner) == 'unroll,twice{inner="simplify,unroll"}'
        with pytest.raises(PassError) as e:
            PassManager(inner).run(rc.compile(CELL).cell)
        assert e.value.pass_name == "unroll" and e.value.after == ["simplify"]  # the inner error, not rewrapped
    finally:
        del PASSES["twice"]


def test_running_a_pipeline_on_the_wrong_ir():
    with pytest.raises(PassError, match="pipeline 'simplify' starts from a program, got Cell"):
        PassManager("simplify", start=IRKind.program).run(CELL)
