"""Every CLI failure: one line naming the user's path (or one JSON object), the documented exit code.

Each sub-command runs, through the installed console script, against a set of bad
inputs; none may print a traceback, print more than one line, or name a staging file.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest

from arraystore.cli._errors import EXIT_CODES, cli_message

from .conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]


def _bad_inputs(tmp: Path) -> dict[str, tuple[str, str]]:
    """name -> (path as the user types it, with a detour through ``..``; the normalised path)."""
    (tmp / "d").mkdir()
    np.arange(100, dtype="<f4").tofile(tmp / "headerless.dat")
    (tmp / "garbage.npy").write_bytes(b"not an npy file at all")
    (tmp / "garbage.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    (tmp / "dir.npy").mkdir()  # a folder where a file is expected: unreadable as a file (even for root)
    (tmp / "short.dat").write_bytes(b"\0" * 10)
    (tmp / "short.dat.json").write_text(json.dumps({
        "format": "arraystore.raw", "version": 1, "shape": [4, 8], "dtype": "<f4", "order": "C",
        "offset": 0, "nbytes": 128, "complete": True, "attrs": {}}))
    names = {
        "missing-file": "missing.dat",
        "missing-folder": "nowhere/x.dat",
        "headerless": "headerless.dat",
        "garbage-npy": "garbage.npy",
        "garbage-h5": "garbage.h5",
        "folder-as-file": "dir.npy",
        "wrong-size": "short.dat",
    }
    return {k: (f"{tmp}/d/../{v}", f"{tmp}/{v}") for k, v in names.items()}


def _assert_one_line(proc: object, normalised: str, code: int = 1) -> None:
    out, err, rc = proc.stdout, proc.stderr, proc.returncode  # type: ignore[attr-defined]
    assert rc == code, (rc, err)
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("arraystore"), err
    assert "/../" not in err and ".partial" not in err, err
    assert normalised in err or Path(normalised).parent.as_posix() in err, err
    assert out == ""


COMMANDS = {
    "info": lambda p, t: ["info", p],
    "verify": lambda p, t: ["verify", p],
    "convert-from": lambda p, t: ["convert", p, f"{t}/out.zarr"],
    "inspect": lambda p, t: ["inspect", p],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_bad_input_is_one_line(tmp_path: Path, command: str) -> None:
    for name, (typed, normalised) in _bad_inputs(tmp_path).items():
        argv = COMMANDS[command](typed, str(tmp_path))
        proc = run_cli(*argv)
        if command == "inspect" and name in ("headerless", "wrong-size", "garbage-npy", "garbage-h5"):
            # inspect explains files rather than opening them: its own documented codes 0/3/4
            assert proc.returncode in (0, 3, 4) and "Traceback" not in proc.stderr, (name, proc.stderr)
            continue
        _assert_one_line(proc, normalised)
        js = run_cli(*argv, "--json")
        assert js.returncode == proc.returncode and "Traceback" not in js.stderr
        if command != "inspect" or js.stdout == "":
            err = json.loads(js.stderr)
            assert set(err) == {"type", "message", "path", "exit_code"}, err
            assert err["exit_code"] == proc.returncode and "\n" not in err["message"]
            assert err["type"] in proc.stderr


def test_convert_into_missing_folder_names_the_destination(tmp_path: Path, good: Path) -> None:
    proc = run_cli("convert", str(good), f"{tmp_path}/inst/../out/x.zarr")
    _assert_one_line(proc, f"{tmp_path}/out/x.zarr")
    assert "does not exist" in proc.stderr and "journal" not in proc.stderr
    for debug_argv in (["--debug", "convert"], ["convert", "--debug"]):
        debug = run_cli(*debug_argv, str(good), f"{tmp_path}/inst/../out/x.zarr")
        assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_migrate_and_locality_bad_input(tmp_path: Path) -> None:
    proc = run_cli("migrate", f"{tmp_path}/d/../nowhere", f"{tmp_path}/dst")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"{tmp_path}/nowhere" in proc.stderr
    proc = run_cli("migrate", str(tmp_path), str(tmp_path / "dst"), "--workers", "0")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--workers" in proc.stderr


@pytest.mark.parametrize("argv", [["info", "--bogus", "x"], ["convert", "a"], ["verify"], ["nosuchcommand"]])
def test_usage_errors_exit_2_plain_and_json(argv: list[str]) -> None:
    proc = run_cli(*argv)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    js = run_cli(*argv, "--json")
    assert js.returncode == 2
    assert json.loads(js.stderr)["exit_code"] == 2


def test_corpus_garbage_through_info(tmp_path: Path) -> None:
    """A deterministic sample of the hostile-input corpus: one line, no traceback, exit 1 (or 0 if valid)."""
    import subprocess
    import sys

    subprocess.run([sys.executable, str(ROOT / "tools" / "make_bad_inputs.py"), str(tmp_path)], check=True,
                   capture_output=True)
    cases = json.loads((tmp_path / "manifest.json").read_text())
    for case in cases[::12]:
        argv = ["info", str(tmp_path / case["path"])]
        if case["backend"]:
            argv += ["--backend", case["backend"]]
        proc = run_cli(*argv)
        assert "Traceback" not in proc.stderr, (case["name"], proc.stderr)
        if proc.returncode == 0:
            continue
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1, (case["name"], proc.stderr)


def test_json_error_names_the_path_it_is_about(tmp_path: Path, good: Path) -> None:
    missing = run_cli("convert", f"{tmp_path}/d/../nothere.dat", str(tmp_path / "o.zarr"), "--json")
    assert json.loads(missing.stderr)["path"] == f"{tmp_path}/nothere.dat"
    (tmp_path / "o.npy").write_bytes(b"")
    exists = run_cli("convert", str(good), str(tmp_path / "o.npy"), "--json")
    err = json.loads(exists.stderr)
    assert err["path"] == str(tmp_path / "o.npy") and err["type"] == "AlreadyExistsError" and "--overwrite" in err["message"]


def test_exit_codes_are_documented() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    for code in EXIT_CODES:
        assert re.search(rf"^\| {code} \|", text, re.M), f"exit code {code} missing from docs/cli.md"


# -- remedies in the command line's words ------------------------------------------------------

#: Keyword arguments whose CLI spelling is an option: no library message may reach the user with them.
CLI_KEYWORDS = ("overwrite", "backend", "meta", "write_sidecar", "max_memory", "against", "chunks", "shards",
                "compression", "scheduler", "workers", "resume", "durable")


def _raise_messages() -> list[str]:
    """The literal text of every ``raise XError(...)`` message in the package."""
    found = []
    for path in (ROOT / "src" / "arraystore").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
                parts = [n.value for n in ast.walk(node.exc.args[0])
                         if isinstance(n, ast.Constant) and isinstance(n.value, str)]
                found.append("".join(parts))
    return found


@pytest.mark.parametrize("command", ["convert", "info", "verify", "migrate"])
def test_no_python_keyword_remedy_reaches_the_cli(command: str) -> None:
    messages = [m for m in _raise_messages() if re.search(rf"\b({'|'.join(CLI_KEYWORDS)})=", m)]
    assert messages, "the scan must find the library's keyword remedies"
    for m in messages:
        out = cli_message(m, command)
        left = re.findall(rf"\b({'|'.join(CLI_KEYWORDS)})=", out)
        assert not left, f"{command}: {out!r} still says {left}"


def test_overwrite_and_backend_hints_are_options(tmp_path: Path, good: Path) -> None:
    (tmp_path / "y.npy").write_bytes(b"")
    run_cli("convert", str(good), str(tmp_path / "z.npy"))
    proc = run_cli("convert", str(good), str(tmp_path / "z.npy"))
    assert "--overwrite" in proc.stderr and "overwrite=True" not in proc.stderr
    proc = run_cli("convert", str(good), str(tmp_path / "out.unknownsuffix"))
    assert proc.returncode == 1 and "backend=" not in proc.stderr and "--to" in proc.stderr, proc.stderr


def test_create_in_missing_folder_is_typed_and_names_the_folder(tmp_path: Path, good: Path) -> None:
    import arraystore
    from arraystore.errors import ArrayNotFoundError

    for name in ("x.dat", "x.npy", "x.h5", "x.zarr"):
        with pytest.raises(ArrayNotFoundError, match=r"the folder .*nowhere does not exist") as info:
            arraystore.create(tmp_path / "nowhere" / name, (2,), "f4")
        assert ".partial" not in str(info.value)
        proc = run_cli("convert", str(good), f"{tmp_path}/a/../nowhere/{name}")
        _assert_one_line(proc, f"{tmp_path}/nowhere/{name}")
    assert not (tmp_path / "nowhere").exists()


def test_object_store_credential_remedies_name_no_python_keyword() -> None:
    source = (ROOT / "src" / "arraystore" / "objstore" / "__init__.py").read_text()
    messages = ["".join(n.value for n in ast.walk(call.args[0]) if isinstance(n, ast.Constant) and isinstance(n.value, str))
                for call in ast.walk(ast.parse(source))
                if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "ObjectStoreAccessError" and call.args]
    assert len(messages) >= 2, "the scan must find the credential messages"
    for m in messages:
        assert "storage_options=" in m
        out = cli_message(m, "convert")
        assert "storage_options" not in out, out  # the command line reads them from the environment only
    no_credentials = next(cli_message(m, "convert") for m in messages if "found no credentials" in m)
    assert "AWS_SKIP_SIGNATURE=true" in no_credentials
