//! The command line: argument definitions (clap) and one small function per command that
//! calls into the library and reports errors with context. No signal processing here.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::audio::{dbfs, decode_file, peak, resample, rms, PcmWav};
use crate::features::{FeatureExtractor, FeatureKind, FeatureSpec};
use crate::npy::write_npy_f32;

mod encode;
mod head;
mod live;
mod recognition;

#[derive(Parser, Debug)]
#[command(
    name = "emoscope",
    version,
    about = "Real-time speech emotion monitor: waveform, spectrogram and eight emotion bars",
    long_about = "emoscope analyses emotional speech.\n\n\
        Typical first steps:\n  \
        emoscope                                     the monitor window (microphone) and training tab\n  \
        emoscope monitor --input talk.wav            the window playing a file (no microphone needed)\n  \
        emoscope demo                                the built-in demo clip through the built-in model\n  \
        emoscope analyze clip.wav                    emotion per 3 s window, with the built-in model\n  \
        emoscope info clip.flac                      show format, rate, level\n  \
        emoscope features clip.wav --kind mfcc --out m.npy   librosa-identical features\n\n\
        Features match librosa 0.11 (Slaney mel, center=True, power_to_db ref 1, top_db 80)."
)]
pub struct Cli {
    /// Without a command: the monitor window on the default microphone.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print an audio file's format, sample rate, channels, duration, peak and RMS level.
    Info(InfoArgs),
    /// Compute a mel spectrogram or MFCCs exactly as librosa does and save them as .npy.
    Features(FeaturesArgs),
    /// Classify emotions in audio files: probabilities per 3 s window and a whole-file summary.
    Analyze(recognition::AnalyzeArgs),
    /// Analyse the demo clip built into emoscope (a synthetic voice, calm then loud): a
    /// first check that everything runs, from any folder, with nothing else installed.
    Demo(DemoArgs),
    /// Run the pretrained speech encoder over labelled clips once and cache its vectors.
    Encode(encode::EncodeArgs),
    /// Train a model on labelled corpora with speakers held out (or k folds by speaker).
    Train(recognition::TrainCmdArgs),
    /// Evaluate a model on labelled clips: accuracy, UAR, F1, ROC-AUC, calibration, confusion.
    Eval(recognition::EvalArgs),
    /// Refit a model's softmax temperature on its validation speakers; shows calibration before and after.
    Calibrate(recognition::CalibrateArgs),
    /// Average trained models into one (an ensemble), usable wherever a model is.
    Ensemble(recognition::EnsembleArgs),
    /// Fine-tune a model on your own labelled clips; prints accuracy on held-out clips before and after.
    Finetune(recognition::FinetuneArgs),
    /// Add labelled recordings to a clip folder of the training mode (its labels.csv).
    Import(ImportArgs),
    /// Turn a headless session's JSON lines into CSV, JSON and a one-page PNG report.
    Report(live::ReportArgs),
    /// List audio input devices and their default configurations.
    Devices,
    /// Live emotion monitor window (or --headless JSON lines): microphone or --input FILE.
    Monitor(live::MonitorArgs),
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    emoscope demo                 windows and summary of the demo clip (as `emoscope analyze builtin:demo`)\n  \
    emoscope demo --window        the monitor window playing it\n\n\
    The clip (assets/demo.flac) is a formant-synthesised voice, not an actor: it shows that\n\
    decoding, voice activity and the model run, not how accurate the model is.")]
pub struct DemoArgs {
    #[command(flatten)]
    pub how: recognition::AnalyzeHow,
    /// Open the monitor window playing the clip instead.
    #[arg(long, conflicts_with = "json")]
    pub window: bool,
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    emoscope import --dir my-clips --label angry --speaker me take1.wav take2.flac\n  \
    emoscope finetune --data csv=my-clips/labels.csv      then fine-tune on them\n\n\
    Each file is decoded, stored in the folder as a 16-bit WAV at its own rate and listed in\n\
    labels.csv, one at a time and atomically: interrupted at any point, every clip listed\n\
    before stays intact and the list stays readable. The folder is the one the window's\n\
    training tab opens.")]
pub struct ImportArgs {
    /// The clip folder (created if needed).
    #[arg(long)]
    pub dir: PathBuf,
    /// The emotion of every file: neutral, calm, happy, sad, angry, fearful, disgust,
    /// surprised (or a synonym such as anger, fear, joy).
    #[arg(long)]
    pub label: String,
    /// Who speaks in the files (kept per clip, so evaluation can hold speakers out).
    #[arg(long)]
    pub speaker: String,
    /// Audio files (WAV, FLAC, MP3, OGG/Vorbis).
    #[arg(required = true)]
    pub audio: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Audio files (WAV, FLAC, MP3, OGG/Vorbis).
    #[arg(required = true)]
    pub audio: Vec<PathBuf>,
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    emoscope features speech.wav --kind mel --db --out mel_db.npy\n  \
    emoscope features speech.flac --kind mfcc --sr 22050 --n-fft 4096 --hop-length 1024 --n-mfcc 40 --out m.npy\n\n\
    The output is float32, C order, shape (n_mels or n_mfcc, frames); load it with numpy.load.\n\
    Equivalent librosa call: librosa.feature.melspectrogram(y=y, sr=sr, n_fft=..., hop_length=..., n_mels=..., fmin=..., fmax=...)\n\
    (then librosa.power_to_db for --db), or librosa.feature.mfcc(y=y, sr=sr, n_mfcc=..., same mel arguments).")]
pub struct FeaturesArgs {
    /// Input audio file (WAV, FLAC, MP3, OGG/Vorbis); multi-channel audio is averaged to mono.
    pub audio: PathBuf,
    /// Feature kind: `mel` (mel spectrogram) or `mfcc`.
    #[arg(long, value_enum, default_value = "mel")]
    pub kind: FeatureKind,
    /// Resample to this rate (Hz) first; default: the file's own rate.
    #[arg(long)]
    pub sr: Option<u32>,
    /// FFT size in samples (also the Hann window length).
    #[arg(long, default_value_t = 2048)]
    pub n_fft: usize,
    /// Samples between frames.
    #[arg(long, default_value_t = 512)]
    pub hop_length: usize,
    /// Number of mel bands.
    #[arg(long, default_value_t = 128)]
    pub n_mels: usize,
    /// Number of MFCCs kept (for --kind mfcc).
    #[arg(long, default_value_t = 20)]
    pub n_mfcc: usize,
    /// Lowest mel frequency, Hz.
    #[arg(long, default_value_t = 0.0)]
    pub fmin: f32,
    /// Highest mel frequency, Hz (default: half the sample rate).
    #[arg(long)]
    pub fmax: Option<f32>,
    /// Mel only: output power_to_db(S, ref=1, amin=1e-10, top_db=80) instead of power.
    #[arg(long)]
    pub db: bool,
    /// Output .npy path.
    #[arg(long, short)]
    pub out: PathBuf,
}

/// Parses the command line, runs the command, and returns the process exit code.
pub fn main() -> i32 {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            1
        }
    }
}

/// A reader that stops reading emoscope's standard output (`emoscope analyze ... | head`)
/// ends the program quietly with status 141, as a closed pipe ends other command-line
/// tools (the status a shell reports for SIGPIPE), instead of a panic and a backtrace.
/// Files the command writes (`eval --json/--plot/--predictions`) are written before it prints.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// The error and its causes on one line, each cause once (library errors already quote
/// the I/O error they wrap).
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

pub fn run(cli: Cli) -> Result<()> {
    let Some(command) = cli.command else {
        return crate::ui::run_window(
            &recognition::model_dir(&None),
            None,
            None,
            None,
            crate::model::Compute::Auto,
            Vec::new(),
        );
    };
    match command {
        Command::Info(a) => info(a),
        Command::Features(a) => features(a),
        Command::Analyze(a) => recognition::analyze(a),
        Command::Demo(a) => {
            if a.window {
                return crate::ui::run_window(
                    &recognition::model_dir(&None),
                    a.how.model,
                    Some(PathBuf::from(crate::audio::DEMO_CLIP)),
                    None,
                    a.how.compute.compute,
                    Vec::new(),
                );
            }
            recognition::analyze(recognition::AnalyzeArgs {
                audio: vec![PathBuf::from(crate::audio::DEMO_CLIP)],
                same_speaker: false,
                enrol: Vec::new(),
                how: a.how,
            })
        }
        Command::Encode(a) => encode::encode(a),
        Command::Train(a) => {
            crate::util::keep_large_buffers();
            recognition::train(a)
        }
        Command::Eval(a) => recognition::eval(a),
        Command::Finetune(a) => recognition::finetune(a),
        Command::Calibrate(a) => recognition::calibrate(a),
        Command::Ensemble(a) => recognition::ensemble(a),
        Command::Devices => live::devices(),
        Command::Import(a) => import(a),
        Command::Report(a) => live::report(a),
        Command::Monitor(a) => live::monitor(a, None),
    }
}

fn info(a: InfoArgs) -> Result<()> {
    for path in &a.audio {
        let clip = decode_file(path)?;
        let (pk, r) = (peak(&clip.samples), rms(&clip.samples));
        println!("{}", path.display());
        println!("  format:      {}", clip.format);
        println!("  sample rate: {} Hz", clip.sample_rate);
        println!("  channels:    {}", clip.channels);
        println!(
            "  duration:    {:.3} s ({} samples)",
            clip.duration(),
            clip.samples.len()
        );
        println!("  peak:        {:.4} ({:.1} dBFS)", pk, dbfs(pk));
        println!("  rms:         {:.4} ({:.1} dBFS)", r, dbfs(r));
    }
    Ok(())
}

fn import(a: ImportArgs) -> Result<()> {
    let label = crate::labels::map_label(&a.label).ok_or_else(|| {
        anyhow::anyhow!(
            "--label {}: not an emotion emoscope knows; use one of {}",
            a.label,
            crate::labels::LABELS.join(", ")
        )
    })?;
    let mut store = crate::corpus::store::ClipStore::open(&a.dir)?;
    if !store.unlisted.is_empty() {
        eprintln!(
            "note: {} complete recordings in {} are not in its labels.csv (an import or \
             recording stopped before listing them): {}; the window's training tab lists \
             or deletes them",
            store.unlisted.len(),
            store.dir.display(),
            store.unlisted.join(", ")
        );
    }
    for path in &a.audio {
        let clip = decode_file(path)?;
        let i = store.add(&clip.samples, clip.sample_rate, label, &a.speaker)?;
        println!(
            "{} -> {} ({}, {:.2} s)",
            path.display(),
            store.path_of(i)?.display(),
            crate::labels::LABELS[label],
            clip.duration()
        );
    }
    println!(
        "{} clips in {}",
        store.clips.len(),
        store.csv_path().display()
    );
    Ok(())
}

fn features(a: FeaturesArgs) -> Result<()> {
    let what = a.audio.display().to_string();
    let spec_at = |sample_rate: u32| FeatureSpec {
        kind: a.kind,
        sample_rate,
        n_fft: a.n_fft,
        hop_length: a.hop_length,
        n_mels: a.n_mels,
        n_mfcc: a.n_mfcc,
        fmin: a.fmin,
        fmax: a.fmax,
        db: a.db,
        ..FeatureSpec::default()
    };
    // A PCM WAV at the wanted rate is read block by block as the frames need it.
    let m = match PcmWav::open(&a.audio)? {
        Some(wav) if a.sr.is_none_or(|sr| sr == wav.sample_rate()) => {
            FeatureExtractor::new(&spec_at(wav.sample_rate()))?.compute_from(&what, &wav)?
        }
        _ => {
            let clip = decode_file(&a.audio)?;
            let sr = a.sr.unwrap_or(clip.sample_rate);
            let extractor = FeatureExtractor::new(&spec_at(sr))?;
            let samples = if sr == clip.sample_rate {
                clip.samples
            } else {
                resample(&clip.samples, clip.sample_rate, sr)
                    .with_context(|| format!("{what}: resampling to {sr} Hz"))?
            };
            extractor.compute(&what, &samples)?
        }
    };
    write_npy_f32(&a.out, &[m.rows, m.frames], &m.data)?;
    Ok(())
}
