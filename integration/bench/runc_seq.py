#!/usr/bin/env python3
"""The runc calls any runc-driving shim makes for one short container, timed: the second
floor of integration/bench.sh (make bench).

    runc_seq.py --root DIR --bundle DIR --id ID [--runc runc]

As a child subreaper (as a shim is), runs `runc create` (with --pid-file), `runc start`,
waits for the init to exit (waitpid: it is re-parented to us), then `runc delete`, and
prints the elapsed wall time in microseconds. Python's own start-up is outside the clock.
On a failure it force-deletes the container and exits non-zero with runc's message.
"""

import argparse
import ctypes
import os
import subprocess
import sys
import tempfile
import time

PR_SET_CHILD_SUBREAPER = 36


def runc(a, *args):
    # stderr to a file, not a pipe: the container's init inherits runc create's stdio and
    # would hold a pipe open until it exits
    with tempfile.TemporaryFile() as err:
        r = subprocess.run(
            [a.runc, "--root", a.root, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            timeout=30,
        )
        if r.returncode != 0:
            err.seek(0)
            msg = err.read().decode(errors="replace").strip()
            raise RuntimeError(f"runc {args[0]}: exit {r.returncode}: {msg}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--id", required=True)
    ap.add_argument("--runc", default="runc")
    a = ap.parse_args()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit(f"runc_seq.py: prctl(PR_SET_CHILD_SUBREAPER): errno {ctypes.get_errno()}")
    pid_file = os.path.join(a.root, a.id + ".pid")
    try:
        t0 = time.monotonic_ns()
        runc(a, "create", "--bundle", a.bundle, "--pid-file", pid_file, a.id)
        with open(pid_file) as f:
            pid = int(f.read().strip())
        runc(a, "start", a.id)
        os.waitpid(pid, 0)
        runc(a, "delete", a.id)
        t1 = time.monotonic_ns()
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as e:
        subprocess.run([a.runc, "--root", a.root, "delete", "-f", a.id],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        sys.exit(f"runc_seq.py: {e}")
    finally:
        try:
            os.unlink(pid_file)
        except OSError:
            pass
    print((t1 - t0) // 1000)


if __name__ == "__main__":
    main()
