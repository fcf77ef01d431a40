//! Branch-free activations that vectorise: `e^x`, `erf x` and the exact GELU, and
//! [`widest`], which runs a loop compiled for the widest vectors the CPU has. The LSTM's
//! gates (`model::gates`) and the encoder's GELU are built on them.

/// `e^x` without a library call or a branch, so the gate loops vectorise: `x = n ln 2 + r`,
/// `|r| <= ln 2 / 2`, `e^r` by its Taylor polynomial to `r^7` (relative error below 2e-7
/// there), times `2^n` built in the exponent bits; `x` clamped to where `e^x` is a normal
/// f32 (so `e^x` is 0 or a large finite value beyond, which the gates saturate on alike).
#[inline(always)]
pub(crate) fn exp_fast(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and removing 1.5 * 2^23 rounds to the nearest integer without `round`.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r / 5040.0))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `$f` called from a copy of it built for AVX-512F where the CPU has it (sixteen lanes),
/// else for AVX2 (eight; the crate's baseline is four). The arithmetic is the same (no
/// fused multiply-add), so are the values. A copy per function: a closure around the gate
/// loop was too large for the compiler to inline into `dsp::vectorised`'s AVX2 body, and
/// ran four lanes wide.
macro_rules! widest {
    ($f:ident ( $($a:ident : $t:ty),* )) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            #[allow(unsafe_code)]
            unsafe fn avx512($($a: $t),*) {
                $f($($a),*)
            }
            #[target_feature(enable = "avx2")]
            #[allow(unsafe_code)]
            unsafe fn avx2($($a: $t),*) {
                $f($($a),*)
            }
            if crate::kernel::packed::PackedRhs::available() {
                // SAFETY: the CPU has just been found to support AVX-512F, all `avx512`
                // is built for.
                #[allow(unsafe_code)]
                return unsafe { avx512($($a),*) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has just been found to support AVX2, all `avx2` is
                // built for.
                #[allow(unsafe_code)]
                return unsafe { avx2($($a),*) };
            }
        }
        $f($($a),*)
    }};
}
pub(crate) use widest;

/// `erf x` without a library call or a branch: Abramowitz and Stegun 7.1.26 on `|x|`
/// (absolute error below 1.5e-7), the sign put back.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_72 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    (1.0 - poly * exp_fast(-z * z)).copysign(x)
}

/// GELU in the exact form Whisper uses, `0.5 x (1 + erf(x / sqrt 2))`, over `x` in place.
#[inline(always)]
fn gelu_erf_loop(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// [`gelu_erf_loop`] on the widest vectors the CPU has ([`widest`]): the encoder's
/// activation, where candle's `gelu_erf` calls libm's scalar `erff` per value (a fifth of
/// the encoder's time).
pub fn gelu_erf(x: &mut [f32]) {
    widest!(gelu_erf_loop(x: &mut [f32]))
}

#[cfg(test)]
mod gelu_tests {
    /// Against candle's `gelu_erf` (libm's erf) from -12 to 12: within 4e-7 of each value,
    /// relative to its size past 1.
    #[test]
    fn gelu_erf_matches_candle_over_the_range_the_encoder_meets() {
        let xs: Vec<f32> = (-120_000..=120_000).map(|i| i as f32 * 1e-4).collect();
        let want = candle_core::Tensor::new(xs.as_slice(), &candle_core::Device::Cpu)
            .unwrap()
            .gelu_erf()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mut got = xs.clone();
        super::gelu_erf(&mut got);
        let worst = got
            .iter()
            .zip(&want)
            .zip(&xs)
            .map(|((g, w), x)| (g - w).abs() / x.abs().max(1.0))
            .fold(0f32, f32::max);
        assert!(worst < 4e-7, "worst difference {worst}");
        // and it is GELU: at 1, 0.5 (1 + erf(1 / sqrt 2)) = 0.841345
        assert!((got[130_000] - 0.841_344_7).abs() < 1e-6);
    }
}
