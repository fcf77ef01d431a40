//! The live pipeline: source → lock-free ring → DSP thread (resample, rolling window, VAD,
//! features every hop) → bounded channel → inference thread (model, smoothing) →
//! predictions. Every queue is bounded; what is dropped is counted.

#[forbid(unsafe_code)]
pub mod export;
#[forbid(unsafe_code)]
pub mod session;
pub mod source;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError};
use ringbuf::traits::{Consumer, Observer, Split};
use ringbuf::HeapRb;

use crate::audio::StreamResampler;
use crate::dsp::Vad;
use crate::features::{FeatureExtractor, FeatureMatrix, SpeakerProfile};
use crate::labels::{argmax, N_LABELS};
use crate::model::{device_name, Classifier};
use crate::{Error, Result};

pub use source::{BufferSource, MicSource, Source, SourceEvent};

/// Window starts (in samples) of a stream of `total` samples: every `hop` while a whole
/// window fits, or one zero-padded window at 0 when the stream is shorter than a window.
/// The live pipeline and `analyze` cut windows by this one rule.
pub fn window_plan(total: usize, win: usize, hop: usize) -> Vec<usize> {
    if total < win {
        return if total > 0 { vec![0] } else { vec![] };
    }
    (0..=(total - win)).step_by(hop.max(1)).collect()
}

/// The model input of one window of samples (zero-padded to the window length), and
/// whether it holds speech. For a speaker-normalised model a speech window is first added
/// to `speaker`, the profile of everything heard so far, and normalised by it.
pub fn window_input(
    ex: &FeatureExtractor,
    what: &str,
    window: &[f32],
    speaker: &mut SpeakerProfile,
) -> Result<(FeatureMatrix, bool)> {
    window_input_learning(ex, what, window, speaker, true)
}

/// As [`window_input`]; `learn` false leaves the profile as it is (a profile already
/// learnt from all of a speaker's recordings: `analyze --same-speaker`).
pub fn window_input_learning(
    ex: &FeatureExtractor,
    what: &str,
    window: &[f32],
    speaker: &mut SpeakerProfile,
    learn: bool,
) -> Result<(FeatureMatrix, bool)> {
    let speech = Vad::default().is_speech(window, ex.spec().sample_rate);
    let db = ex.window_db_mel(what, window)?;
    let llds = ex.llds(&db, ex.window_voice(window).as_ref());
    if learn && speech && ex.spec().wants_profile() && ex.profile_admits(llds.as_ref()) {
        speaker.add_window(&db, llds.as_ref());
    }
    Ok((ex.finish_with_llds(db, llds, Some(speaker)), speech))
}

/// Adds one window of samples to `enrolment` when it holds speech (the voice activity
/// detector's call, as live); says whether it did. Every speech window joins, whatever
/// the model's profile admits: an enrolment is what the speaker recorded for it.
pub fn enrol_window(
    ex: &FeatureExtractor,
    what: &str,
    window: &[f32],
    enrolment: &mut SpeakerProfile,
) -> Result<bool> {
    let speech = Vad::default().is_speech(window, ex.spec().sample_rate);
    if speech {
        let db = ex.window_db_mel(what, window)?;
        let llds = ex.llds(&db, ex.window_voice(window).as_ref());
        enrolment.add_window(&db, llds.as_ref());
    }
    Ok(speech)
}

/// Pipeline settings.
#[derive(Debug, Clone, Copy)]
pub struct PipelineConfig {
    /// Seconds between windows.
    pub hop_seconds: f32,
    /// Weight of the newest window in the exponential moving average (1 = no smoothing).
    pub ema_alpha: f32,
    /// Feature windows that may wait for inference before the oldest is dropped.
    pub queue_windows: usize,
    /// Ring buffer capacity in seconds of source audio.
    pub ring_seconds: f32,
    /// When inference falls behind, wait for it instead of dropping windows. For sources
    /// that can wait (a file read as fast as possible): every window is processed. A
    /// real-time source (microphone, file at real-time pace) must not wait, or audio would
    /// back up; there the oldest waiting window is dropped and counted.
    pub backpressure: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            hop_seconds: 0.5,
            ema_alpha: 0.5,
            queue_windows: 4,
            ring_seconds: 2.0,
            backpressure: false,
        }
    }
}

