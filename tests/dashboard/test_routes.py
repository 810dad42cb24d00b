"""The dashboard's server side without a browser: scatter down-sampling, the event stream
(resume, only-new, auth), trial pages, downloads and the static files."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import httpx
import pytest

from agents.base import TrialState
from search.sinks import TrialRecord
from search.trials import HvReference
from service.dashboard import queries
from service.dashboard.auth import COOKIE
from service.models import Job, Trial
from tests.dashboard.harness import (
    Service,
    fill_job,
    filled_spec,
    nb201_records,
    sink_for,
)


@pytest.fixture(scope="module")
def tokens(quiet_service: Service) -> dict[str, str]:
    return {"alice": quiet_service.token("alice"), "bob": quiet_service.token("bob")}


@pytest.fixture(scope="module")
def big_job(quiet_service: Service, tokens: dict[str, str]) -> str:
    """600 trials, every 40th failed, written through the SQL sink."""
    return fill_job(quiet_service, tokens["alice"], nb201_records(600, failed_every=40),
                    filled_spec("big", 600))


def events(text: str) -> list[dict[str, Any]]:
    out = []
    for block in text.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key] = value.removeprefix(" ")
        if "event" in fields:
            fields["data"] = json.loads(fields["data"])
            out.append(fields)
    return out


def rows(service: Service, job_id: str) -> list[Trial]:
    from sqlalchemy import select

    with service.db.reading() as session:
        return list(session.scalars(select(Trial).where(Trial.job_id == job_id)
                                    .order_by(Trial.id)).all())


# ---- scatter ---------------------------------------------------------------------------------
def test_scatter_keeps_every_pareto_point_when_down_sampling(
        quiet_service: Service, tokens: dict[str, str], big_job: str) -> None:
    with quiet_service.client(tokens["alice"]) as c:
        full = c.get(f"/dashboard/jobs/{big_job}/scatter", params={"max_points": 5000}).json()
        small = c.get(f"/dashboard/jobs/{big_job}/scatter", params={"max_points": 100}).json()
        front = c.get(f"/jobs/{big_job}/pareto").json()
    stored = rows(quiet_service, big_job)
    complete = [r for r in stored if r.state == "complete" and not r.cached]
    assert full["total"] == len(complete) == small["total"]
    assert full["shown"] == len(complete) and not full["sampled"]
    assert small["sampled"] and small["shown"] <= 100
    front_ids = {t["trial_id"] for t in front["data"]}
    assert front_ids and front_ids <= set(small["t"])
    assert set(small["front"]) == front_ids
    # columns line up with the stored metrics
    by_id = {r.trial_id: r for r in stored}
    for i, t in enumerate(small["t"]):
        assert small["cols"]["metrics.val_acc"][i] == by_id[t].metrics["val_acc"]
        assert small["cols"]["metrics.pixel3_latency"][i] == by_id[t].metrics["pixel3_latency"]
        assert small["f"][i] == int(t in front_ids)
    # the sample spreads over the cloud: its x range is the full range
    xs = full["cols"]["metrics.pixel3_latency"]
    sx = small["cols"]["metrics.pixel3_latency"]
    assert min(sx) == min(xs) and max(sx) >= 0.9 * max(xs)


def test_scatter_rejects_bad_axes_with_the_field(quiet_service: Service,
                                                 tokens: dict[str, str], big_job: str) -> None:
    with quiet_service.client(tokens["alice"]) as c:
        r = c.get(f"/dashboard/jobs/{big_job}/scatter", params={"x": "bogus"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] in ("x", "query.x")
        r = c.get(f"/dashboard/jobs/{big_job}/scatter", params={"y": "metrics.a b"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] in ("y", "query.y")
        r = c.get(f"/dashboard/jobs/{big_job}/scatter",
                  params={"x": "recorded.test_acc", "y": "metrics.val_acc", "color": "none"})
        assert r.status_code == 200
        body = r.json()
        assert body["color"] is None and body["x"] == "recorded.test_acc"


def test_overview_is_gzipped_and_consistent(quiet_service: Service, tokens: dict[str, str],
                                            big_job: str) -> None:
    with quiet_service.client(tokens["alice"]) as c:
        r = c.get(f"/dashboard/jobs/{big_job}/overview")
        hv = c.get(f"/jobs/{big_job}/hypervolume").json()
    assert r.headers["content-encoding"] == "gzip"
    assert int(r.headers["content-length"]) < len(r.content) / 3
    ov = r.json()
    assert [o["metric"] for o in ov["objectives"]] == ["val_acc", "pixel3_latency"]
    assert ov["scatter"]["x"] == "metrics.pixel3_latency"
    assert ov["scatter"]["y"] == "metrics.val_acc"
    # indexed by distinct evaluations, like the progress counter
    assert ov["series"]["hv"] == [[p["evaluations"], p["value"]] for p in hv["data"]]
    best = ov["series"]["best"]
    assert all(b[1] > a[1] and b[0] > a[0] for a, b in zip(best, best[1:], strict=False))
    stored = rows(quiet_service, big_job)
    assert best[-1][1] == max(r.reward for r in stored if r.reward is not None)
    assert ov["cursor"] == cursor_of(quiet_service, big_job)
    assert ov["cursor"].startswith(f"{stored[-1].id}.{len(hv['data'])}.")


def cursor_of(service: Service, job_id: str) -> str:
    with service.db.reading() as session:
        return str(queries.current_cursor(session, job_id))


# ---- trials ----------------------------------------------------------------------------------
def test_trial_pages_sort_filter_and_count_on_the_server(
        quiet_service: Service, tokens: dict[str, str], big_job: str) -> None:
    stored = rows(quiet_service, big_job)
    with quiet_service.client(tokens["alice"]) as c:
        page = c.get(f"/dashboard/jobs/{big_job}/trials",
                     params={"sort": "metrics.val_acc", "order": "desc", "limit": 5,
                             "offset": 5}).json()
        ranked = sorted((r for r in stored if "val_acc" in r.metrics),
                        key=lambda r: (-r.metrics["val_acc"], r.trial_id))
        assert [t["t"] for t in page["data"]] == [r.trial_id for r in ranked[5:10]]
        assert page["count"] == len(stored)

        failed = c.get(f"/dashboard/jobs/{big_job}/trials", params={"state": "failed"}).json()
        assert failed["count"] == sum(r.state == "failed" for r in stored) == 15
        assert all("CUDA out of memory" in t["err"] for t in failed["data"])

        lo, hi = 5.0, 8.0
        ranged = c.get(f"/dashboard/jobs/{big_job}/trials",
                       params={"metric": "metrics.pixel3_latency", "min": lo, "max": hi,
                               "limit": 1000}).json()
        expect = [r.trial_id for r in stored
                  if lo <= r.metrics.get("pixel3_latency", -1) <= hi]
        assert sorted(t["t"] for t in ranged["data"]) == sorted(expect)
        assert ranged["count"] == len(expect)

        front = c.get(f"/dashboard/jobs/{big_job}/trials", params={"front": "true"}).json()
        assert {t["t"] for t in front["data"]} == {r.trial_id for r in stored if r.on_front}

        needle = stored[7].arch_key[1:20]
        found = c.get(f"/dashboard/jobs/{big_job}/trials", params={"q": needle}).json()
        assert found["count"] == sum(needle in r.arch_key for r in stored) >= 1
        by_id = c.get(f"/dashboard/jobs/{big_job}/trials", params={"q": "#123"}).json()
        assert 123 in [t["t"] for t in by_id["data"]]

        # min/max without a metric bound the sort key (here trial_id)
        r = c.get(f"/dashboard/jobs/{big_job}/trials", params={"min": 1, "max": 3})
        assert r.status_code == 200 and [t["t"] for t in r.json()["data"]] == [1, 2, 3]
        r = c.get(f"/dashboard/jobs/{big_job}/trials", params={"min": "nan",
                                                              "metric": "metrics.val_acc"})
        assert r.status_code == 422


def test_trial_detail_has_error_text_and_files(quiet_service: Service,
                                               tokens: dict[str, str], big_job: str) -> None:
    with quiet_service.client(tokens["alice"]) as c:
        t = c.get(f"/dashboard/jobs/{big_job}/trials/39").json()
        assert t["state"] == "failed" and "CUDA out of memory" in t["error"]
        assert t["files"] == [] and t["arch"]
        assert c.get(f"/dashboard/jobs/{big_job}/trials/99999").status_code == 404
        assert c.get(f"/dashboard/jobs/{big_job}/trials/99999999999").status_code == 422


# ---- isolation, sign-in and downloads ----------------------------------------------------------
def test_other_users_get_404_on_every_dashboard_route(
        quiet_service: Service, tokens: dict[str, str], big_job: str) -> None:
    with quiet_service.client(tokens["bob"]) as c:
        for path in ("overview", "scatter", "series", "trials", "trials/1",
                     "artifacts/results.json"):
            assert c.get(f"/dashboard/jobs/{big_job}/{path}").status_code == 404, path
        assert c.get(f"/jobs/{big_job}/events").status_code == 404
    with httpx.Client(base_url=f"{quiet_service.url}/api/v1") as anon:
        assert anon.get(f"/dashboard/jobs/{big_job}/overview").status_code == 401
        assert anon.get(f"/jobs/{big_job}/events").status_code == 401
        # a token in the query string is not accepted (it would end up in access logs)
        r = anon.get(f"/jobs/{big_job}/events", params={"token": tokens["alice"]})
        assert r.status_code == 401


def test_sign_in_sets_a_strict_http_only_cookie_for_stream_and_downloads(
        quiet_service: Service, tokens: dict[str, str], big_job: str) -> None:
    with httpx.Client(base_url=f"{quiet_service.url}/api/v1") as c:
        assert c.post("/dashboard/session",
                      headers={"Authorization": "Bearer nope"}).status_code == 401
        r = c.post("/dashboard/session", headers={"Authorization": f"Bearer {tokens['alice']}"})
        assert r.status_code == 200 and r.json()["name"] == "alice"
        cookie = r.headers["set-cookie"]
        assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie
        assert "SameSite=strict" in cookie.replace("Strict", "strict")
        assert "Path=/api/v1" in cookie
        # the cookie alone authenticates the stream and downloads, not the other routes
        done = c.get(f"/jobs/{big_job}/events")
        assert done.status_code == 200 and events(done.text)[-1]["event"] == "end"
        file = c.get(f"/dashboard/jobs/{big_job}/artifacts/results.json")
        assert file.status_code == 200 and json.loads(file.content)["status"] == "succeeded"
        assert c.get(f"/dashboard/jobs/{big_job}/artifacts/../../lightsearch.db"
                     ).status_code == 404
        assert c.get(f"/dashboard/jobs/{big_job}/artifacts/%2e%2e/%2e%2e/lightsearch.db"
                     ).status_code == 404
        assert c.get(f"/jobs/{big_job}").status_code == 401
        assert c.delete("/dashboard/session").status_code == 204
        assert c.get(f"/jobs/{big_job}/events").status_code == 401


# ---- the event stream --------------------------------------------------------------------------
def test_stream_resumes_after_a_cursor_and_ends(quiet_service: Service,
                                                tokens: dict[str, str], big_job: str) -> None:
    stored = rows(quiet_service, big_job)
    cut = stored[400].id
    with quiet_service.client(tokens["alice"]) as c:
        got = events(c.get(f"/jobs/{big_job}/events", params={"since": f"{cut}.0.0"}).text)
        ids = [t["t"] for e in got if e["event"] == "update" for t in e["data"].get("trials", [])]
        assert ids == [r.trial_id for r in stored if r.id > cut]
        assert got[-1]["event"] == "end" and got[-1]["data"]["status"] == "succeeded"
        assert got[-1]["id"] == cursor_of(quiet_service, big_job)
        # Last-Event-ID (a browser reconnecting) wins over ?since
        again = events(c.get(f"/jobs/{big_job}/events", params={"since": "0.0.0"},
                             headers={"Last-Event-ID": got[-1]["id"]}).text)
        assert not any(e["data"].get("trials") or e["data"].get("hv")
                       for e in again if e["event"] == "update")
        r = c.get(f"/jobs/{big_job}/events", params={"since": "x"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] in ("since",
                                                                           "query.since")


def test_stream_sends_each_new_trial_once_while_the_job_runs(
        quiet_service: Service, tokens: dict[str, str]) -> None:
    records = nb201_records(60, seed=5)
    spec = filled_spec("streamed", 60)
    job_id = fill_job(quiet_service, tokens["alice"], records[:20], spec, finish=None)
    received: list[dict[str, Any]] = []
    opened = threading.Event()

    def read() -> None:
        with quiet_service.client(tokens["alice"]) as c, \
                c.stream("GET", f"/jobs/{job_id}/events", timeout=60) as resp:
            opened.set()
            buf = ""
            for chunk in resp.iter_text():
                buf += chunk
                *done, buf = buf.split("\n\n")
                received.extend(events("\n\n".join(done)))
                if received and received[-1]["event"] == "end":
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert opened.wait(10)
    sink = sink_for(quiet_service, job_id, spec, records[:20])
    for rec in records[20:]:
        sink.on_trial(rec)
        time.sleep(0.02)
    sink.on_end("succeeded")
    reader.join(30)
    assert not reader.is_alive()
    ids = [t["t"] for e in received if e["event"] == "update" for t in e["data"].get("trials", [])]
    assert sorted(ids) == list(range(60)) and len(ids) == len(set(ids))
    assert len([e for e in received if e["event"] == "update" and e["data"].get("trials")]) > 1
    fronts = [e["data"]["front"] for e in received if "front" in e["data"]]
    final = sorted(r.trial_id for r in rows(quiet_service, job_id) if r.on_front)
    assert fronts[-1] == final
    # hypervolume: replaying the events gives the stored history
    hv: list[list[float]] = []
    for e in received:
        part = e["data"].get("hv")
        if part:
            hv = part["points"] if part["reset"] else sorted(
                {p[0]: p for p in hv + part["points"]}.values())
    with quiet_service.client(tokens["alice"]) as c:
        stored_hv = c.get(f"/jobs/{job_id}/hypervolume").json()["data"]
    assert hv == [[p["evaluations"], p["value"]] for p in stored_hv]
    assert received[-1]["data"]["status"] == "succeeded"


def test_hv_after_reports_a_rewritten_history_as_reset(quiet_service: Service,
                                                       tokens: dict[str, str]) -> None:
    # a resumed job whose loop fixes another reference point (its first batch differs) makes
    # the worker rewrite the history; a client holding an old cursor must replace, not append
    base = [r for r in nb201_records(200, seed=9) if r.metrics][:30]
    for i, r in enumerate(base):
        r.trial_id, r.evaluation_index = i, i + 1
    job_id = fill_job(quiet_service, tokens["alice"], base, filled_spec("reset", 40),
                      finish=None)
    with quiet_service.db.reading() as session:
        before = queries.current_cursor(session, job_id)
    sink_for(quiet_service, job_id, filled_spec("reset", 40), base).on_reference(
        HvReference((50.0, 40.0), "spec,spec"))
    with quiet_service.db.reading() as session:
        reset, points, count, _ = queries.hv_after(session, job_id, before)
        full = queries.series(session, session.get(Job, job_id))["hv"]
        now = queries.current_cursor(session, job_id)
        assert queries.hv_after(session, job_id, now)[:2] == (False, [])
    assert before.hv > 0 and reset and points == full and count == len(full)


# ---- static files ------------------------------------------------------------------------------
def test_page_and_assets_are_local_versioned_and_compressed(quiet_service: Service) -> None:
    with httpx.Client(base_url=quiet_service.url) as c:
        index = c.get("/")
        assert index.status_code == 200 and index.headers["cache-control"] == "no-cache"
        html = index.text
        assert "{{" not in html  # every placeholder filled
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
        urls = re.findall(r"""(?:src|href)="(/static/[^"]+)""", html)
        importmap = json.loads(re.search(r'<script type="importmap">(.*?)</script>', html,
                                         re.S).group(1))["imports"]
        assert "/static/js/app.js" in importmap and "/static/js/job.js" in importmap
        total = 0
        for url in [*urls, *importmap.values()]:
            assert "?v=" in url
            r = c.get(url, headers={"Accept-Encoding": "gzip"})
            assert r.status_code == 200, url
            assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert r.headers["content-encoding"] == "gzip"
            total += int(r.headers["content-length"])
            if url in importmap.values():  # our modules name no other host (an XML
                # namespace is a name, not a request)
                code = r.text.replace('"http://www.w3.org/2000/svg"', "")
                assert not re.search(r"https?://", code), url
        # the charts are the page's own: no chart library, the whole page stays small
        assert "plotly" not in html.lower() and "/static/js/plot.js" in importmap
        assert total < 150_000, total
        app = importmap["/static/js/app.js"]
        r = c.get(app)
        again = c.get(app, headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304
        assert c.get("/static/../service/main.py").status_code == 404
        assert c.get("/static/js/../../auth.py").status_code == 404


# ---- filters, CSV export, files, analysis views ------------------------------------------------
def all_pages(c: httpx.Client, job_id: str, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        page = c.get(f"/dashboard/jobs/{job_id}/trials",
                     params={**params, "offset": len(out), "limit": 1000}).json()
        out += page["data"]
        if len(out) >= page["count"]:
            return out


def test_brushing_filter_and_csv_equal_the_filtered_trials(quiet_service: Service,
                                                           tokens: dict[str, str],
                                                           big_job: str) -> None:
    where = {"ranges": {"metrics.val_acc": [80, 95]},
             "choices": {"edge_0_1": ["nor_conv_3x3", "skip_connect"]}}
    params = {"where": json.dumps(where), "sort": "metrics.val_acc", "order": "desc"}
    with quiet_service.client(tokens["alice"]) as c:
        picked = all_pages(c, big_job, **params)
        every = rows(quiet_service, big_job)
        want = sorted((t for t in every if t.state == "complete"
                       and 80 <= t.metrics["val_acc"] <= 95
                       and t.arch["edge_0_1"] in ("nor_conv_3x3", "skip_connect")),
                      key=lambda t: (-t.metrics["val_acc"], t.trial_id))
        assert [t["t"] for t in picked] == [t.trial_id for t in want] and 20 < len(want) < 400
        r = c.get(f"/dashboard/jobs/{big_job}/trials.csv", params=params)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        import csv
        import io
        reader = csv.reader(io.StringIO(r.text))
        header = next(reader)
        # metric columns carry the registry's unit: "metrics.pixel3_latency [ms]"
        registry = c.get(f"/jobs/{big_job}").json().get("metrics") or {}
        for name, info in registry.items():
            if info.get("unit") and f"metrics.{name}" in [h.split(" [")[0] for h in header]:
                assert f"metrics.{name} [{info['unit']}]" in header, header
        table = [dict(zip([h.split(" [")[0] for h in header], row, strict=True))
                 for row in reader]
        assert [int(row["trial_id"]) for row in table] == [t["t"] for t in picked]
        for row, t in zip(table, picked, strict=True):
            assert row["state"] == t["s"] and float(row["reward"]) == t["r"]
            for name, value in t["m"].items():
                assert float(row[f"metrics.{name}"]) == value
        # a bad filter names the field
        for bad in ("{", '{"ranges": {"metrics.val_acc": [1]}}', '{"other": 1}'):
            r = c.get(f"/dashboard/jobs/{big_job}/trials", params={"where": bad})
            assert r.status_code == 422 and "where" in r.text, r.text
        r = c.get(f"/dashboard/jobs/{big_job}/trials.csv", params={"where": "["})
        assert r.status_code == 422 and "where" in r.text


def test_hide_repeats_drops_cached_trials(quiet_service: Service,
                                          tokens: dict[str, str]) -> None:
    records = nb201_records(20)
    repeats = [TrialRecord(20 + i, r.arch, r.arch_key, TrialState.COMPLETE, reward=r.reward,
                           metrics=r.metrics, cached=True, evaluation_index=r.evaluation_index)
               for i, r in enumerate(records[:15]) if r.state == TrialState.COMPLETE]
    job = fill_job(quiet_service, tokens["alice"], records + repeats, filled_spec("rep", 20))
    with quiet_service.client(tokens["alice"]) as c:
        shown = c.get(f"/dashboard/jobs/{job}/trials", params={"limit": 100}).json()
        hidden = c.get(f"/dashboard/jobs/{job}/trials",
                       params={"limit": 100, "repeats": "false"}).json()
    assert shown["count"] == len(records) + len(repeats)
    assert hidden["count"] == len(records) and not any(t["c"] for t in hidden["data"])


def test_analysis_views_of_a_job(quiet_service: Service, tokens: dict[str, str],
                                 big_job: str) -> None:
    with quiet_service.client(tokens["alice"]) as c:
        imp = c.get(f"/dashboard/jobs/{big_job}/importance").json()
        par = c.get(f"/dashboard/jobs/{big_job}/parallel", params={"max_rows": 100}).json()
        sl = c.get(f"/dashboard/jobs/{big_job}/slices").json()
        bad = c.get(f"/dashboard/jobs/{big_job}/slices", params={"metric": "metrics.nope"})
        other = httpx.get(f"{quiet_service.url}/api/v1/dashboard/jobs/{big_job}/importance",
                          headers={"Authorization": f"Bearer {tokens['bob']}"})
    assert other.status_code == 404
    assert bad.status_code == 422 and "metric" in bad.text
    edges = {f"edge_{a}_{b}" for a, b in ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))}
    assert imp["evaluator"].startswith("PED-ANOVA")
    assert [o["metric"] for o in imp["objectives"]] == ["val_acc", "pixel3_latency"]
    for o in imp["objectives"]:
        assert set(o["values"]) == edges and abs(sum(o["values"].values()) - 1) < 1e-4
    # on NAS-Bench-201, which operations sit on the edges decides accuracy: not all equal
    acc = imp["objectives"][0]["values"]
    assert max(acc.values()) > 2 * min(acc.values())
    complete = [t for t in rows(quiet_service, big_job) if t.state == "complete"]
    front = {t.trial_id for t in complete if t.on_front}
    assert par["total"] == len(complete) and par["shown"] == 100
    assert front <= set(par["t"])
    dims = {d["key"]: d for d in par["dims"]}
    assert {f"arch.{e}" for e in edges} <= set(dims) and "metrics.val_acc" in dims
    by_id = {t.trial_id: t for t in complete}
    d = dims["arch.edge_0_1"]
    for t, code in zip(par["t"], d["values"], strict=True):
        assert d["choices"][code] == by_id[t].arch["edge_0_1"]
    assert sl["metric"] == "val_acc" and {s["decision"] for s in sl["decisions"]} == edges
    for s in sl["decisions"]:
        assert sum(ch["n"] for ch in s["choices"]) == len(complete)
        for ch in s["choices"]:
            if ch["n"]:
                assert ch["min"] <= ch["q"][0] <= ch["q"][2] <= ch["q"][4] <= ch["max"]


def test_job_files_say_what_each_is_and_trial_detail_lists_exported_models(
        quiet_service: Service, tokens: dict[str, str]) -> None:
    job = fill_job(quiet_service, tokens["alice"], nb201_records(10), filled_spec("files", 10))
    folder = quiet_service.settings.artifact_dir / job / "models" / "trial3"
    folder.mkdir(parents=True)
    (folder / "trial3.onnx").write_bytes(b"x" * 1234)
    (folder / "trial3_card.json").write_text("{}")
    with quiet_service.client(tokens["alice"]) as c:
        files = c.get(f"/dashboard/jobs/{job}/files").json()["data"]
        detail = c.get(f"/dashboard/jobs/{job}/trials/3").json()
        other = c.get(f"/dashboard/jobs/{job}/trials/4").json()
    by_path = {f["path"]: f for f in files}
    assert by_path["models/trial3/trial3.onnx"] == {
        "name": "trial3.onnx", "path": "models/trial3/trial3.onnx", "size": 1234,
        "what": "ONNX model", "trial": 3}
    assert by_path["results.json"]["what"].startswith("Search results")
    assert {f["path"] for f in detail["files"]} == {"models/trial3/trial3.onnx",
                                                    "models/trial3/trial3_card.json"}
    assert other["files"] == []
