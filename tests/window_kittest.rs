//! The window's panels and the training-mode flow driven through egui_kittest (AccessKit
//! tree: what a screen reader would read is what is asserted), with no display.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use emoscope::labels::LABELS;
use emoscope::pipeline::export::SessionRow;
use emoscope::pipeline::Prediction;
use emoscope::ui::{panels, MonitorApp, Settings, SourceChoice, Tab};

/// Compares a rendered frame with `tests/snapshots/NAME.png` (egui_kittest, wgpu on the
/// CPU through Mesa's lavapipe; `UPDATE_SNAPSHOTS=1` rewrites them). Without any wgpu
/// adapter (no Vulkan/GL driver installed) it says so and checks nothing; CI installs
/// mesa-vulkan-drivers, so there it always compares.
fn snapshot<S>(h: &mut Harness<'_, S>, name: &str) {
    match h.render() {
        Ok(_) => h.snapshot(name),
        Err(e) if std::env::var_os("EMOSCOPE_REQUIRE_SNAPSHOTS").is_none() => {
            eprintln!("snapshot {name} skipped: cannot render ({e}); install mesa-vulkan-drivers")
        }
        Err(e) => panic!("snapshot {name}: cannot render: {e}"),
    }
}

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/emocnn")
}

fn probs(top: usize, p: f32) -> [f32; 8] {
    let mut v = [(1.0 - p) / 7.0; 8];
    v[top] = p;
    v
}

#[test]
fn emotion_bars_highlight_the_top_label() {
    let mut h = Harness::builder()
        .with_size([360.0, 260.0])
        .build_ui(|ui| panels::emotion_bars(ui, Some(&probs(4, 0.62)), Some(4), true));
    h.run();
    snapshot(&mut h, "emotion_bars_angry");
    h.get_by_label("angry  62 %"); // the heading
    h.get_by_label("angry 62 % (top)");
    h.get_by_label("sad 5 %");
    assert!(h.query_by_label_contains("(top)").is_some());
    assert_eq!(h.query_all_by_label_contains("(top)").count(), 1);
}

#[test]
fn emotion_bars_say_no_speech_or_waiting() {
    let mut h = Harness::builder()
        .with_size([360.0, 260.0])
        .build_ui(|ui| panels::emotion_bars(ui, Some(&probs(4, 0.62)), None, false));
    h.run();
    snapshot(&mut h, "emotion_bars_no_speech");
    h.get_by_label("no speech");
    assert!(
        h.query_by_label_contains("(top)").is_none(),
        "no label is highlighted without speech"
    );

    let mut h = Harness::new_ui(|ui| panels::emotion_bars(ui, None, None, false));
    h.run();
    h.get_by_label("waiting for the first window ...");
}

#[test]
fn waveform_reports_level_and_clipping() {
    let quiet: Vec<f32> = (0..16000).map(|i| 0.1 * (i as f32 * 0.06).sin()).collect();
    let mut h = Harness::new_ui(|ui| panels::waveform(ui, &quiet, quiet.len(), 5.0));
    h.run();
    h.get_by_label("waveform: last 5.0 s   peak -20.0 dBFS");

    let loud: Vec<f32> = quiet.iter().map(|x| (x * 20.0).clamp(-1.0, 1.0)).collect();
    let mut h = Harness::builder()
        .with_size([600.0, 130.0])
        .build_ui(|ui| panels::waveform(ui, &loud, loud.len(), 5.0));
    h.run();
    snapshot(&mut h, "waveform_clipping");
    h.get_by_label_contains("CLIPPING - lower the input gain");
}

