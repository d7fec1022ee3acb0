"""`python src/eval.py` and `python src/generate.py` as a user runs them on a trained
checkpoint: the numbers in eval.json, the pictures in generated/, the one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from helpers import quiet_trainer, read_wandb_run, run_app
from in_process import call_app, call_train
from PIL import Image

SMALL_MODEL = [
    "debug=smoke",
    "data.resolution=32",
    "model/encoder=mlp",
    "model/decoder=mlp",
    "latent_dim=4",
]
# Enough steps that the posterior is no longer the prior (a "trained model" for the
# bounds), still a few seconds on a CPU.
TRAIN = [
    *SMALL_MODEL,
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=15",
    "data.batch_size=32",
    "model.optimizer.lr=3e-3",
]
N_TEST = 192
EVAL = [
    f"data.n_test={N_TEST}",
    "data.eval_batch_size=64",
    "eval.iwae_k=16",
    "eval.disentanglement.mig.n_samples=1000",
    "eval.disentanglement.factor_vae.batch_size=16",
    "eval.disentanglement.factor_vae.n_train=40",
    "eval.disentanglement.factor_vae.n_eval=20",
    "eval.disentanglement.factor_vae.n_variance=400",
    "eval.disentanglement.dci.n_train=200",
    "eval.disentanglement.dci.n_test=100",
    "eval.disentanglement.dci.n_estimators=5",
    "eval.disentanglement.sap.n_train=200",
    "eval.disentanglement.sap.n_test=100",
    "eval.disentanglement.beta_vae.batch_size=16",
    "eval.disentanglement.beta_vae.n_train=40",
    "eval.disentanglement.beta_vae.n_eval=20",
    "eval.disentanglement.modularity.n_train=200",
    "eval.disentanglement.modularity.n_test=100",
    "eval.disentanglement.irs.n_samples=500",
    "eval.disentanglement.unsupervised.n_samples=500",
    "eval.sample_quality.n_samples=300",
    "eval.sample_quality.batch_size=128",
]
GENERATE = [
    "n_samples=16",
    "n_reconstructions=16",
    "interpolation.pairs=3",
    "interpolation.steps=5",
    "traversal.steps=7",
    "traversal.n_stats=200",
    "traversal.frame_ms=50",
]
# W&B offline: the run folder gets a real W&B run, and eval/generate must add to it.
WANDB = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def ok(result) -> None:
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """train -> eval -> generate, each as a user runs it, on one run folder."""
    root = tmp_path_factory.mktemp("e2e")
    run = root / "run"
    ok(call_train(*TRAIN, f"hydra.run.dir={run}", env=WANDB))
    ckpt = f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}"
    ok(call_app("eval", ckpt, *EVAL, f"hydra.run.dir={root / 'eval'}", env=WANDB))
    ok(call_app("generate", ckpt, *GENERATE, f"hydra.run.dir={root / 'generate'}", env=WANDB))
    return run


@pytest.fixture(scope="module")
def report(run_dir: Path) -> dict:
    return json.loads((run_dir / "checkpoints" / "eval.json").read_text())


def test_eval_json_holds_every_metric(run_dir: Path, report: dict) -> None:
    metrics = report["metrics"]
    assert Path(report["checkpoint"]) == (run_dir / "checkpoints" / "best.ckpt").resolve()
    assert Path(report["run_dir"]) == run_dir.resolve()
    # The whole test split, once per example (the smoke run tested only 2 batches).
    assert report["n_examples"] == N_TEST and report["iwae_k"] == 16
    assert metrics["nelbo"] == pytest.approx(metrics["recon"] + metrics["kl"], rel=1e-5)
    # Binary data, Bernoulli likelihood: bits/dim are a code length per pixel.
    ln2_pixels = 32 * 32 * math.log(2)
    assert metrics["bpd"] == pytest.approx(metrics["nelbo"] / ln2_pixels, rel=1e-5)
    assert metrics["bpd_iwae"] == pytest.approx(metrics["nll_iwae"] / ln2_pixels, rel=1e-5)
    # The importance-weighted bound is tighter than the ELBO on a trained model.
    assert metrics["nll_iwae"] < metrics["nelbo"]
    latents = report["latents"]
    assert len(latents["kl_per_dim"]) == 4
    assert sum(latents["kl_per_dim"]) == pytest.approx(metrics["kl"], rel=1e-4)
    active = [d for d, v in enumerate(latents["posterior_mean_variance"]) if v > 0.01]
    assert metrics["active_units"] == len(active)
    assert sorted(latents["active_dims_by_kl"]) == active
    kl = latents["kl_per_dim"]
    assert [kl[d] for d in latents["active_dims_by_kl"]] == sorted(
        (kl[d] for d in active), reverse=True
    )
    assert 0 < metrics["psnr"] < 100 and -1 <= metrics["ssim"] <= 1
    bounded = ("mig", "factor_vae", "dci", "sap", "beta_vae", "modularity", "explicitness", "irs")
    for key in bounded:
        assert 0 <= metrics[key] <= 1, key
    for key in ("gaussian_total_correlation", "gaussian_wasserstein_correlation"):
        assert metrics[key] >= -1e-9, key  # zero only for uncorrelated codes
    scores = report["disentanglement"]
    assert scores["factor_names"] == ["shape", "scale", "orientation", "pos_x", "pos_y"]
    assert scores["protocol"] == "dlib"  # eval's default; the counts above replace its own
    assert scores["settings"]["dci"] == {"n_train": 200, "n_test": 100, "n_estimators": 5}
    assert scores["settings"]["irs"] == {"n_samples": 500, "quantile": 0.99}  # the preset's
    # The shared pool: 1000 i.i.d. observations (MIG's count, the largest) encoded once.
    assert "encode_pool" in report["stage_times_s"]
    assert set(scores["scores"]) >= {f"mig/{k}" for k in range(5)} | {"dci/completeness"}


def test_eval_numbers_join_the_training_wandb_run(run_dir: Path, report: dict) -> None:
    runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 3  # training, then eval and generate resuming it
    training, *resumed = (read_wandb_run(r) for r in runs)
    assert all(r["id"] == training["id"] for r in resumed)
    summaries = [r["summary"] for r in resumed]
    (eval_summary,) = [s for s in summaries if "eval/nll_iwae" in s]
    assert eval_summary["eval/nll_iwae"] == pytest.approx(report["metrics"]["nll_iwae"])
    assert eval_summary["eval/mig"] == pytest.approx(report["metrics"]["mig"])
    (generate_run,) = [r for r in resumed if "eval/nll_iwae" not in r["summary"]]
    assert {"generated/samples", "generated/traversals_gif"} <= {
        k.split("/_type")[0] for k in generate_run["history_keys"]
    }


def cells(n: int, side: int = 32, pad: int = 2, up: int = 2) -> int:
    """Pixels spanned by n grid cells of `side` pixels (make_grid padding), upscaled."""
    return up * (n * (side + pad) + pad)


def test_generate_writes_grids_of_the_right_size(run_dir: Path) -> None:
    out = run_dir / "checkpoints" / "generated"
    info = json.loads((out / "generated.json").read_text())
    sizes = {p.name: Image.open(p).size for p in out.glob("*.png")}
    assert sizes == {
        "samples.png": (cells(8), cells(2)),  # 16 samples, 8 per row
        "reconstructions.png": (cells(16), cells(2)),  # 8 (original, recon) pairs per row
        "interpolation_linear.png": (cells(5 + 2), cells(3)),  # image, 5 steps, image
        "interpolation_spherical.png": (cells(5 + 2), cells(3)),
        "traversals.png": sizes["traversals.png"],  # the labels' width: checked below
    }
    n_dims = len(info["traversal"]["dims"])
    labelled_width, height = sizes["traversals.png"]
    assert height == cells(n_dims) and labelled_width > cells(7)
    dims = info["traversal"]["dims"]
    kl = info["traversal"]["kl_per_dim"]
    active = [d for d, a in enumerate(info["traversal"]["active"]) if a]
    # Every active dimension, largest KL first (all of them if none is active).
    assert sorted(dims) == (active or [0, 1, 2, 3])
    assert [kl[d] for d in dims] == sorted((kl[d] for d in dims), reverse=True)
    assert info["traversal"]["values"] == pytest.approx([-3, -2, -1, 0, 1, 2, 3])

    gif = Image.open(out / "traversals.gif")
    # One dimension per row, with the PNG's labels on the left.
    assert gif.size == (labelled_width - cells(7) + cells(1), cells(len(dims)))
    durations = []
    for frame in range(gif.n_frames):
        gif.seek(frame)
        durations.append(gif.info["duration"])
    # 7 values forward and 5 back: identical neighbours may merge, time does not.
    assert info["traversal"]["gif_frames"] == 12 and sum(durations) == 12 * 50
    assert gif.n_frames > 1


def test_samples_and_reconstructions_show_what_the_model_decodes(run_dir: Path) -> None:
    import numpy as np

    from vaelab.data.shapes import ShapesDataModule
    from vaelab.runs.trained import load_vae

    model, _ = load_vae(run_dir / "checkpoints" / "best.ckpt")
    # samples.png at sample_seed=0, temperature=1: decoded N(0, I) draws from that seed.
    z = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.decode(z).mean
    picture = np.array(Image.open(run_dir / "checkpoints" / "generated" / "samples.png"))
    # The first cell starts after 2 px of padding; every pixel is drawn 2 x 2.
    first = torch.from_numpy(picture[4:68:2, 4:68:2].astype("float32")) / 255
    torch.testing.assert_close(first, expected[0, 0], atol=0.5 / 255 + 1e-6, rtol=0)

    # reconstructions.png: the first test image of the run's data, its reconstruction beside.
    data = ShapesDataModule(resolution=32, n_val=5000, n_test=5000, seed=0)
    x = data.example_batch(1, split="test")
    picture = np.array(Image.open(run_dir / "checkpoints" / "generated" / "reconstructions.png"))
    original = torch.from_numpy(picture[4:68:2, 4:68:2].astype("float32")) / 255
    beside = torch.from_numpy(picture[4:68:2, 72:136:2].astype("float32")) / 255
    torch.testing.assert_close(original, x[0, 0])
    torch.testing.assert_close(beside, model.reconstruct(x)[0, 0], atol=0.5 / 255 + 1e-6, rtol=0)


@pytest.mark.filterwarnings("ignore:.*LeafSpec")
def test_test_stage_bounds_on_the_trained_model(run_dir: Path) -> None:
    """k = 1 reproduces the ELBO; k > 1 is tighter; neither depends on the batch size."""

    from vaelab.data.shapes import ShapesDataModule
    from vaelab.runs.trained import load_vae

    model, _ = load_vae(run_dir / "checkpoints" / "best.ckpt")
    results = {}
    for k, batch_size in ((1, 64), (16, 64), (16, 50)):
        model.configure_evaluation(iwae_k=k)
        data = ShapesDataModule(resolution=32, n_test=128, eval_batch_size=batch_size)
        trainer = quiet_trainer(accelerator="cpu")
        (results[k, batch_size],) = trainer.test(model, datamodule=data, verbose=False)
    k1, k16 = results[1, 64], results[16, 64]
    assert k1["test/nll_iwae"] == k1["test/nelbo"] and k1["test/iwae_k"] == 1
    assert k16["test/nelbo"] == pytest.approx(k1["test/nelbo"], rel=1e-6)  # same draws
    assert k16["test/nll_iwae"] < k16["test/nelbo"]
    assert results[16, 50]["test/nll_iwae"] == pytest.approx(k16["test/nll_iwae"], rel=1e-6)
    assert k16["test/active_units"] == sum(model.test_latent_stats["mean_variance"] > 0.01).item()


def test_nll_iwae_is_the_same_for_any_eval_batch_size_and_one_or_two_ddp_ranks(
    run_dir: Path, tmp_path: Path
) -> None:
    """Each example's importance samples come whole from its own stream, so neither the
    batch size nor the rank an example lands on changes them. 130 examples: the ranks
    get 65 each, in batches of 32 or 25 that do not divide them. Not bit-identical in
    general: the ranks' sums are added in another order (a float32 all-reduce)."""
    results = {}
    for trainer, batch_size in (("cpu", 32), ("cpu", 25), ("ddp_cpu", 32)):
        output = tmp_path / f"{trainer}-{batch_size}.json"
        # One process in this one; DDP re-launches its script, so it runs as a child.
        run_eval = call_app if trainer == "cpu" else run_app
        ok(
            run_eval(
                "eval",
                f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}",
                f"trainer={trainer}",
                "eval.iwae_k=16",
                "eval.disentanglement.enabled=false",
                "data.n_test=130",
                f"data.eval_batch_size={batch_size}",
                f"eval.output={output}",
                f"hydra.run.dir={tmp_path / 'eval' / f'{trainer}-{batch_size}'}",
            )
        )
        results[trainer, batch_size] = json.loads(output.read_text())
    reference = results["cpu", 32]
    assert reference["n_examples"] == 130
    for other in (results["cpu", 25], results["ddp_cpu", 32]):
        assert other["n_examples"] == 130  # no example dropped or padded in twice
        assert other["metrics"]["nll_iwae"] == pytest.approx(
            reference["metrics"]["nll_iwae"], rel=1e-6
        )
        assert other["metrics"]["nelbo"] == pytest.approx(reference["metrics"]["nelbo"], rel=1e-6)
    assert reference["metrics"]["nll_iwae"] < reference["metrics"]["nelbo"]


