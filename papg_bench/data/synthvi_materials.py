"""How synthvi materials look in visible light, near infrared (SYSU IR cameras) and far infrared (RegDB).

The infrared responses are fixed nonlinear functions of material and dye: many dyes are transparent
in the near infrared, so a dark garment can be bright and two colours that differ in visible light
can look alike. Far infrared sees heat: warm skin, clothes that attenuate body heat according to
their material, cold shoes and bags. The functions are the same for every seed, so the mapping is
learnable.
"""

from __future__ import annotations

import colorsys

import numpy as np

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
    offset, gain = NIR_MATERIAL[material]
    return float(np.clip(offset + gain * dye_term(rgb), 0.0, 1.0))


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