#[test]
fn spectrogram_and_timeline_describe_what_they_show() {
    let mut h = Harness::new_ui(|ui| panels::spectrogram(ui, None, 5.0, 7600.0));
    h.run();
    h.get_by_label("log-mel spectrogram: last 5 s, up to 7600 Hz (no audio yet)");

    let rows: Vec<SessionRow> = (0..300)
        .map(|i| {
            let top = if i % 3 == 0 {
                None
            } else {
                Some(if i < 200 { 3 } else { 2 })
            };
            SessionRow {
                t_start: i as f64 * 0.5,
                t_end: 3.0 + i as f64 * 0.5,
                probs: probs(top.unwrap_or(0), 0.6),
                top: top.map(|t| LABELS[t].to_string()),
                speech: top.is_some(),
            }
        })
        .collect();
    let mut h = Harness::builder()
        .with_size([600.0, 160.0])
        .build_ui(|ui| panels::timeline(ui, &rows));
    h.run();
    snapshot(&mut h, "timeline");
    h.get_by_label("timeline: 152 s, 300 windows, 200 with speech, mostly sad");
}

#[test]
fn loss_curve_says_which_epoch() {
    let mut h = Harness::builder()
        .with_size([400.0, 110.0])
        .build_ui(|ui| panels::loss_curve(ui, &[2.0, 1.5, 1.2], 10));
    h.run();
    snapshot(&mut h, "loss_curve");
    h.get_by_label("training loss: epoch 3/10, 1.200");
}

/// The whole window (both tabs) at its default size, around `app`.
fn window(app: MonitorApp) -> Harness<'static, MonitorApp> {
    Harness::builder()
        .with_size([1180.0, 760.0])
        .build_ui_state(|ui, app: &mut MonitorApp| app.show(ui), app)
}

