"""On-policy states (``onpolicy.*``, obd.distill.onpolicy): rollouts of the inner loop's student fill a buffer
of teacher-labelled states, the outer batch's last rows come from it, the teacher is asked once per visited
state, the Q modes, resume bit-identical, and config errors. Hopper dims, a few rollouts of a few steps."""

from __future__ import annotations

import functools
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_coverage import CountingTeacher
from test_distill import run_until_killed, tiny_config

from obd.data.dataset import TransitionDataset
from obd.distill.onpolicy import NoveltyTest, rollout_seed, teacher_rollout_seed
from obd.distill.run import resume, start
from obd.envs import make_env
from obd.errors import ObdError
from obd.run_folder import latest_checkpoint

torch.set_num_threads(1)
OBS, ACT = 11, 3


class HopperTeacher(CountingTeacher):
    """The counting tiny teacher with hopper's dims."""

    def __init__(self, **kw):
        super().__init__(obs_dim=OBS, **kw)
        g = torch.Generator().manual_seed(3)
        self.act_dim = ACT
        self.w = torch.randn(OBS, ACT, generator=g)
        self.wq = torch.randn(OBS + ACT, generator=g)


def hopper_data(n: int = 200, task: str | None = "hopper") -> TransitionDataset:
    """Hopper-shaped states near the env's reset state, so a rollout's states and the data's overlap."""
    rng = np.random.default_rng(0)
    obs = (rng.normal(size=(n, OBS)) * 0.1 + np.r_[1.25, np.zeros(OBS - 1)]).astype(np.float32)
    act = np.tanh(rng.normal(size=(n, ACT))).astype(np.float32)
    return TransitionDataset(obs, act, rng.normal(size=n), obs + 0.01, np.zeros(n, bool), np.arange(0, n, 50),
                             task=task, source="hopper-tiny")


def onpolicy_config(**kw):
    base = {"onpolicy.share": 0.25, "onpolicy.every": 2, "onpolicy.max_steps": 7, "onpolicy.capacity": 20,
            "outer.schedule": "constant"}
    return tiny_config(**{**base, **kw})


def test_rollouts_fill_the_buffer_and_replace_the_last_rows_of_the_batch():
    data, teacher = hopper_data(), HopperTeacher()
    d = onpolicy_config().create(data, teacher, progress=False)
    assert d.onpolicy.rows(16) == 0  # nothing visited yet: the batch is all real states
    metrics = d.step()
    # step 0 is due: at most 7 env steps of one episode, each state labelled once
    visited = d.onpolicy.size
    assert 1 <= visited <= 7 and metrics["onpolicy_length"] == visited
    # the first visited state is the reset state of the episode the run's seed and the step name
    env = make_env("hopper")
    first = env.reset(seed=rollout_seed(d.config.seed, 0, 1))[0]
    env.close()
    torch.testing.assert_close(d.onpolicy.buffer["states"][0],
                               torch.as_tensor(np.asarray(data.normalizer.normalize(first[None]), np.float32)[0]))
    assert d.onpolicy.rows(16) == 4
    g = torch.Generator().manual_seed(5)
    states, targets = d.real_states[:16].clone(), torch.zeros(16, ACT)
    weights = torch.full((16,), 3.0)
    s, t, w, clean = d.onpolicy.apply(states, targets, weights, states.clone(), g)
    assert torch.equal(s[:12], states[:12]) and torch.equal(t[:12], targets[:12]) and torch.equal(w[:12], weights[:12])
    buffer = d.onpolicy.buffer["states"][:visited]
    assert all(any(torch.equal(row, b) for b in buffer) for row in s[12:])
    assert torch.equal(clean[12:], s[12:])
    # q=mean: a visited state gets Av-PBC's average weight, beta times the dataset's mean Q
    torch.testing.assert_close(w[12:], torch.full((4,), d.config.beta * float(d.objective.q_values.mean())))
    assert not d.step().get("onpolicy_length")  # step 1 is not due
    d.step()
    assert d.onpolicy.visited > visited


@pytest.mark.parametrize("stochastic", [True, False])
@pytest.mark.parametrize("q", ["state", "mean"])
def test_teacher_is_asked_once_per_visited_state(stochastic, q):
    data, teacher = hopper_data(), HopperTeacher(stochastic=stochastic)
    d = onpolicy_config(**{"onpolicy.q": q}).create(data, teacher, progress=False)
    teacher.reset()
    raw = np.asarray(data.observations[:9])
    d.onpolicy.add(raw)
    labels = "mean_std" if stochastic else "act"
    assert teacher.calls[labels] == [9]
    assert teacher.calls["q"] == ([9] if q == "state" else [])
    if q == "state":
        expected = teacher.q(raw, teacher.act(raw))
        torch.testing.assert_close(d.onpolicy.buffer["q"][:9], expected)


