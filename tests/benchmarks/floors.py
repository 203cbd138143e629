"""The floors `make bench` measures arl against, in the same run: what bare ZeroMQ and a bare
Python interpreter cost on this machine with nothing of arl in them."""

from __future__ import annotations

import math
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time

import psutil
import zmq


def _echo(endpoint: str) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.connect(endpoint)
    while True:
        msg = sock.recv()
        sock.send(msg)
        if msg == b"quit":
            break
    sock.close()
    ctx.term()


def _broker(front: str, back: str) -> None:
    ctx = zmq.Context()
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    router.bind(front)
    dealer.bind(back)
    try:
        zmq.proxy(router, dealer)
    finally:
        router.close()
        dealer.close()
        ctx.term()


def round_trip(n: int, *, through_broker: bool) -> float:
    """Seconds per REQ/REP round trip between two processes (optionally via a broker process)."""
    workdir = tempfile.mkdtemp(prefix="arl-b-")
    spawn = multiprocessing.get_context("spawn")
    ctx = zmq.Context()
    req = ctx.socket(zmq.REQ)
    procs = []
    if through_broker:
        front, back = f"ipc://{workdir}/front", f"ipc://{workdir}/back"
        procs.append(spawn.Process(target=_broker, args=(front, back), daemon=True))
        procs.append(spawn.Process(target=_echo, args=(back,), daemon=True))
        req.connect(front)
    else:
        endpoint = f"ipc://{workdir}/echo"
        req.bind(endpoint)
        procs.append(spawn.Process(target=_echo, args=(endpoint,), daemon=True))
    for p in procs:
        p.start()
    payload = b"x" * 200
    for _ in range(200):  # warm up
        req.send(payload)
        req.recv()
    started = time.perf_counter()
    for _ in range(n):
        req.send(payload)
        req.recv()
    elapsed = (time.perf_counter() - started) / n
    req.send(b"quit")
    req.recv()
    for p in procs:  # the echo has quit; the broker never does
        p.kill()
        p.join()
    req.close(linger=0)
    ctx.term()
    shutil.rmtree(workdir, ignore_errors=True)
    return elapsed


def _router_echo(endpoint: str) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind(endpoint)
    while True:
        identity, msg = sock.recv_multipart()
        sock.send_multipart([identity, msg])
        if msg == b"quit":
            break
    sock.close()
    ctx.term()


# The step patterns of arl's layouts, as groups of peers asked in sequence, each group's
# peers at once: co-located (the agents' process only), environments in their own process
# (the agents' process, then the environment's), and arl before co-location (two agents,
# each in its own process, at once; then the environment).
PATTERNS = {"in_controller": (1,), "own": (1, 1), "before": (2, 1)}


def pattern_floor(n: int, groups: tuple[int, ...]) -> float:
    """Seconds per step of a step pattern in bare ZeroMQ, 300-byte messages: one process asks
    each group's peers at once and waits for all of their replies, group after group."""
    workdir = tempfile.mkdtemp(prefix="arl-b-")
    endpoints = [f"ipc://{workdir}/{i}" for i in range(sum(groups))]
    spawn = multiprocessing.get_context("spawn")
    procs = [spawn.Process(target=_router_echo, args=(e,), daemon=True) for e in endpoints]
    for p in procs:
        p.start()
    ctx = zmq.Context()
    socks = []
    poller = zmq.Poller()
    for endpoint in endpoints:
        sock = ctx.socket(zmq.DEALER)
        sock.connect(endpoint)
        poller.register(sock, zmq.POLLIN)
        socks.append(sock)
    grouped, taken = [], 0
    for size in groups:
        grouped.append(socks[taken : taken + size])
        taken += size
    payload = b"x" * 300

    def step() -> None:
        for group in grouped:
            for sock in group:
                sock.send(payload)
            waiting = set(group)
            while waiting:
                events = poller.poll(5000)
                if not events:
                    raise RuntimeError("a peer of the bare-ZeroMQ floor stopped answering")
                for sock, _ in events:
                    sock.recv()
                    waiting.discard(sock)

    for _ in range(300):  # warm up
        step()
    started = time.perf_counter()
    for _ in range(n):
        step()
    elapsed = (time.perf_counter() - started) / n
    for sock in socks:
        sock.send(b"quit")
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join()
    for sock in socks:
        sock.close(linger=0)
    ctx.term()
    shutil.rmtree(workdir, ignore_errors=True)
    return elapsed


# A fresh interpreter that imports zmq and says it is up: the least any process of a run costs.
_STARTUP_CHILD = (
    "import sys, zmq\nsock = zmq.Context().socket(zmq.REQ)\nsock.connect(sys.argv[1])\nsock.send(b'up')\nsock.recv()\n"
)


def startup_floor(tries: int = 3) -> tuple[float, int]:
    """Seconds from launching a fresh Python (this one, with its site-packages) that imports
    zmq to its first message, best of ``tries``; and that process's RSS then, in bytes."""
    best, rss = math.inf, 0
    for _ in range(tries):
        workdir = tempfile.mkdtemp(prefix="arl-b-")
        ctx = zmq.Context()
        rep = ctx.socket(zmq.REP)
        endpoint = f"ipc://{workdir}/up"
        rep.bind(endpoint)
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", _STARTUP_CHILD, endpoint])
        try:
            if not rep.poll(30_000):
                raise RuntimeError("the start-up floor's child never said it was up")
            rep.recv()
            elapsed = time.perf_counter() - started
            if elapsed < best:
                best, rss = elapsed, psutil.Process(proc.pid).memory_info().rss
            rep.send(b"bye")
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            rep.close(linger=0)
            ctx.term()
            shutil.rmtree(workdir, ignore_errors=True)
    return best, rss
