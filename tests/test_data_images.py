"""Image files -> RGB tensors (privcap.data.images) and the shared transforms policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from privcap.data.images import ImageLoadError, load_image
from privcap.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    denormalize_from_backbone,
    normalize_for_backbone,
    resize_and_crop,
)

# ----------------------------------------------------------------------------- load_image


def test_rgb_png_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.shape == (3, 5, 7) and img.dtype == torch.float32
    assert torch.equal(img, torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)


def test_grayscale_is_replicated(tmp_path):
    Image.fromarray(np.full((4, 6), 100, np.uint8), mode="L").save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    assert img.shape == (3, 4, 6)
    assert torch.allclose(img, torch.full((3, 4, 6), 100 / 255))


def test_bilevel_image(tmp_path):
    bits = Image.new("1", (3, 2), 1)
    bits.putpixel((0, 0), 0)
    bits.save(tmp_path / "b.png")
    img = load_image(tmp_path / "b.png")
    assert img[:, 0, 0].tolist() == [0.0, 0.0, 0.0]
    assert img[:, 1, 2].tolist() == [1.0, 1.0, 1.0]


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 128)  # half-transparent red
    rgba[0, 1] = (0, 0, 255, 255)  # opaque blue
    rgba[1, :] = (0, 0, 0, 0)  # transparent black
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "t.png")
    img = load_image(tmp_path / "t.png")
    a = 128 / 255
    assert torch.allclose(img[:, 0, 0], torch.tensor([1.0, 1 - a, 1 - a]), atol=1e-6)
    assert torch.allclose(img[:, 0, 1], torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(img[:, 1, :], torch.ones(3, 2))


def test_gray_alpha_and_transparent_palette(tmp_path):
    Image.new("LA", (2, 2), (0, 0)).save(tmp_path / "la.png")
    assert torch.allclose(load_image(tmp_path / "la.png"), torch.ones(3, 2, 2))
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / "p.png", transparency=1)
    img = load_image(tmp_path / "p.png")
    assert img[:, 0, 0].tolist() == [1.0, 0.0, 0.0]  # opaque palette entry: red
    assert img[:, 0, 1].tolist() == [1.0, 1.0, 1.0]  # transparent entry: white


def test_palette_without_transparency(tmp_path):
    pal = Image.new("P", (1, 1))
    pal.putpalette([10, 20, 30] + [0] * 765)
    pal.save(tmp_path / "p.gif")
    assert torch.allclose(load_image(tmp_path / "p.gif")[:, 0, 0], torch.tensor([10, 20, 30]) / 255)


def test_cmyk_is_converted(tmp_path):
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "c.tif")  # pure red ink mix
    img = load_image(tmp_path / "c.tif")
    assert torch.allclose(img, torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 4, 4))
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=95)
    jpg = load_image(tmp_path / "c.jpg")
    assert jpg.shape == (3, 16, 16)
    assert (jpg.mean(dim=(1, 2)) - torch.tensor([1.0, 0.0, 0.0])).abs().max() < 0.1


def test_16bit_grayscale_is_scaled(tmp_path):
    data = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(data).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    img = load_image(tmp_path / "g16.png")
    assert torch.allclose(img[0, 0], torch.tensor([0.0, 32768 / 65535, 1.0]))
    assert torch.equal(img[0], img[2])


def test_32bit_integer_and_float_files(tmp_path):
    Image.fromarray(np.array([[0, 65535]], np.int32)).save(tmp_path / "i.tif")
    assert torch.allclose(load_image(tmp_path / "i.tif")[1, 0], torch.tensor([0.0, 1.0]))
    Image.fromarray(np.array([[0, 70000]], np.int32)).save(tmp_path / "big.tif")
    with pytest.raises(ImageLoadError, match=r"big\.tif.*70000"):
        load_image(tmp_path / "big.tif")
    Image.fromarray(np.array([[0.25, 1.0]], np.float32)).save(tmp_path / "f.tif")
    assert torch.allclose(load_image(tmp_path / "f.tif")[2, 0], torch.tensor([0.25, 1.0]))
    Image.fromarray(np.array([[0.25, 3.0]], np.float32)).save(tmp_path / "f3.tif")
    with pytest.raises(ImageLoadError, match=r"f3\.tif"):
        load_image(tmp_path / "f3.tif")


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((2, 4, 3), np.uint8)  # 2 rows, 4 columns; left column red
    pixels[:, 0] = (255, 0, 0)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    image.save(tmp_path / "o.png", exif=exif.tobytes())
    img = load_image(tmp_path / "o.png")
    assert img.shape == (3, 4, 2)  # displayed upright: 4 rows, 2 columns
    assert torch.allclose(img[:, 0, :], torch.tensor([1.0, 0.0, 0.0]).view(3, 1).expand(3, 2))
    assert img[0, 1:, :].max() == 0.0


def test_truncated_jpeg_fails_naming_the_file(tmp_path):
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "x.jpg")
    data = (tmp_path / "x.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match=r"cut\.jpg"):
        load_image(tmp_path / "cut.jpg")


def test_truncated_png_and_garbage_fail(tmp_path):
    Image.fromarray(np.zeros((32, 32, 3), np.uint8) + 7).save(tmp_path / "x.png")
    data = (tmp_path / "x.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:60])
    with pytest.raises(ImageLoadError, match=r"cut\.png"):
        load_image(tmp_path / "cut.png")
    (tmp_path / "junk.jpg").write_bytes(b"this is not an image at all")
    with pytest.raises(ImageLoadError, match=r"junk\.jpg.*not a recognised image"):
        load_image(tmp_path / "junk.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageLoadError, match=r"empty\.png"):
        load_image(tmp_path / "empty.png")
    assert issubclass(ImageLoadError, ValueError)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.png"):
        load_image(tmp_path / "nothing.png")
    with pytest.raises(FileNotFoundError, match="not a file"):
        load_image(tmp_path)


def test_real_coco_grayscale_photo(coco_mini_dir):
    """coco-mini holds one grayscale JPEG among 158 RGB ones: it loads as 3 equal planes."""
    gray = []
    for path in sorted((coco_mini_dir / "val2017").glob("*.jpg")):
        if Image.open(path).mode == "L":
            gray.append(path)
    assert len(gray) == 1
    img = load_image(gray[0])
    assert img.shape[0] == 3 and torch.equal(img[0], img[1]) and torch.equal(img[1], img[2])


# ----------------------------------------------------------------------------- transforms


def test_resize_and_crop_landscape_and_portrait():
    wide = torch.rand(3, 60, 120)
    out = resize_and_crop(wide, 30)
    assert out.shape == (3, 30, 30)
    expected = F.interpolate(
        wide[None], size=(30, 60), mode="bilinear", align_corners=False, antialias=True
    )[0, :, :, 15:45].clamp(0, 1)
    assert torch.allclose(out, expected)
    tall = torch.rand(2, 3, 90, 45)
    assert resize_and_crop(tall, 20).shape == (2, 3, 20, 20)


def test_resize_and_crop_keeps_the_centre():
    img = torch.zeros(3, 10, 30)
    img[:, :, 10:20] = 1.0  # a bright centre band, dark borders
    out = resize_and_crop(img, 10)
    assert torch.allclose(out, torch.ones(3, 10, 10))


def test_resize_antialias_is_explicit():
    stripes = torch.zeros(3, 64, 64)
    stripes[:, :, ::2] = 1.0  # finest possible stripes: aliasing shows at once
    smooth = resize_and_crop(stripes, 21)[..., 1:-1]  # interior (edges are replicated)
    aliased = resize_and_crop(stripes, 21, antialias=False)[..., 1:-1]
    assert smooth.std() < 0.05  # low-passed close to the mean
    assert abs(smooth.mean().item() - 0.5) < 0.02
    assert aliased.std() > 0.2  # point sampling keeps (aliased) stripes


def test_same_size_is_a_copy():
    img = torch.rand(3, 8, 8)
    out = resize_and_crop(img, 8)
    assert torch.equal(out, img) and out.data_ptr() != img.data_ptr()


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_resize_rejects_bad_size(size):
    with pytest.raises(ValueError, match="size"):
        resize_and_crop(torch.rand(3, 8, 8), size)


def test_transforms_reject_bad_images():
    with pytest.raises(ValueError, match="3xHxW"):
        resize_and_crop(torch.rand(8, 8), 4)
    with pytest.raises(ValueError, match="3xHxW"):
        normalize_for_backbone(torch.rand(1, 8, 8))
    with pytest.raises(ValueError, match="float"):
        resize_and_crop(torch.zeros(3, 8, 8, dtype=torch.uint8), 4)


def test_normalize_for_backbone_values():
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1).expand(3, 4, 4)
    assert torch.allclose(normalize_for_backbone(mean), torch.zeros(3, 4, 4), atol=1e-6)
    ones = normalize_for_backbone(torch.ones(2, 3, 2, 2))
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(ones[1, :, 0, 0], expected)
    x = torch.rand(3, 5, 5)
    assert torch.allclose(denormalize_from_backbone(normalize_for_backbone(x)), x, atol=1e-6)
