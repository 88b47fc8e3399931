use std::process::ExitCode;

use clap::Parser;
use server::config::{Cli, Command, LogFormat};
use server::{Application, StartupError, telemetry};

/// The error and its causes on one line, for the operator.
fn report(err: &StartupError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Configuration, database role and a sample of the stored secrets, as `serve` checks them.
async fn check_config(args: &server::config::ServeArgs) -> Result<String, StartupError> {
    server::auth_settings(args)?;
    args.audit.key(args.profile)?;
    args.browser.cors_origins(args.profile)?;
    server::check_tls(args)?;
    let (store, role) = server::connect_checked(args).await?;
    server::check_secrets(&store, args.profile).await?;
    server::check_audit_key(&store, args.profile).await?;
    args.auth.session_cookie_key()?;
    let login = server::login_settings(
        args,
        std::sync::Arc::new(store.clone()),
        std::sync::Arc::new(ports::SystemClock),
    )?;
    Ok(format!(
        "configuration valid; database role {:?} is fit; browser login {}",
        role.role,
        if login.is_some() {
            "configured"
        } else {
            "off (no identity provider)"
        }
    ))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Serve(args) | Command::CheckConfig(args) | Command::SeedDev(args) => {
            args.log_format
        }
        Command::AuditVerify(args) => args.serve.log_format,
        Command::Reencrypt(args) => args.serve.log_format,
        Command::Blocks(args) => args.serve.log_format,
        Command::Migrate(_) => LogFormat::Pretty,
    };
    telemetry::init(format);
    let outcome: Result<Option<String>, StartupError> = match cli.command {
        Command::Serve(args) => match Application::build(&args).await {
            Ok(app) => app
                .run_until_stopped()
                .await
                .map(|()| None)
                .map_err(StartupError::Bind),
            Err(e) => Err(e),
        },
        Command::CheckConfig(args) => check_config(&args).await.map(Some),
        Command::Migrate(args) => server::migrate(&args).await.map(Some),
        Command::SeedDev(args) => server::seed_dev(&args).await.map(Some),
        Command::Reencrypt(args) => server::reencrypt(&args).await.map(Some),
        Command::AuditVerify(args) => server::audit_verify(&args).await.map(Some),
        Command::Blocks(args) => server::blocks(&args).await.map(Some),
    };
    match outcome {
        Ok(message) => {
            if let Some(message) = message {
                #[allow(clippy::print_stdout)]
                {
                    println!("{message}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(error = %report(&err), "stopped");
            ExitCode::FAILURE
        }
    }
}
