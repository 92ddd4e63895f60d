//! `broadcast` against a real Kennel.

mod common;

use common::{lines, run_ok, run_tool, TestServer};

const BIN: &str = env!("CARGO_BIN_EXE_broadcast");

/// 50 clients, 16 ids per reply frame. The server accepts at most 16 ids
/// per frame here, so a frame the tool failed to split would be dropped
/// whole and the round would time out.
#[test]
fn times_each_round_until_all_50_clients_have_the_body() {
    let server = TestServer::start(
        "INSERT INTO setting (key, value) VALUES ('limits.handler_targets', '16');",
    );
    let lines = run_ok(
        BIN,
        &[
            "--addr",
            &server.addr.to_string(),
            "--count",
            "50",
            "--path",
            "/bench/listen",
            "--send-spec",
            &server.send_spec,
            "--recv-spec",
            &server.recv_spec,
            "--batch",
            "16",
            "--rounds",
            "3",
            "--timeout-secs",
            "4",
        ],
    );
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(lines[0], "connected 50");
    let mut rounds: Vec<u64> = lines[1..4]
        .iter()
        .map(|l| {
            l.strip_prefix("elapsed_us ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{l:?}"))
        })
        .collect();
    rounds.sort_unstable();
    assert_eq!(lines[4], format!("median_us {}", rounds[1]));
    assert!(
        rounds.iter().all(|&us| us > 0 && us < 4_000_000),
        "{rounds:?}"
    );
    server.stop();
}

/// A batch larger than the server accepts: every frame is dropped, so the
/// round times out and the tool says how far it got.
#[test]
fn a_round_that_never_completes_is_an_error() {
    let server = TestServer::start(
        "INSERT INTO setting (key, value) VALUES ('limits.handler_targets', '4');",
    );
    let out = run_tool(
        BIN,
        &[
            "--addr",
            &server.addr.to_string(),
            "--count",
            "10",
            "--path",
            "/bench/listen",
            "--send-spec",
            &server.send_spec,
            "--recv-spec",
            &server.recv_spec,
            "--batch",
            "10",
            "--rounds",
            "1",
            "--timeout-secs",
            "1",
        ],
    );
    assert!(!out.status.success());
    assert_eq!(lines(&out.stdout), ["connected 10"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("round 0: 0 of 10 clients had the body"),
        "{stderr}"
    );
    server.stop();
}
