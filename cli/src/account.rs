//! Commands that talk to a running node: `cairn status`, `cairn account ...`, `cairn tx show`.

use crate::Global;
use crate::keys::PassphraseArgs;
use anyhow::{Context, Result, bail};
use cairn_client::{Keystore, NodeClient};
use cairn_types::tx::{Delegation, StakeAmount, Transfer};
use cairn_types::{Address, Amount, Hash, Keypair, TxBody};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::time::Duration;

/// Where the node API is: `--node`, else `$CAIRN_NODE`, else the `node.json` a devnet wrote
/// into the home, else the devnet's default port.
pub fn node_url(global: &Global) -> Result<String> {
    if let Some(url) = &global.node {
        return Ok(url.clone());
    }
    if let Some(url) = std::env::var_os("CAIRN_NODE").filter(|v| !v.is_empty()) {
        return Ok(url.to_string_lossy().into_owned());
    }
    let path = global.home_dir()?.join("node.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let doc: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        if let Some(url) = doc["api"].as_str() {
            return Ok(url.to_string());
        }
    }
    Ok(format!(
        "http://127.0.0.1:{}",
        crate::devnet::DEFAULT_API_PORT
    ))
}

#[derive(Args, Debug)]
pub struct SignArgs {
    /// Key that signs (from the home's keystore).
    #[arg(long, default_value = "default")]
    pub from: String,
    /// Fee, e.g. "0.001 CRN" [default: the chain's minimum].
    #[arg(long)]
    pub fee: Option<Amount>,
    /// Return once the node accepted it, without waiting for finality.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Subcommand, Debug)]
pub enum AccountCommand {
    /// Balance, nonce, stake and delegations of an address (or of `--key`).
    Show {
        address: Option<Address>,
        #[arg(long, default_value = "default")]
        key: String,
    },
    /// Send CRN: `cairn account transfer ADDRESS "12.5 CRN"`.
    Transfer {
        to: Address,
        amount: Amount,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Add to your provider self-bond.
    Stake {
        amount: Amount,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Delegate stake to a provider (passive rewards minus its commission).
    Delegate {
        provider: Address,
        amount: Amount,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Start unbonding a delegation.
    Undelegate {
        provider: Address,
        amount: Amount,
        #[command(flatten)]
        sign: SignArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum TxCommand {
    /// A transaction's receipt (or its pending status).
    Show { hash: Hash },
}

pub(crate) fn print(global: &Global, value: &Value) -> Result<()> {
    if global.json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print_human(value, 0);
    }
    Ok(())
}

fn print_human(value: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::Object(_) | Value::Array(_) if !is_empty(v) => {
                        println!("{pad}{k}:");
                        print_human(v, indent + 2);
                    }
                    _ => println!("{pad}{k}: {}", scalar(v)),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(_) => {
                        println!("{pad}-");
                        print_human(item, indent + 2);
                    }
                    _ => println!("{pad}- {}", scalar(item)),
                }
            }
        }
        other => println!("{pad}{}", scalar(other)),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        Value::Array(_) => "[]".to_string(),
        Value::Object(_) => "{}".to_string(),
        other => other.to_string(),
    }
}

pub fn status(global: &Global) -> Result<()> {
    let client = NodeClient::new(&node_url(global)?);
    print(global, &client.status()?)
}

pub(crate) fn load_key(
    global: &Global,
    name: &str,
    passphrase: &PassphraseArgs,
) -> Result<Keypair> {
    let store = Keystore::open(&global.home_dir()?);
    let pass = if store.is_encrypted(name)? {
        Some(passphrase.get(false)?)
    } else {
        None
    };
    Ok(store.load(name, pass.as_deref())?)
}

fn send(global: &Global, sign: &SignArgs, body: TxBody) -> Result<()> {
    let client = NodeClient::new(&node_url(global)?);
    let key = load_key(global, &sign.from, &sign.passphrase)?;
    let hash = client.send(&key, body, sign.fee)?;
    if sign.no_wait {
        return print(
            global,
            &serde_json::json!({ "hash": hash, "status": "pending" }),
        );
    }
    let record = client.wait_finalized(&hash, Duration::from_secs(60))?;
    let failed = !record["receipt"]["error"].is_null();
    print(global, &record)?;
    if failed {
        bail!(
            "transaction {hash} was included but failed: {} (fee charged)",
            record["receipt"]["error"]
        );
    }
    Ok(())
}

pub fn account(global: &Global, command: AccountCommand) -> Result<()> {
    match command {
        AccountCommand::Show { address, key } => {
            let address = match address {
                Some(a) => a,
                None => Keystore::open(&global.home_dir()?).info(&key)?.address,
            };
            let client = NodeClient::new(&node_url(global)?);
            print(global, &client.account(&address)?)
        }
        AccountCommand::Transfer { to, amount, sign } => {
            send(global, &sign, TxBody::Transfer(Transfer { to, amount }))
        }
        AccountCommand::Stake { amount, sign } => {
            send(global, &sign, TxBody::Bond(StakeAmount { amount }))
        }
        AccountCommand::Delegate {
            provider,
            amount,
            sign,
        } => send(
            global,
            &sign,
            TxBody::Delegate(Delegation { provider, amount }),
        ),
        AccountCommand::Undelegate {
            provider,
            amount,
            sign,
        } => send(
            global,
            &sign,
            TxBody::Undelegate(Delegation { provider, amount }),
        ),
    }
}

pub fn tx(global: &Global, command: TxCommand) -> Result<()> {
    match command {
        TxCommand::Show { hash } => {
            let client = NodeClient::new(&node_url(global)?);
            print(global, &client.tx(&hash)?)
        }
    }
}
