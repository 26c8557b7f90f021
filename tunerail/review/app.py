"""The blind review web app (FastAPI, server-rendered Jinja2 pages, a few lines of keyboard JS).

Security model, enforced for every request by one middleware before any route runs:

- **Token or 401.** A request needs an annotator's link token (``?token=`` once, then an
  HttpOnly SameSite=Strict cookie, or the ``X-Review-Token`` header); otherwise 401, whatever the
  path. The token leaves the URL at once (redirect), so it is not in history or Referer.
- **CSRF.** Votes are POSTs carrying the annotator's CSRF token (compared in constant time; 403).
- **Blinding.** Pages and URLs carry only queue positions and "A"/"B"; the store maps them to
  systems when a vote is saved. The results (which name systems) need the ``@admin`` link.
- **Inert text.** Jinja2 autoescape for all data and model text, and a Content-Security-Policy
  allowing only this page's nonce'd script and style: even an escaping bug would not run a script.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qs

# Imported only by `tunerail review serve` (and tests/bench), never by `import tunerail`.

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from markupsafe import Markup

from tunerail.report.render import environment
from tunerail.review.session import ReviewSession, compute_results

COOKIE = "tunerail_review"
MAX_COMMENT = 4000


# size: create_app: the routes are closures over one session; a flat list of small handlers
def create_app(session: ReviewSession) -> Any:
    """The FastAPI app for one review session (bind it to loopback: ``run_server``)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)  # no schema pages: every path needs a token
    store = session.store
    rubric = session.review.rubric

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        token = request.query_params.get("token") or request.headers.get("x-review-token") or request.cookies.get(COOKIE)
        who = store.annotator_for(token)
        if who is None:
            return _secure(PlainTextResponse("401: open this page with your review link", status_code=401), None)
        request.state.who = who
        if "token" in request.query_params and request.method == "GET":
            response = RedirectResponse(request.url.path, status_code=303)
            response.set_cookie(COOKIE, str(token), httponly=True, samesite="strict", path="/")
            return _secure(response, None)
        request.state.nonce = secrets.token_urlsafe(16)
        return _secure(await call_next(request), request.state.nonce)

    env = environment()  # the report environment (autoescape, StrictUndefined), compiled once per app

    def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(template).render(nonce=request.state.nonce, **context), status_code=status)

    def annotator(request: Request) -> str | None:
        who = request.state.who
        return None if who["admin"] else who["name"]

    @app.get("/")
    def home(request: Request) -> Any:
        name = annotator(request)
        if name is None:
            return RedirectResponse("/results", status_code=303)
        _, _, nxt = store.progress(name)
        return RedirectResponse(f"/item/{nxt}" if nxt is not None else "/done", status_code=303)

    @app.get("/item/{position}")
    def item(request: Request, position: int) -> Any:
        name = annotator(request)
        if name is None:
            return PlainTextResponse("403: the admin link has no review queue", status_code=403)
        row = _assignment(store, name, position)
        if row is None:
            return PlainTextResponse("404: no such item in your queue", status_code=404)
        return page(request, "review_item.html", **_item_context(session, request.state.who, row))

    @app.post("/item/{position}")
    async def vote(request: Request, position: int) -> Any:
        name = annotator(request)
        if name is None:
            return PlainTextResponse("403: the admin link has no review queue", status_code=403)
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True).items()}
        if not hmac.compare_digest(form.get("csrf", ""), request.state.who["csrf"]):
            return PlainTextResponse("403: missing or wrong CSRF token; reload the page", status_code=403)
        row = _assignment(store, name, position)
        if row is None:
            return PlainTextResponse("404: no such item in your queue", status_code=404)
        a_sys, b_sys = row["a_is"], (row["second"] if row["a_is"] == row["first"] else row["first"])
        skip = form.get("action") == "skip"
        errors = []
        preference = None
        if not skip:
            preference = {"A": a_sys, "B": b_sys, "tie": "tie"}.get(form.get("preference", ""))
            if preference is None:
                errors.append("choose A, B or tie (keys a, b, t) — or skip with a reason")
        reason = form.get("skip_reason", "").strip()[:500]
        if skip and not reason:
            errors.append("a skip needs a reason (why can this item not be judged?)")
        scores: dict[str, dict[str, int]] = {}
        for i, q in enumerate(rubric):
            for side, system in (("a", a_sys), ("b", b_sys)):
                raw = form.get(f"q{i}{side}", "")
                if raw == "":
                    continue
                if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= q.scale:  # "³".isdigit() but int() refuses it
                    errors.append(f"{q.name}: scores are 1-{q.scale}")
                    continue
                scores.setdefault(q.name, {})[system] = int(raw)
        if errors:
            context = _item_context(session, request.state.who, row)
            context["errors"] = errors
            return page(request, "review_item.html", status=422, **context)
        store.cast(
            name,
            row["unit"],
            preference=preference,
            rubric={} if skip else scores,
            comment=form.get("comment", "")[:MAX_COMMENT],
            skip_reason=reason if skip else None,
        )
        total = store.queue_length(name)
        return RedirectResponse(f"/item/{position + 1}" if position + 1 < total else "/done", status_code=303)

    @app.get("/done")
    def done(request: Request) -> Any:
        name = annotator(request)
        if name is None:
            return RedirectResponse("/results", status_code=303)
        finished, total, nxt = store.progress(name)
        return page(request, "review_done.html", done=finished, total=total, next=nxt, name=name)

    @app.get("/api/progress")
    def progress(request: Request) -> Any:
        name = annotator(request)
        if name is None:
            return JSONResponse({"detail": "the admin link has no review queue"}, status_code=403)
        finished, total, nxt = store.progress(name)
        return {"done": finished, "total": total, "next": nxt}

    @app.get("/results")
    def results_page(request: Request) -> Any:
        if not request.state.who["admin"]:
            return PlainTextResponse("403: results are for the admin link (they name the systems)", status_code=403)
        return page(request, "review_results.html", h=compute_results(session))

    @app.get("/api/results")
    def results_api(request: Request) -> Any:
        if not request.state.who["admin"]:
            return JSONResponse({"detail": "results are for the admin link"}, status_code=403)
        return compute_results(session)

    return app


