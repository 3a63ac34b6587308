"""The `rnncomp` command line.

    rnncomp dump FILE [--cell NAME] [--format text|dot|json]
    rnncomp dump FILE --grad --length N --checkpoint K|sqrt|64MiB [--batch B]   (schedule and memory report)
    rnncomp bench FILE [--cell NAME] [--length N] [--batch B] [--dim H=256 ...] [--unroll loop,4,full] [--plot out.png]
    rnncomp --version

FILE is a Python file (imported by path; the `Cell` objects among its globals are its cells) or
an IR text file (any other suffix, read with `ir.parser.parse_cells`). Each subcommand is a
`Command` in `COMMANDS`: a function that adds its arguments to the parser and one that runs it,
so a new flag or subcommand is a local change.

Exit codes: 0 success; 1 an rnncomp error (the file's cell is ill-formed, its IR text does not
parse, its code raised); 2 a usage error (bad arguments, no such file, a binary file, no or no
such cell); 130 interrupted (Ctrl-C, or the file raised KeyboardInterrupt). Every failure is one
`rnncomp: error: ...` line on stderr (a parse error adds its caret display), never a traceback
(an internal error shows one with RNNCOMP_TRACEBACK=1).
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import itertools
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ir import Cell, ParseError, RnncompError
from ir.dot import cell_to_dot
from ir.json_form import cell_to_json
from ir.parser import parse_cells
from ir.printer import print_cell
from ir.specialize import size_symbols

from . import __version__

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130  # 130: 128 + SIGINT, as a shell has it


class Failure(Exception):
    """A failure the CLI reports as `rnncomp: error: <message>` and exits with `code`."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------- finding cells


_module_ids = itertools.count()


def load_cells(path: str | Path) -> list[tuple[str, Cell]]:
    """The cells FILE defines, each with the name that binds it (a Python global, or the cell's own name)."""
    p = Path(path)
    if not p.exists():
        raise Failure(f"{path}: no such file")
    if not p.is_file():
        raise Failure(f"{path}: not a file")
    _refuse_binary(p)
    if p.suffix == ".py":
        return _cells_of_python(p)
    return _cells_of_text(p)


_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")  # PEP 263's declaration


def _refuse_binary(path: Path) -> None:
    """A file that no Python or IR text can be: a NUL byte anywhere, or bytes that are not UTF-8 (in a
    Python file that declares no other encoding). The message names the line where it is known."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise Failure(f"{path}: cannot read it: {e.strerror or e}") from None
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise Failure(f"{path}:{line}: not a Python or IR text file (a NUL byte on line {line}: binary data?)")
    if path.suffix == ".py" and any(_CODING.match(ln) for ln in data.split(b"\n", 2)[:2]):
        return  # Python decodes it as it declares
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise Failure(
            f"{path}:{line}: not a Python or IR text file (byte {data[e.start]:#04x} on line {line} is not UTF-8)"
        ) from None


def _cells_of_text(path: Path) -> list[tuple[str, Cell]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise Failure(f"{path}: cannot read it as UTF-8 text: {e}") from None
    try:
        cells = parse_cells(text)
    except ParseError as e:
        raise Failure(f"{path}:{e}" if e.line else f"{path}: {e}", EXIT_ERROR) from None
    return [(c.name, c) for c in cells]


def _cells_of_python(path: Path) -> list[tuple[str, Cell]]:
    """Import `path` under a fresh module name (its folder first on sys.path, as `python FILE` has it)."""
    stem = "".join(ch if ch.isalnum() else "_" for ch in path.stem)
    name = f"_rnncomp_dump_{next(_module_ids)}_{stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise Failure(f"{path}: cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.modules[name] = module
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except BaseException as e:  # noqa: BLE001  (the user's code may raise anything: KeyboardInterrupt, GeneratorExit)
        del sys.modules[name]
        if isinstance(e, RnncompError):
            raise
        code = EXIT_INTERRUPTED if isinstance(e, KeyboardInterrupt) else EXIT_ERROR
        raise Failure(_describe_crash(path, e), code) from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    found: dict[int, tuple[str, Cell]] = {}
    for var, value in vars(module).items():
        if isinstance(value, Cell) and id(value) not in found:
            found[id(value)] = (var, value)
    return list(found.values())


def _describe_crash(path: Path, e: BaseException) -> str:
    """`lstm.py:12: NameError: name 'W' is not defined`: where the user's file failed, without a traceback."""
    if isinstance(e, SystemExit):
        return f"{path}: exited (sys.exit({e.code!r})) while being imported"
    if isinstance(e, SyntaxError):
        where = f"{e.filename or path}:{e.lineno}" if e.lineno else str(e.filename or path)
        return f"{where}: SyntaxError: {e.msg}"
    frames = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename).resolve() == path.resolve()]
    where = f"{path}:{frames[-1].lineno}" if frames else str(path)
    if isinstance(e, KeyboardInterrupt):
        return f"{where}: interrupted (KeyboardInterrupt) while being imported"
    return f"{where}: {type(e).__name__}: {e}" if str(e) else f"{where}: {type(e).__name__} while being imported"