fn step_for(h: &mut Harness<'_, MonitorApp>, d: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < d {
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn prediction(i: u64, top: Option<usize>) -> Prediction {
    let now = Instant::now();
    Prediction {
        index: i,
        window_start: i as f64 * 0.5,
        window_end: i as f64 * 0.5 + 3.0,
        raw: probs(top.unwrap_or(0), 0.5),
        probs: probs(top.unwrap_or(0), 0.5),
        top,
        speech: top.is_some(),
        profile_seconds: None,
        last_sample_at: now,
        ready_at: now,
    }
}

/// record -> label -> list -> relabel -> delete, with audio from a real pipeline running
/// a synthetic file at real-time pace.
#[test]
fn training_mode_records_labels_lists_relabels_and_deletes_a_clip() {
    let tmp = tempfile::tempdir().unwrap();
    let clips = tmp.path().join("clips");
    let wav = tmp.path().join("voice.wav");
    let sig: Vec<f32> = (0..16000 * 20)
        .map(|i| {
            0.3 * (i as f32 * 2.0 * std::f32::consts::PI * 180.0 / 16000.0).sin()
                * (1.0 + (i as f32 / 4000.0).sin())
                / 2.0
        })
        .collect();
    emoscope::audio::write_wav_i16(&wav, &sig, 16000).unwrap();
    let settings = Settings {
        clips_dir: Some(clips.display().to_string()),
        speaker: "tester".into(),
        ..Settings::default()
    };
    let mut app = MonitorApp::idle(model_dir(), settings);
    app.start(SourceChoice::File(wav));
    assert!(app.error.is_none(), "{:?}", app.error);
    let mut h = window(app);
    h.step();
    h.get_by_label("training").click();
    h.step();
    assert_eq!(h.state().tab, Tab::Training);
    h.get_by_label_contains("0 clips in");
    // Key 5 picks the fifth label.
    h.key_press(egui::Key::Num5);
    h.step();
    assert_eq!(h.state().training.label, 4);
    h.get_by_label("record").click();
    h.step();
    assert!(h.state().training.recording.is_some());
    step_for(&mut h, Duration::from_millis(1200));
    h.get_by_label_contains("recording ");
    h.get_by_label("stop recording").click();
    h.step();
    h.step();
    let t = &h.state().training;
    assert!(t.recording.is_none());
    let store = t.store.as_ref().unwrap();
    assert_eq!(store.clips.len(), 1, "{:?}", t.message);
    assert_eq!(store.clips[0].label, 4);
    assert_eq!(store.clips[0].speaker, "tester");
    let file = store.clips[0].file.clone();
    assert!(file.starts_with("angry-"), "{file}");
    let audio = emoscope::audio::decode_file(&clips.join(&file)).unwrap();
    let secs = audio.samples.len() as f64 / audio.sample_rate as f64;
    assert!(
        (0.5..3.0).contains(&secs),
        "clip of {secs} s (1.2 s of recording)"
    );
    let csv = std::fs::read_to_string(clips.join("labels.csv")).unwrap();
    assert_eq!(csv, format!("path,emotion,speaker\n{file},angry,tester\n"));
    // Listed, with the count per label.
    h.get_by_label("1 clips: angry 1");
    h.get_by_label(&file);
    h.get_by_label_contains("waveform: last");
    // Relabel through the store (the combo box lists the eight labels).
    h.state_mut().training.relabel(0, 3);
    h.step();
    h.get_by_label("1 clips: sad 1");
    assert!(std::fs::read_to_string(clips.join("labels.csv"))
        .unwrap()
        .contains(",sad,tester"));
    // Delete.
    h.get_by_label(&format!("delete {file}")).click();
    h.step();
    h.step();
    assert!(h.state().training.store.as_ref().unwrap().clips.is_empty());
    assert!(!clips.join(&file).exists());
    assert_eq!(
        std::fs::read_to_string(clips.join("labels.csv")).unwrap(),
        "path,emotion,speaker\n"
    );
    h.get_by_label_contains(&format!("deleted {file}"));
    // Holding space records too.
    h.key_down(egui::Key::Space);
    h.step();
    assert!(
        h.state().training.recording.is_some(),
        "space down starts recording"
    );
    step_for(&mut h, Duration::from_millis(800));
    h.key_up(egui::Key::Space);
    h.step();
    assert_eq!(
        h.state().training.store.as_ref().unwrap().clips.len(),
        1,
        "{:?}",
        h.state().training.message
    );
}

#[test]
fn monitor_tab_shows_predictions_and_exports_the_session() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = Settings {
        clips_dir: Some(tmp.path().join("clips").display().to_string()),
        ..Settings::default()
    };
    let mut app = MonitorApp::idle(model_dir(), settings);
    for i in 0..20 {
        app.feed_prediction(prediction(i, if i % 5 == 4 { None } else { Some(4) }));
    }
    app.feed_prediction(prediction(20, Some(4)));
    let mut h = window(app);
    h.step();
    h.get_by_label("angry 50 % (top)");
    h.get_by_label("timeline: 13 s, 21 windows, 17 with speech, mostly angry");
    h.state_mut().set_export_dir(Path::new("sessions"));
    h.step();
    snapshot(&mut h, "monitor_tab");
    let export_dir = tmp.path().join("sessions");
    h.get_by_label("export the session (CSV, JSON, PNG report) to:");
    h.state_mut().set_export_dir(&export_dir);
    h.get_by_label("export session").click();
    h.step();
    h.get_by_label_contains("saved 21 windows to");
    let session = std::fs::read_dir(&export_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let csv = std::fs::read_to_string(session.join("session.csv")).unwrap();
    assert_eq!(csv.lines().count(), 22);
    assert!(session.join("report.png").exists() && session.join("session.json").exists());
    let _ = LABELS;
}

/// The training tab's fine-tune button on real clips (RAVDESS actor 2, listed in the
/// clip folder's labels.csv as if recorded there): the background run shows progress,
/// before/after scores on held-out clips, and the new model can be switched to and back.
#[test]
fn training_tab_fine_tunes_in_the_background_and_switches_models() {
    if common::no_data("training_tab_fine_tunes_in_the_background_and_switches_models") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let clips = tmp.path().join("clips");
    std::fs::create_dir_all(&clips).unwrap();
    let actor = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/ravdess/Actor_02");
    let mut csv = String::from("path,emotion,speaker\n");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&actor)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files.iter().filter(|f| {
        // statement 01, repetition 1: 8 emotions x 2 intensities (neutral: 1) = 15 clips
        let n = f.file_stem().unwrap().to_str().unwrap().to_string();
        n.split('-').nth(4) == Some("01") && n.split('-').nth(5) == Some("01")
    }) {
        let code: usize = f.file_stem().unwrap().to_str().unwrap()[6..8]
            .parse()
            .unwrap();
        // A clip folder lists its own files (paths leading outside are refused).
        let name = f.file_name().unwrap();
        std::fs::copy(f, clips.join(name)).unwrap();
        csv.push_str(&format!(
            "{},{},actor2\n",
            name.to_str().unwrap(),
            LABELS[code - 1]
        ));
    }
    std::fs::write(clips.join("labels.csv"), &csv).unwrap();
    let settings = Settings {
        clips_dir: Some(clips.display().to_string()),
        ..Settings::default()
    };
    let mut app = MonitorApp::idle(model_dir(), settings);
    app.tab = Tab::Training;
    app.training.epochs = 2;
    let mut h = window(app);
    h.step();
    h.get_by_label(
        "15 clips: neutral 1, calm 2, happy 2, sad 2, angry 2, fearful 2, disgust 2, surprised 2",
    );
    h.get_by_label("fine-tune").click();
    h.step();
    let t0 = Instant::now();
    while h
        .state()
        .training
        .job
        .as_ref()
        .is_none_or(|j| j.done.is_none())
    {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "fine-tuning did not finish"
        );
        h.step();
        std::thread::sleep(Duration::from_millis(100));
    }
    h.step();
    let job = h.state().training.job.as_ref().unwrap();
    let out = match &job.done {
        Some(Ok(out)) => out.clone(),
        other => panic!("fine-tuning failed: {other:?}"),
    };
    assert_eq!(job.losses.len(), 2);
    // 30 % of each label with two clips: one each, 7 held out (neutral's single clip trains).
    assert_eq!(job.before.as_ref().unwrap().n, 7);
    assert_eq!(job.after.as_ref().unwrap().n, 7);
    h.get_by_label_contains("before: ");
    assert_eq!(
        h.query_all_by_label_contains("% accuracy (UAR").count(),
        2,
        "before and after"
    );
    h.get_by_label_contains("training loss: epoch 2/2");
    assert!(
        h.query_by_label("switch back to the original model")
            .is_none(),
        "offered only while another model is in use"
    );
    assert!(out.join("card.json").exists() && out.starts_with(&clips));
    h.get_by_label("use the fine-tuned model").click();
    h.step();
    assert_eq!(h.state().settings.model_dir.as_deref(), Some(out.as_path()));
    h.step();
    h.get_by_label("switch back to the original model").click();
    h.step();
    assert_eq!(
        h.state().settings.model_dir.as_deref(),
        Some(model_dir().as_path())
    );
}

