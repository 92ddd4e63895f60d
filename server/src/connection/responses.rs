//! The responses a connection owes, in request order.
//!
//! Every request a connection reads adds one entry: either a response
//! Kennel made itself ([`Local`]: a canned status, a static file) or a
//! response that will come from a handler, whose end is found by following
//! its framing ([`ResponseScanner`]) over the handler's bytes. Entries
//! leave in order: a static file asked for after a handler route waits
//! until the handler's response is complete, so pipelined responses never
//! overtake each other (RFC 9112 §9.3.2). Bytes a handler sends to a
//! connection that owes it nothing (a push to an open connection, as
//! Mongrel2 allows) are written as they come, between responses.
//!
//! The queue is boxed (see [`Responses`]): a connection that owes nothing
//! holds no entry.

use std::collections::VecDeque;

use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

use crate::dir;
use crate::http::framing::ResponseScanner;
use crate::metrics::{HandlerStats, RouteStats};

/// A response Kennel makes itself.
#[derive(Debug)]
pub enum Local {
    /// Complete bytes: a canned status, an interim `100 Continue`.
    Bytes(Bytes),
    /// A static file (or the Dir handler's own refusal).
    Dir(Box<dir::Response>),
}

/// One response owed.
#[derive(Debug)]
pub enum Owed {
    /// Kennel's own; `close` when the connection ends after it.
    Local {
        /// What to write.
        response: Local,
        /// Close (lingering) once it is written.
        close: bool,
    },
    /// A handler's, still to come (or coming) through the outbox.
    Handler {
        /// Where the response ends.
        scanner: ResponseScanner,
        /// What is logged and counted once it has ended (taken then).
        done: Option<Box<Done>>,
    },
}

/// What a handler's response is logged and counted with once it ends.
#[derive(Debug)]
pub struct Done {
    /// When its request's head was read.
    pub started: Instant,
    /// The route's statistics.
    pub route: Option<Arc<RouteStats>>,
    /// The handler's statistics.
    pub handler: Arc<HandlerStats>,
    /// The access log line, waiting for its status and size.
    pub line: Option<crate::access::Pending>,
    /// Bytes of the response written so far.
    pub bytes: u64,
    /// The request did not keep the connection alive: a response Kennel
    /// makes on the handler's behalf (a 503) closes it.
    pub close: bool,
}

impl Owed {
    /// A handler response to a request with `method`.
    pub fn handler(method: &[u8], done: Done) -> Owed {
        Owed::Handler {
            scanner: ResponseScanner::new(method == b"HEAD"),
            done: Some(Box::new(done)),
        }
    }
}

/// The queue of responses owed.
///
/// Boxed, so that a connection that owes nothing carries two null
/// pointers: the box of the first is made per request, the rest's only for
/// a pipelining client.
#[derive(Debug, Default)]
pub struct Responses {
    first: Option<Box<Owed>>,
    // Boxed on purpose: the header stays off the connection.
    #[allow(clippy::box_collection)]
    rest: Option<Box<VecDeque<Owed>>>,
}

impl Responses {
    /// How many responses are owed.
    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.as_ref().map_or(0, |r| r.len())
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// Whether any owed response is a handler's.
    pub fn awaits_handler(&self) -> bool {
        self.first
            .iter()
            .map(|b| &**b)
            .chain(self.rest.iter().flat_map(|r| r.iter()))
            .any(|o| matches!(o, Owed::Handler { .. }))
    }

    /// Adds a response owed after all the others.
    pub fn push(&mut self, owed: Owed) {
        if self.first.is_none() {
            self.first = Some(Box::new(owed));
        } else {
            self.rest
                .get_or_insert_with(Default::default)
                .push_back(owed);
        }
    }

    /// The response to write next.
    pub fn front(&mut self) -> Option<&mut Owed> {
        self.first.as_deref_mut()
    }

    /// Removes the front response.
    pub fn pop(&mut self) -> Option<Owed> {
        let front = self.first.take().map(|b| *b);
        if let Some(rest) = &mut self.rest {
            self.first = rest.pop_front().map(Box::new);
            if rest.is_empty() {
                // Give a pipelining burst's memory back once it is over.
                self.rest = None;
            }
        }
        front
    }
}
