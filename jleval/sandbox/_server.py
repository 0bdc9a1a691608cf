"""The sandbox fork server: a small, stdlib-only process that runs untrusted programs one at a time.

It is started by `jleval.sandbox.Sandbox` as `python -s -P _server.py CONFIG` (by path, with a scrubbed environment),
imports what the programs may need once (pylint, for pylint_check), then answers requests on fds 0/1
(8-byte length + JSON). For each request it forks:

    server ── fork ──▶ C (session leader; unshare(net, mount, pid[, user]); read-only remount of every mount
                        except the run's temp dir)
                        └── fork ──▶ G (pid 1 of the new pid namespace; fresh /proc; drops to an unprivileged
                                      uid when root; no capabilities, no_new_privs; rlimits; cwd = HOME = temp dir;
                                      stdin /dev/null; stdout+stderr into a capped pipe) runs the program

The server enforces the wall-clock deadline and the output cap, kills C's process group on either, and afterwards
kills any process left among its own children (it is a child subreaper, so escaped descendants land there).
When G, the namespace's init, exits, the kernel kills every process left in its pid namespace.

The server keeps to isolation and supervision: for each request it replies with the facts (the harness's record,
the exit code, whether it stopped the program, the output), and `jleval.sandbox.verdict` decides on the parent side.
A program passes only when the harness in G writes `PASS <nonce> <n>` on a pipe after every test snippet ran;
the nonce is drawn per request, so sys.exit(0), os._exit(0), a swallowed SystemExit or a redefined
AssertionError cannot produce a pass. Every program gets a fresh, empty session keyring, and its memory limit
covers all of its processes (`memory_split`). Where namespaces are unavailable the server falls back to rlimits, a
session, the subreaper sweep, a seccomp filter (no new process, exec or socket) and a Python audit hook that
refuses the same with readable errors; the active isolation is reported in the hello message and ends up in
the metric's signature.

This file must stay stdlib-only: it runs before (and without) jleval being importable.
"""
from __future__ import annotations

import ctypes
import json
import math
import os
import platform
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC = 32, 4096, 16384
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME = 1024, 2048, 1 << 21, 1 << 24
MS_PRIVATE = 1 << 18
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36

_MOUNT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
                "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME}
_LIBC = ctypes.CDLL(None, use_errno=True)
_HARNESS_ERROR = 70  # G's exit code when the harness itself could not report


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _unshare(flags: int) -> None:
    _check(_LIBC.unshare(ctypes.c_int(flags)), "unshare")


def _cstr(s: str | None) -> bytes | None:
    return s.encode() if s is not None else None


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    rc = _LIBC.mount(_cstr(source), _cstr(target), _cstr(fstype), ctypes.c_ulong(flags), _cstr(data))
    _check(rc, f"mount {target}")


def _drop_capabilities() -> None:
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = ctypes.create_string_buffer(24)  # two zeroed {effective, permitted, inheritable}
    _check(_LIBC.capset(ctypes.c_char_p(header), data), "capset")


def _prctl(option: int, arg: int) -> None:
    _check(_LIBC.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0),
                       ctypes.c_ulong(0)), "prctl")


# ---------------------------------------------------------------------------------------------------------------
# inside C: namespaces and the read-only file system
# ---------------------------------------------------------------------------------------------------------------

def _enter_namespaces(user_ns: bool) -> None:
    uid, gid = os.getuid(), os.getgid()
    # ipc: SysV shared memory and message queues die with the program (and are outside RLIMIT_AS)
    _unshare(CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
             | (CLONE_NEWUSER if user_ns else 0))
    if user_ns:  # map our own ids onto themselves, so files keep their owners
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")


