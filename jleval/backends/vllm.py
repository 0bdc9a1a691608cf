"""The vLLM backend: the offline `vllm.LLM` engine, every request submitted at once, completions streamed out.

How it drives the engine (vLLM 0.26 and later):
1. prompts (chat messages rendered with the tokenizer's chat template first) are tokenized here,
   `tokenizer.encode(text, add_special_tokens=request.add_special_tokens)` (the leaderboard's BOS policy), and
   passed as token-id prompts, so vLLM adds nothing;
2. each request is queued with its own `SamplingParams` (greedy: temperature 0; max_tokens; stop strings,
   excluded from the text as vLLM does by default; repetition_penalty) through `LLM.enqueue`, the public
   "add without waiting" call (vLLM >= 0.26). Where a vLLM lacks it, `llm.llm_engine.add_request` is used;
   a prompt the engine refuses (longer than max_model_len, ...) becomes an error Completion, not a dead run;
3. instead of `wait_for_completion()`/`generate()`, which return only when everything is done, this module
   runs the same loop they run: `while llm_engine.has_unfinished_requests(): llm_engine.step()`, and yields
   each RequestOutput the moment it is `finished`. Outputs carry the request id given at submission (vLLM
   0.26 appends a random suffix to the ids it returns; both forms are mapped back).
All requests are queued before the first step, so the scheduler sees the whole workload, and automatic
prefix caching (turned on explicitly) shares the few-shot prefixes between the prompts of a task.

Data parallelism: `LLM(data_parallel_size>1)` is refused by vLLM in one process, so `data_parallel_size=N`
starts N worker processes, each with its own engine on its own `tensor_parallel_size * pipeline_parallel_size`
GPUs (set through CUDA_VISIBLE_DEVICES), and gives each a contiguous, cost-balanced slice of the requests
(contiguous, so a task's shared prefix mostly stays on one engine). Multi-node runs go through Ray:
`distributed_executor_backend="ray"` with tensor/pipeline parallelism across the nodes (docs/gpu.md).
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

from jleval.backends._common import (
    chat_template_hash,
    fingerprint_of,
    model_identity,
    model_load_error,
    render_chat,
)
from jleval.backends._context import prompt_text
from jleval.errors import BackendError, RunError, UsageError
from jleval.types import Completion, GenParams, Request

OPTIONS = {"revision", "dtype", "tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size",
           "max_model_len", "gpu_memory_utilization", "trust_remote_code", "distributed_executor_backend",
           "enable_prefix_caching", "seed", "enforce_eager", "max_num_seqs", "engine_kwargs"}

RESUME_HINT = "completions written so far are kept; re-run the same command to resume"


def import_vllm():
    try:
        import vllm
    except ImportError as err:
        raise RunError(
            f"the vllm backend needs vLLM, which does not import here: {err}",
            'pip install "jleval[vllm]" on a machine with a CUDA GPU, or use --backend hf',
        ) from None
    return vllm


def platform_of(vllm: Any) -> str | None:  # takes the module, to say that it is imported
    """The device type vLLM runs on here ("cuda", "cpu", "rocm", ...), or None when it found no platform."""
    try:
        from vllm.platforms import current_platform
    except Exception:  # noqa: BLE001 (an old or broken vLLM: no platform layer to ask)
        return None
    if getattr(current_platform, "is_unspecified", lambda: False)():
        return None
    return str(getattr(current_platform, "device_type", "") or "") or None


def refusal_errors(vllm: Any) -> tuple[type[BaseException], ...]:
    """The exceptions vLLM raises for one bad request at submission (vLLM >= 0.3x: VLLMValidationError, which
    is not a ValueError; older releases: ValueError/TypeError)."""
    own = getattr(getattr(vllm, "exceptions", None), "VLLMValidationError", None)
    if own is None:
        try:
            from vllm.exceptions import VLLMValidationError
        except ImportError:
            own = None
        else:
            own = VLLMValidationError
    return (ValueError, TypeError) + ((own,) if isinstance(own, type) else ())


def attention_head_dim(config: Any) -> int | None:
    """The width of the model's attention heads, from its (text) config."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    head_dim = getattr(text, "head_dim", None)
    heads, hidden = getattr(text, "num_attention_heads", None), getattr(text, "hidden_size", None)
    if isinstance(head_dim, int):
        return head_dim
    if isinstance(heads, int) and isinstance(hidden, int) and heads > 0:
        return hidden // heads
    return None


