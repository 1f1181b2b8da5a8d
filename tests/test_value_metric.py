"""The value-aware action error (obd.distill.value_metric): the critic's curvature along each action dimension
recovered from a known quadratic critic, the metric's normalization, the loss it weights, the teacher queried
once per outer step in one batch, resume bit-identical, and config errors. Tiny dims, seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_coverage import CountingTeacher
from test_distill import TinyTeacher, make_dataset, tiny_config

from obd.distill.objectives import outer_loss
from obd.distill.run import resume, start
from obd.distill.value_metric import q_curvature, value_metric
from obd.errors import ObdError

torch.set_num_threads(1)


class QuadraticTeacher(TinyTeacher):
    """Q(s, a) = 5 - sum_j c_j (a_j - b_j)^2 + s_0 a_0: its drop per squared step along dim j is c_j."""

    def __init__(self, curvature, optimum=(0.2, 0.2), **kw):
        super().__init__(stochastic=False, **kw)
        self.c = torch.as_tensor(curvature, dtype=torch.float32)
        self.b = torch.as_tensor(optimum, dtype=torch.float32)

    def act(self, s):
        return torch.zeros(len(s), self.act_dim)

    def q(self, s, a):
        s, a = torch.as_tensor(np.asarray(s, np.float32)), torch.as_tensor(np.asarray(a, np.float32))
        return 5 - ((a - self.b) ** 2 * self.c).sum(-1) + s[:, 0] * a[:, 0]


def test_curvature_of_a_quadratic_critic_is_exact_inside_and_at_the_edge_of_the_action_box():
    teacher = QuadraticTeacher([3.0, 0.5])
    states = torch.randn(5, teacher.obs_dim)
    inside = torch.full((5, 2), 0.2)
    # central differences cancel the linear term s_0 a_0 exactly
    assert torch.allclose(q_curvature(teacher, states, inside, 0.3), torch.tensor([[3.0, 0.5]]).expand(5, 2),
                          rtol=1e-4)
    # at a = 1 the upward probe cannot move; where the critic peaks there, the downward probe alone gives c_j
    edge = torch.tensor([[0.2, 1.0]]).expand(5, 2)
    m = q_curvature(QuadraticTeacher([3.0, 0.5], optimum=(0.2, 1.0)), states, edge, 0.3)
    assert torch.allclose(m[:, 1], torch.full((5,), 0.5), rtol=1e-4)
    # where the critic falls towards the edge, moving back gains: no weight
    assert torch.all(q_curvature(QuadraticTeacher([3.0, 0.5], optimum=(0.2, -2.0)), states, edge, 0.3)[:, 1] == 0)
    # a critic that rises along a dimension gives no curvature there, never a negative weight
    convex = QuadraticTeacher([-1.0, 2.0])
    assert torch.all(q_curvature(convex, states, inside, 0.3)[:, 0] == 0)


def test_metric_averages_one_keeps_the_floor_and_falls_back_to_plain_error():
    m = torch.tensor([[0.0, 4.0], [2.0, 2.0]])
    metric = value_metric(m, 0.1)
    assert torch.allclose(metric.mean(), torch.tensor(1.0))
    assert torch.allclose(metric[0, 0], torch.tensor(0.1))
    assert torch.equal(value_metric(torch.zeros(3, 2), 0.1), torch.ones(3, 2))
    # the loss weights each dimension's squared error by the metric
    actions, targets = torch.zeros(1, 2, 2), torch.ones(2, 2)
    assert torch.allclose(outer_loss(actions, targets, None, metric), metric.mean())


def test_teacher_is_queried_in_one_batch_per_outer_step():
    data, teacher = make_dataset(), CountingTeacher(stochastic=True)
    d = tiny_config(**{"value_metric.step": 0.3}).create(data, teacher, progress=False)
    teacher.reset()
    for _ in range(3):
        d.step()
    batch, act = 16, teacher.act_dim
    assert teacher.calls["act"] == [batch] * 3
    assert teacher.calls["q"] == [batch * (2 * act + 1)] * 3
    # with the metric off nothing is asked during the outer steps
    plain = tiny_config().create(data, teacher, progress=False)
    teacher.reset()
    plain.step()
    assert teacher.calls == {"act": [], "mean_std": [], "q": []}


def test_metric_changes_the_objective_and_resume_is_bit_identical(tmp_path):
    data, teacher = make_dataset(), TinyTeacher()
    overrides = {"value_metric.step": 0.3, "coverage.scale": 0.3, "outer.schedule": "constant"}
    full = start(tiny_config(**overrides), tmp_path / "full", data, teacher, progress=False)
    start(tiny_config(**overrides, outer_steps=4), tmp_path / "half", data, teacher, progress=False)
    resumed = resume(tmp_path / "half", ["outer_steps=6"], dataset=data, teacher=teacher, progress=False)
    assert torch.equal(full.states, resumed.states) and torch.equal(full.actions, resumed.actions)
    off = start(tiny_config(**{"coverage.scale": 0.3, "outer.schedule": "constant"}), tmp_path / "off", data,
                teacher, progress=False)
    assert not torch.equal(off.states, full.states)


@pytest.mark.parametrize("override,message", [
    ({"value_metric.step": -0.1}, "value_metric.step"),
    ({"value_metric.step": 1.5}, "value_metric.step"),
    ({"value_metric.floor": 2}, "value_metric.floor"),
    ({"value_metric.at": "source"}, "value_metric.at"),
    ({"value_metric.kind": "full"}, "value_metric.kind"),
    ({"value_metric.step": 0.3, "objective": "dbc"}, "value_metric.step.*objective=dbc"),
])
def test_config_errors_name_the_key(override, message):
    with pytest.raises(ObdError, match=message):
        tiny_config(**override).validate()


def test_a_teacher_without_critic_is_refused():
    data, teacher = make_dataset(), TinyTeacher()
    teacher.critic = None
    with pytest.raises(ObdError, match="value_metric.step.*no critic"):
        tiny_config(objective="pbc", **{"value_metric.step": 0.3}).create(data, teacher, progress=False)



@pytest.mark.parametrize("at", ["perturbed", "clean"])
def test_metric_of_perturbed_states_is_taken_where_at_says(at, monkeypatch):
    from test_coverage import _step_batch

    data, teacher = make_dataset(), TinyTeacher()
    d = tiny_config(**{"value_metric.step": 0.3, "value_metric.at": at, "coverage.scale": 0.5}).create(
        data, teacher, progress=False)
    _, clean, (perturbed, _, _) = _step_batch(d)
    seen = []
    original = type(d)._value_metric
    monkeypatch.setattr(type(d), "_value_metric", lambda self, states: seen.append(states) or original(self, states))
    d.step()
    assert len(seen) == 1 and torch.equal(seen[0], clean[0] if at == "clean" else perturbed)


def test_trace_metric_reweights_states_only():
    m = torch.tensor([[0.0, 4.0], [1.0, 3.0]])
    metric = value_metric(m, 0.0, "trace")
    assert torch.allclose(metric, torch.tensor([[1.0, 1.0], [1.0, 1.0]]))
    metric = value_metric(torch.tensor([[0.0, 2.0], [3.0, 3.0]]), 0.0, "trace")
    assert torch.allclose(metric, torch.tensor([[0.5, 0.5], [1.5, 1.5]]))
