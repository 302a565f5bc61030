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
    /// Send it even when the node's check says it would fail (the fee is charged when it
    /// does).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Subcommand, Debug)]
pub enum AccountCommand {
    /// Balance, nonce, stake and delegations of an address or key name (or of `--key`).
    Show {
        /// An address (cairn1...) or the name of a key in the home's keystore.
        address: Option<String>,
        #[arg(long, default_value = "default")]
        key: String,
    },
    /// Send CRN: `cairn account transfer ADDRESS "12.5 CRN"` (or "500 uCRN"; a key name for
    /// ADDRESS sends to that key). Checked against the node's state before it is signed.
    Transfer {
        /// An address (cairn1...) or the name of a key in the home's keystore.
        to: String,
        /// With its unit: "12.5 CRN" or "500 uCRN".
        amount: Amount,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Add to your provider self-bond.
    Stake {
        /// With its unit: "12.5 CRN" or "500 uCRN".
        amount: Amount,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Delegate stake to a provider (passive rewards minus its commission).
    Delegate {
        /// The provider's address (cairn1...) or the name of its key in the home's keystore.
        provider: String,
        /// With its unit: "12.5 CRN" or "500 uCRN".
        amount: Amount,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Start unbonding a delegation.
    Undelegate {
        /// The provider's address (cairn1...) or the name of its key in the home's keystore.
        provider: String,
        /// With its unit: "12.5 CRN" or "500 uCRN".
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
        outln!("{}", serde_json::to_string_pretty(value)?);
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
                        outln!("{pad}{k}:");
                        print_human(v, indent + 2);
                    }
                    _ => outln!("{pad}{k}: {}", human_scalar(k, v)),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(_) => {
                        outln!("{pad}-");
                        print_human(item, indent + 2);
                    }
                    _ => outln!("{pad}- {}", scalar(item)),
                }
            }
        }
        other => outln!("{pad}{}", scalar(other)),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Fields of the node's JSON that hold amounts. The JSON carries them as uCRN digit strings
/// with nothing else marking them as money, so people get them in CRN by name.
const AMOUNT_FIELDS: &[&str] = &[
    "amount",
    "balance",
    "bond",
    "delegated",
    "deposit",
    "endowment",
    "escrow",
    "escrow_left",
    "fee",
    "fees_earned_total",
    "max_price_per_block",
    "paid",
    "price_per_block",
    "price_per_gib_epoch",
    "refunded",
    "rewards_total",
    "self_bond",
    "stake",
    "total_slashed",
    "validator_stake",
    "min_tx_fee",
];

/// A scalar for people: a known amount field in CRN ("1,234.5 CRN"), a Unix time in
/// milliseconds as a UTC date, anything else as is.
fn human_scalar(key: &str, v: &Value) -> String {
    if AMOUNT_FIELDS.contains(&key)
        && let Some(ucrn) = v.as_str().and_then(|t| t.parse::<u128>().ok())
    {
        return Amount::from_ucrn(ucrn).to_string();
    }
    if crate::table::is_unix_ms_field(key)
        && let Some(ms) = v.as_u64()
    {
        return crate::table::utc(ms);
    }
    scalar(v)
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

/// An address from what the user typed: an address (`cairn1...`), else the name of a key in
/// the home's keystore. Neither is refused naming both readings, so a mistyped address is
/// never taken for a name nor a misspelt name for an address.
pub(crate) fn resolve_address(global: &Global, text: &str) -> Result<Address> {
    let not_address = match text.parse::<Address>() {
        Ok(address) => return Ok(address),
        Err(e) => e,
    };
    let store = Keystore::open(&global.home_dir()?);
    match store.info(text) {
        Ok(info) => Ok(info.address),
        Err(
            cairn_client::KeystoreError::NotFound { .. }
            | cairn_client::KeystoreError::BadName { .. },
        ) => {
            // What looks like an address gets the address's problem first.
            if text
                .to_ascii_lowercase()
                .starts_with(cairn_types::keys::ADDRESS_PREFIX)
            {
                bail!("{not_address} (nor is it the name of a key: `cairn keys list`)")
            }
            bail!(
                "{text:?} is neither an address nor a key name: no key named {text:?} in {} (`cairn keys list`), and as an address: {not_address}",
                store.dir().display()
            )
        }
        Err(e) => Err(e.into()),
    }
}

/// Asks the node whether `body` from `sender` would go through, before anything is signed;
/// refuses it with the reason unless `force`.
pub(crate) fn check_before_signing(
    client: &NodeClient,
    sender: &Address,
    body: &TxBody,
    fee: Option<Amount>,
    force: bool,
) -> Result<()> {
    if force {
        return Ok(());
    }
    if let Some(refusal) = client.check(sender, body, fee)? {
        let cost = if refusal.fee_paid {
            "it would be included and fail, and its fee would be charged"
        } else {
            "the node would refuse it"
        };
        bail!(
            "{} refused before signing: {}; nothing was sent and no fee paid ({cost}; --force sends it anyway)",
            body.kind(),
            refusal.message
        );
    }
    Ok(())
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
    check_before_signing(&client, &key.address(), &body, sign.fee, sign.force)?;
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
                Some(a) => resolve_address(global, &a)?,
                None => Keystore::open(&global.home_dir()?).info(&key)?.address,
            };
            let client = NodeClient::new(&node_url(global)?);
            print(global, &client.account(&address)?)
        }
        AccountCommand::Transfer { to, amount, sign } => {
            let to = resolve_address(global, &to)?;
            send(global, &sign, TxBody::Transfer(Transfer { to, amount }))
        }
        AccountCommand::Stake { amount, sign } => {
            send(global, &sign, TxBody::Bond(StakeAmount { amount }))
        }
        AccountCommand::Delegate {
            provider,
            amount,
            sign,
        } => {
            let provider = resolve_address(global, &provider)?;
            send(
                global,
                &sign,
                TxBody::Delegate(Delegation { provider, amount }),
            )
        }
        AccountCommand::Undelegate {
            provider,
            amount,
            sign,
        } => {
            let provider = resolve_address(global, &provider)?;
            send(
                global,
                &sign,
                TxBody::Undelegate(Delegation { provider, amount }),
            )
        }
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
