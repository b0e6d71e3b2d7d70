"""synthvi cameras and their background scenes.

Every camera looks at its own scene (a textured, cluttered room or street) that is rendered once per
worker in all three modalities from one map of scene materials, so a counterpart image shows the same
background in the other modality. A camera also has its own look per modality: white balance,
gain, contrast, blur, sensor noise, vignetting and JPEG quality.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from papg_bench.data.synthvi_body import GARMENT_COLOURS
from papg_bench.data.synthvi_materials import scene_intensities


@dataclass(frozen=True)
class Look:
    """How one camera turns scene radiance into pixels, in one modality."""

    wb: tuple[float, float, float] = (1.0, 1.0, 1.0)  # white balance (visible only)
    gain: float = 1.0
    gamma: float = 1.0
    blur: float = 0.5  # Gaussian radius in pixels at 144 px width
    noise: float = 4.0  # sensor noise, grey levels
    jpeg: int = 88
    vignette: float = 0.15
    background: float = 1.0  # infrared illuminators light the person more than the scene


@dataclass(frozen=True)
class Camera:
    cam: int  # SYSU camera number; RegDB: 1 visible, 2 thermal
    modality: str  # "V" or "I"
    scene: str
    views: tuple[tuple[float, float], ...]  # (angle, weight)
    scale: tuple[float, float]  # person height / frame height
    tilt: float
    occlusion: float  # probability of a partial occluder
    visible: Look
    infrared: Look  # near infrared for SYSU, far infrared (thermal) for RegDB
    thermal: bool = False

    @property
    def own_look(self) -> Look:
        return self.visible if self.modality == "V" else self.infrared


FRONT, BACK, LEFT, RIGHT = 0.0, math.pi, math.pi / 2, -math.pi / 2
Q = math.pi / 4
FRONT_BACK = ((FRONT, 3), (BACK, 3), (Q, 1), (-Q, 1), (3 * Q, 1), (-3 * Q, 1))
SIDEWAYS = ((LEFT, 3), (RIGHT, 3), (Q, 1), (-Q, 1), (3 * Q, 1), (-3 * Q, 1), (FRONT, 0.5), (BACK, 0.5))
MIXED = ((FRONT, 2), (BACK, 2), (LEFT, 1.5), (RIGHT, 1.5), (Q, 1), (-Q, 1), (3 * Q, 1), (-3 * Q, 1))

INDOOR_RGB = Look(wb=(1.08, 1.0, 0.82), gain=0.95, gamma=1.05, blur=0.6, noise=4.0, jpeg=86, vignette=0.2)
INDOOR_NIR = Look(gain=1.05, gamma=1.0, blur=0.7, noise=5.0, jpeg=86, vignette=0.45, background=0.7)
OUTDOOR_RGB = Look(wb=(0.95, 1.0, 1.1), gain=1.12, gamma=0.9, blur=0.4, noise=3.0, jpeg=90, vignette=0.1)
OUTDOOR_NIR = Look(gain=1.1, gamma=0.9, blur=0.8, noise=8.0, jpeg=84, vignette=0.55, background=0.45)

SYSU_CAMERAS = {
    1: Camera(1, "V", "room_a", FRONT_BACK, (0.78, 0.94), 0.12, 0.10, INDOOR_RGB, INDOOR_NIR),
    2: Camera(2, "V", "room_b", SIDEWAYS, (0.74, 0.9), 0.08, 0.10,
              Look(wb=(0.9, 1.0, 1.12), gain=0.85, gamma=1.1, blur=0.8, noise=6.0, jpeg=82, vignette=0.3),
              INDOOR_NIR),
    3: Camera(3, "I", "room_c", MIXED, (0.76, 0.94), 0.12, 0.10, INDOOR_RGB, INDOOR_NIR),
    4: Camera(4, "V", "street_a", FRONT_BACK, (0.8, 0.95), 0.05, 0.12, OUTDOOR_RGB, OUTDOOR_NIR),
    5: Camera(5, "V", "street_b", SIDEWAYS, (0.75, 0.92), 0.15, 0.12,
              Look(wb=(1.05, 1.0, 0.92), gain=1.2, gamma=0.85, blur=0.5, noise=3.5, jpeg=88, vignette=0.15),
              OUTDOOR_NIR),
    6: Camera(6, "I", "street_c", MIXED, (0.76, 0.94), 0.1, 0.12, OUTDOOR_RGB, OUTDOOR_NIR),
}
REGDB_VISIBLE = Look(wb=(1.0, 1.0, 0.95), gain=1.05, gamma=0.95, blur=0.5, noise=3.0, jpeg=90, vignette=0.1)
REGDB_THERMAL = Look(gain=1.0, gamma=1.1, blur=1.7, noise=3.0, jpeg=90, vignette=0.1)
REGDB_CAMERAS = {
    1: Camera(1, "V", "campus", FRONT_BACK, (0.84, 0.95), 0.1, 0.0, REGDB_VISIBLE, REGDB_THERMAL, thermal=True),
    2: Camera(2, "I", "campus", FRONT_BACK, (0.84, 0.95), 0.1, 0.0, REGDB_VISIBLE, REGDB_THERMAL, thermal=True),
}


@dataclass(frozen=True)
class Scene:
    visible: np.ndarray  # SH x SW x 3 float32, linear-ish 0..1
    nir: np.ndarray  # SH x SW float32
    thermal: np.ndarray  # SH x SW float32


_SCENE_SALT = {"room_a": 11, "room_b": 12, "room_c": 13, "street_a": 21, "street_b": 22, "street_c": 23,
               "campus": 31,
               # the nine LLCM cameras (synthvi_llcm)
               "room_d": 14, "room_e": 15, "room_f": 16, "street_d": 24, "street_e": 25, "street_f": 26,
               "street_g": 27, "street_h": 28, "street_i": 29}
WALLS = ((200, 195, 180), (170, 180, 190), (215, 210, 200), (160, 150, 130), (190, 200, 185))
FLOORS = ((120, 100, 80), (150, 150, 145), (90, 90, 95), (170, 160, 140))


def cameras_seeing(rng: np.random.Generator, cameras: tuple[int, ...], presence: float) -> list[int]:
    """The cameras that see an identity: each with chance ``presence``, one drawn at random where none does."""
    return [c for c in cameras if rng.random() < presence] or [int(rng.choice(cameras))]


def scene_size(height: int, width: int) -> tuple[int, int]:
    return int(round(height * 1.3)), int(round(width * 2.2))


@lru_cache(maxsize=16)
def make_scene(seed: int, name: str, height: int, width: int) -> Scene:
    """The background of scene ``name`` for frames of ``height`` x ``width`` (a pure function of the seed)."""
    rng = np.random.default_rng([seed, _SCENE_SALT[name], 0x5CE])
    sh, sw = scene_size(height, width)
    labels = Image.new("L", (sw, sh), 0)
    draw = ImageDraw.Draw(labels)
    table: list[tuple[tuple[int, int, int], str]] = []

    def element(colour: tuple[int, int, int], material: str) -> int:
        table.append((colour, material))
        return len(table) - 1

    def colour_near(base: tuple[int, int, int], spread: int = 25) -> tuple[int, int, int]:
        return tuple(int(np.clip(c + rng.integers(-spread, spread + 1), 0, 255)) for c in base)  # type: ignore[return-value]

    def any_colour() -> tuple[int, int, int]:
        return colour_near(GARMENT_COLOURS[int(rng.integers(len(GARMENT_COLOURS)))], 30)

    if name.startswith("room"):
        draw.rectangle((0, 0, sw, sh), fill=element(colour_near(WALLS[int(rng.integers(len(WALLS)))]), "plaster"))
        floor_y = int(sh * rng.uniform(0.62, 0.75))
        floor = element(colour_near(FLOORS[int(rng.integers(len(FLOORS)))]), "stone" if rng.random() < 0.5 else "wood")
        draw.rectangle((0, floor_y, sw, sh), fill=floor)
        seam = element(colour_near((60, 60, 60)), "stone")
        for x in range(0, sw, max(4, sw // int(rng.integers(6, 14)))):
            draw.line((x, floor_y, x + (x - sw / 2) * 0.4, sh), fill=seam, width=1)
        for _ in range(int(rng.integers(5, 10))):
            kind = rng.choice(["door", "window", "poster", "cabinet", "pipe", "box"])
            x0 = int(rng.integers(0, sw))
            if kind == "door":
                w, top = int(sw * rng.uniform(0.08, 0.14)), int(sh * rng.uniform(0.1, 0.25))
                draw.rectangle((x0, top, x0 + w, floor_y), fill=element(colour_near((120, 85, 60), 40), "wood"))
            elif kind == "window":
                w, h, top = int(sw * rng.uniform(0.1, 0.2)), int(sh * rng.uniform(0.15, 0.3)), int(sh * 0.08)
                draw.rectangle((x0, top, x0 + w, top + h), fill=element(colour_near((205, 225, 240), 15), "glass"))
                draw.line((x0 + w // 2, top, x0 + w // 2, top + h), fill=element((90, 90, 90), "metal"), width=2)
            elif kind == "poster":
                w, h, top = int(sw * rng.uniform(0.04, 0.09)), int(sh * rng.uniform(0.08, 0.16)), int(sh * 0.2)
                draw.rectangle((x0, top, x0 + w, top + h), fill=element(any_colour(), "fabric"))
            elif kind == "cabinet":
                w, h = int(sw * rng.uniform(0.08, 0.2)), int(sh * rng.uniform(0.2, 0.45))
                draw.rectangle((x0, floor_y - h, x0 + w, floor_y + 2),
                               fill=element(colour_near((140, 140, 150), 50), "metal" if rng.random() < 0.5
                                            else "wood"))
            elif kind == "pipe":
                draw.line((x0, 0, x0, floor_y), fill=element(colour_near((180, 180, 180)), "metal"),
                          width=max(1, sw // 120))
            else:
                w, h = int(sw * rng.uniform(0.03, 0.08)), int(sh * rng.uniform(0.05, 0.12))
                draw.rectangle((x0, floor_y - h + 3, x0 + w, floor_y + 3), fill=element(any_colour(), "fabric"))
    else:
        sky_y = int(sh * rng.uniform(0.08, 0.25))
        draw.rectangle((0, 0, sw, sky_y), fill=element(colour_near((150, 185, 225), 20), "sky"))
        ground_y = int(sh * rng.uniform(0.6, 0.72))
        x = 0
        while x < sw:
            w = int(sw * rng.uniform(0.15, 0.35))
            top = int(sky_y * rng.uniform(0.0, 1.0))
            wall = colour_near(WALLS[int(rng.integers(len(WALLS)))], 40)
            facade = element(wall, "stone" if rng.random() < 0.5 else "plaster")
            draw.rectangle((x, top, x + w, ground_y), fill=facade)
            glass = element(colour_near((70, 90, 110), 25), "glass")
            step = max(4, int(sh * rng.uniform(0.08, 0.14)))
            for wy in range(top + step // 2, ground_y - step, step):
                for wx in range(x + step // 3, x + w - step // 2, step):
                    draw.rectangle((wx, wy, wx + step // 2, wy + step // 2), fill=glass)
            x += w
        draw.rectangle((0, ground_y, sw, sh), fill=element(colour_near((105, 105, 110), 20), "asphalt"))
        kerb = element(colour_near((175, 170, 160), 15), "stone")
        draw.rectangle((0, ground_y, sw, ground_y + max(1, sh // 40)), fill=kerb)
        for _ in range(int(rng.integers(2, 6))):
            tx, tr = int(rng.integers(0, sw)), int(sh * rng.uniform(0.08, 0.16))
            ty = int(ground_y - sh * rng.uniform(0.25, 0.4))
            trunk = max(1, tr // 6)
            draw.rectangle((tx - trunk, ty, tx + trunk, ground_y), fill=element((85, 60, 40), "wood"))
            draw.ellipse((tx - tr, ty - tr, tx + tr, ty + tr), fill=element(colour_near((50, 110, 45), 25), "foliage"))
        for _ in range(int(rng.integers(2, 6))):
            px = int(rng.integers(0, sw))
            draw.line((px, int(ground_y - sh * rng.uniform(0.2, 0.5)), px, ground_y + 2),
                      fill=element(colour_near((70, 70, 75), 20), "metal"), width=max(1, sw // 150))
        if rng.random() < 0.7:
            bx, bw = int(rng.integers(0, sw)), int(sw * rng.uniform(0.1, 0.2))
            draw.rectangle((bx, ground_y - sh // 12, bx + bw, ground_y + 2), fill=element(any_colour(), "metal"))

    lab = np.asarray(labels)
    vis_table = np.array([c for c, _ in table], dtype=np.float32) / 255.0
    ir_table = np.array([scene_intensities(m, c) for c, m in table], dtype=np.float32)
    texture = _texture(rng, sh, sw)
    visible = vis_table[lab] * texture[..., None]
    # scene lighting: brighter towards the top for rooms (ceiling lights), a side gradient outdoors
    ys, xs = np.mgrid[0:sh, 0:sw].astype(np.float32)
    light = 1.0 + rng.uniform(-0.2, 0.2) * (xs / sw - 0.5) + rng.uniform(-0.15, 0.1) * (ys / sh - 0.5)
    visible = np.clip(visible * light[..., None], 0, 1).astype(np.float32)
    nir = np.clip(ir_table[lab, 0] * texture, 0, 1).astype(np.float32)
    thermal = np.clip(ir_table[lab, 1] * (0.92 + 0.08 * texture) + 0.05 * (ys / sh), 0, 1).astype(np.float32)
    return Scene(visible=visible, nir=nir, thermal=thermal)


def _texture(rng: np.random.Generator, sh: int, sw: int) -> np.ndarray:
    """Multiplicative texture: smooth blotches plus fine grain."""
    coarse = rng.uniform(0.8, 1.2, size=(max(2, sh // 10), max(2, sw // 10))).astype(np.float32)
    smooth = np.asarray(Image.fromarray(coarse).resize((sw, sh), Image.Resampling.BILINEAR))
    grain = rng.normal(1.0, 0.05, size=(sh, sw)).astype(np.float32)
    return smooth * grain