/// Counters shown in the status bar and in headless output.
#[derive(Debug, Default)]
pub struct Counters {
    /// Source samples the ring buffer could not take.
    pub dropped_samples: Arc<AtomicU64>,
    /// Feature windows dropped because inference fell behind.
    pub dropped_windows: AtomicU64,
    pub windows: AtomicU64,
    /// Times the source failed and was reopened.
    pub reopens: AtomicU64,
    /// Milliseconds without audio between source failures and their reopening, in all.
    pub gap_ms: AtomicU64,
    /// Times inference failed on a GPU and the model moved to the CPU (at most once).
    pub compute_fallbacks: AtomicU64,
}

/// A window of features on its way to inference.
pub struct FeatureWindow {
    pub index: u64,
    pub t_start: f64,
    pub t_end: f64,
    pub input: FeatureMatrix,
    pub speech: bool,
    /// Seconds of speech in the session's speaker profile (speaker-normalised models).
    pub profile_seconds: Option<f32>,
    /// When the window's last sample left the ring buffer.
    pub last_sample_at: Instant,
}

/// One classified window.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub index: u64,
    /// Seconds into the stream of the window's first and last sample.
    pub window_start: f64,
    pub window_end: f64,
    /// This window's calibrated probabilities.
    pub raw: [f32; N_LABELS],
    /// Smoothed over recent speech windows (exponential moving average).
    pub probs: [f32; N_LABELS],
    /// Top label of the smoothed probabilities, `None` when there is no speech.
    pub top: Option<usize>,
    pub speech: bool,
    /// Seconds of speech the speaker profile has been built from (speaker-normalised
    /// models; `None` for others).
    pub profile_seconds: Option<f32>,
    pub last_sample_at: Instant,
    pub ready_at: Instant,
}

impl Prediction {
    /// Time from the window's last sample leaving the ring to the prediction, in ms.
    pub fn latency_ms(&self) -> f64 {
        self.ready_at
            .duration_since(self.last_sample_at)
            .as_secs_f64()
            * 1000.0
    }
}

/// A running pipeline: read predictions from `predictions`; `stop` ends it.
pub struct Pipeline {
    pub predictions: Receiver<Prediction>,
    pub counters: Arc<Counters>,
    pub source_name: String,
    pub source_rate: u32,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Set when the source has finished and everything has been processed.
    pub finished: Arc<AtomicBool>,
    /// The device the model started on (`CPU`, `CUDA:0`); see [`compute`](Self::compute).
    started_on: String,
}

impl Pipeline {
    /// Starts `source` into `clf`. Fails at once if the source cannot start (e.g. no microphone).
    pub fn start(
        source: Box<dyn Source>,
        clf: Classifier,
        cfg: PipelineConfig,
    ) -> Result<Pipeline> {
        Self::start_with_tap(source, clf, cfg, None)
    }

    /// As [`start`](Self::start), also sending every chunk of source audio (at the
    /// source's rate) to `tap` (e.g. a session log); when the tap falls behind, chunks
    /// are dropped there and counted in `dropped_samples`.
    pub fn start_with_tap(
        mut source: Box<dyn Source>,
        clf: Classifier,
        cfg: PipelineConfig,
        tap: Option<Sender<Vec<f32>>>,
    ) -> Result<Pipeline> {
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(AtomicBool::new(false));
        let rate_guess = source.sample_rate().max(8000);
        let cap = ((cfg.ring_seconds * 48000f32.max(rate_guess as f32)) as usize).max(4096);
        let Started {
            handle,
            rate,
            cons,
            events: ev_rx,
        } = start_source(source.as_mut(), cap, &counters.dropped_samples)?;
        let source_name = source.describe();
        let ex = FeatureExtractor::new(&clf.card.features)?;
        // An enrolment model reads every window against the enrolment, which the session
        // never changes (its extractor admits no session window to it).
        let enrolment = clf
            .enrolment
            .clone()
            .filter(|_| clf.card.features.enrolment())
            .unwrap_or_default();
        let (win_tx, win_rx) = bounded::<FeatureWindow>(cfg.queue_windows.max(1));
        let (pred_tx, pred_rx) = bounded::<Prediction>(1024);

        let dsp = {
            let (counters, stop, win_rx_drop) = (counters.clone(), stop.clone(), win_rx.clone());
            std::thread::Builder::new()
                .name("emoscope-dsp".into())
                .spawn(move || {
                    let mut st = DspState {
                        source,
                        handle: Some(handle),
                        cons,
                        rate,
                        cap,
                        ev_rx,
                        ex,
                        cfg,
                        counters: counters.clone(),
                        tap,
                        speaker: enrolment.profile,
                        profile_seconds: enrolment.seconds,
                        profile_end: 0,
                        warned_behind: false,
                    };
                    if let Err(e) = st.run(&stop, &win_tx, &win_rx_drop) {
                        eprintln!("error: live pipeline stopped: {e}");
                    }
                })
                .map_err(|e| Error::Device(format!("cannot start DSP thread: {e}")))?
        };
        let started_on = device_name(&clf.device);
        let inf = {
            let finished = finished.clone();
            let counters = counters.clone();
            std::thread::Builder::new()
                .name("emoscope-inference".into())
                .spawn(move || {
                    run_inference(clf, win_rx, pred_tx, cfg.ema_alpha, &counters);
                    finished.store(true, Ordering::Release);
                })
                .map_err(|e| Error::Device(format!("cannot start inference thread: {e}")))?
        };
        Ok(Pipeline {
            predictions: pred_rx,
            counters,
            source_name,
            source_rate: rate,
            stop,
            threads: vec![dsp, inf],
            finished,
            started_on,
        })
    }

