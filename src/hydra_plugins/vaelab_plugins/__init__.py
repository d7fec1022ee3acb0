"""vaelab's Hydra plugins. Hydra instantiates a sweeper or launcher only from a module in
the `hydra_plugins` namespace package (hydra.core.plugins.Plugins._instantiate), and
scans that package at start-up; the implementations live in `vaelab.optuna_sweeper` and
`vaelab.slurm_launcher`, and importing this module imports nothing heavier than Hydra."""

from vaelab.optuna_sweeper import OptunaSweeper as _OptunaSweeper
from vaelab.slurm_launcher import SlurmLauncher as _SlurmLauncher


class OptunaSweeper(_OptunaSweeper):
    """`hydra/sweeper=optuna`: see `vaelab.optuna_sweeper`."""


class SlurmLauncher(_SlurmLauncher):
    """`hydra/launcher=slurm`: see `vaelab.slurm_launcher`."""


__all__ = ["OptunaSweeper", "SlurmLauncher"]
