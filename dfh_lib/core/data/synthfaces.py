"""SynthFaces: a procedurally drawn face dataset that needs no file and no download.

The book's default data when no real faces are present. Every image is drawn
with numpy from a seed: cartoon-like but plainly faces (head, ears, hair,
eyes with iris and pupil, brows, nose, lips), with accessories.

**Identity** (fixed for all images of one person): face width, forehead and
chin height, jaw taper, eye spacing/size/colour, iris size, brow thickness,
arch and tilt, nose length and width, mouth width and lip thickness, ear size,
skin tone, hair colour, hairstyle (short, bangs, long, volume, bald), hair
texture, beard style, lip colour, and how often the person smiles or wears
glasses.

**Per image**: pose (yaw as a rotation of the features on a sphere, roll,
translation, scale), expression (smile, slightly open mouth, brow raise, eye
openness, gaze), lighting (direction, ambient level, brightness, contrast,
colour tint), background gradient, clothing colour, sensor noise, and the
image-level attributes (eyeglasses or sunglasses, hat).

**Attributes** (CelebA names, approximate frequency over images):

=====================  =====  ===========================================
name                   freq.  level
=====================  =====  ===========================================
Bangs                  0.21   identity (fringe hairstyle)
Black_Hair             0.30   identity
Blond_Hair             0.20   identity
Brown_Hair             0.30   identity
Eyeglasses             0.27   image (some identities wear them often)
Gray_Hair              0.12   identity (the rest of hair is red/auburn)
Male                   0.50   identity
Mouth_Slightly_Open    0.30   image
Mustache               0.20   identity
No_Beard               0.74   identity (full beard or goatee otherwise)
Smiling                0.48   image (each identity has its own rate)
Wearing_Hat            0.18   image
=====================  =====  ===========================================

**Stability**: image ``j`` of identity ``i`` depends only on ``(seed, i, j,
size)``: identity ``i`` draws from ``SeedSequence(seed, spawn_key=(i,))`` and
its image ``j`` from ``SeedSequence(seed, spawn_key=(i, j))``. A small dataset
(e.g. the ``tiny`` profile) is therefore the first faces of a large one.

Rendering is vectorised over a batch of images: each part is a signed
distance function evaluated on the pixel window that holds it, and its edge
is antialiased by its coverage of the pixel (``0.5 - distance / pixel_size``),
so nothing is drawn at a higher resolution. Only exactly rounded float
operations touch the pixels (no ``sin``/``exp``), and a part never reaches
outside its window, so the bytes do not depend on how images are batched.

Speed (2 CPU cores, numpy): about 4 s for the default 100 x 20 images at
64 px, 1.5 s at 32 px.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .dataset import FaceDataset

__all__ = ["ATTRIBUTE_NAMES", "MIN_SIZE", "load_synthfaces"]

ATTRIBUTE_NAMES = (
    "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Eyeglasses", "Gray_Hair",
    "Male", "Mouth_Slightly_Open", "Mustache", "No_Beard", "Smiling", "Wearing_Hat")
MIN_SIZE = 24  # below this the eyes are under two pixels wide
_CHUNK = 128   # images rendered at once; bounds memory to ~30 MB at 64 px

_HAIR = {  # name: (rgb, probability of an identity)
    "black": ((0.09, 0.07, 0.06), 0.30), "brown": ((0.36, 0.22, 0.12), 0.30),
    "blond": ((0.86, 0.70, 0.42), 0.20), "gray": ((0.70, 0.69, 0.68), 0.12),
    "red": ((0.60, 0.25, 0.11), 0.08)}
_STYLES = ("short", "bangs", "long", "volume", "bald")
_STYLE_P = {True: (0.48, 0.15, 0.10, 0.12, 0.15), False: (0.12, 0.25, 0.45, 0.18, 0.0)}
_EYES = ((0.32, 0.19, 0.09), (0.17, 0.10, 0.06), (0.24, 0.45, 0.70),
         (0.30, 0.50, 0.30), (0.46, 0.50, 0.55))
_SKIN = ((0.98, 0.84, 0.74), (0.42, 0.27, 0.18))  # lightest, darkest
_FACE_CY = 0.1  # face centre below the canvas centre, leaving room for hair and hats


def load_synthfaces(num_identities: int = 100, images_per_identity: int = 20,
                    size: int = 64, seed: int = 0) -> FaceDataset:
    """Draw the SynthFaces dataset (see the module docstring).

    Args:
        num_identities: number of people C (>= 1).
        images_per_identity: images per person n (>= 1).
        size: image height and width in pixels (>= ``MIN_SIZE``; 32 or 64 usual).
        seed: the dataset seed; the same arguments give the same bytes.
    Returns:
        FaceDataset named ``"synthfaces"``: images (C * n, size, size, 3) uint8,
        identity by identity; labels (C * n,) in 0..C-1; identity names
        ``synth_000``, ``synth_001``, ...; attributes (C * n, 12) in {0, 1}
        named :data:`ATTRIBUTE_NAMES`.
    """
    _check_count("num_identities", num_identities, 1)
    _check_count("images_per_identity", images_per_identity, 1)
    _check_count("size", size, MIN_SIZE)
    people = [_sample_identity(_rng(seed, i)) for i in range(num_identities)]
    keys = [(i, j) for i in range(num_identities) for j in range(images_per_identity)]
    images, attributes = [], []
    for start in range(0, len(keys), _CHUNK):
        params, noise = [], []
        for i, j in keys[start:start + _CHUNK]:
            photo = _sample_image(_rng(seed, i, j), people[i], size)
            params.append(_layout(people[i], photo))
            noise.append(photo["noise"])
            attributes.append(_attributes(people[i], photo))
        images.append(_render(_stack(params), np.stack(noise)))
    digits = max(3, len(str(num_identities - 1)))
    return FaceDataset(
        images=np.concatenate(images),
        labels=np.repeat(np.arange(num_identities), images_per_identity),
        identity_names=[f"synth_{i:0{digits}d}" for i in range(num_identities)],
        name="synthfaces", attributes=np.array(attributes, np.uint8),
        attribute_names=list(ATTRIBUTE_NAMES))


def _check_count(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        hint = (f" (smaller faces lose their eyes; draw at size={MIN_SIZE} or more and "
                "shrink with FaceDataset.resized)") if name == "size" else ""
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}{hint}")


def _rng(seed: int, *key: int) -> np.random.Generator:
    """The generator of identity ``key = (i,)`` or image ``key = (i, j)``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


