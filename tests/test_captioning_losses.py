"""Captioning losses L_ce (Eq. 6) and the attention term of L_d (Eq. 7) on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from privcap.losses import caption_cross_entropy, doubly_stochastic_attention


def test_cross_entropy_uniform_logits_is_log_k() -> None:
    logits = torch.zeros(2, 3, 5)
    targets = torch.tensor([[1, 2, 3], [4, 1, 2]])
    assert float(caption_cross_entropy(logits, targets, pad_id=0)) == pytest.approx(math.log(5))


def test_cross_entropy_hand_computed_and_padding_masked() -> None:
    # token 1: logits (2, 0, 0), target 0 -> -log(e^2 / (e^2 + 2))
    # token 2: logits (0, ln 3, 0), target 1 -> -log(3 / 5)
    # token 3: padding (id 2) with absurd logits that must not count
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, math.log(3.0), 0.0], [-50.0, 50.0, -50.0]]])
    targets = torch.tensor([[0, 1, 2]])
    expected = ((math.log(math.exp(2) + 2) - 2) + (-math.log(3 / 5))) / 2
    loss = caption_cross_entropy(logits, targets, pad_id=2)
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_is_differentiable_and_zero_when_certain() -> None:
    logits = torch.full((1, 2, 4), -30.0)
    logits[0, 0, 3] = 30.0
    logits[0, 1, 1] = 30.0
    logits.requires_grad_(True)
    loss = caption_cross_entropy(logits, torch.tensor([[3, 1]]), pad_id=0)
    assert float(loss.detach()) < 1e-12
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_cross_entropy_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="only padding"):
        caption_cross_entropy(torch.zeros(1, 2, 3), torch.zeros(1, 2, dtype=torch.long), 0)
    with pytest.raises(ValueError, match="B x T x K"):
        caption_cross_entropy(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), 0)


def test_doubly_stochastic_hand_computed() -> None:
    alphas = torch.tensor([[[0.2, 0.8], [1.0, 0.0]], [[0.5, 0.5], [0.5, 0.5]]])
    # item 1: coverage (1.2, 0.8) -> 0.04 + 0.04 = 0.08; item 2: (1, 1) -> 0
    value = doubly_stochastic_attention(alphas, lam=2.0)
    assert float(value) == pytest.approx(2.0 * (0.08 + 0.0) / 2)


def test_doubly_stochastic_mask_leaves_out_steps_after_the_end() -> None:
    alphas = torch.tensor([[[0.2, 0.8], [1.0, 0.0]]])
    mask = torch.tensor([[True, False]])
    # coverage (0.2, 0.8) -> 0.64 + 0.04
    value = doubly_stochastic_attention(alphas, mask, lam=1.0)
    assert float(value) == pytest.approx(0.68)


def test_doubly_stochastic_zero_for_even_coverage_and_lambda_scales() -> None:
    alphas = torch.eye(3).unsqueeze(0)  # 3 steps, each on its own region: coverage 1 each
    assert float(doubly_stochastic_attention(alphas, lam=5.0)) == pytest.approx(0.0)
    lopsided = torch.tensor([[[1.0, 0.0, 0.0]] * 3])  # coverage (3, 0, 0) -> 4 + 1 + 1
    assert float(doubly_stochastic_attention(lopsided, lam=1.0)) == pytest.approx(6.0)
    assert float(doubly_stochastic_attention(lopsided, lam=0.5)) == pytest.approx(3.0)


def test_doubly_stochastic_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="lam"):
        doubly_stochastic_attention(torch.zeros(1, 2, 2), lam=-1.0)
    with pytest.raises(ValueError, match="mask"):
        doubly_stochastic_attention(torch.zeros(1, 2, 2), torch.ones(1, 3))
    with pytest.raises(ValueError, match="B x T x L"):
        doubly_stochastic_attention(torch.zeros(2, 2))
