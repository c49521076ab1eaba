//! [`Gpu`]: a wgpu device and queue with what every operation on them needs: the limits and
//! tuning launches are planned by, error scopes, the lost state, buffer creation, and the
//! pipeline cache. Knows no loss.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(target_arch = "wasm32"))]
use std::time::Duration;

use crate::error::{Error, Operation, Result};
use crate::gpu::pipelines::{Pipeline, PipelineKey, Slot};
use crate::gpu::pool::Pool;
use crate::plan::{Tuning, WORKGROUP_SIZE};

/// How long a wait for the GPU may take before xent gives up with an error (rather than
/// hanging on a lost device).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) const WAIT_TIMEOUT: Duration = Duration::from_secs(120);

/// The most storage buffers a kernel binds (WebGPU's default per-stage limit).
pub(crate) const MAX_STORAGE_BUFFERS: u32 = 8;

/// Bytes of readback buffers a device keeps for reuse, by default.
pub(crate) const DEFAULT_READBACK_BUDGET: u64 = 64 << 20;

/// A device and queue, the limits and tuning launches are planned by, and caches shared by
/// every `Gpu` on the device. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Gpu {
    shared: Arc<Shared>,
    /// The device's limits lowered by the tuning's caps.
    limits: wgpu::Limits,
    tuning: Tuning,
    /// The subgroup size row kernels can use on this device (see `gpu::lanes`), whatever the
    /// tuning says.
    device_subgroup_size: Option<u32>,
}

/// What every `Gpu` on one device shares.
struct Shared {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    /// Layouts by binding table, and compiled pipelines.
    layouts: Mutex<HashMap<&'static [Slot], (wgpu::BindGroupLayout, wgpu::PipelineLayout)>>,
    pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
    /// Compiles whose outcome was not known when they were made (a browser reports it
    /// later): awaited by the operation around them, see [`Gpu::checked`].
    compiles: Mutex<Vec<PendingCompile>>,
    /// Readback buffers kept for reuse, by size.
    staging: Mutex<Pool<u64, wgpu::Buffer>>,
    /// Buffers created through this device's contexts.
    buffers_created: AtomicU64,
    /// Their bytes.
    bytes_created: AtomicU64,
    /// Why the device was lost, once it is (known for devices xent created).
    lost: Arc<Mutex<Option<String>>>,
    /// The first error wgpu reported outside xent's error scopes (a caller's submission of
    /// recorded work, say) on a device xent created, not yet reported by an operation.
    uncaptured: Arc<Mutex<Option<String>>>,
}

/// The outcome of a compile's error scope, as wgpu gives it: a future that is `Send` where
/// wgpu's are (natively; on the web nothing is sent between threads).
#[cfg(not(target_arch = "wasm32"))]
type ScopeOutcome = std::pin::Pin<Box<dyn Future<Output = Option<wgpu::Error>> + Send>>;
#[cfg(target_arch = "wasm32")]
type ScopeOutcome = std::pin::Pin<Box<dyn Future<Output = Option<wgpu::Error>>>>;

/// A pipeline cached before its compile was known to succeed, and the scope that will say.
struct PendingCompile {
    key: PipelineKey,
    outcome: ScopeOutcome,
}