def test_the_buffer_keeps_the_last_capacity_states():
    data, teacher = hopper_data(), HopperTeacher()
    d = onpolicy_config(**{"onpolicy.capacity": 5}).create(data, teacher, progress=False)
    raw = np.asarray(data.observations[:12])
    d.onpolicy.add(raw[:3])
    d.onpolicy.add(raw[3:12])
    assert d.onpolicy.size == 5 and d.onpolicy.visited == 8  # the second call keeps its last 5
    kept = d.onpolicy.buffer["states"]
    expected = torch.as_tensor(np.asarray(data.normalizer.normalize(raw[7:12]), np.float32))
    assert sorted(map(tuple, kept.tolist())) == sorted(map(tuple, expected.tolist()))


def test_novelty_tells_states_off_the_data_from_states_on_it():
    data = hopper_data(n=400)
    real = torch.as_tensor(np.asarray(data.normalizer.normalize(data.observations), np.float32))
    test = NoveltyTest(real, 0.9, seed=0)
    assert test.threshold == NoveltyTest(real, 0.9, seed=0).threshold  # from the seed alone
    held_out = test(real.numpy())
    assert 0.0 < held_out.mean() < 0.15  # about a tenth of the data lies beyond its own 0.9-quantile
    assert test((real[:50] + 10.0).numpy()).all()


def test_a_visited_state_on_the_data_leaves_the_data_row_in_place():
    data, teacher = hopper_data(), HopperTeacher()
    d = onpolicy_config(**{"onpolicy.novelty": 0.9}).create(data, teacher, progress=False)
    raw = np.asarray(data.observations[:6])
    far = raw.copy()
    far[:, 1:] += 50.0
    d.onpolicy.add(np.concatenate([raw[:3], far[:3]]))
    assert d.onpolicy.buffer["take"][:6].tolist() == [0, 0, 0, 1, 1, 1]
    states, targets = d.real_states[:64].clone(), torch.zeros(64, ACT)
    weights = torch.full((64,), 3.0)
    s, t, w, clean = d.onpolicy.apply(states, targets, weights, states.clone(), torch.Generator().manual_seed(5))
    replaced = (s != states).any(-1)
    assert not replaced[:48].any() and 0 < replaced[48:].sum() < 16
    novel = d.onpolicy.buffer["states"][3:6]
    assert all(any(torch.equal(row, b) for b in novel) for row in s[replaced])
    assert torch.equal(t[~replaced], targets[~replaced]) and torch.equal(w[~replaced], weights[~replaced])
    assert torch.equal(clean[replaced], s[replaced])
    assert (t[replaced] != 0).any(-1).all()  # the teacher's action at the visited state
    metrics = d.step()
    assert 0.0 <= metrics["onpolicy_novel"] <= 1.0
    # gate=on_data: the reverse, the states far off the data leave the data row
    d = onpolicy_config(**{"onpolicy.novelty": 0.9, "onpolicy.gate": "on_data"}).create(data, teacher, progress=False)
    assert d.onpolicy.add(np.concatenate([raw[:3], far[:3]])) == 0.5
    assert d.onpolicy.buffer["take"][:6].tolist() == [1, 1, 1, 0, 0, 0]


def test_the_teachers_own_states_fill_the_rows_before_the_students():
    data, teacher = hopper_data(), HopperTeacher()
    cfg = onpolicy_config(**{"onpolicy.share": 0.0, "onpolicy.teacher_share": 0.25, "onpolicy.teacher_episodes": 2})
    d = cfg.create(data, teacher, progress=False)
    pool = d.onpolicy.teacher_pool
    n = len(pool["states"])
    assert 2 <= n <= 14  # two episodes of at most onpolicy.max_steps = 7 env steps
    # labelled once, in one call for all of the teacher's states (the rollout itself asks for actions only)
    assert teacher.calls["mean_std"][1:] == [n] and all(c <= 2 for c in teacher.calls["act"][1:])
    env = make_env("hopper")
    first = env.reset(seed=teacher_rollout_seed(d.config.seed, 2))[0]
    env.close()
    torch.testing.assert_close(pool["states"][0],
                               torch.as_tensor(np.asarray(data.normalizer.normalize(first[None]), np.float32)[0]))
    torch.testing.assert_close(pool["q"], torch.full((n,), float(d.objective.q_values.mean())))  # q=mean
    assert d.onpolicy.rows(16) == 0 and d.onpolicy.teacher_rows(16) == 4
    states, targets = d.real_states[:16].clone(), torch.zeros(16, ACT)
    s, t, w, clean = d.onpolicy.apply(states, targets, torch.ones(16), states.clone(), torch.Generator().manual_seed(5))
    assert torch.equal(s[:12], states[:12]) and torch.equal(t[:12], targets[:12])
    assert all(any(torch.equal(row, b) for b in pool["states"]) for row in s[12:])
    assert not d.step().get("onpolicy_length")  # no student is rolled out without onpolicy.share


