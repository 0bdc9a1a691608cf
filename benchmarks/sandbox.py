"""Time the sandbox on 500 mbpp-style programs (mixed passing / failing / erroring, a few timeouts).

    python benchmarks/sandbox.py [--n 500] [--timeouts 5] [--baseline 40]

Runs them through jleval.sandbox with the code_exec metric's limits and default worker pool, and compares with
a naive baseline in the same run: a serial loop that starts a fresh `python -c` per program with
subprocess.run(timeout=...) and no isolation, timed on a subset of the non-timeout programs and extrapolated
(timeouts cost the baseline their full limit each, one after another). Target: under 30 s on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from collections import Counter

from jleval.metrics.code import CODE_LIMITS
from jleval.sandbox import Program, Sandbox

TASKS = [
    ("def f(xs):\n    return sum(x * x for x in xs)\n", "def f(xs):\n    return sum(xs)\n",
     ["assert f([1, 2, 3]) == 14", "assert f([]) == 0", "assert f([-2]) == 4"]),
    ("def f(s):\n    return s[::-1]\n", "def f(s):\n    return s\n",
     ["assert f('abc') == 'cba'", "assert f('') == ''", "assert f('ab') == 'ba'"]),
    ("import math\ndef f(n):\n    return n > 1 and all(n % d for d in range(2, math.isqrt(n) + 1))\n",
     "def f(n):\n    return n % 2 == 1\n",
     ["assert f(7)", "assert not f(9)", "assert f(97)", "assert not f(1)"]),
    ("from functools import lru_cache\n@lru_cache(None)\ndef f(n):\n    return n if n < 2 else f(n - 1) + f(n - 2)\n",
     "def f(n):\n    return n\n", ["assert f(10) == 55", "assert f(1) == 1", "assert f(30) == 832040"]),
    ("import re\ndef f(s):\n    return re.findall(r'[A-Z][a-z]*', s)\n", "def f(s):\n    return s.split()\n",
     ["assert f('HelloWorld') == ['Hello', 'World']", "assert f('') == []"]),
    ("from collections import Counter\ndef f(xs):\n    return Counter(xs).most_common(1)[0][0]\n",
     "def f(xs):\n    return xs[0]\n", ["assert f([1, 2, 2, 3]) == 2", "assert f(['a', 'b', 'b']) == 'b'"]),
    ("import heapq\ndef f(xs, k):\n    return heapq.nsmallest(k, xs)\n", "def f(xs, k):\n    return xs[:k]\n",
     ["assert f([5, 1, 4, 2], 2) == [1, 2]", "assert f([3], 1) == [3]"]),
    ("def f(m):\n    return [list(r) for r in zip(*m)]\n", "def f(m):\n    return m\n",
     ["assert f([[1, 2], [3, 4]]) == [[1, 3], [2, 4]]", "assert f([[1]]) == [[1]]"]),
]


def make_programs(n: int, timeouts: int, seed: int = 0) -> list[tuple[str, Program]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n - timeouts):
        right, wrong, tests = rng.choice(TASKS)
        roll = rng.random()
        if roll < 0.65:
            out.append(("pass", Program(right, tests)))
        elif roll < 0.9:
            out.append(("fail", Program(wrong, tests)))
        elif roll < 0.95:
            out.append(("error", Program(right.replace("def f", "def f(", 1), tests)))  # syntax error
        else:
            out.append(("error", Program(right + "raise ValueError('boom')\n", tests)))
    for i in range(timeouts):
        body = "while True:\n    pass\n" if i % 2 == 0 else "import time\ntime.sleep(3600)\n"
        out.append(("timeout", Program(body, ["assert True"])))
    rng.shuffle(out)
    return out


def baseline(programs: list[Program], timeout: float) -> float:
    """Serial, one fresh interpreter per program, no isolation: seconds per program."""
    started = time.perf_counter()
    for p in programs:
        src = p.code + "\n" + "\n".join(p.tests) + "\n"
        try:
            subprocess.run([sys.executable, "-c", src], capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            pass
    return (time.perf_counter() - started) / len(programs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--timeouts", type=int, default=5)
    ap.add_argument("--baseline", type=int, default=40, help="programs in the serial baseline's subset")
    args = ap.parse_args()
    labelled = make_programs(args.n, args.timeouts)
    programs = [p for _, p in labelled]
    limits = CODE_LIMITS

    started = time.perf_counter()
    with Sandbox(limits) as box:
        startup = time.perf_counter() - started
        t0 = time.perf_counter()
        results = box.run(programs)
        wall = time.perf_counter() - t0
        workers, label = box.workers, box.isolation_label
    total = time.perf_counter() - started

    expected = Counter(kind for kind, _ in labelled)
    got = Counter(r.status for r in results)
    mismatches = sum(1 for (kind, _), r in zip(labelled, results)
                     if (kind == "pass") != r.passed or (kind == "timeout") != (r.status == "timeout"))
    subset = [p for kind, p in labelled if kind != "timeout"][: args.baseline]
    per_program = baseline(subset, limits.timeout_s)
    est_baseline = per_program * (args.n - args.timeouts) + args.timeouts * limits.timeout_s

    cpus = len(os.sched_getaffinity(0))
    print(f"programs: {args.n} ({dict(expected)}), limits: {limits.signature()}")
    print(f"sandbox: {label}, {workers} workers on {cpus} CPUs")
    print(f"statuses: {dict(got)}; mismatches with the expected outcome: {mismatches}")
    print(f"sandbox run: {wall:.2f} s for {args.n} programs (+{startup:.2f} s start-up, {total:.2f} s in all)")
    non_timeout = [r.elapsed_s for r, (kind, _) in zip(results, labelled) if kind != "timeout"]
    print(f"  median per-program time inside the sandbox: {sorted(non_timeout)[len(non_timeout) // 2] * 1000:.1f} ms")
    print(f"baseline (serial `python -c` per program, no isolation): {per_program * 1000:.1f} ms/program on "
          f"{len(subset)} programs -> {est_baseline:.1f} s extrapolated for {args.n} with {args.timeouts} "
          f"timeouts of {limits.timeout_s:g} s")
    print(f"speed-up: {est_baseline / total:.1f}x  (target: sandbox under 30 s)")
    if mismatches:
        sys.exit(1)


if __name__ == "__main__":
    main()
