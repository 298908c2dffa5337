"""Synthetic captioned scenes with a sensitive handwritten tag (the ``quick`` profile's data).

Each scene is a textured, cluttered background with one to three coloured shapes and a
small light *tag* (a plate) on which a real handwritten digit from scikit-learn's
``load_digits`` is printed. The captions describe only the coarse content that should
survive an optical blur -- object kinds, colours, counts, sizes and positions -- while the
tag is the fine sensitive detail that the captions never mention and that a privacy
attacker (:mod:`privcap.attacks.tag_reader`) tries to read. This reproduces the paper's
setting on a laptop: a lens should keep the captions (paper Eqs. 3-7) right while making
the tag unreadable.

Design choices (all deterministic from ``(seed, split, index)``):

* **Geometry is resolution independent.** A scene is sampled in normalised coordinates
  ``(x, y)`` in ``[0, 1]^2`` (``x`` to the right, ``y`` downwards, so "top" is small ``y``)
  and rendered at any ``image_size`` with anti-aliased edges. Position words are computed
  from these coordinates: "left" / "right" for ``x < 0.36`` / ``x > 0.64``, "top" /
  "bottom" likewise for ``y``; relative words ("to the left of", "above") need a
  separation of at least 0.15 along the dominant axis, otherwise "next to".
* **Objects.** Kinds: circle, square, triangle, star, ring, cross. Colours: red, green,
  blue, yellow, purple, orange (with a small random jitter of the shade). Sizes: small
  (radius 0.065-0.085 of the image side) and large (0.13-0.165). Shapes never overlap each
  other nor the tag. Kinds or colours repeat on purpose sometimes so counts matter ("two
  red circles").
* **Clutter.** Background textures (gradient, stripes, checkerboard, low-frequency blotches)
  in muted colours, small specks and thin lines, and mild pixel noise, so that neither a
  global colour nor a single pixel statistic gives the caption away.
* **The tag.** A plate of side ``glyph + 2 * margin`` pixels with ``glyph = round(S / 16)``
  and ``margin = max(1, round(S / 64))`` (12 px at ``S = 128``, 24 px at 256), light with a
  random tint, the digit in a random dark ink, at a random position. Its box
  ``tag_box = (x0, y0, x1, y1)`` is in pixels of the rendered image, ``x1`` / ``y1``
  exclusive. The digits come from ``sklearn.datasets.load_digits`` (1,797 8x8 scans of
  handwriting, label kept); at ``S = 128`` the glyph has exactly their native 8 x 8
  resolution. ``split="train"`` draws only the even-numbered samples, ``split="test"``
  only the odd-numbered ones, so an attacker can be evaluated on digit images it never
  saw; ``split="all"`` uses every sample.
* **Calibration** (tested in ``tests/test_tag_reader.py``; measured with 1,000 training and
  400 held-out scenes at ``S = 128``): a small CNN reads the tag on clean images (97 %),
  while the paper's low-resolution camera destroys it: a 16 x 16 sensor (area downsampling
  by ``S / 16``) leaves about 16 % and downsampling by 16 per side (an 8 x 8 sensor at
  128 px) about 11 %, even for a reader trained on such images (chance: 10 %). The glyph
  is one sixteenth of the image side, i.e. one pixel of a 16 x 16 sensor at any ``S``;
  shapes span two or more. Downsampling by 2 and 4 per side leaves ~90 % and ~50 %. Below
  ``S = 128`` the glyph has fewer pixels than the scanned digit and is hard to read even
  clean.

Captions are lower-case English, 2-15 words, several per image with varied wording, and
use only the words listed in :data:`CAPTION_WORDS` (no digits, never "tag", "digit",
"number" or "plate").
"""

from __future__ import annotations

import colorsys
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

