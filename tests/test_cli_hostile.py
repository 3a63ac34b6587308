"""`rnncomp dump` on hostile files: each parser limit, binary files, a file that raises KeyboardInterrupt
or GeneratorExit, odd flag values, and rnncomp's own bugs: one `rnncomp: error:` message and an exit code,
never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

import rnncomp.cli as cli
from rnncomp.cli import main

CELL = "cell c {{\n  seq x : f64[B, 4]\n  state h : f64[B, 4]\n  {body}\n  out y = h\n}}\n"


def dump(capsys, *argv) -> tuple[int, str]:
    code = main(["dump", *map(str, argv)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and err.startswith("rnncomp: error: "), err
    return code, err[len("rnncomp: error: ") :]


def ir_file(tmp_path: Path, body: str, name: str = "c.rnn") -> Path:
    path = tmp_path / name
    path.write_text(CELL.format(body=body), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "body, message",
    [
        ("h = " + "tanh(" * 5000 + "add(x, h[t-1])" + ")" * 5000, "calls nested more than 100 deep"),
        ("h = add(add(x, constant(value=" + "[" * 1000 + "1.0" + "]" * 1000 + ")), h[t-1])", "nested more than 100"),
        ("h = " + "(" * 3000 + "x" + ")" * 3000, "expected an operand (a name, h[t-1] or op(...)), found '('"),
        (f"h = tanh(add(sum(x, axis={'9' * 5000}, keepdims=true), h[t-1]))", "number literal of 5000 characters"),
        (f"h = tanh(add(sum(x, axis={'9' * 20}, keepdims=true), h[t-1]))", "an int of 20 digits is above the limit"),
        ("h = tanh(add(sum(x, axis=²), h[t-1]))", "unexpected character '²'"),
        (f"h = tanh(add(x, h[t-{10**20}]))", "delay 100000000000000000000 is above the limit"),
        ("h = tanh(add(x, h[t-1]))\n  " + "n" * 2000 + " = tanh(h)", "characters"),
    ],
)
def test_each_parser_limit_is_one_error_line(capsys, tmp_path, body, message):
    path = ir_file(tmp_path, body)
    code, err = dump(capsys, path)
    assert code == 1 and err.startswith(f"{path}:") and message in err


def test_a_python_file_that_parses_hostile_text_gets_the_parse_error(capsys, tmp_path):
    path = tmp_path / "deep.py"
    deep = CELL.format(body="h = " + "tanh(" * 400 + "x" + ")" * 400)
    path.write_text(f"from ir.parser import parse_cell\nparse_cell({deep!r})\n")
    code, err = dump(capsys, path)
    assert code == 1 and "calls nested more than 100 deep (ir.limits.MAX_NESTING)" in err


@pytest.mark.parametrize(
    "name, data, line, why",
    [
        ("binary.py", b"import os\nx = 1\n\x00\x01\x02", 3, "a NUL byte on line 3"),
        ("latin.py", b"x = 1\ny = '\xe9'\n", 2, "byte 0xe9 on line 2 is not UTF-8"),
        ("image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 3, "a NUL byte on line 3"),
        ("cell.rnn", b"cell c {\n\xff\xfe\n}", 2, "byte 0xff on line 2 is not UTF-8"),
    ],
)
def test_a_binary_file_is_named_and_is_not_read_as_code(capsys, tmp_path, name, data, line, why):
    path = tmp_path / name
    path.write_bytes(data)
    code, err = dump(capsys, path)
    assert (code, err) == (
        2,
        f"{path}:{line}: not a Python or IR text file ({why}{': binary data?' if 'NUL' in why else ''})\n",
    )


def test_a_python_file_that_declares_its_encoding_is_imported(capsys, tmp_path):
    path = tmp_path / "latin.py"
    path.write_bytes(b"# -*- coding: latin-1 -*-\nname = '\xe9'\n")
    code, err = dump(capsys, path)
    assert code == 2 and err == f"{path} defines no cell (no Cell object among its globals)\n"


@pytest.mark.parametrize(
    "raised, code, message",
    [
        ("KeyboardInterrupt", 130, "interrupted (KeyboardInterrupt) while being imported"),
        ("GeneratorExit", 1, "GeneratorExit while being imported"),
        ("GeneratorExit('stop')", 1, "GeneratorExit: stop"),
    ],
)
def test_a_file_raising_a_base_exception_is_one_line(capsys, tmp_path, raised, code, message):
    path = tmp_path / "raises.py"
    path.write_text(f"x = 1\nraise {raised}\n")
    got, err = dump(capsys, path)
    assert (got, err) == (code, f"{path}:2: {message}\n")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--length", "²"], "argument 'length': expected an int >= 0 or a symbol such as 'T', got '²'"),
        (["--length", "9" * 30], "argument 'length': an int of 100 bits is above the limit of 2**63-1"),
        (["--unroll", "100000"], "argument 'unroll': the unroll factor 100000 is above the limit of 10000 steps"),
        (["--length", "10000000000", "--unroll", "full"], "a full unroll of length 10000000000 is above the limit"),
    ],
)
def test_odd_flag_values(capsys, flags, message):
    code, err = dump(capsys, Path(__file__).resolve().parent.parent / "examples" / "elman.py", *flags)
    assert code == 1 and message in err


def test_an_interrupt_and_an_internal_error_are_one_line(capsys, tmp_path, monkeypatch):
    path = ir_file(tmp_path, "h = tanh(add(x, h[t-1]))")

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "parse_cells", interrupted)
    assert dump(capsys, path) == (130, "interrupted\n")

    def buggy(*a, **k):
        raise ValueError("boom")

    monkeypatch.setattr(cli, "parse_cells", buggy)
    monkeypatch.delenv("RNNCOMP_TRACEBACK", raising=False)
    code, err = dump(capsys, path)
    assert code == 1 and err.startswith("internal error: ValueError: boom (a bug in rnncomp: please report it;")
    monkeypatch.setenv("RNNCOMP_TRACEBACK", "1")
    with pytest.raises(ValueError, match="boom"):
        main(["dump", str(path)])
