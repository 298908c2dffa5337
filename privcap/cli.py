"""The ``privcap`` command.

Subcommands (each one a thin wrapper over a library function)::

    privcap bench [--sections optics,metrics] [--out results/bench.json]
    privcap data coco DEST [--base-url URL]
    privcap book [--profile quick] [--only 01_fresnel_psf ...]

Errors caused by bad input (``ValueError``, ``FileNotFoundError``, ...) are printed as one
line ``privcap: error: ...`` with exit status 2, never as a bare traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

#: exceptions that mean "the user gave bad input"; anything else is a bug and re-raised
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    PermissionError,
    KeyError,
    RuntimeError,
)


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

    build_book(profile=args.profile, only=args.only, html=not args.no_html)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``privcap`` command."""
    parser = argparse.ArgumentParser(
        prog="privcap",
        description="Privacy-preserving optics for image captioning (companion of the paper "
        "'Learning to Describe Scenes via Privacy-aware Optical Lens').",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="time the optics and metrics against baselines")
    bench.add_argument(
        "--sections",
        type=lambda s: [x for x in s.split(",") if x],
        default=None,
        help="comma-separated sections to run (default: all)",
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
    book.set_defaults(func=_cmd_book)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``privcap`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except USER_ERRORS as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"privcap: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("privcap: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
