//! The challenge responder: answers the ledger's compute challenges for one provider.
//!
//! Each challenge goes Issued → (we solve and post the root) Committed → (the reveal seed
//! picks entries; we open them) Passed / Failed / Unproven / Missed. [`Responder::answer`] is
//! the whole decision, taking the challenges as the ledger shows them and returning the
//! transactions to send, so it runs the same against a node over HTTP ([`run`]) and against
//! an in-process ledger in tests. Solutions are kept only until their challenge is decided,
//! and at most [`MAX_HELD`] at once: a product of the largest challenge is 1 GiB.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cairn_client::{NodeClient, NodeError};
use cairn_ledger::state::{ComputeChallenge, ComputePhase};
use cairn_proofs::compute::opening_indices;
use cairn_types::tx::{CommitCompute, OpenCompute};
use cairn_types::{BoundedVec, ChallengeId, Keypair, TxBody};

use crate::popw::{BackendError, GemmBackend, Solution, solve};

/// Solutions held at most (older ones are dropped first).
pub const MAX_HELD: usize = 4;
/// Blocks to wait for a sent transaction to show before sending it again.
const RESEND_AFTER_BLOCKS: u64 = 3;

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
    opened_sent_at: Option<u64>,
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
                        let solution = solve(
                            self.backend.as_ref(),
                            &challenge.seed,
                            challenge.shape(),
                            self.threads,
                        )
                        .map_err(|source| ProverError::Solve {
                            challenge: challenge.id,
                            source,
                        })?;
                        events.push(Event::Committed {
                            challenge: challenge.id,
                            compute_ms: solution.total().as_millis(),
                        });
                        while self.held.len() >= MAX_HELD {
                            self.held.pop_first();
                        }
                        self.held.insert(
                            challenge.id,
                            Held {
                                solution,
                                committed_sent_at: None,
                                opened_sent_at: None,
                            },
                        );
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
                    reveal_seed,
                    open_deadline,
                    ..
                } if height <= *open_deadline => {
                    let Some(held) = self.held.get_mut(&challenge.id) else {
                        continue; // committed by an earlier run of this process: lost.
                    };
                    if !due(held.opened_sent_at, height) {
                        continue;
                    }
                    let indices = opening_indices(
                        reveal_seed,
                        challenge.id,
                        challenge.shape(),
                        usize::from(challenge.openings),
                    );
                    let openings = held.solution.open(&indices);
                    let count = openings.len();
                    let openings =
                        BoundedVec::new(openings).ok_or(ProverError::TooManyOpenings {
                            challenge: challenge.id,
                            count,
                            max: 4096,
                        })?;
                    held.opened_sent_at = Some(height);
                    events.push(Event::Opened {
                        challenge: challenge.id,
                        entries: count,
                    });
                    txs.push(TxBody::OpenCompute(OpenCompute {
                        challenge: challenge.id,
                        openings,
                    }));
                }
                _ => {}
            }
        }
        Ok((txs, events))
    }
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
            for body in txs {
                let hash = node.send(key, body, None)?;
                // One at a time: the next nonce is read from finalized state.
                node.wait_finalized(&hash, Duration::from_secs(30))?;
            }
            Ok(())
        })();
        if let Err(e) = round {
            on_event(Err(e));
        }
        std::thread::sleep(poll);
    }
}
