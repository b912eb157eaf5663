//! The `dlq` command line: its words parsed into a [`Command`], and the
//! usage text.

use crate::messaging::AmqpSettings;

/// Default of `list --limit`.
pub const DEFAULT_LIST_LIMIT: usize = 50;

/// A parsed `dlq` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    List { limit: usize, json: bool },
    Show { message_id: String, json: bool },
    Replay { target: Target, limit: usize },
    Purge { target: Target },
}

/// Which parked messages a replay or purge applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    One(String),
    All,
}

impl Target {
    pub(super) fn filter(&self) -> Option<&str> {
        match self {
            Target::One(id) => Some(id),
            Target::All => None,
        }
    }
}

/// Parses the words after `dlq`.
pub fn parse(args: &[String]) -> Result<Command, String> {
    if args
        .iter()
        .any(|a| matches!(a.as_str(), "-h" | "--help" | "help"))
    {
        return Ok(Command::Help);
    }
    let Some((name, rest)) = args.split_first() else {
        return Err("missing command".into());
    };
    let mut limit: Option<usize> = None;
    let mut json = false;
    let mut all = false;
    let mut positional: Vec<&str> = Vec::new();
    let mut words = rest.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "--json" => json = true,
            "--all" => all = true,
            "--limit" => {
                let value = words.next().ok_or("--limit needs a number")?;
                limit = Some(parse_limit(value)?);
            }
            w if w.starts_with("--limit=") => limit = Some(parse_limit(&w[8..])?),
            w if w.starts_with('-') => return Err(format!("unknown option {w}")),
            w => positional.push(w),
        }
    }
    let refuse = |flag: &str, given: bool| {
        if given {
            Err(format!("{name} does not take {flag}"))
        } else {
            Ok(())
        }
    };
    let target = |all: bool, positional: &[&str]| match (all, positional) {
        (true, []) => Ok(Target::All),
        (false, [id]) => Ok(Target::One((*id).to_owned())),
        (true, [_]) => Err(format!(
            "{name}: give either a message id or --all, not both"
        )),
        (false, []) => Err(format!(
            "{name} needs a message id or --all (it never applies to everything by default)"
        )),
        (_, _) => Err(format!("{name} takes one message id")),
    };
    match name.as_str() {
        "list" => {
            refuse("--all", all)?;
            if let Some(extra) = positional.first() {
                return Err(format!("list takes no argument (got {extra})"));
            }
            Ok(Command::List {
                limit: limit.unwrap_or(DEFAULT_LIST_LIMIT),
                json,
            })
        }
        "show" => {
            refuse("--all", all)?;
            refuse("--limit", limit.is_some())?;
            match positional.as_slice() {
                [id] => Ok(Command::Show {
                    message_id: (*id).to_owned(),
                    json,
                }),
                [] => Err("show needs a message id".into()),
                _ => Err("show takes one message id".into()),
            }
        }
        "replay" => {
            refuse("--json", json)?;
            Ok(Command::Replay {
                target: target(all, &positional)?,
                limit: limit.unwrap_or(usize::MAX),
            })
        }
        "purge" => {
            refuse("--json", json)?;
            refuse("--limit", limit.is_some())?;
            Ok(Command::Purge {
                target: target(all, &positional)?,
            })
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

fn parse_limit(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("--limit must be a positive number, got {value:?}")),
    }
}

pub(super) fn short_usage(program: &str) -> String {
    format!(
        "Usage: {program} dlq list [--limit N] [--json]\n       \
         {program} dlq show <message_id> [--json]\n       \
         {program} dlq replay (<message_id> | --all) [--limit N]\n       \
         {program} dlq purge (<message_id> | --all)\n"
    )
}

/// The `--help` text.
pub fn usage(program: &str, queue: &str, dlq: &str) -> String {
    format!(
        "Inspect, replay and purge the messages {program} parked.\n\
         \n  \
         work queue:        {queue}\n  \
         dead-letter queue: {dlq}\n\
         \n\
         {short}\
         \n\
         Commands:\n  \
         list      List parked messages, oldest first (default --limit {DEFAULT_LIST_LIMIT}).\n            \
                   Nothing is removed. --json prints a JSON array.\n  \
         show      Print the properties, headers and full body of the parked\n            \
                   message(s) with this message_id (the event id).\n  \
         replay    Publish the message with this id (every copy), or all of them\n            \
                   (--all, at most --limit), back to the work queue with\n            \
                   x-retry-count 0. Each is removed from the dead-letter queue\n            \
                   only after the broker has confirmed its republish.\n  \
         purge     Delete the message with this id (every copy), or all of them\n            \
                   (--all), for good.\n\
         \n\
         replay and purge need a message id or --all. Without `dlq`, {program}\n\
         runs the service. The command connects with RABBITMQ_URL\n\
         (default {url}).\n",
        short = short_usage(program),
        url = AmqpSettings::DEFAULT_URL,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &str) -> Vec<String> {
        words.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn list_takes_a_limit_and_json() {
        assert_eq!(
            parse(&args("list")),
            Ok(Command::List {
                limit: DEFAULT_LIST_LIMIT,
                json: false
            })
        );
        assert_eq!(
            parse(&args("list --limit 5 --json")),
            Ok(Command::List {
                limit: 5,
                json: true
            })
        );
        assert_eq!(
            parse(&args("list --limit=7")),
            Ok(Command::List {
                limit: 7,
                json: false
            })
        );
        assert!(parse(&args("list --limit 0")).is_err());
        assert!(parse(&args("list --limit")).is_err());
        assert!(parse(&args("list extra")).is_err());
    }

    #[test]
    fn purge_needs_an_explicit_id_or_all() {
        let refused = parse(&args("purge")).unwrap_err();
        assert!(refused.contains("--all"), "{refused}");
        assert_eq!(
            parse(&args("purge abc")),
            Ok(Command::Purge {
                target: Target::One("abc".into())
            })
        );
        assert_eq!(
            parse(&args("purge --all")),
            Ok(Command::Purge {
                target: Target::All
            })
        );
        assert!(parse(&args("purge abc --all")).is_err());
        assert!(parse(&args("purge a b")).is_err());
    }

    #[test]
    fn replay_needs_an_explicit_id_or_all_too() {
        assert!(parse(&args("replay")).is_err());
        assert_eq!(
            parse(&args("replay abc")),
            Ok(Command::Replay {
                target: Target::One("abc".into()),
                limit: usize::MAX
            })
        );
        assert_eq!(
            parse(&args("replay --all --limit 10")),
            Ok(Command::Replay {
                target: Target::All,
                limit: 10
            })
        );
    }

    #[test]
    fn show_needs_one_id() {
        assert_eq!(
            parse(&args("show abc --json")),
            Ok(Command::Show {
                message_id: "abc".into(),
                json: true
            })
        );
        assert!(parse(&args("show")).is_err());
        assert!(parse(&args("show --all")).is_err());
    }

    #[test]
    fn help_wins_and_unknown_words_are_refused() {
        assert_eq!(parse(&args("--help")), Ok(Command::Help));
        assert_eq!(parse(&args("purge -h")), Ok(Command::Help));
        assert_eq!(parse(&args("help")), Ok(Command::Help));
        assert!(parse(&args("")).is_err());
        assert!(parse(&args("drop")).is_err());
        assert!(parse(&args("list --force")).is_err());
    }
}
