"""The Ray backend's pieces that need no cluster (fast): rows survive the trip to a replica and back with the
same cache key, --replicas parsing, the short temp folder, errors raised in a replica come back as themselves,
and backends or options that cannot run in Ray actors are refused before Ray is started."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from jleval.backends import ray as rb
from jleval.errors import RunError, UsageError
from jleval.types import Completion, GenParams, Request


def test_a_request_comes_back_from_json_with_the_same_cache_key_and_settings():
    reqs = [
        Request(task="jamp", sample_id=3, prompt="前提：x\n### 応答:\n", gen=GenParams(max_tokens=7, stop=("\n\n",)),
                add_special_tokens=True),
        Request(task="rakuda", sample_id=0, prompt="chat", messages=(("system", "s"), ("user", "質問")),
                gen=GenParams(max_tokens=512, temperature=0.7, top_p=0.9, repetition_penalty=1.1, seed=5)),
    ]
    for req in reqs:
        back = rb.request_from_json(rb.request_to_json(req))
        assert back == req and back.key("fp") == req.key("fp")
        assert back.gen.stop == req.gen.stop and isinstance(back.gen.stop, tuple)
    comp = Completion(text="答え", finish_reason="stop", prompt_tokens=9, completion_tokens=2, latency_s=0.5,
                      extra={"stop_reason": "\n\n"})
    assert rb.completion_from_json(rb.completion_to_json(comp)) == comp


@pytest.mark.parametrize("value, expected", [(None, None), ("auto", None), ("AUTO", None), ("3", 3), (2, 2)])
def test_replicas_parse(value, expected):
    assert rb.parse_replicas(value) == expected


@pytest.mark.parametrize("value, message", [("0", "--replicas must be 1 or more, not 0"),
                                            ("-2", "--replicas must be 1 or more, not -2"),
                                            ("many", "--replicas 'many' is not a number")])
def test_bad_replicas_are_one_line(value, message):
    with pytest.raises(UsageError, match=message):
        rb.parse_replicas(value)


def test_the_temp_folder_is_under_the_run_when_short_else_a_short_stable_one(tmp_path):
    assert rb.short_temp_dir(Path("/r/x")) == Path("/r/x/.ray")
    deep = tmp_path / ("d" * 60) / "runs" / "name"
    a, b = rb.short_temp_dir(deep), rb.short_temp_dir(deep)
    assert a == b and a.name.startswith("jleval-ray-") and not str(a).startswith(str(deep))
    assert len(str(a)) + 64 <= 107
    assert rb.short_temp_dir(deep.parent / "other") != a


def test_an_error_raised_in_a_replica_comes_back_as_itself_through_rays_wrappers():
    inner = rb._wrap(RunError('the node "n1" holds a different model', "give every node the same weights"))
    try:
        try:
            raise inner
        except RuntimeError as err:  # Ray quotes the original inside its own error, escaped, and chains it
            raise ValueError(f"task failed: {str(err)!r}") from err
    except ValueError as outer:
        back = rb._unwrap(outer)
    assert isinstance(back, RunError)
    assert back.message == 'the node "n1" holds a different model' and back.hint == "give every node the same weights"
    assert rb._unwrap(ValueError("nothing of ours")) is None


@pytest.mark.parametrize("inner, options, message", [
    ("openai", {}, "--backend openai cannot run there"),
    ("oracle", {}, "--backend oracle cannot run there"),
    ("hf", {"data_parallel_size": 2}, "--data-parallel-size cannot be combined with --ray"),
    ("hf", {"base_url": "http://x"}, "the hf backend does not take option(s): base_url"),
])
def test_what_cannot_run_in_ray_actors_is_refused_before_ray_starts(inner, options, message, monkeypatch):
    monkeypatch.setattr(rb.RayBackend, "_connect", lambda self, run_dir: pytest.fail("Ray was started"))
    with pytest.raises(UsageError, match=re.escape(message)):
        rb.RayBackend(inner, "m", address="local", **options)
