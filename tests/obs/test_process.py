"""Process helpers (fastflow.obs.process) with real child processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from fastflow.obs.process import (
    LineReader,
    children,
    die_with_parent,
    free_port,
    stop_process,
    stop_processes,
    wait_ready,
)

DEADLINE = 10.0
#: A child that ignores SIGTERM (after saying so), then sleeps.
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); " \
           "time.sleep(60)"


def python(code: str, stdout: int | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=stdout)


def test_stop_process_terminates_a_polite_child_and_kills_a_stubborn_one() -> None:
    polite = python("import time; time.sleep(60)")
    stubborn = python(STUBBORN, stdout=subprocess.PIPE)
    try:
        LineReader(stubborn).until("ready", DEADLINE)
        assert {polite.pid, stubborn.pid} <= set(children())
        assert stop_process(polite) == -signal.SIGTERM
        started = time.monotonic()
        assert stop_process(stubborn, timeout=0.2) == -signal.SIGKILL
        assert time.monotonic() - started < DEADLINE
        assert not {polite.pid, stubborn.pid} & set(children())
        assert stop_process(polite) == -signal.SIGTERM and stop_process(None) is None  # again: harmless
    finally:
        for process in (polite, stubborn):
            process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()


def test_stop_processes_signals_all_first() -> None:
    processes = [python("import time; time.sleep(60)") for _ in range(3)]
    started = time.monotonic()
    stop_processes(processes, timeout=DEADLINE)
    assert all(p.returncode == -signal.SIGTERM for p in processes)
    assert time.monotonic() - started < DEADLINE


def test_die_with_parent_takes_the_grandchild_down_with_its_parent() -> None:
    """A child starts a grandchild with die_with_parent and is SIGKILLed: the grandchild goes too."""
    code = ("import subprocess, sys, time\n"
            "from fastflow.obs.process import die_with_parent\n"
            "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], preexec_fn=die_with_parent)\n"
            "print(g.pid, flush=True)\n"
            "time.sleep(60)\n")
    parent = python(code, stdout=subprocess.PIPE)
    try:
        grandchild = int(LineReader(parent, DEADLINE).readline())
        assert grandchild in children(parent.pid)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + DEADLINE
        while _alive(grandchild):
            assert time.monotonic() < deadline, "the grandchild outlived its parent"
            time.sleep(0.01)
    finally:
        stop_process(parent)
        assert parent.stdout is not None
        parent.stdout.close()
    die_with_parent()  # in this process: harmless (the pytest runner's parent is alive)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_wait_ready_is_true_when_ready_false_on_exit_or_timeout() -> None:
    sleeper = python("import time; time.sleep(60)")
    try:
        calls = iter([False, False, True])
        assert wait_ready(sleeper, lambda: next(calls), DEADLINE, 0.001)
        started = time.monotonic()
        assert not wait_ready(sleeper, lambda: False, 0.05)
        assert time.monotonic() - started < DEADLINE
    finally:
        stop_process(sleeper)
    started = time.monotonic()
    assert not wait_ready(sleeper, lambda: False, DEADLINE)  # exited: no waiting
    assert time.monotonic() - started < 1.0


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_line_reader_reads_lines_until_a_marker_times_out_and_sees_eof() -> None:
    talker = python("import time; print('one'); print('two three', flush=True); time.sleep(0.3); print('four')",
                    stdout=subprocess.PIPE)
    try:
        lines = LineReader(talker, DEADLINE)
        assert lines.readline() == "one"
        assert lines.until("three") == "two three"
        with pytest.raises(TimeoutError, match="'four'"):
            lines.until("four", timeout=0.01)
        assert lines.until("four") == "four"
        with pytest.raises(EOFError, match="closed its output"):
            lines.readline()
        assert lines.seen == ["one", "two three", "four"]
    finally:
        stop_process(talker)
        assert talker.stdout is not None
        talker.stdout.close()


def test_children_of_another_process() -> None:
    assert children(os.getpid()) == children()


def test_private_directories_of_killed_owners_are_removed_at_the_next_start() -> None:
    """After a `kill -9` of fastflow run, its /tmp/fastflow-* directories stayed for good."""
    import shutil
    import subprocess
    import sys
    import tempfile

    from fastflow.obs.process import OWNER_FILE, private_directory

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    prefix = "fastflow-test-owned-"
    stale, live, unmarked = (tempfile.mkdtemp(prefix=prefix) for _ in range(3))
    for path, pid in ((stale, dead.pid), (live, os.getpid())):
        with open(os.path.join(path, OWNER_FILE), "w") as handle:
            handle.write(str(pid))
    fresh = private_directory(prefix)
    try:
        assert not os.path.exists(stale)  # its owner is gone
        assert os.path.isdir(live) and os.path.isdir(unmarked)  # alive, or not ours to judge
        with open(os.path.join(fresh, OWNER_FILE)) as handle:
            assert int(handle.read()) == os.getpid()
    finally:
        for path in (live, unmarked, fresh):
            shutil.rmtree(path, ignore_errors=True)
