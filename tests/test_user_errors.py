"""Traps a new user met (issue 17, item 1): a --device the installed torch cannot use is one line naming the option
and the fix (no traceback, no run folder left); messages never speak of how this project's own test data was
obtained."""
from __future__ import annotations

import re

import pytest
from own_task_fixtures import jleval, make_task_dir

from jleval.errors import UsageError
from jleval.tasks import all_tasks


@pytest.mark.parametrize("device, says", [
    ("tpu", "--device tpu is not a device torch knows"),
    ("cuda", "--device cuda: this torch"),
    ("cuda:7", "--device cuda:7"),
])
def test_a_device_torch_cannot_use_is_named_before_loading(device, says):
    import torch

    from jleval.backends.hf import HFBackend

    if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.device_count() > 7:
        pytest.skip("this machine has the GPUs asked for")
    with pytest.raises(UsageError) as e:
        HFBackend("no/such-model-anywhere", device=device)  # refused before the model is looked up
    assert says in e.value.message and "--device" in e.value.hint


def test_cli_device_error_is_one_line_and_leaves_no_run_folder(tmp_path, tiny_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("torch here can use CUDA")
    tasks = make_task_dir(tmp_path / "mytasks")
    r = jleval("run", tiny_model, "--backend", "hf", "--device", "cuda", "--tasks", "tashizan", "--tasks-dir", tasks,
               "--data-dir", tmp_path / "data", "--out", tmp_path / "runs", cwd=tmp_path, check=2)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 2  # error + fix
    assert "use --device cpu" in r.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_task_notes_speak_of_the_users_files_only():
    """Notes are printed when a raw file is missing: they must not mention this project's own data mirror."""
    bad = re.compile(r"mirror \(|raw mirror|git blob|obtain there|too large to obtain", re.I)
    notes = [(t.name, s.note) for t in all_tasks().values() for s in t.sources if s.note]
    assert notes and not [(n, x) for n, x in notes if bad.search(x)]
