"""make wheel's smoke test: the installed wheel, run with no C compiler on
PATH, from outside the checkout. Exits non-zero on any failure."""
from __future__ import annotations

import asyncio
import shutil
import sys
import sysconfig
import threading
import time
from pathlib import Path

compilers = {c: shutil.which(c) for c in ("gcc", "cc", "clang", "c++", "g++")}
assert not any(compilers.values()), f"a C compiler is reachable: {compilers}"

import uintr_loop  # noqa: E402

site = Path(sysconfig.get_paths()["purelib"]).resolve()
where = Path(uintr_loop.__file__).resolve()
assert site in where.parents, f"uintr_loop imported from {where}, not from the venv's {site}"
print(f"uintr_loop {uintr_loop.__version__} from {where.parent}")
print(uintr_loop.capabilities().describe().splitlines()[0])

# The product ships no test scaffolding (tests/_testcore holds it).
from uintr_loop import _core  # noqa: E402

TEST_ONLY = ("UpidCell", "PacedPoster", "half_post", "repair_count", "sender_watch_state",
             "liveness_state", "preempt_thread_only", "handle_pool_size", "_handle_pool_size",
             "main_tstate_repaired", "main_tstate_repairs")
leaked = [n for n in TEST_ONLY if hasattr(_core, n)]
leaked += sorted(p.name for p in where.parent.iterdir() if "fake" in p.name or "testcore" in p.name)
assert not leaked, f"the installed package ships test-only code: {leaked}"


async def round_trip() -> tuple[str, tuple[int, ...]]:
    loop = asyncio.get_running_loop()
    got: list[int] = []
    done = asyncio.Event()

    def handler(vector: int) -> None:
        got.append(vector)
        done.set()

    receiver = uintr_loop.Receiver(handler)
    sender = uintr_loop.Sender(receiver.vector_fd(5))
    threading.Thread(target=sender.send).start()
    await asyncio.wait_for(done.wait(), 10)
    woken = await asyncio.to_thread(lambda: "to_thread")
    stats = receiver.statistics()
    assert stats.posted == stats.delivered == 1, stats
    sender.close()
    receiver.close()
    assert loop.statistics().posted >= 1  # type: ignore[attr-defined]
    return woken, tuple(got)


for base in ("uvloop", "asyncio"):
    result = uintr_loop.run(round_trip(), base=base)
    assert result == ("to_thread", (5,)), result
    print(f"base={base}: receiver, sender, to_thread: ok")

start = time.perf_counter()
try:
    with uintr_loop.deadline(0.05):
        while True:
            pass
except TimeoutError:
    print(f"deadline: stopped a loop that never awaits after {time.perf_counter() - start:.3f} s")
else:
    sys.exit("deadline did not fire")
print("smoke test: ok")
