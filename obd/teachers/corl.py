"""Import a CORL Cal-QL / CQL checkpoint (``checkpoint_*.pt`` of ``algorithms/offline/cal_ql.py``/``cql.py``)
as a :class:`Teacher` - the teacher the OBD paper used.

What the checkpoint holds and how it maps:

* ``actor``: ``TanhGaussianPolicy`` state dict: ``base_network.{0,2,...}.{weight,bias}`` (the last layer
  outputs ``[mean, log_std]``, 2 * act_dim), ``log_std_multiplier.constant``, ``log_std_offset.constant``;
  ``log_std = clamp(multiplier * raw + offset, -20, 2)``, deterministic action ``tanh(mean)``.
* ``critic1`` / ``critic2``: ``FullyConnectedQFunction`` state dicts ``network.{0,2,...}`` on
  ``cat(state, action)``; they become the two members of one :class:`EnsembleQ` (critic1 = Q1).

CORL saved its temperature modules whole, so the pickle names the class ``__main__.Scalar`` and a plain
``torch.load`` fails (or, without ``weights_only``, would execute whatever ``__main__`` provides). We load
with ``weights_only=True`` and allow-list exactly one stand-in registered under the name
``"__main__.Scalar"`` (torch's ``safe_globals`` accepts ``(object, "module.qualname")`` pairs); the
stand-in only records the state it is given, so nothing from the file runs. CORL normalized states with
the dataset's mean and std, which the checkpoint does not hold: pass them (or the dataset) in.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from obd.data.dataset import Normalizer
from obd.envs import check_dims, get_task
from obd.errors import ObdError
from obd.io import torch_load_weights
from obd.nn import Actor, EnsembleQ
from obd.teachers.base import Teacher


class CorlScalar:
    """Inert stand-in for CORL's ``Scalar(nn.Module)``: keeps the pickled ``__dict__`` and nothing else."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


CORL_SAFE_GLOBALS = [(CorlScalar, "__main__.Scalar")]


def load_corl_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """``torch.load`` a CORL checkpoint safely (weights only, ``__main__.Scalar`` mapped to a stand-in)."""
    path = Path(path)
    if not path.is_file():
        raise ObdError(f"{path}: CORL checkpoint not found")
    blob = torch_load_weights(path, "CORL checkpoint", safe_globals=CORL_SAFE_GLOBALS)
    if not isinstance(blob, dict):
        raise ObdError(f"{path}: expected a dict with keys 'actor', 'critic1', 'critic2'")
    return blob


