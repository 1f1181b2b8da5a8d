"""Outer-gradient noise of SDW's two modes: weighting the outer error versus sampling by weight.

    python scripts/bench_sdw_modes.py --threads 1                      # synthetic Hopper-like states
    python scripts/bench_sdw_modes.py --n 20000 --draws 100 --targets 0.5,0.2 --json out.json

For a fixed synthetic set, ``--draws`` meta-gradients (each with a fresh student, fresh policy noise and
a fresh outer batch, exactly as an outer step draws them) are taken for: uniform states (Av-PBC, no
state-density weights), the former fixed preset (alpha 0.5, 99% clip, weighted loss), and for each ESS
target both ``weight`` and ``sample`` modes. Reported: the relative variance
``E||g - mean g||^2 / ||mean g||^2`` of the gradient over the synthetic states and actions (lower: the
outer optimizer follows less noise), with the weights' ESS. Weight and sample mode share their expected
objective, so their variances compare directly. States are those of ``scripts/bench_density.py`` (a
4-d manifold in ``--dim`` dimensions); actions come from a fixed random tanh-linear policy. The teacher is
a stand-in (:class:`PolicyTeacher`): that policy's action, and a critic equal to 1 / beta everywhere, so
Av-PBC's factor beta * Q is 1 and the variants differ only in the state-density weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench_density import make_states  # noqa: E402  (scripts/bench_density.py, beside this file)

from obd.config import load_config  # noqa: E402
from obd.data.dataset import TransitionDataset  # noqa: E402
from obd.distill import DistillConfig, Distiller  # noqa: E402
from obd.errors import ObdError, cli_entry  # noqa: E402
from obd.io import write_json_atomic  # noqa: E402


def _make_states(n: int, dim: int) -> np.ndarray:
    return make_states(n, dim, 0, None).astype(np.float32)


class PolicyTeacher:
    """A deterministic :class:`~obd.teachers.TeacherLike` (so no ``mean_std``): ``act(s) = tanh(0.5 s @ policy)``
    (the dataset's own actions), ``q(s, a) = q_value`` for every pair."""

    stochastic = False
    task = None

    def __init__(self, policy: np.ndarray, q_value: float):
        self.policy, self.q_value = policy, q_value
        self.obs_dim, self.act_dim = policy.shape
        self.metadata: dict = {}

    def act(self, observations) -> torch.Tensor:
        return torch.as_tensor(policy_actions(np.asarray(observations, np.float32), self.policy))

    def q(self, observations, actions) -> torch.Tensor:
        return torch.full((len(observations),), self.q_value)

    def to(self, device) -> PolicyTeacher:
        return self


def policy_actions(states: np.ndarray, policy: np.ndarray) -> np.ndarray:
    return np.tanh(0.5 * states @ policy).astype(np.float32)


def variants(targets: list[float]) -> dict[str, list[str]]:
    out = {"uniform (no SDW)": [], "alpha 0.5, clip 0.99, weight": ["objective=sdw", "density.alpha=0.5"]}
    for t in targets:
        for mode in ("weight", "sample"):
            out[f"ESS {t:g}, {mode}"] = ["objective=sdw", f"density.target_ess={t}", f"density.mode={mode}"]
    return out


def gradient_noise(distiller: Distiller, draws: int) -> tuple[float, float]:
    """(relative variance, norm of the mean) of ``draws`` meta-gradients of the current synthetic set."""
    grads = []
    for _ in range(draws):
        g = torch.autograd.grad(distiller.meta_loss(), (distiller.states, distiller.actions))
        grads.append(torch.cat([t.reshape(-1) for t in g]).double())
    stacked = torch.stack(grads)
    mean = stacked.mean(0)
    return float(((stacked - mean) ** 2).sum(1).mean() / (mean ** 2).sum()), float(mean.norm())


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50_000, help="real states (default 50k)")
    p.add_argument("--dim", type=int, default=11, help="state size (default 11, Hopper's)")
    p.add_argument("--act-dim", type=int, default=3)
    p.add_argument("--draws", type=int, default=300, help="meta-gradients per variant (default 300)")
    p.add_argument("--targets", default="0.5,0.2", help="ESS targets, comma-separated (default 0.5,0.2)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", nargs="*", default=[],
                   help="DistillConfig overrides key=value for every variant (density.* for the SDW ones)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.n < 2 or args.draws < 2 or args.threads < 1:
        raise ObdError(f"--n, --draws, --threads: expected >= 2, >= 2, >= 1, got {args.n}, {args.draws}, "
                       f"{args.threads}")
    try:
        targets = [float(t) for t in args.targets.split(",")]
    except ValueError:
        raise ObdError(f"--targets: expected comma-separated numbers, got {args.targets!r}") from None
    torch.set_num_threads(args.threads)
    states = _make_states(args.n, args.dim)
    policy = np.random.default_rng(1).normal(size=(args.dim, args.act_dim)).astype(np.float32)
    actions = policy_actions(states, policy)
    data = TransitionDataset(states, actions, np.zeros(args.n), states, np.zeros(args.n, bool), np.array([0]),
                             source="synthetic")
    base = {"objective": "avpbc", "n_syn": 64, "student": {"hidden": 64, "depth": 3}, "inner": {"steps": 20},
            "outer": {"batch": 1024}, "device": "cpu", "seed": 0}
    rows = []
    for name, overrides in variants(targets).items():
        # density.* overrides only mean something with SDW on
        extra = [o for o in args.set if overrides or not o.startswith("density.")]
        cfg = load_config(DistillConfig, None, [*overrides, *extra], base=base)
        distiller = Distiller(cfg, data, PolicyTeacher(policy, 1.0 / cfg.beta), progress=False)
        rel, norm = gradient_noise(distiller, args.draws)
        ess = distiller.sdw.stats.ess_fraction if distiller.sdw else 1.0
        rows.append({"variant": name, "ess_fraction": round(ess, 4), "relative_variance": round(rel, 4),
                     "mean_gradient_norm": norm})
        print(f"{name:30s} weights' ESS {100 * ess:5.1f}%  relative gradient variance {rel:.3f}", flush=True)
    if args.json:
        write_json_atomic(args.json, rows)
    return 0


main = cli_entry(_main)

if __name__ == "__main__":
    sys.exit(main())