KINDS: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring", "cross")
PLURALS: dict[str, str] = {k: ("crosses" if k == "cross" else k + "s") for k in KINDS}
#: Base RGB (in [0, 1]) of each colour word; every object's shade is jittered around it.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.12, 0.12),
    "green": (0.13, 0.62, 0.20),
    "blue": (0.14, 0.30, 0.86),
    "yellow": (0.96, 0.84, 0.10),
    "purple": (0.55, 0.18, 0.70),
    "orange": (0.98, 0.55, 0.08),
}
SIZES: tuple[str, ...] = ("small", "large")
#: Radius range (fraction of the image side) of each size word.
RADIUS_RANGE: dict[str, tuple[float, float]] = {"small": (0.065, 0.085), "large": (0.13, 0.165)}
BACKGROUNDS: tuple[str, ...] = ("gradient", "stripes", "checker", "blotches")
SPLITS: tuple[str, ...] = ("train", "test", "all")
COUNT_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three"}
#: Thresholds (normalised coordinates) of the position words.
POSITION_LOW, POSITION_HIGH, RELATIVE_MIN_SEPARATION = 0.36, 0.64, 0.15
#: Tag glyph side and plate margin as fractions of the image side.
TAG_GLYPH_FRACTION, TAG_MARGIN_FRACTION = 1.0 / 16.0, 1.0 / 64.0

_EXTENT = 1.15  # the farthest point of any shape lies within EXTENT * radius of its centre
_GAP = 0.03  # minimal free space between two shapes / a shape and the tag (normalised)
_TAG_NOMINAL = TAG_GLYPH_FRACTION + 2 * TAG_MARGIN_FRACTION


@dataclass(frozen=True)
class SceneObject:
    """One shape, in normalised coordinates (``x`` right, ``y`` down, image side = 1)."""

    kind: str
    colour: str
    size: str
    cx: float
    cy: float
    radius: float
    rgb: tuple[float, float, float]


@dataclass(frozen=True)
class SceneSpec:
    """Everything needed to render a scene at any resolution and to caption it."""

    objects: tuple[SceneObject, ...]
    background: str
    background_rgb: tuple[float, float, float]
    texture: tuple[float, ...]
    blotches: np.ndarray = field(compare=False)  # 6 x 6 low-frequency field in [-1, 1]
    specks: tuple[tuple[float, float, float, float], ...]  # (cx, cy, radius, gray)
    lines: tuple[tuple[float, float, float, float, float], ...]  # (x0, y0, x1, y1, gray)
    tag_label: int
    tag_digit_index: int  # index into sklearn's load_digits()
    tag_x: float  # top-left corner of the plate, normalised
    tag_y: float
    plate_rgb: tuple[float, float, float]
    ink_rgb: tuple[float, float, float]


# --------------------------------------------------------------------------- sampling


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (float(r), float(g), float(b))


def _fits(cx: float, cy: float, ext: float, placed: list[tuple[float, float, float]],
          tag_xy: tuple[float, float]) -> bool:
    for ox, oy, oext in placed:
        if math.hypot(cx - ox, cy - oy) < ext + oext + _GAP:
            return False
    tx, ty = tag_xy
    # distance from the centre to the tag rectangle
    dx = max(tx - cx, 0.0, cx - (tx + _TAG_NOMINAL))
    dy = max(ty - cy, 0.0, cy - (ty + _TAG_NOMINAL))
    return math.hypot(dx, dy) >= ext + _GAP


