//! The identity a verified client certificate carries: its subject alternative names (URI, DNS,
//! e-mail, IP address), or its subject's common names when it has none (as RFC 6125 has it: a
//! certificate with SANs of any kind, IP addresses included, is not also named by its CN, so a CN that
//! looks like a SPIFFE ID cannot pose as one), which `auth.identities` and `admin.client_identities`
//! name.
//!
//! Each SAN is named by its text, with no prefix: a URI, DNS name or e-mail address as written, an IP
//! address in its usual form (`10.0.0.1`, `2001:db8::1`, IPv6 compressed as Rust's `Ipv6Addr`
//! displays it).

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The names of one client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIdentity {
    /// URI, DNS, e-mail and IP address subject alternative names; the subject's common names only when
    /// the certificate has no SAN at all.
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
        let mut has_san = false;
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                has_san = true;
                match name {
                    GeneralName::URI(s) | GeneralName::DNSName(s) | GeneralName::RFC822Name(s) => {
                        names.push((*s).to_string())
                    }
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_address(bytes) {
                            names.push(ip.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        // Any SAN, of whatever kind, means the common name is not a name (RFC 6125 6.4.4): a
        // certificate with only IP (or other) SANs must not be named by a CN it also carries.
        if !has_san {
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

/// An IP address SAN: 4 bytes (IPv4) or 16 (IPv6); anything else (an address with a mask belongs
/// in name constraints, not in a leaf) is no name.
fn ip_address(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    use super::*;
    use crate::test_pki::Ca;

    fn identity(names: &[&str], cn: &str) -> ClientIdentity {
        let leaf = Ca::new("identity test CA").leaf(names, &[], cn);
        let der = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
        ClientIdentity::from_der(&der).unwrap()
    }

    #[test]
    fn a_certificate_with_only_ip_sans_is_named_by_its_addresses_not_its_cn() {
        let id = identity(&["10.0.0.1", "2001:db8::1"], "spiffe://test/admin");
        assert_eq!(id.names, ["10.0.0.1", "2001:db8::1"], "{id:?}");
        assert!(
            !id.has("spiffe://test/admin"),
            "a CN must not name a certificate that has SANs: {id:?}"
        );
    }

    #[test]
    fn ip_and_dns_sans_are_both_names() {
        let id = identity(&["client.test", "127.0.0.1"], "cn");
        assert_eq!(id.names, ["client.test", "127.0.0.1"], "{id:?}");
    }
}
