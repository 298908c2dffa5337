"""Downloading COCO 2014 and Karpathy's caption split (the ``full`` profile's data).

``privcap data coco DEST`` calls :func:`download_coco`. Four parts can be fetched:

=============== =========================================================== ================
part            archive (official URL)                                      size (bytes)
=============== =========================================================== ================
``train2014``   http://images.cocodataset.org/zips/train2014.zip            13,510,573,713
``val2014``     http://images.cocodataset.org/zips/val2014.zip               6,645,013,297
``annotations`` http://images.cocodataset.org/annotations/                     252,872,794
                annotations_trainval2014.zip
``karpathy``    http://cs.stanford.edu/people/karpathy/deepimagesent/       not published
                caption_datasets.zip
=============== =========================================================== ================

**What is verified.** The three COCO archives have MD5 sums that are quoted identically by
many independent projects (train2014 ``0da8c0bd...``, val2014 ``a3d79f5e...``,
annotations ``0a379cfc...``; the full values are in :data:`COCO_FILES`) and the sizes
above (servers' ``Content-Length``). For Karpathy's ``caption_datasets.zip`` no checksum or
size is published anywhere we could confirm, so none is claimed: that archive is checked
only for ZIP integrity (every member's CRC) and a note says so. A mirror
(``base_url``) must serve the same file names under one folder; the official checksums
apply to it unless a ``checksums`` manifest is given, which overrides them per file. A
manifest is a JSON object ``{"val2014.zip": {"md5": "...", "sha256": "...", "size": 123}}``
(any subset of the keys; a bare string ``"md5:<hex>"`` or ``"sha256:<hex>"`` also works),
or a text file in ``md5sum`` / ``sha256sum`` format (``<hex>  <file name>`` per line).

**Resuming.** Data goes to ``DEST/archives/<name>.part`` and is continued with an HTTP
``Range`` request after an interruption (automatically up to ``retries`` times, and on the
next run). A server that ignores ``Range`` (answers 200) makes the download restart from
zero. A file that fails its checksum is renamed ``<name>.corrupt`` (so the next run starts
afresh) and :class:`ChecksumError` says which check failed.

**Extraction.** Verified archives are unpacked into ``DEST`` (``DEST/train2014``,
``DEST/val2014``, ``DEST/annotations/captions_*.json``, ``DEST/dataset_coco.json``), with
member paths checked to stay inside ``DEST``; a marker in ``DEST/.privcap-download``
records each finished part so that a rerun skips it. Archives are deleted after a
successful extraction unless ``keep_archives`` is set.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any

from tqdm import tqdm

_CHUNK_BYTES = 1 << 20
_MARKERS = ".privcap-download"


class DownloadError(RuntimeError):
    """A file could not be downloaded (network, HTTP status, interrupted transfer)."""


class ChecksumError(DownloadError):
    """A downloaded file does not match its expected size, checksum or archive CRCs."""


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable archive and what is known about it."""

    name: str  # file name, also the name on a mirror
    url: str  # official location
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None


#: The parts of :func:`download_coco`, with the official URLs and known checksums.
COCO_FILES: dict[str, RemoteFile] = {
    "train2014": RemoteFile("train2014.zip", "http://images.cocodataset.org/zips/train2014.zip",
                            13_510_573_713, "0da8c0bd3d6becc4dcb32757491aca88"),
    "val2014": RemoteFile("val2014.zip", "http://images.cocodataset.org/zips/val2014.zip",
                          6_645_013_297, "a3d79f5ed8d289b7a7554ce06a5782b3"),
    "annotations": RemoteFile(
        "annotations_trainval2014.zip",
        "http://images.cocodataset.org/annotations/annotations_trainval2014.zip",
        252_872_794, "0a379cfc70b0e71301e0f377548639bd"),
    "karpathy": RemoteFile(
        "caption_datasets.zip",
        "http://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip"),
}


@dataclass
class PartResult:
    """Outcome of one part of :func:`download_coco`."""

    part: str
    archive: str
    status: str  # "downloaded", "resumed", "present" (archive kept earlier), "already extracted"
    verified: str  # what was checked
    bytes_downloaded: int


