"""Run untrusted, model-written Python programs: contained, with limits, in parallel.

    from jleval.sandbox import Program, Sandbox

    with Sandbox() as box:
        results = box.run([Program(code=generation, tests=["assert f(1) == 2", ...]), ...])
    results[0].passed, results[0].status, results[0].reason

Each program runs in its own process, forked from a long-lived fork server (`_server.py`, one per worker), so a
program costs ~10 ms rather than an interpreter start (and pylint is imported once per server, not per program).
Where the OS allows it the process gets new network, mount, pid and IPC
namespaces (no network at all; every file system read-only except a fresh temp dir that is its cwd and HOME;
everything it spawned dies with it), an unprivileged uid when jleval runs as root, no capabilities, rlimits on
CPU time, address space, processes, file size and open files, a scrubbed environment, stdin on /dev/null and
stdout/stderr captured up to a cap. `Sandbox.isolation` says which of these were active; metrics put it in
their signature. docs/security.md explains the design, the fallback and what it does not protect against.

Statuses: passed, failed (an assertion), error (an exception, a syntax error, an exit before the tests
finished), timeout (wall clock or CPU), memory, killed (a signal, the output cap, a lost server).
"""
from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from jleval.errors import JlevalError
from jleval.sandbox.verdict import decide

_SERVER = Path(__file__).with_name("_server.py")
STATUSES = ("passed", "failed", "error", "timeout", "memory", "killed")

#: The only environment a program sees (plus HOME and TMPDIR, set to its temp dir).
SAFE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


#: Imported once by every fork server: the standard library that mbpp-style programs use, so each program
#: starts with them loaded (and can use them even where the interpreter's files are unreadable to it).
_STDLIB_PRELOAD = ("math", "re", "collections", "itertools", "functools", "heapq", "bisect", "string",
                   "operator", "datetime", "random", "statistics", "fractions", "decimal", "copy", "typing",
                   "array", "cmath", "socket", "subprocess", "io", "struct", "hashlib", "asyncio", "json",
                   "textwrap", "dataclasses", "enum", "queue", "unicodedata", "threading")


def _pw_home() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_dir
    except (ImportError, KeyError):
        return ""


def _remove_tree(path: Path) -> None:
    """The fork server's remover (any depth, mode-000 dirs, never through a symlink); never raises."""
    from jleval.sandbox._server import remove_tree

    try:
        remove_tree(str(path))
    except BaseException:  # noqa: BLE001 - cleanup must not stop the other sandboxes from closing
        pass


class SandboxError(JlevalError):
    """The sandbox could not start (no usable Python, no temp directory)."""


@dataclass(frozen=True)
class Limits:
    """Per-program limits. cpu_s defaults to timeout_s; memory_mb bounds the program's address space in all (a
    program that may fork gets at most 4 processes, each with a share: docs/security.md); disk_mb bounds what a
    program can write in all (its temp dir is a tmpfs of that size; the fallback has only fsize_mb per file)."""

    timeout_s: float = 10.0
    cpu_s: float | None = None
    memory_mb: int = 1024
    nproc: int = 32
    fsize_mb: int = 16
    nofile: int = 64
    output_bytes: int = 1 << 20
    disk_mb: int = 64  # size of the temp dir (a tmpfs) where namespaces are available

    def __post_init__(self) -> None:
        ints = {"memory_mb": self.memory_mb, "nproc": self.nproc, "fsize_mb": self.fsize_mb, "nofile": self.nofile,
                "output_bytes": self.output_bytes, "disk_mb": self.disk_mb}
        bad = [k for k, v in ints.items() if not isinstance(v, int) or isinstance(v, bool) or v < 1]
        if self.timeout_s <= 0 or (self.cpu_s is not None and self.cpu_s <= 0):
            bad.append("timeout_s/cpu_s")
        if bad:
            raise ValueError(f"sandbox limits must be positive (integers where sizes or counts): {', '.join(bad)}")

    def as_request(self) -> dict:
        d = asdict(self)
        d["cpu_s"] = self.cpu_s if self.cpu_s is not None else self.timeout_s
        return d

    def signature(self) -> str:
        cpu = self.cpu_s if self.cpu_s is not None else self.timeout_s
        return f"wall:{self.timeout_s:g}s|cpu:{cpu:g}s|mem:{self.memory_mb}M|nproc:{self.nproc}|disk:{self.disk_mb}M"


@dataclass(frozen=True)
class Program:
    """A program and the test snippets that must all run after it, in its namespace.

    mbpp: tests = the gold assert strings. JHumanEval: code = prompt + completion,
    tests = [test_code, f"check({entry_point})"].
    """

    code: str
    tests: tuple[str, ...] | list[str] = ()


