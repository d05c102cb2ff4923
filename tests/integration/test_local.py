"""The local stack is template.yaml's own resources; `local up` serves them to another shell."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import IO, Any

from keysentry import aws

from tests.conftest import ROOT, template


def test_tables_match_the_template(stack: Any) -> None:
    ddb = aws.client("dynamodb")
    resources = template()["Resources"]
    for logical in ("KeysTable", "NonceTable", "IdempotencyTable"):
        props = resources[logical]["Properties"]
        table = ddb.describe_table(TableName=stack.refs[logical])["Table"]
        assert table["KeySchema"] == props["KeySchema"]
        assert {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])} == {
            i["IndexName"] for i in props.get("GlobalSecondaryIndexes", [])
        }
        ttl = ddb.describe_time_to_live(TableName=stack.refs[logical])["TimeToLiveDescription"]
        assert ttl["AttributeName"] == props["TimeToLiveSpecification"]["AttributeName"]
    keys = ddb.describe_table(TableName=stack.refs["KeysTable"])["Table"]
    assert keys["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"


def test_the_functions_environment_points_at_the_local_resources(stack: Any) -> None:
    env = stack.function_environment()
    assert env["KEYS_TABLE"] == stack.refs["KeysTable"]
    assert env["PEPPER_SECRET_ID"].startswith("arn:aws:secretsmanager:")
    secret = aws.client("secretsmanager").get_secret_value(SecretId=env["PEPPER_SECRET_ID"])["SecretString"]
    doc = json.loads(secret)
    assert doc["current"] == "1" and len(doc["1"]) == 64
    assert env["EVENT_BUS_NAME"] == "keysentry-dev"
    assert "AWS_ENDPOINT_URL" not in env, "AWS::NoValue leaves the variable out"


def test_the_sam_env_vars_document_covers_each_functions_own_variables(stack: Any) -> None:
    from keysentry_dev.local import sam_env_vars

    doc = sam_env_vars(stack, "http://172.17.0.1:4566")
    assert doc["Parameters"]["AWS_ENDPOINT_URL"] == "http://172.17.0.1:4566"
    route_scopes = template()["Parameters"]["RouteScopes"]["Default"]
    assert doc["AuthorizerFunction"]["ROUTE_SCOPES"] == route_scopes
    assert doc["AuthorizerFunction"]["KEYS_TABLE"] == stack.refs["KeysTable"]
    assert doc["ApiFunction"]["GITHUB_SCANNING_KEYS_PARAMETER"] == stack.refs["GitHubScanningKeys"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LineReader:
    """A pipe's lines, read by a thread, so that waiting for the next one has a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        self._done: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in iter(stream.readline, ""):
            self._lines.put(line)
        self._lines.put("")  # end of the stream

    def next_line(self, deadline: float) -> str:
        """The next line; "" at the end of the stream; AssertionError once ``deadline`` passes."""
        try:
            return self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError("no line before the deadline") from None

    def rest(self, deadline: float) -> str:
        lines = []
        while line := self.next_line(deadline):
            lines.append(line)
        return "".join(lines)