def test_overrides_replace_only_what_they_name(hydra_conf, run_dir: Path) -> None:
    from hydra import compose
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from vaelab.runs.trained import merge_run_config

    overrides = ["data.n_test=100", "trainer=cpu", "eval.iwae_k=3", "seed=5"]
    composed = compose("eval", overrides=[f"ckpt_path={run_dir}/x.ckpt", *overrides])
    saved = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    parsed = OverridesParser.create().parse_overrides(overrides)
    merged, named = merge_run_config(saved, composed, parsed)
    assert named == {"data.n_test", "trainer", "seed"}  # eval.* stays with eval
    assert merged.data.n_test == 100 and merged.data.resolution == 32  # the run's resolution
    assert merged.data.seed == 5  # ${seed} in the run's data config follows
    assert merged.trainer.accelerator == "cpu"
    # The whole group was replaced: the run's limits (15 train, 2 test batches) are gone.
    assert merged.trainer.limit_test_batches == 1.0 and merged.trainer.limit_train_batches == 1.0
    assert merged.latent_dim == 4
    # The run's own end-of-training evaluation settings stay the run's.
    assert merged.eval.disentanglement.protocol == "fast" and "iwae_k" not in merged.eval


def test_interpolation_paths() -> None:
    from vaelab.generate import lerp, slerp, traversal_latents

    z0 = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    z1 = torch.tensor([[0.0, 1.0], [4.0, 0.0]])  # the second pair is parallel
    t = torch.linspace(0, 1, 5)
    for path in (lerp(z0, z1, t), slerp(z0, z1, t)):
        torch.testing.assert_close(path[:, 0], z0)
        torch.testing.assert_close(path[:, -1], z1)
    mid = slerp(z0, z1, t)[:, 2]
    # Orthogonal unit vectors: the spherical midpoint stays on the unit circle.
    torch.testing.assert_close(mid[0], torch.tensor([0.5**0.5, 0.5**0.5]))
    torch.testing.assert_close(lerp(z0, z1, t)[0, 2].norm(), torch.tensor(0.5**0.5))
    torch.testing.assert_close(mid[1], torch.tensor([3.0, 0.0]))  # parallel: linear
    z = traversal_latents(torch.tensor([0.5, -0.5, 2.0]), [2, 0], torch.tensor([-1.0, 1.0]))
    assert z.tolist() == [
        [[0.5, -0.5, -1.0], [0.5, -0.5, 1.0]],
        [[-1.0, -0.5, 2.0], [1.0, -0.5, 2.0]],
    ]


