"""Shared fixtures: the project's real configs, composed once for the session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# No test waits on a W&B login or reaches the network.
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

from helpers import CONF
from tiers import item_tiers, start_order, worker_group


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (make test: two workers on two cores) each worker and every
    process it starts gets one torch thread: one CPU-heavy job per core. Set before
    torch is first imported, which reads it once."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = "1"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks it is given
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its tiers (tests/tiers.py), read off the code it runs; keep
    tests that share a module-scoped fixture or a service on one xdist worker; start
    the tests that wait on services and child processes first."""
    distributed = config.pluginmanager.hasplugin("xdist")
    for item in items:
        for tier in sorted(item_tiers(item)):
            item.add_marker(tier)
        group = worker_group(item)
        if distributed and group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    items[:] = start_order(items)


@pytest.fixture(scope="session")
def hydra_conf() -> Iterator[None]:
    """Hydra initialised on the project's conf/ for the whole session (compose is cheap)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from vaelab.config.resolvers import register_resolvers

    register_resolvers()  # as the entry points do (vaelab.config.preflight) before Hydra composes
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 1 MB tmpfs: a real full disk (needs root and mount; skipped otherwise)."""
    import subprocess

    folder = tmp_path / "small_disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture(scope="session")
def slurm_cluster() -> dict[str, str]:
    """The running SLURM cluster that `SLURM_CONF` names (.ci/run starts one with
    tests/slurm/start_cluster.sh); the SLURM tests are skipped where there is none."""
    import shutil
    import subprocess

    conf = os.environ.get("SLURM_CONF")
    start = "sudo bash tests/slurm/start_cluster.sh; source /tmp/slurm-cluster/env.sh"
    if not conf or shutil.which("scontrol") is None:
        pytest.skip(f"no SLURM cluster (start one: {start})")
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    if ping.returncode != 0 or "UP" not in ping.stdout:
        pytest.skip(f"the SLURM cluster of SLURM_CONF={conf} does not answer (start one: {start})")
    partition = subprocess.run(
        ["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=30
    ).stdout.split()
    return {"SLURM_CONF": conf, "partition": partition[0].rstrip("*") if partition else ""}


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 (Debian's postgresql package), its
    database `vaelab`; stopped by the PID in its postmaster.pid afterwards. As root the
    server runs as the `postgres` user (it refuses root). Skipped without initdb."""
    import os
    import shutil
    import signal
    import socket
    import subprocess
    import time

    bindir = Path("/usr/lib/postgresql")
    initdb = shutil.which("initdb") or next(iter(sorted(bindir.glob("*/bin/initdb"))), None)
    if initdb is None:
        pytest.skip("no PostgreSQL server (apt-get install postgresql)")
    bin_dir = Path(initdb).resolve().parent  # /usr/local/bin links only some of them
    import tempfile

    # Not pytest's tmp_path: its folders are private to the user running the tests, and
    # the server (as root: the postgres user) must reach its own data folder.
    root = Path(tempfile.mkdtemp(prefix="vaelab-postgres-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run(
        [
            *as_user,
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ],
        **run,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [
            *as_user,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "server.log"),
            "-w",
            "start",
        ],
        **run,
    )
    pid = int((data / "postmaster.pid").read_text().split()[0])
    try:
        subprocess.run(
            [
                *as_user,
                str(bin_dir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                "vaelab",
            ],
            **run,
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/vaelab"
    finally:
        os.kill(pid, signal.SIGTERM)  # smart shutdown of the server this fixture started
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory):
    """`trained_run(*overrides, to=folder)`: a copy, at `folder`, of the run folder that
    `python src/train.py <overrides>` leaves. Each distinct list of overrides trains once
    a session (in process); every test gets a copy of its own to change as it likes."""
    import shutil

    from in_process import call_train

    cache = tmp_path_factory.mktemp("trained_runs")
    runs: dict[tuple[str, ...], Path] = {}

    def copy_of(*overrides: str, to: Path) -> Path:
        if overrides not in runs:
            run = cache / str(len(runs))
            result = call_train(*overrides, f"hydra.run.dir={run}")
            assert result.returncode == 0, result.stderr[-3000:]
            runs[overrides] = run
        shutil.copytree(runs[overrides], to, symlinks=True)
        return to

    return copy_of
