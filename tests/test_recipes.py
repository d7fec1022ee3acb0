"""The recipes of conf/experiment/: each composes to the settings its paper states and
trains two steps on a small file in its dataset's real format; `locatello_study` is a
multirun whose jobs are the study's grid, listed without running them all."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
from data_fixtures import SMALL_DATA_OVERRIDES, small_data_root
from helpers import compose_train

from vaelab.config.resolvers import register_resolvers

CONF = Path(__file__).resolve().parents[1] / "conf"
RECIPES = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _conf(hydra_conf) -> None:
    register_resolvers()  # as the entry points do (vaelab.config.preflight) before Hydra composes


#: What each recipe must set: the papers' numbers, written out here independently of
#: conf/ (a recipe edited away from its paper fails).
PAPER_SETTINGS = {
    "betavae_dsprites": {"objective._target_": "BetaVAE", "beta": 4.0},
    "capacity_dsprites": {"objective.gamma": 1000.0, "objective.c_max": 25.0},
    "betatcvae_dsprites": {"objective.beta": 6.0, "objective.alpha": 1.0},
    "factorvae_dsprites": {"objective.gamma": 35.0, "objective.betas": [0.5, 0.9]},
    "dipvae_dsprites": {"objective.lambda_od": 10.0, "objective.variant": "ii"},
    "locatello_study": {"objective._target_": "BetaVAE", "beta": 1},
    "vae_mnist_burda": {"latent_dim": 50, "data.batch_size": 20, "data.binarize": "dynamic"},
    "iwae_mnist_burda": {"objective.k": 50, "latent_dim": 50, "data.batch_size": 20},
    "cifar10_resnet": {"likelihood._target_": "DiscretizedLogisticLikelihood"},
    "celeba64_betavae": {"data.image_size": 64, "latent_dim": 32},
    "vamp_mnist_tomczak": {
        "prior._target_": "VampPrior",
        "prior.components": 500,
        "latent_dim": 40,
        "data.batch_size": 100,
        "model.optimizer.lr": 5e-4,
    },
    "iaf_mnist_kingma": {
        "posterior._target_": "IAFPosterior",
        "posterior.steps": 2,
        "posterior.hidden": [320, 320],
        "latent_dim": 32,
        "recipe.value": 79.77,
    },
    "hvae_mnist_burda": {
        "latent._target_": "BottomUpHierarchy",
        "latent_dim": 100,
        "latent.groups": [50],
        "latent.hidden": [100, 100],
        "model.encoder.hidden": [200, 200],
        "recipe.value": 85.33,
    },
    "iwae2_mnist_burda": {
        "latent._target_": "BottomUpHierarchy",
        "objective.k": 50,
        "latent.groups": [50],
        "recipe.value": 82.90,
    },
    "ladder_mnist_sonderby": {
        "latent._target_": "LadderHierarchy",
        "latent_dim": 64,
        "latent.groups": [32],
        "model.encoder.hidden": [512],
        "latent.hidden": [256],
        "data.binarize": "dynamic",
    },
    "vqvae_cifar10": {
        "latent._target_": "VectorQuantiser",
        "objective._target_": "VQ",
        "objective.beta": 0.25,
        "latent_dim": 640,
        "latent.embedding_dim": 10,
        "model.optimizer.lr": 2e-4,
        "trainer.max_steps": 250000,
        "recipe.value": 4.67,
    },
    "two_stage_vae_dai": {
        "sampler._target_": "TwoStageSampler",
        "latent_dim": 64,
        "likelihood.learn_sigma": "global",
        "recipe.value": 29.3,
    },
}
DLIB = {"latent_dim": 10, "data.batch_size": 64, "model.optimizer.lr": 1e-4}
DLIB_STEPS = 300_000


def value_at(cfg, dotted: str):
    node = cfg
    for key in dotted.split("."):
        node = node[key]
    if hasattr(node, "_content"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(node, resolve=True)
    return node


def test_every_recipe_is_checked() -> None:
    assert set(RECIPES) == set(PAPER_SETTINGS)


@pytest.mark.parametrize("recipe", RECIPES)
def test_a_recipe_sets_what_its_paper_did_and_says_so(recipe: str, tmp_path: Path) -> None:
    cfg = compose_train(f"experiment={recipe}", run_dir=tmp_path)
    for key, want in PAPER_SETTINGS[recipe].items():
        got = value_at(cfg, key)
        if key.endswith("_target_"):
            assert got.rsplit(".", 1)[1] == want, key
        else:
            assert got == want, key
    if cfg.data._target_.endswith("DSpritesDataModule"):
        for key, want in DLIB.items():
            assert value_at(cfg, key) == want, key
        assert cfg.trainer.max_steps == DLIB_STEPS
        assert cfg.eval.disentanglement.protocol == "dlib"
    header = (CONF / "experiment" / f"{recipe}.yaml").read_text().split("\n\n")[0]
    assert f"experiment={recipe}" in header, "the header gives the command"
    # What the reproductions table reports: the paper, what it published, the metric.
    card = cfg.recipe
    assert re.search(r"\b(19|20)\d\d\b", card.paper), "the paper with its year"
    assert card.published
    # a test-stage number, or one eval.json reports, measured with the recipe's eval overrides
    assert card.metric.startswith("test/") or (card.metric == "fid" and card.eval)
    assert card.value is None or isinstance(card.value, float)


DATASET_OF = {
    "DSpritesDataModule": "dsprites",
    "MNISTDataModule": "mnist",
    "CIFAR10DataModule": "cifar10",
    "CelebADataModule": "celeba",
    "FashionMNISTDataModule": "fashion_mnist",
}


def train_two_steps(overrides: list[str], tmp_path: Path, monkeypatch) -> dict:
    """Compose the recipe with `debug=smoke`, train two steps on fixture files, test."""
    from vaelab.train import fit_test_and_report

    probe = compose_train(*overrides)
    dataset = DATASET_OF[probe.data._target_.rsplit(".", 1)[1]]
    root = small_data_root(dataset, tmp_path / "data", monkeypatch)
    small = SMALL_DATA_OVERRIDES[dataset]
    run_dir = tmp_path / "run"
    cfg = compose_train(
        *overrides,
        "debug=smoke",
        "trainer.max_steps=2",
        "logger=csv",
        f"paths.data_dir={root}",
        *small,
        run_dir=run_dir,
    )
    fit_test_and_report(cfg)
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.parametrize("recipe", RECIPES)
def test_a_recipe_trains_two_steps(recipe: str, tmp_path: Path, monkeypatch) -> None:
    summary = train_two_steps([f"experiment={recipe}"], tmp_path, monkeypatch)

    assert summary["status"] == "finished"
    assert summary["global_step"] == 2
    nelbo = summary["metrics"]["test/nelbo"]
    assert nelbo == nelbo and 0 < nelbo < float("inf")


#: Locatello et al. 2019, Table 8: each method's six values of its hyperparameter.
LOCATELLO_GRID = {
    "beta_vae": ("beta", [1, 2, 4, 6, 8, 16]),
    "annealed_vae": ("objective.c_max", [5, 10, 25, 50, 75, 100]),
    "factor_vae": ("objective.gamma", [10, 20, 30, 40, 50, 100]),
    "dip_vae_i": ("objective.lambda_od", [1, 2, 5, 10, 20, 50]),
    "dip_vae_ii": ("objective.lambda_od", [1, 2, 5, 10, 20, 50]),
    "beta_tcvae": ("objective.beta", [1, 2, 4, 6, 8, 10]),
}
LOCATELLO_TARGETS = {
    "beta_vae": "BetaVAE",
    "annealed_vae": "Capacity",
    "factor_vae": "FactorVAE",
    "dip_vae_i": "DIPVAE",
    "dip_vae_ii": "DIPVAE",
    "beta_tcvae": "BetaTCVAE",
}


def study_jobs() -> list[list[str]]:
    """The jobs `python src/train.py -m experiment=locatello_study` runs: the cartesian
    product of its sweeper params, expanded by Hydra's override parser."""
    from hydra import compose
    from hydra.core.override_parser.overrides_parser import OverridesParser

    hydra_cfg = compose("train", ["experiment=locatello_study"], return_hydra_config=True)
    lines = [f"{k}={v}" for k, v in hydra_cfg.hydra.sweeper.params.items()]
    parsed = OverridesParser.create().parse_overrides(lines)
    axes = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] for o in parsed]
    return [list(job) for job in itertools.product(*axes)]


