"""The learned blind restorer: losses, gradients, training, split, blur, competence control.

The full-size competence control (hundreds of 128-pixel images, SSIM >= 0.8 on held-out
images) takes minutes and is measured outside the test suite; here a tiny run must restore
a mild blur better than the blurred input.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from torch import nn

from privcap.attacks.learned import (
    PatchDiscriminator,
    PerceptualLoss,
    RestorerGenerator,
    augment_crops,
    competence_control,
    discriminator_loss,
    gaussian_blur,
    generator_loss_terms,
    restore,
    split_pairs,
    train_restorer,
)
from privcap.captioning.weights import load_mobilenet_v2_state_dict
from privcap.data.photos import sample_photos


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


class _Constant(nn.Module):
    """A discriminator that answers ``value`` for every patch."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 1, 4, 4), self.value)


@pytest.fixture(scope="module")
def photo_crops() -> dict[str, torch.Tensor]:
    """64-pixel crops of the bundled photos: four photos to train on, two held out."""
    photos = sample_photos()
    train = augment_crops([photos[n] for n in ("astronaut", "coffee", "chelsea", "rocket")],
                          64, 6, seed=0)
    test = augment_crops([photos[n] for n in ("grace_hopper", "camera")], 64, 3, seed=1)
    return {"train": train, "test": test}


# --------------------------------------------------------------------------- losses
def test_loss_formulas_by_hand():
    target = torch.full((2, 3, 32, 32), 0.5)
    restored = target + 0.1
    perceptual = PerceptualLoss(pretrained=False)
    terms = generator_loss_terms(restored, target, perceptual, _Constant(0.25), "l1")
    assert terms["content"].item() == pytest.approx(0.1, abs=1e-6)
    assert terms["adversarial"].item() == pytest.approx((0.25 - 1.0) ** 2)
    mse = generator_loss_terms(restored, target, perceptual, _Constant(0.25), "mse")
    assert mse["content"].item() == pytest.approx(0.01, abs=1e-6)
    # LSGAN discriminator: ((D(real) - 1)^2 + D(fake)^2) / 2
    assert discriminator_loss(_Constant(0.25), target, restored).item() == pytest.approx(
        0.5 * ((0.25 - 1.0) ** 2 + 0.25**2)
    )
    assert perceptual(target, target).item() == 0.0
    assert terms["perceptual"].item() > 0.0
    with pytest.raises(ValueError, match="content_loss"):
        generator_loss_terms(restored, target, perceptual, _Constant(0.0), "ssim")


def test_each_loss_weight_changes_the_gradient():
    torch.manual_seed(0)
    generator = RestorerGenerator(pretrained=False)
    nn.init.normal_(generator.out.weight, std=0.01)  # let gradients reach the whole decoder
    perceptual = PerceptualLoss(pretrained=False)
    discriminator = PatchDiscriminator()
    gen = torch.Generator().manual_seed(1)
    private = torch.rand(2, 3, 64, 64, generator=gen)
    originals = torch.rand(2, 3, 64, 64, generator=gen)
    params = [p for p in generator.parameters() if p.requires_grad]

    def gradient(weights: dict[str, float]) -> torch.Tensor:
        generator.zero_grad(set_to_none=True)
        terms = generator_loss_terms(generator(private), originals, perceptual, discriminator)
        sum(weights[k] * terms[k] for k in terms).backward()
        return torch.cat([p.grad.flatten() for p in params])

    full = gradient({"content": 1.0, "perceptual": 1.0, "adversarial": 1.0})
    for name in ("content", "perceptual", "adversarial"):
        weights = {"content": 1.0, "perceptual": 1.0, "adversarial": 1.0, name: 0.0}
        change = (full - gradient(weights)).norm() / full.norm()
        assert change > 1e-3, name
    # the perceptual network and the frozen encoder stages get no gradient
    assert all(p.grad is None for p in perceptual.parameters())
    assert all(p.grad is None for p in generator.stages[0].parameters())


def test_generator_architecture():
    generator = RestorerGenerator(trainable_stages=2, pretrained=False)
    trainable = [any(p.requires_grad for p in s.parameters()) for s in generator.stages]
    assert trainable == [False, False, False, True, True]
    generator.train()
    assert all(not m.training for m in generator.stages.modules()
               if isinstance(m, nn.BatchNorm2d))
    x = torch.rand(1, 3, 72, 40)  # any size, not only multiples of 32
    with torch.no_grad():
        out = generator(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, x)  # zero-initialised residual: starts as the identity
    with pytest.raises(ValueError, match="trainable_stages"):
        RestorerGenerator(trainable_stages=6, pretrained=False)


def test_encoder_and_perceptual_network_use_the_imagenet_weights():
    state = load_mobilenet_v2_state_dict()
    generator = RestorerGenerator()
    perceptual = PerceptualLoss()
    key = "features.4.conv.1.0.weight"  # inside stage 3 (features[4:7]), first block
    torch.testing.assert_close(generator.stages[2][0].conv[1][0].weight, state[key])
    torch.testing.assert_close(perceptual.features[4].conv[1][0].weight, state[key])