def unsupported_here(model: str, revision: str | None, trust_remote_code: bool, platform: str | None) -> str | None:
    """Why vLLM cannot run this model on this platform, found before an engine starts (on the CPU platform a
    head width its attention does not take passes the engine's start and fails the first forward pass), or
    None when nothing is known to be wrong (the engine has the last word)."""
    if platform != "cpu":
        return None
    try:
        from transformers import AutoConfig
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        config = AutoConfig.from_pretrained(model, revision=revision, trust_remote_code=trust_remote_code)
        sizes = list(CPUAttentionBackend.get_supported_head_sizes())
    except Exception:  # noqa: BLE001 (no config or an older vLLM: the engine reports what is wrong)
        return None
    head_dim = attention_head_dim(config)
    if head_dim is None or head_dim in sizes:
        return None
    return f"its attention heads are {head_dim} wide and vLLM's CPU attention takes {', '.join(map(str, sizes))}"


def sampling_params(vllm: Any, gen: GenParams) -> Any:
    """The per-request SamplingParams that mirror a GenParams (and the hf backend's decoding)."""
    return vllm.SamplingParams(
        n=1, temperature=gen.temperature, top_p=gen.top_p, max_tokens=gen.max_tokens,
        stop=list(gen.stop) or None, repetition_penalty=gen.repetition_penalty, seed=gen.seed,
        skip_special_tokens=True, include_stop_str_in_output=False,
    )


def to_completion(output: Any, latency: float | None) -> Completion:
    """A finished vllm RequestOutput as a Completion."""
    c = output.outputs[0]
    extra: dict[str, Any] = {}
    if isinstance(c.stop_reason, str):
        extra["stop_reason"] = c.stop_reason
    cached = getattr(output, "num_cached_tokens", None)
    if cached is not None:
        extra["cached_prompt_tokens"] = cached
    prompt_ids = getattr(output, "prompt_token_ids", None)
    completion = Completion(
        text=c.text, finish_reason=c.finish_reason, prompt_tokens=len(prompt_ids) if prompt_ids else None,
        completion_tokens=len(c.token_ids), latency_s=latency, extra=extra,
    )
    if c.finish_reason not in ("stop", "length"):
        completion.text = ""
        completion.error = f"vLLM ended the request with finish_reason={c.finish_reason!r}"
    return completion


def _answered(out: Any, index_of: dict[str, int], remaining: set[int]) -> int | None:
    """The index of the request a finished engine output answers; None while it is unfinished, or when it is
    not ours (another caller's request on a shared engine)."""
    if not getattr(out, "finished", False):
        return None
    k = index_of.get(out.request_id)
    if k is None:
        k = index_of.get(str(out.request_id).rsplit("-", 1)[0])
    return k if k in remaining else None  # None is in no set of indices


