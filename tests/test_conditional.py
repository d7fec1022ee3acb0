"""Conditional VAEs (`conditional=`): the label API of the data modules checked against
the labels' own files and the factors; the model's ELBO and IWAE bound written out by
hand from its parts with torch.distributions; the refusals, each one line; and a
conditional model through the apps: training, kill -9 and resume, generate's class
grid, eval, and a sweep that compare reads."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_train
from in_process import call_app, call_sweep, call_train, killed_and_resumed
from PIL import Image
from test_combinations import example_batch
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from vaelab.data.batching import BatchLoader, TensorSource
from vaelab.data.labels import LabelSpace, one_hot
from vaelab.errors import CheckpointError, ConfigError, find_user_error

SPACE = LabelSpace(("shape", "scale", "pos_x"), (3, 6, 32))


# ------------------------------------------------------------------ the label API
def test_a_label_space_resolves_what_conditional_names() -> None:
    assert SPACE.select(True) == {"shape": 3, "scale": 6, "pos_x": 32}
    assert SPACE.select(["pos_x", "shape"]) == {"pos_x": 32, "shape": 3}  # order given
    assert SPACE.select("scale") == {"scale": 6}  # conditional=scale: one label
    assert SPACE.columns(["pos_x", "shape"]) == [2, 0]
    for bad, hint in (
        (["colour"], "conditional=[shape]"),
        (["shape", "shape"], "twice"),
        ([], "conditional=true"),
    ):
        with pytest.raises(ConfigError) as refused:
            SPACE.select(bad)
        assert hint in str(refused.value) and "\n" not in str(refused.value)


def test_one_hot_concatenates_each_labels_indicator() -> None:
    labels = torch.tensor([[0, 5, 31], [2, 0, 7]])
    got = one_hot(labels, SPACE.sizes)
    want = np.zeros((2, 3 + 6 + 32), dtype=np.float32)
    for row, (a, b, c) in enumerate(labels.tolist()):
        want[row, [a, 3 + b, 9 + c]] = 1.0
    np.testing.assert_array_equal(got.numpy(), want)
    with pytest.raises(ValueError, match="lie in"):
        one_hot(torch.tensor([[3, 0, 0]]), SPACE.sizes)


@pytest.mark.parametrize("shuffle", [True, False])
def test_the_loader_serves_each_examples_own_labels(shuffle: bool) -> None:
    """Example i holds the value i everywhere and has label i mod 7: every batch's labels
    must be those of its own examples, shuffled or not."""
    n = 50
    data = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    labels = (torch.arange(n) % 7).view(n, 1)
    loader = BatchLoader(
        TensorSource(data, scale=1.0),
        8,
        shuffle=shuffle,
        drop_last=shuffle,
        with_index=not shuffle,
        labels=labels,
    )
    seen = 0
    for batch in loader:
        x, *_, y = batch
        example = x[:, 0, 0, 0].long()
        assert torch.equal(y[:, 0], example % 7)
        if not shuffle:
            assert torch.equal(batch[1], example)  # (x, index, labels) in evaluation
        seen += len(x)
    assert seen == (48 if shuffle else 50)


def test_digits_labels_are_the_classes_of_their_images() -> None:
    """Each test image's label is the class scikit-learn gives the identical image."""
    from sklearn.datasets import load_digits

    from vaelab.data.digits import DigitsDataModule

    data = DigitsDataModule()
    space = data.label_space()
    assert space is not None and space.as_sizes() == {"class": 10}
    assert space.level_name("class", 3) == "3"
    digits = load_digits()
    classes_of: dict[bytes, set[int]] = {}
    for image, target in zip(digits.images.astype(np.uint8), digits.target, strict=True):
        classes_of.setdefault(image.tobytes(), set()).add(int(target))
    x, labels = data.labelled_examples(10_000, ["class"], split="test")
    assert labels is not None and labels.shape == (len(x), 1) and labels.dtype == torch.long
    images = (x[:, 0] * 16).round().to(torch.uint8).numpy()
    for image, label in zip(images, labels[:, 0].tolist(), strict=True):
        assert label in classes_of[image.tobytes()]


