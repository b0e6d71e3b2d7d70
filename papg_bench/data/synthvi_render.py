"""Rendering one moment: a posed person in front of a camera's scene, in visible and infrared light.

The person is drawn at twice the output resolution into a map of part labels and a shading map
(filled capsules and convex polygons, back to front); each modality then colours the same maps
(visible albedo, near-infrared or thermal intensity) and averages 2 x 2 blocks, which antialiases the
edges. Everything random comes from the ``rng`` passed in, itself seeded per image.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from papg_bench.data import synthvi_materials as mat
from papg_bench.data.synthvi_body import (
    LANK,
    LEL,
    LHIP,
    LKNEE,
    LSH,
    LWR,
    NECK,
    NOSE,
    RANK,
    REL,
    RHIP,
    RKNEE,
    RSH,
    RWR,
    Identity,
    Skeleton,
    View,
    face_visibility,
)
from papg_bench.data.synthvi_scene import Camera, Look, make_scene, scene_size

SS = 2  # supersampling factor
BG, SKIN, HAIR, UPPER, UPPER_B, LOWER, SHOES, ACCESSORY, HAT = range(9)
N_LABELS = 9
LEVELS = 16  # code = label * LEVELS + shading level (1 edge .. 3 middle)
SHADE_OF_LEVEL = np.array([0.0, 0.59, 0.8, 0.96])


@dataclass(frozen=True)
class Moment:
    """Everything that fixes one image apart from the camera look: who, pose, view, framing."""

    person: Identity
    skeleton: Skeleton
    view: View
    height_px: float  # body height in output pixels
    centre_x: float  # output pixel column of the body axis
    foot_y: float  # output pixel row of the ground under the feet
    scene_xy: tuple[int, int]  # top-left corner of the frame in the camera's scene
    occluder: tuple[float, float, float, float, tuple[int, int, int], str] | None  # x0, y0, x1, y1 (fractions)
    light: float  # illumination gain of this moment


def label_tables(person: Identity, infrared: str = mat.DEFAULT_INFRARED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-label visible albedo (9 x 3), near-infrared (9) and thermal (9) intensity of ``person``.

    ``infrared`` names the garments' near-infrared response (:data:`synthvi_materials.INFRARED_RESPONSES`).
    """
    def nir(material: str, rgb: tuple[int, int, int]) -> float:
        return mat.garment_nir(infrared, material, rgb)

    parts = {
        SKIN: (person.skin, mat.skin_nir(person.skin), mat.SKIN_THERMAL),
        HAIR: (person.hair_colour, mat.hair_nir(person.hair_colour), mat.HAIR_THERMAL),
        UPPER: (person.upper_colour, nir(person.upper_material, person.upper_colour),
                mat.thermal_garment(person.upper_material, person.upper_colour)),
        UPPER_B: (person.upper_colour_b, nir(person.upper_material, person.upper_colour_b),
                  mat.thermal_garment(person.upper_material, person.upper_colour_b)),
        LOWER: (person.lower_colour, nir(person.lower_material, person.lower_colour),
                mat.thermal_garment(person.lower_material, person.lower_colour)),
        SHOES: (person.shoe_colour, nir("rubber", person.shoe_colour), 0.3),
        ACCESSORY: (person.accessory_colour, nir("nylon", person.accessory_colour), 0.22),
        HAT: (person.hat_colour, nir("wool", person.hat_colour), 0.45),
    }
    vis = np.zeros((N_LABELS, 3), dtype=np.float32)
    nir = np.zeros(N_LABELS, dtype=np.float32)
    thermal = np.zeros(N_LABELS, dtype=np.float32)
    for label, (rgb, n, t) in parts.items():
        vis[label] = mat.srgb_array(rgb)
        nir[label] = n
        thermal[label] = t
    return vis, nir, thermal