@dataclass(frozen=True)
class Result:
    status: str
    reason: str
    elapsed_s: float = 0.0
    output: str = ""  # the first `output_bytes` of stdout+stderr
    details: dict = field(default_factory=dict, compare=False)

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def default_workers(limits: Limits = Limits()) -> int:
    """Four times the usable CPUs (programs that sleep or wait hold a slot without using a core), at least 2 and
    at most 64, and at most one per 2 x memory_mb of RAM."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    try:
        mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20)
    except (ValueError, OSError):
        mem_mb = 4096
    by_memory = max(1, mem_mb // (2 * limits.memory_mb))
    return max(2, min(4 * cpus, by_memory, 64))


#: parts of an isolation label present only when the server reports them active (iso[part] true)
_REPORTED_PARTS = ("userns", "seccomp", "uid")


def isolation_label(iso: dict) -> str:
    """`netns+pidns+ro-fs+seccomp+uid+mem-split` or `fallback(rlimits+session+seccomp+audit-hook+uid)`: the part
    of a signature saying what was active (`+mem-split`: the memory limit is shared among up to 4 processes)."""
    split = "+mem-split" if iso.get("memory") == "split" else ""  # the memory limit shared out among processes
    if iso.get("netns"):
        head, parts, tail = "", ["netns", "pidns", "userns", "ro-fs" if iso.get("ro_fs") else "ro-fs-partial",
                                 "seccomp", "uid"], ""
    else:
        head, parts, tail = "fallback(", ["rlimits", "session", "seccomp", "audit-hook", "uid"], ")"
    active = [part for part in parts if part not in _REPORTED_PARTS or iso.get(part)]
    return head + "+".join(active) + split + tail


class _Server:
    """One fork server process and its pipes; used by one thread at a time."""

    def __init__(self, cfg: dict, token: str) -> None:
        self.proc = subprocess.Popen(
            # not -I: it would ignore PYTHONHASHSEED, and set order must not vary between runs. The environment
            # is ours alone (SAFE_ENV), -s drops the user site, -P keeps the script's folder off sys.path.
            [sys.executable, "-s", *(["-P"] if sys.version_info >= (3, 11) else []), str(_SERVER), json.dumps(cfg),
             token],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=dict(SAFE_ENV), cwd=cfg["base_dir"], close_fds=True, start_new_session=True,
        )
        hello = self._recv(timeout=120.0)
        if hello is None or not hello.get("hello"):
            self.close()
            raise SandboxError("the sandbox server did not start",
                               f"check that `{sys.executable} {_SERVER}` runs on this machine")
        self.isolation: dict = hello["isolation"]

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        """The server's stdin and stdout (opened with PIPE, so never None)."""
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None
        return stdin, stdout

    def _recv(self, timeout: float) -> dict | None:
        out = self._pipes()[1]
        result: list = []

        def read() -> None:
            header = out.read(8)
            if len(header) == 8:
                body = out.read(struct.unpack(">Q", header)[0])
                result.append(json.loads(body))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        return result[0] if result else None

    def request(self, req: dict, timeout: float) -> dict | None:
        data = json.dumps(req).encode()
        try:
            to_server = self._pipes()[0]
            to_server.write(struct.pack(">Q", len(data)) + data)
            to_server.flush()
        except (BrokenPipeError, OSError):
            return None
        return self._recv(timeout)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        to_server, from_server = self._pipes()
        try:
            to_server.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
        from_server.close()


