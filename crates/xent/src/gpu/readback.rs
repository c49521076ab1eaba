//! Reading results back, written once: copies into a pooled readback buffer recorded after
//! the work, one submission, then one asynchronous map. Nothing here blocks.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use crate::error::{Error, Operation, Result};
use crate::gpu::device::{lock, Gpu};

/// A readback in flight: the copies are submitted and the map requested.
pub(crate) struct Readback {
    gpu: Gpu,
    /// The readback buffer and its map, or `None` when there was nothing to copy.
    staging: Option<(
        wgpu::Buffer,
        Callback<std::result::Result<(), wgpu::BufferAsyncError>>,
    )>,
    lens: Vec<usize>,
}

/// What a readback copies: a buffer, the byte offset of the values, and their 4-byte words.
pub(crate) type Source<'a> = (&'a wgpu::Buffer, u64, usize);

impl Gpu {
    /// Appends copies of `sources` (`(buffer, byte offset, 4-byte word count)`) to
    /// `encoder`, submits it and requests the map: one submission and one map for everything.
    /// Call it inside [`Gpu::checked`]; await [`Readback::values`] outside.
    pub(crate) fn submit_and_read(
        &self,
        mut encoder: wgpu::CommandEncoder,
        sources: &[Source<'_>],
    ) -> Readback {
        let lens: Vec<usize> = sources.iter().map(|(_, _, len)| *len).collect();
        let total: usize = lens.iter().sum();
        if total == 0 {
            self.queue().submit([encoder.finish()]);
            return Readback {
                gpu: self.clone(),
                staging: None,
                lens,
            };
        }
        let size = (total * 4) as u64;
        let reused = lock(self.staging()).take(&size, |_| true);
        let staging = reused.unwrap_or_else(|| {
            self.create_buffer(&wgpu::BufferDescriptor {
                label: Some("xent readback"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        let mut offset = 0u64;
        for (source, at, len) in sources {
            let bytes = (*len * 4) as u64;
            if bytes > 0 {
                encoder.copy_buffer_to_buffer(source, *at, &staging, offset, bytes);
            }
            offset += bytes;
        }
        self.queue().submit([encoder.finish()]);
        let (done, mapped) = callback(self.device());
        staging.map_async(wgpu::MapMode::Read, .., done);
        Readback {
            gpu: self.clone(),
            staging: Some((staging, mapped)),
            lens,
        }
    }

    /// [`Gpu::submit_and_read`] of buffers written by work submitted before.
    pub(crate) fn read(&self, sources: &[Source<'_>]) -> Readback {
        let encoder = self
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("xent readback"),
            });
        self.submit_and_read(encoder, sources)
    }

    /// Resolves once the GPU has finished the work submitted so far.
    pub(crate) fn work_done(&self) -> impl Future<Output = Result<()>> {
        let (done, finished) = callback(self.device());
        self.queue().on_submitted_work_done(move || done(()));
        let gpu = self.clone();
        async move {
            finished.await.map_err(|e| {
                gpu.lost_or(Error::Gpu {
                    operation: Operation::Run,
                    kernel: None,
                    message: format!("waiting for the GPU: {e}"),
                })
            })?;
            gpu.alive()
        }
    }
}

impl Readback {
    /// The values of each source, once the GPU has finished and the map is done; the readback
    /// buffer goes back to the pool.
    pub(crate) async fn values(self) -> Result<Vec<Vec<f32>>> {
        let Some((staging, mapped)) = self.staging else {
            return Ok(self.lens.iter().map(|_| Vec::new()).collect());
        };
        mapped
            .await
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|e| self.gpu.lost_or(Error::Readback(e)))?;
        let out = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| Error::Readback(e.to_string()))?;
            let all: &[f32] = bytemuck::cast_slice(&view);
            let mut out = Vec::with_capacity(self.lens.len());
            let mut at = 0;
            for len in &self.lens {
                out.push(all[at..at + len].to_vec());
                at += len;
            }
            out
        };
        staging.unmap();
        let bytes = staging.size();
        lock(self.gpu.staging()).put(bytes, staging, bytes);
        Ok(out)
    }
}

/// What a wgpu callback reports to the future waiting on it.
struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

/// A future that resolves to the value a wgpu callback delivers.
struct Callback<T> {
    device: wgpu::Device,
    slot: Arc<Mutex<Slot<T>>>,
}

/// A callback for wgpu and the future that resolves when it runs.
fn callback<T: Send + 'static>(device: &wgpu::Device) -> (impl FnOnce(T) + Send, Callback<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
    }));
    let sink = Arc::clone(&slot);
    let deliver = move |value: T| {
        let mut s = lock(&sink);
        s.value = Some(value);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    };
    let future = Callback {
        device: device.clone(),
        slot,
    };
    (deliver, future)
}

impl<T> Future for Callback<T> {
    /// The callback's value, or why the device could not be polled (a lost device).
    type Output = std::result::Result<T, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        // Natively, callbacks run inside device polls: this one does not wait. On the web the
        // browser runs them.
        if let Err(e) = self.device.poll(wgpu::PollType::Poll) {
            return Poll::Ready(Err(e.to_string()));
        }
        let mut s = lock(&self.slot);
        if let Some(v) = s.value.take() {
            return Poll::Ready(Ok(v));
        }
        s.waker = Some(cx.waker().clone());
        // Natively nothing else polls the device for an executor that is not xent's blocking
        // edge: ask to be polled again.
        #[cfg(not(target_arch = "wasm32"))]
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