    /// Where the model runs now, for the status bar, the headless summary and the session
    /// report: the device it started on, or `CPU (after CUDA:0 failed)` once inference
    /// failed there and moved to the CPU (it moves at most once).
    pub fn compute(&self) -> String {
        if self.counters.compute_fallbacks.load(Ordering::Relaxed) > 0 {
            format!("CPU (after {} failed)", self.started_on)
        } else {
            self.started_on.clone()
        }
    }

    /// Stops the source and waits for the threads.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        // Nobody reads predictions any more: dropping the receiver unblocks an inference
        // thread waiting to hand one over, and through it a DSP thread waiting for inference.
        drop(std::mem::replace(
            &mut self.predictions,
            crossbeam_channel::never(),
        ));
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A source started on a new ring buffer of `cap` samples and its own event channel.
struct Started {
    handle: Box<dyn source::Running>,
    rate: u32,
    cons: ringbuf::HeapCons<f32>,
    /// Events of this start only: errors a failed earlier stream kept reporting went to its
    /// own channel, so they cannot trigger more reopens.
    events: Receiver<SourceEvent>,
}

fn start_source(source: &mut dyn Source, cap: usize, dropped: &Arc<AtomicU64>) -> Result<Started> {
    let (prod, cons) = HeapRb::<f32>::new(cap).split();
    let (ev_tx, events) = bounded::<SourceEvent>(16);
    let (handle, rate) = source.start(prod, dropped.clone(), ev_tx)?;
    Ok(Started {
        handle,
        rate,
        cons,
        events,
    })
}

struct DspState {
    source: Box<dyn Source>,
    handle: Option<Box<dyn source::Running>>,
    cons: ringbuf::HeapCons<f32>,
    rate: u32,
    cap: usize,
    /// Events of the running source only (see [`Started::events`]).
    ev_rx: Receiver<SourceEvent>,
    ex: FeatureExtractor,
    cfg: PipelineConfig,
    counters: Arc<Counters>,
    tap: Option<Sender<Vec<f32>>>,
    /// The session's speaker profile (speaker-normalised models).
    speaker: SpeakerProfile,
    /// Seconds of audio covered by the speech windows added to it, and where the last
    /// of them ended (samples at the model rate).
    profile_seconds: f64,
    profile_end: usize,
    /// Whether the warning that windows are skipped was given.
    warned_behind: bool,
}

/// Seconds of source audio waiting in the ring at which the DSP thread skips windows.
const BEHIND_SECONDS: f64 = 0.5;

impl DspState {
    fn run(
        &mut self,
        stop: &AtomicBool,
        win_tx: &Sender<FeatureWindow>,
        win_rx_drop: &Receiver<FeatureWindow>,
    ) -> Result<()> {
        let spec = self.ex.spec().clone();
        let sr = spec.sample_rate;
        let win = spec.window_samples();
        let hop = ((self.cfg.hop_seconds as f64 * sr as f64).round() as usize).max(1);
        let mut resampler = if self.rate != sr {
            Some(StreamResampler::new(self.rate, sr)?)
        } else {
            None
        };
        let mut skip = resampler.as_ref().map_or(0, |r| r.delay());
        let mut buf = vec![0.0f32; 4096];
        let mut resampled = Vec::with_capacity(8192);
        // Samples at the model rate, `base` = stream index of buf_model[0].
        let mut stream: Vec<f32> = Vec::with_capacity(win + hop * 4);
        let mut base = 0usize;
        let mut total = 0usize;
        let mut next_start = 0usize;
        let mut index = 0u64;
        let mut source_done = false;
        loop {
            let n = self.cons.pop_slice(&mut buf);
            if n > 0 {
                let now = Instant::now();
                if let Some(tap) = &self.tap {
                    if tap.try_send(buf[..n].to_vec()).is_err() {
                        self.counters
                            .dropped_samples
                            .fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
                let chunk: &[f32] = match resampler.as_mut() {
                    Some(r) => {
                        resampled.clear();
                        r.push(&buf[..n], &mut resampled)?;
                        let k = skip.min(resampled.len());
                        skip -= k;
                        &resampled[k..]
                    }
                    None => &buf[..n],
                };
                stream.extend_from_slice(chunk);
                total += chunk.len();
                while next_start + win <= total {
                    let w = &stream[next_start - base..next_start - base + win];
                    // Audio waiting in the ring beyond BEHIND_SECONDS means this thread
                    // cannot compute every window at real-time pace (a heavy model on a
                    // slow machine): the window is skipped and counted, so the ring never
                    // overflows and no audio is lost.
                    let waiting = self.cons.occupied_len() as f64 / self.rate.max(1) as f64;
                    if !self.cfg.backpressure && self.source.realtime() && waiting > BEHIND_SECONDS
                    {
                        self.counters
                            .dropped_windows
                            .fetch_add(1, Ordering::Relaxed);
                        if !std::mem::replace(&mut self.warned_behind, true) {
                            eprintln!("warning: this machine cannot compute the model's features for every window at real-time pace ({waiting:.1} s of audio waiting); windows are skipped and counted, audio is not lost");
                        }
                    } else {
                        self.emit(index, next_start, w, now, win_tx, win_rx_drop)?;
                    }
                    index += 1;
                    next_start += hop;
                }
                // Keep only what later windows need.
                let keep_from = next_start.min(total);
                if keep_from > base {
                    stream.drain(..keep_from - base);
                    base = keep_from;
                }
                continue;
            }
            if source_done || stop.load(Ordering::Acquire) {
                break;
            }
            match self.ev_rx.try_recv() {
                Ok(SourceEvent::Finished) => {
                    source_done = true; // drain what is left in the ring, then stop
                    continue;
                }
                Ok(SourceEvent::Error(e)) => {
                    eprintln!("warning: audio source failed ({e}); reopening");
                    self.reopen()?;
                    continue;
                }
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => {}
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if index == 0 && total > 0 {
            // The whole stream was shorter than a window: one padded window.
            let w = stream[..].to_vec();
            self.emit(0, 0, &w, Instant::now(), win_tx, win_rx_drop)?;
        }
        self.handle = None;
        Ok(())
    }

    /// Drops the failed source and starts it again until it opens at the same rate (20
    /// tries, backing off), counting the gap.
    fn reopen(&mut self) -> Result<()> {
        let failed_at = Instant::now();
        self.handle = None;
        let mut last = None;
        for attempt in 0..20 {
            match start_source(
                self.source.as_mut(),
                self.cap,
                &self.counters.dropped_samples,
            ) {
                Ok(Started {
                    handle: h,
                    rate,
                    cons,
                    events: ev_rx,
                }) => {
                    if rate != self.rate {
                        return Err(Error::Device(format!(
                            "{} reopened at {rate} Hz instead of {} Hz",
                            self.source.describe(),
                            self.rate
                        )));
                    }
                    self.handle = Some(h);
                    self.cons = cons;
                    self.ev_rx = ev_rx;
                    let gap = failed_at.elapsed();
                    self.counters.reopens.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .gap_ms
                        .fetch_add(gap.as_millis() as u64, Ordering::Relaxed);
                    eprintln!(
                        "warning: {} reopened; {:.1} s of audio are missing (window times count the audio heard, not the gap)",
                        self.source.describe(),
                        gap.as_secs_f64()
                    );
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100 * (attempt + 1)));
        }
        Err(last.unwrap_or_else(|| Error::Device("could not reopen the audio source".into())))
    }

    fn emit(
        &mut self,
        index: u64,
        start: usize,
        w: &[f32],
        at: Instant,
        tx: &Sender<FeatureWindow>,
        rx_drop: &Receiver<FeatureWindow>,
    ) -> Result<()> {
        let sr = self.ex.spec().sample_rate as f64;
        let before = self.speaker.frames();
        let (input, speech) = window_input(&self.ex, "live window", w, &mut self.speaker)?;
        let end = start + self.ex.spec().window_samples();
        let speaker_norm = self.ex.spec().wants_profile();
        // The profile counts the speech it learnt from (a calm reference: the calm speech).
        if self.speaker.frames() != before {
            self.profile_seconds += (end - start.max(self.profile_end).min(end)) as f64 / sr;
            self.profile_end = end;
        }
        let mut fw = FeatureWindow {
            index,
            t_start: start as f64 / sr,
            t_end: end as f64 / sr,
            input,
            speech,
            profile_seconds: speaker_norm.then_some(self.profile_seconds as f32),
            last_sample_at: at,
        };
        self.counters.windows.fetch_add(1, Ordering::Relaxed);
        if self.cfg.backpressure {
            // A disconnected receiver means inference has stopped: nothing to wait for.
            let _ = tx.send(fw);
            return Ok(());
        }
        loop {
            match tx.try_send(fw) {
                Ok(()) => return Ok(()),
                Err(crossbeam_channel::TrySendError::Full(back)) => {
                    // Inference is behind: drop the oldest waiting window, count it.
                    if rx_drop.try_recv().is_ok() {
                        self.counters
                            .dropped_windows
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    fw = back;
                }
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => return Ok(()),
            }
        }
    }
}

/// One window's raw probabilities. When inference fails on a GPU (out of memory, a lost
/// driver) or an injected failure says so, the model moves to the CPU, the window is
/// classified there and the stream goes on, counted in `compute_fallbacks`. A failure on
/// the CPU is returned.
fn classify_or_fall_back(
    clf: &mut Classifier,
    input: &FeatureMatrix,
    injected: bool,
    counters: &Counters,
) -> Result<[f32; N_LABELS]> {
    let first = if injected {
        Err(Error::Model(format!(
            "injected failure (EMOSCOPE_FAIL_COMPUTE_AFTER) on {}",
            device_name(&clf.device)
        )))
    } else {
        clf.probs(std::slice::from_ref(input)).map(|p| p[0])
    };
    match first {
        Err(e) if injected || !clf.device.is_cpu() => {
            let from = device_name(&clf.device);
            eprintln!(
                "warning: inference on {from} failed: {e}; the model moves to the CPU and the stream goes on"
            );
            *clf = clf.to_device(&candle_core::Device::Cpu)?;
            counters.compute_fallbacks.fetch_add(1, Ordering::Relaxed);
            Ok(clf.probs(std::slice::from_ref(input))?[0])
        }
        other => other,
    }
}

fn run_inference(
    mut clf: Classifier,
    rx: Receiver<FeatureWindow>,
    tx: Sender<Prediction>,
    alpha: f32,
    counters: &Counters,
) {
    let mut ema: Option<[f32; N_LABELS]> = None;
    let mut fail_after = crate::model::compute::injected_failure_after();
    for (n, w) in rx.into_iter().enumerate() {
        let injected = fail_after == Some(n as u64);
        if injected {
            fail_after = None;
        }
        let raw = match classify_or_fall_back(&mut clf, &w.input, injected, counters) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: inference failed: {e}");
                break;
            }
        };
        if w.speech {
            ema = Some(match ema {
                None => raw,
                Some(prev) => std::array::from_fn(|i| alpha * raw[i] + (1.0 - alpha) * prev[i]),
            });
        }
        let probs = ema.unwrap_or(raw);
        let p = Prediction {
            index: w.index,
            window_start: w.t_start,
            window_end: w.t_end,
            raw,
            probs,
            top: w.speech.then(|| argmax(&probs)),
            speech: w.speech,
            profile_seconds: w.profile_seconds,
            last_sample_at: w.last_sample_at,
            ready_at: Instant::now(),
        };
        if tx.send(p).is_err() {
            break;
        }
    }
}
