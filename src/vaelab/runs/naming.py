"""A job's name from its command line: the label of a sweep job's folder and of its
tracking run (`beta=4,latent_dim=16`). The `job_label` resolver names folders with it
(conf/hydra/default.yaml) and `vaelab.tracking.setup` names W&B and MLflow runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf


def _swept_keys(sweep_dir: Path) -> set[str] | None:
    """Keys the sweep varies, read from the multirun.yaml Hydra writes before any job."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return None
    task = OmegaConf.load(path).hydra.overrides.task
    parsed = OverridesParser.create().parse_overrides(list(task))
    return {o.key_or_group for o in parsed if o.is_sweep_override()}


def job_label(hydra_cfg: Any) -> str:
    """A job's name in a sweep: its values of the swept keys, `beta=4,latent_dim=16`.

    The swept keys are those with several values in multirun.yaml (which Hydra's basic
    sweeper writes before any job) and those in the sweeper's search space (Optuna).
    Without either (a single run) it falls back to all the job's
    overrides but the excluded ones. '/' in group names becomes '.', so that the label
    is one folder name.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    exclude = set(hydra_cfg.job.config.override_dirname.exclude_keys)
    swept = _swept_keys(Path(str(hydra_cfg.sweep.dir)))
    searched = (hydra_cfg.get("sweeper") or {}).get("params")  # Optuna's search space
    if searched:
        swept = (swept or set()) | set(searched)
    items = []
    for override in OverridesParser.create().parse_overrides(list(hydra_cfg.overrides.task)):
        key = override.key_or_group
        if key in exclude or (swept is not None and key not in swept):
            continue
        items.append(f"{override.get_key_element()}={override.get_value_element_as_str()}")
    return ",".join(sorted(items)).replace("/", ".")
