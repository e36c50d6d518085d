"""Arrival drivers: when requests appear at which edge device.

Open loop (Poisson, gamma, constant) spreads one stream uniformly over the devices; closed
loop runs `concurrency` users per device that think between requests; trace replay takes
arrival times and lengths (and optionally devices) from a JSONL file. Drivers generate
lazily, one pending arrival at a time, so memory does not grow with simulated time.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from dsd.config import ScenarioConfig, to_builtins
from dsd.sim.entities import DraftDevice, Request
from dsd.workload import ThinkTime, length_profile, make_arrivals, read_trace


class _Driver:
    def __init__(self, config: ScenarioConfig, devices: list[DraftDevice],
                 rng: random.Random) -> None:
        sim = config.simulation
        self.devices = devices
        self.rng = rng
        self.duration = sim.duration_s
        self.warmup = sim.warmup_s
        self.max_requests = sim.max_requests or float("inf")
        self.profile = length_profile(config.workload.dataset, config.workload.prompt,
                                      config.workload.output)
        self.created = 0
        self.sim: Any = None

    def bind(self, sim: Any) -> None:
        self.sim = sim

    def _can_create(self, now: float) -> bool:
        return now < self.duration and self.created < self.max_requests

    def _new(self, device: DraftDevice, now: float, prompt: int, output: int,
             user: int = -1) -> Request:
        req = Request(self.created, device, now, prompt, output, now >= self.warmup, user)
        self.created += 1
        return req

    def start(self) -> None:
        raise NotImplementedError

    def on_finish(self, req: Request) -> None:
        """Closed-loop users submit their next request after thinking; others ignore this."""


class OpenLoopDriver(_Driver):
    def __init__(self, config: ScenarioConfig, devices: list[DraftDevice],
                 rng: random.Random) -> None:
        super().__init__(config, devices, rng)
        spec = to_builtins(config.workload.arrival, drop_none=True)
        if "rate_per_device" in spec:
            spec["rate"] = spec.pop("rate_per_device") * len(devices)
        for key in ("concurrency", "think_time_s", "think_dist", "path"):
            spec.pop(key, None)
        if spec["type"] != "gamma":
            spec.pop("cv", None)
        self.process = make_arrivals(spec)

    def start(self) -> None:
        self._schedule(self.process.next_gap(self.rng))

    def _schedule(self, at: float) -> None:
        # An arrival that would not be admitted is not scheduled: a drained run then ends
        # at its last completion, not at a phantom arrival after the end.
        if self._can_create(at):
            self.sim.loop.at(at, self._arrive)

    def _arrive(self, _: Any) -> None:
        now = self.sim.loop.now
        rng = self.rng
        prompt, output = self.profile.sample(rng)
        device = self.devices[rng.randrange(len(self.devices))]
        self.sim.admit(self._new(device, now, prompt, output))
        self._schedule(now + self.process.next_gap(rng))


class ClosedLoopDriver(_Driver):
    def __init__(self, config: ScenarioConfig, devices: list[DraftDevice],
                 rng: random.Random) -> None:
        super().__init__(config, devices, rng)
        arrival = config.workload.arrival
        self.concurrency = arrival.concurrency
        self.think = ThinkTime(arrival.think_time_s, arrival.think_dist)

    def start(self) -> None:
        # Users start staggered over one think time so they do not arrive in lock step.
        for device in self.devices:
            for user in range(self.concurrency):
                delay = self.rng.random() * self.think.mean_s
                if delay < self.duration:
                    self.sim.loop.at(delay, self._submit, (device, user))

    def _submit(self, who: tuple[DraftDevice, int]) -> None:
        now = self.sim.loop.now
        if not self._can_create(now):
            return
        prompt, output = self.profile.sample(self.rng)
        self.sim.admit(self._new(who[0], now, prompt, output, who[1]))

    def on_finish(self, req: Request) -> None:
        submit_at = self.sim.loop.now + self.think.sample(self.rng)
        if self._can_create(submit_at):  # a user thinking past the end leaves no idle event
            self.sim.loop.at(submit_at, self._submit, (req.device, req.user))


class TraceDriver(_Driver):
    def __init__(self, config: ScenarioConfig, devices: list[DraftDevice],
                 rng: random.Random) -> None:
        super().__init__(config, devices, rng)
        self.records: Iterator[Any] = iter(read_trace(config.workload.arrival.path))

    def start(self) -> None:
        self._schedule_next()

    def _schedule_next(self) -> None:
        record = next(self.records, None)
        if record is not None and self._can_create(record.arrival_s):
            self.sim.loop.at(record.arrival_s, self._arrive, record)

    def _arrive(self, record: Any) -> None:
        now = self.sim.loop.now
        n = len(self.devices)
        device = self.devices[record.device % n if record.device is not None
                              else self.rng.randrange(n)]
        self.sim.admit(self._new(device, now, record.prompt_tokens, record.output_tokens))
        self._schedule_next()


def make_driver(config: ScenarioConfig, devices: list[DraftDevice],
                rng: random.Random) -> _Driver:
    kind = config.workload.arrival.type
    if kind == "closed_loop":
        return ClosedLoopDriver(config, devices, rng)
    if kind == "trace":
        return TraceDriver(config, devices, rng)
    return OpenLoopDriver(config, devices, rng)
