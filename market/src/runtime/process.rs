//! The process runtime: the manifest's command in a bubblewrap sandbox.
//!
//! What is enforced (each by the kernel, not by trust):
//! - no network: a new network namespace with only loopback; the one exposed port is reached
//!   through a Unix socket that a forwarder inside the namespace relays to `127.0.0.1:port`;
//! - read-only root (`--ro-bind / /`), a private `/tmp` tmpfs of the order's storage size,
//!   private /proc, /dev, pid, ipc and uts namespaces;
//! - memory: `RLIMIT_AS` at the order's memory (through `prlimit`), and at most 1024 open
//!   files;
//! - CPU: *not* hard-limited (cgroups are not delegated to the provider on the machines this
//!   was built on); the workload runs at `nice 10`. Stated here so nobody assumes otherwise.
//!
//! The sandbox is its own process group and session, not a child the provider waits on, so
//! it survives a provider restart; the pid file holds pid and start time for re-attaching.

use super::{
    CUDA_VISIBLE_DEVICES, Endpoint, Handle, Runtime, RuntimeError, WorkloadState,
    cuda_visible_devices, io,
};
use crate::manifest::{Manifest, RuntimeKind};
use cairn_types::LeaseId;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where the init program appears inside the sandbox (on its private `/run`).
const SANDBOX_INIT_PATH: &str = "/run/cairn-init";

/// Runs workloads under bubblewrap; `init` is the program (this binary) that runs first in
/// the sandbox as the forwarder and workload parent (see [`sandbox_init`]).
#[derive(Clone, Debug)]
pub struct ProcessRuntime {
    bwrap: PathBuf,
    init: Vec<String>,
}

impl ProcessRuntime {
    /// `init`: the argv prefix that runs [`sandbox_init`] (e.g. `["/path/cairn",
    /// "provider", "sandbox-init"]`).
    pub fn new(init: Vec<String>) -> Result<Self, RuntimeError> {
        let bwrap = which("bwrap").ok_or_else(|| RuntimeError::Unavailable {
            runtime: RuntimeKind::Process,
            reason: "bubblewrap (bwrap) is not installed: apt-get install bubblewrap".to_string(),
        })?;
        if which("prlimit").is_none() {
            return Err(RuntimeError::Unavailable {
                runtime: RuntimeKind::Process,
                reason: "prlimit (util-linux) is not installed".to_string(),
            });
        }
        Ok(Self { bwrap, init })
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Start time of `pid` in clock ticks since boot, from /proc.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); start time is field 22.
    fields.get(19)?.parse().ok()
}

/// Waits for `child` on a thread of its own, so that its exit leaves no zombie. The
/// thread ends with the child; there is one per running sandbox, bounded by the
/// provider's capacity.
fn reap_in_background(mut child: std::process::Child) {
    let pid = child.id();
    let spawned = std::thread::Builder::new()
        .name(format!("reap-{pid}"))
        .spawn(move || {
            let _ = child.wait();
        });
    if let Err(e) = spawned {
        // No thread: the zombie stays until this process exits; the lease still works.
        tracing::warn!("cannot start a reaper for sandbox {pid}: {e}");
    }
}

fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

