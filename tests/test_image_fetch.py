"""Image upload by URL against server-side request forgery: every hop is checked, the address checked is
the one connected to (no DNS rebinding), and the size limit holds as the image streams."""

from __future__ import annotations

import asyncio
import http.server
import socket
import threading

import pytest

from ingest_api import images
from ingest_api.errors import ApiError

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


class _Handler(http.server.BaseHTTPRequestHandler):
    seen_hosts: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        _Handler.seen_hosts.append(self.headers.get("Host", ""))
        if self.path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/redirect/"))
            self.end_headers()
            return
        body = PNG if self.path == "/a.png" else PNG + b"\0" * 10_000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    """A server on 127.0.0.1 that this test treats as a public host (nothing else on loopback is)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    real_public = images._public
    monkeypatch.setattr(images, "_public", lambda a: a == "127.0.0.1" or real_public(a))
    _Handler.seen_hosts = []
    yield httpd.server_address[1]
    httpd.shutdown()


def fetch(url: str, max_bytes: int = 1000) -> bytes:
    return asyncio.run(images.fetch(url, max_bytes))


def test_a_public_image_is_fetched(server):
    assert fetch(f"http://127.0.0.1:{server}/a.png") == PNG


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/x.png",
                                    "http://[::1]/x.png", "file:///etc/passwd"])
def test_a_redirect_to_a_private_host_is_refused(server, target):
    with pytest.raises(ApiError) as refused:
        fetch(f"http://127.0.0.1:{server}/redirect/{target}")
    assert refused.value.status == 422


def test_redirects_are_followed_a_few_times_only(server):
    assert fetch(f"http://127.0.0.1:{server}/redirect//a.png") == PNG
    hops = "/redirect" * 5 + "/a.png"
    with pytest.raises(ApiError, match="redirected more than"):
        fetch(f"http://127.0.0.1:{server}{hops}")


def test_the_name_is_resolved_once_and_the_vetted_address_is_the_one_connected_to(server, monkeypatch):
    """DNS rebinding: the first answer is public, later ones private. Only the first is ever asked for."""
    answers = iter(["127.0.0.1", "10.0.0.1", "10.0.0.1"])
    asked = []

    async def rebinding(self, host, port, **kw):
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), 0))]
    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", rebinding)
    assert fetch(f"http://images.example.test:{server}/a.png") == PNG
    assert asked == ["images.example.test"]
    assert _Handler.seen_hosts == [f"images.example.test:{server}"]  # the Host header names the URL's host


def test_the_size_limit_holds_while_streaming(server):
    with pytest.raises(ApiError) as refused:
        fetch(f"http://127.0.0.1:{server}/big.png", max_bytes=1000)
    assert refused.value.status == 413
