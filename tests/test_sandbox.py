"""The sandbox under attack: every hostile program is contained, scored as not passed, and leaves the evaluator
running and everything outside its temp dir untouched. Plus the ordinary cases.

All programs of a suite run in one parallel batch (2 s limits), once with the isolation the machine allows
and once in the forced fallback, so the file stays fast on a loaded 2-core machine."""
from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from jleval.sandbox import Limits, Program, Sandbox, isolation_label

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox needs Linux")

LIMITS = Limits(timeout_s=2.0, memory_mb=256, output_bytes=64 * 1024)
SECRET = "sk-jleval-test-0123456789abcdef"
SLEEP_MARK = "987.6543"  # argument of the background `sleep`, to find it in /proc afterwards
SHM_KEY = 0x6A6C6576  # "jlev": the SysV shared memory key of the shm attack, to find it afterwards
KEY_SECRET = "jleval-keyring-secret-42"  # the payload of a key in this test process's session keyring
KEY_DESC = f"jleval-test-key-{os.getpid()}"
#: add_key, keyctl per architecture (the test calls the kernel itself, so CI needs no keyutils)
KEY_SYSCALLS = {"x86_64": (248, 250), "aarch64": (217, 219)}

GOOD = "def add(a, b):\n    return a + b\n"
ADD_TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]


def _cmdlines() -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace"))
            except OSError:
                pass
    return out


def _key_syscalls() -> tuple[int, int] | None:
    import platform

    return KEY_SYSCALLS.get(platform.machine())


def _keyctl(*args: object) -> int:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(_key_syscalls()[1], *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])


def _read_key(key_id: int) -> bytes:
    import ctypes

    buf = ctypes.create_string_buffer(256)
    n = _keyctl(11, key_id, buf, 256)  # KEYCTL_READ
    return buf.raw[:n] if n >= 0 else b""


def _put_secret_in_session_keyring() -> int | None:
    """Join a session keyring of this test's own (the login session's keyring stays untouched) and add a key to
    it, as a login shell's keyring holds tokens. Returns the key id, or None where the kernel has no keyrings."""
    import ctypes

    if _key_syscalls() is None:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    if _keyctl(1, f"jleval-test-{os.getpid()}".encode()) < 0:  # KEYCTL_JOIN_SESSION_KEYRING
        return None
    key = libc.syscall(_key_syscalls()[0], b"user", KEY_DESC.encode(), KEY_SECRET.encode(),
                       ctypes.c_size_t(len(KEY_SECRET)), ctypes.c_long(-3))  # KEY_SPEC_SESSION_KEYRING
    return key if key > 0 else None


#: A program that goes after the keyrings it can reach: read the caller's key, overwrite it, plant a new one in
#: the session keyring, and list what /proc/keys shows it. It prints what it got; the tests look at that.
KEYRING_ATTACK = """\
import ctypes, platform
libc = ctypes.CDLL(None, use_errno=True)
ADD, KEYCTL = {syscalls}[platform.machine()]
def keyctl(*args):
    return libc.syscall(KEYCTL, *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
found = keyctl(10, -3, b"user", {desc!r}.encode(), 0)  # KEYCTL_SEARCH in the session keyring
print("search", found, ctypes.get_errno())
buf = ctypes.create_string_buffer(256)
n = keyctl(11, found, buf, 256)  # KEYCTL_READ
print("read", buf.raw[:max(n, 0)].decode(errors="replace"))
print("update", keyctl(2, found, b"pwned", 5), ctypes.get_errno())  # KEYCTL_UPDATE
planted = libc.syscall(ADD, b"user", b"jleval-planted", b"x", ctypes.c_size_t(1), ctypes.c_long(-3))
print("add", planted, ctypes.get_errno())
print("proc-keys", [line for line in open("/proc/keys") if "jleval-test" in line])
"""