class VLLMBackend:
    """vLLM offline engine; see the module docstring for how requests are submitted and streamed."""

    name = "vllm"

    def __init__(self, model: str, *, revision: str | None = None, dtype: str = "auto",
                 tensor_parallel_size: int = 1, pipeline_parallel_size: int = 1, data_parallel_size: int = 1,
                 max_model_len: int | None = None, gpu_memory_utilization: float | None = None,
                 trust_remote_code: bool = False, distributed_executor_backend: str | None = None,
                 enable_prefix_caching: bool = True, seed: int = 0, enforce_eager: bool | None = None,
                 max_num_seqs: int | None = None, engine_kwargs: dict[str, Any] | None = None) -> None:
        if min(tensor_parallel_size, pipeline_parallel_size, data_parallel_size) < 1:
            raise UsageError("parallel sizes must be >= 1")
        self.model_id = model
        self.revision = revision
        self.vllm = import_vllm()
        self.platform = platform_of(self.vllm)
        if enforce_eager is None:  # compiling takes minutes on the CPU platform, for little gain on small runs
            enforce_eager = self.platform == "cpu"
        self.settings: dict[str, Any] = {
            "dtype": dtype, "tensor_parallel_size": tensor_parallel_size,
            "pipeline_parallel_size": pipeline_parallel_size, "data_parallel_size": data_parallel_size,
            "max_model_len": max_model_len, "gpu_memory_utilization": gpu_memory_utilization,
            "distributed_executor_backend": distributed_executor_backend,
            "enable_prefix_caching": enable_prefix_caching, "seed": seed, "enforce_eager": enforce_eager,
            "max_num_seqs": max_num_seqs, "trust_remote_code": trust_remote_code,
        }
        self.engine_kwargs = dict(engine_kwargs or {})
        self._dp: Any = None
        self.llm: Any = None  # vLLM's LLM (vLLM has no type information); None with data parallelism
        if data_parallel_size > 1:
            from jleval.backends._vllm_dp import DataParallelEngines

            if distributed_executor_backend == "ray":
                raise UsageError(
                    "--data-parallel-size > 1 cannot be combined with --distributed-executor-backend ray",
                    "with Ray, span the nodes with --tensor-parallel-size / --pipeline-parallel-size "
                    "(docs/gpu.md), or run one jleval per node",
                )
            worker_options = {**self.settings, "data_parallel_size": 1, "revision": revision,
                              "engine_kwargs": self.engine_kwargs}
            self._dp = DataParallelEngines(model, worker_options, data_parallel_size,
                                           tensor_parallel_size * pipeline_parallel_size, self.platform)
            self.tokenizer = self._load_tokenizer()
        else:
            self.llm = self._make_llm()
            self.tokenizer = self.llm.get_tokenizer()

    def _engine_args(self) -> dict[str, Any]:
        s = self.settings
        args: dict[str, Any] = {
            "model": self.model_id, "revision": self.revision, "dtype": s["dtype"],
            "tensor_parallel_size": s["tensor_parallel_size"],
            "pipeline_parallel_size": s["pipeline_parallel_size"],
            "trust_remote_code": s["trust_remote_code"], "seed": s["seed"],
            "enable_prefix_caching": s["enable_prefix_caching"], "enforce_eager": s["enforce_eager"],
        }
        for key in ("max_model_len", "gpu_memory_utilization", "distributed_executor_backend", "max_num_seqs"):
            if s[key] is not None:
                args[key] = s[key]
        args.update(self.engine_kwargs)
        return args

    def _make_llm(self) -> Any:
        reason = unsupported_here(self.model_id, self.revision, self.settings["trust_remote_code"], self.platform)
        if reason:
            raise RunError(f"vLLM {self.vllm.__version__} cannot run {self.model_id!r} on its {self.platform} "
                           f"platform: {reason}", "run it with --backend hf")
        try:
            return self.vllm.LLM(**self._engine_args())
        except TypeError as err:  # an engine argument this vLLM does not know
            raise UsageError(f"vLLM {self.vllm.__version__} refused the engine arguments: {err}",
                             "drop the option, or upgrade vLLM") from err
        except Exception as err:  # anything else raised while building the engine: the model did not load
            error = model_load_error(self.model_id, err, f"vLLM {self.vllm.__version__}")
            if "initialization failed" in str(err).lower():
                error.hint = ("the engine's own log above says why (out of memory, unsupported architecture...); "
                              "a model this vLLM cannot run may run with --backend hf")
            elif "not supported" in str(err).lower() or "unsupported" in str(err).lower():
                error.hint = f"vLLM cannot run this model on its {self.platform} platform: run it with --backend hf"
            raise error from err

    def _load_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(self.model_id, revision=self.revision,
                                                 trust_remote_code=self.settings["trust_remote_code"])
        except Exception as err:
            raise model_load_error(self.model_id, err, "transformers (tokenizer)") from err

    # ---- protocol ---------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "engine": "vllm", "engine_version": getattr(self.vllm, "__version__", "unknown"), "platform": self.platform,
            "model": self.model_id, "revision": self.revision, **self.settings,
            "engine_kwargs": self.engine_kwargs, "tokenizer": type(self.tokenizer).__name__,
            "chat_template_sha256": chat_template_hash(self.tokenizer),
        }
        model_config = self._model_config()
        if model_config is not None:
            info["dtype_resolved"] = str(getattr(model_config, "dtype", "")).replace("torch.", "") or None
            info["max_model_len_resolved"] = getattr(model_config, "max_model_len", None)
        if self._dp is not None:
            info["data_parallel_workers"] = self._dp.describe_workers()
        return info

    def _model_config(self) -> Any:
        if self.llm is None:
            return None
        return getattr(self.llm, "model_config", None) or getattr(self.llm.llm_engine, "model_config", None)

    def context_length(self) -> int | None:
        """max_model_len as the engine resolved it (the model's own limit, or --max-model-len)."""
        config = self._model_config()
        if config is not None:
            return getattr(config, "max_model_len", None)
        if self._dp is not None:
            lengths = [w.get("max_model_len_resolved") for w in self._dp.describe_workers()]
            return min((n for n in lengths if isinstance(n, int)), default=None)
        return None

    def fingerprint(self) -> str:
        return fingerprint_of("vllm", model_identity(self.model_id, self.revision), str(self.settings["dtype"]))

    def count_tokens(self, text: str, add_special_tokens: bool = False) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=add_special_tokens))

    def apply_chat_template(self, messages: Sequence[tuple[str, str]]) -> str:
        return render_chat(self.tokenizer, messages, self.model_id)

    def close(self) -> None:
        if self._dp is not None:
            self._dp.close()
            self._dp = None
        self._shutdown_engine()
        self.llm = None

    def _shutdown_engine(self) -> None:
        """Stop vLLM's engine-core process now and wait for it (vLLM's own shutdown joins it), rather than
        leaving it to garbage collection: a data-parallel rank that exits first would orphan it."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        shutdown = getattr(core, "shutdown", None)
        if callable(shutdown):
            with contextlib.suppress(Exception):  # closing must not mask the run's outcome
                shutdown()

    def _submit_all(self, requests: Sequence[Request], index_of: dict[str, int],
                    started: dict[int, float]) -> Iterator[tuple[int, Completion]]:
        """Hand every request to the engine (filling index_of: engine request id -> index, and started); yields
        the ones the engine refused at once, as error completions."""
        refused = refusal_errors(self.vllm)
        for i, req in enumerate(requests):
            ids = self.tokenizer.encode(prompt_text(self, req), add_special_tokens=req.add_special_tokens)
            prompt = {"prompt_token_ids": ids}
            try:
                request_ids = self._submit(i, prompt, sampling_params(self.vllm, req.gen))
            except refused as err:  # the engine refused this one prompt (too long, empty, ...)
                yield i, self._refusal(len(prompt["prompt_token_ids"]), err)
                continue
            started[i] = time.perf_counter()
            for rid in request_ids:
                index_of[rid] = i

    def generate(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion]]:
        if self._dp is not None:
            yield from self._dp.generate(requests)
            return
        engine = self.llm.llm_engine
        index_of: dict[str, int] = {}
        started: dict[int, float] = {}
        yield from self._submit_all(requests, index_of, started)
        remaining = set(started)
        try:
            while remaining and engine.has_unfinished_requests():
                try:
                    outputs = engine.step()
                except Exception as err:
                    raise BackendError(f"the vLLM engine failed mid-run: {type(err).__name__}: {err}",
                                       RESUME_HINT) from err
                for out in outputs:
                    k = _answered(out, index_of, remaining)
                    if k is None:
                        continue
                    remaining.discard(k)
                    yield k, to_completion(out, time.perf_counter() - started[k])
            if remaining:
                raise BackendError(f"the vLLM engine stopped with {len(remaining)} request(s) unanswered",
                                   RESUME_HINT)
        finally:
            if remaining:  # the caller stopped early or the engine failed: free the engine's slots
                ids = [rid for rid, i in index_of.items() if i in remaining]
                try:
                    engine.abort_request(ids)
                except Exception:  # noqa: BLE001 (a dead engine cannot abort; nothing left to free)
                    pass

    def _refusal(self, n_tokens: int, err: BaseException) -> Completion:
        limit = self.context_length()
        size = f"the prompt is {n_tokens} tokens" + (f" (the model's context: {limit} tokens)" if limit else "")
        return Completion(text="", finish_reason="error", prompt_tokens=n_tokens,
                          error=f"vLLM refused the request: {size}: {err}")

    def _submit(self, i: int, prompt: dict[str, Any], params: Any) -> list[str]:
        """Queue one request; returns the ids it may come back under."""
        enqueue = getattr(self.llm, "enqueue", None)
        if enqueue is not None:
            (rid,) = enqueue([prompt], [params], use_tqdm=False)
            return [rid, rid.rsplit("-", 1)[0]]
        kind = getattr(getattr(self.vllm, "sampling_params", None), "RequestOutputKind", None)
        if kind is not None:
            params.output_kind = kind.FINAL_ONLY
        own = f"jleval-{i}"
        rid = self.llm.llm_engine.add_request(own, prompt, params)
        return [own] + ([rid] if isinstance(rid, str) else [])
