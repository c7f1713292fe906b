//! Canonical OCSP answers (issue 24): the CertID we sign is one we build —
//! SHA-1 or SHA-256 with NULL or absent parameters, our own issuer hashes,
//! the serial — and the only byte of a request echoed is the nonce, 1 to 32
//! octets (RFC 8954). A request shaped otherwise is `malformedRequest`, and
//! nothing a requester chose reaches an answer the cache serves to others.

use connect_pki_e2e::client::Req;
use connect_pki_e2e::{Backend, TestApp, both_backends, spawn_app};
use der::asn1::{Any, OctetString};
use der::{Decode, Encode};
use x509_cert::ext::Extension;
use x509_ocsp::{BasicOcspResponse, OcspRequest, OcspResponse, OcspResponseStatus};

const NONCE: &str = "1.3.6.1.5.5.7.48.1.2";

/// The request `openssl ocsp` sends about the admin's certificate, changed by `edit`.
fn edited(app: &TestApp, edit: impl FnOnce(&mut OcspRequest)) -> Vec<u8> {
    let der = connect_pki_e2e::ocsp::request(&app.ca.issuing_der, &app.admin.cert_der);
    let mut req = OcspRequest::from_der(&der).expect("a request");
    edit(&mut req);
    req.to_der().expect("DER")
}

fn with_nonce(req: &mut OcspRequest, value: Vec<u8>, critical: bool) {
    let ext = Extension {
        extn_id: NONCE.parse().expect("OID"),
        critical,
        extn_value: OctetString::new(value).expect("octets"),
    };
    req.tbs_request.request_extensions = Some(vec![ext]);
}

/// The nonce as RFC 8954 carries it: an OCTET STRING of `n` octets.
fn nonce(n: usize) -> Vec<u8> {
    OctetString::new(vec![7u8; n]).expect("octets").to_der().expect("DER")
}

async fn ask(app: &TestApp, request: Vec<u8>) -> (OcspResponseStatus, Option<BasicOcspResponse>, usize) {
    let reply = app.public(Req::new("POST", "/ocsp").body("application/ocsp-request", request)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let r = OcspResponse::from_der(&reply.body).expect("an OCSP response");
    let basic = r.response_bytes.map(|b| BasicOcspResponse::from_der(b.response.as_bytes()).expect("basic"));
    (r.response_status, basic, reply.body.len())
}

async fn ocsp_answers_sign_only_what_we_built(backend: Backend) {
    let app = spawn_app(backend).await;
    let junk = Any::new(der::Tag::OctetString, vec![0x41u8; 12_000]).expect("junk");
    let poisoned = edited(&app, |r| r.tbs_request.request_list[0].req_cert.hash_algorithm.parameters = Some(junk));
    let (status, _, _) = ask(&app, poisoned).await;
    assert_eq!(status, OcspResponseStatus::MalformedRequest, "junk hash parameters were answered");

    // Absent parameters are answered in that form, NULL ones in theirs, each
    // from its own cache entry: a client comparing CertIDs finds its own.
    for null in [false, true, false] {
        let request = edited(&app, |r| {
            let alg = &mut r.tbs_request.request_list[0].req_cert.hash_algorithm;
            alg.parameters = null.then(|| der::asn1::Null.into());
        });
        let asked = OcspRequest::from_der(&request).expect("request").tbs_request.request_list[0].req_cert.clone();
        let (status, basic, size) = ask(&app, request).await;
        assert_eq!(status, OcspResponseStatus::Successful);
        let answered = &basic.expect("basic").tbs_response_data.responses[0].cert_id;
        assert_eq!(answered, &asked, "NULL parameters {null}");
        assert!(size < 2_000, "an answer of {size} bytes");
    }

    for (value, critical, ok) in [
        (nonce(32), true, true),
        (nonce(1), false, true),
        (nonce(33), false, false),
        (nonce(0), false, false),
        (vec![7u8; 16], false, false),
    ] {
        let request = edited(&app, |r| with_nonce(r, value.clone(), critical));
        let (status, basic, _) = ask(&app, request).await;
        if !ok {
            assert_eq!(status, OcspResponseStatus::MalformedRequest, "nonce {value:02x?}");
            continue;
        }
        assert_eq!(status, OcspResponseStatus::Successful, "nonce {value:02x?}");
        let exts = basic.expect("basic").tbs_response_data.response_extensions.expect("the nonce echoed");
        assert_eq!(exts.len(), 1);
        assert_eq!((exts[0].extn_value.as_bytes(), exts[0].critical), (value.as_slice(), false));
    }
}
both_backends!(ocsp_answers_sign_only_what_we_built);
