"""``pip install 'keysentry[client]'`` is enough for the consumer's client: it signs, opens a sealed
successor and reads rotation notices with neither boto3, botocore, Powertools nor pydantic."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib

import pytest
from keysentry.client import Notice, parse_notice, rotation_headers

from tests.conftest import ROOT

SERVER_ONLY = {"boto3", "botocore", "aws_lambda_powertools", "pydantic"}

# Run in a fresh interpreter where the server side's packages cannot be imported, as on a
# consumer's machine that installed only the client: the client must work, not just import.
WITHOUT_SERVER = """
import importlib.abc, json, sys
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in SERVER_ONLY:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, NotInstalled())
""".replace("SERVER_ONLY", repr(sorted(SERVER_ONLY)))

USE_THE_CLIENT = """
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
import keysentry.client.httpx, keysentry.client.requests
from keysentry.client import open_successor, parse_notice, query_string, sign
from keysentry.envelope import seal

key = "ks_test_EXAMPLEKEY00000000000000000000000000000000001gKwCs"
hmac_headers = sign("GET", "/v1/prices/BTC", {"a": "1"}, key=key, secret="s" * 43)
ed_headers = sign("GET", "/v1/prices/BTC", key=key, private_key=ed25519.Ed25519PrivateKey.generate())
consumer = x25519.X25519PrivateKey.generate()
public = consumer.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
opened = open_successor(seal(public, {"kid": "K", "key": "k"}, aad="K"), private_key=consumer)
notice = parse_notice("key=EXAMPLEKEY00; successor=EXAMPLEKEY01; in=60")
print(json.dumps({
    "algorithms": [hmac_headers["X-Ks-Algorithm"], ed_headers["X-Ks-Algorithm"]],
    "opened": opened, "notice": notice.successor, "query": query_string({"b": "x y", "a": "1"}),
    "modules": sorted({m.split(".")[0] for m in sys.modules}),
}))
"""


def run(code: str) -> dict[str, object]:
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_client_works_where_no_server_package_is_installed() -> None:
    result = run(WITHOUT_SERVER + USE_THE_CLIENT)

    assert result["algorithms"] == ["KS2-HMAC-SHA256", "KS2-ED25519"]
    assert result["opened"] == {"kid": "K", "key": "k"}
    assert (result["notice"], result["query"]) == ("EXAMPLEKEY01", "a=1&b=x%20y")


def test_the_server_packages_are_really_hidden_from_the_client_run() -> None:
    """The check above would pass vacuously if its import block did not bite."""
    code = WITHOUT_SERVER + "import keysentry.aws\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)  # noqa: S603
    assert done.returncode != 0 and "No module named 'botocore" in done.stderr


def test_the_command_says_what_to_install_where_only_the_client_is() -> None:
    code = WITHOUT_SERVER + "import sys\nfrom keysentry.cli import main\nsys.exit(main(['keys', 'list']))\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)  # noqa: S603
    assert done.returncode == 2, done.stderr
    assert "pip install 'keysentry[server]'" in done.stderr and "Traceback" not in done.stderr


def test_importing_the_client_brings_no_aws_sdk_powertools_or_http_library() -> None:
    code = (
        "import json, sys, keysentry, keysentry.client; print(json.dumps({'modules': sorted(sys.modules)}))"
    )
    loaded = {m.split(".")[0] for m in run(code)["modules"]}  # type: ignore[union-attr]
    assert not loaded & (SERVER_ONLY | {"requests", "httpx", "cryptography"})


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_client_extra_pulls_nothing_of_the_server_side_and_the_server_extra_all_the_layer_ships() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    client = requirement_names(project["dependencies"] + extras["client"])
    server = requirement_names(extras["server"])
    layer = (ROOT / "layers" / "keysentry" / "requirements.txt").read_text().splitlines()

    assert client == {"cryptography"}
    assert not client & {"boto3", "botocore", "aws-lambda-powertools", "pydantic", "requests", "httpx"}
    assert requirement_names([r for r in layer if r and not r.startswith("#")]) <= server | client
    assert "botocore" in server
    assert "keysentry[server]" in extras["local"]


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "successor=EXAMPLEKEY01; in=60",  # no key: whose notice is it?
        "key=EXAMPLEKEY00; successor=EXAMPLEKEY01; in=-1",
        "key=EXAMPLEKEY00; successor=EXAMPLEKEY00; in=60",
        "key=EXAMPLEKEY00; successor=ks_test_x; in=60",
        "key=EXAMPLEKEY00; key=EXAMPLEKEY02; successor=EXAMPLEKEY01; in=60",
        "key=EXAMPLEKEY00, successor=EXAMPLEKEY01, in=60",
    ],
)
def test_a_malformed_rotation_notice_is_ignored(value: str | None) -> None:
    assert parse_notice(value) is None


def test_the_backend_notice_is_what_the_client_reads_and_only_for_a_rotating_key() -> None:
    rest = {
        "key_id": "EXAMPLEKEY00",
        "status": "rotating",
        "successor": "EXAMPLEKEY01",
        "rotate_in_seconds": "60",
    }
    http = {**rest, "rotate_in_seconds": 60}

    for context in (rest, http):
        (value,) = rotation_headers(context).values()
        assert parse_notice(value) == Notice("EXAMPLEKEY00", "EXAMPLEKEY01", 60)
    assert rotation_headers({**rest, "status": "active", "successor": ""}) == {}
