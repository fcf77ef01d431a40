//! The live commands: `devices` and `monitor --headless` (JSONL per window, summary line).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::audio::capture::list_input_devices;
use crate::labels::LABELS;
use crate::pipeline::session::SessionLog;
use crate::pipeline::{BufferSource, MicSource, Pipeline, PipelineConfig, Prediction, Source};

pub fn devices() -> Result<()> {
    let list = list_input_devices()?;
    if list.is_empty() {
        println!("no input devices found; plug in a microphone, or use `emoscope monitor --headless --input FILE`");
    }
    for d in list {
        println!(
            "{}{}  [{}]",
            if d.is_default { "* " } else { "  " },
            d.name,
            d.default_config
        );
    }
    Ok(())
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    emoscope monitor --headless                         default microphone, JSON lines on stdout\n  \
    emoscope monitor --headless --input talk.wav        a file at real-time pace\n  \
    emoscope monitor --headless --input talk.wav --fast --jsonl out.jsonl\n  \
    emoscope monitor --headless --synthetic tone:220 --duration 5\n\n\
    Each line: t_start, t_end (s into the stream), probs, top (null without speech), speech,\n\
    latency_ms, dropped_samples, dropped_windows. The last line has the key \"summary\". Ctrl-C ends cleanly.")]
pub struct MonitorArgs {
    #[command(flatten)]
    pub compute: super::recognition::ComputeArg,
    /// Run without a window, printing JSON lines.
    #[arg(long)]
    pub headless: bool,
    /// Input device name (see `emoscope devices`); default: the system's default input.
    #[arg(long, conflicts_with_all = ["input", "synthetic"])]
    pub device: Option<String>,
    /// Play an audio file through the pipeline instead of the microphone.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// With --input or --synthetic: as fast as possible instead of real-time pace. Every
    /// window is processed (the reader waits for the model), none dropped.
    #[arg(long)]
    pub fast: bool,
    /// A generated source: tone:HZ, noise:AMP or silence (16 kHz, 10 s unless --duration).
    #[arg(long, conflicts_with = "input")]
    pub synthetic: Option<String>,
    /// Model directory; default: the built-in model (builtin:encoder_head).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Window length in seconds (3-4; must match the model's window).
    #[arg(long)]
    pub window: Option<f32>,
    /// Seconds between windows.
    #[arg(long, default_value_t = 0.5)]
    pub hop: f32,
    /// A recording of the speaker reading in a neutral voice (about 30 s; repeat for several
    /// files), for a model that reads an enrolment (the default): every
    /// window is read against that voice at rest. In the window the "enrol this voice"
    /// button records one from the microphone instead.
    #[arg(long, value_name = "FILE")]
    pub enrol: Vec<PathBuf>,
    /// Weight of the newest window in the moving average (1 = no smoothing).
    #[arg(long, default_value_t = 0.5)]
    pub smoothing: f32,
    /// Where to write JSON lines: a file, or - for stdout.
    #[arg(long, default_value = "-")]
    pub jsonl: String,
    /// Save the session: the audio heard (audio.wav) and these JSON lines (session.jsonl)
    /// in this folder, written as they come.
    #[arg(long)]
    pub record_session: Option<PathBuf>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
}

fn line(p: &Prediction, dropped_samples: u64, dropped_windows: u64) -> serde_json::Value {
    let probs: serde_json::Map<String, serde_json::Value> = LABELS
        .iter()
        .zip(p.probs)
        .map(|(l, v)| {
            (
                l.to_string(),
                serde_json::json!((v as f64 * 1e4).round() / 1e4),
            )
        })
        .collect();
    serde_json::json!({
        "t_start": p.window_start,
        "t_end": p.window_end,
        "probs": probs,
        "top": p.top.map(|t| LABELS[t]),
        "speech": p.speech,
        "latency_ms": (p.latency_ms() * 100.0).round() / 100.0,
        "dropped_samples": dropped_samples,
        "dropped_windows": dropped_windows,
    })
}

