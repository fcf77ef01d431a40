//! The eframe window: app state fed by the live pipeline (never blocking it), sources,
//! model and compute switching, export and settings. What is drawn each frame is in
//! `view`, the panels in `panels`, the training tab in `training`.

pub mod panels;
pub mod spectrogram;
pub mod training;
mod view;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use serde::{Deserialize, Serialize};

use crate::labels::LABELS;
use crate::model::{device_name, Classifier, Compute};
use crate::pipeline::export::{export_session, SessionMeta, SessionRow};
use crate::pipeline::{BufferSource, MicSource, Pipeline, PipelineConfig, Prediction, Source};

/// Seconds of audio the waveform and spectrogram show.
const SHOW_SECONDS: f32 = 5.0;

/// The speaker's enrolment for models that read one: the audio it is learnt from (kept, so
/// that a model switched to learns it through its own extractor) and a recording under way.
#[derive(Default)]
pub struct EnrolState {
    /// Each enrolment recording or file: what it is, its samples and their rate.
    audio: Vec<(String, Vec<f32>, u32)>,
    /// Audio from the live source since the enrol button was pressed, and its rate.
    recording: Option<(Vec<f32>, u32)>,
    /// The enrolment last learnt from `audio`, with the feature spec and hop it was learnt
    /// under: a restart under the same ones (smoothing, compute, another model of the same
    /// spec) reuses it instead of running the encoder over the recording again. Cleared
    /// whenever `audio` changes.
    learnt: Option<(
        crate::features::FeatureSpec,
        f32,
        crate::features::Enrolment,
    )>,
    /// An enrolment being learnt on its own thread (the encoder over every window of the
    /// recording takes seconds): the source to start once it is, and where the thread
    /// hands back the model with the enrolment learnt, or the model and why not.
    learning: Option<(SourceChoice, Receiver<Learnt>)>,
    /// The folder where a recorded enrolment is kept between runs
    /// ([`ENROL_FILE`] in it; the window's own data folder), or none (tests, `idle`).
    store: Option<PathBuf>,
}

/// The file, in the window's data folder, that keeps the last recorded enrolment so the
/// next run reads the same voice without recording it again ("forget this voice" deletes it).
pub const ENROL_FILE: &str = "enrolment.wav";

impl EnrolState {
    /// Where a recorded enrolment is kept, if anywhere.
    pub fn saved_path(&self) -> Option<PathBuf> {
        self.store.as_ref().map(|d| d.join(ENROL_FILE))
    }

    /// Adds enrolment audio, `what` it is; what was learnt from the audio before is stale.
    fn add(&mut self, what: String, clip: crate::audio::AudioClip) {
        self.audio.push((what, clip.samples, clip.sample_rate));
        self.learnt = None;
    }

    /// Whether any enrolment audio is held.
    pub fn is_empty(&self) -> bool {
        self.audio.is_empty()
    }
}

/// What the learning thread hands back: the model it was given and the enrolment learnt
/// through its extractor, or the model and why none was.
type Learnt = (
    Classifier,
    std::result::Result<crate::features::Enrolment, String>,
);

/// Learns the enrolment of `audio` through `clf`'s own extractor, windows `hop` seconds apart.
fn learn_enrolment(
    clf: &Classifier,
    audio: &[(String, Vec<f32>, u32)],
    hop: f32,
) -> std::result::Result<crate::features::Enrolment, String> {
    let mut e = crate::features::Enrolment::default();
    for (what, x, r) in audio {
        crate::analysis::learn_enrolment(clf, what, x, *r, hop, &mut e)
            .map_err(|err| format!("enrolment {what}: {err}"))?;
    }
    if e.profile.lld_frames() == 0 {
        return Err("the enrolment holds no speech: record it again, reading a few sentences in a neutral voice".into());
    }
    Ok(e)
}

/// How the window names an enrolment read back from [`ENROL_FILE`].
const SAVED_PREFIX: &str = "saved enrolment";

/// Shortest enrolment recording the window accepts, in seconds.
const ENROL_MIN_SECONDS: f64 = 3.0;

