//! `write-floor` end to end: the real binary, real loopback sockets.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_write-floor");

#[test]
fn times_each_round_until_all_clients_have_the_body() {
    let out = Command::new(BIN)
        .args(["--count", "40", "--rounds", "3", "--writer-cpu", "0"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert_eq!(lines[0], "connected 40");
    let rounds: Vec<u64> = lines[1..4]
        .iter()
        .map(|l| l.strip_prefix("elapsed_us ").unwrap().parse().unwrap())
        .collect();
    let median: u64 = lines[4]
        .strip_prefix("median_us ")
        .unwrap()
        .parse()
        .unwrap();
    let mut sorted = rounds.clone();
    sorted.sort_unstable();
    assert_eq!(median, sorted[1]);
}

#[test]
fn bad_arguments_are_refused() {
    let out = Command::new(BIN)
        .args(["--body-bytes", "8"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--body-bytes must be at least 16"));
}