pub fn monitor(a: MonitorArgs, model: Option<PathBuf>) -> Result<()> {
    if !a.headless {
        return crate::ui::run_window(
            &super::recognition::model_dir(&None),
            model.or(a.model.clone()),
            a.input.clone(),
            a.device.clone(),
            a.compute.compute,
            a.enrol.clone(),
        );
    }
    let mut clf = super::recognition::load_model(&model.or(a.model.clone()), a.compute)?;
    super::recognition::enrol(&mut clf, &a.enrol, a.hop)?;
    // Seconds of speech the enrolment holds, for the summary (none without one).
    let enrolment_seconds = clf
        .enrolment
        .as_ref()
        .map(|e| (e.seconds * 10.0).round() / 10.0);
    if let Some(w) = a.window {
        if (w - clf.card.features.window_seconds).abs() > 1e-3 {
            bail!("--window {w}: the model {} was trained on {} s windows; use that length or another model", clf.card.arch.name(), clf.card.features.window_seconds);
        }
    }
    if !(a.hop > 0.0 && a.hop <= clf.card.features.window_seconds) {
        bail!("--hop {} must be in (0, window]", a.hop);
    }
    if !(a.smoothing > 0.0 && a.smoothing <= 1.0) {
        bail!("--smoothing {} must be in (0, 1]", a.smoothing);
    }
    let source: Box<dyn Source> = if let Some(path) = &a.input {
        Box::new(BufferSource::from_file(path, !a.fast)?)
    } else if let Some(kind) = &a.synthetic {
        Box::new(
            BufferSource::synthetic(kind, a.duration.unwrap_or(10.0) as f32, !a.fast)
                .map_err(anyhow::Error::msg)?,
        )
    } else {
        Box::new(MicSource::new(a.device.clone()))
    };
    let cfg = PipelineConfig {
        hop_seconds: a.hop,
        ema_alpha: a.smoothing,
        // A file or generated signal read as fast as possible waits for inference: every
        // window is processed. Real-time sources drop (and count) instead.
        backpressure: a.fast && (a.input.is_some() || a.synthetic.is_some()),
        ..PipelineConfig::default()
    };
    let (tap_tx, tap_rx) = crossbeam_channel::bounded::<Vec<f32>>(512);
    let tap = a.record_session.as_ref().map(|_| tap_tx);
    let p =
        Pipeline::start_with_tap(source, clf, cfg, tap).context("starting the live pipeline")?;
    let mut session = match &a.record_session {
        Some(dir) => Some(
            SessionLog::create(dir, p.source_rate, tap_rx)
                .with_context(|| format!("creating the session log in {}", dir.display()))?,
        ),
        None => None,
    };
    eprintln!(
        "monitoring {} with the model on the {} (Ctrl-C to stop)",
        p.source_name,
        p.compute()
    );
    let mut out: Box<dyn Write> = if a.jsonl == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::io::BufWriter::new(
            std::fs::File::create(&a.jsonl)
                .with_context(|| format!("cannot create {}", a.jsonl))?,
        ))
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let i = interrupted.clone();
        let _ = ctrlc::set_handler(move || i.store(true, Ordering::Release));
    }
    // The first write error of the session log (e.g. a full disk): monitoring goes on, the
    // command fails at the end saying what was kept.
    let mut session_failed: Option<String> = None;
    let t0 = Instant::now();
    let mut latencies = Vec::new();
    let (mut n, mut speech) = (0u64, 0u64);
    let mut top_counts = [0u64; LABELS.len()];
    // Raw (unsmoothed) probabilities of the speech windows, for the summary as `analyze` gives it.
    let mut speech_probs: Vec<[f32; LABELS.len()]> = Vec::new();
    loop {
        if interrupted.load(Ordering::Acquire)
            || a.duration.is_some_and(|d| t0.elapsed().as_secs_f64() >= d)
        {
            break;
        }
        match p.predictions.recv_timeout(Duration::from_millis(100)) {
            Ok(pred) => {
                let c = &p.counters;
                let l = line(
                    &pred,
                    c.dropped_samples.load(Ordering::Relaxed),
                    c.dropped_windows.load(Ordering::Relaxed),
                );
                writeln!(out, "{l}").context("writing JSON lines")?;
                out.flush().ok();
                if let (Some(s), None) = (session.as_mut(), &session_failed) {
                    if let Err(e) = s.line(&l.to_string()) {
                        eprintln!("warning: session log stopped: {e}; monitoring goes on");
                        session_failed = Some(e.to_string());
                    }
                }
                latencies.push(pred.latency_ms());
                n += 1;
                if let Some(t) = pred.top {
                    speech += 1;
                    top_counts[t] += 1;
                    speech_probs.push(pred.raw);
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
    }
    let counters = p.counters.clone();
    let source = p.source_name.clone();
    let p_rate = p.source_rate;
    let compute = p.compute();
    p.stop();
    // Over speech windows only; with none the summary names no emotion.
    let mean = (!speech_probs.is_empty()).then(|| crate::analysis::mean_probs(&speech_probs));
    let summary = serde_json::json!({"summary": {
        "source": source,
        "windows": n,
        "speech_windows": speech,
        "top": mean.map(|m| LABELS[crate::labels::argmax(&m)]),
        "mean_probs": mean.map(|m| LABELS.iter().zip(m).map(|(l, v)| (l.to_string(), serde_json::json!((v as f64 * 1e4).round() / 1e4))).collect::<serde_json::Map<_, _>>()),
        "top_counts": LABELS.iter().zip(top_counts).filter(|(_, c)| *c > 0).map(|(l, c)| (l.to_string(), serde_json::json!(c))).collect::<serde_json::Map<_, _>>(),
        "dropped_samples": counters.dropped_samples.load(Ordering::Relaxed),
        "dropped_windows": counters.dropped_windows.load(Ordering::Relaxed),
        "reopens": counters.reopens.load(Ordering::Relaxed),
        "gap_seconds": counters.gap_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        "compute": compute,
        "compute_fallbacks": counters.compute_fallbacks.load(Ordering::Relaxed),
        "enrolment_seconds": enrolment_seconds,
        "latency_ms_p50": crate::util::percentile(&latencies, 0.5),
        "latency_ms_p95": crate::util::percentile(&latencies, 0.95),
        "wall_seconds": t0.elapsed().as_secs_f64(),
        "interrupted": interrupted.load(Ordering::Acquire),
    }});
    writeln!(out, "{summary}").context("writing JSON lines")?;
    out.flush().ok();
    if let Some(mut s) = session {
        if session_failed.is_none() {
            if let Err(e) = s.line(&summary.to_string()) {
                session_failed = Some(e.to_string());
            }
        }
        let dir = s.dir.clone();
        let audio = s.finish();
        if let Some(e) = session_failed.or(audio.as_ref().err().map(|e| e.to_string())) {
            bail!(
                "the session recording in {} is incomplete: {e}; audio.wav and session.jsonl keep what was written before (make room and record again)",
                dir.display()
            );
        }
        let n = audio?;
        eprintln!(
            "session saved in {} ({} s of audio)",
            dir.display(),
            n / p_rate.max(1) as u64
        );
    }
    Ok(())
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    emoscope monitor --headless --input talk.wav --record-session s1\n  \
    emoscope report s1/session.jsonl --out s1/report\n\n\
    Writes session.csv (time, probabilities, top label, speech flag per window), session.json\n\
    and report.png (timeline, emotion distribution, model and its measured accuracy, date,\n\
    session length). The window's \"export session\" button writes the same three files.")]
pub struct ReportArgs {
    /// JSON lines written by `emoscope monitor --headless` (or a session folder's session.jsonl).
    pub jsonl: PathBuf,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// The model that produced the session (its card gives the accuracy line); default: the built-in model (builtin:encoder_head).
    #[arg(long)]
    pub model: Option<PathBuf>,
}

pub fn report(a: ReportArgs) -> Result<()> {
    use crate::pipeline::export::{export_session, read_jsonl, session_compute, SessionMeta};
    let rows = read_jsonl(&a.jsonl)?;
    if rows.is_empty() {
        bail!("{}: no analysed windows in the file", a.jsonl.display());
    }
    let dir = super::recognition::model_dir(&a.model);
    let model = crate::model::ModelCard::load(&dir)
        .map(|c| c.headline())
        .with_context(|| format!("reading the model card in {}", dir.display()))?;
    let modified = std::fs::metadata(&a.jsonl)
        .and_then(|m| m.modified())
        .map(chrono::DateTime::<chrono::Local>::from)
        .unwrap_or_else(|_| chrono::Local::now());
    let meta = SessionMeta {
        model,
        source: a.jsonl.display().to_string(),
        date: modified.format("%Y-%m-%d %H:%M").to_string(),
        compute: session_compute(&a.jsonl).unwrap_or_default(),
    };
    let files = export_session(&a.out, &meta, &rows)?;
    for f in files {
        println!("{}", f.display());
    }
    Ok(())
}
