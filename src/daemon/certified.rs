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
pub fn resolve(
    ca: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Option<Identity>, String> {
    let Some([ca_path, cert_path, key_path]) = files(ca, cert, key)? else {
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
    let id = Identity::new(ca, cert, key, now)
        .map_err(|e| format!("--cert {}: {e}", cert_path.display()))?;
    let b = id.cert.body();
    log::info!(
        "certified as {} (serial {:016x}, groups [{}]) until {}, from {}: only members with a certificate of this CA are accepted",
        b.name,
        b.serial,
        b.groups.join(","),
        show_time(b.not_after),
        cert_path.display()
    );
    Ok(Some(id))
}
