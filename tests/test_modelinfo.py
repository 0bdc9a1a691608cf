"""Model metadata read from a model's files without loading its weights (jleval.modelinfo), recorded by `jleval run`
in the manifest and shown by `jleval table`. Parameter counts are checked against torch: the models are built
with transformers and their parameters counted as torch counts them (tied weights once)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from jleval.modelinfo import for_run, model_info, safetensors_header


def sample_data(out: Path, tasks: str = "jamp") -> Path:
    """The bundled demo sample preprocessed into `out` (as `jleval demo` does): real data, offline."""
    from jleval.demo import SAMPLE_DIR
    from jleval.jaster.preprocess import preprocess
    from jleval.tasks import resolve_tasks

    checksums = json.loads((SAMPLE_DIR / "checksums.json").read_text(encoding="utf-8"))
    assert preprocess(resolve_tasks(tasks), out, raw_dir=SAMPLE_DIR / "raw", checksums=checksums).ok
    return out


def torch_param_count(folder: Path) -> int:
    """The number of distinct parameters of the model in `folder`, as torch holds them."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    seen = {}
    for p in model.parameters():  # parameters() yields a tied weight once
        seen[p.data_ptr()] = p.numel()
    return sum(seen.values())


def small_llama(out: Path, *, tied: bool, shard: str | None = None) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tied)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out, **({"max_shard_size": shard} if shard else {}))
    return out


def test_tiny_model_folder(tiny_model):
    info = model_info(str(tiny_model), precision="float32")
    assert info["architecture"] == "LlamaForCausalLM" and info["model_type"] == "llama"
    assert info["params"] == torch_param_count(tiny_model)
    assert info["chat_template"] is True and info["precision"] == "float32" and info["notes"] == []


def test_shards_and_tied_embeddings(tmp_path):
    folder = small_llama(tmp_path / "sharded", tied=True, shard="20KB")
    shards = sorted(folder.glob("model-*.safetensors"))
    assert len(shards) > 2 and (folder / "model.safetensors.index.json").is_file()
    stored = {name for p in shards for name in safetensors_header(p) if name != "__metadata__"}
    assert "lm_head.weight" not in stored  # tied: transformers stores the embedding once
    info = model_info(str(folder))
    assert info["params"] == torch_param_count(folder)
    untied = small_llama(tmp_path / "untied", tied=False)
    assert model_info(str(untied))["params"] == torch_param_count(untied) > info["params"]


def test_a_tied_output_layer_stored_anyway_counts_once(tmp_path):
    from safetensors.numpy import load_file, save_file

    folder = small_llama(tmp_path / "m", tied=True)
    weights = load_file(folder / "model.safetensors")
    weights["lm_head.weight"] = weights["model.embed_tokens.weight"].copy()
    save_file(weights, folder / "model.safetensors")
    assert model_info(str(folder))["params"] == torch_param_count(folder)


def test_model_card_front_matter(tmp_path, tiny_model):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model, folder)
    (folder / "README.md").write_text("---\nlicense: apache-2.0\nbase_model:\n- org/base-a\n- org/base-b\n"
                                      "language: [ja]\n---\n# A model\n\nlicense: mit (not front matter)\n",
                                      encoding="utf-8")
    info = model_info(str(folder))
    assert (info["license"], info["base_model"]) == ("apache-2.0", "org/base-a,org/base-b")
    (folder / "README.md").write_text("---\nlicense: other\nlicense_name: llama3\nbase_model: org/x\n---\n",
                                      encoding="utf-8")
    assert (model_info(str(folder))["license"], model_info(str(folder))["base_model"]) == ("other (llama3)", "org/x")
    (folder / "README.md").write_text("---\nlicense: [unclosed\n---\n", encoding="utf-8")
    bad = model_info(str(folder))
    assert bad["license"] is None and any("not valid YAML" in n for n in bad["notes"])


