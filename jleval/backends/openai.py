"""The OpenAI-compatible backend: any server speaking the OpenAI HTTP API (`vllm serve`, SGLang, TGI's
OpenAI route, commercial APIs), through httpx.

- Endpoint: `/completions` for text prompts and `/chat/completions` for requests that carry chat messages
  (`endpoint="auto"`); `endpoint="chat"` sends every prompt as one user message, `endpoint="completions"`
  sends the rendered prompt text even for chat requests.
- Servers: `base_url` is one URL or several separated by commas. Each request goes to the live server with the
  fewest requests in flight, at most `concurrency` on each (worker threads over one connection pool per server);
  completions are yielded as each one finishes. A server that refuses connections is drained (no new requests)
  and its requests go to the others; so is one whose failed request (5xx, timeouts, dropped connections after
  the retries) another server then answers. Per-server counts are in describe()["servers"].
- Retries: 429, 5xx, timeouts and dropped connections are retried up to `max_retries` times with exponential
  backoff (`backoff_base * 2**attempt`, capped at `backoff_max`), waiting what the server's `Retry-After` says
  when it says something, up to `retry_after_max` seconds: a server that asks for longer fails the request.
- Bounds: `timeout` is the deadline of one attempt as a whole (connecting, headers and body: a server that
  trickles bytes cannot hold a request longer), and a response body larger than `max_response_bytes` is not read.
- A request that finally fails, or gets an answer that is not a well-formed completion, is yielded as a
  Completion with `error` set and no text; it is never an empty answer and never stops the run. Every server
  refusing connections, or a server rejecting the key or the model (401/403/404), stops the run with a
  BackendError, after every completion received so far has been yielded; so does Ctrl-C (KeyboardInterrupt),
  at once: requests in flight are abandoned, not waited for.
- The API key is read from the environment variable named by `api_key_env` (default OPENAI_API_KEY); none is
  sent when it is unset (a local `vllm serve` needs none). The key never appears in describe().
- `vllm_extensions=True` (default) sends vLLM's extra fields: `add_special_tokens` on the completions endpoint
  (the BOS policy; vLLM would add BOS otherwise) and `repetition_penalty` when it is not 1. Set it to False for
  servers that reject unknown fields.
- Stop strings are sent to the server and also applied to the returned text, so a server that ignores them
  still gives the text vLLM would. Lone surrogates in an answer (`"\\ud800"`, not text) become U+FFFD.
"""
from __future__ import annotations

import contextlib
import email.utils
import json
import math
import operator
import os
import queue
import random
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from jleval.backends import _openai_net as net
from jleval.backends._common import cut_at_stop, find_stop, fingerprint_of, render_chat
from jleval.errors import BackendError, UsageError
from jleval.modelinfo import clean_text, is_count, served_model_info
from jleval.types import Completion, Request

OPTIONS = {"base_url", "api_key_env", "endpoint", "concurrency", "max_retries", "timeout", "backoff_base",
           "backoff_max", "tokenizer", "vllm_extensions", "max_tokens_field", "revision", "max_response_bytes",
           "retry_after_max"}

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUS = {408, 409, 425, 429}  # plus every 5xx
FATAL_STATUS = {401: "the server rejected the API key", 403: "the server refused access",
                404: "the server has no such endpoint or model"}
RETRY_AFTER_MAX = 60.0  # seconds: a server asking for a longer wait fails the request instead
MAX_RESPONSE_BYTES = 16 << 20  # a completion's JSON is kilobytes; anything this large is not one
ERROR_BODY_BYTES = 4096  # how much of an error response is read (for its message)
#: The faults (see _Outcome) that drain a server, and what its connections did: "down" always, "reset" when
#: other servers are left.
_DRAINING_FAULTS: dict[str | None, str] = {"down": "refused", "reset": "dropped"}


class _TooLarge(Exception):
    pass


@dataclass
class _Outcome:
    """What one server made of one request: a completion (maybe an error row) and whose fault a failure is:
    None (the request's own, or success), "server" (worth trying on another server), "reset" (connections
    dropped: among several servers, drained) or "down" (refused: drained)."""

    completion: Completion
    fault: str | None = None


@dataclass
class _Retry:
    """A failed attempt that may be retried (after `retry_after` seconds when the server said so)."""

    error: str
    fault: str = "server"
    retry_after: float | None = None