#: A program that spreads memory over child processes (RLIMIT_AS is per process): each child takes what it can of
#: the program's whole limit, in 8 MiB steps it touches, and holds it; then the parent asks for the whole limit.
FORK_MEMORY = """\
import os, time
def hog(mb):
    held, got = [], 0
    try:
        while got < mb:
            held.append(b"\\1" * (8 << 20))
            got += 8
    except MemoryError:
        pass
    return held, got
r, w = os.pipe()
kids = 0
for _ in range({children}):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        held, got = hog({limit})
        os.write(w, f"{{got}}\\n".encode())
        time.sleep(30)
        os._exit(0)
    kids += 1
os.close(w)
lines = b""
while lines.count(b"\\n") < kids:
    chunk = os.read(r, 4096)
    if not chunk:
        break
    lines += chunk
print("children", kids, "held-mb", sum(int(x) for x in lines.split()), flush=True)
hog_parent = b"\\1" * ({limit} << 20)
"""
FORK_MEMORY_CHILDREN = 5


class Env:
    """What the hostile programs aim at: the real home, a run folder, a victim file, a listener, a secret."""

    def __init__(self, root: Path) -> None:
        self.home_target = Path(os.path.expanduser("~")) / f".jleval-sandbox-test-{os.getpid()}"
        self.run_dir = root / "runs" / "model-x"
        self.run_dir.mkdir(parents=True)
        self.run_dir.chmod(0o777)  # only the sandbox, not file permissions, may stop the writes below
        self.victim = root / "victim" / "keep.txt"
        self.victim.parent.mkdir()
        self.victim.write_text("precious")
        self.victim.parent.chmod(0o777)
        self.victim.chmod(0o666)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        # a Unix socket in /tmp, where X11, ssh-agent and friends keep theirs (a read-only mount does not stop
        # connect(): the shared temp dirs must be hidden)
        import tempfile

        self.unix_dir = Path(tempfile.mkdtemp(prefix="jl-sock-", dir="/tmp"))
        self.unix_dir.chmod(0o755)
        self.unix_path = self.unix_dir / "s"
        self.unix_listener = socket.socket(socket.AF_UNIX)
        self.unix_listener.bind(str(self.unix_path))
        self.unix_path.chmod(0o777)
        self.unix_listener.listen(8)
        self.unix_listener.setblocking(False)
        self.dgram_path = Path("/dev/shm" if os.path.isdir("/dev/shm") else "/var/tmp") / f"jl-dgram-{os.getpid()}"
        self.dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # outside every covered dir but /dev/shm...
        self.dgram.bind(str(self.dgram_path))
        self.dgram_path.chmod(0o777)
        self.dgram.setblocking(False)
        self.link_target = root / "link-target"  # a symlink to it inside a read-only dir must not re-mode it
        self.link_target.mkdir()
        self.link_target.chmod(0o755)
        self.key_id = _put_secret_in_session_keyring()  # before the sandboxes start: their servers inherit it

    def programs(self) -> dict[str, Program]:
        fail = ["assert add(1, 2) == 3"]  # the hostile programs define no add(): only a fake pass could pass
        return {
            # ordinary programs
            "correct": Program(GOOD, ADD_TESTS),
            "wrong": Program("def add(a, b):\n    return a - b\n", ADD_TESTS),
            "syntax_error": Program("def add(a, b)\n    return a + b\n", ADD_TESTS),
            "runtime_error": Program("def add(a, b):\n    return a + c\n", ADD_TESTS),
            "slow_but_correct": Program("import time\ntime.sleep(0.6)\n" + GOOD, ADD_TESTS),
            "asyncio_program": Program("import asyncio\nasync def g(x):\n    await asyncio.sleep(0.01)\n"
                                       "    return x\nassert asyncio.run(g(3)) == 3\n" + GOOD, ADD_TESTS),
            # a model's usage example must not run (upstream exec()'d the generation inside its evaluator)
            "main_block": Program(GOOD + "\nif __name__ == '__main__':\n    print(add(int(input()), 1))\n",
                                  ADD_TESTS),
            "jhumaneval_style": Program(
                "def add(a, b):\n    return a + b\n",
                ["def check(candidate):\n    assert candidate(2, 3) == 5\n", "check(add)"]),
            # hostile programs
            "infinite_loop": Program("while True:\n    pass\n" + GOOD, ADD_TESTS),
            "fork_bomb": Program("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
                                 "        pass\n", fail),
            "memory_bomb": Program("hog = [bytearray(64 << 20) for _ in range(1000)]\n" + GOOD, ADD_TESTS),
            "write_home": Program(f"open({str(self.home_target)!r}, 'w').write('pwned')\n" + GOOD, ADD_TESTS),
            "write_run_dir": Program(f"open({str(self.run_dir / 'scores.json')!r}, 'w').write('{{}}')\n" + GOOD,
                                     ADD_TESTS),
            "delete_outside": Program(
                f"import os, shutil\ntry:\n    os.remove({str(self.victim)!r})\nfinally:\n"
                f"    shutil.rmtree({str(self.victim.parent)!r})\n" + GOOD, ADD_TESTS),
            "read_api_key": Program(
                "import os\nprint(os.environ.get('OPENAI_API_KEY'))\n"
                f"print(open('/proc/{os.getpid()}/environ').read())\n" + GOOD,
                ["import os\nassert os.environ['OPENAI_API_KEY']"] + ADD_TESTS),
            "connect_localhost": Program(
                f"import socket\nsocket.create_connection(('127.0.0.1', {self.port}), timeout=1).sendall(b'x')\n"
                + GOOD, ADD_TESTS),
            "kill_parent": Program("import os\nos.kill(os.getppid(), 9)\n", fail),
            "kill_everything": Program(
                "import os\nfor p in os.listdir('/proc'):\n    if p.isdigit() and int(p) != os.getpid():\n"
                "        try:\n            os.kill(int(p), 9)\n        except OSError:\n            pass\n", fail),
            "print_1gb": Program("import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n"
                                 "    sys.stdout.write(chunk)\n" + GOOD, ADD_TESTS),
            "sys_exit_0": Program("import sys\nsys.exit(0)\n", fail),
            "os_exit_0": Program("import os\nos._exit(0)\n", fail),
            "swallowed_exit": Program("import atexit, os\natexit.register(os._exit, 0)\nraise SystemExit(0)\n", fail),
            "redefine_assertion_error": Program(
                "import builtins\nclass AssertionError(Exception):\n    pass\n"
                "builtins.AssertionError = AssertionError\n"
                "def add(a, b):\n    return 0\n", ADD_TESTS),
            "unix_socket": Program(
                f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({str(self.unix_path)!r})\n"
                "s.sendall(b'x')\n" + GOOD, ADD_TESTS),
            "unix_datagram": Program(
                "import socket\na, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
                f"a.sendto(b'x', {str(self.dgram_path)!r})\n" + GOOD, ADD_TESTS),
            "sysv_shared_memory": Program(
                "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                f"sid = libc.shmget({SHM_KEY}, 16 << 20, 0o1666)\nassert sid >= 0, ctypes.get_errno()\n"
                "libc.shmat.restype = ctypes.c_void_p\naddr = libc.shmat(sid, None, 0)\n"
                "ctypes.memset(addr, 1, 16 << 20)\nlibc.shmdt(ctypes.c_void_p(addr))\n", fail),
            "symlink_in_readonly_dir": Program(
                f"import os\nos.mkdir('d')\nos.symlink({str(self.link_target)!r}, 'd/m')\nos.chmod('d', 0o500)\n",
                fail),
            "unremovable_dirs": Program(
                "import os\nos.makedirs('e/f/g')\nopen('e/f/g/x', 'w').close()\nos.chmod('e/f/g', 0)\n"
                "os.chmod('e/f', 0)\nos.chmod('e', 0o500)\n", fail),
            "deep_tree": Program(
                "import os\nfor _ in range(2500):\n    os.mkdir('d')\n    os.chdir('d')\n", fail),
            "fill_disk": Program(
                "block = b'x' * (1 << 20)\nfor i in range(6):\n    with open(f'f{i}', 'wb') as f:\n"
                "        for _ in range(15):\n            f.write(block)\n" + GOOD, ADD_TESTS),
            "fork_memory": Program(FORK_MEMORY.format(children=FORK_MEMORY_CHILDREN, limit=LIMITS.memory_mb), fail),
            "keyring": Program(KEYRING_ATTACK.format(syscalls=KEY_SYSCALLS, desc=KEY_DESC), fail),
            "background_process": Program(
                f"import os, subprocess\nsubprocess.Popen(['sleep', '{SLEEP_MARK}'], start_new_session=True)\n"
                "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        import time\n"
                "        time.sleep(60)\n    os._exit(0)\n", fail),
        }


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = Env(tmp_path_factory.mktemp("outside"))
    yield e
    e.listener.close()
    e.unix_listener.close()
    e.dgram.close()
    e.dgram_path.unlink(missing_ok=True)
    import shutil

    shutil.rmtree(e.unix_dir, ignore_errors=True)
    e.home_target.unlink(missing_ok=True)


