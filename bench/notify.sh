#!/usr/bin/env bash
# Expiry notification benchmark: deciding what is due over 1,000,000 certificates in
# PostgreSQL (goal < 2 s), and digests sent per second to a local SMTP server (goal
# >= 100/s). Loopback only.
#
#   bench/notify.sh [CERTIFICATES] [OWNERS]       defaults: 1000000 7000
#   WEBHOOK=1 bench/notify.sh ...                 also a webhook serving every owner, posted
#                                                 to a local receiver (python3 http.server)
#   SINK=mailbox bench/notify.sh ...              aiosmtpd's Mailbox handler (parses each
#                                                 message) instead of the raw Maildir writer
#   SMTP=smtp://127.0.0.1:2525 bench/notify.sh    mail to that server instead (a local
#                                                 Postfix: bench/RESULTS.md says how it was set up)
#
# Needs PostgreSQL at CERTFLEET_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/
# postgres; scripts/test starts it) and python3 with aiosmtpd (installed when missing). The
# driver (notifier/examples/notify_bench.rs) creates its own database and drops it.
set -euo pipefail
cd "$(dirname "$0")/.."
certificates="${1:-1000000}"
owners="${2:-7000}"
postgres="${CERTFLEET_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install --quiet aiosmtpd
cargo build --release --quiet -p certfleet-notifier --example notify_bench

# The Maildir goes on tmpfs: aiosmtpd's Mailbox handler fsyncs every message in its one
# event loop, so on a disk it measures the disk (~75 messages/s here), not the sender.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then work="$(mktemp -d -p /dev/shm)"; else work="$(mktemp -d)"; fi
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# The sink stores each message's bytes as received, one file per message in Maildir/new.
# aiosmtpd's own Mailbox handler parses every message into Python's email objects and
# writes it out again: at a million certificates (144 MB of digests) that held the one
# Python core at 100 % and capped the run at about 40 digests/s whatever certfleet did.
# SINK=mailbox uses it anyway, for comparison.
cat > "$work/raw_maildir.py" <<'PY'
import itertools, os

class RawMaildir:
    """Writes each message as received into <dir>/new; no parsing."""
    def __init__(self, mail_dir):
        self.new = os.path.join(mail_dir, "new")
        os.makedirs(self.new, exist_ok=True)
        self.count = itertools.count()

    @classmethod
    def from_cli(cls, parser, *args):
        return cls(*args)

    async def handle_DATA(self, server, session, envelope):
        path = os.path.join(self.new, f"{os.getpid()}.{next(self.count)}.eml")
        with open(path, "wb") as message:
            message.write(envelope.original_content or envelope.content)
        return "250 OK"
PY
if [ "${SINK:-raw}" = mailbox ]; then handler=aiosmtpd.handlers.Mailbox; else handler=raw_maildir.RawMaildir; fi
PYTHONPATH="$work" python3 -m aiosmtpd -n -l "127.0.0.1:$port" -c "$handler" "$work/Maildir" &
smtpd=$!
trap 'kill "$smtpd" 2>/dev/null || true; wait "$smtpd" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
  sleep 0.1
done

webhook=()
if [ "${WEBHOOK:-0}" = 1 ]; then
  hookport="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  # Answers 204 to every POST and writes one line per post: the body's size in bytes.
  python3 - "$hookport" "$work/posts" <<'PY' &
import http.server, sys
port, log = int(sys.argv[1]), open(sys.argv[2], "a", buffering=1)
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        log.write(f"{len(body)}\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), Hook).serve_forever()
PY
  hook=$!
  trap 'kill "$smtpd" "$hook" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
  for _ in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $hookport), 1)" 2>/dev/null && break
    sleep 0.1
  done
  webhook=(--webhook "http://127.0.0.1:$hookport/")
fi

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(psql --version | head -1)"
target/release/examples/notify_bench --postgres "$postgres" --smtp "${SMTP:-smtp://127.0.0.1:$port}" \
  --certificates "$certificates" --owners "$owners" "${webhook[@]}"
[ -n "${SMTP:-}" ] || echo "messages in the Maildir: $(ls "$work/Maildir/new" | wc -l), $(du -sm "$work/Maildir/new" | cut -f1) MB"
if [ -f "$work/posts" ]; then
  awk '{ n++; total += $1; if ($1 > max) max = $1 }
       END { printf "webhook posts: %d, %.1f MB in all, largest %.2f MB\n", n, total / 1e6, max / 1e6 }' "$work/posts"
fi
