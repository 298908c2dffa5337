"""Up-Down decoder (Eqs. 3-5): shapes, attention, teacher forcing, greedy and beam search."""

from __future__ import annotations

import pytest
import torch

from privcap.captioning.decoder import UpDownDecoder
from privcap.losses import caption_cross_entropy

PAD, START, END = 0, 1, 2
VOCAB, FEAT, N_REGIONS = 12, 8, 6


def make_decoder(seed: int = 0, **kwargs) -> UpDownDecoder:
    torch.manual_seed(seed)
    args = dict(
        vocab_size=VOCAB,
        feature_dim=FEAT,
        embed_dim=10,
        hidden_dim=16,
        attention_dim=7,
        dropout=0.0,
    )
    args.update(kwargs)
    return UpDownDecoder(**args).eval()


def features(batch: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    regions = torch.randn(batch, N_REGIONS, FEAT, generator=gen)
    return regions, regions.mean(dim=1)


IDS = dict(start_id=START, end_id=END, pad_id=PAD)


def test_teacher_forcing_shapes_and_attention_sums_to_one() -> None:
    dec = make_decoder()
    regions, mean = features(3)
    words = torch.randint(3, VOCAB, (3, 5))
    logits, alphas = dec(regions, mean, words)
    assert logits.shape == (3, 5, VOCAB)
    assert alphas.shape == (3, 5, N_REGIONS)
    assert torch.all(alphas >= 0)
    torch.testing.assert_close(alphas.sum(-1), torch.ones(3, 5))
    # attention is not uniform: it depends on the regions and on the state
    assert alphas.std() > 1e-3


def test_attention_matches_eq4_by_hand() -> None:
    dec = make_decoder()
    regions, _ = features(2)
    h1 = torch.randn(2, 16)
    v_hat, alpha = dec.attend(regions, dec.w_va(regions), h1)
    a = torch.stack(
        [
            torch.stack(
                [
                    dec.w_a.weight[0]
                    @ torch.tanh(dec.w_va.weight @ regions[b, i] + dec.w_ha.weight @ h1[b])
                    for i in range(N_REGIONS)
                ]
            )
            for b in range(2)
        ]
    )
    expected_alpha = torch.softmax(a, dim=1)
    torch.testing.assert_close(alpha, expected_alpha)
    torch.testing.assert_close(v_hat, (expected_alpha.unsqueeze(-1) * regions).sum(1))


def test_step_uses_previous_language_state() -> None:
    """Eq. 3 feeds h2_{t-1} back: changing it changes the next logits."""
    dec = make_decoder()
    regions, mean = features(1)
    att = dec.w_va(regions)
    words = torch.tensor([START])
    zeros = dec.init_state(1, regions)
    _, _, (h1_a, _, _, _) = dec.step(words, zeros, regions, att, mean)
    h2 = torch.randn(1, 16)
    _, _, (h1_b, _, _, _) = dec.step(words, (zeros[0], zeros[1], h2, zeros[3]), regions, att,
                                     mean)
    # h1_t (LSTM1's output), not only the logits: h2_{t-1} is also LSTM2's own state
    assert not torch.allclose(h1_a, h1_b)


def test_teacher_forcing_loss_decreases_when_overfitting_a_tiny_batch() -> None:
    dec = make_decoder().train()
    regions, mean = features(4)
    captions = torch.tensor(
        [
            [START, 3, 4, 5, END, PAD],
            [START, 6, 7, END, PAD, PAD],
            [START, 8, 9, 10, 11, END],
            [START, 3, 9, END, PAD, PAD],
        ]
    )
    opt = torch.optim.Adam(dec.parameters(), lr=1e-2)
    losses = []
    for _ in range(80):
        logits, _ = dec(regions, mean, captions[:, :-1])
        loss = caption_cross_entropy(logits, captions[:, 1:], PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[0] > 2.0  # about log(12) at the start
    assert losses[-1] < 0.1 * losses[0]
    # and greedy decoding reproduces the memorised captions
    gen = dec.eval().greedy(regions, mean, max_len=6, **IDS)
    assert gen.tokens[1, :3].tolist() == [6, 7, END]
    assert gen.lengths.tolist() == [3, 2, 4, 2]


def force_word(dec: UpDownDecoder, word: int, end_logit: float) -> None:
    """Make the decoder emit ``word`` always, with ``<end>`` at a given logit."""
    with torch.no_grad():
        dec.w_p.weight.zero_()
        dec.w_p.bias.fill_(-5.0)
        dec.w_p.bias[word] = 5.0
        dec.w_p.bias[END] = end_logit


@pytest.mark.parametrize("beam_size", [1, 3])
def test_decoding_returns_a_caption_when_end_never_comes(beam_size: int) -> None:
    dec = make_decoder()
    force_word(dec, 7, end_logit=float("-inf"))
    regions, mean = features(2)
    if beam_size == 1:
        gen = dec.greedy(regions, mean, max_len=5, **IDS)
    else:
        gen = dec.beam_search(regions, mean, max_len=5, beam_size=beam_size, **IDS)
    assert gen.tokens.tolist() == [[7] * 5, [7] * 5]
    assert gen.lengths.tolist() == [5, 5]
    assert gen.ended.tolist() == [False, False]
    assert torch.isfinite(gen.scores).all()
    assert gen.alphas.shape == (2, 5, N_REGIONS)
    torch.testing.assert_close(gen.alphas.sum(-1), torch.ones(2, 5))


def test_decoding_stops_at_end() -> None:
    dec = make_decoder()
    force_word(dec, END, end_logit=10.0)
    regions, mean = features(2)
    for gen in (
        dec.greedy(regions, mean, max_len=5, **IDS),
        dec.beam_search(regions, mean, max_len=5, beam_size=3, **IDS),
    ):
        assert gen.lengths.tolist() == [0, 0]
        assert gen.ended.tolist() == [True, True]
        assert gen.tokens[:, 0].tolist() == [END, END]
        assert gen.tokens[:, 1:].eq(PAD).all()
        assert gen.alphas[:, 1:].eq(0).all()


def test_banned_ids_are_never_emitted() -> None:
    dec = make_decoder()
    force_word(dec, 7, end_logit=0.0)
    regions, mean = features(2)
    gen = dec.beam_search(regions, mean, max_len=4, beam_size=2, banned_ids=(7,), **IDS)
    assert not gen.tokens.eq(7).any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_size_one_equals_greedy(seed: int) -> None:
    dec = make_decoder(seed)
    regions, mean = features(5, seed=seed + 10)
    greedy = dec.greedy(regions, mean, max_len=8, **IDS)
    beam = dec.beam_search(regions, mean, max_len=8, beam_size=1, **IDS)
    assert torch.equal(greedy.tokens, beam.tokens)
    assert torch.equal(greedy.lengths, beam.lengths)
    torch.testing.assert_close(greedy.scores, beam.scores)
    torch.testing.assert_close(greedy.alphas, beam.alphas)


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_batched_beam_equals_per_item_beam(length_penalty: float) -> None:
    dec = make_decoder(3)
    regions, mean = features(4, seed=7)
    kwargs = dict(max_len=8, beam_size=4, length_penalty=length_penalty, **IDS)
    batched = dec.beam_search(regions, mean, **kwargs)
    for b in range(4):
        single = dec.beam_search(regions[b : b + 1], mean[b : b + 1], **kwargs)
        assert batched.tokens[b].tolist() == single.tokens[0].tolist()
        assert int(batched.lengths[b]) == int(single.lengths[0])
        torch.testing.assert_close(batched.scores[b], single.scores[0])
        torch.testing.assert_close(batched.alphas[b], single.alphas[0])


def test_beam_score_is_the_log_probability_of_its_caption() -> None:
    """The returned score equals the teacher-forced log-probability of the returned tokens."""
    dec = make_decoder(4)
    regions, mean = features(3, seed=5)
    gen = dec.beam_search(regions, mean, max_len=6, beam_size=3, **IDS)
    for b in range(3):
        n = int(gen.lengths[b]) + int(gen.ended[b])
        tokens = gen.tokens[b, :n]
        words_in = torch.cat([torch.tensor([START]), tokens[:-1]]).unsqueeze(0)
        logits, alphas = dec(regions[b : b + 1], mean[b : b + 1], words_in)
        log_probs = torch.log_softmax(logits[0], -1).gather(1, tokens.unsqueeze(1)).sum()
        torch.testing.assert_close(gen.scores[b], log_probs)
        torch.testing.assert_close(gen.alphas[b, :n], alphas[0])


def test_wider_beam_finds_at_least_as_likely_captions_on_average() -> None:
    dec = make_decoder(5)
    regions, mean = features(16, seed=9)
    greedy = dec.greedy(regions, mean, max_len=8, **IDS)
    beam = dec.beam_search(regions, mean, max_len=8, beam_size=5, **IDS)
    assert beam.scores.mean() >= greedy.scores.mean()


def test_bad_arguments_are_rejected() -> None:
    dec = make_decoder()
    regions, mean = features(2)
    with pytest.raises(ValueError, match="beam_size"):
        dec.beam_search(regions, mean, max_len=4, beam_size=0, **IDS)
    with pytest.raises(ValueError, match="max_len"):
        dec.greedy(regions, mean, max_len=0, **IDS)
    with pytest.raises(ValueError, match="regions must be"):
        dec(regions[..., :3], mean, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="dropout"):
        UpDownDecoder(VOCAB, FEAT, dropout=1.5)
