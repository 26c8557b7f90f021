"""The review app in a real browser: Debian's headless Chromium driven by Playwright.

Two annotators finish 20 items with the keyboard only (with a comment, a skip, a step back and a
server restart mid-review); every response is checked for the system names; script and
``<img onerror>`` outputs stay inert text; a missing or wrong token gets 401; the results equal
an offline computation from the simulator's own records.

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``; .ci/run installs it). Without it the
test is skipped with that reason, except under CI=1, where it fails.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from review_helpers import SYSTEM_NAMES, XSS_A, XSS_B, judge, make_material, offline_win_rates, system_of

CHROMIUM = os.environ.get("TUNERAIL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def _need_browser():
    missing = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package is not installed (pip install playwright; no browser download needed)"
    if missing is None and not Path(CHROMIUM).exists():
        missing = f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    if missing:
        if os.environ.get("CI") == "1":
            pytest.fail(f"browser test cannot run in CI: {missing}")
        pytest.skip(missing)


def _press(page, keys):
    for k in keys:
        page.keyboard.press(k)


class Traffic:
    """Every response the browser receives: URL, headers and (for documents) the body."""

    def __init__(self):
        self.seen = []

    def __call__(self, response):
        body = ""
        if response.request.resource_type == "document" and not 300 <= response.status < 400:
            try:
                body = response.text()
            except Exception:  # noqa: BLE001 - a body the browser dropped (navigated away)
                body = ""
        headers = {k: v for k, v in response.headers.items() if k != "content-security-policy"}  # has "base-uri"
        self.seen.append((response.url, response.status, headers, body))

    def leaks(self):
        out = []
        for url, status, headers, body in self.seen:
            text = (url + " " + " ".join(f"{k}:{v}" for k, v in headers.items()) + " " + body).lower()
            out += [(url, name) for name in SYSTEM_NAMES if name in text]
        return out


def _review(page, session, name, records, stop_after=None, comment_on=1, skip_on=None, back_on=2):
    """Answer the open queue with the keyboard only; returns how many items were answered."""
    answered = 0
    while "/item/" in page.url and (stop_after is None or answered < stop_after):
        text_a = page.inner_text("#answer-a")
        text_b = page.inner_text("#answer-b")
        item, sys_a = system_of(session.items, text_a)
        _, sys_b = system_of(session.items, text_b)
        position = int(page.url.rsplit("/", 1)[1])
        if skip_on is not None and position == skip_on:
            _press(page, ["s"])
            page.keyboard.type("the input is cut off")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            answered += 1
            continue
        choice = judge(name, text_a, text_b, str(item))
        keys = [{"A": "a", "B": "b", "tie": "t"}[choice["preference"]]]
        keys += [str(v) for v in choice["a"]] + [str(v) for v in choice["b"]]  # A's scales, then B's
        _press(page, keys)
        if position == comment_on:
            _press(page, ["c"])
            page.keyboard.type("B hedges <b>too</b> much")
            _press(page, ["Escape"])
        with page.expect_navigation():
            page.keyboard.press("Enter")
        if position == back_on:  # step back, check the saved answer shows, and save it again
            with page.expect_navigation():
                page.keyboard.press("Backspace")
            assert page.is_visible("#voted") and int(page.url.rsplit("/", 1)[1]) == position
            assert page.is_checked(f'input[name="preference"][value="{choice["preference"]}"]')
            with page.expect_navigation():
                page.keyboard.press("Enter")
        winner = {"A": sys_a, "B": sys_b, "tie": "tie"}[choice["preference"]]
        records.append({"item": item, "winner": winner, "scores": {sys_a: choice["a"], sys_b: choice["b"]}})
        answered += 1
    return answered


def test_two_annotators_review_in_chromium_with_the_keyboard(tmp_path):
    _need_browser()
    from playwright.sync_api import sync_playwright

    from tunerail.review.app import BackgroundServer, create_app
    from tunerail.review.session import compute_results, open_session

    make_material(tmp_path, 16)  # 16 items, 25 % overlap: 4 to both, 12 spread -> 10 + 10 = 20 answered
    from tunerail.config import TunerailConfig

    cfg = TunerailConfig.model_validate({"review": {"overlap": 0.25}})
    session = open_session(tmp_path, config=cfg, annotators=["alice", "bob"])
    assert [session.store.queue_length(n) for n in ("alice", "bob")] == [10, 10]
    records: list[dict] = []
    traffic = Traffic()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            with BackgroundServer(create_app(session)) as server:
                anon = browser.new_context()
                for path in ("/", "/item/0", "/results", "/?token=wrong", "/item/0?token=" + "x" * 32):
                    assert anon.new_page().goto(server.url + path).status == 401, path
                anon.close()

                alice = browser.new_context()
                page = alice.new_page()
                page.on("response", traffic)
                xss_hits = []
                page.on("dialog", lambda d: (xss_hits.append(d.message), d.dismiss()))
                page.goto(f"{server.url}/?token={session.tokens['alice']}")
                assert page.url.endswith("/item/0") and "token" not in page.url  # token moved to a cookie
                assert page.get_attribute("#progress", "value") == "0"
                done = _review(page, session, "alice", records, stop_after=4, skip_on=3)
            # the server goes away mid-review; a new process over the same folder resumes
            assert done == 4 and len(session.store.votes()) == 4
            session2 = open_session(tmp_path, config=cfg)
            with BackgroundServer(create_app(session2)) as server:
                page.goto(f"{server.url}/?token={session2.tokens['alice']}")
                assert page.url.endswith("/item/4") and page.get_attribute("#progress", "value") == "4"
                _review(page, session2, "alice", records, comment_on=-1, back_on=-1)
                assert page.is_visible("#finished")

                bob = browser.new_context()
                page_b = bob.new_page()
                page_b.on("response", traffic)
                page_b.goto(f"{server.url}/?token={session2.tokens['bob']}")
                _review(page_b, session2, "bob", records)
                assert page_b.is_visible("#finished")

                # the script/img payloads were shown as text and did nothing
                for pg in (page, page_b):
                    assert pg.evaluate("window.__xss") is None
                assert not xss_hits
                xss_page = None
                for pos in range(10):
                    for pg in (page, page_b):
                        pg.goto(f"{server.url}/item/{pos}")
                        if XSS_A in pg.inner_text("#input"):
                            xss_page = pg
                            break
                    if xss_page:
                        break
                assert xss_page is not None
                answers = xss_page.inner_text("#answer-a") + xss_page.inner_text("#answer-b")
                assert XSS_A in answers and XSS_B in answers
                assert xss_page.locator("pre img, pre script").count() == 0
                assert xss_page.evaluate("window.__xss") is None
        finally:
            browser.close()

    assert sum(1 for *_, body in traffic.seen if "answer-a" in body) >= 20  # the pages themselves were read
    assert not traffic.leaks()
    res = compute_results(session2)
    assert res["votes"] == 19 and res["skipped"] == 1 and res["annotators"]["alice"] == {"done": 10, "total": 10}
    offline = offline_win_rates(records)
    pair = res["pairs"][0]
    for s in SYSTEM_NAMES:
        wins, decided, (lo, hi) = offline[s]
        assert (pair["wins"][s], pair["win_rate"][s]["n"]) == (wins, decided)
        assert (pair["win_rate"][s]["low"], pair["win_rate"][s]["high"]) == pytest.approx((lo, hi))
    assert pair["ties"] == offline["ties"]
    votes = {(v["annotator"], v["item"]): v for v in session2.store.votes()}
    assert any(v["comment"] == "B hedges <b>too</b> much" for v in votes.values())
    # sides balanced per annotator, and A was the tuned answer about half the time in what they saw
    for name in ("alice", "bob"):
        sides = [a["a_is"] == a["first"] for a in session2.store.assignments() if a["annotator"] == name]
        assert abs(sum(sides) - (len(sides) - sum(sides))) <= 1
