"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1 that speaks the OpenAI protocol.

The server's "model" answers `echo:<end of the prompt>` followed by a blank line and more text, one character
per token, honouring max_tokens and stop strings like vLLM's server. Markers in a prompt script failures:
[429:N] N times 429 with Retry-After, [503:N] N times 503 without it, [500] always 500, [400] a bad request,
[sleep] an answer slower than the client's timeout, [slow] a short delay, [bad-json] a broken body,
[nostop] a server that ignores stop strings. Hostile servers: [drip] sends its whole answer one byte at a time,
[hang] never answers, [huge:N] / [huge-cl:N] send N bytes (without / with Content-Length), [wait-forever] a 429
with Retry-After: 100000, and odd 200 answers ([num-text], [usage-str], [surrogate], [no-choices], [not-json],
[not-object], [deep]). A server can also be made to answer everything slowly (`delay`), fail everything with 500
(`broken`), or die after its Nth answer (`die_after`: in-flight requests then get their connection closed).
"""
from __future__ import annotations

import contextlib
import email.utils
import functools
import gzip
import json
import re
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from jleval.backends.openai import OpenAIBackend, _retry_after
from jleval.errors import BackendError
from jleval.types import GenParams, Request


class FakeOpenAI(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, model="tiny", key=None, delay=0.0, broken=False, die_after=None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.model, self.key = model, key
        self.delay, self.broken, self.die_after, self.dead = delay, broken, die_after, False
        self.prefix = ""  # put before every echo answer
        self.models_body: bytes | None = None  # GET /v1/models sends this instead of the one-model listing
        self.basic_auth: list[str | None] = []  # the Authorization header of every GET /v1/models
        self.hang_after = None  # answer this many completions, then hang on every request
        self.answered: list[str] = []  # prompts answered with a completion, in order
        self.log: list[tuple[str, dict, dict]] = []
        self.hits: dict[str, int] = {}
        self.inflight = self.max_inflight = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.dead = True
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def log_message(self, *args):  # keep the test output quiet
        pass

    def _send(self, status, obj=None, headers=(), raw=None):
        self._leave()
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self):
        if self.server.key and self.headers.get("Authorization") != f"Bearer {self.server.key}":
            self._send(401, {"error": {"message": "Incorrect API key provided"}})
            return False
        return True

    def do_GET(self):
        if not self._authorised():
            return
        if self.path == "/v1/models":
            self.server.basic_auth.append(self.headers.get("Authorization"))
            if self.server.models_body is not None:
                self._send(200, raw=self.server.models_body)
                return
            self._send(200, {"object": "list", "data": [{"id": self.server.model, "object": "model"}]})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        srv = self.server
        with srv.lock:
            srv.log.append((self.path, body, dict(self.headers)))
            srv.inflight += 1
            srv.max_inflight = max(srv.max_inflight, srv.inflight)
        self.counted = True
        try:
            self._answer(body)
        finally:
            self._leave()

    def _leave(self):
        """No longer in flight: before the answer is sent, so the client cannot send its next request first."""
        if getattr(self, "counted", False):
            self.counted = False
            with self.server.lock:
                self.server.inflight -= 1

    def _answer(self, body):
        srv = self.server
        if not self._authorised():
            return
        time.sleep(srv.delay)
        if srv.hang_after is not None and len(srv.answered) >= srv.hang_after:
            time.sleep(60)
        if srv.dead:  # died while this request was in flight: the connection just closes
            self.close_connection = True
            return
        if srv.broken:
            self._send(500, {"error": {"message": "engine exploded"}})
            return
        chat = self.path == "/v1/chat/completions"
        if self.path not in ("/v1/completions", "/v1/chat/completions") or body.get("model") != srv.model:
            self._send(404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
            return
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        with srv.lock:
            srv.hits[prompt] = hits = srv.hits.get(prompt, 0) + 1
        if m := re.search(r"\[(429|503):(\d+)\]", prompt):
            if hits <= int(m.group(2)):
                headers = [("Retry-After", "0.2")] if m.group(1) == "429" else []
                self._send(int(m.group(1)), {"error": {"message": "busy"}}, headers)
                return
        if "[500]" in prompt:
            self._send(500, {"error": {"message": "engine exploded"}})
            return
        if "[400]" in prompt:
            self._send(400, {"error": {"message": "This model's maximum context length is 2048 tokens"}})
            return
        if "[sleep]" in prompt:
            time.sleep(1.0)
        if "[slow]" in prompt:
            time.sleep(0.15)
        if "[bad-json]" in prompt:
            self._send(200, raw=b"{not json")
            return
        if self._hostile(prompt, chat):
            return
        full = f"{srv.prefix}echo:{prompt[-6:]}\n\nmore text"
        text, finish, stop_reason = full[:body["max_tokens"]], "length", None
        if len(full) <= body["max_tokens"]:
            finish = "stop"
        if "[nostop]" not in prompt:
            for s in body.get("stop") or []:
                at = full.find(s)
                if at != -1 and at < body["max_tokens"]:
                    text, finish, stop_reason = full[:at], "stop", s
                    break
        choice = {"index": 0, "finish_reason": finish, "stop_reason": stop_reason}
        choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
        self._send(200, {"id": "x", "object": "text_completion", "model": srv.model, "choices": [choice],
                         "usage": {"prompt_tokens": len(prompt), "completion_tokens": len(text),
                                   "total_tokens": len(prompt) + len(text)}})
        with srv.lock:
            srv.answered.append(prompt)
            if srv.die_after is not None and len(srv.answered) >= srv.die_after and not srv.dead:
                srv.dead = True
                threading.Thread(target=srv.stop, daemon=True).start()

    def _hostile(self, prompt, chat):
        """The answers of a faulty or hostile server; True when one was sent."""
        odd = {"[num-text]": {"choices": [{"text": 42, "message": {"content": 42}}]},
               "[usage-str]": {"choices": [{"text": "fine", "message": {"content": "fine"}, "finish_reason": 7}],
                               "usage": "lots"},
               "[no-choices]": {"choices": []}, "[not-object]": [1, 2, 3]}
        for marker, obj in odd.items():
            if marker in prompt:
                self._send(200, obj)
                return True
        if "[surrogate]" in prompt:
            key = "message" if chat else "text"
            body = {"choices": [{key: {"content": "a\ud800b"} if chat else "a\ud800b", "finish_reason": "stop"}]}
            self._send(200, body)  # json.dumps writes the lone surrogate as the escape \ud800
            return True
        if "[not-json]" in prompt:
            self._send(200, raw=b"<html>gateway</html>")
            return True
        if "[deep]" in prompt:
            self._send(200, raw=b"[" * 100_000 + b"]" * 100_000)
            return True
        if "[wait-forever]" in prompt:
            self._send(429, {"error": {"message": "quota"}}, [("Retry-After", "100000")])
            return True
        if "[hang]" in prompt:
            time.sleep(30)
            self.close_connection = True
            return True
        return self._stream_odd(prompt)

    def _stream_odd(self, prompt):
        if m := re.search(r"\[huge(-cl)?:(\d+)\]", prompt):
            size = int(m.group(2))
            self.send_response(200)
            if m.group(1):
                self.send_header("Content-Length", str(size))
            self.end_headers()
            block = b"x" * 65536
            with contextlib.suppress(OSError):
                for _ in range(size // len(block)):
                    self.wfile.write(block)
            self.close_connection = True
            return True
        if "[gzip-json]" in prompt:  # a well-formed answer, gzipped
            body = json.dumps({"choices": [{"text": "zipped", "finish_reason": "stop"}]}).encode()
            self._send(200, raw=gzip.compress(body), headers=[("Content-Encoding", "gzip")])
            return True
        if "[gzip-bad]" in prompt:  # says gzip, is not
            self._send(200, raw=b"not gzip at all", headers=[("Content-Encoding", "gzip")])
            return True
        if m := re.search(r"\[gzip:(\d+)\]", prompt):  # N zero bytes gzipped, whatever the client accepts
            self._send(200, raw=_gzipped_zeros(int(m.group(1))), headers=[("Content-Encoding", "gzip")])
            return True
        if "[drip]" in prompt:
            text = json.dumps({"choices": [{"text": "slow", "message": {"content": "slow"}}]}).encode()
            raw = (b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(text)).encode() + b"\r\n\r\n" + text)
            with contextlib.suppress(OSError):
                for i in range(len(raw)):
                    self.wfile.write(raw[i:i + 1])
                    self.wfile.flush()
                    time.sleep(0.05)
            self.close_connection = True
            return True
        return False


@functools.lru_cache(maxsize=2)
def _gzipped_zeros(n: int) -> bytes:
    import zlib

    z = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    block = bytes(1 << 20)
    return b"".join([*(z.compress(block) for _ in range(n >> 20)), z.compress(bytes(n % (1 << 20))), z.flush()])


def req(prompt, i=0, max_tokens=64, stop=("\n\n",), messages=None, bos=False):
    return Request(task="t", sample_id=i, prompt=prompt, gen=GenParams(max_tokens=max_tokens, stop=tuple(stop)),
                   messages=messages, add_special_tokens=bos)


def backend(url, **kw):
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("max_retries", 3)
    kw.setdefault("timeout", 5.0)
    return OpenAIBackend("tiny", base_url=url, **kw)


@pytest.fixture
def server():
    with FakeOpenAI() as srv:
        yield srv


def collect(b, requests):
    got = {}
    for i, c in b.generate(requests):
        assert i not in got
        got[i] = c
    return got


def test_completions_request_and_answer(server, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-test")
    server.key = "sk-test"
    b = backend(server.url, api_key_env="MY_KEY")
    assert b.served_models == ["tiny"]
    got = collect(b, [req("質問：富士山は？\n答え：", max_tokens=32), req("Tokyo", i=1, max_tokens=4, stop=())])
    assert got[0].text == "echo:は？\n答え：" and got[0].finish_reason == "stop" and got[0].error is None
    assert got[0].prompt_tokens == len("質問：富士山は？\n答え：") and got[0].completion_tokens == len(got[0].text)
    assert got[1].text == "echo" and got[1].finish_reason == "length"
    path, body, headers = next(x for x in server.log if x[1]["prompt"].startswith("質問"))
    assert path == "/v1/completions" and headers["Authorization"] == "Bearer sk-test"
    assert body == {"model": "tiny", "prompt": "質問：富士山は？\n答え：", "max_tokens": 32, "temperature": 0.0,
                    "top_p": 1.0, "n": 1, "stop": ["\n\n"], "add_special_tokens": False}
    info = b.describe()
    assert info["api_key_set"] and "sk-test" not in json.dumps(info)
    b.close()


def test_chat_endpoint_for_messages_and_when_configured(server):
    b = backend(server.url)
    msgs = (("system", "日本語で答えて"), ("user", "こんにちは"))
    got = collect(b, [req("rendered chat text", messages=msgs)])
    path, body, _ = server.log[-1]
    assert path == "/v1/chat/completions"
    assert body["messages"] == [{"role": "system", "content": "日本語で答えて"}, {"role": "user", "content": "こんにちは"}]
    assert "add_special_tokens" not in body and got[0].text == "echo:こんにちは"
    forced = backend(server.url, endpoint="chat", vllm_extensions=False)
    collect(forced, [req("plain prompt")])
    path, body, _ = server.log[-1]
    assert path == "/v1/chat/completions" and body["messages"] == [{"role": "user", "content": "plain prompt"}]


def test_completions_endpoint_renders_chat_messages_with_the_models_template(server, tiny_model):
    """--endpoint completions with chat messages: the server gets the messages rendered with the served model's
    template (system prompt included); without a tokenizer that is refused before anything is sent."""
    from jleval.errors import UsageError

    msgs = (("system", "SYSTEMTEXT"), ("user", "こんにちは"))
    sent = len(server.log)
    with pytest.raises(UsageError, match="needs the served model's chat template"):
        collect(backend(server.url, endpoint="completions"), [req("raw", messages=msgs)])
    assert len(server.log) == sent
    collect(backend(server.url, endpoint="completions", tokenizer=str(tiny_model)), [req("raw", messages=msgs)])
    path, body, _ = server.log[-1]
    assert path == "/v1/completions"
    assert body["prompt"].startswith("<|system|>\nSYSTEMTEXT") and body["prompt"].endswith("<|assistant|>\n")


def test_429_then_success_honours_retry_after(server):
    b = backend(server.url, backoff_base=5.0)  # a backoff this long would blow the test: Retry-After is used
    t0 = time.perf_counter()
    got = collect(b, [req("wait for me [429:2]")])
    elapsed = time.perf_counter() - t0
    assert got[0].error is None and got[0].text.startswith("echo:")
    assert got[0].extra["attempts"] == 3 and server.hits["wait for me [429:2]"] == 3
    assert 0.4 <= elapsed < 3.0


def test_503_retried_with_backoff(server):
    got = collect(backend(server.url), [req("flaky [503:2]")])
    assert got[0].error is None and got[0].extra["attempts"] == 3


def test_500_finally_fails_as_an_error_completion(server):
    got = collect(backend(server.url, max_retries=2), [req("boom [500]"), req("fine", i=1)])
    assert got[0].error and "HTTP 500" in got[0].error and "3 attempt" in got[0].error
    assert got[0].text == "" and got[0].finish_reason == "error"
    assert server.hits["boom [500]"] == 3
    assert got[1].error is None and got[1].text == "echo:fine"


def test_400_is_not_retried(server):
    got = collect(backend(server.url), [req("too long [400]")])
    assert "HTTP 400" in got[0].error and "maximum context length" in got[0].error
    assert server.hits["too long [400]"] == 1


def test_timeout_is_an_error_completion(server):
    got = collect(backend(server.url, timeout=0.3, max_retries=1), [req("slowpoke [sleep]"), req("quick", i=1)])
    assert got[0].error and "timed out" in got[0].error and got[0].text == ""
    assert got[1].error is None


def test_malformed_response_is_an_error(server):
    got = collect(backend(server.url), [req("[bad-json]")])
    assert got[0].error and "malformed response" in got[0].error


def test_stop_strings_applied_when_the_server_ignores_them(server):
    got = collect(backend(server.url), [req("x [nostop]")])
    assert got[0].text == "echo:ostop]" and got[0].finish_reason == "stop"


def test_connection_refused_is_a_backend_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BackendError, match="refuses connections"):
        backend(f"http://127.0.0.1:{port}/v1")


def test_server_dying_mid_run_keeps_what_was_received():
    srv = FakeOpenAI().__enter__()
    b = backend(srv.url, concurrency=1, max_retries=1)
    stream = b.generate([req(f"q{i}", i=i) for i in range(5)])
    first = next(stream)
    srv.stop()
    got = [first]
    with pytest.raises(BackendError, match="refuses connections"):
        for item in stream:
            got.append(item)
    assert all(c.error is None for _, c in got) and 1 <= len(got) < 5


def test_bad_key_and_unknown_model_stop_at_once():
    with FakeOpenAI(key="right") as srv:
        with pytest.raises(BackendError, match="rejected the API key|refused access"):
            backend(srv.url)
    with FakeOpenAI(model="other") as srv:
        with pytest.raises(BackendError, match="does not serve 'tiny'"):
            backend(srv.url)
        b = backend(srv.url, probe=False)
        with pytest.raises(BackendError, match="no such endpoint or model"):
            collect(b, [req("hello")])


def test_bounded_concurrency_and_streaming(server):
    b = backend(server.url, concurrency=3)
    order = [i for i, _ in b.generate([req("[sleep] late", i=0, stop=())]
                                      + [req(f"[slow] {i}", i=i) for i in range(1, 9)])]
    assert sorted(order) == list(range(9))
    assert order[-1] == 0, "the slow request does not hold back the ones that finished"
    assert 2 <= server.max_inflight <= 3


def test_retry_after_parsing():
    assert _retry_after("2") == 2.0 and _retry_after("0.5") == 0.5 and _retry_after(None) is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= _retry_after(later) <= 31
    assert _retry_after("soon") is None


def test_chat_rendering_without_a_tokenizer(server):
    b = backend(server.url, tokenizer="./no/such/tokenizer")
    assert b.apply_chat_template([("user", "hi")]) == "<user>\nhi\n"


def test_tokenizer_option_counts_tokens(server, tiny_model):
    b = backend(server.url, tokenizer=str(tiny_model))
    assert b.count_tokens("こんにちは", add_special_tokens=True) == b.count_tokens("こんにちは") + 1
    assert b.apply_chat_template([("user", "hi")]) == "<|user|>\nhi</s>\n<|assistant|>\n"


# ---- hostile and faulty servers (issue 16) ----------------------------------------------------------------------
def test_the_request_timeout_is_a_deadline_for_the_whole_answer(server):
    """A server that trickles its answer (headers included) one byte per 50 ms never trips a per-read timeout;
    the deadline still ends each attempt at --request-timeout."""
    b = backend(server.url, timeout=0.5, max_retries=1)
    t0 = time.monotonic()
    got = collect(b, [req("[drip]"), req("fine", i=1)])
    assert time.monotonic() - t0 < 2.5, "the whole answer takes ~6 s per attempt: the deadline must cut it"
    assert got[0].error and "no complete answer within 0.5 s" in got[0].error and "2 attempt" in got[0].error
    assert got[1].error is None
    assert server.hits["[drip]"] == 2


def test_ctrl_c_returns_at_once_and_keeps_every_completed_reply(server):
    """Ctrl-C while requests hang: KeyboardInterrupt within 2 s (not after the hanging requests), with every
    reply that had arrived handed over before it, and no worker thread left behind."""
    b = backend(server.url, concurrency=4)
    requests = [req("[hang] a", i=0), req("[hang] b", i=1)] + [req(f"fast {i}", i=i) for i in range(2, 6)]
    got = {}
    # Python's own Ctrl-C handler, even where the suite was started with SIGINT ignored (a `cmd &` in a shell
    # without job control): then no KeyboardInterrupt would ever come
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.8, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
    timer.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            for i, c in b.generate(requests):
                got[i] = c
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - t0 < 0.8 + 2.0
    assert sorted(got) == [2, 3, 4, 5] and all(c.error is None for c in got.values())
    time.sleep(0.5)
    assert not [t for t in threading.enumerate() if t.name.startswith("jleval-openai")]


@pytest.mark.parametrize("marker", ["[num-text]", "[no-choices]", "[not-json]", "[not-object]", "[deep]"])
def test_a_malformed_200_answer_is_an_error_row_not_an_abort(server, marker):
    got = collect(backend(server.url), [req(f"odd {marker}"), req("fine", i=1)])
    assert got[0].error and "malformed response" in got[0].error and got[0].text == ""
    assert got[0].finish_reason == "error" and server.hits[f"odd {marker}"] == 1
    assert got[1].error is None and got[1].text == "echo:fine"


def test_odd_usage_and_lone_surrogates_keep_the_answer_and_stay_writable(server):
    msgs = (("user", "[surrogate]"),)
    got = collect(backend(server.url), [req("[usage-str]"), req("[surrogate]", i=1), req("x", i=2, messages=msgs)])
    assert got[0].error is None and got[0].text == "fine"
    assert got[0].prompt_tokens is None and got[0].finish_reason is None
    for k in (1, 2):
        assert got[k].error is None and got[k].text == "a\ufffdb"
        json.dumps({"generation": got[k].text}, ensure_ascii=False).encode("utf-8")  # what run.py writes


def test_any_200_body_is_a_completion_or_an_error_row_never_an_exception():
    """Seeded fuzzing of the answer parser: random values in every field of a completion, truncated bodies and
    random bytes. Each gives a Completion that is either a string answer or an error row, and writes as UTF-8."""
    import random

    rnd = random.Random(16)
    atoms = [None, True, 0, -3, 2 ** 70, 1.5, "", "text", "\ud800", "a\udfffb", "\n\n", [], {}]

    def value(depth=0):
        if depth > 2 or rnd.random() < 0.6:
            return rnd.choice(atoms)
        if rnd.random() < 0.5:
            return [value(depth + 1) for _ in range(rnd.randint(0, 3))]
        return {rnd.choice(["text", "message", "content", "usage", "x"]): value(depth + 1) for _ in range(2)}

    def body():
        choice = {k: value() for k in ("text", "finish_reason", "stop_reason") if rnd.random() < 0.8}
        if rnd.random() < 0.5:
            choice["message"] = {"content": value()} if rnd.random() < 0.8 else value()
        obj = {"choices": [choice] if rnd.random() < 0.8 else value(), "usage": value() if rnd.random() < 0.5 else
               {"prompt_tokens": value(), "completion_tokens": value()}}
        data = json.dumps(obj).encode()
        roll = rnd.random()
        if roll < 0.1:
            return data[:rnd.randint(0, len(data))]
        return bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 40))) if roll < 0.15 else data

    b = OpenAIBackend("tiny", base_url="http://127.0.0.1:9/v1", probe=False)
    kinds = set()
    for _ in range(3000):
        for path in ("/completions", "/chat/completions"):
            c = b._parse(body(), path, req("p"), 0)
            assert (c.error is None) == (c.finish_reason != "error") and isinstance(c.text, str)
            assert c.error is None or c.text == ""
            assert c.prompt_tokens is None or (type(c.prompt_tokens) is int and c.prompt_tokens >= 0)
            assert c.finish_reason is None or isinstance(c.finish_reason, str)
            json.dumps([c.text, c.error, c.finish_reason], ensure_ascii=False).encode("utf-8")
            kinds.add("error" if c.error else "text" if c.text else "empty")
    assert kinds == {"error", "text", "empty"}


@pytest.mark.parametrize("marker", ["[huge:2097152]", "[huge-cl:2097152]"])
def test_a_response_larger_than_the_cap_is_an_error_row(server, marker):
    got = collect(backend(server.url, max_response_bytes=1 << 20), [req(marker), req("fine", i=1)])
    assert got[0].error and "too large" in got[0].error and "1048576" in got[0].error
    assert got[1].error is None and server.hits[marker] == 1


def test_the_default_cap_is_16_mib(server):
    got = collect(backend(server.url), [req("[huge:20971520]")])
    assert got[0].error and "too large" in got[0].error and str(16 << 20) in got[0].error


def test_a_retry_after_past_the_cap_fails_the_request_at_once(server):
    t0 = time.monotonic()
    got = collect(backend(server.url), [req("[wait-forever]")])
    assert time.monotonic() - t0 < 2.0
    assert got[0].error and "HTTP 429" in got[0].error and "Retry-After 100000 s" in got[0].error
    assert server.hits["[wait-forever]"] == 1
    assert _retry_after("inf") is None and _retry_after("nan") is None


@pytest.mark.parametrize("options, message", [
    ({"base_url": "notaurl"}, "--base-url 'notaurl' is not an http"),
    ({"base_url": "ftp://127.0.0.1/v1"}, "--base-url 'ftp://127.0.0.1/v1' is not an http"),
    ({"base_url": "http://"}, "is not an http"),
    ({"base_url": "http://127.0.0.1:port/v1"}, "is not an http"),
    ({"base_url": "http://a:1/v1,"}, "--base-url '' is not an http"),
    ({"base_url": "http://a:1/v1,http://a:1/v1/"}, "names a server twice"),
    ({"timeout": float("nan")}, "--request-timeout must be a finite number > 0, not nan"),
    ({"timeout": float("inf")}, "--request-timeout must be a finite number > 0, not inf"),
    ({"timeout": -1.0}, "--request-timeout must be"),
    ({"timeout": 0}, "--request-timeout must be"),
    ({"max_retries": -1}, "--max-retries must be a whole number >= 0, not -1"),
    ({"concurrency": 0}, "--concurrency must be a whole number >= 1"),
    ({"max_response_bytes": 0}, "max_response_bytes must be"),
    ({"retry_after_max": float("nan")}, "retry_after_max must be"),
])
def test_bad_options_are_one_line_usage_errors_before_anything_is_sent(options, message):
    from jleval.backends import load_backend
    from jleval.errors import UsageError

    options = {"base_url": "http://127.0.0.1:9/v1", **options}
    with pytest.raises(UsageError) as err:
        load_backend("openai", "tiny", **options)
    assert message in err.value.message and "\n" not in err.value.message


# ---- several servers (issue 18) --------------------------------------------------------------------------------
def test_several_servers_one_dying_mid_run_every_request_answered_once():
    """Three servers, one of which dies after its 5th answer with requests in flight: every request comes back
    exactly once without an error, the same as from one server; the dead one is drained; the counts add up."""
    requests = [req(f"question {i:02d}", i=i) for i in range(60)]
    with FakeOpenAI(delay=0.01) as one:
        alone = collect(backend(one.url), requests)
    with FakeOpenAI(delay=0.01) as a, FakeOpenAI(delay=0.01, die_after=5) as dying, FakeOpenAI(delay=0.01) as c:
        b = backend(f"{a.url},{dying.url},{c.url}", concurrency=2)
        got = collect(b, requests)
        servers = {s["url"]: s for s in b.describe()["servers"]}
    assert sorted(got) == list(range(60)) and all(c.error is None for c in got.values())
    assert {i: c.text for i, c in got.items()} == {i: c.text for i, c in alone.items()}
    answered = a.answered + dying.answered + c.answered
    assert sorted(answered) == sorted(r.prompt for r in requests), "each request answered exactly once"
    dead = servers[dying.url]
    assert dead["drained_at"] and re.match("(refused|dropped) connections", dead["drain_reason"])
    # two handlers can both be answering when the 5th answer kills the server, so it may have answered a 6th
    assert dead["completed"] == len(dying.answered) >= 5 and dead["failed"] >= 1
    assert dead["requests"] == dead["completed"] + dead["failed"]
    for srv in (a, c):
        s = servers[srv.url]
        assert s["drained_at"] is None and s["failed"] == 0
        assert s["completed"] == s["requests"] == len(srv.answered) > 5
    assert sum(s["completed"] for s in servers.values()) == 60


def test_least_outstanding_requests_sends_more_to_the_faster_server():
    with FakeOpenAI(delay=0.25) as slow, FakeOpenAI(delay=0.01) as fast:
        b = backend(f"{slow.url},{fast.url}", concurrency=2)
        got = collect(b, [req(f"q{i}", i=i) for i in range(40)])
        counts = {s["url"]: s["completed"] for s in b.describe()["servers"]}
    assert len(got) == 40 and all(c.error is None for c in got.values())
    assert counts[fast.url] >= 3 * counts[slow.url] and counts[slow.url] >= 1
    assert 1 <= slow.max_inflight <= 2 and 1 <= fast.max_inflight <= 2


def test_a_server_failing_what_another_answers_is_drained_but_a_bad_request_drains_none():
    with FakeOpenAI() as good, FakeOpenAI(broken=True) as bad:
        b = backend(f"{bad.url},{good.url}", max_retries=1)
        got = collect(b, [req(f"q{i}", i=i) for i in range(12)])
        servers = {s["url"]: s for s in b.describe()["servers"]}
        assert all(c.error is None for c in got.values()) and len(got) == 12
        assert servers[bad.url]["drained_at"] and "another server answered" in servers[bad.url]["drain_reason"]
        assert servers[bad.url]["completed"] == 0 and servers[bad.url]["failed"] >= 1
        assert servers[good.url]["completed"] == 12 and servers[good.url]["drained_at"] is None
    with FakeOpenAI() as a, FakeOpenAI() as c:  # a request every server fails is the request's fault
        b = backend(f"{a.url},{c.url}", max_retries=1)
        got = collect(b, [req("boom [500]"), req("fine", i=1)])
        assert "HTTP 500" in got[0].error and got[1].error is None
        assert a.hits["boom [500]"] + c.hits["boom [500]"] == 4
        assert all(s["drained_at"] is None for s in b.describe()["servers"])


def test_every_server_down_stops_the_run_after_what_was_received():
    a, c = FakeOpenAI().__enter__(), FakeOpenAI().__enter__()
    b = backend(f"{a.url},{c.url}", concurrency=1, max_retries=1)
    stream = b.generate([req(f"q{i}", i=i) for i in range(8)])
    got = [next(stream)]
    a.stop()
    c.stop()
    with pytest.raises(BackendError, match="refuses connections: every server is down"):
        for item in stream:
            got.append(item)
    assert all(c.error is None for _, c in got) and 1 <= len(got) < 8
    assert all(s["drained_at"] for s in b.describe()["servers"])


def test_the_cli_refuses_a_bad_base_url_before_doing_anything(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "jleval.cli", "run", "tiny", "--backend", "openai", "--base-url",
                        "http://127.0.0.1:8000/v1,notaurl", "--tasks", "jamp", "--data-dir", str(tmp_path / "d"),
                        "--raw-dir", str(tmp_path), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--base-url 'notaurl' is not an http(s) URL with a host" in r.stderr
    assert not (tmp_path / "d").exists() and not (tmp_path / "o").exists()


@pytest.mark.slow  # preprocessing and two runs: ~10 s here
def test_a_run_over_several_servers_writes_what_one_server_gives_and_records_the_counts(raw_dir, tmp_path):
    """`jleval run` end to end: answers with a lone surrogate are written as valid UTF-8 JSON lines, two servers
    give the same outputs as one, and the manifest records each server's final counts."""
    from jleval.jaster.preprocess import preprocess
    from jleval.run import RunOptions, read_outputs, run
    from jleval.tasks import get_task

    data = tmp_path / "jaster"
    preprocess([get_task("jamp")], data, raw_dir=raw_dir)

    def go(url, name):
        opts = RunOptions(model="tiny", backend="openai", tasks="jamp", data_dir=data, out=tmp_path / "runs",
                          run_name=name, max_num_samples=30, backend_options={"base_url": url, "backoff_base": 0.01})
        res = run(opts)
        path = res.run_dir / "outputs" / "jamp.jsonl"
        path.read_bytes().decode("utf-8")  # strict: a lone surrogate would not have been writable
        manifest = json.loads((res.run_dir / "manifest.json").read_text(encoding="utf-8"))
        return {r["id"]: r["generation"] for r in read_outputs(path)}, manifest["backend"]["servers"]

    with FakeOpenAI() as one, FakeOpenAI() as a, FakeOpenAI(delay=0.01) as c:
        for srv in (one, a, c):
            srv.prefix = "\ud800"
        alone, one_counts = go(one.url, "one")
        both, counts = go(f"{a.url},{c.url}", "two")
    assert len(alone) == 30 and all("\ufffd" in g for g in alone.values())
    assert both == alone
    assert [s["completed"] for s in one_counts] == [30]
    assert [s["url"] for s in counts] == [a.url, c.url] and sum(s["completed"] for s in counts) == 30
    assert all(s["completed"] == len(srv.answered) > 0 for s, srv in zip(counts, (a, c)))


