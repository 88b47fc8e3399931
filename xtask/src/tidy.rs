//! Repository policy, checked as tests so that plain `cargo test` enforces it.
//! Dependencies point inward: api-http -> app -> ports -> domain; adapters -> ports -> domain;
//! only the server (and tests) name concrete adapters.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

struct Package {
    /// Normal (non-dev, non-build) dependencies.
    deps: BTreeSet<String>,
    dev_deps: BTreeSet<String>,
}

fn workspace() -> BTreeMap<String, Package> {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(crate::workspace_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = |kind: Option<&str>| {
                p["dependencies"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|d| d["kind"].as_str() == kind)
                    .map(|d| d["name"].as_str().unwrap().to_owned())
                    .collect()
            };
            let name = p["name"].as_str().unwrap().to_owned();
            (
                name,
                Package {
                    deps: deps(None),
                    dev_deps: deps(Some("dev")),
                },
            )
        })
        .collect()
}

const OURS: [&str; 12] = [
    "domain",
    "ports",
    "app",
    "crypto",
    "adapters-postgres",
    "adapters-auth0",
    "api-http",
    "server",
    "migration",
    "test-support",
    "xtask",
    "lint-probe",
];

#[test]
fn the_workspace_is_the_design_card() {
    let ws = workspace();
    let names: BTreeSet<&str> = ws.keys().map(String::as_str).collect();
    assert_eq!(names, OURS.into_iter().collect(), "crates of the workspace");
}

#[test]
fn dependencies_point_inward() {
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("domain", &[][..]),
        ("ports", &["domain"][..]),
        ("app", &["domain", "ports"][..]),
        ("crypto", &["domain"][..]),
        ("adapters-postgres", &["domain", "ports", "crypto"][..]),
        ("adapters-auth0", &["domain", "ports", "crypto"][..]),
        ("api-http", &["domain", "ports", "app", "crypto"][..]),
        ("migration", &[][..]),
        ("test-support", &["migration", "ports"][..]),
        ("xtask", &[][..]),
        ("lint-probe", &["domain", "ports", "app"][..]),
        (
            "server",
            &[
                "domain",
                "ports",
                "app",
                "crypto",
                "adapters-postgres",
                "adapters-auth0",
                "api-http",
                "migration",
            ][..],
        ),
    ]);
    for (name, package) in workspace() {
        let ours: BTreeSet<&str> = package
            .deps
            .iter()
            .map(String::as_str)
            .filter(|d| OURS.contains(d))
            .collect();
        let permitted: BTreeSet<&str> = allowed[name.as_str()].iter().copied().collect();
        let extra: Vec<_> = ours.difference(&permitted).collect();
        assert!(extra.is_empty(), "{name} must not depend on {extra:?}");
        let dev_ours: Vec<_> = package
            .dev_deps
            .iter()
            .filter(|d| OURS.contains(&d.as_str()) && *d != "test-support")
            .filter(|d| !permitted.contains(d.as_str()))
            .collect();
        assert!(
            dev_ours.is_empty(),
            "{name}'s tests must not depend on {dev_ours:?}"
        );
    }
}

#[test]
fn the_domain_depends_on_no_framework() {
    let ws = workspace();
    let allowed: BTreeSet<&str> = ["chrono", "serde", "thiserror", "uuid"].into();
    for dep in &ws["domain"].deps {
        assert!(
            allowed.contains(dep.as_str()),
            "domain must not depend on {dep}"
        );
    }
    let ports_allowed: BTreeSet<&str> = [
        "async-trait",
        "chrono",
        "domain",
        "secrecy",
        "thiserror",
        "uuid",
    ]
    .into();
    for dep in &ws["ports"].deps {
        assert!(
            ports_allowed.contains(dep.as_str()),
            "ports must not depend on {dep}"
        );
    }
    // The use cases know the ports and the domain, and no framework, database or crypto.
    let app_allowed: BTreeSet<&str> = [
        "chrono",
        "domain",
        "ports",
        "secrecy",
        "thiserror",
        "tracing",
        "uuid",
    ]
    .into();
    for dep in &ws["app"].deps {
        assert!(
            app_allowed.contains(dep.as_str()),
            "app must not depend on {dep}"
        );
    }
}

#[test]
fn frameworks_stay_in_their_crates() {
    let homes: [(&str, &[&str]); 3] = [
        ("sea-orm", &["adapters-postgres", "test-support"]),
        ("sea-orm-migration", &["migration"]),
        ("actix-web", &["api-http", "server"]),
    ];
    for (name, package) in workspace() {
        for (framework, allowed) in homes {
            if package.deps.contains(framework) {
                assert!(
                    allowed.contains(&name.as_str()),
                    "{name} must not depend on {framework}"
                );
            }
        }
    }
}

