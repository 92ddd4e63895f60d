//! Upload traffic for the differential test: request bodies too large for
//! memory (`upload.temp_store`, `upload.stream`), clients and handlers that
//! stop an upload half way, and `download.flow_control`'s credit notices.
//! Each scenario runs on a fresh connection against one server and records
//! every frame the handler received (notices included, in order), what the
//! client read, whether the connection ended, and the files the upload
//! left in the site's `uploads/` folder.
//!
//! Owns the three sites' settings ([`Settings`]), the scenarios
//! ([`scenarios`]), the handler's side of each (when it grants credits,
//! cancels or answers) and the record ([`UploadRun`]); also
//! [`normalize_names`], which puts the template back in place of the six
//! random characters of a temp file's name so two servers' frames compare
//! byte for byte. Does not own the verdicts: the test file compares
//! Mongrel2's record with the facts it documents and with Kennel's.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use kennel_handler::tnetstring::Value;
use kennel_handler::Request;

use super::{frame_id, show, Capture, Client, Route, Site, IO_TIMEOUT, REPLY};

/// `limits.content_length` on the upload sites: bodies above it take the
/// upload path.
pub const CONTENT_LENGTH: usize = 8192;

/// The large body's size, and how much of it goes out with the head (in
/// the same write, so both servers read it with the head).
pub const BODY_LEN: usize = 100_000;
pub const WITH_HEAD: usize = 1000;

/// How much of the body a client that stops half way sends in all.
pub const PARTIAL: usize = 30_000;

/// The credits granted at a time in streamed uploads (under
/// [`CONTENT_LENGTH`], which caps Mongrel2's slices).
pub const CREDIT: i64 = 4096;

/// The chunk size of the chunked bodies.
pub const CHUNK: usize = 4096;

/// `upload.temp_store_mode` on the temp-store site.
pub const MODE: u32 = 0o640;

/// The temp file template, below the site's folder.
pub const TEMPLATE: &str = "uploads/upload.XXXXXX";

/// How long to wait for a frame that should not come (before credits are
/// granted; a notice after `ctl cancel`). Loopback frames take
/// milliseconds.
pub const QUIET: Duration = Duration::from_millis(400);

/// How long to wait for a frame that may or may not come, depending on the
/// server (a notice after the handler or the server ended the connection).
pub const MAYBE: Duration = Duration::from_millis(1500);

/// The reply that refuses an upload half way.
pub const REFUSAL: &[u8] = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big!";

/// The reply over Mongrel2's 100 KiB of download credits.
pub const BIG_REPLY_LEN: usize = 150_000;

/// The three sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settings {
    /// `upload.temp_store` = `{root}/uploads/upload.XXXXXX`, mode 0640.
    TempStore,
    /// `upload.stream = 1`.
    Stream,
    /// `download.flow_control = 1`, and no upload setting (default
    /// `limits.content_length`).
    FlowControl,
}

impl Settings {
    pub const ALL: [Settings; 3] = [Settings::TempStore, Settings::Stream, Settings::FlowControl];

    /// The `setting` rows (`{root}` is the site's folder).
    pub fn rows(self) -> Vec<(&'static str, String)> {
        let limit = ("limits.content_length", CONTENT_LENGTH.to_string());
        match self {
            Settings::TempStore => vec![
                limit,
                ("upload.temp_store", format!("{{root}}/{TEMPLATE}")),
                ("upload.temp_store_mode", format!("{MODE:04o}")),
            ],
            Settings::Stream => vec![limit, ("upload.stream", "1".into())],
            Settings::FlowControl => vec![("download.flow_control", "1".into())],
        }
    }

    /// The site: [`Site::with_settings`] with these rows and an empty
    /// `uploads/` folder.
    pub fn site(self) -> Site {
        let rows = self.rows();
        let rows: Vec<(&str, &str)> = rows.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let site = Site::with_settings(super::databases::DbKind::M2sh, &rows);
        std::fs::create_dir_all(site.root().join("uploads")).unwrap();
        site
    }
}

/// What the handler and client do in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// A body of [`BODY_LEN`] with `Content-Length`.
    Length,
    /// The same body, chunked in [`CHUNK`]s.
    Chunked,
    /// `hello`, chunked: a body under the limit.
    SmallChunked,
    /// `Content-Length`, the client closes after [`PARTIAL`] bytes.
    ClientGoes,
    /// `Content-Length`, the handler sends `ctl cancel` after
    /// [`PARTIAL`] bytes.
    Cancel,
    /// `Content-Length`, the handler answers [`REFUSAL`] after
    /// [`PARTIAL`] bytes; then the client sends the rest.
    Refuse,
    /// Two GETs on one connection, the first answered in two replies (head,
    /// body), the second in one.
    Credits,
    /// A GET answered by one reply of [`BIG_REPLY_LEN`] body bytes.
    BigReply,
}

