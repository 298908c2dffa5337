"""Privacy of trained cameras: reconstruction attacks, faces, re-identification, hidden detail.

:func:`run_privacy` measures the cameras of Table 1 (seed 0 of ``no-lens``, ``learned-lens``,
``defocus`` and ``low-res``, trained by :func:`privcap.training.run_table1`) and writes
``results/<profile>/privacy.json``::

    {"profile": str, "dataset": str,
     "private": [{"camera", "SSIM_mean", "SSIM_std", "PSNR_mean", "n_images"}],
     "attacks": [{"camera", "attack": "wiener" | "richardson-lucy" | "learned",
                  "SSIM_mean", "SSIM_std", "PSNR_mean", "n_images"}],
     "control": [{"blur", "attack", "SSIM_mean"}],
     "faces": [{"camera", "attack", "detector", "faces", "detected"}],
     "sensitive_detail": [{"camera", "attack", "accuracy", "chance", "entropy_bits"}],
     "reidentification": [{"camera", "attack", "model", "gallery", "top1", "chance"}]}

``attack`` is ``null`` for the camera's own (private) images; the originals appear as the
camera ``"no-lens"``. ``PSNR_mean`` is ``null`` where it is infinite (the no-lens camera
records the scene itself).

What is measured, on which images (:class:`PrivacyData`):

* **Reconstruction** (paper Fig. 3): SSIM and PSNR against the originals of held-out
  *scenes* (the profile's test images: synthetic scenes in ``quick``), split about 2:1 into
  the attacker's own pairs and the evaluated ones (:func:`privcap.attacks.split_pairs`).
  Non-blind attacks (Wiener, Richardson-Lucy; :mod:`privcap.attacks.deconvolution`) know
  the camera's PSF and choose their parameter (noise-to-signal ratio, iterations) on the
  attacker's pairs; they exist only for cameras with a PSF (not ``low-res``, not
  ``no-lens``). The learned attack (:mod:`privcap.attacks.learned`, DeblurGAN-v2-like) is
  trained on the attacker's pairs: its scenes and real photographs that hold none of the
  evaluated faces (the bundled photos other than the two portraits and, with
  ``../shared/data/coco-mini``, the COCO photos that give no face crop).
* **Competence control** (``control``): the same attackers on a mild Gaussian blur
  (``sigma = 1.5`` px) of the evaluated scenes; the learned one, trained on the blurred
  attacker's images, must reach SSIM >= 0.8 (:func:`privcap.attacks.competence_control`,
  mirrored borders). Wiener and Richardson-Lucy get the Gaussian as their PSF and the
  camera's forward model (zero-padded convolution). Each blur has its row with attack
  ``null`` (the blurred images themselves).
* **Faces** (``faces``): face-centred crops (:mod:`privcap.privacy.face_crops`) of the
  coco-mini people, when ``../shared/data/coco-mini`` is there, and of the two bundled
  portraits. ``faces`` counts the faces a detector finds on the originals and ``detected``
  how many of them it still finds (same place, IoU >= 0.5) on the camera's image or its
  reconstruction (:func:`privcap.privacy.detection_rate`, rule ``"overlap"``). Non-blind
  attacks on faces are tuned on the attacker's photographs.
* **Re-identification** (``reidentification``): top-1 accuracy of dlib's face embedding
  (:mod:`privcap.privacy.reidentification`), each altered face matched against the gallery
  of all original faces; chance is ``1 / gallery``.
* **Hidden detail** (``sensitive_detail``): the best of the readers of
  :mod:`privcap.privacy.readers` (adaptive: trained on labelled scenes seen through the same
  camera, tested on scenes whose digit scans it never saw) reads the digit tag of synthetic
  scenes, for each camera and after the camera's best non-blind attack.

Everything else a chapter shows goes to ``privacy_details.json`` (chosen parameters, tuning
tables, per-image scores, face SSIMs, the readers one by one, the transfer function of each
lens (:func:`radial_mtf`), timings) and
``privacy_examples.pt`` (a few images of every camera and attack, 8-bit). The three files are
written atomically, ``privacy.json`` last.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from privcap.attacks.deconvolution import (
    DEFAULT_NSR_CANDIDATES,
    DEFAULT_RL_ITERATIONS,
    camera_psf,
    richardson_lucy,
    transfer_function,
    tune_richardson_lucy,
    tune_wiener,
    wiener,
)
from privcap.attacks.learned import (
    CONTROL_SIGMA_PX,
    augment_crops,
    competence_control,
    split_pairs,
    train_restorer,
)
from privcap.attacks.pipeline import attack_images
from privcap.metrics import psnr, ssim
from privcap.optics.camera import IdentityCamera
from privcap.optics.convolution import fft_convolve
from privcap.optics.recording import SensorRecording
from privcap.privacy.face_crops import FaceCrops, coco_face_crops, portrait_face_crops
from privcap.privacy.faces import (
    DETECTORS,
    IOU_THRESHOLD,
    MTCNN_MIN_PROBABILITY,
    detect_faces,
    detection_rate,
)
from privcap.privacy.readers import best_reader_accuracy, render_through
from privcap.privacy.reidentification import (
    RECOGNITION_MODEL_FILE,
    face_embeddings,
    top1_reidentification,
)
from privcap.profiles import check_profile

__all__ = [
    "ATTACKS",
    "BYSTANDER_PHOTOS",
    "CONTROL_BLUR",
    "CONTROL_BLUR_MIRRORED",
    "DETAILS_FILE",
    "EXAMPLES_FILE",
    "NON_BLIND",
    "PRIVACY_FILE",
    "PRIVACY_KEYS",
    "REID_MODEL",
    "PrivacyData",
    "PrivacySettings",
    "best_reconstruction",
    "check_attacks",
    "default_attacks",
    "detail_free_ssim",
    "gaussian_psf",
    "load_privacy",
    "load_table1_cameras",
    "measure_privacy",
    "privacy_data",
    "radial_mtf",
    "resolve_coco_dir",
    "run_privacy",
    "write_privacy",
]

PRIVACY_FILE = "privacy.json"
DETAILS_FILE = "privacy_details.json"
EXAMPLES_FILE = "privacy_examples.pt"
#: the attacks of ``privacy.json``, in its order
ATTACKS: tuple[str, ...] = ("wiener", "richardson-lucy", "learned")
#: attacks that know the camera's PSF
NON_BLIND: tuple[str, ...] = ("wiener", "richardson-lucy")
#: the top-level keys of ``privacy.json`` and the keys of each kind of row
PRIVACY_KEYS: dict[str, tuple[str, ...]] = {
    "private": ("camera", "SSIM_mean", "SSIM_std", "PSNR_mean", "n_images"),
    "attacks": ("camera", "attack", "SSIM_mean", "SSIM_std", "PSNR_mean", "n_images"),
    "control": ("blur", "attack", "SSIM_mean"),
    "faces": ("camera", "attack", "detector", "faces", "detected"),
    "sensitive_detail": ("camera", "attack", "accuracy", "chance", "entropy_bits"),
    "reidentification": ("camera", "attack", "model", "gallery", "top1", "chance"),
}
#: the re-identification network (dlib's ResNet face descriptor)
REID_MODEL = RECOGNITION_MODEL_FILE.removesuffix(".dat")
#: the blur of the competence control of the non-blind attacks: the camera's forward model
#: (zero-padded convolution) with a Gaussian PSF
CONTROL_BLUR = f"gaussian sigma {CONTROL_SIGMA_PX:g} px, zero borders (camera model)"
#: the blur of the learned attack's control (:func:`privcap.attacks.competence_control`)
CONTROL_BLUR_MIRRORED = f"gaussian sigma {CONTROL_SIGMA_PX:g} px, mirrored borders"
#: bundled photographs the attacker may train on: none shows an evaluated face
BYSTANDER_PHOTOS: tuple[str, ...] = ("camera", "coffee", "chelsea", "rocket")
#: the seeds of the synthetic reader scenes (train and test split)
READER_SEED = 20_000
_BATCH = 32


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class PrivacySettings:
    """Sizes of the privacy measurements.

    Attributes:
        num_scenes: held-out scenes, split ``attacker_ratio`` : rest into the attacker's
            pairs and the evaluated ones.
        attacker_ratio: share of the scenes that the attacker owns (2/3: the paper's
            2,103 / 1,111 pairs).
        num_tuning: attacker's pairs (scenes, and photographs for the faces) on which
            Wiener and Richardson-Lucy choose their parameter.
        nsr_candidates: noise-to-signal ratios tried by Wiener.
        rl_iterations: iteration counts tried by Richardson-Lucy.
        photo_crops: random crops per COCO photograph in the attacker's training set.
        bystander_crops: random crops per bundled photograph (:data:`BYSTANDER_PHOTOS`).
        restorer: keyword arguments of :func:`privcap.attacks.train_restorer` (the learned
            attack and its control).
        reader_train, reader_test: synthetic scenes of the hidden-detail readers.
        reader_training: per-reader overrides (``{"cnn": {"epochs": 2}}``) of
            :func:`privcap.privacy.best_reader_accuracy`.
        max_coco_faces: keep at most this many coco-mini faces (``None``: all).
        examples: scenes shown per camera in ``privacy_examples.pt`` (faces: the portraits).
        seed: seed of the splits, crops and trainings (and of the read noise).
        read_noise_sigma, bits: what the camera hands over (:class:`SensorRecording`): every
            camera's image is its noise-free sensor image plus Gaussian read noise of this
            standard deviation (the middle of the training range,
            ``OpticsConfig.noise_sigma_range``), stored with ``bits`` bits per channel. The
            attacker only ever sees that recording, for the images it attacks and for its
            own training pairs; the competence control's blurred images are recorded the
            same way. ``read_noise_sigma=0`` and ``bits=None`` give the noise-free float
            image (an attacker who reads the sensor before noise: no physical camera).
    """

    num_scenes: int = 240
    attacker_ratio: float = 2 / 3
    num_tuning: int = 64
    nsr_candidates: tuple[float, ...] = DEFAULT_NSR_CANDIDATES
    rl_iterations: tuple[int, ...] = DEFAULT_RL_ITERATIONS
    photo_crops: int = 1
    bystander_crops: int = 8
    restorer: dict[str, Any] = field(default_factory=lambda: {
        "epochs": 8, "batch_size": 16, "crop_size": 64})
    reader_train: int = 1500
    reader_test: int = 500
    reader_training: dict[str, dict[str, float]] | None = None
    max_coco_faces: int | None = None
    examples: int = 3
    seed: int = 0
    read_noise_sigma: float = 0.01
    bits: int | None = 8

    def __post_init__(self) -> None:
        SensorRecording(self.read_noise_sigma, self.bits)  # validates both
        for name in ("num_scenes", "num_tuning", "reader_train", "reader_test", "examples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.num_scenes < 3:
            raise ValueError(f"num_scenes must be >= 3 (attacker, evaluated), got "
                             f"{self.num_scenes}")
        if not 0 < self.attacker_ratio < 1:
            raise ValueError(f"attacker_ratio must lie in (0, 1), got {self.attacker_ratio!r}")
        for name in ("photo_crops", "bystander_crops"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if not self.nsr_candidates or not self.rl_iterations:
            raise ValueError("nsr_candidates and rl_iterations must not be empty")

    @property
    def recording(self) -> SensorRecording:
        """The recording model of every camera's images (see the attributes)."""
        return SensorRecording(self.read_noise_sigma, self.bits, self.seed)

    @classmethod
    def smoke(cls) -> PrivacySettings:
        """Tiny sizes for the test suite (seconds; numbers without meaning)."""
        return cls(num_scenes=9, num_tuning=4, nsr_candidates=(1e-3, 1e-1),
                   rl_iterations=(1, 3), photo_crops=0, bystander_crops=1,
                   restorer={"epochs": 1, "batch_size": 4, "crop_size": None},
                   reader_train=24, reader_test=12,
                   reader_training={"cnn": {"epochs": 1}, "mobilenet_v2": {"epochs": 1}},
                   max_coco_faces=3, examples=2)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        out = asdict(self)
        out["nsr_candidates"] = list(self.nsr_candidates)
        out["rl_iterations"] = list(self.rl_iterations)
        return out


