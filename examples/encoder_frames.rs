//! Every encoder frame of one block's output (block 3 unless a second argument names
//! another, 0 = the input of the first block; `whisper_probe.py`'s layer numbers) for the windows of
//! an `emoscope encode --export DIR` folder, for research on heads that read frames rather
//! than their time-mean (`scripts/attention_pooling.py`) or fine-tune the blocks above it
//! (`scripts/finetune_block.py`, which reads block 2's). Writes `DIR/frames.npy` (block 3) or `DIR/frames_bN.npy`
//! (windows x 150 x 512, float32, a short window's missing frames zero) and
//! `DIR/frames_len.npy` (each window's frame count). Each window is read exactly as
//! `encode` read it (the default's level, its start in windows.csv), so the mean of a
//! window's frames is its exported block mean. About 0.1 s of CPU per window; 2.2 GB for
//! the three corpora.
//!
//!     emoscope encode --data ravdess=D/ravdess --data csv=D/emovo/labels.csv \
//!         --data csv=D/nemo/labels.csv --export runs/enc-npy
//!     cargo run --release --example encoder_frames -- runs/enc-npy [BLOCK]
use emoscope::audio::{decode_file, resample};
use emoscope::encoder::{encoder_spec, Encoder};
use emoscope::features::FeatureExtractor;
use emoscope::npy::write_npy_f32;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

const FRAMES: usize = 150;
const WIDTH: usize = 512;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or(
        "usage: cargo run --release --example encoder_frames -- DIR (a folder written by emoscope encode --export DIR)",
    )?);
    let block: usize = match std::env::args().nth(2) {
        None => 3,
        Some(b) => b
            .parse()
            .ok()
            .filter(|b| *b <= emoscope::encoder::BUILTIN_BLOCKS)
            .ok_or(format!("block {b:?}: give 0 to {}", emoscope::encoder::BUILTIN_BLOCKS))?,
    };
    let name = match block {
        3 => "frames".to_string(),
        b => format!("frames_b{b}"),
    };
    let csv = dir.join("windows.csv");
    let text = std::fs::read_to_string(&csv)
        .map_err(|e| format!("{}: {e}; run emoscope encode --export first", csv.display()))?;
    let rows = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            match (f.first(), f.get(4).and_then(|s| s.parse::<usize>().ok())) {
                (Some(p), Some(start)) => Ok((p.to_string(), start)),
                _ => Err(format!("{}: malformed line {l:?}", csv.display())),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let spec = encoder_spec();
    let level = spec.encoder.as_ref().and_then(|e| e.level_db);
    let ex = FeatureExtractor::new(&spec)?;
    let enc = Encoder::builtin()?;
    let win = spec.window_samples();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let windows = rows
        .par_iter()
        .map(|(p, start)| -> Result<(usize, Vec<f32>), String> {
            let a = decode_file(Path::new(p)).map_err(|e| e.to_string())?;
            let x =
                resample(&a.samples, a.sample_rate, spec.sample_rate).map_err(|e| e.to_string())?;
            let w = &x[(*start).min(x.len())..(*start + win).min(x.len())];
            let db = ex.window_db_mel(p, w).map_err(|e| e.to_string())?;
            let mel = Encoder::log_mel_at(&db, level).map_err(|e| e.to_string())?;
            let outs = enc.forward_upto(&mel, block).map_err(|e| e.to_string())?;
            let n = outs[block].dims()[0].min(FRAMES);
            let mut v: Vec<f32> = outs[block]
                .flatten_all()
                .and_then(|t| t.to_vec1())
                .map_err(|e| e.to_string())?;
            v.resize(FRAMES * WIDTH, 0.0);
            let k = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if k.is_multiple_of(500) {
                eprintln!("{k} of {} windows", rows.len());
            }
            Ok((n, v))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let lens: Vec<f32> = windows.iter().map(|(n, _)| *n as f32).collect();
    let data: Vec<f32> = windows.into_iter().flat_map(|(_, v)| v).collect();
    let (frames, len) = (format!("{name}.npy"), format!("{name}_len.npy"));
    write_npy_f32(&dir.join(&frames), &[rows.len(), FRAMES, WIDTH], &data)?;
    write_npy_f32(&dir.join(&len), &[rows.len()], &lens)?;
    eprintln!("wrote {}/{frames} and {len}", dir.display());
    Ok(())
}
