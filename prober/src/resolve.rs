//! Host name resolution with hickory-resolver: every address of a name, A and AAAA.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::error::ResolveErrorKind;
use hickory_resolver::TokioAsyncResolver;
use tokio::sync::OnceCell;

/// Why a name gave no address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no resolver: {0}")]
    NoResolver(String),
    #[error("{name} did not resolve: {reason}")]
    Lookup { name: String, reason: String },
    #[error("{name} did not resolve within {seconds:.1}s")]
    Timeout { name: String, seconds: f64 },
}

/// A lazily built resolver: the system configuration (`/etc/resolv.conf`, `/etc/hosts`),
/// or explicit name servers (e.g. an internal DNS, or a test server on a loopback port).
pub struct Resolver {
    nameservers: Option<Vec<SocketAddr>>,
    inner: OnceCell<Result<TokioAsyncResolver, String>>,
}

impl Resolver {
    pub fn new(nameservers: Option<Vec<SocketAddr>>) -> Self {
        Resolver {
            nameservers,
            inner: OnceCell::new(),
        }
    }

    pub async fn lookup(&self, name: &str, timeout: Duration) -> Result<Vec<IpAddr>, ResolveError> {
        let resolver = self.resolver().await?;
        let lookup = tokio::time::timeout(timeout, resolver.lookup_ip(name))
            .await
            .map_err(|_| ResolveError::Timeout {
                name: name.to_owned(),
                seconds: timeout.as_secs_f64(),
            })?
            .map_err(|error| ResolveError::Lookup {
                name: name.to_owned(),
                reason: error.to_string(),
            })?;
        let mut addresses: Vec<IpAddr> = lookup.iter().collect();
        addresses.dedup();
        if addresses.is_empty() {
            return Err(ResolveError::Lookup {
                name: name.to_owned(),
                reason: "no addresses".into(),
            });
        }
        Ok(addresses)
    }

    /// The PTR names of an address (as given, a trailing dot included); empty when it has
    /// none.
    pub async fn reverse(
        &self,
        ip: IpAddr,
        timeout: Duration,
    ) -> Result<Vec<String>, ResolveError> {
        let name = ip.to_string();
        let resolver = self.resolver().await?;
        match tokio::time::timeout(timeout, resolver.reverse_lookup(ip)).await {
            Err(_) => Err(ResolveError::Timeout {
                name,
                seconds: timeout.as_secs_f64(),
            }),
            Ok(Ok(lookup)) => Ok(lookup.iter().map(|ptr| ptr.to_string()).collect()),
            // NXDOMAIN or no PTR record: an address without a name.
            Ok(Err(error)) if matches!(error.kind(), ResolveErrorKind::NoRecordsFound { .. }) => {
                Ok(Vec::new())
            }
            Ok(Err(error)) => Err(ResolveError::Lookup {
                name,
                reason: error.to_string(),
            }),
        }
    }

    async fn resolver(&self) -> Result<&TokioAsyncResolver, ResolveError> {
        self.inner
            .get_or_init(|| async { self.build() })
            .await
            .as_ref()
            .map_err(|reason| ResolveError::NoResolver(reason.clone()))
    }

    fn build(&self) -> Result<TokioAsyncResolver, String> {
        match &self.nameservers {
            Some(servers) => {
                let ips: Vec<IpAddr> = servers.iter().map(SocketAddr::ip).collect();
                let port = servers.first().map(SocketAddr::port).unwrap_or(53);
                let group = NameServerConfigGroup::from_ips_clear(&ips, port, true);
                let config = ResolverConfig::from_parts(None, Vec::new(), group);
                Ok(TokioAsyncResolver::tokio(config, ResolverOpts::default()))
            }
            // Never fall back to public resolvers: a fleet's names are internal.
            None => TokioAsyncResolver::tokio_from_system_conf().map_err(|error| error.to_string()),
        }
    }
}
