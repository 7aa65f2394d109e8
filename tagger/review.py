"""``terc-tag review``: a local web page to check and correct the tags of a tagged OUTPUT.

The page is a thin view over the library: the photo list is
:func:`tagger.predictions.review_order`, a change is
:func:`tagger.correct.correct` (the same lossless writer and edit lock as
the command line), heat maps are :class:`tagger.explain.Explainer`, and
similar photos are :class:`tagger.similar.SimilarIndex`.

Security: the server listens on 127.0.0.1 unless told otherwise, every
request must carry the per-run token (``?token=`` once, then a
``SameSite=Strict`` cookie; changes also need it in a header, which another
site's form cannot send), and it serves only photos the state lists as
tagged, after resolving them inside OUTPUT, so no ``..``, absolute path or
symbolic link reaches another file.  Werkzeug (Flask) parses HTTP.
"""

from __future__ import annotations

import hmac
import io
import secrets
import threading
from dataclasses import asdict
from functools import lru_cache
from importlib import resources
from pathlib import Path

from flask import Flask, Response, abort, jsonify, request
from werkzeug.exceptions import HTTPException

from tagger.correct import CorrectionError, correct
from tagger.metadata import MetadataError
from tagger.predictions import review_order, uncertain_tags
from tagger.state import State

TOKEN_COOKIE, TOKEN_HEADER = "terc_tag_token", "X-Terc-Token"
THUMBNAIL, LARGE = 320, 1024


