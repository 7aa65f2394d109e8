"""``terc-tag review``: a local web page to check and correct the tags of a tagged OUTPUT.

The page is a thin view over the library: the photo list is
:func:`tagger.review.order.review_order`, a change is
:func:`tagger.review.correct.correct` (the same lossless writer and edit lock as
the command line), heat maps are :class:`tagger.explain.Explainer`, and
similar photos are :class:`tagger.similar.index.SimilarIndex`.

Thumbnails need Pillow only (:mod:`tagger.thumbnails`, cached in the state
folder); the model is loaded on the first heat map, never before.

Security: the server listens on 127.0.0.1 unless told otherwise, every
request must carry the per-run token (``?token=`` once, then a
``SameSite=Strict`` cookie named after this server, so that two servers do
not overwrite each other's; changes also need it in a header, which another
site's form cannot send), and it serves only photos the state lists as
tagged, after resolving them inside OUTPUT, so no ``..``, absolute path or
symbolic link reaches another file.  It answers only to loopback names and
the address it serves (DNS rebinding needs a name of the attacker's), never
inside another page's frame, and refuses a body over :data:`MAX_BODY` before
reading it.  Werkzeug (Flask) parses HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import ipaddress
import json
import secrets
import socket
import threading
from dataclasses import asdict
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask, Response, abort, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import WSGIRequestHandler

from tagger.metadata import MetadataError
from tagger.names import shown, unshown
from tagger.review.correct import CorrectionError, correct, photo_key
from tagger.review.order import pressing_tags, review_order
from tagger.state import Record, State
from tagger.tagging.predictions import uncertain_tags
from tagger.thumbnails import ThumbnailCache, display_image, jpeg

if TYPE_CHECKING:
    from PIL import Image

    from tagger.bundle import Bundle
    from tagger.explain import Explainer  # imported when the first heat map is asked for

TOKEN_HEADER = "X-Terc-Token"
THUMBNAIL, LARGE = 320, 1024
MAX_BODY = 4 * 1024 * 1024  # a change names at most the page's 1,000 photos; far more is not the page


class Review:
    """What the page shows of one OUTPUT, read fresh from its state on each request."""

    def __init__(self, output: Path, bundle: Bundle, threshold: float | str | None = None,
                 margin: float = 0.1) -> None:
        self.output, self.bundle, self.margin = Path(output).resolve(), bundle, margin
        self.thresholds = dict(zip(bundle.vocabulary, map(float, bundle.thresholds(threshold)), strict=False))
        self.thumbnails = ThumbnailCache(self.output, THUMBNAIL)
        self._explainer: Explainer | None = None
        self._model_lock = threading.Lock()

    def records(self) -> list[Record]:
        with State.reading(self.output) as state:
            return [r for r in state.records() if r.status == "tagged" and r.probabilities] if state else []

    def photos(self, limit: int = 500, search: str = "") -> dict:
        """The ``limit`` photos most in need of a look and the ``limit`` reviewed last, with progress.

        The limit keeps the page light on a large archive; reloading it shows
        the next ones.  ``search`` keeps the photos whose path contains it
        (any case), over the whole archive, before the limit.
        """
        records = self.records()
        pending = review_order(records, self.thresholds, self.bundle.codes_id)
        done = sorted((r for r in records if r.reviewed), key=lambda r: r.reviewed or "", reverse=True)
        counts = {"reviewed": len(done), "left": len(pending)}
        if search:
            pending, done = ([r for r in group if search.casefold() in r.path.casefold()] for group in (pending, done))
        pressing = pressing_tags(records, self.thresholds)
        return {"vocabulary": list(self.bundle.vocabulary), "thresholds": self.thresholds, **counts,
                "matching": len(pending) + len(done),
                "photos": [self._photo(r, pressing.get(r.path)) for r in pending[:limit] + done[:limit]]}

    def _photo(self, record: Record, pressing: str | None) -> dict:
        probabilities = record.probabilities or {}  # records() holds the photos with probabilities
        near = uncertain_tags(probabilities, self.thresholds, self.margin)
        return {"path": record.path, "name": shown(record.path), "tags": record.tags, "reviewed": record.reviewed,
                "probabilities": {t: round(p, 4) for t, p in probabilities.items()},
                "uncertain": [t for t, _ in near], "pressing": pressing}

    def file(self, path: str) -> Path:
        """The copy of a tagged photo of OUTPUT; 404 for anything else (``..``, absolute, links out, unknown)."""
        try:
            key = photo_key(path)
        except CorrectionError:
            abort(404, "no such photo")
        with State.reading(self.output) as state:
            record = state.get(key) if state is not None else None
        if record is None or record.status != "tagged":
            abort(404, "no such photo")
        copy = (self.output / key).resolve()
        if self.output not in copy.parents or not copy.is_file():
            abort(404, "no such photo")
        return copy

    def change(self, body: dict) -> dict:
        """``{"paths", "add", "remove"}``, and ``"reviewed": false`` to hand the photos back to the model."""
        paths, add, remove = body.get("paths"), body.get("add", []), body.get("remove", [])
        reviewed = body.get("reviewed", True)
        if not (isinstance(paths, list) and paths and all(isinstance(p, str) for p in paths)
                and isinstance(add, list) and isinstance(remove, list) and isinstance(reviewed, bool)
                and all(isinstance(t, str) for t in add + remove)):
            abort(400, "expected {\"paths\": [...], \"add\": [...], \"remove\": [...], \"reviewed\": true|false}")
        for path in paths:
            self.file(path)
        try:
            done = correct(self.output, paths, self.bundle.vocabulary, add=add, remove=remove, reviewed=reviewed)
        except CorrectionError as exc:
            abort(400, str(exc))
        except (MetadataError, OSError) as exc:
            abort(500, f"cannot rewrite the copy: {exc}")
        return {"corrected": [c.as_dict() for c in done]}

    def heat_map(self, path: str, tag: str) -> bytes:
        """A PNG of the photo with the evidence for ``tag`` laid over it."""
        from tagger.decode import DecodeError, decode
        from tagger.explain import Explainer, overlay
        from tagger.sessions import load_session

        if tag not in self.bundle.vocabulary:
            abort(400, f"{tag}: not in the model's vocabulary")
        data = self.file(path).read_bytes()
        with self._model_lock:  # one model, loaded on the first heat map; TensorFlow calls one at a time
            if self._explainer is None:
                self._explainer = Explainer(load_session(self.bundle))
            try:
                pixels, camera = decode(data, self._explainer.session.size)
            except DecodeError as exc:
                abort(422, str(exc))
            explanation = self._explainer(pixels, camera, [tag])
        return _png(overlay(display_image(data, LARGE), explanation.maps[tag]))

    def similar(self, path: str, k: int = 8) -> dict:
        from tagger.similar.index import SimilarIndex, SimilarIndexError

        self.file(path)
        try:
            index = SimilarIndex(self.output, self.bundle)
        except SimilarIndexError as exc:
            return {"error": str(exc), "results": []}
        position = index.find(path)
        if position is None:
            return {"error": "this photo has no similarity code", "results": []}
        return {"results": [{**asdict(m), "name": shown(m.path)}
                            for m in index.nearest(index.codes.words[position], k, exclude=position)]}


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@lru_cache(maxsize=32)
def _large(path: Path, mtime_ns: int) -> bytes:
    return jpeg(path, LARGE)


def cookie_name(token: str) -> str:
    """The token's cookie, named after this server: cookies ignore the port, and two servers must not clash."""
    return "terc_tag_" + hashlib.sha256(token.encode()).hexdigest()[:12]


