//! Transaction gossip: what one validator admits from a client, every validator learns.
//!
//! Without it a transaction waits in the mempool of the node it was submitted to until that
//! node leads a view (round robin: up to `n` views). With it the next leader, whoever it is,
//! already has the transaction. Validators are fully connected, so one hop is enough: a node
//! forwards only what its own clients submitted, never what it heard from a peer.
//!
//! A gossiped transaction goes through the same admission as a submission (size, chain id,
//! nonce, fee, one batched signature verification), so a Byzantine peer can make a node spend
//! at most a verification per transaction it sends, bounded by the p2p rate quota and the
//! mempool's limits. Once admitted, a transaction's signature is not checked again when it
//! shows up in a block (`App::verify` skips what the mempool already holds): gossip costs no
//! extra verification per transaction across the whole pipeline.

use crate::handle::NodeHandle;
use crate::state::Shared;
use cairn_types::{BoundedVec, SignedTransaction};
use commonware_codec::{DecodeExt as _, Encode as _};
use commonware_cryptography::ed25519;
use commonware_p2p::{Receiver, Recipients, Sender};
use commonware_runtime::Spawner;
use futures::StreamExt;
use futures::channel::mpsc;
use std::sync::Arc;
use tracing::debug;

/// Most transactions in one gossip message: bounds the decoder, and the time a receiver
/// spends verifying one message (about 8 ms of one core at this size).
pub const MAX_GOSSIP_TXS: usize = 512;

/// Most bytes of transactions packed into one gossip message (a large transaction still
/// travels alone: a message always carries at least one).
const MAX_GOSSIP_BYTES: usize = 1 << 20;

/// Batches of submitted transactions waiting to be sent.
const OUTBOX_BATCHES: usize = 4_096;

type GossipBatch = BoundedVec<SignedTransaction, MAX_GOSSIP_TXS>;

/// Starts the outbound and inbound halves on `context`.
pub(crate) fn start<E, S, R>(
    context: E,
    shared: Arc<Shared>,
    handle: NodeHandle,
    (sender, receiver): (S, R),
) where
    E: Spawner,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
{
    let (out_tx, out_rx) = mpsc::channel(OUTBOX_BATCHES);
    *shared.gossip_out.lock() = Some(out_tx);
    context
        .child("gossip_out")
        .spawn(move |_| send_loop(sender, out_rx));
    context
        .child("gossip_in")
        .spawn(move |_| receive_loop(receiver, handle));
}

async fn send_loop<S>(mut sender: S, mut outbox: mpsc::Receiver<Vec<SignedTransaction>>)
where
    S: Sender<PublicKey = ed25519::PublicKey>,
{
    while let Some(mut pending) = outbox.next().await {
        // Whatever queued up while the last message went out travels together.
        while pending.len() < MAX_GOSSIP_TXS
            && let Ok(more) = outbox.try_recv()
        {
            pending.extend(more);
        }
        for message in pack(pending) {
            let _ = sender.send(Recipients::All, message, false);
        }
    }
}

/// Cuts transactions into encoded messages within [`MAX_GOSSIP_TXS`] and [`MAX_GOSSIP_BYTES`],
/// keeping their order (a sender's nonces must arrive in sequence).
fn pack(txs: Vec<SignedTransaction>) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut current: Vec<SignedTransaction> = Vec::new();
    let mut bytes = 0usize;
    for tx in txs {
        let size = tx.encoded_len();
        if !current.is_empty()
            && (current.len() >= MAX_GOSSIP_TXS || bytes.saturating_add(size) > MAX_GOSSIP_BYTES)
        {
            messages.push(
                BoundedVec::<_, MAX_GOSSIP_TXS>(std::mem::take(&mut current))
                    .encode()
                    .to_vec(),
            );
            bytes = 0;
        }
        bytes = bytes.saturating_add(size);
        current.push(tx);
    }
    if !current.is_empty() {
        messages.push(BoundedVec::<_, MAX_GOSSIP_TXS>(current).encode().to_vec());
    }
    messages
}

async fn receive_loop<R>(mut receiver: R, handle: NodeHandle)
where
    R: Receiver<PublicKey = ed25519::PublicKey>,
{
    while let Ok((peer, message)) = receiver.recv().await {
        match GossipBatch::decode(commonware_codec::Copying(message.as_ref())) {
            Ok(batch) => {
                let offered = batch.0.len();
                let admitted = handle.admit_gossiped(batch.0);
                debug!(%peer, offered, admitted, "gossiped transactions");
            }
            Err(error) => debug!(%peer, %error, "malformed gossip message"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_types::tx::Transfer;
    use cairn_types::{Amount, BoundedString, Keypair, Transaction, TxBody};

    fn tx(nonce: u64) -> SignedTransaction {
        let key = Keypair::from_test_seed("gossip");
        Transaction {
            chain_id: BoundedString::new("unit").unwrap(),
            sender: key.public_key().clone(),
            nonce,
            fee: Amount::from_ucrn(1),
            body: TxBody::Transfer(Transfer {
                to: key.address(),
                amount: Amount::from_ucrn(1),
            }),
        }
        .sign(&key)
    }

    #[test]
    fn packing_keeps_order_and_bounds() {
        let txs: Vec<_> = (0..1_300).map(tx).collect();
        let messages = pack(txs.clone());
        assert_eq!(messages.len(), 3);
        let mut back = Vec::new();
        for m in &messages {
            let batch = GossipBatch::decode(commonware_codec::Copying(m.as_slice())).unwrap();
            assert!(batch.0.len() <= MAX_GOSSIP_TXS);
            back.extend(batch.0);
        }
        assert_eq!(back, txs);
        assert!(pack(Vec::new()).is_empty());
    }

    #[test]
    fn oversized_batch_is_refused_by_the_decoder() {
        let txs: Vec<_> = (0..MAX_GOSSIP_TXS as u64 + 1).map(tx).collect();
        let bytes = BoundedVec::<_, { MAX_GOSSIP_TXS + 1 }>(txs)
            .encode()
            .to_vec();
        assert!(GossipBatch::decode(commonware_codec::Copying(bytes.as_slice())).is_err());
    }
}
