"""Dashboard benchmark: a 10,000-trial job in headless Chromium.

Measures, with a cold browser cache each time: the time from opening the job page (navigation
start) to a drawn Pareto plot, and the bytes the browser received until then (every response,
compressed, headers included); then, with the page open, the delay from a trial's commit to its
point on screen (the page notes when a streamed trial is first painted). Goals: < 2 s, < 2 MB,
< 1 s at p95. Then: each analysis view (importance, parallel coordinates, slices) of the job,
from its request to its first paint, with the server's cache cold (goal < 2 s each); the
longest main-thread task while a burst of trials streams into the open page (goal < 100 ms);
and a scripted tour of every page at 1400x900 and 390x844 (sign-in, jobs, the open New-job
form, devices, job page, each analysis view, a trial, compare) that must raise no JavaScript
error and no sideways scroll.
"Drawn" is the first paint after a draw that put points on the canvas; the benchmark
also reads the canvas back and counts the non-white pixels inside the plot area, so a plot that
was marked drawn but is blank shows up (``painted_px``). The data request's server time
(request sent to first byte) is reported separately.

Topology as in production: ``lightsearch serve --no-worker`` in its own process (SQLite in a
temporary folder); this process plays the worker and writes trials through the service's own
SQL sink (``service.sink.SqlSink``), so every trial is a committed row with its front flags and
hypervolume history. Trial numbers are real: NAS-Bench-201 CIFAR-10 ``val_acc`` and Pixel 3
latency for distinct cells.

    python benchmarks/dashboard.py                    # 10,000 trials, 3 cold opens, 30 live
    python benchmarks/dashboard.py --trials 2000 --runs 1 --live 10 --burst 500 --out /tmp/d.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.service.conftest import free_port  # noqa: E402
from tests.service.proc import Server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
GOALS = {"time_to_plot_ms": 2000, "bytes": 2_000_000, "live_delay_ms": 1000,
         "analysis_view_ms": 2000, "live_longest_task_ms": 100, "tour_errors": 0}
SIZES = {"desktop": (1400, 900), "phone": (390, 844)}
SPEC = {"name": "dashboard-bench", "space": {"name": "nb201"}, "agent": {"name": "random"},
        "evaluator": {"name": "tabular"}, "profilers": [{"name": "lut:pixel3"}],
        "objectives": [{"metric": "val_acc", "direction": "max"},
                       {"metric": "pixel3_latency", "direction": "min"}],
        "executor": {"name": "local"}}
# Before the page scripts run: the signed-in token, and a long-task log (main-thread stalls).
INIT = """
localStorage.setItem('lightsearch.token', %s);
window.__longtasks = [];
new PerformanceObserver((l) => l.getEntries().forEach((e) =>
  window.__longtasks.push([e.startTime, e.duration]))).observe({type: 'longtask', buffered: true});
