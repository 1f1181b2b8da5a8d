"""On-policy states: train the synthetic set for the states its own students visit, labelled by the teacher.

A student trained on a few hundred pairs drifts off the data within a few steps of a rollout and errs
most where it goes (docs/results.md, "State coverage"). Noise around the data (:mod:`obd.distill.coverage`)
guesses where that is; a rollout of the student measures it. This is DAgger (Ross et al., 2011) moved to
the outer loop: every ``every`` outer steps the student the inner loop has just trained (the first of the
``inner.students``, the protocol's student: T steps of BC on the current set from a fresh init) plays
``episodes`` episodes in the simulator with its deterministic action ``tanh(mean)``; the raw states it
visits are labelled by the teacher once, in one batched call per quantity, and enter a first-in-first-out
buffer of ``capacity`` states. From then on a share ``share`` of every outer batch (its last rows, after
coverage has perturbed the first ones) is drawn from that buffer, uniformly with replacement, from the
engine's generator. With ``share_end`` the share falls (or rises) linearly from ``share`` at the first outer
step to ``share_end`` at the last, so the students' states pull the set early in the run and the data's
objective has the last word.

At a visited state the target is the teacher's (a fresh sample of pi*(.|s) for a stochastic teacher, its
action otherwise); Av-PBC's and SDW's weight beta * Q uses, by ``q``: ``state`` Q1(s, pi*(s)) there, or
``mean`` the dataset's mean Q (a state where a student is about to fall has a low Q, and it is the state
whose error matters most; SDW's density weights have mean 1, so such a state gets 1).

With ``novelty`` q > 0 the visited states are gated by their distance to the data: a visited state is
novel when its distance to the nearest of a reference sample of dataset states (normalized units,
scikit-learn nearest neighbours) exceeds the q-quantile of the same distance for held-out dataset states.
With ``gate=off_data`` a drawn visited state that is not novel leaves the batch's data row in place, so the
states the data already has are served by the data itself and only where students leave it (a hopper about
to fall) do the teacher's labels there enter. With ``gate=on_data`` a novel one does (the teacher is least
reliable far off the data), and the students' states reweight the data towards where they go.

With ``teacher_share`` > 0 the teacher itself plays ``teacher_episodes`` episodes once, before the first
outer step, and a share ``teacher_share`` of every outer batch (the rows before the students' ones) is drawn
from the states it visits, labelled as above: the set is then trained for the teacher's state distribution
d^{pi*} as well as the data's, the distribution behavior cloning's error bounds are taken over. On data
where the teacher's gait is rare (medium-replay, the medium half of medium-expert) the uniform outer batch
spends most of its rows elsewhere.

The episodes start from ``reset(seed=...)`` seeded by the run's seed and the outer step, and the policy is
deterministic, so a rollout draws nothing from the engine's generator; the buffer is part of the
checkpoint, so a resumed run is bit-identical.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch

from obd.data.dataset import Normalizer
from obd.distill.inner import student_action
from obd.distill.objectives import query_teacher, teacher_mean_std, teacher_sample
from obd.distill.registry import OBJECTIVES
from obd.envs import check_dims, get_task
from obd.errors import ObdError

#: episode e of the rollout at outer step k starts from reset(seed = seed * SEED_STRIDE + k * episodes + e),
#: so no two rollouts of one run, nor the evaluation's seeds 0.., share an initial state
SEED_STRIDE = 1_000_003
#: dataset states the novelty test measures against, and held-out ones that set its threshold
NOVELTY_REFERENCE, NOVELTY_HELD_OUT = 50_000, 5_000


def rollout_seed(seed: int, step: int, episodes: int) -> int:
    """The env seed of the first episode of the rollout at outer ``step`` of a run seeded ``seed``."""
    return (seed * SEED_STRIDE + step * episodes + 1) % (2 ** 31 - episodes)


def teacher_rollout_seed(seed: int, episodes: int) -> int:
    """The env seed of the teacher's first episode in a run seeded ``seed`` (half a stride from the
    students' seeds of that run)."""
    return (seed * SEED_STRIDE + SEED_STRIDE // 2) % (2 ** 31 - episodes)


@torch.no_grad()
def teacher_visits(teacher: Any, task: str, episodes: int, first_seed: int,
                   max_steps: int | None = None, action_noise: float = 0.0) -> np.ndarray:
    """The raw states (N, obs), float32, that the teacher's deterministic action visits in ``episodes``
    episodes of ``task`` reset from seeds ``first_seed``, ``first_seed + 1``, ... (each at most ``max_steps``
    steps; the task's limit by default). With ``action_noise`` sigma > 0 the teacher plays a + N(0, sigma^2 I)
    (clipped to the action bounds; numpy generator seeded ``first_seed``): DART's noisy demonstrations
    (Laskey et al., 2017), whose states include the teacher's recoveries from its own errors."""
    from obd.envs.rollout import rollout

    seen: list[np.ndarray] = []
    rng = np.random.default_rng(first_seed)

    def policy(obs: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        action = torch.as_tensor(teacher.act(obs.cpu().numpy()))
        if action_noise > 0:
            action = action + torch.as_tensor(action_noise * rng.standard_normal(tuple(action.shape)),
                                              dtype=action.dtype)
        return action

    rollout(task, policy, 1, episodes, seed=first_seed, max_steps=max_steps, observer=seen.append)
    return np.concatenate(seen).astype(np.float32)


def simulator_problem(config: Any, task: str | None, obs_dim: int, act_dim: int, what: str = "on-policy states") -> str:
    """Why the dataset's ``task`` gives no simulator to roll policies out in for ``what`` turned on by
    ``config`` (anything with the ``key`` that turned it on), as a message naming the key; '' when it does."""
    if not task:
        return (f"config key '{config.key}': {what} need the dataset's task (a simulator to roll "
                f"policies out in), and the dataset names none")
    try:
        check_dims(get_task(task), obs_dim, act_dim, "the dataset")
    except ObdError as err:
        return f"config key '{config.key}': {err}"
    return ""


def onpolicy_states(config: Any, task: str | None, obs_dim: int, act_dim: int, *args: Any,
                    **kwargs: Any) -> OnPolicyStates | None:
    """The run's :class:`OnPolicyStates` (arguments as its constructor's), or None when ``config`` turns no
    rollout states on, or when it is ``optional`` and ``task`` gives no simulator (a note on stderr says so)."""
    if not config.enabled:
        return None
    problem = simulator_problem(config, task, obs_dim, act_dim)
    if problem and config.optional:
        print(f"note: {problem}; distilling without them (onpolicy.optional)", file=sys.stderr)
        return None
    return OnPolicyStates(config, task, *args, obs_dim=obs_dim, act_dim=act_dim, **kwargs)


class NoveltyTest:
    """Whether states lie off the data: distance to the nearest of up to ``NOVELTY_REFERENCE`` dataset states
    ``real_states`` (N, obs, normalized) above the ``quantile`` of that distance for up to ``NOVELTY_HELD_OUT``
    other dataset states. The two samples are drawn from ``seed`` alone (not the engine's generator), so a
    resumed run rebuilds the same test."""

    def __init__(self, real_states: torch.Tensor, quantile: float, seed: int):
        from sklearn.neighbors import NearestNeighbors

        data = real_states.detach().cpu().numpy().astype(np.float64)
        order = np.random.default_rng(seed).permutation(len(data))
        held = min(NOVELTY_HELD_OUT, max(1, len(data) // 5))
        reference = data[order[held:held + NOVELTY_REFERENCE]]
        self.index = NearestNeighbors(n_neighbors=1).fit(reference)
        self.threshold = float(np.quantile(self.distance(data[order[:held]]), quantile))

    def distance(self, states: np.ndarray) -> np.ndarray:
        """(n,) distance of each normalized state (n, obs) to its nearest reference state."""
        return self.index.kneighbors(np.asarray(states, dtype=np.float64))[0][:, 0]

    def __call__(self, states: np.ndarray) -> np.ndarray:
        """(n,) bool: which normalized states (n, obs) are farther from the data than the threshold."""
        return self.distance(states) > self.threshold


class OnPolicyStates:
    """The buffer of visited states with their teacher labels, filled by :meth:`collect` and mixed into the
    outer batch by :meth:`apply`.

    ``config`` is the run's :class:`obd.distill.config.OnPolicyConfig`; ``task`` the dataset's task (a
    simulator obd knows); ``teacher`` a TeacherLike taking raw states; ``objective`` the run's
    :class:`obd.distill.objectives.Objective`; ``real_states`` (N, obs) the normalized dataset states (read
    only with ``novelty``). Buffer tensors live on ``device``: ``states`` (C, obs) normalized, by teacher kind
    ``mean``/``std`` or ``action`` (C, act), ``q`` (C,) for Q-weighted objectives and ``take`` (C,) 1/0
    with ``novelty`` (whether the gate lets the state take its row).
    """

    def __init__(self, config: Any, task: str | None, teacher: Any, normalizer: Normalizer, objective: Any,
                 obs_dim: int, act_dim: int, seed: int, device: torch.device, q_clip: bool = False,
                 real_states: torch.Tensor | None = None, outer_steps: int = 1):
        problem = simulator_problem(config, task, obs_dim, act_dim)
        if problem:
            raise ObdError(f"{problem}; pass {config.key}=0 to distill without on-policy states")
        self.spec = get_task(task)
        self.config, self.teacher, self.normalizer, self.objective = config, teacher, normalizer, objective
        self.act_dim, self.seed, self.device, self.q_clip = act_dim, seed, device, q_clip
        self.outer_steps = outer_steps  # the length ``share_end`` is reached over
        self.stochastic = objective.teacher_mean is not None
        self.q_weighted = OBJECTIVES[objective.name].q_weighted
        q = objective.q_values
        self.mean_q = None if q is None else float(q.mean())
        cap = config.capacity
        self.buffer: dict[str, torch.Tensor] = {"states": torch.zeros((cap, obs_dim), device=device)}
        for name in (("mean", "std") if self.stochastic else ("action",)):
            self.buffer[name] = torch.zeros((cap, act_dim), device=device)
        if self.q_weighted:
            self.buffer["q"] = torch.zeros(cap, device=device)
        self.novelty = None
        if config.novelty > 0:
            if real_states is None:
                raise ValueError("onpolicy.novelty needs the dataset's states")
            self.novelty = NoveltyTest(real_states, config.novelty, seed)
            self.buffer["take"] = torch.zeros(cap, device=device)
        self.size = 0
        self.head = 0
        self.visited = 0  # states visited over the run (the buffer keeps the last ``capacity``)
        #: the teacher's own states and their labels (empty without ``teacher_share``)
        self.teacher_pool: dict[str, torch.Tensor] = {}
        if config.teacher_share > 0:
            self.teacher_pool = self.teacher_states()

    def due(self, step: int) -> bool:
        """Whether the student trained at outer ``step`` (0-based) is rolled out."""
        return self.config.share > 0 and step % self.config.every == 0

    def share_at(self, step: int) -> float:
        """The share of outer step ``step`` (0-based): ``share``, or with ``share_end`` the linear way from
        ``share`` at step 0 to ``share_end`` at step ``outer_steps - 1``."""
        start, end = self.config.share, self.config.share_end
        if end is None:
            return start
        return start + (end - start) * min(step / max(self.outer_steps - 1, 1), 1.0)

    def rows(self, batch: int, step: int = 0) -> int:
        """The outer batch's rows at outer ``step`` drawn from the buffer (0 while it is empty)."""
        return 0 if self.size == 0 else int(round(self.share_at(step) * batch))

    # ------------------------------------------------------------------ filling the buffer
    @torch.no_grad()
    def collect(self, params: list[torch.Tensor], step: int) -> dict[str, float]:
        """Roll out the first student of ``params`` (the inner loop's trained students) for ``episodes``
        episodes, label the visited states and add them; returns the rollout's mean episode length and
        normalized score (and with ``novelty`` the share of its states off the data)."""
        from obd.envs.rollout import rollout

        first = [p[:1].detach() for p in params]
        seen: list[np.ndarray] = []

        def policy(obs: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            return student_action(first, obs.to(self.device), self.act_dim)[0]

        cfg = self.config
        result = rollout(self.spec.name, policy, 1, cfg.episodes, normalizer=self.normalizer,
                         seed=rollout_seed(self.seed, step, cfg.episodes), device=self.device,
                         max_steps=cfg.max_steps or None, observer=seen.append)
        novel = self.add(np.concatenate(seen).astype(np.float32))
        out = {"onpolicy_length": float(result.lengths.mean()), "onpolicy_score": float(result.scores.mean())}
        if novel is not None:
            out["onpolicy_novel"] = novel
        return out

    @torch.no_grad()
    def teacher_states(self) -> dict[str, torch.Tensor]:
        """Roll out the teacher's deterministic action for ``teacher_episodes`` episodes and label the states
        it visits; returns the labels (as :meth:`labels`)."""
        episodes = self.config.teacher_episodes
        raw = teacher_visits(self.teacher, self.spec.name, episodes, teacher_rollout_seed(self.seed, episodes),
                             self.config.max_steps or None)
        return self.labels(raw, np.asarray(self.normalizer.normalize(raw), dtype=np.float32))

    def add(self, raw: np.ndarray) -> float | None:
        """Label raw states (n, obs) with the teacher and put them in the buffer (the oldest make way);
        returns the share of them off the data with ``novelty`` (None without)."""
        raw = raw[-self.config.capacity:]
        n = len(raw)
        normalized = np.asarray(self.normalizer.normalize(raw), dtype=np.float32)
        labels = self.labels(raw, normalized)
        novel_share = None
        if self.novelty is not None:
            novel = self.novelty(normalized)
            novel_share = float(novel.mean()) if n else 0.0
            take = novel if self.config.gate == "off_data" else ~novel
            labels["take"] = torch.as_tensor(take, dtype=torch.float32, device=self.device)
        slots = (self.head + torch.arange(n, device=self.device)) % self.config.capacity
        for name, value in labels.items():
            self.buffer[name][slots] = value.to(self.buffer[name].dtype)
        self.head = (self.head + n) % self.config.capacity
        self.size = min(self.size + n, self.config.capacity)
        self.visited += n
        return novel_share

    def labels(self, raw: np.ndarray, normalized: np.ndarray) -> dict[str, torch.Tensor]:
        """The teacher's labels of raw states (n, obs), asked once per state and quantity: ``states`` (n, obs)
        ``normalized``, ``mean``/``std`` or ``action`` (n, act), and ``q`` (n,) for Q-weighted objectives."""
        n = len(raw)
        labels = {"states": torch.as_tensor(normalized, device=self.device)}
        ask = dict(chunk=max(n, 1), device=self.device, progress=False, what="visited states")
        if self.stochastic:
            both = query_teacher(lambda s: teacher_mean_std(self.teacher, s), raw, desc="teacher mean/std",
                                 width=2 * self.act_dim, **ask)
            labels["mean"], labels["std"] = both.chunk(2, -1)
            action = None
        else:
            labels["action"] = action = query_teacher(self.teacher.act, raw, desc="teacher actions",
                                                      width=self.act_dim, **ask)
        if self.q_weighted and self.config.q == "state":
            if action is None:
                action = query_teacher(self.teacher.act, raw, desc="teacher actions", width=self.act_dim, **ask)
            q = query_teacher(self.teacher.q, raw, desc="teacher Q", actions=action.cpu().numpy(), **ask)
            labels["q"] = q.clamp_min(0.0) if self.q_clip else q
        elif self.q_weighted:
            labels["q"] = torch.full((n,), self.mean_q, device=self.device)
        return labels

    # ------------------------------------------------------------------ using it
    def teacher_rows(self, batch: int) -> int:
        """The outer batch's rows drawn from the teacher's own states (0 without ``teacher_share``)."""
        return int(round(self.config.teacher_share * batch)) if self.teacher_pool else 0

    def _draw(self, pool: dict[str, torch.Tensor], size: int, m: int, generator: torch.Generator,
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """m uniform draws from the first ``size`` rows of ``pool``: states (m, obs), targets (m, act), weights
        (m,) and, when the pool gates them, which drawn states take their rows (m,) bool."""
        pick = torch.randint(size, (m,), generator=generator, device=self.device)
        if self.stochastic:
            targets = teacher_sample(pool["mean"][pick], pool["std"][pick], generator)
        else:
            targets = pool["action"][pick]
        weights = self.objective.beta * pool["q"][pick] if self.q_weighted else torch.ones(m, device=self.device)
        take = pool["take"][pick].bool() if "take" in pool else None
        return pool["states"][pick], targets, weights, take

    def apply(self, states: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None,
              clean_states: torch.Tensor, generator: torch.Generator, step: int = 0,
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The outer batch of outer ``step`` with its last :meth:`rows` rows replaced by draws from the visited
        states and the :meth:`teacher_rows` rows before them by draws from the teacher's states: states (B, obs),
        targets (B, act), weights (B,) or None, and the clean states (B, obs) ``value_metric.at=clean`` reads (a
        visited state is its own clean state). With ``novelty`` a drawn visited state the gate stops keeps
        the data row."""
        batch = len(states)
        m = self.rows(batch, step)
        t = self.teacher_rows(batch)
        if m == 0 and t == 0:
            return states, targets, weights, clean_states
        states, targets, clean_states = states.clone(), targets.clone(), clean_states.clone()
        weights = None if weights is None else weights.clone()
        draws = []
        if m:
            draws.append((slice(batch - m, batch), self._draw(self.buffer, self.size, m, generator)))
        if t:
            size = len(self.teacher_pool["states"])
            draws.append((slice(batch - m - t, batch - m), self._draw(self.teacher_pool, size, t, generator)))
        for rows, (new_states, new_targets, new_weights, take) in draws:
            if take is not None:
                new_states = torch.where(take[:, None], new_states, states[rows])
                new_targets = torch.where(take[:, None], new_targets, targets[rows])
                new_clean = torch.where(take[:, None], new_states, clean_states[rows])
                if weights is not None:
                    new_weights = torch.where(take, new_weights, weights[rows])
            else:
                new_clean = new_states
            states[rows], targets[rows], clean_states[rows] = new_states, new_targets, new_clean
            if weights is not None:
                weights[rows] = new_weights
        return states, targets, weights, clean_states

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size, "head": self.head, "visited": self.visited,
                "buffer": {k: v[:self.size].cpu().clone() for k, v in self.buffer.items()},
                "teacher_pool": {k: v.cpu().clone() for k, v in self.teacher_pool.items()}}

    def load_state_dict(self, state: dict[str, Any], where: str) -> None:
        names = set(self.buffer)
        if set(state.get("buffer", {})) != names:
            raise ObdError(f"{where}: its on-policy buffer holds {sorted(state.get('buffer', {}))}, the config's "
                           f"onpolicy settings need {sorted(names)}")
        size = int(state["size"])
        if size > self.config.capacity:
            raise ObdError(f"{where}: its on-policy buffer holds {size} states, above onpolicy.capacity "
                           f"{self.config.capacity}")
        for name, value in state["buffer"].items():
            self.buffer[name].zero_()
            self.buffer[name][:size] = value.to(self.device)
        self.size, self.head, self.visited = size, int(state["head"]), int(state.get("visited", size))
        pool = state.get("teacher_pool", {})
        if set(pool) != set(self.teacher_pool):
            raise ObdError(f"{where}: its teacher states hold {sorted(pool)}, the config's onpolicy settings need "
                           f"{sorted(self.teacher_pool)}")
        self.teacher_pool = {name: value.to(self.device) for name, value in pool.items()}