# --------------------------------------------------------------------------- sampling

def _sample_identity(rng: np.random.Generator) -> dict:
    """Everything fixed for one person: looks, hair, geometry, habits."""
    male = bool(rng.random() < 0.5)
    hair_name = list(_HAIR)[rng.choice(len(_HAIR), p=[p for _, p in _HAIR.values()])]
    style = _STYLES[rng.choice(len(_STYLES), p=_STYLE_P[male])]
    beard = ("none", "full", "goatee")[rng.choice(3, p=(0.5, 0.3, 0.2))] if male else "none"
    skin_t = rng.uniform() ** 1.3  # more light than dark tones, as in CelebA
    skin = np.add(np.multiply(_SKIN[0], 1 - skin_t), np.multiply(_SKIN[1], skin_t))
    skin = skin * rng.uniform(0.97, 1.03, 3)
    lipstick = not male and rng.random() < 0.4
    hair = np.multiply(_HAIR[hair_name][0], rng.uniform(0.8, 1.2)) + rng.uniform(-0.03, 0.03, 3)
    return dict(
        male=male, hair_name=hair_name, style=style, beard=beard,
        mustache=male and rng.random() < {"none": 0.15, "full": 0.75, "goatee": 0.5}[beard],
        skin=skin, hair=np.clip(hair, 0, 1), eye_colour=_EYES[rng.integers(len(_EYES))],
        lip=(np.multiply((0.75, 0.18, 0.25), rng.uniform(0.8, 1.1)) if lipstick
             else skin * (0.85, 0.55, 0.55)),
        p_glasses=0.75 if rng.random() < 0.3 else 0.06, p_smile=rng.uniform(0.25, 0.7),
        **_face_geometry(rng, male), **_hairstyle(rng, style, male))


def _face_geometry(rng: np.random.Generator, male: bool) -> dict:
    """Head and feature sizes/positions in face units (the canvas is [-1, 1]^2)."""
    u, female = rng.uniform, not male
    return dict(
        fw=u(0.36, 0.44) + 0.03 * male, fh_top=u(0.50, 0.58), fh_bot=u(0.42, 0.52),
        jaw=u(0.15, 0.45) + 0.1 * female, eye_dx=u(0.14, 0.18), eye_dy=u(-0.07, 0.0),
        eye_w=u(0.062, 0.088), eye_aspect=u(0.42, 0.6), iris=u(0.85, 1.1),
        lash=u(0.006, 0.010) + 0.008 * female, brow_gap=u(0.065, 0.1),
        brow_thick=u(0.022, 0.04) - 0.008 * female, brow_arch=u(0.0, 0.035) + 0.01 * female,
        brow_tilt=u(-0.25, 0.25), nose_len=u(0.15, 0.22), nose_w=u(0.038, 0.06),
        mouth_gap=u(0.085, 0.12), mouth_w=u(0.10, 0.145), lip_top=u(0.010, 0.022),
        lip_bot=u(0.016, 0.032), ear=u(0.9, 1.15), neck_w=u(0.15, 0.19) + 0.03 * male,
        beard_density=u(0.55, 0.95))


def _hairstyle(rng: np.random.Generator, style: str, male: bool) -> dict:
    """Hair cap thickness, hairline height over the eyes and at the temples
    (relative to the face centre), back-hair length (0 = none), texture."""
    u = rng.uniform
    fringe = style == "bangs"
    long_bangs = not male and rng.random() < 0.7
    back = {"long": u(0.75, 1.1), "volume": u(0.25, 0.45),
            "bangs": u(0.5, 1.0) if long_bangs else 0.0}.get(style, 0.0)
    return dict(
        hair_thick=u(0.12, 0.19) if style == "volume" else u(0.035, 0.075),
        hairline=u(-0.19, -0.14) if fringe else u(-0.40, -0.28),
        side_drop=u(0.12, 0.3) if back else u(-0.02, 0.08), hair_back=back,
        bald=style == "bald", part_tilt=u(-0.12, 0.12),  # a side part tilts the hairline
        jag=u(0.03, 0.05) if fringe else u(0.01, 0.025), jag_f=u(6, 12),
        hair_f1=u(25, 45), hair_f2=u(8, 16), hair_ph=u(0, 1, 2))


