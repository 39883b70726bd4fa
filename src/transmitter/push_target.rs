//! Which push endpoint URLs a receiver may give ssfd. A transmitter that POSTs wherever a
//! receiver says is a server-side request forgery tool, so by default a push target must be
//! `https` and must not resolve to a loopback, private, link-local or otherwise non-public
//! address. The operator may exempt hosts (`transmitter.push_allowed_hosts`), which also
//! permits plain `http` to them: tests and lab set-ups use `127.0.0.1`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One entry of the exemption list: a host name, an IP address or a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedHost {
    /// A host name, compared without case.
    Name(String),
    /// An address block.
    Block { network: IpAddr, prefix: u8 },
}

impl std::str::FromStr for AllowedHost {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some((address, prefix)) = text.split_once('/') {
            let network: IpAddr = address
                .parse()
                .map_err(|_| format!("`{text}`: `{address}` is not an IP address"))?;
            let max = if network.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: prefix must be 0..={max}"))?;
            return Ok(Self::Block { network, prefix });
        }
        if let Ok(address) = text.trim_matches(['[', ']']).parse::<IpAddr>() {
            let prefix = if address.is_ipv4() { 32 } else { 128 };
            return Ok(Self::Block {
                network: address,
                prefix,
            });
        }
        if text.is_empty() || text.contains(['/', ':', ' ']) {
            return Err(format!(
                "`{text}` is not a host name, IP address or CIDR block"
            ));
        }
        Ok(Self::Name(text.to_ascii_lowercase()))
    }
}

impl AllowedHost {
    fn allows_name(&self, host: &str) -> bool {
        matches!(self, Self::Name(name) if name.eq_ignore_ascii_case(host))
    }

    fn allows_address(&self, address: IpAddr) -> bool {
        let Self::Block { network, prefix } = self else {
            return false;
        };
        match (network, address) {
            (IpAddr::V4(net), IpAddr::V4(addr)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                u32::from(*net) & mask == u32::from(addr) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(addr)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*prefix)).unwrap_or(0);
                u128::from(*net) & mask == u128::from(addr) & mask
            }
            _ => false,
        }
    }
}

/// Why a push endpoint URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushTargetError {
    /// Not an absolute URL.
    #[error("endpoint_url is not a valid absolute URL: {0}")]
    Invalid(String),
    /// Not https, and the host is not exempted.
    #[error("endpoint_url must use https")]
    NotHttps,
    /// Resolves to a non-public address, and the host is not exempted.
    #[error("endpoint_url resolves to a loopback, private or link-local address ({0})")]
    NonPublic(IpAddr),
    /// The host name does not resolve.
    #[error("endpoint_url host `{0}` does not resolve")]
    Unresolvable(String),
}

/// Checks `endpoint_url` against the policy, resolving host names. Returns the parsed URL.
pub async fn check(
    endpoint_url: &str,
    allowed: &[AllowedHost],
) -> Result<url::Url, PushTargetError> {
    let url = url::Url::parse(endpoint_url).map_err(|e| PushTargetError::Invalid(e.to_string()))?;
    if !matches!(url.scheme(), "https" | "http") || url.cannot_be_a_base() {
        return Err(PushTargetError::Invalid(
            "the scheme must be https".to_owned(),
        ));
    }
    if url.username() != "" || url.password().is_some() {
        return Err(PushTargetError::Invalid(
            "credentials in the URL are not allowed; use authorization_header".to_owned(),
        ));
    }
    let host = match url.host() {
        Some(url::Host::Domain(name)) => Host::Name(name.to_owned()),
        Some(url::Host::Ipv4(v4)) => Host::Address(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Host::Address(IpAddr::V6(v6)),
        None => return Err(PushTargetError::Invalid("no host".to_owned())),
    };
    let addresses = match &host {
        Host::Address(address) => vec![*address],
        Host::Name(name) => {
            if allowed.iter().any(|entry| entry.allows_name(name)) {
                return Ok(url);
            }
            let port = url.port_or_known_default().unwrap_or(443);
            let resolved: Vec<IpAddr> = tokio::net::lookup_host((name.as_str(), port))
                .await
                .map_err(|_| PushTargetError::Unresolvable(name.clone()))?
                .map(|socket| socket.ip())
                .collect();
            if resolved.is_empty() {
                return Err(PushTargetError::Unresolvable(name.clone()));
            }
            resolved
        }
    };
    let exempt = addresses
        .iter()
        .all(|address| allowed.iter().any(|entry| entry.allows_address(*address)));
    if exempt {
        return Ok(url);
    }
    if url.scheme() != "https" {
        return Err(PushTargetError::NotHttps);
    }
    if let Some(address) = addresses.into_iter().find(|a| !is_public(*a)) {
        return Err(PushTargetError::NonPublic(address));
    }
    Ok(url)
}

enum Host {
    Name(String),
    Address(IpAddr),
}

/// Whether `address` is a globally routable unicast address.
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    !(v4.is_unspecified()
        || v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space, RFC 6598
        || (a == 192 && b == 0) // IETF protocol assignments, RFC 6890
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, RFC 2544
        || a >= 240)
}

fn is_public_v6(v6: Ipv6Addr) -> bool {
    let first = v6.segments()[0];
    !(v6.is_unspecified()
        || v6.is_loopback()
        || v6.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local, RFC 4193
        || (first & 0xffc0) == 0xfe80 // link-local
        || first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(entries: &[&str]) -> Vec<AllowedHost> {
        entries.iter().map(|e| e.parse().unwrap()).collect()
    }

    #[tokio::test]
    async fn non_public_and_plain_http_targets_are_refused_by_default() {
        for url in [
            "https://127.0.0.1/events",
            "https://10.1.2.3/events",
            "https://192.168.0.1/events",
            "https://169.254.169.254/latest",
            "https://[::1]/events",
            "https://[fe80::1]/events",
            "https://[::ffff:127.0.0.1]/events",
            "https://localhost/events",
        ] {
            assert!(
                matches!(check(url, &[]).await, Err(PushTargetError::NonPublic(_))),
                "{url} was accepted"
            );
        }
        assert_eq!(
            check("http://8.8.8.8/e", &[]).await,
            Err(PushTargetError::NotHttps)
        );
        assert!(matches!(
            check("ftp://8.8.8.8/e", &[]).await,
            Err(PushTargetError::Invalid(_))
        ));
        assert!(matches!(
            check("https://u:p@8.8.8.8/e", &[]).await,
            Err(PushTargetError::Invalid(_))
        ));
        assert!(check("https://8.8.8.8/events", &[]).await.is_ok());
    }

    #[tokio::test]
    async fn the_operator_may_exempt_hosts_and_blocks() {
        let allowed = allow(&["127.0.0.1", "10.0.0.0/8", "Receiver.Internal"]);
        assert!(check("http://127.0.0.1:9000/events", &allowed)
            .await
            .is_ok());
        assert!(check("https://10.200.1.1/events", &allowed).await.is_ok());
        assert!(check("http://receiver.internal/events", &allowed)
            .await
            .is_ok());
        assert!(check("https://127.0.0.2/events", &allowed).await.is_err());
        assert!(check("https://192.168.1.1/events", &allowed).await.is_err());
        assert!("10.0.0.0/33".parse::<AllowedHost>().is_err());
        assert!("bad host".parse::<AllowedHost>().is_err());
    }
}
