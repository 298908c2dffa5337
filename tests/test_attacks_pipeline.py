"""attack_images and the ``privcap attack`` command: tuning on held-out pairs, scores, output
files written all at once, bad input as one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from privcap.attacks import pipeline
from privcap.attacks.deconvolution import tune_wiener, wiener
from privcap.attacks.learned import RestorerGenerator
from privcap.attacks.pipeline import attack_images, build_camera, run_attack_cli
from privcap.cli import main
from privcap.metrics import psnr, ssim
from privcap.optics import IdentityCamera, LowResCamera, fft_convolve


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


class _KernelCamera(nn.Module):
    """A camera with a given PSF (``fft_convolve``, as the lens cameras)."""

    def __init__(self, psf: torch.Tensor) -> None:
        super().__init__()
        self.kernel = psf

    def psf(self) -> torch.Tensor:
        return self.kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fft_convolve(x, self.kernel.to(x.dtype))


def _scenes(n: int, seed: int, size: int = 40, margin: int = 5) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 3, size, size, dtype=torch.float64)
    inner = size - 2 * margin
    coarse = torch.rand(n, 3, inner // 3, inner // 3, generator=gen, dtype=torch.float64)
    x[..., margin:-margin, margin:-margin] = torch.nn.functional.interpolate(
        coarse, size=(inner, inner), mode="bilinear", align_corners=False)
    return x


@pytest.fixture(scope="module")
def camera() -> _KernelCamera:
    gen = torch.Generator().manual_seed(0)
    psf = 0.3 * torch.rand(3, 5, 5, generator=gen, dtype=torch.float64)
    psf /= psf.sum(dim=(-2, -1), keepdim=True) / 0.3
    psf[:, 2, 2] += 0.7
    return _KernelCamera(psf)


# --------------------------------------------------------------------------- attack_images
def test_wiener_is_tuned_on_the_attackers_pairs_only(camera):
    tune_x, eval_x = _scenes(3, seed=1), _scenes(3, seed=2)
    tune_y = camera(tune_x)  # noise-free tuning pairs: a vanishing nsr is best there
    gen = torch.Generator().manual_seed(3)
    eval_y = camera(eval_x) + 0.2 * torch.randn(eval_x.shape, generator=gen,
                                                dtype=torch.float64)
    candidates = [1e-10, 1e-2, 1.0]
    result = attack_images(camera, "wiener", eval_y, eval_x, tuning=(tune_y, tune_x),
                           candidates=candidates)
    assert result["parameter"]["nsr"] == 1e-10
    assert tune_wiener(eval_y, eval_x, camera.psf(), candidates)[0] != 1e-10  # not the eval's
    expected = wiener(eval_y, camera.psf(), 1e-10, clip=True)
    torch.testing.assert_close(result["images"], expected)
    s, p = ssim(expected, eval_x), psnr(expected, eval_x)
    assert result["SSIM_mean"] == pytest.approx(float(s.mean()))
    assert result["SSIM_std"] == pytest.approx(float(s.std(unbiased=False)))
    assert result["PSNR_mean"] == pytest.approx(float(p.mean()))
    assert (result["n_images"], result["n_tuning"]) == (3, 3)
    assert [row["nsr"] for row in result["table"]] == candidates


def test_an_assumed_psf_replaces_the_cameras(camera):
    x, tx = _scenes(2, seed=9), _scenes(2, seed=10)
    wrong = torch.ones(3, 5, 5, dtype=torch.float64) / 25  # a box blur, not the lens
    exact = attack_images(camera, "wiener", camera(x), x, tuning=(camera(tx), tx),
                          candidates=[1e-8])
    assumed = attack_images(camera, "wiener", camera(x), x, tuning=(camera(tx), tx),
                            candidates=[1e-8], psf=wrong)
    torch.testing.assert_close(assumed["images"], wiener(camera(x), wrong, 1e-8, clip=True))
    assert exact["SSIM_mean"] > assumed["SSIM_mean"] + 0.05


def test_none_and_richardson_lucy(camera):
    x, tx = _scenes(2, seed=4), _scenes(2, seed=5)
    y = camera(x)
    none = attack_images(None, "none", y, x)
    assert torch.equal(none["images"], y)
    assert none["SSIM_mean"] == pytest.approx(float(ssim(y, x).mean()))
    rl = attack_images(camera, "richardson-lucy", y, x, tuning=(camera(tx), tx),
                       iterations=[1, 30])
    assert rl["parameter"] == {"iterations": 30}
    assert rl["SSIM_mean"] > none["SSIM_mean"]


def test_learned_attack_with_a_given_restorer(camera):
    x = _scenes(2, seed=6, size=64).float()
    y = camera(x.double()).float() + 0.02
    restorer = RestorerGenerator(pretrained=False).eval()  # untrained: the identity map
    result = attack_images(LowResCamera(), "learned", y, x, restorer=restorer)
    torch.testing.assert_close(result["images"], y.clamp(0, 1))


def test_attack_errors(camera):
    x, tx = _scenes(2, seed=7), _scenes(2, seed=8)
    y, ty = camera(x), camera(tx)
    with pytest.raises(ValueError, match="attack must be one of"):
        attack_images(camera, "deblurgan", y, x)
    with pytest.raises(ValueError, match="LowResCamera has none"):
        attack_images(LowResCamera(), "wiener", y, x, tuning=(ty, tx))
    with pytest.raises(ValueError, match="IdentityCamera"):
        attack_images(IdentityCamera(), "richardson-lucy", y, x, tuning=(ty, tx))
    with pytest.raises(ValueError, match="needs tuning"):
        attack_images(camera, "wiener", y, x)
    with pytest.raises(ValueError, match="trained restorer or tuning"):
        attack_images(camera, "learned", y, x)
    with pytest.raises(ValueError, match="also appear in the tuning set"):
        attack_images(camera, "wiener", y, x, tuning=(torch.cat([ty, y[:1]]),
                                                       torch.cat([tx, x[:1]])))
    with pytest.raises(ValueError, match="image size"):
        attack_images(camera, "wiener", y, x[..., :-1], tuning=(ty, tx))
    with pytest.raises(ValueError, match="channels and size"):
        attack_images(camera, "wiener", y, x, tuning=(ty[..., :-2, :-2], tx[..., :-2, :-2]))
    with pytest.raises(ValueError, match="does not match the PSF of the camera"):
        attack_images(camera, "wiener", y, x, tuning=(ty, tx), psf=torch.ones(1, 5, 5) / 25)
    with pytest.raises(ValueError, match="does not match the PSF of the camera"):
        attack_images(camera, "wiener", y, x, tuning=(ty, tx), psf=torch.ones(3, 7, 7) / 49)
    with pytest.raises(ValueError, match="non-finite"):
        attack_images(camera, "wiener", y, x, tuning=(ty, tx),
                      psf=torch.full((3, 5, 5), float("nan")))
    with pytest.raises(ValueError, match="only used by the non-blind"):
        attack_images(camera, "none", y, x, psf=camera.psf())
    lens = build_camera("random-lens")  # a 128-pixel PSF cannot be that of 40-pixel images
    with pytest.raises(ValueError, match="larger than the images"):
        attack_images(lens, "wiener", y, x, tuning=(ty, tx))


# --------------------------------------------------------------------------- command
def test_run_attack_cli_writes_pngs_and_scores(tmp_path):
    out = tmp_path / "wiener"
    report = run_attack_cli(None, "wiener", ["synthetic:6"], out, camera="random-lens",
                            candidates=[1e-3, 1e-1])
    scores = json.loads((out / "scores.json").read_text())
    assert scores == report
    assert scores["n_images"] == 2 and scores["n_tuning"] == 4
    assert scores["parameter"]["nsr"] in (1e-3, 1e-1)
    names = [row["name"] for row in scores["per_image"]]
    assert not set(names) & set(scores["tuning_images"])
    pngs = sorted(p.stem for p in (out / "reconstructions").iterdir())
    assert pngs == sorted(names)
    png = np.asarray(Image.open(out / "reconstructions" / f"{names[0]}.png"))
    assert png.shape == (128, 128, 3) and png.dtype == np.uint8
    assert 0.0 < scores["SSIM_mean"] < 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["wiener"]  # no temporary left


def test_run_attack_cli_attacks_what_the_camera_records(tmp_path):
    """The private images carry the set read noise and bit depth, recorded in scores.json;
    zero noise and no bit depth give the noise-free float images."""
    common = dict(camera="focused", limit=4)
    clean = run_attack_cli(None, "none", ["synthetic:4"], tmp_path / "a", read_noise_sigma=0.0,
                           bits=None, **common)
    noisy = run_attack_cli(None, "none", ["synthetic:4"], tmp_path / "b", read_noise_sigma=0.05,
                           **common)
    assert clean["recording"] == {"noise_sigma": 0.0, "bits": None, "seed": 0}
    assert noisy["recording"] == {"noise_sigma": 0.05, "bits": 8, "seed": 0}
    assert noisy["SSIM_mean"] < clean["SSIM_mean"] - 0.05
    default = run_attack_cli(None, "none", ["synthetic:4"], tmp_path / "c", **common)
    assert default["recording"]["noise_sigma"] == 0.01 and default["recording"]["bits"] == 8
    with pytest.raises(ValueError, match="noise_sigma"):
        run_attack_cli(None, "none", ["synthetic:4"], tmp_path / "d", read_noise_sigma=-1.0,
                       **common)
    assert not (tmp_path / "d").exists()


def test_run_attack_cli_never_writes_half_way(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    with pytest.raises(ValueError, match="not empty"):
        run_attack_cli(None, "none", ["synthetic:3"], out, camera="focused")
    assert (out / "keep.txt").read_text() == "old"

    calls = []

    def failing_png(image, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        path.write_bytes(b"png")

    monkeypatch.setattr(pipeline, "_write_png", failing_png)
    with pytest.raises(OSError, match="disk full"):
        run_attack_cli(None, "none", ["synthetic:6"], out, camera="focused", overwrite=True)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]  # the old result is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left
    monkeypatch.undo()
    run_attack_cli(None, "none", ["synthetic:3"], out, camera="focused", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["reconstructions", "scores.json"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--camera", "low-res", "--attack", "wiener"], "LowResCamera has none"),
        (["--camera", "no-lens", "--attack", "richardson-lucy"], "IdentityCamera"),
        (["RUN", "--camera", "focused", "--attack", "none"], "not both or neither"),
        (["--attack", "none"], "not both or neither"),
        (["MISSING_RUN", "--attack", "wiener"], "not found"),
        (["--camera", "focused", "--attack", "none", "--read-noise", "-1"], "noise_sigma"),
        (["--camera", "focused", "--attack", "none", "--bits", "40"], "bits"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, args, message):
    args = [str(tmp_path / a) if a.isupper() else a for a in args]
    (tmp_path / "RUN").mkdir()
    code = main(["attack", *args, "--inputs", "synthetic:3", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("privcap: error:") and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_cli_missing_input_and_run_without_checkpoint(tmp_path, capsys):
    code = main(["attack", "--camera", "focused", "--attack", "none", "--inputs",
                 str(tmp_path / "nothing.png"), "--out", str(tmp_path / "o")])
    assert code == 2 and "input not found" in capsys.readouterr().err
    (tmp_path / "run").mkdir()
    code = main(["attack", str(tmp_path / "run"), "--attack", "none", "--inputs",
                 "synthetic:3", "--out", str(tmp_path / "o")])
    assert code == 2 and "best.pt" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_success_prints_a_summary(tmp_path, capsys):
    code = main(["attack", "--camera", "defocus", "--attack", "none", "--inputs",
                 "synthetic:3", "--out", str(tmp_path / "o"), "--no-progress"])
    assert code == 0
    assert "none on 1 images" in capsys.readouterr().out
    assert (tmp_path / "o" / "scores.json").is_file()
