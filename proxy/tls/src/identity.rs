//! The identity a verified client certificate carries: its subject alternative names (URI, DNS,
//! e-mail), or its subject's common names when it has none (as RFC 6125 has it: a certificate with
//! SANs is not also named by its CN, so a CN that looks like a SPIFFE ID cannot pose as one), which
//! `auth.identities` and `admin.client_identities` name.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The names of one client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIdentity {
    /// URI, DNS and e-mail subject alternative names; the subject's common names only without them.
    pub names: Vec<String>,
    /// The subject, as text (for logs).
    pub subject: String,
}

impl ClientIdentity {
    /// The identity of the leaf certificate `der`; `None` when it does not parse (rustls verified it,
    /// so that means a certificate x509-parser cannot read).
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::URI(s) | GeneralName::DNSName(s) | GeneralName::RFC822Name(s) => {
                        names.push((*s).to_string())
                    }
                    _ => {}
                }
            }
        }
        if names.is_empty() {
            for cn in cert.subject().iter_common_name() {
                if let Ok(s) = cn.as_str() {
                    names.push(s.to_string());
                }
            }
        }
        Some(Self {
            names,
            subject: cert.subject().to_string(),
        })
    }

    /// Whether one of the names is exactly `name`.
    pub fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }
}
