//! The `setting` table as a typed [`Settings`] struct.
//!
//! Owns: every key Mongrel2 1.12.2 reads (PROTOCOL.md §2.5) and Kennel's own
//! `kennel.*` keys, their defaults, and how a value string is parsed.
//! Does not own: reading rows (see `load`), or acting on a setting.
//! Called by the loader once per snapshot.

/// A file mode as written in `upload.temp_store_mode`: octal digits, such as
/// `0600`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode(pub u32);

/// One year in seconds: the longest duration any setting (or column)
/// given in seconds may hold. Longer is surely a typo, and bounding it keeps
/// every deadline (`Instant` + duration) far from overflowing.
pub const YEAR_SECS: u64 = 365 * 24 * 60 * 60;

/// One year in milliseconds: the longest duration a `*_ms` setting (or
/// column) may hold; see [`YEAR_SECS`].
pub const YEAR_MS: u64 = YEAR_SECS * 1000;

/// An inclusive range of valid values, as `i128` so that every setting's
/// integer type fits.
type Range = (i128, i128);

/// How one setting value is parsed from its text form.
trait SettingValue: Sized {
    /// Parses `text` (the `setting.value` of `key`), which must lie in
    /// `range` when one is given (integers only); the error is the problem,
    /// worded for `setting N: column value: <problem>`.
    fn parse_setting(text: &str, key: &str, range: Option<Range>) -> Result<Self, String>;
}

fn parse_integer(text: &str, key: &str, (min, max): Range) -> Result<i128, String> {
    let out_of_range = || format!("{text:?} is out of range for {key} (expected {min} to {max})");
    let n: i128 = match text.parse() {
        Ok(n) => n,
        // Digits too many for an i128 are a number, just a huge one.
        Err(_) if is_decimal(text) => return Err(out_of_range()),
        Err(_) => return Err(format!("{text:?} is not an integer for {key}")),
    };
    if n < min || n > max {
        return Err(out_of_range());
    }
    Ok(n)
}

/// Optional sign, then one or more ASCII digits.
fn is_decimal(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

macro_rules! integer_setting {
    ($($ty:ty),*) => {$(
        impl SettingValue for $ty {
            fn parse_setting(text: &str, key: &str, range: Option<Range>) -> Result<Self, String> {
                let (lo, hi) = (<$ty>::MIN as i128, <$ty>::MAX as i128);
                let range = range.map_or((lo, hi), |(min, max)| (min.max(lo), max.min(hi)));
                let n = parse_integer(text, key, range)?;
                Ok(n as $ty)
            }
        }
    )*};
}
integer_setting!(i32, u32, u64, usize);

/// Mongrel2 reads flags as integers: 0 is off, any other integer is on.
impl SettingValue for bool {
    fn parse_setting(text: &str, key: &str, _range: Option<Range>) -> Result<Self, String> {
        let n = parse_integer(text, key, (i64::MIN as i128, i64::MAX as i128))?;
        Ok(n != 0)
    }
}

/// An optional value: set means `Some` (a range applies to the value).
impl<T: SettingValue> SettingValue for Option<T> {
    fn parse_setting(text: &str, key: &str, range: Option<Range>) -> Result<Self, String> {
        T::parse_setting(text, key, range).map(Some)
    }
}

impl SettingValue for String {
    fn parse_setting(text: &str, _key: &str, _range: Option<Range>) -> Result<Self, String> {
        Ok(text.to_owned())
    }
}

impl SettingValue for FileMode {
    fn parse_setting(text: &str, key: &str, _range: Option<Range>) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an octal file mode for {key}");
        if text.is_empty() || !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(bad());
        }
        match u32::from_str_radix(text, 8) {
            Ok(mode) if mode <= 0o7777 => Ok(FileMode(mode)),
            _ => Err(bad()),
        }
    }
}

/// `kennel.access_log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// Mongrel2's tnetstring list per line.
    Mongrel2,
    /// A JSON object per line.
    Json,
}

impl SettingValue for AccessLogFormat {
    fn parse_setting(text: &str, key: &str, _range: Option<Range>) -> Result<Self, String> {
        match text {
            "mongrel2" => Ok(AccessLogFormat::Mongrel2),
            "json" => Ok(AccessLogFormat::Json),
            _ => Err(format!(
                "{text:?} is not a format for {key} (expected mongrel2 or json)"
            )),
        }
    }
}