/// Locks a mutex, taking the data of a poisoned one (xent's caches stay consistent whatever
/// a panicking thread left: each update is one insert or remove).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Gpu {
    /// A core on `device` before the subgroup probe (see [`Gpu::probed`]): an error if the
    /// device cannot run xent's workgroups. It installs no uncaptured-error handler: xent's
    /// own work runs inside error scopes, and errors of the caller's work on the device stay
    /// the caller's.
    pub(crate) fn new(device: wgpu::Device, queue: wgpu::Queue) -> Result<Gpu> {
        let info = device.adapter_info();
        let limits = device.limits();
        // What every kernel needs: 256 invocations a workgroup, 8 storage buffers and a
        // uniform buffer in one bind group.
        let needs = [
            (
                "max_compute_invocations_per_workgroup",
                limits.max_compute_invocations_per_workgroup,
                WORKGROUP_SIZE,
            ),
            (
                "max_compute_workgroup_size_x",
                limits.max_compute_workgroup_size_x,
                WORKGROUP_SIZE,
            ),
            (
                "max_storage_buffers_per_shader_stage",
                limits.max_storage_buffers_per_shader_stage,
                MAX_STORAGE_BUFFERS,
            ),
            (
                "max_uniform_buffers_per_shader_stage",
                limits.max_uniform_buffers_per_shader_stage,
                1,
            ),
            ("max_bind_groups", limits.max_bind_groups, 1),
        ];
        if let Some((name, has, needed)) = needs.iter().find(|(_, has, needed)| has < needed) {
            return Err(Error::UnsupportedAdapter {
                adapter: info.name.clone(),
                reason: format!(
                    "xent needs {name} of at least {needed}; the device has {has} (create it \
                     with the adapter's limits, or at least WebGPU's defaults)"
                ),
            });
        }
        let tuning = Tuning::for_device(info.device_type);
        Ok(Gpu {
            limits: tuning.apply(&limits),
            tuning,
            device_subgroup_size: None,
            shared: Arc::new(Shared {
                device,
                queue,
                info,
                layouts: Mutex::default(),
                pipelines: Mutex::default(),
                compiles: Mutex::default(),
                staging: Mutex::new(Pool::new(DEFAULT_READBACK_BUDGET)),
                buffers_created: AtomicU64::new(0),
                bytes_created: AtomicU64::new(0),
                lost: Arc::default(),
                uncaptured: Arc::default(),
            }),
        })
    }

    /// Makes every later operation return [`Error::DeviceLost`] once the device is lost, and
    /// the next operation return an error wgpu reported outside xent's calls (where wgpu's
    /// default handler would panic): for devices xent created, whose callbacks are its own.
    pub(crate) fn watch_lost(&self) {
        let sink = Arc::clone(&self.shared.lost);
        self.shared
            .device
            .set_device_lost_callback(move |reason, message| {
                *lock(&sink) = Some(match message.as_str() {
                    "" => format!("{reason:?}"),
                    _ => format!("{reason:?}: {message}"),
                });
            });
        let sink = Arc::clone(&self.shared.uncaptured);
        self.shared
            .device
            .on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
                lock(&sink).get_or_insert_with(|| error.to_string());
            }));
    }

    /// This core with the subgroup size the probe found.
    pub(crate) fn probed(&self, device_subgroup_size: Option<u32>) -> Gpu {
        Gpu {
            device_subgroup_size,
            ..self.clone()
        }
    }

    /// This core with other launch-plan knobs (the caches are shared).
    pub(crate) fn with_tuning(&self, tuning: Tuning) -> Gpu {
        Gpu {
            limits: tuning.apply(&self.shared.device.limits()),
            tuning,
            ..self.clone()
        }
    }

    pub(crate) fn device(&self) -> &wgpu::Device {
        &self.shared.device
    }

    pub(crate) fn queue(&self) -> &wgpu::Queue {
        &self.shared.queue
    }

    pub(crate) fn info(&self) -> &wgpu::AdapterInfo {
        &self.shared.info
    }

    /// The limits launches are planned by.
    pub(crate) fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    pub(crate) fn tuning(&self) -> Tuning {
        self.tuning
    }

    /// The subgroup size row kernels merge rows with (`None`: workgroup memory only).
    pub(crate) fn subgroup_size(&self) -> Option<u32> {
        self.device_subgroup_size.filter(|_| self.tuning.subgroups)
    }

    /// Buffers created on this device by xent.
    pub(crate) fn buffers_created(&self) -> u64 {
        self.shared.buffers_created.load(Ordering::Relaxed)
    }

    /// The pool of readback buffers, shared by every core on the device.
    pub(crate) fn staging(&self) -> &Mutex<Pool<u64, wgpu::Buffer>> {
        &self.shared.staging
    }

    /// The bytes of the buffers created so far (device memory xent asked for, freed or not).
    #[cfg_attr(any(target_arch = "wasm32", not(feature = "bench")), allow(dead_code))]
    pub(crate) fn bytes_created(&self) -> u64 {
        self.shared.bytes_created.load(Ordering::Relaxed)
    }

    /// Creates a buffer (and counts it).
    pub(crate) fn create_buffer(&self, desc: &wgpu::BufferDescriptor<'_>) -> wgpu::Buffer {
        self.shared.buffers_created.fetch_add(1, Ordering::Relaxed);
        self.shared
            .bytes_created
            .fetch_add(desc.size, Ordering::Relaxed);
        self.shared.device.create_buffer(desc)
    }

    /// Creates a buffer holding `contents` (padded to at least 4 bytes, a multiple of 4), and
    /// counts it. An error, not a panic, when the device cannot map it (a lost device).
    pub(crate) fn create_buffer_init(
        &self,
        label: &str,
        contents: &[u8],
        usage: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer> {
        let size = (contents.len() as u64).div_ceil(4).max(1) * 4;
        let buffer = self.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: true,
        });
        {
            let mut view = buffer.get_mapped_range_mut(..).map_err(|e| {
                self.lost_or(Error::Gpu {
                    operation: Operation::Upload,
                    kernel: None,
                    message: format!("creating the {label} buffer: {e}"),
                })
            })?;
            view.slice(..contents.len()).copy_from_slice(contents);
        }
        buffer.unmap();
        Ok(buffer)
    }

    /// The bind-group layout and pipeline layout of a binding table, created once.
    fn layouts_of(&self, key: &PipelineKey) -> (wgpu::BindGroupLayout, wgpu::PipelineLayout) {
        let mut map = lock(&self.shared.layouts);
        map.entry(key.bindings)
            .or_insert_with(|| {
                let entries = key.layout_entries();
                let device = &self.shared.device;
                let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(key.kernel),
                    entries: &entries,
                });
                let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some(key.kernel),
                    bind_group_layouts: &[Some(&bgl)],
                    immediate_size: 0,
                });
                (bgl, pl)
            })
            .clone()
    }

    /// The pipeline of `key`, compiled from `source()` once and cached.
    ///
    /// The compile runs in an error scope of its own, and a failing compile is
    /// [`Error::ShaderCompile`] naming the kernel and variant. Natively wgpu reports at once;
    /// where the report comes later (a browser), the pipeline is handed out and its outcome
    /// awaited by the operation around it ([`Gpu::checked`]), which drops a failed pipeline
    /// from the cache and returns the error.
    pub(crate) fn pipeline(
        &self,
        key: &PipelineKey,
        source: impl FnOnce() -> String,
    ) -> Result<Pipeline> {
        let (bind_group_layout, layout) = self.layouts_of(key);
        if let Some(p) = lock(&self.shared.pipelines).get(key) {
            return Ok(Pipeline {
                pipeline: p.clone(),
                layout: bind_group_layout,
                label: key.kernel,
            });
        }
        let device = &self.shared.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(key.kernel),
            source: wgpu::ShaderSource::Wgsl(source().into()),
        });
        let constants: Vec<(&str, f64)> = key
            .constants
            .iter()
            .map(|(name, value)| (*name, f64::from(*value)))
            .collect();
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(key.kernel),
            layout: Some(&layout),
            module: &module,
            entry_point: Some(key.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        let outcome: ScopeOutcome = Box::pin(scope.pop());
        match ready_or_pending(outcome) {
            Ok(Some(e)) => return Err(compile_error(key, &e)),
            Ok(None) => {}
            Err(outcome) => lock(&self.shared.compiles).push(PendingCompile {
                key: key.clone(),
                outcome,
            }),
        }
        lock(&self.shared.pipelines).insert(key.clone(), pipeline.clone());
        Ok(Pipeline {
            pipeline,
            layout: bind_group_layout,
            label: key.kernel,
        })
    }

    /// Runs `work` (recording, creating) inside validation and out-of-memory error scopes and
    /// turns whatever they catch into a typed error naming `operation`. The scopes are popped
    /// before the future first waits, so it holds nothing that ties it to a thread.
    pub(crate) fn checked<'g, T: 'g>(
        &'g self,
        operation: Operation,
        work: impl FnOnce() -> Result<T>,
    ) -> impl Future<Output = Result<T>> + 'g {
        let started = self.alive().map(|()| {
            let device = &self.shared.device;
            let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
            let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let result = work();
            let compiles = std::mem::take(&mut *lock(&self.shared.compiles));
            (result, validation.pop(), oom.pop(), compiles)
        });
        async move {
            let (result, validation, oom, compiles) = started?;
            let (validation, oom) = (validation.await, oom.await);
            let compiled = self.compiled(compiles).await;
            let scoped = if let Some(e) = oom {
                Err(Error::OutOfMemory {
                    operation,
                    message: e.to_string(),
                })
            } else if let Err(e) = compiled {
                // A failed compile also fails whatever used its pipeline: name the cause.
                Err(e)
            } else if let Some(e) = validation {
                Err(Error::Gpu {
                    operation,
                    kernel: None,
                    message: e.to_string(),
                })
            } else {
                result
            };
            scoped.map_err(|e| self.lost_or(e))
        }
    }

    /// Awaits the outcome of compiles made without one, dropping each failed pipeline from
    /// the cache (so the next use compiles it again); the first failure is the error.
    async fn compiled(&self, compiles: Vec<PendingCompile>) -> Result<()> {
        let mut first = Ok(());
        for compile in compiles {
            if let Some(e) = compile.outcome.await {
                lock(&self.shared.pipelines).remove(&compile.key);
                if first.is_ok() {
                    first = Err(compile_error(&compile.key, &e));
                }
            }
        }
        first
    }

    /// Writes `data` into `buffer` through the queue inside a validation scope, so a failure
    /// (a destroyed device) is an error of this call and never reaches the device's
    /// uncaptured-error handler. Natively the scope's error is known at once; where it is not
    /// (a browser), the write has been checked against the buffer's size and usage before.
    pub(crate) fn write_buffer(&self, buffer: &wgpu::Buffer, data: &[u8]) -> Result<()> {
        self.alive()?;
        let scope = self
            .shared
            .device
            .push_error_scope(wgpu::ErrorFilter::Validation);
        self.shared.queue.write_buffer(buffer, 0, data);
        match ready_or_pending(Box::pin(scope.pop())).ok() {
            Some(Some(e)) => Err(self.lost_or(Error::Gpu {
                operation: Operation::Upload,
                kernel: None,
                message: e.to_string(),
            })),
            _ => Ok(()),
        }
    }

    /// An error if the device is known to be lost, or (once) if wgpu reported an error outside
    /// xent's calls since the last operation.
    pub(crate) fn alive(&self) -> Result<()> {
        if let Some(reason) = lock(&self.shared.lost).as_ref() {
            return Err(Error::DeviceLost(reason.clone()));
        }
        match lock(&self.shared.uncaptured).take() {
            Some(message) => Err(Error::Gpu {
                operation: Operation::Run,
                kernel: None,
                message: format!(
                    "work submitted outside xent's calls failed (an encoder holding recorded \
                     work, say, submitted after one of its buffers was destroyed): {message}"
                ),
            }),
            None => Ok(()),
        }
    }

    /// `error`, or [`Error::DeviceLost`] when the device is known to be lost (the cause of
    /// most errors then).
    pub(crate) fn lost_or(&self, error: Error) -> Error {
        match lock(&self.shared.lost).as_ref() {
            Some(reason) => Error::DeviceLost(reason.clone()),
            None => error,
        }
    }

    /// Waits for `work` on this thread: the blocking edge of xent's async core, for native
    /// programs. Whenever the future is not ready, the device is polled until submitted work
    /// is done (which is what every future of xent waits for), then the future is polled
    /// again; an error after [`WAIT_TIMEOUT`] rather than a hang.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn block_on<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        block_on_device(&self.shared.device, work)
    }
}

