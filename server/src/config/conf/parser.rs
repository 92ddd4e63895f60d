//! The `.conf` grammar (m2sh's `parser.y`), parsed by recursive descent
//! into a [`Document`]: the variables, and every value as a node with the
//! position it was written at.
//!
//! Owns: the grammar and the tree it builds. Does not own: what the names
//! mean (`servers`, `Server`, `routes` …: the importer) or when a name is
//! resolved (also the importer; m2sh resolves names only when it loads,
//! so a name may refer to a variable assigned further down).
//!
//! ```text
//! file       := assignment+
//! assignment := NAME '=' value
//! value      := STRING | NUMBER | NAME | CLASS '(' params ')' | '[' list ']' | '{' dict '}'
//! params     := (','? assignment)*
//! list       := (','? value)*
//! dict       := (','? STRING ':' value)*
//! ```
//!
//! So commas are optional, one may come before the first element, and none
//! may come after the last (`[a, b,]` is m2sh's syntax error too). Dict keys
//! must be quoted. A name given twice in one table (variables, a class's
//! parameters, a dict) keeps the last value in the first one's place, as
//! m2sh does; [`Document::repeated`] lists each such repeat.

use super::lexer::{Lexer, Position, SyntaxError, Token, TokenKind};
use super::ternary_tree::TernaryTree;

/// How deeply classes, lists and dicts may nest: 64. The parser recurses
/// once per level, so a limit keeps a hostile file from exhausting the
/// stack; real configs nest four or five levels (`Server(hosts=[Host(
/// routes={...: Dir(...)})])`), and m2sh's own parser stack gives out well
/// before 64.
pub(crate) const MAX_NESTING: usize = 64;

/// An index into [`Document::nodes`]; also a value's identity (m2sh
/// inserts a route target once per object, however many routes use it).
pub(crate) type NodeId = usize;

/// A name bound to a value: a variable, a parameter or a dict entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Binding {
    /// Where the name (or dict key) was written.
    pub pos: Position,
    /// The value.
    pub node: NodeId,
}

/// A value and where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Node<'a> {
    /// Where it starts (a class: its name; a list or dict: the bracket).
    pub pos: Position,
    /// The value.
    pub value: Value<'a>,
}

/// A value as written.
#[derive(Debug, Clone)]
pub(crate) enum Value<'a> {
    /// A quoted string's bytes, unescaped as written.
    Str(&'a [u8]),
    /// ASCII digits.
    Number(&'a [u8]),
    /// A bare name: the variable of that name, looked up when loading.
    Ref(&'a [u8]),
    /// `Name(param=value ...)`.
    Class {
        /// The class name (ASCII letters).
        name: &'a str,
        /// The parameters.
        params: TernaryTree<'a, Binding>,
    },
    /// `[value ...]`.
    List(Vec<NodeId>),
    /// `{"key": value ...}`.
    Dict(TernaryTree<'a, Binding>),
}

impl Value<'_> {
    /// What the value is, for messages: `a string`, `a list`, `Server(...)`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Value::Str(_) => "a string".into(),
            Value::Number(_) => "a number".into(),
            Value::Ref(name) => format!("the name {}", String::from_utf8_lossy(name)),
            Value::Class { name, .. } => format!("{name}(...)"),
            Value::List(_) => "a list".into(),
            Value::Dict(_) => "a dict".into(),
        }
    }
}

/// A name given twice in one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Repeat {
    /// Where the later one was written.
    pub pos: Position,
    /// What kind of name: `variable`, `parameter` or `key`.
    pub what: &'static str,
    /// The name.
    pub name: String,
    /// Where the first one was written.
    pub first: Position,
}

/// A parsed `.conf`.
#[derive(Debug, Clone)]
pub(crate) struct Document<'a> {
    /// Every value, by [`NodeId`].
    pub nodes: Vec<Node<'a>>,
    /// The top-level variables.
    pub vars: TernaryTree<'a, Binding>,
    /// Names given twice, in the order met.
    pub repeated: Vec<Repeat>,
}

impl<'a> Document<'a> {
    /// The node `id`.
    pub(crate) fn node(&self, id: NodeId) -> &Node<'a> {
        &self.nodes[id]
    }
}

