"""Datasets as LightningDataModules that serve whole uint8 batches from memory."""
