"""Errors that reach the user as one line.

Anything raised as a `VaelabError` is caught by the entry points and printed as
``vaelab: error: <message>`` with a non-zero exit: no traceback. The message says
what is wrong and what to type instead.
"""

from __future__ import annotations


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
