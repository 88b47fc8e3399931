//! The servers of `cargo xtask bench http`, over one fresh database of the test environment
//! xtask provides: the authenticated project list through the whole application (every
//! middleware, the access log written, authentication, limits, the graduated response), and
//! the same query and JSON through a bare actix handler with no security layer. Configuration
//! beyond the database comes from the environment, as for `serve`.
//!
//! Prints one JSON line (`full`, `bare`: the URLs; `token`: an access token) and serves until
//! killed.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)] // a benchmark program

use std::io::Write;
use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, web};
use adapters_postgres::{PgStore, SecretColumns};
use clap::Parser;
use domain::{AuditAction, Email, Membership, Name, Role};
use ports::{
    AuthMethod, Clock, IdentityDirectory, NewAuditEvent, NewIdentity, NewOrganization, NewProject,
    PageRequest, Principal, ProjectSort, Sort, SortDirection, SystemClock, TenantScope,
    UnitOfWorkFactory,
};
use server::Application;
use server::config::{LogFormat, ServeArgs};
use test_support::TestDatabase;
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    serve: ServeArgs,
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

#[tokio::main]
async fn main() {
    let db = TestDatabase::new().await;
    let url = db.app_url();
    let Args { mut serve } = Args::parse_from(["http_bench", "--database-url", url.as_str()]);
    serve.bind = "127.0.0.1:0".parse().unwrap();
    server::telemetry::init(LogFormat::Json);

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = PgStore::new(
        db.app_pool(16).await,
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
    let founder = Principal::authenticated(user.user_id, None, AuthMethod::Operator, None);
    let org = store
        .found_organization(
            &founder,
            NewOrganization::named(Name::new("Bench").unwrap()),
            NewAuditEvent::by(Some(user.user_id), AuditAction::OrganizationCreated),
        )
        .await
        .unwrap();
    let membership = Membership {
        organization_id: org.id,
        role: Role::Owner,
    };
    let owner = Principal::authenticated(user.user_id, Some(membership), AuthMethod::Jwt, None);
    let scope = owner.tenant_scope().unwrap();
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
    uow.commit().await.unwrap();

    let auth = server::auth_settings(&serve).unwrap();
    let now = clock.now();
    let token = auth
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

    let full = Application::build(&serve).await.unwrap();
    let full_port = full.port();
    let workers = serve.workers.unwrap_or(2);
    let (store, scope) = (web::Data::new(store), web::Data::new(scope));
    let bare = HttpServer::new(move || {
        App::new()
            .app_data(store.clone())
            .app_data(scope.clone())
            .route("/api/v1/projects", web::get().to(bare_list))
    })
    .workers(workers)
    .bind("127.0.0.1:0")
    .unwrap();
    let bare_port = bare.addrs()[0].port();
    println!(
        "{}",
        serde_json::json!({
            "full": format!("http://127.0.0.1:{full_port}/api/v1/projects"),
            "bare": format!("http://127.0.0.1:{bare_port}/api/v1/projects"),
            "token": token,
        })
    );
    std::io::stdout().flush().unwrap();
    let (full, bare) = tokio::join!(full.run_until_stopped(), bare.run());
    full.unwrap();
    bare.unwrap();
}
