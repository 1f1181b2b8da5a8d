"""One error type for bad input, and the CLI wrapper that turns it into a one-line message."""

from __future__ import annotations

import errno
import sys
from typing import Callable, NoReturn


class ObdError(ValueError):
    """Bad input: a message naming the file, key or field and what was expected.

    A :class:`ValueError`, so library callers that already catch bad values catch it too."""


class Interrupted(ObdError):
    """A run stopped on request (SIGINT) after saving its state; the message says how to resume."""

    exit_code = 130


def fail(message: str) -> NoReturn:
    raise ObdError(message)


def describe_os_error(exc: OSError) -> str:
    """``OSError`` -> ``'<file>: <reason>'`` in one line (a full disk, a read-only folder, a missing parent)."""
    where = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
    if exc.errno == errno.ENOSPC:
        reason = "no space left on the device"
    return f"{where}: {reason}" if where else reason


def cli_entry(main: Callable[[list[str] | None], int | None]) -> Callable[[list[str] | None], int]:
    """Wrap a CLI ``main(argv)`` so bad input prints one line on stderr and exits non-zero, no traceback.

    :class:`ObdError` -> exit 2 (:class:`Interrupted` -> 130); an ``OSError`` from the file system (a full
    disk, an unwritable folder) -> exit 1; Ctrl-C -> 130. Genuine bugs still raise normally.
    """

    def run(argv: list[str] | None = None) -> int:
        try:
            rc = main(argv)
        except Interrupted as exc:
            print(f"interrupted: {exc}", file=sys.stderr)
            return exc.exit_code
        except ObdError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"error: {describe_os_error(exc)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        return int(rc or 0)

    return run
