//! The man page and the shell completions, made from the declaration in [`cli`] and
//! committed under conf/ (the Debian package ships them; nothing is generated at build
//! time, so a build needs neither clap_mangen nor clap_complete). This test makes them again
//! and fails when a committed copy differs; `UPDATE_GENERATED=1` makes it write them:
//!
//!     UPDATE_GENERATED=1 cargo test --lib config::generated

use std::path::Path;

use clap_complete::Shell;
use roff::{bold, roman, Roff};

use super::cli;

const REFRESH: &str = "UPDATE_GENERATED=1 cargo test --lib config::generated";

#[test]
fn the_man_page_and_completions_in_conf_are_made_from_the_declaration() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let update = std::env::var_os("UPDATE_GENERATED").is_some();
    let mut stale = Vec::new();
    for (path, made) in [
        ("conf/man/tickerd.1", man_page()),
        ("conf/completions/tickerd.bash", completion(Shell::Bash)),
        ("conf/completions/_tickerd", completion(Shell::Zsh)),
        ("conf/completions/tickerd.fish", completion(Shell::Fish)),
    ] {
        let file = root.join(path);
        if std::fs::read(&file).ok().as_deref() == Some(&made[..]) {
            continue;
        }
        if update {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, made).unwrap();
            eprintln!("wrote {path}");
        } else {
            stale.push(path);
        }
    }
    assert!(
        stale.is_empty(),
        "not what the declaration makes: {}; refresh them with `{REFRESH}` and commit them",
        stale.join(", ")
    );
}

/// Completions of the visible flags: clap_complete would offer the hidden --publish-token.
fn completion(shell: Shell) -> Vec<u8> {
    let declared = cli::command();
    let mut visible = clap::Command::new("tickerd")
        .version(env!("CARGO_PKG_VERSION"))
        .args(
            declared
                .get_arguments()
                .filter(|a| !a.is_hide_set())
                .cloned(),
        );
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut visible, "tickerd", &mut out);
    out
}

/// clap_mangen's sections (the options under the help's headings, as subsections), then the
/// help's closing paragraphs as sections of their own, and what the Debian package installs.
fn man_page() -> Vec<u8> {
    let man = clap_mangen::Man::new(cli::command()).manual("tickerd manual");
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    man.render_synopsis_section(&mut out).unwrap();
    // The description as a sentence (the help's starts after "tickerd: ").
    let mut description = Roff::new();
    description
        .control("SH", ["DESCRIPTION"])
        .text([bold("tickerd"), roman(format!(" pushes {}.", cli::ABOUT))])
        .control("PP", [])
        .text([roman(cli::DESCRIPTION)]);
    description.to_writer(&mut out).unwrap();
    // One OPTIONS section whose headings are subsections, rather than a section each.
    let mut options = Vec::new();
    man.render_options_section(&mut options).unwrap();
    let options = String::from_utf8(options).unwrap();
    for line in options.lines() {
        let line = match line.strip_prefix(".SH ") {
            Some("OPTIONS") => line.to_string(),
            Some(heading) => format!(".SS {}", title_case(heading)),
            None => line.to_string(),
        };
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    let mut roff = Roff::new();
    for (title, text) in [
        ("ENVIRONMENT", cli::ENVIRONMENT),
        ("SIGNALS", cli::SIGNALS),
        ("EXIT STATUS", cli::EXIT_STATUS),
    ] {
        roff.control("SH", [title]).text([roman(text)]);
    }
    roff.control("SH", ["FILES"]);
    for (path, what) in [
        (
            "/etc/default/tickerd",
            "Variables of tickerd.service (Debian package): TICKERD_OPTS, flags added to its \
             command line, and any TICKERD_ variable above.",
        ),
        (
            "/etc/tickerd/publish-token",
            "The publish token (Debian package), passed with --publish-token-file.",
        ),
    ] {
        roff.control("TP", [])
            .text([bold(path)])
            .text([roman(what)]);
    }
    roff.control("SH", ["SEE ALSO"]).text([roman(
        "/usr/share/doc/tickerd/README.md: the event format, the endpoints, deploying behind \
         lighttpd, nginx or Apache, the live upgrade.",
    )]);
    roff.to_writer(&mut out).unwrap();
    man.render_version_section(&mut out).unwrap();
    out
}

/// "LISTENERS" → "Listeners": clap_mangen writes headings in capitals.
fn title_case(heading: &str) -> String {
    let lower = heading.to_lowercase();
    let mut chars = lower.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