/// `kennel.log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Text lines.
    Plain,
    /// JSON lines.
    Json,
}

impl SettingValue for LogFormat {
    fn parse_setting(text: &str, key: &str, _range: Option<Range>) -> Result<Self, String> {
        match text {
            "plain" => Ok(LogFormat::Plain),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "{text:?} is not a format for {key} (expected plain or json)"
            )),
        }
    }
}

impl SettingValue for std::net::SocketAddr {
    fn parse_setting(text: &str, key: &str, _range: Option<Range>) -> Result<Self, String> {
        text.parse().map_err(|_| {
            format!("{text:?} is not an address and port for {key} (such as 127.0.0.1:9180)")
        })
    }
}

/// Mongrel2 settings Kennel accepts but does not act on: key, Mongrel2's
/// default, and why. A row setting one to anything but that default
/// (which is what Kennel does anyway) is warned about once, at load.
pub const IGNORED: &[(&str, &str, &str)] = &[
    (
        "limits.client_read_retries",
        "5",
        "a request head has a deadline instead (kennel.http.request_timeout_ms)",
    ),
    (
        "limits.connection_stack_size",
        "32768",
        "Kennel has no coroutine stacks",
    ),
    (
        "limits.fdtask_stack",
        "102400",
        "Kennel has no coroutine stacks",
    ),
    (
        "limits.handler_stack",
        "102400",
        "Kennel has no coroutine stacks",
    ),
    (
        "limits.dir_send_buffer",
        "16384",
        "files go out by sendfile(2) in 48 KiB steps",
    ),
    (
        "limits.proxy_read_retries",
        "100",
        "a back end has a deadline instead (kennel.proxy.timeout_ms)",
    ),
    (
        "limits.proxy_read_retry_warn",
        "10",
        "a back end has a deadline instead (kennel.proxy.timeout_ms)",
    ),
    (
        "limits.url_path",
        "256",
        "Mongrel2 does not enforce it either; the head limits apply",
    ),
    (
        "limits.kill_limit",
        "2",
        "each idle and rate check applies on its own",
    ),
    (
        "superpoll.hot_dividend",
        "4",
        "Kennel has no superpoll; tokio polls with epoll",
    ),
    (
        "superpoll.max_fd",
        "10240",
        "the open-file limit is raised to the hard limit at start",
    ),
    ("zeromq.threads", "1", "Kennel runs one ZeroMQ I/O thread"),
];

/// What [`Settings::apply`] made of one `setting` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A known key; the field was set.
    Set,
    /// A key neither Mongrel2 1.12 nor Kennel reads (a warning, not an error).
    Unknown,
}

/// The valid range of one `settings!` entry: `None` without one.
macro_rules! setting_range {
    () => {
        None
    };
    ($min:literal, $max:literal) => {
        Some(($min as i128, $max as i128))
    };
}

/// Declares the settings. One entry per key:
///
/// ```text
/// /// Doc comment: the default, the unit, what it does, why.
/// "the.key" => field_name: Type = default_expression;
/// /// An integer with a valid range (both ends included, as literals):
/// "other.key" => other_field: u64 = 10, 1..=31_536_000;
/// ```
///
/// A range is checked when the setting is read (a value outside it is an
/// error naming the row) and is added to the field's doc comment, so the
/// two cannot drift apart. Give every duration a maximum (at most a year,
/// [`YEAR_SECS`] / [`YEAR_MS`]) and every count whose 0 (or small value)
/// would make the server useless a minimum. Ranges work for the integer
/// types and `Option`s of them.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])*
        $key:literal => $field:ident : $ty:ty = $default:expr $(, $min:literal ..= $max:literal)?;
    )*) => {
        /// Global settings: the rows of the `setting` table, typed, with
        /// Mongrel2 1.12.2's defaults for every key that is absent.
        ///
        /// Each field is named after its key (`limits.buffer_size` →
        /// `limits_buffer_size`). Several keys tune Mongrel2 internals that
        /// Kennel does not have (coroutine stacks, superpoll); they are
        /// parsed and validated so a Mongrel2 database loads, and otherwise
        /// ignored.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Settings {
            $(
                $(#[doc = $doc])*
                $(
                    #[doc = ""]
                    #[doc = concat!(
                        "Valid values: ", stringify!($min), " to ", stringify!($max),
                        "; any other is a config error."
                    )]
                )?
                pub $field: $ty,
            )*
        }

        impl Default for Settings {
            fn default() -> Self {
                Settings { $( $field: $default, )* }
            }
        }

        impl Settings {
            /// Every key Kennel knows, in the order of PROTOCOL.md §2.5
            /// followed by Kennel's own.
            pub const KEYS: &'static [&'static str] = &[$($key),*];

            /// The valid values of `key` (both ends included), for a key
            /// declared with a range; `None` for other keys, whose values
            /// need only parse as their type.
            pub fn range(key: &str) -> Option<(i128, i128)> {
                match key {
                    $( $key => setting_range!($($min, $max)?), )*
                    _ => None,
                }
            }

            /// Sets the field for `key` from its text `value`. An unknown
            /// key leaves the settings unchanged; a value that does not
            /// parse, or lies outside the key's range, is an error naming
            /// the value and the key.
            pub fn apply(&mut self, key: &str, value: &str) -> Result<Applied, String> {
                match key {
                    $( $key => {
                        self.$field = <$ty as SettingValue>::parse_setting(
                            value,
                            key,
                            setting_range!($($min, $max)?),
                        )?;
                        Ok(Applied::Set)
                    } )*
                    _ => Ok(Applied::Unknown),
                }
            }
        }
    };
}

