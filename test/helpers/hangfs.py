"""A FUSE file system whose reads hang: a folder store's disk that stops answering.

Usage: python3 hangfs.py <mountpoint> <hold-file>

It serves a fixed tree (ok.txt, hang/one.bin, hang/two.bin, hang/big.bin). While
<hold-file> exists, every read of a file under hang/ blocks (the calling thread sits in
the read system call, as on a dead NFS or FUSE mount); once it is removed, reads answer.
Metadata (stat, readdir) always answers, as a hung mount's cache often does.
"""

import errno
import os
import stat
import sys
import time

from fusepy import FUSE, FuseOSError, Operations

NOW = 1_700_000_000
FILES = {
    "/ok.txt": b"answers at once\n",
    "/hang/one.bin": bytes(range(256)) * 64,
    "/hang/two.bin": b"two" * 5000,
    "/hang/big.bin": bytes(range(256)) * 16384,
}
DIRS = {"/", "/hang"}


class HangFS(Operations):
    def __init__(self, hold):
        self.hold = hold

    def getattr(self, path, fh=None):
        if path in DIRS:
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2, "st_mtime": NOW, "st_ctime": NOW, "st_atime": NOW}
        if path in FILES:
            return {"st_mode": stat.S_IFREG | 0o644, "st_nlink": 1, "st_size": len(FILES[path]), "st_mtime": NOW, "st_ctime": NOW, "st_atime": NOW, "st_ino": abs(hash(path)) % (2**31)}
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        prefix = path.rstrip("/") + "/"
        names = {p[len(prefix):].split("/")[0] for p in list(FILES) + list(DIRS) if p.startswith(prefix) and p != prefix}
        return [".", ".."] + sorted(names)

    def open(self, path, flags):
        if path not in FILES:
            raise FuseOSError(errno.ENOENT)
        return 0

    def read(self, path, size, offset, fh):
        if path.startswith("/hang/"):
            while os.path.exists(self.hold):
                time.sleep(0.05)
        return FILES[path][offset : offset + size]


if __name__ == "__main__":
    FUSE(HangFS(sys.argv[2]), sys.argv[1], foreground=True, nothreads=False, ro=True, allow_other=False, direct_io=True)