fn signal_group(
    lease: LeaseId,
    pid: u32,
    signal: &str,
    action: &'static str,
) -> Result<(), RuntimeError> {
    let status = Command::new("kill")
        .args([format!("-{signal}"), "--".to_string(), format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| RuntimeError::Control {
            lease,
            action,
            reason: e.to_string(),
        })?;
    if !status.success() {
        return Err(RuntimeError::Control {
            lease,
            action,
            reason: format!("kill -{signal} exited with {status}"),
        });
    }
    Ok(())
}

/// bubblewrap arguments that give the sandbox exactly these GPUs: their device nodes and the
/// driver's control nodes bound in (where the host has them), and `CUDA_VISIBLE_DEVICES` set.
/// Inside, CUDA renumbers the bound devices from 0, so the variable lists sandbox-local
/// indices. With no GPU the variable is empty, which CUDA reads as "no device".
pub fn gpu_args(gpus: &[u32], exists: impl Fn(&str) -> bool) -> Vec<String> {
    let mut args = Vec::new();
    if !gpus.is_empty() {
        let nodes = gpus.iter().map(|i| format!("/dev/nvidia{i}")).chain(
            ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"].map(String::from),
        );
        for node in nodes.filter(|n| exists(n)) {
            args.extend(["--dev-bind".to_string(), node.clone(), node]);
        }
    }
    args.extend([
        "--setenv".to_string(),
        CUDA_VISIBLE_DEVICES.to_string(),
        cuda_visible_devices(gpus.len()),
    ]);
    args
}

impl Runtime for ProcessRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Process
    }

    fn start(
        &self,
        lease: LeaseId,
        m: &Manifest,
        dir: &Path,
        gpus: &[u32],
    ) -> Result<Handle, RuntimeError> {
        let run = dir.join("run");
        std::fs::create_dir_all(&run).map_err(io(&run))?;
        let socket = run.join("ingress.sock");
        let _ = std::fs::remove_file(&socket);
        let log_path = dir.join("output.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(&log_path))?;
        let log2 = log.try_clone().map_err(io(&log_path))?;
        let tmp_bytes = m.storage_bytes.max(1 << 20);
        let mut cmd = Command::new(&self.bwrap);
        cmd.args(["--ro-bind", "/", "/"])
            .args(["--dev", "/dev", "--proc", "/proc"])
            .args(["--size", &tmp_bytes.to_string(), "--tmpfs", "/tmp"])
            .args(["--tmpfs", "/run"])
            .arg("--bind")
            .arg(&run)
            .arg("/run/cairn")
            .args([
                "--unshare-net",
                "--unshare-pid",
                "--unshare-ipc",
                "--unshare-uts",
            ])
            .args(["--hostname", &format!("lease-{}", lease.0)])
            .args(["--chdir", "/tmp", "--clearenv"])
            .args(["--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin"])
            .args(["--setenv", "HOME", "/tmp"])
            .args(["--setenv", "CAIRN_LEASE", &lease.0.to_string()]);
        for (k, v) in &m.env {
            if k.as_str() != CUDA_VISIBLE_DEVICES {
                cmd.args(["--setenv", k, v]);
            }
        }
        cmd.args(gpu_args(gpus, |p| Path::new(p).exists()));
        // The init program is bound in at a fixed path: where it is installed may be under
        // a directory the sandbox hides (a binary built under /tmp sat beneath the /tmp
        // tmpfs, and every lease exited at once).
        let (program, init_args) = self.init.split_first().ok_or_else(|| RuntimeError::Start {
            lease,
            reason: "no sandbox init program".into(),
        })?;
        cmd.arg("--ro-bind").arg(program).arg(SANDBOX_INIT_PATH);
        cmd.arg("--");
        cmd.arg(SANDBOX_INIT_PATH).args(init_args);
        cmd.args(["--socket", "/run/cairn/ingress.sock"]);
        if let Some(port) = m.ingress_port() {
            cmd.args(["--port", &port.to_string()]);
        }
        cmd.args(["--memory-bytes", &m.memory_bytes.to_string()]);
        cmd.arg("--");
        cmd.args(&m.command).args(&m.args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            // Its own process group: signals to the group reach the whole sandbox, and the
            // provider's exit (or Ctrl-C to it) does not.
            .process_group(0);
        let child = cmd.spawn().map_err(|e| RuntimeError::Start {
            lease,
            reason: format!("bwrap: {e}"),
        })?;
        let pid = child.id();
        // The sandbox must outlive this process, so nothing here waits for it; but while
        // this process lives, the sandbox is its child and would stay a zombie after it
        // exits. One reaper thread per sandbox waits for it (the state is read from /proc,
        // not from this wait). After a provider restart the re-attached sandbox is init's
        // child, and init reaps it.
        reap_in_background(child);
        let ticks = start_ticks(pid).unwrap_or(0);
        Ok(Handle {
            lease,
            kind: RuntimeKind::Process,
            pid,
            start_ticks: ticks,
            container_id: String::new(),
            endpoint: m.ingress_port().map(|_| Endpoint::Unix(socket)),
            gpus: gpus.to_vec(),
        })
    }

    fn check(&self, _image: Option<&str>) -> Result<(), RuntimeError> {
        // Found when the runtime was made; looked for again since it may have been removed.
        if self.bwrap.is_file() {
            Ok(())
        } else {
            Err(RuntimeError::Unavailable {
                runtime: RuntimeKind::Process,
                reason: format!(
                    "bubblewrap is gone from {}: apt-get install bubblewrap",
                    self.bwrap.display()
                ),
            })
        }
    }

    fn state(&self, h: &Handle) -> WorkloadState {
        if h.pid == 0 || start_ticks(h.pid) != Some(h.start_ticks) {
            return WorkloadState::Exited;
        }
        match proc_state(h.pid) {
            Some('Z') | Some('X') | None => WorkloadState::Exited,
            Some('T') | Some('t') => WorkloadState::Paused,
            Some(_) => WorkloadState::Running,
        }
    }

    fn pause(&self, h: &Handle) -> Result<(), RuntimeError> {
        if self.state(h) == WorkloadState::Exited {
            return Ok(());
        }
        signal_group(h.lease, h.pid, "STOP", "pause")
    }

    fn resume(&self, h: &Handle) -> Result<(), RuntimeError> {
        if self.state(h) == WorkloadState::Exited {
            return Ok(());
        }
        signal_group(h.lease, h.pid, "CONT", "resume")
    }

    fn stop(&self, h: &Handle) -> Result<(), RuntimeError> {
        if self.state(h) == WorkloadState::Exited {
            return Ok(());
        }
        // KILL outright: the sandbox is disposable and a stopped group ignores TERM anyway.
        let _ = signal_group(h.lease, h.pid, "CONT", "stop");
        signal_group(h.lease, h.pid, "KILL", "stop")
    }

    fn logs(
        &self,
        _: &Handle,
        dir: &Path,
        offset: u64,
        max_bytes: usize,
    ) -> Result<Vec<u8>, RuntimeError> {
        read_from(&dir.join("output.log"), offset, max_bytes)
    }
}

pub(crate) fn read_from(
    path: &Path,
    offset: u64,
    max_bytes: usize,
) -> Result<Vec<u8>, RuntimeError> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path)(e)),
    };
    file.seek(SeekFrom::Start(offset)).map_err(io(path))?;
    let mut out = Vec::new();
    file.take(u64::try_from(max_bytes).unwrap_or(u64::MAX))
        .read_to_end(&mut out)
        .map_err(io(path))?;
    Ok(out)
}

