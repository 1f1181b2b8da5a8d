"""scripts/coverage_reach.py: coverage's noise leaves sparse data less than dense data, relative to the data's
own gaps, and the action change is measured between a state and its perturbation."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from obd.errors import ObdError

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("coverage_reach", ROOT / "scripts" / "coverage_reach.py")
coverage_reach = importlib.util.module_from_spec(spec)
spec.loader.exec_module(coverage_reach)


def test_denser_data_make_the_same_noise_reach_farther_relative_to_their_gaps():
    rng = np.random.default_rng(0)
    dense = rng.standard_normal((4000, 3))
    sparse = dense[:200]
    a = coverage_reach.coverage_reach(dense, 0.3, 200, 4000)
    b = coverage_reach.coverage_reach(sparse, 0.3, 200, 4000)
    assert a["data_gap"] < b["data_gap"]
    assert a["ratio"] > b["ratio"] > 0
    assert coverage_reach.coverage_reach(dense, 0.6, 200, 4000)["perturbed_distance"] > a["perturbed_distance"]


def test_action_change_is_the_squared_change_of_the_policy_under_the_noise():
    states = np.random.default_rng(1).standard_normal((1000, 2))
    same = coverage_reach.coverage_reach(states, 0.3, 100, 1000, act=lambda z: np.zeros((len(z), 1)))
    assert same["action_change"] == 0.0
    linear = coverage_reach.coverage_reach(states, 0.3, 500, 1000, act=lambda z: z[:, :1])
    assert linear["action_change"] == pytest.approx(0.09, rel=0.25)


def test_more_states_than_the_data_is_a_one_line_error():
    with pytest.raises(ObdError, match="--states"):
        coverage_reach.coverage_reach(np.zeros((10, 2)), 0.3, 11, 10)