def sample_scene(rng: np.random.Generator, digit_indices: np.ndarray,
                 digit_labels: np.ndarray) -> SceneSpec:
    """Draw one scene description (no pixels) from ``rng``.

    Args:
        rng: random generator (its state determines the scene).
        digit_indices: indices into ``load_digits()`` that the tag may use (the split).
        digit_labels: labels of all ``load_digits()`` samples.
    """
    # tag first: it is always present
    tag_x = float(rng.uniform(0.02, 0.98 - _TAG_NOMINAL))
    tag_y = float(rng.uniform(0.02, 0.98 - _TAG_NOMINAL))
    digit_index = int(digit_indices[rng.integers(len(digit_indices))])

    num_objects = int(rng.choice([1, 2, 3], p=[0.25, 0.4, 0.35]))
    objects: list[SceneObject] = []
    placed: list[tuple[float, float, float]] = []
    for i in range(num_objects):
        if i > 0 and rng.random() < 0.3:  # repeat a kind (sometimes also the colour)
            prev = objects[int(rng.integers(len(objects)))]
            kind = prev.kind
            colour = prev.colour if rng.random() < 0.5 else str(rng.choice(list(COLOURS)))
        else:
            kind = str(rng.choice(KINDS))
            colour = str(rng.choice(list(COLOURS)))
        size = str(rng.choice(SIZES, p=[0.55, 0.45]))
        for attempt_size in (size, "small"):
            lo, hi = RADIUS_RANGE[attempt_size]
            radius = float(rng.uniform(lo, hi))
            ext = _EXTENT * radius
            centre = None
            for _ in range(60):
                cx = float(rng.uniform(ext + 0.02, 1 - ext - 0.02))
                cy = float(rng.uniform(ext + 0.02, 1 - ext - 0.02))
                if _fits(cx, cy, ext, placed, (tag_x, tag_y)):
                    centre = (cx, cy)
                    break
            if centre is not None:
                break
        if centre is None:  # no room left: the scene keeps the objects placed so far
            continue
        base = np.asarray(COLOURS[colour])
        rgb = tuple(float(v) for v in np.clip(base + rng.uniform(-0.05, 0.05, 3), 0, 1))
        objects.append(SceneObject(kind, colour, attempt_size, centre[0], centre[1], radius,
                                   rgb))  # type: ignore[arg-type]
        placed.append((centre[0], centre[1], ext))

    background = str(rng.choice(BACKGROUNDS))
    background_rgb = _hsv(rng.random(), rng.uniform(0.0, 0.2), rng.uniform(0.4, 0.88))
    texture = (
        float(rng.uniform(0.04, 0.10)),  # amplitude
        float(rng.uniform(0, math.pi)),  # orientation
        float(rng.uniform(4, 12)),  # frequency (cycles or cells per image side)
        float(rng.uniform(0, 2 * math.pi)),  # phase
    )
    blotches = rng.uniform(-1, 1, size=(6, 6)).astype(np.float32)
    specks = tuple(
        (float(rng.random()), float(rng.random()), float(rng.uniform(0.005, 0.012)),
         float(rng.uniform(0.1, 0.9)))
        for _ in range(int(rng.integers(4, 11)))
    )
    lines = []
    for _ in range(int(rng.integers(1, 4))):
        x0, y0 = rng.random(2)
        angle = rng.uniform(0, math.pi)
        length = rng.uniform(0.1, 0.35)
        lines.append((float(x0), float(y0), float(x0 + length * math.cos(angle)),
                      float(y0 + length * math.sin(angle)), float(rng.uniform(0.1, 0.9))))
    plate_rgb = _hsv(rng.random(), rng.uniform(0.0, 0.15), rng.uniform(0.85, 1.0))
    ink_rgb = _hsv(rng.random(), rng.uniform(0.0, 0.6), rng.uniform(0.03, 0.35))
    return SceneSpec(
        objects=tuple(objects), background=background, background_rgb=background_rgb,
        texture=texture, blotches=blotches, specks=specks, lines=tuple(lines),
        tag_label=int(digit_labels[digit_index]), tag_digit_index=digit_index,
        tag_x=tag_x, tag_y=tag_y, plate_rgb=plate_rgb, ink_rgb=ink_rgb,
    )


# --------------------------------------------------------------------------- rendering


