use std::process::ExitCode;

use clap::Parser;
use tidings::config::{Cli, Command, UserCommand};
use tidings::{persistence, shutdown, telemetry, Application};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.config.log_format);
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config).await,
        Command::Migrate => migrate(&cli.config).await,
        Command::User {
            action: UserCommand::Create { username },
        } => create_user(cli.config, username).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "tidings stopped");
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error>;

async fn serve(config: tidings::Config) -> Result<(), BoxError> {
    Application::build(config)
        .await?
        .run_until_stopped(shutdown::signal())
        .await?;
    Ok(())
}

async fn migrate(config: &tidings::Config) -> Result<(), BoxError> {
    let db = persistence::connect(
        &config.database_url,
        config.db_pool_size,
        config.db_acquire_timeout(),
    )
    .await?;
    persistence::migrate(&db).await?;
    println!("migrations applied");
    Ok(())
}

async fn create_user(config: tidings::Config, username: String) -> Result<(), BoxError> {
    let created = tidings::admin::create_user(config, &username).await?;
    println!("id: {}\nsecretkey: {}", created.id, created.secretkey);
    Ok(())
}
