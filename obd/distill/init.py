"""Initial synthetic sets: where the N learnable (state, action) pairs start.

- ``random``: N distinct real pairs drawn uniformly (the paper's initialization).
- ``kmeans``: k-means++ (scikit-learn) with N centres on the normalized real states; each centre's action
  is the real action of its nearest real state. Fitted on at most ``KMEANS_MAX_STATES`` states drawn
  uniformly, which keeps 2M-transition datasets to seconds.
- ``topq``: the N real pairs with the highest teacher Q1(s, a) of the dataset's own action.
- ``teacher``: N distinct states drawn uniformly from episodes of the teacher's own rollouts (its deterministic
  action, from seeded resets), each paired with that action: the set starts on the teacher's state
  distribution d^{pi*} rather than the data's, which on data of several policies holds few of those states
  (what it measured: docs/results.md, "The teacher's own states as the initial set"). Needs the dataset's
  task, to roll the teacher out. The config's ``init_share`` keeps only that share of the set from the
  teacher (the rest ``random``), ``init_max_steps`` cuts each of the teacher's episodes short, ``init_noise``
  adds Gaussian noise to the teacher's actions in those rollouts (DART), so its states include recoveries.

States are returned in normalized space (where distillation learns them), actions as recorded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from obd.errors import ObdError

INITS = ("random", "kmeans", "topq", "teacher")
KMEANS_MAX_STATES = 50_000
#: the teacher plays episodes in batches of this many until its rollouts hold n_syn distinct states
TEACHER_EPISODES, TEACHER_MAX_EPISODES = 5, 100


def initial_pairs(init: str, normalized_states: np.ndarray, actions: np.ndarray, n_syn: int, seed: int,
                  q_values: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pick the starting synthetic set. ``normalized_states`` (N_real, obs), ``actions`` (N_real, act);
    ``q_values`` (N_real,) Q1(s, a) of the dataset pairs, needed by ``topq``. Returns states (n_syn, obs)
    and actions (n_syn, act), float32."""
    n_real = len(normalized_states)
    if n_syn > n_real:
        raise ObdError(f"n_syn: {n_syn} synthetic pairs requested but the dataset holds only {n_real} transitions")
    rng = np.random.default_rng(seed)
    if init == "random":
        idx = rng.choice(n_real, size=n_syn, replace=False)
        states, acts = normalized_states[idx], actions[idx]
    elif init == "kmeans":
        states, acts = _kmeans(normalized_states, actions, n_syn, rng, seed)
    elif init == "teacher":
        raise ValueError("init 'teacher' draws its pairs with teacher_init_pairs(), not from the dataset")
    elif init == "topq":
        if q_values is None:
            raise ObdError("init: 'topq' needs a teacher (Q values of the dataset pairs)")
        idx = np.argsort(-np.asarray(q_values), kind="stable")[:n_syn]
        states, acts = normalized_states[idx], actions[idx]
    else:
        raise ObdError(f"init '{init}' unknown; expected one of {list(INITS)}")
    return np.asarray(states, np.float32).copy(), np.asarray(acts, np.float32).copy()


def _kmeans(states: np.ndarray, actions: np.ndarray, n_syn: int, rng: np.random.Generator,
            seed: int) -> tuple[np.ndarray, Any]:
    from sklearn.cluster import KMeans
    from sklearn.metrics import pairwise_distances_argmin

    if len(states) > KMEANS_MAX_STATES:
        sub = rng.choice(len(states), size=KMEANS_MAX_STATES, replace=False)
        states, actions = states[sub], actions[sub]
    km = KMeans(n_clusters=n_syn, init="k-means++", n_init=1, random_state=seed).fit(states)
    centres = km.cluster_centers_.astype(np.float32)
    nearest = pairwise_distances_argmin(centres, states)
    return centres, actions[nearest]


def teacher_pairs(teacher: Any, task: str, normalizer: Any, n_syn: int, seed: int,
                  first_seed: int, max_steps: int | None = None,
                  action_noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``init=teacher``: roll out the teacher's deterministic action in ``task`` (episodes reset from seeds
    ``first_seed``, ``first_seed + 1``, ..., ``TEACHER_EPISODES`` at a time, each at most ``max_steps`` steps,
    the task's limit by default; with ``action_noise`` sigma > 0 it plays its action plus Gaussian noise of
    that std, DART's noisy demonstrations) until the visited states number at
    least ``n_syn``, draw ``n_syn`` of them without replacement (numpy, ``seed``) and label each with the
    teacher's (noise-free) action there. ``task`` must be one obd simulates (:func:`teacher_init_problem`). Returns
    normalized states (n_syn, obs) and actions (n_syn, act), float32."""
    import torch

    from obd.distill.onpolicy import teacher_visits

    seen: list[np.ndarray] = []
    episodes = 0
    while sum(map(len, seen)) < n_syn:
        if episodes >= TEACHER_MAX_EPISODES:
            raise ObdError(f"init 'teacher': the teacher's {episodes} episodes in {task} visited "
                           f"{sum(map(len, seen))} states, fewer than n_syn = {n_syn}")
        seen.append(teacher_visits(teacher, task, TEACHER_EPISODES, first_seed + episodes, max_steps, action_noise))
        episodes += TEACHER_EPISODES
    raw = np.concatenate(seen)
    raw = raw[np.random.default_rng(seed).choice(len(raw), size=n_syn, replace=False)]
    with torch.no_grad():
        actions = np.asarray(torch.as_tensor(teacher.act(raw)).detach().cpu(), dtype=np.float32)
    states = np.asarray(normalizer.normalize(raw), dtype=np.float32)
    return states.copy(), actions.copy()


def teacher_init_pairs(teacher: Any, task: str, normalizer: Any, normalized_states: np.ndarray,
                       actions: np.ndarray, n_syn: int, share: float, seed: int, first_seed: int,
                       max_steps: int | None = None, action_noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``init=teacher`` with ``init_share``: round(``share`` x ``n_syn``) pairs (at least one) from
    :func:`teacher_pairs`, then the rest as distinct real pairs drawn uniformly (:func:`initial_pairs`
    ``random``) from ``normalized_states`` (N_real, obs) and ``actions`` (N_real, act). Returns states
    (n_syn, obs) and actions (n_syn, act), float32, the teacher's first."""
    n_teacher = max(1, round(share * n_syn))
    states, acts = teacher_pairs(teacher, task, normalizer, n_teacher, seed, first_seed, max_steps, action_noise)
    if n_teacher == n_syn:
        return states, acts
    data_states, data_acts = initial_pairs("random", normalized_states, actions, n_syn - n_teacher, seed)
    return np.concatenate([states, data_states]), np.concatenate([acts, data_acts])


def teacher_init_problem(task: str | None, obs_dim: int, act_dim: int) -> str:
    """Why ``init=teacher`` cannot roll the teacher out for a dataset of ``task`` with these dims, as a
    one-line message naming the key; '' when it can."""
    from obd.envs import check_dims, get_task

    if not task:
        return ("config key 'init': 'teacher' rolls the teacher out in the dataset's task, and the dataset names "
                "none (pass task=)")
    try:
        check_dims(get_task(task), obs_dim, act_dim, "the dataset")
    except ObdError as err:
        return f"config key 'init': 'teacher': {err}"
    return ""
