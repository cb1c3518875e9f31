"""Deadlines fired at random points inside standard-library calls that keep an
invariant over several statements leave those objects consistent.

Each trial runs one kind of call in a loop under ``deadline(t)``, with ``t``
drawn at random from 0 to 300 us, so the deadline lands at a random
bytecode boundary: in our loop, in the call, in code the call runs (a
logging handler's emit, an exit-stack callback). After each interruption
the object is checked: a queue's ``unfinished_tasks`` equals its items, no
lock is left held, a condition has no stale waiter, every exit-stack
callback registered ran. Each kind runs TRIALS trials, within a time budget
(a hang fails instead of blocking); the test also requires that most trials
were really interrupted, so it cannot pass by never firing.

Main thread only (deadlines are), and in a child interpreter so that the
preemption state of the test process is not involved.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from _support import child_env

TRIALS = 2000

CHILD = r"""
import contextlib, json, logging, queue, random, sys, threading, time
import uintr_loop

trials, budget = int(sys.argv[1]), float(sys.argv[2])
rng = random.Random(int(sys.argv[3]))


def run(kind, setup, body, check):
    done = interrupted = inconsistent = 0
    problems = []
    end = time.monotonic() + budget
    while done < trials and time.monotonic() < end:
        obj = setup()
        try:
            with uintr_loop.deadline(rng.uniform(0, 300e-6)):
                stop = time.monotonic() + 5
                while time.monotonic() < stop:
                    body(obj)
        except TimeoutError:
            interrupted += 1
        problem = check(obj)
        if problem:
            inconsistent += 1
            if len(problems) < 5:
                problems.append(problem)
        done += 1
    return {"kind": kind, "trials": done, "interrupted": interrupted,
            "inconsistent": inconsistent, "problems": problems}


def queue_body(q):
    q.put(1)
    q.put(2)
    q.get()                      # no task_done: unfinished counts every put

class CountingQueue(queue.Queue):
    # how many items left through get(); updated inside get()'s critical section,
    # so interruption anywhere in get() keeps it exact
    def _init(self, maxsize):
        super()._init(maxsize)
        self.gets = 0
    def _get(self):
        self.gets += 1
        return super()._get()

def cqueue_setup():
    return CountingQueue()

def cqueue_check(q):
    if q.mutex.locked():
        return "queue mutex left held"
    if q.unfinished_tasks != q.qsize() + q.gets:
        return f"unfinished_tasks {q.unfinished_tasks} != items {q.qsize()} + gets {q.gets}"
    return None


class Recording(logging.Handler):
    def __init__(self):
        super().__init__()
        self.n = 0
    def emit(self, record):
        self.n += 1
        self.format(record)

def log_setup():
    logger = logging.Logger("trial")
    handler = Recording()
    logger.addHandler(handler)
    return logger, handler

def log_body(obj):
    obj[0].warning("x %d", 1)

def log_check(obj):
    handler = obj[1]
    if not handler.lock.acquire(blocking=False):
        return "logging handler lock left held"
    handler.lock.release()
    module_lock = getattr(logging, "_lock", None)
    if module_lock is not None:
        if not module_lock.acquire(blocking=False):
            return "logging module lock left held"
        module_lock.release()
    return None


def cond_setup():
    return threading.Condition()

def cond_body(cond):
    with cond:
        cond.notify()
        cond.wait(0)

def cond_check(cond):
    if not cond.acquire(blocking=False):
        return "condition lock left held"
    cond.release()
    if cond._waiters:
        return f"{len(cond._waiters)} stale waiter(s) left on the condition"
    return None


class Stack:
    def __init__(self):
        self.registered = self.ran = 0
    def cb(self):
        self.ran += 1

def stack_setup():
    return Stack()

def stack_body(s):
    with contextlib.ExitStack() as st:
        for _ in range(3):
            st.callback(s.cb)
            s.registered += 1    # after callback() returned: it is registered

def stack_check(s):
    # interrupted between callback() and our count, registered may be one short
    if s.ran not in (s.registered, s.registered + 1):
        return f"exit stack ran {s.ran} callbacks of {s.registered} registered"
    return None


results = [
    run("queue", cqueue_setup, queue_body, cqueue_check),
    run("logging", log_setup, log_body, log_check),
    run("condition", cond_setup, cond_body, cond_check),
    run("exitstack", stack_setup, stack_body, stack_check),
]
print(json.dumps(results))
"""


@pytest.mark.timeout(300)
def test_deadlines_at_random_points_in_stdlib_calls_leave_objects_consistent() -> None:
    budget = 40.0                       # seconds per kind at most
    out = subprocess.run([sys.executable, "-c", CHILD, str(TRIALS), str(budget), "1"],
                         env=child_env(), capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(results, indent=1))
    for r in results:
        assert r["problems"] == [], r
        assert r["trials"] >= TRIALS // 4, r            # the budget allowed enough of them
        assert r["interrupted"] >= r["trials"] * 0.9, r  # they were really interrupted
