"""Distillation engine: hand gradient, meta-gradient (finite differences, naive autograd), objectives,
inits, runs (kill/resume bit-identical), CLI and config errors. Tiny dims so the file runs in seconds."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from obd.config import load_config
from obd.data.dataset import TransitionDataset
from obd.distill import DistillConfig, Distiller, SyntheticDataset, load_synthetic
from obd.distill.config import load_run_config
from obd.distill.inner import bc_grad, init_params, inner_loop, layer_dims, params_from_module, student_action
from obd.distill.objectives import outer_loss
from obd.distill.run import resume, start
from obd.distill.students import MLPStudent, bc_loss
from obd.errors import ObdError
from obd.run_folder import latest_checkpoint

torch.set_num_threads(1)
OBS, ACT, HID = 3, 2, 8
ROOT = Path(__file__).resolve().parents[1]


def make_dataset(n: int = 64, seed: int = 0) -> TransitionDataset:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, OBS)).astype(np.float32) * 2 + 1
    act = np.tanh(rng.normal(size=(n, ACT))).astype(np.float32)
    starts = np.arange(0, n, 16)
    return TransitionDataset(obs, act, rng.normal(size=n), obs + 0.1, np.zeros(n, bool), starts, source="tiny")


class TinyTeacher:
    """Satisfies the Teacher contract: raw states in, torch tensors out, a tanh-Gaussian actor and Q1."""

    def __init__(self, stochastic: bool = True, q_const: float | None = None, obs_dim: int = OBS):
        g = torch.Generator().manual_seed(7)
        self.obs_dim, self.act_dim, self.stochastic = obs_dim, ACT, stochastic
        self.task, self.metadata, self.device = None, {}, torch.device("cpu")
        self.w = torch.randn(obs_dim, ACT, generator=g)
        self.wq = torch.randn(obs_dim + ACT, generator=g)
        self.q_const = q_const

    def to(self, device):
        return self

    def _mean(self, s):
        return torch.as_tensor(np.asarray(s, np.float32)) @ self.w * 0.3

    def act(self, s):
        return torch.tanh(self._mean(s))

    def mean_std(self, s):
        m = self._mean(s)
        return m, torch.full_like(m, 0.2)

    def sample(self, s, generator=None):
        m, sd = self.mean_std(s)
        return torch.tanh(m + sd * torch.randn(m.shape, generator=generator))

    def q(self, s, a):
        x = torch.cat([torch.as_tensor(np.asarray(s, np.float32)), torch.as_tensor(np.asarray(a, np.float32))], -1)
        return torch.full((len(x),), self.q_const) if self.q_const is not None else 10 + x @ self.wq


def tiny_config(**kw) -> DistillConfig:
    base = {"objective": "avpbc", "n_syn": 4, "student": {"hidden": HID, "depth": 2},
            "inner": {"steps": 3}, "outer": {"batch": 16}, "outer_steps": 6, "checkpoint_every": 2,
            "device": "cpu", "seed": 1}
    overrides = [f"{k}={v}" for k, v in kw.items()]
    return load_config(DistillConfig, None, overrides, base=base)


# ---------------------------------------------------------------- the inner loop's hand gradient
@pytest.mark.parametrize("stochastic", [True, False])
def test_hand_gradient_matches_autograd(stochastic):
    torch.manual_seed(0)
    student = MLPStudent(OBS, ACT, hidden=HID, depth=3, stochastic=stochastic).double()
    with torch.no_grad():
        for layer in student.layers:
            layer.weight.normal_()
            layer.bias.normal_()
    x = torch.randn(5, OBS, dtype=torch.float64)
    target = torch.rand(5, ACT, dtype=torch.float64) * 2 - 1
    eps = torch.randn(5, ACT, dtype=torch.float64)
    mean, log_std = student(x)
    bc_loss(mean, log_std, target, eps if stochastic else None).backward()
    grads, _ = bc_grad(params_from_module(student), x.unsqueeze(0), target,
                       eps.unsqueeze(0) if stochastic else None, ACT)
    for i, layer in enumerate(student.layers):
        torch.testing.assert_close(grads[2 * i][0] * 2 / (5 * ACT), layer.weight.grad.T)
        torch.testing.assert_close(grads[2 * i + 1][0, 0] * 2 / (5 * ACT), layer.bias.grad)


def test_init_params_equals_mlp_student_init():
    student = MLPStudent(OBS, ACT, hidden=HID, depth=3)
    student.reset_parameters(torch.Generator().manual_seed(3))
    params = init_params(layer_dims(OBS, ACT, HID, 3, True), 1, torch.Generator().manual_seed(3))
    for a, b in zip(params, params_from_module(student)):
        assert torch.equal(a, b)


def test_default_init_student_draws_from_the_seed_not_the_global_generator():
    student = MLPStudent(OBS, ACT, hidden=HID, depth=3, orthogonal_init=False)
    torch.manual_seed(0)
    student.reset_parameters(torch.Generator().manual_seed(3))
    first = [p.detach().clone() for p in student.parameters()]
    torch.manual_seed(1)  # the global generator's state must not matter
    student.reset_parameters(torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(first, student.parameters()))
    params = init_params(layer_dims(OBS, ACT, HID, 3, True), 1, torch.Generator().manual_seed(3), orthogonal=False)
    for a, b in zip(params, params_from_module(student)):
        assert torch.equal(a, b)
    bound = 1 / HID ** 0.5
    assert student.layers[1].weight.abs().max() <= bound and student.layers[1].bias.abs().max() <= bound
    assert student.layers[1].bias.abs().max() > bound / 2  # biases drawn, not zero as in CORL's scheme


# ---------------------------------------------------------------- the meta-gradient
def _naive_meta_loss(states, actions, params0, noise, real, targets, weights, lr, momentum):
    """Reference: nn.Module student, autograd.grad(create_graph=True) per inner step."""
    from torch.func import functional_call

    student = MLPStudent(OBS, ACT, hidden=HID, depth=2, stochastic=noise is not None).double()
    names = [n for n, _ in student.named_parameters()]
    params = []
    for i in range(len(params0) // 2):
        params += [params0[2 * i][0].T.clone().requires_grad_(True),
                   params0[2 * i + 1][0, 0].clone().requires_grad_(True)]
    buf = None
    for t in range(len(noise) if noise is not None else 3):
        mean, log_std = functional_call(student, dict(zip(names, params)), (states,))
        loss = bc_loss(mean, log_std, actions, noise[t][0] if noise is not None else None)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        if momentum:
            buf = grads if buf is None else [g + momentum * b for g, b in zip(grads, buf)]
            grads = buf
        params = [p - lr * g for p, g in zip(params, grads)]
    mean, _ = functional_call(student, dict(zip(names, params)), (real,))
    err = ((torch.tanh(mean) - targets) ** 2).mean(-1)
    return (err * weights).mean()


@pytest.mark.parametrize("stochastic,momentum", [(True, 0.0), (False, 0.5), (True, 0.9)])
def test_meta_gradient_matches_naive_autograd_and_finite_differences(stochastic, momentum):
    g = torch.Generator().manual_seed(0)
    dt = torch.float64
    dims = layer_dims(OBS, ACT, HID, 2, stochastic)
    params0 = [p.to(dt) + 0.3 * torch.randn(p.shape, generator=g, dtype=dt)
               for p in init_params(dims, 1, g, dtype=dt)]
    states = torch.randn(4, OBS, generator=g, dtype=dt, requires_grad=True)
    actions = (torch.rand(4, ACT, generator=g, dtype=dt) * 1.6 - 0.8).requires_grad_(True)
    noise = torch.randn(3, 1, 4, ACT, generator=g, dtype=dt) if stochastic else None
    real = torch.randn(10, OBS, generator=g, dtype=dt)
    targets = torch.rand(10, ACT, generator=g, dtype=dt) * 2 - 1
    weights = torch.rand(10, generator=g, dtype=dt) + 0.5
    lr = 0.3

    def ours(s, a):
        trained = inner_loop(params0, s, a, 3, noise, lr, momentum)
        return outer_loss(student_action(trained, real, ACT), targets, weights)

    gs, ga = torch.autograd.grad(ours(states, actions), (states, actions))
    ns, na = torch.autograd.grad(_naive_meta_loss(states, actions, params0, noise, real, targets, weights, lr,
                                                  momentum), (states, actions))
    torch.testing.assert_close(gs, ns)
    torch.testing.assert_close(ga, na)
    assert gs.abs().max() > 1e-6 and ga.abs().max() > 1e-6
    h = 1e-6
    with torch.no_grad():
        for which, grad in ((0, gs), (1, ga)):
            for i in range(grad.numel()):
                bumped = [states.detach().clone(), actions.detach().clone()]
                plus, minus = [t.clone() for t in bumped], [t.clone() for t in bumped]
                plus[which].view(-1)[i] += h
                minus[which].view(-1)[i] -= h
                fd = float(ours(*plus) - ours(*minus)) / (2 * h)
                assert abs(fd - float(grad.reshape(-1)[i])) < 1e-7 + 1e-5 * abs(fd)


@pytest.mark.parametrize("stochastic,momentum,students",
                         [(True, 0.0, 1), (False, 0.0, 2), (False, 0.9, 2), (True, 0.5, 3)])
def test_hand_vjp_equals_autograd_through_hand_gradient(stochastic, momentum, students):
    g = torch.Generator().manual_seed(1)
    dt = torch.float64
    params0 = [p + 0.3 * torch.randn(p.shape, generator=g, dtype=dt)
               for p in init_params(layer_dims(OBS, ACT, HID, 3, stochastic), students, g, dtype=dt)]
    states = torch.randn(5, OBS, generator=g, dtype=dt, requires_grad=True)
    actions = (torch.rand(5, ACT, generator=g, dtype=dt) * 1.6 - 0.8).requires_grad_(True)
    noise = torch.randn(4, students, 5, ACT, generator=g, dtype=dt) * 3 if stochastic else None
    real = torch.randn(7, OBS, generator=g, dtype=dt)
    out = []
    for hand in (True, False):
        trained = inner_loop(params0, states, actions, 4, noise, 0.5, momentum, hand_vjp=hand)
        loss = student_action(trained, real, ACT).pow(2).sum()
        out.append(torch.autograd.grad(loss, (states, actions)))
    torch.testing.assert_close(out[0], out[1])


def test_truncated_backprop_only_uses_last_steps():
    g = torch.Generator().manual_seed(0)
    params0 = init_params(layer_dims(OBS, ACT, HID, 2, False), 1, g)
    states = torch.randn(4, OBS, generator=g, requires_grad=True)
    actions = torch.rand(4, ACT, generator=g) - 0.5
    full = inner_loop(params0, states, actions, 4, None, 0.1)
    trunc = inner_loop(params0, states, actions, 4, None, 0.1, truncate=1)
    for a, b in zip(full, trunc):
        torch.testing.assert_close(a, b)
    real = torch.randn(8, OBS, generator=g)
    loss_full = student_action(full, real, ACT).sum()
    loss_trunc = student_action(trunc, real, ACT).sum()
    g_full, = torch.autograd.grad(loss_full, states)
    g_trunc, = torch.autograd.grad(loss_trunc, states)
    assert not torch.allclose(g_full, g_trunc)


# ---------------------------------------------------------------- objectives
def test_avpbc_with_equal_q_is_scaled_pbc():
    data = make_dataset()
    losses = {}
    for name, teacher in (("pbc", TinyTeacher()), ("avpbc", TinyTeacher(q_const=5.0))):
        d = Distiller(tiny_config(objective=name), data, teacher, progress=False)
        torch.manual_seed(0)
        losses[name] = d.meta_loss().item()
    assert losses["avpbc"] == pytest.approx(0.02 * 5.0 * losses["pbc"], rel=1e-5)


def test_objective_targets():
    data = make_dataset()
    idx = torch.arange(10)
    dbc = Distiller(tiny_config(objective="dbc"), data, None, progress=False).objective
    target, w = dbc.targets(idx, None)
    assert torch.equal(target, torch.as_tensor(data.actions[:10])) and w is None
    det = Distiller(tiny_config(objective="pbc"), data, TinyTeacher(stochastic=False), progress=False).objective
    assert torch.allclose(det.targets(idx, None)[0], TinyTeacher().act(data.observations[:10]))
    av = Distiller(tiny_config(objective="avpbc"), data, TinyTeacher(), progress=False).objective
    t1, w1 = av.targets(idx, torch.Generator().manual_seed(0))
    t2, _ = av.targets(idx, torch.Generator().manual_seed(1))
    assert not torch.equal(t1, t2) and t1.abs().max() < 1  # a* ~ pi*(.|s), fresh each draw
    teacher = TinyTeacher()
    q_det = teacher.q(data.observations[:10], teacher.act(data.observations[:10]))
    torch.testing.assert_close(w1, 0.02 * q_det)


def test_sdw_multiplies_weights():
    data = make_dataset()
    dw = np.linspace(0.5, 1.5, len(data)).astype(np.float32)
    obj = Distiller(tiny_config(objective="sdw"), data, TinyTeacher(), density_weights=dw,
                    progress=False).objective
    idx = torch.arange(5, 15)
    _, w = obj.targets(idx, torch.Generator())
    teacher = TinyTeacher()
    q = teacher.q(data.observations[5:15], teacher.act(data.observations[5:15]))
    torch.testing.assert_close(w, 0.02 * q * torch.as_tensor(dw[5:15]))
    assert obj.label == "sdw"
    # a caller's own per-state weights multiply any objective's error, and the label says so
    plain = Distiller(tiny_config(objective="pbc"), data, TinyTeacher(), density_weights=dw, progress=False)
    torch.testing.assert_close(plain.objective.targets(idx, torch.Generator())[1], torch.as_tensor(dw[5:15]))
    assert plain.objective.label == "pbc+weights" and plain.synthetic().metadata["method"] == "pbc+weights"
    assert "sdw" not in plain.synthetic().metadata and plain.synthetic().metadata["objective"] == "pbc"


def test_sdw_uses_density_module():
    data = make_dataset(n=200)
    d = Distiller(tiny_config(objective="sdw", **{"density.estimator": "knn", "density.k": 5,
                                                  "density.alpha": 0.5}), data, TinyTeacher(), progress=False)
    w = d.objective.density_weights
    assert w.shape == (200,) and abs(float(w.mean()) - 1) < 1e-4 and float(w.std()) > 0
    assert d.objective.q_values is not None  # SDW is Av-PBC underneath
    with pytest.raises(ObdError, match="objective 'sdw' needs a teacher"):
        Distiller(tiny_config(objective="sdw"), data, None, progress=False)


@pytest.mark.parametrize("progress", [True, False])
def test_precompute_bars_follow_progress(progress, capsys):
    # 200 states in chunks of 64: the teacher queries have several chunks, so only `progress` hides them
    Distiller(tiny_config(init="topq", teacher_chunk=64), make_dataset(n=200), TinyTeacher(), progress=progress)
    err = capsys.readouterr().err
    for bar in ("teacher mean/std", "teacher Q", "teacher Q of dataset pairs"):
        assert (bar in err) == progress, bar


# ---------------------------------------------------------------- inits
@pytest.mark.parametrize("init", ["random", "kmeans", "topq"])
def test_inits(init):
    data = make_dataset()
    d = Distiller(tiny_config(init=init, n_syn=6), data, TinyTeacher(), progress=False)
    states, actions = d.states.detach().numpy(), d.actions.detach().numpy()
    real = np.asarray(data.normalizer.normalize(data.observations))
    assert states.shape == (6, OBS) and actions.shape == (6, ACT)
    # every action is a real action; random/topq states are real states
    assert all(np.any(np.all(data.actions == a, axis=1)) for a in actions)
    if init != "kmeans":
        assert all(np.any(np.all(np.isclose(real, s), axis=1)) for s in states)
    if init == "topq":
        q = TinyTeacher().q(data.observations, data.actions).numpy()
        chosen = {tuple(np.round(s, 4)) for s in states}
        best = {tuple(np.round(s, 4)) for s in real[np.argsort(-q)[:6]]}
        assert chosen == best


# ---------------------------------------------------------------- runs
def test_fit_reduces_loss_and_saves_loadable_set(tmp_path):
    data = make_dataset()
    cfg = tiny_config(objective="pbc", outer_steps=30, **{"outer.batch": 64, "inner.steps": 5})
    d = cfg.create(data, TinyTeacher(), progress=False)
    losses = []
    syn = d.fit(callback=lambda _, m: losses.append(m["loss"]))
    assert len(losses) == 30 and np.mean(losses[-5:]) < np.mean(losses[:5])
    path = syn.save(tmp_path / "syn.hdf5")
    back = load_synthetic(path)
    assert isinstance(back, SyntheticDataset) and back.metadata["outer_step"] == 30
    assert back.metadata["method"] == "pbc" and back.metadata["config"]["n_syn"] == 4
    torch.testing.assert_close(back.states, syn.states, atol=1e-5, rtol=1e-5)
    from obd.data import load_d4rl

    raw = load_d4rl(str(path))
    np.testing.assert_allclose(raw.observations, syn.observations, rtol=1e-6)
    np.testing.assert_array_equal(raw.actions, syn.actions.numpy())


def run_until_killed(cfg: DistillConfig, data, teacher, run_dir: Path, at: int) -> None:
    """Run ``cfg`` in ``run_dir`` and kill it (as a Ctrl-C or a lost machine would) in the step callback once
    ``at`` outer steps are done, before the run finishes."""
    from obd.distill import run as run_mod

    class Killed(Exception):
        pass

    def kill(d, _m):
        if d.outer_step == at:
            raise Killed
    d = cfg.create(data, teacher, progress=False)
    original = d.fit
    d.fit = lambda total, callback: original(total, callback=lambda dd, m: (callback(dd, m), kill(dd, m)))
    with pytest.raises(Killed):
        run_mod.run(d, run_dir)


@pytest.mark.parametrize("optimizer,schedule,spikes", [("sgd", "constant", 0), ("adam", "constant", 0),
                                                        ("adam", "cosine", 0), ("adam", "constant", 1.01)])
def test_kill_and_resume_is_bit_identical(tmp_path, optimizer, schedule, spikes):
    data, teacher = make_dataset(), TinyTeacher()
    cfg = tiny_config(**{"outer.optimizer": optimizer, "inner.momentum": 0.5, "inner.students": 2,
                         "outer.schedule": schedule, "outer.skip_spikes": spikes})
    full = start(cfg, tmp_path / "full", data, teacher, progress=False)
    run_until_killed(cfg, data, teacher, tmp_path / "killed", at=5)
    assert latest_checkpoint(tmp_path / "killed")[0] == 4
    assert not (tmp_path / "killed" / "synthetic.hdf5").exists()
    resumed = resume(tmp_path / "killed", dataset=data, teacher=teacher, progress=False)
    assert torch.equal(full.states, resumed.states) and torch.equal(full.actions, resumed.actions)

    def lines(run):
        return [{k: v for k, v in json.loads(x).items() if k not in ("sec", "wall_time", "cpu_sec", "cpu_time")}
                for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
    assert lines("full") == lines("killed") and len(lines("full")) == 6
    if spikes:  # a factor this close to 1 skips some steps, and the resumed run skips the same ones
        skipped = [m["skipped"] for m in lines("full")]
        assert 0 < sum(skipped) < 6, skipped
    assert sorted(p.name for p in (tmp_path / "killed" / "checkpoints").iterdir()) == [
        f"step_{s:07d}.{ext}" for s in (2, 4, 6) for ext in ("hdf5", "state.pt")]


def test_skip_spikes_leaves_the_set_and_optimizer_untouched(tmp_path):
    cfg = tiny_config(**{"outer.skip_spikes": 10, "outer_steps": 8})
    d = cfg.create(make_dataset(), TinyTeacher(), progress=False)
    norms = [d.step()["grad_norm"] for _ in range(3)]
    expected = norms[0]
    for n in norms[1:]:
        expected = 0.95 * expected + 0.05 * n
    assert d.grad_norm_mean == pytest.approx(expected) and d.skipped_steps == 0
    before = (d.states.detach().clone(), d.actions.detach().clone(),
              {k: v.clone() for k, v in d.optimizer.state[d.states].items()})
    honest = d.meta_loss
    for scale in (1e6, float("nan")):  # an exploding and a non-finite meta-gradient
        d.meta_loss = lambda scale=scale: honest() * scale
        m = d.step()
        assert m["skipped"] == 1 and d.outer_step == 4 + (scale != 1e6)
        assert torch.equal(d.states, before[0]) and torch.equal(d.actions, before[1])
        assert all(torch.equal(d.optimizer.state[d.states][k], v) for k, v in before[2].items())
    assert d.skipped_steps == 2 and d.grad_norm_mean == pytest.approx(expected)
    d.meta_loss = honest
    assert d.step()["skipped"] == 0 and not torch.equal(d.states, before[0])
    # in a run, a skipped non-finite step does not stop it (an applied one does: test_cli_runs_and_resumes...)
    run_dir = tmp_path / "run"
    d = cfg.create(make_dataset(), TinyTeacher(), progress=False)
    honest = d.meta_loss
    d.meta_loss = lambda: honest() * (float("nan") if d.outer_step == 3 else 1.0)
    from obd.distill import run as run_mod

    run_mod.run(d, run_dir)
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["skipped"] for m in lines] == [0, 0, 0, 1, 0, 0, 0, 0]


def test_cosine_schedule_sets_the_outer_lr_every_step():
    cfg = tiny_config(**{"outer.optimizer": "adam", "outer.lr": 0.04, "outer.schedule": "cosine",
                         "outer.lr_min": 0.01, "outer_steps": 4})
    cfg.validate()
    assert cfg.outer.decay_steps == 0  # validating changes nothing
    cfg = cfg.resolved()
    assert cfg.outer.decay_steps == 4  # fixed when the run starts and saved with it, so extending outer_steps keeps it
    assert [cfg.outer.lr_at(k) for k in (0, 2, 4, 9)] == pytest.approx([0.04, 0.025, 0.01, 0.01])
    d = cfg.create(make_dataset(), TinyTeacher(), progress=False)
    seen = []
    for _ in range(4):
        d.step()
        seen.append(d.optimizer.param_groups[0]["lr"])
    assert seen == pytest.approx([cfg.outer.lr_at(k) for k in range(4)])
    assert tiny_config(**{"outer.lr": 0.04}).outer.lr_at(3) == 0.04


def test_resume_refuses_changed_inputs(tmp_path):
    data, teacher = make_dataset(), TinyTeacher()
    cfg = tiny_config(outer_steps=2)
    start(cfg, tmp_path / "run", data, teacher, progress=False)
    state = torch.load(latest_checkpoint(tmp_path / "run")[1], weights_only=True)
    assert set(state["inputs"]) == {"dataset"}  # TinyTeacher has no torch modules to fingerprint
    with pytest.raises(ObdError, match="the dataset differs from the one this run started with"):
        resume(tmp_path / "run", ["outer_steps=4"], dataset=make_dataset(seed=1), teacher=teacher, progress=False)
    resume(tmp_path / "run", ["outer_steps=4"], dataset=data, teacher=teacher, progress=False)
    assert latest_checkpoint(tmp_path / "run")[0] == 4


def test_inputs_fingerprint_tracks_teacher_weights():
    from obd.data.dataset import Normalizer
    from obd.distill.engine import inputs_fingerprint
    from obd.nn import Actor, EnsembleQ
    from obd.teachers import Teacher

    torch.manual_seed(0)
    teacher = Teacher(Actor(OBS, ACT, (8, 8), "tanh_gaussian"), EnsembleQ(OBS, ACT, (8, 8), 2),
                      Normalizer(np.zeros(OBS, np.float32), np.ones(OBS, np.float32)))
    before = inputs_fingerprint(make_dataset(), teacher)
    assert before == inputs_fingerprint(make_dataset(), teacher)
    with torch.no_grad():
        next(teacher.critic.parameters()).add_(1e-3)
    after = inputs_fingerprint(make_dataset(), teacher)
    assert after["dataset"] == before["dataset"] and after["teacher"] != before["teacher"]


# ---------------------------------------------------------------- config errors and CLI
@pytest.mark.parametrize("override,message", [
    ("objective=foo", "objective"), ("n_syn=0", "n_syn"), ("init=bar", "init"), ("inner.lr=-1", "inner.lr"),
    ("inner.truncate=9", "inner.truncate"), ("outer.optimizer=rmsprop", "outer.optimizer"),
    ("eval_every=5", "eval_every"), ("outer.schedule=step", "outer.schedule"), ("outer.lr_min=1", "outer.lr_min"),
    ("outer.decay_steps=-1", "outer.decay_steps"), ("density.alpha=0.5", "density"),
    ("student.kind=gauss", "student.kind"), ("outer.skip_spikes=0.5", "outer.skip_spikes"),
])
def test_bad_configs_fail_fast(override, message):
    with pytest.raises(ObdError, match=message.replace(".", r"\.")):
        tiny_config(**dict([override.split("=")])).validate()


def test_bad_inputs_fail_before_work():
    data = make_dataset()
    with pytest.raises(ObdError, match="teacher"):
        Distiller(tiny_config(objective="pbc"), data, None)
    with pytest.raises(ObdError, match="dims"):
        Distiller(tiny_config(objective="pbc"), data, TinyTeacher(obs_dim=5))
    with pytest.raises(ObdError, match="n_syn"):
        Distiller(tiny_config(n_syn=100), data, TinyTeacher())
    with pytest.raises(ObdError, match="density.bogus"):
        tiny_config(objective="sdw", **{"density.bogus": 1}).validate()


def _cli(*args):
    from obd.distill.__main__ import main

    return main(list(args))


def test_cli_runs_and_resumes_and_reports_errors(tmp_path, capsys):
    from obd.data import write_d4rl

    data = make_dataset()
    path = tmp_path / "tiny.hdf5"
    write_d4rl(path, observations=data.observations, actions=data.actions, rewards=data.rewards,
               terminals=data.terminals, timeouts=np.zeros(len(data), bool),
               next_observations=data.next_observations)
    args = ["--config", "fast_avpbc", f"dataset={path}", "objective=dbc",
            "n_syn=4", "student.hidden=8", "student.depth=2", "inner.steps=2", "outer.batch=8", "outer_steps=4",
            "checkpoint_every=2", "device=cpu", "--no-progress"]
    threads = torch.get_num_threads()
    assert _cli(*args, "--out", str(tmp_path / "run"), "--threads", "2") == 0
    assert torch.get_num_threads() == 2
    torch.set_num_threads(threads)
    final = load_synthetic(tmp_path / "run" / "synthetic.hdf5")
    assert final.metadata["outer_step"] == 4
    # simulate a kill after step 2: later checkpoints and the final file gone, metrics lines left over
    killed = tmp_path / "killed"
    shutil.copytree(tmp_path / "run", killed)
    for p in [killed / "synthetic.hdf5", *(killed / "checkpoints").glob("step_0000004.*")]:
        p.unlink()
    assert _cli("--resume", str(killed), "--no-progress") == 0
    again = load_synthetic(killed / "synthetic.hdf5")
    assert np.array_equal(again.observations, final.observations) and torch.equal(again.actions, final.actions)
    assert _cli(*args, "--out", str(tmp_path / "run")) == 2  # an existing run is not overwritten
    assert "--resume" in capsys.readouterr().err
    assert _cli("--resume", str(killed), "n_syn=8") == 2
    assert "may only change" in capsys.readouterr().err
    assert _cli("--config", "fast_avpbc", f"dataset={path}", "device=cpu",
                "--out", str(tmp_path / "x")) == 2
    assert "teacher" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert _cli(*args, "--out", str(tmp_path / "y"), "--threads", "0") == 2
    assert "--threads" in capsys.readouterr().err and not (tmp_path / "y").exists()


def test_cli_error_is_one_line_without_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "obd.distill", "--config", "fast_avpbc",
                           "objective=nope"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2 and done.stderr.startswith("error:") and "objective" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["paper_avpbc", "paper_pbc", "paper_dbc", "paper_sdw", "fast_avpbc", "fast_pbc",
                                  "fast_dbc", "fast_sdw", "small_avpbc", "small_pbc", "small_dbc", "small_sdw"])
def test_shipped_configs_load(name):
    cfg = load_config(DistillConfig, name)
    cfg.validate()
    preset, objective = name.split("_")
    assert cfg.objective == objective
    # the objective is a key: the name is the preset with that objective (and its entry under `objectives:`)
    assert cfg == load_config(DistillConfig, preset, [f"objective={objective}"])
    assert load_run_config(f"{preset}.yaml", [f"objective={objective}"])[0] == cfg


def test_presets_hold_what_changes_with_the_objective(tmp_path):
    paper = load_config(DistillConfig, "paper")
    assert paper.objective == "avpbc" and paper.outer_steps == 20_000
    assert load_config(DistillConfig, "paper_dbc").outer_steps == 50_000
    assert load_config(DistillConfig, "paper_sdw").density.estimator == "flow"
    assert load_config(DistillConfig, "fast_sdw").density.mode == "sample"
    assert load_config(DistillConfig, "fast_pbc").density is None
    with pytest.raises(ObdError, match=r"fast\.yaml has no objective 'xyz'; it has \['dbc', 'pbc', 'avpbc', 'sdw'\]"):
        load_config(DistillConfig, "fast_xyz")
    (tmp_path / "mine.yaml").write_text("n_syn: 8\nobjectives: [dbc]\n")
    with pytest.raises(ObdError, match="'objectives' should map each objective"):
        load_config(DistillConfig, tmp_path / "mine.yaml")
    (tmp_path / "mine.yaml").write_text("n_syn: 8\nobjectives: {dbc: {n_syn: 4}, pbc: {}}\n")
    assert load_config(DistillConfig, tmp_path / "mine.yaml", ["objective=dbc"]).n_syn == 4
    assert load_config(DistillConfig, tmp_path / "mine.yaml", ["objective=pbc"]).n_syn == 8


def test_with_a_real_teacher_file_and_dataset_file(tmp_path):
    """The contracts with obd.teachers (Teacher.save/load) and obd.data (write_d4rl/load_dataset) end to end."""
    from obd.data import write_d4rl
    from obd.nn import Actor, EnsembleQ
    from obd.teachers import Teacher

    data = make_dataset()
    data_path = write_d4rl(tmp_path / "tiny.hdf5", observations=data.observations, actions=data.actions,
                           rewards=data.rewards, terminals=data.terminals, timeouts=np.zeros(len(data), bool),
                           next_observations=data.next_observations)
    torch.manual_seed(0)
    teacher = Teacher(Actor(OBS, ACT, (8, 8), "tanh_gaussian"), EnsembleQ(OBS, ACT, (8, 8), 2),
                      data.normalizer, device="cpu")
    teacher.save(tmp_path / "teacher.pt")
    cfg = tiny_config(init="topq", outer_steps=2)
    syn = start(cfg, tmp_path / "run", str(data_path), str(tmp_path / "teacher.pt"), progress=False)
    assert syn.metadata["teacher"] == str(tmp_path / "teacher.pt") and syn.metadata["outer_step"] == 2
    recorded = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (recorded["dataset"], recorded["teacher"]) == (str(data_path), str(tmp_path / "teacher.pt"))
    d = cfg.create(str(data_path), str(tmp_path / "teacher.pt"), progress=False)  # loads both files itself
    from obd.data import load_dataset

    obs = load_dataset(str(data_path)).observations
    loaded = Teacher.load(tmp_path / "teacher.pt")
    mean, std = loaded.mean_std(obs)
    torch.testing.assert_close(d.objective.teacher_mean, mean)
    torch.testing.assert_close(d.objective.teacher_std, std)
    torch.testing.assert_close(d.objective.q_values, loaded.q(obs, loaded.act(obs)))


def test_run_config_keeps_the_inputs_beside_the_hyperparameters(tmp_path):
    from obd.distill.config import RunInputs, load_run_config, run_config_dict

    (tmp_path / "c.yaml").write_text("dataset: d.hdf5\nteacher: t.pt\nn_syn: 8\n")
    cfg, inputs = load_run_config(tmp_path / "c.yaml", ["teacher=u.pt"])
    assert inputs == RunInputs("d.hdf5", "u.pt") and cfg.n_syn == 8 and not hasattr(cfg, "dataset")
    saved = run_config_dict(cfg, inputs)
    assert list(saved)[:2] == ["dataset", "teacher"] and saved["n_syn"] == 8
    with pytest.raises(ObdError, match="eval_every"):  # not a setting: checkpoints are evaluated afterwards
        load_run_config(None, ["eval_every=0"])


def test_objectives_are_declared_once():
    """The registry is what the config accepts, what needs a teacher, and the sweep's distillation methods."""
    import typing

    from obd.distill.registry import OBJECTIVES
    from obd.sweep.grid import METHODS

    assert typing.get_args(typing.get_type_hints(DistillConfig)["objective"]) == tuple(OBJECTIVES)
    for name, spec in OBJECTIVES.items():
        cfg = load_config(DistillConfig, None, [f"objective={name}"])
        cfg.validate()
        assert cfg.needs_teacher() == spec.needs_teacher and name in METHODS
    assert [n for n, s in OBJECTIVES.items() if s.q_weighted] == ["avpbc", "sdw"]
    assert not OBJECTIVES["dbc"].needs_teacher