/// What the window remembers between runs (eframe persistence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub model_dir: Option<PathBuf>,
    pub device: Option<String>,
    pub hop_seconds: f32,
    /// Weight of the newest window in the moving average (1 = no smoothing).
    pub smoothing: f32,
    pub clips_dir: Option<String>,
    pub speaker: String,
}

impl Default for Settings {
    fn default() -> Self {
        let c = PipelineConfig::default();
        Self {
            model_dir: None,
            device: None,
            hop_seconds: c.hop_seconds,
            smoothing: c.ema_alpha,
            clips_dir: None,
            speaker: "me".into(),
        }
    }
}

/// Where the live audio comes from (kept so the pipeline can be restarted with another
/// model or settings).
#[derive(Debug, Clone, PartialEq)]
pub enum SourceChoice {
    Mic(Option<String>),
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Monitor,
    Training,
}

struct Live {
    pipeline: Pipeline,
    audio_rx: Receiver<Vec<f32>>,
    rate: u32,
}

/// Seconds of speech after which a speaker-normalised model's profile of the voice is
/// taken as settled (before that the status bar says it is still learning).
const PROFILE_SETTLED_SECONDS: f32 = 10.0;

/// Frame and pipeline timing, for the status bar and `EMOSCOPE_FRAME_STATS`.
#[derive(Default)]
pub struct Timing {
    /// Time spent building each frame's UI, ms.
    pub build_ms: Recent,
    /// Time between frame starts, ms.
    pub interval_ms: Recent,
    /// Pipeline latency of each prediction, ms.
    pub latency_ms: Recent,
    last_frame: Option<Instant>,
}

/// The latest [`Recent::KEEP`] values of a measurement and how many there were in all:
/// a window left open for a day keeps constant memory and its percentiles stay cheap.
#[derive(Default)]
pub struct Recent {
    values: VecDeque<f64>,
    total: u64,
}

impl Recent {
    /// About a minute of frames at 60 per second, or 40 minutes of windows every 0.5 s.
    pub const KEEP: usize = 4800;

    pub fn push(&mut self, v: f64) {
        if self.values.len() == Self::KEEP {
            self.values.pop_front();
        }
        self.values.push_back(v);
        self.total += 1;
    }

    /// Values pushed since the start.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The `q` quantile of the values kept.
    pub fn percentile(&self, q: f64) -> f64 {
        let (a, b) = self.values.as_slices();
        crate::util::percentile(&[a, b].concat(), q)
    }

    /// Mean of the latest `n` values (0 with none).
    pub fn mean_of_last(&self, n: usize) -> f64 {
        let k = n.min(self.values.len()).max(1);
        self.values.iter().rev().take(n).sum::<f64>() / k as f64
    }
}

/// Everything the window shows, updated from the pipeline each frame.
pub struct MonitorApp {
    pub settings: Settings,
    /// The model given at start (the "switch back" target).
    original_model: PathBuf,
    model_line: String,
    /// The running model's profile is a calm reference (it learns only calm speech).
    calm_reference: bool,
    /// The running model reads an enrolment.
    pub enrol_model: bool,
    pub enrol: EnrolState,
    device_line: String,
    /// Where models run (the "compute" picker; `--compute` at start).
    pub compute: Compute,
    /// Why the model runs on the CPU though a GPU was asked for, when it does.
    compute_note: Option<String>,
    live: Option<Live>,
    pub source: Option<SourceChoice>,
    pub error: Option<String>,
    file_input: String,
    audio: VecDeque<f32>,
    latest: Option<Prediction>,
    /// Every window of the session, for export.
    pub rows: Vec<SessionRow>,
    spec: Option<spectrogram::ScrollingSpectrogram>,
    paused: bool,
    pub tab: Tab,
    pub training: training::TrainingMode,
    export_dir: String,
    export_msg: Option<(bool, String)>,
    devices: Option<Vec<String>>,
    models: Vec<PathBuf>,
    pub timing: Timing,
    stats_path: Option<PathBuf>,
    stats_written: Instant,
}

/// `name` in the user's home folder (the current folder without $HOME).
fn home_folder(name: &str) -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(name)
}

