//! What the TLS check reads of a certificate it was shown, whatever its verification said:
//! the leaf's notAfter, and whether it names the SIP domain as RFC 5922 asks. The one module
//! that speaks x509-parser.

/// The notAfter of a DER certificate, in Unix seconds; `None` if it cannot be parsed.
pub(crate) fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Whether the certificate names `domain` as RFC 5922 (section 7.2) asks of a SIP server: a
/// subjectAltName `sip:` URI of the domain or a DNS name equal to it (case aside), never
/// through a wildcard. webpki, which checked the chain, also accepts `*.domain` entries.
pub(crate) fn names_sip_domain(der: &[u8], domain: &str) -> bool {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    let domain = domain.trim_end_matches('.');
    san.value.general_names.iter().any(|n| match n {
        GeneralName::DNSName(d) => d.trim_end_matches('.').eq_ignore_ascii_case(domain),
        GeneralName::URI(u) => u
            .strip_prefix("sip:")
            .is_some_and(|h| h.trim_end_matches('.').eq_ignore_ascii_case(domain)),
        _ => false,
    })
}