def parse_base_urls(value: str) -> list[str]:
    """The URLs in a --base-url value (one, or several separated by commas), each checked: http(s) and a host."""
    urls = [u.strip().rstrip("/") for u in value.split(",")]
    for url in urls:
        try:
            parsed = urllib.parse.urlsplit(url)
            parsed.port  # noqa: B018 (raises ValueError on a port that is not a number)
            ok = parsed.scheme in ("http", "https") and bool(parsed.hostname)
        except ValueError:
            ok = False
        if not ok:
            raise UsageError(f"--base-url {net.redact_url(url)!r} is not an http(s) URL with a host",
                             "e.g. --base-url http://127.0.0.1:8000/v1 (several: separated by commas)")
    if len(set(urls)) != len(urls):
        raise UsageError(f"--base-url {net.redact_urls(value)!r} names a server twice", "list each server once")
    return urls


def _check_number(flag: str, value: Any, low: float, *, integer: bool = False, strict: bool = False) -> None:
    """Refuse NaN, infinities, wrong types and values below `low` (or equal to it when `strict`), naming the flag."""
    kinds, what = ((int,), "a whole number") if integer else ((int, float), "a finite number")
    too_low, bound = (operator.le, ">") if strict else (operator.lt, ">=")  # the refusal, and the bound it states
    ok = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or too_low(value, low):
        raise UsageError(f"{flag} must be {what} {bound} {low:g}, not {value!r}")


def check_options(*, concurrency: int = 8, max_retries: int = 5, timeout: float = 120.0, backoff_base: float = 1.0,
                  backoff_max: float = 60.0, max_response_bytes: int = MAX_RESPONSE_BYTES,
                  retry_after_max: float = RETRY_AFTER_MAX, endpoint: str = "auto") -> None:
    """The numeric options and the endpoint, checked before anything is sent (CLI and library alike)."""
    if endpoint not in ("auto", "completions", "chat"):
        raise UsageError(f"unknown endpoint {endpoint!r}", "use auto, completions or chat")
    _check_number("--concurrency", concurrency, 1, integer=True)
    _check_number("--max-retries", max_retries, 0, integer=True)
    _check_number("--request-timeout", timeout, 0, strict=True)
    _check_number("backoff_base", backoff_base, 0)
    _check_number("backoff_max", backoff_max, 0)
    _check_number("max_response_bytes", max_response_bytes, 1, integer=True)
    _check_number("retry_after_max", retry_after_max, 0)


def _count(value: Any) -> int | None:
    return value if is_count(value) else None


