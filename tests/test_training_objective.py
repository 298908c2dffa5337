"""The joint objective (Eqs. 6-9) and one training step: terms, weights, the PSF of the same
pass, bounds by projection, read noise, which coefficients learn."""

from __future__ import annotations

import math

import pytest
import torch
from helpers_training import SIZE, TINY_OPTICS, tiny_captioner, tiny_data

from privcap.losses import caption_cross_entropy, doubly_stochastic_attention, psf_energy_loss
from privcap.optics import Lens
from privcap.training import (
    JointModel,
    LossWeights,
    Trainer,
    build_camera,
    collate_items,
    evaluation_pass,
    joint_loss,
    train_config,
)
from privcap.training.objective import encode_captions

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: four different weights: a term wired to the wrong weight changes the total
WEIGHTS = LossWeights(w_ce=0.7, ds_lambda=0.03, w_p=2.5, w_h=11.0, psf_radius_px=4.0)


@pytest.fixture(scope="module")
def data():
    return tiny_data()


@pytest.fixture(scope="module")
def batch(data):
    train, _ = data
    return collate_items([train[i] for i in range(4)], image_size=SIZE)


def trainer_for(kind: str, data, **overrides) -> Trainer:
    train, _ = data
    model = tiny_captioner(train, dropout=0.0)
    camera = build_camera(kind, TINY_OPTICS)
    settings = dict(batch_size=4, captions_per_image=2, seed=1, device="cpu",
                    val_meteor=False)
    settings.update(overrides)
    return Trainer(model, camera, train_config("quick", kind, **settings))


def test_joint_loss_is_the_weighted_sum_of_four_independent_terms(data, batch) -> None:
    train, _ = data
    model = tiny_captioner(train, dropout=0.0)
    camera = build_camera("learned-lens", TINY_OPTICS, noise_sigma_range=(0.0, 0.0))
    joint = JointModel(model, camera).train()
    model.eval()  # BatchNorm on running statistics: the recomputation below uses 3 images
    scene = batch["image"]
    captions = [batch["captions"][0][0], batch["captions"][0][1], batch["captions"][2][0]]
    owner = [0, 0, 2]
    total, terms = joint_loss(joint, scene, captions, owner, WEIGHTS)

    # each term from scratch: camera, then the captioner on the sensor images
    torch.set_grad_enabled(False)
    sensor = camera(scene)
    psf = camera.psf()
    ids = model.vocab.encode_batch(captions)
    ids = ids[:, : int((ids != model.vocab.pad_id).sum(1).max())]
    logits, alphas = model(sensor[owner], ids[:, :-1])
    ce = caption_cross_entropy(logits, ids[:, 1:], model.vocab.pad_id)
    ds = doubly_stochastic_attention(alphas, ids[:, 1:] != model.vocab.pad_id, lam=1.0)
    p = 1.0 - ((sensor - scene) ** 2).mean()
    h = psf_energy_loss(psf, 4.0)
    assert terms["ce"] == pytest.approx(float(ce), rel=1e-5)
    assert terms["ds"] == pytest.approx(float(ds), rel=1e-5)
    assert terms["p"] == pytest.approx(float(p), rel=1e-6)
    assert terms["h"] == pytest.approx(float(h), rel=1e-5)
    assert 0 < terms["h"] and 0.5 < terms["p"] < 1.0
    expected = 0.7 * ce + 0.03 * ds + 2.5 * p + 11.0 * h
    assert float(total) == pytest.approx(float(expected), rel=1e-5)
    assert terms["total"] == pytest.approx(float(expected), rel=1e-5)
    assert terms["tokens"] == int((ids[:, 1:] != model.vocab.pad_id).sum())
    torch.set_grad_enabled(True)


@pytest.mark.parametrize("kind, has_p, has_h", [("no-lens", False, False),
                                                ("low-res", True, False),
                                                ("defocus", True, True)])
def test_terms_depend_on_the_camera(data, batch, kind, has_p, has_h) -> None:
    train, _ = data
    model = tiny_captioner(train, dropout=0.0)
    joint = JointModel(model, build_camera(kind, TINY_OPTICS, noise_sigma_range=(0, 0)))
    total, terms = joint_loss(joint, batch["image"], [batch["captions"][1][0]], [1], WEIGHTS)
    assert (terms["p"] is not None, terms["h"] is not None) == (has_p, has_h)
    rest = WEIGHTS.w_p * (terms["p"] or 0.0) + WEIGHTS.w_h * (terms["h"] or 0.0)
    assert float(total.detach()) == pytest.approx(0.7 * terms["ce"] + 0.03 * terms["ds"] + rest,
                                         rel=1e-5)