def test_folder_without_config_or_weights_gives_empty_columns_and_notes(tmp_path, tiny_model):
    folder = tmp_path / "bare"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a model", encoding="utf-8")
    info = model_info(str(folder))
    assert {k: info[k] for k in ("architecture", "params", "chat_template")} == dict.fromkeys(
        ("architecture", "params", "chat_template"))
    assert any("no config.json" in n for n in info["notes"]) and any("no safetensors" in n for n in info["notes"])
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").write_bytes(b"\xff" * 4)
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    info = model_info(str(broken))
    assert info["params"] is None and info["architecture"] is None
    assert any("model.safetensors: not a readable safetensors file" in n for n in info["notes"])


def test_hub_id_from_the_cache_only(tmp_path, tiny_model):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someorg--tiny"
    snap = repo / "snapshots" / commit
    shutil.copytree(tiny_model, snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit, encoding="utf-8")
    info = model_info("someorg/tiny", cache_dir=tmp_path / "hub")
    assert info["architecture"] == "LlamaForCausalLM" and info["revision"] == commit
    assert info["params"] == torch_param_count(tiny_model)
    missing = model_info("someorg/not-cached", cache_dir=tmp_path / "hub")
    assert missing["architecture"] is None and "Hugging Face cache" in missing["notes"][0]


def test_openai_backend_records_what_the_server_reports():
    from jleval.backends.openai import OpenAIBackend
    from tests.test_backends_openai import FakeOpenAI

    with FakeOpenAI(model="served-tiny") as srv:
        backend = OpenAIBackend("served-tiny", base_url=srv.url)
        info = for_run("served-tiny", None, "openai", backend.describe())
        backend.close()
    assert info["server"] == {"id": "served-tiny"} and info["architecture"] is None and info["params"] is None
    lora = for_run("m", None, "openai", {"served_model": {"id": "m", "root": "/models/m", "parent": "org/base"}})
    assert lora["base_model"] == "org/base" and lora["server"]["root"] == "/models/m"


