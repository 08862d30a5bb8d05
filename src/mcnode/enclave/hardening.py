"""What the enclave process does at start to keep the host out of it: best effort, each
step reported as a `HardeningStep` in its `IDENTITY` answer (and its start line).

- `inherited_fds_closed`: every inherited file descriptor but stdin, stdout, stderr and
  the socket to the host is closed, so nothing the host left open reaches in.
- `not_dumpable`: `prctl(PR_SET_DUMPABLE, 0)`: processes of the same user (without
  CAP_SYS_PTRACE) can no longer ptrace it or read its `/proc/<pid>/mem` or `environ`, and
  it writes no core dump.
- `no_new_privs`: `prctl(PR_SET_NO_NEW_PRIVS, 1)`: nothing it executes can gain privileges.
- `no_core_dumps`: `RLIMIT_CORE` 0, in case something sets it dumpable again.
- `dies_with_host`: `prctl(PR_SET_PDEATHSIG, SIGKILL)`: the kernel kills it when the
  host process dies, however it dies (it serves one host and must not outlive it). Set
  here, after exec, not in the host between fork and exec: a forked child of the host's
  threaded process may only exec (loading libc there can deadlock, and the host's event
  loop waits for that exec). `harden` then checks the host is still its parent. (The
  kernel's "parent" is the thread that started it: the host starts it from its event
  loop's thread, which lives as long as the host.)
- `no_network`: `unshare(CLONE_NEWNET)`: a network namespace of its own, holding only a
  loopback interface that is down, so it can reach no network at all. This needs
  CAP_SYS_ADMIN (root); without it, a new user namespace is tried with it (unprivileged
  user namespaces, where the kernel allows them).

What this is not: SGX. Root, or anything with CAP_SYS_PTRACE, still reads the process's
memory; the enclave only makes it harder for the host process and its user. Linux only:
elsewhere every step but closing descriptors reports `applied=False`.

Rules of this file: call `harden` first thing, before the process opens anything of its
own and before it starts a thread (a user namespace needs a single-threaded process). It
knows nothing of keys, sessions or txs.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import signal
from collections.abc import Collection, Iterator

from mcnode.enclave.api import HardeningStep

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
STEPS = (
    "inherited_fds_closed",
    "not_dumpable",
    "no_new_privs",
    "no_core_dumps",
    "dies_with_host",
    "no_network",
)


class HostGone(Exception):
    """The host died before `dies_with_host` took effect: nothing to serve."""


def harden(keep_fds: Collection[int], host_pid: int | None = None) -> tuple[HardeningStep, ...]:
    """Take every step, in order; `keep_fds` are kept open besides 0, 1 and 2. With
    `host_pid`, raises `HostGone` when that process is no longer our parent."""
    steps = (
        _close_inherited({0, 1, 2, *keep_fds}),
        _prctl("not_dumpable", PR_SET_DUMPABLE, 0),
        _prctl("no_new_privs", PR_SET_NO_NEW_PRIVS, 1),
        _no_core_dumps(),
        _prctl("dies_with_host", PR_SET_PDEATHSIG, signal.SIGKILL),
        _no_network(),
    )
    if host_pid is not None and os.getppid() != host_pid:  # it died before PDEATHSIG was set
        raise HostGone(f"the host process {host_pid} is gone")
    return steps


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _errno_name(err: int) -> str:
    return errno.errorcode.get(err, str(err))


def _open_fds() -> Iterator[int]:
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        names = [str(fd) for fd in range(resource.getrlimit(resource.RLIMIT_NOFILE)[0])]
    return (int(name) for name in names)


def _close_inherited(keep: set[int]) -> HardeningStep:
    closed = 0
    for fd in _open_fds():
        if fd in keep:
            continue
        try:
            os.close(fd)
        except OSError:  # not open (the listing's own descriptor, or a guessed number)
            continue
        closed += 1
    return HardeningStep("inherited_fds_closed", True, f"closed {closed}")


def _prctl(name: str, option: int, value: int) -> HardeningStep:
    libc = _libc()
    prctl = getattr(libc, "prctl", None)
    if prctl is None:
        return HardeningStep(name, False, "no prctl")
    args = (ctypes.c_int(option), *(ctypes.c_ulong(v) for v in (value, 0, 0, 0)))
    if prctl(*args) != 0:
        return HardeningStep(name, False, _errno_name(ctypes.get_errno()))
    return HardeningStep(name, True, "")


def _no_core_dumps() -> HardeningStep:
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (OSError, ValueError) as e:
        return HardeningStep("no_core_dumps", False, type(e).__name__)
    return HardeningStep("no_core_dumps", True, "")


def _no_network() -> HardeningStep:
    libc = _libc()
    unshare = getattr(libc, "unshare", None)
    if unshare is None:
        return HardeningStep("no_network", False, "no unshare")
    if unshare(ctypes.c_int(CLONE_NEWNET)) == 0:
        return HardeningStep("no_network", True, "own network namespace")
    first = ctypes.get_errno()
    if first == errno.EPERM and unshare(ctypes.c_int(CLONE_NEWUSER | CLONE_NEWNET)) == 0:
        return HardeningStep("no_network", True, "own user and network namespaces")
    return HardeningStep("no_network", False, _errno_name(first))
