#!/usr/bin/env bash
# Installs what building, running and testing stella-forensics needs on a fresh Debian machine
# (run as root). Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(libsodium-dev libzstd-dev libarchive-dev libssl-dev pkg-config
  zstd openssl libarchive-tools protobuf-compiler curl prometheus
  zlib1g-dev  # zlib.h for swift-nio-extras' NIOHTTPCompression (OTLP/HTTP gzip and deflate)
  systemd  # systemd-analyze, which checks deploy/systemd/stella-capture.service (no systemd needs to run)
  chromium  # renders the HTML report headless in e2e/test_report.py
  groff-base)  # renders the generated man page in e2e/test_cli_conveniences.py
missing=()
for package in "${apt_packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "setup: Python packages from e2e/requirements.txt"
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r e2e/requirements.txt
