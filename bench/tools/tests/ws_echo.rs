//! `ws-echo` against a real Kennel and a WebSocket echo handler.

mod common;

use common::{run_ok, run_tool, TestServer, WsHandler, WsMode, WS_ROUTE};

const BIN: &str = env!("CARGO_BIN_EXE_ws-echo");

/// The value of each `key value` line, in order; panics if the keys differ.
fn values(lines: &[String], keys: &[&str]) -> Vec<u64> {
    assert_eq!(lines.len(), keys.len(), "{lines:?}");
    lines
        .iter()
        .zip(keys)
        .map(|(line, key)| {
            line.strip_prefix(&format!("{key} "))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{line:?} is not {key} <n>"))
        })
        .collect()
}

#[test]
fn echoes_on_every_connection_and_reports_rate_and_percentiles() {
    let server = TestServer::start(WS_ROUTE);
    let handler = WsHandler::start(&server, WsMode::Echo);
    let out = run_ok(
        BIN,
        &[
            "--addr",
            &server.addr.to_string(),
            "--conns",
            "8",
            "--secs",
            "1",
            "--payload-bytes",
            "200",
        ],
    );
    let v = values(
        &out,
        &[
            "connected",
            "messages",
            "elapsed_ms",
            "messages_per_sec",
            "p50_us",
            "p90_us",
            "p99_us",
            "p999_us",
            "max_us",
        ],
    );
    let [connected, messages, elapsed_ms, rate, p50, p90, p99, p999, max] = v[..] else {
        unreachable!()
    };
    assert_eq!(connected, 8);
    assert!(messages >= 8, "{messages}");
    assert!((1000..3000).contains(&elapsed_ms), "{elapsed_ms}");
    let expected = messages * 1000 / elapsed_ms;
    assert!(
        rate.abs_diff(expected) <= expected / 50 + 1,
        "{rate} vs {expected}"
    );
    assert!(
        p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max,
        "{v:?}"
    );
    // Each connection's untimed first message, then every timed one.
    let seen = handler.stop();
    assert_eq!(seen.handshakes, 8);
    assert_eq!(seen.messages as u64, 8 + messages);
    server.stop();
}

/// Runs `ws-echo` on `conns` connections against a handler in `mode`:
/// it must fail, print nothing on stdout, and say `expected` on stderr.
fn fails_with(mode: WsMode, conns: &str, expected: &[&str]) {
    let server = TestServer::start(WS_ROUTE);
    let _handler = WsHandler::start(&server, mode);
    let addr = server.addr.to_string();
    let out = run_tool(BIN, &["--addr", &addr, "--conns", conns, "--secs", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for text in expected {
        assert!(stderr.contains(text), "{text:?} not in {stderr}");
    }
    server.stop();
}

#[test]
fn a_refused_upgrade_is_an_error() {
    fails_with(
        WsMode::Refuse,
        "2",
        &[
            "2 of 2 connections failed",
            "the handshake was answered 200, not 101",
        ],
    );
}

#[test]
fn a_wrong_echo_is_an_error() {
    fails_with(
        WsMode::Garble,
        "1",
        &["expected the echo \"ws 0000000000000000"],
    );
}
