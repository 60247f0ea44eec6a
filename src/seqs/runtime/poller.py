"""The blocking runtime: one loop that waits on the device and the stack's deadline.

:class:`Runner` owns the only clock in a real-time seqs program.  Each turn it
waits (epoll) until the device is readable or the stack's next deadline comes,
hands every waiting frame to the stack in one batch, runs what is due, and
writes out what the stack produced.  It can run in the caller's thread
(:meth:`run`) or in a background thread (:meth:`start`), in which case the
stack is shared under :attr:`lock` with user threads (the socket-like facade).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable

from ..phy.base import Device
from ..stack import Stack

__all__ = ["Runner"]

_MAX_WAIT = 1.0  # seconds; also bounds how late a stop request is noticed without a wakeup
#: frames taken in before what they caused (ACKs, echoes, window updates) is sent
_BATCH = 16
#: batches per wakeup before the stack's timers and the stop flag get a turn
_BATCHES = 32


class Runner:
    def __init__(self, stack: Stack, device: Device, *, clock: Callable[[], float] = time.monotonic) -> None:
        if stack.iface.config.vnet_hdr != device.vnet_hdr:
            raise ValueError("stack and device disagree about the virtio-net header")
        self.stack = stack
        self.device = device
        self.clock = clock
        #: guards the stack when a background thread runs it
        self.lock = threading.RLock()
        #: notified (under ``lock``) after every turn that changed something
        self.changed = threading.Condition(self.lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._waiting_until = 0.0
        self._epoll = select.epoll()
        self._dev_fd = device.fileno()
        if self._dev_fd >= 0:
            self._epoll.register(self._dev_fd, select.EPOLLIN)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self.error: BaseException | None = None
        #: the device holds frames back (a fault injector's delay) and must be polled
        self._device_timed = type(device).next_deadline is not Device.next_deadline
        #: threads blocked in ``changed.wait`` (Host.wait_for keeps this count), so a
        #: turn notifies only when someone listens
        self.waiters = 0
        self.turns = 0

    # -- one turn ----------------------------------------------------------------------

    def flush(self) -> None:
        """Write out what the stack has produced.  Call with :attr:`lock` held."""
        tx = self.stack.iface.take_tx()
        if tx:
            now = self.clock()
            send = self.device.send
            for frame in tx:
                send(frame, now)

    def service(self) -> None:
        """Run what is due and send what results.  Call with :attr:`lock` held."""
        now = self.clock()
        self.device.poll(now)
        self.stack.poll(now)
        self.flush()
        if self.waiters:
            self.changed.notify_all()

    def run_once(self, max_wait: float = _MAX_WAIT) -> None:
        """One turn: wait for input or the next deadline, take in every waiting
        frame, run what is due and send what results.  Few lines on purpose: a
        request/response exchange pays for one turn per message."""
        iface = self.stack.iface
        device = self.device
        with self.lock:
            now = self.clock()
            wait = max_wait
            d = iface.next_deadline()
            if d is not None and d - now < wait:
                wait = d - now if d > now else 0.0
            if self._device_timed:
                d = device.next_deadline()
                if d is not None and d - now < wait:
                    wait = d - now if d > now else 0.0
            self._waiting_until = now + wait
        events = self._epoll.poll(wait)
        with self.lock:
            self._waiting_until = 0.0
            for fd, _ in events:
                if fd == self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
            now = self.clock()
            if self._device_timed:
                device.poll(now)
            # Read whatever is waiting: a readable fd, or frames a wrapper holds back.
            read = device.read
            receive = iface.receive
            poll = iface.poll
            got = 0
            for _ in range(_BATCHES):
                n = read(receive, now, _BATCH)
                if n:
                    # What a batch caused leaves before the next batch is read: one ACK
                    # covers up to _BATCH segments (ACK coalescing), but a sender that
                    # fills our window in one wakeup is not left waiting for the whole
                    # of it to be read (which halved bulk throughput, bench bulk).
                    poll(now)
                    self.flush()
                    got += n
                if n < _BATCH:
                    break
            if not got:
                poll(now)  # woken by a deadline or an API call: run what is due
                self.flush()
            if self.waiters:
                self.changed.notify_all()
            self.turns += 1

    # -- running -------------------------------------------------------------------------

    def run(self, until: Callable[[], bool] | None = None, timeout: float | None = None) -> bool:
        """Run in this thread until ``until()`` is true (True), ``timeout`` seconds
        pass or :meth:`stop` is called (False)."""
        end = None if timeout is None else self.clock() + timeout
        with self.lock:
            self.service()  # what API calls queued before the loop started
        while not self._stop.is_set():
            if until is not None:
                with self.lock:
                    if until():
                        return True
            wait = _MAX_WAIT
            if end is not None:
                wait = end - self.clock()
                if wait <= 0:
                    return False
            self.run_once(min(wait, _MAX_WAIT))
        return False

    def start(self) -> None:
        """Run the loop in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._thread_main, name=f"seqs-{self.device.name}", daemon=True)
        self._thread.start()

    def _thread_main(self) -> None:
        try:
            self.run()
        except BaseException as e:  # surfaced to blocked users through .error
            self.error = e
            with self.lock:
                self.changed.notify_all()
            raise

    def stop(self) -> None:
        self._stop.set()
        self.wakeup()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(5.0)
        self._thread = None

    def wakeup(self) -> None:
        """Make a waiting loop recompute its deadline (after an API call)."""
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"\0")

    def kick(self) -> None:
        """After a user call changed the stack: send what it produced now and make sure
        the loop will honour an earlier deadline.  Call with :attr:`lock` held."""
        self.service()
        if self._thread is not None:
            d = self.stack.next_deadline()
            if d is not None and (self._waiting_until == 0.0 or d < self._waiting_until):
                self.wakeup()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        self.stop()
        self._epoll.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.device.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
