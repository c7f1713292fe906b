//! Who relies on us and what a certificate was used and checked for: the
//! names relying parties go by, the write of what the responder counted
//! (`connect_pki_responder::sightings`) and what is read back.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context;
use connect_pki_domain::{Action, Serial, authorize};
use connect_pki_store::{CertificateSightings, Identity, RelyingParty};
use ipnet::IpNet;

use crate::Ra;
use crate::error::ServiceError;
use crate::requester::Requester;

/// Writes this instance's counts first, so that what is read includes the
/// questions answered a moment ago.
async fn flushed(ra: &Ra) {
    if let Err(e) = flush(ra).await {
        tracing::warn!(error = %e, "the relying parties' record could not be written before reading it");
    }
}

/// Every relying party seen: 行政管理課 only (it runs the service).
pub async fn relying_parties(ra: &Ra, caller: &Requester) -> Result<Vec<RelyingParty>, ServiceError> {
    authorize(&caller.actor, Action::ListAllCertificates)?;
    flushed(ra).await;
    Ok(ra.store.relying_parties().await?)
}

/// A certificate and its holder, with its use on our listener, every
/// relying party's OCSP questions about it and, once it is revoked, the CRL
/// downloads that list it: for whoever manages its facility's certificates.
pub async fn certificate_use(
    ra: &Ra,
    caller: &Requester,
    serial: &Serial,
) -> Result<(Identity, CertificateSightings), ServiceError> {
    let holder = crate::certificates::holder(ra, caller, serial).await?;
    flushed(ra).await;
    let sightings = ra.store.certificate_sightings(&serial.to_hex(), holder.certificate.revoked_at).await?;
    Ok((holder, sightings))
}

/// How relying parties are recorded.
#[derive(Debug, Clone)]
pub struct RecordSettings {
    /// Count OCSP answers, CRL downloads and handshakes at all.
    pub enabled: bool,
    /// How often the counts are written.
    pub flush_every: Duration,
    /// How long a relying party's record is kept after its last question.
    pub retention: time::Duration,
    /// Names of networks (`[relying_parties]` in config.toml), the most
    /// specific first; any other client goes by its network (/24, /64).
    pub names: Names,
    /// Rows the record keeps of clients no name covers: past it, the ones
    /// asked least recently go first (configured relying parties are never
    /// trimmed). Anyone on the network can be such a client.
    pub unnamed_rows: u64,
}

impl Default for RecordSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            flush_every: Duration::from_secs(5),
            retention: time::Duration::days(400),
            names: Names::default(),
            unnamed_rows: 100_000,
        }
    }
}

/// Network → relying-party name.
#[derive(Debug, Clone, Default)]
pub struct Names(Vec<(IpNet, String)>);

impl Names {
    /// From `name = ["10.1.0.0/16", "192.0.2.7"]` pairs.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a Vec<String>)>) -> anyhow::Result<Self> {
        let mut named = Vec::new();
        for (name, networks) in pairs {
            anyhow::ensure!(!name.trim().is_empty(), "relying_parties: a name is empty");
            let name = name.trim().to_string();
            // Clients no name covers go by their network, written the same way.
            anyhow::ensure!(
                name.parse::<IpNet>().is_err() && name.parse::<IpAddr>().is_err(),
                "relying_parties: {name:?} is an address; give the relying party a name"
            );
            for n in networks {
                let net = n
                    .parse::<IpNet>()
                    .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                    .with_context(|| format!("relying_parties.{name}: {n:?} is not an address or network"))?;
                named.push((net.trunc(), name.clone()));
            }
        }
        // The narrowest network that holds an address names it.
        named.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        Ok(Self(named))
    }

    /// The relying party at `addr`: the name of the narrowest network
    /// that holds it, or else its /24 (IPv4) or /64 (IPv6), so that one
    /// client with many addresses is one relying party, not thousands.
    pub(crate) fn of(&self, addr: IpAddr) -> String {
        let addr = addr.to_canonical();
        match self.0.iter().find(|(net, _)| net.contains(&addr)) {
            Some((_, name)) => name.clone(),
            None => unnamed(addr),
        }
    }

    /// Whether a name covers `addr` (a relying party the city set up).
    pub fn names(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.0.iter().any(|(net, _)| net.contains(&addr))
    }
}

/// The name of a client no configured name covers: its network.
fn unnamed(addr: IpAddr) -> String {
    let prefix = if addr.is_ipv4() { 24 } else { 64 };
    IpNet::new(addr, prefix).map_or_else(|_| addr.to_string(), |n| n.trunc().to_string())
}

/// Writes this instance's counts under the relying parties' names.
pub async fn flush(ra: &Ra) -> Result<usize, connect_pki_store::StoreError> {
    let names = &ra.settings.relying.names;
    ra.ocsp.sightings.flush(&ra.store, &|addr| names.of(addr)).await
}

/// Keeps the rows of unnamed clients within [`RecordSettings::unnamed_rows`];
/// returns how many went.
pub async fn trim(ra: &Ra) -> Result<u64, connect_pki_store::StoreError> {
    ra.store.trim_unnamed_sightings(ra.settings.relying.unnamed_rows).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_narrowest_named_network_wins_and_others_go_by_address() {
        let pairs = [
            ("ケース記録".to_string(), vec!["10.0.0.0/8".to_string()]),
            ("nginx".to_string(), vec!["10.1.2.3".to_string(), "2001:db8::/32".to_string()]),
        ];
        let names = Names::parse(pairs.iter().map(|(n, v)| (n, v))).expect("valid");
        assert_eq!(&*names.of("10.1.2.3".parse().expect("ip")), "nginx");
        assert_eq!(&*names.of("10.9.9.9".parse().expect("ip")), "ケース記録");
        assert_eq!(&*names.of("::ffff:10.1.2.3".parse().expect("ip")), "nginx");
        assert_eq!(&*names.of("2001:db8::1".parse().expect("ip")), "nginx");
        assert_eq!(&*names.of("192.0.2.1".parse().expect("ip")), "192.0.2.0/24");
        assert_eq!(&*names.of("192.0.2.254".parse().expect("ip")), "192.0.2.0/24");
        assert_eq!(&*names.of("2001:db9:1:2:3::4".parse().expect("ip")), "2001:db9:1:2::/64");
        assert!(names.names("10.9.9.9".parse().expect("ip")) && !names.names("192.0.2.1".parse().expect("ip")));
        let bad = [("x".to_string(), vec!["not-a-net".to_string()])];
        assert!(Names::parse(bad.iter().map(|(n, v)| (n, v))).is_err());
        // A name that is itself a network would be mistaken for an unnamed one.
        let bad = [("192.0.2.0/24".to_string(), vec!["192.0.2.0/24".to_string()])];
        assert!(Names::parse(bad.iter().map(|(n, v)| (n, v))).is_err());
    }
}
