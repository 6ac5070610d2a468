"""CPU time of a bench's whole process tree, for the benches that start browsers or Ray."""

from __future__ import annotations

import os
import threading
import time


class CpuMeter:
    """CPU seconds used by this process and all its descendants (Linux ``/proc``).

    A thread samples every process under this one every 20 ms and keeps each one's last
    user + system time, so processes that exit are still counted (their parents' ``cutime``
    is not enough: Chromium's renderers are not always reaped by a process we see). What a
    process does in its last < 20 ms is lost; the sampler's own CPU is subtracted.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[int, str], int] = {}  # (pid, start time) -> utime + stime
        self._own_s = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.sample()

    def sample(self) -> float:
        stats: dict[int, list[str]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        stats[int(entry)] = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
        children: dict[int, list[int]] = {}
        for pid, fields in stats.items():
            children.setdefault(int(fields[1]), []).append(pid)
        with self._lock:
            todo = [os.getpid()]
            while todo:
                pid = todo.pop()
                if pid in stats:  # fields 14, 15 and 22 of /proc/pid/stat
                    fields = stats[pid]
                    self._seen[(pid, fields[19])] = int(fields[11]) + int(fields[12])
                todo.extend(children.get(pid, []))
            if threading.current_thread() is self._thread:
                self._own_s = time.thread_time()
            return sum(self._seen.values()) / os.sysconf("SC_CLK_TCK") - self._own_s

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