def _hide(hidden: list[str], expose: list[str]) -> int:
    """Cover each hidden dir (the user's home) with an empty tmpfs, then bind back the paths under it that the
    programs need (the Python installation, site-packages, the run dir). Returns the failures."""
    failures = 0
    for top in hidden:
        keep = [p for p in expose if p == top or p.startswith(top.rstrip("/") + "/")]
        if top in keep or not os.path.isdir(top):
            continue
        handles = []
        for path in keep:
            try:
                handles.append((path, os.open(path, os.O_PATH)))
            except OSError:
                pass
        try:
            _mount("tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
        except OSError:
            failures += 1
            continue
        for path, fd in handles:
            try:
                os.makedirs(path, mode=0o755, exist_ok=True)
                _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
            except OSError:
                failures += 1
            os.close(fd)
    return failures


#: Shared directories where other programs keep Unix sockets (X11, ssh-agent, D-Bus, docker.sock, the user's
#: runtime dir) and scratch files: covered with an empty tmpfs, since a read-only mount does not stop connect().
SHARED_TEMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run", "/var/run", "/var/lock")


def _readonly_everything_but(workdir: str, hidden: Sequence[str] = (), expose: Sequence[str] = (),
                             disk_mb: int = 64) -> int:
    """Mount a fresh, size-limited tmpfs on the temp dir (the program's only writable place, gone with the mount
    namespace), hide the home dir and the shared temp dirs, then remount every other mount read-only.
    Returns the failures."""
    os.umask(0o022)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV,
           f"mode=0755,size={int(disk_mb)}m,nr_inodes={max(1024, int(disk_mb) * 64)}")
    tops = list(hidden) + [d for d in SHARED_TEMP_DIRS if not os.path.islink(d)]
    shown = list(expose) + [workdir]
    failures = _hide(tops, shown)
    with open("/proc/self/mountinfo") as f:
        lines = f.read().splitlines()

    def under(path: str, roots: list[str]) -> bool:
        return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)

    for line in lines:
        fields = line.split()
        mountpoint = fields[4].replace("\\040", " ")
        options = fields[5].split(",")
        if "ro" in options or under(mountpoint, [workdir]):
            continue
        if under(mountpoint, tops) and mountpoint not in tops and not under(mountpoint, shown):
            continue  # a mount beneath a cover (/run/user/0, a mount in the home): unreachable, nothing to do
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for opt in options:
            flags |= _MOUNT_FLAGS.get(opt, 0)
        try:
            _mount(None, mountpoint, None, flags)
        except OSError:
            failures += 1
    return failures


# ---------------------------------------------------------------------------------------------------------------
# inside G: limits, then the harness
# ---------------------------------------------------------------------------------------------------------------

#: Without a memory cgroup, RLIMIT_AS bounds one process, so a program that may fork shares its memory limit out:
#: at most this many processes (threads count too), each with memory_mb divided by their number, and at least
#: MIN_PROCESS_MB each (an interpreter forked from the server already maps ~30 MiB).
SPLIT_PROCESSES = 4
MIN_PROCESS_MB = 64


