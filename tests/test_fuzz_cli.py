"""Fuzzing the CLI (issue 16): every option of every command, one at a time, on random and nasty values
(nan, inf, -1, 1e9, empty, huge, non-UTF-8 paths, NUL), run in-process with typer's CliRunner over real run
folders built from the bundled sample (oracle and majority backends). The property: the command succeeds, or
fails the way jleval.cli.main reports errors, as one line (a JlevalError, a usage error from the option parser,
an OSError the boundary prints as one line) with a non-zero exit; never any other exception (a traceback), never
a hang, and no NaN or Infinity in any JSON file it writes.

`make test` runs a small, derandomized sample (reproducible in CI); the sweep of every option over every nasty
value is marked slow."""
from __future__ import annotations

import json
import os
import signal
import tempfile
import traceback
from pathlib import Path

import pytest
import typer.main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from jleval.cli import app
from jleval.errors import JlevalError

FAST = settings(max_examples=15, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
NASTY = ["nan", "inf", "-inf", "-1", "0", "1e9", "1e309", "", " ", "x" * 5000, "\udcff\udcfe.json", "a\x00b",
         "../..", "/dev/null", "１２", "2.5", "-0", "99999999999999999999999"]
VALUES = st.one_of(st.sampled_from(NASTY), st.text(max_size=40), st.integers(-10**12, 10**12).map(str),
                   st.floats().map(repr))
#: Commands left out: `demo` builds a tiny model and runs three backends (minutes per call); its options are
#: the --out and --max-num-samples that `run` and `prompts` share. `--wandb` talks to W&B (a network).
SKIP = {("demo",), }
SKIP_OPTS = {"--wandb", "--help"}
SECONDS = 60  # a call that takes longer is a hang


def _commands(group=None, path=()):
    group = group or typer.main.get_command(app)
    for name, cmd in sorted(group.commands.items()):
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, path + (name,))
        elif path + (name,) not in SKIP:
            yield path + (name,), cmd


def _options(cmd):
    return [p for p in cmd.params if p.param_type_name == "option" and p.opts[0] not in SKIP_OPTS]


@pytest.fixture(scope="module")
def world(tmp_path_factory, raw_dir):
    """Real inputs for every command: the bundled sample preprocessed, an oracle and a majority run scored,
    a judgments file, an llm-jp-eval style export to import."""
    from jleval.demo import SAMPLE_DIR
    from jleval.jaster.preprocess import preprocess
    from jleval.run import RunOptions, run
    from jleval.scoring import score_run
    from jleval.tasks import resolve_tasks

    root = tmp_path_factory.mktemp("fuzz-world")
    raw = SAMPLE_DIR / "raw"
    checksums = json.loads((SAMPLE_DIR / "checksums.json").read_text(encoding="utf-8"))
    preprocess(resolve_tasks("jamp,jcommonsenseqa"), root / "data", raw_dir=raw, checksums=checksums)
    runs = []
    for backend in ("oracle", "majority"):
        rd = run(RunOptions(model=backend, backend=backend, run_name=backend, tasks="jamp,jcommonsenseqa",
                            data_dir=root / "data", out=root / "runs", max_num_samples=5)).run_dir
        score_run(rd)
        runs.append(str(rd))
    judgments = root / "judgments.jsonl"
    judgments.write_text("".join(json.dumps({"model_a": a, "model_b": b, "winner": w}) + "\n" for a, b, w in
                                 [("oracle", "majority", "a"), ("oracle", "majority", "tie"),
                                  ("majority", "oracle", "b")] * 3), encoding="utf-8")
    return {"root": root, "raw": str(raw_dir), "data": str(root / "data"), "runs": runs, "judgments": str(judgments)}


def _sweep_file(w: dict, out: Path) -> str:
    path = out / "sweep.toml"
    path.write_text(f'leaderboard = "lb.csv"\n[run]\ntasks = "jamp"\nmax_num_samples = 3\ndata_dir = {json.dumps(w["data"])}\n'
                    '[[model]]\nid = "oracle"\nbackend = "oracle"\n', encoding="utf-8")
    return str(path)


def _base(command: tuple[str, ...], w: dict, out: Path) -> list[str]:
    """A valid call of each command (its required arguments), writing under `out`."""
    if command == ("sweep",):
        return ["sweep", _sweep_file(w, out)]
    data = ["--data-dir", w["data"]]
    runs = w["runs"]
    return list(command) + {
        ("tasks",): [],
        ("preprocess",): ["--tasks", "jamp", "--raw-dir", w["raw"], "--out", str(out / "data")],
        ("prompts",): ["--out", str(out / "prompts"), "--tasks", "jamp", *data],
        ("run",): ["oracle", "--backend", "oracle", "--tasks", "jamp", *data, "--out", str(out / "runs"),
                   "--max-num-samples", "3"],
        ("score",): [runs[0]],
        ("table",): [*runs, "--out", str(out / "lb.csv")],
        ("export",): [runs[0], "--out", str(out / "export")],
        ("import",): [w["judgments"], "--out", str(out / "imported")],
        ("view",): [runs[0], "--out", str(out / "view.html")],
        ("arena", "judge"): [*runs, "--judge", "oracle", "--backend", "oracle", "--out", str(out / "j.jsonl")],
        ("arena", "rank"): [w["judgments"], "--out", str(out / "arena"), "--bootstrap", "20"],
    }[command]


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"no answer within {SECONDS} s")


