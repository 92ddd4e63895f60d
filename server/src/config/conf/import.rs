//! What m2sh's loader (`mongrel2/tools/m2sh/src/config_file.c`, with
//! `ast.c`) makes of a parsed `.conf`: the rows of every config table, in
//! m2sh's order and with the ids SQLite gives them in freshly made tables.
//!
//! Owns: the meaning of the names (`servers`, `settings`, `mimetypes`, the
//! classes and their parameters), which values are required, defaults,
//! m2sh's quirks that decide what ends up in the rows, and the precise
//! error or warning for everything else. Does not own: the grammar
//! (`parser`) or the database (`write`). Pure: no I/O.
//!
//! Where m2sh logs an error and loads what it can anyway (a route to an
//! unknown class, a `Server` without a `uuid` stored as NULL, a host list
//! that stops at its first bad host), this is an error here and nothing is
//! loaded: such a file never made a working Mongrel2 site. Where m2sh
//! silently does something surprising, the rows are m2sh's and a warning
//! says what happened:
//!
//! - a name is followed only once: `a = b` then `[a]` gives `b`'s value
//!   only if `b` is not itself a name (inside filter settings, names are
//!   followed to the end);
//! - dicts are walked in m2sh's tree order (see `ternary_tree`), so route
//!   and setting ids follow that order, not the file's;
//! - a route target object used by several routes (through a variable, or
//!   a dict of routes shared by two hosts) is one row;
//! - `cache_ttl` that starts with `0` leaves the column at 0;
//!   `raw_payload` is 1 exactly when its digits start with `1`;
//! - each `mimetypes` entry deletes the default row for its extension and
//!   adds nothing (m2sh sends `DELETE ...; INSERT ...` as one statement and
//!   SQLite runs only the first);
//! - parameters m2sh does not read are ignored.

use std::collections::HashMap;

use kennel_handler::tnetstring;

use super::lexer::{excerpt, Position};
use super::parser::{Binding, Document, NodeId, Value, MAX_NESTING};
use super::ternary_tree::TernaryTree;

/// An error or a warning: where (if it is about one place) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// Where in the file.
    pub pos: Option<Position>,
    /// What is wrong.
    pub message: String,
}

fn problem(pos: Position, message: impl Into<String>) -> Problem {
    Problem {
        pos: Some(pos),
        message: message.into(),
    }
}

/// Text as written in the file (bytes: a `.conf` need not be UTF-8).
pub(crate) type Text<'a> = &'a [u8];

/// A `server` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerRow<'a> {
    pub uuid: Text<'a>,
    pub access_log: Text<'a>,
    pub error_log: Text<'a>,
    pub pid_file: Text<'a>,
    pub control_port: Text<'a>,
    pub chroot: Text<'a>,
    pub default_host: Text<'a>,
    pub name: Text<'a>,
    pub bind_addr: Text<'a>,
    /// Digits, stored with the column's integer affinity.
    pub port: Text<'a>,
    /// Digits, as `port`.
    pub use_ssl: Text<'a>,
}

/// A `host` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostRow<'a> {
    pub server_id: i64,
    pub name: Text<'a>,
    pub matching: Text<'a>,
}

/// A `route` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteRow<'a> {
    pub path: Text<'a>,
    pub host_id: i64,
    pub target_id: i64,
    /// `dir`, `handler` or `proxy`.
    pub target_type: &'static str,
}

/// A `handler` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HandlerRow<'a> {
    pub send_spec: Text<'a>,
    pub send_ident: Text<'a>,
    pub recv_spec: Text<'a>,
    pub recv_ident: Text<'a>,
    pub raw_payload: i64,
    pub protocol: Text<'a>,
}

/// A `directory` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirRow<'a> {
    pub base: Text<'a>,
    pub index_file: Text<'a>,
    pub default_ctype: Text<'a>,
    /// Digits, stored with the column's integer affinity.
    pub cache_ttl: Text<'a>,
}

/// A `proxy` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProxyRow<'a> {
    pub addr: Text<'a>,
    /// Digits, stored with the column's integer affinity.
    pub port: Text<'a>,
}

/// A `filter` or `xrequest` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PluginRow<'a> {
    pub server_id: i64,
    pub name: Text<'a>,
    /// A tnetstring dict, rendered as m2sh renders it.
    pub settings: Vec<u8>,
}

/// Every row a `.conf` gives, each table in id order (ids from 1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rows<'a> {
    pub servers: Vec<ServerRow<'a>>,
    pub hosts: Vec<HostRow<'a>>,
    pub routes: Vec<RouteRow<'a>>,
    pub handlers: Vec<HandlerRow<'a>>,
    pub dirs: Vec<DirRow<'a>>,
    pub proxies: Vec<ProxyRow<'a>>,
    pub filters: Vec<PluginRow<'a>>,
    pub xrequests: Vec<PluginRow<'a>>,
    /// `setting` rows: key, value.
    pub settings: Vec<(Text<'a>, Text<'a>)>,
    /// Extensions whose default `mimetype` row is deleted.
    pub mimetype_deletions: Vec<Text<'a>>,
}