class OpenAIBackend:
    name = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 endpoint: str = "auto", concurrency: int = 8, max_retries: int = 5, timeout: float = 120.0,
                 backoff_base: float = 1.0, backoff_max: float = 60.0, tokenizer: str | None = None,
                 vllm_extensions: bool = True, max_tokens_field: str = "max_tokens",
                 revision: str | None = None, probe: bool = True, max_response_bytes: int = MAX_RESPONSE_BYTES,
                 retry_after_max: float = RETRY_AFTER_MAX) -> None:
        check_options(concurrency=concurrency, max_retries=max_retries, timeout=timeout, backoff_base=backoff_base,
                      backoff_max=backoff_max, max_response_bytes=max_response_bytes,
                      retry_after_max=retry_after_max, endpoint=endpoint)
        urls = parse_base_urls(base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL)
        self.model = model
        self.base_url = ",".join(map(net.redact_url, urls))  # as recorded and shown: passwords masked
        self.api_key_env = api_key_env
        self.endpoint = endpoint
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = float(timeout)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_response_bytes = max_response_bytes
        self.retry_after_max = retry_after_max
        self.vllm_extensions = vllm_extensions
        self.max_tokens_field = max_tokens_field
        self.revision = revision
        self._tokenizer_name = tokenizer
        self._tokenizer: Any = None
        self._tokenizer_error: UsageError | None = None
        self.pool = net.ServerPool([net.Server(url, self._client(url)) for url in urls], concurrency)
        self.served_models: list[str] | None = None
        self.served_model: dict[str, Any] | None = None  # the (first) server's /models entry for self.model
        if probe:
            for server in self.pool.servers:
                self._probe(server)

    def _client(self, url: str):
        import httpx

        # identity: no compressed bodies, whose decoded size a cap could only see after inflating them
        headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        client = httpx.Client(
            base_url=url, headers=headers, timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
        )
        net.guard_client(client)
        return client

    # ---- protocol ---------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The `servers` entries are the live count dicts: a manifest holding this describe() and written again
        after the run records the final counts."""
        return {
            "engine": "openai-compatible", "base_url": self.base_url, "model": self.model,
            "revision": self.revision, "endpoint": self.endpoint, "served_models": self.served_models,
            "served_model": self.served_model,
            "vllm_extensions": self.vllm_extensions, "api_key_env": self.api_key_env,
            "api_key_set": bool(os.environ.get(self.api_key_env)), "tokenizer": self._tokenizer_name,
            "request_timeout": self.timeout, "max_retries": self.max_retries,
            "max_response_bytes": self.max_response_bytes, "retry_after_max": self.retry_after_max,
            "servers": [s.stats for s in self.pool.servers],
        }

    def fingerprint(self) -> str:
        # The served model's name (and revision, if given) is its identity; the URL is not (a restarted
        # server on another port still serves the same model).
        return fingerprint_of("openai", {"model": self.model, "revision": self.revision or ""}, "server")

    def count_tokens(self, text: str, add_special_tokens: bool = False) -> int:
        return len(self._get_tokenizer().encode(text, add_special_tokens=add_special_tokens, verbose=False))

    def apply_chat_template(self, messages: Sequence[tuple[str, str]]) -> str:
        """The server applies its own template; this renders one for the cache key and for reading: with the
        model's tokenizer when one is available, else as a plain `role: content` transcript."""
        # no tokenizer asked for: do not look the served model's name up on the Hub for every call
        if self._tokenizer_name is not None or self._tokenizer is not None:
            with contextlib.suppress(UsageError):
                return render_chat(self._get_tokenizer(), messages, self.model)
        return "".join(f"<{role}>\n{content}\n" for role, content in messages)

    def close(self) -> None:
        for server in self.pool.servers:
            server.client.close()

    def generate(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion]]:
        first_chat = next((r for r in requests if r.messages is not None), None)
        if first_chat is not None and self.endpoint == "completions":
            self._completions_prompt(first_chat)  # refuses before anything is sent when the template is unknown
        yield from _Dispatch(self, requests).stream()  # no requests: no worker, nothing yielded

    # ---- one request on one server ----------------------------------------------------------------
    def _path_and_body(self, req: Request) -> tuple[str, dict[str, Any]]:
        gen = req.gen
        body: dict[str, Any] = {"model": self.model, self.max_tokens_field: gen.max_tokens,
                                "temperature": gen.temperature, "top_p": gen.top_p, "n": 1}
        if gen.stop:
            body["stop"] = list(gen.stop)
        if gen.seed is not None:
            body["seed"] = gen.seed
        if self.vllm_extensions and gen.repetition_penalty != 1.0:
            body["repetition_penalty"] = gen.repetition_penalty
        if self.endpoint == "chat" or (self.endpoint == "auto" and req.messages is not None):
            messages = req.messages if req.messages is not None else (("user", req.prompt),)
            body["messages"] = [{"role": role, "content": content} for role, content in messages]
            return "/chat/completions", body
        body["prompt"] = self._completions_prompt(req)
        if self.vllm_extensions:
            body["add_special_tokens"] = req.add_special_tokens
        return "/completions", body

    def _completions_prompt(self, req: Request) -> str:
        """The prompt the completions endpoint is sent: for chat messages, the text the model sees is the messages
        rendered with its own chat template, which only its tokenizer knows (no made-up transcript)."""
        if req.messages is None:
            return req.prompt
        if self._tokenizer_name is None:
            raise UsageError("--endpoint completions with chat messages (--chat-template, the rakuda task) "
                             "needs the served model's chat template",
                             "pass --tokenizer ID_OR_FOLDER, or use --endpoint chat (the server applies it)")
        return render_chat(self._get_tokenizer(), req.messages, self.model)

    def _one(self, server: net.Server, req: Request, stop: threading.Event) -> _Outcome | None:
        """Send one request to one server, with retries. None: the run stopped meanwhile (nothing to record)."""
        path, body = self._path_and_body(req)
        t0 = time.perf_counter()
        tries = 0
        while True:
            result = self._attempt(server, path, body, req, tries, stop)
            tries += 1
            if isinstance(result, _Outcome):
                result.completion.latency_s = time.perf_counter() - t0
                return result
            if stop.is_set():
                return None
            if tries > self.max_retries or (result.fault == "down" and len(self.pool.live()) > 1):
                break  # out of retries, or a refusing server among several: the others take it from here
            if stop.wait(self._delay(result, tries - 1)):
                return None
            if server.drained:
                break  # drained meanwhile (by another request): the other servers take it from here
        return _Outcome(self._failed(result.error, tries, t0), fault=result.fault)

    def _delay(self, result: _Retry, attempt: int) -> float:
        if result.retry_after is not None:
            return result.retry_after
        # exponential backoff with a little jitter, so that retries do not arrive in lockstep
        return min(self.backoff_max, self.backoff_base * 2 ** attempt * (1 + 0.1 * random.random()))

    @staticmethod
    def _failed(error: str, attempts: int, t0: float) -> Completion:
        return Completion(text="", finish_reason="error", latency_s=time.perf_counter() - t0,
                          error=clean_text(f"{error} (after {attempts} attempt(s))"))

    def _attempt(self, server: net.Server, path: str, body: dict[str, Any], req: Request, attempt: int,
                 stop: threading.Event) -> _Outcome | _Retry:
        import httpx

        try:
            status, headers, data = self._exchange(server, path, body, stop)
        except httpx.ConnectError as err:
            return _Retry(f"cannot connect to {server.url}: {err}", fault="down")
        except httpx.TimeoutException:
            why = "no complete answer within" if net.expired() == "deadline" else "timed out after"
            return _Retry(f"timed out: {why} {self.timeout:g} s (--request-timeout)")
        except httpx.TransportError as err:  # connection reset or dropped mid-response, protocol errors
            return _Retry(f"{type(err).__name__}: {err}", fault="reset")
        except _TooLarge as err:
            return _Outcome(self._failed(str(err), attempt + 1, time.perf_counter()))
        if status == 200:
            return _Outcome(self._parse(data, path, req, attempt))
        return self._http_error(server, path, status, headers, data, attempt)

    def _http_error(self, server: net.Server, path: str, status: int, headers, data: bytes,
                    attempt: int) -> _Outcome | _Retry:
        snippet = data[:300].decode("utf-8", "replace").strip()
        error = f"HTTP {status} from {path}: {snippet}"
        if status in FATAL_STATUS:
            raise BackendError(f"{FATAL_STATUS[status]} (HTTP {status} from {server.url}{path}): {snippet}",
                         f"check ${self.api_key_env}, --base-url and the model name {self.model!r} "
                         "(GET /models lists what the server serves)")
        if status not in RETRY_STATUS and status < 500:  # a bad request stays bad: no retry
            return _Outcome(self._failed(error, attempt + 1, time.perf_counter()))
        retry_after = _retry_after(headers.get("Retry-After"))
        if retry_after is not None and retry_after > self.retry_after_max:
            error += f" with Retry-After {retry_after:g} s, longer than the {self.retry_after_max:g} s jleval waits"
            return _Outcome(self._failed(error, attempt + 1, time.perf_counter()), fault="server")
        return _Retry(error, retry_after=retry_after)

    def _exchange(self, server: net.Server, path: str, body: dict[str, Any],
                  stop: threading.Event) -> tuple[int, Any, bytes]:
        """POST within the request's deadline; the body read in chunks, refused past `max_response_bytes`."""
        with net.deadline(self.timeout, stop), server.client.stream("POST", path, json=body) as resp:
            if resp.status_code != 200:  # an error message past the limit: its start is enough
                return resp.status_code, resp.headers, net.read_capped(resp, ERROR_BODY_BYTES)[0]
            limit = self.max_response_bytes
            declared = resp.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise _TooLarge(self._too_large(f"{int(declared)} bytes"))
            data, over = net.read_capped(resp, limit)
            if over:
                raise _TooLarge(self._too_large(f"more than {limit} bytes"))
            return resp.status_code, resp.headers, data

    def _too_large(self, size: str) -> str:
        return (f"the response was too large ({size}; the limit is {self.max_response_bytes} bytes, "
                "max_response_bytes): not a completion")

    def _parse(self, data: bytes, path: str, req: Request, attempt: int) -> Completion:
        """A 200 answer as a Completion; anything that is not a well-formed completion is an error row."""
        try:
            choice, usage = _choice_of(data)
            text = choice["message"]["content"] if path == "/chat/completions" else choice["text"]
            if not isinstance(text, str):
                raise TypeError(f"the text is {type(text).__name__}, not a string")
        except (ValueError, KeyError, IndexError, TypeError, RecursionError) as err:
            shown = data[:200].decode("utf-8", "replace")
            error = f"malformed response from {path} ({type(err).__name__}: {err}): {shown}"
            return Completion(text="", finish_reason="error", error=clean_text(error))
        text = clean_text(text)
        finish = choice.get("finish_reason")
        finish = clean_text(finish) if isinstance(finish, str) else None
        if find_stop(text, req.gen.stop) is not None:  # the server ignored a stop string: cut as vLLM would
            text, finish = cut_at_stop(text, req.gen.stop), "stop"
        extra: dict[str, Any] = {"attempts": attempt + 1}
        if isinstance(choice.get("stop_reason"), (str, int)) and not isinstance(choice["stop_reason"], bool):
            stop_reason = choice["stop_reason"]
            extra["stop_reason"] = clean_text(stop_reason) if isinstance(stop_reason, str) else stop_reason
        return Completion(text=text, finish_reason=finish, prompt_tokens=_count(usage.get("prompt_tokens")),
                          completion_tokens=_count(usage.get("completion_tokens")), extra=extra)

    def _refused(self, server: net.Server, err: Exception | str | None) -> BackendError:
        return BackendError(f"the server at {server.url} refuses connections: {err}",
                      "start the server (e.g. `vllm serve MODEL`), or fix --base-url / $OPENAI_BASE_URL")

    def _probe(self, server: net.Server) -> None:
        """GET /models once: a refused connection or a rejected key fails here, before any work is queued."""
        import httpx

        try:
            with net.deadline(min(self.timeout, 30.0)), server.client.stream("GET", "/models") as resp:
                data, over = net.read_capped(resp, self.max_response_bytes)
        except httpx.ConnectError as err:
            raise self._refused(server, err) from None
        except httpx.HTTPError:
            return  # slow or odd servers get their chance with the real requests
        if resp.status_code in (401, 403):
            raise BackendError(f"{FATAL_STATUS[resp.status_code]} (HTTP {resp.status_code} from "
                               f"{server.url}/models)", f"set ${self.api_key_env} to a valid key")
        if resp.status_code == 200 and not over:  # a listing past the size cap is not read: the requests will tell
            self._check_served(server, data)

    def _check_served(self, server: net.Server, data: bytes) -> None:
        try:
            entries = json.loads(data).get("data", [])
            served = [clean_text(str(m["id"])) for m in entries]
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return
        if served and self.model not in served:
            raise BackendError(f"the server at {server.url} does not serve {self.model!r}",
                               f"it serves: {', '.join(served[:10])}")
        self.served_models = sorted(set(self.served_models or []) | set(served))
        if self.served_model is None:  # recorded in the manifest: cleaned (valid text, finite integers)
            entry = next((m for m in entries if m["id"] == self.model), None)
            self.served_model = served_model_info(entry).get("server")  # no entry: None

    def _get_tokenizer(self):
        if self._tokenizer is None:
            if self._tokenizer_error is not None:  # tried once already: a failed lookup is not retried per call
                raise self._tokenizer_error
            from transformers import AutoTokenizer

            name = self._tokenizer_name or self.model
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(name)
            except Exception as err:  # noqa: BLE001 (any failure means: no local tokenizer)
                self._tokenizer_error = UsageError(
                    f"counting tokens for {self.model!r} needs its tokenizer, and {name!r} did not load: {err}",
                    "pass --tokenizer (a Hugging Face id or folder of the served model's tokenizer)",
                )
                raise self._tokenizer_error from None
        return self._tokenizer


