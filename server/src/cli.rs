//! Command-line subcommands.

use std::net::SocketAddr;

use anyhow::{bail, Context};

use awx_onboard::simulator::{SimClient, SimConfig, Simulator};

use crate::config::Config;
use crate::Application;

const USAGE: &str = "usage:
  awx-onboard [serve]                      run the web app (configuration from the environment)
  awx-onboard migrate                      bring the database schema up to date, then exit
  awx-onboard check-config                 check the environment, list every problem (exit 1 if any);
                                           touches nothing
  awx-onboard rotate-key                   re-encrypt every stored token under TOKEN_ENCRYPTION_KEY
                                           (old keys in TOKEN_ENCRYPTION_RETIRED_KEYS); safe while the
                                           app serves, and to run again
  awx-onboard create-operator --email E    create an operator; the password is read from standard input
  awx-onboard create-operator --email E --reset-second-factor
                                           remove an operator's second factor (a lost device); they
                                           enrol again at their next log-in
  awx-onboard create-api-key --name NAME --scope SCOPE [--scope SCOPE]... [--expires-in-days N]
                                           create a platform API key (scopes: connections:read,
                                           tokens:read, connect:write, airwallex:proxy), ending after
                                           N days if given; the key is printed once, alone on the
                                           last line
  awx-onboard sim [--addr HOST:PORT] [--redirect-uri URI]... [--webhook-url URL]
                  [--refresh-token-ttl SECONDS]
                                           run the Airwallex simulator alone";

pub async fn run(args: Vec<String>) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        None | Some("serve") => serve().await,
        Some("sim") => sim(&args[1..]).await,
        Some("create-operator") => create_operator(&args[1..]).await,
        Some("create-api-key") => create_api_key(&args[1..]).await,
        Some("migrate") => migrate().await,
        Some("check-config") => check_config(),
        Some("rotate-key") => rotate_key().await,
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

async fn serve() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let app = Application::build(config).await?;
    app.run_until(crate::shutdown_signal()).await
}

async fn connect(config: &Config) -> anyhow::Result<awx_onboard::db::Database> {
    use secrecy::ExposeSecret;
    awx_onboard::db::Database::connect_and_migrate(config.database_url.expose_secret())
        .await
        .context("database start-up failed")
}

async fn migrate() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let db = connect(&config).await?;
    db.close().await;
    println!("database {} is up to date", crate::config::shown_database_url(&config));
    Ok(())
}

/// Reads the configuration as `serve` would and says what it found; connects to nothing
/// and creates nothing.
fn check_config() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    for line in config.summary() {
        println!("  {line}");
    }
    println!("configuration is valid");
    Ok(())
}

async fn rotate_key() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let cipher = crate::load_token_cipher(&config.token_key)?;
    let db = connect(&config).await?;
    println!("re-encrypting under key {}", cipher.current_key_id());
    let result = awx_onboard::rotation::rotate(&db, &cipher, |p| {
        println!(
            "  {} of {} re-encrypted ({} changed meanwhile, {} unreadable)",
            p.rotated, p.total, p.changed_meanwhile, p.unreadable
        );
    })
    .await;
    let left = awx_onboard::rotation::remaining(&db, cipher.current_key_id()).await;
    db.close().await;
    let progress = result?;
    let left = left?;
    if progress.unreadable > 0 {
        bail!(
            "{} stored values use a key that is not configured; add it to TOKEN_ENCRYPTION_RETIRED_KEYS and run again",
            progress.unreadable
        );
    }
    if left > 0 {
        bail!("{left} values were written under an old key meanwhile; run rotate-key again");
    }
    println!("done: every stored value is under the current key; the retired keys can be dropped");
    Ok(())
}

async fn create_operator(args: &[String]) -> anyhow::Result<()> {
    use std::io::BufRead;

    let (email, reset) = match args {
        [flag, email] if flag == "--email" => (email.clone(), false),
        [flag, email, reset] if flag == "--email" && reset == "--reset-second-factor" => (email.clone(), true),
        _ => bail!("create-operator needs --email E\n{USAGE}"),
    };
    let config = Config::from_env()?;
    if reset {
        return reset_second_factor(&config, &email).await;
    }
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .context("could not read the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("no password on standard input (try: read -rs PW && printf '%s\\n' \"$PW\" | awx-onboard create-operator --email {email})");
    }
    let db = connect(&config).await?;
    let accounts = awx_onboard::accounts::Accounts::new(db.clone(), awx_onboard::time::Clock::system(), 1);
    let created = accounts
        .create(
            &email,
            &awx_onboard::accounts::Password::new(password),
            awx_onboard::accounts::Role::Operator,
        )
        .await;
    db.close().await;
    match created {
        Ok(account) => {
            println!("operator {} created (id {})", account.email, account.id);
            Ok(())
        }
        Err(error) => bail!("could not create the operator: {error}"),
    }
}

