//! The eframe window: app state (fed by the live pipeline, never blocking it) and the
//! layout of the panels in `panels`. Training mode and export are not built yet.

pub mod panels;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::Receiver;

use crate::features::{FeatureExtractor, FeatureKind, FeatureSpec, Normalisation};
use crate::labels::N_LABELS;
use crate::model::{device_name, Classifier};
use crate::pipeline::{BufferSource, MicSource, Pipeline, PipelineConfig, Prediction, Source};

/// Seconds of audio the waveform and spectrogram show.
const SHOW_SECONDS: f32 = 5.0;

struct Live {
    pipeline: Pipeline,
    audio_rx: Receiver<Vec<f32>>,
    rate: u32,
    display: FeatureExtractor,
}

/// Everything the window shows, updated from the pipeline each frame.
pub struct MonitorApp {
    model_dir: PathBuf,
    model_line: String,
    device_line: String,
    live: Option<Live>,
    error: Option<String>,
    file_input: String,
    audio: VecDeque<f32>,
    latest: Option<Prediction>,
    timeline: Vec<(f64, Option<usize>, f32)>,
    latencies: VecDeque<f64>,
    spec_tex: Option<egui::TextureHandle>,
    fmax: f32,
    paused: bool,
}

fn display_extractor(rate: u32) -> Option<FeatureExtractor> {
    let n_fft = ((rate as f32 * 0.032) as usize).next_power_of_two();
    let spec = FeatureSpec {
        kind: FeatureKind::Mel,
        sample_rate: rate,
        n_fft,
        hop_length: (rate / 100) as usize,
        n_mels: 64,
        n_mfcc: 20,
        fmin: 50.0,
        fmax: Some(7600.0f32.min(rate as f32 / 2.0)),
        db: true,
        window_seconds: SHOW_SECONDS,
        normalisation: Normalisation::None,
    };
    FeatureExtractor::new(&spec).ok()
}

impl MonitorApp {
    /// Starts on `input` (a file played at real-time pace) or the default microphone; if
    /// that fails the window says why and offers to open a file.
    pub fn new(model_dir: PathBuf, input: Option<PathBuf>, device: Option<String>) -> Self {
        let mut app = MonitorApp {
            model_dir,
            model_line: String::new(),
            device_line: String::new(),
            live: None,
            error: None,
            file_input: String::new(),
            audio: VecDeque::new(),
            latest: None,
            timeline: Vec::new(),
            latencies: VecDeque::new(),
            spec_tex: None,
            fmax: 7600.0,
            paused: false,
        };
        let source: Box<dyn Source> = match &input {
            Some(p) => match crate::audio::decode_file(p) {
                Ok(c) => Box::new(BufferSource::new(
                    p.display().to_string(),
                    c.samples,
                    c.sample_rate,
                    true,
                )),
                Err(e) => {
                    app.error = Some(e.to_string());
                    return app;
                }
            },
            None => Box::new(MicSource::new(device)),
        };
        app.start(source);
        app
    }

