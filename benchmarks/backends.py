"""hf backend: batched generation (left-padded, length-sorted batches) vs one prompt at a time.

Runs both schedules over the same jaster-like prompts in one invocation, checks that they give the same greedy
texts, and prints the speed-up. Uses the tiny random-weight Llama (built in a temporary folder, ~1 s) unless
--model names another; on a GPU, pass --device cuda and a bigger --hidden-size to see the GPU figure.

    python benchmarks/backends.py                       # CPU, tiny model
    python benchmarks/backends.py --device cuda --hidden-size 1024 --layers 8 --prompts 256
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path


def workload(n: int, max_tokens: int):
    from jleval.tiny import CORPUS
    from jleval.types import GenParams, Request

    lines = [line for line in CORPUS.splitlines() if line.strip()]
    header = "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n\n"
    requests = []
    for i in range(n):
        # Prompts of varied length, as across jaster's tasks: a shared header, a few "shots", the input.
        shots = "\n\n".join(lines[(i * 7 + k) % len(lines)] for k in range(1 + i % 6))
        prompt = (f"{header}### 指示:\n{lines[i % len(lines)]}\n\n{shots}\n\n"
                  f"### 入力:\n{lines[(i * 3) % len(lines)]}\n\n### 応答:\n")
        requests.append(Request(task=f"task{i % 4}", sample_id=i, prompt=prompt,
                                gen=GenParams(max_tokens=max_tokens)))
    return requests


def timed(backend, requests):
    t0 = time.perf_counter()
    out = dict(backend.generate(requests))
    if str(backend.device).startswith("cuda"):
        import torch
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model folder or id (default: the tiny random model)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--hidden-size", type=int, default=64, help="tiny model width (ignored with --model)")
    ap.add_argument("--layers", type=int, default=2, help="tiny model depth (ignored with --model)")
    ap.add_argument("--threads", type=int, help="torch CPU threads (1 gives steadier figures on a busy machine)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    import torch
    import transformers

    if args.threads:
        torch.set_num_threads(args.threads)

    from jleval.backends.hf import HFBackend
    from jleval.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(build_tiny_model(Path(tmp) / "tiny", hidden_size=args.hidden_size,
                                                   num_layers=args.layers))
        backend = HFBackend(model, device=args.device, dtype=args.dtype)
        requests = workload(args.prompts, args.max_tokens)
        backend.generate(requests[:2]).__next__()  # warm-up (kernels, allocator)
        backend.batch_size = None  # auto
        t_batched, batched = timed(backend, requests)
        auto_size = backend.batch_size
        backend.batch_size = 1
        t_single, single = timed(backend, requests)
    tokens = sum(c.completion_tokens for c in batched.values())
    same = sum(batched[i].text == single[i].text for i in batched)
    result = {
        "model": args.model or f"tiny random Llama (hidden {args.hidden_size}, {args.layers} layers)",
        "device": str(backend.device), "dtype": str(backend.model.dtype), "prompts": len(requests),
        "max_tokens": args.max_tokens, "generated_tokens": tokens, "auto_batch_size": auto_size,
        "batched_s": round(t_batched, 3), "one_at_a_time_s": round(t_single, 3),
        "batched_tok_per_s": round(tokens / t_batched, 1), "one_at_a_time_tok_per_s": round(tokens / t_single, 1),
        "speedup": round(t_single / t_batched, 2), "identical_outputs": f"{same}/{len(batched)}",
        "cpu_threads": torch.get_num_threads(), "torch": torch.__version__, "transformers": transformers.__version__,
        "cpu": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    for k, v in result.items():
        print(f"{k:>24}: {v}")
    print(f"\nbatched vs one prompt at a time: {result['speedup']}x faster")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