def test_rollout_seeds_are_the_runs_own():
    seeds = {rollout_seed(seed, step, 2) for seed in range(3) for step in range(0, 200, 10)}
    assert len(seeds) == 60 and min(seeds) > 0


@pytest.mark.parametrize("extra", [{}, {"onpolicy.novelty": 0.5, "onpolicy.teacher_share": 0.25}])
def test_onpolicy_changes_the_set_and_resume_is_bit_identical(tmp_path, extra):
    data, teacher = hopper_data(), HopperTeacher()
    onpolicy_config = functools.partial(globals()["onpolicy_config"], **extra)
    full = start(onpolicy_config(), tmp_path / "full", data, teacher, progress=False)
    off = start(onpolicy_config(**{"onpolicy.share": 0.0}), tmp_path / "off", data, teacher, progress=False)
    assert not torch.equal(full.states, off.states)
    start(onpolicy_config(outer_steps=3), tmp_path / "half", data, teacher, progress=False)
    assert latest_checkpoint(tmp_path / "half")[0] == 3
    resumed = resume(tmp_path / "half", ["outer_steps=6"], dataset=data, teacher=teacher, progress=False)
    assert torch.equal(full.states, resumed.states) and torch.equal(full.actions, resumed.actions)

    def rows(run):
        return [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows("full")] == [r["loss"] for r in rows("half")]
    assert [r.get("onpolicy_score") for r in rows("full")] == [r.get("onpolicy_score") for r in rows("half")]
    with pytest.raises(ObdError, match="resume with onpolicy.share=0.0 but the run started with 0.25"):
        resume(tmp_path / "half", ["outer_steps=6", "onpolicy.share=0"], dataset=data, teacher=teacher,
               progress=False)


def test_share_end_takes_the_share_linearly_to_its_value_at_the_last_step():
    data, teacher = hopper_data(), HopperTeacher()
    d = onpolicy_config(**{"onpolicy.share_end": 0.0, "outer_steps": 5}).create(data, teacher, progress=False)
    assert [d.onpolicy.share_at(k) for k in range(5)] == pytest.approx([0.25, 0.1875, 0.125, 0.0625, 0.0])
    d.step()  # step 0 fills the buffer
    assert [d.onpolicy.rows(16, k) for k in range(5)] == [4, 3, 2, 1, 0]
    states = d.real_states[:16].clone()
    s, *_ = d.onpolicy.apply(states, torch.zeros(16, ACT), None, states.clone(), torch.Generator(), step=4)
    assert torch.equal(s, states)  # the last step's batch is all real states
    constant = onpolicy_config(**{"outer_steps": 5}).create(data, teacher, progress=False)
    assert [constant.onpolicy.share_at(k) for k in range(5)] == [0.25] * 5


def test_kill_and_resume_with_share_end_is_bit_identical(tmp_path):
    data, teacher = hopper_data(), HopperTeacher()
    cfg = onpolicy_config(**{"onpolicy.share_end": 0.05})
    full = start(cfg, tmp_path / "full", data, teacher, progress=False)
    run_until_killed(cfg, data, teacher, tmp_path / "killed", at=5)
    assert latest_checkpoint(tmp_path / "killed")[0] == 4
    resumed = resume(tmp_path / "killed", dataset=data, teacher=teacher, progress=False)
    assert torch.equal(full.states, resumed.states) and torch.equal(full.actions, resumed.actions)