class Sandbox:
    """A pool of fork servers. Use as a context manager; `run()` may be called many times.

    isolation: "auto" (namespaces where the OS allows them, else the fallback) or "none" (force the fallback:
    for tests and for machines where creating namespaces is forbidden by policy).
    preload: modules the servers import once so each program need not (["pylint.lint"] for pylint_check).
    warmup_pylintrc: lint a small file once in each server with this rc, so that pylint's checkers and
    astroid's stdlib models are loaded before the fork and each lint starts warm.
    """

    def __init__(self, limits: Limits = Limits(), *, workers: int | None = None, isolation: str = "auto",
                 preload: Iterable[str] = (), warmup_pylintrc: str | None = None) -> None:
        if isolation not in ("auto", "none"):
            raise ValueError(f"isolation must be 'auto' or 'none', not {isolation!r}")
        self.limits = limits
        self.workers = workers or default_workers(limits)
        self._base = Path(tempfile.mkdtemp(prefix="jleval-sandbox-"))
        os.chmod(self._base, 0o711)  # an unprivileged sandbox uid must be able to reach its own run dir
        self.token = f"jleval-sandbox-{os.getpid()}-{secrets.token_hex(6)}"
        uid_base = 1_500_000_000 + (os.getpid() % 100_000) * 128
        hide = sorted({os.path.expanduser("~"), _pw_home()} - {"", "/"})
        self._cfgs = [{"base_dir": str(self._base), "isolation": isolation, "hide": hide,
                       "preload": list(_STDLIB_PRELOAD) + list(preload),
                       "drop_uid": uid_base + slot, "env": dict(SAFE_ENV), "warmup_pylintrc": warmup_pylintrc}
                      for slot in range(self.workers)]
        self._idle: queue.LifoQueue[tuple[int, _Server | None]] = queue.LifoQueue()  # warm servers first
        for slot in reversed(range(1, self.workers)):
            self._idle.put((slot, None))
        self._servers: dict[int, _Server] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.isolation: dict = {}
        # start one server now: it probes the machine, so `isolation` is known before the first run
        try:
            first = _Server(self._cfgs[0], self.token)
        except BaseException:
            _remove_tree(self._base)
            raise
        self.isolation = first.isolation
        self._servers[0] = first
        self._idle.put((0, first))

    @property
    def isolation_label(self) -> str:
        return isolation_label(self.isolation)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            servers = list(self._servers.values())
            self._servers.clear()
        for server in servers:
            server.close()
        _remove_tree(self._base)

    def server_pids(self) -> list[int]:
        with self._lock:
            return [s.proc.pid for s in self._servers.values() if s.alive()]

    def _checkout(self) -> tuple[int, _Server]:
        slot, server = self._idle.get()
        if server is None or not server.alive():
            if server is not None:
                server.close()
            try:
                server = _Server(self._cfgs[slot], self.token)
            except BaseException:
                self._idle.put((slot, None))
                raise
            if isolation_label(server.isolation) != isolation_label(self.isolation):
                # every worker must run with the isolation the signature reports, or none runs
                got = server.isolation
                server.close()
                self._idle.put((slot, None))
                raise SandboxError(f"a sandbox worker got weaker isolation ({isolation_label(got)}: "
                                   f"{got.get('why', 'probe differed')}) than the first "
                                   f"({isolation_label(self.isolation)})",
                                   "check the machine's namespace limits (user.max_*_namespaces), or run with "
                                   "fewer workers")
            with self._lock:
                self._servers[slot] = server
        return slot, server

    def _one(self, req: dict) -> Result:
        slot, server = self._checkout()
        back: tuple[int, _Server | None] = (slot, server)  # what goes back to the idle queue, exactly once
        try:
            backstop = float(req["limits"]["timeout_s"]) + 30.0  # the server enforces the real limit
            reply = server.request(req, backstop)
            if reply is None:  # the server died (or hung): replace it, score the program as not passed
                back = (slot, None)
                server.close()
                with self._lock:
                    self._servers.pop(slot, None)
                return Result("killed", "the sandbox server was lost while running this program")
        finally:
            self._idle.put(back)
        if "status" not in reply:  # the facts of a run (else: the server's own error)
            reply = decide(req, reply)
        details = {k: v for k, v in reply.items() if k not in ("status", "reason", "elapsed_s", "output")}
        return Result(reply["status"], reply["reason"], reply.get("elapsed_s", 0.0), reply.get("output", ""), details)

    def run(self, programs: Sequence[Program], limits: Limits | None = None) -> list[Result]:
        """Run every program (in parallel); results in input order."""
        lim = (limits or self.limits).as_request()
        # a pass means "every test ran": with no test (or only blank ones) nothing would be checked
        testable = [bool(p.tests) and all(str(t).strip() for t in p.tests) for p in programs]
        reqs = [{"kind": "python", "code": p.code, "tests": list(p.tests), "limits": lim,
                 "nonce": secrets.token_hex(16)} for p, ok in zip(programs, testable) if ok]
        ran = iter(self._map(reqs))
        return [next(ran) if ok else Result("error", "no tests to run (an empty or blank test list passes nothing)")
                for ok in testable]

    def pylint(self, codes: Sequence[str], rc: str, limits: Limits | None = None) -> list[Result]:
        """Lint each source with pylint (which the servers must preload) under the given rc text.

        status passed = no message whose id contains "E" (llm-jp-eval's rule); failed otherwise;
        details["pylint"] holds the message ids and the text output."""
        lim = (limits or self.limits).as_request()
        reqs = [{"kind": "pylint", "code": c, "rc": rc, "filename": "solution.py", "limits": lim,
                 "nonce": secrets.token_hex(16)} for c in codes]
        return self._map(reqs)

    def _map(self, reqs: list[dict]) -> list[Result]:
        if self._closed:
            raise SandboxError("this sandbox is closed", "create a new Sandbox()")
        if not reqs:
            return []
        with ThreadPoolExecutor(max_workers=min(self.workers, len(reqs)), thread_name_prefix="sandbox") as pool:
            return list(pool.map(self._one, reqs))


def run_programs(programs: Sequence[Program], limits: Limits = Limits(), *, workers: int | None = None,
                 isolation: str = "auto") -> tuple[list[Result], str]:
    """One-shot helper: run programs in a fresh sandbox; returns (results, isolation label)."""
    with Sandbox(limits, workers=workers, isolation=isolation) as box:
        return box.run(programs), box.isolation_label


__all__ = ["Limits", "Program", "Result", "Sandbox", "SandboxError", "STATUSES", "default_workers",
           "isolation_label", "run_programs"]