/// The PostgreSQL adapter's surface is its own: its `lib.rs` re-exports nothing of the ORM (the
/// pool is the opaque `adapters_postgres::Database`, its errors the adapter's), so no caller
/// is written against sea-orm through it.
#[test]
fn the_database_adapter_reexports_no_orm() {
    let path = crate::workspace_root().join("crates/adapters-postgres/src/lib.rs");
    let text = std::fs::read_to_string(&path).unwrap();
    let offenders = orm_reexports(&text);
    assert!(
        offenders.is_empty(),
        "{} re-exports the ORM: {offenders:#?}",
        path.display()
    );
}

/// The lines of `text` that re-export a `sea_orm*` crate or something of it publicly
/// (`pub use sea_orm::…`, `pub use ::sea_orm…`, `pub use { sea_orm::… }`,
/// `pub extern crate sea_orm`); `pub(crate) use` is not an export.
fn orm_reexports(text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter_map(|(n, line)| {
            let words = line.split_whitespace().collect::<Vec<_>>().join(" ");
            let path = words
                .strip_prefix("pub use ")
                .or_else(|| words.strip_prefix("pub extern crate "))?;
            let path = path.trim_start_matches(['{', ':', ' ']);
            path.starts_with("sea_orm")
                .then(|| format!("{}: {}", n + 1, line.trim()))
        })
        .collect()
}

#[test]
fn orm_reexports_are_found_in_each_spelling() {
    for planted in [
        "pub use sea_orm::DbErr;",
        "pub use sea_orm::{DatabaseConnection as Connection, DbErr};",
        "  pub  use ::sea_orm::DatabaseConnection;",
        "pub use { sea_orm::DbErr };",
        "pub use sea_orm;",
        "pub use sea_orm as orm;",
        "pub extern crate sea_orm;",
        "pub use sea_orm_migration::DbErr;",
    ] {
        assert_eq!(orm_reexports(planted).len(), 1, "{planted}");
    }
    for fine in [
        "use sea_orm::{ConnectionTrait, DbErr};",
        "pub(crate) use sea_orm::DbErr;",
        "pub use database::{Database, DatabaseError};",
        "// pub use sea_orm::DbErr;",
        "pub fn connect() -> Result<Database, DatabaseError> {",
    ] {
        assert!(orm_reexports(fine).is_empty(), "{fine}");
    }
}

