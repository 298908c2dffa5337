"""Eqs. 3-5 of the Up-Down decoder and the teacher forcing of the training loss, by hand.

The expected values are written out from the paper's equations with torch primitives (an LSTM
cell spelled out gate by gate), so a slip in the wiring of the decoder -- a state fed in the
wrong place, ``v_bar`` or the word embedding left out, attention on the wrong hidden state,
targets misaligned with the inputs by one word -- gives different numbers.

- Eq. 3: ``h1_t = LSTM1([h2_{t-1}, v_bar, E w_t], (h1_{t-1}, c1_{t-1}))``;
- Eq. 4: ``a_{t,i} = w_a^T tanh(W_va v_i + W_ha h1_t)``, ``alpha_t = softmax_i(a_t)``,
  ``v_hat_t = sum_i alpha_{t,i} v_i``;
- Eq. 5: ``h2_t = LSTM2([v_hat_t, h1_t], (h2_{t-1}, c2_{t-1}))``,
  ``p(y_t) = softmax(W_p h2_t + b_p)``.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from privcap.captioning import Captioner, Vocabulary, captioner_config
from privcap.captioning.decoder import UpDownDecoder
from privcap.training.objective import JointModel, LossWeights, caption_loss, joint_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# vocabulary, feature, embedding, hidden, attention sizes, number of regions: all different,
# so that a tensor fed in the wrong place cannot pass unnoticed by having the right size
K, D, M, H, A, L = 9, 3, 4, 5, 6, 7
PAD, START, END, UNK = 0, 1, 2, 3


def make_decoder(seed: int = 0) -> UpDownDecoder:
    torch.manual_seed(seed)
    dec = UpDownDecoder(K, D, embed_dim=M, hidden_dim=H, attention_dim=A, dropout=0.0)
    with torch.no_grad():  # larger weights than the default init: clearly non-linear gates
        for p in dec.parameters():
            p.mul_(3.0)
    return dec.double().eval()


def randn(*shape: int, seed: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def lstm_cell(x: Tensor, h: Tensor, c: Tensor, cell: nn.LSTMCell) -> tuple[Tensor, Tensor]:
    """One LSTM step written out; PyTorch stacks the gates in the order i, f, g, o."""
    z = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    zi, zf, zg, zo = z[:, :H], z[:, H : 2 * H], z[:, 2 * H : 3 * H], z[:, 3 * H :]
    sig = lambda v: 1.0 / (1.0 + torch.exp(-v))  # noqa: E731
    c_new = sig(zf) * c + sig(zi) * torch.tanh(zg)
    return sig(zo) * torch.tanh(c_new), c_new


def paper_step(dec: UpDownDecoder, word: Tensor, state, regions: Tensor, v_bar: Tensor):
    """One time step from Eqs. 3-5; returns logits, alpha, (h1, c1, h2, c2)."""
    h1, c1, h2, c2 = state
    x1 = torch.cat([h2, v_bar, dec.embed.weight[word]], dim=1)  # Eq. 3
    h1, c1 = lstm_cell(x1, h1, c1, dec.att_lstm)
    projected = regions @ dec.w_va.weight.T + (h1 @ dec.w_ha.weight.T)[:, None, :]  # Eq. 4
    a = torch.tanh(projected) @ dec.w_a.weight[0]  # B x L
    alpha = torch.exp(a) / torch.exp(a).sum(dim=1, keepdim=True)
    v_hat = (alpha[:, :, None] * regions).sum(dim=1)
    h2, c2 = lstm_cell(torch.cat([v_hat, h1], dim=1), h2, c2, dec.lang_lstm)  # Eq. 5
    logits = h2 @ dec.w_p.weight.T + dec.w_p.bias
    return logits, alpha, (h1, c1, h2, c2)


def decoder_step(dec: UpDownDecoder, word: Tensor, state, regions: Tensor, v_bar: Tensor):
    return dec.step(word, state, regions, dec.w_va(regions), v_bar)


def distinct_state(batch: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Four different states: h1 != h2 and c1 != c2, so a swap changes the result."""
    return tuple(randn(batch, H, seed=100 + k) for k in range(4))  # type: ignore[return-value]


