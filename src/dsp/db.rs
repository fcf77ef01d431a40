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
        *x = 10.0 * x.max(AMIN).log10();
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
