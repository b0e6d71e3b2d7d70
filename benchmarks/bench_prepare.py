"""Benchmark ``prepare`` against the sequential preprocessing of the original PAPG/AGW code.

Builds (once, cached) a SYSU-MM01-shaped tree of JPEG camera crops of realistic sizes, then times
each candidate in a fresh subprocess while sampling the resident memory of its whole process tree:

- reference: one process opens each image, resizes it (LANCZOS), appends it to a list, and saves one
  ``np.array`` at the end (how the released code builds its ``.npy`` files);
- papg-bench ``prepare_store``: worker processes decode and write straight into the memory-mapped store.

    python benchmarks/bench_prepare.py --images 30000            # SYSU-sized
    python benchmarks/bench_prepare.py --images 5000 --images 30000   # memory vs number of images
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

CAMERAS = (1, 2, 3, 4, 5, 6)


def build_tree(root: Path, images: int, seed: int = 0) -> Path:
    """SYSU layout with ``images`` JPEGs spread over 491 ids and 6 cameras, sizes 64x128 .. 144x288."""
    marker = root / f".complete-{images}"
    if marker.exists():
        return root
    rng = np.random.default_rng(seed)
    ids = list(range(1, 492))
    per = max(1, images // (len(ids) * len(CAMERAS)))
    count = 0
    base = rng.integers(0, 255, size=(288, 144, 3), dtype=np.uint8)
    for pid in ids:
        for cam in CAMERAS:
            folder = root / f"cam{cam}" / f"{pid:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(per):
                if count >= images:
                    break
                w = int(rng.integers(64, 145))
                h = int(rng.integers(2 * w - 16, 2 * w + 16))
                pixels = np.roll(base, int(rng.integers(0, 100)), axis=0)[:h, :w]
                noise = rng.integers(0, 40, size=pixels.shape, dtype=np.uint8)
                Image.fromarray(pixels // 2 + noise).save(folder / f"{k + 1:04d}.jpg", quality=90)
                count += 1
    (root / "exp").mkdir(exist_ok=True)
    (root / "exp" / "train_id.txt").write_text(",".join(map(str, ids[:333])))
    (root / "exp" / "val_id.txt").write_text(",".join(map(str, ids[333:395])))
    (root / "exp" / "test_id.txt").write_text(",".join(map(str, ids[395:])))
    marker.write_text(str(count))
    return root


REFERENCE = """
import sys, numpy as np
from PIL import Image
from papg_bench.data.sysu import read_sysu
root, out = sys.argv[1], sys.argv[2]
images = []
for rec in read_sysu(root).records:
    img = Image.open(f"{root}/{rec.path}").convert("RGB").resize((144, 288), Image.Resampling.LANCZOS)
    images.append(np.array(img))
np.save(out, np.array(images))
"""

CANDIDATE = """
import sys
from papg_bench.data.prepare import prepare_store
from papg_bench.data.sysu import read_sysu
root, out = sys.argv[1], sys.argv[2]
prepare_store(read_sysu(root), root, out, size=(288, 144), force=True)
"""


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants (anonymous + file-backed, as ps shows)."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            with open(f"/proc/{current}/task/{current}/children") as fh:
                pending.extend(int(c) for c in fh.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def run(code: str, root: Path, out: Path) -> tuple[float, int]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, str(root), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_bytes(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code_ = proc.wait()
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    if code_ != 0:
        raise SystemExit(f"candidate failed with exit status {code_}")
    return elapsed, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, action="append", help="tree size(s); default 30000")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "papg-bench-prepare")
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()
    results = []
    for count in args.images or [30000]:
        root = build_tree(args.cache / f"sysu-{count}", count)
        n = int((root / f".complete-{count}").read_text())
        with tempfile.TemporaryDirectory(dir=args.cache) as tmp:
            row = {"images": n, "cores": os.cpu_count()}
            t, peak = run(CANDIDATE, root, Path(tmp) / "store")
            row.update(prepare_s=round(t, 1), prepare_img_s=round(n / t, 1), prepare_peak_mib=round(peak / 2**20))
            if not args.skip_reference:
                t_ref, peak_ref = run(REFERENCE, root, Path(tmp) / "reference.npy")
                row.update(reference_s=round(t_ref, 1), reference_img_s=round(n / t_ref, 1),
                           reference_peak_mib=round(peak_ref / 2**20), speedup=round(t_ref / t, 2))
        results.append(row)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
