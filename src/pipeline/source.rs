//! Audio sources behind one trait: the microphone, a file played at real-time pace or as
//! fast as possible, and a synthetic tone/noise/silence generator. Each pushes mono f32
//! into the ring buffer it is given; the rest of the pipeline cannot tell them apart.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use ringbuf::traits::{Observer, Producer};
use ringbuf::HeapProd;

use crate::audio::capture::open_microphone;
use crate::Result;

/// What a running source reports to the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceEvent {
    /// The stream failed (device unplugged, format change); the pipeline reopens it.
    Error(String),
    /// A finite source has pushed its last sample.
    Finished,
}

/// Keeps a started source alive; dropping it stops the source.
pub trait Running: Send {}
impl<T: Send> Running for T {}

/// A producer of mono audio.
pub trait Source: Send {
    /// Human-readable name (device or file).
    fn describe(&self) -> String;
    /// Sample rate of what `start` will push (known before starting for files; the
    /// microphone's is read when it opens, see [`Source::start`]).
    fn sample_rate(&self) -> u32;
    /// Whether the source delivers audio at real-time pace whether or not it is read (a
    /// microphone, a file played at its pace), so that a reader falling behind loses it;
    /// a source that waits for room in the ring says false.
    fn realtime(&self) -> bool {
        true
    }
    /// Starts pushing into `prod`. Overflows are counted in `dropped`; errors and the
    /// end of a finite source are sent on `events`. Returns the keep-alive handle and
    /// the actual sample rate.
    fn start(
        &mut self,
        prod: HeapProd<f32>,
        dropped: Arc<AtomicU64>,
        events: Sender<SourceEvent>,
    ) -> Result<(Box<dyn Running>, u32)>;
}

/// The default or a named input device through cpal.
pub struct MicSource {
    pub device: Option<String>,
    rate: u32,
    name: String,
}

impl MicSource {
    pub fn new(device: Option<String>) -> Self {
        let name = device
            .clone()
            .unwrap_or_else(|| "default input device".into());
        Self {
            device,
            rate: 0,
            name,
        }
    }
}

impl Source for MicSource {
    fn describe(&self) -> String {
        self.name.clone()
    }
    fn sample_rate(&self) -> u32 {
        self.rate
    }
    fn start(
        &mut self,
        prod: HeapProd<f32>,
        dropped: Arc<AtomicU64>,
        events: Sender<SourceEvent>,
    ) -> Result<(Box<dyn Running>, u32)> {
        let (etx, erx) = crossbeam_channel::bounded::<String>(8);
        // Forward stream errors as pipeline events (the callback itself only try_sends).
        std::thread::spawn(move || {
            for e in erx {
                if events.send(SourceEvent::Error(e)).is_err() {
                    break;
                }
            }
        });
        let stream = open_microphone(self.device.as_deref(), prod, dropped, etx)?;
        self.rate = stream.sample_rate;
        self.name = format!(
            "{} ({} Hz, {} ch)",
            stream.device, stream.sample_rate, stream.channels
        );
        let rate = stream.sample_rate;
        Ok((Box::new(SendStream(stream)), rate))
    }
}

