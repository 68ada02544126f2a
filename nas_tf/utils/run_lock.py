"""One process per run directory.

Two processes writing one history would interleave it, so a run holds an
exclusive lock on ``<run dir>/run.lock`` while it works. The operating
system drops the lock when the process ends, however it ends (SIGKILL
included), so a killed run never leaves its directory locked.
"""

import errno
import fcntl
import os

LOCK_FILE = "run.lock"


class RunDirectoryInUse(RuntimeError):
    """Another process is working in the run directory."""


class RunLock:
    """Holds the lock of ``directory`` from construction to ``release``."""

    def __init__(self, directory: str):
        self.path = os.path.join(directory, LOCK_FILE)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip()
            os.close(self._fd)
            self._fd = None
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise RunDirectoryInUse(
                f"{directory} is in use by another process"
                + (f" (pid {holder})" if holder else "") + "; wait for it "
                "to finish or use another directory") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