def test_factor_data_has_its_factors_as_labels() -> None:
    from vaelab.data.shapes import ShapesDataModule

    data = ShapesDataModule(resolution=32, n_val=40, n_test=40)
    space = data.label_space()
    factors = data.factor_space()
    assert space is not None and (space.names, space.sizes) == (factors.names, factors.sizes)
    picked = data.chosen_labels("val", ["scale", "shape"])
    all_factors = data.example_factors("val")
    assert torch.equal(picked, all_factors[:, [factors.names.index("scale"), 0]])
    # labels for more images than the split holds come round again
    assert torch.equal(data.example_labels(100, ["shape"], "val")[40:80], picked[:, 1:])


def test_fashion_mnist_labels_are_its_label_files(tmp_path: Path) -> None:
    """The test split's labels against the IDX label file read here with numpy."""
    from vaelab.data.mnist import FashionMNISTDataModule

    system = Path("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
    if not system.exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    with gzip.open(system) as f:
        want = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    data = FashionMNISTDataModule(data_dir=tmp_path)
    space = data.label_space()
    assert space is not None and space.level_name("class", 9) == "Ankle boot"
    np.testing.assert_array_equal(data.split_labels("test")[:, 0].numpy(), want)


# ------------------------------------------------------------------- the model
def _model(*overrides: str, labels: dict[str, int] | None = None):
    """A model of `overrides` for 8x8 continuous data with these labels (the digits'
    class by default)."""
    from vaelab.config.build import build_model

    sizes = {"class": 10} if labels is None else labels

    class Data:
        dims, levels = (1, 8, 8), None
        served: tuple[str, ...] = ()

        def label_space(self) -> LabelSpace | None:
            return LabelSpace(tuple(sizes), tuple(sizes.values())) if sizes else None

        def serve_labels(self, chosen: tuple[str, ...]) -> None:
            Data.served = tuple(chosen)

    cfg = compose_train("data=digits", "~model/scheduler", "likelihood=bernoulli", *overrides)
    torch.manual_seed(0)
    return build_model(cfg, Data()), Data


def test_the_elbo_of_a_conditional_model_is_written_out_from_its_parts(hydra_conf) -> None:
    """q(z|x, y) reads the encoder's features and y's one-hot vector, p(x|z, y) reads z
    and the same vector: the terms against torch.distributions."""
    model, data = _model("conditional=true")
    assert data.served == ("class",)  # the data module was told to serve the labels
    assert model.label_sizes == {"class": 10}
    assert next(model.decoder.parameters()).shape[1] == 10 + 10  # z and y's one-hot
    x = example_batch((1, 8, 8), 2, n=5)
    y = torch.tensor([[0], [3], [9], [3], [1]])
    noise = torch.randn(5, model.latent_dim)
    terms = model.elbo(x, noise=noise, labels=y)
    y_hot = torch.nn.functional.one_hot(y[:, 0], 10).float()
    head = model.posterior_head(torch.cat([model.encoder(x), y_hot], dim=1))
    mean, log_var = head[:, :10], head[:, 10:20]
    q = Independent(Normal(mean, torch.exp(0.5 * log_var)), 1)
    p = Independent(Normal(torch.zeros(5, 10), torch.ones(5, 10)), 1)
    z = mean + torch.exp(0.5 * log_var) * noise
    logits = model.decoder(torch.cat([z, y_hot], dim=1))
    recon = -Independent(Bernoulli(logits=logits), 3).log_prob(x)
    torch.testing.assert_close(terms["recon"], recon)
    torch.testing.assert_close(terms["kl"], kl_divergence(q, p))
    # the labels matter: another class, another likelihood
    other = model.elbo(x, noise=noise, labels=(y + 1) % 10)
    assert not torch.allclose(other["recon"], terms["recon"])


def test_the_iwae_bound_decodes_each_draw_with_its_examples_labels(hydra_conf) -> None:
    """The objective's −L_k against log weights by hand, one example at a time: the k·B
    draws are laid out sample-major, and each must be decoded with its own example's
    labels."""
    from vaelab.objectives.iwae import iwae_bound

    model, _ = _model("conditional=true", "objective=iwae")
    x = example_batch((1, 8, 8), 2, n=3)
    y = torch.tensor([[7], [2], [5]])
    torch.manual_seed(0)
    batch = model.latent_batch(x, labels=y)
    torch.manual_seed(1)
    bound = iwae_bound(batch, k=4)
    torch.manual_seed(1)
    eps = torch.randn(3, 3, model.latent_dim)
    z = torch.cat([batch.z[None], batch.mean + torch.exp(0.5 * batch.log_var) * eps])
    q = Independent(Normal(batch.mean, torch.exp(0.5 * batch.log_var)), 1)
    p = Independent(Normal(torch.zeros(10), torch.ones(10)), 1)
    for b in range(3):  # each example alone, with its own label
        log_px = torch.stack(
            [model.decode(z[s, b : b + 1], y[b : b + 1]).log_prob(x[b : b + 1]) for s in range(4)]
        )[:, 0]
        q_b = Independent(Normal(q.mean[b], q.stddev[b]), 1)
        log_w = log_px + p.log_prob(z[:, b]) - q_b.log_prob(z[:, b])
        torch.testing.assert_close(bound[b], math.log(4) - torch.logsumexp(log_w, 0))


def test_a_conditional_model_needs_labels_and_names_them(hydra_conf) -> None:
    model, _ = _model("conditional=true")
    with pytest.raises(ValueError, match=r"conditional on \['class'\]: pass labels="):
        model.elbo(example_batch((1, 8, 8), 2))
    with pytest.raises(ValueError, match="carry no labels"):
        model.split_batch(example_batch((1, 8, 8), 2))


@pytest.mark.parametrize(
    ("overrides", "labels", "hint"),
    [
        (["conditional=true"], {}, "conditional=false"),
        (["conditional=[colour]"], None, "conditional=[class]"),
        (["conditional=true", "prior=vamp"], None, "prior=normal"),
    ],
)
def test_what_a_conditional_model_cannot_be_is_refused_in_one_line(
    overrides: list[str], labels: dict[str, int] | None, hint: str, hydra_conf
) -> None:
    with pytest.raises(Exception) as caught:
        _model(*overrides, labels=labels)
    error = find_user_error(caught.value)
    assert isinstance(error, ConfigError), caught.value
    assert hint in str(error) and "\n" not in str(error)


def test_an_unconditional_model_is_the_model_of_before_labels_bit_for_bit(hydra_conf) -> None:
    from vaelab.models import VAE
    from vaelab.runs.checkpoints import check_same_model

    new, _ = _model()
    assert new.hparams["conditional"] is False and new.hparams["label_sizes"] is None
    hp = {k: v for k, v in new.hparams.items() if k not in ("conditional", "label_sizes")}
    torch.manual_seed(0)
    old = VAE(**hp)  # as a checkpoint written before conditional= loads
    old.load_state_dict(new.state_dict())
    x, noise = example_batch((1, 8, 8), 2, n=6), torch.randn(6, 10)
    assert torch.equal(new.elbo(x, noise=noise)["nelbo"], old.elbo(x, noise=noise)["nelbo"])
    check_same_model({"hyper_parameters": hp}, new.hparams)  # continues an older one
    conditional, _ = _model("conditional=true")
    with pytest.raises(CheckpointError) as refused:
        check_same_model({"hyper_parameters": dict(conditional.hparams)}, new.hparams)
    assert "conditional=" in str(refused.value) and "\n" not in str(refused.value)


def test_a_checkpoint_reloads_the_labels_it_was_conditioned_on(hydra_conf) -> None:
    from vaelab.models import VAE

    model, _ = _model("conditional=[scale]", labels={"shape": 3, "scale": 6})
    assert model.hparams["conditional"] == ["scale"]
    assert model.hparams["label_sizes"] == {"scale": 6}
    again = VAE(**model.hparams)
    again.load_state_dict(model.state_dict())
    x, y = example_batch((1, 8, 8), 2, n=4), torch.tensor([[0], [5], [2], [2]])
    noise = torch.randn(4, 10, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(
        again.elbo(x, noise=noise, labels=y)["nelbo"], model.elbo(x, noise=noise, labels=y)["nelbo"]
    )


def test_disentanglement_reads_the_factors_a_model_is_conditioned_on(hydra_conf) -> None:
    """On factor data, the protocol's encoder hands the model the factors it reads."""
    from vaelab.config.build import build_model
    from vaelab.data.shapes import ShapesDataModule
    from vaelab.metrics.protocol import factor_encoder

    data = ShapesDataModule(resolution=32)
    space = data.factor_space()
    cfg = compose_train(
        "data=shapes", "data.resolution=32", "conditional=[scale]", "~model/scheduler"
    )
    torch.manual_seed(0)
    model = build_model(cfg, data).eval()
    factors = np.array([[0, 1, 2, 3, 4], [1, 5, 0, 31, 2]])
    codes = factor_encoder(model, space, 8, "cpu")(factors)
    scale = torch.from_numpy(factors[:, [space.names.index("scale")]])
    with torch.no_grad():
        want = model.code(space.observe(torch.from_numpy(factors)), scale)
    np.testing.assert_allclose(codes, want.double().numpy(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------- through the apps
CONDITIONAL_RUN = [
    "data=digits",
    "conditional=true",
    "logger=csv",
    "trainer.max_epochs=3",
    "trainer.enable_progress_bar=false",
    "callbacks.image_grids.n_images=16",
    "trainer.deterministic=true",
    "seed=3",
]


def test_a_conditional_run_resumes_after_kill_9_bit_identically(tmp_path: Path) -> None:
    want, got = killed_and_resumed(tmp_path, *CONDITIONAL_RUN)
    assert got["global_step"] == want["global_step"]
    assert want["hyper_parameters"]["label_sizes"] == {"class": 10}
    for key, value in want["state_dict"].items():
        assert torch.equal(got["state_dict"][key], value), key
    runs = (tmp_path / "reference", tmp_path / "killed")
    summaries = [json.loads((r / "metrics.json").read_text()) for r in runs]
    assert summaries[1]["metrics"]["test/nelbo"] == summaries[0]["metrics"]["test/nelbo"]
    assert summaries[0]["latent"]["conditional"] == {"class": 10}


def test_generate_draws_a_class_grid_and_eval_scores_with_labels(tmp_path: Path) -> None:
    run = tmp_path / "run"
    trained = call_train(*CONDITIONAL_RUN, "trainer.max_epochs=1", f"hydra.run.dir={run}")
    assert trained.returncode == 0, trained.stderr[-2000:]
    ckpt = run / "checkpoints" / "last.ckpt"
    made = call_app("generate", f"ckpt_path={ckpt}", "nrow=4", "upscale=1")
    assert made.returncode == 0, made.stderr[-2000:]
    generated = run / "checkpoints" / "generated"
    info = json.loads((generated / "generated.json").read_text())
    assert info["class_grid"] == {
        "label": "class",
        "rows": [str(d) for d in range(10)],
        "per_row": 4,
    }
    grid = Image.open(generated / "class_grid.png")
    assert grid.height == 2 + 10 * (8 + 2)  # ten rows of 8-pixel digits, padding 2
    evaluated = call_app("eval", f"ckpt_path={ckpt}", "eval.sample_quality.fid=false")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    report = json.loads((run / "checkpoints" / "eval.json").read_text())
    metrics = report["metrics"]
    assert metrics["nelbo"] == pytest.approx(metrics["recon"] + metrics["kl"], rel=1e-5)
    assert metrics["nll_iwae"] <= metrics["nelbo"] + 1e-4
    # the test split scored with the labels the model read: the same −ELBO as training's test
    summary = json.loads((run / "metrics.json").read_text())
    assert metrics["nelbo"] == pytest.approx(summary["metrics"]["test/nelbo"], rel=1e-6)
    # with the wrong labels the same images score worse: the model uses them
    from vaelab.data.digits import DigitsDataModule
    from vaelab.runs.trained import load_vae

    model, _ = load_vae(ckpt)
    data = DigitsDataModule()
    x, y = data.labelled_examples(400, ["class"], split="test")
    assert y is not None
    noise = torch.randn(len(x), model.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        right = model.elbo(x, noise=noise, labels=y)["nelbo"].mean()
        wrong = model.elbo(x, noise=noise, labels=(y + 5) % 10)["nelbo"].mean()
    assert wrong > right + 1.0


def test_data_without_labels_refuses_a_conditional_run_in_one_line(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(images / f"{i}.png")
    run = tmp_path / "run"
    refused = call_train(
        "data=folder",
        f"data.path={images}",
        "conditional=true",
        f"hydra.run.dir={run}",
    )
    assert refused.returncode == 2
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "conditional=false" in lines[0], refused.stderr
    assert not run.exists()


def test_a_sweep_with_and_without_labels_is_compared(tmp_path: Path) -> None:
    from vaelab.compare import compare

    sweep = call_sweep(
        tmp_path,
        "conditional=false,true",
        "data=digits",
        "debug=smoke",
        "logger=csv",
        env={"WANDB_MODE": "disabled"},
    )
    compared = compare([sweep], plots=False, save_csv=False)
    assert compared.swept == ["conditional"]
    assert sorted(str(run.params["conditional"]) for run in compared.runs) == ["False", "True"]
    for run in compared.runs:
        assert run.metrics["test/nelbo"] is not None
