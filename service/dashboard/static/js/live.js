// The job's event stream (server-sent events). The browser resumes by itself after a network
// drop (Last-Event-ID); if the server closed the stream for good we reopen from our cursor.
import { sessionReady } from "./api.js";

export class Live {
  constructor(jobId, cursor, { update, end, status }) {
    this.jobId = jobId;
    this.cursor = cursor;
    this.handlers = { update, end, status };
    this.source = null;
    this.stopped = false;
    this.retry = null;
  }

  async start() {
    if (this.stopped) return;
    if (document.readyState !== "complete") {
      // A stream opened before the page's load event keeps the page "loading" in Chromium.
      window.addEventListener("load", () => this.start(), { once: true });
      return;
    }
    try {
      await sessionReady(); // the cookie EventSource authenticates with
    } catch {
      this.handlers.status("reconnecting");
      this.retry = setTimeout(() => this.start(), 3000);
      return;
    }
    if (this.stopped) return;
    const url = `/api/v1/jobs/${encodeURIComponent(this.jobId)}/events?since=${encodeURIComponent(this.cursor)}`;
    const es = new EventSource(url, { withCredentials: true });
    this.source = es;
    es.onopen = () => this.handlers.status("live");
    es.addEventListener("update", (e) => {
      if (e.lastEventId) this.cursor = e.lastEventId;
      window.__ls.events += 1;
      this.handlers.update(JSON.parse(e.data));
    });
    es.addEventListener("end", (e) => {
      if (e.lastEventId) this.cursor = e.lastEventId;
      es.close();
      this.handlers.status("ended");
      this.handlers.end(JSON.parse(e.data));
    });
    es.onerror = () => {
      if (this.stopped) return;
      if (es.readyState === EventSource.CLOSED) {
        this.handlers.status("reconnecting");
        clearTimeout(this.retry);
        this.retry = setTimeout(() => this.start(), 3000);
      } else {
        this.handlers.status("reconnecting");
      }
    };
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retry);
    this.source?.close();
  }
}