def _show(var: str, cell: Cell) -> str:
    return cell.name if var == cell.name else f"{cell.name} (variable {var})"


def select_cell(cells: list[tuple[str, Cell]], wanted: str | None, source: str) -> Cell:
    """The one cell in `cells`, or the one named `wanted` (its cell name, else the variable bound to it).
    Where that leaves a choice, a concrete cell is taken over size-generic ones (dims such as `4*H`):
    `lstm = rc.with_dims(lstm_any, I=16, H=32)` beside the `lstm_any` it was made from."""
    listing = ", ".join(_show(v, c) for v, c in cells)
    if not cells:
        raise Failure(f"{source} defines no cell (no Cell object among its globals)")
    if wanted is None:
        concrete = [(v, c) for v, c in cells if not size_symbols(c)]
        if len(cells) > 1 and len(concrete) == 1:
            return concrete[0][1]
        if len(cells) > 1:
            raise Failure(f"{source} defines {len(cells)} cells: {listing}; choose one with --cell NAME")
        return cells[0][1]
    by_name = [(v, c) for v, c in cells if c.name == wanted]
    if len(by_name) > 1 and len([c for _, c in by_name if not size_symbols(c)]) == 1:
        by_name = [(v, c) for v, c in by_name if not size_symbols(c)]
    if len(by_name) == 1:
        return by_name[0][1]
    if by_name:
        variables = ", ".join(v for v, _ in by_name)
        raise Failure(f"{source}: several cells are named {wanted!r} (variables {variables}); pass a variable name")
    by_var = [c for v, c in cells if v == wanted]
    if by_var:
        return by_var[0]
    known = sorted({c.name for _, c in cells} | {v for v, _ in cells})
    close = difflib.get_close_matches(wanted, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise Failure(f"{source} has no cell named {wanted!r}{hint} (cells: {listing})")


# ---------------------------------------------------------------- output formats


def _json(cell: Cell) -> str:
    return json.dumps(cell_to_json(cell), indent=2, allow_nan=False)


FORMATS: dict[str, Callable[[Cell], str]] = {"text": print_cell, "dot": cell_to_dot, "json": _json}


# ---------------------------------------------------------------- subcommands


def _dump_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="a Python file defining Cell objects, or an IR text file")
    p.add_argument("--cell", metavar="NAME", help="pick a cell by cell name or variable name (when FILE has several)")
    p.add_argument("--format", choices=list(FORMATS), default="text", help="output form (default: text)")
    g = p.add_argument_group("program stages (any of these compiles the cell and prints a stage of the program)")
    g.add_argument("--length", metavar="N|T", help="sequence length: an int, or a symbol such as T (default T)")
    g.add_argument("--unroll", metavar="full|K|loop", help="unroll mode (default loop)")
    g.add_argument(
        "--after", metavar="PASS|all", help="print the IR after this pass (fuse, plan: the kernel program), or all"
    )
    g.add_argument(
        "--pipeline",
        metavar="PASSES",
        help="the pass pipeline as text, e.g. 'unroll{mode=4},simplify,hoist' "
        "(default: simplify,hoist,linear_scan,simplify)",
    )
    g.add_argument("--grad", action="store_true", help="the backward program (BPTT) instead of the forward")
    g.add_argument("--lengths", action="store_true", help="the variant that takes per-row lengths")
    g.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    g.add_argument("--stage", metavar="BACKEND", help="print the generated source of a backend (numba-cpu, numba-cuda)")
    g.add_argument(
        "--explain",
        metavar="PASS",
        choices=["linear_scan"],
        help="say what the pass does to each loop-carried value and why not (linear_scan: which states become scans)",
    )
    g.add_argument(
        "--resources",
        action="store_true",
        help="with --stage numba-cuda: compile every kernel for --target and print what each uses (no GPU needed)",
    )
    g.add_argument("--target", default=None, metavar="sm_XX", help="the GPU for --resources: sm_80 or sm_90 (default)")
    m = p.add_argument_group("memory of the backward (with --grad and --length N)")
    m.add_argument(
        "--checkpoint",
        metavar="K|sqrt|SIZE",
        help="print the checkpoint schedule and memory report instead of the IR: k steps per segment, "
        "'sqrt', or a budget such as 64MiB",
    )
    m.add_argument("--batch", type=int, default=32, metavar="B", help="batch size, the dim B (default 32)")
    m.add_argument(
        "--dim",
        action="append",
        default=[],
        metavar="NAME=SIZE",
        help="size of another symbolic dim (and the sizes of a size-generic cell, dims such as 4*H)",
    )


