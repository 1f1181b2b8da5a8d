"""State coverage (obd.distill.coverage), random truncated BPTT, the student pool and the moving average of
the set: perturbed outer states reproducible from the seed, the teacher queried once per perturbed state,
the Q modes, the perturbed initial set, the average's arithmetic, resume bit-identical, and config errors.
Tiny dims, seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_distill import TinyTeacher, make_dataset, tiny_config

from obd.distill.run import resume, start
from obd.errors import ObdError
from obd.run_folder import latest_checkpoint

torch.set_num_threads(1)


class CountingTeacher(TinyTeacher):
    """TinyTeacher that records the row count of every call, per method."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.calls: dict[str, list[int]] = {"act": [], "mean_std": [], "q": []}

    def act(self, s):
        self.calls["act"].append(len(s))
        return super().act(s)

    def mean_std(self, s):
        self.calls["mean_std"].append(len(s))
        return super().mean_std(s)

    def q(self, s, a):
        self.calls["q"].append(len(s))
        return super().q(s, a)

    def reset(self):
        for v in self.calls.values():
            v.clear()


def _step_batch(distiller):
    """(states, targets, weights) of the distiller's next outer batch, drawn from a copy of its generator."""
    g = torch.Generator().manual_seed(0)
    g.set_state(distiller.generator.get_state())
    idx = distiller.sampler.draw(distiller.config.outer.batch, g)
    targets, weights = distiller.objective.targets(idx, g)
    states = distiller.real_states[idx]
    clean = (states.clone(), targets.clone(), None if weights is None else weights.clone())
    return idx, clean, distiller.coverage.apply(idx, states, targets, weights, distiller.states, g)


def test_perturbed_states_are_reproducible_from_the_seed_and_leave_the_clean_share():
    data, teacher = make_dataset(), TinyTeacher()
    cfg = tiny_config(**{"coverage.scale": 0.3, "coverage.clean": 0.25})
    a, b = cfg.create(data, teacher, progress=False), cfg.create(data, teacher, progress=False)
    _, clean, (states, targets, weights) = _step_batch(a)
    _, _, (states_b, targets_b, weights_b) = _step_batch(b)
    assert torch.equal(states, states_b) and torch.equal(targets, targets_b) and torch.equal(weights, weights_b)
    n = a.coverage.perturbed_count(16)
    assert n == 12
    # the perturbed rows moved by about scale, the clean rows did not move at all
    moved = (states - clean[0]).norm(dim=1)
    assert torch.all(moved[:n] > 0) and torch.equal(states[n:], clean[0][n:])
    assert 0.1 < float(moved[:n].pow(2).mean().div(states.shape[1]).sqrt()) < 0.6
    other = tiny_config(**{"coverage.scale": 0.3, "coverage.clean": 0.25, "seed": 2}).create(data, teacher,
                                                                                              progress=False)
    assert not torch.equal(_step_batch(other)[2][0], states)


@pytest.mark.parametrize("stochastic", [True, False])
@pytest.mark.parametrize("q_mode", ["perturbed", "clean", "none"])
def test_teacher_is_queried_once_per_perturbed_state(q_mode, stochastic):
    data, teacher = make_dataset(), CountingTeacher(stochastic=stochastic)
    d = tiny_config(**{"coverage.scale": 0.3, "coverage.clean": 0.5, "coverage.q": q_mode}).create(
        data, teacher, progress=False)
    teacher.reset()
    for _ in range(3):
        d.step()
    n = d.coverage.perturbed_count(16)
    assert n == 8
    calls = teacher.calls
    if stochastic:
        assert calls["mean_std"] == [n] * 3
    # act: the deterministic action, once per state, for the deterministic teacher's target and for the action
    # Q is taken at
    expected_act = 1 if not stochastic or q_mode == "perturbed" else 0
    assert calls["act"] == [n] * 3 * expected_act
    assert calls["q"] == ([n] * 3 if q_mode == "perturbed" else [])