@pytest.mark.slow  # preprocessing and a CLI process: ~10 s here
def test_ctrl_c_on_jleval_run_exits_at_once_with_every_received_answer_written(raw_dir, tmp_path):
    """`jleval run --backend openai` interrupted (SIGINT) while the server hangs on the rest: exit 130 within 2 s,
    and the outputs hold every answer the server gave, each once."""
    import subprocess
    import sys

    from jleval.run import read_outputs

    with FakeOpenAI() as srv:
        srv.hang_after = 7
        out = tmp_path / "runs"
        cmd = [sys.executable, "-m", "jleval.cli", "run", "tiny", "--backend", "openai", "--base-url", srv.url,
               "--tasks", "jamp", "--raw-dir", str(raw_dir), "--data-dir", str(tmp_path / "jaster"), "--out", str(out),
               "--run-name", "r", "--max-num-samples", "20", "--concurrency", "4"]
        # the child gets Ctrl-C's default action even where the suite runs with SIGINT ignored (a `cmd &` in a
        # shell without job control), as it would in a terminal
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        path = out / "r" / "outputs" / "jamp.jsonl"
        deadline = time.monotonic() + 120
        while not (path.exists() and path.read_text(encoding="utf-8").count("\n") >= 7):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        time.sleep(0.3)  # the hanging requests are in flight
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        try:
            _, err = proc.communicate(timeout=10)
        finally:
            proc.kill()
        took = time.monotonic() - t0
        rows = read_outputs(path)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert took < 2.0, f"Ctrl-C took {took:.1f} s"
    # every answer the server gave is written once (the fake server checks its count without a lock, so on a
    # loaded machine two handlers can both answer the 7th: compare with what it really answered)
    assert len(rows) == len(srv.answered) >= 7 and all(r["error"] is None for r in rows)
    assert sorted(r["id"] for r in rows) == sorted({r["id"] for r in rows})


