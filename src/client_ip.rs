//! Finds the real client address: proxy headers are believed only when the socket
//! peer is a trusted proxy (Traefik, cloudflared), otherwise anyone could forge them.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client's IP for the session log.
///
/// From a trusted peer, in order: `CF-Connecting-IP` (Cloudflare sets it to the visitor),
/// then `X-Forwarded-For` read right to left skipping trusted hops (the left part is
/// whatever the client claimed), then `X-Real-IP`. Otherwise the peer itself.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    if let Some(ip) = header_ip(headers, "cf-connecting-ip") {
        return ip;
    }
    if let Some(ip) = forwarded_for(headers, &is_trusted) {
        return ip;
    }
    header_ip(headers, "x-real-ip").unwrap_or(peer)
}

fn header_ip(headers: &HeaderMap, name: &str) -> Option<IpAddr> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn forwarded_for(headers: &HeaderMap, is_trusted: &dyn Fn(&IpAddr) -> bool) -> Option<IpAddr> {
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    // The nearest untrusted hop is the client; if every hop is trusted, the farthest.
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(hops.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_cannot_forge_its_address() {
        let trusted = nets(&["172.16.0.0/12"]);
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("cf-connecting-ip", "5.6.7.8"),
        ]);
        assert_eq!(resolve(ip("203.0.113.9"), &h, &trusted), ip("203.0.113.9"));
    }

    #[test]
    fn cloudflare_header_wins_from_a_trusted_proxy() {
        let trusted = nets(&["172.16.0.0/12"]);
        let h = headers(&[
            ("x-forwarded-for", "9.9.9.9, 172.18.0.3"),
            ("cf-connecting-ip", "5.6.7.8"),
        ]);
        assert_eq!(resolve(ip("172.18.0.2"), &h, &trusted), ip("5.6.7.8"));
    }

    #[test]
    fn forwarded_for_is_read_right_to_left_past_trusted_hops() {
        let trusted = nets(&["172.16.0.0/12", "127.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 172.18.0.5")]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &trusted), ip("198.51.100.7"));
        let split = headers(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-for", "172.18.0.5"),
        ]);
        assert_eq!(
            resolve(ip("127.0.0.1"), &split, &trusted),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn real_ip_then_peer_as_last_resorts() {
        let trusted = nets(&["127.0.0.0/8"]);
        let h = headers(&[("x-real-ip", "192.0.2.44")]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &trusted), ip("192.0.2.44"));
        let junk = headers(&[("x-forwarded-for", "not-an-ip"), ("x-real-ip", "nope")]);
        assert_eq!(resolve(ip("127.0.0.1"), &junk, &trusted), ip("127.0.0.1"));
    }
}