/// Connections the forwarder relays at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 256;

/// Runs inside the sandbox: spawns the workload (under `prlimit` and `nice`), relays the
/// Unix socket `socket` to `127.0.0.1:port`, and exits with the workload's status.
pub fn sandbox_init(
    socket: &Path,
    port: Option<u16>,
    memory_bytes: u64,
    command: &[String],
) -> i32 {
    let Some((program, args)) = command.split_first() else {
        eprintln!("sandbox-init: no command");
        return 2;
    };
    let mut child = match Command::new("prlimit")
        .arg(format!("--as={memory_bytes}"))
        .arg("--nofile=1024")
        .args(["--", "nice", "-n", "10", program])
        .args(args)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sandbox-init: cannot start {program}: {e}");
            return 127;
        }
    };
    if let Some(port) = port {
        let _ = std::fs::remove_file(socket);
        match std::os::unix::net::UnixListener::bind(socket) {
            Ok(listener) => {
                std::thread::spawn(move || relay(&listener, port));
            }
            Err(e) => eprintln!("sandbox-init: cannot listen on {}: {e}", socket.display()),
        }
    }
    match child.wait() {
        Ok(status) => {
            eprintln!("sandbox-init: workload exited with {status}");
            status.code().unwrap_or(1)
        }
        Err(_) => 1,
    }
}

fn relay(listener: &std::os::unix::net::UnixListener, port: u16) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let Ok(client) = conn else { continue };
        if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            continue;
        }
        let Ok(upstream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            continue;
        };
        active.fetch_add(1, Ordering::Relaxed);
        let active = Arc::clone(&active);
        std::thread::spawn(move || {
            let (Ok(mut c2), Ok(mut u2)) = (client.try_clone(), upstream.try_clone()) else {
                active.fetch_sub(1, Ordering::Relaxed);
                return;
            };
            let back = std::thread::spawn(move || {
                let _ = std::io::copy(&mut u2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
            let (mut c, mut u) = (client, upstream);
            let _ = std::io::copy(&mut c, &mut u);
            let _ = u.shutdown(std::net::Shutdown::Write);
            let _ = back.join();
            active.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

#[cfg(test)]
mod gpu_tests {
    use super::gpu_args;

    #[test]
    fn the_sandbox_gets_exactly_the_leased_gpu_nodes() {
        let host = |p: &str| p != "/dev/nvidia-uvm-tools";
        assert_eq!(
            gpu_args(&[], host),
            ["--setenv", "CUDA_VISIBLE_DEVICES", ""],
            "no GPU: none bound and CUDA sees none"
        );
        let args = gpu_args(&[3, 5], host);
        let bound: Vec<&str> = args
            .chunks(3)
            .filter(|c| c[0] == "--dev-bind")
            .map(|c| c[1].as_str())
            .collect();
        assert_eq!(
            bound,
            [
                "/dev/nvidia3",
                "/dev/nvidia5",
                "/dev/nvidiactl",
                "/dev/nvidia-uvm"
            ]
        );
        assert!(!args.iter().any(|a| a == "/dev/nvidia0"));
        assert_eq!(
            args[args.len() - 3..],
            ["--setenv", "CUDA_VISIBLE_DEVICES", "0,1"]
        );
    }
}