from tiny_fixtures import tiny_model  # noqa: E402,F401  (fixture)


def test_a_models_listing_past_the_cap_is_not_read(server):
    entries = [{"id": "tiny", "object": "model"}] + [{"id": f"other-{i:06d}", "object": "model"} for i in range(40000)]
    server.models_body = json.dumps({"object": "list", "data": entries}).encode()
    assert len(server.models_body) > 1 << 20
    capped = backend(server.url, max_response_bytes=1 << 20)
    assert capped.served_models is None  # past the cap: not read, the requests themselves will tell
    assert collect(capped, [req("fine")])[0].error is None
    assert len(backend(server.url, max_response_bytes=4 << 20).served_models) == 40001


def test_a_gzip_bomb_stops_at_the_cap_and_bodies_are_asked_uncompressed(server):
    _gzipped_zeros(200 << 20)  # built before the clock starts
    t0 = time.perf_counter()
    got = collect(backend(server.url, max_response_bytes=1 << 20), [req("[gzip:209715200]")])
    assert got[0].error and "too large" in got[0].error and time.perf_counter() - t0 < 5
    assert {headers.get("Accept-Encoding") for _, _, headers in server.log} == {"identity"}
    small = collect(backend(server.url, max_response_bytes=1 << 20),
                    [req("[gzip-json]"), req("[gzip-bad]", i=1), req("[gzip:1000]", i=2)])
    assert small[0].error is None and small[0].text == "zipped"
    assert "malformed response" in small[1].error and "malformed response" in small[2].error


