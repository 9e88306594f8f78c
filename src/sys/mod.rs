//! Raw sockets, in one audited place: everything sipsteer does below std and socket2. Batched
//! datagram I/O through one preallocated set of `recvmmsg`/`sendmmsg` headers ([`Mmsg`], used
//! by the DNS listener and the probe engine), control messages read by one bounds-checked
//! iterator and written as typed structs ([`cmsg`]), socket addresses converted by socket2's
//! `SockAddr`, and integer socket options socket2 does not name ([`set_int`]). Plain C structs
//! are read from bytes only through [`plain`], for the few types listed there.
//!
//! Every `unsafe` block of the crate that touches a socket is in this module, each with the
//! reason it is sound; the API it offers is safe.

pub(crate) mod cmsg;
mod mmsg;
mod plain;
mod sockopt;

pub(crate) use mmsg::{Mmsg, Recv, Shape, To};
pub(crate) use sockopt::set_int;