def memory_split(lim: dict, forks: bool) -> tuple[int, int]:
    """(processes, address space per process in MiB) for a program: the sum stays within memory_mb. When the
    program cannot fork (the fallback's seccomp filter), its one process gets all of it and threads up to nproc."""
    mem_mb, nproc = int(lim["memory_mb"]), int(lim["nproc"])
    if not forks:
        return nproc, mem_mb
    procs = max(1, min(nproc, SPLIT_PROCESSES, mem_mb // MIN_PROCESS_MB))
    return procs, mem_mb // procs


def _set_limits(lim: dict, nproc_base: int, forks: bool) -> None:
    cpu = max(1, math.ceil(float(lim["cpu_s"])))
    procs, mem_mb = memory_split(lim, forks)
    mem = mem_mb * 1024 * 1024
    for res, value in ((resource.RLIMIT_CPU, (cpu, cpu + 1)),
                       (resource.RLIMIT_AS, (mem, mem)),
                       (resource.RLIMIT_DATA, (mem, mem)),
                       (resource.RLIMIT_FSIZE, (lim["fsize_mb"] * 1024 * 1024,) * 2),
                       (resource.RLIMIT_NOFILE, (lim["nofile"],) * 2),
                       (resource.RLIMIT_NPROC, (nproc_base + procs,) * 2),
                       (resource.RLIMIT_CORE, (0, 0))):
        resource.setrlimit(res, value)


# --- the fallback's seccomp filter ---------------------------------------------------------------------------
# Without namespaces, a classic BPF seccomp filter (allowed under no_new_privs, and inside Docker's default
# profile) is what stops a program from starting processes or opening sockets: no fork, vfork or clone without
# CLONE_THREAD (threads still work), no execve, no socket() or connect(), no io_uring, no ptrace; clone3 answers
# ENOSYS so that libc falls back to clone, whose flags the filter can read. Syscalls of a foreign ABI (i386, x32)
# are refused outright. Python-level tricks (gc, _imp, ctypes pointers) all end in these syscalls.

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_DENIED = {  # syscall numbers per architecture, refused in the fallback
    "x86_64": {"fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "socket": 41, "connect": 42,
               "io_uring_setup": 425, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
               "kcmp": 312, "pidfd_open": 434, "pidfd_getfd": 438, "pidfd_send_signal": 424},
    "aarch64": {"execve": 221, "execveat": 281, "socket": 198, "connect": 203, "io_uring_setup": 425,
                "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272,
                "pidfd_open": 434, "pidfd_getfd": 438, "pidfd_send_signal": 424},
}
#: add_key, request_key, keyctl: refused in both modes. A session keyring (a login shell's holds real tokens) is
#: inherited through fork, uid changes and every namespace; the user keyring is reachable by uid.
_KEY_SYSCALLS = {"x86_64": {"add_key": 248, "request_key": 249, "keyctl": 250},
                 "aarch64": {"add_key": 217, "request_key": 218, "keyctl": 219}}
KEYCTL_JOIN_SESSION_KEYRING = 1
#: memfd_create, shmget: memory that no process maps (a memfd filled with write(), a detached SysV segment) is outside
#: RLIMIT_AS, so both are refused in both modes: the memory limit then bounds what a program holds
_UNMAPPED_MEMORY_SYSCALLS = {"x86_64": {"memfd_create": 319, "shmget": 29},
                             "aarch64": {"memfd_create": 279, "shmget": 194}}
_CLONE = {"x86_64": 56, "aarch64": 220}
_SOCKET = {"x86_64": 41, "aarch64": 198}
_SOCKETPAIR = {"x86_64": 53, "aarch64": 199}
_CLONE3 = 435
CLONE_THREAD = 0x00010000
AF_UNIX, SOCK_DGRAM, SOCK_SEQPACKET = 1, 2, 5
PR_SET_SECCOMP, SECCOMP_MODE_FILTER, PR_SET_DUMPABLE = 22, 2, 4
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K, _AND_K = 0x20, 0x15, 0x35, 0x45, 0x06, 0x54


def _seccomp_program(machine: str, kind: str = "fallback") -> list[tuple[int, int, int, int]] | None:
    """The filter as (code, jt, jf, k) instructions, or None on an architecture it does not know.

    Both kinds refuse foreign-ABI syscalls, the kernel keyring calls (add_key, request_key, keyctl), memory outside
    the address space limit (memfd_create, shmget) and Unix datagram/seqpacket socket pairs (whose sendto() takes any
    address: /dev/log, an abstract socket). "namespaces" (a private network already) also refuses socket(AF_UNIX),
    the one way left to a file-system socket; "fallback" refuses every socket(), connect(), process creation
    (fork, vfork, clone without CLONE_THREAD; clone3 answers ENOSYS so libc falls back to clone), exec,
    io_uring, ptrace and the calls that reach into another process's memory or files."""
    if machine not in _AUDIT_ARCH:
        return None
    deny, nosys = _RET_ERRNO | 1, _RET_ERRNO | 38  # EPERM, ENOSYS (the same on x86_64 and aarch64)
    ins: list[tuple[int, int, int, int]] = []
    pending: list[tuple[int, str, str]] = []  # jumps to labels, resolved at the end

    def jump(code: int, k: int, jt: str | None, jf: str | None) -> None:
        pending.append((len(ins), jt or "", jf or ""))
        ins.append((code, 0, 0, k))

    labels: dict[str, int] = {}
    ins.append((_LD_W_ABS, 0, 0, 4))                       # arch
    jump(_JEQ_K, _AUDIT_ARCH[machine], None, "DENY")
    ins.append((_LD_W_ABS, 0, 0, 0))                       # syscall number
    if machine == "x86_64":
        jump(_JGE_K, 0x40000000, "DENY", None)            # the x32 ABI
    for nr in [*_KEY_SYSCALLS[machine].values(), *_UNMAPPED_MEMORY_SYSCALLS[machine].values()]:
        jump(_JEQ_K, nr, "DENY", None)
    if kind == "fallback":
        for nr in _DENIED[machine].values():
            jump(_JEQ_K, nr, "DENY", None)
        jump(_JEQ_K, _CLONE3, "NOSYS", None)
        jump(_JEQ_K, _CLONE[machine], "CLONE", None)
    else:
        jump(_JEQ_K, _SOCKET[machine], "SOCKET", None)
    jump(_JEQ_K, _SOCKETPAIR[machine], "PAIR", None)
    ins.append((_RET_K, 0, 0, _RET_ALLOW))
    if kind == "fallback":
        labels["CLONE"] = len(ins)
        ins.append((_LD_W_ABS, 0, 0, 16))                  # args[0] (flags), low 32 bits (little-endian)
        jump(_JSET_K, CLONE_THREAD, "ALLOW", "DENY")
    else:
        labels["SOCKET"] = len(ins)
        ins.append((_LD_W_ABS, 0, 0, 16))                  # args[0]: the address family
        jump(_JEQ_K, AF_UNIX, "DENY", "ALLOW")
    labels["PAIR"] = len(ins)
    ins.append((_LD_W_ABS, 0, 0, 24))                      # args[1]: the socket type (flags in the high bits)
    ins.append((_AND_K, 0, 0, 0xF))
    jump(_JEQ_K, SOCK_DGRAM, "DENY", None)
    jump(_JEQ_K, SOCK_SEQPACKET, "DENY", "ALLOW")
    labels["ALLOW"] = len(ins)                            # (a filter must end with a return)
    ins.append((_RET_K, 0, 0, _RET_ALLOW))
    labels["DENY"] = len(ins)
    ins.append((_RET_K, 0, 0, deny))
    labels["NOSYS"] = len(ins)
    ins.append((_RET_K, 0, 0, nosys))

    def rel(label: str | None, at: int) -> int:
        return 0 if not label else labels[label] - at - 1

    for at, jt, jf in pending:
        code, _, _, k = ins[at]
        ins[at] = (code, rel(jt, at), rel(jf, at), k)
    return ins


def _install_seccomp(kind: str = "fallback") -> None:
    """Install a filter (see _seccomp_program) on this process and everything it would start. Raises OSError
    when the kernel refuses it, or on an unknown architecture. (Imports nothing: after the uid drop the
    interpreter's files may be unreadable.)"""
    program = _seccomp_program(platform.machine(), kind)
    if program is None:
        raise OSError(0, f"no seccomp filter for {platform.machine()}")

    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    filters = (SockFilter * len(program))(*[SockFilter(*i) for i in program])
    prog = SockFprog(len(program), filters)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _check(_LIBC.prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER),
                       ctypes.cast(ctypes.pointer(prog), ctypes.c_void_p), ctypes.c_ulong(0), ctypes.c_ulong(0)),
           "prctl(PR_SET_SECCOMP)")