/// Whether `m` names a loadable model: the built-in one or a folder with a card.
fn model_exists(m: &Path) -> bool {
    crate::model::is_builtin(m) || m.join("card.json").exists()
}

/// Models offered in the picker: the built-in ones first (the default leading), then
/// `model` and the folders beside it that hold a card (`weights/*` in the current folder
/// for a built-in model), then fine-tuned models in the clip folder.
fn model_choices(model: &Path, clips: Option<&Path>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = crate::model::builtin_names().map(PathBuf::from).collect();
    if !out.iter().any(|m| m == model) {
        out.push(model.to_path_buf());
    }
    // Beside the built-in model: the shipped alternatives when run from the source tree.
    let beside = if crate::model::is_builtin(model) {
        Some(Path::new("weights"))
    } else {
        model.parent()
    };
    for dir in [beside, clips].into_iter().flatten() {
        if let Ok(rd) = std::fs::read_dir(dir) {
            let mut found: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("card.json").exists() && !out.contains(p))
                .collect();
            found.sort();
            out.extend(found);
        }
    }
    out
}

/// A model's name in the picker: "fusion (built in)" or its folder's name.
fn short_model_name(m: &Path) -> String {
    if crate::model::is_builtin(m) {
        return crate::model::display_name(m);
    }
    m.file_name()
        .map_or(m.display().to_string(), |f| f.to_string_lossy().to_string())
}

impl MonitorApp {
    /// A window with nothing running yet (tests start sources themselves).
    pub fn idle(model_dir: PathBuf, settings: Settings) -> Self {
        let clips = settings.clips_dir.clone().map(PathBuf::from);
        let model = settings
            .model_dir
            .clone()
            .filter(|m| model_exists(m))
            .unwrap_or_else(|| model_dir.clone());
        let training = training::TrainingMode::new(clips, settings.speaker.clone());
        let models = model_choices(&model_dir, training.store.as_ref().map(|s| s.dir.as_path()));
        MonitorApp {
            settings: Settings {
                model_dir: Some(model),
                ..settings
            },
            original_model: model_dir,
            model_line: String::new(),
            calm_reference: false,
            enrol_model: false,
            enrol: EnrolState::default(),
            device_line: String::new(),
            compute: Compute::Auto,
            compute_note: None,
            live: None,
            source: None,
            error: None,
            file_input: String::new(),
            audio: VecDeque::new(),
            latest: None,
            rows: Vec::new(),
            spec: None,
            paused: false,
            tab: Tab::Monitor,
            training,
            export_dir: home_folder("emoscope-sessions").display().to_string(),
            export_msg: None,
            devices: None,
            models,
            timing: Timing::default(),
            stats_path: std::env::var_os("EMOSCOPE_FRAME_STATS").map(PathBuf::from),
            stats_written: Instant::now(),
        }
    }

    /// Starts on `input` (a file played at real-time pace) or the microphone (`device`,
    /// else the remembered one, else the default); if that fails the window says why and
    /// offers to open a file.
    pub fn new(
        model_dir: PathBuf,
        input: Option<PathBuf>,
        device: Option<String>,
        settings: Settings,
        compute: Compute,
        enrol: &[PathBuf],
        enrol_store: Option<PathBuf>,
    ) -> Self {
        let mut app = Self::idle(model_dir, settings);
        app.compute = compute;
        app.enrol_from_files(enrol);
        app.keep_enrolment_in(enrol_store);
        let choice = match input {
            Some(p) => SourceChoice::File(p),
            None => SourceChoice::Mic(device.or_else(|| app.settings.device.clone())),
        };
        app.start(choice);
        app
    }

    fn model_dir(&self) -> PathBuf {
        self.settings
            .model_dir
            .clone()
            .unwrap_or_else(|| self.original_model.clone())
    }

    /// Loads `dir` where the compute picker says (the CPU, saying why, when a GPU cannot
    /// be used).
    fn load_model(&mut self, dir: &Path) -> crate::Result<Classifier> {
        let (clf, placement) = Classifier::load_on(dir, self.compute)?;
        self.compute_note = placement.fallback;
        Ok(clf)
    }

