"""The vLLM backend against a faithful fake of vLLM's offline API (tests/fake_vllm). The real engine is tested in
tests/vllm_real (`make test-vllm`: vLLM's CPU build in its own venv; the same tests run on a GPU box)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tiny_fixtures import tiny_model  # noqa: F401  (fixture)

from jleval.errors import BackendError, RunError, UsageError
from jleval.types import GenParams, Request

FAKE = Path(__file__).resolve().parent / "fake_vllm"


def _drop_vllm_modules():
    for name in list(sys.modules):
        if name == "vllm" or name.startswith("vllm."):
            del sys.modules[name]


@pytest.fixture
def fake_vllm(monkeypatch):
    for name in list(sys.modules):
        if name == "vllm" or name.startswith("vllm."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(FAKE))
    import vllm
    from vllm.entrypoints.llm import LLM, FakeEngine

    assert Path(vllm.__file__).is_relative_to(FAKE)
    FakeEngine.crash_at_step, LLM.has_enqueue, LLM.fail_on_load = None, True, None
    FakeEngine.log.clear()
    LLM.instances.clear()
    yield vllm
    _drop_vllm_modules()


def req(prompt, i=0, max_tokens=32, stop=("\n\n",), bos=False, task="t"):
    return Request(task=task, sample_id=i, prompt=prompt, gen=GenParams(max_tokens=max_tokens, stop=tuple(stop)),
                   add_special_tokens=bos)


def make(tiny_model, **kw):
    from jleval.backends.vllm import VLLMBackend

    return VLLMBackend(str(tiny_model), **kw)


def test_engine_arguments_and_request_building(fake_vllm, tiny_model):
    from vllm.entrypoints.llm import LLM, FakeEngine

    b = make(tiny_model, max_model_len=512, gpu_memory_utilization=0.8, dtype="bfloat16", revision="main",
             tensor_parallel_size=1, pipeline_parallel_size=1, trust_remote_code=True)
    kwargs = LLM.instances[-1].kwargs
    assert kwargs["enable_prefix_caching"] is True and kwargs["max_model_len"] == 512
    assert kwargs["gpu_memory_utilization"] == 0.8 and kwargs["dtype"] == "bfloat16"
    assert kwargs["trust_remote_code"] is True and kwargs["revision"] == "main"
    assert "distributed_executor_backend" not in kwargs  # unset options are left to vLLM's defaults
    requests = [
        req("質問：富士山の高さは？ ANSWER=3776|", i=0, max_tokens=8, stop=("\n\n",)),
        req("Tokyo is ANSWER=big|", i=1, max_tokens=20, stop=("。", "\n"), bos=True),
        Request(task="t", sample_id=2, prompt="x ANSWER=y|",
                gen=GenParams(max_tokens=5, repetition_penalty=1.2, temperature=0.7, top_p=0.9, seed=3)),
    ]
    list(b.generate(requests))
    tok = b.tokenizer
    logged = {int(e["id"]): e for e in FakeEngine.log}
    for i, r in enumerate(requests):
        entry = logged[i]
        assert entry["prompt_token_ids"] == tok.encode(r.prompt, add_special_tokens=r.add_special_tokens)
        p = entry["params"]
        assert (p.max_tokens, p.temperature, p.top_p, p.repetition_penalty, p.seed) == \
               (r.gen.max_tokens, r.gen.temperature, r.gen.top_p, r.gen.repetition_penalty, r.gen.seed)
        assert p.stop == list(r.gen.stop) and p.include_stop_str_in_output is False and p.n == 1
        assert p.output_kind.name == "FINAL_ONLY"
    assert logged[1]["prompt_token_ids"][0] == tok.bos_token_id != logged[0]["prompt_token_ids"][0]
    info = b.describe()
    assert info["engine"] == "vllm" and info["engine_version"] == "0.26.0"
    assert info["enable_prefix_caching"] and info["max_model_len_resolved"] == 512
    assert b.fingerprint() == make(tiny_model, dtype="bfloat16").fingerprint() != make(tiny_model).fingerprint()


@pytest.mark.parametrize("has_enqueue", [True, False], ids=["LLM.enqueue", "llm_engine.add_request"])
def test_stop_strings_eos_and_length(fake_vllm, tiny_model, has_enqueue):
    from vllm.entrypoints.llm import LLM

    LLM.has_enqueue = has_enqueue
    b = make(tiny_model)
    got = dict(b.generate([
        req("a ANSWER=答え\n\n説明です|", i=0, stop=("\n\n",)),
        req("b ANSWER=答え\n\n説明です|", i=1, stop=()),
        req("c ANSWER=答え\n\n説明です|", i=2, stop=(), max_tokens=2),
        req("d ANSWER=北は\n\n南|", i=3, stop=("南", "\n\n")),  # the first match while streaming wins
    ]))
    assert got[0].text == "答え" and got[0].finish_reason == "stop" and got[0].extra["stop_reason"] == "\n\n"
    assert got[1].text == "答え\n\n説明です" and got[1].finish_reason == "stop"  # EOS
    assert "stop_reason" not in got[1].extra
    assert got[2].finish_reason == "length" and got[2].completion_tokens == 2
    assert got[3].text == "北は" and got[3].extra["stop_reason"] == "\n\n"
    tok = b.tokenizer
    assert got[0].prompt_tokens == len(tok.encode("a ANSWER=答え\n\n説明です|", add_special_tokens=False))
    assert got[1].completion_tokens == len(tok.encode("答え\n\n説明です", add_special_tokens=False)) + 1  # + EOS


def test_completions_stream_out_as_each_request_finishes(fake_vllm, tiny_model):
    b = make(tiny_model)
    lengths = [40, 3, 25, 1, 10]
    requests = [req(f"q{i} ANSWER={'あ' * n}|", i=i, stop=(), max_tokens=64) for i, n in enumerate(lengths)]
    engine = b.llm.llm_engine
    order, unfinished_at_yield = [], []
    for i, c in b.generate(requests):
        order.append(i)
        unfinished_at_yield.append(engine.get_num_unfinished_requests())
        assert c.text == "あ" * lengths[i]
    assert order == [3, 1, 4, 2, 0], "shortest answers come out first"
    assert unfinished_at_yield[0] == 4, "the first completion is yielded while the others still run"
    assert engine.steps <= max(len(b.tokenizer.encode("あ" * n)) for n in lengths) + 3, "one pass for all"


def test_prefix_caching_is_on(fake_vllm, tiny_model):
    shots = "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。" * 4
    got = dict(make(tiny_model).generate([req(shots + f"問{i} ANSWER=x|", i=i) for i in range(3)]))
    assert got[0].extra["cached_prompt_tokens"] == 0 and got[2].extra["cached_prompt_tokens"] >= 16


def test_engine_crash_mid_run_keeps_what_was_yielded(fake_vllm, tiny_model):
    from vllm.entrypoints.llm import FakeEngine

    b = make(tiny_model)
    FakeEngine.crash_at_step = 6
    got = []
    with pytest.raises(BackendError, match="failed mid-run") as e:
        for item in b.generate([req(f"q{i} ANSWER={'あ' * n}|", i=i, stop=()) for i, n in enumerate([1, 2, 30])]):
            got.append(item)
    assert [i for i, _ in got] == [0, 1] and "resume" in str(e.value)


def test_a_refused_prompt_is_an_error_completion(fake_vllm, tiny_model):
    b = make(tiny_model, max_model_len=20)
    got = dict(b.generate([req("長い" * 40, i=0), req("ok ANSWER=y|", i=1)]))
    assert got[0].error and "maximum model length" in got[0].error and got[0].text == ""
    n = b.count_tokens("長い" * 40)
    assert f"the prompt is {n} tokens (the model's context: 20 tokens)" in got[0].error
    assert got[1].error is None and got[1].text == "y"


def test_model_load_failures_are_run_errors(fake_vllm, tiny_model):
    from vllm.entrypoints.llm import LLM

    with pytest.raises(RunError, match="model folder no/such/model does not exist") as e:
        make(Path("./no/such/model"))
    assert "no/such/model" in str(e.value)
    LLM.fail_on_load = RuntimeError("Engine core initialization failed. See root cause above.")
    with pytest.raises(RunError, match="failed to load with vLLM 0.26.0") as e:
        make(tiny_model)
    assert "log above" in e.value.hint
    LLM.fail_on_load = None
    with pytest.raises(UsageError, match="refused the engine arguments"):
        make(tiny_model, engine_kwargs={"no_such_engine_arg": 1})


def test_missing_vllm_is_a_run_error(monkeypatch, tiny_model):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(RunError, match="needs vLLM") as e:
        make(tiny_model)
    assert "jleval[vllm]" in e.value.hint and "--backend hf" in e.value.hint


def test_chat_template_and_token_counts(fake_vllm, tiny_model):
    b = make(tiny_model)
    assert b.apply_chat_template([("user", "こんにちは")]) == "<|user|>\nこんにちは</s>\n<|assistant|>\n"
    assert b.count_tokens("こんにちは", add_special_tokens=True) == b.count_tokens("こんにちは") + 1


def test_data_parallel_runs_one_engine_per_gpu_group(fake_vllm, tiny_model, monkeypatch):
    from jleval.backends._vllm_dp import split_balanced

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    # The spawned workers import the fake vllm through PYTHONPATH.
    monkeypatch.setenv("PYTHONPATH", str(FAKE) + ":" + str(Path(__file__).resolve().parents[1]))
    b = make(tiny_model, data_parallel_size=2)
    try:
        workers = b.describe()["data_parallel_workers"]
        assert [w["cuda_visible_devices"] for w in workers] == ["4", "5"]
        assert all(w["data_parallel_size"] == 1 for w in workers)
        requests = [req(f"q{i} ANSWER=答{i}|", i=i, task=f"t{i // 3}") for i in range(7)]
        got = dict(b.generate(requests))
        assert {i: c.text for i, c in got.items()} == {i: f"答{i}" for i in range(7)}
        assert len(dict(b.generate(requests[:2]))) == 2  # the engines serve a second call
    finally:
        b.close()
    assert split_balanced(requests, 2) == [[0, 1, 2, 3], [4, 5, 6]]
    with pytest.raises(UsageError, match="needs 6 GPUs"):
        make(tiny_model, data_parallel_size=3, tensor_parallel_size=2)


@pytest.mark.slow
def test_run_closes_the_backend_it_opened_on_every_path(fake_vllm, tiny_model, raw_dir, tmp_path,
                                                         monkeypatch):
    """run() shuts the data-parallel engine processes down after a finished run, a failed one and Ctrl-C."""
    import multiprocessing

    from jleval.run import RunOptions, run

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("PYTHONPATH", str(FAKE) + ":" + str(Path(__file__).resolve().parents[1]))
    common = dict(model=str(tiny_model), backend="vllm", tasks="jamp", max_num_samples=4, raw_dir=raw_dir,
                  data_dir=tmp_path / "data", out=tmp_path / "runs", backend_options={"data_parallel_size": 2})
    res = run(RunOptions(**common, run_name="ok"))
    assert res.counts["jamp"]["generated"] == 4 and multiprocessing.active_children() == []

    def interrupt(task, completion, total, cached):
        if completion is not None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(RunOptions(**common, run_name="ctrl-c"), progress=interrupt)
    assert multiprocessing.active_children() == []

    def fail(task, completion, total, cached):
        if completion is not None:
            raise OSError("disk full")

    with pytest.raises(BackendError, match="disk full"):
        run(RunOptions(**common, run_name="error"), progress=fail)
    assert multiprocessing.active_children() == []


def test_hf_text_is_what_vllms_detokenizer_releases(tiny_model):
    """vLLM holds back trailing tokens whose bytes end in an incomplete UTF-8 character, and drops them when the
    request ends there; replacement characters inside the text stay. The hf backend's text follows the rule."""
    from transformers import AutoTokenizer

    from jleval.backends.hf import released_text

    tok = AutoTokenizer.from_pretrained(tiny_model)
    byte = {b: tok.convert_tokens_to_ids(c) for b, c in _byte_tokens().items()}
    whole = tok.encode("日本", add_special_tokens=False)
    first_two_bytes_of_a = [byte[0xE3], byte[0x81]]  # "あ" is E3 81 82
    assert tok.decode(whole + first_two_bytes_of_a).endswith("\ufffd")
    assert released_text(tok, whole + first_two_bytes_of_a) == "日本"
    assert released_text(tok, whole + first_two_bytes_of_a + [byte[0x82]]) == "日本あ"
    inner = whole + [byte[0x81]] + whole  # a stray continuation byte inside: kept as U+FFFD, as vLLM does
    assert released_text(tok, inner) == "日本\ufffd日本"
    assert released_text(tok, [byte[0xE3]]) == ""


def _byte_tokens() -> dict[int, str]:
    """Byte-level BPE's printable stand-in for each byte (GPT-2's table)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table
