"""The ``privcap`` command.

Subcommands (each one a thin wrapper over a library function)::

    privcap bench [--sections optics,training,metrics] [--out results/bench.json]
    privcap data coco DEST [--base-url URL]
    privcap book [--profile quick] [--only 01_fresnel_psf ...] [--jobs N]
    privcap train [--profile quick] [--camera learned-lens] [--init-from CKPT] [--resume]
    privcap evaluate RUN [--split test]
    privcap caption IMAGE... --checkpoint RUN [--save-private PATH]

Errors caused by bad input (:data:`privcap.errors.USER_ERRORS`: ``ValueError``,
``FileNotFoundError``, :class:`privcap.errors.UserError`, a failed download, ...) are printed
as one line ``privcap: error: ...`` with exit status 2, never as a bare traceback. Anything
else (a ``RuntimeError`` from torch, say) is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from privcap.errors import USER_ERRORS


def _user_errors() -> tuple[type[BaseException], ...]:
    """:data:`USER_ERRORS` plus a failed download (network, checksum) of ``privcap data``."""
    from privcap.data.download import DownloadError

    return (*USER_ERRORS, DownloadError)


def _cmd_bench(args: argparse.Namespace) -> int:
    from privcap.bench import run_bench

    run_bench(sections=args.sections, out_path=args.out, quick=args.quick)
    return 0


def _cmd_data_coco(args: argparse.Namespace) -> int:
    from privcap.data.download import download_coco

    download_coco(args.dest, base_url=args.base_url, parts=args.parts, checksums=args.checksums)
    return 0


def _cmd_book(args: argparse.Namespace) -> int:
    from privcap.book import build_book

    build_book(profile=args.profile, only=args.only, html=not args.no_html, smoke=args.smoke,
               jobs=args.jobs)
    return 0


def _key_values(pairs: Sequence[str] | None, what: str) -> dict[str, object]:
    """``KEY=VALUE`` options as a dict; values are Python literals (``3``, ``1e-3``,
    ``(8, 16)``, ``None``, ``True``) or plain strings."""
    out: dict[str, object] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what} expects KEY=VALUE, got {pair!r}")
        try:
            value: object = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        out[key.strip().replace("-", "_")] = value
    return out


#: default training / validation images per profile (``full``: all of Karpathy's train +
#: restval and its 5000 validation images)
_IMAGE_COUNTS = {"quick": (2000, 200), "coco-mini": (1500, 200), "full": (10**9, 5000)}


def _image_counts(profile: str, num_images: int | None, num_val: int | None) -> tuple[int, int]:
    from privcap.profiles import check_profile

    default_train, default_val = _IMAGE_COUNTS[check_profile(profile)]
    return (default_train if num_images is None else num_images,
            default_val if num_val is None else num_val)


def _from_options(option: str, build: Callable, *args: object, **kwargs: object):
    """``build(*args, **kwargs)``; a ``TypeError`` (a value of the wrong type given on the
    command line) becomes a ``ValueError`` naming the option."""
    try:
        return build(*args, **kwargs)
    except TypeError as err:
        raise ValueError(f"{option}: a value has the wrong type ({err})") from err


def _cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from privcap.captioning import Captioner, captioner_config, load_captioner
    from privcap.optics import OpticsConfig, optics_config
    from privcap.paths import results_dir
    from privcap.training import (
        build_camera,
        build_vocabulary,
        load_caption_data,
        train,
        train_config,
    )

    settings = _key_values(args.set, "--set")
    for name in ("epochs", "batch_size", "seed", "device"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    config = _from_options("--set", train_config, args.profile, args.camera,
                           finetune=args.finetune, **settings)
    captioner_settings = _key_values(args.captioner_set, "--captioner-set")
    if args.init_from:
        if captioner_settings:
            raise ValueError("--captioner-set cannot change a captioner loaded by --init-from")
        model, _ = load_captioner(args.init_from)
        cap_config = model.config
    else:
        cap_config = _from_options("--captioner-set", captioner_config, args.profile,
                                   **captioner_settings)
    num_images, num_val = _image_counts(args.profile, args.num_images, args.num_val_images)
    train_data, val_data, info = load_caption_data(
        args.profile, args.data, args.captions, num_images=num_images,
        num_val_images=max(num_val, 1), image_size=cap_config.image_size,
        seed=args.data_seed,
    )
    if not args.init_from:
        vocab = build_vocabulary(train_data, cap_config.min_count, cap_config.max_len)
        torch.manual_seed(config.seed)
        model = Captioner(cap_config, vocab)
    optics_settings = _key_values(args.optics_set, "--optics-set")
    known = {f.name for f in dataclasses.fields(OpticsConfig)}
    if set(optics_settings) - known:
        raise ValueError(f"unknown optics config keys: {sorted(set(optics_settings) - known)}")
    optics = _from_options("--optics-set", optics_config(args.profile).replace,
                           **optics_settings)
    camera = build_camera(args.camera, optics)
    out = Path(args.out) if args.out else results_dir(args.profile, "runs", args.camera,
                                                      create=False)
    if args.resume and not out.is_dir():
        raise FileNotFoundError(f"--resume: run folder not found: {out}")
    history = train(model, camera, train_data, val_data if num_val else None,
                     config, out, resume=args.resume, init_from=args.init_from,
                     progress=not args.no_progress, profile=args.profile, data_info=info)
    if os.environ.get("RANK", "0") == "0":  # one line under torchrun too
        print(f"run in {out} (best epoch {history['best_epoch']}; last.pt, best.pt, "
              "history.json, metrics.jsonl)")
    return 0


def _load_run_for_cli(path: str, which: str):
    from privcap.training import load_run

    return load_run(path, which=which)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from privcap.training import evaluate_camera_run, load_caption_data, load_test_data
    from privcap.training.io import write_json

    model, camera, payload = _load_run_for_cli(args.run, args.which)
    size = model.config.image_size
    if args.split == "test":
        data, info = load_test_data(
            args.profile, args.data, args.captions, num_images=args.num_images,
            num_train_images=args.num_train_images, num_val_images=args.num_images,
            image_size=size, seed=args.data_seed)
    else:
        _, data, info = load_caption_data(
            args.profile, args.data, args.captions, num_images=args.num_train_images,
            num_val_images=args.num_images, image_size=size, seed=args.data_seed)
    result = evaluate_camera_run(model, camera, data, beam_size=args.beam_size,
                                 meteor=not args.no_meteor)
    summary = {"run": str(args.run), "which": args.which,
               "camera": payload["camera"]["spec"]["kind"], "split": args.split,
               "n_images": result["n_images"], "metrics": result["metrics"],
               "SSIM_mean": result["SSIM_mean"], "SSIM_std": result["SSIM_std"]}
    if args.out:
        write_json(args.out, {**summary, "data": info,
                              "captions": {str(k): v for k, v in result["captions"].items()},
                              "ssim": result["ssim"]})
    print(json.dumps(summary, indent=1))
    return 0


def _cmd_caption(args: argparse.Namespace) -> int:
    import torch

    from privcap.data.images import load_image
    from privcap.data.transforms import resize_and_crop

    images = [load_image(p) for p in args.images]
    model, camera, _ = _load_run_for_cli(args.checkpoint, args.which)
    size = model.config.image_size
    scenes = torch.stack([resize_and_crop(img, size) for img in images])
    targets: list[Path] = []
    if args.save_private:
        target = Path(args.save_private)
        if len(args.images) == 1 and target.suffix:
            targets = [target]
        else:
            if target.exists() and not target.is_dir():
                raise NotADirectoryError(
                    f"--save-private {target}: several images need a folder, not a file")
            targets = [target / f"{Path(p).stem}_private.png" for p in args.images]
    with torch.no_grad():
        sensor = camera(scenes)
        captions = model.generate(sensor, beam_size=args.beam_size).captions
    for path, caption in zip(args.images, captions, strict=True):
        print(f"{path}\t{caption}")
    for image, target in zip(sensor, targets, strict=False):
        _save_png(image, target)
    return 0


def _save_png(image, path: Path) -> None:
    """Write a ``3 x H x W`` image in [0, 1] (clipped) as 8-bit PNG, atomically."""
    import io

    import numpy as np
    from PIL import Image

    from privcap.training.io import atomic_write

    pixels = (image.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


_TRAIN_EPILOG = """\
examples:
  # the clean captioner of chapter 03 (no lens), quick profile
  privcap train --camera no-lens --out results/quick/captioner
  # a learned lens fine-tuned from it (the Table 1 recipe)
  privcap train --camera learned-lens --finetune \\
      --init-from results/quick/captioner/best.pt --out results/quick/runs/learned-lens
  # continue a run that was interrupted (from its last.pt)
  privcap train --camera learned-lens --finetune \\
      --init-from results/quick/captioner/best.pt --out results/quick/runs/learned-lens --resume
  # COCO 2014 with Karpathy's split (folder with train2014/ and val2014/), on GPUs
  torchrun --nproc-per-node 4 -m privcap train --profile full --camera learned-lens \\
      --data /data/coco --captions /data/coco/dataset_coco.json
