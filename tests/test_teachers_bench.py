"""scripts/bench_teacher.py: both sides of every algorithm run and are reported
(a few updates)."""

from __future__ import annotations

import math

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("bench_teacher")


@pytest.mark.parametrize("algo", ["td3bc", "iql", "calql"])
def test_bench_times_ours_against_the_corl_style_loop(bench, algo):
    row = bench.bench(algo, torch.device("cpu"), steps=2, block=1, warmup=1)
    assert row["algo"] == algo and row["updates"] == 2 and row["threads"] == 1
    for key in ("ours_per_sec", "corl_per_sec", "ours_per_cpu_sec", "corl_per_cpu_sec", "speedup"):
        assert math.isfinite(row[key]) and row[key] > 0, key


def test_corl_style_calql_reference_computes_the_same_losses_it_logs(bench):
    from obd.teachers import CalQLConfig
    from obd.teachers.training import OfflineData

    data = bench.bench_data()
    buf = bench.CorlBuffer(data, torch.device("cpu"), 0.99)
    ref = OfflineData(data, torch.device("cpu"), 1.0, 0.99)
    assert torch.equal(buf.fields[5].squeeze(1), ref.packed[:, -1])         # same MC returns on both sides
    assert torch.equal(buf.fields[4].squeeze(1), torch.as_tensor(data.terminals, dtype=torch.float32))
    log = bench.corl_calql(CalQLConfig(cql_n_actions=2), torch.device("cpu"), buf)()
    assert all(isinstance(v, float) and math.isfinite(v) for v in log.values())   # .item() on every loss
