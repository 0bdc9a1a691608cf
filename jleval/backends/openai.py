"""The OpenAI-compatible backend: any server speaking the OpenAI HTTP API (`vllm serve`, SGLang, TGI's
OpenAI route, commercial APIs), through httpx.

- Endpoint: `/completions` for text prompts and `/chat/completions` for requests that carry chat messages
  (`endpoint="auto"`); `endpoint="chat"` sends every prompt as one user message, `endpoint="completions"`
  sends the rendered prompt text even for chat requests.
- Concurrency: at most `concurrency` requests in flight (a thread pool over one connection pool); completions
  are yielded as each one finishes.
- Retries: 429, 5xx, timeouts and dropped connections are retried up to `max_retries` times with exponential
  backoff (`backoff_base * 2**attempt`, capped at `backoff_max`), waiting what the server's `Retry-After` says
  when it says something.
- A request that finally fails is yielded as a Completion with `error` set and no text; it is never an empty
  answer. A server that refuses connections, or rejects the key or the model (401/403/404), stops the run
  with a BackendError, after every completion received so far has been yielded.
- The API key is read from the environment variable named by `api_key_env` (default OPENAI_API_KEY); none is
  sent when it is unset (a local `vllm serve` needs none). The key never appears in describe().
- `vllm_extensions=True` (default) sends vLLM's extra fields: `add_special_tokens` on the completions endpoint
  (the BOS policy; vLLM would add BOS otherwise) and `repetition_penalty` when it is not 1. Set it to False for
  servers that reject unknown fields.
- Stop strings are sent to the server and also applied to the returned text, so a server that ignores them
  still gives the text vLLM would.
"""
from __future__ import annotations

import email.utils
import os
import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Iterator, Sequence

from jleval.backends._common import cut_at_stop, find_stop, fingerprint_of, render_chat
from jleval.errors import BackendError, UsageError
from jleval.types import Completion, Request

OPTIONS = {"base_url", "api_key_env", "endpoint", "concurrency", "max_retries", "timeout", "backoff_base",
           "backoff_max", "tokenizer", "vllm_extensions", "max_tokens_field", "revision"}

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUS = {408, 409, 425, 429}  # plus every 5xx
FATAL_STATUS = {401: "the server rejected the API key", 403: "the server refused access",
                404: "the server has no such endpoint or model"}


RETRY_AFTER_MAX = 600.0  # seconds: a longer Retry-After is not worth waiting for within a run


