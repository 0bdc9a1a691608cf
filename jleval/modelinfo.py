"""What a model is, read from its files without loading its weights: the leaderboard's model columns.

    from jleval.modelinfo import model_info
    info = model_info("path/to/model")            # or a Hub id (files already in the Hugging Face cache only)

Fields (every one may be None when the files do not say):
    architecture   config.json `architectures` (joined with "," when several), e.g. LlamaForCausalLM
    model_type     config.json `model_type`, e.g. llama
    params         the exact number of parameters, as transformers' num_parameters() counts them: the sum over the
                   safetensors headers (one file, or the shards the index json lists) of every stored tensor's
                   element count, each tensor once. The one exception: a stored `lm_head.weight` of the input
                   embedding's shape when the config ties them (`tie_word_embeddings` true, or absent and the
                   model type's transformers default ties, e.g. gpt2; llama's does not) is one parameter stored
                   twice and counted once. Without config.json nothing is deduplicated.
    precision      the run's resolved dtype (what the backend computed in), not read from the files
    license        the model card's (README.md YAML front matter) `license` (`license_name` when it is "other")
    base_model     the model card's `base_model` (joined with "," when several)
    chat_template  whether the tokenizer has a chat template (tokenizer_config.json or chat_template.jinja/json)
    revision       the run's --revision; for a Hub id the commit of the cached snapshot
    notes          why a field is empty (no config.json, no safetensors, nothing cached, …)

Nothing here raises on a strange folder: what cannot be read is left empty with a note. Nothing downloads: a Hub
id is looked up with huggingface_hub's cache lookup only (no network).
"""
from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIELDS = ("architecture", "model_type", "params", "precision", "license", "base_model", "chat_template", "revision")
#: Names of the input embedding in common architectures (to count a stored, tied output layer once).
_EMBED_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "embed_in.weight")
_MAX_HEADER = 100 * 1024 * 1024  # safetensors refuses headers above 100 MB too

Lookup = Callable[[str], "Path | None"]


def empty_info(note: str | None = None) -> dict[str, Any]:
    return {**dict.fromkeys(FIELDS), "notes": [note] if note else []}


