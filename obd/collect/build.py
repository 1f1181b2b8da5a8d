"""Build D4RL-style datasets in Gymnasium v5 envs, written both as a D4RL HDF5 file and a Minari dataset.

Levels follow D4RL's recipe (see docs/data.md): ``random`` = uniform actions; ``medium`` / ``expert`` =
the task's SAC behavior policy (shipped: ``obd/tasks/<task>/behavior_{medium,expert}.pt``) with *stochastic* actions;
``medium-replay`` = the first ``replay_size`` transitions of the SAC run's replay buffer (the buffer up to
the moment the medium policy was saved); ``medium-expert`` = medium followed by expert.

Collection steps ``num_envs`` envs in lockstep with one batched policy forward per step. Finished
episodes are appended in a fixed order (step, then env index) and every reset seed comes from one seeded
generator, so the same seed gives identical arrays. The last episode is cut at the requested size and
marked as a time-limit truncation. Outputs are renamed into place only when both are complete.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from obd.assets import LEVELS, resolve_asset, split_dataset_name
from obd.data.d4rl import d4rl_dataset_dir, load_d4rl, write_d4rl
from obd.data.minari_io import Episode, minari_root, write_minari
from obd.envs import TaskSpec, get_task, make_env, normalized_score
from obd.errors import ObdError
from obd.io import atomic_path, check_writable

DEFAULT_BEHAVIOR_RUNS = Path(".obd_cache") / "behavior"

Policy = Callable[[np.ndarray], np.ndarray]


@dataclass
class BuildConfig:
    """What ``obd collect build <task>-<level>`` builds and where it writes it."""

    task: str
    level: str
    transitions: int | None = None        # default 1M (medium-expert 2M; medium-replay: the replay prefix)
    seed: int = 0
    num_envs: int = 16
    out_dir: str | None = None            # D4RL folder, default $D4RL_DATASET_DIR
    minari_id: str | None = None          # default obd/<task>/<level>-v0
    minari_dir: str | None = None         # Minari root, default $MINARI_DATASETS_PATH
    policy_dir: str | None = None         # default: the shipped obd/tasks/<task>
    behavior_run: str | None = None       # default .obd_cache/behavior/<task>
    overwrite: bool = False
    progress: bool = True
    device: str = "auto"                  # where the behavior policy runs; auto = cuda when available
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.task = get_task(self.task).name
        if self.level not in LEVELS:
            raise ObdError(f"build: unknown level '{self.level}'; expected one of {list(LEVELS)}")
        if self.transitions is not None and self.transitions < 2:
            raise ObdError(f"build: --transitions must be at least 2, got {self.transitions}")
        if self.num_envs < 1:
            raise ObdError(f"build: --num-envs must be at least 1, got {self.num_envs}")

    @property
    def d4rl_file(self) -> Path:
        folder = Path(self.out_dir) if self.out_dir else d4rl_dataset_dir()
        return folder / f"{self.task}_{self.level.replace('-', '_')}-v5.hdf5"

    @property
    def dataset_id(self) -> str:
        return self.minari_id or f"obd/{self.task}/{self.level}-v0"

    def policy_file(self, level: str) -> Path:
        """``behavior_<level>.pt`` in ``policy_dir``, else the shipped one (:func:`obd.assets.resolve_asset`)."""
        if self.policy_dir:
            return Path(self.policy_dir) / f"behavior_{level.replace('-', '_')}.pt"
        try:
            return resolve_asset("behavior", f"{self.task}-{level}")
        except ObdError:
            return get_task(self.task).directory / f"behavior_{level.replace('-', '_')}.pt"

    @property
    def run_folder(self) -> Path:
        return Path(self.behavior_run) if self.behavior_run else DEFAULT_BEHAVIOR_RUNS / self.task


# ---------------------------------------------------------------------------------------------- policies
def random_policy(spec: TaskSpec, rng: np.random.Generator) -> Policy:
    """Uniform actions in [-1, 1]^act_dim (the D4RL random level), drawn from ``rng``."""
    return lambda obs: rng.uniform(-1.0, 1.0, size=(len(obs), spec.act_dim)).astype(np.float32)


def behavior_policy(path: Path, spec: TaskSpec, device: str = "auto") -> tuple[Policy, dict[str, Any]]:
    """Stochastic actions of a saved SAC behavior actor, (M, obs) -> (M, act); noise from torch's global
    generator (of ``device``), which :func:`collect` seeds inside a forked RNG scope."""
    import torch

    from obd.collect.behavior import load_behavior_policy
    from obd.device import resolve_device

    if not path.is_file():
        raise ObdError(f"{path}: behavior policy not found; it is produced by "
                       f"`obd collect train-behavior {spec.name}` (or pass --policy-dir)")
    actor, meta = load_behavior_policy(path)
    dev = resolve_device(device)
    actor.to(dev)
    if (meta["obs_dim"], meta["act_dim"]) != (spec.obs_dim, spec.act_dim):
        raise ObdError(f"{path}: policy dims ({meta['obs_dim']}, {meta['act_dim']}) do not match task "
                       f"'{spec.name}' ({spec.obs_dim}, {spec.act_dim})")

    @torch.no_grad()
    def act(obs: np.ndarray) -> np.ndarray:
        a, _ = actor.sample(torch.as_tensor(obs, dtype=torch.float32, device=dev), deterministic=False,
                            with_logprob=False)
        return a.cpu().numpy()

    info = {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool))}
    return act, {**info, "file": str(path)}


# ---------------------------------------------------------------------------------------------- collection
def collect(spec: TaskSpec, policy: Policy, transitions: int, seed: int, num_envs: int = 16,
            progress: bool = True, desc: str = "collect") -> list[Episode]:
    """Roll ``policy`` in ``num_envs`` lockstep envs until ``transitions`` steps are recorded.

    Records per step the observation, action, reward, termination, truncation and the simulator state
    ``qpos``/``qvel`` *before* the step. Returns whole episodes in completion order; the last one is cut
    so the lengths sum to exactly ``transitions`` (its final step then counts as truncated).
    """
    import torch
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    envs = [make_env(spec) for _ in range(num_envs)]

    def reset(k: int) -> np.ndarray:
        obs, _ = envs[k].reset(seed=int(rng.integers(2**31)))
        return obs

    obs = np.stack([reset(k) for k in range(num_envs)]).astype(np.float32)
    fields = ("obs", "act", "rew", "term", "trunc", "qpos", "qvel")
    open_eps: list[dict[str, list]] = [{f: [] for f in fields} for _ in range(num_envs)]
    done: list[Episode] = []
    total = 0
    bar = tqdm(total=transitions, desc=desc, unit="step", disable=not progress, dynamic_ncols=True, mininterval=1.0)
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        torch.manual_seed(seed)
        while total < transitions:
            actions = np.asarray(policy(obs), dtype=np.float32)
            for k, env in enumerate(envs):
                ep, data = open_eps[k], env.unwrapped.data
                ep["qpos"].append(data.qpos.copy())
                ep["qvel"].append(data.qvel.copy())
                nobs, rew, term, trunc, _ = env.step(actions[k])
                ep["obs"].append(obs[k].copy())
                ep["act"].append(actions[k])
                ep["rew"].append(rew)
                ep["term"].append(term)
                ep["trunc"].append(trunc)
                if term or trunc:
                    ep["obs"].append(np.asarray(nobs, np.float32))
                    done.append(_episode(ep))
                    total += len(done[-1])
                    bar.update(len(done[-1]))
                    open_eps[k] = {f: [] for f in fields}
                    nobs = reset(k)
                obs[k] = nobs
    bar.close()
    for env in envs:
        env.close()
    return _cut(done, transitions)


def _episode(ep: dict[str, list]) -> Episode:
    return Episode(np.stack(ep["obs"]).astype(np.float32), np.stack(ep["act"]).astype(np.float32),
                   np.asarray(ep["rew"], np.float64), np.asarray(ep["term"], bool), np.asarray(ep["trunc"], bool),
                   np.stack(ep["qpos"]), np.stack(ep["qvel"]))


def _cut(episodes: list[Episode], transitions: int) -> list[Episode]:
    """Keep whole episodes up to ``transitions`` steps and the first ``rest`` steps of the next one."""
    out, total = [], 0
    for ep in episodes:
        rest = transitions - total
        if rest <= 0:
            break
        if len(ep) > rest:
            trunc = ep.truncations[:rest].copy()
            trunc[-1] = not ep.terminations[rest - 1]
            ep = Episode(ep.observations[: rest + 1], ep.actions[:rest], ep.rewards[:rest],
                         ep.terminations[:rest], trunc,
                         None if ep.qpos is None else ep.qpos[:rest], None if ep.qvel is None else ep.qvel[:rest])
        out.append(ep)
        total += len(ep)
    return out


def replay_episodes(buffer_path: Path, rows: int) -> list[Episode]:
    """Episodes of the first ``rows`` rows of a SAC run's ``buffer.npz``.

    An episode ends at a terminal or timeout row, and also where ``next_observations[i] != observations[i+1]``
    (a run stopped mid-episode and resumed with a fresh reset); such ends and the cut at ``rows`` count as
    truncations.
    """
    with np.load(buffer_path) as z:
        missing = [k for k in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")
                   if k not in z.files]
        if missing:
            raise ObdError(f"{buffer_path}: missing key(s) {missing}")
        arr = {k: z[k][:rows] for k in z.files}
    n = len(arr["observations"])
    term = arr["terminals"].astype(bool)
    trunc = arr["timeouts"].astype(bool)
    jump = np.zeros(n, dtype=bool)
    jump[:-1] = np.any(arr["next_observations"][:-1] != arr["observations"][1:], axis=1)
    trunc |= jump & ~term
    trunc[-1] |= not term[-1]
    ends = np.flatnonzero(term | trunc)
    starts = np.concatenate([[0], ends[:-1] + 1])
    episodes = []
    for s, e in zip(starts, ends + 1):
        obs = np.concatenate([arr["observations"][s:e], arr["next_observations"][e - 1: e]])
        episodes.append(Episode(obs, arr["actions"][s:e], arr["rewards"][s:e].astype(np.float64), term[s:e],
                                trunc[s:e], arr["qpos"][s:e] if "qpos" in arr else None,
                                arr["qvel"][s:e] if "qvel" in arr else None))
    return episodes


# ---------------------------------------------------------------------------------------------- build
def collection_versions() -> dict[str, str]:
    """The library versions a collected dataset depends on (``metadata/versions/*``): the seed fixes the data
    only together with them, since MuJoCo's physics and the policies' float arithmetic differ between
    releases."""
    import gymnasium
    import mujoco
    import torch

    return {"mujoco": mujoco.__version__, "gymnasium": gymnasium.__version__, "torch": torch.__version__,
            "numpy": np.__version__}


def _gather(cfg: BuildConfig, spec: TaskSpec) -> tuple[list[Episode], dict[str, Any]]:
    kw = dict(num_envs=cfg.num_envs, progress=cfg.progress)
    if cfg.level == "random":
        n = cfg.transitions or 1_000_000
        rng = np.random.default_rng([cfg.seed, 1])
        return collect(spec, random_policy(spec, rng), n, cfg.seed, desc=f"{spec.name}-random", **kw), \
            {"algorithm": "uniform random"}
    if cfg.level in ("medium", "expert"):
        policy, info = behavior_policy(cfg.policy_file(cfg.level), spec, cfg.device)
        n = cfg.transitions or 1_000_000
        return collect(spec, policy, n, cfg.seed, desc=f"{spec.name}-{cfg.level}", **kw), \
            {"algorithm": "SAC", "policy": info}
    if cfg.level == "medium-expert":
        n = cfg.transitions or 2_000_000
        med, med_info = behavior_policy(cfg.policy_file("medium"), spec, cfg.device)
        exp, exp_info = behavior_policy(cfg.policy_file("expert"), spec, cfg.device)
        first = collect(spec, med, n // 2, cfg.seed, desc=f"{spec.name}-medium", **kw)
        second = collect(spec, exp, n - n // 2, cfg.seed + 1, desc=f"{spec.name}-expert", **kw)
        return first + second, {"algorithm": "SAC", "policy": {"medium": med_info, "expert": exp_info}}
    # medium-replay
    from obd.collect.behavior import load_behavior_policy

    medium_file = cfg.policy_file("medium")
    if not medium_file.is_file():
        raise ObdError(f"{medium_file}: medium behavior policy not found (its metadata holds 'replay_size'); "
                       f"it is produced by `obd collect train-behavior {spec.name}`")
    _, meta = load_behavior_policy(medium_file)
    if "replay_size" not in meta:
        raise ObdError(f"{medium_file}: missing key 'replay_size' (the replay-buffer prefix that is medium-replay)")
    buffer_path = cfg.run_folder / "buffer.npz"
    if not buffer_path.is_file():
        raise ObdError(f"{buffer_path}: SAC replay buffer not found; it is written by the checkpoints of "
                       f"`obd collect train-behavior {spec.name}` (or pass --behavior-run)")
    replay_size = int(meta["replay_size"])
    with np.load(buffer_path) as z:
        have = len(z["rewards"]) if "rewards" in z.files else 0
    if have < replay_size:
        raise ObdError(f"{buffer_path}: holds {have} rows but medium-replay needs replay_size={replay_size}; "
                       f"resume `obd collect train-behavior {spec.name} --resume` past the next checkpoint")
    rows = min(replay_size, cfg.transitions or replay_size)
    info = {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool))}
    return replay_episodes(buffer_path, rows), {"algorithm": "SAC replay buffer", "buffer": str(buffer_path),
                                                 "policy": {**info, "file": str(medium_file)}}


def build(cfg: BuildConfig) -> dict[str, Any]:
    """Collect the dataset ``cfg`` describes and write the D4RL file and the Minari dataset.

    Returns a summary: paths, transitions, episodes, mean normalized episode score, transitions/s.
    """
    spec = get_task(cfg.task)
    h5_path = cfg.d4rl_file
    minari_base = Path(cfg.minari_dir) if cfg.minari_dir else minari_root()
    minari_dir = minari_base / cfg.dataset_id
    if not cfg.overwrite:
        for existing in (h5_path, minari_dir):
            if existing.exists():
                raise ObdError(f"{existing}: already exists (pass --overwrite to replace it)")
    check_writable(h5_path, flag="D4RL output")
    check_writable(minari_base, is_dir=True, flag="Minari output")
    t0 = time.time()
    episodes, info = _gather(cfg, spec)
    seconds = time.time() - t0
    obs = np.concatenate([e.observations[:-1] for e in episodes])
    nxt = np.concatenate([e.observations[1:] for e in episodes])
    term = np.concatenate([e.terminations for e in episodes])
    trunc = np.concatenate([e.truncations for e in episodes])
    has_q = all(e.qpos is not None for e in episodes)
    meta = {"task": spec.name, "level": cfg.level, "env_id": spec.env_id, "seed": cfg.seed,
            "dataset_id": f"{spec.name}-{cfg.level}-v5", "minari_id": cfg.dataset_id,
            "versions": collection_versions(), **info, **cfg.metadata}
    with atomic_path(h5_path) as tmp_h5:
        write_d4rl(tmp_h5, obs, np.concatenate([e.actions for e in episodes]),
                   np.concatenate([e.rewards for e in episodes]), term, trunc & ~term, nxt,
                   qpos=np.concatenate([e.qpos for e in episodes]) if has_q else None,
                   qvel=np.concatenate([e.qvel for e in episodes]) if has_q else None, metadata=meta)
        write_minari(cfg.dataset_id, episodes, spec.env_id, spec.ref_min_score, spec.ref_max_score,
                     algorithm_name=str(info["algorithm"]),
                     description=f"obd {spec.name}-{cfg.level} (seed {cfg.seed}) collected in {spec.env_id}",
                     overwrite=cfg.overwrite, root=minari_base)
    returns = np.array([e.rewards.sum() for e in episodes])
    return {"d4rl_file": str(h5_path), "minari_id": cfg.dataset_id, "minari_dir": str(minari_dir),
            "transitions": int(len(obs)), "episodes": len(episodes),
            "normalized_score_mean": float(np.mean(normalized_score(spec, returns))),
            "collect_seconds": seconds, "transitions_per_second": len(obs) / max(seconds, 1e-9)}


# ---------------------------------------------------------------------------------------------- CLI
def parse_name(name: str) -> tuple[str, str]:
    """``hopper-medium-replay`` or the dataset id ``hopper-medium-replay-v5`` -> (``hopper``, ``medium-replay``).

    Builds are ``-v5`` (Gymnasium v5 envs); another version suffix is refused rather than silently relabeled."""
    if re.search(r"-v\d+$", name) and not name.endswith("-v5"):
        raise ObdError(f"build: '{name}': obd builds '-v5' datasets (Gymnasium v5 envs); "
                       f"use '{re.sub(r'-v[0-9]+$', '-v5', name)}'")
    try:
        task, level = split_dataset_name(name)
    except ObdError:
        raise ObdError(f"build: '{name}' should be '<task>-<level>[-v5]' with level one of {list(LEVELS)}") from None
    return get_task(task).name, level


def add_parser(sub: argparse._SubParsersAction) -> None:
    from obd.cli import add_common

    p = sub.add_parser("build", help="collect a D4RL-style dataset (D4RL HDF5 + Minari)")
    p.add_argument("name", help="<task>-<level>[-v5], level one of " + ", ".join(LEVELS))
    p.add_argument("--transitions", type=int, default=None)
    p.add_argument("--num-envs", type=int, default=16, help="envs stepped in lockstep (one batched policy forward)")
    p.add_argument("--minari-id", default=None, help="Minari dataset id (default obd/<task>/<level>-v0)")
    p.add_argument("--minari-dir", default=None, help="Minari root (default $MINARI_DATASETS_PATH)")
    p.add_argument("--policy-dir", default=None,
                   help="folder with behavior_{medium,expert}.pt (default: the shipped ones)")
    p.add_argument("--behavior-run", default=None,
                   help="SAC run folder with buffer.npz (default .obd_cache/behavior/<task>)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_common(p, out="dir", out_help="D4RL folder (default $D4RL_DATASET_DIR or ~/.d4rl/datasets)")
    p.add_argument("--out-dir", dest="out", type=Path, help=argparse.SUPPRESS)  # the flag's name before --out
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    task, level = parse_name(args.name)
    cfg = BuildConfig(task, level, args.transitions, args.seed, args.num_envs,
                      str(args.out) if args.out else None, minari_id=args.minari_id, minari_dir=args.minari_dir,
                      policy_dir=args.policy_dir, behavior_run=args.behavior_run, overwrite=args.overwrite,
                      progress=not args.no_progress, device=args.device)
    out = build(cfg)
    ds = load_d4rl(out["d4rl_file"])
    print(f"wrote {out['d4rl_file']} and Minari '{out['minari_id']}': {out['transitions']} transitions, "
          f"{out['episodes']} episodes, mean normalized score {out['normalized_score_mean']:.1f}, "
          f"{out['transitions_per_second']:.0f} transitions/s; qlearning view: {len(ds)} transitions")
    return 0


__all__ = ["BuildConfig", "build", "collect", "replay_episodes", "random_policy", "behavior_policy", "LEVELS",
           "parse_name"]
