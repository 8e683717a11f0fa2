#!/usr/bin/env python3
"""Streaming zip reader = busybox's `unzip -` (Debian busybox 1.35), which reads the archive
from standard input in one pass and extracts it. This wrapper hands its own stdin (the pipe)
straight to `busybox unzip -o -d TMP -` (it never reads or stores the archive itself), then
prints one JSON line per entry, in archive order, in the format of
test/helpers/ZipStreamReader.java: {"name","dir","size","sha256"} -- size and sha256 of the
file busybox wrote. If busybox exits non-zero, nothing goes to stdout, busybox's stderr is
copied to stderr, and the wrapper exits with busybox's code.

Archive order comes from busybox's progress lines ("   creating: NAME", "  inflating: NAME").
busybox prints every byte outside 0x20..0x7e of a name as '?', so a line is matched, byte by
byte with '?' as a one-byte wildcard, against the paths it created; the JSON name is the real
path's bytes (read as UTF-8, like Java; a name that is not UTF-8 is written byte by byte).
Two entries whose names differ only in such bytes, at the same length, are an error here.
"""
import hashlib, os, re, shutil, subprocess, sys, tempfile

BUSYBOX = os.environ.get("BUSYBOX", "busybox")


def quote(raw: bytes) -> str:
    try:
        units = raw.decode("utf-8").encode("utf-16-be")
        units = [int.from_bytes(units[i:i + 2], "big") for i in range(0, len(units), 2)]
    except UnicodeDecodeError:
        units = list(raw)
    out = '"'
    for c in units:
        if c in (0x22, 0x5C):
            out += "\\" + chr(c)
        elif c < 0x20 or c > 0x7E:
            out += "\\u%04x" % c
        else:
            out += chr(c)
    return out + '"'


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="bbunzip-")
    try:
        dest = os.path.join(tmp, "x")
        os.mkdir(dest)
        # stdin is inherited: busybox reads the pipe itself.
        p = subprocess.run([BUSYBOX, "unzip", "-o", "-d", dest, "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode != 0:
            sys.stderr.buffer.write(p.stderr)
            return p.returncode
        # every path busybox created, relative to dest, as bytes ("dir/" for directories)
        made = {}
        for root, dirs, files in os.walk(dest.encode()):
            rel = os.path.relpath(root, dest.encode())
            rel = b"" if rel == b"." else rel + b"/"
            for d in dirs:
                made[rel + d + b"/"] = True
            for f in files:
                made[rel + f] = False
        out = []
        for line in p.stdout.split(b"\n"):
            m = re.match(rb"^ *(creating|inflating|extracting): (.*)$", line)
            if not m:
                continue
            shown = m.group(2)
            if m.group(1) == b"creating" and not shown.endswith(b"/"):
                shown += b"/"
            if shown in made:
                hits = [shown]
            else:
                pat = re.compile(b"".join(b"." if ch == 0x3F else re.escape(bytes([ch])) for ch in shown) + b"\\Z", re.S)
                hits = [k for k in made if len(k) == len(shown) and pat.match(k)]
            if len(hits) != 1:
                sys.stderr.write("busybox_unzip_reader: cannot map %r to one extracted path: %r\n" % (shown, hits))
                return 3
            name = hits[0]
            path = os.path.join(dest.encode(), name)
            sha = hashlib.sha256()
            size = 0
            if not made[name]:
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 16):
                        sha.update(chunk)
                        size += len(chunk)
            out.append('{"name":%s,"dir":%s,"size":%d,"sha256":"%s"}\n'
                       % (quote(name), "true" if made[name] else "false", size, sha.hexdigest()))
        sys.stdout.write("".join(out))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