def _choice_of(data: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first choice and the usage (empty when absent or malformed) of a completion response."""
    obj = json.loads(data)
    if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list) or not obj["choices"]:
        raise ValueError("no choices in the answer")
    choice = obj["choices"][0]
    if not isinstance(choice, dict):
        raise TypeError("the first choice is not an object")
    usage = obj.get("usage")
    return choice, usage if isinstance(usage, dict) else {}


class _Dispatch:
    """One generate() call: worker threads take requests in order, each serves one on the least busy server (and
    on others when that one fails it), and the caller's thread yields what they finish."""

    def __init__(self, backend: OpenAIBackend, requests: Sequence[Request]) -> None:
        self.b, self.requests = backend, requests
        self.stop = threading.Event()
        self.done: queue.SimpleQueue = queue.SimpleQueue()  # ("done", index, Completion) | ("error", index, exc)
        self._next, self._lock = 0, threading.Lock()
        n = min(len(requests), backend.concurrency * len(backend.pool.servers))
        self.threads = [threading.Thread(target=self._work, name=f"jleval-openai-{k}", daemon=True)
                        for k in range(n)]

    def stream(self) -> Iterator[tuple[int, Completion]]:
        for t in self.threads:
            t.start()
        left = len(self.requests)
        try:
            while left:
                try:  # a timed wait, so that Ctrl-C is seen at once whichever thread the signal hits
                    kind, index, payload = self.done.get(timeout=net.POLL_S)
                except queue.Empty:
                    continue
                if kind == "error":
                    yield from self._finish()
                    raise payload  # a BackendError when continuing is pointless (no server, bad key)
                left -= 1
                yield index, payload
        except KeyboardInterrupt:
            yield from self._finish()  # every completion received is handed over before the interrupt goes on
            raise
        finally:
            self.stop.set()

    def _finish(self) -> Iterator[tuple[int, Completion]]:
        """Stop the workers (each notices within POLL_S), then yield the completions that arrived meanwhile."""
        self.stop.set()
        end = time.monotonic() + 1.0
        for t in self.threads:
            t.join(max(0.0, end - time.monotonic()))
        while True:
            try:
                kind, index, payload = self.done.get_nowait()
            except queue.Empty:
                return
            if kind == "done":
                yield index, payload

    def _take(self) -> int | None:
        with self._lock:
            if self.stop.is_set() or self._next >= len(self.requests):
                return None
            self._next += 1
            return self._next - 1

    def _work(self) -> None:
        while (index := self._take()) is not None:
            try:
                completion = self._serve(self.requests[index])
            except BaseException as err:  # noqa: BLE001 (handed to the caller's thread, which raises it)
                self.stop.set()
                self.done.put(("error", index, err))
                return
            if completion is None:
                return
            self.done.put(("done", index, completion))

    def _serve(self, req: Request) -> Completion | None:
        """One request: on the least busy live server, then on others while servers fail it."""
        pool = self.b.pool
        failed_on: list[net.Server] = []
        last: _Outcome | None = None  # the last failure, on failed_on[-1]
        while True:
            server = pool.acquire(failed_on, self.stop)
            if server is None:
                return None if self.stop.is_set() else self._nowhere(failed_on, last)
            outcome = self._serve_on(server, req)
            if outcome is None:
                return None
            if outcome.fault is None:
                if outcome.completion.error is None and last is not None:
                    self._blame(failed_on, last)
                return outcome.completion
            failed_on.append(server)
            last = outcome

    def _serve_on(self, server: net.Server, req: Request) -> _Outcome | None:
        """The request on one server (None: the run stopped meanwhile), counted in the server's stats; a server
        that refused connections is drained, and so is one that dropped them when there are others."""
        pool = self.b.pool
        outcome = None
        try:
            outcome = self.b._one(server, req, self.stop)
        finally:
            pool.release(server, "stopped" if outcome is None else
                         "completed" if outcome.completion.error is None else "failed")
        if outcome is None:
            return None
        connections = _DRAINING_FAULTS.get(outcome.fault)
        if connections is not None and (outcome.fault == "down" or len(pool.servers) > 1):
            pool.drain(server, f"{connections} connections: {outcome.completion.error}")
        return outcome

    def _blame(self, failed_on: list[net.Server], last: _Outcome) -> None:
        """A request another server answered: the servers that failed it are at fault."""
        for server in failed_on:
            self.b.pool.drain(server, f"failed a request another server answered: {last.completion.error}")

    def _nowhere(self, failed_on: list[net.Server], last: _Outcome | None) -> Completion:
        """No server left to try: every one is down (the run stops) or every live one failed this request."""
        servers = self.b.pool.servers
        if self.b.pool.live():
            assert last is not None  # a server is live, so this request was tried on one and failed there
            return last.completion
        reason = last.completion.error if last else servers[-1].stats["drain_reason"]
        if len(servers) == 1:
            raise self.b._refused(servers[0], reason)
        raise self.b._refused((failed_on or servers)[-1], f"every server is down (last: {reason})")


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: a number of seconds (fractions accepted) or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:  # not a number: an HTTP date
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None
