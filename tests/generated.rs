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
    let synopsis = synopsis(&cmd);
    let man = clap_mangen::Man::new(cmd)
        .title(name.to_uppercase())
        .manual("p2p manual")
        .date(MAN_DATE)
        .source(format!("p2p {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    out.extend_from_slice(synopsis.as_bytes());
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

/// Roff for a name or value in the synopsis: backslashes and hyphens escaped.
fn roff_word(s: &str) -> String {
    s.replace('\\', "\\e").replace('-', "\\-")
}

/// The SYNOPSIS section. clap_mangen's leaves out option values and the
/// `...` of operands and options that repeat (`[PATH]` for `[PATH]...`);
/// this one writes them as man pages do: `[--files-from FILE]`,
/// `[--peer NAME|HOST:PORT]...`, `[PATH]...`, `HOST:PORT...`.
fn synopsis(cmd: &clap::Command) -> String {
    use clap::ArgAction;
    let mut cmd = cmd.clone();
    cmd.build();
    let bold = |s: &str| format!("\\fB{}\\fR", roff_word(s));
    let italic = |s: &str| format!("\\fI{}\\fR", roff_word(s));
    let value_of = |a: &clap::Arg| {
        a.get_value_names()
            .map(|v| v.join(" "))
            .unwrap_or_else(|| a.get_id().as_str().to_uppercase())
    };
    let repeats = |a: &clap::Arg| {
        matches!(a.get_action(), ArgAction::Append | ArgAction::Count)
            || a.get_num_args().is_some_and(|n| n.max_values() > 1)
    };
    let mut parts = vec![bold(cmd.get_bin_name().unwrap_or_else(|| cmd.get_name()))];
    let mut opts: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_positional())
        .collect();
    opts.sort_by_key(|a| {
        let key = match (a.get_short(), a.get_long()) {
            (Some(c), _) => format!(
                "{}{}",
                c.to_ascii_lowercase(),
                u8::from(!c.is_ascii_lowercase())
            ),
            (None, Some(l)) => l.to_string(),
            (None, None) => a.get_id().to_string(),
        };
        (a.get_display_order(), key)
    });
    for a in opts {
        let flag = match (a.get_short(), a.get_long()) {
            (Some(c), Some(l)) => format!("{}|{}", bold(&format!("-{c}")), bold(&format!("--{l}"))),
            (Some(c), None) => bold(&format!("-{c}")),
            (None, Some(l)) => bold(&format!("--{l}")),
            (None, None) => continue,
        };
        let value = if a.get_action().takes_values() {
            format!(" {}", italic(&value_of(a)))
        } else {
            String::new()
        };
        let (l, r) = if a.is_required_set() {
            ("", "")
        } else {
            ("[", "]")
        };
        let more = if repeats(a) { "..." } else { "" };
        parts.push(format!("{l}{flag}{value}{r}{more}"));
    }
    for a in cmd.get_positionals().filter(|a| !a.is_hide_set()) {
        let (l, r) = if a.is_required_set() {
            ("", "")
        } else {
            ("[", "]")
        };
        let more = if repeats(a) { "..." } else { "" };
        parts.push(format!("{l}{}{r}{more}", italic(&value_of(a))));
    }
    format!(
        ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n.SH SYNOPSIS\n{}\n",
        parts.join(" ")
    )
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

/// The SYNOPSIS of a man page, as text without roff fonts and escapes.
fn synopsis_text(bin: &str) -> String {
    let page = std::fs::read_to_string(root().join("man").join(format!("{bin}.1"))).unwrap();
    let start = page.find(".SH SYNOPSIS\n").expect("a SYNOPSIS") + ".SH SYNOPSIS\n".len();
    let body = &page[start..];
    let body = &body[..body.find("\n.").unwrap_or(body.len())];
    body.replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
        .replace("\\-", "-")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn synopses_show_repeated_operands_and_option_values() {
    for bin in ["p2p-wc", "p2p-sha256", "p2p-count", "p2p-stat"] {
        let s = synopsis_text(bin);
        assert!(s.ends_with(" [PATH]..."), "{bin}: {s}");
        assert!(s.contains("[--files-from FILE]"), "{bin}: {s}");
        assert!(s.contains("[--peer NAME|HOST:PORT]..."), "{bin}: {s}");
        assert!(s.contains("[--timeout SECONDS]"), "{bin}: {s}");
        assert!(s.contains("[-h|--help]"), "{bin}: {s}");
    }
    let join = synopsis_text("p2p-join");
    assert!(join.ends_with(" HOST:PORT..."), "{join}");
    let daemon = synopsis_text("p2pd");
    assert!(daemon.ends_with(" [PORT] [HOST:PORT]"), "{daemon}");
    assert!(
        daemon.contains("[--export DIR[:groups=G,...]]..."),
        "{daemon}"
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