/// One scenario on one route of one site.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub settings: Settings,
    pub route: Route,
    pub flow: Flow,
}

/// Every scenario: the formats on both routes, the rest on the JSON route.
pub fn scenarios() -> Vec<Scenario> {
    use Flow::*;
    use Settings::*;
    let table: &[(&'static str, Settings, Flow, bool)] = &[
        ("temp_store_length", TempStore, Length, true),
        ("temp_store_chunked", TempStore, Chunked, true),
        ("temp_store_small_chunked", TempStore, SmallChunked, true),
        ("temp_store_client_goes", TempStore, ClientGoes, false),
        ("temp_store_cancel", TempStore, Cancel, false),
        ("temp_store_refused", TempStore, Refuse, false),
        ("stream_length", Stream, Length, true),
        ("stream_chunked", Stream, Chunked, true),
        ("stream_small_chunked", Stream, SmallChunked, false),
        ("stream_client_goes", Stream, ClientGoes, false),
        ("stream_cancel", Stream, Cancel, false),
        ("flow_control_credits", FlowControl, Credits, true),
        ("flow_control_big_reply", FlowControl, BigReply, false),
        ("no_store_length", FlowControl, Length, false),
        ("no_store_small_chunked", FlowControl, SmallChunked, false),
    ];
    let mut out = Vec::new();
    for &(name, settings, flow, both) in table {
        let routes: &[Route] = if both { &Route::ALL } else { &[Route::Json] };
        for &route in routes {
            out.push(Scenario {
                name,
                settings,
                route,
                flow,
            });
        }
    }
    out
}

/// A file the upload left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadFile {
    /// The absolute path, as the handler would be told it.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    pub bytes: Vec<u8>,
}

/// Everything one server did with one scenario.
#[derive(Debug, Clone, Default)]
pub struct UploadRun {
    /// Every frame the handler received, in order, notices included.
    pub frames: Vec<Vec<u8>>,
    /// How many of `frames` came before the handler granted any credits
    /// (streamed uploads) or before it acted (cancel, refusal).
    pub before_handler: usize,
    /// Whether a frame came in the [`QUIET`] wait after the rest of the
    /// body was sent and before credits were granted (streamed uploads).
    pub unasked: bool,
    /// Everything the client read, in order.
    pub client_read: Vec<u8>,
    /// Whether the client saw the connection end before it closed it.
    pub closed: bool,
    /// The files in `uploads/` when the upload had finished or stopped.
    pub files: Vec<UploadFile>,
    /// How many credits the handler granted in all.
    pub granted: i64,
}

/// The large body: every byte value, in a pattern that does not repeat
/// on chunk boundaries.
pub fn body() -> Vec<u8> {
    (0..BODY_LEN).map(|i| (i * 7 % 251) as u8).collect()
}

/// `body` as chunks of `size`, with the last, empty chunk.
pub fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in body.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// The request head of `flow` on `route`.
pub fn head(scenario: &Scenario, host: &str) -> Vec<u8> {
    let p = scenario.route.prefix();
    let name = scenario.name;
    let framing = match scenario.flow {
        Flow::Chunked | Flow::SmallChunked => "Transfer-Encoding: chunked".to_owned(),
        Flow::Credits | Flow::BigReply => {
            return format!(
                "GET {p}{name}?n=1 HTTP/1.1\r\nHost: {host}\r\nX-Dup: a\r\nX-Dup: b\r\n\r\n"
            )
            .into_bytes()
        }
        _ => format!("Content-Length: {BODY_LEN}"),
    };
    format!(
        "POST {p}{name}?n=1 HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n\
         X-Dup: a\r\nX-Dup: b\r\n{framing}\r\n\r\n"
    )
    .into_bytes()
}

