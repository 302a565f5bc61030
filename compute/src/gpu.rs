//! GPU discovery through NVML, the library NVIDIA's driver installs.
//!
//! NVML is loaded at run time (`libnvidia-ml.so.1`), so the binary runs on hosts without
//! NVIDIA's driver and simply finds no GPU there. What it reports (model, VRAM) is what a
//! provider *claims*; the ledger believes the claimed rate only once a GEMM challenge has
//! proven it (see [`crate::popw`]).
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};

use cairn_types::{BoundedString, GpuSpec};

/// One GPU as NVML reports it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct GpuInfo {
    pub index: u32,
    pub vendor: String,
    pub model: String,
    pub vram_mib: u64,
    /// Dense int8 tensor throughput from the vendor's datasheet, when the model is known.
    pub int8_dense_peak_tops: Option<f64>,
}

impl GpuInfo {
    /// The on-chain form of this GPU (names truncated to the wire limits).
    pub fn spec(&self) -> GpuSpec {
        // Cut at a character boundary at or below the byte limit.
        let bounded = |s: &str, max: usize| {
            let mut end = s.len().min(max);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_string()
        };
        GpuSpec {
            vendor: BoundedString::new(bounded(&self.vendor, 32)).unwrap_or_default(),
            model: BoundedString::new(bounded(&self.model, 64)).unwrap_or_default(),
            vram_mib: self.vram_mib,
        }
    }
}

/// The outcome of looking for GPUs.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Discovery {
    Found {
        gpus: Vec<GpuInfo>,
    },
    /// No NVIDIA driver (or it failed): the host offers CPU only.
    NoDriver {
        reason: String,
    },
}

impl Discovery {
    pub fn gpus(&self) -> &[GpuInfo] {
        match self {
            Self::Found { gpus } => gpus,
            Self::NoDriver { .. } => &[],
        }
    }
}

/// Dense (no sparsity) int8 tensor-core peaks in TOP/s from NVIDIA's datasheets, matched
/// by substring of the NVML name, most specific first.
const INT8_DENSE_PEAK_TOPS: &[(&str, f64)] = &[
    ("H200", 1979.0),
    ("H100 PCIe", 1513.0),
    ("H100 NVL", 1671.0),
    ("H100", 1979.0),
    ("A100", 624.0),
    ("L40S", 733.0),
    ("L4", 242.5),
    ("A10", 250.0),
    ("RTX 4090", 660.6),
];

/// The datasheet int8 dense peak of a GPU model, if it is in the table.
pub fn int8_dense_peak_tops(model: &str) -> Option<f64> {
    INT8_DENSE_PEAK_TOPS
        .iter()
        .find(|(needle, _)| model.contains(needle))
        .map(|(_, tops)| *tops)
}

const NVML_SUCCESS: c_int = 0;
const NAME_BUFFER: usize = 96;
const NAME_BUFFER_C: c_uint = 96;

#[repr(C)]
#[derive(Default)]
struct NvmlMemory {
    total: u64,
    free: u64,
    used: u64,
}

type Device = *mut c_void;

/// Finds the host's NVIDIA GPUs; never fails, a host without them gets `NoDriver`.
pub fn discover() -> Discovery {
    match discover_nvml() {
        Ok(gpus) => Discovery::Found { gpus },
        Err(reason) => Discovery::NoDriver { reason },
    }
}

fn discover_nvml() -> Result<Vec<GpuInfo>, String> {
    // SAFETY: loading NVML runs its initializers, which have no preconditions; each symbol
    // below is declared with the signature of NVML's C header (nvml.h, API v2).
    unsafe {
        let lib = libloading::Library::new("libnvidia-ml.so.1")
            .map_err(|e| format!("NVML not found (no NVIDIA driver): {e}"))?;
        let init: libloading::Symbol<'_, unsafe extern "C" fn() -> c_int> =
            lib.get(b"nvmlInit_v2").map_err(|e| e.to_string())?;
        let shutdown: libloading::Symbol<'_, unsafe extern "C" fn() -> c_int> =
            lib.get(b"nvmlShutdown").map_err(|e| e.to_string())?;
        let count: libloading::Symbol<'_, unsafe extern "C" fn(*mut c_uint) -> c_int> = lib
            .get(b"nvmlDeviceGetCount_v2")
            .map_err(|e| e.to_string())?;
        let by_index: libloading::Symbol<'_, unsafe extern "C" fn(c_uint, *mut Device) -> c_int> =
            lib.get(b"nvmlDeviceGetHandleByIndex_v2")
                .map_err(|e| e.to_string())?;
        let name: libloading::Symbol<
            '_,
            unsafe extern "C" fn(Device, *mut c_char, c_uint) -> c_int,
        > = lib.get(b"nvmlDeviceGetName").map_err(|e| e.to_string())?;
        let memory: libloading::Symbol<'_, unsafe extern "C" fn(Device, *mut NvmlMemory) -> c_int> =
            lib.get(b"nvmlDeviceGetMemoryInfo")
                .map_err(|e| e.to_string())?;

        let status = init();
        if status != NVML_SUCCESS {
            return Err(format!("nvmlInit failed with status {status}"));
        }
        let mut n: c_uint = 0;
        let result = (|| {
            if count(&raw mut n) != NVML_SUCCESS {
                return Err("nvmlDeviceGetCount failed".to_string());
            }
            let mut gpus = Vec::new();
            for index in 0..n.min(64) {
                let mut device: Device = std::ptr::null_mut();
                if by_index(index, &raw mut device) != NVML_SUCCESS {
                    return Err(format!("nvmlDeviceGetHandleByIndex({index}) failed"));
                }
                let mut buffer = [0 as c_char; NAME_BUFFER];
                let model = if name(device, buffer.as_mut_ptr(), NAME_BUFFER_C) == NVML_SUCCESS {
                    CStr::from_ptr(buffer.as_ptr())
                        .to_string_lossy()
                        .into_owned()
                } else {
                    "unknown NVIDIA GPU".to_string()
                };
                let mut info = NvmlMemory::default();
                let vram_mib = if memory(device, &raw mut info) == NVML_SUCCESS {
                    info.total / (1024 * 1024)
                } else {
                    0
                };
                gpus.push(GpuInfo {
                    index,
                    vendor: "nvidia".to_string(),
                    int8_dense_peak_tops: int8_dense_peak_tops(&model),
                    model,
                    vram_mib,
                });
            }
            Ok(gpus)
        })();
        shutdown();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_table_prefers_the_specific_model() {
        assert_eq!(int8_dense_peak_tops("NVIDIA H100 PCIe"), Some(1513.0));
        assert_eq!(int8_dense_peak_tops("NVIDIA H100 80GB HBM3"), Some(1979.0));
        assert_eq!(int8_dense_peak_tops("NVIDIA L4"), Some(242.5));
        assert_eq!(int8_dense_peak_tops("Voodoo 2"), None);
    }

    #[test]
    fn discovery_never_fails_and_specs_fit_the_wire() {
        // On a host without NVIDIA's driver this is NoDriver; with one, every GPU has a spec.
        for gpu in discover().gpus() {
            assert_eq!(gpu.spec().vram_mib, gpu.vram_mib);
            assert!(!gpu.model.is_empty());
        }
        let long = GpuInfo {
            index: 0,
            vendor: "nvidia".into(),
            model: "x".repeat(200),
            vram_mib: 1,
            int8_dense_peak_tops: None,
        };
        assert_eq!(long.spec().model.as_str().len(), 64);
    }
}
