"""What the enclave process does at start to keep the host out of it: best effort, each
step reported as a `HardeningStep` in its `IDENTITY` answer (and its start line).

- `inherited_fds_closed`: every inherited file descriptor but stdin, stdout, stderr and
  the socket to the host is closed, so nothing the host left open reaches in.
- `not_dumpable`: `prctl(PR_SET_DUMPABLE, 0)`: processes of the same user (without
  CAP_SYS_PTRACE) can no longer ptrace it or read its `/proc/<pid>/mem` or `environ`, and
  it writes no core dump.
- `no_new_privs`: `prctl(PR_SET_NO_NEW_PRIVS, 1)`: nothing it executes can gain privileges.
- `no_core_dumps`: `RLIMIT_CORE` 0, in case something sets it dumpable again.
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
from collections.abc import Collection, Iterator

from mcnode.enclave.api import HardeningStep

PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
STEPS = ("inherited_fds_closed", "not_dumpable", "no_new_privs", "no_core_dumps", "no_network")


def harden(keep_fds: Collection[int]) -> tuple[HardeningStep, ...]:
    """Take every step, in order; `keep_fds` are kept open besides 0, 1 and 2."""
    return (
        _close_inherited({0, 1, 2, *keep_fds}),
        _prctl("not_dumpable", PR_SET_DUMPABLE, 0),
        _prctl("no_new_privs", PR_SET_NO_NEW_PRIVS, 1),
        _no_core_dumps(),
        _no_network(),
    )


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