def test_psf_loss_uses_the_psf_of_the_same_forward_pass(data, batch) -> None:
    tr = trainer_for("learned-lens", data)
    calls = []
    tr.camera.optics.register_forward_hook(lambda *_: calls.append(1))
    seen = {}
    original = tr.camera.forward_with_psf

    def spy(images, noise_sigma=None):
        out = original(images, noise_sigma)
        seen["psf"] = out[1]
        return out

    tr.camera.forward_with_psf = spy
    terms = tr.step(batch, epoch=0, batch_index=0)
    assert len(calls) == 1  # one PSF evaluation per step, shared by X_hat and L_H
    expected = float(psf_energy_loss(seen["psf"].detach(), 4.0))
    assert terms["h"] == pytest.approx(expected, rel=1e-6)


def test_bounds_are_projected_after_the_step_and_the_bound_keeps_its_gradient(data,
                                                                               batch) -> None:
    config = TINY_OPTICS
    init = torch.zeros(config.num_terms, dtype=torch.float64)
    init[3], init[4], init[6] = config.z4_init_um, 1.0, -1.0  # Z5 and Z7 at their bounds
    lens = Lens(config, init_coefficients_um=init)
    camera = build_camera("learned-lens", config, init_coefficients_um=init)
    psf = camera.psf()
    psf_energy_loss(psf, 2.0).backward()
    grad = camera.lens.coefficients.grad  # Noll 5, 6, 7, ... (Z4 apart, Z1-Z3 frozen)
    assert camera.lens.trainable_index.tolist()[:3] == [4, 5, 6]
    assert float(grad[0].abs()) > 0 and float(grad[2].abs()) > 0  # Z5, Z7: not clamped away
    assert float(lens.coefficients_um().detach()[4]) == 1.0

    tr = trainer_for("learned-lens", data, lr_lens=5.0, lr_defocus=1e-3)
    for i in range(2):
        tr.step(batch, epoch=0, batch_index=i)
    values = tr.camera.lens.coefficients_um().detach()
    higher = values[4:]
    assert float(higher.abs().max()) == 1.0  # a 5 um Adam step lands outside: projected
    assert int((higher.abs() == 1.0).sum()) >= 5


def test_read_noise_on_in_training_off_in_evaluation(data, batch) -> None:
    camera = build_camera("learned-lens", TINY_OPTICS)  # noise 0.001 .. 0.02 while training
    scene = batch["image"]
    camera.train()
    with torch.no_grad():
        a, b = camera(scene), camera(scene)
    assert float((a - b).abs().max()) > 1e-4
    camera.eval()
    c, d = camera(scene), camera(scene)
    assert torch.equal(c, d)
    clean = camera(scene, noise_sigma=0.0)
    assert torch.equal(c, clean)

    tr = trainer_for("learned-lens", data)
    modes = []
    original = tr.camera.forward_with_psf

    def spy(images, noise_sigma=None):
        modes.append(tr.camera.training)
        return original(images, noise_sigma)

    tr.camera.forward_with_psf = spy
    tr.step(batch, epoch=0, batch_index=0)
    assert modes == [True]
    _, val = data
    evaluation_pass(tr.model, val, camera=tr.camera, captions=False, with_ssim=True)
    assert modes[1:] and not any(modes[1:])
    assert tr.camera.training  # mode restored


def test_learned_lens_moves_its_coefficients_defocus_only_z4(data, batch) -> None:
    moved = {}
    for kind in ("learned-lens", "defocus"):
        tr = trainer_for(kind, data, lr_lens=1e-2, lr_defocus=1e-2)
        before = tr.camera.lens.coefficients_um().detach().clone()
        for i in range(3):
            tr.step(batch, epoch=0, batch_index=i)
        moved[kind] = (tr.camera.lens.coefficients_um().detach() - before).abs()
    learned, defocus = moved["learned-lens"], moved["defocus"]
    assert float(learned[3]) > 1e-3  # Z4
    assert int((learned[4:] > 1e-3).sum()) >= 8  # most of Z5..Z15
    assert float(defocus[3]) > 1e-3
    assert float(torch.cat([defocus[:3], defocus[4:]]).max()) == 0.0
    assert float(learned[:3].max()) == 0.0  # piston and tilts stay


def test_caption_ids_and_the_loss_are_finite(data, batch) -> None:
    train, _ = data
    model = tiny_captioner(train)
    ids = encode_captions(model.vocab, ["a red circle", "blue"], torch.device("cpu"))
    assert ids.shape[0] == 2 and int(ids[0, 0]) == model.vocab.start_id
    assert int((ids[:, -1] != model.vocab.pad_id).sum()) >= 1  # no all-padding column
    tr = trainer_for("low-res", data)
    terms = tr.step(batch, epoch=0, batch_index=0)
    assert all(math.isfinite(terms[k]) for k in ("total", "ce", "ds", "p"))