def _fresh_session_keyring() -> bool:
    """Join a new, empty, anonymous session keyring: the caller's session keyring (and the keys in it) is no longer
    possessed by this process or anything it starts. True when done (or when the kernel has no keyrings: nothing
    to share); False on an architecture whose syscall number we do not know. Raises OSError when refused."""
    nr = _KEY_SYSCALLS.get(platform.machine(), {}).get("keyctl")
    if nr is None:
        return False
    if _LIBC.syscall(ctypes.c_long(nr), ctypes.c_long(KEYCTL_JOIN_SESSION_KEYRING), None) < 0:
        err = ctypes.get_errno()
        if err != 38:  # ENOSYS: a kernel without keyrings
            raise OSError(err, f"keyctl(JOIN_SESSION_KEYRING): {os.strerror(err)}")
    return True


def _in_child(body: Callable[[], bytes]) -> tuple[bool, bytes]:
    """Run `body` in a throwaway forked child (namespaces, filters and uid changes stay there) and return
    (True, the bytes it returned) or (False, the repr of what it raised)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = b"1" + body()
        except BaseException as exc:  # noqa: BLE001 - whatever body raised goes back to the parent as its repr
            out = b"0" + repr(exc).encode()[:300]
        os.write(w, out)
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return data[:1] == b"1", data[1:]


def _probe_seccomp(kind: str = "fallback") -> str | None:
    """None when the filter installs and stops what it must here (a fork; a Unix datagram pair; keyctl); else why
    not."""
    import socket

    def body() -> bytes:
        _install_seccomp(kind)
        try:
            socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        except OSError:
            pass
        else:
            return b"the filter did not stop a datagram socket pair"
        keyctl = _KEY_SYSCALLS[platform.machine()]["keyctl"]
        if _LIBC.syscall(ctypes.c_long(keyctl), ctypes.c_long(0), ctypes.c_long(-3), ctypes.c_long(0)) >= 0:
            return b"the filter did not stop keyctl()"
        if kind == "fallback":
            try:
                child = os.fork()
            except OSError:
                return b"ok"
            if child == 0:
                os._exit(0)
            return b"the filter did not stop fork()"
        return b"ok"

    ok, data = _in_child(body)
    return None if ok and data == b"ok" else (data.decode("utf-8", "replace") or "probe failed")


_FALLBACK_REFUSED_MODULES = ("_posixsubprocess", "_ctypes", "_socket", "_multiprocessing")
_SECCOMP_ON = False  # set in the program's process once its filter is installed


_HOOK_REFUSED = ("subprocess.", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "os.fork", "os.forkpty",
                 "ctypes.", "os.startfile", "pty.spawn")


def _fallback_audit_hook(event: str, args: tuple) -> None:
    """Active only without namespaces: no forks or subprocesses, no foreign code, and (when no seccomp filter
    is there to refuse socket() itself) no sockets. Readable errors, not a boundary (docs/security.md): code in
    the same interpreter can find ways around any Python-level hook; the seccomp filter is the boundary."""
    if event.startswith(_HOOK_REFUSED) or (event.startswith("socket.") and not _SECCOMP_ON):
        raise PermissionError(f"{event} is not allowed in the jleval sandbox")
    if event == "import" and args and str(args[0]).split(".")[0] in _FALLBACK_REFUSED_MODULES:
        raise PermissionError(f"importing {args[0]} is not allowed in the jleval sandbox")


def _install_fallback_guard() -> None:
    """Forget the C modules that reach the OS without an audit event (`_posixsubprocess.fork_exec`), so that
    importing them again goes through the hook, then install the hook."""
    for name in _FALLBACK_REFUSED_MODULES:
        sys.modules.pop(name, None)
    for holder, attrs in (("subprocess", ("_posixsubprocess", "_fork_exec")),
                          ("multiprocessing.util", ("_posixsubprocess",))):
        module = sys.modules.get(holder)  # None (no attributes) when not imported
        for attr in attrs:
            if hasattr(module, attr):
                setattr(module, attr, None)
    sys.addaudithook(_fallback_audit_hook)


def _harness_python(code: str, tests: list[str], nonce: str, res_fd: int) -> None:
    """Run the program, then every test snippet, in one namespace; report through res_fd."""
    import builtins

    write, exit_, AE, BE, ME, SE = os.write, os._exit, AssertionError, BaseException, MemoryError, SystemExit
    comp, run, tname = compile, exec, type

    def report(kind: str, stage: str, exc: BaseException | None) -> None:
        detail = ""
        if exc is not None:
            try:
                detail = f"{tname(exc).__name__}: {exc}"[:500]
            except BE:  # a hostile __str__
                detail = "exception with unprintable message"
        try:
            write(res_fd, (json.dumps({"kind": kind, "stage": stage, "detail": detail}) + "\n").encode())
        except BE:
            pass
        flush()
        exit_(1)

    def flush() -> None:
        for fn in flushers:
            try:
                fn()
            except BE:
                pass

    def classify(exc: BaseException) -> str:
        if isinstance(exc, AE):
            return "failed"
        if isinstance(exc, ME):
            return "memory"
        if isinstance(exc, SE):
            return "exit"
        return "error"

    flushers = (sys.stdout.flush, sys.stderr.flush)
    # not "__main__": upstream exec()'d the generation inside its evaluator, where an `if __name__ == "__main__":`
    # block (a model's example usage, often reading input()) does not run
    namespace = {"__name__": "solution", "__builtins__": builtins}
    stages = [("program", code, "<program>")] + [(f"test {i + 1}", t, f"<test {i + 1}>") for i, t in enumerate(tests)]
    done = 0
    for stage, source, filename in stages:
        try:
            run(comp(source, filename, "exec"), namespace)
        except BE as exc:  # everything the program raises is a verdict
            report(classify(exc), stage, exc)
        if stage != "program":
            done += 1
    flush()
    try:
        write(res_fd, f"PASS {nonce} {done}\n".encode())
    except BE:
        exit_(_HARNESS_ERROR)
    exit_(0)


def _harness_pylint(filename: str, rcfile: str, nonce: str, res_fd: int) -> None:
    """Lint one file with the pre-imported pylint; report its text output (the verdict is the parent's)."""
    import io

    from pylint.lint import Run
    from pylint.reporters.text import TextReporter

    out = io.StringIO()
    try:
        Run(["--rcfile", rcfile, filename], reporter=TextReporter(out), exit=False)
    except BaseException as exc:  # noqa: BLE001 - pylint crashed on this input
        os.write(res_fd, (json.dumps({"kind": "error", "stage": "pylint", "detail": repr(exc)[:500]}) + "\n").encode())
        os._exit(1)
    payload = json.dumps({"output": out.getvalue()})  # llm-jp-eval's rule: jleval.sandbox.verdict.pylint_rule
    os.write(res_fd, f"PYLINT {nonce} {payload}\n".encode())
    os._exit(0)


def _run_child_g(req: dict, cfg: dict, workdir: str, out_w: int, res_w: int, iso: dict) -> None:
    """Body of G. Never returns."""
    try:
        if iso.get("pidns"):
            try:
                _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            except OSError:
                pass
        if _drops_uid(cfg):
            uid = cfg["drop_uid"]
            os.chown(workdir, uid, uid)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        elif iso.get("userns"):
            _drop_capabilities()
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        _fresh_session_keyring()  # after the uid drop, so the keyring is the program's own
        os.chdir(workdir)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        for fd in (devnull, out_w):
            os.close(fd)
        os.environ.clear()
        os.environ.update(cfg["env"])
        os.environ.update({"HOME": workdir, "TMPDIR": workdir, "PYLINTHOME": workdir})
        tempfile.tempdir = workdir
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
        sys.argv = [req.get("filename", "main.py")]
        _set_limits(req["limits"], cfg["nproc_base"], _forks(iso))
        if iso.get("seccomp"):
            global _SECCOMP_ON
            _install_seccomp("namespaces" if iso.get("netns") else "fallback")
            _SECCOMP_ON = True
        if not iso.get("netns"):
            _install_fallback_guard()
        nonce = req["nonce"]
        if req["kind"] == "pylint":
            _harness_pylint(req["filename"], req["rcfile"], nonce, res_w)
        else:
            _harness_python(req["code"], req["tests"], nonce, res_w)
    except BaseException as exc:  # noqa: BLE001 - setup failed: report and leave
        try:
            os.write(res_w, (json.dumps({"kind": "error", "stage": "sandbox setup", "detail": repr(exc)[:500]})
                             + "\n").encode())
        finally:
            os._exit(_HARNESS_ERROR)
    os._exit(_HARNESS_ERROR)


# ---------------------------------------------------------------------------------------------------------------
# the server
# ---------------------------------------------------------------------------------------------------------------

def _children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:  # no CONFIG_PROC_CHILDREN: scan /proc
        kids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        stat = f.read()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(entry))
        return kids


