//! The DNSSEC keys of a zone as `/v1/status` shows them: each key's role, number, key tag,
//! state and times (Unix seconds) as the serving compile saw them, the next key event and
//! whether a due ZSK successor is missing.

use hickory_proto::rr::Name;
use serde_json::{Value, json};

use crate::routing::Routing;

/// `null` for an unsigned zone.
pub(super) fn zone_keys(routing: &Routing, origin: &Name) -> Value {
    let Some(set) = routing
        .zones
        .iter()
        .find(|z| &z.origin == origin)
        .and_then(|z| z.key_set.as_ref())
    else {
        return Value::Null;
    };
    let keys: Vec<Value> = set
        .status
        .iter()
        .map(|k| {
            json!({
                "role": k.role.as_str(),
                "seq": k.seq,
                "key_tag": k.key_tag,
                "state": k.state.as_str(),
                "publish_unix": k.publish,
                "active_unix": k.active,
                "retire_unix": k.retire,
                "remove_unix": k.remove,
            })
        })
        .collect();
    json!({
        "keys": keys,
        "next_key_event_unix": set.next_event,
        "successor_missing": set.successor_due.is_some(),
    })
}