def concrete(cell: Cell, args: argparse.Namespace) -> Cell:
    """A size-generic cell (dims such as 4*H) at the sizes `--dim H=SIZE` gives (the CLI compiles concrete
    sizes); those --dim entries are used up. Any other cell as it is."""
    from .bench import parse_dims
    from .sized import with_dims

    sizes = size_symbols(cell)
    if not sizes:
        return cell
    dims = parse_dims(args.dim)
    missing = sorted(sizes - dims.keys())
    if missing:
        give = " ".join(f"--dim {d}=SIZE" for d in missing)
        raise Failure(f"cell {cell.name!r} is size-generic (dims such as 4*H): give its sizes with {give}")
    args.dim = [f"{k}={v}" for k, v in dims.items() if k not in sizes]
    return with_dims(cell, **{k: dims[k] for k in sorted(sizes)})


def _dump(args: argparse.Namespace) -> int:
    cell = select_cell(load_cells(args.file), args.cell, args.file)
    program_flags = (
        args.length,
        args.unroll,
        args.after,
        args.grad,
        args.lengths,
        args.stage,
        args.pipeline,
        args.explain,
        args.resources,
        args.target,
    )
    if args.checkpoint is not None:
        out = dump_schedule(concrete(cell, args), args)
    elif any(v not in (None, False) for v in program_flags):
        out = dump_program(concrete(cell, args), args)
    else:
        out = FORMATS[args.format](cell)
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    return EXIT_OK


def _int_or_name(text: str | None, what: str, default: str) -> int | str:
    text = default if text is None else text
    return int(text) if text.isascii() and text.isdigit() else text  # '²'.isdigit() is True; int('²') fails


LOWERING = ("fuse", "plan")  # the stages after the pipeline: the final Program as a kernel program


def lower(prog, stage: str):
    """The kernel program of a final Program after `fuse`, or after `fuse` and `plan`."""
    from passes.fuse import fuse
    from passes.plan import plan

    kp = fuse(prog)
    return plan(kp) if stage == "plan" else kp


def dump_program(cell: Cell, args: argparse.Namespace) -> str:
    """Compile `cell` as the flags say and print the stage asked for (all stages with --after all)."""
    from ir.program_dot import program_to_dot

    from .compiler import compile as rc_compile

    length = _int_or_name(args.length, "length", "T")
    unroll = None if args.unroll is None else _int_or_name(args.unroll, "unroll", "loop")
    backend = args.stage or "numpy"
    prog = rc_compile(cell, length=length, unroll=unroll, dtype=args.dtype, backend=backend, passes=args.pipeline)
    unroll = prog.unroll
    T = length if isinstance(length, int) else None
    if unroll == "full" and T is None:
        raise Failure("a full unroll needs a concrete --length N to print (a symbolic T specialises per call)")
    if args.resources or args.target is not None:
        if args.stage != "numba-cuda":
            flag = "--resources" if args.resources else "--target"
            raise Failure(f"{flag} reports CUDA kernels: add --stage numba-cuda")
        if not args.resources:
            raise Failure("--target picks the GPU of --resources: add --resources")
        try:
            return str(prog.resources(args.target or "sm_90", grad=args.grad, lengths=args.lengths, T=T))
        except RnncompError as e:
            raise Failure(str(e)) from None
    if args.stage:
        return prog.source(grad=args.grad, lengths=args.lengths, T=T)
    stages = prog.stages(lengths=args.lengths, T=T, grad=args.grad)
    if args.explain:
        return explain_scan(stages)
    if args.format == "json":
        raise Failure("--format json prints cells; use text or dot for program stages")
    final = list(stages.values())[-1]
    if args.after in LOWERING:  # the kernel program (text only) of the final Program
        return str(lower(final, args.after))
    show = program_to_dot if args.format == "dot" else str
    if args.after in (None, "last"):
        return show(list(stages.values())[-1])
    if args.after == "all":
        dumps = [f"// -----// IR Dump After {k} //----- //\n{show(v)}" for k, v in stages.items()]
        if args.format != "dot":
            dumps += [f"// -----// IR Dump After {k} //----- //\n{lower(final, k)}" for k in LOWERING]
        return "\n".join(dumps)
    if args.after not in stages:
        names = ", ".join([*stages, *LOWERING])
        raise Failure(f"--after {args.after}: no such pass; the stages are {names} (or 'all')")
    return show(stages[args.after])


