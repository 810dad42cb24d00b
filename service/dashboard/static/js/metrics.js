// What a metric is called and measured in: the job document's metric registry
// (job.metrics = {name: {label, unit, device, direction}}, job.reward_formula). A metric the
// registry does not describe is shown by its raw name, so older jobs still read.

const KNOWN_COLUMNS = {
  reward: { label: "Reward" }, trial_id: { label: "Trial" }, duration_s: { label: "Duration", unit: "s" },
  evaluation_index: { label: "Evaluation" },
};

export class Metrics {
  constructor(job) {
    this.registry = (job && job.metrics) || {};
    this.formula = (job && job.reward_formula) || "";
  }

  /** {label, unit, device, direction} of a metric name or axis key ("metrics.x", "recorded.x", a column). */
  info(key) {
    const name = String(key).replace(/^(metrics|recorded)\./, "");
    const entry = this.registry[name] || (key === name ? KNOWN_COLUMNS[name] : null) || {};
    return { name, label: entry.label || name, unit: entry.unit || "", device: entry.device || "",
      direction: entry.direction || null, known: !!this.registry[name] };
  }

  /** "Latency on Pixel 3" (the device is added when the label does not name it). */
  label(key) {
    const m = this.info(key);
    const flat = (t) => String(t).toLowerCase().replace(/[^a-z0-9]/g, "");
    const device = m.device && !flat(m.label).includes(flat(m.device)) ? ` on ${m.device}` : "";
    return `${m.label}${device}`;
  }

  /** "Latency on Pixel 3 (ms)": axis titles, table headers, legends. */
  title(key) {
    const unit = this.info(key).unit;
    return unit ? `${this.label(key)} (${unit})` : this.label(key);
  }

  unit(key) {
    return this.info(key).unit;
  }

  /** A value with its unit ("12.3 ms"; "%" sticks to the number). */
  withUnit(key, text) {
    const unit = this.unit(key);
    if (!unit || text === "—") return text;
    return unit === "%" ? `${text}%` : `${text} ${unit}`;
  }
}
