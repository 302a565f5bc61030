//! The challenge responder: answers the ledger's compute challenges for one provider.
//!
//! Each challenge goes Issued → (we solve and post the root) Committed → (the reveal seed
//! picks entries; we open them) Passed / Failed / Unproven / Missed. [`Responder::answer`] is
//! the whole decision, taking the challenges as the ledger shows them and returning the
//! transactions to send, so it runs the same against a node over HTTP ([`run`]) and against
//! an in-process ledger in tests. Solutions are kept only until their challenge is decided,
//! and at most [`MAX_HELD`] at once: a product of the largest challenge is 1 GiB. A prover
//! restarted between commit and open solves again (the product is a function of the seed)
//! and opens if its root matches the one committed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cairn_client::{NodeClient, NodeError};
use cairn_ledger::state::{ComputeChallenge, ComputePhase};
use cairn_proofs::compute::opening_indices;
use cairn_types::proof::ComputeOpening;
use cairn_types::tx::{CommitCompute, MAX_TX_BYTES, OpenCompute};
use cairn_types::{BoundedVec, ChallengeId, Keypair, TxBody};

use crate::popw::{BackendError, GemmBackend, Solution, solve};

/// Solutions held at most (older ones are dropped first).
pub const MAX_HELD: usize = 4;
/// Blocks to wait for a sent transaction to show before sending it again.
const RESEND_AFTER_BLOCKS: u64 = 3;
/// Room left in each opening transaction for the envelope (chain id, keys, signature, fee).
const TX_OVERHEAD_BYTES: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ProverError {
    #[error("solving challenge {challenge}: {source}")]
    Solve {
        challenge: ChallengeId,
        source: BackendError,
    },
    #[error("challenge {challenge} opens {count} entries, more than a transaction carries ({max})")]
    TooManyOpenings {
        challenge: ChallengeId,
        count: usize,
        max: usize,
    },
    #[error("node: {0}")]
    Node(#[from] NodeError),
    #[error("the node's provider view was not understood: {reason}")]
    BadView { reason: String },
}

/// What the responder did with one challenge, for logs and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Committed {
        challenge: ChallengeId,
        compute_ms: u128,
    },
    Opened {
        challenge: ChallengeId,
        entries: usize,
    },
    Decided {
        challenge: ChallengeId,
        verdict: String,
    },
}

struct Held {
    solution: Solution,
    committed_sent_at: Option<u64>,
    /// The ledger's count of verified openings when the parts were last sent, and when.
    opened_sent: Option<(u16, u64)>,
}

/// Answers challenges with one backend.
pub struct Responder {
    backend: Box<dyn GemmBackend>,
    threads: usize,
    held: BTreeMap<ChallengeId, Held>,
}

impl Responder {
    pub fn new(backend: Box<dyn GemmBackend>, threads: usize) -> Self {
        Self {
            backend,
            threads: threads.max(1),
            held: BTreeMap::new(),
        }
    }

    pub fn backend_name(&self) -> String {
        self.backend.name()
    }

    fn solve(&self, challenge: &ComputeChallenge) -> Result<Solution, ProverError> {
        solve(
            self.backend.as_ref(),
            &challenge.seed,
            challenge.shape(),
            self.threads,
        )
        .map_err(|source| ProverError::Solve {
            challenge: challenge.id,
            source,
        })
    }

    fn hold(&mut self, id: ChallengeId, solution: Solution, committed_sent_at: Option<u64>) {
        while self.held.len() >= MAX_HELD {
            self.held.pop_first();
        }
        self.held.insert(
            id,
            Held {
                solution,
                committed_sent_at,
                opened_sent: None,
            },
        );
    }

