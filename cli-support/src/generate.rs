//! The hidden `generate` subcommand: man pages and shell completions from a
//! binary's clap definitions, for packagers (the Debian package runs it at
//! build time).
//!
//! ```text
//! vhub generate man --out DIR          DIR/vhub.1, DIR/vhub-user.1, DIR/vhub-user-add.1, …
//! vhub generate completions --out DIR  DIR/vhub.bash, DIR/_vhub (zsh), DIR/vhub.fish
//! ```
//!
//! One page per visible subcommand, nested ones named
//! `NAME-SUB-SUBSUB.1`; hidden subcommands and clap's `help` get none. DIR
//! is created if missing; the paths written are printed on standard output,
//! one per line. The pages carry no date and the short version only (not
//! the OpenSSL version of the build machine), so that two builds of the same
//! source give the same files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgMatches, Command, CommandFactory, FromArgMatches, Parser, Subcommand};
use clap_complete::Shell;
use clap_mangen::Man;

/// `generate`: man pages or shell completions for packagers.
#[derive(Parser, Debug)]
#[command(name = "generate")]
struct Generate {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand, Debug)]
enum What {
    /// Man pages: NAME.1, and NAME-SUB.1 for each subcommand.
    Man {
        /// Directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Shell completions: NAME.bash, _NAME (zsh), NAME.fish.
    Completions {
        /// Directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// A file or directory that could not be written, named.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot create the directory {}: {source} (give --out a directory you can write to)", dir.display())]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source} (give --out a directory you can write to)", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `cmd` with the hidden `generate` subcommand (not in `--help`).
pub fn attach(cmd: Command) -> Command {
    cmd.subcommand(Generate::command().hide(true))
}

/// When `matches` ask for `generate`: writes what it asks for, made from
/// `cmd` (the binary's definitions without `generate`), and returns the
/// exit code; otherwise `None`. Errors are printed as `NAME: …`.
pub fn run_if_asked(matches: &ArgMatches, cmd: Command) -> Option<ExitCode> {
    let ("generate", m) = matches.subcommand()? else {
        return None;
    };
    let name = cmd.get_name().to_owned();
    let written = match Generate::from_arg_matches(m) {
        Err(e) => e.exit(),
        Ok(Generate {
            what: What::Man { out },
        }) => man_pages(cmd, &out),
        Ok(Generate {
            what: What::Completions { out },
        }) => completions(cmd, &out),
    };
    Some(match written {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    })
}

/// Writes `NAME.1` and one page per visible subcommand into `dir`;
/// returns the paths written, the program's page first.
pub fn man_pages(cmd: Command, dir: &Path) -> Result<Vec<PathBuf>, GenerateError> {
    create_dir(dir)?;
    // Without the long version (it names the build machine's OpenSSL) and
    // without clap's `help` subcommand. Building sets each subcommand's
    // display name to `NAME-SUB`, the page's name.
    let mut cmd = cmd.long_version(None::<&str>).disable_help_subcommand(true);
    // NAME says "vhub - …" itself: an about written "vhub — …" for --help
    // would read "vhub - vhub — …".
    if let Some(about) = cmd.get_about().map(|a| a.to_string()) {
        let prefix = format!("{} — ", cmd.get_name());
        if let Some(rest) = about.strip_prefix(&prefix) {
            cmd = cmd.about(rest.to_owned());
        }
    }
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, dir, &mut written)?;
    Ok(written)
}

fn write_pages(cmd: &Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<(), GenerateError> {
    let man = Man::new(cmd.clone());
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page)
        .map_err(|source| GenerateError::Write {
            path: path.clone(),
            source,
        })?;
    write_file(&path, &page)?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

/// Writes `NAME.bash`, `_NAME` (zsh) and `NAME.fish` into `dir`; returns
/// the paths written.
pub fn completions(mut cmd: Command, dir: &Path) -> Result<Vec<PathBuf>, GenerateError> {
    create_dir(dir)?;
    let name = cmd.get_name().to_owned();
    let mut written = Vec::new();
    for (shell, file) in [
        (Shell::Bash, format!("{name}.bash")),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd, &name, &mut script);
        let path = dir.join(file);
        write_file(&path, &script)?;
        written.push(path);
    }
    Ok(written)
}

fn create_dir(dir: &Path) -> Result<(), GenerateError> {
    std::fs::create_dir_all(dir).map_err(|source| GenerateError::CreateDir {
        dir: dir.to_owned(),
        source,
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), GenerateError> {
    std::fs::write(path, bytes).map_err(|source| GenerateError::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small program with a nested subcommand and a hidden one.
    fn demo() -> Command {
        Command::new("demo")
            .about("demo — shows how it works")
            .version("1.0")
            .long_version("1.0\nOpenSSL from the build machine")
            .arg(
                clap::Arg::new("verbose")
                    .long("verbose")
                    .action(clap::ArgAction::SetTrue),
            )
            .subcommand(
                Command::new("user")
                    .about("Manage users")
                    .subcommand(Command::new("add").about("Add a user")),
            )
            .subcommand(Command::new("secret").hide(true))
    }

    fn names(paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn one_page_per_visible_subcommand_without_the_long_version() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("new/man1");
        let written = man_pages(demo(), &out).unwrap();
        assert_eq!(
            names(&written),
            ["demo.1", "demo-user.1", "demo-user-add.1"]
        );
        let page = std::fs::read_to_string(out.join("demo.1")).unwrap();
        for section in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS", ".SH SUBCOMMANDS"] {
            assert!(page.contains(section), "no {section}:\n{page}");
        }
        assert!(!page.contains("OpenSSL"), "{page}");
        assert!(page.contains("demo \\- shows how it works"), "{page}");
        assert!(!page.contains("secret"), "{page}");
        let add = std::fs::read_to_string(out.join("demo-user-add.1")).unwrap();
        assert!(add.contains("Add a user"), "{add}");
    }

    #[test]
    fn three_shells_with_the_conventional_names() {
        let dir = tempfile::tempdir().unwrap();
        let written = completions(demo(), dir.path()).unwrap();
        assert_eq!(names(&written), ["demo.bash", "_demo", "demo.fish"]);
        for p in &written {
            let text = std::fs::read_to_string(p).unwrap();
            assert!(text.contains("user"), "{}: {text}", p.display());
        }
    }

    #[test]
    fn an_unwritable_place_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let e = man_pages(demo(), &file.join("man1"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot create the directory") && e.contains("a-file"),
            "{e}"
        );
    }

    #[test]
    fn generate_is_parsed_only_when_asked() {
        let cmd = attach(demo());
        let m = cmd
            .clone()
            .try_get_matches_from(["demo", "user", "add"])
            .unwrap();
        assert!(run_if_asked(&m, demo()).is_none());
        let help = cmd.clone().render_help().to_string();
        assert!(!help.contains("generate"), "{help}");
        let e = cmd
            .try_get_matches_from(["demo", "generate", "man"])
            .unwrap_err();
        assert!(e.to_string().contains("--out"), "{e}");
    }
}
