//! Reads a zip from standard input with the `zip` crate's streaming reader,
//! `zip::read::read_zipfile_from_stream`, and prints one JSON line per entry, in archive order:
//! {"name","dir","size","sha256"} — the same format as test/helpers/ZipStreamReader.java.
//! Output is buffered and printed only once the whole archive has been read; any failure
//! prints nothing on stdout, the crate's own error message on stderr, and exits 1.
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::io::{self, BufReader, Read, Write};

fn quote(s: &str) -> String {
    // Like the Java helper: '"' and '\\' backslash-escaped, every UTF-16 unit outside
    // 0x20..=0x7e written as \uXXXX (so a non-BMP character becomes a surrogate pair).
    let mut b = String::from("\"");
    for u in s.encode_utf16() {
        if u == b'"' as u16 || u == b'\\' as u16 {
            b.push('\\');
            b.push(u as u8 as char);
        } else if u < 0x20 || u > 0x7e {
            write!(b, "\\u{:04x}", u).unwrap();
        } else {
            b.push(u as u8 as char);
        }
    }
    b.push('"');
    b
}

fn run() -> Result<String, String> {
    let stdin = io::stdin();
    let mut input = BufReader::with_capacity(1 << 16, stdin.lock());
    let mut out = String::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let mut entry = match zip::read::read_zipfile_from_stream(&mut input) {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) => return Err(e.to_string()),
        };
        let mut sha = Sha256::new();
        let mut size: u64 = 0;
        loop {
            let n = entry.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            sha.update(&buf[..n]);
            size += n as u64;
        }
        let mut hex = String::with_capacity(64);
        for byte in sha.finalize() {
            write!(hex, "{:02x}", byte).unwrap();
        }
        writeln!(
            out,
            "{{\"name\":{},\"dir\":{},\"size\":{},\"sha256\":\"{}\"}}",
            quote(entry.name()),
            entry.is_dir(),
            size,
            hex
        )
        .unwrap();
    }
    Ok(out)
}

fn main() {
    match run() {
        Ok(out) => {
            let stdout = io::stdout();
            let mut lock = stdout.lock();
            lock.write_all(out.as_bytes()).unwrap();
            lock.flush().unwrap();
        }
        Err(msg) => {
            eprintln!("{}", msg);
            std::process::exit(1);
        }
    }
}
