"""The inner loop's settings, :class:`InnerConfig` (the ``inner`` section of a distillation config): how each
student is trained on the synthetic set, in distillation and, through a set's metadata, in its evaluation. Its
own module, torch-free, so the evaluation can read it without importing the distillation's config.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class InnerConfig:
    """T SGD steps (lr, momentum) of BC on the full synthetic batch; ``students`` trained side by side per
    outer step (H averaged over them); ``truncate`` = K > 0 backpropagates through the last K steps only.
    ``random_unroll`` (with ``truncate`` K): random truncated BPTT (Feng et al., ICLR 2024), each outer step
    unrolls n ~ U{K, ..., T} inner steps drawn from the run's generator and backpropagates through the
    last K, so H scores students at every stage from K to T steps. ``pool`` P > 0: a pool of P students at
    different training stages (FRePo, Zhou et al. 2022) replaces the fresh student of every outer step: each
    step starts from a member drawn from the run's generator, and that member keeps the T steps it trained
    (detached); a member that has trained ``pool_max_steps`` inner steps restarts from a fresh init."""

    steps: int = 100
    lr: float = 0.1
    momentum: float = 0.0
    students: int = 1
    truncate: int = 0
    random_unroll: bool = False
    pool: int = 0
    pool_max_steps: int = 400