def test_q_modes_set_the_perturbed_weights():
    data, teacher = make_dataset(), TinyTeacher()
    out = {}
    for mode in ("perturbed", "clean", "none"):
        d = tiny_config(**{"coverage.scale": 0.5, "coverage.q": mode}).create(data, teacher, progress=False)
        idx, clean, (states, _, weights) = _step_batch(d)
        out[mode] = (d, idx, clean, states, weights)
    d, idx, clean, states, weights = out["clean"]
    assert torch.allclose(weights, clean[2])
    d, idx, clean, states, weights = out["none"]
    assert torch.allclose(weights, torch.full_like(weights, 0.02 * float(d.objective.q_values.mean())))
    d, idx, clean, states, weights = out["perturbed"]
    raw = states * d.coverage.std + d.coverage.mean
    assert torch.allclose(weights, 0.02 * teacher.q(raw, teacher.act(raw)), atol=1e-6)


def test_pbc_and_sdw_take_coverage_and_dbc_refuses_it():
    data, teacher = make_dataset(), TinyTeacher()
    d = tiny_config(objective="pbc", **{"coverage.scale": 0.3}).create(data, teacher, progress=False)
    _, _, (_, _, weights) = _step_batch(d)
    assert weights is None
    d.step()
    sdw = tiny_config(objective="sdw", **{"coverage.scale": 0.3, "density.estimator": "knn", "density.k": 3,
                                          "density.mode": "weight"}).create(data, teacher, progress=False)
    idx, clean, (_, _, weights) = _step_batch(sdw)
    # q=perturbed keeps the source state's density weight: the ratio to beta * Q is that weight
    raw = _step_batch(sdw)[2][0] * sdw.coverage.std + sdw.coverage.mean
    density = weights / (0.02 * teacher.q(raw, teacher.act(raw)))
    assert torch.allclose(density, sdw.objective.density_weights[idx], rtol=1e-4)
    with pytest.raises(ObdError, match="coverage.*objective=dbc"):
        tiny_config(objective="dbc", **{"coverage.scale": 0.3}).validate()


@pytest.mark.parametrize("kind,shape", [("gaussian", "covariance"), ("mixup", "isotropic"),
                                        ("synthetic", "isotropic")])
def test_other_kinds_perturb_where_they_say(kind, shape):
    data, teacher = make_dataset(), TinyTeacher()
    d = tiny_config(**{"coverage.scale": 0.5, "coverage.kind": kind, "coverage.shape": shape}).create(
        data, teacher, progress=False)
    _, clean, (states, targets, _) = _step_batch(d)
    assert states.shape == clean[0].shape and torch.isfinite(targets).all()
    if kind == "mixup":  # on the segment between the source state and a real partner: never further than it
        span = (d.real_states.unsqueeze(0) - clean[0].unsqueeze(1)).norm(dim=-1).max(1).values
        assert torch.all((states - clean[0]).norm(dim=1) <= 0.5 * span + 1e-5)
    if kind == "synthetic":  # every perturbed state is near some synthetic state, not near its real source
        near = torch.cdist(states, d.states.detach()).min(1).values
        assert float(near.max()) < 0.5 * 6
    if shape == "covariance":
        factor = d.coverage.factor
        cov = np.cov(d.real_states.numpy(), rowvar=False)
        assert np.allclose((factor @ factor.T).numpy(), cov, atol=1e-4)
    d.step()


