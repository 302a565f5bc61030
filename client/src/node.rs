//! A typed client of the node API (design §5), blocking and dependency-light: the CLI's
//! commands are one request or a short poll each.

use cairn_types::{
    Address, Amount, BoundedString, Hash, Keypair, SignedTransaction, Transaction, TxBody,
};
use serde_json::Value;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(
        "cannot reach the node at {url}: {reason} (is `cairn devnet` running? set --node or CAIRN_NODE)"
    )]
    Unreachable { url: String, reason: String },
    #[error("the node refused the request ({status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer from {url}: {reason}")]
    BadAnswer { url: String, reason: String },
    #[error("transaction {hash} was not finalized within {waited_ms} ms (it may still be)")]
    Timeout { hash: Hash, waited_ms: u128 },
    #[error(
        "transaction {hash} will never land: {sender}'s nonce {nonce} was taken by another transaction (is another process signing with the same key?)"
    )]
    Displaced {
        hash: Hash,
        sender: Address,
        nonce: u64,
    },
    #[error(
        "{path} did not end within {pages} pages of {page_items}: refusing to read it as a whole (filter it, or read it a page at a time)"
    )]
    TooManyPages {
        path: String,
        pages: usize,
        page_items: usize,
    },
}

/// Items per page [`NodeClient::list_pages`] asks for: the node API's largest page.
pub const LIST_PAGE_ITEMS: usize = 1000;
/// Most pages [`NodeClient::list_pages`] reads of one list (100 000 items): far more than any
/// list a client should hold at once, so a runaway list (or a node whose cursor does not move)
/// ends in an error instead of an unbounded loop.
pub const MAX_LIST_PAGES: usize = 100;

