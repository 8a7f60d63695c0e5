//! `--stamp-key-dir`: authenticated mode with one key per SSID, read from a
//! directory and reloaded on SIGHUP without a restart.
//!
//! The directory holds `ssid-<N>.key` (N the SSID in decimal, 0 to 65535)
//! and optionally `default.key`, the key of every SSID without its own file.
//! Each file follows `--stamp-key`'s rules ([`Key::read`]: a regular file of
//! at most 64 KiB, hex text or raw bytes, at least 16 bytes). Other names
//! (a README, `..data` of a Kubernetes secret, an editor's `.swp`) are left
//! alone. A request whose SSID has no key and no default cannot be verified:
//! it is refused as malformed.
//!
//! A reload reads the whole directory into a new [`KeyRing`] off the echo
//! loops' path and swaps it in whole, or not at all: one bad file keeps the
//! keys in use. Each loop's [`KeyView`] looks at an epoch counter once per
//! request (one relaxed load) and takes the new ring only when it changed,
//! so the loops neither lock nor allocate per datagram.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::auth::Key;
use crate::error::{Error, Result};

/// The name of the key of every SSID without its own file.
pub const DEFAULT_FILE: &str = "default.key";

/// Keys by SSID, with a default: one directory's contents.
#[derive(Default)]
pub struct KeyRing {
    /// Sorted by SSID, for a binary search.
    by_ssid: Vec<(u16, Key)>,
    default: Option<Key>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyRing({})", self.describe())
    }
}

impl KeyRing {
    /// A ring from its keys (the last of two for one SSID wins).
    pub fn new(mut by_ssid: Vec<(u16, Key)>, default: Option<Key>) -> KeyRing {
        by_ssid.sort_by_key(|(ssid, _)| *ssid);
        by_ssid.dedup_by_key(|(ssid, _)| *ssid);
        KeyRing { by_ssid, default }
    }

    /// The key for `ssid`: its own, else the default, else `None`.
    #[inline]
    pub fn get(&self, ssid: u16) -> Option<&Key> {
        match self.by_ssid.binary_search_by_key(&ssid, |(s, _)| *s) {
            Ok(at) => Some(&self.by_ssid[at].1),
            Err(_) => self.default.as_ref(),
        }
    }

    /// How many SSIDs have their own key.
    pub fn len(&self) -> usize {
        self.by_ssid.len()
    }

    /// Whether the ring holds no key at all.
    pub fn is_empty(&self) -> bool {
        self.by_ssid.is_empty() && self.default.is_none()
    }

    /// "3 SSIDs and a default key", for the log (never a key).
    pub fn describe(&self) -> String {
        let n = self.by_ssid.len();
        format!(
            "{n} SSID{} {} a default key",
            if n == 1 { "" } else { "s" },
            if self.default.is_some() {
                "and"
            } else {
                "without"
            }
        )
    }

    /// Reads every key file of `dir`; `Err` names the first file (or the
    /// directory) that cannot serve, and why. A directory without any key
    /// file is refused too: it would drop every request.
    pub fn read_dir(dir: &Path) -> Result<KeyRing> {
        let dir_error = |problem: String| Error::StampKeyDir {
            dir: dir.to_path_buf(),
            problem,
        };
        // Anyone who may write the directory may add a key for any SSID.
        let meta = std::fs::metadata(dir).map_err(|e| dir_error(crate::error::describe(&e)))?;
        if meta.is_dir() && writable_by_others(&meta) {
            return Err(dir_error(
                "it is writable by group or others, who could add keys (chmod go-w)".to_owned(),
            ));
        }
        let entries = std::fs::read_dir(dir).map_err(|e| dir_error(crate::error::describe(&e)))?;
        let mut by_ssid = Vec::new();
        let mut default = None;
        for entry in entries {
            let entry = entry.map_err(|e| dir_error(crate::error::describe(&e)))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(slot) = file_slot(name) else {
                continue;
            };
            let path = entry.path();
            let ssid = slot.map_err(|problem| Error::StampKey {
                path: path.clone(),
                problem,
            })?;
            let key = Key::read(&path).map_err(|problem| Error::StampKey {
                path: path.clone(),
                problem,
            })?;
            match ssid {
                Some(ssid) => by_ssid.push((ssid, key)),
                None => default = Some(key),
            }
        }
        let ring = KeyRing::new(by_ssid, default);
        if ring.is_empty() {
            return Err(dir_error(format!(
                "it holds no key file (ssid-N.key or {DEFAULT_FILE})"
            )));
        }
        Ok(ring)
    }
}