/// Settings survive a restart: what `eframe::App::save` stores is what the next start reads.
#[test]
fn settings_are_remembered_between_runs() {
    #[derive(Default)]
    struct Mem(std::collections::HashMap<String, String>);
    impl eframe::Storage for Mem {
        fn get_string(&self, key: &str) -> Option<String> {
            self.0.get(key).cloned()
        }
        fn set_string(&mut self, key: &str, value: String) {
            self.0.insert(key.to_string(), value);
        }
        fn remove_string(&mut self, key: &str) {
            self.0.remove(key);
        }
        fn flush(&mut self) {}
    }
    let tmp = tempfile::tempdir().unwrap();
    let settings = Settings {
        device: Some("USB mic".into()),
        hop_seconds: 1.0,
        smoothing: 0.3,
        clips_dir: Some(tmp.path().display().to_string()),
        speaker: "ana".into(),
        model_dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/paper1_cnn")),
    };
    let mut app = MonitorApp::idle(model_dir(), settings.clone());
    let mut mem = Mem::default();
    eframe::App::save(&mut app, &mut mem);
    let back: Settings = eframe::get_value(&mem, eframe::APP_KEY).unwrap();
    assert_eq!(back, settings);
    // A remembered model that no longer exists falls back to the default.
    let gone = Settings {
        model_dir: Some(tmp.path().join("deleted-model")),
        ..settings
    };
    let app = MonitorApp::idle(model_dir(), gone);
    assert_eq!(
        app.settings.model_dir.as_deref(),
        Some(model_dir().as_path())
    );
}