/// A cursor as a query value: percent-encoded, since the node calls it opaque.
fn query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why the node expects a transaction to fail ([`NodeClient::check`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRefusal {
    /// Whether sending it anyway would cost its fee (the body fails on chain), or it would be
    /// refused at admission (nothing paid).
    pub fee_paid: bool,
    /// The typed reason's code, e.g. `insufficient_balance`.
    pub reason: String,
    /// The reason for people.
    pub message: String,
}

/// The node API at one base URL.
#[derive(Clone, Debug)]
pub struct NodeClient {
    base: String,
    agent: ureq::Agent,
}

impl NodeClient {
    pub fn new(base: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            base: base.trim_end_matches('/').to_string(),
            agent,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn answer(
        &self,
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, NodeError> {
        let mut response = result.map_err(|e| NodeError::Unreachable {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let body: Value = response
            .body_mut()
            .read_json()
            .map_err(|e| NodeError::BadAnswer {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        if status >= 400 {
            let code = body["error"]["code"]
                .as_str()
                .unwrap_or("error")
                .to_string();
            let message = body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            return Err(NodeError::Refused {
                status,
                code,
                message,
            });
        }
        Ok(body)
    }

    /// GET a path under the base URL, as JSON.
    pub fn get(&self, path: &str) -> Result<Value, NodeError> {
        let url = format!("{}{path}", self.base);
        let result = self.agent.get(&url).call();
        self.answer(&url, result)
    }

    /// Reads a list route (`/v1/providers`, `/v1/deals`, `/v1/orders`, `/v1/leases`, with any
    /// filters in `path_with_query` but no `limit` or `after`) a page at a time, following
    /// `next` to the end, and hands each page's `key` items to `each`, which may stop early
    /// (`ControlFlow::Break`). At most [`MAX_LIST_PAGES`] pages, else
    /// [`NodeError::TooManyPages`]: a list is read whole or not at all.
    pub fn list_pages(
        &self,
        path_with_query: &str,
        key: &str,
        mut each: impl FnMut(&[Value]) -> std::ops::ControlFlow<()>,
    ) -> Result<(), NodeError> {
        let separator = if path_with_query.contains('?') {
            '&'
        } else {
            '?'
        };
        let first = format!("{path_with_query}{separator}limit={LIST_PAGE_ITEMS}");
        let mut path = first.clone();
        for _ in 0..MAX_LIST_PAGES {
            let mut answer = self.get(&path)?;
            let bad = |reason: &str| NodeError::BadAnswer {
                url: format!("{}{path}", self.base),
                reason: reason.to_string(),
            };
            let items = answer[key]
                .as_array()
                .ok_or_else(|| bad(&format!("no {key} list")))?;
            if each(items).is_break() {
                return Ok(());
            }
            // A node without cursors answers one page and no `next`: that is not the whole.
            match answer.get_mut("next").map(Value::take) {
                Some(Value::Null) => return Ok(()),
                Some(Value::String(next)) => {
                    path = format!("{first}&after={}", query_value(&next));
                }
                _ => return Err(bad("no next cursor (a node older than paged lists?)")),
            }
        }
        Err(NodeError::TooManyPages {
            path: path_with_query.to_string(),
            pages: MAX_LIST_PAGES,
            page_items: LIST_PAGE_ITEMS,
        })
    }

    /// Every item of a list route, all pages: [`Self::list_pages`] collected.
    pub fn list_all(&self, path_with_query: &str, key: &str) -> Result<Vec<Value>, NodeError> {
        let mut all = Vec::new();
        self.list_pages(path_with_query, key, |items| {
            all.extend_from_slice(items);
            std::ops::ControlFlow::Continue(())
        })?;
        Ok(all)
    }

    pub fn status(&self) -> Result<Value, NodeError> {
        self.get("/v1/status")
    }

    pub fn account(&self, address: &Address) -> Result<Value, NodeError> {
        self.get(&format!("/v1/accounts/{address}"))
    }

    /// The account's next nonce as the node sees it (finalized state).
    pub fn nonce(&self, address: &Address) -> Result<u64, NodeError> {
        let account = self.account(address)?;
        account["nonce"]
            .as_u64()
            .ok_or_else(|| NodeError::BadAnswer {
                url: format!("{}/v1/accounts/{address}", self.base),
                reason: "no nonce".to_string(),
            })
    }

    pub fn chain_id(&self) -> Result<String, NodeError> {
        let status = self.status()?;
        status["chain_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| NodeError::BadAnswer {
                url: format!("{}/v1/status", self.base),
                reason: "no chain_id".to_string(),
            })
    }

    /// Whether `body` from `sender` (paying `fee`, else the chain's minimum) would go through
    /// on the node's finalized state: `None` when it would, else why not. Asked before signing
    /// (`POST /v1/txs/check`), so a transfer above the balance is refused before any fee.
    pub fn check(
        &self,
        sender: &Address,
        body: &TxBody,
        fee: Option<Amount>,
    ) -> Result<Option<CheckRefusal>, NodeError> {
        let url = format!("{}/v1/txs/check", self.base);
        let request = serde_json::json!({ "sender": sender, "body": body, "fee": fee });
        let result = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(request.to_string().as_bytes());
        let answer = self.answer(&url, result)?;
        if answer["ok"] == true {
            return Ok(None);
        }
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Ok(Some(CheckRefusal {
            fee_paid: answer["stage"] == "body",
            reason: text(&answer["error"]["reason"]),
            message: text(&answer["message"]),
        }))
    }

    /// Submits in the canonical binary encoding; returns the transaction hash.
    pub fn submit(&self, tx: &SignedTransaction) -> Result<Hash, NodeError> {
        let url = format!("{}/v1/txs", self.base);
        let result = self
            .agent
            .post(&url)
            .header("Content-Type", "application/octet-stream")
            .send(&tx.to_bytes()[..]);
        let body = self.answer(&url, result)?;
        body["hash"]
            .as_str()
            .and_then(|h| h.parse().ok())
            .ok_or_else(|| NodeError::BadAnswer {
                url,
                reason: "no hash in the answer".to_string(),
            })
    }

    /// Submits many transactions in one request (`POST /v1/txs/batch`, binary encoding).
    /// Each gets its own result, in order: the hash, or the node's refusal.
    pub fn submit_batch(
        &self,
        txs: &[SignedTransaction],
    ) -> Result<Vec<Result<Hash, String>>, NodeError> {
        let url = format!("{}/v1/txs/batch", self.base);
        let result = self
            .agent
            .post(&url)
            .header("Content-Type", "application/octet-stream")
            .send(&cairn_types::tx::encode_batch(txs)[..]);
        let body = self.answer(&url, result)?;
        let bad = |reason: &str| NodeError::BadAnswer {
            url: url.clone(),
            reason: reason.to_string(),
        };
        let results = body["results"]
            .as_array()
            .ok_or_else(|| bad("no results in the answer"))?;
        if results.len() != txs.len() {
            return Err(bad("one result per transaction expected"));
        }
        Ok(results
            .iter()
            .map(|r| match r["hash"].as_str().and_then(|h| h.parse().ok()) {
                Some(hash) => Ok(hash),
                None => Err(r["error"]["message"]
                    .as_str()
                    .unwrap_or("refused")
                    .to_string()),
            })
            .collect())
    }

    /// Signs `body` from `key` with the account's next finalized nonce and the node's
    /// minimum fee (or `fee`), submits it, and returns the transaction hash.
    ///
    /// The nonce comes from finalized state: a caller with transactions still pending must
    /// wait for them (or use [`Self::send_all`]) before sending the next one.
    pub fn send(
        &self,
        key: &Keypair,
        body: TxBody,
        fee: Option<Amount>,
    ) -> Result<Hash, NodeError> {
        self.send_numbered(key, body, fee).map(|(hash, _)| hash)
    }

    /// [`NodeClient::send`], also returning the nonce the transaction took, for
    /// [`NodeClient::wait_landed`].
    pub fn send_numbered(
        &self,
        key: &Keypair,
        body: TxBody,
        fee: Option<Amount>,
    ) -> Result<(Hash, u64), NodeError> {
        let nonce = self.nonce(&key.address())?;
        let hashes = self.send_from(key, vec![body], fee, nonce)?;
        hashes
            .into_iter()
            .next()
            .map(|hash| (hash, nonce))
            .ok_or_else(|| NodeError::BadAnswer {
                url: format!("{}/v1/txs", self.base),
                reason: "no transaction was submitted".to_string(),
            })
    }

    /// Signs `bodies` from `key` with consecutive nonces from the account's next finalized
    /// one and submits them in order without waiting: the mempool holds a sender's
    /// transactions in nonce order, so they can land in the same block.
    pub fn send_all(
        &self,
        key: &Keypair,
        bodies: Vec<TxBody>,
        fee: Option<Amount>,
    ) -> Result<Vec<Hash>, NodeError> {
        let nonce = self.nonce(&key.address())?;
        self.send_from(key, bodies, fee, nonce)
    }

    /// [`NodeClient::send_all`] from a given first nonce.
    fn send_from(
        &self,
        key: &Keypair,
        bodies: Vec<TxBody>,
        fee: Option<Amount>,
        mut nonce: u64,
    ) -> Result<Vec<Hash>, NodeError> {
        let status = self.status()?;
        let bad = |reason: &str| NodeError::BadAnswer {
            url: format!("{}/v1/status", self.base),
            reason: reason.to_string(),
        };
        let chain_id = status["chain_id"]
            .as_str()
            .ok_or_else(|| bad("no chain_id"))?;
        let chain_id = BoundedString::new(chain_id).ok_or_else(|| bad("chain id too long"))?;
        let min_fee: Amount = serde_json::from_value(status["min_tx_fee"].clone())
            .map_err(|_| bad("no min_tx_fee"))?;
        let mut hashes = Vec::with_capacity(bodies.len());
        for body in bodies {
            let tx = Transaction {
                chain_id: chain_id.clone(),
                sender: key.public_key().clone(),
                nonce,
                fee: fee.unwrap_or(min_fee),
                body,
            }
            .sign(key);
            hashes.push(self.submit(&tx)?);
            nonce = nonce.saturating_add(1);
        }
        Ok(hashes)
    }

    /// The receipt once finalized, `None` while pending.
    pub fn tx(&self, hash: &Hash) -> Result<Value, NodeError> {
        self.get(&format!("/v1/txs/{hash}"))
    }

    /// [`NodeClient::wait_finalized`] for a transaction `sender` sent with `nonce`, failing
    /// at once (instead of at the timeout) when another transaction of the same sender
    /// took that nonce: then this one can never land.
    pub fn wait_landed(
        &self,
        hash: &Hash,
        sender: &Address,
        nonce: u64,
        timeout: Duration,
    ) -> Result<Value, NodeError> {
        self.wait(hash, timeout, Some((sender, nonce)))
    }

    /// Polls until the transaction is finalized; returns its record.
    pub fn wait_finalized(&self, hash: &Hash, timeout: Duration) -> Result<Value, NodeError> {
        self.wait(hash, timeout, None)
    }

    /// The poll behind both waits; with `numbered`, once a second it also looks whether the
    /// sender's nonce moved on without this transaction.
    fn wait(
        &self,
        hash: &Hash,
        timeout: Duration,
        numbered: Option<(&Address, u64)>,
    ) -> Result<Value, NodeError> {
        let start = Instant::now();
        let mut looked = Instant::now();
        loop {
            match self.tx(hash) {
                Ok(record) if record["status"] == "finalized" => return Ok(record),
                Ok(_) | Err(NodeError::Refused { status: 404, .. }) => {}
                Err(e) => return Err(e),
            }
            if let Some((sender, nonce)) = numbered
                && looked.elapsed() >= Duration::from_secs(1)
            {
                looked = Instant::now();
                if self.nonce(sender)? > nonce {
                    // Ours may have landed in the very block that moved it: look once more.
                    return match self.tx(hash) {
                        Ok(record) if record["status"] == "finalized" => Ok(record),
                        _ => Err(NodeError::Displaced {
                            hash: *hash,
                            sender: *sender,
                            nonce,
                        }),
                    };
                }
            }
            if start.elapsed() >= timeout {
                return Err(NodeError::Timeout {
                    hash: *hash,
                    waited_ms: start.elapsed().as_millis(),
                });
            }
            // Finality is usually a block or two away: look often at first (each look is
            // one small GET), then back off so a long wait does not hammer the node.
            let pause_ms = if start.elapsed() < Duration::from_secs(2) {
                20
            } else {
                100
            };
            std::thread::sleep(Duration::from_millis(pause_ms));
        }
    }
}
