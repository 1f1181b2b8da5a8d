"""A student's shape: :class:`StudentConfig`, the ``student`` section of a distillation config and the
architecture of every student an evaluation trains.

One description serves both: the inner loop trains an MLP of this shape (as flat parameters,
:mod:`obd.distill.inner`), evaluation builds it as a module (:func:`obd.evaluate.architectures.make_eval_student`)
and may ask for a variant, including the evaluation-only ``residual`` family. Torch-free, so config checks and
``--help`` stay fast.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Literal

from obd.config import OMIT_DEFAULT, check_types
from obd.errors import ObdError

Family = Literal["mlp", "residual"]
Kind = Literal["tanh_gaussian", "deterministic"]
Head = Literal["corl", "paper"]
#: the student's output layer. ``corl``: orthogonal gain 1e-2, log-std = the raw head output (obd's default).
#: ``paper``: the published code's student, gain sqrt(2) like every other layer and
#: log-std = multiplier * raw + offset with learnable scalars initialized to 1 and -1.
HEADS: tuple[str, ...] = typing.get_args(Head)


@dataclass(frozen=True)
class StudentConfig:
    """A student's shape: ``family`` ``mlp`` (``depth`` hidden layers of width ``hidden``, ReLU) or
    ``residual`` (evaluation only: an input layer and ``depth`` residual blocks of width ``hidden``); head
    ``kind`` ``tanh_gaussian`` (the paper's: a mean and a log-std) or, MLP only, ``deterministic``;
    ``orthogonal_init``: CORL's orthogonal init (else PyTorch's default); output ``head`` ``corl`` (output
    gain 1e-2, log-std = raw output) or, MLP only, ``paper`` (the published code's: output gain sqrt 2,
    log-std = m * raw + c with learnable m = 1, c = -1 at init).

    Frozen and checked when built, so a StudentConfig that exists is a valid shape (a bad value raises a
    one-line :class:`ObdError` naming ``student.<key>``). ``family`` is not written while it is ``mlp``
    (:data:`obd.config.OMIT_DEFAULT`): a distillation's student is always an MLP, and its config and
    synthetic set metadata read as they did before the family existed.
    """

    family: Family = field(default="mlp", metadata={OMIT_DEFAULT: True})
    kind: Kind = "tanh_gaussian"
    hidden: int = 256
    depth: int = 3
    orthogonal_init: bool = True
    head: Head = "corl"

    def __post_init__(self) -> None:
        check_types(self, "student.")
        for key in ("hidden", "depth"):
            if getattr(self, key) < 1:
                raise ObdError(f"config key 'student.{key}': expected an integer >= 1, got {getattr(self, key)}")
        if self.family == "residual" and self.kind != "tanh_gaussian":
            raise ObdError("config key 'student.kind': residual students are tanh_gaussian only")
        if self.family == "residual" and self.head != "corl":
            raise ObdError("config key 'student.head': residual students have the corl head only")

    @property
    def stochastic(self) -> bool:
        """Whether the head outputs a log-std besides the mean (a tanh-Gaussian student)."""
        return self.kind == "tanh_gaussian"

    @property
    def name(self) -> str:
        """``mlp3x256``, ``residual2x256``; ``-det`` for a deterministic head, ``-default-init`` without
        the orthogonal init, ``-paper-head`` with the published code's head (parsed back by
        :func:`obd.evaluate.architectures.arch_from_name`)."""
        suffix = ("" if self.stochastic else "-det") + ("" if self.orthogonal_init else "-default-init") \
            + ("-paper-head" if self.head == "paper" else "")
        return f"{self.family}{self.depth}x{self.hidden}{suffix}"