# ------------------------------------------------------------------ one-line errors


def one_error_line(result) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vaelab: error: ")
    return lines[0]


@pytest.mark.parametrize("app", ["eval", "generate"])
def test_missing_checkpoint_is_one_line(app: str, tmp_path: Path) -> None:
    line = one_error_line(run_app(app, f"ckpt_path={tmp_path}/nope.ckpt", timeout=60))
    assert f"no checkpoint at {tmp_path}/nope.ckpt" in line
    line = one_error_line(run_app(app, timeout=60))
    assert f"ckpt_path is required: python src/{app}.py ckpt_path=" in line


def test_bad_values_are_one_line(tmp_path: Path) -> None:
    ckpt = tmp_path / "x.ckpt"
    ckpt.write_bytes(b"")
    line = one_error_line(run_app("eval", f"ckpt_path={ckpt}", "eval.iwae_k=0", timeout=60))
    assert "eval.iwae_k=0 must be an integer >= 1" in line
    line = one_error_line(run_app("generate", f"ckpt_path={ckpt}", "temperature=0", timeout=60))
    assert "temperature=0 must be a number > 0" in line
    line = one_error_line(run_app("eval", f"ckpt_path={ckpt}", "eval.iwae_kk=3", timeout=60))
    assert "did you mean eval.iwae_k=...?" in line
    line = one_error_line(run_app("generate", f"ckpt_path={ckpt}", "latent_dim=8", timeout=60))
    assert "'latent_dim' is a training setting; src/generate.py rebuilds the model" in line


