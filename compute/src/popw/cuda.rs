//! The CUDA backend: int8 GEMM on the GPU's tensor cores through cuBLASLt, exact int32 sums.
//!
//! Built only with the `cuda` feature. cudarc loads the driver and cuBLASLt at run time, so
//! the feature builds on machines without the toolkit; [`CudaBackend::new`] reports a clear
//! error where no driver or device is present.
//!
//! Layout: cuBLASLt is column-major, and its int8 tensor-core kernels want the "TN" form
//! (first operand transposed). Our row-major C (m×n) is the column-major Cᵀ (n×m) = Bᵀ·Aᵀ.
//! Bᵀ is given as op = T over a column-major k×n matrix, which is exactly B transposed on
//! the host into n rows of k; Aᵀ is the row-major A read column-major (k×m, ld = k), op = N.
//! k is zero-padded to a multiple of 16 (padding adds zero products), which also meets the
//! kernels' alignment rules. Compute type `CUBLAS_COMPUTE_32I` with int32 scale (alpha 1,
//! beta 0): int32 accumulation, no rounding, so the product is bit-identical to the CPU's.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_proofs::GemmShape;
use cudarc::cublaslt::{result as lt, sys};
use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr, DevicePtrMut};

use super::{BackendError, GemmBackend, check_operands};

/// `cublasOperation_t::CUBLAS_OP_T` (cudarc's cuBLASLt bindings take the attribute as int).
const OP_T: i32 = 1;
const WORKSPACE_BYTES: usize = 64 << 20;
const BACKEND: &str = "cuda";

fn device_err(step: &'static str) -> impl FnOnce(String) -> BackendError {
    move |detail| BackendError::Device {
        backend: BACKEND,
        step,
        detail,
    }
}

/// One GPU, driven through cuBLASLt.
pub struct CudaBackend {
    stream: Arc<CudaStream>,
    name: String,
    ordinal: usize,
}

impl CudaBackend {
    /// Opens GPU `ordinal`; errors (no driver, no device) name what is missing.
    pub fn new(ordinal: usize) -> Result<Self, BackendError> {
        let ctx = std::panic::catch_unwind(|| CudaContext::new(ordinal))
            .map_err(|_| BackendError::Unavailable {
                backend: BACKEND,
                reason: "the CUDA driver library (libcuda.so) could not be loaded".to_string(),
            })?
            .map_err(|e| BackendError::Unavailable {
                backend: BACKEND,
                reason: format!("no usable GPU {ordinal}: {e:?}"),
            })?;
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".to_string());
        Ok(Self {
            stream: ctx.default_stream(),
            name,
            ordinal,
        })
    }

    /// The device's marketing name, as the driver reports it.
    pub fn device_name(&self) -> &str {
        &self.name
    }

    /// Uploads the operands once and runs the multiplication `iterations` times on the
    /// device, returning the operands' product and the mean kernel time (transfers excluded):
    /// the figure to hold against the GPU's int8 peak.
    pub fn time_kernel(
        &self,
        a: &[i8],
        b: &[i8],
        shape: GemmShape,
        iterations: u32,
    ) -> Result<(Vec<i32>, Duration), BackendError> {
        let mut job = Job::upload(&self.stream, a, b, shape)?;
        job.run()?; // warm-up: picks the algorithm, loads the kernel
        self.stream
            .synchronize()
            .map_err(|e| device_err("synchronize")(format!("{e:?}")))?;
        let start = Instant::now();
        for _ in 0..iterations.max(1) {
            job.run()?;
        }
        self.stream
            .synchronize()
            .map_err(|e| device_err("synchronize")(format!("{e:?}")))?;
        let mean = start.elapsed() / iterations.max(1);
        Ok((job.download()?, mean))
    }
}

impl GemmBackend for CudaBackend {
    fn name(&self) -> String {
        format!("cuda (GPU {}: {}, cuBLASLt int8)", self.ordinal, self.name)
    }

    fn gemm(&self, a: &[i8], b: &[i8], shape: GemmShape) -> Result<Vec<i32>, BackendError> {
        let (m, k, n) = check_operands(a, b, shape)?;
        if m == 0 || n == 0 || k == 0 {
            return Ok(vec![0; m * n]);
        }
        let mut job = Job::upload(&self.stream, a, b, shape)?;
        job.run()?;
        job.download()
    }
}

/// Operands on the device and the descriptors of one multiplication.
struct Job {
    stream: Arc<CudaStream>,
    handle: sys::cublasLtHandle_t,
    desc: sys::cublasLtMatmulDesc_t,
    layouts: [sys::cublasLtMatrixLayout_t; 3],
    algo: sys::cublasLtMatmulHeuristicResult_t,
    bt: CudaSlice<i8>,
    a: CudaSlice<i8>,
    c: CudaSlice<i32>,
    workspace: CudaSlice<u8>,
}

