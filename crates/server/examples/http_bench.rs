//! The programs of `cargo xtask bench http`, one mode per process so that each server's CPU
//! time can be read from `/proc` on its own:
//!
//! - `http_bench setup`: one fresh database of the test environment xtask provides, an owner
//!   with an organization of 20 projects, and the three credentials of the benchmark: an
//!   access token (JWT), an `rh-` API token made through the store, and a browser session
//!   made through the store's session methods with its cookie encrypted as the session
//!   middleware does. Prints one JSON line (`database_url`, `database`, `user`,
//!   `organization`, `jwt`, `api_token`, `session_cookie`) and exits.
//! - `http_bench full`: the whole application over that database (every middleware, the
//!   access log written, authentication, limits, the graduated response, its background
//!   upkeep), as `serve` builds it.
//! - `http_bench bare --user U --organization O`: the same query and JSON through a bare
//!   actix handler with no security layer: the scope is fixed, no credential is read, and
//!   nothing else runs in the process.
//!
//! Configuration (keys, `DATABASE_URL` for the servers) comes from the environment, as for
//! `serve`; each server prints one JSON line (`url`) and serves until killed.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)] // a benchmark program

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, web};
use adapters_postgres::{PgStore, SecretColumns};
use clap::Parser;
use domain::{AuditAction, Email, Name, OrganizationId, Role, UserId};
use ports::{
    Clock, IdentityDirectory, NewAuditEvent, NewIdentity, NewOrganization, NewProject, PageRequest,
    ProjectSort, SessionStore, Sort, SortDirection, SystemClock, TenantScope, UnitOfWorkFactory,
};
use server::Application;
use server::config::{LogFormat, ServeArgs};
use test_support::TestDatabase;
use uuid::Uuid;

// The keys of a session's state that the session login writes; each value is JSON, as
// actix-session's `Session::insert` stores it. `cargo xtask bench http` checks the cookie
// with a request before loading, so a change of format shows as a refused path.
use api_http::{SESSION_AUTH_TIME_KEY, SESSION_USER_KEY};