def _run_suite(env: Env, isolation: str) -> tuple[dict, Sandbox]:
    os.environ["OPENAI_API_KEY"] = SECRET
    try:
        box = Sandbox(LIMITS, workers=6, isolation=isolation)
    finally:
        del os.environ["OPENAI_API_KEY"]
    programs = env.programs()
    started = time.monotonic()
    results = dict(zip(programs, box.run(list(programs.values()))))
    return {"results": results, "elapsed": time.monotonic() - started, "box": box}, box


@pytest.fixture(scope="module", params=["auto", "none"])
def suite(request, env):
    run, box = _run_suite(env, request.param)
    run["isolation"] = request.param
    yield run
    box.close()


def test_isolation_is_reported(suite):
    label = suite["box"].isolation_label
    assert label == isolation_label(suite["box"].isolation)
    if suite["isolation"] == "none":
        assert label.startswith("fallback(")
    elif sys.platform.startswith("linux") and os.geteuid() == 0:
        assert "netns" in label  # this CI machine allows namespaces: the full isolation must be active


@pytest.mark.parametrize("name", ["correct", "slow_but_correct", "jhumaneval_style", "main_block",
                                  "asyncio_program"])
def test_normal_programs_pass(suite, name):
    r = suite["results"][name]
    assert r.status == "passed", r