def test_tiny_run_table_shows_the_model_columns(tiny_model, tmp_path):
    from jleval import table
    from jleval.run import RunOptions, run

    res = run(RunOptions(model=str(tiny_model), backend="hf", tasks="jamp", max_num_samples=3,
                         data_dir=sample_data(tmp_path / "data"), out=tmp_path / "runs", run_name="tiny"))
    manifest = json.loads((res.run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["model_info"]["architecture"] == "LlamaForCausalLM"
    lb = table.build([res.run_dir])
    row = lb.rows[0]
    assert row["architecture"] == "LlamaForCausalLM" and row["precision"] == "float32"
    assert row["params"] == torch_param_count(tiny_model) and row["chat_template"] is True
    from jleval.render import files

    header, values = files.leaderboard_csv(lb).splitlines()[:2]
    cells = dict(zip(header.split(","), values.split(",")))
    assert cells["architecture"] == "LlamaForCausalLM" and cells["params"] == str(torch_param_count(tiny_model))
    assert cells["precision"] == "float32" and cells["chat_template"] == "true"
    assert "LlamaForCausalLM" in files.leaderboard_markdown(lb) and "LlamaForCausalLM" in files.leaderboard_html(lb)
    assert json.loads(files.leaderboard_json(lb))["rows"][0]["precision"] == "float32"


def test_table_of_a_run_whose_model_folder_is_bare_says_why(tmp_path):
    from jleval import table
    from jleval.run import RunOptions, run

    bare = tmp_path / "bare-model"
    bare.mkdir()
    res = run(RunOptions(model=str(bare), backend="oracle", tasks="jamp", max_num_samples=3,
                         data_dir=sample_data(tmp_path / "data"), out=tmp_path / "runs", run_name="oracle"))
    manifest = json.loads((res.run_dir / "manifest.json").read_text(encoding="utf-8"))
    manifest["model_info"] = model_info(str(bare))  # as a local backend would have recorded it
    (res.run_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    lb = table.build([res.run_dir])
    assert lb.rows[0]["architecture"] is None and lb.rows[0]["params"] is None
    assert any("oracle: model columns incomplete: no config.json" in n for n in lb.notes)


def num_parameters(folder: Path) -> int:
    """transformers' own count of the model in `folder` (tied weights once)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).num_parameters()


def _drop_config_key(folder: Path, key: str) -> None:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.pop(key, None)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")


def test_params_match_transformers_for_tied_untied_missing_key_and_missing_config(tmp_path):
    tied = small_llama(tmp_path / "tied", tied=True)
    untied = small_llama(tmp_path / "untied", tied=False)
    assert model_info(str(tied))["params"] == num_parameters(tied)
    assert model_info(str(untied))["params"] == num_parameters(untied)
    # LlamaConfig's default is untied (PretrainedConfig's is tied): a config.json without the key loads untied
    _drop_config_key(untied, "tie_word_embeddings")
    expected = num_parameters(untied)
    assert model_info(str(untied))["params"] == expected > num_parameters(tied)  # the lm_head counts
    # no config.json: every stored tensor counts (the untied lm_head too; the tied model stores none)
    tied_expected = num_parameters(tied)
    for folder, want in ((untied, expected), (tied, tied_expected)):
        (folder / "config.json").unlink()
        info = model_info(str(folder))
        assert info["params"] == want and any("no config.json" in n for n in info["notes"])


def _header_file(folder: Path, header: bytes) -> Path:
    import struct

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    return folder


def test_malformed_safetensors_headers_and_index_give_empty_params_and_a_note(tmp_path):
    headers = {"deep": b"[" * 100000, "shape-str": json.dumps({"w": {"dtype": "F32", "shape": ["x"]}}).encode(),
               "shape-null": json.dumps({"w": {"dtype": "F32", "shape": None}}).encode(),
               "entry-int": json.dumps({"a": 3}).encode(),
               "negative": json.dumps({"w": {"dtype": "F32", "shape": [-5, 3]}}).encode(),
               "bool": json.dumps({"w": {"dtype": "F32", "shape": [True, 3]}}).encode()}
    for name, header in headers.items():
        info = model_info(str(_header_file(tmp_path / name, header)))
        assert info["params"] is None, name
        assert any("not a readable safetensors file" in n for n in info["notes"]), (name, info["notes"])
    for name, weight_map in (("list", ["model.safetensors"]), ("path", {"w": "../deep/model.safetensors"}),
                             ("number", {"w": 3})):
        folder = _header_file(tmp_path / f"index-{name}", json.dumps({"w": {"dtype": "F32", "shape": [2]}}).encode())
        (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}), encoding="utf-8")
        info = model_info(str(folder))
        assert info["params"] is None and any("weight_map is not an object" in n for n in info["notes"]), name
    (tmp_path / "deep-config").mkdir()
    (tmp_path / "deep-config" / "config.json").write_text("[" * 100000, encoding="utf-8")
    assert model_info(str(tmp_path / "deep-config"))["architecture"] is None


def test_odd_served_model_entries_are_cleaned_for_the_manifest():
    from jleval.fsutil import dumps_json
    from jleval.modelinfo import served_model_info

    info = served_model_info({"id": "tiny", "root": "\ud800x", "parent": ["a"], "created": float("nan"),
                              "max_model_len": float("inf"), "owned_by": True})
    assert info["server"] == {"id": "tiny", "root": "\ufffdx"} and info["base_model"] is None
    json.loads(dumps_json(info))  # writable, strict JSON
    ok = served_model_info({"id": "m", "created": 1700000000, "max_model_len": 4096})
    assert ok["server"] == {"id": "m", "created": 1700000000, "max_model_len": 4096}


def test_manifest_writer_refuses_nan(tmp_path):
    import pytest

    from jleval.fsutil import atomic_write_json

    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "m.json", {"x": float("nan")})
    assert not (tmp_path / "m.json").exists()
