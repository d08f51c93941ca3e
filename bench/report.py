"""Scoring and markdown tables for the accuracy bench's two runners (offline and bridge).

Owns: `understood()` (the exact check: intent, entities, slot values), the outcome of one
sample (understood / wrong action / not understood; a non-command acted on or not), and the
tables: per voice group and per condition, tuning and held-out separately, with commands
understood, wrong actions counted on their own, non-commands acted on, and latency (bridge
runner) or decoding CPU per audio second (offline runner).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

Result = dict[str, Any]


def understood(result: dict[str, Any], expected: tuple[str, Any, dict[str, Any]]) -> bool:
    """The intent does exactly what was asked: its name, every expected entity and nothing else
    of the same kind, every expected slot value."""
    intent = result.get("intent")
    name, entities, values = expected
    entities = set(entities)
    if not isinstance(intent, dict) or intent.get("name") != name or result.get("rejected"):
        return False
    slots = intent.get("slots", {})
    resolved = {e for slot in slots.values() for e in slot.get("entity_ids", [])}
    if not entities <= resolved:
        return False
    if entities and resolved - entities - {e for e in resolved if e.split(".")[0] not in {x.split(".")[0] for x in entities}}:
        return False  # would act on something else of the same kind as well
    for key, value in values.items():
        slot = slots.get(key)
        if slot is None or str(slot.get("value")).lower() != str(value).lower():
            return False
    return True


def acted(r: Result, rejected: Callable[[Result], bool] | None = None) -> bool:
    """An intent came out and was not refused: the home would do something."""
    refused = rejected(r) if rejected else bool(r.get("rejected"))
    return isinstance(r.get("intent"), dict) and not refused


def outcome(r: Result, rejected: Callable[[Result], bool] | None = None) -> str:
    """understood | wrong | asked | missed for commands; acted | asked | refused for non-commands
    (asked: the verdict would ask back, bridge/recognition/verdict.py; offline runner only)."""
    asked = r.get("verdict") == "ask" and rejected is None
    if not r["command"]:
        return "acted" if acted(r, rejected) else "asked" if asked else "refused"
    if not acted(r, rejected):
        return "asked" if asked else "missed"
    return "understood" if understood({"intent": r["intent"]}, r["expected"]) else "wrong"


def _pct(a: int, b: int) -> str:
    return f"{a}/{b} ({100 * a / b:.1f}%)" if b else "–"


def _pctl(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, round(q * (len(values) - 1)))]


def _row(name: str, rows: list[Result], rejected: Callable[[Result], bool] | None, mode: str) -> str:
    cmds = [r for r in rows if r["command"]]
    nons = [r for r in rows if not r["command"]]
    got = [outcome(r, rejected) for r in cmds]
    ok, wrong, asked = got.count("understood"), got.count("wrong"), got.count("asked")
    non_got = [outcome(r, rejected) for r in nons]
    non_acted, non_asked = non_got.count("acted"), non_got.count("asked")
    if mode == "bridge":
        lat = [r["latency_ms"] for r in rows if r.get("latency_ms") is not None]
        extra = f"{statistics.median(lat):.0f} / {_pctl(lat, 0.95):.0f} ms" if lat else "–"
    else:
        audio = sum(r.get("audio") or 0.0 for r in rows)
        extra = f"{sum(r.get('cpu') or 0.0 for r in rows) / audio:.3f}" if audio else "–"
    return (f"| {name} | {_pct(ok, len(cmds))} | {wrong} ({100 * wrong / max(1, len(cmds)):.1f}%) "
            f"| {_pct(non_acted, len(nons))} | {_pct(non_asked, len(nons))} "
            f"| {100 * asked / max(1, len(cmds)):.1f} | {extra} |")


def tables(results: list[Result], mode: str, rejected: Callable[[Result], bool] | None = None) -> str:
    """Markdown: per split, one table by voice group and one by condition (mode: offline | bridge)."""
    last = "end of speech → intent p50 / p95" if mode == "bridge" else "decode CPU s per audio s"
    head = (f"| {{}} | commands understood at once | wrong actions | non-commands acted on "
            f"| non-commands asked about | asked per 100 commands | {last} |\n|---|---|---|---|---|---|---|")
    out: list[str] = []
    for split in ("tuning", "heldout"):
        rows = [r for r in results if r["split"] == split]
        if not rows:
            continue
        title = "Tuning set" if split == "tuning" else "HELD-OUT set (never tuned on)"
        voices = sorted({r["voice"] for r in rows})
        homes = sorted({r["home"] for r in rows})
        out.append(f"### {title}: {len(rows)} samples, {len(voices)} voices, homes {', '.join(homes)}\n")
        out.append(head.format("voice group"))
        for group in sorted({r["group"] for r in rows}):
            out.append(_row(group, [r for r in rows if r["group"] == group], rejected, mode))
        out.append(_row("**all**", rows, rejected, mode))
        out.append("")
        out.append(head.format("condition"))
        order = ["clean", "pink", "babble", "music", "reverb", "far"]
        labels = sorted({(order.index(r["condition"]), -(r["snr"] or 0), r["label"]) for r in rows})
        for _, _, lab in labels:
            out.append(_row(lab, [r for r in rows if r["label"] == lab], rejected, mode))
        out.append("")
        wrong = [r for r in rows if r["command"] and outcome(r, rejected) == "wrong"]
        acted_non = [r for r in rows if not r["command"] and outcome(r, rejected) == "acted"]
        if wrong or acted_non:
            out.append("Wrong actions and non-commands acted on:\n")
            for r in wrong + acted_non:
                intent = r.get("intent") or {}
                slots = {k: v.get("value") for k, v in (intent.get("slots") or {}).items()}
                out.append(f"- {r['voice']} ({r['label']}): \"{r['text']}\" → heard \"{r.get('heard', '')}\" "
                           f"→ {intent.get('name')} {slots}")
            out.append("")
    return "\n".join(out)
