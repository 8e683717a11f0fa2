#!/usr/bin/env bash
# Builds the Rust streaming zip reader the tests use (test/helpers/readers/rust: the `zip`
# crate's read_zipfile_from_stream) into .cache/rust-reader/, offline, from Debian's crate
# packages: their .debs are fetched with `apt-get download` and unpacked (nothing installed),
# and cargo builds against them as a directory source. Uses the cargo on PATH, or Debian's.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cache/rust-reader
bin="$out/target/release/zip-stream-reader"
src=test/helpers/readers/rust
if [ -x "$bin" ] && [ "$bin" -nt "$src/src/main.rs" ] && [ "$bin" -nt "$src/Cargo.toml" ]; then exit 0; fi
mkdir -p "$out"
if [ ! -d "$out/vendor/usr/share/cargo/registry" ]; then
  rm -rf "$out/debs" "$out/vendor"
  mkdir -p "$out/debs"
  fetch() {
    (cd "$out/debs" && apt-get download -qq librust-adler-dev librust-block-buffer-dev librust-byteorder-dev \
    librust-cfg-if-dev librust-cpufeatures-dev librust-crc32fast-dev librust-crossbeam-utils-dev \
    librust-crypto-common-dev librust-digest-dev librust-flate2-dev librust-generic-array-dev \
    librust-libc-dev librust-miniz-oxide-dev librust-sha2-dev librust-typenum-dev \
    librust-version-check-dev librust-zip-dev 2>/dev/null)
  }
  # Package lists may be missing or stale on a fresh machine: refresh them once and retry.
  fetch || { apt-get update -qq && fetch; }
  for d in "$out"/debs/*.deb; do dpkg -x "$d" "$out/vendor"; done
fi
rm -rf "$out/src" "$out/Cargo.toml" "$out/Cargo.lock"
cp -r "$src/src" "$src/Cargo.toml" "$out/"
mkdir -p "$out/.cargo"
cat > "$out/.cargo/config.toml" <<TOML
[source.crates-io]
replace-with = "debian"
[source.debian]
directory = "$PWD/$out/vendor/usr/share/cargo/registry"
TOML
cargo=cargo
command -v cargo >/dev/null || cargo=/usr/bin/cargo
(cd "$out" && CARGO_HOME="$PWD/.cargo-home" "$cargo" build --release --offline --quiet)
