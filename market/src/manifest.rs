//! Deployment manifests: YAML in the shape of Akash SDL v2, plus `runtime` (Cairn's field).
//!
//! A manifest is parsed into a positioned tree ([`crate::yaml`]), checked field by field
//! (every problem is reported with its line and field path, all at once), and normalized into
//! a [`Manifest`]. The hash that goes on chain is BLAKE3 over the canonical JSON of that
//! normalized form, so a tenant and a provider agree on it however the YAML was formatted.
//! A feature of the SDL that Cairn does not implement is an error `not supported: <field>`:
//! ignoring it silently would run something other than what the tenant wrote.

use crate::yaml::{self, Node, Spanned};
use cairn_types::{Amount, BoundedString, Hash, Resources};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Limits that make a resource request absurd rather than merely large.
pub const MAX_CPU_MILLICORES: u64 = 1_024_000;
pub const MAX_MEMORY_BYTES: u64 = 16 << 40;
pub const MAX_STORAGE_BYTES: u64 = 1 << 50;
pub const MAX_GPUS: u64 = 16;
/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;

/// How the workload runs on the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeKind {
    /// A container through the host's Docker Engine.
    Container,
    /// A command in a bubblewrap sandbox on the host's read-only root.
    Process,
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Container => "container",
            Self::Process => "process",
        })
    }
}

/// A port the workload listens on and whether the ingress routes to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expose {
    /// The port the workload listens on.
    pub port: u16,
    /// The port it is known as from outside (`as`, default `port`).
    pub as_port: u16,
    /// Reachable through the provider's ingress (`to: - global: true`).
    pub global: bool,
}

/// A normalized, validated manifest: what the provider runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: String,
    pub service: String,
    pub runtime: RuntimeKind,
    pub image: Option<String>,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub expose: Vec<Expose>,
    pub profile: String,
    pub placement: String,
    pub cpu_millicores: u64,
    pub memory_bytes: u64,
    pub storage_bytes: u64,
    pub gpu_count: u32,
    pub gpu_vendor: String,
    pub gpu_model: String,
    pub min_vram_mib: u64,
    /// Most the tenant pays per block (the placement's pricing for the profile).
    pub max_price_per_block: Amount,
}

impl Manifest {
    /// Canonical bytes: JSON of the normalized form (fixed field order, sorted env).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The hash that goes in the order.
    pub fn hash(&self) -> Hash {
        Hash::domain("cairn.manifest.v1", &[&self.canonical_bytes()])
    }

    /// What the order asks for on chain.
    pub fn resources(&self) -> Resources {
        Resources {
            cpu_millicores: self.cpu_millicores,
            memory_bytes: self.memory_bytes,
            storage_bytes: self.storage_bytes,
            gpu_count: self.gpu_count,
            gpu_vendor: BoundedString::new(&self.gpu_vendor).unwrap_or_default(),
            gpu_model: BoundedString::new(&self.gpu_model).unwrap_or_default(),
            min_vram_mib: self.min_vram_mib,
        }
    }

    /// The port the ingress forwards to: the first globally exposed one.
    pub fn ingress_port(&self) -> Option<u16> {
        self.expose.iter().find(|e| e.global).map(|e| e.port)
    }
}

/// One problem in a manifest, with where it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    /// Dotted path of the field, e.g. `profiles.compute.web.resources.cpu.units`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}: {}",
            self.line, self.column, self.field, self.message
        )
    }
}

