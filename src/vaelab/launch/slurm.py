"""`hydra/launcher=slurm`: hydra-submitit-launcher's SLURM launcher, with the failures a
cluster user meets reported in one line instead of a traceback or a wait without end.

- sbatch refuses the request (more CPUs, memory or GPUs than a node has): the line
  says what SLURM said and which `hydra.launcher.*` keys set the request, and the new
  sweep folder, which holds no job yet, is removed.
- SLURM accepts the job but can never start it (its reason is a per-job limit of the
  partition, QOS or account, e.g. `PartitionTimeLimit`): the watcher cancels it at once
  and the line names the reason, instead of the sweep pending for ever.
- A job ends on the cluster without a result (`scancel`, a node failure, the OOM
  killer): the sweep waits for its other jobs, prints the usual one line per job and
  exits non-zero, with the command that continues the sweep.

A job that SLURM requeues (`scontrol requeue`, a time-out that submitit requeues) has no
result yet, so the launcher goes on waiting for it; the requeued job continues from its
`last.ckpt` (vaelab.callbacks.interruption, vaelab.train.resolve_checkpoint).
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
    SlurmLauncher as SubmititSlurmLauncher,
)
from typing_extensions import override

#: Pending reasons SLURM gives a job that no amount of waiting lets start: the job asks
#: for more than a limit of its partition, QOS or association allows for one job.
HOPELESS_REASON = re.compile(
    r"^(PartitionTimeLimit|PartitionNodeLimit|PartitionConfig|BadConstraints|InvalidAccount"
    r"|InvalidQOS|DependencyNeverSatisfied|(QOS|Assoc)\w*PerJob\w*)$"
)
#: The launcher keys that make up a job's request (conf/hydra/launcher/slurm.yaml).
REQUEST_KEYS = (
    "partition",
    "timeout_min",
    "cpus_per_task",
    "mem_gb",
    "gpus_per_node",
    "tasks_per_node",
    "nodes",
)
POLL_S = 2.0


# ignore: hydra-submitit-launcher ships no type information, so its class is Any here
class SlurmLauncher(SubmititSlurmLauncher):  # type: ignore[misc]
    """hydra-submitit-launcher's `SlurmLauncher` whose failures end in one line."""

    @override
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        from submitit.core.utils import FailedJobError, UncompletedJobError

        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        started = time.time()
        watcher = HopelessJobWatcher(sweep_dir / ".submitit", since=started)
        watcher.start()
        try:
            with contextlib.redirect_stderr(_WithoutSbatchEcho(sys.stderr)):
                return super().launch(job_overrides, initial_job_idx)
        except FailedJobError as exc:
            if watcher.array_ids():  # a job's own error (a sweeper that searches)
                watcher.stop()
                self._report_lost_jobs(sweep_dir, started, exc, watcher.array_ids())
            _remove_if_jobless(sweep_dir)  # sbatch's, before any job exists
            _fail(
                f"SLURM refused the sweep's jobs: {_sbatch_message(exc)}; ask for what "
                f"the partition offers ({self._request()}; `sinfo -o '%P %c %m %G %l'` "
                "shows each partition's CPUs, memory, GPUs and time limit)"
            )
        except UncompletedJobError as exc:
            watcher.stop()
            if watcher.hopeless:
                _remove_if_jobless(sweep_dir)
                _fail(
                    f"SLURM can never start this sweep's jobs: {watcher.hopeless}; they "
                    f"were cancelled. Ask for less ({self._request()}), or another "
                    "partition/QOS with hydra.launcher.partition=... or hydra.launcher.qos=..."
                )
            self._report_lost_jobs(sweep_dir, started, exc, watcher.array_ids())
        finally:
            watcher.stop()

    def _request(self) -> str:
        values = {k: self.params.get(k) for k in REQUEST_KEYS if k in self.params}
        return " ".join(
            f"hydra.launcher.{k}={'null' if v is None else v}" for k, v in values.items()
        )

    def _report_lost_jobs(
        self, sweep_dir: Path, started: float, exc: Exception, arrays: set[str]
    ) -> None:
        """A job ended without a result: wait for the rest, then one line per job."""
        from vaelab.launch import sweeps

        while _live_jobs(arrays):
            time.sleep(POLL_S)
        records = sweeps.sweep_records(sweep_dir, since=started)
        for line in sweeps.summary_lines(records):
            print(line, file=sys.stderr)
        # submitit's first line ("Job 12_0 (task: 0) with path ... has not produced any
        # output (state: CANCELLED by 0)"); the job's stderr that follows is in its log.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _fail(
            f"a job ended on SLURM without a result ({reason}); run the same command with "
            f"hydra.sweep.dir={sweep_dir} to run the unfinished jobs again",
            code=1,
        )


