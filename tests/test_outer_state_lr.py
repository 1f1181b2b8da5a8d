"""``outer.state_lr_scale``: the synthetic states step at a multiple of the outer lr (0: they stay where the
init put them and only the actions are distilled); the default keeps the paper's single group; resume stays
bit-identical; a bad value names the key."""

from __future__ import annotations

import pytest
import torch
from test_distill import TinyTeacher, make_dataset, run_until_killed, tiny_config

from obd.distill.run import resume, start
from obd.errors import ObdError

torch.set_num_threads(1)


def moved(scale: float, schedule: str = "constant") -> tuple[float, float]:
    """How far the raw states and actions move in 4 outer steps at ``scale``."""
    d = tiny_config(**{"outer.state_lr_scale": scale, "outer.schedule": schedule}).create(
        make_dataset(), TinyTeacher(), progress=False)
    states, actions = d.states.detach().clone(), d.actions.detach().clone()
    for _ in range(4):
        d.step()
    return float((d.states.detach() - states).abs().max()), float((d.actions.detach() - actions).abs().max())


def test_fixed_states_stay_and_their_actions_are_distilled():
    states_moved, actions_moved = moved(0.0)
    assert states_moved == 0.0 and actions_moved > 0


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_a_smaller_scale_moves_the_states_less_and_the_actions_alike(schedule):
    full, slow = moved(1.0, schedule), moved(0.1, schedule)
    assert 0 < slow[0] < 0.5 * full[0]
    assert slow[1] == pytest.approx(full[1], rel=0.5)  # the actions keep the outer lr


def test_the_default_keeps_one_group_for_states_and_actions():
    d = tiny_config().create(make_dataset(), TinyTeacher(), progress=False)
    assert len(d.optimizer.param_groups) == 1 and len(d.optimizer.param_groups[0]["params"]) == 2


@pytest.mark.parametrize("scale", [0.0, 0.3])
def test_kill_and_resume_is_bit_identical(tmp_path, scale):
    data, teacher = make_dataset(), TinyTeacher()
    cfg = tiny_config(**{"outer.state_lr_scale": scale, "outer.ema": 0.9})
    full = start(cfg, tmp_path / "full", data, teacher, progress=False)
    run_until_killed(cfg, data, teacher, tmp_path / "killed", at=5)
    resumed = resume(tmp_path / "killed", dataset=data, teacher=teacher, progress=False)
    assert torch.equal(full.states, resumed.states) and torch.equal(full.actions, resumed.actions)


@pytest.mark.parametrize("value,message", [(-0.5, ">= 0"), ("nan", "finite"), ("inf", "finite")])
def test_a_bad_scale_names_the_key(value, message):
    with pytest.raises(ObdError, match=f"outer.state_lr_scale.*{message}"):
        tiny_config(**{"outer.state_lr_scale": value}).validate()
