"""Pieces the local backends (hf, vllm) share: stop strings cut exactly as vLLM cuts them, chat templates,
model identity for cache keys, and turning a model that will not load into a RunError that names it."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jleval.errors import RunError, UsageError
from jleval.fsutil import sha256_text


def find_stop(text: str, stops: Sequence[str]) -> tuple[str, int] | None:
    """The stop string that ends `text` and where to cut, as vLLM decides it, or None.

    vLLM checks the stop strings after every generated token, in the order given, and cuts the output at the
    start of the first match (the stop string itself is excluded by default). Called after every token on
    text that only grows, searching the whole text finds the same match at the same place as vLLM's search of
    the newly added characters: any match that is new must end in the new characters.
    """
    for stop in stops:
        if not stop:
            continue
        at = text.find(stop)
        if at != -1:
            return stop, at
    return None


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """`text` cut before the first stop string (for backends whose server cannot be trusted to do it)."""
    found = find_stop(text, stops)
    return text if found is None else text[:found[1]]


def is_local_model(model: str) -> bool:
    return Path(model).expanduser().is_dir()


def looks_like_path(model: str) -> bool:
    """A Hub id is `name` or `org/name`; anything else (./x, /abs, a/b/c, ~/x) is meant as a folder."""
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or Path(model).expanduser().exists()


def _file_digest(path: Path, edge: int = 1 << 20) -> str:
    """sha256 of a file's size plus its first, middle and last MiB (the whole file when it is smaller than
    4 MiB): cheap on multi-GB weights, and it tells a re-trained checkpoint saved over the same folder from the
    old one (every tensor changes). A hand edit inside a large file between those windows is not seen."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as f:
        if size <= 4 * edge:
            h.update(f.read())
        else:
            for offset in (0, size // 2 - edge // 2, size - edge):
                f.seek(offset)
                h.update(f.read(edge))
    return h.hexdigest()


#: The files that make a model: config, tokenizer, chat template, weights, and remote code.
_MODEL_SUFFIXES = {".json", ".safetensors", ".bin", ".pt", ".pth", ".model", ".jinja", ".txt", ".py", ".tiktoken",
                   ".gguf", ".msgpack", ".h5", ".npz"}


def model_identity(model: str, revision: str | None, commit: str | None = None) -> dict[str, Any]:
    """What identifies a model across machines: the Hub id and resolved commit, or, for a local folder
    (whose absolute path differs between machines), a digest of its config, tokenizer and weight files."""
    if is_local_model(model):
        folder = Path(model).expanduser()
        files = {}
        for p in sorted(folder.rglob("*")):
            rel = p.relative_to(folder)
            if any(part.startswith(".") for part in rel.parts):  # .git, .cache, editor droppings
                continue
            if p.is_file() and p.suffix in _MODEL_SUFFIXES:
                files[rel.as_posix()] = _file_digest(p)
        digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
        return {"model": Path(model).name, "local_digest": digest}
    return {"model": model, "revision": commit or revision or "main"}


def fingerprint_of(engine: str, identity: dict[str, Any], dtype: str) -> str:
    payload = json.dumps({"engine": engine, "dtype": dtype, **identity}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def missing_folder_error(model: str) -> RunError | None:
    """A model that is plainly a path (/x, ./x, ../x, ~/x, a/b/c) but names nothing: said as such, never as a bad
    Hub id."""
    if looks_like_path(model) and not Path(model).expanduser().exists():
        return RunError(f"model folder {model} does not exist",
                        "pass the folder that holds config.json, the weights and the tokenizer files (a Hugging "
                        "Face model id is `name` or `org/name`)")
    return None


def model_load_error(model: str, err: BaseException, engine: str) -> RunError:
    """A RunError that names the model and says what to do, for any exception raised while loading it."""
    missing = missing_folder_error(model)
    if missing is not None:
        return missing
    detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if is_local_model(model):
        if not (Path(model).expanduser() / "config.json").is_file():
            return RunError(
                f"the folder {model!r} is not a Hugging Face model folder: it has no config.json",
                "pass the folder that holds config.json, the weights and the tokenizer files",
            )
    elif looks_like_path(model) or isinstance(err, OSError):
        return RunError(
            f"model {model!r} is not a local folder and not downloadable offline: {detail}",
            "pass a folder that holds config.json and the weights, or a Hugging Face model id with network "
            "access (or already in the Hugging Face cache; check HF_HOME). Offline, set HF_HUB_OFFLINE=1 so "
            "that a missing model fails at once instead of after the Hub's retries",
        )
    return RunError(
        f"model {model!r} failed to load with {engine}: {type(err).__name__}: {detail}",
        "check that the folder holds a complete model (config.json, weights, tokenizer), that --dtype and "
        "--revision are right, and pass --trust-remote-code if the model needs its own code",
    )


def render_chat(tokenizer: Any, messages: Sequence[tuple[str, str]], model: str) -> str:
    """Chat messages rendered with the tokenizer's chat template, ready for the assistant's turn."""
    if not getattr(tokenizer, "chat_template", None):
        raise UsageError(
            f"model {model!r} has no chat template in its tokenizer",
            "run with --no-chat-template, or use a chat-tuned model",
        )
    return tokenizer.apply_chat_template(
        [{"role": role, "content": content} for role, content in messages],
        tokenize=False, add_generation_prompt=True,
    )


def chat_template_hash(tokenizer: Any) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # several named templates
        template = json.dumps(template, sort_keys=True)
    return sha256_text(template) if template else None


def check_options(backend: str, options: dict[str, Any], accepted: set[str]) -> dict[str, Any]:
    """Drop unset options; refuse ones this backend does not understand, naming them."""
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - accepted)
    if unknown:
        raise UsageError(
            f"the {backend} backend does not take option(s): {', '.join(unknown)}",
            f"it takes: {', '.join(sorted(accepted))}",
        )
    return given


_TRUE = ("1", "true", "yes", "on")


def _hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the Hugging Face Hub cannot be reached from here (None when a TCP connection to it opens, or when a
    proxy is configured: then only a real request can tell)."""
    import os
    import socket
    from urllib.parse import urlparse

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        return f"{host} cannot be reached ({e.strerror or e})"
    return None


def check_hub_model(model: str, revision: str | None = None) -> None:
    """Fail at once, naming the model, when a Hub id is not in the local Hugging Face cache and cannot be
    downloaded (HF_HUB_OFFLINE set, or the Hub unreachable): transformers would first spend about a minute in
    retries. Called before the engine (torch, transformers, vLLM) is imported."""
    import os

    missing = missing_folder_error(model)
    if missing is not None:
        raise missing
    if looks_like_path(model):  # a folder (an existing path is one)
        return
    try:
        from huggingface_hub import constants, try_to_load_from_cache

        cached = try_to_load_from_cache(model, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 - not a valid repo id, or an older huggingface_hub: the loader's own error says it
        return
    if isinstance(cached, str):
        return
    offline = next((k for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if os.environ.get(k, "").lower() in _TRUE),
                   None)
    why = f"{offline} is set" if offline else _hub_unreachable()
    if why:
        raise RunError(f"model {model!r} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and cannot be "
                       f"downloaded: {why}",
                       "download it where there is network (`huggingface-cli download MODEL`) and copy the cache "
                       "(HF_HOME), or pass a local model folder")