class _WithoutSbatchEcho(io.TextIOBase):
    """stderr without submitit's echo of a failed sbatch's output (it prints it before
    raising it): the one line the launcher writes quotes it."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self._dropped = False

    @override
    def write(self, text: str) -> int:
        echo = text.startswith("sbatch: ") or (self._dropped and text == "\n")
        self._dropped = echo and text != "\n"
        if not echo:
            self.stream.write(text)
        return len(text)

    @override
    def flush(self) -> None:
        self.stream.flush()


class HopelessJobWatcher:
    """A thread that watches the sweep's SLURM jobs while the launcher waits and cancels
    them when one pends for a reason that cannot go away (`HOPELESS_REASON`)."""

    def __init__(self, submitit_dir: Path, since: float) -> None:
        self.submitit_dir = submitit_dir
        self.since = since
        self.hopeless = ""
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="slurm-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def array_ids(self) -> set[str]:
        """The SLURM job ids this launch submitted: submitit names each job's folder
        `<array>_<task>` (`submitit_folder: .../.submitit/%j`)."""
        if not self.submitit_dir.is_dir():
            return set()
        return {
            p.name.split("_")[0]
            for p in self.submitit_dir.iterdir()
            if p.is_dir()
            and re.fullmatch(r"\d+(_\d+)?", p.name)
            and p.stat().st_mtime >= self.since - 1
        }

    def _watch(self) -> None:
        while not self._stopped.wait(POLL_S):
            arrays = self.array_ids()
            for job, reason in _pending_reasons(arrays).items():
                if HOPELESS_REASON.match(reason):
                    self.hopeless = f"job {job} is pending with reason {reason}"
                    subprocess.run(["scancel", *sorted(arrays)], timeout=60, check=False)
                    return


def _squeue(arrays: set[str], fields: str) -> list[list[str]]:
    if not arrays:
        return []
    out = subprocess.run(
        ["squeue", "-h", "-j", ",".join(sorted(arrays)), "-o", fields],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


def _pending_reasons(arrays: set[str]) -> dict[str, str]:
    """Each pending job's reason, e.g. {'12_0': 'PartitionTimeLimit'}."""
    rows = _squeue(arrays, "%i|%T|%r")
    return {job: reason for job, state, reason in rows if state == "PENDING"}


def _live_jobs(arrays: set[str]) -> bool:
    return bool(_squeue(arrays, "%i|%T"))


def _sbatch_message(exc: Exception) -> str:
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    errors = [x.removeprefix("sbatch: error: ") for x in lines if "error" in x]
    return "; ".join(errors or lines[:1])


def _remove_if_jobless(sweep_dir: Path) -> None:
    """Remove a sweep folder this launch made and no job ran in: Hydra's multirun.yaml
    and submitit's files are all it holds. A folder with job folders (a continued
    sweep) is kept as it is."""
    if not sweep_dir.is_dir():
        return
    if any(p.is_dir() and p.name != ".submitit" for p in sweep_dir.iterdir()):
        return
    shutil.rmtree(sweep_dir, ignore_errors=True)
    for folder in (sweep_dir.parent, sweep_dir.parent.parent):  # <day>, multirun
        try:
            folder.rmdir()  # only when this sweep was all it held
        except OSError:
            break


def _fail(message: str, code: int = 2) -> None:
    from vaelab.errors import fail

    fail(message, code)
