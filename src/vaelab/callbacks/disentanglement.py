"""The disentanglement metrics at the end of every training run on data with known
factors, so that each job of a sweep carries them.

After the test epoch, rank 0 samples observations from the data module's ground truth
(`vaelab.data.factors`), encodes them and computes every metric of
`eval.disentanglement` (its `fast` protocol by default for training;
`eval.disentanglement.protocol=dlib` for the published counts). The headline scores
join the test metrics as `test/<metric>` (`test/mig`, `test/dci`, `test/sap`, ...), and
so reach metrics.json, the loggers and W&B's summary like `test/nelbo`. Other ranks
receive rank 0's numbers. Data without factors, or `eval.disentanglement.enabled=false`,
skip it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
from typing_extensions import override

from vaelab.metrics.names import METRICS
from vaelab.metrics.protocol import StageTimes, evaluate_disentanglement, headline_scores
from vaelab.metrics.registry import find_metric


class DisentanglementMetrics(L.Callback):
    """`settings`: the `eval.disentanglement` config (enabled, protocol, counts)."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = settings
        #: The last report (scores per factor, settings, stage times) on rank 0.
        self.report: dict[str, Any] | None = None

    @property
    def metric_keys(self) -> frozenset[str]:
        """What it may log (`test/<score>` of each chosen metric's headline), for checks
        of a monitored or optimised metric's name; none when switched off."""
        if not self.settings.get("enabled", True):
            return frozenset()
        names = self.settings.get("metrics") or METRICS
        return frozenset(f"test/{k}" for name in names for k in find_metric(name).headline_keys)

    @override
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        scores: dict[str, float] | None = None
        if trainer.is_global_zero:
            times = StageTimes()
            datamodule = getattr(trainer, "datamodule", None)
            batch_size = int(getattr(datamodule, "eval_batch_size", 256) or 256)
            report = evaluate_disentanglement(
                pl_module, datamodule, self.settings, pl_module.device, batch_size, times
            )
            if report is not None:
                self.report = {**report, "stage_times_s": dict(times)}
                scores = headline_scores(report["scores"], report["settings"].get("metrics"))
        scores = trainer.strategy.broadcast(scores, src=0)
        if scores:
            # Equal on every rank already: nothing to reduce.
            pl_module.log_dict({f"test/{k}": v for k, v in scores.items()}, sync_dist=False)
