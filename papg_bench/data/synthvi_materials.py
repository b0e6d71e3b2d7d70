"""How synthvi materials look in visible light, near infrared (SYSU IR cameras) and far infrared (RegDB).

The near-infrared response of garments, shoes, bags and hats is a fixed nonlinear function of
material and dye, chosen by ``synth --infrared`` (:data:`INFRARED_RESPONSES`):

- ``projection`` (the default): dyes reflect near infrared mostly through their red end, so garment
  brightness is a gamma-compressed projection of the dye that weighs red far more than luma does
  (red and orange garments turn lighter, green and blue ones darker), with a mild material offset and
  gain. Visible colours that differ can look alike, but the brightness order of the dyes is nearly
  kept, so a model trained from scratch can learn to match people across the modalities.
- ``material-dye`` (synthvi version 1's only response, a stress test): a non-monotonic dye term
  (very dark and very light dyes both bright, mid greys dark, saturated colours by hue) scaled by a
  material offset and gain that matter more than the dye, so little of a garment's visible
  appearance survives; models trained from scratch on synthvi ``small`` then match across the
  modalities at about twice chance.

Skin, hair and scenery respond alike in both. Far infrared sees heat: warm skin, clothes that
attenuate body heat according to their material, cold shoes and bags. The functions are the same for
every seed, so the mapping is learnable.
"""

from __future__ import annotations

import colorsys

import numpy as np

from papg_bench.errors import UserError

# material: (offset, gain) of the near-infrared response to the dye term
NIR_MATERIAL = {
    "cotton": (0.08, 0.9), "synthetic": (0.0, 0.55), "wool": (0.35, 0.6), "denim": (0.15, 0.45),
    "leather": (0.05, 0.25), "rubber": (0.05, 0.15), "nylon": (0.15, 0.70),
    "plaster": (0.35, 0.5), "wood": (0.30, 0.5), "metal": (0.15, 0.4), "glass": (0.05, 0.2),
    "foliage": (0.70, 0.2), "asphalt": (0.10, 0.2), "stone": (0.30, 0.4), "fabric": (0.25, 0.6),
    "sky": (0.20, 0.3), "screen": (0.02, 0.1),
}
# material: how much body heat gets through (garments) or the object's own warmth (scenery)
THERMAL_MATERIAL = {
    "cotton": 0.62, "synthetic": 0.55, "wool": 0.38, "denim": 0.45, "leather": 0.25, "rubber": 0.12,
    "nylon": 0.30, "plaster": 0.30, "wood": 0.28, "metal": 0.18, "glass": 0.15, "foliage": 0.33,
    "asphalt": 0.40, "stone": 0.32, "fabric": 0.30, "sky": 0.05, "screen": 0.55,
}


def dye_term(rgb: tuple[int, int, int]) -> float:
    """A non-monotonic function of hue, saturation and lightness in [0, 1].

    Both very dark and very light dyes reflect strongly, mid greys weakly, and saturated colours
    depend on hue; so visible brightness says little about infrared brightness.
    """
    r, g, b = (c / 255.0 for c in rgb)
    hue, light, sat = colorsys.rgb_to_hls(r, g, b)
    hue_part = sat * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * hue + 1.3))
    value = 0.05 + 0.6 * hue_part + 0.75 * abs(2 * light - 1) ** 1.5
    return float(np.clip(value, 0.0, 1.0))


def nir(material: str, rgb: tuple[int, int, int]) -> float:
    """The ``material-dye`` response (also the scenery's)."""
    offset, gain = NIR_MATERIAL[material]
    return float(np.clip(offset + gain * dye_term(rgb), 0.0, 1.0))


# material: (offset, gain) of the ``projection`` response; milder than NIR_MATERIAL, so the dye decides
PROJECTION_MATERIAL = {
    "cotton": (0.05, 0.9), "synthetic": (0.0, 0.85), "wool": (0.1, 0.8), "denim": (0.05, 0.8),
    "leather": (0.0, 0.7), "rubber": (0.0, 0.6), "nylon": (0.05, 0.85),
}


def projection_nir(material: str, rgb: tuple[int, int, int]) -> float:
    """The ``projection`` response: a red-weighted, gamma-compressed projection of the dye, mild material gains."""
    offset, gain = PROJECTION_MATERIAL[material]
    r, g, b = (c / 255.0 for c in rgb)
    return float(np.clip(offset + gain * (0.5 * r + 0.35 * g + 0.15 * b) ** 0.8, 0.0, 1.0))


INFRARED_RESPONSES = {"projection": projection_nir, "material-dye": nir}
DEFAULT_INFRARED = "projection"


def check_infrared(response: str) -> str:
    """``response`` if synthvi knows it, else a :class:`UserError` naming ``--infrared``."""
    if response not in INFRARED_RESPONSES:
        raise UserError(f"--infrared {response!r} is not known: choose one of {', '.join(INFRARED_RESPONSES)}.")
    return response


def garment_nir(response: str, material: str, rgb: tuple[int, int, int]) -> float:
    """Near-infrared intensity of a garment, shoe, bag or hat under the named response."""
    return INFRARED_RESPONSES[response](material, rgb)


def thermal_garment(material: str, rgb: tuple[int, int, int]) -> float:
    """Body heat through a garment: mostly material, dark dyes emit slightly more."""
    light = sum(rgb) / 765.0
    return float(np.clip(0.3 + 0.6 * THERMAL_MATERIAL[material] + 0.06 * (0.5 - light), 0.0, 1.0))


def skin_nir(rgb: tuple[int, int, int]) -> float:
    return 0.72 + 0.18 * (sum(rgb) / 765.0)


def hair_nir(rgb: tuple[int, int, int]) -> float:
    return 0.22 + 0.45 * (sum(rgb) / 765.0)


SKIN_THERMAL = 0.95
HAIR_THERMAL = 0.55


def scene_intensities(material: str, rgb: tuple[int, int, int]) -> tuple[float, float]:
    """(near infrared, far infrared) of a piece of scenery."""
    return nir(material, rgb), THERMAL_MATERIAL[material]


def srgb_array(rgb: tuple[int, int, int]) -> np.ndarray:
    return np.asarray(rgb, dtype=np.float32) / 255.0