def assert_close(got: Tensor, want: Tensor) -> None:
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- Eqs. 3-5 by hand
def test_one_step_from_a_nonzero_state_is_eqs_3_to_5_by_hand() -> None:
    dec = make_decoder()
    regions = randn(2, L, D, seed=1)
    v_bar = randn(2, D, seed=2)  # any v_bar: the step must use the one it is given
    words = torch.tensor([4, 7])
    state = distinct_state(2)
    with torch.no_grad():
        logits, alpha, new = decoder_step(dec, words, state, regions, v_bar)
        want_logits, want_alpha, want_state = paper_step(dec, words, state, regions, v_bar)
    for name, got, want in zip(("h1", "c1", "h2", "c2"), new, want_state, strict=True):
        assert got.shape == (2, H), name
        assert_close(got, want)
    assert_close(alpha, want_alpha)
    assert_close(logits, want_logits)


def test_teacher_forced_forward_is_the_hand_unrolled_recursion() -> None:
    """Four steps from the zero state (after the first, h1 and h2 differ), v_bar = mean v_i."""
    dec = make_decoder(1)
    regions = randn(3, L, D, seed=3)
    v_bar = regions.mean(dim=1)
    words_in = torch.tensor([[START, 4, 5, 6], [START, 7, 8, END], [START, 4, 4, 4]])
    with torch.no_grad():
        logits, alphas = dec(regions, v_bar, words_in)
        state = tuple(torch.zeros(3, H, dtype=torch.float64) for _ in range(4))
        for t in range(4):
            want_logits, want_alpha, state = paper_step(dec, words_in[:, t], state, regions,
                                                        v_bar)
            assert_close(logits[:, t], want_logits)
            assert_close(alphas[:, t], want_alpha)


