"""scripts/value_metric_stats.py: the summary of the metric's weights on given curvatures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("value_metric_stats", ROOT / "scripts" / "value_metric_stats.py")
value_metric_stats = importlib.util.module_from_spec(spec)
spec.loader.exec_module(value_metric_stats)


def test_stats_find_the_heavy_dimension_and_the_states_it_weighs():
    curvature = torch.zeros(100, 2)
    curvature[:, 1] = torch.linspace(0, 2, 100)
    q = -torch.linspace(0, 2, 100)  # the states the metric weighs most have the lowest Q
    out = value_metric_stats.metric_stats(curvature, q, 0.0)
    assert out["dimension_weight"] == pytest.approx([0.0, 2.0], abs=1e-3)
    assert out["zero_curvature_share"] == pytest.approx(0.505, abs=1e-3)
    assert out["corr_state_weight_q"] == pytest.approx(-1.0, abs=1e-3)
    assert 0.7 < out["state_weight_ess"] < 0.8
    uniform = value_metric_stats.metric_stats(torch.ones(50, 3), torch.arange(50.0), 0.1)
    assert uniform["state_weight_ess"] == pytest.approx(1.0)
    assert uniform["dimension_weight"] == pytest.approx([1.0, 1.0, 1.0])
    assert uniform["corr_state_weight_q"] is None


def test_curvature_off_data_is_measured_at_the_moved_states():
    """A critic -|a - c(s)|^2 (s) with c = 0 has curvature s^2 along each dimension wherever the teacher acts
    at c; moving the states by noise raises the mean of s^2 by sigma^2 per normalized unit."""
    from obd.data.dataset import Normalizer

    class Quadratic:
        def act(self, states):
            return torch.zeros(len(states), 2)

        def q(self, states, actions):
            return -(states[:, :1] ** 2) * (actions ** 2).sum(1, keepdim=True)

    raw = torch.ones(4000, 1)
    normalizer = Normalizer(torch.zeros(1).numpy(), torch.ones(1).numpy())
    out = value_metric_stats.curvature_off_data(Quadratic(), raw, normalizer, [1.0], 0.3, 0)
    assert out["0"]["mean"] == pytest.approx(1.0, abs=1e-3) and out["0"]["median"] == pytest.approx(1.0, abs=1e-3)
    assert out["1"]["mean"] == pytest.approx(2.0, rel=0.05)


def test_bad_noise_is_one_line(capsys):
    assert value_metric_stats.main(["--dataset", "x", "--teacher", "y", "--noise", "0.3,-1"]) == 2
    err = capsys.readouterr().err
    assert "--noise: expected positive" in err and len(err.strip().splitlines()) == 1