/// The rows and the warnings.
#[derive(Debug, Clone)]
pub(crate) struct Import<'a> {
    pub rows: Rows<'a>,
    pub warnings: Vec<Problem>,
}

/// Turns a parsed `.conf` into rows, as `m2sh load` would.
pub(crate) fn import<'a>(doc: &Document<'a>) -> Result<Import<'a>, Problem> {
    let mut importer = Importer {
        doc,
        rows: Rows::default(),
        targets: HashMap::new(),
        warnings: Vec::new(),
    };
    for repeat in &doc.repeated {
        let also = if repeat.what == "variable" {
            ", everywhere the name is used"
        } else {
            ""
        };
        importer.warn(problem(
            repeat.pos,
            format!(
                "{} {} is given again (first at {}): m2sh uses this later value{also}, in the first one's place",
                repeat.what, repeat.name, repeat.first
            ),
        ));
    }
    importer.servers()?;
    importer.settings()?;
    importer.mimetypes()?;
    Ok(Import {
        rows: importer.rows,
        warnings: importer.warnings,
    })
}

/// A class and its parameters, after finding it.
struct Class<'a, 'd> {
    name: &'a str,
    pos: Position,
    params: &'d TernaryTree<'a, Binding>,
}

struct Importer<'a, 'd> {
    doc: &'d Document<'a>,
    rows: Rows<'a>,
    /// Route targets already inserted: class node → (type, row id).
    targets: HashMap<NodeId, (&'static str, i64)>,
    warnings: Vec<Problem>,
}

const SERVER_PARAMS: &[&str] = &[
    "uuid",
    "access_log",
    "error_log",
    "pid_file",
    "control_port",
    "chroot",
    "default_host",
    "name",
    "bind_addr",
    "port",
    "use_ssl",
    "hosts",
    "filters",
    "xrequests",
];
const HOST_PARAMS: &[&str] = &["name", "matching", "routes"];
const DIR_PARAMS: &[&str] = &["base", "index_file", "default_ctype", "cache_ttl"];
const HANDLER_PARAMS: &[&str] = &[
    "send_spec",
    "send_ident",
    "recv_spec",
    "recv_ident",
    "raw_payload",
    "protocol",
];
const PROXY_PARAMS: &[&str] = &["addr", "port"];
const PLUGIN_PARAMS: &[&str] = &["name", "settings"];

/// Which table a `Filter` or `Xrequest` goes to.
#[derive(Clone, Copy)]
enum Plugin {
    Filter,
    Xrequest,
}

impl<'a, 'd> Importer<'a, 'd> {
    fn warn(&mut self, warning: Problem) {
        // A host shared by two servers is read twice; say things once.
        if !self.warnings.contains(&warning) {
            self.warnings.push(warning);
        }
    }

    fn value(&self, id: NodeId) -> &'d Value<'a> {
        &self.doc.node(id).value
    }

    fn pos(&self, id: NodeId) -> Position {
        self.doc.node(id).pos
    }

    /// m2sh's `Value_resolve`: a name gives its variable's value, once
    /// (that value is not followed further if it is a name too).
    fn resolve(&self, id: NodeId) -> Result<NodeId, Problem> {
        match self.value(id) {
            Value::Ref(name) => self.doc.vars.get(name).map(|b| b.node).ok_or_else(|| {
                problem(
                    self.pos(id),
                    format!("no variable is named {}", String::from_utf8_lossy(name)),
                )
            }),
            _ => Ok(id),
        }
    }

    /// What a value that should be `want` is instead, for messages; a name
    /// left after following one name gets m2sh's rule spelled out.
    fn not_a(&self, id: NodeId, want: &str) -> String {
        let value = self.value(id);
        let rule = if matches!(value, Value::Ref(_)) {
            " (m2sh follows a name only once, and this one names another name)"
        } else {
            ""
        };
        format!("{want}, not {}{rule}", value.describe())
    }

    /// The class at `id` (a name followed once), which must be `want`.
    fn class(&self, id: NodeId, want: &str, context: &str) -> Result<Class<'a, 'd>, Problem> {
        let id = self.resolve(id)?;
        match self.value(id) {
            Value::Class { name, params } if *name == want => Ok(Class {
                name,
                pos: self.pos(id),
                params,
            }),
            _ => Err(problem(
                self.pos(id),
                format!(
                    "{context} must be {}",
                    self.not_a(id, &format!("{want}(...)"))
                ),
            )),
        }
    }

    fn warn_unknown(&mut self, class: &Class<'a, 'd>, known: &[&str]) {
        for (key, binding) in class.params.iter() {
            if !known.iter().any(|k| k.as_bytes() == *key) {
                self.warn(problem(
                    binding.pos,
                    format!(
                        "{} has no parameter {}; m2sh ignores it",
                        class.name,
                        excerpt(key)
                    ),
                ));
            }
        }
    }

    /// Parameter `key` of `class`, followed once, if given.
    fn param(&self, class: &Class<'a, 'd>, key: &str) -> Result<Option<NodeId>, Problem> {
        class
            .params
            .get(key.as_bytes())
            .map(|b| self.resolve(b.node))
            .transpose()
    }

