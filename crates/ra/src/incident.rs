//! The incident record of a certificate (a lost device, a revocation): the
//! timeline a clerk attaches to the city's personal-information incident
//! report — reported (by whom, how), held, revoked, notifications sent and
//! delivered; for each relying party the last time it was told `good`, the
//! first time it was told `revoked`, the first download of a CRL listing
//! it, and until when it could still have accepted the certificate; the last use of the certificate on our listener and every handshake
//! refused after — with the proof of the revocation (a fresh OCSP response,
//! the CRL that lists it), signed by the OCSP signer (`ca::receipt`).

use base64::Engine;
use connect_pki_domain::clock::rfc3339;
use connect_pki_domain::lifetime::{Held, Validity, exposed_until};
use connect_pki_domain::{CertStatus, Reason, Serial};
use connect_pki_store::{AuditRecord, CertificateSightings, EscalationRecord, NotificationRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::Ra;
use crate::error::ServiceError;
use crate::requester::Requester;

/// What the record says, in order. `event` is a stable code; the console
/// renders it in Japanese.
#[derive(Debug, Clone)]
pub struct Event {
    pub at: OffsetDateTime,
    pub event: String,
    /// Who did it or who was told (an actor, a relying party).
    pub who: Option<String>,
    pub detail: Value,
}

/// A record, and the JWS over its JSON.
#[derive(Debug, Clone)]
pub struct Incident {
    pub record: IncidentRecord,
    pub events: Vec<Event>,
    /// The compact JWS whose payload is `record` as JSON (`ca::receipt`).
    pub signed: String,
}

/// The signed incident record, version 2 (`ca::record::RECORD_VERSION`; 1
/// carried the CRL's number but not the CRL): the payload of the JWS, read by
/// `connect-pki receipt verify` and attached to the city's report. Times are
/// RFC 3339 UTC. Fields are in the order they are written (alphabetical),
/// so that the signed bytes do not depend on how the record is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    pub certificate: RecordedCertificate,
    pub generated_at: String,
    pub proof: Proof,
    pub(crate) timeline: Vec<TimelineEntry>,
    /// Always `ca::record::RECORD_TYPE`.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// `ca::record::RECORD_VERSION`.
    pub version: u32,
}

/// The certificate the record is about, as it stood when the record was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedCertificate {
    pub device_id: i64,
    pub facility_id: i64,
    pub facility_name: String,
    pub issuing_ca: String,
    pub not_after: String,
    pub(crate) not_before: String,
    pub reason: Option<Reason>,
    pub revoked_at: Option<String>,
    /// Lowercase hex.
    pub serial: String,
    pub status: CertStatus,
    pub user_id: i64,
}

/// One event of the timeline; `event` is a stable code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TimelineEntry {
    pub at: String,
    pub detail: Value,
    pub event: String,
    pub who: Option<String>,
}

/// What the responder said when the record was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proof {
    /// The CRL being served, if there is one.
    pub crl: Option<CrlProof>,
    /// A fresh OCSP response about the certificate, DER in standard base64.
    pub ocsp_response: String,
}

/// The CRL being served, and whether it lists the certificate; the CRL
/// itself travels along, so that each of these claims can be checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrlProof {
    pub crl_number: i64,
    /// The CRL, DER in standard base64.
    pub der: String,
    pub issuing_ca: String,
    pub lists_certificate: bool,
    pub(crate) this_update: String,
}

fn at(t: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn audit_events(records: &[AuditRecord]) -> impl Iterator<Item = Event> + '_ {
    records.iter().map(|r| Event {
        at: r.at,
        event: r.entry.action.to_string(),
        who: Some(r.entry.actor.clone()),
        detail: json!({"target": r.entry.target, "outcome": r.entry.outcome, "detail": r.entry.detail}),
    })
}

fn escalation_events(e: &EscalationRecord, notes: &[NotificationRecord]) -> Vec<Event> {
    let mut out = vec![Event {
        at: e.created_at,
        event: "reported".into(),
        who: e.reported_by.map(|u| format!("user:{u}")),
        detail: json!({"escalation": e.id, "channel": e.channel, "queue": e.queue}),
    }];
    for n in notes {
        out.push(Event {
            at: n.created_at,
            event: "notification.queued".into(),
            who: None,
            detail: json!({"escalation": e.id, "event": n.event, "channel": n.channel}),
        });
        if let Some(t) = n.delivered_at {
            out.push(Event {
                at: t,
                event: "notification.delivered".into(),
                who: None,
                detail: json!({"escalation": e.id, "event": n.event, "channel": n.channel, "attempts": n.attempts}),
            });
        }
    }
    out
}

