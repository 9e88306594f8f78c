//! What the TLS check reads of a certificate it was shown, whatever its verification said:
//! the leaf's notAfter. The one module that speaks x509-parser.

/// The notAfter of a DER certificate, in Unix seconds; `None` if it cannot be parsed.
pub(crate) fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}