# --------------------------------------------------------------------------- training
def test_tiny_training_reduces_the_content_loss(photo_crops):
    originals = photo_crops["train"][:12]
    blurred = gaussian_blur(originals, 1.5)
    model, history = train_restorer(blurred, originals, epochs=4, batch_size=4, lr=2e-3,
                                    seed=0, crop_size=None, progress=False)
    assert len(history) == 4
    assert set(history[0]) >= {"content", "perceptual", "adversarial", "generator",
                               "discriminator", "seconds"}
    assert history[-1]["content"] < 0.9 * history[0]["content"]
    before = (blurred - originals).abs().mean()
    after = (restore(model, blurred) - originals).abs().mean()
    assert after < before
    assert not model.training


def test_training_is_reproducible_and_skips_unweighted_terms(photo_crops):
    originals = photo_crops["train"][:4]
    blurred = gaussian_blur(originals, 1.5)
    kwargs = dict(epochs=1, batch_size=2, seed=3, crop_size=32, progress=False,
                  pretrained=False, adversarial_weight=0.0)
    model_a, history = train_restorer(blurred, originals, **kwargs)
    model_b, _ = train_restorer(blurred, originals, **kwargs)
    for a, b in zip(model_a.parameters(), model_b.parameters(), strict=True):
        assert torch.equal(a, b)
    assert "adversarial" not in history[0] and "discriminator" not in history[0]


def test_competence_control_tiny_run_beats_the_blur(photo_crops):
    result = competence_control(photo_crops["train"], test_images=photo_crops["test"],
                                epochs=5, batch_size=6, lr=2e-3, crop_size=None,
                                progress=False)
    assert result["n_train"] == 24 and result["n_test"] == 6
    assert result["ssim_restored_mean"] > result["ssim_blurred_mean"] + 0.02
    assert result["psnr_restored_mean"] > result["psnr_blurred_mean"]
    assert result["passed"] == (result["ssim_restored_mean"] >= 0.8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": -1.0}, "lr"),
        ({"perceptual_weight": -0.1}, "perceptual_weight"),
        ({"adversarial_weight": math.nan}, "adversarial_weight"),
        ({"content_weight": 0, "perceptual_weight": 0, "adversarial_weight": 0}, "at least one"),
        ({"content_loss": "ssim"}, "content_loss"),
        ({"crop_size": 16}, "crop_size"),
    ],
)
def test_bad_training_arguments(kwargs, match):
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match=match):
        train_restorer(x, x, progress=False, pretrained=False, **kwargs)


def test_bad_training_pairs():
    with pytest.raises(ValueError, match="image size"):
        train_restorer(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 40), progress=False)
    bad = torch.rand(2, 3, 32, 32)
    bad[1, 2, 3, 4] = math.nan
    with pytest.raises(ValueError, match="non-finite"):
        train_restorer(bad, torch.rand(2, 3, 32, 32), progress=False)
    with pytest.raises(ValueError, match="RGB"):
        train_restorer(torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32), progress=False)
    with pytest.raises(ValueError, match="trained restorer"):
        restore("model.pt", torch.rand(1, 3, 32, 32))


# --------------------------------------------------------------------------- helpers
def test_split_pairs():
    train, test = split_pairs(3214, seed=0)
    assert (len(train), len(test)) == (2143, 1071)  # about 2:1, as the paper's 2,103 / 1,111
    assert sorted(train + test) == list(range(3214))
    assert split_pairs(3214, seed=0) == (train, test)
    assert split_pairs(3214, seed=1)[0] != train
    assert split_pairs(2) == ([1], [0]) or split_pairs(2) == ([0], [1])
    for n, ratio in ((1, 0.5), (10, 0.0), (10, 1.0), (True, 0.5)):
        with pytest.raises(ValueError):
            split_pairs(n, ratio)


def test_gaussian_blur_matches_scipy():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 20, 24, generator=gen, dtype=torch.float64)
    ours = gaussian_blur(x, 1.5).numpy()
    # torch's "reflect" padding is scipy's "mirror"; taps to 4 sigma on both sides
    ref = gaussian_filter(x.numpy(), sigma=(0, 0, 1.5, 1.5), mode="mirror", truncate=4.0)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="sigma_px"):
        gaussian_blur(x, 0.0)


def test_augment_crops():
    images = [torch.rand(3, 50, 80), torch.rand(3, 90, 40)]
    crops = augment_crops(images, 32, 3, seed=0)
    assert crops.shape == (6, 3, 32, 32)
    assert torch.equal(crops, augment_crops(images, 32, 3, seed=0))
    with pytest.raises(ValueError, match="3 x H x W"):
        augment_crops([torch.rand(1, 40, 40)], 32, 1)