impl Gpu {
    /// Waits until the device has finished the submission `index`: the blocking edge's check
    /// that the device still runs work (a destroyed device fails here).
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn wait_for(&self, index: wgpu::SubmissionIndex) -> Result<()> {
        self.shared
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: Some(WAIT_TIMEOUT),
            })
            .map_err(|e| {
                self.lost_or(Error::Gpu {
                    operation: Operation::Run,
                    kernel: None,
                    message: format!("waiting for the GPU: {e}"),
                })
            })?;
        self.alive()
    }
}

/// [`Gpu::block_on`] for a bare device.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn block_on_device<T>(
    device: &wgpu::Device,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let mut work = std::pin::pin!(work);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let start = std::time::Instant::now();
    loop {
        if let std::task::Poll::Ready(v) = work.as_mut().poll(&mut cx) {
            return v;
        }
        device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(WAIT_TIMEOUT),
            })
            .map_err(|e| Error::Gpu {
                operation: Operation::Read,
                kernel: None,
                message: format!("waiting for the GPU: {e}"),
            })?;
        if start.elapsed() > WAIT_TIMEOUT {
            return Err(Error::Readback(format!(
                "the GPU did not finish within {WAIT_TIMEOUT:?}"
            )));
        }
        std::thread::yield_now();
    }
}

