"""The dashboard at desktop (1400x900) and phone (390x844) sizes in Debian's Chromium: no page
wider than the screen (sign-in, jobs, the open New-job form, devices, a job, its analysis
views, a trial, compare), axis titles with units from the metric registry (Pareto, parallel
coordinates, slices, compare), why each job stopped, repeats, empty states, the analysis views
(importance, parallel coordinates whose brushes filter the table, slices), the CSV export
against the API, readable architectures (real MnasNet samples as a block table), a
compression job's target line, the same exported model files on the job page and in the trial
drawer, the owner's note on a job, a tap on the Pareto chart, comparing jobs, dark mode, and
live against reload point counts.

Screenshots go to ``test-output/dashboard/`` (kept as CI artifacts); look at them."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from agents.base import TrialState
from search.sinks import TrialRecord
from tests.dashboard.harness import Service, fill_job, filled_spec, nb201_records, sink_for

pytestmark = pytest.mark.slow  # a browser and a service per module

SIZES = {"desktop": (1400, 900), "phone": (390, 844)}


def api(service: Service, token: str, path: str, **params: Any) -> Any:
    with service.client(token) as c:
        r = c.get(path, params=params)
        r.raise_for_status()
        return r.json()


def open_at(open_page: Any, service: Service, token: str, fragment: str, size: str,
            **options: Any) -> Any:
    p = open_page(service, token, viewport=SIZES[size], touch=size == "phone", **options)
    p.goto(fragment)
    p.page.wait_for_selector("#user-name", state="attached")
    return p


def fits(page: Any) -> None:
    """Nothing makes the page scroll sideways (tables scroll inside their cards)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    inner = page.evaluate("window.innerWidth")
    if width > inner:
        wide = page.evaluate("""() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1
                         && !e.closest('.table-wrap, .pc-scroll'))
            .slice(0, 5).map(e => e.tagName + '.' + e.className + '#' + e.id)""")
        raise AssertionError(f"page is {width}px wide in a {inner}px window: {wide}")