    /// Where the running model computes (`CPU`, `CUDA:0`, `CPU (after CUDA:0 failed)`),
    /// with why a GPU asked for is not used; empty before any start.
    pub fn compute_line(&self) -> String {
        let Some(l) = &self.live else {
            return String::new();
        };
        let now = l.pipeline.compute();
        match &self.compute_note {
            Some(why) => format!("{now} ({why})"),
            None => now,
        }
    }

    /// Runs models where `c` says from now on, reloading the running one there.
    pub fn use_compute(&mut self, c: Compute) {
        self.compute = c;
        let dir = self.model_dir();
        self.use_model(dir);
    }

    /// (Re)starts the pipeline on `choice` with the current model and settings.
    pub fn start(&mut self, choice: SourceChoice) {
        let dir = self.model_dir();
        match self.load_model(&dir) {
            Ok(clf) => self.start_with(choice, clf),
            Err(e) => {
                self.error = Some(format!(
                    "cannot load the model {}: {e}",
                    crate::model::display_name(&dir)
                ))
            }
        }
    }

    /// Gives `clf`, when it reads an enrolment, the one learnt from the enrolment audio
    /// (recorded, kept from an earlier run or given with `--enrol`) through its own
    /// extractor. When that is not learnt yet under this model's spec and hop, hands `clf`
    /// to a thread that learns it (the window stays responsive and says so) and returns
    /// `None`; [`poll`](Self::poll) starts `choice` once it is back.
    fn apply_enrolment(
        &mut self,
        choice: &SourceChoice,
        mut clf: Classifier,
    ) -> Option<Classifier> {
        if !clf.card.features.enrolment() || self.enrol.audio.is_empty() {
            return Some(clf);
        }
        let hop = self.settings.hop_seconds;
        if let Some((spec, h, e)) = &self.enrol.learnt {
            if *spec == clf.card.features && *h == hop {
                clf.enrolment = Some(e.clone());
                return Some(clf);
            }
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let audio = self.enrol.audio.clone();
        let spawned = std::thread::Builder::new()
            .name("emoscope-enrol".into())
            .spawn(move || {
                let learnt = learn_enrolment(&clf, &audio, hop);
                let _ = tx.send((clf, learnt));
            });
        match spawned {
            Ok(_) => self.enrol.learning = Some((choice.clone(), rx)),
            Err(e) => self.error = Some(format!("cannot start learning the enrolment: {e}")),
        }
        None
    }

    /// Whether an enrolment is being learnt (the pipeline starts when it is).
    pub fn learning_enrolment(&self) -> bool {
        self.enrol.learning.is_some()
    }

    /// Starts the source waiting for an enrolment once its thread hands the model back:
    /// with the enrolment learnt, or, when none could be, without it and saying why.
    fn poll_learning(&mut self) {
        let Some((choice, rx)) = &self.enrol.learning else {
            return;
        };
        let (mut clf, learnt) = match rx.try_recv() {
            Ok(r) => r,
            Err(crossbeam_channel::TryRecvError::Empty) => return,
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                self.enrol.learning = None;
                self.error = Some("learning the enrolment failed: enrol again".into());
                return;
            }
        };
        let choice = choice.clone();
        self.enrol.learning = None;
        match learnt {
            Ok(e) => {
                self.enrol.learnt = Some((
                    clf.card.features.clone(),
                    self.settings.hop_seconds,
                    e.clone(),
                ));
                clf.enrolment = Some(e);
            }
            Err(why) => {
                // Useless audio is dropped, so the restart does not learn it again.
                self.error = Some(why);
                self.enrol.audio.clear();
                self.enrol.learnt = None;
            }
        }
        self.start_with(choice, clf);
    }

    /// Adds the enrolment files given at start (`monitor --enrol`); an unreadable one is
    /// the window's error, naming it.
    pub fn enrol_from_files(&mut self, files: &[PathBuf]) {
        for f in files {
            match crate::audio::decode_input(f) {
                Ok(c) => self.enrol.add(f.display().to_string(), c),
                Err(e) => self.error = Some(format!("--enrol {}: {e}", f.display())),
            }
        }
    }