/// [`Error::ShaderCompile`] for the pipeline of `key`.
fn compile_error(key: &PipelineKey, error: &wgpu::Error) -> Error {
    Error::ShaderCompile {
        kernel: key.kernel,
        variant: key.variant(),
        message: error.to_string(),
    }
}

/// A scope's outcome if it is known at its first poll, or the future still pending.
fn ready_or_pending(
    mut future: ScopeOutcome,
) -> std::result::Result<Option<wgpu::Error>, ScopeOutcome> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Ok(v),
        std::task::Poll::Pending => Err(future),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::pipelines::{slot, Binding};
    use std::pin::Pin;
    use std::task::Poll;

    /// A compile's outcome that is known at its second poll only, as in a browser.
    struct Later(Option<wgpu::Error>, bool);

    impl Future for Later {
        type Output = Option<wgpu::Error>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
            if !self.1 {
                self.1 = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(self.0.take())
        }
    }

    const ONE_BUFFER: &[Slot] = &[slot("x", Binding::ReadWrite)];

    fn key() -> PipelineKey {
        PipelineKey {
            kernel: "late.wgsl",
            bindings: ONE_BUFFER,
            constants: Vec::new(),
            types: Default::default(),
            entry: "main",
        }
    }

    /// Compiles the key's pipeline, then runs an operation during which that compile is
    /// reported late with `outcome`.
    fn late_report(outcome: Option<wgpu::Error>) -> (Result<()>, bool) {
        let ctx = crate::Context::new().expect("an adapter");
        let gpu = ctx.gpu();
        let source = "@group(0) @binding(0) var<storage, read_write> x: array<f32>;\n\
                      @compute @workgroup_size(1) fn main() { x[0] = 1.0; }";
        gpu.pipeline(&key(), || source.to_string())
            .expect("a valid kernel");
        let result = gpu.block_on(gpu.checked(Operation::Prepare, || {
            lock(&gpu.shared.compiles).push(PendingCompile {
                key: key(),
                outcome: Box::pin(Later(outcome, false)),
            });
            Ok(())
        }));
        let cached = lock(&gpu.shared.pipelines).contains_key(&key());
        (result, cached)
    }

    #[test]
    fn a_compile_failing_late_fails_the_operation_around_it_and_leaves_the_cache() {
        let error = wgpu::Error::Validation {
            source: Box::new(std::io::Error::other("rejected")),
            description: "value nan cannot be represented as 'f32'".into(),
        };
        let (result, cached) = late_report(Some(error));
        match result {
            Err(Error::ShaderCompile {
                kernel, message, ..
            }) => {
                assert_eq!(kernel, "late.wgsl");
                assert!(message.contains("nan cannot be represented"), "{message}");
            }
            other => panic!("expected a compile error, got {other:?}"),
        }
        assert!(!cached, "a failed pipeline must leave the cache");
    }

    #[test]
    fn a_compile_succeeding_late_keeps_its_pipeline() {
        let (result, cached) = late_report(None);
        assert_eq!(result, Ok(()));
        assert!(cached);
    }
}