    /// Given this provider's challenges at `height`, returns the transactions to send now
    /// (at most one per challenge) and what happened.
    pub fn answer(
        &mut self,
        challenges: &[ComputeChallenge],
        height: u64,
    ) -> Result<(Vec<TxBody>, Vec<Event>), ProverError> {
        let mut txs = Vec::new();
        let mut events = Vec::new();
        // Forget what the ledger has decided or pruned.
        let live: BTreeMap<ChallengeId, &ComputeChallenge> =
            challenges.iter().map(|c| (c.id, c)).collect();
        let decided: Vec<ChallengeId> = self
            .held
            .keys()
            .filter(|id| {
                live.get(id).is_none_or(|c| {
                    !matches!(
                        c.phase,
                        ComputePhase::Issued | ComputePhase::Committed { .. }
                    )
                })
            })
            .copied()
            .collect();
        for id in decided {
            self.held.remove(&id);
            if let Some(c) = live.get(&id) {
                events.push(Event::Decided {
                    challenge: id,
                    verdict: c.phase.name().to_string(),
                });
            }
        }
        // Oldest first: the earliest deadline.
        for challenge in live.values() {
            match &challenge.phase {
                ComputePhase::Issued if height <= challenge.commit_deadline => {
                    if !self.held.contains_key(&challenge.id) {
                        let solution = self.solve(challenge)?;
                        events.push(Event::Committed {
                            challenge: challenge.id,
                            compute_ms: solution.total().as_millis(),
                        });
                        self.hold(challenge.id, solution, None);
                    }
                    if let Some(held) = self.held.get_mut(&challenge.id)
                        && due(held.committed_sent_at, height)
                    {
                        held.committed_sent_at = Some(height);
                        txs.push(TxBody::CommitCompute(CommitCompute {
                            challenge: challenge.id,
                            root: held.solution.root(),
                        }));
                    }
                }
                ComputePhase::Committed {
                    root,
                    reveal_seed,
                    open_deadline,
                    opened,
                    ..
                } if height <= *open_deadline => {
                    if !self.held.contains_key(&challenge.id) {
                        // Committed before a restart: the product is a function of the seed,
                        // so solving again recovers it, and the root says whether it is the
                        // one committed (if not, there is nothing this prover can open).
                        let solution = self.solve(challenge)?;
                        if solution.root() != *root {
                            continue;
                        }
                        self.hold(challenge.id, solution, Some(height));
                    }
                    let Some(held) = self.held.get_mut(&challenge.id) else {
                        continue;
                    };
                    let progressed = held.opened_sent.is_some_and(|(at, _)| at != *opened);
                    if !progressed && !due(held.opened_sent.map(|(_, h)| h), height) {
                        continue;
                    }
                    let indices = opening_indices(
                        reveal_seed,
                        challenge.id,
                        challenge.shape(),
                        usize::from(challenge.openings),
                    );
                    let remaining = indices.get(usize::from(*opened)..).unwrap_or_default();
                    let openings = held.solution.open(remaining);
                    let count = openings.len();
                    held.opened_sent = Some((*opened, height));
                    events.push(Event::Opened {
                        challenge: challenge.id,
                        entries: count,
                    });
                    txs.extend(parts(challenge.id, *opened, openings)?);
                }
                _ => {}
            }
        }
        Ok((txs, events))
    }
}

/// Openings split into transactions that fit `MAX_TX_BYTES`, numbered from `first`.
fn parts(
    challenge: ChallengeId,
    first: u16,
    openings: Vec<ComputeOpening>,
) -> Result<Vec<TxBody>, ProverError> {
    // Size of the largest opening on the wire (index, leaf, path length prefix and hashes):
    // paths differ in length where the tree promotes an odd node, so size by the longest.
    let longest_path = openings.iter().map(|o| o.path.0.len()).max().unwrap_or(0);
    let per_opening = 8 + 16 + 5 + 32 * longest_path;
    let per_part = ((MAX_TX_BYTES - TX_OVERHEAD_BYTES) / per_opening).clamp(1, 4096);
    let mut out = Vec::new();
    let mut next = first;
    for chunk in openings.chunks(per_part) {
        let count = chunk.len();
        let part = BoundedVec::new(chunk.to_vec()).ok_or(ProverError::TooManyOpenings {
            challenge,
            count,
            max: 4096,
        })?;
        out.push(TxBody::OpenCompute(OpenCompute {
            challenge,
            first_opening: next,
            openings: part,
        }));
        next = next.saturating_add(u16::try_from(count).unwrap_or(u16::MAX));
    }
    Ok(out)
}

