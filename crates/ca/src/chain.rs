//! The CA certificates as relying parties and devices fetch them: each
//! encoding made once, the chain a new certificate needs and the bundle a
//! relying party trusts while older generations are in use.

/// The CA certificates as served on `/ca/*`, encoded once at start.
#[derive(Debug)]
pub struct PublicCerts {
    pub root_der: Vec<u8>,
    pub root_pem: String,
    /// Every issuing CA generation, oldest first: (name, DER, PEM).
    pub issuing: Vec<(String, Vec<u8>, String)>,
    /// The newest issuing CA then the root: the chain of a certificate
    /// issued now, as a TLS chain file expects it.
    pub chain_pem: String,
    /// Every issuing CA (newest first) then the root: what relying parties
    /// trust while certificates of an older CA are still in use.
    pub bundle_pem: String,
}

impl PublicCerts {
    /// `issuing`: every generation's certificate, oldest first.
    pub fn new(root_der: Vec<u8>, issuing: &[Vec<u8>]) -> Self {
        let root_pem = crate::issue::to_pem("CERTIFICATE", &root_der);
        let issuing: Vec<(String, Vec<u8>, String)> = issuing
            .iter()
            .enumerate()
            .map(|(i, der)| {
                let name = crate::issue::name_of_generation(i as u32 + 1);
                (name, der.clone(), crate::issue::to_pem("CERTIFICATE", der))
            })
            .collect();
        let newest = issuing.last().map(|(_, _, pem)| pem.clone()).unwrap_or_default();
        let chain_pem = format!("{newest}{root_pem}");
        let all: String = issuing.iter().rev().map(|(_, _, pem)| pem.as_str()).collect();
        let bundle_pem = format!("{all}{root_pem}");
        Self { root_der, root_pem, issuing, chain_pem, bundle_pem }
    }

    /// The certificate of the issuing CA named `name` (DER, PEM).
    pub fn issuing_ca(&self, name: &str) -> Option<(&[u8], &str)> {
        self.issuing.iter().find(|(n, _, _)| n == name).map(|(_, der, pem)| (der.as_slice(), pem.as_str()))
    }
}