/// Why a manifest was refused: every problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid manifest: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ManifestError {
    pub problems: Vec<Problem>,
}

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn at(&mut self, node: &Spanned, field: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            line: node.line,
            column: node.column,
            field: field.to_string(),
            message: message.into(),
        });
    }

    fn unsupported(&mut self, node: &Spanned, field: &str) {
        self.at(node, field, format!("not supported: {field}"));
    }

    /// The entries of a mapping; a problem (and none) for anything else.
    fn map<'a>(&mut self, node: &'a Spanned, field: &str) -> &'a [(Spanned, Spanned)] {
        match &node.node {
            Node::Map(entries) => entries,
            _ => {
                self.at(
                    node,
                    field,
                    format!("must be a mapping, not {}", node.kind()),
                );
                &[]
            }
        }
    }

    fn seq<'a>(&mut self, node: &'a Spanned, field: &str) -> &'a [Spanned] {
        match &node.node {
            Node::Seq(items) => items,
            _ => {
                self.at(node, field, format!("must be a list, not {}", node.kind()));
                &[]
            }
        }
    }

    fn string(&mut self, node: &Spanned, field: &str) -> Option<String> {
        match node.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.at(
                    node,
                    field,
                    format!("must be a string, not {}", node.kind()),
                );
                None
            }
        }
    }

    /// A list of strings, or one string (Akash accepts both for `command`/`args`).
    fn strings(&mut self, node: &Spanned, field: &str) -> Vec<String> {
        if let Some(s) = node.as_str() {
            return vec![s.to_string()];
        }
        let items = self.seq(node, field);
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.string(item, &format!("{field}[{i}]")))
            .collect()
    }

    /// Warns about every key not in `known`; `unsupported` keys get `not supported`.
    fn keys(
        &mut self,
        entries: &[(Spanned, Spanned)],
        field: &str,
        known: &[&str],
        unsupported: &[&str],
    ) {
        for (key, _) in entries {
            let name = key.as_str().unwrap_or("?");
            let path = join(field, name);
            if unsupported.contains(&name) {
                self.unsupported(key, &path);
            } else if !known.contains(&name) {
                self.at(key, &path, "unknown field");
            }
        }
    }
}

fn join(field: &str, name: &str) -> String {
    if field.is_empty() {
        name.to_string()
    } else {
        format!("{field}.{name}")
    }
}

fn get<'a>(entries: &'a [(Spanned, Spanned)], name: &str) -> Option<&'a Spanned> {
    entries
        .iter()
        .find(|(k, _)| k.as_str() == Some(name))
        .map(|(_, v)| v)
}

/// A decimal like `0.5`, `2` or `1.25` times `scale`, without floats; `None` if malformed,
/// negative or overflowing.
fn decimal_scaled(text: &str, scale: u64) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    if frac.len() > 18 {
        return None;
    }
    let f: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let den = 10u128.pow(u32::try_from(frac.len()).ok()?);
    // Rounded down: a fraction finer than one unit of `scale` adds nothing.
    let part = u64::try_from(f * u128::from(scale) / den).ok()?;
    let value = whole.checked_mul(scale)?.checked_add(part)?;
    Some(value)
}

/// CPU units: `0.5`, `2`, or `500m`.
fn cpu_millicores(text: &str) -> Option<u64> {
    match text.strip_suffix('m') {
        Some(milli) => decimal_scaled(milli, 1),
        None => decimal_scaled(text, 1_000),
    }
}

/// A size: `512Mi`, `1Gi`, `1G`, `100k`, or plain bytes.
pub fn size_bytes(text: &str) -> Option<u64> {
    const UNITS: &[(&str, u64)] = &[
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("k", 1_000),
        ("K", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("P", 1_000_000_000_000_000),
    ];
    let text = text.trim();
    for (suffix, scale) in UNITS {
        if let Some(number) = text.strip_suffix(suffix) {
            return decimal_scaled(number, *scale);
        }
    }
    decimal_scaled(text, 1)
}

/// Parses and validates a manifest.
pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
    let refuse = |line, column, field: &str, message: String| ManifestError {
        problems: vec![Problem {
            line,
            column,
            field: field.to_string(),
            message,
        }],
    };
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(refuse(
            1,
            1,
            "",
            format!("manifest larger than {MAX_MANIFEST_BYTES} bytes"),
        ));
    }
    let root = yaml::parse(text).map_err(|e| {
        refuse(
            e.line,
            e.column,
            "(yaml)",
            format!("malformed YAML: {}", e.message),
        )
    })?;
    let mut c = Checker {
        problems: Vec::new(),
    };
    let manifest = check(&mut c, &root);
    match manifest {
        Some(m) if c.problems.is_empty() => Ok(m),
        _ => {
            if c.problems.is_empty() {
                c.at(&root, "", "incomplete manifest");
            }
            Err(ManifestError {
                problems: c.problems,
            })
        }
    }
}

