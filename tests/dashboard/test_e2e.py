"""The dashboard in a real browser (Debian's Chromium via Playwright) against a real service:
sign-in and isolation, the submit form and its field errors, a live job page, downloads,
the trials table and trial detail, cancel, and the per-layer policy chart.

Every page refuses requests to any other host (the dashboard must work without internet);
screenshots of the job page go to ``test-output/dashboard/``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from agents.base import TrialState
from search.sinks import TrialRecord
from tests.dashboard.harness import (
    Service,
    fill_job,
    filled_spec,
    job_spec,
    nb201_records,
)

pytestmark = pytest.mark.slow  # a browser and a service per module: ~1-2 min in all


def sign_in_page(open_page: Any, service: Service, token: str, fragment: str = "#/jobs") -> Any:
    p = open_page(service, token)
    page = p.goto(fragment)
    page.wait_for_selector("#user-name")
    return p


def api(service: Service, token: str, path: str, **params: Any) -> Any:
    with service.client(token) as c:
        r = c.get(path, params=params)
        r.raise_for_status()
        return r.json()


def front_ids(service: Service, token: str, job_id: str) -> list[int]:
    return [t["trial_id"] for t in api(service, token, f"/jobs/{job_id}/pareto")["data"]]


def painted_pixels(page: Any) -> int:
    """Non-white pixels of the Pareto canvas inside its plot area (grid lines are lighter)."""
    return page.evaluate("""() => { const el = document.querySelector('#pareto-plot');
        const c = el.querySelector('canvas'), g = el.chart.geom, k = c.width / c.clientWidth;
        const d = c.getContext('2d').getImageData(Math.ceil((g.left + 1) * k),
            Math.ceil((g.top + 1) * k), Math.floor((g.w - 2) * k), Math.floor((g.h - 2) * k)).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4)
          if (d[i + 3] && (d[i] < 235 || d[i + 1] < 235 || d[i + 2] < 235)) n++;
        return n; }""")


def pixel_is_painted(page: Any, x: float, y: float) -> bool:
    """The canvas pixel at page position (x, y) is not background."""
    return page.evaluate("""([x, y]) => { const c = document.querySelector('#pareto-plot canvas');
        const b = c.getBoundingClientRect(), k = c.width / c.clientWidth;
        const d = c.getContext('2d').getImageData(Math.round((x - b.left) * k),
            Math.round((y - b.top) * k), 1, 1).data;
        return d[3] > 0 && (d[0] < 235 || d[1] < 235 || d[2] < 235); }""", [x, y])


# ---- sign-in and isolation -------------------------------------------------------------------
def test_sign_in_and_a_user_sees_only_their_jobs(open_page: Any, quiet_service: Service) -> None:
    alice, bob = quiet_service.token("alice-e2e"), quiet_service.token("bob-e2e")
    mine = fill_job(quiet_service, alice, nb201_records(30), filled_spec("alice-job", 30))
    theirs = fill_job(quiet_service, bob, nb201_records(30), filled_spec("bob-job", 30))
    p = open_page(quiet_service, None)
    page = p.goto("#/jobs")
    page.fill("#token", "ls_not-a-token")
    page.click("button[type=submit]")
    page.wait_for_selector("#signin-error:has-text('not valid')")
    page.fill("#token", alice)
    page.click("button[type=submit]")
    page.wait_for_selector(f"tr[data-job-id='{mine}']")
    assert page.locator(f"tr[data-job-id='{theirs}']").count() == 0
    assert page.inner_text("#user-name") == "alice-e2e"
    # the token survives a reload (localStorage); another user's job is simply not there
    page.goto(f"{quiet_service.url}/#/jobs/{theirs}")
    page.wait_for_selector("#job-missing:has-text('Job not found')")
    page.goto(f"{quiet_service.url}/#/jobs/{mine}")
    page.wait_for_selector("#pareto-plot[data-drawn]")
    page.click("#sign-out")
    page.wait_for_selector("#token")
    assert page.evaluate("localStorage.getItem('lightsearch.token')") is None


# ---- the submit form ---------------------------------------------------------------------------
def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines()) if needle in line)


def test_a_bad_job_spec_shows_the_error_next_to_the_field(open_page: Any,
                                                           quiet_service: Service) -> None:
    token = quiet_service.token("carol-e2e")
    page = sign_in_page(open_page, quiet_service, token).page
    page.click("#new-job")
    spec = job_spec("bad-agent")
    spec["agent"] = {"name": "ppo"}
    text = json.dumps(spec, indent=2)
    page.fill("#spec-text", text)
    page.click("#submit-job")
    mark = page.wait_for_selector(".field-error[data-field='agent.name']")
    assert int(mark.get_attribute("data-line")) == line_of(text, '"ppo"')
    assert "unknown agent 'ppo'" in mark.inner_text()
    item = page.inner_text("#spec-errors li[data-field='agent.name']")
    assert "valid agents:" in item and "random" in item and "evolution" in item
    # the mark sits on that line of the editor, beside the text
    box, area = mark.bounding_box(), page.locator("#spec-text").bounding_box()
    line_top = area["y"] + 10 + 20 * line_of(text, '"ppo"') - page.evaluate(
        "document.querySelector('#spec-text').scrollTop")
    assert abs(box["y"] - line_top) <= 4 and box["x"] > area["x"] + area["width"] / 3

    spec = job_spec("bad-budget")
    spec["budget"]["evaluations"] = 0
    text = json.dumps(spec, indent=2)
    page.fill("#spec-text", text)
    assert page.locator(".field-error").count() == 0  # editing clears stale marks
    page.click("#submit-job")
    mark = page.wait_for_selector(".field-error[data-field='budget.evaluations']")
    assert int(mark.get_attribute("data-line")) == line_of(text, '"evaluations": 0')
    assert "greater than or equal to 1" in mark.inner_text()

    broken = text.replace('"seed": 3', '"seed" 3')
    page.fill("#spec-text", broken)
    page.click("#submit-job")
    mark = page.wait_for_selector(".field-error")
    assert int(mark.get_attribute("data-line")) == line_of(broken, '"seed" 3')
    assert "Invalid JSON" in mark.inner_text()
    p_jobs = api(quiet_service, token, "/jobs")
    assert p_jobs["count"] == 0  # nothing was created


# ---- a live job --------------------------------------------------------------------------------
def test_a_job_submitted_through_the_form_appears_and_its_page_updates_live(
        open_page: Any, service: Service) -> None:
    token = service.token("dave-e2e")
    p = sign_in_page(open_page, service, token)
    page = p.page
    page.click("#new-job")
    spec = job_spec("live-from-form", evaluations=60, delay_s=0.25, batch_size=1)
    page.fill("#spec-text", json.dumps(spec, indent=2))
    page.click("#submit-job")
    row = page.wait_for_selector("#jobs-table tr[data-job-id]:has-text('live-from-form')")
    job_id = row.get_attribute("data-job-id")
    assert page.locator("#job-form").count() == 0  # the form closed
    row.click()
    page.wait_for_selector("#pareto-plot")
    page.evaluate("window.__sameDocument = true")
    # record, in the page, every redraw of the Pareto plot and what the header said then
    page.evaluate("""() => {
        window.__seen = [];
        const plot = document.querySelector('#pareto-plot');
        new MutationObserver(() => window.__seen.push({
            points: Number(plot.dataset.points || 0),
            hv: Number(document.querySelector('#hv-plot').dataset.points || 0),
            status: document.querySelector('.page-head .badge').textContent,
        })).observe(plot, {attributes: true, attributeFilter: ['data-points']});
    }""")
    shot = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status = api(service, token, f"/jobs/{job_id}")["status"]
        if shot is None and status == "running" and page.evaluate(
                "new Set(window.__seen.map(s => s.points)).size") >= 3:
            shot = p.shot("job-live")
        if status in ("succeeded", "failed", "cancelled", "exhausted"):
            break
        time.sleep(0.2)
    seen = page.evaluate("window.__seen")
    running = [s for s in seen if s["status"] == "running"]
    seen_points = [s["points"] for s in running]
    seen_hv = [s["hv"] for s in running]
    assert status == "succeeded"
    # updated while running, by the stream: several distinct, growing counts on one page
    assert len(set(seen_points)) >= 3 and seen_points == sorted(seen_points)
    assert len(set(seen_hv)) >= 2
    assert page.evaluate("window.__sameDocument") is True
    assert shot is not None and shot.stat().st_size > 20_000
    page.wait_for_selector("#job-stats ~ * .badge, .page-head .badge.succeeded")
    final = api(service, token, f"/dashboard/jobs/{job_id}/scatter")
    page.wait_for_function(f"document.querySelector('#pareto-plot').dataset.points == "
                           f"'{final['shown']}'")
    hv = api(service, token, f"/jobs/{job_id}/hypervolume")["data"]
    page.wait_for_function(f"document.querySelector('#hv-plot').dataset.points == '{len(hv)}'")
    front = page.get_attribute("#pareto-plot", "data-front")
    assert int(front) == len(final["front"])
    page.wait_for_selector("#live[data-state='ended']")
    p.shot("job-finished")
    assert not p.errors, p.errors


def test_cancel_stops_a_running_job(open_page: Any, service: Service) -> None:
    token = service.token("erin-e2e")
    job = service.submit(token, job_spec("to-cancel", evaluations=5000, delay_s=0.2))
    service.wait(token, job["id"], ("running",))
    page = sign_in_page(open_page, service, token, f"#/jobs/{job['id']}").page
    page.wait_for_selector("#live[data-state='live']")
    page.wait_for_selector("#pareto-plot[data-drawn]")
    page.click("#cancel-job")
    page.wait_for_selector("#cancel-job.confirm")  # a second click within 8 s confirms
    page.click("#cancel-job")
    page.wait_for_selector("#cancel-job[data-label='Cancelling…'], .page-head .badge.cancelled")
    done = service.wait(token, job["id"], ("cancelled", "succeeded", "failed"), timeout=60)
    assert done["status"] == "cancelled" and done["progress"]["evaluations"] < 5000
    page.wait_for_selector(".page-head .badge.cancelled", timeout=60_000)  # via the stream
    assert page.locator("#cancel-job").count() == 0


# ---- downloads ---------------------------------------------------------------------------------
def test_downloads_deliver_the_files(open_page: Any, service: Service, tmp_path: Path) -> None:
    token = service.token("frank-e2e")
    models = service.settings.data_dir / "models-frank"
    job = service.submit(token, job_spec("with-models", evaluations=16, delay_s=0.0,
                                         model_dir=str(models)))
    done = service.wait(token, job["id"])
    assert done["status"] == "succeeded"
    page = sign_in_page(open_page, service, token, f"#/jobs/{job['id']}").page
    # the job's file list has arrived (it relabels the best trial's links with their sizes)
    page.wait_for_selector("#downloads a[data-path='results.json']")
    page.wait_for_selector("#best-downloads a[download]")
    with page.expect_download() as info:
        page.click("#best-downloads a[download]")
    got = tmp_path / "best.json"
    info.value.save_as(got)
    best = json.loads(got.read_text())
    assert best["arch"] == done["best"]["arch"]
    assert best["metrics"]["val_acc"] == done["best"]["metrics"]["val_acc"]

    with page.expect_download() as info:
        page.click("#downloads a[data-path='results.json']")
    info.value.save_as(tmp_path / "results.json")
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "succeeded"

    # any Pareto point: the trials table, filtered to the front, has each point's files
    page.check("#trial-front")
    page.wait_for_selector("#trials-table tbody tr .badge.front")
    rows = page.locator("#trials-table tbody tr")
    front = api(service, token, f"/jobs/{job['id']}/pareto")["data"]
    assert rows.count() == len(front)
    last = front[-1]
    with page.expect_download() as info:
        page.click(f"#trials-table tr[data-trial='{last['trial_id']}'] a[download]")
    info.value.save_as(tmp_path / "point.json")
    assert json.loads((tmp_path / "point.json").read_text())["arch"] == last["arch"]


# ---- trials table, trial detail, the plot's click ------------------------------------------------
def test_trials_table_pages_sorts_filters_and_opens_trials(open_page: Any,
                                                           quiet_service: Service) -> None:
    token = quiet_service.token("gina-e2e")
    job_id = fill_job(quiet_service, token, nb201_records(300, seed=2, failed_every=25),
                      filled_spec("table", 300))
    p = sign_in_page(open_page, quiet_service, token, f"#/jobs/{job_id}")
    page = p.page
    page.wait_for_selector("#trials-table")
    assert page.inner_text("#trials-range") == "1–25 of 300"
    page.click("#trials-next")
    page.wait_for_selector("#trials-range:has-text('26–50 of 300')")
    page.click("th[data-sort='reward']")
    best = api(quiet_service, token, f"/dashboard/jobs/{job_id}/trials", sort="reward",
               order="desc", limit=1)["data"][0]
    page.wait_for_selector(f"#trials-table tbody tr:first-child[data-trial='{best['t']}']")
    assert page.inner_text("#trials-range").startswith("1–25")
    page.select_option("#trial-state", "failed")
    page.wait_for_selector("#trials-range:has-text('of 12')")
    states = page.eval_on_selector_all("#trials-table tbody tr",
                                       "rs => rs.map(r => r.dataset.state)")
    assert states == ["failed"] * 12
    page.click("#trials-table tbody tr:first-child")
    page.wait_for_selector("#trial-drawer #trial-error:has-text('CUDA out of memory')")
    p.shot("trial-failed", full_page=False)
    page.keyboard.press("Escape")
    page.wait_for_selector("#trial-drawer", state="detached")

    # the Pareto plot painted its points: every drawn point is inside the plot, and the
    # canvas under a Pareto point is not background
    page.wait_for_selector("#pareto-plot[data-drawn]")
    plot = page.evaluate("""() => { const d = document.querySelector('#pareto-plot').dataset;
        return {points: +d.points, painted: +d.painted, front: +d.front}; }""")
    shown = api(quiet_service, token, f"/dashboard/jobs/{job_id}/scatter")["shown"]
    assert plot["points"] == shown > 200
    assert plot["front"] == len(front_ids(quiet_service, token, job_id))
    assert plot["painted"] >= plot["points"]  # (+1: the best trial's star)
    assert painted_pixels(page) > 2_000

    # hovering a Pareto point shows its trial, metrics and architecture; a click opens it
    front = set(front_ids(quiet_service, token, job_id))
    page.locator("#pareto-plot").scroll_into_view_if_needed()
    at = page.evaluate("document.querySelector('#pareto-plot').chart"
                       ".locate((p, layer) => layer === 'front')")
    assert at is not None and at["layer"] == "front"
    assert pixel_is_painted(page, at["x"], at["y"])
    page.mouse.move(at["x"], at["y"])
    tip = page.wait_for_selector("#pareto-plot .chart-tip:has-text('Trial #')")
    text = tip.inner_text()
    shown = int(page.get_attribute("#pareto-plot", "data-hover-point"))
    assert shown in front and f"Trial #{shown}" in text and "Pareto" in text
    registry = api(quiet_service, token, f"/jobs/{job_id}").get("metrics") or {}
    for name in ("val_acc", "pixel3_latency"):  # the registry's label, or the raw name
        assert (registry[name]["label"] if name in registry else name) in text
    arch = api(quiet_service, token, f"/dashboard/jobs/{job_id}/trials/{shown}")["arch_key"]
    assert arch.split("+")[0][:20] in text
    page.mouse.click(at["x"], at["y"])
    drawer = page.wait_for_selector("#trial-drawer")
    assert int(drawer.get_attribute("data-trial")) == shown
    page.wait_for_selector("#trial-drawer .badge.front")
    page.wait_for_selector("#trial-layers")
    p.shot("trial-pareto-point", full_page=False)


# ---- compression: the per-layer policy of the best trial ----------------------------------------
def test_policy_chart_shows_the_best_trials_per_layer_decisions(open_page: Any,
                                                                 quiet_service: Service) -> None:
    token = quiet_service.token("hana-e2e")
    layers = ["conv1", "layer1.0.conv1", "layer1.0.conv2", "layer2.0.conv1", "fc"]
    records = []
    for i in range(12):
        arch: dict[str, Any] = {}
        for j, layer in enumerate(layers):
            arch[f"prune:{layer}"] = round(((i + j) % 5) / 10, 2)
            arch[f"bits:{layer}"] = [8, 4, 2][(i + j) % 3]
        acc = 90.0 - i * 0.5
        records.append(TrialRecord(i, arch, f"policy-{i}", TrialState.COMPLETE, reward=acc,
                                   metrics={"val_acc": acc, "pixel3_latency": 10.0 - i * 0.6},
                                   evaluation_index=i + 1))
    # per-layer decisions named "control:layer", as the compression space names them
    job_id = fill_job(quiet_service, token, records, filled_spec("compress-like", 12),
                      results=False)
    p = sign_in_page(open_page, quiet_service, token, f"#/jobs/{job_id}")
    page = p.page
    page.wait_for_selector("#policy-plot[data-trial='0']")
    bars = page.evaluate("""() => [...document.querySelectorAll('#policy-plot rect.bar')]
        .map(r => ({group: r.dataset.group, x: r.dataset.label, y: +r.dataset.value,
                    h: r.getBoundingClientRect().height}))""")
    for control, values in (("prune", [records[0].arch[f"prune:{x}"] for x in layers]),
                            ("bits", [records[0].arch[f"bits:{x}"] for x in layers])):
        drawn = [b for b in bars if b["group"] == control]
        assert [b["x"] for b in drawn] == layers
        assert [b["y"] for b in drawn] == values
        # taller bars for larger values (a bar for 0 is a hairline)
        order = sorted(range(len(values)), key=lambda i: values[i])
        heights = [drawn[i]["h"] for i in order]
        assert heights == sorted(heights) and heights[-1] > 20
    assert [b["group"] for b in bars][:1] == ["prune"] and len(bars) == 2 * len(layers)
    p.shot("policy")
    # the bars follow the card's width when the window is resized
    width = lambda: page.evaluate(  # noqa: E731
        "() => document.querySelector('#policy-plot svg.bars').getAttribute('width')")
    before = float(width())
    viewport = page.viewport_size
    page.set_viewport_size({"width": int(viewport["width"] * 0.6), "height": viewport["height"]})
    page.wait_for_function(
        f"() => +document.querySelector('#policy-plot svg.bars').getAttribute('width') < {before}",
        timeout=10_000)
    assert page.locator("#policy-plot rect.bar").count() == 2 * len(layers)
