"""vaelab's Hydra plugins. Hydra instantiates a sweeper only from a module in the
`hydra_plugins` namespace package (hydra.core.plugins.Plugins._instantiate), and scans
that package at start-up; the implementation lives in `vaelab.optuna_sweeper`, and
importing this module imports nothing heavier than Hydra."""

from vaelab.optuna_sweeper import OptunaSweeper as _OptunaSweeper


class OptunaSweeper(_OptunaSweeper):
    """`hydra/sweeper=optuna`: see `vaelab.optuna_sweeper`."""


__all__ = ["OptunaSweeper"]
