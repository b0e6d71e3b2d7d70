"""DART as the released run.py trains it: the mixture, co-selection, the robust losses, the views, the
single-network variant, and no module of the train/evaluate path naming the baseline."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reid_helpers import TINY, make_workspace, one_thread

from papg_bench.config import make_config
from papg_bench.data.store import open_store
from papg_bench.errors import UserError
from papg_bench.reid_baselines import dart_losses, dart_twin
from papg_bench.reid_baselines.config import TrainConfig
from papg_bench.reid_baselines.dart_losses import RobustCriterion, choose_triplets, robust_triplet
from papg_bench.reid_baselines.dart_twin import (
    EXCHANGED,
    MIXTURE,
    PLAIN,
    THERMAL,
    TwinNetworks,
    all_image_order,
    apply_views,
    clean_probabilities,
    draw_views,
    lower_component_posterior,
    min_max,
    noisy_shares,
)
from papg_bench.reid_baselines.registry import get_baseline, with_epochs
from papg_bench.reid_baselines.run import load_run_model, train_run
from papg_bench.reid_baselines.sampler import TrainingPool
from papg_bench.reid_baselines.trainer import Trainer
from papg_bench.workspace import Workspace

single_thread = pytest.fixture(autouse=True)(one_thread)
PACKAGE = Path(__file__).resolve().parents[1] / "papg_bench"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_workspace(tmp_path_factory.mktemp("dart"))


def tiny_cfg(**changes: object) -> TrainConfig:
    return make_config(TrainConfig, "tiny", overrides={**TINY, **changes}).validate()


def twin_trainer(ws: Workspace, tmp_path: Path, seed: int = 0, **changes: object) -> Trainer:
    cfg = tiny_cfg(**changes)
    store, generated = open_store(ws.dataset_dir("sysu")), open_store(ws.generated_dir("sysu", "papg"))
    return Trainer(store, generated, "dart", "papg", seed, cfg, tmp_path / "run", {"baseline": "dart"}, "x",
                   torch.device("cpu"))


# --- the released settings -----------------------------------------------------------------------------------


def test_paper_dart_is_the_released_recipe() -> None:
    paper = make_config(TrainConfig, "paper")
    assert (paper.dart_variant, paper.dart_warmup, paper.dart_threshold, paper.dart_margin) == ("twin", 1, 0.5, 0.3)
    assert with_epochs(get_baseline("dart"), paper).epochs == 100  # run.py: epochs 0-99
    assert with_epochs(get_baseline("agw"), paper).epochs == 81
    assert with_epochs(get_baseline("dart"), tiny_cfg()).epochs == 2  # given: kept
    assert get_baseline("dart").make_procedure(paper).networks == 2
    assert get_baseline("dart").make_procedure(make_config(TrainConfig, "paper", overrides={
        "dart_variant": "single"})) is None
    with pytest.raises(UserError, match="--dart-variant 'triple'"):
        tiny_cfg(dart_variant="triple")


def test_the_mixture_is_scikit_learns_with_the_released_settings() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0.1, 0.05, 300), rng.normal(0.8, 0.05, 100)])
    prob, mixture = lower_component_posterior(values, random_state=7)
    params = mixture.get_params()
    assert {k: params[k] for k in ("n_components", "max_iter", "tol", "reg_covar")} == {
        "n_components": 2, "max_iter": 100, "tol": 1e-2, "reg_covar": 5e-4} == MIXTURE
    assert (params["covariance_type"], params["init_params"], params["n_init"], params["random_state"]) == (
        "full", "kmeans", 1, 7)
    lower = int(np.argmin(mixture.means_))
    np.testing.assert_array_equal(prob, mixture.predict_proba(values.reshape(-1, 1))[:, lower])
    assert prob[:300].min() > 0.9 and prob[300:].max() < 0.1
    again, _ = lower_component_posterior(values, random_state=7)
    np.testing.assert_array_equal(prob, again)  # seeded: reproducible
    ones, none = lower_component_posterior(np.full(5, 0.3), random_state=0)
    assert none is None and np.all(ones == 1.0)


def _pool(visible: int, infrared: int, generated: int = 0) -> TrainingPool:
    n = visible + infrared
    modalities = np.array([0] * visible + [1] * infrared)
    flags = np.zeros(n, dtype=bool)
    flags[:generated] = True
    return TrainingPool(generated=flags, store_rows=np.arange(n), labels=np.arange(n) % 3, modalities=modalities,
                        num_classes=3)


def test_visible_views_are_normalised_apart_and_fitted_together_infrared_alone() -> None:
    pool = _pool(40, 30)
    rng = np.random.default_rng(1)
    losses = np.full((70, 2), np.nan)
    losses[:40, 0] = rng.gamma(2.0, 1.0, 40)
    losses[:40, 1] = 10 * rng.gamma(2.0, 1.0, 40)  # another scale: min-max per view makes it comparable
    losses[40:, 0] = rng.gamma(2.0, 1.0, 30)
    clean, mixtures = clean_probabilities(losses, pool, seed=3, epoch=4, network=1)
    both = np.concatenate([min_max(losses[:40, 0]), min_max(losses[:40, 1])])
    expected_v, _ = lower_component_posterior(both, dart_twin._seed(3, 4, 1, 0, dart_twin._MIXTURE))
    expected_i, _ = lower_component_posterior(min_max(losses[40:, 0]), dart_twin._seed(3, 4, 1, 1, dart_twin._MIXTURE))
    np.testing.assert_array_equal(clean[:40, 0], expected_v[:40])
    np.testing.assert_array_equal(clean[:40, 1], expected_v[40:])
    np.testing.assert_array_equal(clean[40:, 0], expected_i)
    np.testing.assert_array_equal(clean[40:, 1], expected_i)
    assert mixtures["visible"] is not None and mixtures["infrared"] is not None
    assert mixtures["visible"].get_params()["random_state"] != mixtures["infrared"].get_params()["random_state"]
    shares = noisy_shares(clean, pool, 0.5)
    assert shares == {"visible": float((clean[:40, 0] < 0.5).mean()),
                      "visible_exchanged": float((clean[:40, 1] < 0.5).mean()),
                      "infrared": float((clean[40:, 0] < 0.5).mean())}


def test_the_all_image_order_pads_as_the_released_all_sampler() -> None:
    sysu = _pool(22258, 11909)  # the released AllSampler: + 14 visible and + N1 - N2 + 14 infrared rows
    visible, infrared = all_image_order(sysu, 32, np.random.default_rng(0))
    assert len(visible) == len(infrared) == 22258 + 14 == 696 * 32
    counts = np.bincount(visible, minlength=22258)
    assert counts[:14].tolist() == [2] * 14 and set(counts[14:22258].tolist()) == {1}
    counts = np.bincount(infrared - 22258, minlength=11909)
    assert (counts[:22258 - 11909 + 14] == 2).all() and (counts[22258 - 11909 + 14:] == 1).all()
    regdb = _pool(2060, 2060)
    visible, infrared = all_image_order(regdb, 32, np.random.default_rng(0))
    assert len(visible) == 2080 and np.bincount(visible)[:20].tolist() == [2] * 20  # + arange(20)
    assert not np.array_equal(visible[:100], np.sort(visible[:100]))  # shuffled


# --- co-selection ----------------------------------------------------------------------------------------------


def _fake_losses(pool: TrainingPool, noisy: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(int(noisy.sum()))
    table = rng.normal(1.0, 0.05, (len(pool), 2))
    table[noisy] = rng.normal(5.0, 0.05, (int(noisy.sum()), 2))
    return table


def test_each_network_trains_on_the_other_networks_probabilities(ws: Workspace, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = twin_trainer(ws, tmp_path, seed=5, dart_warmup=1)
    procedure, pool = trainer.procedure, trainer.pool
    n = len(pool)
    first, last = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    for m in (0, 1):  # network 1 doubts the first third of each modality, network 2 the last third
        rows = np.flatnonzero(pool.modalities == m)
        first[rows[:len(rows) // 3]] = True
        last[rows[-(len(rows) // 3):]] = True
    tables = [_fake_losses(pool, first), _fake_losses(pool, last)]
    monkeypatch.setattr(procedure, "_losses", lambda trainer, k, visible, infrared: tables[k])

    forwarded: list[int] = []
    for k, network in enumerate(trainer.networks):
        network.register_forward_hook(lambda module, inputs, output, k=k: forwarded.append(k))
    calls: list[tuple[int, int, tuple[np.ndarray, np.ndarray], np.ndarray]] = []
    original = RobustCriterion.__call__

    def recording(self, outputs, labels, rows, views=None, rng=None):  # noqa: ANN001, ANN202
        where = (rows.numpy(), views.numpy())
        calls.append((procedure.criteria.index(self), forwarded[-1], where, self.clean[where].copy()))
        return original(self, outputs, labels, rows, views=views, rng=rng)

    monkeypatch.setattr(RobustCriterion, "__call__", recording)
    trainer.aug_generator.manual_seed(1)
    values = procedure.train_epoch(trainer, epoch=1)

    own = [clean_probabilities(tables[k], pool, 5, 1, k)[0] for k in (0, 1)]
    np.testing.assert_array_equal(procedure.criteria[0].clean, own[1])  # network 1 <- network 2's probabilities
    np.testing.assert_array_equal(procedure.criteria[1].clean, own[0])
    assert (own[0][first] < 0.5).all() and (own[0][~first] > 0.5).all()
    assert (procedure.criteria[0].clean[last] < 0.5).all() and (procedure.criteria[0].clean[first] > 0.5).all()
    assert all(c.active for c in procedure.criteria)
    assert {(criterion, network) for criterion, network, _, _ in calls} == {(0, 0), (1, 1)}
    for criterion, _, where, used in calls:  # a step's weights: the other network's probabilities of its views
        np.testing.assert_array_equal(used, own[1 - criterion][where])
    differs = [not np.array_equal(used, own[criterion][where]) for criterion, _, where, used in calls]
    assert sum(differs) > len(calls) // 2

    for k, net in ((0, "net1"), (1, "net2")):  # the noisy shares each network's own fit gives, per modality
        for kind, share in noisy_shares(own[k], pool, 0.5).items():
            assert values[f"noisy_{kind}_{net}"] == share
    assert values["noisy_infrared_net1"] == pytest.approx(1 / 3, abs=0.05)
    assert procedure.noisy_by_epoch[-1]["epoch"] == 1 and procedure.last_stats["epoch"] == 1
    assert all(procedure.mixtures[k][m].get_params()["tol"] == 1e-2 for k in (0, 1) for m in ("visible", "infrared"))


def test_warm_up_trains_each_network_on_cross_entropy_over_every_image(ws: Workspace, tmp_path: Path) -> None:
    trainer = twin_trainer(ws, tmp_path, dart_warmup=1)
    before = [{k: v.clone() for k, v in n.state_dict().items()} for n in trainer.networks]
    trainer.aug_generator.manual_seed(0)
    values = trainer.procedure.train_epoch(trainer, epoch=0)
    assert not any(c.active for c in trainer.procedure.criteria) and values["loss_triplet_net1"] == 0.0
    assert values["loss_net1"] == pytest.approx(values["loss_id_net1"])
    batch = TINY["num_ids"] * TINY["num_instances"]
    length = -(-max(trainer.pool.count(0), trainer.pool.count(1)) // batch) * batch
    assert trainer.images_seen == 2 * 3 * length  # both networks, each image once (visible in two views)
    assert trainer.procedure.steps == [length // batch] * 2
    assert trainer.procedure.summary()["dart"]["optimisation_steps"] == {"net1": length // batch,
                                                                        "net2": length // batch}
    for network, old in zip(trainer.networks, before, strict=True):
        assert not torch.equal(network.classifier.weight, old["classifier.weight"])


# --- the losses --------------------------------------------------------------------------------------------------


class Scripted:
    """Stands for a numpy generator: ``choice`` returns the values given, in order."""

    def __init__(self, *values: object) -> None:
        self.values = list(values)

    def choice(self, a: np.ndarray, size: int | None = None) -> object:
        if not self.values:  # the anchors after the one under test: any valid choice
            return a[0] if size is None else np.resize(a, size)
        value = self.values.pop(0)
        assert np.isin(value, a).all()
        return value


DIST = np.array([[0.0, 1.0, 3.0, 2.0, 4.0],
                 [1.0, 0.0, 1.0, 1.0, 1.0],
                 [3.0, 1.0, 0.0, 1.0, 1.0],
                 [2.0, 1.0, 1.0, 0.0, 1.0],
                 [4.0, 1.0, 1.0, 1.0, 0.0]])
LABELS = np.array([0, 0, 0, 1, 1])  # anchor 0: positives 1, 2; negatives 3 (nearest), 4


def test_robust_triplet_choices_follow_the_released_cases() -> None:
    def one(confident: list[bool], predicted: list[int], *script: object):  # noqa: ANN202
        conf = np.array(confident)
        choice = choose_triplets(DIST, LABELS, conf, np.array(predicted), Scripted(*script))
        row = list(choice.anchors).index(0)
        return choice.positive[row].tolist(), choice.negative[row].tolist(), bool(choice.inverted[row])

    clean = [1, 1, 1, 1, 1]
    # all confident: the random positive and the nearest negative
    assert one([True] * 5, clean, 1) == ([1, 1], [3, 3], False)
    # a doubtful nearest negative the network classifies as the anchor's identity: the positive distance is the
    # mean of both, the negative the next confident one
    assert one([True, True, True, False, True], [0, 0, 0, 0, 1], 1, 0) == ([1, 3], [4, 4], False)
    # the same negative, classified as another identity: kept
    assert one([True, True, True, False, True], [0, 0, 0, 1, 1], 1, 0) == ([1, 1], [3, 3], False)
    # a doubtful positive: the negative distance is the mean, the positive redrawn until confident
    redraws = np.array([0, 1, 2, 2, 2, 2])  # the anchor itself, the doubtful one, then a confident one
    assert one([True, False, True, True, True], clean, 1, redraws) == ([2, 2], [1, 3], False)
    never = np.array([0, 1, 1, 0, 1, 1])  # no confident positive in the six draws: the last one
    assert one([True, False, True, True, True], clean, 1, never) == ([1, 1], [1, 3], False)
    # both doubtful and the negative a probable false negative: the hinge is inverted
    assert one([True, False, True, False, True], [0, 0, 0, 0, 1], 1) == ([1, 1], [3, 3], True)
    # both doubtful, the negative not a false negative: as a doubtful positive
    assert one([True, False, True, False, True], [0, 0, 0, 1, 1], 1, redraws) == ([2, 2], [1, 3], False)
    # anchors below the threshold are left out
    choice = choose_triplets(DIST, LABELS, np.array([False, True, True, True, True]), np.zeros(5, int),
                             np.random.default_rng(0))
    assert 0 not in choice.anchors.tolist() and len(choice.anchors) == 4


def test_robust_triplet_loss_and_soft_identity_loss() -> None:
    torch.manual_seed(0)
    features = torch.randn(6, 4, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    logits = F.one_hot(torch.tensor([0, 0, 1, 1, 2, 2]), 3).float()
    prob = torch.ones(6)
    loss, used = robust_triplet(features, logits, labels, prob, 0.5, 0.3, np.random.default_rng(0))
    dist = torch.cdist(features.detach().double(), features.detach().double())
    expected = []
    for i in range(6):  # one other positive each, so the choice is fixed: the pair and the nearest negative
        p = i ^ 1
        negatives = [j for j in range(6) if labels[j] != labels[i]]
        expected.append(max(0.0, float(dist[i, p] - dist[i, negatives].min() + 0.3)))
    assert used == 6 and float(loss.detach()) == pytest.approx(np.mean(expected), rel=1e-5)
    loss.backward()
    assert features.grad.abs().sum() > 0
    none, count = robust_triplet(features, logits, labels, torch.zeros(6), 0.5, 0.3, np.random.default_rng(0))
    assert count == 0 and float(none) == 0.0

    pool = _pool(3, 3)
    cfg = tiny_cfg()
    criterion = RobustCriterion(cfg, pool)
    outputs = {"logits": torch.randn(6, 3), "pooled": features.detach()}
    rows, views = torch.tensor([0, 0, 1, 3, 4, 5]), torch.tensor([0, 1, 0, 0, 0, 0])
    warm, parts = criterion(outputs, labels, rows, views=views)
    assert float(warm) == pytest.approx(float(F.cross_entropy(outputs["logits"], labels)))
    assert parts["loss_triplet"] == 0.0
    criterion.clean = np.array([[0.2, 0.9], [0.4, 0.4], [1, 1], [0.7, 0.7], [0.1, 0.1], [0.6, 0.6]])
    criterion.active = True
    loss, parts = criterion(outputs, labels, rows, views=views, rng=np.random.default_rng(0))
    prob = torch.tensor([0.2, 0.9, 0.4, 0.7, 0.1, 0.6])  # each row's probability of its own view
    soft = (prob * F.cross_entropy(outputs["logits"], labels, reduction="none")).sum() / 6
    assert parts["loss_id"] == pytest.approx(float(soft), rel=1e-6)
    assert parts["mean_clean"] == pytest.approx(float(prob.mean()))
    assert float(loss) == pytest.approx(parts["loss_id"] + parts["loss_triplet"], rel=1e-6)
    assert dart_losses.FALSE_NEGATIVE_SEARCH == 10 and dart_losses.POSITIVE_REDRAWS == 5


# --- the views ---------------------------------------------------------------------------------------------------


def test_views_erase_then_exchange_channels_as_the_released_transforms() -> None:
    n, h, w = 900, 64, 32
    streams = torch.tensor([PLAIN, EXCHANGED, THERMAL] * (n // 3))
    images = torch.arange(1.0, 4.0).view(1, 3, 1, 1).expand(n, 3, h, w).contiguous()  # channel c holds c + 1
    draws = draw_views(streams, (h, w), torch.Generator().manual_seed(0))
    out = apply_views(images, streams, draws, torch.arange(n))
    erased = draws.erase.numpy()
    assert 0.4 < erased.mean() < 0.6
    area = (draws.height * draws.width).double().numpy()[erased] / (h * w)
    assert area.min() > 0.015 and area.max() < 0.42
    assert (draws.height[erased] < h).all() and (draws.width[erased] < w).all()
    fill = torch.tensor(dart_twin.ERASE_VALUES).view(3, 1)
    for i in np.flatnonzero(erased)[:30]:
        top, left = int(draws.top[i]), int(draws.left[i])
        inside = out[i, :, top:top + int(draws.height[i]), left:left + int(draws.width[i])].reshape(3, -1)
        if streams[i] == PLAIN:
            assert torch.allclose(inside, fill.expand_as(inside))
        elif streams[i] == EXCHANGED:  # erased first, then one channel copied: the erase value of that channel
            assert torch.allclose(inside, fill[int(draws.channel[i])].expand_as(inside))
    plain = (streams == PLAIN).numpy()
    untouched = ~erased & plain
    assert torch.equal(out[untouched], images[untouched])
    exchanged = (streams == EXCHANGED).numpy()
    assert torch.equal(out[exchanged][:, 0], out[exchanged][:, 1]) and torch.equal(out[exchanged][:, 1],
                                                                                      out[exchanged][:, 2])
    assert set(draws.channel[exchanged].tolist()) == {0, 1, 2}
    thermal = (streams == THERMAL).numpy() & ~erased
    kept = (out[thermal] == images[thermal]).all(dim=(1, 2, 3)).numpy()
    gray = draws.gray[thermal].numpy()
    assert 0.06 < kept.mean() < 0.2  # channel draw 3 (a quarter) and no grayscale (a half of those)
    assert np.all(kept == ((draws.channel[thermal] == 3).numpy() & ~gray))
    luminance = 0.2989 * 1 + 0.587 * 2 + 0.114 * 3
    assert torch.allclose(out[thermal][gray], torch.full_like(out[thermal][gray], luminance))


# --- runs -----------------------------------------------------------------------------------------------------


def test_twin_tests_with_the_mean_of_both_networks_unit_features() -> None:
    cfg = tiny_cfg()
    torch.manual_seed(0)
    nets = [get_baseline("dart").build_model(cfg, 3).eval() for _ in range(2)]
    twin = TwinNetworks(nets).eval()
    x, m = torch.randn(4, 3, 64, 32), torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        out = twin(x, m)
        for kind in ("bn", "pooled"):
            a, b = (F.normalize(n(x, m)[kind], dim=1) for n in nets)
            assert torch.allclose(out[kind], (a + b) / 2)
    assert set(twin.state_dict()) == {f"networks.{k}.{key}" for k in (0, 1) for key in nets[0].state_dict()}


def test_the_single_variant_still_trains_one_weighted_network(ws: Workspace) -> None:
    outcome = train_run(ws, "sysu", "dart", "papg", seed=0, preset="tiny", run="single", device="cpu",
                        overrides={**TINY, "dart_variant": "single"})
    summary = outcome.summary
    assert summary["run_config"]["train"]["dart_variant"] == "single"
    assert summary["dart"]["generated_images"] > 0 and "variant" not in summary["dart"]  # the earlier summary
    assert "dart_generated_low_clean" in summary["last"] and "noisy_visible_net1" not in summary["last"]
    model, state, _ = load_run_model(outcome.run_dir, torch.device("cpu"))
    assert not isinstance(model, TwinNetworks) and isinstance(state["optimizer"], dict)
    legacy = {**state["run_config"]["train"]}
    del legacy["dart_variant"]  # a run written before the variant existed is the single variant
    from papg_bench.reid_baselines.run import config_from_run

    assert config_from_run({"baseline": "dart", "train": legacy}).dart_variant == "single"


def test_the_twin_refuses_ddp_with_one_clear_message(ws: Workspace, tmp_path: Path) -> None:
    from papg_bench.training import DistInfo

    store = open_store(ws.dataset_dir("sysu"))
    with pytest.raises(UserError, match="--baseline dart trains 2 networks in one process: run it without torchrun"):
        Trainer(store, None, "dart", "none", 0, tiny_cfg(), tmp_path / "run", {}, "x", torch.device("cpu"),
                DistInfo(rank=0, world_size=2, local_rank=0))


# --- the rule: extend by registration --------------------------------------------------------------------------

# The modules that train and evaluate every baseline; the registry may name it in its import and its one line.
GENERIC = ("reid_baselines/trainer.py", "reid_baselines/run.py", "reid_baselines/extraction.py",
           "reid_baselines/sampler.py", "reid_baselines/augment.py")
NAMED = re.compile(r"dart", re.IGNORECASE)


def test_no_generic_module_names_the_baseline() -> None:
    offenders = [f"{rel}:{n}: {line.strip()}" for rel in GENERIC
                 for n, line in enumerate((PACKAGE / rel).read_text().splitlines(), 1) if NAMED.search(line)]
    assert offenders == []
    registry = [line.strip() for line in (PACKAGE / "reid_baselines/registry.py").read_text().splitlines()
                if NAMED.search(line)]
    assert registry == ["from papg_bench.reid_baselines import agw, cgrnet, dart",
                        '"dart": Baseline("dart", **dart.REGISTRATION),']
