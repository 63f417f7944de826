//! contrib/systemd/p2pd.service passes `systemd-analyze verify` (which works
//! without systemd running: it only loads the unit) and has what the
//! specification asks of it. Needs the `systemd` package installed.

use std::path::{Path, PathBuf};
use std::process::Command;

const INSTALLED: &str = "ExecStart=/usr/local/bin/p2pd ";

fn unit_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd/p2pd.service");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The unit with its ExecStart pointed at the p2pd just built, since verify
/// refuses a command that does not exist, and /usr/local/bin/p2pd is where
/// the admin installs it, not where the tests find it.
fn with_built_binary(unit: &str) -> String {
    let lines: Vec<&str> = unit.lines().filter(|l| l.starts_with(INSTALLED)).collect();
    assert_eq!(lines.len(), 1, "one `{INSTALLED}...` line: {lines:?}");
    unit.replace(
        INSTALLED.trim_end(),
        &format!("ExecStart={}", env!("CARGO_BIN_EXE_p2pd")),
    )
}

/// Runs `systemd-analyze verify` on `unit` saved as p2pd.service; returns
/// whether it exited 0 and the lines of stderr about the unit.
fn verify(unit: &str) -> (bool, Vec<String>, String) {
    let t = tempfile::tempdir().unwrap();
    let path: PathBuf = t.path().join("p2pd.service");
    std::fs::write(&path, unit).unwrap();
    // --man=no: the man page named by Documentation= is not installed here.
    let out = match Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "systemd-analyze is not installed; install the `systemd` package \
             (apt-get install systemd) to check contrib/systemd/p2pd.service"
        ),
        Err(e) => panic!("cannot run systemd-analyze: {e}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // Most problems (an unknown setting, a bad value) are warnings with exit
    // status 0, so the lines that name the unit are what counts.
    let about_unit = stderr
        .lines()
        .filter(|l| l.contains("p2pd.service"))
        .map(str::to_string)
        .collect();
    (out.status.success(), about_unit, stderr)
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let (ok, problems, stderr) = verify(&with_built_binary(&unit_text()));
    assert!(ok, "systemd-analyze verify failed:\n{stderr}");
    assert!(problems.is_empty(), "warnings about the unit:\n{stderr}");
}

/// Makes sure the check above can fail here: a broken copy is caught.
#[test]
fn verify_catches_a_broken_unit() {
    let broken = with_built_binary(&unit_text()).replace("Type=notify", "Type=notifyy");
    let (_, problems, stderr) = verify(&broken);
    assert!(
        problems.iter().any(|l| l.contains("notifyy")),
        "a bad Type= went unnoticed:\n{stderr}"
    );
    let (ok, _, _) = verify(&unit_text());
    assert!(!ok, "a missing ExecStart binary went unnoticed");
}

#[test]
fn the_unit_has_what_the_spec_asks() {
    let unit = unit_text();
    let settings: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .collect();
    for want in [
        "Type=notify",
        "WatchdogSec=",
        "StateDirectory=p2pd",
        "RuntimeDirectory=p2p",
        "LoadCredential=cluster.key:/etc/p2pd/cluster.key",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "LimitCORE=0",
    ] {
        assert!(
            settings.iter().any(|s| s.starts_with(want)),
            "{want} missing from p2pd.service"
        );
    }
    assert!(
        settings.contains(&"CapabilityBoundingSet="),
        "no capabilities at all"
    );
    // The state and the key the daemon is given are the unit's directories.
    let exec = settings
        .iter()
        .find(|s| s.starts_with("ExecStart="))
        .unwrap();
    assert!(exec.contains("--state-dir ${STATE_DIRECTORY}"), "{exec}");
    assert!(
        exec.contains("--secret-file ${CREDENTIALS_DIRECTORY}/cluster.key"),
        "{exec}"
    );
    // Documentation= names a page this project ships.
    assert!(unit.contains("Documentation=man:p2pd(1)"));
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("man/p2pd.1")
            .exists()
    );
}