/// The files in the site's `uploads/` folder, by name.
pub fn files(site: &Site) -> Vec<UploadFile> {
    let mut out: Vec<UploadFile> = std::fs::read_dir(site.root().join("uploads"))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let meta = std::fs::metadata(&path).unwrap();
            UploadFile {
                path: path.display().to_string(),
                mode: meta.permissions().mode() & 0o7777,
                bytes: std::fs::read(&path).unwrap(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn clear_uploads(site: &Site) {
    for file in files(site) {
        std::fs::remove_file(file.path).unwrap();
    }
}

/// Waits until the one file in `uploads/` holds `size` bytes.
fn wait_for_file(site: &Site, size: usize, what: &str) {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let sizes: Vec<u64> = std::fs::read_dir(site.root().join("uploads"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .collect();
        if sizes == [size as u64] {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the upload file never held {size} bytes (sizes {sizes:?})"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The temp template as the handler is told it, for `site`.
pub fn template(site: &Site) -> String {
    format!("{}/{TEMPLATE}", site.root().display())
}

/// `frame` with every name made from `template` (its `XXXXXX` replaced by
/// six characters of `[A-Za-z0-9]`) put back as the template, and the
/// names found, in order.
pub fn normalize_names(frame: &[u8], template: &str) -> (Vec<u8>, Vec<String>) {
    let stem = template.strip_suffix("XXXXXX").expect("a mkstemp template");
    let stem = stem.as_bytes();
    let mut out = Vec::with_capacity(frame.len());
    let mut names = Vec::new();
    let mut i = 0;
    while i < frame.len() {
        let rest = &frame[i..];
        if rest.starts_with(stem)
            && rest.len() >= stem.len() + 6
            && rest[stem.len()..stem.len() + 6]
                .iter()
                .all(u8::is_ascii_alphanumeric)
        {
            let end = stem.len() + 6;
            names.push(String::from_utf8_lossy(&rest[..end]).into_owned());
            out.extend_from_slice(template.as_bytes());
            i += end;
        } else {
            out.push(frame[i]);
            i += 1;
        }
    }
    (out, names)
}

/// Grants `credits` upload credits to `id` (`ctl credits`).
pub fn grant(capture: &Capture, id: u64, credits: i64) {
    let value = Value::Dict(vec![(b"credits".as_slice(), Value::Integer(credits))]);
    capture
        .replies
        .deliver_extended(capture.route.send_ident(), &[id], "ctl", &value)
        .unwrap();
}

/// Drops connection `id` (`ctl cancel`).
pub fn cancel(capture: &Capture, id: u64) {
    let value = Value::Dict(vec![(b"cancel".as_slice(), Value::Boolean(true))]);
    capture
        .replies
        .deliver_extended(capture.route.send_ident(), &[id], "ctl", &value)
        .unwrap();
}

fn is_disconnect(frame: &[u8]) -> bool {
    Request::parse(frame).is_ok_and(|r| r.is_disconnect())
}

fn is_stream_done(frame: &[u8]) -> bool {
    Request::parse(frame).is_ok_and(|r| r.header("UPLOAD_STREAM_DONE") == Some("1"))
}

fn is_upload_start_only(frame: &[u8]) -> bool {
    Request::parse(frame).is_ok_and(|r| {
        r.header("x-mongrel2-upload-start").is_some()
            && r.header("x-mongrel2-upload-done").is_none()
    })
}

/// Runs every scenario of `settings` against the server on `addr`
/// (serving `site`), in order; returns the records in the same order.
pub fn exercise_uploads(site: &Site, addr: SocketAddr, scenarios: &[&Scenario]) -> Vec<UploadRun> {
    let captures = super::capture_all(site);
    for capture in &captures {
        capture.ping();
    }
    scenarios
        .iter()
        .map(|scenario| {
            clear_uploads(site);
            let capture = super::capture_of(&captures, scenario.route);
            let run = run_scenario(capture, site, addr, scenario);
            clear_uploads(site);
            run
        })
        .collect()
}

/// A run in progress: the record and the means to add to it.
struct Runner<'a> {
    capture: &'a Capture,
    what: String,
    /// The client, until it closes.
    client: Option<Client>,
    run: UploadRun,
}

impl Runner<'_> {
    fn client(&mut self) -> &mut Client {
        self.client.as_mut().expect("the client is still connected")
    }

    /// The next frame, recorded; a panic after [`IO_TIMEOUT`].
    fn recv(&mut self, what: &str) -> Vec<u8> {
        let frame = self.capture.recv(&format!("{}: {what}", self.what));
        self.run.frames.push(frame.clone());
        frame
    }

    /// The next frame within `wait`, recorded, if one comes.
    fn try_recv(&mut self, wait: Duration) -> Option<Vec<u8>> {
        let frame = self.capture.try_recv(wait)?;
        self.run.frames.push(frame.clone());
        Some(frame)
    }

    /// The handler frame the request became, or `None` when the server
    /// answered the client itself (the answer is recorded).
    fn frame_or_response(&mut self) -> Option<Vec<u8>> {
        let what = self.what.clone();
        let capture = self.capture;
        match super::frame_or_response(capture, self.client(), &what) {
            super::Outcome::Frame(frame) => {
                self.run.frames.push(frame.clone());
                Some(frame)
            }
            super::Outcome::Refused(response) => {
                self.run.client_read.extend(response);
                None
            }
        }
    }

    /// Frames until a disconnect notice (recorded too) or `wait` passes
    /// without a frame.
    fn until_notice(&mut self, wait: Duration) {
        while let Some(frame) = self.try_recv(wait) {
            if is_disconnect(&frame) {
                return;
            }
        }
    }

    /// Frames until the credit notices among them add up to `total` bytes.
    fn credits_until(&mut self, total: u64) {
        let mut credited = 0;
        while credited < total {
            let frame = self.recv(&format!("credit notices for {total} bytes"));
            let notice = Request::parse(&frame)
                .unwrap_or_else(|e| panic!("{}: {e}: {}", self.what, show(&frame)));
            if notice.is_credits() {
                credited += notice
                    .header("DOWNLOAD_CREDITS")
                    .and_then(|c| c.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("{}: {}", self.what, show(&frame)));
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.client().send(bytes);
    }

    /// Sends what the server may no longer read (it may have closed).
    fn send_anyway(&mut self, bytes: &[u8]) {
        use std::io::Write;
        let _ = self.client().stream.write_all(bytes);
    }

    /// Closes the client's end.
    fn close(&mut self) {
        self.client = None;
    }

    /// Reads one response (by its `Content-Length`) and records it.
    fn read_response(&mut self) {
        let response = self.client().read_response();
        self.run.client_read.extend(response);
    }

    /// Reads until `len` more bytes came, the connection ended, or `wait`
    /// passed: records the bytes, and whether the connection ended.
    fn read_upto(&mut self, len: usize, wait: Duration) {
        use std::io::Read;
        let stream = &mut self.client.as_mut().expect("connected").stream;
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0;
        while got < len {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            stream.set_read_timeout(Some(left)).unwrap();
            match stream.read(&mut buf) {
                Ok(0) => {
                    self.run.closed = true;
                    break;
                }
                Ok(n) => {
                    got += n;
                    self.run.client_read.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    self.run.closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    }

    /// [`Runner::read_upto`] without a length: until the end or `wait`.
    fn read_for(&mut self, wait: Duration) {
        self.read_upto(usize::MAX, wait);
    }

    /// Grants [`CREDIT`] at a time until the stream's last slice (or a
    /// disconnect notice) arrives, recording each frame.
    fn stream_with_credits(&mut self, id: u64) {
        for _ in 0..(4 * BODY_LEN / CREDIT as usize) {
            grant(self.capture, id, CREDIT);
            self.run.granted += CREDIT;
            let frame = self.recv("a slice after credits");
            if is_stream_done(&frame) || is_disconnect(&frame) {
                return;
            }
            // A grant may release more than one slice (a chunk larger
            // than what is left of the credits, a short read).
            while let Some(frame) = self.try_recv(Duration::ZERO) {
                if is_stream_done(&frame) || is_disconnect(&frame) {
                    return;
                }
            }
        }
        panic!("{}: the stream never ended", self.what);
    }

    /// Notes the files, answers the upload with [`REPLY`] and reads the
    /// answer.
    fn answer(&mut self, site: &Site, id: u64) {
        self.run.files = files(site);
        self.capture.reply(id, REPLY);
        self.read_response();
    }

    fn id(&self) -> u64 {
        let frame = self.run.frames.first().expect("a first frame");
        frame_id(frame).unwrap_or_else(|| panic!("{}: no id in {}", self.what, show(frame)))
    }

    fn saw_disconnect(&self) -> bool {
        self.run.frames.iter().any(|f| is_disconnect(f))
    }
}

fn run_scenario(
    capture: &Capture,
    site: &Site,
    addr: SocketAddr,
    scenario: &Scenario,
) -> UploadRun {
    let mut r = Runner {
        capture,
        what: format!("{} on {:?}", scenario.name, scenario.route),
        client: Some(Client::connect(addr)),
        run: UploadRun::default(),
    };
    let head = head(scenario, &site.host_header());
    let body = body();
    let stream = scenario.settings == Settings::Stream;
    match scenario.flow {
        Flow::Length => {
            r.send(&[&head[..], &body[..WITH_HEAD]].concat());
            if r.frame_or_response().is_none() {
                r.read_for(MAYBE);
                return r.run;
            }
            let id = r.id();
            r.send(&body[WITH_HEAD..]);
            if stream {
                r.run.unasked = r.try_recv(QUIET).is_some();
                r.run.before_handler = r.run.frames.len();
                r.stream_with_credits(id);
            } else {
                r.recv("the upload-done message");
                r.run.before_handler = r.run.frames.len();
            }
            r.answer(site, id);
        }
        Flow::Chunked => {
            let encoded = chunked(&body, CHUNK);
            r.send(&[&head[..], &encoded[..]].concat());
            let first = r.recv("the first message");
            let id = r.id();
            if stream {
                r.run.unasked = r.try_recv(QUIET).is_some();
                r.run.before_handler = r.run.frames.len();
                if !r.run.frames.iter().any(|f| is_stream_done(f)) {
                    r.stream_with_credits(id);
                }
            } else if is_upload_start_only(&first) {
                r.recv("the upload-done message");
                r.run.before_handler = r.run.frames.len();
            }
            r.answer(site, id);
        }
        Flow::SmallChunked => {
            r.send(&[&head[..], &chunked(b"hello", CHUNK)[..]].concat());
            let Some(first) = r.frame_or_response() else {
                r.read_for(MAYBE);
                return r.run;
            };
            let id = r.id();
            if stream {
                if Request::parse(&first).is_ok_and(|f| f.header("UPLOAD_STREAM").is_some())
                    && !is_stream_done(&first)
                {
                    r.stream_with_credits(id);
                }
            } else if is_upload_start_only(&first) {
                r.recv("the upload-done message");
            }
            r.run.before_handler = r.run.frames.len();
            r.answer(site, id);
        }
        Flow::ClientGoes | Flow::Cancel | Flow::Refuse => {
            r.send(&[&head[..], &body[..WITH_HEAD]].concat());
            r.recv("the first message");
            let id = r.id();
            r.send(&body[WITH_HEAD..PARTIAL]);
            if !stream {
                wait_for_file(site, PARTIAL, &r.what);
            }
            r.run.before_handler = r.run.frames.len();
            match scenario.flow {
                Flow::ClientGoes => {
                    r.close();
                    // What the server does by itself; then (a stream
                    // waiting for credits) what the credits bring.
                    r.until_notice(if stream { QUIET } else { IO_TIMEOUT });
                    r.run.files = files(site);
                    if stream && !r.saw_disconnect() {
                        r.run.before_handler = r.run.frames.len();
                        r.stream_with_credits(id);
                    }
                    return r.run;
                }
                Flow::Cancel => {
                    cancel(capture, id);
                    r.read_for(IO_TIMEOUT);
                    r.until_notice(MAYBE);
                }
                _ => {
                    capture.reply(id, REFUSAL);
                    r.read_response();
                    // Whether the server goes on reading the body.
                    r.read_for(QUIET);
                    r.send_anyway(&body[PARTIAL..]);
                    if !r.run.closed {
                        r.recv("the upload-done message after the refusal");
                    }
                    r.until_notice(MAYBE);
                }
            }
            r.run.files = files(site);
        }
        Flow::Credits => {
            r.send(&head);
            r.recv("the first request");
            let id = r.id();
            let head_reply: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
            capture.reply(id, head_reply);
            capture.reply(id, b"hello");
            r.read_response();
            r.credits_until(head_reply.len() as u64 + 5);
            r.send(&head);
            r.recv("the second request");
            let reply = big_reply(60_000);
            capture.reply(id, &reply);
            r.read_response();
            r.credits_until(reply.len() as u64);
            // Nothing else comes.
            r.try_recv(QUIET);
        }
        Flow::BigReply => {
            r.send(&head);
            r.recv("the request");
            let id = r.id();
            let reply = big_reply(BIG_REPLY_LEN);
            capture.reply(id, &reply);
            r.read_upto(reply.len(), IO_TIMEOUT);
            if !r.run.closed {
                r.credits_until(reply.len() as u64);
            }
        }
    }
    let ended = r.run.closed;
    r.close();
    if !r.saw_disconnect() {
        r.until_notice(if ended || scenario.flow == Flow::Cancel {
            MAYBE
        } else {
            IO_TIMEOUT
        });
    }
    r.run
}

/// A `200` with a body of `len` bytes.
pub fn big_reply(len: usize) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").into_bytes();
    out.extend((0..len).map(|i| b'a' + (i % 26) as u8));
    out
}

/// Whether `path` names a file made from `template`.
pub fn of_template(path: &str, template: &str) -> bool {
    let (normal, names) = normalize_names(path.as_bytes(), template);
    names.len() == 1 && normal == template.as_bytes() && Path::new(path).is_absolute()
}
