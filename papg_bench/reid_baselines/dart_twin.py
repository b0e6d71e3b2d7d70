"""DART's twin networks, as the released ``run.py`` trains them (``XLearning-SCU/2022-CVPR-DART``).

Every batch holds each visible image twice, in two views, and each infrared image once (the released
``data_loader.py`` transforms, applied after the trainer's crop, flip and normalisation):

* visible, first view: random erasing (``ChannelRandomErasing(0.5)``);
* visible, second view: random erasing, then one of R, G, B copied to all channels (``ChannelExchange(gray=2)``);
* infrared: random erasing, then ``ChannelAdapGray(0.5)``: one of R, G, B copied to all channels, or with
  the remaining quarter of the draws, grayscale with probability 0.5.

Random erasing is CAJ's (Ye et al., ICCV 2021): with probability 0.5, a box of 2-40 % of the image area and
aspect ratio in [0.3, 1/0.3] (the first of 100 draws that fits) is set to (0.4914, 0.4822, 0.4465) in the
normalised image.

An epoch of the twin (:class:`TwinProcedure`):

1. The epoch's all-image order: the visible and the infrared pool entries, each padded with its own first
   entries to the same length, a multiple of the batch (P x K), and shuffled independently.
2. Warm-up epochs (``dart_warmup``): each network in turn goes through that order, batch by batch (P x K
   visible and P x K infrared images), with the mean cross-entropy alone.
3. Later epochs: each network scores every image of that order in train mode, without gradients, with the
   training views (its batch-norm statistics move, as in the released ``eval_train``), recording each view's
   cross-entropy. The visible losses of each view are min-max normalised apart and fitted together, the
   infrared losses alone, with scikit-learn's ``GaussianMixture`` (:data:`MIXTURE`); a view's clean
   probability is the posterior of the lower-mean component. Then each network trains one epoch of the
   identity sampler's batches (its own draw) on the probabilities of the *other* network
   (:class:`~papg_bench.reid_baselines.dart_losses.RobustCriterion`).

The share of each network's probabilities below ``dart_threshold`` per modality and view (what the released
code prints as its clean/noisy split) is logged every epoch, and kept in the run's summary. The mixture and
every random choice are seeded from the run's seed, so a run and its resumed copy are identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.mixture import GaussianMixture
from torch import nn

from papg_bench.progress import track
from papg_bench.reid_baselines.augment import GRAY_WEIGHTS
from papg_bench.reid_baselines.dart_losses import RobustCriterion
from papg_bench.reid_baselines.losses import identity_loss
from papg_bench.reid_baselines.sampler import INFRARED, VISIBLE, CrossModalitySampler, TrainingPool
from papg_bench.training import autocast

if TYPE_CHECKING:
    from papg_bench.reid_baselines.trainer import Trainer

MIXTURE = {"n_components": 2, "max_iter": 100, "tol": 1e-2, "reg_covar": 5e-4}  # the released eval_train's
PLAIN, EXCHANGED, THERMAL = 0, 1, 2  # the three streams of a batch
ERASE_PROB, ERASE_AREA, ERASE_ASPECT, ERASE_ATTEMPTS = 0.5, (0.02, 0.4), 0.3, 100
ERASE_VALUES = (0.4914, 0.4822, 0.4465)
ADAPTIVE_GRAY_PROB = 0.5
# what each seeded draw is for: keeps the streams of random numbers apart
_ORDER, _TRIPLET, _MIXTURE, _SECOND_SAMPLER = range(4)


class TwinNetworks(nn.Module):
    """The tested model of a twin run: the mean of its networks' L2-normalised features (the released test)."""

    def __init__(self, networks: list[nn.Module]) -> None:
        super().__init__()
        self.networks = nn.ModuleList(networks)
        self.feature_dim = networks[0].feature_dim

    def forward(self, images: torch.Tensor, modalities: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = [network(images, modalities) for network in self.networks]
        return {kind: sum(F.normalize(out[kind].float(), dim=1) for out in outputs) / len(outputs)
                for kind in ("bn", "pooled")}


# --- the views ---------------------------------------------------------------------------------------------


@dataclass
class ViewDraws:
    """The random choices of DART's view transforms for a global batch (on the CPU)."""

    erase: torch.Tensor  # bool
    top: torch.Tensor
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor
    channel: torch.Tensor  # 0 R, 1 G, 2 B; 3 (infrared only): grayscale or unchanged
    gray: torch.Tensor  # bool


def draw_views(streams: torch.Tensor, size: tuple[int, int], generator: torch.Generator) -> ViewDraws:
    """Draws for images of ``streams`` (PLAIN / EXCHANGED / THERMAL) of ``size`` (H, W)."""
    n, (h_img, w_img) = len(streams), size
    apply = torch.rand(n, generator=generator) < ERASE_PROB
    area = ERASE_AREA[0] + (ERASE_AREA[1] - ERASE_AREA[0]) * torch.rand(n, ERASE_ATTEMPTS, generator=generator,
                                                                         dtype=torch.float64)
    aspect = ERASE_ASPECT + (1 / ERASE_ASPECT - ERASE_ASPECT) * torch.rand(n, ERASE_ATTEMPTS, generator=generator,
                                                                            dtype=torch.float64)
    target = area * (h_img * w_img)
    heights = torch.round(torch.sqrt(target * aspect)).long()
    widths = torch.round(torch.sqrt(target / aspect)).long()
    fits = (widths < w_img) & (heights < h_img)
    first = fits.long().argmax(dim=1, keepdim=True)
    height, width = heights.gather(1, first).squeeze(1), widths.gather(1, first).squeeze(1)
    top = (torch.rand(n, generator=generator, dtype=torch.float64) * (h_img - height + 1)).long()
    left = (torch.rand(n, generator=generator, dtype=torch.float64) * (w_img - width + 1)).long()
    channel = torch.where(streams == THERMAL, torch.randint(0, 4, (n,), generator=generator),
                          torch.randint(0, 3, (n,), generator=generator))
    gray = torch.rand(n, generator=generator) < ADAPTIVE_GRAY_PROB
    return ViewDraws(erase=apply & fits.any(dim=1), top=top, left=left, height=height, width=width,
                     channel=channel, gray=gray & (channel == 3) & (streams == THERMAL))


def apply_views(images: torch.Tensor, streams: torch.Tensor, draws: ViewDraws, index: torch.Tensor,
                channels_last: bool = False) -> torch.Tensor:
    """DART's view transforms on normalised ``images`` (of the global batch's positions ``index``)."""
    device, (n, _, h, w) = images.device, images.shape
    d = {name: getattr(draws, name)[index].to(device) for name in ("erase", "top", "left", "height", "width",
                                                                  "channel", "gray")}
    streams = streams[index].to(device)
    rows = torch.arange(h, device=device).view(1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)
    top, left = d["top"].view(n, 1, 1), d["left"].view(n, 1, 1)
    box = ((rows >= top) & (rows < top + d["height"].view(n, 1, 1)) & (cols >= left)
           & (cols < left + d["width"].view(n, 1, 1)) & d["erase"].view(n, 1, 1))
    fill = torch.tensor(ERASE_VALUES, device=device, dtype=images.dtype).view(1, 3, 1, 1)
    x = torch.where(box.unsqueeze(1), fill, images)
    copy = (streams == EXCHANGED) | ((streams == THERMAL) & (d["channel"] < 3))
    picked = x[torch.arange(n, device=device), d["channel"].clamp(max=2)]
    weights = torch.tensor(GRAY_WEIGHTS, device=device, dtype=x.dtype).view(1, 3, 1, 1)
    luminance = (x * weights).sum(dim=1)
    single = torch.where(copy.view(n, 1, 1), picked, luminance).unsqueeze(1).expand_as(x)
    out = torch.where((copy | d["gray"]).view(n, 1, 1, 1), single, x)
    return out.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


# --- the clean probabilities -------------------------------------------------------------------------------


def all_image_order(pool: TrainingPool, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Visible and infrared pool rows, each padded with its own first rows to one length (a multiple of
    ``batch``) and shuffled: the released ``AllSampler`` (whose padding is the general rule at SYSU-MM01's
    and RegDB's sizes)."""
    visible, infrared = (np.flatnonzero(pool.modalities == m) for m in (VISIBLE, INFRARED))
    length = -(-max(len(visible), len(infrared)) // batch) * batch
    return rng.permutation(np.resize(visible, length)), rng.permutation(np.resize(infrared, length))


def min_max(values: np.ndarray) -> np.ndarray:
    span = values.max() - values.min() if len(values) else 0.0
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


def lower_component_posterior(values: np.ndarray, random_state: int) -> tuple[np.ndarray, GaussianMixture | None]:
    """Each value's posterior of the lower-mean component of a two-component mixture, and the fitted mixture.

    Identical values leave nothing to separate: every probability is 1 then (and no mixture)."""
    x = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    if len(x) < MIXTURE["n_components"] or np.ptp(x) == 0:
        return np.ones(len(x)), None
    mixture = GaussianMixture(**MIXTURE, random_state=random_state).fit(x)
    return mixture.predict_proba(x)[:, int(np.argmin(mixture.means_))], mixture


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def clean_probabilities(losses: np.ndarray, pool: TrainingPool, seed: int, epoch: int,
                        network: int) -> tuple[np.ndarray, dict[str, GaussianMixture | None]]:
    """Per pool row and view, the clean probability from one network's per-view losses (``losses``: rows x 2;
    column 1 is a visible image's exchanged view, infrared rows use column 0), and the two fitted mixtures."""
    visible, infrared = pool.modalities == VISIBLE, pool.modalities == INFRARED
    count = int(visible.sum())
    both = np.concatenate([min_max(losses[visible, 0]), min_max(losses[visible, 1])])
    prob_v, mix_v = lower_component_posterior(both, _seed(seed, epoch, network, VISIBLE, _MIXTURE))
    prob_i, mix_i = lower_component_posterior(min_max(losses[infrared, 0]),
                                              _seed(seed, epoch, network, INFRARED, _MIXTURE))
    clean = np.ones((len(pool), 2), dtype=np.float64)
    clean[visible, 0], clean[visible, 1] = prob_v[:count], prob_v[count:]
    clean[infrared, 0] = clean[infrared, 1] = prob_i
    return clean, {"visible": mix_v, "infrared": mix_i}


def noisy_shares(clean: np.ndarray, pool: TrainingPool, threshold: float) -> dict[str, float]:
    """The share of each modality's (and view's) probabilities below ``threshold``."""
    visible, infrared = pool.modalities == VISIBLE, pool.modalities == INFRARED
    return {"visible": float((clean[visible, 0] < threshold).mean()),
            "visible_exchanged": float((clean[visible, 1] < threshold).mean()),
            "infrared": float((clean[infrared, 0] < threshold).mean())}


def image_counts(first: np.ndarray, pool: TrainingPool, threshold: float) -> dict[str, Any]:
    """Real and generated images whose clean probability ``first`` (one per pool row) is below ``threshold``,
    and their mean clean probability."""
    generated = pool.generated
    low = first < threshold
    return {"generated_images": int(generated.sum()), "generated_low_clean": int((low & generated).sum()),
            "real_images": int((~generated).sum()), "real_low_clean": int((low & ~generated).sum()),
            "mean_clean_generated": float(first[generated].mean()) if generated.any() else None,
            "mean_clean_real": float(first[~generated].mean())}


# --- the procedure ------------------------------------------------------------------------------------------


def _shards(length: int, count: int) -> list[np.ndarray]:
    """Positions of a three-stream batch (each stream ``length`` long) for each of ``count`` micro-batches:
    the same slice of every stream, so identity batches keep whole identities per shard."""
    per = length // count
    return [np.concatenate([np.arange(s * length + m * per, s * length + (m + 1) * per) for s in range(3)])
            for m in range(count)]


class TwinProcedure:
    """Trains DART's two networks an epoch at a time (see the module doc); the trainer's procedure contract."""

    networks = 2

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.criteria: list[RobustCriterion] = []
        self.samplers: list[CrossModalitySampler] = []
        self.mixtures: list[dict[str, GaussianMixture | None]] = []  # the last fit of each network (not saved)
        self.noisy_by_epoch: list[dict[str, Any]] = []
        self.last_stats: dict[str, Any] = {}
        self.steps = [0] * self.networks  # optimisation steps of each network, warm-up included

    def tested_model(self, networks: list[nn.Module]) -> nn.Module:
        return TwinNetworks(networks)

    def setup(self, trainer: Trainer) -> None:
        cfg, pool, first = trainer.cfg, trainer.pool, trainer.sampler
        self.criteria = [trainer.baseline.make_criterion(cfg, pool) for _ in range(self.networks)]
        second = CrossModalitySampler(pool, cfg.num_ids, cfg.num_instances, _seed(trainer.seed, _SECOND_SAMPLER),
                                      first.steps_per_epoch, cfg.synthetic_ratio)
        self.samplers = [first, second]

    # --- one epoch ---------------------------------------------------------------------------------------

    def train_epoch(self, trainer: Trainer, epoch: int) -> dict[str, float]:
        cfg = trainer.cfg
        order = all_image_order(trainer.pool, cfg.num_ids * cfg.num_instances,
                                np.random.default_rng([trainer.seed, epoch, _ORDER]))
        values: dict[str, float] = {}
        if epoch >= cfg.dart_warmup:
            values.update(self._select(trainer, epoch, *order))
        for k in range(self.networks):
            batches = self._batches(trainer, k, epoch, *order)
            sums: dict[str, float] = {}
            title = f"dart network {k + 1}: epoch {epoch + 1}/{cfg.epochs}"
            with track(title, len(batches), "step", enabled=trainer.dist.is_main) as advance:
                for step, (v_rows, i_rows) in enumerate(batches):
                    for key, value in self._step(trainer, k, v_rows, i_rows, (epoch, step)).items():
                        sums[key] = sums.get(key, 0.0) + value
                    advance()
            values.update({f"{key}_net{k + 1}": value / max(1, len(batches)) for key, value in sums.items()})
        values["loss"] = float(np.mean([values[f"loss_net{k + 1}"] for k in range(self.networks)]))
        return values

    def _batches(self, trainer: Trainer, k: int, epoch: int, visible: np.ndarray,
                 infrared: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Network ``k``'s (visible rows, infrared rows) per step: the all-image order in the warm-up, then its
        own identity sampler's batches (per identity K visible, then K infrared)."""
        cfg = trainer.cfg
        if epoch < cfg.dart_warmup:
            size = cfg.num_ids * cfg.num_instances
            return [(visible[s:s + size], infrared[s:s + size]) for s in range(0, len(visible), size)]
        per = cfg.num_instances
        return [(b[:, :per].reshape(-1), b[:, per:].reshape(-1)) for b in self.samplers[k].epoch_batches(epoch)]

    def _streams(self, trainer: Trainer, v_rows: np.ndarray,
                 i_rows: np.ndarray) -> tuple[np.ndarray, torch.Tensor, Any, ViewDraws]:
        """A three-stream batch's pool rows, stream codes and augmentation draws (for the whole batch)."""
        rows = np.concatenate([v_rows, v_rows, i_rows])
        streams = torch.as_tensor(np.repeat([PLAIN, EXCHANGED, THERMAL], len(v_rows)))
        base = trainer.augmenter.draw(len(rows), trainer.aug_generator)
        return rows, streams, base, draw_views(streams, tuple(trainer.cfg.size), trainer.aug_generator)

    def _images(self, trainer: Trainer, rows: np.ndarray, streams: torch.Tensor, base: Any, views: ViewDraws,
                positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        device, index = trainer.device, rows[positions]
        modalities = torch.as_tensor(trainer.pool.modalities[index], device=device)
        labels = torch.as_tensor(trainer.pool.labels[index], device=device)
        where = torch.as_tensor(positions)
        images = trainer.augmenter(trainer.images.load(index, device), modalities, base, where)
        return apply_views(images, streams, views, where, trainer.channels_last), modalities, labels

    def _step(self, trainer: Trainer, k: int, v_rows: np.ndarray, i_rows: np.ndarray,
              when: tuple[int, int]) -> dict[str, float]:
        """One optimisation step of network ``k`` on a batch (gradients accumulated over the micro-batches)."""
        network, optimizer, criterion = trainer.train_networks[k], trainer.optimizers[k], self.criteria[k]
        network.train()
        rows, streams, base, views = self._streams(trainer, v_rows, i_rows)
        shards = _shards(len(v_rows), trainer.cfg.micro_batches)
        totals: dict[str, float] = {}
        for m, positions in enumerate(shards):
            images, modalities, labels = self._images(trainer, rows, streams, base, views, positions)
            with autocast(trainer.device, trainer.cfg.precision):
                outputs = network(images, modalities)
            view = torch.as_tensor((streams[positions] == EXCHANGED).long())
            rng = np.random.default_rng([trainer.seed, *when, k, m, _TRIPLET])
            loss, parts = criterion(outputs, labels, torch.as_tensor(rows[positions]), views=view, rng=rng)
            (loss / len(shards)).backward()
            for key, value in {"loss": float(loss.detach()), **parts}.items():
                totals[key] = totals.get(key, 0.0) + value / len(shards)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        self.steps[k] += 1
        trainer.images_seen += len(rows)
        return totals

    @torch.no_grad()
    def _losses(self, trainer: Trainer, k: int, visible: np.ndarray, infrared: np.ndarray) -> np.ndarray:
        """Network ``k``'s cross-entropy of every pool row's views (rows x 2), scored as the released code:
        train mode, training views, the all-image batches; an image met twice keeps its later loss."""
        cfg, network = trainer.cfg, trainer.train_networks[k]
        network.train()
        batch = cfg.num_ids * cfg.num_instances
        seen_rows, seen_views, seen_losses = [], [], []
        title = f"dart network {k + 1}: per-sample losses"
        with track(title, len(visible) // batch, "step", enabled=trainer.dist.is_main) as advance:
            for start in range(0, len(visible), batch):
                rows, streams, base, views = self._streams(trainer, visible[start:start + batch],
                                                           infrared[start:start + batch])
                for positions in _shards(len(rows) // 3, cfg.micro_batches):
                    images, modalities, labels = self._images(trainer, rows, streams, base, views, positions)
                    with autocast(trainer.device, cfg.precision):
                        logits = network(images, modalities)["logits"]
                    seen_losses.append(identity_loss(logits, labels, reduction="none").float().cpu().numpy())
                    seen_rows.append(rows[positions])
                    seen_views.append((streams[positions] == EXCHANGED).long().numpy())
                advance()
        flat_rows, flat_views = np.concatenate(seen_rows), np.concatenate(seen_views)
        flat_losses = np.concatenate(seen_losses).astype(np.float64)
        key = flat_rows * 2 + flat_views
        _, last = np.unique(key[::-1], return_index=True)  # the later of repeated scores, as the released loop
        keep = len(key) - 1 - last
        table = np.full((len(trainer.pool), 2), np.nan)
        table[flat_rows[keep], flat_views[keep]] = flat_losses[keep]
        return table

    def _select(self, trainer: Trainer, epoch: int, visible: np.ndarray, infrared: np.ndarray) -> dict[str, float]:
        """Both networks' clean probabilities; each network's criterion gets the other's (co-selection)."""
        fits = [clean_probabilities(self._losses(trainer, k, visible, infrared), trainer.pool, trainer.seed, epoch, k)
                for k in range(self.networks)]
        self.mixtures = [mixtures for _, mixtures in fits]
        for k, criterion in enumerate(self.criteria):
            criterion.clean, criterion.active = fits[self.networks - 1 - k][0], True
        threshold = trainer.cfg.dart_threshold
        shares = {f"net{k + 1}": noisy_shares(clean, trainer.pool, threshold) for k, (clean, _) in enumerate(fits)}
        self.noisy_by_epoch.append({"epoch": epoch, **shares})
        self.last_stats = {"epoch": epoch, "threshold": threshold,
                           **image_counts(fits[0][0][:, 0], trainer.pool, threshold)}
        return {f"noisy_{kind}_{net}": share for net, by_kind in shares.items() for kind, share in by_kind.items()}

    # --- checkpoints and summary -------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"criteria": [c.state_dict() for c in self.criteria], "noisy_by_epoch": list(self.noisy_by_epoch),
                "last_stats": dict(self.last_stats), "steps": list(self.steps)}

    def load_state_dict(self, state: dict) -> None:
        for criterion, saved in zip(self.criteria, state["criteria"], strict=True):
            criterion.load_state_dict(saved)
        self.noisy_by_epoch = list(state["noisy_by_epoch"])
        self.last_stats = dict(state["last_stats"])
        self.steps = list(state["steps"])

    def summary(self) -> dict:
        steps = {f"net{k + 1}": count for k, count in enumerate(self.steps)}
        if not self.last_stats:
            return {"dart": {"variant": "twin", "optimisation_steps": steps, "note": "warm-up only: no fit yet"}}
        last = self.noisy_by_epoch[-1]
        return {"dart": {"variant": "twin", "optimisation_steps": steps, **self.last_stats,
                         "noisy": {k: v for k, v in last.items() if k != "epoch"},
                         "noisy_by_epoch": self.noisy_by_epoch}}
