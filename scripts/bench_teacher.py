"""Gradient updates per second of obd's teacher algorithms against a plain CORL-style update loop, side by side.

    python scripts/bench_teacher.py [--algo td3bc|iql|calql|all] [--device cpu|cuda|auto] [--steps N]
        [--threads T] [--json]

Both sides run the same algorithm, hyperparameters and network sizes (CORL's defaults; hopper dims 11 / 3,
batch 256) on 100k random transitions already on the device. "ours" is the obd update fed by
``OfflineData.sample``. "corl" is the update written the way CORL's single-file scripts write it, inside
this module: one ``nn.Sequential`` of ``nn.Linear`` per critic with its own Adam, a Python loop of
``copy_`` for the target update, indices drawn by numpy and one gather per field, and every logged loss
read with ``.item()`` each step. The two alternate in blocks of ``--block`` updates, so load from other
processes on a shared machine slows both alike. ``per_cpu_sec`` divides by this process's CPU time
instead of wall time.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal, TanhTransform, TransformedDistribution

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from obd.data import TransitionDataset  # noqa: E402
from obd.device import resolve_device  # noqa: E402
from obd.errors import ObdError, cli_entry  # noqa: E402
from obd.teachers import ALGOS  # noqa: E402
from obd.teachers.training import OfflineData  # noqa: E402

OBS, ACT, N = 11, 3, 100_000


def bench_data() -> TransitionDataset:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(N, OBS)).astype(np.float32)
    terminals = np.zeros(N, bool)
    terminals[499::1000] = True
    return TransitionDataset(obs, np.tanh(rng.normal(size=(N, ACT))), rng.normal(size=N), obs + 0.1, terminals,
                             np.arange(0, N, 1000), task="hopper", source="bench")


# ---------------------------------------------------------------------- the CORL-style reference loops
def corl_mlp(d_in: int, hidden: tuple[int, ...], d_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(d_in, h), nn.ReLU()]
        d_in = h
    return nn.Sequential(*layers, nn.Linear(d_in, d_out))


class CorlQ(nn.Module):
    def __init__(self, hidden: tuple[int, ...]):
        super().__init__()
        self.net = corl_mlp(OBS + ACT, hidden, 1)

    def forward(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        if a.ndim == 3:   # (B, n, act): CORL repeats each state n times
            b, n = a.shape[:2]
            return self.net(torch.cat([s.unsqueeze(1).repeat_interleave(n, 1), a], -1).reshape(b * n, -1)).reshape(b, n)
        return self.net(torch.cat([s, a], -1)).squeeze(-1)


def corl_soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    for tp, sp in zip(target.parameters(), source.parameters()):
        tp.data.copy_((1 - tau) * tp.data + tau * sp.data)


class CorlBuffer:
    def __init__(self, data: TransitionDataset, device: torch.device, mc_discount: float | None):
        ref = OfflineData(data, device, 1.0, mc_discount)
        cols = ref.packed.split(ref.widths, dim=1)
        self.fields = [c.contiguous() for c in cols]   # states, actions, rewards (N,1), next_states, not_done, [mc]
        self.fields[4] = 1.0 - self.fields[4]          # CORL stores dones
        self.size, self.device = len(data), device

    def sample(self, batch: int) -> list[torch.Tensor]:
        idx = torch.as_tensor(np.random.randint(0, self.size, size=batch), device=self.device)
        return [f[idx] for f in self.fields]


def corl_td3bc(cfg, device: torch.device, buf: CorlBuffer) -> Callable[[], dict]:
    actor = nn.Sequential(corl_mlp(OBS, cfg.hidden, ACT), nn.Tanh()).to(device)
    actor_t = copy.deepcopy(actor)
    q1, q2 = CorlQ(cfg.hidden).to(device), CorlQ(cfg.hidden).to(device)
    q1_t, q2_t = copy.deepcopy(q1), copy.deepcopy(q2)
    a_opt = torch.optim.Adam(actor.parameters(), cfg.actor_lr)
    q1_opt, q2_opt = torch.optim.Adam(q1.parameters(), cfg.critic_lr), torch.optim.Adam(q2.parameters(), cfg.critic_lr)
    it = [0]

    def train() -> dict:
        s, a, r, s2, d = buf.sample(cfg.batch_size)
        r, d = r.squeeze(-1), d.squeeze(-1)
        it[0] += 1
        log = {}
        with torch.no_grad():
            noise = (torch.randn_like(a) * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
            a2 = (actor_t(s2) + noise).clamp(-1, 1)
            y = r + (1 - d) * cfg.discount * torch.min(q1_t(s2, a2), q2_t(s2, a2))
        loss = F.mse_loss(q1(s, a), y) + F.mse_loss(q2(s, a), y)
        log["critic_loss"] = loss.item()
        q1_opt.zero_grad()
        q2_opt.zero_grad()
        loss.backward()
        q1_opt.step()
        q2_opt.step()
        if it[0] % cfg.policy_freq == 0:
            pi = actor(s)
            q = q1(s, pi)
            actor_loss = -cfg.alpha / q.abs().mean().detach() * q.mean() + F.mse_loss(pi, a)
            log["actor_loss"] = actor_loss.item()
            a_opt.zero_grad()
            actor_loss.backward()
            a_opt.step()
            for t, m in ((q1_t, q1), (q2_t, q2), (actor_t, actor)):
                corl_soft_update(t, m, cfg.tau)
        return log
    return train


def corl_iql(cfg, device: torch.device, buf: CorlBuffer, total: int) -> Callable[[], dict]:
    q1, q2 = CorlQ(cfg.hidden).to(device), CorlQ(cfg.hidden).to(device)
    q1_t, q2_t = copy.deepcopy(q1), copy.deepcopy(q2)
    v = corl_mlp(OBS, cfg.hidden, 1).to(device)
    actor = corl_mlp(OBS, cfg.hidden, ACT).to(device)
    log_std = nn.Parameter(torch.zeros(ACT, device=device))
    q_opt = torch.optim.Adam([*q1.parameters(), *q2.parameters()], cfg.qf_lr)
    v_opt = torch.optim.Adam(v.parameters(), cfg.vf_lr)
    a_opt = torch.optim.Adam([*actor.parameters(), log_std], cfg.actor_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(a_opt, total)

    def train() -> dict:
        s, a, r, s2, d = buf.sample(cfg.batch_size)
        r, d = r.squeeze(-1), d.squeeze(-1)
        log = {}
        with torch.no_grad():
            target_q = torch.min(q1_t(s, a), q2_t(s, a))
            next_v = v(s2).squeeze(-1)
        adv = target_q - v(s).squeeze(-1)
        v_loss = torch.mean(torch.abs(cfg.iql_tau - (adv < 0).float()) * adv ** 2)
        log["value_loss"] = v_loss.item()
        v_opt.zero_grad()
        v_loss.backward()
        v_opt.step()
        y = r + (1 - d) * cfg.discount * next_v
        q_loss = (F.mse_loss(q1(s, a), y) + F.mse_loss(q2(s, a), y)) / 2
        log["q_loss"] = q_loss.item()
        q_opt.zero_grad()
        q_loss.backward()
        q_opt.step()
        corl_soft_update(q1_t, q1, cfg.tau)
        corl_soft_update(q2_t, q2, cfg.tau)
        w = torch.exp(cfg.beta * adv.detach()).clamp(max=cfg.exp_adv_max)
        dist = Normal(torch.tanh(actor(s)), log_std.clamp(-20, 2).exp())
        actor_loss = torch.mean(w * -dist.log_prob(a).sum(-1))
        log["actor_loss"] = actor_loss.item()
        a_opt.zero_grad()
        actor_loss.backward()
        a_opt.step()
        sched.step()
        return log
    return train


def corl_calql(cfg, device: torch.device, buf: CorlBuffer) -> Callable[[], dict]:
    net = corl_mlp(OBS, cfg.actor_hidden, 2 * ACT).to(device)
    mult = nn.Parameter(torch.tensor(1.0, device=device))
    offset = nn.Parameter(torch.tensor(cfg.log_std_offset, device=device))

    def actor(s: torch.Tensor, repeat: int | None = None):
        if repeat is not None:
            s = s.unsqueeze(1).repeat_interleave(repeat, 1)
        mean, ls = torch.split(net(s), ACT, dim=-1)
        std = (mult * ls + offset).clamp(-20, 2).exp()
        dist = TransformedDistribution(Normal(mean, std), TanhTransform(cache_size=1))
        x = dist.rsample()
        return x, dist.log_prob(x).sum(-1)

    q1, q2 = CorlQ(cfg.critic_hidden).to(device), CorlQ(cfg.critic_hidden).to(device)
    q1_t, q2_t = copy.deepcopy(q1), copy.deepcopy(q2)
    a_opt = torch.optim.Adam([*net.parameters(), mult, offset], cfg.policy_lr)
    q1_opt, q2_opt = torch.optim.Adam(q1.parameters(), cfg.qf_lr), torch.optim.Adam(q2.parameters(), cfg.qf_lr)
    log_alpha = nn.Parameter(torch.zeros((), device=device))
    alpha_opt = torch.optim.Adam([log_alpha], cfg.policy_lr)
    n = cfg.cql_n_actions
    clip_lo = -math.inf if cfg.cql_clip_diff_min is None else cfg.cql_clip_diff_min   # CORL clamps with +-inf
    clip_hi = math.inf if cfg.cql_clip_diff_max is None else cfg.cql_clip_diff_max

    def train() -> dict:
        s, a, r, s2, d, mc = buf.sample(cfg.batch_size)
        r, d, mc = r.squeeze(-1), d.squeeze(-1), mc.squeeze(-1)
        new_a, log_pi = actor(s)
        alpha_loss = -(log_alpha * (log_pi - ACT).detach()).mean()
        alpha = log_alpha.exp() * cfg.alpha_multiplier
        policy_loss = (alpha * log_pi - torch.min(q1(s, new_a), q2(s, new_a))).mean()
        log = {"log_pi": log_pi.mean().item(), "policy_loss": policy_loss.item(), "alpha_loss": alpha_loss.item(),
               "alpha": alpha.item()}
        q1_p, q2_p = q1(s, a), q2(s, a)
        next_a, _ = actor(s2)
        target = torch.min(q1_t(s2, next_a), q2_t(s2, next_a))
        y = (r + (1 - d) * cfg.discount * target).detach()
        qf1_loss, qf2_loss = F.mse_loss(q1_p, y), F.mse_loss(q2_p, y)
        rand = a.new_empty((a.shape[0], n, ACT)).uniform_(-1, 1)
        cur, cur_lp = [t.detach() for t in actor(s, repeat=n)]
        nxt, nxt_lp = [t.detach() for t in actor(s2, repeat=n)]
        lower = mc.reshape(-1, 1).repeat(1, n)
        rate = lambda x: (torch.sum(x < lower) / lower.numel()).item()  # noqa: E731
        losses = []
        for q, q_p in ((q1, q1_p), (q2, q2_p)):
            q_rand, q_cur, q_nxt = q(s, rand), q(s, cur), q(s, nxt)
            log[f"bound_rate_{id(q)}"] = rate(q_cur) + rate(q_nxt)
            q_cur, q_nxt = torch.maximum(q_cur, lower), torch.maximum(q_nxt, lower)
            log[f"cql_std_{id(q)}"] = torch.cat([q_rand, q_p.unsqueeze(1), q_nxt, q_cur], 1).std(1).mean().item()
            cat = torch.cat([q_rand - math.log(0.5 ** ACT), q_nxt - nxt_lp, q_cur - cur_lp], 1)
            gap = (torch.logsumexp(cat / cfg.cql_temp, 1) * cfg.cql_temp - q_p).clamp(clip_lo, clip_hi).mean()
            log[f"cql_gap_{id(q)}"] = gap.item()
            losses.append(gap * cfg.cql_alpha)
        qf_loss = qf1_loss + qf2_loss + losses[0] + losses[1]
        log.update(qf1_loss=qf1_loss.item(), qf2_loss=qf2_loss.item(), average_qf1=q1_p.mean().item(),
                   average_qf2=q2_p.mean().item(), average_target_q=target.mean().item())
        alpha_opt.zero_grad()
        alpha_loss.backward()
        alpha_opt.step()
        a_opt.zero_grad()
        policy_loss.backward()
        a_opt.step()
        q1_opt.zero_grad()
        q2_opt.zero_grad()
        qf_loss.backward(retain_graph=True)
        q1_opt.step()
        q2_opt.step()
        corl_soft_update(q1_t, q1, cfg.tau)
        corl_soft_update(q2_t, q2, cfg.tau)
        return log
    return train


# ---------------------------------------------------------------------- timing
def bench(algo_name: str, device: torch.device, steps: int, block: int, warmup: int = 10) -> dict:
    """Time ``steps`` updates of obd's ``algo_name`` and of its CORL-style twin, alternating in blocks."""
    data = bench_data()
    algo_cls, cfg_cls = ALGOS[algo_name]
    cfg = cfg_cls()
    torch.manual_seed(0)
    np.random.seed(0)
    total = steps + warmup
    algo = algo_cls(cfg, OBS, ACT, device, total)
    mc = cfg.discount if algo.uses_mc_returns else None
    batches = OfflineData(data, device, 1.0, mc)
    gen = torch.Generator(device=device).manual_seed(0)
    buf = CorlBuffer(data, device, mc)
    corl = {"td3bc": lambda: corl_td3bc(cfg, device, buf), "iql": lambda: corl_iql(cfg, device, buf, total),
            "calql": lambda: corl_calql(cfg, device, buf)}[algo_name]()

    def ours() -> None:
        algo.update(*batches.sample(cfg.batch_size, gen))

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    clocks = {"ours": [0.0, 0.0], "corl": [0.0, 0.0]}
    for _ in range(warmup):
        ours()
        corl()
    done = 0
    while done < steps:
        k = min(block, steps - done)
        for name, fn in (("ours", ours), ("corl", corl)):
            sync()
            t, c = time.perf_counter(), time.process_time()
            for _ in range(k):
                fn()
            sync()
            clocks[name][0] += time.perf_counter() - t
            clocks[name][1] += time.process_time() - c
        done += k
    row = {"algo": algo_name, "device": str(device), "threads": torch.get_num_threads(), "batch": cfg.batch_size,
           "updates": steps}
    for name, (wall, cpu) in clocks.items():
        row[f"{name}_per_sec"] = steps / wall
        row[f"{name}_per_cpu_sec"] = steps / cpu
    row["speedup"] = row["ours_per_sec"] / row["corl_per_sec"]
    row["hours_per_1M_updates"] = 1e6 / row["ours_per_sec"] / 3600
    return row


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algo", choices=[*sorted(ALGOS), "all"], default="all")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=300, help="timed updates per side")
    p.add_argument("--block", type=int, default=25, help="updates per side before switching sides")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    for flag in ("steps", "block", "threads"):
        if getattr(args, flag) < 1:
            raise ObdError(f"--{flag}: expected a positive integer, got {getattr(args, flag)}")
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    algos = ["td3bc", "iql", "calql"] if args.algo == "all" else [args.algo]
    results = [bench(a, device, args.steps, args.block) for a in algos]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{'algo':6s} {'device':6s} thr  {'ours/s':>8s} {'corl/s':>8s} {'ours/cpu-s':>10s} {'corl/cpu-s':>10s} "
              f"{'speedup':>7s}  h/1M ours")
        for r in results:
            print(f"{r['algo']:6s} {r['device']:6s} {r['threads']:3d}  {r['ours_per_sec']:8.1f} "
                  f"{r['corl_per_sec']:8.1f} "
                  f"{r['ours_per_cpu_sec']:10.1f} {r['corl_per_cpu_sec']:10.1f} {r['speedup']:6.2f}x  "
                  f"{r['hours_per_1M_updates']:.2f}")
    return 0


main = cli_entry(_main)

if __name__ == "__main__":
    sys.exit(main())