def test_the_small_preset_gives_falling_onpolicy_states_to_avpbc_only():
    from obd.config import load_config
    from obd.distill import DistillConfig
    from obd.sweep.grid import distill_config, load_settings, trial_budget
    from obd.sweep.table import _budget_line

    avpbc = load_config(DistillConfig, "small_avpbc").onpolicy
    assert (avpbc.share, avpbc.every, avpbc.share_end, avpbc.optional) == (0.25, 10, 0.0, True)
    for name in ("small_sdw", "small_pbc", "small_dbc", "fast", "paper"):
        assert not load_config(DistillConfig, name).onpolicy.enabled, name
    # a sweep's rows say which sets were made with them
    settings = load_settings("small", [])
    trial = SimpleNamespace(distill=distill_config(settings, "avpbc", "hopper-tiny-v5", 0, "t.pt"), method="avpbc")
    assert "onpolicy.share 0.25" in _budget_line(trial_budget(trial))


@pytest.mark.parametrize("override,message", [
    ({"onpolicy.share": 1.0}, "onpolicy.share.*\\[0, 1\\)"),
    ({"onpolicy.share": -0.1}, "onpolicy.share"),
    ({"onpolicy.every": 0}, "onpolicy.every.*>= 1"),
    ({"onpolicy.capacity": 0}, "onpolicy.capacity"),
    ({"onpolicy.max_steps": -1}, "onpolicy.max_steps.*>= 0"),
    ({"onpolicy.novelty": 1.0}, "onpolicy.novelty.*quantile in \\[0, 1\\)"),
    ({"onpolicy.share_end": 1.0}, "onpolicy.share_end.*\\[0, 1\\)"),
    ({"onpolicy.share": 0.0, "onpolicy.share_end": 0.1}, "onpolicy.share_end.*onpolicy.share > 0"),
    ({"onpolicy.share_end": 0.5, "onpolicy.teacher_share": 0.5}, "onpolicy.teacher_share.*share_end counts"),
    ({"onpolicy.teacher_share": 0.75}, "onpolicy.teacher_share.*\\[0, 1 - onpolicy.share\\)"),
    ({"onpolicy.teacher_episodes": 0}, "onpolicy.teacher_episodes.*>= 1"),
    ({"onpolicy.share": 0.0, "onpolicy.teacher_share": 0.2, "objective": "dbc"},
     "onpolicy.teacher_share.*teacher-based"),
    ({"objective": "dbc"}, "onpolicy.share.*teacher-based"),
])
def test_config_errors_name_the_key(override, message):
    with pytest.raises(ObdError, match=message):
        onpolicy_config(**override).validate()


@pytest.mark.parametrize("task,message", [(None, "names none"), ("walker2d", "do not match task 'walker2d'"),
                                          ("pendulum-juggler", "unknown task")])
def test_a_dataset_without_its_simulator_is_refused(task, message):
    with pytest.raises(ObdError, match=f"^config key 'onpolicy.share': .*{message}.*onpolicy.share=0"):
        onpolicy_config().create(hopper_data(task=task), HopperTeacher(), progress=False)


def test_teacher_states_alone_name_their_key_when_refused():
    cfg = onpolicy_config(**{"onpolicy.share": 0.0, "onpolicy.teacher_share": 0.2})
    with pytest.raises(ObdError, match="^config key 'onpolicy.teacher_share': .*onpolicy.teacher_share=0"):
        cfg.create(hopper_data(task=None), HopperTeacher(), progress=False)


def test_optional_rollout_states_step_aside_without_a_simulator(capsys):
    d = onpolicy_config(**{"onpolicy.optional": True}).create(hopper_data(task=None), HopperTeacher(),
                                                                 progress=False)
    assert d.onpolicy is None
    assert "note: config key 'onpolicy.share': on-policy states need the dataset's task" in capsys.readouterr().err
    assert "onpolicy_length" not in d.step()
    with_sim = onpolicy_config(**{"onpolicy.optional": True}).create(hopper_data(), HopperTeacher(), progress=False)
    assert with_sim.onpolicy is not None  # optional changes nothing where the task can be simulated