#[derive(Parser)]
#[command(name = "http_bench")]
enum Mode {
    /// Creates and fills the database, makes the credentials, prints them and exits.
    Setup {
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Serves the whole application on a free loopback port.
    Full {
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Serves the bare handler on a free loopback port, in the organization given.
    Bare {
        #[command(flatten)]
        serve: ServeArgs,
        /// The user whose scope the handler uses.
        #[arg(long)]
        user: Uuid,
        /// The organization whose projects the handler lists.
        #[arg(long)]
        organization: Uuid,
    },
}

/// The project list with nothing around it: the scope is fixed, no credential is read.
async fn bare_list(
    store: web::Data<PgStore>,
    scope: web::Data<TenantScope>,
) -> actix_web::Result<HttpResponse> {
    let page = PageRequest::new(
        0,
        50,
        Sort {
            field: ProjectSort::CreatedAt,
            direction: SortDirection::Ascending,
        },
    )
    .map_err(actix_web::error::ErrorBadRequest)?;
    let uow = store
        .begin(&scope)
        .await
        .map_err(actix_web::error::ErrorInternalServerError)?;
    let page = uow
        .projects()
        .list(page)
        .await
        .map_err(actix_web::error::ErrorInternalServerError)?;
    let items: Vec<_> = page
        .items
        .iter()
        .map(|p| {
            serde_json::json!({
                "id": p.id.to_string(),
                "organization_id": p.organization_id.to_string(),
                "name": p.name.as_str(),
                "description": p.description.as_ref().map(|d| d.as_str()),
                "icon": p.icon.as_ref().map(|i| i.as_str()),
                "is_active": p.is_active,
                "owner_id": p.owner_id.map(|o| o.to_string()),
                "created_by": p.created_by.map(|o| o.to_string()),
                "created_at": p.created_at,
                "updated_at": p.updated_at,
            })
        })
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header(("x-total-count", page.total))
        .json(items))
}

/// Prints one JSON line for xtask.
fn announce(value: serde_json::Value) {
    println!("{value}");
    std::io::stdout().flush().unwrap();
}

/// 32 random bytes in url-safe base64, the shape of the ids the session store draws.
fn random_session_id() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[allow(clippy::disallowed_methods, reason = "the benchmark's fixture")]
async fn setup(serve: ServeArgs) {
    let db = TestDatabase::new().await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let pool = adapters_postgres::PoolOptions {
        max_connections: 4,
        ..Default::default()
    };
    let store = PgStore::new(
        adapters_postgres::connect(&db.app_url(), pool)
            .await
            .unwrap(),
        Arc::clone(&clock),
        Arc::new(SecretColumns::new(
            serve.encryption.cipher().unwrap(),
            Arc::clone(&clock),
        )),
        Arc::new(serve.audit.key(serve.profile).unwrap()),
    );
    let user = store
        .unscoped_sign_in(NewIdentity {
            subject: "bench|owner".to_owned(),
            email: Email::new("owner@bench.example").unwrap(),
            email_verified: true,
            name: None,
        })
        .await
        .unwrap();
    let org = store
        .found_organization(
            user.user_id,
            NewOrganization::named(Name::new("Bench").unwrap()),
            NewAuditEvent::by(Some(user.user_id), AuditAction::OrganizationCreated),
        )
        .await
        .unwrap();
    let scope = TenantScope::new(org.id, user.user_id, Role::Owner);
    let uow = store.begin(&scope).await.unwrap();
    for n in 0..20 {
        uow.projects()
            .create(NewProject {
                name: Name::new(&format!("Project {n}")).unwrap(),
                description: None,
                icon: None,
            })
            .await
            .unwrap();
    }
    // An API token of the owner, as `POST /api/v1/tokens` makes it.
    let (_, api_token) = uow
        .api_tokens()
        .create(Name::new("bench").unwrap(), None)
        .await
        .unwrap();
    uow.commit().await.unwrap();

    let auth = server::auth_settings(&serve).unwrap();
    let now = clock.now();
    let jwt = auth
        .jwt
        .issue(
            &crypto::Subject {
                user: *user.user_id.as_uuid(),
                organization: Some(*org.id.as_uuid()),
                role: Some(Role::Owner.as_str().to_owned()),
                auth_time: now,
                session: None,
            },
            Uuid::now_v7(),
            now,
        )
        .unwrap();

    // A browser session, as the login callback leaves it: the state under the SHA-256 of a
    // random id, and the id in the cookie, encrypted (actix-session's private cookie) with
    // the key `serve` derives.
    let session_id = random_session_id();
    let state = HashMap::from([
        (
            SESSION_USER_KEY,
            serde_json::to_string(user.user_id.as_uuid()).unwrap(),
        ),
        (
            SESSION_AUTH_TIME_KEY,
            serde_json::to_string(&now.timestamp()).unwrap(),
        ),
    ]);
    SessionStore::create(
        &store,
        crypto::token_digest(&session_id),
        user.user_id,
        Some(now),
        serde_json::to_string(&state).unwrap(),
        serve.login.session_lifetime(),
    )
    .await
    .unwrap();
    let mut jar = actix_web::cookie::CookieJar::new();
    jar.private_mut(&serve.auth.session_cookie_key().unwrap())
        .add(actix_web::cookie::Cookie::new(
            api_http::SESSION_COOKIE,
            session_id,
        ));
    let session_cookie = jar
        .get(api_http::SESSION_COOKIE)
        .unwrap()
        .encoded()
        .stripped()
        .to_string();

    announce(serde_json::json!({
        "database_url": db.app_url(),
        "database": &db.name,
        "user": user.user_id.as_uuid(),
        "organization": org.id.as_uuid(),
        "jwt": jwt,
        "api_token": secrecy::ExposeSecret::expose_secret(&api_token),
        "session_cookie": session_cookie,
    }));
}

async fn full(mut serve: ServeArgs) {
    serve.bind = "127.0.0.1:0".parse().unwrap();
    let app = Application::build(&serve).await.unwrap();
    announce(serde_json::json!({
        "url": format!("http://127.0.0.1:{}/api/v1/projects", app.port()),
    }));
    app.run_until_stopped().await.unwrap();
}

#[allow(
    clippy::disallowed_methods,
    reason = "the bare handler is the baseline without authentication"
)]
async fn bare(serve: ServeArgs, user: Uuid, organization: Uuid) {
    // The same pool, with the same settings, as the full application's.
    let (store, _) = server::connect_checked(&serve).await.unwrap();
    let scope = TenantScope::new(
        OrganizationId::from_uuid(organization),
        UserId::from_uuid(user),
        Role::Owner,
    );
    let (store, scope) = (web::Data::new(store), web::Data::new(scope));
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(store.clone())
            .app_data(scope.clone())
            .route("/api/v1/projects", web::get().to(bare_list))
    });
    // As the full application: the configured workers, else one per core.
    if let Some(workers) = serve.workers {
        server = server.workers(workers);
    }
    let server = server.bind("127.0.0.1:0").unwrap();
    let port = server.addrs()[0].port();
    announce(serde_json::json!({
        "url": format!("http://127.0.0.1:{port}/api/v1/projects"),
    }));
    server.run().await.unwrap();
}

#[tokio::main]
async fn main() {
    match Mode::parse() {
        Mode::Setup { serve } => setup(serve).await,
        Mode::Full { serve } => {
            server::telemetry::init(LogFormat::Json);
            full(serve).await;
        }
        Mode::Bare {
            serve,
            user,
            organization,
        } => {
            server::telemetry::init(LogFormat::Json);
            bare(serve, user, organization).await;
        }
    }
}