"""

_EVALUATE_EPILOG = """\
examples:
  privcap evaluate results/quick/runs/learned-lens
  privcap evaluate results/quick/runs/learned-lens/best.pt --split val --no-meteor
  privcap evaluate RUN --profile full --data /data/coco \\
      --captions /data/coco/dataset_coco.json --out results/full/eval_learned.json
"""

_CAPTION_EPILOG = """\
examples:
  privcap caption photo.jpg --checkpoint results/quick/runs/learned-lens
  privcap caption a.png b.png --checkpoint RUN --save-private private/
  privcap caption photo.jpg --checkpoint RUN --save-private photo_private.png
"""


def _add_training_commands(sub) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    train = sub.add_parser(
        "train", help="train a camera and the captioner together (paper Eqs. 6-9)",
        description="Train a camera (no-lens, learned-lens, defocus, low-res) and the "
        "captioner on the joint objective w_ce L_ce + ds_lambda L_d + w_p L_p + w_h L_H. "
        "Writes metrics.jsonl, history.json, last.pt and best.pt to the output folder.",
        epilog=_TRAIN_EPILOG, formatter_class=formatter,
    )
    train.add_argument("--profile", default="quick", help="data/model profile (default quick)")
    train.add_argument("--camera", default="no-lens",
                       help="no-lens, learned-lens, defocus or low-res (default no-lens)")
    train.add_argument("--out", default=None,
                       help="run folder (default results/<profile>/runs/<camera>)")
    train.add_argument("--data", default="auto",
                       help="'auto' (profile default), 'synthetic' or a COCO image folder")
    train.add_argument("--captions", default=None,
                       help="COCO captions file or Karpathy's dataset_coco.json")
    train.add_argument("--num-images", type=int, default=None,
                       help="training images (default: quick 2000, coco-mini 1500, full all)")
    train.add_argument("--num-val-images", type=int, default=None,
                       help="validation images (default 200, full 5000; 0: no validation)")
    train.add_argument("--data-seed", type=int, default=0, help="seed of the data split")
    train.add_argument("--epochs", type=int, default=None, help="epochs (default: preset)")
    train.add_argument("--batch-size", type=int, default=None,
                       help="images per step over all processes (default: preset)")
    train.add_argument("--seed", type=int, default=None, help="training seed (default 0)")
    train.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N")
    train.add_argument("--finetune", action="store_true",
                       help="use the fine-tuning preset (Table 1 recipe, with --init-from)")
    train.add_argument("--init-from", default=None,
                       help="start the captioner from this checkpoint (e.g. a clean best.pt)")
    train.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="any training setting, e.g. --set w_p=2 (repeatable)")
    train.add_argument("--captioner-set", action="append", metavar="KEY=VALUE",
                       help="captioner architecture setting, e.g. hidden_dim=64")
    train.add_argument("--optics-set", action="append", metavar="KEY=VALUE",
                       help="optics setting, e.g. num_terms=15")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser(
        "evaluate", help="caption metrics and SSIM of a trained camera + captioner",
        description="Evaluate a run (camera in evaluation mode, no read noise): BLEU-1..4, "
        "METEOR, ROUGE-L, CIDEr on held-out images, and the SSIM between each scene and "
        "what the camera records.",
        epilog=_EVALUATE_EPILOG, formatter_class=formatter,
    )
    evaluate.add_argument("run", help="run folder or run checkpoint (.pt)")
    evaluate.add_argument("--which", default="last", choices=("last", "best"),
                          help="checkpoint of a run folder (default last)")
    evaluate.add_argument("--profile", default="quick", help="data profile (default quick)")
    evaluate.add_argument("--data", default="auto", help="'auto', 'synthetic' or a COCO folder")
    evaluate.add_argument("--captions", default=None, help="COCO captions / dataset_coco.json")
    evaluate.add_argument("--split", default="test", choices=("test", "val"),
                          help="held-out split (default test)")
    evaluate.add_argument("--num-images", type=int, default=200, help="images to evaluate")
    evaluate.add_argument("--num-train-images", type=int, default=2000,
                          help="training images of the run (fixes a random COCO split)")
    evaluate.add_argument("--data-seed", type=int, default=0, help="seed of the data split")
    evaluate.add_argument("--beam-size", type=int, default=None, help="beam (default: model)")
    evaluate.add_argument("--no-meteor", action="store_true", help="skip METEOR")
    evaluate.add_argument("--out", default=None, help="also write the result as JSON here")
    evaluate.set_defaults(func=_cmd_evaluate)

    caption = sub.add_parser(
        "caption", help="caption image files through a trained camera",
        description="Caption image files as the trained camera would record them (camera "
        "in evaluation mode); optionally save what the camera records.",
        epilog=_CAPTION_EPILOG, formatter_class=formatter,
    )
    caption.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    caption.add_argument("--checkpoint", required=True,
                         help="run folder or run checkpoint (.pt)")
    caption.add_argument("--which", default="last", choices=("last", "best"),
                         help="checkpoint of a run folder (default last)")
    caption.add_argument("--beam-size", type=int, default=None, help="beam (default: model)")
    caption.add_argument("--save-private", default=None, metavar="PATH",
                         help="save the private (sensor) images: a .png file for one image, "
                         "a folder for several")
    caption.set_defaults(func=_cmd_caption)


def _cmd_attack(args: argparse.Namespace) -> int:
    from privcap.attacks.pipeline import run_attack_cli

    train_kwargs = {"progress": not args.no_progress}
    if args.epochs is not None:
        train_kwargs["epochs"] = args.epochs
    report = run_attack_cli(
        args.run, args.attack, args.inputs, args.out, camera=args.camera,
        profile=args.profile, image_size=args.image_size, ratio=args.ratio, seed=args.seed,
        limit=args.limit, train_kwargs=train_kwargs, overwrite=args.overwrite,
        read_noise_sigma=args.read_noise, bits=args.bits or None,
    )
    psnr_db = "inf" if report["PSNR_mean"] is None else f"{report['PSNR_mean']:.2f}"
    print(f"{report['attack']} on {report['n_images']} images (attacker's set "
          f"{report['n_tuning']}): SSIM {report['SSIM_mean']:.3f} +- {report['SSIM_std']:.3f}, "
          f"PSNR {psnr_db} dB -> {args.out}")
    return 0


def _add_attack_command(sub) -> None:
    from privcap.attacks.pipeline import ATTACKS, CAMERA_NAMES

    attack = sub.add_parser(
        "attack", help="reconstruct a camera's private images (Wiener, Richardson-Lucy, "
        "learned restorer) and score them (SSIM, PSNR)")
    attack.add_argument("run", nargs="?", default=None,
                        help="camera run folder (results/<profile>/cameras/<model>/seed<k>/)")
    attack.add_argument("--camera", choices=tuple(CAMERA_NAMES), default=None,
                        help="a camera without a checkpoint instead of a run folder")
    attack.add_argument("--attack", choices=ATTACKS, required=True, help="the attack")
    attack.add_argument("--inputs", nargs="+", required=True, metavar="PATH",
                        help="image files, folders, or synthetic:N")
    attack.add_argument("--out", required=True, help="output folder (PNG + scores.json)")
    attack.add_argument("--profile", default="quick", help="optics of --camera (default quick)")
    attack.add_argument("--image-size", type=int, default=None,
                        help="pixels (default: the camera's image size)")
    attack.add_argument("--ratio", type=float, default=2 / 3,
                        help="share of the images the attacker tunes / trains on (default 2/3)")
    attack.add_argument("--seed", type=int, default=0, help="split / training seed")
    attack.add_argument("--limit", type=int, default=None, help="use at most N images")
    attack.add_argument("--epochs", type=int, default=None, help="learned attack: epochs")
    attack.add_argument("--read-noise", type=float, default=0.01, metavar="SIGMA",
                        help="read noise of the recorded images (full scale 1; default 0.01)")
    attack.add_argument("--bits", type=int, default=8,
                        help="bit depth the camera stores (default 8; 0: floating point)")
    attack.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    attack.add_argument("--no-progress", action="store_true", help="no progress bar")
    attack.set_defaults(func=_cmd_attack)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``privcap`` command."""
    parser = argparse.ArgumentParser(
        prog="privcap",
        description="Privacy-preserving optics for image captioning (companion of the paper "
        "'Learning to Describe Scenes via Privacy-aware Optical Lens').",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="time the optics, a training step and the metrics "
                           "against baselines measured in the same run")
    bench.add_argument(
        "--sections",
        type=lambda s: [x for x in s.split(",") if x],
        default=None,
        help="comma-separated sections to run: optics, training, metrics (default: all)",
    )
    bench.add_argument("--out", default=None, help="JSON output (default: results/bench.json)")
    bench.add_argument("--quick", action="store_true", help="fewer repeats, smaller sizes")
    bench.set_defaults(func=_cmd_bench)

    data = sub.add_parser("data", help="download data sets")
    data_sub = data.add_subparsers(dest="dataset", required=True)
    coco = data_sub.add_parser("coco", help="COCO 2014 images, captions and the Karpathy split")
    coco.add_argument("dest", help="destination folder")
    coco.add_argument("--base-url", default=None, help="mirror to download from")
    coco.add_argument(
        "--parts",
        type=lambda s: [x for x in s.split(",") if x],
        default=None,
        help="comma-separated subset of parts to fetch (default: all)",
    )
    coco.add_argument(
        "--checksums",
        default=None,
        help="checksum manifest for a mirror (JSON, or md5sum / sha256sum text)",
    )
    coco.set_defaults(func=_cmd_data_coco)

    book = sub.add_parser("book", help="execute the notebooks with papermill and render the book")
    book.add_argument("--profile", default="quick", help="data/model profile (default: quick)")
    book.add_argument("--only", nargs="*", default=None, help="notebook names to execute")
    book.add_argument("--no-html", action="store_true", help="execute only, do not render")
    book.add_argument(
        "--smoke", action="store_true",
        help="run every notebook at its tiny test size (what `make test` builds; the numbers "
        "are not meaningful)",
    )
    book.add_argument(
        "--jobs", type=int, default=None, metavar="N",
        help="notebooks executed at a time, each chapter once those it reads are done "
        "(default: one per CPU, at most 4; 1: one after another in chapter order)",
    )
    book.set_defaults(func=_cmd_book)
    _add_training_commands(sub)
    _add_attack_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``privcap`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except _user_errors() as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__  # one line
        print(f"privcap: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("privcap: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
