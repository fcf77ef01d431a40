//! Playing a clip on the default output device (cpal), e.g. to check a recording in the
//! training mode. The samples are resampled to the device rate before the stream starts,
//! so the output callback only copies.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SizedSample};

use crate::{Error, Result};

/// A clip being played; dropping it stops playback.
pub struct Playback {
    _stream: cpal::Stream,
    pos: Arc<AtomicUsize>,
    len: usize,
}

impl Playback {
    /// Share of the clip played so far, 0..=1.
    pub fn progress(&self) -> f32 {
        self.pos.load(Ordering::Relaxed).min(self.len) as f32 / self.len.max(1) as f32
    }

    pub fn finished(&self) -> bool {
        self.pos.load(Ordering::Relaxed) >= self.len
    }
}

/// Starts playing mono `samples` at `rate` on the default output device.
pub fn play(samples: &[f32], rate: u32) -> Result<Playback> {
    let host = cpal::default_host();
    let device = host.default_output_device().ok_or_else(|| {
        Error::Device(
            "no audio output device found; connect speakers or headphones to play clips back"
                .into(),
        )
    })?;
    let name = device.name().unwrap_or_else(|_| "(unnamed)".into());
    let supported = device
        .default_output_config()
        .map_err(|e| Error::Device(format!("{name}: no usable output configuration ({e})")))?;
    let out_rate = supported.sample_rate().0;
    let channels = supported.channels() as usize;
    let data: Arc<Vec<f32>> = Arc::new(super::resample(samples, rate, out_rate)?);
    let pos = Arc::new(AtomicUsize::new(0));
    let config: cpal::StreamConfig = supported.config();
    let stream = match supported.sample_format() {
        cpal::SampleFormat::F32 => build::<f32>(&device, &config, channels, &data, &pos),
        cpal::SampleFormat::I16 => build::<i16>(&device, &config, channels, &data, &pos),
        cpal::SampleFormat::U16 => build::<u16>(&device, &config, channels, &data, &pos),
        cpal::SampleFormat::I32 => build::<i32>(&device, &config, channels, &data, &pos),
        other => {
            return Err(Error::Device(format!(
                "{name}: output sample format {other:?} is not supported"
            )))
        }
    }
    .map_err(|e| Error::Device(format!("{name}: cannot open output stream: {e}")))?;
    stream
        .play()
        .map_err(|e| Error::Device(format!("{name}: cannot start playback: {e}")))?;
    Ok(Playback {
        _stream: stream,
        len: data.len(),
        pos,
    })
}

fn build<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    channels: usize,
    data: &Arc<Vec<f32>>,
    pos: &Arc<AtomicUsize>,
) -> std::result::Result<cpal::Stream, cpal::BuildStreamError>
where
    T: SizedSample + FromSample<f32>,
{
    let (data, pos) = (Arc::clone(data), Arc::clone(pos));
    device.build_output_stream::<T, _, _>(
        config,
        move |out: &mut [T], _| {
            let mut p = pos.load(Ordering::Relaxed);
            for frame in out.chunks_mut(channels.max(1)) {
                let v = data.get(p).copied().unwrap_or(0.0);
                for s in frame {
                    *s = T::from_sample(v);
                }
                p += 1;
            }
            pos.store(p, Ordering::Relaxed);
        },
        |_| {},
        None,
    )
}
