//! The management commands: each parses its arguments, calls the service layer (the
//! same rules and audit log as the JSON API and the admin UI) or reads the store, and
//! prints the answer: secrets alone on stdout, everything for humans on stderr.

use anyhow::Context;
use eye_core::EventType;
use eye_core::Timestamp;
use eye_core::auth::Scope;
use eye_core::retention::Retention;
use eye_core::schema::SchemaMode;
use eye_server::Settings;
use eye_server::service::users::{self, Role as UserRole};
use eye_server::service::{Actor, access, indexes, lifecycle, schemas};
use eye_server::startup::open_store;
use eye_store::ErasureFilter;

use crate::{AppCommand, EraseArgs, SchemaCommand, TokenCommand, UserCommand};

/// `eye migrate`: opening the store applies its pending migrations.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    open_store(settings).await?;
    eprintln!("the store is up to date");
    Ok(())
}

pub async fn app(settings: &Settings, command: AppCommand) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let actor = Actor::cli();
    match command {
        AppCommand::Create {
            name,
            allowed_origins,
        } => {
            let (_, token) =
                access::create_app(store.as_ref(), &actor, &name, &allowed_origins).await?;
            eprintln!("created application {name:?}; its ingest token (shown only once):");
            println!("{token}");
        }
        AppCommand::List => {
            for app in store.list_apps().await? {
                let status = match app.revoked_at {
                    Some(at) => format!("revoked {at}"),
                    None => "active".to_owned(),
                };
                println!(
                    "{}\t{}\tcreated {}\t{status}\t{}",
                    app.id,
                    app.name,
                    app.created_at,
                    app.allowed_origins.join(" ")
                );
            }
        }
        AppCommand::Origins {
            name,
            allowed_origins,
        } => {
            let origins =
                access::set_origins(store.as_ref(), &actor, &name, &allowed_origins).await?;
            eprintln!(
                "{name:?} accepts events from browsers at: {}; servers apply it within a second",
                if origins.is_empty() {
                    "no origin".to_owned()
                } else {
                    origins.join(" ")
                }
            );
        }
        AppCommand::Revoke { name } => {
            access::revoke_app(store.as_ref(), &actor, &name).await?;
            eprintln!("revoked application {name:?} and its tokens");
        }
        AppCommand::Retention { name, keep } => {
            let retention = match keep.as_str() {
                "global" => None,
                other => Some(other.parse::<Retention>()?),
            };
            lifecycle::set_app_retention(store.as_ref(), &actor, &name, retention).await?;
            let shown = retention.map_or_else(
                || format!("the global retention ({})", settings.retention),
                |r| r.to_string(),
            );
            eprintln!("{name:?} keeps its events for {shown}; the next retention run applies it");
        }
    }
    Ok(())
}

pub async fn token(settings: &Settings, command: TokenCommand) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let actor = Actor::cli();
    match command {
        TokenCommand::Create { scope, app, label } => {
            let scope = Scope::parse(&scope).context("unknown scope")?;
            let (id, token) = access::create_token(
                store.as_ref(),
                &actor,
                scope,
                app.as_deref(),
                label.as_deref(),
            )
            .await?;
            eprintln!("created {} token {id} (shown only once):", scope.as_str());
            println!("{token}");
        }
        TokenCommand::List => {
            for token in store.list_tokens().await? {
                let status = match token.revoked_at {
                    Some(at) => format!("revoked {at}"),
                    None => "active".to_owned(),
                };
                println!(
                    "{}\t{}\t{}\t{}\tcreated {}\t{status}",
                    token.id,
                    token.scope,
                    token.app.as_deref().unwrap_or("-"),
                    token.label.as_deref().unwrap_or("-"),
                    token.created_at
                );
            }
        }
        TokenCommand::Revoke { id } => {
            access::revoke_token(store.as_ref(), &actor, id).await?;
            eprintln!("revoked token {id}");
        }
    }
    Ok(())
}

pub async fn user(settings: &Settings, command: UserCommand) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    match command {
        UserCommand::Create { email, role } => {
            let role = UserRole::parse(&role).context("unknown role")?;
            let password = read_password()?;
            users::create_user(store.as_ref(), &Actor::cli(), &email, &password, role).await?;
            eprintln!("created {} user {email}", role.as_str());
        }
        UserCommand::List => {
            for user in store.list_users().await? {
                let status = match user.disabled_at {
                    Some(at) => format!("disabled {at}"),
                    None => "active".to_owned(),
                };
                println!(
                    "{}\t{}\t{}\tcreated {}\t{status}",
                    user.id, user.email, user.role, user.created_at
                );
            }
        }
    }
    Ok(())
}

