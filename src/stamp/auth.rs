//! STAMP authenticated mode's HMAC (RFC 8762 §4.4): HMAC-SHA-256 over the
//! first 96 bytes of a packet, truncated to 16 bytes, with a shared key.
//!
//! A key file holds the key as hexadecimal text (at least 32 digits) or, when
//! it is not hexadecimal, as raw bytes — the convention stamp-suite uses too,
//! so one file serves both. Keys shorter than 16 bytes are refused.

use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::packet::{HMAC_AT, HMAC_LEN};

/// The shortest key accepted, in bytes (RFC 8762 §4.4 asks for at least 16).
pub const MIN_KEY_LEN: usize = 16;

/// The largest key file read (a key is 16 bytes or more; HMAC hashes one
/// longer than 64 bytes anyway).
pub const MAX_KEY_FILE: u64 = 64 * 1024;

/// What a file that is not a regular one is, for the refusal.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "not a file"
    }
}

/// A keyed HMAC-SHA-256, ready to sign and verify packets.
#[derive(Clone)]
pub struct Key {
    keyed: Hmac<Sha256>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A key from its bytes; `Err` with the reason when shorter than [`MIN_KEY_LEN`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Key, String> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(format!(
                "the key has {} bytes; STAMP needs at least {MIN_KEY_LEN}",
                bytes.len()
            ));
        }
        let keyed = Hmac::<Sha256>::new_from_slice(bytes).map_err(|e| e.to_string())?;
        Ok(Key { keyed })
    }

    /// A key from a file's contents: hexadecimal text when it is that
    /// (surrounding white space ignored), raw bytes otherwise.
    pub fn from_file_contents(contents: &[u8]) -> Result<Key, String> {
        match std::str::from_utf8(contents)
            .ok()
            .and_then(|t| decode_hex(t.trim()))
        {
            Some(bytes) => Key::from_bytes(&bytes),
            None => Key::from_bytes(contents),
        }
    }

    /// Reads a key file (see [`Key::from_file_contents`]); `Err` says why not.
    /// Only a regular file of at most [`MAX_KEY_FILE`] bytes is read: a FIFO
    /// would block start-up in `open` until a writer came (with the stop
    /// handler unable to act), a device could be endless. The type is checked
    /// before opening, and the file is opened non-blocking and checked again,
    /// so a file swapped for a FIFO in between cannot block either.
    pub fn read(path: &Path) -> Result<Key, String> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let describe = |e: std::io::Error| crate::error::describe(&e);
        let regular = |meta: &std::fs::Metadata| {
            if meta.is_file() {
                Ok(())
            } else {
                Err(format!("not a regular file ({})", file_kind(meta)))
            }
        };
        regular(&std::fs::metadata(path).map_err(describe)?)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(describe)?;
        regular(&file.metadata().map_err(describe)?)?;
        let mut contents = Vec::new();
        file.take(MAX_KEY_FILE + 1)
            .read_to_end(&mut contents)
            .map_err(describe)?;
        if contents.len() as u64 > MAX_KEY_FILE {
            return Err(format!("longer than {MAX_KEY_FILE} bytes"));
        }
        Key::from_file_contents(&contents)
    }

    /// The truncated HMAC of `packet[..96]`. Panics when `packet` is shorter.
    pub fn digest(&self, packet: &[u8]) -> [u8; HMAC_LEN] {
        let mut mac = self.keyed.clone();
        mac.update(&packet[..HMAC_AT]);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; HMAC_LEN];
        out.copy_from_slice(&full[..HMAC_LEN]);
        out
    }

    /// Writes the HMAC of `packet[..96]` into `packet[96..112]`.
    pub fn sign(&self, packet: &mut [u8]) {
        let digest = self.digest(packet);
        packet[HMAC_AT..HMAC_AT + HMAC_LEN].copy_from_slice(&digest);
    }

    /// Whether `packet[96..112]` is the HMAC of `packet[..96]` (compared in
    /// constant time); false when the packet is shorter than 112 bytes.
    pub fn verify(&self, packet: &[u8]) -> bool {
        if packet.len() < HMAC_AT + HMAC_LEN {
            return false;
        }
        let mut mac = self.keyed.clone();
        mac.update(&packet[..HMAC_AT]);
        mac.verify_truncated_left(&packet[HMAC_AT..HMAC_AT + HMAC_LEN])
            .is_ok()
    }
}

impl Key {
    /// The digest of an RFC 8972 §4.8 HMAC TLV: HMAC-SHA-256 over the
    /// packet's sequence number (`seq`, its first 4 bytes) and every TLV
    /// before the HMAC TLV (`covered`, headers included, as on the wire),
    /// truncated to 16 bytes.
    pub fn tlv_digest(&self, seq: &[u8], covered: &[u8]) -> [u8; HMAC_LEN] {
        let mut mac = self.keyed.clone();
        mac.update(seq);
        mac.update(covered);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; HMAC_LEN];
        out.copy_from_slice(&full[..HMAC_LEN]);
        out
    }

    /// Whether `digest` is [`tlv_digest`](Self::tlv_digest)`(seq, covered)`,
    /// compared in constant time.
    pub fn verify_tlv(&self, seq: &[u8], covered: &[u8], digest: &[u8]) -> bool {
        let mut mac = self.keyed.clone();
        mac.update(seq);
        mac.update(covered);
        digest.len() == HMAC_LEN && mac.verify_truncated_left(digest).is_ok()
    }
}

/// Hexadecimal text to bytes; `None` unless it is an even number of hex digits.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_are_hex_text_or_raw_bytes_of_at_least_16() {
        let hex = b"00112233445566778899aabbccddeeff\n";
        let a = Key::from_file_contents(hex).unwrap();
        let b = Key::from_bytes(&[
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ])
        .unwrap();
        let packet = [7u8; 112];
        assert_eq!(a.digest(&packet), b.digest(&packet));
        assert!(Key::from_file_contents(b"not hex but long enough").is_ok());
        assert!(
            Key::from_file_contents(b"0011")
                .unwrap_err()
                .contains("2 bytes")
        );
    }

    #[test]
    fn a_signed_packet_verifies_and_any_change_breaks_it() {
        let key = Key::from_bytes(b"sixteen byte key").unwrap();
        let mut packet = [0u8; 112];
        packet[..4].copy_from_slice(&[0, 0, 0, 9]);
        key.sign(&mut packet);
        assert!(key.verify(&packet));
        packet[3] ^= 1;
        assert!(!key.verify(&packet));
        assert!(!key.verify(&packet[..100]));
    }
}
