"""The openai backend's plumbing: a per-request deadline that holds against slow servers, and the set of servers
one run spreads its requests over.

Deadline. httpx's timeouts bound each read and write, not a whole request: a server that sends one byte a second
keeps a request alive forever. Every socket of the backend's clients goes through `_GuardedStream`, which waits in
slices of `POLL_S` and gives up when the current request's deadline (set per worker thread by `deadline()`) has
passed or its stop event is set. So a request ends by its deadline (headers and body together), and a stopped run
(Ctrl-C) frees every worker within a fraction of a second, without closing sockets under another thread's feet.

Servers. `ServerPool` hands each request to the live server with the fewest requests in flight (at most
`per_server` each), and drains a server (no new requests, ever, in this run) when it refuses connections, or when
a request it failed is then answered by another server. Per-server counts go into the run's manifest.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import threading
import time
from collections.abc import Iterator
from typing import Any

POLL_S = 0.2  # how often a waiting read looks at its request's deadline and stop event

_current = threading.local()  # .deadline (time.monotonic() value or None), .stop (Event or None), .expired


@contextlib.contextmanager
def deadline(seconds: float, stop: threading.Event | None = None) -> Iterator[None]:
    """Bound every socket operation this thread makes inside the block to `seconds` in total."""
    _current.deadline, _current.stop, _current.expired = time.monotonic() + seconds, stop, None
    try:
        yield
    finally:
        _current.deadline = _current.stop = None


def expired() -> str | None:
    """Why this thread's last guarded request was cut: "deadline", "stopped", or None."""
    return getattr(_current, "expired", None)


def _left(timeout_error: type[Exception]) -> float | None:
    """Seconds left to this thread's request (None: no deadline set); raises `timeout_error` when none are."""
    end = getattr(_current, "deadline", None)
    if end is None:
        return None
    stop = _current.stop
    if stop is not None and stop.is_set():
        _current.expired = "stopped"
        raise timeout_error("the run was stopped")
    left = end - time.monotonic()
    if left <= 0:
        _current.expired = "deadline"
        raise timeout_error("the request's deadline passed")
    return left


def _bounded(timeout: float | None, timeout_error: type[Exception]) -> float | None:
    left = _left(timeout_error)
    if left is None:
        return timeout
    return left if timeout is None else min(timeout, left)


def _network_classes():
    import httpcore

    class GuardedStream(httpcore.NetworkStream):
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            gap_end = None if timeout is None else time.monotonic() + timeout
            while True:
                left = _left(httpcore.ReadTimeout)
                if left is None:
                    return self._inner.read(max_bytes, timeout)
                wait = min(POLL_S, left) if gap_end is None else min(POLL_S, left, gap_end - time.monotonic())
                try:
                    return self._inner.read(max_bytes, max(wait, 0.001))
                except httpcore.ReadTimeout:
                    if gap_end is not None and time.monotonic() >= gap_end:
                        raise

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

        def close(self) -> None:
            self._inner.close()

        def start_tls(self, ssl_context, server_hostname=None, timeout=None):
            return GuardedStream(self._inner.start_tls(ssl_context, server_hostname,
                                                       _bounded(timeout, httpcore.ConnectTimeout)))

        def get_extra_info(self, info: str) -> Any:
            return self._inner.get_extra_info(info)

    class GuardedBackend(httpcore.NetworkBackend):
        def __init__(self) -> None:
            self._inner = httpcore.SyncBackend()

        def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
            return GuardedStream(self._inner.connect_tcp(host, port, _bounded(timeout, httpcore.ConnectTimeout),
                                                         local_address, socket_options))

        def connect_unix_socket(self, path, timeout=None, socket_options=None):
            return GuardedStream(self._inner.connect_unix_socket(
                path, _bounded(timeout, httpcore.ConnectTimeout), socket_options))

        def sleep(self, seconds: float) -> None:
            self._inner.sleep(seconds)

    return GuardedBackend


def guard_client(client: Any) -> None:
    """Route the sockets of an httpx.Client (its transport and any proxy transports from the environment) through
    the deadline guard. httpx has no public hook for a network backend, so this sets the connection pools' one."""
    backend = _network_classes()()
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    guarded = 0
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if pool is not None and hasattr(pool, "_network_backend"):
            pool._network_backend = backend
            guarded += 1
    if not guarded:
        from jleval.errors import BackendError

        raise BackendError("the installed httpx has no connection pool the openai backend can put its request "
                           "deadline on", 'install the version jleval was tested with: pip install "httpx>=0.27,<0.29"')


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


