"""Initial synthetic sets: where the N learnable (state, action) pairs start.

- ``random``: N distinct real pairs drawn uniformly (the paper's initialization).
- ``kmeans``: k-means++ (scikit-learn) with N centres on the normalized real states; each centre's action
  is the real action of its nearest real state. Fitted on at most ``KMEANS_MAX_STATES`` states drawn
  uniformly, which keeps 2M-transition datasets to seconds.
- ``topq``: the N real pairs with the highest teacher Q1(s, a) of the dataset's own action.

States are returned in normalized space (where distillation learns them), actions as recorded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from obd.errors import ObdError

INITS = ("random", "kmeans", "topq")
KMEANS_MAX_STATES = 50_000


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
