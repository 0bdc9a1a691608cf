"""The transformers backend end to end on the CPU with the tiny random-weight model."""
from __future__ import annotations

import sys

import pytest
from tiny_fixtures import tiny_model  # noqa: F401  (fixture)

from jleval.errors import RunError, UsageError
from jleval.types import GenParams, Request

PROMPTS = [
    "質問：日本で一番高い山は何ですか？\n答え：",
    "Tokyo is",
    "前提：男性が公園で犬と散歩している。\n仮説：男性が屋外にいる。\n関係：",
    "A",
    "以下は、タスクを説明する指示です。要求を適切に満たす応答を書きなさい。\n\n### 指示:\n計算しなさい\n\n### 応答:\n",
    "The model reads the instruction, the few-shot examples, and then the input.",
]


def reqs(max_tokens=12, stop=(), bos=False, prompts=PROMPTS):
    return [Request(task="t", sample_id=i, prompt=p, gen=GenParams(max_tokens=max_tokens, stop=tuple(stop)),
                    add_special_tokens=bos) for i, p in enumerate(prompts)]


@pytest.fixture(scope="module")
def backend(tiny_model):
    from jleval.backends.hf import HFBackend

    b = HFBackend(str(tiny_model))
    yield b
    b.close()


@pytest.fixture
def hf(backend):
    """The shared backend, with its batching state reset and its model.generate restored after the test."""
    original = backend.model.generate
    backend.batch_size, backend.auto_batch, backend.oom_halvings, backend.max_batch_tokens = None, True, 0, None
    yield backend
    backend.model.generate = original


def spy_generate(hf, calls, fail_above=None, error=None):
    original = hf.model.generate

    def wrapped(*args, **kwargs):
        ids = kwargs["input_ids"]
        calls.append((ids.clone(), kwargs["attention_mask"].clone()))
        if fail_above is not None and ids.shape[0] > fail_above:
            raise error
        return original(*args, **kwargs)

    hf.model.generate = wrapped


def run_all(hf, requests):
    out = {}
    for i, completion in hf.generate(requests):
        assert i not in out, "each request is answered once"
        out[i] = completion
    assert sorted(out) == list(range(len(requests)))
    return out


def test_batched_equals_one_at_a_time(hf):
    requests = reqs(max_tokens=12) + [
        Request(task="u", sample_id=9, prompt="東京は日本の首都であり、", gen=GenParams(max_tokens=5))]
    batched = run_all(hf, requests)
    assert hf.batch_size == 16  # the CPU guess; all 7 prompts fit in two batches (two max_tokens groups)
    hf.batch_size = 1
    single = run_all(hf, requests)
    for i in range(len(requests)):
        assert batched[i].text == single[i].text
        assert batched[i].finish_reason == single[i].finish_reason == "length"
        assert batched[i].completion_tokens == requests[i].gen.max_tokens
        assert batched[i].prompt_tokens == hf.count_tokens(requests[i].prompt)
        assert batched[i].text  # random weights still produce text
    assert batched[0].extra["batch_size"] == len(PROMPTS) and single[0].extra["batch_size"] == 1


def test_left_padding_and_length_sorted_batches(hf):
    calls = []
    spy_generate(hf, calls)
    hf.batch_size = 3
    run_all(hf, reqs(max_tokens=4))
    assert len(calls) == 2
    lengths = sorted((hf.count_tokens(p) for p in PROMPTS), reverse=True)
    seen = []
    for ids, mask in calls:
        row_lengths = mask.sum(dim=1).tolist()
        seen += row_lengths
        assert (mask[:, -1] == 1).all(), "every prompt ends at the last column (left padding)"
        for r, n in enumerate(row_lengths):
            assert mask[r, ids.shape[1] - n:].all() and not mask[r, :ids.shape[1] - n].any()
            assert (ids[r, :ids.shape[1] - n] == hf.pad_id).all()
    assert seen == lengths, "batches are cut from prompts sorted longest first"


