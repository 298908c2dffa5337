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
    for sub in ("bench", "data", "book"):
        assert sub in proc.stdout


@pytest.mark.parametrize("sub", ["bench", "book", "data"])
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