def _strict_json(text: str):
    def refuse(const):
        raise ValueError(f"{const} in JSON")
    return json.loads(text, parse_constant=refuse)


def _snapshot(folder: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.is_file()}


def _check_written_json(folder: Path, before: dict, where: str) -> None:
    """Every JSON / JSON Lines file the command wrote (new or changed) is strict JSON: no NaN, no Infinity."""
    for p, stamp in _snapshot(folder).items():
        if p.suffix not in (".json", ".jsonl") or before.get(p) == stamp:
            continue
        text = p.read_text(encoding="utf-8", errors="replace")
        lines = text.splitlines() if p.suffix == ".jsonl" else [text]
        for line in lines:
            if line.strip():
                try:
                    _strict_json(line)
                except ValueError as e:
                    if "in JSON" in str(e):  # a half-written file is another matter (crash safety)
                        raise AssertionError(f"{where}: {p} holds {e}") from None


def invoke(args: list[str], cwd: Path, where: str):
    """Run the CLI in-process in `cwd` and check the property; returns the result."""
    old = os.getcwd()
    before = _snapshot(cwd)
    os.chdir(cwd)
    handler = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(SECONDS)
    try:
        result = CliRunner().invoke(app, args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, handler)
        os.chdir(old)
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        tb = "".join(traceback.format_exception(exc))
        # jleval.cli.main prints these as one line (an OSError: the file system refused)
        assert isinstance(exc, (JlevalError, OSError)), f"{where}: a traceback:\n{tb}"
        if isinstance(exc, JlevalError):
            assert "\n" not in exc.message, f"{where}: a message of several lines: {exc.message!r}"
    if isinstance(exc, SystemExit) and exc.code not in (0, None):
        assert result.exit_code != 0
    assert "Traceback" not in result.output, f"{where}:\n{result.output}"
    _check_written_json(cwd, before, where)
    return result


ALL = [(c, o.opts[0]) for c, cmd in _commands() for o in _options(cmd)]


def _one(world, command, opt, value):
    cmd = dict(_commands())[command]
    param = next(p for p in _options(cmd) if p.opts[0] == opt)
    with tempfile.TemporaryDirectory(prefix="jleval-fuzz-") as tmp:
        tmp = Path(tmp)
        args = _base(command, world, tmp) + ([opt] if param.is_flag else [opt, value])
        invoke(args, tmp, f"jleval {' '.join(command)} {opt} {value!r}")


@FAST
@given(pick=st.sampled_from(ALL), value=VALUES)
def test_random_option_values(world, pick, value):
    _one(world, *pick, value)


@pytest.mark.slow
def test_every_command_runs_as_based(world):
    """The base calls themselves work (so a fuzzed failure is the option's doing)."""
    for command, _ in _commands():
        with tempfile.TemporaryDirectory(prefix="jleval-fuzz-") as tmp:
            result = invoke(_base(command, world, Path(tmp)), Path(tmp), " ".join(command))
            expect_ok = command not in {("import",), ("arena", "judge")}  # no llm-jp-eval file, no rakuda answers
            assert (result.exit_code == 0) == expect_ok, (command, result.output, result.exception)


#: The sweep's values: one of each kind (about 1,000 calls in all, ~10 minutes on 2 cores).
SWEEP = ["nan", "inf", "-1", "1e9", "", "x" * 5000, "\udcff\udcfe.json", "a\x00b"]


@pytest.mark.slow
@pytest.mark.parametrize("pick", ALL, ids=[f"{'-'.join(c)}{o}" for c, o in ALL])
def test_every_option_on_every_nasty_value(world, pick):
    for value in SWEEP:
        _one(world, *pick, value)



#: What the fuzzer found (each was a traceback): kept as fixed cases.
FOUND = [
    (("arena", "rank"), "--prior-sd", "1e9"),  # a singular Hessian (numpy LinAlgError)
    (("arena", "rank"), "--title", "\udcff\udcfe.json"),  # a title that is not UTF-8 text (matplotlib)
    (("export",), "--data-dir", "\udcff\udcfe.json"),  # a non-UTF-8 path written into JSON
    (("preprocess",), "--out", "\udcff\udcfe"),  # a non-UTF-8 path printed by rich
    (("run",), "--run-name", "a\x00b"),  # a NUL in the run folder's name
    (("run",), "--revision", "\udcff\udcfe.json"),  # ... hashed into the settings
    (("run",), "--dtype", "\udcff\udcfe.json"),
    (("run",), "--distributed-executor-backend", "\udcff\udcfe.json"),  # ... written into the manifest
    (("run",), "--api-key-env", "\udcff\udcfe.json"),
    (("view",), "--out", ""),  # the current folder: no name to swap the finished report in by
    (("table",), "--out", ""),  # ... no name to put the charts' and pages' beside
]


@pytest.mark.parametrize("pick", FOUND, ids=[f"{'-'.join(c)}{o}" for c, o, _ in FOUND])
def test_found_by_the_fuzzer(world, pick):
    _one(world, *pick)
