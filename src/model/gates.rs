//! The LSTM's gate arithmetic ([`super::lstm`]): a branch-free exp, sigmoid and tanh, one
//! batch row's gates of one frame forward and backward, and those loops compiled for the
//! widest vectors the CPU has (AVX-512, else AVX2; the crate's baseline is four lanes).
//! The exp and the widest-vector dispatch are the crate's kernels' ([`crate::kernel`]).
//! Its own module, as [`crate::kernel::packed`], because choosing the width at run time takes
//! `unsafe` (a function built for features the CPU is first checked for).

use crate::kernel::activation::exp_fast;
use crate::kernel::widest;

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