struct ServiceSpec {
    name: String,
    runtime: RuntimeKind,
    image: Option<String>,
    command: Vec<String>,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    expose: Vec<Expose>,
}

fn check(c: &mut Checker, root: &Spanned) -> Option<Manifest> {
    let top = c.map(root, "(document)");
    c.keys(
        top,
        "",
        &["version", "services", "profiles", "deployment"],
        &["endpoints", "include"],
    );
    let version = match get(top, "version") {
        Some(v) => {
            let s = c.string(v, "version");
            if let Some(s) = &s
                && s != "2.0"
                && s != "2.1"
            {
                c.at(
                    v,
                    "version",
                    format!("{s:?}: only SDL versions 2.0 and 2.1 are supported"),
                );
            }
            s
        }
        None => {
            c.at(root, "version", "missing (e.g. version: \"2.0\")");
            None
        }
    };
    let service = check_service(c, root, top);
    let (profile, resources) = check_profiles(c, root, top, service.as_ref());
    let deployment = check_deployment(c, root, top, service.as_ref(), profile.as_deref());
    let (placement, price) = deployment?;
    let service = service?;
    let resources = resources?;
    let price = check_pricing(c, top, &placement, profile.as_deref()?, price)?;
    Some(Manifest {
        version: version?,
        service: service.name,
        runtime: service.runtime,
        image: service.image,
        command: service.command,
        args: service.args,
        env: service.env,
        expose: service.expose,
        profile: profile?,
        placement,
        cpu_millicores: resources.cpu_millicores,
        memory_bytes: resources.memory_bytes,
        storage_bytes: resources.storage_bytes,
        gpu_count: resources.gpu_count,
        gpu_vendor: resources.gpu_vendor.as_str().to_string(),
        gpu_model: resources.gpu_model.as_str().to_string(),
        min_vram_mib: resources.min_vram_mib,
        max_price_per_block: price,
    })
}

