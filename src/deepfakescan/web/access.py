"""Who may ask what: the Host check, API keys and the page's session, CSRF, CORS, headers.

One ``before_request`` hook, in this order: a ``Host`` this server does not answer to is 400
(DNS rebinding: another site's page resolving its own name to 127.0.0.1), a declared
``Content-Length`` over the limit is 413 before the body is read, then the caller is
identified. Without keys (the local default) everyone is ``OPEN`` and sees every scan, as
before keys existed. With keys (one was ever made, or ``DEEPFAKESCAN_REQUIRE_KEYS``), every
route but the page shell, static files and health needs ``Authorization: Bearer KEY`` or the
page's session cookie, and a key sees only its own scans (an admin key sees all).

The page signs in with a key (``ui.signin``) into Flask's signed session cookie (HttpOnly,
SameSite=Strict), which holds the key's id only: the key is looked up on every request, so
revoking it ends its sessions at once, on every web node. A state-changing request not made
with a Bearer key (a cookie, or nothing on an open server) must come from this site: browsers
say where a request comes from (``Sec-Fetch-Site``, ``Origin``), and another site's page is
refused with 403. CORS is off unless origins are configured; they get Bearer access, never
cookies.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask, current_app, g, request, session

from ..config import Settings
from ..errors import TooLarge
from ..jobs import KeyRing
from .errors import BadHost, Forbidden, Unauthorized

ANONYMOUS_ENDPOINTS = frozenset({"static", "api.health"})
"""Static files and health (what a load balancer probes; it names no scan): nobody is
identified, so neither needs the database (health must answer while it is down)."""
PUBLIC_ENDPOINTS = ANONYMOUS_ENDPOINTS | {"ui.index", "ui.scan_page", "ui.signin", "ui.signout"}
"""Those, and the page shell: it shows the sign-in form until signed in."""
HOST_EXEMPT = frozenset({"api.health"})
"""Load balancers probe by address, not by name; health says nothing about any scan."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_KEY = "key_id"
SESSION_LIFETIME = timedelta(hours=12)
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
CORS_MAX_AGE_S = 600


@dataclass(frozen=True)
class Principal:
    """Who is asking: an API key (by id), or anyone when keys are off (``key_id`` None)."""

    key_id: str | None
    admin: bool = False
    via: str = "open"
    """``open`` (keys off), ``bearer`` (Authorization header) or ``session`` (the page)."""

    @property
    def scope(self) -> str | None:
        """The owner whose scans this caller lists; None for all of them."""
        return None if self.key_id is None or self.admin else self.key_id

    def can_see(self, owner: str | None) -> bool:
        return self.scope is None or owner == self.scope


OPEN = Principal(None)


def init_app(app: Flask, settings: Settings, keys: KeyRing) -> None:
    """Session cookie settings, the guard before every request, headers after each."""
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_NAME="deepfakescan_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    app.extensions["deepfakescan.keys"] = keys
    app.before_request(guard)
    app.after_request(add_headers)

    @app.context_processor
    def signed_in():
        who = g.get("principal")
        return {"signed_in": who is not None and who.via == "session"}


def keys_required() -> bool:
    settings: Settings = current_app.config["SETTINGS"]
    return settings.require_keys or keyring().enabled()


def keyring() -> KeyRing:
    return current_app.extensions["deepfakescan.keys"]


def principal() -> Principal | None:
    """This request's caller; None on a public page nobody signed in to."""
    return g.get("principal")


def caller() -> Principal:
    """This request's caller, for views that show scans: nobody signed in is refused."""
    found = principal()
    if found is None:
        raise Unauthorized("sign in with an API key first")
    return found


def guard() -> None:
    """The checks every request passes before its view (see the module's docstring)."""
    check_host()
    check_length()
    if request.method == "OPTIONS" or request.endpoint in ANONYMOUS_ENDPOINTS:
        return  # a CORS preflight carries no credentials; Flask answers it
    who = identify()
    g.principal = who
    if who is None and request.endpoint not in PUBLIC_ENDPOINTS:
        raise Unauthorized(
            "an API key is needed: send 'Authorization: Bearer KEY' (deepfakescan keys create)"
        )
    if request.method not in SAFE_METHODS and (who is None or who.via != "bearer"):
        check_origin()


def identify() -> Principal | None:
    """OPEN without keys; else the Bearer key, or the key of the page's session, or None."""
    if not keys_required():
        return OPEN
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer KEY'")
        key = keyring().verify(token.strip())
        if key is None:
            raise Unauthorized("this API key is unknown or has been revoked")
        return Principal(key.id, key.admin, "bearer")
    key_id = session.get(SESSION_KEY)
    if key_id is None:
        return None
    key = keyring().get(str(key_id))
    if key is None:  # revoked since the page signed in
        session.clear()
        return None
    return Principal(key.id, key.admin, "session")


def host_name(host: str) -> str:
    """``Host`` without its port, lower case: ``[::1]:8000`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host.rstrip(".")


def check_host() -> None:
    names = current_app.config["SETTINGS"].host_names
    if "*" in names or request.endpoint in HOST_EXEMPT:
        return
    if host_name(request.host).rstrip(".") not in names:
        raise BadHost("this server does not answer to that host name (DEEPFAKESCAN_ALLOWED_HOSTS)")


def check_length() -> None:
    """A declared body over the limit is refused before a byte of it is read."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        max_bytes = current_app.config["SETTINGS"].max_bytes
        raise TooLarge(
            f"the upload is over the limit of {max_bytes} bytes (DEEPFAKESCAN_MAX_BYTES)"
        )


def check_origin() -> None:
    """Refuse a state-changing request that another site's page made the browser send.

    Browsers send ``Sec-Fetch-Site`` (and ``Origin`` on every POST); this site's own page
    sends ``Origin: null`` because of ``Referrer-Policy: no-referrer``, so ``Sec-Fetch-Site``
    decides when present. A request with neither comes from a program, not a page.
    """
    allowed = current_app.config["SETTINGS"].cors_origin_list
    site, origin = request.headers.get("Sec-Fetch-Site"), request.headers.get("Origin")
    if site is not None:
        ok = site in ("same-origin", "none") or origin in allowed
    elif origin is not None:
        ok = origin in allowed or (
            origin != "null" and urlsplit(origin).netloc.lower() == request.host.lower()
        )
    else:
        ok = True
    if not ok:
        raise Forbidden("cross-site request refused: this server only takes forms from its page")


def add_headers(response):
    """Security headers on every answer, CORS for configured origins, no caching of data."""
    headers = response.headers
    # everything the page needs comes from this server: no CDN, no inline script
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    if request.endpoint != "static":  # scans, reports and evidence are nobody's cache's business
        headers["Cache-Control"] = "no-store"
    if response.status_code not in (429, 503):
        headers.pop("Retry-After", None)  # the rate limiter adds one to every limited answer
    allowed = current_app.config["SETTINGS"].cors_origin_list
    if allowed:
        response.vary.add("Origin")
        origin = request.headers.get("Origin")
        if origin in allowed:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Expose-Headers"] = "Location, Retry-After"
            if request.method == "OPTIONS":
                headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE"
                headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
                headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE_S)
    return response


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (``localhost`` counts)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve to anything


CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline';"
    " script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none';"
    " form-action 'self'"
)
