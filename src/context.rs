//! [`Context`]: the adapter, device and queue xent runs on, its limits, and the pipeline cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::plan::Tuning;
use crate::shaders::{Binding, Kernel, PipelineKey};

/// How long a blocking wait for the GPU may take before xent gives up with an error
/// (rather than hanging on a lost device).
const WAIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Readback buffers of one size kept for reuse.
const STAGING_KEPT_PER_SIZE: usize = 4;

/// The GPU xent runs on: an adapter's device and queue, plus compiled pipelines.
///
/// Cheap to clone (all clones share one device and one pipeline cache) and `Send + Sync`.
/// Build one with [`Context::new`] (best adapter on the machine), [`Context::from_adapter`]
/// or [`Context::from_device`] (a device your program already has).
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    tuning: Tuning,
    /// The subgroup size row kernels can use on this device (see `crate::lanes`), whatever the
    /// tuning says.
    device_subgroup_size: Option<u32>,
    /// Compiled pipelines and layouts, shared by contexts on one device.
    caches: Arc<Caches>,
    /// The last error wgpu reported outside an error scope.
    uncaptured: Arc<Mutex<Option<String>>>,
    /// Why the device was lost, once it is (known for devices xent created).
    lost: Arc<Mutex<Option<String>>>,
}

#[derive(Default)]
struct Caches {
    layouts: Mutex<HashMap<Kernel, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>>,
    pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
    /// Buffers created through this device's contexts.
    buffers_created: AtomicU64,
    /// Unmapped readback buffers by size, for reuse.
    staging: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
    /// Prepared host-API calls by call shape, for reuse (see `Context::run_host`).
    pub(crate) host_calls: Mutex<HashMap<String, Vec<crate::prepared::HostCall>>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("adapter", &self.inner.info.name)
            .field("backend", &self.inner.info.backend)
            .field("tuning", &self.inner.tuning)
            .finish()
    }
}

/// Rank of a device type when choosing the best adapter (lower is better).
fn device_type_rank(ty: wgpu::DeviceType, power: wgpu::PowerPreference) -> u8 {
    use wgpu::DeviceType::*;
    match (power, ty) {
        (wgpu::PowerPreference::LowPower, IntegratedGpu) => 0,
        (wgpu::PowerPreference::LowPower, DiscreteGpu) => 1,
        (_, DiscreteGpu) => 0,
        (_, IntegratedGpu) => 1,
        (_, VirtualGpu) => 2,
        (_, Cpu) => 3,
        (_, Other) => 4,
    }
}

fn instance_from_env() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Every adapter on the machine that the environment allows, best first.
///
/// Honours `WGPU_BACKEND` (e.g. `vulkan`, `metal,dx12`), `WGPU_ADAPTER_NAME` (a case-insensitive
/// substring of the adapter's name) and `WGPU_POWER_PREF` (`high` or `low`).
pub fn adapters() -> Vec<wgpu::Adapter> {
    let instance = instance_from_env();
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    let mut found = pollster::block_on(instance.enumerate_adapters(backends));
    if let Ok(name) = std::env::var("WGPU_ADAPTER_NAME") {
        let name = name.to_lowercase();
        found.retain(|a| a.get_info().name.to_lowercase().contains(&name));
    }
    let power = wgpu::PowerPreference::from_env().unwrap_or(wgpu::PowerPreference::HighPerformance);
    found.sort_by_key(|a| {
        let info = a.get_info();
        // Prefer native backends over GL at equal device type.
        let gl = u8::from(info.backend == wgpu::Backend::Gl);
        (device_type_rank(info.device_type, power), gl)
    });
    found
}

fn env_filter_description() -> String {
    let mut parts = Vec::new();
    for var in ["WGPU_BACKEND", "WGPU_ADAPTER_NAME", "WGPU_POWER_PREF"] {
        if let Ok(v) = std::env::var(var) {
            parts.push(format!("{var}={v}"));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" (with {})", parts.join(", "))
    }
}

impl Context {
    /// A context on the best adapter of the machine: discrete GPU first, then integrated, then
    /// virtual, then software (such as Mesa's lavapipe). See [`adapters`] for the environment
    /// variables it honours.
    pub fn new() -> Result<Context> {
        let adapter = adapters()
            .into_iter()
            .next()
            .ok_or_else(|| Error::NoAdapter {
                filter: env_filter_description(),
            })?;
        Context::from_adapter(adapter)
    }

