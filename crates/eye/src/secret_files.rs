//! The `*_FILE` convention: any setting read from a variable `EYE_X` may instead be
//! read from the file named by `EYE_X_FILE` (a Docker or Kubernetes secret, say), so
//! that the secret is not in the process environment that `docker inspect` shows.
//!
//! It works on the clap command itself: for every argument that reads a variable, a
//! `_FILE` twin found in the environment becomes the argument's default value. A flag
//! or the plain variable would override a default, so both being set is refused
//! instead: an operator who sets a secret two ways has made a mistake we should name.

use std::ffi::OsString;

use anyhow::{Context, bail};
use clap::Command;

/// `command` with the value of every `EYE_X_FILE` found as the default of the argument
/// that reads `EYE_X`, in the command and all its subcommands.
pub fn apply(command: Command) -> anyhow::Result<Command> {
    apply_with(command, &|name| std::env::var_os(name))
}

fn apply_with(
    mut command: Command,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> anyhow::Result<Command> {
    let with_env: Vec<(clap::Id, String)> = command
        .get_arguments()
        .filter_map(|arg| {
            let name = arg.get_env()?.to_str()?.to_owned();
            Some((arg.get_id().clone(), name))
        })
        .collect();
    for (id, name) in with_env {
        if let Some(value) = read_file_variable(&name, env)? {
            // clap keeps defaults as 'static; this runs once per process at start.
            let value: &'static str = Box::leak(value.into_boxed_str());
            command = command.mut_arg(id, |arg| arg.default_value(value).hide_default_value(true));
        }
    }
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    for name in names {
        let sub = command
            .find_subcommand(&name)
            .cloned()
            .expect("a listed subcommand exists");
        let sub = apply_with(sub, env)?;
        command = command.mut_subcommand(&name, move |_| sub);
    }
    Ok(command)
}

/// The contents of the file `NAME_FILE` names, without its final line break, when that
/// variable is set.
fn read_file_variable(
    name: &str,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> anyhow::Result<Option<String>> {
    let file_variable = format!("{name}_FILE");
    let Some(path) = env(&file_variable) else {
        return Ok(None);
    };
    if env(name).is_some() {
        bail!("both {name} and {file_variable} are set: set one of them");
    }
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {file_variable} ({})",
            std::path::Path::new(&path).display()
        )
    })?;
    let value = text.strip_suffix('\n').unwrap_or(&text);
    let value = value.strip_suffix('\r').unwrap_or(value);
    Ok(Some(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use clap::{Arg, ArgMatches};

    use super::*;

    fn command() -> Command {
        Command::new("eye")
            .arg(Arg::new("url").long("url").env("EYE_URL").global(true))
            .subcommand(
                Command::new("serve")
                    .arg(Arg::new("password").long("password").env("EYE_PASSWORD")),
            )
    }

    fn parse(args: &[&str], env: &HashMap<&str, String>) -> anyhow::Result<ArgMatches> {
        let lookup = |name: &str| env.get(name).map(OsString::from);
        let command = apply_with(command(), &lookup)?;
        Ok(command.try_get_matches_from(args)?)
    }

    #[test]
    fn a_file_variable_gives_the_value_to_the_argument_and_its_subcommands() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("url");
        std::fs::write(&url, "postgres://eye:s3cret@db/eye\n").unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "correct horse battery").unwrap();
        let env = HashMap::from([
            ("EYE_URL_FILE", url.display().to_string()),
            ("EYE_PASSWORD_FILE", password.display().to_string()),
        ]);
        let matches = parse(&["eye", "serve"], &env).unwrap();
        let serve = matches.subcommand_matches("serve").unwrap();
        assert_eq!(
            serve.get_one::<String>("password").unwrap(),
            "correct horse battery"
        );
        assert_eq!(
            matches.get_one::<String>("url").unwrap(),
            "postgres://eye:s3cret@db/eye",
            "the final line break is not part of the value"
        );
        // A flag still wins over the file, as over any variable.
        let matches = parse(&["eye", "--url", "flag", "serve"], &env).unwrap();
        assert_eq!(matches.get_one::<String>("url").unwrap(), "flag");
    }

    #[test]
    fn a_variable_set_both_ways_or_a_missing_file_is_refused_by_name() {
        let env = HashMap::from([
            ("EYE_URL", "plain".to_owned()),
            ("EYE_URL_FILE", "/nowhere".to_owned()),
        ]);
        let error = parse(&["eye"], &env).unwrap_err().to_string();
        assert!(error.contains("EYE_URL and EYE_URL_FILE"), "{error}");

        let env = HashMap::from([("EYE_PASSWORD_FILE", "/nowhere/at/all".to_owned())]);
        let error = format!("{:#}", parse(&["eye", "serve"], &env).unwrap_err());
        assert!(
            error.contains("EYE_PASSWORD_FILE") && error.contains("/nowhere/at/all"),
            "{error}"
        );
    }
}