/// A password from a prompt without echo (a terminal, asked twice) or stdin's first line.
fn read_password() -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("password: ")?;
        let again = rpassword::prompt_password("password again: ")?;
        anyhow::ensure!(first == again, "the two passwords differ");
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub async fn audit(settings: &Settings, limit: usize) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    for entry in store.audit_log(limit).await? {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            entry.at,
            entry.actor,
            entry.action,
            entry.target,
            entry.details.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

pub async fn schema(settings: &Settings, command: SchemaCommand) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    match command {
        SchemaCommand::Set {
            category,
            name,
            file,
            mode,
        } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
                    .context("reading the schema from stdin")?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let schema: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let event_type = event_type(&category, &name)?;
            let mode = mode.as_deref().and_then(SchemaMode::parse);
            let (record, created) = schemas::set(
                store.as_ref(),
                None,
                &Actor::cli(),
                &event_type,
                &schema,
                mode,
            )
            .await?;
            let what = if created { "set" } else { "unchanged at" };
            eprintln!(
                "{:?}/{:?}: schema {what} version {} ({}); servers apply it within a second",
                record.category,
                record.name,
                record.version,
                record.mode.as_str()
            );
        }
        SchemaCommand::List => {
            println!("category\tname\tmode\tschema_version\tversions\tevents\tindexed");
            for t in store.event_types().await? {
                let current = t
                    .schema_version
                    .map_or_else(|| "-".to_owned(), |v| v.to_string());
                let versions: Vec<String> = t.versions.iter().map(i64::to_string).collect();
                let mode = if t.registered {
                    t.mode.as_str()
                } else {
                    "unregistered"
                };
                let indexed: Vec<String> = t.indexed.iter().map(|f| f.path.clone()).collect();
                println!(
                    "{}\t{}\t{mode}\t{current}\t{}\t{}\t{}",
                    t.category,
                    t.name,
                    if versions.is_empty() {
                        "-".to_owned()
                    } else {
                        versions.join(",")
                    },
                    t.event_count,
                    if indexed.is_empty() {
                        "-".to_owned()
                    } else {
                        indexed.join(",")
                    }
                );
            }
        }
        SchemaCommand::Show {
            category,
            name,
            version,
        } => {
            let event_type = event_type(&category, &name)?;
            let record = store.schema(&event_type, version).await?.with_context(|| {
                let which =
                    version.map_or("a current schema".to_owned(), |v| format!("version {v}"));
                format!(
                    "{:?}/{:?} has no {which}",
                    event_type.category, event_type.name
                )
            })?;
            let value: serde_json::Value = serde_json::from_str(record.schema.get())?;
            eprintln!(
                "{:?}/{:?} version {} ({}{})",
                record.category,
                record.name,
                record.version,
                record.mode.as_str(),
                if record.current { ", current" } else { "" }
            );
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        SchemaCommand::Index {
            category,
            name,
            paths,
            clear,
        } => {
            let event_type = event_type(&category, &name)?;
            let fields = if paths.is_empty() && !clear {
                store.indexed_fields(&event_type).await?
            } else {
                let paths = indexes::parse(&paths)?;
                let fields =
                    indexes::set(store.as_ref(), None, &Actor::cli(), &event_type, &paths).await?;
                eprintln!(
                    "{:?}/{:?}: {} indexed field(s); a running server builds new indexes within seconds",
                    event_type.category,
                    event_type.name,
                    fields.len()
                );
                fields
            };
            for field in fields {
                let error = field.error.map(|e| format!("\t{e}")).unwrap_or_default();
                println!("{}\t{}{error}", field.path, field.state.as_str());
            }
        }
        SchemaCommand::Delete { category, name } => {
            let event_type = event_type(&category, &name)?;
            schemas::delete(store.as_ref(), None, &Actor::cli(), &event_type).await?;
            eprintln!(
                "{:?}/{:?}: schema removed; its events are no longer checked",
                event_type.category, event_type.name
            );
        }
    }
    Ok(())
}

/// The type the command line names, checked as the API checks it.
fn event_type(category: &str, name: &str) -> anyhow::Result<EventType> {
    EventType::parse(category, name).map_err(|(field, why)| anyhow::anyhow!("the {field} {why}"))
}

/// `eye retention run`.
pub async fn run_retention(settings: &Settings) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let expired = lifecycle::expire_now(
        store.as_ref(),
        settings.retention_policy(),
        Some(&Actor::cli()),
        None,
    )
    .await?;
    println!(
        "{} events\t{} sessions\t{} refused",
        expired.events, expired.sessions, expired.refused
    );
    Ok(())
}

/// `eye erase`: records the erasure, then deletes what it covers, and prints it.
pub async fn erase(settings: &Settings, args: EraseArgs) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let time = |text: Option<String>, flag: &str| -> anyhow::Result<Option<Timestamp>> {
        text.map(|t| Timestamp::parse(&t).with_context(|| format!("--{flag} {t:?}")))
            .transpose()
    };
    let app_id = match &args.app {
        Some(app) => Some(lifecycle::app_id(store.as_ref(), app).await?),
        None => None,
    };
    let mut data = Vec::new();
    for pair in &args.data {
        let (path, value) = pair
            .split_once('=')
            .with_context(|| format!("--data {pair:?} is not path=value"))?;
        data.push((
            path.split('.').map(str::to_owned).collect(),
            value.to_owned(),
        ));
    }
    let filter = ErasureFilter {
        session_id: args.session_id,
        app_id,
        category: args.category,
        name: args.name,
        from: time(args.from, "from")?,
        to: time(args.to, "to")?,
        data,
    };
    let erasure = lifecycle::start_erasure(store.as_ref(), &Actor::cli(), filter).await?;
    eprintln!("erasure {} recorded; deleting", erasure.id);
    let done = lifecycle::finish_erasure(store.as_ref(), erasure.id).await?;
    println!(
        "{} events\t{} sessions\t{} refused",
        done.removed.events, done.removed.sessions, done.removed.refused
    );
    Ok(())
}
