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