def test_perturbed_initial_set_is_seeded_and_teacher_labelled():
    data, teacher = make_dataset(), TinyTeacher()
    plain = tiny_config().create(data, teacher, progress=False)
    cfg = tiny_config(**{"coverage.init_scale": 0.3})
    a, b = cfg.create(data, teacher, progress=False), cfg.create(data, teacher, progress=False)
    assert torch.equal(a.states, b.states) and torch.equal(a.actions, b.actions)
    moved = (a.states - plain.states).detach()
    assert torch.all(moved.norm(dim=1) > 0) and 0.1 < float(moved.std()) < 0.6
    raw = a.normalizer.denormalize(a.states.detach().numpy())
    assert torch.allclose(a.actions.detach(), teacher.act(raw), atol=1e-6)
    assert a.coverage is None  # init_scale alone leaves the outer batch clean


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"))])
@pytest.mark.parametrize("overrides", [
    {},
    {"coverage.scale": 0.3, "coverage.clean": 0.5, "coverage.init_scale": 0.3},
    {"coverage.scale": 0.3, "coverage.kind": "synthetic"},
    {"inner.truncate": 2, "inner.random_unroll": True, "inner.steps": 4},
    {"inner.pool": 2, "inner.pool_max_steps": 6},
    {"outer.ema": 0.8},
    {"inner.students": 2, "outer.disagreement": 4.0},
])
def test_resume_with_coverage_or_random_unroll_is_bit_identical(tmp_path, overrides, device):
    data, teacher = make_dataset(), TinyTeacher()
    # a cosine horizon would differ between the two
    overrides = {**overrides, "outer.schedule": "constant", "device": device}
    cfg = tiny_config(**overrides)
    full = start(cfg, tmp_path / "full", data, teacher, progress=False)
    half = tiny_config(**overrides, outer_steps=4)
    start(half, tmp_path / "half", data, teacher, progress=False)
    assert latest_checkpoint(tmp_path / "half")[0] == 4
    resumed = resume(tmp_path / "half", ["outer_steps=6"], dataset=data, teacher=teacher, progress=False)
    assert full.states.device.type == device
    assert torch.equal(full.states, resumed.states) and torch.equal(full.actions, resumed.actions)

    def losses(run):
        return [json.loads(x)["loss"] for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
    assert losses("full") == losses("half")


def test_random_unroll_draws_the_number_of_inner_steps(monkeypatch):
    from obd.distill import engine

    seen = []
    original = engine.inner_loop

    def spy(params, states, actions, steps, *args, **kw):
        seen.append(steps)
        return original(params, states, actions, steps, *args, **kw)
    monkeypatch.setattr(engine, "inner_loop", spy)
    data, teacher = make_dataset(), TinyTeacher()
    d = tiny_config(**{"inner.steps": 6, "inner.truncate": 2, "inner.random_unroll": True}).create(
        data, teacher, progress=False)
    for _ in range(12):
        d.step()
    assert set(seen) <= set(range(2, 7)) and len(set(seen)) > 2


def test_ema_returns_the_bias_corrected_average_of_the_raw_sets():
    data, teacher = make_dataset(), TinyTeacher()
    decay = 0.7
    d = tiny_config(**{"outer.ema": decay}).create(data, teacher, progress=False)
    plain = tiny_config().create(data, teacher, progress=False)
    assert torch.equal(d.synthetic().states, plain.synthetic().states)  # step 0: the initial set itself
    raw = []
    for _ in range(5):
        d.step()
        plain.step()
        raw.append((d.states.detach().clone(), d.actions.detach().clone()))
    # the average does not feed back: the raw trajectory is the one without it
    assert torch.equal(d.states, plain.states) and torch.equal(d.actions, plain.actions)
    k = len(raw)
    w = torch.tensor([(1 - decay) * decay ** (k - 1 - i) for i in range(k)]) / (1 - decay ** k)
    syn = d.synthetic()
    for got, which in ((syn.states, 0), (syn.actions, 1)):
        expected = sum(wi * r[which] for wi, r in zip(w, raw))
        torch.testing.assert_close(got, expected)
        assert not torch.allclose(got, raw[-1][which])
    assert syn.metadata["config"]["outer"]["ema"] == decay


def test_resume_refuses_a_checkpoint_without_the_average(tmp_path):
    data, teacher = make_dataset(), TinyTeacher()
    start(tiny_config(outer_steps=2), tmp_path / "run", data, teacher, progress=False)
    state = torch.load(latest_checkpoint(tmp_path / "run")[1], weights_only=False)
    d = tiny_config(**{"outer.ema": 0.9}).create(data, teacher, progress=False)
    with pytest.raises(ObdError, match="outer.ema"):
        d.load_state_dict(state)


def test_pool_members_keep_training_and_restart_at_their_limit():
    data, teacher = make_dataset(), TinyTeacher()
    d = tiny_config(**{"inner.pool": 3, "inner.pool_max_steps": 9}).create(data, teacher, progress=False)
    stages = []
    for _ in range(12):
        before = list(d.pool_stage)
        d.step()
        stages.append((before, list(d.pool_stage)))
    # every step advanced one member by T = 3 inner steps, or emptied it on reaching 9 (a member drawn at 0
    # that stays at 0 cannot happen: T < pool_max_steps)
    for before, after in stages:
        changed = [i for i in range(3) if before[i] != after[i]]
        assert len(changed) == 1
        i = changed[0]
        assert after[i] == (0 if before[i] + 3 >= 9 else before[i] + 3)
    assert any(d.pool[i] is not None for i in range(3)) and max(max(a) for _, a in stages) == 6
    # a member's parameters are the trained ones, not a fresh init: they differ from what it started at
    fresh = d._fresh_student()
    kept = next(m for m in d.pool if m is not None)
    assert not torch.equal(kept[0], fresh[0])


@pytest.mark.parametrize("override,message", [
    ({"coverage.scale": -0.1}, "coverage.scale"),
    ({"coverage.clean": 1.5}, "coverage.clean"),
    ({"coverage.kind": "mixup", "coverage.scale": 2}, "coverage.scale"),
    ({"coverage.kind": "blur"}, "coverage.kind"),
    ({"coverage.q": "maybe"}, "coverage.q"),
    ({"inner.random_unroll": True}, "inner.random_unroll"),
    ({"inner.pool": -1}, "inner.pool"),
    ({"inner.pool": 2, "inner.pool_max_steps": 2}, "inner.pool_max_steps"),
    ({"outer.ema": 1.0}, "outer.ema"),
    ({"outer.ema": -0.5}, "outer.ema"),
])
def test_config_errors_name_the_key(override, message):
    with pytest.raises(ObdError, match=message):
        tiny_config(**override).validate()


def test_onpolicy_error_bands_partition_the_visited_states(tmp_path, make_problem):
    from obd.data import load_dataset
    from obd.distill import DistillConfig
    from obd.evaluate.onpolicy import onpolicy_error
    from obd.teachers import Teacher

    rng = np.random.default_rng(0)
    data_file, teacher_file = make_problem(tmp_path, rng.normal(size=(200, 11)) * 0.05, task="hopper")
    dataset, teacher = load_dataset(str(data_file)), Teacher.load(teacher_file)
    cfg = DistillConfig(n_syn=8, student=dict(hidden=8, depth=2), inner=dict(steps=3),
                        outer=dict(batch=16), outer_steps=2, device="cpu")
    syn = cfg.create(dataset, teacher, progress=False).fit()
    out = onpolicy_error(syn, teacher, dataset.observations, students=2, episodes=1)
    assert out["visited_states"] > 0 and out["distance_mean"] >= 0
    assert sum(b["share"] for b in out["bands"]) == pytest.approx(1.0)
    # the overall error is the share-weighted mean of the bands' errors
    assert sum(b["share"] * b["error"] for b in out["bands"] if b["error"] is not None) == \
        pytest.approx(out["error_mean"], rel=1e-5)


def test_presets_give_coverage_to_the_teacher_based_objectives_only():
    from obd.config import load_config
    from obd.distill import DistillConfig

    for name in ("small", "small_avpbc", "small_pbc", "small_sdw", "quickstart"):
        cfg = load_config(DistillConfig, name)
        cfg.validate()
        assert cfg.coverage.outer_enabled and cfg.coverage.init_scale > 0, name
    dbc = load_config(DistillConfig, "small", ["objective=dbc"])
    dbc.validate()
    assert not dbc.coverage.outer_enabled and dbc.coverage.init_scale == 0
    # the paper's preset stays the papers' objective
    assert not load_config(DistillConfig, "paper").coverage.outer_enabled


def test_a_sweep_drops_coverage_for_dbc_and_keeps_it_for_the_others(tmp_path):
    from obd.sweep.grid import distill_config, load_settings

    settings = load_settings("small", [])
    dbc = distill_config(settings, "dbc", "hopper-tiny-v5", 0, None)
    avpbc = distill_config(settings, "avpbc", "hopper-tiny-v5", 0, "t.pt")
    assert not dbc.coverage.outer_enabled and dbc.coverage.init_scale == 0
    assert avpbc.coverage.scale == 0.3 and avpbc.coverage.init_scale == 0.3