impl Job {
    fn upload(
        stream: &Arc<CudaStream>,
        a: &[i8],
        b: &[i8],
        shape: GemmShape,
    ) -> Result<Self, BackendError> {
        let (m, k, n) = check_operands(a, b, shape)?;
        let kp = k.div_ceil(16) * 16;
        // Host-side packing: A rows padded to kp, B transposed into n rows of kp.
        let mut a_host = vec![0i8; m * kp];
        for (dst, src) in a_host.chunks_exact_mut(kp).zip(a.chunks_exact(k.max(1))) {
            dst[..k].copy_from_slice(src);
        }
        let mut bt_host = vec![0i8; n * kp];
        for (p, row) in b.chunks_exact(n.max(1)).enumerate().take(k) {
            for (j, &value) in row.iter().enumerate() {
                bt_host[j * kp + p] = value;
            }
        }
        let dev = |step: &'static str| {
            move |e: cudarc::driver::DriverError| device_err(step)(format!("{e:?}"))
        };
        let a_dev = stream.clone_htod(&a_host).map_err(dev("upload A"))?;
        let bt_dev = stream.clone_htod(&bt_host).map_err(dev("upload B"))?;
        let c_dev = stream
            .alloc_zeros::<i32>((m * n).max(1))
            .map_err(dev("allocate C"))?;
        let workspace = stream
            .alloc_zeros::<u8>(WORKSPACE_BYTES)
            .map_err(dev("allocate workspace"))?;

        let lt_err =
            |step: &'static str| move |e: lt::CublasError| device_err(step)(format!("{e:?}"));
        let to_u64 = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        let to_i64 = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        let handle = lt::create_handle().map_err(lt_err("create cuBLASLt handle"))?;
        let desc = lt::create_matmul_desc(
            sys::cublasComputeType_t::CUBLAS_COMPUTE_32I,
            sys::cudaDataType::CUDA_R_32I,
        )
        .map_err(lt_err("create matmul descriptor"))?;
        let op_t = OP_T;
        // SAFETY: `desc` was just created; the attribute is an int read during the call.
        unsafe {
            lt::set_matmul_desc_attribute(
                desc,
                sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSA,
                (&raw const op_t).cast::<c_void>(),
                size_of::<i32>(),
            )
        }
        .map_err(lt_err("set TRANSA"))?;
        // First operand: column-major kp×n (ld kp), transposed by op → n×kp.
        let first = lt::create_matrix_layout(
            sys::cudaDataType::CUDA_R_8I,
            to_u64(kp),
            to_u64(n),
            to_i64(kp),
        )
        .map_err(lt_err("layout of Bᵀ"))?;
        // Second operand: column-major kp×m (ld kp) = Aᵀ.
        let second = lt::create_matrix_layout(
            sys::cudaDataType::CUDA_R_8I,
            to_u64(kp),
            to_u64(m),
            to_i64(kp),
        )
        .map_err(lt_err("layout of Aᵀ"))?;
        // Output: column-major n×m (ld n) = row-major C.
        let out = lt::create_matrix_layout(
            sys::cudaDataType::CUDA_R_32I,
            to_u64(n),
            to_u64(m),
            to_i64(n),
        )
        .map_err(lt_err("layout of C"))?;
        let pref = lt::create_matmul_pref().map_err(lt_err("create preference"))?;
        let workspace_bytes = WORKSPACE_BYTES;
        // SAFETY: every descriptor was created above and is destroyed only after use.
        let algo = unsafe {
            lt::set_matmul_pref_attribute(
                pref,
                sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                (&raw const workspace_bytes).cast::<c_void>(),
                size_of::<usize>(),
            )
            .map_err(lt_err("set workspace preference"))?;
            let algo = lt::get_matmul_algo_heuristic(handle, desc, first, second, out, out, pref)
                .map_err(lt_err("find an int8 algorithm"));
            let _ = lt::destroy_matmul_pref(pref);
            algo?
        };
        Ok(Self {
            stream: stream.clone(),
            handle,
            desc,
            layouts: [first, second, out],
            algo,
            bt: bt_dev,
            a: a_dev,
            c: c_dev,
            workspace,
        })
    }

    fn run(&mut self) -> Result<(), BackendError> {
        let (alpha, beta) = (1i32, 0i32);
        let [first, second, out] = self.layouts;
        let (bt_ptr, _bt_sync) = self.bt.device_ptr(&self.stream);
        let (a_ptr, _a_sync) = self.a.device_ptr(&self.stream);
        let (c_ptr, _c_sync) = self.c.device_ptr_mut(&self.stream);
        let (ws_ptr, _ws_sync) = self.workspace.device_ptr_mut(&self.stream);
        // SAFETY: pointers come from live device allocations sized for the layouts above
        // (checked by `check_operands` and the packing); descriptors are live until drop.
        unsafe {
            lt::matmul(
                self.handle,
                self.desc,
                (&raw const alpha).cast::<c_void>(),
                (&raw const beta).cast::<c_void>(),
                bt_ptr as *const c_void,
                first,
                a_ptr as *const c_void,
                second,
                c_ptr as *const c_void,
                out,
                c_ptr as *mut c_void,
                out,
                &raw const self.algo.algo,
                ws_ptr as *mut c_void,
                WORKSPACE_BYTES,
                self.stream.cu_stream().cast(),
            )
        }
        .map_err(|e| device_err("matmul")(format!("{e:?}")))
    }

    fn download(&self) -> Result<Vec<i32>, BackendError> {
        self.stream
            .clone_dtoh(&self.c)
            .map_err(|e| device_err("download C")(format!("{e:?}")))
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        // SAFETY: each descriptor and the handle were created in `upload` and are freed once.
        unsafe {
            for layout in self.layouts {
                let _ = lt::destroy_matrix_layout(layout);
            }
            let _ = lt::destroy_matmul_desc(self.desc);
            let _ = lt::destroy_handle(self.handle);
        }
    }
}
