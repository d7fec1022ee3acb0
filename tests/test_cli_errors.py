"""A wrong override stops with one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import pytest
from helpers import run_train

BAD_OVERRIDES = [
    (["model=cnv"], "unknown option 'cnv' for model= (did you mean model=conv?)"),
    (["model/encoder=transformer"], "unknown option 'transformer' for model/encoder="),
    (["data=imagenet"], "unknown option 'imagenet' for data="),
    (["beta=-1"], "beta=-1 is negative"),
    (["beta=abc"], "beta='abc' is not a number"),
    (["latent_dim=0"], "latent_dim=0 must be an integer >= 1"),
    (["latent_dim=2.5"], "latent_dim=2.5 must be an integer >= 1"),
    (["latnt_dim=8"], "unknown key 'latnt_dim' (did you mean latent_dim=...?)"),
    (["data.batch_sze=8"], "did you mean data.batch_size=...?"),
    (["beta=1,4"], "beta=1,4 lists several values; add -m"),
    (["-m", "beta=1,-4"], "beta=-4 is negative"),
    (["ckpt_path=x.ckpt", "resume=auto"], "either ckpt_path=... or resume=auto"),
    (["resume=yes"], "resume='yes' is not an option"),
    (["trainer=tpu"], "unknown option 'tpu' for trainer="),
    (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val=-1 must be a number > 0"),
    (["trainer.gradient_clip_algorithm=max"], "use norm or value"),
    (["+trainer.accumulate_grad_batches=4"], "raise data.batch_size instead"),
    (
        ["-m", "beta=1", "hydra.sweep.dir=/etc/hostname/sweep"],
        "/etc/hostname is a file; set paths.log_dir=",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "message"),
    BAD_OVERRIDES,
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_bad_override_is_one_line(overrides: list[str], message: str, tmp_path) -> None:
    result = run_train(
        *overrides, f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sweep", timeout=60
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vaelab: error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()