def _sweep(me: int) -> None:
    """Kill and reap every child of `me` (descendants are reparented here as their parents die)."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        kids = _children_of(me)
        for kid in kids:
            try:
                os.kill(kid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] != 0:  # reap every child that has ended, until none is left to reap
                pass
        except ChildProcessError:
            return
        if not kids:
            return
        time.sleep(0.002)


def _probe(mode: str, cfg: dict) -> dict:
    """Find out, in a throwaway child, which isolation this machine allows."""
    if mode == "none":
        return _fallback({"why": "namespaces switched off"}, cfg)
    user_ns = os.getuid() != 0
    # this server's own probe folder, made here and removed by name: servers start in parallel and share the
    # base folder, so removing every probe-* could pull another server's folder from under its mount
    tmp = tempfile.mkdtemp(prefix="probe-", dir=cfg["base_dir"])

    def body() -> bytes:
        _enter_namespaces(user_ns)
        return str(_readonly_everything_but(tmp, cfg["hide"], cfg["expose"])).encode()

    ok, data = _in_child(body)
    remove_tree(tmp)
    if not ok:
        return _fallback({"why": data.decode("utf-8", "replace") or "probe failed"}, cfg)
    why_not = _probe_seccomp("namespaces")
    return {"netns": True, "pidns": True, "userns": user_ns, "ro_fs": data == b"0",
            "uid": _drops_uid(cfg), "seccomp": why_not is None, **({"seccomp_why_not": why_not} if why_not else {})}


def _fallback(info: dict, cfg: dict) -> dict:
    why_not = _probe_seccomp()
    out = {"netns": False, "pidns": False, "userns": False, "ro_fs": False, "uid": _drops_uid(cfg),
           "seccomp": why_not is None, **({"seccomp_why_not": why_not} if why_not else {}), **info}
    if out["uid"]:
        out["python_readable"] = _readable_as(cfg["drop_uid"], [os.path.dirname(os.__file__)] + cfg["expose"])
    return out


def _readable_as(uid: int, paths: list[str]) -> bool:
    """Whether `uid` can list these folders (the interpreter's files: without namespaces nothing binds them
    somewhere readable, so a Python under a mode-700 /root is invisible to the sandbox uid)."""
    def body() -> bytes:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        for path in paths:
            os.listdir(path)
        return b""

    return _in_child(body)[0]


def _forks(iso: dict) -> bool:
    """Whether a program may start processes: yes, except behind the fallback's seccomp filter."""
    return bool(iso["netns"] or not iso["seccomp"])