def _linear_stack(sd: Any, prefix: str, where: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The ``prefix.{0,2,4,...}.{weight,bias}`` layers of a CORL ``nn.Sequential``, in order, checked."""
    if not isinstance(sd, dict):
        raise ObdError(f"{where}: expected a state dict")
    pat = re.compile(re.escape(prefix) + r"\.(\d+)\.(weight|bias)$")
    idx = sorted({int(m.group(1)) for k in sd if (m := pat.match(k))})
    if not idx:
        raise ObdError(f"{where}: missing tensors '{prefix}.0.weight' / '{prefix}.0.bias'")
    if idx != list(range(0, 2 * len(idx), 2)):
        raise ObdError(f"{where}: layers '{prefix}.{idx}' are not the Linear/ReLU layout {{0,2,4,...}}")
    layers = []
    for i in idx:
        w, b = sd.get(f"{prefix}.{i}.weight"), sd.get(f"{prefix}.{i}.bias")
        for name, t in ((f"{prefix}.{i}.weight", w), (f"{prefix}.{i}.bias", b)):
            if not isinstance(t, torch.Tensor):
                raise ObdError(f"{where}: missing tensor '{name}'")
        if w.ndim != 2 or b.shape != (w.shape[0],):
            raise ObdError(f"{where}: '{prefix}.{i}' has weight {tuple(w.shape)} and bias {tuple(b.shape)}, "
                           "expected (out, in) and (out,)")
        if layers and w.shape[1] != layers[-1][0].shape[0]:
            raise ObdError(f"{where}: tensor '{prefix}.{i}.weight' has shape {tuple(w.shape)}, expected input "
                           f"width {layers[-1][0].shape[0]}")
        layers.append((w.float(), b.float()))
    return layers


def _scalar(sd: dict, name: str, where: str) -> torch.Tensor:
    t = sd.get(name)
    if not isinstance(t, torch.Tensor) or t.numel() != 1:
        raise ObdError(f"{where}: missing scalar tensor '{name}'")
    return t.reshape(()).float()


def corl_to_teacher(blob: dict[str, Any], task: str, normalizer: Normalizer, where: str,
                    metadata: dict[str, Any] | None = None, device: str | torch.device | None = None) -> Teacher:
    """Build a Teacher from a loaded CORL checkpoint dict; every tensor's presence and shape is checked."""
    spec = get_task(task)
    for key in ("actor", "critic1", "critic2"):
        if key not in blob:
            raise ObdError(f"{where}: missing key '{key}' (expected a CORL Cal-QL/CQL checkpoint)")
    actor_layers = _linear_stack(blob["actor"], "base_network", f"{where}: actor")
    obs_dim, out_dim = actor_layers[0][0].shape[1], actor_layers[-1][0].shape[0]
    if out_dim % 2:
        raise ObdError(f"{where}: actor tensor 'base_network.{2 * (len(actor_layers) - 1)}.weight' outputs "
                       f"{out_dim}, expected 2 * act_dim")
    act_dim = out_dim // 2
    check_dims(spec, obs_dim, act_dim, f"{where}: actor")
    normalizer.check_dim(obs_dim, f"{where}: normalizer")
    actor = Actor(obs_dim, act_dim, [w.shape[0] for w, _ in actor_layers[:-1]], "tanh_gaussian")
    with torch.no_grad():
        for lin, (w, b) in zip([m for m in actor.net if isinstance(m, torch.nn.Linear)], actor_layers):
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        actor.log_std_multiplier.copy_(_scalar(blob["actor"], "log_std_multiplier.constant", f"{where}: actor"))
        actor.log_std_offset.copy_(_scalar(blob["actor"], "log_std_offset.constant", f"{where}: actor"))

    critics = [_linear_stack(blob[k], "network", f"{where}: {k}") for k in ("critic1", "critic2")]
    shapes = [[tuple(w.shape) for w, _ in c] for c in critics]
    for name, sh in zip(("critic1", "critic2"), shapes):
        if sh[0][1] != obs_dim + act_dim or sh[-1][0] != 1:
            raise ObdError(f"{where}: {name} tensors 'network.0.weight' / 'network.{2 * (len(sh) - 1)}.weight' "
                           f"have shapes {sh[0]} / {sh[-1]}, expected input {obs_dim + act_dim} (state+action) "
                           "and output 1")
    if shapes[0] != shapes[1]:
        raise ObdError(f"{where}: critic1 layer shapes {shapes[0]} differ from critic2 {shapes[1]}")
    critic = EnsembleQ(obs_dim, act_dim, [s[0] for s in shapes[0][:-1]], ensemble=2)
    with torch.no_grad():
        for li, layer in enumerate(critic.linear_layers()):
            layer.weight.copy_(torch.stack([c[li][0].T for c in critics]))
            layer.bias.copy_(torch.stack([c[li][1].unsqueeze(0) for c in critics]))
    meta = {"algo": "corl-calql", **(metadata or {})}
    return Teacher(actor, critic, normalizer, spec.name, meta, device)


def import_corl(path: str | os.PathLike, task: str, normalizer: Normalizer,
                metadata: dict[str, Any] | None = None, device: str | torch.device | None = None) -> Teacher:
    """Load a CORL checkpoint file and convert it (see the module docstring)."""
    blob = load_corl_checkpoint(path)
    meta = {"source": str(path), **(metadata or {})}
    return corl_to_teacher(blob, task, normalizer, str(path), meta, device)
