//! Keys at rest: one JSON file per key under `<home>/keys/`, the secret sealed with
//! XChaCha20-Poly1305 under a key stretched from a passphrase by Argon2id. Devnet keys may be
//! stored unencrypted; the file says so in a field and the CLI prints it.

use cairn_types::{Address, Keypair};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Argon2id cost: 64 MiB, 3 passes, 1 lane (the OWASP baseline for interactive logins).
const ARGON2_MEMORY_KIB: u32 = 64 * 1024;
const ARGON2_PASSES: u32 = 3;
const ARGON2_LANES: u32 = 1;
const FILE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("key name {name:?}: use 1 to 64 characters of a-z, 0-9, '-' and '_'")]
    BadName { name: String },
    #[error("a key named {name:?} already exists")]
    Exists { name: String },
    #[error("no key named {name:?} in {dir}")]
    NotFound { name: String, dir: PathBuf },
    #[error("key {name:?} is encrypted: a passphrase is needed")]
    PassphraseRequired { name: String },
    #[error("wrong passphrase for key {name:?} (or the file was altered)")]
    WrongPassphrase { name: String },
    #[error("key file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("system randomness unavailable: {reason}")]
    Random { reason: String },
    #[error("passphrase stretching failed: {reason}")]
    Kdf { reason: String },
}

/// What a key file records.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct KeyFile {
    version: u32,
    name: String,
    address: Address,
    /// Present for encrypted keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<Sealed>,
    /// Present only for unencrypted devnet keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plaintext_secret_hex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    warning: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Sealed {
    kdf: String,
    memory_kib: u32,
    passes: u32,
    lanes: u32,
    salt_hex: String,
    cipher: String,
    nonce_hex: String,
    ciphertext_hex: String,
}

/// A key as listed: never the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub name: String,
    pub address: Address,
    pub encrypted: bool,
    /// An unencrypted devnet key: never for real funds.
    pub devnet_unencrypted: bool,
    pub path: PathBuf,
}

/// The key directory of a Cairn home.
#[derive(Clone, Debug)]
pub struct Keystore {
    dir: PathBuf,
}

fn random<const N: usize>() -> Result<[u8; N], KeystoreError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| KeystoreError::Random {
        reason: e.to_string(),
    })?;
    Ok(out)
}

fn check_name(name: &str) -> Result<(), KeystoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(KeystoreError::BadName {
            name: name.to_string(),
        })
    }
}

fn stretch(
    passphrase: &str,
    salt: &[u8],
    memory_kib: u32,
    passes: u32,
    lanes: u32,
) -> Result<[u8; 32], KeystoreError> {
    let kdf = |e: argon2::Error| KeystoreError::Kdf {
        reason: e.to_string(),
    };
    let params = argon2::Params::new(memory_kib, passes, lanes, Some(32)).map_err(kdf)?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = [0u8; 32];
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(kdf)?;
    Ok(key)
}