def host_allowed(host: str, served: str) -> bool:
    """Whether a request's ``Host`` names this server: a loopback name or address, or the address it serves.

    DNS rebinding reaches the server under a name of the attacker's; an
    address typed by hand (a server on 0.0.0.0 reached from another machine)
    is not a name anyone can rebind.
    """
    name = host[1:host.find("]")] if host.startswith("[") else host.rpartition(":")[0] if ":" in host else host
    name, served = name.lower().rstrip("."), served.lower().strip("[]")
    if name in ("localhost", served):
        return True
    address, listening = _address(name), _address(served)
    return address is not None and (address.is_loopback or (listening is not None and listening.is_unspecified))


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def create_app(review: Review, token: str, served_host: str = "127.0.0.1") -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY  # a chunked body is cut off at the limit too
    page = resources.files("tagger.review").joinpath("page.html").read_text(encoding="utf-8")
    cookie = cookie_name(token)

    @app.before_request
    def check_request() -> None:
        if (request.content_length or 0) > MAX_BODY:  # refused before a byte of it is read
            abort(413, f"a request body may hold at most {MAX_BODY // 2**20} MiB")
        if not host_allowed(request.host, served_host):
            abort(421, "this server answers only to localhost and the address it listens on")
        given = request.args.get("token") or request.cookies.get(cookie) or ""
        if request.method not in ("GET", "HEAD"):  # a change needs the header too: another site's form cannot set it
            given = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            abort(401, "this page needs the token printed by `terc-tag review`")

    @app.after_request
    def no_sniffing(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self' blob:; " \
                                                      "style-src 'self' 'unsafe-inline'; " \
                                                      "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
        if response.status_code == 413:  # the unread body must not be taken for the next request
            response.headers["Connection"] = "close"
        return response

    @app.errorhandler(HTTPException)
    def short_error(exc: HTTPException) -> Response:
        return Response(f"{exc.code} {exc.name}: {exc.description}\n", exc.code, mimetype="text/plain")

    @app.errorhandler(Exception)
    def no_traceback(exc: Exception) -> Response:
        app.logger.error("review: %s", exc)
        return Response("500 Internal Server Error\n", 500, mimetype="text/plain")

    @app.get("/")
    def index() -> Response:
        response = Response(page, mimetype="text/html")
        response.set_cookie(cookie, token, httponly=True, samesite="Strict")
        return response

    @app.get("/api/photos")
    def photos() -> Response:
        return jsonify(review.photos(search=request.args.get("search", "")))

    @app.post("/api/correct")
    def change() -> Response:
        try:
            body = json.loads(request.get_data(cache=False))
        except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
            body = None
        if not isinstance(body, dict):
            abort(400, "expected a JSON object")
        return jsonify(review.change(body))

    # A photo in a URL is its shown name (tagger.names): valid UTF-8 whatever bytes the file name holds.
    @app.get("/thumb/<path:name>")
    def thumb(name: str) -> Response:
        path = unshown(name)
        return Response(review.thumbnails.get(review.file(path), photo_key(path)), mimetype="image/jpeg")

    @app.get("/large/<path:name>")
    def large(name: str) -> Response:
        copy = review.file(unshown(name))
        return Response(_large(copy, copy.stat().st_mtime_ns), mimetype="image/jpeg")

    @app.get("/heat/<path:name>")
    def heat(name: str) -> Response:
        return Response(review.heat_map(unshown(name), request.args.get("tag", "")), mimetype="image/png")

    @app.get("/api/similar/<path:name>")
    def similar(name: str) -> Response:
        return jsonify(review.similar(unshown(name)))

    return app


class _RequestHandler(WSGIRequestHandler):
    """Werkzeug's handler, but a body announced too large is refused before the client sends it.

    A client that asks first (``Expect: 100-continue``, as curl does for a
    large body) would otherwise be told to go on by the standard library.
    """

    def handle_expect_100(self) -> bool:
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > MAX_BODY:
            self.send_error(413, f"a request body may hold at most {MAX_BODY // 2**20} MiB")
            return False
        return super().handle_expect_100()


class Server:
    """The review app on a background thread: ``url`` to open, ``stop()`` to end.

    OSError (one line in ``strerror``) when the port is taken or the address
    is not this machine's: the socket is bound here, not by Werkzeug, which
    would print its own text and exit.
    """

    def __init__(self, review: Review, host: str = "127.0.0.1", port: int = 0):
        from werkzeug.serving import make_server

        self.token = secrets.token_urlsafe(24)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.create_server((host.strip("[]"), port), family=family) as listening:
            self._server = make_server(host, port, create_app(review, self.token, host), threaded=True,
                                       request_handler=_RequestHandler, fd=listening.fileno())
        self.host, self.port = host, self._server.port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/?token={self.token}"

    def start(self) -> Server:
        self._thread.start()
        return self

    def wait(self) -> None:
        """Until Ctrl-C (KeyboardInterrupt)."""
        while self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")