    /// Keeps recorded enrolments in `dir` from now on ([`ENROL_FILE`]) and, when no
    /// enrolment was given (`--enrol` wins for its run), reads the one an earlier run kept
    /// there. One that cannot be read is the window's error, naming it, and is left on disk.
    pub fn keep_enrolment_in(&mut self, dir: Option<PathBuf>) {
        self.enrol.store = dir;
        let Some(path) = self.enrol.saved_path() else {
            return;
        };
        if !self.enrol.audio.is_empty() || !path.exists() {
            return;
        }
        match crate::audio::decode_input(&path) {
            Ok(c) => {
                let when = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .map(|t| {
                        chrono::DateTime::<chrono::Local>::from(t)
                            .format(" of %Y-%m-%d %H:%M")
                            .to_string()
                    })
                    .unwrap_or_default();
                self.enrol.add(format!("{SAVED_PREFIX}{when}"), c);
            }
            Err(e) => {
                self.error = Some(format!(
                    "the saved enrolment {} cannot be read ({e}): enrol again to replace it, or delete the file",
                    path.display()
                ))
            }
        }
    }

    /// Forgets the enrolment: the audio held, what was learnt from it and the file kept
    /// for later runs; a running pipeline restarts reading each window alone.
    pub fn forget_enrolment(&mut self) {
        self.enrol.audio.clear();
        self.enrol.learnt = None;
        self.enrol.recording = None;
        if let Some(p) = self.enrol.saved_path().filter(|p| p.exists()) {
            if let Err(e) = std::fs::remove_file(&p) {
                self.error = Some(format!(
                    "cannot delete the saved enrolment {}: {e}; delete it by hand",
                    p.display()
                ));
            }
        }
        let running = self.live.is_some() || self.enrol.learning.is_some();
        if let Some(s) = self.source.clone().filter(|_| running) {
            self.start(s);
        }
    }

    /// Starts recording an enrolment from the live source (the speaker reads in a neutral
    /// voice); it ends by itself after [`ENROL_SECONDS_ADVISED`](crate::features::ENROL_SECONDS_ADVISED)
    /// seconds, or with [`finish_enrolment`](Self::finish_enrolment).
    pub fn start_enrolment(&mut self) {
        match self.rate() {
            Some(r) => self.enrol.recording = Some((Vec::new(), r)),
            None => {
                self.error =
                    Some("start the microphone first: the enrolment is recorded from it".into())
            }
        }
    }

    /// The enrolment audio held, if any: what it is (several joined by "+") and its seconds.
    pub fn enrolment_held(&self) -> Option<(String, f64)> {
        if self.enrol.audio.is_empty() {
            return None;
        }
        let what: Vec<&str> = self
            .enrol
            .audio
            .iter()
            .map(|(w, _, _)| w.as_str())
            .collect();
        let secs = self
            .enrol
            .audio
            .iter()
            .map(|(_, x, r)| x.len() as f64 / *r as f64)
            .sum();
        Some((what.join(" + "), secs))
    }

    /// Seconds recorded so far of an enrolment under way.
    pub fn enrolment_recorded(&self) -> Option<f64> {
        self.enrol
            .recording
            .as_ref()
            .map(|(x, r)| x.len() as f64 / *r as f64)
    }

    /// Ends the enrolment recording and restarts the pipeline reading against it; a
    /// recording shorter than [`ENROL_MIN_SECONDS`] is discarded with an error saying so.
    pub fn finish_enrolment(&mut self) {
        let Some((x, r)) = self.enrol.recording.take() else {
            return;
        };
        let secs = x.len() as f64 / r as f64;
        if secs < ENROL_MIN_SECONDS {
            self.error = Some(format!(
                "an enrolment of {secs:.1} s is too short: record at least {ENROL_MIN_SECONDS:.0} s, about {:.0} s is advised",
                crate::features::ENROL_SECONDS_ADVISED
            ));
            return;
        }
        if let Some(p) = self.enrol.saved_path() {
            let kept = p
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .map_err(|e| e.to_string())
                .and_then(|_| crate::audio::write_wav_i16(&p, &x, r).map_err(|e| e.to_string()));
            if let Err(e) = kept {
                self.error = Some(format!(
                    "the enrolment is used, but cannot be kept for the next run in {}: {e}",
                    p.display()
                ));
            }
        }
        self.enrol.audio = vec![("recorded enrolment".into(), x, r)];
        self.enrol.learnt = None;
        if let Some(s) = self.source.clone() {
            self.start(s);
        }
    }