# ---------------------------------------------------------------- init=teacher
def test_init_teacher_starts_the_set_on_the_teachers_own_states_labelled_by_it(tmp_path):
    from obd.distill.init import TEACHER_EPISODES, TEACHER_MAX_EPISODES

    data, teacher = hopper_data(), HopperTeacher()
    d = tiny_config(init="teacher", n_syn=8).create(data, teacher, progress=False)
    states, actions = d.states.detach().numpy(), d.actions.detach().numpy()
    # every initial state is one the teacher's deterministic action visits from the run's seeded resets
    seen = []
    env = make_env("hopper")
    first = teacher_rollout_seed(d.config.seed, TEACHER_MAX_EPISODES)
    for e in range(TEACHER_EPISODES):
        obs, done = env.reset(seed=first + e)[0], False
        while not done:
            seen.append(obs)
            obs, _, term, trunc, _ = env.step(teacher.act(obs[None]).numpy()[0])
            done = term or trunc
    env.close()
    visited = np.asarray(data.normalizer.normalize(np.asarray(seen, np.float32)), np.float32)
    assert len(visited) >= 8
    assert all(np.any(np.all(np.isclose(visited, s, atol=1e-5), axis=1)) for s in states)
    raw = data.normalizer.denormalize(torch.as_tensor(states)).numpy()
    np.testing.assert_allclose(actions, teacher.act(raw).numpy(), atol=1e-5)
    assert len({tuple(s) for s in states.round(5)}) == 8  # drawn without replacement
    # reproducible from the seed, another seed draws other states
    again = tiny_config(init="teacher", n_syn=8).create(data, teacher, progress=False)
    assert torch.equal(again.states, d.states)
    other = tiny_config(init="teacher", n_syn=8, seed=2).create(data, teacher, progress=False)
    assert not torch.equal(other.states, d.states)
    # a run started on them resumes bit-identically
    run = functools.partial(tiny_config, init="teacher", n_syn=8, **{"outer.schedule": "constant"})
    full = start(run(), tmp_path / "full", data, teacher, progress=False)
    start(run(outer_steps=3), tmp_path / "half", data, teacher, progress=False)
    resumed = resume(tmp_path / "half", ["outer_steps=6"], dataset=data, teacher=teacher, progress=False)
    assert torch.equal(full.states, resumed.states) and torch.equal(full.actions, resumed.actions)


def test_init_share_starts_part_of_the_set_on_the_teachers_states_and_the_rest_on_the_data():
    data, teacher = hopper_data(), HopperTeacher()
    whole = tiny_config(init="teacher", n_syn=8).create(data, teacher, progress=False)
    d = tiny_config(init="teacher", n_syn=8, init_share=0.5).create(data, teacher, progress=False)
    states, actions = d.states.detach().numpy(), d.actions.detach().numpy()
    # the first half: the teacher's states (the same draw as a set of 4 all from the teacher) and actions
    four = tiny_config(init="teacher", n_syn=4).create(data, teacher, progress=False)
    np.testing.assert_array_equal(states[:4], four.states.detach().numpy())
    np.testing.assert_array_equal(actions[:4], four.actions.detach().numpy())
    # the second half: distinct real pairs with the data's own actions
    normalized = np.asarray(data.normalizer.normalize(data.observations), np.float32)
    for s, a in zip(states[4:], actions[4:]):
        row = np.flatnonzero(np.all(np.isclose(normalized, s, atol=1e-6), axis=1))
        assert len(row) == 1 and np.allclose(data.actions[row[0]], a)
    assert len({tuple(s) for s in states.round(5)}) == 8
    assert not torch.equal(d.states, whole.states)
    again = tiny_config(init="teacher", n_syn=8, init_share=0.5).create(data, teacher, progress=False)
    assert torch.equal(again.states, d.states) and torch.equal(again.actions, d.actions)


def test_init_max_steps_starts_the_set_on_the_first_steps_of_the_teachers_episodes():
    from obd.distill.init import TEACHER_EPISODES, TEACHER_MAX_EPISODES

    data, teacher = hopper_data(), HopperTeacher()
    d = tiny_config(init="teacher", n_syn=8, init_max_steps=3).create(data, teacher, progress=False)
    first, env, early = teacher_rollout_seed(d.config.seed, TEACHER_MAX_EPISODES), make_env("hopper"), []
    for e in range(TEACHER_EPISODES):
        obs = env.reset(seed=first + e)[0]
        for _ in range(3):
            early.append(obs)
            obs = env.step(teacher.act(obs[None]).numpy()[0])[0]
    env.close()
    early = np.asarray(data.normalizer.normalize(np.asarray(early, np.float32)), np.float32)
    states = d.states.detach().numpy()
    assert all(np.any(np.all(np.isclose(early, s, atol=1e-5), axis=1)) for s in states)
    assert len({tuple(s) for s in states.round(5)}) == 8


