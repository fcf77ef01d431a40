//! What the window draws each frame: the top bar (input, model and compute pickers, file,
//! hop and smoothing), the monitor tab (waveform, spectrogram, timeline, emotion bars,
//! export) and the frame around both tabs. State and the pipeline live in `mod.rs`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::model::{Compute, CUDA_BUILT};

use super::{
    panels, short_model_name, spectrogram, training, MonitorApp, SourceChoice, Tab, SHOW_SECONDS,
};

impl MonitorApp {
    fn controls(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("emoscope");
            ui.selectable_value(&mut self.tab, Tab::Monitor, "monitor");
            ui.selectable_value(&mut self.tab, Tab::Training, "training");
            ui.separator();
            if ui
                .button(if self.paused { "resume" } else { "pause" })
                .clicked()
            {
                self.paused = !self.paused;
            }
            let current = match &self.source {
                Some(SourceChoice::Mic(d)) => {
                    d.clone().unwrap_or_else(|| "default microphone".into())
                }
                Some(SourceChoice::File(p)) => p
                    .file_name()
                    .map_or("file".into(), |f| f.to_string_lossy().to_string()),
                None => "no input".into(),
            };
            let mut pick: Option<SourceChoice> = None;
            let l = ui.label("input");
            let cb = egui::ComboBox::from_id_salt("input")
                .selected_text(current)
                .width(200.0)
                .show_ui(ui, |ui| {
                    if ui.selectable_label(false, "default microphone").clicked() {
                        pick = Some(SourceChoice::Mic(None));
                    }
                    let devices = self.devices.get_or_insert_with(|| {
                        crate::audio::capture::list_input_devices()
                            .map(|v| v.into_iter().map(|d| d.name).collect())
                            .unwrap_or_default()
                    });
                    for d in devices.iter() {
                        if ui.selectable_label(false, d).clicked() {
                            pick = Some(SourceChoice::Mic(Some(d.clone())));
                        }
                    }
                });
            let cb_response = cb.response.labelled_by(l.id);
            if cb_response.clicked() {
                self.devices = None; // re-list when opened (devices come and go)
            }
            if let Some(p) = pick {
                self.start(p);
            }
            let model = self.model_dir();
            let mut chosen = None;
            let l = ui.label("model");
            egui::ComboBox::from_id_salt("model")
                .selected_text(short_model_name(&model))
                .width(150.0)
                .show_ui(ui, |ui| {
                    for m in &self.models {
                        let name = short_model_name(m);
                        let name = if *m == self.original_model {
                            format!("{name} (original)")
                        } else {
                            name
                        };
                        if ui.selectable_label(*m == model, name).clicked() {
                            chosen = Some(m.clone());
                        }
                    }
                })
                .response
                .labelled_by(l.id);
            if let Some(m) = chosen {
                self.use_model(m);
            }
            let mut compute = self.compute;
            let l = ui.label("compute");
            let r = egui::ComboBox::from_id_salt("compute")
                .selected_text(compute.to_string())
                .width(70.0)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut compute, Compute::Auto, "auto")
                        .on_hover_text("a GPU when this build has CUDA and one answers, else the CPU");
                    ui.selectable_value(&mut compute, Compute::Cpu, "cpu");
                    ui.add_enabled_ui(CUDA_BUILT, |ui| {
                        ui.selectable_value(&mut compute, Compute::Cuda(0), "cuda:0")
                    })
                    .response
                    .on_disabled_hover_text(
                        "this emoscope was built without CUDA (cargo build --release --features cuda)",
                    );
                });
            let r_response = r.response.labelled_by(l.id);
            if let Some(why) = &self.compute_note {
                r_response.on_hover_text(format!("the model runs on the CPU: {why}"));
            }
            if compute != self.compute {
                self.use_compute(compute);
            }
        });
        ui.horizontal(|ui| {
            let l = ui.label("audio file:");
            ui.text_edit_singleline(&mut self.file_input)
                .labelled_by(l.id);
            if ui.button("play file").clicked() {
                self.start(SourceChoice::File(PathBuf::from(self.file_input.trim())));
            }
            ui.separator();
            let (mut hop, mut smooth) = (self.settings.hop_seconds, self.settings.smoothing);
            let l = ui.label("hop");
            ui.add(
                egui::DragValue::new(&mut hop)
                    .range(0.25..=2.0)
                    .speed(0.05)
                    .suffix(" s"),
            )
            .labelled_by(l.id);
            let l = ui.label("smoothing");
            ui.add(egui::Slider::new(&mut smooth, 0.1..=1.0).fixed_decimals(2))
                .labelled_by(l.id)
                .on_hover_text(
                    "weight of the newest window (1 = no smoothing); windows are the model's 3 s",
                );
            if (hop, smooth) != (self.settings.hop_seconds, self.settings.smoothing) {
                self.settings.hop_seconds = hop;
                self.settings.smoothing = smooth;
                if ui.ctx().input(|i| !i.pointer.any_down()) {
                    if let Some(s) = self.source.clone() {
                        self.start(s);
                    }
                }
            }
        });
    }

    /// The enrolment of a model that reads one: record the speaker reading in a neutral
    /// voice, then every window is read against it.
    fn enrol_controls(&mut self, ui: &mut egui::Ui) {
        let advised = crate::features::ENROL_SECONDS_ADVISED;
        match self.enrolment_recorded() {
            Some(secs) => {
                ui.label(format!(
                    "recording the enrolment: {secs:.0} of {advised:.0} s. Read a few sentences in a calm, neutral voice."
                ));
                ui.add(egui::ProgressBar::new((secs / advised) as f32));
                if ui.button("stop the enrolment now").clicked() {
                    self.finish_enrolment();
                }
            }
            None => {
                let mic = matches!(self.source, Some(SourceChoice::Mic(_))) && self.is_live();
                let label = if self.enrol.is_empty() {
                    "enrol this voice"
                } else {
                    "enrol again"
                };
                if ui
                    .add_enabled(mic, egui::Button::new(label))
                    .on_hover_text(format!(
                        "record {advised:.0} s of the speaker reading in a neutral voice; this model then reads every window against it, so a session that stays in one emotion is still read as that emotion. The recording is kept on this computer for the next run; \"forget this voice\" deletes it"
                    ))
                    .on_disabled_hover_text("the enrolment is recorded from the microphone: start it first")
                    .clicked()
                {
                    self.start_enrolment();
                }
                if let Some((what, secs)) = self.enrolment_held() {
                    ui.label(
                        egui::RichText::new(format!("enrolment: {what}, {secs:.0} s"))
                            .small()
                            .weak(),
                    );
                    let kept = self
                        .enrol
                        .saved_path()
                        .filter(|p| p.exists())
                        .map(|p| format!(" and deletes {}", p.display()))
                        .unwrap_or_default();
                    if ui
                        .button("forget this voice")
                        .on_hover_text(format!(
                            "drops the enrolment{kept}: every window is then read alone"
                        ))
                        .clicked()
                    {
                        self.forget_enrolment();
                    }
                }
            }
        }
    }

    fn monitor_tab(&mut self, ui: &mut egui::Ui) {
        egui::Panel::right("emotions").min_size(330.0).show(ui, |ui| {
            let (probs, top, speech) = match &self.latest {
                Some(p) => (Some(&p.probs), p.top, p.speech),
                None => (None, None, false),
            };
            panels::emotion_bars(ui, probs, top, speech);
            ui.add_space(8.0);
            ui.label(egui::RichText::new("Probabilities are calibrated on held-out speakers; accuracy on new voices is limited (see the model card).").small().weak());
            if self.enrol_model {
                ui.separator();
                self.enrol_controls(ui);
            }
            ui.separator();
            let l = ui.label("export the session (CSV, JSON, PNG report) to:");
            ui.text_edit_singleline(&mut self.export_dir).labelled_by(l.id);
            if ui.add_enabled(!self.rows.is_empty(), egui::Button::new("export session")).clicked() {
                self.export();
            }
            if let Some((err, m)) = &self.export_msg {
                panels::message(ui, *err, m);
            }
        });
        egui::CentralPanel::default().show(ui, |ui| {
            let mut play_demo = false;
            if let Some(e) = &self.error {
                panels::message(ui, true, e);
                ui.horizontal(|ui| {
                    ui.label("Type the path of an audio file above and press \"play file\": it plays through the same pipeline at real-time pace. Or:");
                    play_demo = ui
                        .button("play the demo clip")
                        .on_hover_text("10 s of a synthetic voice, calm then loud, built into emoscope (assets/README.md)")
                        .clicked();
                });
            }
            if play_demo {
                self.start(SourceChoice::File(PathBuf::from(crate::audio::DEMO_CLIP)));
            }
            let shown = self.audio.make_contiguous();
            panels::waveform(ui, shown, shown.len(), SHOW_SECONDS);
            ui.label("log-mel spectrogram");
            let ctx = ui.ctx().clone();
            let fmax = self.spec.as_ref().map_or(spectrogram::FMAX_HZ, |s| s.fmax());
            let tex = self.spec.as_mut().map(|s| (s.texture(&ctx).clone(), s.oldest_u()));
            panels::spectrogram(ui, tex.as_ref().map(|(t, u)| (t, *u)), SHOW_SECONDS, fmax);
            panels::timeline(ui, &self.rows);
        });
    }

    /// Draws the whole window into `ui` (eframe calls this every frame; tests call it
    /// through egui_kittest).
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let t0 = Instant::now();
        if let Some(prev) = self.timing.last_frame.replace(t0) {
            self.timing
                .interval_ms
                .push((t0 - prev).as_secs_f64() * 1000.0);
        }
        self.poll();
        let ctx = ui.ctx().clone();
        let ended = self.ended_file();
        let mut again = false;
        egui::Panel::bottom("status").show(ui, |ui| {
            if let Some(name) = &ended {
                ui.horizontal(|ui| {
                    panels::message(
                        ui,
                        false,
                        &format!("end of {name}: every window of the file has been shown"),
                    );
                    again = ui.button("play again").clicked();
                });
            }
            ui.label(egui::RichText::new(self.status_text()).small());
            ui.label(egui::RichText::new(format!("model: {}", self.model_line)).small());
        });
        if again {
            if let Some(s) = self.source.clone() {
                self.start(s);
            }
        }
        egui::Panel::top("controls").show(ui, |ui| self.controls(ui));
        match self.tab {
            Tab::Monitor => self.monitor_tab(ui),
            Tab::Training => {
                let rate = self.rate();
                let model = self.model_dir();
                // Offered only while another model than the one given at start is in use.
                let other =
                    (model != self.original_model).then(|| short_model_name(&self.original_model));
                let req = egui::CentralPanel::default()
                    .show(ui, |ui| {
                        let req = self.training.show(ui, rate, &model);
                        if let Some(name) = other {
                            ui.separator();
                            if ui
                                .button("switch back to the original model")
                                .on_hover_text(format!("the model the window started with: {name}"))
                                .clicked()
                            {
                                return Some(training::Request::UseModel(
                                    self.original_model.clone(),
                                ));
                            }
                        }
                        req
                    })
                    .inner;
                if let Some(training::Request::UseModel(m)) = req {
                    self.use_model(m);
                }
            }
        }
        self.timing
            .build_ms
            .push(t0.elapsed().as_secs_f64() * 1000.0);
        self.write_stats();
        ctx.request_repaint_after(Duration::from_millis(16));
    }
}
