"""``keysentry local up``: a moto server holding template.yaml's resources, until interrupted."""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import socket
import threading
from contextlib import ExitStack, suppress
from pathlib import Path

from keysentry import aws
from keysentry.errors import ConfigurationError

from keysentry_dev import require_local_extra
from keysentry_dev.gateway import LocalGateway, serve
from keysentry_dev.local import provision, sam_env_vars
from keysentry_dev.template import REGION, STACK, Stack, default_template_path, load_template


def run_local(
    *,
    host: str,
    port: int,
    env_file: Path,
    container_host: str,
    template: Path | None = None,
    out_json: bool = False,
    block: bool = True,
    gateway: str | None = None,
    gateway_port: int = 3000,
) -> int:
    require_local_extra("keysentry local up")
    from moto.server import ThreadedMotoServer

    template_path = template or default_template_path()
    loaded = load_template(template_path)  # a missing or broken template fails before anything starts
    _check_free(host, port)
    if gateway:
        _check_free(host, gateway_port)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request on the terminal
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    endpoint = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"  # noqa: S104
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
            "AWS_DEFAULT_REGION": REGION,
        }
    )
    aws.reset()
    try:
        stack = provision(loaded)
    except Exception:
        server.stop()
        raise
    with ExitStack() as running:
        running.callback(server.stop)
        url = None
        if gateway:
            local = LocalGateway(stack, template_path.resolve().parent, gateway)
            url = running.enter_context(serve(local, host, gateway_port))
        _announce(stack, endpoint, env_file, container_host, port, out_json, url)
        if block:
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            with suppress(KeyboardInterrupt):
                stop.wait()
    return 0


def _announce(
    stack: Stack,
    endpoint: str,
    env_file: Path,
    container_host: str,
    port: int,
    out_json: bool,
    gateway_url: str | None = None,
) -> None:
    """Write the SAM env-vars file and the shell exports; print how to reach the stack."""
    env = stack.function_environment()
    env.update({"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": REGION, "KEYSENTRY_STACK": STACK})
    env.setdefault("AWS_ACCESS_KEY_ID", "testing")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    env_file.write_text(json.dumps(sam_env_vars(stack, f"http://{container_host}:{port}"), indent=2) + "\n")
    shell_file = env_file.with_suffix(".env")  # for another shell: source .keysentry-local.env
    shell_file.write_text(
        "".join(f"export {name}={shlex.quote(value)}\n" for name, value in sorted(env.items()))
    )
    if out_json:
        doc = {
            "endpoint": endpoint,
            "env": env,
            "env_file": str(env_file),
            "gateway": gateway_url,
            "stack": STACK,
        }
        print(json.dumps(doc, indent=2), flush=True)
    else:
        for name, value in sorted(env.items()):
            print(f"export {name}={shlex.quote(value)}", flush=True)  # pasted into a shell as it is
        print(f"# the local stack is {STACK}: keysentry --stack {STACK} doctor checks it", flush=True)
        if gateway_url:
            print(f"# the sample API and /self behind the authorizer: {gateway_url}", flush=True)
        print(
            f"# moto server on {endpoint}; sam local env vars in {env_file}; "
            f"for another shell: source {env_file.with_suffix('.env')}. Ctrl-C to stop.",
            flush=True,
        )


def _check_free(host: str, port: int) -> None:
    """The server binds in a thread of its own, where a port in use would only be printed: refuse here."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigurationError(
                f"cannot listen on {host}:{port} ({error.strerror}): choose another port with --port"
            ) from None