fn check_service(
    c: &mut Checker,
    root: &Spanned,
    top: &[(Spanned, Spanned)],
) -> Option<ServiceSpec> {
    let Some(services) = get(top, "services") else {
        c.at(root, "services", "missing");
        return None;
    };
    let entries = c.map(services, "services");
    if entries.len() > 1 {
        c.at(
            &entries[1].0,
            "services",
            "not supported: more than one service in a deployment",
        );
    }
    let (key, body) = entries.first().or_else(|| {
        c.at(services, "services", "needs one service");
        None
    })?;
    let name = c.string(key, "services")?;
    let field = format!("services.{name}");
    let s = c.map(body, &field);
    c.keys(
        s,
        &field,
        &["image", "command", "args", "env", "expose", "runtime"],
        &["depends_on", "params", "credentials"],
    );
    let runtime_node = get(s, "runtime");
    let image = get(s, "image").and_then(|n| c.string(n, &join(&field, "image")));
    let runtime = match runtime_node {
        Some(n) => match n.as_str() {
            Some("container") => RuntimeKind::Container,
            Some("process") => RuntimeKind::Process,
            Some(other) => {
                c.at(
                    n,
                    &join(&field, "runtime"),
                    format!("unknown runtime {other:?}: use container or process"),
                );
                return None;
            }
            None => {
                c.at(n, &join(&field, "runtime"), "must be container or process");
                return None;
            }
        },
        None => RuntimeKind::Container,
    };
    let command = get(s, "command")
        .map(|n| c.strings(n, &join(&field, "command")))
        .unwrap_or_default();
    let args = get(s, "args")
        .map(|n| c.strings(n, &join(&field, "args")))
        .unwrap_or_default();
    match runtime {
        RuntimeKind::Container if image.is_none() => c.at(
            body,
            &join(&field, "image"),
            "missing: the container runtime needs an image",
        ),
        RuntimeKind::Process if image.is_some() => c.at(
            get(s, "image").unwrap_or(body),
            &join(&field, "image"),
            "the process runtime runs a host command: remove image or use runtime: container",
        ),
        RuntimeKind::Process if command.is_empty() => c.at(
            body,
            &join(&field, "command"),
            "missing: the process runtime needs a command",
        ),
        _ => {}
    }
    if let Some(first) = command.first()
        && runtime == RuntimeKind::Process
        && !first.starts_with('/')
    {
        c.at(
            get(s, "command").unwrap_or(body),
            &join(&field, "command"),
            format!("{first:?}: the process runtime needs an absolute path"),
        );
    }
    let mut env = BTreeMap::new();
    if let Some(n) = get(s, "env") {
        for (i, item) in c.seq(n, &join(&field, "env")).iter().enumerate() {
            let path = format!("{field}.env[{i}]");
            if let Some(text) = c.string(item, &path) {
                match text.split_once('=') {
                    Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => {
                        env.insert(k.to_string(), v.to_string());
                    }
                    _ => c.at(item, &path, "must be NAME=value"),
                }
            }
        }
    }
    let mut expose = Vec::new();
    if let Some(n) = get(s, "expose") {
        for (i, item) in c.seq(n, &join(&field, "expose")).iter().enumerate() {
            let path = format!("{field}.expose[{i}]");
            if let Some(e) = check_expose(c, item, &path) {
                expose.push(e);
            }
        }
    }
    Some(ServiceSpec {
        name,
        runtime,
        image,
        command,
        args,
        env,
        expose,
    })
}

fn port(c: &mut Checker, node: &Spanned, field: &str) -> Option<u16> {
    match node.as_str().and_then(|s| s.parse::<u16>().ok()) {
        Some(p) if p > 0 => Some(p),
        _ => {
            c.at(
                node,
                field,
                format!(
                    "{:?}: must be a port 1..=65535",
                    node.as_str().unwrap_or("?")
                ),
            );
            None
        }
    }
}

fn check_expose(c: &mut Checker, item: &Spanned, path: &str) -> Option<Expose> {
    let e = c.map(item, path);
    c.keys(
        e,
        path,
        &["port", "as", "to", "proto"],
        &["accept", "http_options", "ip"],
    );
    let p = match get(e, "port") {
        Some(n) => port(c, n, &join(path, "port")),
        None => {
            c.at(item, &join(path, "port"), "missing");
            None
        }
    };
    let as_port = get(e, "as").and_then(|n| port(c, n, &join(path, "as")));
    if let Some(proto) = get(e, "proto") {
        match proto.as_str() {
            Some("tcp") | Some("TCP") | Some("http") => {}
            _ => c.at(proto, &join(path, "proto"), "not supported: only tcp"),
        }
    }
    let mut global = false;
    if let Some(to) = get(e, "to") {
        for (j, target) in c.seq(to, &join(path, "to")).iter().enumerate() {
            let tpath = format!("{path}.to[{j}]");
            let t = c.map(target, &tpath);
            c.keys(t, &tpath, &["global"], &["service", "ip"]);
            if let Some(g) = get(t, "global") {
                match g.as_str() {
                    Some("true") => global = true,
                    Some("false") => {}
                    _ => c.at(g, &join(&tpath, "global"), "must be true or false"),
                }
            }
        }
    }
    let p = p?;
    Some(Expose {
        port: p,
        as_port: as_port.unwrap_or(p),
        global,
    })
}