"""


def records(n: int, start: int = 0) -> list[Any]:
    """``n`` distinct NAS-Bench-201 cells with their table val_acc and Pixel 3 latency."""
    import numpy as np

    from agents.base import TrialState
    from search.evaluators.tabular import TabularEvaluator
    from search.profilers.lookup import NB201DeviceProfiler
    from search.sinks import TrialRecord
    from spaces.nb201 import NB201Space

    space, evaluator = NB201Space(), TabularEvaluator(record=[])
    profiler = NB201DeviceProfiler(device="pixel3")
    out = []
    for i, index in enumerate(np.random.default_rng(0).permutation(15_625)[start:start + n]):
        arch = space.from_index(int(index))
        metrics = {**profiler.profile(arch, space),
                   **evaluator.evaluate(arch, space, seed=0).metrics}
        out.append(TrialRecord(start + i, arch, space.key(arch), TrialState.COMPLETE,
                               reward=metrics["val_acc"], metrics=metrics,
                               evaluation_index=start + i + 1, duration_s=0.01, node="local"))
    return out


class Job:
    """A job created over REST and then 'run' by this process through the SQL sink."""

    def __init__(self, server: Server, budget: int) -> None:
        from search.spec import JobSpec
        from service.core.db import Database
        from service.queue import claim_job
        from service.sink import SqlSink

        with server.client() as http:
            r = http.post("/jobs", json={**SPEC, "budget": {"evaluations": budget}})
            r.raise_for_status()
            self.id = r.json()["id"]
        self.db = Database.from_url(f"sqlite:///{server.data_dir / 'lightsearch.db'}")
        claim = claim_job(self.db, "benchmark", lease_s=3600)
        assert claim is not None and claim.job_id == self.id
        spec = JobSpec.model_validate({**SPEC, "budget": {"evaluations": budget}})
        self.sink = SqlSink(self.db, claim, spec, artifact_root=server.data_dir / "artifacts")

    def add(self, recs: list[Any]) -> list[float]:
        """Commit each trial; returns the wall-clock time (ms) each commit finished."""
        done = []
        for rec in recs:
            self.sink.on_trial(rec)
            done.append(time.time() * 1000)
        return done


class ByteCounter:
    """Bytes received per request (Chrome's encodedDataLength: compressed, with headers)."""

    def __init__(self, cdp: Any) -> None:
        self.requests: dict[str, dict[str, Any]] = {}
        cdp.send("Network.enable")
        cdp.on("Network.requestWillBeSent", self._sent)
        cdp.on("Network.dataReceived", self._data)
        cdp.on("Network.loadingFinished", self._done)

    def _sent(self, e: dict[str, Any]) -> None:
        self.requests[e["requestId"]] = {"url": e["request"]["url"], "bytes": 0, "done": False}

    def _data(self, e: dict[str, Any]) -> None:
        r = self.requests.get(e["requestId"])
        if r is not None and not r["done"]:
            r["bytes"] += e.get("encodedDataLength", 0)

    def _done(self, e: dict[str, Any]) -> None:
        r = self.requests.get(e["requestId"])
        if r is not None:
            r["bytes"], r["done"] = max(r["bytes"], e.get("encodedDataLength", 0)), True

    def total(self) -> int:
        return sum(r["bytes"] for r in self.requests.values())

    def by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.requests.values():
            url = r["url"]
            kind = "data (api)" if "/api/" in url and "/static/" not in url else \
                "page code (html/js/css)"
            out[kind] = out.get(kind, 0) + r["bytes"]
        return out


# Pixels of the Pareto canvas, inside the plot area, that are not the white background.
PAINTED = """() => { const el = document.querySelector('#pareto-plot');
    const c = el.querySelector('canvas'), g = el.chart.geom, k = c.width / c.clientWidth;
    const d = c.getContext('2d').getImageData(Math.ceil((g.left + 1) * k),
        Math.ceil((g.top + 1) * k), Math.floor((g.w - 2) * k), Math.floor((g.h - 2) * k)).data;
    let n = 0;  // the grid lines (#f0f1f5) are light enough not to count
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] && (d[i] < 235 || d[i + 1] < 235 || d[i + 2] < 235)) n++;
    }
    return n; }"""
# The overview request (scatter + series): server time is request sent -> first byte.
OVERVIEW = """() => { const e = performance.getEntriesByType('resource')
    .find(r => r.name.includes('/overview'));
    return e ? {server_ms: Math.round(e.responseStart - e.requestStart),
                done_ms: Math.round(e.responseEnd)} : null; }"""


def open_job_page(browser: Any, server: Server, job_id: str) -> dict[str, Any]:
    """A fresh context (cold cache): navigate and wait for the Pareto plot to be painted."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.add_init_script(INIT % json.dumps(server.token))
    page = context.new_page()
    counter = ByteCounter(context.new_cdp_session(page))
    page.goto(f"{server.url}/#/jobs/{job_id}", wait_until="commit")
    page.wait_for_function("window.__ls && window.__ls.paretoDrawnAt", timeout=120_000,
                           polling=20)
    drawn_ms = page.evaluate("window.__ls.paretoDrawnAt")  # ms since navigation start
    marks = page.evaluate("""Object.fromEntries(performance.getEntriesByType('mark')
        .map(m => [m.name, Math.round(m.startTime)]))""")
    overview = page.evaluate(OVERVIEW)
    if overview:
        marks["data-downloaded"] = overview["done_ms"]
    marks["scripts-downloaded"] = page.evaluate("""Math.round(Math.max(0, ...performance
        .getEntriesByType('resource').filter(e => e.name.includes('/static/'))
        .map(e => e.responseEnd)))""")
    plot = page.evaluate("""() => { const d = document.querySelector('#pareto-plot').dataset;
        return {points: +d.points, front: +d.front, total: +d.total}; }""")
    plot["painted_px"] = page.evaluate(PAINTED)
    time.sleep(0.3)  # responses that finished with the paint are counted
    longest = page.evaluate("Math.max(0, ...window.__longtasks.map(t => t[1]))")
    return {"context": context, "page": page, "time_to_plot_ms": drawn_ms, "marks_ms": marks,
            "bytes": counter.total(), "bytes_by_kind": counter.by_kind(), "plot": plot,
            "overview_server_ms": overview["server_ms"] if overview else None,
            "longest_task_ms": longest, "counter": counter}


def calibrate(browser: Any) -> float:
    """How fast this browser runs plain JavaScript now (a busy, shared machine is slow): ms
    for a 1e8-iteration loop, the best of three; a typical desktop takes about 100-200 ms."""
    page = browser.new_page()
    best = min(page.evaluate("""() => { const t = performance.now(); let s = 0;
        for (let i = 0; i < 1e8; i++) s += i % 7; return performance.now() - t + (s & 0); }""")
               for _ in range(3))
    page.close()
    return best


def live_delays(page: Any, job: Job, recs: list[Any], interval: float) -> dict[str, Any]:
    """Commit trials one by one; the page records when each is first painted."""
    page.evaluate("window.__longtasks = []")
    page.wait_for_selector("#live[data-state='live']", timeout=60_000)
    committed: dict[int, float] = {}
    for rec in recs:
        committed[rec.trial_id] = job.add([rec])[0]
        time.sleep(interval)
    ids = [r.trial_id for r in recs]
    page.wait_for_function(f"{json.dumps(ids)}.every(t => t in window.__ls.drawnAt)",
                           timeout=60_000, polling=50)
    drawn = page.evaluate("window.__ls.drawnAt")
    delays = sorted(drawn[str(t)] - committed[t] for t in ids)
    longest = page.evaluate("Math.max(0, ...window.__longtasks.map(t => t[1]))")
    return {"n": len(delays), "median_ms": statistics.median(delays),
            "p95_ms": delays[max(0, int(round(0.95 * len(delays))) - 1)],
            "max_ms": delays[-1], "longest_task_ms": longest}


def analysis_views(page: Any) -> dict[str, float]:
    """Each analysis view: request to first paint (the page's own stamp, ``data-ms``)."""
    out = {}
    page.locator("#analysis-card").scroll_into_view_if_needed()
    for tab in ("importance", "parallel", "slices"):
        page.click(f"#tab-{tab}")
        page.wait_for_selector(f"#{tab}-view[data-state='drawn']", timeout=120_000)
        out[tab] = float(page.get_attribute(f"#{tab}-view", "data-ms"))
    return out


def burst(page: Any, job: Job, recs: list[Any], per_step: int, step_s: float) -> dict[str, Any]:
    """Stream many trials into the open page (``per_step`` every ``step_s``); the longest
    main-thread task meanwhile, and the points drawn against the page's budget."""
    page.evaluate("window.__longtasks = []")
    t0 = time.perf_counter()
    for i in range(0, len(recs), per_step):
        job.add(recs[i:i + per_step])
        time.sleep(step_s)
    last = recs[-1].trial_id
    page.wait_for_function(f"window.__ls.events > 0 && +document.querySelector('#pareto-plot')"
                           f".dataset.total >= {last}", timeout=120_000, polling=100)
    time.sleep(1.5)  # the last snapshot and redraw
    tasks = page.evaluate("window.__longtasks")
    return {"trials": len(recs), "seconds": time.perf_counter() - t0,
            "rate_per_s": len(recs) / (time.perf_counter() - t0),
            "longest_task_ms": max([d for _, d in tasks], default=0.0),
            "long_tasks": len(tasks),
            "points_drawn": int(page.get_attribute("#pareto-plot", "data-points"))}


def tour(browser: Any, server: Server, job_id: str) -> dict[str, Any]:
    """Every page at both sizes; JavaScript errors and pages wider than the window."""
    out: dict[str, Any] = {"errors": [], "too_wide": [], "views": 0}
    trial = 0
    for size, (w, h) in SIZES.items():
        context = browser.new_context(viewport={"width": w, "height": h},
                                      has_touch=size == "phone", is_mobile=size == "phone")
        context.add_init_script(INIT % json.dumps(server.token))
        page = context.new_page()
        page.on("pageerror", lambda e, s=size: out["errors"].append(f"{s}: {e}"))
        page.on("console", lambda m, s=size: m.type == "error" and out["errors"].append(
            f"{s}: {m.text}"))

        def check(name: str, page: Any = page, size: str = size) -> None:
            out["views"] += 1
            if page.evaluate("document.documentElement.scrollWidth > window.innerWidth"):
                out["too_wide"].append(f"{size}: {name}")

        signed_out = browser.new_context(viewport={"width": w, "height": h},
                                         has_touch=size == "phone", is_mobile=size == "phone")
        signin = signed_out.new_page()
        signin.on("pageerror", lambda e, s=size: out["errors"].append(f"{s}: {e}"))
        signin.goto(f"{server.url}/#/signin")
        signin.wait_for_selector("form.signin #token", timeout=60_000)
        check("sign-in", signin)
        signed_out.close()
        page.goto(f"{server.url}/#/jobs")
        page.wait_for_selector(f"tr[data-job-id='{job_id}']", timeout=60_000)
        check("jobs")
        page.click("#new-job")
        page.wait_for_selector("#job-form .side-help h3", timeout=60_000)
        check("new-job form")
        page.click("#job-form .card-head button[title=Close]")
        page.click("#nav-devices")
        page.wait_for_selector("#devices-table, .card .empty", timeout=60_000)
        check("devices")
        page.goto(f"{server.url}/#/jobs/{job_id}")
        page.wait_for_selector("#pareto-plot[data-drawn]", timeout=120_000)
        page.wait_for_selector("#trials-table", timeout=60_000)
        check("job")
        for tab in ("importance", "parallel", "slices"):
            page.click(f"#tab-{tab}")
            page.wait_for_selector(f"#{tab}-view[data-state='drawn']", timeout=120_000)
            check(f"analysis {tab}")
        page.check("#trial-hide-repeats")
        page.click("#trials-table tbody tr:first-child")
        page.wait_for_selector("#trial-drawer #trial-layers", timeout=60_000)
        check("trial")
        page.click("#close-trial")
        page.goto(f"{server.url}/#/jobs/{job_id}/trials/{trial}")
        page.wait_for_selector("#trial-drawer #trial-layers", timeout=60_000)
        page.keyboard.press("Escape")
        page.goto(f"{server.url}/#/compare/{job_id}")
        page.wait_for_selector("#compare-plot[data-points]", timeout=120_000)
        check("compare")
        page.goto(f"{server.url}/#/compare")
        page.wait_for_selector(f"tr[data-job-id='{job_id}']", timeout=60_000)
        check("compare picker")
        context.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3, help="cold page opens")
    ap.add_argument("--live", type=int, default=30, help="trials streamed while watching")
    ap.add_argument("--interval", type=float, default=0.25, help="seconds between them")
    ap.add_argument("--burst", type=int, default=2000,
                    help="trials streamed fast (50 every 0.25 s) while timing main-thread tasks")
    ap.add_argument("--chromium", default=CHROMIUM)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "dashboard.json"))
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="ls-dash-bench-"))
    server = Server(work / "data", free_port(), extra_args=("--no-worker",)).start()
    result: dict[str, Any] = {"trials": args.trials, "machine": {
        "cpus": os.cpu_count(), "load_avg_1m_start": os.getloadavg()[0]}}
    try:
        all_recs = records(args.trials + args.live + args.burst)
        job = Job(server, args.trials + args.live + args.burst)
        t0 = time.perf_counter()
        job.add(all_recs[:args.trials])
        result["fill_trials_per_s"] = args.trials / (time.perf_counter() - t0)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            result["machine"]["js_loop_1e8_ms"] = calibrate(browser)
            opens = []
            for _ in range(args.runs):
                run = open_job_page(browser, server, job.id)
                opens.append(run)
                if len(opens) == 1:  # the server has computed no analysis view yet
                    result["analysis_ms"] = analysis_views(run["page"])
                if len(opens) < args.runs:
                    run["context"].close()
            last = opens[-1]
            last["page"].reload(wait_until="commit")
            last["page"].wait_for_function("window.__ls && window.__ls.paretoDrawnAt",
                                           timeout=120_000, polling=20)
            result["warm_reload_time_to_plot_ms"] = last["page"].evaluate(
                "window.__ls.paretoDrawnAt")
            live_end = args.trials + args.live
            result["live"] = live_delays(last["page"], job, all_recs[args.trials:live_end],
                                         args.interval)
            if args.burst:
                result["burst"] = burst(last["page"], job, all_recs[live_end:], 50, 0.25)
            last["context"].close()
            result["tour"] = tour(browser, server, job.id)
            browser.close()
        times = [o["time_to_plot_ms"] for o in opens]
        result["open"] = {
            "runs": [{k: o[k] for k in ("time_to_plot_ms", "marks_ms", "bytes", "bytes_by_kind",
                                        "plot", "overview_server_ms", "longest_task_ms")}
                     for o in opens],
            "time_to_plot_ms_median": statistics.median(times),
            "bytes_median": statistics.median(o["bytes"] for o in opens),
        }
        job.sink.on_end("succeeded")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    result["machine"]["load_avg_1m_end"] = os.getloadavg()[0]
    rows = [("time to drawn Pareto plot (cold cache, median)",
             f"{result['open']['time_to_plot_ms_median']:.0f} ms",
             f"< {GOALS['time_to_plot_ms']} ms",
             result["open"]["time_to_plot_ms_median"] < GOALS["time_to_plot_ms"]),
            ("bytes received until drawn (median)",
             f"{result['open']['bytes_median'] / 1e6:.2f} MB", "< 2 MB",
             result["open"]["bytes_median"] < GOALS["bytes"]),
            ("trial commit -> point on screen (p95)",
             f"{result['live']['p95_ms']:.0f} ms (median {result['live']['median_ms']:.0f}, "
             f"max {result['live']['max_ms']:.0f})", f"< {GOALS['live_delay_ms']} ms",
             result["live"]["p95_ms"] < GOALS["live_delay_ms"])]
    for view, ms in result["analysis_ms"].items():
        rows.append((f"analysis view drawn: {view} (cold server cache)", f"{ms:.0f} ms",
                     f"< {GOALS['analysis_view_ms']} ms", ms < GOALS["analysis_view_ms"]))
    if "burst" in result:
        b = result["burst"]
        rows.append((f"longest main-thread task, {b['trials']:,} trials streamed",
                     f"{b['longest_task_ms']:.0f} ms ({b['long_tasks']} tasks > 50 ms, "
                     f"{b['rate_per_s']:.0f}/s)", f"< {GOALS['live_longest_task_ms']} ms",
                     b["longest_task_ms"] < GOALS["live_longest_task_ms"]))
    t = result["tour"]
    rows.append((f"JavaScript errors, tour of {t['views']} views at 2 sizes",
                 f"{len(t['errors'])} errors, {len(t['too_wide'])} too wide", "0",
                 not t["errors"] and not t["too_wide"]))
    result["goals_met"] = all(r[3] for r in rows)
    first = result["open"]["runs"][0]
    print(f"\nDashboard, {args.trials:,} trials ({first['plot']['points']:,} points drawn, "
          f"{first['plot']['front']} on the front), {os.cpu_count()} CPUs, "
          f"load {result['machine']['load_avg_1m_start']:.1f}")
    print(f"{'measure':<50} {'result':<42} {'goal':<10} ok")
    for name, value, goal, ok in rows:
        print(f"{name:<50} {value:<42} {goal:<10} {'yes' if ok else 'NO'}")
    print(f"{'bytes by kind (run 1)':<50} " + ", ".join(
        f"{k} {v / 1e3:.0f} kB" for k, v in first["bytes_by_kind"].items()))
    marks = first["marks_ms"]
    print(f"{'run 1: scripts in / data in / data ready / drawn':<50} "
          f"{marks.get('scripts-downloaded', 0)} / {marks.get('data-downloaded', 0)} / "
          f"{marks.get('data-ready', 0)} / {marks.get('pareto-drawn', 0)} ms")
    print(f"{'overview request, server time (runs)':<50} " + " / ".join(
        f"{o['overview_server_ms']} ms" for o in result["open"]["runs"]))
    print(f"{'painted pixels in the plot area (run 1)':<50} {first['plot']['painted_px']:,}")
    print(f"{'JavaScript speed (1e8-step loop; desktop ~150 ms)':<50} "
          f"{result['machine']['js_loop_1e8_ms']:.0f} ms")
    print(f"{'warm reload: time to drawn plot':<50} "
          f"{result['warm_reload_time_to_plot_ms']:.0f} ms")
    if "burst" in result:
        print(f"{'points drawn after the burst (budget 2,000)':<50} "
              f"{result['burst']['points_drawn']:,}")
    for e in (t["errors"] + t["too_wide"])[:10]:
        print(f"  tour: {e}")
    print(f"{'longest main-thread task: load / live':<50} "
          f"{max(o['longest_task_ms'] for o in result['open']['runs']):.0f} ms / "
          f"{result['live']['longest_task_ms']:.0f} ms")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
