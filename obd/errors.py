"""One error type for bad input, and the CLI wrapper that turns it into a one-line message."""

from __future__ import annotations

import sys
from typing import Callable, NoReturn


class ObdError(Exception):
    """Bad input: a message naming the file, key or field and what was expected."""


def fail(message: str) -> NoReturn:
    raise ObdError(message)


def cli_entry(main: Callable[[list[str] | None], int | None]) -> Callable[[list[str] | None], int]:
    """Wrap a CLI ``main(argv)`` so an :class:`ObdError` prints one line on stderr and exits 2.

    Users of the CLI should see what was wrong with their input, not a traceback; genuine bugs still
    raise normally.
    """

    def run(argv: list[str] | None = None) -> int:
        try:
            rc = main(argv)
        except ObdError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        return int(rc or 0)

    return run
