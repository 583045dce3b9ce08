"""Layering: which modules import without torch, and the command line's error contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from nvcodec.cli.main import EXIT_BUG, EXIT_ERROR, main as cli
from nvcodec.errors import NvcError, NvcFormatError, NvcInputError
from nvcodec.presets import PRESETS

TESTS = Path(__file__).parent


def _without_torch(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where ``import torch`` fails."""
    prelude = "import sys; sys.modules['torch'] = None; sys.path.insert(0, %r)\n" % str(TESTS)
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True)


def test_configs_and_presets_import_without_torch():
    """nvcodec.config, nvcodec.presets and nvcodec.errors need no torch: the CLI lists presets from them."""
    proc = _without_torch("import nvcodec.config, nvcodec.presets, nvcodec.errors; "
                          "print(sorted(nvcodec.presets.PRESETS))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(sorted(PRESETS))


def test_bitstream_tests_import_without_torch():
    """The bitstream test modules and the shared conftest import (so they run) without torch."""
    modules = sorted(p.stem for p in TESTS.glob("test_bitstream_*.py"))
    assert len(modules) >= 4
    proc = _without_torch(f"import conftest\nfor m in {modules!r}: __import__(m)")
    assert proc.returncode == 0, proc.stderr


def test_user_errors_share_one_base_class():
    """Format and input errors are NvcError and still ValueError, so older callers keep working."""
    from nvcodec.media import MediaError

    for cls in (NvcFormatError, NvcInputError, MediaError):
        assert issubclass(cls, NvcError) and issubclass(cls, ValueError)


def test_cli_preset_choices_are_the_registry():
    from nvcodec.cli.main import encode

    option = next(p for p in encode.params if p.name == "preset")
    assert list(option.type.choices) == list(PRESETS)


def test_cli_reports_a_user_error_in_one_line(tmp_path):
    """A file that is not an .nvc: one 'nvcodec: error:' line, exit status 1, no traceback."""
    bad = tmp_path / "not.nvc"
    bad.write_bytes(b"hello, not a codec file")
    result = CliRunner().invoke(cli, ["info", str(bad)])
    assert result.exit_code == EXIT_ERROR
    assert result.output.startswith("nvcodec: error: ") and "Traceback" not in result.output
    assert "internal error" not in result.output


def test_cli_refuses_an_existing_output_as_a_user_error(tmp_path):
    out = tmp_path / "out.nvc"
    out.write_bytes(b"")
    result = CliRunner().invoke(cli, ["encode", str(tmp_path), str(out), "--preset", "tiny"])
    assert result.exit_code == EXIT_ERROR
    assert result.output.startswith("nvcodec: error: ") and "--force" in result.output


@pytest.mark.parametrize("exc", [ZeroDivisionError("division by zero"), ValueError("an internal check")])
def test_cli_calls_any_other_exception_a_bug(tmp_path, monkeypatch, exc):
    """Not an NvcError (even a plain ValueError): said to be a bug, with how to report it, exit 70."""
    import nvcodec.info

    def broken(path):
        raise exc

    monkeypatch.setattr(nvcodec.info, "describe", broken)
    f = tmp_path / "x.nvc"
    f.write_bytes(b"")
    result = CliRunner().invoke(cli, ["info", str(f)])
    assert result.exit_code == EXIT_BUG
    assert result.output.startswith(f"nvcodec: internal error (a bug in nvcodec")
    assert f"{type(exc).__name__}: {exc}" in result.output
    assert "--debug" in result.output and "report" in result.output
    assert "Traceback" not in result.output


def test_cli_debug_lets_a_bug_through_with_its_traceback(tmp_path, monkeypatch):
    import nvcodec.info

    def broken(path):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(nvcodec.info, "describe", broken)
    f = tmp_path / "x.nvc"
    f.write_bytes(b"")
    result = CliRunner().invoke(cli, ["--debug", "info", str(f)])
    assert isinstance(result.exception, ZeroDivisionError)
    assert result.exc_info[2] is not None
