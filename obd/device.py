"""Where tensors live: ``auto`` means cuda when a GPU is present, else the CPU."""

from __future__ import annotations

import torch

from obd.errors import ObdError


def resolve_device(device: str | torch.device | None = "auto", key: str = "device") -> torch.device:
    """``None`` / ``"auto"`` -> cuda when present, else cpu; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` as given.

    An unknown name, or cuda asked for where none is present, is an :class:`ObdError` naming ``key``.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ObdError(f"{key} '{device}': expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ObdError(f"{key} '{device}': cuda requested but no GPU is available")
    return dev
