"""K fresh students trained side by side: parameters stacked along a leading K axis, one vmapped forward.

Each student's parameters are a slice of the stacked tensors, and the training loss is the *sum* of the
students' own BC losses, so every student receives exactly the gradient of its own loss; the optimizers
offered are elementwise (SGD, SGD-momentum, Adam, AdamW), so one optimizer over the stacked tensors is
K independent optimizers. The optimizer is built once per training run (the published code rebuilt it
every step, which silently turned Adam into plain SGD).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from obd.device import resolve_device
from obd.distill.student_config import StudentConfig
from obd.distill.students import bc_loss
from obd.errors import ObdError
from obd.evaluate.architectures import make_eval_student

OPTIMIZERS = ("sgd", "sgd_momentum", "adam", "adamw")
#: learning rates used when none is given: plain SGD at the inner loop's 0.1; momentum 0.9 multiplies the
#: effective step by 10, hence 0.01; Adam/AdamW at the usual 1e-3.
DEFAULT_LR = {"sgd": 0.1, "sgd_momentum": 0.01, "adam": 1e-3, "adamw": 1e-3}
ADAMW_WEIGHT_DECAY = 1e-2


def resolve_lr(optimizer: str, lr: float | None) -> float:
    check_optimizer(optimizer)
    if lr is None:
        return DEFAULT_LR[optimizer]
    if not lr > 0:
        raise ObdError(f"lr must be > 0, got {lr}")
    return float(lr)


def check_optimizer(optimizer: str) -> None:
    if optimizer not in OPTIMIZERS:
        raise ObdError(f"optimizer '{optimizer}' unknown; expected one of {list(OPTIMIZERS)}")


def build_optimizer(optimizer: str, params: list[torch.Tensor], lr: float,
                    momentum: float | None = None) -> torch.optim.Optimizer:
    """``sgd`` (momentum 0, or ``momentum``: the inner loop's heavy ball), ``sgd_momentum`` (0.9),
    ``adam``, ``adamw`` (weight decay 1e-2)."""
    check_optimizer(optimizer)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum or 0.0)
    if optimizer == "sgd_momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9 if momentum is None else momentum)
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.AdamW(params, lr=lr, weight_decay=ADAMW_WEIGHT_DECAY)


@dataclass
class TrainLog:
    """Per-step mean BC loss over students, (steps,), and the last step's per-student loss, (K,) (empty
    when no step was taken)."""

    losses: list[float]
    final_per_student: list[float]


class StudentBatch:
    """K students of one architecture (a :class:`StudentConfig` or a name such as ``mlp3`` / ``mlp3x128``);
    ``params`` maps names to stacked tensors (K, ...); ``built`` is one unstacked student, for inspection.

    ``forward(states)`` takes states (N, obs_dim) shared by all students, or (K, N, obs_dim) one slice per
    student, and returns ``(mean, log_std)`` each (K, N, act_dim).
    """

    def __init__(self, arch: str | StudentConfig, obs_dim: int, act_dim: int, students: int, seed: int = 0,
                 device: str | torch.device | None = None):
        if students < 1:
            raise ObdError(f"students must be >= 1, got {students}")
        self.arch, self.obs_dim, self.act_dim, self.students = arch, obs_dim, act_dim, students
        self.device = resolve_device(device)
        gen = torch.Generator().manual_seed(int(seed))
        models = []
        for _ in range(students):
            m = make_eval_student(arch, obs_dim, act_dim)
            m.reset_parameters(gen)
            models.append(m)
        params, buffers = stack_module_state(models)
        if buffers:
            raise ObdError(f"arch '{arch}': students with buffers are not supported")
        self.params = {k: v.detach().to(self.device) for k, v in params.items()}
        self.built = models[0]
        self._base = copy.deepcopy(models[0]).to("meta")

    def _single(self, params: dict[str, torch.Tensor], states: torch.Tensor):
        return functional_call(self._base, params, (states,))

    def _mean(self, states: torch.Tensor) -> torch.Tensor:
        """Every student's pre-tanh mean (K, N, act_dim); works for deterministic heads (no log-std)."""
        in_dim = 0 if states.ndim == 3 else None
        return vmap(lambda p, x: self._single(p, x)[0], in_dims=(0, in_dim))(self.params, states)

    def forward(self, states: torch.Tensor, params: dict[str, torch.Tensor] | None = None):
        params = self.params if params is None else params
        in_dim = 0 if states.ndim == 3 else None
        return vmap(self._single, in_dims=(0, in_dim))(params, states)

    def train(self, states: torch.Tensor, actions: torch.Tensor, steps: int, optimizer: str = "sgd",
              lr: float | None = None, seed: int = 0, batch_size: int | None = None,
              progress: bool = False, momentum: float | None = None) -> TrainLog:
        """Behavior-clone every student on ``(states, actions)`` ((N, obs), (N, act), states normalized).

        Each step: fresh Gaussian noise per student and sample, ``bc_loss`` (the inner loop's MSE of the
        sampled action), one optimizer step. ``batch_size=None`` is full-batch (the inner loop); otherwise
        each student draws its own minibatch of ``batch_size`` indices with replacement. ``momentum``
        overrides the SGD optimizers' momentum (see :func:`build_optimizer`).
        """
        if steps < 0:
            raise ObdError(f"steps must be >= 0, got {steps}")
        lr = resolve_lr(optimizer, lr)
        states = torch.as_tensor(states, dtype=torch.float32, device=self.device)
        actions = torch.as_tensor(actions, dtype=torch.float32, device=self.device)
        if states.shape[-1] != self.obs_dim or actions.shape[-1] != self.act_dim:
            raise ObdError(f"training data dims ({states.shape[-1]}, {actions.shape[-1]}) do not match the "
                           f"students' ({self.obs_dim}, {self.act_dim})")
        params = {k: v.clone().requires_grad_(True) for k, v in self.params.items()}
        opt = build_optimizer(optimizer, list(params.values()), lr, momentum)
        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        n = len(states)
        loss_fn: Callable = vmap(
            lambda p, x, y, eps: bc_loss(*self._single(p, x), y, eps),
            in_dims=(0, 0 if batch_size else None, 0 if batch_size else None, 0),
        )
        losses: list[float] = []
        per_student = torch.empty(0)
        for _ in tqdm(range(steps), desc=f"train {self.students} students", disable=not progress, leave=False):
            if batch_size:
                idx = torch.randint(0, n, (self.students, batch_size), generator=gen, device=self.device)
                x, y = states[idx], actions[idx]
            else:
                x, y = states, actions
            noise = torch.randn((self.students, x.shape[-2], self.act_dim), generator=gen, device=self.device)
            per_student = loss_fn(params, x, y, noise)
            opt.zero_grad(set_to_none=True)
            per_student.sum().backward()
            opt.step()
            losses.append(float(per_student.detach().mean()))
        self.params = {k: v.detach() for k, v in params.items()}
        self.last_optimizer = opt
        return TrainLog(losses, per_student.detach().cpu().tolist())

    @torch.no_grad()
    def act_all(self, states: torch.Tensor) -> torch.Tensor:
        """Every student's deterministic action ``tanh(mean)`` on shared states (M, obs): (K, M, act)."""
        return torch.tanh(self._mean(states))

    @torch.no_grad()
    def policy(self, obs: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Rollout policy: row ``m`` gets student ``idx[m]``'s ``tanh(mean)``; (M, obs), (M,) -> (M, act).

        Rows are scattered into a padded (K, W, obs) block (W = most rows any student has), so all K
        students run in one vmapped forward without computing every student on every row.
        """
        m = len(obs)
        counts = torch.bincount(idx, minlength=self.students)
        order = torch.argsort(idx, stable=True)
        sorted_idx = idx[order]
        offsets = torch.cumsum(counts, 0) - counts
        pos = torch.arange(m, device=obs.device) - offsets[sorted_idx]
        padded = obs.new_zeros(self.students, int(counts.max()), obs.shape[-1])
        padded[sorted_idx, pos] = obs[order]
        mean = self._mean(padded)
        out = torch.empty(m, self.act_dim, device=obs.device, dtype=mean.dtype)
        out[order] = torch.tanh(mean[sorted_idx, pos])
        return out

    @torch.no_grad()
    def ensemble_policy(self, obs: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """One policy: the average of the K students' actions ``tanh(mean)``; (M, obs) -> (M, act)."""
        return self.act_all(obs).mean(0)
