//! Where a certified member's CA, certificate and node key come from:
//! `--ca`, `--cert` and `--node-key` (or the config file's `ca`, `cert` and
//! `node-key`), else the systemd credentials `ca.pub`, `node.crt` and
//! `node.key`. All three or none: without them the shared key alone admits.

use crate::crypto::cert::{CaPublic, Cert, NodeSecret, show_time};
use crate::crypto::keys::read_private;
use crate::crypto::session::Identity;
use crate::systemd;
use std::path::{Path, PathBuf};

fn read(what: &str, path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| {
        format!(
            "{what} {}: {}",
            path.display(),
            crate::error::Error::from_io(&e).message
        )
    })
}

/// The three files from the flags, else from systemd's credentials.
fn files(
    ca: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Option<[PathBuf; 3]>, String> {
    if let (Some(a), Some(c), Some(k)) = (ca, cert, key) {
        return Ok(Some([a.into(), c.into(), k.into()]));
    }
    let creds = [
        systemd::credential("ca.pub"),
        systemd::credential("node.crt"),
        systemd::credential("node.key"),
    ];
    match creds {
        [Some(a), Some(c), Some(k)] => Ok(Some([a, c, k])),
        [None, None, None] => Ok(None),
        _ => Err(
            "the systemd credentials ca.pub, node.crt and node.key go together: some are missing"
                .into(),
        ),
    }
}

/// This member's certified identity, checked: the certificate is the CA's,
/// valid now and for the node key. `None` in shared-key mode.
/// With `accept_uncertified`, the identity also admits members that hold
/// only the cluster key (a move to certificates); that needs a CA.
pub fn resolve(
    ca: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
    accept_uncertified: bool,
) -> Result<Option<Identity>, String> {
    let Some((id, cert_path)) = read_identity(ca, cert, key, accept_uncertified)? else {
        return Ok(None);
    };
    log::info!("{}", describe(&id, &cert_path));
    Ok(Some(id))
}

/// [`resolve`] without a word in the log, and with the certificate's file.
pub fn read_identity(
    ca: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
    accept_uncertified: bool,
) -> Result<Option<(Identity, PathBuf)>, String> {
    let Some([ca_path, cert_path, key_path]) = files(ca, cert, key)? else {
        if accept_uncertified {
            return Err(
                "--accept-uncertified is for a member with a certificate (--ca, --cert and \
                 --node-key, or the systemd credentials): without one, every holder of the \
                 cluster key is accepted anyway"
                    .into(),
            );
        }
        return Ok(None);
    };
    let ca = CaPublic::decode(&read("--ca", &ca_path)?)
        .map_err(|e| format!("--ca {}: {e}", ca_path.display()))?;
    let cert = Cert::decode(&read("--cert", &cert_path)?)
        .map_err(|e| format!("--cert {}: {e}", cert_path.display()))?;
    let text =
        read_private(&key_path).map_err(|e| format!("--node-key {}: {e}", key_path.display()))?;
    let key =
        NodeSecret::decode(&text).map_err(|e| format!("--node-key {}: {e}", key_path.display()))?;
    let now = jiff::Timestamp::now().as_second();
    let mut id = Identity::new(ca, cert, key, now)
        .map_err(|e| format!("--cert {}: {e}", cert_path.display()))?;
    id.accept_uncertified = accept_uncertified;
    Ok(Some((id, cert_path)))
}

/// What the log says of identity `id`, from the certificate in `cert_path`.
pub fn describe(id: &Identity, cert_path: &Path) -> String {
    let b = id.cert.body();
    let admits = if id.accept_uncertified {
        "members with a certificate of this CA are accepted, and, while moving to \
         certificates (--accept-uncertified), members holding only the cluster key"
    } else {
        "only members with a certificate of this CA are accepted"
    };
    format!(
        "certified as {} (serial {:016x}, groups [{}]) until {}, from {}: {admits}",
        b.name,
        b.serial,
        b.groups.join(","),
        show_time(b.not_after),
        cert_path.display()
    )
}
