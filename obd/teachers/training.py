"""The offline RL training loop every teacher algorithm shares: data on the device, evaluation, metrics,
resumable checkpoints and the final teacher file.

An algorithm (``TD3BC``, ``IQL``, ``CalQL``) supplies ``update(obs, act, rew, next_obs, not_done[, mc_return])``
(``mc_return`` when its ``uses_mc_returns``), ``state_dict``/``load_state_dict`` and ``teacher(...)``; its
config has ``batch_size``, ``discount`` and ``normalize_reward``; :func:`train_teacher` runs it for ``steps``
gradient updates. A run folder holds

* ``config.yaml``: the resolved run and algorithm config;
* ``metrics.jsonl``: one JSON line per log / evaluation (losses, D4RL normalized score);
* ``checkpoint.pt``: networks, optimizers, RNG states, step and the dataset's fingerprint, rewritten
  atomically every ``checkpoint_every`` steps (``--resume`` continues from it, dropping metrics logged after
  it; :class:`obd.run_folder.RunFolder`);
* ``teacher.pt``: the :class:`~obd.teachers.base.Teacher` file, written at the end. Its metadata names
  the algorithm, updates (``training_steps``), dataset id and ``dataset_sha256``
  (:meth:`TransitionDataset.fingerprint`, the distiller's), and the final deterministic normalized score
  with its episode count (evaluated at the last step unless evaluation is off).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from obd.config import config_to_dict
from obd.data.dataset import TransitionDataset
from obd.device import resolve_device
from obd.envs import get_task, infer_task
from obd.errors import ObdError
from obd.run_folder import RunFolder, check_changes, check_inputs
from obd.teachers.base import Teacher
from obd.teachers.evaluation import evaluate_teacher


@dataclass
class RunConfig:
    """Settings of one teacher training run (the algorithm's own hyperparameters live in its config)."""

    dataset: str = ""
    algo: str = "td3bc"
    steps: int = 1_000_000            # gradient updates (CORL: max_timesteps 1M)
    seed: int = 0
    eval_every: int = 5_000           # 0 = never; CORL: eval_freq 5000
    eval_episodes: int = 10           # CORL: n_episodes 10
    eval_max_steps: int = 0           # cap on episode length in evaluation; 0 = the task's limit
    checkpoint_every: int = 10_000
    log_every: int = 1_000            # mean losses over this many updates go to metrics.jsonl
    device: str = "auto"
    # "final": the teacher is the last policy; "best": the best-scoring policy of the periodic evaluations,
    # its score re-measured on fresh episodes (offline RL policies oscillate between evaluations)
    select: str = "final"


class OfflineData:
    """Transitions as tensors on the training device, states normalized, rewards scaled.

    ``sample(batch, generator)`` draws indices on the device and gathers one packed (N, width) tensor,
    so a batch costs one ``randint`` and one gather with no host-device copies; it returns views
    ``(obs, act, rew, next_obs, not_done)``, followed by ``mc_return`` when ``mc_discount`` is given
    (Monte-Carlo returns-to-go of the scaled rewards, :func:`returns_to_go`).
    """

    def __init__(self, data: TransitionDataset, device: torch.device, reward_scale: float = 1.0,
                 mc_discount: float | None = None):
        norm = data.normalizer
        rew = data.rewards.astype(np.float64) * reward_scale
        columns = [norm.normalize(data.observations), data.actions, rew[:, None],
                   norm.normalize(data.next_observations), 1.0 - data.terminals[:, None]]
        if mc_discount is not None:
            columns.append(returns_to_go(rew, data.episode_starts, data.terminals, mc_discount)[:, None])
        self.packed = torch.as_tensor(np.concatenate([np.asarray(c, np.float32) for c in columns], 1), device=device)
        o, a = data.obs_dim, data.act_dim
        self.widths = [o, a, 1, o, 1] + ([1] if mc_discount is not None else [])
        self.size = len(data)
        self.device = device

    def sample(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        idx = torch.randint(0, self.size, (batch,), generator=generator, device=self.device)
        parts = self.packed[idx].split(self.widths, dim=1)
        return tuple(p.squeeze(1) if w == 1 else p for p, w in zip(parts, self.widths))


def reward_scale(data: TransitionDataset, normalize: bool) -> float:
    """Reward multiplier: 1, or with ``normalize`` CORL's locomotion rule ``1000 / (max_return - min_return)``
    over the per-episode sums of the dataset's transition rewards (``return_reward_range``)."""
    if not normalize:
        return 1.0
    returns = np.add.reduceat(data.rewards.astype(np.float64), data.episode_starts)
    return float(1000.0 / max(returns.max() - returns.min(), 1e-6))


def returns_to_go(rewards: np.ndarray, episode_starts: np.ndarray, terminals: np.ndarray,
                  discount: float) -> np.ndarray:
    """Discounted Monte-Carlo return of every transition within its episode, (N,) float64:

        G_t = r_t + discount * G_{t+1},  with G_t = r_t at an episode's last transition,

    an episode ending at the next ``episode_starts`` entry, after a terminal, or at the end of the data
    (CORL's ``get_return_to_go``; a timed-out episode is not bootstrapped either). Computed as a parallel
    scan of the affine recurrence ``G_t = r_t + c_t G_{t+1}``: after round k, ``G_t`` sums the next 2^k
    rewards and ``c_t`` is their discount product, so log2(N) vectorized rounds replace the Python loop.
    """
    n = len(rewards)
    last = np.asarray(terminals, bool).copy()
    last[np.asarray(episode_starts)[1:] - 1] = True
    last[-1] = True
    g = np.asarray(rewards, np.float64).copy()
    c = np.where(last, 0.0, float(discount))
    shift = 1
    while shift < n:
        g[:-shift] = g[:-shift] + c[:-shift] * g[shift:]
        c[:-shift] = c[:-shift] * c[shift:]
        shift *= 2
    return g


def dataset_task(data: TransitionDataset, where: str) -> str | None:
    task = data.task or infer_task(data.source, data.obs_dim, data.act_dim)
    return get_task(task).name if task else None


def _rng_state(gen: torch.Generator) -> dict[str, Any]:
    st = {"torch": torch.get_rng_state(), "gen": gen.get_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict[str, Any], gen: torch.Generator) -> None:
    torch.set_rng_state(st["torch"])
    gen.set_state(st["gen"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def saved_config(run: RunConfig, algo_cfg: Any) -> dict[str, Any]:
    return {"run": config_to_dict(run), run.algo: config_to_dict(algo_cfg)}


def train_teacher(algo_cls: type, algo_cfg: Any, data: TransitionDataset, run: RunConfig, out: str | os.PathLike,
                  resume: bool = False, progress: bool = True) -> Teacher:
    """Run ``run.steps`` updates of ``algo_cls(algo_cfg, ...)`` on ``data``, save ``out/teacher.pt`` and
    return the teacher. With ``resume``, continue the run in ``out`` (from its checkpoint, once it has one;
    what the config may change: ``obd.run_folder.RESUME_MAY_CHANGE["teacher"]``); without, ``out`` must be new
    or empty."""
    from tqdm import tqdm

    out = Path(out)
    folder = RunFolder(out, keep=False)
    device = resolve_device(run.device)
    task = dataset_task(data, run.dataset)
    if run.eval_every > 0 and task is None:
        raise ObdError(f"dataset '{run.dataset or data.source}': task unknown, cannot evaluate "
                       "(name the task in the dataset, or set --eval-every 0)")
    if run.select not in ("final", "best"):
        raise ObdError(f"--select: expected 'final' or 'best', got {run.select!r}")
    if run.select == "best" and run.eval_every <= 0:
        raise ObdError("--select best: needs periodic evaluation (--eval-every > 0)")
    torch.manual_seed(run.seed)
    gen = torch.Generator(device=device).manual_seed(run.seed)
    algo = algo_cls(algo_cfg, data.obs_dim, data.act_dim, device, run.steps)
    scale = reward_scale(data, algo_cfg.normalize_reward)
    batches = OfflineData(data, device, scale, algo_cfg.discount if algo.uses_mc_returns else None)
    inputs = {"dataset": data.fingerprint()}
    step, last_eval, best = 0, None, None
    best_path = out / "teacher_best.pt"
    config = saved_config(run, algo_cfg)
    if folder.start(resume):
        check_changes(folder.config(), config, "teacher", str(folder.config_path))
        st, where = folder.load_checkpoint("teacher checkpoint", map_location=device)
        if st is not None:
            check_inputs(st.get("inputs", {}), inputs, str(where))
            algo.load_state_dict(st["algo"])
            _set_rng_state(st["rng"], gen)
            step, last_eval, best = int(st["step"]), st.get("last_eval"), st.get("best")
    folder.write_config(config)
    metrics = folder.metrics_log(step)

    meta = {"task": task, "dataset": run.dataset or data.source, "dataset_sha256": inputs["dataset"],
            "seed": run.seed, "reward_scale": scale,
            "config": config_to_dict(algo_cfg)}

    def checkpoint(at: int) -> None:
        folder.save_checkpoint({"step": at, "algo": algo.state_dict(), "rng": _rng_state(gen),
                                "last_eval": last_eval, "best": best, "inputs": inputs}, at)

    def evaluate(at: int, teacher: Teacher | None = None, seed_offset: int = 100) -> dict:
        teacher = teacher or algo.teacher(data.normalizer, task, meta)
        ev = evaluate_teacher(teacher, run.eval_episodes, seed=run.seed * 1000 + seed_offset,
                              max_steps=run.eval_max_steps)
        return {"step": at, "normalized_score": ev["normalized_score_mean"], "return_mean": ev["return_mean"],
                "episode_length_mean": ev["episode_length_mean"]}

    def final_metadata(at: int, ev: dict | None) -> dict:
        out_meta = {**meta, "training_steps": at, "env_id": get_task(task).env_id if task else None}
        if ev is not None:
            out_meta.update(normalized_score=ev["normalized_score"], eval_episodes=run.eval_episodes,
                            eval_return_mean=ev["return_mean"], eval_episode_length_mean=ev["episode_length_mean"])
        return out_meta

    def consider(ev: dict) -> None:
        nonlocal best
        if run.select == "best" and (best is None or ev["normalized_score"] > best["normalized_score"]):
            best = {"step": ev["step"], "normalized_score": ev["normalized_score"]}
            algo.teacher(data.normalizer, task, final_metadata(ev["step"], ev)).save(best_path)

    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    t0, n0 = time.time(), step
    bar = tqdm(total=run.steps, initial=step, disable=not progress, desc=f"{algo.name} {task or ''}".strip(),
               unit="upd", dynamic_ncols=True, mininterval=2.0)
    while step < run.steps:
        losses = algo.update(*batches.sample(algo_cfg.batch_size, gen))
        step += 1
        for k, v in losses.items():
            sums[k] = sums[k] + v if k in sums else v
            counts[k] = counts.get(k, 0) + 1
        if run.log_every > 0 and step % run.log_every == 0:
            row = {"step": step, **{k: float(sums[k]) / counts[k] for k in sums},
                   "updates_per_sec": (step - n0) / max(time.time() - t0, 1e-9)}
            metrics.write(row)
            bar.set_postfix(critic=f"{row.get('critic_loss', 0):.3g}")
            sums, counts = {}, {}
        if run.eval_every > 0 and step % run.eval_every == 0:
            last_eval = evaluate(step)
            metrics.write(last_eval)
            consider(last_eval)
            bar.set_postfix(score=f"{last_eval['normalized_score']:.1f}")
        if run.checkpoint_every > 0 and step % run.checkpoint_every == 0:
            checkpoint(step)
        bar.update(1)
    bar.close()
    if run.eval_every > 0 and (last_eval is None or last_eval["step"] != step):
        last_eval = evaluate(step)              # the teacher file always carries the final policy's score
        metrics.write(last_eval)
        consider(last_eval)
    checkpoint(step)
    if run.select == "best" and best is not None:
        teacher = Teacher.load(best_path, device=device)
        # the selection's own score is biased upwards (the max of noisy evaluations): measure it again
        fresh = evaluate(best["step"], teacher, seed_offset=500)
        teacher.metadata.update(selected="best of the evaluations every eval_every updates",
                                selected_step=best["step"], selection_normalized_score=best["normalized_score"],
                                normalized_score=fresh["normalized_score"], eval_return_mean=fresh["return_mean"],
                                eval_episode_length_mean=fresh["episode_length_mean"], final_step=step,
                                final_normalized_score=None if last_eval is None else last_eval["normalized_score"])
        metrics.write({"step": step, "selected_step": best["step"],
                       "fresh_normalized_score": fresh["normalized_score"]})
    else:
        teacher = algo.teacher(data.normalizer, task, final_metadata(step, last_eval))
    teacher.save(out / "teacher.pt")
    return teacher