def _sample_image(rng: np.random.Generator, person: dict, size: int) -> dict:
    """One photo of ``person``: expression, accessories, pose, scene, noise."""
    u = rng.uniform
    smiling = bool(rng.random() < person["p_smile"])
    mouth_open = bool(rng.random() < 0.3)
    photo = dict(
        smiling=smiling, mouth_open=mouth_open,
        smile=u(0.6, 1.0) if smiling else u(-0.2, 0.15),
        open=u(0.02, 0.045) if mouth_open else 0.0,
        brow_raise=u(-0.012, 0.02) + 0.015 * (mouth_open and not smiling),
        eye_open=u(0.75, 1.1) * (0.85 if smiling else 1.0), gaze=u(-0.35, 0.35, 2),
        glasses=bool(rng.random() < person["p_glasses"]), sunglasses=rng.random() < 0.2,
        rim_colour=u(0.02, 0.4) + u(0, 0.15, 3), rim_w=u(0.012, 0.022),
        hat=bool(rng.random() < 0.18), hat_colour=_colour(rng, (0.1, 0.85), (0.2, 0.9)),
        hat_brim=u(0.07, 0.18) if rng.random() < 0.6 else 0.0, hat_height=u(0.08, 0.18),
        hair_jitter=u(-0.015, 0.015, 2),
        yaw=float(np.clip(rng.normal(0, 0.2), -0.45, 0.45)), roll=rng.normal(0, 0.06),
        scale=u(1.12, 1.24), tx=u(-0.035, 0.035), ty=u(-0.06, 0.0))
    photo.update(_scene(rng))
    photo["noise"] = rng.standard_normal((size, size, 3), dtype=np.float32) * u(0.004, 0.02)
    return photo


def _scene(rng: np.random.Generator) -> dict:
    """Light, camera response, background gradient and clothing of one photo."""
    u = rng.uniform
    light = np.array([u(-0.7, 0.7), u(-0.6, 0.2), u(0.6, 1.0)])
    return dict(
        light=light / np.linalg.norm(light), ambient=u(0.5, 0.7),
        brightness=u(-0.06, 0.06), contrast=u(0.85, 1.1), tint=u(0.94, 1.06, 3),
        bg=[_colour(rng, (0.45, 0.7), (0.03, 0.25)) for _ in range(2)],
        bg_dir=u(0, 2 * math.pi), shirt=_colour(rng, (0.08, 0.9), (0.1, 0.7)))


def _colour(rng: np.random.Generator, grey: tuple, saturation: tuple) -> np.ndarray:
    """A photo-like colour (3,): a grey level plus a partly saturated random hue."""
    hue = rng.uniform(0, 1, 3) - 0.5
    return np.clip(rng.uniform(*grey) + rng.uniform(*saturation) * hue, 0, 1)


def _attributes(person: dict, photo: dict) -> list[bool]:
    """The 12 attribute bits, in :data:`ATTRIBUTE_NAMES` order."""
    hair = person["hair_name"]
    return [person["style"] == "bangs", hair == "black", hair == "blond", hair == "brown",
            photo["glasses"], hair == "gray", person["male"], photo["mouth_open"],
            person["mustache"], person["beard"] == "none", photo["smiling"], photo["hat"]]


def _layout(person: dict, photo: dict) -> dict:
    """Flat drawing parameters of one image (floats and small arrays)."""
    out = {k: person[k] for k in (
        "fw", "fh_top", "fh_bot", "jaw", "skin", "hair", "eye_colour", "lip", "lash",
        "brow_thick", "brow_arch", "brow_tilt", "nose_w", "lip_top", "lip_bot", "neck_w",
        "beard_density", "side_drop", "part_tilt", "jag", "jag_f", "hair_back", "hair_f1",
        "hair_f2", "hair_ph")}
    out.update({k: photo[k] for k in (
        "scale", "tx", "ty", "smile", "open", "light", "ambient", "brightness", "contrast",
        "tint", "bg", "shirt", "hat_colour", "hat_brim", "hat_height", "rim_colour", "rim_w")})
    out.update(_features(person, photo))
    out.update(
        cos_r=math.cos(photo["roll"]), sin_r=math.sin(photo["roll"]),
        bg_gx=math.cos(photo["bg_dir"]), bg_gy=math.sin(photo["bg_dir"]),
        light_side=float(np.sign(photo["light"][0])),
        hairline=person["hairline"] + photo["hair_jitter"][0],
        hair_thick=person["hair_thick"] + photo["hair_jitter"][1],
        ear_show=float(not person["hair_back"]), bald=float(person["bald"]),
        full_beard=float(person["beard"] == "full"), goatee=float(person["beard"] == "goatee"),
        has_beard=float(person["beard"] != "none"),
        mustache=float(person["mustache"]), hat=float(photo["hat"]),
        glasses=float(photo["glasses"]), sunglasses=float(photo["sunglasses"]),
        teeth=1.0 if photo["smiling"] else 0.5)
    return out