/// cpal streams are not `Send` on every platform; the pipeline only holds and drops it
/// on the thread that created it.
struct SendStream(#[allow(dead_code)] crate::audio::capture::MicStream);
// SAFETY: the stream is created, held and dropped by the pipeline's supervisor thread and
// never used from another thread; the handle exists only to keep capture running.
#[allow(unsafe_code)]
unsafe impl Send for SendStream {}

/// Samples already in memory (a decoded file or a generated signal), pushed in 10 ms
/// chunks at real-time pace or as fast as the ring buffer drains.
pub struct BufferSource {
    name: String,
    samples: Arc<Vec<f32>>,
    rate: u32,
    realtime: bool,
    /// Position to resume from after a restart.
    pos: Arc<AtomicU64>,
    /// Test hook: report an error once after this many samples.
    fail_after: Option<u64>,
}

impl BufferSource {
    pub fn new(name: impl Into<String>, samples: Vec<f32>, rate: u32, realtime: bool) -> Self {
        Self {
            name: name.into(),
            samples: Arc::new(samples),
            rate,
            realtime,
            pos: Arc::new(AtomicU64::new(0)),
            fail_after: None,
        }
    }

    /// A decoded audio file (or the built-in demo clip), named by its path.
    pub fn from_file(path: &std::path::Path, realtime: bool) -> Result<Self> {
        let clip = crate::audio::decode_input(path)?;
        Ok(Self::new(
            path.display().to_string(),
            clip.samples,
            clip.sample_rate,
            realtime,
        ))
    }

    /// A source that reports a stream error once after `n` samples, then carries on from
    /// where it stopped when restarted (simulates a device that drops out).
    pub fn failing_after(mut self, n: u64) -> Self {
        self.fail_after = Some(n);
        self
    }

    /// A synthetic signal: `kind` is `tone:HZ`, `noise:AMP` or `silence`, at 16 kHz.
    pub fn synthetic(
        kind: &str,
        seconds: f32,
        realtime: bool,
    ) -> std::result::Result<Self, String> {
        let rate = 16000u32;
        let n = (seconds * rate as f32) as usize;
        let samples: Vec<f32> = if let Some(f) = kind.strip_prefix("tone:") {
            let f: f32 = f
                .parse()
                .map_err(|_| format!("bad tone frequency in '{kind}'"))?;
            (0..n)
                .map(|i| 0.3 * (2.0 * std::f32::consts::PI * f * i as f32 / rate as f32).sin())
                .collect()
        } else if let Some(a) = kind.strip_prefix("noise:") {
            let a: f32 = a
                .parse()
                .map_err(|_| format!("bad noise amplitude in '{kind}'"))?;
            let mut s = 0x1234_5678u32;
            (0..n)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 17;
                    s ^= s << 5;
                    a * ((s as f32 / u32::MAX as f32) * 2.0 - 1.0)
                })
                .collect()
        } else if kind == "silence" {
            vec![0.0; n]
        } else {
            return Err(format!(
                "unknown synthetic source '{kind}'; use tone:HZ, noise:AMP or silence"
            ));
        };
        Ok(Self::new(
            format!("synthetic {kind}"),
            samples,
            rate,
            realtime,
        ))
    }
}

impl Source for BufferSource {
    fn realtime(&self) -> bool {
        self.realtime
    }
    fn describe(&self) -> String {
        format!(
            "{} ({} Hz, {})",
            self.name,
            self.rate,
            if self.realtime {
                "real-time"
            } else {
                "as fast as possible"
            }
        )
    }
    fn sample_rate(&self) -> u32 {
        self.rate
    }
    fn start(
        &mut self,
        mut prod: HeapProd<f32>,
        dropped: Arc<AtomicU64>,
        events: Sender<SourceEvent>,
    ) -> Result<(Box<dyn Running>, u32)> {
        let samples = self.samples.clone();
        let pos = self.pos.clone();
        let (rate, realtime) = (self.rate, self.realtime);
        let fail_after = self.fail_after.take();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let chunk = (rate as usize / 100).max(1);
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let start_pos = pos.load(Ordering::Relaxed) as usize;
            let mut i = start_pos;
            while i < samples.len() && !stop2.load(Ordering::Relaxed) {
                if fail_after.is_some_and(|f| i as u64 >= f) {
                    pos.store(i as u64, Ordering::Relaxed);
                    let _ = events.send(SourceEvent::Error("simulated device loss".into()));
                    return;
                }
                let end = (i + chunk).min(samples.len());
                if realtime {
                    let due = t0 + Duration::from_secs_f64((i - start_pos) as f64 / rate as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    // A real device would drop what the ring cannot hold: so do we, counted by the pipeline.
                    let pushed = prod.push_slice(&samples[i..end]);
                    if pushed < end - i {
                        dropped.fetch_add((end - i - pushed) as u64, Ordering::Relaxed);
                    }
                    i = end;
                } else {
                    if prod.vacant_len() < end - i {
                        std::thread::sleep(Duration::from_micros(200));
                        continue;
                    }
                    i += prod.push_slice(&samples[i..end]);
                }
                pos.store(i as u64, Ordering::Relaxed);
            }
            let _ = events.send(SourceEvent::Finished);
        });
        Ok((Box::new(StopOnDrop(stop)), rate))
    }
}

struct StopOnDrop(Arc<AtomicBool>);
impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
