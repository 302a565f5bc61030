//! A blocking client of the provider shard API (design §6): signed PUTs that come back with
//! a receipt, and GETs (whole or ranged) as streams.

use crate::wire;
use cairn_types::tx::{
    SHARD_PUT_NAMESPACE, SHARD_RECEIPT_NAMESPACE, shard_put_message, shard_receipt_message,
};
use cairn_types::{Address, DealId, Hash, Keypair, Signature};
use serde_json::Value;
use std::io::{Read, Write};
use std::time::Duration;

/// Limits of a shard transfer: a provider syncs a shard to disk before it answers a PUT.
const BULK_TIMEOUTS: wire::Timeouts = wire::Timeouts {
    connect_ms: 5_000,
    io_ms: 120_000,
};
/// The most bytes read of a receipt or an error answer.
const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// A receipt or error answer, at most [`MAX_ANSWER_BYTES`] of it.
fn read_answer(body: wire::Body) -> std::io::Result<Vec<u8>> {
    let mut answer = Vec::new();
    body.take(MAX_ANSWER_BYTES).read_to_end(&mut answer)?;
    Ok(answer)
}

/// Header naming who signed a PUT (the storage crate's server reads the same names).
pub const SIGNER_HEADER: &str = "x-cairn-signer";
/// Header carrying the PUT's signature (hex ed25519 under `_CAIRN_SHARD_PUT`).
pub const SIGNATURE_HEADER: &str = "x-cairn-signature";

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("cannot reach provider {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("provider {endpoint} refused ({status} {code}): {message}")]
    Refused {
        endpoint: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("provider {endpoint} answered badly: {reason}")]
    BadAnswer { endpoint: String, reason: String },
}

impl ShardError {
    pub fn endpoint(&self) -> &str {
        match self {
            Self::Unreachable { endpoint, .. }
            | Self::Refused { endpoint, .. }
            | Self::BadAnswer { endpoint, .. } => endpoint,
        }
    }
}

/// A checked receipt: the provider's signature that it holds the shard durably.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub provider: Address,
    pub shard_index: u16,
    pub signature: Signature,
}

/// A timed audit's challenge to one shard: the chain starts from `deal` and `seed` and runs
/// `steps` links (`cairn_proofs::timed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainChallenge {
    pub deal: DealId,
    pub seed: Hash,
    pub steps: u32,
}

/// The shard API of one provider.
#[derive(Clone, Debug)]
pub struct ShardClient {
    endpoint: String,
    agent: ureq::Agent,
}