/// Without the microphone asked for, the window says so and offers to play a file; a
/// file typed there starts the same pipeline.
#[test]
fn a_missing_microphone_is_explained_and_a_file_can_be_played_instead() {
    if common::no_data("a_missing_microphone_is_explained_and_a_file_can_be_played_instead") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let settings = Settings {
        clips_dir: Some(tmp.path().display().to_string()),
        ..Settings::default()
    };
    let mut app = MonitorApp::idle(model_dir(), settings);
    app.start(SourceChoice::Mic(Some("no such microphone".into())));
    let mut h = window(app);
    h.step();
    h.get_by_label_contains("no input device named 'no such microphone'");
    h.get_by_label_contains("Type the path of an audio file above");
    let clip = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/ravdess/Actor_02/03-01-05-02-02-02-02.flac");
    h.get_by_label("audio file:").focus();
    h.step();
    h.get_by_label("audio file:")
        .type_text(&clip.display().to_string());
    h.step();
    h.get_by_label("play file").click();
    h.step();
    assert!(h.state().error.is_none(), "{:?}", h.state().error);
    assert_eq!(h.state().source, Some(SourceChoice::File(clip)));
    assert!(h.state().rate() == Some(16000));
    assert!(h.query_by_label_contains("no input device").is_none());
}

/// A file that has played to its end says so in the status bar and offers to play it
/// again; without a microphone the window offers the built-in demo clip.
#[test]
fn a_file_that_ends_says_so_and_can_be_played_again() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("short.wav");
    let sig: Vec<f32> = (0..16000 * 2)
        .map(|i| 0.2 * (i as f32 * 2.0 * std::f32::consts::PI * 200.0 / 16000.0).sin())
        .collect();
    emoscope::audio::write_wav_i16(&wav, &sig, 16000).unwrap();
    let settings = Settings {
        clips_dir: Some(tmp.path().join("clips").display().to_string()),
        ..Settings::default()
    };
    let mut app = MonitorApp::idle(model_dir(), settings);
    app.start(SourceChoice::Mic(Some("no such microphone".into())));
    let mut h = window(app);
    h.step();
    h.get_by_label("play the demo clip").click();
    h.step();
    assert!(h.state().error.is_none(), "{:?}", h.state().error);
    assert_eq!(
        h.state().source,
        Some(SourceChoice::File(PathBuf::from(
            emoscope::audio::DEMO_CLIP
        )))
    );
    assert_eq!(h.state().rate(), Some(16000));

    h.state_mut().start(SourceChoice::File(wav));
    h.step();
    assert!(h.query_by_label("play again").is_none(), "still playing");
    let t0 = Instant::now();
    while h.state().ended_file().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the 2 s file never ended"
        );
        h.step();
        std::thread::sleep(Duration::from_millis(50));
    }
    h.step();
    h.get_by_label("end of short.wav: every window of the file has been shown");
    h.get_by_label_contains("timeline: 3 s, 1 windows");
    h.get_by_label("play again").click();
    h.step();
    assert!(
        h.state().ended_file().is_none(),
        "playing from the start again"
    );
    h.step();
    assert!(h.query_by_label("play again").is_none());
}

