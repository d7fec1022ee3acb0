"""The profiler the trainer gets when the config names none.

Lightning wraps every hook call, and more, in `trainer.profiler.profile(name)`: about
30 times per training step. Its default `PassThroughProfiler` records nothing, but its
`profile` is a generator-based context manager that still costs a microsecond or two
per use. `NullProfiler.profile` returns one shared no-op context instead.
`trainer.profiler=simple` (or advanced, pytorch) still selects Lightning's profilers.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from lightning.pytorch.profilers import PassThroughProfiler
from typing_extensions import override

_NO_OP = nullcontext()


class NullProfiler(PassThroughProfiler):
    """Records nothing, at the cost of an attribute lookup per profiled action."""

    # ignore: Lightning's `profile` is a @contextmanager, typed as returning its
    # generator-based context manager; any context manager is what callers need
    @override
    def profile(self, action_name: str) -> AbstractContextManager[None]:  # type: ignore[override]
        return _NO_OP
