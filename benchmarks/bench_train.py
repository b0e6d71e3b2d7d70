"""Training throughput (images/s) of AGW: the store + device-side augmentation against the reference
per-sample PIL pipeline (DataLoader workers decoding JPEGs, torchvision Pad/RandomCrop/RandomHorizontalFlip/
ToTensor/Normalize), same model, same batches, same optimiser.

    .venv/bin/python benchmarks/bench_train.py                         # ResNet-50, 288x144, batch 64
    .venv/bin/python benchmarks/bench_train.py --batch 16 --steps 3
    .venv/bin/python benchmarks/bench_train.py --data-only --steps 11   # input pipelines alone, no model

The dataset is a SYSU-layout tree of JPEGs written on the fly (noise images: decoding cost is what matters).
Both pipelines run back to back in one process; the first step of each is a warm-up and is not timed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from papg_bench.config import make_config
from papg_bench.data.batches import IMAGENET_MEAN, IMAGENET_STD
from papg_bench.data.fixtures import make_sysu_tree
from papg_bench.data.layouts import read_layout
from papg_bench.data.prepare import prepare_store
from papg_bench.data.store import open_store
from papg_bench.reid_baselines.config import TrainConfig
from papg_bench.reid_baselines.trainer import Trainer
from papg_bench.runtime import resolve_device
from papg_bench.training import autocast


class PilDataset(Dataset):
    """The reference approach: decode a JPEG and transform it per sample in a worker."""

    def __init__(self, root: Path, paths: list[str], labels: np.ndarray, modalities: np.ndarray,
                 size: tuple[int, int]) -> None:
        self.root, self.paths, self.labels, self.modalities = root, paths, labels, modalities
        self.transform = transforms.Compose([
            transforms.Resize(size), transforms.Pad(10), transforms.RandomCrop(size),
            transforms.RandomHorizontalFlip(), transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):  # noqa: ANN204
        with Image.open(self.root / self.paths[i]) as img:
            x = self.transform(img.convert("RGB"))
        return x, int(self.labels[i]), int(self.modalities[i])


class BatchList(torch.utils.data.Sampler):
    def __init__(self, batches: list[np.ndarray]) -> None:
        self.batches = batches

    def __iter__(self):  # noqa: ANN204
        return iter([b.tolist() for b in self.batches])

    def __len__(self) -> int:
        return len(self.batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--size", default="288x144")
    parser.add_argument("--batch", type=int, default=64, help="images per batch (P x 2K, K = 4)")
    parser.add_argument("--steps", type=int, default=3, help="steps per pipeline, the first untimed")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the PIL pipeline")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--data-only", action="store_true", help="time the input pipelines alone (no model)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.split("x"))
    device = resolve_device(args.device)
    k = 4
    num_ids = args.batch // (2 * k)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ids = list(range(1, num_ids + 3))
        root = make_sysu_tree(tmp / "sysu", train_ids=ids, val_ids=[len(ids) + 1], test_ids=[len(ids) + 2],
                              images_per_camera=k + 1, size=size)
        prepare_store(read_layout("sysu", root), root, tmp / "store", size, workers=1)
        store = open_store(tmp / "store")
        cfg = make_config(TrainConfig, "paper", overrides={
            "arch": args.arch, "pretrained": "none", "size": size, "num_ids": num_ids, "num_instances": k})
        trainer = Trainer(store, None, "agw", "none", 0, cfg, tmp / "run", {}, "bench", device)
        batches = list(trainer.sampler.epoch_batches(0)[: args.steps])
        while len(batches) < args.steps:
            batches += list(trainer.sampler.epoch_batches(len(batches))[: args.steps - len(batches)])
        initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        initial_opt = trainer.optimizer.state_dict()
        trainer.aug_generator.manual_seed(0)

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize()

        def store_batch(batch: np.ndarray) -> None:
            flat = batch.reshape(-1)
            draws = trainer.augmenter.draw(len(flat), trainer.aug_generator)
            modalities = torch.as_tensor(pool.modalities[flat], device=device)
            trainer.augmenter(trainer.images.load(flat, device), modalities, draws, torch.arange(len(flat)))

        pool = trainer.pool
        times = []
        for batch in batches:
            start = time.perf_counter()
            store_batch(batch) if args.data_only else trainer.train_step(batch)
            sync()
            times.append(time.perf_counter() - start)
        store_rate = args.batch * (len(times) - 1) / sum(times[1:])

        trainer.model.load_state_dict(initial)
        trainer.optimizer.load_state_dict(initial_opt)
        paths = [store.paths[r] for r in pool.store_rows]
        dataset = PilDataset(root, paths, pool.labels, pool.modalities, size)
        loader = DataLoader(dataset, batch_sampler=BatchList([b.reshape(-1) for b in batches]),
                            num_workers=args.workers, pin_memory=device.type == "cuda")
        times = []
        start = time.perf_counter()
        for x, labels, modalities in loader:
            x, labels, modalities = x.to(device), labels.to(device), modalities.to(device)
            if args.data_only:
                sync()
                now = time.perf_counter()
                times.append(now - start)
                start = now
                continue
            if trainer.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, cfg.precision):
                outputs = trainer.model(x, modalities)
            loss, _ = trainer.criterion(outputs, labels, torch.zeros(len(labels), dtype=torch.long))
            loss.backward()
            trainer.optimizer.step()
            trainer.optimizer.zero_grad(set_to_none=True)
            sync()
            now = time.perf_counter()
            times.append(now - start)
            start = now
        pil_rate = args.batch * (len(times) - 1) / sum(times[1:])
    what = "input pipeline only" if args.data_only else args.arch
    print(f"device {device}, {what}, {size[0]}x{size[1]}, batch {args.batch}, {args.steps - 1} timed steps, "
          f"torch threads {torch.get_num_threads()}, {args.workers} DataLoader workers")
    print(f"store + device augmentation : {store_rate:8.2f} images/s")
    print(f"PIL transforms in workers   : {pil_rate:8.2f} images/s")
    print(f"ratio                       : {store_rate / pil_rate:8.2f}x")


if __name__ == "__main__":
    main()
