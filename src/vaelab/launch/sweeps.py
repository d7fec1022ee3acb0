"""Sweeps that survive a failing job, stop cleanly on SIGTERM, and continue after a kill.

A Hydra sweep (`-m`) runs its jobs one after another in one process (or on a
launcher's workers). vaelab adds, around each job:

- **A failure stays that job's.** An exception in a job (a bad value, a NaN stop, a
  bug, a DDP group's non-zero exit) is written to the job's log and to
  `<job folder>/sweep_job.json`, one line goes to stderr, and the sweep goes on with
  the next job. At the end `SweepSummary`, a Hydra callback, prints one line per job
  (finished, skipped, failed with the path of its log) and exits non-zero if any job
  failed. Under a sweeper that searches (Optuna) a failed job is raised as the
  exception it was, so that the sweeper records the trial as failed.
- **SIGTERM stops the sweep,** as the user asked: the running job saves `last.ckpt` and
  is recorded as interrupted, and the sweep exits with 143 (128 + SIGTERM).
- **The same command continues a sweep.** Run again with
  `hydra.sweep.dir=<the sweep's folder>`, each job finds its own folder: a job whose
  record says finished with the same resolved config (its sha256) is skipped (its
  metric is read back for the sweeper); any other job that ran before (interrupted,
  killed, failed) continues from its `last.ckpt` in the same folder (`resume=auto`), so
  its CSV history and W&B run go on where they stopped; a job that never ran starts.

`sweep_job.json` is this module's file: it writes and reads it, nothing else does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from omegaconf import DictConfig, OmegaConf
from typing_extensions import override

from vaelab.runs.files import optimized_value, summary_status

log = logging.getLogger(__name__)

JOB_FILE = "sweep_job.json"
#: Keys that say how a job gets to its result, not what it computes: left out of the
#: config hash, so that a job continued with resume=auto still matches its first run.
NOT_HASHED = ("resume", "ckpt_path")

Status = Literal["running", "finished", "skipped", "failed", "interrupted"]


@dataclass
class JobRecord:
    """One job of a sweep, as `sweep_job.json` holds it."""

    num: int
    label: str
    run_dir: str
    status: Status
    config_sha256: str
    message: str = ""
    log: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    threads: int = 0


def in_sweep() -> bool:
    """Whether this process runs a job of a Hydra multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def sweeper_searches() -> bool:
    """Whether the sweep's sweeper chooses jobs from results (Optuna), rather than
    running a fixed list (Hydra's basic sweeper): it must see a job's failure."""
    from hydra.core.hydra_config import HydraConfig

    target = str(HydraConfig.get().sweeper.get("_target_", ""))
    return not target.endswith("BasicSweeper")


