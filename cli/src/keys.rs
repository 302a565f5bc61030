//! `cairn keys`: create, list, show, import and export keys in the home's keystore.

use crate::Global;
use anyhow::{Context, Result, bail};
use cairn_client::{KeyInfo, Keystore};
use clap::{Args, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a new random key.
    New {
        name: String,
        #[command(flatten)]
        secret: PassphraseArgs,
        /// Store it unencrypted (devnets only; the file and every listing say so).
        #[arg(long)]
        unencrypted_devnet: bool,
    },
    /// List every key.
    List,
    /// Show one key's address.
    Show { name: String },
    /// Import a key from its 32 secret bytes, given as hex in a file ("-" for stdin).
    Import {
        name: String,
        /// File holding the secret as 64 hex characters; "-" reads standard input.
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
        #[command(flatten)]
        secret: PassphraseArgs,
        #[arg(long)]
        unencrypted_devnet: bool,
    },
    /// Print a key's secret as hex (handle with care).
    Export {
        name: String,
        #[command(flatten)]
        secret: PassphraseArgs,
    },
}

#[derive(Args, Debug)]
pub struct PassphraseArgs {
    /// Read the passphrase from this file (first line). Otherwise $CAIRN_PASSPHRASE, else a
    /// prompt on a terminal.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

impl PassphraseArgs {
    /// The passphrase from the file, the environment, or a prompt (`confirm` asks twice).
    pub fn get(&self, confirm: bool) -> Result<String> {
        if let Some(path) = &self.passphrase_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the passphrase file {}", path.display()))?;
            let line = text.lines().next().unwrap_or_default().to_string();
            if line.is_empty() {
                bail!("the passphrase file {} is empty", path.display());
            }
            return Ok(line);
        }
        if let Some(p) = std::env::var_os("CAIRN_PASSPHRASE") {
            let p = p.to_string_lossy().into_owned();
            if p.is_empty() {
                bail!("CAIRN_PASSPHRASE is set but empty");
            }
            return Ok(p);
        }
        if !std::io::stdin().is_terminal() {
            bail!(
                "a passphrase is needed: pass --passphrase-file FILE or set CAIRN_PASSPHRASE \
                 (or use --unencrypted-devnet for a devnet key)"
            );
        }
        let first = rpassword::prompt_password("passphrase: ").context("reading the passphrase")?;
        if first.is_empty() {
            bail!("empty passphrase");
        }
        if confirm {
            let second = rpassword::prompt_password("repeat passphrase: ")
                .context("reading the passphrase")?;
            if first != second {
                bail!("the passphrases differ");
            }
        }
        Ok(first)
    }
}

fn print_info(global: &Global, info: &KeyInfo) -> Result<()> {
    if global.json {
        outln!("{}", serde_json::to_string_pretty(info)?);
    } else {
        outln!(
            "{}  {}  {}",
            info.name,
            info.address,
            if info.devnet_unencrypted {
                "UNENCRYPTED (devnet)"
            } else {
                "encrypted"
            }
        );
    }
    Ok(())
}

fn read_secret(path: &PathBuf) -> Result<[u8; 32]> {
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading stdin")?;
        s
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    let hex_text = text.trim();
    let bytes = hex::decode(hex_text).context("the secret must be 64 hex characters")?;
    bytes
        .try_into()
        .map_err(|v: Vec<u8>| anyhow::anyhow!("the secret must be 32 bytes, got {}", v.len()))
}

pub fn run(global: &Global, command: KeysCommand) -> Result<()> {
    let store = Keystore::open(&global.home_dir()?);
    match command {
        KeysCommand::New {
            name,
            secret,
            unencrypted_devnet,
        } => {
            let passphrase = if unencrypted_devnet {
                None
            } else {
                Some(secret.get(true)?)
            };
            let info = store.create(&name, passphrase.as_deref())?;
            print_info(global, &info)
        }
        KeysCommand::Import {
            name,
            secret_file,
            secret,
            unencrypted_devnet,
        } => {
            let bytes = read_secret(&secret_file)?;
            let passphrase = if unencrypted_devnet {
                None
            } else {
                Some(secret.get(true)?)
            };
            let info = store.import(&name, &bytes, passphrase.as_deref())?;
            print_info(global, &info)
        }
        KeysCommand::List => {
            let keys = store.list()?;
            if global.json {
                outln!("{}", serde_json::to_string_pretty(&keys)?);
            } else if keys.is_empty() {
                outln!("no keys in {}", store.dir().display());
            } else {
                for info in &keys {
                    print_info(global, info)?;
                }
            }
            Ok(())
        }
        KeysCommand::Show { name } => print_info(global, &store.info(&name)?),
        KeysCommand::Export { name, secret } => {
            let passphrase = if store.is_encrypted(&name)? {
                Some(secret.get(false)?)
            } else {
                None
            };
            let key = store.load(&name, passphrase.as_deref())?;
            let secret_hex = hex::encode(key.secret_bytes());
            if global.json {
                let doc = serde_json::json!({
                    "name": name,
                    "address": key.address(),
                    "secret_hex": secret_hex,
                });
                outln!("{doc}");
            } else {
                outln!("{secret_hex}");
            }
            Ok(())
        }
    }
}
