//! `wharf user` and `wharf token`: credentials in the metadata database,
//! through `wharf::admin`; works while the server runs.

use std::io::{BufRead, IsTerminal, Write};

use std::sync::Arc;
use wharf::admin;
use wharf::server;

use wharf::storage::{CredentialStore, SqlMetadata};

use super::args::{CommonArgs, KeysCommand, TokenCommand, UserCommand};
use super::output::format_ms;
use super::{Result, load_config, open_store};

/// The audit log the commands record in (directly: no server loop here), and
/// their actor.
fn audit_of(store: &Arc<SqlMetadata>) -> (wharf::audit::Audit, String) {
    let store: Arc<dyn wharf::storage::AuditStore> = store.clone();
    (
        wharf::audit::Audit::direct(store),
        wharf::audit::cli_actor(),
    )
}

/// Reads a password: from a prompt (twice) on a terminal, else the first line of stdin.
fn read_password() -> Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            return Err("the passwords differ".into());
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// `wharf user ...`: one confirmation line per change, tab-separated lists.
pub async fn user(command: UserCommand, common: CommonArgs) -> Result {
    let mut out = std::io::stdout().lock();
    if let UserCommand::Hash = command {
        let hash = wharf::auth::hash_password(&read_password()?)?;
        writeln!(out, "{hash}")?;
        return Ok(());
    }
    let shared = Arc::new(open_store(&common).await?);
    let (audit, actor) = audit_of(&shared);
    let store: &SqlMetadata = &shared;
    macro_rules! by {
        () => {
            admin::By {
                audit: &audit,
                actor: &actor,
            }
        };
    }
    match command {
        UserCommand::Add { name, groups } => {
            admin::add_user(store, &name, &read_password()?, groups, by!()).await?;
            writeln!(out, "user {name} saved")?;
        }
        UserCommand::Remove { name } => {
            let removed = admin::remove_user(store, &name, by!()).await?;
            writeln!(
                out,
                "user {name} removed with {} access key(s); their tokens stop working",
                removed.access_keys
            )?;
        }
        UserCommand::List => {
            for u in store.users().await? {
                writeln!(out, "{}\t{}", u.name, u.groups.join(","))?;
            }
        }
        UserCommand::Passwd { name } => {
            admin::set_password(store, &name, &read_password()?, by!()).await?;
            writeln!(out, "password of {name} changed")?;
        }
        UserCommand::Keys { command } => match command {
            KeysCommand::Create { user } => {
                let config = load_config(&common, None)?;
                let config_users: Vec<String> =
                    config.auth.users.iter().map(|u| u.name.clone()).collect();
                let secrets = server::open_secrets(&config, store).await?;
                let (id, secret) =
                    admin::create_access_key(store, &secrets, &user, &config_users, by!()).await?;
                writeln!(
                    out,
                    "aws_access_key_id = {id}\naws_secret_access_key = {secret}"
                )?;
            }
            KeysCommand::List { user } => {
                for k in store.access_keys(user.as_deref()).await? {
                    writeln!(
                        out,
                        "{}\t{}\tcreated {}",
                        k.id,
                        k.user,
                        format_ms(k.created_at_ms)
                    )?;
                }
            }
            KeysCommand::Revoke { id } => {
                admin::revoke_access_key(store, &id, by!()).await?;
                writeln!(out, "access key {id} revoked")?;
            }
        },
        UserCommand::Hash => {}
    }
    Ok(())
}

/// `wharf token ...`: the secret once on creation, tab-separated lists.
pub async fn token(command: TokenCommand, common: CommonArgs) -> Result {
    let shared = Arc::new(open_store(&common).await?);
    let (audit, actor) = audit_of(&shared);
    let store: &SqlMetadata = &shared;
    macro_rules! by {
        () => {
            admin::By {
                audit: &audit,
                actor: &actor,
            }
        };
    }
    let mut out = std::io::stdout().lock();
    match command {
        TokenCommand::Create {
            name,
            scopes,
            expires,
        } => {
            let secret = admin::create_token(
                store,
                &name,
                &scopes,
                admin::parse_duration(&expires)?,
                by!(),
            )
            .await?;
            writeln!(out, "{secret}")?;
        }
        TokenCommand::List => {
            for t in store.access_tokens().await? {
                let expires = t.expires_at_ms.map_or("never".to_string(), format_ms);
                writeln!(
                    out,
                    "{}\t{}\texpires {}",
                    t.name,
                    t.scopes.join(" "),
                    expires
                )?;
            }
        }
        TokenCommand::Revoke { name } => {
            admin::revoke_token(store, &name, by!()).await?;
            writeln!(out, "access token {name} revoked")?;
        }
    }
    Ok(())
}
