//! The container runtime: the host's Docker Engine through its API (bollard).
//!
//! Images come from the host's engine only: Cairn never pulls, so an image the provider does
//! not have is a clear start error. Each container carries the labels `cairn.lease` and
//! `cairn.provider` (a restarted provider re-attaches by the id in `handle.json`; the labels
//! find a leftover container of a lease to replace, and let operators and tests clean up). Enforced:
//! memory limit, CPU quota (`nano_cpus` from the order's millicores), a pid limit, read-only
//! root filesystem with a `/tmp` tmpfs of the order's storage size, all capabilities
//! dropped but binding low ports, no new privileges; the exposed port is published on
//! 127.0.0.1 only, for the ingress.

use super::{
    CUDA_VISIBLE_DEVICES, Endpoint, Handle, Runtime, RuntimeError, WorkloadState,
    cuda_visible_devices,
};
use crate::manifest::{Manifest, RuntimeKind};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, DeviceRequest, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, KillContainerOptions, ListContainersOptions,
    LogsOptions, RemoveContainerOptions, StartContainerOptions,
};
use cairn_types::LeaseId;
use futures::StreamExt;
use std::collections::HashMap;
use std::path::Path;

pub const LABEL_LEASE: &str = "cairn.lease";
pub const LABEL_PROVIDER: &str = "cairn.provider";

pub struct ContainerRuntime {
    docker: Docker,
    rt: tokio::runtime::Runtime,
    /// The provider's address, put on every container's labels.
    provider: String,
}

impl std::fmt::Debug for ContainerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContainerRuntime({})", self.provider)
    }
}

fn unavailable(reason: String) -> RuntimeError {
    RuntimeError::Unavailable {
        runtime: RuntimeKind::Container,
        reason,
    }
}

impl ContainerRuntime {
    /// Connects to the local engine (`DOCKER_HOST` or the default socket) and pings it.
    pub fn connect(provider: &str) -> Result<Self, RuntimeError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| unavailable(e.to_string()))?;
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| unavailable(format!("no Docker Engine: {e}")))?;
        rt.block_on(docker.ping())
            .map_err(|e| unavailable(format!("the Docker Engine does not answer: {e}")))?;
        Ok(Self {
            docker,
            rt,
            provider: provider.to_string(),
        })
    }

    fn name(&self, lease: LeaseId) -> String {
        let short: String = self.provider.chars().skip(5).take(12).collect();
        format!("cairn-{short}-lease-{}", lease.0)
    }

    /// The provider's container for `lease`, found by label.
    pub fn find(&self, lease: LeaseId) -> Option<String> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("{LABEL_LEASE}={}", lease.0),
                format!("{LABEL_PROVIDER}={}", self.provider),
            ],
        )]);
        let list = self
            .rt
            .block_on(self.docker.list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            })))
            .ok()?;
        list.into_iter().find_map(|c| c.id)
    }

    fn control(
        &self,
        lease: LeaseId,
        action: &'static str,
    ) -> impl FnOnce(bollard::errors::Error) -> RuntimeError {
        move |e| RuntimeError::Control {
            lease,
            action,
            reason: e.to_string(),
        }
    }
}

/// The NVIDIA container toolkit's device request for exactly these host GPUs; none when the
/// lease has no GPU, so the container sees no device at all.
fn gpu_device_requests(gpus: &[u32]) -> Option<Vec<DeviceRequest>> {
    (!gpus.is_empty()).then(|| {
        vec![DeviceRequest {
            driver: Some("nvidia".to_string()),
            device_ids: Some(gpus.iter().map(u32::to_string).collect()),
            capabilities: Some(vec![vec!["gpu".to_string(), "compute".to_string()]]),
            ..Default::default()
        }]
    })
}

