"""Lean SAC for training the *behavior policies* that D4RL-style datasets are collected with.

D4RL's locomotion data came from SAC agents: ``medium`` is an early-stopped policy at about a third of
the expert return, ``medium-replay`` is the replay buffer up to that point, ``expert`` the fully trained
policy. This module trains one SAC agent per task, and on the way

* writes ``<policy dir>/behavior_medium.pt`` the first time a deterministic evaluation lands in the
  medium band (normalized score 25-45, confirmed on extra episodes), remembering how many transitions
  the replay buffer held then (that prefix *is* medium-replay);
* writes ``<policy dir>/behavior_expert.pt`` whenever a confirmed evaluation beats the task's expert
  threshold (and the previous expert);
* checkpoints everything (networks, optimizers, temperature, replay buffer, RNG state) atomically so a
  killed run resumes with ``--resume``, in a run folder (:class:`obd.run_folder.RunFolder`: ``config.yaml``,
  ``checkpoint.pt`` beside its ``buffer.npz``, ``metrics.jsonl`` with one line per evaluation).

The behavior actor and its policy files are :mod:`obd.collect.behavior`.

Why it is faster than an off-the-shelf SAC: one process thread, the replay buffer preallocated as torch
tensors and sampled by index, the twin critics fused into one batched matmul network, the target update
done with a fused ``lerp_`` over all parameters, no logging framework, no per-step Python callbacks.
The algorithm is standard SAC (Haarnoja et al. 2018) with automatic temperature tuning.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from obd.collect.behavior import BehaviorActor, save_behavior_policy
from obd.collect.sac_config import SACConfig
from obd.envs import get_task, make_env, normalized_score
from obd.errors import ObdError
from obd.io import atomic_path
from obd.nn import EnsembleQ
from obd.run_folder import RunFolder, check_changes


class ReplayBuffer:
    """Preallocated buffer that never wraps, so its first ``n`` rows are exactly the first ``n`` steps.

    Stores what a D4RL file needs: obs, action, reward, next obs, terminal, timeout, qpos, qvel.
    """

    FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts", "qpos", "qvel")

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, nq: int, nv: int):
        dims = {"observations": obs_dim, "actions": act_dim, "rewards": None, "next_observations": obs_dim,
                "terminals": None, "timeouts": None, "qpos": nq, "qvel": nv}
        self.data = {k: torch.zeros((capacity,) if d is None else (capacity, d)) for k, d in dims.items()}
        self.size = 0

    def add(self, **row: np.ndarray) -> None:
        i = self.size
        for k, v in row.items():
            self.data[k][i] = torch.as_tensor(v, dtype=torch.float32)
        self.size += 1

    def sample(self, batch: int, gen: torch.Generator):
        idx = torch.randint(0, self.size, (batch,), generator=gen)
        d = self.data
        return (d["observations"][idx], d["actions"][idx], d["rewards"][idx],
                d["next_observations"][idx], d["terminals"][idx])

    def state(self) -> dict[str, np.ndarray]:
        return {k: v[: self.size].numpy() for k, v in self.data.items()}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        n = len(arrays["observations"])
        for k in self.FIELDS:
            self.data[k][:n] = torch.from_numpy(np.asarray(arrays[k], dtype=np.float32))
        self.size = n


class SACTrainer:
    """Explicit SAC training loop with evaluation, medium/expert snapshots and resumable checkpoints."""

    def __init__(self, cfg: SACConfig, out_dir: str | Path, policy_dir: str | Path | None = None):
        self.cfg = cfg
        self.spec = get_task(cfg.task)
        self.out = Path(out_dir)
        self.folder = RunFolder(self.out, keep=False)
        self.policy_dir = Path(policy_dir) if policy_dir is not None else self.spec.directory
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        o, a = self.spec.obs_dim, self.spec.act_dim
        self.actor = BehaviorActor(o, a, cfg.hidden)
        self.critic = EnsembleQ(o, a, (cfg.hidden, cfg.hidden), ensemble=2)
        self.target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.zeros((), requires_grad=True)
        self.target_entropy = -float(a)
        self.opt_actor = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.opt_critic = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr)
        self.opt_alpha = torch.optim.Adam([self.log_alpha], lr=cfg.lr)
        self.env = make_env(self.spec)
        self.eval_env = make_env(self.spec)
        model = self.env.unwrapped.model
        self.buffer = ReplayBuffer(cfg.total_steps, o, a, model.nq, model.nv)
        self.np_rng = np.random.default_rng(cfg.seed)
        self.step = 0
        self.episodes = 0
        self.medium: dict | None = None
        self.expert: dict | None = None
        self.history: list[dict] = []
        # Seed of the env reset that follows the last checkpoint (drawn before it was written), so a resumed
        # run starts the same episode an uninterrupted run would; None: draw a fresh one.
        self.next_reset_seed: int | None = None
        # [{"step": s, "changed": {key: [old, new]}}]: settings a resumed run changed (e.g. update_every for
        # the expert phase), so a policy's provenance is complete.
        self.config_changes: list[dict] = []
        self.resumed = False

    # ------------------------------------------------------------------ update
    def update(self) -> dict[str, float]:
        cfg = self.cfg
        obs, act, rew, nobs, term = self.buffer.sample(cfg.batch_size, self.gen)
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            nact, nlogp = self.actor.sample(nobs)
            target_q = self.target(nobs, nact).min(0).values - alpha * nlogp
            y = rew + cfg.gamma * (1.0 - term) * target_q
        q = self.critic(obs, act)
        critic_loss = ((q - y) ** 2).mean(1).sum()
        self.opt_critic.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.opt_critic.step()

        pi, logp = self.actor.sample(obs)
        self.critic.requires_grad_(False)
        actor_loss = (alpha * logp - self.critic(obs, pi).min(0).values).mean()
        self.critic.requires_grad_(True)
        self.opt_actor.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.opt_actor.step()

        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        self.opt_alpha.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.opt_alpha.step()

        with torch.no_grad():
            tp, cp = list(self.target.parameters()), list(self.critic.parameters())
            torch._foreach_lerp_(tp, cp, cfg.tau)
        return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item(), "alpha": alpha.item()}

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, episodes: int, seed: int) -> float:
        """Mean D4RL-normalized score of the deterministic policy over ``episodes`` seeded episodes."""
        returns = []
        for ep in range(episodes):
            obs, _ = self.eval_env.reset(seed=seed + ep)
            done, ret = False, 0.0
            while not done:
                obs, r, term, trunc, _ = self.eval_env.step(self.actor.act(obs, deterministic=True))
                ret += float(r)
                done = term or trunc
            returns.append(ret)
        return float(normalized_score(self.spec, np.mean(returns)))

    def _policy_meta(self, level: str, score: float) -> dict:
        return {"task": self.spec.name, "level": level, "obs_dim": self.spec.obs_dim,
                "act_dim": self.spec.act_dim, "hidden": self.cfg.hidden, "normalized_score": score,
                "env_steps": self.step, "seed": self.cfg.seed, "env_id": self.spec.env_id,
                "sac_config": asdict(self.cfg),
                "config_changes": self.config_changes}

    def _maybe_snapshot(self, score: float) -> None:
        cfg, spec = self.cfg, self.spec
        lo, hi = cfg.medium_band
        wants_medium = self.medium is None and lo <= score <= hi
        wants_expert = score >= spec.expert_threshold and (self.expert is None or score > self.expert["score"])
        if not (wants_medium or wants_expert):
            return
        confirmed = self.evaluate(cfg.confirm_episodes, seed=10_000 + self.step)
        if wants_medium and lo <= confirmed <= hi:
            self.medium = {"score": confirmed, "step": self.step, "replay_size": self.buffer.size}
            save_behavior_policy(self.policy_dir / "behavior_medium.pt", self.actor,
                                 {**self._policy_meta("medium", confirmed), "replay_size": self.buffer.size})
            print(f"[sac {spec.name}] medium policy at step {self.step}: normalized {confirmed:.1f}", flush=True)
        beats_expert = self.expert is None or confirmed > self.expert["score"]
        if wants_expert and confirmed >= spec.expert_threshold and beats_expert:
            self.expert = {"score": confirmed, "step": self.step}
            save_behavior_policy(self.policy_dir / "behavior_expert.pt", self.actor,
                                 self._policy_meta("expert", confirmed))
            print(f"[sac {spec.name}] expert policy at step {self.step}: normalized {confirmed:.1f}", flush=True)

    def save_snapshot(self, score: float) -> Path:
        """Write the current actor to ``<run>/snapshots/step_XXXXXXX.pt`` (a behavior-policy file).

        Every evaluation leaves one, so the medium policy can be chosen afterwards by measuring the
        snapshots (``obd collect select-behavior``) instead of by the first score in a fixed band;
        ``replay_size`` is the buffer prefix that is medium-replay for that snapshot.
        """
        path = self.out / "snapshots" / f"step_{self.step:07d}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_behavior_policy(path, self.actor,
                             {**self._policy_meta("snapshot", score), "replay_size": self.buffer.size})
        return path

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, next_reset_seed: int | None = None) -> None:
        """Write ``buffer.npz``, then ``checkpoint.pt`` (which names the buffer's size), atomically.
        ``next_reset_seed``: the seed of the reset that follows (checkpoints at episode boundaries), so that
        resuming is bit-identical."""
        self.out.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.out / "buffer.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **self.buffer.state())
        state = {
            "config": asdict(self.cfg), "step": self.step, "episodes": self.episodes,
            "actor": self.actor.state_dict(), "critic": self.critic.state_dict(), "target": self.target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "opt_actor": self.opt_actor.state_dict(), "opt_critic": self.opt_critic.state_dict(),
            "opt_alpha": self.opt_alpha.state_dict(),
            "torch_rng": torch.get_rng_state(), "gen": self.gen.get_state(),
            "np_rng": self.np_rng.bit_generator.state, "medium": self.medium, "expert": self.expert,
            "history": self.history, "buffer_size": self.buffer.size,
            "next_reset_seed": next_reset_seed, "config_changes": self.config_changes,
            "action_space_rng": self.env.action_space.np_random.bit_generator.state,
        }
        self.folder.save_checkpoint(state, self.step)

    def load_checkpoint(self) -> None:
        """Continue the run in the output folder: from its checkpoint, or from step 0 when it holds none yet.
        Settings that differ from the checkpoint's are recorded in ``config_changes``; ones a resume may not
        change (``RESUME_MAY_CHANGE["behavior"]``) are an error."""
        self.folder.check_resumable()
        self.resumed = True
        st, path = self.folder.load_checkpoint("SAC checkpoint")
        if st is None:
            check_changes(self.folder.config(), asdict(self.cfg), "behavior", str(self.folder.config_path))
            return
        changed = check_changes(st["config"], asdict(self.cfg), "behavior", str(path))
        changed.pop("total_steps", None)  # every resume changes it; the policies record their env_steps
        arrays = dict(np.load(self.out / "buffer.npz"))
        if len(arrays["observations"]) != st["buffer_size"]:
            raise ObdError(f"{self.out / 'buffer.npz'}: holds {len(arrays['observations'])} rows, "
                           f"checkpoint expects {st['buffer_size']}")
        self.buffer.load(arrays)
        self.actor.load_state_dict(st["actor"])
        self.critic.load_state_dict(st["critic"])
        self.target.load_state_dict(st["target"])
        with torch.no_grad():
            self.log_alpha.copy_(st["log_alpha"])
        self.opt_actor.load_state_dict(st["opt_actor"])
        self.opt_critic.load_state_dict(st["opt_critic"])
        self.opt_alpha.load_state_dict(st["opt_alpha"])
        torch.set_rng_state(st["torch_rng"])
        self.gen.set_state(st["gen"])
        self.np_rng.bit_generator.state = st["np_rng"]
        self.step, self.episodes = st["step"], st["episodes"]
        self.medium, self.expert, self.history = st["medium"], st["expert"], st["history"]
        self.config_changes = list(st.get("config_changes", []))
        if changed:
            self.config_changes.append({"step": self.step, "changed": changed})
        # absent from checkpoints written before resumes were made exact
        self.next_reset_seed = st.get("next_reset_seed")
        if "action_space_rng" in st:
            self.env.action_space.np_random.bit_generator.state = st["action_space_rng"]
        else:
            self.env.action_space.seed(int(self.np_rng.integers(2**31)))

    # ------------------------------------------------------------------ loop
    def train(self, progress: bool = True, checkpoint: bool = True) -> dict:
        """Run until ``total_steps`` env steps; checkpoints land at episode boundaries.

        A run killed and resumed from its last checkpoint continues bit-identically (one torch thread). The
        final checkpoint may fall mid-episode: continuing it with a larger ``total_steps`` starts a new
        episode, so the buffer then holds a cut episode (the dataset builder handles such cuts).
        """
        from tqdm import tqdm

        cfg = self.cfg
        metrics = None
        if checkpoint:  # a measurement (steps_per_second) leaves no run behind
            if not self.resumed:
                self.folder.check_new()
            self.folder.write_config(asdict(cfg))
            metrics = self.folder.metrics_log(self.step)
        bar = tqdm(total=cfg.total_steps, initial=self.step, disable=not progress, desc=f"SAC {self.spec.name}",
                   unit="step", dynamic_ncols=True, mininterval=2.0)
        if self.next_reset_seed is not None:
            obs, _ = self.env.reset(seed=self.next_reset_seed)
            self.next_reset_seed = None
        else:
            obs, _ = self.env.reset(seed=int(self.np_rng.integers(2**31)))
            if self.step == 0:
                self.env.action_space.seed(int(self.np_rng.integers(2**31)))
        data = self.env.unwrapped.data
        ep_ret, t0, steps0, last = 0.0, time.time(), self.step, {}
        checkpoint_due = False
        while self.step < cfg.total_steps:
            qpos, qvel = data.qpos.copy(), data.qvel.copy()
            if self.step < cfg.start_steps:
                act = self.env.action_space.sample()
            else:
                act = self.actor.act(obs)
            nobs, rew, term, trunc, _ = self.env.step(act)
            self.buffer.add(observations=obs, actions=act, rewards=rew, next_observations=nobs,
                            terminals=float(term), timeouts=float(trunc and not term), qpos=qpos, qvel=qvel)
            self.step += 1
            ep_ret += float(rew)
            obs = nobs
            if self.step >= cfg.start_steps and self.step % cfg.update_every == 0:
                last = self.update()
            if self.step % cfg.eval_every == 0:
                score = self.evaluate(cfg.eval_episodes, seed=self.step)
                sps = (self.step - steps0) / (time.time() - t0)
                self.history.append({"step": self.step, "normalized_score": score, "steps_per_sec": sps, **last})
                if metrics is not None:
                    metrics.write(self.history[-1])
                bar.set_postfix(score=f"{score:.1f}", sps=f"{sps:.0f}")
                print(f"[sac {self.spec.name}] step {self.step} eval {score:.1f} sps {sps:.0f}", flush=True)
                self.save_snapshot(score)
                self._maybe_snapshot(score)
            if self.step % cfg.checkpoint_every == 0:
                checkpoint_due = True
            if term or trunc:
                self.episodes += 1
                ep_ret = 0.0
                reset_seed = int(self.np_rng.integers(2**31))
                if checkpoint_due:
                    self.save_checkpoint(next_reset_seed=reset_seed)
                    checkpoint_due = False
                obs, _ = self.env.reset(seed=reset_seed)
            bar.update(1)
        bar.close()
        if checkpoint:
            self.save_checkpoint()
        return {"medium": self.medium, "expert": self.expert, "history": self.history}

    def steps_per_second(self, steps: int) -> float:
        """Env steps per second of the training loop (updates included) over ``steps`` steps."""
        if self.step + steps > len(self.buffer.data["rewards"]):
            raise ObdError(f"steps_per_second: {steps} steps do not fit the replay buffer's capacity")
        self.cfg.total_steps = self.step + steps
        self.cfg.eval_every = 10**12
        self.cfg.checkpoint_every = 10**12
        t = time.time()
        self.train(progress=False, checkpoint=False)
        return steps / (time.time() - t)
