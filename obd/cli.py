"""Command-line conventions shared by every obd stage (``obd <stage> ...`` and ``python -m obd.<stage>``).

A stage's parser gets the shared flags from :func:`add_common` and is parsed with :func:`parse_args`::

    from obd.cli import add_common, apply_common, lazy, parse_args, resolve_config

    p = argparse.ArgumentParser(prog="obd mystage")
    add_common(p, out="dir", config=lazy("obd.mystage.config", "MyConfig"), preset="fast_x")
    args = parse_args(p, argv)          # key=value overrides anywhere, also after --out
    run_dir = resume_dir(args)          # (with resume=) --resume RUN_DIR, or --resume with --out RUN_DIR
    apply_common(args)                  # --threads (and --out writable, checked before any work)
    cfg = resolve_config(args)          # --config preset/file <- flags <- overrides; --print-config prints, exits 0

Flags every stage takes (a stage that has no use for one says so in its help, ``threads=False`` etc.):

``--threads N``     torch CPU threads (default: torch's own; on a shared machine 1 is often fastest)
``--device D``      ``auto`` (cuda when present), ``cpu``, ``cuda``, ``cuda:N``
``--seed S``        seed (default 0)
``--no-progress``   no progress bars

and, where the stage has them:

``--out PATH``      output file (``out="file"``) or folder (``out="dir"``); writability is checked up front
``--dataset SPEC``  (with ``inputs=``) the dataset: a D4RL/Minari id or a file
``--teacher SPEC``  (with ``inputs=``) the teacher: a teacher file or a dataset's shipped teacher
``--resume [DIR]``  (with ``resume=``) continue the run in DIR (or, bare, in ``--out``)
``--config X``      (with ``config=``) a YAML file or a shipped preset name (``fast``, ``fast_avpbc``)
``--print-config``  (with ``config=``) print the resolved config as YAML and exit without running
``key=value ...``   (with ``config=``) config overrides; ``--help`` lists every key with its default

``--seed``, ``--device``, ``--dataset`` and ``--teacher`` may also be written ``seed=3``, ``device=cpu``,
``dataset=SPEC``, ``teacher=SPEC`` (:data:`FLAG_KEYS`); giving one both ways is an error naming both, so
no spelling silently wins over the other. The config class is passed as a zero-argument callable
(:func:`lazy`) so ``--help`` and argument errors never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from obd.errors import ObdError

OVERRIDE = re.compile(r"^[A-Za-z_][\w.\-]*=")
#: flags that may also be written key=value (``--seed 3`` or ``seed=3``); both at once is an error
FLAG_KEYS = ("seed", "device", "dataset", "teacher")
UNUSED = "accepted by every obd stage; this one does not use it"
INPUT_HELP = {"dataset": "the dataset: a D4RL or Minari id, or a file (also dataset=SPEC)",
              "teacher": "the teacher: a teacher file, or a dataset id for its shipped teacher (also teacher=SPEC)"}


def lazy(module: str, attr: str) -> Callable[[], Any]:
    """A zero-argument callable importing ``module`` and returning its ``attr`` only when called."""
    return lambda: getattr(importlib.import_module(module), attr)


def add_common(parser: argparse.ArgumentParser, *, out: str | None = "dir", out_required: bool = False,
               out_help: str | None = None, config: Callable[[], type] | None = None, preset: str | None = None,
               threads: bool = True, device: bool = True, seed: bool = True, progress: bool = True,
               device_default: str | None = "auto", seed_default: int | None = 0,
               inputs: dict[str, str | None] | None = None, resume: str | None = None) -> argparse.ArgumentParser:
    """Add the shared flags (module docstring) to ``parser``; returns it.

    ``threads``/``device``/``seed``/``progress`` False: the flag is still accepted (every stage takes it) and
    its help says the stage does not use it. ``inputs``: ``{"dataset": help or None, "teacher": ...}`` adds
    ``--dataset``/``--teacher`` (default help :data:`INPUT_HELP`). ``resume``: the help of ``--resume [DIR]``.
    With ``config=``, pass ``device_default=None, seed_default=None`` when the config has ``device`` /
    ``seed`` keys: the flags then override the config only when given (:func:`resolve_config`)."""
    used = [k for k, on in (("seed", seed), ("device", device)) if on] + list(inputs or {})
    parser.set_defaults(_out_kind=out, _config=config, _preset=preset, _flag_keys=tuple(used), _out_flag="--out")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch CPU threads (default: torch's); keep it fixed across --resume for a bit-identical "
                             "run" if threads else UNUSED)
    parser.add_argument("--device", default=device_default if device else None,
                        help=f"auto (cuda when present), cpu, cuda or cuda:N (default "
                             f"{device_default or 'the config, or a resumed run'})" if device else UNUSED)
    seed_from = "the config, or a resumed run" if seed_default is None else seed_default
    parser.add_argument("--seed", type=int, default=seed_default if seed else None,
                        help=(f"seed (default {seed_from})"
                              if seed else UNUSED))
    parser.add_argument("--no-progress", action="store_true", help="no progress bars" if progress else UNUSED)
    for name, text in (inputs or {}).items():
        parser.add_argument(f"--{name}", default=None, metavar="SPEC", help=text or INPUT_HELP[name])
    if resume is not None:
        parser.add_argument("--resume", nargs="?", const=True, default=None, metavar="RUN_DIR", help=resume)
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
        _lazy_config_epilog(parser, config, preset)
    return parser


def _lazy_config_epilog(parser: argparse.ArgumentParser, config: Callable[[], type], preset: str | None) -> None:
    original = parser.format_help

    def format_help() -> str:
        from obd.config import config_help

        saved = parser.epilog
        parser.epilog = ((saved + "\n\n") if saved else "") + config_help(config(), preset)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        try:
            return original()
        finally:
            parser.epilog = saved

    parser.format_help = format_help  # type: ignore[method-assign]


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args`` that accepts ``key=value`` overrides anywhere on the line (also after options),
    and takes a ``seed=``/``device=``/``dataset=``/``teacher=`` override as its flag (:data:`FLAG_KEYS`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    overrides = getattr(args, "overrides", None)
    stray = []
    for token in extra:
        if OVERRIDE.match(token) and overrides is not None:
            overrides.append(token)
        else:
            stray.append(token)
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if isinstance(getattr(args, "resume", None), str) and OVERRIDE.match(args.resume) and overrides is not None:
        overrides.insert(0, args.resume)  # a bare --resume followed by an override, not a folder named key=value
        args.resume = True
    if overrides is not None:
        _flags_from_overrides(args, argv)
    return args


def _flags_from_overrides(args: argparse.Namespace, argv: list[str]) -> None:
    """Move ``seed=``/``device=``/``dataset=``/``teacher=`` overrides onto the stage's flags of those names; the
    flag given too is an :class:`ObdError` naming both."""
    for name in getattr(args, "_flag_keys", ()):
        given = [o for o in args.overrides if o.split("=", 1)[0].strip() == name]
        if not given:
            continue
        flag = f"--{name}"
        if any(t == flag or t.startswith(flag + "=") for t in argv) or len(given) > 1:
            spelled = ([f"{flag} {getattr(args, name)}"] if len(given) == 1 else []) + given
            raise ObdError(f"{' and '.join(spelled)}: both set {name}; give it once")
        text = given[0].split("=", 1)[1].strip()
        if name == "seed":
            try:
                text = int(text)
            except ValueError:
                raise ObdError(f"{given[0]}: expected an integer") from None
        setattr(args, name, text)
        args.overrides.remove(given[0])


def resume_dir(args: argparse.Namespace) -> Path | None:
    """The run folder ``--resume`` names: ``--resume RUN_DIR``, or a bare ``--resume`` with ``--out RUN_DIR``
    (None without ``--resume``); a bare ``--resume`` without ``--out`` takes the stage's default run folder
    when its parser sets ``_default_out(args)``. Sets ``args.out`` to it so the write check names
    ``--resume``; a file, or two different folders, is an :class:`ObdError`."""
    value = getattr(args, "resume", None)
    if value is None:
        return None
    if value is True:
        if getattr(args, "out", None) is None and getattr(args, "_default_out", None) is not None:
            args.out = args._default_out(args)
        if getattr(args, "out", None) is None:
            raise ObdError("--resume: name the run folder (--resume RUN_DIR, or --resume with --out RUN_DIR)")
        folder = Path(args.out)
    else:
        folder = Path(value).expanduser()
        if getattr(args, "out", None) is not None and Path(args.out) != folder:
            raise ObdError(f"--resume {folder} and --out {args.out}: two run folders; give one")
    from obd.run_folder import check_folder

    check_folder(folder, "--resume")
    args.out, args.resume, args._out_flag = folder, folder, "--resume"
    return folder


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

        check_writable(args.out, is_dir=args._out_kind == "dir", flag=getattr(args, "_out_flag", "--out"))


def subcommand_main(build_parser: Callable[[], argparse.ArgumentParser]) -> Callable[[list[str] | None], int]:
    """``main(argv)`` of a command line whose subcommands each set ``func``: parse, apply the common flags,
    run the subcommand; bad input exits 2 with one line (:func:`obd.errors.cli_entry`)."""
    from obd.errors import cli_entry

    def _main(argv: list[str] | None = None) -> int:
        args = parse_args(build_parser(), argv)
        resume_dir(args)
        apply_common(args)
        return args.func(args)

    return cli_entry(_main)


def resolve_config(args: argparse.Namespace, base: dict[str, Any] | None = None, cls: type | None = None,
                   load: Callable[[Any, list[str], dict[str, Any] | None], tuple[Any, dict[str, Any]]] | None = None,
                   keys: Collection[str] | None = None) -> Any:
    """The config from ``base`` <- ``--config`` <- the flags of :data:`FLAG_KEYS` that are config ``keys``
    (default: ``cls``'s fields) <- ``key=value`` overrides, validated; with ``--print-config`` prints it as
    YAML and exits 0. The one way every stage resolves its config.

    ``load(path, overrides, base) -> (result, mapping to print)`` builds and validates what a stage needs
    beside the config (``obd distill``: the config and its :class:`~obd.distill.config.RunInputs`); the
    default is :func:`obd.config.load_config` of ``cls`` and returns the config."""
    import dataclasses

    from obd.config import config_to_dict, load_config

    cls = cls or args._config()
    keys = {f.name for f in dataclasses.fields(cls)} if keys is None else set(keys)
    flags = [f"{k}={getattr(args, k)}" for k in FLAG_KEYS if k in keys and getattr(args, k, None) is not None]
    overrides = flags + list(args.overrides)
    if load is None:
        result = load_config(cls, args.config, overrides, base=base)
        if hasattr(result, "validate"):
            result.validate()
        printable = config_to_dict(result)
    else:
        result, printable = load(args.config, overrides, base)
    if getattr(args, "print_config", False):
        import yaml

        sys.stdout.write(yaml.safe_dump(printable, sort_keys=False))
        raise SystemExit(0)
    return result


__all__ = ["add_common", "parse_args", "apply_common", "resolve_config", "resume_dir", "positive", "lazy"]