/// The tenant's environment, with `CUDA_VISIBLE_DEVICES` the provider's to set.
fn container_env(m: &Manifest, gpus: &[u32]) -> Vec<String> {
    m.env
        .iter()
        .filter(|(k, _)| k.as_str() != CUDA_VISIBLE_DEVICES)
        .map(|(k, v)| format!("{k}={v}"))
        .chain(std::iter::once(format!(
            "{CUDA_VISIBLE_DEVICES}={}",
            cuda_visible_devices(gpus.len())
        )))
        .collect()
}

impl Runtime for ContainerRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Container
    }

    fn start(
        &self,
        lease: LeaseId,
        m: &Manifest,
        _dir: &Path,
        gpus: &[u32],
    ) -> Result<Handle, RuntimeError> {
        let start_err = |reason: String| RuntimeError::Start { lease, reason };
        let image = m
            .image
            .clone()
            .ok_or_else(|| start_err("the manifest names no image".to_string()))?;
        self.check(Some(&image))?;
        // A container left from an earlier attempt for this lease is replaced.
        if let Some(old) = self.find(lease) {
            let _ = self.rt.block_on(self.docker.remove_container(
                &old,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            ));
        }
        let port = m.ingress_port();
        let port_key = port.map(|p| format!("{p}/tcp"));
        let labels = HashMap::from([
            (LABEL_LEASE.to_string(), lease.0.to_string()),
            (LABEL_PROVIDER.to_string(), self.provider.clone()),
        ]);
        let host_config = HostConfig {
            memory: i64::try_from(m.memory_bytes).ok(),
            nano_cpus: i64::try_from(m.cpu_millicores.saturating_mul(1_000_000)).ok(),
            pids_limit: Some(512),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_string(),
                format!("size={}", m.storage_bytes.max(1 << 20)),
            )])),
            cap_drop: Some(vec!["ALL".to_string()]),
            cap_add: Some(vec!["NET_BIND_SERVICE".to_string()]),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            port_bindings: port_key.clone().map(|k| {
                HashMap::from([(
                    k,
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".to_string()),
                        host_port: Some(String::new()),
                    }]),
                )])
            }),
            device_requests: gpu_device_requests(gpus),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(image),
            entrypoint: (!m.command.is_empty()).then(|| m.command.clone()),
            cmd: (!m.args.is_empty()).then(|| m.args.clone()),
            env: Some(container_env(m, gpus)),
            labels: Some(labels),
            exposed_ports: port_key.map(|k| HashMap::from([(k, HashMap::new())])),
            host_config: Some(host_config),
            ..Default::default()
        };
        let created = self
            .rt
            .block_on(self.docker.create_container(
                Some(CreateContainerOptions {
                    name: Some(self.name(lease)),
                    ..Default::default()
                }),
                body,
            ))
            .map_err(|e| start_err(e.to_string()))?;
        self.rt
            .block_on(
                self.docker
                    .start_container(&created.id, None::<StartContainerOptions>),
            )
            .map_err(|e| start_err(e.to_string()))?;
        let endpoint = match port {
            None => None,
            Some(p) => {
                let info = self
                    .rt
                    .block_on(
                        self.docker
                            .inspect_container(&created.id, None::<InspectContainerOptions>),
                    )
                    .map_err(|e| start_err(e.to_string()))?;
                let host_port = info
                    .network_settings
                    .and_then(|n| n.ports)
                    .and_then(|ports| ports.get(&format!("{p}/tcp")).cloned().flatten())
                    .and_then(|b| b.into_iter().find_map(|b| b.host_port))
                    .and_then(|s| s.parse::<u16>().ok())
                    .ok_or_else(|| start_err("the engine published no host port".to_string()))?;
                Some(Endpoint::Tcp(std::net::SocketAddr::from((
                    [127, 0, 0, 1],
                    host_port,
                ))))
            }
        };
        Ok(Handle {
            lease,
            kind: RuntimeKind::Container,
            pid: 0,
            start_ticks: 0,
            container_id: created.id,
            endpoint,
            gpus: gpus.to_vec(),
        })
    }

    fn check(&self, image: Option<&str>) -> Result<(), RuntimeError> {
        // A dry run that names no image (an older client) is answered on capacity alone.
        let Some(image) = image else { return Ok(()) };
        match self.rt.block_on(self.docker.inspect_image(image)) {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(RuntimeError::ImageMissing {
                image: image.to_string(),
            }),
            Err(e) => Err(unavailable(format!(
                "the Docker Engine did not say whether it has image {image}: {e}"
            ))),
        }
    }

    fn state(&self, h: &Handle) -> WorkloadState {
        let Ok(info) = self.rt.block_on(
            self.docker
                .inspect_container(&h.container_id, None::<InspectContainerOptions>),
        ) else {
            return WorkloadState::Exited;
        };
        let state = info.state.unwrap_or_default();
        if state.paused == Some(true) {
            WorkloadState::Paused
        } else if state.running == Some(true) {
            WorkloadState::Running
        } else {
            WorkloadState::Exited
        }
    }

    fn pause(&self, h: &Handle) -> Result<(), RuntimeError> {
        self.rt
            .block_on(self.docker.pause_container(&h.container_id))
            .map_err(self.control(h.lease, "pause"))
    }

    fn resume(&self, h: &Handle) -> Result<(), RuntimeError> {
        self.rt
            .block_on(self.docker.unpause_container(&h.container_id))
            .map_err(self.control(h.lease, "resume"))
    }

    fn stop(&self, h: &Handle) -> Result<(), RuntimeError> {
        let _ = self.rt.block_on(self.docker.kill_container(
            &h.container_id,
            Some(KillContainerOptions {
                signal: "SIGKILL".to_string(),
            }),
        ));
        // Logs go with the container; the lease directory keeps the last of them.
        self.rt
            .block_on(self.docker.remove_container(
                &h.container_id,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            ))
            .map_err(self.control(h.lease, "stop"))
    }

    fn logs(
        &self,
        h: &Handle,
        _dir: &Path,
        offset: u64,
        max_bytes: usize,
    ) -> Result<Vec<u8>, RuntimeError> {
        let mut stream = self.docker.logs(
            &h.container_id,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                tail: "all".to_string(),
                ..Default::default()
            }),
        );
        let all = self.rt.block_on(async {
            let mut all = Vec::new();
            while let Some(item) = stream.next().await {
                match item {
                    Ok(out) => all.extend_from_slice(&out.into_bytes()),
                    Err(_) => break,
                }
                if all.len() > 64 << 20 {
                    break;
                }
            }
            all
        });
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(all.len());
        let end = start.saturating_add(max_bytes).min(all.len());
        Ok(all[start..end].to_vec())
    }
}