fn check_profiles(
    c: &mut Checker,
    root: &Spanned,
    top: &[(Spanned, Spanned)],
    service: Option<&ServiceSpec>,
) -> (Option<String>, Option<Resources>) {
    let Some(profiles) = get(top, "profiles") else {
        c.at(root, "profiles", "missing");
        return (None, None);
    };
    let p = c.map(profiles, "profiles");
    c.keys(p, "profiles", &["compute", "placement"], &[]);
    if get(p, "placement").is_none() {
        c.at(profiles, "profiles.placement", "missing");
    }
    let Some(compute) = get(p, "compute") else {
        c.at(profiles, "profiles.compute", "missing");
        return (None, None);
    };
    let entries = c.map(compute, "profiles.compute");
    if entries.len() > 1 {
        c.at(
            &entries[1].0,
            "profiles.compute",
            "not supported: more than one compute profile",
        );
    }
    let Some((key, body)) = entries.first() else {
        c.at(compute, "profiles.compute", "needs one profile");
        return (None, None);
    };
    let name = c.string(key, "profiles.compute");
    let field = format!("profiles.compute.{}", name.as_deref().unwrap_or("?"));
    let _ = service;
    let b = c.map(body, &field);
    c.keys(b, &field, &["resources"], &[]);
    let Some(res) = get(b, "resources") else {
        c.at(body, &join(&field, "resources"), "missing");
        return (name, None);
    };
    let field = join(&field, "resources");
    let r = c.map(res, &field);
    c.keys(r, &field, &["cpu", "memory", "storage", "gpu"], &[]);
    let units = |c: &mut Checker, n: &Spanned, path: &str, key: &str| -> Option<Spanned> {
        let m = c.map(n, path);
        c.keys(m, path, &[key, "attributes"], &[]);
        if let Some(a) = get(m, "attributes") {
            c.unsupported(a, &join(path, "attributes"));
        }
        match get(m, key) {
            Some(v) => Some(v.clone()),
            None => {
                c.at(n, &join(path, key), "missing");
                None
            }
        }
    };
    let mut out = Resources::default();
    let cpu_path = join(&field, "cpu");
    match get(r, "cpu") {
        Some(n) => {
            if let Some(v) = units(c, n, &cpu_path, "units") {
                let path = join(&cpu_path, "units");
                match v.as_str().and_then(cpu_millicores) {
                    Some(0) => c.at(&v, &path, "must be more than zero"),
                    Some(m) if m > MAX_CPU_MILLICORES => c.at(
                        &v,
                        &path,
                        format!("{m} millicores is absurd (at most {} cores)", MAX_CPU_MILLICORES / 1000),
                    ),
                    Some(m) => out.cpu_millicores = m,
                    None => c.at(
                        &v,
                        &path,
                        format!(
                            "{:?}: must be a non-negative number of cores (0.5, 2) or millicores (500m)",
                            v.as_str().unwrap_or("?")
                        ),
                    ),
                }
            }
        }
        None => c.at(res, &cpu_path, "missing"),
    }
    let size = |c: &mut Checker, key: &str, max: u64, required: bool| -> u64 {
        let path = join(&field, key);
        let Some(n) = get(r, key) else {
            if required {
                c.at(res, &path, "missing");
            }
            return 0;
        };
        if key == "storage"
            && let Node::Seq(_) = n.node
        {
            c.at(
                n,
                &path,
                "not supported: a list of storage volumes (give one size)",
            );
            return 0;
        }
        let Some(v) = units(c, n, &path, "size") else {
            return 0;
        };
        let path = join(&path, "size");
        match v.as_str().and_then(size_bytes) {
            Some(0) => {
                c.at(&v, &path, "must be more than zero");
                0
            }
            Some(b) if b > max => {
                c.at(&v, &path, format!("{b} bytes is absurd (at most {max})"));
                0
            }
            Some(b) => b,
            None => {
                c.at(
                    &v,
                    &path,
                    format!(
                        "{:?}: must be a non-negative size such as 512Mi or 1Gi",
                        v.as_str().unwrap_or("?")
                    ),
                );
                0
            }
        }
    };
    out.memory_bytes = size(c, "memory", MAX_MEMORY_BYTES, true);
    out.storage_bytes = size(c, "storage", MAX_STORAGE_BYTES, false);
    if let Some(g) = get(r, "gpu") {
        check_gpu(c, g, &join(&field, "gpu"), &mut out);
    }
    (name, Some(out))
}

