"""Teachers: TD3+BC / IQL training, the Teacher file, resumable runs (tiny nets, hopper dims)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from obd.data import TransitionDataset
from obd.errors import ObdError
from obd.teachers import IQL, TD3BC, IQLConfig, RunConfig, TD3BCConfig, Teacher, train_teacher

torch.set_num_threads(1)
OBS, ACT = 11, 3
SMALL = (32, 32)


def tiny_dataset(n: int = 400, episodes: int = 4, seed: int = 0) -> TransitionDataset:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, OBS)).astype(np.float32) * 2 + 1
    w = rng.normal(size=(OBS, ACT)).astype(np.float32) / np.sqrt(OBS)
    act = np.tanh(obs @ w + 0.1 * rng.normal(size=(n, ACT))).astype(np.float32)   # a learnable behavior policy
    rew = (obs[:, 0] + act[:, 0]).astype(np.float32)   # learnable: a function of (s, a)
    terminals = np.zeros(n, bool)
    terminals[n // episodes - 1] = True
    return TransitionDataset(obs, act, rew, rng.normal(size=(n, OBS)).astype(np.float32), terminals,
                             np.arange(0, n, n // episodes), task="hopper", source="tiny")


def run_updates(algo, data, steps: int) -> dict[str, list[float]]:
    from obd.teachers.training import OfflineData, reward_scale

    batches = OfflineData(data, torch.device("cpu"), reward_scale(data, algo.cfg.normalize_reward),
                          algo.cfg.discount if algo.uses_mc_returns else None)
    gen = torch.Generator().manual_seed(0)
    hist: dict[str, list[float]] = {}
    for _ in range(steps):
        for k, v in algo.update(*batches.sample(64, gen)).items():
            hist.setdefault(k, []).append(float(v))
    return hist


def early_late(xs: list[float], k: int = 30) -> tuple[float, float]:
    return float(np.mean(xs[:k])), float(np.mean(xs[-k:]))


def test_td3bc_losses_go_down():
    torch.manual_seed(0)
    algo = TD3BC(TD3BCConfig(hidden=SMALL, batch_size=64, actor_lr=1e-3, critic_lr=1e-3), OBS, ACT,
                 torch.device("cpu"), 300)
    hist = run_updates(algo, tiny_dataset(), 300)
    assert len(hist["bc_loss"]) == 150            # actor updated every policy_freq = 2 steps
    for key in ("critic_loss", "bc_loss"):
        first, last = early_late(hist[key])
        assert last < 0.7 * first, (key, first, last)


def test_iql_losses_go_down():
    torch.manual_seed(0)
    algo = IQL(IQLConfig(hidden=SMALL, batch_size=64, qf_lr=1e-3, normalize_reward=False), OBS, ACT,
               torch.device("cpu"), 300)
    hist = run_updates(algo, tiny_dataset(), 300)
    for key in ("critic_loss", "bc_nll"):
        first, last = early_late(hist[key])
        assert last < 0.8 * first, (key, first, last)
    assert algo.actor_opt.param_groups[0]["lr"] < 1e-6   # cosine schedule annealed to 0 over the 300 steps


def test_ensemble_q1_is_first_member():
    from obd.nn import EnsembleQ

    q = EnsembleQ(OBS, ACT, SMALL, ensemble=2)
    s, a = torch.randn(16, OBS), torch.rand(16, ACT)
    both = q(s, a)
    assert both.shape == (2, 16)
    assert torch.allclose(q.q1(s, a), both[0], atol=1e-6) and not torch.allclose(both[0], both[1])


def test_reward_scale_is_corl_locomotion_rule():
    from obd.teachers.training import reward_scale

    d = tiny_dataset(n=300, episodes=3)
    d.rewards[:] = 0.0
    d.rewards[[0, 100, 200]] = [100.0, 600.0, 350.0]     # episode returns 100, 600, 350
    assert reward_scale(d, normalize=True) == pytest.approx(2.0)
    assert reward_scale(d, normalize=False) == 1.0
    assert IQLConfig().normalize_reward and not TD3BCConfig().normalize_reward


@pytest.mark.parametrize("algo_cls,cfg_cls", [(TD3BC, TD3BCConfig), (IQL, IQLConfig)])
def test_teacher_save_load_identical(tmp_path, algo_cls, cfg_cls):
    torch.manual_seed(1)
    data = tiny_dataset()
    algo = algo_cls(cfg_cls(hidden=SMALL, batch_size=64), OBS, ACT, torch.device("cpu"), 20)
    run_updates(algo, data, 20)
    teacher = algo.teacher(data.normalizer, "hopper", {"dataset": "tiny", "training_steps": 20})
    path = tmp_path / "t.pt"
    teacher.save(path)
    raw = torch.load(path, weights_only=True)       # portable: plain tensors and dicts only
    assert raw["metadata"]["algo"] == algo.name and raw["metadata"]["obd_version"]
    loaded = Teacher.load(path, device="cpu")
    states = data.observations[:50]
    assert loaded.task == "hopper" and loaded.metadata["training_steps"] == 20
    assert (loaded.obs_dim, loaded.act_dim) == (OBS, ACT)
    assert torch.equal(loaded.act(states), teacher.act(states))
    assert torch.equal(loaded.q(states, data.actions[:50]), teacher.q(torch.from_numpy(states), data.actions[:50]))
    assert loaded.q(states, data.actions[:50]).shape == (50,)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(loaded.sample(states, g1), teacher.sample(states, g2))
    # the teacher normalizes raw states itself: same as the actor applied to normalized states
    mean, _ = algo.actor(torch.from_numpy(data.normalizer.normalize(states)))
    assert torch.allclose(loaded.act(states), torch.tanh(mean), atol=1e-6)
    if algo_cls is TD3BC:
        assert not loaded.stochastic
        assert torch.equal(loaded.sample(states), loaded.act(states))
        with pytest.raises(ObdError, match="deterministic"):
            loaded.mean_std(states)
    else:
        assert loaded.stochastic
        m, s = loaded.mean_std(states)
        m0, s0 = teacher.mean_std(states)
        assert torch.equal(m, m0) and torch.equal(s, s0) and bool((s > 0).all())
        assert not torch.equal(loaded.sample(states), loaded.act(states))


def test_teacher_bad_inputs(tmp_path):
    data = tiny_dataset()
    algo = TD3BC(TD3BCConfig(hidden=SMALL), OBS, ACT, torch.device("cpu"), 10)
    teacher = algo.teacher(data.normalizer, "hopper", {})
    with pytest.raises(ObdError, match=r"observations should have shape \(B, 11\)"):
        teacher.act(np.zeros((4, 17)))
    with pytest.raises(ObdError, match=r"actions should have shape"):
        teacher.q(np.zeros((4, OBS)), np.zeros((4, 6)))
    with pytest.raises(ObdError, match="not found"):
        Teacher.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ObdError, match="junk.pt: not a readable teacher file"):
        Teacher.load(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ObdError, match="not an obd teacher file"):
        Teacher.load(tmp_path / "other.pt")
    st = teacher.state()
    st["actor"]["net.0.weight"] = torch.zeros(5, 5)
    torch.save(st, tmp_path / "shape.pt")
    with pytest.raises(ObdError, match=r"actor: tensor 'net.0.weight' has shape \(5, 5\), expected \(32, 11\)"):
        Teacher.load(tmp_path / "shape.pt")
    st = teacher.state()
    st["normalizer"]["mean"] = torch.zeros(4)
    st["normalizer"]["std"] = torch.ones(4)
    torch.save(st, tmp_path / "norm.pt")
    with pytest.raises(ObdError, match="normalizer has 4 dims but states have 11"):
        Teacher.load(tmp_path / "norm.pt")
    with pytest.raises(ObdError, match="device 'gpu7'"):
        teacher.to("gpu7")


class _Killed(Exception):
    pass


def _killed_at(kill_step: int):
    class KilledTD3BC(TD3BC):
        def update(self, *batch):
            if self.total_it == kill_step:
                raise _Killed
            return super().update(*batch)
    return KilledTD3BC


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    data = tiny_dataset()
    cfg = TD3BCConfig(hidden=SMALL, batch_size=32)
    run = RunConfig(dataset="tiny", algo="td3bc", steps=60, eval_every=0, checkpoint_every=20, log_every=5,
                    device="cpu")
    ref = train_teacher(TD3BC, cfg, data, run, tmp_path / "ref", progress=False)
    with pytest.raises(_Killed):
        train_teacher(_killed_at(47), cfg, data, run, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "teacher.pt").exists()
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 40
    resumed = train_teacher(TD3BC, cfg, data, run, tmp_path / "run", resume=True, progress=False)
    for a, b in zip(ref.actor.state_dict().values(), resumed.actor.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(ref.critic.state_dict().values(), resumed.critic.state_dict().values()):
        assert torch.equal(a, b)
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(5, 61, 5))           # the killed tail (step 45) was dropped, not duplicated
    assert Teacher.load(tmp_path / "run" / "teacher.pt").metadata["training_steps"] == 60
    with pytest.raises(ObdError, match="td3bc.alpha=1.0 but the run started with 2.5"):
        train_teacher(TD3BC, TD3BCConfig(hidden=SMALL, batch_size=32, alpha=1.0), data, run, tmp_path / "run",
                      resume=True, progress=False)


def test_training_run_evaluates_and_writes_teacher(tmp_path):
    data = tiny_dataset()
    run = RunConfig(dataset="tiny", algo="iql", steps=20, eval_every=10, eval_episodes=2, eval_max_steps=30,
                    checkpoint_every=10, log_every=10, device="cpu")
    teacher = train_teacher(IQL, IQLConfig(hidden=SMALL, batch_size=32), data, run, tmp_path, progress=False)
    rows = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "normalized_score" in r]
    assert [r["step"] for r in evals] == [10, 20]
    assert all(0 < r["episode_length_mean"] <= 30 for r in evals)
    assert {"critic_loss", "value_loss", "actor_loss", "updates_per_sec"} <= set(rows[0])
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert cfg["run"]["algo"] == "iql" and cfg["iql"]["beta"] == 3.0 and cfg["iql"]["hidden"] == list(SMALL)
    meta = Teacher.load(tmp_path / "teacher.pt").metadata
    assert meta["normalized_score"] == pytest.approx(evals[-1]["normalized_score"])
    assert meta["task"] == "hopper" and meta["env_id"] == "Hopper-v5" and meta["dataset"] == "tiny"
    returns = np.add.reduceat(data.rewards, data.episode_starts)
    assert meta["reward_scale"] == pytest.approx(1000.0 / float(np.ptp(returns)), rel=1e-5)
    assert teacher.metadata["training_steps"] == 20


def test_unknown_task_cannot_evaluate(tmp_path):
    d = tiny_dataset()
    data = TransitionDataset(d.observations[:, :5], d.actions, d.rewards, d.next_observations[:, :5], d.terminals,
                             d.episode_starts, source="mystery")
    run = RunConfig(dataset="mystery", steps=5, eval_every=5, device="cpu")
    with pytest.raises(ObdError, match="task unknown"):
        train_teacher(TD3BC, TD3BCConfig(hidden=SMALL), data, run, tmp_path, progress=False)


def test_select_best_ships_the_best_evaluated_policy_with_a_fresh_score(tmp_path):
    data = tiny_dataset()
    cfg = TD3BCConfig(hidden=SMALL, batch_size=32)
    run = RunConfig(dataset="tiny", algo="td3bc", steps=40, eval_every=10, eval_episodes=2, eval_max_steps=30,
                    checkpoint_every=10, log_every=10, device="cpu", select="best")
    teacher = train_teacher(TD3BC, cfg, data, run, tmp_path / "a", progress=False)
    rows = [json.loads(ln) for ln in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "normalized_score" in r]
    best = max(evals, key=lambda r: r["normalized_score"])  # the first of equal scores is kept
    meta = Teacher.load(tmp_path / "a" / "teacher.pt").metadata
    assert meta["selected_step"] == best["step"] == teacher.metadata["selected_step"]
    assert meta["selection_normalized_score"] == pytest.approx(best["normalized_score"])
    assert meta["final_step"] == 40 and meta["final_normalized_score"] == pytest.approx(evals[-1]["normalized_score"])
    assert rows[-1]["selected_step"] == best["step"] and rows[-1]["fresh_normalized_score"] == meta["normalized_score"]
    # the shipped weights are those of the selected evaluation, not the final ones
    final = train_teacher(TD3BC, cfg, data, RunConfig(**{**run.__dict__, "select": "final"}), tmp_path / "b",
                          progress=False)
    obs = torch.as_tensor(data.observations[:8])
    same = torch.equal(teacher.act(obs), final.act(obs))
    assert same == (best["step"] == 40)
    with pytest.raises(ObdError, match="--select"):
        train_teacher(TD3BC, cfg, data, RunConfig(**{**run.__dict__, "select": "worst"}), tmp_path / "c",
                      progress=False)