impl Keystore {
    /// The keystore of a Cairn home directory (`<home>/keys`).
    pub fn open(home: &Path) -> Self {
        Self {
            dir: home.join("keys"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// A new random key. `passphrase: None` stores it unencrypted, for devnets only.
    pub fn create(&self, name: &str, passphrase: Option<&str>) -> Result<KeyInfo, KeystoreError> {
        let secret = random::<32>()?;
        self.import(name, &secret, passphrase)
    }

    /// Stores a key from its 32 secret bytes. Never overwrites an existing key.
    pub fn import(
        &self,
        name: &str,
        secret: &[u8; 32],
        passphrase: Option<&str>,
    ) -> Result<KeyInfo, KeystoreError> {
        check_name(name)?;
        let path = self.path(name);
        if path.exists() {
            return Err(KeystoreError::Exists {
                name: name.to_string(),
            });
        }
        let keypair = Keypair::from_secret(secret);
        let address = keypair.address();
        let file = match passphrase {
            Some(passphrase) => {
                let salt = random::<16>()?;
                let nonce = random::<24>()?;
                let key = stretch(
                    passphrase,
                    &salt,
                    ARGON2_MEMORY_KIB,
                    ARGON2_PASSES,
                    ARGON2_LANES,
                )?;
                let cipher = XChaCha20Poly1305::new((&key).into());
                // The address is authenticated data: a file whose address was swapped fails
                // to open instead of signing as someone else.
                let ciphertext = cipher
                    .encrypt(
                        XNonce::from_slice(&nonce),
                        Payload {
                            msg: secret,
                            aad: &address.0,
                        },
                    )
                    .map_err(|_| KeystoreError::Kdf {
                        reason: "encryption failed".to_string(),
                    })?;
                KeyFile {
                    version: FILE_VERSION,
                    name: name.to_string(),
                    address,
                    sealed: Some(Sealed {
                        kdf: "argon2id".to_string(),
                        memory_kib: ARGON2_MEMORY_KIB,
                        passes: ARGON2_PASSES,
                        lanes: ARGON2_LANES,
                        salt_hex: hex::encode(salt),
                        cipher: "xchacha20poly1305".to_string(),
                        nonce_hex: hex::encode(nonce),
                        ciphertext_hex: hex::encode(ciphertext),
                    }),
                    plaintext_secret_hex: None,
                    warning: None,
                }
            }
            None => KeyFile {
                version: FILE_VERSION,
                name: name.to_string(),
                address,
                sealed: None,
                plaintext_secret_hex: Some(hex::encode(secret)),
                warning: Some("UNENCRYPTED DEVNET KEY: never hold real funds with it".to_string()),
            },
        };
        self.write_new(&path, &file)?;
        Ok(self.info_of(&file, path))
    }

    fn write_new(&self, path: &Path, file: &KeyFile) -> Result<(), KeystoreError> {
        let io = |action, source| KeystoreError::Io {
            action,
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| io("creating", e))?;
        let text = serde_json::to_string_pretty(file).map_err(|e| KeystoreError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        // Write to a temporary file and rename: a crash never leaves half a key behind.
        let tmp = path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let _ = std::fs::remove_file(&tmp);
            let mut f = options.open(&tmp).map_err(|e| io("creating", e))?;
            f.write_all(text.as_bytes()).map_err(|e| io("writing", e))?;
            f.sync_all().map_err(|e| io("syncing", e))?;
        }
        // hard_link refuses to replace an existing file, unlike rename.
        std::fs::hard_link(&tmp, path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeystoreError::Exists {
                    name: path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                }
            } else {
                io("storing", e)
            }
        })?;
        let _ = std::fs::remove_file(&tmp);
        Ok(())
    }

    fn read(&self, name: &str) -> Result<(KeyFile, PathBuf), KeystoreError> {
        check_name(name)?;
        let path = self.path(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeystoreError::NotFound {
                    name: name.to_string(),
                    dir: self.dir.clone(),
                });
            }
            Err(source) => {
                return Err(KeystoreError::Io {
                    action: "reading",
                    path,
                    source,
                });
            }
        };
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| KeystoreError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok((file, path))
    }

    fn info_of(&self, file: &KeyFile, path: PathBuf) -> KeyInfo {
        KeyInfo {
            name: file.name.clone(),
            address: file.address,
            encrypted: file.sealed.is_some(),
            devnet_unencrypted: file.plaintext_secret_hex.is_some(),
            path,
        }
    }

    pub fn info(&self, name: &str) -> Result<KeyInfo, KeystoreError> {
        let (file, path) = self.read(name)?;
        Ok(self.info_of(&file, path))
    }

    /// Every key, sorted by name. An empty or missing directory is an empty list.
    pub fn list(&self) -> Result<Vec<KeyInfo>, KeystoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(KeystoreError::Io {
                    action: "listing",
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json").map(str::to_string)
            })
            .filter(|n| check_name(n).is_ok())
            .collect();
        names.sort();
        names.iter().map(|n| self.info(n)).collect()
    }

    /// Whether opening `name` needs a passphrase.
    pub fn is_encrypted(&self, name: &str) -> Result<bool, KeystoreError> {
        Ok(self.read(name)?.0.sealed.is_some())
    }

    /// The signing key. Encrypted keys need their passphrase.
    pub fn load(&self, name: &str, passphrase: Option<&str>) -> Result<Keypair, KeystoreError> {
        let (file, path) = self.read(name)?;
        let corrupt = |reason: &str| KeystoreError::Corrupt {
            path: path.clone(),
            reason: reason.to_string(),
        };
        let secret: [u8; 32] = match (&file.sealed, &file.plaintext_secret_hex) {
            (Some(sealed), _) => {
                let passphrase = passphrase.ok_or_else(|| KeystoreError::PassphraseRequired {
                    name: name.to_string(),
                })?;
                if sealed.kdf != "argon2id" || sealed.cipher != "xchacha20poly1305" {
                    return Err(corrupt("unknown kdf or cipher"));
                }
                let salt = hex::decode(&sealed.salt_hex).map_err(|_| corrupt("salt is not hex"))?;
                let nonce =
                    hex::decode(&sealed.nonce_hex).map_err(|_| corrupt("nonce is not hex"))?;
                if nonce.len() != 24 {
                    return Err(corrupt("nonce must be 24 bytes"));
                }
                let ciphertext = hex::decode(&sealed.ciphertext_hex)
                    .map_err(|_| corrupt("ciphertext is not hex"))?;
                let key = stretch(
                    passphrase,
                    &salt,
                    sealed.memory_kib,
                    sealed.passes,
                    sealed.lanes,
                )?;
                let cipher = XChaCha20Poly1305::new((&key).into());
                let plain = cipher
                    .decrypt(
                        XNonce::from_slice(&nonce),
                        Payload {
                            msg: &ciphertext,
                            aad: &file.address.0,
                        },
                    )
                    .map_err(|_| KeystoreError::WrongPassphrase {
                        name: name.to_string(),
                    })?;
                plain
                    .try_into()
                    .map_err(|_| corrupt("secret must be 32 bytes"))?
            }
            (None, Some(secret_hex)) => {
                let bytes = hex::decode(secret_hex).map_err(|_| corrupt("secret is not hex"))?;
                bytes
                    .try_into()
                    .map_err(|_| corrupt("secret must be 32 bytes"))?
            }
            (None, None) => return Err(corrupt("neither sealed nor plaintext secret")),
        };
        let keypair = Keypair::from_secret(&secret);
        if keypair.address() != file.address {
            return Err(corrupt("secret does not match the recorded address"));
        }
        Ok(keypair)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_round_trip_and_wrong_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let store = Keystore::open(dir.path());
        let info = store.create("alice", Some("correct horse")).unwrap();
        assert!(info.encrypted && !info.devnet_unencrypted);
        let key = store.load("alice", Some("correct horse")).unwrap();
        assert_eq!(key.address(), info.address);
        assert!(matches!(
            store.load("alice", Some("wrong")),
            Err(KeystoreError::WrongPassphrase { .. })
        ));
        assert!(matches!(
            store.load("alice", None),
            Err(KeystoreError::PassphraseRequired { .. })
        ));
        // The secret never appears in the file.
        let text = std::fs::read_to_string(&info.path).unwrap();
        assert!(!text.contains(&hex::encode(key.secret_bytes())));
    }

    #[test]
    fn devnet_keys_are_labelled_and_names_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Keystore::open(dir.path());
        let info = store.import("default", &[7; 32], None).unwrap();
        assert!(info.devnet_unencrypted && !info.encrypted);
        let text = std::fs::read_to_string(&info.path).unwrap();
        assert!(text.contains("UNENCRYPTED DEVNET KEY"));
        assert_eq!(
            store.load("default", None).unwrap().address(),
            Keypair::from_secret(&[7; 32]).address()
        );
        assert!(matches!(
            store.import("default", &[8; 32], None),
            Err(KeystoreError::Exists { .. })
        ));
        // The existing key is untouched.
        assert_eq!(
            store.load("default", None).unwrap().address(),
            Keypair::from_secret(&[7; 32]).address()
        );
        for bad in ["", "Alice", "../x", "a b", &"x".repeat(65)] {
            assert!(matches!(
                store.import(bad, &[1; 32], None),
                Err(KeystoreError::BadName { .. })
            ));
        }
        assert!(matches!(
            store.load("nobody", None),
            Err(KeystoreError::NotFound { .. })
        ));
        let names: Vec<String> = store.list().unwrap().into_iter().map(|k| k.name).collect();
        assert_eq!(names, vec!["default".to_string()]);
    }

    #[test]
    fn a_swapped_address_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Keystore::open(dir.path());
        let info = store.import("bob", &[9; 32], Some("pw")).unwrap();
        let text = std::fs::read_to_string(&info.path).unwrap();
        let other = Keypair::from_secret(&[10; 32]).address();
        std::fs::write(
            &info.path,
            text.replace(&info.address.to_string(), &other.to_string()),
        )
        .unwrap();
        assert!(matches!(
            store.load("bob", Some("pw")),
            Err(KeystoreError::WrongPassphrase { .. })
        ));
    }
}
