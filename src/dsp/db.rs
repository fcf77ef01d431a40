//! Power to decibels as librosa's `power_to_db(S, ref=1.0, amin=1e-10, top_db=80.0)`.

/// Floor applied to power before the logarithm.
pub const AMIN: f32 = 1e-10;
/// Dynamic range kept below the maximum, in dB.
pub const TOP_DB: f32 = 80.0;

/// Converts power values to dB in place: `10 log10(max(amin, S))`, then clamps everything
/// below `max - top_db` (the maximum over the whole slice) when `top_db` is given.
pub fn power_to_db_in_place(s: &mut [f32], top_db: Option<f32>) {
    let mut max = f32::NEG_INFINITY;
    for x in s.iter_mut() {
        *x = 10.0 * log10(x.max(AMIN));
        max = max.max(*x);
    }
    if let Some(top) = top_db {
        let floor = max - top;
        for x in s.iter_mut() {
            *x = x.max(floor);
        }
    }
}

/// Returns `power_to_db` of `s` as a new vector.
pub fn power_to_db(s: &[f32], top_db: Option<f32>) -> Vec<f32> {
    let mut v = s.to_vec();
    power_to_db_in_place(&mut v, top_db);
    v
}

/// Base-10 logarithm of a positive, finite, normal `f32` within a few ulp of `f32::log10`,
/// written without a libm call so that loops over it vectorise: `x = m * 2^e` with `m`
/// in [sqrt(1/2), sqrt(2)), `ln m = 2 atanh(s)`, `s = (m - 1) / (m + 1)`, by its series
/// to `s^9` (|s| < 0.172, so the first term left out is below 4e-10).
#[inline]
pub fn log10(x: f32) -> f32 {
    const LN_2: f32 = std::f32::consts::LN_2;
    const LOG10_E: f32 = std::f32::consts::LOG10_E;
    let bits = x.to_bits();
    let mant = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let exp = ((bits >> 23) & 0xff) as i32 - 127;
    let big = mant > std::f32::consts::SQRT_2;
    let m = if big { mant * 0.5 } else { mant };
    let e = (exp + big as i32) as f32;
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series = 1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0))));
    (e * LN_2 + 2.0 * s * series) * LOG10_E
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log10_matches_libm_over_the_power_range() {
        // Every power a spectrogram holds after the amin floor, 1e-10 up to 1e12.
        let mut worst = 0.0f64;
        let mut x = AMIN;
        while x < 1e12 {
            let ours = log10(x) as f64;
            let exact = (x as f64).log10();
            worst = worst.max((ours - exact).abs() / exact.abs().max(1.0));
            x *= 1.000_37;
        }
        assert!(worst < 5e-7, "worst relative error {worst:e}");
        assert_eq!(log10(1.0), 0.0);
        assert!((log10(1000.0) - 3.0).abs() < 1e-6);
    }
}
