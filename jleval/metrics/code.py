"""code_exec and pylint_check (mbpp; JHumanEval): model-written code, run and linted in jleval.sandbox.

code_exec (llm-jp-eval v1.4.1): the gold is a Python-literal list of test statements (mbpp's asserts; for
JHumanEval the converter's check-function body with `candidate` renamed). A sample scores 1 only if the
generation runs and every test statement runs after it without raising; the task score is the mean. Upstream
ran the generation with an in-process `exec()` and no limits; jleval runs the generation and then each test
in one module namespace, in the sandbox (limits and isolation in the signature). Known difference: upstream's
`exec()` inside a function gave the code separate globals and locals, so a helper or an import at the top of
a generation was invisible inside its functions (NameError); jleval does not reproduce that (we could not
pin the exact v1.4.1 code, see docs/security.md).

pylint_check (llm-jp-eval's rule, as in the Nejumi port of the same code): pylint with the upstream pylintrc
settings on the generation written to a file; 1 if no message line's code contains "E". It also runs in the
sandbox: pylint does not execute the code, but it parses untrusted input.
"""
from __future__ import annotations

import ast
import atexit
import importlib.metadata
import os
import platform
import sys
import threading
from collections.abc import Sequence

from jleval.metrics import MetricResult, mean_result, not_computed, register, versions_signature
from jleval.metrics import postprocess as pp
from jleval.sandbox import Limits, Program, Result, Sandbox, SandboxError

#: Defaults for scoring. Generous for mbpp-sized programs (they run in milliseconds) so that a loaded machine
#: does not turn a correct program into a timeout.
CODE_LIMITS = Limits(timeout_s=10.0, memory_mb=1024)
PYLINT_LIMITS = Limits(timeout_s=60.0, memory_mb=2048)

#: The settings of upstream's pylintrc that can change pylint_check (only error-level messages count):
#: py-version 3.9 (e.g. `int | None` annotations are E1131 below 3.10), one job, no score or report lines
#: (the parser reads message lines). The disabled ids are upstream's list; none is an error. Upstream's file
#: also sets `suggestion-mode`, which pylint 4 no longer knows: there it reports E0015 on every file, so the
#: upstream rc under pylint >= 4 would score every sample 0. We leave it out (pylint's version is signed).
PYLINTRC = """\
[MAIN]
jobs=1
persistent=no
py-version=3.9
limit-inference-results=100
unsafe-load-any-extension=no

[MESSAGES CONTROL]
confidence=HIGH,CONTROL_FLOW,INFERENCE,INFERENCE_FAILURE,UNDEFINED
disable=raw-checker-failed,bad-inline-option,locally-disabled,file-ignored,suppressed-message,
        useless-suppression,deprecated-pragma,use-symbolic-message-instead,no-else-return,
        missing-module-docstring,missing-function-docstring,missing-final-newline,duplicate-code

[REPORTS]
reports=no
score=no

[FORMAT]
max-line-length=100
"""

_lock = threading.Lock()
_sandboxes: dict[str, Sandbox] = {}


def _sandbox(kind: str) -> Sandbox:
    """One shared sandbox per kind for the life of the process (servers start once, close at exit)."""
    with _lock:
        box = _sandboxes.get(kind)
        if box is None:
            if kind == "pylint":
                box = Sandbox(PYLINT_LIMITS, preload=["pylint.lint", "pylint.reporters.text"],
                              warmup_pylintrc=PYLINTRC)
            else:
                box = Sandbox(CODE_LIMITS)
            weak = not box.isolation.get("netns") and not box.isolation.get("uid")
            if weak and os.environ.get("JLEVAL_ALLOW_WEAK_SANDBOX") != "1":
                box.close()
                raise SandboxError(
                    "no namespaces here and jleval is not root, so model-written code would run as your own uid "
                    "with no read-only file system: it could change your files (a .pth in site-packages, your "
                    "home) or reach your other processes",
                    "allow unprivileged user namespaces (docs/security.md), or run where they are allowed; to "
                    "score anyway, trusting the model's code, set JLEVAL_ALLOW_WEAK_SANDBOX=1")
            if box.isolation.get("python_readable") is False:
                box.close()
                raise SandboxError(
                    "without namespaces the sandbox runs programs as an unprivileged uid, which cannot read this "
                    f"Python installation ({sys.prefix}): every import outside the preloaded modules would fail",
                    "install Python (or the virtual environment) in a world-readable place, or allow namespaces "
                    "(docs/security.md)")
            _sandboxes[kind] = box
        return box


@atexit.register
def close_sandboxes() -> None:
    with _lock:
        boxes = list(_sandboxes.values())
        _sandboxes.clear()
    for box in boxes:
        box.close()


def parse_tests(gold: str) -> list[str] | None:
    """The gold's list of test statements, or None when it is not a Python-literal list of strings."""
    try:
        tests = ast.literal_eval(gold)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not isinstance(tests, (list, tuple)) or not all(isinstance(t, str) for t in tests):
        return None
    return list(tests)


def code_exec_results(preds: Sequence[str], golds: Sequence[str]) -> list[Result]:
    """Per-sample sandbox results (status, reason); a malformed gold is an error result for that sample."""
    parsed = [parse_tests(g) for g in golds]
    todo = [Program(code=p, tests=t) for p, t in zip(preds, parsed) if t]
    ran = iter(_sandbox("python").run(todo)) if todo else iter(())
    # an empty list would "pass" any program (upstream's loop never runs): a broken gold, scored as not passed
    return [next(ran) if t else Result("error", "the gold is not a Python-literal list of tests" if t is None
                                       else "the gold has no tests to run")
            for t in parsed]


def _signature(metric: str, box: Sandbox, limits: Limits, profile: str, extra: str) -> str:
    return (f"metric:{metric}|{extra}|sandbox:{box.isolation_label}|{limits.signature()}|{pp.signature(profile)}"
            f"|agg:mean|python:{platform.python_version()}|" + versions_signature(*(["pylint"] if metric ==
                                                                                    "pylint_check" else [])))


@register("code_exec")
def code_exec(preds: Sequence[str], golds: Sequence[str], *, inputs=None,
              profile: str = pp.DEFAULT_PROFILE) -> MetricResult:
    extra = "run:program+each-test-in-one-namespace|pass:every-test-ran"
    try:
        box = _sandbox("python")
    except SandboxError as e:
        return not_computed(f"metric:code_exec|{extra}", f"the sandbox could not start: {e}")
    sig = _signature("code_exec", box, CODE_LIMITS, profile, extra)
    results = code_exec_results(preds, golds)
    return mean_result([1.0 if r.passed else 0.0 for r in results], sig)


def pylint_results(preds: Sequence[str]) -> list[Result]:
    return _sandbox("pylint").pylint(list(preds), PYLINTRC)


@register("pylint_check")
def pylint_check(preds: Sequence[str], golds: Sequence[str], *, inputs=None,
                 profile: str = pp.DEFAULT_PROFILE) -> MetricResult:
    extra = "rule:no-message-id-with-E|rc:llm-jp-eval(py-version=3.9)"
    try:
        importlib.metadata.version("pylint")
    except importlib.metadata.PackageNotFoundError:
        return not_computed(f"metric:pylint_check|{extra}", "pylint is not installed (pip install pylint)")
    try:
        box = _sandbox("pylint")
    except SandboxError as e:
        return not_computed(f"metric:pylint_check|{extra}", f"the sandbox could not start: {e}")
    sig = _signature("pylint_check", box, PYLINT_LIMITS, profile, extra)
    return mean_result([1.0 if r.passed else 0.0 for r in pylint_results(preds)], sig)
