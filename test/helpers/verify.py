"""Checks a zip with Python's zipfile: names, sizes, CRCs (by reading every
byte), and the exact mtime from the extended-timestamp extra.
Prints one JSON object per entry; exits non-zero on any failure."""
import hashlib, json, struct, sys, zipfile

def ut_mtime(extra):
    i = 0
    while i + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, i)
        if tag == 0x5455 and size >= 5 and extra[i + 4] & 1:
            return struct.unpack_from("<i", extra, i + 5)[0]
        i += 4 + size
    return None

with zipfile.ZipFile(sys.argv[1]) as zf:
    bad = zf.testzip()
    if bad is not None:
        sys.exit(f"bad CRC in {bad!r}")
    for info in zf.infolist():
        h = hashlib.sha256()
        if not info.is_dir():
            with zf.open(info) as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        print(json.dumps({
            "name": info.filename,
            "size": info.file_size,
            "crc": info.CRC,
            "sha256": h.hexdigest(),
            "mtime": ut_mtime(info.extra),
            "dir": info.is_dir(),
        }))
