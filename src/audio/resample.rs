//! Band-limited resampling with rubato's FFT resampler, for whole clips and for streams
//! (the live pipeline feeds it chunk by chunk).

use rubato::{FftFixedIn, Resampler};

use crate::{Error, Result};

const CHUNK: usize = 1024;

/// Resamples a whole mono clip from `from` Hz to `to` Hz. The output has
/// `round(len * to / from)` samples and is aligned with the input (the filter delay is removed).
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == 0 || to == 0 {
        return Err(Error::param(
            "sample rate",
            format!("{from}->{to}"),
            "must be positive",
        ));
    }
    if from == to {
        return Ok(samples.to_vec());
    }
    let mut s = StreamResampler::new(from, to)?;
    let expected = ((samples.len() as u64 * to as u64 + from as u64 / 2) / from as u64) as usize;
    let mut out = Vec::with_capacity(expected + CHUNK);
    s.push(samples, &mut out)?;
    // Flush with zeros until the delayed tail has come out.
    let delay = s.delay();
    let zeros = vec![0.0f32; CHUNK];
    while out.len() < expected + delay {
        s.push(&zeros, &mut out)?;
    }
    out.drain(..delay);
    out.truncate(expected);
    Ok(out)
}

/// A streaming mono resampler: push any number of samples, get what is ready.
pub struct StreamResampler {
    inner: FftFixedIn<f32>,
    from: u32,
    to: u32,
    pending: Vec<f32>,
    out_buf: Vec<Vec<f32>>,
}

impl StreamResampler {
    pub fn new(from: u32, to: u32) -> Result<Self> {
        let inner =
            FftFixedIn::<f32>::new(from as usize, to as usize, CHUNK, 2, 1).map_err(|e| {
                Error::Resample {
                    from,
                    to,
                    reason: e.to_string(),
                }
            })?;
        let out_buf = vec![vec![0.0; inner.output_frames_max()]];
        Ok(Self {
            inner,
            from,
            to,
            pending: Vec::with_capacity(CHUNK * 2),
            out_buf,
        })
    }

    /// Output samples of delay the filter adds.
    pub fn delay(&self) -> usize {
        self.inner.output_delay()
    }

    /// Feeds `input`; appends every finished output sample to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<()> {
        let mut rest = input;
        loop {
            let need = self.inner.input_frames_next();
            if self.pending.is_empty() && rest.len() >= need {
                let (chunk, tail) = rest.split_at(need);
                self.process(Some(chunk), out)?;
                rest = tail;
                continue;
            }
            let take = (need - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == need {
                self.process(None, out)?;
                self.pending.clear();
            } else {
                return Ok(());
            }
        }
    }

    fn process(&mut self, chunk: Option<&[f32]>, out: &mut Vec<f32>) -> Result<()> {
        let input: &[f32] = chunk.unwrap_or(&self.pending);
        let (_, n_out) = self
            .inner
            .process_into_buffer(&[input], &mut self.out_buf, None)
            .map_err(|e| Error::Resample {
                from: self.from,
                to: self.to,
                reason: e.to_string(),
            })?;
        out.extend_from_slice(&self.out_buf[0][..n_out]);
        Ok(())
    }
}
