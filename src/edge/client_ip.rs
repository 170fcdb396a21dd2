//! Finds the real client address: proxy headers are believed only when the socket
//! peer is a trusted proxy (Traefik, cloudflared), otherwise anyone could forge them.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client's IP for the session log.
///
/// The socket peer, unless it is a trusted proxy. Then `X-Forwarded-For` is read right
/// to left: the nearest hop that is not trusted is the client (anything further left is
/// whatever the client claimed). Only when every hop is trusted (the request came
/// through our own tunnel and proxies) is `CF-Connecting-IP` believed, then the farthest
/// hop, then `X-Real-IP`: a LAN client that reaches Traefik directly cannot pass off a
/// forged `CF-Connecting-IP`. IPv4 peers seen as IPv6 (`::ffff:a.b.c.d`) are compared
/// as IPv4.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer.to_canonical();
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = forwarded_for(headers);
    if let Some(client) = hops.iter().rev().find(|ip| !is_trusted(ip)) {
        return *client;
    }
    header_ip(headers, "cf-connecting-ip")
        .or_else(|| hops.first().copied())
        .or_else(|| header_ip(headers, "x-real-ip"))
        .unwrap_or(peer)
}

fn header_ip(headers: &HeaderMap, name: &str) -> Option<IpAddr> {
    let ip: IpAddr = headers.get(name)?.to_str().ok()?.trim().parse().ok()?;
    Some(ip.to_canonical())
}

/// Every address in every `X-Forwarded-For` header, nearest last.
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect()
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
    fn cloudflare_header_is_believed_only_through_trusted_hops() {
        let trusted = nets(&["172.16.0.0/12"]);
        // cloudflared → Traefik → router: every hop is ours.
        let tunnel = headers(&[
            ("x-forwarded-for", "172.18.0.3"),
            ("cf-connecting-ip", "5.6.7.8"),
        ]);
        assert_eq!(resolve(ip("172.18.0.2"), &tunnel, &trusted), ip("5.6.7.8"));
        // A LAN client straight to Traefik, forging the Cloudflare header.
        let forged = headers(&[
            ("x-forwarded-for", "192.168.1.50"),
            ("cf-connecting-ip", "5.6.7.8"),
        ]);
        assert_eq!(
            resolve(ip("172.18.0.2"), &forged, &trusted),
            ip("192.168.1.50")
        );
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_ranges() {
        let trusted = nets(&["172.16.0.0/12"]);
        let h = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(
            resolve(ip("::ffff:172.18.0.2"), &h, &trusted),
            ip("198.51.100.7")
        );
        let none = HeaderMap::new();
        assert_eq!(
            resolve(ip("::ffff:10.1.2.3"), &none, &trusted),
            ip("10.1.2.3")
        );
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
