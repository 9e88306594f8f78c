//! Publishing a health view. The view is made under the hub's lock and handed to the
//! publisher after the lock is released: in a signed zone the publisher signs the view's
//! steered answers first (tens to hundreds of milliseconds), and probe results, operator
//! actions and `/v1/servers` do not wait for that. Views are numbered under the lock and one
//! older than a view already published is dropped, so they are served in the order they
//! were made; a call that changed the health returns once a view with its change is served.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::Instant;

use super::lanes::view;
use super::{HealthHub, Inner};
use crate::lock::guard;
use crate::steering::{HealthView, Steering};

/// A view made under the hub's lock, to publish once the lock is released.
#[must_use = "a view is served only once it is published"]
pub(super) struct Pending {
    steering: Arc<Steering>,
    view: HealthView,
    seq: u64,
}

impl HealthHub {
    /// The current view to publish; call with the hub's lock held (that orders the views).
    pub(super) fn pending(&self, inner: &Inner, now: Instant) -> Option<Pending> {
        self.publisher.get()?;
        let steering = inner.bound.as_ref().and_then(Weak::upgrade)?;
        let seq = self.view_seq.fetch_add(1, Relaxed) + 1;
        Some(Pending {
            steering,
            view: view(inner, now),
            seq,
        })
    }

    /// Publishes `p` unless a newer view was published meanwhile; call without the hub's
    /// lock. Publishing is serialized, so this returns once `p` or a newer view is served.
    pub(super) fn publish(&self, p: Option<Pending>) {
        let Some(p) = p else { return };
        let Some(publisher) = self.publisher.get() else {
            return;
        };
        let mut last = guard(&self.published);
        if p.seq <= *last {
            return;
        }
        *last = p.seq;
        publisher.publish(&p.steering, p.view);
    }
}