def test_the_locatello_study_lists_the_papers_grid_of_jobs(tmp_path: Path) -> None:
    jobs = study_jobs()
    assert len(jobs) == 6 * 6 * 50
    assert len({tuple(j) for j in jobs}) == len(jobs)
    # Every (method, value) pair of the paper's table, composed as its job composes.
    for method, (key, values) in LOCATELLO_GRID.items():
        for index, want in enumerate(values):
            cfg = compose_train(
                "experiment=locatello_study", f"method={method}", f"hp_index={index}"
            )
            assert cfg.objective._target_.rsplit(".", 1)[1] == LOCATELLO_TARGETS[method]
            assert value_at(cfg, key) == want, (method, index)
            if method == "dip_vae_i":
                assert cfg.objective.lambda_d == 10 * want
            if method == "dip_vae_ii":
                assert cfg.objective.lambda_d == want


def test_an_hp_index_outside_the_grid_is_one_line(tmp_path: Path) -> None:
    from helpers import run_train

    result = run_train("experiment=locatello_study", "hp_index=6", "debug=smoke", timeout=120)
    assert result.returncode == 2
    assert "hp_index=6 is not a position in this method's 6 values" in result.stderr
    assert "hp_index=0..5" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("method", ["factor_vae", "dip_vae_i"])
def test_a_study_job_trains_two_steps(method: str, tmp_path: Path, monkeypatch) -> None:
    overrides = ["experiment=locatello_study", f"method={method}", "hp_index=5", "seed=49"]
    summary = train_two_steps(overrides, tmp_path, monkeypatch)
    assert summary["status"] == "finished" and summary["global_step"] == 2
    assert summary["params"]["seed"] == 49