def test_broken_checkpoints_are_one_line(run_dir: Path, tmp_path: Path) -> None:
    from vaelab.errors import CheckpointError
    from vaelab.runs.trained import load_vae

    good = (run_dir / "checkpoints" / "best.ckpt").read_bytes()
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good[: len(good) // 2])
    result = run_app("eval", f"ckpt_path={truncated}", f"hydra.run.dir={tmp_path}/e", timeout=120)
    assert "is truncated or not a PyTorch checkpoint" in one_error_line(result)
    # The apps load through this one function: what it raises is what they print.
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="is not a vaelab checkpoint"):
        load_vae(foreign)
    mismatched = tmp_path / "mismatched.ckpt"
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=False)
    checkpoint["hyper_parameters"]["latent_dim"] = 7  # weights of a 4-dim model
    torch.save(checkpoint, mismatched)
    with pytest.raises(CheckpointError, match="does not hold a VAE this version can load"):
        load_vae(mismatched)


def test_checkpoint_for_other_data_is_one_line(run_dir: Path, tmp_path: Path) -> None:
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    result = run_app(
        "generate", f"ckpt_path={ckpt}", "data.resolution=16", f"hydra.run.dir={tmp_path}"
    )
    assert "was trained on 1x32x32 data but the chosen data is 1x16x16" in one_error_line(result)


