//! `p2p-ca`: make a cluster CA, and sign node certificates with it.
//!
//! The CA's secret key is meant to live off the cluster, on an operator's
//! machine: `init` writes it with mode 0600, and `sign` refuses to read it
//! when group or others may.

use super::keygen::write_private;
use crate::cli::{CaAction, CaCli};
use crate::crypto::cert::{CaSecret, CertBody, NodePublic, Revocations, show_time};
use crate::crypto::keys::read_private;
use std::fs::{self, DirBuilder};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

const NAME: &str = "p2p-ca";

/// The CA's secret key file in its directory.
pub const SECRET_FILE: &str = "ca.key";
/// The CA's public key file, for every member's `--ca`.
pub const PUBLIC_FILE: &str = "ca.pub";

/// How far back a new certificate's validity starts, for members whose
/// clocks are a little behind the CA's.
const BACKDATE: i64 = 300;

/// Runs `p2p-ca`; returns the exit status.
pub fn run(cli: CaCli) -> i32 {
    let r = match cli.action {
        CaAction::Init { dir } => init(&dir),
        CaAction::Sign {
            dir,
            name,
            groups,
            valid,
            public,
        } => sign(&dir, name, groups, &valid, &public),
        CaAction::Revoke { dir, list, serials } => revoke(&dir, list.as_deref(), &serials),
    };
    match r {
        Ok(()) => 0,
        Err((status, message)) => {
            eprintln!("{NAME}: {message}");
            status
        }
    }
}

type Failure = (i32, String);

fn init(dir: &Path) -> Result<(), Failure> {
    let shown = dir.display();
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            (
                1,
                format!("{shown}: {}", crate::error::Error::from_io(&e).message),
            )
        })?;
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    crate::crypto::random_bytes(&mut seed[..])
        .map_err(|e| (1, format!("no randomness available: {e}")))?;
    let ca = CaSecret::from_seed(&seed);
    let secret = dir.join(SECRET_FILE);
    write_private(&secret, ca.encode().as_bytes(), false).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            (
                1,
                format!(
                    "{}: a CA is already there; it was left as it is",
                    secret.display()
                ),
            )
        } else {
            (
                1,
                format!(
                    "{}: {}",
                    secret.display(),
                    crate::error::Error::from_io(&e).message
                ),
            )
        }
    })?;
    let public = dir.join(PUBLIC_FILE);
    fs::write(&public, ca.public().encode()).map_err(|e| {
        (
            1,
            format!(
                "{}: {}",
                public.display(),
                crate::error::Error::from_io(&e).message
            ),
        )
    })?;
    eprintln!(
        "{NAME}: made a CA in {shown}: keep {SECRET_FILE} off the cluster; give every member {PUBLIC_FILE} (p2pd --ca)"
    );
    Ok(())
}

/// A validity such as `365d`, `12h`, `30m` or `90s`, in seconds.
pub fn parse_validity(text: &str) -> Result<i64, String> {
    let bad = || format!("--valid {text:?}: expected a number followed by s, m, h or d, as 365d");
    let (digits, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    match n.checked_mul(scale) {
        Some(s) if s > 0 => Ok(s),
        _ => Err(bad()),
    }
}

fn sign(
    dir: &Path,
    name: String,
    mut groups: Vec<String>,
    valid: &str,
    public: &Path,
) -> Result<(), Failure> {
    let seconds = parse_validity(valid).map_err(|e| (2, e))?;
    let ca = secret(dir)?;
    let node_text = fs::read_to_string(public).map_err(|e| {
        (
            1,
            format!(
                "{}: {}",
                public.display(),
                crate::error::Error::from_io(&e).message
            ),
        )
    })?;
    let key =
        NodePublic::decode(&node_text).map_err(|e| (1, format!("{}: {e}", public.display())))?;
    let mut serial = [0u8; 8];
    crate::crypto::random_bytes(&mut serial)
        .map_err(|e| (1, format!("no randomness available: {e}")))?;
    groups.sort();
    groups.dedup();
    let now = jiff::Timestamp::now().as_second();
    let body = CertBody {
        // Random, so that no record of issued serials is needed.
        serial: u64::from_be_bytes(serial),
        not_before: now - BACKDATE,
        not_after: now.saturating_add(seconds),
        key,
        name,
        groups,
    };
    let cert = ca.issue(body).map_err(|e| (2, e.to_string()))?;
    let b = cert.body();
    let mut out = io::stdout().lock();
    out.write_all(cert.encode().as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| (1, crate::error::Error::from_io(&e).message))?;
    eprintln!(
        "{NAME}: signed {} (serial {:016x}, groups [{}]), valid until {}",
        b.name,
        b.serial,
        b.groups.join(","),
        show_time(b.not_after)
    );
    Ok(())
}

/// The CA's secret key in `dir`, refused when others may read it.
fn secret(dir: &Path) -> Result<CaSecret, Failure> {
    let path = dir.join(SECRET_FILE);
    let text = read_private(&path).map_err(|e| (1, e.to_string()))?;
    CaSecret::decode(&text).map_err(|e| (1, format!("{}: {e}", path.display())))
}

/// A serial as `sign` prints it: hexadecimal, 1 to 16 digits.
fn parse_serial(text: &str) -> Result<u64, Failure> {
    if text.is_empty() || text.len() > 16 {
        return Err((2, format!("{text:?} is not a serial (1 to 16 hex digits)")));
    }
    u64::from_str_radix(text, 16)
        .map_err(|_| (2, format!("{text:?} is not a serial (1 to 16 hex digits)")))
}

fn revoke(dir: &Path, list: Option<&Path>, serials: &[String]) -> Result<(), Failure> {
    let ca = secret(dir)?;
    let mut all = serials
        .iter()
        .map(|s| parse_serial(s))
        .collect::<Result<Vec<u64>, _>>()?;
    let mut after = None;
    if let Some(old) = list {
        let text = fs::read_to_string(old).map_err(|e| {
            (
                1,
                format!(
                    "{}: {}",
                    old.display(),
                    crate::error::Error::from_io(&e).message
                ),
            )
        })?;
        let old_list =
            Revocations::decode(&text).map_err(|e| (1, format!("{}: {e}", old.display())))?;
        old_list
            .verify(&ca.public())
            .map_err(|e| (1, format!("{}: {e}", old.display())))?;
        all.extend(old_list.serials);
        after = Some(old_list.issued);
    }
    // Members keep the list issued last; one made from another within the
    // same second is dated a second after it, so that it still wins.
    let now = jiff::Timestamp::now()
        .as_second()
        .max(after.map_or(i64::MIN, |t| t.saturating_add(1)));
    let list = Revocations::issue(&ca, now, all).map_err(|e| (2, e.to_string()))?;
    let mut out = io::stdout().lock();
    out.write_all(list.encode().as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| (1, crate::error::Error::from_io(&e).message))?;
    eprintln!("{NAME}: a list of {} revoked serial(s)", list.serials.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validities_read_as_operators_write_them() {
        assert_eq!(parse_validity("365d"), Ok(365 * 86_400));
        assert_eq!(parse_validity("12h"), Ok(12 * 3600));
        assert_eq!(parse_validity("30m"), Ok(1800));
        assert_eq!(parse_validity("5s"), Ok(5));
        for bad in [
            "",
            "d",
            "365",
            "0d",
            "-1d",
            "1w",
            "1.5d",
            "99999999999999999d",
        ] {
            assert!(parse_validity(bad).is_err(), "{bad:?}");
        }
    }
}
