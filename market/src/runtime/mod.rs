//! Runtimes behind one trait: the provider starts, re-attaches to, pauses, resumes and stops
//! a lease's workload without knowing whether it is a container or a sandboxed process.
//!
//! Every method is blocking; the provider calls them from `spawn_blocking`.

pub mod container;
pub mod process;

use crate::manifest::{Manifest, RuntimeKind};
use cairn_types::LeaseId;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the ingress reaches a workload's exposed port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Endpoint {
    Tcp(std::net::SocketAddr),
    /// A Unix socket a forwarder inside the sandbox relays to the workload's port.
    Unix(PathBuf),
}

/// What a runtime knows about one workload; serialized into the lease's directory so that a
/// restarted provider can find it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handle {
    pub lease: LeaseId,
    pub kind: RuntimeKind,
    /// Process runtime: the sandbox's pid; container runtime: 0.
    pub pid: u32,
    /// Process runtime: the process's start time in clock ticks since boot (/proc stat
    /// field 22), so a recycled pid is never mistaken for the workload.
    pub start_ticks: u64,
    /// Container runtime: the container id.
    pub container_id: String,
    pub endpoint: Option<Endpoint>,
    /// Indices (NVML order) of the host GPUs given to the workload, so a restarted provider
    /// never hands them to another lease.
    #[serde(default)]
    pub gpus: Vec<u32>,
}

/// The environment variable CUDA reads to choose its devices; the provider sets it, a
/// tenant's manifest cannot.
pub const CUDA_VISIBLE_DEVICES: &str = "CUDA_VISIBLE_DEVICES";

/// `CUDA_VISIBLE_DEVICES` for a workload given `count` GPUs. Both runtimes expose only the
/// leased devices, which CUDA renumbers from 0, so the list is workload-local (`0,1,…`);
/// empty hides every GPU.
pub fn cuda_visible_devices(count: usize) -> String {
    (0..count)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadState {
    Running,
    Paused,
    Exited,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{runtime} runtime is not available on this provider: {reason}")]
    Unavailable {
        runtime: RuntimeKind,
        reason: String,
    },
    #[error("starting lease {lease}'s workload: {reason}")]
    Start { lease: LeaseId, reason: String },
    /// The container image is not on the provider's engine: Cairn never pulls.
    #[error("image {image} is not on this provider's Docker Engine (Cairn never pulls images)")]
    ImageMissing { image: String },
    #[error("{action} on lease {lease}'s workload: {reason}")]
    Control {
        lease: LeaseId,
        action: &'static str,
        reason: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RuntimeError {
    /// What went wrong, without the lease it happened to: the reason a provider records on
    /// chain when it closes a lease it cannot run.
    pub fn cause(&self) -> String {
        match self {
            Self::Start { reason, .. } | Self::Control { reason, .. } => reason.clone(),
            other => other.to_string(),
        }
    }
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError + '_ {
    move |source| RuntimeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One way to run workloads.
pub trait Runtime: Send + Sync {
    fn kind(&self) -> RuntimeKind;
    /// Starts the manifest's service for `lease`, its files under `dir`, with the host GPUs
    /// `gpus` (NVML indices, chosen by the provider) and no other.
    fn start(
        &self,
        lease: LeaseId,
        manifest: &Manifest,
        dir: &Path,
        gpus: &[u32],
    ) -> Result<Handle, RuntimeError>;
    /// Checks, starting nothing, what a start depends on beyond the capacity the bid rule
    /// counts: the container runtime looks for `image` on its engine, the process runtime
    /// for bubblewrap (`None`: no image to look for). A provider's dry-run answer runs it, so
    /// a tenant hears "would not bid: image X is not on this provider's Docker Engine"
    /// before ordering.
    fn check(&self, image: Option<&str>) -> Result<(), RuntimeError>;
    /// The workload of `handle` if it is still the one that was started.
    fn state(&self, handle: &Handle) -> WorkloadState;
    fn pause(&self, handle: &Handle) -> Result<(), RuntimeError>;
    fn resume(&self, handle: &Handle) -> Result<(), RuntimeError>;
    fn stop(&self, handle: &Handle) -> Result<(), RuntimeError>;
    /// The workload's output from byte `offset` on (stdout and stderr together), at most
    /// `max_bytes`.
    fn logs(
        &self,
        handle: &Handle,
        dir: &Path,
        offset: u64,
        max_bytes: usize,
    ) -> Result<Vec<u8>, RuntimeError>;
}