def _shape_sdf(kind: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Signed distance (negative inside, normalised units) of a shape centred at 0."""
    if kind == "circle":
        return np.hypot(dx, dy) - r
    if kind == "ring":
        return np.abs(np.hypot(dx, dy) - 0.72 * r) - 0.28 * r
    if kind == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) - 0.82 * r
    if kind == "triangle":  # equilateral, apex up, circumradius 1.15 r
        big_r = _EXTENT * r
        d = dy - big_r / 2  # bottom edge, outward normal (0, 1)
        for ang in (-math.pi / 6, 7 * math.pi / 6):  # the two slanted edges
            d = np.maximum(d, dx * math.cos(ang) + dy * math.sin(ang) - big_r / 2)
        return d
    if kind == "star":  # five points, apex up, straight edges
        outer, inner = _EXTENT * r, 0.45 * _EXTENT * r
        sector = 2 * math.pi / 5
        theta = np.arctan2(dy, dx) + math.pi / 2  # 0 towards the top apex
        psi = np.abs(np.mod(theta + sector / 2, sector) - sector / 2)  # fold into a wedge
        rho = np.hypot(dx, dy)
        px, py = rho * np.cos(psi), rho * np.sin(psi)
        # edge from the apex (outer, 0) to the inner vertex at angle sector / 2
        ex, ey = inner * math.cos(sector / 2) - outer, inner * math.sin(sector / 2)
        norm = math.hypot(ex, ey)
        return ((px - outer) * ey - py * ex) / norm
    if kind == "cross":
        arm, half = 0.95 * r, 0.32 * r
        bar_h = np.maximum(np.abs(dx) - arm, np.abs(dy) - half)
        bar_v = np.maximum(np.abs(dx) - half, np.abs(dy) - arm)
        return np.minimum(bar_h, bar_v)
    raise ValueError(f"unknown shape kind {kind!r}; expected one of {KINDS}")


def _paint(img: np.ndarray, centres: np.ndarray, box: tuple[float, float, float, float],
           sdf: Callable[[np.ndarray, np.ndarray], np.ndarray], rgb: Sequence[float],
           origin: tuple[float, float]) -> None:
    """Alpha-blend a shape given by ``sdf`` (relative to ``origin``) inside ``box``."""
    size = img.shape[0]
    x0 = max(0, int(math.floor(box[0] * size)) - 1)
    y0 = max(0, int(math.floor(box[1] * size)) - 1)
    x1 = min(size, int(math.ceil(box[2] * size)) + 1)
    y1 = min(size, int(math.ceil(box[3] * size)) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    dx = centres[None, x0:x1] - origin[0]
    dy = centres[y0:y1, None] - origin[1]
    cover = np.clip(0.5 - sdf(dx, dy) * size, 0.0, 1.0)[..., None]
    region = img[y0:y1, x0:x1]
    region *= 1.0 - cover
    region += cover * np.asarray(rgb, dtype=np.float32)


def _background(spec: SceneSpec, centres: np.ndarray) -> np.ndarray:
    amp, angle, freq, phase = spec.texture
    xx, yy = centres[None, :], centres[:, None]
    if spec.background == "gradient":
        field = 2.0 * ((xx - 0.5) * math.cos(angle) + (yy - 0.5) * math.sin(angle))
    elif spec.background == "stripes":
        field = np.sin(2 * math.pi * freq * (xx * math.cos(angle) + yy * math.sin(angle)) + phase)
    elif spec.background == "checker":
        cells = max(2, int(freq))
        field = np.where((np.floor(xx * cells) + np.floor(yy * cells)) % 2 == 0, 1.0, -1.0)
    else:  # blotches: bilinear upsampling of a 6 x 6 random field
        grid = torch.from_numpy(spec.blotches)[None, None]
        field = F.interpolate(grid, size=(len(centres),) * 2, mode="bilinear",
                              align_corners=False)[0, 0].numpy()
    field = np.broadcast_to(field, (len(centres), len(centres))).astype(np.float32)
    base = np.asarray(spec.background_rgb, dtype=np.float32)
    return np.clip(base[None, None, :] + 1.5 * amp * field[..., None], 0.0, 1.0)


def tag_geometry(spec: SceneSpec, image_size: int) -> tuple[int, int, int, int, int]:
    """Pixel geometry of the tag: ``(x0, y0, x1, y1, margin_px)`` at ``image_size``."""
    glyph = max(1, round(image_size * TAG_GLYPH_FRACTION))
    margin = max(1, round(image_size * TAG_MARGIN_FRACTION))
    plate = glyph + 2 * margin
    x0 = min(max(0, round(spec.tag_x * image_size)), image_size - plate)
    y0 = min(max(0, round(spec.tag_y * image_size)), image_size - plate)
    return x0, y0, x0 + plate, y0 + plate, margin


def render_scene(spec: SceneSpec, image_size: int, glyph: np.ndarray,
                 rng: np.random.Generator, noise_std: float = 0.01) -> np.ndarray:
    """Render ``spec`` as an ``image_size x image_size x 3`` float32 array in [0, 1].

    Args:
        spec: the scene.
        image_size: side in pixels.
        glyph: the tag digit resampled to the glyph side, ink coverage in [0, 1].
        rng: generator of the pixel noise.
        noise_std: standard deviation of the additive Gaussian pixel noise.
    """
    centres = (np.arange(image_size, dtype=np.float32) + 0.5) / image_size
    img = _background(spec, centres).copy()
    for cx, cy, rad, gray in spec.specks:
        _paint(img, centres, (cx - rad, cy - rad, cx + rad, cy + rad),
               lambda dx, dy, rad=rad: np.hypot(dx, dy) - rad, (gray,) * 3, (cx, cy))
    for x0, y0, x1, y1, gray in spec.lines:
        half = 0.004
        length = math.hypot(x1 - x0, y1 - y0)
        ux, uy = (x1 - x0) / length, (y1 - y0) / length

        def segment(dx, dy, ux=ux, uy=uy, length=length, half=half):
            t = np.clip(dx * ux + dy * uy, 0.0, length)
            return np.hypot(dx - t * ux, dy - t * uy) - half

        box = (min(x0, x1) - half, min(y0, y1) - half, max(x0, x1) + half, max(y0, y1) + half)
        _paint(img, centres, box, segment, (gray,) * 3, (x0, y0))
    for obj in spec.objects:
        ext = _EXTENT * obj.radius
        _paint(img, centres, (obj.cx - ext, obj.cy - ext, obj.cx + ext, obj.cy + ext),
               lambda dx, dy, obj=obj: _shape_sdf(obj.kind, dx, dy, obj.radius),
               obj.rgb, (obj.cx, obj.cy))
    if noise_std > 0:
        img += rng.normal(0.0, noise_std, img.shape).astype(np.float32)
    # the tag: plate, then ink
    x0, y0, x1, y1, margin = tag_geometry(spec, image_size)
    plate = np.asarray(spec.plate_rgb, dtype=np.float32)
    ink = np.asarray(spec.ink_rgb, dtype=np.float32)
    img[y0:y1, x0:x1] = plate
    g = glyph.shape[0]
    cover = glyph[..., None]
    img[y0 + margin : y0 + margin + g, x0 + margin : x0 + margin + g] = (
        plate * (1.0 - cover) + ink * cover
    )
    return np.clip(img, 0.0, 1.0)


# --------------------------------------------------------------------------- captions


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _phrase(obj: SceneObject, size: bool = True, colour: bool = True) -> str:
    words = ([obj.size] if size else []) + ([obj.colour] if colour else []) + [obj.kind]
    return f"{_article(words[0])} {' '.join(words)}"


def _join(parts: Sequence[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def position_phrase(obj: SceneObject, rng: np.random.Generator | None = None,
                    short: bool = False) -> str:
    """Absolute position words of an object ("on the left", "in the top right corner").

    Without ``rng`` the first wording is used; ``short`` keeps to the shortest wordings.
    """
    col = "left" if obj.cx < POSITION_LOW else "right" if obj.cx > POSITION_HIGH else ""
    row = "top" if obj.cy < POSITION_LOW else "bottom" if obj.cy > POSITION_HIGH else ""
    def pick(options: list[str]) -> str:
        if short:
            options = [o for o in options if len(o.split()) == min(len(p.split()) for p in options)]
        return options[int(rng.integers(len(options)))] if rng is not None else options[0]

    if row and col:
        return pick([f"in the {row} {col} corner", f"at the {row} {col}"])
    if col:
        return pick([f"on the {col}", f"on the {col} side"])
    if row:
        return pick([f"at the {row}", f"near the {row}"])
    return pick(["in the centre", "in the middle"])


def relation(a: SceneObject, b: SceneObject) -> str:
    """Where ``a`` is relative to ``b``: "to the left of", "above", ..., or "next to"."""
    dx, dy = b.cx - a.cx, b.cy - a.cy
    if abs(dx) >= abs(dy) and abs(dx) >= RELATIVE_MIN_SEPARATION:
        return "to the left of" if dx > 0 else "to the right of"
    if abs(dy) > abs(dx) and abs(dy) >= RELATIVE_MIN_SEPARATION:
        return "above" if dy > 0 else "below"
    return "next to"


def _groups(objects: Sequence[SceneObject], by_colour: bool) -> list[str]:
    keys = [(o.colour if by_colour else "", o.kind) for o in objects]
    counts = Counter(keys)
    parts = []
    for (colour, kind), n in counts.items():
        words = [colour] if colour else []
        if n == 1:
            parts.append(f"{_article((words + [kind])[0])} {' '.join(words + [kind])}")
        else:
            parts.append(" ".join([COUNT_WORDS[n]] + words + [PLURALS[kind]]))
    return parts


def _cap_list(objs: Sequence[SceneObject], rng: np.random.Generator) -> str:
    intros = ["", "the image shows ", "a picture of ", "we can see "]
    if len(objs) == 1:
        intros.append("there is ")
    sizes = len(objs) < 3
    return intros[int(rng.integers(len(intros)))] + _join([_phrase(o, size=sizes) for o in objs])


def _cap_count(objs: Sequence[SceneObject], rng: np.random.Generator) -> str:
    if len(objs) == 1:
        o = objs[0]
        return str(rng.choice([f"a single {o.colour} {o.kind}",
                               f"only one shape, {_phrase(o)}",
                               f"one {o.size} {o.colour} {o.kind} on a textured background"]))
    noun = str(rng.choice(["shapes", "objects"]))
    where = str(rng.choice(["", " in the picture", " in the image"]))
    detail = _join(_groups(objs, by_colour=False))
    return str(rng.choice([f"{COUNT_WORDS[len(objs)]} {noun}{where}",
                           f"{COUNT_WORDS[len(objs)]} {noun}: {detail}"]))


def _cap_groups(objs: Sequence[SceneObject], rng: np.random.Generator) -> str:
    by_colour = len(objs) == 1 or bool(rng.random() < 0.6)
    return _join(_groups(objs, by_colour=by_colour))


def _cap_relative(objs: Sequence[SceneObject], rng: np.random.Generator) -> str:
    if len(objs) == 1:
        return _cap_position(objs, rng)
    pairs = [(a, b) for a in objs for b in objs if a is not b]
    a, b = pairs[int(rng.integers(len(pairs)))]
    return f"{_phrase(a, size=False)} {relation(a, b)} {_phrase(b, size=False)}"


def _cap_position(objs: Sequence[SceneObject], rng: np.random.Generator) -> str:
    order = rng.permutation(len(objs))
    first = objs[int(order[0])]
    two = len(objs) >= 2 and bool(rng.random() < 0.5)
    text = f"{_phrase(first, size=not two)} {position_phrase(first, rng, short=two)}"
    if two:
        second = objs[int(order[1])]
        text += f" and {_phrase(second, size=False)} {position_phrase(second, rng, short=True)}"
    return text


def _cap_size(objs: Sequence[SceneObject], rng: np.random.Generator) -> str:
    if len(objs) == 1:
        o = objs[0]
        return str(rng.choice([f"a {o.size} {o.kind} in {o.colour}",
                               f"a {o.kind} coloured {o.colour}, {o.size}"]))
    sizes = {o.size for o in objs}
    if len(sizes) == 1:
        size = sizes.pop()
        return str(rng.choice([f"{COUNT_WORDS[len(objs)]} {size} shapes",
                               f"all the shapes are {size}"]))
    largest = max(objs, key=lambda o: o.radius)
    smallest = min(objs, key=lambda o: o.radius)
    return str(rng.choice([f"the largest shape is {_phrase(largest, size=False)}",
                           f"{_phrase(largest)} and {_phrase(smallest)}"]))


def _cap_colours(objs: Sequence[SceneObject], rng: np.random.Generator) -> str:
    colours = list(dict.fromkeys(o.colour for o in objs))
    if len(objs) == 1:
        o = objs[0]
        return f"{_article(o.colour)} {o.colour} {o.kind} on its own"
    if len(colours) == 1:
        return f"{COUNT_WORDS[len(objs)]} {colours[0]} shapes"
    return str(rng.choice([f"{_join(colours)} shapes", f"shapes in {_join(colours)}"]))


#: Caption templates; an image's captions use distinct templates in a random order.
TEMPLATES: tuple[Callable[[Sequence[SceneObject], np.random.Generator], str], ...] = (
    _cap_list, _cap_count, _cap_groups, _cap_relative, _cap_position, _cap_size, _cap_colours,
)

#: Every word a caption may contain (lower case, punctuation removed).
CAPTION_WORDS: frozenset[str] = frozenset(
    set(KINDS) | set(PLURALS.values()) | set(COLOURS) | set(SIZES) | set(COUNT_WORDS.values())
    | set(
        "a an and the image shows picture of we can see there is only shape shapes objects "
        "in on single textured background to left right above below next top bottom corner "
        "at side near centre middle largest all are coloured its own".split()
    )
)


def caption_scene(spec: SceneSpec, num_captions: int, rng: np.random.Generator) -> list[str]:
    """``num_captions`` captions of ``spec`` (distinct templates first, then repeats)."""
    objs = spec.objects
    order = list(rng.permutation(len(TEMPLATES)))
    captions: list[str] = []
    attempts = 0
    while len(captions) < num_captions:
        template = TEMPLATES[order[attempts % len(order)]]
        text = template(objs, rng)
        attempts += 1
        if text not in captions or attempts > 4 * num_captions:
            captions.append(text)
    return captions


# --------------------------------------------------------------------------- data set


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.images.astype(np.float32) / 16.0), bunch.target.astype(np.int64)


class SyntheticScenes(Dataset):
    """Deterministic synthetic captioned scenes with a sensitive handwritten-digit tag.

    Items are generated on the fly (a few milliseconds each at 128 px) from
    ``(seed, split, index)``; nothing is downloaded or cached on disk.

    Args:
        num_images: number of scenes (``len(dataset)``).
        image_size: side of the square images in pixels (>= 16).
        seed: base seed; two data sets with the same arguments are identical.
        captions_per_image: captions per scene (>= 1).
        split: which handwritten digits the tags use: "train" (even-numbered samples of
            ``load_digits``), "test" (odd-numbered) or "all". The split also enters the
            seed, so train and test scenes differ.
        noise_std: standard deviation of the Gaussian pixel noise (0 disables it).

    Each item is a dict with ``image`` (``3 x S x S`` float32 in [0, 1]), ``captions``
    (list of str), ``image_id`` (int, the index), ``tag_label`` (int 0-9) and ``tag_box``
    (``(x0, y0, x1, y1)`` pixels, ``x1``/``y1`` exclusive).
    """

    def __init__(self, num_images: int, image_size: int = 128, seed: int = 0,
                 captions_per_image: int = 5, *, split: str = "train",
                 noise_std: float = 0.01) -> None:
        if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 0:
            raise ValueError(f"num_images must be a non-negative integer, got {num_images!r}")
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 16:
            raise ValueError(f"image_size must be an integer >= 16 pixels, got {image_size!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if not isinstance(captions_per_image, int) or captions_per_image < 1:
            raise ValueError(
                f"captions_per_image must be a positive integer, got {captions_per_image!r}"
            )
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not noise_std >= 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
        self.num_images = num_images
        self.image_size = image_size
        self.seed = seed
        self.captions_per_image = captions_per_image
        self.split = split
        self.noise_std = float(noise_std)
        digits, labels = _digits()
        everything = np.arange(len(labels))
        self.digit_indices = {"train": everything[0::2], "test": everything[1::2],
                              "all": everything}[split]
        self._labels = labels
        glyph = max(1, round(image_size * TAG_GLYPH_FRACTION))
        resized = F.interpolate(torch.from_numpy(digits)[:, None], size=(glyph, glyph),
                                mode="bilinear", align_corners=False)
        self._glyphs = resized[:, 0].clamp(0, 1).numpy()

    def __len__(self) -> int:
        return self.num_images

    def _streams(self, index: int) -> list[np.random.SeedSequence]:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an integer, got {type(index).__name__}")
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} scenes")
        root = np.random.SeedSequence([self.seed, SPLITS.index(self.split), int(index)])
        return root.spawn(3)  # scene, captions, pixel noise

    def scene(self, index: int) -> SceneSpec:
        """The scene description of item ``index`` (no rendering)."""
        scene_ss = self._streams(index)[0]
        return sample_scene(np.random.default_rng(scene_ss), self.digit_indices, self._labels)

    def captions(self, index: int) -> list[str]:
        """The captions of item ``index`` (no rendering)."""
        scene_ss, caption_ss, _ = self._streams(index)
        spec = sample_scene(np.random.default_rng(scene_ss), self.digit_indices, self._labels)
        return caption_scene(spec, self.captions_per_image, np.random.default_rng(caption_ss))

    def __getitem__(self, index: int) -> dict[str, Any]:
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool) and index < 0:
            index += self.num_images
        scene_ss, caption_ss, noise_ss = self._streams(index)
        spec = sample_scene(np.random.default_rng(scene_ss), self.digit_indices, self._labels)
        pixels = render_scene(spec, self.image_size, self._glyphs[spec.tag_digit_index],
                              np.random.default_rng(noise_ss), self.noise_std)
        x0, y0, x1, y1, _ = tag_geometry(spec, self.image_size)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))),
            "captions": caption_scene(spec, self.captions_per_image,
                                      np.random.default_rng(caption_ss)),
            "image_id": int(index),
            "tag_label": spec.tag_label,
            "tag_box": (x0, y0, x1, y1),
        }

    def references(self) -> dict[int, list[str]]:
        """``{image_id: captions}`` for every item (no rendering)."""
        return {i: self.captions(i) for i in range(self.num_images)}

    def describe(self, limit: int | None = 2000, top_words: int = 20) -> dict[str, Any]:
        """Statistics of the captions and scenes (computed without rendering).

        Args:
            limit: look at the first ``limit`` items only (None: all).
            top_words: how many of the most frequent words to list.

        Returns:
            A JSON-serialisable dict: ``num_images`` (looked at), ``num_captions``,
            ``caption_length`` (``min``, ``max``, ``mean``, ``histogram`` {words: count}),
            ``vocabulary_size``, ``top_words`` [[word, count], ...], ``objects_per_image``,
            ``kinds``, ``colours``, ``sizes``, ``tag_labels`` (counts).
        """
        n = self.num_images if limit is None else min(limit, self.num_images)
        lengths: Counter[int] = Counter()
        words: Counter[str] = Counter()
        per_image: Counter[int] = Counter()
        kinds: Counter[str] = Counter()
        colours: Counter[str] = Counter()
        sizes: Counter[str] = Counter()
        labels: Counter[int] = Counter()
        for i in range(n):
            scene_ss, caption_ss, _ = self._streams(i)
            spec = sample_scene(np.random.default_rng(scene_ss), self.digit_indices,
                                self._labels)
            for caption in caption_scene(spec, self.captions_per_image,
                                         np.random.default_rng(caption_ss)):
                tokens = caption.replace(",", " ").replace(":", " ").split()
                lengths[len(tokens)] += 1
                words.update(tokens)
            per_image[len(spec.objects)] += 1
            kinds.update(o.kind for o in spec.objects)
            colours.update(o.colour for o in spec.objects)
            sizes.update(o.size for o in spec.objects)
            labels[spec.tag_label] += 1
        total = sum(lengths.values())
        return {
            "num_images": n,
            "num_captions": total,
            "caption_length": {
                "min": min(lengths) if lengths else 0,
                "max": max(lengths) if lengths else 0,
                "mean": (sum(k * v for k, v in lengths.items()) / total) if total else 0.0,
                "histogram": {int(k): v for k, v in sorted(lengths.items())},
            },
            "vocabulary_size": len(words),
            "top_words": [[w, c] for w, c in words.most_common(top_words)],
            "objects_per_image": {int(k): v for k, v in sorted(per_image.items())},
            "kinds": dict(kinds.most_common()),
            "colours": dict(colours.most_common()),
            "sizes": dict(sizes.most_common()),
            "tag_labels": {int(k): v for k, v in sorted(labels.items())},
        }