def explain_scan(stages: dict) -> str:
    """What `linear_scan` does to each carried value of the program it is given (the stage before it;
    the last stage when the pipeline has no linear_scan) and why a value stays sequential."""
    from passes.linear_scan import explain

    names = list(stages)
    at = names.index("linear_scan") if "linear_scan" in names else len(names)
    prog = stages[names[at - 1]]
    head = f"linear_scan on program {prog.name}" + ("" if at < len(names) else " (not in this pipeline)")
    rows = explain(prog)
    lines = [f"{head}: {len(rows)} loop-carried value(s)"]
    for state, why in rows:
        lines.append(
            f"  state {state!r}: "
            + ("scanned (a * h[t-1] + b, parallel over time)" if why is None else f"stays sequential: {why}")
        )
    return "\n".join(lines)


def dump_schedule(cell: Cell, args: argparse.Namespace) -> str:
    """`dump --grad --checkpoint X --length N`: the schedule of a training call (which steps are stored,
    which recomputed and how often) and its memory report (kept and peak bytes, recompute factor)."""
    from .bench import bind_dims, parse_dims
    from .checkpointing import parse_checkpoint
    from .compiler import compile as rc_compile

    text = args.checkpoint
    try:
        checkpoint = parse_checkpoint(int(text) if text.isascii() and text.isdigit() else text, "--checkpoint")
    except RnncompError as e:
        raise Failure(str(e)) from None
    if not args.grad:
        raise Failure(f"--checkpoint {text}: the schedule is what the backward keeps; add --grad")
    if args.length is None or not (args.length.isascii() and args.length.isdigit()):
        got = "none" if args.length is None else repr(args.length)
        raise Failure(f"--checkpoint {text}: needs a concrete --length N (the schedule is planned per T), got {got}")
    clash = [f for f, v in (("--after", args.after), ("--stage", args.stage)) if v is not None]
    if args.format != "text":
        clash.append(f"--format {args.format}")
    if clash:
        raise Failure(
            f"--checkpoint prints the schedule and memory report as text; drop {', '.join(clash)} "
            "(or drop --checkpoint to print the IR)"
        )
    if args.batch < 1:
        raise Failure(f"--batch {args.batch}: expected an int >= 1")
    T = int(args.length)
    unroll = None if args.unroll is None else _int_or_name(args.unroll, "unroll", "loop")
    try:
        env = bind_dims(cell, args.batch, parse_dims(args.dim))
        prog = rc_compile(
            cell,
            length=T,
            unroll=unroll,
            dtype=args.dtype,
            backend="numpy",
            passes=args.pipeline,
            checkpoint=checkpoint,
        )
        held = [*prog.plan.saved().values(), *prog.plan.cell.state_types.values()]
        needed = {d for t in held for d in t.shape if isinstance(d, str)}
        dims = {k: v for k, v in env.items() if k in needed}
        view, mem = prog.schedule(T, **dims), prog.memory(T, **dims)
    except RnncompError as e:
        raise Failure(str(e)) from None
    from passes.sizes import format_size

    plain = mem["per_step"] * T
    bound = ", ".join(f"{k}={v}" for k, v in sorted(env.items()))
    lines = [
        f"cell {cell.name}: backward of T={T} ({bound}, {args.dtype}, unroll {prog.unroll})",
        str(view),
        f"memory: kept {format_size(mem['kept'])} ({int(mem['kept'])} bytes), peak {format_size(mem['peak'])} "
        f"({int(mem['peak'])} bytes)"
        + (f" of a {format_size(mem['budget'])} budget" if "budget" in mem else "")
        + f"; plain BPTT keeps {format_size(plain)}"
        + (f" (peak {mem['peak'] / plain:.1%} of it)" if plain else "")
        + f"; recompute factor {mem['recompute']:.3f}",
    ]
    return "\n".join(lines)