fn check_gpu(c: &mut Checker, g: &Spanned, path: &str, out: &mut Resources) {
    let m = c.map(g, path);
    c.keys(m, path, &["units", "attributes"], &[]);
    let count = match get(m, "units") {
        Some(v) => match v.as_str().and_then(|s| s.parse::<u64>().ok()) {
            Some(n) if n <= MAX_GPUS => n,
            Some(n) => {
                c.at(
                    v,
                    &join(path, "units"),
                    format!("{n} GPUs is absurd (at most {MAX_GPUS})"),
                );
                0
            }
            None => {
                c.at(
                    v,
                    &join(path, "units"),
                    "must be a non-negative whole number",
                );
                0
            }
        },
        None => {
            c.at(g, &join(path, "units"), "missing");
            0
        }
    };
    out.gpu_count = u32::try_from(count).unwrap_or(0);
    let Some(attrs) = get(m, "attributes") else {
        return;
    };
    let apath = join(path, "attributes");
    let a = c.map(attrs, &apath);
    c.keys(a, &apath, &["vendor"], &[]);
    let Some(vendor) = get(a, "vendor") else {
        return;
    };
    let vpath = join(&apath, "vendor");
    let vendors = c.map(vendor, &vpath);
    if vendors.len() > 1 {
        c.at(
            &vendors[1].0,
            &vpath,
            "not supported: more than one GPU vendor",
        );
    }
    let Some((name, models)) = vendors.first() else {
        return;
    };
    let vendor_name = c.string(name, &vpath).unwrap_or_default();
    if vendor_name.len() > 32 {
        c.at(name, &vpath, "vendor name longer than 32 characters");
    }
    out.gpu_vendor = BoundedString::new(&vendor_name).unwrap_or_default();
    if models.is_null() {
        return;
    }
    let mpath = join(&vpath, &vendor_name);
    let list = c.seq(models, &mpath);
    if list.len() > 1 {
        c.at(
            &list[1],
            &mpath,
            "not supported: more than one acceptable GPU model",
        );
    }
    if let Some(first) = list.first() {
        let fpath = format!("{mpath}[0]");
        let f = c.map(first, &fpath);
        c.keys(f, &fpath, &["model", "ram"], &["interface"]);
        if let Some(model) = get(f, "model").and_then(|n| c.string(n, &join(&fpath, "model"))) {
            match BoundedString::new(&model) {
                Some(b) => out.gpu_model = b,
                None => c.at(first, &join(&fpath, "model"), "longer than 64 characters"),
            }
        }
        if let Some(ram) = get(f, "ram") {
            match ram.as_str().and_then(size_bytes) {
                Some(b) => out.min_vram_mib = b >> 20,
                None => c.at(ram, &join(&fpath, "ram"), "must be a size such as 80Gi"),
            }
        }
    }
}

