"""`tunerail review serve/results` without a browser: assignment, agreement, the app's HTTP
contract (tokens, CSRF, blinding, escaping), restarts, results, and the verdict."""

from __future__ import annotations

import html
import json
import re
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("krippendorff")

from fastapi.testclient import TestClient  # noqa: E402

from review_helpers import SYSTEM_NAMES, XSS_A, XSS_B, judge, make_material, offline_win_rates, system_of  # noqa: E402
from tunerail.config import CriteriaConfig, TunerailConfig  # noqa: E402
from tunerail.errors import TunerailError  # noqa: E402
from tunerail.eval.verdict import check_human  # noqa: E402
from tunerail.review.app import create_app  # noqa: E402
from tunerail.review.results import agreement  # noqa: E402
from tunerail.review.session import compute_results, open_session  # noqa: E402
from tunerail.review.store import assign  # noqa: E402

NAN = np.nan
# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", 4 coders x 12 units; the
# krippendorff package documents nominal 0.743 and ordinal 0.815 for it.
K2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]


def _ratings(matrix):
    return {u: {f"c{c}": row[u] for c, row in enumerate(matrix) if not np.isnan(row[u])} for u in range(len(matrix[0]))}


def test_agreement_reproduces_krippendorff_2011_and_reports_undefined_cases():
    assert round(agreement(_ratings(K2011), "nominal")["alpha"], 3) == 0.743
    assert round(agreement(_ratings(K2011), "ordinal", domain=range(1, 6))["alpha"], 3) == 0.815
    lonely = agreement({1: {"x": 1}, 2: {"y": 2}}, "nominal")
    assert lonely["alpha"] is None and "two annotators" in lonely["undefined"] and lonely["percent"] is None
    same = agreement({1: {"x": 3, "y": 3}, 2: {"x": 3, "y": 3}}, "ordinal", domain=range(1, 6))
    assert same["alpha"] is None and "same value" in same["undefined"] and same["percent"] == 1.0


@pytest.mark.parametrize("n,names,overlap", [(40, ["a", "b"], 0.2), (33, ["a", "b", "c"], 0.3), (7, ["solo"], 0.2)])
def test_assignment_covers_everything_overlaps_and_balances_sides(n, names, overlap):
    units = [f"u{i}" for i in range(n)]
    plan = assign(units, names, overlap, seed=3)
    assert plan == assign(units, names, overlap, seed=3)  # seeded
    count = Counter(u for q in plan.values() for u, _ in q)
    assert set(count) == set(units)  # every unit is reviewed
    expected_twice = round(overlap * n) if len(names) > 1 else 0
    assert sum(c == 2 for c in count.values()) == expected_twice and max(count.values()) <= 2
    for queue in plan.values():
        first_a = sum(side for _, side in queue)
        assert abs(first_a - (len(queue) - first_a)) <= 1  # A side balanced per annotator
    if len(names) > 1:
        assert max(map(len, plan.values())) - min(map(len, plan.values())) <= 1


def _login(client, token):
    page = client.get(f"/?token={token}", follow_redirects=True)
    assert page.status_code == 200
    return page, re.search(r'name="csrf" value="([^"]+)"', page.text)


def _answers(text):
    return [html.unescape(m) for m in re.findall(r'<pre id="answer-[ab]">(.*?)</pre>', text, re.S)]


def _review(client, session, name, limit=None):
    """Drive one annotator through the app like the simulated reviewer; returns their records."""
    page, csrf = _login(client, session.tokens[name])
    records = []
    while page.url.path.startswith("/item/") and (limit is None or len(records) < limit):
        text_a, text_b = _answers(page.text)
        item, sys_a = system_of(session.items, text_a)
        _, sys_b = system_of(session.items, text_b)
        choice = judge(name, text_a, text_b, str(item))
        form = {"csrf": csrf.group(1), "preference": choice["preference"], "action": "vote"}
        for q in range(3):
            form[f"q{q}a"], form[f"q{q}b"] = str(choice["a"][q]), str(choice["b"][q])
        page = client.post(page.url.path, data=form, follow_redirects=True)
        assert page.status_code == 200
        winner = {"A": sys_a, "B": sys_b, "tie": "tie"}[choice["preference"]]
        records.append({"item": item, "winner": winner, "scores": {sys_a: choice["a"], sys_b: choice["b"]}})
    return records


@pytest.fixture
def session(tmp_path):
    make_material(tmp_path, 30)
    return open_session(tmp_path, annotators=["alice", "bob"])