/// Switching to a broken model (weights cut short) keeps the running model and its
/// pipeline, says why, and remembers nothing of the broken one; windows keep coming.
#[test]
fn switching_to_a_broken_model_keeps_the_running_one_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("voice.wav");
    let sig: Vec<f32> = (0..16000 * 10)
        .map(|i| 0.3 * (i as f32 * 2.0 * std::f32::consts::PI * 180.0 / 16000.0).sin())
        .collect();
    emoscope::audio::write_wav_i16(&wav, &sig, 16000).unwrap();
    let broken = tmp.path().join("broken-model");
    std::fs::create_dir(&broken).unwrap();
    std::fs::copy(model_dir().join("card.json"), broken.join("card.json")).unwrap();
    let weights = std::fs::read(model_dir().join("model.safetensors")).unwrap();
    std::fs::write(
        broken.join("model.safetensors"),
        &weights[..weights.len() / 2],
    )
    .unwrap();
    let settings = Settings {
        clips_dir: Some(tmp.path().display().to_string()),
        ..Settings::default()
    };
    let mut app = MonitorApp::idle(model_dir(), settings);
    app.start(SourceChoice::File(wav));
    assert!(app.error.is_none(), "{:?}", app.error);
    let line = app.model_line().to_string();
    app.use_model(broken.clone());
    let e = app.error.clone().unwrap_or_default();
    assert!(
        e.contains("cannot switch to the model") && e.contains("broken-model"),
        "{e}"
    );
    assert!(
        e.contains("safetensors") && e.contains("still using"),
        "{e}"
    );
    assert!(app.is_live(), "the running pipeline was stopped");
    assert_eq!(app.model_line(), line);
    assert_eq!(
        app.settings.model_dir.as_deref(),
        Some(model_dir().as_path())
    );
    let mut h = window(app);
    step_for(&mut h, Duration::from_millis(4000));
    assert!(
        !h.state().rows.is_empty(),
        "no windows after the failed switch"
    );
    h.get_by_label_contains("cannot switch to the model");
}

/// The compute picker: the status bar names where the model runs; asking for a GPU this
/// build lacks reloads the model on the CPU, the line says why, and the stream goes on.
#[test]
fn the_compute_picker_names_where_the_model_runs_and_falls_back_to_the_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = Settings {
        clips_dir: Some(tmp.path().join("clips").display().to_string()),
        ..Settings::default()
    };
    let mut app = MonitorApp::idle(model_dir(), settings);
    app.start(SourceChoice::File(PathBuf::from(
        emoscope::audio::DEMO_CLIP,
    )));
    assert_eq!(app.compute_line(), "CPU");
    let mut h = window(app);
    h.step();
    h.get_by_label("compute");
    h.get_by_label_contains("model on CPU");
    if !emoscope::model::CUDA_BUILT {
        h.state_mut().use_compute(emoscope::model::Compute::Cuda(0));
        h.step();
        assert!(h.state().error.is_none(), "{:?}", h.state().error);
        let line = h.state().compute_line();
        assert!(
            line.starts_with(
                "CPU (--compute cuda:0 asked for a GPU, but this emoscope was built without CUDA"
            ),
            "{line}"
        );
        assert_eq!(h.state().rate(), Some(16000), "the demo clip plays on");
    }
}

/// The top bar names each picker before it, as every other control of the window is named
/// ("input [clip.wav v]", not "[clip.wav v] input").
#[test]
fn the_top_bar_puts_each_label_before_its_picker() {
    let mut app = MonitorApp::idle(model_dir(), Settings::default());
    app.start(SourceChoice::File(PathBuf::from(
        emoscope::audio::DEMO_CLIP,
    )));
    let mut h = window(app);
    h.step();
    for name in ["input", "model", "compute"] {
        let label = h
            .get_by(|n| {
                n.role() == egui::accesskit::Role::Label && n.value().as_deref() == Some(name)
            })
            .rect();
        // Label queries skip a label that names another widget: this is the picker.
        let picker = h.get_by_label(name).rect();
        assert!(
            label.max.x <= picker.min.x && (label.center().y - picker.center().y).abs() < 8.0,
            "{name}: label at {label:?}, picker at {picker:?}"
        );
    }
}

