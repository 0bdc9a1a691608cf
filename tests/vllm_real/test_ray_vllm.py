"""The vLLM backend inside Ray Data actors (`jleval run --backend vllm --ray local`): the same texts as the engine
in this process. Part of `make test-vllm` (Ray comes with the dev extra); on CPUs the replica takes no GPU."""
from __future__ import annotations

import json

from test_engine import generations

from jleval.run import RunOptions, run


def test_vllm_in_a_ray_replica_writes_the_texts_of_the_in_process_engine(engine, engine_options, tiny_model,
                                                                         data_dir, tmp_path):
    common = dict(model=str(tiny_model), backend="vllm", tasks="jamp,jemhopqa", max_num_samples=12,
                  data_dir=data_dir, out=tmp_path)
    here = generations(run(RunOptions(**common, run_name="here"), backend=engine).run_dir)
    res = run(RunOptions(**common, run_name="ray",
                         backend_options={**engine_options, "ray": "local", "replicas": "1"}))
    on_ray = generations(res.run_dir)
    assert len(here) == 24 and on_ray == here
    assert all(error is None for _, _, error in on_ray.values())
    described = json.loads((res.run_dir / "manifest.json").read_text(encoding="utf-8"))["backend"]
    assert described["engine"] == "ray" and described["replica_engine"]["engine"] == "vllm"
    assert described["gpus_per_replica"] == 0 and sum(described["rows_per_replica"].values()) == 24