    /// (Re)starts the pipeline on `choice` with `clf`.
    fn start_with(&mut self, choice: SourceChoice, clf: Classifier) {
        if let Some(l) = self.live.take() {
            l.pipeline.stop();
        }
        self.enrol.learning = None;
        self.enrol_model = clf.card.features.enrolment();
        self.source = Some(choice.clone());
        let Some(clf) = self.apply_enrolment(&choice, clf) else {
            return;
        };
        let source: Box<dyn Source> = match &choice {
            SourceChoice::File(p) => match BufferSource::from_file(p, true) {
                Ok(s) => Box::new(s),
                Err(e) => {
                    self.error = Some(e.to_string());
                    return;
                }
            },
            SourceChoice::Mic(d) => {
                self.settings.device = d.clone();
                Box::new(MicSource::new(d.clone()))
            }
        };
        self.model_line = format!("{} ({})", clf.card.headline(), device_name(&clf.device));
        self.calm_reference = clf.extractor.calm_gate().is_some();
        let cfg = PipelineConfig {
            hop_seconds: self.settings.hop_seconds,
            ema_alpha: self.settings.smoothing,
            ..PipelineConfig::default()
        };
        let (tx, rx) = crossbeam_channel::bounded(256);
        match Pipeline::start_with_tap(source, clf, cfg, Some(tx)) {
            Ok(p) => {
                self.device_line = format!("{} - {} Hz", p.source_name, p.source_rate);
                self.spec = Some(spectrogram::ScrollingSpectrogram::new(
                    p.source_rate,
                    SHOW_SECONDS,
                ));
                self.live = Some(Live {
                    rate: p.source_rate,
                    pipeline: p,
                    audio_rx: rx,
                });
                self.error = None;
                // 5 s of zeros to start with, so the waveform lines up with the
                // spectrogram's time axis before 5 s have arrived.
                self.audio =
                    vec![0.0; (SHOW_SECONDS * self.rate().unwrap_or(0) as f32) as usize].into();
                self.rows.clear();
                self.latest = None;
            }
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    /// Switches the model (restarting the pipeline on the same source). A model that does
    /// not load changes nothing: the running one goes on and the error says why.
    pub fn use_model(&mut self, dir: PathBuf) {
        let clf = match self.load_model(&dir) {
            Ok(c) => c,
            Err(e) => {
                self.error = Some(format!(
                    "cannot switch to the model {}: {e}; still using {}",
                    crate::model::display_name(&dir),
                    crate::model::display_name(&self.model_dir())
                ));
                return;
            }
        };
        self.settings.model_dir = Some(dir.clone());
        if !self.models.contains(&dir) {
            self.models.push(dir);
        }
        match self.source.clone() {
            Some(s) => self.start_with(s, clf),
            None => self.error = None,
        }
    }

    /// The running model's line (card headline and device), empty before any start.
    pub fn model_line(&self) -> &str {
        &self.model_line
    }

    /// Whether a pipeline is running.
    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// Live source rate, if something is running.
    pub fn rate(&self) -> Option<u32> {
        self.live.as_ref().map(|l| l.rate)
    }

    /// Audio as it arrives from the pipeline's tap (also what tests feed).
    pub fn feed_audio(&mut self, chunk: &[f32], rate: u32) {
        self.training.feed(chunk, rate);
        if let Some((x, r)) = &mut self.enrol.recording {
            if *r == rate {
                x.extend_from_slice(chunk);
            }
        }
        if self
            .enrolment_recorded()
            .is_some_and(|s| s >= crate::features::ENROL_SECONDS_ADVISED)
        {
            self.finish_enrolment();
        }
        if !self.paused {
            if let Some(s) = &mut self.spec {
                s.push(chunk);
            }
            self.audio.extend(chunk);
            let keep = (SHOW_SECONDS * rate as f32) as usize;
            while self.audio.len() > keep {
                self.audio.pop_front();
            }
        }
    }

    /// A prediction as it arrives from the pipeline (also what tests feed).
    pub fn feed_prediction(&mut self, p: Prediction) {
        if self.paused {
            return;
        }
        self.rows.push(SessionRow {
            t_start: p.window_start,
            t_end: p.window_end,
            probs: p.probs,
            top: p.top.map(|t| LABELS[t].to_string()),
            speech: p.speech,
        });
        self.timing.latency_ms.push(p.latency_ms());
        self.latest = Some(p);
    }

    /// Takes what the pipeline produced since the last frame (never waits).
    fn poll(&mut self) {
        self.poll_learning();
        let Some(live) = &self.live else { return };
        let rate = live.rate;
        let chunks: Vec<Vec<f32>> = live.audio_rx.try_iter().collect();
        let preds: Vec<Prediction> = live.pipeline.predictions.try_iter().collect();
        for c in chunks {
            self.feed_audio(&c, rate);
        }
        for p in preds {
            self.feed_prediction(p);
        }
    }

    fn status_text(&self) -> String {
        let Some(live) = &self.live else {
            return match self.enrolment_held().filter(|_| self.learning_enrolment()) {
                Some((_, secs)) => format!(
                    "learning the enrolment from {secs:.0} s of audio: the model starts reading this voice in a few seconds"
                ),
                None => "not running".into(),
            };
        };
        let c = &live.pipeline.counters;
        let lat = self.timing.latency_ms.mean_of_last(50);
        let frame = self.timing.build_ms.mean_of_last(60);
        let profile = match self.latest.as_ref().and_then(|p| p.profile_seconds) {
            Some(s) if self.enrol_model && s <= 0.0 => {
                "   |   no enrolment: each window read alone (enrol to read this voice against its neutral speech)".into()
            }
            Some(s) if self.enrol_model => format!("   |   enrolment {s:.0} s of neutral speech"),
            Some(s) if self.calm_reference && s <= 0.0 => {
                "   |   calm reference: no calm speech heard yet, each window read alone".into()
            }
            Some(s) if self.calm_reference => {
                format!("   |   calm reference {s:.0} s of calm speech")
            }
            Some(s) if s < PROFILE_SETTLED_SECONDS => {
                format!("   |   speaker profile {s:.0} s of speech: still learning this voice")
            }
            Some(s) => format!("   |   speaker profile {s:.0} s of speech"),
            None => String::new(),
        };
        format!(
            "{}   |   model on {}   |   latency {:.0} ms   |   dropped samples {}   windows {}   reopens {}   |   UI {:.1} ms/frame{}",
            self.device_line,
            self.live.as_ref().map_or(String::new(), |l| l.pipeline.compute()),
            lat,
            c.dropped_samples.load(Ordering::Relaxed),
            c.dropped_windows.load(Ordering::Relaxed),
            c.reopens.load(Ordering::Relaxed),
            frame,
            profile
        )
    }

    /// The name of the file being played, once it has ended and every window is shown.
    pub fn ended_file(&self) -> Option<String> {
        let (Some(SourceChoice::File(p)), Some(live)) = (&self.source, &self.live) else {
            return None;
        };
        (live.pipeline.finished.load(Ordering::Acquire) && live.pipeline.predictions.is_empty())
            .then(|| {
                p.file_name()
                    .map_or(p.display().to_string(), |f| f.to_string_lossy().to_string())
            })
    }

    /// Sets the folder sessions are exported into.
    pub fn set_export_dir(&mut self, dir: &Path) {
        self.export_dir = dir.display().to_string();
    }

    /// Exports the session so far (CSV, JSON, PNG report) into the export folder.
    pub fn export(&mut self) {
        let stamp = chrono::Local::now();
        let dir = PathBuf::from(self.export_dir.trim())
            .join(stamp.format("session-%Y%m%d-%H%M%S").to_string());
        let meta = SessionMeta {
            model: self.model_line.clone(),
            source: self.device_line.clone(),
            date: stamp.format("%Y-%m-%d %H:%M").to_string(),
            compute: self.compute_line(),
        };
        self.export_msg = Some(match export_session(&dir, &meta, &self.rows) {
            Ok(_) => (
                false,
                format!("saved {} windows to {}", self.rows.len(), dir.display()),
            ),
            Err(e) => (true, e.to_string()),
        });
    }

    /// Frame and latency statistics so far, as JSON.
    pub fn stats_json(&self) -> serde_json::Value {
        let t = &self.timing;
        let c = self.live.as_ref().map(|l| &l.pipeline.counters);
        serde_json::json!({
            "frames": t.build_ms.total(),
            "ui_build_ms_p50": t.build_ms.percentile(0.5),
            "ui_build_ms_p95": t.build_ms.percentile(0.95),
            "frame_interval_ms_p50": t.interval_ms.percentile(0.5),
            "frame_interval_ms_p95": t.interval_ms.percentile(0.95),
            "windows": t.latency_ms.total(),
            "latency_ms_p50": t.latency_ms.percentile(0.5),
            "latency_ms_p95": t.latency_ms.percentile(0.95),
            "dropped_samples": c.map_or(0, |c| c.dropped_samples.load(Ordering::Relaxed)),
            "dropped_windows": c.map_or(0, |c| c.dropped_windows.load(Ordering::Relaxed)),
            "top": self.latest.as_ref().and_then(|p| p.top).map(|t| LABELS[t]),
        })
    }

    /// With `EMOSCOPE_FRAME_STATS=FILE`, rewrites FILE with [`Self::stats_json`] once a second.
    fn write_stats(&mut self) {
        let Some(p) = &self.stats_path else { return };
        if self.stats_written.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.stats_written = Instant::now();
        let _ = crate::util::write_atomic(p, self.stats_json().to_string().as_bytes());
    }
}

impl eframe::App for MonitorApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        // The clip folder and speaker live in the training tab's fields; taken from there
        // when saving rather than copied every frame.
        let settings = Settings {
            clips_dir: Some(self.training.dir_input.clone()),
            speaker: self.training.speaker.clone(),
            ..self.settings.clone()
        };
        eframe::set_value(storage, eframe::APP_KEY, &settings);
    }
}