def test_odd_models_entries_are_recorded_as_valid_json(raw_dir, tmp_path):
    from jleval.jaster.preprocess import preprocess
    from jleval.run import RunOptions, run
    from jleval.tasks import get_task

    data = tmp_path / "jaster"
    preprocess([get_task("jamp")], data, raw_dir=raw_dir)
    with FakeOpenAI() as srv:
        srv.models_body = (b'{"data": [{"id": "tiny", "root": "\\ud800r", "created": NaN, "max_model_len": 1e999},'
                           b' {"id": "\\udc00other"}]}')
        for attempt in range(2):  # a re-run (resume) reads the manifest it wrote
            res = run(RunOptions(model="tiny", backend="openai", tasks="jamp", data_dir=data, out=tmp_path / "runs",
                                 run_name="odd", max_num_samples=3, backend_options={"base_url": srv.url}))
            manifest = json.loads((res.run_dir / "manifest.json").read_text(encoding="utf-8"),
                                  parse_constant=lambda c: pytest.fail(f"{c} in manifest.json"))
            assert manifest["model_info"]["server"] == {"id": "tiny", "root": "\ufffdr"}, attempt
            assert manifest["backend"]["served_model"] == {"id": "tiny", "root": "\ufffdr"}
            assert manifest["backend"]["served_models"] == ["tiny", "\ufffdother"]