fn due(sent_at: Option<u64>, height: u64) -> bool {
    sent_at.is_none_or(|at| height >= at.saturating_add(RESEND_AFTER_BLOCKS))
}

/// The provider's compute challenges as the node shows them.
pub fn challenges_of(
    node: &NodeClient,
    provider: &cairn_types::Address,
) -> Result<Vec<ComputeChallenge>, ProverError> {
    let view = node.get(&format!("/v1/providers/{provider}"))?;
    serde_json::from_value(view["compute_challenges"].clone()).map_err(|e| ProverError::BadView {
        reason: e.to_string(),
    })
}

/// Follows the node until `stop` is set, answering every challenge addressed to `key`.
/// Transactions of one round are sent with consecutive nonces; a transient node error is
/// reported through `on_event`'s caller-visible log and retried on the next poll.
pub fn run(
    node: &NodeClient,
    key: &Keypair,
    responder: &mut Responder,
    poll: Duration,
    stop: &AtomicBool,
    mut on_event: impl FnMut(Result<Event, ProverError>),
) {
    let provider = key.address();
    while !stop.load(Ordering::Relaxed) {
        let round = (|| -> Result<(), ProverError> {
            let height = node.status()?["height"].as_u64().unwrap_or(0);
            let challenges = challenges_of(node, &provider)?;
            let (txs, events) = responder.answer(&challenges, height)?;
            for event in events {
                on_event(Ok(event));
            }
            // All of a round's transactions at once (consecutive nonces), then wait for the
            // last: the next round reads its nonce from finalized state.
            let hashes = node.send_all(key, txs, None)?;
            if let Some(last) = hashes.last() {
                node.wait_finalized(last, Duration::from_secs(30))?;
            }
            Ok(())
        })();
        if let Err(e) = round {
            on_event(Err(e));
        }
        std::thread::sleep(poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_types::{BoundedString, Hash, Transaction};

    #[test]
    fn opening_parts_fit_a_transaction_and_cover_every_opening() {
        // The largest default challenge: 16384² entries, 26-hash paths, 700 openings.
        let opening = ComputeOpening {
            entry_index: u64::MAX,
            leaf: [i32::MIN; 4],
            path: BoundedVec::new(vec![Hash::ZERO; 26]).unwrap(),
        };
        let key = Keypair::from_test_seed("prover");
        // Paths of different lengths, the long ones last (a size estimate from the first
        // opening would overflow the transaction).
        let short = ComputeOpening {
            path: BoundedVec::new(vec![Hash::ZERO; 3]).unwrap(),
            ..opening.clone()
        };
        let mut openings = vec![short; 350];
        openings.extend(vec![opening; 350]);
        let bodies = parts(ChallengeId(7), 0, openings).unwrap();
        assert!(bodies.len() > 1, "700 openings do not fit one transaction");
        let mut next = 0u16;
        for body in bodies {
            let TxBody::OpenCompute(part) = &body else {
                panic!("an opening part");
            };
            assert_eq!(part.first_opening, next);
            next += u16::try_from(part.openings.0.len()).unwrap();
            let tx = Transaction {
                chain_id: BoundedString::new("a-fairly-long-chain-id-for-the-test").unwrap(),
                sender: key.public_key().clone(),
                nonce: u64::MAX,
                fee: cairn_types::Amount::from_ucrn(u128::MAX),
                body,
            }
            .sign(&key);
            assert!(tx.to_bytes().len() <= MAX_TX_BYTES);
        }
        assert_eq!(next, 700);
    }
}
