"""Cal-QL: Monte-Carlo returns-to-go, the calibrated CQL gap against hand-computed values, conservatism on a
tiny dataset, the teacher file and exact resume (tiny nets, hopper dims)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from obd.data import TransitionDataset
from obd.nn import EnsembleQ, orthogonal_init_
from obd.teachers import CalQL, CalQLConfig, RunConfig, Teacher, train_teacher
from obd.teachers.calql import calibrated_cql_gap
from obd.teachers.training import OfflineData, returns_to_go
from tests.test_teachers import ACT, OBS, SMALL, _Killed, run_updates, tiny_dataset

torch.set_num_threads(1)


def small_cfg(**kw) -> CalQLConfig:
    return CalQLConfig(**{"batch_size": 64, "actor_hidden": SMALL, "critic_hidden": SMALL, "cql_n_actions": 4, **kw})


def test_returns_to_go_by_hand_terminal_and_timeout_episodes():
    # episode 0 (0..2) times out, episode 1 (3..4) ends in a terminal, episode 2 (5) is cut by the data's end
    rewards = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    terminals = np.array([0, 0, 0, 0, 1, 0], bool)
    g = returns_to_go(rewards, np.array([0, 3, 5]), terminals, discount=0.5)
    np.testing.assert_allclose(g, [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3, 4 + 0.5 * 5, 5, 6])
    # a terminal inside a recorded episode ends the return there too (CORL resets at every done)
    g = returns_to_go(rewards, np.array([0]), np.array([0, 1, 0, 0, 0, 0], bool), discount=0.5)
    np.testing.assert_allclose(g, [1 + 0.5 * 2, 2, 3 + 0.5 * 4 + 0.25 * 5 + 0.125 * 6, 4 + 0.5 * 5 + 0.25 * 6,
                                   5 + 0.5 * 6, 6])


def test_returns_to_go_matches_a_python_loop_on_long_ragged_episodes():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 1200, size=40)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    n = int(lengths.sum())
    rewards = rng.normal(size=n)
    terminals = np.zeros(n, bool)
    terminals[starts[1::3] - 1] = True
    ref = np.zeros(n)
    ends = set((starts[1:] - 1).tolist()) | {n - 1}
    after = 0.0
    for t in reversed(range(n)):
        after = rewards[t] + (0.0 if (t in ends or terminals[t]) else 0.99 * after)
        ref[t] = after
    np.testing.assert_allclose(returns_to_go(rewards, starts, terminals, 0.99), ref, rtol=1e-10, atol=1e-10)


def test_offline_data_returns_to_go_use_the_training_reward_scale():
    data = tiny_dataset()
    batches = OfflineData(data, torch.device("cpu"), reward_scale=2.0, mc_discount=0.99)
    mc = batches.packed[:, -1].double()
    ref = returns_to_go(2.0 * data.rewards.astype(np.float64), data.episode_starts, data.terminals, 0.99)
    np.testing.assert_allclose(mc.numpy(), ref, rtol=1e-5, atol=1e-4)
    fields = batches.sample(8, torch.Generator().manual_seed(0))
    assert [tuple(f.shape) for f in fields] == [(8, OBS), (8, ACT), (8,), (8, OBS), (8,), (8,)]


def _lse(*xs: float) -> float:
    return math.log(sum(math.exp(x) for x in xs))


def test_calibrated_cql_gap_by_hand():
    # one critic, one sample per kind, two states; Q~ = max(Q, G) for the policy's actions only
    q_data = torch.tensor([[1.0, 2.0]])
    q_rand = torch.tensor([[[0.0, 0.0]]])
    q_pi = torch.tensor([[[0.5, 3.0]]])
    q_pi_next = torch.tensor([[[-1.0, 1.0]]])
    logp_pi, logp_next = torch.tensor([[-0.3, 0.2]]), torch.tensor([[0.1, -0.4]])
    mc = torch.tensor([2.0, 0.5])
    plain = CalQLConfig(cql_importance_sample=False)
    gap = calibrated_cql_gap(q_data, q_rand, q_pi, q_pi_next, logp_pi, logp_next, mc, 1, plain)
    expect = ((_lse(0.0, 1.0, 2.0, 2.0) - 1.0) + (_lse(0.0, 2.0, 1.0, 3.0) - 2.0)) / 2
    assert gap.shape == (1,) and gap.item() == pytest.approx(expect, rel=1e-6)
    uncal = calibrated_cql_gap(q_data, q_rand, q_pi, q_pi_next, logp_pi, logp_next, None, 1, plain)
    expect = ((_lse(0.0, 1.0, -1.0, 0.5) - 1.0) + (_lse(0.0, 2.0, 1.0, 3.0) - 2.0)) / 2
    assert uncal.item() == pytest.approx(expect, rel=1e-6)
    # importance sampling (CORL's default): uniform density 0.5 per action dim, policy terms minus log pi
    act_dim, l2 = 3, 3 * math.log(2.0)
    gap = calibrated_cql_gap(q_data, q_rand, q_pi, q_pi_next, logp_pi, logp_next, mc, act_dim, CalQLConfig())
    expect = ((_lse(l2, 2.0 - 0.1, 2.0 + 0.3) - 1.0) + (_lse(l2, 1.0 + 0.4, 3.0 - 0.2) - 2.0)) / 2
    assert gap.item() == pytest.approx(expect, rel=1e-6)
    clipped = calibrated_cql_gap(q_data, q_rand, q_pi, q_pi_next, logp_pi, logp_next, mc, act_dim,
                                 CalQLConfig(cql_clip_diff_max=0.5))
    assert clipped.item() == pytest.approx((0.5 + min(0.5, _lse(l2, 1.4, 2.8) - 2.0)) / 2, rel=1e-6)


def test_orthogonal_init_of_ensemble_members():
    q = orthogonal_init_(EnsembleQ(OBS, ACT, SMALL, ensemble=2))
    for layer in q.linear_layers():
        assert bool((layer.bias == 0).all())
        for w in layer.weight:                      # (in, out): the smaller side is orthonormal times gain^2 = 2
            gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
            assert torch.allclose(gram, 2.0 * torch.eye(gram.shape[0]), atol=1e-4)
    assert not torch.equal(q.linear_layers()[1].weight[0], q.linear_layers()[1].weight[1])


def test_calql_makes_dataset_actions_look_better_than_random_ones():
    torch.manual_seed(0)
    data = tiny_dataset()
    algo = CalQL(small_cfg(qf_lr=1e-3), OBS, ACT, torch.device("cpu"), 300)
    hist = run_updates(algo, data, 300)
    assert {"critic_loss", "td_loss", "cql_gap", "actor_loss", "alpha", "bound_rate"} <= set(hist)
    assert all(math.isfinite(v) for v in hist["critic_loss"])
    s = torch.from_numpy(data.normalizer.normalize(data.observations))
    with torch.no_grad():
        q_data = algo.critic(s, torch.from_numpy(data.actions)).mean(1)
        q_rand = algo.critic(s, torch.rand(len(data), ACT) * 2 - 1).mean(1)
    assert bool((q_data > q_rand + 0.5).all()), (q_data, q_rand)     # both critics
    assert hist["alpha"][-1] < hist["alpha"][0]          # the temperature is tuned (CORL: automatic)


def test_calql_teacher_file_is_a_normal_stochastic_teacher(tmp_path):
    torch.manual_seed(2)
    data = tiny_dataset()
    algo = CalQL(small_cfg(policy_lr=1e-2), OBS, ACT, torch.device("cpu"), 30)
    run_updates(algo, data, 30)
    assert algo.actor.log_std_offset.item() != -1.0      # the log-std affine is learned (CORL's Scalar)
    teacher = algo.teacher(data.normalizer, "hopper", {"training_steps": 30})
    teacher.save(tmp_path / "t.pt")
    loaded = Teacher.load(tmp_path / "t.pt")
    states = data.observations[:20]
    assert loaded.metadata["algo"] == "calql" and loaded.stochastic
    assert loaded.state()["arch"]["actor"]["hidden"] == list(SMALL)
    m, s = loaded.mean_std(states)
    m0, s0 = teacher.mean_std(states)
    assert torch.equal(m, m0) and torch.equal(s, s0)
    assert torch.equal(loaded.q(states, data.actions[:20]), teacher.q(states, data.actions[:20]))


def test_calql_resume_after_kill_matches_uninterrupted_run(tmp_path):
    class KilledCalQL(CalQL):
        def update(self, *batch):
            if self.total_it == 27:
                raise _Killed
            return super().update(*batch)

    data = tiny_dataset()
    cfg = small_cfg(batch_size=32)
    run = RunConfig(dataset="tiny", algo="calql", steps=40, eval_every=0, checkpoint_every=20, log_every=5,
                    device="cpu")
    ref = train_teacher(CalQL, cfg, data, run, tmp_path / "ref", progress=False)
    with pytest.raises(_Killed):
        train_teacher(KilledCalQL, cfg, data, run, tmp_path / "run", progress=False)
    resumed = train_teacher(CalQL, cfg, data, run, tmp_path / "run", resume=True, progress=False)
    for a, b in ((ref.actor, resumed.actor), (ref.critic, resumed.critic)):
        for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), k
    ck_ref = torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=True)["algo"]
    ck_run = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["algo"]
    assert torch.equal(ck_ref["log_alpha"], ck_run["log_alpha"]) and ck_run["total_it"] == 40


def test_calql_needs_episode_boundaries_only_from_the_dataset():
    d = tiny_dataset(n=200, episodes=2)
    one = TransitionDataset(d.observations, d.actions, np.ones(200), d.next_observations, np.zeros(200, bool),
                            np.array([0, 150]), task="hopper", source="x")
    mc = OfflineData(one, torch.device("cpu"), 1.0, 0.9).packed[:, -1]
    assert mc[149].item() == pytest.approx(1.0) and mc[150].item() == pytest.approx((1 - 0.9 ** 50) / 0.1, rel=1e-5)


def test_calql_update_losses_equal_corls_formulas_on_the_same_samples():
    """The fused update against CORL's per-critic, per-action-kind formulation, written independently here
    (torch.distributions for the log-densities), replaying the update's own random draws."""
    from torch.distributions import Normal, TanhTransform

    from obd.nn import EnsembleLinear

    torch.manual_seed(5)
    data = tiny_dataset()
    cfg = small_cfg(batch_size=16, cql_n_actions=3)
    algo = CalQL(cfg, OBS, ACT, torch.device("cpu"), 10)
    obs, act, rew, next_obs, not_done, mc = OfflineData(data, torch.device("cpu"), 1.0, cfg.discount).sample(
        16, torch.Generator().manual_seed(1))
    mc = torch.where(torch.arange(16) % 2 == 0, mc, torch.full_like(mc, -100.0))   # half the bounds inactive
    actor, critic, target = (copy_of(m) for m in (algo.actor, algo.critic, algo.critic_target))
    rng = torch.get_rng_state()
    out = algo.update(obs, act, rew, next_obs, not_done, mc)

    torch.set_rng_state(rng)
    n, b = cfg.cql_n_actions, 16

    def member(net, i, s, a):                       # critic i alone, as a CORL FullyConnectedQFunction
        x = torch.cat([s, a], -1)
        layers = [m for m in net.net if isinstance(m, EnsembleLinear)]
        for j, m in enumerate(layers):
            x = x @ m.weight[i] + m.bias[i]
            x = torch.relu(x) if j < len(layers) - 1 else x
        return x.squeeze(-1)

    with torch.no_grad():
        mean, log_std = actor(torch.cat([obs, next_obs]))
        pre = mean + log_std.exp() * torch.randn((1 + n, 2 * b, ACT))
        a = torch.tanh(pre)
        logp = (Normal(mean, log_std.exp()).log_prob(pre) - TanhTransform().log_abs_det_jacobian(pre, a)).sum(-1)
        uniform = torch.rand((n, b, ACT)) * 2 - 1
        y = rew + not_done * cfg.discount * torch.min(member(target, 0, next_obs, a[0, b:]),
                                                      member(target, 1, next_obs, a[0, b:]))
        critic_loss = 0.0
        for i in range(2):
            q = member(critic, i, obs, act)
            rand = torch.stack([member(critic, i, obs, uniform[k]) for k in range(n)], 1) - ACT * math.log(0.5)
            cur = torch.stack([torch.maximum(member(critic, i, obs, a[1 + k, :b]), mc) - logp[1 + k, :b]
                               for k in range(n)], 1)
            nxt = torch.stack([torch.maximum(member(critic, i, obs, a[1 + k, b:]), mc) - logp[1 + k, b:]
                               for k in range(n)], 1)
            gap = (torch.logsumexp(torch.cat([rand, nxt, cur], 1), 1) - q).mean()
            critic_loss = critic_loss + ((q - y) ** 2).mean() + cfg.cql_alpha * gap
        q_pi = torch.min(member(critic, 0, obs, a[0, :b]), member(critic, 1, obs, a[0, :b]))
        policy_loss = (1.0 * logp[0, :b] - q_pi).mean()   # alpha = exp(log_alpha = 0) * alpha_multiplier 1
    assert out["critic_loss"].item() == pytest.approx(critic_loss.item(), rel=1e-5)
    assert out["actor_loss"].item() == pytest.approx(policy_loss.item(), rel=1e-5, abs=1e-5)


def copy_of(module: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(module).requires_grad_(False)