/// A recording stopped between writing its clip and listing it is offered when the
/// folder is opened: "list them" lists it under the label its name carries.
#[test]
fn the_training_tab_offers_recordings_left_unlisted() {
    let tmp = tempfile::tempdir().unwrap();
    let clips = tmp.path().join("clips");
    std::fs::create_dir_all(&clips).unwrap();
    let tone: Vec<f32> = (0..8000).map(|i| 0.2 * (i as f32 * 0.07).sin()).collect();
    emoscope::audio::write_wav_i16(&clips.join("fearful-20261206-090000-00.wav"), &tone, 16000)
        .unwrap();
    let settings = Settings {
        clips_dir: Some(clips.display().to_string()),
        speaker: "tester".into(),
        ..Settings::default()
    };
    let mut h = window(MonitorApp::idle(model_dir(), settings));
    h.step();
    h.get_by_label("training").click();
    h.step();
    h.get_by_label_contains("1 complete recordings here are not in the list");
    h.get_by_label("list them").click();
    h.step();
    h.step();
    h.get_by_label("listed 1 recordings as tester");
    h.get_by_label("1 clips: fearful 1");
    let store = emoscope::corpus::store::ClipStore::open(&clips).unwrap();
    assert_eq!(store.clips.len(), 1);
    assert_eq!(store.clips[0].label, 5);
    assert_eq!(store.clips[0].speaker, "tester");
}

/// RAVDESS actor 2's four neutral statements back to back, and their rate.
fn actor2_neutral() -> (Vec<f32>, u32) {
    let actor2 = common::data_dir().join("ravdess/Actor_02");
    let mut neutral = Vec::new();
    let mut rate = 0;
    for name in ["01-01", "01-02", "02-01", "02-02"] {
        let c = emoscope::audio::decode_file(&actor2.join(format!("03-01-01-01-{name}-02.flac")))
            .unwrap();
        rate = c.sample_rate;
        neutral.extend(c.samples);
    }
    (neutral, rate)
}

/// Steps the window until a label containing `text` shows, failing with `why` after 30 s.
fn wait_for_label(h: &mut Harness<'_, MonitorApp>, text: &str, why: &str) {
    let t0 = Instant::now();
    while h.query_by_label_contains(text).is_none() {
        assert!(t0.elapsed() < Duration::from_secs(30), "{why}");
        step_for(h, Duration::from_millis(200));
    }
}

/// The default's enrolment recorded in the window: refused before a source runs and when
/// shorter than 3 s (nothing changes); otherwise recorded from the audio the source
/// delivers (actor 2's four neutral statements, over and over, fed as the pipeline's tap
/// would), ended by itself at 30 s, and the pipeline restarts reading against it: the
/// status line says how much neutral speech it holds.
#[test]
fn an_enrolment_recorded_in_the_window_is_read_against() {
    if common::no_data("an_enrolment_recorded_in_the_window_is_read_against") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let settings = Settings {
        clips_dir: Some(tmp.path().join("clips").display().to_string()),
        ..Settings::default()
    };
    let mut app = MonitorApp::idle(PathBuf::from(emoscope::model::BUILTIN_MODEL), settings);
    let store = tmp.path().join("data");
    app.keep_enrolment_in(Some(store.clone()));
    assert!(app.enrolment_held().is_none() && app.error.is_none());
    app.start_enrolment();
    assert!(app
        .error
        .as_deref()
        .unwrap_or("")
        .contains("start the microphone first"));
    let actor2 = common::data_dir().join("ravdess/Actor_02");
    app.start(SourceChoice::File(actor2.join("03-01-05-02-02-02-02.flac")));
    assert!(app.enrol_model && app.is_live(), "{:?}", app.error);
    let rate = app.rate().unwrap();
    app.start_enrolment();
    app.feed_audio(&vec![0.0; rate as usize], rate);
    app.finish_enrolment();
    assert!(
        app.error.as_deref().unwrap_or("").contains("too short"),
        "{:?}",
        app.error
    );
    let (neutral, neutral_rate) = actor2_neutral();
    assert_eq!(neutral_rate, rate);
    app.error = None;
    app.start_enrolment();
    let mut fed = 0;
    while app.enrolment_recorded().is_some() {
        let chunk = &neutral
            [fed % neutral.len()..(fed % neutral.len() + rate as usize / 10).min(neutral.len())];
        app.feed_audio(chunk, rate);
        fed += chunk.len();
        assert!(fed < 40 * rate as usize, "the enrolment never ended");
    }
    assert!(
        (30.0..30.2).contains(&(fed as f64 / rate as f64)),
        "{fed} samples fed"
    );
    assert!(app.error.is_none(), "{:?}", app.error);
    // Kept for the next run: the 30 s recorded, as 16-bit WAV in the window's data folder.
    let kept = emoscope::audio::decode_file(&store.join(emoscope::ui::ENROL_FILE)).unwrap();
    assert_eq!(kept.sample_rate, rate);
    assert!((kept.samples.len() as f64 / rate as f64 - 30.0).abs() < 0.2);
    // Learnt on its own thread; the source starts once it is.
    assert!(app.learning_enrolment() || app.is_live());
    let mut h = window(app);
    wait_for_label(
        &mut h,
        "s of neutral speech",
        "no window read against the enrolment",
    );
    assert!(h.query_by_label_contains("no enrolment").is_none());
}

