//! The man pages in man/ and the completions in completions/ are generated
//! from the clap definitions; this test fails when the checked-in files are
//! stale. Regenerate with: P2P_REGENERATE=1 cargo test --test generated

use clap_complete::Shell;
use std::path::{Path, PathBuf};

/// The date in the man pages' title lines: of the release they document.
const MAN_DATE: &str = "2026-11-25";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Roff for plain text: escape backslashes and protect leading dots and quotes.
fn roff_text(line: &str) -> String {
    let s = line.replace('\\', "\\e");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

fn render_man(cmd: clap::Command) -> String {
    let name = cmd.get_name().to_string();
    let man = clap_mangen::Man::new(cmd)
        .title(name.to_uppercase())
        .manual("p2p manual")
        .date(MAN_DATE)
        .source(format!("p2p {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    man.render_synopsis_section(&mut out).unwrap();
    let extra = p2p::cli::man_sections(&name);
    if !extra.iter().any(|(title, _)| *title == "DESCRIPTION") {
        man.render_description_section(&mut out).unwrap();
    }
    man.render_options_section(&mut out).unwrap();
    // clap_mangen separates a flag's help from its list of values with a
    // blank line between two breaks, which mandoc -Tlint flags.
    let mut s = String::from_utf8(out)
        .unwrap()
        .replace(".br\n\n.br\n", ".br\n");
    for (title, body) in extra {
        s.push_str(&format!(".SH \"{title}\"\n"));
        for (i, para) in body.split("\n\n").enumerate() {
            if i > 0 {
                s.push_str(".PP\n");
            }
            let verbatim = para.lines().all(|l| l.starts_with("  "));
            if verbatim {
                s.push_str(".nf\n.RS 4\n");
                for l in para.lines() {
                    s.push_str(&roff_text(&l[2..]));
                    s.push('\n');
                }
                s.push_str(".RE\n.fi\n");
            } else {
                s.push_str(&roff_text(
                    &para.split_whitespace().collect::<Vec<_>>().join(" "),
                ));
                s.push('\n');
            }
        }
    }
    tidy_roff(&s)
}

/// Lines of filled text at most 80 bytes, with no trailing blanks, as
/// mandoc -Tlint asks; roff joins the pieces again when it fills.
fn tidy_roff(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 40);
    let mut fill = true;
    for line in text.lines() {
        let line = line.trim_end();
        match line {
            ".nf" => fill = false,
            ".fi" => fill = true,
            _ => {}
        }
        if !fill || line.starts_with('.') || line.len() <= 80 {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let mut current = String::new();
        for word in line.split(' ').filter(|w| !w.is_empty()) {
            if !current.is_empty() && current.len() + 1 + word.len() > 80 {
                out.push_str(&current);
                out.push('\n');
                current.clear();
            }
            if current.is_empty() {
                // A line that starts with a dot or quote would be a macro.
                if word.starts_with('.') || word.starts_with('\'') {
                    current.push_str("\\&");
                }
            } else {
                current.push(' ');
            }
            current.push_str(word);
        }
        out.push_str(&current);
        out.push('\n');
    }
    out
}

fn completion(cmd: &mut clap::Command, shell: Shell) -> String {
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    clap_complete::generate(shell, cmd, name, &mut out);
    String::from_utf8(out).unwrap()
}

fn expected_files() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for cmd in p2p::cli::commands() {
        let name = cmd.get_name().to_string();
        files.push((
            root().join("man").join(format!("{name}.1")),
            render_man(cmd.clone()),
        ));
        let mut c = cmd.clone();
        files.push((
            root().join("completions").join(format!("{name}.bash")),
            completion(&mut c, Shell::Bash),
        ));
        files.push((
            root().join("completions").join(format!("_{name}")),
            completion(&mut c, Shell::Zsh),
        ));
        files.push((
            root().join("completions").join(format!("{name}.fish")),
            completion(&mut c, Shell::Fish),
        ));
    }
    files
}

#[test]
fn man_pages_and_completions_are_current() {
    let regenerate = std::env::var_os("P2P_REGENERATE").is_some();
    let mut stale = Vec::new();
    for (path, content) in expected_files() {
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current != content {
            if regenerate {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, content).unwrap();
            } else {
                stale.push(path);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files (run P2P_REGENERATE=1 cargo test --test generated): {:?}",
        stale
            .iter()
            .map(|p: &PathBuf| p
                .strip_prefix(root())
                .unwrap_or(Path::new("?"))
                .display()
                .to_string())
            .collect::<Vec<_>>()
    );
}

#[test]
fn man_pages_pass_mandoc_lint() {
    for cmd in p2p::cli::commands() {
        let page = root().join("man").join(format!("{}.1", cmd.get_name()));
        let out = match std::process::Command::new("mandoc")
            .arg("-Tlint")
            .arg(&page)
            .output()
        {
            Ok(o) => o,
            Err(e) => panic!("cannot run mandoc ({e}); install it: apt-get install mandoc"),
        };
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && said.trim().is_empty(),
            "{}:\n{said}",
            page.display()
        );
    }
}
