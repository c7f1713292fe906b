//! The PROXY protocol (version 2) on the HTTPS listener. A proxy in front of
//! it passes TLS through as TCP, so that the client certificate reaches us;
//! the client's address then comes in a binary header before the first TLS
//! byte (HAProxy's `send-proxy-v2`), never in an `X-Forwarded-For` inside
//! TLS, which the client writes itself. Only a peer among the trusted
//! proxies is read this way; from anyone else the header is not looked for,
//! and its bytes fail the TLS handshake.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use ppp::v2::{Addresses, Command, Header, PROTOCOL_PREFIX};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Bound on the addresses and TLVs after the fixed 16 bytes: HAProxy sends
/// a few dozen bytes; nothing we read needs more.
const MAX_PAYLOAD: usize = 1024;

/// The networks whose PROXY headers are believed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Trusted(pub(crate) Vec<IpNet>);

impl Trusted {
    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }
}

fn invalid(why: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("PROXY protocol header: {why}"))
}

/// The client behind `peer`: the source a trusted proxy names in its PROXY
/// header, read off `tcp`; `peer` itself when it is not trusted, sends no
/// header, or sends a `LOCAL` one (its own health check).
pub(crate) async fn client_of(tcp: &mut TcpStream, peer: SocketAddr, trusted: &Trusted) -> std::io::Result<SocketAddr> {
    if !trusted.trusts(peer.ip()) {
        return Ok(peer);
    }
    // A TLS record starts with 0x16, a PROXY v2 header with 0x0D.
    let mut first = [0u8; 1];
    if tcp.peek(&mut first).await? == 0 || first[0] != PROTOCOL_PREFIX[0] {
        return Ok(peer);
    }
    let mut header = vec![0u8; 16];
    tcp.read_exact(&mut header).await?;
    let len = usize::from(u16::from_be_bytes([header[14], header[15]]));
    if len > MAX_PAYLOAD {
        return Err(invalid(format!("{len} bytes of addresses and TLVs")));
    }
    header.resize(16 + len, 0);
    tcp.read_exact(&mut header[16..]).await?;
    let parsed = Header::try_from(header.as_slice()).map_err(invalid)?;
    if parsed.command == Command::Local {
        return Ok(peer);
    }
    Ok(match parsed.addresses {
        Addresses::IPv4(a) => SocketAddr::from((a.source_address, a.source_port)),
        Addresses::IPv6(a) => SocketAddr::from((a.source_address, a.source_port)),
        Addresses::Unspecified | Addresses::Unix(_) => peer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppp::v2::{Builder, Protocol, Version};
    use tokio::io::AsyncWriteExt;

    async fn pair() -> (TcpStream, TcpStream, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
        let (server, peer) = listener.accept().await.expect("accept");
        (client, server, peer)
    }

    fn header(command: Command, src: &str) -> Vec<u8> {
        let src: SocketAddr = src.parse().expect("address");
        let dst: SocketAddr =
            if src.is_ipv4() { "192.0.2.250:443" } else { "[2001:db8::250]:443" }.parse().expect("addr");
        Builder::with_addresses(Version::Two | command, Protocol::Stream, (src, dst)).build().expect("header")
    }

    #[tokio::test]
    async fn a_trusted_proxy_names_the_client_and_tls_follows_untouched() {
        let trusted = Trusted(vec!["127.0.0.1/32".parse().expect("net")]);
        for (src, expected) in [("198.51.100.7:5000", "198.51.100.7"), ("[2001:db8::5]:5000", "2001:db8::5")] {
            let (mut client, mut server, peer) = pair().await;
            let mut sent = header(Command::Proxy, src);
            sent.extend_from_slice(&[0x16, 0x03, 0x01]);
            client.write_all(&sent).await.expect("write");
            let who = client_of(&mut server, peer, &trusted).await.expect("parsed");
            assert_eq!(who.ip(), expected.parse::<IpAddr>().expect("ip"));
            let mut rest = [0u8; 3];
            server.read_exact(&mut rest).await.expect("the TLS bytes are left");
            assert_eq!(rest, [0x16, 0x03, 0x01]);
        }
        // A health check (LOCAL) and plain TLS are the proxy itself.
        let (mut client, mut server, peer) = pair().await;
        client.write_all(&header(Command::Local, "198.51.100.7:1")).await.expect("write");
        assert_eq!(client_of(&mut server, peer, &trusted).await.expect("local"), peer);
        let (mut client, mut server, peer) = pair().await;
        client.write_all(&[0x16, 0x03, 0x01, 0x00]).await.expect("write");
        assert_eq!(client_of(&mut server, peer, &trusted).await.expect("tls"), peer);
    }

    #[tokio::test]
    async fn nobody_else_is_read_and_garbage_is_refused() {
        let (mut client, mut server, peer) = pair().await;
        client.write_all(&header(Command::Proxy, "198.51.100.7:5000")).await.expect("write");
        let stranger = Trusted(vec!["10.0.0.0/8".parse().expect("net")]);
        assert_eq!(client_of(&mut server, peer, &stranger).await.expect("not read"), peer);

        let trusted = Trusted(vec!["127.0.0.1/32".parse().expect("net")]);
        let (mut client, mut server, peer) = pair().await;
        let mut long = header(Command::Proxy, "198.51.100.7:5000");
        long[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        client.write_all(&long).await.expect("write");
        assert!(client_of(&mut server, peer, &trusted).await.is_err(), "64 KiB of TLVs");
        let (mut client, mut server, peer) = pair().await;
        let mut bad = header(Command::Proxy, "198.51.100.7:5000");
        bad[12] = 0x2f; // version 2, command 15
        client.write_all(&bad).await.expect("write");
        assert!(client_of(&mut server, peer, &trusted).await.is_err(), "unknown command");
    }
}