/// A recorded enrolment is kept for the next run: a window started with the data folder
/// that holds one reads the voice against it without recording again (learnt on its own
/// thread, the status line saying so meanwhile), and "forget this voice" deletes the file
/// and reads each window alone. A kept file that cannot be read is an error naming it,
/// and the file is left as it was.
#[test]
fn a_kept_enrolment_is_read_back_and_forgotten_on_request() {
    if common::no_data("a_kept_enrolment_is_read_back_and_forgotten_on_request") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("data");
    std::fs::create_dir_all(&store).unwrap();
    let kept = store.join(emoscope::ui::ENROL_FILE);
    let actor2 = common::data_dir().join("ravdess/Actor_02");
    let (neutral, rate) = actor2_neutral();
    emoscope::audio::write_wav_i16(&kept, &neutral, rate).unwrap();
    let secs = neutral.len() as f64 / rate as f64;

    let mut app = MonitorApp::idle(
        PathBuf::from(emoscope::model::BUILTIN_MODEL),
        Settings::default(),
    );
    app.keep_enrolment_in(Some(store.clone()));
    let (what, held) = app
        .enrolment_held()
        .expect("the kept enrolment is read back");
    assert!(what.starts_with("saved enrolment of "), "{what}");
    assert!((held - secs).abs() < 0.01, "{held} s against {secs} s");
    app.start(SourceChoice::File(actor2.join("03-01-05-02-02-02-02.flac")));
    assert!(app.error.is_none(), "{:?}", app.error);
    let mut h = window(app);
    wait_for_label(
        &mut h,
        "s of neutral speech",
        "no window read against the kept enrolment",
    );
    h.get_by_label_contains("enrolment: saved enrolment of");
    h.get_by_label("forget this voice").click();
    h.step();
    assert!(!kept.exists(), "the kept enrolment is deleted");
    assert!(h.state().enrolment_held().is_none());
    wait_for_label(
        &mut h,
        "no enrolment: each window read alone",
        "no window read alone after forgetting",
    );

    // A kept file cut short: one error naming it; nothing held, the file left as it was.
    emoscope::audio::write_wav_i16(&kept, &neutral[..rate as usize], rate).unwrap();
    let cut = std::fs::read(&kept).unwrap()[..30].to_vec();
    std::fs::write(&kept, &cut).unwrap();
    let mut app = MonitorApp::idle(
        PathBuf::from(emoscope::model::BUILTIN_MODEL),
        Settings::default(),
    );
    app.keep_enrolment_in(Some(store.clone()));
    let err = app.error.clone().unwrap_or_default();
    assert!(
        err.contains(&kept.display().to_string()) && err.contains("cannot be read"),
        "{err}"
    );
    assert!(app.enrolment_held().is_none());
    assert_eq!(std::fs::read(&kept).unwrap(), cut);
}
