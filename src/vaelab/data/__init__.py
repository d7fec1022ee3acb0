"""Datasets as LightningDataModules that serve whole uint8 batches from memory.

One module per job: `memory` (batching, splits, the base DataModule), `download`
(find or fetch verified files), `formats` (on-disk readers), `cache` (decoded
arrays), `cached` (the base of file-backed DataModules), and one module per dataset
family: `mnist`, `cifar10`, `celeba`, `digits`, `folder`. Nothing is imported here,
so that importing `vaelab.data` stays cheap; Hydra imports the module it targets.
"""