fn check_deployment(
    c: &mut Checker,
    root: &Spanned,
    top: &[(Spanned, Spanned)],
    service: Option<&ServiceSpec>,
    profile: Option<&str>,
) -> Option<(String, ())> {
    let Some(dep) = get(top, "deployment") else {
        c.at(root, "deployment", "missing");
        return None;
    };
    let entries = c.map(dep, "deployment");
    let service = service?;
    let Some(body) = get(entries, &service.name) else {
        c.at(
            dep,
            &join("deployment", &service.name),
            "missing: deploy the service",
        );
        return None;
    };
    let field = join("deployment", &service.name);
    let places = c.map(body, &field);
    if places.len() > 1 {
        c.at(
            &places[1].0,
            &field,
            "not supported: more than one placement",
        );
    }
    let (key, spec) = places.first()?;
    let placement = c.string(key, &field)?;
    let field = join(&field, &placement);
    let s = c.map(spec, &field);
    c.keys(s, &field, &["profile", "count"], &[]);
    if let Some(p) = get(s, "profile") {
        let name = c.string(p, &join(&field, "profile"));
        if let (Some(name), Some(profile)) = (name, profile)
            && name != profile
        {
            c.at(
                p,
                &join(&field, "profile"),
                format!("no compute profile named {name:?}"),
            );
        }
    } else {
        c.at(spec, &join(&field, "profile"), "missing");
    }
    match get(s, "count") {
        Some(n) => match n.as_str() {
            Some("1") => {}
            Some(other) if other.parse::<u64>().is_ok() => c.at(
                n,
                &join(&field, "count"),
                format!("not supported: count {other} (one lease runs one instance; deploy again for more)"),
            ),
            _ => c.at(n, &join(&field, "count"), "must be 1"),
        },
        None => c.at(spec, &join(&field, "count"), "missing"),
    }
    Some((placement, ()))
}