def _features(person: dict, photo: dict) -> dict:
    """Where eyes, brows, ears, nose and mouth land after the head turns by ``yaw``.

    A feature at horizontal offset x0 on a head of radius R moves to
    ``R sin(asin(x0 / R) + yaw)`` and its width shrinks by the cosine ratio.
    """
    fw, yaw, eye_w = person["fw"], photo["yaw"], person["eye_w"]

    def turn(x0):
        phi = math.asin(x0 / fw)
        return fw * math.sin(phi + yaw), math.cos(phi + yaw) / math.cos(phi)

    eyes = [turn(s * person["eye_dx"]) for s in (-1, 1)]
    brows = [turn(s * (person["eye_dx"] + 0.01)) for s in (-1, 1)]
    eye_y = _FACE_CY + person["eye_dy"]
    nose_y = eye_y + person["nose_len"]
    return dict(
        face_cx=0.06 * math.sin(yaw), face_cy=_FACE_CY, hair_cx=-0.04 * math.sin(yaw),
        eye_x=[x for x, _ in eyes], eye_w=[eye_w * f for _, f in eyes], eye_y=eye_y,
        eye_h=eye_w * person["eye_aspect"] * photo["eye_open"],
        iris=person["iris"] * eye_w * person["eye_aspect"],
        gaze=photo["gaze"] * eye_w + (0.25 * eye_w * yaw, 0.0),
        brow_x=[x for x, _ in brows], brow_len=[1.3 * eye_w * f for _, f in brows],
        brow_y=eye_y - person["brow_gap"] - photo["brow_raise"],
        ear_x=[fw * math.sin(s * 1.66 + yaw) for s in (-1, 1)],  # ears sit just behind 90 deg
        ear_y=eye_y + 0.07, ear_w=0.05 * person["ear"], ear_h=0.1 * person["ear"],
        nose_x=(fw + 0.1) * math.sin(yaw), bridge_x=(fw + 0.03) * math.sin(yaw), nose_y=nose_y,
        mouth_x=(fw + 0.02) * math.sin(yaw), mouth_y=nose_y + person["mouth_gap"],
        mouth_w=person["mouth_w"] * math.cos(yaw) * (1.12 if photo["smiling"] else 1.0))


def _stack(params: list[dict]) -> dict[str, np.ndarray]:
    """A list of per-image dicts -> one float32 array per key, batch first."""
    return {k: np.array([p[k] for p in params], np.float32) for k in params[0]}


# --------------------------------------------------------------------------- drawing

def _ellipse(x, y, cx, cy, a, b):
    """Approximate signed distance to an axis-aligned ellipse (< 0 inside).

    First-order: ``(r - 1) * r / |grad r|`` with ``r`` the normalised radius;
    exact for circles and along the axes, close near every edge, which is all
    the antialiasing needs.
    """
    u, v = (x - cx) / a, (y - cy) / b
    r2 = u * u + v * v
    scale = np.sqrt((r2 + 1e-6) / ((u / a) ** 2 + (v / b) ** 2 + 1e-6 / (a * b)))
    return (np.sqrt(r2) - 1) * scale


def _tri(z):
    """Triangle wave in [0, 1] with period 1 (a cheap, exactly rounded stripe)."""
    return np.abs(2 * (z - np.floor(z)) - 1)


def _pixel_span(coords: np.ndarray, size: int) -> slice:
    """Pixel indices covering canvas coordinates ``coords`` (in [-1, 1]), plus a margin."""
    centre = (coords + 1) * (size / 2) - 0.5
    lo, hi = math.floor(centre.min()) - 2, math.ceil(centre.max()) + 3
    return slice(min(max(lo, 0), size), min(max(hi, 0), size))


