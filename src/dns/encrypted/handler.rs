//! hickory-server's `RequestHandler` for DNS over TLS and DNS over HTTPS: the request's raw
//! bytes go through the same [`respond`] as UDP and TCP (same snapshot, ECS handling,
//! metrics and query log), and the reply is decoded and handed back to hickory as a
//! `MessageResponse` with its EDNS options kept and block padding added (RFC 7830, RFC 8467).

use std::sync::Arc;

use hickory_proto::op::{Edns, Header, HeaderCounts, Message, MessageType, Metadata, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use crate::admin::metrics::QueryStats;
use crate::dns::answer::{Proto, respond};
use crate::querylog::QueryLog;
use crate::snapshot::Shared;

/// RFC 8467 4.1: servers pad responses to a multiple of 468 octets.
pub const PAD_BLOCK: usize = 468;

/// Answers encrypted queries from the current snapshot.
pub struct Handler {
    pub shared: Shared,
    pub stats: Arc<QueryStats>,
    pub log: Option<Arc<QueryLog>>,
    pub tls_queries: metrics::Counter,
    pub https_queries: metrics::Counter,
}

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
        let Some(mut reply) = self.answer(request, proto) else {
            return not_sent(request);
        };
        let edns = padded_edns(&mut reply);
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

impl Handler {
    /// Runs the answer path and decodes its reply; `None` when nothing is to be sent.
    fn answer(&self, request: &Request, proto: Proto) -> Option<Message> {
        let client = request.src().ip();
        let raw = request.as_slice();
        let mut out = Vec::with_capacity(1024);
        {
            let snap = self.shared.load();
            let summary = respond(&snap, client, proto, raw, &mut out)?;
            snap.count_and_log(&summary, &self.stats, self.log.as_deref(), client, raw);
        }
        match proto {
            Proto::Https => self.https_queries.increment(1),
            _ => self.tls_queries.increment(1),
        }
        match Message::from_vec(&out) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(client = %client, error = %e, "cannot decode our own reply");
                let mut m = Message::new(
                    request.metadata.id,
                    MessageType::Response,
                    request.metadata.op_code,
                );
                m.metadata.response_code = ResponseCode::ServFail;
                Some(m)
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
    // The option's own header (code, length) is 4 octets.
    if let Ok(len) = len.map(|l| l + 4) {
        let pad = (PAD_BLOCK - len % PAD_BLOCK) % PAD_BLOCK;
        if len + pad <= u16::MAX as usize {
            edns.options_mut()
                .insert(EdnsOption::Unknown(EdnsCode::Padding.into(), vec![0; pad]));
        }
    }
    Some(edns)
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
