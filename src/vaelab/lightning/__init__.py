"""vaelab's side of PyTorch Lightning: the Trainer a job builds, and every place that
reads Lightning's internals.

- `trainer`: the training Trainer from `cfg.trainer` (clipping and accumulation the
  VAE's way, the profiler, skipped per-step hooks), Lightning's output through Hydra's
  logging, the device and CPU float flags.
- `internals`: each use of a Lightning private, named with the upstream code it reads
  and guarded by `tests/test_lightning_internals.py`; `profiler`: `NullProfiler`.
- `loop`: the bookkeeping of the VAE's manual optimisation step (where a batch falls
  in an accumulated group, a step's values to the loggers).

`internals`, `loop` and `profiler` import only Lightning and torch (the model and the
callbacks build on them); `trainer` imports `vaelab.callbacks` too (docs/design.md
draws it a layer of its own). None imports a dataset or an app.
"""
