"""Product images: Cloudinary when `CLOUDINARY_URL` is set, else a local store served by the API."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import uuid
from pathlib import Path

import httpx

from ingest_api.errors import ApiError

# Images are recognised by their first bytes, not by what the client claims.
_SIGNATURES = {b"\x89PNG\r\n\x1a\n": ("image/png", "png"), b"\xff\xd8\xff": ("image/jpeg", "jpg"),
               b"GIF87a": ("image/gif", "gif"), b"GIF89a": ("image/gif", "gif")}
_PUBLIC_ID = re.compile(r"^[a-z0-9-]{1,64}\.(png|jpg|gif|webp)$")


def sniff(data: bytes) -> tuple[str, str]:
    """(content type, extension) of an image, or a 415 for anything that is not one."""
    for magic, kind in _SIGNATURES.items():
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ("image/webp", "webp")
    raise ApiError(415, "unsupported_media_type", "only PNG, JPEG, GIF and WebP images are accepted")


class LocalImages:
    """Files under the data directory, served at `/images/{publicId}`."""

    def __init__(self, folder: Path, public_url: str, max_bytes: int):
        self.folder, self.public_url, self.max_bytes = folder, public_url.rstrip("/"), max_bytes
        folder.mkdir(parents=True, exist_ok=True)

    def upload(self, data: bytes) -> dict:
        check_size(data, self.max_bytes)
        _, ext = sniff(data)
        public_id = f"{uuid.uuid4()}.{ext}"
        tmp = self.folder / f".{public_id}.tmp"
        tmp.write_bytes(data)
        tmp.replace(self.folder / public_id)
        return {"publicId": public_id, "url": self.url(public_id)}

    def url(self, public_id: str) -> str:
        return f"{self.public_url}/images/{public_id}"

    def path(self, public_id: str) -> Path | None:
        if not _PUBLIC_ID.match(public_id):
            return None
        path = self.folder / public_id
        return path if path.is_file() else None


class CloudinaryImages:
    """The official SDK; the account comes from `CLOUDINARY_URL`."""

    def __init__(self, max_bytes: int):
        import cloudinary  # reads CLOUDINARY_URL from the environment
        cloudinary.config(secure=True)
        self.max_bytes = max_bytes

    def upload(self, data: bytes) -> dict:
        import cloudinary.uploader
        check_size(data, self.max_bytes)
        sniff(data)
        try:
            answer = cloudinary.uploader.upload(data, folder="buyit", resource_type="image")
        except Exception as err:  # the SDK raises its own Error family
            raise ApiError(502, "image_store_failed", f"Cloudinary refused the upload: {err}") from err
        return {"publicId": answer["public_id"], "url": answer["secure_url"]}

    def url(self, public_id: str) -> str:
        import cloudinary
        return cloudinary.CloudinaryImage(public_id).build_url(secure=True)

    def path(self, public_id: str) -> Path | None:
        return None


def check_size(data: bytes, max_bytes: int) -> None:
    if not data:
        raise ApiError(422, "invalid", "the image is empty")
    if len(data) > max_bytes:
        raise ApiError(413, "payload_too_large", f"images are limited to {max_bytes} bytes")


MAX_REDIRECTS = 3


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast
                or ip.is_unspecified)


async def _vetted_address(host: str, allow_private: bool) -> str:
    """The one address we will connect to for `host`, resolved once, off the event loop, and checked to be
    public (server-side request forgery); connecting to it, not to the name, leaves DNS no second say."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as err:
        raise ApiError(422, "invalid", f"the image URL's host does not resolve: {host}") from err
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise ApiError(422, "invalid", f"the image URL's host does not resolve: {host}")
    if not allow_private and not all(_public(a) for a in addresses):
        raise ApiError(422, "invalid", "image URLs must point to a public host")
    return addresses[0]


async def fetch(url: str, max_bytes: int, allow_private: bool = False) -> bytes:
    """Download an image by URL, refusing non-HTTP URLs, private hosts (at every redirect, with the address
    checked being the one connected to) and anything over the size limit (counted as it streams)."""
    if not re.match(r"^https?://", url):
        raise ApiError(422, "invalid", "url must be an http(s) URL")
    try:
        target = httpx.URL(url)
        async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:
            for _ in range(MAX_REDIRECTS + 1):
                if target.scheme not in ("http", "https"):
                    raise ApiError(422, "invalid", "the image URL redirected away from http(s)")
                address = await _vetted_address(target.host, allow_private)
                # sent to the vetted address; the Host header and the TLS name stay the URL's host
                async with client.stream("GET", target.copy_with(host=address),
                                         headers={"Host": target.netloc.decode()},
                                         extensions={"sni_hostname": target.host}) as response:
                    if response.is_redirect:
                        target = target.join(response.headers.get("location", ""))
                        continue
                    if response.status_code != 200:
                        raise ApiError(422, "invalid", f"the image URL answered {response.status_code}")
                    data = bytearray()
                    async for chunk in response.aiter_bytes():
                        data.extend(chunk)
                        if len(data) > max_bytes:
                            raise ApiError(413, "payload_too_large", f"images are limited to {max_bytes} bytes")
                    return bytes(data)
            raise ApiError(422, "invalid", f"the image URL redirected more than {MAX_REDIRECTS} times")
    except ApiError:
        raise
    except Exception as err:  # httpx raises more than HTTPError for hostile URLs (IDNA, ports, ...)
        raise ApiError(422, "invalid", f"the image URL could not be fetched: {type(err).__name__}") from err


def image_store(settings):
    if settings.cloudinary_url:
        return CloudinaryImages(settings.buyit_max_image_bytes)
    return LocalImages(settings.buyit_data_dir.resolve() / "images", settings.public_url,
                       settings.buyit_max_image_bytes)