def test_every_route_needs_a_valid_token(session):
    client = TestClient(create_app(session))
    for method, path in [
        ("get", "/"),
        ("get", "/item/0"),
        ("post", "/item/0"),
        ("get", "/done"),
        ("get", "/api/progress"),
        ("get", "/results"),
        ("get", "/api/results"),
        ("get", "/docs"),
        ("get", "/openapi.json"),
        ("get", "/no/such/page"),
    ]:
        assert getattr(client, method)(path).status_code == 401, path
        assert getattr(client, method)(path + "?token=wrong").status_code == 401, path
        assert getattr(client, method)(path, headers={"X-Review-Token": "x" * 32}).status_code == 401, path
    page, csrf = _login(client, session.tokens["alice"])
    assert client.post("/item/0", data={"preference": "A"}).status_code == 403  # no CSRF token
    assert client.post("/item/0", data={"csrf": "forged", "preference": "A"}).status_code == 403
    assert client.get("/results").status_code == 403 and client.get("/api/results").status_code == 403  # annotators
    assert "tuned" not in page.text and "nonce-" in page.headers["content-security-policy"]


def test_pages_and_responses_never_name_the_systems_and_escape_outputs(session):
    client = TestClient(create_app(session))
    seen = []
    for name in ("alice", "bob"):
        page, csrf = _login(client, session.tokens[name])
        for pos in range(session.store.queue_length(name)):
            r = client.get(f"/item/{pos}")
            seen.append(r)
            assert XSS_A not in r.text and XSS_B not in r.text and "<img" not in r.text  # only escaped text
        seen.append(client.get("/api/progress"))
        seen.append(client.post("/item/0", data={"csrf": csrf.group(1)}))  # 422 page
    for r in seen:
        headers = {k: v for k, v in r.headers.items() if k != "content-security-policy"}  # has "base-uri"
        body = r.text.lower() + " ".join(f"{k}:{v}" for k, v in headers.items()).lower() + str(r.url).lower()
        assert not any(s in body for s in SYSTEM_NAMES), r.url
    assert any("&lt;script&gt;window.__xss" in r.text for r in seen)  # item 0 is in someone's queue


def test_results_equal_offline_computation_and_survive_a_restart(session, tmp_path):
    app = create_app(session)
    records = _review(TestClient(app), session, "alice", limit=7)
    # "restart": a new session object and app over the same folder; the same links still work
    again = open_session(tmp_path)
    assert again.tokens == session.tokens
    client = TestClient(create_app(again))
    page, _ = _login(client, again.tokens["alice"])
    assert page.url.path == "/item/7"  # resumes where alice stopped
    records += _review(client, again, "alice")
    records += _review(client, again, "bob")
    res = compute_results(again)
    assert res["votes"] == len(records) == sum(again.store.queue_length(n) for n in ("alice", "bob"))
    offline = offline_win_rates(records)
    pair = res["pairs"][0]
    for s in SYSTEM_NAMES:
        wins, decided, (lo, hi) = offline[s]
        assert pair["wins"][s] == wins and pair["win_rate"][s]["n"] == decided
        assert pair["win_rate"][s]["low"] == pytest.approx(lo) and pair["win_rate"][s]["high"] == pytest.approx(hi)
    assert pair["ties"] == offline["ties"]
    mean_tuned = np.mean([r["scores"]["tuned"][0] for r in records])
    assert res["rubric"][0]["systems"]["tuned"]["mean"] == pytest.approx(mean_tuned)
    # agreement recomputed directly with the krippendorff package on the doubly rated items
    import krippendorff

    by_item = {}
    n_alice = again.store.queue_length("alice")
    for name, recs in (("alice", records[:n_alice]), ("bob", records[n_alice:])):
        for r in recs:
            by_item.setdefault(r["item"], {})[name] = {"base": 0.0, "tuned": 1.0, "tie": 2.0}[r["winner"]]
    twice = [v for v in by_item.values() if len(v) == 2]
    assert len(twice) == res["agreement"]["preference"]["units"] == 6  # 20 % of 30
    data = np.array([[v["alice"] for v in twice], [v["bob"] for v in twice]])
    if len(np.unique(data)) > 1:
        assert res["agreement"]["preference"]["alpha"] == pytest.approx(krippendorff.alpha(data, level_of_measurement="nominal"))
    assert res["agreement"]["preference"]["percent"] == pytest.approx(np.mean(data[0] == data[1]))
    admin = TestClient(create_app(again))
    admin.get(f"/?token={again.tokens['@admin']}")
    assert admin.get("/api/results").json()["votes"] == res["votes"]
    assert "Krippendorff" in admin.get("/results").text


def test_skip_needs_a_reason_and_is_not_a_vote(session):
    client = TestClient(create_app(session))
    _, csrf = _login(client, session.tokens["alice"])
    assert client.post("/item/0", data={"csrf": csrf.group(1), "action": "skip"}).status_code == 422
    r = client.post("/item/0", data={"csrf": csrf.group(1), "action": "skip", "skip_reason": "input is cut off"})
    assert r.status_code == 200 and r.url.path == "/item/1"
    res = compute_results(session)
    assert res["skipped"] == 1 and res["votes"] == 0 and res["skip_reasons"] == ["input is cut off"]


