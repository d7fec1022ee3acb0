"""vaelab's side of PyTorch Lightning: the Trainer a job builds, and every place that
reads Lightning's internals.

- `trainer`: the training Trainer from `cfg.trainer` (clipping and accumulation the
  VAE's way, the profiler, skipped per-step hooks), Lightning's output through Hydra's
  logging, the device and CPU float flags.
- `internals`: each use of a Lightning private, named with the upstream code it reads
  and guarded by `tests/test_lightning_internals.py`; `profiler`: `NullProfiler`.
- `loop`: the VAE's manual optimisation step (accumulation, clipping hand-off, the
  per-step schedule) and `resume`: what a restored checkpoint restores.

It imports Lightning, torch, `vaelab.callbacks` and `vaelab.errors`, never a dataset
or an app.
"""