impl ShardClient {
    pub fn new(endpoint: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            agent,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> ShardError {
        ShardError::Unreachable {
            endpoint: self.endpoint.clone(),
            reason: e.to_string(),
        }
    }

    /// A refusal from its JSON error body (`{"error": {"code", "message"}}`).
    fn refused_body(&self, status: u16, body: &[u8]) -> ShardError {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        ShardError::Refused {
            endpoint: self.endpoint.clone(),
            status,
            code: body["error"]["code"]
                .as_str()
                .unwrap_or("error")
                .to_string(),
            message: body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }
    }

    fn refused(&self, status: u16, response: &mut ureq::http::Response<ureq::Body>) -> ShardError {
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_vec()
            .unwrap_or_default();
        self.refused_body(status, &body)
    }

    /// Uploads shard `index` of `deal`'s blob, signed by `signer` (the deal's owner, or a
    /// repairer); returns the provider's receipt after checking its signature against
    /// `provider`. `write_body` writes the shard straight onto the connection (no staging
    /// copy) and must write exactly `size_bytes` bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &self,
        signer: &Keypair,
        provider: &Address,
        deal: DealId,
        blob: &Hash,
        index: u16,
        root: &Hash,
        size_bytes: u64,
        write_body: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<Receipt, ShardError> {
        let target = format!("/v1/shards/{blob}/{index}?deal={deal}");
        let signature = signer.sign(
            SHARD_PUT_NAMESPACE,
            &shard_put_message(deal, blob, index, root),
        );
        let (signer_hex, signature_hex) = (signer.address().to_string(), signature.to_hex());
        let mut request = wire::start(
            &self.endpoint,
            "PUT",
            &target,
            &[
                (SIGNER_HEADER, &signer_hex),
                (SIGNATURE_HEADER, &signature_hex),
                ("content-type", "application/octet-stream"),
            ],
            Some(size_bytes),
            BULK_TIMEOUTS,
        )
        .map_err(|e| self.unreachable(e))?;
        let response = match write_body(&mut request) {
            Ok(()) => request.finish().map_err(|e| self.unreachable(e))?,
            // A refusal is answered before the body is read: report it, not the broken pipe.
            Err(e) => match request.response_after_failure() {
                Some(r) if r.status >= 400 => r,
                _ => return Err(self.unreachable(format!("sending the shard: {e}"))),
            },
        };
        let status = response.status;
        let answer = read_answer(response.body).map_err(|e| self.unreachable(e))?;
        if status >= 400 {
            return Err(self.refused_body(status, &answer));
        }
        let answer: Value = serde_json::from_slice(&answer).map_err(|e| self.bad(e))?;
        let signature: Signature = answer["signature"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| self.bad("no signature in the receipt"))?;
        let key = provider
            .public_key()
            .map_err(|e| self.bad(format!("provider address: {e}")))?;
        if !key.verify(
            SHARD_RECEIPT_NAMESPACE,
            &shard_receipt_message(deal, blob, index, root),
            &signature,
        ) {
            return Err(self.bad(format!("the receipt is not signed by {provider}")));
        }
        Ok(Receipt {
            provider: *provider,
            shard_index: index,
            signature,
        })
    }

    fn bad(&self, reason: impl std::fmt::Display) -> ShardError {
        ShardError::BadAnswer {
            endpoint: self.endpoint.clone(),
            reason: reason.to_string(),
        }
    }

    /// The shard's bytes `start..end` (`None`: all) as a stream; the caller verifies them.
    /// A ranged answer of another length than asked for is refused here.
    pub fn get(
        &self,
        blob: &Hash,
        index: u16,
        range: Option<(u64, u64)>,
    ) -> Result<Box<dyn Read + Send>, ShardError> {
        let target = format!("/v1/shards/{blob}/{index}");
        let range_header;
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some((start, end)) = range {
            if end <= start {
                return Ok(Box::new(std::io::empty()));
            }
            range_header = format!("bytes={start}-{}", end.saturating_sub(1));
            headers.push(("range", &range_header));
        }
        let response = wire::start(
            &self.endpoint,
            "GET",
            &target,
            &headers,
            None,
            BULK_TIMEOUTS,
        )
        .and_then(wire::Request::finish)
        .map_err(|e| self.unreachable(e))?;
        if response.status >= 400 {
            let answer = read_answer(response.body).unwrap_or_default();
            return Err(self.refused_body(response.status, &answer));
        }
        if let (Some((start, end)), Some(len)) = (range, response.content_length)
            && len != end - start
        {
            return Err(self.bad(format!(
                "{len} bytes for the range {start}..{end} ({} asked for)",
                end - start
            )));
        }
        Ok(Box::new(response.body))
    }

    /// `GET url` with `timeout` for the whole exchange; a 4xx or 5xx becomes the refusal it
    /// names.
    fn get_within(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<ureq::http::Response<ureq::Body>, ShardError> {
        let mut response = self
            .agent
            .get(url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .call()
            .map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        if status >= 400 {
            return Err(self.refused(status, &mut response));
        }
        Ok(response)
    }

    /// `GET /v1/provider` within `timeout`: the address the shard API signs receipts with.
    /// Placement probes with it, since a provider record on chain only says what was
    /// declared, not that a shard API answers at its endpoint now.
    pub fn provider_address(&self, timeout: Duration) -> Result<Address, ShardError> {
        let url = format!("{}/v1/provider", self.endpoint);
        let mut response = self.get_within(&url, timeout)?;
        let answer: Value = response.body_mut().read_json().map_err(|e| self.bad(e))?;
        answer["address"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| self.bad("no address in /v1/provider"))
    }

    /// `GET /v1/shards/{blob}/{index}/chain`: the first `steps` leaves of the shard's chain
    /// under `seed` (a timed audit's answer, `cairn_proofs::timed`), within `timeout` for the
    /// whole exchange and at most `max_bytes` of answer. The caller verifies and times it.
    pub fn chain(
        &self,
        blob: &Hash,
        index: u16,
        challenge: &ChainChallenge,
        timeout: Duration,
        max_bytes: u64,
    ) -> Result<Vec<cairn_types::proof::LeafOpening>, ShardError> {
        let ChainChallenge { deal, seed, steps } = challenge;
        let url = format!(
            "{}/v1/shards/{blob}/{index}/chain?deal={}&seed={seed}&steps={steps}",
            self.endpoint, deal.0
        );
        let mut response = self.get_within(&url, timeout)?;
        let body = response
            .body_mut()
            .with_config()
            .limit(max_bytes)
            .read_to_vec()
            .map_err(|e| self.unreachable(e))?;
        cairn_types::proof::decode_audit_answer(&body).map_err(|e| self.bad(e))
    }

    /// `GET /v1/shards/{blob}/{index}/proof?leaves=...` as JSON.
    pub fn proof(&self, blob: &Hash, index: u16, leaves: &[u64]) -> Result<Value, ShardError> {
        let list: Vec<String> = leaves.iter().map(u64::to_string).collect();
        let url = format!(
            "{}/v1/shards/{blob}/{index}/proof?leaves={}",
            self.endpoint,
            list.join(",")
        );
        let mut response = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        if status >= 400 {
            return Err(self.refused(status, &mut response));
        }
        response.body_mut().read_json().map_err(|e| self.bad(e))
    }
}
