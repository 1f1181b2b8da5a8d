"""The distiller on a GPU: the meta-gradient the CPU computes (the exact resume on the device is
``tests/test_coverage.py``'s resume test, parametrized by device).

The device tests are skipped without CUDA (CI has none); ``scripts/device_check.sh`` runs this file on a
lent GPU, and the last test checks that script where there is none.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import torch
from test_distill import ACT, HID, OBS

from obd.distill.inner import init_params, inner_loop, layer_dims, student_action

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
ROOT = Path(__file__).resolve().parents[1]


def _meta_gradient(device: str, momentum: float):
    """d/d(states, actions) of the outer loss after 5 inner steps, float64 on ``device``."""
    g = torch.Generator().manual_seed(0)
    dt = torch.float64
    params = [p.to(device) for p in init_params(layer_dims(OBS, ACT, HID, 3, True), 2, g, dtype=dt)]
    states = torch.randn(8, OBS, generator=g, dtype=dt).to(device).requires_grad_(True)
    actions = (torch.rand(8, ACT, generator=g, dtype=dt) * 1.6 - 0.8).to(device).requires_grad_(True)
    noise = torch.randn(5, 2, 8, ACT, generator=g, dtype=dt).to(device)
    real, target = torch.randn(32, OBS, generator=g, dtype=dt).to(device), torch.zeros(32, ACT, dtype=dt, device=device)
    trained = inner_loop(params, states, actions, 5, noise, lr=0.1, momentum=momentum)
    loss = ((student_action(trained, real, ACT) - target) ** 2).mean()
    return [t.cpu() for t in torch.autograd.grad(loss, (states, actions))]


@needs_cuda
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_meta_gradient_on_cuda_matches_the_cpu(momentum):
    for a, b in zip(_meta_gradient("cpu", momentum), _meta_gradient("cuda", momentum)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_device_check_script_parses_and_runs_files_that_exist():
    script = ROOT / "scripts" / "device_check.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    named = set(re.findall(r"(?:scripts|tests)/[\w/]+\.py", script.read_text()))
    assert {"tests/test_cuda.py", "scripts/bench_distill.py"} <= named
    assert all((ROOT / path).is_file() for path in named)
