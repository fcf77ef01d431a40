//! The LSTM's gate arithmetic ([`super::lstm`]): a branch-free exp, sigmoid and tanh, one
//! batch row's gates of one frame forward and backward, and those loops compiled for the
//! widest vectors the CPU has (AVX-512, else AVX2; the crate's baseline is four lanes).
//! Its own module, as [`super::packed`], because choosing the width at run time takes
//! `unsafe` (a function built for features the CPU is first checked for).

use super::packed::PackedRhs;

/// `e^x` without a library call or a branch, so the gate loops vectorise: `x = n ln 2 + r`,
/// `|r| <= ln 2 / 2`, `e^r` by its Taylor polynomial to `r^7` (relative error below 2e-7
/// there), times `2^n` built in the exponent bits; `x` clamped to where `e^x` is a normal
/// f32 (so `e^x` is 0 or a large finite value beyond, which the gates saturate on alike).
#[inline(always)]
fn exp_fast(x: f32) -> f32 {
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

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_fast(-x))
}

/// `tanh x = 1 - 2 / (e^{2x} + 1)`: within 2e-7 of libm's everywhere (absolute; a value
/// near 0 loses relative precision, never absolute).
#[inline(always)]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp_fast(2.0 * x) + 1.0)
}

/// One batch row's gates of one frame, forward: `g` holds the pre-activations (i, f, g, o)
/// less the bias, and is overwritten with the activations; the cell and state are written.
#[inline(always)]
fn gates_forward(g: &mut [f32], bias: &[f32], c_prev: &[f32], c: &mut [f32], hs: &mut [f32]) {
    let h = c.len();
    let (bi, bf, bc, bo) = (
        &bias[..h],
        &bias[h..2 * h],
        &bias[2 * h..3 * h],
        &bias[3 * h..4 * h],
    );
    // The four gates as separate slices of one length, so the loop vectorises.
    let (gi, rest) = g.split_at_mut(h);
    let (gf, rest) = rest.split_at_mut(h);
    let (gc, go) = rest.split_at_mut(h);
    let (gi, gf, gc, go, cp, hs) = (
        &mut gi[..h],
        &mut gf[..h],
        &mut gc[..h],
        &mut go[..h],
        &c_prev[..h],
        &mut hs[..h],
    );
    for j in 0..h {
        let (ig, fg) = (sigmoid(gi[j] + bi[j]), sigmoid(gf[j] + bf[j]));
        let (cg, og) = (tanh(gc[j] + bc[j]), sigmoid(go[j] + bo[j]));
        let cc = fg * cp[j] + ig * cg;
        c[j] = cc;
        hs[j] = og * tanh(cc);
        (gi[j], gf[j], gc[j], go[j]) = (ig, fg, cg, og);
    }
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
            if PackedRhs::available() {
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

/// [`gates_forward`] on the widest vectors the CPU has ([`widest`]).
pub(super) fn gates_forward_wide(
    g: &mut [f32],
    bias: &[f32],
    c_prev: &[f32],
    c: &mut [f32],
    hs: &mut [f32],
) {
    widest!(gates_forward(g: &mut [f32], bias: &[f32], c_prev: &[f32], c: &mut [f32], hs: &mut [f32]))
}

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

/// [`gates_backward`] on the widest vectors the CPU has ([`widest`]).
pub(super) fn gates_backward_wide(row: &GateRow, g: &mut [f32], dc_next: &mut [f32]) {
    widest!(gates_backward(row: &GateRow, g: &mut [f32], dc_next: &mut [f32]))
}

/// What one batch row's backward step through a frame reads beside its gate activations:
/// the frame's cell, the cell before it, the loss's gradient of the frame's state and the
/// gradient that came back from the next frame.
pub(super) struct GateRow<'a> {
    pub cell: &'a [f32],
    pub c_prev: &'a [f32],
    pub dstate: &'a [f32],
    pub dh_next: &'a [f32],
}

/// One batch row's gate gradients of one frame, written over its gate activations in `g`
/// (i, f, g, o; each read before it is overwritten); `dc` holds the cell gradient from
/// the next frame and is left holding the one for the frame before.
#[inline(always)]
fn gates_backward(row: &GateRow, g: &mut [f32], dc_next: &mut [f32]) {
    let h = dc_next.len();
    let (gi, rest) = g.split_at_mut(h);
    let (gf, rest) = rest.split_at_mut(h);
    let (gc, go) = rest.split_at_mut(h);
    let (cs, cps, ds, dhn) = (
        &row.cell[..h],
        &row.c_prev[..h],
        &row.dstate[..h],
        &row.dh_next[..h],
    );
    let (gi, gf, gc, go) = (&mut gi[..h], &mut gf[..h], &mut gc[..h], &mut go[..h]);
    for j in 0..h {
        let (ig, fg, cg, og) = (gi[j], gf[j], gc[j], go[j]);
        let tc = tanh(cs[j]);
        let dh = ds[j] + dhn[j];
        let dc = dc_next[j] + dh * og * (1.0 - tc * tc);
        dc_next[j] = dc * fg;
        gi[j] = dc * cg * ig * (1.0 - ig);
        gf[j] = dc * cps[j] * fg * (1.0 - fg);
        gc[j] = dc * ig * (1.0 - cg * cg);
        go[j] = dh * tc * og * (1.0 - og);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gates' branch-free exp, sigmoid and tanh against libm's, over and beyond every
    /// value a gate meets, and saturating without NaN far out.
    #[test]
    fn fast_gate_functions_match_libm() {
        let (mut e_rel, mut s_abs, mut t_abs) = (0f64, 0f64, 0f64);
        for i in -800_000..=800_000 {
            let x = i as f32 * 1e-4;
            let e = exp_fast(x) as f64;
            e_rel = e_rel.max((e - (x as f64).exp()).abs() / (x as f64).exp());
            let sx = 1.0 / (1.0 + (-(x as f64)).exp());
            s_abs = s_abs.max((sigmoid(x) as f64 - sx).abs());
            t_abs = t_abs.max((tanh(x) as f64 - (x as f64).tanh()).abs());
        }
        assert!(e_rel < 1e-6, "exp: relative error {e_rel}");
        assert!(s_abs < 1e-6, "sigmoid: absolute error {s_abs}");
        assert!(t_abs < 1e-6, "tanh: absolute error {t_abs}");
        for x in [-1e4f32, -200.0, 200.0, 1e4, f32::MAX, f32::MIN] {
            let (sg, th) = (sigmoid(x), tanh(x));
            assert!(sg.is_finite() && th.is_finite(), "{x}: {sg}, {th}");
            assert!(
                (sg - if x > 0.0 { 1.0 } else { 0.0 }).abs() < 1e-6,
                "sigmoid({x}) = {sg}"
            );
            assert!((th - x.signum()).abs() < 1e-6, "tanh({x}) = {th}");
        }
    }
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