def config_sha256(cfg: DictConfig) -> str:
    """sha256 of the job's resolved config, without the keys in `NOT_HASHED`."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    for key in NOT_HASHED:
        plain.pop(key, None)
    blob = json.dumps(plain, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _job_identity() -> tuple[int, str, Path]:
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    # The folder's name is the job's number and its swept values (conf/hydra): the label.
    label = run_dir.name.partition("_")[2] or str(hydra_cfg.job.override_dirname)
    return int(hydra_cfg.job.num), label, run_dir


def read_record(run_dir: Path) -> JobRecord | None:
    """The job record in `run_dir`, or None (none, or unreadable)."""
    try:
        data = json.loads((run_dir / JOB_FILE).read_text())
        return JobRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


def write_record(record: JobRecord) -> None:
    from vaelab.runs.atomic import atomic_path

    path = Path(record.run_dir) / JOB_FILE
    with atomic_path(path, what="sweep job record") as tmp:
        tmp.write_text(json.dumps(asdict(record), indent=2) + "\n")


@dataclass(frozen=True)
class Plan:
    """What a job of a continued sweep does: `skip` (finished before, `value` its
    metric), `resume` (continue from its folder's last.ckpt) or start (neither)."""

    skip: bool = False
    resume: bool = False
    value: float | None = None


def start_job(cfg: DictConfig) -> Plan:
    """Decide what this job does (see `Plan`) and record it as running. Outside a sweep:
    start, record nothing."""
    if not in_sweep():
        return Plan()
    num, label, run_dir = _job_identity()
    digest = config_sha256(cfg)
    before = read_record(run_dir)
    plan = Plan()
    if before is not None and before.config_sha256 == digest:
        if before.status in ("finished", "skipped") and _finished_summary(run_dir):
            value = _recorded_metric(run_dir, cfg.get("optimized_metric"))
            log.info("job %d (%s) finished in an earlier run of this sweep: skipped", num, label)
            plan = Plan(skip=True, value=value)
        else:
            plan = Plan(resume=True)
    elif before is not None:
        log.warning(
            "job %d (%s): its folder holds a run of another config; this one starts afresh "
            "beside it",
            num,
            label,
        )
    elif (run_dir / "checkpoints" / "last.ckpt").is_file():
        # A checkpoint and no record: a job of this sweep from before job records.
        plan = Plan(resume=True)
    status: Status = "skipped" if plan.skip else "running"
    threads = share_cpus()
    record = JobRecord(num, label, str(run_dir), status, digest, started_at=time.time())
    record.threads = threads
    write_record(record)
    return plan


def parallel_jobs() -> int:
    """How many jobs of this sweep run at once on this machine: the joblib launcher's
    `n_jobs` (-1: one per CPU), else 1."""
    import os

    from hydra.core.hydra_config import HydraConfig

    launcher = HydraConfig.get().launcher
    if not str(launcher.get("_target_", "")).endswith("JoblibLauncher"):
        return 1
    n_jobs = int(launcher.get("n_jobs", 1) or 1)
    return (os.cpu_count() or 1) if n_jobs < 0 else max(1, n_jobs)


def share_cpus() -> int:
    """Give this job its share of the CPUs when several jobs run at once
    (hydra/launcher=parallel): cpus // jobs torch threads, at least one. Each job's
    torch would otherwise start a thread per CPU, and jobs side by side then slow each
    other several-fold. Returns the threads set (0: left as they were)."""
    import os

    jobs = parallel_jobs()
    if jobs <= 1:
        return 0
    import torch

    threads = max(1, (os.cpu_count() or 1) // jobs)
    torch.set_num_threads(threads)
    log.info("%d jobs at once: %d torch thread(s) for this one", jobs, threads)
    return threads


def _finished_summary(run_dir: Path) -> bool:
    return summary_status(run_dir) == "finished"


def _recorded_metric(run_dir: Path, name: Any) -> float | None:
    return optimized_value(run_dir, str(name)) if name else None


def end_job(status: Status, message: str = "") -> None:
    """Record how this job ended (nothing outside a sweep)."""
    if not in_sweep():
        return
    num, label, run_dir = _job_identity()
    before = read_record(run_dir)
    digest = before.config_sha256 if before else ""
    started, threads = (before.started_at, before.threads) if before else (0.0, 0)
    if before is not None and before.status == "skipped" and status == "finished":
        status = "skipped"
    logs = sorted(run_dir.glob("*.log"))
    record = JobRecord(
        num,
        label,
        str(run_dir),
        status,
        digest,
        message=" ".join(message.split()),
        log=str(logs[0]) if logs else "",
        started_at=started,
        finished_at=time.time(),
        threads=threads,
    )
    write_record(record)


def sweep_records(sweep_dir: Path, since: float = 0.0) -> list[JobRecord]:
    """The records of the jobs below `sweep_dir` that ended after `since`, by job number."""
    records = [
        r
        for path in sweep_dir.glob(f"*/{JOB_FILE}")
        if (r := read_record(path.parent)) is not None and r.finished_at >= since
    ]
    return sorted(records, key=lambda r: r.num)


def summary_lines(records: list[JobRecord]) -> list[str]:
    """One line per job, then a count."""
    lines = []
    for r in records:
        if r.status == "failed":
            where = f"; log: {r.log}" if r.log else ""
            lines.append(f"job {r.num} ({r.label}): failed: {r.message}{where}")
        elif r.status == "skipped":
            lines.append(f"job {r.num} ({r.label}): skipped, finished in an earlier run")
        else:
            lines.append(f"job {r.num} ({r.label}): {r.status}, {r.run_dir}")
    counts: dict[str, int] = {}
    for r in records:
        counts[r.status] = counts.get(r.status, 0) + 1
    lines.append("sweep: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    return lines


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - hydra-core < 1.1
    _HydraCallback = object  # type: ignore[assignment,misc]


class SweepSummary(_HydraCallback):
    """Hydra callback (conf/hydra/default.yaml): at the end of a sweep, one line per job
    on stderr and in the log, and a non-zero exit (1) when any job failed."""

    def __init__(self) -> None:
        self.started = 0.0

    @override
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time()

    @override
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        records = sweep_records(sweep_dir, since=self.started)
        if not records:
            return
        for line in summary_lines(records):
            print(line, file=sys.stderr)
        failed = [r for r in records if r.status == "failed"]
        if failed:
            print(
                f"vaelab: error: {len(failed)} of {len(records)} jobs failed; the others "
                f"finished. Fix them and run the same command with "
                f"hydra.sweep.dir={sweep_dir} to run only those again",
                file=sys.stderr,
            )
            raise SystemExit(1)
