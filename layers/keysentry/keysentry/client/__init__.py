"""What a consumer installs (``pip install 'keysentry[client]'``): sign requests, follow rotations.

With ``requests`` or ``httpx``, an auth class does everything for each request (see
:mod:`keysentry.client.requests` and :mod:`keysentry.client.httpx`, and the README's "For
consumers")::

    from keysentry.client.requests import KeysentryAuth

    auth = KeysentryAuth(API_KEY, signing=SIGNING_SECRET, base_path="/prod",
                         self_service=MANAGEMENT_API_URL, on_successor=store_successor)
    requests.post(f"{API_URL}/v1/orders", json=order, auth=auth)

With any other HTTP client, ``sign`` gives the headers and ``query_string`` the query to send::

    params = [("account", "main"), ("tag", "b")]
    headers = sign("POST", "/v1/orders", params, payload, key=API_KEY, secret=SIGNING_SECRET,
                   content_type="application/json")
    client.post(f"{base}/v1/orders?{query_string(params)}", data=payload, headers=headers)

For Ed25519 or RSA keys pass ``private_key`` (a ``cryptography`` private key object or PEM bytes).

A key with an X25519 delivery key gets its scheduled successor sealed (on the ``rotated`` alert's
``sealed_successor``, and from ``POST /self/successor``)::

    successor = open_successor(response["sealed_successor"], private_key=X25519_PRIVATE_PEM)
    successor["kid"], successor["key"]                          # and "signing_secret" for hmac keys

Importing this package imports neither boto3, botocore, Powertools nor pydantic, nor an HTTP
library: only the binding a consumer imports brings its library.
"""

from __future__ import annotations

from keysentry.client.holder import KeyHolder, Successor
from keysentry.client.notice import ROTATE_HEADER, Notice, parse_notice, rotation_headers
from keysentry.client.prepare import UnsignableRequestError
from keysentry.client.signer import new_nonce, open_successor, query_string, sign

__all__ = [
    "ROTATE_HEADER",
    "KeyHolder",
    "Notice",
    "Successor",
    "UnsignableRequestError",
    "new_nonce",
    "open_successor",
    "parse_notice",
    "query_string",
    "rotation_headers",
    "sign",
]
