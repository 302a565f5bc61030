//! Offer and prove compute: proof-of-GPU backends (CPU and CUDA), GPU discovery and the challenge responder.
//!
//! The compute provider role lives here (design §2, §7). So far it is the proof side:
//! the ledger believes a provider's claimed int8 rate only once the provider has answered a
//! GEMM challenge at that rate, so a fake or slower GPU earns no compute rewards.
//!
//! - [`popw`]: backends that compute the challenge product exactly (a multi-threaded AVX2
//!   CPU kernel; cuBLASLt on NVIDIA GPUs behind the `cuda` feature), a parallel commitment,
//!   and [`popw::check_exact`] to hold a backend to the reference.
//! - [`gpu`]: NVML discovery of the host's GPUs (model, VRAM, datasheet int8 peak).
//! - [`prover`]: the responder that follows a node and commits and opens each challenge.
//!
//! The consensus-critical parts (matrix generation, commitment layout, opening indices and
//! verification) are in the pure `cairn-proofs` crate; nothing here can change a verdict.

pub mod gpu;
pub mod popw;
pub mod prover;