def test_reopening_with_other_annotators_or_changed_material_is_refused(session, tmp_path):
    with pytest.raises(TunerailError, match="annotators"):
        open_session(tmp_path, annotators=["carol"])
    (tmp_path / "review_items.jsonl").write_text((tmp_path / "review_items.jsonl").read_text().replace("grade", "Grade"))
    with pytest.raises(TunerailError, match="material changed"):
        open_session(tmp_path)
    with pytest.raises(TunerailError, match="no review material"):
        open_session(tmp_path / "nowhere")


def _human(items, wins, losses, ties=0, alpha=0.8, percent=0.9):
    return {
        "items_reviewed": items,
        "pairs": [
            {
                "first": "base",
                "second": "tuned",
                "votes": wins + losses + ties,
                "ties": ties,
                "wins": {"tuned": wins, "base": losses},
                "win_rate": {"tuned": _wr(wins, wins + losses), "base": _wr(losses, wins + losses)},
            }
        ],
        "agreement": {
            "preference": {
                "alpha": alpha,
                "percent": percent,
                "units": 10,
                "undefined": None if alpha is not None else "no item was rated by two annotators",
            }
        },
    }


def _wr(k, n):
    from tunerail.stats import wilson_interval

    lo, hi = wilson_interval(k, n)
    return {"value": k / n if n else None, "low": lo, "high": hi, "n": n}


def test_human_criteria_are_judged_on_the_wilson_lower_bound():
    crit = CriteriaConfig(human={"min_win_rate": 0.6, "min_alpha": 0.667, "min_items": 40})
    assert check_human(CriteriaConfig(), None) == []  # not required
    assert [f.code for f in check_human(crit, None)] == ["EVL060"]
    ok = {f.code: f for f in check_human(crit, _human(60, 48, 12))}  # 80 %, lower bound 0.68
    assert all(f.severity == "info" for f in ok.values()) and set(ok) == {"EVL061", "EVL062", "EVL063"}
    close = {f.code: f for f in check_human(crit, _human(60, 16, 9))}  # 64 % but lower bound 0.45
    assert close["EVL062"].severity == "error" and "64.0 %" in close["EVL062"].message
    point = CriteriaConfig(decision="point", human={"min_win_rate": 0.6, "min_alpha": 0.667, "min_items": 40})
    assert {f.code: f for f in check_human(point, _human(60, 16, 9))}["EVL062"].severity == "info"
    few = {f.code: f for f in check_human(crit, _human(10, 48, 12, alpha=None, percent=None))}
    assert few["EVL061"].severity == "error" and few["EVL063"].severity == "error"
    assert {f.code: f for f in check_human(crit, _human(60, 48, 12, alpha=0.3))}["EVL063"].severity == "error"


def test_cli_results_and_bad_input(session, tmp_path, capsys):
    from tunerail.cli import main

    _review(TestClient(create_app(session)), session, "alice")
    assert main(["review", "results", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["votes"] == session.store.queue_length("alice") and (tmp_path / "review" / "results.json").exists()
    assert main(["review", "results", str(tmp_path / "missing")]) == 2
    assert main(["review", "serve", str(tmp_path), "--pairs", "base:nobody", "--annotators", "x"]) == 2
    assert "no review material" in capsys.readouterr().err


def test_config_rubric_drives_the_form(tmp_path):
    make_material(tmp_path, 4, xss=False)
    cfg = TunerailConfig.model_validate(
        {"review": {"rubric": [{"name": "helpfulness", "description": "Helps?", "scale": 7}], "overlap": 0.0}}
    )
    s = open_session(tmp_path, config=cfg, annotators=["solo"])
    client = TestClient(create_app(s))
    page, csrf = _login(client, s.tokens["solo"])
    assert "helpfulness" in page.text and 'name="q0a" value="7"' in page.text and "correctness" not in page.text
    bad = client.post(page.url.path, data={"csrf": csrf.group(1), "preference": "A", "q0a": "8"})
    assert bad.status_code == 422 and "1-7" in bad.text
    client.post(page.url.path, data={"csrf": csrf.group(1), "preference": "tie", "q0a": "7", "q0b": "6"})
    res = compute_results(s)
    assert res["agreement"]["preference"]["alpha"] is None  # one annotator: reported, not crashed
    assert "two annotators" in res["agreement"]["helpfulness"]["undefined"]


def test_two_annotators_voting_at_once_lose_nothing(session):
    import threading

    import httpx

    from tunerail.review.app import BackgroundServer

    with session.store.connect() as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    errors = []

    def vote_all(name, url):
        try:
            with httpx.Client(base_url=url, timeout=30) as client:
                page = client.get(f"/?token={session.tokens[name]}", follow_redirects=True)
                csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
                for pos in range(session.store.queue_length(name)):
                    r = client.post(f"/item/{pos}", data={"csrf": csrf, "preference": "tie"})
                    assert r.status_code == 303
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    with BackgroundServer(create_app(session)) as server:
        threads = [threading.Thread(target=vote_all, args=(n, server.url)) for n in ("alice", "bob")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    assert len(session.store.votes()) == sum(session.store.queue_length(n) for n in ("alice", "bob"))