# --------------------------------------------------------------------------- checksums


def _parse_expectation(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        kind, _, digest = value.partition(":")
        if kind not in ("md5", "sha256") or not digest:
            raise ValueError(f"checksum for {name} must look like 'md5:<hex>' or "
                             f"'sha256:<hex>', got {value!r}")
        return {kind: digest.lower()}
    if isinstance(value, Mapping):
        unknown = set(value) - {"md5", "sha256", "size"}
        if unknown:
            raise ValueError(f"checksum entry for {name} has unknown keys {sorted(unknown)}")
        out = {k: (str(v).lower() if k != "size" else int(v)) for k, v in value.items()}
        return out
    raise ValueError(f"checksum entry for {name} must be a string or an object, got {value!r}")


def read_checksums(source: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, dict]:
    """Read a checksum manifest: a mapping, a JSON file or an md5sum/sha256sum text file.

    Returns ``{file name: {"md5"?: hex, "sha256"?: hex, "size"?: int}}``.
    """
    if isinstance(source, Mapping):
        return {str(k): _parse_expectation(str(k), v) for k, v in source.items()}
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"checksum manifest not found: {path}")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"checksum manifest {path} is not valid JSON: {exc}") from exc
        return read_checksums(data)
    out: dict[str, dict] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        digest = parts[0].lower()
        if len(parts) != 2 or len(digest) not in (32, 64) or any(
                c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"{path}:{number}: expected '<md5 or sha256 hex>  <file name>', "
                             f"got {line!r}")
        name = parts[1].strip().lstrip("*")
        out.setdefault(name, {})["md5" if len(digest) == 32 else "sha256"] = digest
    return out


def _file_digests(path: Path, kinds: Iterable[str], desc: str, progress: bool) -> dict[str, str]:
    hashers = {k: hashlib.new(k) for k in kinds}
    if not hashers:
        return {}
    with path.open("rb") as fh, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                     desc=f"checking {desc}", disable=not progress,
                                     leave=False) as bar:
        while chunk := fh.read(_CHUNK_BYTES):
            for h in hashers.values():
                h.update(chunk)
            bar.update(len(chunk))
    return {k: h.hexdigest() for k, h in hashers.items()}


def _quarantine(path: Path) -> Path:
    corrupt = path.with_name(path.name.removesuffix(".part") + ".corrupt")
    os.replace(path, corrupt)
    return corrupt


def verify_file(path: Path, name: str, expected: Mapping[str, Any], *,
                progress: bool = False) -> str:
    """Check ``path`` against ``expected`` (size, md5, sha256); without any checksum, test
    the ZIP archive's CRCs instead. Returns a description of what was verified.

    Raises:
        ChecksumError: a check failed; the file is renamed ``<name>.corrupt``.
    """
    done = []
    size = path.stat().st_size
    if expected.get("size") is not None:
        if size != int(expected["size"]):
            moved = _quarantine(path)
            raise ChecksumError(f"{name}: size mismatch: expected {expected['size']} bytes, got "
                                f"{size}; moved to {moved}, run again to download it afresh")
        done.append("size")
    kinds = [k for k in ("md5", "sha256") if expected.get(k)]
    digests = _file_digests(path, kinds, name, progress)
    for kind in kinds:
        if digests[kind] != expected[kind]:
            moved = _quarantine(path)
            raise ChecksumError(f"{name}: {kind} mismatch: expected {expected[kind]}, got "
                                f"{digests[kind]}; moved to {moved}, run again to download it "
                                "afresh")
        done.append(kind)
    if not kinds:
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            moved = _quarantine(path)
            raise ChecksumError(f"{name}: not a valid ZIP archive ({exc}); no checksum is known "
                                f"for it; moved to {moved}") from exc
        if bad is not None:
            moved = _quarantine(path)
            raise ChecksumError(f"{name}: ZIP member {bad!r} fails its CRC; no checksum is "
                                f"known for it; moved to {moved}")
        done.append("zip CRCs (no published checksum)")
    return " + ".join(done)


# --------------------------------------------------------------------------- transfer