#: Bodies are read in pieces of this size (decoded bytes), so a size cap is checked every 64 KiB.
READ_CHUNK = 1 << 16


def read_capped(resp: Any, limit: int) -> tuple[bytes, bool]:
    """A streamed httpx response's body, decoded, read in READ_CHUNK pieces until it ends or passes `limit`
    bytes: (what was read, whether it went past the limit). The rest is never read. A gzip body is inflated here,
    never more than the cap allows at a time (httpx would inflate each 64 KiB it receives whole: up to 64 MiB)."""
    if resp.headers.get("Content-Encoding", "").strip().lower() in ("gzip", "x-gzip"):
        return _read_gzip_capped(resp, limit)
    chunks, size = [], 0
    for chunk in resp.iter_bytes(chunk_size=READ_CHUNK):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), True
    return b"".join(chunks), False


def _read_gzip_capped(resp: Any, limit: int) -> tuple[bytes, bool]:
    """read_capped for a gzip body: the raw bytes inflated at most READ_CHUNK at a time. A body that is not gzip
    gives what was inflated so far (the caller's parser then refuses it)."""
    import zlib

    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray()
    try:
        for raw in resp.iter_raw(chunk_size=READ_CHUNK):
            data = raw
            while data:
                out += inflate.decompress(data, READ_CHUNK)
                if len(out) > limit:
                    return bytes(out), True
                data = inflate.unconsumed_tail
    except zlib.error:
        pass
    return bytes(out), False


def redact_url(url: str) -> str:
    """`url` with the password of its user info masked (http://user:***@host/v1), as it may be recorded or shown;
    a URL without one is returned as is. Also for text that is not a valid URL (error messages quote it)."""
    scheme, _, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, _, host = netloc.rpartition("@")
    if ":" not in userinfo:  # no "://", no "@" or no password: nothing to mask
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}{slash}{path}"


def redact_urls(value: str) -> str:
    """redact_url over a comma-separated list of URLs (the --base-url value)."""
    return ",".join(redact_url(u) for u in value.split(","))


class Server:
    """One base URL, its client and its counts (the `stats` dict is what describe() reports, kept up to date).
    `url` is the URL as shown and recorded (a password masked); the client holds the real one."""

    def __init__(self, url: str, client: Any) -> None:
        url = redact_url(url)
        self.url, self.client = url, client
        self.outstanding = 0
        self.stats: dict[str, Any] = {"url": url, "requests": 0, "completed": 0, "failed": 0, "drained_at": None,
                                      "drain_reason": None}

    @property
    def drained(self) -> bool:
        return self.stats["drained_at"] is not None


class ServerPool:
    """Least-outstanding-requests over the live servers, at most `per_server` requests in flight on each."""

    def __init__(self, servers: list[Server], per_server: int) -> None:
        self.servers, self.per_server = servers, per_server
        self._cond = threading.Condition()

    def live(self) -> list[Server]:
        return [s for s in self.servers if not s.drained]

    def acquire(self, exclude: list[Server], stop: threading.Event) -> Server | None:
        """The live server (not in `exclude`) with the fewest requests in flight, waiting for a free slot; None
        when no such server is left or the run stops."""
        with self._cond:
            while not stop.is_set():
                candidates = [s for s in self.live() if s not in exclude]
                if not candidates:
                    return None
                free = [s for s in candidates if s.outstanding < self.per_server]
                if free:
                    best = min(free, key=lambda s: s.outstanding)
                    best.outstanding += 1
                    best.stats["requests"] += 1
                    return best
                self._cond.wait(POLL_S)
            return None

    def release(self, server: Server, outcome: str) -> None:
        """`outcome`: "completed", "failed" or "stopped" (an abandoned request counts as neither)."""
        with self._cond:
            server.outstanding -= 1
            if outcome != "stopped":
                server.stats[outcome] += 1
            self._cond.notify_all()

    def drain(self, server: Server, reason: str) -> None:
        with self._cond:
            if not server.drained:
                server.stats["drained_at"], server.stats["drain_reason"] = _now(), reason
            self._cond.notify_all()
