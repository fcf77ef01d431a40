//! Decoding every supported format and bit depth, channel mix-down, resampling, and the
//! errors for bad input (each asserts which error and that it names the file).

mod common;

use std::f32::consts::PI;
use std::io::Write;
use std::path::{Path, PathBuf};

use emoscope::audio::{decode_file, peak, resample, rms, write_wav_i16};
use emoscope::features::{FeatureExtractor, FeatureKind, FeatureSpec};
use emoscope::Error;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audio")
        .join(name)
}

fn sine(freq: f32, sr: u32, n: usize, amp: f32) -> Vec<f32> {
    (0..n)
        .map(|i| amp * (2.0 * PI * freq * i as f32 / sr as f32).sin())
        .collect()
}

fn write_int_wav(path: &Path, bits: u16, channels: &[Vec<f32>], sr: u32) {
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate: sr,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let full = ((1i64 << (bits - 1)) - 1) as f32;
    for i in 0..channels[0].len() {
        for ch in channels {
            let v = (ch[i] * full).round() as i32;
            if bits == 8 {
                w.write_sample(v as i8).unwrap()
            } else {
                w.write_sample(v).unwrap()
            }
        }
    }
    w.finalize().unwrap();
}

/// A minimal IEEE-float WAV (format 3) with 32- or 64-bit samples, written by hand.
fn write_float_wav(path: &Path, bits: u16, samples: &[f64], sr: u32) {
    let bps = (bits / 8) as u32;
    let data_len = samples.len() as u32 * bps;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&3u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&sr.to_le_bytes());
    b.extend_from_slice(&(sr * bps).to_le_bytes());
    b.extend_from_slice(&(bps as u16).to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for &x in samples {
        if bits == 64 {
            b.extend_from_slice(&x.to_le_bytes())
        } else {
            b.extend_from_slice(&(x as f32).to_le_bytes())
        }
    }
    std::fs::File::create(path).unwrap().write_all(&b).unwrap();
}

#[test]
fn integer_wavs_of_every_depth_decode_to_the_written_signal() {
    let dir = tempfile::tempdir().unwrap();
    let x = sine(440.0, 16000, 4000, 0.5);
    for (bits, tol) in [(8u16, 1.0 / 100.0), (16, 1e-4), (24, 1e-6), (32, 1e-6)] {
        let p = dir.path().join(format!("s{bits}.wav"));
        write_int_wav(&p, bits, std::slice::from_ref(&x), 16000);
        let c = decode_file(&p).unwrap();
        assert_eq!(
            (c.sample_rate, c.channels, c.samples.len()),
            (16000, 1, 4000),
            "{bits}-bit"
        );
        let err = c
            .samples
            .iter()
            .zip(&x)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err <= tol, "{bits}-bit WAV: max error {err} > {tol}");
    }
}

#[test]
fn float_wavs_32_and_64_bit_decode_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let x: Vec<f64> = sine(1000.0, 8000, 800, 0.25)
        .into_iter()
        .map(f64::from)
        .collect();
    for bits in [32u16, 64] {
        let p = dir.path().join(format!("f{bits}.wav"));
        write_float_wav(&p, bits, &x, 8000);
        let c = decode_file(&p).unwrap();
        assert_eq!(c.samples.len(), 800);
        let err = c
            .samples
            .iter()
            .zip(&x)
            .fold(0.0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
        assert!(err < 1e-7, "{bits}-bit float WAV: max error {err}");
    }
}

#[test]
fn multichannel_wav_is_averaged_to_mono() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("three.wav");
    let n = 1000;
    let chans = vec![vec![0.6; n], vec![-0.2; n], vec![0.2; n]];
    write_int_wav(&p, 16, &chans, 22050);
    let c = decode_file(&p).unwrap();
    assert_eq!(c.channels, 3);
    assert_eq!(c.samples.len(), n);
    // (0.6 - 0.2 + 0.2) / 3 = 0.2
    assert!(
        c.samples.iter().all(|&s| (s - 0.2).abs() < 1e-4),
        "first sample {}",
        c.samples[0]
    );
}

#[test]
fn flac_mp3_and_ogg_fixtures_decode_with_their_rate_channels_and_level() {
    // sox-made 0.8 s 440 Hz tones at -6 dBFS (peak 0.501).
    let flac = decode_file(&fixture("tone.flac")).unwrap();
    assert_eq!(
        (flac.sample_rate, flac.channels, flac.samples.len()),
        (16000, 1, 12800)
    );
    assert!(
        (peak(&flac.samples) - 0.501).abs() < 0.01,
        "flac peak {}",
        peak(&flac.samples)
    );

    let ogg = decode_file(&fixture("tone.ogg")).unwrap();
    assert_eq!((ogg.sample_rate, ogg.channels), (22050, 1));
    assert_eq!(
        ogg.samples.len(),
        17640,
        "ogg: encoder delay must be removed (0.8 s at 22050 Hz)"
    );
    assert!(
        (rms(&ogg.samples) - 0.354).abs() < 0.02,
        "ogg rms {}",
        rms(&ogg.samples)
    );

    let mp3 = decode_file(&fixture("tone_stereo.mp3")).unwrap();
    assert_eq!((mp3.sample_rate, mp3.channels), (44100, 2));
    assert!(
        (mp3.duration() - 0.8).abs() < 0.06,
        "mp3 duration {}",
        mp3.duration()
    );
    assert!(mp3.format.starts_with("mp3/"), "{}", mp3.format);
}