def _assignment(store: Any, name: str, position: int) -> Any:
    """The row at ``position`` of the queue, or None; a position SQLite cannot hold (> 2**63) is simply not in it."""
    if not 0 <= position < 2**63:
        return None
    return store.assignment(name, position)


def _item_context(session: ReviewSession, who: Any, row: Any) -> dict[str, Any]:
    it = session.items[row["item"]]
    a_sys = row["a_is"]
    b_sys = row["second"] if a_sys == row["first"] else row["first"]
    done, total, _ = session.store.progress(who["name"])
    prior: dict[str, Any] = {"preference": None, "scores": {}, "comment": "", "skip_reason": ""}
    if row["cast_at"] is not None:  # revisiting: show the vote as cast, still in A/B terms
        import json

        side = {a_sys: "A", b_sys: "B", "tie": "tie"}
        prior["preference"] = side.get(row["preference"])
        for i, q in enumerate(session.review.rubric):
            got = json.loads(row["rubric"]).get(q.name, {})
            for s, system in (("a", a_sys), ("b", b_sys)):
                if system in got:
                    prior["scores"][f"q{i}{s}"] = got[system]
        prior["comment"], prior["skip_reason"] = row["comment"], row["skip_reason"] or ""
    return {
        "position": row["position"],
        "done": done,
        "total": total,
        "csrf": Markup(who["csrf"]),  # our own URL-safe token: Markup keeps report redaction from masking it
        "input": it["input"],
        "reference": it["reference"],
        "answer_a": it["outputs"][a_sys],
        "answer_b": it["outputs"][b_sys],
        "rubric": session.review.rubric,
        "prior": prior,
        "voted": row["cast_at"] is not None,
        "errors": [],
    }


def _secure(response: Any, nonce: str | None) -> Any:
    src = f"'nonce-{nonce}'" if nonce else "'none'"
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src {src}; style-src {src}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    return response


class BackgroundServer:
    """uvicorn in a thread on 127.0.0.1 (tests, benchmarks): ``with BackgroundServer(app) as s: s.url``."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "BackgroundServer":
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("review server did not start")
            time.sleep(0.02)
        return self

    @property
    def url(self) -> str:
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def run_server(session: ReviewSession, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until interrupted (blocking)."""
    import uvicorn

    uvicorn.run(create_app(session), host=host, port=port, log_level="warning")
