"""Options that follow the published code where obd's defaults differ: the paper's student head, the outer
error on a sampled student action, Q weights clipped at 0, synthetic actions bounded to [-1, 1]. Each
changes what it should and nothing else; the new inner-loop and outer paths keep exact meta-gradients
(naive autograd and central finite differences), like the defaults in tests/test_distill.py."""

from __future__ import annotations

import pytest
import torch
from test_distill import ACT, HID, OBS, TinyTeacher, make_dataset, tiny_config
from torch.func import functional_call

from obd.distill import Distiller
from obd.distill.inner import bc_grad, init_params, inner_loop, layer_dims, params_from_module, student_action
from obd.distill.objectives import build_objective, outer_loss
from obd.distill.students import MLPStudent, bc_loss
from obd.errors import ObdError

torch.set_num_threads(1)
DT = torch.float64


# ---------------------------------------------------------------- student.head=paper
def test_paper_head_init_gain_and_learnable_log_std():
    student = MLPStudent(OBS, ACT, hidden=HID, depth=2, head="paper")
    out = student.layers[-1].weight  # (2 act, hidden): orthonormal rows scaled by the gain
    torch.testing.assert_close(out @ out.T, 2.0 * torch.eye(2 * ACT), atol=1e-5, rtol=0)
    assert student.log_std_affine.requires_grad and student.log_std_affine.tolist() == [1.0, -1.0]
    x = torch.randn(5, OBS)
    raw = student.layers[-1](torch.relu(student.layers[1](torch.relu(student.layers[0](x)))))[:, ACT:]
    torch.testing.assert_close(student(x)[1], (raw - 1.0).clamp(-20, 2))
    corl = MLPStudent(OBS, ACT, hidden=HID, depth=2)
    assert corl.log_std_affine is None
    torch.testing.assert_close(corl.layers[-1].weight @ corl.layers[-1].weight.T, 1e-4 * torch.eye(2 * ACT),
                               atol=1e-8, rtol=0)
    det = MLPStudent(OBS, ACT, hidden=HID, depth=2, stochastic=False, head="paper")
    assert det.log_std_affine is None


def test_paper_head_init_params_equal_the_module():
    student = MLPStudent(OBS, ACT, hidden=HID, depth=3, head="paper")
    student.reset_parameters(torch.Generator().manual_seed(3))
    params = init_params(layer_dims(OBS, ACT, HID, 3, True), 1, torch.Generator().manual_seed(3), head="paper")
    assert len(params) == 9
    for a, b in zip(params, params_from_module(student)):
        assert torch.equal(a, b)


def test_paper_head_hand_gradient_matches_autograd():
    torch.manual_seed(0)
    student = MLPStudent(OBS, ACT, hidden=HID, depth=3, head="paper").double()
    with torch.no_grad():
        for layer in student.layers:
            layer.weight.normal_()
            layer.bias.normal_()
        student.log_std_affine.copy_(torch.tensor([0.7, -0.4]))
    x = torch.randn(5, OBS, dtype=DT)
    target = torch.rand(5, ACT, dtype=DT) * 2 - 1
    eps = torch.randn(5, ACT, dtype=DT)
    bc_loss(*student(x), target, eps).backward()
    grads, _ = bc_grad(params_from_module(student), x.unsqueeze(0), target, eps.unsqueeze(0), ACT)
    for i, layer in enumerate(student.layers):
        torch.testing.assert_close(grads[2 * i][0] * 2 / (5 * ACT), layer.weight.grad.T)
        torch.testing.assert_close(grads[2 * i + 1][0, 0] * 2 / (5 * ACT), layer.bias.grad)
    torch.testing.assert_close(grads[-1][0, 0] * 2 / (5 * ACT), student.log_std_affine.grad)


def test_sampled_student_action_is_the_modules_sample():
    student = MLPStudent(OBS, ACT, hidden=HID, depth=2, head="paper")
    x, eps = torch.randn(6, OBS), torch.randn(1, 6, ACT)
    mean, log_std = student(x)
    got = student_action(params_from_module(student), x, ACT, eps)
    torch.testing.assert_close(got[0], torch.tanh(mean + log_std.exp() * eps[0]))
    torch.testing.assert_close(student_action(params_from_module(student), x, ACT)[0], student.act(x))


