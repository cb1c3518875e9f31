"""Child programs for tests/test_faults.py (run with ``python -c``).

Each is a complete program; the tests read what it prints.
"""

# A sender process at its fd limit: Sender(argv[1]) with 0, 1, 2... free fds
# until it works; prints the refusals (and any fd left behind) as JSON.
EMFILE_CHILD = r"""
import json, os, resource, sys
import uintr_loop

fd = int(sys.argv[1])
def open_fds():
    return sorted(int(n) for n in os.listdir("/proc/self/fd"))
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
failures = []
sender = None
for k in range(16):
    before = open_fds()
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(before) + 64, hard))
    fill = []
    while True:
        try:
            fill.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            break
    for _ in range(k):
        os.close(fill.pop())
    try:
        sender = uintr_loop.Sender(fd)
    except OSError as exc:
        failures.append([k, exc.errno, type(exc).__name__, str(exc)])
    finally:
        for f in fill:
            os.close(f)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if sender is not None:
        break
    if open_fds() != before:
        failures.append([k, "leaked", before, open_fds()])
for _ in range(100):
    sender.send()
print(json.dumps(failures))
"""

# fork() while threads post to a loop of kind argv[1] (stock, asyncio,
# uvloop), between runs or inside a callback (argv[2]). The child prints what
# its inherited loop did and whether a fresh loop works; the parent prints its
# counts. (A third argument makes a stock child close its copy, to show the
# hazard by hand.)
FORK_CHILD = r"""
import asyncio, ctypes, functools, json, mmap, os, signal, sys, threading, time
import uintr_loop
from uintr_loop._native import NativeSender

kind, when = sys.argv[1], sys.argv[2]
close_stock = len(sys.argv) > 3              # to show the stock asyncio hazard by hand
parent_pid = os.getpid()
factory = asyncio.new_event_loop if kind == "stock" else functools.partial(
    uintr_loop.new_event_loop, base=kind)
N = 20_000
loop = factory()
uintr = kind != "stock"
shared = mmap.mmap(-1, 8)
counter = ctypes.c_uint64.from_buffer(shared)
seen, ran, report = [0], [], {}
if uintr:
    receiver = uintr_loop.Receiver(lambda v: seen.__setitem__(0, counter.value), loop=loop)
    sender = uintr_loop.Sender(receiver.vector_fd(5))
    child_got = []
    for_child = uintr_loop.Receiver(lambda v: child_got.append(v), loop=loop)
    child_vfd = for_child.vector_fd(6)
    native = NativeSender(uintr_loop.Sender(receiver.vector_fd(7)), N, 1000, 16)

def post():
    for i in range(1, N + 1):
        counter.value = i
        if uintr:
            sender.send()
        loop.call_soon_threadsafe(ran.append, i)

def fresh_loop_works():
    lp = factory()
    try:
        async def main():
            fut = lp.create_future()
            threading.Thread(target=lp.call_soon_threadsafe, args=(fut.set_result, 1)).start()
            await asyncio.wait_for(fut, 10)
            if uintr:
                got = lp.create_future()
                r = uintr_loop.Receiver(lambda v: got.done() or got.set_result(v))
                s = uintr_loop.Sender(r.vector_fd(3))
                threading.Thread(target=s.send).start()
                assert await asyncio.wait_for(got, 10) == 3
                n = NativeSender(uintr_loop.Sender(r.vector_fd(4)), 1000)
                assert await asyncio.to_thread(n.join) == (1000, 0)
        lp.run_until_complete(main())
        return True
    finally:
        lp.close()

def in_child(inherited_error):
    out = {"inherited": inherited_error}
    if uintr:
        s = uintr_loop.Sender(child_vfd)        # from the inherited VectorFd: reaches the parent
        for _ in range(100):
            s.send()
    out["fresh"] = fresh_loop_works()
    if uintr or close_stock:
        # A uintr loop's copy closes without touching the parent. (Stock
        # asyncio's close unregisters its self-pipe from the epoll set the
        # child shares with the parent: the parent's later wakeups are lost.)
        loop.close()
    out["closed"] = loop.is_closed()
    print(json.dumps(out), flush=True)
    os._exit(0)

threads = [threading.Thread(target=post)]
for t in threads:
    t.start()
child = None

async def forker():
    global child
    await asyncio.sleep(0.005)
    child = os.fork()
    if child == 0 and when == "in-callback":
        return "child"          # the child goes on running the inherited loop

async def parent_main():
    while ran[-1:] != [N] or (uintr and seen[0] != N):
        await asyncio.sleep(0.001)
    if uintr:
        assert await asyncio.to_thread(native.join) == (N, 0)
        while for_child.statistics().posted < 100 or not child_got:
            await asyncio.sleep(0.001)

if when == "between-runs":
    loop.run_until_complete(asyncio.sleep(0.005))
    child = os.fork()
    if child == 0:
        try:
            loop.run_until_complete(asyncio.sleep(0.05))
            in_child(None)
        except RuntimeError as exc:
            in_child(str(exc))
else:
    try:
        role = loop.run_until_complete(forker())
        if role == "child":
            loop.run_until_complete(asyncio.sleep(0.05))
    except RuntimeError as exc:
        if os.getpid() != parent_pid:
            in_child(str(exc))
        raise
    if child == 0:
        in_child(None)
for t in threads:
    t.join(30)
loop.run_until_complete(asyncio.wait_for(parent_main(), 30))
_, status = os.waitpid(child, 0)

async def woken_while_blocked():
    # the child ran, refused and closed its copy: a blocked parent is still
    # woken by call_soon_threadsafe, a post and a signal (10 s: hang guard)
    fired = []
    guard = loop.call_later(10, fired.append, "the hang guard woke the loop")
    fut = loop.create_future()
    def later():
        time.sleep(0.05)
        loop.call_soon_threadsafe(fut.set_result, "cst")
    threading.Thread(target=later).start()
    woken = [await asyncio.wait_for(fut, 15)]
    if uintr:
        got = loop.create_future()
        r = uintr_loop.Receiver(lambda v: got.done() or got.set_result(v))
        s = uintr_loop.Sender(r.vector_fd(9))
        threading.Thread(target=lambda: (time.sleep(0.05), s.send())).start()
        woken.append(await asyncio.wait_for(got, 15))
    sig = loop.create_future()
    loop.add_signal_handler(signal.SIGUSR2, lambda: sig.done() or sig.set_result("signal"))
    threading.Thread(target=lambda: (time.sleep(0.05), os.kill(os.getpid(), signal.SIGUSR2))).start()
    woken.append(await asyncio.wait_for(sig, 15))
    loop.remove_signal_handler(signal.SIGUSR2)
    guard.cancel()
    return woken + fired
woken = loop.run_until_complete(woken_while_blocked())
stats = receiver.statistics() if uintr else None
print(json.dumps({"status": os.waitstatus_to_exitcode(status), "ran": len(ran), "woken": woken,
                  "in_order": ran == list(range(1, N + 1)), "last_seen": seen[0],
                  "posted": stats.posted if stats else None,
                  "child_posts": for_child.statistics().posted if uintr else None}), flush=True)
loop.close()
"""

# A process holding a lease (a Sender of its parent's loop) spawns
# subprocesses through uvloop; prints "exit 0", or "hung" after 20 s.
SPAWN_IN_SENDER = r"""
import asyncio, os, signal, sys, time
import uvloop
import uintr_loop

loop = uintr_loop.new_event_loop(base="asyncio")
receiver = uintr_loop.Receiver(lambda v: None, loop=loop)
vfd = receiver.vector_fd(3)
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)                     # so a hang is killed with what it spawned
    async def spawn():
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
        return await proc.wait()
    def spawn_on(factory):
        lp = factory()
        try:
            assert lp.run_until_complete(spawn()) == 0
        finally:
            lp.close()
    spawn_on(uvloop.new_event_loop)      # uvloop's pthread_atfork handler comes first
    sender = uintr_loop.Sender(vfd.fileno())     # a lease on the parent: ours comes next
    sender.send()
    for factory in (uvloop.new_event_loop, uintr_loop.new_event_loop):
        spawn_on(factory)
    os._exit(0)
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("exit", os.waitstatus_to_exitcode(status))
        break
    time.sleep(0.01)
else:
    os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    print("hung")
"""
