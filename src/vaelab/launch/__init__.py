"""Launching jobs: sweeps, clusters and processes.

- `job`: how a Hydra job of an app ends (one line for bad input, a sweep's record),
  its script and its output folder.
- `sweeps`: per-job failure isolation, `sweep_job.json`, skipping and resuming the jobs
  of a continued sweep, the end-of-sweep summary.
- `distributed`: a DDP job of a multirun re-runs itself as a single run.
- `optuna`: the Optuna 4 sweeper; `slurm`: hydra-submitit's SLURM launcher with
  refused, hopeless and lost jobs reported in one line. Hydra finds both through the
  `hydra_plugins.vaelab_plugins` shim.

It may import `vaelab.runs`, `vaelab.tracking`, `vaelab.callbacks` (the interruption
a job reports), the parameter types of `vaelab.config` and `vaelab.errors`; the apps
import it, never the reverse.
"""