settings! {
    /// Default `ipc://run/control`. The control port's ZeroMQ spec, used when
    /// the server row's `control_port` column is empty (the column wins).
    "control_port" => control_port: String = "ipc://run/control".to_owned();
    /// Default 0. When on, no access log is written.
    "disable.access_logging" => disable_access_logging: bool = false;
    /// Default unset. When set (Mongrel2's default is 4096 bytes, its manual
    /// says 2048), the largest request head (request line and headers) in
    /// bytes and also the longest line in it, as Mongrel2's one buffer
    /// bounds both. When unset, Kennel allows what modern clients need (a
    /// few cookies, a bearer token), as nginx does: a head of up to
    /// [`crate::http::DEFAULT_MAX_HEAD`] (32 KiB) with lines of up to
    /// [`crate::http::DEFAULT_MAX_LINE`] (8 KiB). A request line longer
    /// than the line limit gets 414, any other line or a larger head 431
    /// (see [`crate::http::Limits::from_settings`]). Kennel's read buffer
    /// grows on demand and is freed while a connection is idle. At least
    /// 256: a smaller head cannot hold an ordinary request.
    "limits.buffer_size" => limits_buffer_size: Option<usize> = None, 256..=16_777_216;
    /// Default 5. Reads allowed to complete a request head.
    "limits.client_read_retries" => limits_client_read_retries: u32 = 5;
    /// Default 32768 bytes. Mongrel2's coroutine stack; Kennel has none.
    "limits.connection_stack_size" => limits_connection_stack_size: usize = 32768;
    /// Default 20480 bytes. Largest request body held in memory and sent to
    /// a handler in one message; a larger one goes to `upload.temp_store`
    /// or is streamed (`upload.stream`), and gets 413 when neither is set.
    "limits.content_length" => limits_content_length: usize = 20480;
    /// Default 256 bytes. Longest Dir `base` (checked at load) and route
    /// prefix for Dir targets.
    "limits.dir_max_path" => limits_dir_max_path: usize = 256, 1..=1_048_576;
    /// Default 16384 bytes. Mongrel2's block size when sending a static
    /// file; Kennel reads it but sends in blocks of its own
    /// (`dir::SENDFILE_CHUNK`).
    "limits.dir_send_buffer" => limits_dir_send_buffer: usize = 16384;
    /// Default 102400 bytes. Mongrel2's IO reactor task stack; Kennel has none.
    "limits.fdtask_stack" => limits_fdtask_stack: usize = 102400;
    /// Default 102400 bytes. Mongrel2's handler task stack; Kennel has none.
    "limits.handler_stack" => limits_handler_stack: usize = 102400;
    /// Default 128. Most connection ids one handler reply may address; at
    /// least 1.
    "limits.handler_targets" => limits_handler_targets: usize = 128, 1..=1_000_000;
    /// Default 1280. Most header lines in one request (Mongrel2 counts
    /// distinct names). At least 1: an HTTP/1.1 request needs `Host`.
    "limits.header_count" => limits_header_count: usize = 1280, 1..=1_000_000;
    /// Default 256 bytes. Longest `host.name` / `host.matching` (checked at
    /// load).
    "limits.host_name" => limits_host_name: usize = 256, 1..=1_048_576;
    /// Default 128 bytes. Longest `mimetype.extension`; Mongrel2 accepts
    /// only extensions shorter than this (checked at load). At least 2, so
    /// that some extension (`.` and a letter) fits.
    "limits.mime_ext_len" => limits_mime_ext_len: usize = 128, 2..=1_048_576;
    /// Default 100. Reads allowed to get a proxy back end's response head.
    "limits.proxy_read_retries" => limits_proxy_read_retries: u32 = 100;
    /// Default 10. Proxy read retries after which a warning is logged.
    "limits.proxy_read_retry_warn" => limits_proxy_read_retry_warn: u32 = 10;
    /// Default 256 bytes. Read and logged by Mongrel2 but enforced nowhere.
    "limits.url_path" => limits_url_path: usize = 256;
    /// Default 10 seconds. Mongrel2's interval of the clock tick and
    /// idle-connection sweep; Kennel has per-connection deadlines instead.
    "limits.tick_timer" => limits_tick_timer: u64 = 10, 0..=31_536_000;
    /// Default 120 seconds, at most a year. A connection that is owed a
    /// handler's response and is idle longer (no request, no reply byte, no
    /// `ctl keep-alive`) is closed. 0 turns the check off, as in Mongrel2
    /// (whose WebSocket example sets it so).
    "limits.min_ping" => limits_min_ping: u64 = 120, 0..=31_536_000;
    /// Default 300 bytes/s. While a large body (an upload) arrives, the
    /// client must send at least this many bytes per `limits.tick_timer`
    /// seconds, else 408 (0 = no rate check).
    "limits.min_read_rate" => limits_min_read_rate: u64 = 300;
    /// Default 300 bytes/s. A slower writer fails the write-rate check.
    "limits.min_write_rate" => limits_min_write_rate: u64 = 300;
    /// Default 2. A connection is killed when **more than** this many of the
    /// three checks fail (so by default all three must fail).
    "limits.kill_limit" => limits_kill_limit: u32 = 2;
    /// Default 4. Mongrel2's poll/epoll split; Kennel has no equivalent.
    "superpoll.hot_dividend" => superpoll_hot_dividend: u32 = 4;
    /// Default 10240. The open-file limit Mongrel2 requests at start; Kennel
    /// ignores it and raises its soft limit to the hard limit instead.
    "superpoll.max_fd" => superpoll_max_fd: u64 = 10240;
    /// Default unset (no large uploads to disk). `mkstemp` template, ending
    /// in `XXXXXX` (checked at load), for request bodies above
    /// `limits.content_length`; a path inside the chroot.
    "upload.temp_store" => upload_temp_store: Option<String> = None;
    /// Default `0600` (Mongrel2's manual says 0666; the code uses 0600).
    /// Mode of upload temp files, in octal.
    "upload.temp_store_mode" => upload_temp_store_mode: FileMode = FileMode(0o600);
    /// Default 0. When on, large bodies are streamed to the handler in
    /// slices as it grants credits (`ctl credits`), instead of being
    /// written to a temp file.
    "upload.stream" => upload_stream: bool = false;
    /// Default 0. When on, a connection's first handler request carries
    /// `DOWNLOAD_CREDITS: 102400` and the handler gets a credit notice
    /// after every write of its reply to the client. (Mongrel2 also caps the
    /// queue at 100 KiB; Kennel's outbox bound is `kennel.outbox.*`.)
    "download.flow_control" => download_flow_control: bool = false;
    /// Default 1. ZeroMQ IO threads.
    "zeromq.threads" => zeromq_threads: u32 = 1;
    /// Default 0. When on, SO_KEEPALIVE is set on accepted sockets.
    "net.tcp_keepalive" => net_tcp_keepalive: bool = false;
    /// Default 1. When on, `kennel CONFIG UUID` forks into the background
    /// (unless `--foreground`).
    "server.daemonize" => server_daemonize: bool = true;
    /// Default 0. When on, a client's own `X-Forwarded-For` is kept.
    "no_clobber_xff" => no_clobber_xff: bool = false;
    /// Default 0. When on, `{ } ^` are allowed in request URIs.
    "request.relaxed" => request_relaxed: bool = false;
    /// Default unset. Directory of TLS certificates (`<uuid>.crt`/`.key`,
    /// `<hostname>.crt`/`.key` for SNI); must end with `/`.
    "certdir" => certdir: Option<String> = None;
    /// Default unset (all suites). Space-separated TLS cipher suite names.
    "ssl_ciphers" => ssl_ciphers: Option<String> = None;
    /// Default unset. CA file used to verify client certificates.
    "ssl.ca_chain" => ssl_ca_chain: Option<String> = None;
    /// Default 0. When on, client certificates are requested and verified
    /// if sent.
    "ssl.verify_optional" => ssl_verify_optional: bool = false;
    /// Default 0. When on, a verified client certificate is required.
    "ssl.verify_required" => ssl_verify_required: bool = false;
    /// Kennel. Default 5000 ms. How long a request waits for a handler
    /// process to connect before Kennel answers 503 with `Retry-After`
    /// (Mongrel2 waits forever). Long enough that a restarting handler still
    /// gets the request; `kennel_handler.connect_wait_ms` overrides it per
    /// handler. 0 answers at once; at most a year.
    "kennel.handler.connect_wait_ms" => kennel_handler_connect_wait_ms: u64 = 5000, 0..=31_536_000_000;
    /// Kennel. Default 1 s. The `Retry-After` value of the 503 sent when no
    /// handler took a request in time; at most a year.
    "kennel.handler.retry_after" => kennel_handler_retry_after: u32 = 1, 0..=31_536_000;
    /// Kennel. Default 10000. ZeroMQ high-water mark of each handler's PUSH
    /// socket (requests queued per connected handler process before the
    /// socket stops accepting more; Kennel then holds them until
    /// `connect_wait_ms` runs out). At least 1: ZeroMQ reads 0 as "no
    /// limit", and every queue is bounded.
    "kennel.handler.send_hwm" => kennel_handler_send_hwm: i32 = 10000, 1..=2_147_483_647;
    /// Kennel. Default 10000. Requests one handler link holds while no
    /// handler process can take them (none connected, or every one's queue
    /// full); a request beyond it gets `503` with `Retry-After` at once.
    /// Each held request is a copy of its message (at most
    /// `limits.content_length` of body), so this bounds that memory; 10,000
    /// covers a few seconds of a handler restart at a busy site. At least 1.
    "kennel.handler.max_held" => kennel_handler_max_held: usize = 10000, 1..=100_000_000;
    /// Kennel. Default 1. When on, ZeroMQ's I/O threads run under
    /// `SCHED_BATCH`, so waking one to move a message does not preempt the
    /// thread serving connections; messages then leave in batches when
    /// that thread blocks. Matters when the server shares its cores (see
    /// `bench/RESULTS.md`); 0 leaves them under the default policy.
    "kennel.zeromq.batch_scheduling" => kennel_zeromq_batch_scheduling: bool = true;
    /// Kennel. Default 4 MiB. Bytes queued for one connection above which it
    /// is dropped if it is not draining them (see `kennel.outbox.stall_ms`);
    /// a connection that drains may queue 8 times as much, never more.
    /// Mongrel2 drops any connection with more than 16 queued messages.
    /// From 1 byte to 1 GiB (so the 8-fold bound stays far from overflow).
    "kennel.outbox.max_bytes" => kennel_outbox_max_bytes: usize = 4 * 1024 * 1024, 1..=1_073_741_824;
    /// Kennel. Default 2000 ms. A connection that has written nothing for
    /// this long is "not draining" its outbox. From 1 ms to a year.
    "kennel.outbox.stall_ms" => kennel_outbox_stall_ms: u64 = 2000, 1..=31_536_000_000;
    /// Kennel. Default 10000 ms. Time allowed to receive a request's whole
    /// head (and body) once its first byte arrived; then 408 and close.
    /// From 1 ms to a year.
    "kennel.http.request_timeout_ms" => kennel_http_request_timeout_ms: u64 = 10000, 1..=31_536_000_000;
    /// Kennel. Default 60000 ms. An idle keep-alive connection that is owed
    /// no handler response is closed after this long. Connections waiting
    /// on a handler use `limits.min_ping` instead. From 1 ms (0
    /// would close a new connection before it could send) to a year.
    "kennel.http.keepalive_timeout_ms" => kennel_http_keepalive_timeout_ms: u64 = 60000, 1..=31_536_000_000;
    /// Kennel. Default 16. Responses one connection may owe at once
    /// (pipelined requests read but not yet answered). When it owes this
    /// many, Kennel reads no further requests from it until one is
    /// answered: TCP holds the client back, nothing is refused, and the
    /// memory a pipelining client can make Kennel hold stays bounded. At
    /// least 1 (a connection must be able to owe its one response).
    "kennel.http.max_pipelined" => kennel_http_max_pipelined: usize = 16, 1..=1024;
    /// Kennel. Default 30000 ms. A write to a client that accepts no byte
    /// for this long drops the client (its task, descriptor and any cached
    /// file are freed). Applies to every write: static files, handler
    /// replies, Kennel's own responses. `limits.min_write_rate` adds a
    /// minimum rate on top. From 1 ms to a year.
    "kennel.http.write_timeout_ms" => kennel_http_write_timeout_ms: u64 = 30000, 1..=31_536_000_000;
    /// Kennel. Default 5000 ms. After a final response that leaves the
    /// client possibly still sending (a refusal, a body left unread, bytes
    /// read past the last request), how long Kennel keeps reading and
    /// discarding what it sends before it closes (at most 1 MiB), so the
    /// client reads the response instead of a connection reset: nginx's
    /// lingering close. After a whole request and nothing more, the close
    /// is at once. From 0 (close at once) to an hour.
    "kennel.http.linger_ms" => kennel_http_linger_ms: u64 = 5000, 0..=3_600_000;
    /// Kennel. Default 5000 ms. How long connecting to a proxy route's back
    /// end may take; then the client gets `502`. From 1 ms to a year.
    "kennel.proxy.connect_timeout_ms" => kennel_proxy_connect_timeout_ms: u64 = 5000, 1..=31_536_000_000;
    /// Kennel. Default 60000 ms (nginx's `proxy_read_timeout`). How long a
    /// back end may stay silent: before its response head (then `504`),
    /// between two reads of its body, or without reading the request body
    /// Kennel sends it. From 1 ms to a year.
    "kennel.proxy.timeout_ms" => kennel_proxy_timeout_ms: u64 = 60000, 1..=31_536_000_000;
    /// Kennel. Default 64. Idle keep-alive connections kept open to each
    /// back end, shared by every client (0 = a new connection per request).
    "kennel.proxy.max_idle" => kennel_proxy_max_idle: usize = 64, 0..=100_000;
    /// Kennel. Default 60000 ms. How long an idle back-end connection is
    /// kept in the pool. From 1 ms to a year.
    "kennel.proxy.idle_timeout_ms" => kennel_proxy_idle_timeout_ms: u64 = 60000, 1..=31_536_000_000;
    /// Kennel. Default 1 MiB. The largest WebSocket message a client may
    /// send (summed over its fragments); a larger one closes the connection
    /// with status 1009 (Message Too Big). Mongrel2 has no limit, so one
    /// client could make it buffer any amount; 1 MiB is far above chat,
    /// JSON or streaming-chunk messages. From 1 byte to 1 GiB.
    "kennel.websocket.max_message_bytes" => kennel_websocket_max_message_bytes: usize = 1024 * 1024, 1..=1_073_741_824;
    /// Kennel. Default 1,000,000. Connections served at once; further
    /// clients wait in the listen backlog. Bounded by the open-file limit
    /// too. At least 1 (0 would accept nothing); at most 100,000,000, far
    /// beyond any open-file limit and within what the connection semaphore
    /// can count (`tokio::sync::Semaphore::MAX_PERMITS`).
    "kennel.max_connections" => kennel_max_connections: usize = 1_000_000, 1..=100_000_000;
    /// Kennel. Default 10000 ms. On SIGTERM/SIGINT, how long in-flight
    /// connections get to finish before the process exits. 0 exits at
    /// once; at most a year.
    "kennel.shutdown_grace_ms" => kennel_shutdown_grace_ms: u64 = 10000, 0..=31_536_000_000;
    /// Kennel. Default unset (off). The admin listener's address, such as
    /// `127.0.0.1:9180`: `/live`, `/ready` and `/metrics` (Prometheus
    /// text). Plain HTTP; keep it on a loopback or private address.
    "kennel.admin.listen" => kennel_admin_listen: Option<std::net::SocketAddr> = None;
    /// Kennel. Default `mongrel2`. The access log's line format:
    /// `mongrel2` (Mongrel2's tnetstring list, which `m2sh access` reads)
    /// or `json` (one JSON object per line).
    "kennel.access_log.format" => kennel_access_log_format: AccessLogFormat = AccessLogFormat::Mongrel2;
    /// Kennel. Default `plain`. The server's own log (the error log):
    /// `plain` text lines or `json` lines. Read at start.
    "kennel.log.format" => kennel_log_format: LogFormat = LogFormat::Plain;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_mongrel2s() {
        let s = Settings::default();
        assert_eq!(s.control_port, "ipc://run/control");
        assert_eq!(
            s.limits_buffer_size, None,
            "unset: Kennel's own head limits"
        );
        assert_eq!(s.limits_content_length, 20480);
        assert_eq!(s.limits_kill_limit, 2);
        assert_eq!(s.upload_temp_store, None);
        assert_eq!(s.upload_temp_store_mode, FileMode(0o600));
        assert!(s.server_daemonize);
        assert!(!s.upload_stream);
        assert_eq!(s.kennel_handler_connect_wait_ms, 5000);
        assert!(s.kennel_zeromq_batch_scheduling);
        assert_eq!(Settings::KEYS.len(), 60);
    }

    #[test]
    fn every_key_is_settable() {
        for key in Settings::KEYS {
            let mut s = Settings::default();
            let value = match *key {
                "kennel.admin.listen" => "127.0.0.1:9180".to_owned(),
                "kennel.access_log.format" | "kennel.log.format" => "json".to_owned(),
                _ => Settings::range(key)
                    .map_or(1, |(min, _)| min.max(1))
                    .to_string(),
            };
            assert_eq!(s.apply(key, &value), Ok(Applied::Set), "{key}");
        }
    }

    #[test]
    fn ranges_are_checked_at_both_ends() {
        let mut s = Settings::default();
        for (key, value) in [
            ("kennel.http.request_timeout_ms", "18446744073709551615"),
            ("kennel.http.request_timeout_ms", "0"),
            ("kennel.http.request_timeout_ms", "31536000001"),
            ("kennel.max_connections", "0"),
            ("kennel.max_connections", "2305843009213693951"),
            ("limits.buffer_size", "255"),
            ("limits.min_ping", "31536001"),
            ("kennel.handler.send_hwm", "0"),
        ] {
            let (min, max) = Settings::range(key).unwrap();
            assert_eq!(
                s.apply(key, value),
                Err(format!(
                    "{value:?} is out of range for {key} (expected {min} to {max})"
                ))
            );
        }
        assert_eq!(s, Settings::default(), "a bad value changes nothing");
        // Past even i128: still out of range, not "not an integer".
        let huge = "9".repeat(50);
        assert_eq!(
            s.apply("kennel.shutdown_grace_ms", &huge),
            Err(format!(
                "{huge:?} is out of range for kennel.shutdown_grace_ms (expected 0 to {YEAR_MS})"
            ))
        );
        // Both ends are valid.
        s.apply("kennel.http.request_timeout_ms", "1").unwrap();
        s.apply("kennel.shutdown_grace_ms", &YEAR_MS.to_string())
            .unwrap();
        assert_eq!(s.kennel_shutdown_grace_ms, YEAR_MS);
        s.apply("limits.buffer_size", "256").unwrap();
        assert_eq!(s.limits_buffer_size, Some(256));
        // A key without a range takes its type's whole range.
        assert_eq!(Settings::range("limits.content_length"), None);
        s.apply("limits.content_length", "0").unwrap();
    }

    #[test]
    fn both_ends_of_every_range_apply_and_defaults_lie_inside() {
        let defaults = Settings::default();
        for key in Settings::KEYS {
            let Some((min, max)) = Settings::range(key) else {
                continue;
            };
            assert!(min <= max, "{key}");
            let mut s = Settings::default();
            for end in [min, max] {
                s.apply(key, &end.to_string())
                    .unwrap_or_else(|e| panic!("{key}: {e}"));
            }
        }
        let check = |key: &str, value: i128| {
            let (min, max) = Settings::range(key).unwrap();
            assert!((min..=max).contains(&value), "{key}: default {value}");
        };
        check("limits.min_ping", defaults.limits_min_ping.into());
        check(
            "kennel.http.request_timeout_ms",
            defaults.kennel_http_request_timeout_ms.into(),
        );
        check(
            "kennel.max_connections",
            defaults.kennel_max_connections as i128,
        );
        check(
            "kennel.outbox.max_bytes",
            defaults.kennel_outbox_max_bytes as i128,
        );
        check(
            "kennel.handler.send_hwm",
            defaults.kennel_handler_send_hwm.into(),
        );
    }

    /// Every duration has a maximum of at most a year, so no deadline can
    /// overflow; every count the server cannot work with at 0 has a
    /// minimum.
    #[test]
    fn durations_have_a_maximum_and_counts_a_minimum() {
        let seconds = [
            "limits.tick_timer",
            "limits.min_ping",
            "kennel.handler.retry_after",
        ];
        for key in Settings::KEYS {
            let limit = if key.ends_with("_ms") {
                YEAR_MS
            } else if seconds.contains(key) {
                YEAR_SECS
            } else {
                continue;
            };
            let (_, max) = Settings::range(key).unwrap_or_else(|| panic!("{key}: no range"));
            assert!(max <= i128::from(limit), "{key}: {max}");
        }
        for key in [
            "limits.buffer_size",
            "limits.header_count",
            "limits.handler_targets",
            "kennel.handler.send_hwm",
            "kennel.handler.max_held",
            "kennel.http.max_pipelined",
            "kennel.http.write_timeout_ms",
            "kennel.outbox.max_bytes",
            "kennel.outbox.stall_ms",
            "kennel.http.request_timeout_ms",
            "kennel.http.keepalive_timeout_ms",
            "kennel.max_connections",
        ] {
            let (min, _) = Settings::range(key).unwrap_or_else(|| panic!("{key}: no range"));
            assert!(min >= 1, "{key}");
        }
        let (_, max) = Settings::range("kennel.max_connections").unwrap();
        assert!(max <= tokio::sync::Semaphore::MAX_PERMITS as i128);
        assert_eq!(
            Settings::range("kennel.http.request_timeout_ms"),
            Some((1, i128::from(YEAR_MS)))
        );
    }

    #[test]
    fn integers_parse_and_reject() {
        let mut s = Settings::default();
        assert_eq!(s.apply("limits.buffer_size", "8192"), Ok(Applied::Set));
        assert_eq!(s.limits_buffer_size, Some(8192));
        assert_eq!(
            s.apply("limits.buffer_size", "abc"),
            Err(r#""abc" is not an integer for limits.buffer_size"#.to_owned())
        );
        assert_eq!(
            s.apply("limits.buffer_size", "1.5"),
            Err(r#""1.5" is not an integer for limits.buffer_size"#.to_owned())
        );
        assert_eq!(
            s.apply("zeromq.threads", "-1"),
            Err(r#""-1" is out of range for zeromq.threads (expected 0 to 4294967295)"#.to_owned())
        );
        assert_eq!(
            s.limits_buffer_size,
            Some(8192),
            "a bad value changes nothing"
        );
    }

    #[test]
    fn flags_are_integers() {
        let mut s = Settings::default();
        s.apply("server.daemonize", "0").unwrap();
        assert!(!s.server_daemonize);
        s.apply("server.daemonize", "2").unwrap();
        assert!(s.server_daemonize);
        assert_eq!(
            s.apply("upload.stream", "yes"),
            Err(r#""yes" is not an integer for upload.stream"#.to_owned())
        );
    }

    #[test]
    fn file_mode_is_octal() {
        let mut s = Settings::default();
        s.apply("upload.temp_store_mode", "0644").unwrap();
        assert_eq!(s.upload_temp_store_mode, FileMode(0o644));
        for bad in ["", "0689", "rw", "77777"] {
            assert_eq!(
                s.apply("upload.temp_store_mode", bad),
                Err(format!(
                    "{bad:?} is not an octal file mode for upload.temp_store_mode"
                ))
            );
        }
    }

    #[test]
    fn strings_and_unknown_keys() {
        let mut s = Settings::default();
        s.apply("upload.temp_store", "/tmp/up.XXXXXX").unwrap();
        assert_eq!(s.upload_temp_store.as_deref(), Some("/tmp/up.XXXXXX"));
        assert_eq!(s.apply("frobnicate", "1"), Ok(Applied::Unknown));
        assert_eq!(s.apply("kennel.nope", "1"), Ok(Applied::Unknown));
        assert_eq!(
            Settings {
                upload_temp_store: None,
                ..s
            },
            Settings::default()
        );
    }
}