@dataclass
class _Canvas:
    """A batch being drawn: the image plus face-space pixel coordinates.

    Shapes: ``img`` (B, H, W, 3) float in [0, 1]; ``x``, ``y`` (B, H, W) the
    pixel centres in the face frame (pose undone); ``px`` (B, 1, 1) the pixel
    size in that frame; ``shade`` (B, H, W) Lambertian light on the head.
    Layers may draw on a :meth:`crop` (a view of a window) of it.
    """

    img: np.ndarray
    p: dict
    x: np.ndarray
    y: np.ndarray
    px: np.ndarray
    shade: np.ndarray

    def v(self, key: str, side: int | None = None) -> np.ndarray:
        """Parameter ``key`` as (B, 1, 1), for one side (0 left, 1 right) if per side."""
        value = self.p[key] if side is None else self.p[key][:, side]
        return value[:, None, None]

    def rgb(self, key: str) -> np.ndarray:
        return self.p[key][:, None, None, :]

    def cover(self, dist: np.ndarray) -> np.ndarray:
        """Coverage in [0, 1] of each pixel by the shape with signed distance ``dist``."""
        return np.clip(0.5 - dist / self.px, 0.0, 1.0)

    def paint(self, colour: np.ndarray, alpha: np.ndarray) -> None:
        """Alpha-composite ``colour`` ((B,1,1,3) or (B,H,W,3)) over the image."""
        self.img += alpha[..., None] * (colour - self.img)

    def take(self, index: np.ndarray) -> "_Canvas":
        """A copy holding only the images at ``index``."""
        return _Canvas(self.img[index], {k: v[index] for k, v in self.p.items()},
                       self.x[index], self.y[index], self.px[index], self.shade[index])

    def crop(self, x0, x1, y0, y1) -> "_Canvas":
        """The pixel window (a view) holding the face-space box ``[x0, x1] x [y0, y1]``
        of every image; bounds are (B,) arrays or floats.

        Drawing there is exact when the shape lies in the box: pixels outside
        would get zero coverage, so the bytes do not depend on the batch.
        """
        p, size = self.p, self.img.shape[1]
        cols, rows = [], []
        for fx in (x0, x1):
            for fy in (y0, y1):
                cols.append(p["tx"] + p["scale"] * (fx * p["cos_r"] - fy * p["sin_r"]))
                rows.append(p["ty"] + p["scale"] * (fx * p["sin_r"] + fy * p["cos_r"]))
        win = np.s_[:, _pixel_span(np.concatenate(rows), size),
                    _pixel_span(np.concatenate(cols), size)]
        return _Canvas(self.img[win], p, self.x[win], self.y[win], self.px, self.shade[win])


def _render(p: dict[str, np.ndarray], noise: np.ndarray) -> np.ndarray:
    """Draw a batch: params (B, ...) float32 and sensor noise (B, S, S, 3) -> images
    (B, S, S, 3) uint8."""
    size = noise.shape[1]
    grid = (np.arange(size, dtype=np.float32) + 0.5) * (2 / size) - 1
    gx, gy = grid[None, None, :], grid[None, :, None]
    t = 0.5 + 0.5 * (gx * p["bg_gx"][:, None, None] + gy * p["bg_gy"][:, None, None])
    bg0, bg1 = p["bg"][:, None, None, 0], p["bg"][:, None, None, 1]
    img = bg0 + np.clip(t, 0, 1)[..., None] * (bg1 - bg0)
    # undo the pose: translate, rotate by -roll, then scale
    dx, dy = gx - p["tx"][:, None, None], gy - p["ty"][:, None, None]
    cos, sin, s = (p[k][:, None, None] for k in ("cos_r", "sin_r", "scale"))
    x, y = (dx * cos + dy * sin) / s, (dy * cos - dx * sin) / s
    c = _Canvas(img, p, x, y, (2 / size) / s, _head_shading(p, x, y))
    for layer in _LAYERS:
        layer(c)
    return _finish(c.img, p, noise)