/// F2: the PostgreSQL adapter builds no SQL text at run time. Every statement is a literal or
/// comes from the query builder with bound values, so no request text can become SQL.
#[test]
fn the_database_adapter_formats_no_sql() {
    let src = crate::workspace_root().join("crates/adapters-postgres/src");
    let mut offenders = Vec::new();
    for path in rust_files(&src) {
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.contains("format!") || line.contains("execute_unprepared(&") {
                offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "SQL must not be built from text: {offenders:#?}"
    );
}

/// I2: the lock file is committed, so every build with `--locked` uses the pinned versions.
#[test]
fn the_lock_file_is_committed() {
    let out = Command::new("git")
        .args(["ls-files", "--error-unmatch", "Cargo.lock"])
        .current_dir(crate::workspace_root())
        .output()
        .unwrap();
    assert!(out.status.success(), "Cargo.lock must be tracked by git");
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// Every library source file of the workspace's crates (`crates/*/src`), as its path from the
/// workspace root and its text.
fn library_sources(root: &std::path::Path) -> Vec<(String, String)> {
    let mut sources = Vec::new();
    for krate in std::fs::read_dir(root.join("crates")).unwrap() {
        let src = krate.unwrap().path().join("src");
        if !src.exists() {
            continue;
        }
        for file in rust_files(&src) {
            let relative = file
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            sources.push((relative, std::fs::read_to_string(&file).unwrap()));
        }
    }
    sources
}

/// A `TenantScope` comes only from a `Principal`, and a `Principal` is built only where a
/// credential has been verified (its constructor is private to the application crate) or by
/// the operator's named escape. Library code that does either anywhere else must be added
/// here on purpose, in review; tests and examples are not library code.
#[test]
fn principals_are_built_only_by_authentication_and_operator_code() {
    const RULES: [(&str, &[&str]); 3] = [
        (
            "Principal::authenticated(",
            &[
                "crates/app/src/principal.rs",
                "crates/app/src/authenticate.rs",
            ],
        ),
        ("Principal::operator(", &["crates/server/src/seed.rs"]),
        ("TenantScope::new(", &["crates/app/src/principal.rs"]),
    ];
    let root = crate::workspace_root();
    let mut offenders = Vec::new();
    for (relative, text) in library_sources(&root) {
        for (call, allowed) in RULES {
            if text.contains(call) && !allowed.contains(&relative.as_str()) {
                offenders.push(format!("{call} in {relative}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "outside their allowed files: {offenders:?}"
    );
}

/// Text with its comments taken out (`//` to the end of the line, `/* */` nested as Rust
/// nests them), as the compiler reads it. String literals are left as they are: a comment
/// marker inside one is taken for a comment, which can only hide text from this check's
/// searches for attributes, never put any there.
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut depth = 0_usize;
    while !rest.is_empty() {
        if rest.starts_with("/*") {
            depth += 1;
            rest = &rest[2..];
        } else if depth > 0 && rest.starts_with("*/") {
            depth -= 1;
            rest = &rest[2..];
        } else if depth == 0 && rest.starts_with("//") {
            rest = rest.find('\n').map_or("", |at| &rest[at..]);
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            if depth == 0 {
                out.push(c);
            } else {
                // A comment separates tokens as white space does.
                out.push(' ');
            }
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The same rule resolved by the compiler: `clippy.toml` disallows `TenantScope::new`,
/// `Principal::operator` and `Principal::authenticated` by path (through `use ... as` and
/// re-exports, which a text search misses). Whether the rule is on at all (the workspace's
/// lints, a configuration file clippy reads instead, the environment, the gate's flags) is
/// proven by `cargo xtask lint`, which runs clippy on `xtask/lint-probe` and fails unless
/// each of its forbidden calls is refused. What that probe cannot see is a switch inside
/// another package, and that is what this check holds: library code may allow the lint only
/// in the files that are theirs, no package sets lints of its own or has a clippy
/// configuration of its own, and no library source is read from outside `src` or by
/// `include!`.
#[test]
fn the_principal_rules_are_lints_allowed_only_where_they_belong() {
    let root = crate::workspace_root();
    let config = std::fs::read_to_string(root.join("clippy.toml")).unwrap();
    let config: String = config
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .collect();
    for path in [
        "ports::TenantScope::new",
        "app::Principal::operator",
        "app::principal::Principal::authenticated",
    ] {
        assert!(
            config.contains(&format!("path = \"{path}\"")),
            "clippy.toml no longer disallows {path}"
        );
    }
    // The same lint holds the wall clock to `SystemClock` (`clock.rs`); the text rule above
    // still keeps the principal calls out of that file.
    const ALLOWED: [&str; 4] = [
        "crates/app/src/principal.rs",
        "crates/app/src/authenticate.rs",
        "crates/server/src/seed.rs",
        "crates/ports/src/clock.rs",
    ];
    // Searched with comments and all white space gone (`clippy :: style` and
    // `clippy::/* */style` are the same path to the compiler). The lint's name alone, not its
    // path, since a macro can put the path together (`clippy::$lint`), and its old name
    // (`disallowed_method`) is the same lint; `clippy::$` is a lint path made by a macro.
    const SWITCHES: [&str; 5] = [
        "disallowed_method",
        "clippy::style",
        "clippy::all",
        "clippy::$",
        "(warnings",
    ];
    const ANYWHERE: [&str; 2] = ["#[path", "include!("];
    let mut offenders = Vec::new();
    for (relative, text) in library_sources(&root) {
        let text: String = without_comments(&text).split_whitespace().collect();
        for switch in SWITCHES {
            if text.contains(switch) && !ALLOWED.contains(&relative.as_str()) {
                offenders.push(format!("{switch} in {relative}"));
            }
        }
        for reach in ANYWHERE {
            if text.contains(reach) {
                offenders.push(format!("{reach} in {relative}"));
            }
        }
    }
    // Only Rust sources in the libraries' `src` (nothing an `include!` could read).
    for krate in std::fs::read_dir(root.join("crates")).unwrap() {
        let src = krate.unwrap().path().join("src");
        let mut stack = vec![src];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_none_or(|e| e != "rs") {
                    offenders.push(format!("{} is not Rust", path.display()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "allowed outside their files: {offenders:?}"
    );

    // Every package takes the workspace's lints and sets none of its own.
    let mut packages: Vec<_> = std::fs::read_dir(root.join("crates"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    packages.extend([
        root.join("migration"),
        root.join("xtask"),
        root.join("xtask/lint-probe"),
    ]);
    for package in &packages {
        let manifest = std::fs::read_to_string(package.join("Cargo.toml")).unwrap();
        let manifest: String = manifest
            .lines()
            .map(|line| line.split('#').next().unwrap_or(""))
            .collect::<String>()
            .split_whitespace()
            .collect();
        assert!(
            manifest.matches("lints").count() == 1 && manifest.contains("[lints]workspace=true"),
            "{package:?} does not take exactly the workspace's lints"
        );
    }
    // No clippy configuration but the workspace's (clippy reads the nearest one, and prefers
    // `.clippy.toml`).
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !matches!(name, "target" | ".git" | "node_modules") {
                    stack.push(path);
                }
            } else if matches!(name, "clippy.toml" | ".clippy.toml")
                && path != root.join("clippy.toml")
            {
                panic!("a clippy configuration besides the workspace's: {path:?}");
            }
        }
    }
}
