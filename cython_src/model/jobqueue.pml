/*
 * jobqueue.pml - the default executor's job queue (includes/jobqueue.h):
 * can a job be left queued while every worker sleeps?
 *
 * The loop puts JOBS jobs; WORKERS workers take them. put() is two steps,
 * as in C: add to `count` (seq_cst), then read `sleepers` and post the
 * semaphore if any. A worker that finds nothing may spin (at most one at a
 * time; the spin may give up at any moment, as the window or a preemption
 * ends it), then counts itself in `sleepers`, reads `count`, and sleeps on
 * the semaphore while it is 0, looking again after each wake (a post may be
 * stale: another worker took the job). Taking a job is one step: the deque
 * and the count change under the GIL.
 *
 * The GIL baton's flags (`parked`, `handing`) only bound spins before the
 * GIL is taken; every such wait ends, so they cannot block anything and
 * are not modelled.
 *
 * Property no_lost_job: when nothing can move any more, every job has
 * been taken. Each broken variant below must violate it:
 *   BUG_SLEEP_LOOKS_FIRST  the worker reads `count` before it counts itself
 *                          a sleeper
 *   BUG_PUT_LOOKS_FIRST    put() reads `sleepers` before it adds the job
 */

#ifndef JOBS
#define JOBS 3
#endif
#ifndef WORKERS
#define WORKERS 2
#endif

#define P_no_lost_job 1

#ifdef ONLY
#define SKIP(p) (ONLY != P_##p)
#else
#define SKIP(p) false
#endif

byte count = 0;      /* jobs queued */
byte sleepers = 0;   /* workers counted as sleeping */
byte sem = 0;        /* the semaphore's value */
bit spinners = 0;    /* a worker spins */
byte taken = 0;
byte put = 0;

active proctype Loop()
{
    byte s;
    do
    :: put < JOBS ->
#ifdef BUG_PUT_LOOKS_FIRST
        s = sleepers;
        count++;
#else
        count++;
        s = sleepers;
#endif
        put++;
        if
        :: s > 0 -> sem++
        :: else -> skip
        fi
    :: else -> break
    od
}

active [WORKERS] proctype Worker()
{
    byte c;
take:
    atomic {
        if
        :: count > 0 -> count--; taken++; goto take
        :: else -> skip
        fi
    }
    /* nothing queued: maybe spin */
    if
    :: atomic { spinners == 0 -> spinners = 1 };
        if
        :: count > 0 -> spinners = 0; goto take
        :: true -> spinners = 0        /* the window ends */
        fi
    :: true -> skip
    fi;
    /* sleep */
#ifdef BUG_SLEEP_LOOKS_FIRST
    c = count;
    sleepers++;
#else
    sleepers++;
    c = count;
#endif
    do
    :: c > 0 -> break
    :: else ->
end_sleep:
        atomic { sem > 0 -> sem-- };
        c = count
    od;
    sleepers--;
    goto take
}

active proctype Check()
{
    timeout -> assert(SKIP(no_lost_job) || taken == JOBS)
}
