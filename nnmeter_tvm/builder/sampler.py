"""Sampling kernel configurations: a prior drawn from real models, then nn-Meter's adaptive rounds.

The **prior** is the multiset of kernel specs (:mod:`.kernel_models`) found in the layers of
the zoo's models: what real CNNs use, with their frequencies.  The **initial** draw takes specs
from the prior (the frequent ones first, then their channel-rescaled neighbours); each
**adaptive** round takes the held-out configurations the current model gets wrong by more than
10 % and draws new specs near them: every channel count times a factor in [0.5, 1.2], HW,
kernel size, stride, padding and epilogue kept (nn-Meter's rule).  A spec already measured or
already drawn is never drawn again.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from .kernel_models import CHANNEL_FIELDS, rescale, spec_from_kernel, spec_key

LOW, HIGH = 0.5, 1.2


def prior_from_kernels(pairs) -> Counter:
    """Count specs over ``(graph, kernels)`` pairs: ``Counter(spec_key -> count)``."""
    counts = Counter()
    for graph, kernels in pairs:
        for kernel in kernels:
            spec = spec_from_kernel(kernel, graph)
            if spec is not None:
                counts[spec_key(spec)] += 1
    return counts


def _channels(spec: dict) -> list[int]:
    out = []
    for field in CHANNEL_FIELDS.get(spec["kind"], ()):
        value = spec[field]
        out.extend(value if isinstance(value, list) else [value])
    return out


def in_bounds(source: dict, spec: dict, low: float = LOW, high: float = HIGH) -> bool:
    """True when ``spec`` is a neighbour of ``source``: same everything but the channel counts,
    each within [low, high] x the source's (rounding to the group multiple allowed)."""
    fixed = {k: v for k, v in source.items() if k not in CHANNEL_FIELDS.get(source["kind"], ())
             and k != "groups"}
    if any(spec.get(k) != v for k, v in fixed.items()):
        return False
    a, b = _channels(source), _channels(spec)
    if len(a) != len(b):
        return False
    slack = max(1, source.get("groups", 1)) if source["kind"] == "conv" else 1
    if source["kind"] == "conv" and source["groups"] == source["cin"] == source["cout"]:
        slack = 1
    return all(low * x - slack <= y <= high * x + slack and y >= 1 for x, y in zip(a, b))


class Sampler:
    """Draws specs without repeats.

    ``prior`` is a ``Counter`` of spec keys (or a list of specs); ``seed`` seeds the generator.
    Learned state: ``seen_`` holds the keys of every spec drawn or marked measured.
    """

    def __init__(self, prior, seed: int = 0, low: float = LOW, high: float = HIGH,
                 max_channels: int = 4096):
        self.prior = prior if isinstance(prior, Counter) else Counter(spec_key(s) for s in prior)
        self.seed = seed
        self.low, self.high = low, high
        self.max_channels = max_channels
        self.rng_ = np.random.default_rng(seed)
        self.seen_: set[str] = set()

    def mark(self, specs) -> None:
        """Record specs measured before (a resumed build) so they are not drawn again."""
        for spec in specs:
            self.seen_.add(spec if isinstance(spec, str) else spec_key(spec))

    def _take(self, spec: dict) -> bool:
        key = spec_key(spec)
        if key in self.seen_ or max(_channels(spec) or [1]) > self.max_channels:
            return False
        self.seen_.add(key)
        return True

    def initial(self, n: int, keep=None) -> list[dict]:
        """Up to ``n`` specs: prior specs in random order weighted by frequency, then rescaled
        neighbours of prior specs.  ``keep(spec) -> bool`` filters (e.g. by family)."""
        import json

        keys = [k for k in self.prior if keep is None or keep(json.loads(k))]
        if not keys:
            return []
        weights = np.array([self.prior[k] for k in keys], float)
        order = self.rng_.choice(len(keys), size=len(keys), replace=False, p=weights / weights.sum())
        out = []
        for i in order:
            if len(out) >= n:
                return out
            spec = json.loads(keys[i])
            if self._take(spec):
                out.append(spec)
        tries = 0
        while len(out) < n and tries < 20 * n:
            tries += 1
            source = json.loads(keys[self.rng_.choice(len(keys), p=weights / weights.sum())])
            spec = rescale(source, self.rng_, self.low, self.high)
            if self._take(spec):
                out.append(spec)
        return out

    def near(self, source: dict, n: int) -> list[dict]:
        """Up to ``n`` new specs near ``source`` (channels x [low, high], the rest kept)."""
        out, tries = [], 0
        while len(out) < n and tries < 20 * n:
            tries += 1
            spec = rescale(source, self.rng_, self.low, self.high)
            if in_bounds(source, spec, self.low, self.high) and self._take(spec):
                out.append(spec)
        return out
