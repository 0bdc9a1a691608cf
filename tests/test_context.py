"""Prompts longer than the model's context, found before generation (jleval/backends/_context.py), on the hf
backend with the tiny model (the vLLM engine: tests/vllm_real/test_cli.py)."""
from __future__ import annotations

from jleval.backends._context import generate_within_context
from jleval.types import GenParams, Request


def test_over_long_prompts_are_error_rows_named_per_task_and_the_others_run(tiny_model, capfd, caplog):
    from jleval.backends.hf import HFBackend

    backend = HFBackend(str(tiny_model), batch_size=4)
    limit = backend.context_length()
    long_text = "富士山は日本で一番高い山です。" * (limit // 4)
    requests = [
        Request(task="jamp", sample_id=0, prompt="質問：答えは？\n答え：", gen=GenParams(max_tokens=4)),
        Request(task="niilc", sample_id=0, prompt=long_text, gen=GenParams(max_tokens=4)),
        Request(task="niilc", sample_id=1, prompt=long_text + "？", gen=GenParams(max_tokens=4)),
        Request(task="jamp", sample_id=1, prompt="前提：晴れ。\n答え：", gen=GenParams(max_tokens=4)),
    ]
    warnings: list[str] = []
    got = dict(generate_within_context(backend, requests, warnings.append))
    assert sorted(got) == [0, 1, 2, 3]
    n = backend.count_tokens(long_text)
    assert n + 4 > limit
    assert got[1].finish_reason == "error" and got[1].text == "" and got[1].prompt_tokens == n
    assert f"the prompt is {n} tokens" in got[1].error and f"context of {limit} tokens" in got[1].error
    assert got[2].error and got[0].error is None and got[3].error is None
    assert warnings == [f"2 prompt(s) plus their output length exceed the model's context of {limit} tokens "
                        "(niilc 2): they are written as error rows, not generated"]
    assert dict(generate_within_context(backend, requests[:1], warnings.append))[0].error is None
    assert len(warnings) == 1  # nothing to say when everything fits
    # that one line is all: no "Token indices sequence length is longer ..." from transformers' tokenizer
    assert "sequence length is longer" not in capfd.readouterr().err + caplog.text