def test_output_is_the_softmax_of_wp_h2_over_the_vocabulary() -> None:
    """Greedy's first word and its score: argmax and max of log softmax(W_p h2_1 + b_p)."""
    dec = make_decoder(2)
    regions = randn(4, L, D, seed=4)
    v_bar = regions.mean(dim=1)
    zeros = tuple(torch.zeros(4, H, dtype=torch.float64) for _ in range(4))
    with torch.no_grad():
        logits, _, _ = paper_step(dec, torch.full((4,), START), zeros, regions, v_bar)
        log_p = logits - torch.log(torch.exp(logits).sum(dim=1, keepdim=True))
        gen = dec.greedy(regions, v_bar, start_id=START, end_id=END, pad_id=PAD, max_len=1)
    best, word = log_p.max(dim=1)
    assert gen.tokens[:, 0].tolist() == word.tolist()
    torch.testing.assert_close(gen.scores.double(), best, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- what feeds what
def _perturbed(state, index: int):
    state = list(state)
    state[index] = state[index] + 0.5
    return tuple(state)


def test_attention_lstm_reads_h2_of_the_previous_step_and_not_the_regions() -> None:
    """Eq. 3's inputs: h1_t depends on h2_{t-1}, h1_{t-1}, v_bar and the word; not on
    c2_{t-1} and not on the individual regions (only through v_bar)."""
    dec = make_decoder(3)
    regions = randn(2, L, D, seed=5)
    v_bar = randn(2, D, seed=6)
    words = torch.tensor([5, 6])
    state = distinct_state(2)
    with torch.no_grad():
        base = decoder_step(dec, words, state, regions, v_bar)
        h1 = base[2][0]

        def new_h1(**change):
            args = dict(words=words, state=state, regions=regions, v_bar=v_bar)
            args.update(change)
            return decoder_step(dec, args["words"], args["state"], args["regions"],
                                args["v_bar"])[2][0]

        changes = {
            "h2_{t-1}": new_h1(state=_perturbed(state, 2)),
            "h1_{t-1}": new_h1(state=_perturbed(state, 0)),
            "v_bar": new_h1(v_bar=v_bar + 0.5),
            "word": new_h1(words=torch.tensor([7, 8])),
        }
        for name, value in changes.items():
            assert float((value - h1).abs().max()) > 1e-4, f"h1_t ignores {name}"
        assert_close(new_h1(state=_perturbed(state, 3)), h1)  # c2_{t-1}: LSTM2's cell only
        assert_close(new_h1(regions=regions + randn(2, L, D, seed=7)), h1)


def test_attention_uses_h1_t_and_language_lstm_reads_its_own_state() -> None:
    """Eq. 4 scores with the new h1_t (so alpha_t does not depend on c2_{t-1}: it is not
    h2_t), Eq. 5 continues (h2_{t-1}, c2_{t-1}); the logits depend on c2_{t-1} only through
    LSTM2."""
    dec = make_decoder(4)
    regions = randn(2, L, D, seed=8)
    v_bar = randn(2, D, seed=9)
    words = torch.tensor([4, 6])
    state = distinct_state(2)
    with torch.no_grad():
        logits, alpha, new = decoder_step(dec, words, state, regions, v_bar)
        logits_c2, alpha_c2, new_c2 = decoder_step(dec, words, _perturbed(state, 3), regions,
                                                   v_bar)
        # attention computed with the previous h1 would not follow a change of h2_{t-1}
        _, alpha_h2, _ = decoder_step(dec, words, _perturbed(state, 2), regions, v_bar)
    assert_close(alpha_c2, alpha)
    assert float((alpha_h2 - alpha).abs().max()) > 1e-6
    assert float((new_c2[2] - new[2]).abs().max()) > 1e-4
    assert float((logits_c2 - logits).abs().max()) > 1e-4
    torch.testing.assert_close(alpha.sum(dim=1), torch.ones(2, dtype=torch.float64))


def test_logits_at_step_t_see_words_up_to_t_only() -> None:
    dec = make_decoder(5)
    regions = randn(2, L, D, seed=10)
    v_bar = regions.mean(dim=1)
    words = torch.tensor([[START, 4, 5, 6, 7], [START, 8, 4, 5, 6]])
    later = words.clone()
    later[:, 3] = torch.tensor([8, 7])
    with torch.no_grad():
        a, _ = dec(regions, v_bar, words)
        b, _ = dec(regions, v_bar, later)
    assert_close(a[:, :3], b[:, :3])  # steps 0-2 do not see word 3
    assert float((a[:, 3] - b[:, 3]).abs().max()) > 1e-4  # step 3 does


# --------------------------------------------------------------------------- teacher forcing
#: a hand-made vocabulary: ids are the positions in this list
WORDS = ["<pad>", "<start>", "<end>", "<unk>", "red", "circle", "left", "blue", "square"]
CAPTIONS = [["red circle left"], ["blue square"]]
#: the same captions as ids, written out by hand: <start> w_1 .. w_n <end>
CAPTION_IDS = [[START, 4, 5, 6, END], [START, 7, 8, END]]
GAP = 10.0  # logit of the predicted word; every other word has logit 0


class StubDecoder(nn.Module):
    """A decoder with the interface of :class:`UpDownDecoder` whose logits at step ``t`` put
    ``GAP`` on one word: the input word itself (``"copy"``) or the word that follows the
    input prefix ``w_0 .. w_t`` in the caption of the image (``"next"``, a perfect
    captioner: it recognises the image by its mean feature ``image_means[k]``)."""

    def __init__(self, mode: str, image_means: Tensor) -> None:
        super().__init__()
        self.mode = mode
        self.image_means = image_means
        self.next_word = [{tuple(ids[: t + 1]): ids[t + 1] for t in range(len(ids) - 1)}
                          for ids in CAPTION_IDS]
        self.seen: list[Tensor] = []

    def forward(self, regions: Tensor, mean: Tensor, words_in: Tensor) -> tuple[Tensor, Tensor]:
        self.seen.append(words_in.clone())
        batch, steps = words_in.shape
        logits = regions.new_zeros(batch, steps, len(WORDS))
        for b in range(batch):
            image = int((self.image_means - mean[b]).abs().sum(dim=1).argmin())
            for t in range(steps):
                if self.mode == "copy":
                    word = int(words_in[b, t])
                else:
                    prefix = tuple(words_in[b, : t + 1].tolist())
                    word = self.next_word[image].get(prefix, UNK)
                logits[b, t, word] = GAP
        alphas = regions.new_full((batch, steps, regions.shape[1]), 1.0 / regions.shape[1])
        return logits, alphas


def tiny_captioner(seed: int = 0) -> Captioner:
    torch.manual_seed(seed)
    config = captioner_config("quick", small_cnn_channels=(4, 8), small_cnn_convs=(1, 1),
                              feature_dim=6, embed_dim=5, hidden_dim=7, attention_dim=4,
                              dropout=0.0, image_size=32, max_len=6)
    return Captioner(config, Vocabulary(words=list(WORDS), max_len=6), load_pretrained=False)


def test_hand_vocabulary_encodes_the_captions_as_written() -> None:
    vocab = Vocabulary(words=list(WORDS), max_len=6)
    assert [vocab.encode(c[0]) for c in CAPTIONS] == CAPTION_IDS


def training_loss(entry: str, model: Captioner, images: Tensor) -> tuple[Tensor, dict]:
    """L_ce of ``CAPTIONS`` through one of the two training entry points."""
    if entry == "caption_loss":
        return caption_loss(model, images, CAPTIONS, ds_lambda=0.0)
    from privcap.optics import IdentityCamera

    weights = LossWeights(w_ce=1.0, ds_lambda=0.0, w_p=0.0, w_h=0.0)
    flat = [c for caps in CAPTIONS for c in caps]
    return joint_loss(JointModel(model, IdentityCamera()), images, flat, [0, 1], weights)


@pytest.mark.parametrize("entry", ["caption_loss", "joint_loss"])
@pytest.mark.parametrize("mode", ["next", "copy"])
def test_training_loss_scores_the_next_word(mode: str, entry: str) -> None:
    """L_ce of training compares the logits at step t (inputs <start> w_1 .. w_t) with word
    t + 1: a perfect next-word model costs almost nothing, a model that repeats its input
    word pays the full gap on every one of the 4 + 3 target tokens (words and <end>).
    Checked through ``caption_loss`` and through the training loop's ``joint_loss``."""
    model = tiny_captioner().eval()
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        means = model.encode(images).mean
        assert float(torch.cdist(means[:1], means[1:])) > 1e-3  # the images can be told apart
        stub = StubDecoder(mode, means)
        model.decoder = stub
        loss, parts = training_loss(entry, model, images)
    # -log softmax with the target at logit GAP (next) or at 0 against GAP (copy)
    others = len(WORDS) - 1
    per_token = (math.log1p(others * math.exp(-GAP)) if mode == "next"
                 else math.log(math.exp(GAP) + others))
    assert parts["tokens"] == 7
    assert float(loss) == pytest.approx(per_token, rel=1e-5, abs=1e-6)  # float32 logits
    assert parts["ce"] == pytest.approx(per_token, rel=1e-5, abs=1e-6)
    assert (float(loss) < 1e-2) if mode == "next" else (float(loss) > GAP - 1e-3)
    # the decoder was fed <start> w_1 .. w_n (never a target word in place of <start>)
    (words_in,) = stub.seen
    assert words_in[:, 0].tolist() == [START, START]
    assert words_in[0, :4].tolist() == [START, 4, 5, 6]
    assert words_in[1, :3].tolist() == [START, 7, 8]


def test_training_loss_of_the_real_decoder_by_hand() -> None:
    """caption_loss = mean over the 7 target tokens of -log p(w_{t+1} | w_<=t) plus
    lambda * sum_i (1 - sum_t alpha_{t,i})^2 over the steps that emit a word or <end>."""
    model = tiny_captioner(1).eval()
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    lam = 0.7
    with torch.no_grad():
        loss, parts = caption_loss(model, images, CAPTIONS, ds_lambda=lam)
        feats = model.encode(images)
        total_ce, n_tokens, ds = 0.0, 0, 0.0
        for b, ids in enumerate(CAPTION_IDS):
            words_in = torch.tensor([ids[:-1]])  # <start> w_1 .. w_n
            logits, alphas = model.decoder(feats.regions[b : b + 1], feats.mean[b : b + 1],
                                           words_in)
            log_p = torch.log_softmax(logits[0].double(), dim=-1)
            for t, target in enumerate(ids[1:]):  # w_1 .. w_n <end>
                total_ce -= float(log_p[t, target])
                n_tokens += 1
            coverage = alphas[0].double().sum(dim=0)  # sum over the n + 1 steps
            ds += float(((1.0 - coverage) ** 2).sum())
    ce = total_ce / n_tokens
    expected = ce + lam * ds / len(CAPTION_IDS)
    assert n_tokens == parts["tokens"] == 7
    assert parts["ce"] == pytest.approx(ce, rel=1e-5)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
