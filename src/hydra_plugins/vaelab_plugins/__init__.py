"""vaelab's Hydra plugins. Hydra instantiates a sweeper or launcher only from a module in
the `hydra_plugins` namespace package (hydra.core.plugins.Plugins._instantiate), and
scans that package at start-up; the implementations live in `vaelab.launch.optuna` and
`vaelab.launch.slurm`, and importing this module imports nothing heavier than Hydra."""

from vaelab.launch.optuna import OptunaSweeper as _OptunaSweeper
from vaelab.launch.slurm import SlurmLauncher as _SlurmLauncher


class OptunaSweeper(_OptunaSweeper):
    """`hydra/sweeper=optuna`: see `vaelab.launch.optuna`."""


class SlurmLauncher(_SlurmLauncher):
    """`hydra/launcher=slurm`: see `vaelab.launch.slurm`."""


__all__ = ["OptunaSweeper", "SlurmLauncher"]
