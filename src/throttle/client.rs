//! Who the client is: the connection's peer, or the address a trusted
//! proxy forwarded for.
//!
//! `X-Forwarded-For` says whatever its sender wrote, so it is believed only
//! as far as a chain of trusted proxies vouches for it: walking from the
//! peer leftwards, each trusted hop names the one before it, and the first
//! address that is not a trusted proxy is the client. With no trusted
//! proxies (`throttle_options.trusted_proxies`), the header is ignored.
//! The same answer feeds the per-client bucket, the mapping's
//! `context.identity.sourceIp` and the usage record's source IP.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

/// The peer address of the connection a request came on. Servers insert it
/// into the request extensions (see `examples/petstore.rs`); tollgate reads it
/// for per-client limits and usage records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub SocketAddr);

/// The client's IP: the peer address, or, when the peer is a trusted proxy,
/// the right-most address in `X-Forwarded-For` that is not itself a trusted
/// proxy. An unparsable entry ends the walk at the last trusted hop, so a
/// client cannot pick its own address by sending garbage. An IPv4 address
/// written as IPv6 (`::ffff:192.0.2.1`) is the IPv4 address: one client,
/// one bucket.
pub(crate) fn client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    walk(peer?.to_canonical(), headers, trusted).map(|ip| ip.to_canonical())
}

/// The walk of [`client_ip`], from a peer already in canonical form.
/// Several `X-Forwarded-For` fields count as one list, in order; a hop may
/// be bracketed IPv6 with a port (`[2001:db8::1]:443`). When every hop is
/// trusted, the left-most one is the client.
fn walk(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let mut ip = peer;
    if trusted.is_empty() || !trusted.iter().any(|n| n.contains(&ip)) {
        return Some(ip);
    }
    // Hops are appended left to right; walk from the nearest.
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(value) = value.to_str() else {
            return Some(ip);
        };
        for hop in value.rsplit(',') {
            let hop = hop.trim();
            let hop = hop
                .strip_prefix('[')
                .and_then(|h| h.split(']').next())
                .unwrap_or(hop);
            let Ok(addr) = hop.parse::<IpAddr>() else {
                return Some(ip);
            };
            ip = addr.to_canonical();
            if !trusted.iter().any(|n| n.contains(&ip)) {
                return Some(ip);
            }
        }
    }
    Some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn untrusted_peers_are_the_client() {
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        let h = headers(&["1.2.3.4"]);
        assert_eq!(client_ip(Some(peer), &h, &[]), Some(peer));
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(client_ip(Some(peer), &h, &trusted), Some(peer));
    }

    #[test]
    fn trusted_proxies_are_skipped_from_the_right() {
        let trusted: Vec<IpNet> = vec![
            "10.0.0.0/8".parse().unwrap(),
            "127.0.0.1/32".parse().unwrap(),
        ];
        let peer = Some("127.0.0.1".parse().unwrap());
        let h = headers(&["6.6.6.6, 198.51.100.7", "10.1.2.3"]);
        assert_eq!(
            client_ip(peer, &h, &trusted),
            Some("198.51.100.7".parse().unwrap())
        );
        let h = headers(&["[2001:db8::1]:443, 10.0.0.1"]);
        assert_eq!(
            client_ip(peer, &h, &trusted),
            Some("2001:db8::1".parse().unwrap())
        );
        // Garbage stops the walk at the last trusted hop.
        let h = headers(&["6.6.6.6, nonsense, 10.0.0.2"]);
        assert_eq!(
            client_ip(peer, &h, &trusted),
            Some("10.0.0.2".parse().unwrap())
        );
        assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted), peer);
    }

    #[test]
    fn an_ipv4_address_written_as_ipv6_is_the_same_client() {
        let v4: IpAddr = "198.51.100.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        let none = HeaderMap::new();
        assert_eq!(client_ip(Some(mapped), &none, &[]), Some(v4));
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "::ffff:198.51.100.7".parse().unwrap());
        assert_eq!(client_ip(Some(proxy), &headers, &trusted), Some(v4));
    }
}
