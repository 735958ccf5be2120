"""Baseline: Python 3 multiprocessing Lock, Semaphore and Queue.

    py_mp.py lock_pair DUR_MS          acquire+release, ns/pair (one process)
    py_mp.py sem_pair DUR_MS           release+acquire, ns/pair
    py_mp.py queue_pair DUR_MS         put+get of a 16-character string, ns/pair
    py_mp.py lock_contend N DUR_MS     N processes on one Lock, pairs/s
    py_mp.py queue_thru NP NC TOTAL    NP producers -> NC consumers, msgs/s
    py_mp.py sem_pingpong ROUNDS       round trip through two Semaphores
    py_mp.py queue_pingpong ROUNDS     round trip through two Queues
Prints the "key value" lines bench/driver.lua reads.
"""
import multiprocessing as mp
import sys
import time

MSG = "x" * 16
now = time.monotonic  # CLOCK_MONOTONIC on Linux


def timed_ns(dur_ms, body):
    n = 0
    t0 = now()
    while True:
        body(1000)
        n += 1000
        t = now()
        if (t - t0) * 1e3 >= dur_ms:
            break
    print("ns %.2f" % ((t - t0) * 1e9 / n))


def lock_pair(dur):
    lk = mp.Lock()
    acq, rel = lk.acquire, lk.release

    def body(k):
        for _ in range(k):
            acq()
            rel()
    timed_ns(dur, body)


def sem_pair(dur):
    s = mp.Semaphore(0)
    acq, rel = s.acquire, s.release

    def body(k):
        for _ in range(k):
            rel()
            acq()
    timed_ns(dur, body)


def queue_pair(dur):
    q = mp.Queue(100)
    put, get = q.put, q.get

    def body(k):
        for _ in range(k):
            put(MSG)
            get()
    timed_ns(dur, body)


def contend_worker(lk, barrier, dur, out, i):
    acq, rel = lk.acquire, lk.release
    barrier.wait()
    end = now() + dur / 1e3
    n = 0
    while True:
        for _ in range(64):
            acq()
            rel()
        n += 64
        if now() >= end:
            break
    out[i] = n


def lock_contend(n, dur):
    lk = mp.Lock()
    barrier = mp.Barrier(n)
    out = mp.Array("q", n, lock=False)
    ps = [mp.Process(target=contend_worker, args=(lk, barrier, dur, out, i)) for i in range(n)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    print("rate %.0f" % (sum(out) / (dur / 1e3)))


def producer(q, barrier, count):
    put = q.put
    barrier.wait()
    for _ in range(count):
        put(MSG)


def consumer(q, barrier, count, t_start, t_end, i):
    get = q.get
    barrier.wait()
    t_start[i] = now()
    for _ in range(count):
        get()
    t_end[i] = now()


def queue_thru(np_, nc, total):
    q = mp.Queue(100)
    barrier = mp.Barrier(np_ + nc)
    t_start = mp.Array("d", nc, lock=False)
    t_end = mp.Array("d", nc, lock=False)
    ps = [mp.Process(target=producer, args=(q, barrier, total // np_)) for _ in range(np_)]
    ps += [mp.Process(target=consumer, args=(q, barrier, total // nc, t_start, t_end, i))
           for i in range(nc)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    print("rate %.0f" % (total / (max(t_end) - min(t_start))))


def report_latency(lat):
    lat.sort()
    for p in (1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9):
        v = lat[int(p / 100 * (len(lat) - 1) + 0.5)]
        print("pct %g %.0f" % (p, v))
        if p in (50, 99):
            print("p%d %.0f" % (p, v))


def pong(a, b, rounds, kind):
    if kind == "sem":
        for _ in range(rounds):
            a.acquire()
            b.release()
    else:
        for _ in range(rounds):
            b.put(a.get())


def pingpong(kind, rounds):
    warm = rounds // 10 + 10
    if kind == "sem":
        a, b = mp.Semaphore(0), mp.Semaphore(0)
    else:
        a, b = mp.Queue(100), mp.Queue(100)
    p = mp.Process(target=pong, args=(a, b, rounds + warm, kind))
    p.start()
    lat = []
    ns = time.monotonic_ns
    for k in range(rounds + warm):
        t0 = ns()
        if kind == "sem":
            a.release()
            b.acquire()
        else:
            a.put(MSG)
            b.get()
        if k >= warm:
            lat.append(ns() - t0)
    p.join()
    report_latency(lat)


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "lock_pair":
        lock_pair(float(args[0]))
    elif mode == "sem_pair":
        sem_pair(float(args[0]))
    elif mode == "queue_pair":
        queue_pair(float(args[0]))
    elif mode == "lock_contend":
        lock_contend(int(args[0]), float(args[1]))
    elif mode == "queue_thru":
        queue_thru(int(args[0]), int(args[1]), int(args[2]))
    elif mode == "sem_pingpong":
        pingpong("sem", int(args[0]))
    elif mode == "queue_pingpong":
        pingpong("queue", int(args[0]))
    else:
        sys.exit("py_mp.py: unknown mode " + mode)


if __name__ == "__main__":
    main()