fn sighting_events(s: &CertificateSightings, revoked_at: Option<OffsetDateTime>) -> Vec<Event> {
    let mut out = Vec::new();
    for o in &s.ocsp {
        let who = Some(o.party.clone());
        if let Some(t) = o.last_good_at {
            out.push(Event { at: at(t), event: "ocsp.last_good".into(), who: who.clone(), detail: json!({}) });
        }
        if let Some(t) = o.first_revoked_at {
            out.push(Event { at: at(t), event: "ocsp.first_revoked".into(), who, detail: json!({}) });
        }
    }
    // The first download of a CRL listing it, per relying party.
    let mut seen = std::collections::BTreeSet::new();
    for c in s.crl.iter().filter(|_| revoked_at.is_some()) {
        if seen.insert(c.party.clone()) {
            out.push(Event {
                at: at(c.first_at),
                event: "crl.listed".into(),
                who: Some(c.party.clone()),
                detail: json!({"crl_number": c.crl_number, "this_update": rfc3339(at(c.this_update))}),
            });
        }
    }
    if let Some(h) = &s.handshakes {
        if let Some(t) = h.last_ok_at {
            let detail = json!({"from": h.last_ok_from, "handshakes": h.ok});
            out.push(Event { at: at(t), event: "handshake.last_ok".into(), who: None, detail });
        }
        if let Some(t) = h.first_refused_at {
            let detail = json!({"refused": h.refused});
            out.push(Event { at: at(t), event: "handshake.first_refused".into(), who: None, detail });
        }
        if let (Some(t), true) = (h.last_refused_at, h.refused > 1) {
            let detail = json!({"refused": h.refused});
            out.push(Event { at: at(t), event: "handshake.last_refused".into(), who: None, detail });
        }
    }
    out
}

/// For each relying party on record, until when it could still have
/// accepted the certificate after its revocation (issue 26, item 5): what
/// it held then (its last `good`, the newest CRL it had) stays usable until
/// its nextUpdate, never past the certificate's end nor past the moment the
/// party learnt of the revocation.
fn exposure_events(
    s: &CertificateSightings,
    revoked_at: OffsetDateTime,
    not_after: OffsetDateTime,
    v: Validity,
) -> Vec<Event> {
    let parties: std::collections::BTreeSet<&str> = s
        .ocsp
        .iter()
        .map(|o| o.party.as_str())
        .chain(s.held_crl.iter().map(|c| c.party.as_str()))
        .chain(s.crl.iter().map(|c| c.party.as_str()))
        .collect();
    let mut out = Vec::new();
    for party in parties {
        let ocsp = s.ocsp.iter().find(|o| o.party == party);
        let told = ocsp.and_then(|o| o.first_revoked_at).map(at);
        let listed = s.crl.iter().filter(|c| c.party == party).map(|c| at(c.first_at)).min();
        let held = Held {
            ocsp_good_at: ocsp.and_then(|o| o.last_good_at).map(at),
            crl_this_update: s.held_crl.iter().find(|c| c.party == party).map(|c| at(c.this_update)),
            learnt_at: told.into_iter().chain(listed).min(),
        };
        let Some(until) = exposed_until(revoked_at, not_after, held, v) else { continue };
        let detail = json!({
            "seconds": (until - revoked_at).whole_seconds(),
            "ocsp_good_at": held.ocsp_good_at.map(rfc3339),
            "crl_this_update": held.crl_this_update.map(rfc3339),
            "learnt_at": held.learnt_at.map(rfc3339),
        });
        out.push(Event { at: until, event: "exposure.until".into(), who: Some(party.to_string()), detail });
    }
    out
}

/// How many times a record is built before giving up on one that passes its own check.
const ATTEMPTS: usize = 3;

/// The record of the certificate `serial`, signed; for whoever manages its
/// facility's certificates.
pub async fn record(ra: &Ra, caller: &Requester, serial: &Serial) -> Result<Incident, ServiceError> {
    let mut disagreement = None;
    for _ in 0..ATTEMPTS {
        let (record, events, ca, generation) = build(ra, caller, serial).await?;
        let payload = serde_json::to_vec(&record).map_err(anyhow::Error::from)?;
        let signer = ra
            .ocsp
            .signer(generation)
            .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("no OCSP signer for {}", ca.name())))?;
        let signed = signer.receipt(ca.cert_der(), &payload).map_err(anyhow::Error::from)?;
        // The certificate is read from the database and the proofs from this
        // instance's index and CRL: a change of status in between gives a
        // record its own proofs contradict. None is handed out that
        // `receipt verify` would refuse; a race is built again.
        match connect_pki_ca::record::check(&signed, ca.root_der()) {
            Ok(_) => return Ok(Incident { record, events, signed }),
            Err(e) => disagreement = Some(e),
        }
    }
    let why = disagreement.map_or_else(String::new, |e| e.to_string());
    Err(ServiceError::Internal(anyhow::anyhow!(
        "no incident record of {} passed its own check: {why}",
        serial.to_hex()
    )))
}

