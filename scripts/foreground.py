"""Run a command as the terminal's foreground job, so Ctrl-C reaches it and not make.

``make demo`` documents "Ctrl-C stops it cleanly, exit 0". GNU make dies of a SIGINT
itself (exit 130) whatever its recipe does, because the terminal sends Ctrl-C to the
whole foreground process group. Like a job-control shell, this puts the command in its
own process group and hands it the terminal; make, in the old group, never sees the
Ctrl-C, and the command's own exit status becomes make's. Without a terminal (CI, a pipe)
it simply runs the command.

Usage: ``python scripts/foreground.py COMMAND [ARG...]``
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys


def main(argv: list[str]) -> int:
    try:
        tty = os.open("/dev/tty", os.O_RDWR)
    except OSError:
        return subprocess.call(argv)
    try:
        own_group = os.getpgrp()
        if os.tcgetpgrp(tty) != own_group:  # already in the background: nothing to hand over
            return subprocess.call(argv)
        # Give the child the terminal before it runs; tcsetpgrp from what is then a
        # background group would stop us with SIGTTOU, so ignore that while switching.
        old_ttou = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the child handles Ctrl-C

        def take_terminal() -> None:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.tcsetpgrp(tty, os.getpgrp())

        child = subprocess.Popen(argv, process_group=0, preexec_fn=take_terminal)
        try:
            return child.wait()
        finally:
            with contextlib.suppress(OSError):
                os.tcsetpgrp(tty, own_group)
            signal.signal(signal.SIGTTOU, old_ttou)
    finally:
        os.close(tty)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