#[cfg(test)]
mod gpu_tests {
    use super::{container_env, gpu_device_requests};

    #[test]
    fn containers_get_exactly_the_leased_gpus_and_the_provider_sets_cuda_visible_devices() {
        assert_eq!(gpu_device_requests(&[]), None, "no GPU: no device request");
        let requests = gpu_device_requests(&[1, 3]).expect("a request");
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].driver.as_deref(), Some("nvidia"));
        assert_eq!(
            requests[0].device_ids,
            Some(vec!["1".to_string(), "3".to_string()])
        );
        let text = crate::manifest::tests::GOOD.replace(
            "      - GREETING=hello\n",
            "      - CUDA_VISIBLE_DEVICES=0,1,2,3\n      - MODE=fast\n",
        );
        let m = crate::manifest::parse(&text).expect("manifest");
        let env = container_env(&m, &[1, 3]);
        assert!(env.contains(&"MODE=fast".to_string()), "{env:?}");
        // The tenant's own value is dropped; inside, the two devices are 0 and 1.
        assert_eq!(
            env.iter()
                .filter(|e| e.starts_with("CUDA_VISIBLE_DEVICES="))
                .collect::<Vec<_>>(),
            ["CUDA_VISIBLE_DEVICES=0,1"]
        );
    }
}