def test_stop_strings_cut_like_vllm(hf):
    free = run_all(hf, reqs(max_tokens=24))
    stops = {}
    for i, c in free.items():  # pick a stop string the model really produces, away from the start
        text = c.text
        stops[i] = next(text[k:k + 2] for k in range(3, len(text) - 2) if "\ufffd" not in text[k:k + 2])
    requests = [Request(task="t", sample_id=i, prompt=p, gen=GenParams(max_tokens=24, stop=("never-seen", stops[i])))
                for i, p in enumerate(PROMPTS)]
    stopped = run_all(hf, requests)
    for i, c in stopped.items():
        full = free[i].text
        assert c.text == full[:full.find(stops[i])], "cut at the start of the first match, stop string excluded"
        assert c.finish_reason == "stop" and c.extra["stop_reason"] == stops[i]
        assert c.completion_tokens < free[i].completion_tokens
    # One at a time gives the same cuts: a stopped row does not disturb the rows still running.
    hf.batch_size = 1
    assert {i: c.text for i, c in run_all(hf, requests).items()} == {i: c.text for i, c in stopped.items()}


def test_stop_string_at_the_very_start_gives_empty_text(hf):
    first = run_all(hf, reqs(max_tokens=6, prompts=["Tokyo is"]))[0].text
    c = run_all(hf, reqs(max_tokens=6, stop=[first[0]], prompts=["Tokyo is"]))[0]
    assert c.text == "" and c.finish_reason == "stop" and c.error is None


def test_bos_policy(hf):
    calls = []
    spy_generate(hf, calls)
    without = run_all(hf, reqs(max_tokens=2, prompts=["Tokyo is"]))[0]
    with_bos = run_all(hf, reqs(max_tokens=2, prompts=["Tokyo is"], bos=True))[0]
    assert with_bos.prompt_tokens == without.prompt_tokens + 1
    assert calls[0][0][0, 0].item() != hf.tokenizer.bos_token_id
    assert calls[1][0][0, 0].item() == hf.tokenizer.bos_token_id


@pytest.mark.parametrize("error", ["cuda", "cpu-runtime", "memory"])
def test_out_of_memory_halves_the_batch(hf, error):
    import torch

    reference = run_all(hf, reqs(max_tokens=6))
    exc = {"cuda": torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
           "cpu-runtime": RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough "
                                       "memory: you tried to allocate 1GB. Buy new RAM! out of memory"),
           "memory": MemoryError()}[error]
    calls = []
    hf.batch_size = None
    spy_generate(hf, calls, fail_above=2, error=exc)
    got = run_all(hf, reqs(max_tokens=6))
    assert {i: c.text for i, c in got.items()} == {i: c.text for i, c in reference.items()}
    assert hf.batch_size == 2 and hf.oom_halvings == 2  # 16 (6 rows) -> 3 -> 2
    sizes = [ids.shape[0] for ids, _ in calls]
    assert sizes[:2] == [6, 3] and all(s <= 2 for s in sizes[2:]), sizes
    assert sum(s for s in sizes if s <= 2) == len(PROMPTS)


