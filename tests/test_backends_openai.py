"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1 that speaks the OpenAI protocol.

The server's "model" answers `echo:<end of the prompt>` followed by a blank line and more text, one character
per token, honouring max_tokens and stop strings like vLLM's server. Markers in a prompt script failures:
[429:N] N times 429 with Retry-After, [503:N] N times 503 without it, [500] always 500, [400] a bad request,
[sleep] an answer slower than the client's timeout, [slow] a short delay, [bad-json] a broken body,
[nostop] a server that ignores stop strings.
"""
from __future__ import annotations

import email.utils
import json
import re
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

    def __init__(self, model="tiny", key=None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.model, self.key = model, key
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
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def log_message(self, *args):  # keep the test output quiet
        pass

    def _send(self, status, obj=None, headers=(), raw=None):
        body = raw if raw is not None else json.dumps(obj, ensure_ascii=False).encode()
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
        try:
            self._answer(body)
        finally:
            with srv.lock:
                srv.inflight -= 1

    def _answer(self, body):
        srv = self.server
        if not self._authorised():
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
        full = f"echo:{prompt[-6:]}\n\nmore text"
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


def test_completions_endpoint_renders_chat_messages_with_the_models_template(server, tiny_model):  # noqa: F811
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


def test_tokenizer_option_counts_tokens(server, tiny_model):  # noqa: F811
    b = backend(server.url, tokenizer=str(tiny_model))
    assert b.count_tokens("こんにちは", add_special_tokens=True) == b.count_tokens("こんにちは") + 1
    assert b.apply_chat_template([("user", "hi")]) == "<|user|>\nhi</s>\n<|assistant|>\n"


from tiny_fixtures import tiny_model  # noqa: E402,F401  (fixture)
