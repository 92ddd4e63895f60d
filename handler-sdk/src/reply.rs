//! The reply message: what a handler PUBlishes back to a server.
//!
//! Grammar (PROTOCOL.md §1.4, Mongrel2's `handler_parser.rl`):
//!
//! ```text
//! Reply   = UUID SP LEN ":" ["X" SP] ID (SP ID)* "," SP BODY
//! UUID    = [A-Za-z0-9-]+
//! ```
//!
//! `LEN` is the byte length of the id list (counting `X ` and the spaces);
//! exactly one space follows the comma; `BODY` is the rest of the frame. An
//! empty body asks the server to close the connections after what is already
//! queued. With `X` the body is a tnetstring list of two elements, a string
//! key and its argument ([`Extended`]): `ctl` commands or an `xrequest`.
//!
//! This module owns parsing (the server side: [`Reply::parse`], borrowed and
//! allocation-free) and encoding (the handler side: [`encode`],
//! [`encode_extended`]). Kennel's difference from Mongrel2: ids are parsed as
//! exact unsigned 64-bit decimals, so an out-of-range id is an error rather
//! than wrapping onto some other connection.

use crate::request::parse_id;
use crate::tnetstring::{self, Value};

/// Mongrel2's default for `limits.handler_targets`: a reply naming more
/// connection ids than this is dropped whole.
pub const DEFAULT_MAX_TARGETS: usize = 128;

/// Why a reply message was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The UUID is empty or has a byte outside `[A-Za-z0-9-]`.
    #[error(
        "reply: the sender UUID must be one or more of [A-Za-z0-9-], found byte {found:?} at {at}"
    )]
    BadUuid {
        /// The offending byte (`None`: the message ended).
        found: Option<char>,
        /// Its offset in the message.
        at: usize,
    },
    /// The id list's length prefix is not a decimal number followed by `:`.
    #[error("reply: the id list must start with a decimal length and ':'")]
    BadLength,
    /// The id list is shorter than its length prefix says.
    #[error("reply: the id list claims {claimed} bytes but the message has {available}")]
    Truncated {
        /// The length prefix.
        claimed: usize,
        /// The bytes actually left.
        available: usize,
    },
    /// The id list is not followed by `,` and a single space.
    #[error("reply: the id list must be followed by \", \" (comma and one space)")]
    MissingSeparator,
    /// An id is not an unsigned 64-bit decimal number.
    #[error("reply: connection id {0:?} is not an unsigned 64-bit decimal number")]
    BadId(String),
    /// The id list is empty.
    #[error("reply: no connection ids")]
    NoTargets,
    /// More ids than `limits.handler_targets`.
    #[error("reply: {count} connection ids, more than the limit of {max}")]
    TooManyTargets {
        /// How many ids the reply names.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An `X` reply whose body is not a two-element tnetstring list with a
    /// string key.
    #[error("reply: extended body: {0}")]
    Extended(String),
}

/// A parsed reply, borrowing the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply<'a> {
    uuid: &'a [u8],
    ids: &'a [u8],
    count: usize,
    body: Body<'a>,
}

/// What a reply carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Body<'a> {
    /// Bytes to write to each connection; empty means close it.
    Data(&'a [u8]),
    /// An extended (`X`) reply.
    Extended(Extended<'a>),
}

/// An extended reply: `[key, argument]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Extended<'a> {
    /// `ctl` for control commands, otherwise an `xrequest` name.
    pub key: &'a [u8],
    /// The argument; for `ctl`, a dict such as `{"keep-alive": true}`,
    /// `{"credits": 5}` or `{"cancel": …}`.
    pub value: Value<'a>,
}