/// An operator who lost their device (and their recovery codes): the second factor is
/// removed, and the next log-in enrols again. For the last operator; others are helped by
/// another operator.
async fn reset_second_factor(config: &Config, email: &str) -> anyhow::Result<()> {
    let db = connect(config).await?;
    let cipher = std::sync::Arc::new(crate::load_token_cipher(&config.token_key)?);
    let id: Option<i64> = sqlx::query_scalar("SELECT id FROM merchants WHERE email = $1 AND role = 'operator'")
        .bind(email.trim().to_lowercase())
        .fetch_optional(db.pool())
        .await?;
    let Some(id) = id else {
        db.close().await;
        bail!("no operator with the email {email}");
    };
    let factors = awx_onboard::accounts::second_factor::SecondFactors::new(
        db.clone(),
        awx_onboard::time::Clock::system(),
        cipher,
    );
    let removed = factors.reset(id).await;
    // Whoever holds one of their sessions (a lost device) is signed out: the next log-in
    // enrols again, with the password.
    let ended = sqlx::query("DELETE FROM sessions WHERE account_id = $1")
        .bind(id)
        .execute(db.pool())
        .await;
    db.close().await;
    ended?;
    match removed? {
        true => println!("the second factor of {email} was removed; they enrol again at their next log-in"),
        false => println!("{email} had no second factor; they enrol at their next log-in"),
    }
    Ok(())
}

async fn create_api_key(args: &[String]) -> anyhow::Result<()> {
    let mut name = None;
    let mut scopes = Vec::new();
    let mut expires_in_days = None;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let mut value = || rest.next().with_context(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--name" => name = Some(value()?.clone()),
            "--scope" => scopes.push(value()?.clone()),
            "--expires-in-days" => {
                expires_in_days = awx_onboard::platform::keys::parse_expiry_days(value()?)?;
                if expires_in_days.is_none() {
                    bail!("--expires-in-days needs a number of days\n{USAGE}");
                }
            }
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    let name = name.with_context(|| format!("create-api-key needs --name NAME\n{USAGE}"))?;
    let scopes = awx_onboard::platform::keys::parse_scopes(scopes.iter().map(String::as_str))?;
    let config = Config::from_env()?;
    let db = connect(&config).await?;
    let keys = awx_onboard::platform::keys::ApiKeys::new(db.clone(), awx_onboard::time::Clock::system());
    let created = keys.create(&name, &scopes, "command line", expires_in_days).await;
    db.close().await;
    let (key, secret) = created.map_err(|e| anyhow::anyhow!("could not create the key: {e}"))?;
    let scopes = key.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
    let ends = key
        .expires_at
        .map(|at| format!(", ending {}", awx_onboard::time::rfc3339(at)))
        .unwrap_or_default();
    println!(
        "API key {:?} ({}) created with {scopes}{ends}; it is shown only now:",
        key.name, key.id
    );
    println!("{}", secret.expose());
    Ok(())
}

async fn sim(args: &[String]) -> anyhow::Result<()> {
    let mut addr: SocketAddr = crate::config::DEFAULT_SIM_ADDR.parse().expect("default address parses");
    let mut redirect_uris = Vec::new();
    let mut webhook_url = None;
    let mut config = SimConfig::new(Vec::new());
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let mut value = || rest.next().with_context(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--addr" => addr = value()?.parse().context("--addr must look like 127.0.0.1:3100")?,
            "--redirect-uri" => redirect_uris.push(value()?.clone()),
            "--webhook-url" => webhook_url = Some(value()?.clone()),
            "--refresh-token-ttl" => {
                config.refresh_token_ttl = value()?.parse().context("--refresh-token-ttl must be seconds")?
            }
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    if !addr.ip().is_loopback() {
        bail!("--addr must be a loopback address (127.0.0.1:…): the simulator and its /__sim controls never listen on a network");
    }
    if redirect_uris.is_empty() {
        redirect_uris.push("http://127.0.0.1:3000/oauth/callback".to_string());
    }
    let mut client = SimClient::default_with_redirect(redirect_uris[0].clone());
    client.redirect_uris = redirect_uris;
    client.webhook_url = webhook_url;
    config.clients = vec![client];
    let simulator = Simulator::new(config);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("could not listen on {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "Airwallex simulator listening");
    awx_onboard::simulator::serve(listener, simulator.router(), crate::shutdown_signal()).await;
    Ok(())
}
