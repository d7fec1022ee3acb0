"""`logger=mlflow` against a real MLflow tracking server, started on 127.0.0.1 by the
fixture and stopped by its PID: a run is named and tagged as its W&B run would be, its
metrics are the ones metrics.json holds, a resumed run logs into the same MLflow run,
and the jobs of a sweep share one group. The default store (SQLite inside the run
folder, no server) is tested too."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from in_process import call_sweep, call_train

SMOKE = ("debug=smoke", "logger=mlflow", "data.n_train=256", "data.n_val=64", "data.n_test=64")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on a free port of 127.0.0.1 with its own SQLite store."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{root / 'store.db'}",
        "--default-artifact-root",
        str(root / "artifacts"),
        "--workers",
        "1",
    ]
    log = (root / "server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (root / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "mlflow server did not start in 90 s"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its workers, by PID
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def runs_of(tracking_uri: str, experiment: str = "vaelab") -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r} at {tracking_uri}"
    return list(client.search_runs([found.experiment_id]))


def metric_history(tracking_uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    from mlflow.tracking import MlflowClient

    history = MlflowClient(tracking_uri).get_metric_history(run_id, key)
    return sorted((m.step, m.value) for m in history)


def test_a_run_logs_to_the_server_named_grouped_and_with_its_metrics(
    mlflow_server: str, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    result = call_train(
        *SMOKE,
        "beta=2",
        f"logger.mlflow.tracking_uri={mlflow_server}",
        "logger.mlflow.experiment_name=single",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = runs_of(mlflow_server, "single")
    assert run.info.status == "FINISHED"
    assert (run_dir / "mlflow" / "run_id").read_text() == run.info.run_id
    assert "beta=2" in run.info.run_name
    assert run.data.tags["vaelab.group"] == "default"  # no experiment: as W&B's group
    assert run.data.tags["vaelab.job_type"] == "train"
    summary = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert run.data.metrics["val/nelbo"] == pytest.approx(summary["val/nelbo"], rel=1e-6)
    assert run.data.metrics["test/nelbo"] == pytest.approx(summary["test/nelbo"], rel=1e-6)
    assert float(run.data.params["objective/beta"]) == 2.0  # the model's hyperparameters
    assert not (run_dir / "mlflow" / "mlflow.db").exists()  # the server holds it


def test_a_resumed_run_continues_the_same_mlflow_run(mlflow_server: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    common = (
        *SMOKE,
        f"logger.mlflow.tracking_uri={mlflow_server}",
        "logger.mlflow.experiment_name=resumed",
        f"hydra.run.dir={run_dir}",
    )
    first = call_train(*common, "trainer.max_epochs=1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    (run,) = runs_of(mlflow_server, "resumed")
    epochs_before = metric_history(mlflow_server, run.info.run_id, "val/nelbo")
    second = call_train(*common, "trainer.max_epochs=2", "resume=auto", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    (again,) = runs_of(mlflow_server, "resumed")  # still one run
    assert again.info.run_id == run.info.run_id
    epochs_after = metric_history(mlflow_server, run.info.run_id, "val/nelbo")
    assert len(epochs_after) == len(epochs_before) + 1
    assert epochs_after[-1][0] > epochs_before[-1][0]  # a later step


def test_the_jobs_of_a_sweep_are_runs_of_one_group(mlflow_server: str, tmp_path: Path) -> None:
    sweep = call_sweep(
        tmp_path / "outputs",
        *SMOKE,
        "beta=1,3",
        f"logger.mlflow.tracking_uri={mlflow_server}",
        "logger.mlflow.experiment_name=swept",
    )
    runs = runs_of(mlflow_server, "swept")
    assert sorted(r.info.run_name for r in runs) == ["beta=1", "beta=3"]
    groups = {r.data.tags["vaelab.group"] for r in runs}
    assert groups == {f"sweep-{sweep.parent.name}_{sweep.name}"}
    assert {r.data.tags["vaelab.job_type"] for r in runs} == {"sweep"}


def test_by_default_the_store_is_inside_the_run_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = call_train(*SMOKE, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    store = f"sqlite:///{run_dir / 'mlflow' / 'mlflow.db'}"
    (run,) = runs_of(store)
    assert run.info.run_id == (run_dir / "mlflow" / "run_id").read_text()
    summary = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert run.data.metrics["test/nll_iwae"] == pytest.approx(summary["test/nll_iwae"], rel=1e-6)
