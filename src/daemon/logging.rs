//! The daemon's log: env_logger on stderr, whose filter can be replaced
//! while running (SIGHUP), which env_logger alone cannot do once installed.

use log::{Log, Metadata, Record};
use std::sync::{OnceLock, RwLock};

/// The installed logger; its inner env_logger is swapped on reload.
struct Reloadable {
    inner: RwLock<env_logger::Logger>,
}

static LOGGER: OnceLock<Reloadable> = OnceLock::new();

fn build(spec: &str) -> env_logger::Logger {
    let mut b = env_logger::Builder::new();
    b.parse_filters(spec);
    // The journal stamps each line itself.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        b.format_timestamp(None);
    }
    b.build()
}

impl Log for Reloadable {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner
            .read()
            .map(|l| l.enabled(metadata))
            .unwrap_or(false)
    }

    fn log(&self, record: &Record<'_>) {
        if let Ok(l) = self.inner.read() {
            l.log(record);
        }
    }

    fn flush(&self) {
        if let Ok(l) = self.inner.read() {
            l.flush();
        }
    }
}

/// Installs the logger with a filter such as `info` or `p2p=debug,warn`.
pub fn init(spec: &str) {
    let logger = build(spec);
    let max = logger.filter();
    let installed = LOGGER.get_or_init(|| Reloadable {
        inner: RwLock::new(logger),
    });
    if log::set_logger(installed).is_ok() {
        log::set_max_level(max);
    }
}

/// Replaces the filter of the installed logger.
pub fn set_filter(spec: &str) {
    let Some(installed) = LOGGER.get() else {
        return init(spec);
    };
    let logger = build(spec);
    log::set_max_level(logger.filter());
    if let Ok(mut l) = installed.inner.write() {
        *l = logger;
    }
}
