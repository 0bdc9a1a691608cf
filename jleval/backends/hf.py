"""The transformers backend: `model.generate` on batches of left-padded, length-sorted prompts, CPU or GPU.

It decodes the way the vLLM backend does, so a score does not depend on which engine ran:
- prompt tokens are `tokenizer.encode(text, add_special_tokens=request.add_special_tokens)` (BOS policy), where
  text is the prompt, or the request's chat messages rendered with the tokenizer's chat template;
- greedy unless a request asks for a temperature; the model's own generation_config defaults (sampling,
  min/no-repeat lengths, ...) are not applied, as vLLM ignores them when given explicit sampling params;
- each row stops at its own `max_tokens`, at EOS, or at the first stop string, checked after every token in
  the order given, and the text is cut at the start of the stop string (vLLM's default, stop string
  excluded); finish_reason is "stop" or "length" with the same meaning;
- the text is what vLLM's incremental detokenizer releases: trailing tokens whose bytes end in an incomplete
  UTF-8 character are held back, and dropped when generation ends there (`released_text`).

Batches: requests are grouped by decoding settings and max_tokens, sorted by prompt length (longest first, so
an out-of-memory shows up in the first batch), and cut into batches of at most `batch_size` rows and
`max_batch_tokens` padded tokens. With `batch_size="auto"` the first batch size comes from the free memory,
and on out-of-memory the batch is split in half and retried; the smaller size is kept for the rest of the run.
Each batch's completions are yielded as soon as the batch finishes.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from jleval.backends._common import (
    chat_template_hash,
    find_stop,
    fingerprint_of,
    model_identity,
    model_load_error,
    render_chat,
)
from jleval.backends._context import prompt_text
from jleval.errors import BackendError, RunError, UsageError
from jleval.types import Completion, Request

OPTIONS = {"revision", "dtype", "device", "device_map", "batch_size", "max_batch_tokens", "trust_remote_code",
           "tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size"}

_DTYPES = {"float32": "float32", "float": "float32", "fp32": "float32", "float16": "float16",
           "half": "float16", "fp16": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}


def is_oom(err: BaseException) -> bool:
    """Out of memory on the GPU (torch.cuda.OutOfMemoryError) or on the CPU (MemoryError, or the allocator's
    RuntimeError that says so)."""
    import torch

    if isinstance(err, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


@dataclass
class _Row:
    index: int  # position in the caller's request list
    ids: list[int]
    request: Request


def released_text(tokenizer: Any, ids: Sequence[int]) -> str:
    """The text vLLM's detokenizer has released for these generated ids.

    vLLM decodes incrementally (tokenizers' DecodeStream) and holds a token's text back while the decoded text
    ends in U+FFFD, the mark of an incomplete UTF-8 character; a request that ends there (max_tokens, EOS)
    loses those trailing tokens' text. So: the decoded text of the longest prefix of `ids` that does not end
    in U+FFFD. (Replacement characters inside the text stay, as in vLLM.)"""
    k = len(ids)
    text = tokenizer.decode(ids, skip_special_tokens=True)
    while k and text.endswith("\ufffd"):
        k -= 1
        text = tokenizer.decode(ids[:k], skip_special_tokens=True)
    return text


class _RowStopper:
    """A per-row stopping criterion for `generate`: EOS, the row's max_tokens, or a stop string.

    It keeps, for every row, why and where it finished, so the text can be cut exactly where vLLM cuts it."""

    def __init__(self, tokenizer: Any, prompt_width: int, rows: Sequence[_Row], eos_ids: set[int]) -> None:
        self.tokenizer = tokenizer
        self.prompt_width = prompt_width
        self.rows = rows
        self.eos_ids = eos_ids
        self.done = [False] * len(rows)
        self.on_done: Callable[[int], None] = lambda r: None  # told each row as it finishes (streaming)
        self.abort = False  # set by the consumer that stops listening: every row stops at the next step
        # a row generate ends without the stopper marking it (max length) keeps these: "length", no text
        self.reason: list[str] = ["length"] * len(rows)
        self.text: list[str] = [""] * len(rows)
        self.n_tokens = [0] * len(rows)
        self.stop_str: list[str | None] = [None] * len(rows)

    def __call__(self, input_ids, scores, **kwargs):  # transformers' signature (input_ids unused)
        import torch

        if self.abort:
            return torch.ones(len(self.rows), dtype=torch.bool, device=input_ids.device)
        generated = input_ids[:, self.prompt_width:].tolist()
        for r, row in enumerate(self.rows):
            if self.done[r]:
                continue
            self._check_row(r, row, generated[r])
            if self.done[r]:
                self.on_done(r)
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)

    def _check_row(self, r: int, row: _Row, ids: list[int]) -> None:
        """Whether row r is finished after these generated ids: EOS, a stop string, or its max_tokens."""
        self.n_tokens[r] = len(ids)
        gen = row.request.gen
        if ids and ids[-1] in self.eos_ids:
            self.done[r], self.reason[r], self.text[r] = True, "stop", released_text(self.tokenizer, ids[:-1])
            return
        if gen.stop:
            text = released_text(self.tokenizer, ids)
            found = find_stop(text, gen.stop)
            if found is not None:
                self.done[r], self.reason[r] = True, "stop"
                self.stop_str[r], self.text[r] = found[0], text[:found[1]]
                return
        if len(ids) >= gen.max_tokens:
            self.done[r], self.reason[r], self.text[r] = True, "length", released_text(self.tokenizer, ids)


def check_device(device: str) -> None:
    """A --device this torch cannot use is one line naming the option and the fix, before anything is loaded."""
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {device} is not a device torch knows",
                         "use --device cpu, cuda, cuda:N (N = the GPU's index) or auto") from None
    if kind == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {device}: Apple's MPS is not available on this machine", "use --device cpu")
    if kind != "cuda":
        return
    if not torch.cuda.is_available():
        raise UsageError(f"--device {device}: this torch {torch.__version__} cannot use CUDA (a CPU build, or no "
                         "NVIDIA GPU and driver visible)",
                         "use --device cpu (or auto), or install a CUDA build of torch on a machine with an NVIDIA GPU")
    index = torch.device(device).index
    if index is not None and index >= torch.cuda.device_count():
        raise UsageError(f"--device {device}: there are {torch.cuda.device_count()} GPUs (cuda:0 to "
                         f"cuda:{torch.cuda.device_count() - 1})", "pick one of them, or --device cuda")


class HFBackend:
    """Runs a causal LM with transformers. See the module docstring for the decoding contract."""

    name = "hf"

    def __init__(self, model: str, *, revision: str | None = None, dtype: str = "auto", device: str = "auto",
                 device_map: str | None = None, batch_size: int | str = "auto",
                 max_batch_tokens: int | None = None, trust_remote_code: bool = False,
                 tensor_parallel_size: int = 1, pipeline_parallel_size: int = 1,
                 data_parallel_size: int = 1) -> None:
        if max(tensor_parallel_size, pipeline_parallel_size, data_parallel_size) > 1:
            raise UsageError(
                "the hf backend runs one model copy on one device (or split by --device-map)",
                "use --backend vllm for tensor, pipeline or data parallelism",
            )
        if batch_size != "auto" and (not isinstance(batch_size, int) or batch_size < 1):
            raise UsageError(f"batch size must be a positive integer or 'auto', not {batch_size!r}")
        import torch
        import transformers

        self.model_id = model
        self.revision = revision
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        check_device(device)
        self.device = device
        self.tokenizer, self.model = self._load(model, revision, self._resolve_dtype(dtype, device), device_map,
                                                trust_remote_code)
        if not device_map:
            self.model.to(device)
        self.model.eval()
        self._keep_special_tokens_only()

        self.batch_size: int | None = batch_size if isinstance(batch_size, int) else None
        self.auto_batch = batch_size == "auto"
        self.max_batch_tokens = max_batch_tokens
        self.oom_halvings = 0
        self._versions = {"transformers": transformers.__version__, "torch": torch.__version__}

    @staticmethod
    def _load(model: str, revision: str | None, torch_dtype: Any, device_map: str | None,
              trust_remote_code: bool) -> tuple[Any, Any]:
        """The tokenizer and the model; anything raised while loading is a RunError that names the model."""
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dtype_kw = "dtype" if _version_tuple(transformers.__version__) >= (4, 56) else "torch_dtype"
        load_kw: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code}
        try:
            tokenizer = AutoTokenizer.from_pretrained(model, **load_kw)
            loaded = AutoModelForCausalLM.from_pretrained(
                model, **load_kw, **{dtype_kw: torch_dtype}, **({"device_map": device_map} if device_map else {}))
        except Exception as err:  # anything raised while loading means the model cannot be used
            raise model_load_error(model, err, "transformers") from err
        return tokenizer, loaded

    def _keep_special_tokens_only(self) -> None:
        """Only the special token ids survive from the model's generation config (see the module docstring): the
        EOS ids that end a row and the pad id are kept here; what was dropped is recorded for describe()."""
        from transformers import GenerationConfig

        tok = self.tokenizer
        loaded_gc = self.model.generation_config
        eos = loaded_gc.eos_token_id if loaded_gc.eos_token_id is not None else tok.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        self.pad_id = next(x for x in (tok.pad_token_id, min(self.eos_ids, default=None), 0) if x is not None)
        self.original_generation_config = loaded_gc.to_diff_dict()
        self.model.generation_config = GenerationConfig(
            bos_token_id=loaded_gc.bos_token_id, eos_token_id=eos, pad_token_id=self.pad_id)

    # ---- protocol ---------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        cfg = self.model.config
        return {
            "engine": "transformers", "engine_version": self._versions["transformers"],
            "torch_version": self._versions["torch"], "model": self.model_id, "revision": self.revision,
            "commit": getattr(cfg, "_commit_hash", None), "dtype": str(self.model.dtype).replace("torch.", ""),
            "device": self.device, "tokenizer": type(self.tokenizer).__name__,
            "chat_template_sha256": chat_template_hash(self.tokenizer),
            "model_generation_config_ignored": self.original_generation_config,
            "batch_size": "auto" if self.auto_batch else self.batch_size, "max_batch_tokens": self.max_batch_tokens,
        }

    def fingerprint(self) -> str:
        identity = model_identity(self.model_id, self.revision, getattr(self.model.config, "_commit_hash", None))
        return fingerprint_of("hf", identity, str(self.model.dtype))

    def context_length(self) -> int | None:
        """The positions the model was built for (config.max_position_embeddings), None when it does not say."""
        n = getattr(self.model.config, "max_position_embeddings", None)
        return n if isinstance(n, int) and n > 0 else None

    def count_tokens(self, text: str, add_special_tokens: bool = False) -> int:
        # verbose=False: no "longer than the maximum sequence length" warning from transformers; the context check
        # (backends/_context.py) reports over-long prompts itself, in one line per run
        return len(self.tokenizer.encode(text, add_special_tokens=add_special_tokens, verbose=False))

    def apply_chat_template(self, messages: Sequence[tuple[str, str]]) -> str:
        return render_chat(self.tokenizer, messages, self.model_id)

    def close(self) -> None:
        self.model = None
        self._free_memory()

    def generate(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion]]:
        rows: list[_Row] = []
        for i, req in enumerate(requests):
            ids = self.tokenizer.encode(prompt_text(self, req), add_special_tokens=req.add_special_tokens,
                                        verbose=False)
            if not ids:
                yield i, Completion(text="", finish_reason="error", prompt_tokens=0,
                                    error="empty prompt: nothing to condition on (no text and no BOS token)")
                continue
            rows.append(_Row(i, ids, req))
        for batch in self._plan(rows):
            yield from self._run(batch)

    # ---- batching ---------------------------------------------------------------------------------
    @staticmethod
    def _group_key(req: Request) -> tuple:
        g = req.gen
        sampling = (g.temperature, g.top_p, g.seed) if g.temperature > 0 else ()
        return (g.repetition_penalty, sampling, g.max_tokens)

    def _plan(self, rows: list[_Row]) -> Iterator[list[_Row]]:
        """Yield the batches to run, in order; reads self.batch_size each time, so a halving after an
        out-of-memory applies to the batches that follow."""
        groups: dict[tuple, list[_Row]] = {}
        for row in rows:
            groups.setdefault(self._group_key(row.request), []).append(row)
        for key in sorted(groups, key=repr):
            queue = sorted(groups[key], key=lambda r: (-len(r.ids), r.index))
            while queue:
                longest = len(queue[0].ids) + queue[0].request.gen.max_tokens
                if self.batch_size is None:  # "auto": first guess from the free memory, corrected by halving on OOM
                    self.batch_size = self._guess_batch_size(longest)
                size = self.batch_size
                if self.max_batch_tokens:
                    size = max(1, min(size, self.max_batch_tokens // longest))
                batch, queue = queue[:size], queue[size:]
                yield batch

    def _guess_batch_size(self, seq_len: int) -> int:
        import torch

        if not str(self.device).startswith("cuda"):
            return 16  # CPU: larger batches gain little and cost memory
        cfg = self.model.config
        layers = getattr(cfg, "num_hidden_layers", 32)
        heads = getattr(cfg, "num_attention_heads", 32)
        kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        kv_bytes_per_token = 2 * layers * kv_heads * head_dim * self.model.dtype.itemsize
        free, _ = torch.cuda.mem_get_info(torch.device(self.device))
        # Half the free memory for the KV cache; the rest for activations and the logits.
        return max(1, min(256, int(0.5 * free / (kv_bytes_per_token * seq_len))))

    def _run(self, batch: list[_Row]) -> Iterator[tuple[int, Completion]]:
        """Run one batch, each row yielded as it finishes; on out-of-memory, the rows not yielded yet are run again
        in halves."""
        sent: set[int] = set()
        try:
            for index, completion in self._generate_batch(batch):
                sent.add(index)
                yield index, completion
        except Exception as err:
            if not is_oom(err):
                raise BackendError(f"transformers generation failed: {type(err).__name__}: {err}",
                                   "completions written so far are kept; re-run the same command to resume") \
                    from err
            self._free_memory()
            batch = [row for row in batch if row.index not in sent]
            if not batch:  # every row had finished: nothing to redo
                return
            if len(batch) == 1:
                raise RunError(
                    f"out of memory generating one prompt of {len(batch[0].ids)} tokens with {self.model_id!r}",
                    "use a GPU with more memory, --dtype bfloat16, --device-map auto, or the vllm backend",
                ) from err
            self.batch_size = (len(batch) + 1) // 2
            self.oom_halvings += 1
            rest = batch
            while rest:  # the size may shrink again while the first part runs
                part, rest = rest[:self.batch_size], rest[self.batch_size:]
                yield from self._run(part)

    def _free_memory(self) -> None:
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _generate_batch(self, batch: list[_Row]) -> Iterator[tuple[int, Completion]]:
        import torch
        from transformers import StoppingCriteriaList

        t0 = time.perf_counter()
        width = max(len(r.ids) for r in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for r, row in enumerate(batch):  # left padding: every prompt ends at the same column
            input_ids[r, width - len(row.ids):] = torch.tensor(row.ids, dtype=torch.long)
            attention[r, width - len(row.ids):] = 1
        device = self.model.device
        gen = batch[0].request.gen  # same settings across the batch (see _group_key)
        stopper = _RowStopper(self.tokenizer, width, batch, self.eos_ids)
        kwargs: dict[str, Any] = {
            "max_new_tokens": gen.max_tokens,
            "do_sample": gen.temperature > 0, "repetition_penalty": gen.repetition_penalty,
            "pad_token_id": self.pad_id, "stopping_criteria": StoppingCriteriaList([stopper]),
        }
        if gen.temperature > 0:
            kwargs.update(temperature=gen.temperature, top_p=gen.top_p)
            if gen.seed is not None:
                torch.manual_seed(gen.seed)
        yield from self._stream(stopper, batch, t0, input_ids=input_ids.to(device),
                                attention_mask=attention.to(device), **kwargs)

    def _stream(self, stopper: _RowStopper, batch: list[_Row], t0: float,
                **kwargs: Any) -> Iterator[tuple[int, Completion]]:
        """Run `generate` in a worker thread and yield each row as the stopper sees it finish (progress moves during
        a long batch); the worker's exception is raised here. A consumer that stops listening stops the batch."""
        import queue
        import threading

        import torch

        finished: queue.Queue = queue.Queue()
        failure: list[BaseException] = []
        stopper.on_done = finished.put

        def work() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
                failure.append(e)
            finally:
                finished.put(None)

        worker = threading.Thread(target=work, name="jleval-hf-generate", daemon=True)
        worker.start()
        sent: set[int] = set()
        try:
            while (r := finished.get()) is not None:
                sent.add(r)
                yield batch[r].index, self._completion(stopper, batch, r, t0)
        finally:
            stopper.abort = True
            worker.join()
        if failure:
            raise failure[0]
        for r in range(len(batch)):  # rows generate ended without the stopper marking them (max length)
            if r not in sent:
                yield batch[r].index, self._completion(stopper, batch, r, t0)

    @staticmethod
    def _completion(stopper: _RowStopper, batch: list[_Row], r: int, t0: float) -> Completion:
        extra = {"stop_reason": stopper.stop_str[r]} if stopper.stop_str[r] else {}
        return Completion(text=stopper.text[r], finish_reason=stopper.reason[r],
                          prompt_tokens=len(batch[r].ids), completion_tokens=stopper.n_tokens[r],
                          latency_s=time.perf_counter() - t0, extra={**extra, "batch_size": len(batch)})

    @staticmethod
    def _resolve_dtype(dtype: str, device: str):
        import torch

        if dtype in (None, "auto"):
            # The checkpoint's dtype on a GPU; float32 on the CPU, where half precision is slow or missing.
            return "auto" if str(device).startswith("cuda") else torch.float32
        name = _DTYPES.get(str(dtype).lower())
        if name is None:
            raise UsageError(f"unknown dtype {dtype!r}", "use auto, float32, float16 or bfloat16")
        return getattr(torch, name)


def _version_tuple(version: str) -> tuple[int, ...]:
    """The leading numbers of a version ("4.56.0.dev0" -> (4, 56, 0))."""
    return tuple(int(n) for n in re.findall(r"\d+", version)[:3])
