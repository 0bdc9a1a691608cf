"""Fake vllm.LLM and its engine (see ../../README.md): vLLM 0.26's offline call surface, a scripted model."""
from __future__ import annotations

import copy
import itertools
import re
import uuid
from pathlib import Path

from vllm.exceptions import VLLMValidationError
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import RequestOutputKind, SamplingParams

# Engine arguments vLLM 0.26's LLM/EngineArgs accept (the subset a test may meet); others are a TypeError.
ENGINE_ARGS = {
    "model", "tokenizer", "tokenizer_mode", "revision", "tokenizer_revision", "dtype", "quantization", "seed",
    "tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "distributed_executor_backend",
    "max_model_len", "gpu_memory_utilization", "kv_cache_memory_bytes", "trust_remote_code",
    "enable_prefix_caching", "enforce_eager", "max_num_seqs", "max_num_batched_tokens", "block_size",
    "disable_log_stats", "skip_tokenizer_init", "compilation_config", "hf_token", "hf_overrides",
}
BLOCK = 16  # prefix-cache block size in tokens


class FakeEngine:
    """Continuous batching in miniature: each step, the first `max_num_seqs` unfinished requests get a token."""

    crash_at_step: int | None = None  # raise like a dead EngineCore at this step (1-based)
    log: list[dict] = []  # every request added, for the tests: prompt ids, params, ids

    def __init__(self, llm: LLM, max_num_seqs: int, max_model_len: int, prefix_caching: bool) -> None:
        self.llm = llm
        self.tokenizer = llm.tokenizer
        self.model_config = type("ModelConfig", (), {"max_model_len": max_model_len, "dtype": "float32"})()
        self.max_num_seqs = max_num_seqs
        self.max_model_len = max_model_len
        self.prefix_caching = prefix_caching
        self.requests: dict[str, dict] = {}  # internal id -> state, in arrival order
        self.seen_prompts: list[list[int]] = []
        self.steps = 0

    @staticmethod
    def script(prompt_text: str) -> str:
        """What the fake model answers: the text after `ANSWER=` up to `|` in the prompt, else a default."""
        m = re.search(r"ANSWER=(.*?)\|", prompt_text, re.S)
        return m.group(1) if m else f"答え{len(prompt_text) % 10}\n\n以上です。"

    def add_request(self, request_id, prompt, params, arrival_time=None, lora_request=None,
                    tokenization_kwargs=None, trace_headers=None, priority=0, prompt_text=None) -> str:
        if not isinstance(request_id, str):
            raise TypeError(f"request_id must be a string, got {type(request_id)}")
        if isinstance(prompt, str):
            prompt = {"prompt": prompt}
        if "prompt_token_ids" in prompt:
            ids = list(prompt["prompt_token_ids"])
        else:  # text prompts are tokenized with the tokenizer's defaults (BOS added), as vLLM does
            ids = self.tokenizer.encode(prompt["prompt"])
        if not ids:
            raise VLLMValidationError("The decoder prompt cannot be empty")
        if len(ids) >= self.max_model_len:
            raise VLLMValidationError(f"The decoder prompt (length {len(ids)}) is longer than the maximum model length "
                             f"of {self.max_model_len}. Make sure that `max_model_len` is no smaller than the "
                             "number of text tokens.")
        params = copy.deepcopy(params)
        cached = 0
        if self.prefix_caching:
            for old in self.seen_prompts:
                n = next((k for k, (a, b) in enumerate(zip(old, ids)) if a != b), min(len(old), len(ids)))
                cached = max(cached, n // BLOCK * BLOCK)
        self.seen_prompts.append(ids)
        answer = self.script(self.tokenizer.decode(ids, skip_special_tokens=True))
        internal = f"{request_id}-{uuid.uuid4().hex[:8]}"
        self.requests[internal] = {
            "external": request_id, "prompt_ids": ids, "params": params, "cached": cached,
            "script": self.tokenizer.encode(answer, add_special_tokens=False), "gen": [], "text": "",
            "finish": None, "stop_reason": None,
        }
        FakeEngine.log.append({"id": request_id, "prompt_token_ids": ids, "params": params})
        return internal

    def get_num_unfinished_requests(self) -> int:
        return sum(1 for r in self.requests.values() if r["finish"] is None)

    def has_unfinished_requests(self) -> bool:
        return self.get_num_unfinished_requests() > 0

    def abort_request(self, request_ids, internal: bool = False) -> None:
        wanted = set([request_ids] if isinstance(request_ids, str) else request_ids)
        for rid, r in list(self.requests.items()):
            if rid in wanted or r["external"] in wanted:
                del self.requests[rid]

    def _advance(self, r: dict) -> None:
        p: SamplingParams = r["params"]
        eos = self.tokenizer.eos_token_id
        k = len(r["gen"])
        token = r["script"][k] if k < len(r["script"]) else (eos if not p.ignore_eos else r["script"][-1])
        r["gen"].append(token)
        if token == eos and not p.ignore_eos:
            r["finish"] = "stop"
            return
        text = self.tokenizer.decode(r["gen"], skip_special_tokens=p.skip_special_tokens)
        new_chars = len(text) - len(r["text"])
        r["text"] = text
        for stop in p.stop:
            # Like vLLM's detokenizer: look only where the new characters could complete a match.
            at = text.find(stop, max(0, len(text) - new_chars - len(stop) + 1)) if new_chars > 0 else -1
            if at != -1:
                r["text"] = text[:at + len(stop)] if p.include_stop_str_in_output else text[:at]
                r["finish"], r["stop_reason"] = "stop", stop
                return
        if len(r["gen"]) >= p.max_tokens or len(r["prompt_ids"]) + len(r["gen"]) >= self.max_model_len:
            r["finish"] = "length"

    def step(self) -> list[RequestOutput]:
        self.steps += 1
        if FakeEngine.crash_at_step is not None and self.steps >= FakeEngine.crash_at_step:
            raise RuntimeError("EngineCore encountered an issue. See stack trace (above) for the root cause.")
        running = [r for r in self.requests.values() if r["finish"] is None][:self.max_num_seqs]
        outputs = []
        for r in running:
            self._advance(r)
            final = r["finish"] is not None
            if final or r["params"].output_kind is not RequestOutputKind.FINAL_ONLY:
                outputs.append(RequestOutput(
                    request_id=r["external"], prompt=None, prompt_token_ids=r["prompt_ids"], prompt_logprobs=None,
                    outputs=[CompletionOutput(index=0, text=r["text"], token_ids=list(r["gen"]),
                                              finish_reason=r["finish"], stop_reason=r["stop_reason"])],
                    finished=final, num_cached_tokens=r["cached"],
                ))
        return outputs


class LLM:
    has_enqueue = True  # False: behave like a vLLM without LLM.enqueue (drive llm_engine.add_request)
    fail_on_load: BaseException | None = None  # raised from __init__, like a failing engine start
    instances: list[LLM] = []

    def __init__(self, model: str, **kwargs) -> None:
        unknown = set(kwargs) - ENGINE_ARGS
        if unknown:
            raise TypeError(f"EngineArgs.__init__() got an unexpected keyword argument '{sorted(unknown)[0]}'")
        dp = int(kwargs.get("data_parallel_size", 1))
        if dp > 1 and kwargs.get("distributed_executor_backend") != "external_launcher":
            raise ValueError(f"LLM(data_parallel_size={dp}) is not supported for single-process usage and may "
                             "hang. Please use the explicit multi-process data-parallel example.")
        if LLM.fail_on_load is not None:
            raise LLM.fail_on_load
        if not Path(model).is_dir():
            raise OSError(f"{model} is not a local folder and is not a valid model identifier listed on "
                          "'https://huggingface.co/models'")
        from transformers import AutoTokenizer

        self.model = model
        self.kwargs = kwargs
        self.tokenizer = AutoTokenizer.from_pretrained(model, revision=kwargs.get("revision"))
        self.llm_engine = FakeEngine(self, kwargs.get("max_num_seqs") or 4, kwargs.get("max_model_len") or 2048,
                                     kwargs.get("enable_prefix_caching", True))
        self.model_config = self.llm_engine.model_config
        self.request_counter = itertools.count()
        LLM.instances.append(self)

    def __getattribute__(self, name):
        if name == "enqueue" and not type(self).has_enqueue:
            raise AttributeError("'LLM' object has no attribute 'enqueue'")
        return super().__getattribute__(name)

    def get_tokenizer(self):
        return self.tokenizer

    def reset_prefix_cache(self, reset_running_requests: bool = False, reset_connector: bool = False) -> bool:
        self.llm_engine.seen_prompts.clear()
        return True

    def enqueue(self, prompts, sampling_params=None, lora_request=None, priority=None, use_tqdm=True,
                tokenization_kwargs=None, mm_processor_kwargs=None) -> list[str]:
        prompts = [prompts] if isinstance(prompts, (str, dict)) else list(prompts)
        if sampling_params is None:
            sampling_params = SamplingParams()
        params = [sampling_params] * len(prompts) if isinstance(sampling_params, SamplingParams) \
            else list(sampling_params)
        if len(params) != len(prompts):
            raise ValueError("The lengths of prompts and sampling_params must be the same.")
        ids = []
        for prompt, sp in zip(prompts, params):
            sp = copy.deepcopy(sp)
            sp.output_kind = RequestOutputKind.FINAL_ONLY  # LLM only reports finished requests
            ids.append(self.llm_engine.add_request(str(next(self.request_counter)), prompt, sp))
        return ids

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True, **kwargs) -> list[RequestOutput]:
        self.enqueue(prompts, sampling_params)
        outputs = []
        while self.llm_engine.has_unfinished_requests():
            outputs += [o for o in self.llm_engine.step() if o.finished]
        return sorted(outputs, key=lambda o: int(o.request_id))
