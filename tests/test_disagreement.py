"""The students' disagreement in H (``outer.disagreement``): the decomposition it rests on, its effect on the
objective and the set, and config errors (resume bit-identical: tests/test_coverage.py). Tiny dims, seconds."""

from __future__ import annotations

import pytest
import torch
from test_distill import TinyTeacher, make_dataset, tiny_config

from obd.distill.objectives import outer_loss
from obd.distill.run import start
from obd.errors import ObdError

torch.set_num_threads(1)


def test_lambda_weighs_the_between_student_variance_on_top_of_the_error_of_the_mean():
    g = torch.Generator().manual_seed(0)
    actions, targets = torch.randn(3, 5, 2, generator=g), torch.randn(5, 2, generator=g)
    weights, metric = torch.rand(5, generator=g), torch.rand(5, 2, generator=g)
    mean = actions.mean(0)
    bias = (((mean - targets) ** 2 * metric).mean(-1) * weights).mean()
    variance = (((actions - mean) ** 2 * metric).mean(-1) * weights).mean()
    # lambda = 0 is the plain objective, which already counts the variance once
    torch.testing.assert_close(outer_loss(actions, targets, weights, metric), bias + variance)
    torch.testing.assert_close(outer_loss(actions, targets, weights, metric, 4.0), bias + 5.0 * variance)
    # students that agree pay nothing for it; a single student has nobody to disagree with
    same = mean.expand(3, 5, 2)
    torch.testing.assert_close(outer_loss(same, targets, weights, metric, 4.0),
                               outer_loss(same, targets, weights, metric))
    one = actions[:1]
    assert torch.equal(outer_loss(one, targets, weights, metric, 4.0), outer_loss(one, targets, weights, metric))


def test_disagreement_changes_the_set(tmp_path):
    # resume with it: tests/test_coverage.py, test_resume_with_coverage_or_random_unroll_is_bit_identical
    data, teacher = make_dataset(), TinyTeacher()
    overrides = {"inner.students": 2, "outer.disagreement": 4.0, "outer.schedule": "constant"}
    full = start(tiny_config(**overrides), tmp_path / "full", data, teacher, progress=False)
    off = start(tiny_config(**{"inner.students": 2, "outer.schedule": "constant"}), tmp_path / "off", data, teacher,
                progress=False)
    assert not torch.equal(off.states, full.states)
    assert full.metadata["config"]["outer"]["disagreement"] == 4.0


@pytest.mark.parametrize("override,message", [
    ({"outer.disagreement": -1.0}, "outer.disagreement.*>= 0"),
    ({"outer.disagreement": "nan"}, "outer.disagreement"),
    ({"outer.disagreement": 2.0}, "outer.disagreement.*inner.students >= 2"),
])
def test_config_errors_name_the_key(override, message):
    with pytest.raises(ObdError, match=message):
        tiny_config(**override).validate()
