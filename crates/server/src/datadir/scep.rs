//! The SCEP RA's certificate and key in the data directory
//! (`ca/scep-ra.pem`, `ca/scep-ra.key.pem`): made by `init`, or by the
//! first start of a data directory from before SCEP, and re-issued at a
//! start once two thirds of its life have passed.

use anyhow::Context;
use connect_pki_ca::IssuingCa;
use connect_pki_ca::hierarchy::{HierarchyNames, renewal_due, scep_ra};
use connect_pki_ca::scep::ScepRa;
use time::OffsetDateTime;

use super::DataDir;
use super::keys::Keys;

/// The file name (without `.pem`) of the RA certificate.
const NAME: &str = "scep-ra";

impl DataDir {
    /// The SCEP RA, made or renewed if due. `None` when the CA keys are in
    /// a PKCS#11 token: the RA key must be a file key (aws-lc-rs decrypts
    /// with it), and such a data directory has no passphrase to keep one.
    pub(crate) fn scep_ra(&self, keys: &Keys, ca: &IssuingCa, now: OffsetDateTime) -> anyhow::Result<Option<ScepRa>> {
        if !matches!(keys, Keys::Files { .. }) {
            return Ok(None);
        }
        let _lock = self.lock_ca()?;
        self.finish_replacement(NAME)?;
        let file = format!("{NAME}.pem");
        let current = match self.ca(&file).exists() {
            true => Some(self.cert_der(&file)?),
            false => None,
        };
        let der = match current {
            Some(der) if !renewal_due(&der, now)? => der,
            _ => {
                let (der, key) = scep_ra(ca, now, HierarchyNames::default().service_validity)?;
                self.replace_cert_and_key(NAME, &der, &key, keys)?;
                der
            }
        };
        let key = keys.load(self, NAME)?;
        Ok(Some(ScepRa::new(&der, key).context("the SCEP RA certificate in the data directory")?))
    }
}
