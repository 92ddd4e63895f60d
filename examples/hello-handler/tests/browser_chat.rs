//! The WebSocket chat in a real browser: headless Chromium (through
//! chromedriver) opens `/ws-chat.html` in two tabs of the example site,
//! served by a real server with the real `hello-handler`; a message sent
//! from one tab must appear in both, and closing a tab must reach the
//! handler (as a close frame or a disconnect notice) and shrink the room.
//!
//! The server is the test's parameter: Mongrel2 1.12 now, Kennel once its
//! WebSocket support lands (the same test, unchanged). Needs `chromium`,
//! `chromedriver` and `mongrel2` (Debian's `chromium`, `chromium-driver`
//! and `mongrel2-core`; `bash tests/setup.sh` installs them); without them
//! it fails, saying so, rather than passing.

mod served;
mod webdriver;

use std::time::Duration;

use serde_json::Value;
use served::{Site, Start};
use webdriver::{Driver, Session};

/// How long the page, the browser or the handler may take for one step.
/// Loopback and a local browser need well under a second; the machine may
/// be busy.
const WAIT: Duration = Duration::from_secs(20);

/// The page's status line.
const STATUS: &str = "return document.getElementById('status').textContent;";

/// The page's messages, in order.
const MESSAGES: &str =
    "return Array.from(document.querySelectorAll('#log li')).map(li => li.textContent);";

fn wait_connected(session: &Session<'_>, tab: &str) {
    session.wait_for(
        &format!("the WebSocket of {tab} opens"),
        STATUS,
        WAIT,
        |status| status == "connected",
    );
}

fn wait_message(session: &Session<'_>, tab: &str, text: &str) {
    session.wait_for(
        &format!("{text:?} appears in {tab}"),
        MESSAGES,
        WAIT,
        |messages| {
            messages
                .as_array()
                .is_some_and(|m| m.iter().any(|t| t == text))
        },
    );
}

/// Types `text` into the page's input and clicks Send.
fn say(session: &Session<'_>, text: &str) {
    session.type_into(&session.find("#msg"), text);
    session.click(&session.find("#send"));
}

fn chat_in_two_tabs(start: Start) {
    let site = Site::new();
    let mut handler = site.start_handler();
    let _server = start(&site);
    let driver = Driver::start();
    let session = driver.session();
    let page = site.url("/ws-chat.html");

    session.navigate(&page);
    let first = session.window();
    wait_connected(&session, "tab one");
    handler.wait_for_log("joined (1 member)", WAIT);
    let second = session.new_tab();
    session.switch_to(&second);
    session.navigate(&page);
    wait_connected(&session, "tab two");
    handler.wait_for_log("joined (2 members)", WAIT);

    // Sent from tab two, broadcast by the handler to both.
    let hello = "hello from tab two, ☃";
    say(&session, hello);
    wait_message(&session, "tab two", hello);
    session.switch_to(&first);
    wait_message(&session, "tab one", hello);
    handler.wait_for_log(
        &format!("message of {} bytes to 2 members", hello.len()),
        WAIT,
    );

    // Closing tab two reaches the handler: Chromium sends a close frame or
    // just drops the connection (then the server's disconnect notice
    // says so).
    session.switch_to(&second);
    session.close_tab();
    session.switch_to(&first);
    let left = handler.wait_for_log("left:", WAIT);
    assert!(
        left.contains("left: close frame (1 member)")
            || left.contains("left: disconnect notice (1 member)"),
        "{left}"
    );
    eprintln!("closing tab two: {left}");

    // The room is down to tab one, which still works.
    say(&session, "still here");
    wait_message(&session, "tab one", "still here");
    handler.wait_for_log("message of 10 bytes to 1 member", WAIT);
    let messages = session.script(MESSAGES);
    assert_eq!(
        messages,
        Value::from(vec![hello, "still here"]),
        "tab one shows exactly what was said; the handler log:\n{}",
        handler.log()
    );
}

#[test]
fn chat_in_two_tabs_through_mongrel2() {
    chat_in_two_tabs(served::mongrel2);
}

#[test]
fn chat_in_two_tabs_through_kennel() {
    chat_in_two_tabs(served::kennel);
}

/// The page and the route are there whatever the server: the page is a
/// static file, and a plain GET of the WebSocket route is answered by the
/// handler with 426.
fn page_and_route_load(start: Start) {
    let site = Site::new();
    let _handler = site.start_handler();
    let _server = start(&site);
    kennel::tls::install_default_provider();
    let get = |path: &str| {
        let response = reqwest::blocking::Client::builder()
            .timeout(WAIT)
            .build()
            .unwrap()
            .get(site.url(path))
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        (status, response.text().unwrap())
    };
    let (status, page) = get("/ws-chat.html");
    assert_eq!(status, 200);
    assert!(page.contains("new WebSocket(url)"), "{page}");
    let (status, body) = get("/ws/chat");
    assert_eq!(status, 426, "{body}");
}

#[test]
fn page_and_route_load_through_mongrel2() {
    page_and_route_load(served::mongrel2);
}

#[test]
fn page_and_route_load_through_kennel() {
    page_and_route_load(served::kennel);
}
