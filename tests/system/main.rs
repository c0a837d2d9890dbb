//! System tests: the real `certfleet` binary (built by [`bin::certfleet`]) against real
//! local servers. `certfleet probe` against in-process rustls, `openssl s_server`, nginx,
//! dnsmasq and plain TCP endpoints, with certificates generated at test time: every fact
//! of the probe JSON is compared with what the test made or what the server saw.
//! `certfleet serve` (in `serve`), `demo`, the osquery endpoints, the Debian packages and
//! the operator's documentation against what ships.

mod bin;
mod check;
mod cli;
mod dns_server;
mod docs_check;
mod hostile_servers;
mod nginx_server;
mod openssl_server;
mod pki;
mod pki_openssl;
mod plain_servers;
mod tls_server;

mod demo;
mod hostile;
mod osquery;
mod packages;
mod probe_chains;
mod probe_dns;
mod probe_input;
mod probe_keys;
mod probe_legacy;
mod probe_mtls;
mod probe_mtls_http;
mod probe_names;
mod probe_network;
mod serve;
mod starttls;