    /// A string or number parameter, if given.
    fn scalar(
        &self,
        class: &Class<'a, 'd>,
        key: &str,
        number: bool,
    ) -> Result<Option<Text<'a>>, Problem> {
        let Some(id) = self.param(class, key)? else {
            return Ok(None);
        };
        match (self.value(id), number) {
            (Value::Str(s), false) | (Value::Number(s), true) => Ok(Some(s)),
            _ => {
                let want = if number { "a number" } else { "a string" };
                Err(problem(
                    self.pos(id),
                    format!("{}'s {key} must be {}", class.name, self.not_a(id, want)),
                ))
            }
        }
    }

    fn string(&self, class: &Class<'a, 'd>, key: &str) -> Result<Option<Text<'a>>, Problem> {
        self.scalar(class, key, false)
    }

    fn number(&self, class: &Class<'a, 'd>, key: &str) -> Result<Option<Text<'a>>, Problem> {
        self.scalar(class, key, true)
    }

    fn missing(class: &Class<'a, 'd>, key: &str, what: &str) -> Problem {
        problem(
            class.pos,
            format!("{}(...) has no {key} ({what})", class.name),
        )
    }

    fn required_string(&self, class: &Class<'a, 'd>, key: &str) -> Result<Text<'a>, Problem> {
        self.string(class, key)?
            .ok_or_else(|| Self::missing(class, key, "a string"))
    }

    fn required_number(&self, class: &Class<'a, 'd>, key: &str) -> Result<Text<'a>, Problem> {
        self.number(class, key)?
            .ok_or_else(|| Self::missing(class, key, "a number"))
    }

    /// A list parameter (followed once): its items, if given.
    fn list(&self, class: &Class<'a, 'd>, key: &str) -> Result<Option<&'d [NodeId]>, Problem> {
        let Some(id) = self.param(class, key)? else {
            return Ok(None);
        };
        match self.value(id) {
            Value::List(items) => Ok(Some(items)),
            _ => Err(problem(
                self.pos(id),
                format!(
                    "{}'s {key} must be {}",
                    class.name,
                    self.not_a(id, "a list [...]")
                ),
            )),
        }
    }

    /// A dict parameter (followed once), if given.
    fn dict(
        &self,
        class: &Class<'a, 'd>,
        key: &str,
    ) -> Result<Option<(NodeId, &'d TernaryTree<'a, Binding>)>, Problem> {
        let Some(id) = self.param(class, key)? else {
            return Ok(None);
        };
        match self.value(id) {
            Value::Dict(entries) => Ok(Some((id, entries))),
            _ => Err(problem(
                self.pos(id),
                format!(
                    "{}'s {key} must be {}",
                    class.name,
                    self.not_a(id, "a dict {...}")
                ),
            )),
        }
    }

    /// A top-level dict variable (followed once), if there is one.
    fn dict_var(&self, name: &str) -> Result<Option<&'d TernaryTree<'a, Binding>>, Problem> {
        let Some(binding) = self.doc.vars.get(name.as_bytes()) else {
            return Ok(None);
        };
        let id = self.resolve(binding.node)?;
        match self.value(id) {
            Value::Dict(entries) => Ok(Some(entries)),
            _ => Err(problem(
                self.pos(id),
                format!("{name} must be {}", self.not_a(id, "a dict {...}")),
            )),
        }
    }

    /// `servers = [...]`: m2sh takes the list as written (a name is not
    /// followed here) and each element followed once.
    fn servers(&mut self) -> Result<(), Problem> {
        let Some(binding) = self.doc.vars.get(b"servers") else {
            return Err(Problem {
                pos: None,
                message: "no servers variable: say which servers to load with servers = [...]"
                    .into(),
            });
        };
        let Value::List(items) = self.value(binding.node) else {
            let rule = if matches!(self.value(binding.node), Value::Ref(_)) {
                " (m2sh does not follow a name here: write the list itself)"
            } else {
                ""
            };
            return Err(problem(
                self.pos(binding.node),
                format!(
                    "servers must be a list [...], not {}{rule}",
                    self.value(binding.node).describe()
                ),
            ));
        };
        if items.is_empty() {
            self.warn(problem(
                self.pos(binding.node),
                "servers is empty: the database gets no server",
            ));
        }
        for &item in items {
            self.server(item)?;
        }
        Ok(())
    }

    fn server(&mut self, id: NodeId) -> Result<(), Problem> {
        let class = self.class(id, "Server", "each of servers")?;
        self.warn_unknown(&class, SERVER_PARAMS);
        let row = ServerRow {
            uuid: self.required_string(&class, "uuid")?,
            access_log: self.required_string(&class, "access_log")?,
            error_log: self.required_string(&class, "error_log")?,
            pid_file: self.required_string(&class, "pid_file")?,
            control_port: self.string(&class, "control_port")?.unwrap_or(b""),
            chroot: self.string(&class, "chroot")?.unwrap_or(b""),
            default_host: self.required_string(&class, "default_host")?,
            name: self.required_string(&class, "name")?,
            bind_addr: self.string(&class, "bind_addr")?.unwrap_or(b"0.0.0.0"),
            port: self.required_number(&class, "port")?,
            use_ssl: self.number(&class, "use_ssl")?.unwrap_or(b"0"),
        };
        let hosts = self
            .list(&class, "hosts")?
            .ok_or_else(|| Self::missing(&class, "hosts", "a list of Host(...)"))?;
        let filters = self.list(&class, "filters")?.unwrap_or_default();
        let xrequests = self.list(&class, "xrequests")?.unwrap_or_default();
        self.rows.servers.push(row);
        let server_id = self.rows.servers.len() as i64;
        for &host in hosts {
            self.host(host, server_id)?;
        }
        for &filter in filters {
            self.plugin(filter, Plugin::Filter, server_id)?;
        }
        for &xrequest in xrequests {
            self.plugin(xrequest, Plugin::Xrequest, server_id)?;
        }
        Ok(())
    }

    fn host(&mut self, id: NodeId, server_id: i64) -> Result<(), Problem> {
        let class = self.class(id, "Host", "each of a Server's hosts")?;
        self.warn_unknown(&class, HOST_PARAMS);
        let name = self.required_string(&class, "name")?;
        let matching = self.string(&class, "matching")?.unwrap_or(name);
        let (_, routes) = self
            .dict(&class, "routes")?
            .ok_or_else(|| Self::missing(&class, "routes", "a dict {\"/path\": target}"))?;
        self.rows.hosts.push(HostRow {
            server_id,
            name,
            matching,
        });
        let host_id = self.rows.hosts.len() as i64;
        for &(path, binding) in routes.iter() {
            let (target_type, target_id) = self.target(path, binding)?;
            self.rows.routes.push(RouteRow {
                path,
                host_id,
                target_id,
                target_type,
            });
        }
        Ok(())
    }

    /// The row a route points at, inserted the first time its object is
    /// met.
    fn target(&mut self, path: Text<'a>, binding: Binding) -> Result<(&'static str, i64), Problem> {
        let id = self.resolve(binding.node)?;
        let route = || format!("route '{}'", excerpt(path));
        let Value::Class { name, .. } = self.value(id) else {
            return Err(problem(
                self.pos(id),
                format!(
                    "{} must point at {}",
                    route(),
                    self.not_a(id, "Dir(...), Handler(...) or Proxy(...)")
                ),
            ));
        };
        if let Some(&known) = self.targets.get(&id) {
            return Ok(known);
        }
        let target_type = match name.to_ascii_lowercase().as_str() {
            "dir" => "dir",
            "handler" => "handler",
            "proxy" => "proxy",
            _ => {
                let message = format!(
                    "{} points at {name}(...), which is not a route target (Dir, Handler or Proxy)",
                    route()
                );
                return Err(problem(self.pos(id), message));
            }
        };
        // m2sh lower-cases the class name for the type, so `DIR(...)` is a
        // Dir too.
        let class = self.class(id, name, "a route target")?;
        let target_id = match target_type {
            "dir" => self.dir(&class)?,
            "handler" => self.handler(&class)?,
            _ => self.proxy(&class)?,
        };
        self.targets.insert(id, (target_type, target_id));
        Ok((target_type, target_id))
    }

    fn dir(&mut self, class: &Class<'a, 'd>) -> Result<i64, Problem> {
        self.warn_unknown(class, DIR_PARAMS);
        let base = self.required_string(class, "base")?;
        if !base.ends_with(b"/") {
            return Err(problem(
                class.pos,
                format!(
                    "{}'s base '{}' must end with / (m2sh refuses it otherwise)",
                    class.name,
                    excerpt(base)
                ),
            ));
        }
        let mut cache_ttl: Text<'a> = b"0";
        if let Some(digits) = self.number(class, "cache_ttl")? {
            if digits[0] != b'0' {
                cache_ttl = digits;
            } else if digits.iter().any(|&d| d != b'0') {
                self.warn(problem(
                    class.pos,
                    format!(
                        "cache_ttl={} is stored as 0: m2sh ignores a cache_ttl that starts with 0",
                        excerpt(digits)
                    ),
                ));
            }
        }
        self.rows.dirs.push(DirRow {
            base,
            index_file: self.required_string(class, "index_file")?,
            default_ctype: self.required_string(class, "default_ctype")?,
            cache_ttl,
        });
        Ok(self.rows.dirs.len() as i64)
    }

    fn handler(&mut self, class: &Class<'a, 'd>) -> Result<i64, Problem> {
        self.warn_unknown(class, HANDLER_PARAMS);
        let mut raw_payload = 0;
        if let Some(digits) = self.number(class, "raw_payload")? {
            raw_payload = i64::from(digits[0] == b'1');
            if digits != b"0" && digits != b"1" {
                self.warn(problem(
                    class.pos,
                    format!(
                        "raw_payload={} is stored as {raw_payload}: m2sh only looks at whether it starts with 1",
                        excerpt(digits)
                    ),
                ));
            }
        }
        self.rows.handlers.push(HandlerRow {
            send_spec: self.required_string(class, "send_spec")?,
            send_ident: self.required_string(class, "send_ident")?,
            recv_spec: self.required_string(class, "recv_spec")?,
            recv_ident: self.required_string(class, "recv_ident")?,
            raw_payload,
            protocol: self.string(class, "protocol")?.unwrap_or(b"json"),
        });
        Ok(self.rows.handlers.len() as i64)
    }

    fn proxy(&mut self, class: &Class<'a, 'd>) -> Result<i64, Problem> {
        self.warn_unknown(class, PROXY_PARAMS);
        self.rows.proxies.push(ProxyRow {
            addr: self.required_string(class, "addr")?,
            port: self.required_number(class, "port")?,
        });
        Ok(self.rows.proxies.len() as i64)
    }

    fn plugin(&mut self, id: NodeId, kind: Plugin, server_id: i64) -> Result<(), Problem> {
        let (want, context) = match kind {
            Plugin::Filter => ("Filter", "each of a Server's filters"),
            Plugin::Xrequest => ("Xrequest", "each of a Server's xrequests"),
        };
        let class = self.class(id, want, context)?;
        self.warn_unknown(&class, PLUGIN_PARAMS);
        let name = self.required_string(&class, "name")?;
        let (settings_id, _) = self
            .dict(&class, "settings")?
            .ok_or_else(|| Self::missing(&class, "settings", "a dict, {} for none"))?;
        let settings = self.tnetstring(settings_id, 0)?.to_vec();
        let row = PluginRow {
            server_id,
            name,
            settings,
        };
        match kind {
            Plugin::Filter => self.rows.filters.push(row),
            Plugin::Xrequest => self.rows.xrequests.push(row),
        }
        Ok(())
    }

    /// A filter's settings as m2sh converts them (`AST_tns_convert_value`):
    /// strings, numbers (as C `strtol` reads them), lists and dicts; names
    /// are followed to the end.
    fn tnetstring(&self, id: NodeId, depth: usize) -> Result<tnetstring::Value<'a>, Problem> {
        // Each level is a container or a name followed: a file can nest
        // MAX_NESTING containers, so twice that is only reached by a name
        // that leads back to itself.
        if depth > 2 * MAX_NESTING {
            return Err(problem(
                self.pos(id),
                "filter settings nest too deep: a name here leads back to itself",
            ));
        }
        Ok(match self.value(id) {
            Value::Str(s) => tnetstring::Value::String(s),
            Value::Number(digits) => tnetstring::Value::Integer(strtol(digits)),
            Value::Ref(_) => return self.tnetstring(self.resolve(id)?, depth + 1),
            Value::List(items) => tnetstring::Value::List(
                items
                    .iter()
                    .map(|&item| self.tnetstring(item, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Dict(entries) => {
                let mut pairs = Vec::with_capacity(entries.len());
                for (key, binding) in entries.iter() {
                    pairs.push((*key, self.tnetstring(binding.node, depth + 1)?));
                }
                tnetstring::Value::Dict(hash_render_order(pairs))
            }
            Value::Class { name, .. } => {
                return Err(problem(
                    self.pos(id),
                    format!("filter settings cannot hold {name}(...): only strings, numbers, lists and dicts"),
                ))
            }
        })
    }

    /// `settings = {"key": value}`: each value a string or a number
    /// (followed once).
    fn settings(&mut self) -> Result<(), Problem> {
        let Some(entries) = self.dict_var("settings")? else {
            return Ok(());
        };
        for &(key, binding) in entries.iter() {
            let value = self.scalar_entry("setting", key, binding.node)?;
            self.rows.settings.push((key, value));
        }
        Ok(())
    }

    /// `mimetypes = {".ext": "type"}`: what m2sh really does with it.
    fn mimetypes(&mut self) -> Result<(), Problem> {
        let Some(entries) = self.dict_var("mimetypes")? else {
            return Ok(());
        };
        for &(ext, binding) in entries.iter() {
            let mimetype = self.scalar_entry("mimetype", ext, binding.node)?;
            self.rows.mimetype_deletions.push(ext);
            self.warn(problem(
                binding.pos,
                format!(
                    "mimetypes entry '{ext}' only deletes the row for {ext} (a default, if \
                     there is one): m2sh 1.12 never inserts '{mimetype}' (it sends DELETE and \
                     INSERT to SQLite as one statement, and only the first runs), and neither \
                     does Kennel, so the database is m2sh's; to add the type, run SQL such as \
                     INSERT INTO mimetype (extension, mimetype) VALUES ('{ext}', '{mimetype}');",
                    ext = excerpt(ext),
                    mimetype = excerpt(mimetype)
                ),
            ));
        }
        Ok(())
    }

    /// A `settings` or `mimetypes` value: m2sh stores the text of a string
    /// or a number.
    fn scalar_entry(&self, what: &str, key: Text<'a>, id: NodeId) -> Result<Text<'a>, Problem> {
        let id = self.resolve(id)?;
        match self.value(id) {
            Value::Str(s) | Value::Number(s) => Ok(s),
            Value::Ref(other) => Err(problem(
                self.pos(id),
                format!(
                    "{what} '{}' names a variable whose value is the name {}: m2sh would store \
                     the text \"{}\"; give the value itself",
                    excerpt(key),
                    excerpt(other),
                    excerpt(other)
                ),
            )),
            _ => Err(problem(
                self.pos(id),
                format!(
                    "{what} '{}' must be {}",
                    excerpt(key),
                    self.not_a(id, "a string or a number")
                ),
            )),
        }
    }
}

/// C's `strtol(digits, NULL, 10)` on ASCII digits: the value, or
/// `i64::MAX` when it is larger.
fn strtol(digits: &[u8]) -> i64 {
    digits
        .iter()
        .try_fold(0i64, |n, &d| {
            n.checked_mul(10)?.checked_add(i64::from(d - b'0'))
        })
        .unwrap_or(i64::MAX)
}

/// The order m2sh renders a tnetstring dict in, given its pairs in the
/// order they were added: the dict is a kazlib hash table
/// (`mongrel2/src/adt/hash.c`, FNV-1a keys, 64 chains doubling when the
/// count reaches twice the chains, each new node at its chain's head),
/// scanned chain by chain and rendered back to front, so the output is
/// that scan reversed.
fn hash_render_order<T>(pairs: Vec<(&[u8], T)>) -> Vec<(&[u8], T)> {
    /// kazlib's `INIT_SIZE`.
    const INITIAL_CHAINS: usize = 64;
    let mut chains: Vec<Vec<usize>> = vec![Vec::new(); INITIAL_CHAINS];
    let hashes: Vec<u32> = pairs.iter().map(|(k, _)| fnv1a(k)).collect();
    for (i, &hash) in hashes.iter().enumerate() {
        if i >= 2 * chains.len() {
            // grow_table: each chain splits on the newly exposed bit, both
            // halves reversed (nodes are moved one by one to the front).
            let old = chains.len();
            let mut grown: Vec<Vec<usize>> = vec![Vec::new(); 2 * old];
            for (c, chain) in chains.iter().enumerate() {
                for &node in chain {
                    let to = if hashes[node] as usize & old != 0 {
                        c + old
                    } else {
                        c
                    };
                    grown[to].insert(0, node);
                }
            }
            chains = grown;
        }
        let chain = hash as usize & (chains.len() - 1);
        chains[chain].insert(0, i);
    }
    let order: Vec<usize> = chains.into_iter().flatten().collect();
    let mut slots: Vec<Option<(&[u8], T)>> = pairs.into_iter().map(Some).collect();
    order
        .into_iter()
        .rev()
        .filter_map(|i| slots[i].take())
        .collect()
}

/// Mongrel2's `bstr_hash_fun`: 32-bit FNV-1a over the key up to its first
/// NUL byte.
fn fnv1a(key: &[u8]) -> u32 {
    key.iter()
        .take_while(|&&b| b != 0)
        .fold(2_166_136_261u32, |acc, &b| {
            (acc ^ u32::from(b)).wrapping_mul(16_777_619)
        })
}

#[cfg(test)]
mod tests {
    use super::super::parser::parse;
    use super::*;

    fn rows(conf: &str) -> (Rows<'_>, Vec<String>) {
        let doc = parse(conf.as_bytes()).expect("parses");
        match import(&doc) {
            Ok(i) => (
                i.rows,
                i.warnings
                    .iter()
                    .map(|w| {
                        format!(
                            "{}: {}",
                            w.pos.map(|p| p.to_string()).unwrap_or_default(),
                            w.message
                        )
                    })
                    .collect(),
            ),
            Err(e) => panic!("{:?}: {}", e.pos, e.message),
        }
    }

    fn error(conf: &str) -> String {
        let doc = parse(conf.as_bytes()).expect("parses");
        match import(&doc) {
            Ok(i) => panic!("imported: {:?}", i.rows),
            Err(e) => match e.pos {
                Some(p) => format!("{p}: {}", e.message),
                None => e.message,
            },
        }
    }

    const SERVER: &str = r#"
main = Server(uuid="u", access_log="/a", error_log="/e", pid_file="/p",
              default_host="localhost", name="main", port=6767, hosts=[host])
"#;

    fn with_server(rest: &str) -> String {
        format!("{rest}{SERVER}servers = [main]\n")
    }

    #[test]
    fn a_shared_target_is_one_row_and_types_are_lower_case() {
        let conf = [
            SERVER,
            r#"
d = Dir(base="s/", index_file="i.html", default_ctype="text/plain")
routes = {"/a": d, "/b": d, "/c": DIR(base="c/", index_file="i", default_ctype="t"),
          "/h": Handler(send_spec="tcp://1", send_ident="x", recv_spec="tcp://2", recv_ident="")}
host = Host(name="localhost", routes=routes)
other = Server(uuid="v", access_log="/a", error_log="/e", pid_file="/p",
               default_host="localhost", name="other", port=6768, hosts=[host, Host(name="two", matching="(.+)", routes=routes)])
servers = [main]
servers = [main, other]
"#,
        ]
        .concat();
        let (rows, warnings) = rows(&conf);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("variable servers is given again")),
            "{warnings:?}"
        );
        assert_eq!(rows.servers.len(), 2);
        assert_eq!(rows.dirs.len(), 2, "d once, DIR once");
        assert_eq!(
            rows.handlers.len(),
            1,
            "the inline Handler in the shared dict once"
        );
        let hosts: Vec<_> = rows
            .hosts
            .iter()
            .map(|h| (h.server_id, h.name, h.matching))
            .collect();
        assert_eq!(
            hosts,
            [
                (1, &b"localhost"[..], &b"localhost"[..]),
                (2, b"localhost", b"localhost"),
                (2, b"two", b"(.+)")
            ]
        );
        let routes: Vec<_> = rows
            .routes
            .iter()
            .map(|r| {
                (
                    r.host_id,
                    String::from_utf8_lossy(r.path).into_owned(),
                    r.target_type,
                    r.target_id,
                )
            })
            .collect();
        let per_host = |h| {
            vec![
                (h, "/a".to_string(), "dir", 1),
                (h, "/b".into(), "dir", 1),
                (h, "/c".into(), "dir", 2),
                (h, "/h".into(), "handler", 1),
            ]
        };
        assert_eq!(routes, [per_host(1), per_host(2), per_host(3)].concat());
    }

    #[test]
    fn defaults_and_m2sh_digit_rules() {
        let conf = with_server(
            r#"
host = Host(name="localhost", routes={
  "/a": Dir(base="a/", index_file="i", default_ctype="t", cache_ttl=010),
  "/b": Dir(base="b/", index_file="i", default_ctype="t", cache_ttl=60),
  "/c": Dir(base="c/", index_file="i", default_ctype="t"),
  "/h": Handler(send_spec="s", send_ident="i", recv_spec="r", recv_ident="", raw_payload=10, protocol="tnetstring"),
  "/p": Proxy(addr="127.0.0.1", port=0080)})
"#,
        );
        let (rows, warnings) = rows(&conf);
        let ttls: Vec<&[u8]> = rows.dirs.iter().map(|d| d.cache_ttl).collect();
        assert_eq!(ttls, [&b"0"[..], b"60", b"0"]);
        assert_eq!(rows.handlers[0].raw_payload, 1);
        assert_eq!(rows.handlers[0].protocol, b"tnetstring");
        assert_eq!(rows.proxies[0].port, b"0080");
        let s = &rows.servers[0];
        assert_eq!(
            (s.bind_addr, s.chroot, s.control_port, s.use_ssl),
            (&b"0.0.0.0"[..], &b""[..], &b""[..], &b"0"[..])
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("cache_ttl=010 is stored as 0")),
            "{warnings:?}"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("raw_payload=10 is stored as 1")),
            "{warnings:?}"
        );
    }

    #[test]
    fn settings_mimetypes_and_unknown_parameters() {
        let conf = with_server(
            r#"
host = Host(name="localhost", routes={"/": Proxy(addr="a", port=1, weight=3)})
threads = 2
settings = {"zeromq.threads": threads, "upload.temp_store": "/tmp/x.XXXXXX"}
mimetypes = {".ttf": "application/x-font-ttf"}
"#,
        );
        let (rows, warnings) = rows(&conf);
        let settings: Vec<_> = rows.settings.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(
            settings,
            [
                (&b"zeromq.threads"[..], &b"2"[..]),
                (b"upload.temp_store", b"/tmp/x.XXXXXX")
            ]
        );
        assert_eq!(rows.mimetype_deletions, [&b".ttf"[..]]);
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("2:68: Proxy has no parameter weight")),
            "{warnings:?}"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("mimetypes entry '.ttf' only deletes the row for .ttf")),
            "{warnings:?}"
        );
    }

    #[test]
    fn filter_settings_render_as_m2sh_renders_them() {
        // Both outputs are m2sh 1.12.2's, from Mongrel2's
        // examples/configs/filters.conf and a ten-key dict.
        let conf = String::from(
            r#"
null = Filter(name="/usr/local/lib/mongrel2/filters/null.so", settings={
        "extensions": ["*.html", "*.txt"],
        "min_size": 1000
        })
ten = Xrequest(name="x", settings={"k0": 0, "k1": 1, "k2": 2, "k3": 3, "k4": 4, "k5": 5, "k6": 6, "k7": 7, "k8": 8, "k9": 9})
host = Host(name="localhost", routes={"/": Proxy(addr="a", port=1)})
main = Server(uuid="u", access_log="/a", error_log="/e", pid_file="/p",
              default_host="localhost", name="main", port=6767, hosts=[host], filters=[null], xrequests=[ten])
servers = [main]
"#,
        );
        let (rows, _) = rows(&conf);
        assert_eq!(
            String::from_utf8_lossy(&rows.filters[0].settings),
            "53:8:min_size,4:1000#10:extensions,17:6:*.html,5:*.txt,]}"
        );
        assert_eq!(
            String::from_utf8_lossy(&rows.xrequests[0].settings),
            "90:2:k4,1:4#2:k0,1:0#2:k9,1:9#2:k7,1:7#2:k3,1:3#2:k8,1:8#2:k6,1:6#2:k5,1:5#2:k2,1:2#2:k1,1:1#}"
        );
    }

    #[test]
    fn strtol_saturates() {
        assert_eq!(strtol(b"0"), 0);
        assert_eq!(strtol(b"0042"), 42);
        assert_eq!(strtol(b"9223372036854775807"), i64::MAX);
        assert_eq!(strtol(b"99999999999999999999999"), i64::MAX);
    }

    #[test]
    fn the_hash_order_survives_growing() {
        // Past 128 keys the table grows; every key still comes out once.
        let keys: Vec<String> = (0..300).map(|i| format!("key{i}")).collect();
        let pairs: Vec<(&[u8], usize)> = keys.iter().map(|k| k.as_bytes()).zip(0..).collect();
        let out = hash_render_order(pairs);
        assert_eq!(out.len(), 300);
        let mut seen: Vec<usize> = out.iter().map(|(_, v)| *v).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..300).collect::<Vec<_>>());
    }

    #[test]
    fn precise_errors() {
        let cases = [
            ("a = 1", "no servers variable: say which servers to load with servers = [...]"),
            ("l = [] servers = l", "1:18: servers must be a list [...], not the name l (m2sh does not follow a name here: write the list itself)"),
            ("servers = [main]", "1:12: no variable is named main"),
            ("servers = [Host(name='x')]", "1:12: each of servers must be Server(...), not Host(...)"),
            (
                "main = Server(access_log='a', error_log='e', pid_file='p', default_host='h', name='n', port=1, hosts=[])\nservers = [main]",
                "1:8: Server(...) has no uuid (a string)",
            ),
            (
                "main = Server(uuid=1, access_log='a', error_log='e', pid_file='p', default_host='h', name='n', port=1, hosts=[])\nservers = [main]",
                "1:20: Server's uuid must be a string, not a number",
            ),
            (
                "main = Server(uuid='u', access_log='a', error_log='e', pid_file='p', default_host='h', name='n', port='80', hosts=[])\nservers = [main]",
                "1:103: Server's port must be a number, not a string",
            ),
            (
                "main = Server(uuid='u', access_log='a', error_log='e', pid_file='p', default_host='h', name='n', port=80)\nservers = [main]",
                "1:8: Server(...) has no hosts (a list of Host(...))",
            ),
        ];
        for (conf, want) in cases {
            assert_eq!(error(conf), want, "{conf}");
        }
        let host_cases = [
            ("host = Host(routes={})", "2:8: Host(...) has no name (a string)"),
            ("host = Host(name='h')", "2:8: Host(...) has no routes (a dict {\"/path\": target})"),
            ("host = Host(name='h', routes={'/': Frob()})", "2:36: route '/' points at Frob(...), which is not a route target (Dir, Handler or Proxy)"),
            ("host = Host(name='h', routes={'/': 'x'})", "2:36: route '/' must point at Dir(...), Handler(...) or Proxy(...), not a string"),
            ("a = b\nb = Proxy(addr='x', port=1)\nhost = Host(name='h', routes={'/': a})", "2:5: route '/' must point at Dir(...), Handler(...) or Proxy(...), not the name b (m2sh follows a name only once, and this one names another name)"),
            ("host = Host(name='h', routes={'/': Dir(base='nodash', index_file='i', default_ctype='t')})", "2:36: Dir's base 'nodash' must end with / (m2sh refuses it otherwise)"),
            ("host = Host(name='h', routes={'/': Handler(send_spec='s', send_ident='i', recv_spec='r')})", "2:36: Handler(...) has no recv_ident (a string)"),
            ("host = Host(name='h', routes={'/': Proxy(addr='a')})", "2:36: Proxy(...) has no port (a number)"),
            ("host = 'h'", "2:8: each of a Server's hosts must be Host(...), not a string"),
            ("host = Host(name='h', routes={})\nsettings = {'a': [1]}", "3:18: setting 'a' must be a string or a number, not a list"),
            ("host = Host(name='h', routes={})\nsettings = []", "3:12: settings must be a dict {...}, not a list"),
            ("host = Host(name='h', routes={})\na = b\nb = 'x'\nsettings = {'k': a}", "3:5: setting 'k' names a variable whose value is the name b: m2sh would store the text \"b\"; give the value itself"),
            ("host = Host(name='h', routes={})\nmimetypes = {'.x': Dir()}", "3:20: mimetype '.x' must be a string or a number, not Dir(...)"),
        ];
        let mut wrong = Vec::new();
        for (conf, want) in host_cases {
            let got = error(&format!("\n{conf}{SERVER}servers = [main]"));
            if got != want {
                wrong.push(format!("{conf}\n  got  {got}\n  want {want}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        let plugin = |filters: &str| {
            format!(
                "host = Host(name='h', routes={{}})\nmain = Server(uuid='u', access_log='a', error_log='e', pid_file='p', default_host='h', name='n', port=1, hosts=[host], filters=[{filters}])\nservers = [main]"
            )
        };
        assert_eq!(
            error(&plugin("Xrequest(name='x', settings={})")),
            "2:129: each of a Server's filters must be Filter(...), not Xrequest(...)"
        );
        assert_eq!(
            error(&plugin("Filter(name='x')")),
            "2:129: Filter(...) has no settings (a dict, {} for none)"
        );
        assert_eq!(
            error(&plugin("Filter(name='x', settings={'a': Dir()})")),
            "2:161: filter settings cannot hold Dir(...): only strings, numbers, lists and dicts"
        );
        assert_eq!(
            error(&format!(
                "loop = [loop]\n{}",
                plugin("Filter(name='x', settings={'a': loop})")
            )),
            "1:9: filter settings nest too deep: a name here leads back to itself"
        );
    }
}
