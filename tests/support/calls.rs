//! Calls on a [`TestApp`]: JSON on either listener, raw requests, and the
//! checks the end-to-end suite made with curl and `openssl ocsp`.

use serde_json::Value;

use crate::app::TestApp;
use crate::client::{self, Identity, Reply, Req};

impl TestApp {
    /// A request on the mTLS listener as `who` (no certificate for `None`).
    /// `Err` when the connection fails, as in a refused handshake.
    pub async fn try_mtls(&self, who: Option<&Identity>, req: Req) -> Result<Reply, String> {
        client::https(self.api, client::tls_config(&self.ca.root_der, who), req).await
    }

    /// A request on the plain listener (CA certificates, CRL, OCSP).
    pub async fn public(&self, req: Req) -> Reply {
        let what = format!("{} {}", req.method, req.path);
        client::http(self.public, req).await.unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// A request on the HTTPS listener without a client certificate: the
    /// pages and public API calls that carry secrets.
    pub async fn open(&self, req: Req) -> Reply {
        let what = format!("{} {}", req.method, req.path);
        self.try_mtls(None, req).await.unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// A JSON call on the mTLS API as `who`. Returns status and body.
    pub async fn api(&self, method: &str, path: &str, who: Option<&Identity>, body: Option<&Value>) -> (u16, Value) {
        let mut req = Req::new(method, path);
        if let Some(b) = body {
            req = req.json(b);
        } else if method != "GET" {
            // Every state change on the mTLS API is JSON, even without a body.
            req = req.body("application/json", Vec::new());
        }
        let reply = self.try_mtls(who, req).await.unwrap_or_else(|e| panic!("{method} {path} failed: {e}"));
        (reply.status, reply.json())
    }

    /// A JSON call to a public route (HTTPS, no client certificate).
    pub async fn public_api(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut req = Req::new(method, path);
        if let Some(b) = body {
            req = req.json(b);
        }
        let reply = self.open(req).await;
        (reply.status, reply.json())
    }

    /// A JSON call to a public route from the local address `from`.
    pub async fn public_api_from(
        &self,
        from: std::net::IpAddr,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = Req::new(method, path);
        if let Some(b) = body {
            req = req.json(b);
        }
        let tls = client::tls_config(&self.ca.root_der, None);
        let reply =
            client::https_from(self.api, from, tls, req).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        (reply.status, reply.json())
    }

    /// Whether a handshake with this certificate gets a 200 from whoami.
    pub async fn handshake_ok(&self, who: &Identity) -> bool {
        self.try_mtls(Some(who), Req::new("GET", "/api/v1/whoami")).await.is_ok_and(|r| r.status == 200)
    }

    /// `whoami` as `who`, which must succeed.
    pub async fn whoami(&self, who: &Identity) -> Value {
        let (status, me) = self.api("GET", "/api/v1/whoami", Some(who), None).await;
        assert_eq!(status, 200, "{me}");
        me
    }

    /// The status our OCSP responder gives the certificate, written as
    /// `openssl ocsp` prints it ("good", "revoked keyCompromise", …), after
    /// checking the response's signature by our OCSP signer.
    pub async fn ocsp_status(&self, who: &Identity) -> String {
        let request = crate::ocsp::request(&self.ca.issuing_der, &who.cert_der);
        let reply = self.public(Req::new("POST", "/ocsp").body("application/ocsp-request", request)).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        crate::ocsp::status(&reply.body, &self.ca.ocsp_der)
    }
}
