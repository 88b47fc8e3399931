//! The database enforces tenancy on its own: policies on every tenant table, a least-privilege
//! application role, and nothing readable without a tenant context.

use adapters_postgres::{Database, PoolOptions, inspect_role};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use test_support::TestDatabase;

use crate::{count, fails, seed_other_tables, texts, world};

/// Tables without tenant data, which need no row-level security: rate-limit blocks (keyed by
/// client address or principal), the record of credential changes (transaction ids, and no
/// privilege of the app role) and the migration bookkeeping.
const NOT_TENANT_DATA: [&str; 5] = [
    "client_blocks",
    "credential_changes",
    "credential_changes_pruned",
    "login_attempts",
    "seaql_migrations",
];

const ORG_SETTING: &str = "app.current_organization";

/// Every way the schema can fall short of the tenancy rules, as readable lines.
async fn schema_violations(admin: &DatabaseConnection) -> Vec<String> {
    let mut violations = Vec::new();
    let tables = texts(
        admin,
        "SELECT c.relname::text FROM pg_class c
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
         ORDER BY 1",
    )
    .await;
    for table in tables.into_iter().flatten() {
        let forced = count(
            admin,
            &format!(
                "SELECT count(*) FROM pg_class WHERE oid = 'public.{table}'::regclass
                 AND relrowsecurity AND relforcerowsecurity"
            ),
        )
        .await;
        let has_org_column = count(
            admin,
            &format!(
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public'
                 AND table_name = '{table}' AND column_name = 'organization_id'"
            ),
        )
        .await
            == 1;
        if NOT_TENANT_DATA.contains(&table.as_str()) {
            if has_org_column {
                violations.push(format!("{table}: holds organization_id but is exempted"));
            }
            continue;
        }
        if forced != 1 {
            violations.push(format!(
                "{table}: row-level security not ENABLEd and FORCEd"
            ));
        }
        // One policy for all commands, or one per command: reads filtered (USING), inserts
        // checked (WITH CHECK), updates both.
        let covered = |commands: &str, clauses: &str| {
            format!(
                "SELECT count(*) FROM pg_policies WHERE schemaname = 'public'
                 AND tablename = '{table}' AND cmd IN ({commands}) AND {clauses}"
            )
        };
        let both = "qual IS NOT NULL AND with_check IS NOT NULL";
        let both_clauses = count(admin, &covered("'ALL', 'UPDATE'", both)).await;
        let reads = count(admin, &covered("'ALL', 'SELECT'", "qual IS NOT NULL")).await;
        let inserts = count(admin, &covered("'ALL', 'INSERT'", "with_check IS NOT NULL")).await;
        if both_clauses == 0 || reads == 0 || inserts == 0 {
            violations.push(format!("{table}: no policy with both USING and WITH CHECK"));
        }
        if has_org_column || table == "organizations" {
            let on_org = count(
                admin,
                &format!(
                    "SELECT count(*) FROM pg_policies WHERE schemaname = 'public'
                     AND tablename = '{table}' AND cmd IN ('ALL', 'UPDATE')
                     AND qual LIKE '%{ORG_SETTING}%' AND with_check LIKE '%{ORG_SETTING}%'"
                ),
            )
            .await;
            if on_org == 0 {
                violations.push(format!("{table}: no policy on app.current_organization"));
            }
        }
        // Users may be between organizations; audit events of no organization form the
        // system chain. Neither NULL matches a tenant policy.
        if has_org_column && !["users", "audit_events"].contains(&table.as_str()) {
            let not_null = count(
                admin,
                &format!(
                    "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public'
                     AND table_name = '{table}' AND column_name = 'organization_id'
                     AND is_nullable = 'NO'"
                ),
            )
            .await;
            if not_null == 0 {
                violations.push(format!("{table}: organization_id is nullable"));
            }
        }
        if has_org_column {
            let leading_index = count(
                admin,
                &format!(
                    "SELECT count(*) FROM pg_index i
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                     WHERE i.indrelid = 'public.{table}'::regclass AND a.attname = 'organization_id'"
                ),
            )
            .await;
            if leading_index == 0 {
                violations.push(format!("{table}: no index leading on organization_id"));
            }
        }
    }
    // No policy may be permissive without a setting: every one reads a setting (an INSERT
    // policy has only its WITH CHECK clause).
    for policy in texts(
        admin,
        "SELECT tablename || '.' || policyname FROM pg_policies WHERE schemaname = 'public'
         AND (COALESCE(qual, with_check) IS NULL
              OR COALESCE(qual, with_check) NOT LIKE '%current_setting(%')",
    )
    .await
    .into_iter()
    .flatten()
    {
        violations.push(format!(
            "{policy}: a policy that does not depend on a setting"
        ));
    }
    violations
}

#[tokio::test]
async fn every_tenant_table_is_forced_with_both_clauses() {
    let db = TestDatabase::new().await;
    let admin = db.admin_pool().await;
    assert_eq!(schema_violations(&admin).await, Vec::<String>::new());
}