def test_config_is_validated_once_and_the_objective_is_built_complete(tmp_path, monkeypatch):
    import dataclasses

    from obd.distill import engine
    from obd.distill.config import DistillConfig as Config

    calls = []
    original = Config.validate
    monkeypatch.setattr(Config, "validate", lambda self: (calls.append(1), original(self))[1])
    resolutions = []
    original_resolve = engine.resolve_device
    monkeypatch.setattr(engine, "resolve_device", lambda *a, **k: (resolutions.append(1), original_resolve(*a, **k))[1])
    cfg = tiny_config(objective="sdw", **{"density.estimator": "knn", "density.k": 3})
    calls.clear()
    d = cfg.create(make_dataset(), TinyTeacher(), progress=False)
    assert len(calls) == 1 and resolutions == []  # create resolved the device and handed it on
    assert d.config.resolved() is d.config and len(calls) == 1
    # the objective came out of its constructor complete: SDW's sampling flag set, and frozen
    assert d.objective.sdw_sampled == (d.sdw.sampler_weights is not None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.objective.beta = 1.0


def test_a_teacher_trained_on_other_data_gets_a_one_line_notice(capsys):
    from obd.distill.engine import teacher_data_notice

    data, teacher = make_dataset(), TinyTeacher()
    teacher.metadata = {"dataset_sha256": "0" * 64}
    tiny_config().create(data, teacher, progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("note: teacher") and "000000000000" in err[0]
    teacher.metadata = {"dataset_sha256": data.fingerprint()}
    tiny_config().create(data, teacher, progress=False)
    assert capsys.readouterr().err == ""
    assert teacher_data_notice(TinyTeacher(), data.fingerprint(), "x") == ""