def model_info(model: str, revision: str | None = None, precision: str | None = None,
               cache_dir: str | Path | None = None) -> dict[str, Any]:
    """The model columns of a local model folder or a cached Hub id (see the module docstring); `cache_dir` is
    the Hugging Face cache to look in (default: huggingface_hub's, i.e. $HF_HUB_CACHE / $HF_HOME/hub)."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        info = _from_files(lambda name: (folder / name) if (folder / name).is_file() else None)
        info["revision"] = revision
    else:
        lookup, commit = _hub_lookup(model, revision, cache_dir)
        if commit is None:
            info = empty_info(f"{model!r} is not a local folder and has no files in the Hugging Face cache: "
                              "the model columns are empty")
        else:
            info = _from_files(lookup)
        info["revision"] = commit or revision
    info["precision"] = precision
    return info


#: The /v1/models fields kept, with the JSON type each must have (anything else is dropped).
_SERVED_TEXT = ("id", "root", "parent", "owned_by")
_SERVED_INT = ("max_model_len", "created")
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(value: str) -> str:
    """`value` writable as UTF-8: a lone surrogate (which JSON's \\udXXX escapes can carry) becomes U+FFFD."""
    return _SURROGATE.sub("\ufffd", value)


def served_model_info(entry: dict[str, Any] | None, precision: str | None = None) -> dict[str, Any]:
    """An OpenAI-compatible server's /v1/models entry for the served model: only what it reports (vLLM reports
    `root`, the model it loaded, and `parent`, the base of a LoRA adapter). The rest stays empty. What the
    server sends is cleaned: strings with lone surrogates repaired, numbers kept only as finite integers, other
    types dropped, so the manifest stays valid JSON."""
    if not isinstance(entry, dict) or not entry:
        return empty_info("served by an OpenAI-compatible server that reported nothing about the model")
    info = empty_info("served by an OpenAI-compatible server: only what its /v1/models reports")
    server: dict[str, Any] = {k: clean_text(entry[k]) for k in _SERVED_TEXT if isinstance(entry.get(k), str)}
    server.update({k: entry[k] for k in _SERVED_INT
                   if isinstance(entry.get(k), int) and not isinstance(entry[k], bool)})
    info["base_model"] = server.get("parent") or None
    info["precision"] = precision
    info["server"] = server
    return info


# ------------------------------------------------------------------------------------------------ files


def _hub_lookup(repo_id: str, revision: str | None, cache_dir: str | Path | None) -> tuple[Lookup, str | None]:
    """A file lookup in the Hugging Face cache (no network) and the cached snapshot's commit, or (…, None)."""
    from huggingface_hub import try_to_load_from_cache  # a dependency of transformers

    def lookup(name: str) -> Path | None:
        try:
            found = try_to_load_from_cache(repo_id, name, revision=revision, cache_dir=cache_dir)
        except Exception:  # noqa: BLE001 - an id the cache layout cannot hold (bad characters) is simply not cached
            return None
        return Path(found) if isinstance(found, str) and Path(found).is_file() else None

    config = lookup("config.json")
    if config is None:
        return lookup, None
    parts = config.parts
    commit = parts[parts.index("snapshots") + 1] if "snapshots" in parts else None
    return lookup, commit


def _from_files(lookup: Lookup) -> dict[str, Any]:
    info = empty_info()
    notes: list[str] = info["notes"]
    config = _read_json(lookup("config.json"), notes)
    if config is None:
        notes.append("no config.json: architecture, model type and tied embeddings unknown")
        config = {}
    archs = config.get("architectures")
    info["architecture"] = (clean_text(",".join(map(str, archs)))
                            if isinstance(archs, list) and archs else None)
    info["model_type"] = clean_text(config["model_type"]) if isinstance(config.get("model_type"), str) else None
    info["params"] = _param_count(lookup, lambda: _ties_embeddings(config), notes)
    if config.get("quantization_config"):
        notes.append("quantized checkpoint: params counts the stored (packed) tensors' elements")
    card = _front_matter(lookup("README.md"), notes)
    info["license"] = _card_license(card)
    info["base_model"] = _joined(card.get("base_model"))
    info["chat_template"] = _has_chat_template(lookup, notes)
    return info


def _read_json(path: Path | None, notes: list[str]) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        notes.append(f"{path.name} is not readable JSON ({type(e).__name__})")
        return None
    return data if isinstance(data, dict) else None


def _ties_embeddings(config: dict[str, Any]) -> bool:
    """Whether transformers ties the output layer to the input embedding for this config.json: its
    `tie_word_embeddings`, or when absent the default of the model type's config class (PretrainedConfig's is
    True, LlamaConfig's False: save_pretrained omits values equal to the class default). No config or an
    unknown model type: not tied (every stored tensor counts)."""
    value = config.get("tie_word_embeddings")
    if isinstance(value, bool):
        return value
    model_type = config.get("model_type")
    if value is not None or not isinstance(model_type, str):
        return False
    try:
        from transformers import AutoConfig

        return bool(getattr(AutoConfig.for_model(model_type), "tie_word_embeddings", False))
    except (ImportError, ValueError, KeyError):  # transformers missing, or a model type it does not know
        return False


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a .safetensors file (8-byte little-endian length, then the JSON); ValueError if it is
    not one."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError("shorter than a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > _MAX_HEADER:
            raise ValueError(f"header length {n} is implausible")
        raw = f.read(n)
    if len(raw) != n:
        raise ValueError("truncated header")
    try:
        header = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise ValueError("header JSON nested too deeply") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return header


def _weight_files(lookup: Lookup, notes: list[str]) -> list[Path] | None:
    index = lookup("model.safetensors.index.json")
    if index is not None:
        return _shards(index, lookup, notes)
    single = lookup("model.safetensors")
    if single is None:
        notes.append("no safetensors weights (model.safetensors or its index): params not read")
        return None
    return [single]


def _shards(index: Path, lookup: Lookup, notes: list[str]) -> list[Path] | None:
    """The shard files model.safetensors.index.json names, or None (with a note) when one is missing."""
    weight_map = (_read_json(index, notes) or {}).get("weight_map") or {}
    if not isinstance(weight_map, dict) or not all(_plain_name(v) for v in weight_map.values()):
        notes.append("model.safetensors.index.json: weight_map is not an object of tensor -> file name")
        return None
    if not weight_map:
        notes.append("model.safetensors.index.json has no weight_map")
        return None
    files: list[Path] = []
    missing: list[str] = []
    for name in sorted(set(weight_map.values())):
        path = lookup(name)
        if path is None:
            missing.append(name)
        else:
            files.append(path)
    if missing:
        notes.append(f"model.safetensors.index.json lists shards that are not here ({', '.join(missing[:3])})")
        return None
    return files


def _plain_name(value: Any) -> bool:
    return isinstance(value, str) and value not in ("", ".", "..") and "/" not in value and "\\" not in value


def _param_count(lookup: Lookup, tied: Callable[[], bool], notes: list[str]) -> int | None:
    files = _weight_files(lookup, notes)
    if files is None:
        return None
    shapes = _stored_shapes(files, notes)
    if shapes is None:
        return None
    embed = next((shape for name, shape in shapes.items() if name.endswith(_EMBED_SUFFIXES)), None)
    if embed is not None and embed == shapes.get("lm_head.weight") and tied():
        del shapes["lm_head.weight"]  # tied: one parameter stored twice
    return sum(math.prod(shape) for shape in shapes.values())


def _stored_shapes(files: list[Path], notes: list[str]) -> dict[str, list[int]] | None:
    """Tensor name -> shape over every file, each name once; None (with a note) when a file is not readable."""
    shapes: dict[str, list[int]] = {}
    for path in files:
        try:
            header = safetensors_header(path)
            header.pop("__metadata__", None)  # not a tensor
            for name, meta in header.items():
                shapes.setdefault(name, _shape(name, meta))
        except (OSError, ValueError) as e:
            notes.append(f"{path.name}: not a readable safetensors file ({e}): params not read")
            return None
    return shapes


def _shape(name: str, meta: Any) -> list[int]:
    """A header entry's shape: a list of non-negative integers; ValueError naming the tensor otherwise."""
    shape = meta.get("shape") if isinstance(meta, dict) else None
    if not isinstance(shape, list) or not all(is_count(d) for d in shape):
        raise ValueError(f"tensor {name!r} has no shape of non-negative integers")
    return shape


def _front_matter(path: Path | None, notes: list[str]) -> dict[str, Any]:
    """The YAML block between the first two `---` lines of a model card, or {}."""
    if path is None:
        return {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        notes.append("README.md is not readable UTF-8 text: license and base model unknown")
        return {}
    marks = [i for i, line in enumerate(lines) if line.strip() == "---"]
    if len(marks) < 2 or marks[0] != 0:  # it opens on the first line and closes on the next `---` line
        return {}
    end = marks[1]
    import yaml

    try:
        data = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError:
        notes.append("README.md's front matter is not valid YAML: license and base model unknown")
        return {}
    return data if isinstance(data, dict) else {}


def is_count(value: Any) -> bool:
    """A non-negative integer (JSON's true and false are not numbers)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _joined(value: Any) -> str | None:
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or None
    return str(value) if value not in (None, "") else None


def _card_license(card: dict[str, Any]) -> str | None:
    lic = _joined(card.get("license"))
    if lic == "other" and card.get("license_name"):
        return f"other ({card['license_name']})"
    return lic


def _has_chat_template(lookup: Lookup, notes: list[str]) -> bool | None:
    if lookup("chat_template.jinja") is not None or lookup("chat_template.json") is not None:
        return True
    tok = _read_json(lookup("tokenizer_config.json"), notes)
    if tok is None:
        return None
    return bool(tok.get("chat_template"))


def for_run(model: str, revision: str | None, backend: str, described: dict[str, Any] | None) -> dict[str, Any]:
    """The model columns a run records in its manifest (`model_info`): read from the files for the local
    backends, from the server's /v1/models entry for the openai backend; `described` is the backend's own
    description (its resolved dtype is the precision)."""
    described = described if isinstance(described, dict) else {}
    precision = described.get("dtype_resolved") or described.get("dtype")
    precision = None if precision in (None, "", "auto") else str(precision)
    if backend == "openai":
        return served_model_info(described.get("served_model"))
    if backend in ("oracle", "majority", "scripted"):
        return empty_info(f"the {backend} backend answers without a model")
    return model_info(model, revision, precision)