/// The record, unsigned, with its events, the issuing CA and its generation.
/// Everything on record about the certificate of `device` (`hex`), in order.
async fn events_of(
    ra: &Ra,
    certificate: &connect_pki_store::CertificateRecord,
    hex: &str,
    sightings: &CertificateSightings,
) -> Result<Vec<Event>, ServiceError> {
    let (device, revoked_at) = (certificate.device, certificate.revoked_at);
    let escalations = ra.store.escalations_of_device(device).await?;
    let mut targets = vec![format!("certificate:{hex}"), format!("device:{device}")];
    targets.extend(escalations.iter().map(|e| format!("escalation:{}", e.id)));
    crate::audit::flushed(ra).await;
    let audit = ra.store.audit_of(&targets).await?;
    let mut events: Vec<Event> = audit_events(&audit).collect();
    for e in &escalations {
        events.extend(escalation_events(e, &ra.store.notifications(e.id).await?));
    }
    events.extend(sighting_events(sightings, revoked_at));
    if let Some(revoked_at) = revoked_at {
        let validity = Validity { ocsp: ra.ocsp.validity(), crl: ra.revocations.crl_validity() };
        events.extend(exposure_events(sightings, revoked_at, certificate.not_after, validity));
    }
    events.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.event.cmp(&b.event)));
    Ok(events)
}

async fn build(
    ra: &Ra,
    caller: &Requester,
    serial: &Serial,
) -> Result<(IncidentRecord, Vec<Event>, std::sync::Arc<connect_pki_ca::IssuingCa>, u32), ServiceError> {
    let (holder, sightings) = crate::sightings::certificate_use(ra, caller, serial).await?;
    let certificate = &holder.certificate;
    let hex = serial.to_hex();
    let events = events_of(ra, certificate, &hex, &sightings).await?;

    // The proof: what the responder says now, and the CRL being served,
    // once this instance has applied every change made before the
    // certificate was read (another instance may have made it).
    ra.revocations.sync().await.map_err(|e| ServiceError::Internal(e.into()))?;
    let entry = ra.revocations.index.get(serial.as_bytes());
    let generation = u32::from(entry.map_or(1, |e| e.ca));
    let ca = ra
        .revocations
        .cas()
        .iter()
        .find(|c| c.generation() == generation)
        .cloned()
        .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("no issuing CA of generation {generation}")))?;
    let request = connect_pki_ca::ocsp::request(ca.cert_der(), serial.as_bytes()).map_err(anyhow::Error::from)?;
    let (ocsp, _) = ra.ocsp.answer(&ra.revocations, &request, None);
    let crl = ra.revocations.crl_of(&ca.name());
    let listed = crl.as_ref().is_some_and(|c| {
        connect_pki_ca::crl::read_published(&c.der, ca.cert_der())
            .is_ok_and(|p| p.entries.iter().any(|e| connect_pki_ca::record::same_serial(&e.serial, serial.as_bytes())))
    });
    let b64 = base64::engine::general_purpose::STANDARD;
    let now = ra.clock.now();
    let record = IncidentRecord {
        kind: connect_pki_ca::record::RECORD_TYPE.to_string(),
        version: connect_pki_ca::record::RECORD_VERSION,
        generated_at: rfc3339(now),
        certificate: RecordedCertificate {
            serial: hex,
            issuing_ca: ca.name(),
            status: certificate.status,
            reason: certificate.reason,
            revoked_at: certificate.revoked_at.map(rfc3339),
            not_before: rfc3339(certificate.not_before),
            not_after: rfc3339(certificate.not_after),
            device_id: certificate.device.0,
            user_id: holder.user.id.0,
            facility_id: holder.facility.id.0,
            facility_name: holder.facility.name,
        },
        timeline: events
            .iter()
            .map(|e| TimelineEntry {
                at: rfc3339(e.at),
                event: e.event.clone(),
                who: e.who.clone(),
                detail: e.detail.clone(),
            })
            .collect(),
        proof: Proof {
            ocsp_response: b64.encode(&ocsp),
            crl: crl.as_ref().map(|c| CrlProof {
                issuing_ca: c.ca.clone(),
                crl_number: c.number,
                der: b64.encode(&c.der),
                this_update: rfc3339(c.this_update),
                lists_certificate: listed,
            }),
        },
    };
    Ok((record, events, ca, generation))
}