def _drops_uid(cfg: dict) -> bool:
    return os.getuid() == 0 and cfg["drop_uid"] is not None


def _python_paths() -> list[str]:
    """What a program (or pylint) needs to read: the interpreter's prefixes and the package directories."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths.update(p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages", "lib-dynload")))
    paths.update([os.path.realpath(p) for p in paths])
    return sorted(p for p in paths if os.path.isdir(p))  # (isdir("") is False)


def _user_process_count() -> int:
    me, n = os.getuid(), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == me:
                    n += 1
            except OSError:
                pass
    return n


def _write_request_files(req: dict, workdir: str) -> None:
    """The files a request needs in its temp dir (pylint's source and rc file)."""
    if req["kind"] == "pylint":
        with open(os.path.join(workdir, req["filename"]), "w", encoding="utf-8") as f:
            f.write(req["code"])
        req["rcfile"] = os.path.join(workdir, ".pylintrc-jleval")
        with open(req["rcfile"], "w", encoding="utf-8") as f:
            f.write(req["rc"])


def _run_request(req: dict, cfg: dict, iso: dict, me: int, workdir: str) -> dict:
    if not iso["netns"]:  # with namespaces the temp dir is a fresh tmpfs, filled inside C
        _write_request_files(req, workdir)
    return _supervise(req, cfg, iso, me, workdir)


def remove_tree(path: str) -> None:
    """Delete a temp dir however a hostile program left it: any depth, read-only or mode-000 directories, and
    symlinks removed without ever touching their targets. shutil.rmtree first (fast; Python 3.11's recursion
    stops at ~1000 levels), then, for whatever is left, `chmod -R u+rwx` (which never follows links met while
    recursing) and `rm -rf`."""
    try:
        shutil.rmtree(path)
        return
    except BaseException:  # noqa: BLE001 - PermissionError, RecursionError... the tools below handle them
        pass
    if not os.path.lexists(path):
        return
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
    for argv in (["chmod", "-R", "u+rwx", "--", path], ["rm", "-rf", "--", path]):
        try:
            subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env=env, timeout=600, check=False)
        except (OSError, subprocess.SubprocessError):
            pass