# --------------------------------------------------------------------------- data
@dataclass
class PrivacyData:
    """The images of the measurements (all ``N x 3 x S x S`` in ``[0, 1]``).

    Attributes:
        image_size: ``S``, the cameras' image size.
        scenes_attacker, scenes_eval: the attacker's scenes and the evaluated ones.
        faces: face crops (coco-mini people, then the portraits).
        photos: the attacker's real photographs (no evaluated face among them).
        reader_train, reader_test: ``(images, labels, tag boxes)`` of the tag readers.
        description: what the data are, for ``privacy.json``'s ``dataset``.
        coco_faces: whether the coco-mini faces are included.
    """

    image_size: int
    scenes_attacker: Tensor
    scenes_eval: Tensor
    faces: FaceCrops
    photos: Tensor
    reader_train: tuple[Tensor, Tensor, Tensor]
    reader_test: tuple[Tensor, Tensor, Tensor]
    description: str
    coco_faces: bool


def _stack(dataset: Any) -> Tensor:
    return torch.stack([dataset[i]["image"] for i in range(len(dataset))]).float()


def _coco_photos(coco_dir: Path, exclude: set[str], size: int, crops: int, seed: int) -> Tensor:
    from privcap.data.images import load_image

    folder = coco_dir / "val2017"
    files = sorted(f for f in folder.glob("*.jpg") if f.name not in exclude)
    if not files or crops == 0:
        return torch.empty(0, 3, size, size)
    return augment_crops([load_image(f) for f in files], size, crops, seed=seed)