/// Parses a whole `.conf`.
pub(crate) fn parse(input: &[u8]) -> Result<Document<'_>, SyntaxError> {
    let mut lexer = Lexer::new(input);
    let peeked = lexer.next_token()?;
    let mut parser = Parser {
        lexer,
        peeked,
        nodes: Vec::new(),
        repeated: Vec::new(),
        depth: 0,
    };
    let mut vars = TernaryTree::default();
    loop {
        let (name, binding) = parser.assignment(Expect::Variable)?;
        parser.bind(&mut vars, name, binding, "variable");
        if parser.peeked.kind == TokenKind::End {
            break;
        }
    }
    Ok(Document {
        nodes: parser.nodes,
        vars,
        repeated: parser.repeated,
    })
}

/// What the parser wants next, for its error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Variable,
    Parameter,
    Value,
    Pair,
}

impl Expect {
    fn describe(self) -> &'static str {
        match self {
            Expect::Variable => "a variable (name = value)",
            Expect::Parameter => "a parameter (name = value)",
            Expect::Value => "a value",
            Expect::Pair => "a \"key\": value pair",
        }
    }

    fn starts(self, kind: TokenKind) -> bool {
        match self {
            Expect::Variable | Expect::Parameter => kind == TokenKind::Name,
            Expect::Pair => kind == TokenKind::Str,
            Expect::Value => matches!(
                kind,
                TokenKind::Str
                    | TokenKind::Number
                    | TokenKind::Name
                    | TokenKind::Class
                    | TokenKind::OpenBracket
                    | TokenKind::OpenBrace
            ),
        }
    }

    /// Why `found` cannot be this, when the reason is not obvious.
    fn hint(self, found: &Token<'_>) -> &'static str {
        match (self, found.kind) {
            (Expect::Variable | Expect::Parameter, TokenKind::Class) => {
                " (a capital letter followed only by letters is a class name, not a name)"
            }
            (Expect::Pair, TokenKind::Name | TokenKind::Number) => " (dict keys must be quoted)",
            _ => "",
        }
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Token<'a>,
    nodes: Vec<Node<'a>>,
    repeated: Vec<Repeat>,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn advance(&mut self) -> Result<Token<'a>, SyntaxError> {
        let next = self.lexer.next_token()?;
        Ok(std::mem::replace(&mut self.peeked, next))
    }

    fn expected(&self, what: &str, hint: &str) -> SyntaxError {
        SyntaxError {
            pos: self.peeked.pos,
            message: format!("expected {what}, found {}{hint}", self.peeked),
        }
    }

    fn push(&mut self, pos: Position, value: Value<'a>) -> NodeId {
        self.nodes.push(Node { pos, value });
        self.nodes.len() - 1
    }

    fn bind(
        &mut self,
        table: &mut TernaryTree<'a, Binding>,
        name: &'a [u8],
        binding: Binding,
        what: &'static str,
    ) {
        if let Some(first) = table.insert(name, binding) {
            self.repeated.push(Repeat {
                pos: binding.pos,
                what,
                name: String::from_utf8_lossy(name).into_owned(),
                first: first.pos,
            });
        }
    }

    /// `NAME = value`.
    fn assignment(&mut self, expect: Expect) -> Result<(&'a [u8], Binding), SyntaxError> {
        if self.peeked.kind != TokenKind::Name {
            return Err(self.expected(expect.describe(), expect.hint(&self.peeked)));
        }
        let name = self.advance()?;
        if self.peeked.kind != TokenKind::Equals {
            let what = format!("'=' after {}", String::from_utf8_lossy(name.text));
            return Err(self.expected(&what, ""));
        }
        self.advance()?;
        let node = self.value()?;
        Ok((
            name.text,
            Binding {
                pos: name.pos,
                node,
            },
        ))
    }

    fn value(&mut self) -> Result<NodeId, SyntaxError> {
        if !Expect::Value.starts(self.peeked.kind) {
            return Err(self.expected(
                "a value (a quoted string, a number, a name, Class(...), [...] or {...})",
                "",
            ));
        }
        let token = self.advance()?;
        let pos = token.pos;
        let simple = match token.kind {
            TokenKind::Str => Some(Value::Str(token.text)),
            TokenKind::Number => Some(Value::Number(token.text)),
            TokenKind::Name => Some(Value::Ref(token.text)),
            _ => None,
        };
        if let Some(value) = simple {
            return Ok(self.push(pos, value));
        }
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(SyntaxError {
                pos,
                message: format!("values nest more than {MAX_NESTING} deep"),
            });
        }
        let value = match token.kind {
            TokenKind::Class => self.class(token)?,
            TokenKind::OpenBracket => self.list(pos)?,
            _ => self.dict(pos)?,
        };
        self.depth -= 1;
        Ok(self.push(pos, value))
    }

    fn class(&mut self, name: Token<'a>) -> Result<Value<'a>, SyntaxError> {
        // The lexer made a class name of ASCII letters only.
        let class = std::str::from_utf8(name.text).unwrap_or_default();
        if self.peeked.kind != TokenKind::OpenParen {
            return Err(self.expected(&format!("'(' after {class}"), ""));
        }
        let open = self.advance()?;
        let mut params = TernaryTree::default();
        let opened = format!("{class}(");
        while self.element_follows(TokenKind::CloseParen, &opened, open.pos, Expect::Parameter)? {
            let (key, binding) = self.assignment(Expect::Parameter)?;
            self.bind(&mut params, key, binding, "parameter");
        }
        Ok(Value::Class {
            name: class,
            params,
        })
    }

    fn list(&mut self, open: Position) -> Result<Value<'a>, SyntaxError> {
        let mut items = Vec::new();
        while self.element_follows(TokenKind::CloseBracket, "[", open, Expect::Value)? {
            items.push(self.value()?);
        }
        Ok(Value::List(items))
    }

    fn dict(&mut self, open: Position) -> Result<Value<'a>, SyntaxError> {
        let mut entries = TernaryTree::default();
        while self.element_follows(TokenKind::CloseBrace, "{", open, Expect::Pair)? {
            let key = self.advance()?;
            if self.peeked.kind != TokenKind::Colon {
                return Err(self.expected("':' after the key", ""));
            }
            self.advance()?;
            let node = self.value()?;
            let binding = Binding { pos: key.pos, node };
            self.bind(&mut entries, key.text, binding, "key");
        }
        Ok(Value::Dict(entries))
    }

    /// Between the elements of a sequence closed by `close`: consumes the
    /// closing token (and says no more elements follow) or an optional
    /// comma, and checks that an element starts next.
    fn element_follows(
        &mut self,
        close: TokenKind,
        opened: &str,
        open: Position,
        element: Expect,
    ) -> Result<bool, SyntaxError> {
        if self.peeked.kind == close {
            self.advance()?;
            return Ok(false);
        }
        let closing = match close {
            TokenKind::CloseParen => ')',
            TokenKind::CloseBracket => ']',
            _ => '}',
        };
        if self.peeked.kind == TokenKind::Comma {
            self.advance()?;
            if !element.starts(self.peeked.kind) {
                let hint = if self.peeked.kind == close {
                    format!(" (m2sh allows no comma before '{closing}')")
                } else {
                    element.hint(&self.peeked).to_string()
                };
                let what = format!("{} after ','", element.describe());
                return Err(self.expected(&what, &hint));
            }
        } else if !element.starts(self.peeked.kind) {
            let what = format!(
                "'{closing}' (to close the {opened} at {open}) or {}",
                element.describe()
            );
            return Err(self.expected(&what, element.hint(&self.peeked)));
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document as text, for comparing trees: values in m2sh's order.
    fn show(doc: &Document<'_>) -> String {
        doc.vars
            .iter()
            .map(|(name, b)| format!("{}={}", String::from_utf8_lossy(name), node(doc, b.node)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn node(doc: &Document<'_>, id: NodeId) -> String {
        let table = |t: &TernaryTree<'_, Binding>, sep: &str| {
            t.iter()
                .map(|(k, b)| format!("{}{sep}{}", String::from_utf8_lossy(k), node(doc, b.node)))
                .collect::<Vec<_>>()
                .join(",")
        };
        match &doc.node(id).value {
            Value::Str(s) => format!("'{}'", String::from_utf8_lossy(s)),
            Value::Number(n) | Value::Ref(n) => String::from_utf8_lossy(n).into_owned(),
            Value::Class { name, params } => format!("{name}({})", table(params, "=")),
            Value::List(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(|&i| node(doc, i))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Value::Dict(entries) => format!("{{{}}}", table(entries, ":")),
        }
    }

    fn parsed(input: &str) -> String {
        match parse(input.as_bytes()) {
            Ok(doc) => show(&doc),
            Err(e) => panic!("{input:?}: {}: {}", e.pos, e.message),
        }
    }

    fn error(input: &str) -> String {
        match parse(input.as_bytes()) {
            Ok(doc) => panic!("{input:?} parsed: {}", show(&doc)),
            Err(e) => format!("{}: {}", e.pos, e.message),
        }
    }

    #[test]
    fn values() {
        assert_eq!(
            parsed("a = 'x' b = 12 c = a d = Dir() e = [] f = {}"),
            "a='x' b=12 c=a d=Dir() e=[] f={}"
        );
        assert_eq!(
            parsed(r#"s = Server(hosts=[Host(routes={"/": Dir(base='b/')})])"#),
            "s=Server(hosts=[Host(routes={/:Dir(base='b/')})])"
        );
    }

    #[test]
    fn commas_are_optional_but_never_trailing() {
        let want = "h=Host(name='x',routes={/a:1,/b:[1,2,3]})";
        for input in [
            "h = Host(name='x', routes={'/a': 1, '/b': [1, 2, 3]})",
            "h = Host(name='x' routes={'/a': 1 '/b': [1 2 3]})",
            "h = Host(, name='x', routes={, '/a': 1, '/b': [, 1, 2 3]})",
            "h=Host(name='x'\n#)\n,routes={'/a':1\n'/b'\n:\n[1,2,3]})",
        ] {
            assert_eq!(parsed(input), want, "{input}");
        }
        assert_eq!(
            error("h = Host(name='x',)"),
            "1:19: expected a parameter (name = value) after ',', found ')' (m2sh allows no comma before ')')"
        );
        assert_eq!(
            error("l = [1, 2,]"),
            "1:11: expected a value after ',', found ']' (m2sh allows no comma before ']')"
        );
        assert_eq!(
            error("d = {'a': 1,}"),
            "1:13: expected a \"key\": value pair after ',', found '}' (m2sh allows no comma before '}')"
        );
        assert_eq!(
            error("l = [1,,2]"),
            "1:8: expected a value after ',', found ','"
        );
    }

    #[test]
    fn both_quotes_and_comments() {
        assert_eq!(
            parsed("# a comment\nd = {\"k\": 'v', 'k2': \"v'2\"} # trailing\n"),
            "d={k:'v',k2:'v'2'}"
        );
        assert_eq!(parsed("a = 1 # no newline at the end"), "a=1");
    }

    #[test]
    fn names_may_refer_forward_and_repeats_keep_the_first_place() {
        let doc =
            parse(b"servers = [main]\nmain = 1\nmain = 2\nd = {'x': 1, 'y': 2, 'x': 3}").unwrap();
        // m2sh's order: the tree's breadth-first walk, not the file's.
        assert_eq!(show(&doc), "d={x:3,y:2} main=2 servers=[main]");
        let repeats: Vec<String> = doc
            .repeated
            .iter()
            .map(|r| format!("{} {} {} {}", r.pos, r.what, r.name, r.first))
            .collect();
        assert_eq!(repeats, ["3:1 variable main 2:1", "4:22 key x 4:6"]);
    }

    #[test]
    fn errors_say_where_and_what() {
        assert_eq!(
            error(""),
            "1:1: expected a variable (name = value), found end of file"
        );
        assert_eq!(
            error("# only a comment\n"),
            "2:1: expected a variable (name = value), found end of file"
        );
        assert_eq!(
            error("main = Server(uuid='x'\n"),
            "2:1: expected ')' (to close the Server( at 1:14) or a parameter (name = value), found end of file"
        );
        assert_eq!(
            error("Main = 1"),
            "1:1: expected a variable (name = value), found class name Main \
             (a capital letter followed only by letters is a class name, not a name)"
        );
        assert_eq!(error("a 1"), "1:3: expected '=' after a, found number 1");
        assert_eq!(
            error("a = Dir"),
            "1:8: expected '(' after Dir, found end of file"
        );
        assert_eq!(
            error("a = {x: 1}"),
            "1:6: expected '}' (to close the { at 1:5) or a \"key\": value pair, found name x (dict keys must be quoted)"
        );
        assert_eq!(
            error("a = {'x' 1}"),
            "1:10: expected ':' after the key, found number 1"
        );
        assert_eq!(
            error("a = )"),
            "1:5: expected a value (a quoted string, a number, a name, Class(...), [...] or {...}), found ')'"
        );
        assert_eq!(
            error("a = [1\n  b = 2]"),
            "2:5: expected ']' (to close the [ at 1:5) or a value, found '='"
        );
        assert_eq!(error("a = 'x\n"), "1:5: string has no closing '");
        assert_eq!(error("a = 1;"), "1:6: unexpected character ';'");
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = |n: usize| format!("a = {}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(deep(MAX_NESTING).as_bytes()).is_ok());
        let e = parse(deep(MAX_NESTING + 1).as_bytes()).unwrap_err();
        assert_eq!(e.message, "values nest more than 64 deep");
        // Far deeper input is refused the same way, without exhausting the
        // stack.
        assert!(parse(deep(100_000).as_bytes()).is_err());
    }

    /// A config using every construct, for the split and prefix tests.
    const EVERYTHING: &str = r#"# every construct
d = Dir(base='static/', index_file="index.html", default_ctype='text/plain', cache_ttl=60)
h = Handler(send_spec='tcp://127.0.0.1:9999' send_ident="id" recv_spec='tcp://127.0.0.1:9998', recv_ident='')
main = Server(uuid="u", hosts=[Host(name="localhost", routes={
    '/': d, "/h/": h, '/p/': Proxy(addr='127.0.0.1', port=8080),
    '/re/(.*\.json)': d})],
  filters=[Filter(name="f.so", settings={"list": [1, "two", [3]], "dict": {"k": h}})])
settings = {"zeromq.threads": 1, 'upload.temp_store': "/tmp/up.XXXXXX"}
servers = [main]
"#;

    #[test]
    fn any_blank_between_tokens_parses_the_same() {
        // Cut the input at every byte; where the cut falls between two
        // tokens (outside a string or comment), putting a newline, a
        // comment or nothing there changes nothing.
        let want = parsed(EVERYTHING);
        let bytes = EVERYTHING.as_bytes();
        let mut cuts = 0;
        for at in 0..=bytes.len() {
            let (before, after) = EVERYTHING.split_at(at);
            if !token_boundary(before) {
                continue;
            }
            cuts += 1;
            for glue in ["\n", " # cut\n", "\t\r\n "] {
                let input = format!("{before}{glue}{after}");
                assert_eq!(parsed(&input), want, "cut at {at} with {glue:?}");
            }
        }
        assert!(cuts > 100, "{cuts}");
    }

    /// Whether `before` ends between tokens: outside any string or
    /// comment, and not inside a word or number.
    fn token_boundary(before: &str) -> bool {
        let mut quote = None;
        let mut comment = false;
        let mut escaped = false;
        for c in before.chars() {
            if comment {
                comment = c != '\n';
            } else if let Some(q) = quote {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            } else if c == '\'' || c == '"' {
                quote = Some(c);
            } else if c == '#' {
                comment = true;
            }
        }
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        quote.is_none() && !comment && !before.ends_with(word)
    }

    #[test]
    fn every_prefix_parses_or_fails_with_a_position_inside_it() {
        let bytes = EVERYTHING.as_bytes();
        for at in 0..bytes.len() {
            let prefix = &bytes[..at];
            if let Err(e) = parse(prefix) {
                let lines = prefix.iter().filter(|&&b| b == b'\n').count() + 1;
                assert!(e.pos.line as usize <= lines, "prefix {at}: {e:?}");
                assert!(!e.message.is_empty());
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = parse(&input);
        }

        #[test]
        fn conf_like_text_never_panics(input in "[a-zA-Z_0-9=(){}\\[\\],:'\" \n#\\\\]{0,120}") {
            let _ = parse(input.as_bytes());
        }
    }
}
