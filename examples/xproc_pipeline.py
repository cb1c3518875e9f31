"""A producer process feeding an asyncio consumer through shared memory,
woken by user interrupts, next to the same program woken through a pipe.

What it shows
-------------
The consumer (this process) runs an asyncio loop (uintr_loop). It creates a
ring of work items in shared memory (a memfd) and a Receiver, and starts a
producer with ``multiprocessing`` (fork start method: the child inherits the
ring and the vector fd, as with the kernel's vector fds). The producer is
plain Python, with no event loop: for each item it writes the item into the
ring, publishes the new head, then wakes the consumer.

* ``uintr``: the wakeup is ``Sender(vector_fd).send()``. While the consumer
  is busy draining, posts coalesce (ON already set): no syscall at all; only
  a post that finds the consumer asleep writes its eventfd, once.
* ``pipe``: the wakeup is ``os.write(pipe, b"x")`` for every item and the
  consumer's ``add_reader`` callback reads the pipe and drains the ring: what
  one writes on stock asyncio.

Two phases per transport: ``burst`` (the producer goes flat out; the ring's
capacity is the backpressure) and ``paced`` (the producer pauses between
items, so nearly every item has to wake a sleeping consumer). The consumer
checks every item arrives exactly once, in order, with the right payload.

Ordering: the producer stores an item's fields, then the head; the consumer
loads the head, then the fields. CPython performs each store as written, and
x86-64 keeps stores in order (TSO), which is what this single-producer ring
relies on; the user interrupt itself only says "look at the ring".

Usage::

    python examples/xproc_pipeline.py                  # both transports
    python examples/xproc_pipeline.py --quick --json out.json

Columns: ``items/s`` over the phase; ``p50``/``p99`` latency from the
producer's stamp (CLOCK_MONOTONIC, one clock for both processes) to the
consumer taking the item; ``wakeups`` how often the consumer was called;
``syscalls`` the producer's wakeup syscalls (uintr: eventfd writes, from the
loop's statistics; pipe: one write per item).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import mmap
import multiprocessing
import os
import sys
import time
from dataclasses import asdict, dataclass

import uintr_loop

CAPACITY = 1024                 # items in the ring
HEAD, TAIL, ITEMS = 0, 8, 16    # u64 indices: head and tail on their own cache lines
FIELDS = 3                      # seq, stamp, payload
RING_BYTES = (ITEMS + CAPACITY * FIELDS) * 8
VECTOR = 1


def payload_of(seq: int) -> int:
    return (seq * 2654435761) & 0xFFFFFFFF


def producer(ring_fd: int, wake: dict[str, int], count: int, pause_s: float) -> None:
    """The producer process: plain Python, no event loop."""
    ring = memoryview(mmap.mmap(ring_fd, RING_BYTES)).cast("Q")
    if "vector_fd" in wake:
        sender = uintr_loop.Sender(wake["vector_fd"])
        os.close(wake["vector_fd"])            # registered: the fd is no longer needed

        def notify() -> None:
            sender.send()
    else:
        wfd = wake["pipe"]

        def notify() -> None:
            os.write(wfd, b"x")
    clock = time.perf_counter_ns
    for seq in range(1, count + 1):
        while seq - ring[TAIL] > CAPACITY:      # full: wait for the consumer
            time.sleep(0)
        base = ITEMS + (seq % CAPACITY) * FIELDS
        ring[base] = seq
        ring[base + 1] = clock()
        ring[base + 2] = payload_of(seq)
        ring[HEAD] = seq                        # publish, then wake
        notify()
        if pause_s:
            time.sleep(pause_s)


@dataclass
class Row:
    transport: str
    phase: str
    items: int
    items_per_s: float
    p50_us: float
    p99_us: float
    wakeups: int
    syscalls: int
    lost: int


async def consume(transport: str, phase: str, count: int, pause_s: float) -> Row:
    loop = asyncio.get_running_loop()
    ring_fd = os.memfd_create("xproc-ring", os.MFD_CLOEXEC)
    os.ftruncate(ring_fd, RING_BYTES)
    ring_map = mmap.mmap(ring_fd, RING_BYTES)
    ring = memoryview(ring_map).cast("Q")
    done = asyncio.Event()
    latencies: list[int] = []
    state = {"next": 1, "wakeups": 0, "bad": 0}
    clock = time.perf_counter_ns

    def drain(*_: object) -> None:
        state["wakeups"] += 1
        head, seq = ring[HEAD], state["next"]
        while seq <= head:
            base = ITEMS + (seq % CAPACITY) * FIELDS
            if ring[base] != seq or ring[base + 2] != payload_of(seq):
                state["bad"] += 1
            latencies.append(clock() - ring[base + 1])
            seq += 1
        state["next"] = seq
        ring[TAIL] = seq - 1                    # free the slots
        if seq > count:
            done.set()

    receiver = None
    rfd = wfd = -1
    loop_stats = getattr(loop, "statistics", None)
    writes_before = loop_stats().notifications if loop_stats else 0
    wake: dict[str, int] = {}
    if transport == "uintr":
        receiver = uintr_loop.Receiver(drain, loop=loop)
        vfd = receiver.vector_fd(VECTOR)
        wake["vector_fd"] = vfd.fileno()
    else:
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)

        def readable() -> None:
            try:
                while os.read(rfd, 65536):
                    pass
            except BlockingIOError:
                pass
            drain()

        loop.add_reader(rfd, readable)
        wake["pipe"] = wfd
    # fork: the child inherits the ring and the vector fd (or the pipe)
    child = multiprocessing.get_context("fork").Process(
        target=producer, args=(ring_fd, wake, count, pause_s))
    t0 = time.perf_counter()
    child.start()
    try:
        await asyncio.wait_for(done.wait(), 120)
        elapsed = time.perf_counter() - t0
        child.join(60)        # it has produced everything: only its exit is left
        if child.exitcode != 0:
            raise RuntimeError(f"producer exited with {child.exitcode}")
    finally:
        if child.is_alive():
            child.kill()
            child.join()
    if receiver is not None:
        # eventfd writes: only the producer posts to this loop during the phase
        syscalls = loop_stats().notifications - writes_before if loop_stats else -1
        vfd.close()
        receiver.close()
    else:
        syscalls = count
        loop.remove_reader(rfd)
        os.close(rfd)
        os.close(wfd)
    del ring
    ring_map.close()
    os.close(ring_fd)
    lat = sorted(latencies)
    return Row(transport, phase, len(lat), len(lat) / elapsed,
               lat[len(lat) // 2] / 1000, lat[min(len(lat) - 1, int(0.99 * len(lat)))] / 1000,
               state["wakeups"], syscalls, count - len(lat) + state["bad"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200_000, help="burst phase items")
    parser.add_argument("--paced-items", type=int, default=5_000)
    parser.add_argument("--pause-us", type=float, default=100.0)
    parser.add_argument("--quick", action="store_true", help="a few thousand items (tests)")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    if args.quick:
        args.items, args.paced_items = 20_000, 500

    rows: list[Row] = []
    loop = uintr_loop.new_event_loop()          # (asyncio.Runner is 3.11+)
    try:
        for phase, count, pause in (("burst", args.items, 0.0),
                                    ("paced", args.paced_items, args.pause_us / 1e6)):
            for transport in ("uintr", "pipe"):
                rows.append(loop.run_until_complete(consume(transport, phase, count, pause)))
    finally:
        loop.close()

    print(f"{'transport':9} {'phase':6} {'items':>8} {'items/s':>10} {'p50 us':>8} "
          f"{'p99 us':>9} {'wakeups':>8} {'syscalls':>9} {'lost':>5}")
    for r in rows:
        print(f"{r.transport:9} {r.phase:6} {r.items:8d} {r.items_per_s:10,.0f} {r.p50_us:8.1f} "
              f"{r.p99_us:9.1f} {r.wakeups:8d} {r.syscalls:9d} {r.lost:5d}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": [asdict(r) for r in rows]}, f, indent=2)
    return 1 if any(r.lost for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