#: the most a harness's record may take (pylint's whole text output travels in it)
RECORD_CAP = 16 << 20


class _Capture:
    """What the program wrote: its output (kept up to the cap, counted beyond) and the harness's record."""

    def __init__(self, out_fd: int, cap: int) -> None:
        self.out_fd, self.cap = out_fd, cap
        self.output, self.record, self.total = bytearray(), bytearray(), 0

    def feed(self, fd: int, chunk: bytes, count: bool = True) -> None:
        if fd == self.out_fd:
            self.total += len(chunk) if count else 0
            self.output += chunk[: max(0, self.cap - len(self.output))]
        else:
            self.record += chunk[: max(0, RECORD_CAP - len(self.record))]

    def drain(self, fds: set[int]) -> None:
        """Whatever is left in the pipes once the program ended (the harness writes its record last); not counted
        against the output cap, which was checked while it ran."""
        for fd in fds:
            os.set_blocking(fd, False)
            try:
                while chunk := os.read(fd, 65536):
                    self.feed(fd, chunk, count=False)
            except BlockingIOError:
                pass


def _run_child_c(req: dict, cfg: dict, iso: dict, workdir: str, pipes: tuple[int, int, int, int]) -> None:
    """Body of C (session leader; with namespaces: their creator and G's parent). Never returns."""
    out_r, out_w, res_r, res_w = pipes
    try:
        os.close(out_r)
        os.close(res_r)
        os.setsid()
        if iso["netns"]:
            _enter_namespaces(iso["userns"])
            _readonly_everything_but(workdir, cfg["hide"], cfg["expose"], req["limits"].get("disk_mb", 64))
            _write_request_files(req, workdir)
        else:
            _prctl(PR_SET_CHILD_SUBREAPER, 1)
        g = os.fork()
        if g == 0:
            _run_child_g(req, cfg, workdir, out_w, res_w, iso)
        os.close(out_w)
        os.close(res_w)
        _, status = os.waitpid(g, 0)
        if not iso["netns"]:
            _sweep(os.getpid())
        code = os.waitstatus_to_exitcode(status)
        os._exit(code if code >= 0 else 128 - code)
    except BaseException:  # noqa: BLE001 - a forked child never unwinds into the server: any failure is an exit code
        os._exit(_HARNESS_ERROR + 1)


def _watch(c: int, capture: _Capture, fds: set[int], deadline: float) -> tuple[str | None, int | None]:
    """Relay C's pipes until it exits, the deadline passes ("timeout") or the output passes its cap ("output").
    Returns (why the server stopped it, or None; C's wait status when it exited)."""
    try:  # C's pidfd (when there is one) wakes the select as C exits; without one, poll every 50 ms
        pidfds, tick = [os.pidfd_open(c)], 1.0
    except (AttributeError, OSError):
        pidfds, tick = [], 0.05
    try:
        while (now := time.monotonic()) < deadline:
            ready, _, _ = select.select(list(fds) + pidfds, [], [], min(deadline - now, tick))
            for fd in set(ready) & fds:
                chunk = os.read(fd, 65536)
                if chunk:
                    capture.feed(fd, chunk)
                else:
                    fds.discard(fd)
            if capture.total > capture.cap:
                return "output", None
            pid, status = os.waitpid(c, os.WNOHANG)
            if pid == c:
                return None, status
        return "timeout", None
    finally:
        for pidfd in pidfds:
            os.close(pidfd)