@pytest.mark.parametrize("name, status", [("wrong", "failed"), ("syntax_error", "error"),
                                          ("runtime_error", "error")])
def test_normal_programs_fail(suite, name, status):
    r = suite["results"][name]
    assert r.status == status, r
    if name == "syntax_error":
        assert "SyntaxError" in r.reason


HOSTILE = ["infinite_loop", "fork_bomb", "memory_bomb", "write_home", "write_run_dir", "delete_outside",
           "read_api_key", "connect_localhost", "kill_parent", "kill_everything", "print_1gb", "sys_exit_0",
           "os_exit_0", "swallowed_exit", "redefine_assertion_error", "background_process", "unix_socket",
           "sysv_shared_memory", "symlink_in_readonly_dir", "unremovable_dirs", "deep_tree", "unix_datagram", "keyring",
           "fork_memory"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_program_is_not_passed(suite, name):
    assert suite["results"][name].status != "passed", suite["results"][name]


@pytest.mark.parametrize("name, statuses", [
    ("infinite_loop", {"timeout"}), ("memory_bomb", {"memory"}), ("print_1gb", {"killed"}),
    ("sys_exit_0", {"error"}), ("os_exit_0", {"error"}), ("swallowed_exit", {"error"}),
    ("redefine_assertion_error", {"failed"}), ("fork_bomb", {"timeout", "error", "memory", "killed"}),
])
def test_hostile_program_reason(suite, name, statuses):
    r = suite["results"][name]
    assert r.status in statuses, r
    assert r.reason


def test_memory_is_limited_per_program_not_per_process(suite):
    """RLIMIT_AS is per process: five children could each take the whole limit (a reviewer's program used 7.3 GB
    under 1 GiB). The limit covers the program: what its children held together stays under it, and the program
    is stopped with a memory verdict."""
    r = suite["results"]["fork_memory"]
    assert r.status == "memory", r
    words = r.output.split()
    held = int(words[words.index("held-mb") + 1])
    assert held <= LIMITS.memory_mb, r.output


def test_exit_before_tests_is_named(suite):
    assert "before the tests finished" in suite["results"]["sys_exit_0"].reason
    assert "before the tests finished" in suite["results"]["os_exit_0"].reason


def test_nothing_outside_the_temp_dir_was_touched(suite, env):
    assert not env.home_target.exists()
    assert list(env.run_dir.iterdir()) == []
    assert env.victim.read_text() == "precious"
    assert env.link_target.stat().st_mode & 0o777 == 0o755


def test_no_connection_reached_the_unix_socket(suite, env):
    assert suite["results"]["unix_socket"].status == "error"
    with pytest.raises(BlockingIOError):
        env.unix_listener.accept()


def test_no_datagram_reached_a_unix_socket(suite, env):
    r = suite["results"]["unix_datagram"]
    assert r.status == "error", r
    with pytest.raises(BlockingIOError):
        env.dgram.recv(16)


def test_no_shared_memory_outlives_the_program(suite):
    r = suite["results"]["sysv_shared_memory"]
    assert r.status != "passed", r
    if suite["isolation"] == "auto":  # shmget refused by the filter (EPERM): a segment is memory outside RLIMIT_AS
        assert r.status == "failed" and r.reason.endswith("AssertionError: 1"), r
    else:  # the fallback refuses ctypes first
        assert r.status == "error", r
    shm = Path("/proc/sysvipc/shm")
    if shm.exists():
        keys = [line.split()[0] for line in shm.read_text().splitlines()[1:]]
        assert str(SHM_KEY) not in keys


def test_temp_dirs_are_removed_whatever_the_program_left(suite):
    """Deep trees, mode-000 directories, links: after each program its temp dir is gone (none is left in the
    sandbox's base folder while it idles)."""
    box = suite["box"]
    for name in ("deep_tree", "unremovable_dirs", "symlink_in_readonly_dir", "fill_disk"):
        assert "sandbox server error" not in suite["results"][name].reason, suite["results"][name]
    deadline = time.monotonic() + 30  # each server removes a program's temp dir right after its reply
    while (left := [p.name for p in box._base.iterdir() if p.name.startswith("run-")]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == []


def test_disk_is_bounded_with_namespaces(suite):
    """90 MiB in 6 files: each under the 16 MiB file-size limit, together over the 64 MiB tmpfs. The fallback
    has only the per-file limit (documented), so there the program passes and its files are deleted after it."""
    r = suite["results"]["fill_disk"]
    if "netns" in suite["box"].isolation_label:
        assert r.status == "error" and "No space left" in r.reason, r
    else:
        assert r.status == "passed", r


def test_no_secret_reaches_the_program(suite):
    r = suite["results"]["read_api_key"]
    assert SECRET not in r.output
    assert r.status != "passed"


def test_the_callers_keyring_is_out_of_reach(suite, env):
    """A login shell's session keyring holds real tokens, and every process started from it shares that keyring.
    A program gets a fresh, empty session keyring of its own, and keyctl/add_key/request_key are refused: it can
    neither read, change nor add to the caller's keys (nor carry one out through its output)."""
    if env.key_id is None:
        pytest.skip("no kernel keyrings here")
    r = suite["results"]["keyring"]
    assert KEY_SECRET not in r.output, r
    assert r.status != "passed"
    assert _read_key(env.key_id) == KEY_SECRET.encode()  # not overwritten
    planted = _keyctl(10, -3, b"user", b"jleval-planted", 0)
    assert planted < 0, "the program added a key to the caller's session keyring"
    if suite["box"].isolation.get("uid"):  # as another uid, the caller's keys are not even listed
        assert "jleval-test" not in r.output.split("proc-keys", 1)[-1], r.output
    if suite["isolation"] == "auto":  # the fallback refuses ctypes before a syscall is made
        for op in ("search", "update", "add"):
            line = next(x for x in r.output.splitlines() if x.startswith(op + " "))
            assert line.split()[1:] == ["-1", "1"], r.output  # EPERM: refused by the filter


def test_no_connection_reached_the_listener(suite, env):
    assert suite["results"]["connect_localhost"].status == "error"
    with pytest.raises(BlockingIOError):
        env.listener.accept()


def test_output_is_capped(suite):
    r = suite["results"]["print_1gb"]
    assert len(r.output.encode()) <= LIMITS.output_bytes
    assert "output exceeded" in r.reason
    assert r.elapsed_s < LIMITS.timeout_s  # killed at the cap, not at the deadline


def test_timeouts_do_not_serialise_the_batch(suite):
    # 4 programs run into the 2 s limit; with 6 workers the whole batch takes about one limit, not four
    assert suite["elapsed"] < 4 * LIMITS.timeout_s


def test_evaluator_keeps_running_and_no_process_is_left(suite):
    box = suite["box"]
    servers = box.server_pids()
    assert servers, "the fork servers must still be there"
    leftovers = [c for c in _cmdlines() if f"sleep {SLEEP_MARK}" in c]
    assert leftovers == []
    ours = [c for c in _cmdlines() if box.token in c]
    assert len(ours) == len(servers), ours  # only the servers themselves: no forked program survived
    # and the sandbox still works after the attacks
    again = box.run([Program(GOOD, ADD_TESTS)])
    assert again[0].passed


def test_results_are_deterministic(suite):
    box = suite["box"]
    progs = [Program(GOOD, ADD_TESTS), Program("def add(a, b):\n    return 3\n", ADD_TESTS),
             Program("print(sorted({'b', 'a', 'c'}) == list({'b', 'a', 'c'}))\n" + GOOD, ADD_TESTS)] * 3
    first = [(r.status, r.reason, r.output) for r in box.run(progs)]
    second = [(r.status, r.reason, r.output) for r in box.run(progs)]
    assert first == second


def test_closed_sandbox_leaves_nothing(env):
    box = Sandbox(LIMITS, workers=2)
    box.run([Program(f"import subprocess\nsubprocess.Popen(['sleep', '{SLEEP_MARK}'])\n", ["assert True"])])
    token = box.token
    box.close()
    assert [c for c in _cmdlines() if token in c or f"sleep {SLEEP_MARK}" in c] == []


def test_fallback_refuses_forks_and_unaudited_spawns():
    """Without namespaces the audit hook is the only network guard: `_posixsubprocess.fork_exec` (which raises
    no audit event) and os.fork must not be reachable."""
    with Sandbox(LIMITS, workers=2, isolation="none") as box:
        results = box.run([Program("import _posixsubprocess\n" + GOOD, ADD_TESTS),
                           Program("import subprocess\nfor a in ('_posixsubprocess', '_fork_exec'):\n"
                                   "    assert getattr(subprocess, a, None) is None\n" + GOOD, ADD_TESTS),
                           Program("import os\nos.fork()\n" + GOOD, ADD_TESTS)])
    assert results[0].status == "error" and "not allowed" in results[0].reason, results[0]
    assert results[1].status == "passed", results[1]
    assert results[2].status == "error" and "os.fork is not allowed" in results[2].reason, results[2]


def test_limits_and_test_lists_are_checked():
    with pytest.raises(ValueError, match="disk_mb"):
        Limits(disk_mb=0)
    with pytest.raises(ValueError, match="timeout_s"):
        Limits(timeout_s=0)
    with Sandbox(LIMITS, workers=2) as box:
        results = box.run([Program(GOOD, []), Program(GOOD, ["  "]), Program(GOOD, ADD_TESTS)])
    assert [r.status for r in results] == ["error", "error", "passed"]
    assert "no tests to run" in results[0].reason


def test_parallel_servers_all_get_the_same_isolation():
    """Servers start in parallel and probe the machine each; none may end up with weaker isolation than the label
    (their probe folders once removed each other's)."""
    with Sandbox(LIMITS, workers=12) as box:
        results = box.run([Program("import os\n" + GOOD, ADD_TESTS)] * 48)
        assert all(r.passed for r in results), [r for r in results if not r.passed][:2]
        with box._lock:
            labels = {isolation_label(s.isolation) for s in box._servers.values()}
        assert labels == {box.isolation_label}


def test_a_failure_after_the_reply_returns_the_server_once(monkeypatch):
    """An error while the parent judges a reply (after the server went back to the idle queue) must not put the
    same server in the queue twice: two threads would then share one server."""
    import jleval.sandbox as sandbox

    real, calls = sandbox.decide, []

    def decide_once_broken(req, reply):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("judging failed")
        return real(req, reply)

    monkeypatch.setattr(sandbox, "decide", decide_once_broken)
    with Sandbox(LIMITS, workers=2) as box:
        with pytest.raises(RuntimeError, match="judging failed"):
            box.run([Program(GOOD, ADD_TESTS)])
        assert box._idle.qsize() == 2  # each worker slot once
        results = box.run([Program("import os\n" + GOOD, ADD_TESTS)] * 6)
        assert all(r.passed for r in results) and box._idle.qsize() == 2


def _behind_filter(kind: str, body: Callable[[], dict]) -> tuple[dict, str]:
    """Run `body` in a forked child behind the seccomp filter of `kind`; (what it returned, its repr). Skips the
    test where the kernel refuses seccomp filters."""
    from jleval.sandbox import _server

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            _server._install_seccomp(kind)
            os.write(w, repr(body()).encode())
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(w, repr(exc).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.waitpid(pid, 0)
    got = data.decode()
    if "PR_SET_SECCOMP" in got:
        pytest.skip(f"the kernel refuses seccomp filters here: {got}")
    if not got.startswith("{"):
        pytest.fail(f"the child behind the {kind} filter failed: {got}")
    import ast

    return ast.literal_eval(got), got


def test_fallback_seccomp_filter_refuses_the_syscalls_themselves():
    """A reviewer got around the fallback's audit hook (gc, _imp, a libc function pointer the server had loaded);
    the fallback's seccomp filter refuses the syscalls themselves, whatever Python path reaches them: no fork or
    clone without CLONE_THREAD (threads still work), no exec, no socket. Checked in a forked child here, and the
    fallback sandbox reports it in its label."""
    import ctypes

    from jleval.sandbox import _server

    if _server._seccomp_program(__import__("platform").machine()) is None:
        pytest.skip("no seccomp filter for this architecture")
    def body() -> dict:
        libc = ctypes.CDLL(None, use_errno=True)
        out = {"fork": libc.fork(), "system": libc.system(b"true"), "socket": libc.socket(2, 1, 0)}
        seen: list = []
        import threading

        t = threading.Thread(target=seen.append, args=(1,))
        t.start()
        t.join()
        out["thread"] = seen
        return out

    out, got = _behind_filter("fallback", body)
    # glibc's system() reports a shell it could not start as status 127 (32512); nothing ran either way
    assert out["fork"] == -1 and out["socket"] == -1 and out["system"] in (32512, -1) and out["thread"] == [1], got
    with Sandbox(LIMITS, workers=2, isolation="none") as box:
        assert "+seccomp" in box.isolation_label
        [res] = box.run([Program("import threading\nt = threading.Thread(target=print)\nt.start()\nt.join()\n"
                                 + GOOD, ADD_TESTS)])
        assert res.passed, res


def test_fallback_as_root_says_whether_its_uid_can_read_python():
    """Without namespaces nothing binds the interpreter somewhere readable: the probe finds out whether the
    unprivileged uid can read it (a pyenv under a mode-700 /root cannot), and the code metrics refuse to score
    with such a sandbox rather than fail every import."""
    if os.geteuid() != 0:
        pytest.skip("the uid drop happens only as root")

    def others_can_list(path: Path) -> bool:
        parts = [path, *path.parents]
        return all(os.stat(p).st_mode & 0o001 for p in parts) and bool(os.stat(path).st_mode & 0o004)

    expected = others_can_list(Path(os.__file__).resolve().parent) and others_can_list(Path(os.__file__).parent)
    with Sandbox(LIMITS, workers=1, isolation="none") as box:
        assert box.isolation["python_readable"] is expected


@pytest.mark.parametrize("kind", ["namespaces", "fallback"])
def test_both_seccomp_filters_refuse_keyrings_and_unmapped_memory(kind):
    """keyctl, add_key and request_key are refused by the filter of either mode (without a private uid, a fresh
    session keyring is not enough: the user keyring is found by uid), and so are memfd_create and shmget (memory
    that no process maps is outside the address-space limit). Checked on the filter itself, in a forked child, so
    the fallback's refusal of ctypes does not hide it."""
    import ctypes
    import platform

    from jleval.sandbox import _server

    if _server._seccomp_program(platform.machine(), kind) is None or _key_syscalls() is None:
        pytest.skip("no seccomp filter for this architecture")
    add_key, keyctl = _key_syscalls()
    memfd, shmget = {"x86_64": (319, 29), "aarch64": (279, 194)}[platform.machine()]
    def body() -> dict:
        libc = ctypes.CDLL(None, use_errno=True)
        calls = {"keyctl": (keyctl, 0, -3, 0), "add_key": (add_key, b"user", b"k", b"v", 1, -3),
                 "request_key": (add_key + 1, b"user", b"k", None, 0), "memfd_create": (memfd, b"m", 0),
                 "shmget": (shmget, 0, 1 << 20, 0o1600)}
        out = {}
        for name, (nr, *args) in calls.items():
            ret = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
            out[name] = (ret, ctypes.get_errno())
        return out

    out, got = _behind_filter(kind, body)
    assert out == dict.fromkeys(["keyctl", "add_key", "request_key", "memfd_create", "shmget"], (-1, 1)), got


def test_pylint_rule_is_llm_jp_evals():
    """The rule runs on the parent side, on pylint's text: the first line (the module banner) and the trailing
    empty string are dropped; any line whose second token contains "E" fails; a one-token line fails too (it
    raised inside upstream's try)."""
    from jleval.sandbox.verdict import pylint_rule

    banner = "************* Module solution\n"
    assert pylint_rule(banner + "solution.py:1:0: C0114: Missing module docstring\n") == (True, ["C0114"])
    assert pylint_rule(banner + "solution.py:2:4: E0602: Undefined variable 'x'\n") == (False, ["E0602"])
    assert pylint_rule(banner + "solution.py:2:4: E0602: Undefined variable 'x'") == (True, [])  # last line dropped
    assert pylint_rule(banner + "oops\n")[0] is False
    assert pylint_rule("") == (True, [])