def test_init_noise_plays_the_teachers_action_plus_seeded_gaussian_noise_and_labels_without_it():
    from obd.distill.init import TEACHER_MAX_EPISODES
    from obd.distill.onpolicy import teacher_visits

    class ZeroTeacher:
        def act(self, obs):
            return torch.zeros(len(obs), ACT)

    # the actions played are exactly sigma x the generator seeded by the first episode's seed (clipped)
    sigma, first, env = 0.2, 11, make_env("hopper")
    rng, obs, done, seen = np.random.default_rng(first), env.reset(seed=first)[0], False, []
    while not done:
        seen.append(obs)
        action = np.clip(sigma * rng.standard_normal((1, ACT)), -1, 1)[0]
        obs, _, term, trunc, _ = env.step(action)
        done = term or trunc
    env.close()
    np.testing.assert_allclose(teacher_visits(ZeroTeacher(), "hopper", 1, first, action_noise=sigma),
                               np.asarray(seen, np.float32), atol=1e-5)

    data, teacher = hopper_data(), HopperTeacher()
    d = tiny_config(init="teacher", n_syn=8, init_noise=0.3).create(data, teacher, progress=False)
    states, actions = d.states.detach().numpy(), d.actions.detach().numpy()
    noisy = teacher_visits(teacher, "hopper", 5, teacher_rollout_seed(d.config.seed, TEACHER_MAX_EPISODES),
                           action_noise=0.3)
    noisy = np.asarray(data.normalizer.normalize(noisy), np.float32)
    assert all(np.any(np.all(np.isclose(noisy, s, atol=1e-5), axis=1)) for s in states)
    # labelled by the teacher's own (noise-free) action at each visited state
    raw = data.normalizer.denormalize(torch.as_tensor(states)).numpy()
    np.testing.assert_allclose(actions, teacher.act(raw).numpy(), atol=1e-5)
    plain = tiny_config(init="teacher", n_syn=8).create(data, teacher, progress=False)
    assert not torch.equal(plain.states, d.states)
    again = tiny_config(init="teacher", n_syn=8, init_noise=0.3).create(data, teacher, progress=False)
    assert torch.equal(again.states, d.states) and torch.equal(again.actions, d.actions)


@pytest.mark.parametrize("kw, key, match", [
    ({"init_share": 0.0, "init": "teacher"}, "init_share", r"expected a number in \(0, 1\]"),
    ({"init_share": 0.5}, "init_share", "only with init=teacher, got init=random"),
    ({"init_max_steps": -1, "init": "teacher"}, "init_max_steps", "expected an integer >= 0"),
    ({"init_max_steps": 200}, "init_max_steps", "only with init=teacher, got init=random"),
    ({"init_noise": -0.1, "init": "teacher"}, "init_noise", "expected a number >= 0"),
    ({"init_noise": float("nan"), "init": "teacher"}, "init_noise", "expected a finite number"),
    ({"init_noise": 0.2}, "init_noise", "only with init=teacher, got init=random")])
def test_the_teacher_inits_keys_are_checked(kw, key, match):
    with pytest.raises(ObdError, match=f"^config key '{key}': .*{match}"):
        tiny_config(**kw).validate()


def test_the_small_and_quickstart_presets_avpbc_start_half_the_set_on_the_teachers_states():
    from obd.config import load_config
    from obd.distill import DistillConfig

    for name in ("small_avpbc", "quickstart"):
        avpbc = load_config(DistillConfig, name)
        assert (avpbc.init, avpbc.init_share, avpbc.init_fallback) == ("teacher", 0.5, "random"), name
    for name in ("small_sdw", "small_pbc", "small_dbc", "fast", "paper"):
        assert load_config(DistillConfig, name).init == "random", name


def test_init_teacher_needs_a_task_to_roll_the_teacher_out_in():
    with pytest.raises(ObdError, match="^config key 'init': 'teacher' rolls the teacher out .* names none"):
        tiny_config(init="teacher").create(hopper_data(task=None), HopperTeacher(), progress=False)


def test_init_fallback_starts_from_the_data_where_the_teacher_cannot_be_rolled_out(capsys):
    data = hopper_data(task=None)
    d = tiny_config(init="teacher", init_fallback="random").create(data, HopperTeacher(), progress=False)
    assert "note: config key 'init': 'teacher'" in capsys.readouterr().err
    plain = tiny_config(init="random").create(data, HopperTeacher(), progress=False)
    torch.testing.assert_close(d.states, plain.states)
    # with a simulator the fallback is not used
    rolled = tiny_config(init="teacher", init_fallback="random").create(hopper_data(), HopperTeacher(), progress=False)
    assert not torch.equal(rolled.states, plain.states)
