#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/.

Certificates are generated with python3-cryptography (odd ones on purpose: DSA, Ed448,
P-521, RSA-1024 with SHA-1, RSA-PSS, expired, multi-valued RDNs, UTF-8 and escaped names,
no SAN, empty subject), plus real roots from /etc/ssl/certs. Legacy flights are captured
from `openssl s_server` (TLS 1.0, 1.1, 1.2; with and without a certificate request) and
built by hand for the odd cases. The rest is text written here. Re-running replaces the
generated files; keys are fresh each time, so the bytes change but the shapes do not.

    python3 fuzz/seeds.py            # needs python3-cryptography and the openssl CLI
"""

import datetime
import json
import os
import random
import socket
import struct
import subprocess
import tempfile
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
NOW = datetime.datetime(2026, 11, 27, tzinfo=datetime.timezone.utc)
DAY = datetime.timedelta(days=1)
random.seed(9)


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as out:
        out.write(data)


def name(*pairs):
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


def cn(text, org="Example"):
    return name((NameOID.COMMON_NAME, text), (NameOID.ORGANIZATION_NAME, org))


def cert(subject, key, issuer=None, issuer_key=None, sans=None, ca=False, days=(-30, 365),
         algorithm="sha256", pss=False, ski=True):
    issuer = issuer or subject
    issuer_key = issuer_key or key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(random.getrandbits(120) | 1 << 119)
        .not_valid_before(NOW + days[0] * DAY)
        .not_valid_after(NOW + days[1] * DAY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if ski:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False)
    kwargs = {}
    if pss:
        kwargs["rsa_padding"] = padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                            salt_length=padding.PSS.DIGEST_LENGTH)
    digest = None
    if not isinstance(issuer_key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        digest = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(),
                  "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[algorithm]
    return builder.sign(issuer_key, digest, **kwargs)


def der(certificate):
    return certificate.public_bytes(serialization.Encoding.DER)


def dns(*names):
    return [x509.DNSName(n) for n in names]


def certificates():
    import ipaddress
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = cert(cn("Fuzz Root CA"), root_key, ca=True, days=(-3650, 3650), algorithm="sha384")
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = cert(cn("Fuzz Issuing CA"), inter_key, cn("Fuzz Root CA"), root_key, ca=True,
                 days=(-365, 1000), algorithm="sha384")
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = cert(cn("fuzz.example"), leaf_key, cn("Fuzz Issuing CA"), inter_key,
                sans=dns("fuzz.example", "*.fuzz.example")
                + [x509.IPAddress(ipaddress.ip_address("10.1.2.3")),
                   x509.IPAddress(ipaddress.ip_address("fd00::5")),
                   x509.RFC822Name("ops@fuzz.example"),
                   x509.UniformResourceIdentifier("spiffe://fuzz.example/svc")],
                days=(-10, 20))
    out = {
        "ecdsa-p256-leaf.der": der(leaf),
        "ecdsa-p256-issuing-ca.der": der(inter),
        "ecdsa-p384-root-ca.der": der(root),
        "chain-leaf-issuing-root.der": der(leaf) + der(inter) + der(root),
        "chain-wrong-order.der": der(inter) + der(leaf),
        "chain-incomplete.der": der(leaf),
    }
    rsa_key = rsa.generate_private_key(65537, 2048)
    out["rsa-2048-self-signed.der"] = der(cert(cn("rsa.fuzz.example"), rsa_key,
                                               sans=dns("rsa.fuzz.example")))
    weak = rsa.generate_private_key(65537, 1024)
    out["rsa-1024-expired.der"] = der(cert(cn("old.fuzz.example"), weak,
                                           sans=dns("old.fuzz.example"), days=(-800, -5)))
    # python3-cryptography no longer signs with SHA-1: the openssl CLI does.
    with tempfile.TemporaryDirectory() as work:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:1024", "-sha1", "-nodes",
                        "-keyout", f"{work}/k", "-subj", "/CN=sha1.fuzz.example/O=Example",
                        "-days", "30", "-outform", "DER", "-out", f"{work}/c"],
                       check=True, capture_output=True)
        with open(f"{work}/c", "rb") as f:
            out["rsa-1024-sha1.der"] = f.read()
    out["rsa-pss.der"] = der(cert(cn("pss.fuzz.example"), rsa_key, pss=True,
                                  sans=dns("pss.fuzz.example")))
    out["ed25519.der"] = der(cert(cn("ed25519.fuzz.example"), ed25519.Ed25519PrivateKey.generate(),
                                  sans=dns("ed25519.fuzz.example")))
    out["ed448.der"] = der(cert(cn("ed448.fuzz.example"), ed448.Ed448PrivateKey.generate(),
                                sans=dns("ed448.fuzz.example")))
    out["ecdsa-p521.der"] = der(cert(cn("p521.fuzz.example"), ec.generate_private_key(ec.SECP521R1()),
                                     algorithm="sha512", sans=dns("p521.fuzz.example")))
    out["ecdsa-secp256k1.der"] = der(cert(cn("k1.fuzz.example"),
                                          ec.generate_private_key(ec.SECP256K1()),
                                          sans=dns("k1.fuzz.example")))
    out["dsa-2048.der"] = der(cert(cn("dsa.fuzz.example"), dsa.generate_private_key(2048),
                                   sans=dns("dsa.fuzz.example")))
    out["no-san-cn-only.der"] = der(cert(cn("cn-only.fuzz.example"), leaf_key, ski=False))
    out["empty-subject.der"] = der(cert(x509.Name([]), leaf_key,
                                        sans=dns("empty.fuzz.example"), ski=False))
    odd_name = x509.Name([
        x509.RelativeDistinguishedName([
            x509.NameAttribute(NameOID.COMMON_NAME, "multi"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "valued"),
        ]),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                           "Ex,am+ple \"Ü\" <#;>")]),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "example")]),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.EMAIL_ADDRESS,
                                                           "a@example.com")]),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.SERIAL_NUMBER, "0042")]),
    ])
    out["odd-names.der"] = der(cert(odd_name, leaf_key, sans=dns("xn--ip-fuzz.invalid", "x..y", "*", "UPPER.Example."),
                                    ski=False))
    for path in ["/etc/ssl/certs/ISRG_Root_X1.pem", "/etc/ssl/certs/DigiCert_Global_Root_G3.pem"]:
        if os.path.exists(path):
            with open(path, "rb") as pem:
                real = x509.load_pem_x509_certificate(pem.read())
            out["real-" + os.path.basename(path)[:-4].lower() + ".der"] = der(real)
    # CertificateRequest CA names: a Name with and without its outer SEQUENCE.
    ca_name = cn("Payments Client CA").public_bytes()
    out["ca-name.der"] = ca_name
    out["ca-name-without-sequence.der"] = ca_name[2:]
    out["truncated.der"] = der(leaf)[:200]
    out["garbage.der"] = bytes([0x30, 0x03, 0x01, 0x01, 0xFF])
    for file_name, data in out.items():
        write("certificate", file_name, data)
    return der(leaf), der(inter), leaf_key


# ---- legacy flights ----------------------------------------------------------------------

def record(kind, body, version=0x0303):
    return struct.pack(">BHH", kind, version, len(body)) + body


def handshake(kind, body):
    return struct.pack(">B", kind) + len(body).to_bytes(3, "big") + body


def server_hello(version=0x0301, suite=0xC013):
    body = struct.pack(">H", version) + bytes(32) + b"\x00" + struct.pack(">HB", suite, 0)
    return handshake(2, body)


def certificate_message(chain):
    entries = b"".join(len(c).to_bytes(3, "big") + c for c in chain)
    return handshake(11, len(entries).to_bytes(3, "big") + entries)


def certificate_request(names):
    dn = b"".join(struct.pack(">H", len(n)) + n for n in names)
    body = b"\x02\x01\x40" + struct.pack(">H", 4) + b"\x04\x01\x04\x03"
    body += struct.pack(">H", len(dn)) + dn
    return handshake(13, body)


def client_hello():
    suites = [0xC02B, 0xC02F, 0xC02C, 0xC030, 0xC009, 0xC00A, 0xC013, 0xC014, 0x009C, 0x002F, 0x0035, 0x000A]
    sig = [0x0403, 0x0804, 0x0401, 0x0503, 0x0201, 0x0203]
    ext = b""
    groups = b"".join(struct.pack(">H", g) for g in [0x001D, 0x0017, 0x0018])
    ext += struct.pack(">HH", 0x000A, len(groups) + 2) + struct.pack(">H", len(groups)) + groups
    ext += struct.pack(">HH", 0x000B, 2) + b"\x01\x00"
    sigs = b"".join(struct.pack(">H", s) for s in sig)
    ext += struct.pack(">HH", 0x000D, len(sigs) + 2) + struct.pack(">H", len(sigs)) + sigs
    body = b"\x03\x03" + os.urandom(32) + b"\x00"
    body += struct.pack(">H", 2 * len(suites)) + b"".join(struct.pack(">H", s) for s in suites)
    body += b"\x01\x00" + struct.pack(">H", len(ext)) + ext
    return record(22, handshake(1, body), 0x0301)


def capture_openssl(work, args):
    """Everything `openssl s_server args` sends after our ClientHello, until ServerHelloDone."""
    port = random.randint(20000, 30000)
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", str(port), "-cert", f"{work}/leaf.pem",
         "-key", f"{work}/leaf.key", "-cert_chain", f"{work}/inter.pem", "-quiet"] + args,
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        else:
            return None
        sock.sendall(client_hello())
        received = b""
        while not received.endswith(b"\x0e\x00\x00\x00"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        sock.close()
        return received
    finally:
        server.kill()
        server.wait()


def legacy(leaf, inter, leaf_key):
    with tempfile.TemporaryDirectory() as work:
        with open(f"{work}/leaf.key", "wb") as f:
            f.write(leaf_key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        for file_name, data in [("leaf.pem", leaf), ("inter.pem", inter)]:
            with open(f"{work}/{file_name}", "wb") as f:
                f.write(x509.load_der_x509_certificate(data).public_bytes(serialization.Encoding.PEM))
        runs = {
            "openssl-tls1.0.bin": ["-tls1", "-cipher", "ALL:@SECLEVEL=0"],
            "openssl-tls1.1.bin": ["-tls1_1", "-cipher", "ALL:@SECLEVEL=0"],
            "openssl-tls1.2.bin": ["-tls1_2"],
            "openssl-tls1.2-client-cert-requested.bin": ["-tls1_2", "-verify", "1",
                                                         "-CAfile", f"{work}/inter.pem"],
            "openssl-tls1.0-client-cert-required.bin": ["-tls1", "-cipher", "ALL:@SECLEVEL=0",
                                                        "-Verify", "1",
                                                        "-CAfile", f"{work}/inter.pem"],
        }
        for file_name, args in runs.items():
            flight = capture_openssl(work, args)
            if flight:
                write("legacy_flight", file_name, flight)
    names = [cn("Payments Client CA").public_bytes(), cn("Other CA").public_bytes()[2:]]
    messages = (server_hello() + certificate_message([leaf, inter])
                + certificate_request(names) + handshake(14, b""))
    write("legacy_flight", "built-one-record.bin", record(22, messages))
    # The same flight cut into 100-byte records (messages span records).
    split = b"".join(record(22, messages[i:i + 100]) for i in range(0, len(messages), 100))
    write("legacy_flight", "built-split-records.bin", split)
    write("legacy_flight", "built-fatal-alert.bin",
          record(22, server_hello()) + record(21, b"\x02\x28"))
    write("legacy_flight", "built-warning-alert-then-done.bin",
          record(21, b"\x01\x5a") + record(22, server_hello() + certificate_message([leaf])
                                              + handshake(14, b"")))
    write("legacy_flight", "built-change-cipher-spec.bin",
          record(22, server_hello()) + record(20, b"\x01"))
    write("legacy_flight", "built-unknown-message.bin",
          record(22, server_hello() + handshake(22, b"\x01\x00\x01\x00")
                 + certificate_message([leaf]) + handshake(14, b"")))
    write("legacy_flight", "built-empty-chain.bin",
          record(22, server_hello(0x0302) + certificate_message([]) + handshake(14, b"")))
    write("legacy_flight", "built-garbage-certificate.bin",
          record(22, server_hello() + certificate_message([b"\x30\x03\x01\x01\xff"])
                 + handshake(14, b"")))
    write("legacy_flight", "built-malformed-certificate-message.bin",
          record(22, server_hello() + handshake(11, b"\x00\x00\x09\x00\x00\x01")))
    write("legacy_flight", "http-answer.bin", b"HTTP/1.1 400 Bad Request\r\n\r\n")
    write("legacy_flight", "ssl2-looking.bin", b"\x80\x2e\x04\x00\x01\x00\x02")


# ---- STARTTLS ----------------------------------------------------------------------------

def starttls():
    # First byte: protocol (0 SMTP, 1 IMAP, 2 POP3, 3 FTP, 4 LDAP, 5 PostgreSQL, 6 XMPP,
    # 7 MySQL); the rest is what the server sends.
    smtp_ehlo = ("250-mail.example.com Hello certfleet.invalid\r\n250-SIZE 52428800\r\n"
                 "250-8BITMIME\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 HELP\r\n")
    seeds = {
        "smtp-postfix.txt": "0220 mail.example.com ESMTP Postfix (Debian/GNU)\r\n" + smtp_ehlo
                            + "220 2.0.0 Ready to start TLS\r\n",
        "smtp-multiline-greeting.txt": "0220-mail.example.com ESMTP\r\n220-no UCE\r\n"
                                       "220 ok\r\n250 mail.example.com\r\n220 go ahead\r\n",
        "smtp-refused.txt": "0220 mx ESMTP\r\n250 mx\r\n454 4.7.0 TLS not available\r\n",
        "smtp-busy.txt": "0554 5.3.2 busy, try later\r\n",
        "smtp-aiosmtpd.txt": "0220 localhost Python SMTP 1.4.6\r\n250-localhost\r\n"
                             "250-SIZE 33554432\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
                             "250-STARTTLS\r\n250 HELP\r\n220 Ready to start TLS\r\n",
        "smtp-lf-only.txt": "0220 mx\n250 mx\n220 go\n",
        "imap-dovecot.txt": "1* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE "
                            "LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready.\r\n"
                            "cf1 OK Begin TLS negotiation now.\r\n",
        "imap-untagged-first.txt": "1* OK ready\r\n* CAPABILITY IMAP4rev1 STARTTLS\r\n"
                                   "cf1 OK go\r\n",
        "imap-refused.txt": "1* OK ready\r\ncf1 BAD STARTTLS unknown\r\n",
        "imap-bye.txt": "1* BYE too many connections\r\n",
        "pop3-dovecot.txt": "2+OK Dovecot ready.\r\n+OK Begin TLS negotiation now.\r\n",
        "pop3-refused.txt": "2+OK POP3 ready\r\n-ERR command not recognised\r\n",
        "ftp-vsftpd.txt": "3220 (vsFTPd 3.0.3)\r\n234 Proceed with negotiation.\r\n",
        "ftp-proftpd-multiline.txt": "3220-Welcome\r\n220-to ProFTPD\r\n220 Server ready.\r\n"
                                     "234 AUTH TLS successful\r\n",
        "ftp-refused.txt": "3220 ready\r\n500 AUTH not understood\r\n",
        "ldap-success.bin": b"4" + bytes.fromhex("300c02010178070a010004000400"),
        "ldap-success-with-oid.bin": b"4" + bytes.fromhex(
            "302402010178" "1f" "0a010004000400" "8a16") + b"1.3.6.1.4.1.1466.20037",
        "ldap-refused.bin": b"4" + bytes.fromhex("300c02010178070a013404000400"),
        "ldap-long-length.bin": b"4" + bytes.fromhex("3081 0c 02010178070a010004000400"
                                                     .replace(" ", "")),
        "ldap-two-byte-length.bin": b"4" + bytes.fromhex("3082000c02010178070a010004000400"),
        "postgres-yes.bin": b"5S",
        "postgres-no.bin": b"5N",
        "postgres-error.bin": b"5E\x00\x00\x00\x10SFATAL\x00\x00",
        "xmpp-prosody.txt": "6<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                            "xmlns:stream='http://etherx.jabber.org/streams' id='abc' "
                            "from='fuzz.example' version='1.0'><stream:features>"
                            "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
                            "</starttls></stream:features>"
                            "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
        "xmpp-no-starttls.txt": "6<stream:stream version='1.0'><stream:features>"
                                "<mechanisms/></stream:features>",
        "xmpp-failure.txt": "6<stream:stream><stream:features><starttls/></stream:features>"
                            "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
        "xmpp-empty-features.txt": "6<stream:stream><stream:features/>",
    }
    # MySQL 8 handshake packet with CLIENT_SSL, and one without.
    def mysql(caps, version=b"8.0.36"):
        payload = b"\x0a" + version + b"\x00" + struct.pack("<I", 7) + b"abcdefgh\x00"
        payload += struct.pack("<H", caps) + b"\x21" + struct.pack("<H", 2) + b"\xff\xdf"
        payload += b"\x15" + bytes(10) + b"ijklmnopqrst\x00mysql_native_password\x00"
        return b"7" + len(payload).to_bytes(3, "little") + b"\x00" + payload
    seeds["mysql-ssl.bin"] = mysql(0xFFFF)
    seeds["mysql-no-ssl.bin"] = mysql(0xF7FF)
    error = b"\xff\x6a\x04#HY000Host is blocked"
    seeds["mysql-error.bin"] = b"7" + len(error).to_bytes(3, "little") + b"\x00" + error
    seeds["mysql-truncated.bin"] = b"7" + bytes([0x08, 0, 0, 0]) + b"\x0a5.7\x00\x01\x02\x03"
    for file_name, data in seeds.items():
        write("starttls", file_name, data)


# ---- agent reports -----------------------------------------------------------------------

def agent_reports():
    base = {
        "agent": {"version": "0.1.0"}, "collected_at": "2026-11-27T10:00:00Z",
        "host": {"hostname": "i-0abc", "machine_id": "5f1c", "addresses": ["10.0.0.5"],
                 "tags": {"app": "billing", "env": "prod", "owner": "billing-team@example.com"}},
        "sockets": [{"address": "0.0.0.0", "port": 8443, "protocol": "tcp",
                     "netns": 4026531840, "process": "java", "container": None,
                     "reachable": ["10.0.0.5"], "scope": "host"}],
    }

    def variant(change):
        report = json.loads(json.dumps(base))
        change(report)
        return json.dumps(report)

    def many(report):
        report["host"]["addresses"].append("fd00::5")
        report["sockets"] = [
            {"address": a, "port": p, "protocol": proto, "netns": 4026532000 + p % 3,
             "process": "nginx", "container": "web-%d" % (p % 3), "reachable": [],
             "scope": "loopback" if a.startswith("127.") or a == "::1" else "host"}
            for a, p, proto in [("0.0.0.0", 443, "tcp"), ("::", 443, "tcp"),
                                ("127.0.0.1", 8080, "tcp"), ("10.0.0.5", 5432, "tcp"),
                                ("::1", 9000, "tcp"), ("0.0.0.0", 443, "udp"),
                                ("fe80::1%eth0".split("%")[0], 22, "tcp")]]

    seeds = {
        "contract-example.json": json.dumps(base, indent=1),
        "many-sockets-containers.json": variant(many),
        "minimal.json": json.dumps({"agent": {"version": "1"}, "collected_at":
                                    "2026-11-27T10:00:00.123456789+02:00",
                                    "host": {"hostname": "h"}, "sockets": []}),
        "bad-port-zero.json": variant(lambda r: r["sockets"][0].update(port=0)),
        "bad-port-too-big.json": variant(lambda r: r["sockets"][0].update(port=70000)),
        "bad-address.json": variant(lambda r: r["sockets"][0].update(address="10.0.0.999")),
        "bad-protocol.json": variant(lambda r: r["sockets"][0].update(protocol="sctp")),
        "bad-empty-hostname.json": variant(lambda r: r["host"].update(hostname="  ")),
        "bad-control-chars.json": variant(lambda r: r["host"]["tags"].update(app="a\u0007b")),
        "bad-long-process.json": variant(lambda r: r["sockets"][0].update(process="p" * 600)),
        "bad-unknown-date.json": variant(lambda r: r.update(collected_at="yesterday")),
        "bad-trailing-garbage.json": json.dumps(base) + " {}",
        "bad-truncated.json": json.dumps(base)[:150],
        "unicode-tags.json": variant(lambda r: r["host"]["tags"].update(
            {"équipe": "paiements", "owner": "ops@exämple.com"})),
        "unknown-fields.json": variant(lambda r: r.update(extra={"nested": [1, 2.5, None]})),
        "null-netns.json": variant(lambda r: r["sockets"][0].update(netns=None)),
    }
    for file_name, data in seeds.items():
        write("agent_report", file_name, data)


# ---- osquery -----------------------------------------------------------------------------

def osquery():
    def row(address, port, protocol="6", family="2", netns="4026531840"):
        return {"address": address, "family": family, "fd": "7", "net_namespace": netns,
                "path": "", "pid": "812", "port": port, "protocol": protocol, "socket": "2931"}

    common = {"hostIdentifier": "web-01.example.com", "calendarTime": "Fri Nov 27 10:00:00 2026 UTC",
              "unixTime": 1795773600, "epoch": 0, "counter": 3, "numerics": False,
              "decorations": {"host_uuid": "4740D59F", "hostname": "web-01"}}
    event = dict(common, name="pack_certfleet_listening_ports", action="added",
                 columns=row("0.0.0.0", "443"))
    removed = dict(common, name="pack_certfleet_listening_ports", action="removed",
                   columns=row("0.0.0.0", "8080"))
    batch = dict(common, name="listening_ports", diffResults={
        "added": [row("10.0.0.7", "8443"), row("::", "443", family="10"),
                  row("127.0.0.1", "9090"), row("0.0.0.0", "53", protocol="17"),
                  row("", "0", family="1")],
        "removed": [row("10.0.0.7", "22")]})
    snapshot = dict(common, name="listening_ports", action="snapshot", snapshot=[
        row("0.0.0.0", "443"), row("172.17.0.2", "8443", netns="4026532301"),
        row("0.0.0.0", "8443", netns="4026532301")])
    numerics = dict(common, numerics=True, name="listening_ports", action="added",
                    columns={"address": "10.0.0.9", "family": 2, "port": 636, "protocol": 6,
                             "net_namespace": 0})
    other_query = dict(common, name="pack_osquery_info", action="added",
                       columns={"version": "5.12.1"})
    seeds = {
        "enroll.json": {"enroll_secret": "s3cret", "host_identifier": "web-01.example.com",
                        "platform_type": "9", "host_details": {"os_version": {"name": "Debian"}}},
        "enroll-odd-identifier.json": {"enroll_secret": "s3cret",
                                       "host_identifier": " ÿ/../web 01\u0000 "},
        "log-event.json": {"node_key": "k", "log_type": "result", "data": [event, removed]},
        "log-batch.json": {"node_key": "k", "log_type": "result", "data": [batch]},
        "log-snapshot.json": {"log_type": "result", "data": [snapshot]},
        "log-numerics.json": {"log_type": "result", "data": [numerics, other_query]},
        "log-status.json": {"node_key": "k", "log_type": "status", "data": [
            {"severity": "0", "filename": "scheduler.cpp", "line": "83",
             "message": "Executing scheduled query", "version": "5.12.1"}]},
        "bad-port.json": {"log_type": "result", "data": [
            dict(event, columns=row("0.0.0.0", "70000"))]},
        "bad-address.json": {"log_type": "result", "data": [
            dict(event, columns=row("not-an-ip", "443"))]},
        "bad-action.json": {"log_type": "result", "data": [dict(event, action="changed")]},
        "bad-data-entry.json": {"log_type": "result", "data": ["text", 3]},
        "bad-diff.json": {"log_type": "result", "data": [dict(batch, diffResults=[1])]},
        "missing-columns.json": {"log_type": "result", "data": [
            {"name": "listening_ports", "action": "added"}]},
        "null-rows.json": {"log_type": "result", "data": [
            dict(common, name="listening_ports", action="snapshot", snapshot=None)]},
    }
    for file_name, data in seeds.items():
        write("osquery", file_name, json.dumps(data))
    write("osquery", "bad-truncated.json", json.dumps(seeds["log-batch.json"])[:300])
    write("osquery", "bad-trailing.json", json.dumps(seeds["enroll.json"]) + "]")


# ---- query strings -----------------------------------------------------------------------

def query_params():
    seeds = [
        "hostname=api.internal", "hostname=*.example.com&limit=50",
        "serial=0A:1B:2C:3D&limit=1000", "serial=0x00ff", "serial=123456789012345678901234567890",
        "fingerprint=" + "ab" * 32, "fingerprint=sha256/" + ":".join(["AB"] * 32),
        "fingerprint=" + "0" * 40, "issuer=CN%3DExample%20Issuing%20CA%2CO%3DExample",
        "expiring_within=30d&cursor=" + "f" * 64, "expiring_within=12h", "expiring_within=90m",
        "expiring_within=3651d", "expiring_within=-1", "hostname=a&serial=b",
        "address=10.1.2.3&port=8443&app=billing&env=prod&owner=ops%40example.com",
        "address=fd00::5&mtls=required&finding=weak_key&limit=10&cursor=42",
        "mtls=optional&finding=expires_soon", "mtls=sometimes", "port=0", "port=65536",
        "finding=nope", "failed=true&owner=a%40b.c&limit=5&cursor=7", "failed=maybe",
        "by=env", "by=app", "by=owner", "limit=0", "limit=1001", "limit=%20100%20",
        "cursor=-1", "unknown=1", "hostname=%FF%FE", "hostname=", "q=CN%3Dfoo",
        "hostname=a+b", "&&&==&", "limit=1&limit=2",
    ]
    for index, text in enumerate(seeds):
        write("query_params", "q%02d.txt" % index, text)


def main():
    leaf, inter, leaf_key = certificates()
    legacy(leaf, inter, leaf_key)
    starttls()
    agent_reports()
    osquery()
    query_params()


if __name__ == "__main__":
    main()