def _bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="a Python file defining Cell objects, or an IR text file")
    p.add_argument("--cell", metavar="NAME", help="pick a cell by cell name or variable name (when FILE has several)")
    p.add_argument("--length", type=int, default=100, metavar="N", help="sequence length T (default 100)")
    p.add_argument("--batch", type=int, default=32, metavar="B", help="batch size, the dim B (default 32)")
    p.add_argument(
        "--dim", action="append", default=[], metavar="NAME=SIZE", help="size of one of the cell's symbolic dims"
    )
    p.add_argument("--unroll", default="loop,4,full", metavar="MODES", help="comma list (default loop,4,full)")
    p.add_argument("--repeat", type=int, default=10, metavar="N", help="timed calls per mode and pass (default 10)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--backend", help="numba-cpu (default), numba-cuda or numpy")
    p.add_argument("--output", metavar="NAME", help="the output whose sum is the loss (default: the first)")
    p.add_argument("--plot", metavar="PNG", help="also draw the medians into this PNG file (needs matplotlib)")


def _bench(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from . import bench as b

    cell = select_cell(load_cells(args.file), args.cell, args.file)
    try:
        cell = concrete(cell, args)
    except RnncompError as e:
        raise Failure(str(e)) from None
    for flag, value in (("--length", args.length), ("--batch", args.batch), ("--repeat", args.repeat)):
        if value < 1:
            raise Failure(f"{flag} {value}: expected an int >= 1")
    try:
        modes, dims = b.parse_unrolls(args.unroll), b.parse_dims(args.dim)
        b.bind_dims(cell, args.batch, dims)  # bad input fails before anything compiles
        b.pick_output(cell, args.output)
        if args.plot:
            b.need_matplotlib()
    except RnncompError as e:
        raise Failure(str(e)) from None
    bar = lambda total: tqdm(total=total, desc=f"bench {cell.name}", unit="call", leave=False)
    result = b.bench(
        cell, args.length, args.batch, dims, modes, args.repeat, args.dtype, args.backend, args.output, progress=bar
    )
    print(result.table())
    if args.plot:
        b.plot(result, args.plot)
        print(f"plot: {args.plot}")
    return EXIT_OK


@dataclass(frozen=True)
class Command:
    """A subcommand: its one-line help, how it adds its arguments, and how it runs."""

    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {
    "dump": Command("print a cell as IR text, Graphviz DOT or JSON", _dump_arguments, _dump),
    "bench": Command("time a cell's forward and forward+backward across unroll modes", _bench_arguments, _bench),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: `--version` and one subparser per entry of COMMANDS."""
    parser = argparse.ArgumentParser(prog="rnncomp", description="rnncomp: a graph compiler for recurrent networks.")
    parser.add_argument("--version", action="version", version=f"rnncomp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        cmd.arguments(p)
        p.set_defaults(run=cmd.run)
    return parser


def _error(message: str, code: int) -> int:
    print(f"rnncomp: error: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]) and return the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error argparse has already printed
        return EXIT_OK if e.code is None else e.code if isinstance(e.code, int) else EXIT_USAGE
    try:
        return args.run(args)
    except Failure as e:
        return _error(str(e), e.code)
    except RnncompError as e:
        return _error(str(e), EXIT_ERROR)
    except KeyboardInterrupt:
        return _error("interrupted", EXIT_INTERRUPTED)
    except (RecursionError, MemoryError) as e:  # a limit the checks up front missed: still one line
        return _error(f"{type(e).__name__} ({e}); the input is too large or too deep for rnncomp", EXIT_ERROR)
    except Exception as e:  # noqa: BLE001  (a bug of rnncomp's: one line, the traceback on request)
        if os.environ.get("RNNCOMP_TRACEBACK"):
            raise
        return _error(
            f"internal error: {type(e).__name__}: {e} (a bug in rnncomp: please report it; "
            "RNNCOMP_TRACEBACK=1 shows the traceback)",
            EXIT_ERROR,
        )


__all__ = ["COMMANDS", "FORMATS", "Command", "Failure", "build_parser", "load_cells", "main", "select_cell"]
