//! Microphone capture through cpal: the input callback converts any sample format and
//! channel count to mono f32 and pushes it into a lock-free SPSC ring buffer. It never
//! allocates, locks, blocks, logs or panics; what does not fit is counted, not lost silently.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SizedSample};
use crossbeam_channel::Sender;
use ringbuf::traits::Producer;

use crate::{Error, Result};

/// Frames converted per push: a stack buffer, so the callback needs no heap.
const CHUNK: usize = 256;

/// The body of the audio callback: averages each interleaved frame of `data` to one f32
/// sample and pushes it; samples the ring cannot take are added to `dropped`.
#[inline]
pub fn push_mono<T, P>(data: &[T], channels: usize, prod: &mut P, dropped: &AtomicU64)
where
    T: Copy,
    f32: FromSample<T>,
    P: Producer<Item = f32>,
{
    let channels = channels.max(1);
    let scale = 1.0 / channels as f32;
    let mut buf = [0.0f32; CHUNK];
    let mut n = 0;
    for frame in data.chunks_exact(channels) {
        let mut s = 0.0f32;
        for &x in frame {
            s += f32::from_sample_(x);
        }
        buf[n] = s * scale;
        n += 1;
        if n == CHUNK {
            let pushed = prod.push_slice(&buf);
            if pushed < n {
                dropped.fetch_add((n - pushed) as u64, Ordering::Relaxed);
            }
            n = 0;
        }
    }
    if n > 0 {
        let pushed = prod.push_slice(&buf[..n]);
        if pushed < n {
            dropped.fetch_add((n - pushed) as u64, Ordering::Relaxed);
        }
    }
}

/// An input device as `emoscope devices` lists it.
#[derive(Debug, Clone)]
pub struct InputDeviceInfo {
    pub name: String,
    pub is_default: bool,
    /// e.g. "48000 Hz, 2 ch, F32".
    pub default_config: String,
}

/// Lists the input devices of the default host.
pub fn list_input_devices() -> Result<Vec<InputDeviceInfo>> {
    let host = cpal::default_host();
    let default_name = host.default_input_device().and_then(|d| d.name().ok());
    let devices = host
        .input_devices()
        .map_err(|e| Error::Device(format!("cannot list input devices: {e}")))?;
    Ok(devices
        .map(|d| {
            let name = d.name().unwrap_or_else(|_| "(unnamed)".into());
            let default_config = match d.default_input_config() {
                Ok(c) => format!(
                    "{} Hz, {} ch, {:?}",
                    c.sample_rate().0,
                    c.channels(),
                    c.sample_format()
                ),
                Err(e) => format!("no usable config: {e}"),
            };
            InputDeviceInfo {
                is_default: Some(&name) == default_name.as_ref(),
                name,
                default_config,
            }
        })
        .collect())
}

/// A running microphone stream; dropping it stops capture.
pub struct MicStream {
    _stream: cpal::Stream,
    pub device: String,
    pub sample_rate: u32,
    pub channels: usize,
}

/// Opens `name` (or the default input device) and starts pushing mono f32 into `prod`.
/// Stream errors (device unplugged, format change) are sent on `errors`.
pub fn open_microphone<P>(
    name: Option<&str>,
    prod: P,
    dropped: Arc<AtomicU64>,
    errors: Sender<String>,
) -> Result<MicStream>
where
    P: Producer<Item = f32> + Send + 'static,
{
    let host = cpal::default_host();
    let device = match name {
        Some(n) => host
            .input_devices()
            .map_err(|e| Error::Device(format!("cannot list input devices: {e}")))?
            .find(|d| d.name().map(|x| x == n).unwrap_or(false))
            .ok_or_else(|| Error::Device(format!("no input device named '{n}'; run `emoscope devices` to see the names")))?,
        None => host.default_input_device().ok_or_else(|| {
            Error::Device("no input device found; plug in a microphone, or pass --input FILE to analyse a recording".into())
        })?,
    };
    let dev_name = device.name().unwrap_or_else(|_| "(unnamed)".into());
    let supported = device
        .default_input_config()
        .map_err(|e| Error::Device(format!("{dev_name}: no usable input configuration ({e}); plug in a microphone, or pass --input FILE to analyse a recording")))?;
    let channels = supported.channels() as usize;
    let sample_rate = supported.sample_rate().0;
    let config: cpal::StreamConfig = supported.config();
    let err_cb = move |e: cpal::StreamError| {
        let _ = errors.try_send(e.to_string());
    };
    let stream = match supported.sample_format() {
        cpal::SampleFormat::F32 => {
            build::<f32, P>(&device, &config, channels, prod, dropped, err_cb)
        }
        cpal::SampleFormat::I16 => {
            build::<i16, P>(&device, &config, channels, prod, dropped, err_cb)
        }
        cpal::SampleFormat::U16 => {
            build::<u16, P>(&device, &config, channels, prod, dropped, err_cb)
        }
        cpal::SampleFormat::I32 => {
            build::<i32, P>(&device, &config, channels, prod, dropped, err_cb)
        }
        cpal::SampleFormat::I8 => build::<i8, P>(&device, &config, channels, prod, dropped, err_cb),
        cpal::SampleFormat::U8 => build::<u8, P>(&device, &config, channels, prod, dropped, err_cb),
        cpal::SampleFormat::F64 => {
            build::<f64, P>(&device, &config, channels, prod, dropped, err_cb)
        }
        other => {
            return Err(Error::Device(format!(
                "{dev_name}: sample format {other:?} is not supported"
            )))
        }
    }
    .map_err(|e| Error::Device(format!("{dev_name}: cannot open input stream: {e}")))?;
    stream
        .play()
        .map_err(|e| Error::Device(format!("{dev_name}: cannot start input stream: {e}")))?;
    Ok(MicStream {
        _stream: stream,
        device: dev_name,
        sample_rate,
        channels,
    })
}

fn build<T, P>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    channels: usize,
    mut prod: P,
    dropped: Arc<AtomicU64>,
    err_cb: impl FnMut(cpal::StreamError) + Send + 'static,
) -> std::result::Result<cpal::Stream, cpal::BuildStreamError>
where
    T: SizedSample,
    f32: FromSample<T>,
    P: Producer<Item = f32> + Send + 'static,
{
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], _| push_mono(data, channels, &mut prod, &dropped),
        err_cb,
        None,
    )
}