def _local_up(env_file: Any, port: int) -> subprocess.Popen[str]:
    bin_dir = os.path.dirname(sys.executable)
    return subprocess.Popen(  # noqa: S603
        [os.path.join(bin_dir, "keysentry"), "local", "up", "--port", str(port), "--env-file", str(env_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _read_exports(server: subprocess.Popen[str], deadline: float) -> dict[str, str] | None:
    """What `local up` prints for another shell, as bash reads it when the lines are pasted; None if
    it exited first (its port taken)."""
    lines: list[str] = []
    out = LineReader(server.stdout)  # type: ignore[arg-type]
    while line := out.next_line(deadline):
        if line.startswith("# moto server on"):
            return pasted(lines)
        if line.startswith("export "):
            lines.append(line)
    return None


def pasted(lines: list[str]) -> dict[str, str]:
    """The variables ``export NAME=...`` lines set, read back from a bash that ran them."""
    names = [line[len("export ") :].partition("=")[0] for line in lines]
    script = "\n".join([*lines, *(f'printf "%s\\0" "${name}"' for name in names)])
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)  # noqa: S603, S607
    return dict(zip(names, done.stdout.split("\0")[:-1], strict=True))


def start_local_up(env_file: Any, attempts: int = 5) -> tuple[subprocess.Popen[str], int, dict[str, str]]:
    """`keysentry local up` on a free port. A port is free when picked and may be taken before the
    server binds it: the server then says so and exits, and another port is tried."""
    for _ in range(attempts):
        port = _free_port()
        server = _local_up(env_file, port)
        err = LineReader(server.stderr)  # type: ignore[arg-type]
        deadline = time.monotonic() + 60
        try:
            exports = _read_exports(server, deadline)
        except AssertionError:
            server.kill()
            server.wait(timeout=20)
            raise
        if exports is not None:
            return server, port, exports
        message = err.rest(deadline)
        server.wait(timeout=20)
        assert "cannot listen on" in message, message
    raise AssertionError(f"no free port in {attempts} attempts")


def test_local_up_then_create_from_another_shell(tmp_path: Any, stack: Any) -> None:
    env_file = tmp_path / "env.json"
    bin_dir = os.path.dirname(sys.executable)
    server, port, exports = start_local_up(env_file)
    try:
        shell_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        shell_env.update(exports, XDG_CACHE_HOME=str(tmp_path / "cache"))
        # the stack it names is checked by the doctor as a deployed one is, every check holding
        assert exports["KEYSENTRY_STACK"] == "keysentry"
        doctor = _keysentry(["doctor"], shell_env)
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert doctor.stdout.splitlines()[-1] == "11 of 11 checks hold"
        created = subprocess.run(  # noqa: S603
            [
                os.path.join(bin_dir, "keysentry"),
                "keys",
                "create",
                "--owner",
                "acme",
                "--scope",
                "p:r",
                "--json",
            ],
            env=shell_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        kid = json.loads(created.stdout)["kid"]
        shown = subprocess.run(  # noqa: S603
            [os.path.join(bin_dir, "keysentry"), "keys", "show", kid, "--json"],
            env=shell_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert json.loads(shown.stdout)["scopes"] == ["p:r"]
        sourced = subprocess.run(  # noqa: S603 - the shell a README reader uses
            ["bash", "-c", f"source {env_file.with_suffix('.env')} && echo $KEYS_TABLE $AWS_ENDPOINT_URL"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        )
        assert sourced.stdout.split() == [exports["KEYS_TABLE"], exports["AWS_ENDPOINT_URL"]]
        # the printed lines, pasted into bash, set the values themselves: the plans' JSON whole
        assert json.loads(exports["PLANS"]) == json.loads(template()["Parameters"]["Plans"]["Default"])
        sam_env = json.loads(env_file.read_text())["Parameters"]
        assert sam_env["KEYS_TABLE"] == exports["KEYS_TABLE"]
        assert sam_env["AWS_ENDPOINT_URL"] == f"http://172.17.0.1:{port}"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)


def test_an_unreachable_endpoint_is_a_clear_error(tmp_path: Any, stack: Any) -> None:
    bin_dir = os.path.dirname(sys.executable)
    closed = socket.socket()  # bound and never listening: the port refuses connections, and stays ours
    closed.bind(("127.0.0.1", 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{closed.getsockname()[1]}",
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="x",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_MAX_ATTEMPTS="1",
    )
    with closed:
        done = subprocess.run(  # noqa: S603
            [os.path.join(bin_dir, "keysentry"), "keys", "show", "AAAAAAAAAAAA"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 5
    assert "cannot reach the AWS endpoint" in done.stderr
    assert "Traceback" not in done.stderr


def _keysentry(args: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    bin_dir = os.path.dirname(sys.executable)
    return subprocess.run(  # noqa: S603
        [os.path.join(bin_dir, "keysentry"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kwargs,
    )


def test_local_up_on_a_port_in_use_says_so_and_exits(tmp_path: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _keysentry(
            [
                "local",
                "up",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--env-file",
                str(tmp_path / "x.json"),
            ],
            dict(os.environ),
        )
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x.json").exists()


def test_configuration_mistakes_are_one_line_errors_never_a_traceback(tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1")
    bad_endpoint = _keysentry(["keys", "show", "AAAAAAAAAAAA"], {**env, "AWS_ENDPOINT_URL": "notaurl"})
    assert bad_endpoint.returncode == 5 and "Invalid endpoint" in bad_endpoint.stderr
    missing = _keysentry(["local", "up", "--template", str(tmp_path / "nope.yaml")], env)
    assert missing.returncode == 2 and "No such file" in missing.stderr
    for done in (bad_endpoint, missing):
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_reader_that_goes_away_ends_the_output_quietly(stack: Any, monkeypatch: Any, capfd: Any) -> None:
    from keysentry import cli

    assert cli.main(["keys", "create", "--owner", "acme", "--scope", "prices:read"]) == 0
    read, write = os.pipe()
    os.close(read)  # like `| head` having read what it wanted
    with open(write, "w") as pipe:
        monkeypatch.setattr(sys, "stdout", pipe)
        code = cli.main(["keys", "list", "--owner", "acme"])
        monkeypatch.undo()
    assert code == 141
    assert "Traceback" not in capfd.readouterr().err