def visible_in_viewport(page: Any, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    size = page.viewport_size
    return box is not None and box["x"] >= 0 and box["y"] >= 0 \
        and box["x"] + box["width"] <= size["width"] + 0.5 and box["width"] > 0


def drawer_in_place(page: Any) -> None:
    """The trial drawer slides in: wait until its close button has come fully on screen (a
    loaded machine may still be animating when the drawer appears); a drawer that never
    fits fails here after 10 s."""
    page.wait_for_function("""() => { const b = document.querySelector('#close-trial')
        .getBoundingClientRect(); return b.width > 0 && b.x >= 0 && b.y >= 0
        && b.x + b.width <= window.innerWidth + 0.5; }""", timeout=10_000)


@pytest.fixture(scope="module")
def owner(quiet_service: Service) -> str:
    return quiet_service.token("vera-views")


@pytest.fixture(scope="module")
def jobs(quiet_service: Service, owner: str) -> dict[str, str]:
    """A finished 400-trial job (failed and invalid trials among them), one that failed, one
    cancelled, one mostly repeats, and a compression-like one."""
    out = {"main": fill_job(quiet_service, owner, nb201_records(400, seed=4, failed_every=30),
                            filled_spec("nb201-main", 400))}
    out["failed"] = fill_job(quiet_service, owner, nb201_records(12, seed=5),
                             filled_spec("crashed", 40), finish="failed")
    out["cancelled"] = fill_job(quiet_service, owner, nb201_records(8, seed=6),
                                filled_spec("stopped", 40), finish="cancelled")
    base = [r for r in nb201_records(12, seed=7) if r.state == TrialState.COMPLETE]
    repeats = [TrialRecord(len(base) + i, base[i % len(base)].arch, base[i % len(base)].arch_key,
                           TrialState.COMPLETE, reward=base[i % len(base)].reward,
                           metrics=base[i % len(base)].metrics, cached=True,
                           evaluation_index=len(base)) for i in range(60)]
    out["repeats"] = fill_job(quiet_service, owner, base + repeats, filled_spec("loops", 40))
    layers = ["conv1", "layer1.0.conv1", "layer1.0.conv2", "fc"]
    policy = []
    for i in range(6):
        arch = {f"prune:{x}": round(((i + j) % 4) / 10, 2) for j, x in enumerate(layers)}
        rows = [{"layer": x, "prune": arch[f"prune:{x}"],  # as the compress evaluator records
                 "channels": f"{round(16 * (j + 1) * (1 - arch[f'prune:{x}']))}/{16 * (j + 1)}"}
                for j, x in enumerate(layers)]
        policy.append(TrialRecord(i, arch, f"policy-{i}", TrialState.COMPLETE, reward=90.0 - i,
                                  metrics={"val_acc": 90.0 - i, "pixel3_latency": 10.0 - i},
                                  recorded={"policy": rows}, evaluation_index=i + 1))
    out["policy"] = fill_job(quiet_service, owner, policy, filled_spec("compress-like", 6),
                             results=False)
    blocks = []
    for i in range(4):
        arch = {f"b{b}_{k}": v for b in range(3) for k, v in
                (("op", ["mbconv3", "fire"][(i + b) % 2]), ("kernel", [3, 5][b % 2]),
                 ("se", 0.25), ("layers", b - 1))}
        blocks.append(TrialRecord(i, arch, json.dumps(arch, sort_keys=True), TrialState.COMPLETE,
                                  reward=80.0 + i, metrics={"val_acc": 80.0 + i,
                                                            "pixel3_latency": 5.0 + i},
                                  evaluation_index=i + 1))
    out["blocks"] = fill_job(quiet_service, owner, blocks, filled_spec("mnas-like", 4),
                             results=False)
    return out


# ---- every page fits, at both sizes --------------------------------------------------------
def devices_page(service: Service) -> None:
    """One shared device with an online agent, for the Devices page (once per service)."""
    root = service.token("root-views", admin=True)
    with service.client(root) as admin:
        if any(d["name"] == "rpi4-views" for d in admin.get("/devices").json()["data"]):
            return
        made = admin.post("/device-tokens", json={"name": "rpi4-views"})
        assert made.status_code == 201, made.text
    with service.client(made.json()["token"]) as agent:
        assert agent.post("/devices/agent/register", json={
            "agent_key": "views-agent-1", "description": {
                "cpu": "Cortex-A72 (4 cores, 1.8 GHz)", "os": "Linux 6.6 aarch64",
                "onnxruntime": "1.20.1"}}).status_code == 200


@pytest.mark.parametrize("size", list(SIZES))
def test_every_page_fits_and_its_controls_are_reachable(open_page: Any, quiet_service: Service,
                                                        owner: str, jobs: dict[str, str],
                                                        size: str) -> None:
    main = jobs["main"]
    # signed out: the sign-in form
    signin = open_page(quiet_service, None, viewport=SIZES[size], touch=size == "phone")
    signin.goto("#/signin").wait_for_selector("form.signin #token")
    fits(signin.page)
    for control in ("#token", "form.signin button[type=submit]"):
        assert visible_in_viewport(signin.page, control), control
    signin.shot(f"{size}-signin")
    assert not signin.errors, signin.errors
    p = open_at(open_page, quiet_service, owner, "#/jobs", size)
    page = p.page
    page.wait_for_selector(f"tr[data-job-id='{main}']")
    fits(page)
    assert visible_in_viewport(page, "#sign-out")
    p.shot(f"{size}-jobs")
    # the New-job form, open: the editor, the template picker and the buttons fit
    page.click("#new-job")
    page.wait_for_selector("#job-form .side-help h3")  # the registries have loaded
    fits(page)
    for control in ("#spec-template", "#job-form .card-head button[title=Close]", "#spec-editor",
                    "#submit-job"):
        page.locator(control).scroll_into_view_if_needed()
        assert visible_in_viewport(page, control), control
    p.shot(f"{size}-new-job")
    page.click("#job-form .card-head button[title=Close]")
    # the Devices page (one device, with its agent's description)
    devices_page(quiet_service)
    page.click("#nav-devices")
    page.wait_for_selector("#devices-table tr[data-device='rpi4-views']")
    fits(page)
    assert visible_in_viewport(page, "#sign-out")
    assert visible_in_viewport(page, "#nav-devices")
    # the description wraps: the device's status is on screen without scrolling the table
    assert visible_in_viewport(page, "tr[data-device='rpi4-views'] .badge")
    p.shot(f"{size}-devices")
    page.goto(f"{quiet_service.url}/#/jobs/{main}")
    page.wait_for_selector("#pareto-plot[data-drawn]")
    page.wait_for_selector("#trials-table")
    page.wait_for_selector("#importance-view[data-state='drawn']")
    fits(page)
    assert visible_in_viewport(page, "#sign-out")
    p.shot(f"{size}-job")
    for tab in ("parallel", "slices"):
        page.click(f"#tab-{tab}")
        page.wait_for_selector(f"#{tab}-view[data-state='drawn']")
        fits(page)
        page.locator(f"#{tab}-view").scroll_into_view_if_needed()
        p.shot(f"{size}-analysis-{tab}", full_page=False)
    # the trial panel fits and its close button is on screen
    trial = api(quiet_service, owner, f"/dashboard/jobs/{main}/trials", state="failed",
                limit=1)["data"][0]["t"]
    page.goto(f"{quiet_service.url}/#/jobs/{main}/trials/{trial}")
    page.wait_for_selector("#trial-drawer #trial-error")
    drawer_in_place(page)
    fits(page)
    assert visible_in_viewport(page, "#close-trial")
    assert visible_in_viewport(page, "#trial-drawer .kv")
    p.shot(f"{size}-trial", full_page=False)
    page.click("#close-trial")
    page.goto(f"{quiet_service.url}/#/compare/{main},{jobs['failed']}")
    page.wait_for_selector("#compare-plot[data-points]")
    fits(page)
    p.shot(f"{size}-compare")
    assert not p.errors, p.errors


# ---- units, reasons, repeats, empty states --------------------------------------------------
def axis_titles(page: Any, selector: str) -> dict[str, str]:
    return page.evaluate(f"""() => {{ const s = document.querySelector('{selector}').chart.spec;
        return {{x: s.x.title, y: s.y.title}}; }}""")


def test_axes_say_what_and_in_which_unit_and_jobs_say_why_they_stopped(
        open_page: Any, quiet_service: Service, owner: str, jobs: dict[str, str]) -> None:
    doc = api(quiet_service, owner, f"/jobs/{jobs['main']}")
    p = open_at(open_page, quiet_service, owner, f"#/jobs/{jobs['main']}", "desktop")
    page = p.page
    page.wait_for_selector("#pareto-plot[data-drawn]")
    titles = axis_titles(page, "#pareto-plot")
    registry = doc.get("metrics") or {}
    for key, metric in (("x", "pixel3_latency"), ("y", "val_acc")):
        entry = registry.get(metric)
        if entry:  # the job document describes its metrics: label and unit on the axis
            assert entry["label"] in titles[key] and f"({entry['unit']})" in titles[key], titles
        else:  # an older job: the raw name, never an empty title
            assert titles[key].startswith(metric), titles
    assert "better" in titles["x"] and "better" in titles["y"]
    page.wait_for_selector("#hv-plot[data-points]")  # the step charts draw after the scatter
    assert axis_titles(page, "#hv-plot")["y"] == "hypervolume"

    def titled(title: str, metric: str) -> bool:  # "Latency on Pixel 3 (ms)"
        entry = registry[metric]
        return title.startswith(entry["label"]) and title.endswith(f"({entry['unit']})")

    # every metric of this job has a label and a unit in the registry (else the checks below
    # would pass on raw names)
    measured = set(api(quiet_service, owner, f"/dashboard/jobs/{jobs['main']}/trials",
                       limit=1, state="complete")["data"][0]["m"])
    assert measured and all(registry.get(m, {}).get("unit") for m in measured), registry
    # parallel coordinates: every metric axis
    page.click("#tab-parallel")
    page.wait_for_selector("#parallel-view[data-state='drawn']")
    pc = page.evaluate("document.querySelector('#parallel-plot').pcoords.axisTitles()")
    metric_axes = {k.removeprefix("metrics."): v for k, v in pc.items() if k.startswith("metrics.")}
    assert set(metric_axes) == measured, pc
    for metric, title in metric_axes.items():
        assert titled(title, metric), (metric, title)
    # slices: each panel's y axis, for the metric picked and after picking another
    page.click("#tab-slices")
    page.wait_for_selector("#slices-view[data-state='drawn']")
    for metric in ("val_acc", "pixel3_latency"):
        page.select_option("#slice-metric", metric)
        page.wait_for_function(
            f"[...document.querySelectorAll('#slices-view .slice text.y-title')].every(t => "
            f"t.textContent.startsWith({json.dumps(registry[metric]['label'])}))")
        ys = page.eval_on_selector_all("#slices-view .slice text.y-title",
                                       "ts => ts.map(t => t.textContent)")
        assert len(ys) == 6 and all(titled(y, metric) for y in ys), ys
    # compare: both axes of the fronts chart
    page.goto(f"{quiet_service.url}/#/compare/{jobs['main']},{jobs['failed']}")
    page.wait_for_selector("#compare-plot[data-points]")
    compare = axis_titles(page, "#compare-plot")
    assert titled(compare["x"].split("  ")[0], "pixel3_latency"), compare
    assert titled(compare["y"].split("  ")[0], "val_acc"), compare
    assert "better" in compare["x"] and "better" in compare["y"], compare
    # a finished job says why it stopped, whatever the status
    for name, status in (("main", "succeeded"), ("failed", "failed"), ("cancelled", "cancelled")):
        page.goto(f"{quiet_service.url}/#/jobs/{jobs[name]}")
        banner = page.wait_for_selector(f"#job-reason[data-status='{status}']")
        assert "filled by the test" in banner.inner_text()
    page.goto(f"{quiet_service.url}/#/jobs")
    page.wait_for_selector(f"tr[data-job-id='{jobs['failed']}'] .reason:has-text('filled by')")
    assert not p.errors, p.errors


def test_repeats_warn_and_can_be_hidden(open_page: Any, quiet_service: Service, owner: str,
                                        jobs: dict[str, str]) -> None:
    job = jobs["repeats"]
    p = open_at(open_page, quiet_service, owner, f"#/jobs/{job}", "desktop")
    page = p.page
    warning = page.wait_for_selector("#repeats-warning")
    doc = api(quiet_service, owner, f"/jobs/{job}")
    share = round(100 * doc["progress"]["cached"] / doc["progress"]["trials"])
    assert f"{share}% of trials were repeats" in warning.inner_text()
    page.wait_for_selector("#trials-table")
    total = doc["progress"]["trials"]
    assert page.inner_text("#trials-range").endswith(f"of {total}")
    page.check("#trial-hide-repeats")
    fresh = total - doc["progress"]["cached"]
    page.wait_for_selector(f"#trials-range:has-text('of {fresh}')")
    assert page.locator("#trials-table .badge:has-text('repeat')").count() == 0
    page.goto(f"{quiet_service.url}/#/jobs/{jobs['main']}")
    page.wait_for_selector("#job-reason")
    assert page.locator("#repeats-warning").count() == 0
    assert not p.errors, p.errors


def test_a_job_without_trials_says_what_will_appear(open_page: Any, quiet_service: Service,
                                                    owner: str) -> None:
    job = quiet_service.submit(owner, filled_spec("not-started", 10))  # no worker: queued
    p = open_at(open_page, quiet_service, owner, f"#/jobs/{job['id']}", "phone")
    page = p.page
    page.wait_for_selector("#pareto-plot[data-empty='1']")
    page.wait_for_selector("#trials-empty:has-text('Waiting for the first trial')")
    page.wait_for_selector("#importance-view:has-text('once 10 trials have completed')")
    spec = page.evaluate("document.querySelector('#pareto-plot').chart.spec.empty")
    assert spec == "Waiting for a worker to start the job"
    fits(page)
    p.shot("phone-empty-job")
    with quiet_service.client(owner) as c:  # fill_job in later tests claims the oldest job
        assert c.post(f"/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    assert not p.errors, p.errors


# ---- analysis views, brushing, CSV -----------------------------------------------------------
def test_brushing_filters_the_table_and_csv_equals_the_api(open_page: Any,
                                                           quiet_service: Service, owner: str,
                                                           jobs: dict[str, str],
                                                           tmp_path: Path) -> None:
    job = jobs["main"]
    p = open_at(open_page, quiet_service, owner, f"#/jobs/{job}", "desktop")
    page = p.page
    imp = page.wait_for_selector("#importance-view[data-state='drawn']")
    served = api(quiet_service, owner, f"/dashboard/jobs/{job}/importance")
    rows = page.eval_on_selector_all(
        "#importance-view .imp-block[data-metric='val_acc'] .imp-row",
        "rs => rs.map(r => [r.dataset.decision, +r.dataset.value])")
    want = sorted(served["objectives"][0]["values"].items(), key=lambda kv: -kv[1])
    assert [r[0] for r in rows] == [k for k, _ in want] and len(rows) == 6
    assert "PED-ANOVA" in page.inner_text("#analysis-note") and imp
    page.click("#tab-parallel")
    page.wait_for_selector("#parallel-view[data-state='drawn']")
    page.locator("#parallel-plot").scroll_into_view_if_needed()
    # drag along the accuracy axis, as a person would
    top = page.evaluate("document.querySelector('#parallel-plot').pcoords"
                        ".locate('metrics.val_acc', 93)")
    bottom = page.evaluate("document.querySelector('#parallel-plot').pcoords"
                           ".locate('metrics.val_acc', 85)")
    page.mouse.move(top["x"], top["y"])
    page.mouse.down()
    page.mouse.move(bottom["x"], (top["y"] + bottom["y"]) / 2, steps=4)
    page.mouse.move(bottom["x"], bottom["y"], steps=4)
    page.mouse.up()
    page.wait_for_selector("#brush-note:has-text('1 brush')")
    lo, hi = page.evaluate("[...document.querySelector('#parallel-plot').pcoords"
                           ".brushes.get('metrics.val_acc')]")
    assert 84 < lo < 86 and 92 < hi < 94
    where = json.dumps({"ranges": {"metrics.val_acc": [lo, hi]}, "choices": {}})
    filtered = api(quiet_service, owner, f"/dashboard/jobs/{job}/trials", where=where,
                   limit=1000, order="desc")
    assert 0 < filtered["count"] < 400
    page.wait_for_selector(f"#trials-range:has-text('of {filtered['count']}')")
    # brushing a decision too: both filters apply
    page.evaluate("document.querySelector('#parallel-plot').pcoords"
                  ".brush('arch.edge_1_2', 1.5, 3.5)")  # two of the five operations
    page.wait_for_selector("#brush-note:has-text('2 brushes')")
    where2 = page.evaluate("JSON.stringify(document.querySelector('#parallel-plot')"
                           ".pcoords.where())")
    both = api(quiet_service, owner, f"/dashboard/jobs/{job}/trials", where=where2,
               limit=1000, order="desc")
    assert both["count"] < filtered["count"]
    page.wait_for_selector(f"#trials-range:has-text('of {both['count']}')")
    inside = int(page.get_attribute("#parallel-plot", "data-inside"))
    assert inside <= both["count"]
    p.shot("desktop-parallel-brushed", full_page=False)
    # the CSV is every trial of the filter, in the table's order
    with page.expect_download() as info:
        page.click("#trials-csv")
    info.value.save_as(tmp_path / "trials.csv")
    reader = csv.reader(io.StringIO((tmp_path / "trials.csv").read_text()))
    header = [h.split(" [")[0] for h in next(reader)]  # "metrics.val_acc [%]"
    table = [dict(zip(header, row, strict=True)) for row in reader]
    assert [int(r["trial_id"]) for r in table] == [t["t"] for t in both["data"]]
    for r, t in zip(table, both["data"], strict=True):
        assert float(r["metrics.val_acc"]) == t["m"]["val_acc"]
        assert float(r["metrics.pixel3_latency"]) == t["m"]["pixel3_latency"]
    page.click("#clear-brushes")
    page.wait_for_selector("#trials-range:has-text('of 400')")
    page.click("#tab-slices")
    page.wait_for_selector("#slices-view[data-state='drawn']")
    served = api(quiet_service, owner, f"/dashboard/jobs/{job}/slices")
    panels = page.locator("#slices-view .slice")
    assert panels.count() == len(served["decisions"]) == 6
    medians = page.eval_on_selector_all(
        "#slices-view .slice[data-decision='edge_0_1'] g.box",
        "gs => gs.map(g => [g.dataset.choice, +g.dataset.median])")
    want_medians = [[c["choice"], c["q"][2]] for c in served["decisions"][0]["choices"] if c["n"]]
    assert medians == want_medians
    assert not p.errors, p.errors


# ---- architectures, files -------------------------------------------------------------------
def test_architectures_are_readable_with_raw_json_behind_a_toggle(
        open_page: Any, quiet_service: Service, owner: str, jobs: dict[str, str]) -> None:
    p = open_at(open_page, quiet_service, owner, f"#/jobs/{jobs['main']}/trials/0", "phone")
    page = p.page
    table = page.wait_for_selector("#trial-layers[data-kind='cell']")
    arch = api(quiet_service, owner, f"/dashboard/jobs/{jobs['main']}/trials/0")["arch"]
    for key, op in arch.items():
        _, a, b = key.split("_")
        assert op in page.inner_text(f"#trial-layers tr[data-edge='{a}-{b}']")
    assert table.is_visible() and not page.is_visible("#trial-raw pre")
    page.click("#trial-raw summary")
    assert json.loads(page.inner_text("#trial-raw pre")) == arch
    p.shot("phone-trial-cell", full_page=False)
    page.goto(f"{quiet_service.url}/#/jobs/{jobs['blocks']}/trials/1")
    page.wait_for_selector("#trial-layers[data-kind='blocks']")
    heads = page.eval_on_selector_all("#trial-layers th", "ts => ts.map(t => t.textContent)")
    assert heads == ["Block", "op", "kernel", "se", "layers"]
    assert page.locator("#trial-layers tbody tr").count() == 3
    page.goto(f"{quiet_service.url}/#/jobs/{jobs['policy']}/trials/2")
    page.wait_for_selector("#trial-layers[data-kind='policy'] rect.bar")
    assert page.locator("#trial-layers rect.bar").count() == 4
    fits(page)
    p.shot("phone-trial-policy", full_page=False)
    assert not p.errors, p.errors


def mnasnet_spec(name: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    space: dict[str, Any] = {"name": "mnasnet"}
    if options:
        space["options"] = options
    return {"name": name, "space": space, "agent": {"name": "random"},
            "evaluator": {"name": "train", "options": {
                "dataset": {"source": "digits", "max_samples": 300}, "epochs": 1}},
            "profilers": [{"name": "torch-analytical", "options": {"input_shape": [1, 8, 8]}}],
            "objectives": [{"metric": "val_acc", "direction": "max"},
                           {"metric": "flops_M", "direction": "min"}],
            "budget": {"evaluations": 3}, "executor": {"name": "local"}}


@pytest.mark.parametrize("blocks", [5, 12])
def test_a_real_mnasnet_architecture_reads_as_a_block_table(
        open_page: Any, quiet_service: Service, owner: str, blocks: int) -> None:
    """Architectures sampled from ``spaces.mnasnet.MnasNetSpace`` (the default 5-block skeleton,
    and 12 blocks stored with sorted keys, as sorted JSON or PostgreSQL's jsonb give them back):
    one row per block in numeric order (b2 before b10), the space's fields as columns."""
    import numpy as np

    from spaces.mnasnet import DEFAULT_BLOCKS, MnasNetSpace

    skeleton = list(DEFAULT_BLOCKS) + [(96, 1, 1)] * (blocks - len(DEFAULT_BLOCKS))
    options = None if blocks == len(DEFAULT_BLOCKS) else {
        "blocks": [{"filters": f, "layers": n, "stride": st} for f, n, st in skeleton]}
    space = MnasNetSpace() if options is None else MnasNetSpace(blocks=skeleton)
    rng = np.random.default_rng(blocks)
    records = []
    for i in range(3):
        arch = space.sample(rng)
        if options:
            arch = dict(sorted(arch.items()))  # b0_kernel, ..., b10_op, ..., b1_kernel, ...
        records.append(TrialRecord(i, arch, space.key(arch), TrialState.COMPLETE,
                                   reward=60.0 + i, metrics={"val_acc": 60.0 + i,
                                                             "flops_M": 5.0 - i},
                                   evaluation_index=i + 1))
    job = fill_job(quiet_service, owner, records, mnasnet_spec(f"mnasnet-{blocks}", options),
                   results=False)
    p = open_at(open_page, quiet_service, owner, f"#/jobs/{job}/trials/1", "phone")
    page = p.page
    page.wait_for_selector("#trial-layers[data-kind='blocks']")
    heads = page.eval_on_selector_all("#trial-layers th", "ts => ts.map(t => t.textContent)")
    assert heads == ["Block", "op", "kernel", "se", "skip", "layers", "width"], heads
    rows = page.eval_on_selector_all("#trial-layers tbody tr", """rs => rs.map(r =>
        [...r.querySelectorAll('td')].map(td => td.textContent))""")
    arch = records[1].arch
    assert [r[0] for r in rows] == [f"b{b}" for b in range(blocks)]
    for b, row in enumerate(rows):
        assert row[1:] == [str(arch[f"b{b}_{f}"]).removesuffix(".0")
                           for f in ("op", "kernel", "se", "skip", "layers", "width")], (b, row)
    drawer_in_place(page)
    fits(page)
    assert visible_in_viewport(page, "#close-trial")
    p.shot(f"phone-trial-mnasnet-{blocks}", full_page=False)
    assert not p.errors, p.errors


def test_a_compression_policy_sits_beside_the_reference_layer_sizes(
        open_page: Any, quiet_service: Service, owner: str, jobs: dict[str, str]) -> None:
    p = open_at(open_page, quiet_service, owner, f"#/jobs/{jobs['policy']}", "desktop")
    page = p.page
    page.wait_for_selector("#policy-plot[data-trial='0'] rect.bar")
    bars = page.eval_on_selector_all("#policy-plot rect.bar", """rs => rs.map(r =>
        [r.dataset.group, r.dataset.label, +r.dataset.value])""")
    rows = api(quiet_service, owner, f"/dashboard/jobs/{jobs['policy']}/trials/0")[
        "recorded"]["policy"]
    totals = [int(r["channels"].split("/")[1]) for r in rows]
    kept = [int(r["channels"].split("/")[0]) / t for r, t in zip(rows, totals, strict=True)]
    assert [b[2] for b in bars if b[0] == "reference"] == totals
    assert [b[2] for b in bars if b[0] == "kept"] == pytest.approx(kept)
    assert [b[1] for b in bars if b[0] == "prune"] == [r["layer"] for r in rows]
    page.locator("#policy-card").scroll_into_view_if_needed()
    p.shot("desktop-policy-reference", full_page=False)
    assert not p.errors, p.errors


COMPRESS_SPEC = {"name": "compress-target", "kind": "compress",
                 "model": {"reference": "resnet_small", "dataset": "digits", "limit": 30,
                           "epochs": 0, "width": 0.5},  # untrained: the space is built quickly
                 "target": {"metric": "flops", "ratio": 0.25},
                 "space": {"name": "compression", "options": {"controls": ["prune"]}},
                 "agent": {"name": "uniform"},
                 "evaluator": {"name": "compress", "options": {"measure_latency": False}},
                 "objectives": [{"metric": "val_acc", "direction": "max"}],
                 "budget": {"evaluations": 3}, "executor": {"name": "local"}}


def test_a_compression_target_is_drawn_and_says_what_it_is_a_share_of(
        open_page: Any, quiet_service: Service, owner: str, jobs: dict[str, str]) -> None:
    """A real compression job with a FLOPs target: the dashed line sits at the ratio on the
    kept-channels panel, and its label names FLOPs (it is not a share of channels)."""
    import random

    from search.spec import JobSpec
    from spaces.registry import SPACES

    parsed = JobSpec.model_validate(COMPRESS_SPEC)
    space = SPACES.create(parsed.space.name, options=parsed.space.options)
    records = []
    for i in range(3):
        arch = space.sample(random.Random(i))
        layers = [k.removeprefix("prune:") for k in arch]
        rows = [{"layer": x, "prune": arch[f"prune:{x}"],  # as the compress evaluator records
                 "channels": f"{max(1, round(16 * (1 - arch[f'prune:{x}'])))}/16"} for x in layers]
        records.append(TrialRecord(i, arch, f"target-{i}", TrialState.COMPLETE,
                                   reward=50.0 + i, metrics={"val_acc": 50.0 + i},
                                   recorded={"policy": rows}, evaluation_index=i + 1))
    job = fill_job(quiet_service, owner, records, COMPRESS_SPEC, results=False)
    best = max(records, key=lambda r: r.reward).trial_id
    p = open_at(open_page, quiet_service, owner, f"#/jobs/{job}", "desktop")
    page = p.page
    page.wait_for_selector(f"#policy-plot[data-trial='{best}'] line.target", state="attached")
    assert page.locator("#policy-plot line.target").count() == 1
    line = page.locator("#policy-plot g.panel[data-group='kept'] line.target")
    assert float(line.get_attribute("data-value")) == 0.25
    label = page.locator("#policy-plot g.panel[data-group='kept'] text.target-label")
    assert label.evaluate("t => t.firstChild.textContent") == "target: 25% of FLOPs"
    assert "not a share of channels" in line.locator("title").text_content()
    # the line is drawn at 0.25 on the panel's own scale: between its 0 and its highest tick
    y = float(line.get_attribute("y1"))
    box = page.eval_on_selector("#policy-plot g.panel[data-group='kept']", """g => {
        const ys = [...g.querySelectorAll('rect.bar')].map(r => [+r.dataset.value,
            +r.getAttribute('y'), +r.getAttribute('height')]);
        return ys; }""")
    # a bar of value v reaches from the zero line up to y(v): interpolate y(0.25)
    (v1, y1, h1) = max(box)
    zero = y1 + h1
    assert y == pytest.approx(zero - (zero - y1) * 0.25 / v1, abs=1.0)
    page.locator("#policy-card").scroll_into_view_if_needed()
    p.shot("desktop-policy-target", full_page=False)
    p.page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function("document.querySelector('#policy-plot svg').getAttribute('width') < 390")
    fits(page)
    page.locator("#policy-card").scroll_into_view_if_needed()
    label_box = label.bounding_box()
    assert label_box is not None and label_box["x"] >= 0 and \
        label_box["x"] + label_box["width"] <= 390, label_box
    p.shot("phone-policy-target", full_page=False)
    assert not p.errors, p.errors


def test_a_tap_on_the_pareto_chart_opens_the_trial_under_the_finger(
        open_page: Any, quiet_service: Service, owner: str, jobs: dict[str, str]) -> None:
    job = jobs["main"]
    p = open_at(open_page, quiet_service, owner, f"#/jobs/{job}", "phone")
    page = p.page
    page.wait_for_selector("#pareto-plot[data-drawn]")
    # the page has settled (cards above and below the plot have loaded)
    page.wait_for_selector("#downloads .download")
    page.wait_for_selector("#importance-view[data-state='drawn']")
    page.wait_for_selector("#trials-table")
    page.locator("#pareto-plot").scroll_into_view_if_needed()
    front = {t["trial_id"] for t in api(quiet_service, owner, f"/jobs/{job}/pareto")["data"]}
    locate = """() => { const c = document.querySelector('#pareto-plot').chart;
        const at = c.locate((p, layer) => layer === 'front');
        const b = c.area.getBoundingClientRect();
        return {...at, t: c.pick(at.x - b.left, at.y - b.top).point.t}; }"""
    # Cards that finish loading later can still move the plot on a loaded machine: tap only
    # once the point has stayed where it is for a moment.
    at = page.evaluate(locate)
    for _ in range(20):
        page.wait_for_timeout(150)
        again = page.evaluate(locate)
        if again == at:
            break
        at = again
    under = at["t"]
    assert under in front
    page.touchscreen.tap(at["x"], at["y"])
    drawer = page.wait_for_selector("#trial-drawer")
    assert int(drawer.get_attribute("data-trial")) == under
    drawer_in_place(page)
    assert visible_in_viewport(page, "#close-trial")
    assert not p.errors, p.errors


@pytest.fixture(scope="module")
def exported(quiet_service: Service, owner: str) -> dict[str, Any]:
    """A finished job whose best trial and one more Pareto trial have exported models (the
    real exporter, ``search.export.export_model``, on a small network), in the job folder
    where the service's finalize step puts them (``models/trial<ID>/``)."""
    import torch.nn as nn

    from search.export import export_model
    from service.artifacts import job_dir

    job = fill_job(quiet_service, owner, nb201_records(20, seed=11), filled_spec("exported", 20))
    doc = api(quiet_service, owner, f"/jobs/{job}")
    best = doc["best"]["trial_id"]
    front = [t["trial_id"] for t in api(quiet_service, owner, f"/jobs/{job}/pareto")["data"]]
    other = next(t for t in front if t != best)
    for tid in (best, other):
        net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 10))
        export_model(net, job_dir(quiet_service.settings.artifact_dir, job) / "models" /
                     f"trial{tid}", input_shape=(1, 8, 8), name=f"nb201-exported-trial{tid}",
                     measure_latency=False)
    return {"job": job, "best": best, "other": other}


def listed_files(page: Any, selector: str) -> dict[str, dict[str, Any]]:
    """path -> the name shown, whether it is cut off, and the description with the size."""
    return {f["path"]: f for f in page.eval_on_selector_all(f"{selector} .download", """ds =>
        ds.map(d => { const n = d.querySelector('.name');
            return {path: d.dataset.file, name: n.textContent, what: d.querySelector('.what')
                .textContent, cut: n.scrollWidth > n.clientWidth + 1,
                right: n.getBoundingClientRect().right}; })""")}


def size_text(n: int) -> str:  # util.js fmtBytes
    units, i, v = ["B", "KB", "MB", "GB"], 0, float(n)
    while v >= 1024 and i < len(units) - 1:
        v, i = v / 1024, i + 1
    return f"{v:.1f} {units[i]}" if i else f"{n} B"


@pytest.mark.parametrize("size", list(SIZES))
def test_downloads_and_the_trial_drawer_list_the_same_exported_files(
        open_page: Any, quiet_service: Service, owner: str, exported: dict[str, Any],
        size: str) -> None:
    job = exported["job"]
    served = api(quiet_service, owner, f"/dashboard/jobs/{job}/files")["data"]
    p = open_at(open_page, quiet_service, owner, f"#/jobs/{job}", size)
    page = p.page
    page.wait_for_selector("#downloads .download[data-file^='models/']")
    on_job_page = listed_files(page, "#downloads")
    width = page.evaluate("window.innerWidth")
    for tid in (exported["best"], exported["other"]):
        files = {f["path"]: f for f in served if f["trial"] == tid}
        assert len(files) == 5 and all(p_.startswith(f"models/trial{tid}/") for p_ in files)
        detail = api(quiet_service, owner, f"/dashboard/jobs/{job}/trials/{tid}")["files"]
        assert {f["path"]: f["size"] for f in detail} == \
            {k: f["size"] for k, f in files.items()}  # the API agrees with itself
        page.goto(f"{quiet_service.url}/#/jobs/{job}/trials/{tid}")
        page.wait_for_selector(f"#trial-drawer[data-trial='{tid}'] #trial-files .download")
        in_drawer = listed_files(page, "#trial-files")
        page.click("#close-trial")
        page.wait_for_selector("#trial-drawer", state="detached")
        job_side = {k: v for k, v in on_job_page.items() if k in files}
        assert set(in_drawer) == set(job_side) == set(files), (in_drawer, job_side)
        for path, f in files.items():
            want = size_text(f["size"])
            for where, shown in (("drawer", in_drawer[path]), ("job page", job_side[path])):
                assert shown["name"] == path, (where, shown)  # the full name, with its folder
                assert not shown["cut"] and shown["right"] <= width + 0.5, (where, shown)
                assert shown["what"].startswith(f["what"]) and want in shown["what"], \
                    (where, shown, f)
            assert f" · trial #{tid} · " in job_side[path]["what"], job_side[path]
    # the best trial's card lists its exported files too
    best = {f["path"] for f in served if f["trial"] == exported["best"]}
    shown = set(page.eval_on_selector_all("#best-downloads .download", "ds => ds.map(d => "
                                          "d.dataset.file)"))
    assert best <= shown, (best, shown)
    fits(page)
    page.goto(f"{quiet_service.url}/#/jobs/{job}/trials/{exported['best']}")
    page.wait_for_selector("#trial-files .download")
    page.locator("#trial-files").scroll_into_view_if_needed()
    p.shot(f"{size}-trial-exported-files", full_page=False)
    assert not p.errors, p.errors


# ---- notes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", list(SIZES))
def test_the_owner_writes_a_note_on_the_job_page(open_page: Any, quiet_service: Service,
                                                 owner: str, jobs: dict[str, str],
                                                 size: str) -> None:
    job = jobs["cancelled"] if size == "phone" else jobs["failed"]
    with quiet_service.client(owner) as c:  # start from no note
        assert c.patch(f"/jobs/{job}", json={"note": None}).status_code == 200
    p = open_at(open_page, quiet_service, owner, f"#/jobs/{job}", size)
    page = p.page
    page.wait_for_selector("#note-card #job-note-empty")
    page.click("#edit-note")
    text = f"Why it stopped: wrong budget ({size}).\nCompare with nb201-main; a long-unbroken-" \
           + "word" * 30
    page.fill("#job-note-input", text)
    assert page.inner_text("#note-count") == f"{len(text)} / 10,000"
    fits(page)
    for control in ("#job-note-input", "#save-note", "#cancel-note"):
        page.locator(control).scroll_into_view_if_needed()
        assert visible_in_viewport(page, control), control
    p.shot(f"{size}-note-editing", full_page=False)
    page.click("#save-note")
    page.wait_for_selector("#job-note")
    assert page.inner_text("#job-note") == text
    assert api(quiet_service, owner, f"/jobs/{job}")["note"] == text
    fits(page)  # a long word wraps inside the card
    page.reload()
    page.wait_for_selector("#job-note")
    assert page.inner_text("#job-note") == text
    # too long: the API's 422 names the field, shown under the box; nothing changes
    page.click("#edit-note")
    page.fill("#job-note-input", "x" * 10_001)
    page.wait_for_selector("#note-count.over")
    page.click("#save-note")
    page.wait_for_selector("#note-error:has-text('note:')")
    assert "at most 10000 characters" in page.inner_text("#note-error")
    assert api(quiet_service, owner, f"/jobs/{job}")["note"] == text
    page.click("#cancel-note")
    assert page.inner_text("#job-note") == text
    p.shot(f"{size}-note", full_page=False)
    # the refused save, as the browser logs it; nothing else
    assert p.errors == ["Failed to load resource: the server responded with a status of 422 "
                        "(Unprocessable Entity)"], p.errors
    # an admin reads the note, with nothing to edit it; another user does not see the job
    root = open_at(open_page, quiet_service, quiet_service.token("root-notes", admin=True),
                   f"#/jobs/{job}", size)
    root.page.wait_for_selector("#job-note")
    assert root.page.inner_text("#job-note") == text
    assert root.page.locator("#edit-note").count() == 0
    assert not root.errors, root.errors


# ---- compare, dark mode ---------------------------------------------------------------------
def test_compare_draws_each_jobs_front_on_one_chart(open_page: Any, quiet_service: Service,
                                                    owner: str, jobs: dict[str, str]) -> None:
    p = open_at(open_page, quiet_service, owner, "#/jobs", "desktop", dark=True)
    page = p.page
    for name in ("main", "failed"):
        page.check(f"tr[data-job-id='{jobs[name]}'] td.pick input")
    page.click("#compare-jobs")
    plot = page.wait_for_selector("#compare-plot[data-points]")
    fronts = [api(quiet_service, owner, f"/jobs/{jobs[n]}/pareto")["count"]
              for n in ("main", "failed")]
    assert int(plot.get_attribute("data-jobs")) == 2
    assert int(plot.get_attribute("data-points")) == sum(fronts)
    assert page.locator("#compare-plot .chart-key").count() == 2
    # dark mode follows the system setting
    bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg == "rgb(11, 16, 32)", bg
    p.shot("desktop-compare-dark")
    page.goto(f"{quiet_service.url}/#/jobs/{jobs['main']}")
    page.wait_for_selector("#pareto-plot[data-drawn]")
    p.shot("desktop-job-dark")
    assert not p.errors, p.errors


# ---- live equals reload ---------------------------------------------------------------------
def test_live_and_reload_draw_the_same_points(open_page: Any, quiet_service: Service,
                                              owner: str) -> None:
    spec = filled_spec("live-big", 4000)
    first = nb201_records(2300, seed=9)
    job = fill_job(quiet_service, owner, first, spec, finish=None)
    p = open_at(open_page, quiet_service, owner, f"#/jobs/{job}", "desktop")
    page = p.page
    page.wait_for_selector("#live[data-state='live']")
    page.evaluate("""() => { window.__maxPoints = 0;
        const plot = document.querySelector('#pareto-plot');
        new MutationObserver(() => { window.__maxPoints = Math.max(window.__maxPoints,
            +plot.dataset.points); }).observe(plot, {attributes: true}); }""")
    sink = sink_for(quiet_service, job, spec, first)
    more = nb201_records(1200, start=2300, seed=9)
    for i in range(0, len(more), 100):
        for rec in more[i:i + 100]:
            sink.on_trial(rec)
        time.sleep(0.5)  # 200 trials a second
    sink.on_end("succeeded", "filled by the test")
    page.wait_for_selector("#live[data-state='ended']")
    reload = api(quiet_service, owner, f"/dashboard/jobs/{job}/scatter")
    assert reload["sampled"] and reload["shown"] <= 2000
    page.wait_for_function(f"document.querySelector('#pareto-plot').dataset.points == "
                           f"'{reload['shown']}'", timeout=30_000)
    live_max = page.evaluate("window.__maxPoints")
    # the budget held while streaming (it grew to ~6,000 before): 2,000 points, plus at most
    # 500 streamed ones (and new Pareto points) while the next snapshot loads
    assert 2000 <= live_max <= 2500 + len(reload["front"]), live_max
    page.reload()
    page.wait_for_selector("#pareto-plot[data-drawn]")
    assert page.get_attribute("#pareto-plot", "data-points") == str(reload["shown"])
    assert not p.errors, p.errors


def test_the_jobs_list_marks_raw_hypervolumes_with_their_reference(
        open_page: Any, quiet_service: Service, owner: str, jobs: dict[str, str]) -> None:
    """Raw volumes of different jobs do not compare: the list shows the ratio to the true front
    where a table gives one, else the raw value marked as raw with its reference point."""
    # analytical FLOPs have no table: no true front, a reference from the first trials
    spec = {**filled_spec("raw-hv", 8), "profilers": [{"name": "analytical"}],
            "objectives": [{"metric": "val_acc", "direction": "max"},
                           {"metric": "flops_M", "direction": "min"}]}
    records = [TrialRecord(i, r.arch, r.arch_key, TrialState.COMPLETE, reward=r.reward,
                           metrics={"val_acc": r.metrics["val_acc"], "flops_M": 10.0 + 7 * i % 5},
                           evaluation_index=i + 1)
               for i, r in enumerate(r for r in nb201_records(8, seed=9)
                                     if r.state == TrialState.COMPLETE)]
    raw_job = fill_job(quiet_service, owner, records, spec, results=False)
    p = open_at(open_page, quiet_service, owner, "#/jobs", "desktop")
    page = p.page
    page.wait_for_selector("#jobs-table")
    seen = set()
    for job in [*jobs.values(), raw_job]:
        doc = api(quiet_service, owner, f"/jobs/{job}")
        cell = page.locator(f"tr[data-job-id='{job}'] td.num").nth(1).inner_text()
        if doc.get("hypervolume_normalized") is not None:
            assert cell.endswith("of true"), cell
            seen.add("normalized")
        elif doc.get("hypervolume") is not None and doc.get("hypervolume_reference"):
            point = doc["hypervolume_reference"]["point"]
            assert "raw, ref (" in cell and len(point) == 2, cell
            seen.add("raw")
        else:
            assert "raw" not in cell and "of true" not in cell, cell
    assert seen == {"normalized", "raw"}, seen
    assert not p.errors, p.errors