    /// One context for every adapter the environment allows, best first; an error if there
    /// is none.
    pub fn all() -> Result<Vec<Context>> {
        let found = adapters();
        if found.is_empty() {
            return Err(Error::NoAdapter {
                filter: env_filter_description(),
            });
        }
        found.into_iter().map(Context::from_adapter).collect()
    }

    /// A context on the given adapter, with a device that has the adapter's own limits (not
    /// WebGPU's small defaults).
    pub fn from_adapter(adapter: wgpu::Adapter) -> Result<Context> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        // f16 inputs need SHADER_F16 and the row merge can use SUBGROUP; take them wherever the
        // adapter has them.
        let required_features =
            adapter.features() & (wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP);
        let desc = wgpu::DeviceDescriptor {
            label: Some("xent"),
            required_features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            Error::RequestDevice {
                adapter: info.name.clone(),
                reason: e.to_string(),
            }
        })?;
        let ctx = Context::from_device(device, queue)?;
        // The device is xent's own, so its lost callback is too: once it fires, every call
        // returns Error::DeviceLost at once.
        let sink = Arc::clone(&ctx.inner.lost);
        ctx.inner
            .device
            .set_device_lost_callback(move |reason, message| {
                if let Ok(mut slot) = sink.lock() {
                    *slot = Some(match message.as_str() {
                        "" => format!("{reason:?}"),
                        _ => format!("{reason:?}: {message}"),
                    });
                }
            });
        Ok(ctx)
    }

    /// A context on a device and queue your program already has. xent uses the device's
    /// limits and features as they are. It installs an uncaptured-error handler on the device
    /// (wgpu's default one panics); xent's own work is checked with error scopes. It leaves the
    /// device-lost callback to you: on a lost device calls return [`Error::Gpu`] or
    /// [`Error::Readback`] (contexts from [`Context::new`] and [`Context::from_adapter`] return
    /// [`Error::DeviceLost`]).
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Result<Context> {
        let info = device.adapter_info();
        let limits = device.limits();
        if limits.max_compute_invocations_per_workgroup < crate::plan::WORKGROUP_SIZE
            || limits.max_compute_workgroup_size_x < crate::plan::WORKGROUP_SIZE
        {
            return Err(Error::UnsupportedAdapter {
                adapter: info.name.clone(),
                reason: format!(
                    "xent needs workgroups of {} invocations; the device allows {}",
                    crate::plan::WORKGROUP_SIZE,
                    limits.max_compute_invocations_per_workgroup
                ),
            });
        }
        let uncaptured = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut slot) = sink.lock() {
                *slot = Some(e.to_string());
            }
        }));
        let tuning = Tuning::for_device(info.device_type);
        let limits = tuning.apply(&limits);
        let unprobed = Context {
            inner: Arc::new(Inner {
                device,
                queue,
                info,
                limits,
                tuning,
                device_subgroup_size: None,
                caches: Arc::default(),
                uncaptured,
                lost: Arc::default(),
            }),
        };
        let subgroup_size = crate::lanes::usable_subgroup_size(&unprobed);
        Ok(unprobed.derived(tuning, subgroup_size))
    }

    /// The launch-plan knobs in force (by default [`Tuning::for_device`] of the adapter).
    pub fn tuning(&self) -> Tuning {
        self.inner.tuning
    }

    /// A context on the same device with other launch-plan knobs: for benchmarking, and for
    /// testing every kernel path on one adapter. Compiled pipelines are shared.
    pub fn with_tuning(&self, tuning: Tuning) -> Context {
        self.derived(tuning, self.inner.device_subgroup_size)
    }

    /// This context's device and caches with another tuning and device subgroup size.
    fn derived(&self, tuning: Tuning, device_subgroup_size: Option<u32>) -> Context {
        let i = &self.inner;
        Context {
            inner: Arc::new(Inner {
                device: i.device.clone(),
                queue: i.queue.clone(),
                info: i.info.clone(),
                limits: tuning.apply(&i.device.limits()),
                tuning,
                device_subgroup_size,
                caches: Arc::clone(&i.caches),
                uncaptured: Arc::clone(&i.uncaptured),
                lost: Arc::clone(&i.lost),
            }),
        }
    }

    /// The subgroup size the row kernels merge rows with, or `None` when they use workgroup
    /// memory only: the tuning switched subgroups off ([`Tuning::subgroups`]), the device lacks
    /// `Features::SUBGROUP` (contexts from [`Context::from_device`] use the features the
    /// device was created with), its driver may pick among several subgroup sizes, or its
    /// lanes are not laid out as the kernels need. Both ways give the same results, bit for
    /// bit.
    pub fn subgroup_size(&self) -> Option<u32> {
        self.inner
            .device_subgroup_size
            .filter(|_| self.inner.tuning.subgroups)
    }

    /// The adapter's name, vendor, backend and driver.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    /// The limits xent plans its launches by: the device's, lowered by the [`Tuning`] caps if
    /// any.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// How many GPU buffers xent has created on this device. A diagnostic: a loop of
    /// same-shaped host calls, or of records of one [`crate::PreparedLoss`], creates none after
    /// its first iteration.
    pub fn buffers_created(&self) -> u64 {
        self.inner.caches.buffers_created.load(Ordering::Relaxed)
    }

    /// Bytes of GPU memory xent keeps for reuse on this device: the inputs and outputs of kept
    /// host calls and the pooled readback buffers. A diagnostic; both caches are bounded.
    pub fn cached_bytes(&self) -> u64 {
        let calls: u64 = self
            .host_calls()
            .values()
            .flatten()
            .map(crate::prepared::HostCall::bytes)
            .sum();
        let staging: u64 = self
            .inner
            .caches
            .staging
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(size, kept)| size * kept.len() as u64)
            .sum();
        calls + staging
    }

    /// Creates a buffer (and counts it).
    pub(crate) fn create_buffer(&self, desc: &wgpu::BufferDescriptor<'_>) -> wgpu::Buffer {
        self.inner
            .caches
            .buffers_created
            .fetch_add(1, Ordering::Relaxed);
        self.inner.device.create_buffer(desc)
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
                self.lost_or(Error::Gpu(format!("creating the {label} buffer: {e}")))
            })?;
            view.slice(..contents.len()).copy_from_slice(contents);
        }
        buffer.unmap();
        Ok(buffer)
    }

    /// The cache of prepared host calls.
    pub(crate) fn host_calls(
        &self,
    ) -> MutexGuard<'_, HashMap<String, Vec<crate::prepared::HostCall>>> {
        self.inner
            .caches
            .host_calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The bind-group layout of a kernel, created once.
    pub(crate) fn bind_group_layout(&self, kernel: Kernel) -> wgpu::BindGroupLayout {
        self.layouts_of(kernel).0
    }

    fn layouts_of(&self, kernel: Kernel) -> (wgpu::BindGroupLayout, wgpu::PipelineLayout) {
        let mut map = self
            .inner
            .caches
            .layouts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.entry(kernel)
            .or_insert_with(|| {
                let entries: Vec<wgpu::BindGroupLayoutEntry> = kernel
                    .bindings()
                    .iter()
                    .enumerate()
                    .map(|(i, b)| wgpu::BindGroupLayoutEntry {
                        binding: i as u32,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: match b {
                            Binding::Uniform => wgpu::BindingType::Buffer {
                                ty: wgpu::BufferBindingType::Uniform,
                                has_dynamic_offset: false,
                                min_binding_size: None,
                            },
                            Binding::Read | Binding::ReadWrite => wgpu::BindingType::Buffer {
                                ty: wgpu::BufferBindingType::Storage {
                                    read_only: *b == Binding::Read,
                                },
                                has_dynamic_offset: false,
                                min_binding_size: None,
                            },
                        },
                        count: None,
                    })
                    .collect();
                let bgl =
                    self.inner
                        .device
                        .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                            label: Some(kernel.file()),
                            entries: &entries,
                        });
                let pl =
                    self.inner
                        .device
                        .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                            label: Some(kernel.file()),
                            bind_group_layouts: &[Some(&bgl)],
                            immediate_size: 0,
                        });
                (bgl, pl)
            })
            .clone()
    }

    /// The pipeline for a kernel specialised by override constants, compiled once and cached.
    pub(crate) fn pipeline(&self, key: &PipelineKey) -> Result<wgpu::ComputePipeline> {
        if let Some(p) = self
            .inner
            .caches
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
        {
            return Ok(p.clone());
        }
        let (_, layout) = self.layouts_of(key.kernel);
        let device = &self.inner.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(key.kernel.file()),
            source: wgpu::ShaderSource::Wgsl(key.source().into()),
        });
        let constants: Vec<(&str, f64)> = key
            .constants
            .iter()
            .map(|(name, value)| (*name, f64::from(*value)))
            .collect();
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(key.kernel.file()),
            layout: Some(&layout),
            module: &module,
            entry_point: Some(key.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!(
                "compiling {} with {:?}: {e}",
                key.kernel.file(),
                key.constants
            )));
        }
        self.inner
            .caches
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), pipeline.clone());
        Ok(pipeline)
    }

    /// Runs `work` inside validation and out-of-memory error scopes and turns whatever they
    /// catch into a typed error.
    pub(crate) fn checked<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        self.alive()?;
        self.scoped(work).map_err(|e| self.lost_or(e))
    }

    /// An error if the device is known to be lost.
    fn alive(&self) -> Result<()> {
        match self
            .inner
            .lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(reason) => Err(Error::DeviceLost(reason.clone())),
            None => Ok(()),
        }
    }

    /// `error`, or [`Error::DeviceLost`] when the device is known to be lost (the cause of
    /// most errors then).
    fn lost_or(&self, error: Error) -> Error {
        self.alive().err().unwrap_or(error)
    }

    fn scoped<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        let device = &self.inner.device;
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let result = work();
        let validation_error = pollster::block_on(validation.pop());
        let oom_error = pollster::block_on(oom.pop());
        if let Some(e) = oom_error {
            return Err(Error::OutOfMemory(e.to_string()));
        }
        if let Some(e) = validation_error {
            return Err(Error::Gpu(e.to_string()));
        }
        if let Some(e) = self
            .inner
            .uncaptured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(Error::Gpu(e));
        }
        result
    }

    /// Submits a command buffer and waits (with a timeout) until the GPU has finished it.
    pub(crate) fn submit_and_wait(&self, commands: wgpu::CommandBuffer) -> Result<()> {
        let index = self.inner.queue.submit([commands]);
        self.wait(Some(index))
    }

    fn wait(&self, index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        self.inner
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: index,
                timeout: Some(WAIT_TIMEOUT),
            })
            .map(|_| ())
            .map_err(|e| self.lost_or(Error::Gpu(format!("waiting for the GPU: {e}"))))
    }

    /// Copies `sources` (`(buffer, f32 count)`, each from offset 0) back to the host: one
    /// submission, one wait and one map for everything.
    pub(crate) fn read(&self, sources: &[(&wgpu::Buffer, usize)]) -> Result<Vec<Vec<f32>>> {
        let encoder = self
            .inner
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("xent readback"),
            });
        self.submit_and_read(encoder, sources)
    }

    /// [`Context::read`] without blocking: the future resolves once the GPU has finished the
    /// work submitted before the call.
    pub(crate) async fn read_async(
        &self,
        sources: &[(&wgpu::Buffer, usize)],
    ) -> Result<Vec<Vec<f32>>> {
        self.alive()?;
        let mut encoder =
            self.inner
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("xent readback"),
                });
        let Some(staging) = self.copy_to_staging(&mut encoder, sources) else {
            self.inner.queue.submit([encoder.finish()]);
            return Ok(sources.iter().map(|_| Vec::new()).collect());
        };
        self.inner.queue.submit([encoder.finish()]);
        let mapped = MapFuture::new(&self.inner.device, &staging);
        mapped
            .await
            .map_err(|e| self.lost_or(Error::Readback(e.to_string())))?;
        self.unpack_staging(staging, sources)
    }

    /// Appends copies of `sources` (`(buffer, f32 count)`, each from offset 0) to `encoder`,
    /// submits it, and reads them back: one submission, one wait and one map for everything.
    pub(crate) fn submit_and_read(
        &self,
        mut encoder: wgpu::CommandEncoder,
        sources: &[(&wgpu::Buffer, usize)],
    ) -> Result<Vec<Vec<f32>>> {
        self.alive()?;
        let Some(staging) = self.copy_to_staging(&mut encoder, sources) else {
            self.submit_and_wait(encoder.finish())?;
            return Ok(sources.iter().map(|_| Vec::new()).collect());
        };
        self.inner.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        // The callback runs inside some thread's poll; when several threads share the device
        // another thread's poll may be the one running it, so poll until it has arrived.
        let start = std::time::Instant::now();
        loop {
            self.wait(None)?;
            match rx.try_recv() {
                Ok(Ok(())) => break,
                Ok(Err(e)) => return Err(self.lost_or(Error::Readback(e.to_string()))),
                Err(_) if start.elapsed() > WAIT_TIMEOUT => {
                    return Err(Error::Readback(format!(
                        "the buffer was not mapped within {WAIT_TIMEOUT:?}"
                    )))
                }
                Err(_) => std::thread::yield_now(),
            }
        }
        self.unpack_staging(staging, sources)
    }

    /// Records copies of `sources` one after another into a readback buffer (pooled by size);
    /// `None` when there is nothing to copy.
    fn copy_to_staging(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        sources: &[(&wgpu::Buffer, usize)],
    ) -> Option<wgpu::Buffer> {
        let total: usize = sources.iter().map(|(_, len)| len).sum();
        if total == 0 {
            return None;
        }
        let size = (total * 4) as u64;
        let reused = self
            .inner
            .caches
            .staging
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&size)
            .and_then(Vec::pop);
        let staging = reused.unwrap_or_else(|| {
            self.create_buffer(&wgpu::BufferDescriptor {
                label: Some("xent readback"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        let mut offset = 0u64;
        for (source, len) in sources {
            let bytes = (*len * 4) as u64;
            if bytes > 0 {
                encoder.copy_buffer_to_buffer(source, 0, &staging, offset, bytes);
            }
            offset += bytes;
        }
        Some(staging)
    }

    /// Splits a mapped readback buffer into the values of each source, unmaps it and returns
    /// it to the pool.
    fn unpack_staging(
        &self,
        staging: wgpu::Buffer,
        sources: &[(&wgpu::Buffer, usize)],
    ) -> Result<Vec<Vec<f32>>> {
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| Error::Readback(e.to_string()))?;
        let all: &[f32] = bytemuck::cast_slice(&view);
        let mut out = Vec::with_capacity(sources.len());
        let mut at = 0;
        for (_, len) in sources {
            out.push(all[at..at + len].to_vec());
            at += len;
        }
        drop(view);
        staging.unmap();
        let mut pool = self
            .inner
            .caches
            .staging
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let kept = pool.entry(staging.size()).or_default();
        if kept.len() < STAGING_KEPT_PER_SIZE {
            kept.push(staging);
        }
        Ok(out)
    }
}

/// The state a buffer mapping reports to the future waiting on it.
#[derive(Default)]
struct MapState {
    result: Option<std::result::Result<(), wgpu::BufferAsyncError>>,
    waker: Option<std::task::Waker>,
}

/// A future that resolves when a `map_async` of a whole buffer completes.
struct MapFuture {
    device: wgpu::Device,
    state: Arc<Mutex<MapState>>,
}

impl MapFuture {
    fn new(device: &wgpu::Device, buffer: &wgpu::Buffer) -> MapFuture {
        let state = Arc::new(Mutex::new(MapState::default()));
        let sink = Arc::clone(&state);
        buffer.map_async(wgpu::MapMode::Read, .., move |r| {
            let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
            s.result = Some(r);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        });
        MapFuture {
            device: device.clone(),
            state,
        }
    }
}

impl std::future::Future for MapFuture {
    type Output = std::result::Result<(), wgpu::BufferAsyncError>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        // Natively, mapping callbacks run inside device polls; this one does not wait.
        let _ = self.device.poll(wgpu::PollType::Poll);
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = s.result.take() {
            return std::task::Poll::Ready(r);
        }
        s.waker = Some(cx.waker().clone());
        // Natively nothing else wakes us: ask to be polled again.
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}
