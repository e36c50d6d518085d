"""Server and device load over the measured window [warm-up, end].

Busy time is credited when a step (or a draft) is scheduled, so the part that runs past
either edge of the window is taken off: utilization can never exceed 1. Because a step
starts the moment anything waits, utilization stays near 1 at any load; the load signals
are `mean_batch_occupancy` (sequences per step / the step's sequence cap) and
`kv_occupancy_mean` (KV in use / KV capacity, time-weighted, sampled at step boundaries).
"""

from __future__ import annotations

from typing import Any

from dsd.sim.entities import DraftDevice, TargetServer


def kv_area_at(server: TargetServer, t: float) -> float:
    """Integral of the server's KV in use up to `t` (from its last step-boundary sample)."""
    return server.kv_area + server.kv_last * (t - server.kv_t)


class WindowStats:
    def __init__(self, servers: list[TargetServer], devices: list[DraftDevice]) -> None:
        self.servers = servers
        self.devices = devices
        self.t0 = 0.0
        self.busy0 = [0.0] * len(servers)
        self.batches0 = [0] * len(servers)
        self.jobs0 = [0] * len(servers)
        self.area0 = [0.0] * len(servers)
        self.draft0 = [0.0] * len(devices)

    def start(self, t: float) -> None:
        """Snapshot the counters when the window opens (the end of warm-up)."""
        self.t0 = t
        for i, s in enumerate(self.servers):
            self.busy0[i] = s.busy_time - max(0.0, s.batch_end - t)
            self.batches0[i] = s.batches
            self.jobs0[i] = s.batched_jobs
            self.area0[i] = kv_area_at(s, t)
        for i, d in enumerate(self.devices):
            self.draft0[i] = d.busy_time - max(0.0, d.busy_until - t)

    def finish(self, end: float) -> dict[str, Any]:
        span = end - self.t0
        servers = self.servers
        busy = batches = jobs = 0.0
        occupancy = kv = 0.0
        for i, s in enumerate(servers):
            busy += s.busy_time - max(0.0, s.batch_end - end) - self.busy0[i]
            n = s.batches - self.batches0[i]
            k = s.batched_jobs - self.jobs0[i]
            batches += n
            jobs += k
            occupancy += k / s.seq_cap
            kv += (kv_area_at(s, end) - self.area0[i]) / max(s.kv_capacity, 1)
        draft = sum(d.busy_time - max(0.0, d.busy_until - end) - self.draft0[i]
                    for i, d in enumerate(self.devices))
        per_server = len(servers) * span
        return {
            "window_s": span,
            "target_utilization": busy / per_server if span > 0 else 0.0,
            "mean_batch_size": jobs / batches if batches else 0.0,
            "mean_batch_occupancy": occupancy / batches if batches else 0.0,
            "kv_occupancy_mean": kv / per_server if span > 0 else 0.0,
            "draft_utilization": draft / (len(self.devices) * span) if span > 0 else 0.0,
        }
