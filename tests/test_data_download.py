"""Resumable, verified COCO download (privcap.data.download) against a local HTTP server."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from privcap.cli import main
from privcap.data.coco import load_coco_captions, load_karpathy_split
from privcap.data.download import (
    COCO_FILES,
    ChecksumError,
    DownloadError,
    download_coco,
    download_file,
    extract_zip,
    read_checksums,
)

# ----------------------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    """Serves files of ``root``; supports ``Range: bytes=N-``; can cut a transfer short."""

    root: Path
    requests: list[tuple[str, str | None]]
    cut_after: dict[str, int]  # file name -> bytes to send before dropping the connection
    ignore_range = False

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        name = self.path.lstrip("/")
        header = self.headers.get("Range")
        self.requests.append((name, header))
        path = self.root / name
        if not path.is_file():
            self.send_error(404, "not found")
            return
        data = path.read_bytes()
        start = 0
        if header and not self.ignore_range:
            start = int(header.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/zip")
        self.end_headers()
        cut = self.cut_after.pop(name, None)
        self.wfile.write(body if cut is None else body[:cut])
        self.wfile.flush()
        if cut is not None:
            self.close_connection = True


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "mirror"
    root.mkdir()
    handler = type("Handler", (_Handler,), {"root": root, "requests": [], "cut_after": {},
                                            "ignore_range": False})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


# ----------------------------------------------------------------------------- archives


def _jpeg_bytes(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((24, 32, 3), value, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture()
def mirror(server):
    """A tiny COCO mirror: val2014 images, captions, Karpathy split; and its manifest."""
    handler, url = server
    root = handler.root
    name = "COCO_val2014_000000000042.jpg"
    filler = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    _zip(root / "val2014.zip", {f"val2014/{name}": _jpeg_bytes(120),
                                "val2014/filler.bin": filler})
    captions = {"images": [{"id": 42, "file_name": name}],
                "annotations": [{"image_id": 42, "caption": "A gray square.\n"},
                                {"image_id": 42, "caption": "..."}]}
    _zip(root / "annotations_trainval2014.zip",
         {"annotations/captions_val2014.json": json.dumps(captions).encode()})
    karpathy = {"images": [{"filepath": "val2014", "filename": name, "cocoid": 42, "imgid": 0,
                            "split": "test", "sentences": [{"raw": "A gray square."}]}]}
    _zip(root / "caption_datasets.zip", {"dataset_coco.json": json.dumps(karpathy).encode()})
    manifest = {p.name: {"md5": _md5(p), "size": p.stat().st_size}
                for p in root.glob("*.zip")}
    return handler, url, manifest


PARTS = ["val2014", "annotations", "karpathy"]


# ----------------------------------------------------------------------------- tests


def test_download_verify_extract_and_load(tmp_path, mirror):
    handler, url, manifest = mirror
    dest = tmp_path / "coco"
    results = download_coco(dest, base_url=url, parts=PARTS, checksums=manifest,
                            progress=False)
    assert [r.status for r in results] == ["downloaded"] * 3
    assert results[0].verified == "size + md5"
    assert results[0].bytes_downloaded == manifest["val2014.zip"]["size"]
    assert (dest / "val2014" / "COCO_val2014_000000000042.jpg").is_file()
    assert not list((dest / "archives").iterdir())  # archives removed after extraction
    test = load_karpathy_split(dest / "dataset_coco.json", dest, split="test", image_size=16)
    assert len(test) == 1 and test[0]["captions"] == ["A gray square."]
    coco = load_coco_captions(dest / "annotations" / "captions_val2014.json", dest / "val2014")
    assert coco.references() == {42: ["A gray square."]}
    assert coco.report.dropped_captions == {"punctuation_only": 1}
    # a second run skips everything: no request reaches the server
    before = len(handler.requests)
    again = download_coco(dest, base_url=url, parts=PARTS, checksums=manifest, progress=False)
    assert [r.status for r in again] == ["already extracted"] * 3
    assert len(handler.requests) == before


def test_kept_archive_is_reverified_and_reextracted(tmp_path, mirror):
    handler, url, manifest = mirror
    dest = tmp_path / "coco"
    download_coco(dest, base_url=url, parts=["karpathy"], checksums=manifest,
                  keep_archives=True, progress=False)
    assert (dest / "archives" / "caption_datasets.zip").is_file()
    (dest / ".privcap-download" / "karpathy.done").unlink()  # as if extraction was cut short
    (dest / "dataset_coco.json").unlink()
    requests = len(handler.requests)
    again = download_coco(dest, base_url=url, parts=["karpathy"], checksums=manifest,
                          progress=False)
    assert again[0].status == "present" and again[0].verified == "size + md5"
    assert len(handler.requests) == requests  # nothing fetched again
    assert (dest / "dataset_coco.json").is_file()
    assert not (dest / "archives" / "caption_datasets.zip").exists()


def test_interrupted_download_resumes_on_the_next_run(tmp_path, mirror):
    handler, url, manifest = mirror
    handler.cut_after["val2014.zip"] = 100_000
    dest = tmp_path / "coco"
    with pytest.raises(DownloadError, match=r"interrupted after 100000 of \d+ bytes.*resume"):
        download_coco(dest, base_url=url, parts=["val2014"], checksums=manifest, retries=0,
                      progress=False)
    part = dest / "archives" / "val2014.zip.part"
    assert part.stat().st_size == 100_000
    assert not (dest / "val2014").exists()
    results = download_coco(dest, base_url=url, parts=["val2014"], checksums=manifest,
                            retries=0, progress=False)
    assert results[0].status == "resumed"
    assert results[0].bytes_downloaded == manifest["val2014.zip"]["size"] - 100_000
    assert handler.requests[-1] == ("val2014.zip", "bytes=100000-")
    assert (dest / "val2014" / "filler.bin").stat().st_size == 300_000


def test_interruption_is_retried_automatically(tmp_path, mirror):
    handler, url, manifest = mirror
    handler.cut_after["val2014.zip"] = 5_000
    target = tmp_path / "val2014.zip"
    status, verified, fetched = download_file(f"{url}/val2014.zip", target,
                                              expected=manifest["val2014.zip"], retries=2,
                                              progress=True)
    assert status == "resumed" and verified == "size + md5"
    assert fetched == manifest["val2014.zip"]["size"]
    assert [r for _, r in handler.requests] == [None, "bytes=5000-"]
    assert _md5(target) == manifest["val2014.zip"]["md5"]


def test_server_ignoring_range_restarts_from_zero(tmp_path, mirror):
    handler, url, manifest = mirror
    handler.ignore_range = True
    target = tmp_path / "val2014.zip"
    target.with_name("val2014.zip.part").write_bytes(b"stale bytes from another file")
    status, _, fetched = download_file(f"{url}/val2014.zip", target,
                                       expected=manifest["val2014.zip"], progress=False)
    assert handler.requests[-1][1] == "bytes=29-"  # asked to resume, got the whole file
    assert fetched == manifest["val2014.zip"]["size"]
    assert _md5(target) == manifest["val2014.zip"]["md5"]


def test_complete_part_file_gets_416_and_is_verified(tmp_path, mirror):
    handler, url, manifest = mirror
    target = tmp_path / "caption_datasets.zip"
    target.with_name(target.name + ".part").write_bytes(
        (handler.root / "caption_datasets.zip").read_bytes())
    status, verified, fetched = download_file(f"{url}/caption_datasets.zip", target,
                                              progress=False)
    assert handler.requests[-1][1] is not None and fetched == 0
    assert verified == "zip CRCs (no published checksum)" and target.is_file()


def test_corrupted_file_fails_its_checksum(tmp_path, mirror):
    handler, url, manifest = mirror
    served = handler.root / "val2014.zip"
    data = bytearray(served.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    served.write_bytes(bytes(data))
    dest = tmp_path / "coco"
    with pytest.raises(ChecksumError, match=r"val2014\.zip: md5 mismatch: expected "
                       + manifest["val2014.zip"]["md5"]):
        download_coco(dest, base_url=url, parts=["val2014"], checksums=manifest,
                      progress=False)
    assert (dest / "archives" / "val2014.zip.corrupt").is_file()
    assert not (dest / "archives" / "val2014.zip.part").exists()
    assert not (dest / "val2014").exists()
    assert not (dest / ".privcap-download" / "val2014.done").exists()


def test_size_mismatch_and_official_checksums_on_a_mirror(tmp_path, mirror):
    handler, url, manifest = mirror
    wrong = {"caption_datasets.zip": {"size": 12345}}
    with pytest.raises(ChecksumError, match=r"caption_datasets\.zip: size mismatch: "
                       r"expected 12345"):
        download_coco(tmp_path / "a", base_url=url, parts=["karpathy"], checksums=wrong,
                      progress=False)
    # without a manifest the official size / md5 apply to a mirror's file of the same name
    with pytest.raises(ChecksumError, match=r"annotations_trainval2014\.zip: size mismatch: "
                       r"expected 252872794"):
        download_coco(tmp_path / "b", base_url=url, parts=["annotations"], progress=False)


def test_no_checksum_known_falls_back_to_zip_crcs(tmp_path, mirror):
    handler, url, manifest = mirror
    results = download_coco(tmp_path / "ok", base_url=url, parts=["karpathy"], progress=False)
    assert results[0].verified == "zip CRCs (no published checksum)"
    assert (tmp_path / "ok" / "dataset_coco.json").is_file()
    served = handler.root / "caption_datasets.zip"
    data = bytearray(served.read_bytes())
    data[40] ^= 0xFF  # inside the stored member's data: its CRC no longer matches
    served.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"caption_datasets\.zip: ZIP member "
                       r"'dataset_coco\.json' fails its CRC; no checksum is known"):
        download_coco(tmp_path / "bad", base_url=url, parts=["karpathy"], progress=False)
    served.write_bytes(b"<html>not a zip</html>")
    with pytest.raises(ChecksumError, match="not a valid ZIP archive"):
        download_coco(tmp_path / "html", base_url=url, parts=["karpathy"], progress=False)


def test_http_errors_and_bad_arguments(tmp_path, server):
    handler, url = server
    with pytest.raises(DownloadError, match=r"nothing\.zip: HTTP 404"):
        download_file(f"{url}/nothing.zip", tmp_path / "nothing.zip", progress=False)
    with pytest.raises(DownloadError, match="cannot connect"):
        download_file("http://127.0.0.1:9/x.zip", tmp_path / "x.zip", retries=0, timeout=2,
                      progress=False)
    with pytest.raises(ValueError, match="unknown COCO part"):
        download_coco(tmp_path, parts=["val2017"])
    with pytest.raises(ValueError, match="base_url"):
        download_coco(tmp_path, base_url="ftp://example.org")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="file"):
        download_coco(tmp_path / "file", base_url=url, parts=["karpathy"])


def test_extract_refuses_paths_outside_destination(tmp_path):
    _zip(tmp_path / "evil.zip", {"../escaped.txt": b"x"})
    with pytest.raises(ValueError, match="outside"):
        extract_zip(tmp_path / "evil.zip", tmp_path / "dest", progress=False)
    assert not (tmp_path / "escaped.txt").exists()


def test_checksum_manifests(tmp_path):
    text = tmp_path / "MD5SUMS"
    text.write_text("# mirror\n" + "a" * 32 + "  val2014.zip\n" + "b" * 64 + " *train2014.zip\n")
    assert read_checksums(text) == {"val2014.zip": {"md5": "a" * 32},
                                    "train2014.zip": {"sha256": "b" * 64}}
    js = tmp_path / "sums.json"
    js.write_text(json.dumps({"x.zip": "sha256:" + "C" * 64, "y.zip": {"size": 3}}))
    assert read_checksums(js) == {"x.zip": {"sha256": "c" * 64}, "y.zip": {"size": 3}}
    (tmp_path / "bad").write_text("not-a-hash  file.zip\n")
    with pytest.raises(ValueError, match=r"bad:1"):
        read_checksums(tmp_path / "bad")
    with pytest.raises(ValueError, match="md5:<hex>"):
        read_checksums({"x.zip": "crc32:1234"})
    with pytest.raises(FileNotFoundError, match="manifest"):
        read_checksums(tmp_path / "none")


def test_official_table():
    """The official parts; a checksum is claimed only where one is published."""
    assert list(COCO_FILES) == ["train2014", "val2014", "annotations", "karpathy"]
    for part in ("train2014", "val2014", "annotations"):
        remote = COCO_FILES[part]
        assert remote.url.startswith("http://images.cocodataset.org/")
        assert len(remote.md5) == 32 and remote.size > 10**8
    assert COCO_FILES["karpathy"].md5 is None and COCO_FILES["karpathy"].size is None


def test_cli_reports_errors_and_accepts_a_manifest(tmp_path, mirror, capsys):
    handler, url, manifest = mirror
    status = main(["data", "coco", str(tmp_path / "x"), "--base-url", url,
                   "--parts", "annotations"])
    assert status == 2
    assert "privcap: error: annotations_trainval2014.zip: size mismatch" in \
        capsys.readouterr().err
    sums = tmp_path / "sums.json"
    sums.write_text(json.dumps(manifest))
    status = main(["data", "coco", str(tmp_path / "y"), "--base-url", url,
                   "--parts", "annotations,karpathy", "--checksums", str(sums)])
    assert status == 0
    assert (tmp_path / "y" / "annotations" / "captions_val2014.json").is_file()
    assert "annotations: downloaded" in capsys.readouterr().err
