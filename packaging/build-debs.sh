#!/usr/bin/env bash
# Builds the two Debian packages from an already-built binary, without cargo-deb:
#   certfleet        the service: /usr/bin/certfleet, /etc/certfleet/certfleet.toml,
#                    certfleet.service (system user certfleet, state in /var/lib/certfleet)
#   certfleet-agent  the host agent: its own copy of the binary in /usr/lib/certfleet-agent,
#                    /usr/bin/certfleet-agent (= certfleet agent), /etc/certfleet/agent.toml,
#                    certfleet-agent.service (CPU quota, memory maximum, idle priority)
# The agent package carries its own copy so that fleet hosts need not install the service
# package (whose unit would start a server on every host). docs/installation.md.
#
# usage: packaging/build-debs.sh [BINARY [OUT_DIR]]
#   BINARY   default target/release/certfleet (cargo build --release -p certfleet)
#   OUT_DIR  default target/debian
#   DEB_COMPRESSION=xz|gzip|zstd|none (default xz)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
binary="${1:-$repo/target/release/certfleet}"
out="${2:-$repo/target/debian}"
compression="${DEB_COMPRESSION:-xz}"

[ -x "$binary" ] || { echo "build-debs: no binary at $binary (cargo build --release -p certfleet)" >&2; exit 1; }
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -1)"
arch="$(dpkg --print-architecture)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# install_binary DEST: the binary without debug symbols (a tenth of the size).
install_binary() {
  install -d "$(dirname "$1")"
  if command -v strip >/dev/null 2>&1; then strip --strip-debug -o "$1" "$binary"; else cp "$binary" "$1"; fi
  chmod 0755 "$1"
}

# control PKG_ROOT NAME DESCRIPTION: DEBIAN/control, conffiles and maintainer scripts.
control() {
  local root="$1" name="$2" description="$3"
  install -d -m 0755 "$root/DEBIAN"
  cat >"$root/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: $arch
Maintainer: certfleet maintainers <certfleet@localhost>
Section: net
Priority: optional
Depends: libc6, libgcc-s1, passwd
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Homepage: https://github.com/certfleet/certfleet
Description: $description
CONTROL
  (cd "$root" && find etc -type f | sed 's|^|/|' | sort) >"$root/DEBIAN/conffiles"
  install -m 0755 "$repo/packaging/$name/postinst" "$repo/packaging/$name/prerm" \
    "$repo/packaging/$name/postrm" "$root/DEBIAN/"
}

# --- certfleet (the service) ---------------------------------------------------------------
server="$work/certfleet"
install_binary "$server/usr/bin/certfleet"
install -d "$server/etc/certfleet" "$server/lib/systemd/system" "$server/usr/share/doc/certfleet"
sed -e 's|^url = "sqlite://certfleet.db" |url = "sqlite:///var/lib/certfleet/certfleet.db"|' \
    -e 's|^outbox_dir = "outbox"|outbox_dir = "/var/lib/certfleet/outbox"|' \
    -e '/^\[\[owners.rules\]\]/,$ s/^/# /' \
    "$repo/certfleet.example.toml" >"$server/etc/certfleet/certfleet.toml"
grep -q '^url = "sqlite:///var/lib/certfleet/certfleet.db"' "$server/etc/certfleet/certfleet.toml" \
  || { echo "build-debs: certfleet.example.toml changed; adapt the sed above" >&2; exit 1; }
install -m 0644 "$repo/packaging/certfleet.service" "$server/lib/systemd/system/"
install -m 0644 "$repo/README.md" "$repo/certfleet.example.toml" "$server/usr/share/doc/certfleet/"
# The osquery query pack (docs/osquery.md), for fleets that feed certfleet from osquery.
install -D -m 0644 "$repo/packaging/osquery/certfleet.conf" \
    "$server/usr/share/doc/certfleet/osquery/certfleet.conf"
control "$server" certfleet "TLS certificate inventory, expiry warnings and mTLS adoption
 certfleet finds every TLS certificate served across a fleet of hosts and containers,
 tells each owner before a certificate expires, and shows how far mutual TLS has been
 adopted. This package runs the service: API, web, ingest, probers and scheduler."

# --- certfleet-agent (the host agent) ------------------------------------------------------
agent="$work/certfleet-agent"
install_binary "$agent/usr/lib/certfleet-agent/certfleet"
install -d "$agent/usr/bin" "$agent/etc/certfleet" "$agent/lib/systemd/system"
printf '#!/bin/sh\n# certfleet-agent ARGS: certfleet agent ARGS (see certfleet agent --help).\nexec /usr/lib/certfleet-agent/certfleet agent "$@"\n' \
  >"$agent/usr/bin/certfleet-agent"
chmod 0755 "$agent/usr/bin/certfleet-agent"
sed -e 's|^server = "https://certfleet.example.com" .*|server = ""                                # set it: the service URL, e.g. https://certfleet.example.com|' \
    -e '/^\[agent.tags\]/,$ s/^/# /' \
    "$repo/agent/agent.example.toml" >"$agent/etc/certfleet/agent.toml"
sed -e 's|/usr/local/bin/certfleet agent|/usr/lib/certfleet-agent/certfleet agent|' \
  "$repo/agent/systemd/certfleet-agent.service" >"$agent/lib/systemd/system/certfleet-agent.service"
grep -q '^ExecStart=/usr/lib/certfleet-agent/certfleet agent' "$agent/lib/systemd/system/certfleet-agent.service" \
  || { echo "build-debs: agent/systemd/certfleet-agent.service changed; adapt the sed above" >&2; exit 1; }
control "$agent" certfleet-agent "certfleet host agent: listening TLS sockets of a host and its containers
 Reports the TCP listeners of the host and of every network namespace to the certfleet
 service, hourly, within 5 % of one CPU and 64 MiB, at idle priority. It never reads
 command lines, environment variables or private keys."

for package in certfleet certfleet-agent; do
  dpkg-deb --build --root-owner-group -Z"$compression" "$work/$package" \
    "$out/${package}_${version}_${arch}.deb" >/dev/null
  echo "$out/${package}_${version}_${arch}.deb"
done