class _Fatal(Exception):
    """Raised inside a worker when continuing is pointless (no server, bad key); ends the run."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


class OpenAIBackend:
    name = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 endpoint: str = "auto", concurrency: int = 8, max_retries: int = 5, timeout: float = 120.0,
                 backoff_base: float = 1.0, backoff_max: float = 60.0, tokenizer: str | None = None,
                 vllm_extensions: bool = True, max_tokens_field: str = "max_tokens",
                 revision: str | None = None, probe: bool = True) -> None:
        import httpx

        if endpoint not in ("auto", "completions", "chat"):
            raise UsageError(f"unknown endpoint {endpoint!r}", "use auto, completions or chat")
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise UsageError(f"bad openai options: --concurrency {concurrency} (must be >= 1), --max-retries "
                             f"{max_retries} (>= 0), --request-timeout {timeout} (> 0)")
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.api_key_env = api_key_env
        self.endpoint = endpoint
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.vllm_extensions = vllm_extensions
        self.max_tokens_field = max_tokens_field
        self.revision = revision
        self._tokenizer_name = tokenizer
        self._tokenizer: Any = None
        self._tokenizer_error: UsageError | None = None
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self.served_models: list[str] | None = None
        self.served_model: dict[str, Any] | None = None  # the server's /models entry for self.model
        if probe:
            self._probe()

    # ---- protocol ---------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {
            "engine": "openai-compatible", "base_url": self.base_url, "model": self.model,
            "revision": self.revision, "endpoint": self.endpoint, "served_models": self.served_models,
            "served_model": self.served_model,
            "vllm_extensions": self.vllm_extensions, "api_key_env": self.api_key_env,
            "api_key_set": bool(os.environ.get(self.api_key_env)), "tokenizer": self._tokenizer_name,
        }

    def fingerprint(self) -> str:
        # The served model's name (and revision, if given) is its identity; the URL is not (a restarted
        # server on another port still serves the same model).
        return fingerprint_of("openai", {"model": self.model, "revision": self.revision or ""}, "server")

    def count_tokens(self, text: str, add_special_tokens: bool = False) -> int:
        return len(self._get_tokenizer().encode(text, add_special_tokens=add_special_tokens))

    def apply_chat_template(self, messages: Sequence[tuple[str, str]]) -> str:
        """The server applies its own template; this renders one for the cache key and for reading: with the
        model's tokenizer when one is available, else as a plain `role: content` transcript."""
        if self._tokenizer_name is None and self._tokenizer is None:
            # no tokenizer asked for: do not look the served model's name up on the Hub for every call
            return "".join(f"<{role}>\n{content}\n" for role, content in messages)
        try:
            return render_chat(self._get_tokenizer(), messages, self.model)
        except UsageError:
            return "".join(f"<{role}>\n{content}\n" for role, content in messages)

    def close(self) -> None:
        self._client.close()

    def generate(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion]]:
        first_chat = next((r for r in requests if r.messages is not None), None)
        if first_chat is not None and self.endpoint == "completions":
            self._path_and_body(first_chat)  # refuses before anything is sent when the template is unknown
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="jleval-openai")
        pending: dict[Future, int] = {}
        queue = iter(enumerate(requests))

        def refill() -> None:
            # Submit lazily so that an abort leaves the rest unsent, and memory stays flat on big runs.
            while len(pending) < 2 * self.concurrency:
                nxt = next(queue, None)
                if nxt is None:
                    return
                pending[pool.submit(self._one, nxt[1], stop)] = nxt[0]

        try:
            refill()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    index = pending.pop(fut)
                    try:
                        completion = fut.result()
                    except _Fatal as err:
                        stop.set()
                        # Completions other workers already received are still handed over first.
                        for other in list(pending):
                            if other.done() and not other.cancelled() and other.exception() is None \
                                    and other.result() is not None:
                                yield pending.pop(other), other.result()
                        raise BackendError(str(err), err.hint) from None
                    if completion is not None:
                        yield index, completion
                refill()
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)

    # ---- one request ------------------------------------------------------------------------------
    def _path_and_body(self, req: Request) -> tuple[str, dict[str, Any]]:
        gen = req.gen
        chat = self.endpoint == "chat" or (self.endpoint == "auto" and req.messages is not None)
        body: dict[str, Any] = {"model": self.model, self.max_tokens_field: gen.max_tokens,
                                "temperature": gen.temperature, "top_p": gen.top_p, "n": 1}
        if gen.stop:
            body["stop"] = list(gen.stop)
        if gen.seed is not None:
            body["seed"] = gen.seed
        if self.vllm_extensions and gen.repetition_penalty != 1.0:
            body["repetition_penalty"] = gen.repetition_penalty
        if chat:
            messages = req.messages if req.messages is not None else (("user", req.prompt),)
            body["messages"] = [{"role": role, "content": content} for role, content in messages]
            return "/chat/completions", body
        if req.messages is not None:
            # chat messages on the completions endpoint: the text the model sees is the messages rendered with
            # its own chat template, which only its tokenizer knows (no made-up transcript)
            if self._tokenizer_name is None:
                raise UsageError("--endpoint completions with chat messages (--chat-template, the rakuda task) "
                                 "needs the served model's chat template",
                                 "pass --tokenizer ID_OR_FOLDER, or use --endpoint chat (the server applies it)")
            body["prompt"] = render_chat(self._get_tokenizer(), req.messages, self.model)
        else:
            body["prompt"] = req.prompt
        if self.vllm_extensions:
            body["add_special_tokens"] = req.add_special_tokens
        return "/completions", body

    def _one(self, req: Request, stop: threading.Event) -> Completion | None:
        """Send one request with retries. None means the run was aborted meanwhile (nothing to record)."""
        import httpx

        path, body = self._path_and_body(req)
        t0 = time.perf_counter()
        last_error = "not sent"
        for attempt in range(self.max_retries + 1):
            if stop.is_set():
                return None
            retry_after = None
            try:
                resp = self._client.post(path, json=body)
            except httpx.ConnectError as err:
                last_error = f"cannot connect to {self.base_url}: {err}"
                if attempt == self.max_retries:
                    raise self._refused(err) from None
            except httpx.TimeoutException:
                last_error = f"timed out after {self.timeout:g} s"
            except httpx.TransportError as err:  # connection dropped mid-response, protocol errors
                last_error = f"{type(err).__name__}: {err}"
            else:
                if resp.status_code == 200:
                    return self._parse(resp, path, req, time.perf_counter() - t0, attempt)
                snippet = resp.text[:300].strip()
                last_error = f"HTTP {resp.status_code} from {path}: {snippet}"
                if resp.status_code in FATAL_STATUS:
                    raise _Fatal(f"{FATAL_STATUS[resp.status_code]} (HTTP {resp.status_code} from "
                                 f"{self.base_url}{path}): {snippet}",
                                 f"check ${self.api_key_env}, --base-url and the model name {self.model!r} "
                                 "(GET /models lists what the server serves)")
                if resp.status_code not in RETRY_STATUS and resp.status_code < 500:
                    break  # a bad request stays bad: no retry
                retry_after = _retry_after(resp.headers.get("Retry-After"))
            if attempt < self.max_retries:
                if retry_after is not None:
                    delay = min(retry_after, RETRY_AFTER_MAX)
                else:  # exponential backoff with a little jitter, so that retries do not arrive in lockstep
                    delay = min(self.backoff_max, self.backoff_base * 2 ** attempt * (1 + 0.1 * random.random()))
                if stop.wait(delay):
                    return None
        return Completion(text="", finish_reason="error", latency_s=time.perf_counter() - t0,
                          error=f"{last_error} (after {attempt + 1} attempt(s))")

    def _refused(self, err: Exception) -> _Fatal:
        return _Fatal(f"the server at {self.base_url} refuses connections: {err}",
                      "start the server (e.g. `vllm serve MODEL`), or fix --base-url / $OPENAI_BASE_URL")

    def _parse(self, resp, path: str, req: Request, latency: float, attempt: int) -> Completion:
        try:
            data = resp.json()
            choice = data["choices"][0]
            text = choice["message"]["content"] if path == "/chat/completions" else choice["text"]
            if text is None:
                raise KeyError("content is null")
        except (ValueError, KeyError, IndexError, TypeError) as err:
            return Completion(text="", finish_reason="error", latency_s=latency,
                              error=f"malformed response from {path} ({type(err).__name__}: {err}): "
                                    f"{resp.text[:200]}")
        usage = data.get("usage") or {}
        finish = choice.get("finish_reason")
        found = find_stop(text, req.gen.stop)
        if found is not None:  # the server ignored a stop string: cut as vLLM would
            text, finish = cut_at_stop(text, req.gen.stop), "stop"
        extra: dict[str, Any] = {"attempts": attempt + 1}
        if choice.get("stop_reason") is not None:
            extra["stop_reason"] = choice["stop_reason"]
        return Completion(text=text, finish_reason=finish, prompt_tokens=usage.get("prompt_tokens"),
                          completion_tokens=usage.get("completion_tokens"), latency_s=latency, extra=extra)

    def _probe(self) -> None:
        """GET /models once: a refused connection or a rejected key fails here, before any work is queued."""
        import httpx

        try:
            resp = self._client.get("/models", timeout=min(self.timeout, 30.0))
        except httpx.ConnectError as err:
            fatal = self._refused(err)
            raise BackendError(str(fatal), fatal.hint) from None
        except httpx.HTTPError:
            return  # slow or odd servers get their chance with the real requests
        if resp.status_code in (401, 403):
            raise BackendError(f"{FATAL_STATUS[resp.status_code]} (HTTP {resp.status_code} from "
                               f"{self.base_url}/models)", f"set ${self.api_key_env} to a valid key")
        if resp.status_code == 200:
            try:
                entries = resp.json().get("data", [])
                self.served_models = [m["id"] for m in entries]
                self.served_model = next((m for m in entries if m["id"] == self.model), None)
            except (ValueError, KeyError, TypeError, AttributeError):
                self.served_models = None
            if self.served_models and self.model not in self.served_models:
                raise BackendError(
                    f"the server at {self.base_url} does not serve {self.model!r}",
                    f"it serves: {', '.join(self.served_models[:10])}",
                )

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


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: a number of seconds (fractions accepted) or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())