def _open(url: str, offset: int, timeout: float):
    headers = {"User-Agent": "privcap-downloader"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http(s) only)


def download_file(url: str, target: str | os.PathLike[str], *,
                  expected: Mapping[str, Any] | None = None, retries: int = 3,
                  timeout: float = 60.0, progress: bool = True) -> tuple[str, str, int]:
    """Download ``url`` to ``target`` with resume (HTTP Range) and verification.

    Data goes to ``<target>.part`` first and is renamed when verified.

    Args:
        url: http(s) URL.
        target: final path.
        expected: ``size`` / ``md5`` / ``sha256`` to check (see :func:`verify_file`).
        retries: automatic resumptions after an interrupted transfer.
        timeout: socket timeout in seconds.
        progress: show a tqdm progress bar.

    Returns:
        ``(status, verified, bytes_downloaded)`` with status "downloaded", "resumed" or
        "present" (the target already existed and passed verification).

    Raises:
        DownloadError: HTTP error or a transfer still incomplete after ``retries``
            resumptions (the ``.part`` file is kept; call again to resume).
        ChecksumError: verification failed.
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"url must start with http:// or https://, got {url!r}")
    target = Path(target)
    expected = dict(expected or {})
    name = target.name
    if target.exists():
        return "present", verify_file(target, name, expected, progress=progress), 0
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(name + ".part")
    total = expected.get("size")
    resumed = part.exists() and part.stat().st_size > 0
    fetched = 0
    attempt = 0
    while True:
        offset = part.stat().st_size if part.exists() else 0
        if total is not None and offset > total:
            part.unlink()  # longer than the real file: start again
            offset = 0
        if total is not None and offset == total:
            break
        try:
            response = _open(url, offset, timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:  # nothing left to send: the part is complete
                break
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError, HTTPException) as exc:
            if attempt < retries:
                attempt += 1
                continue
            raise DownloadError(f"{url}: cannot connect ({exc}); {offset} bytes kept in {part}, "
                                "run again to resume") from exc
        with response:
            status = getattr(response, "status", 200)
            if status == 206:
                content_range = response.headers.get("Content-Range", "")
                start = content_range.split()[1].split("-")[0] if " " in content_range else ""
                if start != str(offset):
                    raise DownloadError(f"{url}: server answered range {content_range!r} to a "
                                        f"request from byte {offset}")
                mode = "ab"
            else:  # 200: the server ignores Range, start from zero
                offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            expected_end = offset + int(length) if length is not None else total
            if total is None and expected_end is not None:
                total = expected_end
            try:
                with part.open(mode) as fh, tqdm(
                        total=total, initial=offset, unit="B", unit_scale=True, desc=name,
                        disable=not progress, file=sys.stderr) as bar:
                    while chunk := response.read(_CHUNK_BYTES):
                        fh.write(chunk)
                        fetched += len(chunk)
                        bar.update(len(chunk))
            except (OSError, HTTPException) as exc:
                complete = False
                error: Exception | None = exc
            else:
                size_now = part.stat().st_size
                complete = expected_end is None or size_now >= expected_end
                error = None
        if complete:
            break
        if attempt < retries:
            attempt += 1
            resumed = True
            continue
        have = part.stat().st_size if part.exists() else 0
        why = f" ({error})" if error else ""
        raise DownloadError(f"{url}: transfer interrupted after {have} of "
                            f"{expected_end if expected_end is not None else '?'} bytes{why}; "
                            f"the partial file {part} is kept, run again to resume")
    verified = verify_file(part, name, expected, progress=progress)
    os.replace(part, target)
    return ("resumed" if resumed else "downloaded"), verified, fetched


# --------------------------------------------------------------------------- extraction


def extract_zip(archive: str | os.PathLike[str], dest: str | os.PathLike[str],
                progress: bool = True) -> list[str]:
    """Unpack ``archive`` into ``dest``; member paths must stay inside ``dest``.

    Returns the member names extracted.
    """
    dest_dir = Path(dest).resolve()
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for member in members:
            out = (dest_dir / member.filename).resolve()
            if out != dest_dir and dest_dir not in out.parents:
                raise ValueError(f"{archive}: member {member.filename!r} would be written "
                                 f"outside {dest_dir}; refusing to extract")
        for member in tqdm(members, desc=f"extracting {Path(archive).name}", unit="file",
                           disable=not progress, file=sys.stderr):
            zf.extract(member, dest_dir)
    return [m.filename for m in members]


# --------------------------------------------------------------------------- COCO


def download_coco(dest: str | os.PathLike[str], base_url: str | None = None,
                  parts: Iterable[str] | None = None, *,
                  checksums: str | os.PathLike[str] | Mapping[str, Any] | None = None,
                  keep_archives: bool = False, retries: int = 3, timeout: float = 60.0,
                  progress: bool = True) -> list[PartResult]:
    """Download, verify and unpack COCO 2014 images, captions and the Karpathy split.

    Args:
        dest: destination folder (created).
        base_url: mirror holding the archives by file name (``<base_url>/val2014.zip``);
            None uses the official URLs of :data:`COCO_FILES`.
        parts: subset of ``train2014``, ``val2014``, ``annotations``, ``karpathy``
            (default: all).
        checksums: manifest overriding / adding expected sizes and checksums per file
            name (mapping, JSON file, or md5sum / sha256sum text file).
        keep_archives: keep the ZIP files after extraction.
        retries: automatic resumptions per file after an interrupted transfer.
        timeout: socket timeout in seconds.
        progress: show progress bars and a summary on stderr.

    Returns:
        One :class:`PartResult` per part.
    """
    wanted = list(COCO_FILES) if parts is None else list(parts)
    unknown = [p for p in wanted if p not in COCO_FILES]
    if unknown or not wanted:
        raise ValueError(f"unknown COCO part(s) {unknown or wanted}; choose from "
                         f"{list(COCO_FILES)}")
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
    manifest = read_checksums(checksums) if checksums is not None else {}
    dest_dir = Path(dest)
    if dest_dir.exists() and not dest_dir.is_dir():
        raise NotADirectoryError(f"destination is not a folder: {dest_dir}")
    archives = dest_dir / "archives"
    markers = dest_dir / _MARKERS
    archives.mkdir(parents=True, exist_ok=True)
    markers.mkdir(parents=True, exist_ok=True)

    plans = []
    needed_bytes = 0
    for part in wanted:
        remote = COCO_FILES[part]
        expected: dict[str, Any] = {k: v for k, v in (("size", remote.size), ("md5", remote.md5),
                                                       ("sha256", remote.sha256)) if v}
        expected.update(manifest.get(remote.name, {}))
        url = f"{base_url.rstrip('/')}/{remote.name}" if base_url else remote.url
        marker = markers / f"{part}.done"
        plans.append((part, remote, url, expected, marker))
        if not marker.exists() and expected.get("size"):
            partial = archives / (remote.name + ".part")
            have = partial.stat().st_size if partial.exists() else 0
            needed_bytes += 2 * int(expected["size"]) - have  # archive + extracted files
    free = shutil.disk_usage(dest_dir).free
    if needed_bytes > free:
        raise ValueError(f"not enough free space in {dest_dir}: about {needed_bytes / 1e9:.1f} GB "
                         f"needed (archives and extracted files), {free / 1e9:.1f} GB free")

    results = []
    for part, remote, url, expected, marker in plans:
        if marker.exists():
            results.append(PartResult(part, remote.name, "already extracted",
                                      marker.read_text(encoding="utf-8").strip(), 0))
            continue
        archive = archives / remote.name
        status, verified, fetched = download_file(url, archive, expected=expected,
                                                  retries=retries, timeout=timeout,
                                                  progress=progress)
        extract_zip(archive, dest_dir, progress=progress)
        marker.write_text(f"{remote.name}: {verified}\n", encoding="utf-8")
        if not keep_archives:
            archive.unlink()
        results.append(PartResult(part, remote.name, status, verified, fetched))
    if progress:
        for r in results:
            tqdm.write(f"{r.part}: {r.status} ({r.archive}; verified: {r.verified})",
                       file=sys.stderr)
    return results
