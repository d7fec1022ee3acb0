"""Errors that reach the user as one line.

Anything raised as a `VaelabError` is caught by the entry points and printed as
``vaelab: error: <message>`` with a non-zero exit: no traceback. The message says
what is wrong and what to type instead.
"""

from __future__ import annotations

import sys
from typing import NoReturn

#: The exit code of bad input (a value, a file, a missing dataset).
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print `vaelab: error: <message>` as one line and exit with `code` (2: bad input)."""
    print(f"vaelab: error: {' '.join(message.split())}", file=sys.stderr)
    raise SystemExit(code)


class VaelabError(Exception):
    """A fault in the user's input, reported as one line."""


class ConfigError(VaelabError, ValueError):
    """A configuration value that cannot work (bad range, incompatible choices)."""


class DataError(VaelabError):
    """A dataset that is missing, corrupt or cannot be fetched."""


class CheckpointError(VaelabError):
    """A checkpoint that is missing, truncated or not a vaelab checkpoint."""


def find_user_error(exc: BaseException | None) -> VaelabError | None:
    """Return the first `VaelabError` in an exception's cause/context chain.

    Hydra's `instantiate` wraps errors raised in constructors; the user-facing
    error is somewhere down the chain.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, VaelabError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
