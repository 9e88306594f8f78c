//! DNS protocol numbers (record types, class, rcodes, option codes, limits), shared by the
//! zone compiler and the server.

pub(crate) const TYPE_A: u16 = 1;
pub(crate) const TYPE_NS: u16 = 2;
pub(crate) const TYPE_CNAME: u16 = 5;
pub(crate) const TYPE_SOA: u16 = 6;
pub(crate) const TYPE_HINFO: u16 = 13;
pub(crate) const TYPE_AAAA: u16 = 28;
pub(crate) const TYPE_SRV: u16 = 33;
pub(crate) const TYPE_NAPTR: u16 = 35;
pub(crate) const TYPE_OPT: u16 = 41;
pub(crate) const TYPE_DS: u16 = 43;
pub(crate) const TYPE_RRSIG: u16 = 46;
pub(crate) const TYPE_NSEC: u16 = 47;
pub(crate) const TYPE_DNSKEY: u16 = 48;
pub(crate) const TYPE_CDS: u16 = 59;
pub(crate) const TYPE_CDNSKEY: u16 = 60;
/// RFC 9824: the NSEC of a name that does not exist says it holds this meta-type.
pub(crate) const TYPE_NXNAME: u16 = 128;
pub(crate) const TYPE_IXFR: u16 = 251;
pub(crate) const TYPE_AXFR: u16 = 252;
pub(crate) const TYPE_ANY: u16 = 255;
pub(crate) const CLASS_IN: u16 = 1;
pub(crate) const OPT_ECS: u16 = 8;
pub(crate) const OPT_NSID: u16 = 3;

pub(crate) const RCODE_NOERROR: u8 = 0;
pub(crate) const RCODE_FORMERR: u8 = 1;
pub(crate) const RCODE_SERVFAIL: u8 = 2;
pub(crate) const RCODE_NXDOMAIN: u8 = 3;
pub(crate) const RCODE_NOTIMP: u8 = 4;
pub(crate) const RCODE_REFUSED: u8 = 5;
/// Extended rcode 16 (BADVERS): 0 in the header, 1 in the OPT's upper bits.
pub(crate) const RCODE_BADVERS: u16 = 16;

/// Longest name on the wire (RFC 1035).
pub(crate) const MAX_NAME: usize = 255;
