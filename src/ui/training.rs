//! Training mode: record labelled clips (buttons or keys 1-8, record button or hold
//! space), list, play, relabel and delete them, and fine-tune the model on them in a
//! background thread with progress, a loss curve and before/after scores.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::Receiver;
use egui::{Color32, RichText, Ui};

use crate::audio::playback::{play, Playback};
use crate::corpus::store::ClipStore;
use crate::corpus::{CorpusKind, DataSource};
use crate::labels::LABELS;
use crate::model::Metrics;
use crate::train::finetune::{finetune, user_and_extra_pack, FinetuneEvent, FinetuneSettings};

use super::panels;

/// Longest recording kept, in seconds (a forgotten record button stops here).
pub const MAX_RECORD_SECONDS: f32 = 30.0;

/// Messages from the fine-tuning thread.
enum JobMsg {
    Event(FinetuneEvent),
    Done(Result<PathBuf, String>),
}

/// A fine-tuning run in the background.
pub struct FinetuneJob {
    rx: Receiver<JobMsg>,
    cancel: Arc<AtomicBool>,
    pub losses: Vec<f64>,
    pub epochs: usize,
    pub progress: f32,
    pub before: Option<Metrics>,
    pub after: Option<Metrics>,
    pub done: Option<Result<PathBuf, String>>,
}

/// What the training tab asks the window to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Switch the live monitor to this model directory.
    UseModel(PathBuf),
}

/// State of the training tab.
pub struct TrainingMode {
    pub dir_input: String,
    pub store: Option<ClipStore>,
    pub label: usize,
    pub speaker: String,
    /// Samples of the recording in progress, and their rate.
    pub recording: Option<Vec<f32>>,
    pub rate: u32,
    /// A finished recording that could not be saved (kept so nothing is lost).
    pub unsaved: Option<Vec<f32>>,
    pub selected: Option<usize>,
    selected_audio: Option<(usize, Vec<f32>, u32)>,
    player: Option<Playback>,
    pub message: Option<(bool, String)>,
    pub job: Option<FinetuneJob>,
    pub extra_corpus: String,
    pub epochs: usize,
}

impl TrainingMode {
    pub fn new(dir: Option<PathBuf>, speaker: String) -> Self {
        let dir = dir.unwrap_or_else(|| super::home_folder("emoscope-clips"));
        let mut t = TrainingMode {
            dir_input: dir.display().to_string(),
            store: None,
            label: 0,
            speaker,
            recording: None,
            rate: 16000,
            unsaved: None,
            selected: None,
            selected_audio: None,
            player: None,
            message: None,
            job: None,
            extra_corpus: String::new(),
            epochs: 15,
        };
        t.open_store();
        t
    }

    fn ok(&mut self, m: impl Into<String>) {
        self.message = Some((false, m.into()));
    }

    fn fail(&mut self, m: impl Into<String>) {
        self.message = Some((true, m.into()));
    }

    /// Opens the folder typed in the folder field.
    pub fn open_store(&mut self) {
        match ClipStore::open(Path::new(self.dir_input.trim())) {
            Ok(s) => {
                let mut line = format!("{} clips in {}", s.clips.len(), s.dir.display());
                if s.removed_temporaries > 0 {
                    line += &format!(
                        " ({} temporary files of interrupted writes removed)",
                        s.removed_temporaries
                    );
                }
                self.ok(line);
                self.store = Some(s);
                self.selected = None;
            }
            Err(e) => {
                self.store = None;
                self.fail(e.to_string());
            }
        }
    }

