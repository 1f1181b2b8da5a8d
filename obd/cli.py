"""Command-line conventions shared by every obd stage (``obd <stage> ...`` and ``python -m obd.<stage>``).

A stage's parser gets the shared flags from :func:`add_common` and is parsed with :func:`parse_args`::

    from obd.cli import add_common, apply_common, lazy, parse_args, resolve_config

    p = argparse.ArgumentParser(prog="obd mystage")
    add_common(p, out="dir", config=lazy("obd.mystage.config", "MyConfig"), preset="fast_x")
    args = parse_args(p, argv)          # key=value overrides anywhere, also after --out
    apply_common(args)                  # --threads (and --out writable, checked before any work)
    cfg = resolve_config(args)          # --config preset/file <- overrides; --print-config prints, exits 0

Flags (each can be switched off with ``flag=False``; names are the same in every stage):

``--threads N``     torch CPU threads (default: torch's own; on a shared machine 1 is often fastest)
``--device D``      ``auto`` (cuda when present), ``cpu``, ``cuda``, ``cuda:N``
``--seed S``        seed (default 0)
``--no-progress``   no progress bars
``--out PATH``      output file (``out="file"``) or folder (``out="dir"``); writability is checked up front
``--config X``      (with ``config=``) a YAML file or a shipped preset name (``fast``, ``fast_avpbc``)
``--print-config``  (with ``config=``) print the resolved config as YAML and exit without running
``key=value ...``   (with ``config=``) config overrides; ``--help`` lists every key with its default

The config class is passed as a zero-argument callable (:func:`lazy`) so ``--help`` and argument errors
never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from obd.errors import ObdError

OVERRIDE = re.compile(r"^[A-Za-z_][\w.\-]*=")


def lazy(module: str, attr: str) -> Callable[[], Any]:
    """A zero-argument callable importing ``module`` and returning its ``attr`` only when called."""
    return lambda: getattr(importlib.import_module(module), attr)


def add_common(parser: argparse.ArgumentParser, *, out: str | None = "dir", out_required: bool = False,
               out_help: str | None = None, config: Callable[[], type] | None = None, preset: str | None = None,
               threads: bool = True, device: bool = True, seed: bool = True, progress: bool = True,
               device_default: str | None = "auto", seed_default: int | None = 0) -> argparse.ArgumentParser:
    """Add the shared flags (module docstring) to ``parser``; returns it.

    With ``config=``, pass ``device_default=None, seed_default=None`` when the config has ``device`` /
    ``seed`` keys: the flags then override the config only when given (:func:`resolve_config`)."""
    parser.set_defaults(_out_kind=out, _config=config, _preset=preset)
    if threads:
        parser.add_argument("--threads", type=int, default=None, metavar="N",
                            help="torch CPU threads (default: torch's); keep it fixed across --resume for a "
                                 "bit-identical run")
    if device:
        parser.add_argument("--device", default=device_default,
                            help=f"auto (cuda when present), cpu, cuda or cuda:N (default "
                                 f"{device_default or 'the config key device'})")
    if seed:
        parser.add_argument("--seed", type=int, default=seed_default,
                            help=f"seed (default {'the config key seed' if seed_default is None else seed_default})")
    if progress:
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    if out is not None:
        what = "output folder" if out == "dir" else "output file"
        parser.add_argument("--out", type=Path, default=None, required=out_required, metavar="PATH",
                            help=out_help or what)
    if config is not None:
        parser.add_argument("--config", default=preset, metavar="PRESET_OR_FILE",
                            help="YAML config file or shipped preset name "
                                 f"(default: {preset or 'the config defaults below'})")
        parser.add_argument("--print-config", action="store_true",
                            help="print the resolved config (YAML) and exit without running")
        parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (keys below)")
        _lazy_config_epilog(parser, config)
    return parser


def _lazy_config_epilog(parser: argparse.ArgumentParser, config: Callable[[], type]) -> None:
    original = parser.format_help

    def format_help() -> str:
        from obd.config import config_help

        saved = parser.epilog
        parser.epilog = ((saved + "\n\n") if saved else "") + config_help(config())
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        try:
            return original()
        finally:
            parser.epilog = saved

    parser.format_help = format_help  # type: ignore[method-assign]


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args`` that accepts ``key=value`` overrides anywhere on the line (also after options)."""
    args, extra = parser.parse_known_args(argv)
    stray = []
    for token in extra:
        if OVERRIDE.match(token) and hasattr(args, "overrides"):
            args.overrides.append(token)
        else:
            stray.append(token)
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    return args


def positive(args: argparse.Namespace, *names: str, minimum: int = 1) -> None:
    """Check integer flags ``--name`` are >= ``minimum``; one-line :class:`ObdError` naming the flag."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < minimum:
            raise ObdError(f"--{name.replace('_', '-')}: expected an integer >= {minimum}, got {value}")


def apply_common(args: argparse.Namespace) -> None:
    """Apply ``--threads``; check ``--out`` can be written (before any work starts)."""
    positive(args, "threads")
    if getattr(args, "threads", None) is not None:
        import torch

        torch.set_num_threads(args.threads)
    if getattr(args, "out", None) is not None and getattr(args, "_out_kind", None) and \
            not getattr(args, "print_config", False):
        from obd.io import check_writable

        check_writable(args.out, is_dir=args._out_kind == "dir")


def subcommand_main(build_parser: Callable[[], argparse.ArgumentParser]) -> Callable[[list[str] | None], int]:
    """``main(argv)`` of a command line whose subcommands each set ``func``: parse, apply the common flags,
    run the subcommand; bad input exits 2 with one line (:func:`obd.errors.cli_entry`)."""
    from obd.errors import cli_entry

    def _main(argv: list[str] | None = None) -> int:
        args = parse_args(build_parser(), argv)
        apply_common(args)
        return args.func(args)

    return cli_entry(_main)


def resolve_config(args: argparse.Namespace, base: dict[str, Any] | None = None,
                   cls: type | None = None) -> Any:
    """The config from ``base`` <- ``--config`` <- ``--seed``/``--device`` <- ``key=value`` overrides; with
    ``--print-config`` prints it as YAML and exits 0."""
    import dataclasses

    from obd.config import config_to_dict, load_config

    cls = cls or args._config()
    keys = {f.name for f in dataclasses.fields(cls)}
    flags = [f"{k}={getattr(args, k)}" for k in ("seed", "device") if k in keys and getattr(args, k, None) is not None]
    cfg = load_config(cls, args.config, flags + list(args.overrides), base=base)
    if hasattr(cfg, "validate"):
        cfg.validate()
    if getattr(args, "print_config", False):
        import yaml

        sys.stdout.write(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        raise SystemExit(0)
    return cfg


__all__ = ["add_common", "parse_args", "apply_common", "resolve_config", "positive", "lazy"]
