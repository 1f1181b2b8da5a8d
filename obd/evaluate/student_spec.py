"""Which student an evaluation trains, and how: the distillation's own, the paper's, or a variant.

A synthetic set is meant for the student its inner loop trained (``DistillConfig.student`` and
``.inner``, recorded in the set's metadata under ``config``), so by default evaluation trains exactly that
student: its width, depth, head and init, ``inner.steps`` full-batch SGD steps at ``inner.lr`` with
``inner.momentum``. A set without that record (an older file, a random selection, any foreign file) gets
the paper's protocol, :data:`PAPER_STUDENT` (3x256 tanh-Gaussian, 100 full-batch SGD steps, lr 0.1).
Asking for another architecture or optimizer gives a cross-architecture / cross-optimizer score, and
:attr:`StudentSpec.cross` says which of the two it is. Whole-data BC has its own protocol,
:data:`BC_STUDENT` (3x256, 10,000 Adam steps at 1e-3 on minibatches of 256).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from obd.distill.student_config import StudentConfig
from obd.errors import ObdError
from obd.evaluate.architectures import parse_arch
from obd.evaluate.students import check_optimizer, resolve_lr

#: where a spec's base came from
SOURCES = {
    "distillation": "the distillation's own student and inner loop (from the set's metadata)",
    "paper": "the paper's protocol (the set records no distillation config)",
    "bc": "whole-data BC protocol (minibatch Adam)",
}


@dataclass(frozen=True)
class StudentSpec:
    """A student shape and its BC training: ``steps`` optimizer steps (``optimizer``, ``lr``, SGD
    ``momentum``) on the full batch (``batch_size`` None) or on minibatches of ``batch_size``.
    ``source`` is a key of :data:`SOURCES`; ``cross`` lists what was changed from that base on request
    (``architecture``, ``optimizer``, ``steps``), empty for the base itself."""

    arch: StudentConfig
    steps: int
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    batch_size: int | None = None
    source: str = "paper"
    cross: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (the ``student`` entry of every evaluation result)."""
        out = asdict(self)
        out["name"] = self.arch.name
        out["cross"] = list(self.cross)
        out["protocol"] = (f"cross-{'/'.join(self.cross)} variant of " if self.cross else "") + SOURCES[self.source]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudentSpec:
        """Inverse of :meth:`to_dict`."""
        arch = StudentConfig(**d["arch"])
        return cls(arch, int(d["steps"]), d["optimizer"], float(d["lr"]), float(d["momentum"]), d.get("batch_size"),
                   d.get("source", "paper"), tuple(d.get("cross", ())))


PAPER_STUDENT = StudentSpec(StudentConfig(), steps=100, optimizer="sgd", lr=0.1, momentum=0.0, source="paper")
BC_STUDENT = StudentSpec(StudentConfig(), steps=10_000, optimizer="adam", lr=1e-3, batch_size=256, source="bc")


def distilled_student(metadata: dict[str, Any], where: str = "synthetic set") -> StudentSpec | None:
    """The student and inner loop recorded in a synthetic set's metadata (``config.student``,
    ``config.inner``), or None when the set records no distillation config."""
    from obd.config import load_config
    from obd.distill.inner_config import InnerConfig

    cfg = metadata.get("config") if isinstance(metadata, dict) else None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("student"), dict) or not isinstance(cfg.get("inner"), dict):
        return None
    try:
        return config_student(load_config(StudentConfig, base=cfg["student"]),
                              load_config(InnerConfig, base=cfg["inner"]))
    except ObdError as exc:
        raise ObdError(f"{where}: metadata 'config' (student/inner): {exc}") from None


def config_student(student: StudentConfig, inner: Any) -> StudentSpec:
    """The evaluation spec of a distillation's student and ``InnerConfig`` (e.g. ``cfg.student``,
    ``cfg.inner`` of a preset): that student, ``inner.steps`` full-batch SGD steps at ``inner.lr`` with
    ``inner.momentum``."""
    if inner.steps < 0 or not inner.lr > 0 or not 0 <= inner.momentum < 1:
        raise ObdError(f"inner steps {inner.steps}, lr {inner.lr}, momentum {inner.momentum} out of range")
    return StudentSpec(student, inner.steps, "sgd", float(inner.lr), float(inner.momentum), None, "distillation")


def resolve_student(base: StudentSpec, arch: str | None = None, hidden: int | None = None,
                    layers: int | None = None, steps: int | None = None, optimizer: str | None = None,
                    lr: float | None = None) -> StudentSpec:
    """``base`` with the requested changes; None keeps the base's value.

    ``arch`` / ``hidden`` / ``layers`` change the shape (see :func:`parse_arch`; width and head stay the
    base's unless given). A new ``optimizer`` takes its own default lr (``DEFAULT_LR``) unless ``lr`` is
    given, and SGD momentum 0 (``sgd_momentum``: 0.9). Raises ObdError on an unknown name or a bad value.
    """
    shape = parse_arch(arch, hidden, layers, base.arch)
    opt = base.optimizer if optimizer is None else optimizer
    check_optimizer(opt)
    same_opt = opt == base.optimizer
    new_lr = resolve_lr(opt, lr) if lr is not None or not same_opt else base.lr
    momentum = base.momentum if same_opt else {"sgd": 0.0, "sgd_momentum": 0.9}.get(opt, 0.0)
    n_steps = base.steps if steps is None else steps
    if n_steps < 0:
        raise ObdError(f"steps must be >= 0, got {n_steps}")
    cross = [*base.cross]
    for name, changed in (("architecture", shape != base.arch),
                          ("optimizer", (opt, new_lr, momentum) != (base.optimizer, base.lr, base.momentum)),
                          ("steps", n_steps != base.steps)):
        if changed and name not in cross:
            cross.append(name)
    return replace(base, arch=shape, steps=n_steps, optimizer=opt, lr=new_lr, momentum=momentum, cross=tuple(cross))


__all__ = ["StudentSpec", "PAPER_STUDENT", "BC_STUDENT", "SOURCES", "distilled_student", "config_student",
           "resolve_student"]