fn check_pricing(
    c: &mut Checker,
    top: &[(Spanned, Spanned)],
    placement: &str,
    profile: &str,
    _: (),
) -> Option<Amount> {
    let profiles = get(top, "profiles")?;
    let p = c.map(profiles, "profiles");
    let places = get(p, "placement")?;
    let field = "profiles.placement";
    let entries = c.map(places, field);
    let Some(body) = get(entries, placement) else {
        c.at(
            places,
            &join(field, placement),
            "missing: the deployment names this placement",
        );
        return None;
    };
    let field = join(field, placement);
    let b = c.map(body, &field);
    c.keys(b, &field, &["pricing", "attributes", "signedBy"], &[]);
    if let Some(a) = get(b, "attributes") {
        c.unsupported(a, &join(&field, "attributes"));
    }
    if let Some(a) = get(b, "signedBy") {
        c.unsupported(a, &join(&field, "signedBy"));
    }
    let Some(pricing) = get(b, "pricing") else {
        c.at(body, &join(&field, "pricing"), "missing");
        return None;
    };
    let field = join(&field, "pricing");
    let prices = c.map(pricing, &field);
    let Some(price) = get(prices, profile) else {
        c.at(
            pricing,
            &join(&field, profile),
            "missing: a price for the profile",
        );
        return None;
    };
    let field = join(&field, profile);
    let pr = c.map(price, &field);
    c.keys(pr, &field, &["denom", "amount"], &[]);
    if let Some(d) = get(pr, "denom") {
        match d.as_str() {
            Some("ucrn") => {}
            other => c.at(
                d,
                &join(&field, "denom"),
                format!("{:?}: Cairn prices in ucrn", other.unwrap_or("?")),
            ),
        }
    } else {
        c.at(price, &join(&field, "denom"), "missing (denom: ucrn)");
    }
    let Some(amount) = get(pr, "amount") else {
        c.at(price, &join(&field, "amount"), "missing");
        return None;
    };
    match amount.as_str().and_then(|s| s.parse::<u128>().ok()) {
        Some(0) => {
            c.at(amount, &join(&field, "amount"), "must be more than zero");
            None
        }
        Some(v) if v > u128::from(u64::MAX) => {
            c.at(amount, &join(&field, "amount"), "absurd price per block");
            None
        }
        Some(v) => Some(Amount::from_ucrn(v)),
        None => {
            c.at(
                amount,
                &join(&field, "amount"),
                format!(
                    "{:?}: must be a non-negative whole number of ucrn per block",
                    amount.as_str().unwrap_or("?")
                ),
            );
            None
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    pub const GOOD: &str = r#"version: "2.0"
services:
  web:
    runtime: process
    command: ["/bin/busybox", "httpd", "-f"]
    args: ["-p", "8080"]
    env:
      - GREETING=hello
    expose:
      - port: 8080
        as: 80
        to:
          - global: true
profiles:
  compute:
    web:
      resources:
        cpu:
          units: 0.5
        memory:
          size: 64Mi
        storage:
          size: 16Mi
  placement:
    dc:
      pricing:
        web:
          denom: ucrn
          amount: 1000
deployment:
  web:
    dc:
      profile: web
      count: 1
"#;

    #[test]
    fn good_manifest_normalizes() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.runtime, RuntimeKind::Process);
        assert_eq!(m.cpu_millicores, 500);
        assert_eq!(m.memory_bytes, 64 << 20);
        assert_eq!(m.max_price_per_block, Amount::from_ucrn(1000));
        assert_eq!(m.ingress_port(), Some(8080));
        assert_eq!(m.env["GREETING"], "hello");
        // Formatting does not change the hash; content does.
        let reformatted = GOOD.replace("units: 0.5", "units: 500m");
        assert_eq!(parse(&reformatted).unwrap().hash(), m.hash());
        let other = GOOD.replace("amount: 1000", "amount: 1001");
        assert_ne!(parse(&other).unwrap().hash(), m.hash());
    }

    fn problems(text: &str) -> Vec<Problem> {
        parse(text).unwrap_err().problems
    }

    #[test]
    fn errors_carry_line_and_field() {
        let p = problems(&GOOD.replace("units: 0.5", "units: -2"));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].line, 19);
        assert_eq!(p[0].field, "profiles.compute.web.resources.cpu.units");
        assert!(p[0].message.contains("non-negative"));
        let p = problems(&GOOD.replace("size: 64Mi", "size: 900Pi"));
        assert!(p[0].message.contains("absurd"), "{p:?}");
        let p = problems(&GOOD.replace("runtime: process", "runtime: vm"));
        assert_eq!(p[0].field, "services.web.runtime");
        assert_eq!(p[0].line, 4);
        assert!(p[0].message.contains("unknown runtime"));
        let p = problems("version: \"2.0\"\nservices: [\n");
        assert!(p[0].message.contains("malformed YAML"), "{p:?}");
    }

    #[test]
    fn unsupported_features_are_named() {
        let text = GOOD.replace("      count: 1", "      count: 3");
        let p = problems(&text);
        assert!(p[0].message.contains("not supported: count 3"), "{p:?}");
        let text = GOOD.replace(
            "      pricing:",
            "      attributes:\n        region: us\n      pricing:",
        );
        let p = problems(&text);
        assert!(
            p.iter()
                .any(|p| p.message == "not supported: profiles.placement.dc.attributes"),
            "{p:?}"
        );
        let text = GOOD.replace(
            "    runtime: process\n",
            "    runtime: process\n    depends_on: [db]\n",
        );
        let p = problems(&text);
        assert!(
            p[0].message
                .contains("not supported: services.web.depends_on"),
            "{p:?}"
        );
        let p = problems(&GOOD.replace("        as: 80\n", "        as: 80\n        proto: udp\n"));
        assert!(p[0].message.contains("not supported"), "{p:?}");
    }

    #[test]
    fn units_parse_without_floats() {
        assert_eq!(cpu_millicores("0.25"), Some(250));
        assert_eq!(cpu_millicores("250m"), Some(250));
        assert_eq!(cpu_millicores("-1"), None);
        assert_eq!(cpu_millicores("1e3"), None);
        assert_eq!(size_bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(size_bytes("512Mi"), Some(512 << 20));
        assert_eq!(size_bytes("99999999999999999999"), None);
    }

    #[test]
    fn gpu_attributes_in_akash_shape() {
        let text = GOOD.replace(
            "        storage:\n",
            "        gpu:\n          units: 1\n          attributes:\n            vendor:\n              nvidia:\n                - model: h100\n                  ram: 80Gi\n        storage:\n",
        );
        let m = parse(&text).unwrap();
        assert_eq!(m.gpu_count, 1);
        assert_eq!(m.gpu_vendor, "nvidia");
        assert_eq!(m.gpu_model, "h100");
        assert_eq!(m.min_vram_mib, 80 * 1024);
    }
}
