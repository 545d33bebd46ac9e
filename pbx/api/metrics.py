"""`GET /metrics`: the PBX's counters in the Prometheus text exposition format (0.0.4).

Gauges are read from the PBX when scraped (active calls, registered contacts,
uptime); counters are kept here from call events (calls by disposition, relay
packets of finished calls) and from `count_response(status)`, the hook the
SIP endpoint calls for every response it sends (wired by the lead in
pbx/server.py; without it the SIP response counter stays absent).
Relay packets of calls still in progress are added at scrape time, so the
counters only ever grow.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pbx.api.events import CallEnded, CallEvent

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    def __init__(self) -> None:
        self.sip_responses: Counter[int] = Counter()
        self.calls: Counter[str] = Counter()
        self.relay_ended = {"in": 0, "out": 0, "lost": 0}

    def count_response(self, status: int) -> None:
        """Hook: one SIP response sent with `status` (any class, 1xx to 6xx)."""
        self.sip_responses[status] += 1

    def on_event(self, event: CallEvent, sequence: int) -> None:
        """Bus subscriber: finished calls feed the call and relay counters."""
        if not isinstance(event, CallEnded):
            return
        self.calls[str(event.cdr.get("disposition", "FAILED"))] += 1
        stats = event.cdr.get("media_stats") or {}
        a, b = stats.get("caller") or {}, stats.get("callee") or {}
        packets_in = int(a.get("packets_in", 0)) + int(b.get("packets_in", 0))
        packets_out = int(a.get("packets_out", 0)) + int(b.get("packets_out", 0))
        self.relay_ended["in"] += packets_in
        self.relay_ended["out"] += packets_out
        self.relay_ended["lost"] += max(0, packets_in - packets_out)

    def render(self, status: dict[str, Any], live_relay: dict[str, int], extra: dict[str, int])\
            -> str:  # fmt: skip
        """The exposition text; `status` is pbx.status(), `live_relay` in/out/lost of calls in
        progress, `extra` webhook delivery counters."""
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

        version = _escape(str(status.get("version", "")))
        metric("deskpbx_info", "gauge", "DeskPBX version.", [(f'{{version="{version}"}}', 1)])
        metric("deskpbx_uptime_seconds", "gauge", "Seconds since the PBX started.",
               [("", float(status.get("uptime", 0.0)))])  # fmt: skip
        metric("deskpbx_active_calls", "gauge", "Calls in progress.",
               [("", float(status.get("active_calls", 0)))])  # fmt: skip
        metric("deskpbx_registered_contacts", "gauge", "Registered phone contacts.",
               [("", float(status.get("registered", 0)))])  # fmt: skip
        metric(
            "deskpbx_calls_total",
            "counter",
            "Finished calls by CDR disposition.",
            [(f'{{disposition="{_escape(d)}"}}', n) for d, n in sorted(self.calls.items())],
        )
        if self.sip_responses:
            metric(
                "deskpbx_sip_responses_total",
                "counter",
                "SIP responses sent by status code.",
                [(f'{{code="{c}"}}', n) for c, n in sorted(self.sip_responses.items())],
            )
        total = {k: self.relay_ended[k] + live_relay.get(k, 0) for k in self.relay_ended}
        metric(
            "deskpbx_relay_packets_total",
            "counter",
            "RTP packets through the relay.",
            [('{direction="in"}', total["in"]), ('{direction="out"}', total["out"])],
        )
        metric(
            "deskpbx_relay_packets_lost_total",
            "counter",
            "RTP packets received by the relay and not forwarded.",
            [("", total["lost"])],
        )
        limits = status.get("call_limits") or {}
        if limits:
            metric(
                "deskpbx_calls_refused_total",
                "counter",
                "New calls answered 503 at --max-calls or --max-call-rate.",
                [('{limit="max_calls"}', limits.get("refused_full", 0)),
                 ('{limit="max_call_rate"}', limits.get("refused_rate", 0))],
            )  # fmt: skip
        media = status.get("media_timeout") or {}
        if media:
            metric("deskpbx_calls_media_timeout_total", "counter",
                   "Calls hung up because a phone sent no media for --media-timeout seconds.",
                   [("", media.get("ended", 0))])  # fmt: skip
        ping = status.get("dialog_ping") or {}
        if ping:
            metric("deskpbx_calls_dialog_ping_total", "counter",
                   "Calls hung up because a phone answered an in-dialog OPTIONS with 481 or "
                   "not at all.", [("", ping.get("ended", 0))])  # fmt: skip
        session = status.get("session_timers") or {}
        if session:
            metric("deskpbx_calls_session_timer_total", "counter",
                   "Calls hung up because a phone or carrier let its session timer run out.",
                   [("", session.get("ended", 0))])  # fmt: skip
        bans = status.get("auth_bans") or {}
        if bans:
            metric(
                "deskpbx_auth_bans_total",
                "counter",
                "Addresses banned for repeated wrong passwords.",
                [("", bans.get("bans", 0))],
            )
            metric(
                "deskpbx_banned_addresses",
                "gauge",
                "Addresses banned now.",
                [("", len(bans.get("banned", ())))],
            )
            metric("deskpbx_banned_messages_dropped_total", "counter",
                   "SIP messages dropped unread from banned addresses.",
                   [("", bans.get("dropped", 0))])  # fmt: skip
        dns = status.get("dns") or {}
        if dns:
            metric("deskpbx_dns_names", "gauge", "Trunk host names kept from DNS.",
                   [("", dns.get("names", 0))])  # fmt: skip
            metric("deskpbx_dns_servers_down", "gauge",
                   "Carrier servers passed over after a timeout or 503 (for 30 s).",
                   [("", dns.get("targets_down", 0))])  # fmt: skip
        metric(
            "deskpbx_webhook_deliveries_total",
            "counter",
            "Webhook deliveries by outcome.",
            [(f'{{outcome="{k}"}}', v) for k, v in sorted(extra.items())],
        )
        return "\n".join(lines) + "\n"


def live_relay_counts(calls: Any) -> dict[str, int]:
    """RTP packets in/out/lost of the calls in progress (their relay sessions' counters)."""
    from pbx.media.relay import Leg

    out = {"in": 0, "out": 0, "lost": 0}
    for call in list(getattr(calls, "values", dict)()):
        relay = getattr(call, "relay", None)
        if relay is None or relay.closed:
            continue
        for leg in Leg:
            stats = relay.stats(leg)
            out["in"] += stats.packets_in
            out["out"] += stats.packets_out
            out["lost"] += stats.dropped
    return out