def _head_shading(p: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Lambertian shading of the head as an ellipsoid, (B, H, W) in [ambient, 1]."""
    nx = (x - p["face_cx"][:, None, None]) / p["fw"][:, None, None]
    ny = (y - p["face_cy"][:, None, None]) / p["fh_top"][:, None, None]
    norm = np.sqrt(np.maximum(nx * nx + ny * ny, 1.0))  # outside: the silhouette normal
    nx, ny = nx / norm, ny / norm
    nz = np.sqrt(np.maximum(1.0 - nx * nx - ny * ny, 0.0))
    lx, ly, lz = (p["light"][:, k, None, None] for k in range(3))
    amb = p["ambient"][:, None, None]
    return amb + (1 - amb) * np.maximum(nx * lx + ny * ly + nz * lz, 0.0)


def _hair_colour(c: _Canvas, darken: float = 1.0) -> np.ndarray:
    """Hair colour with two stripe textures and the head shading, (B, H, W, 3)."""
    ph = c.p["hair_ph"]
    streak = (_tri(c.x * c.v("hair_f1") + ph[:, 0, None, None])
              + _tri((c.x + 0.4 * c.y) * c.v("hair_f2") + ph[:, 1, None, None]))
    light = darken * (0.82 + 0.14 * streak) * (0.35 + 0.75 * c.shade)
    return c.rgb("hair") * light[..., None]


def _only_where(flag: str):
    """Run a layer only on the images whose parameter ``flag`` is > 0 (saves the
    work on the rest, which that layer would leave unchanged)."""
    def decorate(layer):
        @functools.wraps(layer)
        def run(c: _Canvas) -> None:
            index = np.flatnonzero(c.p[flag] > 0)
            if len(index):
                sub = c.take(index)
                layer(sub)
                c.img[index] = sub.img
        return run
    return decorate


@_only_where("hair_back")
def _draw_back_hair(c: _Canvas) -> None:
    """Long hair behind the head and neck, down to ``hair_back`` below the face centre."""
    p = c.p
    half_w = p["fw"] + p["hair_thick"] + 0.05
    c = c.crop(p["hair_cx"] - half_w, p["hair_cx"] + half_w,
               p["face_cy"] - p["fh_top"] - p["hair_thick"], p["face_cy"] + p["hair_back"])
    top = c.v("face_cy") - c.v("fh_top") - c.v("hair_thick")
    bottom = c.v("face_cy") + c.v("hair_back")
    d = _ellipse(c.x, c.y, c.v("hair_cx"), (top + bottom) / 2,
                 c.v("fw") + c.v("hair_thick") + 0.05, (bottom - top) / 2)
    c.paint(_hair_colour(c, 0.8), c.cover(d))


def _draw_body(c: _Canvas) -> None:
    """Neck (shaded skin) and shoulders in a shirt with a round neckline."""
    c = c.crop(-3.0, 3.0, c.p["face_cy"], 3.0)  # everything below the face centre
    cx, cy = c.v("face_cx") * 0.5, c.v("face_cy")
    neck = np.maximum(np.abs(c.x - cx) - c.v("neck_w"), cy - c.y)
    under_chin = np.clip((c.y - cy - c.v("fh_bot")) * 4, 0, 1)  # shadow cast by the jaw
    c.paint(c.rgb("skin") * (0.62 + 0.25 * under_chin[..., None]), c.cover(neck))
    shoulders = _ellipse(c.x, c.y, cx, 1.22, 0.95, 0.5)
    neckline = _ellipse(c.x, c.y, cx, 0.72, c.v("neck_w") * 1.25, 0.16)
    light = 0.75 + 0.25 * np.clip(-c.x * c.v("light_side"), 0, 1)
    c.paint(c.rgb("shirt") * light[..., None], c.cover(np.maximum(shoulders, -neckline)))


def _face_distance(c: _Canvas) -> np.ndarray:
    """Signed distance to the face outline: egg shape with a tapering jaw."""
    dy = c.y - c.v("face_cy")
    below = np.clip(dy / c.v("fh_bot"), 0, 1)
    half_w = c.v("fw") * (1 - c.v("jaw") * below * below)
    half_h = np.where(dy < 0, c.v("fh_top"), c.v("fh_bot"))
    return _ellipse(c.x, c.y, c.v("face_cx"), c.v("face_cy"), half_w, half_h)


def _draw_face(c: _Canvas) -> None:
    """Ears (hidden under long hair), then the shaded face."""
    p = c.p
    for side in (0, 1):
        e = c.crop(p["ear_x"][:, side] - p["ear_w"], p["ear_x"][:, side] + p["ear_w"],
                   p["ear_y"] - p["ear_h"], p["ear_y"] + p["ear_h"])
        d = _ellipse(e.x, e.y, e.v("ear_x", side), e.v("ear_y"), e.v("ear_w"), e.v("ear_h"))
        e.paint(e.rgb("skin") * (0.8 * e.shade[..., None]), e.cover(d) * e.v("ear_show"))
    c = c.crop(p["face_cx"] - p["fw"], p["face_cx"] + p["fw"],
               p["face_cy"] - p["fh_top"], p["face_cy"] + p["fh_bot"])
    c.paint(c.rgb("skin") * c.shade[..., None], c.cover(_face_distance(c)))


@_only_where("has_beard")
def _draw_beard(c: _Canvas) -> None:
    """Full beard (jaw + sideburns) or goatee, in a darker hair colour."""
    p = c.p
    c = c.crop(p["face_cx"] - p["fw"], p["face_cx"] + p["fw"],
               p["eye_y"], p["face_cy"] + p["fh_bot"])
    fx = (c.x - c.v("face_cx")) / c.v("fw")
    line = c.v("mouth_y") - 0.045 - (c.v("mouth_y") - c.v("eye_y") - 0.03) * fx * fx
    full = c.cover(line - c.y) * c.v("full_beard")
    goatee = c.cover(_ellipse(c.x, c.y, c.v("mouth_x"), c.v("mouth_y") + 0.09,
                              c.v("mouth_w") * 0.75, 0.11)) * c.v("goatee")
    beard = np.maximum(full, goatee) * c.cover(_face_distance(c))
    c.paint(_hair_colour(c, 0.7), beard * c.v("beard_density"))


def _draw_nose(c: _Canvas) -> None:
    """Shadow along the bridge on the unlit side, a soft base, two nostrils."""
    p = c.p
    left = np.minimum(p["nose_x"], p["bridge_x"]) - p["nose_w"] - 0.05
    right = np.maximum(p["nose_x"], p["bridge_x"]) + p["nose_w"] + 0.05
    c = c.crop(left, right, p["eye_y"], p["nose_y"] + 0.04)
    dark = c.rgb("skin") * 0.5
    top, tip = c.v("eye_y"), c.v("nose_y")
    bx = c.v("bridge_x") - 0.03 * c.v("light_side")
    bridge = _ellipse(c.x, c.y, bx, (top + tip) / 2, 0.02, (tip - top) / 2)
    c.paint(dark, c.cover(bridge) * 0.35)
    base = _ellipse(c.x, c.y, c.v("nose_x"), tip, c.v("nose_w"), 0.032)
    c.paint(dark, c.cover(base) * np.clip((c.y - tip + 0.01) * 40, 0, 1) * 0.5)
    for s in (-1, 1):
        nostril = _ellipse(c.x, c.y, c.v("nose_x") + s * c.v("nose_w") * 0.5, tip + 0.01,
                           c.v("nose_w") * 0.36, 0.015)
        c.paint(dark * 0.5, c.cover(nostril) * 0.9)


def _draw_mouth(c: _Canvas) -> None:
    """Lips, and when open a dark inside with teeth; a mustache above."""
    p = c.p
    c = c.crop(p["mouth_x"] - 1.2 * p["mouth_w"], p["mouth_x"] + 1.2 * p["mouth_w"],
               p["mouth_y"] - 0.13, p["mouth_y"] + 0.13)
    u = (c.x - c.v("mouth_x")) / c.v("mouth_w")  # -1 .. 1 between the corners
    mid = c.v("mouth_y") - 0.035 * c.v("smile") * (u * u - 0.3)  # smiling lifts the corners
    bulge = np.maximum(1 - u * u, 0)
    gap = c.v("open") * np.sqrt(bulge)
    sides = (np.abs(u) - 1) * c.v("mouth_w")
    lips = np.maximum(np.maximum(mid - gap - c.v("lip_top") * (0.5 + bulge) - c.y,
                                 c.y - mid - gap - c.v("lip_bot") * (0.4 + bulge)), sides)
    c.paint(c.rgb("lip") * c.shade[..., None], c.cover(lips))
    inside = np.maximum(np.maximum(mid - gap - c.y, c.y - mid - gap), sides)
    inside = np.minimum(inside, np.maximum(np.abs(c.y - mid) - 0.004, sides))  # closed: a seam
    c.paint(np.float32((0.25, 0.06, 0.07)), c.cover(inside))
    teeth = np.maximum(inside, c.y - (mid - gap + 1.1 * c.v("open") * c.v("teeth")))
    c.paint(np.float32((0.93, 0.91, 0.86)), c.cover(teeth) * (c.v("open") > 0))
    top = mid - c.v("lip_top") - 0.012
    stache = np.maximum(np.maximum(top - 0.035 + 0.01 * u * u - c.y, c.y - top - 0.02 * u * u),
                        (np.abs(u) - 1.15) * c.v("mouth_w"))
    c.paint(_hair_colour(c, 0.7), c.cover(stache) * c.v("mustache") * c.v("beard_density"))


def _draw_eyes(c: _Canvas) -> None:
    """Per eye: lid outline, white, iris and pupil (clipped to the white), glint."""
    p, root = c.p, c
    for s in (0, 1):
        reach_x, reach_y = p["eye_w"][:, s] + p["lash"], p["eye_h"] + 2 * p["lash"]
        c = root.crop(p["eye_x"][:, s] - reach_x, p["eye_x"][:, s] + reach_x,
                      p["eye_y"] - reach_y, p["eye_y"] + reach_y)
        ex, ew, ey, eh = c.v("eye_x", s), c.v("eye_w", s), c.v("eye_y"), c.v("eye_h")
        lash = c.v("lash")
        lid = _ellipse(c.x, c.y, ex, ey - lash * 0.6, ew + lash, eh + lash * 1.4)
        c.paint(np.float32((0.12, 0.08, 0.07)), c.cover(lid))
        white = c.cover(_ellipse(c.x, c.y, ex, ey, ew, eh))
        c.paint(np.float32((0.95, 0.94, 0.92)), white)
        ix, iy, r = ex + c.v("gaze", 0), ey + c.v("gaze", 1) * 0.3, c.v("iris")
        c.paint(c.rgb("eye_colour"), white * c.cover(_ellipse(c.x, c.y, ix, iy, r, r)))
        c.paint(np.float32((0.03, 0.03, 0.03)),
                white * c.cover(_ellipse(c.x, c.y, ix, iy, 0.45 * r, 0.45 * r)))
        glint = _ellipse(c.x, c.y, ix + 0.3 * r, iy - 0.3 * r, 0.008, 0.008)
        c.paint(np.float32((1, 1, 1)), white * c.cover(glint) * 0.8)


def _draw_brows(c: _Canvas) -> None:
    """Tapered arched bands; inner ends thicker, outer ends tilted by ``brow_tilt``."""
    p, root = c.p, c
    for s, sign in ((0, -1), (1, 1)):
        reach = p["brow_arch"] + 0.03 * np.abs(p["brow_tilt"]) + p["brow_thick"]
        x, half_len = p["brow_x"][:, s], p["brow_len"][:, s]
        c = root.crop(x - half_len, x + half_len, p["brow_y"] - reach, p["brow_y"] + reach)
        t = (c.x - c.v("brow_x", s)) / c.v("brow_len", s) * sign  # -1 inner .. 1 outer
        mid = c.v("brow_y") - c.v("brow_arch") * (1 - t * t) + c.v("brow_tilt") * 0.03 * t
        half = c.v("brow_thick") * (0.6 - 0.2 * t) * 0.8
        d = np.maximum(np.abs(c.y - mid) - half, (np.abs(t) - 1) * c.v("brow_len", s))
        c.paint(_hair_colour(c, 0.6), c.cover(d) * 0.95)


def _draw_hair(c: _Canvas) -> None:
    """The hair cap above a jagged hairline (fringe for bangs, side patches if bald)."""
    p = c.p
    half_w, top = p["fw"] + p["hair_thick"], p["face_cy"] - p["fh_top"] - p["hair_thick"]
    bottom = p["face_cy"] + p["side_drop"] + 0.15  # lowest hairline: side drop + tilt + jags
    c = c.crop(p["hair_cx"] - half_w, p["hair_cx"] + half_w, top, bottom)
    x, y = c.x - c.v("hair_cx"), c.y - c.v("face_cy")
    fw, thick = c.v("fw"), c.v("hair_thick")
    head = _ellipse(x, y, 0, 0, fw + thick, c.v("fh_top") + thick)
    temple = np.clip((np.abs(x) / fw - 0.6) / 0.4, 0, 1)  # 0 over the eyes, 1 at the ears
    drop = (c.v("side_drop") - c.v("hairline")) * temple * temple
    jags = c.v("jag") * (_tri(x * c.v("jag_f")) - 0.5)
    line = c.v("hairline") + c.v("part_tilt") * x + drop + jags
    d = np.maximum(head, y - line)
    d = np.where(c.v("bald") > 0, np.maximum(d, -0.2 - y), d)  # bald: only below the crown
    c.paint(_hair_colour(c), c.cover(d))


@_only_where("hat")
def _draw_hat(c: _Canvas) -> None:
    """A crown over the hair and a brim (a thick cuff, beanie-like, when ``hat_brim`` is 0)."""
    p = c.p
    half_w = p["fw"] + p["hair_thick"] + 0.05 + p["hat_brim"]
    c = c.crop(p["hair_cx"] - half_w, p["hair_cx"] + half_w,
               p["face_cy"] - p["fh_top"] - p["hair_thick"] - p["hat_height"],
               p["face_cy"] - 0.45 * p["fh_top"] + 0.06)
    x, y = c.x - c.v("hair_cx"), c.y - c.v("face_cy")
    band = -0.45 * c.v("fh_top")
    width = c.v("fw") + c.v("hair_thick") + 0.05
    top = -(c.v("fh_top") + c.v("hair_thick") + c.v("hat_height"))
    crown = np.maximum(_ellipse(x, y, 0, band, width, band - top), y - band)
    cuff = np.where(c.v("hat_brim") > 0, np.float32(0.03), np.float32(0.06))  # beanie: thick
    brim = _ellipse(x, y, 0, band, width + c.v("hat_brim"), cuff)
    stripe = np.clip(1 - np.abs(y - band + 0.07) * 40, 0, 1)
    light = (0.45 + 0.55 * c.shade) * (1 - 0.35 * stripe)
    c.paint(c.rgb("hat_colour") * light[..., None], c.cover(np.minimum(crown, brim)))


@_only_where("glasses")
def _draw_glasses(c: _Canvas) -> None:
    """Two rims (tinted or dark lenses), a bridge and the temples to the ears."""
    p = c.p
    reach = np.maximum(p["eye_h"] * 2.3, 0.06) + p["rim_w"]
    c = c.crop(p["ear_x"][:, 0], p["ear_x"][:, 1], p["eye_y"] - reach, p["eye_y"] + reach + 0.01)
    rim = c.rgb("rim_colour")
    y0, half_w = c.v("eye_y") + 0.005, c.v("rim_w") * 0.5
    edges = []
    for s in (0, 1):
        a, b = c.v("eye_w", s) * 1.5, np.maximum(c.v("eye_h") * 2.3, 0.06)
        d = _ellipse(c.x, c.y, c.v("eye_x", s), y0, a, b)
        c.paint(np.float32((0.05, 0.05, 0.07)), c.cover(d) * (0.12 + 0.75 * c.v("sunglasses")))
        c.paint(rim, c.cover(np.abs(d) - half_w))
        edges.append((c.v("eye_x", s) - a, c.v("eye_x", s) + a))
    bar = np.abs(c.y - y0 + 0.02) - half_w * 0.8
    bridge = np.maximum(bar, np.maximum(edges[0][1] - c.x, c.x - edges[1][0]))
    temples = np.maximum(bar, np.maximum((c.v("ear_x", 0) + 0.02) - c.x,
                                         c.x - (c.v("ear_x", 1) - 0.02)))
    temples = np.maximum(temples, -np.maximum(edges[0][0] - c.x, c.x - edges[1][1]))
    c.paint(rim, c.cover(np.minimum(bridge, temples)))


_LAYERS = (_draw_back_hair, _draw_body, _draw_face, _draw_beard, _draw_nose, _draw_mouth,
           _draw_eyes, _draw_brows, _draw_hair, _draw_hat, _draw_glasses)


def _finish(img: np.ndarray, p: dict[str, np.ndarray], noise: np.ndarray) -> np.ndarray:
    """Camera: tint, contrast, brightness and sensor noise; then to uint8."""
    img = img * p["tint"][:, None, None, :]
    contrast, brightness = (p[k][:, None, None, None] for k in ("contrast", "brightness"))
    img = (img - 0.5) * contrast + 0.5 + brightness + noise
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