/// Whether group or others may write to what `meta` describes.
fn writable_by_others(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o022 != 0
}

/// What a file name in the key directory is: `None` not a key file (left
/// alone), `Some(Ok(None))` the default key, `Some(Ok(Some(n)))` SSID n's,
/// `Some(Err)` a key file's name with a bad SSID (refused, not skipped: a
/// typo would otherwise leave an SSID to the default key unnoticed).
fn file_slot(name: &str) -> Option<Result<Option<u16>, String>> {
    if name == DEFAULT_FILE {
        return Some(Ok(None));
    }
    let number = name.strip_prefix("ssid-")?.strip_suffix(".key")?;
    let parsed = if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        None
    } else {
        number.parse::<u16>().ok()
    };
    Some(
        parsed
            .map(Some)
            .ok_or_else(|| format!("'{number}' is not an SSID (0 to 65535, in decimal)")),
    )
}

/// The reloadable key directory, shared by every loop and the reloader.
pub struct KeyDir {
    dir: PathBuf,
    current: Mutex<Arc<KeyRing>>,
    /// Bumped after each swap; the loops compare it with the one they saw.
    epoch: AtomicU64,
}

impl fmt::Debug for KeyDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDir({})", self.dir.display())
    }
}

impl KeyDir {
    /// Reads `dir` for the first time; `Err` says which file cannot serve.
    pub fn load(dir: &Path) -> Result<KeyDir> {
        let ring = KeyRing::read_dir(dir)?;
        Ok(KeyDir {
            dir: dir.to_path_buf(),
            current: Mutex::new(Arc::new(ring)),
            epoch: AtomicU64::new(0),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The ring in use now.
    pub fn current(&self) -> Arc<KeyRing> {
        Arc::clone(&self.current.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reads the directory again and swaps the new ring in; on `Err` (which
    /// names the file) the ring in use stays. Runs off the echo loops' path.
    pub fn reload(&self) -> Result<Arc<KeyRing>> {
        let ring = Arc::new(KeyRing::read_dir(&self.dir)?);
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&ring);
        self.epoch.fetch_add(1, Ordering::Release);
        Ok(ring)
    }
}

/// One loop's view of a [`KeyDir`]: the ring it uses and the epoch it saw.
#[derive(Debug)]
pub struct KeyView {
    shared: Arc<KeyDir>,
    seen: u64,
    ring: Arc<KeyRing>,
}

impl KeyView {
    /// A view of `shared`'s current ring.
    pub fn new(shared: Arc<KeyDir>) -> KeyView {
        let seen = shared.epoch.load(Ordering::Acquire);
        let ring = shared.current();
        KeyView { shared, seen, ring }
    }

    /// Takes the newest ring if a reload swapped one in since the last look:
    /// one atomic load, and the lock only after a reload.
    #[inline]
    pub fn refresh(&mut self) {
        let epoch = self.shared.epoch.load(Ordering::Acquire);
        if epoch != self.seen {
            self.seen = epoch;
            self.ring = self.shared.current();
        }
    }

    /// The key for `ssid` in the ring in use.
    #[inline]
    pub fn get(&self, ssid: u16) -> Option<&Key> {
        self.ring.get(ssid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, contents: &str) {
        std::fs::write(dir.join(name), contents).unwrap();
    }

    fn temp_dir(name: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("udp-echo-keys-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    const A: &str = "00112233445566778899aabbccddeeff\n";
    const B: &str = "ffeeddccbbaa99887766554433221100";

    #[test]
    fn file_names_are_ssid_n_dot_key_or_default_dot_key() {
        assert_eq!(file_slot("default.key"), Some(Ok(None)));
        assert_eq!(file_slot("ssid-0.key"), Some(Ok(Some(0))));
        assert_eq!(file_slot("ssid-65535.key"), Some(Ok(Some(65535))));
        assert!(matches!(file_slot("ssid-65536.key"), Some(Err(_))));
        assert!(matches!(file_slot("ssid-+1.key"), Some(Err(_))));
        assert!(matches!(file_slot("ssid-.key"), Some(Err(_))));
        assert_eq!(file_slot("README"), None);
        assert_eq!(file_slot("..data"), None);
        assert_eq!(file_slot("ssid-1.key.swp"), None);
    }

    #[test]
    fn each_ssid_gets_its_key_the_rest_the_default() {
        let dir = temp_dir("pick");
        write(&dir, "ssid-7.key", A);
        write(&dir, "default.key", B);
        write(&dir, "notes.txt", "not a key");
        let ring = KeyRing::read_dir(&dir).unwrap();
        let (a, b) = (
            Key::from_file_contents(A.as_bytes()).unwrap(),
            Key::from_file_contents(B.as_bytes()).unwrap(),
        );
        let packet = [3u8; 112];
        assert_eq!(ring.get(7).unwrap().digest(&packet), a.digest(&packet));
        assert_eq!(ring.get(8).unwrap().digest(&packet), b.digest(&packet));
        assert_eq!(ring.describe(), "1 SSID and a default key");
        std::fs::remove_file(dir.join("default.key")).unwrap();
        let ring = KeyRing::read_dir(&dir).unwrap();
        assert!(ring.get(8).is_none(), "no default: no key");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// An authenticated request with `ssid`, signed with `key`.
    fn signed(ssid: u16, key: &Key) -> Vec<u8> {
        use crate::stamp::{Mode, SenderPacket};
        let mut buf = vec![0u8; Mode::Authenticated.base_len()];
        SenderPacket {
            seq: 1,
            timestamp: 0,
            error_estimate: 0,
            ssid,
        }
        .encode(Mode::Authenticated, &mut buf);
        key.sign(&mut buf);
        buf
    }

    #[test]
    fn the_reflector_answers_each_ssid_with_its_key_and_refuses_unknown_ones() {
        use crate::stamp::{Arrival, Reflector, ReflectorConfig, Refusal};
        use std::net::SocketAddr;
        use std::time::SystemTime;
        let dir = temp_dir("reflect");
        write(&dir, "ssid-7.key", A);
        let (a, b) = (
            Key::from_file_contents(A.as_bytes()).unwrap(),
            Key::from_file_contents(B.as_bytes()).unwrap(),
        );
        let shared = Arc::new(KeyDir::load(&dir).unwrap());
        let mut reflector = Reflector::new(ReflectorConfig {
            key_dir: Some(Arc::clone(&shared)),
            ..ReflectorConfig::default()
        });
        let source = SocketAddr::from(([192, 0, 2, 1], 4000));
        let arrival = Arrival {
            received: SystemTime::now(),
            tos: None,
            ttl: Some(64),
            destination: None,
        };
        let mut reflect = |mut buf: Vec<u8>| {
            reflector
                .reflect_in_place(&mut buf, source, &arrival, SystemTime::now(), 0)
                .map(|_| buf)
        };
        let reply = reflect(signed(7, &a)).unwrap();
        assert!(
            a.verify(&reply) && !b.verify(&reply),
            "signed with SSID 7's key"
        );
        assert_eq!(reflect(signed(7, &b)), Err(Refusal::Malformed), "wrong key");
        assert_eq!(
            reflect(signed(9, &b)),
            Err(Refusal::Malformed),
            "no key, no default"
        );
        write(&dir, "default.key", B);
        shared.reload().unwrap();
        let reply = reflect(signed(9, &b)).unwrap();
        assert!(b.verify(&reply), "the default key, after the reload");
        assert!(
            a.verify(&reflect(signed(7, &a)).unwrap()),
            "SSID 7 keeps its own"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_file_is_named_and_a_failed_reload_keeps_the_old_ring() {
        let dir = temp_dir("reload");
        write(&dir, "ssid-1.key", A);
        let shared = Arc::new(KeyDir::load(&dir).unwrap());
        let mut view = KeyView::new(Arc::clone(&shared));
        assert!(view.get(1).is_some() && view.get(2).is_none());
        write(&dir, "ssid-2.key", B);
        shared.reload().unwrap();
        view.refresh();
        assert!(view.get(2).is_some(), "the reload reached the view");
        write(&dir, "ssid-3.key", "short");
        let err = shared.reload().unwrap_err().to_string();
        assert!(err.contains("ssid-3.key"), "{err}");
        assert!(!err.contains(A.trim()) && !err.contains(B), "{err}");
        view.refresh();
        assert!(view.get(1).is_some() && view.get(2).is_some());
        std::fs::remove_file(dir.join("ssid-3.key")).unwrap();
        std::fs::remove_file(dir.join("ssid-1.key")).unwrap();
        std::fs::remove_file(dir.join("ssid-2.key")).unwrap();
        let err = KeyDir::load(&dir).unwrap_err().to_string();
        assert!(err.contains("no key file"), "{err}");
        use std::os::unix::fs::PermissionsExt;
        write(&dir, "ssid-1.key", A);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
        let err = KeyDir::load(&dir).unwrap_err().to_string();
        assert!(err.contains("writable by group or others"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(KeyDir::load(&dir).is_err(), "a missing directory");
    }
}