impl<'a> Reply<'a> {
    /// Parses one reply frame, accepting at most `max_targets` ids.
    pub fn parse(message: &'a [u8], max_targets: usize) -> Result<Reply<'a>, ReplyError> {
        let uuid_len = message
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || b == b'-'))
            .unwrap_or(message.len());
        if uuid_len == 0 || message.get(uuid_len) != Some(&b' ') {
            return Err(ReplyError::BadUuid {
                found: message.get(uuid_len).map(|&b| char::from(b)),
                at: uuid_len,
            });
        }
        let uuid = &message[..uuid_len];
        let rest = &message[uuid_len + 1..];

        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 9 || rest.get(digits) != Some(&b':') {
            return Err(ReplyError::BadLength);
        }
        let claimed: usize = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or(ReplyError::BadLength)?;
        let rest = &rest[digits + 1..];
        if rest.len() < claimed {
            return Err(ReplyError::Truncated {
                claimed,
                available: rest.len(),
            });
        }
        let (list, rest) = rest.split_at(claimed);
        let body = rest
            .strip_prefix(b", ")
            .ok_or(ReplyError::MissingSeparator)?;

        let (extended, ids) = match list.strip_prefix(b"X ") {
            Some(ids) => (true, ids),
            None => (false, list),
        };
        // Mongrel2's grammar lets each id carry one trailing space, so
        // `1 2 ` is accepted; an empty id (two spaces in a row) is not.
        let trimmed = ids.strip_suffix(b" ").unwrap_or(ids);
        let mut count = 0;
        for id in trimmed.split(|&b| b == b' ') {
            if parse_id(id).is_none() {
                if id.is_empty() && trimmed.is_empty() {
                    return Err(ReplyError::NoTargets);
                }
                return Err(ReplyError::BadId(String::from_utf8_lossy(id).into_owned()));
            }
            count += 1;
        }
        if count > max_targets {
            return Err(ReplyError::TooManyTargets {
                count,
                max: max_targets,
            });
        }
        let body = if extended {
            Body::Extended(parse_extended(body)?)
        } else {
            Body::Data(body)
        };
        Ok(Reply {
            uuid,
            ids: trimmed,
            count,
            body,
        })
    }

    /// The UUID the handler put in front (Mongrel2 never compares it with
    /// anything; the SUB socket's subscription is the only filter).
    pub fn uuid(&self) -> &'a [u8] {
        self.uuid
    }

    /// The connection ids, in message order (duplicates kept: Mongrel2
    /// delivers twice).
    pub fn ids(&self) -> impl Iterator<Item = u64> + 'a {
        self.ids.split(|&b| b == b' ').filter_map(parse_id)
    }

    /// How many ids there are.
    pub fn id_count(&self) -> usize {
        self.count
    }

    /// What the reply carries.
    pub fn body(&self) -> &Body<'a> {
        &self.body
    }

    /// Whether this reply asks for the connections to be closed (an empty,
    /// non-extended body).
    pub fn is_close(&self) -> bool {
        matches!(self.body, Body::Data(b) if b.is_empty())
    }
}

fn parse_extended(body: &[u8]) -> Result<Extended<'_>, ReplyError> {
    let value = tnetstring::parse(body).map_err(|e| ReplyError::Extended(e.to_string()))?;
    let Value::List(mut items) = value else {
        return Err(ReplyError::Extended("not a tnetstring list".into()));
    };
    if items.len() != 2 {
        return Err(ReplyError::Extended(format!(
            "a list of {} elements, expected 2",
            items.len()
        )));
    }
    let value = items.pop().expect("two elements");
    let Some(Value::String(key)) = items.pop() else {
        return Err(ReplyError::Extended(
            "the first element is not a string".into(),
        ));
    };
    Ok(Extended { key, value })
}

/// Appends a reply to `out`: `UUID LEN:ID ID, BODY`.
///
/// An empty `body` asks the server to close the connections. `ids` must not
/// be empty, and the server drops replies naming more than its
/// `limits.handler_targets` (default [`DEFAULT_MAX_TARGETS`]).
pub fn encode(out: &mut Vec<u8>, uuid: &[u8], ids: &[u64], body: &[u8]) {
    write_head(out, uuid, ids, false);
    out.extend_from_slice(body);
}

/// Appends an extended reply: `UUID LEN:X ID ID, [key, value]`.
pub fn encode_extended(out: &mut Vec<u8>, uuid: &[u8], ids: &[u64], key: &[u8], value: &Value<'_>) {
    write_head(out, uuid, ids, true);
    Value::List(vec![Value::String(key), value.clone()]).encode(out);
}

