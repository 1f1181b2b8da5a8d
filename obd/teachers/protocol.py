"""What distillation and evaluation need from a teacher: the :class:`TeacherLike` protocol.

:class:`obd.teachers.Teacher` satisfies it; so can a user's own policy (any framework) wrapped in a small
class. All methods take RAW environment states (the teacher normalizes internally), as a torch tensor or
numpy array of shape (B, obs_dim), and return torch tensors (CPU or any device; obd moves them). They are
called without gradients, in chunks, once per real state before distillation starts.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class TeacherLike(Protocol):
    """A teacher policy pi*(a|s) with a critic Q(s, a), as PBC / Av-PBC and ``init=topq`` use it.

    * ``obs_dim``, ``act_dim``: ints; must match the dataset.
    * ``task``: the task name (``"hopper"``) or None; checked against the dataset's when both are known.
    * ``stochastic``: True for a tanh-Gaussian actor (then ``mean_std`` is used), False for a deterministic one.
    * ``act(s)`` -> (B, act_dim): the deterministic action in [-1, 1] (``tanh(mean)``); PBC's target when not
      stochastic, the action Av-PBC's Q is evaluated at, and what ``obd evaluate teacher`` rolls out.
    * ``mean_std(s)`` -> ((B, act_dim), (B, act_dim)): the pre-tanh Gaussian's mean and std (stochastic only);
      PBC's target is a* = tanh(mean + std * eps).
    * ``q(s, a)`` -> (B,): the critic, used by Av-PBC's weight beta * Q(s, act(s)) and ``init=topq``.
    * ``to(device)``: move to a torch device; may return self or None.
    * ``metadata``: a dict (may be empty); ``metadata["source"]`` labels the teacher in run metadata.
    """

    obs_dim: int
    act_dim: int
    task: str | None
    stochastic: bool
    metadata: dict[str, Any]

    def act(self, states: Any) -> Any: ...

    def mean_std(self, states: Any) -> tuple[Any, Any]: ...

    def q(self, states: Any, actions: Any) -> Any: ...

    def to(self, device: Any) -> Any: ...