def resolve_coco_dir(coco_dir: str | Path | None) -> Path | None:
    """The coco-mini folder to use: ``"auto"`` is ``../shared/data/coco-mini`` beside the
    repository when it exists (else ``None``); an explicit folder must exist."""
    from privcap.training.data import SHARED_COCO_MINI

    if coco_dir is None:
        return None
    if isinstance(coco_dir, str) and coco_dir == "auto":
        return SHARED_COCO_MINI if SHARED_COCO_MINI.is_dir() else None
    folder = Path(coco_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"coco-mini folder not found: {folder}")
    return folder


def privacy_data(
    profile: str,
    image_size: int,
    settings: PrivacySettings | None = None,
    *,
    coco_dir: str | Path | None = "auto",
) -> PrivacyData:
    """Scenes, faces, attacker photographs and reader scenes for :func:`measure_privacy`.

    Args:
        profile: the data profile; its test images are the scenes (``quick``: synthetic
            scenes, the ones Table 1 is evaluated on first).
        image_size: side of every image (the cameras' image size).
        settings: sizes (default :class:`PrivacySettings`).
        coco_dir: the coco-mini folder (``"auto"``: ``../shared/data/coco-mini`` beside the
            repository, used when present; ``None``: portraits only). An explicit folder
            that does not exist is an error.
    """
    from privcap.data.photos import sample_photos
    from privcap.data.synthetic import SyntheticScenes
    from privcap.training.data import load_test_data

    check_profile(profile)
    s = settings or PrivacySettings()
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 16:
        raise ValueError(f"image_size must be an integer >= 16 pixels, got {image_size!r}")
    coco = resolve_coco_dir(coco_dir)

    test, info = load_test_data(profile, num_images=s.num_scenes, image_size=image_size)
    scenes = _stack(test)
    if len(scenes) < 3:
        raise ValueError(f"need at least 3 held-out scenes, the profile gives {len(scenes)}")
    own, evaluated = split_pairs(len(scenes), s.attacker_ratio, s.seed)

    faces = portrait_face_crops(image_size)
    n_coco = 0
    photos = augment_crops(list(sample_photos(list(BYSTANDER_PHOTOS)).values()), image_size,
                           max(s.bystander_crops, 1), seed=s.seed)[
        : len(BYSTANDER_PHOTOS) * s.bystander_crops]
    if coco is not None:
        people = coco_face_crops(coco, size=image_size, max_faces=s.max_coco_faces)
        n_coco = len(people)
        faces = people + faces
        # the attacker's photographs: COCO photos that give no evaluated face
        with_faces = {c.file_name for c in people.info}
        photos = torch.cat([_coco_photos(coco, with_faces, image_size, s.photo_crops, s.seed),
                            photos])

    reader_train = render_through(
        SyntheticScenes(s.reader_train, image_size, seed=READER_SEED + s.seed, split="train"),
        None)
    reader_test = render_through(
        SyntheticScenes(s.reader_test, image_size, seed=READER_SEED + s.seed, split="test"),
        None)
    name = info.get("name", profile)
    face_text = (f"{n_coco} coco-mini face crops and the 2 portraits" if coco is not None
                 else "the 2 portraits only (../shared/data/coco-mini not found: no COCO faces)")
    description = (
        f"{name} test scenes ({len(own)} attacker / {len(evaluated)} evaluated, "
        f"{image_size} px); faces: {face_text}; attacker photos: {len(photos)} crops without "
        f"evaluated faces; hidden detail: {s.reader_train} / {s.reader_test} synthetic "
        "scenes (train / test digit scans)"
    )
    return PrivacyData(image_size, scenes[own], scenes[evaluated], faces, photos,
                       reader_train, reader_test, description, coco is not None)


