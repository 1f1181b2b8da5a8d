"""Time one outer step of distillation and count its aten ops, on random data with given dims.

    python scripts/bench_distill.py --preset paper --obs-dim 11 --act-dim 3 --json [--device cpu|cuda] [--reference]

Prints ``sec_per_outer_step`` (median over ``--steps`` after ``--warmup``) and ``aten_ops_per_outer_step``
(torch.profiler CPU events named ``aten::*`` in one outer step after warm-up). ``--reference`` also runs the
same math done the naive way, as the published code does it: an ``nn.Module`` student differentiated
with ``torch.autograd.grad(create_graph=True)`` at every inner step, policy noise redrawn at every step,
the teacher (3x256 actor, 2x256 critic) queried in 10 batches every outer step, and reports the ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from obd.config import load_config  # noqa: E402
from obd.data.dataset import TransitionDataset  # noqa: E402
from obd.distill.config import DistillConfig  # noqa: E402
from obd.distill.engine import Distiller  # noqa: E402
from obd.distill.students import MLPStudent, bc_loss  # noqa: E402

PRESETS = {"paper": "paper_avpbc", "fast": "fast_avpbc", "small": "small_avpbc"}
REAL_STATES = 20_000


class RandomTeacher:
    """A Teacher-contract object with random 3x256 tanh-Gaussian actor and 2x256 critic (bench only)."""

    def __init__(self, obs_dim: int, act_dim: int, device: torch.device):
        g = torch.Generator().manual_seed(0)
        self.obs_dim, self.act_dim, self.stochastic = obs_dim, act_dim, True
        self.task, self.metadata, self.device = None, {}, device
        self.actor = torch.nn.Sequential(torch.nn.Linear(obs_dim, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                         torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                         torch.nn.Linear(256, 2 * act_dim)).to(device).requires_grad_(False)
        self.critic = torch.nn.Sequential(torch.nn.Linear(obs_dim + act_dim, 256), torch.nn.ReLU(),
                                          torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                          torch.nn.Linear(256, 1)).to(device).requires_grad_(False)
        for p in [*self.actor.parameters(), *self.critic.parameters()]:
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)

    def to(self, device):
        return self

    def _s(self, s):
        return torch.as_tensor(np.asarray(s, np.float32) if not torch.is_tensor(s) else s, device=self.device)

    def mean_std(self, s):
        mean, log_std = self.actor(self._s(s)).chunk(2, -1)
        return mean, log_std.clamp(-20, 2).exp()

    def act(self, s):
        return torch.tanh(self.mean_std(s)[0])

    def sample(self, s, generator=None):
        mean, std = self.mean_std(s)
        return torch.tanh(mean + std * torch.randn(mean.shape, generator=generator, device=self.device))

    def q(self, s, a):
        return self.critic(torch.cat([self._s(s), self._s(a)], -1)).squeeze(-1)


def random_dataset(obs_dim: int, act_dim: int) -> TransitionDataset:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(REAL_STATES, obs_dim)).astype(np.float32)
    act = np.tanh(rng.normal(size=(REAL_STATES, act_dim))).astype(np.float32)
    return TransitionDataset(obs, act, np.zeros(REAL_STATES), obs, np.zeros(REAL_STATES, bool),
                             np.arange(0, REAL_STATES, 1000), source="random")


class NaiveDistiller:
    """The same outer step done the naive way (see module docstring); for timing and op counts only."""

    def __init__(self, d: Distiller, teacher: RandomTeacher, raw_obs: np.ndarray):
        self.d, self.teacher, self.cfg = d, teacher, d.config
        self.raw = torch.as_tensor(raw_obs, device=d.device)
        s = self.cfg.student
        self.student = MLPStudent(d.obs_dim, d.act_dim, s.hidden, s.depth).to(d.device)
        self.states = d.states.detach().clone().requires_grad_(True)
        self.actions = d.actions.detach().clone().requires_grad_(True)
        self.opt = torch.optim.SGD([self.states, self.actions], lr=self.cfg.outer.lr, momentum=self.cfg.outer.momentum)

    def step(self) -> None:
        from torch.func import functional_call

        cfg, d = self.cfg, self.d
        self.student.reset_parameters()
        names = [n for n, _ in self.student.named_parameters()]
        params = [p.detach().clone().requires_grad_(True) for _, p in self.student.named_parameters()]
        for _ in range(cfg.inner.steps):
            mean, log_std = functional_call(self.student, dict(zip(names, params)), (self.states,))
            loss = bc_loss(mean, log_std, self.actions, torch.randn_like(mean))
            grads = torch.autograd.grad(loss, params, create_graph=True)
            params = [p - cfg.inner.lr * g for p, g in zip(params, grads)]
        idx = torch.randint(len(self.raw), (cfg.outer.batch,), device=d.device)
        losses = []
        for chunk in idx.chunk(10):
            raw = self.raw[chunk]
            with torch.no_grad():
                target = self.teacher.sample(raw)
                weight = cfg.beta * self.teacher.q(raw, target)
            mean, _ = functional_call(self.student, dict(zip(names, params)), (d.real_states[chunk],))
            losses.append((((torch.tanh(mean) - target) ** 2).mean(-1) * weight).mean())
        outer = torch.stack(losses).mean()
        self.opt.zero_grad()
        outer.backward()
        torch.nn.utils.clip_grad_norm_([self.states, self.actions], cfg.outer.clip)
        self.opt.step()


def measure(step, warmup: int, steps: int, device: torch.device) -> dict[str, float]:
    from torch.profiler import ProfilerActivity, profile

    def timed() -> tuple[float, float]:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, cpu = time.perf_counter(), time.process_time()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, time.process_time() - cpu

    for _ in range(warmup):
        timed()
    both = [timed() for _ in range(steps)]
    times, cpu_times = [t for t, _ in both], [c for _, c in both]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    ops = sum(1 for e in prof.events() if e.name.startswith("aten::"))
    # cpu_sec (process CPU time) is steadier than wall time on a machine shared with other jobs
    return {"sec_per_outer_step": statistics.median(times), "sec_min": min(times),
            "cpu_sec_per_outer_step": statistics.median(cpu_times), "aten_ops_per_outer_step": ops}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    parser.add_argument("--obs-dim", type=int, default=11)
    parser.add_argument("--act-dim", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 is fastest on a 2-core machine shared with other jobs")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--reference", action="store_true", help="also time the naive implementation")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="DistillConfig overrides")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_config(DistillConfig, PRESETS[args.preset], [f"device={args.device}", *args.overrides])
    data = random_dataset(args.obs_dim, args.act_dim)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    teacher = RandomTeacher(args.obs_dim, args.act_dim, device)
    distiller = Distiller(cfg, data, teacher, progress=False)
    out: dict = {"preset": args.preset, "device": str(distiller.device), "threads": args.threads,
                 "obs_dim": args.obs_dim, "act_dim": args.act_dim, "n_syn": cfg.n_syn, "inner_steps": cfg.inner.steps,
                 "outer_batch": cfg.outer.batch, "student": f"{cfg.student.depth}x{cfg.student.hidden}",
                 **measure(distiller.step, args.warmup, args.steps, distiller.device)}
    if args.reference:
        naive = NaiveDistiller(distiller, teacher, data.observations)
        ref = measure(naive.step, args.warmup, args.steps, distiller.device)
        out["reference"] = ref
        out["speedup"] = ref["sec_per_outer_step"] / out["sec_per_outer_step"]
        out["cpu_speedup"] = ref["cpu_sec_per_outer_step"] / out["cpu_sec_per_outer_step"]
        out["op_ratio"] = ref["aten_ops_per_outer_step"] / out["aten_ops_per_outer_step"]
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