def _naive(states, actions, params0, noise, real, targets, weights, lr, head, outer_noise):
    """Reference meta-loss: nn.Module student, autograd.grad(create_graph=True) per inner step."""
    student = MLPStudent(OBS, ACT, hidden=HID, depth=2, head=head).double()
    names = [n for n, _ in student.named_parameters()]  # log_std_affine (own parameter) first, then layers
    params = []
    for i in range(len(params0) // 2):
        params += [params0[2 * i][0].T.clone().requires_grad_(True),
                   params0[2 * i + 1][0, 0].clone().requires_grad_(True)]
    if len(params0) % 2:
        params.insert(0, params0[-1][0, 0].clone().requires_grad_(True))
    for t in range(len(noise)):
        loss = bc_loss(*functional_call(student, dict(zip(names, params)), (states,)), actions, noise[t][0])
        grads = torch.autograd.grad(loss, params, create_graph=True)
        params = [p - lr * g for p, g in zip(params, grads)]
    mean, log_std = functional_call(student, dict(zip(names, params)), (real,))
    action = torch.tanh(mean) if outer_noise is None else torch.tanh(mean + log_std.exp() * outer_noise[0])
    return (((action - targets) ** 2).mean(-1) * weights).mean()


@pytest.mark.parametrize("head,sample", [("paper", False), ("corl", True), ("paper", True)])
def test_meta_gradient_of_new_paths_matches_naive_autograd_and_finite_differences(head, sample):
    g = torch.Generator().manual_seed(0)
    params0 = [p + 0.3 * torch.randn(p.shape, generator=g, dtype=DT)
               for p in init_params(layer_dims(OBS, ACT, HID, 2, True), 1, g, dtype=DT, head=head)]
    states = torch.randn(4, OBS, generator=g, dtype=DT, requires_grad=True)
    actions = (torch.rand(4, ACT, generator=g, dtype=DT) * 1.6 - 0.8).requires_grad_(True)
    noise = torch.randn(3, 1, 4, ACT, generator=g, dtype=DT)
    real = torch.randn(10, OBS, generator=g, dtype=DT)
    targets = torch.rand(10, ACT, generator=g, dtype=DT) * 2 - 1
    weights = torch.rand(10, generator=g, dtype=DT) + 0.5
    outer_noise = torch.randn(1, 10, ACT, generator=g, dtype=DT) if sample else None

    def ours(s, a):
        trained = inner_loop(params0, s, a, 3, noise, 0.3)
        return outer_loss(student_action(trained, real, ACT, outer_noise), targets, weights)

    grads = torch.autograd.grad(ours(states, actions), (states, actions))
    naive = torch.autograd.grad(_naive(states, actions, params0, noise, real, targets, weights, 0.3, head,
                                       outer_noise), (states, actions))
    for ours_g, naive_g in zip(grads, naive):
        torch.testing.assert_close(ours_g, naive_g)
        assert ours_g.abs().max() > 1e-6
    h = 1e-6
    with torch.no_grad():
        for which, grad in enumerate(grads):
            for i in range(0, grad.numel(), 3):
                plus = [states.detach().clone(), actions.detach().clone()]
                minus = [t.clone() for t in plus]
                plus[which].view(-1)[i] += h
                minus[which].view(-1)[i] -= h
                fd = float(ours(*plus) - ours(*minus)) / (2 * h)
                assert abs(fd - float(grad.reshape(-1)[i])) < 1e-7 + 1e-5 * abs(fd)


# ---------------------------------------------------------------- the engine's options
def _after(steps: int, **kw) -> Distiller:
    d = tiny_config(**kw).create(make_dataset(), TinyTeacher(), progress=False)
    for _ in range(steps):
        d.step()
    return d


def test_each_option_changes_the_trajectory_and_only_when_set():
    base = _after(2)
    torch.testing.assert_close(_after(2, q_clip="false").states, base.states)
    for option in ("student.head=paper", "outer.action=sample"):
        key, value = option.split("=")
        assert not torch.equal(_after(2, **{key: value}).states, base.states), option


def test_sampled_outer_action_needs_a_stochastic_student():
    with pytest.raises(ObdError, match="outer.action"):
        tiny_config(**{"outer.action": "sample", "student.kind": "deterministic"}).validate()
    with pytest.raises(ObdError, match="student.head"):
        tiny_config(**{"student.head": "cal"}).validate()


def test_q_clip_zeroes_negative_weights():
    data = make_dataset()
    teacher = TinyTeacher()
    teacher.q = lambda s, a: torch.linspace(-3, 3, len(s))
    idx = torch.arange(len(data))
    raw = build_objective("avpbc", data.observations, data.actions, teacher, torch.device("cpu"), beta=0.5,
                          progress=False)
    clipped = build_objective("avpbc", data.observations, data.actions, teacher, torch.device("cpu"), beta=0.5,
                              progress=False, clip_q=True)
    w_raw, w_clip = raw.targets(idx, None)[1], clipped.targets(idx, None)[1]
    assert w_raw.min() < 0 and w_clip.min() == 0
    torch.testing.assert_close(w_clip, w_raw.clamp_min(0))


def test_clamped_synthetic_actions_stay_in_the_action_range():
    kw = {"outer.optimizer": "adam", "outer.lr": 1.0, "objective": "dbc"}
    free = _after(4, **kw).synthetic().actions
    clamped = _after(4, synthetic_actions="clamp", **kw).synthetic().actions
    assert free.abs().max() > 1.0
    assert clamped.abs().max() <= 1.0
    # inside the range the bound changes nothing: the default outer lr keeps these actions in [-1, 1]
    torch.testing.assert_close(_after(2, synthetic_actions="clamp").actions, _after(2).actions)


def test_evaluation_students_follow_the_distillation_head():
    from obd.distill.student_config import StudentConfig
    from obd.evaluate.architectures import arch_from_name, make_eval_student
    from obd.evaluate.student_spec import distilled_student

    syn = _after(1, **{"student.head": "paper"}).synthetic()
    spec = distilled_student(syn.metadata)
    assert spec.arch.head == "paper" and spec.arch.name == f"mlp2x{HID}-paper-head"
    assert arch_from_name(spec.arch.name) == spec.arch
    assert make_eval_student(spec.arch, OBS, ACT).log_std_affine is not None
    assert make_eval_student(StudentConfig(), OBS, ACT).log_std_affine is None
    with pytest.raises(ObdError, match="corl head only"):
        StudentConfig(family="residual", head="paper")