def test_non_finite_weights_give_null_metrics_a_status_and_a_failed_exit(
    run_dir: Path, tmp_path: Path
) -> None:
    """A checkpoint whose weights hold a NaN scores NaN: eval.json says so in valid JSON
    (null, status non_finite) and the command fails, instead of reporting a number."""
    import shutil

    damaged = tmp_path / "run"
    shutil.copytree(run_dir, damaged, ignore=shutil.ignore_patterns("wandb", "generated"))
    path = damaged / "checkpoints" / "best.ckpt"
    from vaelab.runs.checkpoints import AtomicCheckpointIO

    checkpoint = torch.load(path, weights_only=False)
    name = next(k for k in checkpoint["state_dict"] if k.startswith("decoder"))
    checkpoint["state_dict"][name].view(-1)[0] = float("nan")
    AtomicCheckpointIO().save_checkpoint(checkpoint, path)  # intact file, diverged weights

    result = run_app(
        "eval",
        f"ckpt_path={path}",
        *EVAL,
        "eval.disentanglement.enabled=false",
        f"hydra.run.dir={tmp_path / 'eval'}",
    )

    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("vaelab: error:")]
    assert "are not finite" in line and "nelbo" in line

    def refuse(token: str) -> None:
        raise AssertionError(f"bare {token} in eval.json")

    report = json.loads((path.parent / "eval.json").read_text(), parse_constant=refuse)
    assert report["status"] == "non_finite"
    assert "nelbo" in report["non_finite"] and report["metrics"]["nelbo"] is None


def test_each_evaluation_stage_is_announced_and_timed(run_dir: Path, report: dict) -> None:
    times = report["stage_times_s"]
    metrics = ("mig", "factor_vae", "dci", "sap", "beta_vae", "modularity", "irs", "unsupervised")
    assert set(times) == {"test", "encode_pool", *metrics, "sample_quality"}
    assert all(t >= 0 for t in times.values())
    assert sum(times.values()) <= report["wall_time_s"]
    log = (Path(report["eval_dir"]) / "eval.log").read_text()
    expected = (
        "test (ELBO, IWAE with k=16",
        "encode_pool (1000 + 100 i.i.d. observations) ...",
        "mig (n_samples 1000, n_bins 20) ...",
        "dci done in",
        "beta_vae (batch_size 16, n_train 40, n_eval 20) ...",
    )
    for line in expected:
        assert line in log, log[-2000:]


