"""What limits cross-modal rank-1 on synthvi? Re-render synthvi ``small`` with another near-infrared
response, train AGW ``tiny`` (no augmentation) on it and evaluate with the SYSU protocol.

    python experiments/synthvi_nir_variants.py --variant released --variant luma --out /tmp/nir

Variants (the response of garments, shoes, bags and hats; skin, hair and scenery as in synthvi unless
said):

- ``projection``: synthvi's default (``synth --infrared projection``): a red-weighted, gamma-compressed
  projection of the dye with mild material offsets and gains;
- ``material-dye``: synthvi version 1 (``synth --infrared material-dye``): a hue-driven, non-monotonic
  dye term scaled by a material offset and gain;
- ``projection-no-material``: ``projection`` with one offset and gain for every material;
- ``inverted``: 0.15 + 0.75 (1 - luma)^0.8 with ``projection``'s material gains (dark dyes bright);
- ``luma-mix``: ``material-dye`` with the dye term 0.1 + 0.55 x lightness + 0.35 x its hue term;
- ``luma-material``: ``material-dye``'s material offset + gain x luma;
- ``luma-exceptions``: luma with ``projection``'s material gains, but dark blues/purples glow (0.75) and
  saturated yellows go dark (0.3);
- ``luma-exceptions-no-material``: the same with one gain for every material;
- ``luma``: infrared = visible luma everywhere on the person (skin and hair too).

The seed is synthvi's and the training's. Rendering runs in this process (``workers=1``) so that a
patched response reaches it.
"""

from __future__ import annotations

import argparse
import colorsys
import json
import time
from pathlib import Path

import numpy as np

from papg_bench.data import synthvi_materials as mat

RESPONSES = ("projection", "material-dye")  # synthvi's own, chosen by synth --infrared
VARIANTS = (*RESPONSES, "projection-no-material", "inverted", "luma-mix", "luma-material", "luma-exceptions",
            "luma-exceptions-no-material", "luma")
MILD = mat.PROJECTION_MATERIAL
ONE_GAIN = {k: (0.05, 0.85) for k in MILD}


def luma(rgb: tuple[int, int, int]) -> float:
    return (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255.0


def _hls(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    r, g, b = (c / 255.0 for c in rgb)
    return colorsys.rgb_to_hls(r, g, b)


def luma_mix(rgb: tuple[int, int, int]) -> float:
    hue, light, sat = _hls(rgb)
    hue_part = sat * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * hue + 1.3))
    return float(np.clip(0.1 + 0.55 * light + 0.35 * hue_part, 0.0, 1.0))


def luma_with_exceptions(rgb: tuple[int, int, int]) -> float:
    hue, light, sat = _hls(rgb)
    if light < 0.4 and sat > 0.35 and 0.55 <= hue <= 0.85:
        return 0.75
    if sat > 0.6 and 0.1 <= hue <= 0.2:
        return 0.3
    return luma(rgb)


def red_projection(rgb: tuple[int, int, int]) -> float:
    return ((0.5 * rgb[0] + 0.35 * rgb[1] + 0.15 * rgb[2]) / 255) ** 0.8


def patch(variant: str) -> None:
    """Replace the garments' near-infrared response in :mod:`papg_bench.data.synthvi_materials`."""
    shipped = dict(mat.NIR_MATERIAL)
    mat.garment_nir = lambda _response, material, rgb: mat.nir(material, rgb)

    def affine(gains: dict[str, tuple[float, float]], dye):  # noqa: ANN001, ANN202
        def nir(material: str, rgb: tuple[int, int, int]) -> float:
            offset, gain = gains.get(material, shipped[material])
            return float(np.clip(offset + gain * dye(rgb), 0.0, 1.0))
        return nir

    if variant == "luma-mix":
        mat.dye_term = luma_mix
    elif variant == "luma-material":
        mat.nir = affine({}, luma)
    elif variant == "luma-exceptions":
        mat.nir = affine(MILD, luma_with_exceptions)
    elif variant == "luma-exceptions-no-material":
        mat.nir = affine(ONE_GAIN, luma_with_exceptions)
    elif variant == "inverted":
        mat.nir = affine(MILD, lambda rgb: 0.15 + 0.75 * (1 - luma(rgb)) ** 0.8)
    elif variant == "projection-no-material":
        mat.nir = affine(ONE_GAIN, red_projection)
    elif variant == "luma":
        mat.nir = lambda material, rgb: luma(rgb)
        mat.skin_nir = luma
        mat.hair_nir = luma


def run(variant: str, out: Path, seed: int) -> dict:
    from papg_bench.data.prepare import prepare_store
    from papg_bench.data.synthvi import synthesize
    from papg_bench.data.sysu import read_sysu
    from papg_bench.reid_baselines.run import evaluate_run, train_run
    from papg_bench.workspace import Workspace

    saved = (mat.dye_term, mat.nir, mat.skin_nir, mat.hair_nir, mat.garment_nir)
    if variant not in RESPONSES:
        patch(variant)
    try:
        ws = Workspace(out / variant)
        src = ws.root / "sources" / "small"
        synthesize(src, "sysu", preset="small", seed=seed, workers=1,
                   infrared=variant if variant in RESPONSES else "material-dye")
    finally:
        mat.dye_term, mat.nir, mat.skin_nir, mat.hair_nir, mat.garment_nir = saved
    prepare_store(read_sysu(src), src, ws.dataset_dir("synthvi"), size=(128, 64))
    start = time.time()
    train_run(ws, "synthvi", "agw", "none", seed=seed, preset="tiny", device="cpu")
    seconds = time.time() - start
    outcome = evaluate_run(ws, "synthvi", "agw", "none", seed=seed, device="cpu", progress=False)
    scores = {r["mode"]: {k: round(r["summary"][k]["mean"] * 100, 1) for k in ("rank1", "mAP")}
              for r in outcome.records}
    return {"variant": variant, "training_s": round(seconds), **scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", action="append", choices=VARIANTS, help="repeatable (default: all)")
    parser.add_argument("--out", type=Path, required=True, help="a workspace per variant goes here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = [run(v, args.out, args.seed) for v in (args.variant or VARIANTS)]
    print("| infrared response | all R1 | all mAP | indoor R1 | indoor mAP | training |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['variant']} | {r['all']['rank1']} | {r['all']['mAP']} | {r['indoor']['rank1']} | "
              f"{r['indoor']['mAP']} | {r['training_s']} s |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