/// Opens the monitor window; returns when it is closed. `model` given on the command line
/// wins over the model remembered from the last run; `default_model` is the fallback and
/// the "original" the training tab switches back to.
pub fn run_window(
    default_model: &Path,
    model: Option<PathBuf>,
    input: Option<PathBuf>,
    device: Option<String>,
    compute: Compute,
    enrol: Vec<PathBuf>,
) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1180.0, 720.0])
            .with_title("emoscope"),
        ..Default::default()
    };
    let model_dir = model.clone().unwrap_or_else(|| default_model.to_path_buf());
    eframe::run_native(
        "emoscope",
        options,
        Box::new(move |cc| {
            let mut settings: Settings = cc
                .storage
                .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
                .unwrap_or_default();
            if model.is_some() {
                settings.model_dir = model;
            }
            Ok(Box::new(MonitorApp::new(
                model_dir,
                input,
                device,
                settings,
                compute,
                &enrol,
                eframe::storage_dir("emoscope"),
            )))
        }),
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "cannot open the window: {e}; without a display use `emoscope monitor --headless`"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every built-in model is offered, the default first, wherever emoscope runs; from
    /// the source tree the shipped folders follow, each once.
    #[test]
    fn the_picker_offers_every_built_in_model_default_first() {
        let builtin = PathBuf::from(crate::model::BUILTIN_MODEL);
        let choices = model_choices(&builtin, None);
        assert_eq!(choices[0], builtin);
        assert!(choices.contains(&PathBuf::from("builtin:fusion")));
        assert!(choices.contains(&PathBuf::from("builtin:fusion_prosody")));
        let mut unique = choices.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), choices.len(), "{choices:?}");
        assert_eq!(short_model_name(&choices[1]), "fusion_prosody (built in)");
    }
}
