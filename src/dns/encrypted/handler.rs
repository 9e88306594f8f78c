//! The answer path of the encrypted transports, and hickory-server's `RequestHandler` for DNS
//! over TLS: the request's raw bytes go through the same [`respond`] as UDP and TCP (same snapshot, ECS handling,
//! metrics and query log), and the reply is decoded and handed back to hickory as a
//! `MessageResponse` with its EDNS options kept and block padding added (RFC 7830, RFC 8467).

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use crate::dns::answer::{Proto, respond};
use crate::dns::querylog::QueryLog;
use crate::dns::snapshot::Shared;
use crate::dns::stats::Tally;
use crate::telemetry::Telemetry;

/// RFC 8467 4.1: servers pad responses to a multiple of 468 octets.
pub(crate) const PAD_BLOCK: usize = 468;

/// The answer path for encrypted transports: runs [`respond`] on the current snapshot,
/// counts and logs the query, and decodes the reply for re-encoding with padding.
pub(crate) struct Answerer {
    pub shared: Shared,
    pub tally: std::sync::Mutex<Tally>,
    pub log: Option<Arc<QueryLog>>,
    pub tls_queries: metrics::Counter,
    pub https_queries: metrics::Counter,
}

impl Answerer {
    pub(crate) fn new(
        shared: Shared,
        tally: Tally,
        log: Option<Arc<QueryLog>>,
        telemetry: &Telemetry,
    ) -> Answerer {
        let queries = |transport| {
            telemetry.counter(
                "sipsteer_dns_encrypted_queries_total",
                &[("transport", transport)],
            )
        };
        Answerer {
            shared,
            tally: std::sync::Mutex::new(tally),
            log,
            tls_queries: queries("tls"),
            https_queries: queries("https"),
        }
    }

    /// Answers one query; `None` when nothing is to be sent (not a query).
    pub(crate) fn answer(&self, client: IpAddr, proto: Proto, raw: &[u8]) -> Option<Message> {
        let mut out = Vec::with_capacity(1024);
        {
            let snap = self.shared.load();
            let summary = respond(&snap, client, proto, raw, &mut out)?;
            crate::lock::guard(&self.tally).record(&snap, &summary);
            if let Some(log) = &self.log {
                log.note(&snap, client, raw, &summary);
            }
        }
        match proto {
            Proto::Https => self.https_queries.increment(1),
            _ => self.tls_queries.increment(1),
        }
        match Message::from_vec(&out) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(client = %client, error = %e, "cannot decode our own reply");
                let id = raw.get(..2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
                let mut m = Message::new(id, MessageType::Response, OpCode::Query);
                m.metadata.response_code = ResponseCode::ServFail;
                Some(m)
            }
        }
    }

    /// Answers one query and encodes the reply with block padding.
    pub(crate) fn answer_padded(
        &self,
        client: IpAddr,
        proto: Proto,
        raw: &[u8],
    ) -> Option<Message> {
        let mut reply = self.answer(client, proto, raw)?;
        reply.edns = padded_edns(&mut reply);
        Some(reply)
    }
}

/// hickory-server's request handler (DNS over TLS).
pub(crate) struct Handler(pub Arc<Answerer>);

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let proto = match request.protocol() {
            Protocol::Https => Proto::Https,
            _ => Proto::Tls,
        };
        let Some(mut reply) = self.0.answer(request.src().ip(), proto, request.as_slice()) else {
            return not_sent(request);
        };
        let mut edns = reply.edns.take();
        if let Some(e) = edns.as_mut() {
            e.options_mut().remove(EdnsCode::Padding);
        }
        if let Some(len) = edns
            .as_ref()
            .and_then(|e| encoded_len(request, &reply, Some(e)))
            && let Some(e) = edns.as_mut()
        {
            pad(e, len);
        }
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let response = builder.build(
            reply.metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            std::iter::empty(),
            reply.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(client = %request.src(), error = %e, "cannot send encrypted reply");
                not_sent(request)
            }
        }
    }
}

/// Takes the reply's EDNS with a padding option added so the encoded reply is a multiple of
/// [`PAD_BLOCK`] octets. No OPT in the reply (the query had none) means no padding.
fn padded_edns(reply: &mut Message) -> Option<Edns> {
    let mut edns = reply.edns.take()?;
    edns.options_mut().remove(EdnsCode::Padding);
    reply.edns = Some(edns);
    let len = reply.to_vec().map(|b| b.len());
    let mut edns = reply.edns.take()?;
    if let Ok(len) = len {
        pad(&mut edns, len);
    }
    Some(edns)
}

/// Adds a padding option to an OPT record (without one) of a reply `unpadded` octets long.
fn pad(edns: &mut Edns, unpadded: usize) {
    // The option's own header (code, length) is 4 octets.
    let len = unpadded + 4;
    let pad = (PAD_BLOCK - len % PAD_BLOCK) % PAD_BLOCK;
    if u16::try_from(len + pad).is_ok() {
        edns.options_mut()
            .insert(EdnsOption::Unknown(EdnsCode::Padding.into(), vec![0; pad]));
    }
}

/// The length of the reply hickory will encode (it copies the question as received, so its
/// encoding can differ from hickory-proto's `Message::to_vec`).
fn encoded_len(request: &Request, reply: &Message, edns: Option<&Edns>) -> Option<usize> {
    let response = MessageResponseBuilder::new(&request.queries, edns).build(
        reply.metadata,
        reply.answers.iter(),
        reply.authorities.iter(),
        std::iter::empty(),
        reply.additionals.iter(),
    );
    let mut buf = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut buf);
    response.destructive_emit(&mut encoder).ok()?;
    Some(buf.len())
}

/// What hickory is told when no reply went out.
fn not_sent(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}