#[tokio::test]
async fn the_schema_check_catches_each_weakening() {
    let db = TestDatabase::new().await;
    let admin = db.admin_pool().await;
    admin
        .execute_unprepared(
            "ALTER TABLE models NO FORCE ROW LEVEL SECURITY;
             DROP POLICY tenant_isolation ON endpoints;
             CREATE POLICY tenant_isolation ON endpoints USING (true);
             CREATE POLICY lax ON projects USING (true) WITH CHECK (true);
             CREATE TABLE notes (id uuid PRIMARY KEY, organization_id uuid);",
        )
        .await
        .unwrap();
    let violations = schema_violations(&admin).await;
    for expected in [
        "models: row-level security not ENABLEd and FORCEd",
        "endpoints: no policy with both USING and WITH CHECK",
        "endpoints: no policy on app.current_organization",
        "projects.lax: a policy that does not depend on a setting",
        "notes: row-level security not ENABLEd and FORCEd",
        "notes: organization_id is nullable",
        "notes: no index leading on organization_id",
    ] {
        assert!(
            violations.iter().any(|v| v == expected),
            "missing {expected:?} in {violations:#?}"
        );
    }
}

#[tokio::test]
async fn without_a_tenant_context_the_app_role_sees_zero_rows() {
    let w = world().await;
    let admin = w.db.admin_pool().await;
    seed_other_tables(&admin, &w.a).await;
    seed_other_tables(&admin, &w.b).await;
    let tables = [
        "organizations",
        "users",
        "projects",
        "endpoints",
        "models",
        "api_tokens",
        "audit_events",
        "sessions",
    ];
    for table in tables {
        // Two rows of each organization in the audit log: its founding, and the seeded one.
        let expected = if table == "audit_events" { 4 } else { 2 };
        assert_eq!(
            count(&admin, &format!("SELECT count(*) FROM {table}")).await,
            expected,
            "{table} holds rows of each organization"
        );
    }
    let app = w.db.app_pool(1).await;
    for table in tables {
        assert_eq!(
            count(&app, &format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
    // An empty setting is no context either.
    app.execute_unprepared(
        "SELECT set_config('app.current_organization', '', false),
                set_config('app.current_user', '', false)",
    )
    .await
    .unwrap();
    for table in tables {
        assert_eq!(
            count(&app, &format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
    // A setting that is no UUID is an error, not a wildcard.
    app.execute_unprepared("SELECT set_config('app.current_organization', '%', false)")
        .await
        .unwrap();
    let error = fails(&app, "SELECT count(*) FROM projects").await;
    assert!(
        error.contains("invalid input syntax for type uuid"),
        "{error}"
    );
}

/// A pool of one connection to `url`, for [`inspect_role`].
async fn database(url: &str) -> Database {
    let options = PoolOptions {
        max_connections: 1,
        ..PoolOptions::default()
    };
    adapters_postgres::connect(url, options).await.unwrap()
}

/// The application role is one role of the cluster, shared by every test database: the tests
/// that grant it powers for a moment (and check what it holds) take turns.
static ROLE_CHANGES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn the_app_role_is_least_privilege_and_the_owner_is_not_fit_to_serve() {
    let _turn = ROLE_CHANGES.lock().await;
    let db = TestDatabase::new().await;
    let app_database = database(&db.app_url()).await;
    let report = inspect_role(&app_database).await.unwrap();
    assert_eq!(report.role, db.app_role());
    assert!(!report.is_superuser && !report.bypasses_rls, "{report:?}");
    assert_eq!(report.owned_relations, 0, "{report:?}");
    assert_eq!(report.problems(), Vec::<&str>::new());

    let owner = database(&db.owner_url()).await;
    let report = inspect_role(&owner).await.unwrap();
    assert!(report.owned_relations > 0);
    assert!(
        report.problems().iter().any(|p| p.contains("owns tables")),
        "{report:?}"
    );

    let report = inspect_role(&database(&db.admin_url()).await)
        .await
        .unwrap();
    let admin = db.admin_pool().await;
    assert!(report.problems().contains(&"is a superuser"), "{report:?}");

    // An application role that is a member of the owner, of a role that bypasses row-level
    // security, or that may create in the schema is unfit too: each is refused by name.
    let app_role = db.app_role();
    let owner_role = db.owner_role();
    let bypass = format!(
        "rh_bypass_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    for (grant, revoke, problem) in [
        (
            format!("GRANT {owner_role} TO {app_role}"),
            format!("REVOKE {owner_role} FROM {app_role}"),
            "is a member of a role",
        ),
        (
            format!("CREATE ROLE {bypass} NOLOGIN BYPASSRLS; GRANT {bypass} TO {app_role}"),
            format!("DROP ROLE {bypass}"),
            "is a member of a role",
        ),
        (
            format!("GRANT CREATE ON SCHEMA public TO {app_role}"),
            format!("REVOKE CREATE ON SCHEMA public FROM {app_role}"),
            "may CREATE in the public schema",
        ),
    ] {
        admin.execute_unprepared(&grant).await.unwrap();
        let report = inspect_role(&app_database).await.unwrap();
        admin.execute_unprepared(&revoke).await.unwrap();
        assert!(
            report.problems().iter().any(|p| p.starts_with(problem)),
            "{grant}: {report:?}"
        );
    }
    assert_eq!(
        inspect_role(&app_database).await.unwrap().problems(),
        Vec::<&str>::new()
    );
    assert!(
        report.problems().iter().any(|p| p.contains("BYPASSRLS")),
        "{report:?}"
    );

    // No UPDATE or DELETE on the audit log, no DELETE of tenant rows, no DDL.
    let app = db.app_pool(1).await;
    for sql in [
        "UPDATE audit_events SET action = 'x'",
        "DELETE FROM audit_events",
        "DELETE FROM projects",
        "TRUNCATE projects",
        "ALTER TABLE projects DISABLE ROW LEVEL SECURITY",
        "CREATE TABLE intruder (id int)",
        "DROP POLICY tenant_isolation ON projects",
    ] {
        let error = fails(&app, sql).await;
        assert!(
            error.contains("permission denied") || error.contains("must be owner"),
            "{sql}: {error}"
        );
    }
}

/// A direct SQL session as the application role, with psql, outside the application.
#[tokio::test]
async fn a_raw_psql_session_as_the_app_role_reads_no_tenant_data() {
    let w = world().await;
    let admin = w.db.admin_pool().await;
    seed_other_tables(&admin, &w.a).await;
    let psql = std::env::var("TEST_PSQL").unwrap_or_else(|_| "psql".to_owned());
    let url = url::Url::parse(&w.db.app_url()).unwrap();
    let run = |sql: &str| {
        let mut without_password = url.clone();
        without_password.set_password(None).unwrap();
        std::process::Command::new(&psql)
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-d",
                without_password.as_str(),
                "-c",
                sql,
            ])
            .env("PGPASSWORD", url.password().unwrap())
            .output()
            .unwrap()
    };
    let out = run(
        "SELECT (SELECT count(*) FROM organizations) + (SELECT count(*) FROM users)
              + (SELECT count(*) FROM projects) + (SELECT count(*) FROM endpoints)
              + (SELECT count(*) FROM models) + (SELECT count(*) FROM api_tokens)
              + (SELECT count(*) FROM audit_events) + (SELECT count(*) FROM sessions)",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");

    // Turning row security off is refused rather than obeyed.
    let out = run("SET row_security = off; SELECT count(*) FROM projects");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("row-level security"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The identity-resolution switch is for the functions' owner only.
    let out = run("SET app.identity_resolution = 'on'; SELECT count(*) FROM users");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
}

/// E4: authentication belongs to the identity provider; no table can hold a password.
#[tokio::test]
async fn no_table_has_a_password_column() {
    let db = TestDatabase::new().await;
    let admin = db.admin_pool().await;
    let columns = texts(
        &admin,
        "SELECT table_name || '.' || column_name FROM information_schema.columns
         WHERE table_schema = 'public'
           AND (column_name ILIKE '%passw%' OR column_name ILIKE '%pwd%')",
    )
    .await;
    assert_eq!(columns, Vec::<Option<String>>::new());
}

#[tokio::test]
async fn predefined_roles_that_write_every_table_or_run_programs_make_the_app_role_unfit() {
    let _turn = ROLE_CHANGES.lock().await;
    let db = TestDatabase::new().await;
    let app = db.app_pool(1).await;
    let app_database = database(&db.app_url()).await;
    let admin = db.admin_pool().await;
    let app_role = db.app_role();
    let mut unnoticed = Vec::new();
    for (grant, revoke) in [
        // UPDATE and DELETE on every table: the audit log's tail can be cut.
        (
            format!("GRANT pg_write_all_data TO {app_role}"),
            format!("REVOKE pg_write_all_data FROM {app_role}"),
        ),
        // COPY … FROM PROGRAM: a shell as the server's operating-system user.
        (
            format!("GRANT pg_execute_server_program TO {app_role}"),
            format!("REVOKE pg_execute_server_program FROM {app_role}"),
        ),
        // Files of the server, its configuration and data directory included.
        (
            format!("GRANT pg_read_server_files TO {app_role}"),
            format!("REVOKE pg_read_server_files FROM {app_role}"),
        ),
        // A replication connection streams every tenant's rows, past every policy.
        (
            format!("ALTER ROLE {app_role} REPLICATION"),
            format!("ALTER ROLE {app_role} NOREPLICATION"),
        ),
    ] {
        admin.execute_unprepared(&grant).await.unwrap();
        let report = inspect_role(&app_database).await.unwrap();
        let delete = app
            .execute_unprepared("DELETE FROM audit_events WHERE false")
            .await
            .map(|_| "DELETE on audit_events allowed")
            .unwrap_or("-");
        admin.execute_unprepared(&revoke).await.unwrap();
        if report.problems().is_empty() {
            unnoticed.push(format!("{grant} ({delete})"));
        }
    }
    assert!(unnoticed.is_empty(), "fit to serve after: {unnoticed:#?}");
}
