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

const OURS: [&str; 11] = [
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

/// The same rule resolved by the compiler: `clippy.toml` disallows `TenantScope::new`,
/// `Principal::operator` and `Principal::authenticated` by path (through `use ... as` and
/// re-exports, which a text search misses), and library code may allow them only in the
/// files that are theirs. An allow of a whole lint group would switch the rule off as well.
#[test]
fn the_principal_rules_are_lints_allowed_only_where_they_belong() {
    let root = crate::workspace_root();
    let config = std::fs::read_to_string(root.join("clippy.toml")).unwrap();
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
    // Compared with all white space gone: `clippy :: style` is the same path to the compiler.
    const SWITCHES: [&str; 4] = [
        "clippy::disallowed_methods",
        "clippy::style",
        "clippy::all",
        "(warnings",
    ];
    let mut offenders = Vec::new();
    for (relative, text) in library_sources(&root) {
        let text: String = text.split_whitespace().collect();
        for switch in SWITCHES {
            if text.contains(switch) && !ALLOWED.contains(&relative.as_str()) {
                offenders.push(format!("{switch} in {relative}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "allowed outside their files: {offenders:?}"
    );
    // Nor is the lint switched off from outside the sources: the workspace denies it, every
    // package takes the workspace's lints and sets none of its own, no package has a
    // `clippy.toml` of its own (clippy would read that one instead of the workspace's), and no
    // build flag allows it.
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        workspace
            .split_whitespace()
            .collect::<String>()
            .contains("disallowed_methods=\"deny\""),
        "the workspace no longer denies clippy::disallowed_methods"
    );
    let mut packages: Vec<_> = std::fs::read_dir(root.join("crates"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    packages.extend([root.join("migration"), root.join("xtask")]);
    for package in packages {
        let manifest = std::fs::read_to_string(package.join("Cargo.toml")).unwrap();
        let lints: String = manifest
            .split("[lints")
            .skip(1)
            .flat_map(|section| section.split("\n[").next())
            .collect();
        assert_eq!(
            lints.split_whitespace().collect::<String>(),
            "]workspace=true",
            "{package:?} sets lints of its own"
        );
        for config in ["clippy.toml", ".clippy.toml"] {
            assert!(
                !package.join(config).exists(),
                "{package:?} has a {config} of its own"
            );
        }
    }
    let cargo_config = std::fs::read_to_string(root.join(".cargo/config.toml")).unwrap();
    assert!(
        !cargo_config.contains("rustflags") && !cargo_config.contains("clippy"),
        ".cargo/config.toml passes flags to the compiler"
    );
}
