"""The README's "Try it locally" and "Run it on AWS" steps run in bash exactly as written (curl and
jq included), each marked ``<!-- test: NAME -->`` in the README. What a reader fills in is named by
the README itself: a ``NAME=value  # ...`` line at the top of a block, which the test sets to what it
stands for here (the URL of the API it started), the rest of the block untouched. The stack name
stays as written: the stand-in stack is made under that name."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.integration.test_local import LineReader, _free_port

BIN = Path(sys.executable).parent
# every setting the CLI could find a stack or its resources by: the blocks run without them
STACK_SETTINGS = re.compile(
    r"AWS_|KEYS_TABLE|USAGE_TABLE|PEPPER_SECRET_ID|KMS_KEY_ID|NONCE_TABLE|IDEMPOTENCY_TABLE|PLANS|"
    r"DEFAULT_PLAN|STAGE|KEYSENTRY_|XDG_CACHE_HOME"
)


def readme_block(name: str) -> str:
    """The fenced bash block after ``<!-- test: NAME -->``."""
    text = (ROOT / "README.md").read_text()
    found = re.search(rf"<!-- test: {re.escape(name)} -->\n```bash\n(.*?)```", text, re.S)
    assert found, f"the README has no block marked test: {name}"
    return found.group(1)


def fill(block: str, **values: str) -> str:
    """The block with each ``NAME=...`` line the reader fills set to ``values[NAME]``: each must be
    there, as one line of its own."""
    for name, value in values.items():
        filled = f"{name}={shlex.quote(value)}"
        block, count = re.subn(rf"^{name}=\S+", lambda _, filled=filled: filled, block, flags=re.M)
        assert count == 1, f"the README's block sets {name} on {count} lines"
    return block


def shell_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A reader's shell: the virtualenv's keysentry on the path, no AWS or stack setting inherited."""
    env = {k: v for k, v in os.environ.items() if not STACK_SETTINGS.match(k)}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env.update(extra)
    return env


def run_block(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The block in bash, stopping at the first command that fails (as a reader would)."""
    return subprocess.run(  # noqa: S603
        ["bash", "-euo", "pipefail", "-c", script],  # noqa: S607
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_tools_the_steps_use_are_here() -> None:
    for tool in ("bash", "curl", "jq"):
        assert shutil.which(tool), f"{tool} is needed by the README's steps (.ci/run installs it)"


@pytest.fixture
def local_up(tmp_path: Path) -> Iterator[str]:
    """The README's `keysentry local up --gateway`, as written, in the reader's directory; on free
    ports (the only change: the defaults may be taken on a shared machine). Yields the URL it prints."""
    (command,) = [
        line.split("#")[0].strip()
        for line in readme_block("local-up").splitlines()
        if line.split("#")[0].strip()  # a comment line runs nothing
    ]
    assert command.startswith("keysentry local up")
    for _ in range(5):
        ports = ["--port", str(_free_port()), "--gateway-port", str(_free_port())]
        server = subprocess.Popen(  # noqa: S603
            [str(BIN / "keysentry"), *shlex.split(command)[1:], *ports],
            env=shell_env(tmp_path),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = LineReader(server.stdout), LineReader(server.stderr)  # type: ignore[arg-type]
        deadline = time.monotonic() + 60
        url = None
        try:
            while line := out.next_line(deadline):
                if line.startswith("# the sample API and /self behind the authorizer: "):
                    url = line.rsplit(" ", 1)[1].strip()
                if line.startswith("# moto server on"):
                    break
            if url:
                yield url
                return
            message = err.rest(deadline)
            assert "cannot listen on" in message, message
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
            server.wait(timeout=20)
    raise AssertionError("no free ports in 5 attempts")


def test_the_local_gateway_steps_run_as_written(local_up: str, tmp_path: Path) -> None:
    script = fill(readme_block("local-gateway"), API=local_up)
    done = run_block(script, shell_env(tmp_path), tmp_path)
    assert done.returncode == 0, done.stderr
    first_key_was_served(done.stdout)
    # the refusals the comments promise, in order: no key, then a key outside its scopes
    assert re.findall(r"^(\d{3})$", done.stdout, re.M) == ["401", "403"], done.stdout


def first_key_was_served(out: str) -> None:
    """The backend's answer names the new key, and its usage report counts that one call."""
    served = re.search(r'"key_id": ?"(\w+)", ?"owner_id": ?"acme"', out)
    assert served, out
    assert re.search(rf"^key {served.group(1)}, ", out, re.M), out
    assert re.search(r"^requests:\s+1$", out, re.M), out


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A stand-in for `sam deploy`'s stack: its resources in a moto server under CloudFormation-style
    names (no default matches them), found by the stack's name alone, and its sample API."""
    stack = re.search(r"^STACK=(\S+)", readme_block("aws-first-key"), re.M)
    assert stack, "the README's block names its stack in a STACK= line"
    helper = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "tests.integration.stack_helpers", stack.group(1)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out = LineReader(helper.stdout)  # type: ignore[arg-type]
        deadline = time.monotonic() + 60
        said = dict(out.next_line(deadline).split() for _ in range(2))
        assert set(said) == {"endpoint", "api"}, said
        yield said
    finally:
        helper.stdin.close()  # type: ignore[union-attr]
        helper.wait(timeout=20)


def test_the_first_key_on_aws_runs_as_written(deployed: dict[str, Any], tmp_path: Path) -> None:
    script = fill(readme_block("aws-first-key"), API=deployed["api"])
    env = shell_env(
        tmp_path,
        AWS_ENDPOINT_URL=deployed["endpoint"],  # where "AWS" is: the credentials a reader has
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    done = run_block(script, env, tmp_path)
    assert done.returncode == 0, done.stderr
    first_key_was_served(done.stdout)