    /// Audio from the live pipeline (called every frame with what arrived).
    pub fn feed(&mut self, chunk: &[f32], rate: u32) {
        if let Some(r) = &mut self.recording {
            if rate != self.rate {
                r.clear();
                self.rate = rate;
            }
            let room = ((MAX_RECORD_SECONDS * rate as f32) as usize).saturating_sub(r.len());
            r.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
    }

    pub fn start_recording(&mut self, rate: u32) {
        if self.recording.is_none() {
            self.rate = rate;
            self.recording = Some(Vec::new());
            self.message = None;
        }
    }

    /// Ends the recording and saves it under the current label.
    pub fn stop_recording(&mut self) {
        let Some(samples) = self.recording.take() else {
            return;
        };
        if samples.len() < (self.rate / 4) as usize {
            self.fail("recording shorter than 0.25 s: not saved");
            return;
        }
        self.save(samples);
    }

    fn save(&mut self, samples: Vec<f32>) {
        let Some(store) = &mut self.store else {
            self.unsaved = Some(samples);
            self.fail("no clip folder is open: choose one above, then press \"save again\"");
            return;
        };
        match store.add(&samples, self.rate, self.label, &self.speaker) {
            Ok(i) => {
                let secs = samples.len() as f32 / self.rate as f32;
                let file = store.clips[i].file.clone();
                self.unsaved = None;
                self.selected = Some(i);
                self.ok(format!(
                    "saved {file} ({secs:.1} s, {})",
                    LABELS[self.label]
                ));
            }
            Err(e) => {
                self.unsaved = Some(samples);
                self.fail(format!(
                    "{e}; the recording is kept: free some space and press \"save again\""
                ));
            }
        }
    }

    pub fn relabel(&mut self, i: usize, label: usize) {
        if let Some(s) = &mut self.store {
            if let Err(e) = s.relabel(i, label) {
                self.fail(e.to_string());
            }
        }
    }

    /// Lists (`keep`) or deletes the complete recordings found unlisted in the folder.
    pub fn resolve_unlisted(&mut self, keep: bool) {
        let Some(s) = &mut self.store else { return };
        let done = if keep {
            s.list_unlisted(&self.speaker)
                .map(|n| format!("listed {n} recordings as {}", self.speaker.trim()))
        } else {
            s.delete_unlisted()
                .map(|n| format!("deleted {n} unlisted recordings"))
        };
        match done {
            Ok(m) => self.ok(m),
            Err(e) => self.fail(e.to_string()),
        }
    }

    pub fn delete(&mut self, i: usize) {
        let Some(s) = &mut self.store else { return };
        let file = s.clips[i].file.clone();
        match s.delete(i) {
            Ok(()) => {
                self.selected = None;
                self.selected_audio = None;
                self.ok(format!("deleted {file}"));
            }
            Err(e) => self.fail(e.to_string()),
        }
    }

    /// Decodes the selected clip once. An unreadable one is unselected (its error shown),
    /// so it is not read again every frame.
    fn load_selected(&mut self) {
        let (Some(i), Some(store)) = (self.selected, &self.store) else {
            return;
        };
        if self.selected_audio.as_ref().is_some_and(|a| a.0 == i) {
            return;
        }
        match store.path_of(i).and_then(|p| crate::audio::decode_file(&p)) {
            Ok(c) => self.selected_audio = Some((i, c.samples, c.sample_rate)),
            Err(e) => {
                self.selected_audio = None;
                self.selected = None;
                self.fail(e.to_string());
            }
        }
    }

    /// Starts fine-tuning `model_dir` on the clips in the background.
    pub fn start_finetune(&mut self, model_dir: &Path) {
        let Some(store) = &self.store else {
            return self.fail("open a clip folder first");
        };
        let csv = store.csv_path();
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
        let out = store.dir.join(format!("model-{stamp}"));
        let extra = self.extra_corpus.trim().to_string();
        let extra: Option<DataSource> = if extra.is_empty() {
            None
        } else {
            match extra.parse() {
                Ok(d) => Some(d),
                Err(e) => return self.fail(format!("extra corpus: {e}")),
            }
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        let cancel = Arc::new(AtomicBool::new(false));
        let settings = FinetuneSettings {
            epochs: self.epochs,
            data: vec![format!("csv={}", csv.display())],
            ..Default::default()
        };
        let (model_dir, c2) = (model_dir.to_path_buf(), cancel.clone());
        std::thread::Builder::new()
            .name("emoscope-finetune".into())
            .spawn(move || {
                let r = run_finetune(&model_dir, &csv, extra, &settings, &out, &c2, &|e| {
                    let _ = tx.send(JobMsg::Event(e));
                });
                let _ = tx.send(JobMsg::Done(r.map(|_| out).map_err(|e| e.to_string())));
            })
            .expect("spawn fine-tuning thread");
        self.job = Some(FinetuneJob {
            rx,
            cancel,
            losses: Vec::new(),
            epochs: self.epochs,
            progress: 0.0,
            before: None,
            after: None,
            done: None,
        });
    }

    /// Takes the fine-tuning thread's messages (never waits).
    pub fn poll_job(&mut self) {
        let Some(job) = &mut self.job else { return };
        while let Ok(m) = job.rx.try_recv() {
            match m {
                JobMsg::Event(FinetuneEvent::Before(b)) => job.before = Some(b),
                JobMsg::Event(FinetuneEvent::After(a)) => job.after = Some(a),
                JobMsg::Event(FinetuneEvent::Batch { epoch, done, total }) => {
                    job.progress = (epoch as f32 + done as f32 / total.max(1) as f32)
                        / job.epochs.max(1) as f32
                }
                JobMsg::Event(FinetuneEvent::Epoch { loss, .. }) => job.losses.push(loss),
                JobMsg::Done(r) => job.done = Some(r),
            }
        }
    }

    /// Handles keys 1-8 (label) and space (hold to record) unless a text field has focus.
    fn keys(&mut self, ui: &Ui, rate: Option<u32>) {
        if ui.ctx().egui_wants_keyboard_input() {
            return;
        }
        let (digits, space_down, space_up) = ui.input(|i| {
            let keys = [
                egui::Key::Num1,
                egui::Key::Num2,
                egui::Key::Num3,
                egui::Key::Num4,
                egui::Key::Num5,
                egui::Key::Num6,
                egui::Key::Num7,
                egui::Key::Num8,
            ];
            (
                keys.iter().position(|k| i.key_pressed(*k)),
                i.key_pressed(egui::Key::Space),
                i.key_released(egui::Key::Space),
            )
        });
        if let Some(d) = digits {
            self.label = d;
        }
        if let (true, Some(rate)) = (space_down, rate) {
            self.start_recording(rate);
        }
        if space_up {
            self.stop_recording();
        }
    }

    /// Draws the tab. `rate` is the live source's rate (None when nothing is running).
    pub fn show(&mut self, ui: &mut Ui, rate: Option<u32>, model_dir: &Path) -> Option<Request> {
        self.poll_job();
        self.keys(ui, rate);
        let mut request = None;
        ui.horizontal(|ui| {
            let l = ui.label("clip folder:");
            ui.add(egui::TextEdit::singleline(&mut self.dir_input).desired_width(360.0))
                .labelled_by(l.id);
            if ui.button("open").clicked() {
                self.open_store();
            }
            let l = ui.label("speaker:");
            ui.add(egui::TextEdit::singleline(&mut self.speaker).desired_width(100.0))
                .labelled_by(l.id);
        });
        ui.horizontal_wrapped(|ui| {
            ui.label("label (keys 1-8):");
            for (i, l) in LABELS.iter().enumerate() {
                let text = RichText::new(format!("{} {l}", i + 1)).color(if self.label == i {
                    Color32::BLACK
                } else {
                    panels::EMOTION_COLOURS[i]
                });
                let b =
                    egui::Button::new(text)
                        .selected(self.label == i)
                        .fill(if self.label == i {
                            panels::EMOTION_COLOURS[i]
                        } else {
                            Color32::from_gray(35)
                        });
                if ui.add(b).clicked() {
                    self.label = i;
                }
            }
        });
        ui.horizontal(|ui| {
            let recording = self.recording.is_some();
            let text = if recording {
                "stop recording"
            } else {
                "record"
            };
            let enabled = rate.is_some() || recording;
            if ui
                .add_enabled(enabled, egui::Button::new(RichText::new(text).strong()))
                .on_disabled_hover_text("start the microphone or a file on the monitor tab first")
                .clicked()
            {
                if recording {
                    self.stop_recording();
                } else if let Some(r) = rate {
                    self.start_recording(r);
                }
            }
            ui.label("or hold space");
            if let Some(r) = &self.recording {
                ui.colored_label(
                    Color32::RED,
                    format!(
                        "recording {:.1} s as {}",
                        r.len() as f32 / self.rate as f32,
                        LABELS[self.label]
                    ),
                );
            }
            if self.unsaved.is_some() && ui.button("save again").clicked() {
                let s = self.unsaved.take().expect("checked");
                self.save(s);
            }
        });
        if let Some((err, m)) = &self.message {
            panels::message(ui, *err, m);
        }
        if let Some(r) = &self.recording {
            // The recording so far (its last seconds, as the monitor shows), so the speaker sees
            // the level while talking.
            let span = (super::SHOW_SECONDS * self.rate as f32) as usize;
            let tail = &r[r.len().saturating_sub(span)..];
            panels::waveform(ui, tail, span, super::SHOW_SECONDS);
        }
        ui.separator();
        ui.columns(2, |cols| {
            self.clip_list(&mut cols[0]);
            request = self.finetune_panel(&mut cols[1], model_dir);
        });
        request
    }

    fn clip_list(&mut self, ui: &mut Ui) {
        let Some(store) = &self.store else {
            ui.label("no clip folder open");
            return;
        };
        if !store.unlisted.is_empty() {
            let n = store.unlisted.len();
            let mut choice = None;
            ui.horizontal_wrapped(|ui| {
                ui.label(format!(
                    "{n} complete recordings here are not in the list (recording stopped before listing them): {}",
                    store.unlisted.join(", ")
                ));
                if ui.button("list them").clicked() {
                    choice = Some(true);
                }
                if ui.button("delete them").clicked() {
                    choice = Some(false);
                }
            });
            if let Some(keep) = choice {
                self.resolve_unlisted(keep);
                return;
            }
        }
        let Some(store) = &self.store else { return };
        let counts = store.counts();
        ui.label(format!(
            "{} clips: {}",
            store.clips.len(),
            LABELS
                .iter()
                .zip(counts)
                .filter(|(_, n)| *n > 0)
                .map(|(l, n)| format!("{l} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let rows: Vec<(usize, String, usize)> = store
            .clips
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.file.clone(), c.label))
            .collect();
        let mut action: Option<(usize, Option<usize>)> = None; // (clip, Some(new label) | None = delete)
        egui::ScrollArea::vertical()
            .id_salt("clips")
            .max_height(220.0)
            .show(ui, |ui| {
                for (i, file, label) in rows {
                    ui.horizontal(|ui| {
                        let name = ui.selectable_label(self.selected == Some(i), &file);
                        if name.clicked() {
                            self.selected = Some(i);
                        }
                        let mut l = label;
                        egui::ComboBox::from_id_salt(("relabel", i))
                            .selected_text(LABELS[l])
                            .show_ui(ui, |ui| {
                                for (k, name) in LABELS.iter().enumerate() {
                                    ui.selectable_value(&mut l, k, *name);
                                }
                            })
                            .response
                            .labelled_by(name.id);
                        if l != label {
                            action = Some((i, Some(l)));
                        }
                        if ui.button(format!("delete {file}")).clicked() {
                            action = Some((i, None));
                        }
                    });
                }
            });
        match action {
            Some((i, Some(l))) => self.relabel(i, l),
            Some((i, None)) => self.delete(i),
            None => {}
        }
        self.load_selected();
        let Some((_, samples, rate)) = self
            .selected_audio
            .as_ref()
            .filter(|a| Some(a.0) == self.selected)
        else {
            return;
        };
        let rate = *rate;
        panels::waveform(
            ui,
            samples,
            samples.len(),
            samples.len() as f32 / rate as f32,
        );
        let (mut stop, mut started) = (false, None);
        ui.horizontal(|ui| match self.player.as_ref().filter(|p| !p.finished()) {
            Some(p) => {
                stop = ui.button("stop").clicked();
                ui.add(egui::ProgressBar::new(p.progress()).desired_width(120.0));
                ui.ctx().request_repaint();
            }
            None => {
                if ui.button("play").clicked() {
                    started = Some(play(samples, rate));
                }
            }
        });
        if stop {
            self.player = None;
        }
        match started {
            Some(Ok(p)) => self.player = Some(p),
            Some(Err(e)) => self.fail(e.to_string()),
            None => {}
        }
    }

    fn finetune_panel(&mut self, ui: &mut Ui, model_dir: &Path) -> Option<Request> {
        ui.label(RichText::new("fine-tune the current model on these clips").strong());
        ui.label(RichText::new(format!("model: {}", model_dir.display())).small());
        ui.horizontal(|ui| {
            let l = ui.label("epochs:");
            ui.add(egui::DragValue::new(&mut self.epochs).range(1..=200))
                .labelled_by(l.id);
            let l = ui.label("plus corpus (optional, KIND=PATH):");
            ui.add(egui::TextEdit::singleline(&mut self.extra_corpus).desired_width(160.0))
                .labelled_by(l.id);
        });
        let running = self.job.as_ref().is_some_and(|j| j.done.is_none());
        let n = self.store.as_ref().map_or(0, |s| s.clips.len());
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!running && n >= 4, egui::Button::new("fine-tune"))
                .on_disabled_hover_text(
                    "needs at least 4 clips (some are held out to score the model)",
                )
                .clicked()
            {
                self.start_finetune(model_dir);
            }
            if running && ui.button("cancel").clicked() {
                if let Some(j) = &self.job {
                    j.cancel.store(true, Ordering::Relaxed);
                }
            }
        });
        let mut request = None;
        let Some(job) = &self.job else { return None };
        if running {
            ui.add(egui::ProgressBar::new(job.progress).show_percentage());
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(100));
        }
        panels::loss_curve(ui, &job.losses, job.epochs);
        let score = |m: &Option<Metrics>| {
            m.as_ref().map_or("...".into(), |m| {
                format!(
                    "{:.0} % accuracy (UAR {:.2}) on {} held-out clips",
                    m.accuracy * 100.0,
                    m.uar,
                    m.n
                )
            })
        };
        ui.label(format!("before: {}", score(&job.before)));
        ui.label(format!("after:  {}", score(&job.after)));
        match &job.done {
            Some(Ok(out)) => {
                let out = out.clone();
                panels::message(ui, false, &format!("saved {}", out.display()));
                if ui.button("use the fine-tuned model").clicked() {
                    request = Some(Request::UseModel(out));
                }
            }
            Some(Err(e)) => panels::message(ui, true, e),
            None => {}
        }
        request
    }
}

/// The fine-tuning thread's work: load the model and the clips, compute features, train.
fn run_finetune(
    model_dir: &Path,
    csv: &Path,
    extra: Option<DataSource>,
    settings: &FinetuneSettings,
    out: &Path,
    cancel: &AtomicBool,
    send: &dyn Fn(FinetuneEvent),
) -> crate::Result<()> {
    let clf = crate::model::Classifier::load(model_dir, &crate::model::default_device())?;
    let user = crate::corpus::load(&DataSource {
        kind: CorpusKind::Csv,
        path: csv.to_path_buf(),
    })?;
    let extra_clips = match &extra {
        Some(d) => crate::corpus::load(d)?.clips,
        None => Vec::new(),
    };
    let (pack, user_idx, extra_idx) =
        user_and_extra_pack(&clf.card.features, &user.clips, extra_clips, None)?;
    let mut s = settings.clone();
    s.data.extend(extra.iter().map(|d| d.to_string()));
    finetune(
        clf,
        &model_dir.display().to_string(),
        &pack,
        &user_idx,
        &extra_idx,
        &s,
        out,
        cancel,
        &mut |e| send(e),
    )?;
    Ok(())
}
