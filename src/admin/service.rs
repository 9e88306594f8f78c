//! One admin connection's service: tells the admission table when a request is being handled
//! (the connection is busy, not evictable) and when it is not (idle: waiting for the first or
//! next request head, or sending a reply already made), and answers the liveness and
//! readiness probes ahead of the router.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::response::Response;
use hyper::body::Incoming;

use super::AdminState;
use crate::conns::Conn;

/// The service hyper calls for each request of one connection.
#[derive(Clone)]
pub(super) struct ConnService {
    pub app: Router,
    pub state: AdminState,
    pub conn: Arc<Conn>,
}

/// Marks the connection busy while it lives.
struct Busy(Arc<Conn>);

impl Busy {
    fn start(conn: &Arc<Conn>) -> Busy {
        conn.set_idle(false);
        conn.touch(tokio::time::Instant::now());
        Busy(conn.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.set_idle(true);
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, req: Request<Incoming>) -> Answer {
        if let Some(r) = super::probes::answer(&req, &self.state) {
            self.conn.touch(tokio::time::Instant::now());
            return Box::pin(std::future::ready(Ok(r)));
        }
        let busy = Busy::start(&self.conn);
        let mut app = self.app.clone();
        Box::pin(async move {
            let _busy = busy;
            tower::Service::call(&mut app, req.map(Body::new)).await
        })
    }
}
