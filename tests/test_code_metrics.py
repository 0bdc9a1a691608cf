"""code_exec and pylint_check: upstream's scoring rules, run through the sandbox."""
from __future__ import annotations

import gzip
import json
import sys

import pytest

from jleval.metrics import compute, get_metric
from jleval.metrics.code import code_exec_results, parse_tests

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox needs Linux")

MBPP_GOLD = str(["assert remove_odd([1, 2, 3]) == [2]", "assert remove_odd([2, 4, 6]) == [2, 4, 6]",
                 "assert remove_odd([10, 20, 3]) == [10, 20]"])
RIGHT = "def remove_odd(l):\n    return [x for x in l if x % 2 == 0]\n"
HALF_RIGHT = "def remove_odd(l):\n    return [x for x in l if x % 2 == 0][:2]\n"  # fails only the 2nd assert
WITH_HELPER = ("import math\n\ndef _even(x):\n    return math.fmod(x, 2) == 0\n\n"
               "def remove_odd(l):\n    return [x for x in l if _even(x)]\n")


def test_code_exec_scores_one_only_when_every_assert_passes():
    res = get_metric("code_exec")([RIGHT, HALF_RIGHT, "def remove_odd(l)\n    return l\n", WITH_HELPER],
                                  [MBPP_GOLD] * 4)
    assert res.per_sample == (1.0, 0.0, 0.0, 1.0)
    assert res.score == pytest.approx(0.5)
    assert "sandbox:" in res.signature and "wall:10s" in res.signature
    assert "metric:code_exec" in res.signature


def test_code_exec_reasons_per_sample():
    results = code_exec_results([RIGHT, HALF_RIGHT, "import sys\nsys.exit(0)\n"], [MBPP_GOLD] * 3)
    assert [r.status for r in results] == ["passed", "failed", "error"]
    assert "test 2" in results[1].reason


def test_code_exec_malformed_gold_is_a_failed_sample_not_a_crash():
    assert parse_tests("assert f(1) == 2") is None
    assert parse_tests("[1, 2]") is None
    assert parse_tests(MBPP_GOLD) == json.loads(json.dumps(eval(MBPP_GOLD)))  # our own literal
    res = get_metric("code_exec")([RIGHT, RIGHT], [MBPP_GOLD, "not a list"])
    assert res.per_sample == (1.0, 0.0)


def test_code_exec_through_compute_applies_the_profile():
    # v1.4.1 post-processing cuts the generation at the first blank line: a program whose function body
    # follows a blank line loses it
    split = "import math\n\ndef remove_odd(l):\n    return [x for x in l if x % 2 == 0]\n"
    assert compute("code_exec", [RIGHT, split], [MBPP_GOLD] * 2) == pytest.approx(0.5)


def test_code_exec_empty_input():
    res = get_metric("code_exec")([], [])
    assert res.score is None and res.reason


@pytest.mark.parametrize("code, expected", [
    (RIGHT, 1.0),
    ("", 1.0),                                                      # nothing to complain about
    ("x = 1\nprint(x)\n", 1.0),                                     # convention messages only
    ("def f():\n    return undefined_name\n", 0.0),                 # E0602
    ("def f(x)\n    return x\n", 0.0),                              # E0001 syntax error
    ("def f(x: int | None):\n    return x\n", 0.0),                 # E1131 under py-version 3.9
])
def test_pylint_check_rule(code, expected):
    res = get_metric("pylint_check")([code], ["[]"])
    assert res.per_sample == (expected,), res
    assert "pylint:" in res.signature and "rule:no-message-id-with-E" in res.signature


def test_jhumaneval_canonical_solutions_pass_and_broken_ones_fail(raw_dir):
    from jleval.jaster.code import jhumaneval_tests

    path = raw_dir / "jhumaneval" / "data" / "jhuman-eval.jsonl.gz"
    rows = [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines() if line.strip()]
    preds, golds = [], []
    for n, row in enumerate(rows[:12], start=1):
        _, statements = jhumaneval_tests(path, n, row["test"], row["entry_point"])
        preds += [row["prompt"] + row["canonical_solution"], row["prompt"] + "    return None\n"]
        golds += [str(statements)] * 2
    res = get_metric("code_exec")(preds, golds)
    assert res.per_sample[0::2] == (1.0,) * 12
    assert res.per_sample[1::2] == (0.0,) * 12


def test_code_metrics_refuse_a_sandbox_that_cannot_contain(monkeypatch):
    """Non-root without namespaces, programs would run as the user's uid on a writable file system: the code
    metrics say "not computed" with the reason (unless JLEVAL_ALLOW_WEAK_SANDBOX=1). Simulated here by a real
    fallback sandbox whose report says it could not drop to another uid (what a non-root probe reports)."""
    from jleval.metrics import code
    from jleval.sandbox import Sandbox

    class NonRootFallback(Sandbox):
        def __init__(self, limits, **kw):
            super().__init__(limits, workers=1, isolation="none", **{k: v for k, v in kw.items() if k != "workers"})
            self.isolation = {**self.isolation, "uid": False, "python_readable": True}

    code.close_sandboxes()
    monkeypatch.setattr(code, "Sandbox", NonRootFallback)
    monkeypatch.delenv("JLEVAL_ALLOW_WEAK_SANDBOX", raising=False)
    res = get_metric("code_exec")([RIGHT], [MBPP_GOLD])
    assert res.score is None and "JLEVAL_ALLOW_WEAK_SANDBOX" in res.reason
    code.close_sandboxes()
