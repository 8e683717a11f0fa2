#!/usr/bin/env bash
# The whole test suite on a fresh Debian/Ubuntu machine: installs what the
# tests use (unzippers, and the real servers and clients later suites need),
# installs npm packages with `npm ci`, then type-checks and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests drive: Info-ZIP unzip, 7-Zip, bsdtar, Java, Python,
# curl and wget, and OpenStack Swift with s3api + memcached as the real S3
# server (scripts/swift-s3.sh starts it; the test run fails if it cannot).
need_pkgs=()
command -v unzip >/dev/null || need_pkgs+=(unzip)
command -v 7zz >/dev/null || command -v 7z >/dev/null || need_pkgs+=(7zip)
command -v bsdtar >/dev/null || need_pkgs+=(libarchive-tools)
# Java's ZipInputStream is the strictest streaming reader (test/helpers/ZipStreamReader.java).
command -v java >/dev/null || need_pkgs+=(openjdk-17-jre-headless)
command -v python3 >/dev/null || need_pkgs+=(python3)
# More streaming readers (test/helpers/readers/): busybox unzip from stdin, rubyzip's
# InputStream, zip4j's ZipInputStream; the Rust zip crate's is built by scripts/rust-reader.sh
# from Debian's crate packages (with the cargo on PATH, or Debian's).
command -v busybox >/dev/null || need_pkgs+=(busybox)
command -v ruby >/dev/null || need_pkgs+=(ruby)
ruby -e 'require "zip"' 2>/dev/null || need_pkgs+=(ruby-zip)
[ -f /usr/share/java/zip4j.jar ] || need_pkgs+=(libzip4j-java)
command -v cargo >/dev/null || need_pkgs+=(cargo)
command -v curl >/dev/null || need_pkgs+=(curl)
command -v wget >/dev/null || need_pkgs+=(wget)
# A FUSE file system whose reads hang (test/helpers/hangfs.py) plays a dead disk under the
# folder store (test/e2e/hung-disk.test.ts): Debian's fusepy and fuse3's fusermount3.
/usr/bin/python3 -c 'import fusepy' 2>/dev/null || need_pkgs+=(python3-fusepy)
command -v fusermount3 >/dev/null || need_pkgs+=(fuse3)
# aria2c splits a download into ranged connections (test/e2e/download-clients.test.ts).
command -v aria2c >/dev/null || need_pkgs+=(aria2)
command -v swift-proxy-server >/dev/null || need_pkgs+=(swift swift-proxy swift-account swift-container swift-object)
command -v memcached >/dev/null || need_pkgs+=(memcached)
# The end-to-end client tests (test/e2e/clients.test.ts) also drive nginx, as a
# caching CDN edge with its slice module (run from its own config, never as the
# system service), and Debian's Chromium (/usr/bin/chromium, driven by
# playwright-core, which downloads no browser of its own).
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_pkgs+=(nginx)
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  echo "test.sh: installing ${need_pkgs[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # Keep the packages from starting system-wide services; the tests start their own.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${need_pkgs[@]}" >/dev/null
  [ -z "$policy" ] || $SUDO rm -f "$policy"
fi

scripts/rust-reader.sh

# The suite runs on Node 24, the version the project targets (scripts/node-env.sh).
. scripts/node-env.sh
echo "test.sh: Node $(node -v), npm $(npm -v)" >&2

npm ci --no-audit --no-fund --loglevel=error
npm run --silent typecheck
npm run --silent lint
npx vitest run "$@"
