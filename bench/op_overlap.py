"""Interval arithmetic over op runs: unions, overlaps, concurrency across devices, and the
wavefront of layers running ahead of the layers above them (bench.timeline_devices).

tests/bench/test_timeline_devices.py checks it on hand-built cases.
"""
import collections

Interval = collections.namedtuple("Interval", ["device", "start", "end"])  # seconds
Concurrency = collections.namedtuple("Concurrency", ["wall", "busy", "multi_device"])
# wall: last end - first start; busy: time some device ran an op; multi_device: time
# ops of >= 2 different devices ran at once (seconds).
Wavefront = collections.namedtuple("Wavefront", ["pairs", "overlapping", "overlap_time",
                                                 "max_lead"])
# pairs: (layer k + 1, step t) pairs compared; overlapping: how many of them ran at the
# same instant as ops of layer k at a later step; overlap_time: summed (seconds);
# max_lead: the most steps layer k was ahead of layer k + 1 while both ran.


def merge(spans):
    """(start, end) pairs -> their union as sorted, disjoint (start, end) pairs."""
    merged = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def overlap_time(a, b):
    """Length of the intersection of the unions of two lists of (start, end) pairs."""
    a, b = merge(a), merge(b)
    total, i, j = 0.0, 0, 0
    while i < len(a) and j < len(b):
        total += max(0.0, min(a[i][1], b[j][1]) - max(a[i][0], b[j][0]))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def concurrency(intervals):
    """Intervals -> Concurrency: a sweep over starts and ends, counting the devices
    with at least one op running between consecutive instants."""
    if not intervals:
        return Concurrency(0.0, 0.0, 0.0)
    events = sorted([(i.start, 1, i.device) for i in intervals] +
                    [(i.end, -1, i.device) for i in intervals], key=lambda e: (e[0], e[1]))
    running = collections.Counter()  # device -> ops running
    busy = multi = 0.0
    previous = events[0][0]
    for time, delta, device in events:
        active = sum(1 for count in running.values() if count > 0)
        busy += (time - previous) if active >= 1 else 0.0
        multi += (time - previous) if active >= 2 else 0.0
        running[device] += delta
        previous = time
    wall = max(i.end for i in intervals) - min(i.start for i in intervals)
    return Concurrency(wall, busy, multi)


def busy_by_device(intervals):
    """Intervals -> {device: time it had at least one op running}."""
    spans = collections.defaultdict(list)
    for i in intervals:
        spans[i.device].append((i.start, i.end))
    return {device: sum(end - start for start, end in merge(s)) for device, s in spans.items()}


def wavefront(layers):
    """layers[k][t]: (start, end) pairs of layer k's ops at step t -> Wavefront: for each
    adjacent pair of layers and each step t of the upper one, whether the lower layer
    ran a later step (t' > t) at the same instant, for how long, and the largest t' - t."""
    pairs = overlapping = max_lead = 0
    total = 0.0
    for lower, upper in zip(layers, layers[1:]):
        for t, upper_ops in enumerate(upper):
            later = [span for step in lower[t + 1:] for span in step]
            time = overlap_time(later, upper_ops)
            pairs += 1
            overlapping += time > 0
            total += time
            max_lead = max([max_lead] + [lead for lead, step in enumerate(lower[t:]) if
                                          lead and overlap_time(step, upper_ops) > 0])
    return Wavefront(pairs, overlapping, total, max_lead)
