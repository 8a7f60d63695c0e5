//! SIGHUP with `--stamp-key-dir`: the STAMP key directory is read again and
//! swapped in, off the echo loops' path (see [`crate::stamp::keys`]). The
//! signal handler only sets a flag ([`Stop::take_hangup`]); this thread looks
//! at it every [`SLEEP_STEP`](crate::shutdown::SLEEP_STEP) and does the
//! reading and the logging, one line either way, naming files, never keys.

use std::time::Instant;

use crate::shutdown::{SLEEP_STEP, Stop};
use crate::stamp::KeyDir;

/// Reloads `dir` after each SIGHUP until the stop.
pub(super) fn reload_on_hangup(dir: &KeyDir, stop: &Stop) {
    while stop.sleep_until(Instant::now() + SLEEP_STEP) {
        if stop.take_hangup() {
            reload(dir);
        }
    }
}

/// One reload, logged: the new set, or why the old one stays.
fn reload(dir: &KeyDir) {
    match dir.reload() {
        Ok(ring) => log::info!(
            "SIGHUP: STAMP keys reloaded from {}: {}",
            dir.dir().display(),
            ring.describe()
        ),
        Err(e) => log::warn!(
            "SIGHUP: STAMP keys not reloaded, keeping those in use ({}): {e}",
            dir.current().describe()
        ),
    }
}