def test_a_password_in_the_base_url_is_used_but_never_recorded_or_shown(raw_dir, tmp_path):
    import base64

    from jleval.jaster.preprocess import preprocess
    from jleval.run import RunOptions, run
    from jleval.tasks import get_task

    data = tmp_path / "jaster"
    preprocess([get_task("jamp")], data, raw_dir=raw_dir)
    with FakeOpenAI() as srv:
        url = srv.url.replace("http://", "http://user:hunter2@")
        res = run(RunOptions(model="tiny", backend="openai", tasks="jamp", data_dir=data, out=tmp_path / "runs",
                             run_name="auth", max_num_samples=3, backend_options={"base_url": url}))
        assert srv.basic_auth == ["Basic " + base64.b64encode(b"user:hunter2").decode()]
        with pytest.raises(BackendError) as e:
            OpenAIBackend("not-served", base_url=url)
    text = (res.run_dir / "manifest.json").read_text(encoding="utf-8")
    manifest = json.loads(text)
    shown = srv.url.replace("http://", "http://user:***@")
    assert "hunter2" not in text and manifest["backend"]["base_url"] == shown
    assert manifest["backend"]["servers"][0]["url"] == shown and manifest["sessions"][0]["backend_options"] == {
        "base_url": shown}
    assert "hunter2" not in e.value.message and shown in e.value.message
    from jleval.backends.openai import parse_base_urls
    from jleval.errors import UsageError

    for value in ("http://a:hunter2@[::1", f"{url},{url}"):
        with pytest.raises(UsageError) as bad:
            parse_base_urls(value)
        assert "hunter2" not in bad.value.message and ":***@" in bad.value.message, bad.value.message