fn write_head(out: &mut Vec<u8>, uuid: &[u8], ids: &[u64], extended: bool) {
    out.extend_from_slice(uuid);
    out.push(b' ');
    // The id list's length is only known once it is written: reserve room
    // for its prefix as a netstring and let the tnetstring writer fix it.
    let list = tnetstring::begin_container(out);
    if extended {
        out.extend_from_slice(b"X ");
    }
    let mut digits = [0; 20];
    for (i, &id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(tnetstring::decimal(id, &mut digits));
    }
    tnetstring::end_container(out, list, tnetstring::Container::String);
    out.push(b' ');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(msg: &[u8]) -> Result<Reply<'_>, ReplyError> {
        Reply::parse(msg, DEFAULT_MAX_TARGETS)
    }

    #[test]
    fn parses_protocol_examples() {
        let msg = b"SENDER 1:7, HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        let reply = parse(msg).unwrap();
        assert_eq!(reply.uuid(), b"SENDER");
        assert_eq!(reply.ids().collect::<Vec<_>>(), [7]);
        assert_eq!(
            reply.body(),
            &Body::Data(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        );
        assert!(!reply.is_close());

        let reply = parse(b"SENDER 6:7 9 12, <body>").unwrap();
        assert_eq!(reply.ids().collect::<Vec<_>>(), [7, 9, 12]);
        assert_eq!(reply.id_count(), 3);

        let reply = parse(b"SENDER 1:7, ").unwrap();
        assert!(reply.is_close());
    }

    #[test]
    fn parses_extended_ctl_replies() {
        let reply = parse(b"SENDER 3:X 7, 24:3:ctl,14:7:credits,1:5#}]").unwrap();
        assert_eq!(reply.ids().collect::<Vec<_>>(), [7]);
        let Body::Extended(ext) = reply.body() else {
            panic!("not extended")
        };
        assert_eq!(ext.key, b"ctl");
        assert_eq!(ext.value.get(b"credits").and_then(Value::as_int), Some(5));

        let reply = parse(b"SENDER 3:X 7, 31:3:ctl,21:10:keep-alive,4:true!}]").unwrap();
        let Body::Extended(ext) = reply.body() else {
            panic!("not extended")
        };
        assert_eq!(ext.value.get(b"keep-alive"), Some(&Value::Boolean(true)));
        assert!(!reply.is_close());
    }

    #[test]
    fn accepts_what_mongrel2_accepts() {
        // One trailing space after the last id is in Mongrel2's grammar.
        assert_eq!(
            parse(b"A-1 4:1 2 , x").unwrap().ids().collect::<Vec<_>>(),
            [1, 2]
        );
        // Duplicates are delivered twice.
        assert_eq!(
            parse(b"u 3:5 5, x").unwrap().ids().collect::<Vec<_>>(),
            [5, 5]
        );
        // The body may hold anything, including ", " and NUL bytes.
        let reply = parse(b"u 1:5, a, b\0c").unwrap();
        assert_eq!(reply.body(), &Body::Data(b"a, b\0c"));
    }

    #[test]
    fn rejects_with_precise_errors() {
        let cases: &[(&[u8], ReplyError)] = &[
            (b"", ReplyError::BadUuid { found: None, at: 0 }),
            (
                b" 1:7, x",
                ReplyError::BadUuid {
                    found: Some(' '),
                    at: 0,
                },
            ),
            (
                b"SEN_DER 1:7, x",
                ReplyError::BadUuid {
                    found: Some('_'),
                    at: 3,
                },
            ),
            (b"SENDER", ReplyError::BadUuid { found: None, at: 6 }),
            (b"SENDER x:7, x", ReplyError::BadLength),
            (b"SENDER 1 7, x", ReplyError::BadLength),
            (b"SENDER 1234567890:7, x", ReplyError::BadLength),
            (
                b"SENDER 5:7, ",
                ReplyError::Truncated {
                    claimed: 5,
                    available: 3,
                },
            ),
            (b"SENDER 1:7,hello", ReplyError::MissingSeparator),
            (b"SENDER 2:7,, x", ReplyError::BadId("7,".into())),
            (b"SENDER 1:7;  x", ReplyError::MissingSeparator),
            (b"SENDER 0:, x", ReplyError::NoTargets),
            (b"SENDER 2:X , x", ReplyError::NoTargets),
            (b"SENDER 3:7  , x", ReplyError::BadId("".into())),
            (b"SENDER 2:-1, x", ReplyError::BadId("-1".into())),
            (
                b"SENDER 20:18446744073709551616, x",
                ReplyError::BadId("18446744073709551616".into()),
            ),
            (b"SENDER 3:X 7, hello", ReplyError::Extended(String::new())),
            (
                b"SENDER 3:X 7, 4:1:a,]",
                ReplyError::Extended("a list of 1 elements, expected 2".into()),
            ),
            (
                b"SENDER 3:X 7, 8:1:1#1:a,]",
                ReplyError::Extended("the first element is not a string".into()),
            ),
        ];
        for (msg, want) in cases {
            let got = parse(msg).unwrap_err();
            match (want, &got) {
                // The tnetstring error text is the codec's; only the kind matters here.
                (ReplyError::Extended(w), ReplyError::Extended(_)) if w.is_empty() => {}
                _ => assert_eq!(&got, want, "{:?}", String::from_utf8_lossy(msg)),
            }
        }
    }

    #[test]
    fn ids_are_exact_u64() {
        // Mongrel2 casts to int, so 2^32+5 would reach connection 5; Kennel
        // keeps the whole number.
        let reply = parse(b"u 10:4294967301, x").unwrap();
        assert_eq!(reply.ids().collect::<Vec<_>>(), [4_294_967_301]);
        let reply = parse(b"u 20:18446744073709551615, x").unwrap();
        assert_eq!(reply.ids().collect::<Vec<_>>(), [u64::MAX]);
    }

    #[test]
    fn target_limit() {
        let ids: Vec<u64> = (0..129).collect();
        let mut msg = Vec::new();
        encode(&mut msg, b"u", &ids, b"x");
        assert_eq!(
            parse(&msg).unwrap_err(),
            ReplyError::TooManyTargets {
                count: 129,
                max: 128
            }
        );
        msg.clear();
        encode(&mut msg, b"u", &ids[..128], b"x");
        assert_eq!(parse(&msg).unwrap().id_count(), 128);
        assert!(Reply::parse(&msg, 127).is_err());
    }

    #[test]
    fn encodes_byte_exact() {
        let mut out = Vec::new();
        encode(&mut out, b"SENDER", &[7, 9, 12], b"<body>");
        assert_eq!(out, b"SENDER 6:7 9 12, <body>");
        out.clear();
        encode(&mut out, b"SENDER", &[7], b"");
        assert_eq!(out, b"SENDER 1:7, ");
        out.clear();
        let ctl = Value::Dict(vec![(b"credits", Value::Integer(5))]);
        encode_extended(&mut out, b"SENDER", &[7], b"ctl", &ctl);
        assert_eq!(out, b"SENDER 3:X 7, 24:3:ctl,14:7:credits,1:5#}]");
    }

    #[test]
    fn every_truncation_is_handled() {
        let msg = b"SENDER 3:X 7, 31:3:ctl,21:10:keep-alive,4:true!}]";
        for cut in 0..msg.len() {
            // Some prefixes are valid replies with a shorter body; none may panic.
            let _ = parse(&msg[..cut]);
        }
        for cut in 0..14 {
            assert!(parse(&msg[..cut]).is_err(), "cut at {cut}");
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn encode_then_parse(
                uuid in "[A-Za-z0-9-]{1,40}",
                ids in proptest::collection::vec(any::<u64>(), 1..=128),
                body in proptest::collection::vec(any::<u8>(), 0..300),
            ) {
                let mut msg = Vec::new();
                encode(&mut msg, uuid.as_bytes(), &ids, &body);
                let reply = Reply::parse(&msg, 128).unwrap();
                prop_assert_eq!(reply.uuid(), uuid.as_bytes());
                prop_assert_eq!(reply.ids().collect::<Vec<_>>(), ids);
                prop_assert_eq!(reply.body(), &Body::Data(&body));
            }

            #[test]
            fn never_panics(msg in proptest::collection::vec(any::<u8>(), 0..64)) {
                let _ = Reply::parse(&msg, 4);
            }
        }
    }
}
