"""The two-LSTM Up-Down caption decoder (paper Sec. 2.2.2, Eqs. 3-5; Anderson et al. 2018).

At each time step ``t`` with input word ``w_t``:

- attention LSTM (Eq. 3): ``h1_t = LSTM1([h2_{t-1}, v_bar, E w_t], h1_{t-1})``;
- attention (Eq. 4): ``a_{t,i} = w_a^T tanh(W_va v_i + W_ha h1_t)``,
  ``alpha_t = softmax(a_t)``, ``v_hat_t = sum_i alpha_{t,i} v_i``;
- language LSTM (Eq. 5): ``h2_t = LSTM2([v_hat_t, h1_t], h2_{t-1})``;
- output: ``p(y_t | y_{1:t-1}) = softmax(W_p h2_t + b_p)``.

Training uses teacher forcing (:meth:`UpDownDecoder.forward`); inference uses
:meth:`UpDownDecoder.greedy` or the batched :meth:`UpDownDecoder.beam_search`, both capped at
``max_len`` words so that they always return a caption, even when ``<end>`` never comes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

State = tuple[Tensor, Tensor, Tensor, Tensor]  # h1, c1, h2, c2


class Generation(NamedTuple):
    """Result of greedy or beam decoding for a batch of ``B`` images.

    Attributes:
        tokens: ``B x T`` word ids; the caption of item ``b`` is ``tokens[b, :lengths[b]]``,
            followed by ``<end>`` when the model ended it and ``<pad>`` after that.
        lengths: ``B`` number of words (``<end>`` excluded), at most ``max_len``.
        scores: ``B`` summed log-probability of the emitted tokens (``<end>`` included).
        alphas: ``B x T x L`` attention weights of every emitted token (zero after the end).
        ended: ``B`` booleans, true where the model emitted ``<end>`` (false: cut at
            ``max_len``).
    """

    tokens: Tensor
    lengths: Tensor
    scores: Tensor
    alphas: Tensor
    ended: Tensor


class UpDownDecoder(nn.Module):
    """Up-Down decoder: attention LSTM, additive attention, language LSTM (Eqs. 3-5).

    Args:
        vocab_size: ``K``, number of words including the special tokens.
        feature_dim: ``D``, size of the region features ``v_i``.
        embed_dim: ``m``, size of the word embedding ``E w_t``.
        hidden_dim: size of both LSTMs' hidden states.
        attention_dim: size of the attention space of Eq. 4.
        dropout: dropout probability on the word embedding and on ``h2_t`` before ``W_p``.
    """

    def __init__(
        self,
        vocab_size: int,
        feature_dim: int,
        embed_dim: int = 1000,
        hidden_dim: int = 1000,
        attention_dim: int = 512,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        for name, value in (
            ("vocab_size", vocab_size),
            ("feature_dim", feature_dim),
            ("embed_dim", embed_dim),
            ("hidden_dim", hidden_dim),
            ("attention_dim", attention_dim),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.vocab_size = vocab_size
        self.feature_dim = feature_dim
        self.hidden_dim = hidden_dim
        self.embed = nn.Embedding(vocab_size, embed_dim)  # E
        self.att_lstm = nn.LSTMCell(hidden_dim + feature_dim + embed_dim, hidden_dim)  # Eq. 3
        self.w_va = nn.Linear(feature_dim, attention_dim, bias=False)  # W_va (Eq. 4)
        self.w_ha = nn.Linear(hidden_dim, attention_dim, bias=False)  # W_ha (Eq. 4)
        self.w_a = nn.Linear(attention_dim, 1, bias=False)  # w_a (Eq. 4)
        self.lang_lstm = nn.LSTMCell(feature_dim + hidden_dim, hidden_dim)  # Eq. 5
        self.w_p = nn.Linear(hidden_dim, vocab_size)  # W_p, b_p
        self.dropout = nn.Dropout(dropout)

    # ------------------------------------------------------------------ one step
    def init_state(self, batch: int, like: Tensor) -> State:
        """Zero hidden and cell states of both LSTMs."""
        zeros = like.new_zeros(batch, self.hidden_dim)
        return zeros, zeros, zeros, zeros

    def attend(self, regions: Tensor, regions_att: Tensor, h1: Tensor) -> tuple[Tensor, Tensor]:
        """Eq. 4: ``alpha_t = softmax_i(w_a^T tanh(W_va v_i + W_ha h1_t))``, ``v_hat_t``.

        ``regions_att`` is ``W_va v_i`` (``N x L x A``), computed once per image.
        Returns ``v_hat_t`` (``N x D``) and ``alpha_t`` (``N x L``).
        """
        scores = self.w_a(torch.tanh(regions_att + self.w_ha(h1).unsqueeze(1))).squeeze(-1)
        alpha = torch.softmax(scores, dim=-1)
        v_hat = torch.bmm(alpha.unsqueeze(1), regions).squeeze(1)
        return v_hat, alpha

    def step(
        self, words: Tensor, state: State, regions: Tensor, regions_att: Tensor, mean: Tensor
    ) -> tuple[Tensor, Tensor, State]:
        """One time step: word ids ``N`` -> logits ``N x K``, ``alpha_t`` ``N x L``, new state."""
        h1, c1, h2, c2 = state
        x1 = torch.cat([h2, mean, self.dropout(self.embed(words))], dim=1)
        h1, c1 = self.att_lstm(x1, (h1, c1))  # Eq. 3
        v_hat, alpha = self.attend(regions, regions_att, h1)  # Eq. 4
        h2, c2 = self.lang_lstm(torch.cat([v_hat, h1], dim=1), (h2, c2))  # Eq. 5
        logits = self.w_p(self.dropout(h2))  # softmax(W_p h2 + b_p) up to the softmax
        return logits, alpha, (h1, c1, h2, c2)

    def _check_features(self, regions: Tensor, mean: Tensor) -> None:
        if regions.dim() != 3 or regions.shape[-1] != self.feature_dim:
            raise ValueError(
                f"regions must be B x L x {self.feature_dim}, got {tuple(regions.shape)}"
            )
        if mean.shape != (regions.shape[0], self.feature_dim):
            raise ValueError(
                f"mean must be B x {self.feature_dim} = {(regions.shape[0], self.feature_dim)},"
                f" got {tuple(mean.shape)}"
            )

    # ------------------------------------------------------------------ training
    def forward(self, regions: Tensor, mean: Tensor, words_in: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher forcing: logits ``B x T x K`` and attention ``B x T x L``.

        ``words_in`` (``B x T``) are the ground-truth input words ``<start> w_1 .. w_{T-1}``;
        the logits at step ``t`` predict word ``t + 1`` of the caption.
        """
        self._check_features(regions, mean)
        if words_in.dim() != 2 or words_in.shape[0] != regions.shape[0]:
            raise ValueError(
                f"words_in must be B x T with B = {regions.shape[0]}, got {tuple(words_in.shape)}"
            )
        regions_att = self.w_va(regions)
        state = self.init_state(regions.shape[0], regions)
        all_logits, all_alphas = [], []
        for t in range(words_in.shape[1]):
            logits, alpha, state = self.step(words_in[:, t], state, regions, regions_att, mean)
            all_logits.append(logits)
            all_alphas.append(alpha)
        return torch.stack(all_logits, dim=1), torch.stack(all_alphas, dim=1)

    # ------------------------------------------------------------------ inference
    def _log_probs(self, logits: Tensor, banned_ids: Sequence[int]) -> Tensor:
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        if banned_ids:
            log_probs[:, list(banned_ids)] = float("-inf")
        return log_probs

    @torch.no_grad()
    def greedy(
        self,
        regions: Tensor,
        mean: Tensor,
        *,
        start_id: int,
        end_id: int,
        pad_id: int,
        max_len: int,
        banned_ids: Sequence[int] = (),
    ) -> Generation:
        """Most probable word at each step, at most ``max_len`` words (see :class:`Generation`).

        ``banned_ids`` (e.g. ``<pad>``, ``<start>``, ``<unk>``) are never emitted.
        """
        self._check_features(regions, mean)
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        batch, n_regions = regions.shape[:2]
        regions_att = self.w_va(regions)
        state = self.init_state(batch, regions)
        words = torch.full((batch,), start_id, dtype=torch.long, device=regions.device)
        tokens = torch.full((batch, max_len), pad_id, dtype=torch.long, device=regions.device)
        alphas = regions.new_zeros(batch, max_len, n_regions)
        scores = regions.new_zeros(batch, dtype=torch.float32)
        ended = torch.zeros(batch, dtype=torch.bool, device=regions.device)
        lengths = torch.zeros(batch, dtype=torch.long, device=regions.device)
        for t in range(max_len):
            logits, alpha, state = self.step(words, state, regions, regions_att, mean)
            log_probs = self._log_probs(logits, banned_ids)
            best_lp, words = log_probs.max(dim=-1)
            alive = ~ended
            tokens[alive, t] = words[alive]
            alphas[alive, t] = alpha[alive]
            scores = scores + torch.where(alive, best_lp, torch.zeros_like(best_lp))
            is_end = alive & (words == end_id)
            lengths = lengths + (alive & ~is_end).long()
            ended = ended | is_end
            if bool(ended.all()):
                break
        return Generation(tokens, lengths, scores, alphas, ended)

    @torch.no_grad()
    def beam_search(
        self,
        regions: Tensor,
        mean: Tensor,
        *,
        start_id: int,
        end_id: int,
        pad_id: int,
        max_len: int,
        beam_size: int = 3,
        length_penalty: float = 0.0,
        banned_ids: Sequence[int] = (),
    ) -> Generation:
        """Batched beam search: ``beam_size`` hypotheses per image, all images at once.

        Every step extends each live hypothesis by every word and keeps the ``beam_size`` best
        of the ``beam_size x K`` candidates per image by summed log-probability. A hypothesis
        that emitted ``<end>`` is kept unchanged with its score. The search stops when all
        hypotheses ended or after ``max_len`` words; a hypothesis cut at ``max_len`` is a
        valid caption, so a caption is always returned. The final choice per image maximises
        ``score / n_tokens ** length_penalty`` (``length_penalty = 0``: plain log-probability;
        ``1``: mean log-probability per token, ``<end>`` counted as a token).
        """
        self._check_features(regions, mean)
        if not isinstance(beam_size, int) or beam_size < 1:
            raise ValueError(f"beam_size must be a positive int, got {beam_size!r}")
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        if length_penalty < 0:
            raise ValueError(f"length_penalty must be >= 0, got {length_penalty!r}")
        batch, n_regions, _ = regions.shape
        k = beam_size
        device = regions.device
        vocab = self.vocab_size

        # every hypothesis of image b sits at rows b*k .. b*k+k-1
        regions_k = regions.repeat_interleave(k, dim=0)
        mean_k = mean.repeat_interleave(k, dim=0)
        regions_att = self.w_va(regions_k)
        state = self.init_state(batch * k, regions_k)
        words = torch.full((batch * k,), start_id, dtype=torch.long, device=device)

        # only the first hypothesis is live at the start (avoids k identical copies)
        scores = torch.full((batch, k), float("-inf"), device=device)
        scores[:, 0] = 0.0
        tokens = torch.full((batch, k, max_len), pad_id, dtype=torch.long, device=device)
        alphas = regions.new_zeros(batch, k, max_len, n_regions)
        ended = torch.zeros(batch, k, dtype=torch.bool, device=device)
        lengths = torch.zeros(batch, k, dtype=torch.long, device=device)
        offsets = (torch.arange(batch, device=device) * k).unsqueeze(1)  # B x 1

        for t in range(max_len):
            logits, alpha, state = self.step(words, state, regions_k, regions_att, mean_k)
            log_probs = self._log_probs(logits, banned_ids).view(batch, k, vocab)
            # an ended hypothesis continues only with <pad>, at no cost
            frozen = torch.full_like(log_probs, float("-inf"))
            frozen[..., pad_id] = 0.0
            log_probs = torch.where(ended.unsqueeze(-1), frozen, log_probs)
            candidates = (scores.unsqueeze(-1) + log_probs).view(batch, k * vocab)
            scores, flat = candidates.topk(k, dim=-1)  # B x k
            parent = torch.div(flat, vocab, rounding_mode="floor")
            word = flat % vocab
            rows = (offsets + parent).view(-1)  # rows of the parents in the B*k layout

            tokens = tokens.gather(1, parent.unsqueeze(-1).expand(-1, -1, max_len)).clone()
            alphas = alphas.gather(
                1, parent.view(batch, k, 1, 1).expand(-1, -1, max_len, n_regions)
            ).clone()
            was_ended = ended.gather(1, parent)
            lengths = lengths.gather(1, parent)
            state = tuple(s[rows] for s in state)  # type: ignore[assignment]
            alpha_rows = alpha[rows].view(batch, k, n_regions)

            live = ~was_ended
            tokens[..., t] = torch.where(live, word, torch.full_like(word, pad_id))
            alphas[:, :, t] = torch.where(live.unsqueeze(-1), alpha_rows, 0.0)
            is_end = live & (word == end_id)
            lengths = lengths + (live & ~is_end).long()
            ended = was_ended | is_end
            words = word.view(-1)
            if bool(ended.all()):
                break

        n_tokens = (lengths + ended.long()).clamp_min(1).float()
        final = scores / n_tokens**length_penalty if length_penalty > 0 else scores
        best = final.argmax(dim=1)  # B
        pick = best.view(batch, 1)
        return Generation(
            tokens=tokens.gather(1, pick.unsqueeze(-1).expand(-1, 1, max_len)).squeeze(1),
            lengths=lengths.gather(1, pick).squeeze(1),
            scores=scores.gather(1, pick).squeeze(1),
            alphas=alphas.gather(
                1, pick.view(batch, 1, 1, 1).expand(-1, 1, max_len, n_regions)
            ).squeeze(1),
            ended=ended.gather(1, pick).squeeze(1),
        )