class Review:
    """What the page shows of one OUTPUT, read fresh from its state on each request."""

    def __init__(self, output: Path, bundle, threshold: float | str | None = None, margin: float = 0.1):
        self.output, self.bundle, self.margin = Path(output).resolve(), bundle, margin
        self.thresholds = dict(zip(bundle.vocabulary, map(float, bundle.thresholds(threshold))))
        self._explainer = None
        self._model_lock = threading.Lock()

    def records(self):
        state = State.reader(self.output)
        if state is None:
            return []
        try:
            return [r for r in state.records() if r.status == "tagged" and r.probabilities]
        finally:
            state.close()

    def photos(self, limit: int = 500) -> dict:
        """The ``limit`` photos most in need of a look and the ``limit`` reviewed last, with progress.

        The limit keeps the page light on a large archive; reloading it shows the next ones.
        """
        records = self.records()
        pending = review_order(records, self.thresholds, self.bundle.codes_id)
        done = sorted((r for r in records if r.reviewed), key=lambda r: r.reviewed, reverse=True)
        return {"vocabulary": list(self.bundle.vocabulary), "thresholds": self.thresholds,
                "reviewed": len(done), "left": len(pending),
                "photos": [self._photo(r) for r in pending[:limit] + done[:limit]]}

    def _photo(self, record) -> dict:
        near = uncertain_tags(record.probabilities, self.thresholds, self.margin)
        return {"path": record.path, "tags": record.tags, "reviewed": record.reviewed,
                "probabilities": {t: round(p, 4) for t, p in record.probabilities.items()},
                "uncertain": [t for t, _ in near]}

    def file(self, path: str) -> Path:
        """The copy of a tagged photo of OUTPUT; 404 for anything else (``..``, absolute, links out, unknown)."""
        state = State.reader(self.output)
        try:
            record = state.get(path) if state is not None and not Path(path).is_absolute() else None
        finally:
            if state is not None:
                state.close()
        if record is None or record.status != "tagged":
            abort(404, "no such photo")
        copy = (self.output / path).resolve()
        if self.output not in copy.parents or not copy.is_file():
            abort(404, "no such photo")
        return copy

    def change(self, body: dict) -> dict:
        paths, add, remove = body.get("paths"), body.get("add", []), body.get("remove", [])
        if not (isinstance(paths, list) and paths and all(isinstance(p, str) for p in paths)
                and isinstance(add, list) and isinstance(remove, list)
                and all(isinstance(t, str) for t in add + remove)):
            abort(400, "expected {\"paths\": [...], \"add\": [...], \"remove\": [...]}")
        for path in paths:
            self.file(path)
        try:
            done = correct(self.output, paths, self.bundle.vocabulary, add=add, remove=remove)
        except (ValueError, CorrectionError) as exc:
            abort(400, str(exc))
        except (MetadataError, OSError) as exc:
            abort(500, f"cannot rewrite the copy: {exc}")
        return {"corrected": [c.as_dict() for c in done]}

    def heat_map(self, path: str, tag: str) -> bytes:
        """A PNG of the photo with the evidence for ``tag`` laid over it."""
        from tagger.decode import DecodeError, decode
        from tagger.explain import Explainer, display_image, overlay
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
        from tagger.similar import SimilarIndex, SimilarIndexError

        self.file(path)
        try:
            index = SimilarIndex(self.output, self.bundle)
        except SimilarIndexError as exc:
            return {"error": str(exc), "results": []}
        position = index.find(path)
        if position is None:
            return {"error": "this photo has no similarity code", "results": []}
        return {"results": [asdict(m) for m in index.nearest(index.codes.words[position], k, exclude=position)]}


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@lru_cache(maxsize=512)
def _jpeg(path: Path, mtime_ns: int, longest: int) -> bytes:
    from tagger.explain import display_image

    buffer = io.BytesIO()
    display_image(path.read_bytes(), longest).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def create_app(review: Review, token: str) -> Flask:
    app = Flask(__name__)
    page = resources.files("tagger").joinpath("review.html").read_text(encoding="utf-8")

    @app.before_request
    def check_token():
        given = request.args.get("token") or request.cookies.get(TOKEN_COOKIE) or ""
        if request.method != "GET":  # a change needs the header too: another site's form cannot set it
            given = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            abort(401, "this page needs the token printed by `terc-tag review`")

    @app.after_request
    def no_sniffing(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self' blob:; " \
                                                      "style-src 'self' 'unsafe-inline'; " \
                                                      "script-src 'self' 'unsafe-inline'"
        return response

    @app.errorhandler(HTTPException)
    def short_error(exc: HTTPException):
        return Response(f"{exc.code} {exc.name}: {exc.description}\n", exc.code, mimetype="text/plain")

    @app.errorhandler(Exception)
    def no_traceback(exc: Exception):
        app.logger.error("review: %s", exc)
        return Response("500 Internal Server Error\n", 500, mimetype="text/plain")

    @app.get("/")
    def index():
        response = Response(page, mimetype="text/html")
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
        return response

    @app.get("/api/photos")
    def photos():
        return jsonify(review.photos())

    @app.post("/api/correct")
    def change():
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            abort(400, "expected a JSON object")
        return jsonify(review.change(body))

    def image(path: str, longest: int):
        copy = review.file(path)
        return Response(_jpeg(copy, copy.stat().st_mtime_ns, longest), mimetype="image/jpeg")

    app.add_url_rule("/thumb/<path:path>", "thumb", lambda path: image(path, THUMBNAIL))
    app.add_url_rule("/large/<path:path>", "large", lambda path: image(path, LARGE))

    @app.get("/heat/<path:path>")
    def heat(path: str):
        return Response(review.heat_map(path, request.args.get("tag", "")), mimetype="image/png")

    @app.get("/api/similar/<path:path>")
    def similar(path: str):
        return jsonify(review.similar(path))

    return app


class Server:
    """The review app on a background thread: ``url`` to open, ``stop()`` to end."""

    def __init__(self, review: Review, host: str = "127.0.0.1", port: int = 0):
        from werkzeug.serving import make_server

        self.token = secrets.token_urlsafe(24)
        self._server = make_server(host, port, create_app(review, self.token), threaded=True)
        self.host, self.port = host, self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/?token={self.token}"

    def start(self) -> "Server":
        self._thread.start()
        return self

    def wait(self) -> None:
        """Until Ctrl-C (KeyboardInterrupt)."""
        while self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")

