"""Atomic file output (nothing half-written is ever left under a final name) and the one guarded way torch
files are read."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from obd.errors import ObdError, describe_os_error

#: an output folder with less free space than this fails the writability check before any work starts
MIN_FREE_BYTES = 16 * 2**20


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success rename it onto ``path``, on error delete it.

    The temporary lives in the same folder so the final ``os.replace`` is atomic on POSIX.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / "out" if not is_dir else tmp / "dir"
    try:
        yield target
        if is_dir and path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(target, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_writable(path: str | os.PathLike, *, is_dir: bool = False, flag: str = "--out") -> Path:
    """Fail fast, before the work, when ``path`` cannot be written: make the folder (``path`` itself when
    ``is_dir``, else its parent), write and remove a probe file there, and require :data:`MIN_FREE_BYTES` of
    free space; folders made for the probe are removed again. Raises :class:`ObdError` naming ``flag`` and
    the path; returns ``path`` as a Path."""
    path = Path(path).expanduser()
    try:
        if not is_dir and path.is_dir():
            raise ObdError(f"{flag} {path}: is a folder, expected a file name")
        if is_dir and path.exists() and not path.is_dir():
            raise ObdError(f"{flag} {path}: is a file, expected a folder")
    except OSError as exc:  # a name too long for the file system fails already here
        raise ObdError(f"{flag} {path}: not writable ({exc.strerror or exc.__class__.__name__})") from None
    folder = path if is_dir else path.parent
    created = []
    try:
        created = [p for p in (folder, *folder.parents) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".obd-write-check.", dir=folder)
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise ObdError(f"{flag} {path}: not writable ({describe_os_error(exc)})") from None
    finally:
        for p in created:  # leave nothing behind: the work creates the folders it writes into
            with contextlib.suppress(OSError):
                p.rmdir()
    if free < MIN_FREE_BYTES:
        raise ObdError(f"{flag} {path}: only {free / 2**20:.1f} MiB free on its device, need at least "
                       f"{MIN_FREE_BYTES // 2**20} MiB")
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def save_figure(fig: Any, path: str | os.PathLike) -> None:
    """Write a matplotlib ``fig`` as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def torch_save_atomic(obj: Any, path: str | os.PathLike) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def torch_load_weights(path: str | os.PathLike, what: str, map_location: Any = "cpu",
                       safe_globals: list[Any] | None = None) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, never pickled code.

    torch's own warnings about the file (an unusual pickle protocol, say) are silenced, so a refused or
    damaged file gives one line: an :class:`ObdError` ``'<path>: not a readable <what> (<reason>)'``
    (:func:`describe_load_error`; also its ``reason`` attribute). ``safe_globals``: extra classes to allow, as for
    ``torch.serialization.safe_globals``."""
    import warnings

    import torch

    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(safe_globals or []):
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # UnpicklingError for foreign globals, RuntimeError/EOFError for damaged files
        reason = describe_load_error(exc)
        error = ObdError(f"{path}: not a readable {what} ({reason})")
        error.reason = reason  # type: ignore[attr-defined]
        raise error from None


def describe_load_error(exc: BaseException) -> str:
    """One line for a failed ``torch.load(weights_only=True)``: the refused global when the file would run
    pickled code (without torch's advice to turn ``weights_only`` off), else the exception's first line."""
    import re

    text = str(exc)
    refused = re.search(r"(?:unsupported|Unsupported global:)\s*GLOBAL\s+([\w.]+)", text)
    if refused:
        return (f"refused: it would import and run '{refused.group(1)}' when unpickled; only tensors and plain "
                f"containers are loaded")
    first = text.strip().splitlines()[0] if text.strip() else ""
    if "weights_only" in first:
        return "refused: it holds Python objects other than tensors and plain containers"
    return f"{exc.__class__.__name__}: {first[:200]}" if first else exc.__class__.__name__


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
