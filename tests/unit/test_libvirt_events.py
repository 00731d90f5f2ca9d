"""The libvirt event loop adapter: registrations made from worker threads (where libvirt
API calls run) must reach the loop at once, not at its next unrelated wake-up."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator

import libvirt
import pytest

from strato.virt.libvirt.host import _ThreadSafeAsyncIOImpl


@pytest.fixture
def impl() -> Iterator[_ThreadSafeAsyncIOImpl]:
    """An adapter on a loop in its own thread (not registered with libvirt: the
    process's real one must stay the only one)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: list[_ThreadSafeAsyncIOImpl] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        adapter = _ThreadSafeAsyncIOImpl(loop, threading.get_ident())
        # libvirt's free callbacks need libvirt's own opaque objects; these tests pass None.
        adapter.schedule_ff_callback = lambda _iden, _opaque: None
        holder.append(adapter)
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait()
    yield holder[0]
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


def test_a_timer_added_from_another_thread_fires_without_any_other_wakeup(
        impl: _ThreadSafeAsyncIOImpl) -> None:
    fired = threading.Event()
    timer = impl._add_timeout(0, lambda _iden, _opaque: fired.set(), None)
    # The loop sleeps in select() with nothing else to do; only the adapter's own
    # wake-up can get the timer going. (Plain libvirtaio waits here forever.)
    assert fired.wait(5.0)
    assert impl._remove_timeout(timer) == 0


def test_a_handle_added_from_another_thread_sees_its_fd_and_stops_when_removed(
        impl: _ThreadSafeAsyncIOImpl) -> None:
    read_fd, write_fd = os.pipe()
    try:
        calls: list[int] = []
        readable = threading.Event()

        def on_event(_watch: int, fd: int, _events: int, _opaque: object) -> None:
            calls.append(fd)
            os.read(fd, 1)
            readable.set()

        watch = impl._add_handle(read_fd, libvirt.VIR_EVENT_HANDLE_READABLE, on_event, None)
        os.write(write_fd, b"x")
        assert readable.wait(5.0) and calls == [read_fd]
        impl._remove_handle(watch)
        done = threading.Event()
        impl.loop.call_soon_threadsafe(done.set)  # after the queued removal
        assert done.wait(5.0)
        assert watch not in impl.callbacks
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_updates_queued_from_threads_keep_libvirts_order(
        impl: _ThreadSafeAsyncIOImpl) -> None:
    fired = threading.Event()
    timer = impl._add_timeout(-1, lambda _i, _o: fired.set(), None)  # added disabled
    impl._update_timeout(timer, 0)                                  # then enabled
    assert fired.wait(5.0)
    impl._update_timeout(timer, -1)
    impl._remove_timeout(timer)
    impl._update_timeout(timer, 0)  # an update after removal is dropped, not an error
    done = threading.Event()
    impl.loop.call_soon_threadsafe(done.set)
    assert done.wait(5.0) and timer not in impl.callbacks