class _Canvas:
    """The person's bounding box at SS x resolution as one code image: label * 16 + shading level.

    Levels 1..3 run from a part's silhouette edge to its middle (nested capsules / shrunken polygons),
    which reads as cylinder shading once each material colours them.
    """

    def __init__(self, x0: int, y0: int, w: int, h: int) -> None:
        self.x0, self.y0 = x0, y0
        self.image = Image.new("L", (w * SS, h * SS), BG)
        self.draw = ImageDraw.Draw(self.image)

    def xy(self, p: np.ndarray) -> tuple[float, float]:
        return ((p[0] - self.x0) * SS, (p[1] - self.y0) * SS)

    def capsule(self, a: np.ndarray, b: np.ndarray, radius: float, label: int) -> None:
        pa, pb = self.xy(a), self.xy(b)
        for level, k in ((1, 1.0), (2, 0.66), (3, 0.33)):
            rr = max(radius * k * SS, 0.6)
            value = label * LEVELS + level
            self.draw.line((pa, pb), fill=value, width=max(1, int(round(2 * rr))))
            for cx, cy in (pa, pb):
                self.draw.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), fill=value)

    def ellipse(self, c: np.ndarray, rx: float, ry: float, label: int) -> None:
        cx, cy = self.xy(c)
        for level, k in ((1, 1.0), (2, 0.6), (3, 0.3)):
            self.draw.ellipse((cx - rx * k * SS, cy - ry * k * SS, cx + rx * k * SS, cy + ry * k * SS),
                              fill=label * LEVELS + level)

    def polygon(self, points: np.ndarray, label: int) -> None:
        pts = [self.xy(p) for p in points]
        centre = np.mean(pts, axis=0)
        for level, k in ((1, 1.0), (2, 0.7), (3, 0.4)):
            self.draw.polygon([tuple(centre + k * (np.asarray(p) - centre)) for p in pts], fill=label * LEVELS + level)


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Monotone-chain convex hull of 2-D points (counter-clockwise)."""
    pts = sorted(map(tuple, np.round(points, 4)))
    if len(pts) <= 2:
        return np.array(pts)

    def cross(o: tuple, a: tuple, b: tuple) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple] = []
    upper: list[tuple] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1])


def _box(x: tuple[float, float], y: tuple[float, float], z: tuple[float, float]) -> np.ndarray:
    return np.array([(a, b, c) for a in x for b in y for c in z])


def project(moment: Moment, points: np.ndarray) -> np.ndarray:
    """Body coordinates -> (column, row, depth) in output pixels."""
    cam = moment.view.rotate(np.asarray(points, dtype=np.float64))
    out = np.empty_like(cam)
    out[..., 0] = moment.centre_x + cam[..., 0] * moment.height_px
    out[..., 1] = moment.foot_y + cam[..., 1] * moment.height_px
    out[..., 2] = cam[..., 2]
    return out


def keypoints(moment: Moment, height: int, width: int) -> np.ndarray:
    """18 x 2 int (x, y) pixel coordinates of the written image; -1 where the joint is out of view."""
    pts = project(moment, moment.skeleton.joints)
    xy = np.floor(pts[:, :2]).astype(np.int64)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
    ok = inside & face_visibility(moment.skeleton, moment.view)
    xy[~ok] = -1
    return xy


def rasterize(moment: Moment, height: int, width: int) -> tuple[tuple[int, int], np.ndarray]:
    """Draw the person; returns (x0, y0) of the box and its SS-resolution code array (see _Canvas)."""
    person, skel = moment.person, moment.skeleton
    ph = moment.height_px
    j = skel.joints
    pj = project(moment, j)
    margin = 0.16 * ph
    x0 = int(max(0, math.floor(pj[:, 0].min() - margin)))
    x1 = int(min(width, math.ceil(pj[:, 0].max() + margin)))
    y0 = int(max(0, math.floor(pj[:, 1].min() - margin)))
    y1 = int(min(height, math.ceil(pj[:, 1].max() + 0.06 * ph)))
    if x1 <= x0 or y1 <= y0:
        return (0, 0), np.zeros((SS, SS), np.uint8)
    canvas = _Canvas(x0, y0, x1 - x0, y1 - y0)
    parts: list[tuple[float, int, object]] = []  # (depth, order, draw call)

    def add(depth: float, call: object) -> None:
        parts.append((float(depth), len(parts), call))

    r = skel.limb_radius
    radius = {k: v * ph for k, v in r.items()}
    hip_y = (j[RHIP, 1] + j[LHIP, 1]) / 2
    sh_y = (j[RSH, 1] + j[LSH, 1]) / 2
    half = skel.torso_depth / 2
    torso_box = np.concatenate([_box((j[RSH, 0], j[LSH, 0]), (sh_y + 0.012,), (-half, half)),
                                _box((j[RHIP, 0] - 0.01, j[LHIP, 0] + 0.01), (hip_y - 0.01,), (-half, half))])
    torso_depth = project(moment, j[[RSH, LSH, RHIP, LHIP]])[:, 2].mean()
    add(torso_depth, lambda: canvas.polygon(convex_hull(project(moment, torso_box)[:, :2]), UPPER))
    pelvis = _box((j[RHIP, 0] - r["thigh"], j[LHIP, 0] + r["thigh"]), (hip_y + 0.03, hip_y - 0.06), (-half, half))
    add(torso_depth - 0.002, lambda: canvas.polygon(convex_hull(project(moment, pelvis)[:, :2]), LOWER))
    pn = project(moment, np.stack([j[NECK], skel.head]))
    add(torso_depth - 0.001, lambda: canvas.capsule(pn[0], pn[1], radius["neck"], SKIN))

    leg_depths = []
    for hip, knee, ankle, toe in ((RHIP, RKNEE, RANK, 0), (LHIP, LKNEE, LANK, 1)):
        p = project(moment, np.stack([j[hip], j[knee], j[ankle], skel.toes[toe]]))
        depth = p[:3, 2].mean() + 0.001
        leg_depths.append(depth)
        add(depth, lambda p=p: _draw_leg(canvas, p, radius, person.lower_style))
    if person.lower_style == "skirt":
        knee_y = (j[RKNEE, 1] + j[LKNEE, 1]) / 2
        skirt = np.concatenate([
            _box((j[RHIP, 0] - r["thigh"], j[LHIP, 0] + r["thigh"]), (hip_y + 0.03,), (-half, half)),
            _box((j[RHIP, 0] - 0.09, j[LHIP, 0] + 0.09), (knee_y + 0.02,), (-half - 0.05, half + 0.05)),
        ])
        add(max(leg_depths) + 0.001, lambda: canvas.polygon(convex_hull(project(moment, skirt)[:, :2]), LOWER))

    for sh, el, wr in ((RSH, REL, RWR), (LSH, LEL, LWR)):
        p = project(moment, j[[sh, el, wr]])
        add(p[:, 2].mean() + 0.002, lambda p=p: _draw_arm(canvas, p, radius, person.sleeves))

    if person.pattern == "logo" and math.cos(moment.view.angle) > 0.3:
        logo = _box((-0.035, 0.035), (sh_y - 0.07, sh_y - 0.13), (half + 0.004,))
        add(torso_depth + 0.001, lambda: canvas.polygon(convex_hull(project(moment, logo)[:, :2]), UPPER_B))
    _add_accessory(moment, add, canvas, radius, torso_depth)
    _add_head(moment, add, canvas)

    for _, _, call in sorted(parts, key=lambda t: (t[0], t[1])):
        call()  # type: ignore[operator]
    codes = np.array(canvas.image)
    if person.pattern in ("stripes", "checks"):
        period = max(2.0, person.stripe_period * ph * SS)
        rows = (np.arange(codes.shape[0]) + (y0 - moment.foot_y) * SS) // period
        mask = (rows[:, None] % 2).astype(bool)
        if person.pattern == "checks":
            cols = (np.arange(codes.shape[1]) + (x0 - moment.centre_x) * SS) // period
            mask = mask ^ (cols[None, :] % 2).astype(bool)
        codes[(codes // LEVELS == UPPER) & mask] += (UPPER_B - UPPER) * LEVELS
    return (x0, y0), codes


def _draw_leg(canvas: _Canvas, p: np.ndarray, radius: dict[str, float], style: str) -> None:
    hip, knee, ankle, toe = p[0], p[1], p[2], p[3]
    canvas.capsule(ankle, toe, radius["shoe"], SHOES)
    thigh_label = LOWER if style in ("trousers", "shorts") else SKIN
    shin_label = LOWER if style == "trousers" else SKIN
    canvas.capsule(knee, ankle, radius["shin"], shin_label)
    canvas.capsule(hip, knee, radius["thigh"], SKIN if style == "shorts" else thigh_label)
    if style == "shorts":
        canvas.capsule(hip, hip + 0.7 * (knee - hip), radius["thigh"] * 1.08, LOWER)


def _draw_arm(canvas: _Canvas, p: np.ndarray, radius: dict[str, float], sleeves: str) -> None:
    sh, el, wr = p[0], p[1], p[2]
    canvas.capsule(sh, el, radius["upper_arm"], UPPER if sleeves == "long" else SKIN)
    canvas.capsule(el, wr, radius["forearm"], UPPER if sleeves == "long" else SKIN)
    if sleeves == "short":
        canvas.capsule(sh, sh + 0.6 * (el - sh), radius["upper_arm"] * 1.12, UPPER)
    canvas.ellipse(wr + 0.35 * (wr - el), radius["forearm"] * 1.1, radius["forearm"] * 1.25, SKIN)


def _add_accessory(moment: Moment, add, canvas: _Canvas, radius: dict[str, float], torso_depth: float) -> None:  # type: ignore[no-untyped-def]
    person, skel = moment.person, moment.skeleton
    j = skel.joints
    half = skel.torso_depth / 2
    sh_y = (j[RSH, 1] + j[LSH, 1]) / 2
    hip_y = (j[RHIP, 1] + j[LHIP, 1]) / 2
    strap = 0.011 * moment.height_px
    if person.accessory == "backpack":
        width = 0.09 * person.build
        box = _box((-width, width), (sh_y - 0.02, sh_y - 0.29), (-half - 0.01, -half - 0.12))
        pb = project(moment, box)
        add(pb[:, 2].mean(), lambda: canvas.polygon(convex_hull(pb[:, :2]), ACCESSORY))
        for sx in (-1, 1):
            ends = [(sx * 0.06, sh_y + 0.012, half + 0.003), (sx * 0.075, sh_y - 0.2, half + 0.003)]
            s = project(moment, np.array(ends))
            add(s[:, 2].mean(), lambda s=s: canvas.capsule(s[0], s[1], strap, ACCESSORY))
    elif person.accessory == "shoulder_bag":
        side = 1 if person.pid % 2 else -1
        bx = side * (j[LHIP, 0] if side > 0 else -j[RHIP, 0]) + side * 0.06
        box = _box((bx - 0.05, bx + 0.05), (hip_y + 0.08, hip_y - 0.08), (-0.035, 0.035))
        pb = project(moment, box)
        add(pb[:, 2].mean() + 0.01, lambda: canvas.polygon(convex_hull(pb[:, :2]), ACCESSORY))
        for z in (half + 0.003, -half - 0.003):
            s = project(moment, np.array([(-side * 0.07, sh_y + 0.012, z), (bx, hip_y + 0.07, z)]))
            add(s[:, 2].mean(), lambda s=s: canvas.capsule(s[0], s[1], strap, ACCESSORY))


def _add_head(moment: Moment, add, canvas: _Canvas) -> None:  # type: ignore[no-untyped-def]
    person, skel = moment.person, moment.skeleton
    hr = skel.head_radius
    rpx = hr * moment.height_px
    head = project(moment, skel.head[None])[0]
    nose = project(moment, skel.joints[NOSE][None])[0]
    face_u = nose[0] - head[0]
    front = (1 + math.cos(moment.view.angle)) / 2  # 1 facing the camera, 0 turned away
    style = person.hair_style
    if style == "long":
        back = project(moment, np.stack([skel.head + (0, -0.01, -0.5 * hr), skel.head + (0, -0.14, -0.55 * hr)]))
        add(back[:, 2].mean(), lambda: canvas.capsule(back[0], back[1], 0.95 * rpx, HAIR))
    add(head[2] + 0.01, lambda: canvas.ellipse(head, rpx * 0.92, rpx, SKIN))
    if style != "bald":
        cap = head.copy()
        cap[0] -= 0.4 * face_u
        cap[1] -= (0.42 * front + 0.05) * rpx
        add(head[2] + 0.02, lambda: canvas.ellipse(cap, rpx * 0.98, rpx * (0.78 + 0.2 * (1 - front)), HAIR))
    if style == "bun":
        bun = project(moment, (skel.head + (0, 0.7 * hr, -0.7 * hr))[None])[0]
        add(bun[2] + 0.02, lambda: canvas.ellipse(bun, 0.45 * rpx, 0.45 * rpx, HAIR))
    if person.hat:
        top = head.copy()
        top[1] -= 0.55 * rpx
        brim = head.copy()
        brim[0] += 0.35 * face_u
        brim[1] -= 0.3 * rpx
        add(head[2] + 0.03, lambda: canvas.ellipse(top, 1.02 * rpx, 0.6 * rpx, HAT))
        add(head[2] + 0.031, lambda: canvas.ellipse(brim, (0.9 + 0.4 * abs(math.sin(moment.view.angle))) * rpx,
                                                    0.18 * rpx, HAT))


@dataclass
class PersonLayers:
    x0: int
    y0: int
    alpha: np.ndarray  # h x w
    visible: np.ndarray  # h x w x 3, premultiplied by alpha
    nir: np.ndarray  # h x w, premultiplied
    thermal: np.ndarray  # h x w, premultiplied


# visible finish of a material: (ambient, diffuse, gloss); gloss whitens the middle of a part, so the
# material that decides the infrared response can be told from the visible image
FINISH = {
    "cotton": (0.4, 0.6, 0.0), "wool": (0.62, 0.38, 0.0), "denim": (0.3, 0.7, 0.06),
    "synthetic": (0.3, 0.7, 0.28), "leather": (0.15, 0.85, 0.4), "skin": (0.4, 0.6, 0.04),
    "hair": (0.35, 0.65, 0.12), "rubber": (0.4, 0.6, 0.1), "nylon": (0.3, 0.7, 0.22),
}


def code_tables(person: Identity, infrared: str = mat.DEFAULT_INFRARED) -> np.ndarray:
    """256 x 6 uint8 lookup: code -> (alpha, R, G, B, near infrared, thermal)."""
    vis_t, nir_t, th_t = label_tables(person, infrared)
    finish = {SKIN: "skin", HAIR: "hair", UPPER: person.upper_material, UPPER_B: person.upper_material,
              LOWER: person.lower_material, SHOES: "rubber", ACCESSORY: "nylon", HAT: "wool"}
    table = np.zeros((256, 6), dtype=np.float64)
    for label in range(1, N_LABELS):
        ambient, diffuse, gloss = FINISH[finish[label]]
        for level in (1, 2, 3):
            s = SHADE_OF_LEVEL[level]
            g = gloss * (1.0 if level == 3 else 0.25 if level == 2 else 0.0)
            row = table[label * LEVELS + level]
            row[0] = 1.0
            row[1:4] = vis_t[label] * (ambient + diffuse * s) * (1 - g) + g
            row[4] = nir_t[label] * (0.6 + 0.4 * s)
            row[5] = th_t[label] * (0.92 + 0.08 * s)
    return np.round(np.clip(table, 0, 1) * 255).astype(np.int64)


def person_layers(moment: Moment, height: int, width: int, infrared: str = mat.DEFAULT_INFRARED) -> PersonLayers:
    """Colour the code image for every modality with Pillow lookups, then average SS x SS blocks."""
    (x0, y0), codes = rasterize(moment, height, width)
    table = code_tables(moment.person, infrared)
    code_img = Image.fromarray(codes)
    bands = [np.asarray(code_img.point(table[:, c].tolist()).reduce(SS), dtype=np.float32) for c in range(6)]
    scale = np.float32(1 / 255)
    vis = np.stack(bands[1:4], axis=-1) * scale
    return PersonLayers(x0, y0, bands[0] * scale, vis, bands[4] * scale, bands[5] * scale)


def _composite(background: np.ndarray, layers: PersonLayers, channel: np.ndarray) -> np.ndarray:
    out = background.copy()
    h, w = layers.alpha.shape
    region = out[layers.y0:layers.y0 + h, layers.x0:layers.x0 + w]
    a = layers.alpha if region.ndim == 2 else layers.alpha[..., None]
    region *= 1 - a
    region += channel
    return out


def render(moment: Moment, camera: Camera, modality: str, seed: int, height: int, width: int,
           rng: np.random.Generator, layers: PersonLayers) -> np.ndarray:
    """The H x W x 3 uint8 image of ``moment`` (``layers``) seen by ``camera`` in ``modality`` ("V" or "I")."""
    scene = make_scene(seed, camera.scene, height, width)
    sx, sy = moment.scene_xy
    crop = (slice(sy, sy + height), slice(sx, sx + width))
    look = camera.visible if modality == "V" else camera.infrared
    if modality == "V":
        image = _composite(scene.visible[crop], layers, layers.visible)
    elif camera.thermal:
        image = _composite(scene.thermal[crop] * 0.8, layers, layers.thermal)
    else:
        image = _composite(scene.nir[crop] * look.background, layers, layers.nir)
    if moment.occluder is not None:
        image = _occlude(image, moment.occluder, modality, camera.thermal, height, width)
    return _finish(image, look, moment.light, rng, height, width)


def _occlude(image: np.ndarray, occ: tuple, modality: str, thermal: bool, height: int, width: int) -> np.ndarray:
    fx0, fy0, fx1, fy1, rgb, material = occ
    x0, x1 = int(fx0 * width), int(fx1 * width)
    y0, y1 = int(fy0 * height), int(fy1 * height)
    if modality == "V":
        image[y0:y1, x0:x1] = mat.srgb_array(rgb) * 0.85
    else:
        n, t = mat.scene_intensities(material, rgb)
        image[y0:y1, x0:x1] = t if thermal else n
    return image


@lru_cache(maxsize=32)
def _vignette(strength: float, height: int, width: int) -> np.ndarray:
    ys = (np.arange(height, dtype=np.float32) / height - 0.5)[:, None]
    xs = (np.arange(width, dtype=np.float32) / width - 0.5)[None, :]
    return (1.0 - strength * (xs * xs * 2.0 + ys * ys * 1.2)).astype(np.float32)


@lru_cache(maxsize=32)
def _gamma_lut(gamma: float) -> np.ndarray:
    return (255.0 * (np.arange(256) / 255.0) ** (1.0 / gamma) + 0.5).astype(np.uint8)


@lru_cache(maxsize=4)
def _noise_bank(height: int, width: int) -> np.ndarray:
    """Unit Gaussian noise (luminance + 3 per-channel) that images take random windows of.

    Drawing fresh noise for every pixel of every image is a large part of the rendering time; a
    random window of a fixed bank looks the same and stays deterministic.
    """
    return np.random.default_rng(0x4015E).standard_normal((2 * height, 2 * width, 4), dtype=np.float32)


def _finish(image: np.ndarray, look: Look, light: float, rng: np.random.Generator, height: int,
            width: int) -> np.ndarray:
    """Camera response: illumination, white balance, vignetting, contrast, blur, noise, JPEG."""
    gain = _vignette(look.vignette, height, width) * np.float32(look.gain * light)
    if image.ndim == 3:
        image = image * gain[..., None] * np.asarray(look.wb, dtype=np.float32)
    else:
        image = image * gain
    pixels = _gamma_lut(look.gamma)[(np.clip(image, 0, 1) * 255.0 + 0.5).astype(np.uint8)]
    img = Image.fromarray(pixels)
    radius = look.blur * (width / 144.0) * float(rng.uniform(0.7, 1.4))
    if radius > 0.15:
        img = img.filter(ImageFilter.GaussianBlur(radius))
    arr = np.asarray(img, dtype=np.float32)
    bank = _noise_bank(height, width)
    oy, ox = int(rng.integers(0, height + 1)), int(rng.integers(0, width + 1))
    noise = bank[oy:oy + height, ox:ox + width]
    if arr.ndim == 3:
        arr = arr + noise[..., :1] * np.float32(look.noise) + noise[..., 1:] * np.float32(look.noise * 0.3)
    else:
        arr = arr + noise[..., 0] * np.float32(look.noise)
    arr = np.clip(arr + 0.5, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return arr


def encode_jpeg(pixels: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def scene_offset(rng: np.random.Generator, height: int, width: int) -> tuple[int, int]:
    sh, sw = scene_size(height, width)
    return int(rng.integers(0, sw - width + 1)), int(rng.integers(0, sh - height + 1))