#[test]
fn real_ravdess_flac_decodes_to_its_known_length() {
    if common::no_data("real_ravdess_flac_decodes_to_its_known_length") {
        return;
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/ravdess/Actor_01/03-01-01-01-01-01-01.flac");
    let c = decode_file(&p).unwrap();
    assert_eq!(
        (c.sample_rate, c.channels, c.samples.len()),
        (16000, 1, 52853)
    );
}

#[test]
fn resampling_keeps_frequency_level_and_timing() {
    let x = sine(440.0, 44100, 44100, 0.5);
    let y = resample(&x, 44100, 16000).unwrap();
    assert_eq!(y.len(), 16000);
    let ideal = sine(440.0, 16000, 16000, 0.5);
    // Away from the edges the band-limited resampler reproduces the ideal sine closely.
    let err = y[500..15500]
        .iter()
        .zip(&ideal[500..15500])
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(err < 5e-3, "max error against the ideal 16 kHz sine: {err}");
    // Upsampling too.
    let z = resample(&ideal, 16000, 48000).unwrap();
    assert_eq!(z.len(), 48000);
    assert!((rms(&z[1000..47000]) - 0.5 / 2f32.sqrt()).abs() < 2e-3);
}

fn expect_err<T: std::fmt::Debug>(r: emoscope::Result<T>) -> Error {
    r.expect_err("expected an error")
}

#[test]
fn bad_files_give_the_right_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let missing = d.join("missing.wav");
    let e = expect_err(decode_file(&missing));
    assert!(matches!(e, Error::Open { .. }), "{e}");
    assert!(e.to_string().contains("missing.wav"));

    let empty = d.join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let e = expect_err(decode_file(&empty));
    assert!(matches!(e, Error::EmptyFile { .. }), "{e}");

    let text = d.join("notes.wav");
    std::fs::write(
        &text,
        "these are not audio samples, just some text\n".repeat(20),
    )
    .unwrap();
    let e = expect_err(decode_file(&text));
    assert!(matches!(e, Error::NotAudio { .. }), "{e}");
    assert!(e.to_string().contains("notes.wav"));

    let zero = d.join("zero.wav");
    write_wav_i16(&zero, &[], 16000).unwrap();
    let e = expect_err(decode_file(&zero));
    assert!(matches!(e, Error::NoSamples { .. }), "{e}");

    let nan = d.join("nan.wav");
    let mut x: Vec<f64> = vec![0.1; 100];
    x[37] = f64::NAN;
    write_float_wav(&nan, 32, &x, 16000);
    let e = expect_err(decode_file(&nan));
    assert!(matches!(e, Error::NonFinite { index: 37, .. }), "{e}");
    let mut x: Vec<f64> = vec![0.1; 100];
    x[5] = f64::INFINITY;
    write_float_wav(&nan, 32, &x, 16000);
    assert!(matches!(
        expect_err(decode_file(&nan)),
        Error::NonFinite { index: 5, .. }
    ));
}

#[test]
fn truncated_wav_and_flac_are_reported_not_silently_shortened() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("cut.wav");
    write_wav_i16(&wav, &sine(300.0, 16000, 16000, 0.3), 16000).unwrap();
    let bytes = std::fs::read(&wav).unwrap();
    std::fs::write(&wav, &bytes[..bytes.len() / 2]).unwrap();
    let e = expect_err(decode_file(&wav));
    assert!(
        matches!(
            e,
            Error::Truncated {
                expected: 16000,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("cut.wav"));

    let flac = dir.path().join("cut.flac");
    let bytes = std::fs::read(fixture("tone.flac")).unwrap();
    std::fs::write(&flac, &bytes[..bytes.len() / 2]).unwrap();
    let e = expect_err(decode_file(&flac));
    assert!(
        matches!(
            e,
            Error::Truncated {
                expected: 12800,
                ..
            } | Error::Decode { .. }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("cut.flac"));
}

#[test]
fn bad_feature_parameters_name_the_parameter() {
    let base = FeatureSpec {
        sample_rate: 16000,
        ..FeatureSpec::default()
    };
    let e = expect_err(
        FeatureExtractor::new(&FeatureSpec {
            n_fft: 256,
            hop_length: 512,
            ..base.clone()
        })
        .map(|_| ()),
    );
    assert!(
        matches!(e, Error::InvalidParam { name: "n_fft", .. }),
        "{e}"
    );
    let e = expect_err(
        FeatureExtractor::new(&FeatureSpec {
            n_fft: 256,
            hop_length: 128,
            n_mels: 200,
            ..base.clone()
        })
        .map(|_| ()),
    );
    assert!(
        matches!(e, Error::InvalidParam { name: "n_mels", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("129 FFT bins"), "{e}");
    let e = expect_err(
        FeatureExtractor::new(&FeatureSpec {
            fmax: Some(9000.0),
            ..base.clone()
        })
        .map(|_| ()),
    );
    assert!(matches!(e, Error::InvalidParam { name: "fmax", .. }), "{e}");
    let e = expect_err(
        FeatureExtractor::new(&FeatureSpec {
            kind: FeatureKind::Mfcc,
            n_mfcc: 500,
            ..base.clone()
        })
        .map(|_| ()),
    );
    assert!(
        matches!(e, Error::InvalidParam { name: "n_mfcc", .. }),
        "{e}"
    );

    let ex = FeatureExtractor::new(&base).unwrap();
    let e = expect_err(ex.compute("short clip", &[0.1; 1000]));
    assert!(
        matches!(
            e,
            Error::SignalTooShort {
                len: 1000,
                n_fft: 2048,
                ..
            }
        ),
        "{e}"
    );
    let mut x = vec![0.1; 4000];
    x[10] = f32::NAN;
    assert!(matches!(
        expect_err(ex.compute("x", &x)),
        Error::NonFinite { index: 10, .. }
    ));
}