# --------------------------------------------------------------------------- cameras
def load_table1_cameras(
    cameras_root: str | Path,
    kinds: Sequence[str] | None = None,
    *,
    seed: int = 0,
    which: str = "last",
) -> tuple[dict[str, nn.Module], int]:
    """The cameras of Table 1's runs ``<cameras_root>/<kind>/seed<seed>/`` (evaluation mode)
    and their image size.

    ``which="last"`` is the camera Table 1 evaluated (the end of training). A missing run
    folder or checkpoint is a ``FileNotFoundError`` naming it; a folder holding another kind
    of camera, or cameras of different image sizes, a ``ValueError``.
    """
    from privcap.training.cameras import CAMERA_KINDS, check_kind
    from privcap.training.checkpoint import load_run

    kinds = tuple(CAMERA_KINDS if kinds is None else kinds)
    if not kinds:
        raise ValueError("kinds is empty")
    root = Path(cameras_root)
    cameras: dict[str, nn.Module] = {}
    sizes: dict[str, int] = {}
    for kind in kinds:
        check_kind(kind)
        run_dir = root / kind / f"seed{int(seed)}"
        if not run_dir.is_dir():
            raise FileNotFoundError(
                f"camera run folder not found: {run_dir} (train Table 1 first: chapter 05 or "
                "privcap.training.run_table1)"
            )
        model, camera, _ = load_run(run_dir, which=which, camera_kind=kind)
        cameras[kind] = camera
        sizes[kind] = int(model.config.image_size)
    if len(set(sizes.values())) != 1:
        raise ValueError(f"the cameras' runs use different image sizes: {sizes}")
    return cameras, next(iter(sizes.values()))


def default_attacks(cameras: Mapping[str, nn.Module],
                    learned: Sequence[str] = ()) -> dict[str, tuple[str, ...]]:
    """Wiener and Richardson-Lucy for every camera with a PSF, the learned attack for the
    cameras named in ``learned``."""
    unknown = [name for name in learned if name not in cameras]
    if unknown:
        raise ValueError(f"learned attack asked for unknown camera(s) {unknown}; cameras: "
                         f"{list(cameras)}")
    out = {}
    for name, camera in cameras.items():
        try:
            camera_psf(camera)
            chosen = list(NON_BLIND)
        except ValueError:
            chosen = []
        if name in learned:
            chosen.append("learned")
        out[name] = tuple(chosen)
    return out


def check_attacks(cameras: Mapping[str, nn.Module],
                  attacks: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """``attacks`` (``{camera: attacks}``) checked against ``cameras``: known cameras and
    attacks only, and a non-blind attack only for a camera with a PSF (``ValueError``
    naming the camera otherwise)."""
    plan = {}
    for name, chosen in attacks.items():
        if name not in cameras:
            raise ValueError(f"attacks given for unknown camera {name!r}; cameras: "
                             f"{list(cameras)}")
        if isinstance(chosen, str):
            raise ValueError(f"attacks of {name!r} must be a list of names, got {chosen!r}")
        bad = [a for a in chosen if a not in ATTACKS]
        if bad:
            raise ValueError(f"unknown attack(s) {bad} for {name!r}; choose from {ATTACKS}")
        if any(a in NON_BLIND for a in chosen):
            try:
                camera_psf(cameras[name])
            except ValueError as err:
                raise ValueError(f"camera {name!r} cannot get "
                                 f"{[a for a in chosen if a in NON_BLIND]}: {err}") from err
        plan[name] = tuple(chosen)
    return plan


def gaussian_psf(sigma_px: float, channels: int = 3) -> Tensor:
    """A Gaussian PSF ``channels x K x K`` (``K = 2 ceil(4 sigma) + 1``), each channel
    summing to one: the known kernel of the competence control's non-blind attacks."""
    if not (isinstance(sigma_px, (int, float)) and math.isfinite(sigma_px) and sigma_px > 0):
        raise ValueError(f"sigma_px must be a positive number, got {sigma_px!r}")
    radius = math.ceil(4 * sigma_px)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(offsets**2) / (2 * sigma_px**2))
    kernel = g[:, None] * g[None, :]
    kernel = (kernel / kernel.sum()).float()
    return kernel.expand(channels, -1, -1).contiguous()


#: a spatial frequency counts as "passed" when the camera keeps at least this share of its
#: contrast (``|T| >=`` this, the mean over the colour channels)
MTF_FLOOR = 0.01


