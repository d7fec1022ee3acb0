"""Datasets as LightningDataModules that serve whole uint8 batches from memory.

Modules named by their role:

- `memory`: batching whole uint8 batches, DDP sharding, and the base DataModule;
- `file_datamodule`: the base of DataModules read from files (fetch, decode, cache);
- `factor_grid`: the base of datasets stored as their complete factor grid;
- `factors`: the one factor API (`FactorSpace`) the disentanglement metrics use;
- `splits`: train/val/test indices where a dataset publishes no test split;
- `array_cache`: decoded arrays kept as .npy files, checksummed;
- `readers` (IDX, CIFAR batches, image archives) and `array_readers` (.npz, .h5 in
  row blocks): the on-disk formats, each in one reader;
- `download`: find a dataset's files or fetch them, verified;
- one module per dataset: `mnist`, `cifar10`, `celeba`, `digits`, `folder`, `shapes`,
  `dsprites`, `shapes3d`, `mpi3d`, `smallnorb`, `cars3d`.

Nothing is imported here, so that importing `vaelab.data` stays cheap; Hydra imports
the module it targets.
"""