def test_traversal_rows_are_labelled_with_the_factor_each_dimension_follows(
    run_dir: Path,
) -> None:
    import numpy as np
    from sklearn.metrics import mutual_info_score

    from vaelab.data.shapes import FACTOR_NAMES, FACTOR_SIZES, render
    from vaelab.runs.trained import load_vae

    out = run_dir / "checkpoints" / "generated"
    info = json.loads((out / "generated.json").read_text())
    labels = info["traversal"]["factors"]
    assert [x["dim"] for x in labels] == info["traversal"]["dims"]
    # Recomputed here from the definition: I(z_d; v_k) / H(v_k) over 20-bin histograms
    # of the posterior means of n_stats (200) examples of i.i.d. factors (sample_seed 0).
    model, _ = load_vae(run_dir / "checkpoints" / "best.ckpt")
    rng = np.random.RandomState(0)
    factors = np.stack([rng.randint(size, size=200) for size in FACTOR_SIZES], axis=1)
    flat = np.ravel_multi_index(factors.T, FACTOR_SIZES)
    with torch.no_grad():
        codes = model.encode(render(torch.from_numpy(flat), 32)).mean.numpy()
    for label in labels:
        column = codes[:, label["dim"]]
        binned = np.digitize(column, np.histogram(column, 20)[1][:-1])
        shares = []
        for k in range(len(FACTOR_SIZES)):
            p = np.bincount(factors[:, k]) / len(factors)
            entropy = -(p[p > 0] * np.log(p[p > 0])).sum()
            shares.append(mutual_info_score(factors[:, k], binned) / entropy)
        assert label["factor"] == FACTOR_NAMES[int(np.argmax(shares))]
        assert label["share"] == pytest.approx(max(shares), rel=1e-6)
    # The text is drawn: dark pixels left of the grid, in the PNG and in a GIF frame.
    png = np.array(Image.open(out / "traversals.png").convert("L"))
    left = png.shape[1] - cells(7)
    assert (png[:, :left] < 128).any()
    gif = np.array(Image.open(out / "traversals.gif").convert("L"))
    assert (gif[:, :left] < 128).any()


def test_eval_reports_the_blank_share_of_prior_samples_and_why_there_is_no_fid(
    run_dir: Path, report: dict
) -> None:
    """300 prior draws in batches of 128, each batch from its own seed (0, 128, 256),
    decoded and thresholded here by hand; no Inception weights here, so FID is refused
    with the line that says where they go."""
    from vaelab.runs.trained import load_vae

    quality = report["sample_quality"]
    assert quality["sampler"] == "prior" and quality["n_samples"] == 300
    model, _ = load_vae(run_dir / "checkpoints" / "best.ckpt")
    images = []
    with torch.no_grad():
        for start, n in ((0, 128), (128, 128), (256, 44)):
            z = torch.randn(n, 4, generator=torch.Generator().manual_seed(start))
            images.append(model.decode(z).mean)
    lit = (torch.cat(images) > 0.5).flatten(1).sum(1)
    assert quality["blank_fraction"] == pytest.approx(float((lit < 20).float().mean()), abs=1e-9)
    assert report["metrics"]["blank_fraction"] == quality["blank_fraction"]
    assert "weights-inception-2015-12-05-6726825d.pth" in quality["fid_unavailable"]
    assert "6726825d" in quality["fid_unavailable"] and "\n" not in quality["fid_unavailable"]
    assert "fid" not in report["metrics"]


def test_generate_with_a_fitted_sampler_saves_it_and_reuses_it(
    run_dir: Path, tmp_path: Path
) -> None:
    """sampler=gmm: fitted once to the training means, saved beside the checkpoint with
    the weights' digest, reused by the next run (the same picture), and named in
    generated.json."""
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    args = [
        f"ckpt_path={ckpt}",
        *GENERATE,
        "sampler=gmm",
        "sampler.n_fit=300",
        "sampler.components=3",
    ]
    first = tmp_path / "first"
    ok(call_app("generate", *args, f"output={first}", f"hydra.run.dir={tmp_path / 'g1'}"))
    saved = run_dir / "checkpoints" / "samplers" / "best-gmm.pt"
    assert saved.is_file()
    info = json.loads((first / "generated.json").read_text())
    assert info["samples"] == {"file": "samples_gmm.png", "sampler": "gmm", "sampler_fit": "fitted"}
    second = tmp_path / "second"
    ok(call_app("generate", *args, f"output={second}", f"hydra.run.dir={tmp_path / 'g2'}"))
    info = json.loads((second / "generated.json").read_text())
    assert info["samples"]["sampler_fit"] == "reused"
    assert (first / "samples_gmm.png").read_bytes() == (second / "samples_gmm.png").read_bytes()


def test_training_with_a_fitted_sampler_writes_its_samples_beside_the_priors(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    ok(
        call_train(
            *SMALL_MODEL,
            "logger=csv",
            "sampler=maf",
            "sampler.steps=30",
            "sampler.n_fit=200",
            f"hydra.run.dir={run}",
        )
    )
    assert (run / "images" / "samples.png").is_file()  # the prior's, as before
    picture = Image.open(run / "images" / "samples_maf.png")
    assert picture.size == Image.open(run / "images" / "samples.png").size
    assert (run / "checkpoints" / "samplers" / "best-maf.pt").is_file()
