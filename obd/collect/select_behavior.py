"""``obd collect select-behavior TASK --run DIR``: choose a behavior policy by measuring snapshots.

D4RL's ``medium`` datasets are rollouts of an early-stopped SAC policy with *stochastic* actions, so the
level a dataset lands at is the score of the stochastic policy, not of its deterministic mean action. The
SAC trainer (:mod:`obd.collect.sac`) leaves a snapshot at every evaluation (``<run>/snapshots/step_*.pt``);
this command rolls every snapshot out with stochastic actions (all snapshots x episodes in lockstep, one
batched forward per snapshot and step), takes the earliest snapshot whose mean normalized score lies in
``target +- tolerance``, confirms it on fresh episodes, and writes it as a behavior-policy file (by default
``behavior_medium.pt`` into ``--out``) with the measurement in its metadata. ``replay_size`` in the
snapshot is the replay-buffer prefix that becomes ``medium-replay`` for that policy.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from obd.envs import get_task
from obd.errors import ObdError


@dataclass
class SnapshotScore:
    """One snapshot's stochastic-rollout score (mean over episodes) and its training-time deterministic score."""

    path: Path
    step: int
    stochastic: float
    stochastic_std: float
    deterministic: float


def _snapshots(run: Path) -> list[Path]:
    folder = run / "snapshots"
    files = sorted(folder.glob("step_*.pt"))
    if not files:
        raise ObdError(f"{folder}: no snapshots (step_*.pt); they are written at every evaluation of "
                       f"`obd collect train-behavior`")
    return files


def score_snapshots(task: str, files: list[Path], episodes: int, seed: int) -> list[SnapshotScore]:
    """Normalized score of each snapshot's stochastic policy over ``episodes`` seeded episodes.

    All ``len(files) x episodes`` episodes run in lockstep (:func:`obd.envs.rollout.rollout`); the policy
    noise of each snapshot comes from its own generator, seeded with ``seed`` and the snapshot's step, so a
    snapshot's score is repeatable and independent of the other files measured with it.
    """
    import torch

    from obd.collect.behavior import load_behavior_policy
    from obd.envs.rollout import rollout

    spec = get_task(task)
    actors, metas = [], []
    for f in files:
        actor, meta = load_behavior_policy(f)
        if (meta["obs_dim"], meta["act_dim"]) != (spec.obs_dim, spec.act_dim):
            raise ObdError(f"{f}: policy dims ({meta['obs_dim']}, {meta['act_dim']}) do not match task "
                           f"'{spec.name}' ({spec.obs_dim}, {spec.act_dim})")
        actors.append(actor)
        metas.append(meta)
    # one noise stream per snapshot, keyed by its step, so a snapshot's score does not depend on which
    # other snapshots share the batch
    gens = [torch.Generator().manual_seed(seed * 1_000_003 + int(m.get("env_steps", k))) for k, m in enumerate(metas)]

    def policy(obs: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        out = torch.empty(len(obs), spec.act_dim)
        for k in torch.unique(idx).tolist():
            rows = idx == k
            out[rows] = actors[k].sample(obs[rows], with_logprob=False, generator=gens[k])[0]
        return out

    with torch.no_grad():
        res = rollout(spec.name, policy, num_policies=len(files), episodes=episodes, seed=seed)
    scores = res.scores
    return [SnapshotScore(f, int(m.get("env_steps", -1)), float(scores[k].mean()), float(scores[k].std()),
                          float(m.get("normalized_score", float("nan"))))
            for k, (f, m) in enumerate(zip(files, metas))]


def select(task: str, run: Path, target: float, tolerance: float, episodes: int = 10,
           confirm_episodes: int = 20, seed: int = 0, min_step: int = 0) -> tuple[SnapshotScore, list[SnapshotScore]]:
    """The earliest snapshot (at or after ``min_step``) whose stochastic score is within ``tolerance`` of
    ``target`` on ``episodes`` episodes and again on ``confirm_episodes`` fresh ones.

    Returns ``(chosen, table)``; ``chosen.stochastic`` is the confirmation score.
    """
    files = [f for f in _snapshots(run) if int(f.stem.split("_")[1]) >= min_step]
    if not files:
        raise ObdError(f"{run / 'snapshots'}: no snapshot at or after step {min_step}")
    table = score_snapshots(task, files, episodes, seed)
    for row in table:
        if abs(row.stochastic - target) <= tolerance:
            confirm = score_snapshots(task, [row.path], confirm_episodes, seed + 100_000)[0]
            if abs(confirm.stochastic - target) <= tolerance:
                return confirm, table
    best = sorted(table, key=lambda r: abs(r.stochastic - target))[:3]
    raise ObdError(f"{run / 'snapshots'}: no snapshot's stochastic score is within {tolerance} of {target}; "
                   f"closest: " + ", ".join(f"step {r.step}: {r.stochastic:.1f}" for r in best))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("select-behavior", help="choose a behavior policy among a SAC run's snapshots by measurement")
    p.add_argument("task")
    p.add_argument("--run", type=Path, required=True, help="SAC run folder (holds snapshots/step_*.pt)")
    p.add_argument("--target", type=float, default=None,
                   help="normalized score of the stochastic policy to aim for (default: the task's medium_target)")
    p.add_argument("--tolerance", type=float, default=5.0)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--confirm-episodes", type=int, default=20)
    p.add_argument("--min-step", type=int, default=0, help="ignore snapshots before this env step")
    p.add_argument("--level", default="medium", help="level written into the policy file's metadata")
    from obd.cli import add_common

    add_common(p, out="file", out_required=True, device=False, progress=False,
               out_help="behavior-policy file to write, e.g. runs/behavior/hopper/behavior_medium.pt")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from obd.collect.behavior import load_behavior_policy, save_behavior_policy

    spec = get_task(args.task)
    target = args.target if args.target is not None else spec.medium_target
    if target is None:
        raise ObdError(f"--target: task '{spec.name}' has no medium_target in its task.yaml; pass --target")
    for flag in ("episodes", "confirm_episodes"):
        if getattr(args, flag) < 1:
            raise ObdError(f"--{flag.replace('_', '-')}: expected a positive integer, got {getattr(args, flag)}")
    chosen, table = select(spec.name, args.run, target, args.tolerance, args.episodes, args.confirm_episodes,
                           args.seed, args.min_step)
    for row in table:
        mark = " <-" if row.path == chosen.path else ""
        print(f"step {row.step:>8d}  stochastic {row.stochastic:6.1f} ± {row.stochastic_std:4.1f}  "
              f"deterministic {row.deterministic:6.1f}{mark}")
    actor, meta = load_behavior_policy(chosen.path)
    meta.update(level=args.level, snapshot=chosen.path.name, stochastic_normalized_score=chosen.stochastic,
                stochastic_episodes=args.confirm_episodes,
                selection={"target": target, "tolerance": args.tolerance, "episodes": args.episodes,
                           "confirm_episodes": args.confirm_episodes, "seed": args.seed, "min_step": args.min_step})
    meta["normalized_score"] = chosen.deterministic
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_behavior_policy(args.out, actor, meta)
    print(json.dumps({"wrote": str(args.out), "step": chosen.step, "stochastic": round(chosen.stochastic, 2),
                      "deterministic": round(chosen.deterministic, 2), "replay_size": meta.get("replay_size")}))
    return 0
