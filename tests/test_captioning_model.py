"""Captioner (encoder + decoder), profile presets and checkpoints with their vocabulary."""

from __future__ import annotations

import pytest
import torch

from privcap.captioning import (
    Captioner,
    CaptionerConfig,
    Vocabulary,
    captioner_config,
    load_captioner,
    save_captioner,
)
from privcap.captioning.checkpoint import vocab_path_for

CAPTIONS = ["a red circle on the left", "a blue square at the top", "two green stars"] * 2


def tiny_config(**overrides) -> CaptionerConfig:
    args = dict(small_cnn_channels=(8, 16), small_cnn_convs=(1, 1), feature_dim=12,
                embed_dim=8, hidden_dim=16, attention_dim=8, dropout=0.0, image_size=32,
                max_len=6)
    args.update(overrides)
    return captioner_config("quick", **args)


def tiny_model(seed: int = 0, **overrides) -> Captioner:
    torch.manual_seed(seed)
    vocab = Vocabulary.build(CAPTIONS, min_count=2, max_len=6)
    return Captioner(tiny_config(**overrides), vocab)


def test_profile_presets() -> None:
    quick = captioner_config("quick")
    assert quick.backbone == "small_cnn"
    full = captioner_config("full")
    assert (full.backbone, full.hidden_dim, full.embed_dim, full.attention_dim, full.dropout) == (
        "resnet101", 1000, 1000, 512, 0.5
    )
    assert captioner_config("coco-mini").backbone == "mobilenet_v2"
    assert captioner_config("quick", hidden_dim=7).hidden_dim == 7
    with pytest.raises(ValueError, match="profile must be one of"):
        captioner_config("huge")
    with pytest.raises(ValueError, match="unknown captioner config keys"):
        captioner_config("quick", hiden_dim=7)


def test_config_dict_round_trip() -> None:
    config = tiny_config(beam_size=4)
    assert CaptionerConfig.from_dict(config.to_dict()) == config


def test_forward_and_generate_shapes() -> None:
    model = tiny_model()
    images = torch.rand(3, 3, 32, 32)
    ids = model.vocab.encode_batch(CAPTIONS[:3])
    logits, alphas = model(images, ids[:, :-1])
    assert logits.shape == (3, 7, len(model.vocab)) and alphas.shape == (3, 7, 64)
    out = model.generate(images, beam_size=2)
    assert len(out.captions) == 3 and out.grid == (8, 8)
    assert all(isinstance(c, str) and len(c.split()) <= 6 for c in out.captions)
    assert [len(w) for w in out.words] == out.generation.lengths.tolist()
    assert "<unk>" not in " ".join(out.captions) and "<pad>" not in " ".join(out.captions)
    assert model.training  # generate restores the mode


@pytest.mark.usefixtures("one_torch_thread")
def test_generate_greedy_is_the_hand_unrolled_decode() -> None:
    """beam_size=1: at each step the most probable word except <pad> (0), <start> (1) and
    <unk> (3), stopping after <end> (2) or 6 words; the caption leaves <end> out."""
    model = tiny_model(3)
    with torch.no_grad():  # larger output weights: some captions end before max_len
        model.decoder.w_p.weight.mul_(5.0)
    images = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    images = images * torch.linspace(0, 1, 6).view(6, 1, 1, 1)
    out = model.generate(images, beam_size=1)
    model.eval()
    dec = model.decoder
    expected = []
    with torch.no_grad():
        feats = model.encode(images)
        for b in range(6):
            regions, mean = feats.regions[b : b + 1], feats.mean[b : b + 1]
            state = tuple(torch.zeros(1, dec.hidden_dim) for _ in range(4))
            word, words = torch.tensor([1]), []
            for _ in range(6):
                logits, _, state = dec.step(word, state, regions, dec.w_va(regions), mean)
                logits[0, [0, 1, 3]] = float("-inf")
                word = logits.argmax(dim=1)
                if int(word) == 2:
                    break
                words.append(model.vocab.words[int(word)])
            expected.append(" ".join(words))
    assert out.captions == expected
    assert any(len(c.split()) < 6 for c in expected)  # <end> was reached


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("beam_size", [1, 3])
def test_generate_emits_the_caption_forced_by_the_output_layer(beam_size: int) -> None:
    """W_p = 0 and a bias that prefers <unk>, <pad>, <start> (never emitted), then "red":
    "red" six times (max_len of the vocabulary); with <end> preferred, the empty caption."""
    model = tiny_model(2)
    vocab = model.vocab
    with torch.no_grad():
        model.decoder.w_p.weight.zero_()
        bias = model.decoder.w_p.bias
        bias.fill_(-5.0)
        bias[[0, 1, 3]] = 10.0
        bias[vocab.words.index("red")] = 5.0
        bias[2] = float("-inf")
    images = torch.rand(2, 3, 32, 32)
    out = model.generate(images, beam_size=beam_size)
    assert out.captions == ["red red red red red red"] * 2
    assert out.words == [["red"] * 6] * 2
    with torch.no_grad():
        bias[2] = 6.0
    assert model.generate(images, beam_size=beam_size).captions == ["", ""]


def test_checkpoint_round_trip(tmp_path) -> None:
    model = tiny_model(2, beam_size=2).eval()
    path = save_captioner(model, tmp_path / "ckpt" / "model.pt", extra={"epoch": 3})
    assert vocab_path_for(path).is_file()
    loaded, extra = load_captioner(path, vocab=model.vocab)
    assert extra == {"epoch": 3}
    assert loaded.vocab == model.vocab and loaded.config == model.config
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    images = torch.rand(2, 3, 32, 32)
    assert loaded.generate(images).captions == model.generate(images).captions
    # loading without a vocabulary uses the stored one
    again, _ = load_captioner(path)
    assert again.vocab.words == model.vocab.words


def test_vocabulary_mismatch_is_refused_with_a_clear_error(tmp_path) -> None:
    model = tiny_model()
    path = save_captioner(model, tmp_path / "model.pt")
    words = list(model.vocab.words)
    words[5], words[6] = words[6], words[5]
    swapped = Vocabulary(words=words, max_len=model.vocab.max_len)
    with pytest.raises(ValueError, match=r"vocabulary mismatch.*id 5 is") as info:
        load_captioner(path, vocab=swapped)
    assert str(path) in str(info.value)
    bigger = Vocabulary(words=[*model.vocab.words, "zebra"], max_len=model.vocab.max_len)
    with pytest.raises(ValueError, match="words in the checkpoint"):
        load_captioner(path, vocab=bigger)


def test_damaged_or_foreign_checkpoints_are_refused(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_captioner(tmp_path / "missing.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="not a captioner checkpoint"):
        load_captioner(foreign)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="garbage.pt"):
        load_captioner(garbage)
    # a stored vocabulary edited by hand no longer matches the weights
    model = tiny_model()
    path = save_captioner(model, tmp_path / "model.pt")
    payload = torch.load(path, weights_only=False)
    payload["vocab"]["words"].append("zebra")
    torch.save(payload, path)
    with pytest.raises(ValueError, match="damaged"):
        load_captioner(path)
