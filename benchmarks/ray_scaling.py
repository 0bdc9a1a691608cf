"""How `jleval run --ray` scales: a simulated engine with 1/2/4/8 replicas against the ideal line, and the tiny
model's rows/s with and without Ray, in one invocation (a local Ray cluster that this script starts and stops).

    python benchmarks/ray_scaling.py [--rows 512 --batch 8 --batch-seconds 0.5 --tiny-samples 60]

The simulated engine is jleval's own Ray backend (`RayBackend`: Ray Data, an actor pool, streamed batches, the
driver's de-duplication) with an engine that sleeps `--batch-seconds` per batch instead of decoding, so it needs
no CPU: the speed-up is what the Ray layer allows when the engine (a GPU) is the bottleneck. Throughput is
counted from the first batch back to the last (steady state); the start-up (cluster, actors) is reported apart.
The machine's load average is printed, since other work on the machine slows Ray's own processes.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jleval.backends.ray import RayBackend, _Engine
from jleval.types import Completion, GenParams, Request


class SleepEngine(_Engine):
    """A replica that holds no model: each batch takes `config['sleep']` seconds of wall time and no CPU."""

    def __init__(self) -> None:  # pylint: disable=super-init-not-called
        self.where = f"pid {os.getpid()}"

    def __call__(self, batch):
        import numpy as np

        from jleval.backends.ray import completion_to_json

        time.sleep(self.config["options"]["sleep"])
        out = [completion_to_json(Completion(text="x", finish_reason="stop")) for _ in batch["i"]]
        return {"i": batch["i"], "out": np.array(out, dtype=object),
                "replica": np.array([self.where] * len(out), dtype=object)}


def simulated(replicas: int, rows: int, batch: int, sleep: float) -> dict:
    backend = RayBackend("hf", "simulated", address="local", replicas=replicas, batch_size=batch, engine=SleepEngine)
    backend.options = {"sleep": sleep}  # read by SleepEngine (hf's options are not checked for a simulated engine)
    reqs = [Request(task="t", sample_id=i, prompt=f"p{i}", gen=GenParams(max_tokens=1)) for i in range(rows)]
    t0 = time.perf_counter()
    first = None
    n = 0
    for _ in backend.generate(reqs):
        n += 1
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    assert n == rows, (n, rows)
    per_batch_rows = min(batch, -(-rows // (4 * replicas)))
    steady = (rows - per_batch_rows) / (end - first)
    return {"replicas": replicas, "rows": rows, "wall_s": end - t0, "to_first_s": first - t0, "steady_rows_s": steady,
            "ideal_rows_s": replicas * per_batch_rows / sleep, "per_replica": backend.rows_per_replica}


def tiny(samples: int, raw_dir: Path, work: Path) -> dict:
    from jleval.run import RunOptions, run
    from jleval.tiny import build_tiny_model

    model = build_tiny_model(work / "tiny")
    base = dict(model=str(model), backend="hf", tasks="jemhopqa", max_num_samples=samples, raw_dir=raw_dir,
                data_dir=work / "jaster", out=work / "runs")
    run(RunOptions(**{**base, "max_num_samples": 1}, run_name="warm"))  # preprocessing and the first load, not timed
    out = {}
    for label, extra in (("in-process", {}), ("ray 1 replica", {"ray": "local", "replicas": "1"}),
                         ("ray 2 replicas", {"ray": "local", "replicas": "2"})):
        t0 = time.perf_counter()
        res = run(RunOptions(**base, run_name=label.replace(" ", "-"), backend_options=extra))
        wall = time.perf_counter() - t0
        out[label] = {"wall_s": wall, "rows_s": samples / wall, "generated": res.counts["jemhopqa"]["generated"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--batch-seconds", type=float, default=0.5)
    ap.add_argument("--tiny-samples", type=int, default=60)
    ap.add_argument("--raw-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "raw")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.1f}", flush=True)
    import ray

    work = Path(tempfile.mkdtemp(prefix="jl-bench-"))
    t0 = time.perf_counter()
    first = RayBackend("hf", "simulated", address="local", replicas=8, run_dir=work / "r")  # starts the cluster
    print(f"Ray start-up (ray.init of a local cluster): {time.perf_counter() - t0:.1f} s", flush=True)
    base = None
    print(f"simulated engine: {args.rows} rows, batches of {args.batch}, {args.batch_seconds} s per batch")
    print("replicas  steady rows/s  ideal rows/s  speed-up  ideal  to first row (actor start-up)  wall")
    for r in (1, 2, 4, 8):
        m = simulated(r, args.rows, args.batch, args.batch_seconds)
        base = base or m["steady_rows_s"]
        print(f"{r:8d}  {m['steady_rows_s']:13.1f}  {m['ideal_rows_s']:12.1f}  {m['steady_rows_s'] / base:7.2f}x  "
              f"{r:4d}x  {m['to_first_s']:29.1f}s  {m['wall_s']:4.1f}s", flush=True)
    first.close()
    assert not ray.is_initialized()
    if args.raw_dir.is_dir():
        print(f"tiny model, jemhopqa, {args.tiny_samples} samples, hf on CPU (load average now "
              f"{os.getloadavg()[0]:.1f}):")
        for label, m in tiny(args.tiny_samples, args.raw_dir, work).items():
            print(f"  {label:15s} {m['rows_s']:6.2f} rows/s  ({m['wall_s']:.1f} s wall, start-up included; "
                  f"{m['generated']} generated)", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
