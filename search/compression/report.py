"""The per-layer policy as a picture: channels kept per layer (and bit-width, if chosen)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def plot_policy(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Bar chart of the fraction of channels kept per pruned layer (``policy_rows`` output);
    bit-widths, when the policy has them, are written above the bars; layers of dropped
    blocks stand at 0, marked "removed"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [r["layer"] for r in rows]
    kept = []
    for r in rows:
        if r.get("removed"):  # a dropped block's layer: nothing of it is left
            kept.append(0.0)
        elif "channels" in r:
            k, c = (int(v) for v in str(r["channels"]).split("/"))
            kept.append(k / c)
        else:
            kept.append(1.0 - float(r.get("sparsity", 0.0)))
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(rows)), 3.5))
    bars = ax.bar(range(len(rows)), kept, color="#4C72B0")
    for bar, r in zip(bars, rows, strict=True):
        label = "removed" if r.get("removed") else r.get("bits", r.get("share"))
        if label is not None:
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.02, str(label),
                    ha="center", fontsize=7)
    ax.set_xticks(range(len(rows)), layers, rotation=90, fontsize=7)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("kept (channels or weights)")
    ax.set_title(title or "compression policy per layer")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
