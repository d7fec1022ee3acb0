"""Shared fixtures: the project's real configs, composed once for the session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# No test waits on a W&B login or reaches the network.
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

from helpers import CONF


@pytest.fixture(scope="session")
def hydra_conf() -> Iterator[None]:
    """Hydra initialised on the project's conf/ for the whole session (compose is cheap)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield
    GlobalHydra.instance().clear()