def test_out_of_memory_on_one_prompt_is_a_run_error_after_earlier_batches(hf):
    import torch

    calls = []
    hf.batch_size = 2
    first_batch = [0]

    original = hf.model.generate

    def wrapped(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        if first_batch[0] >= 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        first_batch[0] += 1
        return original(*args, **kwargs)

    hf.model.generate = wrapped
    got = []
    with pytest.raises(RunError, match="out of memory generating one prompt"):
        for item in hf.generate(reqs(max_tokens=3)):
            got.append(item)
    assert len(got) == 2, "the batch that finished before the failure was yielded"


def test_completions_stream_batch_by_batch(hf):
    calls = []
    spy_generate(hf, calls)
    hf.batch_size = 2
    stream = hf.generate(reqs(max_tokens=3))
    next(stream)
    assert len(calls) == 1, "the first batch is yielded before the second one runs"
    rest = list(stream)
    assert len(rest) == len(PROMPTS) - 1 and len(calls) == 3


def test_max_batch_tokens_bounds_the_batch(hf):
    calls = []
    spy_generate(hf, calls)
    hf.max_batch_tokens = 60
    run_all(hf, reqs(max_tokens=4))
    for ids, _ in calls:
        assert ids.shape[0] == 1 or ids.shape[0] * (ids.shape[1] + 4) <= 60


def test_empty_prompt_is_an_error_completion(hf):
    got = run_all(hf, reqs(max_tokens=3, prompts=["", "Tokyo is"]))
    assert got[0].error and got[0].finish_reason == "error" and got[0].text == ""
    assert got[1].error is None and got[1].text


def test_chat_template_tokens_and_identity(hf, tiny_model):
    from jleval.backends.hf import HFBackend

    chat = hf.apply_chat_template([("system", "日本語で答えてください。"), ("user", "こんにちは")])
    assert chat == "<|system|>\n日本語で答えてください。</s>\n<|user|>\nこんにちは</s>\n<|assistant|>\n"
    assert hf.count_tokens("こんにちは", add_special_tokens=True) == hf.count_tokens("こんにちは") + 1
    info = hf.describe()
    assert info["engine"] == "transformers" and info["dtype"] == "float32" and info["device"] == "cpu"
    assert len(info["chat_template_sha256"]) == 64
    again = HFBackend(str(tiny_model))
    assert again.fingerprint() == hf.fingerprint() and len(hf.fingerprint()) == 16


def test_unknown_model_is_a_run_error_naming_it(tmp_path):
    from jleval.backends.hf import HFBackend

    with pytest.raises(RunError, match="model folder ./no/such/model-folder does not exist") as e:
        HFBackend("./no/such/model-folder")
    assert "./no/such/model-folder" in str(e.value)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(RunError, match="failed to load"):
        HFBackend(str(tmp_path))


def test_parallel_options_are_refused():
    from jleval.backends.hf import HFBackend

    with pytest.raises(UsageError, match="vllm"):
        HFBackend("whatever", tensor_parallel_size=2)


def test_load_backend_factory(tiny_model, monkeypatch):
    from jleval.backends import load_backend, resolve_backend_name

    monkeypatch.setitem(sys.modules, "vllm", None)  # vLLM not importable: auto picks hf
    assert resolve_backend_name("auto") == "hf"
    b = load_backend("auto", str(tiny_model), dtype="auto", batch_size=4, max_model_len=None, revision=None)
    assert b.name == "hf" and b.batch_size == 4
    with pytest.raises(UsageError, match="does not take option.*gpu_memory_utilization"):
        load_backend("hf", str(tiny_model), gpu_memory_utilization=0.9)
    with pytest.raises(UsageError, match="unknown backend 'tgi'"):
        load_backend("tgi", str(tiny_model))


def test_rows_are_yielded_as_they_finish_inside_a_batch(hf):
    """Progress moves during a long batch: a row that stops early is yielded while generate still runs for the
    others (issue 17 item 4); the texts equal those of a batch run to the end."""
    running = []
    original = hf.model.generate

    def wrapped(*args, **kwargs):
        running.append(True)
        try:
            return original(*args, **kwargs)
        finally:
            running[-1] = False

    stop_soon = tuple(chr(c) for c in range(0x20, 0x7f)) + tuple(chr(c) for c in range(0x3040, 0x30ff))
    requests = [Request(task="t", sample_id=i, prompt=p, add_special_tokens=False,
                        gen=GenParams(max_tokens=40, stop=stop_soon if i == 0 else ()))
                for i, p in enumerate(PROMPTS[:3])]
    reference = run_all(hf, requests)
    assert reference[0].completion_tokens < 40 and reference[1].completion_tokens == 40  # one early, one long
    hf.model.generate = wrapped
    seen = []
    for i, completion in hf.generate(requests):
        seen.append((i, running[-1]))
        assert completion.text == reference[i].text
    assert seen[0] == (0, True), seen  # yielded while generate was still running for rows 1 and 2
    assert sorted(i for i, _ in seen) == [0, 1, 2]


def test_a_consumer_that_stops_listening_stops_the_batch(hf):
    stream = hf.generate(reqs(max_tokens=200))
    next(stream)
    stream.close()  # the worker thread is told to stop and joined: nothing keeps generating
    import threading

    assert not [t for t in threading.enumerate() if t.name == "jleval-hf-generate"]