def radial_mtf(psf: Tensor, image_size: int) -> dict[str, Any]:
    """How much contrast the PSF keeps at each spatial frequency of ``image_size`` images.

    ``|T|`` is the modulus of the PSF's transfer function (:func:`transfer_function`, the
    PSF summing to one per channel, so ``|T| = 1`` at zero frequency) on the
    ``image_size x image_size`` grid, averaged over the colour channels.

    Returns:
        ``{"cycles_per_pixel": [k / S for k = 0..S/2], "mtf": radial mean of |T| over the
        frequencies of radius k (rounded), "share_passed": share of all frequencies of the
        grid (up to Nyquist on each axis) with |T| >= MTF_FLOOR}``.
    """
    size = int(image_size)
    spec = transfer_function(psf.double() / psf.double().sum(dim=(-2, -1), keepdim=True),
                             (size, size)).abs().mean(0)
    fy = torch.fft.fftfreq(size, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(size, dtype=torch.float64)[None, :]
    radius = (torch.sqrt(fy**2 + fx**2) * size).round().long()
    profile = []
    for k in range(size // 2 + 1):
        ring = spec[radius == k]
        profile.append(float(ring.mean()) if len(ring) else float("nan"))
    # each rfft column but the first and (for even sizes) the last stands for two frequencies
    weight = torch.full_like(spec, 2.0)
    weight[:, 0] = 1.0
    if size % 2 == 0:
        weight[:, -1] = 1.0
    passed = float((weight * (spec >= MTF_FLOOR)).sum() / weight.sum())
    return {"cycles_per_pixel": [k / size for k in range(size // 2 + 1)], "mtf": profile,
            "share_passed": passed}


# --------------------------------------------------------------------------- helpers
@torch.no_grad()
def _through(camera: nn.Module, images: Tensor, recording: SensorRecording | None = None,
             stream: int = 0) -> Tensor:
    """What ``camera`` records of ``images``: its evaluation-mode (noise-free) output, then
    ``recording`` (read noise from ``stream``, bit depth). The originals (an
    :class:`~privcap.optics.IdentityCamera`, the ``no-lens`` row) are left as they are."""
    if len(images) == 0:
        return images.clone()
    out = torch.cat([camera(images[i : i + _BATCH]) for i in range(0, len(images), _BATCH)])
    if out.shape != images.shape:
        raise ValueError(f"camera {type(camera).__name__} changed the image shape "
                         f"{tuple(images.shape)} -> {tuple(out.shape)}")
    out = out.float()
    if recording is not None and not isinstance(camera, IdentityCamera):
        out = recording(out, stream)
    return out


#: noise streams of the image sets (the same set gets the same noise through every camera)
_STREAM = {"scenes": 1, "faces": 2, "tune_scenes": 3, "tune_photos": 4, "learned_train": 5,
           "reader_train": 6, "reader_test": 7, "control_tune": 8, "control": 9}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _score_row(camera: str, restored: Tensor, originals: Tensor,
               attack: str | None = None) -> tuple[dict[str, Any], list[float]]:
    s = ssim(restored.clamp(0.0, 1.0), originals).double()
    p = psnr(restored.clamp(0.0, 1.0), originals).double()
    row: dict[str, Any] = {"camera": camera}
    if attack is not None:
        row["attack"] = attack
    row.update(SSIM_mean=float(s.mean()), SSIM_std=float(s.std(unbiased=False)),
               PSNR_mean=_finite(float(p.mean())), n_images=len(originals))
    return row, s.tolist()


def _apply_non_blind(attack: str, sensor: Tensor, psf: Tensor, parameter: Mapping[str, Any]
                     ) -> Tensor:
    """The attack with the attacker's chosen parameter on new images (in chunks)."""
    out = []
    for start in range(0, len(sensor), 256):
        part = sensor[start : start + 256]
        if attack == "wiener":
            out.append(wiener(part, psf, parameter["nsr"], regulariser=parameter["regulariser"],
                              boundary=parameter["boundary"], clip=True))
        else:
            out.append(richardson_lucy(part, psf, parameter["iterations"], clip=True))
    return torch.cat(out)


def _timer() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _elapsed(start: tuple[float, float]) -> dict[str, float]:
    return {"wall": round(time.perf_counter() - start[0], 2),
            "cpu": round(time.process_time() - start[1], 2)}


def _uint8(images: Tensor) -> Tensor:
    return (images.detach().clamp(0, 1) * 255).round().to(torch.uint8)


def _log(progress: bool, message: str) -> None:
    if progress:
        print(message, flush=True)


# --------------------------------------------------------------------------- measurement
def measurement_constants() -> dict[str, Any]:
    """Module constants a stored measurement depends on besides its settings (the face
    detector's thresholds): part of every reuse stamp, so that changing one measures again."""
    return {"mtcnn_min_probability": MTCNN_MIN_PROBABILITY, "iou_threshold": IOU_THRESHOLD,
            "detail_free_sigmas_px": list(DETAIL_FREE_SIGMAS_PX)}


def measure_privacy(
    cameras: Mapping[str, nn.Module],
    data: PrivacyData,
    settings: PrivacySettings | None = None,
    *,
    attacks: Mapping[str, Sequence[str]] | None = None,
    control: bool = True,
    reidentification: bool = True,
    detectors: Sequence[str] = DETECTORS,
    progress: bool = False,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any], dict[str, Any]]:
    """Measure the privacy of ``cameras`` (see the module docstring) on ``data``.

    Args:
        cameras: ``{name: camera}`` (evaluation mode is set here: no read noise). Include
            ``"no-lens"`` (an :class:`~privcap.optics.IdentityCamera`) for the originals.
        data: :func:`privacy_data` for the cameras' image size.
        settings: the sizes (default :class:`PrivacySettings`).
        attacks: ``{name: attacks}`` (subset of :data:`ATTACKS`); default
            :func:`default_attacks` (non-blind attacks where there is a PSF, no learned
            attack). A non-blind attack for a camera without a PSF is a ``ValueError``.
        control: run the competence control (learned attack, when any camera gets one, and
            the non-blind attacks).
        reidentification: compute the re-identification rows.
        detectors: face detectors (subset of :data:`~privcap.privacy.DETECTORS`).
        progress: print one line per stage.

    Returns:
        ``(rows, details, examples)``: the row lists of ``privacy.json`` (keys of
        :data:`PRIVACY_KEYS` except ``profile`` / ``dataset``), the details and 8-bit
        example images.
    """
    s = settings or PrivacySettings()
    if not cameras:
        raise ValueError("cameras is empty")
    plan = check_attacks(cameras, default_attacks(cameras) if attacks is None else attacks)
    unknown = [d for d in detectors if d not in DETECTORS]
    if unknown or not detectors:
        raise ValueError(f"detectors must be a non-empty subset of {DETECTORS}, got "
                         f"{list(detectors)}")
    for camera in cameras.values():
        camera.eval()

    faces = data.faces.images
    tune_n = min(s.num_tuning, len(data.scenes_attacker))
    tune_scenes = data.scenes_attacker[:tune_n]
    tune_photos = data.photos[: min(s.num_tuning, len(data.photos))]
    learned_train = torch.cat([data.scenes_attacker, data.photos])
    restorer_kwargs = {"progress": False, "seed": s.seed, **s.restorer}
    n_examples = min(s.examples, len(data.scenes_eval))
    portrait_idx = [i for i, c in enumerate(data.faces.info) if c.source != "coco"]

    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in PRIVACY_KEYS}
    details: dict[str, Any] = {
        "settings": s.to_dict(), "attacks_planned": {k: list(v) for k, v in plan.items()},
        "parameters": {}, "tuning": {}, "restorer_history": {}, "per_image_ssim": {},
        "faces_ssim": [], "face_detections": {}, "readers": {}, "reid_details": {},
        "face_names": [c.file_name if c.source == "coco" else c.source
                       for c in data.faces.info],
        "face_rule": "overlap", "seconds": {}, "best_non_blind": {},
    }
    examples: dict[str, Any] = {
        "scenes": {"original": _uint8(data.scenes_eval[:n_examples])},
        "faces": {"original": _uint8(faces[portrait_idx])},
        "face_names": [data.faces.info[i].source for i in portrait_idx],
        "ssim": {"scenes": {}, "faces": {}},
    }

    # originals: detections and the re-identification gallery
    start = _timer()
    original_dets = {d: detect_faces(faces, d) for d in detectors}
    gallery = face_embeddings(faces) if reidentification else None
    details["seconds"]["originals"] = _elapsed(start)
    reader_sets = (data.reader_train, data.reader_test)
    recording = s.recording

    def record(camera: nn.Module, images: Tensor, part: str) -> Tensor:
        return _through(camera, images, recording, _STREAM[part])

    def record_faces(name: str, attack: str | None, altered: Tensor) -> None:
        label = attack or "none"
        for d in detectors:
            found = detect_faces(altered, d)
            rate = detection_rate(original_dets[d], found, d, rule="overlap")
            rows["faces"].append({"camera": name, "attack": attack, "detector": d,
                                  "faces": rate["found_original"], "detected": rate["kept"]})
            details["face_detections"].setdefault(name, {}).setdefault(label, {})[d] = \
                [len(b) for b in found]
        if gallery is not None:
            top1 = top1_reidentification(face_embeddings(altered), gallery)
            rows["reidentification"].append({
                "camera": name, "attack": attack, "model": REID_MODEL,
                "gallery": top1["gallery_size"], "top1": top1["top1_accuracy"],
                "chance": top1["chance"]})
            details["reid_details"].setdefault(name, {})[label] = {
                k: top1[k] for k in ("true_distance_mean", "nearest_distance_mean",
                                     "predicted")}

    def record_reader(name: str, attack: str | None,
                      transform: Callable[[Tensor, str], Tensor]) -> None:
        (xa, ya, ba), (xb, yb, bb) = reader_sets
        result = best_reader_accuracy(transform(xa, "reader_train"), ya,
                                      transform(xb, "reader_test"), yb, (ba, bb),
                                      seed=s.seed, training=s.reader_training)
        rows["sensitive_detail"].append({
            "camera": name, "attack": attack, "accuracy": result["accuracy"],
            "chance": result["chance"], "entropy_bits": result["entropy_bits"]})
        details["readers"].setdefault(name, {})[attack or "none"] = result

    for name, camera in cameras.items():
        start = _timer()
        _log(progress, f"[privacy] {name}: private images")
        private_scenes = record(camera, data.scenes_eval, "scenes")
        private_faces = record(camera, faces, "faces")
        row, per_image = _score_row(name, private_scenes, data.scenes_eval)
        rows["private"].append(row)
        details["per_image_ssim"].setdefault(name, {})["none"] = per_image
        face_row, _ = _score_row(name, private_faces, faces, attack="none")
        details["faces_ssim"].append(face_row)
        examples["scenes"].setdefault(name, {})["none"] = _uint8(private_scenes[:n_examples])
        examples["faces"].setdefault(name, {})["none"] = _uint8(private_faces[portrait_idx])
        examples["ssim"]["scenes"].setdefault(name, {})["none"] = per_image[:n_examples]
        face_ssim = ssim(private_faces.clamp(0, 1), faces).tolist()
        examples["ssim"]["faces"].setdefault(name, {})["none"] = \
            [face_ssim[i] for i in portrait_idx]
        record_faces(name, None, private_faces)
        details["seconds"].setdefault(name, {})["private"] = _elapsed(start)

        try:
            details.setdefault("mtf", {})[name] = radial_mtf(camera_psf(camera),
                                                             data.image_size)
        except ValueError:  # no shift-invariant PSF (no lens, low-res sensor)
            pass
        chosen = plan.get(name, ())
        restorer = None
        attacked_scenes: dict[str, dict[str, Any]] = {}
        for attack in [a for a in ATTACKS if a in chosen]:
            start = _timer()
            _log(progress, f"[privacy] {name}: {attack} attack")
            if attack == "learned":
                train_private = record(camera, learned_train, "learned_train")
                restorer, history = train_restorer(train_private, learned_train,
                                                   **restorer_kwargs)
                details["restorer_history"][name] = history
                on_scenes = attack_images(None, "learned", private_scenes, data.scenes_eval,
                                          restorer=restorer,
                                          tuning=(train_private, learned_train))
                on_faces = attack_images(None, "learned", private_faces, faces,
                                         restorer=restorer,
                                         tuning=(train_private, learned_train))
                parameter = {"trained_on": len(learned_train), **s.restorer}
            else:
                options = ({"candidates": s.nsr_candidates} if attack == "wiener"
                           else {"iterations": s.rl_iterations})
                on_scenes = attack_images(camera, attack, private_scenes, data.scenes_eval,
                                          tuning=(record(camera, tune_scenes, "tune_scenes"),
                                                  tune_scenes),
                                          **options)
                on_faces = attack_images(camera, attack, private_faces, faces,
                                         tuning=(record(camera, tune_photos, "tune_photos"),
                                                 tune_photos),
                                         **options) if len(tune_photos) else None
                parameter = {"scenes": on_scenes["parameter"],
                             "faces": on_faces["parameter"] if on_faces else None}
                details["tuning"].setdefault(name, {})[attack] = {
                    "scenes": on_scenes["table"],
                    "faces": on_faces["table"] if on_faces else None}
                if on_faces is None:  # no photographs to tune on: the scenes' parameter
                    restored = _apply_non_blind(attack, private_faces, camera_psf(camera),
                                                on_scenes["parameter"])
                    on_faces = {"images": restored}
            details["parameters"].setdefault(name, {})[attack] = parameter
            row, per_image = _score_row(name, on_scenes["images"], data.scenes_eval, attack)
            rows["attacks"].append(row)
            attacked_scenes[attack] = row
            details["per_image_ssim"][name][attack] = per_image
            face_row, _ = _score_row(name, on_faces["images"], faces, attack)
            details["faces_ssim"].append(face_row)
            examples["scenes"][name][attack] = _uint8(on_scenes["images"][:n_examples])
            examples["faces"][name][attack] = _uint8(on_faces["images"][portrait_idx])
            examples["ssim"]["scenes"][name][attack] = per_image[:n_examples]
            face_ssim = ssim(on_faces["images"].clamp(0, 1), faces).tolist()
            examples["ssim"]["faces"][name][attack] = [face_ssim[i] for i in portrait_idx]
            record_faces(name, attack, on_faces["images"])
            details["seconds"][name][attack] = _elapsed(start)

        start = _timer()
        _log(progress, f"[privacy] {name}: hidden-detail readers")
        record_reader(name, None, lambda x, part, cam=camera: record(cam, x, part))
        non_blind = {a: r for a, r in attacked_scenes.items() if a in NON_BLIND}
        if non_blind:
            best = max(non_blind, key=lambda a: non_blind[a]["SSIM_mean"])
            details["best_non_blind"][name] = best
            psf = camera_psf(camera)
            parameter = details["parameters"][name][best]["scenes"]
            record_reader(name, best, lambda x, part, cam=camera, a=best, k=psf, p=parameter:
                          _apply_non_blind(a, record(cam, x, part), k, p))
        details["seconds"][name]["readers"] = _elapsed(start)

    details["detail_free_ssim"] = detail_free_ssim(data.scenes_eval)
    if control:
        start = _timer()
        _log(progress, "[privacy] competence control")
        rows["control"], details["control"] = _control(data, s, tune_scenes, plan,
                                                       learned_train, restorer_kwargs)
        details["seconds"]["control"] = _elapsed(start)
    return rows, details, examples


#: Gaussian widths (pixels) of :func:`detail_free_ssim`
DETAIL_FREE_SIGMAS_PX: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0)


def detail_free_ssim(originals: Tensor, sigmas_px: Sequence[float] = DETAIL_FREE_SIGMAS_PX
                     ) -> list[dict[str, float]]:
    """What SSIM an image without detail gets: the mean SSIM to ``originals`` of the
    originals themselves blurred by a Gaussian of each width (mirrored borders). A
    reconstruction that scores no better than the blur of width ``sigma`` has given back
    nothing finer than about ``sigma`` pixels; on scenes with large flat areas even a wide
    blur keeps a sizeable SSIM, which puts the attack scores in scale."""
    from privcap.privacy.blur import gaussian_blur

    return [{"sigma_px": float(sigma),
             "SSIM_mean": float(ssim(gaussian_blur(originals, float(sigma)).clamp(0, 1),
                                     originals).double().mean())}
            for sigma in sigmas_px]


def _control(data: PrivacyData, s: PrivacySettings, tune_scenes: Tensor,
             plan: Mapping[str, Sequence[str]], learned_train: Tensor,
             restorer_kwargs: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Control rows: for each blur, the blurred scenes (attack ``None``) and each attacker's
    restoration, every blurred image recorded as the cameras' images are
    (:attr:`PrivacySettings.recording`). The non-blind attacks get the camera's forward
    model (zero-padded convolution, :data:`CONTROL_BLUR`); the learned attack the blur of
    :func:`~privcap.attacks.competence_control` (mirrored borders,
    :data:`CONTROL_BLUR_MIRRORED`)."""
    psf = gaussian_psf(CONTROL_SIGMA_PX)
    if psf.shape[-1] > data.image_size:
        raise ValueError(f"images of {data.image_size} px are too small for the control blur")
    evaluated = data.scenes_eval
    recording = s.recording
    blurred = recording(fft_convolve(evaluated, psf), _STREAM["control"])
    s_blur = ssim(blurred.clamp(0, 1), evaluated).double()
    rows = [{"blur": CONTROL_BLUR, "attack": None, "SSIM_mean": float(s_blur.mean())}]
    info: dict[str, Any] = {"sigma_px": CONTROL_SIGMA_PX, "n_images": len(evaluated),
                            "non_blind": {}, "learned": None}
    tune_blurred = recording(fft_convolve(tune_scenes, psf), _STREAM["control_tune"])
    for attack in NON_BLIND:
        if attack == "wiener":
            value, table = tune_wiener(tune_blurred, tune_scenes, psf, s.nsr_candidates)
            restored = wiener(blurred, psf, value, clip=True)
        else:
            value, table = tune_richardson_lucy(tune_blurred, tune_scenes, psf, s.rl_iterations)
            restored = richardson_lucy(blurred, psf, value, clip=True)
        score = float(ssim(restored, evaluated).double().mean())
        rows.append({"blur": CONTROL_BLUR, "attack": attack, "SSIM_mean": score})
        info["non_blind"][attack] = {"parameter": value, "table": table}
    if any("learned" in chosen for chosen in plan.values()):
        result = competence_control(learned_train, test_images=evaluated, seed=s.seed,
                                    degrade=lambda x, part: recording(x, _STREAM[part]),
                                    **{k: v for k, v in restorer_kwargs.items()
                                       if k != "seed"})
        rows.append({"blur": CONTROL_BLUR_MIRRORED, "attack": None,
                     "SSIM_mean": result["ssim_blurred_mean"]})
        rows.append({"blur": CONTROL_BLUR_MIRRORED, "attack": "learned",
                     "SSIM_mean": result["ssim_restored_mean"]})
        info["learned"] = result
    return rows, info


# --------------------------------------------------------------------------- files
def write_privacy(out_dir: str | Path, privacy: Mapping[str, Any],
                  details: Mapping[str, Any] | None = None,
                  examples: Mapping[str, Any] | None = None) -> Path:
    """Write ``privacy.json`` (and the details and examples when given) atomically into
    ``out_dir``; ``privacy.json`` last. Returns its path."""
    from privcap.training.io import atomic_write, write_json

    missing = [k for k in ("profile", "dataset", *PRIVACY_KEYS) if k not in privacy]
    if missing:
        raise ValueError(f"privacy results lack {missing}")
    out = Path(out_dir)
    if examples is not None:
        atomic_write(out / EXAMPLES_FILE, lambda f: torch.save(dict(examples), f))
    if details is not None:
        write_json(out / DETAILS_FILE, details)
    return write_json(out / PRIVACY_FILE, privacy)


def load_privacy(path: str | Path) -> dict[str, Any]:
    """A ``privacy.json`` (a file or its folder), checked against the contract."""
    from privcap.training.io import load_json

    path = Path(path)
    if path.is_dir():
        path = path / PRIVACY_FILE
    data = load_json(path, "privacy results")
    expected = {"profile", "dataset", *PRIVACY_KEYS}
    if not isinstance(data, dict) or set(data) != expected:
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path} is not a privacy.json: keys {found}, expected "
                         f"{sorted(expected)}")
    for key, fields in PRIVACY_KEYS.items():
        for row in data[key]:
            if set(row) != set(fields):
                raise ValueError(f"{path}: a {key!r} row has keys {sorted(row)}, expected "
                                 f"{sorted(fields)}")
    return data


def best_reconstruction(privacy: Mapping[str, Any], camera: str,
                        attacks: Sequence[str] = ATTACKS) -> tuple[str | None, float]:
    """``(attack, SSIM_mean)`` of the closest reconstruction of ``camera``'s scenes among
    its private images (attack ``None``) and the rows of ``attacks``: what the best of
    these attackers gets (doing nothing is always an option)."""
    private = [r for r in privacy["private"] if r["camera"] == camera]
    if not private:
        raise ValueError(f"camera {camera!r} not in the privacy results: "
                         f"{[r['camera'] for r in privacy['private']]}")
    best: tuple[str | None, float] = (None, private[0]["SSIM_mean"])
    for row in privacy["attacks"]:
        if row["camera"] == camera and row["attack"] in attacks and \
                row["SSIM_mean"] > best[1]:
            best = (row["attack"], row["SSIM_mean"])
    return best


# --------------------------------------------------------------------------- entry point
def run_privacy(
    profile: str = "quick",
    cameras_root: str | Path | None = None,
    *,
    out_dir: str | Path | None = None,
    seed: int = 0,
    learned_cameras: Sequence[str] = ("learned-lens", "defocus"),
    attacks: Mapping[str, Sequence[str]] | None = None,
    coco_dir: str | Path | None = "auto",
    settings: PrivacySettings | None = None,
    smoke: bool = False,
    reuse: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Measure the privacy of Table 1's cameras and write ``privacy.json`` (module docstring).

    With ``reuse``, an existing ``privacy.json`` is returned without measuring again when its
    details record the same request: the same checkpoints (file times), attacks, sizes,
    profile and face data.

    Args:
        profile: data profile (scenes; default folders).
        cameras_root: folder of the runs ``<kind>/seed<seed>/`` (default
            ``results/<profile>/cameras``, written by :func:`privcap.training.run_table1`).
        out_dir: where the three files go (default ``results/<profile>``).
        seed: which training seed's cameras.
        learned_cameras: cameras that also get the learned attack (it trains a network per
            camera, minutes on a CPU).
        attacks: explicit ``{camera: attacks}`` (overrides the default plan and
            ``learned_cameras``).
        coco_dir: see :func:`privacy_data`.
        settings: sizes (default :class:`PrivacySettings`, or its :meth:`~PrivacySettings.smoke`
            sizes with ``smoke=True``).
        smoke: tiny sizes for the test suite.
        reuse: return a finished measurement of the same request (see above).
        progress: print one line per stage.

    Returns:
        The content of ``privacy.json``.
    """
    from privcap.paths import results_dir

    check_profile(profile)
    root = Path(cameras_root) if cameras_root is not None else \
        results_dir(profile, "cameras", create=False)
    s = settings or (PrivacySettings.smoke() if smoke else PrivacySettings())
    start = _timer()
    cameras, image_size = load_table1_cameras(root, seed=seed)
    plan = check_attacks(cameras, attacks if attacks is not None
                         else default_attacks(cameras, learned_cameras))
    coco = resolve_coco_dir(coco_dir)
    out = Path(out_dir) if out_dir is not None else results_dir(profile)
    stamp = {"profile": profile, "seed": int(seed), "settings": s.to_dict(),
             "face_detection": measurement_constants(),
             "attacks": {k: list(v) for k, v in plan.items()},
             "coco_dir": None if coco is None else str(coco.resolve()),
             "checkpoints": {kind: (root / kind / f"seed{int(seed)}" / "last.pt")
                             .stat().st_mtime_ns for kind in cameras}}
    if reuse and (out / PRIVACY_FILE).is_file() and (out / DETAILS_FILE).is_file() \
            and (out / EXAMPLES_FILE).is_file():
        from privcap.training.io import load_json

        if load_json(out / DETAILS_FILE, "privacy details").get("stamp") == stamp:
            _log(progress, f"[privacy] reusing {out / PRIVACY_FILE}")
            return load_privacy(out)
    data = privacy_data(profile, image_size, s, coco_dir=coco)
    rows, details, examples = measure_privacy(cameras, data, s, attacks=plan,
                                              progress=progress)
    privacy = {"profile": profile, "dataset": data.description, **rows}
    details.update(cameras_root=str(root), seed=seed, image_size=image_size,
                   coco_faces=data.coco_faces, n_faces=len(data.faces),
                   n_photos=len(data.photos), smoke=bool(smoke),
                   lowres_factor=getattr(cameras.get("low-res"), "factor", None))
    details["seconds"]["total"] = _elapsed(start)
    details["stamp"] = stamp
    write_privacy(out, privacy, details, examples)
    return privacy
