"""Experiment tracking: the loggers a run writes its history to.

- `identity`: the job's name, group and job type, the same for W&B and MLflow runs.
- `setup`: each job's tracking runs: W&B's mode (online only with credentials), a run
  named from the job's overrides and grouped per sweep, summaries, resuming into the
  same run, and ending every logger's run, a failed job's too.
- `wandb_logger`: Lightning's `WandbLogger` that stops sending, with one warning, when
  W&B's service dies; `csv_logger`: Lightning's `CSVLogger` that keeps a resumed run's
  `metrics.csv`, each step once; `mlflow_logger`: Lightning's `MLFlowLogger` with
  vaelab's run naming, per-sweep grouping and resuming.

It imports only `vaelab.errors` and `vaelab.runs` (the run folder's files); the model
never sees it (Lightning hands it the loggers).
"""
