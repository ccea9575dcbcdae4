"""The seller dashboard: one static page and its script, no build step.

The page holds no data: it signs in with a token the user pastes (or a link carrying it in the URL
*fragment*, which browsers never send to a server, so it stays out of access logs), keeps it in
sessionStorage, and reads `/api/inventory/stream` and `/api/analytics/*` with it like any client.
"""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

router = APIRouter(tags=["dashboard"])

STATIC = Path(__file__).resolve().parent.parent / "static"
# Only our own script and styles, talking only to us; the token never leaves in a Referer either.
HEADERS = {"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                                      "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                                      "form-action 'none'; frame-ancestors 'none'",
           "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


@router.get("/dashboard", include_in_schema=False)
async def dashboard():
    """The seller's live stock and sales page (an admin picks a seller)."""
    return FileResponse(STATIC / "dashboard.html", media_type="text/html", headers=HEADERS)


@router.get("/dashboard/{asset}", include_in_schema=False)
async def dashboard_asset(asset: str):
    """The page's script and stylesheet (nothing else is served from here)."""
    kinds = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
    if asset not in kinds:
        from ingest_api.errors import not_found
        raise not_found("asset")
    return FileResponse(STATIC / asset, media_type=kinds[asset], headers=HEADERS)