    fn start(&mut self, source: Box<dyn Source>) {
        self.live = None;
        let clf = match Classifier::load(&self.model_dir, &crate::model::default_device()) {
            Ok(c) => c,
            Err(e) => {
                self.error = Some(format!("cannot load the model: {e}"));
                return;
            }
        };
        self.model_line = format!("{} ({})", clf.card.headline(), device_name(&clf.device));
        let (tx, rx) = crossbeam_channel::bounded(256);
        match Pipeline::start_with_tap(source, clf, PipelineConfig::default(), Some(tx)) {
            Ok(p) => {
                self.device_line = format!("{} - {} Hz", p.source_name, p.source_rate);
                let display =
                    display_extractor(p.source_rate).expect("display spectrogram spec is valid");
                self.fmax = display.spec().fmax_hz();
                self.live = Some(Live {
                    rate: p.source_rate,
                    pipeline: p,
                    audio_rx: rx,
                    display,
                });
                self.error = None;
                self.audio.clear();
                self.timeline.clear();
                self.latest = None;
            }
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    /// Takes what the pipeline produced since the last frame (never waits).
    fn poll(&mut self) {
        let Some(live) = &self.live else { return };
        let keep = (SHOW_SECONDS * live.rate as f32) as usize;
        while let Ok(chunk) = live.audio_rx.try_recv() {
            if !self.paused {
                self.audio.extend(chunk);
            }
        }
        while self.audio.len() > keep {
            self.audio.pop_front();
        }
        while let Ok(p) = live.pipeline.predictions.try_recv() {
            if self.paused {
                continue;
            }
            let conf = p.top.map_or(0.0, |t| p.probs[t]);
            self.timeline.push((p.window_end, p.top, conf));
            self.latencies.push_back(p.latency_ms());
            if self.latencies.len() > 50 {
                self.latencies.pop_front();
            }
            self.latest = Some(p);
        }
    }

    fn update_spectrogram(&mut self, ctx: &egui::Context) {
        let Some(live) = &self.live else { return };
        let n = (SHOW_SECONDS * live.rate as f32) as usize;
        let mut x: Vec<f32> = vec![0.0; n.saturating_sub(self.audio.len())];
        x.extend(self.audio.iter());
        let Ok(m) = live.display.compute("display", &x) else {
            return;
        };
        let (w, h) = (m.frames, m.rows);
        let max = m
            .data
            .iter()
            .fold(f32::NEG_INFINITY, |a, &b| a.max(b))
            .max(-40.0);
        let mut pixels = vec![egui::Color32::BLACK; w * h];
        for r in 0..h {
            for f in 0..w {
                let v = (m.get(r, f) - (max - 70.0)) / 70.0;
                pixels[(h - 1 - r) * w + f] = panels::magma(v);
            }
        }
        let img = egui::ColorImage::new([w, h], pixels);
        match &mut self.spec_tex {
            Some(t) => t.set(img, egui::TextureOptions::LINEAR),
            None => {
                self.spec_tex =
                    Some(ctx.load_texture("spectrogram", img, egui::TextureOptions::LINEAR))
            }
        }
    }

    fn status_text(&self) -> String {
        let Some(live) = &self.live else {
            return "not running".into();
        };
        let c = &live.pipeline.counters;
        let lat = if self.latencies.is_empty() {
            0.0
        } else {
            self.latencies.iter().sum::<f64>() / self.latencies.len() as f64
        };
        format!(
            "{}   |   latency {:.0} ms   |   dropped samples {}   windows {}   reopens {}",
            self.device_line,
            lat,
            c.dropped_samples.load(Ordering::Relaxed),
            c.dropped_windows.load(Ordering::Relaxed),
            c.reopens.load(Ordering::Relaxed)
        )
    }
}

impl eframe::App for MonitorApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.poll();
        let ctx = ui.ctx().clone();
        self.update_spectrogram(&ctx);
        egui::Panel::bottom("status").show(ui, |ui| {
            ui.label(egui::RichText::new(self.status_text()).small());
            ui.label(egui::RichText::new(format!("model: {}", self.model_line)).small());
        });
        egui::Panel::top("controls").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("emoscope");
                if ui
                    .button(if self.paused { "resume" } else { "pause" })
                    .clicked()
                {
                    self.paused = !self.paused;
                }
                ui.label("audio file:");
                ui.text_edit_singleline(&mut self.file_input);
                if ui.button("play file").clicked() {
                    let p = PathBuf::from(self.file_input.trim());
                    match crate::audio::decode_file(&p) {
                        Ok(c) => self.start(Box::new(BufferSource::new(
                            p.display().to_string(),
                            c.samples,
                            c.sample_rate,
                            true,
                        ))),
                        Err(e) => self.error = Some(e.to_string()),
                    }
                }
                if ui.button("microphone").clicked() {
                    self.start(Box::new(MicSource::new(None)));
                }
            });
        });
        egui::Panel::right("emotions").min_size(330.0).show(ui, |ui| {
            let (probs, top, speech) = match &self.latest {
                Some(p) => (Some(&p.probs), p.top, p.speech),
                None => (None, None, false),
            };
            panels::emotion_bars(ui, probs, top, speech);
            ui.add_space(8.0);
            ui.label(egui::RichText::new("Probabilities are calibrated on held-out speakers; accuracy on new voices is limited (see the model card).").small().weak());
        });
        egui::CentralPanel::default().show(ui, |ui| {
            if let Some(e) = &self.error {
                ui.colored_label(egui::Color32::from_rgb(255, 120, 100), e.as_str());
                ui.label("Type the path of an audio file above and press \"play file\": it plays through the same pipeline at real-time pace.");
            }
            let samples: Vec<f32> = self.audio.iter().copied().collect();
            ui.label("waveform");
            panels::waveform(ui, &samples, SHOW_SECONDS);
            ui.label("log-mel spectrogram");
            panels::spectrogram(ui, self.spec_tex.as_ref(), SHOW_SECONDS, self.fmax);
            ui.label("session timeline (dominant emotion per window)");
            panels::timeline(ui, &self.timeline);
        });
        ctx.request_repaint_after(Duration::from_millis(33));
    }
}

/// Opens the monitor window; returns when it is closed.
pub fn run_window(
    model_dir: &Path,
    input: Option<PathBuf>,
    device: Option<String>,
) -> anyhow::Result<()> {
    let app = MonitorApp::new(model_dir.to_path_buf(), input, device);
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1100.0, 640.0])
            .with_title("emoscope"),
        ..Default::default()
    };
    eframe::run_native("emoscope", options, Box::new(|_cc| Ok(Box::new(app)))).map_err(|e| {
        anyhow::anyhow!(
            "cannot open the window: {e}; without a display use `emoscope monitor --headless`"
        )
    })
}

#[allow(dead_code)]
const _: () = assert!(N_LABELS == panels::EMOTION_COLOURS.len());