def _supervise(req: dict, cfg: dict, iso: dict, me: int, workdir: str) -> dict:
    """Run one program in C/G, watch it, end everything it started; return the facts for the verdict
    (jleval.sandbox.verdict decides on the parent side)."""
    lim = req["limits"]
    out_r, out_w = os.pipe()
    res_r, res_w = os.pipe()
    started = time.monotonic()
    c = os.fork()
    if c == 0:  # ---- C
        _run_child_c(req, cfg, iso, workdir, (out_r, out_w, res_r, res_w))
    os.close(out_w)
    os.close(res_w)
    capture, fds = _Capture(out_r, int(lim["output_bytes"])), {out_r, res_r}
    stopped, c_status = _watch(c, capture, fds, started + float(lim["timeout_s"]))
    elapsed = time.monotonic() - started
    try:
        os.killpg(c, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if c_status is None:
        try:
            _, c_status = os.waitpid(c, 0)
        except ChildProcessError:
            c_status = None
    capture.drain(fds)
    os.close(out_r)
    os.close(res_r)
    _sweep(me)
    return {"stopped": stopped, "exit": os.waitstatus_to_exitcode(c_status) if c_status is not None else None,
            "record": bytes(capture.record).decode("utf-8", "replace"), "elapsed_s": elapsed,
            "output": bytes(capture.output).decode("utf-8", "replace"), "output_bytes": capture.total,
            "memory_split": memory_split(lim, _forks(iso))}


_WARMUP_SOURCE = """\
import collections, heapq, itertools, math, re
from typing import List


def f(items: List[int]) -> int:
    counts = collections.Counter(items)
    best = heapq.nlargest(1, counts.values())
    return sum(math.gcd(a, b) for a, b in itertools.pairwise(best)) + len(re.findall(r"a", "aa"))
"""


def _warm_pylint(cfg: dict) -> None:
    import io

    from pylint.lint import Run
    from pylint.reporters.text import TextReporter

    workdir = tempfile.mkdtemp(prefix="warm-", dir=cfg["base_dir"])
    try:
        rc = os.path.join(workdir, "rc")
        src = os.path.join(workdir, "warmup_module.py")
        with open(rc, "w") as f:
            f.write(cfg["warmup_pylintrc"])
        with open(src, "w") as f:
            f.write(_WARMUP_SOURCE)
        Run(["--rcfile", rc, src], reporter=TextReporter(io.StringIO()), exit=False)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _read_exact(fd: int, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _send(obj: dict) -> None:
    data = json.dumps(obj).encode()
    payload = struct.pack(">Q", len(data)) + data
    while payload:
        payload = payload[os.write(1, payload):]


def main() -> None:
    cfg = json.loads(sys.argv[1])
    me = os.getpid()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_DUMPABLE, 0)  # no same-uid process (a program in the fallback) may ptrace or read/write our memory
    keyring = _fresh_session_keyring()  # the server holds none of the caller's keys either
    cfg["expose"] = _python_paths()
    iso = _probe(cfg["isolation"], cfg)
    # the memory limit covers the whole program: one process, or shared out among a few (memory_split)
    iso.update(keyring=keyring, memory="split" if _forks(iso) else "one-process")
    cfg["nproc_base"] = 0 if (iso["uid"] or iso["userns"]) else _user_process_count()
    for module in cfg.get("preload", ()):
        __import__(module)
    if cfg.get("warmup_pylintrc"):
        _warm_pylint(cfg)
    _send({"hello": True, "isolation": iso, "python": sys.version.split()[0]})
    while True:
        header = _read_exact(0, 8)
        if header is None:
            break
        body = _read_exact(0, struct.unpack(">Q", header)[0])
        if body is None:
            break
        req = json.loads(body)
        workdir = tempfile.mkdtemp(prefix="run-", dir=cfg["base_dir"])
        try:
            reply = _run_request(req, cfg, iso, me, workdir)
        except Exception as exc:  # noqa: BLE001 - never die on one request
            reply = {"status": "killed", "reason": f"sandbox server error: {exc!r}", "elapsed_s": 0.0,
                     "output": "", "output_bytes": 0}
        _send(reply)
        remove_tree(workdir)  # after the reply: a deep tree left on disk (the fallback) does not hold up the batch
    _sweep(me)


if __name__ == "__main__":
    main()
