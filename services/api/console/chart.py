"""A server-side SVG chart of a SIG's workers (desired, ready) and demand over its scaling decisions. Pure."""

from __future__ import annotations

import html
from typing import Any

W, H, PAD = 640, 200, 32
SERIES = (("desired", "#1f5fbf", "workers desired"), ("ready", "#1a7f37", "workers ready"),
          ("demand", "#b35900", "cores wanted"))


def points(decisions: list[dict[str, Any]], now: dict[str, float] | None = None) -> list[dict[str, float]]:
    """One point per decision (workers before -> after it, cores wanted), oldest first, then `now`."""
    out = [{"t": float(d.get("time") or 0), "desired": float(d.get("to") or 0), "ready": float(d.get("from") or 0),
            "demand": float(d.get("wanted_cores") or 0)} for d in decisions]
    out.sort(key=lambda p: p["t"])
    if now is not None:
        out.append(now)
    return out


def svg(decisions: list[dict[str, Any]], now: dict[str, float] | None = None) -> str:
    pts = points(decisions, now)
    if not pts:
        return '<p class="muted">No scaling decisions yet.</p>'
    t0, t1 = pts[0]["t"], max(pts[-1]["t"], pts[0]["t"] + 1)
    top = max(1.0, *(p[k] for p in pts for k in ("desired", "ready", "demand")))

    def xy(p: dict[str, float], key: str) -> str:
        x = PAD + (p["t"] - t0) / (t1 - t0) * (W - 2 * PAD)
        y = H - PAD - p[key] / top * (H - 2 * PAD)
        return f"{x:.1f},{y:.1f}"

    lines = [f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(xy(p, key) for p in pts)}">'
             f'<title>{html.escape(label)}</title></polyline>' for key, colour, label in SERIES]
    legend = "".join(f'<text x="{PAD + i * 160}" y="16" fill="{c}" font-size="12">{html.escape(label)}</text>'
                     for i, (_, c, label) in enumerate(SERIES))
    axis = (f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#888"/>'
            f'<text x="4" y="{PAD + 4}" font-size="11">{top:g}</text><text x="4" y="{H - PAD}" font-size="11">0</text>')
    return (f'<svg role="img" aria-label="Workers and demand over time ({len(pts)} decisions)" '
            f'viewBox="0 0 {W} {H}" width="100%" class="chart" data-points="{len(pts)}">'
            f'{axis}{legend}{"".join(lines)}</svg>')
