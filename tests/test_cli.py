"""The ``privcap`` command: help, argument errors, and user errors as one line, exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from privcap.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "privcap", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_the_subcommands() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    for sub in ("bench", "data", "book", "train", "evaluate", "caption"):
        assert sub in proc.stdout


@pytest.mark.parametrize("sub", ["bench", "book", "data", "train", "evaluate", "caption"])
def test_subcommand_help(sub: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main([sub, "--help"])
    assert exc.value.code == 0
    assert f"privcap {sub}" in capsys.readouterr().out


def test_unknown_subcommand_is_a_usage_error() -> None:
    proc = run_cli("paint")
    assert proc.returncode == 2
    assert "invalid choice: 'paint'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "required" in capsys.readouterr().err


def test_book_unknown_profile_is_one_line_error(capsys: pytest.CaptureFixture) -> None:
    assert main(["book", "--profile", "huge", "--no-html"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("privcap: error: profile must be one of") and "'huge'" in err
    assert err.count("\n") == 1


def test_book_unknown_notebook_is_one_line_error(capsys: pytest.CaptureFixture) -> None:
    assert main(["book", "--only", "99_nothing", "--no-html"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("privcap: error:") and "99_nothing" in err


@pytest.mark.parametrize("sub", ["train", "evaluate", "caption"])
def test_training_commands_show_examples(sub: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main([sub, "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and f"privcap {sub} " in out.split("examples:")[1]


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("privcap: error: ")
    return proc.stderr


def test_missing_image_is_one_line(tmp_path) -> None:
    err = one_line_error(run_cli("caption", str(tmp_path / "nothere.png"), "--checkpoint",
                                 str(tmp_path)))
    assert "image file not found" in err and "nothere.png" in err


def test_unknown_camera_is_one_line() -> None:
    err = one_line_error(run_cli("train", "--camera", "fisheye", "--epochs", "1"))
    assert "camera must be one of" in err and "'fisheye'" in err


def test_missing_run_folder_is_one_line(tmp_path) -> None:
    err = one_line_error(run_cli("evaluate", str(tmp_path / "no_run")))
    assert "not found" in err and "no_run" in err


def call(capsys: pytest.CaptureFixture, *args: str) -> str:
    code = main(list(args))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("privcap: error: "), err
    return err


def test_bad_training_inputs_are_one_line(tmp_path, capsys: pytest.CaptureFixture) -> None:
    assert "unknown training config keys: ['epoch']" in call(capsys, "train", "--set",
                                                              "epoch=3")
    assert "expects KEY=VALUE" in call(capsys, "train", "--set", "epochs")
    assert "run folder not found" in call(capsys, "train", "--resume", "--out",
                                          str(tmp_path / "missing"))
    assert "profile must be one of" in call(capsys, "train", "--profile", "huge")
    assert "--set: a value has the wrong type" in call(capsys, "train", "--set", "epochs='x'")
    assert "unknown optics config keys: ['grid']" in call(capsys, "train", "--optics-set",
                                                           "grid=3")


def test_bad_checkpoints_are_one_line(tmp_path, capsys: pytest.CaptureFixture) -> None:
    from PIL import Image

    from privcap.captioning import Captioner, Vocabulary, captioner_config, save_captioner

    image = tmp_path / "scene.png"
    Image.new("RGB", (40, 40), (200, 30, 30)).save(image)
    (tmp_path / "broken.png").write_text("not an image")
    assert "not a recognised image file" in call(
        capsys, "caption", str(tmp_path / "broken.png"), "--checkpoint", str(tmp_path))
    assert "checkpoint or run folder not found" in call(
        capsys, "caption", str(image), "--checkpoint", str(tmp_path / "none.pt"))
    assert "has no last.pt" in call(capsys, "caption", str(image), "--checkpoint",
                                    str(tmp_path))
    vocab = Vocabulary(words=["<pad>", "<start>", "<end>", "<unk>", "red"], max_len=5)
    config = captioner_config("quick", image_size=32, small_cnn_channels=(4,),
                              small_cnn_convs=(1,))
    save_captioner(Captioner(config, vocab), tmp_path / "clean.pt")
    err = call(capsys, "caption", str(image), "--checkpoint", str(tmp_path / "clean.pt"))
    assert "not a run checkpoint" in err and "captioner-only" in err
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 10)
    assert "cannot be read" in call(capsys, "evaluate", str(tmp_path / "junk.pt"))


def test_a_bug_is_not_reported_as_bad_input(monkeypatch) -> None:
    import privcap.cli as cli

    def broken(args):
        raise RuntimeError("shape mismatch inside torch")

    monkeypatch.setattr(cli, "_cmd_book", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(["book", "--no-html"])
